"""Hyper-parameter tuning: an Optuna study over the LightGBM parameters that matter on lead data.

Each trial fits a booster on the **fit** fold with early stopping on the **valid** fold, the
same folds, encoder and base parameters as :func:`leadscore.training.train`, and is scored on
the valid fold (log loss by default, or ROC-AUC / PR-AUC). The calibration and test folds are
never seen by the search, so the test metrics of the tuned model stay as honest as those of
the default one. Bad trials are stopped early: as boosting goes on, the valid metric is
reported to the trial (:class:`PruningCallback`) and Optuna's median pruner may end it.

A trial's booster runs on as many threads as its data can keep busy
(:func:`~leadscore.training.booster_threads`):
on a few thousand leads a boosting round is about a millisecond of work, and LightGBM's
default, an OpenMP thread per core, makes every round wait at barriers for all of them, which
gains nothing on an idle machine and costs tens to hundreds of times the work on one busy
with other processes. The scores do not change (the boosters are deterministic); a
``num_threads`` set in ``lightgbm.params`` is used as is.

A parameter the config fixes in ``lightgbm.params`` is not searched: the user's value is
used by every trial and by the final model (:func:`search_space` leaves it out).

The study lives in a storage (an SQLite file by default, beside the MLflow store) under a
name derived from the data set, so a second call continues it with more trials instead of
starting over. A study records the settings of the config that change a trial's value
(:func:`study_config`), and is only continued with the same ones: trials scored under other
fixed parameters, folds or seeds cannot be compared with new ones. A config that ``train``
refuses is refused before the study is created, and a study a run created but no trial of
which completed is deleted again, so that a mistake never leaves a study that refuses its
own fix. The best parameters then train the final model with
``training.train(dataset, config, params=...)``, and a model with the default parameters is
trained on the same folds so that the gain of tuning is measured, not assumed.

MLflow is an edge: :class:`MlflowTrialLogger` records each trial as a nested run under one
parent run, through an explicit client (no process-wide tracking URI is changed).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import optuna
from sqlalchemy.exc import SQLAlchemyError

from leadscore.config import TrainConfig
from leadscore.encoding import FeatureEncoder
from leadscore.errors import ModelError, SpecError
from leadscore.folds import Folds
from leadscore.io import shown_url, sqlite_file
from leadscore.metrics import bootstrap_intervals, evaluate
from leadscore.schema import LabelledDataset
from leadscore.training import (
    TrainingResult,
    base_params,
    fit_early_stopped,
    params_error,
    prepare_training,
    train,
    with_booster_threads,
)

logger = logging.getLogger(__name__)

Objective = Literal["log_loss", "roc_auc", "pr_auc"]

#: Per objective: LightGBM's name of the valid metric and the study direction.
OBJECTIVES: dict[str, tuple[str, Literal["minimize", "maximize"]]] = {
    "log_loss": ("binary_logloss", "minimize"),
    "roc_auc": ("auc", "maximize"),
    "pr_auc": ("average_precision", "maximize"),
}

#: Learning rate at which one pruning step is one boosting round.
REFERENCE_LEARNING_RATE = 0.01

#: Test metrics compared between the tuned and the default model, in report order.
COMPARED_METRICS: tuple[str, ...] = ("roc_auc", "pr_auc", "brier", "ece", "log_loss")


@dataclass(frozen=True)
class TuneSettings:
    """What a tuning run is told; validated on construction (one-line :class:`SpecError`).

    Attributes
    ----------
    trials : trials to run in this call (added to those already in the study); 0 trains
        with the stored study's best trial without searching more.
    timeout : seconds after which no new trial starts; ``None`` for no limit.
    objective : valid-fold metric to optimise: ``log_loss`` (minimised), ``roc_auc`` or
        ``pr_auc`` (maximised).
    study_name : Optuna study name; ``None`` for ``leadscore-<data set name>``.
    storage : Optuna storage URL; ``None`` for :func:`default_storage`.
    seed : seed of the TPE sampler (the boosters use ``config.seed``).
    report_every : steps between two reports of the valid metric to the pruner; a step is a
        round at learning rate 0.01 (see :class:`PruningCallback`).
    report_rounds : rounds at least between two reports: a trial with a high learning rate
        reports every ``report_every * 2**k`` steps, ``k`` the smallest that spaces its
        reports this far (see :func:`report_interval`). A report writes to the study's
        storage and the pruner reads every trial back, which costs more than 20 rounds of a
        booster on a few thousand leads.
    warmup_steps : steps before which no trial is pruned (300: 100 rounds at the default
        learning rate 0.03), so every trial gets a fair start.
    startup_trials : trials completed before the median pruner judges (as many as TPE draws
        at random before it models the results, so the median stands on a broad base).
    """

    trials: int = 30
    timeout: float | None = None
    objective: Objective = "log_loss"
    study_name: str | None = None
    storage: str | None = None
    seed: int = 0
    report_every: int = 50
    report_rounds: int = 20
    warmup_steps: int = 300
    startup_trials: int = 10

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise SpecError(
                f"unknown tuning objective {self.objective!r}",
                f"Use one of {', '.join(OBJECTIVES)}.",
            )
        if not isinstance(self.trials, int) or self.trials < 0:
            raise SpecError(
                f"trials (--trials) must be a whole number of at least 0, got {self.trials!r}",
                "Use e.g. 30 (0 reuses the study's best trial without searching).",
            )
        if self.timeout is not None and not (math.isfinite(self.timeout) and self.timeout > 0):
            raise SpecError(
                f"timeout (--timeout) must be a positive number of seconds, got {self.timeout!r}",
                "Use e.g. 600, or leave it out for no limit.",
            )
        for name in ("report_every", "report_rounds", "startup_trials"):
            if getattr(self, name) < 1:
                raise SpecError(f"{name} must be at least 1", f"Set {name} to e.g. 10.")
        if self.warmup_steps < 0:
            raise SpecError("warmup_steps must not be negative", "Set it to e.g. 300.")
        if self.study_name is not None and not self.study_name.strip():
            raise SpecError("study_name (--study-name) is empty", "Give a name, or leave it out.")

    @property
    def direction(self) -> Literal["minimize", "maximize"]:
        return OBJECTIVES[self.objective][1]

    @property
    def lgb_metric(self) -> str:
        return OBJECTIVES[self.objective][0]


@dataclass(frozen=True)
class ParamRange:
    """One searched LightGBM parameter: ``[low, high]``, on a log scale or not, int or float."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high and (not self.integer or float(value).is_integer())

    def suggest(self, trial: optuna.Trial, name: str) -> float | int:
        if self.integer:
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(name, self.low, self.high, log=self.log)


