"""Reading and writing tables at the edges of the flow.

Sources are named by a string: a path to a ``.csv``, ``.parquet`` or ``.duckdb`` file (a
DuckDB file needs a table name), or an SQLAlchemy URL (``postgresql://...``, ``sqlite:///...``)
with a table name or a query. Everything inside the package works on DataFrames; only this
module touches files and databases, and it turns every way a read can fail on the user's side
(a typo in a table name or a query, a server down, a broken file) into one :class:`DataError`.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import secrets
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from leadscore.errors import DataError
from leadscore.schema import (
    ACTIVITIES_REQUIRED,
    LEAD_FIT_FIELDS,
    LEADS_REQUIRED,
    MISSING_SPELLINGS,
    OUTCOMES_REQUIRED,
    ClosedLoopData,
    TimestampSummary,
    _require_columns,
    closed_before_created_error,
    column_name,
    count_duplicate_activities,
    extract_moment,
    future_cutoff,
    parse_observed_until,
    parse_timestamps_as,
    tail_rows,
    text_timestamp_format,
    timestamp_summary,
    utc_now,
    validate_closed_loop,
    validate_leads,
    warn_duplicate_activities,
)

if TYPE_CHECKING:
    import duckdb
    import sqlalchemy as sa

logger = logging.getLogger(__name__)

TABLE_SUFFIXES = (".parquet", ".csv")
DUCKDB_SUFFIXES = (".duckdb", ".db", ".ddb")
EVENT_TABLES = ("leads", "activities", "outcomes")

#: Event-form CSV columns read as written: ids keep their zeros (``00123``) and the id ``NA``
#: or Namibia's country code ``NA`` stay values; only an empty field is missing.
EVENT_TEXT_COLUMNS: dict[str, tuple[str, ...]] = {
    "leads": ("lead_id", "country"),
    "activities": ("lead_id",),
    "outcomes": ("lead_id",),
}

_SQLITE_MAGIC = b"SQLite format 3\x00"


class NoSuchTableError(DataError):
    """The database or DuckDB file has no table of that name: for the optional event tables
    that means "none recorded", while any other failure to read them is an error."""


def is_sql_url(source: str | os.PathLike[str]) -> bool:
    """Whether ``source`` is an SQLAlchemy URL rather than a file path."""
    text = str(source)
    return "://" in text and not text.startswith("file://")


def sqlite_file(url: str) -> Path | None:
    """The database file of an SQLite URL (``sqlite:///relative.db``, ``sqlite:////abs.db``,
    any driver), or ``None`` for another database, in-memory or URI-mode SQLite.

    The one reading of such URLs, for every check that a file exists or can be created.
    """
    if not str(url).startswith("sqlite"):
        return None
    import sqlalchemy as sa

    try:
        parsed = sa.engine.make_url(str(url))
    except sa.exc.ArgumentError:
        return None
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    return None if database.startswith("file:") else Path(database)


def _first_line(err: BaseException) -> str:
    text = str(getattr(err, "orig", None) or err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def shown_url(url: str) -> str:
    """A path or URL as it may be printed and logged: a database URL's password masked, so
    that an error line or a tuning summary can be pasted into a ticket."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


@contextmanager
def _read_errors(where: str, suffix: str) -> Iterator[None]:
    """Turn the errors of reading ``where`` into one-line :class:`DataError` s.

    Shared by :func:`read_table` and :func:`iter_table_chunks` (around the lazy iteration
    too), so both readers answer a mistake with the same line.
    """
    import duckdb
    import sqlalchemy as sa

    try:
        yield
    except DataError:
        raise
    except (duckdb.Error, sa.exc.DBAPIError, pd.errors.DatabaseError) as err:
        if suffix in TABLE_SUFFIXES:
            raise _unreadable(where, suffix, err) from err
        raise DataError(
            f"{where}: query failed: {_first_line(err)}",
            "Check the table and column names in the query.",
        ) from err
    except (pd.errors.EmptyDataError, pd.errors.ParserError, OSError, ValueError) as err:
        raise _unreadable(where, suffix, err) from err


def _unreadable(where: str, suffix: str, err: BaseException) -> DataError:
    fix = (
        f"Check that the file is a valid {suffix.lstrip('.').upper()} file."
        if suffix
        else "Check the table, the query and the column types."
    )
    return DataError(f"{where} cannot be read: {_first_line(err)}", fix)


