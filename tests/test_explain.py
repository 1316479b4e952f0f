"""Explanations: additivity on the probability scale, reasons, sub-scores, global views."""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import warnings

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.backends.backend_agg import FigureCanvasAgg
from scipy.special import expit, logit
from sklearn.exceptions import NotFittedError
from sklearn.isotonic import IsotonicRegression

from leadscore.errors import DataError, ModelError
from leadscore.explain import (
    Explanation,
    explain,
    explain_batch,
    lead_reasons,
    mean_abs_contribution,
    to_probability_space,
)
from leadscore.features import feature_catalogue
from leadscore.plots import AXIS_LABEL_LINES, AXIS_LABEL_WIDTH, axis_labels, shap_summary_figure
from leadscore.reasons import reason_text, reasons_json, unseen_category_text
from leadscore.schema import Feature, FeatureTable
from leadscore.subscores import SubScorer

FEATURES = (
    Feature(
        "pricing_visits_30d",
        "engagement",
        "Pricing page visits, last 30 days",
        "numeric",
        sentence="Visited the pricing page {value:.0f} times in the last 30 days",
    ),
    Feature("time_on_site", "engagement", "Time on the website (seconds)", "numeric"),
    Feature("emails_opened", "engagement", "E-mails opened", "numeric"),
    Feature("company_size", "fit", "Company size (employees)", "numeric"),
    Feature("source", "fit", "Lead source", "categorical"),
    Feature("occupation", "fit", "Occupation", "categorical"),
)
NAMES = [f.name for f in FEATURES]


def make_leads(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    pricing = rng.poisson(1.0, n).astype(float)
    time_on_site = rng.gamma(2.0, 400.0, n)
    emails = rng.poisson(3.0, n).astype(float)
    size = rng.lognormal(4.0, 1.5, n)
    size[rng.random(n) < 0.2] = np.nan
    source = rng.choice(["Google", "Referral", "Direct"], n).astype(object)
    source[rng.random(n) < 0.1] = None
    occupation = rng.choice(["Working professional", "Student", "Unemployed"], n).astype(object)
    occupation[rng.random(n) < 0.3] = None
    z = (
        -2.0
        + 0.9 * pricing
        + 0.0012 * time_on_site
        + 0.1 * emails
        + 0.8 * (source == "Referral")
        + 1.0 * (occupation == "Working professional")
        - 0.8 * (occupation == "Student")
    )
    y = (rng.random(n) < expit(z)).astype(int)
    X = pd.DataFrame(
        {
            "pricing_visits_30d": pricing,
            "time_on_site": time_on_site,
            "emails_opened": emails,
            "company_size": size,
            "source": pd.Categorical(source, categories=["Direct", "Google", "Referral"]),
            "occupation": pd.Categorical(
                occupation, categories=["Student", "Unemployed", "Working professional"]
            ),
        }
    )
    return X, y


@pytest.fixture(scope="module")
def trained() -> tuple[lgb.Booster, pd.DataFrame, np.ndarray]:
    X, y = make_leads(1500, seed=1)
    params = {
        "objective": "binary",
        "num_leaves": 8,
        "learning_rate": 0.1,
        "min_data_in_leaf": 20,
        "verbose": -1,
        "num_threads": 1,
        "seed": 0,
    }
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=60)
    return booster, X, y


def step_calibrator(p: np.ndarray) -> np.ndarray:
    """A monotone step function: what a binned or isotonic calibrator can look like."""
    edges = np.array([0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.85])
    levels = np.array([0.02, 0.06, 0.12, 0.25, 0.4, 0.6, 0.78, 0.93])
    return levels[np.searchsorted(edges, p, side="right")]


def platt_calibrator(p: np.ndarray) -> np.ndarray:
    return expit(0.7 * logit(np.clip(p, 1e-12, 1 - 1e-12)) - 0.4)


@pytest.fixture(scope="module")
def isotonic(trained) -> IsotonicRegression:
    booster, _, _ = trained
    X, y = make_leads(800, seed=2)
    iso = IsotonicRegression(out_of_bounds="clip", y_min=1e-3, y_max=1 - 1e-3)
    return iso.fit(booster.predict(X), y)


CALIBRATORS = {
    "identity": None,
    "step": step_calibrator,
    "platt": platt_calibrator,
}


@pytest.mark.parametrize("rescale", ["linear", "sides"])
@pytest.mark.parametrize("name", [*CALIBRATORS, "isotonic"])
def test_contributions_add_up_to_the_calibrated_probability(trained, isotonic, name, rescale):
    booster, X, _ = trained
    calibrate = isotonic.predict if name == "isotonic" else CALIBRATORS[name]
    exp = explain(booster, calibrate, FEATURES, X, rescale=rescale)
    raw = booster.predict(X)
    expected = raw if calibrate is None else calibrate(raw)
    np.testing.assert_allclose(exp.probability, expected, atol=1e-9)
    total = exp.base_rate + exp.contributions.sum(axis=1).to_numpy()
    assert np.max(np.abs(total - exp.probability)) < 1e-9
    assert 0.0 < exp.base_rate < 1.0
    # every probability-space contribution keeps the sign of its log-odds SHAP value
    C, L = exp.contributions.to_numpy(), exp.log_odds.to_numpy()
    assert np.all(C * L >= 0)
    if rescale == "linear":  # one positive factor per lead: zero only where p is the base rate
        moved = ~np.isclose(exp.probability, exp.base_rate)[:, None]
        assert np.all((C != 0) | (L == 0) | ~moved)


def test_log_odds_margin_calibrator_gives_the_same_contributions(trained):
    booster, X, _ = trained
    on_p = explain(booster, platt_calibrator, FEATURES, X)
    on_margin = explain(
        booster,
        lambda f: expit(0.7 * f - 0.4),
        FEATURES,
        X,
        calibrate_on="log_odds",
    )
    np.testing.assert_allclose(on_p.contributions, on_margin.contributions, atol=1e-9)
    assert on_p.base_rate == pytest.approx(on_margin.base_rate, abs=1e-12)


