"""Category values spelled differently only in case or spacing are one level.

CRM exports write one channel as ``Paid Search`` and ``paid search``: a model that keeps them
apart learns two effects for one channel and gives reasons that contradict each other. These
tests train through the public API (a flat table and event data) and check the whole path:
levels, scores, reasons, the saved model, and models saved before spellings were folded.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from leadscore.config import parse_config
from leadscore.datasets import prepare_flat_dataset
from leadscore.encoding import FeatureEncoder, preferred_spellings, spelling_key, unseen_values
from leadscore.errors import ModelError
from leadscore.model import LeadScoringModel
from leadscore.schema import Feature
from leadscore.specs import parse_spec
from leadscore.training import TrainingResult, prepare_training, train

SPEC = {
    "name": "spellings",
    "source": "unused.csv",
    "id": "id",
    "order_by": "seq",
    "label": {"column": "won", "won": [1], "lost": [0]},
}
CONFIG = {"quality_gate": {"allow_worse": True}, "evaluation": {"resamples": 0}}


def mixed_case_leads(n: int = 2000, seed: int = 5) -> pd.DataFrame:
    """Leads whose source matters, with a fifth of ``Paid Search`` written ``paid search``
    and some ``Healthcare`` written ``healthcare``."""
    rng = np.random.default_rng(seed)
    source = rng.choice(["Paid Search", "Organic", "Referral"], n, p=[0.5, 0.3, 0.2])
    industry = rng.choice(["Healthcare", "Retail"], n)
    visits = rng.poisson(3, n).astype(float)
    logit = (
        -1.0
        + 0.3 * visits
        + np.select([source == "Referral", source == "Paid Search"], [1.2, -1.0], 0.0)
    )
    source = np.where((source == "Paid Search") & (rng.random(n) < 0.2), "paid search", source)
    industry = np.where((industry == "Healthcare") & (rng.random(n) < 0.1), "healthcare", industry)
    return pd.DataFrame(
        {
            "id": [f"l{i}" for i in range(n)],
            "seq": np.arange(n),
            "source": source,
            "industry": industry,
            "visits": visits,
            "won": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int),
        }
    ).astype({"source": "str", "industry": "str"})


@pytest.fixture(scope="module")
def flat() -> tuple[TrainingResult, pd.DataFrame]:
    frame = mixed_case_leads()
    dataset = prepare_flat_dataset(frame, parse_spec(SPEC))
    return train(dataset, parse_config(CONFIG)), frame


def _spelled(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    return frame.assign(source=pd.Series(source, index=frame.index, dtype="str"))


def test_flat_training_learns_one_level_per_spelling_and_scores_them_alike(flat) -> None:
    result, frame = flat
    model = result.model
    assert model.encoder.categories["source"] == ["Organic", "Paid Search", "Referral"]
    assert model.encoder.categories["industry"] == ["Healthcare", "Retail"]
    leads = frame.head(200)
    expected = model.predict_proba(_spelled(leads, "Paid Search"))
    for spelling in ("paid search", "PAID SEARCH", "  Paid   search "):
        variant = _spelled(leads, spelling)
        np.testing.assert_array_equal(model.predict_proba(variant), expected, err_msg=spelling)
        assert unseen_values(model.encoder, model.prepare(variant)) == {}
    missing = model.predict_proba(_spelled(leads, "Paid_Search"))  # no spelling of it: unseen
    assert unseen_values(model.encoder, model.prepare(_spelled(leads, "Paid_Search")))
    assert not np.array_equal(missing, expected)


def test_training_warns_once_per_column_with_the_merged_spellings(caplog) -> None:
    frame = mixed_case_leads(1200, seed=8)
    dataset = prepare_flat_dataset(frame, parse_spec(SPEC))
    caplog.set_level(logging.WARNING, logger="leadscore.encoding")
    prepared = prepare_training(dataset, parse_config(CONFIG))
    warned = [r.getMessage() for r in caplog.records if r.name == "leadscore.encoding"]
    # the levels are learnt from the rows the booster is fitted and early-stopped on
    learnt = np.concatenate([prepared.folds.fit, prepared.folds.valid])
    counts = dataset.X["source"].iloc[learnt].astype("str").value_counts()
    line = (
        f"source: spellings that differ only in case or spacing are one level: 'paid search' "
        f"({counts['paid search']:,}) read as 'Paid Search' ({counts['Paid Search']:,})"
    )
    assert line in warned
    assert len([w for w in warned if w.startswith("industry:")]) == 1
    assert len(warned) == 2


def test_many_spellings_are_shortened_and_ties_go_to_the_sorted_first(caplog) -> None:
    feature = Feature("source", "fit", "Lead source", "categorical")
    spellings = ["Web", "web", "WEB", "wEb", "weB", " web", "WeB", "wEB"]
    values = [s for i, s in enumerate(spellings) for _ in range(10 - i)]
    caplog.set_level(logging.WARNING, logger="leadscore.encoding")
    encoder = FeatureEncoder.from_frame(pd.DataFrame({"source": values}), [feature])
    assert encoder.categories == {"source": ["Web"]}
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.count(" read as 'Web' (10)") == 5 and message.endswith(" and 2 more")
    assert preferred_spellings({"b": 2, "B": 2, "a": 1}) == {"B": "B", "b": "B", "a": "a"}
    assert spelling_key(" 3.0 ") == spelling_key(3) == "3"
    assert spelling_key("TRUE") == spelling_key(True)


def test_reasons_quote_the_level_as_trained(flat) -> None:
    result, frame = flat
    model = result.model
    leads = _spelled(frame.head(100), "paid search")
    batch = model.explain_batch(leads, 6, min_contribution=0.0)
    values = {
        item["value"]
        for cell in batch["reasons_json"]
        for item in json.loads(cell)
        if item["feature"] == "source"
    }
    assert values == {"Paid Search"}
    text = " ".join(batch["reasons_for"] + " " + batch["reasons_against"])
    assert "paid search" not in text and "not seen in training" not in text


def test_the_saved_model_folds_after_loading_and_old_models_do_not(flat, tmp_path) -> None:
    result, frame = flat
    model = result.model
    folder = model.save(tmp_path / "m")
    meta = json.loads((folder / "model.json").read_text())
    assert meta["category_matching"] == "folded"
    back = LeadScoringModel.load(folder)
    leads = pd.concat([frame.head(50), _spelled(frame.head(50), "PAID search")])
    np.testing.assert_array_equal(back.predict_proba(leads), model.predict_proba(leads))

    # a model saved before folding has no category_matching: values match exactly, as then
    meta_text, booster_text = model.to_texts()
    old_meta = json.loads(meta_text)
    del old_meta["category_matching"]
    old = LeadScoringModel.from_texts(json.dumps(old_meta), booster_text)
    assert not old.encoder.fold_spellings
    head = frame.head(50)
    np.testing.assert_array_equal(
        old.predict_proba(_spelled(head, "paid search")),
        old.predict_proba(head.assign(source=None)),
    )
    np.testing.assert_array_equal(
        old.predict_proba(_spelled(head, "Paid Search")),
        model.predict_proba(_spelled(head, "Paid Search")),
    )
    assert json.loads(old.to_texts()[0])["category_matching"] == "exact"

    feature = Feature("source", "fit", "Lead source", "categorical")
    two_levels = {"source": ["Paid Search", "paid search"]}  # trained before folding
    kept_apart = FeatureEncoder([feature], two_levels).matrix(
        pd.DataFrame({"source": ["Paid Search", "paid search", "PAID SEARCH"]})
    )
    np.testing.assert_array_equal(kept_apart[:, 0], [0.0, 1.0, np.nan])
    with pytest.raises(ModelError, match="differ only in case or spacing"):
        FeatureEncoder([feature], two_levels, fold_spellings=True)

    old_meta["category_matching"] = "folded"
    old_meta["categories"]["source"].append("PAID SEARCH")
    with pytest.raises(ModelError, match="damaged: the levels 'Paid Search' and 'PAID SEARCH'"):
        LeadScoringModel.from_texts(json.dumps(old_meta), booster_text)
    old_meta["category_matching"] = "sloppy"
    with pytest.raises(ModelError, match="damaged: category_matching is 'sloppy'"):
        LeadScoringModel.from_texts(json.dumps(old_meta), booster_text)


def test_event_data_trains_one_level_per_spelling() -> None:
    from leadscore.features import build_event_examples
    from leadscore.schema import validate_closed_loop
    from leadscore.synth import SynthParams, generate_closed_loop

    config = parse_config({**CONFIG, "cold_start": {"min_wins": 20, "min_leads": 200}})
    synthetic = generate_closed_loop(SynthParams(n_leads=1500, seed=4))
    leads = synthetic.leads.copy()
    paid = leads.index[leads["source"].eq("paid_search")]
    leads.loc[paid[::4], "source"] = "Paid_Search"
    data = validate_closed_loop(
        leads, synthetic.activities, synthetic.outcomes, observed_until=synthetic.observed_until
    )
    dataset = build_event_examples(data, config.events, name="synthetic")
    assert {"paid_search", "Paid_Search"} <= set(dataset.X["source"].dropna())
    model = train(dataset, config).model
    levels = model.encoder.categories["source"]
    assert "paid_search" in levels and "Paid_Search" not in levels
    rows = dataset.X.head(200)
    np.testing.assert_array_equal(
        model.predict_proba(rows.assign(source="Paid_Search")),
        model.predict_proba(rows.assign(source="paid_search")),
    )
