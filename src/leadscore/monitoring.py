"""A model in service: did its scores come true, and do today's leads look like those it was
tested on?

Two checks marketing ops and the data scientist run after launch, both on what the product
already keeps:

**Back-test** (:func:`backtest_runs`). Every scoring run is kept in ``scored_leads_history``;
once the outcomes are in, each run is scored against them as the test fold was at training:
ROC-AUC, Brier, ECE, lift, and per stage the count, conversion rate and share of wins. A run
is judged on the label the model was trained for:

* event data: won within ``horizon_days`` after the run's as-of. A run whose window has not
  ended at the data's ``observed_until`` is *pending*: its wins so far are counted, but no
  metric is computed, since the leads still open might win (calling them lost would bias
  every figure, as in training's right-censoring).
* flat data: the label the spec gives each lead now (``load_dataset``, censoring applied).
  Leads without one are pending; the metrics use the resolved leads, which over-represent
  the quick closers until most have resolved, so ``resolved_share`` is reported beside them.

**Drift** (:class:`DriftReference`). At training the model keeps, for every input and for
its calibrated probability and stage, the distribution over the test fold, the most recent
leads its metrics describe: ten equal-count bins of a number (plus "missing"), the levels of a
category most frequent among the training leads (plus "other" and "missing"; levels chosen on
the test fold itself would be over-represented there by selection). The population stability
index (PSI) compares today's open leads with it bin by bin::

    PSI = sum((current_share - reference_share) * ln(current_share / reference_share))

Below 0.1 the population is stable, 0.1 to 0.25 worth watching, above 0.25 shifted (the
conventions of credit scoring, where PSI comes from); a PSI that chance alone reaches on
samples of these sizes (:func:`psi_by_chance`, often above 0.1 for a few hundred open
leads) counts as stable too. A shifted input does not by itself
mean the scores are wrong (the back-test says that, later); it says where to look now, before
the outcomes are in. Shares are floored at 0.0001 so that an empty bin gives a large but
finite PSI.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.stats import chi2, norm
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from leadscore.errors import DataError, ModelError, shortened_list
from leadscore.metrics import STAGES, ece_by_chance, evaluate, stage_report
from leadscore.reasons import category_text, category_words, format_number, unit_text
from leadscore.schema import Feature
from leadscore.sinks import RUN_KEY_COLUMNS as RUN_KEY
from leadscore.sinks import shown_model

logger = logging.getLogger(__name__)

#: PSI below this: stable; from it to :data:`PSI_SHIFTED`: watch; above: shifted.
PSI_WATCH = 0.1
PSI_SHIFTED = 0.25
#: Shares are floored here before the logarithm, so an empty bin gives a finite PSI.
SHARE_FLOOR = 1e-4

MISSING = "(missing)"
OTHER = "(other)"

BucketKind = Literal["numeric", "categorical"]


def population_stability(
    reference: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray
) -> float:
    """PSI of two distributions over the same buckets (shares or counts; each is normalised).

    Examples
    --------
    >>> round(population_stability([0.5, 0.5], [0.5, 0.5]), 6)
    0.0
    >>> round(population_stability([0.5, 0.5], [0.9, 0.1]), 3)
    0.879
    """
    ref = np.asarray(reference, dtype="float64")
    cur = np.asarray(current, dtype="float64")
    if ref.shape != cur.shape or ref.ndim != 1 or ref.size == 0:
        raise ValueError(f"PSI needs two share vectors of one length, got {ref.shape}, {cur.shape}")
    if ref.sum() <= 0 or cur.sum() <= 0:
        raise ValueError("PSI needs at least one observation on each side")
    ref = np.maximum(ref / ref.sum(), SHARE_FLOOR)
    cur = np.maximum(cur / cur.sum(), SHARE_FLOOR)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def psi_by_chance(reference_n: int, current_n: int, buckets: int, level: float = 0.95) -> float:
    """The PSI two samples of one population reach by chance ``level`` of the time.

    ``n m / (n + m) * PSI`` is close to a chi-square with ``buckets - 1`` degrees of freedom
    when nothing moved (PSI is the symmetrised chi-square divergence), so on a few hundred open
    leads a PSI of 0.05 can be noise alone: 10 buckets, 1,700 reference and 550 current leads
    give 0.031.
    """
    if reference_n < 1 or current_n < 1 or buckets < 2:
        return math.nan
    return float(chi2.ppf(level, buckets - 1) * (1.0 / reference_n + 1.0 / current_n))


def psi_status(psi: float, chance: float = 0.0) -> str:
    """``stable``, ``watch`` or ``shifted`` (:data:`PSI_WATCH`, :data:`PSI_SHIFTED`); a PSI
    within what chance gives (``chance``, :func:`psi_by_chance`) is stable whatever its size."""
    if psi < PSI_WATCH or psi <= chance:
        return "stable"
    return "watch" if psi <= PSI_SHIFTED else "shifted"


def _number(value: float) -> str:
    """A bin edge or size to four significant digits, as a marketer writes it: never in
    exponent notation from 10,000 up (``10,370,000``, not ``1.037e+07``)."""
    shown = float(f"{value:.4g}") if math.isfinite(value) else value
    if math.isfinite(shown) and abs(shown) >= 1e4:
        return f"{round(value, 3 - math.floor(math.log10(abs(shown)))):,.0f}"
    return f"{value:,.4g}"


def _numeric_labels(
    edges: Sequence[float], shown: Callable[[float], str | None] = lambda _: None
) -> list[str]:
    """Bucket names of inner ``edges`` (right-closed bins), then :data:`MISSING`; ``shown``
    writes an edge in its unit (:func:`leadscore.reasons.unit_text`), ``None`` for a plain
    number.

    The edges of one input share their decimals (:func:`_even_decimals`): rounded one by one
    they read "4.4% to 6.69%". A first bin of shares up to 0% holds just 0% (no rate is below
    it), so it reads "0%", not "<= 0%"."""
    if not edges:
        return ["any value", MISSING]
    text = _even_decimals([shown(value) or _number(value) for value in edges])
    first = f"<= {text[0]}"
    if edges[0] == 0 and text[0].endswith("%"):
        first = text[0]
    labels = [first, *(f"{a} to {b}" for a, b in itertools.pairwise(text))]
    return [*labels, f"> {text[-1]}", MISSING]


def _even_decimals(texts: Sequence[str]) -> list[str]:
    """Edges written in one unit ("4.4%", "6.69%") with one number of decimals: the fewest
    that keep them apart, keep an edge that is not 0 from reading 0, and move none by more
    than 5%. Edges in several units ("12 minutes", "1.9 hours") are left as they are."""
    parts = [_EDGE_TEXT.fullmatch(t) for t in texts]
    if not all(parts) or len({(m[1], m[3]) for m in parts if m}) != 1:
        return list(texts)
    values = [float(m[2].replace(",", "")) for m in parts if m]
    most = max(len(m[2].partition(".")[2]) for m in parts if m)
    for digits in range(most + 1):
        rounded = [round(v, digits) for v in values]
        apart = len(set(rounded)) == len(rounded)
        close = all(
            r != 0 and abs(r - v) <= 0.05 * abs(v) if v else r == 0
            for v, r in zip(values, rounded, strict=True)
        )
        if apart and close:
            break
    return [f"{m[1]}{v:,.{digits}f}{m[3]}" for m, v in zip(parts, rounded, strict=True) if m]


#: An edge as its unit writes it: a prefix ("$"), the number, a suffix ("%", " days").
_EDGE_TEXT = re.compile(r"([^\d.-]*)(-?[\d,]*\.?\d+)([^\d]*)")


def _percent(value: float) -> str:
    """A probability bin edge as a percentage (0.0412 as "4.12%")."""
    return f"{format_number(100 * value)}%"


def _is_flag(values: np.ndarray) -> bool:
    """Whether ``values`` are a 0/1 flag holding both (``has_chatted``): two buckets, "no" and
    "yes", rather than quantile cuts interpolated between 0 and 1 that read "0 to 0.3"."""
    finite = values[np.isfinite(values)]
    return bool(np.isin(finite, (0.0, 1.0)).all() and np.unique(finite).size == 2)


def _numeric_edges(values: np.ndarray, n_bins: int) -> list[float]:
    """Inner edges of at most ``n_bins`` equal-count, right-closed bins of the finite values;
    ties collapse bins (a count that is 0 for most leads has few).

    Whole-number values get whole-number edges: a quantile interpolated between 4 and 5 puts
    the same counts in the same bins as 4 does (the bins are right-closed), but reads "2 to
    4.8" for a count nobody can have 4.8 of."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return []
    cuts = np.quantile(finite, np.linspace(0.0, 1.0, n_bins + 1)[1:-1])
    if np.array_equal(finite, np.round(finite)):
        cuts = np.floor(cuts)
    return [float(c) for c in np.unique(cuts) if c < finite.max()]


def _numeric_buckets(values: pd.Series, edges: Sequence[float]) -> np.ndarray:
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    index = np.searchsorted(np.asarray(edges, dtype="float64"), x, side="left")
    index[~np.isfinite(x)] = len(edges) + 1
    return index


