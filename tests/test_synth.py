"""The synthetic closed-loop generator: determinism, the contract, and the laws it promises."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from pandas.api import types as ptypes
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from leadscore.cli import main
from leadscore.errors import SpecError
from leadscore.io import load_closed_loop
from leadscore.schema import ACTIVITY_TYPES, validate_closed_loop
from leadscore.synth import (
    CHANNELS,
    FREE_MAIL_DOMAINS,
    SynthParams,
    generate_closed_loop,
    true_conversion_probability,
    write_synthetic,
)

TABLES = ("leads", "activities", "outcomes", "truth", "costs")


@pytest.fixture(scope="module")
def big():
    """20,000 leads with the default parameters (about a second)."""
    return generate_closed_loop(SynthParams(n_leads=20_000, seed=11))


@pytest.fixture(scope="module")
def small():
    return generate_closed_loop(SynthParams(n_leads=1_500, seed=5, block_size=600))


def test_same_seed_same_data_and_other_seed_other_data(small):
    again = generate_closed_loop(SynthParams(n_leads=1_500, seed=5, block_size=600))
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(small, name), getattr(again, name))
    other = generate_closed_loop(SynthParams(n_leads=1_500, seed=6, block_size=600))
    assert not small.leads["campaign"].equals(other.leads["campaign"])
    assert not small.truth["p_win"].equals(other.truth["p_win"])


def test_written_parquet_equals_in_memory_data(small, tmp_path):
    paths = write_synthetic(small.params, tmp_path / "out", progress=False)
    for name in ("leads", "activities", "outcomes", "truth"):
        written = pd.read_parquet(paths[name])
        expected = getattr(small, name)
        pd.testing.assert_frame_equal(written, expected.astype(written.dtypes.to_dict()))
    pd.testing.assert_frame_equal(pd.read_csv(paths["costs"]), small.costs)
    manifest = json.loads(paths["manifest"].read_text())
    assert manifest["seed"] == 5
    assert manifest["counts"]["leads"] == 1_500
    assert manifest["counts"]["activities"] == len(small.activities)
    assert manifest["counts"]["won"] == int((small.outcomes["outcome"] == "won").sum())
    assert manifest["observed_until"] == "2026-06-30T00:00:00"


def test_output_follows_the_event_contract(small, tmp_path):
    data = validate_closed_loop(small.leads, small.activities, small.outcomes)
    assert len(data.leads) == 1_500 and len(data.activities) == len(small.activities)
    assert small.leads["lead_id"].iloc[0] == "L0000001"
    assert small.leads["lead_id"].is_unique and small.leads["created_at"].is_monotonic_increasing
    assert set(small.leads["source"]) <= set(CHANNELS)
    pairs = zip(small.leads["campaign"], small.leads["source"], strict=True)
    assert all(campaign.startswith(source) for campaign, source in pairs)
    assert ptypes.is_integer_dtype(small.leads["company_size"])
    assert (small.leads["company_size"].dropna() >= 1).all()
    assert small.leads["email"].str.fullmatch(r"[a-z0-9._]+@[a-z0-9.]+\.[a-z]+").all()
    assert set(small.activities["activity_type"].astype(str)) <= set(ACTIVITY_TYPES)
    assert set(small.outcomes["outcome"]) == {"won", "lost"}
    assert small.leads["created_at"].min() >= pd.Timestamp("2025-01-01")
    assert small.leads["created_at"].max() < small.observed_until

    write_synthetic(small.params, tmp_path / "d", progress=False)
    loaded = load_closed_loop(tmp_path / "d")
    assert len(loaded.leads) == 1_500
    assert len(loaded.outcomes) == len(small.outcomes)


def test_activity_details_and_values_are_what_the_contract_says(small):
    acts = small.activities
    kind = acts["activity_type"].astype(str)
    detail = acts["detail"].astype("string")
    allowed = {
        "page_view": {
            "pricing",
            "demo",
            "case_study",
            "blog",
            "product",
            "docs",
            "careers",
            "about",
        },
        "form_fill": {
            "demo_request",
            "contact_sales",
            "pricing_quote",
            "newsletter",
            "content_download",
            "webinar_registration",
        },
        "download": {"ebook", "whitepaper", "case_study", "datasheet"},
        "webinar": {"registered", "attended"},
    }
    for name, details in allowed.items():
        assert set(detail[kind == name]) <= details, name
    assert set(kind) >= {
        "web_visit",
        "page_view",
        "form_fill",
        "email_sent",
        "email_open",
        "email_click",
        "download",
        "webinar",
        "chat",
        "trial_signup",
        "trial_usage",
        "event",
    }
    assert (acts.loc[kind == "web_visit", "value"] > 0).all()
    assert (acts.loc[kind == "chat", "value"] >= 1).all()
    assert (acts.loc[kind == "trial_usage", "value"] > 0).all()
    assert acts.loc[kind.isin(["page_view", "form_fill", "email_open"]), "value"].isna().all()
    signups = acts[kind == "trial_signup"]
    assert signups["lead_id"].is_unique
    usage = acts[kind == "trial_usage"]
    first_signup = usage["lead_id"].map(signups.set_index("lead_id")["occurred_at"])
    assert (usage["occurred_at"] > first_signup).all()


def test_activity_stays_inside_each_leads_window(big):
    acts = big.activities
    created = acts["lead_id"].map(big.leads.set_index("lead_id")["created_at"])
    closed = acts["lead_id"].map(big.outcomes.set_index("lead_id")["closed_at"])
    assert (acts["occurred_at"] >= created).all()
    assert (acts["occurred_at"] < big.observed_until).all()
    assert not (acts["occurred_at"] > closed).any()
    assert (big.outcomes["closed_at"] <= big.observed_until).all()
    assert (acts["lead_id"].to_numpy()[:-1] <= acts["lead_id"].to_numpy()[1:]).all()
    same = acts["lead_id"].to_numpy()[:-1] == acts["lead_id"].to_numpy()[1:]
    assert (np.diff(acts["occurred_at"].to_numpy())[same] >= np.timedelta64(0)).all()


def test_open_leads_have_no_outcome_and_close_later(big):
    truth = big.truth.set_index("lead_id")
    closed = truth.index.isin(big.outcomes["lead_id"])
    assert (truth.loc[closed, "closes_at"] <= big.observed_until).all()
    assert (truth.loc[~closed, "closes_at"] > big.observed_until).all()
    assert 0.03 < (~closed).mean() < 0.3
    outcome = big.outcomes.set_index("lead_id")["outcome"]
    assert (truth.loc[outcome.index, "eventual_outcome"] == outcome).all()


def test_mean_activities_and_close_delay_match_the_parameters(big):
    per_lead = len(big.activities) / len(big.leads)
    assert 45 < per_lead < 55
    delay_days = (big.truth["closes_at"] - big.leads["created_at"]).dt.total_seconds() / 86400
    assert delay_days.mean() == pytest.approx(60.0, rel=0.08)


@pytest.mark.parametrize("win_rate", [0.05, 0.3])
def test_win_rate_is_the_parameter(win_rate):
    n = 10_000
    data = generate_closed_loop(SynthParams(n_leads=n, seed=2, win_rate=win_rate))
    p = data.truth["p_win"].to_numpy()
    assert p.mean() == pytest.approx(win_rate, abs=4 * p.std() / np.sqrt(n) + 0.002)
    won = (data.truth["eventual_outcome"] == "won").to_numpy()
    sd = np.sqrt(np.sum(p * (1 - p))) / n
    assert abs(won.mean() - p.mean()) < 4 * sd


def test_realised_wins_among_closed_leads_match_the_truth(big):
    truth = big.truth.set_index("lead_id").loc[big.outcomes["lead_id"]]
    p = truth["p_win"].to_numpy()
    won = (big.outcomes["outcome"] == "won").to_numpy()
    sd = np.sqrt(np.sum(p * (1 - p))) / len(p)
    assert abs(won.mean() - p.mean()) < 4 * sd
    assert won.mean() == pytest.approx(0.12, abs=0.02)
    # the truth is calibrated: outcome ~ logit(p_win) has slope 1 and intercept 0
    logit = np.log(p / (1 - p)).reshape(-1, 1)
    model = LogisticRegression(C=1e6).fit(logit, won)
    assert model.coef_[0, 0] == pytest.approx(1.0, abs=0.12)
    assert model.intercept_[0] == pytest.approx(0.0, abs=0.15)


def test_channel_mix_is_the_parameter():
    n = 20_000
    mix = {"paid_search": 0.5, "chat": 0.3, "events": 0.2}
    data = generate_closed_loop(SynthParams(n_leads=n, seed=4, channel_mix=mix))
    shares = data.leads["source"].value_counts(normalize=True)
    assert set(shares.index) == set(mix)
    for channel, share in mix.items():
        assert abs(shares[channel] - share) < 4 * np.sqrt(share * (1 - share) / n)


def test_closed_form_target_matches_simulated_outcomes(big):
    as_of, horizon = pd.Timestamp("2025-12-31"), 90
    truth = big.truth.set_index("lead_id")
    created = big.leads.set_index("lead_id")["created_at"]
    open_then = truth[(created < as_of) & (truth["closes_at"] > as_of)]
    won = (open_then["eventual_outcome"] == "won") & (
        open_then["closes_at"] <= as_of + pd.Timedelta(days=horizon)
    )
    prob = true_conversion_probability(open_then, horizon)
    sd = np.sqrt(np.sum(prob * (1 - prob))) / len(prob)
    assert abs(won.mean() - prob.mean()) < 4 * sd
    assert roc_auc_score(won, prob) > 0.8


def test_true_conversion_probability_formula():
    truth = pd.DataFrame({"p_win": [0.5, 0.2, 0.0], "close_rate_per_day": [0.01, 1.0, 0.5]})
    got = true_conversion_probability(truth, 30)
    expected = truth["p_win"] * (1 - np.exp(-truth["close_rate_per_day"] * 30))
    np.testing.assert_allclose(got, expected)
    assert got.name == "p_won_within_30d"
    assert (true_conversion_probability(truth, 0) == 0).all()
    np.testing.assert_allclose(true_conversion_probability(truth, 1e6), truth["p_win"])
    with pytest.raises(SpecError, match="no column 'close_rate_per_day'"):
        true_conversion_probability(truth[["p_win"]], 30)
    with pytest.raises(SpecError, match="horizon_days must be >= 0"):
        true_conversion_probability(truth, -1)


def test_observable_signals_carry_the_truth(big):
    leads = big.leads.set_index("lead_id")
    truth = big.truth.set_index("lead_id")
    free = leads["email"].str.split("@").str[1].isin(FREE_MAIL_DOMAINS)
    assert 0.15 < free.mean() < 0.4
    assert truth.loc[free, "p_win"].mean() < truth.loc[~free, "p_win"].mean()
    students = leads["job_title"].isin(["Student", "Intern", "Job Seeker"])
    seniors = leads["job_title"].str.contains(r"^(?:VP|Head|Director|Chief)", na=False)
    assert truth.loc[students, "p_win"].mean() < truth.loc[seniors, "p_win"].mean()
    acts = big.activities
    key = acts["activity_type"].astype(str) + ":" + acts["detail"].astype(str)
    intent_rows = key.isin(["page_view:pricing", "page_view:demo", "form_fill:demo_request"])
    counts = acts[intent_rows].groupby("lead_id").size().reindex(truth.index, fill_value=0)
    assert np.corrcoef(counts, truth["intent"])[0, 1] > 0.3
    by_campaign = truth.groupby(leads["campaign"])["p_win"].mean()
    assert by_campaign["referral_customer"] > 2 * by_campaign["paid_social_facebook_leadgen"]


def test_costs_differ_by_channel(big):
    costs = big.costs.set_index("channel")["spend"]
    assert list(costs.index) == list(CHANNELS)
    per_lead = costs / big.leads["source"].value_counts().reindex(costs.index)
    assert per_lead["events"] > 5 * per_lead["organic"]
    assert (costs > 0).all()


def test_csv_output_loads_and_replaces_earlier_parquet(tmp_path):
    params = SynthParams(n_leads=400, seed=9)
    out = tmp_path / "data"
    write_synthetic(params, out, progress=False)
    paths = write_synthetic(params, out, fmt="csv", progress=False)
    assert paths["activities"].suffix == ".csv"
    assert not (out / "leads.parquet").exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["leads.csv", "activities.csv", "outcomes.csv", "truth.csv", "costs.csv", "manifest.json"]
    )
    loaded = load_closed_loop(out)
    expected = generate_closed_loop(params)
    assert loaded.leads["lead_id"].tolist() == expected.leads["lead_id"].tolist()
    assert len(loaded.activities) == len(expected.activities)
    pd.testing.assert_series_equal(
        loaded.activities["occurred_at"], expected.activities["occurred_at"]
    )


def test_refuses_a_folder_of_other_tables(tmp_path):
    (tmp_path / "leads.csv").write_text("lead_id,created_at\na,2024-01-01\n")
    with pytest.raises(SpecError, match=r"leads\.csv, which leadscore synth did not write"):
        write_synthetic(SynthParams(n_leads=10), tmp_path, progress=False)
    assert (tmp_path / "leads.csv").read_text().startswith("lead_id")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_leads": 0}, r"n_leads must be a whole number >= 1, got 0"),
        ({"win_rate": 1.5}, r"win_rate must be a number in \[0.001, 0.95\]"),
        ({"channel_mix": {"tv": 1.0}}, r"unknown channel 'tv'"),
        ({"channel_mix": {"chat": 0.0}}, r"shares sum to zero"),
        ({"start": "2026-07-01"}, r"not at least one day after start"),
        ({"end": "soon"}, r"end 'soon' is not a date"),
        ({"mean_activities": 2.0}, r"mean_activities must be a number in \[3, 10000\]"),
    ],
)
def test_bad_parameters_raise_spec_errors(kwargs, message):
    with pytest.raises(SpecError, match=message):
        params = SynthParams(**{"n_leads": 10, **kwargs})
        generate_closed_loop(params)


def test_cli_round_trip(tmp_path, capsys):
    out = tmp_path / "synthetic"
    code = main(
        [
            "synth",
            "--leads",
            "300",
            "--out",
            str(out),
            "--seed",
            "3",
            "--channel-mix",
            "organic=1,chat=1",
            "--no-progress",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "Wrote 300 synthetic leads" in printed and str(out) in printed
    data = load_closed_loop(out)
    assert len(data.leads) == 300
    assert set(data.leads["source"]) == {"organic", "chat"}
    expected = generate_closed_loop(
        SynthParams(n_leads=300, seed=3, channel_mix={"organic": 1, "chat": 1})
    )
    assert data.leads["email"].tolist() == expected.leads["email"].tolist()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--leads", "0"], "--leads must be at least 1"),
        (["--leads", "5", "--win-rate", "1"], "--win-rate must be between 0 and 1"),
        (["--leads", "5", "--channel-mix", "organic"], "--channel-mix: cannot read 'organic'"),
        (["--leads", "5", "--start", "yesterday-ish"], "start 'yesterday-ish' is not a date"),
        (
            ["--leads", "5", "--start", "2097-06-01", "--end", "2099-01-01"],
            "--end 2099-01-01 is in the future",
        ),
    ],
)
def test_cli_rejects_bad_arguments(tmp_path, capsys, args, message):
    code = main(["synth", "--out", str(tmp_path / "x"), *args])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_an_end_in_the_future_is_refused_before_anything_is_written():
    """Rows up to --end and a manifest that declares it: data dated 2097-2099 had been written
    and validated without a word; validate now refuses both, so synth refuses the --end
    (a day of slack, as validate allows) and says what the default period is."""
    from leadscore.commands.synth import refuse_future_end

    now = pd.Timestamp("2026-11-25 12:00")
    refuse_future_end(pd.Timestamp("2026-11-26"), "2026-11-26", now=now)
    with pytest.raises(SpecError) as raised:
        refuse_future_end(pd.Timestamp("2026-11-27"), "2026-11-27", now=now)
    assert str(raised.value) == (
        "--end 2026-11-27 is in the future (it is 2026-11-25 12:00 UTC now): the data would "
        "hold rows after the current time, which validate, train and score refuse. Give an "
        "--end no later than today (and a --start before it); the default period ends on "
        f"{SynthParams().end}."
    )


class _Interrupted(Exception):
    """The failure a test makes a run meet part-way, in place of Ctrl+C or a full disk."""


def _fail_after_the_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``write_synthetic`` fail once every table's rows are written, before costs.csv."""
    import leadscore.synth as synth

    def costs(*args: object) -> pd.DataFrame:
        raise _Interrupted

    monkeypatch.setattr(synth, "_costs", costs)


