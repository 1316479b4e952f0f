"""Test-fold metrics of a propensity model, read the way marketing and sales read them.

Ranking (ROC-AUC, PR-AUC, lift and capture in the top decile) says whether the score puts the
right leads first; calibration (Brier score, ECE, log loss) says whether "37 %" means that 37 in
100 such leads convert. Every function takes probabilities, never hard 0/1 predictions: an AUC
on hard labels is a different and misleading number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import pandas as pd
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
_NORMAL = NormalDist()


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
    of leads, where equal-width bins would leave the top bins with a handful of leads. Leads
    with tied scores count with their group's mean outcome, so a group that straddles a bin
    edge is split fractionally and the answer does not depend on row order (test folds are
    in time order, and conversion drifts).
    """
    y_arr, p_arr = _check(y, p)
    order = np.argsort(p_arr, kind="stable")
    return _sorted_ece(p_arr[order], y_arr[order], np.ones(len(order)), len(order), n_bins)


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


def tie_mean_outcomes(p_sorted: np.ndarray, y_sorted: np.ndarray) -> np.ndarray:
    """Each lead's outcome as its tie group's mean outcome (``p_sorted`` sorted), as the ECE
    and the top decile count ties: a chart or table of them then does not depend on the order
    of leads with one score (545 of olist's test leads share one)."""
    y_sorted = np.asarray(y_sorted, dtype=float)
    if len(p_sorted) == 0:
        return y_sorted
    starts = np.flatnonzero(np.r_[True, np.diff(p_sorted) != 0])
    sizes = np.diff(np.r_[starts, len(p_sorted)])
    return np.repeat(np.add.reduceat(y_sorted, starts) / sizes, sizes)


