"""``leadscore score``: score open leads into the scored-leads tables."""

from __future__ import annotations

import argparse
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from leadscore.cli import complete_later
from leadscore.commands.validate import add_data_arguments
from leadscore.errors import DataError, ModelError, UsageError

# The scorer (LightGBM, SHAP, DuckDB) is imported by the handler: registering this command must
# stay cheap, since every command's parser is built on each call (see leadscore.cli).
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import pandas as pd

    from leadscore.scoring import ScoringModel, ScoringSummary
    from leadscore.specs import DatasetSpec

logger = logging.getLogger(__name__)

#: The registry name ``train`` registers under by default (``mlflow.registered_model``).
DEFAULT_REGISTERED_NAME = "leadscore"


def positive_int(text: str) -> int:
    """An argparse type for counts that must be at least 1 (``--chunk-size``): 0 or less is
    argparse's own one-line error, not a silent default or a failure deep in the reader."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value}")
    return value


def optional_text(text: str) -> str | None:
    """An option's value, where empty text means "not given" (as
    :func:`~leadscore.commands.optional_path` for paths).

    The MLproject passes every parameter of the ``score`` entry point, so ``--model ''`` and
    ``--as-of ''`` must leave the command's own defaults in place: the scored data set's
    champion and the data's end, not the synthetic demo's model and date.
    """
    return text if text.strip() else None


def add_input_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """``--input`` and ``--input-table``: the current leads of flat data, shared by ``score``
    and ``report drift``."""
    parser.add_argument(
        "--input",
        metavar="FILE_OR_URL",
        default=None,
        help=f"flat data: the current leads {what}: a .csv, .parquet or .duckdb file or a "
        "database URL (default: the spec's source)",
    )
    parser.add_argument(
        "--input-table",
        metavar="NAME",
        default=None,
        help="the table to read from the DuckDB file or database URL given as --input (the "
        "spec's table: and query: apply to the spec's own source only)",
    )


def check_input_arguments(args: argparse.Namespace) -> None:
    """One-line errors for ``--input`` and ``--input-table`` given where they do not apply."""
    from leadscore.io import TABLE_SUFFIXES, duckdb_url_file, is_sql_url

    if args.data is not None and (args.input is not None or args.input_table is not None):
        given = "--input" if args.input is not None else "--input-table"
        raise DataError(
            f"{given} goes with --spec (a flat table), not with --data",
            "Point --data at the event folder alone, or score a flat table with --spec.",
        )
    if args.input_table is not None and args.input is None:
        raise DataError(
            "--input-table names a table of --input, and no --input was given",
            "Give --input FILE_OR_URL too; the spec's own source takes its table from the "
            "spec (table: NAME).",
        )
    if args.input is None:
        return
    source = duckdb_url_file(args.input)
    suffix = "" if is_sql_url(source) else Path(source).suffix.lower()
    if args.input_table is not None and suffix in TABLE_SUFFIXES:
        raise DataError(
            f"--input-table names a table of a DuckDB file or database, and {args.input} is a "
            f"{suffix} file (one table)",
            "Leave out --input-table.",
        )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "score",
        help="score open leads with a trained model",
        description="Score every open lead as of a moment: calibrated probability, 0-100 score, "
        "stage, previous stage, fit and engagement sub-scores and the top reasons for and "
        "against. Writes scored_leads (latest row per open lead: leads closed by the as-of "
        "leave it) and scored_leads_history (one row per lead per run) atomically; re-running "
        "the same as-of is idempotent.",
    )
    add_data_arguments(parser)
    add_input_arguments(parser, "to score")
    parser.add_argument(
        "--model",
        type=optional_text,
        default=None,
        metavar="URI",
        help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/ID/model or a "
        "model folder (default: models:/leadscore-NAME@champion, NAME the spec's or the data "
        "folder's name, as train registers it)",
    )
    parser.add_argument(
        "--as-of",
        type=optional_text,
        default=None,
        metavar="TIME",
        help="score with what was known at this moment (default: event data's end, its "
        "observed_until; flat data: now, UTC)",
    )
    parser.add_argument(
        "--target",
        metavar="TARGET",
        help="a .duckdb file, a .parquet or .csv target, or a database URL; a folder it needs "
        "is created, and logged (default: %(default)s)",
    )
    parser.add_argument(
        "--no-reasons",
        action="store_true",
        help="probability, score and stage only: no reasons, no sub-scores (far faster)",
    )
    # no default here: a --top given with --no-reasons is refused, which a default hides
    parser.add_argument(
        "--top", type=int, default=None, help="reasons for and against (default: 3)"
    )
    chunk_size = parser.add_argument(
        "--chunk-size", type=positive_int, default=None, metavar="N", help="leads per chunk"
    )
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI for models:/ and runs:/ (default: "
        "$MLFLOW_TRACKING_URI or sqlite:///mlflow.db)",
    )
    parser.add_argument(
        "--same-leads",
        action="store_true",
        help="this model, new to --target, scores the same leads as the model names already "
        "there (a model renamed), not another data set whose ids overlap theirs",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)

    def complete() -> None:
        from leadscore.scoring import DEFAULT_CHUNK_LEADS, DEFAULT_CHUNK_ROWS
        from leadscore.sinks import DEFAULT_TARGET

        parser.set_defaults(target=DEFAULT_TARGET)
        chunk_size.help = (
            f"leads per chunk (default: {DEFAULT_CHUNK_LEADS:,} event-form leads, "
            f"{DEFAULT_CHUNK_ROWS:,} flat rows)"
        )

    complete_later(parser, complete)


def default_model_uri(spec: DatasetSpec | None, data: str | None) -> str:
    """The champion of the data set being scored, ``models:/leadscore-NAME@champion``: NAME
    is the spec's name, or the event data's (its folder or file name, ``crm`` for ``crm/``),
    the name ``train`` registers under."""
    from leadscore.io import event_data_name
    from leadscore.tracking import registered_name

    if spec is not None:
        name = spec.name
    elif data is not None:
        name = event_data_name(data)
    else:
        raise DataError("no data to score", "Give --data DIR or --spec NAME.")
    return f"models:/{registered_name(DEFAULT_REGISTERED_NAME, name)}@champion"


def check_model_spec(scoring: ScoringModel, spec: DatasetSpec, given: str | None = None) -> None:
    """Refuse a flat model that reads a column ``spec`` excludes; warn when it was trained on
    another spec.

    ``--model`` may name a model trained by any spec, and it scores whatever columns the
    table holds: a model that learnt from a column this spec excludes (``Lead Grade``, graded
    by sales after contact) would score every lead with what the spec says must not be used,
    silently and with stages far from this spec's own model. The spec is the user's word on
    that column, so it is an error, not a note. A model of another spec name that reads no
    excluded column may be meant (a spec renamed, a copy for a second CRM), so it is a
    warning naming both. ``given`` is the spec as the user named it (``--spec``), for the fix.
    """
    from leadscore.sinks import shown_model

    model = scoring.model
    shown = shown_model(scoring.name, scoring.version)
    trained_on = model.metadata.get("dataset")
    if isinstance(trained_on, str) and trained_on != spec.name:
        logger.warning(
            "model %s was trained on the data set %r, not on the spec %r being scored; give "
            "--model a model trained on %r if that is not meant",
            shown,
            trained_on,
            spec.name,
            spec.name,
        )
    excluded = [f.name for f in model.features if f.name in spec.exclude]
    if excluded:
        names = ", ".join(repr(name) for name in excluded)
        why = spec.exclude[excluded[0]]
        raise ModelError(
            f"model {shown} reads {names}, which the spec {spec.name} excludes "
            f"({excluded[0]!r}: {why}) and so must not be used to score its leads",
            f"Score with a model trained on this spec (leadscore train --spec "
            f"{given or spec.name}), or remove {excluded[0]!r} from the spec's exclude if the "
            "model may use it.",
        )


def open_lead_chunks(
    spec: DatasetSpec | None,
    data: str | None,
    input_source: str | None,
    as_of: pd.Timestamp | None,
    scoring: ScoringModel,
    chunk_size: int | None = None,
    *,
    on_closed: Callable[[pd.Series], None] | None = None,
    input_table: str | None = None,
    at_data_end: bool = False,
    on_open: Callable[[pd.Series], None] | None = None,
) -> Iterator[tuple[pd.DataFrame, pd.Series]]:
    """(features, lead ids) of the open leads, a chunk at a time, as ``score`` reads them:
    for a spec, the rows without an outcome of ``input_source`` (``--input``; its table
    ``input_table``, ``--input-table``, for a DuckDB file or database) or, without it, of the
    spec's source (its table and query from the spec); for event data, the leads of
    ``data`` open at ``as_of`` with the model's features. ``at_data_end``: ``as_of`` is the
    data's end as the caller found it (no ``--as-of`` given), which the reader then takes
    rather than scanning every timestamp for it again (:func:`reader_end`). ``on_open`` gets
    event data's open lead ids before any activity is read."""
    from leadscore.scoring import (
        DEFAULT_CHUNK_LEADS,
        DEFAULT_CHUNK_ROWS,
        event_feature_chunks,
        flat_feature_chunks,
    )

    if spec is not None:
        return flat_feature_chunks(
            spec,
            source=input_source,
            source_table=input_table,
            chunk_rows=chunk_size or DEFAULT_CHUNK_ROWS,
            on_closed=on_closed,
            as_of=as_of,
            stamped_now=at_data_end,
        )
    if input_source or input_table:
        raise DataError("--input goes with --spec", "Point --data at the event folder.")
    assert data is not None and as_of is not None
    return event_feature_chunks(
        data,
        as_of,
        chunk_leads=chunk_size or DEFAULT_CHUNK_LEADS,
        features=scoring.model.features,
        on_closed=on_closed,
        observed_until=reader_end(data, as_of) if at_data_end else None,
        on_open=on_open,
    )


