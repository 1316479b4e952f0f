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
customer is no longer a lead.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from leadscore.errors import DataError, ModelError
from leadscore.explain import explain_batch
from leadscore.features import build_features
from leadscore.io import (
    TABLE_SUFFIXES,
    iter_closed_loop_chunks,
    iter_table_chunks,
    load_closed_loop,
)
from leadscore.model import LeadScoringModel
from leadscore.schema import ClosedLoopData, Feature, to_lead_ids
from leadscore.sinks import (
    COLUMNS,
    STAGES,
    RunKey,
    WriteSummary,
    attach_previous_stages,
    open_run,
    previous_stages,
)
from leadscore.specs import DatasetSpec

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_LEADS = 100_000
DEFAULT_CHUNK_ROWS = 250_000


@dataclass(frozen=True)
class ScoringModel:
    """A model ready to score, with the name and version written on every scored row."""

    model: LeadScoringModel
    name: str
    version: str


@dataclass(frozen=True)
class ScoringSummary:
    """What a scoring run wrote: the sink's summary, leads per stage, and how many moved."""

    write: WriteSummary
    stage_counts: dict[str, int]
    moved: int

    @property
    def rows(self) -> int:
        return self.write.rows


def load_scoring_model(
    uri: str | os.PathLike[str], *, tracking_uri: str | None = None
) -> ScoringModel:
    """Load a model from an MLflow URI (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``,
    ``runs:/ID/model``) or a local model folder, with the name and version to record.

    Registered models are recorded as their registered name and version; a run as the run id;
    a local folder as the data set it was trained on and the first 12 characters of its
    booster's SHA-256, so that two different folders never share a version.
    """
    from leadscore import tracking

    text = str(uri)
    model, name, version = tracking.load_model_version(text, tracking_uri=tracking_uri)
    if name is None or version is None:
        if text.startswith("runs:/"):
            name, version = "run", text.removeprefix("runs:/").split("/", 1)[0]
        else:
            name = str(model.metadata.get("dataset", Path(text).name))
            version = model.fingerprint[:12]
    return ScoringModel(model=model, name=name, version=version)


def scores_from_probability(p: np.ndarray) -> np.ndarray:
    """The 0-100 integer score people read: the probability in percent, rounded."""
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
    if with_reasons:
        explained = explain_batch(
            model.booster,
            model.calibrator.predict,
            model.features,
            model.prepare(X),
            top_n=top_n,
            calibrate_on="log_odds",
            sub_scorer=model.sub_scorer,
            encode=model.encode,
            rescale="sides",
        )
        p = explained["probability"].to_numpy(dtype="float64")
        texts = {c: explained[c].to_numpy() for c in ("reasons_for", "reasons_against")}
        texts["reasons_json"] = explained["reasons_json"].to_numpy()
        sub = {
            c: (explained[c] if c in explained else pd.Series(pd.NA, index=explained.index))
            .astype("Int64")
            .to_numpy()
            for c in ("fit_score", "engagement_score")
        }
    else:
        p = model.predict_proba(X)
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
            "score": scores_from_probability(p),
            "stage": model.stages.transform(p),
            "previous_stage": None,
            "stage_changed": False,
            **sub,
            **texts,
        }
    )
    return out[list(COLUMNS)]


def _open_leads(data: ClosedLoopData, as_of: pd.Timestamp) -> ClosedLoopData:
    """``data`` without the leads that were closed (won or lost) by ``as_of``."""
    closed = data.outcomes.loc[data.outcomes["closed_at"] <= as_of, "lead_id"]
    if closed.empty:
        return data
    keep = ~data.leads["lead_id"].isin(closed)
    return ClosedLoopData(
        leads=data.leads[keep].reset_index(drop=True),
        activities=data.activities,
        outcomes=data.outcomes,
        observed_until=data.observed_until,
    )


def event_feature_chunks(
    source: str | os.PathLike[str],
    as_of: pd.Timestamp,
    *,
    chunk_leads: int,
    features: Sequence[Feature] | None = None,
) -> Iterator[tuple[pd.DataFrame, pd.Series]]:
    """(features, lead ids) of the open leads of event-form ``source``, a slice at a time.

    A folder is read slice by slice; a DuckDB file or database URL is loaded whole. Pass the
    model's ``features``: the extra lead columns are then the model's in every slice, not
    planned again from the few leads of each slice.
    """
    path = Path(source)
    chunks: Iterable[ClosedLoopData] = (
        iter_closed_loop_chunks(path, chunk_leads=chunk_leads)
        if path.is_dir()
        else [load_closed_loop(source)]
    )
    for data in chunks:
        table = build_features(_open_leads(data, as_of), as_of, features=features)
        if len(table.frame):
            yield table.X, table.frame["lead_id"]


