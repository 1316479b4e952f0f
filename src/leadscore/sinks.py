"""Where scored leads are written and read back.

A scoring run writes two tables with one schema, :data:`SCORED_LEADS_SCHEMA`:

* ``scored_leads_history``: append-only, one row per lead per run. A run is identified by
  its :class:`RunKey` ``(as_of, model_name, model_version)``; writing the same run again
  replaces that run's rows, so re-running a score for the same as-of is idempotent.
* ``scored_leads``: the latest row per lead across all runs (most recent ``as_of`` wins, then
  ``scored_at``), always derived from the history, so re-scoring an older as-of never
  overwrites a newer score; only leads still open at their latest scoring. A run that knows
  some leads closed (won or lost) by its as-of hands their ids over
  (:meth:`RunWriter.close_leads`); their rows leave ``scored_leads`` (the history keeps them),
  and the target records, per lead, the as-of of the run that knew (``scored_leads_closed``:
  ``lead_id``, ``closed_by``). A lead's latest row is left out while a record is newer than
  it, so a back-fill of an earlier as-of, when the lead was open, does not bring it back, and
  a lead scored again at a later as-of (reopened) is shown again. A lead no run mentions
  stays as it was.

``previous_stage`` is the stage of the lead's newest row strictly before the row's as-of. A
commit keeps it true for the rows after the run's as-of too: a back-fill of an earlier as-of,
or a re-run that changes or drops leads, recomputes the later rows of those leads.

Targets are named by a string (:func:`parse_target`): a DuckDB file (the default,
``data/scored_leads.duckdb``), a ``.parquet`` or ``.csv`` file (the latest table; the history
is a folder beside it, ``NAME_history/``, with one file per run), or any SQLAlchemy URL
(PostgreSQL and SQLite are tested).

Writes are atomic. Chunks of a run are first staged in a Parquet file (bounded memory: the
scorer hands over chunks, never the whole run), then swapped in at :meth:`RunWriter.commit`:
in one transaction for DuckDB and SQL databases, by ``os.replace`` of complete files for
Parquet and CSV. A run killed at any point leaves the previous tables intact and readable;
readers see the old tables or the new ones (Parquet and CSV: each file is old or new; a
run killed between the two renames leaves the latest file one run behind until the next run).
Heavy lifting (duplicate checks, updating the latest table) runs in SQL (DuckDB for files),
never by loading the history into pandas.

Everything here takes and returns pandas DataFrames; nothing depends on how the scores were
made.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pandas.api import types as ptypes

from leadscore.errors import DataError
from leadscore.io import (
    DUCKDB_SUFFIXES,
    check_folder_takes_files,
    file_in_the_way,
    is_sql_url,
    sqlite_file,
)

if TYPE_CHECKING:
    import sqlalchemy as sa

logger = logging.getLogger(__name__)

__all__ = [
    "CLOSED_TABLE",
    "COLUMNS",
    "DEFAULT_TARGET",
    "HISTORY_TABLE",
    "LATEST_TABLE",
    "REASONS_SEPARATOR",
    "REASON_KEYS",
    "RUN_KEY_COLUMNS",
    "SCORED_LEADS_SCHEMA",
    "STAGES",
    "Column",
    "RunKey",
    "RunWriter",
    "SinkTarget",
    "WriteSummary",
    "attach_previous_stages",
    "check_target",
    "open_run",
    "parse_target",
    "previous_stages",
    "read_history",
    "read_scored_leads",
    "schema_markdown",
    "validate_scored_leads",
    "write_scored_leads",
]

# --------------------------------------------------------------------------- the schema

ColumnKind = Literal["text", "timestamp", "double", "integer", "boolean"]
TargetKind = Literal["duckdb", "parquet", "csv", "sql"]


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
        "of the booster's SHA-256 for a model folder",
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
#: How long a DuckDB open waits for another process's lock before giving up.
_LOCK_WAIT_S = 15.0
_STAGING_PREFIX = "leadscore-run-"


def shown_model(name: str, version: str) -> str:
    """How a scoring model is named to people: ``leadscore v3`` for a registered version,
    ``run 0a1b...`` or ``olist 5f3e...`` for a run id or a folder's fingerprint."""
    return f"{name} v{version}" if str(version).isdigit() else f"{name} {version}"


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


# --------------------------------------------------------------------------- keys and targets


def _to_stamp(value: pd.Timestamp | str) -> pd.Timestamp:
    """A timestamp as tz-naive UTC with microsecond unit, like the stored ones."""
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as err:
        raise DataError(f"as_of {value!r} is not a timestamp", "Give an ISO date.") from err
    if stamp is pd.NaT:
        raise DataError("as_of is missing", "Give an as_of timestamp.")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.as_unit("us")


