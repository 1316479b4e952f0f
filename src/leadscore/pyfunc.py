"""The MLflow pyfunc face of a :class:`~leadscore.model.LeadScoringModel`, logged as code.

MLflow's *models from code* logs this file itself as the model: at load time MLflow runs it,
takes the object given to :func:`mlflow.models.set_model`, and calls its ``load_context`` with
the logged artifacts. The artifact is a saved ``LeadScoringModel`` folder (LightGBM text
booster plus JSON), so loading the logged model runs this reviewed file and never unpickles
anything. :mod:`leadscore.tracking` logs it and shares its two helpers; the file is also
copied into the logged model (with the package, as ``code_paths``), so a serving process
without leadscore installed runs the same code the model was trained with.

Input: a DataFrame with the model's feature columns (extra columns are ignored, missing ones
are read as unknown and logged as a warning; an input holding none of them is refused, since
MLflow drops every column that is not a feature and would leave nothing to score). The
"not answered" tokens of a flat-spec model's spec (``Select``), recorded at training, read as
missing, as the batch scorer reads them, and are not reported as values the model never saw.
Output: one row per lead with ``probability`` (calibrated chance of winning), ``score`` (the
same as a whole number 0-100, as CRMs show it) and ``stage`` (``lead``, ``mql`` or ``sql``).
"""

from __future__ import annotations

import logging
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel, PythonModelContext

from leadscore.encoding import check_single_columns
from leadscore.errors import DataError, LeadscoreError

# named, not __name__: MLflow runs this file under a generated module name
logger = logging.getLogger("leadscore.pyfunc")

#: Name of the artifact that holds the saved LeadScoringModel folder: the one definition,
#: which :mod:`leadscore.tracking` logs the folder under and looks it up by.
MODEL_DIR_ARTIFACT = "model_dir"

#: Columns of the pyfunc output, in order.
OUTPUT_COLUMNS: tuple[str, ...] = ("probability", "score", "stage")


