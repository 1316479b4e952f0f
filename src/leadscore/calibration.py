"""Turning a booster's raw scores into probabilities a marketer can read at face value.

A gradient-boosted model ranks leads well but its probabilities drift: early stopping, class
balance and regularisation all bend them. The calibrator is fitted on a held-out calibration
fold with the booster already trained (never inside the booster's own training, where early
stopping and calibration would fight), and it is monotone, so it never changes the ranking.

``method="auto"`` chooses between isotonic regression, a sigmoid (Platt scaling) and leaving
the scores as they are, by the Brier score of each on data it did not see: the calibration
fold is split into ``cv`` parts, each part is scored by a calibrator fitted on the others, and
a method replaces a simpler one (identity, then sigmoid, then isotonic) only when its
out-of-fold Brier score is clearly lower: by more than two standard errors of the paired
per-lead difference. A calibrator that does not clearly help is not used.

Everything fitted is plain numbers, so :meth:`ProbabilityCalibrator.to_dict` writes it as JSON
and loading it runs no code.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.utils.validation import check_is_fitted

from leadscore.errors import ModelError

logger = logging.getLogger(__name__)

CalibrationMethod = Literal["auto", "isotonic", "sigmoid", "identity"]
METHODS: tuple[str, ...] = ("auto", "isotonic", "sigmoid", "identity")

#: Probabilities an isotonic map may reach: "never" and "always" are not honest claims for a
#: lead, and they make the log loss infinite.
_P_MIN, _P_MAX = 1e-3, 1 - 1e-3

#: A method replaces a simpler one only when its out-of-fold Brier score is lower by more
#: than this many standard errors of the paired per-lead difference (and by at least
#: ``_MIN_GAIN``): on a few hundred leads, a small gain is as likely to be luck as skill.
_SIGNIFICANCE = 2.0
_MIN_GAIN = 1e-5


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _fit_sigmoid(scores: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling with a slope of at least 0, so the map never reverses the ranking.

    When the scores rank the leads backwards (the data drifted between the booster's folds
    and the calibration fold), the best increasing sigmoid is flat: every lead gets the
    fold's conversion rate, as isotonic regression would give.
    """
    # A large C: Platt scaling has two parameters and needs no shrinkage on hundreds of leads.
    lr = LogisticRegression(C=1e6, max_iter=1000)
    lr.fit(scores.reshape(-1, 1), y)
    a, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
    if a > 0:
        return a, b
    rate = float(np.clip(y.mean(), _P_MIN, _P_MAX))
    return 0.0, math.log(rate / (1.0 - rate))


def _fit_isotonic(scores: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Isotonic regression, interpolated between the centres of its blocks.

    Plain isotonic regression is a step function: every lead in a block gets the same
    probability, which throws away the booster's ranking inside the block (and lowers the
    ROC-AUC). Joining the blocks' centres (mean score, block rate) with straight lines keeps
    the fit monotone and calibrated while strictly increasing between the first and last
    centre, so the ranking survives.
    """
    iso = IsotonicRegression(out_of_bounds="clip", y_min=_P_MIN, y_max=_P_MAX)
    fitted = iso.fit_transform(scores, y)
    order = np.argsort(scores, kind="stable")
    s_sorted, f_sorted = scores[order], fitted[order]
    starts = np.flatnonzero(np.r_[True, np.diff(f_sorted) != 0])
    counts = np.diff(np.r_[starts, len(s_sorted)])
    centres = np.add.reduceat(s_sorted, starts) / counts
    return centres.astype("float64"), f_sorted[starts].astype("float64")


def _apply(method: str, params: dict[str, Any], scores: np.ndarray) -> np.ndarray:
    if method == "identity":
        return _sigmoid(scores)
    if method == "sigmoid":
        return _sigmoid(params["a"] * scores + params["b"])
    x, yv = params["x"], params["y"]
    if len(x) == 1:
        return np.full(scores.shape, yv[0])
    return np.interp(scores, x, yv)


def _fit(method: str, scores: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    if method == "identity":
        return {}
    if method == "sigmoid":
        a, b = _fit_sigmoid(scores, y)
        return {"a": a, "b": b}
    x, yv = _fit_isotonic(scores, y)
    return {"x": x, "y": yv}


def _standard_error(gain: np.ndarray, groups: np.ndarray | None) -> float:
    """Standard error of the mean of ``gain``; with ``groups``, clustered by group, since a
    lead's examples are not independent draws."""
    if groups is None:
        return float(gain.std(ddof=1) / np.sqrt(len(gain)))
    _, index = np.unique(groups, return_inverse=True)
    totals = np.bincount(index, weights=gain)
    sizes = np.bincount(index)
    n_groups = len(totals)
    residual = totals - gain.mean() * sizes
    return float(np.sqrt(n_groups / (n_groups - 1) * (residual**2).sum()) / len(gain))


