"""Stage thresholds: monotone stages, policies respected on the fitted leads, JSON round trip."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from leadscore.config import parse_config
from leadscore.errors import ModelError, SpecError
from leadscore.stages import (
    SAVED_POLICY,
    TIE_OVERSHOOT,
    StagePolicy,
    StageThresholds,
    calendar_step_days,
    contradiction,
    periods_spanned,
    tie_overshoot,
)

RANK = {"lead": 0, "mql": 1, "sql": 2}

probabilities = arrays(
    np.float64, st.integers(5, 200), elements=st.floats(0, 1, allow_nan=False, width=32)
)
rules = st.one_of(
    st.builds(lambda t: {"policy": "recall", "target": t}, st.floats(0.05, 1.0)),
    st.builds(lambda t: {"policy": "precision", "target": t}, st.floats(0.05, 1.0)),
    st.builds(lambda t: {"policy": "capacity", "target": t}, st.floats(0.5, 50.0)),
    st.builds(lambda t: {"policy": "probability", "target": t}, st.floats(0.01, 1.0)),
    st.just({"policy": "expected_value"}),
)


#: Validation context of a policy read back from a saved model (not refused when contradictory).
SAVED = {SAVED_POLICY: True}


def _allowed(mql: dict, sql: dict) -> bool:
    """Whether a config may hold these rules: rules of one kind whose targets contradict are
    refused (:func:`test_rules_of_one_kind_whose_targets_contradict_are_refused_with_both_keys`)."""
    return contradiction(StagePolicy.model_validate(_policy(mql, sql), context=SAVED)) is None


def _labels(p: np.ndarray, seed: int) -> np.ndarray:
    y = (np.random.default_rng(seed).random(len(p)) < p).astype(int)
    y[0], y[-1] = 1, 0  # both classes, always
    return y


def _policy(mql: dict, sql: dict) -> dict:
    return {
        "mql": mql,
        "sql": sql,
        "deal_value": 1000.0,
        "contact_cost": 200.0,
        "nurture_cost": 20.0,
    }


@settings(max_examples=60, deadline=None)
@given(
    p=probabilities,
    seed=st.integers(0, 1000),
    mql=rules,
    sql=rules,
    new=arrays(np.float64, 50, elements=st.floats(0, 1, allow_nan=False)),
)
def test_stages_are_monotone_in_probability(
    p: np.ndarray, seed: int, mql: dict, sql: dict, new: np.ndarray
) -> None:
    assume(_allowed(mql, sql))
    stages = StageThresholds(_policy(mql, sql)).fit(p, _labels(p, seed), periods=3.0)
    assert stages.mql_threshold_ <= stages.sql_threshold_
    ordered = np.sort(np.concatenate([p, new]))
    ranks = [RANK[s] for s in stages.transform(ordered)]
    assert all(a <= b for a, b in itertools.pairwise(ranks))


@settings(max_examples=60, deadline=None)
@given(p=probabilities, seed=st.integers(0, 1000), target=st.floats(0.05, 1.0))
def test_recall_policy_keeps_the_share_of_wins(p: np.ndarray, seed: int, target: float) -> None:
    y = _labels(p, seed)
    stages = StageThresholds(
        _policy(
            {"policy": "mql_recall", "target": target}, {"policy": "probability", "target": 1.0}
        )
    ).fit(p, y)
    reached = stages.transform(p) != "lead"
    assert y[reached].sum() / y.sum() >= target - 1e-9
    # and it is the highest such cut-off: one step up loses the target
    higher = p[p > stages.mql_threshold_]
    if higher.size:
        assert y[p >= higher.min()].sum() / y.sum() < target


@settings(max_examples=60, deadline=None)
@given(p=probabilities, seed=st.integers(0, 1000), target=st.floats(0.05, 1.0))
def test_precision_policy_converts_at_the_target(p: np.ndarray, seed: int, target: float) -> None:
    y = _labels(p, seed)
    stages = StageThresholds(
        _policy(
            {"policy": "probability", "target": 1e-9}, {"policy": "sql_precision", "target": target}
        )
    ).fit(p, y)
    sql = stages.transform(p) == "sql"
    if math.isinf(stages.sql_threshold_):
        assert not sql.any() and stages.warnings_
    else:
        assert y[sql].mean() >= target - 1e-9
        assert sql.sum() >= min(StagePolicy().min_leads, len(p))


def test_a_precision_only_a_few_lucky_top_leads_reach_is_not_promised() -> None:
    """Three top leads won, the rest of the fold converts at about 40%: a 99% target is met
    by those three alone, which no sales team should be promised. The SQL stage stays
    empty, and the warning says what the best group of 30 converts at; a team that accepts
    groups of three gets them by lowering min_leads."""
    p = np.linspace(0.01, 0.72, 600)
    y = (np.random.default_rng(4).random(600) < 0.4).astype(int)
    y[-3:] = 1
    y[-4] = 0
    rule = {"policy": "sql_precision", "target": 0.99}
    stages = StageThresholds({"sql": rule}).fit(p, y)
    assert math.isinf(stages.sql_threshold_)
    top = {k: y[-k:].mean() for k in range(30, 601)}
    k = max(top, key=lambda size: (top[size], -size))
    warning = (
        f"no group of 30 or more held-out leads converts at 99% (the best, the top {k}, "
        f"converts at {top[k]:.0%}); the top 3 that do are too few to trust"
    )
    assert any(warning in w for w in stages.warnings_), stages.warnings_
    few = StageThresholds({"sql": rule, "min_leads": 3}).fit(p, y)
    assert few.sql_threshold_ == p[-3] and few.achieved_["sql"]["precision"] == 1.0


def test_min_leads_counts_leads_not_their_examples() -> None:
    """Event data holds a lead at several as-of dates: ten lucky top leads seen three times
    each are ten leads, under a 30-lead guard, not 30 examples that pass it."""
    p = np.r_[np.linspace(0.05, 0.6, 300), np.full(30, 0.9)]
    y = np.r_[(np.random.default_rng(1).random(300) < 0.3).astype(int), np.ones(30, int)]
    y[299] = 0  # the best of the rest lost: only the ten reach 99%
    leads = np.r_[np.arange(300), np.repeat(np.arange(300, 310), 3)]
    rule = {"sql": {"policy": "sql_precision", "target": 0.99}}
    by_lead = StageThresholds(rule).fit(p, y, leads=leads)
    assert math.isinf(by_lead.sql_threshold_)
    assert any("the top 10 that do are too few" in w for w in by_lead.warnings_)
    # the same 30 top examples as 30 leads are enough
    assert StageThresholds(rule).fit(p, y).sql_threshold_ == 0.9


def test_probabilities_outside_zero_to_one_are_refused() -> None:
    """A NaN cut-off would stage nobody SQL without a word."""
    p, y = np.array([0.1, 0.2, np.nan, 0.8, 0.9]), np.array([0, 1, 1, 1, 0])
    for bad in (p, np.array([0.1, 0.2, 1.5, 0.8, 0.9])):
        with pytest.raises(ValueError, match="probabilities in \\[0, 1\\]"):
            StageThresholds().fit(bad, y)


@settings(max_examples=60, deadline=None)
@given(
    p=probabilities,
    seed=st.integers(0, 1000),
    capacity=st.floats(0.5, 50.0),
    periods=st.floats(0.5, 12.0),
)
def test_capacity_policy_never_exceeds_the_capacity(
    p: np.ndarray, seed: int, capacity: float, periods: float
) -> None:
    y = _labels(p, seed)
    stages = StageThresholds(
        _policy(
            {"policy": "probability", "target": 1e-9},
            {"policy": "sales_capacity", "target": capacity},
        )
    )
    stages.fit(p, y, periods=periods)
    n_sql = int((stages.transform(p) == "sql").sum())
    assert n_sql <= capacity * periods + 1e-9
    assert stages.achieved_["sql"]["count"] == n_sql


def test_capacity_below_the_top_tie_says_so() -> None:
    """Isotonic calibration gives steps: when the top step alone holds more leads than the
    capacity allows, no cut-off can split it, and the warning says that, not that the
    capacity is less than one lead."""
    p = np.r_[np.full(600, 0.05), np.full(200, 0.2), np.full(80, 0.4), np.full(120, 0.62)]
    y = _labels(p, 3)
    stages = StageThresholds({"sql": {"policy": "capacity", "target": 100}}).fit(p, y, periods=1)
    assert math.isinf(stages.sql_threshold_)
    assert any(
        "the top 120 held-out leads share one probability (62.0%), more than the 100" in w
        for w in stages.warnings_
    ), stages.warnings_
    assert not any("less than one lead" in w for w in stages.warnings_)


def test_capacity_fills_the_capacity_when_scores_are_distinct() -> None:
    p = np.linspace(0.01, 0.99, 300)
    y = _labels(p, 0)
    stages = StageThresholds({"sql": {"policy": "capacity", "target": 20}}).fit(p, y, periods=3)
    assert (stages.transform(p) == "sql").sum() == 60
    assert stages.achieved_["sql"]["per_period"] == pytest.approx(20)


def test_expected_value_policy_contacts_only_leads_worth_it() -> None:
    p = np.linspace(0, 1, 1001)
    y = _labels(p, 1)
    stages = StageThresholds(
        _policy({"policy": "expected_value"}, {"policy": "expected_value"})
    ).fit(p, y)
    s = stages.transform(p)
    assert np.all(p[s == "sql"] * 1000 > 200) and np.all(p[s != "sql"] * 1000 <= 200)
    assert np.all(p[s != "lead"] * 1000 > 20) and np.all(p[s == "lead"] * 1000 <= 20)


def test_sql_below_mql_empties_the_mql_stage_with_a_warning() -> None:
    """Rules of two kinds meet only on data: an SQL cut-off (all wins: 0.4) below the MQL
    one (0.6) lowers MQL's to it, with a warning."""
    p = np.linspace(0, 1, 101)
    stages = StageThresholds(
        {
            "mql": {"policy": "probability", "target": 0.6},
            "sql": {"policy": "recall", "target": 1.0},
        }
    ).fit(p, p > 0.395)
    assert stages.mql_threshold_ == stages.sql_threshold_ == pytest.approx(0.4)
    assert "MQL stage is empty" in stages.warnings_[0]
    assert set(stages.transform(p)) == {"lead", "sql"}