@dataclass(frozen=True)
class RunKey:
    """What identifies a run: rows with the same key replace each other on re-runs."""

    as_of: pd.Timestamp
    model_name: str
    model_version: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "as_of", _to_stamp(self.as_of))
        for name in ("model_name", "model_version"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise DataError(
                    f"run key: {name} must be non-empty text, got {value!r}",
                    f"Give the run a {name}.",
                )

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> RunKey:
        """The key shared by every row of ``frame`` (a validated scored-leads frame)."""
        return cls(
            frame["as_of"].iloc[0], frame["model_name"].iloc[0], frame["model_version"].iloc[0]
        )

    @property
    def slug(self) -> str:
        """A file-name stem unique to this key: readable, plus a hash against collisions."""
        digest = hashlib.sha1(
            f"{self.as_of.isoformat()}|{self.model_name}|{self.model_version}".encode()
        ).hexdigest()[:10]
        safe = "_".join(
            re.sub(r"[^A-Za-z0-9.-]+", "-", part).strip("-")[:40] or "x"
            for part in (self.model_name, self.model_version)
        )
        return f"{self.as_of:%Y%m%dT%H%M%S}_{safe}_{digest}"

    def params(self) -> dict[str, Any]:
        """The key as query parameters (``as_of`` as a Python datetime)."""
        return {
            "as_of": self.as_of.to_pydatetime(),
            "model_name": self.model_name,
            "model_version": self.model_version,
        }


@dataclass(frozen=True)
class SinkTarget:
    """A parsed scored-leads target; build it with :func:`parse_target`.

    ``location`` is a file path (``duckdb``, ``parquet``, ``csv``) or an SQLAlchemy URL
    (``sql``). For Parquet and CSV, ``location`` is the latest table and the history lives in
    the folder :attr:`history_dir` beside it, one file per run.
    """

    kind: TargetKind
    location: str

    @property
    def path(self) -> Path:
        """The file of a file target."""
        if self.kind == "sql":
            raise ValueError("an SQL target has no path")
        return Path(self.location)

    @property
    def history_dir(self) -> Path:
        """The folder holding one history file per run (Parquet and CSV targets)."""
        return self.path.with_name(f"{self.path.stem}_history")

    @property
    def closed_path(self) -> Path:
        """The file of closed leads' records beside the latest file (Parquet and CSV targets)."""
        return self.path.with_name(f"{self.path.stem}_closed{self.suffix}")

    @property
    def suffix(self) -> str:
        return ".csv" if self.kind == "csv" else ".parquet"

    def __str__(self) -> str:
        if self.kind != "sql":
            return self.location
        import sqlalchemy as sa

        return sa.engine.make_url(self.location).render_as_string(hide_password=True)


@dataclass(frozen=True)
class WriteSummary:
    """What a committed run changed."""

    target: str
    run: RunKey
    rows: int
    replaced_rows: int
    latest_rows: int
    seconds: float = field(compare=False)


def parse_target(target: str | os.PathLike[str] | SinkTarget | None = None) -> SinkTarget:
    """Parse a target string: a ``.duckdb`` file, a ``.parquet`` / ``.csv`` file, or a URL.

    Parameters
    ----------
    target : ``data/scored_leads.duckdb`` (default when None), ``out/scored_leads.parquet``
        (history in ``out/scored_leads_history/``), ``out/scored_leads.csv`` (likewise), or an
        SQLAlchemy URL such as ``postgresql+psycopg://user@host/db`` or ``sqlite:///x.db``.
        ``duckdb:///path.duckdb`` names a DuckDB file too.

    Examples
    --------
    >>> parse_target("out/scores.parquet").history_dir.name
    'scores_history'
    """
    if isinstance(target, SinkTarget):
        return target
    text = DEFAULT_TARGET if target is None else os.fspath(target)
    if not text.strip():
        raise DataError(
            "empty scored-leads target", "Name a .duckdb, .parquet or .csv file or a URL."
        )
    if text.startswith("duckdb:///"):
        return SinkTarget("duckdb", text.removeprefix("duckdb:///"))
    if is_sql_url(text):
        import sqlalchemy as sa

        try:
            sa.engine.make_url(text)
        except sa.exc.ArgumentError as err:
            raise DataError(
                f"{text.split('@')[-1]} is not a valid database URL",
                "Use an SQLAlchemy URL such as postgresql+psycopg://user@host:5432/db.",
            ) from err
        return SinkTarget("sql", text)
    suffix = Path(text).suffix.lower()
    if suffix in DUCKDB_SUFFIXES:
        return SinkTarget("duckdb", text)
    if suffix in (".parquet", ".csv"):
        return SinkTarget("parquet" if suffix == ".parquet" else "csv", text)
    raise DataError(
        f"{text}: unknown scored-leads target type {suffix or '(no suffix)'!r}",
        "Name a .duckdb, .parquet or .csv file, or an SQLAlchemy URL.",
    )


# --------------------------------------------------------------------------- validation


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


def attach_previous_stages(scored: pd.DataFrame, previous: pd.DataFrame) -> pd.DataFrame:
    """Fill ``previous_stage`` and ``stage_changed`` of ``scored`` from :func:`previous_stages`.

    A lead scored for the first time gets no previous stage and ``stage_changed`` False, so
    the column says "moved between stages", never "is new".
    """
    if "stage" not in scored or "lead_id" not in scored:
        raise DataError(
            "scored leads: attach_previous_stages needs lead_id and stage",
            "Assign stages before attaching the previous ones.",
        )
    lookup = previous.drop_duplicates("lead_id").set_index("lead_id")["stage"]
    out = scored.copy()
    prev = out["lead_id"].astype("str").map(lookup).astype("str")
    out["previous_stage"] = prev.to_numpy()
    out["stage_changed"] = (prev.notna() & (prev != out["stage"].astype("str"))).to_numpy()
    return out


# --------------------------------------------------------------------------- reading


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


def _visible_files(folder: Path, suffix: str) -> list[Path]:
    """Committed history files (staging and temp files start with a dot)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"*{suffix}") if not p.name.startswith("."))


def _file_scan(paths: list[Path], kind: TargetKind) -> str:
    """A DuckDB FROM-expression reading Parquet or CSV files with the schema's types."""
    files = "[" + ", ".join(_sql_literal(str(p)) for p in paths) + "]"
    if kind == "parquet":
        return f"read_parquet({files})"
    columns = (
        "{"
        + ", ".join(
            f"{_sql_literal(c.name)}: {_sql_literal(_DUCKDB_TYPES[c.kind])}"
            for c in SCORED_LEADS_SCHEMA
        )
        + "}"
    )
    return (
        f"read_csv({files}, header = true, auto_detect = false, columns = {columns}, "
        "allow_quoted_nulls = false)"
    )


#: Columns of the closed-leads records, with their DuckDB types.
_CLOSED_COLUMNS: dict[str, str] = {"lead_id": "VARCHAR", "closed_by": "TIMESTAMP"}
_CLOSED_DDL = (
    f'CREATE TABLE IF NOT EXISTS "{CLOSED_TABLE}" '
    "(lead_id VARCHAR NOT NULL, closed_by TIMESTAMP NOT NULL)"
)


def _closed_scan(path: Path, kind: TargetKind) -> str:
    """A DuckDB FROM-expression reading a closed-leads file with its types."""
    if kind == "parquet":
        return (
            "(SELECT CAST(lead_id AS VARCHAR) AS lead_id, CAST(closed_by AS TIMESTAMP) AS "
            f"closed_by FROM read_parquet({_sql_literal(str(path))}))"
        )
    columns = "{" + ", ".join(f"'{c}': '{t}'" for c, t in _CLOSED_COLUMNS.items()) + "}"
    return (
        f"read_csv({_sql_literal(str(path))}, header = true, auto_detect = false, "
        f"columns = {columns}, allow_quoted_nulls = false)"
    )


def _check_columns(target: SinkTarget, table: str, columns: Iterable[str]) -> None:
    """A one-line DataError when an existing ``table`` is not a scored-leads table."""
    names = [str(c) for c in columns]
    if set(names) != set(COLUMNS):
        raise DataError(
            f"{target} has a table {table} with other columns ({', '.join(names)})",
            "Use another --target or drop the table.",
        )


def _check_file_columns(target: SinkTarget) -> None:
    """The latest file of a Parquet or CSV target, when there is one, has the schema's columns."""
    path = target.path
    if not path.is_file():
        return
    try:
        if target.kind == "parquet":
            names = pq.read_schema(path).names
        else:
            with path.open(newline="", encoding="utf-8") as handle:
                names = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error, pa.ArrowException) as err:
        raise DataError(
            f"{path} is not a scored-leads {target.kind} file: {str(err).splitlines()[0]}",
            "Use another --target or remove the file.",
        ) from err
    _check_columns(target, LATEST_TABLE, names)


def _check_writable_path(target: SinkTarget) -> None:
    """A file target's path can hold a file: not a folder, no file where a folder goes, and
    its nearest existing folder takes a new file (tried with a temporary file, removed at
    once), so that a place like ``/proc`` fails here, naming what failed, before scoring."""
    path = target.path
    if path.is_dir():
        raise DataError(f"{path} is a folder", "Name a file for --target.")
    blocking = file_in_the_way(path)
    if blocking is not None:
        raise DataError(
            f"{path} cannot be created: {blocking} is a file, not a folder",
            "Use a --target in a folder.",
        )
    check_folder_takes_files(path, "Use a --target in a writable folder.")


def _os_error(path: Path | str, err: OSError, *, creating: bool = False) -> DataError:
    """An OS error as one line; ``creating``: what failed is creating a file in the folder
    ``path`` (which may well exist), not writing ``path`` itself."""
    what = f"cannot create a file in {path}" if creating else f"cannot write {path}"
    return DataError(f"{what}: {err.strerror or err}", "Use a --target in a writable folder.")


def check_target(target: str | os.PathLike[str] | SinkTarget | None) -> SinkTarget:
    """Check that a run can be written to ``target`` before any scoring work: a one-line
    :class:`DataError` for a path that cannot hold the file, a file that is no DuckDB (or
    Parquet, CSV) file, or existing tables with other columns. Writes nothing."""
    sink = parse_target(target)
    if sink.kind == "sql":
        sqlite = sqlite_file(sink.location)
        if sqlite is not None:
            if sqlite.is_dir():
                raise DataError(f"{sqlite} is a folder", "Name a database file for --target.")
            _check_writable_path(SinkTarget("duckdb", str(sqlite)))
            if not sqlite.exists():
                return sink
        import sqlalchemy as sa

        with _sql_connection(sink, write=False) as con:
            inspector = sa.inspect(con)
            for table in (LATEST_TABLE, HISTORY_TABLE):
                if inspector.has_table(table):
                    _check_columns(sink, table, [c["name"] for c in inspector.get_columns(table)])
        return sink
    _check_writable_path(sink)
    with _duckdb_view(sink):  # opens a DuckDB file, checks the columns of existing tables
        pass
    return sink


