"""Tuning: real Optuna studies in SQLite under tmp_path, real LightGBM, real MLflow."""

from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path

import lightgbm as lgb
import numpy as np
import optuna
import pandas as pd
import pytest
import yaml

from flat_tables import write_flat_spec
from leadscore.commands import tune as tune_command
from leadscore.config import TrainConfig, parse_config
from leadscore.errors import LeadscoreError, ModelError, SpecError
from leadscore.schema import Feature, LabelledDataset
from leadscore.training import CELLS_PER_THREAD, available_cpus, booster_threads
from leadscore.tuning import (
    REFERENCE_LEARNING_RATE,
    MlflowTrialLogger,
    PruningCallback,
    TuneSettings,
    default_storage,
    open_study,
    prepare_problem,
    report_interval,
    run_study,
    search_space,
    study_config,
    tune,
)


def _frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Flat leads whose truth has thresholds and an interaction."""
    rng = np.random.default_rng(seed)
    minutes = rng.exponential(8, n)
    visits = rng.poisson(3, n).astype(float)
    occupation = rng.choice(["working", "student", "unemployed"], n, p=[0.4, 0.3, 0.3])
    origin = rng.choice(["form", "chat", "import"], n, p=[0.5, 0.3, 0.2])
    logit = (
        -1.5
        + 2.2 * (minutes > 10)
        + np.select([occupation == "working", occupation == "student"], [1.6, -1.2], 0.0)
        + 1.5 * ((origin == "form") & (visits >= 3))
    )
    frame = pd.DataFrame(
        {"minutes": minutes.round(2), "visits": visits, "occupation": occupation, "origin": origin}
    )
    return frame, 1 / (1 + np.exp(-logit))


def _dataset(n: int = 1500, seed: int = 0) -> LabelledDataset:
    frame, p = _frame(n, seed)
    X = frame.astype({"occupation": "category", "origin": "category"})
    features = tuple(
        Feature(c, "fit", c, "categorical" if c in ("occupation", "origin") else "numeric")
        for c in X.columns
    )
    return LabelledDataset(
        name="demo",
        X=X,
        y=(np.random.default_rng(seed + 1).random(n) < p).astype(int),
        lead_id=pd.Series([f"p{i}" for i in range(n)]),
        order=pd.Series(np.arange(n, dtype="float64")),
        features=features,
    )


FAST = {
    "cold_start": {"min_wins": 0, "min_leads": 0},
    "lightgbm": {
        "num_boost_round": 300,
        "early_stopping_rounds": 30,
        "params": {"num_threads": 1},
    },
}


@pytest.fixture(scope="module")
def dataset() -> LabelledDataset:
    return _dataset()


@pytest.fixture(scope="module")
def config() -> TrainConfig:
    return parse_config(FAST)


@pytest.fixture(scope="module")
def problem(dataset, config):
    return prepare_problem(dataset, config)


def _settings(**kw) -> TuneSettings:
    return TuneSettings(**{"trials": 4, "report_every": 50, "warmup_steps": 100, **kw})


def _fixing(**params) -> dict:
    """FAST with ``params`` fixed in ``lightgbm.params`` too."""
    lightgbm = {**FAST["lightgbm"], "params": {**FAST["lightgbm"]["params"], **params}}
    return {**FAST, "lightgbm": lightgbm}


def test_study_runs_n_trials_and_the_best_params_are_in_the_space(tmp_path, problem):
    settings = _settings(trials=6)
    study = open_study(settings, "demo", f"sqlite:///{tmp_path / 'optuna.db'}")
    summary = run_study(study, problem, settings)
    assert summary.n_trials == summary.new_trials == 6
    assert summary.n_complete + summary.n_pruned + summary.n_failed == 6
    space = search_space(len(problem.folds.fit) + len(problem.folds.valid))
    assert set(summary.best_params) == set(space)
    for name, value in summary.best_params.items():
        assert space[name].contains(value), (name, value)
    complete = [t.value for t in study.trials if t.value is not None]
    assert summary.best_value == min(complete)  # log loss is minimised
    assert 0 < summary.best_value < np.log(2)
    assert summary.final_params()["metric"] == "binary_logloss"


def test_a_second_call_continues_the_study(tmp_path, problem):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = run_study(
        open_study(_settings(trials=3), "demo", storage), problem, _settings(trials=3)
    )
    second = run_study(
        open_study(_settings(trials=2), "demo", storage), problem, _settings(trials=2)
    )
    assert first.study_name == second.study_name == "leadscore-demo"
    assert (first.n_trials, second.n_trials, second.new_trials) == (3, 5, 2)
    stored = optuna.load_study(study_name="leadscore-demo", storage=storage)
    assert len(stored.trials) == 5
    # the resumed sampler does not redraw the first call's random points
    drawn = [tuple(sorted(t.params.items())) for t in stored.trials]
    assert len(set(drawn)) == 5
    with pytest.raises(SpecError, match="objective 'log_loss'") as err:
        open_study(_settings(objective="roc_auc"), "demo", storage)
    assert "\n" not in str(err.value)


def test_no_trial_to_reuse_is_a_model_error(tmp_path, problem):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    open_study(_settings(trials=1), "demo", storage)  # the study exists, with no trial
    settings = _settings(trials=0)
    study = open_study(settings, "demo", storage)
    with pytest.raises(ModelError, match="no trial of study 'leadscore-demo' completed"):
        run_study(study, problem, settings)


def test_trials_0_on_a_missing_study_is_a_spec_error_that_creates_nothing(tmp_path):
    path = tmp_path / "optuna.db"
    storage = f"sqlite:///{path}"
    with pytest.raises(SpecError) as err:
        open_study(_settings(trials=0, study_name="fresh"), "demo", storage)
    message = str(err.value)
    assert message == (
        "--trials 0 reuses the best trial of an existing study, but study 'fresh' does not "
        f"exist in {storage}. Give --trials N to run a search, or name an existing study "
        "with --study-name."
    )
    assert not path.exists()  # no storage file, let alone an empty study
    open_study(_settings(trials=1), "demo", storage)
    with pytest.raises(SpecError, match=r"--study-name \(it has 'leadscore-demo'\)"):
        open_study(_settings(trials=0, study_name="fresh"), "demo", storage)
    assert optuna.study.get_all_study_names(storage) == ["leadscore-demo"]


def test_trials_0_resumes_an_existing_study_and_the_summary_names_its_storage(tmp_path, problem):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    one = _settings(trials=1)
    first = run_study(open_study(one, "demo", storage), problem, one)
    assert first.storage == storage  # read from the study: not Optuna's cache class
    settings = _settings(trials=0)
    again = run_study(open_study(settings, "demo", storage), problem, settings, storage=storage)
    assert (again.n_trials, again.new_trials, again.best_value) == (1, 0, first.best_value)
    assert again.storage == storage
    # a URL as given is recorded, but never its password
    hidden = run_study(
        open_study(settings, "demo", storage),
        problem,
        settings,
        storage="postgresql://tuner:s3cret@db:5432/optuna",
    )
    assert hidden.storage == "postgresql://tuner:***@db:5432/optuna"
    in_memory = optuna.create_study()
    in_memory.enqueue_trial({"learning_rate": 0.1})
    assert run_study(in_memory, problem, one).storage == "in-memory"


def test_a_config_lightgbm_refuses_stops_before_the_study_is_created(tmp_path, dataset, capfd):
    """The review's c4 (num_leaves -3): each trial failed with LightGBM's traceback, the
    error asked for more --trials, and the study left behind, with two failed trials and the
    bad config recorded, refused the corrected config. Now train's check stops it first, in
    train's words, and LightGBM's own "[Fatal]" line stays off stderr."""
    path = tmp_path / "optuna.db"
    config = parse_config(_fixing(num_leaves=-3))
    with pytest.raises(SpecError) as err:
        tune(dataset, config, _settings(trials=2), storage=f"sqlite:///{path}")
    assert str(err.value).startswith(
        "lightgbm.params.num_leaves: LightGBM rejects the parameters: Check failed: "
        "(num_leaves) > (1). Fix the value in the training config"
    )
    assert not path.exists()  # no storage, let alone a study
    assert "[LightGBM] [Fatal]" not in capfd.readouterr().err


def _failing_fit(*args, **kwargs):
    raise lgb.basic.LightGBMError("Check failed: (max_bin) > (1) at /src/io/config.cpp, line 9 .")


def test_a_study_this_run_created_is_deleted_when_no_trial_completed(
    tmp_path, dataset, config, monkeypatch
):
    """Trials that LightGBM fails leave no study behind when the run made it, and the error
    says what failed instead of asking for more trials; a study that existed is kept."""
    import leadscore.tuning as tuning

    monkeypatch.setattr(tuning, "fit_early_stopped", _failing_fit)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    with pytest.raises(ModelError) as err:
        tune(dataset, config, _settings(trials=2), storage=storage)
    assert str(err.value) == (
        "no trial of study 'leadscore-demo' completed (0 pruned, 2 failed); the last failed "
        "with lightgbm.params: LightGBM rejects the parameters: Check failed: "
        "(max_bin) > (1). Check the lightgbm section of the training config (`leadscore "
        "train` with it names the parameter); more trials would fail the same way."
    )
    assert optuna.study.get_all_study_names(storage) == []
    # a study made before the run is the user's: kept, failed trials and all
    record = study_config(config, dataset)
    open_study(_settings(trials=1), "demo", storage, record)
    with pytest.raises(ModelError, match=r"\(0 pruned, 2 failed\)"):
        tune(dataset, config, _settings(trials=2), storage=storage)
    kept = optuna.load_study(study_name="leadscore-demo", storage=storage)
    assert [t.state.name for t in kept.trials] == ["FAIL", "FAIL"]
    assert kept.user_attrs["config"] == record
    # ... and a study of this run with a completed trial stays too (only the gate failed)
    monkeypatch.undo()
    monkeypatch.setattr(tuning, "train", _failing_train)
    with pytest.raises(ModelError, match="the quality gate"):
        tune(dataset, config, _settings(trials=1, study_name="gated"), storage=storage)
    assert "gated" in optuna.study.get_all_study_names(storage)


def _failing_train(*args, **kwargs):
    raise ModelError("the quality gate stopped it")


def test_pruned_trials_alone_still_ask_for_more_trials(problem):
    study = optuna.create_study(study_name="pruned", pruner=_AlwaysPrune())
    settings = _settings(trials=2, warmup_steps=0, report_every=1, report_rounds=1)
    with pytest.raises(ModelError) as err:
        run_study(study, problem, settings)
    assert str(err.value) == (
        "no trial of study 'pruned' completed (2 pruned, 0 failed). Run more --trials or a "
        "longer --timeout."
    )


def test_a_refused_study_whose_trials_all_failed_says_it_can_be_deleted(tmp_path, dataset):
    """A study an earlier version left behind with its failed trials (the review's opt.db):
    refused for its config, with the command that removes it, since it holds nothing."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    bad = study_config(parse_config(_fixing(num_leaves=-3)), dataset)
    study = open_study(_settings(trials=2), "demo", storage, bad)
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
    good = study_config(parse_config(FAST), dataset)
    with pytest.raises(SpecError) as err:
        open_study(_settings(trials=2), "demo", storage, good)
    assert str(err.value).endswith(
        "Use a new --study-name, or the same config as before; its 1 trial(s) all failed, so "
        "nothing is lost by deleting it: optuna delete-study --study-name leadscore-demo "
        f"--storage {storage}."
    )
    study.tell(study.ask(), [0.5])  # a completed trial is worth keeping: no such hint
    with pytest.raises(SpecError) as err:
        open_study(_settings(trials=2), "demo", storage, good)
    assert str(err.value).endswith("Use a new --study-name, or the same config as before.")


def test_a_refused_study_is_left_as_it_was(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(storage=storage, study_name="leadscore-demo", direction="maximize")
    with pytest.raises(SpecError, match="is set to maximize"):
        open_study(_settings(), "demo", storage)
    assert optuna.load_study(study_name="leadscore-demo", storage=storage).user_attrs == {}


class _AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return True


def _boost_reporting(problem, trial, rounds: int, learning_rate: float | None = None, **kw):
    """Boost ``rounds`` rounds on the fit fold with a :class:`PruningCallback` of ``trial``
    (``kw``: its options), at ``learning_rate`` (the problem's own when ``None``)."""
    rate = {} if learning_rate is None else {"learning_rate": learning_rate}
    callback = PruningCallback(trial, "binary_logloss", **rate, **kw)
    train_set = problem.lgb_dataset(problem.folds.fit)
    valid_set = problem.lgb_dataset(problem.folds.valid, reference=train_set)
    lgb.train(
        {**problem.base_params, "metric": "binary_logloss", **rate},
        train_set,
        num_boost_round=rounds,
        valid_sets=[valid_set],
        valid_names=["valid"],
        callbacks=[callback],
    )


def _reported(trial) -> list[int]:
    return sorted(trial.storage.get_trial(trial._trial_id).intermediate_values)


def test_the_callback_raises_trial_pruned_when_the_pruner_says_so(problem):
    trial = optuna.create_study(pruner=_AlwaysPrune()).ask()
    with pytest.raises(optuna.TrialPruned, match="round 5"):
        _boost_reporting(problem, trial, 50, every=5)
    assert _reported(trial) == [5]


def test_steps_count_rounds_at_learning_rate_0_01(problem):
    trial = optuna.create_study().ask()
    _boost_reporting(problem, trial, 22, learning_rate=0.1, every=50)
    # 22 rounds at 0.1 are 220 rounds at 0.01: reported at 50, 100, 150 and 200
    assert _reported(trial) == [50, 100, 150, 200]


def test_a_fast_learner_reports_on_a_coarser_grid_of_the_same_steps(problem):
    trial = optuna.create_study().ask()
    _boost_reporting(problem, trial, 65, learning_rate=0.2, every=50, min_rounds=20)
    # 65 rounds at 0.2 are 1300 steps; 50 steps are 2.5 rounds, doubled to 400 (20 rounds)
    assert _reported(trial) == [400, 800, 1200]


def test_reports_are_spaced_in_rounds_and_stay_on_the_shared_grid(problem):
    """Each report is a storage write and a read of every trial: across the searched learning
    rates, reports come at least ``report_rounds`` rounds apart, on steps that are multiples of
    ``report_every`` by a power of two (so the median pruner finds them in slower trials)."""
    settings = TuneSettings()
    rates = problem.space["learning_rate"]
    for lr in np.geomspace(rates.low, rates.high, 25):
        interval = report_interval(lr, settings.report_every, settings.report_rounds)
        assert interval * REFERENCE_LEARNING_RATE / lr >= settings.report_rounds - 1e-9, lr
        ratio = interval // settings.report_every
        assert interval % settings.report_every == 0 and ratio & (ratio - 1) == 0, lr
        # the smallest such: half the interval would be too close (or below report_every)
        assert ratio == 1 or interval / 2 * REFERENCE_LEARNING_RATE / lr < settings.report_rounds
    assert report_interval(0.01, 50, 20) == 50  # 50 rounds apart already
    assert report_interval(0.03, 50, 20) == 100
    assert report_interval(0.1, 50) == 50  # min_rounds 1: every report_every steps


def test_trials_on_small_data_run_on_one_thread(dataset):
    """LightGBM's default (a thread per core) on a few thousand leads spends each round at
    OpenMP barriers, hundreds of times the work when the machine is busy."""
    unset = {**FAST, "lightgbm": {**FAST["lightgbm"], "params": {}}}
    problem = prepare_problem(dataset, parse_config(unset))
    assert problem.base_params["num_threads"] == 1
    assert "num_threads" not in problem.config  # run-only: not recorded in the study
    # a value of the config is the user's decision, also 0 (LightGBM's default)
    for threads in (0, 3):
        config = parse_config(_fixing(num_threads=threads))
        assert prepare_problem(dataset, config).base_params["num_threads"] == threads


def test_trial_threads_grow_with_the_cells_of_the_fit_fold():
    assert booster_threads(2_735, 12, cpus=16) == 1
    assert booster_threads(10, 10, cpus=16) == 1
    assert booster_threads(CELLS_PER_THREAD // 10 * 4, 10, cpus=16) == 4
    assert booster_threads(500_000, 40, cpus=16) == 16  # at most one per CPU
    assert booster_threads(2_000_000, 6, cpus=16) == 6  # at most one per feature
    assert booster_threads(500_000, 40, cpus=0) == 1
    assert booster_threads(500_000, 40) == min(
        40, 500_000 * 40 // CELLS_PER_THREAD, available_cpus()
    )


def test_omp_num_threads_caps_the_booster_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert available_cpus() == 1
    assert booster_threads(10_000_000, 40) == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    uncapped = available_cpus()
    monkeypatch.setenv("OMP_NUM_THREADS", "not a number")  # ignored, as LightGBM ignores it
    assert available_cpus() == uncapped


def test_the_thread_count_changes_no_trial_value(tmp_path, dataset):
    """The trials' boosters are deterministic: the study finds the same values whatever the
    threads, so the final model repeats its best trial."""
    values = []
    for threads in (1, 2):
        problem = prepare_problem(dataset, parse_config(_fixing(num_threads=threads)))
        settings = _settings(trials=3)
        study = open_study(settings, "demo", f"sqlite:///{tmp_path / f'{threads}.db'}")
        run_study(study, problem, settings)
        values.append([t.value for t in study.trials])
    assert values[0] == values[1]


def test_the_median_pruner_stops_a_clearly_bad_configuration(tmp_path, problem):
    settings = _settings(trials=6, startup_trials=3)
    study = open_study(settings, "demo", f"sqlite:///{tmp_path / 'optuna.db'}")
    good = {"learning_rate": 0.1, "num_leaves": 15, "min_data_in_leaf": 20}
    bad = {
        "learning_rate": 0.1,
        "num_leaves": 3,
        "min_data_in_leaf": 50,
        "feature_fraction": 0.4,
        "lambda_l1": 10.0,
        "lambda_l2": 50.0,
    }
    for params in (good, good, good, bad):
        study.enqueue_trial(params)
    summary = run_study(study, problem, settings)
    bad_trial = study.trials[3]
    assert bad_trial.params["lambda_l2"] == 50.0
    assert bad_trial.state == optuna.trial.TrialState.PRUNED
    assert summary.n_pruned >= 1


def test_each_trial_is_a_nested_mlflow_run_under_one_parent(tmp_path, problem):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings = _settings(trials=3)
    study = open_study(settings, "demo", default_storage(uri))
    assert (tmp_path / "optuna.db").exists()
    with MlflowTrialLogger(uri, "tuning-test", "tune-demo", params={"trials": 3}) as log:
        run_study(study, problem, settings, callbacks=[log])
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("tuning-test")
    parent = client.get_run(log.parent_run_id_)
    assert parent.info.status == "FINISHED" and parent.data.params["trials"] == "3"
    children = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{log.parent_run_id_}'"
    )
    assert len(children) == 3
    assert {c.data.tags["optuna.trial"] for c in children} == {"0", "1", "2"}
    for child in children:
        trial = study.trials[int(child.data.tags["optuna.trial"])]
        assert child.data.tags["state"] == trial.state.name
        assert float(child.data.params["learning_rate"]) == pytest.approx(
            trial.params["learning_rate"]
        )
        if trial.value is not None:
            assert child.data.metrics["value"] == pytest.approx(trial.value)


def test_tune_trains_the_final_model_with_the_best_params(tmp_path, dataset, config):
    storage = f"sqlite:///{tmp_path / 'o.db'}"
    result = tune(dataset, config, _settings(trials=3), storage=storage)
    assert result.summary.storage == storage
    for name, value in result.summary.best_params.items():
        assert result.tuned.params[name] == value
    assert result.default.params["learning_rate"] == 0.03  # the default model is untouched
    p = result.tuned.model.predict_proba(result.tuned.X_test)
    assert p.shape == (len(result.tuned.y),) and np.all((p >= 0) & (p <= 1))
    assert result.tuned.metrics["model"]["roc_auc"] > 0.7
    assert result.gain["roc_auc"] == pytest.approx(
        result.tuned.metrics["model"]["roc_auc"] - result.default.metrics["model"]["roc_auc"]
    )
    # the search never saw the test fold: both models are graded on the same leads
    assert np.array_equal(result.tuned.lead_id, result.default.lead_id)
    low, high = result.roc_auc_gain_interval
    assert low <= result.gain["roc_auc"] <= high


@pytest.mark.parametrize(
    ("objective", "direction", "metric"),
    [
        ("log_loss", "minimize", "binary_logloss"),
        ("roc_auc", "maximize", "auc"),
        ("pr_auc", "maximize", "average_precision"),
    ],
)
def test_the_objective_sets_the_direction(tmp_path, problem, objective, direction, metric):
    settings = _settings(trials=3, objective=objective)
    assert (settings.direction, settings.lgb_metric) == (direction, metric)
    study = open_study(settings, "demo", f"sqlite:///{tmp_path / 'optuna.db'}")
    assert study.direction.name.lower() == direction
    summary = run_study(study, problem, settings)
    values = [t.value for t in study.trials if t.value is not None]
    assert summary.best_value == (max(values) if direction == "maximize" else min(values))
    if objective != "log_loss":
        assert 0.5 < summary.best_value <= 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"trials": -1}, "--trials"),
        ({"timeout": -1.0}, "--timeout"),
        ({"objective": "accuracy"}, "unknown tuning objective"),
        ({"study_name": " "}, "--study-name"),
        ({"report_rounds": 0}, "report_rounds"),
    ],
)
def test_bad_settings_are_one_line_errors(kwargs, match):
    with pytest.raises(SpecError, match=match) as err:
        TuneSettings(**kwargs)
    assert "\n" not in str(err.value)


