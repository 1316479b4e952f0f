"""What leadscore leaves in MLflow and on the terminal: no passwords, the model's size, one
name per data set, no run left RUNNING when the process is told to stop."""

from __future__ import annotations

import base64
import contextlib
import http.server
import io
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from leadscore import cli, tracking, training
from leadscore.config import parse_config
from leadscore.io import event_data_name
from leadscore.schema import Feature, LabelledDataset

SECRET = "s3cretPW"


def _dataset(n: int = 800) -> LabelledDataset:
    """Leads over a few months whose chance of winning rises with their visits."""
    rng = np.random.default_rng(0)
    visits = rng.poisson(4, n).astype(float)
    y = rng.binomial(1, 1 / (1 + np.exp(2.5 - 0.4 * visits))).astype("int8")
    order = pd.Series(pd.date_range("2025-01-01", periods=n, freq="6h").astype("datetime64[us]"))
    return LabelledDataset(
        name="toy",
        X=pd.DataFrame({"visits": visits}),
        y=y,
        lead_id=pd.Series([f"L{i:05d}" for i in range(n)]),
        order=order,
        features=(Feature("visits", "engagement", "Website visits", "numeric"),),
    )


# --------------------------------------------------------------------------- A: passwords


def test_without_secrets_masks_every_url_password_in_a_config():
    data = {
        "mlflow": {"tracking_uri": f"postgresql+psycopg://pguser:{SECRET}@127.0.0.1:5477/mlf"},
        "sources": [f"https://alice:{SECRET}@mlflow.example.com", "leads.csv"],
        "source": f"postgresql://u@db/crm?sslmode=require&password={SECRET}",
        "seed": 3,
    }
    masked = tracking.without_secrets(data)
    assert SECRET not in json.dumps(masked)
    assert masked["mlflow"]["tracking_uri"] == "postgresql+psycopg://pguser:***@127.0.0.1:5477/mlf"
    assert masked["sources"] == ["https://alice:***@mlflow.example.com", "leads.csv"]
    assert masked["seed"] == 3
    assert SECRET in json.dumps(data)  # the caller's config is left as it was


