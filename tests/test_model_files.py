"""A model folder read from elsewhere: every inconsistency between its two files, or within
``model.json``, is one ModelError at load time naming the file, never a silently wrong score or
a traceback at scoring; and a save over an older model leaves either of the two, never a mix.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

import leadscore.model as model_module
from leadscore.config import parse_config
from leadscore.errors import DataError, ModelError
from leadscore.model import BOOSTER_FILE, META_FILE, LeadScoringModel
from leadscore.schema import Feature, LabelledDataset
from leadscore.training import TrainingResult, train

FIX = "Retrain the model or restore its model.json as it was saved."


def _leads(names: tuple[str, ...], n: int = 1200, seed: int = 0) -> LabelledDataset:
    """Leads whose chance rises with visits, pricing views and a referral; ``names`` are the
    features' names: visits, pricing views, source (categorical), seniority (categorical)."""
    rng = np.random.default_rng(seed)
    visits = rng.poisson(3, n).astype(float)
    pricing = rng.poisson(0.8, n).astype(float)
    source = rng.choice(["referral", "organic", "paid"], n)
    seniority = rng.choice(["vp", "manager", "staff"], n)
    logit = -2.5 + 0.3 * visits + 0.8 * pricing + np.where(source == "referral", 1.0, 0.0)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    visits[rng.random(n) < 0.1] = np.nan
    X = pd.DataFrame(
        {
            names[0]: visits,
            names[1]: pricing,
            names[2]: pd.Categorical(source),
            names[3]: pd.Categorical(seniority),
        }
    )
    features = (
        Feature(names[0], "engagement", "Website visits", "numeric"),
        Feature(names[1], "engagement", "Pricing page views", "numeric"),
        Feature(names[2], "fit", "Lead source", "categorical"),
        Feature(names[3], "fit", "Seniority", "categorical"),
    )
    return LabelledDataset(
        name="files",
        X=X,
        y=y,
        lead_id=pd.Series([f"L{i:05d}" for i in range(n)]),
        order=pd.Series(pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n), unit="h")),
        features=features,
    )


def _train(dataset: LabelledDataset) -> TrainingResult:
    config = parse_config(
        {
            "cold_start": {"min_wins": 0, "min_leads": 0},
            "quality_gate": {"allow_worse": True},
            "lightgbm": {"num_boost_round": 60},
        }
    )
    return train(dataset, config, params={"num_threads": 1})


@pytest.fixture(scope="module")
def trained() -> tuple[LeadScoringModel, pd.DataFrame]:
    dataset = _leads(("visits", "pricing_views", "source", "seniority"))
    return _train(dataset).model, dataset.X


def _edited(folder: Path, edit: Callable[[dict[str, Any]], object]) -> None:
    meta = json.loads((folder / META_FILE).read_text())
    edit(meta)
    (folder / META_FILE).write_text(json.dumps(meta))


def _load_fails(folder: Path, message: str) -> str:
    with pytest.raises(ModelError, match=message) as err:
        LeadScoringModel.load(folder)
    text = str(err.value)
    assert str(folder / META_FILE) in text and "\n" not in text
    return text


# --------------------------------------------------------------------------- 1. feature names


def _swap_first_two(meta: dict[str, Any]) -> None:
    first, second = meta["features"][0], meta["features"][1]
    first["name"], second["name"] = second["name"], first["name"]


@pytest.mark.parametrize("sub_scorer", [True, False])
def test_features_listed_in_another_order_than_the_booster_s_fail_at_load(
    trained, tmp_path, sub_scorer
) -> None:
    """Two numeric features swapped in model.json loaded and scored every lead on the wrong
    columns; the sub-scorer's columns must not be what catches it."""
    model, _ = trained
    folder = model.save(tmp_path / "m")

    def edit(meta: dict[str, Any]) -> None:
        _swap_first_two(meta)
        if not sub_scorer:
            meta["sub_scorer"] = None

    _edited(folder, edit)
    text = _load_fails(
        folder, r"booster's feature 1 is 'visits' but the model's is 'pricing_views'"
    )
    assert str(folder / BOOSTER_FILE) in text and "do not belong together" in text


def test_a_booster_with_other_feature_names_fails_at_load(trained, tmp_path) -> None:
    """A booster whose feature_names line was changed (or that comes from another training
    with as many features) matches the checksum once it is updated, and loaded."""
    model, _ = trained
    folder = model.save(tmp_path / "m")
    booster = folder / BOOSTER_FILE
    text = booster.read_text().replace("feature_names=visits", "feature_names=clicks", 1)
    booster.write_text(text)
    _edited(
        folder, lambda meta: meta.update(booster_sha256=hashlib.sha256(text.encode()).hexdigest())
    )
    _load_fails(folder, r"booster's feature 1 is 'clicks' but the model's is 'visits'")