def test_identity_base_rate_is_the_sigmoid_of_the_bias(trained):
    booster, X, _ = trained
    exp = explain(booster, None, FEATURES, X.iloc[:5])
    assert exp.base_rate == pytest.approx(expit(exp.log_odds_bias), abs=1e-15)
    raw_margin = booster.predict(X.iloc[:5], raw_score=True)
    np.testing.assert_allclose(exp.log_odds.sum(axis=1) + exp.log_odds_bias, raw_margin, atol=1e-9)


@settings(max_examples=200, deadline=None)
@given(
    phi=st.lists(
        st.lists(st.floats(-4, 4, allow_nan=False), min_size=3, max_size=3),
        min_size=1,
        max_size=6,
    ),
    bias=st.floats(-3, 3),
    which=st.sampled_from(["identity", "step", "platt"]),
    rescale=st.sampled_from(["linear", "sides"]),
)
def test_rescaling_is_exact_and_keeps_signs_for_any_values(phi, bias, which, rescale):
    arr = np.array(phi)
    # force the near-cancelling rows the local-slope branch handles
    arr = np.vstack([arr, [1.0, -1.0, 0.0], [2.0, -2.0 + 1e-9, 0.0], [0.0, 0.0, 0.0]])
    c, base, p = to_probability_space(arr, bias, CALIBRATORS[which], rescale=rescale)
    assert np.max(np.abs(base + c.sum(axis=1) - p)) < 1e-12
    assert np.all(c * arr >= 0)
    if rescale == "sides":  # each side moves the probability by at most what g can
        assert np.all(np.where(c > 0, c, 0).sum(axis=1) <= 1 + 1e-12)
        assert np.all(np.where(c < 0, c, 0).sum(axis=1) >= -1 - 1e-12)


def test_a_step_exactly_at_the_base_still_adds_up_without_sign_flips():
    # the raw score sits 1e-9 above the base, across a jump of the calibrator
    bias = 0.0

    def jump(p: np.ndarray) -> np.ndarray:
        return np.where(p > 0.5, 0.6, 0.4)

    phi = np.array([[1.0, -1.0 + 1e-9, 0.3, -0.3]])
    c, base, p = to_probability_space(phi, bias, jump)
    assert base == 0.4 and p[0] == 0.6
    assert base + c.sum() == pytest.approx(p[0], abs=1e-12)
    assert np.all(c * phi >= 0)
    assert np.all(np.abs(c) <= 1.0)


def test_a_decreasing_calibrator_is_refused():
    with pytest.raises(ModelError, match="not monotone"):
        to_probability_space(np.array([[1.0, 0.5]]), 0.0, lambda p: 1 - p)


def test_fields_sum_encoded_columns(trained):
    booster, X, _ = trained
    field_of = {"pricing_visits_30d": "web_activity", "time_on_site": "web_activity"}
    by_col = explain(booster, platt_calibrator, FEATURES, X)
    by_field = explain(booster, platt_calibrator, FEATURES, X, field_of=field_of)
    assert list(by_field.contributions.columns) == [
        "web_activity",
        "emails_opened",
        "company_size",
        "source",
        "occupation",
    ]
    np.testing.assert_allclose(
        by_field.contributions["web_activity"],
        by_col.contributions["pricing_visits_30d"] + by_col.contributions["time_on_site"],
        atol=1e-12,
    )
    total = by_field.base_rate + by_field.contributions.sum(axis=1)
    np.testing.assert_allclose(total, by_field.probability, atol=1e-9)
    fr, fa = lead_reasons(by_field, 0, top_n=5, min_contribution=0.0)
    assert all(r.feature in by_field.fields for r in fr + fa)
    batch = explain_batch(booster, platt_calibrator, FEATURES, X, field_of=field_of)
    for row in range(0, len(X), 131):
        rf, ra = lead_reasons(by_field, row)
        assert batch["reasons_for"].iloc[row] == "; ".join(r.text for r in rf)
        assert batch["reasons_against"].iloc[row] == "; ".join(r.text for r in ra)
        assert json.loads(batch["reasons_json"].iloc[row]) == json.loads(reasons_json(rf, ra))


def test_reasons_are_sorted_signed_and_phrased(trained):
    booster, X, _ = trained
    exp = explain(booster, platt_calibrator, FEATURES, X)
    for row in range(40):
        rf, ra = lead_reasons(exp, row, top_n=3)
        assert len(rf) <= 3 and len(ra) <= 3
        assert all(r.contribution >= 1e-3 for r in rf)
        assert all(r.contribution <= -1e-3 for r in ra)
        assert [r.contribution for r in rf] == sorted((r.contribution for r in rf), reverse=True)
        assert [r.contribution for r in ra] == sorted(r.contribution for r in ra)
        biggest = exp.contributions.iloc[row].max()
        if rf:
            assert rf[0].contribution == pytest.approx(biggest)
        items = json.loads(reasons_json(rf, ra))
        assert [i["direction"] for i in items] == ["for"] * len(rf) + ["against"] * len(ra)
        keys = {"feature", "label", "value", "contribution", "direction"}
        assert all(set(i) == keys for i in items)


def test_texts_use_the_template_and_phrase_missing_values():
    pricing, time_on_site, _, _, source, occupation = FEATURES
    assert reason_text(pricing, 3.0) == "Visited the pricing page 3 times in the last 30 days"
    assert reason_text(time_on_site, 1532.0) == "Time on the website (seconds): 1,532"
    assert reason_text(time_on_site, 12.5) == "Time on the website (seconds): 12.5"
    assert reason_text(source, "Google") == "Lead source: Google"
    assert reason_text(occupation, None) == "Occupation not given"
    assert reason_text(pricing, None) == "Pricing page visits, last 30 days not given"
    broken = Feature("x", "fit", "Industry", "categorical", sentence="Works in {value:.0f}")
    assert reason_text(broken, "Retail") == "Industry: Retail"


