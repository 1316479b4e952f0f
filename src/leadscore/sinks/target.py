"""Targets and run keys: what a scoring run is written to, and under which key.

:func:`parse_target` turns a target string (a DuckDB file, a Parquet or CSV file, an
SQLAlchemy URL) into a :class:`SinkTarget`; :class:`RunKey` identifies a run in the history.
Also the checks every backend shares (a path that can hold the file, existing tables with the
schema's columns) and the one-line errors they raise.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from leadscore.errors import DataError, shortened_list
from leadscore.io import (
    DUCKDB_SUFFIXES,
    check_folder_takes_files,
    duckdb_url_path,
    file_in_the_way,
    is_sql_url,
    shown_url,
    sqlite_file,
)
from leadscore.sinks.schema import (
    CLOSED_SCHEMA,
    CLOSED_TABLE,
    DEFAULT_TARGET,
    HISTORY_TABLE,
    LATEST_TABLE,
    SCORED_LEADS_SCHEMA,
    Column,
    ColumnKind,
)

logger = logging.getLogger(__name__)

TargetKind = Literal["duckdb", "parquet", "csv", "sql"]


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
        # shown_url, not SQLAlchemy's hide_password: that masks user:pw@ only, and libpq's
        # ?password=... went into every log line and error naming the target
        return self.location if self.kind != "sql" else shown_url(self.location)

    def __repr__(self) -> str:
        return f"SinkTarget(kind={self.kind!r}, location={str(self)!r})"


@dataclass(frozen=True)
class WriteSummary:
    """What a committed run changed."""

    target: str
    run: RunKey
    rows: int
    replaced_rows: int
    latest_rows: int
    seconds: float = field(compare=False)
    #: rows whose previous stage the commit set from the target, differing from the frame's
    restaged_rows: int = field(default=0, compare=False)


#: URL schemes of object stores and web addresses: none is a database, and no sink writes there.
OBJECT_STORE_SCHEMES = frozenset(
    {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "hdfs", "http", "https"}
)


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
    duckdb_file = duckdb_url_path(text)
    if duckdb_file is not None:
        return SinkTarget("duckdb", duckdb_file)
    scheme = text.split("://", 1)[0].lower() if "://" in text else None
    if scheme in OBJECT_STORE_SCHEMES:
        # SQLAlchemy would read s3:// as a database dialect and ask for its driver
        raise DataError(
            f"{text}: a scored-leads target in an object store ({scheme}://) is not supported",
            "Write to a local .parquet or .duckdb file and copy it there, or give a database URL.",
        )
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
    if not suffix and Path(text).is_dir():
        raise DataError(
            f"{text} is a folder, not a scored-leads target",
            f"Name a file in it, such as {Path(text) / 'scored_leads.duckdb'}.",
        )
    raise DataError(
        f"{text}: unknown scored-leads target type {suffix or '(no suffix)'!r}",
        "Name a .duckdb, .parquet or .csv file, or an SQLAlchemy URL.",
    )


#: A stored column's type as a backend reads it: the schema kind (:class:`ColumnKind`) its
#: values are written and read back as (None: none of them), and the type as the database or
#: the file names it. A column whose type cannot be told (SQLite's, declared without one) is
#: left out: SQLite stores the values as given.
StoredType = tuple[ColumnKind | None, str]


def _table_schema(table: str) -> tuple[Column, ...]:
    """The columns of a target's ``table``: the closed-lead records' or the scored leads'."""
    return CLOSED_SCHEMA if table == CLOSED_TABLE else SCORED_LEADS_SCHEMA


def _file_of(target: SinkTarget, table: str, file: Path | None) -> Path:
    """The file of a Parquet or CSV target that holds ``table`` (a history file is named)."""
    if file is not None:
        return file
    return target.closed_path if table == CLOSED_TABLE else target.path


def _file_role(table: str) -> str:
    """What a target reads a file of ``table`` as, for the error line."""
    if table == HISTORY_TABLE:
        return "scored-leads run file"
    return "closed-leads file" if table == CLOSED_TABLE else "scored-leads file"