def test_an_sql_cut_off_below_the_mql_policy_counts_the_leads_it_sends_to_sales() -> None:
    """The leads between the two cut-offs, which the MQL policy left at lead, now go to
    sales: the warning had said only that the MQL stage was empty, and the MQL policy's line
    had reported the SQL cut-off's recall as its own."""
    from leadscore.commands.train import _policy_lines
    from leadscore.stages import policy_check

    p = np.linspace(0, 1, 101)
    won = p > 0.3
    stages = StageThresholds(
        {"mql": {"policy": "recall", "target": 0.5}, "sql": {"policy": "precision", "target": 1.0}}
    ).fit(p, won)
    assert stages.sql_threshold_ == pytest.approx(0.31)
    between = int(((p >= 0.31 - 1e-9) & (p < 0.66 - 1e-9)).sum())
    assert between == 35
    assert f"{between:,} of the 101 held-out examples" in stages.warnings_[0]
    check = policy_check(stages, p, won)
    assert check["mql"]["set_by_sql"] and not check["sql"].get("set_by_sql")
    mql_line, sql_line = _policy_lines(check)
    assert "its cut-off is the SQL cut-off" in mql_line and "SQL cut-off" not in sql_line
    apart = StageThresholds(
        {
            "mql": {"policy": "probability", "target": 0.3},
            "sql": {"policy": "probability", "target": 0.7},
        }
    ).fit(p, won)
    assert not policy_check(apart, p, won)["mql"]["set_by_sql"]