def _categorical_buckets(values: pd.Series, levels: Sequence[str]) -> np.ndarray:
    text = values.astype("string")
    position = {level: i for i, level in enumerate(levels)}
    index = text.map(position).astype("Float64").fillna(len(levels)).to_numpy(dtype="int64")
    index[text.isna().to_numpy()] = len(levels) + 1
    return index


def _counts(buckets: np.ndarray, size: int) -> np.ndarray:
    return np.bincount(buckets, minlength=size)[:size].astype("int64")


#: A bin that held less than this share of the reference leads ...
_NEARLY_EMPTY = 0.01
#: ... and grew by at least this share of today's leads holds something new.
_GREW_FROM_NOTHING = 0.02


def _moved_most(reference: np.ndarray, current: np.ndarray) -> int:
    """The bin whose share changed most, except that a bin that was (nearly) empty on the
    reference leads and now holds a few percent of today's comes first (the largest such):
    a new channel in "(other)" growing from nothing to 5% is the news, and an old channel
    falling from 25% to 19.5% is the same leads seen from the other side."""
    grown = (reference < _NEARLY_EMPTY) & (current - reference >= _GREW_FROM_NOTHING)
    if grown.any():
        return int(np.argmax(np.where(grown, current, -1.0)))
    return int(np.argmax(np.abs(current - reference)))


def _frequent_levels(values: pd.Series, max_levels: int) -> list[str]:
    """The ``max_levels`` most frequent levels of ``values``, most frequent first; ties in
    the order of the levels, so that the row order does not decide which are kept."""
    counts = values.astype("string").value_counts(dropna=True)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
    return [str(level) for level, _ in ranked[:max_levels]]