def _file_fix(target: SinkTarget, table: str) -> str:
    """The fix of a file of a Parquet or CSV target that is not what the target reads it as:
    a file holds no table to drop, and what to do with it depends on its place."""
    if table == HISTORY_TABLE:
        return (
            f"Move it out of {target.history_dir} (or restore it from a backup): every "
            f"{target.suffix} file there is read as a run of {target}."
        )
    if table == CLOSED_TABLE:
        return (
            "Restore it from a backup, or move it away (the leads it recorded closed then show "
            "in scored_leads again until a run closes them)."
        )
    return "Use another --target, or move that file away if it is an old scored-leads file."


def _check_columns(
    target: SinkTarget, table: str, columns: Iterable[str], *, file: Path | None = None
) -> None:
    """A one-line DataError when an existing ``table`` has other columns than the schema's
    (:func:`_table_schema`); for a Parquet or CSV target, when its file of that table
    (``file``: a run file of its history) has (a file holds no tables to drop: the fix is
    another target, or moving the file).

    The columns that differ come first (:func:`_column_differences`): a CRM team's
    ``synced_at`` added to ``scored_leads`` was lost in a list of the table's 16 columns cut
    off as "... (8 more)". A table that is no scored-leads table at all (few columns in
    common) also says which columns it has; one that only gained columns is told to drop them.
    DuckDB reads a CSV file's columns by position, so there the order must be the schema's.
    """
    names = [str(c) for c in columns]
    expected = [c.name for c in _table_schema(table)]
    files = target.kind in ("parquet", "csv")
    kind = "Parquet" if target.kind == "parquet" else "CSV"
    if set(names) == set(expected):
        if target.kind == "csv" and names != expected:
            at = next(i for i, (a, b) in enumerate(zip(names, expected, strict=True)) if a != b)
            raise DataError(
                f"{_file_of(target, table, file)} has the columns of a {_file_role(table)} in "
                f"another order (column {at + 1} is {names[at]}, not {expected[at]}), and "
                "CSV columns are read by position",
                _file_fix(target, table),
            )
        return
    differences = _column_differences(names, expected)
    if files:
        raise DataError(
            f"{_file_of(target, table, file)} is a {kind} file with other columns "
            f"({differences}), not a {_file_role(table)}",
            _file_fix(target, table),
        )
    only_added = set(expected) <= set(names)
    raise DataError(
        f"{target} has a table {table} with other columns ({differences})",
        "Drop those columns from it (keep your own columns in a table of your own, joined on "
        "lead_id: every run rewrites the rows of this one), or use another --target."
        if only_added
        else "Use another --target or drop the table.",
    )


def _check_types(
    target: SinkTarget, table: str, found: dict[str, StoredType], *, file: Path | None = None
) -> None:
    """A one-line DataError when a column of an existing ``table`` (of a Parquet file) has a
    type the schema's values are not written or read back as: ``score boolean`` or
    ``lead_id integer`` took the column check and failed the commit, after the scoring, with
    the database's traceback. ``found``: the columns' :data:`StoredType`, by name."""
    wrong = [
        (col, found[col.name][1])
        for col in _table_schema(table)
        if col.name in found and found[col.name][0] != col.kind
    ]
    if not wrong:
        return
    detail = shortened_list([f"{c.name} is {shown}, not {c.kind}" for c, shown in wrong], 4)
    if target.kind in ("parquet", "csv"):
        raise DataError(
            f"{_file_of(target, table, file)} is a Parquet file with columns of other types "
            f"({detail}), not a {_file_role(table)}",
            _file_fix(target, table),
        )
    if table == LATEST_TABLE:
        fix = (
            f"Drop the table (the next run rebuilds it from {HISTORY_TABLE}), or use another "
            "--target."
        )
    else:
        them = "that column its type" if len(wrong) == 1 else "those columns their types"
        fix = (
            f"Give {them} back (the scored-leads schema in the README: text, timestamp, "
            "double, integer or boolean), or use another --target."
        )
    raise DataError(f"{target} has a table {table} with columns of other types ({detail})", fix)


