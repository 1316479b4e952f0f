"""MLflow tracking: real runs in a SQLite store under tmp_path, real models, no mocks.

One module-scoped registry holds three runs on the same data and test fold: a weak model
(first, so champion), a strong one (beats it, takes the alias) and the weak one again (loses,
the alias stays). The tests read that history back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from leadscore import pyfunc, tracking, training
from leadscore.config import parse_config
from leadscore.errors import ModelError, UsageError
from leadscore.model import LeadScoringModel
from leadscore.schema import Feature, LabelledDataset

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".cloudpickle", ".dill")


def make_dataset(n: int = 1000, seed: int = 0) -> LabelledDataset:
    """Leads over ten months whose chance of winning rises with visits, pricing views,
    referrals and software companies; some visits and industries are unknown."""
    rng = np.random.default_rng(seed)
    visits = rng.poisson(4, n).astype(float)
    pricing = rng.poisson(0.8, n).astype(float)
    source = rng.choice(["paid_search", "organic", "referral", "event"], n)
    industry = rng.choice(["software", "retail", "finance", None], n)
    logit = (
        -3.2
        + 0.25 * visits
        + 0.9 * pricing
        + np.where(source == "referral", 1.0, 0.0)
        + np.where(industry == "software", 0.6, 0.0)
    )
    y = rng.binomial(1, 1 / (1 + np.exp(-logit))).astype("int8")
    visits[rng.random(n) < 0.1] = np.nan
    X = pd.DataFrame(
        {
            "visits": visits,
            "pricing_views": pricing,
            "source": pd.Series(source, dtype="str").astype("category"),
            "industry": pd.Series(industry, dtype="str").astype("category"),
        }
    )
    features = (
        Feature("visits", "engagement", "Website visits", "numeric"),
        Feature("pricing_views", "engagement", "Pricing page views", "numeric"),
        Feature("source", "fit", "Lead source", "categorical"),
        Feature("industry", "fit", "Industry", "categorical"),
    )
    order = pd.Series(pd.date_range("2025-01-01", periods=n, freq="6h").astype("datetime64[us]"))
    return LabelledDataset(
        name="toy",
        X=X,
        y=y,
        lead_id=pd.Series([f"L{i:05d}" for i in range(n)]),
        order=order,
        features=features,
    )


@pytest.fixture(scope="module")
def dataset() -> LabelledDataset:
    """4,000 leads: a test fold of 800, on which the trained model beats the stump by more
    than the noise (the champion moves only on a gain whose interval lies above 0)."""
    return make_dataset(4000)


@pytest.fixture(scope="module")
def config():
    return parse_config(
        {
            "cold_start": {"min_wins": 0, "min_leads": 0},
            "quality_gate": {"allow_worse": True},
            "lightgbm": {"early_stopping_rounds": 20, "num_boost_round": 300},
        }
    )


# one LightGBM thread: the test machine's two cores are shared, and OpenMP threads that
# wait on each other make a tiny model slower to train, not faster
THREADS = {"num_threads": 1}


@pytest.fixture(scope="module")
def strong(dataset, config) -> training.TrainingResult:
    return training.train(dataset, config, params=THREADS)


@pytest.fixture(scope="module")
def weak(dataset, config) -> training.TrainingResult:
    """A one-split stump on the same folds: clearly worse on the same test fold."""
    return training.train(
        dataset,
        config.with_overrides({"lightgbm.num_boost_round": 1}),
        params={"num_leaves": 2, **THREADS},
    )


@pytest.fixture(scope="module")
def X_test(dataset, strong) -> pd.DataFrame:
    return dataset.X.iloc[strong.folds.test].reset_index(drop=True)


@pytest.fixture(scope="module")
def registry(tmp_path_factory, dataset, config, strong, weak, X_test):
    """Three runs (weak, strong, weak) in one SQLite store; what happened after each."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    data_hash = tracking.data_fingerprint(dataset.X)
    uri_before = mlflow.get_tracking_uri()
    runs, champions, printed = [], [], []
    for result in (weak, strong, weak):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runs.append(
                tracking.log_training_run(
                    result,
                    dataset_name="toy",
                    spec={"name": "toy", "id": "lead_id", "label": {"column": "won"}},
                    config=config,
                    data_hash=data_hash,
                    X_test=X_test,
                    tracking_uri=uri,
                    registered_model="leadscore",
                    figures_dir=root / "figures",
                )
            )
        printed.append(out.getvalue() + err.getvalue())
        champions.append(_champion(uri))
    return {
        "root": root,
        "uri": uri,
        "data_hash": data_hash,
        "client": MlflowClient(uri, uri),
        "runs": runs,
        "champions": champions,
        "printed": printed,
        "uri_before": uri_before,
        "uri_after": mlflow.get_tracking_uri(),
    }


def _champion(uri: str, name: str = "leadscore") -> str:
    """The champion's version, read through a client of its own (created after logging, so
    that its store set-up messages are not mistaken for the logging's)."""
    client = MlflowClient(uri, uri)
    return str(client.get_model_version_by_alias(name, "champion").version)


def _download(client: MlflowClient, version: str, dst: Path) -> Path:
    source = client.get_model_version_download_uri("leadscore", version)
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(dst)))


# --------------------------------------------------------------------------- champion


@pytest.mark.parametrize("given", ["defaults", "mapping", "config"])
def test_a_notebook_run_logs_and_registers_where_train_does(
    tmp_path, dataset, config, strong, given
):
    """Without tracking arguments, ``log_training_run`` follows the config's ``mlflow:``
    section as ``leadscore train`` does (its tracking URI, experiment and registry prefix,
    the config given as the YAML reads it or as a ``TrainConfig``), and by default registers
    under ``leadscore-<data set>``: the champion a notebook makes is the one ``score`` finds."""
    uri = f"sqlite:///{tmp_path / 'team.db'}"
    settings: Any = config
    passed: dict[str, str] = {"tracking_uri": uri}
    experiment, name = "leadscore", tracking.registered_name("leadscore", "toy")
    if given != "defaults":
        section = {"tracking_uri": uri, "experiment": "acme-scoring", "registered_model": "acme"}
        settings = config.model_dump(mode="json") | {"mlflow": section}
        settings = parse_config(settings) if given == "config" else settings
        passed, experiment, name = {}, "acme-scoring", "acme-toy"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        run_id = tracking.log_training_run(
            strong,
            dataset_name="toy",
            spec=None,
            config=settings,
            data_hash=tracking.data_fingerprint(dataset.X),
            **passed,
        )
    assert name == ("leadscore-toy" if given == "defaults" else "acme-toy")
    client = MlflowClient(uri, uri)
    run = client.get_run(run_id)
    assert client.get_experiment(run.info.experiment_id).name == experiment
    assert run.data.tags["registered_model"] == f"{name}/1"
    assert _champion(uri, name) == "1"


def test_champion_is_first_model_then_moves_only_for_a_better_one(registry, strong, weak, X_test):
    assert registry["champions"] == ["1", "2", "2"]
    client = registry["client"]
    tags = [client.get_run(r).data.tags for r in registry["runs"]]
    # the first champion's run no longer claims the alias once version 2 took it
    assert [t["champion"] for t in tags] == ["false", "true", "false"]
    assert tags[0]["champion_replaced_by"] == "leadscore/2"
    assert "champion_replaced_by" not in tags[1] and "champion_replaced_by" not in tags[2]
    assert [t["registered_model"] for t in tags] == ["leadscore/1", "leadscore/2", "leadscore/3"]
    # the comparison was made by scoring the same test fold with the champion of the time
    y = strong.y
    auc = tracking._roc_auc
    second = client.get_run(registry["runs"][1]).data.metrics
    third = client.get_run(registry["runs"][2]).data.metrics
    assert second["previous_champion_test_roc_auc"] == pytest.approx(
        auc(y, weak.model.predict_proba(X_test))
    )
    assert third["previous_champion_test_roc_auc"] == pytest.approx(
        auc(y, strong.model.predict_proba(X_test))
    )
    assert auc(y, strong.p_cal) > auc(y, weak.p_cal)


