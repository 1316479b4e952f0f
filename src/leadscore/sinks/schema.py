"""The scored-leads schema: the one definition of the tables' columns, and the checks on a frame.

Every target kind (DuckDB, Parquet and CSV, SQL) and the Spark scorer build their DDL, Arrow
schema and dtypes from :data:`SCORED_LEADS_SCHEMA`, so that the tables read back alike from
any of them. Every write goes through :func:`validate_scored_leads` here, and every read
through :func:`_conform_read`. The bottom of the package: it imports nothing else from it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas.api import types as ptypes

from leadscore.errors import DataError

ColumnKind = Literal["text", "timestamp", "double", "integer", "boolean"]


@dataclass(frozen=True)
class Column:
    """One column of the scored-leads tables: its name, storage kind and meaning."""

    name: str
    kind: ColumnKind
    description: str
    nullable: bool = False


#: Funnel stages, weakest first.
STAGES: tuple[str, ...] = ("lead", "mql", "sql")
#: How the top reasons are joined into ``reasons_for`` / ``reasons_against``.
REASONS_SEPARATOR = "; "
#: Keys of each reason object in ``reasons_json``.
REASON_KEYS: tuple[str, ...] = ("feature", "label", "value", "contribution", "direction")
#: Columns that identify a run.
RUN_KEY_COLUMNS: tuple[str, str, str] = ("as_of", "model_name", "model_version")
LATEST_TABLE = "scored_leads"
HISTORY_TABLE = "scored_leads_history"
#: Per lead, the latest as-of at which a run knew it closed (see the module docstring).
CLOSED_TABLE = "scored_leads_closed"
DEFAULT_TARGET = "data/scored_leads.duckdb"

#: The one definition of the scored-leads tables: validation, DDL, Parquet schema and README.
SCORED_LEADS_SCHEMA: tuple[Column, ...] = (
    Column("lead_id", "text", "the lead's id, as text"),
    Column("scored_at", "timestamp", "when the run wrote the score (UTC)"),
    Column("as_of", "timestamp", "the point in time the features were computed at (UTC)"),
    Column(
        "model_name",
        "text",
        "registered name of the model that scored (also for runs:/ URIs of a registered "
        "model); run:<run id> for a run never registered, the data set's name for a model "
        "folder",
    ),
    Column(
        "model_version",
        "text",
        "registered version; the run id for a run never registered, the first 12 characters "
        "of the model's fingerprint for a model folder",
    ),
    Column("probability", "double", "calibrated probability of conversion, 0 to 1"),
    Column("score", "integer", "the probability as a 0-100 integer, for people"),
    Column("stage", "text", "funnel stage from the thresholds: lead, mql or sql"),
    Column(
        "previous_stage",
        "text",
        "stage at the lead's latest earlier scoring (earlier as_of); empty when first scored",
        nullable=True,
    ),
    Column(
        "stage_changed",
        "boolean",
        "stage differs from previous_stage; false when first scored",
    ),
    Column(
        "fit_score",
        "integer",
        "0-100: how well the lead fits, as a percentile of past leads; empty when the model "
        "has no fit feature or the run skipped explanations",
        nullable=True,
    ),
    Column(
        "engagement_score",
        "integer",
        "0-100: how much the lead's behaviour signals intent, as a percentile of past leads; "
        "empty when the model has no engagement feature or the run skipped explanations",
        nullable=True,
    ),
    Column(
        "reasons_for",
        "text",
        f"top reasons raising the score, as sentences joined by {REASONS_SEPARATOR!r} "
        "(empty when none)",
    ),
    Column(
        "reasons_against",
        "text",
        f"top reasons lowering the score, joined by {REASONS_SEPARATOR!r} (empty when none)",
    ),
    Column(
        "reasons_json",
        "text",
        "JSON list of the reasons behind both: objects with "
        + ", ".join(REASON_KEYS)
        + " (direction: for or against; contribution: signed share of the probability)",
    ),
)
COLUMNS: tuple[str, ...] = tuple(c.name for c in SCORED_LEADS_SCHEMA)
_BY_NAME: dict[str, Column] = {c.name: c for c in SCORED_LEADS_SCHEMA}
#: The columns of ``scored_leads_closed`` (see :mod:`leadscore.sinks`), checked like the others.
CLOSED_SCHEMA: tuple[Column, ...] = (
    Column("lead_id", "text", "the closed lead's id"),
    Column("closed_by", "timestamp", "the as-of of the latest run that knew the lead closed"),
)
_SCORE_COLUMNS = ("score", "fit_score", "engagement_score")

_PANDAS_DTYPES: dict[str, str] = {
    "text": "str",
    "timestamp": "datetime64[us]",
    "double": "float64",
    "integer": "int64",
    "boolean": "bool",
}
_DUCKDB_TYPES: dict[str, str] = {
    "text": "VARCHAR",
    "timestamp": "TIMESTAMP",
    "double": "DOUBLE",
    "integer": "INTEGER",
    "boolean": "BOOLEAN",
}
_ARROW_TYPES: dict[str, pa.DataType] = {
    "text": pa.string(),
    "timestamp": pa.timestamp("us"),
    "double": pa.float64(),
    "integer": pa.int32(),
    "boolean": pa.bool_(),
}
#: The one Arrow schema of every Parquet file of a target (history, latest), whoever writes
#: it: types, nullability and the pandas metadata that reads the nullable integers back as
#: ``Int64`` whether a run filled them or not (``--no-reasons``), so that files of different
#: runs read back alike.
ARROW_SCHEMA = pa.schema(
    [pa.field(c.name, _ARROW_TYPES[c.kind], nullable=c.nullable) for c in SCORED_LEADS_SCHEMA],
    metadata=pa.Schema.from_pandas(
        pd.DataFrame(
            {
                c.name: pd.Series([], dtype="Int64" if c.kind == "integer" and c.nullable else None)
                for c in SCORED_LEADS_SCHEMA
            }
        ),
        preserve_index=False,
    ).metadata,
)
#: Text columns that are keys or filters get a bounded type, so any database can index them.
_KEY_TEXT = frozenset({"lead_id", "model_name", "model_version", "stage", "previous_stage"})
#: Newest first: the order that picks a lead's latest row, deterministic on ties.
_LATEST_ORDER = "as_of DESC, scored_at DESC, model_name DESC, model_version DESC"
_LATEST_KEY = "(as_of, scored_at, model_name, model_version)"
_LATEST_KEY_H = "(h.as_of, h.scored_at, h.model_name, h.model_version)"
#: How many rows of each chunk get their reasons_json fully parsed (the rest: a cheap check).
_JSON_SAMPLE = 50


def shown_model(name: str, version: str) -> str:
    """How a scoring model is named to people: ``leadscore v3`` for a registered version,
    ``run 0a1b...`` or ``olist 5f3e...`` for a run id or a folder's fingerprint."""
    return f"{name} v{version}" if str(version).isdigit() else f"{name} {version}"