def test_a_missing_sentence_replaces_not_given(trained):
    booster, X, _ = trained
    occupation = dataclasses.replace(FEATURES[5], missing_sentence="No occupation stated yet")
    assert reason_text(occupation, None) == "No occupation stated yet"
    assert reason_text(occupation, "Student") == "Occupation: Student"
    features = (*FEATURES[:5], occupation)
    batch = explain_batch(booster, None, features, X, top_n=6, min_contribution=0.0)
    texts = " ".join(batch["reasons_for"]) + " " + " ".join(batch["reasons_against"])
    assert "No occupation stated yet" in texts and "Occupation not given" not in texts
    row = int(np.flatnonzero(X["occupation"].isna().to_numpy())[0])
    exp = explain(booster, None, features, X)
    reasons = [r for side in lead_reasons(exp, row, top_n=6, min_contribution=0.0) for r in side]
    assert [r.text for r in reasons if r.feature == "occupation"] == ["No occupation stated yet"]


def test_an_unseen_value_that_means_not_known_reads_as_not_given():
    """A model trained where every lead gave an e-mail never saw the kind ``missing``: a lead
    without one read "E-mail address ...: missing (new, not seen in training)"."""
    (feature,) = [f for f in feature_catalogue() if f.name == "email_domain_kind"]
    for value in ("missing", "unknown", " Missing "):
        assert unseen_category_text(feature, value) == reason_text(feature, None)
    assert unseen_category_text(feature, value).endswith("not given")
    assert "Lead Import" in unseen_category_text(
        Feature("origin", "fit", "How the lead was created", "categorical"), "Lead Import"
    )


def test_an_unseen_category_is_quoted_not_called_missing(trained):
    booster, X, _ = trained
    leads = X.iloc[:200].copy()
    leads["source"] = pd.Categorical(
        ["TikTok"] * 200, categories=["Direct", "Google", "Referral", "TikTok"]
    )
    batch = explain_batch(booster, None, FEATURES, leads, top_n=6, min_contribution=0.0)
    texts = batch["reasons_for"] + "; " + batch["reasons_against"]
    about_source = texts.str.contains("Lead source")
    assert about_source.any()
    assert (
        texts[about_source]
        .str.contains(
            "Lead source: TikTok (not seen in training, so scored as not given)", regex=False
        )
        .all()
    )
    values = {
        item["value"]
        for cell in batch["reasons_json"]
        for item in json.loads(cell)
        if item["feature"] == "source"
    }
    assert values == {"TikTok"}
    blank = leads.assign(source=pd.Categorical([None] * 200, categories=["Direct", "Google"]))
    as_missing = explain_batch(booster, None, FEATURES, blank)
    np.testing.assert_array_equal(batch["probability"], as_missing["probability"])


def test_batch_matches_single_lead_reasons(trained):
    booster, X, _ = trained
    scorer = SubScorer().fit(explain(booster, None, FEATURES, X).log_odds, FEATURES)
    batch = explain_batch(
        booster,
        platt_calibrator,
        FEATURES,
        X,
        sub_scorer=scorer,
        include_contributions=True,
        chunk_size=400,
    )
    assert list(batch.index) == list(X.index)
    assert {
        "probability",
        "base_rate",
        "reasons_for",
        "reasons_against",
        "reasons_json",
        "fit_score",
        "engagement_score",
    } <= set(batch.columns)
    contrib = batch.filter(like="contribution:")
    assert list(contrib.columns) == [f"contribution:{n}" for n in NAMES]
    total = batch["base_rate"] + contrib.sum(axis=1)
    assert np.max(np.abs(total - batch["probability"])) < 1e-6
    exp = explain(booster, platt_calibrator, FEATURES, X)
    for row in range(0, len(X), 97):
        rf, ra = lead_reasons(exp, row)
        assert batch["reasons_for"].iloc[row] == "; ".join(r.text for r in rf)
        assert batch["reasons_against"].iloc[row] == "; ".join(r.text for r in ra)
        assert json.loads(batch["reasons_json"].iloc[row]) == json.loads(reasons_json(rf, ra))
    texts = " ".join(batch["reasons_for"])
    assert "Visited the pricing page" in texts
    assert "not given" in " ".join(batch["reasons_for"]) + " ".join(batch["reasons_against"])


def test_json_values_are_plain_types(trained):
    booster, X, _ = trained
    batch = explain_batch(booster, None, FEATURES, X.iloc[:300])
    for text in batch["reasons_json"]:
        for item in json.loads(text):
            assert isinstance(item["feature"], str) and isinstance(item["label"], str)
            assert item["value"] is None or isinstance(item["value"], (float, str))
            assert isinstance(item["contribution"], float)
            assert (item["contribution"] > 0) == (item["direction"] == "for")


def test_a_lead_with_nothing_notable_gets_no_reasons(trained):
    booster, X, _ = trained
    exp = explain(booster, None, FEATURES, X.iloc[:50])
    rf, ra = lead_reasons(exp, 0, min_contribution=1.0)
    assert rf == [] and ra == []
    batch = explain_batch(booster, None, FEATURES, X.iloc[:50], min_contribution=1.0)
    assert (batch["reasons_for"] == "").all() and (batch["reasons_json"] == "[]").all()


def test_empty_input_gives_an_empty_frame(trained):
    booster, X, _ = trained
    batch = explain_batch(booster, None, FEATURES, X.iloc[:0])
    assert len(batch) == 0 and "reasons_for" in batch.columns


def test_mismatched_inputs_raise_clear_errors(trained):
    booster, X, _ = trained
    with pytest.raises(DataError, match="lack model column 'source'"):
        explain(booster, None, FEATURES, X.drop(columns="source"))
    with pytest.raises(ModelError, match="do not match the model's columns"):
        explain(booster, None, FEATURES[:-1], X)


