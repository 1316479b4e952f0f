"""LeadScoringModel: save/load round trip without pickle, input typing, model behaviour.

The behaviour tests (Made-With-ML style) train once on synthetic-like leads whose truth is
known: more high-intent activity never lowers a score (direction), the lead id changes nothing
(invariance), and a few typical leads land in the stage a marketer would expect (minimum
functionality).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from leadscore.config import parse_config
from leadscore.datasets import prepare_flat_dataset
from leadscore.encoding import FeatureEncoder, category_levels, parse_numbers
from leadscore.errors import DataError, ModelError
from leadscore.explain import lead_reasons
from leadscore.model import BOOSTER_FILE, META_FILE, LeadScoringModel
from leadscore.schema import Feature, FeatureTable, LabelledDataset
from leadscore.specs import parse_spec
from leadscore.training import TrainingResult, train

FEATURES = (
    Feature(
        "high_intent_actions_30d", "engagement", "High-intent actions, last 30 days", "numeric"
    ),
    Feature("pricing_page_views_30d", "engagement", "Pricing page visits, last 30 days", "numeric"),
    Feature("web_visits_30d", "engagement", "Website visits, last 30 days", "numeric"),
    Feature("email_opens_30d", "engagement", "E-mails opened, last 30 days", "numeric"),
    Feature("seniority", "fit", "Seniority from the job title", "categorical"),
    Feature("source", "fit", "Lead source (channel)", "categorical"),
)
SENIORITY = {"c_level": 1.2, "director": 0.8, "manager": 0.3, "individual": 0.0, "student": -1.5}
SOURCE = {"referral": 0.6, "paid_search": 0.0, "organic": 0.2, "social": -0.4}


def synthetic_leads(n: int, seed: int = 0) -> tuple[LabelledDataset, np.ndarray]:
    """Leads whose win probability is a known function of intent, engagement and fit."""
    rng = np.random.default_rng(seed)
    intent = rng.gamma(0.6, 1.5, n)
    seniority = rng.choice(list(SENIORITY), n, p=[0.08, 0.15, 0.3, 0.37, 0.1])
    source = rng.choice(list(SOURCE), n)
    X = pd.DataFrame(
        {
            "high_intent_actions_30d": rng.poisson(intent).astype(float),
            "pricing_page_views_30d": rng.poisson(0.7 * intent).astype(float),
            "web_visits_30d": rng.poisson(2 + 2 * intent).astype(float),
            "email_opens_30d": np.where(rng.random(n) < 0.1, np.nan, rng.poisson(1.5, n)),
            "seniority": pd.Categorical(seniority, categories=list(SENIORITY)),
            "source": pd.Categorical(source, categories=list(SOURCE)),
        }
    )
    logit = (
        -2.6
        + 0.55 * X["high_intent_actions_30d"].to_numpy()
        + 0.35 * X["pricing_page_views_30d"].to_numpy()
        + 0.08 * X["web_visits_30d"].to_numpy()
        + pd.Series(seniority).map(SENIORITY).to_numpy()
        + pd.Series(source).map(SOURCE).to_numpy()
    )
    p = 1 / (1 + np.exp(-logit))
    y = (rng.random(n) < p).astype(int)
    dataset = LabelledDataset(
        name="synthetic",
        X=X,
        y=y,
        lead_id=pd.Series([f"lead-{seed}-{i:05d}" for i in range(n)]),
        order=pd.Series(
            pd.Timestamp("2023-01-01") + pd.to_timedelta(np.sort(rng.uniform(0, 540, n)), unit="D")
        ),
        features=FEATURES,
    )
    return dataset, p


@pytest.fixture(scope="module")
def trained() -> tuple[TrainingResult, LabelledDataset]:
    dataset, _ = synthetic_leads(4000)
    # The truth is linear in log-odds, a logistic regression's home ground: the gate is not
    # what these tests are about.
    config = parse_config(
        {
            "stages": {
                "mql": {"policy": "recall", "target": 0.9},
                "sql": {"policy": "precision", "target": 0.6},
            },
            "quality_gate": {"allow_worse": True},
        }
    )
    return train(dataset, config), dataset


def test_save_then_load_gives_identical_probabilities_stages_and_thresholds(
    trained: tuple[TrainingResult, LabelledDataset], tmp_path
) -> None:
    result, dataset = trained
    model = result.model
    folder = model.save(tmp_path / "m")
    assert sorted(p.name for p in folder.iterdir()) == [BOOSTER_FILE, META_FILE]
    back = LeadScoringModel.load(folder)
    X = dataset.X
    np.testing.assert_array_equal(back.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(back.predict_raw(X), model.predict_raw(X))
    np.testing.assert_array_equal(back.predict_stage(X), model.predict_stage(X))
    assert (back.mql_threshold, back.sql_threshold) == (model.mql_threshold, model.sql_threshold)
    assert back.features == model.features
    assert back.metadata["dataset"] == "synthetic"
    assert back.metadata["metrics"]["model"]["roc_auc"] == pytest.approx(
        result.metrics["model"]["roc_auc"]
    )


def test_the_fingerprint_follows_the_stages_and_the_calibrator_not_only_the_booster(
    trained: tuple[TrainingResult, LabelledDataset], tmp_path
) -> None:
    """A model folder's version is its fingerprint: a retrain that changed only the stage
    policy kept the booster, and its runs were recorded under the old model's version."""
    from leadscore.calibration import ProbabilityCalibrator
    from leadscore.scoring import load_scoring_model
    from leadscore.stages import StageThresholds

    model = trained[0].model
    back = LeadScoringModel.load(model.save(tmp_path / "m"))
    assert back.fingerprint == model.fingerprint
    stages = model.stages.to_dict()
    stages["sql_threshold_"] = min(1.0, stages["sql_threshold_"] + 0.01)
    other = LeadScoringModel(
        model.booster,
        model.encoder,
        model.calibrator,
        StageThresholds.from_dict(stages),
        dict(model.metadata),
        model.sub_scorer,
        model.drift_reference,
    )
    assert other.fingerprint != model.fingerprint
    versions = {
        load_scoring_model(str(m.save(tmp_path / name))).version
        for name, m in (("policy_a", model), ("policy_b", other))
    }
    assert len(versions) == 2
    calibrated = model.calibrator.to_dict()
    swapped = (
        {"method_": "sigmoid", "params_": {"a": 1.0, "b": 0.5}}
        if calibrated["method_"] == "identity"
        else {"method_": "identity", "params_": {}}
    )
    recalibrated = LeadScoringModel(
        model.booster,
        model.encoder,
        ProbabilityCalibrator.from_dict({**calibrated, **swapped}),
        model.stages,
        dict(model.metadata),
    )
    assert recalibrated.fingerprint != model.fingerprint
    tokens = LeadScoringModel(
        model.booster,
        model.encoder,
        model.calibrator,
        model.stages,
        {**model.metadata, "missing_values": ["Select"]},
        model.sub_scorer,
        model.drift_reference,
    )
    assert tokens.fingerprint != model.fingerprint