def wilson_interval(
    rate: np.ndarray | Sequence[float] | float,
    n: np.ndarray | Sequence[float] | float,
    confidence: float = 0.95,
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of observed rates ``rate`` out of ``n`` leads each.

    Wilson's interval, unlike the normal approximation, stays within 0 and 1 and keeps its
    coverage near rates of 0 or 1 and on small groups (a campaign with 3 wins of 4 closed
    leads): what a reader needs to see whether a point off the diagonal or a channel above the
    average is more than chance. The rate need not be a whole count over ``n``: a reliability
    bin counts tied leads with their group's mean outcome (:func:`tie_mean_outcomes`). Equals
    ``scipy.stats.binomtest(k, n).proportion_ci(confidence, method="wilson")`` for whole
    counts, without a call per group.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie between 0 and 1, got {confidence}")
    rate = np.asarray(rate, dtype=float)
    n = np.asarray(n, dtype=float)
    z = _NORMAL.inv_cdf((1 + confidence) / 2)
    shrink = 1 + z**2 / n
    centre = (rate + z**2 / (2 * n)) / shrink
    half = z / shrink * np.sqrt(rate * (1 - rate) / n + z**2 / (4 * n**2))
    # The interval holds the rate exactly; rounding can put a bound of 0 a hair above it.
    low = np.clip(np.minimum(centre - half, rate), 0.0, 1.0)
    return low, np.clip(np.maximum(centre + half, rate), 0.0, 1.0)


def decile_table(y: np.ndarray | Sequence[int], p: np.ndarray | Sequence[float]) -> pd.DataFrame:
    """Leads in ten equal-count groups from the highest score down: their score range, leads,
    wins, conversion rate, lift over the average rate and the cumulative share of all wins,
    the table a team plans its calls with. Tied leads count with their group's mean outcome
    (:func:`tie_mean_outcomes`), so wins may be fractional where a tie straddles two groups.
    """
    y_arr, p_arr = _check(y, p)
    order = np.argsort(-p_arr, kind="stable")
    p_sorted = p_arr[order]
    wins = tie_mean_outcomes(p_sorted, y_arr[order])
    total, rate = float(wins.sum()), float(wins.mean()) if len(wins) else float("nan")
    rows = []
    reached = 0.0
    for i, part in enumerate(np.array_split(np.arange(len(p_arr)), 10), start=1):
        if not len(part):
            continue
        won = float(wins[part].sum())
        reached += won
        conversion = won / len(part)
        rows.append(
            {
                "decile": i,
                "highest": float(p_sorted[part[0]]),
                "lowest": float(p_sorted[part[-1]]),
                "leads": len(part),
                "wins": won,
                "conversion_rate": conversion,
                "lift": conversion / rate if rate > 0 else float("nan"),
                "cumulative_share_of_wins": reached / total if total > 0 else float("nan"),
            }
        )
    return pd.DataFrame(rows)


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


# --------------------------------------------------------------------------- uncertainty


class _SortedScores:
    """One score set sorted once, so that each bootstrap resample costs O(n), not a sort.

    A resample is a vector of counts ``w`` (how often each row was drawn); every metric of
    the resampled leads is a weighted sum over the sorted leads and their groups of tied
    scores, exactly as :func:`evaluate` would compute it on the drawn rows.
    """

    def __init__(self, y: np.ndarray, p: np.ndarray) -> None:
        self.order = np.argsort(p, kind="stable")
        self.p = p[self.order]
        self.y = y[self.order]
        self.starts = np.flatnonzero(np.r_[True, np.diff(self.p) != 0])
        clipped = np.clip(self.p, _EPS, 1 - _EPS)
        self.loss = -(self.y * np.log(clipped) + (1 - self.y) * np.log1p(-clipped))

    def metrics(self, counts: np.ndarray) -> dict[str, float]:
        """:func:`evaluate` on the leads drawn ``counts`` times each (counts in original
        order)."""
        w = counts[self.order].astype("float64")
        n = w.sum()
        wy = w * self.y
        pos = wy.sum()
        out = {
            "brier": float(w @ ((self.p - self.y) ** 2) / n),
            "ece": _sorted_ece(self.p, self.y, w, n, starts=self.starts),
            "log_loss": float(w @ self.loss / n),
        }
        group_pos = np.add.reduceat(wy, self.starts)
        group_neg = np.add.reduceat(w - wy, self.starts)
        neg = n - pos
        if pos > 0 and neg > 0:
            below = np.cumsum(group_neg) - group_neg
            out["roc_auc"] = float(group_pos @ (below + 0.5 * group_neg) / (pos * neg))
            tp, fp = np.cumsum(group_pos[::-1]), np.cumsum(group_neg[::-1])
            precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=tp + fp > 0)
            out["pr_auc"] = float(group_pos[::-1] @ precision / pos)
        else:
            out["roc_auc"] = out["pr_auc"] = float("nan")
        if pos > 0:
            k = max(1, int(np.ceil(0.1 * n)))
            weight_desc = (group_pos + group_neg)[::-1]
            cum = np.cumsum(weight_desc)
            cut = int(np.searchsorted(cum, k - 1e-9))
            above_w = cum[cut] - weight_desc[cut]
            above_wins = group_pos[::-1][:cut].sum()
            top_wins = above_wins + (k - above_w) * group_pos[::-1][cut] / weight_desc[cut]
            out["lift_top_decile"] = float((top_wins / k) / (pos / n))
            out["capture_top_decile"] = float(top_wins / pos)
        else:
            out["lift_top_decile"] = out["capture_top_decile"] = float("nan")
        return out


