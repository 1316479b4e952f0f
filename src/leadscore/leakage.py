"""Suspected-leakage guard: features too good to be known before the outcome.

A column written after contact (a sales tag, a quality grade, a closed-deal field) separates won
from lost leads far better than anything known at scoring time. Two symptoms are checked on the
fit fold only, so the test fold stays untouched:

* **univariate ROC-AUC** above a threshold (default 0.9). Numeric features are ranked as they
  are, with missing values as their own lowest rank; categorical ones are target-encoded out of
  fold (5 folds, smoothed), so a high-cardinality column such as a landing-page id does not look
  predictive just because it memorises the fit fold. The AUC is symmetric: 0.05 is as
  suspicious as 0.95.
* **non-null for one class only**: a column that is filled in for won leads and empty for lost
  ones (or the reverse), as CRM fields that the sales team completes after a deal are.

A feature that trips either check stops training unless its name is allowed explicitly
(``allow_leakage`` in the dataset spec or the training config), and the report lists it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from leadscore.errors import DataError

MIN_NON_NULL = 20


@dataclass(frozen=True)
class LeakageSuspect:
    """A feature that looks like it was written after the outcome, and why."""

    feature: str
    reason: str
    roc_auc: float | None


def _out_of_fold_target_encoding(values: pd.Series, y: np.ndarray, seed: int) -> np.ndarray:
    """Smoothed won rate per category, each row encoded from folds it is not in."""
    codes = values.astype("string").fillna("\0missing").to_numpy()
    encoded = np.empty(len(values), dtype="float64")
    prior = float(y.mean())
    n_splits = int(min(5, np.bincount(y).min())) if len(np.unique(y)) > 1 else 0
    if n_splits < 2:
        return np.full(len(values), prior)
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for train_idx, apply_idx in folds.split(codes, y):
        stats = (
            pd.DataFrame({"code": codes[train_idx], "y": y[train_idx]})
            .groupby("code")["y"]
            .agg(["sum", "count"])
        )
        rate = (stats["sum"] + 10 * prior) / (stats["count"] + 10)
        encoded[apply_idx] = pd.Series(codes[apply_idx]).map(rate).fillna(prior).to_numpy()
    return encoded


def univariate_auc(values: pd.Series, y: np.ndarray, *, seed: int = 0) -> float:
    """Symmetric ROC-AUC of one feature alone (0.5 = no signal, 1.0 = separates perfectly)."""
    if ptypes.is_numeric_dtype(values) and not isinstance(values.dtype, pd.CategoricalDtype):
        numeric = values.astype("float64")
        lowest = np.nanmin(numeric.to_numpy()) - 1 if numeric.notna().any() else 0.0
        score = numeric.fillna(lowest).to_numpy()
    else:
        score = _out_of_fold_target_encoding(values, y, seed)
    if np.all(score == score[0]):
        return 0.5
    auc = float(roc_auc_score(y, score))
    return max(auc, 1.0 - auc)


def find_leakage_suspects(
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    auc_threshold: float = 0.9,
    allow: tuple[str, ...] | list[str] = (),
    seed: int = 0,
) -> list[LeakageSuspect]:
    """Features of ``X`` (the fit fold) that look like post-outcome leakage.

    Features named in ``allow`` are still checked but never reported.
    """
    y = np.asarray(y).astype(int)
    if len(np.unique(y)) < 2:
        raise DataError(
            "the fit fold holds one class only", "Give training data with both won and lost leads."
        )
    suspects: list[LeakageSuspect] = []
    for name in X.columns:
        if name in allow:
            continue
        values = X[name]
        present = values.notna().to_numpy()
        if MIN_NON_NULL <= present.sum() < len(values):
            classes = np.unique(y[present])
            if len(classes) == 1:
                who = "won" if classes[0] == 1 else "lost"
                suspects.append(
                    LeakageSuspect(
                        name, f"filled in for {who} leads only ({int(present.sum())} rows)", None
                    )
                )
                continue
        auc = univariate_auc(values, y, seed=seed)
        if auc > auc_threshold:
            suspects.append(
                LeakageSuspect(name, f"separates won from lost alone with ROC-AUC {auc:.3f}", auc)
            )
    return suspects


def leakage_error(suspects: list[LeakageSuspect]) -> DataError:
    """The one-line error that stops training when suspects were found."""
    names = ", ".join(f"{s.feature!r} ({s.reason})" for s in suspects)
    return DataError(
        f"suspected leakage in {len(suspects)} feature(s): {names}",
        "If they are written after contact, exclude them (a spec's exclude; for event data, "
        "drop the column from the leads table); if they are truly known at scoring time, "
        "allow them (a spec's allow_leakage, or leakage.allow in the training config).",
    )