def test_a_model_built_from_a_booster_of_other_columns_is_refused(trained) -> None:
    """The check is in the constructor, so every loader (folder, texts, pyfunc, Spark) has it."""
    model, _ = trained
    features = list(model.features)
    features[0], features[1] = features[1], features[0]
    encoder = type(model.encoder)(features, model.encoder.categories)
    with pytest.raises(ModelError, match="booster's feature 1 is 'visits'"):
        LeadScoringModel(model.booster, encoder, model.calibrator, model.stages)
    meta_text, booster_text = model.to_texts()
    meta = json.loads(meta_text)
    _swap_first_two(meta)
    with pytest.raises(ModelError, match="do not belong together"):
        LeadScoringModel.from_texts(json.dumps(meta), booster_text)


def test_features_whose_names_lightgbm_cannot_hold_still_load(tmp_path) -> None:
    """Training gives LightGBM cleaned names (``Lead Source`` is ``Lead_Source``): what the
    booster stores differs from the display names, and such models must keep loading."""
    names = ("Website visits (30d)", "pricing: views", "Lead Source", "Seniority / level")
    dataset = _leads(names, n=800)
    model = _train(dataset).model
    assert model.booster.feature_name() != list(names)
    back = LeadScoringModel.load(model.save(tmp_path / "m"))
    assert back.fingerprint == model.fingerprint
    np.testing.assert_array_equal(back.predict_proba(dataset.X), model.predict_proba(dataset.X))


# --------------------------------------------------------------------------- 2. categories


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda meta: meta["categories"].update(nonexistent=["a"]),
            r"damaged: category levels are given for 'nonexistent', which is no feature",
        ),
        (
            lambda meta: meta["categories"].update(visits=["1", "2"]),
            r"damaged: category levels are given for 'visits', which is a numeric feature",
        ),
        (
            lambda meta: meta["categories"].update(source=meta["categories"]["source"] * 2),
            r"damaged: the level '\w+' of 'source' is given twice",
        ),
        (
            lambda meta: meta["categories"].update(source=["organic", 3]),
            r"damaged: the levels of 'source' are not a list of texts",
        ),
    ],
)
def test_categories_that_do_not_fit_the_features_fail_at_load(
    trained, tmp_path, edit, message
) -> None:
    """Each of these loaded and then failed at scoring with a KeyError, an AttributeError or
    pandas' ValueError about categories."""
    model, _ = trained
    folder = model.save(tmp_path / "m")
    _edited(folder, edit)
    assert _load_fails(folder, message).endswith(FIX)


# --------------------------------------------------------------------------- 3. sub-scorer


def _reverse(meta: dict[str, Any], group: str) -> None:
    meta["sub_scorer"]["quantiles_"][group].reverse()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda meta: _reverse(meta, "engagement"),
            r"the engagement quantiles are not in increasing",
        ),
        (
            lambda meta: meta["sub_scorer"]["quantiles_"].update(fit=[]),
            r"the fit group holds 0 quantiles, not 101",
        ),
        (
            lambda meta: meta["sub_scorer"]["quantiles_"]["fit"].__setitem__(3, None),
            r"the fit quantiles are not a list of numbers",
        ),
        (
            lambda meta: meta["sub_scorer"]["quantiles_"]["fit"].__setitem__(-1, 1e400),
            r"the fit quantiles hold a value that is not finite",
        ),
        (
            lambda meta: meta["sub_scorer"].update(n_quantiles=10**12),
            r"the fit group holds 101 quantiles, not 1000000000000",
        ),
        (
            lambda meta: meta["sub_scorer"].update(columns_=["nope"]),
            r"it has 1 columns where the model has 4 features",
        ),
        (
            lambda meta: meta["sub_scorer"]["columns_"].reverse(),
            r"its column 1 is 'seniority' where the model's is 'visits'",
        ),
        (
            lambda meta: meta["sub_scorer"]["groups_"]["fit"].append("elsewhere"),
            r"the fit group holds 'elsewhere', which is no column",
        ),
        (
            lambda meta: meta["sub_scorer"]["groups_"].update(fit=[]),
            r"the fit group holds 101 quantiles, not 0 \(it has no columns\)",
        ),
        (
            lambda meta: meta["sub_scorer"]["groups_"].pop("fit"),
            r"groups_ does not hold exactly the groups fit, engagement",
        ),
        (
            lambda meta: meta["sub_scorer"].update(groups_="x"),
            r"groups_ does not hold exactly the groups",
        ),
        (
            lambda meta: meta["sub_scorer"].update(not_counted_when_missing_=["source"]),
            r"not_counted_when_missing_ holds 'source', which is no engagement column",
        ),
        (
            lambda meta: meta["sub_scorer"]["groups_"]["fit"].append("visits"),
            r"'visits' is in more than one group",
        ),
        (
            lambda meta: meta["sub_scorer"]["quantiles_"]["fit"].__setitem__(-1, 10**400),
            r"the fit quantiles hold a value that is not finite",
        ),
        (
            lambda meta: meta["sub_scorer"].update(n_quantiles="101"),
            r"n_quantiles '101' is not a whole number of at least 2",
        ),
    ],
)
def test_a_sub_scorer_no_fit_makes_fails_at_load(trained, tmp_path, edit, message) -> None:
    """Reversed or empty quantiles and columns the model does not have loaded and gave every
    lead a wrong or empty fit or engagement score without a word."""
    model, _ = trained
    folder = model.save(tmp_path / "m")
    _edited(folder, edit)
    text = _load_fails(folder, r"sub-scorer in the model file is damaged: " + message)
    assert text.endswith(FIX)


