"""Why a lead scored what it scored: contributions, reasons and fit / engagement sub-scores.

What the numbers mean
---------------------
Every lead's calibrated probability ``p`` is split into a **base rate** plus one
**contribution** per business field, in probability units, that add up exactly::

    p = base_rate + sum(contribution_i)          (to floating-point rounding)

A contribution of ``+0.12`` reads "this field raised the lead's chance of converting by 12
percentage points compared with a typical lead"; ``-0.05`` lowered it by 5 points.

How they are computed
---------------------
LightGBM computes exact TreeSHAP values itself (``booster.predict(X, pred_contrib=True)``): for
each lead, one value ``phi_i`` per model column and a bias ``b`` with
``f(x) = b + sum(phi_i)``, where ``f`` is the booster's raw score in **log-odds**. The bias is
the booster's average raw score over its training data, the same for every lead. These values
explain the raw score, not what the user sees, which is the calibrated probability
``p = g(f(x))`` with ``g = calibrate(sigmoid(.))`` (a monotone map: the calibrator never changes
the ranking).

We carry the log-odds values over to the probability scale along the path from the base to
the prediction:

* ``base_rate = g(b)``: the calibrated probability of a lead whose every feature sits at its
  average effect, i.e. where the log-odds explanation starts. It is close to, but not the same
  as, the share of won leads (the average of ``g`` over leads is not ``g`` of the average
  log-odds).
* ``contribution_i = phi_i * (p - base_rate) / (f(x) - b)``: every log-odds value is scaled by
  the same factor, the slope of the straight line from ``(b, base_rate)`` to ``(f(x), p)`` on
  the curve ``g``. Because the factor is shared, the contributions add up to ``p - base_rate``
  exactly, and because ``g`` is monotone the factor is never negative, so every contribution
  keeps the sign of its log-odds value and the ranking of the reasons is the log-odds ranking.
  When ``f(x)`` is within ``1e-6`` of ``b`` the secant is 0/0, and the factor is instead
  ``g``'s average slope over the span the values cover, from ``b`` plus the sum of the
  negative values to ``b`` plus the sum of the positive ones (for a smooth ``g`` and small
  values, its local slope); what is left of ``p - base_rate`` (a rounding error, or a step of
  the calibrator right at the base) is shared by the values of its sign, so the sum and the
  signs still hold exactly and the contributions stay of the size of ``g``'s rise.

This is the linear rescaling of log-odds SHAP; it is not the SHAP value of the calibrated
model itself (that would need an interventional explainer and a background sample, hundreds
of times slower), but it is exact in sum, faithful in sign and order, and costs nothing beyond
TreeSHAP. Where ``g`` is steep (an isotonic calibrator with a sharp step) and large for and
against values cancel out, single contributions can be larger than the change in ``p``, even
above 100 points; they still add up. ``rescale="sides"`` avoids that: it first splits
``p - base_rate`` between the values for and the values against, as the Shapley values of
those two sides on ``g`` (the average of "for first, then against" and "against first, then
for"), then shares each side's total in proportion to its log-odds values. Sum and signs hold
the same way, and each side's total is bounded by how far ``g`` can move.

Model columns are summed back to business fields when ``field_of`` maps column names to
fields (for example several encoded columns of one CRM field); otherwise each column is its
own field.

Reasons and sub-scores
----------------------
:func:`lead_reasons` and :func:`explain_batch` turn the largest contributions into sentences,
worded by :mod:`leadscore.reasons` (from :attr:`~leadscore.schema.Feature.sentence` when a
feature has one, else "Lead source: Google", "Time on the website (seconds): 1,532",
"Occupation not given", or the feature's :attr:`~leadscore.schema.Feature.missing_sentence`
for a missing value), skipping contributions under a tenth of a percentage point. A count at 0
reads as an absence and a count that lowers the score as too little, where the feature has the
sentences for it ("Has not visited the pricing page in the last 90 days", "Only 2 high-intent
actions in the last 90 days"; see :func:`~leadscore.reasons.reason_text`).

One fact, one reason: fields are merged for reasons only (``contributions`` keep one column
per field, and the probability is untouched), in two steps. First, fields whose features name
the same :attr:`~leadscore.schema.Feature.fact` (the 7, 30 and 90-day windows of high-intent
actions and the days since the last one) make one reason: their contributions summed, worded
by the member that says the most (the largest contribution in the sum's direction, preferring
a sentence that reads that way: "Viewed 3 pages" for, "Has not ..." or "Only ..." against).
Then fields whose sentences coincide (both e-mail rates of a lead without e-mails) make one
reason with their contributions summed. So a lead's top three reasons are three different
facts, and the reasons' contributions still add up to ``p - base_rate`` with the ones too
small to show. A category the model never saw is scored as missing but quoted as given:
"Country: Atlantis (not seen in training, so scored as not given)".
:class:`~leadscore.subscores.SubScorer` turns the log-odds contributions of the fit and
engagement features into 0-100 percentiles against the leads the model was trained on.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from scipy.special import expit

from leadscore.encoding import expect_frame
from leadscore.errors import DataError, ModelError
from leadscore.reasons import (
    Reason,
    format_rounded,
    reason_text,
    rounded_for_display,
    unseen_category_text,
)
from leadscore.schema import Feature
from leadscore.subscores import SubScorer

__all__ = [
    "MIN_CONTRIBUTION",
    "Explanation",
    "explain",
    "explain_batch",
    "lead_reasons",
    "mean_abs_contribution",
    "to_probability_space",
]

logger = logging.getLogger(__name__)

Calibrate = Callable[[np.ndarray], np.ndarray]
CalibrateOn = Literal["probability", "log_odds"]
Rescale = Literal["linear", "sides"]

#: Contributions smaller than this (probability, so 0.001 = 0.1 percentage point) are no reason.
MIN_CONTRIBUTION = 1e-3

#: Below this gap in log-odds between prediction and base, the local slope replaces the secant.
_TINY_LOG_ODDS = 1e-6


# --------------------------------------------------------------------------- probability space


def _link(
    calibrate: Calibrate | None, calibrate_on: CalibrateOn
) -> Callable[[np.ndarray], np.ndarray]:
    """``g``: raw log-odds score -> calibrated probability."""
    if calibrate_on not in ("probability", "log_odds"):
        raise ValueError(f"calibrate_on must be 'probability' or 'log_odds', not {calibrate_on!r}")
    if calibrate is None:
        return expit

    def g(f: np.ndarray) -> np.ndarray:
        out = np.asarray(calibrate(expit(f) if calibrate_on == "probability" else f), dtype=float)
        if out.shape != f.shape or not np.all(np.isfinite(out)):
            raise ModelError(
                "the calibrator returned values of the wrong shape or non-finite values",
                "Pass a calibrator that maps an array of raw scores to as many probabilities.",
            )
        return out

    return g


def to_probability_space(
    log_odds: np.ndarray,
    bias: float,
    calibrate: Calibrate | None = None,
    calibrate_on: CalibrateOn = "probability",
    rescale: Rescale = "linear",
) -> tuple[np.ndarray, float, np.ndarray]:
    """Rescale log-odds SHAP values so that they add up to the calibrated probability.

    Parameters
    ----------
    log_odds : (n_leads, n_columns) log-odds contributions ``phi`` (without the bias column).
    bias : the log-odds base value ``b``, so that a lead's raw score is ``b + phi.sum()``.
    calibrate : monotone non-decreasing map to calibrated probability; ``None`` for none.
    calibrate_on : whether ``calibrate`` takes the raw probability ``sigmoid(f)`` (default)
        or the raw log-odds score ``f`` itself (as
        :class:`~leadscore.calibration.ProbabilityCalibrator` does).
    rescale : ``"linear"`` (default): one factor per lead, the secant slope of ``g`` from the
        base to the prediction. ``"sides"``: the change in probability is first split between
        the values for and the values against (the Shapley split of the two sides on ``g``),
        then shared within each side in proportion to the log-odds values; each side's total
        then stays within what ``g`` can move, even where the calibrator is steep.

    Returns
    -------
    contributions : (n_leads, n_columns) in probability units, signs as in ``log_odds``.
    base_rate : ``g(b)``.
    probability : ``g(b + phi.sum())``, equal to ``base_rate + contributions.sum(axis=1)``.

    Examples
    --------
    >>> c, base, p = to_probability_space(np.array([[1.0, -0.5]]), 0.0)
    >>> round(base, 3), np.round(c, 3).tolist(), round(float(p[0]), 3)
    (0.5, [[0.245, -0.122]], 0.622)
    """
    phi = np.asarray(log_odds, dtype=float)
    if phi.ndim != 2:
        raise ValueError("log_odds must be a 2-d array (leads x columns)")
    g = _link(calibrate, calibrate_on)
    d = phi.sum(axis=1)
    f = bias + d
    values = g(np.concatenate([f, [bias]]))
    p, base_rate = values[:-1], float(values[-1])
    delta = p - base_rate
    if np.any(delta * d < -1e-12):
        raise ModelError(
            "the calibrator is not monotone: a higher raw score got a lower probability",
            "Refit the calibrator with a monotone method (isotonic or sigmoid).",
        )
    if rescale == "sides":
        contributions = _split_sides(phi, bias, g, p, base_rate)
        _absorb_residual(contributions, phi, delta)
        return contributions, base_rate, p
    if rescale != "linear":
        raise ValueError(f"rescale must be 'linear' or 'sides', not {rescale!r}")
    tiny = np.abs(d) < _TINY_LOG_ODDS
    scale = np.divide(delta, d, out=np.zeros_like(d), where=~tiny)
    if tiny.any():
        # the secant is 0/0 here: take g's average slope over the span the values cover
        pt = np.where(phi[tiny] > 0, phi[tiny], 0.0).sum(axis=1)
        nt = np.where(phi[tiny] < 0, phi[tiny], 0.0).sum(axis=1)
        ends = g(np.concatenate([bias + pt, bias + nt]))
        width = pt - nt
        rise = ends[: pt.size] - ends[pt.size :]
        scale[tiny] = np.divide(rise, width, out=np.zeros_like(width), where=width > 0)
    scale = np.maximum(scale, 0.0)
    contributions = phi * scale[:, None]
    _absorb_residual(contributions, phi, delta)
    return contributions, base_rate, p


def _split_sides(
    phi: np.ndarray, bias: float, g: Callable[[np.ndarray], np.ndarray], p: np.ndarray, base: float
) -> np.ndarray:
    """Shapley split of ``p - base`` between the for and against sides, then pro rata."""
    pos = np.where(phi > 0, phi, 0.0)
    neg = np.where(phi < 0, phi, 0.0)
    P, N = pos.sum(axis=1), neg.sum(axis=1)
    ends = g(np.concatenate([bias + P, bias + N]))
    g_pos, g_neg = ends[: P.size], ends[P.size :]
    total_for = np.maximum(0.5 * ((g_pos - base) + (p - g_neg)), 0.0)
    total_against = np.minimum(0.5 * ((g_neg - base) + (p - g_pos)), 0.0)
    share_for = np.divide(total_for, P, out=np.zeros_like(P), where=P > 0)
    share_against = np.divide(total_against, N, out=np.zeros_like(N), where=N < 0)
    return pos * share_for[:, None] + neg * share_against[:, None]


def _absorb_residual(contributions: np.ndarray, phi: np.ndarray, delta: np.ndarray) -> None:
    """Add ``delta - contributions.sum(1)`` to the side that shares its sign, in place.

    Shares are proportional to ``phi`` within that side, so no contribution changes sign; when
    that side is empty the other side is scaled down instead (possible only when ``delta`` is
    between 0 and the current sum, so signs still hold).
    """
    residual = delta - contributions.sum(axis=1)
    rows = np.flatnonzero(residual != 0)
    if rows.size == 0:
        return
    ph, res = phi[rows], residual[rows]
    pos = np.where(ph > 0, ph, 0.0)
    neg = np.where(ph < 0, ph, 0.0)
    p_sum, n_sum = pos.sum(axis=1), neg.sum(axis=1)
    same = np.where((res > 0)[:, None], pos, neg)
    same_sum = np.where(res > 0, p_sum, n_sum)
    other = np.where((res > 0)[:, None], neg, pos)
    other_sum = np.where(res > 0, n_sum, p_sum)
    use_same = same_sum != 0
    weights = np.where(use_same[:, None], same, other)
    total = np.where(use_same, same_sum, other_sum)
    ok = total != 0
    add = np.zeros_like(ph)
    add[ok] = weights[ok] / total[ok, None] * res[ok, None]
    contributions[rows] += add


# --------------------------------------------------------------------------- explanation


@dataclass(frozen=True)
class Explanation:
    """Contributions of a batch of leads, on both scales; ``values`` holds the leads' feature
    values, not SHAP values.

    Unlike ``shap.Explanation``, whose ``.values`` are the SHAP values, ``values`` here is the
    input that was explained (the model columns of ``X``, as reasons quote them). The SHAP
    values are ``log_odds`` (TreeSHAP in log-odds, what ``shap`` gives for a LightGBM binary
    model) and ``contributions`` (the same in calibrated probability points, by business
    field). The attributes keep their names for the code already written against them.

    Attributes
    ----------
    base_rate : calibrated probability at the log-odds base value, ``g(bias)``.
    probability : calibrated probability of each lead; equals ``base_rate`` plus the row sum of
        ``contributions``.
    contributions : one column per business field, probability units, index of ``X``.
    log_odds : one column per model column, raw TreeSHAP values in log-odds, index of ``X``.
    log_odds_bias : the log-odds base value.
    values : the model columns of ``X`` the explanation is of: feature values, not
        contributions (those are ``log_odds`` and ``contributions``).
    features : metadata of the model columns, in order.
    fields : the business fields, in the order of ``contributions``' columns.
    shown : (n_leads, n_fields) position in ``features`` of the column that speaks for each
        field in reasons: the field's column with the largest absolute contribution.
    unseen : model column -> the categories of ``values`` that the booster read as missing
        (values never seen in training), so that reasons quote them rather than "not given".
    field_index : position in ``fields`` of each model column (``None``: column ``i`` is
        field ``i``).
    """

    base_rate: float
    probability: np.ndarray
    contributions: pd.DataFrame
    log_odds: pd.DataFrame
    log_odds_bias: float
    values: pd.DataFrame
    features: tuple[Feature, ...]
    fields: tuple[str, ...]
    shown: np.ndarray
    unseen: Mapping[str, frozenset[str]] = field(default_factory=dict)
    field_index: np.ndarray | None = None


def _normal_name(name: str) -> str:
    return re.sub(r"\s", "_", str(name))


def _model_columns(
    booster: lgb.Booster, features: Sequence[Feature], X: pd.DataFrame, check_names: bool
) -> pd.DataFrame:
    names = [f.name for f in features]
    booster_names = booster.feature_name()
    same = [_normal_name(n) for n in names] == [_normal_name(n) for n in booster_names]
    if len(names) != len(booster_names) or (check_names and not same):
        raise ModelError(
            f"the features ({len(names)}) do not match the model's columns "
            f"({len(booster_names)}: {', '.join(booster_names[:5])}, ...)",
            "Pass the feature metadata saved with this model.",
        )
    missing = [n for n in names if n not in X.columns]
    if missing:
        raise DataError(
            f"the leads to explain lack model column {missing[0]!r} ({len(missing)} missing)",
            "Build features with the same feature builder the model was trained with.",
        )
    return X.loc[:, names]


def _field_layout(
    features: Sequence[Feature], field_of: Mapping[str, str] | None
) -> tuple[tuple[str, ...], np.ndarray]:
    """Fields in order of first appearance and the field position of every column."""
    mapping = dict(field_of or {})
    fields: dict[str, int] = {}
    index = np.empty(len(features), dtype=np.intp)
    for i, f in enumerate(features):
        index[i] = fields.setdefault(mapping.get(f.name, f.name), len(fields))
    return tuple(fields), index


def explain(
    booster: lgb.Booster,
    calibrate: Calibrate | None,
    features: Sequence[Feature],
    X: pd.DataFrame,
    *,
    field_of: Mapping[str, str] | None = None,
    calibrate_on: CalibrateOn = "probability",
    encode: Callable[[pd.DataFrame], np.ndarray] | None = None,
    rescale: Rescale = "linear",
) -> Explanation:
    """Contributions of every lead of ``X`` to its calibrated probability.

    Parameters
    ----------
    booster : the fitted binary LightGBM booster.
    calibrate : monotone map to calibrated probability (see ``calibrate_on``); ``None`` means
        the booster's own probability.
    features : metadata of the booster's columns, in the booster's order.
    X : the leads, with (at least) the booster's columns: float64 and pandas ``category``.
    field_of : optional model column -> business field; contributions of one field are summed.
    calibrate_on : ``"probability"`` when ``calibrate`` takes ``sigmoid(raw score)``,
        ``"log_odds"`` when it takes the raw score.
    encode : optional map from the model columns of ``X`` to the matrix the booster was
        trained on (e.g. :meth:`~leadscore.model.LeadScoringModel.encode`), for a booster
        trained on a matrix with its own column names; ``X`` then still supplies the values
        that reasons quote. Without it ``X`` goes to the booster as it is, and its column
        names must match the booster's.
    rescale : how log-odds values become probability points, see
        :func:`to_probability_space`.

    Returns
    -------
    Explanation
        With ``base_rate + contributions.sum(axis=1) == probability`` for every lead.
    """
    expect_frame(X, "leads to explain")
    features = tuple(features)
    Xm = _model_columns(booster, features, X, check_names=encode is None)
    if encode is None:
        probe: pd.DataFrame | np.ndarray = Xm if len(Xm) else Xm.reindex([0])
    else:
        probe = (
            np.asarray(encode(Xm), dtype=float) if len(Xm) else np.full((1, len(features)), np.nan)
        )
        if probe.shape != (max(len(Xm), 1), len(features)):
            raise ModelError(
                f"encode returned shape {probe.shape} for {len(Xm)} leads",
                "Pass the model's own encoder, one column per feature.",
            )
    # the bias (last column) is the same for every row, so an empty batch probes one blank row
    raw = np.asarray(booster.predict(probe, pred_contrib=True), dtype=float)
    if raw.ndim != 2 or raw.shape[1] != len(features) + 1:
        raise ModelError(
            "the booster is not a single-output (binary) model",
            "Explain a model trained with objective='binary'.",
        )
    bias = float(raw[0, -1])
    phi = raw[: len(Xm), :-1]
    contributions, base_rate, probability = to_probability_space(
        phi, bias, calibrate, calibrate_on, rescale
    )
    fields, index = _field_layout(features, field_of)
    if len(fields) == len(features):
        by_field = contributions
        shown = np.broadcast_to(np.arange(len(features)), contributions.shape)
    else:
        by_field = np.zeros((len(Xm), len(fields)))
        np.add.at(by_field.T, index, contributions.T)
        shown = np.empty((len(Xm), len(fields)), dtype=np.intp)
        for j in range(len(fields)):
            members = np.flatnonzero(index == j)
            pick = np.abs(contributions[:, members]).argmax(axis=1)
            shown[:, j] = members[pick]
    names = [f.name for f in features]
    encoded = probe if isinstance(probe, np.ndarray) else None
    return Explanation(
        base_rate=base_rate,
        probability=probability,
        contributions=pd.DataFrame(by_field, index=X.index, columns=list(fields)),
        log_odds=pd.DataFrame(phi, index=X.index, columns=names),
        log_odds_bias=bias,
        values=Xm,
        features=features,
        fields=fields,
        shown=shown,
        unseen=_unseen_categories(booster, Xm, encoded),
        field_index=index,
    )


def _unseen_categories(
    booster: lgb.Booster, Xm: pd.DataFrame, encoded: np.ndarray | None
) -> dict[str, frozenset[str]]:
    """Categories of ``Xm`` that the booster reads as missing: a given value whose encoded
    cell is ``nan`` or, for a booster trained on a DataFrame, one not among its categories."""
    columns = [j for j in range(Xm.shape[1]) if _is_categorical(Xm.iloc[:, j])]
    trained_on = getattr(booster, "pandas_categorical", None) or []
    if encoded is None and len(trained_on) != len(columns):
        return {}
    unseen: dict[str, frozenset[str]] = {}
    for k, j in enumerate(columns):
        column = Xm.iloc[:, j]
        codes = column.cat.codes.to_numpy()
        if encoded is not None:
            hit = np.unique(codes[(codes >= 0) & np.isnan(encoded[: len(codes), j])])
            new = {str(column.cat.categories[c]) for c in hit.tolist()}
        else:
            given = column.cat.categories[np.unique(codes[codes >= 0])]
            new = {str(c) for c in given} - {str(c) for c in trained_on[k]}
        if new:
            unseen[str(Xm.columns[j])] = frozenset(new)
    return unseen


# --------------------------------------------------------------------------- reasons


def _is_categorical(column: pd.Series) -> bool:
    return isinstance(column.dtype, pd.CategoricalDtype)


def _cell_values(column: pd.Series, rows: np.ndarray) -> list[float | str | None]:
    """Python values of ``column`` at positions ``rows``: float, str, or None when missing."""
    if _is_categorical(column):
        cats = [str(c) for c in column.cat.categories]
        codes = column.cat.codes.to_numpy()[rows]
        return [cats[c] if c >= 0 else None for c in codes.tolist()]
    if ptypes.is_numeric_dtype(column) or ptypes.is_bool_dtype(column):
        vals = column.to_numpy(dtype=float, na_value=np.nan)[rows]
        return [None if v != v else v for v in vals.tolist()]
    vals = column.to_numpy(dtype=object)[rows]
    return [None if pd.isna(v) else str(v) for v in vals]


def lead_reasons(
    explanation: Explanation,
    row: int,
    top_n: int = 3,
    min_contribution: float = MIN_CONTRIBUTION,
) -> tuple[list[Reason], list[Reason]]:
    """The top reasons for and against the lead at position ``row`` of an explanation.

    Returns ``(reasons_for, reasons_against)``: up to ``top_n`` each, largest first, positive
    contributions for, negative against; contributions smaller than ``min_contribution`` (in
    probability) are left out, so a lead with nothing notable has fewer reasons. Fields of one
    fact, and fields that read the same sentence, are one reason, with their contributions
    summed (see :func:`_merged_contributions`).
    """
    c = _merged_contributions(explanation, np.array([row]))[0]
    order = np.argsort(-c, kind="stable")
    picks_for = [j for j in order[:top_n] if c[j] >= min_contribution and c[j] > 0]
    picks_against = [j for j in order[::-1][:top_n] if c[j] <= -min_contribution and c[j] < 0]

    def reason(j: int) -> Reason:
        m = int(explanation.shown[row, j])
        feature = explanation.features[m]
        value = _cell_values(explanation.values.iloc[:, m], np.array([row]))[0]
        new = value in explanation.unseen.get(feature.name, ())
        against = bool(c[j] < 0)
        return Reason(
            feature=explanation.fields[j],
            label=feature.label,
            value=value,
            contribution=float(c[j]),
            group=feature.group,
            text=(
                unseen_category_text(feature, str(value))
                if new
                else reason_text(feature, value, against=against)
            ),
            fact=feature.fact,
        )

    return [reason(j) for j in picks_for], [reason(j) for j in picks_against]


# --------------------------------------------------------------------------- batch


def _json_list(values: list[Any]) -> list[str]:
    """JSON text of each value, encoded in one C-speed call (NaN becomes null)."""
    if not values:
        return []
    parts = json.dumps(values, ensure_ascii=False, separators=(",\x00", ":"))[1:-1]
    return [p if p != "NaN" else "null" for p in parts.split(",\x00")]


def _texts_and_json(
    feature: Feature,
    column: pd.Series,
    rows: np.ndarray,
    unseen: frozenset[str] = frozenset(),
    against: np.ndarray | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Reason sentences and JSON values of ``column`` at ``rows``, each distinct value once.

    ``against`` marks the rows whose reason counts against the lead (a number above 0 there
    reads the feature's ``low_sentence``, where it has one); ``None``: every reason is for.
    """
    texts = np.empty(rows.size, dtype=object)
    if _is_categorical(column):
        cats = [str(c) for c in column.cat.categories]
        table = np.array(
            [
                unseen_category_text(feature, c) if c in unseen else reason_text(feature, c)
                for c in cats
            ]
            + [reason_text(feature, None)],
            dtype=object,
        )
        codes = column.cat.codes.to_numpy()[rows]
        texts[:] = table[codes]  # code -1 (missing) takes the last entry
        as_json = ["null", *_json_list(cats)]
        return texts, [as_json[c + 1] for c in codes.tolist()]
    if not (ptypes.is_numeric_dtype(column) or ptypes.is_bool_dtype(column)):
        cells = _cell_values(column, rows)
        texts[:] = [reason_text(feature, v) for v in cells]
        return texts, _json_list(cells)
    values = column.to_numpy(dtype=float, na_value=np.nan)[rows]
    missing = np.isnan(values)
    texts[missing] = reason_text(feature, None)
    present = values[~missing]
    if present.size:
        if feature.sentence or feature.zero_sentence or feature.low_sentence:
            unique, inverse = np.unique(present, return_inverse=True)
            phrases = [reason_text(feature, v) for v in unique.tolist()]
        else:
            unique, inverse = np.unique(rounded_for_display(present), return_inverse=True)
            label = feature.label.replace("; ", ", ")
            phrases = [f"{label}: {format_rounded(v)}" for v in unique.tolist()]
        at = np.flatnonzero(~missing)
        texts[at] = np.array(phrases, dtype=object)[inverse]
        if feature.low_sentence and against is not None:
            low = np.flatnonzero(
                np.asarray(against, dtype=bool)[at] & (present > 0) & _reads_low(feature, present)
            )
            if low.size:
                u, inv = np.unique(present[low], return_inverse=True)
                lows = [reason_text(feature, v, against=True) for v in u.tolist()]
                texts[at[low]] = np.array(lows, dtype=object)[inv]
    return texts, _json_list(values.tolist())