def _table_file(source: str | os.PathLike[str], table: str | None, query: str | None) -> Path:
    """``source`` as a readable table file, or a one-line error saying what is wrong."""
    path = Path(source)
    if not path.exists():
        raise DataError(f"{path} does not exist", "Check the path, or create the file first.")
    if path.is_dir():
        raise DataError(
            f"{path} is a folder, not a table file", "Name a .csv, .parquet or .duckdb file."
        )
    suffix = path.suffix.lower()
    if suffix not in (*TABLE_SUFFIXES, *DUCKDB_SUFFIXES):
        raise DataError(
            f"{path}: unknown file type {suffix!r}",
            "Use a .csv, .parquet or .duckdb file, or an SQLAlchemy URL.",
        )
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty", "Give a file with a header and at least one row.")
    if suffix in TABLE_SUFFIXES and (table is not None or query is not None):
        what = "query" if query is not None else "table"
        raise DataError(
            f"{path}: a {what} applies to DuckDB files and SQL databases only, not to a "
            f"{suffix} file",
            f"Remove the {what}, or load the file into DuckDB and query that.",
        )
    if suffix == ".csv":
        _check_comma_separated(path)
    if suffix in DUCKDB_SUFFIXES:
        with path.open("rb") as handle:
            if handle.read(16) == _SQLITE_MAGIC:
                raise DataError(
                    f"{path} is an SQLite database, not a DuckDB file",
                    f"Pass it as a URL: sqlite:///{path.resolve()}",
                )
    return path


def _check_comma_separated(path: Path) -> None:
    """A CSV whose header holds no comma but splits on ``;``, a tab or ``|`` (a European
    Excel export, say) would be read as one column and fail later as "missing column"; name
    the separator instead. It is not guessed: such files often write ``3,5`` for 3.5 too."""
    with path.open(encoding="utf-8-sig", errors="replace") as handle:
        header = handle.readline(65536).rstrip("\r\n")
    if "," in header:
        return
    for separator, name in ((";", "';'"), ("\t", "tabs"), ("|", "'|'")):
        if len([f for f in header.split(separator) if f.strip()]) > 1:
            raise DataError(
                f"{path}: columns are separated by {name}, not commas",
                "Save the table as comma-separated CSV (decimal point '.') or as Parquet.",
            )


def _csv_options(
    path: Path, na_values: Sequence[str] | None, text_columns: Sequence[str], strings: bool
) -> dict[str, object]:
    """``pd.read_csv`` options reading ``text_columns`` as written (only empty is missing)
    and every other column as pandas does (or as text, with ``strings``), with ``na_values``
    added."""
    header = [] if not (text_columns or strings) else list(pd.read_csv(path, nrows=0).columns)
    text = [c for c in header if c in text_columns]
    if not text and not strings:
        return {"na_values": None if na_values is None else list(na_values)}
    others = [*([""] if strings else MISSING_SPELLINGS), *(na_values or ())]
    return {
        "dtype": dict.fromkeys(header if strings else text, "str"),
        "keep_default_na": False,
        "na_values": {c: [""] if c in text else others for c in header},
    }


def read_table(
    source: str | os.PathLike[str],
    table: str | None = None,
    *,
    query: str | None = None,
    na_values: list[str] | None = None,
    text_columns: Sequence[str] = (),
    strings: bool = False,
) -> pd.DataFrame:
    """Read one table from a file or a database.

    Parameters
    ----------
    source : path of a CSV, Parquet or DuckDB file, or an SQLAlchemy URL.
    table : table name, for DuckDB files and databases.
    query : SQL to run instead of reading a whole table (databases and DuckDB files).
    na_values : extra tokens that mean "missing" in CSV files.
    text_columns : CSV columns read as text exactly as written (ids: ``00123`` keeps its
        zeros, ``NA`` stays ``NA``); only an empty field is missing there.
    strings : read every other CSV column as text too, only an empty field (or a
        ``na_values`` token) missing, for a caller that types columns itself as it types a
        Parquet file or a database: pandas' guess per file or per chunk would turn ``00731``
        into 731, ``TRUE`` into a boolean and the country ``NA`` into a missing value.
    """
    if is_sql_url(source):
        return _read_sql(str(source), table, query)
    path = _table_file(source, table, query)
    suffix = path.suffix.lower()
    with _read_errors(str(path), suffix):
        if suffix == ".csv":
            options = _csv_options(path, na_values, text_columns, strings)
            frame = pd.read_csv(path, low_memory=False, **options)  # type: ignore[arg-type]
        elif suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = _read_duckdb(path, table, query)
    return _drop_unnamed(frame)


