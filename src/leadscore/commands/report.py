"""``leadscore report``: views for marketing ops."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from leadscore.commands.validate import add_data_arguments
from leadscore.datasets import read_flat_table
from leadscore.errors import DataError
from leadscore.io import find_event_table, read_table, write_table
from leadscore.reports import channel_report, format_report
from leadscore.sinks import DEFAULT_TARGET, read_scored_leads
from leadscore.specs import load_spec


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="reports for marketing ops", description="Reports on scored leads."
    )
    reports = parser.add_subparsers(dest="report", metavar="REPORT", required=True)
    channels = reports.add_parser(
        "channels",
        help="leads, MQLs, SQLs, expected wins and cost per channel and campaign",
        description="Per channel (and campaign): leads, MQLs (MQL or SQL), SQLs, MQL and SQL "
        "rates, expected wins (sum of calibrated probabilities) and, with a costs file, cost "
        "per lead, per MQL and per expected win. Printed as a table and written as CSV.",
    )
    add_data_arguments(channels)
    channels.add_argument(
        "--target",
        default=DEFAULT_TARGET,
        help=f"where the scores are kept (default: {DEFAULT_TARGET})",
    )
    channels.add_argument(
        "--by",
        nargs="+",
        default=None,
        metavar="COLUMN",
        help="columns to group by (default: source, then source and campaign)",
    )
    channels.add_argument(
        "--costs",
        type=Path,
        default=None,
        help="CSV with channel and spend (default: costs.csv in --data, if any)",
    )
    channels.add_argument(
        "--deal-value",
        type=float,
        default=None,
        help="value of a won deal, for value per lead and ROI",
    )
    channels.add_argument(
        "--out",
        type=Path,
        default=Path("data/channel_report.csv"),
        help="CSV to write (default: data/channel_report.csv)",
    )
    channels.set_defaults(func=run_channels)

    model = reports.add_parser(
        "model",
        help="a self-contained HTML report of one trained model",
        description="One HTML page for a training run: the data and leakage checks, the model "
        "against its baselines, ROC, precision-recall, reliability and gains charts, the "
        "stage funnel, SHAP drivers, fit against engagement and channels. Figures are "
        "embedded, so the file opens offline. Also logged to the run as report.html.",
    )
    model.add_argument("--run", required=True, metavar="RUN_ID", help="MLflow run id of a training")
    model.add_argument(
        "--out",
        type=Path,
        default=Path("reports/model_report.html"),
        metavar="FILE",
        help="HTML file to write (default: reports/model_report.html)",
    )
    model.add_argument(
        "--tracking-uri",
        default=None,
        metavar="URI",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )
    model.add_argument(
        "--no-log", action="store_true", help="do not log the report to the run as report.html"
    )
    model.set_defaults(func=run_model)


def run_channels(args: argparse.Namespace) -> int:
    scored = read_scored_leads(args.target)
    costs_path = args.costs
    if args.spec:
        spec = load_spec(args.spec, data_root=args.data_root)
        attributes = read_flat_table(spec).rename(columns={spec.id: "lead_id"})
        attributes["lead_id"] = attributes["lead_id"].astype("string").astype(str)
        if not args.by:
            raise DataError(
                "--by is needed with --spec", "Name the channel column, e.g. --by 'Lead Source'."
            )
    else:
        leads_file = find_event_table(Path(args.data), "leads")
        if leads_file is None:
            raise DataError(f"{args.data} has no leads table", "Point --data at the event folder.")
        attributes = read_table(leads_file)
        attributes["lead_id"] = attributes["lead_id"].astype("string").astype(str)
        if costs_path is None and (Path(args.data) / "costs.csv").exists():
            costs_path = Path(args.data) / "costs.csv"
    spend = read_table(costs_path) if costs_path is not None else None
    groupings = [args.by] if args.by else [["source"], ["source", "campaign"]]
    frames = []
    for by in groupings:
        report = channel_report(scored, attributes, by=by, spend=spend, deal_value=args.deal_value)
        print(format_report(report), end="\n\n")
        frames.append(report)
    combined = pd.concat(
        [f.assign(grouped_by=" / ".join(by)) for f, by in zip(frames, groupings, strict=True)],
        ignore_index=True,
    )
    write_table(combined, args.out)
    print(f"written to {args.out}")
    return 0


def run_model(args: argparse.Namespace) -> int:
    from leadscore.html_report import write_model_report

    out = write_model_report(
        args.run, args.out, tracking_uri=args.tracking_uri, log_to_run=not args.no_log
    )
    print(f"model report written to {out}")
    return 0