def test_a_capacity_above_the_lead_flow_says_every_lead_is_an_sql() -> None:
    p = np.linspace(0.01, 0.99, 300)
    stages = StageThresholds({"sql": {"policy": "capacity", "target": 5_000}}).fit(
        p, _labels(p, 0), periods=3
    )
    assert set(stages.transform(p)) == {"sql"}
    assert any("at least the lead flow (300 held-out leads" in w for w in stages.warnings_)
    within = StageThresholds({"sql": {"policy": "capacity", "target": 99}}).fit(
        p, _labels(p, 0), periods=3
    )
    assert not any("lead flow" in w for w in within.warnings_)


def test_a_model_that_cannot_rank_its_leads_is_said_to_fill_sql_with_everyone() -> None:
    """A model of ROC-AUC 0.50 gives every lead one probability: recall 50% for SQL then
    puts every lead in SQL (9,240 of 9,240 on x_education) and had said nothing."""
    rng = np.random.default_rng(0)
    p = np.full(1_000, 0.451)
    stages = StageThresholds().fit(p, rng.random(1_000) < 0.45)
    assert set(stages.transform(p)) == {"sql"}
    tied, same = (
        [w for w in stages.warnings_ if "share the SQL cut-off" in w],
        [w for w in stages.warnings_ if "is the same as the MQL cut-off" in w],
    )
    assert len(tied) == 1 and "1,000 held-out leads" in tied[0] and "holds 100%" in tied[0]
    assert "asks for 50%" in tied[0]
    assert len(same) == 1 and "MQL stage is empty" in same[0]


@settings(max_examples=60, deadline=None)
@given(p=probabilities, seed=st.integers(0, 1000), target=st.floats(0.05, 0.95))
def test_ties_are_named_exactly_when_they_push_recall_past_its_target(
    p: np.ndarray, seed: int, target: float
) -> None:
    y = _labels(p, seed)
    policy = _policy({"policy": "recall", "target": 0.95}, {"policy": "recall", "target": target})
    stages = StageThresholds(policy).fit(p, y)
    cut = stages.sql_threshold_
    recall = y[p >= cut].sum() / y.sum()
    named = any("share the SQL cut-off" in w for w in stages.warnings_)
    assert named == (recall - target > tie_overshoot(target) and y[p == cut].sum() >= 2)
    if named:
        assert y[p > cut].sum() / y.sum() < target  # without the tie, too few wins


