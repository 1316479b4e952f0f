"""Dataset specs: a YAML file that says which column of a flat lead table is what.

A spec is loaded once into a frozen :class:`DatasetSpec` and passed explicitly. Unknown keys
are errors (a typo such as ``exlude:`` must not silently let a leaky column in). Relative
``source`` paths resolve against the spec file's folder; the built-in specs resolve against
the shared data folder (see :func:`default_data_root`).

Every key is documented in the README ("Dataset spec").
"""

from __future__ import annotations

import datetime as dt
import os
import re
import unicodedata
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from leadscore.errors import SpecError
from leadscore.io import is_sql_url, sqlite_file
from leadscore.schema import INTEGRAL_TEXT

BUILTIN_SPECS: tuple[str, ...] = ("x_education", "olist")
DATA_ROOT_ENV = "LEADSCORE_DATA_ROOT"

LabelValue = str | int | float | bool

#: Spellings of one yes/no flag: a label declared with any of them matches all of them.
_FLAG_WORDS = {
    "true": "true",
    "yes": "true",
    "1": "true",
    "false": "false",
    "no": "false",
    "0": "false",
}


def label_key(value: object) -> str:
    """The form in which a label value is compared with the spec's ``won``, ``lost`` and
    ``open`` values: ``1``, ``1.0`` and ``"1"`` agree, case and surrounding blanks do not
    count, and ``true``, ``yes`` and ``1`` are one value (``false``, ``no`` and ``0``
    another), so a declared ``yes`` matches a boolean column and a declared ``true`` a column
    of words."""
    if isinstance(value, bool | np.bool_):
        text = str(bool(value)).lower()
    elif isinstance(value, int | float | np.number) and float(value).is_integer():
        text = str(int(value))
    else:
        text = str(value).strip().lower()
        if INTEGRAL_TEXT.fullmatch(text):
            text = str(int(text.split(".")[0]))
    return _FLAG_WORDS.get(text, text)


_BOOL_TAG = "tag:yaml.org,2002:bool"


class _SpecLoader(yaml.SafeLoader):
    """YAML's safe loader where only ``true`` and ``false`` are booleans.

    YAML 1.1 also reads ``yes``, ``no``, ``on`` and ``off`` as booleans, so ``won: [yes]``
    would declare ``True`` and never match a label column holding the word "yes".
    """


_SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_SpecLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_SpecLoader)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LabelSpec(_Frozen):
    """Which column holds the outcome and which values count as won.

    ``won: not_null`` means any non-empty value is a win (e.g. a won date joined from a
    closed-deals table). With ``within_days`` the label column must hold the won date and
    ``order_by`` the lead's time: a lead is won when it closed within that many days, and a lead
    that is not won but whose window ends after ``observed_until`` is censored (left out), not
    counted as lost. Rows before ``observed_from`` are left out: outcomes were not recorded yet.

    ``open`` lists the values of leads still in play (``Open``, ``Working``): training leaves
    those rows out and ``score`` scores them. They are declared rather than implied by "not won
    and not lost", so that a misspelt ``Lsot`` stays an error instead of an open lead.

    A single value may be written without brackets (``won: Won``): it is a list of one.
    """

    column: str
    won: list[LabelValue] | Literal["not_null"]
    lost: list[LabelValue] | None = None
    open: list[LabelValue] | None = None
    within_days: int | None = Field(default=None, gt=0)
    observed_from: dt.date | None = None
    observed_until: dt.date | None = None

    @field_validator("won", "lost", "open", mode="before")
    @classmethod
    def _one_value_as_list(cls, value: Any, info: ValidationInfo) -> Any:
        """``won: Won`` is what users write for one value; ``not_null`` keeps its meaning for
        ``won`` and is refused elsewhere rather than read as a value spelt so."""
        if isinstance(value, str) and value == "not_null":
            if info.field_name == "won":
                return value
            raise ValueError("not_null is only for label.won")
        if isinstance(value, str | int | float | bool):
            return [value]
        return value

    @model_validator(mode="after")
    def _check(self) -> LabelSpec:
        if isinstance(self.won, list) and not self.won:
            raise ValueError("label.won lists no value")
        if self.lost is not None and self.won == "not_null":
            raise ValueError("label.lost cannot be combined with won: not_null")
        if self.open is not None:
            if self.won == "not_null" or self.within_days is not None:
                raise ValueError(
                    "label.open needs label.won as a list of values; with won: not_null or "
                    "within_days an empty label is the open lead"
                )
            if not self.open:
                raise ValueError("label.open lists no value")
            closed = {label_key(v) for v in [*self.won, *(self.lost or [])]}
            overlap = sorted(str(v) for v in self.open if label_key(v) in closed)
            if overlap:
                raise ValueError(f"label.open repeats a won or lost value: {overlap}")
        return self