def test_an_open_rate_a_spec_puts_in_its_fit_group_counts_and_the_scorer_round_trips():
    """Only engagement leaves a missing open rate out: a flat spec listing one under its fit
    group had saved a sub-scorer that refused to load ("no engagement column")."""
    features = (
        Feature("email_open_rate_90d", "fit", "Open rate", "numeric"),
        Feature("visits", "engagement", "Visits", "numeric"),
    )
    rng = np.random.default_rng(0)
    log_odds = pd.DataFrame(rng.normal(size=(200, 2)), columns=[f.name for f in features])
    values = pd.DataFrame({"email_open_rate_90d": np.nan, "visits": 1.0}, index=log_odds.index)
    scorer = SubScorer().fit(log_odds, features, values)
    assert scorer.not_counted_when_missing_ == []
    restored = SubScorer.from_dict(
        json.loads(json.dumps(scorer.to_dict())), columns=["email_open_rate_90d", "visits"]
    )
    pd.testing.assert_frame_equal(restored.transform(log_odds), scorer.transform(log_odds))
    assert scorer.transform(log_odds)["fit_score"].nunique() > 10  # the missing rate counts


def test_sub_scores_are_monotone_and_round_trip(trained):
    booster, X, _ = trained
    log_odds = explain(booster, None, FEATURES, X).log_odds
    scorer = SubScorer().fit(log_odds, FEATURES)
    with pytest.raises(NotFittedError):
        SubScorer().transform(log_odds)
    scores = scorer.transform(log_odds)
    assert list(scores.columns) == ["fit_score", "engagement_score"]
    assert str(scores["fit_score"].dtype) == "Int64"
    assert scores.min().min() >= 0 and scores.max().max() <= 100
    # on the training population the percentiles are roughly uniform
    assert 40 <= scores["engagement_score"].mean() <= 60
    for group in ("fit", "engagement"):
        cols = [f.name for f in FEATURES if f.group == group]
        sums = log_odds[cols].sum(axis=1).to_numpy()
        order = np.argsort(sums, kind="stable")
        assert np.all(np.diff(scores[f"{group}_score"].to_numpy()[order].astype(int)) >= 0)
    # a grid sweeping one group's sum gives a non-decreasing score
    grid = np.zeros((201, len(NAMES)))
    grid[:, 0] = np.linspace(-5, 5, 201)
    swept = scorer.transform(grid)["engagement_score"].to_numpy().astype(int)
    assert np.all(np.diff(swept) >= 0) and swept[0] == 0 and swept[-1] == 100
    restored = SubScorer.from_dict(json.loads(json.dumps(scorer.to_dict())))
    pd.testing.assert_frame_equal(restored.transform(log_odds), scores)
    assert restored.to_dict() == scorer.to_dict()


def test_batch_keeps_one_row_per_lead_under_a_repeated_index(trained):
    booster, X, _ = trained
    scorer = SubScorer().fit(explain(booster, None, FEATURES, X).log_odds, FEATURES)
    leads = X.iloc[:6].set_axis([0, 0, 1, 1, 2, 2], axis=0)
    batch = explain_batch(
        booster, None, FEATURES, leads, sub_scorer=scorer, include_contributions=True
    )
    once = explain_batch(
        booster,
        None,
        FEATURES,
        leads.reset_index(drop=True),
        sub_scorer=scorer,
        include_contributions=True,
    )
    assert list(batch.index) == [0, 0, 1, 1, 2, 2]
    pd.testing.assert_frame_equal(batch.reset_index(drop=True), once)


def test_sub_scores_of_a_sum_that_is_not_finite_are_missing(trained):
    booster, X, _ = trained
    log_odds = explain(booster, None, FEATURES, X).log_odds
    scorer = SubScorer().fit(log_odds, FEATURES)
    broken = log_odds.iloc[:3].copy()
    broken.iloc[1, 0] = np.nan
    scores = scorer.transform(broken)
    column = f"{FEATURES[0].group}_score"
    assert scores[column].isna().tolist() == [False, True, False]
    pd.testing.assert_series_equal(
        scores[column].iloc[[0, 2]], scorer.transform(log_odds.iloc[[0, 2]])[column]
    )


def test_engaged_lead_scores_higher_on_engagement(trained):
    booster, X, _ = trained
    scorer = SubScorer().fit(explain(booster, None, FEATURES, X).log_odds, FEATURES)
    two = X.iloc[[0, 0]].reset_index(drop=True).copy()
    two.loc[0, ["pricing_visits_30d", "time_on_site", "emails_opened"]] = [6.0, 4000.0, 10.0]
    two.loc[1, ["pricing_visits_30d", "time_on_site", "emails_opened"]] = [0.0, 10.0, 0.0]
    scores = explain_batch(booster, None, FEATURES, two, sub_scorer=scorer)
    assert scores["engagement_score"].iloc[0] > scores["engagement_score"].iloc[1]
    assert scores["engagement_score"].iloc[0] >= 80
    assert scores["probability"].iloc[0] > scores["probability"].iloc[1]


def test_group_without_features_scores_missing():
    fit_only = [Feature("a", "fit", "A", "numeric"), Feature("b", "fit", "B", "numeric")]
    values = np.random.default_rng(0).normal(size=(100, 2))
    scores = SubScorer(n_quantiles=11).fit(values, fit_only).transform(values)
    assert scores["engagement_score"].isna().all()
    assert scores["fit_score"].notna().all()


def test_global_importance_and_summary_figure(trained, tmp_path):
    booster, X, _ = trained
    exp = explain(booster, None, FEATURES, X)
    table = mean_abs_contribution(exp.log_odds, FEATURES)
    assert list(table.columns) == ["feature", "label", "group", "mean_abs_contribution"]
    assert table["mean_abs_contribution"].is_monotonic_decreasing
    assert set(table["feature"]) == set(NAMES)
    label_of = {f.name: f.label for f in FEATURES}
    assert [label_of[n] for n in table["feature"]] == table["label"].tolist()
    expected = exp.log_odds.abs().mean().sort_values(ascending=False)
    np.testing.assert_allclose(table["mean_abs_contribution"], expected.to_numpy())
    fig = shap_summary_figure(exp.log_odds, X, FEATURES)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    png = buffer.getvalue()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    labels = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
    assert "Pricing page visits, last 30 days" in labels