def test_model_folder_holds_only_text_and_json(trained, tmp_path) -> None:
    result, _ = trained
    folder = result.model.save(tmp_path / "m")
    meta = json.loads((folder / META_FILE).read_text())  # plain JSON, no NaN
    assert meta["format"] == "leadscore-model"
    assert meta["calibrator"]["method_"] in ("identity", "sigmoid", "isotonic")
    assert (folder / BOOSTER_FILE).read_text().startswith("tree")
    for path in folder.iterdir():
        assert b"\x80" not in path.read_bytes()[:2]  # no pickle protocol header


def test_tampered_or_missing_files_raise_model_errors(trained, tmp_path) -> None:
    result, _ = trained
    folder = result.model.save(tmp_path / "m")
    booster = folder / BOOSTER_FILE
    booster.write_text(booster.read_text().replace("tree", "tree ", 1))
    with pytest.raises(ModelError, match="checksum"):
        LeadScoringModel.load(folder)
    with pytest.raises(ModelError, match="not a model folder"):
        LeadScoringModel.load(tmp_path / "nothing")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda meta: meta.pop("booster_sha256"), r"model.json has no booster_sha256"),
        (lambda meta: meta["features"][0].update(kind="blob"), r"unknown kind 'blob'"),
        (lambda meta: meta["features"][0].update(group="who"), r"unknown group 'who'"),
        # impossible values: they loaded and staged or scored every lead wrongly
        (
            lambda meta: meta["stages"].update(mql_threshold_=0.9, sql_threshold_=0.1),
            r"damaged: the MQL cut-off \(0.9\) is above the SQL cut-off",
        ),
        (
            lambda meta: meta["stages"].update(mql_threshold_=5, sql_threshold_=7),
            r"damaged: mql_threshold_ is 5, not a probability",
        ),
        (
            lambda meta: meta["stages"].update(sql_threshold_=float("nan")),
            r"damaged: sql_threshold_ is nan",
        ),
        (
            lambda meta: meta["calibrator"].update(method_="sigmoid", params_={"a": "nan", "b": 1}),
            r"calibrator in the model file is damaged: sigmoid parameters",
        ),
        (
            lambda meta: meta["calibrator"].update(
                method_="isotonic", params_={"x": [1, 0], "y": [0.9, 0.1]}
            ),
            r"damaged: isotonic x is not sorted",
        ),
        (
            lambda meta: meta["calibrator"].update(method_="isotonic", params_={"x": [], "y": []}),
            r"damaged: isotonic x and y hold 0 and 0 points",
        ),
        # malformed structure: tracebacks (AttributeError, TypeError, ValueError) before
        (lambda meta: meta.update(categories=[1, 2]), r"damaged: categories is list"),
        (lambda meta: meta.update(metadata=[1]), r"damaged: metadata is list"),
        (lambda meta: meta.update(format_version="x"), r"damaged: format_version 'x'"),
        (lambda meta: meta.update(calibrator=None), r"damaged: calibrator is NoneType"),
        (lambda meta: meta.update(sub_scorer=[1]), r"damaged: sub_scorer is list"),
        (lambda meta: meta.update(features=[1, 2]), r"damaged: feature 0 lacks its name"),
        (lambda meta: meta["features"][0].update(colour="red"), r"unknown field 'colour'"),
        (lambda meta: meta["features"][0].update(label=3), r"feature 0 has a field that is not"),
        (lambda meta: meta["features"][0].update(read_as="eval"), r"read as unknown 'eval'"),
        (lambda meta: meta["features"][0].update(low_below="3"), r"low_below that is not a num"),
        (lambda meta: meta["features"][0].update(low_below=True), r"low_below that is not a num"),
        (lambda meta: meta["features"][0].update(low_below=float("inf")), r"low_below that is not"),
        (lambda meta: meta["categories"].update(source="abc"), r"levels of 'source' are not a"),
        (lambda meta: meta.pop("stages"), r"damaged: it has no 'stages'"),
    ],
)
def test_a_hand_edited_model_file_fails_at_load_time(trained, tmp_path, edit, message) -> None:
    """An edit that removes the booster's checksum or breaks a feature fails when the model is
    loaded, with the file named, not later as an error blamed on the leads being scored."""
    result, _ = trained
    folder = result.model.save(tmp_path / "m")
    meta = json.loads((folder / META_FILE).read_text())
    edit(meta)
    (folder / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=message) as err:
        LeadScoringModel.load(folder)
    assert str(folder / META_FILE) in str(err.value) and "\n" not in str(err.value)
    if "damaged" in message:
        fix = "Retrain the model or restore its model.json as it was saved."
        assert str(err.value).endswith(fix)