def test_a_sub_scorer_saved_before_not_counted_when_missing_still_loads(trained, tmp_path):
    model, X = trained
    folder = model.save(tmp_path / "m")
    _edited(folder, lambda meta: meta["sub_scorer"].pop("not_counted_when_missing_"))
    back = LeadScoringModel.load(folder)
    assert back.sub_scorer is not None and back.sub_scorer.not_counted_when_missing_ == []
    pd.testing.assert_frame_equal(back.explain_batch(X.head(50)), model.explain_batch(X.head(50)))
    _edited(folder, lambda meta: meta["sub_scorer"].update(not_counted_when_missing_=["visits"]))
    assert LeadScoringModel.load(folder).sub_scorer.not_counted_when_missing_ == ["visits"]


# --------------------------------------------------------------------------- 5. unreadable JSON


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"format": "leadscore-model", "metadata": ' + "[" * 100_000 + "]" * 100_000 + "}",
         r"damaged: it nests values too deep to read"),
        ('{"format": "leadscore-model", "format_version": ' + "9" * 5000 + "}",
         r"damaged: it holds a value JSON cannot read"),
    ],
)  # fmt: skip
def test_json_too_deep_or_too_long_to_read_is_a_damaged_file(trained, tmp_path, text, message):
    model, _ = trained
    folder = model.save(tmp_path / "m")
    (folder / META_FILE).write_text(text)
    assert _load_fails(folder, message).endswith(FIX)
    with pytest.raises(ModelError, match=message):
        LeadScoringModel.from_texts(text, (folder / BOOSTER_FILE).read_text())


def test_a_model_json_that_is_not_utf8_is_a_model_error(trained, tmp_path) -> None:
    model, _ = trained
    folder = model.save(tmp_path / "m")
    (folder / META_FILE).write_bytes((folder / META_FILE).read_text().encode("utf-16"))
    with pytest.raises(ModelError, match="holds a file that is not text"):
        LeadScoringModel.load(folder)


# --------------------------------------------------------------------------- booster_file


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "/etc/passwd", "booster-abc.txt", "other.txt", 5, None]
)
def test_booster_file_is_a_bare_name_of_the_folder_s_own(trained, tmp_path, name) -> None:
    model, _ = trained
    folder = model.save(tmp_path / "m")
    _edited(folder, lambda meta: meta.update(booster_file=name))
    _load_fails(folder, r"damaged: booster_file .* is not booster.txt or booster-<sha256>.txt")


def test_a_folder_saved_before_booster_file_was_read_still_loads(trained, tmp_path) -> None:
    """Older folders hold ``booster.txt`` and a model.json naming it (or naming nothing)."""
    model, X = trained
    folder = model.save(tmp_path / "m")
    _edited(folder, lambda meta: meta.pop("booster_file"))
    np.testing.assert_array_equal(
        LeadScoringModel.load(folder).predict_proba(X), model.predict_proba(X)
    )


# --------------------------------------------------------------------------- 6. all or nothing


