"""Baselines the model must beat, trained and judged on the same folds.

* :class:`LogisticRegressionBaseline`: what an analyst fits first (one-hot categoricals,
  imputed and scaled numbers, a logistic regression).
* :class:`RulePointsBaseline`: what a marketing-automation tool does (HubSpot, Marketo,
  Pardot): points per action and attribute ("demo request +30, pricing page +15, student
  -10"), summed. The table comes from the training config when marketing wrote one; when it
  did not, a transparent default table is derived from the rows it is fitted on (fit + valid
  in training, the booster's training rows): every feature is cut
  into a few bins (tertiles of a number, each common category, "missing"), and each bin
  scores ``round(10 * log2(lift))`` points, where lift is the bin's win rate (shrunk towards
  the overall rate) over the overall rate. +10 means "converts twice as often", -10 "half as
  often". That is a naive-Bayes-like score a marketer can read line by line.

Both map their scores to probabilities with the same calibrator the model uses, fitted on the
calibration fold, so Brier score and ECE compare like for like.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import NotFittedError
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline, make_union
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from leadscore.calibration import CalibrationMethod, ProbabilityCalibrator
from leadscore.encoding import canonical_text, expect_frame, spelling_key
from leadscore.errors import DataError, SpecError
from leadscore.names import missing_names_text

logger = logging.getLogger(__name__)

_MISSING = "__missing__"


def _is_categorical(values: pd.Series) -> bool:
    return not (ptypes.is_numeric_dtype(values) or ptypes.is_bool_dtype(values)) or isinstance(
        values.dtype, pd.CategoricalDtype
    )


def _as_text(values: pd.Series, key: Callable[[object], str] = canonical_text) -> np.ndarray:
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    text = np.array([key(u) for u in uniques] + [_MISSING], dtype=object)
    return text[codes]  # code -1 picks the trailing _MISSING


def _check_columns(X: pd.DataFrame, names: Sequence[str], baseline: str) -> None:
    """A :class:`DataError` naming every column of ``names`` that ``X`` lacks, each with the
    input's column most like it, in the words :class:`~leadscore.model.LeadScoringModel`
    uses: a renamed column was a bare ``KeyError``."""
    expect_frame(X)
    missing = [name for name in names if name not in X.columns]
    if missing:
        columns = "columns" if len(missing) > 1 else "column"
        shown = missing_names_text(missing, X.columns, used=names, holder="the input")
        raise DataError(
            f"the leads to score have no {columns} {shown}",
            f"Rename the input's columns to the names the {baseline} was fitted on, or add "
            "them (empty values are fine).",
        )


class _CalibratedMixin(BaseEstimator):
    """``fit``, then ``calibrate``, then ``predict_proba``: scores mapped to probabilities on
    held-out data."""

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def _forget_fit(self) -> None:
        """Drop every fitted attribute (sklearn's trailing ``_``) before a new ``fit``.

        The calibrator maps the *old* scores to probabilities: kept after a refit with other
        parameters, it would silently turn the new scores into wrong probabilities. Dropped,
        ``predict_proba`` says that ``calibrate`` is due again.
        """
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("__")]:
            delattr(self, name)

    def calibrate(
        self,
        X: pd.DataFrame,
        y: np.ndarray,
        method: CalibrationMethod = "auto",
        *,
        cv: int = 5,
        random_state: int = 0,
        groups: np.ndarray | None = None,
    ) -> _CalibratedMixin:
        """Fit the score-to-probability map on held-out leads (the calibration fold), with the
        model's calibration settings (``cv``, ``random_state``, the leads as ``groups``) so
        the two compare alike."""
        calibrator = ProbabilityCalibrator(method, cv=cv, random_state=random_state)
        self.calibrator_ = calibrator.fit(self.decision_function(X), y, groups=groups)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of each lead (one value per row).

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Not fitted, or fitted but not calibrated since (the message names the step due).
        """
        if "calibrator_" not in vars(self):
            name = type(self).__name__
            check_is_fitted(
                self,
                msg=f"This {name} is not fitted yet: call 'fit', then 'calibrate' on held-out "
                "leads, before 'predict_proba'.",
            )
            raise NotFittedError(
                f"This {name} is fitted but not calibrated: call 'calibrate' on held-out "
                "leads (the calibration fold) before 'predict_proba'."
            )
        return self.calibrator_.predict(self.decision_function(X))


def signed_log1p(x: np.ndarray) -> np.ndarray:
    """``sign(x) * log(1 + |x|)``: counts and sizes on the scale a linear model reads them."""
    return np.sign(x) * np.log1p(np.abs(x))


class LogisticRegressionBaseline(_CalibratedMixin):
    """One-hot + imputed + scaled logistic regression, each number given both as it is and
    on a log scale (:func:`signed_log1p`).

    The baseline is the bar the booster must clear, so it is the plain model a data scientist
    would fit, not a straw man: on raw numbers alone it read 2,000 employees as 200 times
    more than 10, and a review's export with skewed counts had it at ROC-AUC 0.729 where the
    same regression on logged counts reached 0.763, above the booster that "beat" it. With
    both scales the regression picks the one that fits (x_education 0.891 against 0.892 raw;
    olist has no number).

    Parameters
    ----------
    C : inverse regularisation strength.
    min_frequency : categories seen fewer times are pooled into one "infrequent" column.
    """

    def __init__(self, C: float = 1.0, min_frequency: int = 5) -> None:
        self.C = C
        self.min_frequency = min_frequency

    def _frame(self, X: pd.DataFrame) -> pd.DataFrame:
        _check_columns(X, self.categorical_ + self.numeric_, "logistic regression baseline")
        out = {}
        for name in self.categorical_ + self.numeric_:
            values = X[name]
            out[name] = (
                _as_text(values)
                if name in self.categorical_
                else values.to_numpy(dtype="float64", na_value=np.nan)
            )
        return pd.DataFrame(out, index=X.index)

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> LogisticRegressionBaseline:
        """Fit on the training rows (fit + valid in training); the calibration of any earlier
        fit is dropped."""
        self._forget_fit()
        self.categorical_ = [c for c in X.columns if _is_categorical(X[c])]
        self.numeric_ = [c for c in X.columns if c not in self.categorical_]
        steps = []
        if self.categorical_:
            steps.append(
                (
                    "cat",
                    OneHotEncoder(
                        handle_unknown="infrequent_if_exist", min_frequency=self.min_frequency
                    ),
                    self.categorical_,
                )
            )
        if self.numeric_:
            steps.append(
                (
                    "num",
                    make_union(
                        make_pipeline(
                            SimpleImputer(strategy="median", keep_empty_features=True),
                            make_union(
                                FunctionTransformer(feature_names_out="one-to-one"),
                                FunctionTransformer(signed_log1p, feature_names_out="one-to-one"),
                            ),
                            StandardScaler(),
                        ),
                        # once, not on both scales: a logged copy would halve its penalty
                        MissingIndicator(error_on_new=False),
                    ),
                    self.numeric_,
                )
            )
        self.pipeline_ = Pipeline(
            [
                ("columns", ColumnTransformer(steps)),
                ("lr", LogisticRegression(C=self.C, max_iter=5000)),
            ]
        )
        self.pipeline_.fit(self._frame(X), np.asarray(y, dtype=int))
        return self

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Log-odds of the logistic regression."""
        check_is_fitted(self, "pipeline_")
        return np.asarray(self.pipeline_.decision_function(self._frame(X)), dtype="float64")


class PointsRule(BaseModel):
    """One line of a points table: a condition on one feature and the points it adds.

    A number matches ``at_least <= value < below`` (either bound may be left out); a category
    matches when it is one of ``in``; ``missing: true`` matches an empty value.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, allow_inf_nan=False
    )

    feature: str
    points: float
    at_least: float | None = None
    below: float | None = None
    in_: tuple[str, ...] | None = Field(default=None, alias="in")
    missing: bool | None = None

    @model_validator(mode="after")
    def _one_condition(self) -> PointsRule:
        kinds = [
            self.at_least is not None or self.below is not None,
            self.in_ is not None,
            self.missing is not None,
        ]
        if sum(kinds) != 1:
            raise ValueError(
                f"rule on {self.feature!r} needs exactly one condition: "
                "at_least/below, in, or missing"
            )
        return self

    def matches(self, values: pd.Series) -> np.ndarray:
        if self.missing is not None:
            return values.isna().to_numpy() == self.missing
        if self.in_ is not None:
            # case and spacing aside, as the model reads categories: `in: [google]` is Google
            return np.isin(_as_text(values, spelling_key), [spelling_key(v) for v in self.in_])
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        ok = ~np.isnan(numbers)
        if self.at_least is not None:
            ok &= numbers >= self.at_least
        if self.below is not None:
            ok &= numbers < self.below
        return ok

    def describe(self) -> str:
        if self.missing is not None:
            cond = "is empty" if self.missing else "is filled in"
        elif self.in_ is not None:
            cond = "is " + " or ".join(self.in_)
        elif self.below is None:
            cond = f">= {self.at_least:g}"
        elif self.at_least is None:
            cond = f"< {self.below:g}"
        else:
            cond = f"in [{self.at_least:g}, {self.below:g})"
        return f"{self.feature} {cond}: {self.points:+g}"


