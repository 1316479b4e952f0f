"""Batch scoring: current leads in, explained scores in the scored-leads tables out.

One run scores every open lead as of one moment with one model, chunk by chunk, so memory is
bounded by the chunk and not by the input:

1. features of a chunk (event form: :func:`~leadscore.features.build_features` on a slice of
   leads and their activity; flat form: a slice of rows typed by the model itself);
2. calibrated probability, 0-100 score and stage from the model;
3. reasons for and against, and fit and engagement sub-scores, from SHAP values converted to
   probability points (:mod:`leadscore.explain`);
4. each lead's previous stage (its latest scoring at an earlier as-of) and whether it moved;
5. the chunk is staged in the sink; the run is swapped in atomically once all chunks are done
   (:mod:`leadscore.sinks`), so a failed or killed run leaves the previous tables as they were.

Leads that already have an outcome at the as-of moment (won or lost) are not scored: a
customer is no longer a lead. The chunk functions hand their ids to ``on_closed``; given to
:func:`run_scoring` (``closed=``), they leave ``scored_leads``, so that table holds the leads
open at their latest scoring (the history keeps their rows).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from tqdm.auto import tqdm

from leadscore.encoding import unseen_values, warn_unseen_values
from leadscore.errors import DataError, ModelError
from leadscore.features import (
    DetailCounts,
    build_features,
    parse_as_of,
    parse_timestamp,
    warn_unrecognised_details,
)
from leadscore.io import (
    SPEC_TABLE,
    ReadProgress,
    iter_closed_loop_chunks,
    iter_table_chunks,
    shown_url,
)
from leadscore.model import LeadScoringModel
from leadscore.monitoring import (
    ActivityCheck,
    EmptyCheck,
    SizeCheck,
    activity_features,
    computed_inputs,
    model_data_form,
)
from leadscore.schema import (
    ClosedLoopData,
    Feature,
    is_known_id,
    space_twins_text,
    to_lead_ids,
)
from leadscore.sinks import (
    COLUMNS,
    STAGES,
    RunKey,
    SinkTarget,
    WriteSummary,
    attach_previous_stages,
    data_set_of,
    leads_of_other_models,
    open_run,
    parse_target,
    previous_stages,
    recorded_closed,
    run_moves_by_model,
    run_transitions,
    shown_model,
    sql_entries,
    target_runs,
)
from leadscore.specs import DatasetSpec
from leadscore.stages import StageThresholds
from leadscore.timestamps import future_cutoff, utc_now

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_LEADS = 100_000
DEFAULT_CHUNK_ROWS = 250_000
#: The longest window of the engagement features: no activity in it is no engagement at all.
ENGAGEMENT_WINDOW_DAYS = 90


@dataclass(frozen=True)
class ScoringModel:
    """A model ready to score, with the name and version written on every scored row."""

    model: LeadScoringModel
    name: str
    version: str


@dataclass(frozen=True)
class CapacityCheck:
    """A capacity policy's promise held against the runs: the new SQLs (``entries``:
    :func:`~leadscore.sinks.sql_entries`) of one model name's runs after ``since`` up to this
    run's as-of (``until``), against ``capacity`` per ``period_days``.

    ``since`` is the as-of of the model name's latest run at or before the period's start:
    each run hands over the leads that crossed the cut-off since the run before it, so the
    runs after ``since`` cover ``until - since`` days, the period or more. Runs every 14 days
    against a 30-day period cover 42 days, and their sum had been read as 30 days' flow (40%
    over). ``per_period`` scales to the period. Without such a run (``since`` is ``None``:
    not ``complete``) the period's first run handed over every lead already above the
    cut-off, a backlog, not a period's flow.
    """

    entries: int
    capacity: float
    period_days: float
    until: pd.Timestamp
    since: pd.Timestamp | None = None

    #: How far above the capacity the period's new SQLs may go before a warning: a quarter.
    TOLERANCE: ClassVar[float] = 0.25

    @property
    def complete(self) -> bool:
        return self.since is not None

    @property
    def days(self) -> float:
        """The days the counted runs cover: from ``since`` (or the period's start) on."""
        if self.since is None:
            return float(self.period_days)
        return max((self.until - self.since) / pd.Timedelta(days=1), float(self.period_days))

    @property
    def per_period(self) -> float:
        """The new SQLs per ``period_days`` over the days the counted runs cover."""
        return self.entries * self.period_days / self.days

    @property
    def exceeded(self) -> bool:
        return self.complete and self.per_period > self.capacity * (1 + self.TOLERANCE)

    def line(self) -> str:
        """``capacity: 51 new SQLs in the 7 days to 2026-03-28, against 20 per 7 days``, or
        with runs that cover more than the period, ``capacity: 48 new SQLs in the 42 days to
        2026-05-24 (the runs since 2026-04-12), 34.3 per 30 days, against 20 per 30 days``."""
        per = f"per {self.period_days:g} days"
        if self.days > self.period_days + 1e-9:
            return (
                f"capacity: {self.entries:,} new SQLs in the {self.days:g} days to "
                f"{self.until:%Y-%m-%d} (the runs since {self.since:%Y-%m-%d}), "
                f"{self.per_period:,.1f} {per}, against {self.capacity:g} {per}"
            )
        text = (
            f"capacity: {self.entries:,} new SQLs in the {self.period_days:g} days to "
            f"{self.until:%Y-%m-%d}, against {self.capacity:g} {per}"
        )
        if not self.complete:
            return f"{text} (the target holds no run before that period: a first backlog)"
        return text


@dataclass(frozen=True)
class ScoringSummary:
    """What a scoring run wrote: the sink's summary, leads per stage, how many moved, and
    the leads per (previous stage, stage) pair (``None``: scored for the first time).

    ``moves_by_model`` splits those pairs by the model whose row gave the previous stage
    (:func:`~leadscore.sinks.run_moves_by_model`; empty when no other model scored the
    target before this as-of), so that the moves a model switch makes by itself are told
    apart. ``backfill_before`` is the as-of of the target's latest run of this model name
    when this run's as-of is earlier (a back-fill), else ``None``: its SQLs are no news.
    """

    write: WriteSummary
    stage_counts: dict[str, int]
    moved: int
    transitions: dict[tuple[str | None, str], int] = field(default_factory=dict)
    moves_by_model: dict[tuple[str | None, str, str | None, str | None], int] = field(
        default_factory=dict
    )
    backfill_before: pd.Timestamp | None = None
    capacity: CapacityCheck | None = None

    @property
    def rows(self) -> int:
        return self.write.rows

    def new_sqls(self) -> dict[str | None, int]:
        """The leads that reached SQL in this run, by the stage they came from (``None``:
        scored for the first time): the leads sales receives."""
        return {
            before: n
            for (before, stage), n in self.transitions.items()
            if stage == "sql" and before != "sql" and n
        }

    def left_sql(self) -> int:
        """The leads that were SQL at their previous scoring and no longer are."""
        pairs = self.transitions.items()
        return sum(n for (before, stage), n in pairs if before == "sql" and stage != "sql")

    def _by_other_models(self, moved: Callable[[str, str], bool]) -> dict[str, int]:
        """Leads whose (previous stage, stage) satisfies ``moved``, per other model (shown as
        people read it) that gave the previous stage."""
        run = self.write.run
        counts: dict[str, int] = {}
        for (before, stage, name, version), n in self.moves_by_model.items():
            if before is None or name is None or version is None or not moved(before, stage):
                continue
            if (name, version) == (run.model_name, run.model_version):
                continue
            shown = shown_model(name, version)
            counts[shown] = counts.get(shown, 0) + n
        return counts

    def moved_by_other_models(self) -> dict[str, int]:
        """The moves whose previous stage another model (version or name) gave, per that
        model: a new model disagrees with the old one on leads that did nothing, and those
        moves are the switch's, not the leads'."""
        return self._by_other_models(lambda before, stage: before != stage)

    def new_sqls_by_other_models(self) -> dict[str, int]:
        """The new SQLs (:meth:`new_sqls`) whose previous stage another model gave, per that
        model."""
        return self._by_other_models(lambda before, stage: stage == "sql" and before != "sql")

    def moved_line(self) -> str:
        """How many leads moved, and how many of those against another model's stages:
        ``161 moved since their previous scoring, 150 of them against stages given by
        leadscore-crm v1: a new model moves leads by itself; compare like with like via
        scored_leads_history``."""
        line = f"{self.moved:,} moved since their previous scoring"
        others = self.moved_by_other_models()
        if not others:
            return line
        names = ", ".join(
            f"{name} ({n:,})" if len(others) > 1 else name for name, n in others.items()
        )
        return (
            f"{line}, {sum(others.values()):,} of them against stages given by {names}: a new "
            "model moves leads by itself; compare like with like via scored_leads_history "
            "(model_name, model_version)"
        )


def _spec_hint(dataset: str) -> str:
    """What to give ``--spec`` for a flat model's data set: a built-in spec by its name, a
    user's spec by its file (the model knows the spec's name, not where its YAML lives)."""
    from leadscore.specs import BUILTIN_SPECS

    return dataset if dataset in BUILTIN_SPECS else f"YOUR_SPEC.yaml (the spec named {dataset})"


def check_data_form(scoring: ScoringModel, *, flat: bool) -> None:
    """Refuse, in one line naming the right command, a model used with the other data form.

    Without it, a flat-spec model scored with ``--data`` fails on its first spec column ("the
    leads have no column 'Do Not Email'"), which sends the user to add a column instead of to
    ``--spec``.
    """
    form = model_data_form(scoring.model)
    dataset = str(scoring.model.metadata.get("dataset", "?"))
    shown = shown_model(scoring.name, scoring.version)
    if form == "flat" and not flat:
        raise ModelError(
            f"model {shown} was trained on the flat spec {dataset}, not on event data",
            f"Score with --spec {_spec_hint(dataset)} --input FILE (one row per lead).",
        )
    if form == "events" and flat:
        raise ModelError(
            f"model {shown} was trained on event data ({dataset}), not on a flat spec",
            "Score with --data DIR (leads, activities, outcomes), or give --model a model "
            "trained with --spec.",
        )


def load_scoring_model(
    uri: str | os.PathLike[str], *, tracking_uri: str | None = None
) -> ScoringModel:
    """Load a model from an MLflow URI (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``,
    ``runs:/ID/model``) or a local model folder, with the name and version to record.

    Registered models are recorded as their registered name and version. A ``runs:/`` URI of
    a registered model is recorded the same way (the version whose run and artifact path
    match), so that one model is not recorded under two names; a run never registered as
    ``run:<run id>`` with the run id as version. A local folder is recorded as the data set it
    was trained on and the first 12 characters of its fingerprint (the booster, calibrator,
    stage cut-offs and the rest that makes its output: :attr:`LeadScoringModel.fingerprint`),
    so that two folders that score differently never share a version.
    """
    from leadscore import tracking

    text = str(uri)
    model, name, version = tracking.load_model_version(text, tracking_uri=tracking_uri)
    if name is None or version is None:
        if text.startswith("runs:/"):
            run_id, _, path = text.removeprefix("runs:/").partition("/")
            found = registered_version_of_run(run_id, path, tracking_uri=tracking_uri)
            name, version = found if found is not None else (f"run:{run_id}", run_id)
        else:
            name = str(model.metadata.get("dataset", Path(text).name))
            version = model.fingerprint[:12]
    return ScoringModel(model=model, name=name, version=version)


def registered_version_of_run(
    run_id: str, artifact_path: str, *, tracking_uri: str | None = None
) -> tuple[str, str] | None:
    """(registered name, version) of the model logged by run ``run_id`` at ``artifact_path``,
    or None when it was never registered.

    A version matches when its run is ``run_id`` and its source is that run's artifact
    (``runs:/RUN/PATH``), or a logged model of that run named ``PATH`` (MLflow 3 registers
    ``models:/m-...``). With several matches the newest version of the first name wins.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from leadscore import tracking

    path = artifact_path.strip("/")
    resolved = tracking.resolve_tracking_uri(tracking_uri)
    matches: list[tuple[str, int]] = []
    with tracking.quiet_mlflow(), tracking.using_tracking_uri(resolved):
        client = MlflowClient(tracking_uri=resolved, registry_uri=resolved)
        try:
            versions = client.search_model_versions(f"run_id = '{run_id}'")
            for mv in versions:
                source = str(mv.source or "")
                if source.rstrip("/") == f"runs:/{run_id}/{path}":
                    matches.append((mv.name, int(mv.version)))
                elif source.startswith("models:/m-"):
                    logged = client.get_logged_model(source.removeprefix("models:/"))
                    if logged.source_run_id == run_id and logged.name == path:
                        matches.append((mv.name, int(mv.version)))
        except MlflowException as err:
            logger.debug("no registered version found for run %s: %s", run_id, err)
            return None
    if not matches:
        return None
    first = sorted(matches)[0][0]
    return first, str(max(v for n, v in matches if n == first))


def scores_from_probability(p: np.ndarray, stages: StageThresholds | None = None) -> np.ndarray:
    """The 0-100 integer score people read: the probability in percent, rounded; with the
    model's ``stages``, kept within the stage's band (:meth:`StageThresholds.scores`) so that
    no score is seen in two stages."""
    if stages is not None:
        return stages.scores(p)
    return np.clip(np.rint(np.asarray(p, dtype="float64") * 100), 0, 100).astype("int64")


def score_frame(
    scoring: ScoringModel,
    X: pd.DataFrame,
    lead_ids: pd.Series,
    *,
    run: RunKey,
    scored_at: pd.Timestamp,
    with_reasons: bool = True,
    top_n: int = 3,
) -> pd.DataFrame:
    """Scored rows (the sink's columns) for the leads of ``X``, before previous stages.

    With reasons, TreeSHAP explains every lead: reasons for and against, and the fit and
    engagement sub-scores. Without, only probability, score and stage are computed (TreeSHAP
    costs far more than a prediction) and the reasons and sub-scores stay empty.
    """
    model = scoring.model
    n = len(X)
    # the prediction path, not the sum of SHAP values (equal to ~1e-16): a lead exactly at a
    # cut-off gets the same stage with or without reasons, and from the MLflow model
    p = model.predict_proba(X, warn_unseen=False)  # counted per run below
    if with_reasons:
        explained = model.explain_batch(X, top_n)
        texts = {c: explained[c].to_numpy() for c in ("reasons_for", "reasons_against")}
        texts["reasons_json"] = explained["reasons_json"].to_numpy()
        sub = {
            c: (explained[c] if c in explained else pd.Series(pd.NA, index=explained.index))
            .astype("Int64")
            .to_numpy()
            for c in ("fit_score", "engagement_score")
        }
    else:
        texts = {"reasons_for": "", "reasons_against": "", "reasons_json": "[]"}
        sub = {c: pd.array([pd.NA] * n, dtype="Int64") for c in ("fit_score", "engagement_score")}
    out = pd.DataFrame(
        {
            "lead_id": lead_ids.astype(str).to_numpy(),
            "scored_at": scored_at,
            "as_of": run.as_of,
            "model_name": run.model_name,
            "model_version": run.model_version,
            "probability": p,
            "score": scores_from_probability(p, model.stages),
            "stage": model.stages.transform(p),
            "previous_stage": None,
            "stage_changed": False,
            **sub,
            **texts,
        }
    )
    return out[list(COLUMNS)]


def closed_lead_ids(data: ClosedLoopData, as_of: pd.Timestamp) -> pd.Series:
    """Ids of the leads of ``data`` closed (won or lost) at or before ``as_of``."""
    closed = data.outcomes.loc[data.outcomes["closed_at"] <= as_of, "lead_id"]
    known = is_known_id(data.leads["lead_id"], closed)
    return data.leads.loc[known, "lead_id"].reset_index(drop=True)


def _open_leads(data: ClosedLoopData, closed: pd.Series) -> ClosedLoopData:
    """``data`` without the ``closed`` leads."""
    if closed.empty:
        return data
    keep = ~is_known_id(data.leads["lead_id"], closed)
    return ClosedLoopData(
        leads=data.leads[keep].reset_index(drop=True),
        activities=data.activities,
        outcomes=data.outcomes,
        observed_until=data.observed_until,
    )


class LeadChunks(Iterator[tuple[pd.DataFrame, pd.Series]]):
    """(features, lead ids) of the open leads, a chunk at a time, with how far the reader got.

    An iterator like the generator it wraps (read once, lazily: the input is opened at the
    first chunk), plus ``progress``: the rows (leads) of the input and how many were read,
    closed and not-yet-created ones included, which :func:`run_scoring` shows as a progress
    bar with an end and a time left, rather than a bare count of scored leads.
    """

    def __init__(
        self, read: Callable[[ReadProgress], Iterator[tuple[pd.DataFrame, pd.Series]]]
    ) -> None:
        self.progress = ReadProgress()
        self._chunks = read(self.progress)

    def __next__(self) -> tuple[pd.DataFrame, pd.Series]:
        return next(self._chunks)


def event_feature_chunks(
    source: str | os.PathLike[str],
    as_of: pd.Timestamp | str,
    *,
    chunk_leads: int,
    features: Sequence[Feature] | None = None,
    on_closed: Callable[[pd.Series], None] | None = None,
    observed_until: pd.Timestamp | None = None,
    on_open: Callable[[pd.Series], None] | None = None,
) -> LeadChunks:
    """(features, lead ids) of the open leads of event-form ``source``, a slice at a time.

    Any source (a folder, a DuckDB file, a database URL) is read slice by slice, and only its
    leads open at ``as_of``: the activity of leads closed by then is never read
    (:func:`~leadscore.io.iter_closed_loop_chunks`). Pass the
    model's ``features``: the extra lead columns are then the model's in every slice, not
    planned again from the few leads of each slice. ``on_closed`` receives, slice by slice,
    the ids (as text) of the leads left out because they closed by ``as_of``, and ``on_open``
    the ids of the open leads about to be read, before any activity is read
    (:func:`refuse_reopened`).
    ``observed_until`` is the data's end where the caller already has it from the data
    (:func:`~leadscore.io.event_observed_until` of a source without a manifest), so the
    reader does not scan every timestamp for it again; ``None`` lets the reader find it.

    The ``page_view`` and ``form_fill`` details are counted as each slice's features read
    them and warned about once, after the last slice, as for the whole log
    (:func:`~leadscore.features.warn_unrecognised_details`). The slices hold the activity of
    the open leads only, so only theirs is counted.
    """
    moment = parse_timestamp(as_of, "as_of")
    return LeadChunks(
        lambda progress: _event_feature_chunks(
            source, moment, chunk_leads, features, on_closed, observed_until, progress, on_open
        )
    )


def _event_feature_chunks(
    source: str | os.PathLike[str],
    as_of: pd.Timestamp,
    chunk_leads: int,
    features: Sequence[Feature] | None,
    on_closed: Callable[[pd.Series], None] | None,
    observed_until: pd.Timestamp | None,
    progress: ReadProgress,
    on_open: Callable[[pd.Series], None] | None = None,
) -> Iterator[tuple[pd.DataFrame, pd.Series]]:
    # only the leads open at as_of are read: closed ones never reach a slice
    chunks = iter_closed_loop_chunks(
        source,
        chunk_leads=chunk_leads,
        observed_until=observed_until,
        progress=progress,
        open_at=as_of,
        on_closed=on_closed,
        on_open=on_open,
    )
    window_start = as_of - pd.Timedelta(days=ENGAGEMENT_WINDOW_DAYS)
    engaged = activity_features() & {f.name for f in features or ()}
    scored = activities = recent = 0
    details = DetailCounts({}, {})  # as build_features reads each slice; warned about once

    def add_details(counts: DetailCounts) -> None:
        nonlocal details
        details += counts

    for data in chunks:
        if "activities" in data.absent_tables and engaged:
            raise DataError(
                f"{shown_url(str(source))}: no activities table, and the model learnt from "
                "engagement: every lead would be scored as if it had done nothing",
                "Load the activities table (see the data contract); nothing was written.",
            )
        closed = closed_lead_ids(data, as_of)
        if on_closed is not None and len(closed):
            on_closed(closed.astype(str))
        table = build_features(
            _open_leads(data, closed), as_of, features=features, on_details=add_details
        )
        theirs = is_known_id(data.activities["lead_id"], table.frame["lead_id"])
        when = data.activities.loc[theirs.to_numpy(), "occurred_at"]
        scored += len(table.frame)
        activities += len(when)
        recent += int(((when > window_start) & (when <= as_of)).sum())
        if len(table.frame):
            yield table.X, table.frame["lead_id"]
    warn_unrecognised_details(details)
    # no open lead at all is run_scoring's error ("no open lead was created by ..."): a
    # warning about their activity first would send the user to load a table that is there
    if features is not None and scored and recent == 0 and engaged:
        logger.warning(
            "%s: the %s open leads have no activity in the %d days before %s (%s activities of "
            "theirs in all): the model learnt from engagement, so every lead is scored as if it "
            "had done nothing; load the activities table (see the data contract) or check --as-of",
            shown_url(str(source)),
            f"{scored:,}",
            ENGAGEMENT_WINDOW_DAYS,
            f"{as_of:%Y-%m-%d %H:%M}",
            f"{activities:,}",
        )


#: Where ``score`` and ``report drift`` name the table of their ``--input``, as an error's fix
#: says it (:func:`leadscore.io.read_table`'s ``named_by``).
INPUT_TABLE = "with --input-table NAME"


def flat_feature_chunks(
    spec: DatasetSpec,
    *,
    source: str | None = None,
    source_table: str | None = None,
    chunk_rows: int,
    on_closed: Callable[[pd.Series], None] | None = None,
    as_of: pd.Timestamp | str | None = None,
    stamped_now: bool = False,
) -> LeadChunks:
    """(rows, lead ids) of a flat table, a slice at a time, with the spec's missing tokens.

    Typing is left to the model (:meth:`LeadScoringModel.prepare`), which applies the types and
    category levels it was trained with. ``source`` overrides the spec's source (the current
    leads rather than the training history): a CSV or Parquet file, a DuckDB file, or a
    database URL (``duckdb:///file.duckdb`` too). The spec's ``table`` and ``query`` apply to
    the spec's own source only, never to ``source``: name the table of a DuckDB file or
    database given as ``source`` with ``source_table`` (``score --input-table``); without
    it, such a source is an error that lists its tables. CSV files are read as text, as in
    training, and the spec's ``join`` tables add the columns the input lacks (a won date
    joined from closed deals included). Rows whose label column holds an outcome are closed
    leads and are not scored (:func:`~leadscore.datasets.closed_rows`); so are, for a
    ``within_days`` label, the leads whose window ended without a win by the extract
    (:func:`~leadscore.datasets.scoring_extract`: ``label.observed_until``, the newest won
    date of a joined closed-deals table, else ``as_of``, the scoring moment, now when not
    given, and never later than ``as_of``), which training labels lost. A won date closes
    its lead from that moment on: with ``as_of`` given (``--as-of``, not ``stamped_now``)
    a lead won after it was open then and is scored; a label of values (won, lost) has no
    date, and closes its lead whatever ``as_of`` says. A table of closed leads only is an
    error, since scoring the training history is a mistake, not a result. ``on_closed``
    receives, chunk by chunk, the ids of the closed rows. ``stamped_now``: ``as_of`` is the
    moment of scoring, no ``--as-of`` given; an input whose newest open lead is far older is
    then warned about (:meth:`_LateLeads.warn_stale`).
    """
    if source_table is not None and source is None:
        raise DataError(
            "a table to read was named, but no source to read it from",
            "Name the table of the spec's own source in the spec (table: NAME).",
        )
    moment = None if as_of is None else parse_timestamp(as_of, "as_of")
    return LeadChunks(
        lambda progress: _flat_feature_chunks(
            spec, source, source_table, chunk_rows, on_closed, progress, moment, stamped_now
        )
    )


def _flat_feature_chunks(
    spec: DatasetSpec,
    source: str | None,
    source_table: str | None,
    chunk_rows: int,
    on_closed: Callable[[pd.Series], None] | None,
    progress: ReadProgress,
    as_of: pd.Timestamp | None,
    stamped_now: bool = False,
) -> Iterator[tuple[pd.DataFrame, pd.Series]]:
    from leadscore.datasets import (
        closed_rows,
        join_tables,
        mark_missing,
        parse_order_column,
        read_joined_tables,
        scoring_extract,
    )

    joined = read_joined_tables(spec)
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    extract = scoring_extract(spec, joined, as_of if as_of is not None else now)
    timed = extract is not None and spec.order_by is not None
    if source is None:
        location = spec.resolve(spec.source)
        table, query, named_by = spec.table, spec.query, SPEC_TABLE
    else:
        location, table, query, named_by = source, source_table, None, INPUT_TABLE
    seen = 0
    chunks = iter_table_chunks(
        location,
        table,
        query=query,
        chunk_rows=chunk_rows,
        text_columns=(spec.id,),
        strings=True,
        progress=progress,
        named_by=named_by,
    )
    closed = 0
    unlabelled = 0
    moment = as_of if as_of is not None else now
    # a won date after a given --as-of was no win yet then; stamped now, any won date closes
    won_by = None if as_of is None or stamped_now else as_of
    late = _LateLeads()
    # errors in the order column name the table handed over, not the spec's training source
    named = None if source is None else (source_table or Path(str(source)).name)
    for chunk in chunks:
        if spec.id not in chunk.columns:
            raise DataError(
                f"{location} has no id column {spec.id!r}",
                "Score a table with the same columns as the training data.",
            )
        chunk = mark_missing(
            join_tables(chunk, spec, joined, scoring=True),
            spec.missing_values,
            as_written=(spec.id,),
        )
        seen += len(chunk)
        if spec.label.column not in chunk.columns:
            unlabelled += len(chunk)
        if timed and spec.label.column not in chunk.columns:
            chunk = chunk.assign(**{spec.label.column: None})  # no won date: open or lost
        if spec.label.column in chunk.columns:
            order = (
                parse_order_column(chunk[spec.order_by], spec, table=named)
                if timed and spec.order_by in chunk.columns
                else None
            )
            done = closed_rows(
                chunk[spec.label.column], spec, order=order, extract=extract, as_of=won_by
            ).to_numpy()
            closed += int(done.sum())
            if on_closed is not None and done.any():
                on_closed(to_lead_ids(chunk[spec.id][done], spec.name, spec.id).astype(str))
            chunk = chunk[~done]
        if len(chunk) and spec.order_by is not None and spec.order_by in chunk.columns:
            late.add(chunk, spec, moment, named)
        if len(chunk):
            yield chunk, to_lead_ids(chunk[spec.id], spec.name, spec.id)
    if seen == 0:
        raise DataError(f"{location} holds no leads", "Give a table with at least one lead.")
    if unlabelled:
        _warn_no_label_column(location, spec, unlabelled, timed)
    late.warn(spec, moment)
    if stamped_now:
        late.warn_stale(spec, moment)
    why = f"{spec.label.column!r} holds their outcome"
    fix = "Score the current open leads: --input FILE, rows without an outcome."
    if timed:
        won = "won" if won_by is None else f"won by {won_by:%Y-%m-%d %H:%M}"
        why = (
            f"{won}, or their {spec.label.within_days}-day window ended without a win by "
            f"{extract:%Y-%m-%d}"
        )
        fix = (
            "Score the current open leads (--input FILE), or, for an older export, set "
            "label.observed_until in the spec to the day it was extracted."
        )
    if closed:
        logger.info("%s: %s closed lead(s) not scored (%s)", location, f"{closed:,}", why)
    if closed == seen:
        raise DataError(
            f"{location}: all {seen:,} leads are closed ({why}), so none is left to score", fix
        )


def _warn_no_label_column(location: str, spec: DatasetSpec, rows: int, timed: bool) -> None:
    """Warn, once per run, that the table read has no label column, so nothing in it can
    say which leads are closed: every row is taken as open (scored, or counted by ``report
    drift``), and a converted or disqualified lead among them reaches sales. Scoring the
    current open leads only is what ``--input`` is for, so it is no error; the warning tells
    a user who exported the wrong columns.
    With ``within_days`` the leads whose window ended are still left out as lost, but a win
    inside a window still running cannot be seen."""
    column = spec.label.column
    if timed:
        taken = (
            f"every lead whose {spec.label.within_days}-day window is still running is "
            "taken as open, won or not"
        )
    else:
        taken = "every lead in it is taken as open"
    logger.warning(
        "%s has no label column %r (%s row(s)): %s; score only open leads, or keep the column "
        "so that closed ones are left out",
        location,
        column,
        f"{rows:,}",
        taken,
    )


#: Days between a flat input's newest open lead and a scoring stamped now beyond which the
#: input reads as an older export (:meth:`_LateLeads.warn_stale`): a CRM that takes no lead
#: for a month is rare, an export left in a folder is not.
STALE_INPUT_DAYS = 30


@dataclass
class _LateLeads:
    """Open leads of a flat input whose ``order_by`` date is after the scoring moment, counted
    over the chunks: a score stamped as of a moment before its lead existed (``--as-of`` of
    an older export, or a typo such as 2062 that training refuses) says the wrong thing to
    whoever reads ``as_of`` in the table. The event form leaves such leads out, as not
    created yet; a flat table has no creation time of its own, so they are scored, and named
    in one warning."""

    count: int = 0
    latest: pd.Timestamp | None = None
    lead: str | None = None
    newest: pd.Timestamp | None = None

    def add(
        self,
        chunk: pd.DataFrame,
        spec: DatasetSpec,
        moment: pd.Timestamp,
        table: str | None = None,
    ) -> None:
        from leadscore.datasets import parse_order_column

        order = parse_order_column(chunk[spec.order_by], spec, table=table)
        if not ptypes.is_datetime64_any_dtype(order):
            return  # a sequence number says nothing of time
        if order.notna().any() and (self.newest is None or order.max() > self.newest):
            self.newest = order.max()
        after = (order > moment + pd.Timedelta(days=1)).to_numpy()
        if not after.any():
            return
        self.count += int(after.sum())
        rows = np.flatnonzero(after)
        at = int(rows[np.argmax(order.to_numpy()[rows])])
        if self.latest is None or order.iloc[at] > self.latest:
            self.latest, self.lead = order.iloc[at], str(chunk[spec.id].iloc[at])

    def warn_stale(self, spec: DatasetSpec, moment: pd.Timestamp) -> None:
        """Warn when the newest open lead began more than :data:`STALE_INPUT_DAYS` before
        ``moment``, the scoring time: an older export scored without ``--as-of`` is stamped
        now, and the history dates its scores as if the CRM looked so today."""
        if self.newest is None or moment - self.newest <= pd.Timedelta(days=STALE_INPUT_DAYS):
            return
        logger.warning(
            "the newest open lead's %s is %s, %s days before the as-of %s (now, no --as-of "
            "given): if the input is an older export, give --as-of the moment it was taken, "
            "so that the history dates these scores as the data does",
            spec.order_by,
            f"{self.newest:%Y-%m-%d}",
            f"{(moment - self.newest).days:,}",
            f"{moment:%Y-%m-%d %H:%M}",
        )

    def warn(self, spec: DatasetSpec, moment: pd.Timestamp) -> None:
        if not self.count or self.latest is None:
            return
        when = f"the as-of {moment:%Y-%m-%d %H:%M}"
        fix = (
            "correct the dates in the future (a typo such as 2062 for 2026): train refuses them"
            if self.latest > future_cutoff(utc_now())
            else "give --as-of the moment the input was exported"
        )
        logger.warning(
            "%s open lead(s) have a %s after %s, the latest %s for lead %r: their scores are "
            "stamped with a moment before they began; %s",
            f"{self.count:,}",
            spec.order_by,
            when,
            f"{self.latest:%Y-%m-%d}",
            self.lead,
            fix,
        )


def _id_hashes(lead_ids: pd.Series) -> np.ndarray:
    """64-bit hashes of a chunk's ids (80 MB for 10M leads, rather than the strings); a lead
    repeated inside the chunk is an error at once. Ids are hashed without the spaces around
    them, so that ``X01850`` and ``X01850 `` in two chunks are caught as one lead too."""
    dup = lead_ids.duplicated()
    if dup.any():
        raise DataError(
            f"lead {lead_ids[dup].iloc[0]!r} appears more than once in the input",
            "Keep one row per lead.",
        )
    twins = space_twins_text(lead_ids)
    if twins is not None:
        raise DataError(
            f"lead ids {twins} in the input",
            "Strip the spaces around ids in the export: each is one lead.",
        )
    return pd.util.hash_array(lead_ids.astype(str).str.strip().to_numpy(dtype=object))


def naming_the_lead(err: DataError, lead_ids: pd.Series) -> DataError:
    """``err`` with the lead of the first row it is about: in an input of 250,000 rows,
    "holds an infinite value in 1 row(s)" alone cannot be found."""
    rows = np.asarray(err.rows if err.rows is not None else [], dtype="int64")
    if not rows.size or rows[0] >= len(lead_ids):
        return err
    more = f" and {rows.size - 1:,} more" if rows.size > 1 else ""
    lead = lead_ids.iloc[int(rows[0])]
    return DataError(f"{err.problem.rstrip('.')} (lead {str(lead)!r}{more})", err.fix)


class _SeenIds:
    """The id hashes of the chunks read so far (:func:`_id_hashes`), kept sorted, so that a
    lead repeated in a later chunk is named as soon as that chunk is read: one sort of every
    hash at the end could only count such leads, after every chunk had been scored. Each
    chunk costs a merge, O(ids so far): 0.3 s for the 40th chunk of 250,000 (about 6 s over
    those 10 million leads, which take an hour to score with reasons)."""

    def __init__(self) -> None:
        self._sorted = np.empty(0, dtype=np.uint64)

    def add(self, lead_ids: pd.Series) -> None:
        hashes = _id_hashes(lead_ids)
        at = np.searchsorted(self._sorted, hashes)
        found = at < len(self._sorted)
        found[found] = self._sorted[at[found]] == hashes[found]
        if found.any():
            raise DataError(
                f"lead {lead_ids.iloc[int(np.flatnonzero(found)[0])]!r} appears on more than "
                "one row of the input, rows far apart (spaces around an id aside)",
                "Keep one row per lead, its id written one way.",
            )
        ordered = np.sort(hashes)
        self._sorted = np.insert(self._sorted, np.searchsorted(self._sorted, ordered), ordered)


#: Leads scored at a time within a chunk, the bar moving after each: a chunk (250,000 flat
#: rows or 100,000 event leads by default) takes about a minute with reasons, and the bar had
#: stood at 0% for all of it on any run up to that size. Slicing costs no time (measured: one
#: 100,000-row run took 53.5 s in slices of 20,000 against 54.7 s whole).
SCORE_SLICE_ROWS = 20_000


def _advance(
    bar: tqdm,
    read: ReadProgress | None,
    scored: int,
    scored_in_all: int,
    *,
    start: int | None = None,
    share: float = 1.0,
) -> None:
    """Move the bar by the leads just scored, or towards the leads read out of the known total.

    Within a chunk, ``share`` is the part of it scored so far and ``start`` the bar's position
    before it: the bar then stands that share of the way from ``start`` to the rows read (the
    reader has read the whole chunk before any of it is scored).
    """
    if read is None:
        bar.update(scored)
        return
    if read.total is not None and bar.total != read.total:
        bar.total = max(read.total, read.read)
    bar.set_postfix(scored=f"{scored_in_all:,}", refresh=False)
    begin = bar.n if start is None else start
    bar.update(begin + round((read.read - begin) * share) - bar.n)


#: Leads an earlier run recorded closed that an input scores open again, at which scoring
#: stops (and their share of the leads scored): below, a warning names them.
REOPENED_LEADS = 10
REOPENED_SHARE = 0.05


def _check_reopened(reopened: list[str], rows: int, target: SinkTarget | str) -> None:
    """Stop a run that scores as open many leads the target recorded as closed: outcomes
    (the outcomes table, or a flat table's labels) left out, emptied or loaded in part by
    an export gone wrong, which would put closed leads back into ``scored_leads`` and into
    the SQL queue. A few such leads are reopened deals: a warning names them, once (the
    next run finds them in ``scored_leads``)."""
    if not reopened:
        return
    error = _reopened_error(reopened, rows, target)
    if error is not None:
        raise error
    found = _reopened_found(reopened, rows, target)
    logger.warning("%s: scored as open again (reopened deals?)", found)


def _reopened_found(reopened: list[str], rows: int, target: SinkTarget | str) -> str:
    return (
        f"{len(reopened):,} of the {rows:,} leads to score were recorded as closed (won or "
        f"lost) by earlier runs in {target} (e.g. {reopened[0]!r}), and this input has no "
        "outcome for them"
    )


def _reopened_error(reopened: list[str], rows: int, target: SinkTarget | str) -> DataError | None:
    """The error of :func:`_check_reopened` when ``reopened`` are too many of ``rows``."""
    n = len(reopened)
    if n < REOPENED_LEADS or n < REOPENED_SHARE * rows:
        return None
    return DataError(
        f"{_reopened_found(reopened, rows, target)}: its outcomes (the outcomes table, or a "
        "flat table's labels) are missing or incomplete, and scored they would return to "
        "scored_leads as open leads",
        "Load the outcomes as the earlier runs had them; nothing was written.",
    )


def refuse_reopened(
    target: str | os.PathLike[str] | SinkTarget | None, as_of: pd.Timestamp, lead_ids: pd.Series
) -> None:
    """Refuse, before any feature is built, an input whose open leads (``lead_ids``: every
    lead the run will score) hold too many the target recorded as closed, as
    :func:`run_scoring` refuses it once every chunk is scored: an event reader passes them
    as ``on_open`` before it reads any activity. An export without its outcomes table took
    63 s of features for 30,000 leads before the refusal. The few reopened deals are warned
    about by :func:`run_scoring` as before."""
    reopened = recorded_closed(target, as_of, lead_ids.astype(str))
    error = _reopened_error(reopened, len(lead_ids), parse_target(target))
    if error is not None:
        raise error


def _shown_runs(runs: pd.DataFrame) -> str:
    """The models of ``runs`` (rows of :func:`~leadscore.sinks.target_runs`) as people read
    them, each once, in as-of order."""
    shown = [
        shown_model(n, v) for n, v in zip(runs["model_name"], runs["model_version"], strict=True)
    ]
    return ", ".join(dict.fromkeys(shown))


def _warn_run_context(runs: pd.DataFrame, run: RunKey, target: SinkTarget) -> pd.Timestamp | None:
    """Warn about what this run does to the runs ``target`` holds (``runs``, from
    :func:`~leadscore.sinks.target_runs`), before it scores; return the as-of of the latest
    later run of this model name when this run is a back-fill, else ``None``.

    Two cases change what earlier output meant, and both were silent: an as-of another
    version of this model already scored (the run key differs, so nothing is replaced, and
    ``scored_leads`` and the next day's previous stages flip to this run's rows), and a
    back-fill of an as-of before the latest run (the later runs' previous stages are
    recomputed from it; by another version, they then count their moves against another
    model's stages). Both are allowed: the history keeps every run, and a back-fill is how a
    missed day is made good.
    """
    mine = shown_model(run.model_name, run.model_version)
    same_name = runs[runs["model_name"] == run.model_name]
    twins = same_name[
        (same_name["as_of"] == run.as_of) & (same_name["model_version"] != run.model_version)
    ]
    for twin in twins.itertuples():
        logger.warning(
            "as-of %s was already scored into %s by %s (%s leads): scored_leads and later "
            "runs' previous stages now take %s's rows for it (the newer scoring of that "
            "as-of), and both stay in scored_leads_history; score an as-of with one model "
            "(re-run it with %s to give it back)",
            f"{run.as_of:%Y-%m-%d %H:%M}", target, shown_model(twin.model_name, twin.model_version),
            f"{twin.leads:,}", mine, shown_model(twin.model_name, twin.model_version),
        )  # fmt: skip
    later = same_name[same_name["as_of"] > run.as_of]
    if later.empty:
        return None
    latest = pd.Timestamp(later["as_of"].max())
    others = later[later["model_version"] != run.model_version]
    recomputed = "the previous stages of those leads' later rows are recomputed from this run"
    if not others.empty:
        recomputed += (
            f", so the later runs of {_shown_runs(others)} now count their moves against "
            f"{mine}'s stages (previous_stage is a lead's newest earlier row, by any model)"
        )
    logger.warning(
        "as-of %s is earlier than the latest run of %s in %s (as of %s): a back-fill; %s",
        f"{run.as_of:%Y-%m-%d %H:%M}", run.model_name, target, f"{latest:%Y-%m-%d %H:%M}",
        recomputed,
    )  # fmt: skip
    return latest


def check_shared_leads(
    target: str | os.PathLike[str] | SinkTarget | None,
    model_name: str,
    lead_ids: pd.Series,
    runs: pd.DataFrame | None = None,
) -> None:
    """Refuse a model name new to ``target`` whose leads (``lead_ids``) other model names
    scored there: another data set whose ids overlap.

    ``scored_leads`` and the closed records key a lead by ``lead_id`` alone, so the second
    data set's rows would replace the first's, and the first's closed records read as this
    input's outcomes gone missing (the refusal of reopened leads said so, wrongly). Data sets
    with ids of their own share a target; overlapping ones each take their own. A model folder
    ``crm`` and the registered ``leadscore-crm`` are one data set
    (:func:`~leadscore.sinks.data_set_of`). ``runs``: :func:`~leadscore.sinks.target_runs` of
    the target, where the caller has it.
    """
    if runs is None:
        runs = target_runs(target)
    mine = data_set_of(model_name)
    names = {data_set_of(str(name)) for name in runs["model_name"]}
    if not names or mine in names:
        return
    found = leads_of_other_models(target, model_name, lead_ids.astype(str))
    others = {name: n for name, n in found.items() if data_set_of(name) != mine}
    if not others:
        return
    name, n = max(others.items(), key=lambda item: item[1])
    raise DataError(
        f"{n:,} of the {len(lead_ids):,} leads to score share their ids with leads {name} "
        f"scored into {parse_target(target)}, and {model_name} has never scored there: another "
        "data set? scored_leads and the closed records keep one row per lead_id, so one data "
        "set's leads would replace the other's",
        "Score each data set into its own --target; for a model of the same data set under a "
        "new name, give --same-leads.",
    )


#: An as-of this far past the current time in UTC is named: a run stamped in the future stays
#: the target's latest, and every run before that moment reads as a back-fill.
AHEAD_OF_NOW = pd.Timedelta(minutes=5)


def run_as_of(as_of: pd.Timestamp | str, *, now: pd.Timestamp | None = None) -> pd.Timestamp:
    """The moment a scoring run is stamped with, as naive UTC.

    A day or more ahead is refused, as ``--as-of`` is (:func:`parse_as_of`). Less than that
    is most often a local time taken for UTC: ``pd.Timestamp.now()`` in a notebook east of
    Greenwich stamps the run hours ahead, the run stays the target's latest, and the nightly
    job's runs before that moment read as back-fills that leave ``scored_leads`` alone. It is
    warned about, naming the fix; a time with its zone (``pd.Timestamp.now(tz="UTC")``) is
    converted and never is.
    """
    now = utc_now() if now is None else now
    moment = parse_as_of(as_of, "as_of", now=now)
    if moment - now > AHEAD_OF_NOW:
        logger.warning(
            "as_of %s is %s ahead of the time in UTC (%s): leadscore reads a time without a "
            "zone as UTC, so a local time (pd.Timestamp.now() in Python, or data whose "
            "timestamps are local) stamps the run in the future, and later runs before that "
            'moment will read as back-fills; pass a time in UTC (pd.Timestamp.now(tz="UTC")) '
            "or with its zone, or correct the data's observed_until",
            f"{moment:%Y-%m-%d %H:%M}",
            _hours_ahead(moment - now),
            f"{now:%Y-%m-%d %H:%M}",
        )
    return moment


def _hours_ahead(gap: pd.Timedelta) -> str:
    """``gap`` in hours (``9.0 hours``), or minutes below one hour."""
    minutes = gap.total_seconds() / 60
    return f"{minutes:.0f} minutes" if minutes < 60 else f"{minutes / 60:.1f} hours"


def run_scoring(
    scoring: ScoringModel,
    chunks: Iterable[tuple[pd.DataFrame, pd.Series]],
    *,
    target: str | os.PathLike[str] | None,
    as_of: pd.Timestamp | str,
    with_reasons: bool = True,
    top_n: int = 3,
    progress: bool = True,
    closed: Sequence[pd.Series] | None = None,
    same_leads: bool = False,
) -> ScoringSummary:
    """Score every chunk and commit the run to ``target`` atomically.

    Nothing reaches the target unless every chunk scored: an error (or a kill) midway leaves
    the previous tables untouched. The progress bar counts the leads read out of the input's
    total where ``chunks`` are :class:`LeadChunks` (as :func:`event_feature_chunks` and
    :func:`flat_feature_chunks` return them), the leads scored otherwise.

    ``closed`` holds the ids of leads known closed by ``as_of``; it is read once every chunk
    has been consumed, so the list the chunk functions' ``on_closed`` fills
    (``on_closed=closed.append``) may be passed: those leads leave ``scored_leads``
    (:meth:`leadscore.sinks.RunWriter.close_leads`).

    Once every chunk is scored, one warning per categorical input names values the model
    never saw, and one per numeric input whose typical size moved 30 times or more since the
    test fold (:class:`~leadscore.monitoring.SizeCheck`: a column exported in other units),
    and one per input that came empty for nearly every lead while given on the test fold
    (:class:`~leadscore.monitoring.EmptyCheck`).

    Before scoring, a warning says what the run does to the target's runs: an as-of another
    version of the model already scored, a back-fill before later runs
    (:func:`_warn_run_context`); a model name new to the target whose leads other names
    scored there is refused (:func:`check_shared_leads`) unless ``same_leads``. After the
    commit, the moves whose previous stage another model gave are counted
    (:attr:`ScoringSummary.moves_by_model`) and warned about. ``as_of`` is the moment of the
    run in UTC (:func:`run_as_of`).
    """
    as_of = run_as_of(as_of)
    scored_at = pd.Timestamp(datetime.now(UTC).replace(tzinfo=None)).as_unit("us")
    run = RunKey(as_of=as_of, model_name=scoring.name, model_version=scoring.version)
    read = chunks.progress if isinstance(chunks, LeadChunks) else None
    if read is not None:
        read.count_rows = progress  # no bar: no count query run against the source
    bar = tqdm(unit="lead", desc="scoring", disable=not progress, leave=False)
    seen = _SeenIds()
    rows = moved = 0
    transitions: dict[tuple[str | None, str], int] = {}
    stage_counts = pd.Series(0, index=list(STAGES), dtype="int64")
    unseen: dict[str, int] = {}
    examples: dict[str, str] = {}
    sizes = SizeCheck(scoring.model.drift_reference)
    form = model_data_form(scoring.model)
    empties = EmptyCheck(
        scoring.model.drift_reference, computed_inputs(scoring.model.features, form)
    )
    activity = ActivityCheck(
        scoring.model.drift_reference, scoring.model.features, whole_log_checked=form == "events"
    )
    reopened: list[str] = []  # leads the target had recorded closed, scored open here
    # the bar closes before an error is printed, so the error starts its own line
    with bar, open_run(target, run) as writer:
        runs = target_runs(writer.target)
        backfill_before = _warn_run_context(runs, run, writer.target)
        for X, lead_ids in chunks:
            seen.add(lead_ids)
            if not same_leads:
                check_shared_leads(writer.target, run.model_name, lead_ids, runs)
            if closed is not None:
                reopened += recorded_closed(writer.target, as_of, lead_ids.astype(str))
            # typed once here (score_frame types it again, a no-op on a typed frame) to count
            # the category values the model never saw: they are scored as missing
            try:
                X = scoring.model.prepare(X)
            except DataError as err:
                raise naming_the_lead(err, lead_ids) from None
            for name, values in unseen_values(scoring.model.encoder, X).items():
                unseen[name] = unseen.get(name, 0) + len(values)
                examples.setdefault(name, values.iloc[0])
            sizes.add(X)
            empties.add(X)
            activity.add(X)
            start, parts = bar.n, []
            for begin in range(0, max(len(X), 1), SCORE_SLICE_ROWS):  # an empty chunk once
                part = slice(begin, begin + SCORE_SLICE_ROWS)
                parts.append(
                    score_frame(
                        scoring,
                        X.iloc[part],
                        lead_ids.iloc[part],
                        run=run,
                        scored_at=scored_at,
                        with_reasons=with_reasons,
                        top_n=top_n,
                    )
                )
                done = begin + len(parts[-1])
                share = done / len(X) if len(X) else 1.0
                _advance(bar, read, len(parts[-1]), rows + done, start=start, share=share)
            scored = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
            before = previous_stages(writer.target, as_of, lead_ids=lead_ids.tolist())
            scored = attach_previous_stages(scored, before)
            writer.append(scored)
            stage_counts = stage_counts.add(scored["stage"].value_counts(), fill_value=0)
            moved += int(scored["stage_changed"].sum())
            pairs = scored.groupby(
                [scored["previous_stage"].astype("object").fillna(""), "stage"], observed=True
            ).size()
            for (before, stage), n in pairs.items():
                key = (str(before) or None, str(stage))
                transitions[key] = transitions.get(key, 0) + int(n)
            rows += len(scored)
        warn_unseen_values(unseen, examples, rows)
        sizes.warn()
        empties.warn()
        activity.warn()
        if closed is not None:
            _check_reopened(reopened, rows, writer.target)
        for ids in closed or ():
            writer.close_leads(ids)
        if rows == 0:
            raise DataError(
                f"no open lead was created by {as_of:%Y-%m-%d %H:%M}",
                "Check --as-of and the input data.",
            )
    summary = writer.summary_
    if summary is None:  # pragma: no cover - the writer commits on a clean exit
        raise ModelError("the scoring run did not commit", "Run it again.")
    logger.info("scored %s leads as of %s into %s", f"{rows:,}", as_of, summary.target)
    if summary.restaged_rows:  # another run committed meanwhile: count what was committed
        transitions = run_transitions(summary.target, run)
        moved = sum(n for (before, stage), n in transitions.items() if before not in (None, stage))
    other_models = (runs["as_of"] < run.as_of) & (
        (runs["model_name"] != run.model_name) | (runs["model_version"] != run.model_version)
    )
    result = ScoringSummary(
        write=summary,
        stage_counts={s: int(stage_counts.get(s, 0)) for s in STAGES},
        moved=moved,
        transitions=transitions,
        # only another model's earlier run can have given a previous stage: else no query
        moves_by_model=run_moves_by_model(summary.target, run) if other_models.any() else {},
        backfill_before=backfill_before,
        capacity=_capacity_check(scoring, summary.target, runs, as_of),
    )
    if result.moved_by_other_models():
        logger.warning("%s", result.moved_line())
    if result.capacity is not None and result.capacity.exceeded:
        logger.warning(
            "%s: more than sales can take. The cut-off was fitted on held-out snapshots (event "
            "data: events.every_days apart), and runs between them hand over the leads that "
            "cross it in between; lower stages.sql.target and retrain, or agree a fixed "
            "probability cut-off",
            result.capacity.line(),
        )
    return result


def _capacity_check(
    scoring: ScoringModel, target: str, runs: pd.DataFrame, as_of: pd.Timestamp
) -> CapacityCheck | None:
    """The new SQLs of the period ending at ``as_of`` against an SQL capacity policy (None for
    another policy); ``runs`` are the target's runs before this one (:func:`target_runs`)."""
    policy = scoring.model.stages.policy_
    if policy.sql.policy != "capacity":
        return None
    start = as_of - pd.Timedelta(days=policy.period_days)
    before = runs.loc[(runs["model_name"] == scoring.name) & (runs["as_of"] <= start), "as_of"]
    since = pd.Timestamp(before.max()) if len(before) else None
    return CapacityCheck(
        entries=sql_entries(target, scoring.name, start if since is None else since, as_of),
        capacity=policy.sql.goal,
        period_days=policy.period_days,
        until=as_of,
        since=since,
    )
