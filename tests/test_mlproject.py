"""The MLflow project runs the package's entry points for real."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from leadscore.cli import parse_args

ROOT = Path(__file__).resolve().parents[1]


def test_every_entry_point_only_calls_the_cli():
    project = yaml.safe_load((ROOT / "MLproject").read_text())
    assert {"synth", "train", "tune", "score", "report"} <= set(project["entry_points"])
    for name, entry in project["entry_points"].items():
        assert entry["command"].startswith("python -m leadscore "), name
        used = {p.split("}")[0] for p in entry["command"].split("{")[1:]}
        assert used == set(entry["parameters"]), name


def test_empty_path_parameters_keep_the_cli_defaults():
    """An entry point run with its defaults parses as the CLI without those options."""
    project = yaml.safe_load((ROOT / "MLproject").read_text())
    checked = 0
    for name, entry in project["entry_points"].items():
        parameters = entry["parameters"]
        defaults = {k: shlex.quote(str(v.get("default", ""))) for k, v in parameters.items()}
        argv = shlex.split(entry["command"].format(**defaults))[3:]  # after python -m leadscore
        args = parse_args(argv)
        for key in ("model_out", "metrics_out", "data_root"):
            if key in parameters and parameters[key]["default"] == "":
                assert getattr(args, key) is None, (name, key)
                checked += 1
    assert checked >= 6


def test_score_entry_point_scores_with_the_data_sets_own_model_and_date(tmp_path):
    """``-P data=OTHER`` alone scores OTHER with its own champion at its own end: the entry
    point's ``model`` and ``as_of`` default to "" and parse as not given, not as the synthetic
    demo's model and date (which scored other data 150 days late, with the demo's model)."""
    from leadscore.commands.score import default_model_uri

    entry = yaml.safe_load((ROOT / "MLproject").read_text())["entry_points"]["score"]
    parameters = entry["parameters"]
    assert parameters["model"]["default"] == ""
    assert parameters["as_of"]["default"] == ""
    other = tmp_path / "other_crm"
    values = {k: shlex.quote(str(v.get("default", ""))) for k, v in parameters.items()}
    values["data"] = shlex.quote(str(other))
    args = parse_args(shlex.split(entry["command"].format(**values))[3:])
    assert args.model is None
    assert args.as_of is None
    assert default_model_uri(None, args.data) == "models:/leadscore-other_crm@champion"
    # a value given still reaches the CLI as given
    values.update(model="models:/leadscore-other_crm/3", as_of="2026-01-31")
    args = parse_args(shlex.split(entry["command"].format(**values))[3:])
    assert (args.model, args.as_of) == ("models:/leadscore-other_crm/3", "2026-01-31")


@pytest.mark.slow
def test_mlflow_run_trains_x_education(shared_data_root, tmp_path):
    mlflow = Path(sys.executable).with_name("mlflow")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    metrics = tmp_path / "metrics.json"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": store,
        # --env-manager local runs `python` from PATH: the active environment's, as when activated
        "PATH": f"{mlflow.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    done = subprocess.run(
        [
            str(mlflow),
            "run",
            str(ROOT),
            "-e",
            "train",
            "-P",
            "spec=x_education",
            "-P",
            f"data_root={shared_data_root}",
            "-P",
            f"model_out={tmp_path / 'model'}",
            "-P",
            f"metrics_out={metrics}",
            "--env-manager",
            "local",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(metrics.read_text())
    assert result["model"]["roc_auc"] > result["baselines"]["rule_points"]["roc_auc"]

    from mlflow import MlflowClient

    from leadscore import tracking
    from leadscore.datasets import load_dataset
    from leadscore.model import LeadScoringModel

    client = MlflowClient(tracking_uri=store)
    run = client.get_run(result["run_id"])
    assert run.data.metrics["test_roc_auc"] == pytest.approx(result["model"]["roc_auc"])
    assert run.data.tags.get("mlflow.project.entryPoint") == "train"
    assert client.get_experiment_by_name("leadscore") is None  # the project's experiment only
    # the folder written and the model logged are one model
    saved = LeadScoringModel.load(tmp_path / "model")
    logged = tracking.load_model(f"runs:/{result['run_id']}/model", tracking_uri=store)
    X = load_dataset("x_education", data_root=shared_data_root).X.head(500)
    np.testing.assert_array_equal(saved.predict_proba(X), logged.predict_proba(X))
