"""One fact, one reason: windows of a count merge, zeros read as absences, low counts as "Only".

The event-form tests train a small model on synthetic event data exactly as ``leadscore train``
does and explain it exactly as the batch scorer does (calibrated, "sides" rescaling, the
model's encoder), so what they check is what lands in ``scored_leads``.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from leadscore.config import parse_config
from leadscore.datasets import prepare_flat_dataset
from leadscore.errors import DataError
from leadscore.explain import Explanation, explain, explain_batch, lead_reasons
from leadscore.features import (
    build_features,
    build_training_examples,
    default_as_of_dates,
    feature_catalogue,
)
from leadscore.io import load_closed_loop
from leadscore.model import META_FILE, LeadScoringModel
from leadscore.reasons import reason_text
from leadscore.specs import load_spec
from leadscore.subscores import NOT_THE_LEADS_DOING, NOT_THE_LEADS_DOING_WHEN_MISSING
from leadscore.synth import SynthParams, write_synthetic
from leadscore.training import train

CATALOGUE = {f.name: f for f in feature_catalogue()}
#: The positive verbs of the catalogue's count sentences ("Took 2 ...", "Visited ... 2 times").
DEED_VERBS = ("Took", "Visited", "Had", "Viewed", "Submitted", "Spent", "Downloaded", "Sent")
#: A count written as a number 0 ("... 0 times", "Took 0 high-intent actions").
ZERO_COUNT = re.compile(r"(^|\s)0 (time|high-intent|page|form|activit|marketing|second|day)")


def concept(name: str) -> str:
    """The behavioural signal a catalogue column is about, written independently of the code
    under test: the stem of a windowed count, and high-intent recency with high-intent counts."""
    match = re.fullmatch(r"(.+)_(\d+d|total)", name)
    stem = match.group(1) if match else name
    return {"days_since_last_high_intent": "high_intent_actions"}.get(stem, stem)


@pytest.fixture(scope="module")
def event_model(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Synthetic event history, a model trained on it, and the open leads' explanation."""
    root = tmp_path_factory.mktemp("facts")
    write_synthetic(SynthParams(n_leads=2000, seed=7, start="2025-09-01"), root, progress=False)
    events = load_closed_loop(root)
    dates = default_as_of_dates(events, 60, every_days=30, warmup_days=60)
    examples = build_training_examples(events, dates, 60, name="crm", threads=1)
    config = parse_config(
        {
            "cold_start": {"min_wins": 20, "min_leads": 200},
            "quality_gate": {"allow_worse": True},
            "lightgbm": {"num_boost_round": 150, "params": {"num_threads": 1}},
            "evaluation": {"resamples": 0},
            "calibration": {"cv": 2},
        }
    )
    model = train(examples, config).model
    X = examples.X.iloc[-1200:]
    batch = model.explain_batch(X)
    return {"model": model, "X": X, "batch": batch, "exp": model.explain(X), "root": root}


def test_a_lead_s_age_does_not_make_it_engaged(event_model):
    """A lead that did nothing ranked as more engaged the younger it was (81 at half a day,
    76 at two months here; 64 against 34 on 20,000 leads): its age and the e-mails marketing
    sent it counted as its engagement. They count in neither sub-score now."""
    model = event_model["model"]
    catalogue = {f.name for f in feature_catalogue()}
    assert catalogue >= NOT_THE_LEADS_DOING  # a renamed feature would slip back in unseen
    assert {f.name for f in model.features} >= NOT_THE_LEADS_DOING
    grouped = {name for names in model.sub_scorer.groups_.values() for name in names}
    assert not grouped & NOT_THE_LEADS_DOING
    events = load_closed_loop(event_model["root"])
    as_of = pd.Timestamp(default_as_of_dates(events, 60, every_days=30, warmup_days=60)[-1])
    one = events.leads.iloc[[0]]
    ages = (0.5, 3, 14, 60)
    idle = [
        one.assign(lead_id=f"IDLE-{days}", created_at=as_of - pd.Timedelta(days=days))
        for days in ages
    ]
    table = build_features(
        replace(events, leads=pd.concat([events.leads, *idle], ignore_index=True)), as_of
    )
    rows = table.frame[table.frame["lead_id"].str.startswith("IDLE-")]
    assert len(rows) == len(ages)
    engagement = model.explain_batch(table.X.loc[rows.index])["engagement_score"].astype(int)
    assert engagement.max() - engagement.min() <= 2, engagement.tolist()
    # nor does a lead that did nothing rank among the engaged (77 when marketing's unsent
    # e-mails counted as its own: see the next test)
    assert engagement.max() <= 60, engagement.tolist()