def _reads_low(feature: Feature, values: np.ndarray) -> np.ndarray:
    """Whether each value, as a reason against, reads the feature's ``low_sentence`` ("Only
    2 ..."): it has one, and the value lies below its ``low_below`` where that is set."""
    if feature.low_sentence is None:
        return np.zeros(values.shape, dtype=bool)
    if feature.low_below is None:
        return np.ones(values.shape, dtype=bool)
    return values < feature.low_below


def _field_of_columns(explanation: Explanation) -> np.ndarray:
    """Position in ``fields`` of each model column."""
    if explanation.field_index is not None:
        return np.asarray(explanation.field_index, dtype=np.intp)
    return np.arange(len(explanation.features), dtype=np.intp)


def _field_groups(
    explanation: Explanation, keys_of: Callable[[Feature], list[tuple[str, str]]]
) -> list[list[int]]:
    """Fields joined, in groups of two or more, when a column of one and a column of the
    other share a key of ``keys_of`` (transitively: a shares with b, b with c, all three)."""
    index = _field_of_columns(explanation)
    parent = list(range(len(explanation.fields)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[tuple[str, str], int] = {}
    for m, feature in enumerate(explanation.features):
        j = int(index[m])
        for key in keys_of(feature):
            parent[root(owner.setdefault(key, j))] = root(j)
    groups: dict[int, list[int]] = {}
    for j in range(len(explanation.fields)):
        groups.setdefault(root(j), []).append(j)
    return [g for g in groups.values() if len(g) > 1]


def _fact_groups(explanation: Explanation) -> list[list[int]]:
    """Fields that tell about one fact (their features name the same ``fact``), in groups of
    two or more: the trailing windows of one count, and the recency that goes with it."""
    return _field_groups(explanation, lambda f: [("fact", f.fact)] if f.fact else [])


def _collision_groups(explanation: Explanation) -> list[list[int]]:
    """Fields whose reasons can read the same sentence, in groups of two or more.

    Two fields can only say the same thing when the features speaking for them share a
    sentence template, a label (the generic "<label>: <value>"), the sentence of a missing
    value ("No record of marketing e-mails sent in the last 90 days" for both e-mail rates)
    or the sentence of a zero.
    """

    def keys(feature: Feature) -> list[tuple[str, str]]:
        # the missing and zero sentences are whole texts: one may be another feature's other
        # ("No record of marketing e-mails sent ...": rates missing, e-mails received 0)
        out = [("text", reason_text(feature, None)), ("label", feature.label)]
        if feature.sentence:
            out.append(("sentence", feature.sentence))
        if feature.zero_sentence:
            out.append(("text", feature.zero_sentence))
        return out

    return _field_groups(explanation, keys)


def _field_texts(explanation: Explanation, rows: np.ndarray, j: int) -> np.ndarray:
    """The reason sentence of field ``j`` for the leads at positions ``rows``, as a reason for
    (a low count reads "Only ..." against, but is the same fact either way)."""
    out = np.empty(rows.size, dtype=object)
    shown = explanation.shown[rows, j]
    for m in np.unique(shown).tolist():
        at = np.flatnonzero(shown == m)
        feature = explanation.features[m]
        out[at] = _texts_and_json(
            feature,
            explanation.values.iloc[:, m],
            rows[at],
            explanation.unseen.get(feature.name, frozenset()),
        )[0]
    return out


def _reads_as(
    explanation: Explanation, rows: np.ndarray, fields: np.ndarray, plus: np.ndarray
) -> np.ndarray:
    """(len(rows) x len(fields)) whether the sentence of each field at each lead reads the
    way its reason points: where ``plus``, a value that is there and not 0 (something the lead
    did: "Viewed 3 pages", "Last high-intent action 5 days ago"); elsewhere an absence (0 or
    missing: "Has not visited the demo page", "No high-intent action yet") or a count that
    reads as too little ("Only 20 activities of any kind so far")."""
    shown = explanation.shown[np.ix_(rows, fields)]
    absent = np.zeros(shown.shape, dtype=bool)
    low = np.zeros(shown.shape, dtype=bool)
    for m in np.unique(shown).tolist():
        at = shown == m
        column = explanation.values.iloc[:, m]
        if _is_categorical(column):
            cells = column.cat.codes.to_numpy()[rows] < 0
        elif ptypes.is_numeric_dtype(column) or ptypes.is_bool_dtype(column):
            v = column.to_numpy(dtype=float, na_value=np.nan)[rows]
            cells = np.isnan(v) | (v == 0)
            reads_low = _reads_low(explanation.features[m], v)
            low[at] = np.broadcast_to(reads_low[:, None], shown.shape)[at]
        else:
            cells = column.isna().to_numpy()[rows]
        absent[at] = np.broadcast_to(cells[:, None], shown.shape)[at]
    return np.where(plus[:, None], ~absent, absent | low)


def _merged_contributions(explanation: Explanation, rows: np.ndarray) -> np.ndarray:
    """Contributions of the leads at ``rows`` (n x fields), merged so that one fact makes one
    reason: what each field would say as a reason, ranked by what the fact moved in all.

    1. **Fields of one fact** (:func:`_fact_groups`): the windows of a count ("high-intent
       actions" in the last 7, 30 and 90 days) and its recency ("days since the last
       high-intent action", whose missing value reads "No high-intent action yet") are one
       fact to a marketer, not three reasons that fill every slot. The sum of their
       contributions goes to the member that says the most, which words the reason; the
       other members get 0. That is the member with the largest contribution in the sum's
       direction among those whose sentence reads that way (:func:`_reads_as`: a deed for, an
       absence or "Only ..." against), else among all in that direction: a lead whose 30-day
       page views (0) and 90-day page views (3) both lift the score reads "Viewed 3 pages in
       the last 90 days", not "Has not viewed a page ... in the last 30 days" as a reason for,
       even when the 30-day window lifted it a little more. Members that pull the other way
       are netted out, not shown: a lead whose 30-day count lifts the score and whose 90-day
       count lowers it gets the one net reason, on the side of the net sum, not a reason for
       and one against about one count.
    2. **Fields that read the same sentence** (:func:`_collision_groups`): the first such field
       of a lead takes their sum, the others 0; e.g. a lead without e-mails gets "No record of
       marketing e-mails sent in the last 90 days" once for both e-mail rates. Fields that
       step 1 emptied into their fact's speaker take no part, so a fact never speaks twice.

    Every merge moves contributions between fields of a lead and never changes their sum
    (which stays ``p - base_rate``); a merged sum may change side. Fields that merge with
    nothing keep their contribution bit for bit, so a flat table without facts or shared
    sentences reads exactly as unmerged.
    """
    C = explanation.contributions.to_numpy(dtype=float)[rows].copy()
    n = C.shape[0]
    emptied = np.zeros(C.shape, dtype=bool)
    for group in _fact_groups(explanation):
        members = np.asarray(group, dtype=np.intp)
        part = C[:, members]
        total = part.sum(axis=1)
        with_sum = np.sign(part) == np.sign(total)[:, None]
        size = np.where(with_sum, np.abs(part), -1.0)
        fitting = np.where(with_sum & _reads_as(explanation, rows, members, total > 0), size, -1.0)
        speaker = np.where(fitting.max(axis=1) >= 0, fitting.argmax(axis=1), size.argmax(axis=1))
        merged = np.zeros_like(part)
        merged[np.arange(n), speaker] = total
        C[:, members] = merged
        emptied[:, members] = True
        emptied[np.arange(n), members[speaker]] = False
    for group in _collision_groups(explanation):
        # only leads where two of the group moved the score can gain from merging
        busy = np.flatnonzero((C[:, group] != 0).sum(axis=1) >= 2)
        if busy.size == 0:
            continue
        texts = np.stack([_field_texts(explanation, rows[busy], j) for j in group], axis=1)
        alive = ~emptied[np.ix_(busy, np.asarray(group))]
        for a in range(len(group)):
            for b in range(a + 1, len(group)):
                same = alive[:, a] & alive[:, b] & (texts[:, a] == texts[:, b])
                if not same.any():
                    continue
                at = busy[same]
                C[at, group[a]] += C[at, group[b]]
                C[at, group[b]] = 0.0
                alive[same, b] = False
    return C


def _reason_columns(explanation: Explanation, top_n: int, min_contribution: float) -> pd.DataFrame:
    """reasons_for, reasons_against and reasons_json of every lead, vectorised by column."""
    C = _merged_contributions(explanation, np.arange(len(explanation.contributions)))
    n, m = C.shape
    k = min(top_n, m)
    order = np.argsort(-C, axis=1, kind="stable")
    slots = np.concatenate([order[:, :k], order[:, ::-1][:, :k]], axis=1)
    vals = np.take_along_axis(C, slots, axis=1)
    valid = np.concatenate(
        [
            (vals[:, :k] >= min_contribution) & (vals[:, :k] > 0),
            (vals[:, k:] <= -min_contribution) & (vals[:, k:] < 0),
        ],
        axis=1,
    )
    text = np.full((n, 2 * k), "", dtype=object)
    frag = np.full((n, 2 * k), "", dtype=object)
    rows, cols = np.nonzero(valid)
    field_pos = slots[rows, cols]
    feat_pos = explanation.shown[rows, field_pos]
    contrib = np.array(_json_list(np.round(vals[rows, cols], 6).tolist()), dtype=object)
    tail = np.where(cols < k, ', "direction": "for"', ', "direction": "against"')
    fields_json = _json_list(list(explanation.fields))
    by_feature = np.argsort(feat_pos, kind="stable")
    bounds = np.flatnonzero(np.diff(feat_pos[by_feature])) + 1
    for at in np.split(by_feature, bounds) if by_feature.size else []:
        mpos = int(feat_pos[at[0]])
        feature = explanation.features[mpos]
        texts, values = _texts_and_json(
            feature,
            explanation.values.iloc[:, mpos],
            rows[at],
            explanation.unseen.get(feature.name, frozenset()),
            against=cols[at] >= k,
        )
        head = (
            f'{{"feature": {fields_json[field_pos[at[0]]]}, '
            f'"label": {_json_list([feature.label])[0]}, "value": '
        )
        # a column belongs to one field, so one head serves every reason it words
        end = "}" if feature.fact is None else f', "fact": {_json_list([feature.fact])[0]}}}'
        text[rows[at], cols[at]] = texts
        frag[rows[at], cols[at]] = [
            f'{head}{v}, "contribution": {c}{t}{end}'
            for v, c, t in zip(values, contrib[at].tolist(), tail[at].tolist(), strict=True)
        ]
    # valid cells come first within each side (sorted by size), so joining stops at blanks
    n_for = valid[:, :k].sum(axis=1).tolist()
    n_against = valid[:, k:].sum(axis=1).tolist()
    text_rows = text.tolist()
    frag_rows = frag.tolist()
    reasons_for = ["; ".join(t[:a]) for t, a in zip(text_rows, n_for, strict=True)]
    reasons_against = ["; ".join(t[k : k + b]) for t, b in zip(text_rows, n_against, strict=True)]
    as_json = [
        "[" + ", ".join(f[:a] + f[k : k + b]) + "]"
        for f, a, b in zip(frag_rows, n_for, n_against, strict=True)
    ]
    return pd.DataFrame(
        {
            "reasons_for": pd.array(reasons_for, dtype="str"),
            "reasons_against": pd.array(reasons_against, dtype="str"),
            "reasons_json": pd.array(as_json, dtype="str"),
        },
        index=explanation.contributions.index,
    )


def explain_batch(
    booster: lgb.Booster,
    calibrate: Calibrate | None,
    features: Sequence[Feature],
    X: pd.DataFrame,
    top_n: int = 3,
    *,
    field_of: Mapping[str, str] | None = None,
    calibrate_on: CalibrateOn = "probability",
    sub_scorer: SubScorer | None = None,
    min_contribution: float = MIN_CONTRIBUTION,
    include_contributions: bool = False,
    encode: Callable[[pd.DataFrame], np.ndarray] | None = None,
    rescale: Rescale = "linear",
    chunk_size: int = 100_000,
) -> pd.DataFrame:
    """Probability, reasons (and optionally sub-scores and contributions) of many leads.

    Works through ``X`` in chunks of ``chunk_size`` rows, so memory is bounded by the chunk;
    selection is vectorised (an argsort of the contribution matrix) and only the chosen
    reasons are turned into text. Arguments are those of :func:`explain`, and:

    Parameters
    ----------
    top_n : reasons for and against, each, per lead.
    sub_scorer : a fitted :class:`SubScorer` for ``fit_score`` and ``engagement_score``.
    min_contribution : smallest contribution (probability) that makes a reason.
    include_contributions : add one ``contribution:<field>`` column per field.
    chunk_size : rows explained at a time.

    Returns
    -------
    pandas.DataFrame
        Index of ``X``; columns ``probability``, ``base_rate``, ``reasons_for`` and
        ``reasons_against`` (up to ``top_n`` sentences each, joined with ``"; "``),
        ``reasons_json`` (see :func:`reasons_json`); ``fit_score`` and ``engagement_score``
        when ``sub_scorer`` is given; ``contribution:<field>`` per field when
        ``include_contributions``.
    """
    if top_n < 1 or chunk_size < 1:
        raise ValueError("top_n and chunk_size must be at least 1")
    expect_frame(X, "leads to explain")
    parts = []
    for start in range(0, max(len(X), 1), chunk_size):
        exp = explain(
            booster,
            calibrate,
            features,
            X.iloc[start : start + chunk_size],
            field_of=field_of,
            calibrate_on=calibrate_on,
            encode=encode,
            rescale=rescale,
        )
        part = pd.concat(
            [
                pd.DataFrame(
                    {"probability": exp.probability, "base_rate": exp.base_rate},
                    index=exp.contributions.index,
                ),
                _reason_columns(exp, top_n, min_contribution),
            ],
            axis=1,
        )
        # side by side by position: a join on a repeated index label would multiply rows
        if sub_scorer is not None:
            part = _beside(part, sub_scorer.transform(exp.log_odds, exp.values))
        if include_contributions:
            part = _beside(part, exp.contributions.add_prefix("contribution:"))
        parts.append(part)
    return parts[0] if len(parts) == 1 else pd.concat(parts, axis=0)


def _beside(left: pd.DataFrame, right: pd.DataFrame) -> pd.DataFrame:
    """``right``'s columns after ``left``'s, row for row (both hold the same rows in order)."""
    return pd.concat([left, right.set_axis(left.index, axis=0)], axis=1)


# --------------------------------------------------------------------------- global views


def feature_labels(
    names: Sequence[str], features: Sequence[Feature] | None
) -> dict[str, tuple[str, str]]:
    """(label, group) of each column name, the name itself where no feature describes it."""
    meta = {f.name: (f.label, f.group) for f in features or ()}
    return {n: meta.get(n, (n, "")) for n in names}


def mean_abs_contribution(
    contributions: pd.DataFrame, features: Sequence[Feature] | None = None
) -> pd.DataFrame:
    """Global importance: the mean absolute contribution of each column, largest first.

    Works on either scale (``Explanation.log_odds`` or ``Explanation.contributions``); on the
    probability scale it reads "moves a lead's probability by N points on average".
    Columns: ``feature``, ``label``, ``group``, ``mean_abs_contribution``.
    """
    mean_abs = contributions.abs().mean(axis=0)
    meta = feature_labels(list(contributions.columns), features)
    out = pd.DataFrame(
        {
            "feature": list(contributions.columns),
            "label": [meta[n][0] for n in contributions.columns],
            "group": [meta[n][1] for n in contributions.columns],
            "mean_abs_contribution": mean_abs.to_numpy(dtype=float),
        }
    )
    return out.sort_values("mean_abs_contribution", ascending=False, kind="stable").reset_index(
        drop=True
    )