def test_default_storage_sits_beside_the_mlflow_store(tmp_path):
    assert default_storage(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}") == (
        f"sqlite:///{tmp_path / 'runs' / 'optuna.db'}"
    )
    assert default_storage("http://mlflow:5000", cwd=tmp_path) == (
        f"sqlite:///{tmp_path.resolve() / 'optuna.db'}"
    )


def test_a_param_fixed_in_the_config_is_not_searched_and_the_final_model_keeps_it(
    tmp_path, dataset, caplog
):
    config = parse_config(_fixing(num_leaves=5))
    storage = f"sqlite:///{tmp_path / 'o.db'}"
    with caplog.at_level(logging.INFO, logger="leadscore.tuning"):
        result = tune(dataset, config, _settings(trials=3), storage=storage)
    study = optuna.load_study(study_name="leadscore-demo", storage=storage)
    searched = set(search_space(len(dataset.y))) - {"num_leaves"}
    for trial in study.trials:  # the others are still tuned
        assert set(trial.params) == searched, trial.params
    assert result.tuned.params["num_leaves"] == 5
    assert result.summary.fixed_params == {"num_leaves": 5}
    assert "num_leaves" not in result.summary.best_params
    notes = [r.getMessage() for r in caplog.records if "not tuned" in r.getMessage()]
    assert notes == ["fixed by lightgbm.params of the config, not tuned: num_leaves=5"]
    assert "fixed by the config, not tuned: num_leaves=5" in tune_command.format_comparison(result)
    # the same config reuses the study: --trials 0 trains with its best trial
    again = tune(dataset, config, _settings(trials=0), storage=storage)
    assert (again.summary.n_trials, again.summary.new_trials) == (3, 0)
    assert again.summary.best_params == result.summary.best_params
    assert again.tuned.params["num_leaves"] == 5


