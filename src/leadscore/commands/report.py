"""``leadscore report``: views for marketing ops."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from leadscore.cli import complete_later
from leadscore.commands.score import add_input_arguments
from leadscore.commands.validate import add_data_arguments
from leadscore.errors import DataError, ModelError, shortened_list

# The reports' modules (pandas, DuckDB, the model) are imported by the handlers: registering
# this command must stay cheap (see leadscore.cli).
if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from leadscore.schema import ClosedLoopData
    from leadscore.scoring import ScoringModel
    from leadscore.specs import DatasetSpec

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
        "rates, expected wins (sum of calibrated probabilities) and, with a costs file, spend, "
        "all_leads (every lead the channel brought, closed ones included), cost per lead "
        "(spend over all_leads), "
        "spend_scored (the scored leads' share of the spend: cost per lead x scored leads), "
        "and cost per MQL and per expected win (spend_scored over those). With --deal-value, "
        "value per lead and, with costs, ROI: (expected wins x deal value - spend_scored) / "
        "spend_scored, printed as a percentage like the rates (0% breaks even, -68% loses "
        "68% of the spend; the CSV holds the ratio: 150% is 1.5). Printed as a table "
        "ending in a total row of every channel (and, where some channel has no spend, a "
        "'with spend' row of those that have one, the basis of the cost totals), and "
        "written as CSV without them. With --data, only the scored "
        "leads of that data that are open at its latest scoring (as_of) count: leads of other "
        "data sets in the target, and leads won or lost at or before that moment, are left "
        "out (logged).",
    )
    add_data_arguments(channels)
    _add_target(channels)
    channels.add_argument(
        "--by",
        nargs="+",
        default=None,
        metavar="COLUMN",
        help="columns to group by (default: with --data, source, then source and campaign; "
        "with --spec, the one column whose name reads as the channel, such as Lead Source, "
        "Original Source or Channel, a source or channel winning over an origin)",
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
        help="value of a won deal (a positive amount), for value per lead (and ROI, with "
        "costs: printed as a percentage, written to the CSV as a ratio)",
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
    model.add_argument(
        "--run",
        required=True,
        metavar="RUN",
        help="MLflow run id of a training, or a registered model: its name (its champion, "
        "e.g. leadscore-crm) or models:/NAME@ALIAS or models:/NAME/VERSION",
    )
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

    backtest = reports.add_parser(
        "backtest",
        help="how each scoring run's scores and stages did, once the outcomes are in",
        description="Every run in scored_leads_history against the outcomes known now: leads, "
        "wins against expected wins (the sum of probabilities), ROC-AUC, Brier, ECE (beside "
        "what chance gives a perfect model on that many leads), lift, and per stage the count, "
        "conversion and share of wins. Event data: a run counts the wins within --horizon-days "
        "after its as-of and is measured once that window has ended (before, it is pending, "
        "with its wins so far). Flat data: each lead's label in the spec's table now; the "
        "leads still open are left out, with the share resolved beside the figures.",
    )
    add_data_arguments(backtest)
    _add_target(backtest)
    horizon = backtest.add_argument(
        "--horizon-days",
        type=int,
        default=None,
        metavar="N",
        help="event data: the window the model was trained on (train's events.horizon_days)",
    )

    def complete_horizon() -> None:
        from leadscore.config import EventConfig

        horizon.help = f"{horizon.help}; default {EventConfig().horizon_days}"

    complete_later(backtest, complete_horizon)
    backtest.add_argument(
        "--observed-until",
        default=None,
        metavar="TIME",
        help="event data: the moment the outcomes are complete up to, no later than now "
        "(default: the folder's manifest.json, else the latest timestamp of the leads and "
        "outcomes; a moment past that end is warned about)",
    )
    backtest.add_argument(
        "--model",
        default=None,
        metavar="URI",
        help="event data: the model the runs were scored with (a folder or models:/...); the "
        "runs are judged on the horizon it was trained on, so --horizon-days may be left out",
    )
    backtest.add_argument(
        "--tracking-uri",
        default=None,
        metavar="URI",
        help="MLflow tracking URI for a models:/ --model (default: $MLFLOW_TRACKING_URI, else "
        "sqlite:///mlflow.db)",
    )
    backtest.add_argument(
        "--model-name",
        default=None,
        metavar="NAME",
        help="only the runs of this model (the scored table's model_name)",
    )
    backtest.add_argument(
        "--by",
        default=None,
        metavar="COLUMN",
        help="also judge each run per value of this lead column (e.g. source, or a flat "
        "table's Lead Source): which channels' leads the model over- or under-promises",
    )
    backtest.add_argument(
        "--out",
        type=Path,
        default=Path("data/backtest.csv"),
        help="CSV to write (default: data/backtest.csv)",
    )
    backtest.set_defaults(func=run_backtest)

    drift = reports.add_parser(
        "drift",
        help="how today's open leads differ from those the model was tested on (PSI)",
        description="Compares the open leads as of a moment with the model's test fold, input "
        "by input and for the probability and stage: the population stability index (PSI), "
        "what chance alone gives on that many leads, and the bucket that moved most. Below "
        "0.1 (or within chance) stable, to 0.25 watch, above shifted. Nothing is written to "
        "the scored tables.",
    )
    add_data_arguments(drift)
    add_input_arguments(drift, "to compare")
    drift.add_argument(
        "--model",
        default=None,
        metavar="URI",
        help="the model to compare with (default: the champion, as for score)",
    )
    drift.add_argument(
        "--as-of",
        default=None,
        metavar="TIME",
        help="event data: the open leads at this moment (default: the data's observed_until)",
    )
    drift.add_argument(
        "--tracking-uri",
        default=None,
        metavar="URI",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )
    drift.add_argument(
        "--out",
        type=Path,
        default=Path("data/drift_report.csv"),
        help="CSV to write (default: data/drift_report.csv)",
    )
    drift.set_defaults(func=run_drift)


def _add_target(parser: argparse.ArgumentParser) -> None:
    """``--target``, whose default (the sinks' scored-leads file) is filled in when used."""
    parser.add_argument("--target", help="where the scores are kept (default: %(default)s)")

    def complete() -> None:
        from leadscore.sinks import DEFAULT_TARGET

        parser.set_defaults(target=DEFAULT_TARGET)

    complete_later(parser, complete)


def check_table_out(out: Path) -> None:
    """Refuse, before any work, an ``--out`` a report cannot be written to: a folder, a name
    that is no ``.csv`` or ``.parquet`` file (``x.xlsx`` had been refused only once the whole
    report was computed and printed), a file where one of its folders goes, or a folder that
    takes no new file."""
    from leadscore.io import TABLE_SUFFIXES, check_folder_takes_files, check_output_path

    check_output_path(out, "--out")
    if out.suffix.lower() not in TABLE_SUFFIXES:
        what = f"not {out.suffix!r}" if out.suffix else "and the name has no suffix"
        raise DataError(
            f"--out {out}: a report is written as .csv or .parquet, {what}",
            "Write to a .csv file (a spreadsheet opens it) or a .parquet file.",
        )
    check_folder_takes_files(
        out, "Write into a folder that exists or can be created, and that you may write to."
    )


def backtest_observed_until(text: str, *, now: pd.Timestamp | None = None) -> pd.Timestamp:
    """``report backtest --observed-until`` as a moment (tz-naive UTC), refused when it is
    after the current time (``now``, default: the current time, UTC) by more than the day
    :func:`~leadscore.timestamps.future_cutoff` allows.

    Outcomes after now are not known: with 2099, every run read as complete and its leads as
    lost, and a run was called out for "0 won against 23.6 expected", a false alarm."""
    from leadscore.features import parse_timestamp
    from leadscore.timestamps import future_cutoff, utc_now

    until = parse_timestamp(text, "--observed-until")
    now = utc_now() if now is None else now
    if until > future_cutoff(now):
        raise DataError(
            f"--observed-until {until:%Y-%m-%d %H:%M} is in the future (it is "
            f"{now:%Y-%m-%d %H:%M} UTC now): outcomes after now are not known",
            "Give the moment the outcomes are complete up to, no later than the data's end, or "
            "leave --observed-until out to take that end (the folder's manifest.json, else the "
            "latest timestamp of the leads and outcomes).",
        )
    return until


def data_end(events: ClosedLoopData, data: str) -> tuple[pd.Timestamp, str]:
    """The end of what ``events`` (read from ``data``) can know, and how it is named: the
    moment ``data``'s ``manifest.json`` declares, else the latest timestamp of the leads and
    outcomes read (the default ``observed_until`` of ``report backtest``); the later of both
    where the manifest is older than a row."""
    import pandas as pd

    from leadscore.timestamps import manifest_observed_until, naive_utc, parse_observed_until

    moments = [events.leads["created_at"].max()]
    if not events.outcomes.empty:
        moments.append(events.outcomes["closed_at"].max())
    latest = pd.Timestamp(max(moments))
    path = Path(data)
    declared = manifest_observed_until(path) if path.is_dir() else None
    if declared is not None:
        moment = naive_utc(parse_observed_until(declared))
        if moment >= latest:
            return moment, f"{path / 'manifest.json'}'s observed_until"
    return latest, "the latest timestamp of its leads and outcomes"


def warn_past_data_end(until: pd.Timestamp, events: ClosedLoopData, data: str) -> None:
    """Warn when ``report backtest --observed-until`` is more than a day after the data's
    end (:func:`data_end`): outcomes after it are not in the data, so a run whose window
    ends between the two is judged complete with its later wins missing, and reads as
    having promised more wins than came."""
    from leadscore.features import AS_OF_GAP_TOLERANCE, gap_in_days
    from leadscore.io import shown_url

    end, named = data_end(events, data)
    gap = until - end
    if gap <= AS_OF_GAP_TOLERANCE:
        return
    logger.warning(
        "--observed-until %s is %s after the end of %s (%s, %s): outcomes after it are not in "
        "the data, so a run whose window ends between the two is judged complete with its "
        "later wins missing; leave --observed-until out, or back-test a newer extract",
        f"{until:%Y-%m-%d %H:%M}",
        gap_in_days(gap),
        shown_url(data),
        f"{end:%Y-%m-%d %H:%M}",
        named,
    )


def run_channels(args: argparse.Namespace) -> int:
    import pandas as pd

    from leadscore.datasets import mark_missing, read_flat_table
    from leadscore.io import TABLE_SUFFIXES, load_closed_loop, read_table, write_table
    from leadscore.reports import (
        COSTS_FILE,
        RANK_NOTE,
        channel_report,
        channel_total,
        check_deal_value,
        costs_table,
        format_legend,
        format_report,
        total_note,
    )
    from leadscore.sinks import read_scored_leads
    from leadscore.specs import load_spec

    check_table_out(args.out)
    check_deal_value(args.deal_value, "--deal-value")
    costs_path = args.costs
    if costs_path is not None and costs_path.suffix.lower() not in TABLE_SUFFIXES:
        # a DuckDB file would be asked for a table there is no option to name
        raise DataError(
            f"--costs {costs_path}: a costs file is a .csv or .parquet file",
            "Export the channel and spend columns as CSV.",
        )
    if costs_path is None and not args.spec and args.data is not None:
        folder = Path(args.data)
        if folder.is_dir() and (folder / "costs.csv").exists():
            costs_path = folder / "costs.csv"
            logger.info(
                "spend from %s, the data folder's costs file (--costs FILE reads another)",
                costs_path,
            )
    spend = read_table(costs_path) if costs_path is not None else None
    if spend is not None:  # a mistake in it is named before the data is read
        costs_table(spend, str(costs_path))
    if args.spec:
        scored = read_scored_leads(args.target)
        spec = load_spec(args.spec, data_root=args.data_root)
        # the spec's "not answered" tokens are missing, as the model reads them: N/A is (none)
        table = mark_missing(read_flat_table(spec), spec.missing_values, as_written=(spec.id,))
        for column in args.by or ():
            require_by_column(table, column, spec.id, _by_table(spec))
        attributes = table.rename(columns={spec.id: "lead_id"})
        attributes["lead_id"] = attributes["lead_id"].astype("string").astype(str)
        by = args.by or [flat_channel_column(spec, list(attributes.columns))]
    else:
        by = args.by
        # the activity log, by far the largest table, is never looked at here
        events = load_closed_loop(args.data, tables=REPORT_TABLES)
        for column in by or ():
            require_by_column(events.leads, column, "lead_id", _by_table(None))
        scored = open_scored_for_report(events, args.data, args.target)
        attributes = events.leads
    groupings = [by] if by else [["source"], ["source", "campaign"]]
    if spend is not None and by and len(by) > 1:
        logger.warning(
            "no cost column for %s: spend is per channel, and splitting it across %s would "
            "invent numbers; --by %s shows the costs",
            " / ".join(by),
            by[-1],
            by[0],
        )
    frames = []
    for grouping in groupings:
        report = channel_report(
            scored,
            attributes,
            by=grouping,
            spend=spend,
            deal_value=args.deal_value,
            spend_source=str(costs_path) if costs_path is not None else COSTS_FILE,
        )
        total = channel_total(report, grouping, deal_value=args.deal_value)
        note = total_note(report, grouping)
        print(format_report(report, total), end="\n\n" if note is None else "\n")
        if note is not None:
            print(note, end="\n\n")
        frames.append(report)
    print(RANK_NOTE)
    print("columns:")
    columns = list(dict.fromkeys(c for f in frames for c in f.columns))
    horizon = None if args.spec else "the model's horizon"
    print(format_legend(columns, horizon=horizon), end="\n\n")
    combined = pd.concat(
        [f.assign(grouped_by=" / ".join(g)) for f, g in zip(frames, groupings, strict=True)],
        ignore_index=True,
    )
    write_table(combined, args.out)
    print(f"written to {args.out}")
    return 0


def flat_channel_column(spec: DatasetSpec, columns: list[str]) -> str:
    """The channel column of a flat spec's table, for ``report channels --spec`` without
    ``--by``: the one :func:`leadscore.reports.channel_column` finds, the rule the model
    report's channel table follows too, so both group by one column.

    The id, the label and the spec's excluded columns are no candidates: an excluded
    ``Latest Source`` (set after contact) must not make ``Original Source`` ambiguous, and the
    model report, which sees the features only, would not weigh it either. ``--by`` still
    takes any column. With several candidates in the winning tier, or none, this asks for
    ``--by``, naming the candidates.
    """
    import shlex

    from leadscore.reports import channel_candidates, channel_column, channel_columns

    left_out = {spec.id, spec.label.column, *spec.exclude}
    eligible = [c for c in columns if c not in left_out and c != "lead_id"]
    column = channel_column(eligible)
    if column is None:
        tied = channel_candidates(eligible)
        if tied:
            raise DataError(
                f"--by is needed with --spec {spec.name}: several columns read as the channel "
                f"({shortened_list([repr(c) for c in tied])})",
                f"Name the one to group by, e.g. --by {shlex.quote(tied[0])}.",
            )
        raise DataError(
            f"--by is needed with --spec {spec.name}: no column reads as the channel (a name "
            "ending in source, channel or origin)",
            "Name the column to group by, e.g. --by 'Lead Source'.",
        )
    others = [c for tier in channel_columns(eligible) for c in tier if c != column]
    logger.info(
        "grouping by %r, the column of %s that reads as the channel%s; --by names another",
        column,
        spec.name,
        f" (also read so, but ranked lower: {', '.join(map(repr, others))})" if others else "",
    )
    return column


def open_scored_for_report(events: ClosedLoopData, data: str, target: str) -> pd.DataFrame:
    """The scored leads of ``events`` open at the report's moment, with a log line per kind of
    row left out (see :func:`leadscore.reports.open_scored_leads` for the rule).

    A report that silently counted fewer leads than ``scored_leads`` holds would look wrong;
    one with nothing left to count is an error naming the likely mistake.
    """
    from leadscore.io import shown_url
    from leadscore.reports import open_scored_leads
    from leadscore.sinks import read_scored_leads

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
    from leadscore.tracking import resolve_run

    run_id = resolve_run(args.run, args.tracking_uri)
    out = write_model_report(
        run_id, args.out, tracking_uri=args.tracking_uri, log_to_run=not args.no_log
    )
    print(f"model report written to {out}")
    return 0


def run_backtest(args: argparse.Namespace) -> int:
    import pandas as pd

    from leadscore.datasets import prepare_flat_dataset, read_flat_table
    from leadscore.io import load_closed_loop, shown_url, write_table
    from leadscore.monitoring import backtest_runs, event_outcomes, flat_outcomes, format_backtest
    from leadscore.schema import to_lead_ids
    from leadscore.sinks import read_history
    from leadscore.specs import load_spec

    check_table_out(args.out)
    until = None
    if args.observed_until is not None and not args.spec:
        until = backtest_observed_until(args.observed_until)
    history = read_history(args.target)
    where = shown_url(args.target)
    if args.model_name is not None:
        names = sorted(history["model_name"].unique())
        history = history[history["model_name"] == args.model_name]
        if history.empty:
            raise DataError(
                f"{where} holds no run of model {args.model_name!r} (it holds {names})",
                "Name one of those models, or leave --model-name out.",
            )
    if args.spec:
        if args.horizon_days is not None or args.observed_until is not None or args.model:
            raise DataError(
                "--horizon-days, --observed-until and --model go with --data",
                "Flat data is labelled by its spec; leave them out.",
            )
        spec = load_spec(args.spec, data_root=args.data_root)
        table_source = read_flat_table(spec)
        if args.by:
            _require_backtest_by(table_source, args.by, spec.id, _by_table(spec))
        # every lead's label as it stands now: label.observed_from/observed_until bound the
        # training window (the newest leads, still deciding, left out), not what the runs
        # are judged on; with within_days, observed_until is the extract date and stays
        if spec.label.within_days is None:
            unbounded = spec.label.model_copy(
                update={"observed_from": None, "observed_until": None}
            )
            spec = spec.model_copy(update={"label": unbounded})
        dataset = prepare_flat_dataset(table_source, spec, check_close_fields=False)
        labels = pd.Series(dataset.y, index=dataset.lead_id.astype(str).to_numpy())
        # every lead of the table, labelled or open, ids as written (as training and scoring)
        leads = to_lead_ids(table_source[spec.id].dropna(), spec.name, spec.id)
        source = spec.name
    else:
        # a model that does not load fails before the data is read
        horizon, whose, scoring = _backtest_horizon(args)
        if scoring is not None:
            history = _runs_of_model(history, scoring, where)
        events = load_closed_loop(args.data, tables=REPORT_TABLES, observed_until=until)
        if until is not None:
            warn_past_data_end(until, events, args.data)
        if args.by:
            _require_backtest_by(events.leads, args.by, "lead_id", _by_table(None))
        leads = events.leads["lead_id"].astype(str)
        source = shown_url(args.data)
    ours = history["lead_id"].isin(set(leads))
    if not ours.any():
        raise DataError(
            f"none of the {len(history):,} scored rows in {where} is a lead of {source}",
            "Name the --target that data was scored into, or score it first.",
        )
    if not ours.all():
        logger.info(
            "left out %s scored row(s) of leads not in %s (another data set's)",
            f"{int((~ours).sum()):,}",
            source,
        )
    history = history[ours]
    if args.spec:
        labelled = flat_outcomes(history, labels)
    else:
        labelled = event_outcomes(history, events.outcomes, events.observed_until, horizon)
        if labelled.empty:
            raise DataError(
                f"every one of the {len(history):,} scored rows is of a lead already closed at "
                "its run's as-of (scored from data older than its outcomes): nothing to judge",
                "Score the open leads of a current export, then back-test once their "
                "outcomes are in.",
            )
        print(
            f"outcomes of {source} observed until {events.observed_until:%Y-%m-%d}; a run is "
            f"judged on the wins within {horizon} days of its as-of ({whose})"
        )
    table = backtest_runs(labelled)
    print(format_backtest(table))
    if args.by:
        if args.spec:  # --by was checked against the leads before the runs were judged
            given = table_source[spec.id].notna()
            ids = to_lead_ids(table_source.loc[given, spec.id], spec.name, spec.id)
            values = table_source.loc[given, args.by]
        else:
            ids, values = events.leads["lead_id"].astype(str), events.leads[args.by]
        labelled[args.by] = _lead_groups(ids, values, args.by, labelled["lead_id"])
        by_group = backtest_runs(labelled, by=args.by)
        print(f"\nby {args.by}:")
        print(format_backtest(by_group, by=args.by))
        table = pd.concat([table, by_group], ignore_index=True)
    write_table(table, args.out)
    print(f"written to {args.out}")
    return 0


def _backtest_horizon(args: argparse.Namespace) -> tuple[int, str, ScoringModel | None]:
    """The window after each run's as-of whose wins judge it, whose window it is in words,
    and the ``--model`` loaded (``None`` without one).

    The model's own ``horizon_days`` with ``--model``: judged on 90 days, a model trained to
    predict wins within 60 promises fewer wins than the window brings, and every run reads as
    over-delivering beyond chance. A ``--horizon-days`` that differs from the model's is
    refused; without either, the default, said as such in the printed line.
    """
    from leadscore.config import EventConfig
    from leadscore.scoring import check_data_form, load_scoring_model
    from leadscore.sinks import shown_model

    given = args.horizon_days
    if args.model is None:
        if given is not None:
            return given, "--horizon-days", None
        return EventConfig().horizon_days, "the default: give --model to use the model's own", None
    scoring = load_scoring_model(args.model, tracking_uri=args.tracking_uri)
    check_data_form(scoring, flat=False)
    shown = shown_model(scoring.name, scoring.version)
    trained = scoring.model.metadata.get("horizon_days")
    if trained is None:
        raise DataError(
            f"model {shown} records no horizon",
            "Give --horizon-days, train's events.horizon_days for that model.",
        )
    if given is not None and given != trained:
        raise DataError(
            f"--horizon-days {given} differs from the {trained} days model {shown} was "
            "trained to predict",
            "Leave --horizon-days out to judge the runs on the model's own horizon.",
        )
    return int(trained), f"the horizon of {shown}", scoring


def _runs_of_model(history: pd.DataFrame, scoring: ScoringModel, where: str) -> pd.DataFrame:
    """The rows of ``history`` that ``--model`` scored (its name and version): its horizon
    judges them, and another model's runs in the same target were trained on their own (a
    120-day model's runs judged on a 60-day model's window)."""
    from leadscore.sinks import shown_model

    mine = (history["model_name"] == scoring.name) & (
        history["model_version"].astype(str) == str(scoring.version)
    )
    if not mine.any():
        pairs = zip(history["model_name"], history["model_version"], strict=True)
        held = sorted({shown_model(n, v) for n, v in pairs})
        raise DataError(
            f"{where} holds no run of model {shown_model(scoring.name, scoring.version)} (it "
            f"holds {', '.join(held[:5])}{', ...' if len(held) > 5 else ''})",
            "Give --model the model that scored the runs, or --horizon-days without --model.",
        )
    return history[mine]


#: Most distinct values a ``report backtest --by`` column may hold: a channel or a campaign,
#: not an amount, whose groups of a lead or two would each get a verdict of their own.
MAX_BY_VALUES = 50


def require_by_column(leads: pd.DataFrame, column: str, id_column: str, table: str) -> None:
    """A one-line error for a ``--by`` column that ``leads`` (``table``, as the message names
    them) lacks, with the closest of its columns and the ones to name.

    Shared by ``report channels`` and ``report backtest``: a hint that names event data's
    ``source`` to a user of flat data, whose column is ``Lead Source``, failed again when
    followed. The id is no grouping: each lead would be a group of one.
    """
    from leadscore.names import closest_names

    if column not in leads.columns or column == id_column:
        known = [str(c) for c in leads.columns if c != id_column]
        raise DataError(
            f"--by {column!r}: {table} have no such column{closest_names(column, known)}",
            f"Name one of their columns: {shortened_list([repr(c) for c in known], 12)}.",
        )


def _by_table(spec: DatasetSpec | None) -> str:
    """How a ``--by`` error names the leads grouped: the spec's table, or event data's."""
    return f"the leads of spec {spec.name!r}" if spec is not None else "the leads"


def _require_backtest_by(leads: pd.DataFrame, column: str, id_column: str, table: str) -> None:
    """``report backtest --by``: a column of ``leads`` (:func:`require_by_column`) of a few
    categories, checked before the runs are judged, so that a typo does not cost the wait."""
    require_by_column(leads, column, id_column, table)
    distinct = leads[column].nunique(dropna=True)
    if distinct > MAX_BY_VALUES:
        raise DataError(
            f"--by {column!r} holds {distinct:,} distinct values: each would be a group of a "
            "few leads",
            f"Group by a column of at most {MAX_BY_VALUES} categories, such as a channel or a "
            "campaign.",
        )


def _lead_groups(ids: pd.Series, values: pd.Series, column: str, lead_ids: pd.Series) -> np.ndarray:
    """The group (``values`` of the leads ``ids``) of each of ``lead_ids``, as the channel
    report groups them (:func:`leadscore.reports.grouped_values`); a lead without one is
    "(none)"."""
    import pandas as pd

    from leadscore.reports import grouped_values

    grouped = grouped_values(values, column)
    by_lead = pd.Series(grouped.to_numpy(), index=ids.astype(str).to_numpy())
    by_lead = by_lead[~by_lead.index.duplicated(keep="last")]
    return by_lead.reindex(lead_ids.astype(str)).fillna("(none)").to_numpy()


def run_drift(args: argparse.Namespace) -> int:
    from leadscore.commands.score import (
        check_input_arguments,
        default_as_of,
        default_model_uri,
        open_lead_chunks,
    )
    from leadscore.features import parse_as_of
    from leadscore.io import write_table
    from leadscore.monitoring import (
        PSI_SHIFTED,
        SizeCheck,
        add_value_counts,
        drift_verdict,
        format_drift,
    )
    from leadscore.scoring import check_data_form, load_scoring_model
    from leadscore.sinks import shown_model
    from leadscore.specs import load_spec

    check_table_out(args.out)
    check_input_arguments(args)
    spec = load_spec(args.spec, data_root=args.data_root) if args.spec else None
    if spec is not None and args.as_of is not None:
        raise DataError(
            "--as-of goes with --data", "Flat data is a snapshot: give --input instead."
        )
    given_as_of = parse_as_of(args.as_of) if args.as_of is not None else None
    scoring = load_scoring_model(
        args.model or default_model_uri(spec, args.data), tracking_uri=args.tracking_uri
    )
    check_data_form(scoring, flat=spec is not None)
    model = scoring.model
    reference = model.drift_reference
    if reference is None:
        raise ModelError(
            f"{shown_model(scoring.name, scoring.version)} holds no drift reference (it was "
            "trained before leadscore kept one)",
            "Retrain it with this leadscore: train keeps the test fold's distributions.",
        )
    if spec is not None:
        as_of = None
        moment = "now"
    else:
        as_of = given_as_of if given_as_of is not None else default_as_of(args.data)
        moment = f"as of {as_of:%Y-%m-%d %H:%M}"
    chunks = open_lead_chunks(
        spec,
        args.data,
        args.input,
        as_of,
        scoring,
        input_table=args.input_table,
        at_data_end=given_as_of is None,
    )
    counts: dict[str, np.ndarray] = {}
    others: dict[str, dict[str, int]] = {}
    sizes = SizeCheck(reference)
    n = 0
    for X, _ in chunks:
        prepared = model.prepare(X)
        probability = model.predict_proba(prepared, warn_unseen=False)
        part = reference.counts(prepared, probability, model.stages.transform(probability))
        counts = {k: counts.get(k, 0) + v for k, v in part.items()}
        add_value_counts(others, reference.other_values(prepared))
        sizes.add(prepared)
        n += len(X)
    if n == 0:
        raise DataError(f"no lead is open {moment}", "Give a moment when some leads were open.")
    table = reference.compare(
        counts, labels={f.name: f.label for f in model.features}, other_values=others
    )
    importance = model.metadata.get("feature_importance") or {}
    # event data holds a lead at several as-of dates: its test fold counts examples
    tested = "leads" if spec is not None else "examples"
    table["importance"] = table["item"].map(importance)
    print(
        f"{n:,} open leads {moment} against the {reference.n_:,} test-fold {tested} of "
        f"{shown_model(scoring.name, scoring.version)}"
    )
    print(format_drift(table, model.features))
    print(drift_verdict(table))
    shifted = table.loc[table["status"] == "shifted", "label"].tolist()
    if shifted:
        logger.warning(
            "%d of %d items shifted (PSI above %.2f and beyond chance): %s",
            len(shifted),
            len(table),
            PSI_SHIFTED,
            ", ".join(shifted[:5]) + (", ..." if len(shifted) > 5 else ""),
        )
    sizes.warn()
    write_table(table, args.out)
    print(f"written to {args.out}")
    return 0