@pytest.mark.slow
def test_a_logged_run_holds_no_password_and_the_model_size(tmp_path, caplog):
    """The config's tracking URI, a spec's database URL and the tracking URI in the log line
    are logged with their passwords masked (a ``?password=`` of an SQLite URL stands in for
    a server's, which this test cannot reach); the run's metrics and the metrics JSON hold
    the booster's size, which appeared nowhere before."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}?password={SECRET}"
    config = parse_config(
        {
            "cold_start": {"min_wins": 0, "min_leads": 0},
            "quality_gate": {"allow_worse": True},
            "evaluation": {"resamples": 0},
            "lightgbm": {"num_boost_round": 30, "early_stopping_rounds": 5},
            "mlflow": {"tracking_uri": uri},
        }
    )
    dataset = _dataset()
    result = training.train(dataset, config, params={"num_threads": 1})
    spec = {"name": "toy", "source": f"postgresql+psycopg://crm:{SECRET}@db/crm"}
    with (
        caplog.at_level(logging.INFO, logger="leadscore"),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        run_id = tracking.log_training_run(
            result,
            dataset_name="toy",
            spec=spec,
            config=config,
            data_hash=tracking.dataset_fingerprint(dataset),
            registered_model=None,
        )
    assert SECRET not in caplog.text
    assert f"logged run {run_id} to sqlite:///" in caplog.text
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.data.params["config.mlflow.tracking_uri"].endswith("?password=***")
    assert not [k for k, v in {**run.data.params, **run.data.tags}.items() if SECRET in v]
    local = Path(client.download_artifacts(run_id, "", str(tmp_path / "artifacts")))
    for name in ("config.json", "spec.yaml", "metrics.json"):
        assert SECRET not in (local / name).read_text(), name
    assert "crm:***@db/crm" in (local / "spec.yaml").read_text()
    assert run.data.metrics["best_iteration"] == result.best_iteration
    assert run.data.metrics["num_trees"] == result.num_trees
    # --metrics-out writes result.metrics as it is, and metrics.json is it too
    assert result.metrics["best_iteration"] == result.best_iteration
    assert result.metrics["num_trees"] == result.num_trees
    logged = json.loads((local / "metrics.json").read_text())
    assert (logged["best_iteration"], logged["num_trees"]) == (
        result.best_iteration,
        result.num_trees,
    )


# --------------------------------------------------------------------------- B: http login


@contextlib.contextmanager
def _health_server() -> Iterator[tuple[int, list[str | None]]]:
    """A tracking server stand-in on a free port: /health answers 200 to ``alice`` with
    ``SECRET`` (basic authentication), 401 to anyone else; the Authorization headers seen."""
    seen: list[str | None] = []
    wanted = "Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            ok = self.path == "/health" and seen[-1] == wanted
            self.send_response(200 if ok else 401)
            self.end_headers()
            self.wfile.write(b"OK" if ok else b"")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_tracking_server_url_with_a_login_passes_the_check(monkeypatch):
    """``http://user:password@host`` is how MLflow takes a login in the URI: the pre-check
    sends it as basic authentication instead of reading it as part of the host name."""
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with _health_server() as (port, seen):
        tracking.check_tracking_uri(f"http://alice:{SECRET}@127.0.0.1:{port}/")
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRET)
        tracking.check_tracking_uri(f"http://127.0.0.1:{port}")
    wanted = "Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()
    assert seen == [wanted, wanted]


# --------------------------------------------------------------------------- D: names


def test_a_folder_keeps_the_dots_of_its_name(tmp_path):
    """``acme.2026-05/`` and ``acme.v2/`` were both ``acme``: one registered model, one
    champion and one ``models/acme/`` for two data sets. Only a file's suffix is dropped."""
    from leadscore.commands.score import default_model_uri

    for name in ("acme.2026-05", "acme.v2", "crm_2026.06.30", "crm"):
        (tmp_path / name).mkdir()
        assert event_data_name(tmp_path / name) == name
        assert event_data_name(f"{tmp_path / name}/") == name
    assert default_model_uri(None, str(tmp_path / "acme.v2")) == (
        "models:/leadscore-acme.v2@champion"
    )
    (tmp_path / "crm.2026.duckdb").write_bytes(b"")
    assert event_data_name(tmp_path / "crm.2026.duckdb") == "crm.2026"
    assert event_data_name("missing/crm.duckdb") == "crm"
    assert event_data_name("missing/crm.sqlite3") == "crm"


# --------------------------------------------------------------------------- E: SIGTERM


def test_sigterm_raises_inside_the_block_and_the_old_handler_comes_back():
    def before(signum: int, frame: object) -> None:
        pass

    previous = signal.signal(signal.SIGTERM, before)
    try:
        with pytest.raises(cli.Terminated), cli.sigterm_unwinds() as state:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
        assert state.received
        assert signal.getsignal(signal.SIGTERM) is before
    finally:
        signal.signal(signal.SIGTERM, previous)


def _runs(db: Path) -> list[str]:
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=1)) as con:
            return [row[0] for row in con.execute("SELECT status FROM runs")]
    except sqlite3.Error:  # not created yet, or being migrated
        return []


@pytest.mark.slow
def test_sigterm_during_train_ends_the_mlflow_run_failed(flat_project: Path) -> None:
    """A scheduler stops a job with SIGTERM: the run ended FAILED, not RUNNING for ever, and
    train says so in one line and exits 143, as Ctrl-C gives FAILED and 130."""
    tmp_path = flat_project
    db = tmp_path / "mlflow.db"
    command = [sys.executable, "-m", "leadscore", "train", "--spec", "spec.yaml"]
    process = subprocess.Popen(
        [*command, "--config", "train.yaml", "--tracking-uri", f"sqlite:///{db}"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        # the run is open once its first artifact is written; reading the store while the
        # training writes to it would lock it ("database is locked")
        while not list((tmp_path / "mlruns").glob("*/*/artifacts")):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no run started"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, err  # 128 + SIGTERM, as a shell reports it
    assert err.strip().splitlines()[-1] == "leadscore train: terminated", err
    assert "Traceback" not in err
    assert _runs(db) == ["FAILED"]