def test_a_study_is_only_reused_with_the_config_its_trials_ran_with(tmp_path, dataset):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    base = parse_config(FAST)
    record = study_config(base, dataset)
    open_study(_settings(trials=1), "demo", storage, record)

    def reuse(overrides: dict) -> None:
        config = study_config(base.with_overrides(overrides), dataset)
        open_study(_settings(trials=0), "demo", storage, config)

    # what never changes a trial's score is not held against the study
    reuse({"lightgbm.params": {"num_threads": 4}})
    reuse({"calibration.method": "isotonic", "evaluation.resamples": 20})
    with pytest.raises(SpecError) as err:
        reuse({"lightgbm.params": {"num_threads": 1, "num_leaves": 5}})
    assert str(err.value) == (
        f"study 'leadscore-demo' in {storage} ran its trials with another config: "
        "lightgbm.params.num_leaves: 5 now, unset in the study. Use a new --study-name, or "
        "the same config as before."
    )
    with pytest.raises(SpecError, match=r"folds.valid_size: 0.3 now, 0.2 in the study; seed"):
        reuse({"folds.valid_size": 0.3, "seed": 1})
    stored = optuna.load_study(study_name="leadscore-demo", storage=storage)
    assert stored.user_attrs["config"] == record  # a refused study is left as it was