def test_a_model_without_the_newer_feature_fields_writes_none_of_them(trained, tmp_path):
    """Unset optional fields are left out of model.json, not written as null: a model that
    uses none of the fields added after the first release (``zero_sentence``,
    ``low_sentence``, ``fact``, ``low_below``, ``read_as``) is read by releases before them,
    which refuse a field they do not know."""
    result, _ = trained
    folder = result.model.save(tmp_path / "m")
    features = json.loads((folder / META_FILE).read_text())["features"]
    first_release = {"name", "group", "label", "kind", "sentence", "missing_sentence"}
    assert all(set(f) <= first_release and None not in f.values() for f in features)
    assert LeadScoringModel.load(folder).features == result.model.features


def test_texts_round_trip_as_the_folder_does(trained, tmp_path) -> None:
    """The text form (what Spark ships to its workers) is the folder's two files, exactly."""
    result, dataset = trained
    meta_text, booster_text = result.model.to_texts()
    folder = result.model.save(tmp_path / "m")
    assert (meta_text, booster_text) == (
        (folder / META_FILE).read_text(),
        (folder / BOOSTER_FILE).read_text(),
    )
    back = LeadScoringModel.from_texts(meta_text, booster_text)
    np.testing.assert_array_equal(
        back.predict_proba(dataset.X), result.model.predict_proba(dataset.X)
    )
    with pytest.raises(ModelError, match=r"shipped\.txt does not match its model\.json"):
        LeadScoringModel.from_texts(meta_text, booster_text + "\n", booster_name="shipped.txt")
    with pytest.raises(ModelError, match="not a leadscore model file"):
        LeadScoringModel.from_texts("[1, 2]", booster_text)


def test_categories_are_restored_inside_the_model(trained) -> None:
    result, dataset = trained
    model, X = result.model, dataset.X.head(300)
    expected = model.predict_proba(X)
    as_text = X.assign(seniority=X["seniority"].astype(str), source=X["source"].astype(str))
    reordered = X.assign(seniority=X["seniority"].cat.reorder_categories(list(reversed(SENIORITY))))
    shuffled_columns = X[list(reversed(X.columns))]
    for variant in (as_text, reordered, shuffled_columns):
        np.testing.assert_array_equal(model.predict_proba(variant), expected)
    unseen = X.assign(source="tiktok")
    assert np.isfinite(model.predict_proba(unseen)).all()


def test_numeric_codes_score_alike_as_floats_integers_and_text() -> None:
    """A code column typed as categorical (``categorical: [page]``) read back by any reader."""
    rng = np.random.default_rng(3)
    n = 1500
    page = rng.integers(0, 12, n).astype(float)
    page[rng.random(n) < 0.1] = np.nan
    visits = rng.poisson(3, n).astype(float)
    logit = -1.0 + 0.25 * visits + np.where(np.nan_to_num(page, nan=-1) % 3 == 0, 1.2, -0.6)
    frame = pd.DataFrame(
        {
            "id": [f"l{i}" for i in range(n)],
            "seq": np.arange(n),
            "page": page,
            "visits": visits,
            "won": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int),
        }
    )
    spec = {
        "name": "codes",
        "source": "unused.csv",
        "id": "id",
        "order_by": "seq",
        "label": {"column": "won", "won": [1], "lost": [0]},
        "categorical": ["page"],
    }
    dataset = prepare_flat_dataset(frame, parse_spec(spec))
    model = train(dataset, parse_config({"quality_gate": {"allow_worse": True}})).model
    assert model.encoder.categories["page"][:3] == ["0", "1", "10"]
    expected = model.predict_proba(dataset.X)
    as_text = frame["page"].map(lambda v: "" if np.isnan(v) else str(v))  # "4.0", blanks
    variants = {
        "float": frame,
        "int": frame.assign(page=frame["page"].astype("Int64")),
        "text": frame.assign(page=as_text.astype("str")),
        "text without .0": frame.assign(page=frame["page"].astype("Int64").astype("str")),
    }
    for name, variant in variants.items():
        np.testing.assert_array_equal(model.predict_proba(variant), expected, err_msg=name)
    assert model.prepare(frame)["page"].isna().sum() == int(np.isnan(page).sum())


