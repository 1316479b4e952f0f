"""Test metrics: known values, edge cases and the stage table."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

import leadscore.metrics as metrics_module
from leadscore.metrics import (
    METRIC_KEYS,
    _interval,
    _sorted_ece,
    _SortedScores,
    bootstrap_intervals,
    chance_draws,
    ece_by_chance,
    evaluate,
    expected_calibration_error,
    stage_report,
    top_decile,
    wilson_interval,
)


def test_evaluate_returns_every_metric_with_known_values() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    m = evaluate(y, p)
    assert tuple(m) == METRIC_KEYS
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))
    assert m["log_loss"] == pytest.approx(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def test_ece_is_zero_when_each_bin_matches_its_rate_and_large_when_it_does_not() -> None:
    p = np.repeat([0.2, 0.5, 0.8], 10)
    y = np.concatenate(
        [
            np.r_[np.ones(2), np.zeros(8)],
            np.r_[np.ones(5), np.zeros(5)],
            np.r_[np.ones(8), np.zeros(2)],
        ]
    )
    assert expected_calibration_error(y, p, n_bins=3) == pytest.approx(0.0)
    assert expected_calibration_error(y, 1 - p, n_bins=3) == pytest.approx(0.4)


def test_ece_uses_equal_count_bins() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(1000) ** 4  # most scores near zero: equal-width bins would be empty
    y = (rng.random(1000) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.05


def test_ece_of_a_constant_base_rate_score_is_zero_in_any_row_order() -> None:
    y = np.r_[np.zeros(50), np.ones(50)]  # time order with drifting conversion
    p = np.full(100, 0.5)
    perm = np.random.default_rng(0).permutation(100)
    for yy in (y, y[::-1], y[perm]):
        assert expected_calibration_error(yy, p) == pytest.approx(0.0, abs=1e-12)
        assert _SortedScores(yy, p).metrics(np.ones(100, dtype=int))["ece"] == pytest.approx(
            0.0, abs=1e-12
        )


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9]), st.booleans()),
        min_size=2,
        max_size=60,
    ),
    seed=st.integers(0, 1000),
    n_bins=st.integers(2, 10),
)
def test_ece_does_not_depend_on_row_order(
    rows: list[tuple[float, bool]], seed: int, n_bins: int
) -> None:
    p = np.array([r[0] for r in rows])
    y = np.array([float(r[1]) for r in rows])
    perm = np.random.default_rng(seed).permutation(len(p))
    assert expected_calibration_error(y[perm], p[perm], n_bins) == pytest.approx(
        expected_calibration_error(y, p, n_bins), abs=1e-12
    )


def test_ece_of_untied_scores_is_the_plain_equal_count_binning() -> None:
    rng = np.random.default_rng(3)
    p = rng.random(1003)
    y = (rng.random(1003) < p**1.5).astype(float)
    order = np.argsort(p)
    plain = sum(
        len(idx) * abs(y[idx].mean() - p[idx].mean()) for idx in np.array_split(order, 10)
    ) / len(p)
    assert expected_calibration_error(y, p) == pytest.approx(plain, abs=1e-12)


def test_top_decile_lift_and_capture() -> None:
    y = np.r_[np.ones(10), np.zeros(90)]
    p = np.linspace(1, 0, 100)
    lift, capture = top_decile(y, p)
    assert lift == pytest.approx(10.0)
    assert capture == pytest.approx(1.0)
    lift, capture = top_decile(y, np.full(100, 0.3))
    assert lift == pytest.approx(1.0) and capture == pytest.approx(0.1)


def test_metrics_use_probabilities_not_hard_labels() -> None:
    rng = np.random.default_rng(1)
    p = rng.random(500)
    y = (rng.random(500) < p).astype(int)
    assert evaluate(y, p)["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert evaluate(y, p)["roc_auc"] != pytest.approx(roc_auc_score(y, p > 0.5))


def test_single_class_gives_nan_ranking_metrics() -> None:
    m = evaluate(np.zeros(5), np.full(5, 0.1))
    assert math.isnan(m["roc_auc"]) and math.isnan(m["pr_auc"])
    assert m["brier"] == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        ([0, 1], [0.5], "length"),
        ([0, 2], [0.1, 0.2], "0/1"),
        ([0, 1], [0.1, 1.2], "probabilit"),
        ([], [], "no examples"),
    ],
)
def test_bad_inputs_raise(y: list, p: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        evaluate(y, p)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=5_000),
    share=st.floats(min_value=0, max_value=1),
    confidence=st.sampled_from([0.8, 0.9, 0.95, 0.99]),
)
def test_wilson_interval_is_scipy_s_and_holds_the_observed_rate(
    n: int, share: float, confidence: float
) -> None:
    from scipy.stats import binomtest

    k = round(share * n)
    low, high = wilson_interval(k / n, n, confidence)
    expected = binomtest(k, n).proportion_ci(confidence, method="wilson")
    assert low == pytest.approx(expected.low, abs=1e-12)
    assert high == pytest.approx(expected.high, abs=1e-12)
    assert 0 <= low <= k / n <= high <= 1


def test_wilson_interval_narrows_with_more_leads_and_reads_arrays() -> None:
    low, high = wilson_interval(np.array([0.3, 0.3, 0.3]), np.array([10, 100, 1_000]))
    assert np.all(np.diff(high - low) < 0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        wilson_interval(0.3, 10, confidence=95)


def test_stage_report_counts_rates_and_share_of_wins() -> None:
    y = np.array([0, 0, 0, 1, 0, 1, 1, 1])
    stages = np.array(["lead", "lead", "lead", "lead", "mql", "mql", "sql", "sql"])
    report = stage_report(y, stages)
    assert list(report) == ["lead", "mql", "sql"]
    assert report["lead"] == {
        "count": 4,
        "share": 0.5,
        "conversion_rate": 0.25,
        "share_of_wins": 0.25,
    }
    assert report["sql"]["conversion_rate"] == 1.0
    assert sum(r["share_of_wins"] for r in report.values()) == pytest.approx(1.0)


def test_stage_report_empty_stage_and_unknown_stage() -> None:
    report = stage_report([0, 1], ["lead", "sql"])
    assert report["mql"]["count"] == 0 and math.isnan(report["mql"]["conversion_rate"])
    with pytest.raises(ValueError, match="unknown stage"):
        stage_report([0, 1], ["lead", "opportunity"])


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5, 0.75, 0.9, 1.0]),
            st.booleans(),
            st.integers(0, 3),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_resampled_metrics_equal_evaluate_on_the_drawn_rows(
    rows: list[tuple[float, bool, int]],
) -> None:
    """The O(n) weighted metrics of a bootstrap draw are exactly evaluate() on the rows drawn,
    ties, single-class draws and equal-count ECE bins cutting through a repeated row included."""
    p = np.array([r[0] for r in rows])
    y = np.array([float(r[1]) for r in rows])
    counts = np.array([r[2] for r in rows])
    if counts.sum() == 0:
        counts[0] = 1
    drawn = np.repeat(np.arange(len(rows)), counts)
    expected = evaluate(y[drawn], p[drawn])
    got = _SortedScores(y, p).metrics(counts)
    for key in METRIC_KEYS:
        if math.isnan(expected[key]):
            assert math.isnan(got[key]), key
        else:
            assert got[key] == pytest.approx(expected[key], abs=1e-9), key


def _scores(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.beta(0.8, 1.5, n)
    y = (rng.random(n) < p).astype(int)
    noisy = np.clip(p + rng.normal(0, 0.25, n), 0, 1)
    return y, p, noisy


def test_bootstrap_intervals_hold_the_estimate_and_shrink_with_more_leads() -> None:
    widths = []
    for n in (500, 8000):
        y, p, noisy = _scores(n, seed=n)
        boot = bootstrap_intervals(y, {"model": p, "noisy": noisy}, resamples=200, seed=1)
        observed = evaluate(y, p)
        for key in METRIC_KEYS:
            low, high = boot["intervals"]["model"][key]
            if key != "ece":  # the bootstrap ECE is biased upwards: noise adds to it
                assert low <= observed[key] <= high, key
        low, high = boot["intervals"]["model"]["roc_auc"]
        widths.append(high - low)
        gain_low, gain_high = boot["roc_auc_gain"]["noisy"]
        auc_gap = observed["roc_auc"] - evaluate(y, noisy)["roc_auc"]
        assert gain_low <= auc_gap <= gain_high and gain_low > 0
        noisy_low, noisy_high = boot["intervals"]["noisy"]["roc_auc"]
        assert gain_high - gain_low < (high - low) + (noisy_high - noisy_low)
    assert widths[1] < widths[0] / 2  # about 1/sqrt(16) of the width on 16x the leads


def test_bootstrap_gain_interval_holds_zero_for_the_same_scores() -> None:
    y, p, _ = _scores(1000, seed=2)
    boot = bootstrap_intervals(y, {"model": p, "copy": p.copy()}, resamples=50)
    assert boot["roc_auc_gain"]["copy"] == [0.0, 0.0]
    with pytest.raises(ValueError, match="level"):
        bootstrap_intervals(y, {"model": p}, level=1.0)


def test_bias_corrected_interval_reads_the_quantiles_the_shift_calls_for() -> None:
    values = np.linspace(0.0, 1.0, 1001)
    normal = NormalDist()
    z = normal.inv_cdf(0.975)
    z0 = normal.inv_cdf(0.3)  # 30% of the resampled values lie below the estimate
    low, high = _interval(values, 0.95, 0.3)
    assert low == pytest.approx(normal.cdf(2 * z0 - z), abs=2e-3)
    assert high == pytest.approx(normal.cdf(2 * z0 + z), abs=2e-3)
    # an estimate at the median is no shift (the percentile interval), nor is no estimate
    percentile = [pytest.approx(0.025), pytest.approx(0.975)]
    assert _interval(values, 0.95, 0.5) == percentile
    assert _interval(values, 0.95, math.nan) == percentile
    assert all(math.isnan(v) for v in _interval(np.full(5, np.nan), 0.95, 0.5))


def test_a_shift_beyond_the_tail_is_corrected_no_further_than_the_tail() -> None:
    """An estimate with fewer than (1 - level)/2 of the values below it would push both BC
    quantiles deeper into the lowest values (the interval collapses and misses it): the
    correction stops at z0 = -z, from the lowest value to the (1 - level)/2 quantile, which
    still holds the estimate."""
    values = 0.05 + np.random.default_rng(0).gamma(2.0, 0.01, 200)
    ranked = np.sort(values)
    point = float(ranked[1] + ranked[2]) / 2  # 2 of 200 values below it: 1% < 2.5%
    low, high = _interval(values, 0.95, point)
    assert ranked[0] <= low <= point <= high
    assert high == pytest.approx(np.quantile(values, 0.025))
    low, high = _interval(values, 0.95, float(ranked[-2] + ranked[-3]) / 2)
    assert low == pytest.approx(np.quantile(values, 0.975)) and high <= ranked[-1]
    # beyond every value (the share kept off 0): finite bounds, and nothing reaches it
    low, high = _interval(values, 0.95, 0.01)
    assert np.isfinite([low, high]).all()
    assert 0.01 < ranked[0] <= low < high == pytest.approx(np.quantile(values, 0.025))


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(50, 400),
    position=st.floats(0.0, 1.0),
    level=st.sampled_from([0.8, 0.9, 0.95]),
    digits=st.sampled_from([1, 2, 6]),
)
def test_bias_corrected_interval_holds_an_estimate_inside_the_central_resamples(
    seed: int, size: int, position: float, level: float, digits: int
) -> None:
    """BC's guarantee: an estimate with at least (1 - level)/2 + a margin of the resampled
    values on each side (ties counted half) lies inside its interval, whatever their shape."""
    rng = np.random.default_rng(seed)
    values = np.round(rng.lognormal(0.0, 1.0, size), digits)  # skewed, with ties
    point = float(np.quantile(values, position))
    below = (np.sum(values < point) + 0.5 * np.sum(values == point)) / size
    tail = (1 - level) / 2
    assume(tail + 0.02 <= below <= 1 - tail - 0.02)
    low, high = _interval(values, level, point)
    assert low <= point <= high


def test_bootstrap_intervals_hold_every_estimate_over_seeds() -> None:
    for seed in range(6):
        y, p, noisy = _scores(500, seed=seed)
        boot = bootstrap_intervals(y, {"model": p, "noisy": noisy}, resamples=200, seed=seed)
        for name, scores in (("model", p), ("noisy", noisy)):
            observed = evaluate(y, scores)
            for key in METRIC_KEYS:
                low, high = boot["intervals"][name][key]
                assert low <= observed[key] <= high, (seed, name, key)
        gain = evaluate(y, p)["roc_auc"] - evaluate(y, noisy)["roc_auc"]
        low, high = boot["roc_auc_gain"]["noisy"]
        assert low <= gain <= high


def test_a_calibrated_ece_outside_its_percentile_interval_is_inside_the_bc_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """500 calibrated leads whose ECE (0.030) lies below every plain percentile bound: the
    resampled ECEs are noisier, so larger; the bias-corrected interval holds it."""
    seen: list[tuple[np.ndarray, float]] = []

    def spy(values: np.ndarray, level: float, point: float) -> list[float]:
        seen.append((values, point))
        return _interval(values, level, point)

    monkeypatch.setattr(metrics_module, "_interval", spy)
    y, p, _ = _scores(500, seed=2)
    boot = bootstrap_intervals(y, {"model": p}, resamples=200, seed=2)
    observed = evaluate(y, p)["ece"]
    values, point = seen[METRIC_KEYS.index("ece")]
    assert point == pytest.approx(observed, abs=1e-12)
    plain_low, _ = _interval(values, 0.95, math.nan)  # the former, plain percentile interval
    assert observed < plain_low
    low, high = boot["intervals"]["model"]["ece"]
    assert low <= observed <= high


def test_bias_corrected_ece_interval_covers_the_true_ece_more_often() -> None:
    """A slightly miscalibrated model (outcomes 4 points above its probabilities) on 500 leads:
    the resampled ECE lies above the observed one, which lies above the true one, so the plain
    percentile interval misses the truth most of the time; the BC interval, shifted down by
    the bias it measures, covers it about twice as often."""
    shift, n, resamples, runs = 0.04, 500, 200, 30
    population = np.sort(np.random.default_rng(99).beta(0.8, 1.5, 400_000))
    truth = np.clip(population + shift, 0.0, 1.0)
    ones = np.ones(len(population))
    true_ece = _sorted_ece(population, truth, ones, len(population))  # outcomes as their rates
    covered = {"percentile": 0, "bias-corrected": 0}
    held = {"percentile": 0, "bias-corrected": 0}
    for run in range(runs):
        rng = np.random.default_rng(run)
        p = rng.beta(0.8, 1.5, n)
        y = (rng.random(n) < np.clip(p + shift, 0.0, 1.0)).astype("float64")
        scores = _SortedScores(y, p)
        point = scores.metrics(np.ones(n, dtype="int64"))["ece"]
        values = np.array(
            [
                scores.metrics(np.bincount(rng.integers(0, n, n), minlength=n))["ece"]
                for _ in range(resamples)
            ]
        )
        for method, estimate in (("percentile", math.nan), ("bias-corrected", point)):
            low, high = _interval(values, 0.95, estimate)
            covered[method] += low <= true_ece <= high
            held[method] += low <= point <= high
    assert covered["bias-corrected"] >= covered["percentile"] + 6
    assert covered["bias-corrected"] >= runs / 2
    assert held["bias-corrected"] >= held["percentile"]


def test_ece_by_chance_is_what_perfect_probabilities_score() -> None:
    _, p, _ = _scores(2000, seed=4)
    chance = ece_by_chance(p, resamples=300, seed=0)
    rng = np.random.default_rng(9)
    perfect = [
        expected_calibration_error((rng.random(len(p)) < p).astype(int), p) for _ in range(300)
    ]
    assert chance["mean"] == pytest.approx(np.mean(perfect), rel=0.1)
    assert chance["mean"] < chance["upper"]
    assert ece_by_chance(p[:200], resamples=300)["mean"] > 2 * chance["mean"]  # noise ~ 1/sqrt(n)


def _duplicated(n: int, copies: int, seed: int) -> tuple[np.ndarray, ...]:
    """``n`` leads each repeated ``copies`` times in a row, as perfectly correlated rows (the
    worst case of event data's snapshots): labels, model and noisy scores, lead ids."""
    y, p, noisy = _scores(n, seed=seed)
    ids = np.repeat(np.array([f"lead{i}" for i in range(n)]), copies)
    return y, p, noisy, np.repeat(y, copies), np.repeat(p, copies), np.repeat(noisy, copies), ids


def test_grouped_bootstrap_resamples_leads_not_their_duplicated_rows() -> None:
    """Rows that copy their lead carry no more evidence than the lead: the row bootstrap reads
    them as ``copies`` times the leads and comes out about ``sqrt(copies)`` too narrow, the
    lead (cluster) bootstrap gives the intervals of the leads themselves."""
    copies = 4
    y, p, noisy, y_rows, p_rows, noisy_rows, ids = _duplicated(800, copies, seed=5)
    scores = {"model": p_rows, "noisy": noisy_rows}
    by_row = bootstrap_intervals(y_rows, scores, resamples=300, seed=3)
    by_lead = bootstrap_intervals(y_rows, scores, resamples=300, seed=3, groups=ids)
    leads_only = bootstrap_intervals(y, {"model": p, "noisy": noisy}, resamples=300, seed=3)
    assert by_row["n_groups"] == len(y_rows) and by_lead["n_groups"] == len(y)

    def width(bounds: list[float]) -> float:
        return bounds[1] - bounds[0]

    for key in ("roc_auc", "pr_auc", "brier", "log_loss", "lift_top_decile"):
        row_width = width(by_row["intervals"]["model"][key])
        lead_width = width(by_lead["intervals"]["model"][key])
        assert 1.5 < lead_width / row_width < 2.7, key  # sqrt(4) = 2
    for key in METRIC_KEYS:
        # drawing lead i k times draws its copies k times each: the leads' own bootstrap
        assert by_lead["intervals"]["model"][key] == pytest.approx(
            leads_only["intervals"]["model"][key]
        ), key
    ratio = width(by_lead["roc_auc_gain"]["noisy"]) / width(by_row["roc_auc_gain"]["noisy"])
    assert 1.5 < ratio < 2.7
    assert by_lead["roc_auc_gain"]["noisy"] == pytest.approx(leads_only["roc_auc_gain"]["noisy"])


def test_singleton_groups_give_the_row_bootstrap_bit_for_bit() -> None:
    """Flat data holds one row per lead: its intervals must not move for a seed when training
    passes the lead ids."""
    y, p, noisy = _scores(700, seed=8)
    ids = np.array([f"lead{i}" for i in np.random.default_rng(0).permutation(700)], dtype=object)
    scores = {"model": p, "noisy": noisy}
    plain = bootstrap_intervals(y, scores, resamples=100, seed=4)
    grouped = bootstrap_intervals(y, scores, resamples=100, seed=4, groups=ids)
    assert grouped == plain
    with pytest.raises(ValueError, match="groups and y differ in length"):
        bootstrap_intervals(y, scores, resamples=10, groups=ids[:-1])


def _event_shaped(n_leads: int, rows_per_lead: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of ``n_leads`` leads seen at ``rows_per_lead`` as-of dates each (a lead's
    rows close to its own level, as event-form examples are), and the rows' lead ids."""
    rng = np.random.default_rng(seed)
    level = np.repeat(rng.beta(0.8, 1.5, n_leads), rows_per_lead)
    p = np.clip(level + rng.normal(0, 0.03, len(level)), 0.01, 0.99)
    ids = np.repeat(np.array([f"lead{i}" for i in range(n_leads)]), rows_per_lead)
    return p, ids


def test_chance_ece_draws_one_outcome_per_lead_so_repeated_leads_widen_the_band() -> None:
    """Rows of one lead share one draw: a lead seen at six as-of dates wins or loses at all of
    them together, so its rows are not six independent outcomes, and the ECE chance gives is
    about twice what per-row draws say (less evidence, more noise)."""
    p, ids = _event_shaped(300, 6, seed=11)
    by_row = ece_by_chance(p, resamples=300, seed=0)
    by_lead = ece_by_chance(p, resamples=300, seed=0, groups=ids)
    assert by_lead["mean"] > 1.5 * by_row["mean"]
    assert by_lead["upper"] > 1.5 * by_row["upper"]
    assert by_lead["mean"] < by_lead["upper"]


def test_a_calibrated_model_on_event_data_stays_inside_the_per_lead_chance_band() -> None:
    """The band is a threshold for "no evidence of miscalibration": a perfectly calibrated
    model whose leads' rows win together (the shared-draw case) must exceed the ``level``
    quantile about ``1 - level`` of the time. Against the per-row band it reads as
    miscalibrated most of the time."""
    n, k = 300, 6
    p, ids = _event_shaped(n, k, seed=11)
    by_row = ece_by_chance(p, resamples=300, seed=0)["upper"]
    by_lead = ece_by_chance(p, resamples=300, seed=0, groups=ids)["upper"]
    rng = np.random.default_rng(99)  # other draws than the band's
    observed = np.array(
        [
            expected_calibration_error((np.repeat(rng.random(n), k) < p).astype(int), p)
            for _ in range(200)
        ]
    )
    assert np.mean(observed > by_lead) < 0.12
    assert np.mean(observed > by_row) > 0.5


def test_chance_ece_with_one_row_per_lead_is_the_row_draw_bit_for_bit() -> None:
    """Flat data holds one row per lead: passing the lead ids must not move the band for a
    seed (ids in any order, tied probabilities)."""
    _, p, _ = _scores(700, seed=8)
    p = np.round(p, 2)  # ties
    ids = np.array([f"lead{i}" for i in np.random.default_rng(0).permutation(700)], dtype=object)
    for seed in (0, 3):
        plain = ece_by_chance(p, resamples=60, seed=seed)
        assert ece_by_chance(p, resamples=60, seed=seed, groups=ids) == plain
        assert ece_by_chance(p, resamples=60, seed=seed, groups=None) == plain


def test_chance_ece_refuses_lead_ids_of_another_length() -> None:
    p, ids = _event_shaped(50, 3, seed=2)
    with pytest.raises(ValueError, match=r"groups and p differ in length: 149 != 150"):
        ece_by_chance(p, resamples=5, groups=ids[:-1])


def test_chance_draws_say_per_lead_only_when_leads_repeat_and_it_was_recorded() -> None:
    chance = {"mean": 0.01, "upper": 0.02, "n_groups": 400}
    assert chance_draws(chance, 1200) == (
        "; each of the 400 leads drew one outcome for all its rows, 1,200 rows in all"
    )
    assert chance_draws(chance, 400) == ""  # flat data: one row per lead
    assert chance_draws({"mean": 0.01, "upper": 0.02}, 1200) == ""  # logged before: per row


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), ties=st.integers(0, 300))
def test_decile_table_adds_up_and_agrees_with_the_top_decile(seed: int, ties: int) -> None:
    """Ten tenths of the leads, from the top score down: they hold every lead and every win,
    the first reaches the top decile's share of the wins, whatever the order of tied leads."""
    from leadscore.metrics import decile_table, top_decile

    rng = np.random.default_rng(seed)
    p = np.r_[np.full(ties, 0.3), rng.uniform(0, 1, 700)]
    y = rng.binomial(1, p)
    assume(0 < y.sum() < len(y))
    table = decile_table(y, p)
    assert table["leads"].sum() == len(y)
    assert table["wins"].sum() == pytest.approx(y.sum())
    assert table["cumulative_share_of_wins"].iloc[-1] == pytest.approx(1.0)
    assert np.all(np.diff(table["highest"]) <= 0)
    # the first tenth holds ceil(n / 10) leads, as the top decile does
    assert table["cumulative_share_of_wins"].iloc[0] == pytest.approx(top_decile(y, p)[1])
    reversed_rows = decile_table(y[::-1], p[::-1])
    np.testing.assert_allclose(reversed_rows["wins"], table["wins"])


def test_a_difference_that_rounds_to_zero_is_no_loss():
    """Reports print metric differences with their sign: -0.0004 had read "-0.000", a loss
    that is not there; an unknown difference is a dash."""
    from leadscore.metrics import signed_difference

    assert [signed_difference(v) for v in (0.0123, -0.0004, 0.0004, -0.02)] == [
        "+0.012",
        "0.000",
        "0.000",
        "-0.020",
    ]
    assert signed_difference(float("nan")) == "-"