class DriftReference(BaseEstimator):
    """The distribution of every model input, the probability and the stage on reference leads.

    Fitted at training on the test fold (the most recent leads the model's metrics describe)
    and saved in ``model.json``; :meth:`counts` buckets new leads the same way, chunk by chunk,
    and :meth:`compare` turns the summed counts into one PSI row per item.

    The levels kept of a categorical input are chosen on leads other than those whose shares
    are stored (the training leads, ``levels_from``): levels picked for being frequent in the
    very sample that measures their shares are over-represented there by selection, so today's
    leads of the same population would show a smaller share of them and a larger "other",
    and PSI would call a high-cardinality input drifted when nothing moved.

    Parameters
    ----------
    n_bins : equal-count bins per numeric input and for the probability.
    max_levels : most frequent levels kept per categorical input; the rest is "other".

    Attributes
    ----------
    buckets_ : item -> ``{"kind", "edges" or "levels", "labels", "shares", "n"}``; items are
        the model columns, ``probability`` and ``stage``; ``n`` is the number of reference
        leads behind the shares (fewer than ``n_`` where the levels were chosen on half of
        them; references saved before it existed read as ``n_``). A numeric input also holds
        ``size``, its typical size (:func:`typical_size`; ``None`` when too few leads have a
        non-zero value, and absent in references saved before it), and ``size_range``, the
        middle half of its non-zero sizes (:func:`middle_range`, ``None`` or absent likewise),
        which scoring holds today's leads against (:class:`SizeCheck`).
    n_ : number of reference leads.
    """

    def __init__(self, n_bins: int = 10, max_levels: int = 20) -> None:
        self.n_bins = n_bins
        self.max_levels = max_levels

    def fit(
        self,
        prepared: pd.DataFrame,
        features: Sequence[Feature],
        probability: np.ndarray,
        stages: np.ndarray | Sequence[str],
        *,
        levels_from: pd.DataFrame | None = None,
        computed: Collection[str] = (),
    ) -> DriftReference:
        """Learn the buckets and their shares from the reference leads.

        ``prepared`` holds the model's columns typed as the model types them
        (:meth:`~leadscore.model.LeadScoringModel.prepare`). ``levels_from`` (prepared the
        same way) holds leads independent of the reference, at training the fit and
        validation folds: each categorical input keeps its ``max_levels`` most frequent levels
        there, so the reference shares of those levels are unbiased. Without it, an input with
        more levels than ``max_levels`` has them chosen on every other reference lead and its
        shares measured on the remaining half (unbiased too, but on half the leads: noisier).
        A numeric input that is 0 or 1 there and in ``levels_from`` is a flag, bucketed "no"
        and "yes". ``computed`` names the inputs leadscore computes itself (the activity
        features of event data): no export can change their unit, so no typical size is kept
        for :class:`SizeCheck`, whose advice could not be followed for them (an early as-of
        gives young leads a lead age far below the test fold's, honestly).
        """
        if not isinstance(self.n_bins, int) or self.n_bins < 2:
            raise ValueError("n_bins must be an integer of at least 2")
        if not isinstance(self.max_levels, int) or self.max_levels < 1:
            raise ValueError("max_levels must be an integer of at least 1")
        if len(prepared) == 0:
            raise DataError("no leads to fit a drift reference on", "Fit on the test fold.")
        if levels_from is not None:
            absent = [
                f.name
                for f in features
                if f.kind != "numeric" and f.name not in levels_from.columns
            ]
            if absent:
                raise DataError(
                    f"the leads to choose category levels on lack the model column {absent[0]!r}",
                    "Prepare the training leads with the same model.",
                )
        buckets: dict[str, dict[str, Any]] = {}
        share_rows: dict[str, pd.Series] = {}
        for f in features:
            values = prepared[f.name]
            if f.kind == "numeric":
                x = pd.to_numeric(values, errors="coerce").to_numpy("float64", na_value=np.nan)
                flag = _is_flag(x) and (
                    levels_from is None
                    or f.name not in levels_from.columns
                    or _is_flag(levels_from[f.name].to_numpy("float64", na_value=np.nan))
                )
                edges = [0.0] if flag else _numeric_edges(x, self.n_bins)
                buckets[f.name] = {
                    "kind": "numeric",
                    "edges": edges,
                    "labels": ["no", "yes", MISSING]
                    if flag
                    else _numeric_labels(edges, functools.partial(unit_text, f)),
                    "size": None if f.name in computed else typical_size(x),
                    "size_range": None if f.name in computed else middle_range(x),
                }
                continue
            if levels_from is not None:
                levels = _frequent_levels(levels_from[f.name], self.max_levels)
            elif values.astype("string").nunique(dropna=True) <= self.max_levels:
                levels = _frequent_levels(values, self.max_levels)  # all kept: nothing selected
            else:
                levels = _frequent_levels(values.iloc[0::2], self.max_levels)
                share_rows[f.name] = values.iloc[1::2]
            buckets[f.name] = {
                "kind": "categorical",
                "levels": levels,
                "labels": [*levels, OTHER, MISSING],
            }
        edges = _numeric_edges(np.asarray(probability, dtype="float64"), self.n_bins)
        buckets["probability"] = {
            "kind": "numeric",
            "edges": edges,
            "labels": _numeric_labels(edges, _percent),
        }
        buckets["stage"] = {
            "kind": "categorical",
            "levels": list(STAGES),
            "labels": [*STAGES, OTHER, MISSING],
        }
        self.buckets_ = buckets
        counts = self.counts(prepared, probability, stages)
        for item, rows in share_rows.items():
            size = len(buckets[item]["labels"])
            counts[item] = _counts(_categorical_buckets(rows, buckets[item]["levels"]), size)
        for spec, item_counts in zip(self.buckets_.values(), counts.values(), strict=True):
            n = int(item_counts.sum())
            spec["shares"] = (item_counts / n).tolist()
            spec["n"] = n
        self.n_ = len(prepared)
        return self

    def counts(
        self,
        prepared: pd.DataFrame,
        probability: np.ndarray,
        stages: np.ndarray | Sequence[str],
    ) -> dict[str, np.ndarray]:
        """Leads per bucket of every item; sum the counts of several chunks, then
        :meth:`compare` them."""
        check_is_fitted(self, "buckets_")
        out: dict[str, np.ndarray] = {}
        for item, spec in self.buckets_.items():
            if item == "probability":
                values = pd.Series(np.asarray(probability, dtype="float64"))
            elif item == "stage":
                values = pd.Series(np.asarray(stages).astype(str))
            elif item in prepared.columns:
                values = prepared[item]
            else:
                raise DataError(
                    f"the leads lack the model column {item!r}",
                    "Prepare them with the model that holds this reference.",
                )
            size = len(spec["labels"])
            if spec["kind"] == "numeric":
                out[item] = _counts(_numeric_buckets(values, spec["edges"]), size)
            else:
                out[item] = _counts(_categorical_buckets(values, spec["levels"]), size)
        return out

    def other_values(self, prepared: pd.DataFrame) -> dict[str, dict[str, int]]:
        """Per categorical input, the leads holding each value outside its kept levels (its
        "(other)" bucket); add those of several chunks (:func:`add_value_counts`) and give
        them to :meth:`compare`, which names the largest where "(other)" grew: a new channel
        or campaign is then named, not just counted."""
        check_is_fitted(self, "buckets_")
        out: dict[str, dict[str, int]] = {}
        for item, spec in self.buckets_.items():
            if spec["kind"] != "categorical" or item == "stage" or item not in prepared.columns:
                continue
            text = prepared[item].astype("string").dropna()
            other = text[~text.isin(spec["levels"])]
            if len(other):
                out[item] = {str(k): int(v) for k, v in other.value_counts().items()}
        return out

    def compare(
        self,
        counts: Mapping[str, np.ndarray],
        *,
        labels: Mapping[str, str] | None = None,
        other_values: Mapping[str, Mapping[str, int]] | None = None,
    ) -> pd.DataFrame:
        """One row per item: PSI, status and the bucket that moved most.

        Columns: ``item``, ``label`` (``labels`` maps items to marketer-readable names),
        ``psi``, ``psi_by_chance`` (:func:`psi_by_chance`), ``status``, ``moved_most`` (the
        bucket whose share changed most, a new one first: :func:`_moved_most`),
        ``reference_share`` and ``current_share`` of that bucket, and ``new_values``: for a
        categorical input whose "(other)" share grew (:data:`NEW_VALUES_SHARE`), its largest
        values with their share of today's leads (``other_values``, from
        :meth:`other_values`), or "(other)" without them; empty otherwise. The probability
        and the stage come first, then the inputs by PSI, largest first.
        """
        check_is_fitted(self, "buckets_")
        labels = dict(labels or {})
        labels.setdefault("probability", "Probability of winning")
        labels.setdefault("stage", "Stage")
        rows = []
        for item, spec in self.buckets_.items():
            current = np.asarray(counts[item], dtype="float64")
            reference = np.asarray(spec["shares"], dtype="float64")
            if current.sum() == 0:
                raise DataError("no leads to compare with the reference", "Give open leads.")
            shares = current / current.sum()
            moved = _moved_most(reference, shares)
            psi = population_stability(reference, shares)
            used = int(((reference > 0) | (shares > 0)).sum())
            chance = psi_by_chance(spec["n"], int(current.sum()), used)
            new_values = ""
            if spec["kind"] == "categorical" and item != "stage":
                at = len(spec["levels"])  # the "(other)" bucket
                if _other_grew(float(reference[at]), float(shares[at])):
                    values = (other_values or {}).get(item) or {}
                    new_values = _new_values_text(values, current.sum()) or OTHER
            rows.append(
                {
                    "item": item,
                    "label": labels.get(item, item),
                    "psi": psi,
                    "psi_by_chance": chance,
                    "status": psi_status(psi, 0.0 if math.isnan(chance) else chance),
                    "moved_most": spec["labels"][moved],
                    "reference_share": float(reference[moved]),
                    "current_share": float(shares[moved]),
                    "new_values": new_values,
                }
            )
        frame = pd.DataFrame(rows)
        head = frame["item"].isin(["probability", "stage"])
        inputs = frame[~head].sort_values("psi", ascending=False, kind="stable")
        return pd.concat([frame[head], inputs], ignore_index=True)

    def to_dict(self) -> dict[str, Any]:
        """The fitted reference as JSON-ready values (for model.json)."""
        check_is_fitted(self, "buckets_")
        return {
            "n_bins": self.n_bins,
            "max_levels": self.max_levels,
            "n_": int(self.n_),
            "buckets_": {
                item: {
                    "kind": spec["kind"],
                    **(
                        {"edges": [float(e) for e in spec["edges"]]}
                        if spec["kind"] == "numeric"
                        else {"levels": [str(v) for v in spec["levels"]]}
                    ),
                    **(
                        {"size": None if spec["size"] is None else float(spec["size"])}
                        if "size" in spec
                        else {}
                    ),
                    **(
                        {
                            "size_range": None
                            if spec["size_range"] is None
                            else [float(v) for v in spec["size_range"]]
                        }
                        if "size_range" in spec
                        else {}
                    ),
                    "labels": [str(v) for v in spec["labels"]],
                    "shares": [float(s) for s in spec["shares"]],
                    "n": int(spec["n"]),
                }
                for item, spec in self.buckets_.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftReference:
        """Rebuild a fitted reference written by :meth:`to_dict`, checking its shape."""
        try:
            reference = cls(int(data["n_bins"]), int(data["max_levels"]))
            reference.n_ = int(data["n_"])
            buckets: dict[str, dict[str, Any]] = {}
            for item, spec in data["buckets_"].items():
                kind = spec["kind"]
                labels = [str(v) for v in spec["labels"]]
                shares = [float(s) for s in spec["shares"]]
                if kind == "numeric":
                    cuts = [float(e) for e in spec["edges"]]
                    ok = len(labels) == len(cuts) + 2 and all(
                        a < b for a, b in itertools.pairwise(cuts)
                    )
                    entry: dict[str, Any] = {"kind": kind, "edges": cuts}
                    if "size" in spec:  # absent before it was written
                        size = None if spec["size"] is None else float(spec["size"])
                        if size is not None and not (math.isfinite(size) and size > 0):
                            raise ValueError(f"the typical size of {item!r} is {size!r}")
                        entry["size"] = size
                    if spec.get("size_range") is not None:  # absent before it was written
                        low, high = (float(v) for v in spec["size_range"])
                        if not (math.isfinite(high) and 0 < low <= high):
                            raise ValueError(f"the middle range of {item!r} is {low!r} to {high!r}")
                        entry["size_range"] = (low, high)
                elif kind == "categorical":
                    levels = [str(v) for v in spec["levels"]]
                    ok = len(labels) == len(levels) + 2
                    entry = {"kind": kind, "levels": levels}
                else:
                    raise ValueError(f"unknown bucket kind {kind!r} of {item!r}")
                if not ok or len(shares) != len(labels):
                    raise ValueError(f"the buckets of {item!r} do not fit together")
                if not all(math.isfinite(s) and s >= 0 for s in shares):
                    raise ValueError(f"the shares of {item!r} are not proportions")
                n = int(spec.get("n", reference.n_))  # absent before it was written
                if n < 1:
                    raise ValueError(f"the reference of {item!r} has no leads")
                buckets[str(item)] = {**entry, "labels": labels, "shares": shares, "n": n}
            for item in ("probability", "stage"):
                if item not in buckets:
                    raise ValueError(f"it has no {item!r}")
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ModelError(
                f"drift reference in the model file is damaged ({err})",
                "Retrain the model or restore its model.json.",
            ) from err
        reference.buckets_ = buckets
        return reference


#: A categorical input's "(other)" bucket (values outside the levels kept) that grew by at
#: least this share of today's leads, and at least doubled, holds values new since the test
#: fold: :func:`drift_verdict` names them and advises mapping them or retraining.
NEW_VALUES_SHARE = 0.02
#: Most new values :meth:`DriftReference.compare` names per input.
_NEW_VALUES_SHOWN = 3


def _other_grew(reference: float, current: float) -> bool:
    return current - reference >= NEW_VALUES_SHARE and current >= 2 * reference


def _new_values_text(values: Mapping[str, int], leads: float) -> str:
    """The largest of ``values`` (leads per value) with their share of the ``leads``:
    ``paid_display (11%), trade_fair (2%)``."""
    ranked = sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))[:_NEW_VALUES_SHOWN]
    return ", ".join(f"{value} ({_shown_share(n / leads)})" for value, n in ranked)


def add_value_counts(
    total: dict[str, dict[str, int]], part: Mapping[str, Mapping[str, int]]
) -> dict[str, dict[str, int]]:
    """Add the value counts ``part`` (of one chunk, :meth:`DriftReference.other_values`) to
    ``total`` in place, and return it."""
    for item, values in part.items():
        counted = total.setdefault(item, {})
        for value, n in values.items():
            counted[value] = counted.get(value, 0) + int(n)
    return total


#: A numeric input whose typical size among the leads scored is this many times its size
#: on the reference leads, or this many times smaller, is warned about at scoring: a share
#: exported as ``7`` at training and as ``7%`` (0.07) later moves by 100, an amount switched
#: to thousands by 1,000, while a real change of the leads rarely moves a median this far.
SIZE_SHIFT = 30.0
#: Fewest leads with a non-zero value, on each side, for a typical size to be compared.
MIN_SIZED_VALUES = 30


def _sizes(values: np.ndarray | pd.Series) -> np.ndarray:
    """The absolute values of the finite, non-zero ``values``: what a typical size reads."""
    numbers = pd.to_numeric(pd.Series(values), errors="coerce")
    x = np.abs(numbers.to_numpy("float64", na_value=np.nan))
    return x[np.isfinite(x) & (x > 0)]


def typical_size(values: np.ndarray | pd.Series) -> float | None:
    """The median absolute value of the finite, non-zero ``values``; ``None`` with fewer
    than :data:`MIN_SIZED_VALUES` of them. Zeros are left out since a count is 0 for most
    leads whatever unit its other values are written in."""
    x = _sizes(values)
    return float(np.median(x)) if x.size >= MIN_SIZED_VALUES else None


