"""Dataset specs: a YAML file that says which column of a flat lead table is what.

A spec is loaded once into a frozen :class:`DatasetSpec` and passed explicitly. Unknown keys
are errors (a typo such as ``exlude:`` must not silently let a leaky column in). Relative
``source`` paths resolve against the spec file's folder; the built-in specs resolve against
the shared data folder (see :func:`default_data_root`).

Every key is documented in the README ("Dataset spec").
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
import re
import unicodedata
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

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
from pydantic_core import ErrorDetails

from leadscore.errors import SpecError
from leadscore.io import duckdb_url_file, is_sql_url, sqlite_file
from leadscore.schema import INTEGRAL_TEXT
from leadscore.timestamps import day_month_readings
from leadscore.yaml_files import read_yaml_file

BUILTIN_SPECS: tuple[str, ...] = ("x_education", "olist")
DATA_ROOT_ENV = "LEADSCORE_DATA_ROOT"

LabelValue = str | int | float | bool

#: A spec's name names the model folder and the registered MLflow model, so it keeps to
#: characters that are safe in both; NAME_IN_WORDS says the same for error messages.
NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
NAME_IN_WORDS = "letters, digits, '_', '.' and '-'"

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
    count, a run of blanks inside a value counts as one space (``Closed  Won`` is ``Closed
    Won``, as feature categories fold ``Paid  Search``: a CRM export doubles a space where
    nobody sees it), and ``true``, ``yes`` and ``1`` are one value (``false``, ``no`` and
    ``0`` another), so a declared ``yes`` matches a boolean column and a declared ``true`` a
    column of words."""
    if isinstance(value, bool | np.bool_):
        text = str(bool(value)).lower()
    elif isinstance(value, int | float | np.number) and float(value).is_integer():
        text = str(int(value))
    else:
        text = " ".join(str(value).split()).lower()
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