def test_percent_text_reads_as_the_share_it_writes() -> None:
    """``43.6%`` is the float that ``0.436`` is (in the text or as a number), with or without a
    space before the sign; a column mixing both spellings reads both."""
    rng = np.random.default_rng(11)
    tenths = [str(Decimal(int(k)).scaleb(-1)) for k in rng.integers(-1_000, 10_000, 300)]
    percent = [f"{t}{rng.choice(['%', ' %'])}" for t in tenths] + ["100%", "-5 %", "0%"]
    shares = [str(Decimal(t) / 100) for t in tenths] + ["1", "-0.05", "0"]
    read, bad = parse_numbers(pd.Series(percent, dtype="str"))
    assert not bad.any()
    np.testing.assert_array_equal(read, parse_numbers(pd.Series(shares, dtype="str"))[0])
    np.testing.assert_array_equal(read, [float(s) for s in shares])
    mixed = pd.Series(
        [v if i % 2 else s for i, (v, s) in enumerate(zip(percent, shares, strict=True))]
    )
    np.testing.assert_array_equal(parse_numbers(mixed.astype("str"))[0], read)


def test_amounts_with_a_currency_symbol_read_as_their_number() -> None:
    """``$1,549,000``, ``-€12.50`` and ``12.50 £`` are amounts; a currency code, a decimal
    comma, two symbols or two signs are no number."""
    rng = np.random.default_rng(12)
    cents = rng.integers(-(10**9), 10**9, 400)
    written, expected = [], []
    for c, symbol, form in zip(
        cents, rng.choice(list("$€£¥"), 400), rng.integers(0, 5, 400), strict=True
    ):
        sign, amount = "-" if c < 0 else "", f"{abs(c) / 100:,.2f}"
        if form == 4:
            amount = amount.replace(",", "")
        written.append(
            [
                f"{sign}{symbol}{amount}",
                f"{symbol}{sign}{amount}",
                f"{sign}{amount} {symbol}",
                f"{sign}{amount}{symbol}",
                f"{sign}{symbol} {amount}",
            ][form]
        )
        expected.append(float(f"{c / 100:.2f}"))
    read, bad = parse_numbers(pd.Series(written, dtype="str"))
    assert not bad.any()
    np.testing.assert_array_equal(read, expected)
    refused = ["1,200 USD", "USD 12", "12,50 €", "$5%", "$5€", "-$-5", "$1,2345", "$"]
    read, bad = parse_numbers(pd.Series(refused, dtype="str"))
    assert bad.all() and read.isna().all()


def test_percent_and_currency_columns_train_as_numbers_and_score_alike() -> None:
    """A share written ``43.6%`` and an amount written ``$1,549`` are numeric features, and a
    model scores them as written exactly as it scores their numbers."""
    rng = np.random.default_rng(13)
    n = 1500
    share = rng.integers(0, 1000, n) / 10
    amount = rng.integers(0, 10**8, n) / 100
    logit = -1.0 + 0.03 * share - amount / 10**6
    frame = pd.DataFrame(
        {
            "id": [f"l{i}" for i in range(n)],
            "seq": np.arange(n),
            "share": [f"{s:.1f}%" for s in share],
            "amount": [f"${a:,.2f}" for a in amount],
            "won": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int),
        }
    ).astype({"share": "str", "amount": "str"})
    spec = {
        "name": "written",
        "source": "unused.csv",
        "id": "id",
        "order_by": "seq",
        "label": {"column": "won", "won": [1], "lost": [0]},
    }
    dataset = prepare_flat_dataset(frame, parse_spec(spec))
    assert {f.name: f.kind for f in dataset.features} == {"share": "numeric", "amount": "numeric"}
    np.testing.assert_array_equal(dataset.X["share"], [float(f"{s / 100:.3f}") for s in share])
    np.testing.assert_array_equal(dataset.X["amount"], amount)
    model = train(dataset, parse_config({"quality_gate": {"allow_worse": True}})).model
    as_numbers = frame.assign(share=dataset.X["share"], amount=amount)
    np.testing.assert_array_equal(model.predict_proba(frame), model.predict_proba(as_numbers))


def test_levels_saved_as_float_text_still_match() -> None:
    """Models saved before levels were canonical hold "4.0": 4, 4.0 and "4" still find it."""
    feature = Feature("page", "fit", "Landing page", "categorical")
    encoder = FeatureEncoder([feature], {"page": ["1.0", "10.0", "4.0"]})
    leads = pd.DataFrame({"page": [4.0, 10.0, np.nan, 7.0]})
    expected = [2.0, 1.0, np.nan, np.nan]
    for variant in (leads, leads.astype("Int64"), leads.astype("str"), leads.astype(object)):
        np.testing.assert_array_equal(encoder.matrix(variant)[:, 0], expected)