def data_set_of(model_name: str) -> str:
    """The data set a recorded model name stands for: a registered ``leadscore-NAME`` (the
    default registered name, :func:`leadscore.tracking.registered_name`) or a model folder's
    ``NAME``, which score the same leads. A registry prefix of one's own
    (``mlflow.registered_model``) is not known here and reads as another name."""
    return model_name.removeprefix("leadscore-")


def schema_markdown() -> str:
    """The schema as a Markdown table, for the README and ``--help`` texts."""
    rows = ["| column | type | meaning |", "|---|---|---|"]
    for col in SCORED_LEADS_SCHEMA:
        kind = col.kind + (", nullable" if col.nullable else "")
        rows.append(f"| `{col.name}` | {kind} | {col.description} |")
    return "\n".join(rows)


def _duckdb_ddl(table: str) -> str:
    cols = ", ".join(
        f'"{c.name}" {_DUCKDB_TYPES[c.kind]}' + ("" if c.nullable else " NOT NULL")
        for c in SCORED_LEADS_SCHEMA
    )
    return f'CREATE TABLE IF NOT EXISTS "{table}" ({cols})'


def _select_list(prefix: str = "") -> str:
    """Every column cast to its storage type, in schema order (files read back exactly)."""
    return ", ".join(
        f'CAST({prefix}"{c.name}" AS {_DUCKDB_TYPES[c.kind]}) AS "{c.name}"'
        for c in SCORED_LEADS_SCHEMA
    )