def encode_matrix(X: pd.DataFrame) -> np.ndarray:
    """Numbers as they are, categories as codes (missing as nan): a matrix-trained booster."""
    out = np.empty((len(X), len(NAMES)))
    for j, name in enumerate(NAMES):
        column = X[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            codes = column.cat.codes.to_numpy().astype(float)
            codes[codes < 0] = np.nan
            out[:, j] = codes
        else:
            out[:, j] = column.to_numpy(dtype=float)
    return out


def test_a_matrix_trained_booster_explains_through_encode(trained):
    _, X, y = trained
    cat_idx = [NAMES.index("source"), NAMES.index("occupation")]
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 8, "verbose": -1, "num_threads": 1},
        lgb.Dataset(
            encode_matrix(X),
            y,
            feature_name=[f"Column_{j}" for j in range(len(NAMES))],
            categorical_feature=cat_idx,
        ),
        num_boost_round=30,
    )
    with pytest.raises(ModelError, match="do not match"):
        explain(booster, None, FEATURES, X)
    exp = explain(booster, platt_calibrator, FEATURES, X, encode=encode_matrix)
    expected = platt_calibrator(booster.predict(encode_matrix(X)))
    np.testing.assert_allclose(exp.probability, expected, atol=1e-9)
    total = exp.base_rate + exp.contributions.sum(axis=1)
    np.testing.assert_allclose(total, exp.probability, atol=1e-9)
    batch = explain_batch(booster, platt_calibrator, FEATURES, X.iloc[:0], encode=encode_matrix)
    assert len(batch) == 0
    raw = explain_batch(booster, None, FEATURES, X.iloc[:20], encode=encode_matrix)
    np.testing.assert_allclose(raw["probability"], booster.predict(encode_matrix(X.iloc[:20])))


def test_sides_bound_each_side_where_linear_overshoots():
    # a steep calibrator right at the base, large values that nearly cancel
    def steep(p: np.ndarray) -> np.ndarray:
        return np.clip(0.3 + 40.0 * (p - 0.5), 0.01, 0.99)

    phi = np.array([[1.5, -1.45, 0.2, -0.2]])
    linear, base, p = to_probability_space(phi, 0.0, steep)
    sides, base_s, p_s = to_probability_space(phi, 0.0, steep, rescale="sides")
    assert (base, p[0]) == (base_s, p_s[0])
    assert linear.max() > 1.0  # the secant slope of a steep g overshoots
    assert sides[0, 0] <= 0.99 - base and sides[0, 1] >= 0.01 - base
    assert base + sides.sum() == pytest.approx(p[0], abs=1e-12)
    assert np.all(sides * phi >= 0)


# --------------------------------------------------------------------------- wording

NO_EMAILS = "No record of marketing e-mails sent in the last 90 days"
RATES = (
    Feature("open_rate", "engagement", "Open rate", "numeric", missing_sentence=NO_EMAILS),
    Feature("click_rate", "engagement", "Click rate", "numeric", missing_sentence=NO_EMAILS),
    Feature("visits", "engagement", "Visits", "numeric", sentence="Visited {value:,.0f} time{s}"),
)


@pytest.fixture(scope="module")
def rates_model() -> tuple[lgb.Booster, pd.DataFrame]:
    """Two rates that are missing together (no e-mails sent) and both move the score."""
    rng = np.random.default_rng(3)
    n = 3000
    mailed = rng.random(n) < 0.6
    opens = np.where(mailed, rng.beta(2, 3, n), np.nan)
    clicks = np.where(mailed, rng.beta(1, 6, n), np.nan)
    visits = rng.poisson(2.0, n).astype(float)
    z = (
        -1.5
        + 1.2 * mailed
        + 2.0 * np.nan_to_num(opens)
        + 3.0 * np.nan_to_num(clicks)
        + 0.3 * visits
    )
    y = (rng.random(n) < expit(z)).astype(int)
    X = pd.DataFrame({"open_rate": opens, "click_rate": clicks, "visits": visits})
    params = {"objective": "binary", "num_leaves": 8, "verbose": -1, "num_threads": 1, "seed": 0}
    return lgb.train(params, lgb.Dataset(X, y), num_boost_round=60), X


def test_reasons_that_read_the_same_merge_into_one_with_the_summed_contribution(rates_model):
    booster, X = rates_model
    exp = explain(booster, None, RATES, X)
    batch = explain_batch(booster, None, RATES, X, top_n=3, min_contribution=0.0)
    both_missing = X["open_rate"].isna().to_numpy()
    c = exp.contributions.to_numpy()
    n_merged = 0
    for row in range(800):
        texts = [
            t
            for side in ("for", "against")
            for t in batch[f"reasons_{side}"].iloc[row].split("; ")
            if t
        ]
        assert len(texts) == len(set(texts)), texts
        rf, ra = lead_reasons(exp, row, top_n=3, min_contribution=0.0)
        assert batch["reasons_for"].iloc[row] == "; ".join(r.text for r in rf)
        assert batch["reasons_against"].iloc[row] == "; ".join(r.text for r in ra)
        if both_missing[row]:
            merged = [r for r in (*rf, *ra) if r.text == NO_EMAILS]
            total = c[row, 0] + c[row, 1]
            if abs(total) > 0:
                assert len(merged) == 1
                assert merged[0].contribution == pytest.approx(total)
                n_merged += 1
                # ranked by the sum: it is placed among the others by its merged size
                side = rf if total > 0 else ra
                sizes = [abs(r.contribution) for r in side]
                assert sizes == sorted(sizes, reverse=True)
    assert n_merged > 100
    # the probability and the contribution columns themselves are untouched
    full = explain_batch(booster, None, RATES, X, include_contributions=True)
    np.testing.assert_allclose(full["contribution:open_rate"], c[:, 0])


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("c_level", "Seniority from the job title: C-level"),
        ("vp", "Seniority from the job title: VP"),
        ("it", "Seniority from the job title: IT"),
        ("director", "Seniority from the job title: director"),
        ("paid_search_generic", "Seniority from the job title: paid_search_generic"),
        ("unknown", "Seniority from the job title not given"),
        ("missing", "Seniority from the job title not given"),
        ("True", "Seniority from the job title: yes"),
        ("false", "Seniority from the job title: no"),
        ("Software; Retail", "Seniority from the job title: Software, Retail"),
        ("DE", "Seniority from the job title: DE"),
    ],
)
def test_category_codes_read_as_words(value, text):
    seniority = Feature("seniority", "fit", "Seniority from the job title", "categorical")
    assert reason_text(seniority, value) == text