def _drop_unnamed(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop empty ``Unnamed: N`` columns that a trailing comma in a CSV header creates, and
    write every column name in Unicode's composed form (:func:`~leadscore.schema.column_name`),
    as specs and models name them."""
    unnamed = [c for c in frame.columns if str(c).startswith("Unnamed: ") and frame[c].isna().all()]
    frame = frame.drop(columns=unnamed) if unnamed else frame
    names = [column_name(c) for c in frame.columns]
    if names == list(frame.columns):
        return frame
    if len(set(names)) < len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise DataError(
            f"two columns are both named {twice!r}, written with different Unicode characters",
            "Rename one of them.",
        )
    return frame.set_axis(names, axis=1)


@contextmanager
def _duckdb_file(
    path: Path, table: str | None, query: str | None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to a DuckDB file whose ``table`` is known to exist."""
    import duckdb

    if table is None and query is None:
        raise DataError(
            f"{path} is a DuckDB file but no table was named",
            "Name the table to read (table: in the spec, or --table).",
        )
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as err:
        raise DataError(
            f"{path} cannot be opened as a DuckDB file: {_first_line(err)}",
            "Check that it is a DuckDB file and that no other program is writing to it.",
        ) from err
    with con:
        if query is None:
            try:
                con.execute(f'SELECT * FROM "{table}" LIMIT 0').fetchall()
            except duckdb.CatalogException as err:
                tables = [r[0] for r in con.execute("SHOW TABLES").fetchall()]
                if str(table).lower() in (t.lower() for t in tables):
                    raise DataError(
                        f"{path}: table {table!r} cannot be read: {_first_line(err)}",
                        "Fix the table or view in the DuckDB file.",
                    ) from err
                raise NoSuchTableError(
                    f"{path} has no table {table!r} (tables: {', '.join(tables) or 'none'})",
                    "Name one of its tables.",
                ) from err
        yield con


def _read_duckdb(path: Path, table: str | None, query: str | None) -> pd.DataFrame:
    with _duckdb_file(path, table, query) as con:
        return con.execute(query or f'SELECT * FROM "{table}"').df()


@contextmanager
def _sql_connection(url: str, table: str | None, query: str | None) -> Iterator[sa.Connection]:
    """A connection to the database of ``url`` whose ``table`` is known to exist."""
    import sqlalchemy as sa

    if table is None and query is None:
        raise DataError(
            f"{shown_url(url)}: no table or query named",
            "Name the table to read, or give a query.",
        )
    database = sqlite_file(url)
    if database is not None and not database.is_file():
        raise DataError(f"SQLite database {database} does not exist", "Check the path.")
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ModuleNotFoundError) as err:
        raise DataError(
            f"cannot open database URL: {err}",
            "Use an SQLAlchemy URL such as postgresql+psycopg://user@host/db.",
        ) from err
    try:
        try:
            con = engine.connect()
        except sa.exc.DBAPIError as err:
            raise DataError(
                f"cannot connect to the database: {_first_line(err)}",
                "Check the URL, the server and the credentials.",
            ) from err
        with con:
            if query is None and not sa.inspect(con).has_table(table):
                raise NoSuchTableError(
                    f"database has no table {table!r}", "Name an existing table."
                )
            yield con
    finally:
        engine.dispose()


def _select_sql(table: str | None, query: str | None) -> Any:
    """The SQL that reads a table, or the user's query: values come as the driver gives them
    (text for SQLite) and are typed by the contract, as from a CSV."""
    import sqlalchemy as sa

    if query is not None:
        return sa.text(query)
    return sa.select(sa.text("*")).select_from(sa.table(str(table)))


def _read_sql(url: str, table: str | None, query: str | None) -> pd.DataFrame:
    import sqlalchemy as sa

    with _read_errors(shown_url(url), ""), _sql_connection(url, table, query) as con:
        if query is None:
            # SQLite finds "Leads" when asked for leads; SQLAlchemy's reflection does not
            names = sa.inspect(con).get_table_names()
            if table not in names:
                table = next((n for n in names if n.lower() == str(table).lower()), table)
        # a query, not read_sql_table: SQLAlchemy's DATETIME parsing turns a second UTC
        # offset in a column into NaT (summer time), and the sliced reader reads by query too
        return _drop_unnamed(pd.read_sql_query(_select_sql(table, query), con))


