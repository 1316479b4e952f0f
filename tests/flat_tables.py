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