def search_space(n_rows: int, fixed: Collection[str] = ()) -> dict[str, ParamRange]:
    """The searched parameters for ``n_rows`` training examples (main LightGBM names only:
    :func:`~leadscore.training.default_params` uses them, and an alias would lose to it),
    less those in ``fixed``: a parameter the user set in ``lightgbm.params`` is a decision,
    and a searched value would silently replace it in the final model.

    Leaf sizes scale with the data: thousands of leads need leaves of tens of leads, hundreds
    of thousands can afford more leaves. The categorical knobs (``cat_smooth``, ``cat_l2``,
    ``min_data_per_group``, ``max_cat_threshold``) matter for landing pages and sources
    with hundreds of rare levels.
    """
    space = _full_search_space(n_rows)
    return {name: rng for name, rng in space.items() if name not in fixed}


def _full_search_space(n_rows: int) -> dict[str, ParamRange]:
    big = n_rows >= 20_000
    return {
        "learning_rate": ParamRange(0.01, 0.2, log=True),
        "num_leaves": ParamRange(3, 63 if big else 31, log=True, integer=True),
        "min_data_in_leaf": ParamRange(
            5, int(np.clip(n_rows // 20, 50, 2000)), log=True, integer=True
        ),
        "feature_fraction": ParamRange(0.4, 1.0),
        "bagging_fraction": ParamRange(0.5, 1.0),
        "lambda_l1": ParamRange(1e-3, 10.0, log=True),
        "lambda_l2": ParamRange(1e-3, 50.0, log=True),
        "cat_smooth": ParamRange(1.0, 100.0, log=True),
        "cat_l2": ParamRange(1.0, 50.0, log=True),
        "min_data_per_group": ParamRange(5, 200, log=True, integer=True),
        "max_cat_threshold": ParamRange(8, 64, integer=True),
    }


#: LightGBM parameters that change how fast a booster is fitted, not what it learns: set in
#: ``lightgbm.params`` they are not recorded in a study, so that a study made with 8 threads
#: can be continued with 16.
RUN_ONLY_PARAMS: frozenset[str] = frozenset({"num_threads", "verbosity"})

#: Prefix of the recorded ``lightgbm.params`` in :func:`study_config`.
_PARAMS_KEY = "lightgbm.params."

#: The key of the data's hash in :func:`study_config`.
DATA_HASH_KEY = "data_hash"


def study_config(config: TrainConfig, dataset: LabelledDataset) -> dict[str, Any]:
    """The settings of ``config`` that change a trial's value, under dotted keys, as a study
    records them (JSON values: a tuple becomes a list), so that trials run under other ones
    are never continued or reused (:func:`config_differences`).

    A trial fits on the fit fold and is scored on the valid fold, so what it sees is: the
    parameters fixed in ``lightgbm.params`` (less :data:`RUN_ONLY_PARAMS`), the rounds, early
    stopping and monotone features, the fold sizes, purge and seed, the booster seed, and for
    event-form data the ``events`` section that made the examples. The calibration method, the
    bootstrap, the quality gate and the cold-start and leakage limits are not recorded: they
    act on the final model or stop a run, but never change a trial's score.

    The data are recorded by their hash (``data_hash``, as a training run logs it): a study
    continued on a newer extract would rank trials scored on two valid folds against each
    other, and hand the final model the parameters of the easier one.
    """
    from leadscore.tracking import dataset_fingerprint  # MLflow's import only when tuning

    lgbm = config.lightgbm
    record: dict[str, Any] = {
        f"{_PARAMS_KEY}{name}": value
        for name, value in sorted(lgbm.params.items())
        if name not in RUN_ONLY_PARAMS
    }
    record.update(
        {
            "lightgbm.num_boost_round": lgbm.num_boost_round,
            "lightgbm.early_stopping_rounds": lgbm.early_stopping_rounds,
            "lightgbm.monotone_increasing": list(lgbm.monotone_increasing),
            "lightgbm.monotone_decreasing": list(lgbm.monotone_decreasing),
            **{f"folds.{key}": value for key, value in config.folds.model_dump().items()},
            "seed": config.seed,
            DATA_HASH_KEY: dataset_fingerprint(dataset),
        }
    )
    if dataset.horizon_days is not None:  # event form: the events section made the examples
        record.update({f"events.{key}": v for key, v in config.events.model_dump().items()})
    return json.loads(json.dumps(record))  # as the study's storage gives it back


_UNSET = object()


def config_differences(recorded: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """``"key: A now, B in the study"`` for each recorded setting that differs.

    A parameter missing on one side is unset there (a difference); any other key missing on
    one side was not recorded by that version of leadscore, and is not held against it.
    """
    out = []
    for key in sorted(set(recorded) | set(wanted)):
        there, here = recorded.get(key, _UNSET), wanted.get(key, _UNSET)
        both = there is not _UNSET and here is not _UNSET
        if there != here and (both or key.startswith(_PARAMS_KEY)):
            out.append(f"{key}: {_shown(here)} now, {_shown(there)} in the study")
    return out


def _shown(value: Any) -> str:
    return "unset" if value is _UNSET else json.dumps(value)


@dataclass(frozen=True)
class TuningProblem:
    """The data of every trial, prepared once: the encoded matrix, labels, folds and the
    base parameters (defaults, config, monotone constraints, and ``num_threads`` from
    :func:`~leadscore.training.booster_threads` unless the config sets it) that each trial
    overrides.

    ``fixed_params`` are the searchable parameters the config fixes (left out of ``space``);
    ``config`` is :func:`study_config`, what the study must have been run with.
    """

    matrix: np.ndarray
    y: np.ndarray
    folds: Folds
    encoder: FeatureEncoder
    base_params: dict[str, Any]
    space: dict[str, ParamRange]
    num_boost_round: int
    early_stopping_rounds: int
    dataset_name: str
    fixed_params: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def lgb_dataset(self, rows: np.ndarray, reference: lgb.Dataset | None = None) -> lgb.Dataset:
        # built per trial: LightGBM bins with min_data_in_leaf, which the trials change
        return lgb.Dataset(
            self.matrix[rows],
            label=self.y[rows],
            feature_name=self.encoder.booster_names,
            categorical_feature=self.encoder.categorical_indices,
            reference=reference,
            free_raw_data=True,
        )


def prepare_problem(dataset: LabelledDataset, config: TrainConfig | None = None) -> TuningProblem:
    """Folds, encoder and base parameters exactly as :func:`leadscore.training.train` makes
    them, with its checks (cold start, one-class folds, leakage) run before any trial; the
    trials' boosters run on :func:`~leadscore.training.booster_threads` threads unless
    ``lightgbm.params`` sets ``num_threads`` (a run-only parameter: the study does not record
    it)."""
    config = config or TrainConfig()
    prepared = prepare_training(dataset, config)
    folds, y, encoder = prepared.folds, prepared.y, prepared.encoder
    n_rows = len(folds.fit) + len(folds.valid)
    base = base_params(dataset, config, n_rows)
    if "num_threads" not in base:
        n_features = prepared.matrix.shape[1]
        base = with_booster_threads(base, len(folds.fit), n_features)
        logger.info(
            "trials fit on %d LightGBM thread(s): %s examples x %d features in the fit fold",
            base["num_threads"],
            f"{len(folds.fit):,}",
            n_features,
        )
    fixed = fixed_params(config, n_rows)
    return TuningProblem(
        matrix=prepared.matrix,
        y=y,
        folds=folds,
        encoder=encoder,
        base_params=base,
        space=search_space(n_rows, fixed),
        num_boost_round=config.lightgbm.num_boost_round,
        early_stopping_rounds=config.lightgbm.early_stopping_rounds,
        dataset_name=dataset.name,
        fixed_params=fixed,
        config=study_config(config, dataset),
    )


def fixed_params(config: TrainConfig, n_rows: int) -> dict[str, Any]:
    """The searchable parameters that ``lightgbm.params`` sets, with their values, logged once
    (a user who fixed ``num_leaves`` must see that the search leaves it alone)."""
    searchable = _full_search_space(n_rows)
    fixed = {k: v for k, v in config.lightgbm.params.items() if k in searchable}
    if len(fixed) == len(searchable):
        logger.warning(
            "lightgbm.params fixes every tuned parameter: each trial fits the same model"
        )
    elif fixed:
        shown = ", ".join(f"{k}={v}" for k, v in fixed.items())
        logger.info("fixed by lightgbm.params of the config, not tuned: %s", shown)
    return fixed


def report_interval(learning_rate: float, every: int, min_rounds: int = 1) -> int:
    """Steps between two reports of a trial at ``learning_rate``: ``every * 2**k``, with
    ``k`` the smallest that makes it at least ``min_rounds`` rounds.

    A multiple of ``every`` by a power of two, so the steps a fast learner reports are steps
    every slower trial (and every trial of a study run with ``every`` alone) reports too:
    the median pruner compares trials at the same step.
    """
    interval = every
    while interval * REFERENCE_LEARNING_RATE / learning_rate < min_rounds - 1e-9:
        interval *= 2
    return interval


class PruningCallback:
    """LightGBM callback that reports the valid metric to an Optuna trial and raises
    :class:`optuna.TrialPruned` when the pruner says the trial is behind the others.

    Steps are counted in rounds at the reference learning rate 0.01 (``rounds *
    learning_rate / 0.01``), and a report is made each time that count passes a multiple of
    :func:`report_interval` (``every``, doubled until the reports are ``min_rounds`` rounds
    apart): the median pruner compares trials at the same step, and a trial at learning
    rate 0.01 after 100 rounds has come as far as one at 0.1 after 10. Counted in plain
    rounds, every slow learner would look behind and be pruned, and the search would drift
    to high learning rates.

    Parameters
    ----------
    trial : the running trial.
    metric : LightGBM's name of the reported metric (``binary_logloss``, ``auc``, ...).
    learning_rate : the trial's learning rate.
    every : steps between reports (a report per round would slow the study's storage).
    min_rounds : rounds at least between reports: each is a write to the study's storage
        and a read of its trials by the pruner, slower than many rounds of a small booster.
    valid_name : name of the validation set in ``lgb.train(valid_names=...)``.
    """

    order = 40  # after LightGBM's own callbacks (early stopping is 30)

    def __init__(
        self,
        trial: optuna.Trial,
        metric: str,
        *,
        learning_rate: float = REFERENCE_LEARNING_RATE,
        every: int = 50,
        min_rounds: int = 1,
        valid_name: str = "valid",
    ) -> None:
        self.trial = trial
        self.metric = metric
        self.learning_rate = learning_rate
        self.interval = report_interval(learning_rate, every, min_rounds)
        self.valid_name = valid_name
        self.last_step_ = 0

    def __call__(self, env: lgb.callback.CallbackEnv) -> None:
        rounds = env.iteration + 1
        progress = int(rounds * self.learning_rate / REFERENCE_LEARNING_RATE + 1e-9)
        step = progress - progress % self.interval
        if step <= self.last_step_:
            return
        self.last_step_ = step
        for data_name, metric, value, *_ in env.evaluation_result_list or ():
            if data_name == self.valid_name and metric == self.metric:
                self.trial.report(float(value), step)
                if self.trial.should_prune():
                    raise optuna.TrialPruned(
                        f"pruned at round {rounds} (step {step}): valid {metric} {value:.4f}"
                    )
                return


def suggest_params(trial: optuna.Trial, space: Mapping[str, ParamRange]) -> dict[str, Any]:
    """One point of ``space`` drawn by the trial's sampler."""
    return {name: rng.suggest(trial, name) for name, rng in space.items()}


def make_objective(
    problem: TuningProblem, settings: TuneSettings
) -> Callable[[optuna.Trial], float]:
    """The function a study optimises: fit on the fit fold, early-stop and score on valid."""
    metric = settings.lgb_metric
    valid_rows = problem.folds.valid
    y_valid = problem.y[valid_rows]

    def objective(trial: optuna.Trial) -> float:
        params = {**problem.base_params, **suggest_params(trial, problem.space), "metric": metric}
        train_set = problem.lgb_dataset(problem.folds.fit)
        valid_set = problem.lgb_dataset(valid_rows, reference=train_set)
        started = time.perf_counter()
        pruning = PruningCallback(
            trial,
            metric,
            learning_rate=float(params["learning_rate"]),
            every=settings.report_every,
            min_rounds=settings.report_rounds,
        )
        try:
            booster, best = fit_early_stopped(
                params,
                train_set,
                valid_set,
                num_boost_round=problem.num_boost_round,
                early_stopping_rounds=problem.early_stopping_rounds,
                callbacks=[pruning],
            )
        except lgb.basic.LightGBMError as err:  # the study fails the trial; run_study says why
            trial.set_user_attr(ERROR_ATTR, params_error(err, params).problem)
            raise
        p = booster.predict(problem.matrix[valid_rows], num_iteration=best)
        trial.set_user_attr("best_iteration", best)
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
        return float(evaluate(y_valid, p)[settings.objective])

    return objective


#: User attribute of a trial that LightGBM failed: its error, as :func:`train` words it.
ERROR_ATTR = "error"


def default_storage(tracking_uri: str | None, *, cwd: Path | None = None) -> str:
    """``sqlite:///optuna.db`` beside the MLflow store: in the folder of ``mlflow.db`` when
    the tracking URI is an SQLite file, else in the working directory (or ``cwd``)."""
    folder = (cwd or Path.cwd()).resolve()
    db = sqlite_file(tracking_uri) if tracking_uri else None
    if db is not None:
        folder = (db if db.is_absolute() else folder / db).resolve().parent
    return f"sqlite:///{folder / 'optuna.db'}"


_STORAGE_LOGGERS = ("sqlalchemy", "alembic")


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's logging, and that of its SQL storage, at warning level for the block (a line
    per trial or per table mapping helps no one); restored after."""
    saved = optuna.logging.get_verbosity()
    saved_levels = {name: logging.getLogger(name).level for name in _STORAGE_LOGGERS}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in _STORAGE_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(saved)
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)


def study_name_for(settings: TuneSettings, dataset_name: str) -> str:
    """The study a tuning run uses: ``--study-name``, else ``leadscore-<data set name>``."""
    return settings.study_name or f"leadscore-{dataset_name}"


@contextlib.contextmanager
def _storage_errors(storage: str) -> Iterator[None]:
    """A storage that cannot be opened as the one-line :class:`SpecError` of a bad --storage
    (its password masked), not a traceback from SQLAlchemy."""
    try:
        yield
    except (ValueError, ImportError, SQLAlchemyError) as err:
        raise SpecError(
            f"cannot open Optuna storage {shown_url(storage)!r}: {str(err).splitlines()[0]}",
            "Give a valid --storage URL, e.g. sqlite:///optuna.db.",
        ) from err


def existing_study_names(storage: str) -> list[str]:
    """Names of the studies in ``storage``, without creating anything: an SQLite file that
    does not exist has no study and is not made (Optuna would create it on opening)."""
    db = sqlite_file(storage)
    if db is not None and not db.exists():
        return []
    with _storage_errors(storage), quiet_optuna():
        return list(optuna.study.get_all_study_names(storage))


def check_study_to_reuse(
    settings: TuneSettings,
    dataset_name: str,
    storage: str,
    config: Mapping[str, Any] | None = None,
) -> None:
    """Refuse a study that cannot serve this run, before anything is opened or created.

    With ``--trials 0`` the study must exist already: it is there to lend its best trial, and
    this mistake leaves no empty study (and no storage file) behind. A stored study must have
    been made for the same objective and data set and, when ``config`` (:func:`study_config`)
    is given, have run its trials with the same settings. Run before an MLflow run is opened,
    so that a refused study leaves no failed run either.

    Raises
    ------
    SpecError
        ``settings.trials`` is 0 and ``storage`` holds no study of that name; or the stored
        study is one :func:`check_study` refuses.
    """
    name = study_name_for(settings, dataset_name)
    names = existing_study_names(storage)
    if name in names:
        with _storage_errors(storage), quiet_optuna():
            study = optuna.load_study(study_name=name, storage=storage)
        check_study(study, settings, dataset_name, storage, config)
        return
    if settings.trials:
        return
    known = f" (it has {', '.join(repr(n) for n in sorted(names)[:5])})" if names else ""
    raise SpecError(
        f"--trials 0 reuses the best trial of an existing study, but study {name!r} does not "
        f"exist in {shown_url(storage)}",
        f"Give --trials N to run a search, or name an existing study with --study-name{known}.",
    )


def check_study(
    study: optuna.Study,
    settings: TuneSettings,
    dataset_name: str,
    storage: str,
    config: Mapping[str, Any] | None = None,
) -> None:
    """A stored study's trials are only comparable with this run's when it was made for the
    same objective (and direction) and data set, and, when ``config`` is given, ran under
    the same :func:`study_config`: a best value found with other fixed parameters or folds
    would be compared with values it never competed against.

    A difference in the config is an error, not a warning: the fix is cheap (a new
    ``--study-name``), while a warning scrolls by and the tuned model would silently carry
    parameters searched for another problem. A study without a record (made before studies
    recorded their config) passes: :func:`open_study` warns about it.

    Raises
    ------
    SpecError
        One line naming the differences, with the fix.
    """
    name, attrs = study.study_name, study.user_attrs
    wanted = {"objective": settings.objective, "dataset": dataset_name}
    for key, value in wanted.items():
        if key in attrs and attrs[key] != value:
            raise SpecError(
                f"study {name!r} in {shown_url(storage)} was made for "
                f"{key} {attrs[key]!r}, not {value!r}",
                "Pass another --study-name, or the same objective and data as before.",
            )
    if study.direction.name.lower() != settings.direction:
        raise SpecError(
            f"study {name!r} is set to {study.direction.name.lower()}, but objective "
            f"{settings.objective} needs {settings.direction}",
            "Pass another --study-name.",
        )
    recorded = attrs.get("config")
    if config is None or not isinstance(recorded, Mapping):
        return
    there, here = recorded.get(DATA_HASH_KEY), config.get(DATA_HASH_KEY)
    if there is not None and here is not None and there != here:
        raise SpecError(
            f"study {name!r} in {shown_url(storage)} ran its trials on other data (data hash "
            f"{str(there)[:12]}, now {str(here)[:12]}): their scores are not comparable",
            "Use a new --study-name for this extract, e.g. with its date.",
        )
    differences = config_differences(recorded, config)
    if differences:
        more = f" (and {len(differences) - 3} more)" if len(differences) > 3 else ""
        raise SpecError(
            f"study {name!r} in {shown_url(storage)} ran its trials with another config: "
            f"{'; '.join(differences[:3])}{more}",
            "Use a new --study-name, or the same config as before"
            + _nothing_to_keep(study, storage),
        )


def _nothing_to_keep(study: optuna.Study, storage: str) -> str:
    """The hint for a refused study whose trials all failed (one a version of leadscore
    before this check left behind, with the config that failed them): it holds nothing to
    resume, so deleting it is as good as a new name."""
    trials = study.get_trials(deepcopy=False)
    if not trials or any(t.state != optuna.trial.TrialState.FAIL for t in trials):
        return "."
    url = shown_url(storage)
    url = "<the --storage URL>" if "***" in url else url  # a masked password is no URL
    return (
        f"; its {len(trials)} trial(s) all failed, so nothing is lost by deleting it: "
        f"optuna delete-study --study-name {study.study_name} --storage {url}."
    )


def open_study(
    settings: TuneSettings,
    dataset_name: str,
    storage: str,
    config: Mapping[str, Any] | None = None,
) -> optuna.Study:
    """Create the study, or load it when it exists (resuming).

    ``config`` (:func:`study_config`) is recorded in a new study and checked against a stored
    one's record; ``None`` neither records nor checks it. A stored study without a record,
    but with trials, was made before studies recorded their config: its trials cannot be
    checked, which is a warning (an error would strand every study made so far); the record
    is then written, so that from this run on the study is checked.

    Raises
    ------
    SpecError
        The storage cannot be opened; ``settings.trials`` is 0 and the study does not exist
        (nothing is created then); or an existing study was made for another objective or
        data set, or ran under another config (nothing is changed then).
    """
    return _open_study(settings, dataset_name, storage, config)[0]


def _open_study(
    settings: TuneSettings,
    dataset_name: str,
    storage: str,
    config: Mapping[str, Any] | None = None,
) -> tuple[optuna.Study, bool]:
    """:func:`open_study`, and whether this call created the study (``False``: it was
    loaded, made before or meanwhile elsewhere), which :func:`tune` needs to drop a study
    of its own that no trial completed."""
    check_study_to_reuse(settings, dataset_name, storage, config)
    name = study_name_for(settings, dataset_name)
    pruner = optuna.pruners.MedianPruner(
        n_startup_trials=settings.startup_trials,
        n_warmup_steps=settings.warmup_steps,
        interval_steps=1,  # reports come every report_every steps already
    )
    with _storage_errors(storage), quiet_optuna():
        try:
            study = optuna.create_study(
                storage=storage, study_name=name, pruner=pruner, direction=settings.direction
            )
            created = True
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=name, storage=storage, pruner=pruner)
            created = False
    check_study(study, settings, dataset_name, storage, config)  # made meanwhile elsewhere
    # stamped only once every check passed, so a refused study is left as it was
    study.set_user_attr("objective", settings.objective)
    study.set_user_attr("dataset", dataset_name)
    if config is not None:
        _record_config(study, storage, config)
    # seeded by the history, so a resumed study does not redraw its first random points
    study.sampler = optuna.samplers.TPESampler(seed=settings.seed + len(study.trials))
    return study, created


def drop_unfinished_study(study: optuna.Study, storage: str) -> bool:
    """Delete ``study`` from ``storage`` when none of its trials completed and none is
    running (another worker's), and say whether it was deleted.

    For a study the failed run created itself (:func:`tune`): its failed or pruned trials
    hold nothing to resume, and its recorded config would refuse the corrected one ("ran
    its trials with another config"), so that the fix needed a new ``--study-name``.
    """
    state = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    if any(t.state in (state.COMPLETE, state.RUNNING, state.WAITING) for t in trials):
        return False
    with _storage_errors(storage), quiet_optuna():
        optuna.delete_study(study_name=study.study_name, storage=storage)
    logger.info(
        "study %s deleted from %s: this run created it and no trial completed",
        study.study_name,
        shown_url(storage),
    )
    return True


def _record_config(study: optuna.Study, storage: str, config: Mapping[str, Any]) -> None:
    """Record ``config`` in ``study``, warning when its trials predate any record."""
    if "config" not in study.user_attrs:
        n_trials = len(study.get_trials(deepcopy=False))
        if n_trials:
            logger.warning(
                "study %r in %s holds %d trial(s) from before studies recorded their config: "
                "they cannot be checked against this config; if lightgbm.params, folds or "
                "seeds changed since, use a new --study-name",
                study.study_name,
                shown_url(storage),
                n_trials,
            )
    study.set_user_attr("config", dict(config))


@dataclass(frozen=True)
class StudySummary:
    """What the search found; ``best_params`` are the searched parameters of the best trial,
    ``fixed_params`` the searchable ones that the config fixes instead (a fixed parameter is
    left out of ``best_params`` even when an old study's trial searched it)."""

    study_name: str
    storage: str
    objective: str
    direction: str
    best_params: dict[str, Any]
    best_value: float
    best_trial: int
    best_iteration: int | None
    n_trials: int
    n_complete: int
    n_pruned: int
    n_failed: int
    new_trials: int
    seconds: float
    fixed_params: dict[str, Any] = field(default_factory=dict)

    def final_params(self) -> dict[str, Any]:
        """Parameters for :func:`leadscore.training.train`: the best point, and the tuned
        metric for early stopping, so the final model stops the way its trial did. The fixed
        parameters are not in it: ``train`` takes them from the config."""
        return {**self.best_params, "metric": OBJECTIVES[self.objective][0]}

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


TrialCallback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]


class TrialLog:
    """Optuna trial callback: one log line every tenth of the trials (and at the last), for
    a run without a progress bar (a scheduler's log, CI), where a long search would
    otherwise write nothing between its first and last lines.

    Parameters
    ----------
    trials : trials this run asks for (``None``: a line every 10 trials).
    objective : name of the valid-fold metric the study optimises, for the line.
    """

    def __init__(self, trials: int | None, objective: str) -> None:
        self.trials = trials
        self.objective = objective
        self.every = max(1, trials // 10) if trials else 10
        self.done_ = 0
        self.pruned_ = 0

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.done_ += 1
        self.pruned_ += trial.state == optuna.trial.TrialState.PRUNED
        if self.done_ % self.every and self.done_ != self.trials:
            return
        of = f" of {self.trials:,}" if self.trials else ""
        try:
            value, number = study.best_value, study.best_trial.number
            best = f"best valid {self.objective} {value:.4f} (trial {number})"
        except ValueError:  # no trial completed yet
            best = "no trial completed yet"
        logger.info(
            "tuning: %s%s trials done (%s pruned); %s", f"{self.done_:,}", of, self.pruned_, best
        )


def run_study(
    study: optuna.Study,
    problem: TuningProblem,
    settings: TuneSettings,
    *,
    callbacks: Sequence[TrialCallback] = (),
    show_progress_bar: bool = False,
    storage: str | None = None,
) -> StudySummary:
    """Run ``settings.trials`` more trials (or until ``settings.timeout``) and summarise.

    ``storage`` is the URL the study was opened with, recorded in the summary with any
    password masked; ``None`` reads it from the study's own storage.

    Raises
    ------
    ModelError
        No trial of the study has completed (all pruned or failed).
    """
    before = len(study.trials)
    started = time.perf_counter()
    with quiet_optuna():
        study.optimize(
            make_objective(problem, settings),
            n_trials=settings.trials,
            timeout=settings.timeout,
            catch=(lgb.basic.LightGBMError,),
            callbacks=list(callbacks),
            show_progress_bar=show_progress_bar,
        )
    seconds = time.perf_counter() - started
    trials = study.trials
    states = [t.state for t in trials]
    state = optuna.trial.TrialState
    complete = [t for t in trials if t.state == state.COMPLETE]
    if not complete:
        raise _nothing_completed(study.study_name, trials)
    best = study.best_trial
    summary = StudySummary(
        study_name=study.study_name,
        storage=shown_url(storage) if storage else _shown_storage(study),
        objective=settings.objective,
        direction=settings.direction,
        best_params={k: v for k, v in best.params.items() if k not in problem.fixed_params},
        best_value=float(best.value),  # type: ignore[arg-type]
        best_trial=best.number,
        best_iteration=best.user_attrs.get("best_iteration"),
        n_trials=len(trials),
        n_complete=len(complete),
        n_pruned=states.count(state.PRUNED),
        n_failed=states.count(state.FAIL),
        new_trials=len(trials) - before,
        seconds=round(seconds, 2),
        fixed_params=dict(problem.fixed_params),
    )
    logger.info(
        "study %s: %d trials (%d new, %d pruned) in %.0fs; best #%d valid %s %.4f",
        summary.study_name,
        summary.n_trials,
        summary.new_trials,
        summary.n_pruned,
        seconds,
        summary.best_trial,
        settings.objective,
        summary.best_value,
    )
    return summary


def _nothing_completed(name: str, trials: Sequence[optuna.trial.FrozenTrial]) -> ModelError:
    """The error of a study without a completed trial. Pruned trials ask for more trials
    or time; a trial that LightGBM failed asks for a fix, which more trials would only
    repeat: its error is quoted (the newest), with the config as the place to look."""
    state = optuna.trial.TrialState
    n_pruned = sum(t.state == state.PRUNED for t in trials)
    n_failed = sum(t.state == state.FAIL for t in trials)
    counts = f"{n_pruned} pruned, {n_failed} failed"
    errors = [t.user_attrs[ERROR_ATTR] for t in trials if ERROR_ATTR in t.user_attrs]
    if errors:
        return ModelError(
            f"no trial of study {name!r} completed ({counts}); the last failed with {errors[-1]}",
            "Check the lightgbm section of the training config (`leadscore train` with it "
            "names the parameter); more trials would fail the same way.",
        )
    return ModelError(
        f"no trial of study {name!r} completed ({counts})",
        "Run more --trials or a longer --timeout.",
    )


def _shown_storage(study: optuna.Study) -> str:
    """The URL of the study's storage, password masked. Optuna wraps an RDB storage in a
    cache (``_CachedStorage``) whose ``_backend`` holds the URL; a storage without a URL
    (in memory, a journal) is named by its kind."""
    storage = getattr(study, "_storage", None)
    backend = getattr(storage, "_backend", storage)
    url = getattr(backend, "url", None)
    if isinstance(url, str) and url:
        return shown_url(url)
    if isinstance(backend, optuna.storages.InMemoryStorage):
        return "in-memory"
    return type(backend).__name__


@dataclass(frozen=True)
class TuneResult:
    """The search, the model trained with its best parameters and the default-parameter
    model trained on the same folds (for the gain of tuning on the test fold)."""

    summary: StudySummary
    tuned: TrainingResult
    default: TrainingResult
    gain: dict[str, float] = field(default_factory=dict)
    roc_auc_gain_interval: tuple[float, float] | None = None


def tuning_gain(tuned: Mapping[str, Any], default: Mapping[str, Any]) -> dict[str, float]:
    """Tuned minus default test metric, per :data:`COMPARED_METRICS` (positive is better for
    ROC-AUC and PR-AUC, negative for Brier score, ECE and log loss)."""
    return {k: float(tuned["model"][k]) - float(default["model"][k]) for k in COMPARED_METRICS}


def tuning_gain_interval(
    tuned: TrainingResult, default: TrainingResult, config: TrainConfig
) -> tuple[float, float] | None:
    """Paired bootstrap interval of the tuned model's ROC-AUC minus the default model's, on
    the test leads both were graded on (``None`` when ``evaluation.resamples`` is 0): a gain
    whose interval holds 0 is not worth a change of parameters."""
    if not config.evaluation.resamples:
        return None
    boot = bootstrap_intervals(
        tuned.y,
        {"tuned": tuned.p_cal, "default": default.p_cal},
        resamples=config.evaluation.resamples,
        level=config.evaluation.level,
        seed=config.seed,
        reference="tuned",
        groups=tuned.lead_id,
    )
    low, high = boot["roc_auc_gain"]["default"]
    return float(low), float(high)


def tune(
    dataset: LabelledDataset,
    config: TrainConfig | None = None,
    settings: TuneSettings | None = None,
    *,
    storage: str | None = None,
    callbacks: Sequence[TrialCallback] = (),
    show_progress_bar: bool = False,
    notes: Sequence[str] = (),
) -> TuneResult:
    """Search, then train the tuned model and the default one on the same folds.

    The config is checked against the data as :func:`~leadscore.training.train` checks it
    (LightGBM's parameter values, monotone patterns, rule points), then the data, before
    the study is opened. A study this call created is deleted again when the search ends
    without a completed trial (or is interrupted before one): it holds nothing to resume,
    and its recorded config would refuse the corrected one. A study that existed before is
    kept as it is.

    Parameters
    ----------
    dataset : labelled history.
    config : training configuration (folds, rounds, seeds, quality gate) for both models.
    settings : tuning options; ``None`` for the defaults.
    storage : Optuna storage URL, overriding ``settings.storage``; one of them is required
        (:func:`default_storage` gives the usual one).
    callbacks : called after each trial, e.g. :class:`MlflowTrialLogger`.
    show_progress_bar : a tqdm bar over the trials.
    notes : the caller's notes on the data, recorded with the tuned model as
        ``training.train(..., notes=)`` records them (the default model is a yardstick and
        keeps none).

    Raises
    ------
    ModelError
        Cold start, no completed trial, or the tuned model fails the quality gate.
    SpecError
        The config is one ``train`` refuses (before any study is opened); the storage
        cannot be opened, ``settings.trials`` is 0 and the study does not exist yet, or the
        study was made for another objective or ran under another config
        (:func:`study_config`).
    """
    config = config or TrainConfig()
    settings = settings or TuneSettings()
    url = storage or settings.storage
    if not url:
        raise SpecError(
            "no Optuna storage given",
            "Pass storage= (--storage on the command line), e.g. sqlite:///optuna.db.",
        )
    # the config and the data are checked (LightGBM's parameters, cold start, leakage)
    # before the study is opened, and open_study checks --trials 0 before creating anything:
    # a mistake leaves no empty study behind
    problem = prepare_problem(dataset, config)
    study, created = _open_study(settings, dataset.name, url, problem.config)
    try:
        summary = run_study(
            study,
            problem,
            settings,
            callbacks=callbacks,
            show_progress_bar=show_progress_bar,
            storage=url,
        )
    except BaseException:
        # a study this run made, that no trial completed, would only stand in the way of
        # the corrected run; one that existed before is kept as it is
        if created:
            with contextlib.suppress(Exception):
                drop_unfinished_study(study, url)
        raise
    tuned = train(dataset, config, params=summary.final_params(), notes=notes)
    # the default model is only a yardstick: it must exist even when it fails the gate
    default = train(dataset, config.with_overrides({"quality_gate.allow_worse": True}))
    return TuneResult(
        summary,
        tuned,
        default,
        tuning_gain(tuned.metrics, default.metrics),
        tuning_gain_interval(tuned, default, config),
    )


class MlflowTrialLogger:
    """Records a study in MLflow: one parent run, and a nested run per finished trial.

    Use as a context manager; the parent run is created on entry and ended on exit
    (``FAILED`` when the block raises). The instance is an Optuna trial callback.

    Parameters
    ----------
    tracking_uri : where to log (resolved as :func:`leadscore.tracking.resolve_tracking_uri`).
    experiment : MLflow experiment name, created when missing.
    run_name : name of the parent run.
    tags : tags of the parent run.
    params : parameters of the parent run (the tuning settings).
    """

    def __init__(
        self,
        tracking_uri: str | None,
        experiment: str,
        run_name: str,
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_name = run_name
        self.tags = dict(tags or {})
        self.params = dict(params or {})

    def __enter__(self) -> MlflowTrialLogger:
        from mlflow import MlflowClient

        from leadscore.tracking import _ensure_experiment, quiet_mlflow, resolve_tracking_uri

        self.uri_ = resolve_tracking_uri(self.tracking_uri)
        with quiet_mlflow():
            self.client_ = MlflowClient(tracking_uri=self.uri_)
            self.experiment_id_ = _ensure_experiment(self.client_, self.experiment, self.uri_)
            run = self.client_.create_run(
                self.experiment_id_, run_name=self.run_name, tags=self.tags
            )
            self.parent_run_id_ = run.info.run_id
            for key, value in self.params.items():
                self.client_.log_param(self.parent_run_id_, key, _text(value))
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        from leadscore.tracking import quiet_mlflow

        with quiet_mlflow():
            status = "FINISHED" if exc_type is None else "FAILED"
            self.client_.set_terminated(self.parent_run_id_, status)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        from mlflow.entities import Metric, Param, RunTag

        from leadscore.tracking import quiet_mlflow

        now = int(time.time() * 1000)
        metrics = [
            Metric(f"valid_{study.user_attrs.get('objective', 'value')}", float(v), now, step)
            for step, v in sorted(trial.intermediate_values.items())
            if math.isfinite(v)
        ]
        if trial.value is not None and math.isfinite(trial.value):
            metrics.append(Metric("value", float(trial.value), now, 0))
        if "best_iteration" in trial.user_attrs:
            metrics.append(
                Metric("best_iteration", float(trial.user_attrs["best_iteration"]), now, 0)
            )
        tags = [
            RunTag("mlflow.parentRunId", self.parent_run_id_),
            RunTag("optuna.study", study.study_name),
            RunTag("optuna.trial", str(trial.number)),
            RunTag("state", trial.state.name),
        ]
        with quiet_mlflow():
            run = self.client_.create_run(
                self.experiment_id_, run_name=f"trial-{trial.number}", tags={}
            )
            self.client_.log_batch(
                run.info.run_id,
                metrics=metrics,
                params=[Param(k, _text(v)) for k, v in trial.params.items()],
                tags=tags,
            )
            failed = trial.state == optuna.trial.TrialState.FAIL
            self.client_.set_terminated(run.info.run_id, "FAILED" if failed else "FINISHED")

    def log_summary(self, result: TuneResult, final_run_id: str | None = None) -> None:
        """Best parameters, study counts and the tuned-vs-default test metrics on the parent;
        the final model's run (when given) is nested under it."""
        from leadscore.model import to_jsonable
        from leadscore.tracking import quiet_mlflow

        s = result.summary
        with quiet_mlflow():
            client, run_id = self.client_, self.parent_run_id_
            for key, value in s.best_params.items():
                client.log_param(run_id, f"best.{key}", _text(value))
            for key, value in s.fixed_params.items():
                client.log_param(run_id, f"fixed.{key}", _text(value))
            for key in ("best_value", "best_trial", "n_trials", "n_complete", "n_pruned"):
                client.log_metric(run_id, key, float(getattr(s, key)))
            for which, res in (("tuned", result.tuned), ("default", result.default)):
                for key in COMPARED_METRICS:
                    value = res.metrics["model"][key]
                    if value is not None and math.isfinite(value):
                        client.log_metric(run_id, f"{which}_test_{key}", float(value))
            for key, value in result.gain.items():
                if math.isfinite(value):
                    client.log_metric(run_id, f"gain_test_{key}", value)
            client.log_dict(
                run_id,
                to_jsonable({"study": s.to_dict(), "gain": result.gain}),
                "tuning.json",
            )
            if final_run_id is not None:
                client.set_tag(final_run_id, "mlflow.parentRunId", run_id)
                client.set_tag(final_run_id, "tuned", "true")
                client.set_tag(run_id, "final_run_id", final_run_id)


def _text(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."