def unknown_rule_features(rules: Iterable[PointsRule], features: Iterable[str]) -> list[str]:
    """The features ``rules`` name that are not among ``features``, each once, in rule order."""
    known = {str(f) for f in features}
    return list(dict.fromkeys(r.feature for r in rules if r.feature not in known))


def check_rule_features(
    rules: Iterable[PointsRule],
    features: Iterable[str],
    *,
    where: str = "rule_points",
    holder: str = "the data",
) -> None:
    """A :class:`SpecError` naming every feature of ``rules`` that is not among ``features``
    (each with the closest name ``holder`` has): the check of :meth:`RulePointsBaseline.fit`,
    which training runs on the data set's feature names before it fits anything, so that a
    misspelt feature stops a run before the booster, not after it (``where`` names the
    table: ``rule_points.<data set>``)."""
    features = [str(f) for f in features]
    unknown = unknown_rule_features(rules, features)
    if unknown:
        which = "feature" if len(unknown) == 1 else "features"
        raise SpecError(
            f"{where} names {which} {missing_names_text(unknown, features)}, which {holder} "
            "does not have",
            "Fix the rule's feature name or drop the rule.",
        )


def check_rules_fit(rules: Iterable[PointsRule], X: pd.DataFrame) -> None:
    """A :class:`SpecError` for the first rule whose condition cannot fire on its feature's
    values in ``X`` (typed as the model reads them, every rule's feature a column of it):
    the check of :meth:`RulePointsBaseline.fit`, which training runs before it fits
    anything."""
    for rule in rules:
        _check_rule_fits(rule, X[rule.feature])


