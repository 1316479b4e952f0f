"""Scoring on Spark, for lead tables that outgrow one machine.

The batch scorer (:mod:`leadscore.scoring`) scores chunk by chunk on one machine. Here the same
per-chunk function, :func:`leadscore.scoring.score_frame`, runs inside Spark's Python workers,
so a Spark job gives, lead for lead, the rows the batch scorer writes: probability, 0-100
score, stage, previous stage, reasons for and against and the fit and engagement sub-scores,
with the model's name and version and the run's time.

- :func:`score_flat_spark`: one row per lead with the model's feature columns (a flat-table
  model, e.g. one trained with ``--spec``), scored partition by partition.
- :func:`score_events_spark`: the event form (leads, activity log, outcomes). Leads are hashed
  into buckets; each bucket's leads and their activity meet in one Python worker, which builds
  the point-in-time features (:func:`leadscore.features.build_features`) and scores them.
  Features are per lead, so the bucketing changes no value.
- :func:`pyfunc_udf`: MLflow's ``spark_udf`` on a logged or registered model, for pipelines
  that already go through the MLflow registry: a struct column of probability, score and stage.

The model reaches the workers as the text of its two files (LightGBM's booster and the JSON
beside it, :meth:`LeadScoringModel.to_texts`), never as a pickled model object: what a worker
loads can hold numbers, not code. Each worker parses it once per partition (or bucket).

Spark must run with the session time zone UTC (``spark.sql.session.timeZone``): leadscore
stores naive UTC timestamps, and Spark converts timestamps to the session zone on their way to
Python. :func:`local_spark_session` starts a local session set up that way. The result is a
lazy DataFrame: write it wherever the team reads scores (``df.write.parquet``, JDBC, a Delta
table). Previous stages come from the ``previous`` DataFrame given (the earlier runs' rows, e.g.
the ``scored_leads_history`` table): each lead's latest stage before this run's as-of, as the
batch scorer takes it from its sink.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

import pandas as pd

from leadscore.errors import DataError, LeadscoreError, ModelError, SpecError
from leadscore.features import check_lead_columns, lead_columns_read
from leadscore.io import NO_ACTIVITY_ROWS_FIX
from leadscore.schema import (
    ACTIVITIES_REQUIRED,
    LEADS_REQUIRED,
    OUTCOMES_REQUIRED,
    ActivityTypeMap,
    Feature,
    check_activity_types,
    fold_label,
    log_activity_mapping,
    normalized_labels,
    validate_activity_type_map,
)
from leadscore.sinks import COLUMNS, SCORED_LEADS_SCHEMA, RunKey

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.udf import UserDefinedFunction

    from leadscore.model import LeadScoringModel
    from leadscore.schema import FeatureTable
    from leadscore.scoring import ScoringModel

logger = logging.getLogger(__name__)

#: Spark SQL type of each kind of column of the scored-leads table.
_SPARK_TYPES: dict[str, str] = {
    "text": "string",
    "timestamp": "timestamp",
    "double": "double",
    "integer": "int",
    "boolean": "boolean",
}
#: Spark time zones that keep leadscore's naive UTC timestamps unchanged.
_UTC_ZONES = frozenset({"UTC", "Etc/UTC", "GMT", "Etc/GMT", "Z", "+00:00"})
_BUCKET = "_leadscore_bucket"
#: Leads per bucket of the event form: one bucket's leads and activity sit in one worker.
DEFAULT_LEADS_PER_BUCKET = 50_000
#: Struct type returned by :func:`pyfunc_udf` (the pyfunc's output columns).
PYFUNC_RESULT_TYPE = "probability double, score long, stage string"


def scored_leads_ddl() -> str:
    """The scored-leads table as a Spark DDL schema string, from the sinks' one definition."""
    return ", ".join(f"{c.name} {_SPARK_TYPES[c.kind]}" for c in SCORED_LEADS_SCHEMA)


def local_spark_session(
    cores: int = 2, *, driver_memory: str = "2g", app_name: str = "leadscore"
) -> SparkSession:
    """A local Spark session that leadscore can score with (UTC time zone, Arrow batches).

    Spark starts its Python workers with ``$PYSPARK_PYTHON``; when that is not set, it is set
    to this interpreter, so the workers import the same leadscore. Spark's console progress
    bars are off: redrawn with carriage returns, they fill a scheduled job's log (no
    terminal) with ``[Stage 3:>  (0 + 2) / 2]`` lines. Nor does Spark log a failed task's
    traceback and JVM stack (:func:`_quiet_task_failures`): the caller gets the error, and
    :func:`worker_errors` makes a leadscore error one line. Not for clusters: there, the
    cluster's own configuration applies (and must set the UTC session time zone).
    """
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName(app_name)
        .config("spark.driver.memory", driver_memory)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.shuffle.partitions", str(max(2 * cores, 2)))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    _quiet_task_failures(session)
    return session


#: Spark's loggers that print a failed task's Python traceback and JVM stack (50 lines and
#: more) on stderr, before the driver raises the same error to the caller.
TASK_FAILURE_LOGGERS = (
    "org.apache.spark.executor.Executor",
    "org.apache.spark.scheduler.TaskSetManager",
)