def test_a_lead_marketing_never_e_mailed_is_not_engaged_for_it(event_model):
    """A missing open or click rate (no e-mail sent) is marketing's doing, not the lead's: it
    lifted leads without a visit or an e-mail to an engagement of 66 on average, above the
    e-mailed leads' 45, and an idle new lead to 77. The rates count only where given now."""
    model, X, batch = event_model["model"], event_model["X"], event_model["batch"]
    assert set(model.sub_scorer.not_counted_when_missing_) == NOT_THE_LEADS_DOING_WHEN_MISSING
    engagement = batch["engagement_score"].astype(float)
    never_mailed = X["email_open_rate_90d"].isna()
    quiet = never_mailed & (X["web_visits_90d"] == 0)
    assert quiet.sum() >= 20 and (~never_mailed).sum() >= 50
    assert engagement[quiet].mean() < engagement[~never_mailed].mean() - 10
    # the rates' contributions where missing change no sub-score; where given they do
    exp = event_model["exp"]
    scorer = model.sub_scorer
    moved = exp.log_odds.copy()
    moved.loc[never_mailed.to_numpy(), "email_open_rate_90d"] += 5.0
    same = scorer.transform(moved, exp.values)
    pd.testing.assert_frame_equal(same, scorer.transform(exp.log_odds, exp.values))
    moved.loc[(~never_mailed).to_numpy(), "email_open_rate_90d"] += 5.0
    raised = scorer.transform(moved, exp.values)["engagement_score"]
    assert (
        raised[~never_mailed.to_numpy()] >= same["engagement_score"][~never_mailed.to_numpy()]
    ).all()
    assert (raised != same["engagement_score"]).any()
    with pytest.raises(ValueError, match="pass values"):
        scorer.transform(exp.log_odds)


def _reasons(batch: pd.DataFrame) -> list[list[dict]]:
    return [json.loads(cell) for cell in batch["reasons_json"]]


def _texts(batch: pd.DataFrame, side: str) -> list[list[str]]:
    return [[t for t in cell.split("; ") if t] for cell in batch[f"reasons_{side}"]]


# --------------------------------------------------------------------------- wording


def test_zero_counts_read_as_an_absence():
    assert (
        reason_text(CATALOGUE["pricing_page_views_90d"], 0.0)
        == "Has not visited the pricing page in the last 90 days"
    )
    assert (
        reason_text(CATALOGUE["high_intent_actions_90d"], 0.0)
        == "No high-intent action (pricing or demo pages, demo or sales forms) in the last 90 days"
    )
    assert (
        reason_text(CATALOGUE["high_intent_forms_total"], 0.0)
        == "Has not requested a demo, a sales call or a quote yet"
    )
    # the same fact the e-mail rates state when no send is logged: one sentence for both
    assert reason_text(CATALOGUE["email_sends_90d"], 0.0) == reason_text(
        CATALOGUE["email_open_rate_90d"], None
    )
    for feature in CATALOGUE.values():
        if feature.kind == "numeric":
            for against in (False, True):
                text = reason_text(feature, 0.0, against=against)
                assert not ZERO_COUNT.search(text), (feature.name, text)
                assert "0%" not in text, (feature.name, text)