def middle_range(values: np.ndarray | pd.Series) -> tuple[float, float] | None:
    """The first and third quartiles of the absolute finite, non-zero ``values`` (as
    :func:`typical_size` reads them); ``None`` with fewer than :data:`MIN_SIZED_VALUES`."""
    x = _sizes(values)
    if x.size < MIN_SIZED_VALUES:
        return None
    low, high = np.quantile(x, [0.25, 0.75])
    return float(low), float(high)


def _edge_range(edges: Sequence[float]) -> tuple[float, float] | None:
    """A middle range of a reference saved before :func:`middle_range` was kept: from its
    smallest positive bin edge to its largest (about the 10th to the 90th percentile, wider
    than the quartiles, so it finds a group apart no sooner); ``None`` with fewer than two."""
    positive = [float(e) for e in edges if e > 0]
    return (positive[0], positive[-1]) if len(positive) >= 2 else None


#: A group of at least this share of the leads scored with a non-zero value, lying
#: :data:`SIZE_SHIFT` times or more outside the reference's middle range, is warned about
#: even while the median holds: a unit change of the newest leads' export reaches them first.
FAR_SHARE = 0.1
#: ... and of at least this many values, so that a few mistyped amounts say nothing.
MIN_FAR_VALUES = 10


#: Edges of the log10 bins :class:`SizeCheck` counts values in: 1e-12 to 1e15 in steps of
#: 0.01 decade, so the median it reads is within 2.3% of the exact one.
_SIZE_BINS = np.linspace(-12.0, 15.0, 2701)


def size_histogram(values: np.ndarray | pd.Series) -> np.ndarray:
    """How many of the finite, non-zero ``values`` fall in each log-scale bin of
    :class:`SizeCheck` (:data:`_SIZE_BINS`): counts of two sets of leads add up to those of
    both, so chunks or Spark partitions are counted apart and summed."""
    x = np.log10(_sizes(values))
    return np.histogram(np.clip(x, _SIZE_BINS[0], _SIZE_BINS[-1]), bins=_SIZE_BINS)[0]


class SizeCheck:
    """Holds the typical size of every numeric input of the leads scored, chunk by chunk,
    against its size on the leads a :class:`DriftReference` was fitted on, to catch an
    export that changed units since training.

    Scoring reads ``7%`` as 0.07 and ``7`` as 7, as training did; a column exported as
    ``7`` for training and as ``7%`` today (or an amount now in thousands) is read without
    error, and every score moves without a word. Drift reports (``leadscore report drift``)
    show it too, but only when someone runs them: this check is cheap enough to run on
    every scoring. Each input's non-zero values are counted in log-scale bins
    (:data:`_SIZE_BINS`), every value of every chunk: memory stays fixed, and the median
    does not depend on the order of the chunks (a first slice of the oldest leads would
    read as a shift). Only inputs the reference kept a size for are checked: a reference
    saved before sizes were recorded checks nothing, and neither do inputs leadscore
    computes itself.

    Examples
    --------
    >>> check = SizeCheck(reference)  # doctest: +SKIP
    >>> for prepared in chunks:  # doctest: +SKIP
    ...     check.add(prepared)
    >>> check.warn()  # doctest: +SKIP
    """

    def __init__(self, reference: DriftReference | None) -> None:
        buckets = {} if reference is None else reference.buckets_
        self.sizes = {
            item: float(spec["size"])
            for item, spec in buckets.items()
            if spec["kind"] == "numeric" and spec.get("size") is not None
        }
        self.ranges: dict[str, tuple[float, float]] = {}
        for item in self.sizes:
            kept = buckets[item].get("size_range") or _edge_range(buckets[item]["edges"])
            if kept is not None:
                self.ranges[item] = (float(kept[0]), float(kept[1]))
        self._counts = {item: np.zeros(len(_SIZE_BINS) - 1, dtype=np.int64) for item in self.sizes}

    def add(self, prepared: pd.DataFrame) -> None:
        """Count the non-zero values of one chunk (typed by the model's ``prepare``)."""
        for item in self.sizes:
            if item in prepared.columns:
                self._counts[item] += size_histogram(prepared[item])

    def add_counts(self, item: str, bins: np.ndarray, counts: np.ndarray) -> None:
        """Add ``counts`` values of ``item`` to the bins at positions ``bins``: a
        :func:`size_histogram` counted elsewhere (a Spark partition), as its non-zero bins."""
        np.add.at(self._counts[item], np.asarray(bins, dtype=np.int64), counts)

    def current_size(self, item: str) -> float | None:
        """The typical size of ``item`` among the leads counted so far (the middle of the
        bin holding their median), or ``None`` with fewer than :data:`MIN_SIZED_VALUES`."""
        counts = self._counts[item]
        n = int(counts.sum())
        if n < MIN_SIZED_VALUES:
            return None
        at = int(np.searchsorted(np.cumsum(counts), (n + 1) / 2))
        return float(10 ** ((_SIZE_BINS[at] + _SIZE_BINS[at + 1]) / 2))

    def _far_group(self, item: str) -> tuple[float, int] | None:
        """The typical size and count of the larger group of ``item``'s values lying
        :data:`SIZE_SHIFT` times or more below or above the reference's middle range, where it
        holds :data:`FAR_SHARE` of the non-zero values and :data:`MIN_FAR_VALUES` or more."""
        if item not in self.ranges:
            return None
        counts = self._counts[item]
        n = int(counts.sum())
        low, high = self.ranges[item]
        middles = (_SIZE_BINS[:-1] + _SIZE_BINS[1:]) / 2
        best: tuple[float, int] | None = None
        for side in (
            middles < math.log10(low / SIZE_SHIFT),
            middles > math.log10(high * SIZE_SHIFT),
        ):
            group = np.where(side, counts, 0)
            k = int(group.sum())
            if k < MIN_FAR_VALUES or k < FAR_SHARE * n or (best is not None and k <= best[1]):
                continue
            at = int(np.searchsorted(np.cumsum(group), (k + 1) / 2))
            best = (float(10 ** middles[at]), k)
        return best

    def shifts(self) -> pd.DataFrame:
        """One row per input whose typical size moved :data:`SIZE_SHIFT` times or more, or
        one group of whose values did (:data:`FAR_SHARE` of them, lying that far outside the
        middle half of the reference's): ``item``, ``reference_size``, ``current_size`` (of
        the group), ``ratio`` (current over reference), ``share`` (of the non-zero values in
        the group; 1 where the median of all of them moved) and ``values`` (their count), the
        largest move first.

        The median alone waits until more than half of the leads scored carry a unit change:
        an export that writes company sizes in thousands from one day on reaches the new
        leads only, a sixth of the open ones in a week, and the median moves some six weeks
        later, by a diluted ratio. The group is held to the reference's middle range, not its
        median, so that an input spread over several decades (revenue) is not a group apart.
        """
        columns = ["item", "reference_size", "current_size", "ratio", "share", "values"]
        rows = []
        for item, reference in self.sizes.items():
            current = self.current_size(item)
            if current is None:
                continue
            n = int(self._counts[item].sum())
            ratio = current / reference
            if ratio >= SIZE_SHIFT or ratio <= 1 / SIZE_SHIFT:
                rows.append([item, reference, current, ratio, 1.0, n])
                continue
            far = self._far_group(item)
            if far is not None:
                size, k = far
                rows.append([item, reference, size, size / reference, k / n, k])
        frame = pd.DataFrame(rows, columns=columns)
        order = np.argsort(-np.abs(np.log(frame["ratio"].to_numpy("float64"))), kind="stable")
        return frame.iloc[order].reset_index(drop=True)

    def warn(self) -> None:
        """One warning per input whose typical size moved, for all its values or a group of
        them (:meth:`shifts`)."""
        for row in self.shifts().itertuples(index=False):
            times = row.ratio if row.ratio >= 1 else 1 / row.ratio
            group = (
                f"; {row.values:,} leads, {_shown_share(row.share)} of those scored with a value"
                if row.share < 1
                else ""
            )
            logger.warning(
                "%r is about %s times %s than on the leads the model was tested on (typical "
                "value %s, against %s%s): was the column exported in other units%s (7%% reads "
                "0.07 where 7 read 7; an amount in thousands reads 1,000 times smaller)? "
                "Scores read it as given; write it as the training data did, or retrain on "
                "today's export",
                row.item,
                f"{round(times, 1 - math.floor(math.log10(times))):,.0f}",
                "larger" if row.ratio >= 1 else "smaller",
                _number(row.current_size),
                _number(row.reference_size),
                group,
                " for some leads, such as the newest or one source," if group else "",
            )


def activity_features() -> frozenset[str]:
    """Names of the built-in engagement features, computed from the activity log."""
    from leadscore.features import feature_catalogue

    return frozenset(
        f.name for f in feature_catalogue() if f.group == "engagement" and f.name != "lead_age_days"
    )