def iter_table_chunks(
    source: str | os.PathLike[str],
    table: str | None = None,
    *,
    query: str | None = None,
    chunk_rows: int = 250_000,
    na_values: list[str] | None = None,
    text_columns: Sequence[str] = (),
    strings: bool = False,
) -> Iterator[pd.DataFrame]:
    """Read one table a slice of rows at a time, so memory is bounded by the slice.

    Parquet is read by record batches, CSV by pandas chunks, DuckDB files and databases by
    fetching the result in batches. Sources, options and errors are those of
    :func:`read_table`, checked before the first slice and while streaming.
    """
    if chunk_rows < 1:
        raise DataError(
            f"chunk size must be at least 1, got {chunk_rows}",
            "Give a positive number of rows per chunk.",
        )
    if is_sql_url(source):
        url = str(source)
        with _read_errors(shown_url(url), ""), _sql_connection(url, table, query) as con:
            for chunk in pd.read_sql_query(_select_sql(table, query), con, chunksize=chunk_rows):
                yield _drop_unnamed(chunk)
        return
    path = _table_file(source, table, query)
    suffix = path.suffix.lower()
    with _read_errors(str(path), suffix):
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            # batches are filled across row groups, so every chunk but the last has chunk_rows
            for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
                yield _drop_unnamed(batch.to_pandas())
        elif suffix == ".csv":
            options = _csv_options(path, na_values, text_columns, strings)
            with pd.read_csv(path, chunksize=chunk_rows, **options) as reader:  # type: ignore[call-overload]
                for chunk in reader:
                    yield _drop_unnamed(chunk)
        else:
            with _duckdb_file(path, table, query) as con:
                reader = con.sql(query or f'SELECT * FROM "{table}"').to_arrow_reader(chunk_rows)
                for batch in reader:
                    yield _drop_unnamed(batch.to_pandas())


def event_data_name(source: str | Path) -> str:
    """The name of event data, for its model folder and MLflow: the folder's or file's name."""
    if is_sql_url(source):
        return "events"
    path = Path(source)
    return (path.stem if path.suffix else path.name) or "events"


def find_event_table(folder: Path, name: str) -> Path | None:
    """The file holding event table ``name`` in ``folder``, as ``.parquet`` or ``.csv``.

    Both at once is an error: they may differ (an old export beside a new one), and reading
    either one silently would train or score on data the user did not mean.
    """
    found = [folder / f"{name}{suffix}" for suffix in TABLE_SUFFIXES]
    found = [path for path in found if path.exists()]
    if len(found) > 1:
        raise DataError(
            f"{folder} holds both {found[0].name} and {found[1].name}",
            f"Keep one file for the {name} table and move the other away.",
        )
    return found[0] if found else None


def load_closed_loop(
    source: str | os.PathLike[str],
    *,
    observed_until: pd.Timestamp | str | None = None,
    tables: Sequence[str] = EVENT_TABLES,
) -> ClosedLoopData:
    """Load and validate event-form data.

    ``source`` is a folder with ``leads``, ``activities`` and ``outcomes`` as ``.parquet`` or
    ``.csv`` files (``activities`` and ``outcomes`` may be absent), a DuckDB file holding tables
    of those names, or an SQLAlchemy URL of a database holding them.

    ``observed_until``, the moment of the extract, is taken from the argument, else from an
    ``observed_until`` entry of a ``manifest.json`` in the folder (``leadscore synth`` writes
    one), else the latest timestamp in the data.

    ``tables`` names the tables to read (``leads`` always): a caller that never looks at the
    activity log, by far the largest table, leaves it out and gets it empty.
    """
    frames: dict[str, pd.DataFrame | None] = dict.fromkeys(EVENT_TABLES)
    wanted = [name for name in EVENT_TABLES if name == "leads" or name in tables]
    text = str(source)
    path = Path(source)
    if is_sql_url(text) or path.suffix.lower() in DUCKDB_SUFFIXES:
        for name in wanted:
            try:
                frames[name] = read_table(text, name)
            except NoSuchTableError:
                if name == "leads":
                    raise
                frames[name] = None
    else:
        if not path.is_dir():
            raise DataError(
                f"{path} is not a folder of event tables",
                "Give a folder with leads.parquet (or .csv), activities.* and outcomes.*, "
                "or a DuckDB file with those tables.",
            )
        if observed_until is None:
            observed_until = _manifest_observed_until(path)
        for name in wanted:
            found = find_event_table(path, name)
            if found is None and name == "leads":
                raise DataError(
                    f"{path} has no leads.parquet or leads.csv",
                    "Write the leads table there; see the README's data contract.",
                )
            frames[name] = (
                None if found is None else read_table(found, text_columns=EVENT_TEXT_COLUMNS[name])
            )
    logger.info(
        "loaded %s: %s",
        text,
        ", ".join(f"{k}={0 if v is None else len(v):,}" for k, v in frames.items() if k in wanted),
    )
    data = validate_closed_loop(
        frames["leads"], frames["activities"], frames["outcomes"], observed_until=observed_until
    )
    warn_post_contact_leads(data.leads)
    return data