def _connect_duckdb(path: Path, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB file, waiting a little while another process holds its lock."""
    deadline = time.monotonic() + _LOCK_WAIT_S
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except OSError as err:
            raise _os_error(path, err) from err
        except duckdb.Error as err:
            if not isinstance(err, duckdb.IOException) or "lock" not in str(err).lower():
                raise DataError(
                    f"{path} cannot be opened as a DuckDB file: {str(err).splitlines()[0]}",
                    "Use another --target, or a .parquet or .csv target.",
                ) from err
            if time.monotonic() > deadline:
                raise DataError(
                    f"{path} cannot be opened: {str(err).splitlines()[0]}",
                    "Close other programs using the file (another scorer, a notebook) and retry.",
                ) from err
            time.sleep(0.2)


@contextlib.contextmanager
def _duckdb_view(
    target: SinkTarget,
) -> Iterator[tuple[duckdb.DuckDBPyConnection, dict[str, str | None]]]:
    """A DuckDB connection and FROM-expressions for the tables of a DuckDB/Parquet/CSV target
    (the two scored-leads tables and the closed-leads records).

    A table's expression is None when the target does not hold it yet.
    """
    if target.kind == "duckdb":
        if not target.path.exists():
            with duckdb.connect() as con:
                yield con, dict.fromkeys((LATEST_TABLE, HISTORY_TABLE, CLOSED_TABLE))
            return
        with _connect_duckdb(target.path, read_only=True) as con:
            tables = {
                r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
            }
            for table in tables & {LATEST_TABLE, HISTORY_TABLE}:
                columns = con.execute(
                    "SELECT column_name FROM duckdb_columns() WHERE table_name = ?", [table]
                ).fetchall()
                _check_columns(target, table, [r[0] for r in columns])
            yield (
                con,
                {
                    t: (f'"{t}"' if t in tables else None)
                    for t in (LATEST_TABLE, HISTORY_TABLE, CLOSED_TABLE)
                },
            )
        return
    _check_file_columns(target)
    latest = [target.path] if target.path.exists() else []
    history = _visible_files(target.history_dir, target.suffix)
    with duckdb.connect() as con:
        yield (
            con,
            {
                LATEST_TABLE: _file_scan(latest, target.kind) if latest else None,
                HISTORY_TABLE: _file_scan(history, target.kind) if history else None,
                CLOSED_TABLE: (
                    _closed_scan(target.closed_path, target.kind)
                    if target.closed_path.is_file()
                    else None
                ),
            },
        )


def _id_filter_duckdb(con: duckdb.DuckDBPyConnection, lead_ids: Iterable[str] | None) -> str:
    if lead_ids is None:
        return "TRUE"
    ids = pa.table({"lead_id": pa.array([str(i) for i in lead_ids], pa.string())})
    con.register("_leadscore_ids", ids)
    return "lead_id IN (SELECT lead_id FROM _leadscore_ids)"


def _missing_target(target: SinkTarget) -> DataError:
    return DataError(
        f"{target} holds no scored leads yet",
        "Run leadscore score first, or name the target it wrote (--target).",
    )


def read_scored_leads(
    target: str | os.PathLike[str] | SinkTarget | None = None,
    lead_ids: Iterable[str] | None = None,
) -> pd.DataFrame:
    """The latest scored row per lead (``scored_leads``), ordered by lead_id.

    ``lead_ids`` limits the read to those leads (the ``explain`` card needs one).
    """
    return _read_table(target, LATEST_TABLE, lead_ids, "lead_id")


def read_history(
    target: str | os.PathLike[str] | SinkTarget | None = None,
    lead_ids: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Every scored row of every run (``scored_leads_history``), by lead_id then as_of."""
    return _read_table(
        target, HISTORY_TABLE, lead_ids, "lead_id, as_of, scored_at, model_name, model_version"
    )


def latest_as_of(
    target: str | os.PathLike[str] | SinkTarget | None, model_name: str
) -> pd.Timestamp | None:
    """The as-of of the newest run of ``model_name`` in the target, or None before its first.

    A lead whose own latest as-of is older was left out of that run: the scorer stops scoring
    a lead once it has closed, so its row in ``scored_leads`` is its last score, not a current
    one, and a lead card must say so.
    """
    sink = parse_target(target)
    if sink.kind == "sql":
        import sqlalchemy as sa

        history, _, _ = _sql_tables(sa.MetaData(), "r")
        sqlite = sqlite_file(sink.location)
        if sqlite is not None and not sqlite.is_file():
            return None
        with _sql_connection(sink, write=False) as con:
            if not sa.inspect(con).has_table(history.name):
                return None
            query = sa.select(sa.func.max(history.c.as_of)).where(
                history.c.model_name == model_name
            )
            value = con.execute(query).scalar()
    else:
        with _duckdb_view(sink) as (con, sources):
            source = sources[HISTORY_TABLE]
            if source is None:
                return None
            value = con.execute(
                f"SELECT max(as_of) FROM {source} WHERE model_name = ?", [model_name]
            ).fetchall()[0][0]
    return None if value is None else _to_stamp(value)


def _read_table(
    target: str | os.PathLike[str] | SinkTarget | None,
    table: str,
    lead_ids: Iterable[str] | None,
    order_by: str,
) -> pd.DataFrame:
    """One of the two tables from any sink, in the canonical dtypes (DuckDB reads files too)."""
    sink = parse_target(target)
    if sink.kind == "sql":
        return _read_sql(sink, table, lead_ids)
    with _duckdb_view(sink) as (con, sources):
        source = sources[table]
        if source is None:
            raise _missing_target(sink)
        where = _id_filter_duckdb(con, lead_ids)
        frame = con.execute(
            f"SELECT {_select_list()} FROM {source} WHERE {where} ORDER BY {order_by}"
        ).df()
    return _conform_read(frame)


def previous_stages(
    target: str | os.PathLike[str] | SinkTarget | None,
    as_of: pd.Timestamp | str,
    *,
    lead_ids: Iterable[str] | None = None,
    model_name: str | None = None,
) -> pd.DataFrame:
    """Each lead's stage at its latest scoring strictly before ``as_of``.

    Strictly before, so that re-running the same as-of sees the same previous stages and
    writes the same rows (idempotence). Empty (columns lead_id, stage) when the target does
    not exist yet.

    Parameters
    ----------
    target : where the scores are kept (see :func:`parse_target`).
    as_of : the as-of of the run about to be written.
    lead_ids : only these leads (a scorer working in chunks asks per chunk).
    model_name : only scores by this model; None takes any model.
    """
    sink = parse_target(target)
    stamp = _to_stamp(as_of)
    if sink.kind == "sql":
        return _previous_stages_sql(sink, stamp, lead_ids, model_name)
    with _duckdb_view(sink) as (con, sources):
        history, latest = sources[HISTORY_TABLE], sources[LATEST_TABLE]
        if history is None or latest is None:
            return _empty_frame(("lead_id", "stage"))
        where = "as_of < $as_of AND " + _id_filter_duckdb(con, lead_ids)
        params: dict[str, Any] = {"as_of": stamp.to_pydatetime()}
        if model_name is None and sink.kind == "duckdb":
            # A lead whose latest row is older than as_of needs nothing else: that row is its
            # newest earlier one. Only leads scored again at or after as_of (re-runs,
            # back-fills) and closed leads (no latest row) need the history, so the usual
            # case never scans the whole history.
            # (DuckDB only: there the tables always change together.)
            from_history = f"(SELECT lead_id FROM {latest} WHERE as_of >= $as_of)"
            closed = sources[CLOSED_TABLE]
            if closed is not None:
                ids = _id_filter_duckdb(con, lead_ids)
                if con.execute(
                    f"SELECT count(*) FROM {closed} WHERE {ids}"
                ).fetchone()[0]:  # fmt: skip
                    from_history = (
                        f"(SELECT lead_id FROM {latest} WHERE as_of >= $as_of "
                        f"UNION ALL SELECT lead_id FROM {closed})"
                    )
            sql = (
                f"SELECT lead_id, stage FROM {latest} WHERE {where} UNION ALL "
                f"SELECT lead_id, arg_max(stage, {_LATEST_KEY}) FROM {history} "
                f"WHERE {where} AND lead_id IN {from_history} GROUP BY lead_id"
            )
        else:
            if model_name is not None:
                where += " AND model_name = $model_name"
                params["model_name"] = model_name
            sql = (
                f"SELECT lead_id, arg_max(stage, {_LATEST_KEY}) AS stage FROM {history} "
                f"WHERE {where} GROUP BY lead_id"
            )
        frame = con.execute(
            "SELECT CAST(lead_id AS VARCHAR) AS lead_id, CAST(stage AS VARCHAR) AS stage "
            f"FROM ({sql}) ORDER BY lead_id",
            params,
        ).df()
    return _conform_read(frame)


# --------------------------------------------------------------------------- writing


def write_scored_leads(
    scored: pd.DataFrame,
    target: str | os.PathLike[str] | SinkTarget | None = None,
    *,
    closed: Iterable[str] | None = None,
) -> WriteSummary:
    """Write one run's scored leads atomically; see :func:`open_run` for large runs.

    The history rows of the same run key are replaced (re-runs are idempotent), the new rows
    appended, and ``scored_leads`` updated to each lead's latest row. ``closed`` names leads
    known closed (won or lost) by the run's as-of: they leave ``scored_leads``
    (:meth:`RunWriter.close_leads`). A bad frame raises a one-line :class:`DataError` and
    writes nothing.
    """
    frame = validate_scored_leads(scored)
    with open_run(target, RunKey.from_frame(frame)) as run:
        run.append(frame, validated=True)
        if closed is not None:
            run.close_leads(closed)
        return run.commit()


def open_run(
    target: str | os.PathLike[str] | SinkTarget | None, run: RunKey, *, memory_limit: str = "1GB"
) -> RunWriter:
    """A writer that stages one run chunk by chunk and swaps it in at commit.

    Use it as a context manager: leaving the block normally commits, leaving it with an
    exception discards the staged chunks and leaves the target as it was::

        with open_run("data/scored_leads.duckdb", RunKey(as_of, "leadscore", "3")) as run:
            for chunk in chunks:
                run.append(chunk)
        summary = run.summary_

    ``memory_limit`` caps DuckDB's memory during the commit (it spills to disk beyond it).
    """
    return RunWriter(check_target(target), run, memory_limit=memory_limit)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_stale_staging(parent: Path, prefix: str) -> None:
    """Remove staging folders of runs whose process died (a killed run leaves its folder)."""
    if not parent.is_dir():
        return
    for entry in parent.glob(f"{prefix}*"):
        match = re.match(re.escape(prefix) + r"(\d+)-", entry.name)
        if entry.is_dir() and match and not _pid_alive(int(match.group(1))):
            logger.info("removing staging folder of a killed run: %s", entry)
            shutil.rmtree(entry, ignore_errors=True)


class RunWriter:
    """Stages the chunks of one run in a Parquet file, then commits them atomically.

    Memory is bounded by one chunk: each :meth:`append` validates the chunk and writes it to
    the staging file; :meth:`commit` moves the staged rows into the target in SQL. Build it
    with :func:`open_run`.
    """

    def __init__(self, target: SinkTarget, run: RunKey, *, memory_limit: str = "1GB") -> None:
        self.target = target
        self.run = run
        self.memory_limit = memory_limit
        self.rows_ = 0
        self.summary_: WriteSummary | None = None
        self._chunks = 0
        self._dir: Path | None = None
        self._writer: pq.ParquetWriter | None = None
        self._closed = False
        self._closed_leads: list[np.ndarray] = []

    # -- staging

    def _staging_parent_and_prefix(self) -> tuple[Path, str]:
        if self.target.kind == "sql":
            return Path(tempfile.gettempdir()), _STAGING_PREFIX
        path = self.target.path.absolute()
        return path.parent, f".{path.name}.{_STAGING_PREFIX}"

    def _open_staging(self) -> None:
        parent, prefix = self._staging_parent_and_prefix()
        try:
            parent.mkdir(parents=True, exist_ok=True)
            _sweep_stale_staging(parent, prefix)
            self._dir = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))
        except OSError as err:
            raise _os_error(parent, err, creating=True) from err
        self._writer = pq.ParquetWriter(self._staged, ARROW_SCHEMA, compression="zstd")

    @property
    def _staged(self) -> Path:
        assert self._dir is not None
        return self._dir / "staged.parquet"

    def append(self, chunk: pd.DataFrame, *, validated: bool = False) -> int:
        """Validate ``chunk`` (rows of this run) and stage it; return the rows staged so far.

        ``validated=True`` skips the validation, for a frame that came out of
        :func:`validate_scored_leads` already.
        """
        if self._closed:
            raise RuntimeError("this run was already committed or aborted")
        frame = chunk if validated else validate_scored_leads(chunk)
        key = RunKey.from_frame(frame)
        if key != self.run:
            raise DataError(
                f"scored leads: chunk of run {key.as_of} {key.model_name} {key.model_version} "
                f"written to run {self.run.as_of} {self.run.model_name} {self.run.model_version}",
                "Give every chunk of a run the run's as_of, model_name and model_version.",
            )
        if self._writer is None:
            self._open_staging()
        assert self._writer is not None
        self._writer.write_table(
            pa.Table.from_pandas(frame, schema=ARROW_SCHEMA, preserve_index=False)
        )
        self.rows_ += len(frame)
        self._chunks += 1
        logger.debug("staged chunk %d (%d rows so far)", self._chunks, self.rows_)
        return self.rows_

    def close_leads(self, lead_ids: Iterable[str]) -> None:
        """Record leads known to be closed (won or lost) by this run's as-of: at commit their
        rows leave ``scored_leads`` (see the module docstring). Leads the run does not name
        are left as they are, so a run over part of the leads closes only what it knows."""
        if self._closed:
            raise RuntimeError("this run was already committed or aborted")
        ids = np.asarray([str(i) for i in lead_ids], dtype=object)
        if len(ids):
            self._closed_leads.append(ids)

    def _stage_closed_leads(self) -> Path | None:
        """The closed leads' ids, deduplicated, as a Parquet file beside the staged rows."""
        if not self._closed_leads:
            return None
        assert self._dir is not None
        ids = pd.unique(np.concatenate(self._closed_leads))
        path = self._dir / "closed.parquet"
        pq.write_table(pa.table({"lead_id": pa.array(ids, pa.string())}), path)
        return path

    def _finish_staging(self) -> None:
        assert self._writer is not None
        self._writer.close()
        self._writer = None
        if self._chunks > 1:
            assert self._dir is not None
            with duckdb.connect() as con:
                _configure_duckdb(con, self.memory_limit, self._dir)
                row = con.execute(
                    "SELECT lead_id, count(*) FROM read_parquet(?) GROUP BY lead_id "
                    "HAVING count(*) > 1 LIMIT 1",
                    [str(self._staged)],
                ).fetchone()
            if row is not None:
                raise DataError(
                    f"scored leads: lead_id {row[0]!r} appears {row[1]} times in one run",
                    "Score each lead once per run (check the chunks do not overlap).",
                )

    # -- commit / abort

    def commit(self) -> WriteSummary:
        """Swap the staged rows in atomically and return what changed."""
        if self._closed:
            raise RuntimeError("this run was already committed or aborted")
        if self.rows_ == 0:
            self.abort()
            raise DataError(
                f"run {self.run.as_of} {self.run.model_name} {self.run.model_version} has no rows",
                "Append at least one chunk of scored leads before committing.",
            )
        start = time.perf_counter()
        try:
            self._finish_staging()
            commit = _COMMITTERS[self.target.kind]
            replaced, latest = commit(
                self.target,
                self._staged,
                self.run,
                self.memory_limit,
                self._stage_closed_leads(),
            )
        finally:
            self.abort()
        self.summary_ = WriteSummary(
            target=str(self.target),
            run=self.run,
            rows=self.rows_,
            replaced_rows=replaced,
            latest_rows=latest,
            seconds=time.perf_counter() - start,
        )
        logger.info(
            "wrote %d scored leads to %s (%d replaced; %d leads in %s) in %.1fs",
            self.rows_, self.target, replaced, latest, LATEST_TABLE, self.summary_.seconds,
        )  # fmt: skip
        return self.summary_

    def abort(self) -> None:
        """Discard the staged chunks; the target is left untouched."""
        self._closed = True
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None and not self._closed:
            self.commit()
        else:
            self.abort()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            with contextlib.suppress(Exception):
                self.abort()