class _Refused(ValueError):
    """A spec check's refusal that knows its own fix, so that the one-line error says what to
    write instead of pointing at the README (:func:`_failed_check`)."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.fix = fix


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class LabelSpec(_Frozen):
    """Which column holds the outcome and which values count as won.

    ``won: not_null`` means any non-empty value is a win (e.g. a won date joined from a
    closed-deals table). It needs ``within_days``: a blank won date is a lost lead or one still
    open, and only the window tells which (read as lost, open leads would train as losses;
    read as open, long-lost leads would be scored and reach sales). With ``within_days`` the
    label column must hold the won date and ``order_by`` the lead's time: a lead is won when
    it closed within that many days, and a lead that is not won but whose window ends after
    ``observed_until`` is censored (left out), not counted as lost. Rows before
    ``observed_from`` are left out: outcomes were not recorded yet.

    ``open`` lists the values of leads still in play (``Open``, ``Working``): training leaves
    those rows out and ``score`` scores them. They are declared rather than implied by "not won
    and not lost", so that a misspelt ``Lsot`` stays an error instead of an open lead. Where
    ``won`` names values, a blank label (empty, or a ``missing_values`` token) is an open lead
    too, ``open`` declared or not, in training as in scoring: a CRM leaves the deal stage
    blank while there is no deal. Where a blank means lost, ``""`` under ``lost`` says so (a
    declared ``""`` matches blank labels).

    A single value may be written without brackets (``won: Won``): it is a list of one.
    """

    column: str
    won: list[LabelValue] | Literal["not_null"]
    lost: list[LabelValue] | None = None
    open: list[LabelValue] | None = None
    within_days: int | None = Field(default=None, gt=0, strict=True)  # `true` is no 1 day
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
        if self.lost is not None:
            # compared as the label column is matched (label_key): 1, "1" and yes are one
            # value, which would silently count as won
            won_keys = {label_key(v) for v in self.won}
            both = sorted(str(v) for v in self.lost if label_key(v) in won_keys)
            if both:
                raise _Refused(
                    f"label.lost repeats a won value: {both} (a lead with it would count as won)",
                    "List each label value under one of label.won and label.lost only.",
                )
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
        if self.won == "not_null" and self.within_days is None:
            raise _Refused(
                f"label.won: not_null without label.within_days cannot tell a lead lost from "
                f"one still open: both leave {self.column!r} blank, and training would count "
                "every blank as lost while score --spec would send it to sales as open",
                "Add label.within_days: N (won means won within N days of order_by; leads "
                "whose window is still running are left out of training and scored, the "
                "others are lost), or label a status column with won, lost and open values.",
            )
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

    name: str = Field(pattern=NAME_PATTERN)
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
    facts: dict[str, list[str]] = Field(default_factory=dict)
    units: dict[str, Literal["seconds", "minutes"]] = Field(default_factory=dict)
    join: list[JoinSpec] = Field(default_factory=list)
    allow_leakage: list[str] = Field(default_factory=list)
    base_dir: Path | None = Field(default=None, exclude=True)

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

    @field_validator("test_from", mode="after")
    @classmethod
    def _test_from_one_day(cls, value: Any) -> Any:
        """A ``test_from`` written as day and month numbers that read both ways
        (``01/09/2025``) is refused, as ``label.observed_from`` and ``observed_until``
        refuse anything but YYYY-MM-DD and an ambiguous ``--as-of`` is an error.

        Reading it as the ``order_by`` column was read instead would make the spec mean
        another day when the data's format changes (a US export of the same CRM), and every
        other date of a spec is read from the spec alone, before any data: the spec's own
        rule holds here too. Text that reads one way (``15/09/2025``, ``2025-09-01``) and
        numbers (a sequence ``order_by``) are kept as written."""
        readings = day_month_readings(value) if isinstance(value, str) else None
        if readings is not None:
            day_first, month_first = readings
            raise _Refused(
                f"test_from {value!r} reads both day-first ({day_first}) and month-first "
                f"({month_first})",
                f"Write it as YYYY-MM-DD: test_from: {day_first} or test_from: {month_first}.",
            )
        return value

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
            **{f"facts.{fact}": columns for fact, columns in self.facts.items()},
            "units": list(self.units),
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
        both = set(self.categorical) & set(self.units)
        if both:
            raise ValueError(
                f"{sorted(both)[0]!r} is listed under both categorical and units (a time is a "
                "number)"
            )
        both = set(self.groups.fit) & set(self.groups.engagement)
        if both:
            raise ValueError(f"{sorted(both)[0]!r} is listed under both groups.fit and engagement")
        fact_of: dict[str, str] = {}
        for fact, columns in self.facts.items():
            for column in columns:
                if fact_of.setdefault(column, fact) != fact:
                    raise ValueError(
                        f"{column!r} is listed under both facts.{fact_of[column]} and "
                        f"facts.{fact}: a column tells one fact"
                    )

    def resolve(self, path: str) -> str:
        """``path`` as a location: URLs and absolute paths as they are, others under base_dir.

        A relative SQLite file (``sqlite:///crm.db``) is a path too and resolves the same way,
        and so does a ``duckdb:///`` URL, which names a DuckDB file: a spec must read the same
        database from whatever folder it is run.
        """
        if self.base_dir is None:
            return path
        path = os.fspath(duckdb_url_file(path))
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


# ------------------------------------------------------------------ spec errors in plain words

#: A place in a spec as the user wrote it: mapping keys as text, list positions as ints.
Place = tuple[str | int, ...]

_README = "the README's dataset spec section"

#: The keys that map each column to words: what one such value is called, what it should say
#: and an example, so that ``Deal Owner:`` with nothing after it is answered with what to
#: write, not with the type that was expected.
_WORDS_PER_COLUMN: dict[str, tuple[str, str, str]] = {
    "exclude": ("reason", "why it is left out", "assigned by sales after contact"),
    "labels": ("label", "the words a marketer reads for it", "Time on the website (seconds)"),
}

#: What each of pydantic's errors for a single value asked for, in the words of a YAML file.
_SCALAR_WORDS: dict[str, str] = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "date_type": "a date",
    "date_parsing": "a date",
    "date_from_datetime_parsing": "a date",
    "date_from_datetime_inexact": "a date",
    "datetime_type": "a date",
    "datetime_parsing": "a date",
    "datetime_from_date_parsing": "a date",
}
_MAPPING_TYPES = frozenset({"dict_type", "model_type"})
#: A key no spec model has: a word (``extra_forbidden``) or a number such as ``1:``.
_UNKNOWN_KEY_TYPES = frozenset({"extra_forbidden", "invalid_key"})


def _format_validation_error(err: ValidationError, origin: str, data: Any) -> SpecError:
    """The first of pydantic's errors as one line naming the key as written in the YAML and
    what to write there.

    Pydantic's own wording ("Input should be a valid string", "Field required") speaks of
    Python types and of steps the user never wrote (``list[union[str,int,float,bool]]``), so
    none of it is shown. An unknown key goes first: a misspelt key also leaves the right one
    missing, and the misspelling explains both.
    """
    found = [(_place(error, data), error) for error in err.errors()]
    unknown = [(place, error) for place, error in found if error["type"] in _UNKNOWN_KEY_TYPES]
    place, first = (unknown or found)[0]
    if first["type"] in _UNKNOWN_KEY_TYPES:
        problem, fix = _unknown_key(place)
    elif first["type"] == "missing":
        problem, fix = _missing_key(place)
    elif first["type"] == "value_error":
        problem, fix = _failed_check(place, first)
    else:
        problem, fix = _wrong_value(place, [error for at, error in found if at == place])
    return SpecError(f"{origin}: {problem}", fix)


def _place(error: ErrorDetails, data: Any) -> Place:
    """Where ``error`` is in the user's YAML: its ``loc`` followed through ``data``, so that
    pydantic's own steps (the member of a union it tried, ``[key]``) drop out and
    ``label.won.list[...].0.str`` reads ``label.won[0]``."""
    place: list[str | int] = []
    node = data
    for step in error["loc"]:
        if isinstance(node, dict) and step in node:
            node = node[step]
            place.append(str(step))
        elif isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
            node = node[step]
            place.append(step)
    if error["type"] == "missing":  # the one step that is not in the data
        place.append(str(error["loc"][-1]))
    return tuple(place)


def _dotted(place: Place) -> str:
    """``label.won[0]``: a place as a path into the YAML, list positions from 0 as in jq."""
    text = ""
    for step in place:
        if isinstance(step, int):
            text += f"[{step}]"
        else:
            text += f".{step}" if text else step
    return text


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The spec model inside a field's type (``LabelSpec``, ``JoinSpec`` of ``list[JoinSpec]``)."""
    if get_origin(annotation) is None and isinstance(annotation, type):
        return annotation if issubclass(annotation, BaseModel) else None
    return next(filter(None, map(_model_in, get_args(annotation))), None)


def _model_at(place: Place) -> type[BaseModel] | None:
    """The model whose keys are written at ``place`` (``DatasetSpec`` at the top,
    ``LabelSpec`` under ``label``, ``JoinSpec`` under ``join`` and ``join[0]``), or None."""
    model: type[BaseModel] = DatasetSpec
    for step in place:
        if isinstance(step, int):
            continue  # a position in a list of models, such as join
        field = model.model_fields.get(step)
        inner = None if field is None else _model_in(field.annotation)
        if inner is None:
            return None
        model = inner
    return model


def _keys(model: type[BaseModel]) -> list[str]:
    """The keys a user may write for ``model`` (``base_dir`` is set by the loader)."""
    return [name for name, field in model.model_fields.items() if not field.exclude]


def _listed(words: list[str]) -> str:
    """``a, b and c``: keys listed as a sentence lists them."""
    return ", ".join(words[:-1]) + f" and {words[-1]}" if len(words) > 1 else "".join(words)


def _optional(place: Place) -> bool:
    """Whether the key at ``place`` may be left out, so that removing it is a fix to offer."""
    key = place[-1] if place else None
    if not isinstance(key, str):
        return False
    model = _model_at(place[:-1])
    field = None if model is None else model.model_fields.get(key)
    return field is not None and not field.is_required()


def _described(value: Any) -> str:
    """``value`` named by its kind as the YAML reads it: "the number 5", "a list"."""
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return f"the yes/no value {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, dt.date):
        return f"the date {value.isoformat()}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping of keys"
    return f"a {type(value).__name__}"


def _written(value: Any) -> str:
    """``value`` as it would be typed in the YAML: ``true``, ``2024-01-31``, ``12``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _safe_name(name: str) -> str:
    """``name`` cut down to NAME_PATTERN, to offer as the fix: accents dropped, every other
    run of characters a ``_``, none at either end.

    Not :func:`leadscore.tracking._safe_name`, on purpose: this one proposes a name for the
    user to type (``Café Leads`` as ``Cafe_Leads``), so it may read nicely; that one makes
    MLflow keys and folders from names that are already stored, and must keep writing them
    as earlier runs did."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", ascii_name).strip("_") or "my_leads"