def test_a_retrain_that_only_drew_another_seed_keeps_the_champion(
    tmp_path, dataset, config, strong, X_test, caplog
):
    """The reviewer's case: the same data, another seed, a gain of a few thousandths in
    ROC-AUC whose paired interval holds 0. That is a tie, and the champion stays; the run
    records the interval."""
    uri, name = f"sqlite:///{tmp_path / 'seeds.db'}", "leadscore-seeds"
    reseeded = training.train(dataset, config.with_overrides({"seed": 7}), params=THREADS)
    _log_quietly(strong, uri, X_test, name)
    with caplog.at_level("INFO", logger="leadscore.tracking"):
        run_id = _log_quietly(reseeded, uri, X_test, name)
    run = MlflowClient(uri, uri).get_run(run_id).data
    low, high = run.metrics["champion_gain_low"], run.metrics["champion_gain_high"]
    assert low < 0 < high
    assert _champion(uri, name) == "1"
    assert run.tags["champion"] == "false"
    assert "stays champion" in caplog.text and "95% interval" in caplog.text


def test_promote_gives_the_alias_to_a_version_that_only_tied(tmp_path, strong, weak, X_test):
    """A user who fixed how the data is read retrains; the fix ties the old champion, which
    would stay, trained on misread data. ``mlflow.champion: always`` (``train --promote``)
    moves the alias without the comparison, and the run says so."""
    uri, name = f"sqlite:///{tmp_path / 'promote.db'}", "leadscore-promote"
    _log_quietly(strong, uri, X_test, name)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        run_id = tracking.log_training_run(
            weak,
            dataset_name="toy",
            spec=None,
            config={"mlflow": {"champion": "always"}},
            data_hash=tracking.data_fingerprint(X_test.iloc[:0]),
            X_test=X_test,
            tracking_uri=uri,
            registered_model=name,
        )
    assert _champion(uri, name) == "2"  # the weaker model, as asked
    tags = MlflowClient(uri, uri).get_run(run_id).data.tags
    assert tags["champion"] == "true" and "promoted as asked" in tags["champion_comparison"]


def test_train_promote_sets_the_champion_policy_and_tune_keeps_the_comparison():
    import argparse

    from leadscore.commands import train as train_command
    from leadscore.commands import tune as tune_command

    parser = argparse.ArgumentParser(prog="leadscore")
    commands = parser.add_subparsers(dest="command")
    train_command.register(commands)
    tune_command.register(commands)
    promoted = parser.parse_args(["train", "--spec", "x_education", "--promote"])
    assert train_command.config_from_args(promoted).mlflow.champion == "always"
    plain = parser.parse_args(["train", "--spec", "x_education"])
    assert train_command.config_from_args(plain).mlflow.champion == "if_better"
    tuned = parser.parse_args(["tune", "--spec", "x_education"])
    assert train_command.config_from_args(tuned).mlflow.champion == "if_better"


def test_champion_needing_columns_the_run_lacks_is_kept(registry, weak, X_test, caplog):
    """A new run that left a column out cannot score the champion fairly (blanks would
    handicap it): no comparison, and the champion keeps the alias."""
    y = weak.y
    lacking = X_test.drop(columns=["industry"])
    holdout = tracking.holdout_record(weak, data_hash=registry["data_hash"])
    with caplog.at_level("WARNING", logger="leadscore.tracking"):
        moved = tracking._maybe_promote(
            registry["client"], "leadscore", "3", weak.model, lacking, y, holdout=holdout
        )
    assert not moved.promoted and moved.champion_auc is None
    assert "needs 1 column(s) this run's test rows lack (industry)" in caplog.text
    assert "set_registered_model_alias('leadscore', 'champion', '3')" in caplog.text
    assert _champion(registry["uri"]) == "2"


def test_logging_prints_nothing_and_leaves_mlflow_settings_alone(registry):
    # the first run creates the SQLite store: alembic migrations, registry messages, ...
    assert registry["printed"] == ["", "", ""]
    assert registry["uri_after"] == registry["uri_before"]
    assert "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR" not in os.environ


def test_identical_folds_are_compared_on_the_whole_test_fold(registry, strong, weak, X_test):
    """Runs on the same data and folds share every test row: nothing is left out of the
    comparison, and the run says on how many rows it was made."""
    client, n = registry["client"], len(strong.y)
    runs = [client.get_run(r).data for r in registry["runs"]]
    assert runs[0].tags["champion_comparison"] == "first champion"
    for version, run in enumerate(runs[1:], start=1):
        expected = f"compared on all {n} test rows unseen by version {version}"
        assert run.tags["champion_comparison"] == expected
    assert runs[1].metrics["champion_comparison_rows"] == n
    assert runs[1].metrics["champion_comparison_leads"] == n  # flat data: a row is a lead
    assert runs[1].metrics["champion_comparison_test_roc_auc"] == pytest.approx(
        tracking._roc_auc(strong.y, strong.p_cal)
    )
    assert runs[2].metrics["champion_comparison_test_roc_auc"] == pytest.approx(
        tracking._roc_auc(weak.y, weak.p_cal)
    )


def test_run_records_the_rows_its_model_held_out(registry, strong):
    """holdout.json (plain JSON) holds the data hash, the fold kind, where the test fold
    starts and its rows; runs tested on the same rows share the test_rows_digest tag."""
    client, run_id = registry["client"], registry["runs"][1]
    local = client.download_artifacts(run_id, tracking.HOLDOUT_ARTIFACT, str(registry["root"]))
    logged = json.loads(Path(local).read_text())
    record = tracking.HoldoutRecord.from_json(logged)
    assert record.data_hash == registry["data_hash"]
    assert (record.fold_kind, record.order_by, record.horizon_days) == ("time", None, None)
    assert record.test_from == strong.folds.boundaries["test"]
    np.testing.assert_array_equal(record.test_rows, np.sort(strong.folds.test))
    assert logged["n_test"] == len(strong.y)
    digests = {client.get_run(r).data.tags["test_rows_digest"] for r in registry["runs"]}
    assert digests == {record.digest()}


@pytest.fixture(scope="module")
def overfit(dataset, config) -> training.TrainingResult:
    """A model that held out only the newest 10 % and fitted the rows just before them with
    deep trees: on the default (20 %) test fold it is scored on rows it fitted."""
    small_folds = config.with_overrides(
        {"folds.test_size": 0.1, "folds.calibration_size": 0.05, "folds.valid_size": 0.05}
    )
    params = {"num_leaves": 64, "min_data_in_leaf": 2, "lambda_l2": 0.0, **THREADS}
    return training.train(dataset, small_folds, params=params)


def _log_quietly(result, uri: str, X_test: pd.DataFrame, registered_model: str) -> str:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return tracking.log_training_run(
            result,
            dataset_name="toy",
            spec=None,
            config={},
            data_hash=tracking.data_fingerprint(X_test.iloc[:0]),  # the same for both runs
            X_test=X_test,
            tracking_uri=uri,
            registered_model=registered_model,
        )


