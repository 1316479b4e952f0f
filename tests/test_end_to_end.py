"""`make run`'s steps through the CLI on small synthetic data: synth, train, score, report."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from leadscore.cli import main
from leadscore.config import TrainConfig
from leadscore.features import build_event_examples
from leadscore.io import load_closed_loop
from leadscore.sinks import read_history, read_scored_leads
from leadscore.tracking import dataset_fingerprint


@pytest.mark.slow
def test_make_run_steps(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # mlflow.db, mlruns/, models/ and data/ land here
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert (
        main(
            ["synth", "--leads", "4000", "--out", "data/synthetic", "--seed", "7", "--no-progress"]
        )
        == 0
    )
    assert main(["train", "--data", "data/synthetic", "--metrics-out", "metrics.json"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["run_id"] and metrics["model"]["roc_auc"] > 0.7
    assert (tmp_path / "mlflow.db").exists() and (tmp_path / "models" / "synthetic").is_dir()
    assert "now the registry's champion" in capsys.readouterr().out
    # the notebooks hash the examples with the same function, so their runs compare with these
    run = MlflowClient(tracking_uri="sqlite:///mlflow.db").get_run(metrics["run_id"])
    examples = build_event_examples(
        load_closed_loop("data/synthetic"), TrainConfig().events, name="synthetic"
    )
    assert run.data.tags["data_hash"] == dataset_fingerprint(examples)

    target = "data/scored_leads.duckdb"
    assert (
        main(
            [
                "score",
                "--data",
                "data/synthetic",
                "--model",
                "models:/leadscore-synthetic@champion",
                "--as-of",
                "2026-06-30",
                "--target",
                target,
                "--no-progress",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "report",
                "channels",
                "--data",
                "data/synthetic",
                "--by",
                "source",
                "--target",
                target,
                "--out",
                "data/channel_report.csv",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    latest = read_scored_leads(target)
    assert f"scored {len(latest):,} leads" in out and "with leadscore-synthetic v1" in out
    assert (latest["model_name"] == "leadscore-synthetic").all()
    assert (latest["model_version"] == "1").all()
    assert "cost_per_mql" in (tmp_path / "data" / "channel_report.csv").read_text()

    # a later rescoring appends history and records stage moves
    assert (
        main(
            [
                "score",
                "--data",
                "data/synthetic",
                "--model",
                "models:/leadscore-synthetic/1",
                "--as-of",
                "2026-06-30T12:00",
                "--target",
                target,
                "--no-progress",
            ]
        )
        == 0
    )
    moved = int(read_scored_leads(target)["stage_changed"].sum())
    assert f"; {moved:,} moved since their previous scoring" in capsys.readouterr().out
    history = read_history(target)
    assert len(history) == 2 * len(latest)
    assert read_scored_leads(target)["previous_stage"].notna().all()