def test_true_and_false_match_however_they_are_spelled() -> None:
    """A CSV reader types a TRUE/FALSE column as booleans until one other token appears; Parquet
    and databases hand it over as text: every spelling is the same level."""
    feature = Feature("decision_maker", "fit", "Decision maker", "categorical")
    frame = pd.DataFrame({"decision_maker": [True, False, True, None]})
    levels = category_levels(frame["decision_maker"].dropna().astype(bool))
    encoder = FeatureEncoder([feature], {"decision_maker": levels})
    expected = encoder.matrix(frame)[:, 0]
    assert not np.isnan(expected[:3]).any()
    for spelling in (["TRUE", "FALSE", "TRUE", ""], ["true", "false", "True", None]):
        variant = pd.DataFrame({"decision_maker": pd.Series(spelling, dtype="str")})
        np.testing.assert_array_equal(
            encoder.matrix(variant)[:, 0], expected, err_msg=str(spelling)
        )
    saved_as_text = FeatureEncoder([feature], {"decision_maker": ["FALSE", "TRUE"]})
    np.testing.assert_array_equal(saved_as_text.matrix(frame)[:, 0], expected)


def test_blank_text_numbers_are_missing_and_infinity_is_refused(trained) -> None:
    result, dataset = trained
    model, X = result.model, dataset.X.head(50)
    blanked = X.assign(email_opens_30d=np.nan)
    as_text = X.assign(email_opens_30d=pd.Series([""] * 25 + ["  "] * 25, dtype="str"))
    np.testing.assert_array_equal(model.predict_proba(as_text), model.predict_proba(blanked))
    with pytest.raises(DataError, match=r"'web_visits_30d' holds an infinite value in 2 row"):
        model.predict_proba(X.assign(web_visits_30d=[np.inf, -np.inf] + [1.0] * 48))


def test_dates_in_a_number_column_or_a_column_twice_are_refused(trained) -> None:
    """A moment is no quantity: read as a count of microseconds (a missing date as -9.2e18)
    it scored silently. A column a join brought twice crashed in pandas."""
    result, dataset = trained
    model, X = result.model, dataset.X.head(5)
    dates = pd.Series(pd.to_datetime(["2024-05-01", None, "2024-05-03", None, "2024-05-05"]))
    for moments in (dates, dates - dates.min()):
        with pytest.raises(DataError, match="'email_opens_30d' must be numeric but holds"):
            model.predict_proba(X.assign(email_opens_30d=moments.to_numpy()))
    numbers, bad = parse_numbers(dates)
    assert numbers.isna().all() and bad.tolist() == [True, False, True, False, True]
    twice = pd.concat([X, X[["source"]]], axis=1)
    with pytest.raises(DataError, match="hold column 'source' twice"):
        model.predict_proba(twice)
    from leadscore.pyfunc import score_frame

    with pytest.raises(DataError, match="hold column 'source' twice"):
        score_frame(model, twice)  # the pyfunc's path, which aligns the columns first


def test_unseen_categories_are_scored_as_missing_but_quoted(trained) -> None:
    result, dataset = trained
    model, X = result.model, dataset.X.head(300)
    unseen = X.assign(source="tiktok")
    np.testing.assert_array_equal(
        model.predict_proba(unseen), model.predict_proba(X.assign(source=None))
    )
    batch = model.explain_batch(unseen, 6, min_contribution=0.0)
    text = batch["reasons_for"] + "; " + batch["reasons_against"]
    about_source = text.str.contains("Lead source")
    assert about_source.any()
    quoted = text[about_source].str.contains(
        "Lead source (channel): tiktok (not seen in training, so scored as not given)", regex=False
    )
    assert quoted.all()
    assert not text.str.contains("Lead source (channel) not given", regex=False).any()
    values = [
        item["value"]
        for cell in batch["reasons_json"]
        for item in json.loads(cell)
        if item["feature"] == "source"
    ]
    assert values and set(values) == {"tiktok"}
    exp = model.explain(unseen)
    reasons = [r for side in lead_reasons(exp, 0, top_n=6, min_contribution=0.0) for r in side]
    source = [r for r in reasons if r.feature == "source"]
    assert source and source[0].value == "tiktok"
    assert (
        source[0].text
        == "Lead source (channel): tiktok (not seen in training, so scored as not given)"
    )


def test_scoring_from_python_warns_about_unseen_categories_once_per_feature(
    trained, caplog
) -> None:
    """``predict_proba`` is the README's way to score new data from Python: an unseen
    category must not score silently there, while the scorer and the pyfunc, which count
    them per run, can turn the warning off."""
    import logging

    result, dataset = trained
    model, X = result.model, dataset.X.head(40)
    unseen = X.assign(source=["tiktok"] * 3 + list(X["source"].iloc[3:]))

    def said() -> list[str]:
        return [r.getMessage() for r in caplog.records if "never saw" in r.getMessage()]

    with caplog.at_level(logging.WARNING, logger="leadscore"):
        model.predict_proba(X)
        assert said() == []
        model.predict_stage(unseen)
        (line,) = said()
        assert line.startswith("3 of 40 scored leads have a value of 'source'")
        assert "'tiktok'" in line
        caplog.clear()
        model.predict_proba(unseen, warn_unseen=False)
        assert said() == []


def test_missing_or_mistyped_columns_name_the_column(trained) -> None:
    result, dataset = trained
    X = dataset.X.head(5)
    with pytest.raises(DataError, match="no column 'seniority'"):
        result.model.predict_proba(X.drop(columns="seniority"))
    with pytest.raises(DataError, match="'web_visits_30d' must be numeric"):
        result.model.predict_proba(X.assign(web_visits_30d="many"))