def test_a_count_against_the_lead_reads_as_too_little():
    high_intent = CATALOGUE["high_intent_actions_90d"]
    assert (
        reason_text(high_intent, 2.0, against=True)
        == "Only 2 high-intent actions (pricing or demo pages, demo or sales forms) in the last "
        "90 days"
    )
    assert reason_text(high_intent, 1.0, against=True).startswith("Only 1 high-intent action ")
    # for the lead, and at 0 either way, the count reads as before / as an absence
    assert reason_text(high_intent, 2.0).startswith("Took 2 high-intent actions")
    assert reason_text(high_intent, 0.0, against=True).startswith("No high-intent action")
    assert (
        reason_text(CATALOGUE["pricing_page_views_30d"], 3.0, against=True)
        == "Only 3 pricing page visits in the last 30 days"
    )
    # e-mails we sent are not the lead's doing: more is not better, no "Only"
    assert reason_text(CATALOGUE["email_sends_90d"], 4.0, against=True).startswith("Received 4")
    for feature in CATALOGUE.values():
        if feature.low_sentence:
            text = reason_text(feature, 2.0, against=True)
            assert text.startswith("Only 2 "), (feature.name, text)
            assert "{" not in text


# --------------------------------------------------------------------------- event model


def test_no_two_reasons_of_a_lead_come_from_one_signal(event_model):
    batch = event_model["batch"]
    merged_somewhere = False
    for reasons in _reasons(batch):
        concepts = [concept(r["feature"]) for r in reasons]
        assert len(concepts) == len(set(concepts)), [r["feature"] for r in reasons]
        facts = [r["fact"] for r in reasons if "fact" in r]
        assert len(facts) == len(set(facts))
        merged_somewhere |= any(r.get("fact") == "high_intent_actions" for r in reasons)
    assert merged_somewhere
    # nor the same sentence twice, for or against
    for side_for, side_against in zip(_texts(batch, "for"), _texts(batch, "against"), strict=True):
        said = side_for + side_against
        assert len(said) == len(set(said)), said


def test_zero_visits_never_read_as_zero_times(event_model):
    batch, X = event_model["batch"], event_model["X"]
    texts = [t for side in ("for", "against") for lead in _texts(batch, side) for t in lead]
    assert not [t for t in texts if ZERO_COUNT.search(t)][:5]
    absences = [t for t in texts if t.startswith(("Has not", "No high-intent action"))]
    assert len(absences) > 50
    idle = (X["high_intent_actions_90d"].to_numpy() == 0) & (
        X["high_intent_forms_total"].to_numpy() == 0
    )
    about_intent = [
        t
        for lead, none in zip(_texts(batch, "against"), idle, strict=True)
        if none
        for t in lead
        if re.search(r"high-intent|pricing page|demo page|requested a demo", t)
    ]
    assert about_intent
    assert all(t.startswith(("Has not", "No high-intent action")) for t in about_intent)


def test_a_count_the_model_may_only_raise_never_reads_as_a_deed_against(event_model):
    batch = event_model["batch"]
    model = event_model["model"]
    signs = dict(
        zip(model.feature_names, model.metadata["params"]["monotone_constraints"], strict=True)
    )
    against = [
        (text, reason["feature"])
        for texts, reasons in zip(_texts(batch, "against"), _reasons(batch), strict=True)
        for text, reason in zip(
            texts, [r for r in reasons if r["direction"] == "against"], strict=True
        )
    ]
    constrained = [t for t, name in against if signs[name] > 0]
    assert not [t for t in constrained if t.split(" ", 1)[0] in DEED_VERBS]
    only = [t for t in constrained if t.startswith("Only ")]
    assert only, "no count spoke against any lead"
    features = {f.name: f for f in event_model["model"].features}
    for reasons in _reasons(batch):
        for r in reasons:
            feature = features[r["feature"]]
            if r["direction"] == "against" and signs[r["feature"]] > 0 and (r["value"] or 0) > 0:
                assert r["label"] == feature.label
                assert reason_text(feature, r["value"], against=True).startswith("Only ")