# -- DuckDB file


def _configure_duckdb(con: duckdb.DuckDBPyConnection, memory_limit: str, spill: Path) -> None:
    con.execute(f"SET memory_limit = {_sql_literal(memory_limit)}")
    con.execute(f"SET temp_directory = {_sql_literal(str(spill))}")
    con.execute("SET preserve_insertion_order = false")


#: Leads of a run (``{touched}``: its new and replaced rows) that have rows at a later as-of:
#: their previous stages depend on this run. The latest table tells without the history.
_LATER_DUCKDB = (
    "SELECT DISTINCT lead_id FROM {latest} "
    "WHERE as_of > $as_of AND lead_id IN (SELECT lead_id FROM {touched})"
)


def _previous_by_as_of_duckdb(history: str, leads: str) -> str:
    """(lead_id, as_of, previous_stage) for every as-of of the ``leads``: the stage of the
    newest row strictly before that as-of, the rule :func:`previous_stages` applies."""
    return (
        "SELECT lead_id, as_of, lag(stage) OVER (PARTITION BY lead_id ORDER BY as_of) "
        "AS previous_stage FROM (SELECT lead_id, as_of, "
        "arg_max(stage, (scored_at, model_name, model_version)) AS stage "
        f"FROM {history} WHERE lead_id IN (SELECT lead_id FROM {leads}) GROUP BY lead_id, as_of)"
    )


def _restage_later_duckdb(history: str, leads: str) -> str:
    """An UPDATE that recomputes previous_stage and stage_changed of the ``leads``' rows after
    the run's as-of: a back-fill or a re-run changes what came before them."""
    return (
        f"UPDATE {history} SET previous_stage = p.previous_stage, "
        f"stage_changed = coalesce(p.previous_stage <> {history}.stage, false) "
        f"FROM ({_previous_by_as_of_duckdb(history, leads)}) AS p "
        f"WHERE {history}.lead_id = p.lead_id AND {history}.as_of = p.as_of "
        f"AND {history}.as_of > $as_of"
    )


