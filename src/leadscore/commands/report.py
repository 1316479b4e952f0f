"""``leadscore report``: views for marketing ops."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from leadscore.commands.validate import add_data_arguments
from leadscore.datasets import read_flat_table
from leadscore.errors import DataError
from leadscore.io import load_closed_loop, read_table, shown_url, write_table
from leadscore.reports import channel_report, format_report, open_scored_leads
from leadscore.schema import ClosedLoopData
from leadscore.sinks import DEFAULT_TARGET, read_scored_leads
from leadscore.specs import load_spec

logger = logging.getLogger(__name__)

#: The event tables a channel report reads: the attributes to group by and the outcomes that
#: tell which scored leads have closed. The activity log is not needed.
REPORT_TABLES: tuple[str, ...] = ("leads", "outcomes")


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
        "per lead, per MQL and per expected win. Printed as a table and written as CSV. With "
        "--data, only the scored leads of that data that are open at its latest scoring "
        "(as_of) count: leads of other data sets in the target, and leads won or lost at or "
        "before that moment, are left out (logged).",
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
    costs_path = args.costs
    if args.spec:
        scored = read_scored_leads(args.target)
        spec = load_spec(args.spec, data_root=args.data_root)
        attributes = read_flat_table(spec).rename(columns={spec.id: "lead_id"})
        attributes["lead_id"] = attributes["lead_id"].astype("string").astype(str)
        if not args.by:
            raise DataError(
                "--by is needed with --spec", "Name the channel column, e.g. --by 'Lead Source'."
            )
    else:
        # the activity log, by far the largest table, is never looked at here
        events = load_closed_loop(args.data, tables=REPORT_TABLES)
        scored = open_scored_for_report(events, args.data, args.target)
        attributes = events.leads
        folder = Path(args.data)
        if costs_path is None and folder.is_dir() and (folder / "costs.csv").exists():
            costs_path = folder / "costs.csv"
    spend = read_table(costs_path) if costs_path is not None else None
    groupings = [args.by] if args.by else [["source"], ["source", "campaign"]]
    if spend is not None and args.by and len(args.by) > 1:
        logger.warning(
            "no cost column for %s: spend is per channel, and splitting it across %s would "
            "invent numbers; --by %s shows the costs",
            " / ".join(args.by),
            args.by[-1],
            args.by[0],
        )
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


def open_scored_for_report(events: ClosedLoopData, data: str, target: str) -> pd.DataFrame:
    """The scored leads of ``events`` open at the report's moment, with a log line per kind of
    row left out (see :func:`leadscore.reports.open_scored_leads` for the rule).

    A report that silently counted fewer leads than ``scored_leads`` holds would look wrong;
    one with nothing left to count is an error naming the likely mistake.
    """
    scored = read_scored_leads(target)
    where = shown_url(target)
    if scored.empty:
        raise DataError(
            f"{where} holds no scored leads",
            f"Score the data first: leadscore score --data {shown_url(data)} --target {where}.",
        )
    picked = open_scored_leads(scored, events.leads["lead_id"], events.outcomes)
    if picked.other_data:
        logger.info(
            "left out %s of %s scored lead(s) in %s: not leads of %s (another data set's)",
            f"{picked.other_data:,}",
            f"{len(scored):,}",
            where,
            shown_url(data),
        )
    if picked.closed:
        logger.info(
            "left out %s scored lead(s) of %s closed (won or lost) at or before %s, its latest "
            "scoring",
            f"{picked.closed:,}",
            shown_url(data),
            picked.moment,
        )
    if picked.closed_later:
        logger.info(
            "%s lead(s) closed after %s still count: they were open then; score again to "
            "report on a later moment",
            f"{picked.closed_later:,}",
            picked.moment,
        )
    if picked.of_data == 0:
        raise DataError(
            f"none of the {len(scored):,} scored leads in {where} is a lead of {shown_url(data)}",
            f"Score that data first (leadscore score --data {shown_url(data)} --target {where}), "
            "or name the --target it was scored into.",
        )
    if picked.scored.empty:
        raise DataError(
            f"all {picked.closed:,} scored leads of {shown_url(data)} in {where} were closed (won "
            f"or lost) by {picked.moment}, their latest scoring",
            "Score its open leads again: "
            f"leadscore score --data {shown_url(data)} --target {where}.",
        )
    return picked.scored


def run_model(args: argparse.Namespace) -> int:
    from leadscore.html_report import write_model_report

    out = write_model_report(
        args.run, args.out, tracking_uri=args.tracking_uri, log_to_run=not args.no_log
    )
    print(f"model report written to {out}")
    return 0