def test_a_champion_out_of_reach_stays_and_a_damaged_one_is_replaced(
    tmp_path, strong, weak, X_test, caplog
):
    """A champion whose files cannot be fetched (an unmounted share, an expired token) may
    be fine where it is: it keeps the alias, with a warning, where it had been replaced by
    any new version unseen. One that is fetched but cannot be loaded cannot serve, and is
    replaced."""
    import shutil

    uri, name = f"sqlite:///{tmp_path / 'reach.db'}", "leadscore-reach"
    _log_quietly(weak, uri, X_test, name)
    client = MlflowClient(uri, uri)
    files = Path(client.get_model_version_download_uri(name, "1").removeprefix("file://"))
    booster = next(files.rglob("booster.txt")).relative_to(files)
    hidden = files.with_name("moved-away")
    files.rename(hidden)
    with caplog.at_level("WARNING", logger="leadscore.tracking"):
        run_id = _log_quietly(strong, uri, X_test, name)
    assert _champion(uri, name) == "1"  # kept: nothing is known about it
    tags = client.get_run(run_id).data.tags
    assert tags["champion"] == "false" and "cannot be fetched" in tags["champion_comparison"]
    assert "is not compared with champion version 1: its files cannot be fetched" in caplog.text
    assert "Check the URI" not in caplog.text  # score's fix, which says nothing here

    shutil.copytree(hidden, files)  # back, but with a damaged booster
    (files / booster).write_text("not a booster\n")
    run_id = _log_quietly(strong, uri, X_test, name)
    assert _champion(uri, name) == "3"
    assert "which cannot score" in client.get_run(run_id).data.tags["champion_comparison"]


def test_champion_with_a_small_test_fold_is_judged_only_on_rows_it_never_saw(
    registry, dataset, overfit, strong, X_test, caplog
):
    """The reviewer's case: the champion's test fold is the newest 10 %, the challenger's the
    newest 20 %. On the challenger's whole test fold the champion wins, helped by the rows it
    fitted; on the rows neither saw it loses: the comparison is made there, and the alias
    follows the paired interval of the gain on those rows (the gain is small: a tie keeps
    the champion)."""
    uri, name, auc = registry["uri"], "leadscore-small-fold", tracking._roc_auc
    y, unseen = strong.y, np.isin(strong.folds.test, overfit.folds.test)
    champion_p, challenger_p = overfit.model.predict_proba(X_test), strong.p_cal
    # what the old comparison saw: the champion ahead on a fold that holds its training rows
    assert auc(y, champion_p) > auc(y, challenger_p)
    assert auc(y[unseen], champion_p[unseen]) < auc(y[unseen], challenger_p[unseen])

    _log_quietly(overfit, uri, dataset.X.iloc[overfit.folds.test], name)
    with caplog.at_level("INFO", logger="leadscore.tracking"):
        run_id = _log_quietly(strong, uri, X_test, name)
    run = registry["client"].get_run(run_id).data
    low, high = run.metrics["champion_gain_low"], run.metrics["champion_gain_high"]
    gain = auc(y[unseen], challenger_p[unseen]) - auc(y[unseen], champion_p[unseen])
    assert low < gain < high
    assert _champion(uri, name) == ("2" if low > 0 else "1")
    n, total = len(overfit.y), len(y)
    assert unseen.sum() == n == run.metrics["champion_comparison_rows"]
    assert run.metrics["previous_champion_test_roc_auc"] == pytest.approx(
        auc(y[unseen], champion_p[unseen])
    )
    assert run.tags["champion_comparison"] == (
        f"compared on {n} of this run's {total} test rows unseen by version 1"
    )
    assert f"on {n} of this run's {total} test rows, which neither model" in caplog.text


def test_champion_logged_without_a_record_keeps_the_alias_with_a_warning(
    registry, strong, X_test, caplog
):
    """A champion from before the record (its run holds no holdout.json) may have trained on
    any of these rows: no comparison, even against a better model, and the warning says how
    to move the alias by hand."""
    client, name = registry["client"], "leadscore-legacy"
    weak_model = client.get_model_version_download_uri("leadscore", "1")  # run 1's model
    old_run = client.create_run(client.get_run(registry["runs"][0]).info.experiment_id)
    client.create_registered_model(name)
    client.create_model_version(name, weak_model, run_id=old_run.info.run_id)
    client.set_registered_model_alias(name, "champion", "1")
    holdout = tracking.holdout_record(strong, data_hash=registry["data_hash"])
    with caplog.at_level("WARNING", logger="leadscore.tracking"):
        promotion = tracking._maybe_promote(
            client, name, "2", strong.model, X_test, strong.y, holdout=holdout
        )
    assert not promotion.promoted and promotion.champion_auc is None
    assert _champion(registry["uri"], name) == "1"
    assert promotion.note.startswith(
        "not compared: version 1 was logged without a record of the rows it was trained on"
    )
    assert "The champion stays" in caplog.text
    assert "set_registered_model_alias('leadscore-legacy', 'champion', '2')" in caplog.text


def _record(
    data_hash: str = "data",
    rows: range = range(800, 1000),
    kind: str = "time",
    test_from: str | None = "2025-06-01",
    horizon_days: int | None = None,
) -> tracking.HoldoutRecord:
    return tracking.HoldoutRecord(
        data_hash, kind, None, test_from, horizon_days, np.asarray(rows, dtype="int64")
    )


def test_same_data_compares_on_the_rows_of_both_test_folds():
    new = _record(rows=range(800, 1000))
    mask = tracking._unseen_by_champion(new, _record(rows=range(950, 1000)), "1")
    np.testing.assert_array_equal(np.flatnonzero(mask), np.arange(150, 200))
    # random folds of the same data: whatever rows both held out, in the new fold's order
    new = _record(rows=[7, 3, 9, 1], kind="random", test_from=None)
    mask = tracking._unseen_by_champion(new, _record(rows=[1, 9, 4], kind="random"), "1")
    assert mask.tolist() == [False, False, True, True]


def _time(data_hash: str, test_from: str = "2025-06-01", horizon: int | None = None) -> dict:
    return {"data_hash": data_hash, "test_from": test_from, "horizon_days": horizon}


def _seq(data_hash: str, test_from: str | None, kind: str = "sequence") -> dict:
    return {"data_hash": data_hash, "kind": kind, "test_from": test_from}


@pytest.mark.parametrize(
    ("new", "champion", "declined"),
    [
        # newer extract, test fold after the champion's whole history: every row
        (_time("b", "2025-06-01"), _time("a", "2025-05-01"), None),
        (_time("b", "2025-05-01"), _time("a", "2025-05-01"), None),
        # starts before the champion's test fold: its older rows may be champion history
        (_time("b", "2025-04-01"), _time("a"), "starts at 2025-04-01, before version 1's"),
        # as-of examples: labels of the champion's history reach 60 days past its test_from
        (_time("b", "2025-07-31"), _time("a", horizon=60), None),
        (_time("b", "2025-07-01"), _time("a", horizon=60), "may share a win with rows"),
        # sequences written as integers are exact; 6-digit texts prove only when larger
        (_seq("b", "641"), _seq("a", "641"), None),
        (_seq("b", "6.41e+08"), _seq("a", "6.41e+08"), "before version 1's test fold"),
        (_seq("b", "6.42e+08"), _seq("a", "6.41e+08"), None),
        (_seq("b", None, "random"), _seq("a", None, "random"), "the folds are random"),
        (_seq("b", "9"), _time("a"), "ordered differently"),
        (_time("b"), None, "without a record of the rows it was trained on"),
        (None, _time("a"), "this run's test rows are not known"),
    ],
)
def test_other_data_compares_only_rows_newer_than_the_champion_s_history(new, champion, declined):
    """With another data hash rows cannot be matched: only time-ordered folds whose test
    fold starts after the champion's history (and its label windows) are compared."""
    new, champion = (None if kw is None else _record(**kw) for kw in (new, champion))
    if declined is None:
        assert tracking._unseen_by_champion(new, champion, "1").all()
        return
    with pytest.raises(tracking._Declined, match=re.escape(declined)):
        tracking._unseen_by_champion(new, champion, "1")