def default_as_of(data: str | None) -> pd.Timestamp:
    """The moment ``score`` scores at, and ``report drift`` takes the open leads at, when
    ``--as-of`` is not given.

    Event data (``data``): the end of what the data holds, its ``observed_until`` (the
    manifest's, else its latest timestamp), as ``report drift`` takes it. Scoring "now" from
    an extract that stopped days ago would read the days it lacks as days the leads did
    nothing, and a nightly job fed a stale export would demote leads by the hundred; scored
    at the extract's end, the run says what the data knows, stamped with when that was, and
    a warning names the gap. Flat data is a snapshot of the CRM as it is: now, which only
    stamps the run.
    """
    import pandas as pd

    from leadscore.features import AS_OF_GAP_TOLERANCE, gap_in_days
    from leadscore.io import event_observed_until, shown_url
    from leadscore.timestamps import future_cutoff

    now = pd.Timestamp(datetime.now(UTC).replace(tzinfo=None)).floor("s").as_unit("us")
    if data is None:
        return now
    end = event_observed_until(data).as_unit("us")
    if end > future_cutoff(now):
        raise DataError(
            f"{shown_url(data)}: the data's end, observed_until {end:%Y-%m-%d %H:%M}, is in the "
            f"future (it is {now:%Y-%m-%d %H:%M} UTC now)",
            "Correct observed_until in the folder's manifest.json, or give --as-of.",
        )
    logger.info("open leads as of %s, the end of the data (give --as-of to choose)", end)
    if now - end > AS_OF_GAP_TOLERANCE:
        logger.warning(
            "the data ends at %s, %s before now: the open leads are taken as of then, with "
            "what the data holds; refresh the extract to have them as of today, or give "
            "--as-of",
            f"{end:%Y-%m-%d %H:%M}",
            gap_in_days(now - end),
        )
    return end