def _commit_duckdb(
    target: SinkTarget, staged: Path, run: RunKey, memory_limit: str, closed: Path | None
) -> tuple[int, int]:
    """Replace the run in the history and update the latest table, in one transaction.

    The latest table is updated, not rebuilt: its cost follows the run, not the history, so
    daily runs stay as fast in a year as on day one. For each lead of the run the winner is
    the newest of its new row and its current latest row (an older as-of never overwrites a
    newer one). Leads whose latest row came from an earlier write of this same run (a re-run)
    fall back to their history, since that row is being replaced. Leads of the run with rows
    at a later as-of (a back-fill, or a re-run that changed or dropped them) get those rows'
    previous stages recomputed and their latest row rebuilt from the history. Last, the
    closed leads are recorded and leave the latest table (:func:`_apply_closed_duckdb`).
    """
    try:
        target.path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _os_error(target.path, err) from err
    key = "as_of = $as_of AND model_name = $model_name AND model_version = $model_version"
    params = run.params()
    scan = f"read_parquet({_sql_literal(str(staged))})"
    keys = "lead_id, as_of, scored_at, model_name, model_version"
    in_run = f"lead_id IN (SELECT lead_id FROM {scan})"
    with _connect_duckdb(target.path, read_only=False) as con:
        _configure_duckdb(con, memory_limit, staged.parent)
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(_duckdb_ddl(HISTORY_TABLE))
            con.execute(_duckdb_ddl(LATEST_TABLE))
            con.execute(_CLOSED_DDL)
            con.execute(
                "CREATE TEMP TABLE _leadscore_rerun AS "
                f"SELECT lead_id FROM {LATEST_TABLE} WHERE {key}",
                params,
            )
            rerun = con.execute("SELECT count(*) FROM _leadscore_rerun").fetchone()[0]
            con.execute(
                "CREATE TEMP TABLE _leadscore_touched AS "
                f"SELECT lead_id FROM {HISTORY_TABLE} WHERE {key}",
                params,
            )
            replaced = con.execute("SELECT count(*) FROM _leadscore_touched").fetchone()[0]
            con.execute(f"INSERT INTO _leadscore_touched SELECT lead_id FROM {scan}")
            con.execute(f"DELETE FROM {HISTORY_TABLE} WHERE {key}", params)
            con.execute(f"INSERT INTO {HISTORY_TABLE} SELECT {_select_list()} FROM {scan}")
            # Candidates for each touched lead: 1 = its new row, 0 = its current latest row,
            # 2 = its other history rows (re-runs only). The winner's source says what to do.
            candidates = (
                f"SELECT {keys}, 1 AS src FROM {scan} UNION ALL "
                f"SELECT {keys}, 0 AS src FROM {LATEST_TABLE} WHERE NOT ({key}) AND {in_run}"
            )
            if rerun:
                candidates += (
                    f" UNION ALL SELECT {keys}, 2 AS src FROM {HISTORY_TABLE} "
                    f"WHERE NOT ({key}) AND lead_id IN (SELECT lead_id FROM _leadscore_rerun)"
                )
            con.execute(
                "CREATE TEMP TABLE _leadscore_winner AS SELECT lead_id, "
                f"arg_max(src, {_LATEST_KEY}) AS src, max({_LATEST_KEY}) AS k "
                f"FROM ({candidates}) GROUP BY lead_id",
                params,
            )
            con.execute(
                f"DELETE FROM {LATEST_TABLE} "
                "WHERE lead_id IN (SELECT lead_id FROM _leadscore_winner WHERE src = 1) "
                "OR lead_id IN (SELECT lead_id FROM _leadscore_rerun)"
            )
            con.execute(
                f"INSERT INTO {LATEST_TABLE} SELECT {_select_list()} FROM {scan} "
                "WHERE lead_id IN (SELECT lead_id FROM _leadscore_winner WHERE src = 1)"
            )
            if rerun:
                con.execute(
                    f"INSERT INTO {LATEST_TABLE} SELECT {_select_list('h.')} "
                    f"FROM {HISTORY_TABLE} h SEMI JOIN _leadscore_winner w "
                    f"ON h.lead_id = w.lead_id AND w.src = 2 AND {_LATEST_KEY_H} = w.k "
                    "WHERE NOT (h.as_of = $as_of AND h.model_name = $model_name "
                    "AND h.model_version = $model_version)",
                    params,
                )
            later = _LATER_DUCKDB.format(latest=LATEST_TABLE, touched="_leadscore_touched")
            if con.execute(
                f'SELECT count(*) FROM "{CLOSED_TABLE}" WHERE closed_by > $as_of',
                {"as_of": params["as_of"]},
            ).fetchone()[0]:
                # closed leads have no latest row: their later rows are in the history only
                later += (
                    f" UNION SELECT DISTINCT lead_id FROM {HISTORY_TABLE} WHERE as_of > $as_of "
                    "AND lead_id IN (SELECT lead_id FROM _leadscore_touched) AND lead_id IN "
                    f'(SELECT lead_id FROM "{CLOSED_TABLE}" WHERE closed_by > $as_of)'
                )
            con.execute(
                f"CREATE TEMP TABLE _leadscore_later AS {later}", {"as_of": params["as_of"]}
            )
            if con.execute("SELECT count(*) FROM _leadscore_later").fetchone()[0]:
                con.execute(
                    _restage_later_duckdb(HISTORY_TABLE, "_leadscore_later"),
                    {"as_of": params["as_of"]},
                )
                con.execute(
                    f"DELETE FROM {LATEST_TABLE} "
                    "WHERE lead_id IN (SELECT lead_id FROM _leadscore_later)"
                )
                con.execute(
                    f"INSERT INTO {LATEST_TABLE} SELECT {_select_list()} FROM {HISTORY_TABLE} "
                    "WHERE lead_id IN (SELECT lead_id FROM _leadscore_later) "
                    f"QUALIFY row_number() OVER (PARTITION BY lead_id ORDER BY {_LATEST_ORDER}) = 1"
                )
            for temp in ("rerun", "winner", "touched", "later"):
                con.execute(f"DROP TABLE _leadscore_{temp}")
            _apply_closed_duckdb(con, closed, params["as_of"])
            latest = con.execute(f"SELECT count(*) FROM {LATEST_TABLE}").fetchone()[0]
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise
    return int(replaced), int(latest)


def _apply_closed_duckdb(con: duckdb.DuckDBPyConnection, closed: Path | None, as_of: Any) -> None:
    """Record the run's closed leads and drop every latest row a record is newer than.

    The rows the commit just (re)built may belong to leads recorded closed later (a back-fill
    of an earlier as-of): those go first. A closed lead of the run is recorded when it has no
    record yet, or when it is shown with a row older than the run (reopened, then closed
    again); a lead already left out keeps its record, so the table grows by newly closed
    leads only.
    """
    con.execute(
        f'DELETE FROM {LATEST_TABLE} WHERE EXISTS (SELECT 1 FROM "{CLOSED_TABLE}" c '
        f"WHERE c.lead_id = {LATEST_TABLE}.lead_id AND c.closed_by > {LATEST_TABLE}.as_of)"
    )
    if closed is None:
        return
    con.execute(
        "CREATE TEMP TABLE _leadscore_closing AS SELECT DISTINCT lead_id "
        f"FROM read_parquet({_sql_literal(str(closed))}) WHERE lead_id NOT IN "
        f'(SELECT lead_id FROM "{CLOSED_TABLE}") OR lead_id IN '
        f"(SELECT lead_id FROM {LATEST_TABLE} WHERE as_of < $as_of)",
        {"as_of": as_of},
    )
    con.execute(
        f'DELETE FROM "{CLOSED_TABLE}" WHERE lead_id IN (SELECT lead_id FROM _leadscore_closing)'
    )
    con.execute(
        f'INSERT INTO "{CLOSED_TABLE}" SELECT lead_id, $as_of FROM _leadscore_closing',
        {"as_of": as_of},
    )
    con.execute(
        f"DELETE FROM {LATEST_TABLE} WHERE as_of < $as_of "
        "AND lead_id IN (SELECT lead_id FROM _leadscore_closing)",
        {"as_of": as_of},
    )
    con.execute("DROP TABLE _leadscore_closing")


# -- Parquet and CSV files


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _restage_later_files(
    con: duckdb.DuckDBPyConnection,
    target: SinkTarget,
    run: RunKey,
    new_run_file: Path,
    old_run_file: Path | None,
    others: list[Path],
    work: Path,
) -> dict[Path, Path]:
    """Later runs' files with the previous stages of the run's leads recomputed, in ``work``.

    Returns {history file: its corrected copy} for the files that change (none, unless the
    run is a back-fill or a re-run that changed stages); the caller renames them into place.
    """
    if not others:
        return {}
    params = {"as_of": run.as_of.to_pydatetime()}
    scan = _file_scan(others, target.kind)
    touched = [new_run_file] + ([old_run_file] if old_run_file is not None else [])
    touched_ids = f"(SELECT lead_id FROM {_file_scan(touched, target.kind)})"
    closed_later = 0
    if target.closed_path.is_file():
        # a closed lead has no latest row: its later rows are in the history only
        closed_later = con.execute(
            f"SELECT count(*) FROM {_closed_scan(target.closed_path, target.kind)} "
            f"WHERE closed_by > $as_of AND lead_id IN {touched_ids}",
            params,
        ).fetchone()[0]
    if target.path.exists() and not closed_later:
        # A lead with a later row has a later latest row: a forward run (the daily case)
        # answers from the latest file alone, without reading the whole history.
        later_latest = con.execute(
            f"SELECT count(*) FROM {_file_scan([target.path], target.kind)} "
            f"WHERE as_of > $as_of AND lead_id IN {touched_ids}",
            params,
        ).fetchone()[0]
        if not later_latest:
            return {}
    con.execute(
        "CREATE TEMP TABLE _leadscore_later AS SELECT DISTINCT lead_id FROM "
        f"{scan} WHERE as_of > $as_of AND lead_id IN {touched_ids}",
        params,
    )
    if not con.execute("SELECT count(*) FROM _leadscore_later").fetchone()[0]:
        return {}
    history = (
        f"(SELECT {_select_list()} FROM {_file_scan([new_run_file], target.kind)} "
        f"UNION ALL SELECT {_select_list()} FROM {scan})"
    )
    con.execute(
        "CREATE TEMP TABLE _leadscore_prev AS "
        f"{_previous_by_as_of_duckdb(history, '_leadscore_later')}"
    )
    named = scan[:-1] + ", filename = true)"
    stale = con.execute(
        f"SELECT DISTINCT h.filename FROM {named} h JOIN _leadscore_prev p "
        "ON h.lead_id = p.lead_id AND h.as_of = p.as_of WHERE h.as_of > $as_of "
        "AND h.previous_stage IS DISTINCT FROM p.previous_stage",
        params,
    ).fetchall()
    by_name = {str(p): p for p in others}
    recomputed = {
        "previous_stage": "p.previous_stage",
        "stage_changed": "coalesce(p.previous_stage <> h.stage, false)",
    }
    columns = ", ".join(
        f"CASE WHEN p.lead_id IS NULL THEN h.{c} ELSE {recomputed[c]} END AS {c}"
        if c in recomputed
        else f"h.{c}"
        for c in COLUMNS
    )
    fixed: dict[Path, Path] = {}
    for i, (name,) in enumerate(sorted(stale)):
        path = by_name[name]
        out = work / f"later{i}{target.suffix}"
        _copy_rows(
            con,
            f"SELECT {columns} FROM (SELECT {_select_list()} "
            f"FROM {_file_scan([path], target.kind)}) h LEFT JOIN _leadscore_prev p "
            f"ON h.lead_id = p.lead_id AND h.as_of = p.as_of ORDER BY h.lead_id",
            out,
            target.kind,
        )
        fixed[path] = out
    return fixed