def _sorted_ece(
    p: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    n: float,
    n_bins: int = 10,
    starts: np.ndarray | None = None,
) -> float:
    """ECE of :func:`expected_calibration_error` for sorted leads each counted ``w`` times:
    the equal-count bins cut through the expanded rows, so a lead drawn twice may fall in two.
    Each lead's outcome is its tie group's weighted mean outcome, so the order within a group
    of equal scores does not matter. ``starts`` (first position of each tie group) may be
    given when the same sorted scores are binned many times, as in the bootstrap."""
    if starts is None:
        starts = np.flatnonzero(np.r_[True, np.diff(p) != 0])
    if len(starts) < len(p):
        group_w = np.add.reduceat(w, starts)
        group_y = np.divide(
            np.add.reduceat(w * y, starts), group_w, out=np.zeros_like(group_w), where=group_w > 0
        )
        y = np.repeat(group_y, np.diff(np.r_[starts, len(p)]))
    total = round(float(n))
    bins = min(n_bins, total)
    sizes = np.full(bins, total // bins)
    sizes[: total % bins] += 1
    edges = np.r_[0, np.cumsum(sizes)].astype("float64")
    cum_w = np.r_[0.0, np.cumsum(w)]
    row = np.searchsorted(cum_w, edges, side="right") - 1
    row_y, row_p = np.r_[y, 0.0], np.r_[p, 0.0]

    def upto(values: np.ndarray, padded: np.ndarray) -> np.ndarray:
        cum = np.r_[0.0, np.cumsum(w * values)]
        return cum[row] + (edges - cum_w[row]) * padded[row]

    gaps = np.diff(upto(y, row_y)) - np.diff(upto(p, row_p))
    return float(np.abs(gaps).sum() / n)


def _interval(values: np.ndarray, level: float, point: float) -> list[float]:
    """Bias-corrected (BC) percentile interval of the bootstrap ``values`` of a metric whose
    value on all the leads is ``point``.

    A metric that resampling pushes one way (ECE: resampling adds noise, and noise adds
    calibration error) has a plain percentile interval shifted off its estimate, at times
    wholly above it. BC measures the shift, ``z0 = Phi^-1(share of values below point, ties
    counted half)``, and reads the quantiles ``Phi(2 z0 - z)`` and ``Phi(2 z0 + z)``
    (``z = Phi^-1((1 + level) / 2)``); ``z0 = 0`` gives the percentile interval.

    The share is kept within ``[(1 - level) / 2, (1 + level) / 2]`` (and ``[1/2B, 1 - 1/2B]``
    for fewer than ``1 / (1 - level)`` values), so ``|z0| <= z``: a larger shift would push
    both quantiles further into the outer tail, and the interval would shrink onto the extreme
    values past the estimate (an ECE of 0.030 on 500 calibrated leads got [0.0279, 0.0281]).
    At the limit the interval runs from the lowest value to the ``(1 - level) / 2`` quantile
    (or mirrored), so it holds ``point`` whenever some values lie on each side of it. Without
    a finite ``point`` it is the percentile interval.
    """
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return [float("nan"), float("nan")]
    tail = (1.0 - level) / 2.0
    quantiles = [tail, 1.0 - tail]
    if np.isfinite(point):
        b = finite.size
        below = (np.count_nonzero(finite < point) + 0.5 * np.count_nonzero(finite == point)) / b
        edge = max(tail, 0.5 / b)
        z0 = _NORMAL.inv_cdf(min(max(below, edge), 1.0 - edge))
        z = _NORMAL.inv_cdf(1.0 - tail)
        quantiles = [_NORMAL.cdf(2.0 * z0 - z), _NORMAL.cdf(2.0 * z0 + z)]
    low, high = np.quantile(finite, quantiles)
    return [float(low), float(high)]


def bootstrap_intervals(
    y: np.ndarray | Sequence[int],
    scores: dict[str, np.ndarray],
    *,
    resamples: int = 200,
    level: float = 0.95,
    seed: int = 0,
    reference: str = "model",
    groups: np.ndarray | Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Bias-corrected percentile bootstrap intervals of every metric of :func:`evaluate`, for
    several score sets on the same test leads.

    A test fold of a couple of thousand leads measures ROC-AUC to about +-0.015 and ECE to
    about +-0.01: the intervals say which differences between runs and models are real. Every
    resample draws the leads once and scores all sets on that draw (a paired bootstrap), so
    ``roc_auc_gain`` (``reference``'s ROC-AUC minus each other set's) has a much narrower
    interval than the two ROC-AUC intervals side by side suggest.

    Each interval is corrected for the median bias of its resampled values against the metric
    on all the test leads (:func:`_interval`): ECE is biased upwards under resampling, and its
    plain percentile interval can lie wholly above the observed ECE.

    ``groups`` (one id per row, e.g. the lead id) makes it a cluster bootstrap: each resample
    draws whole groups with replacement and takes all their rows. Event-form data holds a
    lead once per as-of date, and those rows share the lead's outcome and most of its
    features: resampled as independent rows they would look like more evidence than they
    are, and the intervals would come out too narrow. When every group holds one row (flat
    data), the rows are drawn exactly as without ``groups``, so the intervals are the same
    for the same seed.

    Returns
    -------
    ``{"resamples", "level", "n_groups", "intervals": {name: {metric: [low, high]}},
    "roc_auc_gain": {name: [low, high]}}``; ``n_groups`` is the number of units drawn from
    (groups, or rows without ``groups``); resamples holding one class only leave the ranking
    metrics out of that resample.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    y_arr = np.asarray(y, dtype="float64").ravel()
    sorted_sets = {name: _SortedScores(*_check(y_arr, p)) for name, p in scores.items()}
    codes, n_groups = _group_codes(groups, len(y_arr))
    rng = np.random.default_rng(seed)
    draws: dict[str, dict[str, list[float]]] = {
        name: {key: [] for key in METRIC_KEYS} for name in scores
    }
    for _ in range(resamples):
        counts = np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)
        if codes is not None:
            counts = counts[codes]  # every row of a group is drawn as often as its group
        for name, s in sorted_sets.items():
            for key, value in s.metrics(counts).items():
                draws[name][key].append(value)
    arrays = {n: {k: np.asarray(v) for k, v in d.items()} for n, d in draws.items()}
    everyone = np.ones(len(y_arr), dtype="int64")
    points = {name: s.metrics(everyone) for name, s in sorted_sets.items()}
    return {
        "resamples": resamples,
        "level": level,
        "n_groups": n_groups,
        "intervals": {
            name: {
                key: _interval(values, level, points[name][key]) for key, values in metrics.items()
            }
            for name, metrics in arrays.items()
        },
        "roc_auc_gain": {
            name: _interval(
                arrays[reference]["roc_auc"] - metrics["roc_auc"],
                level,
                points[reference]["roc_auc"] - points[name]["roc_auc"],
            )
            for name, metrics in arrays.items()
            if name != reference and reference in arrays
        },
    }


def resampled_units(uncertainty: Mapping[str, Any], n_test: int | None) -> str:
    """What the resamples of :func:`bootstrap_intervals` drew, in words for a report: "the
    1,848 test leads", the leads with all their rows when leads repeat across as-of dates
    (``n_groups`` below ``n_test``), or "the test fold" for results logged before
    ``n_groups`` was kept (those drew rows)."""
    n_groups = uncertainty.get("n_groups")
    if n_groups is None:
        return "the test fold"
    if n_test is not None and int(n_test) > int(n_groups):
        return (
            f"the {int(n_groups):,} test leads, each drawn with all its rows "
            f"({int(n_test):,} rows in all)"
        )
    return f"the {int(n_groups):,} test leads"


def signed_difference(value: float) -> str:
    """A difference of two metrics as reports print it: its sign and three decimals
    (``+0.004``), ``0.000`` for one that rounds to zero (a "-0.000" read as a loss), and
    ``-`` where it is not known."""
    if value is None or math.isnan(value):
        return "-"
    text = f"{value:+.3f}"
    return "0.000" if float(text) == 0 else text


def chance_draws(chance: Mapping[str, Any], n_test: int | None) -> str:
    """How :func:`ece_by_chance` drew the outcomes, in words for a report, when leads repeat
    across as-of dates: "; each of the 400 leads drew one outcome for all its rows, 1,200
    rows in all", to follow "95% of draws below 0.031". Empty for flat data and for results
    logged before the draws were per lead (no ``n_groups``: their draws were per row)."""
    n_groups = chance.get("n_groups")
    if n_groups is None or n_test is None or int(n_test) <= int(n_groups):
        return ""
    return (
        f"; each of the {int(n_groups):,} leads drew one outcome for all its rows, "
        f"{int(n_test):,} rows in all"
    )


def _group_codes(
    groups: np.ndarray | Sequence[Any] | None, n: int, against: str = "y"
) -> tuple[np.ndarray | None, int]:
    """Group index of each of ``n`` rows and the number of groups, or ``(None, n)`` when
    every row is a group of its own (no ``groups``, or all ids distinct): the bootstrap then
    draws rows, exactly as it always has, so flat data keeps its intervals for a seed.
    ``against`` names the array ``groups`` must match in the length error."""
    if groups is None:
        return None, n
    codes, uniques = pd.factorize(
        pd.Series(np.asarray(groups, dtype=object).ravel()), use_na_sentinel=False
    )
    if len(codes) != n:
        raise ValueError(f"groups and {against} differ in length: {len(codes)} != {n}")
    if len(uniques) == n:
        return None, n
    return np.asarray(codes, dtype="int64"), len(uniques)


#: An ECE above the chance band's edge by less than this factor is read as weak evidence: the
#: edge is itself the 95th percentile of simulated draws, and the ECE its own noisy estimate
#: (0.0110 against an edge of 0.0108, as the synthetic demo once showed, is no reason to retrain).
ECE_MARGIN = 1.25


def ece_reading(
    ece: float | None, upper: float | None
) -> Literal["within", "just above", "above"] | None:
    """The test ECE read against the chance band's edge ``upper`` (:func:`ece_by_chance`):
    ``within`` it, ``just above`` it (within :data:`ECE_MARGIN`), or ``above``; ``None``
    without both figures. ``leadscore train`` and the model report read it alike."""
    if ece is None or upper is None or not (np.isfinite(ece) and np.isfinite(upper)):
        return None
    if ece <= upper:
        return "within"
    return "just above" if ece <= ECE_MARGIN * upper else "above"


def ece_by_chance(
    p: np.ndarray | Sequence[float],
    *,
    resamples: int = 200,
    level: float = 0.95,
    seed: int = 0,
    groups: np.ndarray | Sequence[Any] | None = None,
) -> dict[str, float]:
    """The ECE a perfectly calibrated model would show on these leads by label noise alone.

    Outcomes are drawn from ``p`` itself, so the probabilities are exactly right by
    construction, and the ECE of each draw is pure chance. ``mean`` is what to expect, and an
    observed ECE below ``upper`` (the ``level`` quantile) is no evidence of miscalibration.
    On 1,850 leads spread over 0.05..0.95 the mean is about 0.02: an ECE target below that
    cannot be told apart from luck on a test fold that size.

    ``groups`` (one id per row, e.g. the lead id) makes the rows of one lead share one
    uniform draw ``u``: each of its rows wins when ``u`` is below that row's probability,
    while distinct leads draw independently. Event-form data holds a lead once per as-of
    date, and those rows' outcomes hang together (a lead that wins makes its last rows win);
    drawn row by row they would average out like independent leads, and the band would come
    out too narrow, so an ECE that chance explains would read as miscalibration. A shared
    draw is the most correlated case: it makes every pair of a lead's outcomes as
    correlated as their probabilities allow, so each bin's count of wins varies at least as
    much as under the real dependence, and on event data the band errs wide (rows of one lead
    a label window apart cannot both win, which the shared draw ignores). That is the
    honest side for a threshold read as "no evidence of miscalibration": an ECE above
    ``upper`` is then evidence whatever the leads' rows do, while a band too narrow would
    report evidence that is not there; the cost is that a mild miscalibration on few leads
    may read as chance. Flat data (one row per lead, all ids distinct) draws exactly as
    without ``groups``: the same result for the same seed.
    """
    _, p_arr = _check(np.zeros(np.size(p)), p)
    codes, n_groups = _group_codes(groups, len(p_arr), against="p")
    order = np.argsort(p_arr, kind="stable")
    p_sorted = p_arr[order]
    lead_of_row = None if codes is None else codes[order]
    ones = np.ones_like(p_sorted)
    starts = np.flatnonzero(np.r_[True, np.diff(p_sorted) != 0])
    rng = np.random.default_rng(seed)

    def draw() -> np.ndarray:
        # one uniform per lead (per row without groups, in the sorted order as always)
        u = rng.random(n_groups)
        return (u if lead_of_row is None else u[lead_of_row]) < p_sorted

    values = np.array(
        [
            _sorted_ece(p_sorted, draw().astype("float64"), ones, len(p_sorted), starts=starts)
            for _ in range(resamples)
        ]
    )
    return {"mean": float(values.mean()), "upper": float(np.quantile(values, level))}
