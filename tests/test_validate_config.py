"""``leadscore validate --config``: what validate passes, train does not refuse.

The review's configs: ``validate`` printed ok for a LightGBM value LightGBM refuses (c4), a
monotone constraint on a categorical feature (c18) and a points table on a feature the data
lacks (c23), all of which ``train`` refused; and a ``rule_points.default`` of the user's
that the data did not fit (c16) was set aside in silence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from flat_tables import write_flat_spec
from leadscore.cli import main
from leadscore.config import load_config
from leadscore.datasets import load_dataset
from leadscore.errors import SpecError
from leadscore.training import check_config

RULE = {"feature": "nonexistent_feature", "at_least": 1, "points": 5}


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("flat")
    rng = np.random.default_rng(0)
    n = 1500
    minutes = rng.exponential(8, n).round(2)
    origin = rng.choice(["form", "chat", "import"], n, p=[0.5, 0.3, 0.2])
    logit = -1.2 + 2.0 * (minutes > 10) + 0.8 * (origin == "form")
    won = rng.random(n) < 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame({"minutes": minutes, "visits": rng.poisson(3, n), "origin": origin})
    return write_flat_spec(folder, frame, won)


def _validate(
    spec: Path, tmp_path: Path, config: dict, capfd: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    code = main(["validate", "--spec", str(spec), "--config", str(path)])
    out, err = capfd.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (  # c4
            {"lightgbm": {"params": {"num_leaves": -3}}},
            "lightgbm.params.num_leaves: LightGBM rejects the parameters: Check failed: "
            "(num_leaves) > (1). Fix the value in the training config",
        ),
        (  # c18
            {"lightgbm": {"monotone_increasing": ["origin"]}},
            "lightgbm.monotone_increasing: 'origin' matches only categorical features "
            "('origin') of demo, and monotone constraints apply to numeric features",
        ),
        (  # c23
            {"rule_points": {"demo": [RULE]}},
            "rule_points.demo names feature 'nonexistent_feature', which demo does not have. "
            "Fix the rule's feature name or drop the rule.",
        ),
        (  # a condition that can never fire on its feature
            {"rule_points": {"demo": [{"feature": "origin", "at_least": 2, "points": 5}]}},
            "rule_points rule on 'origin' uses at_least/below, but 'origin' is categorical",
        ),
        (  # c20: refused as the config is read
            {
                "stages": {
                    "mql": {"policy": "probability", "target": 0.3},
                    "sql": {"policy": "probability", "target": 0.1},
                }
            },
            "stages: mql.target 0.3 is above sql.target 0.1, both by probability",
        ),
    ],
    ids=["lightgbm-value", "monotone-categorical", "rule-feature", "rule-condition", "stages"],
)
def test_validate_refuses_a_config_train_refuses(
    spec: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    config: dict,
    message: str,
) -> None:
    code, out, err = _validate(spec, tmp_path, config, capfd)
    assert code == 2
    assert "ok: train would take" not in out
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], err
    assert "[LightGBM] [Fatal]" not in err  # LightGBM's own line, beside the error


def test_validate_warns_that_a_users_default_points_table_is_set_aside(
    spec: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _validate(spec, tmp_path, {"rule_points": {"default": [RULE]}}, capfd)
    assert code == 0, err
    assert (
        "rule_points.default names feature 'nonexistent_feature', which demo does not have, "
        "so the table is set aside and the rule points baseline derives its rules from the "
        "data; fix the names in rule_points.default, or give demo a table of its own under "
        "rule_points.demo"
    ) in err
    assert out.splitlines()[-1].endswith("read the 1 warning(s) above first")


def test_validate_and_train_share_the_config_check(spec: Path, tmp_path: Path) -> None:
    """One check, not two copies: the function validate calls is the one train starts with."""
    dataset = load_dataset(str(spec))
    path = tmp_path / "c4.yaml"
    path.write_text(yaml.safe_dump({"lightgbm": {"params": {"num_leaves": -3}}}))
    with pytest.raises(SpecError, match=r"^lightgbm\.params\.num_leaves"):
        check_config(dataset, load_config(path))
    assert check_config(dataset, load_config(None)).set_aside == ()