@pytest.mark.parametrize(
    ("wins", "losses", "declined"),
    [(40, 60, False), (10, 90, False), (30, 60, True), (9, 200, True), (0, 300, True)],
)
def test_too_few_unseen_rows_or_a_single_outcome_is_not_compared(wins, losses, declined):
    """Flat data, one row per lead: the minimums are 100 leads, 10 won and 10 not, with or
    without the lead ids."""
    y = np.array([1] * wins + [0] * losses)
    ids = np.array([f"L{i}" for i in range(len(y))], dtype=object)
    for leads in (None, ids):
        if not declined:
            tracking._check_enough_leads(y, 500, leads)
            continue
        with pytest.raises(
            tracking._Declined, match=f"only {wins + losses} of this run's 500 test leads are"
        ):
            tracking._check_enough_leads(y, 500, leads)


def _event_rows(won_leads: int, other_leads: int, rows_per_lead: int) -> tuple[np.ndarray, ...]:
    """Labels and lead ids of leads seen at ``rows_per_lead`` as-of dates each, as event data
    holds them: a won lead's last two rows are won (their label windows hold the win), the
    earlier ones not."""
    y, ids = [], []
    for i in range(won_leads + other_leads):
        ids += [f"L{i}"] * rows_per_lead
        y += [0] * (rows_per_lead - 2) + [int(i < won_leads)] * 2
    return np.array(y), np.array(ids, dtype=object)


@pytest.mark.parametrize(
    ("won_leads", "other_leads", "rows_per_lead", "declined"),
    [
        (15, 25, 3, "only 40 of this run's 500 test leads (120 rows)"),  # 120 rows, 40 leads
        (8, 92, 4, "(8 won, 92 did not)"),  # 100 leads, 16 won rows, only 8 won leads
        (20, 80, 3, None),  # 100 leads, 20 won: enough
    ],
)
def test_event_data_minimums_count_leads_not_their_rows(
    won_leads, other_leads, rows_per_lead, declined
):
    """Event data holds a lead once per as-of date: 120 rows of 40 leads, 15 of them won,
    passed the row minimums (100 rows, 10 won) but are 40 leads' worth of evidence."""
    y, ids = _event_rows(won_leads, other_leads, rows_per_lead)
    tracking._check_enough_leads(y, 500)  # counted as rows, every case passed
    if declined is None:
        tracking._check_enough_leads(y, 500, ids)
        return
    with pytest.raises(tracking._Declined, match=re.escape(declined)):
        tracking._check_enough_leads(y, 500, ids)