def test_more_high_intent_activity_never_lowers_the_score(trained) -> None:
    result, dataset = trained
    model = result.model
    X = dataset.X.sample(400, random_state=1).reset_index(drop=True)
    base = model.predict_proba(X)
    base_raw = model.predict_raw(X)
    for extra in (1, 3, 10):
        more = X.assign(
            high_intent_actions_30d=X["high_intent_actions_30d"] + extra,
            pricing_page_views_30d=X["pricing_page_views_30d"] + extra,
        )
        assert np.all(model.predict_raw(more) >= base_raw)
        assert np.all(model.predict_proba(more) >= base)
    assert result.params["monotone_constraints"][:2] == [1, 1]


def test_changing_the_lead_id_changes_nothing(trained) -> None:
    result, dataset = trained
    X = dataset.X.head(200)
    with_ids = X.assign(lead_id=[f"other-{i}" for i in range(200)])
    renamed = X.assign(lead_id=[f"x{i}" for i in reversed(range(200))])
    np.testing.assert_array_equal(
        result.model.predict_proba(with_ids), result.model.predict_proba(renamed)
    )
    np.testing.assert_array_equal(
        result.model.predict_proba(with_ids), result.model.predict_proba(X)
    )
    assert "lead_id" not in result.model.feature_names


def test_typical_leads_land_in_the_stage_a_marketer_expects(trained) -> None:
    result, _ = trained
    leads = pd.DataFrame(
        {
            "high_intent_actions_30d": [6.0, 1.0, 0.0, 0.0],
            "pricing_page_views_30d": [4.0, 1.0, 0.0, 0.0],
            "web_visits_30d": [14.0, 5.0, 1.0, 0.0],
            "email_opens_30d": [3.0, 2.0, 0.0, np.nan],
            "seniority": ["director", "manager", "student", "individual"],
            "source": ["referral", "organic", "social", "paid_search"],
        },
        index=["demo-requesting director", "curious manager", "idle student", "silent lead"],
    )
    stages = dict(zip(leads.index, result.model.predict_stage(leads), strict=True))
    p = dict(zip(leads.index, result.model.predict_proba(leads), strict=True))
    assert stages["demo-requesting director"] == "sql"
    assert stages["idle student"] == "lead" and stages["silent lead"] == "lead"
    assert p["demo-requesting director"] > p["curious manager"] > p["idle student"]


# --------------------------------------------------------------------------- the MLflow pyfunc


@pytest.fixture(scope="module")
def logged_pyfunc(trained, tmp_path_factory):
    """The trained model logged as tracking logs it (the pyfunc file as code, the model folder
    as an artifact, the same signature), in a SQLite store under tmp_path, and loaded back."""
    import mlflow
    from mlflow import MlflowClient

    from leadscore import pyfunc, tracking

    result, _ = trained
    root = tmp_path_factory.mktemp("pyfunc")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with tracking.quiet_mlflow(), tracking.using_tracking_uri(uri):
        experiment = MlflowClient(uri).create_experiment(
            "pyfunc", artifact_location=(root / "artifacts").as_uri()
        )
        with mlflow.start_run(experiment_id=experiment):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=pyfunc.__file__,
                artifacts={pyfunc.MODEL_DIR_ARTIFACT: str(result.model.save(root / "m"))},
                signature=tracking.model_signature(result.model),
            )
        return mlflow.pyfunc.load_model(info.model_uri)


def test_pyfunc_refuses_input_without_any_model_feature(trained, logged_pyfunc) -> None:
    """MLflow drops every column the signature does not name: without this check a request
    with other column names came back as an empty frame, no error."""
    leads = pd.DataFrame({"Source": ["a", "b", "c"], "Web Visits 30d": [3, 0, 1]})
    with pytest.raises(DataError, match="holds none of the model's 6 feature columns"):
        logged_pyfunc.predict(leads)
    from leadscore.pyfunc import score_frame

    with pytest.raises(DataError, match="none of the model's 6 feature columns"):
        score_frame(trained[0].model, leads)


def test_a_served_model_answers_a_refused_request_with_leadscore_s_line(logged_pyfunc) -> None:
    """``mlflow models serve`` turned any other error into "Encountered an unexpected
    error", leadscore's line left in a stack trace: the refusal is a 400 that says it."""
    import json

    from mlflow.pyfunc import scoring_server

    request = json.dumps({"dataframe_split": {"columns": ["Source"], "data": [["a"], ["b"]]}})
    with pytest.raises(MlflowException) as err:
        scoring_server.invocations(
            request, "application/json", logged_pyfunc, logged_pyfunc.metadata.get_input_schema()
        )
    assert err.value.get_http_status_code() == 400
    assert "holds none of the model's 6 feature columns" in err.value.message
    assert "unexpected error" not in err.value.message


def test_pyfunc_warns_about_absent_features_and_scores_every_row(
    trained, logged_pyfunc, caplog
) -> None:
    _, dataset = trained
    leads = dataset.X[["web_visits_30d"]].head(7)
    with caplog.at_level("WARNING", logger="leadscore.pyfunc"):
        out = logged_pyfunc.predict(leads)
    assert len(out) == 7 and out["probability"].between(0, 1).all()
    assert "5 of 6 features are not in the input and score as missing" in caplog.text
    assert "'seniority'" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="leadscore.pyfunc"):
        full = logged_pyfunc.predict(dataset.X.head(7).astype({"seniority": str, "source": str}))
    assert len(full) == 7 and "score as missing" not in caplog.text

    # a source the model never saw scores as missing, with one warning, as score gives
    caplog.clear()
    new_source = dataset.X.head(7).astype({"seniority": str, "source": str})
    new_source.loc[new_source.index[:2], "source"] = "TikTok"
    with caplog.at_level("WARNING"):
        unseen = logged_pyfunc.predict(new_source)
    assert "2 of 7 scored leads have a value of 'source' the model never saw" in caplog.text
    assert "'TikTok'" in caplog.text
    as_missing = new_source.assign(source=new_source["source"].where(lambda s: s != "TikTok"))
    assert (
        unseen["probability"].tolist() == logged_pyfunc.predict(as_missing)["probability"].tolist()
    )


