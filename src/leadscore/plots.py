"""Charts of a trained model for marketers and sales: one pure function per chart.

Every function takes arrays (labels, probabilities, stages) and returns a
:class:`matplotlib.figure.Figure` built without :mod:`matplotlib.pyplot`, so no global figure
state leaks between calls, nothing opens a window, and figures can be made in threads or
servers. Save one with ``fig.savefig("roc.png")``; that renders with the Agg backend.

Scores are passed as a mapping from a display name to probabilities, model first, so the
model and its baselines share one chart and one colour scheme::

    scores = {"Model": p_cal, "Logistic regression": p_lr, "Rule points": p_rules}
    fig = roc_figure(y_test, scores)
"""

from __future__ import annotations

import textwrap
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.ticker import MaxNLocator
from pandas.api import types as ptypes
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from leadscore.explain import feature_labels
from leadscore.metrics import tie_mean_outcomes, wilson_interval
from leadscore.reports import shown_shares

if TYPE_CHECKING:
    from leadscore.schema import Feature

__all__ = [
    "STAGE_COLOURS",
    "axis_labels",
    "conversion_figure",
    "equal_count_bins",
    "fit_engagement_figure",
    "gains_figure",
    "pr_figure",
    "reliability_figure",
    "roc_figure",
    "shap_summary_figure",
    "stage_histogram_figure",
]

#: The stages in the order a funnel is read in.
_STAGE_ORDER = ("lead", "mql", "sql")

#: Colours of the stages, light to strong: the order a funnel is read in.
STAGE_COLOURS: dict[str, str] = {"lead": "#9e9e9e", "mql": "#f5a623", "sql": "#2e7d32"}

#: Okabe-Ito's colour-blind-safe palette: the model's blue and rule points' purple read as one
#: colour under deuteranopia.
_SERIES_COLOURS = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9")
_REFERENCE: dict[str, Any] = {"color": "#757575", "linestyle": "--", "linewidth": 1.0}


def _figure(n_rows: int = 1, height: float = 4.8) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(7.0, height), layout="constrained", dpi=100)
    axes = fig.subplots(n_rows, 1, squeeze=False)[:, 0]
    return fig, list(axes)


def _check_scores(y: np.ndarray, scores: Mapping[str, np.ndarray]) -> np.ndarray:
    y = np.asarray(y).astype(int).ravel()
    if not scores:
        raise ValueError("scores must name at least one series")
    for name, p in scores.items():
        if len(np.asarray(p)) != len(y):
            raise ValueError(f"scores[{name!r}] has {len(p)} values for {len(y)} labels")
    return y


#: Share of the values a probability histogram's x-axis reaches: a few high scores must not
#: stretch the axis until nearly every lead sits in its first bars.
AXIS_QUANTILE = 0.995


def _probability_axis(values: np.ndarray, keep: Sequence[float] = ()) -> tuple[float, int]:
    """Right end of a probability axis and how many values lie beyond it.

    Lead conversion rates are often a few per cent, so a fixed 0-1 axis would squeeze every
    lead into the first bars, and so would one stretched to the highest score by a handful of
    leads: the axis ends a little past the :data:`AXIS_QUANTILE` quantile (and past every
    value of ``keep``, such as the stage cut-offs), and the chart says how many it leaves out.
    """
    values = np.asarray(values, dtype=float).ravel()
    values = values[np.isfinite(values)]
    if not len(values):
        return 1.0, 0
    top = max([float(np.quantile(values, AXIS_QUANTILE)), *(float(k) for k in keep)])
    end = float(min(1.0, max(top * 1.05, 0.01)))
    if float(values.max()) <= end * 1.05:  # only a sliver left out: show it all
        end = float(min(1.0, max(float(values.max()) * 1.02, end)))
    return end, int((values > end).sum())


def _beyond_note(hidden: int, total: int, end: float, rows: str) -> str:
    """Second line of a probability axis label naming what the axis leaves out, if anything."""
    if not hidden:
        return ""
    share = hidden / max(total, 1)
    return f"\n(axis cut at {end:.1%}: {hidden:,} {rows} above it, {share:.1%}, not shown)"