def reader_end(data: str, end: pd.Timestamp) -> pd.Timestamp | None:
    """``end``, the data's end as :func:`default_as_of` found it, for the reader to take as
    given rather than scan every timestamp for it a second time (2.5 s of a 10 s run on a
    small database); ``None`` where a folder's ``manifest.json`` declares it, since the reader
    holds a declared moment against the data and one given by the caller it does not."""
    from leadscore.timestamps import manifest_observed_until

    path = Path(data)
    if path.is_dir() and manifest_observed_until(path) is not None:
        return None
    return end


def run(args: argparse.Namespace) -> int:
    from leadscore.features import parse_as_of
    from leadscore.io import shown_url
    from leadscore.scoring import (
        check_data_form,
        load_scoring_model,
        run_scoring,
    )
    from leadscore.sinks import STAGES, check_target, shown_model
    from leadscore.specs import load_spec

    if args.top is not None and args.no_reasons:
        raise UsageError(
            f"--top {args.top} sets how many reasons each lead gets, and --no-reasons gives none",
            "Leave out --top, or --no-reasons to have the reasons.",
        )
    top = 3 if args.top is None else args.top
    if top < 1:
        raise DataError(f"--top must be at least 1, got {top}", "Give e.g. --top 3.")
    check_input_arguments(args)
    check_target(args.target)  # a target that cannot take the run fails before any work
    spec = load_spec(args.spec, data_root=args.data_root) if args.spec else None
    given_as_of = parse_as_of(args.as_of) if args.as_of else None
    model_uri = args.model or default_model_uri(spec, args.data)
    scoring = load_scoring_model(model_uri, tracking_uri=args.tracking_uri)
    check_data_form(scoring, flat=spec is not None)
    if spec is not None:
        check_model_spec(scoring, spec, args.spec)
    as_of = given_as_of if given_as_of is not None else default_as_of(args.data)
    # leads found closed by the as-of leave scored_leads (their history stays)
    closed: list[pd.Series] = []
    chunks = open_lead_chunks(
        spec,
        args.data,
        args.input,
        as_of,
        scoring,
        args.chunk_size,
        on_closed=closed.append,
        input_table=args.input_table,
        at_data_end=given_as_of is None,
        # an input that lost its outcomes, or another data set's, is refused before any
        # feature is built (another data set's closed records would read as outcomes lost)
        on_open=lambda ids: _refuse_before_features(args, scoring.name, as_of, ids),
    )
    summary = run_scoring(
        scoring,
        chunks,
        target=args.target,
        as_of=as_of,
        with_reasons=not args.no_reasons,
        top_n=top,
        progress=not args.no_progress,
        closed=closed,
        same_leads=args.same_leads,
    )
    counts = summary.stage_counts
    print(
        f"scored {summary.rows:,} leads as of {as_of:%Y-%m-%d %H:%M} UTC with "
        f"{shown_model(scoring.name, scoring.version)} into {shown_url(args.target)}"
    )
    print(
        "  stages: "
        + ", ".join(f"{s.upper()} {counts[s]:,}" for s in STAGES)
        + f"; {summary.moved_line()}"
    )
    print(f"  {_sql_handoff(summary)}")
    if summary.capacity is not None:
        print(f"  {summary.capacity.line()}")
    restaged = summary.write.restaged_rows
    if restaged:
        print(
            f"  note: another run wrote to the target while this one scored; {restaged:,} "
            "previous stages were set from it at commit, and the moves above count them"
        )
    return 0