def _check_rule_fits(rule: PointsRule, values: pd.Series) -> None:
    """Refuse a condition that can never fire on the feature's values: ``in`` with no number
    for a numeric feature, ``at_least``/``below`` on categories none of which is a number.
    Codes compare across types (``in: ["3"]`` on a number 3, ``at_least`` on code levels)."""
    categorical = _is_categorical(values)
    if rule.in_ is not None and not categorical:
        wanted = pd.to_numeric(pd.Series([str(v) for v in rule.in_]), errors="coerce")
        if wanted.isna().all():
            raise SpecError(
                f"rule_points rule on {rule.feature!r} uses 'in' with no number, but "
                f"{rule.feature!r} is numeric",
                "Use at_least/below for a number, or drop the rule.",
            )
    if (rule.at_least is not None or rule.below is not None) and categorical:
        given = pd.Series(values.dropna().unique(), dtype="object").astype(str)
        levels = pd.to_numeric(given, errors="coerce")
        if levels.isna().all():
            raise SpecError(
                f"rule_points rule on {rule.feature!r} uses at_least/below, but "
                f"{rule.feature!r} is categorical with no numeric level",
                "Use 'in' with the categories that earn the points, or drop the rule.",
            )


class RulePointsBaseline(_CalibratedMixin):
    """Marketing-automation points scoring.

    Parameters
    ----------
    rules : the points table; ``None`` derives a default table from the data passed to
        :meth:`fit` (see the module docstring).
    min_support : leads a category or bin needs in the fit data to get its own rule.
    prior : pseudo-leads at the overall rate that shrink each bin's rate before its lift.
    scale : points per doubling of the conversion rate.

    Attributes
    ----------
    rules_ : the table in use.
    derived_ : whether it was derived from the data.
    """

    def __init__(
        self,
        rules: Sequence[PointsRule | dict[str, Any]] | None = None,
        min_support: int = 30,
        prior: float = 20.0,
        scale: float = 10.0,
    ) -> None:
        self.rules = rules
        self.min_support = min_support
        self.prior = prior
        self.scale = scale

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> RulePointsBaseline:
        """Check or derive the points table; the calibration of any earlier fit is dropped."""
        self._forget_fit()
        if self.rules is not None:
            rules = [
                r if isinstance(r, PointsRule) else PointsRule.model_validate(r) for r in self.rules
            ]
            check_rule_features(rules, X.columns)
            check_rules_fit(rules, X)
            self.rules_ = rules
            self.derived_ = False
        else:
            self.rules_ = self._derive(X, np.asarray(y, dtype="float64"))
            self.derived_ = True
            logger.info("rule points: derived %d rules from the training rows", len(self.rules_))
        return self

    def _derive(self, X: pd.DataFrame, y: np.ndarray) -> list[PointsRule]:
        base = float(y.mean())
        if base in (0.0, 1.0):
            return []
        candidates: list[tuple[str, dict[str, Any], np.ndarray]] = []
        for name in X.columns:
            values = X[name]
            missing = values.isna().to_numpy()
            if missing.sum() >= self.min_support and (~missing).sum() >= self.min_support:
                candidates.append((name, {"missing": True}, missing))
            if _is_categorical(values):
                # levels grouped as the rules match them (case and spacing aside): a rule of
                # `Google` also scores `google`, so a second rule of `google` would score its
                # leads twice; the rule names the spelling most leads have
                key = _as_text(values, spelling_key)
                written = pd.Series(_as_text(values))[~missing]
                spelt = written.groupby(key[~missing]).agg(lambda s: s.value_counts().index[0])
                levels, counts = np.unique(key[~missing], return_counts=True)
                for level, count in zip(levels, counts, strict=True):
                    if count >= self.min_support and count < len(key):
                        candidates.append((name, {"in": (str(spelt[level]),)}, key == level))
                continue
            numbers = values.to_numpy(dtype="float64", na_value=np.nan)
            present = numbers[~missing]
            if present.size < self.min_support:
                continue
            cuts = np.unique(np.quantile(present, [1 / 3, 2 / 3]))
            cuts = cuts[(cuts > present.min())]
            if cuts.size == 0:
                # two thirds or more at the minimum (a click rate mostly 0): the minimum
                # against anything above it
                above = present[present > present.min()]
                if above.size == 0:
                    continue
                cuts = np.array([above.min()])
            edges = [None, *cuts.tolist(), None]
            for lo, hi in itertools.pairwise(edges):
                cond = {"at_least": lo, "below": hi}
                mask = ~missing
                if lo is not None:
                    mask &= numbers >= lo
                if hi is not None:
                    mask &= numbers < hi
                if mask.sum() >= self.min_support:
                    candidates.append((name, cond, mask))
        rules = []
        for name, cond, mask in candidates:
            rate = (y[mask].sum() + self.prior * base) / (mask.sum() + self.prior)
            points = round(self.scale * math.log2(rate / base))
            if points != 0:
                rules.append(PointsRule(feature=name, points=points, **cond))
        return rules

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Total points of each lead."""
        check_is_fitted(self, "rules_")
        features = list(dict.fromkeys(rule.feature for rule in self.rules_))
        _check_columns(X, features, "rule points baseline")
        total = np.zeros(len(X), dtype="float64")
        for rule in self.rules_:
            total += rule.points * rule.matches(X[rule.feature])
        return total

    def table(self) -> list[str]:
        """The points table, one line per rule, as a marketer reads it."""
        check_is_fitted(self, "rules_")
        return [r.describe() for r in self.rules_]