def _copy_rows(con: duckdb.DuckDBPyConnection, query: str, out: Path, kind: TargetKind) -> int:
    """Write the rows of ``query`` (the schema's columns) to ``out``; return how many.

    Parquet is rewritten through Arrow with :data:`ARROW_SCHEMA`, batch by batch, so that a
    file written here (the latest file, a later run's file rewritten by a back-fill) has the
    very schema of the run files the scorer stages: DuckDB's own writer marks every column
    nullable and leaves out the pandas metadata.
    """
    if kind == "csv":
        copied = con.execute(f"COPY ({query}) TO {_sql_literal(str(out))} (FORMAT CSV, HEADER)")
        return int(copied.fetchall()[0][0])
    raw = out.with_name(f"{out.stem}.raw.parquet")
    con.execute(
        f"COPY (SELECT {', '.join(COLUMNS)} FROM ({query})) TO {_sql_literal(str(raw))} "
        "(FORMAT PARQUET, COMPRESSION ZSTD)"
    ).fetchall()
    rows = 0
    try:
        with pq.ParquetWriter(out, ARROW_SCHEMA, compression="zstd") as writer:
            for batch in pq.ParquetFile(raw).iter_batches(batch_size=100_000):
                writer.write_table(pa.Table.from_batches([batch]).cast(ARROW_SCHEMA))
                rows += batch.num_rows
    finally:
        raw.unlink(missing_ok=True)
    return rows


def _commit_files(
    target: SinkTarget, staged: Path, run: RunKey, memory_limit: str, closed: Path | None
) -> tuple[int, int]:
    """New run file and rebuilt latest file, built in full beside the target, then renamed.

    Each file is replaced by one ``os.replace``: readers see a complete old or new file. The
    run's history file is renamed first, then the later runs' files whose previous stages the
    run changed (a back-fill), then the closed-leads file, and the latest file last. The latest
    file is always rebuilt from the whole history (less the leads recorded closed after their
    newest row), so a run killed between the renames is healed by the next one (the later
    runs' previous stages by running the killed run again). A rename that fails (a file
    another user owns, a full disk) undoes the ones before it: see :func:`_replace_all_or_none`.
    """
    hist_dir = target.history_dir
    try:
        hist_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _os_error(hist_dir, err) from err
    run_file = hist_dir / f"{run.slug}{target.suffix}"
    others = [p for p in _visible_files(hist_dir, target.suffix) if p != run_file]
    work = staged.parent
    new_latest = work / f"latest{target.suffix}"
    fmt = (
        "(FORMAT PARQUET, COMPRESSION ZSTD)" if target.kind == "parquet" else "(FORMAT CSV, HEADER)"
    )
    with duckdb.connect() as con:
        _configure_duckdb(con, memory_limit, work)
        replaced = 0
        if run_file.exists():
            replaced = con.execute(
                f"SELECT count(*) FROM {_file_scan([run_file], target.kind)}"
            ).fetchone()[0]
        if target.kind == "csv":
            new_run_file = work / "run.csv"
            con.execute(
                f"COPY (SELECT {_select_list()} FROM read_parquet({_sql_literal(str(staged))})) "
                f"TO {_sql_literal(str(new_run_file))} {fmt}"
            )
        else:
            new_run_file = staged
        fixed = _restage_later_files(
            con, target, run, new_run_file, run_file if run_file.exists() else None, others, work
        )
        current = [fixed.get(p, p) for p in others]
        union = f"SELECT {_select_list()} FROM {_file_scan([new_run_file], target.kind)}"
        if current:
            union += f" UNION ALL SELECT {_select_list()} FROM {_file_scan(current, target.kind)}"
        con.execute(
            f"CREATE TEMP TABLE _leadscore_newest AS SELECT * FROM ({union}) "
            f"QUALIFY row_number() OVER (PARTITION BY lead_id ORDER BY {_LATEST_ORDER}) = 1"
        )
        new_closed = _apply_closed_files(con, target, closed, run, work)
        # People open CSV files: sort them. Parquet readers filter, so skip the sort there.
        order = " ORDER BY lead_id" if target.kind == "csv" else ""
        latest = _copy_rows(con, f"SELECT * FROM _leadscore_newest{order}", new_latest, target.kind)
    moves = [(new_run_file, run_file), *((new, old) for old, new in fixed.items())]
    if new_closed is not None:
        moves.append((new_closed, target.closed_path))
    moves.append((new_latest, target.path))
    for new, _ in moves:
        _fsync(new)
    _replace_all_or_none(moves, work)
    with contextlib.suppress(OSError):
        _fsync(hist_dir)
        _fsync(target.path.parent)
    return int(replaced), int(latest)


def _replace_all_or_none(moves: Sequence[tuple[Path, Path]], work: Path) -> None:
    """``os.replace`` each new file over its destination, in order, or leave every destination
    as it was and raise a one-line :class:`DataError`.

    Each existing destination is first hard-linked into ``work`` (beside the target, so on
    its file system; copied where it has no hard links); when a rename fails, those already done are
    turned back from the links, newest first, and new files are removed again, so history
    and the latest table never disagree after a failed run.
    """
    kept: dict[Path, Path] = {}
    done: list[Path] = []
    try:
        for i, (_, destination) in enumerate(moves):
            if destination.exists():
                kept[destination] = work / f"kept-{i}{destination.suffix}"
                try:
                    os.link(destination, kept[destination])
                except OSError:  # a file system without hard links: a copy does the same
                    shutil.copy2(destination, kept[destination])
        for new, destination in moves:
            os.replace(new, destination)
            done.append(destination)
    except OSError as err:
        for destination in reversed(done):
            with contextlib.suppress(OSError):
                if destination in kept:
                    os.replace(kept[destination], destination)
                else:
                    destination.unlink()
        raise _os_error(err.filename or work, err) from err


def _apply_closed_files(
    con: duckdb.DuckDBPyConnection,
    target: SinkTarget,
    closed: Path | None,
    run: RunKey,
    work: Path,
) -> Path | None:
    """Drop from ``_leadscore_newest`` the rows a closed-lead record is newer than, with the
    run's closed leads recorded as :func:`_apply_closed_duckdb` does; return the new
    closed-leads file to rename into place, or None when it does not change."""
    params = {"as_of": run.as_of.to_pydatetime()}
    old = _closed_scan(target.closed_path, target.kind) if target.closed_path.is_file() else None
    if old is None and closed is None:
        return None
    con.execute(
        "CREATE TEMP TABLE _leadscore_records AS SELECT * FROM "
        + (old if old is not None else "(SELECT NULL::VARCHAR AS lead_id, "
           "NULL::TIMESTAMP AS closed_by WHERE false)")
    )  # fmt: skip
    con.execute(
        "DELETE FROM _leadscore_newest WHERE EXISTS (SELECT 1 FROM _leadscore_records c "
        "WHERE c.lead_id = _leadscore_newest.lead_id AND c.closed_by > _leadscore_newest.as_of)"
    )
    if closed is None:
        return None
    con.execute(
        "CREATE TEMP TABLE _leadscore_closing AS SELECT DISTINCT lead_id "
        f"FROM read_parquet({_sql_literal(str(closed))}) WHERE lead_id NOT IN "
        "(SELECT lead_id FROM _leadscore_records) OR lead_id IN "
        "(SELECT lead_id FROM _leadscore_newest WHERE as_of < $as_of)",
        params,
    )
    if not con.execute("SELECT count(*) FROM _leadscore_closing").fetchone()[0]:
        return None
    con.execute(
        "DELETE FROM _leadscore_newest WHERE as_of < $as_of "
        "AND lead_id IN (SELECT lead_id FROM _leadscore_closing)",
        params,
    )
    out = work / f"closed{target.suffix}"
    fmt = (
        "(FORMAT PARQUET, COMPRESSION ZSTD)" if target.kind == "parquet" else "(FORMAT CSV, HEADER)"
    )
    con.execute(
        "COPY (SELECT lead_id, closed_by FROM _leadscore_records WHERE lead_id NOT IN "
        "(SELECT lead_id FROM _leadscore_closing) UNION ALL "
        "SELECT lead_id, CAST($as_of AS TIMESTAMP) FROM _leadscore_closing ORDER BY lead_id) "
        f"TO {_sql_literal(str(out))} {fmt}",
        params,
    )
    return out