def warn_post_contact_leads(leads: pd.DataFrame) -> None:
    """Warn about extra lead columns named like a field the sales team writes after contact
    (:func:`~leadscore.leakage.post_contact_columns`): they become features unless dropped,
    and one that is only moderately predictive passes the leakage guard."""
    from leadscore.leakage import post_contact_columns, warn_post_contact_columns

    extra = [str(c) for c in leads.columns if c not in (*LEADS_REQUIRED, *LEAD_FIT_FIELDS)]
    warn_post_contact_columns(
        post_contact_columns(extra),
        "If the sales team fills them in, drop them from the leads table before training; if "
        "they are known before contact, ignore this warning.",
    )


def iter_closed_loop_chunks(
    folder: str | os.PathLike[str],
    *,
    chunk_leads: int = 100_000,
    observed_until: pd.Timestamp | str | None = None,
) -> Iterator[ClosedLoopData]:
    """Event-form data of a folder, a slice of leads at a time, each slice validated.

    Memory is bounded by the slice, not the folder: the leads are validated whole, sorted by id
    and cut into slices of ``chunk_leads``; each slice's activities and outcomes are read with
    DuckDB by the slice's exact ids, normalised as :func:`~leadscore.schema.to_lead_ids` does
    (``1.0`` is ``1``; CSV ids as written), with an id-range filter in front that skips whole
    row groups of Parquet files sorted by lead id (as ``leadscore synth`` writes them). Rows for
    unknown or empty ids are an error, as in :func:`load_closed_loop`, so both readers see the
    same data. Every slice shares the folder's ``observed_until``; taken from the data, it is
    checked on the whole folder as :func:`load_closed_loop` checks it (a timestamp in the
    future is an error, a latest one far after the rest a warning), and so are outcomes closed
    before their lead was created. Activity rows repeated exactly are counted over all slices
    and logged once, after the last.
    """
    import duckdb

    path = Path(folder)
    if not path.is_dir():
        raise DataError(
            f"{path} is not a folder of event tables",
            "Give a folder with leads.parquet (or .csv), activities.* and outcomes.*.",
        )
    if chunk_leads < 1:
        raise DataError(
            f"chunk size must be at least 1, got {chunk_leads}",
            "Give a positive number of leads per chunk.",
        )
    leads_file = find_event_table(path, "leads")
    if leads_file is None:
        raise DataError(
            f"{path} has no leads.parquet or leads.csv",
            "Write the leads table there; see the README's data contract.",
        )
    leads = validate_leads(read_table(leads_file, text_columns=EVENT_TEXT_COLUMNS["leads"]))
    leads = leads.sort_values("lead_id", kind="stable").reset_index(drop=True)
    until = observed_until if observed_until is not None else _manifest_observed_until(path)
    others = {name: find_event_table(path, name) for name in ("activities", "outcomes")}
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'").fetchall()
        con.register("known_ids", leads[["lead_id", "created_at"]])
        keys: dict[str, str] = {}
        for name, file in others.items():
            if file is not None:
                _table_file(file, None, None)  # empty, or not comma-separated
                with _read_errors(str(file), file.suffix.lower()):
                    keys[name] = _lead_key(con, name, file)
                    _check_ids_known(con, name, file, keys[name])
        formats = {
            name: _text_timestamp_format(con, name, file)
            for name, file in others.items()
            if file is not None
        }
        if others["outcomes"] is not None:
            _check_closed_after_created(con, others["outcomes"], keys["outcomes"], formats)
        if until is None:
            until = _latest_timestamp(con, leads, others, formats, keys)
        duplicates = activity_rows = 0
        for start in range(0, len(leads), chunk_leads):
            part = leads.iloc[start : start + chunk_leads]
            low, high = part["lead_id"].iloc[0], part["lead_id"].iloc[-1]
            con.register("slice_ids", part[["lead_id"]])
            frames: dict[str, pd.DataFrame | None] = dict.fromkeys(others)
            for name, file in others.items():
                if file is None:
                    continue
                key = keys[name]
                with _read_errors(str(file), file.suffix.lower()):
                    frame = con.execute(
                        f"SELECT * FROM {_duckdb_scan(file)} WHERE {key} BETWEEN ? AND ? "
                        f"AND {key} IN (SELECT lead_id FROM slice_ids)",
                        [low, high],
                    ).df()
                frame = _csv_missing(frame) if file.suffix.lower() == ".csv" else frame
                if formats[name] is not None:
                    column = _TIMESTAMP_COLUMNS[name]
                    frame[column] = parse_timestamps_as(frame[column], formats[name], name, column)
                frames[name] = frame
            con.unregister("slice_ids")
            data = validate_closed_loop(
                part,
                frames["activities"],
                frames["outcomes"],
                observed_until=until,
                warn_duplicates=False,
            )
            duplicates += count_duplicate_activities(data.activities)
            activity_rows += len(data.activities)
            yield data
    warn_duplicate_activities(duplicates, activity_rows)


