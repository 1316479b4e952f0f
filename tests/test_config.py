"""Training config: values that would train a model that is not what the config promises are
refused when the config is read, with one line naming the key and the fix."""

from __future__ import annotations

import copy
import json
import pickle

import pytest
from pydantic import ValidationError

from leadscore.config import PROBABILITY_OBJECTIVES, load_config, parse_config
from leadscore.errors import SpecError


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"objective": "regression"}, "lightgbm.params.objective"),
        ({"objective": "multiclass"}, "lightgbm.params.objective"),
        ({"objective": "cross_entropy_lambda"}, "lightgbm.params.objective"),
        ({"objective": " binary"}, "lightgbm.params.objective"),
        ({"application": "lambdarank"}, "lightgbm.params.application"),
    ],
)
def test_an_objective_that_predicts_no_probability_is_refused(params: dict, where: str) -> None:
    """A regression or ranking booster's raw scores are no log-odds: calibration, stages and
    reasons would ship numbers called probabilities that are not."""
    with pytest.raises(SpecError, match=f"^config: {where}: .* does not predict a probability"):
        parse_config({"lightgbm": {"params": params}})


@pytest.mark.parametrize("objective", [*PROBABILITY_OBJECTIVES, "Binary"])
def test_log_loss_objectives_are_accepted(objective: str) -> None:
    config = parse_config({"lightgbm": {"params": {"objective": objective}}})
    assert config.lightgbm.params == {"objective": objective}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"metric": "auc"}, r"lightgbm\.params\.metric: would change when early stopping stops"),
        ({"metrics": ["binary_logloss", "auc"]}, r"lightgbm\.params\.metrics: would change"),
        ({"sigmoid": 2.0}, r"lightgbm\.params\.sigmoid: rescales the raw scores"),
    ],
)
def test_parameters_that_change_early_stopping_or_the_score_scale_are_refused(
    params: dict, message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        parse_config({"lightgbm": {"params": params}})
    assert parse_config({"lightgbm": {"params": {"sigmoid": 1.0}}}).lightgbm.params == {
        "sigmoid": 1.0
    }


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bad name/with slash", "holds '/'"),
        ("team:leads", "holds ':'"),
        ("100%", "holds '%'"),
        ("  ", "blank"),
        ("..", "folder path"),
        ("..hidden", "folder path"),
    ],
)
def test_a_registered_model_name_mlflow_refuses_stops_at_config_load(
    name: str, message: str
) -> None:
    """MLflow would refuse the name only after a full training, blaming the tracking URI."""
    with pytest.raises(SpecError, match=f"^config: mlflow.registered_model: .*{message}"):
        parse_config({"mlflow": {"registered_model": name}})
    with pytest.raises(SpecError, match=r"mlflow\.registered_model"):
        parse_config(None).with_overrides({"mlflow.registered_model": name})


@pytest.mark.parametrize(
    ("section", "where"),
    [
        (
            {"stages": {"sql": {"policy": "sales_capacity", "target": float("nan")}}},
            "stages.sql.target",
        ),
        (
            {"stages": {"sql": {"policy": "sales_capacity", "target": float("inf")}}},
            "stages.sql.target",
        ),
        ({"stages": {"period_days": float("inf")}}, "stages.period_days"),
        (
            {
                "stages": {
                    "deal_value": float("nan"),
                    "contact_cost": 1,
                    "sql": {"policy": "expected_value"},
                }
            },
            "stages.deal_value",
        ),
        ({"folds": {"test_size": float("nan")}}, "folds.test_size"),
    ],
)
def test_a_number_that_is_not_finite_stops_at_config_load(section: dict, where: str) -> None:
    """``.nan`` and ``.inf`` are YAML numbers that every ``<= 0`` check lets through: a NaN
    capacity trained to the end and then crashed, a NaN deal value sent nobody to sales."""
    with pytest.raises(SpecError, match=f"^config: {where}: .*finite"):
        parse_config(section)


@pytest.mark.parametrize("name", ["leadscore", "Lead Scoring v2.1", "crm_leads-EU", None])
def test_registered_model_names_mlflow_takes_are_accepted(name: str | None) -> None:
    assert parse_config({"mlflow": {"registered_model": name}}).mlflow.registered_model == name