def test_a_tie_that_fills_a_high_recall_stage_is_named() -> None:
    """A 90% MQL target met at 100% by three probabilities only: every lead reached MQL and the
    lead stage was empty, but 100% - 90% is not above the 0.1 a 50% target is allowed."""
    p = np.repeat([0.05, 0.3, 0.7], [300, 120, 55])
    y = np.r_[np.arange(300) < 15, np.arange(120) < 40, np.arange(55) < 40].astype(int)
    stages = StageThresholds(
        _policy({"policy": "recall", "target": 0.9}, {"policy": "recall", "target": 0.5})
    ).fit(p, y)
    assert set(stages.transform(p)) == {"mql", "sql"}  # no lead is left at "lead"
    named = [w for w in stages.warnings_ if "share the MQL cut-off" in w]
    assert len(named) == 1 and "asks for 90%" in named[0], stages.warnings_
    assert tie_overshoot(0.5) == TIE_OVERSHOOT and tie_overshoot(0.9) == pytest.approx(0.075)


def test_a_capacity_ties_keep_short_is_named() -> None:
    """10 leads at 50%, 500 at 20%: a capacity of 10 a period over 10 periods allows 100, the
    tie at 20% cannot be split, and SQL held 10 with a line that read as compliance."""
    p = np.repeat([0.5, 0.2, 0.02], [10, 500, 1490])
    y = _labels(p, 1)
    stages = StageThresholds({"sql": {"policy": "capacity", "target": 10}}).fit(p, y, periods=10)
    assert (stages.transform(p) == "sql").sum() == 10
    short = [w for w in stages.warnings_ if "share the next probability" in w]
    assert len(short) == 1 and "SQL holds 10 leads where" in short[0], stages.warnings_
    assert "allows 100" in short[0]
    filled = StageThresholds({"sql": {"policy": "capacity", "target": 20}}).fit(
        np.linspace(0.01, 0.99, 300), _labels(np.linspace(0.01, 0.99, 300), 0), periods=3
    )
    assert not [w for w in filled.warnings_ if "next probability" in w]


def test_nan_or_a_value_outside_zero_to_one_gets_no_stage_or_score() -> None:
    """A NaN had read as stage lead and score -9223372036854775808."""
    stages = StageThresholds().fit(
        np.linspace(0.01, 0.99, 200), _labels(np.linspace(0.01, 0.99, 200), 2)
    )
    for bad in (np.nan, -0.1, 1.5, np.inf):
        with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
            stages.transform(np.array([0.3, bad]))
        with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
            stages.scores(np.array([0.3, bad]))
    assert stages.transform(np.array([0.0, 1.0])).tolist()[1] == "sql"


def test_no_tie_is_blamed_where_there_is_none() -> None:
    """An MQL cut-off lowered to an SQL one below it, and a cut-off on a handful of wins,
    overshoot their recall without any tie: the tie warning had fired on both."""
    rng = np.random.default_rng(3)
    p = rng.permutation(np.linspace(0.001, 0.999, 2_000))
    y = (rng.random(2_000) < p).astype(int)
    lowered = StageThresholds(
        _policy({"policy": "recall", "target": 0.5}, {"policy": "precision", "target": 0.3})
    ).fit(p, y)
    assert lowered.mql_threshold_ == lowered.sql_threshold_
    assert any("MQL stage is empty" in w for w in lowered.warnings_)
    few = np.array([0.9, 0.7, 0.5, 0.3, 0.2, 0.1])
    sparse = StageThresholds(
        _policy({"policy": "recall", "target": 0.9}, {"policy": "recall", "target": 0.5})
    ).fit(few, np.array([1, 1, 0, 1, 0, 0]))
    for stages in (lowered, sparse):
        assert not [w for w in stages.warnings_ if "share the" in w], stages.warnings_


def test_json_round_trip_gives_identical_thresholds_and_stages() -> None:
    p = np.random.default_rng(2).random(400)
    y = _labels(p, 2)
    stages = StageThresholds({"sql": {"policy": "precision", "target": 0.99}}).fit(p, y)
    back = StageThresholds.from_dict(json.loads(json.dumps(stages.to_dict(), allow_nan=False)))
    assert (back.mql_threshold_, back.sql_threshold_) == (
        stages.mql_threshold_,
        stages.sql_threshold_,
    )
    np.testing.assert_array_equal(back.transform(p), stages.transform(p))