def test_a_champion_is_compared_on_event_data_only_with_enough_distinct_leads(
    registry, strong, weak, X_test, caplog
):
    """The run's test fold as event data: its 800 rows are 89 leads seen nine times (too
    few: no comparison, the message counts leads), then 400 leads seen twice (compared; the
    run records rows and leads). Flat data, one row per lead, is compared as before."""
    uri, name, n = registry["uri"], "leadscore-events", len(strong.y)

    def as_events(result, rows_per_lead: int) -> training.TrainingResult:
        ids = np.array([f"lead{i // rows_per_lead}" for i in range(n)], dtype=object)
        return dataclasses.replace(result, lead_id=ids)

    _log_quietly(weak, uri, X_test, name)
    with caplog.at_level("WARNING", logger="leadscore.tracking"):
        declined = _log_quietly(as_events(strong, 9), uri, X_test, name)
    assert _champion(uri, name) == "1"
    tags = registry["client"].get_run(declined).data.tags
    leads = -(-n // 9)
    assert tags["champion"] == "false"
    assert tags["champion_comparison"].startswith(
        f"not compared: only {leads} of this run's {leads} test leads ({n} rows) are unseen "
        "by both models"
    )
    assert "a fair comparison needs at least 100 leads" in caplog.text
    compared = _log_quietly(as_events(strong, 2), uri, X_test, name)
    assert _champion(uri, name) == "3"
    run = registry["client"].get_run(compared).data
    assert run.tags["champion_comparison"] == (
        f"compared on all {n} test rows ({n // 2} leads) unseen by version 1"
    )
    assert run.metrics["champion_comparison_rows"] == n
    assert run.metrics["champion_comparison_leads"] == n // 2


def test_holdout_record_round_trips_through_json():
    rng = np.random.default_rng(0)
    for rows in (rng.choice(1_000_000, 200_000, replace=False), np.array([0]), np.array([], int)):
        record = _record(rows=rows, horizon_days=90)
        text = json.dumps(record.to_json())
        back = tracking.HoldoutRecord.from_json(json.loads(text))
        np.testing.assert_array_equal(back.test_rows, np.sort(rows))
        assert (back.data_hash, back.fold_kind, back.test_from, back.horizon_days) == (
            "data", "time", "2025-06-01", 90
        )  # fmt: skip
        assert back.digest() == record.digest()
        assert len(text) < 200_000  # a bitmap: 200,000 positions as numbers take 1.4 MB
    with pytest.raises(ValueError, match="format"):
        tracking.HoldoutRecord.from_json({"format": 2})


# --------------------------------------------------------------------------- the logged model


def test_pyfunc_loads_and_scores_like_the_in_memory_model(registry, strong, X_test, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry["uri"])
    logged = mlflow.pyfunc.load_model("models:/leadscore@champion")
    out = logged.predict(tracking.pyfunc_input(strong.model, X_test))
    assert list(out.columns) == list(pyfunc.OUTPUT_COLUMNS)
    np.testing.assert_allclose(out["probability"], strong.model.predict_proba(X_test), atol=1e-12)
    np.testing.assert_allclose(out["probability"], strong.p_cal, atol=1e-12)
    assert out["stage"].tolist() == list(strong.model.predict_stage(X_test))
    assert out["score"].between(0, 100).all()
    # the batch scorer's score: the rounded percent, kept within the stage
    assert (out["score"] == strong.model.stages.scores(out["probability"].to_numpy())).all()
    assert ((out["score"] - np.rint(100 * out["probability"])).abs() <= 1).all()


def test_git_dirty_sees_changed_and_new_files(tmp_path):
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    assert tracking.git_dirty(tmp_path) is None  # not a repository
    git("init", "-q")
    (tmp_path / "model.py").write_text("x = 1\n")
    git("add", "model.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    assert tracking.git_dirty(tmp_path) is False
    (tmp_path / "reasons.py").write_text("y = 2\n")
    assert tracking.git_dirty(tmp_path) is True
    (tmp_path / "reasons.py").unlink()
    (tmp_path / "model.py").write_text("x = 2\n")
    assert tracking.git_dirty(tmp_path) is True


_ONLY_REQUIREMENTS = """
import re, sys, importlib.abc
from importlib.metadata import PackageNotFoundError, packages_distributions, requires

def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()

model, leads, out = sys.argv[1:4]
pins = open(f"{model}/requirements.txt").read().split()
todo = [norm(re.split(r"[<>=!~;\\[ ]", p, maxsplit=1)[0]) for p in pins if p[:1].isalpha()]
closure = set()
while todo:  # what installing requirements.txt brings: the pins and their own dependencies
    name = todo.pop()
    if name in closure:
        continue
    closure.add(name)
    try:
        needs = requires(name) or []
    except PackageNotFoundError:
        continue
    todo += [norm(re.split(r"[<>=!~;\\[( ]", r, maxsplit=1)[0]) for r in needs if "extra" not in r]
allowed = {top for top, dists in packages_distributions().items()
           if any(norm(d) in closure for d in dists)}
allowed |= set(sys.stdlib_module_names) | {"leadscore"}

class OnlyRequirements(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        top = name.split(".")[0]
        if top not in allowed and not top.startswith("_"):
            raise ModuleNotFoundError(f"{top} is not in requirements.txt", name=top)

sys.meta_path.insert(0, OnlyRequirements())
import mlflow.pyfunc
import pandas as pd

mlflow.pyfunc.load_model(model).predict(pd.read_parquet(leads)).to_parquet(out)
"""


def test_the_logged_model_loads_and_scores_with_only_its_requirements(registry, strong, X_test):
    """What requirements.txt lists (and what those packages pull in) is all that serving
    (``mlflow models serve``, a Spark UDF with an env manager) installs: loading and scoring
    may import nothing else. A package the model imports but does not list fails here."""
    path = _download(registry["client"], "2", registry["root"] / "dl-requirements")
    leads, out = registry["root"] / "req-leads.parquet", registry["root"] / "req-out.parquet"
    X_test.to_parquet(leads)
    script = registry["root"] / "only_requirements.py"
    script.write_text(_ONLY_REQUIREMENTS)
    done = subprocess.run(
        [sys.executable, str(script), str(path), str(leads), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    scored = pd.read_parquet(out)
    np.testing.assert_allclose(scored["probability"], strong.p_cal, atol=1e-12)


def test_pyfunc_takes_columns_as_pandas_reads_them(registry, strong, X_test):
    """A CSV read by pandas 3 gives `str` columns, with missing values, in any column order,
    and int64 columns for whole numbers without gaps; floats with gaps stay floats."""
    path = _download(registry["client"], "2", registry["root"] / "dl-text")
    logged = mlflow.pyfunc.load_model(str(path))
    csv = registry["root"] / "leads.csv"
    X_test.astype({"pricing_views": "int64"}).iloc[:, ::-1].to_csv(csv, index=False)
    leads = pd.read_csv(csv)
    assert pd.api.types.is_string_dtype(leads["source"])
    assert leads["pricing_views"].dtype == "int64" and leads["visits"].dtype == "float64"
    out = logged.predict(leads)
    np.testing.assert_allclose(out["probability"], strong.p_cal, atol=1e-12)
    ints = leads.assign(visits=leads["visits"].fillna(0).astype("int32"))
    with_ints = logged.predict(ints)["probability"]
    np.testing.assert_allclose(with_ints, strong.model.predict_proba(ints), atol=1e-12)


def test_pyfunc_takes_categories_as_any_reader_types_them(registry, strong, X_test):
    """A categorical column arrives as pandas categories (a feature table), as floats when a
    batch leaves it empty, or as numbers when its codes look like numbers: the logged model
    scores each as the in-memory model does, where MLflow's string check would refuse it."""
    path = _download(registry["client"], "2", registry["root"] / "dl-categories")
    logged = mlflow.pyfunc.load_model(str(path))
    variants = {
        "category dtype": X_test,
        "all missing": X_test.assign(source=np.nan),
        "codes as numbers": X_test.assign(source=X_test["source"].cat.codes.astype("int64")),
    }
    for name, variant in variants.items():
        out = logged.predict(variant)["probability"]
        expected = strong.model.predict_proba(variant)
        np.testing.assert_allclose(out, expected, atol=1e-12, err_msg=name)


def test_logged_model_is_code_plus_text_no_pickle(registry, dataset):
    path = _download(registry["client"], "2", registry["root"] / "dl-files")
    files = [p for p in path.rglob("*") if p.is_file()]
    assert files
    assert not [p for p in files if p.suffix.lower() in PICKLE_SUFFIXES]
    for p in files:  # no pickle stream (protocol 2-5 header) under another name either
        head = p.read_bytes()[:2]
        assert not (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")), p
    meta = yaml.safe_load((path / "MLmodel").read_text())
    flavor = meta["flavors"]["python_function"]
    assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    assert Path(flavor["model_code_path"]).name == "pyfunc.py"
    assert (path / "pyfunc.py").is_file()
    model_dir = path / flavor["artifacts"][pyfunc.MODEL_DIR_ARTIFACT]["path"]
    assert sorted(p.name for p in model_dir.iterdir()) == ["booster.txt", "model.json"]
    inputs = json.loads(meta["signature"]["inputs"])
    assert [c["name"] for c in inputs] == [f.name for f in dataset.features]
    assert {c["name"]: c["type"] for c in inputs} == {
        "visits": "any", "pricing_views": "any", "source": "any", "industry": "any"
    }  # fmt: skip
    assert not any(c.get("required", True) for c in inputs)
    example = json.loads((path / meta["saved_input_example_info"]["artifact_path"]).read_text())
    assert example["columns"] == [f.name for f in dataset.features]


def _strict_json(text: str):
    """``json.loads`` that refuses ``NaN``, ``Infinity`` and ``-Infinity``, as JavaScript's
    ``JSON.parse`` and other strict parsers do."""
    return json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))


def test_the_input_example_is_strict_json_with_missing_values_as_null(registry, strong, X_test):
    """A test fold whose first rows lack numbers: MLflow writes a float column's missing
    values as bare ``NaN``, which no strict JSON parser reads. The logged example holds
    ``null`` instead, keeps the signature, and the served model scores it."""
    from mlflow.models import Model, validate_serving_input

    name = "leadscore-example"
    gaps = X_test.copy()
    gaps.loc[[0, 2], "visits"] = np.nan
    gaps.loc[1, "pricing_views"] = np.nan
    _log_quietly(strong, registry["uri"], gaps, name)
    source = registry["client"].get_model_version_download_uri(name, "1")
    dst = registry["root"] / "dl-example"
    path = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(dst)))
    meta = yaml.safe_load((path / "MLmodel").read_text())
    info = meta["saved_input_example_info"]
    assert (info["type"], info["pandas_orient"]) == ("dataframe", "split")
    example = _strict_json((path / info["artifact_path"]).read_text())
    serving = _strict_json((path / info["serving_input_path"]).read_text())
    assert serving["dataframe_split"] == example
    assert example["columns"] == list(X_test.columns)
    rows = example["data"]
    assert [r[0] for r in rows[:3]] == [None, X_test.loc[1, "visits"], None]
    assert rows[1][1] is None and rows[0][1] == X_test.loc[0, "pricing_views"]
    # the signature is the model's own, as before: every input optional and of type any
    assert meta["signature"] == tracking.model_signature(strong.model).to_dict()
    expected = strong.model.predict_proba(gaps.head(5))
    with tracking.using_tracking_uri(registry["uri"]), warnings.catch_warnings():
        # deprecated in MLflow 3.13 for mlflow.models.predict, which builds an environment;
        # this is still the serving server's own parsing and schema check, in process
        warnings.simplefilter("ignore", FutureWarning)
        scored = validate_serving_input(str(path), json.dumps(serving))
        loaded = Model.load(str(path)).load_input_example(str(path))
        served = mlflow.pyfunc.load_model(str(path)).predict(
            pd.DataFrame(example["data"], columns=example["columns"])
        )
    np.testing.assert_allclose(scored["probability"], expected, atol=1e-12)
    np.testing.assert_allclose(served["probability"], expected, atol=1e-12)
    assert loaded["visits"].isna().tolist()[:3] == [True, False, True]
    np.testing.assert_allclose(
        strong.model.predict_proba(loaded), expected, atol=1e-12
    )  # read back, the example is the same rows


def test_run_records_params_tags_metrics_and_artifacts(registry, dataset, strong):
    client = registry["client"]
    run_id = registry["runs"][1]
    run = client.get_run(run_id)
    tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
    assert tags["dataset"] == "toy"
    assert tags["data_hash"] == tracking.data_fingerprint(dataset.X)
    assert tags["fold_kind"] == "time"
    commit = tracking.git_commit()
    if commit is not None:
        assert tags["mlflow.source.git.commit"] == tags["git_commit"] == commit
        assert tags["git_dirty"] == str(tracking.git_dirty()).lower()
    assert params["lgbm.num_leaves"] == str(strong.params["num_leaves"])
    assert params["config.quality_gate.allow_worse"] == "True"
    assert params["folds.kind"] == "time"
    assert (params["folds.first"], params["folds.last"]) == strong.folds.span
    # the run's name tells one month's retrain from the next
    assert tags["mlflow.runName"] == f"train-toy-{strong.folds.span[1][:10]}"
    assert metrics["test_ece_by_chance_upper"] >= metrics["test_ece_by_chance"]
    assert params["folds.first"] < params["folds.test_from"] <= params["folds.last"]
    m = strong.metrics
    assert metrics["test_roc_auc"] == pytest.approx(m["model"]["roc_auc"])
    assert metrics["test_raw_brier"] == pytest.approx(m["model_uncalibrated"]["brier"])
    assert metrics["lr_test_roc_auc"] == pytest.approx(
        m["baselines"]["logistic_regression"]["roc_auc"]
    )
    assert metrics["rules_test_roc_auc"] == pytest.approx(m["baselines"]["rule_points"]["roc_auc"])
    assert metrics["stage_lead_count"] == m["stages"]["lead"]["count"]
    low, high = m["uncertainty"]["intervals"]["model"]["roc_auc"]
    assert metrics["test_roc_auc_low"] == pytest.approx(low)
    assert metrics["test_roc_auc_high"] == pytest.approx(high)
    assert metrics["test_roc_auc_gain_over_lr_low"] == pytest.approx(
        m["uncertainty"]["roc_auc_gain"]["logistic_regression"][0]
    )
    assert metrics["test_ece_by_chance"] == pytest.approx(m["uncertainty"]["ece_by_chance"]["mean"])
    assert metrics["threshold_mql"] == pytest.approx(strong.model.mql_threshold)

    root = [a.path for a in client.list_artifacts(run_id)]
    assert {"spec.yaml", "config.json", "metrics.json", "stages.csv"} <= set(root)
    plots = {Path(a.path).name for a in client.list_artifacts(run_id, "plots")}
    expected = {
        "roc.png",
        "precision_recall.png",
        "reliability.png",
        "cumulative_gains.png",
        "stages.png",
    }
    assert plots == expected
    assert {p.name for p in (registry["root"] / "figures").iterdir()} == expected
    local = Path(
        mlflow.artifacts.download_artifacts(
            run_id=run_id,
            artifact_path="metrics.json",
            tracking_uri=registry["uri"],
            dst_path=str(registry["root"] / "dl-metrics"),
        )
    )
    logged = json.loads(local.read_text())
    assert logged["run_id"] == run_id
    assert logged["model"]["roc_auc"] == pytest.approx(m["model"]["roc_auc"])


# --------------------------------------------------------------------------- load_model


def test_load_model_by_alias_version_run_and_folder(registry, strong, weak, X_test):
    uri, root = registry["uri"], registry["root"]
    expected_strong = strong.model.predict_proba(X_test)
    by_alias = tracking.load_model("models:/leadscore@champion", tracking_uri=uri)
    assert isinstance(by_alias, LeadScoringModel)
    np.testing.assert_allclose(by_alias.predict_proba(X_test), expected_strong)
    by_version = tracking.load_model("models:/leadscore/1", tracking_uri=uri)
    np.testing.assert_allclose(by_version.predict_proba(X_test), weak.model.predict_proba(X_test))
    by_run = tracking.load_model(f"runs:/{registry['runs'][1]}/model", tracking_uri=uri)
    np.testing.assert_allclose(by_run.predict_proba(X_test), expected_strong)
    logged_folder = _download(registry["client"], "2", root / "dl-folder")
    from_logged = tracking.load_model(logged_folder)
    np.testing.assert_allclose(from_logged.predict_proba(X_test), expected_strong)
    saved = strong.model.save(root / "saved")
    np.testing.assert_allclose(tracking.load_model(saved).predict_proba(X_test), expected_strong)


def test_load_model_reads_env_tracking_uri(registry, strong, X_test, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry["uri"])
    model = tracking.load_model("models:/leadscore@champion")
    np.testing.assert_allclose(model.predict_proba(X_test), strong.p_cal)


@pytest.mark.parametrize(
    ("uri", "names"),
    [
        ("models:/leadscore@nope", ["'nope'", "'leadscore'", "leadscore train"]),
        ("models:/leadscore/99", ["'99'", "versions: 1, 2, 3", "@champion"]),
        ("models:/no_such_model@champion", ["'no_such_model'", "'champion'"]),
        ("models:/leadscore", ["names no version or alias", "models:/leadscore@champion"]),
    ],
)
def test_unknown_model_version_or_alias_is_a_one_line_model_error(registry, uri, names, capfd):
    with pytest.raises(ModelError) as caught:
        tracking.load_model(uri, tracking_uri=registry["uri"])
    message = str(caught.value)
    assert "\n" not in message
    for name in names:
        assert name in message
    assert capfd.readouterr().err == ""


def test_unknown_alias_lists_the_versions_and_aliases_as_unknown_version_does(registry):
    """An unknown alias and an unknown version name what the registry holds, alike, and two
    URIs that load; an unknown name lists the registered names."""
    listings = []
    for uri in ("models:/leadscore@nope", "models:/leadscore/99"):
        with pytest.raises(ModelError) as caught:
            tracking.load_model(uri, tracking_uri=registry["uri"])
        message = str(caught.value)
        assert "versions: 1, 2, 3; aliases: champion -> " in message
        assert "models:/leadscore@champion or models:/leadscore/3" in message
        start = message.index("(versions:")
        listings.append(message[start : message.index(";", message.index("aliases:"))])
    assert listings[0] == listings[1]
    with pytest.raises(ModelError, match=r"registered models: leadscore\b"):
        tracking.load_model("models:/no_such_model@champion", tracking_uri=registry["uri"])


def test_missing_sqlite_store_is_a_model_error_and_is_not_created(tmp_path):
    db = tmp_path / "nowhere.db"
    with pytest.raises(ModelError, match=r"no MLflow store at .*nowhere\.db"):
        tracking.load_model("models:/leadscore@champion", tracking_uri=f"sqlite:///{db}")
    assert not db.exists()


def test_unknown_run_or_folder_is_a_model_error(registry, tmp_path):
    with pytest.raises(ModelError, match="cannot fetch model runs:/"):
        tracking.load_model(f"runs:/{'0' * 32}/model", tracking_uri=registry["uri"])
    with pytest.raises(ModelError, match="no leadscore model at"):
        tracking.load_model(tmp_path / "missing")


def _logged_folder(root: Path, model_dir: str) -> Path:
    """A logged model's folder as MLflow lays it out, its MLmodel pointing at ``model_dir``."""
    root.mkdir(parents=True, exist_ok=True)
    flavor = {"artifacts": {pyfunc.MODEL_DIR_ARTIFACT: {"path": model_dir, "uri": "x"}}}
    (root / "MLmodel").write_text(yaml.safe_dump({"flavors": {"python_function": flavor}}))
    return root


def test_a_logged_model_dir_outside_its_folder_is_refused(tmp_path, weak, dataset):
    """An MLmodel whose model_dir artifact leads out of the folder (absolute, ``..`` or a
    link) loaded whatever model lay there: the folder said one model and scored another."""
    weak.model.save(tmp_path / "inside" / "artifacts" / "leadscore_model")
    as_logged = tracking.load_model(
        _logged_folder(tmp_path / "inside", "artifacts/leadscore_model")
    )
    X = dataset.X.head(200)
    np.testing.assert_array_equal(as_logged.predict_proba(X), weak.model.predict_proba(X))
    elsewhere = weak.model.save(tmp_path / "elsewhere")
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / "model").symlink_to(elsewhere, target_is_directory=True)
    for name, path in (
        ("absolute", str(elsewhere)),
        ("dotdot", "../elsewhere"),
        ("deeper", "artifacts/../../elsewhere"),
        ("linked", "model"),
        ("nul", "a\x00b"),
    ):
        folder = _logged_folder(tmp_path / name, path)
        with pytest.raises(ModelError, match="is not a path inside its folder") as err:
            tracking.load_model(folder)
        assert "\n" not in str(err.value), name


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"flavors: [unclosed\n", "not readable YAML"),
        (b"flavors:\n\tpython_function: 1\n", "not readable YAML"),
        ("flavors: {}\n# caf\u00e9\n".encode("latin-1"), "not readable YAML"),
        (b"[" * 5000 + b"]" * 5000, "not readable YAML|not a leadscore model"),
        (b"- 1\n- 2\n", "not a leadscore model"),
        (b"just text\n", "not a leadscore model"),
        (b"flavors: 5\n", "not a leadscore model"),
        (b"flavors: {python_function: [1]}\n", "not a leadscore model"),
        (b"flavors: {python_function: {artifacts: [model_dir]}}\n", "not a leadscore model"),
        (b"flavors: {python_function: {artifacts: {model_dir: x}}}\n", "not a leadscore model"),
        (b"flavors: {python_function: {artifacts: {model_dir: {path: 5}}}}\n", "not a leadscore"),
        (b"flavors: {python_function: {artifacts: {model_dir: {path: [a]}}}}\n", "not a leadsc"),
    ],
)
def test_a_malformed_mlmodel_file_is_a_one_line_model_error(tmp_path, text, message):
    """Malformed YAML, text that is not UTF-8 and values of the wrong type were a yaml,
    UnicodeDecodeError, AttributeError or TypeError traceback."""
    (tmp_path / "MLmodel").write_bytes(text)
    with pytest.raises(ModelError, match=message) as err:
        tracking.load_model(tmp_path)
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- small pieces


