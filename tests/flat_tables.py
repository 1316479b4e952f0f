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


def train_status_model(
    folder: Path, source: str, *, table: str | None = None, rounds: int = 20
) -> Path:
    """Write ``spec.yaml`` for a CRM table (``id``, a ``created`` date to order by, a
    ``status`` of won or lost) and a quick ``train.yaml`` into ``folder``, train the model
    through the CLI as a user would, and return its folder (``folder / "model"``)."""
    from leadscore.cli import main

    spec: dict[str, object] = {"name": "acme", "source": source, "id": "id"}
    if table is not None:
        spec["table"] = table
    spec["label"] = {"column": "status", "won": ["won"], "lost": ["lost"]}
    spec["order_by"] = "created"
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    config = {
        "cold_start": {"min_wins": 0, "min_leads": 0},
        "quality_gate": {"allow_worse": True},
        "evaluation": {"resamples": 0},
        "lightgbm": {"num_boost_round": rounds, "early_stopping_rounds": 5},
    }
    (folder / "train.yaml").write_text(yaml.safe_dump(config))
    argv = ["train", "--spec", str(folder / "spec.yaml"), "--config", str(folder / "train.yaml")]
    assert main([*argv, "--no-mlflow", "--model-out", str(folder / "model")]) == 0
    return folder / "model"