def test_shown_contributions_are_the_merged_facts_nothing_lost_or_counted_twice(event_model):
    exp: Explanation = event_model["exp"]
    model = event_model["model"]
    fact_of = {f.name: getattr(f, "fact", None) or concept(f.name) for f in model.features}
    # fields that may share a sentence merge on top of facts ("No record of marketing e-mails
    # sent ..."; "Company size: 11-50 employees" from the size and its band): summed together
    family = {
        "email_sends": "email",
        "email_opens": "email",
        "email_clicks": "email",
        "company_size_band": "company_size",
    }
    fields = list(exp.fields)
    C = exp.contributions.to_numpy()
    checked = 0
    for row in range(0, len(C), 7):
        rf, ra = lead_reasons(exp, row, top_n=len(fields), min_contribution=0.0)
        reasons = rf + ra
        total = sum(r.contribution for r in reasons)
        assert total == pytest.approx(exp.probability[row] - exp.base_rate, abs=1e-9)
        by_fact: dict[str, list] = {}
        for r in reasons:
            by_fact.setdefault(fact_of[r.feature], []).append(r)
        for fact, said in by_fact.items():
            assert len(said) == 1, (fact, [r.text for r in said])
        sums: dict[str, float] = {}
        for j, name in enumerate(fields):
            key = family.get(fact_of[name], fact_of[name])
            sums[key] = sums.get(key, 0.0) + C[row, j]
        shown: dict[str, float] = {}
        for r in reasons:
            key = family.get(fact_of[r.feature], fact_of[r.feature])
            shown[key] = shown.get(key, 0.0) + r.contribution
        for key, value in sums.items():
            assert shown.get(key, 0.0) == pytest.approx(value, abs=1e-12), key
            checked += key == "high_intent_actions"
    assert checked > 50
    # the probability and the per-field contributions themselves are untouched
    np.testing.assert_allclose(exp.base_rate + C.sum(axis=1), exp.probability, atol=1e-9)
    np.testing.assert_allclose(
        event_model["batch"]["probability"], model.predict_proba(event_model["X"]), atol=1e-12
    )


def test_batch_reasons_match_single_lead_reasons(event_model):
    exp, batch = event_model["exp"], event_model["batch"]
    for row in range(0, len(batch), 37):
        rf, ra = lead_reasons(exp, row)
        assert batch["reasons_for"].iloc[row] == "; ".join(r.text for r in rf)
        assert batch["reasons_against"].iloc[row] == "; ".join(r.text for r in ra)
        items = json.loads(batch["reasons_json"].iloc[row])
        assert items == [r.to_dict() for r in (*rf, *ra)]
        for item in items:
            assert {"feature", "label", "value", "contribution", "direction"} <= set(item)
            assert set(item) - {"feature", "label", "value", "contribution", "direction"} <= {
                "fact"
            }


def test_a_model_file_saved_before_facts_loads_and_scores_alike(event_model, tmp_path):
    model: LeadScoringModel = event_model["model"]
    folder = model.save(tmp_path / "model")
    meta = json.loads((folder / META_FILE).read_text())
    for feature in meta["features"]:
        for key in ("zero_sentence", "low_sentence", "fact", "low_below"):
            feature.pop(key, None)
    (folder / META_FILE).write_text(json.dumps(meta))
    old = LeadScoringModel.load(folder)
    X = event_model["X"]
    np.testing.assert_array_equal(old.predict_proba(X), model.predict_proba(X))
    assert all(f.fact is None and f.zero_sentence is None for f in old.features)
    exp = old.explain(X.iloc[:50])
    for row in range(50):
        rf, ra = lead_reasons(exp, row)
        assert all("fact" not in r.to_dict() for r in (*rf, *ra))