def align_features(model: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """The model's feature columns of ``frame`` in order; absent ones become all-missing.

    A serving client may leave out optional fields, and an older champion is compared on data
    that may lack a column it knew: LightGBM reads a missing value as "unknown", which is what
    such a lead is.
    """
    names = [f.name for f in model.features]
    check_single_columns(frame, names)
    return frame.reindex(columns=names)


def check_features(model: Any, frame: pd.DataFrame, *, warned: set[str] | None = None) -> None:
    """Refuse a frame holding none of the model's features; warn about the absent ones.

    Every input of the signature is optional, so MLflow drops the columns it does not know
    before :meth:`LeadScoringPyfunc.predict` sees them: a request with misspelt column names
    would otherwise score nothing (no rows) or every lead as entirely unknown, silently. A
    model trained on event data is refused a frame without any of its activity features too:
    that is a leads table sent as it is, whose few matching columns (``company_size`` as the
    CRM wrote it) would score every lead alike, or fail on a band the features read.
    """
    names = [f.name for f in model.features]
    absent = [name for name in names if name not in frame.columns]
    engaged = [f.name for f in model.features if f.group == "engagement"]
    events = bool(engaged) and set(engaged) <= set(absent) and len(absent) < len(names)
    if events:
        from leadscore.monitoring import model_data_form

        events = model_data_form(model) == "events"
    if events:
        shown = ", ".join(repr(n) for n in engaged[:3])
        raise DataError(
            f"the input holds none of this event-data model's {len(engaged)} activity "
            f"features ({shown}, ...): it scores the features leadscore builds from the "
            "activity log, not a leads table",
            "Build them with leadscore.features.build_features(load_closed_loop(FOLDER), "
            "as_of).frame (one row per lead; drop the leads closed by as_of), or score with "
            "leadscore score --data FOLDER.",
        )
    if len(absent) == len(names):
        shown = ", ".join(repr(n) for n in names[:3])
        raise DataError(
            f"the input holds none of the model's {len(names)} feature columns ({shown}, ...)",
            "Send the leads with the columns named as in training; the logged model's "
            "signature lists them.",
        )
    if absent:
        shown = ", ".join(repr(n) for n in absent[:5]) + (", ..." if len(absent) > 5 else "")
        if warned is not None:
            if "absent" in warned:
                return
            warned.add("absent")  # the same columns in every batch: nothing to count
        logger.warning(
            "%d of %d features are not in the input and score as missing: %s",
            len(absent),
            len(names),
            shown,
        )


def check_single_values(model: Any, frame: pd.DataFrame) -> None:
    """Refuse a feature column whose cells hold several values (a list, an array, a map).

    A Spark array or map column reaches the pyfunc as NumPy arrays or dicts, which the model
    cannot type: pandas failed deep inside (``unhashable type: 'numpy.ndarray'``), a
    traceback :func:`leadscore.spark.worker_errors` cannot shorten, where a timestamp in the
    same column is leadscore's one line. Only object columns that pandas reads as of mixed
    kinds are looked at one cell at a time: a column of text or numbers is typed in C
    (``infer_dtype``, about a millisecond for 10,000 rows).
    """
    from pandas.api.types import infer_dtype

    for f in model.features:
        if f.name not in frame.columns or frame[f.name].dtype != object:
            continue
        values = frame[f.name]
        if infer_dtype(values, skipna=True) not in ("mixed", "unknown-array"):
            continue
        several = values.map(lambda v: isinstance(v, (list, tuple, set, dict, np.ndarray)))
        if several.any():
            first = values[several].iloc[0]
            shown = list(first) if isinstance(first, (np.ndarray, tuple, set)) else first
            err = DataError(
                f"column {f.name!r} must hold one value per lead but holds {shown!r} "
                f"in {int(several.sum()):,} row(s)",
                "Send one value per feature (flatten or drop array, map and struct columns "
                "before scoring).",
            )
            err.rows = np.flatnonzero(several.to_numpy())
            raise err


def check_not_all_missing(model: Any, prepared: pd.DataFrame, *, refuse: bool = True) -> bool:
    """Refuse (``refuse``) or warn about a frame in which every feature is missing for every
    lead; return whether it was so.

    Such a frame is a request whose fields all came empty (an export or a join gone wrong):
    every lead would get the base rate and stage ``lead`` without a word. A request of 100
    leads or more is refused, as a frame holding none of the feature columns is
    (:func:`check_features`), since an absent column and an empty one score alike; a smaller
    one may honestly know nothing of a lead yet and is scored at the base rate, with a
    warning. :func:`score_frame` never refuses an Arrow batch of a Spark task: whether a
    batch holds only empty rows depends on how the rows fell into batches.
    """
    from leadscore.monitoring import missing_mask

    if prepared.empty or not all(missing_mask(prepared[c]).all() for c in prepared.columns):
        return False
    problem = (
        f"every one of the model's {prepared.shape[1]} features is empty for all "
        f"{len(prepared):,} leads sent"
    )
    fix = (
        "Send the leads' values (a column exported or joined empty scores every lead at the "
        "base rate)."
    )
    if refuse:
        raise DataError(problem, fix)
    logger.warning("%s: scored at the base rate. %s", problem, fix)
    return True


def spark_task_id() -> int | None:
    """The attempt id of the Spark task this process is scoring (MLflow's ``spark_udf`` on a
    worker, where ``predict`` gets one Arrow batch at a time, not a whole request), or
    ``None`` outside one."""
    import sys

    if "pyspark" not in sys.modules:  # a serving process never imports it
        return None
    from pyspark import TaskContext

    task = TaskContext.get()
    return None if task is None else int(task.taskAttemptId())


#: Said after the warnings a Spark task's batch gave (:func:`score_frame` with ``warned``).
SPARK_BATCH_NOTE = (
    "on a Spark worker, the warnings above count one batch of %s leads of this task only and "
    "are not repeated for its later batches: score with leadscore.spark.score_flat_spark for "
    "counts over the whole run"
)


def score_frame(model: Any, frame: pd.DataFrame, *, warned: set[str] | None = None) -> pd.DataFrame:
    """Probability, 0-100 score and stage of each row of ``frame``, as the pyfunc returns them.

    Kept apart from the pyfunc class so that an in-memory model can be scored exactly as the
    logged one is. ``score`` is the probability in per cent, rounded: 37 means "37 in 100
    leads like this one converted". A frame without any of the model's features is a
    :class:`~leadscore.errors.DataError`, see :func:`check_features`; so is a request of 100
    leads or more whose every feature is empty (:func:`check_not_all_missing`; a smaller one,
    or a Spark task's batch, is warned about) and a cell holding several values
    (:func:`check_single_values`).

    Warnings (features absent, category values the model never saw, a column that came empty
    for nearly every lead while given on the test fold, as ``leadscore score`` checks it) are
    one line per feature per call: a call is a request. ``warned`` is for callers that score
    one run in many calls (MLflow's Spark UDF calls once per Arrow batch): a warning whose
    key is in it is not repeated, and a line after the first ones says that they count that
    one batch (the counts of the whole run are the Spark scorers' job, on the driver).
    """
    # the model's own modules only: the logged model loads with its requirements alone
    from leadscore.encoding import unseen_values, warn_unseen_values
    from leadscore.monitoring import MIN_EMPTY_LEADS, EmptyCheck, computed_inputs, model_data_form

    check_features(model, frame, warned=warned)
    aligned = align_features(model, frame)  # a column twice is refused first
    check_single_values(model, aligned)
    prepared = model.prepare(aligned)
    said: list[str] = []  # keys of the warnings given, for a Spark task's ``warned``
    if warned is None or "all-empty" not in warned:
        refuse = warned is None and len(prepared) >= MIN_EMPTY_LEADS
        if check_not_all_missing(model, prepared, refuse=refuse):
            said.append("all-empty")
    # the categories a request holds that the model never saw score as missing, and the
    # columns that came empty: one warning per feature, in the words of `leadscore score`
    unseen = {
        name: values
        for name, values in unseen_values(model.encoder, prepared).items()
        if warned is None or f"unseen:{name}" not in warned
    }
    warn_unseen_values(
        {name: len(values) for name, values in unseen.items()},
        {name: values.iloc[0] for name, values in unseen.items()},
        len(frame),
    )
    empties = EmptyCheck(
        model.drift_reference, computed_inputs(model.features, model_data_form(model))
    )
    if warned is not None:
        empties.given = {k: v for k, v in empties.given.items() if f"empty:{k}" not in warned}
    empties.add(prepared)
    empty = list(empties.empties()["item"])
    empties.warn()
    if warned is not None:
        said += [f"unseen:{n}" for n in unseen] + [f"empty:{n}" for n in empty]
        _note_first_batch(warned, said, len(frame))
    probability = np.asarray(model.predict_proba(prepared, warn_unseen=False), dtype="float64")
    stage = np.asarray(model.stages.transform(probability)).astype(str)
    return pd.DataFrame(
        {
            "probability": probability,
            "score": model.stages.scores(probability),
            "stage": pd.array(stage, dtype="str"),
        },
        index=frame.index,
    )


def _note_first_batch(warned: set[str], keys: list[str], rows: int) -> None:
    """Record the warnings a Spark task just gave (``keys``) and say, once per batch that gave
    any, that they count this batch only: later batches do not repeat them."""
    if keys:
        warned.update(keys)
        logger.warning(SPARK_BATCH_NOTE, f"{rows:,}")


class RequestError(MlflowException, DataError):
    """A request the model refuses, as MLflow's serving reads it and as leadscore's callers
    catch it: an :class:`~mlflow.exceptions.MlflowException` with
    ``INVALID_PARAMETER_VALUE``, so that ``mlflow models serve`` answers 400 with
    leadscore's line (any other error there became "Encountered an unexpected error",
    the line left in a stack trace), and a :class:`~leadscore.errors.DataError`, so that
    ``pyfunc.predict`` raises what the batch scorer raises. Named as a class of
    :mod:`leadscore.errors` in tracebacks: MLflow loads this file under a module name of its
    own, and :func:`leadscore.spark.worker_errors` finds a Spark worker's error by that name.
    """

    __module__ = "leadscore.errors"

    def __init__(self, err: LeadscoreError) -> None:
        super().__init__(str(err), error_code=INVALID_PARAMETER_VALUE)
        self.problem, self.fix = err.problem, err.fix


class LeadScoringPyfunc(PythonModel):
    """pyfunc wrapper: loads the saved model folder and scores DataFrames."""

    def load_context(self, context: PythonModelContext) -> None:
        from leadscore.model import LeadScoringModel

        self.model_ = LeadScoringModel.load(context.artifacts[MODEL_DIR_ARTIFACT])
        # MLflow's Spark UDF calls predict once per Arrow batch, and may keep the loaded model
        # for the life of a worker process (a cluster's model cache): the warnings the
        # current task gave, so that each is one line per task, not one per batch
        self.warned_: set[str] = set()
        self.warned_task_: int | None = None

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        try:
            task = spark_task_id()
            if task is not None and task != self.warned_task_:
                self.warned_, self.warned_task_ = set(), task
            warned = None if task is None else self.warned_
            return score_frame(self.model_, model_input, warned=warned)
        except LeadscoreError as err:
            raise RequestError(err) from None


# MLflow runs this file under a generated module name when it logs or loads the model; an
# ordinary `import leadscore.pyfunc` leaves MLflow's global model slot alone.
if __name__ != "leadscore.pyfunc":
    mlflow.models.set_model(LeadScoringPyfunc())