def _unknown_key(place: Place) -> tuple[str, str]:
    """A key the spec does not have, with the nearest key of the same level: a typo such as
    ``exlude`` must not silently let a leaky column in, and its fix is usually one letter.
    Failing that, a key of the level above or of a mapping below is named where it belongs."""
    keys = _keys(_model_at(place[:-1]) or DatasetSpec)
    close = difflib.get_close_matches(str(place[-1]).lower(), keys, n=1)
    problem = f"unknown key {_dotted(place)!r}"
    if close:
        problem += f" (did you mean {close[0]!r}?)"
    else:
        home = _home(place)
        if home:
            return f"{problem} (it belongs under {_dotted(home)})", "Move it there, indented."
        if home is not None:
            return f"{problem} (it belongs at the top level)", "Move it there, not indented."
    if len(place) == 1:
        return problem, f"Fix its spelling or remove it; {_README} lists every key."
    return problem, f"Fix its spelling or remove it; {_dotted(place[:-1])} takes {_listed(keys)}."


def _home(place: Place) -> Place | None:
    """The level where the key at ``place`` belongs when it is a key of a mapping one level
    below (``won:`` written at the top instead of under ``label``) or of the level above
    (``order_by:`` under ``label``); ``()`` is the top level."""
    key, level = place[-1], place[:-1]
    model = _model_at(level) or DatasetSpec
    for name, field in model.model_fields.items():
        inner = _model_in(field.annotation)
        if inner is not None and key in _keys(inner):
            return (*level, name)
    if not level:
        return None
    parent = level[:-2] if isinstance(level[-1], int) else level[:-1]
    return parent if key in _keys(_model_at(parent) or DatasetSpec) else None