def test_aliases_and_defaults() -> None:
    policy = StagePolicy.model_validate({"mql": {"policy": "mql_recall", "target": 0.8}})
    assert policy.mql.policy == "recall"
    assert StagePolicy().mql.target == 0.9 and StagePolicy().sql.policy == "recall"


@pytest.mark.parametrize(
    ("policy", "match"),
    [
        ({"sql": {"policy": "precision", "target": 1.5}}, "target in"),
        ({"sql": {"policy": "expected_value"}}, "deal_value"),
        ({"sql": {"policy": "lift", "target": 2}}, "sql.policy"),
        ({"mql": {"policy": "recall"}}, "needs a target"),
        ({"mql": {"policy": "recall", "target": 0.5, "extra": 1}}, "extra"),
    ],
)
def test_bad_policies_raise_spec_errors(policy: dict, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        StageThresholds(policy).fit(np.array([0.1, 0.9]), np.array([0, 1]))


def test_capacity_without_time_raises() -> None:
    with pytest.raises(ModelError, match="needs leads with dates"):
        StageThresholds({"sql": {"policy": "capacity", "target": 5}}).fit(
            np.array([0.1, 0.9]), np.array([0, 1])
        )


def test_periods_spanned_for_daily_contacts_and_monthly_snapshots() -> None:
    days = pd.date_range("2024-01-01", periods=90, freq="D").repeat(3).to_numpy()
    assert periods_spanned(days, 30) == pytest.approx(3.0)
    snapshots = pd.date_range("2024-01-01", periods=4, freq="30D").repeat(100).to_numpy()
    assert periods_spanned(snapshots, 30) == pytest.approx(4.0)
    assert periods_spanned(np.arange(10.0), 30) is None
    assert periods_spanned(None, 30) is None
    zoned = pd.Series(pd.date_range("2024-01-01", periods=90, freq="D", tz="Europe/Berlin"))
    assert periods_spanned(zoned, 30) == pytest.approx(3.0)


def test_periods_spanned_counts_the_calendar_not_the_timestamps() -> None:
    days = pd.date_range("2025-03-03", periods=30, freq="D")  # a Monday, 30 calendar days
    rng = np.random.default_rng(0)
    business_hours = np.concatenate(
        [(d + pd.to_timedelta(rng.uniform(9, 17, 40), unit="h")).to_numpy() for d in days]
    )
    weekdays = days[days.day_of_week < 5].repeat(40).to_numpy()
    assert periods_spanned(business_hours, 30) == pytest.approx(1.0)
    assert periods_spanned(weekdays, 30) == pytest.approx(1.0)
    assert calendar_step_days(business_hours) == calendar_step_days(weekdays) == 1.0


def test_one_snapshot_spans_one_as_of_step() -> None:
    snapshot = np.full(400, np.datetime64("2026-01-01"))
    assert calendar_step_days(snapshot) is None
    assert periods_spanned(snapshot, 30, step_days=30) == pytest.approx(1.0)
    assert periods_spanned(snapshot, 30) == pytest.approx(1 / 30)  # no step given: one day
    p = np.random.default_rng(0).random(400)
    stages = StageThresholds({"sql": {"policy": "sales_capacity", "target": 100}}).fit(
        p, _labels(p, 0), periods=periods_spanned(snapshot, 30, step_days=30)
    )
    assert stages.achieved_["sql"]["count"] == 100
    assert stages.achieved_["sql"]["per_period"] == pytest.approx(100)
    assert not stages.warnings_


def test_capacity_warns_when_the_leads_span_less_than_one_period() -> None:
    p = np.linspace(0.01, 0.99, 300)
    stages = StageThresholds({"sql": {"policy": "capacity", "target": 20}}).fit(
        p, _labels(p, 0), periods=0.5
    )
    assert any("less than one period" in w for w in stages.warnings_)
    assert (stages.transform(p) == "sql").sum() == 10


def test_a_share_of_a_period_just_below_one_is_not_printed_as_one() -> None:
    p = np.linspace(0.01, 0.99, 300)
    stages = StageThresholds({"sql": {"policy": "capacity", "target": 20}}).fit(
        p, _labels(p, 0), periods=0.9997
    )
    assert any("stand for 0.999 of a" in w for w in stages.warnings_)


def _saved_cuts(**changes: object) -> dict:
    p = np.random.default_rng(5).random(300)
    saved = StageThresholds().fit(p, _labels(p, 5)).to_dict()
    return json.loads(json.dumps({**saved, **changes}))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mql_threshold_": 0.9, "sql_threshold_": 0.1}, "MQL cut-off \\(0.9\\) is above"),
        ({"mql_threshold_": None, "sql_threshold_": 0.5}, "MQL cut-off \\(inf\\) is above"),
        ({"mql_threshold_": 5, "sql_threshold_": 7}, "mql_threshold_ is 5"),
        ({"sql_threshold_": -0.1}, "sql_threshold_ is -0.1"),
        ({"sql_threshold_": float("nan")}, "sql_threshold_ is nan"),
        ({"sql_threshold_": "0.5"}, "sql_threshold_ is '0.5'"),
        ({"sql_threshold_": True}, "sql_threshold_ is True"),
        ({"warnings_": "text"}, "warnings_"),
        ({"achieved_": [1]}, "achieved_"),
        ({"policy": {"mql": {"policy": "lift"}}}, "policy mql.policy"),
    ],
)
def test_damaged_saved_cut_offs_are_refused_when_read(changes: dict, message: str) -> None:
    """Cut-offs that are no probability, or an MQL cut-off above the SQL one, would stage
    every lead as `lead` or skip the MQL stage: the model file fails when it is read."""
    with pytest.raises(ModelError, match=f"thresholds in the model file are damaged: .*{message}"):
        StageThresholds.from_dict(_saved_cuts(**changes))
    with pytest.raises(ModelError, match="damaged: they are list"):
        StageThresholds.from_dict([0.1, 0.2])  # type: ignore[arg-type]