def test_a_column_missing_at_scoring_names_the_closest_one(trained):
    result, dataset = trained
    name = dataset.features[0].name
    renamed = dataset.X.head(5).rename(columns={name: f"{name.upper()} "})
    with pytest.raises(DataError, match=rf"no column '{name}' \(closest: '{name.upper()} '\)"):
        result.model.predict_proba(renamed)


def test_a_missing_column_is_never_matched_to_one_the_training_data_left_out(trained, tmp_path):
    """A review's scoring input renamed 'Number of Sessions'; the hint offered 'Number of
    Pageviews', a lifetime counter the spec excluded as leaky. A column the model's metadata
    names as excluded is never offered, after a save and load too."""
    result, dataset = trained
    name = dataset.features[0].name
    leaky = f"{name}_lifetime"
    saved = result.model.save(tmp_path / "m")
    meta = json.loads((saved / "model.json").read_text())
    meta["metadata"]["excluded"] = {**meta["metadata"].get("excluded", {}), leaky: "excluded"}
    (saved / "model.json").write_text(json.dumps(meta))
    model = LeadScoringModel.load(saved)
    renamed = dataset.X.head(5).rename(columns={name: leaky})
    with pytest.raises(DataError) as err:
        model.predict_proba(renamed)
    assert f"no column '{name}'" in str(err.value) and "closest" not in str(err.value)


def test_a_model_reads_raw_e_mail_addresses_as_it_read_them_at_training(tmp_path) -> None:
    """A flat table's e-mail column trains on the kind of each address; scoring gets raw
    addresses and must read them the same way, before and after save and load, and
    reasons quote the kind, never an address."""
    rng = np.random.default_rng(3)
    n = 3000
    free = rng.random(n) < 0.4
    visits = rng.poisson(3, n)
    won = rng.random(n) < 1 / (1 + np.exp(-(-1.0 - 1.5 * free + 0.3 * visits)))
    frame = pd.DataFrame(
        {
            "id": [f"L{i}" for i in range(n)],
            "seq": np.arange(n),
            "email": [
                f"lead{i}@{'gmail.com' if f else f'firm{i % 50}.com'}" for i, f in enumerate(free)
            ],
            "visits": visits,
            "won": won.astype(int),
        }
    )
    spec = parse_spec(
        {"name": "mail", "source": "x.csv", "id": "id", "order_by": "seq",
         "label": {"column": "won", "won": [1], "lost": [0]}}
    )  # fmt: skip
    dataset = prepare_flat_dataset(frame, spec)
    config = parse_config(
        {"cold_start": {"min_wins": 20, "min_leads": 200}, "quality_gate": {"allow_worse": True},
         "evaluation": {"resamples": 0}}
    )  # fmt: skip
    model = train(dataset, config).model
    raw = frame.loc[frame["won"].notna(), ["email", "visits"]].reset_index(drop=True)
    np.testing.assert_array_equal(model.predict_proba(raw), model.predict_proba(dataset.X))
    back = LeadScoringModel.load(model.save(tmp_path / "m"))
    assert {f.name: f.read_as for f in back.features}["email"] == "email_domain_kind"
    np.testing.assert_array_equal(back.predict_proba(raw), model.predict_proba(raw))
    # every lead gave an address: "missing" is a kind the model never saw, not a level
    assert set(back.encoder.categories["email"]) == {"corporate", "free"}
    reasons = back.explain_batch(raw.iloc[:300])
    text = " ".join(reasons["reasons_for"]) + " ".join(reasons["reasons_against"])
    assert "email (corporate or free mail): free" in text and "@" not in text


# --------------------------------------------------------------------------- "not answered" tokens


def _with_metadata(model: LeadScoringModel, **metadata: object) -> LeadScoringModel:
    """``model`` as its saved files would load with ``metadata`` set (``None``: left out)."""
    meta_text, booster_text = model.to_texts()
    meta = json.loads(meta_text)
    for key, value in metadata.items():
        if value is None:
            meta["metadata"].pop(key, None)
        else:
            meta["metadata"][key] = value
    return LeadScoringModel.from_texts(json.dumps(meta), booster_text)


def _select_leads(dataset: LabelledDataset) -> pd.DataFrame:
    """20 leads as a CRM exports them: every column text, the spec's ``Select`` written for
    "not answered" in a categorical and a numeric column, in any case and spacing."""
    leads = dataset.X.head(20).astype(str).replace({"nan": ""})
    leads.loc[leads.index[:6], "source"] = ["Select", "select", " SELECT ", "Select", "", "Select"]
    leads.loc[leads.index[10:13], "email_opens_30d"] = "Select"
    return leads