def _other_model(model: LeadScoringModel) -> LeadScoringModel:
    """The same model with a booster of fewer trees: another booster file, same columns."""
    booster = lgb.Booster(model_str=model.booster.model_to_string(num_iteration=5))
    other = LeadScoringModel(
        booster,
        model.encoder,
        model.calibrator,
        model.stages,
        model.metadata,
        model.sub_scorer,
        model.drift_reference,
    )
    assert other.fingerprint != model.fingerprint
    return other


def _loaded_fingerprint(folder: Path) -> str:
    return LeadScoringModel.load(folder).fingerprint


def test_a_save_that_fails_writing_model_json_leaves_the_older_model(
    trained, tmp_path, monkeypatch
) -> None:
    """A full disk while ``model.json`` was written left the new booster beside the old
    model.json: the folder no longer loaded (checksum) or, where the checksum matched
    another file, not as either model."""
    old, _ = trained
    new = _other_model(old)
    folder = old.save(tmp_path / "m")
    (folder / "notes.md").write_text("kept")
    real = model_module.write_text_atomically

    def full_disk(target: Path, text: str) -> Path:
        if target.name == META_FILE:
            raise DataError(f"cannot write {target}: No space left on device", "Free space.")
        return real(target, text)

    monkeypatch.setattr(model_module, "write_text_atomically", full_disk)
    with pytest.raises(DataError, match="No space left"):
        new.save(folder)
    assert _loaded_fingerprint(folder) == old.fingerprint
    assert sorted(p.name for p in folder.iterdir()) == [BOOSTER_FILE, META_FILE, "notes.md"]
    monkeypatch.setattr(model_module, "write_text_atomically", real)
    new.save(folder)
    assert _loaded_fingerprint(folder) == new.fingerprint
    assert sorted(p.name for p in folder.iterdir()) == [BOOSTER_FILE, META_FILE, "notes.md"]


def test_a_save_that_cannot_write_model_json_writes_no_booster_either(trained, tmp_path):
    """``model.json`` in the way (here a folder of that name): the save fails before the folder
    holds any of its files, where it had left a new booster.txt."""
    model, _ = trained
    folder = tmp_path / "m"
    (folder / META_FILE).mkdir(parents=True)
    with pytest.raises(DataError, match=r"cannot write .*model\.json"):
        model.save(folder)
    assert [p.name for p in folder.iterdir()] == [META_FILE]


def test_a_save_killed_at_any_step_leaves_the_older_model_or_the_new_one(
    trained, tmp_path, monkeypatch
) -> None:
    """The folder as a kill would leave it after each file a save puts in place (a copy taken
    after each write, with no clean-up run) loads as the older model until model.json switches
    to the new one, and as the new one from then on; never as neither or a mix."""
    old, _ = trained
    new = _other_model(old)
    folder = old.save(tmp_path / "m")
    real = model_module.write_text_atomically
    states: list[Path] = []

    def snapshot(target: Path, text: str) -> Path:
        written = real(target, text)
        states.append(tmp_path / f"killed_after_{len(states)}")
        shutil.copytree(folder, states[-1])
        return written

    monkeypatch.setattr(model_module, "write_text_atomically", snapshot)
    new.save(folder)
    loaded = [_loaded_fingerprint(state) for state in states]
    assert len(loaded) >= 3
    switch = loaded.index(new.fingerprint)
    assert loaded[:switch] == [old.fingerprint] * switch and switch >= 1
    assert loaded[switch:] == [new.fingerprint] * (len(loaded) - switch)
    assert sorted(p.name for p in folder.iterdir()) == [BOOSTER_FILE, META_FILE]
    assert LeadScoringModel.load(states[switch]).fingerprint == new.fingerprint


def test_a_save_over_a_folder_a_killed_save_left_cleans_it(trained, tmp_path) -> None:
    """A save killed after its switch leaves model.json naming the staged booster; the folder
    loads as that model, and the next save leaves the two usual files."""
    old, _ = trained
    new = _other_model(old)
    folder = tmp_path / "m"
    folder.mkdir()
    meta_text, booster_text = new.to_texts()
    staged = f"booster-{hashlib.sha256(booster_text.encode()).hexdigest()}.txt"
    (folder / staged).write_text(booster_text)
    meta = json.loads(meta_text)
    meta["booster_file"] = staged
    (folder / META_FILE).write_text(json.dumps(meta))
    (folder / BOOSTER_FILE).write_text(old.to_texts()[1])
    assert _loaded_fingerprint(folder) == new.fingerprint
    old.save(folder)
    assert sorted(p.name for p in folder.iterdir()) == [BOOSTER_FILE, META_FILE]
    assert _loaded_fingerprint(folder) == old.fingerprint
    assert (folder / META_FILE).read_text() == old.to_texts()[0]


