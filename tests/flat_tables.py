"""Writing a user's flat lead table and its spec, as the README tells a user to, for CLI tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml


def write_flat_spec(
    folder: Path, frame: pd.DataFrame, won: np.ndarray, *, missing_values: list[str] | None = None
) -> Path:
    """``frame`` with a lead id, an order and the ``won`` label as ``leads.csv``, and the spec
    ``demo.yaml`` that describes it; returns the spec's path."""
    n = len(frame)
    table = frame.copy()
    table.insert(0, "lead", [f"L{i}" for i in range(n)])
    table["seq"] = np.arange(n)
    table["won"] = np.asarray(won, dtype=int)
    table.to_csv(folder / "leads.csv", index=False)
    spec: dict[str, object] = {
        "name": "demo",
        "source": "leads.csv",
        "id": "lead",
        "label": {"column": "won", "won": [1], "lost": [0]},
        "order_by": "seq",
    }
    if missing_values:
        spec["missing_values"] = missing_values
    path = folder / "demo.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def status_leads(
    n: int, seed: int, prefix: str, *, status: object, open_rate: bool = False
) -> pd.DataFrame:
    """A CRM table of ``n`` leads as :func:`train_status_model` reads it: ``id`` (``prefix``
    and a number), a ``created`` date, ``status``, website ``visits``, a ``source`` and, with
    ``open_rate``, an e-mail open rate in percent points (0-100). ``status=None`` draws won
    or lost from the other columns (more visits, a referral, a higher rate win more); any
    other value is written as it is (``""``: today's open leads)."""
    rng = np.random.default_rng(seed)
    visits = rng.poisson(4, n)
    source = rng.choice(["google", "direct", "referral"], n)
    rate = rng.uniform(0, 100, n).round(1)
    columns: dict[str, object] = {"visits": visits, "source": source}
    logit = 1.5 - 0.3 * visits - (source == "referral")
    if open_rate:
        columns["open_rate"] = rate
        logit = logit - 0.04 * (rate - 50)
    if status is None:
        status = np.where(rng.random(n) < 1 / (1 + np.exp(logit)), "won", "lost")
    return pd.DataFrame(
        {
            "id": [f"{prefix}{i:05d}" for i in range(n)],
            "created": pd.date_range("2023-01-01", periods=n, freq="6h").strftime("%Y-%m-%d"),
            "status": status,
            **columns,
        }
    )


def train_flat_model(
    folder: Path, spec: dict[str, object], *, rounds: int = 20, args: tuple[str, ...] = ()
) -> Path:
    """Write ``spec`` as ``spec.yaml`` and a quick ``train.yaml`` into ``folder``, train the
    model through the CLI as a user would (``args`` added, ``--no-mlflow`` unless they name a
    tracking URI), and return its folder (``folder / "model"``)."""
    from leadscore.cli import main

    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    config = {
        "cold_start": {"min_wins": 0, "min_leads": 0},
        "quality_gate": {"allow_worse": True},
        "evaluation": {"resamples": 0},
        "lightgbm": {"num_boost_round": rounds, "early_stopping_rounds": 5},
    }
    (folder / "train.yaml").write_text(yaml.safe_dump(config))
    argv = ["train", "--spec", str(folder / "spec.yaml"), "--config", str(folder / "train.yaml")]
    mlflow = [] if "--tracking-uri" in args else ["--no-mlflow"]
    assert main([*argv, *args, *mlflow, "--model-out", str(folder / "model")]) == 0
    return folder / "model"


def train_status_model(
    folder: Path, source: str, *, table: str | None = None, rounds: int = 20
) -> Path:
    """Train on a CRM table (``id``, a ``created`` date to order by, a ``status`` of won or
    lost, as :func:`status_leads` writes it) through :func:`train_flat_model`."""
    spec: dict[str, object] = {"name": "acme", "source": source, "id": "id"}
    if table is not None:
        spec["table"] = table
    spec["label"] = {"column": "status", "won": ["won"], "lost": ["lost"]}
    spec["order_by"] = "created"
    return train_flat_model(folder, spec, rounds=rounds)