def test_seniority_and_department_codes_read_as_words():
    """Features built from the job title quote leadscore's own codes, which mean something
    only to the code that wrote them, as words: "Individual contributor", not "individual";
    a model saved without the sentence reads as before (the test above)."""
    from leadscore.features import DEPARTMENTS, SENIORITY_LEVELS, feature_catalogue

    built = {f.name: f for f in feature_catalogue()}
    for name, codes in (("seniority", SENIORITY_LEVELS), ("department", DEPARTMENTS)):
        feature = built[name]
        texts = [reason_text(feature, code) for code in codes if code != "unknown"]
        words = [t.removeprefix(f"{feature.label}: ") for t in texts]
        assert all(w[0].isupper() and "_" not in w for w in words), words
        assert len(set(words)) == len(words)
        assert reason_text(feature, "unknown") == f"{feature.label} not given"
    assert reason_text(built["seniority"], "individual").endswith(": Individual contributor")
    assert reason_text(built["department"], "hr").endswith(": HR")
    assert reason_text(built["department"], "other").endswith(": Other")
    # a value the vocabulary does not hold is quoted as written
    assert reason_text(built["seniority"], "Partner").endswith(": Partner")


def test_template_specs_for_flags_days_and_plurals():
    def text(sentence: str, value: float) -> str:
        return reason_text(Feature("x", "engagement", "X", "numeric", sentence), value)

    flag = "{value:Chatted with us|Has not chatted with us}"
    assert (text(flag, 1.0), text(flag, 0.0)) == ("Chatted with us", "Has not chatted with us")
    assert text("Is partner: {value:yes|no}", 1.0) == "Is partner: yes"
    ago = "Last active {value:days_ago}"
    # whole days gone by: 0.7 days is less than a day, as 0.2 is
    assert [text(ago, v) for v in (0.2, 0.7, 1.0, 1.9, 12.0)] == [
        "Last active less than a day ago",
        "Last active less than a day ago",
        "Last active 1 day ago",
        "Last active 1 day ago",
        "Last active 12 days ago",
    ]
    # the noun agrees with the number as shown, not with the raw value
    assert text("Last active {value:,.0f} day{s} ago", 1.2) == "Last active 1 day ago"
    assert text("Last active {value:,.0f} day{s} ago", 0.0) == "Last active 0 days ago"
    assert text("Had {value:,.0f} activit{s:y|ies}", 1.0) == "Had 1 activity"
    assert text("Had {value:,.0f} activit{s:y|ies}", 3.0) == "Had 3 activities"
    # an old template and a wrong spec still read
    assert text("Visited {value:.0f} time{s}", 1.0) == "Visited 1 time"
    assert text("Rate {value:yes}", 1.0) == "X: 1"


def test_time_reads_in_the_unit_that_suits_it():
    """The log counts seconds on site and minutes of trial use; a reason says "1.9 hours",
    never "6,835 seconds"."""
    from leadscore.features import feature_catalogue

    catalogue = {f.name: f for f in feature_catalogue()}
    on_site, trial = catalogue["web_seconds_90d"], catalogue["trial_minutes_30d"]
    assert reason_text(on_site, 6835.0).startswith("Spent 1.9 hours on the website")
    assert reason_text(on_site, 45.0).startswith("Spent 45 seconds on the website")
    assert reason_text(on_site, 0.3).startswith("Spent less than a second on the website")
    assert reason_text(on_site, 0.0).startswith("Has not spent time on the website")
    assert reason_text(on_site, 50.0, against=True).startswith("Only 50 seconds on the website")
    assert reason_text(on_site, 60.0, against=True).startswith("Only 1 minute on the website")
    assert reason_text(trial, 1.0).startswith("Used the trial for 1 minute")
    assert reason_text(trial, 45.0).startswith("Used the trial for 45 minutes")
    assert reason_text(trial, 600.0).startswith("Used the trial for 10 hours")
    assert reason_text(trial, 60 * 24 * 3.0).startswith("Used the trial for 72 hours")
    # a negative time (a log's own value) reads as label and value, not "-20 seconds"
    assert reason_text(trial, -1.0).startswith("Time in the trial")


def test_a_change_in_activity_reads_as_more_or_fewer():
    from leadscore.features import feature_catalogue

    trend = {f.name: f for f in feature_catalogue()}["activity_trend"]
    week = "in the last 7 days than in an average week of the 21 days before"
    assert reason_text(trend, 4.333) == f"4.3 more activities {week}"
    assert reason_text(trend, -2.0) == f"2 fewer activities {week}"
    assert reason_text(trend, 1.0) == f"1 more activity {week}"
    assert reason_text(trend, 12.7) == f"13 more activities {week}"
    assert reason_text(trend, 0.0).startswith("As many activities in the last 7 days as")
    # nothing in either window is no trend: missing, not "as many as"
    assert reason_text(trend, None) == "No activity in the last 28 days"


def test_band_spec_reads_the_band_holding_a_number():
    def text(value: float) -> str:
        sentence = "Size: {value:bands:10,50} employees"
        return reason_text(Feature("x", "fit", "X", "numeric", sentence), value)

    assert [text(v) for v in (1.0, 5.5, 10.0, 10.5, 30.5, 50.0, 51.0, 7500.5)] == [
        "Size: 1-10 employees",
        "Size: 1-10 employees",
        "Size: 1-10 employees",
        "Size: 11-50 employees",
        "Size: 11-50 employees",
        "Size: 11-50 employees",
        "Size: 51+ employees",
        "Size: 51+ employees",
    ]
    assert text(0.0) == "X: 0"  # no band: label and value


