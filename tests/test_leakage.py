"""The suspected-leakage guard."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadscore.datasets import prepare_flat_dataset, read_flat_table
from leadscore.errors import DataError
from leadscore.leakage import find_leakage_suspects, leakage_error, univariate_auc
from leadscore.specs import load_spec


@pytest.fixture
def frame() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(3)
    n = 2000
    y = rng.binomial(1, 0.3, n)
    X = pd.DataFrame(
        {
            "visits": rng.poisson(3 + 2 * y).astype(float),
            "page": pd.Categorical(rng.integers(0, 400, n).astype(str)),
            "sales_grade": pd.Categorical(np.where(rng.random(n) < 0.95, y, 1 - y).astype(str)),
            "deal_size": np.where(y == 1, rng.normal(100, 10, n), np.nan),
        }
    )
    return X, y


def test_leaky_features_are_flagged_and_honest_ones_are_not(frame):
    X, y = frame
    suspects = {s.feature: s for s in find_leakage_suspects(X, y)}
    assert set(suspects) == {"sales_grade", "deal_size"}
    assert suspects["sales_grade"].roc_auc > 0.9
    assert "won leads only" in suspects["deal_size"].reason


def test_high_cardinality_category_is_not_mistaken_for_leakage(frame):
    X, y = frame
    assert univariate_auc(X["page"], y) < 0.6


def test_allowed_features_are_not_reported(frame):
    X, y = frame
    suspects = find_leakage_suspects(X, y, allow=["sales_grade", "deal_size"])
    assert suspects == []


def test_threshold_is_respected(frame):
    X, y = frame
    auc = univariate_auc(X["visits"], y)
    assert [s.feature for s in find_leakage_suspects(X[["visits"]], y, auc_threshold=auc - 0.01)]
    assert not find_leakage_suspects(X[["visits"]], y, auc_threshold=auc + 0.01)


def test_error_names_features_and_fix(frame):
    X, y = frame
    message = str(leakage_error(find_leakage_suspects(X, y)))
    assert "'sales_grade'" in message and "allow_leakage" in message and "\n" not in message
    assert "leakage.allow" in message  # event data has no spec: the config allows


def test_one_class_is_an_error(frame):
    X, _ = frame
    with pytest.raises(DataError, match="one class only"):
        find_leakage_suspects(X, np.zeros(len(X), dtype=int))


def test_x_education_tags_are_caught_when_not_excluded(shared_data_root):
    spec = load_spec("x_education", data_root=shared_data_root)
    leaky = spec.model_copy(update={"exclude": {}})
    data = prepare_flat_dataset(read_flat_table(leaky), leaky)
    names = {s.feature for s in find_leakage_suspects(data.X, data.y)}
    assert "Tags" in names
    honest = prepare_flat_dataset(read_flat_table(spec), spec)
    assert find_leakage_suspects(honest.X, honest.y) == []