def _quiet_task_failures(session: SparkSession) -> None:
    """Turn off Spark's own report of a failed task (:data:`TASK_FAILURE_LOGGERS`).

    A value a worker cannot read (``2,5`` in a number column) is raised on the driver,
    and :func:`worker_errors` makes it leadscore's one line; but the executor and the task
    set manager first logged the worker's traceback and the JVM stack (49-58 lines, even at
    ``setLogLevel("ERROR")``), so the one line came last in a screen of stack. The error
    itself still reaches the caller whole: a failure that is no leadscore error keeps its
    traceback there. In local mode the executor runs in the driver's JVM, so log4j2's
    levels, set here at run time, cover it.
    """
    jvm = session.sparkContext._jvm
    if jvm is None:  # Spark Connect: no JVM here, and its server logs elsewhere
        return
    log4j = jvm.org.apache.logging.log4j
    for name in TASK_FAILURE_LOGGERS:
        log4j.core.config.Configurator.setLevel(name, log4j.Level.OFF)


@dataclass(frozen=True)
class _ShippedModel:
    """What a Spark task carries: the model as text, and what to write on every row."""

    meta_text: str
    booster_text: str
    name: str
    version: str

    @classmethod
    def of(cls, scoring: ScoringModel) -> _ShippedModel:
        meta_text, booster_text = scoring.model.to_texts()
        return cls(meta_text, booster_text, scoring.name, scoring.version)

    def load(self) -> ScoringModel:
        from leadscore.model import LeadScoringModel
        from leadscore.scoring import ScoringModel

        model = LeadScoringModel.from_texts(self.meta_text, self.booster_text)
        return ScoringModel(model=model, name=self.name, version=self.version)


@dataclass(frozen=True)
class _RunSettings:
    """One run's settings, shared by every task: the batch scorer's per-chunk arguments."""

    as_of: pd.Timestamp
    scored_at: pd.Timestamp
    with_reasons: bool
    top_n: int

    def score(self, scoring: ScoringModel, X: pd.DataFrame, lead_ids: pd.Series) -> pd.DataFrame:
        """:func:`leadscore.scoring.score_frame` of one chunk, in the dtypes Spark expects."""
        from leadscore.scoring import score_frame

        run = RunKey(as_of=self.as_of, model_name=scoring.name, model_version=scoring.version)
        scored = score_frame(
            scoring,
            X,
            lead_ids,
            run=run,
            scored_at=self.scored_at,
            with_reasons=self.with_reasons,
            top_n=self.top_n,
        )
        return _as_spark_rows(scored)


def _settings(as_of: pd.Timestamp | str, with_reasons: bool, top_n: int) -> _RunSettings:
    from leadscore.scoring import run_as_of

    scored_at = pd.Timestamp(datetime.now(UTC).replace(tzinfo=None)).as_unit("us")
    return _RunSettings(run_as_of(as_of), scored_at, with_reasons, top_n)


def _check_session(frame: DataFrame) -> None:
    zone = frame.sparkSession.conf.get("spark.sql.session.timeZone")
    if zone not in _UTC_ZONES:
        raise DataError(
            f"the Spark session time zone is {zone!r}, not UTC",
            'Set spark.sql.session.timeZone to "UTC" (local_spark_session does), so that '
            "timestamps reach leadscore unshifted.",
        )