def model_data_form(model: Any) -> str:
    """``"events"`` for a model trained on event data, ``"flat"`` for one trained on a flat
    table described by a spec: as recorded at training (``data_form``), else, for a model
    saved before that record, guessed from its features (event models hold most of the
    built-in engagement features; a flat table made of those features would be guessed
    wrong, which is why the record exists).

    Here rather than in :mod:`leadscore.scoring`: the logged pyfunc reads it, and its
    requirements cover the model's modules, not the scorer's (its progress bars).
    """
    recorded = model.metadata.get("data_form")
    if recorded in ("events", "flat"):
        return str(recorded)
    built_in = activity_features()
    shared = sum(f.name in built_in for f in model.features)
    return "events" if shared * 2 > len(built_in) else "flat"


def computed_inputs(features: Sequence[Feature], data_form: str | None) -> list[str]:
    """The inputs leadscore computes itself rather than reads from the user's columns: an
    event model's activity features. No export changes their unit or empties them, so the
    size and empty checks leave them out (an early as-of honestly gives young leads a lead
    age far below the test fold's, and a recency is missing for leads without activity)."""
    return [f.name for f in features if data_form == "events" and f.group == "engagement"]


#: An input missing for at least this share of the leads scored is warned about at scoring
#: (:class:`EmptyCheck`) ...
EMPTY_SHARE = 0.95
#: ... when it was missing for at most this share of the reference leads: a column that was
#: often empty then (a survey answer) says little when it is empty today.
GIVEN_SHARE = 0.5
#: Fewest leads scored for :class:`EmptyCheck` to speak: a small batch of new leads may
#: honestly lack a value (no e-mail sent yet, a form without the field); an export of a
#: hundred leads or more without it says more.
MIN_EMPTY_LEADS = 100
#: Category values that mean "not known": leadscore's own readings write an absent job title
#: or e-mail so (``unknown`` seniority, ``missing`` e-mail kind), and reasons read them as
#: missing (:func:`leadscore.reasons.category_text`).
_NOT_KNOWN = frozenset({"unknown", "missing"})


def missing_mask(values: pd.Series) -> np.ndarray:
    """Which ``values`` are missing: NaN, or a category that means "not known"."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        words = values.cat.categories.astype(str).str.strip().str.lower()
        not_known = np.append(np.isin(words, list(_NOT_KNOWN)), True)  # code -1: missing
        return not_known[values.cat.codes.to_numpy()]
    return values.isna().to_numpy()


def _reference_missing(spec: Mapping[str, Any]) -> float:
    """Share of the reference leads an input was missing for (:func:`missing_mask`)."""
    return float(
        sum(
            share
            for label, share in zip(spec["labels"], spec["shares"], strict=True)
            if label == MISSING or (spec["kind"] == "categorical" and label.lower() in _NOT_KNOWN)
        )
    )


class EmptyCheck:
    """Holds how often each input of the leads scored is missing against the leads a
    :class:`DriftReference` was fitted on, to catch a column that came empty.

    A column that an export view dropped, or one filled in only when a lead closes (a sales
    cycle length, a close reason), is present but empty for every open lead. A column that is
    absent stops scoring with an error; an empty one is read as "not given", which is no
    error, and every score moves without a word (a close-time column also leaked the outcome
    into training, where it was always given). Drift reports show it, but only when someone
    runs them; this check counts missing values on every scoring, chunk by chunk, and warns
    once per input missing for :data:`EMPTY_SHARE` or more of the leads scored that was
    missing for at most :data:`GIVEN_SHARE` of the reference leads.

    ``computed`` names the inputs leadscore computes itself (:func:`computed_inputs`), which
    are not checked: a recency is honestly missing for every lead without that activity.
    """

    def __init__(self, reference: DriftReference | None, computed: Collection[str] = ()) -> None:
        buckets = {} if reference is None else reference.buckets_
        missing = {
            item: _reference_missing(spec)
            for item, spec in buckets.items()
            if item not in ("probability", "stage") and item not in computed
        }
        self.given = {item: 1.0 - share for item, share in missing.items() if share <= GIVEN_SHARE}
        self.rows = 0
        self._missing = dict.fromkeys(self.given, 0)

    def add(self, prepared: pd.DataFrame) -> None:
        """Count the missing values of one chunk (typed by the model's ``prepare``)."""
        self.rows += len(prepared)
        for item in self.given:
            if item in prepared.columns:
                self._missing[item] += int(missing_mask(prepared[item]).sum())

    def add_counts(self, rows: int, missing: Mapping[str, int]) -> None:
        """Add leads counted elsewhere (a Spark partition): ``rows`` leads, of which
        ``missing[item]`` lack ``item``."""
        self.rows += int(rows)
        for item, n in missing.items():
            if item in self._missing:
                self._missing[item] += int(n)

    def empties(self) -> pd.DataFrame:
        """One row per input missing for :data:`EMPTY_SHARE` or more of the leads counted:
        ``item``, ``reference_given`` (share given on the reference leads), ``missing`` and
        ``rows``, the emptiest first."""
        rows = []
        if self.rows >= MIN_EMPTY_LEADS:
            for item, given in self.given.items():
                if self._missing[item] >= EMPTY_SHARE * self.rows:
                    rows.append(
                        {
                            "item": item,
                            "reference_given": given,
                            "missing": self._missing[item],
                            "rows": self.rows,
                        }
                    )
        frame = pd.DataFrame(rows, columns=["item", "reference_given", "missing", "rows"])
        return frame.sort_values("missing", ascending=False, kind="stable", ignore_index=True)

    def warn(self, scored: int | None = None) -> None:
        """One warning per input that came empty (:meth:`empties`). ``scored``: the leads
        scored, where the leads counted were a random sample of them."""
        for row in self.empties().itertuples(index=False):
            if scored is not None and scored > row.rows:
                share = (
                    f"{_shown_share(row.missing / row.rows)} of a random {row.rows:,} of the "
                    f"{scored:,}"
                )
            elif row.missing == row.rows:
                share = f"all {row.rows:,}"
            else:
                share = f"{_shown_share(row.missing / row.rows)} of the {row.rows:,}"
            logger.warning(
                "%r is empty for %s leads scored, but was given for %s of the leads the "
                "model was tested on: a column left empty in this export, leads that cannot "
                "have it yet (new leads, a form without the field), or one filled in only "
                "when a lead closes (then it leaks the outcome: exclude it and retrain)? "
                "Scores read it as not given",
                row.item,
                share,
                _shown_share(row.reference_given),
            )


#: An activity input that was above 0 for at least this share of the reference leads ...
ACTIVE_SHARE = 0.2
#: ... and is above 0 for at most this share of the leads scored (at least
#: :data:`MIN_EMPTY_LEADS` of them) is warned about (:class:`ActivityCheck`).
QUIET_SHARE = 0.02


def _reference_active(spec: Mapping[str, Any]) -> float:
    """The share of the reference leads whose value was given and not 0, as far as the bins
    tell (at least this many: a bin holding 0 and other values counts as all 0)."""
    edges = list(spec["edges"])
    if not edges:
        return 0.0
    lower = [-math.inf, *edges]
    upper = [*edges, math.inf]
    return float(
        sum(
            share
            for low, high, share in zip(lower, upper, spec["shares"][: len(edges) + 1], strict=True)
            if low >= 0 or high < 0
        )
    )


#: The built-in inputs that count activity of any kind over the 90 days the event reader
#: looks at for its own warning (:func:`leadscore.scoring.event_feature_chunks`): 0 for every
#: lead is that warning's case, the whole log silent for 90 days.
ANY_RECENT_ACTIVITY = ("activities_90d", "active_days_90d")


class ActivityCheck:
    """Holds how many leads scored show each activity input above 0 against the leads a
    :class:`DriftReference` was fitted on, to catch an activity that stopped being tracked.

    When the website's tracking script is removed or the connector of one activity type
    fails, its counts read 0 for every lead: no error, no missing value (none of leadscore's
    own activity sums is ever missing), and the scores of every lead fall without a word.
    :class:`EmptyCheck` and :class:`SizeCheck` leave those inputs out, since an empty recency
    or a young lead's small lead age is honest. This check counts, chunk by chunk, the leads
    with a value above 0 of each engagement input that at least :data:`ACTIVE_SHARE` of the
    reference leads had above 0, and warns once per activity (a ``fact``: the visits, pages
    and time of the website together) whose inputs are above 0 for at most
    :data:`QUIET_SHARE` of :data:`MIN_EMPTY_LEADS` or more leads scored.

    Examples
    --------
    >>> check = ActivityCheck(reference, model.features)  # doctest: +SKIP
    >>> for prepared in chunks:  # doctest: +SKIP
    ...     check.add(prepared)
    >>> check.warn()  # doctest: +SKIP
    """

    def __init__(
        self,
        reference: DriftReference | None,
        features: Sequence[Feature],
        *,
        whole_log_checked: bool = False,
    ) -> None:
        self.whole_log_checked = whole_log_checked
        buckets = {} if reference is None else reference.buckets_
        self.features = {
            f.name: f
            for f in features
            if f.group == "engagement"
            and f.kind == "numeric"
            and f.name != "lead_age_days"
            and buckets.get(f.name, {}).get("kind") == "numeric"
        }
        self.active = {
            name: share
            for name in self.features
            if (share := _reference_active(buckets[name])) >= ACTIVE_SHARE
        }
        self.rows = 0
        self._active = dict.fromkeys(self.active, 0)

    def add(self, prepared: pd.DataFrame) -> None:
        """Count the leads of one chunk (typed by the model's ``prepare``) with each input
        given and not 0."""
        self.rows += len(prepared)
        for item in self.active:
            if item in prepared.columns:
                x = pd.to_numeric(prepared[item], errors="coerce")
                self._active[item] += int((x.notna() & (x != 0)).sum())

    def add_counts(self, rows: int, active: Mapping[str, int]) -> None:
        """Add leads counted elsewhere (a Spark partition): ``rows`` leads, of which
        ``active[item]`` have ``item`` above 0."""
        self.rows += int(rows)
        for item, n in active.items():
            if item in self._active:
                self._active[item] += int(n)

    def counts(self) -> dict[str, int]:
        """The leads counted so far with each checked input above 0 (for
        :meth:`add_counts` on the driver, when a Spark worker did the counting)."""
        return dict(self._active)

    def quiet(self) -> pd.DataFrame:
        """One row per input above 0 for at most :data:`QUIET_SHARE` of the leads counted:
        ``item``, ``label``, ``activity`` (its ``fact``, else the item), ``reference_active``
        (its share above 0 on the reference leads), ``active`` and ``rows``; the most active
        then first."""
        columns = ["item", "label", "activity", "reference_active", "active", "rows"]
        rows = []
        if self.rows >= MIN_EMPTY_LEADS:
            for item, then in self.active.items():
                if self._active[item] <= QUIET_SHARE * self.rows:
                    feature = self.features[item]
                    rows.append(
                        [
                            item,
                            feature.label,
                            feature.fact or item,
                            then,
                            self._active[item],
                            self.rows,
                        ]
                    )
        frame = pd.DataFrame(rows, columns=columns)
        return frame.sort_values(
            "reference_active", ascending=False, kind="stable", ignore_index=True
        )

    def warn(self, scored: int | None = None) -> None:
        """One warning per activity whose inputs went quiet (:meth:`quiet`), naming the input
        most leads had above 0 on the reference leads and counting the others. ``scored``:
        the leads scored, where the leads counted were a random sample of them.

        With ``whole_log_checked`` (event data, whose reader warns once when the open leads
        have no activity at all in the 90 days before the as-of), nothing when an input of
        :data:`ANY_RECENT_ACTIVITY` is 0 for every lead: that is the reader's case, and its one
        line says so rather than one line per activity here. Activity that merely went quiet
        (a connector that died ten days ago, the website's tracking alone) is named here."""
        quiet = self.quiet()
        silent = quiet[quiet["item"].isin(ANY_RECENT_ACTIVITY) & (quiet["active"] == 0)]
        if self.whole_log_checked and len(silent):
            return
        for _, group in quiet.groupby("activity", sort=False):
            first = group.iloc[0]
            if scored is not None and scored > first["rows"]:
                now = (
                    f"above 0 for {_shown_share(first['active'] / first['rows'])} of a random "
                    f"{first['rows']:,} of the {scored:,}"
                )
            elif first["active"] == 0:
                now = f"0 for all {first['rows']:,}"
            else:
                now = (
                    f"above 0 for {_shown_share(first['active'] / first['rows'])} of the "
                    f"{first['rows']:,}"
                )
            also = [repr(label) for label in group["label"].tolist()[1:]]
            logger.warning(
                "%r is %s leads scored, but was above 0 for %s of the leads the model was "
                "tested on%s: has the tracking of this activity, or its export, stopped (a "
                "website tracking script removed, a connector failing)? Scores read it as no "
                "activity and fall for every lead: check the tracking and the export before "
                "trusting these scores or retraining on them",
                first["label"],
                now,
                _shown_share(first["reference_active"]),
                f" (so {'is' if len(also) == 1 else 'are'} {shortened_list(also, 3)})"
                if also
                else "",
            )


def _shown_share(share: float) -> str:
    """A share as a whole percentage that never rounds to 0% or 100% unless it is."""
    shown = round(100 * share)
    if 0 < share < 1:
        shown = min(max(shown, 1), 99)
    return f"{shown}%"


# --------------------------------------------------------------------------- back-test


def event_outcomes(
    history: pd.DataFrame,
    outcomes: pd.DataFrame,
    observed_until: pd.Timestamp,
    horizon_days: int,
) -> pd.DataFrame:
    """``history`` with the event-form label of each scored row and whether its run is done.

    ``won`` is 1 when the lead was won within ``horizon_days`` after the run's as-of (and by
    ``observed_until``), else 0; ``complete`` says the run's window had ended by
    ``observed_until``, so its zeros are final. Rows of leads already closed at their run's
    as-of are dropped (a scorer given stale data scored them; they say nothing of the model).
    """
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, int) or horizon_days < 1:
        raise DataError(
            f"horizon_days must be a whole number of days of at least 1, got {horizon_days!r}",
            "Give the horizon the model was trained with, e.g. 90.",
        )
    horizon = pd.Timedelta(days=horizon_days)
    by_lead = outcomes.drop_duplicates("lead_id", keep="last").set_index("lead_id")
    ids = history["lead_id"].astype(str)
    by_lead.index = by_lead.index.astype(str)
    outcome = by_lead.reindex(ids)
    closed_at = pd.to_datetime(outcome["closed_at"]).to_numpy()
    as_of = pd.to_datetime(history["as_of"]).to_numpy()
    end = as_of + horizon.to_timedelta64()
    known = np.minimum(end, np.datetime64(observed_until))
    was_closed = closed_at <= as_of
    won = (outcome["outcome"].to_numpy() == "won") & (closed_at > as_of) & (closed_at <= known)
    out = history.loc[~was_closed].copy()
    out["won"] = won[~was_closed].astype("float64")
    out["complete"] = end[~was_closed] <= np.datetime64(observed_until)
    out["window_ends"] = pd.to_datetime(end[~was_closed])
    if was_closed.any():
        logger.info(
            "left out %s scored row(s) of leads already closed at their run's as-of",
            f"{int(was_closed.sum()):,}",
        )
    return out