def test_a_first_save_killed_after_its_switch_scores_from_the_cli_s_loader(
    trained, tmp_path, monkeypatch
) -> None:
    """A first save into a new folder, killed after model.json switched to the staged booster
    and before booster.txt was written, loads with LeadScoringModel.load; `score --model DIR`
    (tracking.load_model) had refused it as "no leadscore model" for lack of booster.txt."""
    from leadscore.tracking import load_model

    model, _ = trained
    folder = tmp_path / "first"
    real = model_module.write_text_atomically
    written: list[str] = []

    def killed_after_the_switch(target: Path, text: str) -> Path:
        if len(written) == 2:  # the staged booster and the switching model.json are in
            raise KeyboardInterrupt
        written.append(target.name)
        return real(target, text)

    monkeypatch.setattr(model_module, "write_text_atomically", killed_after_the_switch)
    with pytest.raises(KeyboardInterrupt):
        model.save(folder)
    monkeypatch.undo()
    assert not (folder / BOOSTER_FILE).exists() and (folder / META_FILE).is_file()
    assert load_model(str(folder)).fingerprint == model.fingerprint


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("dataset", {"a": 1}, r"metadata\.dataset is \{'a': 1\}, not a text"),
        ("dataset", "", r"metadata\.dataset is '', not a text"),
        ("horizon_days", "ninety", r"metadata\.horizon_days is 'ninety', not a whole number"),
        ("horizon_days", True, r"metadata\.horizon_days is True, not a whole number"),
        ("data_form", "wide", r"metadata\.data_form is 'wide', not events or flat"),
        ("warnings", [1], r"metadata\.warnings is \[1\], not a list of texts"),
        ("metrics", [], r"metadata\.metrics is \[\], not a mapping"),
    ],
)
def test_metadata_of_the_wrong_type_fails_at_load(trained, tmp_path, key, value, message):
    """A hand-edited data set of {"a": 1} was recorded as the model name "{'a': 1}" on every
    scored row, and "ninety" read as a horizon; absent fields (older models) still load."""
    model, _ = trained
    folder = model.save(tmp_path / "m")
    _edited(folder, lambda meta: meta["metadata"].update({key: value}))
    _load_fails(folder, message)
    _edited(folder, lambda meta: meta["metadata"].pop(key))
    assert LeadScoringModel.load(folder).fingerprint == model.fingerprint


def _crafted(text: str, pattern: str, replacement: str) -> str:
    import re

    changed = re.sub(pattern, replacement, text, count=1)
    assert changed != text
    return changed


@pytest.mark.parametrize(
    ("craft", "problem"),
    [
        (lambda t: _crafted(t, r"split_feature=\d+", "split_feature=999"), "splits on a feature"),
        (lambda t: _crafted(t, r"num_leaves=\d+", "num_leaves=100000000"), "has num_leaves"),
        (lambda t: _crafted(t, r"left_child=-?\d+", "left_child=50"), "left_child outside"),
        (lambda t: _crafted(t, r"leaf_value=[^\n]*", "leaf_value=0.1"), "leaf values for"),
        (lambda t: _crafted(t, r"max_feature_idx=\d+", "max_feature_idx=2"), "names 4 features"),
        (lambda t: t[: len(t) // 2], "cut short"),
        (lambda t: t.replace("tree\n", "", 1), "does not start as"),
    ],
)  # fmt: skip
def test_a_booster_text_crafted_to_crash_lightgbm_is_refused_before_it_reads_it(
    trained, tmp_path, craft, problem
) -> None:
    """Each of these, with its checksum recomputed in model.json, aborted the whole process
    inside LightGBM's C++ parser ("terminate called without an active exception"); they are
    one line now, before LightGBM sees the text."""
    model, _ = trained
    meta_text, booster_text = model.to_texts()
    crafted = craft(booster_text)
    meta = json.loads(meta_text)
    meta["booster_sha256"] = hashlib.sha256(crafted.encode()).hexdigest()
    with pytest.raises(
        ModelError, match=f"not a LightGBM model text that can be read safely: .*{problem}"
    ):
        LeadScoringModel.from_texts(json.dumps(meta), crafted)
    assert model_module.booster_text_problem(booster_text) is None