def _require(frame: DataFrame, columns: Sequence[str], what: str, fix: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise DataError(f"{what} has no column {missing[0]!r}{more}", fix)


def _refuse_several_values(frame: DataFrame, columns: Sequence[str], what: str) -> None:
    """Refuse an array, map or struct column among ``columns`` from its type alone (no job).

    The batch scorer and the pyfunc refuse a cell holding several values; on Spark such a
    column failed in every Python worker with pandas' ``unhashable type``, which
    :func:`worker_errors` cannot shorten to one line.
    """
    from pyspark.sql.types import ArrayType, MapType, StructType

    wanted = set(columns)
    for field in frame.schema.fields:
        if field.name in wanted and isinstance(field.dataType, (ArrayType, MapType, StructType)):
            raise DataError(
                f"column {field.name!r} of {what} must hold one value per lead but is "
                f"{field.dataType.simpleString()}",
                "Flatten or drop array, map and struct columns before scoring "
                "(one value per feature).",
            )


#: The last line of a leadscore error raised in a Python worker, within Spark's traceback.
_WORKER_ERROR = re.compile(
    r"^leadscore\.errors\.(DataError|SpecError|ModelError|RequestError): (.+)$", re.M
)
_ERROR_CLASSES: dict[str, type[LeadscoreError]] = {
    "DataError": DataError,
    "SpecError": SpecError,
    "ModelError": ModelError,
    "RequestError": DataError,  # the pyfunc's refusal of a request (pyfunc_udf's workers)
}


@contextmanager
def worker_errors() -> Iterator[None]:
    """Raise a leadscore error that a Python worker raised (a value no number, an infinite
    value, a repeated id within a batch) as the one-line error it is, not inside Spark's
    worker traceback. The scorers check their input with it; wrap the action that runs a
    scored DataFrame (``write``, ``toPandas``) in it to get the same for the rows the check
    did not sample::

        with worker_errors():
            scored.write.parquet("scores/runs/2026-06-30")
    """
    from pyspark.errors import PythonException

    try:
        with warnings.catch_warnings():
            # PySpark also warns with the worker's traceback when Arrow's toPandas fails
            warnings.filterwarnings("ignore", "toPandas attempted Arrow optimization")
            yield
    except PythonException as err:
        found = _WORKER_ERROR.findall(str(err))
        if not found:
            raise
        kind, message = found[-1]
        raise _ERROR_CLASSES[kind](message.strip()) from None


def utc_literal(moment: pd.Timestamp) -> Column:
    """``moment`` (UTC; naive reads as UTC) as a Spark timestamp literal.

    PySpark turns a naive ``datetime`` into an instant in the driver's local time zone, not
    the session's: on a Berlin laptop in summer an as-of of 15:00 became 13:00 UTC, and
    leads closed in those hours were scored as open. A zone-aware ``datetime`` is converted
    as the instant it names.
    """
    from pyspark.sql import functions as F

    stamp = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
    return F.lit(stamp.to_pydatetime())


def _check_unique_ids(frame: DataFrame, column: str, what: str) -> None:
    """One aggregation job: a missing (or blank) or repeated id, or two ids that differ only by
    spaces around them, stops the run before anything is scored, as in the batch scorer."""
    from pyspark.sql import functions as F

    written = F.col(column).cast("string")
    bad = (
        frame.groupBy(F.trim(written).alias("_id"))
        .agg(
            F.count(F.lit(1)).alias("count"),
            F.countDistinct(written).alias("spellings"),
            F.min(written).alias("first"),
            F.max(written).alias("last"),
        )
        .where((F.col("count") > 1) | F.col("_id").isNull() | (F.col("_id") == ""))
        .limit(1)
        .collect()
    )
    if not bad:
        return
    row = bad[0]
    if row["_id"] is None or row["_id"] == "":
        raise DataError(
            f"{what}.{column} is empty in {row['count']} row(s)", "Give every row a lead id."
        )
    if row["spellings"] > 1:
        raise DataError(
            f"lead ids {row['first']!r} and {row['last']!r} differ only by spaces around them "
            f"in {what}",
            "Strip the spaces around ids in the export: each is one lead.",
        )
    raise DataError(
        f"lead {str(row['first'])!r} appears {row['count']} times in {what}",
        "Keep one row per lead.",
    )


def _with_previous(scored: DataFrame, previous: DataFrame | None, as_of: pd.Timestamp) -> DataFrame:
    """Fill ``previous_stage`` and ``stage_changed`` from ``previous``, as the sinks do.

    With an ``as_of`` column (a scored-leads or history table from any sink), each lead's
    previous stage is that of its latest row strictly before this run's ``as_of`` (ties broken
    by scored_at, model name and version, like :func:`leadscore.sinks.previous_stages`), so
    re-running an as-of sees the same previous stages. Without one, ``previous`` is taken as
    one row per lead.
    """
    if previous is None:
        return scored
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    _require(
        previous,
        ("lead_id", "stage"),
        "the previous stages",
        "Pass the stages of earlier runs (lead_id, stage, and as_of to pick each lead's "
        "latest earlier one), e.g. the scored_leads_history table.",
    )
    before = previous.withColumn("_prev_id", F.col("lead_id").cast("string"))
    if "as_of" in previous.columns:
        cutoff = utc_literal(as_of)
        order = [
            c
            for c in ("as_of", "scored_at", "model_name", "model_version")
            if c in previous.columns
        ]
        newest_first = Window.partitionBy("_prev_id").orderBy(*[F.col(c).desc() for c in order])
        before = (
            before.where(F.col("as_of").cast("timestamp") < cutoff)
            .withColumn("_rank", F.row_number().over(newest_first))
            .where(F.col("_rank") == 1)
        )
    before = before.select("_prev_id", F.col("stage").alias("_prev_stage")).dropDuplicates(
        ["_prev_id"]
    )
    fresh = scored.drop("previous_stage", "stage_changed")
    joined = fresh.join(before, fresh["lead_id"] == before["_prev_id"], "left")
    filled = {
        "previous_stage": F.col("_prev_stage"),
        "stage_changed": F.coalesce(F.col("_prev_stage") != F.col("stage"), F.lit(False)),
    }
    return joined.select(*[filled.get(c, F.col(c)).alias(c) for c in COLUMNS])


def _as_spark_rows(scored: pd.DataFrame) -> pd.DataFrame:
    """The scored chunk with pandas dtypes Arrow maps onto :func:`scored_leads_ddl`."""
    out = scored.copy()
    out["previous_stage"] = out["previous_stage"].astype("object")
    out["stage_changed"] = out["stage_changed"].astype(bool)
    for name in ("score", "fit_score", "engagement_score"):
        out[name] = out[name].astype("Int32")
    return out


#: Most leads the input checks read (:func:`_warn_changed_inputs`): a random sample of more.
#: Reading every row of a flat table costs as much as typing it for the model (a million
#: rows of 60 columns: 16 s, 40% of a scoring without reasons), while a typical size or an
#: empty share is read as well off 100,000 leads.
CHECKED_LEADS = 100_000
#: ``bin`` of the rows :func:`_input_counter` writes for the leads counted, for the
#: missing values of an input and for its category values the model never saw; the size
#: bins of :class:`SizeCheck` are 0 and up.
_ROWS_BIN = -2
_MISSING_BIN = -1
_UNSEEN_BIN = -3
_ACTIVE_BIN = -4  # leads with an activity input above 0 (ActivityCheck)
_COUNTS_DDL = "item string, bin int, n long, example string"


#: Makes, once per partition and with the model loaded for it, the function that types a
#: batch's inputs for the checks.
_InputReader = Callable[["LeadScoringModel", str], Callable[[pd.DataFrame], pd.DataFrame]]


def _flat_reader(
    missing_values: tuple[str, ...], model: LeadScoringModel, id_column: str
) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """A flat batch's inputs typed as the model types them when it scores the batch."""
    from leadscore.datasets import mark_missing

    return lambda batch: model.prepare(
        mark_missing(batch, list(missing_values), as_written=(id_column,))
    )


def _event_reader(
    model: LeadScoringModel, id_column: str
) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """A batch of the leads table's fit features, as the event model builds them."""
    from leadscore.features import lead_fit_features

    return lambda batch: lead_fit_features(batch, model.features)


def _input_counter(
    shipped: _ShippedModel,
    reader: _InputReader,
    id_column: str,
    sized: tuple[str, ...],
    given: tuple[str, ...],
    active: tuple[str, ...] = (),
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The function each partition runs for :func:`_warn_changed_inputs`: per batch, the
    leads counted, each checked input's missing values, sizes (log-scale bins), leads above 0
    (``active``) and category values the model never saw (with one of them as an example). A
    value the model cannot read is the batch scorer's error, naming the lead (``id_column``)."""

    def count_inputs(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import numpy as np

        from leadscore.encoding import unseen_values
        from leadscore.monitoring import missing_mask, size_histogram
        from leadscore.scoring import naming_the_lead

        model = shipped.load().model
        read = reader(model, id_column)
        names = [f.name for f in model.features]
        for batch in batches:
            if batch.empty:
                continue
            try:
                inputs = read(batch)
                # typed as the model scores them (a no-op on a flat batch, typed already)
                unseen = unseen_values(model.encoder, model.prepare(inputs.reindex(columns=names)))
            except DataError as err:
                raise naming_the_lead(err, batch[id_column].reset_index(drop=True)) from None
            missing = [int(missing_mask(inputs[item]).sum()) for item in given]
            above = {
                item: int((x.notna() & (x != 0)).sum())
                for item in active
                if item in inputs.columns
                for x in [pd.to_numeric(inputs[item], errors="coerce")]
            }
            yield pd.DataFrame(
                {
                    "item": ["", *given, *above, *unseen],
                    "bin": [_ROWS_BIN]
                    + [_MISSING_BIN] * len(given)
                    + [_ACTIVE_BIN] * len(above)
                    + [_UNSEEN_BIN] * len(unseen),
                    "n": [
                        len(batch),
                        *missing,
                        *above.values(),
                        *(len(v) for v in unseen.values()),
                    ],
                    "example": [None] * (1 + len(given) + len(above))
                    + [v.iloc[0] for v in unseen.values()],
                }
            )
            for item in sized:
                counts = size_histogram(inputs[item])
                at = np.flatnonzero(counts)
                yield pd.DataFrame(
                    {"item": item, "bin": at.astype("int32"), "n": counts[at], "example": None}
                )

    return count_inputs


def _warn_unseen(unseen: pd.DataFrame, checked: int, scored: int) -> None:
    """One warning per categorical input holding values the model never saw, as the batch
    scorer gives per run (:func:`leadscore.encoding.warn_unseen_values`); counted on a random
    ``checked`` of the ``scored`` leads, it says so."""
    from leadscore.encoding import warn_unseen_values

    counts = dict(zip(unseen["item"].astype(str), unseen["n"].astype(int), strict=True))
    examples = dict(zip(unseen["item"].astype(str), unseen["example"].astype(str), strict=True))
    if checked >= scored:
        warn_unseen_values(counts, examples, scored)
        return
    for name, n in counts.items():
        logger.warning(
            "%s of a random %s of the %s leads scored have a value of %r the model never saw "
            "in training (e.g. %r): it is scored as missing, so their scores may be off; "
            "retrain on data that holds it, or map it to a known value",
            f"{n:,}",
            f"{checked:,}",
            f"{scored:,}",
            name,
            examples[name],
        )


def _warn_changed_inputs(
    rows: DataFrame,
    n_rows: int | None,
    reader: _InputReader,
    scoring: ScoringModel,
    id_column: str,
    *,
    check_activity: bool = False,
) -> None:
    """Warn, on the driver, of each input whose typical size moved 30 times or more since the
    test fold (:class:`~leadscore.monitoring.SizeCheck`: a column exported in other units),
    of each that came empty for nearly every lead (:class:`EmptyCheck`), with
    ``check_activity`` (flat data, whose activity inputs are columns ``reader`` gives) of an
    activity whose inputs went 0 for nearly every lead (:class:`ActivityCheck`: its tracking
    stopped), and of each
    categorical input holding values the model never saw (scored as missing: ``tiktok`` as a
    source, or ``True`` from a Spark boolean column where the model learnt ``Yes``), one line
    per input for the whole run, as the batch scorer does. The workers warn of nothing.

    One Spark job over ``rows`` (the ``n_rows`` leads scored, counted here where ``None``,
    or a random :data:`CHECKED_LEADS` of them): ``reader`` makes the function that types a
    batch's inputs as the model reads them (at least those the checks hold), each worker
    counts their missing values, their sizes in the size check's log-scale bins and their
    unseen categories, and the driver collects the summed counts (a few thousand rows at
    most), never the leads. A value the model cannot read stops the job with the batch
    scorer's line naming the lead (``id_column`` of ``rows``). A model without a drift
    reference nor categorical inputs checks nothing and runs no job.
    """
    from pyspark.sql import functions as F

    from leadscore.monitoring import (
        ActivityCheck,
        EmptyCheck,
        SizeCheck,
        computed_inputs,
        model_data_form,
    )

    sizes = SizeCheck(scoring.model.drift_reference)
    computed = computed_inputs(scoring.model.features, model_data_form(scoring.model))
    empties = EmptyCheck(scoring.model.drift_reference, computed)
    activity = (
        ActivityCheck(scoring.model.drift_reference, scoring.model.features)
        if check_activity
        else None
    )
    active = tuple(activity.active) if activity is not None else ()
    if (
        not sizes.sizes
        and not empties.given
        and not active
        and not scoring.model.encoder.categories
    ):
        return
    if n_rows is None:
        n_rows = rows.count()
    if n_rows > CHECKED_LEADS:
        rows = rows.sample(fraction=CHECKED_LEADS / n_rows, seed=0)
    counter = _input_counter(
        _ShippedModel.of(scoring),
        reader,
        id_column,
        tuple(sizes.sizes),
        tuple(empties.given),
        active,
    )
    with worker_errors():
        counted: pd.DataFrame = (
            rows.mapInPandas(counter, _COUNTS_DDL)
            .groupBy("item", "bin")
            .agg(F.sum("n").alias("n"), F.min("example").alias("example"))
            .toPandas()
        )
    bins = counted["bin"].to_numpy()
    missing = counted[bins == _MISSING_BIN]
    empties.add_counts(
        int(counted.loc[bins == _ROWS_BIN, "n"].sum()),
        dict(zip(missing["item"].astype(str), missing["n"].astype(int), strict=True)),
    )
    for item, part in counted[bins >= 0].groupby("item"):
        sizes.add_counts(str(item), part["bin"].to_numpy(), part["n"].to_numpy())
    checked = int(counted.loc[bins == _ROWS_BIN, "n"].sum())
    _warn_unseen(counted[bins == _UNSEEN_BIN], checked, n_rows)
    sizes.warn()
    empties.warn(scored=n_rows)
    if activity is not None:
        above = counted[bins == _ACTIVE_BIN]
        activity.add_counts(
            checked, dict(zip(above["item"].astype(str), above["n"].astype(int), strict=True))
        )
        activity.warn(scored=n_rows)


def _flat_scorer(
    shipped: _ShippedModel,
    settings: _RunSettings,
    id_column: str,
    missing_values: tuple[str, ...],
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    def score_partition(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from leadscore.datasets import mark_missing
        from leadscore.schema import to_lead_ids
        from leadscore.scoring import naming_the_lead

        scoring = shipped.load()
        for batch in batches:
            if batch.empty:
                continue
            rows = mark_missing(batch, list(missing_values), as_written=(id_column,))
            lead_ids = to_lead_ids(rows[id_column], "leads")
            try:
                scored = settings.score(scoring, rows, lead_ids)
            except DataError as err:  # as the batch scorer says it: which lead
                raise naming_the_lead(err, lead_ids.reset_index(drop=True)) from None
            yield scored

    return score_partition


def score_flat_spark(
    frame: DataFrame,
    scoring: ScoringModel,
    *,
    id_column: str,
    as_of: pd.Timestamp | str,
    missing_values: Sequence[str] = (),
    previous: DataFrame | None = None,
    with_reasons: bool = True,
    top_n: int = 3,
) -> DataFrame:
    """Score a flat Spark table (one row per lead, the model's feature columns) on Spark.

    Parameters
    ----------
    frame : the leads: ``id_column`` and every feature the model was trained on (other
        columns are ignored; empty values are fine).
    scoring : the model and the name and version to record
        (:func:`leadscore.scoring.load_scoring_model`).
    as_of : the moment the features describe, recorded on every row.
    missing_values : "not answered" tokens read as missing, as the data set's spec lists them
        (``spec.missing_values``, e.g. ``Select``). A model that recorded its spec's tokens at
        training reads those as missing itself (:meth:`LeadScoringModel.without_missing_tokens`,
        as its pyfunc and :func:`pyfunc_udf` do); these are read as missing besides them.
    previous : stages of earlier runs (``lead_id``, ``stage``, and ``as_of`` to take each
        lead's latest one before this run, e.g. the ``scored_leads_history`` table), for
        ``previous_stage`` and ``stage_changed``; none: every lead is scored for the first time.
    with_reasons, top_n : as in the batch scorer: reasons and sub-scores from TreeSHAP, or
        probability, score and stage only (far faster).

    Returns
    -------
    A lazy DataFrame with the scored-leads columns (:func:`scored_leads_ddl`). Before it is
    returned, one Spark job holds the inputs against the test fold's and warns of a column
    exported in other units or one that came empty, as the batch scorer does.

    Raises
    ------
    DataError
        The session is not in UTC, a column is missing or holds arrays, maps or structs, or
        a lead id is empty or repeated (checked with one Spark job before anything is scored).
    """
    _check_session(frame)
    features = [f.name for f in scoring.model.features]
    _require(
        frame,
        [id_column],
        "the leads to score",
        "Score a table with the same id column as the training data.",
    )
    _require(
        frame,
        features,
        "the leads to score",
        "Add the column (empty values are fine); the model needs every feature it was trained on.",
    )
    _refuse_several_values(frame, features, "the leads to score")
    _check_unique_ids(frame, id_column, "the leads to score")
    settings = _settings(as_of, with_reasons, top_n)
    shipped = _ShippedModel.of(scoring)
    selected = frame.select(*dict.fromkeys([id_column, *features]))
    _warn_changed_inputs(
        selected,
        None,
        partial(_flat_reader, tuple(missing_values)),
        scoring,
        id_column,
        check_activity=True,
    )
    scored = selected.mapInPandas(
        _flat_scorer(shipped, settings, id_column, tuple(missing_values)),
        scored_leads_ddl(),
    )
    return _with_previous(scored, previous, settings.as_of)


def _bucket_features(
    leads: pd.DataFrame,
    activities: pd.DataFrame,
    settings: _RunSettings,
    type_map: ActivityTypeMap,
    scoring: ScoringModel,
) -> FeatureTable | None:
    """One bucket's leads and activity as the model's features at the run's as-of, as
    ``leadscore score --data`` builds them; ``None`` for a bucket without leads."""
    from leadscore.features import build_features
    from leadscore.schema import validate_closed_loop

    if leads.empty:
        return None
    data = validate_closed_loop(
        leads.drop(columns=_BUCKET),
        activities.drop(columns=_BUCKET),
        None,
        observed_until=settings.as_of,
        activity_types=type_map,
        warn_whole=False,
    )
    # the driver warns of the log's details once (_warn_unrecognised_details), not
    # every bucket in its executor's log
    table = build_features(
        data, settings.as_of, threads=1, features=scoring.model.features, on_details=None
    )
    return None if table.frame.empty else table


def _event_scorer(
    shipped: _ShippedModel, settings: _RunSettings, type_map: ActivityTypeMap
) -> Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame]:
    def score_bucket(leads: pd.DataFrame, activities: pd.DataFrame) -> pd.DataFrame:
        scoring = shipped.load()
        table = _bucket_features(leads, activities, settings, type_map, scoring)
        if table is None:
            return pd.DataFrame({c: pd.Series(dtype="object") for c in COLUMNS})
        return settings.score(scoring, table.X, table.frame["lead_id"])

    return score_bucket


_ACTIVE_DDL = "item string, n long"


def _activity_counter(
    shipped: _ShippedModel, settings: _RunSettings, type_map: ActivityTypeMap
) -> Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame]:
    """What each bucket runs for :func:`_warn_quiet_activity`: its leads (item ``""``) and,
    per engagement input :class:`ActivityCheck` holds, its leads with the input above 0."""

    def count_bucket(leads: pd.DataFrame, activities: pd.DataFrame) -> pd.DataFrame:
        from leadscore.monitoring import ActivityCheck

        scoring = shipped.load()
        table = _bucket_features(leads, activities, settings, type_map, scoring)
        if table is None:
            return pd.DataFrame({"item": pd.Series(dtype="str"), "n": pd.Series(dtype="int64")})
        check = ActivityCheck(scoring.model.drift_reference, scoring.model.features)
        check.add(table.X)
        counts = check.counts()
        return pd.DataFrame({"item": ["", *counts], "n": [check.rows, *counts.values()]})

    return count_bucket


def _warn_quiet_activity(
    open_leads: DataFrame,
    n_open: int,
    activities: DataFrame,
    scoring: ScoringModel,
    settings: _RunSettings,
    type_map: ActivityTypeMap,
    leads_per_bucket: int,
) -> None:
    """Warn, on the driver, of an activity whose engagement inputs went 0 for nearly every
    open lead (:class:`~leadscore.monitoring.ActivityCheck`: its tracking or its connector
    stopped), as ``leadscore score --data`` does. The inputs are sums over the log, so they
    are built here as the scorer builds them: one more pass over a random
    :data:`CHECKED_LEADS` of the ``n_open`` leads (all of them below that) and their
    activity, whose counts alone reach the driver; it builds their features a second time
    (3.0 s of an 8.7 s local run on 477 open leads). A model without such an input, or fewer
    open leads than the check needs (:data:`~leadscore.monitoring.MIN_EMPTY_LEADS`), runs
    nothing. Unlike the batch reader, Spark has no warning of a log without activity in the
    last 90 days, so that case is named here too, one line per activity."""
    from pyspark.sql import functions as F

    from leadscore.monitoring import MIN_EMPTY_LEADS, ActivityCheck

    activity = ActivityCheck(scoring.model.drift_reference, scoring.model.features)
    if not activity.active or min(n_open, CHECKED_LEADS) < MIN_EMPTY_LEADS:
        return  # nothing it could warn of: no job
    leads = open_leads
    if n_open > CHECKED_LEADS:
        leads = leads.sample(fraction=CHECKED_LEADS / n_open, seed=0)
    n_buckets = max(1, math.ceil(min(n_open, CHECKED_LEADS) / leads_per_bucket))
    bucket = F.pmod(F.xxhash64(F.col("lead_id").cast("string")), F.lit(n_buckets))
    theirs = activities.join(leads.select("lead_id"), "lead_id", "left_semi")
    with worker_errors():
        counted: pd.DataFrame = (
            leads.withColumn(_BUCKET, bucket)
            .groupBy(_BUCKET)
            .cogroup(theirs.withColumn(_BUCKET, bucket).groupBy(_BUCKET))
            .applyInPandas(
                _activity_counter(_ShippedModel.of(scoring), settings, type_map), _ACTIVE_DDL
            )
            .groupBy("item")
            .agg(F.sum("n").alias("n"))
            .toPandas()
        )
    n = dict(zip(counted["item"].astype(str), counted["n"].astype(int), strict=True))
    activity.add_counts(n.pop("", 0), n)
    activity.warn(scored=n_open)


def _checked_activity_types(
    activities: DataFrame,
    activity_types: DataFrame | pd.DataFrame | None,
    features: Sequence[Feature] = (),
) -> tuple[ActivityTypeMap, dict[str, int]]:
    """The map of ``activity_types`` (one without rules where none is given) and the log's
    rows per type as written, counted in Spark and checked on the driver, as the folder
    readers check the whole log: a type still unknown once mapped, or a log whose every row
    the map ignores, is one line here rather than a worker's traceback.

    A log without rows is refused as the batch readers refuse it (:data:`NO_ACTIVITY_ROWS_FIX`)
    when the model has engagement features (``features``): an export gone wrong, which would
    score every lead as inactive and overwrite its scores. The count costs no job of its own:
    it is the sum of the counts per type."""
    place = "the activity_types DataFrame"
    if activity_types is None:
        type_map = ActivityTypeMap(place="an activity_types DataFrame (activity_types=)")
    else:
        frame = (
            activity_types
            if isinstance(activity_types, pd.DataFrame)
            else activity_types.toPandas()
        )
        type_map = validate_activity_type_map(frame, place)
    counts: dict[str, int] = {}
    missing = 0
    for label, n in activities.groupBy("activity_type").count().collect():
        if label is None:
            missing += int(n)
        else:
            counts[str(label)] = int(n)
    if not counts and not missing and any(f.group == "engagement" for f in features):
        raise DataError("the activities DataFrame has no rows", NO_ACTIVITY_ROWS_FIX)
    mapping = type_map.mapping(counts, missing)
    if mapping is not None:
        log_activity_mapping(mapping)
    check_activity_types(type_map.mapped_counts(counts), missing, place=type_map.place)
    return type_map, counts


def _detail_sources(
    type_map: ActivityTypeMap, counts: Mapping[str, int]
) -> tuple[dict[str, str], pd.DataFrame]:
    """Where the log's ``page_view`` and ``form_fill`` details come from, once mapped: the
    types as written whose rows keep the log's own detail (to their leadscore type), and
    (``activity_type``, ``detail``, ``count``) rows for the types whose map row sets the
    detail of every row (all ``counts`` of them)."""
    from leadscore.features import DETAIL_KINDS

    own: dict[str, str] = {}
    set_by_map: list[tuple[str, str, int]] = []
    for label, n in counts.items():
        rule = type_map.rule(label)
        kind = fold_label(label) if rule is None else rule[0]
        if kind not in DETAIL_KINDS:
            continue
        if rule is not None and rule[1] is not None:
            set_by_map.append((kind, rule[1], n))
        else:
            own[label] = kind
    return own, pd.DataFrame(set_by_map, columns=["activity_type", "detail", "count"])


def _warn_unrecognised_details(
    activities: DataFrame, type_map: ActivityTypeMap, counts: Mapping[str, int]
) -> None:
    """Warn once, on the driver, when most page or form details name nothing leadscore
    knows (:func:`leadscore.features.warn_unrecognised_details`), as the batch scorer warns
    once for all its slices: the workers build their buckets' features without a word.

    The rows of the types that read as ``page_view`` or ``form_fill`` once mapped are counted
    in Spark by type and detail, so the driver collects a row per distinct detail (a log of
    URLs may hold millions), never the log; a map row that sets the detail needs no job.
    The whole log counts, every lead's and every time's, not only what is scored.
    """
    from pyspark.sql import functions as F

    from leadscore.features import count_unrecognised_details, warn_unrecognised_details

    own, set_by_map = _detail_sources(type_map, counts)
    parts = [set_by_map] if len(set_by_map) else []
    if own and "detail" in activities.columns:
        counted: pd.DataFrame = (
            activities.where(F.col("activity_type").isin(list(own)))
            .groupBy("activity_type", "detail")
            .count()
            .toPandas()
        )
        counted["activity_type"] = counted["activity_type"].astype(str).map(own)
        parts.append(counted)
    if not parts:
        return
    frame = pd.concat(parts, ignore_index=True)
    frame["detail"] = normalized_labels(frame["detail"])  # as the workers' validation reads it
    warn_unrecognised_details(count_unrecognised_details(frame, rows="count"))


def score_events_spark(
    leads: DataFrame,
    activities: DataFrame,
    outcomes: DataFrame | None,
    scoring: ScoringModel,
    *,
    as_of: pd.Timestamp | str,
    previous: DataFrame | None = None,
    with_reasons: bool = True,
    top_n: int = 3,
    leads_per_bucket: int = DEFAULT_LEADS_PER_BUCKET,
    activity_types: DataFrame | pd.DataFrame | None = None,
) -> DataFrame:
    """Score event-form data (leads, activity log, outcomes) on Spark, as of ``as_of``.

    The leads open at ``as_of`` (created by then, not won or lost by then) are scored with
    features from the activity up to ``as_of``, exactly as ``leadscore score --data`` does.
    Leads are hashed into buckets of about ``leads_per_bucket`` leads; a bucket's leads and
    their activity are grouped into one Python worker (one bucket must fit in a worker's
    memory, as one chunk does for the batch scorer).

    The tables follow the data contract (``leadscore.schema``): leads need ``lead_id`` and
    ``created_at``, activities ``lead_id``, ``occurred_at`` and ``activity_type``, outcomes
    ``lead_id``, ``outcome`` and ``closed_at``. ``activity_types`` is the company's own
    activity vocabulary mapped onto leadscore's, the optional table of the data contract
    (``source_type``, ``activity_type`` or ``ignore``, optional ``detail``), as a Spark or
    pandas DataFrame: it is a few dozen rows, so it is read on the driver, checked as the
    readers check a folder's, and applied in every worker before the features, as ``leadscore
    score --data`` applies it. The log's types are counted on the driver first, so a type
    that is still unknown stops the job with one line naming it, before anything is scored;
    so does an activity log without rows, refused as the batch readers refuse it, for a
    model with engagement features. Its page and form details are counted there too (one
    row per distinct detail reaches the driver), and one warning says so when most name no
    page or form leadscore knows
    (:func:`leadscore.features.warn_unrecognised_details`); the workers do not warn. The
    open leads' columns are held against the test fold's there too (one job: units and empty
    columns), as in :func:`score_flat_spark`, and so are their activity sums (a second job:
    an activity whose tracking stopped, :func:`_warn_quiet_activity`).
    Other parameters as in :func:`score_flat_spark`.
    """
    from pyspark.sql import functions as F

    _check_session(leads)
    for table, name, required in (
        (leads, "leads", LEADS_REQUIRED),
        (activities, "activities", ACTIVITIES_REQUIRED),
        (outcomes, "outcomes", OUTCOMES_REQUIRED),
    ):
        if table is not None:
            _require(
                table, required, f"the {name} table", "Follow the data contract in the README."
            )
    if leads_per_bucket < 1:
        raise DataError(
            f"leads_per_bucket is {leads_per_bucket}", "Give a positive number of leads."
        )
    _check_unique_ids(leads, "lead_id", "leads")
    check_lead_columns(leads.columns, scoring.model.features)
    _refuse_several_values(
        leads, lead_columns_read(leads.columns, scoring.model.features), "the leads table"
    )
    type_map, type_counts = _checked_activity_types(
        activities, activity_types, scoring.model.features
    )
    _warn_unrecognised_details(activities, type_map, type_counts)
    settings = _settings(as_of, with_reasons, top_n)
    cutoff = utc_literal(settings.as_of)
    open_leads = leads.where(F.col("created_at").cast("timestamp") <= cutoff)
    if outcomes is not None:
        closed = outcomes.where(F.col("closed_at").cast("timestamp") <= cutoff).select("lead_id")
        open_leads = open_leads.join(closed, "lead_id", "left_anti")
    n_open = open_leads.count()
    if n_open == 0:
        raise DataError(
            f"no open lead was created by {settings.as_of:%Y-%m-%d %H:%M}",
            "Check as_of and the input data.",
        )
    _warn_changed_inputs(open_leads, n_open, _event_reader, scoring, "lead_id")
    n_buckets = math.ceil(n_open / leads_per_bucket)
    bucket = F.pmod(F.xxhash64(F.col("lead_id").cast("string")), F.lit(n_buckets))
    known = activities.where(F.col("occurred_at").cast("timestamp") <= cutoff).join(
        open_leads.select("lead_id"), "lead_id", "left_semi"
    )
    _warn_quiet_activity(open_leads, n_open, known, scoring, settings, type_map, leads_per_bucket)
    shipped = _ShippedModel.of(scoring)
    scored = (
        open_leads.withColumn(_BUCKET, bucket)
        .groupBy(_BUCKET)
        .cogroup(known.withColumn(_BUCKET, bucket).groupBy(_BUCKET))
        .applyInPandas(_event_scorer(shipped, settings, type_map), scored_leads_ddl())
    )
    return _with_previous(scored, previous, settings.as_of)


def pyfunc_udf(
    spark: SparkSession, model_uri: str, *, tracking_uri: str | None = None
) -> UserDefinedFunction:
    """MLflow's Spark UDF of a logged leadscore model: ``struct(probability, score, stage)``.

    ``model_uri`` is ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or ``runs:/ID/model``
    of a model logged by ``leadscore train``. The model is loaded once on the driver first, so
    an unknown name, alias or version fails here with a one-line :class:`ModelError` rather
    than inside a Spark task. Call the UDF on a struct of the model's feature columns::

        udf = pyfunc_udf(spark, "models:/leadscore-crm@champion")
        df.withColumn("lead_score", udf(F.struct(*feature_columns)))

    The workers run the logged model in this Python environment (``env_manager="local"``).
    A flat-spec model that recorded its spec's "not answered" tokens (``Select``) at training
    reads them as missing, as the batch scorer does, rather than as categories it never saw.
    """
    import mlflow

    from leadscore import tracking

    tracking.load_model_version(model_uri, tracking_uri=tracking_uri)
    resolved = tracking.resolve_tracking_uri(tracking_uri)
    with tracking.quiet_mlflow(), tracking.using_tracking_uri(resolved):
        return mlflow.pyfunc.spark_udf(
            spark, model_uri, result_type=PYFUNC_RESULT_TYPE, env_manager="local"
        )


__all__: list[str] = [
    "DEFAULT_LEADS_PER_BUCKET",
    "PYFUNC_RESULT_TYPE",
    "local_spark_session",
    "pyfunc_udf",
    "score_events_spark",
    "score_flat_spark",
    "scored_leads_ddl",
]