def test_a_study_is_not_continued_on_another_extract(tmp_path, dataset):
    """A monthly re-tune under the default study name: trials scored on last month's valid
    fold would be ranked against this month's, and the final model take the parameters of
    the easier fold. Another extract of the data is refused; the same data passes."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    config = parse_config(FAST)
    older = dataset.subset(np.arange(len(dataset.y) * 4 // 5))
    open_study(_settings(trials=1), "demo", storage, study_config(config, older))
    open_study(_settings(trials=0), "demo", storage, study_config(config, older))
    with pytest.raises(SpecError) as err:
        open_study(_settings(trials=0), "demo", storage, study_config(config, dataset))
    assert "ran its trials on other data" in str(err.value)
    assert "Use a new --study-name for this extract" in str(err.value)


def test_a_study_from_before_configs_were_recorded_is_reused_with_a_warning(
    tmp_path, dataset, caplog
):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    old = open_study(_settings(trials=1), "demo", storage)  # no config: as before the record
    leaves = optuna.distributions.IntDistribution(3, 31, log=True)
    old.add_trial(
        optuna.trial.create_trial(
            params={"num_leaves": 3}, distributions={"num_leaves": leaves}, value=0.5
        )
    )
    config = parse_config(_fixing(num_leaves=5))
    problem = prepare_problem(dataset, config)
    settings = _settings(trials=0)
    with caplog.at_level(logging.WARNING, logger="leadscore.tuning"):
        study = open_study(settings, "demo", storage, problem.config)
    assert "holds 1 trial(s) from before studies recorded their config" in caplog.text
    assert study.user_attrs["config"] == problem.config  # checked from now on
    # the old trial searched num_leaves, but the config fixes it: the config wins
    summary = run_study(study, problem, settings)
    assert summary.best_params == {} and summary.fixed_params == {"num_leaves": 5}
    assert summary.final_params() == {"metric": "binary_logloss"}
    with pytest.raises(SpecError, match="ran its trials with another config"):
        open_study(settings, "demo", storage, study_config(parse_config(FAST), dataset))


# --------------------------------------------------------------------------- the command


def _write_spec(tmp_path: Path, n: int = 1500) -> Path:
    frame, p = _frame(n, 0)
    spec = write_flat_spec(tmp_path, frame, np.random.default_rng(1).random(n) < p)
    (tmp_path / "fast.yaml").write_text(yaml.safe_dump(FAST))
    return spec


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="leadscore")
    tune_command.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["tune", *argv])


def _main(argv: list[str]) -> int:
    args = _args(argv)
    try:
        return args.func(args)
    except LeadscoreError:
        return 2


@pytest.mark.slow
def test_tune_command_logs_nested_runs_and_reports_the_gain(tmp_path, capsys, monkeypatch, caplog):
    from mlflow import MlflowClient

    from leadscore.model import LeadScoringModel

    spec = _write_spec(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    (tmp_path / "mlruns").mkdir()
    out = tmp_path / "tune.json"
    argv = ["--spec", str(spec), "--config", str(tmp_path / "fast.yaml"), "--trials", "3"]
    argv += ["--tracking-uri", uri, "--metrics-out", str(out), "--no-progress"]
    monkeypatch.chdir(tmp_path)
    with caplog.at_level("INFO", logger="leadscore.tuning"):
        assert _main(argv) == 0
    printed = capsys.readouterr().out
    # without a bar, each trial of three is a line in the log, the last with the best
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("tuning: ")]
    assert [line.split(" trials done")[0] for line in lines] == [
        "tuning: 1 of 3",
        "tuning: 2 of 3",
        "tuning: 3 of 3",
    ]
    assert re.search(r"best valid log_loss 0\.\d{4} \(trial \d\)$", lines[-1]), lines[-1]
    # saved where train saves, so that models/<data set>/ holds the newest model
    assert "model saved to models/demo (the newest model)" in printed
    saved = LeadScoringModel.load(tmp_path / "models" / "demo").stages.to_dict()
    tuned_thresholds = json.loads(out.read_text())["tuned_metrics"]["thresholds"]
    assert (saved["mql_threshold_"], saved["sql_threshold_"]) == (
        tuned_thresholds["mql"],
        tuned_thresholds["sql"],
    )
    assert "tuned" in printed and "default" in printed and "gain" in printed
    data = json.loads(out.read_text())
    assert data["study"]["n_trials"] == 3 and data["study"]["study_name"] == "leadscore-demo"
    assert data["gain"]["roc_auc"] == pytest.approx(
        data["tuned"]["roc_auc"] - data["default"]["roc_auc"]
    )
    low, high = data["roc_auc_gain_interval"]
    assert low <= data["gain"]["roc_auc"] <= high
    assert f"{low:+.3f} to {high:+.3f}" in printed
    assert (tmp_path / "mlruns" / "optuna.db").exists()  # beside the MLflow store
    storage = f"sqlite:///{(tmp_path / 'mlruns').resolve() / 'optuna.db'}"
    assert data["study"]["storage"] == storage
    client = MlflowClient(tracking_uri=uri)
    final = client.get_run(data["run_id"])
    assert final.data.tags["mlflow.parentRunId"] == data["parent_run_id"]
    assert final.data.params["lgbm.learning_rate"] == str(
        data["study"]["best_params"]["learning_rate"]
    )
    parent = client.get_run(data["parent_run_id"])
    assert parent.data.metrics["tuned_test_roc_auc"] == pytest.approx(data["tuned"]["roc_auc"])
    logged = json.loads(
        Path(client.download_artifacts(parent.info.run_id, "tuning.json")).read_text()
    )
    assert logged["study"]["storage"] == storage
    # a second call continues the same study
    assert _main([*argv, "--trials", "2", "--no-mlflow"]) == 0
    assert json.loads(out.read_text())["study"]["n_trials"] == 5
    # --trials 0 trains with the stored best trial and searches no more
    assert _main([*argv, "--trials", "0", "--no-mlflow"]) == 0
    again = json.loads(out.read_text())["study"]
    assert (again["n_trials"], again["new_trials"]) == (5, 0)
    # ... but a study that does not exist has no best trial: refused, and none is created
    assert _main([*argv, "--trials", "0", "--study-name", "fresh", "--no-mlflow"]) == 2
    assert optuna.study.get_all_study_names(storage) == ["leadscore-demo"]


def test_the_command_refuses_a_study_run_with_other_fixed_params_before_any_mlflow_run(
    tmp_path,
):
    from leadscore.datasets import load_dataset

    spec = _write_spec(tmp_path)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    record = study_config(parse_config(FAST), load_dataset(spec))  # the command's data
    open_study(_settings(trials=1), "demo", storage, record)
    (tmp_path / "fixed.yaml").write_text(yaml.safe_dump(_fixing(num_leaves=5)))
    mlflow_db = tmp_path / "mlflow.db"
    argv = ["--spec", str(spec), "--config", str(tmp_path / "fixed.yaml"), "--storage", storage]
    argv += ["--tracking-uri", f"sqlite:///{mlflow_db}", "--no-progress"]
    for trials in ("0", "2"):  # neither reused for its best trial nor continued
        args = _args([*argv, "--trials", trials])
        with pytest.raises(SpecError, match=r"lightgbm.params.num_leaves: 5 now, unset in"):
            args.func(args)
    assert not mlflow_db.exists()  # refused before an MLflow run was opened
    stored = optuna.load_study(study_name="leadscore-demo", storage=storage)
    assert (len(stored.trials), stored.user_attrs["config"]) == (0, record)


def test_the_command_refuses_a_config_train_refuses_before_any_study_or_mlflow_run(tmp_path):
    """The review's reproduction, through the command: no study, no storage, no MLflow."""
    spec = _write_spec(tmp_path)
    (tmp_path / "c4.yaml").write_text(yaml.safe_dump(_fixing(num_leaves=-3)))
    storage = tmp_path / "opt.db"
    mlflow_db = tmp_path / "mlflow.db"
    argv = ["--spec", str(spec), "--config", str(tmp_path / "c4.yaml"), "--trials", "2"]
    argv += ["--storage", f"sqlite:///{storage}", "--tracking-uri", f"sqlite:///{mlflow_db}"]
    args = _args([*argv, "--no-progress"])
    with pytest.raises(SpecError, match=r"^lightgbm\.params\.num_leaves: LightGBM rejects"):
        args.func(args)
    assert not storage.exists() and not mlflow_db.exists()


def test_tune_command_rejects_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _main(["--spec", "x", "--trials", "-2"])
    assert "expected a whole number of at least 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _main(["--spec", "x", "--objective", "accuracy"])


def test_a_bad_storage_is_a_one_line_error_without_the_password(tmp_path):
    with pytest.raises(SpecError, match=r"cannot open Optuna storage 'bogus://u:\*\*\*@x'") as err:
        open_study(_settings(), "demo", "bogus://u:secret@x")
    assert "secret" not in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(SpecError, match="unable to open database file"):
        open_study(_settings(), "demo", f"sqlite:///{tmp_path / 'missing' / 'dir' / 'o.db'}")