# --------------------------------------------------------------------------- handmade


def _handmade(values: dict[str, list[float]], contributions: dict[str, list[float]]):
    """An explanation of catalogue columns with the given values and contributions."""
    names = list(values)
    features = tuple(CATALOGUE[n] for n in names)
    X = pd.DataFrame(values, dtype=float)
    C = pd.DataFrame(contributions, dtype=float)[names]
    n = len(X)
    return Explanation(
        base_rate=0.1,
        probability=0.1 + C.sum(axis=1).to_numpy(),
        contributions=C,
        log_odds=C.copy(),
        log_odds_bias=0.0,
        values=X,
        features=features,
        fields=tuple(names),
        shown=np.broadcast_to(np.arange(len(names)), (n, len(names))),
    )


def test_the_member_that_says_the_most_words_the_fact():
    hi = ["high_intent_actions_7d", "high_intent_actions_30d", "high_intent_actions_90d"]
    pricing = ["pricing_page_views_7d", "pricing_page_views_30d", "pricing_page_views_90d"]
    visits = ["web_visits_7d", "web_visits_30d", "web_visits_90d"]
    exp = _handmade(
        {
            **dict(zip(hi, [[0, 0], [2, 0], [5, 2]], strict=True)),
            "days_since_last_high_intent": [3, 40],
            **dict(zip(pricing, [[0, 0], [0, 0], [1, 0]], strict=True)),
            **dict(zip(visits, [[0, 0], [0, 0], [3, 0]], strict=True)),
        },
        {
            # lead 0 nets +0.052 on high intent, lead 1 nets -0.069; a pricing page visit is
            # a high-intent action, so its windows are the same fact
            **dict(zip(hi, [[-0.01, -0.02], [0.03, -0.01], [0.02, -0.03]], strict=True)),
            "days_since_last_high_intent": [0.01, 0.005],
            **dict(zip(pricing, [[0.001, -0.005], [0.0, -0.004], [0.001, -0.005]], strict=True)),
            # lead 0: the idle 7 days lift it most, but "Visited 3 times" is what reads as a
            # plus; lead 1 never visited and that lowers it
            **dict(zip(visits, [[0.004, -0.006], [0.001, -0.002], [0.002, -0.001]], strict=True)),
        },
    )
    rf, ra = lead_reasons(exp, 0)
    assert [r.text for r in rf] == [
        "Took 2 high-intent actions (pricing or demo pages, demo or sales forms) in the last "
        "30 days",
        "Visited the website 3 times in the last 90 days",
    ]
    assert [r.contribution for r in rf] == pytest.approx([0.052, 0.007])
    assert [r.feature for r in rf] == ["high_intent_actions_30d", "web_visits_90d"]
    assert ra == []
    rf, ra = lead_reasons(exp, 1)
    assert rf == []
    assert [r.text for r in ra] == [
        "Only 2 high-intent actions (pricing or demo pages, demo or sales forms) in the last "
        "90 days",
        "Has not visited the website in the last 7 days",
    ]
    assert [r.contribution for r in ra] == pytest.approx([-0.069, -0.009])
    assert {r.fact for r in ra} == {"high_intent_actions", "website"}
    assert json.loads(json.dumps(ra[0].to_dict()))["fact"] == "high_intent_actions"


