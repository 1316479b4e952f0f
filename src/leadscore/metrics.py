"""Test-fold metrics of a propensity model, read the way marketing and sales read them.

Ranking (ROC-AUC, PR-AUC, lift and capture in the top decile) says whether the score puts the
right leads first; calibration (Brier score, ECE, log loss) says whether "37 %" means that 37 in
100 such leads convert. Every function takes probabilities, never hard 0/1 predictions: an AUC
on hard labels is a different and misleading number.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

#: Keys of :func:`evaluate`, in the order reports show them.
METRIC_KEYS: tuple[str, ...] = (
    "roc_auc",
    "pr_auc",
    "brier",
    "ece",
    "log_loss",
    "lift_top_decile",
    "capture_top_decile",
)

#: Funnel stages from the bottom up.
STAGES: tuple[str, ...] = ("lead", "mql", "sql")

_EPS = 1e-15


def _check(
    y: np.ndarray | Sequence[int], p: np.ndarray | Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    y_arr = np.asarray(y, dtype="float64").ravel()
    p_arr = np.asarray(p, dtype="float64").ravel()
    if y_arr.shape != p_arr.shape:
        raise ValueError(f"y and p differ in length: {y_arr.size} != {p_arr.size}")
    if y_arr.size == 0:
        raise ValueError("no examples to evaluate")
    if not np.isin(y_arr, (0.0, 1.0)).all():
        raise ValueError("y must hold 0/1 labels")
    if not np.all(np.isfinite(p_arr)) or p_arr.min() < 0.0 or p_arr.max() > 1.0:
        raise ValueError("p must hold probabilities in [0, 1]")
    return y_arr, p_arr


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """ECE over ``n_bins`` equal-count bins of ``p``: mean |observed rate - mean p|, weighted.

    Equal-count (quantile) bins keep every bin's observed rate estimated from the same number
    of leads, where equal-width bins would leave the top bins with a handful of leads.
    """
    y_arr, p_arr = _check(y, p)
    order = np.argsort(p_arr, kind="stable")
    gaps = [
        len(idx) * abs(y_arr[idx].mean() - p_arr[idx].mean())
        for idx in np.array_split(order, min(n_bins, len(order)))
        if len(idx)
    ]
    return float(np.sum(gaps) / len(y_arr))


def top_decile(y: np.ndarray, p: np.ndarray, share: float = 0.1) -> tuple[float, float]:
    """Lift and capture rate among the ``share`` of leads with the highest scores.

    Lift is the conversion rate of the top leads over the overall rate ("the top 10 % convert
    3.1 times as often as the average lead"); capture is the share of all wins found there.
    Leads tied at the cut count with their group's average outcome, so the answer does not
    depend on row order and a constant score has lift 1.
    """
    y_arr, p_arr = _check(y, p)
    k = max(1, int(np.ceil(share * len(y_arr))))
    wins = y_arr.sum()
    if wins == 0:
        return float("nan"), float("nan")
    cut = np.sort(p_arr)[::-1][k - 1]
    above, tied = p_arr > cut, p_arr == cut
    top_wins = y_arr[above].sum() + (k - above.sum()) * y_arr[tied].mean()
    lift = (top_wins / k) / y_arr.mean()
    return float(lift), float(top_wins / wins)


def evaluate(y: np.ndarray | Sequence[int], p: np.ndarray | Sequence[float]) -> dict[str, float]:
    """All test metrics of probabilities ``p`` against 0/1 labels ``y`` (:data:`METRIC_KEYS`).

    Ranking metrics are ``nan`` when ``y`` holds a single class (they are undefined there).

    Examples
    --------
    >>> m = evaluate([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> round(m["roc_auc"], 2), round(m["brier"], 3)
    (0.75, 0.158)
    """
    y_arr, p_arr = _check(y, p)
    both = 0 < y_arr.sum() < len(y_arr)
    lift, capture = top_decile(y_arr, p_arr)
    clipped = np.clip(p_arr, _EPS, 1 - _EPS)
    return {
        "roc_auc": float(roc_auc_score(y_arr, p_arr)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y_arr, p_arr)) if both else float("nan"),
        "brier": float(brier_score_loss(y_arr, p_arr)),
        "ece": expected_calibration_error(y_arr, p_arr),
        "log_loss": float(log_loss(y_arr, clipped, labels=[0, 1])),
        "lift_top_decile": lift,
        "capture_top_decile": capture,
    }


def stage_report(
    y: np.ndarray | Sequence[int], stages: np.ndarray | Sequence[str]
) -> dict[str, dict[str, float]]:
    """Per stage: how many leads, their share, their conversion rate and their share of wins.

    This is the table marketing and sales agree on: "SQLs are 12 % of leads, convert at 71 %
    and hold 40 % of all wins". A stage without leads has conversion rate ``nan``.
    """
    y_arr = np.asarray(y, dtype="float64").ravel()
    s_arr = np.asarray(stages).astype(str).ravel()
    if y_arr.shape != s_arr.shape:
        raise ValueError(f"y and stages differ in length: {y_arr.size} != {s_arr.size}")
    unknown = set(np.unique(s_arr)) - set(STAGES)
    if unknown:
        raise ValueError(f"unknown stage(s): {sorted(unknown)}")
    n = max(len(y_arr), 1)
    wins = y_arr.sum()
    report: dict[str, dict[str, float]] = {}
    for stage in STAGES:
        mask = s_arr == stage
        count = int(mask.sum())
        report[stage] = {
            "count": count,
            "share": count / n,
            "conversion_rate": float(y_arr[mask].mean()) if count else float("nan"),
            "share_of_wins": float(y_arr[mask].sum() / wins) if wins else float("nan"),
        }
    return report
