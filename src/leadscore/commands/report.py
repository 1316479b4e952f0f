"""``leadscore report``: views for marketing ops."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from leadscore.commands.validate import add_data_arguments
from leadscore.datasets import read_flat_table
from leadscore.errors import DataError
from leadscore.io import (
    DUCKDB_SUFFIXES,
    EVENT_TEXT_COLUMNS,
    NoSuchTableError,
    find_event_table,
    is_sql_url,
    read_table,
    write_table,
)
from leadscore.reports import channel_report, format_report, open_scored_leads
from leadscore.schema import ClosedLoopData, validate_closed_loop
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
        events = load_leads_and_outcomes(args.data)
        scored = open_scored_for_report(events, args.data, args.target)
        attributes = events.leads
        folder = Path(args.data)
        if costs_path is None and folder.is_dir() and (folder / "costs.csv").exists():
            costs_path = folder / "costs.csv"
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


def load_leads_and_outcomes(source: str) -> ClosedLoopData:
    """The validated leads and outcomes of event-form ``source``, in any form ``--data`` takes.

    A folder (``leads`` and ``outcomes`` as ``.parquet`` or ``.csv``), a DuckDB file or a
    database URL, read by the rules of :func:`leadscore.io.load_closed_loop`: CSV ids and
    country codes as written (``000123`` keeps its zeros, Namibia's ``NA`` is a country, not a
    missing value) and ids as text, so they match ``scored_leads.lead_id`` exactly as the
    scorer wrote them. Unlike that loader it skips the activity log, by far the largest table,
    which a channel report never looks at (the returned ``activities`` are empty).
    """
    path = Path(source)
    frames: dict[str, pd.DataFrame | None] = dict.fromkeys(REPORT_TABLES)
    if is_sql_url(source) or path.suffix.lower() in DUCKDB_SUFFIXES:
        for name in REPORT_TABLES:
            try:
                frames[name] = read_table(source, name)
            except NoSuchTableError as err:
                if name == "leads":
                    raise DataError(
                        err.problem,
                        "Point --data at event-form data: a folder with leads.parquet or "
                        "leads.csv, or a DuckDB file or database with a leads table.",
                    ) from err
    elif path.is_dir():
        for name in REPORT_TABLES:
            found = find_event_table(path, name)
            if found is None and name == "leads":
                raise DataError(
                    f"{path} has no leads.parquet or leads.csv",
                    "Point --data at the event folder the leads were scored from.",
                )
            if found is not None:
                frames[name] = read_table(found, text_columns=EVENT_TEXT_COLUMNS[name])
    else:
        raise DataError(
            f"{path} is not a folder of event tables, a DuckDB file or a database URL",
            "Give the --data the leads were scored from (e.g. data/synthetic).",
        )
    return validate_closed_loop(frames["leads"], None, frames["outcomes"])


def open_scored_for_report(events: ClosedLoopData, data: str, target: str) -> pd.DataFrame:
    """The scored leads of ``events`` open at the report's moment, with a log line per kind of
    row left out (see :func:`leadscore.reports.open_scored_leads` for the rule).

    A report that silently counted fewer leads than ``scored_leads`` holds would look wrong;
    one with nothing left to count is an error naming the likely mistake.
    """
    scored = read_scored_leads(target)
    where = _shown(target)
    if scored.empty:
        raise DataError(
            f"{where} holds no scored leads",
            f"Score the data first: leadscore score --data {_shown(data)} --target {where}.",
        )
    picked = open_scored_leads(scored, events.leads["lead_id"], events.outcomes)
    if picked.other_data:
        logger.info(
            "left out %s of %s scored lead(s) in %s: not leads of %s (another data set's)",
            f"{picked.other_data:,}",
            f"{len(scored):,}",
            where,
            _shown(data),
        )
    if picked.closed:
        logger.info(
            "left out %s scored lead(s) of %s closed (won or lost) at or before %s, its latest "
            "scoring",
            f"{picked.closed:,}",
            _shown(data),
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
            f"none of the {len(scored):,} scored leads in {where} is a lead of {_shown(data)}",
            f"Score that data first (leadscore score --data {_shown(data)} --target {where}), "
            "or name the --target it was scored into.",
        )
    if picked.scored.empty:
        raise DataError(
            f"all {picked.closed:,} scored leads of {_shown(data)} in {where} were closed (won "
            f"or lost) by {picked.moment}, their latest scoring",
            f"Score its open leads again: leadscore score --data {_shown(data)} --target {where}.",
        )
    return picked.scored


def _shown(source: str) -> str:
    """``source`` for messages and the commands they suggest: a database URL with its password
    masked, so that an error line can be pasted into a ticket."""
    if not is_sql_url(source):
        return source
    import sqlalchemy as sa

    try:
        return sa.engine.make_url(source).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return source.split("@")[-1]


def run_model(args: argparse.Namespace) -> int:
    from leadscore.html_report import write_model_report

    out = write_model_report(
        args.run, args.out, tracking_uri=args.tracking_uri, log_to_run=not args.no_log
    )
    print(f"model report written to {out}")
    return 0