_TIMESTAMP_COLUMNS = {"activities": "occurred_at", "outcomes": "closed_at"}


def _text_timestamp_format(con: duckdb.DuckDBPyConnection, name: str, file: Path) -> str | None:
    """The format of a file's timestamps written as text other than ISO 8601, decided once on
    the file's distinct values (:func:`~leadscore.schema.text_timestamp_format`), or None.

    Deciding per slice would fail on a slice whose days are all 12 or less ("reads both
    day-first and month-first") although the whole file says which it is.
    """
    column = _TIMESTAMP_COLUMNS[name]
    scan = _duckdb_scan(file)
    described = con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()
    kinds = {row[0]: str(row[1]) for row in described}
    if kinds.get(column, "").upper() != "VARCHAR":
        return None
    with _read_errors(str(file), file.suffix.lower()):
        distinct = con.execute(
            f"SELECT DISTINCT {column} FROM {scan} WHERE {column} IS NOT NULL LIMIT 100000"
        ).df()
    if file.suffix.lower() == ".csv":
        distinct = _csv_missing(distinct)
    values = distinct[column].dropna().astype("string")
    if values.empty:
        return None
    fmt = text_timestamp_format(values, name, column)
    return None if fmt == "ISO8601" else fmt


def _lead_key(con: duckdb.DuckDBPyConnection, name: str, file: Path) -> str:
    """SQL for the lead id of ``file``'s rows as text, as :func:`to_lead_ids` writes it."""
    described = con.execute(f"DESCRIBE SELECT * FROM {_duckdb_scan(file)}").fetchall()
    types = {row[0]: str(row[1]).upper() for row in described}
    required = ACTIVITIES_REQUIRED if name == "activities" else OUTCOMES_REQUIRED
    _require_columns(pd.DataFrame(columns=list(types)), name, required)
    kind = types["lead_id"]
    if kind == "VARCHAR":
        return "lead_id"
    if kind in ("FLOAT", "DOUBLE") or kind.startswith("DECIMAL"):
        return (
            "(CASE WHEN lead_id = trunc(lead_id) THEN CAST(TRY_CAST(lead_id AS HUGEINT) AS "
            "VARCHAR) ELSE CAST(lead_id AS VARCHAR) END)"
        )
    return "CAST(lead_id AS VARCHAR)"