def test_a_pricing_page_visit_never_speaks_against_the_high_intent_it_counts_in():
    """The deed and the count it is part of are one fact: one reason, on the side of their
    net contribution, never "Visited the pricing page 3 times" for and "Only 3 high-intent
    actions" against."""
    hi = ["high_intent_actions_7d", "high_intent_actions_30d", "high_intent_actions_90d"]
    exp = _handmade(
        {
            **dict(zip(hi, [[3], [3], [3]], strict=True)),
            "pricing_page_views_30d": [3],
            "demo_page_views_30d": [0],
            "high_intent_forms_30d": [0],
        },
        {
            **dict(zip(hi, [[-0.01], [-0.03], [-0.01]], strict=True)),
            "pricing_page_views_30d": [0.04],
            "demo_page_views_30d": [-0.002],
            "high_intent_forms_30d": [-0.03],
        },
    )
    rf, ra = lead_reasons(exp, 0)
    assert rf == [] and len(ra) == 1
    assert ra[0].fact == "high_intent_actions"
    assert ra[0].contribution == pytest.approx(-0.042)
    assert ra[0].text.startswith(("Only 3 high-intent", "Has not requested a demo"))


# --------------------------------------------------------------------------- flat tables


def _x_education_like(n: int, seed: int = 0) -> tuple[pd.DataFrame, object]:
    """A small table with every column the built-in x_education spec names, typed as there."""
    spec = load_spec("x_education", data_root=Path("."))
    rng = np.random.default_rng(seed)
    named = [spec.id, spec.label.column, spec.order_by, *spec.exclude, *spec.labels]
    named += [*spec.groups.fit, *spec.groups.engagement]
    numbers = {"TotalVisits", "Total Time Spent on Website", "Page Views Per Visit"}
    words = {
        "Lead Origin": ["API", "Landing Page Submission", "Lead Add Form"],
        "Lead Source": ["Google", "Direct Traffic", "Olark Chat", "Reference"],
        "What is your current occupation": ["Unemployed", "Working Professional", "Select"],
        "What matters most to you in choosing a course": ["Better Career Prospects", "Select"],
        "How did you hear about X Education": ["Online Search", "Word Of Mouth", "Select"],
    }
    visits = rng.poisson(2.0, n).astype(float)
    frame = {}
    for name in dict.fromkeys(named):
        if name == spec.id:
            frame[name] = [f"p{i}" for i in range(n)]
        elif name == spec.order_by:
            frame[name] = np.arange(n)
        elif name == spec.label.column:
            continue
        elif name == "TotalVisits":
            frame[name] = visits
        elif name in numbers:
            frame[name] = np.where(visits > 0, rng.gamma(2.0, 300.0, n), 0.0)
        elif name in words:
            frame[name] = rng.choice(words[name], n)
        else:
            frame[name] = rng.choice(["Yes", "No"], n, p=[0.2, 0.8])
    table = pd.DataFrame(frame)
    z = (
        -1.2
        + 0.5 * visits
        + 1.2 * (table["What is your current occupation"] == "Working Professional")
    )
    table[spec.label.column] = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return table, spec


def test_flat_table_reasons_read_as_before():
    """A flat table's features declare no zero or low sentence, and no fact unless the spec's
    ``facts`` joins them, so its reasons are the top contributions of single columns, worded
    "<label>: <value>", exactly as before."""
    table, spec = _x_education_like(1200)
    dataset = prepare_flat_dataset(table, spec.model_copy(update={"facts": {}}))
    new_fields = ("fact", "zero_sentence", "low_sentence")
    assert not any(getattr(f, k, None) for f in dataset.features for k in new_fields)
    params = {"objective": "binary", "num_leaves": 8, "verbose": -1, "num_threads": 1, "seed": 0}
    booster = lgb.train(params, lgb.Dataset(dataset.X, dataset.y), num_boost_round=40)
    exp = explain(booster, None, dataset.features, dataset.X)
    batch = explain_batch(booster, None, dataset.features, dataset.X)
    C = exp.contributions.to_numpy()
    zero_visits = 0
    for row in range(0, len(table), 11):
        order = np.argsort(-C[row], kind="stable")
        expected = {"for": [], "against": []}
        for side, picks in (("for", order[:3]), ("against", order[::-1][:3])):
            for j in picks:
                c = C[row, j]
                if (c >= 1e-3) if side == "for" else (c <= -1e-3):
                    value = dataset.X.iloc[row, j]
                    value = None if pd.isna(value) else value
                    if isinstance(value, (int, float, np.floating)):
                        value = float(value)
                    expected[side].append(reason_text(dataset.features[j], value))
        assert batch["reasons_for"].iloc[row] == "; ".join(expected["for"])
        assert batch["reasons_against"].iloc[row] == "; ".join(expected["against"])
        for item in json.loads(batch["reasons_json"].iloc[row]):
            assert set(item) == {"feature", "label", "value", "contribution", "direction"}
        zero_visits += "Website visits: 0" in batch["reasons_against"].iloc[row]
    assert zero_visits > 0  # a flat column still reads "label: value", 0 included