def test_a_cost_above_the_deal_value_leaves_the_stage_empty_and_round_trips() -> None:
    """An expected-value cut-off above 1 is reached by no probability: it is saved as null
    ("nobody"), so that every saved cut-off is a probability or null and reads back."""
    p = np.linspace(0, 1, 201)
    policy = {**_policy({"policy": "recall", "target": 0.9}, {"policy": "expected_value"})}
    policy["contact_cost"] = 1500.0
    stages = StageThresholds(policy).fit(p, _labels(p, 3))
    assert stages.sql_threshold_ == math.inf
    assert any("SQL stage stays empty" in w for w in stages.warnings_)
    back = StageThresholds.from_dict(json.loads(json.dumps(stages.to_dict(), allow_nan=False)))
    assert back.sql_threshold_ == math.inf and "sql" not in set(back.transform(p))


def test_policy_check_compares_the_target_where_it_was_set_and_on_later_leads() -> None:
    """The policy's own measure, on the fitted leads and on other held-out leads: a
    precision target met where the cut-off was set can fall short later, and says so."""
    from leadscore.stages import policy_check

    rng = np.random.default_rng(5)
    p = rng.random(2000)
    y = (rng.random(2000) < p).astype(int)
    stages = StageThresholds(
        {"mql": {"policy": "recall", "target": 0.9}, "sql": {"policy": "precision", "target": 0.8}}
    ).fit(p, y)
    later = (rng.random(2000) < p * 0.8).astype(int)  # the same scores convert less later
    check = policy_check(stages, p, later)
    assert check["sql"]["fitted"] == stages.achieved_["sql"]["precision"] >= 0.8
    at = p >= stages.sql_threshold_
    assert check["sql"]["test"] == pytest.approx(later[at].mean()) and check["sql"]["test"] < 0.8
    mql = p >= stages.mql_threshold_
    assert check["mql"]["test"] == pytest.approx(later[mql].sum() / later.sum())
    assert check["sql"]["measure"] == "precision" and check["mql"]["measure"] == "recall"
    fixed = StageThresholds({"sql": {"policy": "probability", "target": 0.7}}).fit(p, y)
    assert policy_check(fixed, p, later)["sql"]["test"] is None
    # expected value: what a lead at the stage brought, a win's value times the share that
    # won less the contact's cost (no line had been printed for this policy)
    valued = StageThresholds(
        {
            "mql": {"policy": "expected_value"},
            "sql": {"policy": "expected_value"},
            "deal_value": 1000.0,
            "contact_cost": 300.0,
            "nurture_cost": 20.0,
        }
    ).fit(p, y)
    worth = policy_check(valued, p, later)
    at = p >= valued.sql_threshold_
    assert worth["sql"]["measure"] == "value_per_contact"
    assert worth["sql"]["fitted"] == pytest.approx(1000 * y[at].mean() - 300)
    assert worth["sql"]["fitted"] > 0
    assert worth["sql"]["test"] == pytest.approx(1000 * later[at].mean() - 300)
    assert worth["mql"]["test"] == pytest.approx(
        1000 * later[p >= valued.mql_threshold_].mean() - 20
    )