def _check_ids_known(con: duckdb.DuckDBPyConnection, name: str, file: Path, key: str) -> None:
    """Rows of ``file`` with an empty lead id or one not in the leads are errors, as in
    :func:`validate_closed_loop`; one scan, before any slice is read."""
    empty, unknown, example = con.execute(
        "SELECT count(*) FILTER (WHERE k IS NULL), "
        "count(*) FILTER (WHERE k IS NOT NULL AND NOT known), "
        "any_value(k) FILTER (WHERE k IS NOT NULL AND NOT known) "
        f"FROM (SELECT {key} AS k, {key} IN (SELECT lead_id FROM known_ids) AS known "
        f"FROM {_duckdb_scan(file)})"
    ).fetchall()[0]
    if empty:
        raise DataError(
            f"{name}.lead_id is empty in {empty} row(s)", "Give every row a value in lead_id."
        )
    if unknown:
        raise DataError(
            f"{name}: {unknown} row(s) for lead_id(s) not in leads, e.g. {example!r}",
            f"Add those leads to the leads table or drop their rows from {name}.",
        )


def _csv_missing(frame: pd.DataFrame) -> pd.DataFrame:
    """Blank pandas' missing-value tokens in the text DuckDB read from an event CSV, except in
    the id, so a slice holds what :func:`read_table` reads from the same file."""
    tokens = list(MISSING_SPELLINGS)
    for column in frame.columns:
        if column != "lead_id" and not pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = frame[column].where(~frame[column].isin(tokens))
    return frame


def _moment_sql(column: str, fmt: str | None) -> str:
    """SQL for ``column`` as a UTC timestamp without zone (the session's zone is UTC), read as
    the slices are parsed: ISO 8601, or text in the format decided on the whole file."""
    if fmt is None:
        return f"CAST(TRY_CAST({column} AS TIMESTAMPTZ) AS TIMESTAMP)"
    text = f"regexp_replace(trim({column}), '\\s*UTC$', '+00:00')"
    quoted = fmt.replace("'", "''")
    return f"CAST(try_strptime({text}, '{quoted}') AS TIMESTAMP)"


def _check_closed_after_created(
    con: duckdb.DuckDBPyConnection, file: Path, key: str, formats: Mapping[str, str | None]
) -> None:
    """Outcomes closed before the day their lead was created, over the whole file, as
    :func:`~leadscore.schema.validate_closed_loop` refuses them (same count, same lead)."""
    moment = _moment_sql("closed_at", formats.get("outcomes"))
    with _read_errors(str(file), file.suffix.lower()):
        count, lead, created, closed = con.execute(
            "SELECT count(*), min(o.k), arg_min(l.created_at, o.k), arg_min(o.m, o.k) "
            f"FROM (SELECT {key} AS k, {moment} AS m FROM {_duckdb_scan(file)}) o "
            "JOIN known_ids l ON o.k = l.lead_id WHERE o.m < date_trunc('day', l.created_at)"
        ).fetchall()[0]
    if count:
        raise closed_before_created_error(count, lead, pd.Timestamp(created), pd.Timestamp(closed))


def _latest_timestamp(
    con: duckdb.DuckDBPyConnection,
    leads: pd.DataFrame,
    others: Mapping[str, Path | None],
    formats: Mapping[str, str | None],
    keys: Mapping[str, str],
) -> pd.Timestamp:
    """The default ``observed_until`` of the folder, checked as
    :func:`~leadscore.schema.extract_moment` checks it, from two aggregates per file (row
    counts, then the latest rows) instead of loading the activity log. Text timestamps in a
    format other than ISO 8601 (``25/02/2024``) are read in the format the slices are parsed
    with, not skipped."""
    now = utc_now()
    cutoff = future_cutoff(now).to_pydatetime()
    moments: dict[str, tuple[Path, str]] = {}
    counts: dict[str, tuple[int, int]] = {}
    for name, column in _TIMESTAMP_COLUMNS.items():
        file = others[name]
        if file is None:
            continue
        moments[name] = (
            file,
            f"SELECT {_moment_sql(column, formats.get(name))} AS m, "
            f"{keys[name]} AS k FROM {_duckdb_scan(file)}",
        )
        with _read_errors(str(file), file.suffix.lower()):
            rows, future = con.execute(
                f"SELECT count(*), count(*) FILTER (WHERE m > ?) FROM ({moments[name][1]})",
                [cutoff],
            ).fetchall()[0]
        counts[name] = (int(rows), int(future))
    keep = tail_rows(len(leads) + sum(rows for rows, _ in counts.values())) + 1
    summaries = [timestamp_summary(leads, "leads", "created_at", now=now, keep=keep)]
    for name, (file, select) in moments.items():
        with _read_errors(str(file), file.suffix.lower()):
            latest = con.execute(
                f"SELECT m AS moment, k AS lead_id FROM ({select}) WHERE m IS NOT NULL "
                f"ORDER BY m DESC LIMIT {keep}"
            ).df()
        rows, future = counts[name]
        summaries.append(TimestampSummary(name, _TIMESTAMP_COLUMNS[name], rows, future, latest))
    return extract_moment(summaries, now=now)