def test_columns_of_one_fact_in_a_spec_make_one_reason():
    """x_education's visits, time on site and pages per visit are one behaviour: never one of
    them for and another against a lead, their contributions summed into the one reason."""
    table, spec = _x_education_like(1200, seed=3)
    website = set(spec.facts["website"])
    dataset = prepare_flat_dataset(table, spec)
    assert {f.name for f in dataset.features if f.fact == "website"} == website
    params = {"objective": "binary", "num_leaves": 8, "verbose": -1, "num_threads": 1, "seed": 0}
    booster = lgb.train(params, lgb.Dataset(dataset.X, dataset.y), num_boost_round=40)
    exp = explain(booster, None, dataset.features, dataset.X)
    at = [list(exp.fields).index(name) for name in website]
    C = exp.contributions.to_numpy()
    both_ways = 0
    for row in range(len(table)):
        both_ways += bool((C[row, at] > 1e-3).any() and (C[row, at] < -1e-3).any())
        rf, ra = lead_reasons(exp, row, top_n=len(exp.fields), min_contribution=0.0)
        said = [r for r in (*rf, *ra) if r.feature in website]
        assert len(said) <= 1
        assert sum(r.contribution for r in said) == pytest.approx(C[row, at].sum(), abs=1e-12)
        assert all(r.fact == "website" for r in said)
    assert both_ways > 0  # the merge had leads to work on


def test_a_time_in_a_spec_s_units_reads_in_the_unit_that_suits_it():
    """x_education's seconds on the website read "20 minutes", not "1,225"; none reads none."""
    table, spec = _x_education_like(200, seed=5)
    features = {f.name: f for f in prepare_flat_dataset(table, spec).features}
    time = features["Total Time Spent on Website"]
    assert reason_text(time, 1225.0) == "Time on the website: 20 minutes"
    assert reason_text(time, 0.0) == "Time on the website: none"
    assert reason_text(time, 7200.0) == "Time on the website: 2 hours"
    plain = prepare_flat_dataset(table, spec.model_copy(update={"units": {}})).features
    assert reason_text({f.name: f for f in plain}[time.name], 1225.0).endswith(": 1,225")


def test_a_time_in_units_is_a_number_and_never_a_category():
    table, spec = _x_education_like(200, seed=6)
    column = "Total Time Spent on Website"
    table[column] = table[column].astype(object)
    table.loc[3, column] = "about an hour"
    with pytest.raises(DataError, match=r"'Total Time Spent on Website' is declared numeric"):
        prepare_flat_dataset(table, spec)
    with pytest.raises(ValueError, match=r"both categorical and units \(a time is a number\)"):
        spec.model_validate({**spec.model_dump(exclude={"base_dir"}), "categorical": [column]})


def test_a_spec_refuses_a_column_in_two_facts():
    spec = load_spec("x_education", data_root=Path("."))
    with pytest.raises(ValueError, match=r"both facts\.website and facts\.time"):
        spec.model_validate(
            {
                **spec.model_dump(exclude={"base_dir"}),
                "facts": {"website": ["TotalVisits"], "time": ["TotalVisits"]},
            }
        )


