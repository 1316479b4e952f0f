"""Monitoring: the back-test of old scoring runs and the drift of today's leads (PSI).

Properties on generated data (a population compared with itself is stable, a shifted input is
found, chunks add up, chance PSI is exceeded about as often as its level says), hand-made
outcomes whose labels can be read off, and the two commands end to end on a synthetic history
scored at five as-of dates and on a CRM export whose open leads close after they were scored.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from leadscore import monitoring
from leadscore.cli import main
from leadscore.config import parse_config
from leadscore.errors import DataError, ModelError
from leadscore.features import build_training_examples, default_as_of_dates
from leadscore.io import load_closed_loop
from leadscore.metrics import ece_by_chance, evaluate
from leadscore.model import LeadScoringModel
from leadscore.monitoring import (
    MIN_EMPTY_LEADS,
    MIN_SIZED_VALUES,
    MISSING,
    OTHER,
    PSI_WATCH,
    SIZE_SHIFT,
    DriftReference,
    EmptyCheck,
    SizeCheck,
    backtest_runs,
    backtest_verdicts,
    drift_verdict,
    event_outcomes,
    flat_outcomes,
    format_backtest,
    format_drift,
    population_stability,
    psi_by_chance,
    psi_status,
    size_histogram,
    typical_size,
)
from leadscore.reasons import format_number
from leadscore.schema import Feature
from leadscore.scoring import event_feature_chunks, load_scoring_model, run_scoring
from leadscore.sinks import read_history
from leadscore.synth import SynthParams, write_synthetic
from leadscore.training import train

FEATURES = (
    Feature("visits", "engagement", "Website visits", "numeric"),
    Feature("plan", "fit", "Plan", "categorical"),
)


def _leads(n: int, seed: int, *, visits_scale: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    visits = rng.poisson(4 * visits_scale, n).astype("float64")
    visits[rng.random(n) < 0.1] = np.nan
    plan = pd.Categorical(rng.choice(["basic", "pro", "team"], n, p=[0.6, 0.3, 0.1]))
    return pd.DataFrame({"visits": visits, "plan": plan})


def _stages(p: np.ndarray) -> np.ndarray:
    return np.where(p >= 0.6, "sql", np.where(p >= 0.3, "mql", "lead"))


def _fitted(n: int = 4000, seed: int = 0) -> tuple[DriftReference, pd.DataFrame, np.ndarray]:
    frame = _leads(n, seed)
    p = np.random.default_rng(seed + 1).random(n)
    return DriftReference().fit(frame, FEATURES, p, _stages(p)), frame, p


# --------------------------------------------------------------------------- PSI


def test_psi_is_zero_for_the_same_shares_and_grows_with_the_shift():
    base = np.array([0.25, 0.25, 0.25, 0.25])
    assert population_stability(base, base * 40) == pytest.approx(0.0, abs=1e-12)
    shifts = [population_stability(base, base + d * np.array([1, 1, -1, -1])) for d in (0.05, 0.1)]
    assert 0 < shifts[0] < shifts[1]
    assert population_stability(base, [0.5, 0.5, 0.0, 0.0]) == pytest.approx(
        population_stability([0.5, 0.5, 0.0, 0.0], base)
    )
    assert np.isfinite(population_stability(base, [1.0, 0.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="one length"):
        population_stability(base, [1.0])


def test_chance_psi_is_exceeded_about_as_often_as_its_level_says():
    """Two samples of one population: the 95% bound is passed in roughly 5% of the draws."""
    rng = np.random.default_rng(3)
    shares = np.array([0.3, 0.2, 0.2, 0.1, 0.1, 0.1])
    bound = psi_by_chance(2000, 400, len(shares))
    above = 0
    for _ in range(400):
        ref = np.bincount(rng.choice(6, 2000, p=shares), minlength=6)
        cur = np.bincount(rng.choice(6, 400, p=shares), minlength=6)
        above += population_stability(ref, cur) > bound
    assert 0.01 < above / 400 < 0.10


# --------------------------------------------------------------------------- reference


def test_a_population_compared_with_itself_is_stable():
    reference, frame, p = _fitted()
    table = reference.compare(reference.counts(frame, p, _stages(p)))
    assert list(table["item"][:2]) == ["probability", "stage"]
    assert set(table["item"]) == {"probability", "stage", "visits", "plan"}
    assert table["psi"].max() == pytest.approx(0.0, abs=1e-9)
    assert set(table["status"]) == {"stable"}


def test_a_shifted_input_is_found_and_the_rest_stays_stable():
    reference, _, _ = _fitted()
    today = _leads(1500, seed=5, visits_scale=2.5)
    p = np.random.default_rng(6).random(len(today))
    table = reference.compare(reference.counts(today, p, _stages(p))).set_index("item")
    assert table.loc["visits", "status"] == "shifted"
    assert table.loc["visits", "psi"] > 0.25
    assert table.loc[["plan", "probability", "stage"], "status"].eq("stable").all()
    assert table.loc["visits", "current_share"] > table.loc["visits", "reference_share"]
    assert table.index[2] == "visits"  # inputs by PSI, largest first


def test_missing_values_and_unseen_levels_have_their_own_buckets():
    reference, _, _ = _fitted()
    today = pd.DataFrame({"visits": [np.nan] * 300, "plan": pd.Categorical(["enterprise"] * 300)})
    p = np.full(300, 0.5)
    table = reference.compare(reference.counts(today, p, _stages(p))).set_index("item")
    assert table.loc["visits", "moved_most"] == MISSING
    assert table.loc["plan", "moved_most"] == OTHER
    assert table.loc["plan", "current_share"] == 1.0


def test_counts_of_chunks_add_up_to_the_counts_of_the_whole():
    reference, frame, p = _fitted()
    whole = reference.counts(frame, p, _stages(p))
    parts = [
        reference.counts(frame.iloc[s], p[s], _stages(p[s]))
        for s in np.array_split(np.arange(len(frame)), 3)
    ]
    for item, counts in whole.items():
        np.testing.assert_array_equal(counts, sum(part[item] for part in parts))
        assert counts.sum() == len(frame)


def test_reference_round_trips_through_json_and_a_damaged_one_is_refused():
    reference, _, _ = _fitted()
    today = _leads(800, seed=9, visits_scale=1.3)
    q = np.random.default_rng(2).random(len(today))
    back = DriftReference.from_dict(json.loads(json.dumps(reference.to_dict())))
    pd.testing.assert_frame_equal(
        reference.compare(reference.counts(today, q, _stages(q))),
        back.compare(back.counts(today, q, _stages(q))),
    )
    damaged = reference.to_dict()
    damaged["buckets_"]["visits"]["shares"] = damaged["buckets_"]["visits"]["shares"][:-1]
    with pytest.raises(ModelError, match=r"drift reference .* damaged"):
        DriftReference.from_dict(damaged)
    damaged = reference.to_dict()
    del damaged["buckets_"]["probability"]
    with pytest.raises(ModelError, match="probability"):
        DriftReference.from_dict(damaged)


def test_a_lead_frame_without_a_model_column_is_an_error():
    reference, frame, p = _fitted()
    with pytest.raises(DataError, match="'plan'"):
        reference.counts(frame.drop(columns="plan"), p, _stages(p))


def test_a_reference_saved_before_the_lead_count_per_item_reads_as_all_its_leads():
    reference, _, _ = _fitted()
    old = reference.to_dict()
    assert {spec["n"] for spec in old["buckets_"].values()} == {4000}
    for spec in old["buckets_"].values():
        del spec["n"]
    back = DriftReference.from_dict(old)
    today = _leads(800, seed=9, visits_scale=1.3)
    q = np.random.default_rng(2).random(len(today))
    pd.testing.assert_frame_equal(
        reference.compare(reference.counts(today, q, _stages(q))),
        back.compare(back.counts(today, q, _stages(q))),
    )


# --------------------------------------------------------------------------- typical sizes


def test_the_typical_size_is_the_median_of_the_non_zero_values():
    values = np.r_[np.zeros(500), np.full(40, np.nan), [np.inf], np.arange(1, 41, dtype=float)]
    assert typical_size(-values) == typical_size(values) == 20.5
    assert typical_size(np.r_[np.zeros(1000), np.ones(MIN_SIZED_VALUES - 1)]) is None


def _rates(n: int, seed: int, scale: float = 1.0) -> pd.DataFrame:
    """A conversion rate written in percent points (0-100) for ``scale`` 1, as shares for
    ``scale`` 0.01: the same leads, exported in other units."""
    rate = np.random.default_rng(seed).uniform(0, 100, n) * scale
    return pd.DataFrame({"rate": rate, "visits": _leads(n, seed)["visits"]})


RATES = (Feature("rate", "fit", "Rate", "numeric"), FEATURES[0])


def _size_check(reference: DriftReference, *chunks: pd.DataFrame) -> SizeCheck:
    check = SizeCheck(reference)
    for chunk in chunks:
        check.add(chunk)
    return check


def test_an_input_exported_in_other_units_is_found_and_the_same_units_are_not(caplog):
    frame = _rates(2000, seed=0)
    p = np.random.default_rng(1).random(len(frame))
    reference = DriftReference().fit(frame, RATES, p, _stages(p))
    same = _size_check(reference, _rates(300, seed=5), _rates(300, seed=6))
    assert same.shifts().empty
    shares = _size_check(
        reference, _rates(300, seed=5, scale=0.01), _rates(300, seed=6, scale=0.01)
    )
    shifts = shares.shifts()
    assert shifts["item"].tolist() == ["rate"]
    assert shifts["ratio"].iloc[0] == pytest.approx(0.01, rel=0.2)
    with caplog.at_level("WARNING", logger="leadscore.monitoring"):
        shares.warn()
    assert len(caplog.records) == 1
    assert "'rate' is about 100 times smaller" in caplog.messages[0]
    assert "7%" in caplog.messages[0]
    # a real move of the leads short of SIZE_SHIFT is left to the drift report
    moved = _size_check(reference, _rates(600, seed=5, scale=SIZE_SHIFT / 2))
    assert moved.shifts().empty


def test_sizes_survive_the_model_file_and_old_references_check_nothing():
    frame = _rates(2000, seed=0)
    p = np.random.default_rng(1).random(len(frame))
    reference = DriftReference().fit(frame, RATES, p, _stages(p))
    back = DriftReference.from_dict(json.loads(json.dumps(reference.to_dict())))
    assert back.buckets_["rate"]["size"] == reference.buckets_["rate"]["size"]
    today = _rates(400, seed=3, scale=100.0)
    assert _size_check(back, today).shifts().equals(_size_check(reference, today).shifts())
    old = reference.to_dict()
    for spec in old["buckets_"].values():
        spec.pop("size", None)
    assert _size_check(DriftReference.from_dict(old), today).shifts().empty
    assert SizeCheck(None).shifts().empty
    damaged = reference.to_dict()
    damaged["buckets_"]["rate"]["size"] = -1.0
    with pytest.raises(ModelError, match="typical size"):
        DriftReference.from_dict(damaged)


def test_large_amounts_read_with_thousands_commas_not_exponents():
    """Annual revenue in the tens of millions: drift bins a marketer can read."""
    rng = np.random.default_rng(4)
    revenue = pd.DataFrame({"revenue": rng.lognormal(16, 1, 1000)})
    features = (Feature("revenue", "fit", "Annual revenue", "numeric"),)
    p = rng.random(1000)
    bucket = DriftReference().fit(revenue, features, p, _stages(p)).buckets_["revenue"]
    *bins, missing = bucket["labels"]
    assert len(bins) == 10 and missing == MISSING
    assert all("e+" not in label and "," in label for label in bins), bins
    # just under 10,000, four digits round up to it: no exponent there either
    assert [monitoring._number(v) for v in (9999.4, 9999.96, -9999.6)] == [
        "9,999",
        "10,000",
        "-10,000",
    ]
    assert float(bins[0].removeprefix("<= ").replace(",", "")) == pytest.approx(
        bucket["edges"][0], rel=1e-3
    )


def test_a_yes_no_input_reads_no_and_yes_not_a_cut_at_zero():
    rng = np.random.default_rng(3)
    flags = pd.DataFrame(
        {"chatted": (rng.random(500) < 0.3).astype(float), "rate": rng.random(500)}
    )
    features = (
        Feature("chatted", "engagement", "Has chatted", "numeric"),
        Feature("rate", "fit", "Rate", "numeric"),
    )
    p = rng.random(500)
    reference = DriftReference().fit(flags, features, p, _stages(p))
    assert reference.buckets_["chatted"]["labels"] == ["no", "yes", MISSING]
    # a count that reached only 1 on the reference leads but more in training is no flag
    counts = flags.assign(chatted=flags["chatted"] * 3)
    counted = DriftReference().fit(flags, features, p, _stages(p), levels_from=counts)
    assert counted.buckets_["chatted"]["labels"][0].startswith("<= ")
    assert reference.buckets_["rate"]["labels"][0].startswith("<= ")
    table = reference.compare(reference.counts(flags.assign(chatted=1.0), p, _stages(p)))
    row = table.set_index("item").loc["chatted"]
    assert row["status"] == "shifted" and row["moved_most"] in ("no", "yes")


def test_a_size_check_reads_every_chunk_whatever_their_order():
    """Every value counts, so the typical size does not hang on the first chunks read (a
    reader sorted by id may start with the oldest leads); it is the exact median within the
    width of a bin."""
    frame = _rates(2000, seed=0)
    p = np.random.default_rng(1).random(len(frame))
    reference = DriftReference().fit(frame, RATES, p, _stages(p))
    small, large = _rates(200, seed=6, scale=0.01), _rates(300, seed=5)
    both = _size_check(reference, small, large)
    # the median holds, but the 40% in shares are a group apart (SizeCheck.shifts)
    assert both.shifts().equals(_size_check(reference, large, small).shifts())
    assert both.shifts()["item"].tolist() == ["rate"]
    assert both.current_size("rate") == _size_check(reference, large, small).current_size("rate")
    exact = typical_size(pd.concat([small, large])["rate"])
    assert both.current_size("rate") == pytest.approx(exact, rel=0.03)


def test_counts_made_elsewhere_add_up_to_the_chunks_counted_here():
    """Spark's workers count their partitions apart (:func:`size_histogram`, non-zero bins
    only) and the driver adds them: the check must read exactly what it reads counting the
    same leads itself."""
    frame = _rates(2000, seed=0)
    p = np.random.default_rng(1).random(len(frame))
    reference = DriftReference().fit(frame, RATES, p, _stages(p))
    parts = [_rates(250, seed=7, scale=0.01), _rates(150, seed=8, scale=0.01)]
    here = _size_check(reference, *parts)
    elsewhere = SizeCheck(reference)
    for part in parts:
        counts = size_histogram(part["rate"])
        at = np.flatnonzero(counts)
        elsewhere.add_counts("rate", at, counts[at])
    assert elsewhere.current_size("rate") == here.current_size("rate")
    assert elsewhere.shifts().equals(here.shifts())
    assert elsewhere.shifts()["item"].tolist() == ["rate"]


def test_inputs_leadscore_computes_keep_no_size():
    frame = _rates(2000, seed=0)
    p = np.random.default_rng(1).random(len(frame))
    reference = DriftReference().fit(frame, RATES, p, _stages(p), computed=["visits"])
    assert reference.buckets_["visits"]["size"] is None
    assert SizeCheck(reference).sizes.keys() == {"rate"}


# --------------------------------------------------------------------------- empty inputs


def _with_survey(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """``frame`` plus an answer most leads skip (missing for 70%), and a plan that reads
    ``unknown`` (leadscore's word for a missing reading) for a few."""
    rng = np.random.default_rng(seed)
    survey = np.where(rng.random(len(frame)) < 0.7, np.nan, rng.random(len(frame)))
    plan = frame["plan"].astype(str).where(rng.random(len(frame)) > 0.05, "unknown")
    return frame.assign(survey=survey, plan=pd.Categorical(plan))


SURVEYED = (*FEATURES, Feature("survey", "fit", "Survey", "numeric"))


def _empty_check(reference: DriftReference, *chunks: pd.DataFrame, **kw) -> EmptyCheck:
    check = EmptyCheck(reference, **kw)
    for chunk in chunks:
        check.add(chunk)
    return check


def test_an_input_that_came_empty_is_found_and_one_often_empty_then_is_not(caplog):
    frame = _with_survey(_leads(3000, 0), seed=1)
    p = np.random.default_rng(2).random(len(frame))
    reference = DriftReference().fit(frame, SURVEYED, p, _stages(p))
    assert set(EmptyCheck(reference).given) == {"visits", "plan"}  # survey: 70% missing then
    today = _with_survey(_leads(400, 5), seed=6)
    assert _empty_check(reference, today).empties().empty
    blank = today.assign(visits=np.nan, survey=np.nan)
    blank.loc[blank.index[:10], "visits"] = 3.0  # 97.5% empty is empty enough
    found = _empty_check(reference, blank.iloc[:200], blank.iloc[200:]).empties()
    assert found.to_dict("records") == [
        {
            "item": "visits",
            "reference_given": pytest.approx(0.9, abs=0.02),
            "missing": 390,
            "rows": 400,
        }
    ]
    unknown = today.assign(plan=pd.Categorical(["unknown"] * len(today)))
    assert _empty_check(reference, unknown).empties()["item"].tolist() == ["plan"]
    with caplog.at_level("WARNING", logger="leadscore.monitoring"):
        _empty_check(reference, blank).warn()
    (said,) = caplog.messages
    assert said.startswith("'visits' is empty for 98% of the 400 leads scored, but was given for ")
    assert "filled in only when a lead closes" in said
    caplog.clear()
    with caplog.at_level("WARNING", logger="leadscore.monitoring"):
        _empty_check(reference, blank).warn(scored=40_000)  # a random 400 of 40,000 read
    (said,) = caplog.messages
    assert said.startswith("'visits' is empty for 98% of a random 400 of the 40,000 leads scored")
    # half the leads without a value is drift for the report, not an empty column
    half = today.assign(visits=np.where(np.arange(len(today)) % 2, np.nan, 3.0))
    assert _empty_check(reference, half).empties().empty
    # too few leads to say anything about an export; inputs leadscore computes are not held
    assert _empty_check(reference, blank.iloc[: MIN_EMPTY_LEADS - 1]).empties().empty
    assert _empty_check(reference, blank, computed=["visits"]).empties().empty


def test_empty_counts_made_elsewhere_add_up_to_the_chunks_counted_here():
    frame = _with_survey(_leads(3000, 0), seed=1)
    p = np.random.default_rng(2).random(len(frame))
    reference = DriftReference().fit(frame, SURVEYED, p, _stages(p))
    parts = [_leads(300, 7).assign(visits=np.nan), _leads(10, 8)]
    here = _empty_check(reference, *parts)
    elsewhere = EmptyCheck(reference)
    for part in parts:
        elsewhere.add_counts(len(part), {"visits": int(part["visits"].isna().sum()), "plan": 0})
    pd.testing.assert_frame_equal(elsewhere.empties(), here.empties())
    assert here.empties()["item"].tolist() == ["visits"]


# --------------------------------------------------------------------------- many levels

CAMPAIGN = (Feature("campaign", "fit", "Campaign", "categorical"),)


def _campaigns(n: int, rng: np.random.Generator, *, extra: dict[str, float] | None = None):
    """Leads from 500 campaigns with Zipf-like shares (exponent 0.1: a long, flat tail, where
    the top 20 of a sample are mostly luck); ``extra`` gives campaigns a fixed share."""
    weights = 1.0 / np.arange(1, 501) ** 0.1
    names = np.array([f"c{i:03d}" for i in range(500)])
    drawn = names[rng.choice(500, n, p=weights / weights.sum())]
    start = 0
    for name, share in (extra or {}).items():
        stop = start + round(share * n)
        drawn[start:stop] = name
        start = stop
    return pd.DataFrame({"campaign": pd.Categorical(drawn)})


def _campaign_row(reference: DriftReference, leads: pd.DataFrame, seed: int) -> pd.Series:
    p = np.random.default_rng(seed).random(len(leads))
    table = reference.compare(reference.counts(leads, p, _stages(p)))
    return table.set_index("item").loc["campaign"]


def _other_share(reference: DriftReference) -> float:
    spec = reference.buckets_["campaign"]
    return spec["shares"][spec["labels"].index(OTHER)]


@pytest.mark.parametrize("seed", range(5))
def test_levels_chosen_on_the_training_leads_keep_a_many_level_input_stable(seed):
    """Reference (test fold), training leads and today's leads all from one population: the
    top 20 of 500 campaigns chosen on the reference itself hold more of it than of any other
    sample (selection), which read as a 'watch' alarm; chosen on the training leads they don't.
    """
    rng = np.random.default_rng(seed)
    training, test_fold, today = (_campaigns(n, rng) for n in (8000, 600, 3000))
    p = rng.random(len(test_fold))
    fitted = DriftReference().fit(test_fold, CAMPAIGN, p, _stages(p), levels_from=training)
    assert fitted.buckets_["campaign"]["n"] == 600
    row = _campaign_row(fitted, today, seed)
    assert row["psi"] < PSI_WATCH
    assert row["status"] == "stable"

    today_other = (~today["campaign"].isin(fitted.buckets_["campaign"]["levels"])).mean()
    assert abs(_other_share(fitted) - today_other) < 0.03

    # the former choice, on the reference leads themselves: biased, and a false alarm
    biased = DriftReference().fit(test_fold, CAMPAIGN, p, _stages(p), levels_from=test_fold)
    biased_row = _campaign_row(biased, today, seed)
    assert biased_row["psi"] > PSI_WATCH > row["psi"]
    assert biased_row["status"] == "watch"
    today_other = (~today["campaign"].isin(biased.buckets_["campaign"]["levels"])).mean()
    assert _other_share(biased) < today_other - 0.06


@pytest.mark.parametrize("seed", range(5))
def test_without_training_leads_the_levels_are_chosen_on_half_the_reference(seed):
    rng = np.random.default_rng(seed)
    test_fold, today = _campaigns(600, rng), _campaigns(3000, rng)
    p = rng.random(len(test_fold))
    fitted = DriftReference().fit(test_fold, CAMPAIGN, p, _stages(p))
    assert fitted.buckets_["campaign"]["n"] == 300  # shares on the half not used to choose
    assert fitted.buckets_["probability"]["n"] == fitted.n_ == 600
    today_other = (~today["campaign"].isin(fitted.buckets_["campaign"]["levels"])).mean()
    assert abs(_other_share(fitted) - today_other) < 0.03
    row = _campaign_row(fitted, today, seed)
    assert row["psi_by_chance"] == pytest.approx(psi_by_chance(300, 3000, 21))  # no missing
    back = DriftReference.from_dict(json.loads(json.dumps(fitted.to_dict())))
    assert back.buckets_["campaign"]["n"] == 300


def test_a_shifted_campaign_mix_of_a_many_level_input_is_still_found():
    rng = np.random.default_rng(11)
    training, test_fold = _campaigns(8000, rng), _campaigns(600, rng)
    p = rng.random(len(test_fold))
    fitted = DriftReference().fit(test_fold, CAMPAIGN, p, _stages(p), levels_from=training)
    top = fitted.buckets_["campaign"]["levels"][0]
    today = _campaigns(3000, rng, extra={top: 0.15})  # one campaign now brings 15% of leads
    row = _campaign_row(fitted, today, 11)
    assert row["status"] == "shifted" == psi_status(row["psi"], row["psi_by_chance"])
    assert row["moved_most"] in (top, OTHER)  # one gained what the other lost


def test_training_leads_without_a_categorical_model_column_are_an_error():
    frame = _leads(200, seed=0)
    p = np.random.default_rng(1).random(len(frame))
    with pytest.raises(DataError, match="'plan'"):
        DriftReference().fit(frame, FEATURES, p, _stages(p), levels_from=frame[["visits"]])


# --------------------------------------------------------------------------- back-test


def _history(rows: list[tuple[str, str, float, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": [r[0] for r in rows],
            "as_of": pd.to_datetime([r[1] for r in rows]),
            "model_name": "m",
            "model_version": "1",
            "probability": [r[2] for r in rows],
            "stage": [r[3] for r in rows],
        }
    )


def test_event_labels_count_wins_inside_the_window_and_runs_wait_for_it_to_end():
    history = _history(
        [
            ("a", "2026-01-01", 0.8, "sql"),  # won inside the 30 days
            ("b", "2026-01-01", 0.5, "mql"),  # won after them
            ("c", "2026-01-01", 0.2, "lead"),  # lost inside them
            ("d", "2026-01-01", 0.1, "lead"),  # closed before the run: dropped
            ("e", "2026-01-01", 0.3, "mql"),  # still open
            ("e", "2026-02-20", 0.4, "mql"),  # window ends 2026-03-22, after the data
        ]
    )
    outcomes = pd.DataFrame(
        {
            "lead_id": ["a", "b", "c", "d"],
            "outcome": ["won", "won", "lost", "lost"],
            "closed_at": pd.to_datetime(["2026-01-20", "2026-02-15", "2026-01-10", "2025-12-01"]),
        }
    )
    labelled = event_outcomes(history, outcomes, pd.Timestamp("2026-03-01"), 30)
    first = labelled[labelled["as_of"] == "2026-01-01"].set_index("lead_id")
    assert first["won"].to_dict() == {"a": 1.0, "b": 0.0, "c": 0.0, "e": 0.0}
    assert first["complete"].all()
    later = labelled[labelled["as_of"] == "2026-02-20"]
    assert not later["complete"].any()
    assert later["won"].tolist() == [0.0]
    with pytest.raises(DataError, match="horizon_days"):
        event_outcomes(history, outcomes, pd.Timestamp("2026-03-01"), 0)


def _random_history(n: int, seed: int, as_of: str) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.beta(1, 6, n)
    won = (rng.random(n) < p).astype(float)
    history = _history([(f"L{i}", as_of, p[i], "lead") for i in range(n)])
    history["stage"] = _stages(p * 4)
    return history, won


def test_a_complete_run_is_measured_as_the_test_fold_and_a_pending_one_waits():
    done, won_done = _random_history(600, 1, "2026-01-01")
    pending, won_pending = _random_history(500, 2, "2026-03-01")
    labelled = pd.concat(
        [
            done.assign(won=won_done, complete=True, window_ends=pd.Timestamp("2026-04-01")),
            pending.assign(won=won_pending, complete=False, window_ends=pd.Timestamp("2026-06-01")),
        ],
        ignore_index=True,
    )
    table = backtest_runs(labelled).set_index("as_of")
    first = table.loc[pd.Timestamp("2026-01-01")]
    expected = evaluate(won_done, done["probability"])
    for key in ("roc_auc", "brier", "ece", "lift_top_decile"):
        assert first[key] == pytest.approx(expected[key])
    assert first["won"] == won_done.sum()
    assert first["expected_wins"] == pytest.approx(done["probability"].sum())
    assert sum(first[f"{s}_count"] for s in ("lead", "mql", "sql")) == first["resolved"] == 600
    assert sum(first[f"{s}_share_of_wins"] for s in ("lead", "mql", "sql")) == pytest.approx(1.0)
    later = table.loc[pd.Timestamp("2026-03-01")]
    assert later["won"] == won_pending.sum() and later["resolved"] == 0
    assert np.isnan(later["roc_auc"]) and not later["complete"]
    # the stages a run gave are known before its outcomes: a pending run read as empty days
    for run, rows in ((first, done), (later, pending)):
        given = rows["stage"].value_counts()
        assert [run[f"{s}_scored"] for s in ("lead", "mql", "sql")] == [
            given.get(s, 0) for s in ("lead", "mql", "sql")
        ]
    assert sum(later[f"{s}_scored"] for s in ("lead", "mql", "sql")) == later["scored"] == 500
    assert later["sql_count"] == 0 < later["sql_scored"]


def test_flat_runs_are_measured_on_the_resolved_leads():
    history, won = _random_history(400, 4, "2026-01-01")
    labels = pd.Series(won[:300], index=history["lead_id"][:300])
    labelled = flat_outcomes(history, labels)
    assert labelled["won"].isna().sum() == 100 and not labelled["complete"].any()
    row = backtest_runs(labelled).iloc[0]
    assert row["resolved"] == 300 and row["resolved_share"] == pytest.approx(0.75)
    assert row["roc_auc"] == pytest.approx(
        evaluate(won[:300], history["probability"][:300])["roc_auc"]
    )
    # the leads that close first are a biased sample: no verdict on a partly resolved run
    (verdict,) = backtest_verdicts(backtest_runs(labelled))
    assert verdict == (
        "2026-01-01: 75% of its leads resolved so far: no verdict yet (the leads that close "
        "first are mostly the lost ones)"
    )
    every = flat_outcomes(history, pd.Series(won, index=history["lead_id"]))
    assert backtest_verdicts(backtest_runs(every))[0].startswith("2026-01-01: ")
    assert "no verdict" not in backtest_verdicts(backtest_runs(every))[0]


def test_the_chance_ece_of_a_run_draws_one_outcome_per_lead():
    """The sinks keep one row per lead per run, and such a run's chance ECE is the row draw
    as before; a history holding a lead twice in a run (files joined by hand) must not count
    its rows as two independent outcomes."""
    history, won = _random_history(400, 5, "2026-01-01")
    labelled = history.assign(won=won, complete=True, window_ends=pd.NaT)
    p = history["probability"].to_numpy()
    row = backtest_runs(labelled).iloc[0]
    assert row["ece_by_chance"] == ece_by_chance(p)["upper"]
    twice = pd.concat([labelled, labelled], ignore_index=True)
    row = backtest_runs(twice).iloc[0]
    ids = twice["lead_id"].to_numpy()
    assert row["ece_by_chance"] == ece_by_chance(np.r_[p, p], groups=ids)["upper"]
    assert row["ece_by_chance"] != ece_by_chance(np.r_[p, p])["upper"]


def test_drift_codes_read_as_the_lead_cards_write_them():
    """``c_level`` in the drift table, "C-level" on the card: one reading for both."""
    rng = np.random.default_rng(8)
    frame = pd.DataFrame(
        {"seniority": pd.Categorical(rng.choice(["c_level", "vp", "manager"], 900))}
    )
    features = (Feature("seniority", "fit", "Seniority from the job title", "categorical"),)
    p = rng.random(900)
    reference = DriftReference().fit(frame, features, p, _stages(p))
    today = pd.DataFrame({"seniority": pd.Categorical(["c_level"] * 600)})
    q = rng.random(600)
    table = reference.compare(reference.counts(today, q, _stages(q)))
    assert table.set_index("item").loc["seniority", "moved_most"] == "c_level"  # the CSV
    printed = format_drift(table)
    assert "C-level" in printed and "c_level" not in printed


def test_drift_reads_seniority_codes_in_words_when_given_the_features():
    """A seniority read from the job title is "Individual contributor" on the card: the
    printed drift table says the same when it has the model's features."""
    rng = np.random.default_rng(8)
    frame = pd.DataFrame({"seniority": pd.Categorical(rng.choice(["individual", "vp"], 900))})
    features = (
        Feature(
            "seniority",
            "fit",
            "Seniority from the job title",
            "categorical",
            sentence="Seniority from the job title: {value:seniority}",
        ),
    )
    p = rng.random(900)
    reference = DriftReference().fit(frame, features, p, _stages(p))
    today = pd.DataFrame({"seniority": pd.Categorical(["individual"] * 600)})
    q = rng.random(600)
    table = reference.compare(reference.counts(today, q, _stages(q)))
    assert table.set_index("item").loc["seniority", "moved_most"] == "individual"
    assert "Individual contributor" in format_drift(table, features)
    assert "Individual contributor" not in format_drift(table)


def test_numeric_bins_read_in_the_unit_of_the_reason_sentence():
    """A share bins as percentages, seconds as minutes or hours, the probability as
    percentages; a plain count keeps its numbers."""
    rng = np.random.default_rng(3)
    n = 2000
    frame = pd.DataFrame(
        {
            "open_rate": rng.random(n),
            "seconds": rng.uniform(0, 20_000, n),
            "visits": rng.poisson(6, n).astype(float),
        }
    )
    features = (
        Feature("open_rate", "engagement", "Open rate", "numeric", sentence="Opened {value:.0%}"),
        Feature(
            "seconds",
            "engagement",
            "Time on site",
            "numeric",
            sentence="Spent {value:duration:seconds} on the website",
        ),
        Feature("visits", "engagement", "Visits", "numeric", sentence="{value:,.0f} visits"),
    )
    p = rng.random(n) * 0.5
    reference = DriftReference().fit(frame, features, p, _stages(p))
    labels = {item: spec["labels"] for item, spec in reference.buckets_.items()}
    inner = labels["open_rate"][1:-2]
    assert all(label.count("%") == 2 for label in inner), inner
    assert all("hour" in label or "minute" in label for label in labels["seconds"][1:-2])
    from leadscore.reasons import unit_text

    # a bin edge at 0 is "0", not the sentence's "less than a second"; days since read as days
    assert unit_text(features[1], 0.0) == "0"
    since = Feature("since", "engagement", "Days since", "numeric", sentence="{value:days_ago}")
    assert [unit_text(since, v) for v in (0.2709, 1.0, 45.2)] == ["0.27 days", "1 day", "45.2 days"]
    assert all("%" not in label for label in labels["visits"])
    assert all(label.count("%") == 2 for label in labels["probability"][1:-2])
    edge = reference.buckets_["open_rate"]["edges"][0]
    first = float(labels["open_rate"][0].removeprefix("<= ").removesuffix("%"))
    assert first == pytest.approx(float(format_number(100 * edge)), rel=0.05)
    # the edges of one input share their decimals ("4.4% to 6.69%" rounded each alone)
    decimals = {len(t.partition(".")[2].rstrip("%")) for t in labels["open_rate"][0:1]}
    decimals |= {
        len(end.partition(".")[2].rstrip("%")) for label in inner for end in label.split(" to ")
    }
    assert len(decimals) == 1, labels["open_rate"]


def test_the_drift_report_ends_with_a_verdict():
    """Nothing moved: nothing to do. Moved: the items, shifted before watched."""
    reference, frame, p = _fitted()
    same = reference.compare(reference.counts(frame, p, _stages(p)))
    assert (same["status"] == "stable").all()
    assert "stable for all): nothing to do for the inputs" in drift_verdict(same)
    assert drift_verdict(same).endswith(
        "(`report backtest` checks the scores against the outcomes)"
    )
    today = _leads(3000, 9, visits_scale=3.0)
    q = np.random.default_rng(5).random(len(today))
    moved = reference.compare(reference.counts(today, q, _stages(q)), labels={"visits": "Visits"})
    assert moved.set_index("item").loc["visits", "status"] == "shifted"
    verdict = drift_verdict(moved)
    n_moved = int((moved["status"] != "stable").sum())
    assert verdict.startswith(f"verdict: {n_moved} of {len(moved)} items moved beyond chance")
    assert "shifted: Visits" in verdict and "back-test" in verdict


def test_the_back_test_says_in_words_whether_a_run_kept_its_promise():
    """Outcomes drawn from the scores themselves keep the promise within chance; the same
    scores with half the wins gone promised more than came, and the verdict says so."""
    history, won = _random_history(2000, 6, "2026-01-01")
    p = history["probability"].to_numpy()
    kept = history.assign(won=won, complete=True, window_ends=pd.NaT)
    broken = kept.assign(won=np.where(np.arange(len(won)) % 2, 0.0, won), as_of="2026-02-01")
    broken["as_of"] = pd.to_datetime(broken["as_of"])
    table = backtest_runs(pd.concat([kept, broken], ignore_index=True))
    sd = float(np.sqrt(np.sum(p * (1 - p))))
    assert table["expected_sd"].tolist() == pytest.approx([sd, sd])
    first, second = backtest_verdicts(table)
    assert first.startswith(f"2026-01-01: {int(won.sum()):,} won against {p.sum():,.1f} expected")
    assert first.endswith("within what chance gives a calibrated model")
    assert abs(won.sum() - p.sum()) <= 2 * sd
    assert "more than chance" in second and "promised more wins than came" in second
    text = format_backtest(table)
    assert text.splitlines()[-2:] == [first, second]


def test_runs_of_one_day_are_told_apart_by_their_time():
    """A flat table scored three times one morning: the runs read apart by the minute, in
    the table and the verdicts; runs a day apart keep the plain date. The note under the
    table says what the stage columns count."""
    history, won = _random_history(600, 6, "2026-01-01")
    runs = [
        history.assign(won=won, complete=True, window_ends=pd.NaT, as_of=pd.Timestamp(t))
        for t in ("2026-11-24 11:34:10", "2026-11-24 11:35:02", "2026-11-25 09:00:00")
    ]
    table = backtest_runs(pd.concat(runs, ignore_index=True))
    text = format_backtest(table)
    for label in ("2026-11-24 11:34", "2026-11-24 11:35", "2026-11-25 09:00"):
        assert label in text
    assert [v.split(":", 2)[0] + ":" + v.split(":", 2)[1] for v in backtest_verdicts(table)] == [
        "2026-11-24 11:34", "2026-11-24 11:35", "2026-11-25 09:00",
    ]  # fmt: skip
    assert "mql_conv: of the leads at MQL alone" in text
    one = backtest_runs(pd.concat(runs[:1] + runs[2:], ignore_index=True))
    assert backtest_verdicts(one)[0].startswith("2026-11-24: ")


def test_a_back_test_by_channel_names_the_channel_that_broke_its_promise():
    """Per run and channel: the rows add up to the run's, and the verdict names the channel
    whose wins fell short while the others, within chance, get one line together."""
    history, won = _random_history(3000, 6, "2026-01-01")
    channel = np.where(np.arange(len(won)) % 3 == 0, "paid_social", "referral")
    channel[1::7] = "events"
    # paid social's leads won half as often as promised
    won = np.where((channel == "paid_social") & (np.arange(len(won)) % 2 == 0), 0.0, won)
    labelled = history.assign(won=won, complete=True, window_ends=pd.NaT, source=channel)
    overall = backtest_runs(labelled)
    table = backtest_runs(labelled, by="source")
    assert sorted(table["source"]) == ["events", "paid_social", "referral"]
    for column in ("scored", "won", "expected_wins"):
        assert table[column].sum() == pytest.approx(overall[column].sum())
    verdicts = backtest_verdicts(table, by="source")
    assert len(verdicts) == 2, verdicts
    assert verdicts[0].startswith("2026-01-01, paid_social: ")
    assert "promised more wins than came" in verdicts[0]
    assert verdicts[1] == (
        "the other 2 run(s) by source with outcomes in: within what chance gives a calibrated model"
    )
    text = format_backtest(table, by="source")
    assert text.splitlines()[0].split()[:3] == ["as_of", "model", "source"]
    # a group of a few leads, or of a run still resolving, gets no verdict of its own
    few = table.assign(resolved=table["resolved"].where(table["source"] != "paid_social", 5))
    assert not [v for v in backtest_verdicts(few, by="source") if "paid_social" in v]
    pending = table.assign(complete=False)
    assert backtest_verdicts(pending, by="source") == []


# --------------------------------------------------------------------------- commands

AS_OFS = ("2026-02-01", "2026-03-01", "2026-04-01", "2026-05-01", "2026-06-01")


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A synthetic history, a model trained on it, and five monthly scoring runs."""
    root = tmp_path_factory.mktemp("monitoring")
    data_dir = root / "crm"
    write_synthetic(
        SynthParams(n_leads=4000, seed=21, start="2025-01-01"), data_dir, progress=False
    )
    events = load_closed_loop(data_dir)
    dates = default_as_of_dates(events, 60, every_days=30, warmup_days=60)
    config = parse_config(
        {
            "cold_start": {"min_wins": 20, "min_leads": 200},
            "quality_gate": {"allow_worse": True},
            "evaluation": {"resamples": 0},
        }
    )
    result = train(build_training_examples(events, dates, 60, name="crm"), config)
    model_dir = result.model.save(root / "model")
    target = root / "scores.duckdb"
    scoring = load_scoring_model(model_dir)
    for as_of in map(pd.Timestamp, AS_OFS):
        run_scoring(
            scoring,
            event_feature_chunks(data_dir, as_of, chunk_leads=5000, features=result.model.features),
            target=str(target),
            as_of=as_of,
            with_reasons=False,
            progress=False,
        )
    return {"data": data_dir, "model": model_dir, "target": target, "events": events}


def test_backtest_command_judges_each_run_on_its_window(monitored, tmp_path, capsys):
    out = tmp_path / "backtest.csv"
    argv = ["report", "backtest", "--data", str(monitored["data"]), "--target"]
    assert main([*argv, str(monitored["target"]), "--horizon-days", "60", "--out", str(out)]) == 0
    table = pd.read_csv(out, parse_dates=["as_of"])
    assert list(table["as_of"]) == list(pd.to_datetime(AS_OFS))
    until = monitored["events"].observed_until
    ended = table["as_of"] + pd.Timedelta(days=60) <= until
    assert table["complete"].tolist() == ended.tolist() and ended.any() and not ended.all()
    history = read_history(monitored["target"])
    assert table["scored"].tolist() == history.groupby("as_of").size().tolist()
    # a complete run's figures are the metrics of its own rows against their 60-day labels
    first = history[history["as_of"] == AS_OFS[0]]
    labels = event_outcomes(first, monitored["events"].outcomes, until, 60)
    expected = evaluate(labels["won"], labels["probability"])
    assert table.loc[0, "roc_auc"] == pytest.approx(expected["roc_auc"])
    assert table.loc[0, "won"] == labels["won"].sum()
    assert table.loc[~ended, "roc_auc"].isna().all()
    printed = capsys.readouterr().out
    assert "complete" in printed and "pending until" in printed

    # by channel: the rows of each run add up to it, in the same CSV
    assert main([*argv, str(monitored["target"]), "--by", "source", "--out", str(out)]) == 0
    both = pd.read_csv(out, parse_dates=["as_of"])
    runs, by_source = both[both["source"].isna()], both[both["source"].notna()]
    assert runs["scored"].tolist() == table["scored"].tolist()
    assert by_source.groupby("as_of")["scored"].sum().tolist() == table["scored"].tolist()
    assert set(by_source["source"]) == set(monitored["events"].leads["source"])
    assert "\nby source:\n" in capsys.readouterr().out


def test_backtest_judges_event_runs_on_the_horizon_of_the_model_given(monitored, tmp_path, capsys):
    """The model predicts wins within 60 days; judged on the default 90, its runs met more
    wins than it promised. With --model the runs are judged on its own 60 days, the same
    figures as --horizon-days 60; a --horizon-days that differs from the model's is refused,
    and without either the printed line says the window is the default."""
    argv = ["report", "backtest", "--data", str(monitored["data"])]
    argv += ["--target", str(monitored["target"])]
    tables = {}
    for name, extra in (
        ("given", ["--horizon-days", "60"]),
        ("model", ["--model", str(monitored["model"])]),
        ("default", []),
    ):
        out = tmp_path / f"{name}.csv"
        assert main([*argv, *extra, "--out", str(out)]) == 0
        tables[name] = pd.read_csv(out)
        printed = capsys.readouterr().out
        if name == "model":
            assert "wins within 60 days of its as-of (the horizon of " in printed
        if name == "default":
            assert "wins within 90 days of its as-of (the default: give --model" in printed
    pd.testing.assert_frame_equal(tables["model"], tables["given"])
    assert tables["default"]["won"].sum() > tables["model"]["won"].sum()
    out = tmp_path / "refused.csv"
    wrong = ["--model", str(monitored["model"]), "--horizon-days", "90", "--out", str(out)]
    assert main([*argv, *wrong]) == 2
    (error,) = capsys.readouterr().err.strip().splitlines()
    assert "--horizon-days 90 differs from the 60 days model " in error
    assert not out.exists()


def test_backtest_refuses_an_observed_until_in_the_future_and_warns_past_the_data_end(
    monitored, tmp_path, capsys, caplog
):
    """``--observed-until 2099-01-01`` had judged every run complete, its leads lost: "0 won
    against 23.6 expected, 5.3 standard deviations", a false alarm. A moment after now is one
    line naming the fix, before the runs are read; one after the data's end (its manifest's
    observed_until) is judged, with a warning that the outcomes after that end are not in."""
    argv = ["report", "backtest", "--data", str(monitored["data"])]
    argv += ["--target", str(monitored["target"]), "--horizon-days", "60"]
    out = tmp_path / "backtest.csv"
    assert main([*argv, "--observed-until", "2099-01-01", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert "--observed-until 2099-01-01 00:00 is in the future (it is " in line
    assert "leave --observed-until out" in line
    assert captured.out == "" and not out.exists()

    end = monitored["events"].observed_until  # the manifest's: synth's --end
    later = end + pd.Timedelta(days=40)
    with caplog.at_level(logging.WARNING, logger="leadscore.commands.report"):
        assert main([*argv, "--observed-until", f"{later:%Y-%m-%d}", "--out", str(out)]) == 0
    (warned,) = [r.getMessage() for r in caplog.records if "--observed-until" in r.getMessage()]
    assert warned.startswith(
        f"--observed-until {later:%Y-%m-%d} 00:00 is 40.0 days after the end of "
        f"{monitored['data']} ({end:%Y-%m-%d %H:%M}, "
    )
    assert "manifest.json's observed_until): outcomes after it are not in the data" in warned
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="leadscore.commands.report"):
        assert main([*argv, "--observed-until", f"{end:%Y-%m-%d}", "--out", str(out)]) == 0
    assert "--observed-until" not in caplog.text


def test_the_data_end_of_a_folder_without_a_manifest_is_its_latest_timestamp(
    tmp_path, event_frames, caplog
):
    from leadscore.commands.report import data_end, warn_past_data_end
    from leadscore.io import write_tables

    write_tables(event_frames, tmp_path)
    events = load_closed_loop(tmp_path, tables=("leads", "outcomes"))
    assert data_end(events, str(tmp_path)) == (
        pd.Timestamp("2024-03-01"),
        "the latest timestamp of its leads and outcomes",
    )
    with caplog.at_level(logging.WARNING, logger="leadscore.commands.report"):
        warn_past_data_end(pd.Timestamp("2024-03-02"), events, str(tmp_path))  # a day: silent
        assert caplog.text == ""
        warn_past_data_end(pd.Timestamp("2024-03-03"), events, str(tmp_path))
    assert "is 2.0 days after the end of" in caplog.text


def test_backtest_with_a_model_judges_that_model_s_runs_alone():
    """A target scored by a 120-day model and a 60-day one: judged with --model of the
    60-day one, the other's runs had been held to the 60-day window too. Only the runs of the
    model's name and version are kept; a target without any is one line naming what it
    holds."""
    from types import SimpleNamespace

    from leadscore.commands.report import _runs_of_model

    history = pd.DataFrame(
        {
            "lead_id": ["a", "b", "a", "b", "c"],
            "model_name": ["crm60", "crm60", "crm120", "crm120", "crm60"],
            "model_version": ["v1", "v1", "v7", "v7", "v2"],
        }
    )
    mine = _runs_of_model(history, SimpleNamespace(name="crm60", version="v1"), "t.duckdb")
    assert mine.index.tolist() == [0, 1]
    with pytest.raises(DataError, match=r"^t.duckdb holds no run of model crm90 v1 \(it holds "):
        _runs_of_model(history, SimpleNamespace(name="crm90", version="v1"), "t.duckdb")


def test_drift_command_finds_a_shifted_source_mix(monitored, tmp_path, capsys):
    """The same leads with most of them relabelled as one source: the source moves, and the
    report says so; the data as it is stays stable."""
    argv = ["report", "drift", "--model", str(monitored["model"]), "--as-of", AS_OFS[-1]]
    out = tmp_path / "drift.csv"
    assert main([*argv, "--data", str(monitored["data"]), "--out", str(out)]) == 0
    as_is = pd.read_csv(out).set_index("item")
    assert as_is.loc["source", "status"] == "stable"
    capsys.readouterr()

    shifted = tmp_path / "shifted"
    shifted.mkdir()
    for name in ("leads", "activities", "outcomes"):
        frame = pd.read_parquet(monitored["data"] / f"{name}.parquet")
        if name == "leads":
            frame["source"] = np.where(np.arange(len(frame)) % 5, "events", frame["source"])
        frame.to_parquet(shifted / f"{name}.parquet")
    assert main([*argv, "--data", str(shifted), "--out", str(out)]) == 0
    moved = pd.read_csv(out).set_index("item")
    assert moved.loc["source", "status"] == "shifted"
    assert moved.loc["source", "moved_most"] == "events"
    assert moved.index[2] == "source"
    assert "source" not in as_is.index[as_is["status"] != "stable"]


def test_drift_defaults_to_the_end_of_the_data_activity_log_included(monitored, tmp_path, capsys):
    import shutil

    data = tmp_path / "no_manifest"
    shutil.copytree(monitored["data"], data)
    (data / "manifest.json").unlink(missing_ok=True)
    events = load_closed_loop(data)
    latest_activity = events.activities["occurred_at"].max()
    assert latest_activity == events.observed_until  # the activity log holds the last moment
    argv = ["report", "drift", "--data", str(data), "--model", str(monitored["model"])]
    assert main([*argv, "--out", str(tmp_path / "drift.csv")]) == 0
    assert f"as of {events.observed_until:%Y-%m-%d %H:%M}" in capsys.readouterr().out


def test_monitoring_mistakes_are_one_line_errors(monitored, tmp_path, capsys):
    meta = json.loads((monitored["model"] / "model.json").read_text())
    meta["drift_reference"] = None
    old = tmp_path / "old_model"
    old.mkdir()
    (old / "booster.txt").write_text((monitored["model"] / "booster.txt").read_text())
    (old / "model.json").write_text(json.dumps(meta))
    assert LeadScoringModel.load(old).drift_reference is None
    data = str(monitored["data"])
    backtest = ["report", "backtest", "--data", data, "--target", str(monitored["target"])]
    cases = [
        (["report", "drift", "--data", data, "--model", str(old)], "no drift reference"),
        (
            ["report", "backtest", "--data", data, "--target", str(tmp_path / "none.duckdb")],
            "none.duckdb",
        ),
        ([*backtest, "--model-name", "nope"], "no run of model 'nope'"),
        ([*backtest, "--by", "channel"], "--by 'channel': the leads have no such column"),
        ([*backtest, "--by", "created_at"], "--by 'created_at' holds "),
    ]
    for argv, words in cases:
        out = tmp_path / "out.csv"
        assert main([*argv, "--out", str(out)]) == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and words in error[0], error
        assert not out.exists()


def test_backtest_of_leads_all_closed_before_their_runs_is_one_line(monitored, tmp_path, capsys):
    """Outcomes that close every lead at its creation leave no scored row to judge (each
    was scored from stale data): one line saying so, not a KeyError."""
    import shutil

    data = tmp_path / "closed"
    shutil.copytree(monitored["data"], data)
    (data / "manifest.json").unlink(missing_ok=True)
    leads = pd.read_parquet(data / "leads.parquet")
    closed = pd.DataFrame(
        {"lead_id": leads["lead_id"], "outcome": "lost", "closed_at": leads["created_at"]}
    )
    closed.to_parquet(data / "outcomes.parquet")
    out = tmp_path / "backtest.csv"
    argv = ["report", "backtest", "--data", str(data), "--target", str(monitored["target"])]
    assert main([*argv, "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "already closed at its run's as-of" in error[0], error
    assert not out.exists()


def test_flat_backtest_follows_the_leads_that_closed_after_scoring(tmp_path, monkeypatch, capsys):
    """A CRM export: closed leads train the model, the open ones are scored, and once the
    CRM records their outcomes the back-test measures the run on them."""
    rng = np.random.default_rng(4)
    n = 2400
    visits = rng.poisson(4, n)
    won = rng.random(n) < 1 / (1 + np.exp(1.5 - 0.35 * visits))
    frame = pd.DataFrame(
        {
            "id": [f"L{i}" for i in range(n)],
            "seq": np.arange(n),
            "visits": visits,
            "status": np.where(won, "Closed Won", "Closed Lost").astype(object),
            "Lead Source": rng.choice(["Web", "web ", "Event"], n),
        }
    )
    later = frame.copy()
    frame.loc[n - 600 :, "status"] = "Open"
    later.loc[n - 100 :, "status"] = "Open"
    frame.to_csv(tmp_path / "export.csv", index=False)
    spec = {
        "name": "crm",
        "source": "export.csv",
        "id": "id",
        "label": {
            "column": "status",
            "won": ["Closed Won"],
            "lost": ["Closed Lost"],
            "open": ["Open"],
        },
        "order_by": "seq",
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    (tmp_path / "train.yaml").write_text("evaluation: {resamples: 0}\n")
    monkeypatch.chdir(tmp_path)
    assert (
        main(["-q", "train", "--spec", "spec.yaml", "--config", "train.yaml", "--allow-worse"]) == 0
    )
    argv = ["-q", "score", "--spec", "spec.yaml", "--no-reasons", "--no-progress"]
    assert main([*argv, "--as-of", "2026-05-01"]) == 0
    later.to_csv(tmp_path / "export.csv", index=False)
    assert main(["report", "backtest", "--spec", "spec.yaml", "--out", "bt.csv"]) == 0
    row = pd.read_csv(tmp_path / "bt.csv").iloc[0]
    assert row["scored"] == 600 and row["resolved"] == 500
    assert row["won"] == int(won[n - 600 : n - 100].sum())
    assert row["roc_auc"] > 0.6
    assert "83% resolved" in capsys.readouterr().out
    # by the spec's Lead Source, spelled as the channel report spells it
    argv = ["report", "backtest", "--spec", "spec.yaml", "--by", "Lead Source", "--out", "bt.csv"]
    assert main(argv) == 0
    table = pd.read_csv(tmp_path / "bt.csv")
    by_source = table[table["Lead Source"].notna()].set_index("Lead Source")
    assert sorted(by_source.index) == ["Event", "Web"]
    assert by_source["scored"].sum() == 600 and by_source["resolved"].sum() == 500
    open_rows = frame.iloc[n - 600 :]
    web = open_rows["Lead Source"].str.strip().str.lower().eq("web")
    assert by_source.loc["Web", "scored"] == int(web.sum())


def test_the_back_test_judges_leads_after_the_training_window(tmp_path, monkeypatch):
    """label.observed_until ends the training window (the newest leads still deciding), not
    the back-test's: leads created after it that closed since are judged all the same."""
    from flat_tables import status_leads, train_flat_model

    history = status_leads(1200, 3, "L", status=None)
    decided = history["status"].copy()
    history.loc[history.index[-300:], "status"] = "open"
    history.to_csv(tmp_path / "crm.csv", index=False)
    until = pd.Timestamp(history["created"].iloc[-301]).strftime("%Y-%m-%d")
    spec = {
        "name": "acme",
        "source": "crm.csv",
        "id": "id",
        "label": {
            "column": "status",
            "won": ["won"],
            "lost": ["lost"],
            "open": ["open"],
            "observed_until": until,
        },
        "order_by": "created",
    }
    train_flat_model(tmp_path, spec)
    monkeypatch.chdir(tmp_path)
    argv = ["-q", "score", "--spec", "spec.yaml", "--model", "model", "--no-reasons"]
    assert main([*argv, "--no-progress", "--as-of", "2026-01-01"]) == 0
    history.assign(status=decided).to_csv(tmp_path / "crm.csv", index=False)  # all closed now
    assert main(["report", "backtest", "--spec", "spec.yaml", "--out", "bt.csv"]) == 0
    row = pd.read_csv(tmp_path / "bt.csv").iloc[0]
    assert row["scored"] == 300 and row["resolved"] == 300
    assert row["won"] == int((decided.iloc[-300:] == "won").sum())


def test_kept_category_levels_do_not_depend_on_row_order() -> None:
    plan = ["a"] * 5 + ["b"] * 3 + ["c"] * 3 + ["d"]
    frame = pd.DataFrame({"visits": np.arange(12.0), "plan": pd.Categorical(plan)})
    p = np.linspace(0.0, 1.0, 12)
    kept = []
    for rows in (frame, frame.iloc[::-1]):
        reference = DriftReference(max_levels=2).fit(
            frame, FEATURES, p, _stages(p), levels_from=rows
        )
        kept.append(reference.buckets_["plan"]["levels"])
    assert kept == [["a", "b"], ["a", "b"]]


# --------------------------------------------------------------------------- review fixes


def _calibrated_runs(runs: int, leads: int, seed: int) -> pd.DataFrame:
    """``runs`` weekly runs of ``leads`` leads each, none shared, whose outcomes are drawn
    from the scores themselves: a calibrated model, whatever the verdicts say."""
    frames = []
    for k in range(runs):
        history, won = _random_history(leads, seed + k, "2026-01-05")
        history["lead_id"] = [f"R{k}-{i}" for i in range(leads)]
        history["as_of"] += pd.Timedelta(weeks=k)
        frames.append(history.assign(won=won, complete=True, window_ends=pd.NaT))
    return pd.concat(frames, ignore_index=True)


def test_many_calibrated_runs_are_held_to_a_bar_that_counts_them():
    """40 runs of a calibrated model: each held to two standard deviations, about two would
    be named by chance (here, some pass 2); the bar counts the runs compared (Bonferroni),
    so none is named, and by channel the count line says what chance alone gives."""
    table = backtest_runs(_calibrated_runs(40, 400, seed=100))
    z = (table["won"] - table["expected_wins"]).abs() / table["expected_sd"]
    bar = monitoring.verdict_sds(40)
    assert (z > monitoring.VERDICT_SDS).any() and (z <= bar).all()
    verdicts = backtest_verdicts(table)
    assert len(verdicts) == 40
    assert not [v for v in verdicts if "more than chance" in v]
    near = [v for v in verdicts if "standard deviations, short of" in v]
    assert len(near) == int((z > monitoring.VERDICT_SDS).sum())
    assert near[0].endswith(
        f"across 40 runs ({z[z > 2].iloc[0]:.1f} standard deviations, short of {bar:.1f})"
    )
    # one run, as before: two standard deviations
    assert monitoring.verdict_sds(1) == monitoring.VERDICT_SDS
    by_channel = table.assign(source=[f"ch{i % 8}" for i in range(len(table))])
    (line,) = backtest_verdicts(by_channel, by="source")
    assert line == (
        f"40 run(s) by source with outcomes in: within what chance gives a calibrated model "
        f"({int((z > 2).sum())} of them past 2 standard deviations, as chance alone puts about "
        f"2 of 40 groups; a group is named past {bar:.1f})"
    )


def test_runs_that_share_their_leads_read_as_one_signal():
    """Three weekly runs of the same open leads, whose one set of outcomes fell short: each
    is named, and a last line says they are one signal, not three."""
    history, won = _random_history(1500, 6, "2026-01-05")
    won = np.where(np.arange(len(won)) % 2, 0.0, won)  # half the wins never came
    runs = [
        history.assign(won=won, complete=True, window_ends=pd.NaT).assign(
            as_of=pd.Timestamp("2026-01-05") + pd.Timedelta(weeks=k)
        )
        for k in range(3)
    ]
    table = backtest_runs(pd.concat(runs, ignore_index=True))
    assert table["shared_with_previous"].iloc[1:].tolist() == [1.0, 1.0]
    assert pd.isna(table["shared_with_previous"].iloc[0])
    *named, last = backtest_verdicts(table)
    assert len(named) == 3 and all("more than chance" in v for v in named)
    assert "in 1 back-test of 20 comparing 3 runs" in named[0]
    assert last == (
        "the 3 runs named above share 100% of their leads with the run before on average (a "
        "lead still open is scored again, with one outcome): read them as one signal that "
        "lasted, not 3 independent ones"
    )
    # runs of other leads are no such signal
    apart = _calibrated_runs(3, 1500, seed=6)
    apart["won"] = np.where(np.arange(len(apart)) % 2, 0.0, apart["won"])
    verdicts = backtest_verdicts(backtest_runs(apart))
    assert sum("more than chance" in v for v in verdicts) == 3
    assert not [v for v in verdicts if "one signal" in v]


def test_the_back_test_asks_for_the_drift_report_before_advising_a_retrain():
    """A broken promise with shifted inputs (a tracking outage) is fixed in the data feed:
    retraining would learn the outage. Unknown inputs: the drift report first."""
    history, won = _random_history(2000, 6, "2026-01-01")
    broken = history.assign(
        won=np.where(np.arange(len(won)) % 2, 0.0, won), complete=True, window_ends=pd.NaT
    )
    table = backtest_runs(broken)
    (unknown,) = backtest_verdicts(table)
    assert "check `report drift` first" in unknown
    assert "retrain on the newer outcomes only if the inputs are stable" in unknown
    assert "if it persists" not in unknown
    (shifted,) = backtest_verdicts(table, shifted_inputs=["Website visits, last 7 days"])
    assert (
        "the inputs shifted too (Website visits, last 7 days): fix the data feed first" in shifted
    )
    assert "retrain only once the inputs are stable again" in shifted
    (stable,) = backtest_verdicts(table, shifted_inputs=[])
    assert stable.endswith("retrain on the newer outcomes if it persists")
    assert format_backtest(table, shifted_inputs=[]).splitlines()[-1] == stable


SOURCE = (Feature("source", "fit", "Lead source", "categorical"),)


def _sources(counts: dict[str, int]) -> pd.DataFrame:
    return pd.DataFrame(
        {"source": pd.Categorical([v for v, n in counts.items() for _ in range(n)])}
    )


def test_a_new_channel_is_named_and_the_advice_is_to_map_it_or_retrain():
    """A new channel brings 5% of today's leads while an old one falls from 25% to 19.5%:
    the new one is what moved (not hidden behind the larger absolute fall), it is named in
    the table and the verdict, and the advice is to map it or retrain, not to check the
    export."""
    reference_leads = _sources({"organic": 500, "paid": 500, "events": 1000})
    p = np.random.default_rng(0).random(len(reference_leads))
    reference = DriftReference().fit(reference_leads, SOURCE, p, _stages(p))
    today = _sources({"organic": 195, "paid": 255, "events": 500, "tiktok": 40, "fair": 10})
    q = np.random.default_rng(1).random(len(today))
    others: dict[str, dict[str, int]] = {}
    for chunk in (today.iloc[:400], today.iloc[400:]):
        monitoring.add_value_counts(others, reference.other_values(chunk))
    assert others == {"source": {"tiktok": 40, "fair": 10}}
    counts = reference.counts(today, q, _stages(q))
    table = reference.compare(counts, labels={"source": "Lead source"}, other_values=others)
    row = table.set_index("item").loc["source"]
    assert (row["moved_most"], row["reference_share"]) == (OTHER, 0.0)
    assert row["current_share"] == pytest.approx(0.05)
    assert row["new_values"] == "tiktok (4%), fair (1%)"
    verdict = drift_verdict(table)
    assert "Lead source: tiktok (4%), fair (1%)" in verdict
    assert "map new ones to values the model knows, or retrain" in verdict
    assert "export" not in verdict
    # without the values counted, "(other)" is still told apart from an export problem
    bare = drift_verdict(reference.compare(counts, labels={"source": "Lead source"}))
    assert "Lead source: values outside those it kept" in bare
    # an old channel's share moving is the leads' mix: no new values, the usual advice
    mix = _sources({"organic": 400, "paid": 100, "events": 500})
    moved = reference.compare(reference.counts(mix, q, _stages(q)), other_values={})
    assert moved.set_index("item").loc["source", "new_values"] == ""
    assert "check that the export still writes them as before" in drift_verdict(moved)


def _amounts(n: int, seed: int, sigma: float = 1.5) -> pd.DataFrame:
    """A company size spread over decades, as employee counts are."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"size": np.round(rng.lognormal(4.5, sigma, n)) + 1})


SIZED = (Feature("size", "fit", "Company size", "numeric"),)


def test_a_unit_change_of_the_newest_leads_is_found_before_the_median_moves(caplog):
    """The export writes sizes in thousands for the leads created since Monday: 15% of the
    open ones. Their median hardly moves; the group 30 times outside the reference's middle
    half is found, with the ratio within it. Today's leads of the same population raise
    nothing, however widely spread, and neither does a small group."""
    frame = _amounts(2000, seed=0)
    p = np.random.default_rng(1).random(len(frame))
    reference = DriftReference().fit(frame, SIZED, p, _stages(p))
    assert reference.buckets_["size"]["size_range"] == pytest.approx(
        tuple(np.quantile(frame["size"], [0.25, 0.75]))
    )
    today = _amounts(600, seed=2)
    new = today.index[:90]
    today.loc[new, "size"] = today.loc[new, "size"] / 1000
    check = _size_check(reference, today.iloc[:300], today.iloc[300:])
    assert check.current_size("size") == pytest.approx(reference.buckets_["size"]["size"], rel=0.5)
    (row,) = check.shifts().to_dict("records")
    # the few largest companies of the group still read as small ones: not far enough
    assert row["item"] == "size" and 80 <= row["values"] <= 90
    assert row["share"] == pytest.approx(row["values"] / 600)
    assert row["ratio"] == pytest.approx(0.001, rel=0.3)
    with caplog.at_level("WARNING", logger="leadscore.monitoring"):
        check.warn()
    (said,) = caplog.messages
    assert said.startswith("'size' is about 1,")
    assert "times smaller than on the leads the model was tested on" in said
    assert f"{row['values']} leads, 14% of those scored with a value" in said
    assert "for some leads, such as the newest or one source" in said
    # the model file keeps the range; a reference saved before it reads one off its bins
    back = DriftReference.from_dict(json.loads(json.dumps(reference.to_dict())))
    assert _size_check(back, today).shifts().equals(check.shifts())
    old = reference.to_dict()
    old["buckets_"]["size"].pop("size_range")
    assert _size_check(DriftReference.from_dict(old), today).shifts()["item"].tolist() == ["size"]
    # a small group is left alone
    few = _amounts(600, seed=2)
    few.loc[few.index[:30], "size"] = few.loc[few.index[:30], "size"] / 1000
    assert _size_check(reference, few).shifts().empty
    # no false alarm on the same population, even one spread over many decades
    for sigma in (1.5, 3.0):
        wide = DriftReference().fit(_amounts(2000, 0, sigma), SIZED, p, _stages(p))
        for seed in range(3, 23):
            assert _size_check(wide, _amounts(500, seed, sigma)).shifts().empty, (sigma, seed)


def test_count_bins_have_whole_number_edges():
    """A count binned at interpolated quantiles read "2 to 4.8": whole-number values get
    whole-number edges, and every lead stays in the bin it was in."""
    rng = np.random.default_rng(2)
    counts = rng.integers(0, 60, 37).astype(float)
    frame = pd.DataFrame({"visits": counts, "plan": pd.Categorical(["basic"] * 37)})
    p = rng.random(37)
    reference = DriftReference().fit(frame, FEATURES, p, _stages(p))
    edges = reference.buckets_["visits"]["edges"]
    assert edges and all(e == int(e) for e in edges), edges
    assert not [label for label in reference.buckets_["visits"]["labels"] if "." in label]
    raw = np.unique(np.quantile(counts, np.linspace(0, 1, 11)[1:-1]))
    raw = [c for c in raw if c < counts.max()]
    assert raw != edges  # the quantiles themselves fall between counts here
    assert (
        monitoring._numeric_buckets(frame["visits"], edges)
        == monitoring._numeric_buckets(frame["visits"], raw)
    ).all()
    # shares and the probability keep their interpolated edges
    assert any(e != int(e) for e in reference.buckets_["probability"]["edges"])


ACTIVITY = (
    Feature(
        "web_visits_7d", "engagement", "Website visits, last 7 days", "numeric", fact="website"
    ),
    Feature(
        "page_views_30d", "engagement", "Pages viewed, last 30 days", "numeric", fact="website"
    ),
    Feature("webinars_90d", "engagement", "Webinars attended, last 90 days", "numeric"),
    Feature("lead_age_days", "engagement", "Days since the lead was created", "numeric"),
    Feature("company_size", "fit", "Company size", "numeric"),
)


def _activity(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    visits = rng.poisson(1.0, n).astype(float)  # above 0 for 63%
    return pd.DataFrame(
        {
            "web_visits_7d": visits,
            "page_views_30d": visits * 3 + rng.poisson(0.5, n),
            "webinars_90d": (rng.random(n) < 0.05).astype(float) * 2,  # rare: not held
            "lead_age_days": rng.uniform(1, 200, n),
            "company_size": rng.poisson(40, n).astype(float),
        }
    )


def test_an_activity_that_stopped_being_tracked_is_found(caplog):
    """The website's tracking stops: its visits and pages read 0 for every lead scored, no
    value missing, so the empty and size checks see nothing. One warning names the activity
    and says to check the tracking and the export before trusting the scores or retraining;
    rare activities, inputs that are not activity and small batches say nothing."""
    frame = _activity(2000, seed=0)
    p = np.random.default_rng(1).random(len(frame))
    reference = DriftReference().fit(frame, ACTIVITY, p, _stages(p))
    check = monitoring.ActivityCheck(reference, ACTIVITY)
    assert set(check.active) == {"web_visits_7d", "page_views_30d"}
    assert check.active["web_visits_7d"] == pytest.approx(0.63, abs=0.03)

    def counted(*chunks: pd.DataFrame) -> monitoring.ActivityCheck:
        out = monitoring.ActivityCheck(reference, ACTIVITY)
        for chunk in chunks:
            out.add(chunk)
        return out

    today = _activity(400, seed=5)
    assert counted(today).quiet().empty
    outage = today.assign(web_visits_7d=0.0, page_views_30d=0.0, webinars_90d=0.0)
    outage.loc[outage.index[:4], "page_views_30d"] = 2.0  # 1%: almost all is enough
    found = counted(outage.iloc[:150], outage.iloc[150:]).quiet()
    assert found[["item", "activity", "active", "rows"]].to_dict("records") == [
        {"item": "page_views_30d", "activity": "website", "active": 4, "rows": 400},
        {"item": "web_visits_7d", "activity": "website", "active": 0, "rows": 400},
    ]  # the input most leads had above 0 then first
    with caplog.at_level("WARNING", logger="leadscore.monitoring"):
        counted(outage).warn()
    (said,) = caplog.messages
    assert said.startswith(
        "'Pages viewed, last 30 days' is above 0 for 1% of the 400 leads scored, but was above "
        "0 for "
    )
    assert "(so is 'Website visits, last 7 days')" in said
    assert "tracking of this activity, or its export, stopped" in said
    assert "check the tracking and the export before trusting these scores or retraining" in said
    caplog.clear()  # counted on a random sample (Spark above 100,000 leads), it says so
    with caplog.at_level("WARNING", logger="leadscore.monitoring"):
        counted(outage).warn(scored=4000)
    (said,) = caplog.messages
    assert said.startswith(
        "'Pages viewed, last 30 days' is above 0 for 1% of a random 400 of the 4,000 leads scored"
    )
    # on event data, no activity at all in 90 days is the event reader's one warning, not one
    # line per activity; activity that went quiet lately (a connector dead for ten days: a
    # few leads still show activity within 90 days) is named here, on any data
    caplog.clear()
    anything = Feature(
        "activities_90d", "engagement", "Activities, last 90 days", "numeric", fact="activity"
    )
    with_any = (*ACTIVITY, anything)
    logged = frame.assign(activities_90d=frame["page_views_30d"] + 1)
    held = DriftReference().fit(logged, with_any, p, _stages(p))
    lately = np.where(np.arange(400) < 3, 2.0, 0.0)  # 3 of 400: quiet, not silent
    with caplog.at_level("WARNING", logger="leadscore.monitoring"):
        for recent, whole in ((0.0, True), (lately, True), (0.0, False)):
            check = monitoring.ActivityCheck(held, with_any, whole_log_checked=whole)
            check.add(outage.assign(activities_90d=recent))
            check.warn()
    said = [m.split(" is ")[0] for m in caplog.messages]
    assert sorted(said) == sorted(
        ["'Pages viewed, last 30 days'", "'Activities, last 90 days'"] * 2
    ), said
    # counts made elsewhere (a Spark partition) add up to the same
    elsewhere = monitoring.ActivityCheck(reference, ACTIVITY)
    elsewhere.add_counts(400, {"web_visits_7d": 0, "page_views_30d": 4})
    pd.testing.assert_frame_equal(elsewhere.quiet(), found)
    # a batch too small to speak for an export, and a model without a reference
    assert counted(outage.iloc[: MIN_EMPTY_LEADS - 1]).quiet().empty
    assert monitoring.ActivityCheck(None, ACTIVITY).quiet().empty
    # half the leads quiet is the drift report's business, not an outage
    half = today.assign(web_visits_7d=np.where(np.arange(400) % 2, 0.0, 2.0))
    assert counted(half).quiet().empty


def test_drift_command_names_a_new_channel(monitored, tmp_path, capsys):
    """A channel the model never saw brings every tenth lead: the report names it, in the
    CSV and in the verdict, with the advice to map it or retrain."""
    shifted = tmp_path / "new_channel"
    shifted.mkdir()
    for name in ("leads", "activities", "outcomes"):
        frame = pd.read_parquet(monitored["data"] / f"{name}.parquet")
        if name == "leads":
            frame["source"] = np.where(np.arange(len(frame)) % 10, frame["source"], "tiktok")
        frame.to_parquet(shifted / f"{name}.parquet")
    out = tmp_path / "drift.csv"
    argv = ["report", "drift", "--model", str(monitored["model"]), "--as-of", AS_OFS[-1]]
    assert main([*argv, "--data", str(shifted), "--out", str(out)]) == 0
    row = pd.read_csv(out).set_index("item").loc["source"]
    assert row["moved_most"] == OTHER and row["new_values"].startswith("tiktok (")
    printed = capsys.readouterr().out
    verdict = next(line for line in printed.splitlines() if line.startswith("verdict:"))
    assert "tiktok (" in verdict and "map new ones to values the model knows" in verdict


def test_drift_importance_adds_up_and_says_which_importance():
    """Rounded one by one, 31 inputs of real importance printed 0% and the column summed to
    96%, with no word of which importance it was."""
    weights = np.r_[np.full(3, 0.3), np.full(20, 0.1 / 20)]
    table = pd.DataFrame(
        {
            "item": ["probability", *(f"x{i}" for i in range(len(weights)))],
            "label": ["Probability", *(f"Input {i}" for i in range(len(weights)))],
            "psi": 0.01,
            "psi_by_chance": 0.02,
            "status": "stable",
            "moved_most": "a",
            "reference_share": 0.1,
            "current_share": 0.1,
            "importance": [np.nan, *weights],
        }
    )
    printed = monitoring.format_drift(table)
    rows = printed.splitlines()[1 : 2 + len(weights)]
    shown = [r.split()[-1] for r in rows[1:]]
    assert "0%" not in shown and shown.count("<1%") == 10  # 3 x 30% + 10 x 1% + 10 x <1%
    assert sum(int(s.rstrip("%")) for s in shown if s != "<1%") == 100
    assert "share of the model's total split gain" in printed


def test_drift_bins_of_one_input_share_their_decimals():
    """ "4.4% to 6.69%" rounded each edge alone; a click rate's first bin read "<= 0%"."""
    labels = monitoring._numeric_labels([0.0123, 0.044, 0.0669, 0.091], monitoring._percent)
    assert labels[:4] == ["<= 1.2%", "1.2% to 4.4%", "4.4% to 6.7%", "6.7% to 9.1%"]
    assert monitoring._numeric_labels([0.0, 0.1], monitoring._percent)[0] == "0%"
    assert monitoring._numeric_labels([1, 2, 4], lambda _: None)[:2] == ["<= 1", "1 to 2"]