def _duckdb_scan(file: Path) -> str:
    quoted = str(file).replace("'", "''")
    if file.suffix.lower() == ".parquet":
        return f"read_parquet('{quoted}')"
    return f"read_csv('{quoted}', header=true, all_varchar=true)"


def _manifest_observed_until(folder: Path) -> str | None:
    manifest = folder / "manifest.json"
    if not manifest.exists():
        return None
    try:
        value = json.loads(manifest.read_text()).get("observed_until")
    except (json.JSONDecodeError, AttributeError) as err:
        raise DataError(f"{manifest} is not a JSON object", "Fix or remove the file.") from err
    if value is None:
        return None
    parse_observed_until(str(value), f"{manifest}: observed_until")
    return str(value)


def file_in_the_way(path: Path) -> Path | None:
    """The file that stands where one of ``path``'s folders must go (``path`` cannot be
    created then), or ``None``; checked before long work so that it fails in one line first."""
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return None if folder.is_dir() else folder


def write_table(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``frame`` to a Parquet or CSV file atomically (:func:`write_atomically`)."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise DataError(f"{target}: unknown output type {suffix!r}", "Write to .parquet or .csv.")

    def write(tmp: Path) -> None:
        if suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)

    return write_atomically(target, write)


def check_folder_takes_files(path: Path, fix: str) -> None:
    """Refuse, before long work, a ``path`` whose folder cannot take a new file: the nearest
    folder of it that exists is tried with a temporary file (removed at once), so that a
    place like ``/proc`` fails in one line naming that folder, with ``fix``, instead of after
    the work. Nothing is created."""
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=".leadscore-probe-", dir=folder)
    except OSError as err:
        raise DataError(f"cannot create a file in {folder}: {_first_line(err)}", fix) from err
    os.close(fd)
    Path(probe).unlink(missing_ok=True)


def write_atomically(target: Path, write: Callable[[Path], None]) -> Path:
    """Have ``write`` fill a temporary file beside ``target``, then rename it into place: a
    reader never sees half a file, and a failed write leaves an older one as it was. The
    folder is created when missing; a failure is one line naming ``target``.

    The file gets the permissions a plain ``open()`` would give it, or those of the file it
    replaces: a model or a table is read by other users (a scoring service, a BI tool), and a
    temporary file's private mode (``tempfile.mkstemp`` makes 0600) would go with the rename.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _new_file_beside(target)
    except OSError as err:
        raise DataError(
            f"cannot write {target}: {_first_line(err)}",
            "Write into a folder that exists or can be created, and that you may write to.",
        ) from err
    try:
        write(tmp)
        _keep_mode_of(target, tmp)
        os.replace(tmp, target)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise DataError(
            f"cannot write {target}: {_first_line(err)}",
            "Check the path, the free disk space and your permissions.",
        ) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def _new_file_beside(target: Path) -> Path:
    """A new, empty, hidden file in ``target``'s folder, created with mode 0666 so that the
    umask (and a default ACL of the folder) decides its permissions, as for ``open()``;
    ``O_EXCL`` makes sure no other file is taken over."""
    for _ in range(100):
        tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(target.parent))


def _keep_mode_of(target: Path, tmp: Path) -> None:
    """Give ``tmp`` the permission bits of the file ``target`` it is about to replace, so that
    rewriting a file (a model, a report) does not change who may read it."""
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        return
    os.chmod(tmp, mode)


def write_tables(
    frames: Mapping[str, pd.DataFrame], folder: str | os.PathLike[str], fmt: str = "parquet"
) -> dict[str, Path]:
    """Write several named tables into ``folder`` as ``NAME.parquet`` or ``NAME.csv``."""
    out = Path(folder)
    return {name: write_table(frame, out / f"{name}.{fmt}") for name, frame in frames.items()}