# -- SQL databases (SQLAlchemy)


def _sql_tables(metadata: sa.MetaData, temp_suffix: str) -> tuple[sa.Table, sa.Table, sa.Table]:
    """The two scored-leads tables and a temporary table of affected lead ids."""
    import sqlalchemy as sa

    def sql_type(col: Column) -> sa.types.TypeEngine[Any]:
        if col.kind == "text":
            return sa.String(255) if col.name in _KEY_TEXT else sa.Text()
        return {
            "timestamp": sa.DateTime(timezone=False),
            "double": sa.Double(),
            "integer": sa.Integer(),
            "boolean": sa.Boolean(),
        }[col.kind]

    def columns(primary: bool) -> list[sa.Column[Any]]:
        return [
            sa.Column(
                c.name,
                sql_type(c),
                nullable=c.nullable,
                primary_key=primary and c.name == "lead_id",
            )
            for c in SCORED_LEADS_SCHEMA
        ]

    history = sa.Table(
        HISTORY_TABLE,
        metadata,
        *columns(False),
        sa.Index(f"ix_{HISTORY_TABLE}_run", *RUN_KEY_COLUMNS),
        sa.Index(f"ix_{HISTORY_TABLE}_lead", "lead_id", "as_of"),
    )
    latest = sa.Table(LATEST_TABLE, metadata, *columns(True))
    affected = sa.Table(
        f"_leadscore_affected_{temp_suffix}",
        sa.MetaData(),
        sa.Column("lead_id", sa.String(255)),
        prefixes=["TEMPORARY"],
    )
    return history, latest, affected


def _sql_engine(target: SinkTarget) -> sa.Engine:
    """An engine whose transactions really cover DDL too (SQLite's driver needs help)."""
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(target.location)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ModuleNotFoundError) as err:
        raise DataError(
            f"cannot open database URL {target}: {str(err).splitlines()[0]}",
            "Use an SQLAlchemy URL whose driver is installed, e.g. postgresql+psycopg://...",
        ) from err
    if engine.dialect.name == "sqlite":
        # pysqlite opens transactions lazily and never for DDL; take control so that the
        # whole commit, CREATE TABLE included, is one transaction (SQLAlchemy's recipe).
        @sa.event.listens_for(engine, "connect")
        def _no_implicit_tx(dbapi_con: Any, _record: Any) -> None:
            dbapi_con.isolation_level = None

        @sa.event.listens_for(engine, "begin")
        def _explicit_begin(con: sa.Connection) -> None:
            con.exec_driver_sql("BEGIN")

    return engine


@contextlib.contextmanager
def _sql_connection(target: SinkTarget, *, write: bool) -> Iterator[sa.Connection]:
    import sqlalchemy as sa

    engine = _sql_engine(target)
    try:
        with engine.begin() if write else engine.connect() as con:
            yield con
    except sa.exc.DatabaseError as err:
        if type(err) not in (sa.exc.OperationalError, sa.exc.DatabaseError):
            raise
        raise DataError(
            f"cannot use the database {target}: {str(err.orig).splitlines()[0]}",
            "Check the URL, the server and the credentials.",
        ) from err
    finally:
        engine.dispose()


def _copy_postgres(con: sa.Connection, table: str, staged: Path) -> None:
    """Bulk-load the staged rows with COPY (psycopg), inside the open transaction."""
    import pyarrow.csv as pacsv

    raw = con.connection.driver_connection
    cols = ", ".join(f'"{c}"' for c in COLUMNS)
    sql = f'COPY "{table}" ({cols}) FROM STDIN WITH (FORMAT csv, HEADER false)'
    options = pacsv.WriteOptions(include_header=False)
    with raw.cursor() as cur, cur.copy(sql) as copy:
        for batch in pq.ParquetFile(staged).iter_batches(batch_size=50_000):
            sink = pa.BufferOutputStream()
            pacsv.write_csv(pa.Table.from_batches([batch]), sink, options)
            copy.write(sink.getvalue().to_pybytes())


def _insert_rows(con: sa.Connection, table: sa.Table, staged: Path) -> None:
    if con.dialect.name == "postgresql" and con.dialect.driver == "psycopg":
        _copy_postgres(con, table.name, staged)
        return
    for batch in pq.ParquetFile(staged).iter_batches(batch_size=20_000):
        con.execute(table.insert(), batch.to_pylist())


def _latest_select(history: sa.Table, where: Any) -> sa.Select[Any]:
    import sqlalchemy as sa

    rank = (
        sa.func.row_number()
        .over(
            partition_by=history.c.lead_id,
            order_by=[
                history.c.as_of.desc(),
                history.c.scored_at.desc(),
                history.c.model_name.desc(),
                history.c.model_version.desc(),
            ],
        )
        .label("_rank")
    )
    ranked = sa.select(*history.c, rank).where(where).subquery()
    return sa.select(*(ranked.c[c] for c in COLUMNS)).where(ranked.c._rank == 1)


def _closed_table(metadata: sa.MetaData) -> sa.Table:
    """The closed-leads records of an SQL target (see the module docstring)."""
    import sqlalchemy as sa

    return sa.Table(
        CLOSED_TABLE,
        metadata,
        sa.Column("lead_id", sa.String(255), primary_key=True),
        sa.Column("closed_by", sa.DateTime(timezone=False), nullable=False),
    )


def _restage_later_sql(
    con: sa.Connection,
    history: sa.Table,
    latest: sa.Table,
    affected: sa.Table,
    as_of: Any,
    closed: sa.Table,
) -> None:
    """Recompute previous_stage and stage_changed of the affected leads' rows after ``as_of``.

    A back-fill or a re-run changes what came before those rows. Portable SQL (window
    functions and correlated updates), so that SQLite and PostgreSQL run the same statements;
    the latest rows of those leads are rebuilt from the history by the caller.
    """
    import sqlalchemy as sa

    suffix = uuid.uuid4().hex[:8]
    # indexed: the updates below look a row up in them for every later history row
    later = sa.Table(
        f"_leadscore_later_{suffix}",
        sa.MetaData(),
        sa.Column("lead_id", sa.String(255), index=True),
        prefixes=["TEMPORARY"],
    )
    prev = sa.Table(
        f"_leadscore_prev_{suffix}",
        sa.MetaData(),
        sa.Column("lead_id", sa.String(255)),
        sa.Column("as_of", sa.DateTime(timezone=False)),
        sa.Column("previous_stage", sa.String(255)),
        sa.Index(f"_leadscore_prev_ix_{suffix}", "lead_id", "as_of"),
        prefixes=["TEMPORARY"],
    )
    later.create(con)
    con.execute(
        later.insert().from_select(
            ["lead_id"],
            sa.select(latest.c.lead_id).where(
                latest.c.as_of > as_of, latest.c.lead_id.in_(sa.select(affected.c.lead_id))
            ),
        )
    )
    closed_later = sa.select(closed.c.lead_id).where(closed.c.closed_by > as_of)
    if con.execute(sa.select(sa.func.count()).select_from(closed_later.subquery())).scalar_one():
        # closed leads have no latest row: their later rows are in the history only
        con.execute(
            later.insert().from_select(
                ["lead_id"],
                sa.select(history.c.lead_id)
                .where(
                    history.c.as_of > as_of,
                    history.c.lead_id.in_(sa.select(affected.c.lead_id)),
                    history.c.lead_id.in_(closed_later),
                )
                .distinct(),
            )
        )
    if con.execute(sa.select(sa.func.count()).select_from(later)).scalar_one():
        prev.create(con)
        newest_first = [
            history.c.scored_at.desc(),
            history.c.model_name.desc(),
            history.c.model_version.desc(),
        ]
        rank = sa.func.row_number().over(
            partition_by=[history.c.lead_id, history.c.as_of], order_by=newest_first
        )
        ranked = (
            sa.select(history.c.lead_id, history.c.as_of, history.c.stage, rank.label("_rank"))
            .where(history.c.lead_id.in_(sa.select(later.c.lead_id)))
            .subquery()
        )
        last = (
            sa.select(ranked.c.lead_id, ranked.c.as_of, ranked.c.stage)
            .where(ranked.c._rank == 1)
            .subquery()
        )
        before = sa.func.lag(last.c.stage).over(partition_by=last.c.lead_id, order_by=last.c.as_of)
        con.execute(
            prev.insert().from_select(
                ["lead_id", "as_of", "previous_stage"],
                sa.select(last.c.lead_id, last.c.as_of, before),
            )
        )
        rows = sa.and_(history.c.as_of > as_of, history.c.lead_id.in_(sa.select(later.c.lead_id)))
        looked_up = (
            sa.select(prev.c.previous_stage)
            .where(prev.c.lead_id == history.c.lead_id, prev.c.as_of == history.c.as_of)
            .scalar_subquery()
        )
        con.execute(history.update().where(rows).values(previous_stage=looked_up))
        moved = sa.and_(
            history.c.previous_stage.is_not(None), history.c.previous_stage != history.c.stage
        )
        con.execute(
            history.update()
            .where(rows)
            .values(stage_changed=sa.case((moved, sa.true()), else_=sa.false()))
        )
        prev.drop(con)
    later.drop(con)


