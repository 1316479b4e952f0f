"""The training configuration: one typed, frozen object, read once from YAML and the CLI.

``configs/train.yaml`` documents every key with its default; a config file only needs the keys
it changes. Unknown keys and wrong values stop with a one-line :class:`SpecError` naming the
key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import difflib
import functools
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from leadscore.baselines import PointsRule
from leadscore.calibration import CalibrationMethod
from leadscore.errors import SpecError
from leadscore.leakage import AUC_THRESHOLD
from leadscore.stages import StagePolicy
from leadscore.yaml_files import read_yaml_file

LIGHTGBM_PARAMETERS_URL = "https://lightgbm.readthedocs.io/en/latest/Parameters.html"

#: Event-form features whose value can only raise a lead's score (LightGBM monotone
#: constraints): buying intent that marketing and sales both read as "more is better".
HIGH_INTENT_PATTERNS: tuple[str, ...] = (
    "high_intent_actions_*",
    "high_intent_forms_*",
    "pricing_page_views_*",
    "demo_page_views_*",
)


class ReadOnlyMapping(Mapping[str, Any]):
    """A mapping that cannot change after it is made: the dict-valued keys of a config
    (``lightgbm.params``, ``rule_points``), so that a frozen config is frozen all the way down
    rather than holding a dict any caller could edit. Copies and pickles as a plain mapping.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        self._items = dict(items or {})

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return repr(self._items)

    def __reduce__(self) -> tuple[Any, ...]:
        return (ReadOnlyMapping, (self._items,))

    def __hash__(self) -> int:
        """Equal mappings hash alike, so that a frozen config can key a cache or a set."""
        return hash(_frozen(self._items))