def flat_outcomes(history: pd.DataFrame, labels: pd.Series) -> pd.DataFrame:
    """``history`` with each lead's label now (``labels``: 0/1 by lead id; leads without one
    are still open, ``won`` NaN); a flat run is never complete while some of its leads are
    open."""
    known = labels.copy()
    known.index = known.index.astype(str)
    known = known[~known.index.duplicated(keep="last")]
    out = history.copy()
    out["won"] = known.reindex(out["lead_id"].astype(str)).to_numpy(dtype="float64")
    out["complete"] = out.groupby(list(RUN_KEY), dropna=False)["won"].transform(
        lambda w: bool(w.notna().all())
    )
    out["window_ends"] = pd.NaT
    return out


def backtest_runs(
    labelled: pd.DataFrame, *, by: str | None = None, min_resolved: int = 30
) -> pd.DataFrame:
    """One row per scoring run (and value of the column ``by`` of ``labelled``, such as the
    channel): how its scores and stages did against the outcomes.

    ``labelled`` is the history with ``won`` and ``complete`` (:func:`event_outcomes` or
    :func:`flat_outcomes`). A run's metrics use its resolved leads: all of them once complete;
    for event data nothing before (``pending`` leads, ``won`` so far); for flat data the
    leads with a label, with ``resolved_share`` beside them. Metrics need ``min_resolved``
    resolved leads and both outcomes; otherwise they are empty.

    Columns: the run key (``as_of``, ``model_name``, ``model_version``), ``complete``,
    ``window_ends``, ``scored``, ``resolved``, ``resolved_share``, ``won``,
    ``expected_wins`` (sum of the resolved leads' probabilities: what the model promised),
    ``expected_sd`` (how far the wins of a calibrated model stray from that by chance: one
    standard deviation, a lead's rows sharing one outcome),
    ``conversion``, ``mean_probability``, ``roc_auc``, ``pr_auc``, ``brier``, ``ece``,
    ``ece_by_chance`` (the ECE a perfectly calibrated model stays below 95% of the time on
    these leads, the rows of one lead sharing one outcome draw), ``lift_top_decile``, and
    per stage ``{stage}_scored`` (the run's leads in the stage, resolved or not: the stage
    counts over time, which a run still waiting for its outcomes has too), and, of its
    resolved leads, ``{stage}_count``, ``{stage}_conversion`` and ``{stage}_share_of_wins``;
    last, ``shared_with_previous``: the share of the run's leads that the run before it (of
    the same value of ``by``) scored too. Weekly runs of leads that stay open for months
    share most of them, and a lead's outcome is one draw in every run that holds it, so the
    verdicts of such runs are one piece of evidence, not several (:func:`backtest_verdicts`).
    """
    keys = [*RUN_KEY, *([by] if by else [])]
    required = {*keys, "lead_id", "probability", "stage", "won", "complete"}
    missing = sorted(required - set(labelled.columns))
    if missing:
        raise DataError(
            f"the labelled history lacks column(s) {missing}",
            "Label it with event_outcomes() or flat_outcomes() first.",
        )
    rows = []
    previous: dict[object, frozenset[str]] = {}
    for key, run in labelled.groupby(keys, sort=True, dropna=False):
        leads_scored = frozenset(run["lead_id"].astype(str))
        group = key[-1] if by else None
        before = previous.get(group)
        previous[group] = leads_scored
        complete = bool(run["complete"].all())
        is_event = "window_ends" in run and run["window_ends"].notna().any()
        resolved = run if complete or not is_event else run.iloc[0:0]
        resolved = resolved[resolved["won"].notna()]
        y = resolved["won"].to_numpy(dtype="int64")
        p = resolved["probability"].to_numpy(dtype="float64")
        row: dict[str, Any] = dict(zip(keys, key, strict=True))
        row.update(
            complete=complete,
            window_ends=run["window_ends"].max() if "window_ends" in run else pd.NaT,
            scored=len(run),
            resolved=len(resolved),
            resolved_share=len(resolved) / len(run) if len(run) else math.nan,
            won=int(np.nansum(run["won"].to_numpy(dtype="float64"))),
            expected_wins=float(p.sum()) if len(p) else math.nan,
            expected_sd=_wins_sd(p, resolved["lead_id"]) if len(p) else math.nan,
            conversion=float(y.mean()) if len(y) else math.nan,
            mean_probability=float(p.mean()) if len(p) else math.nan,
        )
        measured = len(y) >= min_resolved and 0 < y.sum() < len(y)
        metrics = evaluate(y, p) if measured else {}
        for name in ("roc_auc", "pr_auc", "brier", "ece", "lift_top_decile"):
            row[name] = metrics.get(name, math.nan)
        # the sinks keep one row per lead per run, which draws as it always has; a history
        # holding a lead twice in a run (files joined by hand) draws its outcome once
        leads = resolved["lead_id"].astype(str).to_numpy()
        row["ece_by_chance"] = ece_by_chance(p, groups=leads)["upper"] if measured else math.nan
        report = stage_report(y, resolved["stage"].astype(str).to_numpy()) if len(y) else {}
        scored = run["stage"].astype(str).value_counts()
        for stage in STAGES:
            part = report.get(stage, {})
            row[f"{stage}_scored"] = int(scored.get(stage, 0))
            row[f"{stage}_count"] = int(part.get("count", 0))
            row[f"{stage}_conversion"] = part.get("conversion_rate", math.nan)
            row[f"{stage}_share_of_wins"] = part.get("share_of_wins", math.nan)
        row["shared_with_previous"] = (
            len(leads_scored & before) / len(leads_scored)
            if before is not None and leads_scored
            else math.nan
        )
        rows.append(row)
    return pd.DataFrame(rows)


