"""Fit and engagement sub-scores: where a lead's fit and its engagement rank among past leads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from leadscore.errors import DataError, ModelError
from leadscore.schema import Feature

__all__ = ["GROUPS", "NOT_THE_LEADS_DOING", "NOT_THE_LEADS_DOING_WHEN_MISSING", "SubScorer"]

#: Feature groups that get a sub-score, in output order (column ``{group}_score``).
GROUPS: tuple[str, ...] = ("fit", "engagement")

#: Built-in engagement features that are not the lead's doing, left out of the engagement
#: sub-score: how long it has been a lead, and the e-mails marketing sent it. The model reads
#: them beside the behaviour they qualify (three visits in a lead's first week are not three in
#: its first year), but a lead that did nothing must not rank as engaged for being new: with
#: them, a lead without a single activity scored engagement 64 at a day old and 34 at two
#: months (a model of 20,000 synthetic leads).
NOT_THE_LEADS_DOING: frozenset[str] = frozenset({"lead_age_days", "email_sends_90d"})

#: Built-in engagement features that are not the lead's doing where they are missing: the
#: shares of marketing's e-mails a lead opened or clicked, missing where marketing sent none.
#: A lead's own opens count; the model's view of a lead marketing never e-mailed does not. On
#: synthetic data such leads convert more often, and a lead that had done nothing at all
#: ranked more engaged than three leads in four (77) for what marketing had not sent it.
NOT_THE_LEADS_DOING_WHEN_MISSING: frozenset[str] = frozenset(
    {"email_open_rate_90d", "email_click_rate_90d"}
)


class SubScorer(BaseEstimator):
    """Fit and engagement sub-scores: percentiles of each group's log-odds contribution.

    A lead's fit (engagement) strength is the sum of the log-odds contributions of its fit
    (engagement) features: how far what it told us (what it did) moves the model's raw score
    from the base. :meth:`fit` stores the distribution of that sum over the training leads as
    ``n_quantiles`` quantiles; :meth:`transform` places a new lead in it, as an integer 0-100:
    ``fit_score = 80`` reads "a better fit than 80% of past leads".

    Engagement sums what the lead did: the features of :data:`NOT_THE_LEADS_DOING` count in
    neither group, nor do those of :data:`NOT_THE_LEADS_DOING_WHEN_MISSING` for a lead whose
    value is missing (all of them still count in the probability and its reasons). The second
    needs the feature values beside their contributions: :meth:`fit` and :meth:`transform`
    take both.

    Why percentiles: they are comparable between the two groups and between models (a raw
    log-odds sum is neither), stay put when a retrain rescales the model's margins, are
    readable without knowing what a log-odds is, and are not squeezed by the calibrator (the
    groups are scored on log-odds, so the calibrator's slope at a lead's probability does not
    shrink one group's score by the other's). The groups are not wholly apart: where the
    trees split on a fit and an engagement feature together, TreeSHAP shares the interaction
    between them, so a lead's fit score moves a few points with its engagement (a median of 2
    on synthetic leads whose activity was swapped with another lead's).

    Parameters
    ----------
    n_quantiles : quantiles stored per group (101 = every percentile).

    Attributes
    ----------
    columns_ : the model columns, in the order an array passed to :meth:`transform` has them.
    groups_ : group -> names of the model columns in it.
    quantiles_ : group -> ``n_quantiles`` non-decreasing values of the group sum.
    not_counted_when_missing_ : the columns of ``groups_`` that count only where their value
        is given (empty in a model saved before they existed, which then scores as it did).
    """

    def __init__(self, n_quantiles: int = 101) -> None:
        self.n_quantiles = n_quantiles

    @staticmethod
    def _frame(log_odds: pd.DataFrame | np.ndarray, names: Sequence[str]) -> pd.DataFrame:
        if isinstance(log_odds, pd.DataFrame):
            missing = [n for n in names if n not in log_odds.columns]
            if missing:
                raise DataError(
                    f"log-odds contributions lack column {missing[0]!r}",
                    "Pass the log_odds of an explanation of the same model.",
                )
            return log_odds.loc[:, list(names)]
        arr = np.asarray(log_odds, dtype=float)
        if arr.ndim != 2 or arr.shape[1] != len(names):
            raise DataError(
                f"log-odds contributions have shape {arr.shape}, expected (n, {len(names)})",
                "Pass one column per model column, in the model's order.",
            )
        return pd.DataFrame(arr, columns=list(names))

    def _counted(self, frame: pd.DataFrame, values: pd.DataFrame | None) -> pd.DataFrame:
        """``frame`` with the contributions that do not count set to 0: those of
        ``not_counted_when_missing_`` where the lead's value is missing."""
        names = self.not_counted_when_missing_
        if not names:
            return frame
        if values is None:
            raise ValueError(
                f"the sub-scorer needs the feature values beside their contributions "
                f"({', '.join(names)} count only where given): pass values"
            )
        missing = [n for n in names if n not in values.columns]
        if missing or len(values) != len(frame):
            raise DataError(
                f"feature values lack column {missing[0]!r}"
                if missing
                else f"{len(values)} rows of feature values for {len(frame)} contributions",
                "Pass the values the contributions were computed from (Explanation.values).",
            )
        absent = values[names].isna().to_numpy()
        counted = frame.copy()
        counted[names] = np.where(absent, 0.0, frame[names].to_numpy(dtype=float))
        return counted

    def fit(
        self,
        log_odds_contribs: pd.DataFrame | np.ndarray,
        features: Sequence[Feature],
        values: pd.DataFrame | None = None,
    ) -> SubScorer:
        """Learn each group's distribution on the training leads' log-odds contributions
        (``values``: the feature values they are of, needed where a group holds a column of
        :data:`NOT_THE_LEADS_DOING_WHEN_MISSING`)."""
        if not isinstance(self.n_quantiles, int) or self.n_quantiles < 2:
            raise ValueError("n_quantiles must be an integer of at least 2")
        self.columns_: list[str] = [f.name for f in features]
        frame = self._frame(log_odds_contribs, self.columns_)
        if len(frame) == 0:
            raise DataError("no leads to fit sub-scores on", "Fit on the training leads.")
        levels = np.linspace(0.0, 1.0, self.n_quantiles)
        self.groups_: dict[str, list[str]] = {}
        self.quantiles_: dict[str, list[float]] = {}
        for group in GROUPS:
            self.groups_[group] = [
                f.name for f in features if f.group == group and f.name not in NOT_THE_LEADS_DOING
            ]
        # engagement only: a flat spec may put such a column in its fit group, where it is
        # what the lead told us and counts as given
        self.not_counted_when_missing_: list[str] = [
            name for name in self.groups_["engagement"] if name in NOT_THE_LEADS_DOING_WHEN_MISSING
        ]
        frame = self._counted(frame, values)
        for group, names in self.groups_.items():
            sums = frame[names].to_numpy(dtype=float).sum(axis=1)
            q = np.quantile(sums, levels) if names else np.zeros(0)
            self.quantiles_[group] = np.maximum.accumulate(q).tolist() if names else []
        return self

    def transform(
        self, log_odds_contribs: pd.DataFrame | np.ndarray, values: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """``fit_score`` and ``engagement_score`` (nullable Int64, 0-100) of every lead
        (``values`` as in :meth:`fit`).

        A group without features scores ``<NA>``. Ties within the stored quantiles score the
        middle of their range, so the score is non-decreasing in the group sum.
        """
        check_is_fitted(self, "quantiles_")
        frame = self._counted(self._frame(log_odds_contribs, self.columns_), values)
        out = {}
        for group in GROUPS:
            q = np.asarray(self.quantiles_[group], dtype=float)
            if q.size == 0:
                out[f"{group}_score"] = pd.array([pd.NA] * len(frame), dtype="Int64")
                continue
            sums = frame[self.groups_[group]].to_numpy(dtype=float).sum(axis=1)
            pct = _percentile(sums, q)
            out[f"{group}_score"] = pd.array(np.rint(pct), dtype="Float64").astype("Int64")
        return pd.DataFrame(out, index=frame.index)

    def to_dict(self) -> dict[str, Any]:
        """The fitted sub-scorer as plain JSON-ready values (for model.json)."""
        check_is_fitted(self, "quantiles_")
        return {
            "n_quantiles": self.n_quantiles,
            "columns_": list(self.columns_),
            "groups_": {g: list(v) for g, v in self.groups_.items()},
            "quantiles_": {g: [float(x) for x in v] for g, v in self.quantiles_.items()},
            "not_counted_when_missing_": list(self.not_counted_when_missing_),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], columns: Sequence[str] | None = None) -> SubScorer:
        """Rebuild a fitted sub-scorer written by :meth:`to_dict`; ``columns``: the model's
        feature names, in order, which its ``columns_`` must be.

        Every value is checked, as :meth:`fit` makes it: quantiles out of order, of another
        count or for a column the model does not have had loaded and given every lead a wrong
        or empty sub-score without a word.
        """

        def damaged(what: str) -> ModelError:
            return ModelError(
                f"the sub-scorer in the model file is damaged: {what}",
                "Retrain the model or restore its model.json as it was saved.",
            )

        def names(value: object, what: str) -> list[str]:
            if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
                raise damaged(f"{what} is not a list of column names")
            if len(set(value)) != len(value):
                raise damaged(f"{what} names a column twice")
            return list(value)

        if not isinstance(data, Mapping):
            raise damaged(f"it is {type(data).__name__}, not a mapping")
        for key in ("n_quantiles", "columns_", "groups_", "quantiles_"):
            if key not in data:
                raise ModelError(
                    f"sub-scorer in the model file is incomplete (no {key!r})",
                    "Retrain the model or restore its model.json.",
                )
        n_quantiles = data["n_quantiles"]
        if not isinstance(n_quantiles, int) or isinstance(n_quantiles, bool) or n_quantiles < 2:
            raise damaged(f"n_quantiles {n_quantiles!r} is not a whole number of at least 2")
        scorer = cls(n_quantiles)
        scorer.columns_ = names(data["columns_"], "columns_")
        if columns is not None and scorer.columns_ != list(columns):
            if len(scorer.columns_) != len(columns):
                raise damaged(
                    f"it has {len(scorer.columns_)} columns where the model has "
                    f"{len(columns)} features"
                )
            j, held = next((j, n) for j, n in enumerate(scorer.columns_) if n != columns[j])
            raise damaged(f"its column {j + 1} is {held!r} where the model's is {columns[j]!r}")
        groups, quantiles = data["groups_"], data["quantiles_"]
        for key, value in (("groups_", groups), ("quantiles_", quantiles)):
            if not isinstance(value, Mapping) or set(value) != set(GROUPS):
                raise damaged(f"{key} does not hold exactly the groups {', '.join(GROUPS)}")
        scorer.groups_, scorer.quantiles_ = {}, {}
        for group in GROUPS:
            members = names(groups[group], f"the {group} group")
            unknown = [n for n in members if n not in scorer.columns_]
            if unknown:
                raise damaged(f"the {group} group holds {unknown[0]!r}, which is no column")
            twice = [n for n in members if any(n in g for g in scorer.groups_.values())]
            if twice:
                raise damaged(f"{twice[0]!r} is in more than one group")
            scorer.groups_[group] = members
            values = quantiles[group]
            if not isinstance(values, list) or not all(
                isinstance(x, int | float) and not isinstance(x, bool) for x in values
            ):
                raise damaged(f"the {group} quantiles are not a list of numbers")
            try:
                q = np.asarray(values, dtype=float)
            except OverflowError:  # a whole number of hundreds of digits
                q = np.full(len(values), np.inf)
            wanted_size = n_quantiles if members else 0
            if q.size != wanted_size:
                raise damaged(
                    f"the {group} group holds {q.size} quantiles, not {wanted_size}"
                    + ("" if members else " (it has no columns)")
                )
            if not np.isfinite(q).all():
                raise damaged(f"the {group} quantiles hold a value that is not finite")
            if (np.diff(q) < 0).any():
                raise damaged(f"the {group} quantiles are not in increasing order")
            scorer.quantiles_[group] = q.tolist()
        scorer.not_counted_when_missing_ = names(
            data.get("not_counted_when_missing_", []), "not_counted_when_missing_"
        )
        outside = [n for n in scorer.not_counted_when_missing_ if n not in groups["engagement"]]
        if outside:
            raise damaged(
                f"not_counted_when_missing_ holds {outside[0]!r}, which is no engagement column"
            )
        return scorer


def _percentile(values: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Empirical CDF (0-100) from stored quantiles, mid-rank at ties, linear in between;
    NaN where a value is not finite."""
    finite = np.isfinite(values)
    if not finite.all():
        out = np.full(values.shape, np.nan)
        out[finite] = _percentile(values[finite], quantiles)
        return out
    levels = np.linspace(0.0, 100.0, quantiles.size)
    u, first = np.unique(quantiles, return_index=True)
    last = np.searchsorted(quantiles, u, side="right") - 1
    lo, hi = levels[first], levels[last]
    j = np.searchsorted(u, values, side="right") - 1
    out = np.empty(values.shape, dtype=float)
    below, above = j < 0, (j >= u.size - 1) & (values > u[-1])
    out[below], out[above] = 0.0, 100.0
    at = ~below & ~above & (values == u[np.clip(j, 0, u.size - 1)])
    out[at] = (lo[j[at]] + hi[j[at]]) / 2
    mid = ~below & ~above & ~at
    jm = j[mid]
    t = (values[mid] - u[jm]) / (u[jm + 1] - u[jm])
    out[mid] = hi[jm] + t * (lo[jm + 1] - hi[jm])
    return np.clip(out, 0.0, 100.0)