def test_a_count_reads_as_too_little_only_below_what_won_leads_show(event_model):
    """A count without the monotone constraint can lower the score for being high ("64
    activities in a week"), where "Only 64 activities" would say the opposite of the truth:
    it reads "Only" below the median among won examples, the plain fact at or above it. A
    constrained count reads "Only" at every value above 0."""
    model = event_model["model"]
    signs = dict(
        zip(model.feature_names, model.metadata["params"]["monotone_constraints"], strict=True)
    )
    with_low = [f for f in model.features if f.low_sentence]
    constrained = [f for f in with_low if signs[f.name] > 0]
    bounded = [f for f in with_low if signs[f.name] <= 0]
    assert constrained and bounded, "the model has no count of one kind or the other"
    assert all(f.low_below is None for f in constrained)
    for feature in bounded:
        assert feature.low_below is not None and feature.low_below > 0
        assert reason_text(feature, feature.low_below / 2, against=True).startswith("Only ")
        for value in (feature.low_below, 64 * feature.low_below):
            assert not reason_text(feature, value, against=True).startswith("Only")
    for feature in model.features:
        if CATALOGUE[feature.name].low_sentence and feature.low_sentence is None:
            assert not reason_text(feature, 64.0, against=True).startswith("Only")

    features = {f.name: f for f in model.features}
    batch = event_model["batch"]
    read = {True: 0, False: 0}
    for texts, reasons in zip(_texts(batch, "against"), _reasons(batch), strict=True):
        against = [r for r in reasons if r["direction"] == "against"]
        for text, reason in zip(texts, against, strict=True):
            feature, value = features[reason["feature"]], reason["value"]
            if not isinstance(value, int | float) or value <= 0 or not feature.low_sentence:
                continue
            low = feature.low_below is None or value < feature.low_below
            assert text.startswith("Only ") == low, (text, feature.low_below)
            read[low] += signs[feature.name] <= 0
    assert read[True] and read[False], "no unconstrained count read each way"


def test_bounds_survive_save_and_load_and_word_the_same_reasons(event_model, tmp_path):
    model: LeadScoringModel = event_model["model"]
    back = LeadScoringModel.load(model.save(tmp_path / "model"))
    assert back.features == model.features
    assert any(f.low_below for f in back.features)
    X = event_model["X"].iloc[:300]
    pd.testing.assert_frame_equal(back.explain_batch(X), event_model["batch"].iloc[:300])


def test_low_sentence_bounds_are_the_won_median_of_each_unconstrained_count():
    """Constrained counts keep "Only" unbounded; an unconstrained one gets the median among
    won rows (missing values left out); one whose won rows mostly show 0 loses "Only"."""
    from leadscore.encoding import FeatureEncoder
    from leadscore.training import low_sentence_bounds

    names = ["pricing_page_views_30d", "page_views_30d", "webinars_attended_90d", "lead_age_days"]
    features = [CATALOGUE.get(n) or replace(CATALOGUE["page_views_90d"], name=n) for n in names]
    features[3] = replace(features[3], low_sentence=None)
    assert all(f.low_sentence for f in features[:3])
    X = pd.DataFrame(
        {
            "pricing_page_views_30d": [0, 1, 2, 3, 9, 9],
            "page_views_30d": [50, 1, 3, np.nan, 5, 100],
            "webinars_attended_90d": [4, 0, 0, 1, 0, 4],
            "lead_age_days": [1, 2, 3, 4, 5, 6],
        },
        dtype=float,
    )
    y = np.array([0, 1, 1, 1, 1, 0])
    encoder = FeatureEncoder(features, {})
    bounded = {f.name: f for f in low_sentence_bounds(encoder, [1, 0, 0, 0], X, y).features}
    assert bounded["pricing_page_views_30d"] == features[0]
    assert bounded["page_views_30d"].low_below == 3.0  # won: 1, 3, 5 (one missing)
    assert bounded["webinars_attended_90d"].low_sentence is None  # won: 0, 0, 1, 0
    assert bounded["lead_age_days"] == features[3]