def _conform_column(values: pd.Series, col: Column) -> pd.Series:
    """``values`` in the column's canonical dtype, or a one-line DataError."""
    name = f"scored leads.{col.name}"
    missing = values.isna()
    if missing.any() and not col.nullable:
        raise DataError(
            f"{name} is empty in {int(missing.sum())} row(s)",
            f"Give every row a {col.name}.",
        )
    dtype = values.dtype
    if col.nullable and missing.all():
        return pd.Series(
            pd.NA if col.kind == "integer" else np.nan, index=values.index, dtype=_dtype(col)
        )
    if col.kind == "text":
        if isinstance(dtype, pd.CategoricalDtype):
            values = values.astype(object)
        ok = ptypes.is_string_dtype(values) or (
            ptypes.is_object_dtype(values.dtype)
            and ptypes.infer_dtype(values, skipna=True) in ("string", "empty")
        )
        if not ok:
            raise DataError(
                f"{name} has dtype {dtype}, not text", f"Convert {col.name} to str before writing."
            )
        return values.astype("str")
    if col.kind == "timestamp":
        if not ptypes.is_datetime64_any_dtype(dtype):
            raise DataError(
                f"{name} has dtype {dtype}, not a timestamp",
                f"Give {col.name} as tz-naive UTC datetime64 values (pd.to_datetime).",
            )
        if getattr(values.dt, "tz", None) is not None:
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        return values.astype("datetime64[us]")
    if ptypes.is_bool_dtype(dtype) != (col.kind == "boolean"):
        raise DataError(
            f"{name} has dtype {dtype}, not {col.kind}",
            f"Cast {col.name} to {_PANDAS_DTYPES[col.kind]} before writing.",
        )
    if col.kind == "boolean":
        return values.astype("bool")
    if col.kind == "integer":
        if not ptypes.is_integer_dtype(dtype):
            raise DataError(
                f"{name} has dtype {dtype}, not integer",
                f"Round {col.name} and cast it to int64 before writing.",
            )
        return values.astype(_dtype(col))
    if not ptypes.is_numeric_dtype(dtype):
        raise DataError(
            f"{name} has dtype {dtype}, not a number", f"Cast {col.name} to float64 before writing."
        )
    out = values.astype("float64")
    if not np.isfinite(out.to_numpy()).all():
        raise DataError(f"{name} holds infinite values", f"Give finite {col.name} values.")
    return out


def _check_reasons_json(values: pd.Series) -> None:
    """Every value looks like a JSON list; the first rows are parsed and checked in full."""
    text = values.str.strip()
    bad = ~(text.str.startswith("[") & text.str.endswith("]"))
    if bad.any():
        raise DataError(
            f"scored leads.reasons_json is not a JSON list in {int(bad.sum())} row(s), "
            f"e.g. {values[bad].iloc[0][:60]!r}",
            "Write reasons_json with json.dumps(list_of_reason_dicts).",
        )
    for value in values.iloc[:_JSON_SAMPLE]:
        try:
            reasons = json.loads(value)
        except json.JSONDecodeError as err:
            raise DataError(
                f"scored leads.reasons_json is not valid JSON ({err.msg}): {value[:60]!r}",
                "Write reasons_json with json.dumps(list_of_reason_dicts).",
            ) from err
        for reason in reasons:
            if not isinstance(reason, dict) or not set(REASON_KEYS) <= set(reason):
                raise DataError(
                    f"scored leads.reasons_json holds a reason without the keys "
                    f"{', '.join(REASON_KEYS)}: {json.dumps(reason)[:80]}",
                    "Give each reason object every key.",
                )