def test_data_fingerprint_tracks_content_not_index_or_category_order(dataset):
    X = dataset.X
    base = tracking.data_fingerprint(X)
    assert len(base) == 64
    assert tracking.data_fingerprint(X.copy()) == base
    assert tracking.data_fingerprint(X.set_axis(range(10, 10 + len(X)))) == base
    reordered = X.assign(
        source=X["source"].cat.reorder_categories(list(reversed(X["source"].cat.categories)))
    )
    assert tracking.data_fingerprint(reordered) == base
    changed = X.copy()
    changed.loc[0, "pricing_views"] = 99.0
    assert tracking.data_fingerprint(changed) != base
    assert tracking.data_fingerprint(X.iloc[::-1]) != base
    assert tracking.data_fingerprint(X.rename(columns={"visits": "sessions"})) != base
    assert tracking.data_fingerprint(X.astype({"pricing_views": "float32"})) != base


def test_resolve_tracking_uri_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.resolve_tracking_uri(cwd=tmp_path) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///from-env.db")
    assert tracking.resolve_tracking_uri(cwd=tmp_path) == "sqlite:///from-env.db"
    assert tracking.resolve_tracking_uri("http://localhost:5000") == "http://localhost:5000"


def test_sqlite_paths_read_as_sqlalchemy_reads_them():
    from leadscore.io import sqlite_file

    assert sqlite_file("sqlite:///mlflow.db") == Path("mlflow.db")
    assert sqlite_file("sqlite:////srv/runs/mlflow.db") == Path("/srv/runs/mlflow.db")
    assert sqlite_file("sqlite+pysqlite:////srv/a%20b.db?mode=ro") == Path("/srv/a b.db")
    assert sqlite_file("sqlite:///:memory:") is None
    assert sqlite_file("http://localhost:5000") is None
    assert sqlite_file("postgresql+psycopg://user@host/db") is None