def test_the_config_is_frozen_all_the_way_down() -> None:
    config = parse_config(
        {
            "lightgbm": {"params": {"num_leaves": 5}},
            "rule_points": {"crm": [{"feature": "visits", "at_least": 3, "points": 5}]},
        }
    )
    with pytest.raises(TypeError):
        config.lightgbm.params["num_leaves"] = 63  # type: ignore[index]
    with pytest.raises(TypeError):
        config.rule_points["crm"] = ()  # type: ignore[index]
    with pytest.raises(ValidationError):
        config.seed = 3  # type: ignore[misc]
    assert config.lightgbm.params == {"num_leaves": 5}


def test_equal_configs_hash_alike_and_key_a_cache() -> None:
    """A frozen config keys a cache or a set: hash() had raised on its read-only mappings."""
    first = parse_config({"lightgbm": {"params": {"num_leaves": 5, "lambda_l2": 1}}})
    again = parse_config({"lightgbm": {"params": {"lambda_l2": 1.0, "num_leaves": 5}}})
    other = first.with_overrides({"lightgbm.params.num_leaves": 7})
    assert first == again and hash(first) == hash(again)
    assert other != first
    assert len({first, again, other}) == 2
    assert hash(parse_config({})) == hash(parse_config({}))


def test_a_config_survives_copies_and_its_own_dump() -> None:
    config = parse_config({"lightgbm": {"params": {"num_leaves": 5}}, "seed": 3})
    assert copy.deepcopy(config) == config
    assert pickle.loads(pickle.dumps(config)) == config
    dumped = config.model_dump(mode="json")
    assert dumped["lightgbm"]["params"] == {"num_leaves": 5}
    assert parse_config(json.loads(json.dumps(dumped))) == config
    assert config.with_overrides({"seed": 4}).lightgbm.params == {"num_leaves": 5}


def test_a_missing_config_file_points_to_the_defaults_not_to_a_repository_path(tmp_path) -> None:
    """Outside leadscore's repository there is no configs/train.yaml to point to: the fix is
    to check the path or leave --config out."""
    with pytest.raises(SpecError) as caught:
        load_config(tmp_path / "nope.yaml")
    message = str(caught.value)
    assert "nope.yaml does not exist" in message and "leave --config out" in message


def test_an_override_may_add_a_key_inside_lightgbm_params_and_keeps_the_others() -> None:
    """``lightgbm.params`` holds LightGBM's own keys: an override adds one without dropping
    the YAML's others, and a misspelt one is still named."""
    config = parse_config({"lightgbm": {"params": {"min_data_in_leaf": 40}}})
    changed = config.with_overrides({"lightgbm.params.num_leaves": 15})
    assert dict(changed.lightgbm.params) == {"min_data_in_leaf": 40, "num_leaves": 15}
    assert dict(config.lightgbm.params) == {"min_data_in_leaf": 40}  # the original is frozen
    with pytest.raises(SpecError, match=r"num_leafs: not a LightGBM parameter .*num_leaves"):
        config.with_overrides({"lightgbm.params.num_leafs": 15})
    with pytest.raises(SpecError, match=r"unknown config key 'lightgbm\.paramz\.num_leaves'"):
        config.with_overrides({"lightgbm.paramz.num_leaves": 15})
    with pytest.raises(SpecError, match=r"unknown config key 'quality_gate\.allow_wrose'"):
        config.with_overrides({"quality_gate.allow_wrose": True})


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            "".join(
                [
                    'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n',
                    *(f"a{n}: &a{n} [{','.join([f'*a{n - 1}'] * 9)}]\n" for n in range(1, 9)),
                ]
            ),
            ": its YAML aliases (*name) expand to more than 100,000 values.",
        ),
        ("seed: 7\n# Région\n".encode("cp1252"), " is not UTF-8 text: line 2 has the byte 0xE9."),
        ("x: " + "[" * 1_000 + "]" * 1_000 + "\n", " nests lists or keys too deep for the YAML"),
    ],
)
def test_a_config_file_yaml_cannot_read_is_one_line(tmp_path, content, problem) -> None:
    """A config not in UTF-8 or nested 1,000 deep was a traceback, and an alias bomb took
    seconds and gigabytes to be refused: each is one line naming the file."""
    path = tmp_path / "train.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}{problem}") and "\n" not in message, message


def test_a_config_key_written_twice_is_refused(tmp_path) -> None:
    """``test_size`` written twice trained with the second value, without a word."""
    path = tmp_path / "train.yaml"
    path.write_text("folds:\n  test_size: 0.2\n  test_size: 0.5\n", encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_config(path)
    assert str(caught.value).startswith(
        f"{path}: the key 'test_size' is written twice in one block (lines 2 and 3)"
    )
