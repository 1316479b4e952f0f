"""Fixtures shared by the test modules."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from leadscore.specs import default_data_root


@pytest.fixture(scope="session")
def shared_data_root() -> Path:
    """The shared real data sets; tests that need them skip where they are absent."""
    root = default_data_root()
    if root is None or not (root / "x_education" / "leads.csv").exists():
        pytest.skip("../shared/data is not beside this checkout (real data sets absent)")
    return root


@pytest.fixture
def event_frames() -> dict[str, pd.DataFrame]:
    """A three-lead event-form data set that satisfies the contract."""
    leads = pd.DataFrame(
        {
            "lead_id": ["a", "b", "c"],
            "created_at": ["2024-01-01", "2024-01-05", "2024-02-01"],
            "source": ["organic", "paid_search", "referral"],
            "job_title": ["VP Marketing", "Student", "Data Engineer"],
        }
    )
    activities = pd.DataFrame(
        {
            "lead_id": ["a", "a", "b", "c"],
            "occurred_at": ["2024-01-02", "2024-01-03T10:00:00", "2024-01-06", "2024-02-02"],
            "activity_type": ["page_view", "form_fill", "email_open", "chat"],
            "detail": ["pricing", "demo_request", None, None],
            "value": [None, None, None, 4],
        }
    )
    outcomes = pd.DataFrame(
        {
            "lead_id": ["a", "b"],
            "outcome": ["won", "lost"],
            "closed_at": ["2024-02-01", "2024-03-01"],
        }
    )
    return {"leads": leads, "activities": activities, "outcomes": outcomes}


@pytest.fixture
def flat_frame() -> pd.DataFrame:
    """A small flat lead table with a label, a time proxy, a leaky column and a missing token."""
    n = 60
    return pd.DataFrame(
        {
            "id": [f"p{i}" for i in range(n)],
            "seq": list(range(n)),
            "visits": [i % 7 for i in range(n)],
            "source": ["ads", "organic", "Select"] * (n // 3),
            "tags": ["called", "ringing"] * (n // 2),
            "converted": [1 if i % 3 == 0 else 0 for i in range(n)],
        }
    )


@pytest.fixture
def flat_project(tmp_path: Path) -> Path:
    """A 1,500-lead flat data set, its spec and a quick training config, in ``tmp_path``."""
    import numpy as np
    import yaml

    rng = np.random.default_rng(0)
    n = 1500
    visits = rng.poisson(4, n)
    source = rng.choice(["google", "direct", "referral"], n)
    won = rng.random(n) < 1 / (1 + np.exp(1.5 - 0.3 * visits - (source == "referral")))
    pd.DataFrame(
        {
            "id": [f"A{i:05d}" for i in range(n)],
            "created": pd.date_range("2023-01-01", periods=n, freq="4h").strftime("%Y-%m-%d"),
            "status": np.where(won, "won", "lost"),
            "visits": visits,
            "source": source,
        }
    ).to_csv(tmp_path / "leads.csv", index=False)
    spec = {
        "name": "acme",
        "source": "leads.csv",
        "id": "id",
        "label": {"column": "status", "won": ["won"], "lost": ["lost"]},
        "order_by": "created",
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    config = {
        "cold_start": {"min_wins": 0, "min_leads": 0},
        "quality_gate": {"allow_worse": True},
        "evaluation": {"resamples": 0},
        "lightgbm": {"num_boost_round": 40, "early_stopping_rounds": 10},
    }
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(config))
    return tmp_path