def test_training_metrics_names():
    flat = tracking.training_metrics(
        {
            "model": {"roc_auc": 0.9, "ece": 0.01},
            "model_uncalibrated": {"brier": 0.2},
            "baselines": {
                "logistic_regression": {"roc_auc": 0.8},
                "rule_points": {"roc_auc": 0.7},
                "other": {"roc_auc": 0.6},
            },
            "stages": {"sql": {"count": 12, "conversion_rate": float("nan")}},
            "n_test": 300,
            "calibration": "isotonic",
        }
    )
    assert flat == {
        "test_roc_auc": 0.9,
        "test_ece": 0.01,
        "test_raw_brier": 0.2,
        "lr_test_roc_auc": 0.8,
        "rules_test_roc_auc": 0.7,
        "other_test_roc_auc": 0.6,
        "stage_sql_count": 12.0,
        "n_test": 300.0,
    }


def test_registered_name_gives_each_data_set_its_own_champion():
    assert tracking.registered_name("leadscore", "olist") == "leadscore-olist"
    assert tracking.registered_name("leadscore", "synthetic") == "leadscore-synthetic"
    assert tracking.registered_name(None, "olist") is None


def test_a_file_store_mlflow_refuses_is_named_before_training(tmp_path, monkeypatch):
    """MLflow 3 refuses a file store unless MLFLOW_ALLOW_FILE_STORE is set; train checks the
    URI first, so the user learns it before the training time is spent, with the opt-in."""
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    uri = (tmp_path / "fstore").as_uri()
    with pytest.raises(mlflow.exceptions.MlflowException, match="MLFLOW_ALLOW_FILE_STORE"):
        MlflowClient(uri).search_experiments(max_results=1)  # MLflow 3 refuses file stores
    with pytest.raises(ModelError, match="is a file store") as refused:
        tracking.check_tracking_uri(uri)
    assert "MLFLOW_ALLOW_FILE_STORE=true" in refused.value.fix
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    tracking.check_tracking_uri(uri)  # opted in: accepted


def test_a_full_disk_while_fetching_a_model_is_told_as_such():
    """MLflow lists its failed downloads before the system's reason, which the one-line
    error cut off, and the fix pointed at the URI: a full temporary folder is named."""
    import errno

    from mlflow.exceptions import MlflowException

    try:
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as disk:
            raise MlflowException("The following failures occurred while downloading") from disk
    except MlflowException as err:
        full = tracking._out_of_room(err)
        assert isinstance(full, OSError) and full.errno == errno.ENOSPC
    assert tracking._out_of_room(MlflowException("RESOURCE_DOES_NOT_EXIST: no model")) is None


