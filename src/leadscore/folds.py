"""Time-ordered folds: fit | early-stopping valid | calibration | test, oldest to newest.

A lead-scoring model is used on leads that arrive after it was trained, so it is judged the
same way: the newest leads form the test fold, the ones just before them calibrate the
probabilities, the ones before those tell early stopping when to stop, and the oldest are
fitted. A random split would let the model learn from the future and flatter every metric
(conversion rates drift: 33 % to 46 % along the X Education leads).

Examples of the same lead at several as-of dates (event-form data with a label horizon) need
one more step. The label of an example at ``d`` is "won in ``(d, d + horizon]``"; when the same
lead shows up again at ``t < d + horizon`` in a later fold, that later example's outcome is
part of a label the booster learned from, and the booster would be graded (or calibrated) on a
win it was trained on. ``purge="lead"`` (the default) leaves out such later examples: an example
in valid, calibrate or test is dropped when the booster's folds before it (fit; for calibrate
and test, fit and valid, each as kept by the purge) hold the same lead at a date whose window
reaches it: a valid example the purge left out trained nothing, so it purges nothing. The
rule reads
only when the lead was open, never how it ended: dropping the *earlier* example of a lead that
reappears instead would keep the leads that closed quickly, win more often and score higher,
so the booster and its calibration over-predicted open leads by a quarter on synthetic data
with a known truth. ``purge="all"`` drops every example, whatever the lead, whose window
reaches past the next fold's start (it also keeps calendar shocks of a later period out of
earlier labels, at the cost of about ``horizon`` days of data at each boundary), and
``"none"`` keeps everything.

Data without any order gets stratified random folds, ``kind="random"``, and reports say so.

Nothing here reads the examples' positions in the table: ties in the order, and the draw of
random folds, go by lead id, and each fold lists its examples oldest first, ties by lead id.
A CRM export or a query without ``ORDER BY`` gives the same leads in another order, and the
booster's bagging, the calibrator's folds and every seeded sample draw by position, so a
model trained from the same rows in another order would otherwise differ.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from sklearn.model_selection import train_test_split

from leadscore.errors import DataError, SpecError
from leadscore.schema import LabelledDataset

logger = logging.getLogger(__name__)

FoldKind = Literal["time", "sequence", "random"]
PurgeMode = Literal["lead", "all", "none"]
FOLD_NAMES: tuple[str, ...] = ("fit", "valid", "calibrate", "test")


@dataclass(frozen=True)
class Folds:
    """Positions (into the data set's rows) of each fold, each sorted oldest first, ties by
    lead id (by lead id alone for random folds), so that the rows' order in the table does
    not matter.

    Attributes
    ----------
    fit, valid, calibrate, test : integer positions of the examples in each fold.
    kind : ``"time"`` or ``"sequence"`` when ordered by the data's order, ``"random"`` when
        the data has none.
    purged : examples left out of each fold by the purge (see the module docstring), by fold.
    purged_leads : leads the purge left out of each fold altogether (every example of theirs
        in the fold purged), by fold: the capacity policy counts leads, so it scales by them.
    boundaries : first order value of ``valid``, ``calibrate`` and ``test`` (as text).
    span : first and last order value of all the examples (as text), so that a report can
        say when training starts and the test fold ends; empty for random folds.
    """

    fit: np.ndarray
    valid: np.ndarray
    calibrate: np.ndarray
    test: np.ndarray
    kind: FoldKind
    purged: dict[str, int] = field(default_factory=dict)
    purged_leads: dict[str, int] = field(default_factory=dict)
    boundaries: dict[str, str] = field(default_factory=dict)
    span: tuple[str, ...] = ()

    def sizes(self) -> dict[str, int]:
        """Examples per fold."""
        return {name: len(getattr(self, name)) for name in FOLD_NAMES}

    def describe(self) -> str:
        """One line for logs and reports."""
        sizes = ", ".join(f"{k} {v:,}" for k, v in self.sizes().items())
        purged = sum(self.purged.values())
        extra = f", {purged:,} purged" if purged else ""
        starts = "; ".join(f"{k} from {v}" for k, v in self.boundaries.items())
        if self.span:
            starts += f"; examples {self.span[0]} to {self.span[1]}"
        return f"{self.kind} folds: {sizes}{extra}" + (f" ({starts})" if starts else "")


def _check_sizes(test_size: float, calibration_size: float, valid_size: float) -> None:
    for name, value in (
        ("test_size", test_size),
        ("calibration_size", calibration_size),
        ("valid_size", valid_size),
    ):
        if not 0 < value < 1:
            raise SpecError(
                f"folds.{name} must be a share between 0 and 1, got {value}",
                f"Set folds.{name} to e.g. 0.2.",
            )
    if calibration_size + valid_size >= 0.9:
        raise SpecError(
            "folds.calibration_size + valid_size leave under 10 % of the history to fit",
            "Make the held-out folds smaller.",
        )


def _start_of_newest(sorted_order: np.ndarray, n_take: int) -> int:
    """Position in ``sorted_order`` where the newest ``n_take`` examples begin, moved back to
    the first example of a tied value so that ties never straddle two folds."""
    n = len(sorted_order)
    if n == 0:
        return 0
    cut = max(0, n - max(1, n_take))
    value = sorted_order[cut]
    return int(np.searchsorted(sorted_order, value, side="left"))


def _lead_rank(lead_id: pd.Series) -> np.ndarray:
    """Each example's rank among the lead ids (numbers by value, anything else as text): the
    tie-break that makes the folds' rows independent of the table's row order.

    Integer ids are ranked as integers: a float64 holds them exactly only up to 2**53, and
    19-digit CRM record ids or snowflake ids would collapse into a few values, leaving the
    tie-break to the row position again. A missing id ranks as the empty text: pandas keeps
    it missing through ``astype(str)``, and text cannot be sorted with a float NaN."""
    keys: np.ndarray
    if ptypes.is_integer_dtype(lead_id) and not lead_id.isna().any():
        keys = lead_id.to_numpy(dtype=getattr(lead_id.dtype, "numpy_dtype", lead_id.dtype))
    elif ptypes.is_float_dtype(lead_id):
        keys = lead_id.to_numpy(dtype="float64", na_value=np.nan)
    else:
        keys = lead_id.astype(str).fillna("").to_numpy(dtype=object)
    return np.unique(keys, return_inverse=True)[1].reshape(-1)


def _comparable(order: pd.Series) -> np.ndarray:
    if ptypes.is_datetime64_any_dtype(order):
        return order.to_numpy().astype("datetime64[us]")
    return order.to_numpy(dtype="float64")


def time_ordered_folds(
    dataset: LabelledDataset,
    *,
    test_size: float = 0.2,
    calibration_size: float = 0.15,
    valid_size: float = 0.2,
    purge: PurgeMode = "lead",
    random_state: int = 0,
) -> Folds:
    """Split ``dataset`` into fit, valid, calibrate and test folds, oldest to newest.

    Parameters
    ----------
    dataset : the labelled examples.
    test_size : share of examples in the test fold, used when ``dataset.test_from`` is unset
        (then the test fold is every example with ``order >= test_from``).
    calibration_size, valid_size : shares of the examples before the test fold that go to the
        calibration and early-stopping folds (the newest of them). Shares of the history
        rather than of all examples, so that a test_from that leaves little history still
        leaves most of it to fit.
    purge : ``"lead"``, ``"all"`` or ``"none"``; see the module docstring. Applies only when
        ``dataset.horizon_days`` is set and the order is a time.
    random_state : seed of the stratified random folds used when the data has no order.

    Returns
    -------
    Folds
        Ties in ``order`` always fall in one fold, so no later example sits in an earlier fold.
    """
    _check_sizes(test_size, calibration_size, valid_size)
    n = len(dataset.y)
    if dataset.order is None:
        return _random_folds(
            dataset.y, dataset.lead_id, test_size, calibration_size, valid_size, random_state
        )
    order = _comparable(dataset.order)
    if pd.isna(order).any():
        raise DataError(
            "the ordering column has empty values",
            "Give every example an order value (date or number).",
        )
    by_order = np.lexsort((np.arange(n), _lead_rank(dataset.lead_id), order))
    sorted_order = order[by_order]

    if dataset.test_from is not None:
        test_from = (
            np.datetime64(pd.Timestamp(dataset.test_from).as_unit("us"))
            if np.issubdtype(sorted_order.dtype, np.datetime64)
            else float(dataset.test_from)  # type: ignore[arg-type]
        )
        test_start = int(np.searchsorted(sorted_order, test_from, side="left"))
        if test_start >= n:
            raise DataError(
                f"no example is at or after test_from {dataset.test_from}",
                "Move test_from earlier, or leave it out to test on the newest 20 %.",
            )
    else:
        test_start = _start_of_newest(sorted_order, round(test_size * n))
    calib_start = _start_of_newest(sorted_order[:test_start], round(calibration_size * test_start))
    valid_start = _start_of_newest(sorted_order[:calib_start], round(valid_size * test_start))
    cuts = [0, valid_start, calib_start, test_start, n]
    parts = [by_order[a:b] for a, b in itertools.pairwise(cuts)]
    for name, part in zip(FOLD_NAMES, parts, strict=True):
        if len(part) == 0:
            raise DataError(
                f"too little history before the test fold: the {name} fold is empty "
                f"({n:,} examples, {len(np.unique(order)):,} distinct order values)",
                "Give more history, smaller folds (folds.*_size) or a later test_from.",
            )
    kind: FoldKind = "time" if np.issubdtype(order.dtype, np.datetime64) else "sequence"
    purged: dict[str, int] = {}
    purged_leads: dict[str, int] = {}
    if dataset.horizon_days and purge != "none" and kind == "time":
        lead_id = dataset.lead_id.to_numpy()
        before = parts
        parts, purged = _purge(parts, order, lead_id, dataset.horizon_days, purge)
        purged_leads = {
            name: len(set(lead_id[old]) - set(lead_id[new]))
            for name, old, new in zip(FOLD_NAMES, before, parts, strict=True)
        }
        for name, part in zip(FOLD_NAMES, parts, strict=True):
            if len(part) == 0:
                raise DataError(
                    f"the {name} fold is empty after purging label windows of "
                    f"{dataset.horizon_days} days",
                    "Give more history, a shorter horizon, or another folds.purge (lead, none).",
                )
    boundaries = {
        name: _label(sorted_order[c]) for name, c in zip(FOLD_NAMES[1:], cuts[1:4], strict=True)
    }
    span = (_label(sorted_order[0]), _label(sorted_order[-1]))
    fit, valid, calibrate, test = parts
    folds = Folds(
        fit,
        valid,
        calibrate,
        test,
        kind=kind,
        purged=purged,
        purged_leads=purged_leads,
        boundaries=boundaries,
        span=span,
    )
    logger.info("%s", folds.describe())
    return folds


def _label(value: object) -> str:
    """An order value as a reader writes it: ``2018-04-01``, ``2018-04-01 10:30:00``, ``641584``."""
    if isinstance(value, np.datetime64):
        ts = pd.Timestamp(value)
        return str(ts.date()) if ts == ts.normalize() else str(ts)
    number = float(value)  # type: ignore[arg-type]
    return str(int(number)) if number.is_integer() else f"{number:g}"


def _purge(
    parts: list[np.ndarray],
    order: np.ndarray,
    lead_id: np.ndarray,
    horizon_days: int,
    mode: PurgeMode,
) -> tuple[list[np.ndarray], dict[str, int]]:
    horizon = np.timedelta64(int(horizon_days) * 86400, "s").astype("timedelta64[us]")
    window_end = order + horizon
    out: list[np.ndarray] = []
    purged: dict[str, int] = {}
    if mode == "all":
        for k, part in enumerate(parts):
            drop = np.zeros(len(part), dtype=bool)
            if k < len(parts) - 1:
                drop = window_end[part] > order[parts[k + 1]].min()
            purged[FOLD_NAMES[k]] = int(drop.sum())
            out.append(part[~drop])
        return out, purged
    booster_folds = 2  # fit and valid: the rows the booster is fitted or refitted on
    for k, part in enumerate(parts):
        if k == 0:
            purged[FOLD_NAMES[k]] = 0
            out.append(part)
            continue
        # the booster learned only the kept rows: a purged valid example purges nothing
        earlier = np.concatenate(out[: min(k, booster_folds)])
        reach = pd.Series(window_end[earlier], index=lead_id[earlier]).groupby(level=0).max()
        until = pd.Series(lead_id[part]).map(reach).to_numpy()
        seen = ~pd.isna(until)
        drop = np.zeros(len(part), dtype=bool)
        drop[seen] = order[part][seen] < until[seen].astype("datetime64[us]")
        purged[FOLD_NAMES[k]] = int(drop.sum())
        out.append(part[~drop])
    return out, purged


def _random_folds(
    y: np.ndarray,
    lead_id: pd.Series,
    test_size: float,
    calibration_size: float,
    valid_size: float,
    random_state: int,
) -> Folds:
    n = len(y)
    idx = np.lexsort((np.arange(n), _lead_rank(lead_id)))  # drawn by lead id, not position
    rank = np.empty(n, dtype="int64")
    rank[idx] = np.arange(n)

    def by_lead(rows: np.ndarray) -> np.ndarray:
        return rows[np.argsort(rank[rows], kind="stable")]

    def split(pool: np.ndarray, share_of_all: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        take = max(1, round(share_of_all * n))
        labels = y[pool]
        stratify = labels if np.bincount(labels.astype(int), minlength=2).min() >= 2 else None
        rest, held = train_test_split(pool, test_size=take, stratify=stratify, random_state=seed)
        return by_lead(rest), by_lead(held)

    try:
        rest, test = split(idx, test_size, random_state)
        history = len(rest)
        rest, calibrate = split(rest, calibration_size * history / n, random_state + 1)
        fit, valid = split(rest, valid_size * history / n, random_state + 2)
    except ValueError as err:
        raise DataError(
            f"too few examples ({n}) for four folds", "Give more history or smaller folds."
        ) from err
    folds = Folds(fit, valid, calibrate, test, kind="random")
    logger.warning("the data has no order: %s (metrics may be optimistic)", folds.describe())
    return folds