def _column_differences(names: list[str], expected: list[str]) -> str:
    """How the columns ``names`` of a table differ from ``expected`` (the schema's), for one
    line: the unexpected ones, the missing ones, and, where it shares less than half the
    expected columns (another table altogether), the columns it has."""
    unexpected = [n for n in names if n not in expected]
    missing = [c for c in expected if c not in names]
    parts = []
    if unexpected:
        parts.append(f"unexpected {shortened_list(unexpected, limit=5)}")
    if missing:
        parts.append(f"missing {shortened_list(missing, limit=5)}")
    if 2 * (len(names) - len(unexpected)) < len(expected):
        parts.append(f"it has {shortened_list(names, limit=8) or 'no columns'}")
    return "; ".join(parts)


def _arrow_kind(kind: pa.DataType) -> ColumnKind | None:
    """The schema kind a Parquet column's Arrow type is read back as, or None."""
    if pa.types.is_dictionary(kind):
        return _arrow_kind(kind.value_type)
    checks: tuple[tuple[ColumnKind, Any], ...] = (
        ("text", pa.types.is_string),
        ("text", pa.types.is_large_string),
        ("text", getattr(pa.types, "is_string_view", lambda _: False)),
        ("timestamp", pa.types.is_timestamp),
        ("double", pa.types.is_floating),
        ("integer", pa.types.is_integer),
        ("boolean", pa.types.is_boolean),
    )
    return next((name for name, check in checks if check(kind)), None)


def _check_file(target: SinkTarget, path: Path, table: str) -> None:
    """A file of a Parquet or CSV target (its latest file, a run file of its history, its
    closed-leads file) has ``table``'s columns and, in Parquet, their types. Read from the
    footer or the first line only, so a whole history is checked in moments: a stray file
    there failed the commit after the scoring, in DuckDB's words."""
    try:
        if target.kind == "parquet":
            schema = pq.read_schema(path)
            names = schema.names
            found = {
                f.name: (_arrow_kind(f.type), str(f.type))
                for f in schema
                if not pa.types.is_null(f.type)  # a column of nulls only: any type reads it
            }
        else:
            with path.open(newline="", encoding="utf-8") as handle:
                names = next(csv.reader(handle), [])
            found = {}
    except (OSError, UnicodeDecodeError, csv.Error, pa.ArrowException) as err:
        latest = table == LATEST_TABLE
        what = f"scored-leads {target.kind} file" if latest else _file_role(table)
        raise DataError(
            f"{path} is not a {what}: {str(err).splitlines()[0]}",
            "Use another --target or remove the file." if latest else _file_fix(target, table),
        ) from err
    _check_columns(target, table, names, file=path)
    _check_types(target, table, found, file=path)


def _visible_files(folder: Path, suffix: str) -> list[Path]:
    """Committed history files (staging and temp files start with a dot)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"*{suffix}") if not p.name.startswith("."))


def _check_target_files(target: SinkTarget, *, history: bool) -> None:
    """The files a Parquet or CSV target holds (its latest file, its closed-leads file and,
    with ``history``, every run file of its history) are what the target reads them as
    (:func:`_check_file`). The history is checked before a run scores (:func:`check_target`);
    a read of it names a bad file in DuckDB's words."""
    if target.path.is_file():
        _check_file(target, target.path, LATEST_TABLE)
    if target.closed_path.is_file():
        _check_file(target, target.closed_path, CLOSED_TABLE)
    if history:
        for path in _visible_files(target.history_dir, target.suffix):
            _check_file(target, path, HISTORY_TABLE)


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