def test_the_spec_s_missing_tokens_score_as_missing_in_the_pyfunc(trained, caplog) -> None:
    """A model that records the spec's tokens reads them as missing, as the spec's reader
    does before the batch scorer: no "never saw" warning telling the user to retrain, no
    error in a numeric column, and the scores of the same leads with blanks."""
    from leadscore.pyfunc import score_frame

    result, dataset = trained
    model = _with_metadata(result.model, missing_values=["Select"])
    assert model.missing_values == ("Select",)
    leads = _select_leads(dataset)
    blanked = leads.replace(r"(?i)^\s*select\s*$", "", regex=True)
    with caplog.at_level("WARNING"):
        scored = score_frame(model, leads)
    assert "never saw" not in caplog.text
    expected = score_frame(model, blanked)
    pd.testing.assert_frame_equal(scored, expected)
    np.testing.assert_array_equal(model.predict_proba(leads), expected["probability"])
    assert model.prepare(leads)["source"].isna().sum() == blanked["source"].eq("").sum()
    # the token travels with the model's files
    back = LeadScoringModel.from_texts(*model.to_texts())
    np.testing.assert_array_equal(back.predict_proba(leads), expected["probability"])


def test_a_model_saved_before_the_tokens_were_recorded_reads_them_as_before(trained, caplog):
    """No ``missing_values`` in model.json: ``Select`` is a category the model never saw, and
    text in a numeric column is an error, as before."""
    from leadscore.pyfunc import score_frame

    result, dataset = trained
    old = _with_metadata(result.model, missing_values=None)
    assert old.missing_values == ()
    leads = _select_leads(dataset).assign(email_opens_30d="")
    with caplog.at_level("WARNING"):
        score_frame(old, leads)
    assert "of 'source' the model never saw in training (e.g. 'Select')" in caplog.text
    with pytest.raises(DataError, match="must be numeric but holds 'Select'"):
        old.predict_proba(_select_leads(dataset))
    with pytest.raises(ModelError, match="missing_values is not a list of texts"):
        _with_metadata(result.model, missing_values="Select")


def test_training_records_the_spec_s_missing_tokens(caplog) -> None:
    """A model trained on a spec with ``missing_values`` records them, so that its pyfunc
    reads ``Select`` as the spec's reader did at training."""
    from leadscore.pyfunc import score_frame

    rng = np.random.default_rng(11)
    n = 1200
    source = rng.choice(["Google", "Referral", "Select"], n)
    visits = rng.poisson(3, n)
    won = rng.random(n) < 1 / (1 + np.exp(1.5 - 0.3 * visits - (source == "Referral")))
    frame = pd.DataFrame(
        {"id": [f"L{i}" for i in range(n)], "seq": np.arange(n), "source": source,
         "visits": visits, "won": won.astype(int)}
    )  # fmt: skip
    spec = parse_spec(
        {"name": "tokens", "source": "x.csv", "id": "id", "order_by": "seq",
         "missing_values": ["Select"], "label": {"column": "won", "won": [1], "lost": [0]}}
    )  # fmt: skip
    config = parse_config({"quality_gate": {"allow_worse": True}, "evaluation": {"resamples": 0}})
    model = train(prepare_flat_dataset(frame, spec), config).model
    assert model.metadata["missing_values"] == ["Select"]
    assert "Select" not in model.encoder.categories["source"]
    back = LeadScoringModel.from_texts(*model.to_texts())
    with caplog.at_level("WARNING"):
        score_frame(back, frame[["source", "visits"]].astype(str))
    assert "never saw" not in caplog.text


def test_booster_names_stay_unique_when_a_suffixed_name_is_taken():
    """`a_b_2` as written, then `a_b` and `a b`: the third cleans to `a_b`, and its position
    suffix gives `a_b_2`, which the first holds; LightGBM needs every name once."""
    written = ["a_b_2", "a_b", "a b", "x y!", "x_y"]
    features = [Feature(n, "fit", n, "numeric") for n in written]
    names = FeatureEncoder(features, {}).booster_names
    assert len(set(names)) == len(names) == 5
    assert names[:2] == ["a_b_2", "a_b"] and names[3] == "x_y"
    assert all(re.fullmatch(r"[0-9A-Za-z_]+", n) for n in names)


def test_a_feature_table_passed_whole_is_told_to_pass_its_x(trained) -> None:
    result, dataset = trained
    X = dataset.X.head(5)
    table = FeatureTable(X.assign(lead_id=[f"L{i}" for i in range(5)]), dataset.features)
    model = result.model
    calls = [
        model.predict_proba,
        model.predict_stage,
        model.predict_margin,
        model.predict_raw,
        model.explain,
        model.explain_batch,
        model.prepare,
        model.encode,
    ]
    for call in calls:
        with pytest.raises(DataError, match=r"must be a DataFrame, not FeatureTable") as err:
            call(table)
        assert "Pass table.X" in str(err.value) and "\n" not in str(err.value), call
    with pytest.raises(DataError, match=r"not LabelledDataset.*Pass dataset\.X"):
        model.predict_proba(dataset)
    with pytest.raises(DataError, match=r"not ndarray\. Pass a pandas DataFrame"):
        model.predict_proba(X.to_numpy())
    assert (model.predict_proba(table.X) == model.predict_proba(X)).all()