def _frozen(value: Any) -> Any:
    """``value`` with its mappings and lists made hashable (equal values stay equal)."""
    if isinstance(value, Mapping):
        return frozenset((k, _frozen(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


#: A marketer's points table for the event-form features (see ``configs/train.yaml``).
DEFAULT_RULE_POINTS: tuple[dict[str, Any], ...] = (
    {"feature": "high_intent_forms_30d", "at_least": 1, "points": 30},
    {"feature": "pricing_page_views_30d", "at_least": 1, "points": 15},
    {"feature": "demo_page_views_30d", "at_least": 1, "points": 10},
    {"feature": "has_trial", "at_least": 1, "points": 20},
    {"feature": "chats_30d", "at_least": 1, "points": 10},
    {"feature": "webinars_attended_90d", "at_least": 1, "points": 10},
    {"feature": "downloads_30d", "at_least": 1, "points": 5},
    {"feature": "email_clicks_30d", "at_least": 1, "points": 5},
    {"feature": "email_opens_30d", "at_least": 1, "points": 2},
    {"feature": "web_visits_30d", "at_least": 3, "points": 5},
    {"feature": "seniority", "in": ["c_level", "vp", "director"], "points": 10},
    {"feature": "seniority", "in": ["student", "intern"], "points": -10},
    {"feature": "email_domain_kind", "in": ["free"], "points": -5},
    {"feature": "days_since_last_activity", "at_least": 60, "points": -15},
)


def _default_rule_points() -> Mapping[str, tuple[PointsRule, ...]]:
    return ReadOnlyMapping(
        {"default": tuple(PointsRule.model_validate(r) for r in DEFAULT_RULE_POINTS)}
    )


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class FoldConfig(_Section):
    """Share of all examples in the test fold, and shares of the history before it in the
    calibration and valid folds (the rest of the history is fitted)."""

    test_size: float = Field(0.2, gt=0, lt=1)
    calibration_size: float = Field(0.15, gt=0, lt=1)
    valid_size: float = Field(0.2, gt=0, lt=1)
    purge: Literal["lead", "all", "none"] = "lead"
    seed: int = 0

    @model_validator(mode="after")
    def _leave_data_to_fit(self) -> FoldConfig:
        if self.calibration_size + self.valid_size >= 0.9:
            raise ValueError("calibration_size + valid_size must stay below 0.9")
        return self


class EventConfig(_Section):
    """How event-form data becomes labelled examples."""

    horizon_days: int = Field(90, ge=1)
    every_days: int = Field(30, ge=1)
    warmup_days: int = Field(90, ge=0)


@functools.cache
def lightgbm_main_names() -> dict[str, str]:
    """Every LightGBM parameter name and alias, mapped to its main name (LightGBM's own table,
    so the names match the installed version); empty when a LightGBM release no longer has
    that (private) table, and the names are then passed through unchecked."""
    try:
        from lightgbm.basic import _ConfigAliases

        table = _ConfigAliases._get_all_param_aliases()
    except (ImportError, AttributeError):
        return {}
    return {alias: main for main, aliases in table.items() for alias in aliases}


def _lightgbm_param_error(key: str, message: str, fix: str | None = None) -> PydanticCustomError:
    fix = fix or f"Fix it; LightGBM's parameters are listed at {LIGHTGBM_PARAMETERS_URL}."
    return PydanticCustomError("lightgbm_param", message, {"key": key, "fix": fix})


#: LightGBM parameters that the config sets under its own keys; given in ``params`` too, they
#: would silently override them.
_SET_BY_THE_CONFIG = {
    "num_iterations": "num_boost_round",
    "early_stopping_round": "early_stopping_rounds",
}


#: Objectives whose raw score is the log-odds of a win and whose prediction is a probability,
#: as calibration, stages, explanations and the quality gate all assume. ``cross_entropy``
#: (alias ``xentropy``) minimises the same log loss as ``binary`` on 0/1 labels; everything
#: else (regression, ranking, multiclass, ``cross_entropy_lambda``) would ship scores that
#: are no probabilities.
PROBABILITY_OBJECTIVES: tuple[str, ...] = ("binary", "cross_entropy", "xentropy")


def _check_meaning(key: str, main: str, value: Any) -> None:
    """Refuse parameters that change what the booster's scores mean or when training stops."""
    if main == "objective" and not (
        isinstance(value, str) and value.lower() in PROBABILITY_OBJECTIVES
    ):
        raise _lightgbm_param_error(
            key,
            f"{value!r} does not predict a probability of winning",
            "Remove it (the model is trained with objective binary; cross_entropy also works).",
        )
    if main == "sigmoid" and not (
        isinstance(value, int | float) and not isinstance(value, bool) and value == 1
    ):
        raise _lightgbm_param_error(
            key,
            "rescales the raw scores, which calibration and explanations read as log-odds",
            "Remove it; the calibrator already fits the scale of the scores.",
        )
    if main == "metric":
        raise _lightgbm_param_error(
            key,
            "would change when early stopping stops (it watches the valid fold's log loss)",
            "Remove it; to stop and tune on another measure, run `leadscore tune --objective`.",
        )


def _check_lightgbm_params(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters under their main names: an alias would lose to the default's main name and
    a typo would be ignored by LightGBM, so both are settled here. Parameters that would make
    the scores something other than log-odds of a win (``objective``, ``sigmoid``) or change
    the early-stopping measure (``metric``) are refused, see :func:`_check_meaning`."""
    names = lightgbm_main_names()
    if not names:
        return dict(params)
    out: dict[str, Any] = {}
    given: dict[str, str] = {}
    scalars = (str, int, float, bool)
    for key, value in params.items():
        main = names.get(key)
        if main is None:
            close = difflib.get_close_matches(key, sorted(set(names.values())), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise _lightgbm_param_error(key, f"not a LightGBM parameter{hint}")
        if main == "monotone_constraints":
            raise _lightgbm_param_error(
                key,
                "monotone constraints are not set by position here",
                "Remove it and list the features by name under lightgbm.monotone_increasing "
                "or lightgbm.monotone_decreasing.",
            )
        if main in _SET_BY_THE_CONFIG:
            raise _lightgbm_param_error(
                key,
                f"is set by lightgbm.{_SET_BY_THE_CONFIG[main]}",
                f"Remove it and set lightgbm.{_SET_BY_THE_CONFIG[main]} instead.",
            )
        _check_meaning(key, main, value)
        if main in given:
            raise _lightgbm_param_error(
                key, f"sets {main}, which {given[main]} already sets", "Keep one of the two."
            )
        items = value if isinstance(value, list) else [value]
        inner = [v for item in items for v in (item if isinstance(item, list) else [item])]
        if not all(v is None or isinstance(v, scalars) for v in inner):
            raise _lightgbm_param_error(key, "must be a number, a text or a list of them")
        given[main] = key
        out[main] = value
    return out


class LightGBMConfig(_Section):
    """Booster settings on top of :func:`leadscore.training.default_params`; ``params`` are
    LightGBM parameters under their main names (aliases are translated, unknown names and
    ``monotone_constraints`` rejected).

    The model is a probability of winning, so ``objective`` may only be ``binary`` (the
    default) or ``cross_entropy``/``xentropy``, the same log loss on 0/1 labels: any other
    objective would ship scores that are no probabilities. ``sigmoid`` (other than 1) is
    refused because it rescales the log-odds every later step reads, and ``metric`` because
    early stopping watches the valid fold's log loss (``leadscore tune --objective`` stops on
    another measure); ``num_iterations`` and ``early_stopping_round`` are set by
    ``num_boost_round`` and ``early_stopping_rounds``."""

    params: Mapping[str, Any] = Field(default_factory=ReadOnlyMapping)
    num_boost_round: int = Field(5000, ge=1)
    early_stopping_rounds: int = Field(200, ge=1)
    refit: bool = True
    monotone_increasing: tuple[str, ...] = HIGH_INTENT_PATTERNS
    monotone_decreasing: tuple[str, ...] = ()

    @field_validator("params", mode="after")
    @classmethod
    def _main_names(cls, params: Mapping[str, Any]) -> Mapping[str, Any]:
        return ReadOnlyMapping(_check_lightgbm_params(dict(params)))

    @field_serializer("params", mode="wrap")
    def _plain_params(
        self, params: Mapping[str, Any], handler: SerializerFunctionWrapHandler
    ) -> Any:
        return handler(dict(params))


class CalibrationConfig(_Section):
    method: CalibrationMethod = "auto"
    cv: int = Field(5, ge=2)


class ColdStartConfig(_Section):
    """History below which a model is not trained (rule points are the fallback)."""

    min_wins: int = Field(120, ge=0)
    min_leads: int = Field(1000, ge=0)


class LeakageConfig(_Section):
    """The suspected-leakage guard (:mod:`leadscore.leakage`), run on the fit fold."""

    auc_threshold: float = Field(AUC_THRESHOLD, gt=0.5, le=1.0)
    allow: tuple[str, ...] = ()


class QualityGateConfig(_Section):
    allow_worse: bool = False


class EvaluationConfig(_Section):
    """Bootstrap intervals of the test metrics (``resamples: 0`` leaves them out)."""

    resamples: int = Field(200, ge=0)
    level: float = Field(0.95, gt=0, lt=1)


def registered_model_problem(name: str) -> str | None:
    """Why MLflow's model registry would refuse ``name``, or ``None`` when it takes it.

    MLflow has no public check, so its rule (``mlflow.utils.validation._validate_model_name``
    and the file store's additions) is mirrored: not blank, no ``/`` or ``:``, no ``%``, and
    not a name that reads as another path (``.``, ``..`` and names starting with ``..``).
    Checked when the config is read, so a bad name stops before training, not after it.
    """
    if not name.strip():
        return "the name is blank"
    bad = [c for c in ("/", ":", "%") if c in name]
    if bad:
        return f"{name!r} holds {bad[0]!r}, which MLflow does not allow in a model name"
    if name == "." or name.startswith(".."):
        return f"{name!r} reads as a folder path, which MLflow does not allow as a model name"
    return None


class MlflowConfig(_Section):
    """Where runs are logged; ``tracking_uri: null`` means ``$MLFLOW_TRACKING_URI``, else
    ``sqlite:///mlflow.db`` in the working directory. ``registered_model`` is the registry
    name's prefix, each data set registering as ``<prefix>-<data set name>``
    (:func:`~leadscore.tracking.registered_name`; ``null`` logs the model without registering
    it); MLflow's naming rule is checked
    here, see :func:`registered_model_problem`. ``champion`` is when a new version takes the
    champion alias: ``if_better`` (a gain over the champion beyond noise, on test rows
    neither saw) or ``always`` (``train --promote``: after fixing how the data is read, a
    champion trained on misread data should not stay because the fix tied it)."""

    tracking_uri: str | None = None
    experiment: str = "leadscore"
    registered_model: str | None = "leadscore"
    champion: Literal["if_better", "always"] = "if_better"

    @field_validator("registered_model", mode="after")
    @classmethod
    def _registrable(cls, name: str | None) -> str | None:
        problem = None if name is None else registered_model_problem(name)
        if problem is not None:
            raise PydanticCustomError(
                "config_value",
                problem,
                {"fix": "Use letters, digits, '-', '_', '.' or spaces, e.g. leadscore-crm."},
            )
        return name


#: Config keys whose value is a mapping of the user's own keys (LightGBM parameters, a
#: rule points table per data set), where an override may add a key.
OPEN_MAPPINGS = frozenset({"lightgbm.params", "rule_points"})


class TrainConfig(_Section):
    """Everything ``leadscore train`` can be told, with defaults that work on unseen data."""

    folds: FoldConfig = FoldConfig()
    events: EventConfig = EventConfig()
    lightgbm: LightGBMConfig = LightGBMConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    stages: StagePolicy = StagePolicy()
    rule_points: Mapping[str, tuple[PointsRule, ...]] = Field(default_factory=_default_rule_points)
    cold_start: ColdStartConfig = ColdStartConfig()
    leakage: LeakageConfig = LeakageConfig()
    quality_gate: QualityGateConfig = QualityGateConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    mlflow: MlflowConfig = MlflowConfig()
    seed: int = 0

    @field_validator("rule_points", mode="after")
    @classmethod
    def _read_only_tables(
        cls, tables: Mapping[str, tuple[PointsRule, ...]]
    ) -> Mapping[str, tuple[PointsRule, ...]]:
        return ReadOnlyMapping(dict(tables))

    @field_serializer("rule_points", mode="wrap")
    def _plain_tables(
        self, tables: Mapping[str, tuple[PointsRule, ...]], handler: SerializerFunctionWrapHandler
    ) -> Any:
        return handler(dict(tables))

    def with_overrides(self, overrides: Mapping[str, Any]) -> TrainConfig:
        """A copy with dotted keys replaced (``{"quality_gate.allow_worse": True}``).

        Inside the mapping-valued keys (:data:`OPEN_MAPPINGS`: ``lightgbm.params``,
        ``rule_points``) a key may be new, ``{"lightgbm.params.num_leaves": 15}``, and the
        mapping's other entries stay; the values are then checked as a YAML config's are.
        """
        data = self.model_dump(by_alias=True)
        for dotted, value in overrides.items():
            node = data
            *parents, leaf = dotted.split(".")
            for key in parents:
                if not isinstance(node.get(key), dict):
                    raise SpecError(
                        f"unknown config key {dotted!r}", "See configs/train.yaml for the keys."
                    )
                node = node[key]
            if leaf not in node and ".".join(parents) not in OPEN_MAPPINGS:
                raise SpecError(
                    f"unknown config key {dotted!r}", "See configs/train.yaml for the keys."
                )
            node[leaf] = value
        return parse_config(data, source="overrides")


def _error_line(err: ValidationError, source: str) -> SpecError:
    first = err.errors()[0]
    where = ".".join(str(x) for x in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        return SpecError(
            f"{source}: unknown key {where!r}",
            "Remove it or fix its spelling; configs/train.yaml lists every key.",
        )
    if first["type"] == "config_value":
        return SpecError(f"{source}: {where}: {first['msg']}", first["ctx"]["fix"])
    if first["type"] == "lightgbm_param":
        return SpecError(
            f"{source}: {where}.{first['ctx']['key']}: {first['msg']}", first["ctx"]["fix"]
        )
    # pydantic prefixes a validator's own message ("Value error, policy ... needs a target")
    message = str(first["msg"]).removeprefix("Value error, ")
    return SpecError(
        f"{source}: {where}: {message}",
        "Fix the value; configs/train.yaml documents each key.",
    )


def parse_config(data: Mapping[str, Any] | None, source: str = "config") -> TrainConfig:
    """Validate a mapping (e.g. parsed YAML) into a :class:`TrainConfig`."""
    if data is None:
        return TrainConfig()
    if not isinstance(data, Mapping):
        raise SpecError(
            f"{source}: the config must be a mapping of keys, not {type(data).__name__}",
            "Write it as `key: value` lines.",
        )
    try:
        return TrainConfig.model_validate(dict(data))
    except ValidationError as err:
        raise _error_line(err, source) from err


def load_config(
    path: str | os.PathLike[str] | None = None, overrides: Mapping[str, Any] | None = None
) -> TrainConfig:
    """Read a YAML config (``None`` for the defaults) and apply dotted-key overrides."""
    data: Any = None
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise SpecError(
                f"config file {file} does not exist",
                "Check the path, or leave --config out for the built-in defaults "
                "(configs/train.yaml in leadscore's repository lists them).",
            )
        data = read_yaml_file(file, yaml.SafeLoader)
    config = parse_config(data, source=str(path) if path is not None else "config")
    return config.with_overrides(overrides) if overrides else config
