"""Training: labelled history in, a calibrated, staged, benchmarked lead-scoring model out.

The steps, all on time-ordered folds (:mod:`leadscore.folds`):

1. **Cold start.** Below ``cold_start.min_wins`` won leads or ``min_leads`` leads of history
   (120 and 1,000, what commercial tools ask) no model is trained: rule points are the
   honest fallback until more outcomes close.
2. **Booster.** LightGBM on the fit fold with early stopping on the valid fold. Then, by
   default, the booster is refitted on fit + valid with the number of rounds scaled to the
   larger data (``lightgbm.refit``): small data sets need every older lead, and the valid
   fold only ever chose a number of rounds. The calibration and test folds stay unseen by
   the booster either way, so their numbers stay honest. It is never refitted on the
   calibration or test folds: the calibrator and the stage cut-offs are fitted to this
   booster's scores, and a booster trained on more data would score differently.
3. **Calibration** on the calibration fold (:mod:`leadscore.calibration`).
4. **Stage cut-offs** on the calibration fold's calibrated probabilities
   (:mod:`leadscore.stages`).
5. **Baselines** (:mod:`leadscore.baselines`) on the same folds: fitted on the booster's
   training rows, calibrated on the calibration fold.
6. **Test metrics** (:mod:`leadscore.metrics`) for the model before and after calibration,
   the baselines and the stages.
7. **Quality gate.** The model must beat the best baseline's test ROC-AUC, or training
   stops with a :class:`~leadscore.errors.ModelError` (``quality_gate.allow_worse`` keeps it
   with a warning).

Default LightGBM parameters (:func:`default_params`) lean on regularisation for the small
tables marketing teams have (thousands of leads): shallow trees, a slow learning rate,
leaves that need tens of leads, bagging, L2 penalties and smoothed categorical splits for
high-cardinality columns such as landing pages; they grow with the data.
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from leadscore.baselines import (
    LogisticRegressionBaseline,
    PointsRule,
    RulePointsBaseline,
    check_rule_features,
    check_rules_fit,
    unknown_rule_features,
)
from leadscore.calibration import ProbabilityCalibrator
from leadscore.config import (
    DEFAULT_RULE_POINTS,
    LIGHTGBM_PARAMETERS_URL,
    LightGBMConfig,
    TrainConfig,
    load_config,
    parse_config,
)
from leadscore.encoding import FeatureEncoder
from leadscore.errors import DataError, ModelError, SpecError, expect_type
from leadscore.folds import FOLD_NAMES, Folds, time_ordered_folds
from leadscore.leakage import (
    LeakageSuspect,
    event_closed_lead_rows,
    find_leakage_suspects,
    leakage_error,
    post_contact_columns,
    post_contact_note,
)
from leadscore.metrics import (
    bootstrap_intervals,
    ece_by_chance,
    evaluate,
    signed_difference,
    stage_report,
)
from leadscore.model import LeadScoringModel
from leadscore.monitoring import DriftReference, computed_inputs
from leadscore.names import missing_names_text
from leadscore.schema import LabelledDataset
from leadscore.stages import (
    StageThresholds,
    calendar_step_days,
    periods_spanned,
    policy_check,
)
from leadscore.subscores import SubScorer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingResult:
    """What a training run produced; arrays are on the test fold, in fold order.

    Attributes
    ----------
    model : the model to ship.
    metrics : test metrics shaped like ``--metrics-out`` minus ``run_id``: ``model``,
        ``model_uncalibrated``, ``baselines`` (``logistic_regression``, ``rule_points``),
        ``stages`` (``lead``/``mql``/``sql``: count, share, conversion_rate, share_of_wins),
        ``thresholds``, ``stage_policy`` (each stage's target against what the cut-off
        reached on the calibration and the test fold: :func:`~leadscore.stages.policy_check`),
        ``calibration``, ``fold_kind``, ``n_train``, ``n_calibrate``, ``n_test``,
        ``n_test_leads`` (fewer than ``n_test`` on event data, a lead at several as-of
        dates), ``best_iteration``, ``num_trees`` and ``uncertainty``
        (:func:`test_uncertainty`: bootstrap intervals and the ROC-AUC gain over each
        baseline; ``None`` when ``evaluation.resamples`` is 0).
    folds : the folds used.
    y, p_raw, p_cal, stages : test labels, probabilities before and after calibration and
        stages.
    baselines : calibrated test probabilities of each baseline, by name.
    lead_id, X_test : test leads and their features (rows as in ``y``).
    params : LightGBM parameters used.
    best_iteration : rounds chosen by early stopping on the valid fold.
    num_trees : trees in the shipped booster (after the refit, if any).
    feature_importance : share of the total split gain per feature, largest first.
    rule_points_table : the rule-points baseline's table, one line per rule.
    rule_points_derived : whether that table was derived from the data (no table in config).
    warnings : things a reader of the report should know, in words.
    """

    model: LeadScoringModel
    metrics: dict[str, Any]
    folds: Folds
    y: np.ndarray
    p_raw: np.ndarray
    p_cal: np.ndarray
    stages: np.ndarray
    baselines: dict[str, np.ndarray]
    lead_id: np.ndarray
    X_test: pd.DataFrame
    params: dict[str, Any]
    best_iteration: int
    num_trees: int
    feature_importance: dict[str, float]
    rule_points_table: tuple[str, ...] = ()
    rule_points_derived: bool = False
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def __repr__(self) -> str:
        """One line, as a notebook shows it: the test fold's headline figures, not its rows."""
        m = self.metrics["model"]
        return (
            f"TrainingResult({self.model!r}; test: {len(self.y):,} rows, "
            f"{int(np.sum(self.y)):,} won, ROC-AUC {m['roc_auc']:.3f}, ECE {m['ece']:.3f}; "
            f"{self.num_trees} trees; {len(self.warnings)} warning(s))"
        )