class ProbabilityCalibrator(BaseEstimator):
    """A monotone map from raw log-odds scores to calibrated probabilities.

    Parameters
    ----------
    method : ``"auto"`` (choose by out-of-fold Brier score), ``"isotonic"``, ``"sigmoid"`` or
        ``"identity"`` (the booster's own probability, ``1 / (1 + exp(-score))``).
    cv : folds of the cross-fitting that ``"auto"`` uses to compare methods.
    random_state : seed of that cross-fitting.

    Attributes
    ----------
    method_ : the method in use after fitting.
    params_ : its parameters (``a``, ``b`` for sigmoid; ``x``, ``y``: block centres and block
        rates for isotonic).
    brier_oof_ : out-of-fold Brier score of each method tried (``"auto"`` only).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> s = rng.normal(size=2000)
    >>> y = (rng.random(2000) < 1 / (1 + np.exp(-(2 * s - 1)))).astype(int)
    >>> cal = ProbabilityCalibrator("sigmoid").fit(s, y)
    >>> round(cal.params_["a"]), round(cal.params_["b"])
    (2, -1)
    """

    def __init__(
        self, method: CalibrationMethod = "auto", cv: int = 5, random_state: int = 0
    ) -> None:
        self.method = method
        self.cv = cv
        self.random_state = random_state

    def fit(
        self, scores: np.ndarray, y: np.ndarray, *, groups: np.ndarray | None = None
    ) -> ProbabilityCalibrator:
        """Fit on raw scores (log-odds) of held-out leads and their 0/1 outcomes.

        ``groups`` names the lead of each example (event data holds a lead at several as-of
        dates): ``"auto"`` then keeps each lead's examples on one side of its cross-fitting
        and weighs the noise of a gain by lead, so that a method is not chosen for fitting a
        lead's other snapshots.
        """
        if self.method not in METHODS:
            raise ModelError(
                f"unknown calibration method {self.method!r}",
                f"Use one of: {', '.join(METHODS)}.",
            )
        s = np.asarray(scores, dtype="float64").ravel()
        yv = np.asarray(y, dtype="float64").ravel()
        if s.shape != yv.shape or s.size == 0 or not np.all(np.isfinite(s)):
            raise ValueError("scores and y must be finite and of the same, non-zero length")
        n_pos = int(yv.sum())
        method: str = self.method
        self.brier_oof_: dict[str, float] = {}
        if method != "identity" and min(n_pos, len(yv) - n_pos) < 2:
            logger.warning("calibration fold holds a single class: keeping the raw scores")
            method = "identity"
        elif method == "auto":
            method = self._choose(s, yv, None if groups is None else np.asarray(groups))
        self.method_: str = method
        self.params_: dict[str, Any] = _fit(method, s, yv)
        flat = (method == "sigmoid" and self.params_["a"] == 0.0) or (
            method == "isotonic" and np.ptp(self.params_["y"]) == 0.0
        )
        if flat:
            logger.warning(
                "the booster's scores do not rank the calibration fold (%s leads): every lead "
                "gets its conversion rate, %.3f. Conversion patterns likely changed between the "
                "folds; check the data for a break in time or give more recent history",
                f"{len(yv):,}",
                float(self.predict(s[:1])[0]),
            )
        return self

    def _choose(self, s: np.ndarray, y: np.ndarray, groups: np.ndarray | None) -> str:
        if groups is not None and len(np.unique(groups)) == len(groups):
            groups = None  # one example per lead: the plain folds are the grouped ones
        if groups is None:
            n_min = int(min(y.sum(), len(y) - y.sum()))
        else:  # every training split needs both outcomes: count the leads holding each
            n_min = min(len(np.unique(groups[y == 1])), len(np.unique(groups[y == 0])))
        folds = min(self.cv, n_min)
        if folds < 2:
            self.brier_oof_ = {}
            return "identity"
        if groups is None:
            splitter = StratifiedKFold(folds, shuffle=True, random_state=self.random_state)
        else:
            splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=self.random_state)
        splits = list(splitter.split(s.reshape(-1, 1), y, groups))
        if any(len(np.unique(y[train])) < 2 for train, _ in splits):
            # a grouped split can put every won lead in one fold: nothing to fit on the rest
            self.brier_oof_ = {}
            return "identity"
        oof = {m: np.empty_like(s) for m in ("identity", "sigmoid", "isotonic")}
        for train, held in splits:
            for m, out in oof.items():
                out[held] = _apply(m, _fit(m, s[train], y[train]), s[held])
        losses = {m: (p - y) ** 2 for m, p in oof.items()}
        self.brier_oof_ = {m: float(loss.mean()) for m, loss in losses.items()}
        chosen = "identity"
        for m in ("sigmoid", "isotonic"):  # simplest first: a method must earn its place
            gain = losses[chosen] - losses[m]
            noise = _SIGNIFICANCE * _standard_error(gain, groups)
            if gain.mean() > max(_MIN_GAIN, noise):
                chosen = m
        logger.debug(  # training logs the choice, naming the model it calibrates
            "calibration: out-of-fold Brier %s -> %s",
            ", ".join(f"{m} {b:.4f}" for m, b in self.brier_oof_.items()),
            chosen,
        )
        return chosen

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of raw scores (log-odds)."""
        check_is_fitted(self, "params_")
        s = np.asarray(scores, dtype="float64")
        return _apply(self.method_, self.params_, s)

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        """The fitted calibrator as plain JSON-ready values."""
        check_is_fitted(self, "params_")
        params = {
            k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.params_.items()
        }
        return {
            "method": self.method,
            "cv": self.cv,
            "random_state": self.random_state,
            "method_": self.method_,
            "params_": params,
            "brier_oof_": dict(self.brier_oof_),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProbabilityCalibrator:
        """Rebuild a fitted calibrator written by :meth:`to_dict`.

        Every value is checked, not only its presence: a hand-edited or damaged file must fail
        here, with the file blamed, rather than load and turn every lead's probability into
        ``nan`` or into a map that is not monotone (later blamed on the leads being scored).

        Raises
        ------
        ModelError
            A missing or mistyped field, an unknown method, a non-finite parameter, or
            isotonic points that are empty, of unequal length, not sorted by score, or whose
            probabilities decrease or leave [0, 1].
        """
        if not isinstance(data, Mapping):
            raise _damaged(f"it is {type(data).__name__}, not a mapping")
        required = ("method", "cv", "random_state", "method_", "params_")
        missing = [k for k in required if k not in data]
        if missing:
            raise _damaged(f"it has no {missing[0]!r}")
        method, cv, seed = data["method"], data["cv"], data["random_state"]
        if method not in METHODS:
            raise _damaged(f"method {method!r} is not one of {', '.join(METHODS)}")
        if not _is_int(cv) or cv < 2 or not _is_int(seed):
            raise _damaged(f"cv {cv!r} or random_state {seed!r} is not a whole number (cv >= 2)")
        fitted, raw = data["method_"], data["params_"]
        if fitted not in METHODS[1:]:
            raise ModelError(
                f"calibrator method {fitted!r} in the model file is unknown",
                "Retrain the model with this version of leadscore.",
            )
        if not isinstance(raw, Mapping):
            raise _damaged(f"params_ is {type(raw).__name__}, not a mapping")
        cal = cls(method, cv, seed)
        cal.method_ = fitted
        cal.params_ = _read_params(fitted, raw)
        brier = data.get("brier_oof_", {})
        if not isinstance(brier, Mapping) or not all(
            v is None or _is_number(v) for v in brier.values()
        ):
            raise _damaged("brier_oof_ is not a mapping of numbers")
        cal.brier_oof_ = {str(k): math.nan if v is None else float(v) for k, v in brier.items()}
        return cal


def _damaged(what: str) -> ModelError:
    return ModelError(
        f"the calibrator in the model file is damaged: {what}",
        "Retrain the model or restore its model.json as it was saved.",
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    """A finite JSON number (``true`` is no number, ``"0.5"`` and ``NaN`` neither)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _read_params(method: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The fitted parameters of ``method`` from JSON, checked to give probabilities."""
    if method == "identity":
        return {}
    if method == "sigmoid":
        a, b = raw.get("a"), raw.get("b")
        if not (_is_number(a) and _is_number(b)):
            raise _damaged(f"sigmoid parameters a={a!r}, b={b!r} are not finite numbers")
        if a < 0:  # type: ignore[operator]
            raise _damaged(f"sigmoid slope a={a!r} is negative (the map would reverse ranks)")
        return {"a": float(a), "b": float(b)}  # type: ignore[arg-type]
    x, y = raw.get("x"), raw.get("y")
    if not (isinstance(x, list) and isinstance(y, list)):
        raise _damaged("isotonic x and y are not lists")
    if not x or len(x) != len(y):
        raise _damaged(f"isotonic x and y hold {len(x)} and {len(y)} points")
    if not all(_is_number(v) for v in (*x, *y)):
        raise _damaged("isotonic x or y holds a value that is not a finite number")
    xs, ys = np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64")
    if np.any(np.diff(xs) < 0):
        raise _damaged("isotonic x is not sorted")
    if np.any(np.diff(ys) < 0) or ys[0] < 0 or ys[-1] > 1:
        raise _damaged("isotonic y decreases or leaves [0, 1]")
    return {"x": xs, "y": ys}