def _colour(i: int) -> str:
    return _SERIES_COLOURS[i % len(_SERIES_COLOURS)]


def roc_figure(
    y: np.ndarray, scores: Mapping[str, np.ndarray], *, title: str | None = None
) -> Figure:
    """ROC curve of each score, with the AUC in the legend and chance as a dashed diagonal.

    Read it as: if sales worked every lead above some score, what share of the eventual wins
    would they reach (up) for what share of the eventual losses they would also call (right).
    The axes hold ``len(scores) + 1`` lines: one per score, then the diagonal.
    """
    y = _check_scores(y, scores)
    fig, (ax,) = _figure()
    for i, (name, p) in enumerate(scores.items()):
        fpr, tpr, _ = roc_curve(y, p)
        auc = roc_auc_score(y, p)
        ax.plot(
            fpr,
            tpr,
            color=_colour(i),
            linewidth=2.0 if i == 0 else 1.3,
            label=f"{name} (ROC-AUC {auc:.3f})",
        )
    ax.plot([0, 1], [0, 1], label="Random order (0.500)", **_REFERENCE)
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        xlabel="Share of lost leads flagged (false positive rate)",
        ylabel="Share of won leads flagged (true positive rate)",
        title=title or "How well the score separates won from lost leads (ROC)",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    return fig