def flat_feature_chunks(
    spec: DatasetSpec, *, source: str | None = None, chunk_rows: int
) -> Iterator[tuple[pd.DataFrame, pd.Series]]:
    """(rows, lead ids) of a flat table, a slice at a time, with the spec's missing tokens.

    Typing is left to the model (:meth:`LeadScoringModel.prepare`), which applies the types and
    category levels it was trained with. ``source`` overrides the spec's table (the current
    leads rather than the training history); the spec's ``table`` and ``query`` still apply to
    a database or DuckDB file given there, not to a CSV or Parquet file. CSV files are read as
    text, as in training, and the spec's ``join`` tables add the columns the input lacks (a
    won date joined from closed deals included). Rows whose label column holds an outcome are
    closed leads and are not scored (:func:`~leadscore.datasets.closed_rows`); a table of
    closed leads only is an error, since scoring the training history is a mistake, not a
    result.
    """
    from leadscore.datasets import closed_rows, join_tables, mark_missing, read_joined_tables

    joined = read_joined_tables(spec)
    location = source if source is not None else spec.resolve(spec.source)
    table, query = spec.table, spec.query
    if source is not None and Path(source).suffix.lower() in TABLE_SUFFIXES:
        table = query = None
    seen = 0
    chunks = iter_table_chunks(
        location, table, query=query, chunk_rows=chunk_rows, text_columns=(spec.id,), strings=True
    )
    closed = 0
    for chunk in chunks:
        if spec.id not in chunk.columns:
            raise DataError(
                f"{location} has no id column {spec.id!r}",
                "Score a table with the same columns as the training data.",
            )
        chunk = mark_missing(join_tables(chunk, spec, joined, scoring=True), spec.missing_values)
        seen += len(chunk)
        if spec.label.column in chunk.columns:
            done = closed_rows(chunk[spec.label.column], spec)
            closed += int(done.sum())
            chunk = chunk[~done.to_numpy()]
        if len(chunk):
            yield chunk, to_lead_ids(chunk[spec.id], spec.name, spec.id)
    if seen == 0:
        raise DataError(f"{location} holds no leads", "Give a table with at least one lead.")
    if closed:
        logger.info(
            "%s: %d closed lead(s) not scored (%s holds an outcome)",
            location,
            closed,
            spec.label.column,
        )
    if closed == seen:
        raise DataError(
            f"{location}: all {seen:,} leads are closed ({spec.label.column!r} holds their "
            "outcome), so none is left to score",
            "Score the current open leads: --input FILE, rows without an outcome.",
        )


def _id_hashes(lead_ids: pd.Series) -> np.ndarray:
    """64-bit hashes of a chunk's ids (80 MB for 10M leads, rather than the strings); a lead
    repeated inside the chunk is an error at once."""
    dup = lead_ids.duplicated()
    if dup.any():
        raise DataError(
            f"lead {lead_ids[dup].iloc[0]!r} appears more than once in the input",
            "Keep one row per lead.",
        )
    return pd.util.hash_array(lead_ids.to_numpy(dtype=object))


def _check_unique_across_chunks(hashes: list[np.ndarray]) -> None:
    """One sort of every chunk's id hashes, before the run commits."""
    every = np.sort(np.concatenate(hashes)) if hashes else np.empty(0, dtype=np.uint64)
    repeated = int((every[1:] == every[:-1]).sum())
    if repeated:
        raise DataError(
            f"{repeated:,} lead id(s) appear in more than one chunk of the input",
            "Keep one row per lead.",
        )


def run_scoring(
    scoring: ScoringModel,
    chunks: Iterable[tuple[pd.DataFrame, pd.Series]],
    *,
    target: str | os.PathLike[str] | None,
    as_of: pd.Timestamp,
    with_reasons: bool = True,
    top_n: int = 3,
    progress: bool = True,
    total: int | None = None,
) -> ScoringSummary:
    """Score every chunk and commit the run to ``target`` atomically.

    Nothing reaches the target unless every chunk scored: an error (or a kill) midway leaves
    the previous tables untouched.
    """
    scored_at = pd.Timestamp(datetime.now(UTC).replace(tzinfo=None)).as_unit("us")
    run = RunKey(as_of=as_of, model_name=scoring.name, model_version=scoring.version)
    bar = tqdm(total=total, unit="lead", desc="scoring", disable=not progress, leave=False)
    hashes: list[np.ndarray] = []
    rows = moved = 0
    stage_counts = pd.Series(0, index=list(STAGES), dtype="int64")
    with open_run(target, run) as writer:
        for X, lead_ids in chunks:
            hashes.append(_id_hashes(lead_ids))
            scored = score_frame(
                scoring,
                X,
                lead_ids,
                run=run,
                scored_at=scored_at,
                with_reasons=with_reasons,
                top_n=top_n,
            )
            before = previous_stages(writer.target, as_of, lead_ids=lead_ids.tolist())
            scored = attach_previous_stages(scored, before)
            writer.append(scored)
            stage_counts = stage_counts.add(scored["stage"].value_counts(), fill_value=0)
            moved += int(scored["stage_changed"].sum())
            rows += len(scored)
            bar.update(len(scored))
        _check_unique_across_chunks(hashes)
        if rows == 0:
            raise DataError(
                f"no open lead was created by {as_of:%Y-%m-%d %H:%M}",
                "Check --as-of and the input data.",
            )
    bar.close()
    summary = writer.summary_
    if summary is None:  # pragma: no cover - the writer commits on a clean exit
        raise ModelError("the scoring run did not commit", "Run it again.")
    logger.info("scored %s leads as of %s into %s", f"{rows:,}", as_of, summary.target)
    return ScoringSummary(
        write=summary,
        stage_counts={s: int(stage_counts.get(s, 0)) for s in STAGES},
        moved=moved,
    )