def test_a_registered_name_or_uri_resolves_to_its_training_run(registry):
    """``report model --run`` takes what a marketer knows: the model's name (its champion),
    a models:/ URI, or the run id; an unknown alias lists what the registry holds."""
    uri, runs = registry["uri"], registry["runs"]
    assert tracking.resolve_run("leadscore", uri) == runs[1]  # version 2 is the champion
    assert tracking.resolve_run("models:/leadscore/3", uri) == runs[2]
    assert tracking.resolve_run("models:/leadscore@champion", uri) == runs[1]
    assert tracking.resolve_run(runs[0], uri) == runs[0]
    assert tracking.resolve_run("not-a-model", uri) == "not-a-model"  # the report says "no run"
    with pytest.raises(ModelError, match=r"no model 'leadscore' with alias 'best'.*versions: 1"):
        tracking.resolve_run("models:/leadscore@best", uri)


def _closed_port() -> int:
    """A local port nothing listens on."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_store_out_of_reach_is_one_line_at_once_without_its_password(tmp_path) -> None:
    """MLflow retried an unreachable store for minutes, after the training, and printed a
    wrong password in its error; the check runs first, once, and masks it."""
    port = _closed_port()
    with pytest.raises(
        ModelError, match=f"cannot reach the MLflow tracking server at http://127.0.0.1:{port}"
    ):
        tracking.check_tracking_uri(f"http://127.0.0.1:{port}")
    server = f"postgresql+psycopg://scorer:s3cret@127.0.0.1:{port}/runs"
    for check, verb in [
        (lambda: tracking.check_tracking_uri(server), "log to"),
        (
            lambda: tracking.load_model("models:/leadscore-crm@champion", tracking_uri=server),
            "load models from",
        ),
    ]:
        with pytest.raises(ModelError) as err:
            check()
        said = str(err.value)
        assert said.startswith(f"cannot {verb} MLflow at postgresql+psycopg://scorer:***@127.0.0.1")
        assert "s3cret" not in said and "\n" not in said
    with pytest.raises(ModelError, match=r"scorer:\*\*\*@127.0.0.1:x/runs: invalid literal"):
        tracking.check_tracking_uri("postgresql+psycopg://scorer:s3cret@127.0.0.1:x/runs")
    garbage = tmp_path / "mlflow.db"
    garbage.write_text("not a database\n")
    with pytest.raises(ModelError, match="cannot be opened as a database"):
        tracking.check_tracking_uri(f"sqlite:///{garbage}")
    fresh = tmp_path / "new" / "mlflow.db"
    tracking.check_tracking_uri(f"sqlite:///{fresh}")  # to be made by MLflow: nothing made yet
    assert not fresh.exists() and not fresh.parent.exists()


def test_a_registered_version_s_source_loads_as_the_version_does(registry, weak, X_test) -> None:
    """MLflow 3 records a version's ``source`` as ``models:/m-<id>``, the logged model: it
    had been read as a registered name without a version."""
    client, uri = registry["client"], registry["uri"]
    source = client.get_model_version("leadscore", "1").source
    assert re.fullmatch(r"models:/m-[0-9a-f]+", source)
    model, name, version = tracking.load_model_version(source, tracking_uri=uri)
    assert (name, version) == (None, None)
    np.testing.assert_array_equal(model.predict_proba(X_test), weak.model.predict_proba(X_test))


def test_under_mlflow_run_runs_stay_in_the_project_s_experiment(
    tmp_path, weak, X_test, monkeypatch
):
    """``mlflow run --experiment-name acme`` starts a run and hands its id over in
    ``MLFLOW_RUN_ID``: the training logs into that run, and no ``leadscore`` experiment is
    made beside it (a tuning's trials had gone there, apart from the tuned model)."""
    uri = f"sqlite:///{tmp_path / 'project.db'}"
    client = MlflowClient(uri, uri)
    project = client.create_experiment("acme")
    started = client.create_run(project)
    monkeypatch.setenv("MLFLOW_RUN_ID", started.info.run_id)
    run_id = _log_quietly(weak, uri, X_test, "leadscore-acme")
    assert run_id == started.info.run_id
    assert client.get_run(run_id).info.experiment_id == project
    assert client.get_experiment_by_name("leadscore") is None


def test_inside_a_notebook_s_active_run_the_run_is_nested_under_it(tmp_path, dataset, strong):
    """A notebook's ``with mlflow.start_run():`` block: the training run is its child, in
    leadscore's own experiment of the same store (MLflow nests across experiments), the
    notebook's run stays active, and the model is registered as outside the block."""
    uri = f"sqlite:///{tmp_path / 'notebook.db'}"
    other = f"sqlite:///{tmp_path / 'team.db'}"
    quiet = contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO())
    with tracking.using_tracking_uri(uri), quiet[0], quiet[1]:
        notebook = MlflowClient(uri).create_experiment("my-notebook")
        with mlflow.start_run(experiment_id=notebook, run_name="exploration") as parent:
            run_id = tracking.log_training_run(
                strong,
                dataset_name="toy",
                spec=None,
                config={},
                data_hash=tracking.data_fingerprint(dataset.X),
            )
            active = mlflow.active_run()
            assert active is not None and active.info.run_id == parent.info.run_id
            with pytest.raises(UsageError, match=r"active \('exploration'\) in another") as err:
                tracking.log_training_run(
                    strong,
                    dataset_name="toy",
                    spec=None,
                    config={},
                    data_hash=tracking.data_fingerprint(dataset.X),
                    tracking_uri=other,
                )
            assert "tracking_uri=mlflow.get_tracking_uri()" in str(err.value)
            assert "\n" not in str(err.value)
            active = mlflow.active_run()
            assert active is not None and active.info.run_id == parent.info.run_id
    assert mlflow.active_run() is None
    client = MlflowClient(uri, uri)
    run = client.get_run(run_id)
    assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "leadscore"
    assert run.data.tags["registered_model"] == "leadscore-toy/1"
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"
    assert not MlflowClient(other).search_experiments(filter_string="name = 'leadscore'")


@pytest.mark.parametrize(
    ("uri", "missing", "package"),
    [
        ("s3://bucket/model", "botocore", "boto3"),
        ("gs://bucket/model", "google.cloud", "google-cloud-storage"),
    ],
)
def test_a_cloud_model_uri_without_its_client_names_the_package(
    monkeypatch, uri: str, missing: str, package: str
) -> None:
    """``--model s3://...`` without boto3 (gs:// without google-cloud-storage) ended in
    MLflow's ModuleNotFoundError traceback; the one line names the package to install. The
    client is hidden from the import system, so the test holds where it is installed."""
    monkeypatch.setitem(sys.modules, missing, None)
    if missing == "botocore":
        monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(tracking.ModelFetchError, match=f"pip install {package}") as refused:
        tracking._download_and_load(uri, None, uri)
    assert uri in str(refused.value)


def test_a_model_uri_mlflow_cannot_read_is_one_line() -> None:
    """``--model http://host/x`` failed inside MLflow's artifact repository with
    ``ValueError: not enough values to unpack``; it is one line naming the URI and what
    --model takes."""
    uri = f"http://127.0.0.1:{_closed_port()}/x"
    with pytest.raises(tracking.ModelFetchError, match="cannot read artifacts at") as refused:
        tracking._download_and_load(uri, None, uri)
    assert uri in str(refused.value) and "runs:/RUN_ID/model" in refused.value.fix