def test_a_failed_run_removes_the_folders_it_created(tmp_path, monkeypatch):
    """``synth --out NEW/a/b`` interrupted left NEW/a/b behind, empty (its files were already
    removed): the run takes away the folders it made, and only those."""
    _fail_after_the_tables(monkeypatch)
    with pytest.raises(_Interrupted):
        write_synthetic(
            SynthParams(n_leads=50, seed=1), tmp_path / "new" / "a" / "b", progress=False
        )
    assert list(tmp_path.iterdir()) == []


def test_a_failed_run_keeps_a_folder_that_was_there_and_its_files(tmp_path, monkeypatch):
    """A folder there before the run (with a file of its own) stays, and so does the file;
    only the folders the run made below it go."""
    (tmp_path / "notes.txt").write_text("mine\n")
    _fail_after_the_tables(monkeypatch)
    with pytest.raises(_Interrupted):
        write_synthetic(SynthParams(n_leads=50, seed=1), tmp_path / "a" / "b", progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    with pytest.raises(_Interrupted):
        write_synthetic(SynthParams(n_leads=50, seed=1), tmp_path, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_start_and_end_are_read_as_as_of_is_and_stored_in_iso(tmp_path, capsys):
    """``--start 01/02/2025`` reads as 1 February or 2 January and was taken as typed, into
    the manifest too, where ``--as-of 05/06/2026`` is refused: read alike, stored as ISO."""
    code = main(["synth", "--out", str(tmp_path / "x"), "--leads", "5", "--start", "01/02/2025"])
    assert code == 2
    assert "--start '01/02/2025' reads both day-first (2025-02-01)" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    code = main(["synth", "--out", str(tmp_path / "y"), "--leads", "5", "--start", "13/02/2025"])
    assert code == 0, capsys.readouterr().err
    params = json.loads((tmp_path / "y" / "manifest.json").read_text())["params"]
    assert params["start"] == "2025-02-13"