def _refuse_before_features(
    args: argparse.Namespace, model_name: str, as_of: pd.Timestamp, ids: pd.Series
) -> None:
    """The refusals event data gets before any feature is built, given its open leads
    ``ids``: another data set's leads (unless ``--same-leads``), then outcomes gone missing."""
    from leadscore.scoring import check_shared_leads, refuse_reopened

    if not args.same_leads:
        check_shared_leads(args.target, model_name, ids)
    refuse_reopened(args.target, as_of, ids)


def _sql_handoff(summary: ScoringSummary) -> str:
    """The line sales reads: how many leads reached SQL in this run and from where, and how
    many SQLs fell back ("moved" alone says neither which way nor to whom).

    New SQLs whose previous stage another model gave are counted apart (a model switch
    promotes leads by itself), and a back-fill's are no news: they reached SQL at a past
    as-of, before the target's latest run, and are worded so."""
    came = summary.new_sqls()
    parts = [
        f"{n:,} {where}"
        for where, n in (
            # a back-filled as-of sees no earlier scoring, even of leads scored at later ones
            ("not scored at an earlier as-of", came.get(None, 0)),
            ("up from MQL", came.get("mql", 0)),
            ("up from LEAD", came.get("lead", 0)),
        )
        if n
    ]
    switched = summary.new_sqls_by_other_models()
    if switched:
        parts.append(
            f"{sum(switched.values()):,} of them previously staged by {', '.join(switched)}"
        )
    if summary.backfill_before is not None:
        line = (
            f"back-fill, no news for sales (the target's latest run is as of "
            f"{summary.backfill_before:%Y-%m-%d %H:%M}): {sum(came.values()):,} reached SQL "
            "at this as-of"
        )
    else:
        line = f"new SQLs for sales: {sum(came.values()):,}"
    if parts:
        line += f" ({', '.join(parts)})"
    left = summary.left_sql()
    return line + (f"; {left:,} fell back from SQL" if left else "")