@settings(max_examples=80, deadline=None)
@given(
    p=probabilities,
    seed=st.integers(0, 1000),
    mql=rules,
    sql=rules,
    new=arrays(np.float64, 60, elements=st.floats(0, 1, allow_nan=False)),
)
def test_no_score_is_read_in_two_stages(
    p: np.ndarray, seed: int, mql: dict, sql: dict, new: np.ndarray
) -> None:
    """The integer score is the rounded percent kept within its stage: monotone, at most a
    point from the percent, and each score names one stage (a lead's stage reads off its score)."""
    assume(_allowed(mql, sql))
    stages = StageThresholds(_policy(mql, sql)).fit(p, _labels(p, seed), periods=3.0)
    cuts = [stages.mql_threshold_, stages.sql_threshold_]
    near = [c + d for c in cuts if math.isfinite(c) for d in (-0.004, -1e-9, 0.0, 1e-9, 0.004)]
    ordered = np.sort(np.clip(np.concatenate([p, new, near]), 0.0, 1.0))
    scores = stages.scores(ordered)
    named = stages.transform(ordered)
    assert (np.diff(scores) >= 0).all()
    assert (np.abs(scores - np.rint(ordered * 100)) <= 1).all()
    assert scores.min() >= 0 and scores.max() <= 100
    stage_of_score: dict[int, set[str]] = {}
    for score, stage in zip(scores.tolist(), named.tolist(), strict=True):
        stage_of_score.setdefault(score, set()).add(stage)
    if stages.sql_threshold_ - stages.mql_threshold_ >= 0.01:
        assert all(len(s) == 1 for s in stage_of_score.values()), stage_of_score
    else:  # MQL has no score of its own; an SQL still never shares one
        assert all("sql" not in s or len(s) == 1 for s in stage_of_score.values())


def test_a_lead_just_over_a_cut_off_scores_above_one_just_under() -> None:
    stages = StageThresholds(
        {
            "mql": {"policy": "probability", "target": 0.037},
            "sql": {"policy": "probability", "target": 0.153},
        }
    ).fit(np.linspace(0, 1, 101), np.linspace(0, 1, 101) > 0.5)
    p = np.array([0.0365, 0.037, 0.1525, 0.15299, 0.153, 0.1535, 0.15, 0.5])
    assert stages.transform(p).tolist() == ["lead", "mql", "mql", "mql", "sql", "sql", "mql", "sql"]
    assert stages.scores(p).tolist() == [3, 4, 15, 15, 16, 16, 15, 50]
    # a cut-off on a whole percent keeps the rounded score
    whole = StageThresholds.from_dict({**stages.to_dict(), "sql_threshold_": 0.15})
    assert whole.scores(np.array([0.1499, 0.15, 0.1549])).tolist() == [14, 15, 15]


def test_outcomes_that_are_not_0_and_1_are_named() -> None:
    """``fit(p, ["won", "lost", ...])`` had raised numpy's "could not convert string to
    float"; a 2 had been counted as a win and a half."""
    p = np.linspace(0.01, 0.99, 200)
    with pytest.raises(
        ValueError, match=r"y must hold outcomes as 1 \(won\) and 0 \(lost\), got 'won', 'lost'"
    ):
        StageThresholds().fit(p, np.where(p > 0.5, "won", "lost")[::-1])
    with pytest.raises(ValueError, match="got 0, 2"):
        StageThresholds().fit(p, (p > 0.5).astype(int) * 2)
    fitted = StageThresholds().fit(p, (p > 0.5).astype(bool))  # booleans are outcomes too
    assert fitted.sql_threshold_ >= fitted.mql_threshold_


def test_train_prints_every_policy_that_promises_something_against_what_it_gave() -> None:
    """The README says each stage's policy is printed against what it gave: expected value had
    printed nothing. A fixed probability promises nothing to measure and prints nothing."""
    from leadscore.commands.train import _policy_lines
    from leadscore.stages import policy_check

    p = np.linspace(0.01, 0.99, 500)
    y = _labels(p, 3)
    valued = StageThresholds(
        {
            "mql": {"policy": "probability", "target": 0.2},
            "sql": {"policy": "expected_value"},
            "deal_value": 1000.0,
            "contact_cost": 300.0,
        }
    ).fit(p, y)
    (line,) = _policy_lines(policy_check(valued, p, y))
    at = p >= valued.sql_threshold_
    shown = f"{1000 * y[at].mean() - 300:,.0f} per lead at the stage"
    assert line.startswith("SQL policy expected_value, leads worth more than their contact")
    assert f"{shown} on the calibration fold (where it was set), {shown} on the test fold" in line