def _wins_sd(p: np.ndarray, lead_ids: pd.Series) -> float:
    """Standard deviation of the number of wins leads with probabilities ``p`` bring, each
    lead's rows one outcome (a lead held twice in a run counts its win twice, together)."""
    frame = pd.DataFrame({"lead": lead_ids.astype(str).to_numpy(), "p": p})
    per_lead = frame.groupby("lead", sort=False)["p"].agg(["mean", "size"])
    q = per_lead["mean"].to_numpy()
    return float(np.sqrt(np.sum(per_lead["size"].to_numpy() ** 2 * q * (1 - q))))


#: Standard deviations between the wins a run promised and those that came for the
#: back-test to call the gap more than chance when it compares one run (about 5% of
#: calibrated runs go further); with more, the bar rises (:func:`verdict_sds`).
VERDICT_SDS = 2.0
#: The chance that a back-test of a calibrated model names any run (or group) at all, however
#: many it compares (Bonferroni): 17 weekly runs each held to two standard deviations would
#: name one by chance more often than not.
VERDICT_LEVEL = 0.05
#: Fewest resolved leads a group of a back-test by column needs for a verdict of its own.
VERDICT_MIN_LEADS = 30
#: Runs named beyond chance that share at least this share of their leads with the run
#: before, on average, are read as one signal (:func:`backtest_verdicts`).
SHARED_LEADS = 0.2


def verdict_sds(compared: int) -> float:
    """The standard deviations a gap must pass to be called more than chance when
    ``compared`` runs or groups are judged together: the Bonferroni bound that keeps a
    calibrated model's whole back-test naming any of them by chance to :data:`VERDICT_LEVEL`
    (2.0 for one, 3.0 for 17, 3.5 for 119), and never below :data:`VERDICT_SDS`.

    Examples
    --------
    >>> [round(verdict_sds(m), 1) for m in (1, 17, 119)]
    [2.0, 3.0, 3.5]
    """
    return max(VERDICT_SDS, float(norm.isf(VERDICT_LEVEL / (2 * max(compared, 1)))))


def _next_step(shifted_inputs: Sequence[str] | None) -> str:
    """What to do about a run that broke its promise, as far as the inputs are known: a
    shift of the inputs (a tracking outage, an export change) is fixed in the data feed, and
    retraining on it would teach the model the outage; only on stable inputs does a broken
    promise mean the leads' behaviour means something else now."""
    if shifted_inputs is None:
        return (
            "check `report drift` first (at the run's as-of): retrain on the newer outcomes "
            "only if the inputs are stable (then what a lead's behaviour means for its outcome "
            "changed); a shifted input, such as a tracking outage, is fixed in the data feed, "
            "not by retraining"
        )
    if shifted_inputs:
        return (
            f"the inputs shifted too ({shortened_list(list(shifted_inputs), 3)}): fix the data "
            "feed first, and retrain only once the inputs are stable again (retraining now "
            "would teach the model the broken feed)"
        )
    return (
        "the inputs are stable, so what a lead's behaviour means for its outcome changed: "
        "retrain on the newer outcomes if it persists"
    )


def backtest_verdicts(
    table: pd.DataFrame,
    by: str | None = None,
    *,
    shifted_inputs: Sequence[str] | None = None,
) -> list[str]:
    """One plain sentence per run whose outcomes are in: the wins it promised against those
    that came, and whether the gap is more than a calibrated model shows by chance, since
    an ECE beside its chance band says the same thing to few marketers. A run whose leads
    have not all resolved gets no verdict: the leads that close first are a biased sample.

    The bar for "more than chance" counts the runs (or groups) judged (:func:`verdict_sds`):
    each held to two standard deviations, one in 20 would be named with nothing wrong, and a
    back-test by channel of 17 weekly runs judges over a hundred. Runs named together that
    share most of their leads (``shared_with_previous``, :func:`backtest_runs`) get a last
    line saying they are one signal, not several. ``shifted_inputs``: the inputs a drift
    report found shifted, where the caller knows (an empty list: none); the advice then
    says whether to fix the data feed or to retrain, else it asks for the drift report first
    (:func:`_next_step`). ``report backtest`` passes none: a drift report per run would cost
    it a feature build per as-of, so it always asks; a notebook that ran the drift report can
    pass what it found.

    With ``by`` (a table of :func:`backtest_runs` by that column), one sentence per run and
    value beyond chance, then one counting the others within it, with how many of them passed
    two standard deviations against what chance alone gives: with a run per week and seven
    channels, a sentence each would bury the few that matter."""
    groups = table[by].astype(str).tolist() if by else [None] * len(table)
    days = as_of_labels(table["as_of"])
    judged: list[tuple[int, str, float, Any]] = []  # (position, head, z, row)
    lines: list[tuple[int, str]] = []  # (position in table, sentence)
    for i, (row, group, day) in enumerate(
        zip(table.itertuples(index=False), groups, days, strict=True)
    ):
        expected, sd = row.expected_wins, row.expected_sd
        if group is not None:
            day = f"{day}, {group}"
        if by and (not row.complete or row.resolved < VERDICT_MIN_LEADS):
            # a group of a run still resolving, or of a few leads, judges nothing yet
            continue
        if not row.complete and row.resolved_share < 1:
            # a flat run's leads close over months, the lost ones first: the wins among the
            # resolved ones judge nothing yet (an event run's pending status says so)
            if row.resolved and not by:
                lines.append(
                    (
                        i,
                        f"{day}: {row.resolved_share:.0%} of its leads resolved so far: no "
                        "verdict yet (the leads that close first are mostly the lost ones)",
                    )
                )
            continue
        if pd.isna(expected) or pd.isna(sd) or expected <= 0:
            continue
        gap = (row.won - expected) / expected
        head = f"{day}: {row.won:,} won against {expected:,.1f} expected ({gap:+.0%})"
        z = abs(row.won - expected) / sd if sd > 0 else 0.0
        judged.append((i, head, z, row))
    compared = len(judged)
    bar = verdict_sds(compared)
    kind = f"{by} groups" if by else "runs"
    named: list[Any] = []
    within = near = 0
    for position, head, z, row in judged:
        if z > bar:
            way = (
                "promised more wins than came"
                if row.won < row.expected_wins
                else "promised fewer wins than came"
            )
            why = (
                f"{z:.1f} standard deviations"
                if compared == 1
                else f"{z:.1f} standard deviations, past the {bar:.1f} that chance alone "
                f"reaches in 1 back-test of 20 comparing {compared:,} {kind}"
            )
            lines.append(
                (
                    position,
                    f"{head}: more than chance ({why}); the model {way}: "
                    f"{_next_step(shifted_inputs)}",
                )
            )
            named.append(row)
            continue
        within += 1
        near += z > VERDICT_SDS
        if not by:
            said = f"{head}: within what chance gives a calibrated model"
            if z > VERDICT_SDS:
                said += (
                    f" across {compared:,} runs ({z:.1f} standard deviations, short of {bar:.1f})"
                )
            lines.append((position, said))
    out = [line for _, line in sorted(lines, key=lambda item: item[0])]
    if by and within:
        expected_near = compared * 2 * float(norm.sf(VERDICT_SDS))
        said = (
            f"{'the other ' if named else ''}{within:,} run(s) by {by} with outcomes in: within "
            "what chance gives a calibrated model"
        )
        if near or expected_near >= 1:
            said += (
                f" ({near:,} of them past {VERDICT_SDS:.0f} standard deviations, as chance "
                f"alone puts about {expected_near:.0f} of {compared:,} groups; a group is named "
                f"past {bar:.1f})"
            )
        out.append(said)
    shared = [
        float(row.shared_with_previous)
        for row in named
        if pd.notna(getattr(row, "shared_with_previous", math.nan))
    ]
    if len(named) > 1 and shared and float(np.mean(shared)) >= SHARED_LEADS:
        out.append(
            f"the {len(named):,} {kind} named above share {float(np.mean(shared)):.0%} of their "
            "leads with the run before on average (a lead still open is scored again, with one "
            f"outcome): read them as one signal that lasted, not {len(named):,} independent ones"
        )
    return out


