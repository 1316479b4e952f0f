"""Time-ordered folds: order respected, ties kept together, label windows purged."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadscore.errors import DataError, SpecError
from leadscore.folds import FOLD_NAMES, Folds, time_ordered_folds
from leadscore.schema import Feature, LabelledDataset


def _dataset(
    order: pd.Series | None,
    *,
    lead_id: list[str] | None = None,
    horizon_days: int | None = None,
    test_from: object | None = None,
    seed: int = 0,
) -> LabelledDataset:
    n = len(order) if order is not None else 500
    rng = np.random.default_rng(seed)
    return LabelledDataset(
        name="t",
        X=pd.DataFrame({"x": rng.normal(size=n)}),
        y=(rng.random(n) < 0.3).astype(int),
        lead_id=pd.Series(lead_id if lead_id is not None else [f"l{i}" for i in range(n)]),
        order=order,
        features=(Feature("x", "fit", "x", "numeric"),),
        horizon_days=horizon_days,
        test_from=test_from,
    )


def _assert_time_ordered(folds: Folds, order: np.ndarray) -> None:
    for earlier, later in itertools.pairwise(FOLD_NAMES):
        assert order[getattr(folds, earlier)].max() < order[getattr(folds, later)].min()


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.integers(0, 60), min_size=80, max_size=300),
    test_size=st.floats(0.1, 0.3),
    calibration_size=st.floats(0.1, 0.3),
    valid_size=st.floats(0.1, 0.3),
)
def test_no_later_example_lands_before_an_earlier_one(
    values: list[int], test_size: float, calibration_size: float, valid_size: float
) -> None:
    order = pd.Series(np.asarray(values, dtype="float64"))
    try:
        folds = time_ordered_folds(
            _dataset(order),
            test_size=test_size,
            calibration_size=calibration_size,
            valid_size=valid_size,
        )
    except DataError as err:  # heavy ties can leave a fold empty: said, never mis-ordered
        assert "fold is empty" in str(err)
        return
    _assert_time_ordered(folds, order.to_numpy())
    everything = np.concatenate([getattr(folds, n) for n in FOLD_NAMES])
    assert sorted(everything) == list(range(len(order)))  # a partition: nothing lost or twice


def test_shares_of_sequence_folds() -> None:
    order = pd.Series(np.random.default_rng(0).permutation(1000).astype(float))
    folds = time_ordered_folds(
        _dataset(order), test_size=0.2, calibration_size=0.25, valid_size=0.125
    )
    assert folds.kind == "sequence"
    assert folds.sizes() == {"fit": 500, "valid": 100, "calibrate": 200, "test": 200}
    assert order[folds.test].min() == 800


def test_test_from_decides_the_test_fold() -> None:
    order = pd.Series(pd.date_range("2018-01-01", periods=400, freq="D"))
    folds = time_ordered_folds(_dataset(order, test_from=pd.Timestamp("2018-10-01")))
    assert folds.kind == "time"
    assert order[folds.test].min() == pd.Timestamp("2018-10-01")
    assert len(folds.test) == (order >= "2018-10-01").sum()
    assert folds.boundaries["test"].startswith("2018-10-01")
    assert folds.span == ("2018-01-01", "2019-02-04")  # the first and last of 400 days
    assert "examples 2018-01-01 to 2019-02-04" in folds.describe()
    with pytest.raises(DataError, match="no example is at or after test_from"):
        time_ordered_folds(_dataset(order, test_from=pd.Timestamp("2030-01-01")))


def test_random_folds_without_order_are_stratified_and_said_to_be_random() -> None:
    folds = time_ordered_folds(_dataset(None))
    assert folds.kind == "random"
    assert "random" in folds.describe() and folds.span == ()
    y = _dataset(None).y
    for name in FOLD_NAMES:
        assert abs(y[getattr(folds, name)].mean() - y.mean()) < 0.05
    assert len(set(np.concatenate([getattr(folds, n) for n in FOLD_NAMES]))) == 500


def _snapshots(
    n_leads: int = 60, n_dates: int = 12, every: int = 30
) -> tuple[pd.Series, list[str]]:
    dates = pd.date_range("2023-01-01", periods=n_dates, freq=f"{every}D")
    order = pd.Series(np.repeat(dates.to_numpy(), n_leads))
    leads = [f"l{i}" for i in range(n_leads)] * n_dates
    return order, leads


def test_lead_purge_keeps_no_example_inside_a_window_the_booster_learned() -> None:
    order, leads = _snapshots()
    data = _dataset(order, lead_id=leads, horizon_days=90)
    folds = time_ordered_folds(
        data, test_size=0.25, calibration_size=0.25, valid_size=0.25, purge="lead"
    )
    values, ids = order.to_numpy(), np.asarray(leads)
    horizon = np.timedelta64(90, "D")
    for k, name in enumerate(FOLD_NAMES[1:], start=1):
        booster = np.concatenate([getattr(folds, n) for n in FOLD_NAMES[: min(k, 2)]])
        reach = pd.Series(values[booster] + horizon).groupby(ids[booster]).max()
        rows = getattr(folds, name)
        until = reach.reindex(ids[rows]).to_numpy()
        inside = ~pd.isna(until) & (values[rows] < until)
        assert not inside.any(), f"{name} keeps an example inside a window the booster learned"
    assert folds.purged["fit"] == 0 and sum(folds.purged.values()) > 0
    _assert_time_ordered(folds, order.to_numpy())


def test_lead_purge_drops_only_examples_inside_a_window_the_booster_learned() -> None:
    """An example is dropped only for the booster's *kept* rows: a valid example that was
    itself purged never trained the booster, so calibration examples of its lead stay. (They
    were dropped too, which removed the leads that stay open long from the calibration fold,
    and capacity and recall cut-offs missed their targets on the test fold.)"""
    dates = pd.date_range("2023-01-01", periods=12, freq="30D")
    # 20 leads open all along, and 20 new leads a month seen once (so valid is never empty)
    rows = [(f"long{i}", d) for d in dates for i in range(20)]
    rows += [(f"new{d:%m}-{i}", d) for d in dates for i in range(20)]
    rows.sort(key=lambda row: row[1])
    order, leads = pd.Series([d for _, d in rows]), [lead for lead, _ in rows]
    data = _dataset(order, lead_id=leads, horizon_days=90)
    sizes = {"test_size": 0.2, "calibration_size": 0.25, "valid_size": 0.15}
    folds = time_ordered_folds(data, **sizes, purge="lead")
    unpurged = time_ordered_folds(data, **sizes, purge="none")
    values, ids = order.to_numpy(), np.asarray(leads)
    horizon = np.timedelta64(90, "D")
    for k, name in enumerate(FOLD_NAMES[1:], start=1):
        booster = np.concatenate([getattr(folds, n) for n in FOLD_NAMES[: min(k, 2)]])
        reach = pd.Series(values[booster] + horizon).groupby(ids[booster]).max()
        dropped = np.setdiff1d(getattr(unpurged, name), getattr(folds, name))
        until = reach.reindex(ids[dropped]).to_numpy()
        inside = ~pd.isna(until) & (values[dropped] < until)
        assert inside.all(), f"{name} drops {int((~inside).sum())} example(s) the booster never saw"
        assert folds.purged[name] == len(dropped)


def test_lead_purge_does_not_depend_on_how_a_lead_ended() -> None:
    """Half the leads close just before the test period and never show up there. Whether
    their history examples are kept must not change with that: purging the history examples
    of leads that reappear later kept the leads that closed quickly (who win more), and the
    model over-predicted every open lead."""
    dates = pd.date_range("2023-01-01", periods=16, freq="30D")
    rows = [(f"g{g}-{i}", d) for g in range(16) for i in range(10) for d in dates[g : g + 4]]
    ids = np.asarray([lead for lead, _ in rows])
    order = pd.Series([d for _, d in rows]).sort_values(kind="stable")
    ids = ids[order.index.to_numpy()]
    order = order.reset_index(drop=True)
    test_from = dates[-4]
    half = pd.Series(ids).str.rsplit("-", n=1).str[1].astype(int).to_numpy() < 5
    closed_before_test = (order >= test_from).to_numpy() & half
    kept: list[set[tuple[str, object]]] = []
    for keep in (np.ones(len(ids), dtype=bool), ~closed_before_test):
        sub_order = order[keep].reset_index(drop=True)
        data = _dataset(sub_order, lead_id=list(ids[keep]), horizon_days=90, test_from=test_from)
        folds = time_ordered_folds(data, calibration_size=0.25, valid_size=0.25, purge="lead")
        history = np.concatenate([getattr(folds, n) for n in FOLD_NAMES[:-1]])
        kept.append(set(zip(ids[keep][history], sub_order.to_numpy()[history], strict=True)))
    assert kept[0] == kept[1]


def test_all_purge_drops_every_window_reaching_the_next_fold() -> None:
    order, _leads = _snapshots()
    data = _dataset(order, lead_id=[f"x{i}" for i in range(len(order))], horizon_days=60)
    folds = time_ordered_folds(
        data, test_size=0.25, calibration_size=0.25, valid_size=0.25, purge="all"
    )
    values = order.to_numpy()
    for earlier, later in itertools.pairwise(FOLD_NAMES):
        end = values[getattr(folds, earlier)] + np.timedelta64(60, "D")
        assert end.max() <= values[getattr(folds, later)].min()
    # with unique leads, the lead purge has nothing to drop
    lead_only = time_ordered_folds(
        data, test_size=0.25, calibration_size=0.25, valid_size=0.25, purge="lead"
    )
    assert sum(lead_only.purged.values()) == 0 and sum(folds.purged.values()) > 0


def test_no_purge_without_a_horizon() -> None:
    order, leads = _snapshots()
    folds = time_ordered_folds(_dataset(order, lead_id=leads), purge="all")
    assert folds.purged == {}


def test_too_little_history_and_bad_sizes_raise() -> None:
    order = pd.Series(np.zeros(50))
    with pytest.raises(DataError, match="fold is empty"):
        time_ordered_folds(_dataset(order))
    with pytest.raises(SpecError, match="test_size"):
        time_ordered_folds(_dataset(pd.Series(np.arange(50.0))), test_size=1.5)
    order, leads = _snapshots(n_dates=4)
    with pytest.raises(DataError, match="after purging"):
        time_ordered_folds(_dataset(order, lead_id=leads, horizon_days=400), purge="all")


@pytest.mark.parametrize("ordered", [True, False], ids=["ties-in-order", "no-order"])
def test_each_fold_lists_the_same_leads_in_the_same_order_whatever_the_rows_order(
    ordered: bool,
) -> None:
    n = 500  # the size _dataset draws without an order
    order = pd.Series(np.arange(n) // 4, dtype="float64") if ordered else None
    dataset = _dataset(order, lead_id=[f"l{i:04d}" for i in range(n)])
    perm = np.random.default_rng(3).permutation(n)
    shuffled = dataset.subset(perm)
    a, b = time_ordered_folds(dataset), time_ordered_folds(shuffled)
    for name in FOLD_NAMES:
        leads_a = dataset.lead_id.to_numpy()[getattr(a, name)]
        leads_b = shuffled.lead_id.to_numpy()[getattr(b, name)]
        assert (leads_a == leads_b).all(), name
    if ordered:  # oldest first, ties by lead id
        fit = a.fit
        keys = list(zip(order.to_numpy()[fit], dataset.lead_id.to_numpy()[fit], strict=True))
        assert keys == sorted(keys)


@pytest.mark.parametrize("ordered", [True, False], ids=["ties-in-order", "no-order"])
def test_64_bit_integer_lead_ids_keep_the_folds_independent_of_the_rows_order(
    ordered: bool,
) -> None:
    """19-digit CRM record ids and snowflake ids lie beyond 2**53: as floats, 400 of them
    were 3 values, and the folds' rows fell back to the table's row order."""
    n = 400
    ids = np.int64(2**60) + np.arange(n, dtype="int64")
    order = pd.Series(np.arange(n) // 8, dtype="float64") if ordered else None
    dataset = LabelledDataset(
        name="t",
        X=pd.DataFrame({"x": np.random.default_rng(0).normal(size=n)}),
        y=(np.arange(n) % 3 == 0).astype(int),
        lead_id=pd.Series(ids, dtype="int64"),
        order=order,
        features=(Feature("x", "fit", "x", "numeric"),),
    )
    shuffled = dataset.subset(np.random.default_rng(1).permutation(n))
    a, b = time_ordered_folds(dataset), time_ordered_folds(shuffled)
    for name in FOLD_NAMES:
        leads_a = dataset.lead_id.to_numpy()[getattr(a, name)]
        leads_b = shuffled.lead_id.to_numpy()[getattr(b, name)]
        assert leads_a.tolist() == leads_b.tolist(), name