def _apply_closed_sql(
    con: sa.Connection, latest: sa.Table, closed: sa.Table, staged_closed: Path | None, as_of: Any
) -> None:
    """:func:`_apply_closed_duckdb` in portable SQL: drop the latest rows a closed-lead record
    is newer than, then record the run's closed leads and drop their older rows."""
    import sqlalchemy as sa

    newer = (
        sa.select(closed.c.lead_id)
        .where(closed.c.lead_id == latest.c.lead_id, closed.c.closed_by > latest.c.as_of)
        .exists()
    )
    con.execute(latest.delete().where(newer))
    if staged_closed is None:
        return
    suffix = uuid.uuid4().hex[:8]
    given = sa.Table(
        f"_leadscore_given_{suffix}",
        sa.MetaData(),
        sa.Column("lead_id", sa.String(255)),
        prefixes=["TEMPORARY"],
    )
    closing = sa.Table(
        f"_leadscore_closing_{suffix}",
        sa.MetaData(),
        sa.Column("lead_id", sa.String(255), primary_key=True),
        prefixes=["TEMPORARY"],
    )
    given.create(con)
    closing.create(con)
    for batch in pq.ParquetFile(staged_closed).iter_batches(batch_size=50_000):
        con.execute(given.insert(), batch.to_pylist())
    pick = sa.select(given.c.lead_id).where(
        sa.or_(
            ~given.c.lead_id.in_(sa.select(closed.c.lead_id)),
            given.c.lead_id.in_(sa.select(latest.c.lead_id).where(latest.c.as_of < as_of)),
        )
    )
    con.execute(closing.insert().from_select(["lead_id"], pick.distinct()))
    chosen = sa.select(closing.c.lead_id)
    con.execute(closed.delete().where(closed.c.lead_id.in_(chosen)))
    con.execute(
        closed.insert().from_select(
            ["lead_id", "closed_by"],
            sa.select(closing.c.lead_id, sa.literal(as_of, sa.DateTime(timezone=False))),
        )
    )
    con.execute(latest.delete().where(latest.c.as_of < as_of, latest.c.lead_id.in_(chosen)))
    given.drop(con)
    closing.drop(con)


def _commit_sql(
    target: SinkTarget, staged: Path, run: RunKey, memory_limit: str, closed: Path | None
) -> tuple[int, int]:
    """Replace the run in the history and update the latest rows, in one transaction.

    Only the leads the run touches get their latest row rebuilt: the leads in the run, and
    those in an earlier write of the same run (a re-run that drops a lead falls back to the
    lead's earlier row). That keeps a run that scores a few new leads cheap on a large table.
    Those leads' rows at later as-ofs get their previous stages recomputed (a back-fill).
    Last, the closed leads are recorded and leave the latest table (:func:`_apply_closed_sql`).
    """
    import sqlalchemy as sa

    del memory_limit  # the database manages its own memory
    sqlite = sqlite_file(target.location)
    if sqlite is not None:
        try:
            sqlite.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise _os_error(sqlite, err) from err
    history, latest, affected = _sql_tables(sa.MetaData(), uuid.uuid4().hex[:8])
    records = _closed_table(history.metadata)
    with _sql_connection(target, write=True) as con:
        history.metadata.create_all(con)
        affected.create(con)
        key = sa.and_(*(history.c[k] == v for k, v in run.params().items()))
        con.execute(
            affected.insert().from_select(["lead_id"], sa.select(history.c.lead_id).where(key))
        )
        replaced = con.execute(history.delete().where(key)).rowcount
        _insert_rows(con, history, staged)
        con.execute(
            affected.insert().from_select(["lead_id"], sa.select(history.c.lead_id).where(key))
        )
        if con.dialect.name == "postgresql":
            con.exec_driver_sql(f'ANALYZE "{affected.name}"')
        touched = history.c.lead_id.in_(sa.select(affected.c.lead_id))
        as_of = run.as_of.to_pydatetime()
        _restage_later_sql(con, history, latest, affected, as_of, records)
        con.execute(latest.delete().where(latest.c.lead_id.in_(sa.select(affected.c.lead_id))))
        con.execute(latest.insert().from_select(list(COLUMNS), _latest_select(history, touched)))
        affected.drop(con)
        _apply_closed_sql(con, latest, records, closed, as_of)
        count = con.execute(sa.select(sa.func.count()).select_from(latest)).scalar_one()
    return int(replaced), int(count)


_COMMITTERS: dict[
    TargetKind, Callable[[SinkTarget, Path, RunKey, str, Path | None], tuple[int, int]]
] = {
    "duckdb": _commit_duckdb,
    "parquet": _commit_files,
    "csv": _commit_files,
    "sql": _commit_sql,
}


def _with_ids_sql(con: sa.Connection, lead_ids: Iterable[str]) -> sa.Table:
    """A temporary table holding ``lead_ids``, for joins that scale past an IN list."""
    import sqlalchemy as sa

    ids = sa.Table(
        f"_leadscore_ids_{uuid.uuid4().hex[:8]}",
        sa.MetaData(),
        sa.Column("lead_id", sa.String(255)),
        prefixes=["TEMPORARY"],
    )
    ids.create(con)
    values = [{"lead_id": str(i)} for i in lead_ids]
    if values:
        con.execute(ids.insert(), values)
    return ids


def _read_sql(target: SinkTarget, table_name: str, lead_ids: Iterable[str] | None) -> pd.DataFrame:
    import sqlalchemy as sa

    history, latest, _ = _sql_tables(sa.MetaData(), "r")
    table = latest if table_name == LATEST_TABLE else history
    sqlite = sqlite_file(target.location)
    if sqlite is not None and not sqlite.is_file():
        raise _missing_target(target)
    with _sql_connection(target, write=False) as con:
        inspector = sa.inspect(con)
        if not inspector.has_table(table.name):
            raise _missing_target(target)
        _check_columns(target, table.name, [c["name"] for c in inspector.get_columns(table.name)])
        query = sa.select(table)
        if lead_ids is not None:
            ids = _with_ids_sql(con, lead_ids)
            query = query.where(table.c.lead_id.in_(sa.select(ids.c.lead_id)))
        order = (
            ["lead_id"]
            if table is latest
            else ["lead_id", "as_of", "scored_at", "model_name", "model_version"]
        )
        query = query.order_by(*(table.c[c] for c in order))
        frame = pd.read_sql(query, con)
    if frame.empty:
        return _empty_frame()
    return _conform_read(frame[list(COLUMNS)])


def _previous_stages_sql(
    target: SinkTarget,
    as_of: pd.Timestamp,
    lead_ids: Iterable[str] | None,
    model_name: str | None,
) -> pd.DataFrame:
    import sqlalchemy as sa

    history, _, _ = _sql_tables(sa.MetaData(), "r")
    sqlite = sqlite_file(target.location)
    if sqlite is not None and not sqlite.is_file():
        return _empty_frame(("lead_id", "stage"))  # no history yet; the commit makes the file
    with _sql_connection(target, write=False) as con:
        inspector = sa.inspect(con)
        if not inspector.has_table(history.name):
            return _empty_frame(("lead_id", "stage"))
        _check_columns(
            target, history.name, [c["name"] for c in inspector.get_columns(history.name)]
        )
        where = history.c.as_of < as_of.to_pydatetime()
        if model_name is not None:
            where = sa.and_(where, history.c.model_name == model_name)
        if lead_ids is not None:
            ids = _with_ids_sql(con, lead_ids)
            where = sa.and_(where, history.c.lead_id.in_(sa.select(ids.c.lead_id)))
        latest = _latest_select(history, where).subquery()
        query = sa.select(latest.c.lead_id, latest.c.stage).order_by(latest.c.lead_id)
        frame = pd.read_sql(query, con)
    if frame.empty:
        return _empty_frame(("lead_id", "stage"))
    return _conform_read(frame)