@pytest.fixture(scope="module")
def size_model() -> tuple[lgb.Booster, pd.DataFrame, tuple[Feature, ...]]:
    """Company size as the event features hold it (a band read from the CRM's text as its
    midpoint, and the band itself), with both moving the score."""
    from leadscore.features import company_size_band, feature_catalogue, parse_company_size

    rng = np.random.default_rng(4)
    n = 3000
    written = rng.choice(["1-10", "11-50", "51-200", "201-1000", "1000+", "5000+", None], n)
    size = parse_company_size(pd.Series(written, dtype="str"))
    band = company_size_band(size)
    visits = rng.poisson(2.0, n).astype(float)
    y = (rng.random(n) < expit(-2 + 0.5 * np.log1p(size.fillna(0)) + 0.3 * visits)).astype(int)
    X = pd.DataFrame({"company_size": size, "company_size_band": band.array, "visits": visits})
    catalogue = {f.name: f for f in feature_catalogue()}
    features = (
        catalogue["company_size"],
        catalogue["company_size_band"],
        Feature(
            "visits", "engagement", "Visits", "numeric", sentence="Visited {value:,.0f} time{s}"
        ),
    )
    params = {"objective": "binary", "num_leaves": 8, "verbose": -1, "num_threads": 1, "seed": 0}
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=60)
    return booster, X, features


def test_company_size_reads_as_its_band_never_as_a_midpoint(size_model):
    """A size written "1-10" is 5.5 employees to the model; the reason says 1-10, as the CRM
    did, and the size and its band, saying the same, make one reason."""
    booster, X, features = size_model
    batch = explain_batch(booster, None, features, X, top_n=3, min_contribution=0.0)
    texts = [
        t
        for side in ("for", "against")
        for cell in batch[f"reasons_{side}"]
        for t in cell.split("; ")
    ]
    sizes = {t for t in texts if t.startswith("Company size")}
    assert sizes <= {
        "Company size: 1-10 employees",
        "Company size: 11-50 employees",
        "Company size: 51-200 employees",
        "Company size: 201-1000 employees",
        "Company size: 1001-5000 employees",
        "Company size: 5001+ employees",
        "Company size not given",
    }
    assert len(sizes) >= 5, sizes
    exp = explain(booster, None, features, X)
    c = exp.contributions.to_numpy()
    merged = 0
    for row in range(300):
        rf, ra = lead_reasons(exp, row, top_n=3, min_contribution=0.0)
        said = [r for r in (*rf, *ra) if r.text.startswith("Company size")]
        assert len(said) <= 1, [r.text for r in said]
        if said and c[row, 0] != 0 and c[row, 1] != 0:
            assert said[0].contribution == pytest.approx(c[row, 0] + c[row, 1])
            merged += 1
    assert merged > 50


def _history(rows: list[dict]) -> pd.DataFrame:
    base = {
        "lead_id": "L1",
        "model_name": "leadscore",
        "model_version": "1",
        "probability": 0.3,
        "score": 30,
        "stage": "mql",
        "fit_score": 50,
        "engagement_score": 50,
    }
    frame = pd.DataFrame([{**base, **r} for r in rows])
    frame["as_of"] = pd.to_datetime(frame["as_of"])
    frame["scored_at"] = frame["as_of"]
    return frame


def _row(
    as_of: str, reasons: list[tuple[str, str, str, float]], facts: dict[str, str] | None = None
) -> dict:
    """A scored row whose reasons are (feature, label, sentence, contribution), with the
    ``fact`` of the features named in ``facts``."""
    json_items = [
        {
            "feature": f,
            "label": lab,
            "value": None,
            "contribution": c,
            "direction": "for" if c > 0 else "against",
            **({"fact": facts[f]} if facts and f in facts else {}),
        }
        for f, lab, _, c in reasons
    ]
    return {
        "as_of": as_of,
        "reasons_for": "; ".join(t for _, _, t, c in reasons if c > 0),
        "reasons_against": "; ".join(t for _, _, t, c in reasons if c < 0),
        "reasons_json": json.dumps(json_items),
    }


def test_what_changed_quotes_the_sentences_of_the_cards():
    from leadscore.commands.explain import lead_card

    label = "E-mail click rate (clicks per e-mail received), last 90 days"
    before = _row(
        "2026-06-02",
        [
            (
                "pricing_page_views_30d",
                "Pricing page visits, last 30 days",
                "Visited the pricing page 3 times in the last 30 days",
                0.05,
            ),
            ("email_click_rate_90d", label, NO_EMAILS, -0.02),
        ],
    )
    after = _row(
        "2026-06-09",
        [
            (
                "pricing_page_views_30d",
                "Pricing page visits, last 30 days",
                "Visited the pricing page 4 times in the last 30 days",
                0.06,
            ),
            ("has_chatted", "Has chatted with us", "Chatted with us", 0.01),
        ],
    )
    card = lead_card(_history([before, after]))
    assert "    new reasons: Chatted with us" in card
    assert f"    no longer reasons: {NO_EMAILS}" in card
    assert label not in card and "Has chatted with us" not in card
    assert "+ Visited the pricing page 4 times in the last 30 days (+6.0 points)" in card


def test_a_fact_worded_by_another_window_is_the_same_reason():
    from leadscore.commands.explain import lead_card

    facts = {
        "high_intent_actions_30d": "high_intent_actions",
        "high_intent_actions_90d": "high_intent_actions",
    }
    before = _row(
        "2026-06-02",
        [("high_intent_actions_30d", "High-intent actions", "Took 3 actions lately", 0.05)],
        facts,
    )
    after = _row(
        "2026-06-09",
        [("high_intent_actions_90d", "High-intent actions", "Took 5 actions this quarter", 0.06)],
        facts,
    )
    card = lead_card(_history([before, after]))
    assert "+ Took 5 actions this quarter" in card
    assert "new reasons" not in card and "no longer reasons" not in card