#: Cells (examples times features) of the fit fold that make one LightGBM thread worth its
#: synchronisation (about 20,000 leads of a dozen features, where
#: :func:`~leadscore.training.default_params` starts to grow larger trees): with fewer, a
#: round is over before a second thread helps.
CELLS_PER_THREAD = 250_000


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask (else the machine's count), at most
    ``OMP_NUM_THREADS`` when that is set, as LightGBM's own default would honour it."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity (macOS, Windows)
        cpus = os.cpu_count() or 1
    omp = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if omp.isdigit() and int(omp) > 0:
        cpus = min(cpus, int(omp))
    return max(1, cpus)


def booster_threads(n_rows: int, n_features: int, cpus: int | None = None) -> int:
    """LightGBM threads for a booster fitting ``n_rows`` examples of ``n_features`` features:
    one per :data:`CELLS_PER_THREAD` cells, at least 1, at most one per feature (histograms
    are built column-wise, a feature per thread) and one per CPU (``cpus``, default
    :func:`available_cpus`).

    LightGBM's default, a thread per core, splits each round into OpenMP regions whose
    barriers wait for every thread. On small lead tables that gains nothing, and when
    another process holds a core each barrier waits for the scheduler to bring the thread
    back: a tuning trial of 300 rounds on 2,700 leads took 96 s on a busy machine, 0.3 s on
    one thread. The booster is deterministic (``deterministic``, ``force_col_wise``), so the
    thread count changes the speed of a fit, never its result. Training and every tuning
    trial fit on this many threads unless ``lightgbm.params`` sets ``num_threads``.
    """
    cpus = available_cpus() if cpus is None else max(1, cpus)
    wanted = n_rows * n_features // CELLS_PER_THREAD
    return int(max(1, min(wanted, n_features, cpus)))


def with_booster_threads(params: Mapping[str, Any], n_rows: int, n_features: int) -> dict[str, Any]:
    """``params`` with :func:`booster_threads` where they set no ``num_threads``: how training
    and every tuning trial fit their boosters."""
    if "num_threads" in params:
        return dict(params)
    return {**params, "num_threads": booster_threads(n_rows, n_features)}


#: The thread count LightGBM writes into a saved booster's parameters: reset to LightGBM's
#: default (0) where leadscore chose it, so that the booster's text, and the model version
#: hashed from it, do not depend on the machine that trained it.
_RECORDED_THREADS = re.compile(r"^\[num_threads: \d+\]$", re.MULTILINE)


def default_params(n_rows: int, seed: int = 0) -> dict[str, Any]:
    """LightGBM parameters for ``n_rows`` training examples.

    Trees stay shallow (7 leaves below 20,000 rows, 15 below 200,000, 31 above) and every
    leaf needs ``n_rows / 150`` examples (20 to 200): lead tables are small and noisy, and
    a leaf fitted on a dozen leads would learn their luck. Categorical splits are smoothed
    (``cat_smooth``, ``cat_l2``, ``min_data_per_group``) so that a landing page seen five
    times does not get a split of its own.
    """
    num_leaves = 7 if n_rows < 20_000 else 15 if n_rows < 200_000 else 31
    return {
        "objective": "binary",
        "learning_rate": 0.03,
        "num_leaves": num_leaves,
        "min_data_in_leaf": int(np.clip(n_rows // 150, 20, 200)),
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 5.0,
        "cat_smooth": 20.0,
        "cat_l2": 10.0,
        "min_data_per_group": 50,
        "max_cat_to_onehot": 8,
        "max_cat_threshold": 32,
        "seed": seed,
        "deterministic": True,
        "force_col_wise": True,
        "verbosity": -1,
    }


def check_labels(y: object) -> None:
    """A :class:`DataError` unless every label is 0 or 1 (booleans, integers or floats).

    Nothing downstream checks them before a whole booster, calibrator and both baselines are
    fitted: a NaN became a huge negative integer and failed only at the test metrics, and
    text labels (``"won"``, ``"1"``) equal neither 1 nor 0, so they read as a history without
    a single win, a cold-start problem."""
    values = np.asarray(y)
    if values.dtype == bool:
        return
    if np.issubdtype(values.dtype, np.number):
        ok = (values == 0) | (values == 1)
    else:
        ok = np.array([_is_binary(v) for v in values.ravel()], dtype=bool).reshape(values.shape)
    if ok.all():
        return
    bad = values[~ok]
    shown = [_shown(v) for v in pd.unique(pd.Series(bad.ravel(), dtype=object))[:3]]
    raise DataError(
        f"{bad.size:,} of {values.size:,} training labels are not 0 or 1 (e.g. {', '.join(shown)})",
        "A label is 1 for a won lead and 0 for a lost one: map text labels ('won'/'lost') to "
        "1/0 first, or read the table through a spec's label section (load_dataset).",
    )


def _is_binary(value: object) -> bool:
    if isinstance(value, bool | np.bool_):
        return True
    return isinstance(value, int | float | np.integer | np.floating) and value in (0, 1)


def _shown(value: object) -> str:
    return repr(value.item() if isinstance(value, np.generic) else value)


def check_history(dataset: LabelledDataset, min_wins: int, min_leads: int) -> tuple[int, int]:
    """Leads and won leads in the history; :class:`ModelError` below the cold-start limits."""
    ids = dataset.lead_id.astype(str).to_numpy()
    leads = len(np.unique(ids))
    wins = len(np.unique(ids[np.asarray(dataset.y) == 1]))
    if wins < min_wins or leads < min_leads:
        raise ModelError(
            f"too little history to train a model: {wins:,} won among {leads:,} leads "
            f"(need at least {min_wins:,} won among {min_leads:,})",
            "Score with rule points until more outcomes close (a points table under "
            "rule_points in configs/train.yaml, leadscore.baselines.RulePointsBaseline), or "
            "lower cold_start.min_wins / min_leads at your own risk.",
        )
    return leads, wins


def monotone_constraints(
    dataset: LabelledDataset,
    increasing: tuple[str, ...],
    decreasing: tuple[str, ...],
    *,
    optional: Collection[str] = (),
) -> list[int]:
    """+1 / -1 / 0 per feature from name patterns: a feature's exact name or a case-sensitive
    glob (``*`` any text, ``?`` one character), as in ``lightgbm.monotone_increasing``.

    Every pattern must match a numeric feature, except those in ``optional`` (the built-in
    defaults, event-form names that flat tables do not have), which may match nothing; a
    pattern that matches only categorical features, or a feature that both lists match, is a
    :class:`SpecError` too. Categorical features matched by a pattern that also matches a
    numeric one are left unconstrained (constraints apply to numbers).
    """
    lists = {"increasing": tuple(increasing), "decreasing": tuple(decreasing)}
    both = [p for p in lists["increasing"] if p in lists["decreasing"]]
    if both:
        raise SpecError(
            f"lightgbm.monotone_increasing and monotone_decreasing both list {both[0]!r}",
            "A feature can only be constrained one way: remove it from one of the two lists.",
        )
    numeric = [f.name for f in dataset.features if f.kind == "numeric"]
    matched: dict[str, dict[str, str]] = {"increasing": {}, "decreasing": {}}
    for direction, patterns in lists.items():
        where = f"lightgbm.monotone_{direction}"
        for pattern in patterns:
            names = [f.name for f in dataset.features if _name_matches(f.name, pattern)]
            if pattern in optional and not any(n in numeric for n in names):
                continue
            if not names:
                raise _no_match_error(where, pattern, dataset, numeric)
            if not any(n in numeric for n in names):
                raise SpecError(
                    f"{where}: {pattern!r} matches only categorical features "
                    f"({_some(names)}) of {dataset.name}, and monotone constraints apply to "
                    "numeric features",
                    f"Remove it{_numeric_hint(numeric)}.",
                )
            for name in names:
                matched[direction].setdefault(name, pattern)
    for name, up in matched["increasing"].items():
        down = matched["decreasing"].get(name)
        if down is not None and name in numeric:
            raise SpecError(
                f"feature {name!r} is matched by lightgbm.monotone_increasing ({up!r}) and by "
                f"lightgbm.monotone_decreasing ({down!r})",
                "A feature can only be constrained one way: change one of the two patterns.",
            )
    return [
        (1 if f.name in matched["increasing"] else -1 if f.name in matched["decreasing"] else 0)
        if f.kind == "numeric"
        else 0
        for f in dataset.features
    ]


def _name_matches(name: str, pattern: str) -> bool:
    return name == pattern or fnmatch.fnmatchcase(name, pattern)


def _some(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _numeric_hint(numeric: list[str]) -> str:
    if not numeric:
        return " (this data set has no numeric feature)"
    return f" or name numeric features instead: {_some(numeric)}"


def _no_match_error(
    where: str, pattern: str, dataset: LabelledDataset, numeric: list[str]
) -> SpecError:
    """A pattern that matches no feature, with the features it was probably meant for: those
    it matches ignoring case, else the closest names (difflib)."""
    names = [f.name for f in dataset.features]
    by_lower = {n.lower(): n for n in names}
    close = [n for n in names if fnmatch.fnmatchcase(n.lower(), pattern.lower())] or [
        by_lower[n] for n in difflib.get_close_matches(pattern.lower(), list(by_lower), n=3)
    ]
    close_numeric = [n for n in close if n in numeric]
    problem = f"{where}: {pattern!r} matches no feature of {dataset.name}"
    if close_numeric:
        return SpecError(
            f"{problem} (closest: {_some(close_numeric)})",
            f"Write the feature's exact name, e.g. {close_numeric[0]!r} (names are "
            "case-sensitive), or remove the pattern.",
        )
    if close:
        problem += f" (closest: {_some(close)}, all categorical, and constraints apply to numbers)"
    return SpecError(problem, f"Remove the pattern{_numeric_hint(numeric)}.")


def _monotone_signs(dataset: LabelledDataset, config: TrainConfig) -> list[int]:
    """:func:`monotone_constraints` of the config's lists; the built-in default patterns may
    match nothing (flat tables have no event-form counts), patterns the user wrote may not."""
    lgb_config = config.lightgbm
    defaults = {
        name: LightGBMConfig.model_fields[f"monotone_{name}"].default
        for name in ("increasing", "decreasing")
    }
    optional = {
        *(p for p in lgb_config.monotone_increasing if p in defaults["increasing"]),
        *(p for p in lgb_config.monotone_decreasing if p in defaults["decreasing"]),
    }
    return monotone_constraints(
        dataset,
        lgb_config.monotone_increasing,
        lgb_config.monotone_decreasing,
        optional=optional,
    )


def fit_early_stopped(
    params: Mapping[str, Any],
    train_set: lgb.Dataset,
    valid_set: lgb.Dataset,
    *,
    num_boost_round: int,
    early_stopping_rounds: int,
    callbacks: Sequence[Callable[..., None]] = (),
) -> tuple[lgb.Booster, int]:
    """A booster fitted on ``train_set`` and early-stopped on ``valid_set`` (named ``valid``),
    with its best number of rounds: the one fit of training and of every tuning trial."""
    booster = lgb.train(
        dict(params),
        train_set,
        num_boost_round=num_boost_round,
        valid_sets=[valid_set],
        valid_names=["valid"],
        callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False), *callbacks],
    )
    return booster, max(1, int(booster.best_iteration or booster.current_iteration()))


def _check_classes(y: np.ndarray, folds: Folds) -> None:
    for name in FOLD_NAMES:
        labels = y[getattr(folds, name)]
        if labels.min() == labels.max():
            which = "won" if labels.min() == 0 else "lost"
            raise DataError(
                f"the {name} fold ({len(labels):,} examples) holds no {which} lead",
                "Give more history or larger folds (folds.*_size in the training config).",
            )


def check_finite(X: pd.DataFrame) -> None:
    """An infinite value has no place on a score scale: the leakage guard, the baselines and
    the explanations would each fail on it further down, so it is named here (and by
    ``leadscore validate``, in the same words)."""
    for name in X.columns:
        values = X[name]
        if ptypes.is_float_dtype(values.dtype):
            n_inf = int(np.isinf(values.to_numpy(dtype="float64", na_value=np.nan)).sum())
            if n_inf:
                raise DataError(
                    f"column {name!r} holds an infinite value in {n_inf:,} row(s)",
                    "Replace it with a number or leave it empty.",
                )


def booster_rows(folds: Folds) -> np.ndarray:
    """The fit fold, then the valid fold: the rows the booster is refitted on and the
    baselines learn from, oldest first with ties by lead id, as the folds list them.

    Never sorted by position: LightGBM's bagging, the calibrator's folds and every seeded
    sample draw by position, so rows taken in the table's order would give another model for
    the same leads exported in another order."""
    return np.concatenate([folds.fit, folds.valid])


def _fit_booster(
    matrix: np.ndarray,
    y: np.ndarray,
    folds: Folds,
    encoder: FeatureEncoder,
    params: dict[str, Any],
    config: TrainConfig,
) -> tuple[lgb.Booster, int]:
    def dataset(rows: np.ndarray, reference: lgb.Dataset | None = None) -> lgb.Dataset:
        return lgb.Dataset(
            matrix[rows],
            label=y[rows],
            feature_name=encoder.booster_names,
            categorical_feature=encoder.categorical_indices,
            reference=reference,
            free_raw_data=True,
        )

    def threaded(n_rows: int) -> dict[str, Any]:
        return with_booster_threads(params, n_rows, matrix.shape[1])

    def saved(booster: lgb.Booster, **kwargs: Any) -> lgb.Booster:
        text = booster.model_to_string(**kwargs)
        if "num_threads" not in params:  # a speed of this machine, not part of the model
            text = _RECORDED_THREADS.sub("[num_threads: 0]", text)
        return lgb.Booster(model_str=text)

    lgb_config = config.lightgbm
    train_set = dataset(folds.fit)
    valid_set = dataset(folds.valid, reference=train_set)
    try:
        early, best = fit_early_stopped(
            threaded(len(folds.fit)),
            train_set,
            valid_set,
            num_boost_round=lgb_config.num_boost_round,
            early_stopping_rounds=lgb_config.early_stopping_rounds,
        )
    except lgb.basic.LightGBMError as err:
        raise params_error(err, params) from err
    scores = early.best_score.get("valid", {})
    logger.info(
        "booster: early stopping at %d rounds (valid %s)",
        best,
        ", ".join(f"{k} {float(v):.4f}" for k, v in scores.items()) or "no metric",
    )
    if not lgb_config.refit:
        return saved(early, num_iteration=best), best
    rows = booster_rows(folds)
    rounds = max(1, round(best * len(rows) / len(folds.fit)))
    booster = lgb.train(threaded(len(rows)), dataset(rows), num_boost_round=rounds)
    logger.info("booster: refitted on fit + valid (%d examples) for %d rounds", len(rows), rounds)
    return saved(booster), best


#: Below this many distinct leads in the calibration fold, training warns that calibration
#: may be noisy. A calibrator maps scores to probabilities bin by bin (isotonic) or with two
#: parameters (sigmoid); with a win rate around 10 %, a thousand leads put some 100 wins
#: across the score range, a few per region of it, so each region's rate moves by several
#: points between draws. A few thousand leads calibrate well; 1,000 is where the noise
#: starts to show in the ECE of a test fold of similar size, not a hard limit.
MIN_CALIBRATION_LEADS = 1_000
#: Below this many won leads in the calibration fold, training warns too, whatever the leads:
#: the rate of the top scores (where SQLs are cut) rests on the wins, and 50 wins spread over
#: ten bins leave five a bin. Leads, not examples, are counted: event data holds a lead once
#: per as-of date, and its rows' outcomes are one outcome, not several.
MIN_CALIBRATION_WINS = 50


def warn_small_calibration_fold(y: np.ndarray, leads: np.ndarray, purged: int = 0) -> str | None:
    """Warn when the calibration fold (outcomes ``y`` of the examples of ``leads``, after
    ``purged`` examples were purged from it) holds fewer than :data:`MIN_CALIBRATION_LEADS`
    distinct leads or :data:`MIN_CALIBRATION_WINS` won leads, and return the warning (``None``
    when the fold is large enough).

    The fold is the newest share of the history before the test fold, and on event data the
    purge (:mod:`leadscore.folds`) may leave a small part of it (1,445 examples kept of
    9,219): the calibrator then learns from few leads and the test ECE, above the chance
    band, says so only after the fact. The line says how many leads and wins it learned
    from, so that the user gives the fold more history before reading the probabilities as
    exact; :func:`train` keeps it with the run's warnings (``model.json``, MLflow, the
    report), since a line in the log is gone once a notebook cell is cleared."""
    y = np.asarray(y)
    ids = pd.Series(np.asarray(leads, dtype=object))
    n_leads = int(ids.nunique())
    n_wins = int(ids[y == 1].nunique())
    if n_leads >= MIN_CALIBRATION_LEADS and n_wins >= MIN_CALIBRATION_WINS:
        return None
    examples = f"{len(y):,} examples of " if len(y) > n_leads else ""
    after = f", after {purged:,} examples were purged from it" if purged else ""
    message = (
        f"calibration fold: the calibrator learned from {examples}{n_leads:,} leads, "
        f"{n_wins:,} of them won{after}; below {MIN_CALIBRATION_LEADS:,} leads or "
        f"{MIN_CALIBRATION_WINS} wins the calibrated probabilities may be noisy (a few thousand "
        "leads calibrate well): give the calibration fold more history "
        "(folds.calibration_size, or a longer extract)"
    )
    logger.warning("%s", message)
    return message


def _log_calibration(which: str, calibrator: ProbabilityCalibrator) -> None:
    """One line per calibrator that names the model it calibrates: training fits three (the
    model's and one per baseline), and unnamed, their out-of-fold Brier scores read as one
    model's. ``identity`` reads the raw score as log-odds, which a rule points total is not,
    so its Brier score there (about 0.7) is bad by design: the line calls it "uncalibrated"
    to say that it is the score before any calibration, not a calibration that failed."""
    tried = ", ".join(
        f"{'uncalibrated' if m == 'identity' else m} {b:.4f}"
        for m, b in calibrator.brier_oof_.items()
    )
    logger.info(
        "calibration of %s: %s%s",
        which,
        "none (no method beat the uncalibrated scores by two standard errors)"
        if calibrator.method_ == "identity"
        else calibrator.method_,
        f" (out-of-fold Brier: {tried})" if tried else "",
    )


def params_error(err: lgb.basic.LightGBMError, params: Mapping[str, Any]) -> SpecError:
    """LightGBM's complaint about a parameter value as one line naming the parameter (the
    config's names are LightGBM's main names, the ones its messages use)."""
    text = re.sub(r"\s+at \S+, line \d+\s*\.?\s*$", "", str(err).strip().splitlines()[0])
    words = set(re.findall(r"\w+", text.lower()))
    named = [k for k in params if k in words] or [
        k for k, v in params.items() if isinstance(v, str | bool) and str(v).lower() in words
    ]
    where = f"lightgbm.params.{named[0]}" if len(named) == 1 else "lightgbm.params"
    return SpecError(
        f"{where}: LightGBM rejects the parameters: {text}",
        f"Fix the value in the training config; see {LIGHTGBM_PARAMETERS_URL}.",
    )


def fit_sub_scorer(
    model: LeadScoringModel, X: pd.DataFrame, *, seed: int = 0, max_rows: int = 20_000
) -> SubScorer:
    """Fit and engagement percentiles over the training leads (a sample of at most
    ``max_rows``: percentiles need no more, and TreeSHAP is the slow part)."""
    if len(X) > max_rows:
        X = X.sample(max_rows, random_state=seed)
    explained = model.explain(X)
    return SubScorer().fit(explained.log_odds, model.features, explained.values)


def _importance(booster: lgb.Booster, names: list[str]) -> dict[str, float]:
    gain = np.asarray(booster.feature_importance(importance_type="gain"), dtype="float64")
    share = gain / gain.sum() if gain.sum() > 0 else gain
    order = np.argsort(-share, kind="stable")
    return {names[i]: float(share[i]) for i in order}


@dataclass(frozen=True)
class RulePointsTable:
    """The points table of the rule-points baseline for one data set
    (:func:`rule_points_table`).

    Attributes
    ----------
    rules : the table; ``None`` to derive one from the data.
    key : where the config holds it (``rule_points.<data set>`` or ``rule_points.default``);
        ``None`` when derived.
    set_aside : features that a ``rule_points.default`` written in the config names but the
        data set lacks: that table was set aside, and one is derived.
    features : the data set's features, for the closest name to each of ``set_aside``.
    """

    rules: tuple[PointsRule, ...] | None
    key: str | None = None
    set_aside: tuple[str, ...] = ()
    features: tuple[str, ...] = field(default=(), repr=False)

    def set_aside_text(self, dataset_name: str, *, derived: int | None = None) -> str:
        """Why the config's ``rule_points.default`` is not used, and the fix: logged as a
        warning before training fits anything, and (with the ``derived`` rules) kept with
        the run's notes."""
        unknown = list(self.set_aside)
        which = "feature" if len(unknown) == 1 else "features"
        instead = (
            f"the table was set aside and {derived:,} rules were derived from the lift on "
            "fit + valid"
            if derived is not None
            else "the table is set aside and the rule points baseline derives its rules "
            "from the data"
        )
        shown = missing_names_text(unknown, self.features)
        return (
            f"rule_points.default names {which} {shown}, which {dataset_name} does not "
            f"have, so {instead}; fix the names in rule_points.default, or give "
            f"{dataset_name} a table of its own under rule_points.{dataset_name}"
        )


def _builtin_rule_points() -> tuple[PointsRule, ...]:
    return tuple(PointsRule.model_validate(r) for r in DEFAULT_RULE_POINTS)


def rule_points_table(dataset: LabelledDataset, config: TrainConfig) -> RulePointsTable:
    """The points table of ``config`` that the rule-points baseline of ``dataset`` uses.

    The data set's own table (``rule_points.<name>``) is used, and every feature it names
    must be one of the data set's (a :class:`SpecError` otherwise, before anything is
    fitted). Else ``rule_points.default``, when the data set has every feature it names;
    else a table is derived from the data. The built-in default (event-form features) is set
    aside on flat data without a word, but a ``default`` table the user wrote is set aside
    with the features it lacks (:attr:`RulePointsTable.set_aside`), for a warning.
    """
    names = [f.name for f in dataset.features]
    own_key = f"rule_points.{dataset.name}"
    own = config.rule_points.get(dataset.name)
    if own is not None:
        check_rule_features(own, names, where=own_key, holder=dataset.name)
        return RulePointsTable(tuple(own), own_key)
    default = config.rule_points.get("default")
    if default is None:
        return RulePointsTable(None)
    unknown = unknown_rule_features(default, names)
    if not unknown:
        return RulePointsTable(tuple(default), "rule_points.default")
    if tuple(default) == _builtin_rule_points():
        return RulePointsTable(None)
    return RulePointsTable(None, set_aside=tuple(unknown), features=tuple(names))


#: LightGBM writes this line to the process's standard error itself, before it raises the
#: :class:`lightgbm.basic.LightGBMError` that carries the same text, whatever ``verbosity``.
_LIGHTGBM_FATAL = b"[LightGBM] [Fatal] "


@contextlib.contextmanager
def _lightgbm_fatal_held_back() -> Iterator[None]:
    """Hold back LightGBM's ``[LightGBM] [Fatal] ...`` line for the block: the error it
    raises is turned into one line naming the parameter (:func:`params_error`), and its
    raw twin beside it would read as a second problem.

    LightGBM prints that line with C's ``fprintf(stderr, ...)``, which neither
    ``verbosity: -1`` nor :func:`lightgbm.register_logger` reach, so the process's file
    descriptor 2 is pointed at a temporary file for the block (a parameter check on four
    rows: milliseconds), and what else came meanwhile is written back after it. Where the
    descriptor cannot be duplicated, the block runs as it is.
    """
    saved = _duplicated_stderr()
    if saved is None:
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept, fatal = [], False
            for line in held.read().splitlines(keepends=True):
                if line.startswith(_LIGHTGBM_FATAL) or (fatal and not line.strip()):
                    fatal = True  # LightGBM's line, and the blank line its "\n\n" leaves
                    continue
                fatal = False
                kept.append(line)
            if kept:
                os.write(2, b"".join(kept))


def _duplicated_stderr() -> int | None:
    """A duplicate of file descriptor 2 (Python's own buffer flushed first), or ``None``
    where the process has none to duplicate (a service without a console)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stderr.flush()
    try:
        return os.dup(2)
    except OSError:
        return None


def check_booster_params(
    dataset: LabelledDataset,
    config: TrainConfig,
    params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The LightGBM parameters a booster of ``dataset`` is fitted with (:func:`base_params`,
    then ``params``), checked by LightGBM itself before any work: a value it refuses
    (``num_leaves: -3``) is the :class:`SpecError` of :func:`train`, naming the parameter,
    and stops :func:`train`, ``leadscore tune`` (before its study is created) and
    ``leadscore validate --config`` alike, where it had stopped ``train`` only once the folds
    and the leakage guard were done, and every tuning trial one after the other.

    LightGBM checks the values when a booster is made, so one is made on four rows shaped
    like the data set's features (the same names, categorical features and monotone
    constraints), with ``verbosity: -1`` and LightGBM's own error line held back
    (:func:`_lightgbm_fatal_held_back`). The monotone patterns and interaction constraints
    are checked on the way (:func:`base_params`).
    """
    used = {**base_params(dataset, config, len(dataset.y)), **(params or {})}
    features = list(dataset.features)
    if not features:
        return used
    encoder = FeatureEncoder(features, {f.name: [] for f in features if f.kind == "categorical"})
    rows = np.tile(np.array([[0.0], [1.0]]), (2, len(features)))
    checked = {**used, "verbosity": -1}
    checked.setdefault("num_threads", 1)
    try:
        with _lightgbm_fatal_held_back():
            lgb.Booster(
                checked,
                lgb.Dataset(
                    rows,
                    label=np.array([0.0, 1.0, 0.0, 1.0]),
                    feature_name=encoder.booster_names,
                    categorical_feature=encoder.categorical_indices,
                ),
            )
    except lgb.basic.LightGBMError as err:
        raise params_error(err, used) from err
    return used


def check_config(
    dataset: LabelledDataset,
    config: TrainConfig,
    params: Mapping[str, Any] | None = None,
) -> RulePointsTable:
    """The config's mistakes about ``dataset`` that :func:`train` refuses, found before any
    work (no fold, no guard, no booster): monotone patterns that name no numeric feature,
    LightGBM parameter values LightGBM refuses (:func:`check_booster_params`, with
    ``params``) and a points table of the data set naming features it lacks
    (:func:`rule_points_table`, which is returned). :func:`prepare_training` starts with it,
    so ``leadscore validate --config`` and ``leadscore tune`` refuse what ``train`` does.

    Raises
    ------
    SpecError
        One line naming the key of the config and the fix.
    """
    check_booster_params(dataset, config, params)
    return rule_points_table(dataset, config)


@dataclass(frozen=True)
class PreparedData:
    """What :func:`train` and :func:`leadscore.tuning.tune` both start from; ``frame`` is
    the data set's features typed as the model reads them (:meth:`FeatureEncoder.frame`),
    which the baselines learn from, and ``rule_points`` their points table."""

    folds: Folds
    y: np.ndarray
    encoder: FeatureEncoder
    matrix: np.ndarray
    n_leads: int
    n_wins: int
    frame: pd.DataFrame
    rule_points: RulePointsTable


def config_folds(dataset: LabelledDataset, config: TrainConfig) -> Folds:
    """The fit / early-stopping / calibration / test folds of ``dataset`` that ``config``'s
    ``folds`` section asks for (:func:`~leadscore.folds.time_ordered_folds`)."""
    return time_ordered_folds(
        dataset,
        test_size=config.folds.test_size,
        calibration_size=config.folds.calibration_size,
        valid_size=config.folds.valid_size,
        purge=config.folds.purge,
        random_state=config.folds.seed,
    )


def _fit_fold_suspects(
    dataset: LabelledDataset, config: TrainConfig, folds: Folds
) -> list[LeakageSuspect]:
    return find_leakage_suspects(
        dataset.X.iloc[folds.fit],
        np.asarray(dataset.y, dtype="int64")[folds.fit],
        auc_threshold=config.leakage.auc_threshold,
        allow=(*dataset.allowed_leakage, *config.leakage.allow),
        seed=config.seed,
        closed_leads=event_closed_lead_rows(dataset, folds.fit),
        groups=dataset.lead_id.iloc[folds.fit].to_numpy() if dataset.form == "events" else None,
    )


def leakage_suspects(
    dataset: LabelledDataset, config: TrainConfig | None = None
) -> list[LeakageSuspect]:
    """The features for which :func:`train`'s leakage guard would stop, found as it finds
    them: on the fit fold only, with the config's threshold and allowed columns, each
    category encoded from other leads on event data, and lead columns held against how each
    lead ended. For a notebook that looks before it trains; calling
    :func:`~leadscore.leakage.find_leakage_suspects` on every example instead reads the test
    fold too and, on event data, lets a lead's other as-of dates vouch for it."""
    config = config or TrainConfig()
    folds = config_folds(dataset, config)
    return _fit_fold_suspects(dataset, config, folds)


def prepare_training(
    dataset: LabelledDataset,
    config: TrainConfig,
    *,
    params: Mapping[str, Any] | None = None,
) -> PreparedData:
    """The config against the data (:func:`check_config`, with the LightGBM ``params`` that
    override the config's), labels are 0/1, capacity needs dates, cold-start check, folds,
    one-class check, finite values, leakage guard, encoding, and the points table's rules
    against the features they name, in that order: every check that must pass before a
    single tree is grown."""
    rule_points = check_config(dataset, config, params)
    check_labels(dataset.y)
    _check_capacity_dates(dataset, config)
    n_leads, n_wins = check_history(
        dataset, config.cold_start.min_wins, config.cold_start.min_leads
    )
    folds = config_folds(dataset, config)
    y = np.asarray(dataset.y, dtype="int64")
    _check_classes(y, folds)
    check_finite(dataset.X)
    suspects = _fit_fold_suspects(dataset, config, folds)
    if suspects:
        raise leakage_error(suspects)
    # levels from the rows the booster is fitted and early-stopped on: a level that only
    # the calibration or test fold holds is one the model never saw, scored as missing (and
    # warned about at scoring), not a known level the booster has no split for
    encoder = FeatureEncoder.from_frame(dataset.X.iloc[booster_rows(folds)], dataset.features)
    frame = encoder.frame(dataset.X)
    if rule_points.rules is not None:  # a condition that can never fire on its feature
        check_rules_fit(rule_points.rules, frame)
    return PreparedData(
        folds, y, encoder, encoder.matrix(dataset.X), n_leads, n_wins, frame, rule_points
    )


def low_sentence_bounds(
    encoder: FeatureEncoder, signs: Sequence[int] | None, X: pd.DataFrame, y: np.ndarray
) -> FeatureEncoder:
    """``encoder`` with each ``low_sentence`` ("Only 2 page views ...") kept where it reads
    true, learnt from the typed training rows ``X`` and their outcomes ``y``.

    Where the booster may only raise the score with a feature (monotone constraint +1), a
    contribution against the lead means the count is below what the model expects of a
    lead, which is what "Only" says: every value reads so. Any other count can also lower the
    score for being high (64 activities in a week may read as a bot to the model), where
    "Only 64 activities" would say the opposite of the truth: there "Only" is kept for values
    below the median among won examples (``low_below``), fewer than a converting lead
    typically shows, and a value at or above it reads as the plain fact. A count whose won
    examples mostly show 0 never reads "Only".
    """
    signs = list(signs or ())
    won = np.asarray(y) == 1
    features = []
    for j, f in enumerate(encoder.features):
        if f.low_sentence is None or (j < len(signs) and signs[j] > 0):
            features.append(f)
            continue
        values = X[f.name].to_numpy(dtype=float, na_value=np.nan)[won]
        values = values[~np.isnan(values)]
        median = float(np.median(values)) if values.size else 0.0
        features.append(
            replace(f, low_below=median) if median > 0 else replace(f, low_sentence=None)
        )
    if tuple(features) == encoder.features:
        return encoder
    return FeatureEncoder(features, encoder.categories, fold_spellings=encoder.fold_spellings)


def _check_capacity_dates(dataset: LabelledDataset, config: TrainConfig) -> None:
    """A capacity stage counts leads per period of the calendar: data without dates (no
    order, or a sequence number) stops before any work, not once the booster is fitted."""
    order = dataset.order
    if order is not None and ptypes.is_datetime64_any_dtype(order):
        return
    for stage in ("mql", "sql"):
        if getattr(config.stages, stage).policy == "capacity":
            ordered = "has no time order" if order is None else "is ordered by a sequence"
            raise ModelError(
                f"{stage.upper()} by capacity needs leads with dates to count them per "
                f"period, and {dataset.name} {ordered}, not by date",
                "Order the spec by a date column (order_by), or use recall, precision or "
                "expected_value for this data.",
            )


def calibration_periods(
    dataset: LabelledDataset, rows: np.ndarray, config: TrainConfig, purged_leads: int = 0
) -> float | None:
    """Periods of ``stages.period_days`` that the examples at ``rows`` stand for (``None``
    without time), for the capacity policy.

    Each date stands for the data set's usual step between dates: a day for flat tables,
    the as-of spacing for event data, so a fold holding one snapshot spans one step. When
    the purge took ``purged_leads`` leads out of the fold (their earlier examples were
    fitted on, see :mod:`leadscore.folds`), the leads left are only part of those the periods
    brought, so they stand for that share of the periods: the capacity becomes the same share
    of all open leads that scoring will see, not a larger share of the leads purging
    happened to keep. The open leads a flat table left out (``dataset.open_order``) count the
    same way: those dated within the fold's span arrived with its leads and are scored too.
    """
    order = dataset.order
    if order is None or not ptypes.is_datetime64_any_dtype(order):
        return None
    # Series, not arrays: a zone-aware order's numpy form is objects, which read as no time
    step = calendar_step_days(order)
    if step is None and dataset.horizon_days is not None:
        step = float(config.events.every_days)
    periods = periods_spanned(order.iloc[rows], config.stages.period_days, step_days=step)
    if periods is None:
        return None
    left_out = purged_leads
    if dataset.open_order is not None and len(rows):
        span = order.iloc[rows]
        left_out += int(dataset.open_order.between(span.min(), span.max()).sum())
    if not left_out:
        return periods
    kept = dataset.lead_id.iloc[rows].nunique()
    return periods * kept / (kept + left_out)


def _check_interaction_constraints(groups: object, n_features: int) -> None:
    """LightGBM crashes the interpreter on a feature position out of range, so it is checked
    here: lists of feature positions, 0 to ``n_features - 1``."""
    if groups is None:
        return
    ok = isinstance(groups, list) and all(
        isinstance(group, list) and all(type(i) is int and 0 <= i < n_features for i in group)
        for group in groups
    )
    if not ok:
        raise SpecError(
            f"lightgbm.params.interaction_constraints: {groups!r} is not a list of lists of "
            f"feature positions 0..{n_features - 1}",
            "Give positions in the order of the data set's features, e.g. [[0, 1], [2]].",
        )


def base_params(dataset: LabelledDataset, config: TrainConfig, n_rows: int) -> dict[str, Any]:
    """LightGBM parameters before tuning: defaults for ``n_rows``, the config's, and the
    monotone constraints of the config's ``lightgbm.monotone_*`` patterns (a
    :class:`SpecError` for a pattern that names no numeric feature, see
    :func:`monotone_constraints`)."""
    params = {**default_params(n_rows, config.seed), **config.lightgbm.params}
    _check_interaction_constraints(params.get("interaction_constraints"), len(dataset.features))
    if "monotone_constraints" not in params:
        signs = _monotone_signs(dataset, config)
        if any(signs):
            params["monotone_constraints"] = signs
            params.setdefault("monotone_constraints_method", "advanced")
    return params


def train(
    dataset: LabelledDataset,
    config: TrainConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
) -> TrainingResult:
    """Train, calibrate, stage and benchmark a lead-scoring model on ``dataset``.

    Parameters
    ----------
    dataset : labelled history (flat or event form).
    config : training configuration; a mapping is read as a YAML config is
        (:func:`~leadscore.config.parse_config`:
        ``{"stages": {"sql": {"policy": "sql_precision", "target": 0.6}}}``), a path as
        the YAML file it names (:func:`~leadscore.config.load_config`); ``None`` for the
        defaults.
    params : LightGBM parameters that override the defaults and the config (from tuning).
    notes : notes of checks the caller made on the data before it became examples (the
        snapshot lead columns of event data, which need the activity log): kept with the
        run's own, in ``model.json``, MLflow and the report.

    Raises
    ------
    ModelError
        Too little history (cold start), or the model does not beat the best baseline on the
        test fold and ``config.quality_gate.allow_worse`` is off.
    DataError
        A label is not 0 or 1, a fold holds a single class or is empty, or a feature holds
        an infinite value.
    SpecError
        A monotone pattern of the config matches no feature or only categorical ones, or a
        feature is matched by both monotone lists; LightGBM refuses a parameter value; or
        the data set's points table (``rule_points.<name>``) names a feature it lacks
        (all raised before any work, :func:`check_config`).
    """
    expect_type(
        dataset,
        LabelledDataset,
        "train's dataset",
        "Pass labelled history: load_dataset(spec) for a flat table, or "
        "build_training_examples(data, as_of_dates, horizon_days) for event data.",
    )
    config = _train_config(config)
    started = time.perf_counter()
    # the data's own notes first (loading saw the open leads the examples no longer hold)
    run_notes: list[str] = [*dataset.notes, *notes]
    # the config's mistakes (monotone patterns, LightGBM parameters, rule points) stop here,
    # before any work, and so do the data's
    prepared = prepare_training(dataset, config, params=params)
    folds, y, encoder, matrix = prepared.folds, prepared.y, prepared.encoder, prepared.matrix
    points_table = prepared.rule_points
    if points_table.set_aside:
        logger.warning("%s", points_table.set_aside_text(dataset.name))
    n_leads, n_wins = prepared.n_leads, prepared.n_wins
    if folds.kind == "random":
        run_notes.append(
            "the data has no time order: folds are stratified at random, so test "
            "metrics may be optimistic"
        )
    run_notes.extend(_post_contact_notes(dataset, config))
    used = {**base_params(dataset, config, len(folds.fit) + len(folds.valid)), **(params or {})}
    booster, best_iteration = _fit_booster(matrix, y, folds, encoder, used, config)

    cal_rows, test_rows = folds.calibrate, folds.test
    cal_margin = np.asarray(booster.predict(matrix[cal_rows], raw_score=True))
    cal_leads = dataset.lead_id.iloc[cal_rows].to_numpy()
    calibrator = ProbabilityCalibrator(
        config.calibration.method, config.calibration.cv, config.seed
    ).fit(cal_margin, y[cal_rows], groups=cal_leads)
    _log_calibration("the model", calibrator)
    small_fold = warn_small_calibration_fold(
        y[cal_rows], cal_leads, folds.purged.get("calibrate", 0)
    )
    if small_fold:
        run_notes.append(small_fold)
    cal_p = calibrator.predict(cal_margin)
    periods = calibration_periods(dataset, cal_rows, config, folds.purged_leads.get("calibrate", 0))
    stages = StageThresholds(config.stages).fit(
        cal_p, y[cal_rows], periods=periods, leads=cal_leads
    )
    run_notes.extend(stages.warnings_)

    test_margin = np.asarray(booster.predict(matrix[test_rows], raw_score=True))
    p_raw = 0.5 * (1.0 + np.tanh(0.5 * test_margin))
    p_cal = calibrator.predict(test_margin)
    test_stages = stages.transform(p_cal)
    y_test = y[test_rows]
    test_ids = dataset.lead_id.iloc[test_rows].to_numpy()

    train_rows = booster_rows(folds) if config.lightgbm.refit else folds.fit
    X = prepared.frame  # the model's typing: spellings of one level are one value
    baselines: dict[str, LogisticRegressionBaseline | RulePointsBaseline] = {
        "logistic_regression": LogisticRegressionBaseline(),
        "rule_points": RulePointsBaseline(rules=points_table.rules),
    }
    baseline_p: dict[str, np.ndarray] = {}
    for name, baseline in baselines.items():
        baseline.fit(X.iloc[train_rows], y[train_rows])
        baseline.calibrate(
            X.iloc[cal_rows],
            y[cal_rows],
            method=config.calibration.method,
            cv=config.calibration.cv,
            random_state=config.seed,
            groups=cal_leads,
        )
        _log_calibration(f"the {name.replace('_', ' ')} baseline", baseline.calibrator_)
        baseline_p[name] = baseline.predict_proba(X.iloc[test_rows])
    points = baselines["rule_points"]
    assert isinstance(points, RulePointsBaseline)
    if points.derived_:
        run_notes.append(
            "rule points: "
            + (
                points_table.set_aside_text(dataset.name, derived=len(points.rules_))
                if points_table.set_aside
                else f"no table for {dataset.name!r} in the config, so "
                f"{len(points.rules_)} rules were derived from the lift on fit + valid"
            )
        )

    metrics: dict[str, Any] = {
        "model": evaluate(y_test, p_cal),
        "model_uncalibrated": evaluate(y_test, p_raw),
        "baselines": {name: evaluate(y_test, p) for name, p in baseline_p.items()},
        "stages": stage_report(y_test, test_stages),
        "thresholds": {
            "mql": stages.to_dict()["mql_threshold_"],
            "sql": stages.to_dict()["sql_threshold_"],
        },
        "stage_policy": policy_check(
            stages,
            p_cal,
            y_test,
            periods=calibration_periods(
                dataset, test_rows, config, folds.purged_leads.get("test", 0)
            ),
            leads=test_ids,
        ),
        "calibration": calibrator.method_,
        "fold_kind": folds.kind,
        "n_train": len(train_rows),
        "n_calibrate": len(cal_rows),
        "n_test": len(test_rows),
        "n_test_leads": int(pd.unique(np.asarray(test_ids)).size),  # event data: < n_test
        # the model's size, beside its figures: a booster that early stopping cut to a few
        # trees explains a weak run, and runs are compared on it (tune's trials log it too)
        "best_iteration": int(best_iteration),
        "num_trees": int(booster.num_trees()),
        "uncertainty": (
            test_uncertainty(y_test, p_cal, baseline_p, config, groups=test_ids)
            if config.evaluation.resamples
            else None
        ),
    }
    _quality_gate(metrics, config.quality_gate.allow_worse, run_notes)

    importance = _importance(booster, encoder.names)
    metadata = {
        "dataset": dataset.name,
        "data_form": dataset.form,
        "horizon_days": dataset.horizon_days,
        "order_kind": dataset.order_kind,
        "test_from": None if dataset.test_from is None else str(dataset.test_from),
        "folds": {
            "kind": folds.kind,
            "sizes": folds.sizes(),
            "purged": folds.purged,
            "boundaries": folds.boundaries,
            "span": list(folds.span),
        },
        "history": {"leads": n_leads, "wins": n_wins, "examples": len(y)},
        "excluded": dict(dataset.excluded),
        # the spec's "not answered" tokens (``Select``), blanked before training saw the
        # table: recorded so that the model reads them as missing wherever it scores (the
        # pyfunc and its Spark UDF get the CRM's rows as written); event data has none
        "missing_values": list(dataset.missing_values),
        "params": used,
        "best_iteration": best_iteration,
        "num_trees": booster.num_trees(),
        "metrics": metrics,
        "feature_importance": importance,
        "warnings": run_notes,
    }
    encoder = low_sentence_bounds(
        encoder, used.get("monotone_constraints"), X.iloc[train_rows], y[train_rows]
    )
    model = LeadScoringModel(booster, encoder, calibrator, stages, metadata)
    model.sub_scorer = fit_sub_scorer(model, dataset.X.iloc[train_rows], seed=config.seed)
    model.drift_reference = DriftReference().fit(
        model.prepare(X.iloc[test_rows]),
        model.features,
        p_cal,
        test_stages,
        levels_from=model.prepare(X.iloc[booster_rows(folds)]),
        computed=computed_inputs(model.features, dataset.form),
    )
    logger.info(
        "trained %s in %.1fs: test ROC-AUC %.3f (LR %.3f, points %.3f), ECE %.3f",
        dataset.name,
        time.perf_counter() - started,
        metrics["model"]["roc_auc"],
        metrics["baselines"]["logistic_regression"]["roc_auc"],
        metrics["baselines"]["rule_points"]["roc_auc"],
        metrics["model"]["ece"],
    )
    return TrainingResult(
        model=model,
        metrics=metrics,
        folds=folds,
        y=y_test,
        p_raw=p_raw,
        p_cal=p_cal,
        stages=test_stages,
        baselines=baseline_p,
        lead_id=test_ids,
        X_test=X.iloc[test_rows].reset_index(drop=True),
        params=used,
        best_iteration=best_iteration,
        num_trees=booster.num_trees(),
        feature_importance=importance,
        rule_points_table=tuple(points.table()),
        rule_points_derived=bool(points.derived_),
        warnings=tuple(run_notes),
    )


def _train_config(
    config: TrainConfig | Mapping[str, Any] | str | os.PathLike[str] | None,
) -> TrainConfig:
    """The config :func:`train` was given, read as the command line reads one."""
    if config is None:
        return TrainConfig()
    if isinstance(config, Mapping):
        return parse_config(config)
    if isinstance(config, (str, os.PathLike)):
        return load_config(config)
    expect_type(
        config,
        TrainConfig,
        "train's config",
        "Pass a TrainConfig, a mapping of config keys, or the path of a YAML config.",
    )
    return config


def _post_contact_notes(dataset: LabelledDataset, config: TrainConfig) -> list[str]:
    """A note naming the features named like a field written after contact.

    Loading logs them, but a log is gone once the run ends; the run's notes are what its model
    report reads, and a moderately leaky grade passes the guard's checks, so the report would
    otherwise say that nothing looked like leakage. Features allowed by name (the spec's
    ``allow_leakage``, the config's ``leakage.allow``) are vouched for and left out.
    """
    found = post_contact_columns(
        [f.name for f in dataset.features],
        allow=(*dataset.allowed_leakage, *config.leakage.allow),
    )
    if not found:
        return []
    leave_out, vouch = {
        "flat": ("list them under exclude in the spec", "list them under allow_leakage"),
        "events": ("drop them from the leads table", "list them under leakage.allow in the config"),
    }.get(dataset.form or "", ("leave them out", "list them under leakage.allow in the config"))
    fix = (
        f"If the sales team fills them in, {leave_out}; if they are known before contact, {vouch}."
    )
    return [post_contact_note(found, fix)]


def test_uncertainty(
    y: np.ndarray,
    p_model: np.ndarray,
    baselines: Mapping[str, np.ndarray],
    config: TrainConfig,
    *,
    groups: np.ndarray | None = None,
) -> dict[str, Any]:
    """Bootstrap intervals of the test metrics of the model and the baselines, the model's
    ROC-AUC gain over each baseline, and the ECE a perfectly calibrated model would show on
    these leads by chance (:func:`~leadscore.metrics.bootstrap_intervals`,
    :func:`~leadscore.metrics.ece_by_chance`).

    ``groups`` are the rows' lead ids: event-form test folds hold a lead once per as-of date,
    and the bootstrap must draw whole leads, not rows, or its intervals come out too narrow;
    for the same reason the chance ECE draws one outcome per lead, shared by its rows (flat
    data has one row per lead and is unchanged by either). ``ece_by_chance`` keeps the
    number of leads drawn (``n_groups``), so that a report can say the draws were per lead;
    results logged before it lack the key (their draws were per row)."""
    evaluation = config.evaluation
    boot = bootstrap_intervals(
        y,
        {"model": p_model, **baselines},
        resamples=evaluation.resamples,
        level=evaluation.level,
        seed=config.seed,
        groups=groups,
    )
    chance = ece_by_chance(
        p_model,
        resamples=evaluation.resamples,
        level=evaluation.level,
        seed=config.seed,
        groups=groups,
    )
    return {**boot, "ece_by_chance": {**chance, "n_groups": boot["n_groups"]}}


def _quality_gate(metrics: dict[str, Any], allow_worse: bool, notes: list[str]) -> None:
    model_auc = metrics["model"]["roc_auc"]
    name, best = max(
        ((n, m["roc_auc"]) for n, m in metrics["baselines"].items()),
        key=lambda item: -np.inf if np.isnan(item[1]) else item[1],
    )
    if model_auc > best:
        return
    message = (
        f"the model does not beat the {name.replace('_', ' ')} baseline on the test "
        f"fold: ROC-AUC {model_auc:.3f} against {best:.3f}"
    )
    uncertainty = metrics.get("uncertainty") or {}
    gain = (uncertainty.get("roc_auc_gain") or {}).get(name)
    if gain is not None and all(np.isfinite(gain)):
        message += (
            f" (difference {signed_difference(model_auc - best)}, {uncertainty['level']:.0%} "
            f"interval {signed_difference(gain[0])} to {signed_difference(gain[1])})"
        )
    if allow_worse:
        notes.append(message + " (kept because allow_worse is set)")
        logger.warning("%s; kept because allow_worse is set", message)
        return
    raise ModelError(
        message,
        "Check the data and features, or keep the model anyway: --allow-worse on the command "
        "line, quality_gate.allow_worse: true in the config (in Python too, where the result "
        "can then be inspected).",
    )