def _missing_key(place: Place) -> tuple[str, str]:
    """A required key left out, and the level to add it at."""
    where = f"under {_dotted(place[:-1])}" if len(place) > 1 else "to the spec"
    return (
        f"missing key {_dotted(place)!r}",
        f"Add '{place[-1]}:' {where}; {_README} says what it holds.",
    )


def _failed_check(place: Place, error: ErrorDetails) -> tuple[str, str]:
    """A check of the spec's own (``label.won lists no value``): its message is plain words
    already and mostly names its keys, so the place goes before it only where it does not."""
    refusal = error.get("ctx", {}).get("error", error["msg"])
    message = str(refusal)
    where = _dotted(place)
    if where and not message.startswith(where):
        message = f"{where}: {message}"
    if isinstance(refusal, _Refused):
        return message, refusal.fix
    return message, f"See {_README} for every key."


def _wrong_value(place: Place, errors: list[ErrorDetails]) -> tuple[str, str]:
    """A value of the wrong kind, said as what was written and what to write instead.

    A key whose type is a union (``label.won``: a list or ``not_null``) fails once per member
    of it, so ``errors`` holds every error at ``place`` and the message names each kind the key
    takes.
    """
    first = errors[0]
    value = first["input"]
    types = {error["type"] for error in errors}
    where = _dotted(place)
    at = f"{place[-1]}: " if isinstance(place[-1], str) else ""  # an example's start
    if first["loc"][-1] == "[key]":
        return (
            f"{_dotted(place[:-1])} has {_described(value)} as a key",
            f'Put it in quotes, "{_written(value)}": a column name is text.',
        )
    if len(place) == 2 and place[0] in _WORDS_PER_COLUMN:
        noun, purpose, example = _WORDS_PER_COLUMN[str(place[0])]
        problem = f"{where} has {_described(value)} as its {noun}"
        if value is None:
            problem = f"{where} has no {noun}"
        return problem, f'Write {purpose}, e.g. "{place[1]}: {example}".'
    if "string_pattern_mismatch" in types and first.get("ctx", {}).get("pattern") == NAME_PATTERN:
        if not value:
            return f"{where} is empty", f"Write a name of {NAME_IN_WORDS}, e.g. {at}my_leads."
        return (
            f"{where} {value!r} may hold only {NAME_IN_WORDS}",
            f"Rename it, e.g. {at}{_safe_name(value)}.",
        )
    if "greater_than" in types:
        bound = first.get("ctx", {}).get("gt")
        return (
            f"{where} is {value}, but it must be more than {bound}",
            f"Write a number above {bound}, e.g. {at}90.",
        )
    if "too_short" in types:
        return f"{where} lists nothing", f"List at least one, e.g. {at}[A, B]."
    expected = _expected(errors)
    if expected is None:
        problem = f"{where} cannot be {_described(value)}"
    elif value is None:
        problem = f"{where} is empty" if isinstance(place[-1], int) else f"{where} has no value"
    else:
        problem = f"{where} is {_described(value)}, but it must be {expected}"
    return problem, _type_fix(place, errors)