def as_of_labels(as_of: pd.Series) -> list[str]:
    """Runs' as-ofs as people tell them apart: the day, with the time where two runs share a
    day (a flat table scored three times one morning read as three identical runs)."""
    stamps = pd.to_datetime(as_of)
    for fmt in ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"):
        labels = stamps.dt.strftime(fmt)
        if labels.nunique() == stamps.nunique():
            return labels.tolist()
    return labels.tolist()


#: Under the back-test table: what its stage columns count, since ``report channels``
#: counts MQL or SQL as MQLs.
BACKTEST_STAGE_NOTE = (
    "sql_conv: conversion of the leads at SQL; mql_conv: of the leads at MQL alone, not SQL "
    "(report channels counts MQL or SQL as mqls)"
)


def format_backtest(
    table: pd.DataFrame,
    by: str | None = None,
    *,
    shifted_inputs: Sequence[str] | None = None,
) -> str:
    """The back-test as an aligned text table: one line per run (and value of ``by``), the
    figures people read, a note on what the stage columns count, then a plain verdict per
    run whose outcomes are in (:func:`backtest_verdicts`, ``shifted_inputs`` as there)."""
    shown = pd.DataFrame(
        {
            "as_of": as_of_labels(table["as_of"]),
            "model": [
                shown_model(name, str(version))
                for name, version in zip(table["model_name"], table["model_version"], strict=True)
            ],
            **({by: table[by].astype(str)} if by else {}),
            "leads": table["scored"].map("{:,}".format),
            "status": np.where(
                table["complete"],
                "complete",
                np.where(
                    table["window_ends"].notna(),
                    "pending until " + pd.to_datetime(table["window_ends"]).dt.strftime("%Y-%m-%d"),
                    table["resolved_share"].map(lambda v: f"{v:.0%} resolved"),
                ),
            ),
            "won": table["won"].map("{:,}".format),
            "expected": table["expected_wins"].map(lambda v: "-" if pd.isna(v) else f"{v:,.1f}"),
            "roc_auc": table["roc_auc"].map(lambda v: "-" if pd.isna(v) else f"{v:.3f}"),
            "ece": [
                "-" if pd.isna(e) else f"{e:.3f} (chance {c:.3f})"
                for e, c in zip(table["ece"], table["ece_by_chance"], strict=True)
            ],
        }
    )
    for stage in ("sql", "mql"):
        shown[f"{stage}_conv"] = [
            "-" if pd.isna(v) else f"{v:.0%} of {n:,}"
            for v, n in zip(table[f"{stage}_conversion"], table[f"{stage}_count"], strict=True)
        ]
    verdicts = (
        backtest_verdicts(table, by, shifted_inputs=shifted_inputs)
        if "expected_sd" in table
        else []
    )
    return "\n".join(
        [shown.to_string(index=False), BACKTEST_STAGE_NOTE, *([""] if verdicts else []), *verdicts]
    )


def drift_verdict(table: pd.DataFrame) -> str:
    """The drift table in one sentence a marketer acts on: nothing moved beyond chance, or
    which items did, the probability and the stages first since they are what sales sees.
    PSI (population stability index) measures how far the shares of an item's bins moved
    between the test fold and today's leads; below 0.1 is stable, above 0.25 shifted.

    The advice follows the cause: a category that gained values outside the levels the
    reference kept (new, or too rare among the test leads to be kept)
    (``new_values``: a new channel or campaign) is a change of the leads, which no export fix
    undoes, so its values are named, to map or to retrain on; a number or a missing value
    that moved is first a question for the export."""
    moved = table[table["status"] != "stable"]
    if moved.empty:
        return (
            "verdict: no input, score or stage moved beyond what chance gives the same leads "
            "(PSI, how far the shares of each item's bins moved, stable for all): nothing to do "
            "for the inputs (`report backtest` checks the scores against the outcomes)"
        )
    shifted = moved.loc[moved["status"] == "shifted", "label"].tolist()
    watch = moved.loc[moved["status"] == "watch", "label"].tolist()
    parts = []
    if shifted:
        parts.append(f"shifted: {shortened_list(shifted, 5)}")
    if watch:
        parts.append(f"to watch: {shortened_list(watch, 5)}")
    listed = "; ".join(parts)
    fresh = moved["new_values"].fillna("").astype(str) != "" if "new_values" in moved else None
    advice = []
    if fresh is not None and fresh.any():
        named = "; ".join(
            f"{label}: {'values outside those it kept' if values == OTHER else values}"
            for label, values in zip(
                moved.loc[fresh, "label"], moved.loc[fresh, "new_values"], strict=True
            )
        )
        advice.append(
            f"values rare or unknown among the model's test leads came in ({named}): map new "
            "ones to values the model knows, or retrain once their leads have outcomes"
        )
        rest = int((~fresh & ~moved["item"].isin(["probability", "stage"])).sum())
        if rest:
            advice.append(
                f"for the other {rest:,}, check that the export still writes them as before"
            )
    else:
        advice.append("check that the export still writes them as before")
    return (
        f"verdict: {len(moved):,} of {len(table):,} items moved beyond chance ({listed}): "
        f"{'; '.join(advice)}; whether the scores suffered is the back-test's answer once "
        "outcomes come"
    )


def format_drift(table: pd.DataFrame, features: Sequence[Feature] = ()) -> str:
    """The drift comparison as an aligned text table; category codes read as the lead cards
    write them (``c_level`` as "C-level", and with the model's ``features``, a seniority
    ``individual`` as "Individual contributor": :func:`leadscore.reasons.category_words`).
    The table itself, and so the CSV, keeps the codes the data holds.

    The importance column (each input's share of the total split gain) is in whole percents
    that add up to 100% (:func:`leadscore.reports.shown_shares`): rounded one by one, 31
    inputs of real weight read "0%" and the column summed to 96%. A line under the table says
    which importance it is."""
    by_name = {f.name: f for f in features if f.kind != "numeric"}

    def moved_most(item: str, value: object) -> object:
        if item in by_name:
            return category_words(by_name[item], str(value))
        return category_text(str(value)) or value

    shown = table.assign(
        moved_most=[
            moved_most(i, v) for i, v in zip(table["item"], table["moved_most"], strict=True)
        ],
        psi=table["psi"].map(lambda v: f"{v:.3f}"),
        psi_by_chance=table["psi_by_chance"].map(lambda v: "-" if pd.isna(v) else f"{v:.3f}"),
        reference_share=table["reference_share"].map(lambda v: f"{v:.1%}"),
        current_share=table["current_share"].map(lambda v: f"{v:.1%}"),
    )
    columns = [
        "label",
        "psi",
        "psi_by_chance",
        "status",
        "moved_most",
        "reference_share",
        "current_share",
    ]
    note = ""
    if "importance" in shown:
        from leadscore.reports import shown_shares

        shown["importance"] = shown_shares(table["importance"].to_numpy(dtype="float64"))
        columns.append("importance")
        note = (
            "\nimportance: the input's share of the model's total split gain (LightGBM), "
            "rounded so that the column adds up to 100%; <1% is above 0"
        )
    return shown[columns].to_string(index=False) + note