def make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents, as a target in a new folder needs; return
    the folders created, outermost first (none when it existed), so that a run that fails
    can remove them again. Logged at INFO: a mistyped ``--target`` must not make folders in
    silence."""
    missing: list[Path] = []
    at = folder
    while not at.exists() and at != at.parent:
        missing.append(at)
        at = at.parent
    folder.mkdir(parents=True, exist_ok=True)
    if missing:
        logger.info("created the folder %s for the scored-leads target", missing[0])
    return missing[::-1]


def remove_empty_folders(folders: list[Path]) -> None:
    """Remove ``folders`` (from :func:`make_folders`), innermost first, where they are still
    empty: what a failed run made and left unused."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            return


def log_restaged(target: SinkTarget, rows: int) -> None:
    """Say that a commit corrected ``rows`` of its run's previous stages (see the committers'
    ``_restage_run_*``): another run wrote to the target after the scorer read them, or the
    frame came without them."""
    if rows:
        logger.info(
            "%s of this run's previous stages differed from what %s holds at commit (another "
            "run wrote there after they were read, or they were not read): written as the "
            "target holds them",
            f"{rows:,}",
            target,
        )


def _os_error(path: Path | str, err: OSError, *, creating: bool = False) -> DataError:
    """An OS error as one line; ``creating``: what failed is creating a file in the folder
    ``path`` (which may well exist), not writing ``path`` itself."""
    what = f"cannot create a file in {path}" if creating else f"cannot write {path}"
    return DataError(f"{what}: {os_reason(err)}", os_error_fix(err))


#: An errno as the libraries write it into a message: ``[Errno 28]``, ``[errno 27]`` (Arrow),
#: ``"errno":"28"`` (DuckDB).
_ERRNO_IN_TEXT = re.compile(r"errno\W{0,4}(\d+)", re.IGNORECASE)

#: Errors of a disk that is full (or a quota, or a file size limit, reached).
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def os_errno(err: BaseException) -> int | None:
    """The errno of an error from writing a file, also where a library kept it only in its
    message (Arrow's and DuckDB's I/O errors: the number, or the system's words for a full
    disk), or ``None``."""
    number = getattr(err, "errno", None)
    if isinstance(number, int):
        return number
    text = str(err)
    found = _ERRNO_IN_TEXT.search(text)
    if found:
        return int(found.group(1))
    return next((n for n in sorted(_NO_ROOM) if os.strerror(n) in text), None)


def is_out_of_room(err: BaseException) -> bool:
    """Whether a write failed for want of room: a full disk, a quota, a file size limit."""
    return os_errno(err) in _NO_ROOM


def os_reason(err: BaseException) -> str:
    """What the system said of a failed write, as one line: ``No space left on device``
    rather than Arrow's ``Error writing bytes to file. Detail: [errno 28] ...``; the library's
    message (whitespace collapsed) where it names no errno."""
    number = os_errno(err)
    if number is not None:
        with contextlib.suppress(ValueError):
            return os.strerror(number)
    text = " ".join(str(getattr(err, "strerror", None) or err).split())
    return text or type(err).__name__


def os_error_fix(
    err: BaseException, where: str = "there", elsewhere: str = "use a --target on another disk"
) -> str:
    """The fix of a failed write: room on the disk (``where``: the folder written to) or
    writing ``elsewhere`` for a full disk, a quota or a file size limit, a writable folder
    otherwise."""
    if is_out_of_room(err):
        return f"Free disk space {where} (or raise the quota or file size limit), or {elsewhere}."
    return "Use a --target in a writable folder."


def _missing_target(target: SinkTarget) -> DataError:
    """No scores to read: a path that does not exist (a typo, more often than not) is named
    as such, not as a target that was never written to."""
    sqlite = sqlite_file(target.location) if target.kind == "sql" else None
    path = sqlite if target.kind == "sql" else target.path
    exists = path is None or path.exists()
    if target.kind in ("parquet", "csv"):
        exists = exists or target.history_dir.exists()
    if not exists:
        assert path is not None
        return DataError(
            f"{path} does not exist",
            "Check the path (--target), or run leadscore score --target with it first.",
        )
    return DataError(
        f"{target} holds no scored leads yet",
        "Run leadscore score first, or name the target it wrote (--target).",
    )