def _literals(errors: list[ErrorDetails]) -> list[str]:
    """The fixed words a key also takes (``not_null``), without pydantic's quotes."""
    return [
        str(error.get("ctx", {}).get("expected", "")).replace("'", "")
        for error in errors
        if error["type"] == "literal_error"
    ]


def _expected(errors: list[ErrorDetails]) -> str | None:
    """Every kind the key takes, in plain words: "a list or not_null"; None where pydantic's
    error is not one a spec model raises."""
    scalars = {_SCALAR_WORDS[e["type"]] for e in errors if e["type"] in _SCALAR_WORDS}
    words: list[str] = []
    for error in errors:
        kind = error["type"]
        if kind in _SCALAR_WORDS:
            word = "a single value" if len(scalars) > 1 else _SCALAR_WORDS[kind]
        elif kind == "list_type":
            word = "a list"
        elif kind in _MAPPING_TYPES:
            word = "a mapping of keys"
        else:
            continue
        if word not in words:
            words.append(word)
    words += _literals(errors)
    return " or ".join(words) or None


def _type_fix(place: Place, errors: list[ErrorDetails]) -> str:
    """What to write at ``place`` instead, with an example in the spec's own syntax."""
    value = errors[0]["input"]
    types = {error["type"] for error in errors}
    key = place[-1]
    at = f"{key}: " if isinstance(key, str) else ""
    model = _model_at(place)
    if "list_type" in types:
        if model is not None:  # a list of mappings, such as join
            fix = "Write it as a list: put '- ' before the first key of each entry"
        elif isinstance(value, str) and value:
            fix = f"Write it in brackets: {at}[{value}]"
        else:
            fix = f"Write it in brackets, e.g. {at}[A, B]"
    elif types & _MAPPING_TYPES:
        if model is not None:
            fix = f"Write its keys ({_listed(_keys(model))}) indented on the lines below it"
        elif key in _WORDS_PER_COLUMN:
            noun, _, example = _WORDS_PER_COLUMN[str(key)]
            written = value if isinstance(value, list) else [value]
            column = next((v for v in written if isinstance(v, str) and v), "Tags")
            fix = f"Write each column with its {noun}, e.g. {at}{{{column}: {example}}}"
        else:
            fix = f"Write it as keys, e.g. {at}{{A: B}}"
    elif value is None:
        fix = f"Write a value after '{key}:'" if at else "Write a value in it or remove it"
    elif isinstance(value, dict) and len(value) == 1:
        # YAML reads `Closed: Converted` as a key and its value: the text needs quotes
        ((name, rest),) = value.items()
        fix = f'Put text holding ": " in quotes: "{_written(name)}: {_written(rest)}"'
    elif isinstance(value, list | dict):
        fix = f"Write a single value after '{key}:'" if at else "Write a single value in it"
    elif types == {"string_type"}:
        fix = f'Put it in quotes: {at}"{_written(value)}"'
    elif {_SCALAR_WORDS.get(kind) for kind in types} == {"a whole number"}:
        fix = f"Write a whole number, e.g. {at}90"
    elif {_SCALAR_WORDS.get(kind) for kind in types} == {"a date"}:
        fix = f"Write a date that exists as YYYY-MM-DD, e.g. {at}2024-01-31"
    else:
        fix = f"See {_README} for what {_dotted(place)} takes"
    alternatives = [fix, *(f"{at}{word}" for word in _literals(errors))]
    if value is None and _optional(place):
        alternatives.append("remove the key")
    return ", or ".join(alternatives) + "."


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
        raise _format_validation_error(err, origin, data) from err


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
                f"Pass --data-root DIR (data_root= in Python) or set {DATA_ROOT_ENV} to the "
                "folder holding x_education/ and olist_funnel/.",
            )
        raw = resources.files("leadscore.builtin_specs").joinpath(f"{text}.yaml").read_text()
        return parse_spec(_load_yaml(raw), origin=f"built-in spec {text}", base_dir=root)
    path = Path(text)
    if not path.exists():
        raise SpecError(
            f"spec {text!r} is neither a built-in spec nor an existing file",
            f"Use one of {', '.join(BUILTIN_SPECS)} or the path of a YAML spec.",
        )
    data = _composed(read_yaml_file(path, _SpecLoader))
    return parse_spec(data, origin=str(path), base_dir=path.resolve().parent)