def test_a_reason_that_changes_sides_is_shown_as_such():
    from leadscore.commands.explain import lead_card

    label = "Pricing page visits, last 30 days"
    before = _row(
        "2026-06-02",
        [("pricing_page_views_30d", label, "Visited the pricing page 3 times", 0.05)],
    )
    after = _row(
        "2026-06-09",
        [("pricing_page_views_30d", label, "Has not visited the pricing page lately", -0.04)],
    )
    card = lead_card(_history([before, after]))
    assert (
        "    changed sides: Has not visited the pricing page lately (now against, was for)"
    ) in card
    assert "new reasons" not in card and "no longer reasons" not in card
    unchanged = lead_card(_history([before, {**before, "as_of": "2026-06-09"}]))
    assert "changed sides" not in unchanged


def test_summary_figure_keeps_its_plots_wide_with_long_labels():
    """Labels of 80+ characters (sentences, as model features carry) once squeezed the
    plots to a sliver, overlapped their ticks and ran off the figure."""
    rng = np.random.default_rng(3)
    n, k = 800, 12
    X = pd.DataFrame({f"f{i}": rng.normal(size=n) * 10.0**i for i in range(k)})
    z = sum((1.0 - 0.07 * i) * X[f"f{i}"] / 10.0**i for i in range(k))
    y = (rng.random(n) < expit(z)).astype(int)
    stem = "High-intent actions (pricing or demo pages, demo or sales forms) of the lead"
    features = tuple(
        Feature(f"f{i}", "engagement", f"{stem}, last {7 * (i + 1)} days", "numeric")
        for i in range(k)
    )
    assert min(len(f.label) for f in features) >= 80
    params = {"objective": "binary", "verbose": -1, "num_threads": 1, "seed": 0}
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=30)
    exp = explain(booster, None, features, X)

    fig = shap_summary_figure(exp.log_odds, X, features)
    canvas = FigureCanvasAgg(fig)
    with warnings.catch_warnings():
        # "constrained_layout not applied because axes sizes collapsed to zero"
        warnings.filterwarnings("error", "constrained_layout", UserWarning)
        canvas.draw()
    renderer = canvas.get_renderer()
    swarm, bar = fig.axes[:2]
    assert swarm.get_position().width > 0.28 and bar.get_position().width > 0.2

    labels = [t.get_text() for t in swarm.get_yticklabels()]
    assert len(set(labels)) == k  # distinct: the windows at the end of the labels survive
    assert {t.get_text() for t in bar.get_yticklabels()} == set(labels)
    for label in labels:
        lines = label.split("\n")
        assert len(lines) <= AXIS_LABEL_LINES
        assert max(len(line) for line in lines) <= AXIS_LABEL_WIDTH
    assert any(label.endswith("last 84 days") for label in labels)

    width = fig.bbox.width
    for ax in (swarm, bar):
        for tick in ax.get_yticklabels():  # inside the figure, not cut off at its edge
            box = tick.get_window_extent(renderer)
            assert box.x0 >= 0 and box.x1 <= width
        boxes = sorted(
            (t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()),
            key=lambda b: b.x0,
        )
        assert len(boxes) >= 3
        assert all(a.x1 < b.x0 for a, b in itertools.pairwise(boxes))

    values = [t.get_text() for t in bar.texts]
    assert len(values) == k
    assert not [v for v in values if v.startswith(("+", "-", "−"))]


def test_axis_labels_wrap_cut_and_stay_distinct():
    long = "E-mail click rate (share of e-mails received that were clicked), last 90 days"
    out = axis_labels([long, long.replace("90", "30"), "Lead source", "Lead source", ""])
    assert out[0] == "E-mail click rate (share of\n…that were clicked), last 90 days"
    assert out[1].endswith("last 30 days")
    assert out[2:4] == ["Lead source", "Lead source (2)"]
    assert len(set(out)) == len(out)
    assert all(len(line) <= AXIS_LABEL_WIDTH for label in out for line in label.split("\n"))
    tight = axis_labels(["x" * 70], width=20, lines=1)
    assert tight == ["…" + "x" * 19]
    with pytest.raises(ValueError):
        axis_labels(["a"], width=3)


def test_flags_read_yes_or_no_however_the_export_wrote_them():
    """One card held "Requested Demo: yes" (written TRUE) beside "Started Trial: Yes"
    (written Yes): the same answer in two vocabularies. Both read yes and no; other
    categories stay as written."""
    demo = Feature("Requested Demo", "engagement", "Requested Demo", "categorical")
    trial = Feature("Started Trial", "engagement", "Started Trial", "categorical")
    source = Feature("Lead Source", "fit", "Lead Source", "categorical")
    assert reason_text(demo, "TRUE") == "Requested Demo: yes"
    assert reason_text(trial, "Yes") == "Started Trial: yes"
    assert reason_text(trial, " no ") == "Started Trial: no"
    assert (reason_text(demo, "Y"), reason_text(trial, "n")) == (
        "Requested Demo: yes",
        "Started Trial: no",
    )
    assert reason_text(source, "Yesware") == "Lead Source: Yesware"


def test_a_feature_table_passed_whole_is_told_to_pass_its_x(trained) -> None:
    booster, X, _ = trained
    table = FeatureTable(X.head(5).assign(lead_id=range(5)), FEATURES)
    for call in (explain, explain_batch):
        with pytest.raises(DataError, match=r"to explain must be a DataFrame, not FeatureTable"):
            call(booster, None, FEATURES, table)
        with pytest.raises(DataError, match=r"Pass table\.X, the FeatureTable's DataFrame"):
            call(booster, None, FEATURES, table)
    probability = explain(booster, None, FEATURES, table.X).probability
    assert np.allclose(probability, booster.predict(X.head(5)))


def test_the_docstring_says_first_that_values_are_feature_values_not_shap_values(trained) -> None:
    summary = " ".join((Explanation.__doc__ or "").split("\n\n")[0].split())
    assert "``values`` holds the leads' feature values, not SHAP values" in summary
    booster, X, _ = trained
    exp = explain(booster, None, FEATURES, X.head(5))
    assert exp.values.equals(X.head(5).loc[:, NAMES])
    raw = booster.predict(X.head(5), pred_contrib=True)[:, :-1]
    assert np.allclose(exp.log_odds.to_numpy(), raw)