class JoinSpec(_Frozen):
    """Columns taken from a second table by a left join on the lead id.

    ``id`` names the lead-id column of the joined table (the key is not called ``on``: YAML
    reads a bare ``on`` as ``true``).
    """

    source: str
    table: str | None = None
    id: str
    columns: list[str] = Field(min_length=1)


class GroupsSpec(_Frozen):
    """Which feature columns describe fit (who the lead is) and which engagement (what it did).

    Columns in neither list count as fit.
    """

    fit: list[str] = Field(default_factory=list)
    engagement: list[str] = Field(default_factory=list)


class DatasetSpec(_Frozen):
    """A flat lead table: one row per lead with a label. See the README for every key."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    source: str
    table: str | None = None
    query: str | None = None
    id: str
    label: LabelSpec
    order_by: str | None = None
    test_from: LabelValue | dt.date | dt.datetime | None = None
    exclude: dict[str, str] = Field(default_factory=dict)
    missing_values: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    numeric: list[str] = Field(default_factory=list)
    groups: GroupsSpec = Field(default_factory=GroupsSpec)
    labels: dict[str, str] = Field(default_factory=dict)
    join: list[JoinSpec] = Field(default_factory=list)
    allow_leakage: list[str] = Field(default_factory=list)
    base_dir: Path | None = Field(default=None, exclude=True)

    @field_validator("exclude", mode="before")
    @classmethod
    def _exclude_reasons(cls, value: Any) -> Any:
        if isinstance(value, list):
            raise ValueError("exclude maps each column to a reason, e.g. {Tags: written by sales}")
        return value

    @model_validator(mode="after")
    def _check(self) -> DatasetSpec:
        if self.label.within_days is not None and self.order_by is None:
            raise ValueError("label.within_days needs order_by: the time each lead started")
        if self.test_from is not None and self.order_by is None:
            raise ValueError("test_from needs order_by")
        observed = self.label.observed_from is not None or self.label.observed_until is not None
        if observed and self.order_by is None:
            raise ValueError(
                "label.observed_from and observed_until need order_by: the date each lead started"
            )
        self._check_features_named()
        return self

    @field_validator("name", mode="after")
    @classmethod
    def _not_a_folder_step(cls, name: str) -> str:
        if set(name) == {"."}:
            raise ValueError(f"name {name!r} would write the model outside models/")
        return name

    def _check_features_named(self) -> None:
        """Columns that the spec uses as features (groups, categorical, numeric,
        allow_leakage) must not be ones it keeps out of the features (the id, the label,
        order_by, exclude): a column listed both ways means the spec contradicts itself."""
        not_features = {
            self.id: "the id",
            self.label.column: "the label",
            **({self.order_by: "order_by"} if self.order_by else {}),
            **dict.fromkeys(self.exclude, "excluded"),
        }
        as_features = {
            "groups.fit": self.groups.fit,
            "groups.engagement": self.groups.engagement,
            "categorical": self.categorical,
            "numeric": self.numeric,
            "allow_leakage": self.allow_leakage,
        }
        for key, columns in as_features.items():
            for column in columns:
                if column in not_features:
                    raise ValueError(
                        f"{key} names {column!r}, which is {not_features[column]} and so never "
                        "a feature"
                    )
        both = set(self.categorical) & set(self.numeric)
        if both:
            raise ValueError(f"{sorted(both)[0]!r} is listed under both categorical and numeric")
        both = set(self.groups.fit) & set(self.groups.engagement)
        if both:
            raise ValueError(f"{sorted(both)[0]!r} is listed under both groups.fit and engagement")

    def resolve(self, path: str) -> str:
        """``path`` as a location: URLs and absolute paths as they are, others under base_dir.

        A relative SQLite file (``sqlite:///crm.db``) is a path too and resolves the same way:
        a spec must read the same database from whatever folder it is run.
        """
        if self.base_dir is None:
            return path
        if is_sql_url(path):
            database = sqlite_file(path)
            if database is None or database.is_absolute():
                return path
            import sqlalchemy as sa

            url = sa.engine.make_url(path).set(database=str(self.base_dir / database))
            return url.render_as_string(hide_password=False)
        if Path(path).is_absolute():
            return path
        return str(self.base_dir / path)

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data, for MLflow and reports."""
        return self.model_dump(mode="json", exclude_none=True)


def default_data_root() -> Path | None:
    """Where the built-in specs find the shared data sets.

    ``$LEADSCORE_DATA_ROOT`` when set; otherwise the first ``shared/data`` folder found beside
    the working directory or one of its parents (a checkout next to ``shared/``, as in CI).
    """
    env = os.environ.get(DATA_ROOT_ENV)
    if env:
        return Path(env)
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        candidate = folder / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


def _format_validation_error(err: ValidationError, origin: str) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "spec"
    if first["type"] == "extra_forbidden":
        return f"{origin}: unknown key {where!r}"
    if first["type"] == "missing":
        return f"{origin}: missing key {where!r}"
    message = first["msg"].removeprefix("Value error, ")
    return f"{origin}: {where}: {message}"


def parse_spec(data: Any, *, origin: str = "spec", base_dir: Path | None = None) -> DatasetSpec:
    """Validate a spec given as a mapping (from YAML) into a :class:`DatasetSpec`."""
    if not isinstance(data, dict):
        raise SpecError(
            f"{origin} is not a mapping of keys",
            "Write the spec as YAML keys; see the README's dataset spec section.",
        )
    try:
        return DatasetSpec.model_validate({**data, "base_dir": base_dir})
    except ValidationError as err:
        raise SpecError(
            _format_validation_error(err, origin),
            "See the README's dataset spec section for every key.",
        ) from err


def _composed(data: Any) -> Any:
    """Every text of a parsed spec in Unicode's composed form (NFC), as column names are read:
    a spec typed on macOS may hold the decomposed form of a header."""
    if isinstance(data, str):
        return unicodedata.normalize("NFC", data)
    if isinstance(data, dict):
        return {_composed(k): _composed(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_composed(v) for v in data]
    return data


def load_spec(name_or_path: str | os.PathLike[str], data_root: Path | None = None) -> DatasetSpec:
    """Load a built-in spec by name (``x_education``, ``olist``) or a YAML spec file by path.

    Built-in specs read from ``data_root`` (default :func:`default_data_root`).
    """
    text = str(name_or_path)
    if text in BUILTIN_SPECS:
        root = data_root or default_data_root()
        if root is None:
            raise SpecError(
                f"built-in spec {text!r} needs the shared data folder, which was not found",
                f"Pass --data-root DIR or set {DATA_ROOT_ENV} to the folder holding "
                "x_education/ and olist_funnel/.",
            )
        raw = resources.files("leadscore.builtin_specs").joinpath(f"{text}.yaml").read_text()
        return parse_spec(_load_yaml(raw), origin=f"built-in spec {text}", base_dir=root)
    path = Path(text)
    if not path.exists():
        raise SpecError(
            f"spec {text!r} is neither a built-in spec nor an existing file",
            f"Use one of {', '.join(BUILTIN_SPECS)} or the path of a YAML spec.",
        )
    try:
        data = _composed(_load_yaml(path.read_text()))
    except yaml.YAMLError as err:
        raise SpecError(
            f"{path} is not valid YAML: {str(err).splitlines()[0]}", "Fix the YAML syntax."
        ) from err
    except ValueError as err:  # YAML reads 2024-13-45 as a date and fails there
        raise SpecError(
            f"{path} holds an impossible date: {err}", "Write dates as YYYY-MM-DD that exist."
        ) from err
    return parse_spec(data, origin=str(path), base_dir=path.resolve().parent)