def pr_figure(
    y: np.ndarray, scores: Mapping[str, np.ndarray], *, title: str | None = None
) -> Figure:
    """Precision-recall curve of each score, with PR-AUC (average precision) in the legend.

    Read it as: working down the list from the highest score, what share of the leads
    contacted convert (up) as more of all wins are reached (right). The dashed line is the
    base conversion rate, what an unsorted list gives. ``len(scores) + 1`` lines.
    """
    y = _check_scores(y, scores)
    fig, (ax,) = _figure()
    highest = 0.0
    for i, (name, p) in enumerate(scores.items()):
        precision, recall, _ = precision_recall_curve(y, p)
        # scikit-learn's closing point (recall 0, precision 1) is no lead: a spike to 100 %
        precision, recall = precision[:-1], recall[:-1]
        highest = max(highest, float(precision.max()) if len(precision) else 0.0)
        ap = average_precision_score(y, p)
        ax.plot(
            recall,
            precision,
            color=_colour(i),
            linewidth=2.0 if i == 0 else 1.3,
            drawstyle="steps-post",
            label=f"{name} (PR-AUC {ap:.3f})",
        )
    base = float(y.mean()) if len(y) else 0.0
    ax.plot([0, 1], [base, base], label=f"Base conversion rate ({base:.1%})", **_REFERENCE)
    ax.set(
        xlim=(0, 1),
        ylim=(0, min(1.01, max(1.15 * highest, 2 * base, 0.05))),
        xlabel="Share of all wins found (recall)",
        ylabel="Share of flagged leads that convert (precision)",
        title=title or "Conversion rate of the leads flagged vs. wins found (precision-recall)",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    return fig


def equal_count_bins(
    y: np.ndarray, p: np.ndarray, n_bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean predicted probability, observed rate and size of ``n_bins`` equal-count bins.

    Equal-count bins (by sorted probability) keep every point of a reliability diagram backed
    by the same number of leads, where equal-width bins leave the high-probability end with a
    handful of leads and a noisy rate. Empty bins (fewer leads than bins) are dropped. Tied
    leads count with their group's mean outcome, as the ECE counts them.
    """
    y = np.asarray(y, dtype=float).ravel()
    p = np.asarray(p, dtype=float).ravel()
    order = np.argsort(p, kind="stable")
    p_sorted = p[order]
    y_sorted = tie_mean_outcomes(p_sorted, y[order])
    groups = [g for g in np.array_split(np.arange(len(p)), n_bins) if len(g)]
    mean_p = np.array([p_sorted[g].mean() for g in groups])
    rate = np.array([y_sorted[g].mean() for g in groups])
    counts = np.array([len(g) for g in groups])
    return mean_p, rate, counts


def reliability_figure(
    y: np.ndarray,
    p_raw: np.ndarray,
    p_cal: np.ndarray,
    *,
    n_bins: int = 10,
    title: str | None = None,
    rows: str = "leads",
) -> Figure:
    """Reliability diagram before and after calibration, with the leads behind each point.

    Top: predicted probability against the observed conversion rate in ``n_bins`` equal-count
    bins; on the diagonal, "30 %" means 30 in 100 such leads converted. A note says how many
    leads back each point, and a bar through each calibrated point shows the 95% Wilson interval
    of its group's rate: a point whose bar crosses the diagonal is within chance of a perfectly
    calibrated one, which ten groups of 185 leads often are. Only where each row is a lead:
    event data's rows are examples, several of one lead sharing its outcome, and an interval
    counting rows would be too narrow. Bottom: how the predicted
    probabilities spread, before and after calibration, on an axis that ends near the highest
    scores (:func:`_probability_axis`, which the axis label then says). Top axes: 3 lines
    (diagonal, raw, calibrated); bottom: the two histograms. When calibration changed nothing
    (``p_raw`` equals ``p_cal``, the identity calibrator), the "before" series would hide
    exactly under the "after" one, so it is not drawn and has no legend entry: 2 lines and one
    histogram, labelled as not needing calibration. ``rows`` names what the rows are: event data
    holds a lead at several as-of dates, so its rows are "examples of 1,510 leads".
    """
    y = _check_scores(y, {"raw": p_raw, "calibrated": p_cal})
    p_raw, p_cal = np.asarray(p_raw, float), np.asarray(p_cal, float)
    unit = rows.split()[0]
    fig, (ax, ax_hist) = _figure(2, height=7.2)
    engine = fig.get_layout_engine()
    if isinstance(engine, ConstrainedLayoutEngine):
        engine.set(h_pad=0.1)
    ax.plot([0, 1], [0, 1], label="Perfectly calibrated", **_REFERENCE)
    same = bool(np.allclose(p_raw, p_cal))
    cal_x, cal_y, counts = equal_count_bins(y, p_cal, n_bins)
    drawn = [cal_x, cal_y]
    if not same:
        raw_x, raw_y, _ = equal_count_bins(y, p_raw, n_bins)
        drawn += [raw_x, raw_y]
        ax.plot(
            raw_x,
            raw_y,
            marker="s",
            color=_colour(1),
            linewidth=1.2,
            alpha=0.8,
            label="Before calibration (raw model)",
        )
    ax.plot(
        cal_x,
        cal_y,
        marker="o",
        color=_colour(0),
        linewidth=2.0,
        label="After calibration (what users see)"
        if not same
        else "The model (uncalibrated: no method beat it on the calibration fold)",
    )
    if rows == "leads":  # one row per lead: each row an outcome of its own
        low, high = wilson_interval(cal_y, counts)
        ax.vlines(
            cal_x,
            low,
            high,
            color=_colour(0),
            alpha=0.45,
            linewidth=3.0,
            label="95% interval of each group's rate (Wilson)",
        )
        drawn.append(high)
    size = f"{counts.min()}" if counts.min() == counts.max() else f"{counts.min()}-{counts.max()}"
    ax.text(
        0.98,
        0.03,
        f"{len(y):,} {rows}; each point is a group of {size} {unit}",
        transform=ax.transAxes,
        ha="right",
        va="bottom",
        fontsize=8,
        color="#424242",
    )
    top = float(max(1e-3, np.max(np.concatenate(drawn))))
    lim = min(1.0, top * 1.1 + 0.02)
    ax.set(
        xlim=(0, lim),
        ylim=(0, lim),
        xlabel="Predicted probability of winning",
        ylabel="Observed conversion rate",
        title=title or f"Do predicted probabilities come true? ({n_bins} groups of equal size)",
    )
    ax.grid(alpha=0.3)
    # above the chart, not in it: the points and their intervals can fill any corner of it
    fig.legend(
        handles=ax.get_legend_handles_labels()[0],
        loc="outside upper center",
        fontsize=9,
        frameon=False,
    )

    upper, _ = _probability_axis(p_cal if same else np.concatenate([p_raw, p_cal]))
    hidden = max(int((p > upper).sum()) for p in (p_cal, p_raw))
    bins = np.linspace(0, upper, 41).tolist()
    if not same:
        ax_hist.hist(p_raw, bins=bins, color=_colour(1), alpha=0.45, label="Before calibration")
    ax_hist.hist(
        p_cal,
        bins=bins,
        color=_colour(0),
        alpha=0.6,
        label="After calibration" if not same else "The model",
    )
    ax_hist.set(
        xlim=(0, upper),
        xlabel="Predicted probability of winning" + _beyond_note(hidden, len(y), upper, unit),
        ylabel=f"Number of {unit}",
        title="How the predicted probabilities spread",
    )
    ax_hist.legend(loc="best", fontsize=9)
    return fig


def _gains(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Share of leads contacted (highest score first) and share of wins captured, from 0; tied
    leads count with their group's mean outcome, as :func:`leadscore.metrics.top_decile`."""
    p = np.asarray(p, dtype=float)
    order = np.argsort(-p, kind="stable")
    wins = np.cumsum(tie_mean_outcomes(p[order], y[order]))
    total = max(int(y.sum()), 1)
    share_leads = np.arange(0, len(y) + 1) / max(len(y), 1)
    share_wins = np.concatenate([[0.0], wins / total])
    return share_leads, share_wins


def gains_figure(
    y: np.ndarray,
    scores: Mapping[str, np.ndarray],
    *,
    title: str | None = None,
    rows: str = "leads",
) -> Figure:
    """Cumulative gains (top) and cumulative lift (bottom) of each score against random order.

    Gains answer "if sales calls the top X % of leads, what share of all wins do they
    reach"; lift answers "how many times the average conversion rate do those leads convert".
    Top axes: ``len(scores) + 2`` lines (scores, random, perfect); bottom: ``len(scores) + 1``
    (scores, random). ``rows``: what the shares on the x-axis count (event data: "examples",
    a lead at each as-of date). The lift axis ends above the highest curve, so a score that
    ties every lead (lift 1 throughout) draws its line inside the panel, not on its edge.
    """
    y = _check_scores(y, scores)
    fig, (ax, ax_lift) = _figure(2, height=8.0)
    base = float(y.mean()) if len(y) else 0.0
    highest_lift = 1.0
    for i, (name, p) in enumerate(scores.items()):
        share_leads, share_wins = _gains(y, p)
        top = int(np.ceil(0.1 * len(y)))
        capture = share_wins[top] if len(y) else 0.0
        width = 2.0 if i == 0 else 1.3
        ax.plot(
            share_leads,
            share_wins,
            color=_colour(i),
            linewidth=width,
            label=f"{name} (top 10 % reach {capture:.0%} of wins)",
        )
        # the first handful of leads gives a lift that is mostly noise: start at 2 %
        start = max(1, int(np.ceil(0.02 * len(y))))
        lift = share_wins[start:] / share_leads[start:]
        if np.isfinite(lift).any():
            highest_lift = max(highest_lift, float(np.nanmax(lift[np.isfinite(lift)])))
        ax_lift.plot(share_leads[start:], lift, color=_colour(i), linewidth=width, label=name)
    ax.plot([0, 1], [0, 1], label="Random order", **_REFERENCE)
    ax.plot(
        [0, base, 1],
        [0, 1, 1],
        color="#bdbdbd",
        linewidth=1.0,
        linestyle=":",
        label="Perfect order",
    )
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        xlabel=f"Share of {rows} contacted, highest scores first",
        ylabel="Share of all wins captured",
        title=title or "Cumulative gains: wins reached by working the list from the top",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    ax_lift.axhline(1.0, label="Random order (lift 1)", **_REFERENCE)
    ax_lift.set(
        xlim=(0, 1),
        ylim=(0, max(1.5, 1.15 * highest_lift)),
        xlabel=f"Share of {rows} contacted, highest scores first",
        ylabel="Lift: conversion rate ÷ average rate",
        title=f"Cumulative lift: how much better than calling {rows} at random",
    )
    ax_lift.grid(alpha=0.3)
    ax_lift.legend(loc="best", fontsize=9)
    return fig


def stage_histogram_figure(
    p: np.ndarray,
    stages: Sequence[str] | np.ndarray,
    thresholds: Mapping[str, float],
    *,
    stage_order: Sequence[str] = ("lead", "mql", "sql"),
    title: str | None = None,
    rows: str = "leads",
    calibrated: bool = False,
) -> Figure:
    """Histogram of the probability, one colour per stage, thresholds as lines.

    Shows where the MQL and SQL cut-offs fall in the score distribution and how many leads
    each stage holds. ``thresholds`` maps a stage name to the probability from which a lead
    enters it (``{"mql": 0.08, "sql": 0.25}``); an infinite cut-off (nobody reaches the
    stage) is not drawn. One histogram per stage present, one vertical line per threshold.
    The axis ends near the highest scores but past every cut-off (:func:`_probability_axis`);
    the axis label says how many are left out. ``rows``: what the counts count (event data:
    "examples", a lead at each as-of date). ``calibrated``: whether a calibrator (isotonic,
    sigmoid) made the probabilities, which the axis then says; the identity calibrator's are
    the model's own. The legend's shares add up to 100% (:func:`~leadscore.reports.shown_shares`:
    "<1%" for a stage too small for a whole percent) and sit where they hide the fewest bars.
    """
    p = np.asarray(p, dtype=float).ravel()
    stages = np.asarray(stages).astype(str).ravel()
    if len(stages) != len(p):
        raise ValueError(f"stages has {len(stages)} values for {len(p)} probabilities")
    fig, (ax,) = _figure()
    thresholds = {k: float(v) for k, v in thresholds.items() if np.isfinite(float(v))}
    cuts = list(thresholds.values())
    upper, hidden = _probability_axis(p, keep=cuts)
    # the cut-offs are bin edges, so no bar mixes two stages; a grid edge just beside one
    # would leave a sliver of a bin, whose bar (545 olist leads at the MQL cut-off) no one sees
    grid = np.linspace(0, upper, 41)
    inner = [all(abs(g - c) >= upper / 80 for c in cuts) for g in grid[1:-1]]
    grid = np.r_[grid[0], grid[1:-1][inner], grid[-1]]
    bins = np.unique(np.concatenate([grid, [c for c in cuts if 0 < c < upper]])).tolist()
    known = [s for s in stage_order if s in set(stages)]
    extra = sorted(set(stages) - set(stage_order))
    drawn = known + extra
    shares = shown_shares([int((stages == stage).sum()) for stage in drawn])
    for stage, share in zip(drawn, shares, strict=True):
        mask = stages == stage
        ax.hist(
            p[mask],
            bins=bins,
            alpha=0.75,
            color=STAGE_COLOURS.get(stage),
            label=f"{stage.upper()}: {int(mask.sum()):,} {rows} ({share})",
        )
    for stage, cut in thresholds.items():
        ax.axvline(
            cut,
            color=STAGE_COLOURS.get(stage, "#424242"),
            linestyle="--",
            linewidth=1.5,
            label=f"{stage.upper()} from {cut:.1%}",
        )
    ax.set(
        xlim=(0, upper),
        xlabel="Predicted probability of winning"
        + (" (calibrated)" if calibrated else "")
        + _beyond_note(hidden, len(p), upper, rows),
        ylabel=f"Number of {rows}",
        title=title or f"{rows.capitalize()} per stage and where the stage cut-offs fall",
    )
    ax.grid(alpha=0.3, axis="y")
    ax.legend(loc="best", fontsize=9)
    return fig


# --------------------------------------------------------------------------- SHAP summary


#: What a dot of the SHAP beeswarm is, by what the rows are.
_DOTS = {"leads": "a lead", "examples": "an example, a lead at one as-of date"}

#: Axis labels of the SHAP summary: at most this many characters a line, this many lines.
#: Three lines of 34 hold the longest built-in labels whole ("High-intent actions (pricing or
#: demo pages, demo or sales forms), last 90 days"): a cut in the middle lost what they say.
AXIS_LABEL_WIDTH = 34
AXIS_LABEL_LINES = 3


def _fit_label(label: str, width: int, lines: int) -> str:
    """``label`` wrapped onto at most ``lines`` lines of ``width`` characters; a longer one
    keeps its first lines and its end ("…last 30 days"), where labels of one family differ."""
    text = " ".join(label.split()) or "?"
    wrapped = textwrap.wrap(text, width, break_on_hyphens=False)
    if len(wrapped) <= lines:
        return "\n".join(wrapped)
    head = wrapped[: lines - 1]
    rest = text.split(" ")[len(" ".join(head).split(" ")) :] if head else text.split(" ")
    tail: list[str] = []
    while rest and len(" ".join([rest[-1], *tail])) <= width - 1:
        tail.insert(0, rest.pop())
    end = " ".join(tail) if tail else " ".join(rest)[-(width - 1) :]
    return "\n".join([*head, "…" + end])


def axis_labels(labels: Sequence[str], width: int = 34, lines: int = 2) -> list[str]:
    """Labels short enough for a chart's axis: wrapped onto ``lines`` lines of ``width``
    characters, the middle of a longer one cut, and all of them distinct (a label that would
    read like an earlier one gets " (2)", " (3)"... before it is cut). The SHAP summary
    passes :data:`AXIS_LABEL_WIDTH` and :data:`AXIS_LABEL_LINES`, room for its labels whole.

    >>> axis_labels(["E-mail click rate (share of e-mails that were clicked), last 90 days"])
    ['E-mail click rate (share of\\n…that were clicked), last 90 days']
    """
    if width < 8 or lines < 1:
        raise ValueError("width must be at least 8 characters and lines at least 1")
    out: list[str] = []
    seen: set[str] = set()
    for label in labels:
        text = _fit_label(label, width, lines)
        k = 2
        while text in seen:
            text = _fit_label(f"{label} ({k})", width, lines)
            k += 1
        seen.add(text)
        out.append(text)
    return out


def shap_summary_figure(
    log_odds: pd.DataFrame,
    X: pd.DataFrame,
    features: Sequence[Feature],
    max_display: int = 12,
    max_points: int = 5000,
    random_state: int = 0,
    rows: str = "leads",
) -> Figure:
    """SHAP beeswarm and mean-|SHAP| bar chart of the log-odds contributions, side by side.

    The beeswarm shows one dot per lead and feature: how far the feature moved that lead's
    log-odds, coloured by the feature's value (low blue, high red; categories and missing
    values grey, since a category has no "high"). Built on a fresh
    :class:`~matplotlib.figure.Figure` (no pyplot state); save with ``fig.savefig(path)``.
    At most ``max_points`` leads are drawn, sampled at random (the title says so). Feature
    labels are wrapped by :func:`axis_labels` (three lines of 34 characters at most, all
    distinct), so pass the model's features with their full labels. ``rows``: what a dot is,
    ``"leads"`` or ``"examples"`` (event data holds a lead at several as-of dates).
    """
    import shap  # the plotting stack is only needed for reports

    names = list(log_odds.columns)
    meta = feature_labels(names, features)
    dot = _DOTS.get(rows, f"one of the {rows}")
    title = f"Each dot is {dot}"
    if len(log_odds) > max_points:
        title += f" ({max_points:,} of {len(log_odds):,} drawn at random)"
        rng = np.random.default_rng(random_state)
        pick = np.sort(rng.choice(len(log_odds), size=max_points, replace=False))
        log_odds, X = log_odds.iloc[pick], X.iloc[pick]
    data = np.full((len(log_odds), len(names)), np.nan)
    for i, name in enumerate(names):
        column = X[name]
        if not isinstance(column.dtype, pd.CategoricalDtype) and ptypes.is_numeric_dtype(column):
            data[:, i] = column.to_numpy(dtype=float, na_value=np.nan)
    labels = axis_labels([meta[n][0] for n in names], AXIS_LABEL_WIDTH, AXIS_LABEL_LINES)
    values = shap.Explanation(
        values=log_odds.to_numpy(dtype=float), data=data, feature_names=labels
    )
    shown = min(max_display, len(names))
    # a row holds its label: three lines of 10-point text need more than two
    strongest = np.argsort(-np.abs(values.values).mean(axis=0), kind="stable")[:shown]
    tallest = max((labels[i].count("\n") + 1 for i in strongest), default=1)
    row = 0.5 if tallest <= 2 else 0.62
    fig = Figure(figsize=(14.0, row * shown + 1.8), layout="constrained", dpi=100)
    ax_swarm, ax_bar = fig.subplots(1, 2, width_ratios=[1.35, 1.0])
    with warnings.catch_warnings():
        # categorical columns have no numeric value to colour by: an all-NaN colour column
        warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
        shap.plots.beeswarm(
            values, max_display=max_display, ax=ax_swarm, show=False, plot_size=None
        )
    if not np.isfinite(data[:, strongest]).any():
        # no feature shown has a number to colour by: a high/low colour bar explains nothing
        for extra in [a for a in fig.axes if a is not ax_swarm and a is not ax_bar]:
            extra.remove()
        title += "; grey: categories, which have no high or low"
    shap.plots.bar(values, max_display=max_display, ax=ax_bar, show=False)
    ax_swarm.set_xlabel("Contribution to the score (log-odds)")
    ax_bar.set_xlabel("Mean |contribution| (log-odds)")
    ax_swarm.set_title(title, fontsize=11)
    ax_bar.set_title("Average size of each feature's effect", fontsize=11)
    for ax in (ax_swarm, ax_bar):
        ax.tick_params("y", labelsize=10)
        ax.tick_params("x", labelsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
    for text in ax_bar.texts:  # shap signs every bar ("+0.47"); a mean of sizes has no sign
        text.set_text(text.get_text().removeprefix("+"))
        text.set_fontsize(10)
    return fig


# --------------------------------------------------------------------------- conversion


def conversion_figure(table: pd.DataFrame, *, top: int = 15, title: str | None = None) -> Figure:
    """Win rate of closed leads per group, with its interval, against the overall rate.

    ``table`` is :func:`leadscore.reports.conversion_by`'s (``closed``, ``won``,
    ``win_rate``, ``low``, ``high`` per group; the overall rate in ``attrs["win_rate"]``, the
    interval's level in ``attrs["confidence"]``).
    The ``top`` groups with the most closed leads are drawn, best rate at the top; each bar
    is labelled with its wins and closed leads, and the whiskers are the interval, so that
    a small campaign's lucky 3 of 4 does not read as the best channel.
    """
    missing = {"closed", "won", "win_rate", "low", "high"} - set(table.columns)
    if missing:
        raise ValueError(f"table lacks {sorted(missing)}: pass conversion_by's table")
    shown = table.nlargest(top, "closed", keep="first").sort_values("win_rate", kind="stable")
    fig, (ax,) = _figure(height=max(2.4, 0.38 * len(shown) + 1.4))
    positions = np.arange(len(shown))
    rate = shown["win_rate"].to_numpy(dtype=float)
    ax.barh(positions, rate, color=_SERIES_COLOURS[0], alpha=0.8)
    ax.errorbar(
        rate,
        positions,
        xerr=[rate - shown["low"].to_numpy(float), shown["high"].to_numpy(float) - rate],
        fmt="none",
        ecolor="#424242",
        capsize=3,
        linewidth=1,
    )
    for y, (won, closed, high) in enumerate(shown[["won", "closed", "high"]].to_numpy()):
        ax.text(high, y, f"  {int(won):,} of {int(closed):,}", va="center", fontsize=8)
    overall = float(table.attrs.get("win_rate", np.nan))
    confidence = float(table.attrs.get("confidence", 0.95))
    if np.isfinite(overall):
        ax.axvline(overall, **_REFERENCE, label=f"All closed leads: {overall:.1%}")
        ax.legend(loc="lower right", fontsize=9)
    name = str(table.index.name or "group")
    ax.set_yticks(positions, axis_labels([str(v) for v in shown.index]))
    ax.set(
        xlim=(0, min(1.0, float(shown["high"].max()) * 1.25 + 0.02)),
        xlabel=f"Won among closed leads (bars), {confidence:.0%} interval (whiskers)",
        title=title
        or f"Win rate by {name}"
        + (f", the {top} largest of {len(table)}" if len(table) > top else ""),
    )
    ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.grid(alpha=0.3, axis="x")
    return fig


# --------------------------------------------------------------------------- sub-scores


def fit_engagement_figure(
    fit_score: np.ndarray,
    engagement_score: np.ndarray,
    stages: Sequence[str] | np.ndarray,
    *,
    won: np.ndarray | None = None,
    title: str | None = None,
    rows: str = "leads",
) -> Figure:
    """Fit against engagement sub-scores (0-100), one dot per lead, coloured by stage.

    Read it by quadrant: top right are good-fit leads that are also active (sales now),
    bottom right good fits that have gone quiet (nurture), top left active leads that do not
    fit the customer profile (qualify before spending sales time). With ``won``, leads that
    converted get a dark ring. Dashed lines mark the median past lead (50). The legend sits
    below the axes, since every corner of a full chart holds leads. ``rows``: what a dot
    is, ``"leads"`` or ``"examples"`` (event data holds a lead at several as-of dates).
    """
    fit = np.asarray(fit_score, dtype=float)
    engagement = np.asarray(engagement_score, dtype=float)
    stages = np.asarray(stages).astype(str)
    if not len(fit) == len(engagement) == len(stages):
        raise ValueError("fit_score, engagement_score and stages differ in length")
    fig = Figure(figsize=(7.0, 6.0), layout="constrained", dpi=100)
    ax = fig.subplots()
    rng = np.random.default_rng(0)
    # integer percentiles pile up on a grid; a little jitter shows how many leads sit there
    jitter_x = rng.uniform(-0.6, 0.6, len(fit))
    jitter_y = rng.uniform(-0.6, 0.6, len(fit))
    size = 36 if len(fit) <= 50 else 14
    known = [s for s in _STAGE_ORDER if s in set(stages)]
    for stage in known + sorted(set(stages) - set(_STAGE_ORDER)):
        mask = stages == stage
        ax.scatter(
            fit[mask] + jitter_x[mask],
            engagement[mask] + jitter_y[mask],
            s=size,
            alpha=0.65 if len(fit) > 50 else 0.9,
            color=STAGE_COLOURS.get(stage, "#424242"),
            linewidths=0,
            label=f"{stage.upper()} ({int(mask.sum()):,} {rows})",
        )
    if won is not None:
        won_mask = np.asarray(won).astype(bool)
        ax.scatter(
            fit[won_mask] + jitter_x[won_mask],
            engagement[won_mask] + jitter_y[won_mask],
            s=size * 1.8,
            facecolors="none",
            edgecolors="#212121",
            linewidths=0.8,
            label=f"Converted ({int(won_mask.sum()):,} {rows})",
        )
    ax.axvline(50, **_REFERENCE)
    ax.axhline(50, **_REFERENCE)
    ax.set(
        xlim=(-2, 102),
        ylim=(-2, 102),
        xlabel="Fit score: who the lead is (percentile of past leads)",
        ylabel="Engagement score: what the lead did (percentile of past leads)",
        title=title or "Fit against engagement, by stage",
    )
    ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", ncols=4, fontsize=9, frameon=False, markerscale=1.6)
    return fig