@pytest.mark.parametrize(
    ("policy", "mql", "sql", "message"),
    [
        (
            "probability",
            0.3,
            0.1,
            "mql.target 0.3 is above sql.target 0.1, both by probability: the MQL cut-off "
            "cannot be above the SQL one. Give mql.target at most 0.1",
        ),
        (
            "recall",
            0.5,
            0.9,
            "mql.target 0.5 is below sql.target 0.9, both by recall: MQL and above must hold "
            "at least the wins SQL holds. Give mql.target at least 0.9",
        ),
        (
            "precision",
            0.6,
            0.3,
            "mql.target 0.6 is above sql.target 0.3, both by precision: MQL and above hold "
            "more leads than SQL and cannot convert more often. Give mql.target at most 0.3",
        ),
        (
            "capacity",
            10,
            100,
            "mql.target 10 is below sql.target 100, both by capacity: MQL and above count at "
            "least the leads SQL counts. Give mql.target at least 100",
        ),
    ],
)
def test_rules_of_one_kind_whose_targets_contradict_are_refused_with_both_keys(
    policy: str, mql: float, sql: float, message: str
) -> None:
    """The review's c20 (probability 0.3 / 0.1), c6 (recall 0.5 / 0.9) and c7 (capacity
    10 / 100): trained with a warning, the MQL cut-off moved to SQL's and saved. The fit
    cannot honour both, so the config is refused, in one line with the fix."""
    data = {
        "stages": {
            "mql": {"policy": policy, "target": mql},
            "sql": {"policy": policy, "target": sql},
        }
    }
    with pytest.raises(SpecError) as err:
        parse_config(data, source="c20.yaml")
    text = str(err.value)
    assert text.startswith(f"c20.yaml: stages: {message}"), text
    assert text.endswith("(equal leaves the MQL stage empty), or swap the two targets.")
    assert "\n" not in text
    # swapped, or equal (an empty MQL stage on purpose), they stand
    swapped = {"mql": {"policy": policy, "target": sql}, "sql": {"policy": policy, "target": mql}}
    parse_config({"stages": swapped})
    same = {"mql": {"policy": policy, "target": sql}, "sql": {"policy": policy, "target": sql}}
    parse_config({"stages": same})
    # the same targets under rules of two kinds are only compared on data, at fit time
    other = "capacity" if policy != "capacity" else "recall"
    target = 5 if other == "capacity" else 0.5
    parse_config(
        {
            "stages": {
                "mql": {"policy": policy, "target": mql},
                "sql": {"policy": other, "target": target},
            }
        }
    )


def test_a_contradiction_with_a_default_target_says_it_is_the_default() -> None:
    """A config that sets only SQL (recall 95%) meets the default MQL (recall 90%)."""
    with pytest.raises(
        SpecError, match=r"mql\.target 0\.9 \(the default\) is below sql\.target 0\.95,"
    ):
        parse_config({"stages": {"sql": {"policy": "recall", "target": 0.95}}})
    with pytest.raises(SpecError, match=r"below sql\.target 0\.5 \(the default\), both by recall"):
        parse_config({"stages": {"mql": {"policy": "mql_recall", "target": 0.4}}})


def test_expected_value_stages_need_a_nurture_cost_at_most_the_contact_cost() -> None:
    both = {"mql": {"policy": "expected_value"}, "sql": {"policy": "expected_value"}}
    with pytest.raises(SpecError, match=r"nurture_cost 300 is above contact_cost 200, "):
        parse_config({"stages": {**both, **_policy(both["mql"], both["sql"]), "nurture_cost": 300}})
    parse_config({"stages": _policy(both["mql"], both["sql"])})  # 20 against 200


def test_a_saved_model_with_contradicting_rules_still_loads() -> None:
    """A model trained before the check (its MQL cut-off moved to SQL's, with a warning)
    must keep scoring: only a config is refused, not a policy read back from a model."""
    saved = {
        "policy": {
            **StagePolicy().model_dump(),
            "mql": {"policy": "probability", "target": 0.3},
            "sql": {"policy": "probability", "target": 0.1},
        },
        "mql_threshold_": 0.1,
        "sql_threshold_": 0.1,
        "achieved_": {},
        "warnings_": ["the SQL cut-off (0.100) is below the MQL cut-off (0.300)"],
    }
    stages = StageThresholds.from_dict(saved)
    assert (stages.mql_threshold_, stages.sql_threshold_) == (0.1, 0.1)
    assert stages.policy_.mql.target == 0.3
    with pytest.raises(SpecError, match=r"mql\.target 0\.3 is above sql\.target 0\.1"):
        StageThresholds(saved["policy"]).fit(np.linspace(0, 1, 11), np.arange(11) > 5)