def validate_scored_leads(frame: pd.DataFrame) -> pd.DataFrame:
    """Check ``frame`` against :data:`SCORED_LEADS_SCHEMA`; return it in canonical dtypes.

    Raises a one-line :class:`DataError` on a missing or unexpected column, a wrong dtype, an
    empty required value, a duplicate lead, an out-of-range probability or score, an unknown
    stage, a ``stage_changed`` that disagrees with ``previous_stage``, more than one run in
    the frame, or ``reasons_json`` that is not a JSON list of reasons.
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    dupes = frame.columns[frame.columns.duplicated()]
    if len(dupes):
        raise DataError(f"scored leads: column {dupes[0]!r} appears twice", "Keep one of them.")
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"scored leads: missing column {missing[0]!r} ({len(missing)} missing: "
            f"{', '.join(missing)})",
            "Give every column of leadscore.sinks.SCORED_LEADS_SCHEMA.",
        )
    extra = [str(c) for c in frame.columns if c not in _BY_NAME]
    if extra:
        raise DataError(
            f"scored leads: unexpected column {extra[0]!r}",
            "Drop it: the scored-leads tables have a fixed schema (leadscore.sinks.COLUMNS).",
        )
    if len(frame) == 0:
        raise DataError("scored leads: no rows", "Score at least one lead before writing.")
    index = pd.RangeIndex(len(frame))
    out = pd.DataFrame(
        {c.name: _conform_column(frame[c.name].set_axis(index), c) for c in SCORED_LEADS_SCHEMA}
    )

    ids = out["lead_id"]
    if (ids.str.len() == 0).any():
        raise DataError("scored leads.lead_id is an empty string", "Give every row a lead_id.")
    dup = ids.duplicated()
    if dup.any():
        raise DataError(
            f"scored leads: duplicate lead_id {ids[dup].iloc[0]!r} ({int(dup.sum())} duplicate "
            "row(s))",
            "Score each lead once per run.",
        )
    for key in RUN_KEY_COLUMNS:
        if out[key].nunique() > 1:
            raise DataError(
                f"scored leads: {out[key].nunique()} different {key} values in one write",
                "Write one run (as_of, model_name, model_version) at a time.",
            )
    prob = out["probability"]
    outside = (prob < 0) | (prob > 1)
    if outside.any():
        raise DataError(
            f"scored leads.probability outside [0, 1], e.g. {prob[outside].iloc[0]}",
            "Write the calibrated probability, not a log-odds or a percentage.",
        )
    for name in _SCORE_COLUMNS:
        bad = (out[name] < 0) | (out[name] > 100)
        if bad.any():
            raise DataError(
                f"scored leads.{name} outside 0-100, e.g. {out[name][bad].iloc[0]}",
                f"Scale {name} to an integer from 0 to 100.",
            )
    for name in ("stage", "previous_stage"):
        bad = out[name].notna() & ~out[name].isin(STAGES)
        if bad.any():
            raise DataError(
                f"scored leads.{name}: unknown stage {out[name][bad].iloc[0]!r}",
                f"Use one of {', '.join(STAGES)}.",
            )
    prev = out["previous_stage"]
    expected = prev.notna() & (prev != out["stage"])
    disagree = out["stage_changed"] != expected.astype(bool)
    if disagree.any():
        raise DataError(
            f"scored leads.stage_changed disagrees with previous_stage in "
            f"{int(disagree.sum())} row(s), e.g. lead {ids[disagree].iloc[0]!r}",
            "Set stage_changed = previous_stage is not null and != stage "
            "(attach_previous_stages does this).",
        )
    _check_reasons_json(out["reasons_json"])
    return out


def _empty_frame(columns: Iterable[str] = COLUMNS) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=_dtype(_BY_NAME[c])) for c in columns})


def _conform_read(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame read from any backend in the canonical dtypes (the same from every sink)."""
    out = {}
    for name in frame.columns:
        kind = _BY_NAME[name].kind
        values = frame[name]
        if kind == "timestamp":
            values = pd.to_datetime(values)
            if getattr(values.dt, "tz", None) is not None:
                values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        elif kind == "text":
            values = values.astype(object).where(values.notna(), np.nan)
        out[name] = values.astype(_dtype(_BY_NAME[name]))
    return pd.DataFrame(out, index=pd.RangeIndex(len(frame)))


def _dtype(col: Column) -> str:
    """pandas dtype of a column: nullable integers are ``Int64`` (int64 cannot hold missing)."""
    return "Int64" if col.kind == "integer" and col.nullable else _PANDAS_DTYPES[col.kind]


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
