"""Reading and writing tables at the edges of the flow.

Sources are named by a string: a path to a ``.csv``, ``.parquet`` or ``.duckdb`` file (a
DuckDB file needs a table name), or an SQLAlchemy URL (``postgresql://...``, ``sqlite:///...``)
with a table name or a query. Everything inside the package works on DataFrames; only this
module touches files and databases, and it turns every way a read can fail on the user's side
(a typo in a table name or a query, a server down, a broken file) into one :class:`DataError`.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import errno
import logging
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from pandas.api import types as ptypes

from leadscore.errors import DataError, expect_type
from leadscore.schema import (
    ACTIVITIES_REQUIRED,
    IGNORED_ACTIVITY,
    LEAD_FIT_FIELDS,
    LEADS_REQUIRED,
    MISSING_SPELLINGS,
    OUTCOMES_REQUIRED,
    UNKNOWN_ID_SAMPLE,
    ActivityMapping,
    ActivityTypeMap,
    ClosedLoopData,
    _require_columns,
    check_activity_types,
    closed_before_created_error,
    closest_names,
    column_name,
    count_duplicate_activities,
    duplicate_ids_text,
    is_known_id,
    log_activity_mapping,
    outcome_values_error,
    to_lead_ids,
    unknown_ids_error,
    validate_activity_type_map,
    validate_closed_loop,
    validate_leads,
    warn_duplicate_activities,
)
from leadscore.timestamps import (
    EXTRACT_SLACK,
    LateRows,
    TimestampSummary,
    check_manifest_moment,
    extract_moment,
    future_cutoff,
    hold_extract_moment,
    manifest_observed_until,
    manifest_source,
    naive_utc,
    parse_observed_until,
    parse_timestamps_as,
    tail_rows,
    text_timestamp_format,
    timestamp_summary,
    to_utc_naive,
    utc_now,
)

if TYPE_CHECKING:
    import duckdb
    import sqlalchemy as sa

logger = logging.getLogger(__name__)

TABLE_SUFFIXES = (".parquet", ".csv")
DUCKDB_SUFFIXES = (".duckdb", ".db", ".ddb")
EVENT_TABLES = ("leads", "activities", "outcomes")

#: The optional fourth event table: the company's activity types mapped onto leadscore's
#: (:class:`~leadscore.schema.ActivityTypeMap`). Usually absent, which is never warned.
ACTIVITY_TYPES_TABLE = "activity_types"

#: Event-form CSV columns read as written: ids keep their zeros (``00123``) and the id ``NA``
#: or Namibia's country code ``NA`` stay values; only an empty field is missing.
EVENT_TEXT_COLUMNS: dict[str, tuple[str, ...]] = {
    "leads": ("lead_id", "country"),
    "activities": ("lead_id",),
    "outcomes": ("lead_id",),
}

_SQLITE_MAGIC = b"SQLite format 3\x00"


#: Where the table of a spec's DuckDB file or database is named, as an error's fix says it
#: ("Name one of its tables in the spec (table: NAME)."): the readers' default ``named_by``.
SPEC_TABLE = "in the spec (table: NAME)"


class NoSuchTableError(DataError):
    """The database or DuckDB file has no table of that name: for the optional event tables
    that means "none recorded", while any other failure to read them is an error."""


def is_sql_url(source: str | os.PathLike[str]) -> bool:
    """Whether ``source`` is an SQLAlchemy URL rather than a file path."""
    text = str(source)
    return "://" in text and not text.startswith("file://")


#: How a URL names a DuckDB file: ``duckdb:///path.duckdb``.
DUCKDB_URL_PREFIX = "duckdb:///"


def duckdb_url_path(text: str) -> str | None:
    """The path of the DuckDB file a ``duckdb:///path.duckdb`` URL names
    (``duckdb:////abs/path.duckdb`` for an absolute path), or ``None`` for any other text.

    The one reading of such URLs, for the readers and the scored-leads targets alike: both
    open the file itself, so such a URL needs no DuckDB driver for SQLAlchemy.
    """
    return text.removeprefix(DUCKDB_URL_PREFIX) if text.startswith(DUCKDB_URL_PREFIX) else None


def duckdb_url_file(source: str | os.PathLike[str]) -> str | os.PathLike[str]:
    """The DuckDB file of a ``duckdb:///`` URL (:func:`duckdb_url_path`), as the scored-leads
    targets read it; any other source as given."""
    text = os.fspath(source)
    path = duckdb_url_path(text) if isinstance(text, str) else None
    return source if path is None else path


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


def driver_error(err: BaseException) -> BaseException:
    """The error that says what went wrong, under the wrappers around it: pandas wraps a failed
    statement as ``Execution failed on sql 'SELECT * \\nFROM activities': ...`` (the SQL
    first, the reason after it), SQLAlchemy keeps the driver's error as ``orig``."""
    if isinstance(err, pd.errors.DatabaseError) and err.__cause__ is not None:
        err = err.__cause__
    return getattr(err, "orig", None) or err


#: Most characters of a database's or reader's own reason that an error line keeps.
REASON_CHARS = 300
#: Where PostgreSQL and DuckDB start quoting the SQL under their reason.
_SQL_ECHO = re.compile(r"^LINE \d+:", re.MULTILINE)


def error_reason(err: BaseException) -> str:
    """What the database, driver or file reader said went wrong, as one line: every run of
    whitespace one space, cut at :data:`REASON_CHARS`.

    Not the first line only: a reason may come after a line break (a driver's ``DETAIL``,
    DuckDB's ``Did you mean``), and the first line of pandas' wrapper ended inside the SQL
    (``query failed: Execution failed on sql 'SELECT *``), which hid the reason
    (``permission denied for view activities``) the user needs. The SQL that PostgreSQL and
    DuckDB quote after the reason (``LINE 1: SELECT ...`` and a caret under the culprit) is
    left out: it is the user's own query, or leadscore's, and points at a column only on a
    screen of fixed-width lines."""
    text = _SQL_ECHO.split(str(driver_error(err)), maxsplit=1)[0]
    text = " ".join(text.split())
    if not text:
        return type(err).__name__
    if len(text) <= REASON_CHARS:
        return text
    # not a closing "...": the error line's "." after the problem would swallow it
    return f"{text[: REASON_CHARS - 6].rstrip()} (...)"


#: ``scheme://user:password@``: the password, up to the last ``@`` before the path.
_URL_PASSWORD = re.compile(r"^([^:/]+://[^:/@]*:)[^/]*@")


def shown_url(url: str) -> str:
    """A path or URL as it may be printed and logged: a database URL's password masked, so
    that an error line or a tuning summary can be pasted into a ticket. A URL SQLAlchemy
    cannot read (a port that is no number, an ``@`` in the password) is masked all the same:
    it is printed exactly when something is wrong with it."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        if not is_sql_url(url):
            return url
        return _SECRET_QUERY.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", url))
    # a password given as a query parameter (?password=...) is as secret as user:pw@
    secret = {k: "***" for k in parsed.query if k.lower() in _SECRET_PARAMETERS}
    shown = parsed.update_query_dict(secret).render_as_string(hide_password=True)
    return shown.replace("%2A%2A%2A", "***")


#: URL query parameters that hold a secret (libpq's ``password``, a few drivers' spellings).
_SECRET_PARAMETERS = frozenset({"password", "passwd", "pwd", "secret", "token", "access_token"})
_SECRET_QUERY = re.compile(
    rf"([?&](?:{'|'.join(sorted(_SECRET_PARAMETERS))})=)[^&]*", re.IGNORECASE
)


#: The fix of a table (or view) of a database or DuckDB file that exists but cannot be read.
TABLE_READ_FIX = (
    "Check that the database user may read it (GRANT SELECT) and, for a view, that the "
    "tables and files it reads are there."
)


@contextmanager
def _read_errors(
    where: str, suffix: str, *, table: str | None = None, query: str | None = None
) -> Iterator[None]:
    """Turn the errors of reading ``where`` into one-line :class:`DataError` s that keep the
    database's own reason (:func:`error_reason`).

    Shared by :func:`read_table` and :func:`iter_table_chunks` (around the lazy iteration
    too), so both readers answer a mistake with the same line. ``query`` is the user's SQL,
    whose failure points at it; without one, what failed is reading ``table`` (or, without
    that either, whatever ``where`` names, as leadscore's own SQL reads it): a fix about "the
    query" would send the user looking for SQL they never wrote.
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
        if query is not None:
            raise DataError(
                f"{where}: query failed: {error_reason(err)}",
                "Check the table and column names in the query.",
            ) from err
        what = where if table is None else f"{where}: table {table!r}"
        raise DataError(f"{what} cannot be read: {error_reason(err)}", TABLE_READ_FIX) from err
    except (pd.errors.EmptyDataError, pd.errors.ParserError, OSError, ValueError) as err:
        raise _unreadable(where, suffix, err) from err


def _unreadable(where: str, suffix: str, err: BaseException) -> DataError:
    """The error of a file that cannot be read; a CSV that is not UTF-8 text says so, where,
    and how to save it as UTF-8, whichever reader (pandas, DuckDB) tripped on it."""
    if suffix == ".csv" and _is_encoding_error(err):
        not_utf8 = _not_utf8_error(Path(where))
        if not_utf8 is not None:
            return not_utf8
    fix = (
        f"Check that the file is a valid {suffix.lstrip('.').upper()} file."
        if suffix
        else "Check the table, the query and the column types."
    )
    return DataError(f"{where} cannot be read: {error_reason(err)}", fix)


#: Bytes of the line shown either side of the first byte that is not UTF-8.
_ENCODING_CONTEXT = 24
#: The fix of a CSV that is not UTF-8: Excel's "CSV (Comma delimited)" writes the Windows
#: code page, its "CSV UTF-8" writes what leadscore reads.
NOT_UTF8_FIX = (
    'Save it as UTF-8: in Excel, Save As "CSV UTF-8 (Comma delimited)"; or convert it, e.g. '
    "iconv -f WINDOWS-1252 -t UTF-8 OLD.csv > NEW.csv."
)
#: The fix of a UTF-16 CSV (Excel's "Unicode Text"): converting it as Windows-1252, as
#: :data:`NOT_UTF8_FIX` says, would keep its NUL bytes and make every character two.
UTF16_FIX = (
    'Save it as UTF-8: in Excel, Save As "CSV UTF-8 (Comma delimited)"; or convert it, e.g. '
    "iconv -f UTF-16 -t UTF-8 OLD.csv > NEW.csv."
)
#: Bytes read from the start of a file that failed to decode to tell UTF-16 by its NUL bytes.
_UTF16_PROBE = 4096


def _is_encoding_error(err: BaseException) -> bool:
    """Whether a reader failed on text that is not UTF-8: pandas raises
    :class:`UnicodeDecodeError`, DuckDB's CSV reader an error saying "Invalid unicode"."""
    if isinstance(err, UnicodeError):
        return True
    return "unicode" in str(err).lower() or "utf-8" in str(err).lower()


def _first_non_utf8(path: Path) -> tuple[int, int, bytes] | None:
    """The first byte of ``path`` that is not UTF-8 text, as (line number from 1, the
    byte's offset in that line, the line's bytes around it), or ``None`` where every byte is.

    Read in 1 MiB blocks, so a large export costs a second, not its size in memory; only run
    once a read has failed. The readers' own offset ("position 4") counts within a buffer of
    theirs, which points at nothing the user can find.
    """
    line, carry, line_start = 1, b"", b""
    with path.open("rb") as handle:
        while True:
            block = handle.read(1 << 20)
            data = carry + block
            if not data:
                return None
            try:
                data.decode("utf-8")
                good = len(data)
            except UnicodeDecodeError as err:
                # a character cut by the block's end is read with the next block
                cut = err.reason == "unexpected end of data" and block
                good = err.start
                if not cut:
                    before = data[:good]
                    newline = before.rfind(b"\n")
                    head = before[newline + 1 :] if newline >= 0 else line_start + before
                    tail = data[good:].split(b"\n", 1)[0]
                    return line + before.count(b"\n"), len(head), head + tail
            line += data.count(b"\n", 0, good)
            newline = data.rfind(b"\n", 0, good)
            line_start = data[newline + 1 : good] if newline >= 0 else line_start + data[:good]
            line_start = line_start[-_ENCODING_CONTEXT:]
            carry = data[good:]
            if not block:
                return None


def _not_utf8_error(path: Path) -> DataError | None:
    """``path is not UTF-8 text`` with the line, the byte and the text around it as Windows
    (Excel's usual encoding) reads it, so the user sees the accented name that broke it; or
    ``None`` when the file cannot be opened or every byte is UTF-8 after all."""
    try:
        with path.open("rb") as handle:
            start = handle.read(_UTF16_PROBE)
        # UTF-16 has a byte-order mark, or (written without one) a NUL byte beside every
        # ASCII character; converting it from Windows-1252 would turn it into garbage
        if start[:2] in (b"\xff\xfe", b"\xfe\xff") or start.count(0) * 4 >= len(start) > 0:
            return DataError(
                f'{path} is UTF-16 text (Excel\'s "Unicode Text"), not UTF-8', UTF16_FIX
            )
        found = _first_non_utf8(path)
    except OSError:
        return None
    if found is None:
        return None
    line, at, text = found
    bad = text[at]
    near = text[max(at - _ENCODING_CONTEXT, 0) : at + _ENCODING_CONTEXT + 1]
    shown = near.decode("cp1252", errors="replace").strip()
    cut_before = "..." if at > _ENCODING_CONTEXT else ""
    cut_after = "..." if len(text) > at + _ENCODING_CONTEXT + 1 else ""
    try:
        as_windows = f" ({bytes([bad]).decode('cp1252')!r} in Windows-1252)"
    except UnicodeDecodeError:
        as_windows = ""
    return DataError(
        f"{path} is not UTF-8 text: line {line} has the byte 0x{bad:02X}{as_windows} in "
        f'"{cut_before}{shown}{cut_after}"',
        NOT_UTF8_FIX,
    )


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
        _check_csv_header(path)
    if suffix in DUCKDB_SUFFIXES and _is_sqlite_file(path):
        raise DataError(
            f"{path} is an SQLite database, not a DuckDB file",
            f"Pass it as a URL: sqlite:///{path.resolve()}",
        )
    return path


def _check_csv_header(path: Path) -> None:
    """The header of a CSV as written, checked before any reader sees it.

    A header that holds no comma but splits on ``;``, a tab or ``|`` (a European Excel
    export, say) would be read as one column and fail later as "missing column"; the
    separator is named instead, not guessed: such files often write ``3,5`` for 3.5 too. A
    name the header gives twice is an error (:func:`_check_unique_names`): pandas would read
    the second ``Email`` as ``Email.1``. Bytes that are not UTF-8 are replaced here; the
    reader that follows names them (:func:`_not_utf8_error`)."""
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        header = handle.readline(65536).rstrip("\r\n")
    if "," not in header:
        for separator, name in ((";", "';'"), ("\t", "tabs"), ("|", "'|'")):
            if len([f for f in header.split(separator) if f.strip()]) > 1:
                raise DataError(
                    f"{path}: columns are separated by {name}, not commas",
                    "Save the table as comma-separated CSV (decimal point '.') or as Parquet.",
                )
    names = next(csv.reader([header]), [])
    _check_unique_names(names, f"{path}: the header", DUPLICATE_HEADER_FIX)
    _check_csv_complete(path, len(names))


def _check_csv_complete(path: Path, columns: int) -> None:
    """A CSV cut off mid-line (a copy or an export stopped early) is refused as such.

    Its last line lacks the newline and some fields; a reader pads them as missing, so the
    error that follows names an empty column ("activities.activity_type is empty in 1
    row(s)") or DuckDB's advice on its own parser options, neither of which says the file
    is incomplete. Only a last line without the newline, without quotes (a quoted field may
    hold commas or line breaks) and with fewer fields than the header is refused: a file
    that merely lacks its final newline is complete."""
    size = path.stat().st_size
    if size == 0 or columns < 2:
        return
    with path.open("rb") as handle:
        handle.seek(max(0, size - 65536))
        tail = handle.read()
    if tail.endswith(b"\n") or b"\n" not in tail or b"\x00" in tail:
        return  # complete, one line, or UTF-16 (named by the reader that follows)
    last = tail.rsplit(b"\n", 1)[1].decode("utf-8", errors="replace").rstrip("\r")
    if '"' in last or not last.strip():
        return
    fields = last.count(",") + 1
    if fields < columns:
        raise DataError(
            f"{path}: the last line holds {fields} of the header's {columns} columns and no "
            "line break: the file looks cut off",
            "Export or copy it again, whole.",
        )


#: Most duplicated names one error line lists.
_DUPLICATES_SHOWN = 3


def _check_unique_names(names: Sequence[object], where: str, fix: str) -> None:
    """A one-line error naming the columns that two or more columns share, with their
    positions (``'Email' twice, columns 12 and 26``).

    pandas would read a CSV's second ``Email`` as ``Email.1`` (and DuckDB a query's second
    ``x`` as ``x_1``): a feature nobody named, silently trained on and then missing from the
    next export that lacks the copy; a database's result keeps both, and picking "the"
    ``Email`` of the two would be a guess.
    """
    positions: dict[str, list[int]] = {}
    for number, name in enumerate(names, start=1):
        if name is None or (isinstance(name, float) and pd.isna(name)) or not str(name).strip():
            continue  # a blank header: read as Unnamed: N, and dropped when empty
        positions.setdefault(str(name), []).append(number)
    twice = {name: at for name, at in positions.items() if len(at) > 1}
    if not twice:
        return
    listed = [
        f"{name!r} {'twice' if len(at) == 2 else f'{len(at)} times'} (columns "
        f"{', '.join(map(str, at[:-1]))} and {at[-1]})"
        for name, at in twice.items()
    ]
    more = len(listed) - _DUPLICATES_SHOWN
    shown = ", ".join(listed[:_DUPLICATES_SHOWN]) + (f" and {more} more" if more > 0 else "")
    raise DataError(f"{where} names {shown}", fix)


#: The fix of a CSV whose header names a column twice.
DUPLICATE_HEADER_FIX = "Rename one of them in the header, or delete the copy."
#: The fix of a query or table whose result names a column twice.
DUPLICATE_RESULT_FIX = "Give each column a name of its own (SELECT a.email AS contact_email, ...)."


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
    named_by: str | None = SPEC_TABLE,
) -> pd.DataFrame:
    """Read one table from a file or a database.

    Parameters
    ----------
    source : path of a CSV, Parquet or DuckDB file, or an SQLAlchemy URL
        (``duckdb:///path.duckdb`` is read as the DuckDB file).
    table : table name, for DuckDB files and databases.
    query : SQL to run instead of reading a whole table (databases and DuckDB files).
    na_values : extra tokens that mean "missing" in CSV files.
    text_columns : CSV columns read as text exactly as written (ids: ``00123`` keeps its
        zeros, ``NA`` stays ``NA``); only an empty field is missing there.
    strings : read every other CSV column as text too, only an empty field (or a
        ``na_values`` token) missing, for a caller that types columns itself as it types a
        Parquet file or a database: pandas' guess per file or per chunk would turn ``00731``
        into 731, ``TRUE`` into a boolean and the country ``NA`` into a missing value.
    named_by : where the user names the table of a DuckDB file or database, as the fix of a
        missing or unknown table says it: ``"Name one of its tables " + named_by``. The
        default is the spec's ``table:`` (:data:`SPEC_TABLE`); a command reading its own
        option passes that (``"with --input-table NAME"``), and ``None`` is for the fixed
        tables of the data contract (``leads``, ...), which are loaded, not named.
    """
    source = duckdb_url_file(source)
    if is_sql_url(source):
        return _read_sql(str(source), table, query, named_by)
    path = _table_file(source, table, query)
    suffix = path.suffix.lower()
    with _read_errors(str(path), suffix, table=table, query=query):
        if suffix == ".csv":
            options = _csv_options(path, na_values, text_columns, strings)
            frame = _without_blank_rows(pd.read_csv(path, low_memory=False, **options), path)
        elif suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = _read_duckdb(path, table, query, named_by)
    return _drop_unnamed(frame)


def _without_blank_rows(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``frame`` read from the CSV ``path`` without the rows in which every field is blank.

    Excel saves rows it once held as ``,,,,`` lines at the end of a CSV: read as rows, they
    were refused as leads without an id ("Prospect ID is empty in 3 row(s)"), though they
    hold no lead at all. A row with any value is kept, and checked as before.
    """
    if frame.empty or frame.shape[1] == 0:
        return frame
    blank = frame.isna().all(axis=1)
    skipped = int(blank.sum())
    if not skipped:
        return frame
    logger.info(
        "%s: skipped %d row(s) in which every field is blank (as Excel leaves at the end)",
        path,
        skipped,
    )
    return frame.loc[~blank].reset_index(drop=True)


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


def _name_table_fix(table: str | None, named_by: str | None) -> str:
    """The fix of a table not named, or not found: where the user names it (``named_by``),
    or, for a table of the data contract (``named_by`` None), loading it."""
    if named_by is not None:
        return f"Name one of its tables {named_by}."
    if table is None:
        return "Name the table to read."
    return f"Load a {table} table into it (see the data contract)."


def _quoted(name: str) -> str:
    """``name`` as a DuckDB identifier: a table may be called anything (``My "Leads"; x``),
    and a name pasted in bare would be read as SQL, failing or filtering rows unseen."""
    return '"' + name.replace('"', '""') + '"'


@contextmanager
def _duckdb_file(
    path: Path, table: str | None, query: str | None, named_by: str | None = SPEC_TABLE
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to a DuckDB file whose ``table`` is known to exist; the errors
    name its tables and say where to name one (``named_by``, as :func:`read_table` takes it)."""
    import duckdb

    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as err:
        raise DataError(
            f"{path} cannot be opened as a DuckDB file: {error_reason(err)}",
            "Check that it is a DuckDB file and that no other program is writing to it.",
        ) from err
    with con:
        if table is None and query is None:
            tables = [str(r[0]) for r in con.execute("SHOW TABLES").fetchall()]
            raise DataError(
                f"{path} is a DuckDB file but no table was named (tables: {_listing(tables)})",
                _name_table_fix(None, named_by),
            )
        if query is None:
            try:
                con.execute(f"SELECT * FROM {_quoted(str(table))} LIMIT 0").fetchall()
            except duckdb.CatalogException as err:
                tables = [r[0] for r in con.execute("SHOW TABLES").fetchall()]
                if str(table).lower() in (t.lower() for t in tables):
                    raise DataError(
                        f"{path}: table {table!r} cannot be read: {error_reason(err)}",
                        "Fix the table or view in the DuckDB file.",
                    ) from err
                raise NoSuchTableError(
                    f"{path} has no table {table!r} (tables: {', '.join(tables) or 'none'})",
                    _name_table_fix(table, named_by),
                ) from err
        yield con


def _read_duckdb(
    path: Path, table: str | None, query: str | None, named_by: str | None = SPEC_TABLE
) -> pd.DataFrame:
    with _duckdb_file(path, table, query, named_by) as con:
        result = con.execute(query or f"SELECT * FROM {_quoted(str(table))}")
        # before .df(), which would rename a second "x" to "x_1"
        _check_unique_names(
            [d[0] for d in result.description or ()],
            _result_where(path, table, query),
            DUPLICATE_RESULT_FIX,
        )
        return result.df()


def _result_where(where: object, table: str | None, query: str | None) -> str:
    """How a duplicate-name error names what was read: the query's result or the table."""
    return f"{where}: the query" if query is not None else f"{where}: table {table!r}"


@contextmanager
def _sql_connection(
    url: str, table: str | None, query: str | None, named_by: str | None = SPEC_TABLE
) -> Iterator[sa.Connection]:
    """A connection to the database of ``url`` whose ``table`` is known to exist."""
    import sqlalchemy as sa

    if table is None and query is None:
        # before connecting: a server that cannot be reached must not hide this mistake
        raise DataError(
            f"{shown_url(url)}: no table or query named", _name_table_fix(None, named_by)
        )
    database = sqlite_file(url)
    if database is not None and not database.is_file():
        raise DataError(f"SQLite database {database} does not exist", "Check the path.")
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ModuleNotFoundError, ValueError) as err:
        # ValueError: a port that is no number (SQLAlchemy's int() of it)
        raise DataError(
            f"cannot open database URL {shown_url(url)}: {error_reason(err)}",
            "Use an SQLAlchemy URL such as postgresql+psycopg://user@host/db.",
        ) from err
    try:
        try:
            con = engine.connect()
        except sa.exc.DBAPIError as err:
            # named, as a target that fails is: a job reading one database and writing
            # another must say which of the two is down
            raise DataError(
                f"cannot connect to the database {shown_url(url)}: {error_reason(err)}",
                "Check the URL, the server and the credentials.",
            ) from err
        with con:
            if query is None and not sa.inspect(con).has_table(str(table)):
                inspector = sa.inspect(con)
                tables = sorted({*inspector.get_table_names(), *inspector.get_view_names()})
                elsewhere = _schemas_holding(inspector, str(table))
                if elsewhere:
                    where = ", ".join(repr(schema) for schema in elsewhere)
                    raise NoSuchTableError(
                        f"database has no table {table!r} on its search path (tables: "
                        f"{_listing(tables)}); schema {where} holds one",
                        "Name the schema in the URL: "
                        f"?options=-csearch_path%3D{elsewhere[0]} (%3D is =).",
                    )
                raise NoSuchTableError(
                    f"database has no table {table!r} (tables: {_listing(tables)})",
                    _name_table_fix(table, named_by),
                )
            yield con
    finally:
        engine.dispose()


def _schemas_holding(inspector: Any, table: str) -> list[str]:
    """The other schemas of a database with schemas (PostgreSQL) that hold a table or view
    ``table``: a URL without the search path of the schema whose views follow the contract
    (``ls_in``) finds "no table" and nothing else to go on. Empty where schemas cannot be
    listed (SQLite has one)."""
    import sqlalchemy as sa

    if inspector.dialect.name != "postgresql":
        return []
    try:
        schemas = inspector.get_schema_names()
        default = inspector.default_schema_name
        return [
            schema
            for schema in schemas
            if schema != default
            and not schema.startswith("pg_")
            and schema != "information_schema"
            and (
                inspector.has_table(table, schema=schema)
                or table in inspector.get_view_names(schema=schema)
            )
        ]
    except sa.exc.SQLAlchemyError:  # a hint only: the error is raised either way
        return []


def _select_sql(table: str | None, query: str | None) -> Any:
    """The SQL that reads a table, or the user's query: values come as the driver gives them
    (text for SQLite) and are typed by the contract, as from a CSV."""
    import sqlalchemy as sa

    if query is not None:
        return sa.text(query)
    return sa.select(sa.text("*")).select_from(sa.table(str(table)))


def _read_sql(
    url: str, table: str | None, query: str | None, named_by: str | None = SPEC_TABLE
) -> pd.DataFrame:
    import sqlalchemy as sa

    errors = _read_errors(shown_url(url), "", table=table, query=query)
    with errors, _sql_connection(url, table, query, named_by) as con:
        if query is None:
            # SQLite finds "Leads" when asked for leads; SQLAlchemy's reflection does not
            names = sa.inspect(con).get_table_names()
            if table not in names:
                table = next((n for n in names if n.lower() == str(table).lower()), table)
        # a query, not read_sql_table: SQLAlchemy's DATETIME parsing turns a second UTC
        # offset in a column into NaT (summer time), and the sliced reader reads by query too
        frame = pd.read_sql_query(_select_sql(table, query), con)
    where = _result_where(shown_url(url), table, query)
    _check_unique_names(list(frame.columns), where, DUPLICATE_RESULT_FIX)
    return _drop_unnamed(frame)


@dataclass
class ReadProgress:
    """How far a sliced reader has got through its input, for a progress bar with an end.

    ``total`` is how many rows the input holds (leads, for an event folder), set once the
    reader knows it: a Parquet file's metadata, a count in the DuckDB file or the database, an
    event folder's leads table, a CSV file's lines (an upper bound: a quoted field may break
    a line, and blank lines are skipped); ``None`` until then, and where a database cannot
    count the query. ``read`` counts the rows read so far, whether they are scored or not
    (closed leads, leads created after the as-of), so that it ends at ``total``.
    ``count_rows`` off skips the one total that costs a query (a count in the DuckDB file or
    the database runs a query or view once more); :func:`~leadscore.scoring.run_scoring` turns
    it off when no bar is shown, as in a scheduled run.
    """

    total: int | None = None
    read: int = 0
    count_rows: bool = True


def _csv_data_lines(path: Path) -> int:
    """Lines of a CSV file after its header, counted in 1 MiB blocks (a fraction of a second
    for a million rows; no parsing)."""
    lines = 0
    last = b"\n"
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            lines += block.count(b"\n")
            last = block[-1:]
    return max(lines + (last != b"\n") - 1, 0)


def _count_rows(con: sa.Connection, table: str | None, query: str | None) -> int | None:
    """Rows of ``table`` or of ``query`` in the database of ``con``; ``None`` where the server
    cannot count the query as a subquery (a ``SHOW`` or ``PRAGMA`` statement, an ``ORDER BY``
    on SQL Server): the total only serves a progress bar, and the rows are still read."""
    import sqlalchemy as sa

    if query is None:
        counted: Any = sa.select(sa.func.count()).select_from(sa.table(str(table)))
    else:
        # the query as written but for a closing ";", and a line comment at its end stays one
        counted = sa.text(f"SELECT count(*) FROM ({query.strip().rstrip(';')}\n) AS counted")
    try:
        # a savepoint: a count the server refuses must not abort the transaction that reads
        with con.begin_nested():
            return int(con.execute(counted).scalar_one())
    except sa.exc.DBAPIError as err:
        logger.debug("rows not counted: %s", error_reason(err))
        return None


def _count_duckdb_rows(con: duckdb.DuckDBPyConnection, select: str) -> int | None:
    """Rows of ``select`` in a DuckDB file, as :func:`_count_rows` counts a database's."""
    import duckdb

    try:
        ((rows,),) = con.sql(select).aggregate("count(*)").fetchall()
    except duckdb.Error as err:
        logger.debug("rows not counted: %s", error_reason(err))
        return None
    return int(rows)


def iter_table_chunks(
    source: str | os.PathLike[str],
    table: str | None = None,
    *,
    query: str | None = None,
    chunk_rows: int = 250_000,
    na_values: list[str] | None = None,
    text_columns: Sequence[str] = (),
    strings: bool = False,
    progress: ReadProgress | None = None,
    named_by: str | None = SPEC_TABLE,
) -> Iterator[pd.DataFrame]:
    """Read one table a slice of rows at a time, so memory is bounded by the slice.

    Parquet is read by record batches, CSV by pandas chunks, DuckDB files and databases by
    fetching the result in batches. Sources, options and errors (``named_by`` included) are
    those of :func:`read_table`, checked before the first slice and while streaming.
    ``progress``, when given, learns the table's rows before the first slice and counts the
    rows read.
    """
    if chunk_rows < 1:
        raise DataError(
            f"chunk size must be at least 1, got {chunk_rows}",
            "Give a positive number of rows per chunk.",
        )
    read = progress if progress is not None else ReadProgress()
    source = duckdb_url_file(source)
    if is_sql_url(source):
        url = str(source)
        connection = _sql_connection(url, table, query, named_by)
        with _read_errors(shown_url(url), "", table=table, query=query), connection as con:
            if progress is not None and progress.count_rows:
                read.total = _count_rows(con, table, query)
            where = _result_where(shown_url(url), table, query)
            chunks = pd.read_sql_query(_select_sql(table, query), con, chunksize=chunk_rows)
            for number, chunk in enumerate(chunks):
                if number == 0:  # every chunk has the result's columns
                    _check_unique_names(list(chunk.columns), where, DUPLICATE_RESULT_FIX)
                read.read += len(chunk)
                yield _drop_unnamed(chunk)
        return
    path = _table_file(source, table, query)
    suffix = path.suffix.lower()
    with _read_errors(str(path), suffix, table=table, query=query):
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            parquet = pq.ParquetFile(path)
            read.total = parquet.metadata.num_rows
            # batches are filled across row groups, so every chunk but the last has chunk_rows
            for batch in parquet.iter_batches(batch_size=chunk_rows):
                read.read += batch.num_rows
                yield _drop_unnamed(batch.to_pandas())
        elif suffix == ".csv":
            options = _csv_options(path, na_values, text_columns, strings)
            if progress is not None:
                read.total = _csv_data_lines(path)
            with pd.read_csv(path, chunksize=chunk_rows, **options) as reader:
                for chunk in reader:
                    read.read += len(chunk)
                    yield _drop_unnamed(chunk)
        else:
            with _duckdb_file(path, table, query, named_by) as con:
                select = query or f"SELECT * FROM {_quoted(str(table))}"
                relation = con.sql(select)
                _check_unique_names(
                    relation.columns, _result_where(path, table, query), DUPLICATE_RESULT_FIX
                )
                if progress is not None and progress.count_rows:
                    read.total = _count_duckdb_rows(con, select)
                for batch in relation.to_arrow_reader(chunk_rows):
                    read.read += batch.num_rows
                    yield _drop_unnamed(batch.to_pandas())


#: The name of event data whose database URL names no database (an ODBC connection string).
UNNAMED_EVENT_DATA = "events"


def event_data_name(source: str | Path) -> str:
    """The name of event data, for its model folder and MLflow: the folder's or file's name,
    or the database's name of a URL (``acme_crm`` of ``postgresql+psycopg://u@host/acme_crm``,
    ``crm`` of ``sqlite:///data/crm.db`` and of ``duckdb:///data/crm.duckdb``).

    Each data set must have a name of its own: the model registers as ``leadscore-NAME`` and
    ``score`` takes that name's champion, so two business units scoring from two databases
    under one name would share, and overwrite, one champion and one ``models/NAME/`` folder.
    A database name is made safe for the registry and a folder (a run of other characters
    than ``A-Za-z0-9_.-`` becomes ``_``, no dot first); a URL without one gives ``events``.

    A folder keeps its whole name: ``acme.2026-05/`` and ``acme.v2/`` are two data sets, not
    two files named ``acme``. Only a file, or a path ending in a suffix the readers know
    (``.duckdb``, ``.db``, ``.parquet``, ...), loses its suffix (``crm`` of ``crm.duckdb``).
    """
    given = duckdb_url_file(source)
    if not is_sql_url(given):
        path = Path(given)
        # the files event data is read from (DuckDB, SQLite) or made of (table files)
        known = path.suffix.lower() in (*DUCKDB_SUFFIXES, *SQLITE_SUFFIXES, *TABLE_SUFFIXES)
        if path.suffix and not path.is_dir() and (known or path.is_file()):
            return path.stem or UNNAMED_EVENT_DATA
        return path.name or UNNAMED_EVENT_DATA
    import sqlalchemy as sa

    try:
        database = sa.engine.make_url(str(given)).database or ""
    except (sa.exc.ArgumentError, ValueError):
        database = ""
    if database == ":memory:":
        database = ""
    elif sqlite_file(str(given)) is not None or database.startswith("file:"):
        database = Path(database.removeprefix("file:").split("?")[0]).stem  # the file's name
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", database).lstrip(".")
    return safe if safe.strip("_") else UNNAMED_EVENT_DATA


def find_event_table(folder: Path, name: str) -> Path | None:
    """The file holding event table ``name`` in ``folder``, as ``.parquet`` or ``.csv``.

    Both at once is an error: they may differ (an old export beside a new one), and reading
    either one silently would train or score on data the user did not mean. So is a file
    named so but for case (``Outcomes.csv``, ``LEADS.CSV``): it is not guessed to be the
    table, since a case-sensitive file system would not read it (nor warn) and a
    case-insensitive one would, and the same folder would mean different data.
    """
    wanted = [f"{name}{suffix}" for suffix in TABLE_SUFFIXES]
    names = _folder_names(folder)
    found = [folder / n for n in wanted if n in names]
    cased = sorted(n for n in names if n.lower() in wanted and n not in wanted)
    if cased:
        if found:
            raise DataError(
                f"{folder} holds both {found[0].name} and {cased[0]}",
                f"Keep one file for the {name} table and move the other away.",
            )
        raise DataError(
            f"{folder / cased[0]}: table names are lower case", f"Rename it to {cased[0].lower()}."
        )
    if len(found) > 1:
        raise DataError(
            f"{folder} holds both {found[0].name} and {found[1].name}",
            f"Keep one file for the {name} table and move the other away.",
        )
    return found[0] if found else None


def _folder_names(folder: Path) -> list[str]:
    """The names in ``folder`` as the file system spells them, or none where it cannot be
    listed (the caller has checked that it is a folder)."""
    try:
        return [entry.name for entry in os.scandir(folder)]
    except OSError:
        return []


#: How many names a warning about a missing table lists before "and N more".
_LISTED_NAMES = 8

#: What an absent optional table means for the rest of the flow.
_ABSENT_MEANS = {
    "activities": "every lead is treated as having no activity",
    "outcomes": "every lead is treated as open",
}


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_LISTED_NAMES]) or "nothing"
    rest = len(names) - _LISTED_NAMES
    return f"{shown} and {rest} more" if rest > 0 else shown


def _warn_absent_in_folder(folder: Path, name: str) -> None:
    """Log that ``folder`` holds no table ``name``, naming what was looked for and what is
    there: a misnamed export (``closed_deals.csv``) would otherwise pass in silence."""
    there = sorted(
        (n for n in _folder_names(folder) if not n.startswith(".")),
        key=lambda n: (Path(n).suffix.lower() not in TABLE_SUFFIXES, n),
    )
    looked = ", ".join(f"{name}{suffix}" for suffix in TABLE_SUFFIXES)
    logger.warning(
        "no %s table in %s%s (looked for %s; found %s): %s",
        name,
        folder,
        os.sep,
        looked,
        _listing(there),
        _ABSENT_MEANS[name],
    )


def _database_tables(source: str) -> list[str]:
    """The tables (and views) of a DuckDB file or a database, for messages; none where they
    cannot be listed."""
    if not is_sql_url(source):
        import duckdb

        try:
            with duckdb.connect(source, read_only=True) as con:
                return sorted(str(r[0]) for r in con.execute("SHOW TABLES").fetchall())
        except duckdb.Error:
            return []
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(source)
    except (sa.exc.ArgumentError, ModuleNotFoundError):
        return []
    try:
        with engine.connect() as con:
            inspector = sa.inspect(con)
            return sorted({*inspector.get_table_names(), *inspector.get_view_names()})
    except sa.exc.SQLAlchemyError:
        return []
    finally:
        engine.dispose()


def _absent_in_database(source: str, name: str, *, warn: bool = True) -> None:
    """``source`` has no table ``name``: log it as :func:`_warn_absent_in_folder` does (unless
    not ``warn``: a table that is usually absent), or refuse a table named so but for case,
    which a database with case-sensitive names (not DuckDB, not SQLite) does not find."""
    tables = _database_tables(source)
    shown = shown_url(source) if is_sql_url(source) else source
    cased = [t for t in tables if t.lower() == name]
    if cased:
        raise DataError(
            f"{shown}: table {cased[0]!r}: table names are lower case",
            f"Rename it to {name}.",
        )
    if warn:
        logger.warning(
            "no %s table in %s (tables: %s): %s",
            name,
            shown,
            _listing(tables),
            _ABSENT_MEANS[name],
        )


def _folder_activity_map(folder: Path, *, warn: bool = True) -> ActivityTypeMap:
    """The ``activity_types`` table of event folder ``folder``, checked, or a map without rules
    naming where one would go. The file is found as the other tables are
    (``Activity_Types.csv`` is refused, not guessed); its absence is the usual case and is not
    logged. ``warn``: as for :func:`~leadscore.schema.validate_activity_type_map`."""
    found = find_event_table(folder, ACTIVITY_TYPES_TABLE)
    if found is None:
        return ActivityTypeMap(str(folder / f"{ACTIVITY_TYPES_TABLE}.csv"))
    # as text: its source types are compared with the log's types as written
    return validate_activity_type_map(read_table(found, strings=True), str(found), warn=warn)


def _database_activity_map(source: str, *, warn: bool = True) -> ActivityTypeMap:
    """The ``activity_types`` table of a DuckDB file or database, checked, or a map without
    rules naming where one would go (absent is the usual case: not logged). ``warn``: as for
    :func:`~leadscore.schema.validate_activity_type_map`."""
    shown = shown_url(source) if is_sql_url(source) else source
    try:
        frame = read_table(source, ACTIVITY_TYPES_TABLE, named_by=None)
    except NoSuchTableError:
        _absent_in_database(source, ACTIVITY_TYPES_TABLE, warn=False)
        return ActivityTypeMap(f"an {ACTIVITY_TYPES_TABLE} table in {shown}")
    return _database_map(frame, shown, warn=warn)


def _database_map(frame: pd.DataFrame, shown: str, *, warn: bool = True) -> ActivityTypeMap:
    """The ``activity_types`` table of database ``shown`` (as printed), checked."""
    return validate_activity_type_map(
        frame,
        f"{shown}: the {ACTIVITY_TYPES_TABLE} table",
        f"the {ACTIVITY_TYPES_TABLE} table of {shown}",
        warn=warn,
    )


NO_ACTIVITY_ROWS_FIX = "Export the activity log again; a company's log is never empty."


def _no_activity_rows(where: str) -> DataError:
    """An activity log without rows is an export gone wrong, never a company's real log:
    scored, every lead would look inactive and the current scores would be overwritten."""
    return DataError(f"{where} has no rows", NO_ACTIVITY_ROWS_FIX)


def _log_no_outcome_rows(where: str) -> None:
    """An outcomes table without rows is allowed (no deal has closed yet), but said."""
    logger.warning("%s has no rows: no deal has closed yet, every lead is treated as open", where)


#: Suffixes only SQLite files have (``.db`` is read as DuckDB unless its header says
#: SQLite); such files are read through an ``sqlite:///`` URL.
SQLITE_SUFFIXES = (".sqlite", ".sqlite3")


def _is_sqlite_file(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(16) == _SQLITE_MAGIC
    except OSError:
        return False


def _check_event_folder(path: Path) -> None:
    """Refuse a ``path`` that is no folder of event tables in one line; an SQLite file (by
    its header, or a .sqlite/.sqlite3 suffix) is pointed to the URL that reads it."""
    if path.is_dir():
        return
    _refuse_sqlite_file(path)
    if not path.exists():
        raise DataError(
            f"{path} does not exist{closest_names(path.name, _siblings(path))}",
            "Give the folder of the event tables (leads, activities, outcomes), or a DuckDB "
            "file or database URL holding them.",
        )
    raise DataError(
        f"{path} is not a folder of event tables",
        "Give a folder with leads.parquet (or .csv), activities.* and outcomes.*, "
        "or a DuckDB file with those tables.",
    )


def _siblings(path: Path) -> list[str]:
    """The names in the folder ``path`` would be in, to suggest one for a misspelt path."""
    try:
        return [entry.name for entry in path.parent.iterdir()]
    except OSError:
        return []


def _refuse_sqlite_file(path: Path) -> None:
    """Event data given as an SQLite file path: name the ``--data`` URL that reads it (the
    path as given, so an absolute one gets four slashes: ``sqlite:////data/crm.db``)."""
    header = path.is_file() and _is_sqlite_file(path)
    if header or path.suffix.lower() in SQLITE_SUFFIXES:
        what = "is an SQLite database, not" if header else "is not"
        raise DataError(
            f"{path} {what} a folder of event tables or a DuckDB file",
            f"Give it as a URL: --data sqlite:///{path}",
        )


def load_closed_loop(
    source: str | os.PathLike[str],
    *,
    observed_until: pd.Timestamp | str | None = None,
    tables: Sequence[str] = EVENT_TABLES,
) -> ClosedLoopData:
    """Load and validate event-form data.

    ``source`` is a folder with ``leads``, ``activities`` and ``outcomes`` as ``.parquet`` or
    ``.csv`` files (``activities`` and ``outcomes`` may be absent: logged as a warning that
    names what is there), a DuckDB file holding tables of those names, or an SQLAlchemy URL
    of a database holding them. Table files are named in lower case; an activity log without
    rows is an error. An optional ``activity_types`` table there (file, or table of the
    DuckDB file or database) maps the log's own activity types onto leadscore's before the
    log is checked (:func:`~leadscore.schema.map_activity_types`); it is usually absent, which
    is not logged.

    ``observed_until``, the moment of the extract, is taken from the argument, else from an
    ``observed_until`` entry of a ``manifest.json`` in the folder (``leadscore synth`` writes
    one), else the latest timestamp in the data (:func:`event_observed_until` computes that
    default without loading the data).

    ``tables`` names the tables to read (``leads`` always): a caller that never looks at the
    activity log, by far the largest table, leaves it out and gets it empty.
    """
    expect_type(
        source,
        (str, os.PathLike),
        "load_closed_loop's source",
        "Pass a folder, a DuckDB file or a database URL; for DataFrames already in memory "
        "call validate_closed_loop(leads, activities, outcomes).",
    )
    frames: dict[str, pd.DataFrame | None] = dict.fromkeys(EVENT_TABLES)
    where: dict[str, str] = {}
    declared: str | None = None  # the manifest's moment, read once and held against the data
    absent: list[str] = []
    wanted = [name for name in EVENT_TABLES if name == "leads" or name in tables]
    source = duckdb_url_file(source)
    text = str(source)
    path = Path(source)
    if not is_sql_url(text) and not path.is_dir():
        _refuse_sqlite_file(path)
    in_database = is_sql_url(text) or path.suffix.lower() in DUCKDB_SUFFIXES
    if in_database:
        shown = shown_url(text) if is_sql_url(text) else text
        for name in wanted:
            where[name] = f"{shown}: the {name} table"
            try:
                frames[name] = read_table(text, name, named_by=None)
            except NoSuchTableError:
                if name == "leads":
                    raise
                _absent_in_database(text, name)
                absent.append(name)
    else:
        _check_event_folder(path)
        if observed_until is None:
            declared = observed_until = manifest_observed_until(path)
        for name in wanted:
            found = find_event_table(path, name)
            if found is None and name == "leads":
                raise DataError(
                    f"{path} has no leads.parquet or leads.csv",
                    "Write the leads table there; see the README's data contract.",
                )
            if found is None:
                _warn_absent_in_folder(path, name)
                absent.append(name)
                continue
            where[name] = str(found)
            frames[name] = read_table(found, text_columns=EVENT_TEXT_COLUMNS[name])
    # only a log that is read is mapped: a caller that leaves the log out needs no map
    type_map = None
    if frames["activities"] is not None:
        type_map = _database_activity_map(text) if in_database else _folder_activity_map(path)
    logger.info(
        "loaded %s: %s",
        shown_url(text) if is_sql_url(text) else text,
        ", ".join(f"{k}={0 if v is None else len(v):,}" for k, v in frames.items() if k in wanted),
    )
    if frames["activities"] is not None and frames["activities"].empty:
        raise _no_activity_rows(where["activities"])
    if frames["outcomes"] is not None and frames["outcomes"].empty:
        _log_no_outcome_rows(where["outcomes"])
    data = validate_closed_loop(
        frames["leads"],
        frames["activities"],
        frames["outcomes"],
        observed_until=observed_until,
        activity_types=type_map,
    )
    check_manifest_moment(path, declared, data)
    warn_post_contact_leads(data.leads)
    return dataclasses.replace(data, absent_tables=tuple(absent))


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


@dataclass(frozen=True)
class _Scan:
    """An event table as DuckDB reads it: ``sql`` goes after FROM, ``where`` names it in
    messages, ``suffix`` is its file's (``""`` for a table of a DuckDB file)."""

    where: str
    sql: str
    suffix: str

    @classmethod
    def of_file(cls, file: Path) -> _Scan:
        return cls(str(file), _duckdb_scan(file), file.suffix.lower())

    def errors(self) -> contextlib.AbstractContextManager[None]:
        return _read_errors(self.where, self.suffix)


def _event_folder_leads(path: Path) -> tuple[pd.DataFrame, dict[str, Path | None]]:
    """The validated leads of event folder ``path`` and the files of its other tables
    (``None`` where absent), each table file checked as :func:`read_table` checks it."""
    _check_event_folder(path)
    leads_file = find_event_table(path, "leads")
    if leads_file is None:
        raise DataError(
            f"{path} has no leads.parquet or leads.csv",
            "Write the leads table there; see the README's data contract.",
        )
    leads = validate_leads(read_table(leads_file, text_columns=EVENT_TEXT_COLUMNS["leads"]))
    others = {name: find_event_table(path, name) for name in ("activities", "outcomes")}
    for file in others.values():
        if file is not None:
            _table_file(file, None, None)  # empty, or not comma-separated
    return leads, others


def _has_rows(con: duckdb.DuckDBPyConnection, scan: _Scan) -> bool:
    with scan.errors():
        (rows,) = con.execute(f"SELECT count(*) FROM (SELECT 1 FROM {scan.sql} LIMIT 1)").fetchall()
    return bool(rows[0])


def iter_closed_loop_chunks(
    source: str | os.PathLike[str],
    *,
    chunk_leads: int = 100_000,
    observed_until: pd.Timestamp | str | None = None,
    progress: ReadProgress | None = None,
    open_at: pd.Timestamp | None = None,
    on_closed: Callable[[pd.Series], None] | None = None,
    on_open: Callable[[pd.Series], None] | None = None,
) -> Iterator[ClosedLoopData]:
    """Event-form data of a folder, a DuckDB file or a database, a slice of leads at a time,
    each slice validated.

    Memory is bounded by the slice, not the source: the leads are validated whole, sorted by id
    and cut into slices of ``chunk_leads``; each slice's activities and outcomes are read with
    DuckDB by the slice's exact ids, normalised as :func:`~leadscore.schema.to_lead_ids` does
    (``1.0`` is ``1``; CSV ids as written), with an id-range filter in front that skips whole
    row groups of Parquet files sorted by lead id (as ``leadscore synth`` writes them). Rows for
    unknown or empty ids are an error, as in :func:`load_closed_loop`, so both readers see the
    same data; so are activity types outside the contract, an activity log without rows and
    table files named but for case, while an absent table is logged. A folder's
    ``activity_types`` table maps the log's own types in the SQL that reads it (a ``CASE``
    over its few types, ignored types filtered out), checked and counted on the whole log as
    :func:`load_closed_loop` maps it, so both readers give the same features; every slice
    carries what it did (``activity_mapping``), logged once. Every slice shares the
    folder's ``observed_until``; taken from the data, it is checked on the whole folder as
    :func:`load_closed_loop` checks it (a timestamp in the future is an error, a latest one far
    after the rest a warning), and so are outcomes closed before their lead was created; taken
    from the folder's ``manifest.json``, it is held against the whole folder before the first
    slice (:func:`_check_declared_moment`), as :func:`load_closed_loop` holds it.
    Activity rows repeated exactly are counted over all slices and logged once, after the last.
    ``progress``, when given, learns the leads to read once they are validated and counts the
    leads of each slice.

    ``open_at`` keeps to the leads open at that moment, as the scorer needs them: created by
    it and without an outcome closed by it. The activity of every other lead (most of a
    mature CRM's log) is then never read. The checks on the whole folder are made as without
    it (outcomes too: one per lead, each won or lost, :func:`_check_outcome_rows`), but the
    row-by-row checks of a slice (a timestamp that does not parse) only see the rows read,
    and repeated activity rows are counted over those. The ids of the leads left out as
    closed go to ``on_closed`` (as text) before the first slice, and the ids of the open
    leads to be read to ``on_open``, before any activity is read: a scorer can refuse an
    input that has lost its outcomes before it builds a feature
    (:func:`leadscore.scoring.refuse_reopened`).

    A DuckDB file is read as a folder is, its tables attached read-only. A database (an
    SQLAlchemy URL) has its leads and outcomes read whole, and its activity log checked in the
    database and read by the slice's ids (:func:`_iter_database_chunks`).
    """
    import duckdb

    if chunk_leads < 1:
        raise DataError(
            f"chunk size must be at least 1, got {chunk_leads}",
            "Give a positive number of leads per chunk.",
        )
    source = duckdb_url_file(source)
    if is_sql_url(str(source)):
        yield from _iter_database_chunks(
            str(source), chunk_leads, observed_until, progress, open_at, on_closed, on_open
        )
        return
    path = Path(source)
    in_file = not path.is_dir() and path.suffix.lower() in DUCKDB_SUFFIXES
    if in_file:
        _refuse_sqlite_file(path)
        leads, others = _duckdb_file_tables(path)
        type_map = _database_activity_map(str(path)) if others["activities"] else None
        declared = None
    else:
        _check_event_folder(path)
        leads, files = _event_folder_leads(path)
        type_map = _folder_activity_map(path) if files["activities"] is not None else None
        declared = manifest_observed_until(path) if observed_until is None else None
        others = {name: None if f is None else _Scan.of_file(f) for name, f in files.items()}
    leads = leads.sort_values("lead_id", kind="stable").reset_index(drop=True)
    until = observed_until if observed_until is not None else declared
    absent = tuple(name for name, scan in others.items() if scan is None)
    for name in absent:
        if in_file:
            _absent_in_database(str(path), name)
        else:
            _warn_absent_in_folder(path, name)
    known = pd.Index(leads["lead_id"])
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'").fetchall()
        if in_file:
            _attach_duckdb_file(con, path)
        con.register("known_ids", leads[["lead_id", "created_at"]])
        keys: dict[str, str] = {}
        type_counts: TypeCounts | None = None
        mapping: ActivityMapping | None = None
        for name in list(others):
            scan = others[name]
            if scan is None:
                continue
            if not _has_rows(con, scan):
                if name == "activities":
                    raise _no_activity_rows(scan.where)
                _log_no_outcome_rows(scan.where)
            with scan.errors():
                keys[name] = _lead_key(con, name, scan)
            if name == "activities" and type_map is not None:
                # mapped first, as the whole reader maps: ignored rows are never checked
                scan, type_counts, mapping = _apply_activity_map(con, scan, type_map)
                others[name] = scan
                if mapping is not None:
                    log_activity_mapping(mapping)
            with scan.errors():
                _check_ids_known(con, name, scan, keys[name], known)
        if type_counts is not None and type_map is not None:
            _check_activity_types(type_counts, type_map)
        formats = {
            name: _text_timestamp_format(con, name, scan)
            for name, scan in others.items()
            if scan is not None
        }
        if others["outcomes"] is not None:
            _check_outcome_rows(con, others["outcomes"], keys["outcomes"])
            _check_closed_after_created(con, others["outcomes"], keys["outcomes"], formats)
        if until is None:
            until = _latest_timestamp(con, leads, others, formats, keys)
        elif declared is not None:
            _check_declared_moment(con, path, declared, leads, others, formats, keys)
        if open_at is not None:
            outcomes = others["outcomes"]
            leads = _leads_open_at(con, leads, outcomes, keys, formats, open_at, on_closed)
            if on_open is not None:
                on_open(leads["lead_id"].astype(str))
        if progress is not None:
            progress.total = len(leads)
        duplicates = activity_rows = 0
        for start in range(0, len(leads), chunk_leads):
            part = leads.iloc[start : start + chunk_leads]
            low, high = part["lead_id"].iloc[0], part["lead_id"].iloc[-1]
            con.register("slice_ids", part[["lead_id"]])
            frames: dict[str, pd.DataFrame | None] = dict.fromkeys(others)
            for name, scan in others.items():
                if scan is None:
                    continue
                key = keys[name]
                with scan.errors():
                    frame = con.execute(
                        f"SELECT * FROM {scan.sql} WHERE {key} BETWEEN ? AND ? "
                        f"AND {key} IN (SELECT lead_id FROM slice_ids)",
                        [low, high],
                    ).df()
                frame = _csv_missing(frame) if scan.suffix == ".csv" else frame
                fmt = formats[name]
                if fmt is not None:
                    column = _TIMESTAMP_COLUMNS[name]
                    frame[column] = parse_timestamps_as(frame[column], fmt, name, column)
                frames[name] = frame
            con.unregister("slice_ids")
            data = validate_closed_loop(
                part,
                frames["activities"],
                frames["outcomes"],
                observed_until=until,
                warn_whole=False,
            )
            duplicates += count_duplicate_activities(data.activities)
            activity_rows += len(data.activities)
            if progress is not None:
                progress.read += len(part)
            yield dataclasses.replace(data, absent_tables=absent, activity_mapping=mapping)
    warn_duplicate_activities(duplicates, activity_rows)


#: Lead ids bound in one ``IN`` list of a database query: SQLite takes 32,766 values.
SQL_IDS_PER_QUERY = 10_000


def _sql_table_name(con: sa.Connection, name: str) -> str | None:
    """The database's own name of event table ``name`` (SQLite finds ``Leads`` when asked for
    leads, SQLAlchemy's reflection does not), or ``None`` where it has none."""
    import sqlalchemy as sa

    inspector = sa.inspect(con)
    if not inspector.has_table(name):
        return None
    names = inspector.get_table_names()
    return name if name in names else next((n for n in names if n.lower() == name), name)


def _iter_database_chunks(
    url: str,
    chunk_leads: int,
    observed_until: pd.Timestamp | str | None,
    progress: ReadProgress | None,
    open_at: pd.Timestamp | None,
    on_closed: Callable[[pd.Series], None] | None,
    on_open: Callable[[pd.Series], None] | None = None,
) -> Iterator[ClosedLoopData]:
    """:func:`iter_closed_loop_chunks` of a database: its leads and outcomes are read whole
    and validated, its activity log is checked in the database (rows, types, lead ids) and
    read a slice of leads at a time, by their ids, so that a scoring run (``open_at``) reads
    only the activity of the open leads. Text timestamps are parsed in one format decided on
    the column's distinct values, as the whole reader decides it."""

    shown = shown_url(url)
    leads = validate_leads(read_table(url, "leads", named_by=None))
    leads = leads.sort_values("lead_id", kind="stable").reset_index(drop=True)
    known = pd.Index(leads["lead_id"])
    outcomes: pd.DataFrame | None = None
    try:
        outcomes = read_table(url, "outcomes", named_by=None)
    except NoSuchTableError:
        _absent_in_database(url, "outcomes")
    if outcomes is not None and outcomes.empty:
        _log_no_outcome_rows(f"{shown}: the outcomes table")
    with (
        _read_errors(shown, "", table="activities"),
        _sql_connection(url, "leads", None, None) as con,
    ):
        table = _sql_table_name(con, "activities")
        if table is None:
            _absent_in_database(url, "activities")
            log = None
        else:
            log = _SqlActivityLog.checked(con, table, _database_activity_map(url), known, shown)
    until = (
        observed_until
        if observed_until is not None
        else _sql_observed_until(url, leads=leads, log=log)
    )
    whole = validate_closed_loop(leads, None, outcomes, observed_until=until, warn_whole=False)
    absent = tuple(n for n, f in (("activities", log), ("outcomes", outcomes)) if f is None)
    if open_at is not None:
        by_then = whole.outcomes.loc[whole.outcomes["closed_at"] <= open_at, "lead_id"]
        is_closed = is_known_id(leads["lead_id"], by_then).to_numpy()
        if on_closed is not None and is_closed.any():
            on_closed(leads.loc[is_closed, "lead_id"].astype(str).reset_index(drop=True))
        keep = (leads["created_at"] <= open_at).to_numpy() & ~is_closed
        leads = leads[keep].reset_index(drop=True)
        if on_open is not None:
            on_open(leads["lead_id"].astype(str))
    if progress is not None:
        progress.total = len(leads)
    outcome_ids = None if outcomes is None else to_lead_ids(outcomes["lead_id"], "outcomes")
    duplicates = activity_rows = 0
    with (
        _read_errors(shown, "", table="activities"),
        _sql_connection(url, "leads", None, None) as con,
    ):
        for start in range(0, len(leads), chunk_leads):
            part = leads.iloc[start : start + chunk_leads]
            activities = None if log is None else log.of_leads(con, part["lead_id"])
            theirs = None
            if outcomes is not None and outcome_ids is not None:
                theirs = outcomes[is_known_id(outcome_ids, part["lead_id"]).to_numpy()]
            data = validate_closed_loop(
                part,
                activities,
                theirs,
                observed_until=whole.observed_until,
                warn_whole=False,
                activity_types=None if log is None else log.type_map,
            )
            duplicates += count_duplicate_activities(data.activities)
            activity_rows += len(data.activities)
            if progress is not None:
                progress.read += len(part)
            mapping = None if log is None else log.mapping
            yield dataclasses.replace(data, absent_tables=absent, activity_mapping=mapping)
    warn_duplicate_activities(duplicates, activity_rows)


@dataclass
class _SqlActivityLog:
    """A database's activity log, checked whole in the database and read by lead ids.

    ``ids`` maps each lead id (as text, :func:`~leadscore.schema.to_lead_ids`) to the ids as
    the database holds them, so that a slice's query binds values of the column's own type
    (an integer column is not compared with text) and the id column's index is used."""

    table: str
    type_map: ActivityTypeMap
    mapping: ActivityMapping | None
    kept: Any
    ids: pd.Series
    #: rows the map keeps (every row without one)
    rows: int
    fmt: str | None = None

    @classmethod
    def checked(
        cls,
        con: sa.Connection,
        table: str,
        type_map: ActivityTypeMap,
        known: pd.Index,
        shown: str,
    ) -> _SqlActivityLog:
        """The log ``table`` once its columns, rows, activity types and lead ids passed the
        checks the whole reader makes, with the same messages."""
        import sqlalchemy as sa

        columns = [c["name"] for c in sa.inspect(con).get_columns(table)]
        _require_columns(pd.DataFrame(columns=columns), "activities", ACTIVITIES_REQUIRED)
        type_counts, written = _sql_activity_type_counts(con, table)
        if not sum(type_counts[0].values()) + type_counts[1]:
            raise _no_activity_rows(f"{shown}: the activities table")
        kept, mapping = _sql_activity_map(type_counts, written, type_map)
        if mapping is not None:
            log_activity_mapping(mapping)
        _check_activity_types(type_counts, type_map)
        lead: sa.ColumnClause[Any] = sa.column("lead_id")
        per_lead = pd.read_sql_query(
            sa.select(lead.label("lead_id"), sa.func.count().label("n"))
            .select_from(sa.table(table))
            .where(*([] if kept is None else [kept]))
            .group_by(lead),
            con,
        )
        empty = per_lead["lead_id"].isna()
        if empty.any():
            rows = int(per_lead.loc[empty, "n"].sum())
            raise DataError(
                f"activities.lead_id is empty in {rows} row(s)",
                "Give every row a value in lead_id.",
            )
        text = to_lead_ids(per_lead["lead_id"], "activities")
        unknown = ~is_known_id(text, known).to_numpy()
        if unknown.any():
            counts = per_lead.loc[unknown, "n"]
            raise unknown_ids_error(
                "activities",
                int(counts.sum()),
                int(per_lead["n"].sum()),
                str(text[unknown].iloc[0]),
                text[unknown].head(UNKNOWN_ID_SAMPLE),
                known,
            )
        written_ids = pd.Series(
            [_python_value(v) for v in per_lead["lead_id"]], index=text.to_numpy(), dtype=object
        )
        return cls(table, type_map, mapping, kept, written_ids, int(per_lead["n"].sum()))

    def of_leads(self, con: sa.Connection, lead_ids: pd.Series) -> pd.DataFrame:
        """The log's rows of ``lead_ids`` (as text), their timestamps typed as the whole
        reader types them, ``IN`` lists of :data:`SQL_IDS_PER_QUERY` ids at a time."""
        import sqlalchemy as sa

        values = self.ids[self.ids.index.isin(lead_ids.astype(str))].tolist()
        lead: sa.ColumnClause[Any] = sa.column("lead_id")
        select = sa.select(sa.text("*")).select_from(sa.table(self.table))
        if self.kept is not None:
            select = select.where(self.kept)
        parts = [
            pd.read_sql_query(select.where(lead.in_(values[i : i + SQL_IDS_PER_QUERY])), con)
            for i in range(0, len(values), SQL_IDS_PER_QUERY)
        ]
        if not parts:
            parts = [pd.read_sql_query(select.limit(0), con)]
        frame = _drop_unnamed(pd.concat(parts, ignore_index=True))
        moments = frame["occurred_at"]
        if not (
            ptypes.is_datetime64_any_dtype(moments)
            or ptypes.is_numeric_dtype(moments)
            or ptypes.is_bool_dtype(moments)
            or moments.isna().all()
        ):
            if self.fmt is None:
                self.fmt = self._text_format(con)
            frame["occurred_at"] = parse_timestamps_as(
                moments, self.fmt, "activities", "occurred_at"
            )
        return frame

    def _text_format(self, con: sa.Connection) -> str:
        """The format of the log's text timestamps, decided on its distinct values."""
        import sqlalchemy as sa

        column: sa.ColumnClause[Any] = sa.column("occurred_at")
        distinct = pd.read_sql_query(
            sa.select(column)
            .select_from(sa.table(self.table))
            .where(column.is_not(None), *([] if self.kept is None else [self.kept]))
            .distinct()
            .limit(100_000),
            con,
        )["occurred_at"]
        return text_timestamp_format(distinct.astype("string"), "activities", "occurred_at")


def event_observed_until(source: str | os.PathLike[str]) -> pd.Timestamp:
    """The default ``observed_until`` of event data, as :func:`load_closed_loop` and
    :func:`iter_closed_loop_chunks` take it when none is given: a folder's ``manifest.json``
    entry, else the latest timestamp over leads, activities and outcomes, checked as they
    check it (a timestamp in the future is an error, a latest one far after the rest a
    warning; an activity log without rows, a missing required column and a misnamed table
    file are errors too).

    The activity log is never loaded: a folder's and a DuckDB file's tables are aggregated
    in DuckDB, a database's timestamp columns are read a slice at a time and only their
    latest rows are kept. Rows of types the source's ``activity_types`` table ignores are left
    out, as the loaders leave them out (a sales call logged after the extract must not move
    it). Values the loaders would refuse for another reason (an unknown lead id, a timestamp
    that does not read, an unknown activity type) are left to them, and so is the warning
    about map rows that read as the sales team's activity: ``score`` and ``report drift``
    take their default as-of here and then read the source with a loader, which warns, so
    that warning was printed twice.
    """
    import duckdb

    source = duckdb_url_file(source)
    text = str(source)
    if is_sql_url(text):
        return _sql_observed_until(text)
    path = Path(source)
    if not path.is_dir():
        _refuse_sqlite_file(path)
    if path.suffix.lower() in DUCKDB_SUFFIXES:
        return _duckdb_observed_until(path)
    _check_event_folder(path)
    manifest = manifest_observed_until(path)
    if manifest is not None:
        return naive_utc(parse_observed_until(manifest))
    leads, files = _event_folder_leads(path)
    type_map = _folder_activity_map(path, warn=False) if files["activities"] is not None else None
    others = {name: None if f is None else _Scan.of_file(f) for name, f in files.items()}
    with duckdb.connect() as con:
        return _scanned_observed_until(con, leads, others, type_map)


def _scanned_observed_until(
    con: duckdb.DuckDBPyConnection,
    leads: pd.DataFrame,
    others: Mapping[str, _Scan | None],
    type_map: ActivityTypeMap | None = None,
) -> pd.Timestamp:
    """The latest timestamp over ``leads`` and the tables DuckDB reads as ``others``, the
    activity log mapped by ``type_map`` (its ignored rows left out)."""
    con.execute("SET TimeZone = 'UTC'").fetchall()
    scans = {name: scan for name, scan in others.items() if scan is not None}
    keys: dict[str, str] = {}
    for name, scan in list(scans.items()):
        if name == "activities" and not _has_rows(con, scan):
            raise _no_activity_rows(scan.where)
        with scan.errors():
            keys[name] = _lead_key(con, name, scan)
        if name == "activities" and type_map is not None:
            scans[name] = _apply_activity_map(con, scan, type_map)[0]
    formats = {name: _text_timestamp_format(con, name, scan) for name, scan in scans.items()}
    mapped = {name: scans.get(name) for name in others}
    return _latest_timestamp(con, leads, mapped, formats, keys)


#: The catalog name under which a DuckDB file is attached to read its tables.
_ATTACHED = "leadscore_events"


def _attached_table(table: str) -> str:
    return f"{_ATTACHED}.main.{_quoted(table)}"


def _attach_duckdb_file(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Attach the DuckDB file ``path`` read-only to ``con`` as :data:`_ATTACHED`."""
    import duckdb

    quoted = str(path).replace("'", "''")
    try:
        con.execute(f"ATTACH '{quoted}' AS {_ATTACHED} (READ_ONLY)").fetchall()
    except duckdb.Error as err:
        raise DataError(
            f"{path} cannot be opened as a DuckDB file: {error_reason(err)}",
            "Check that it is a DuckDB file and that no other program is writing to it.",
        ) from err


def _duckdb_file_tables(path: Path) -> tuple[pd.DataFrame, dict[str, _Scan | None]]:
    """The validated leads of the DuckDB file ``path`` and its activities and outcomes tables
    as the sliced reader scans them once the file is attached (``None`` where absent)."""
    leads = validate_leads(read_table(path, "leads", named_by=None))
    names = {name.lower(): name for name in _database_tables(str(path))}
    return leads, {
        name: _Scan(f"{path}: the {name} table", _attached_table(names[name]), "")
        if name in names
        else None
        for name in ("activities", "outcomes")
    }


def _duckdb_observed_until(path: Path) -> pd.Timestamp:
    import duckdb

    leads = validate_leads(read_table(path, "leads", named_by=None))
    with duckdb.connect() as con:
        _attach_duckdb_file(con, path)
        names = {
            str(row[0]).lower(): str(row[0])
            for row in con.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_catalog = ? AND table_schema = 'main'",
                [_ATTACHED],
            ).fetchall()
        }
        others = {
            name: _Scan(f"{path}: the {name} table", _attached_table(names[name]), "")
            if name in names
            else None
            for name in ("activities", "outcomes")
        }
        type_map = None
        if "activities" in names:
            type_map = ActivityTypeMap(f"an {ACTIVITY_TYPES_TABLE} table in {path}")
            if ACTIVITY_TYPES_TABLE in names:
                table = _attached_table(names[ACTIVITY_TYPES_TABLE])
                where = f"{path}: the {ACTIVITY_TYPES_TABLE} table"
                with _read_errors(where, ""):
                    frame = _drop_unnamed(con.execute(f"SELECT * FROM {table}").df())
                type_map = _database_map(frame, str(path), warn=False)
        return _scanned_observed_until(con, leads, others, type_map)


#: Rows of a database's timestamp column read at a time by :func:`event_observed_until`.
SQL_CHUNK_ROWS = 250_000


def _sql_observed_until(
    url: str, *, leads: pd.DataFrame | None = None, log: _SqlActivityLog | None = None
) -> pd.Timestamp:
    """The extract moment of a database's event tables. A reader that has the validated
    ``leads`` and the checked activity ``log`` already passes them, so that neither the
    leads nor the log's activity types are read a second time."""
    import sqlalchemy as sa

    if leads is None:
        leads = validate_leads(read_table(url, "leads", named_by=None))
    now = utc_now()
    shown = shown_url(url)
    errors = _read_errors(f"{shown}: the event tables", "")
    with errors, _sql_connection(url, "leads", None, None) as con:
        inspector = sa.inspect(con)
        names = inspector.get_table_names()
        tables: dict[str, str] = {}
        for name in ("activities", "outcomes"):
            if inspector.has_table(name):
                tables[name] = (
                    name if name in names else next((n for n in names if n.lower() == name), name)
                )
        counts: dict[str, int] = {}
        for name, table in tables.items():
            if name == "activities" and log is not None:
                counts[name] = log.rows  # checked and counted, ignored types left out
                continue
            required = ACTIVITIES_REQUIRED if name == "activities" else OUTCOMES_REQUIRED
            columns = [c["name"] for c in inspector.get_columns(table)]
            _require_columns(pd.DataFrame(columns=columns), name, required)
            counts[name] = int(
                con.execute(sa.select(sa.func.count()).select_from(sa.table(table))).scalar_one()
            )
        if counts.get("activities") == 0:
            raise _no_activity_rows(f"{shown}: the activities table")
        kept: Any = None
        if log is not None:
            kept = log.kept
        elif "activities" in tables:
            kept, ignored = _sql_kept_activities(
                con, tables["activities"], _database_activity_map(url, warn=False)
            )
            counts["activities"] -= ignored
        keep = tail_rows(len(leads) + sum(counts.values())) + 1
        summaries = [timestamp_summary(leads, "leads", "created_at", now=now, keep=keep)]
        for name, table in tables.items():
            where = kept if name == "activities" else None
            summaries.append(
                _sql_timestamp_summary(con, name, table, counts[name], now, keep, where)
            )
    return extract_moment(summaries, now=now)


def _sql_kept_activities(
    con: sa.Connection, table: str, type_map: ActivityTypeMap
) -> tuple[Any, int]:
    """The SQL condition that keeps the rows of a database's activity log that ``type_map``
    does not ignore (``None``: all of them) and how many rows it leaves out. The types are
    counted in the database and folded here, as the whole reader folds them; the condition
    names the ignored types as the database holds them."""
    if not type_map.rules:
        return None, 0
    type_counts, written = _sql_activity_type_counts(con, table)
    where, mapping = _sql_activity_map(type_counts, written, type_map)
    return (None, 0) if mapping is None or where is None else (where, mapping.ignored_rows)


def _sql_activity_type_counts(con: sa.Connection, table: str) -> tuple[TypeCounts, list[Any]]:
    """The rows per activity type of a database's whole log, as :func:`_activity_type_counts`
    counts a file's, and the types as the database holds them (for a condition on them)."""
    import sqlalchemy as sa

    kind: sa.ColumnClause[Any] = sa.column("activity_type")
    counted = pd.read_sql_query(
        sa.select(kind.label("t"), sa.func.count().label("n"))
        .select_from(sa.table(table))
        .group_by(kind),
        con,
    )
    missing = counted["t"].isna()
    counts: dict[str, int] = {}
    written = [_python_value(v) for v in counted.loc[~missing, "t"]]
    for value, n in zip(written, counted.loc[~missing, "n"], strict=True):
        counts[str(value)] = counts.get(str(value), 0) + int(n)
    return (counts, int(counted.loc[missing, "n"].sum())), written


def _sql_activity_map(
    type_counts: TypeCounts, written: Sequence[Any], type_map: ActivityTypeMap
) -> tuple[Any, ActivityMapping | None]:
    """The SQL condition that keeps the rows ``type_map`` does not ignore (``None``: all of
    them), naming the types as the database holds them (``written``), and what the map does."""
    import sqlalchemy as sa

    mapping = type_map.mapping(*type_counts)
    ignored = [
        value
        for value in written
        if (rule := type_map.rule(value)) is not None and rule[0] == IGNORED_ACTIVITY
    ]
    if mapping is None or not ignored:
        return None, mapping
    kind: sa.ColumnClause[Any] = sa.column("activity_type")
    return sa.or_(kind.is_(None), kind.not_in(ignored)), mapping


def _python_value(value: Any) -> Any:
    """A value read into pandas as the database driver takes it back (numpy's int64 is not
    a Python int to every driver)."""
    return value.item() if hasattr(value, "item") else value


def _sql_timestamp_summary(
    con: sa.Connection,
    name: str,
    table: str,
    rows: int,
    now: pd.Timestamp,
    keep: int,
    where: Any = None,
) -> TimestampSummary:
    """:class:`~leadscore.schema.TimestampSummary` of a database table's timestamp column,
    read a slice of rows at a time, typed as :func:`~leadscore.timestamps.to_utc_naive` types
    the whole column (text in one format, decided on the column's distinct values), of the
    rows that meet the condition ``where`` (all without one)."""
    import sqlalchemy as sa

    column = _TIMESTAMP_COLUMNS[name]
    source = sa.table(table)
    kept = [] if where is None else [where]
    cutoff = future_cutoff(now)
    typed = _sql_moment_type(con, table, column)
    if typed is not None:
        return _sql_typed_summary(con, name, table, rows, cutoff, keep, kept, typed)
    select: sa.Select[Any, Any] = (
        sa.select(sa.column("lead_id"), sa.column(column)).select_from(source).where(*kept)
    )
    fmt: str | None = None
    future = empty = 0
    top = pd.DataFrame({"moment": pd.Series(dtype="datetime64[us]"), "lead_id": []})
    for chunk in pd.read_sql_query(select, con, chunksize=SQL_CHUNK_ROWS):
        values = chunk[column]
        if ptypes.is_datetime64_any_dtype(values):
            moments = values
        elif ptypes.is_numeric_dtype(values) or ptypes.is_bool_dtype(values):
            moments = to_utc_naive(values, name, column)  # the error for numbers
        else:
            if fmt is None:
                distinct = pd.read_sql_query(
                    sa.select(sa.column(column))
                    .select_from(source)
                    .where(*kept, sa.column(column).is_not(None))
                    .distinct()
                    .limit(100_000),
                    con,
                )[column]
                fmt = text_timestamp_format(distinct.astype("string"), name, column)
            moments = parse_timestamps_as(values, fmt, name, column)
        moments = _naive_utc_series(moments)
        empty += int(moments.isna().sum())
        future += int((moments > cutoff).sum())
        latest = pd.DataFrame(
            {"moment": moments.to_numpy(), "lead_id": to_lead_ids(chunk["lead_id"], name)}
        ).dropna(subset=["moment"])
        # the rows kept so far come first: of equal moments the earlier row wins, as in
        # timestamp_summary over the whole column
        top = pd.concat([top, latest], ignore_index=True).nlargest(keep, "moment", keep="first")
    if empty:
        raise DataError(
            f"{name}.{column} is empty in {empty} row(s)",
            f"Give every row a {column}, or drop the rows without one.",
        )
    return TimestampSummary(name, column, rows, future, top.reset_index(drop=True))


def _sql_moment_type(con: sa.Connection, table: str, column: str) -> Any | None:
    """The SQLAlchemy type of a database's timestamp column where the database stores
    moments (PostgreSQL's ``timestamp``/``timestamptz``, a ``DATE``), else ``None``: text is
    parsed in Python in the format of the whole column. SQLite stores text whatever type a
    column declares (``TIMESTAMP`` is an affinity), in any format and with any offsets, so
    its order as text is no order in time: always ``None`` there."""
    import sqlalchemy as sa

    if con.dialect.name == "sqlite":
        return None
    for described in sa.inspect(con).get_columns(table):
        if described["name"] == column and isinstance(described["type"], sa.DateTime | sa.Date):
            return described["type"]
    return None


def _sql_typed_summary(
    con: sa.Connection,
    name: str,
    table: str,
    rows: int,
    cutoff: pd.Timestamp,
    keep: int,
    kept: list[Any],
    typed: Any,
) -> TimestampSummary:
    """:func:`_sql_timestamp_summary` of a column the database stores as moments, by three
    aggregates in the database (empty rows, rows after ``cutoff``, the ``keep`` latest rows)
    instead of every row read into Python: 5 million activities took 16 s that way. A
    ``timestamptz`` is compared with the cutoff in UTC; a ``timestamp`` without a zone holds
    UTC, as the whole reader reads it."""
    import sqlalchemy as sa

    column: sa.ColumnClause[Any] = sa.column(_TIMESTAMP_COLUMNS[name])
    source = sa.table(table)
    aware = bool(getattr(typed, "timezone", False))
    bound = cutoff.tz_localize("UTC") if aware else cutoff
    empty, future = con.execute(
        sa.select(
            sa.func.count().filter(column.is_(None)),
            sa.func.count().filter(column > bound.to_pydatetime()),
        )
        .select_from(source)
        .where(*kept)
    ).one()
    if empty:
        raise DataError(
            f"{name}.{column.name} is empty in {empty} row(s)",
            f"Give every row a {column.name}, or drop the rows without one.",
        )
    latest = pd.read_sql_query(
        sa.select(sa.column("lead_id"), column)
        .select_from(source)
        .where(*kept, column.is_not(None))
        .order_by(column.desc())
        .limit(keep),
        con,
    )
    moments = _naive_utc_series(pd.to_datetime(latest[column.name], utc=aware))
    top = pd.DataFrame(
        {"moment": moments.to_numpy(), "lead_id": to_lead_ids(latest["lead_id"], name)}
    )
    return TimestampSummary(name, column.name, rows, int(future), top)


def _naive_utc_series(moments: pd.Series) -> pd.Series:
    if getattr(moments.dt, "tz", None) is not None:
        moments = moments.dt.tz_convert("UTC").dt.tz_localize(None)
    return moments.astype("datetime64[us]")


_TIMESTAMP_COLUMNS = {"activities": "occurred_at", "outcomes": "closed_at"}


def _text_timestamp_format(con: duckdb.DuckDBPyConnection, name: str, scan: _Scan) -> str | None:
    """The format of a table's timestamps written as text other than ISO 8601, decided once
    on the table's distinct values (:func:`~leadscore.timestamps.text_timestamp_format`), or None.

    Deciding per slice would fail on a slice whose days are all 12 or less ("reads both
    day-first and month-first") although the whole file says which it is.
    """
    column = _TIMESTAMP_COLUMNS[name]
    with scan.errors():
        described = con.execute(f"DESCRIBE SELECT * FROM {scan.sql}").fetchall()
    kinds = {row[0]: str(row[1]) for row in described}
    if kinds.get(column, "").upper() != "VARCHAR":
        return None
    with scan.errors():
        distinct = con.execute(
            f"SELECT DISTINCT {column} FROM {scan.sql} WHERE {column} IS NOT NULL LIMIT 100000"
        ).df()
    if scan.suffix == ".csv":
        distinct = _csv_missing(distinct)
    values = distinct[column].dropna().astype("string")
    if values.empty:
        return None
    fmt = text_timestamp_format(values, name, column)
    return None if fmt == "ISO8601" else fmt


def _lead_key(con: duckdb.DuckDBPyConnection, name: str, scan: _Scan) -> str:
    """SQL for the lead id of ``scan``'s rows as text, as :func:`to_lead_ids` writes it."""
    described = con.execute(f"DESCRIBE SELECT * FROM {scan.sql}").fetchall()
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


def _check_ids_known(
    con: duckdb.DuckDBPyConnection, name: str, scan: _Scan, key: str, known: pd.Index
) -> None:
    """Rows of ``scan`` with an empty lead id or one not in the leads (``known``) are errors,
    as in :func:`validate_closed_loop`, with the same message; one scan, before any slice
    is read."""
    ids = f"SELECT {key} AS k, {key} IN (SELECT lead_id FROM known_ids) AS known FROM {scan.sql}"
    empty, unknown, example, rows = con.execute(
        "SELECT count(*) FILTER (WHERE k IS NULL), "
        "count(*) FILTER (WHERE k IS NOT NULL AND NOT known), "
        "any_value(k) FILTER (WHERE k IS NOT NULL AND NOT known), count(*) "
        f"FROM ({ids})"
    ).fetchall()[0]
    if empty:
        raise DataError(
            f"{name}.lead_id is empty in {empty} row(s)", "Give every row a value in lead_id."
        )
    if unknown:
        distinct = con.execute(
            f"SELECT DISTINCT k FROM ({ids}) WHERE k IS NOT NULL AND NOT known "
            f"LIMIT {UNKNOWN_ID_SAMPLE}"
        ).df()["k"]
        raise unknown_ids_error(name, int(unknown), int(rows), str(example), distinct, known)


#: The rows per activity type of a log, as written (missing spellings of a CSV blanked), and
#: the rows without a type: what :func:`~leadscore.schema.check_activity_types` and an
#: :class:`~leadscore.schema.ActivityTypeMap` work on.
TypeCounts = tuple[dict[str, int], int]


def _activity_type_counts(con: duckdb.DuckDBPyConnection, scan: _Scan) -> TypeCounts:
    """The rows per activity type of the whole log ``scan`` (one aggregate, a few dozen rows
    back), as the whole reader counts them on its categories."""
    with scan.errors():
        counted = con.execute(
            f"SELECT CAST(activity_type AS VARCHAR) AS t, count(*) AS n FROM {scan.sql} "
            "GROUP BY ALL"
        ).df()
    if scan.suffix == ".csv":
        counted = _csv_missing(counted)
    missing = counted["t"].isna()
    counts: dict[str, int] = {}
    labels = counted.loc[~missing, "t"].astype(str)
    for label, n in zip(labels, counted.loc[~missing, "n"], strict=True):
        counts[label] = counts.get(label, 0) + int(n)
    return counts, int(counted.loc[missing, "n"].sum())


def _check_activity_types(type_counts: TypeCounts, type_map: ActivityTypeMap) -> None:
    """Activity types outside the contract over the whole log once mapped, with the message of
    :func:`~leadscore.schema.validate_activities` and the counts of the whole log, not of
    the first slice that holds one."""
    counts, missing = type_counts
    check_activity_types(type_map.mapped_counts(counts), missing, place=type_map.place)


def _sql_text(value: str) -> str:
    """``value`` as an SQL string literal (DuckDB reads no backslash escapes in one)."""
    return "'" + value.replace("'", "''") + "'"


def _mapped_activity_scan(
    con: duckdb.DuckDBPyConnection,
    scan: _Scan,
    type_map: ActivityTypeMap,
    counts: Mapping[str, int],
) -> _Scan:
    """The activity log ``scan`` with ``type_map`` applied in DuckDB, as
    :func:`~leadscore.schema.map_activity_types` applies it to a frame: a ``CASE`` over the
    log's types that the map names (``counts``: the types as written, a few dozen), keyed by
    the type as written, so the folding is the Python one of the whole reader; ignored types
    filtered out; every other column, and the detail of the types the map gives none, as
    written. ``lead_id`` passes through untouched, so that the slices' id filters still reach
    the files (whole row groups of a sorted Parquet file are skipped)."""
    rules = {label: type_map.rule(label) for label in counts}
    ruled = {label: rule for label, rule in rules.items() if rule is not None}
    if not ruled:
        return scan
    written = "CAST(activity_type AS VARCHAR)"
    mapped = {label: rule for label, rule in ruled.items() if rule[0] != IGNORED_ACTIVITY}
    ignored = [label for label, rule in ruled.items() if rule[0] == IGNORED_ACTIVITY]
    replaced: list[str] = []
    added = ""
    if mapped:
        cases = " ".join(
            f"WHEN {_sql_text(label)} THEN {_sql_text(rule[0])}" for label, rule in mapped.items()
        )
        replaced.append(f"CASE {written} {cases} ELSE {written} END AS activity_type")
    details = {label: rule[1] for label, rule in mapped.items() if rule[1] is not None}
    if details:
        cases = " ".join(
            f"WHEN {_sql_text(label)} THEN {_sql_text(detail)}" for label, detail in details.items()
        )
        with scan.errors():
            described = con.execute(f"DESCRIBE SELECT * FROM {scan.sql}").fetchall()
        kinds = {str(row[0]): str(row[1]).upper() for row in described}
        if "detail" in kinds:
            own = "detail" if kinds["detail"] == "VARCHAR" else "CAST(detail AS VARCHAR)"
            replaced.append(f"CASE {written} {cases} ELSE {own} END AS detail")
        else:
            added = f", CASE {written} {cases} END AS detail"
    columns = "*" + (f" REPLACE ({', '.join(replaced)})" if replaced else "") + added
    kept = (
        f" WHERE coalesce({written} NOT IN ({', '.join(map(_sql_text, ignored))}), true)"
        if ignored
        else ""
    )
    return dataclasses.replace(scan, sql=f"(SELECT {columns} FROM {scan.sql}{kept})")


def _apply_activity_map(
    con: duckdb.DuckDBPyConnection, scan: _Scan, type_map: ActivityTypeMap
) -> tuple[_Scan, TypeCounts, ActivityMapping | None]:
    """The log ``scan`` mapped by ``type_map``, its rows per type before mapping and what the
    map did (a log whose every row is ignored is an error, as in the whole reader)."""
    type_counts = _activity_type_counts(con, scan)
    mapping = type_map.mapping(*type_counts)
    if mapping is None:
        return scan, type_counts, None
    return _mapped_activity_scan(con, scan, type_map, type_counts[0]), type_counts, mapping


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


def _leads_open_at(
    con: duckdb.DuckDBPyConnection,
    leads: pd.DataFrame,
    outcomes: _Scan | None,
    keys: Mapping[str, str],
    formats: Mapping[str, str | None],
    moment: pd.Timestamp,
    on_closed: Callable[[pd.Series], None] | None,
) -> pd.DataFrame:
    """The ``leads`` open at ``moment``: created by it, without an outcome closed by it (the
    outcome's ``closed_at`` read as the slices read it); the closed ones' ids go to
    ``on_closed``, in the leads table's own spelling (``known_ids``)."""
    keep = (leads["created_at"] <= moment).to_numpy()
    if outcomes is not None:
        closed_at = _moment_sql("closed_at", formats.get("outcomes"))
        with outcomes.errors():
            closed = con.execute(
                "SELECT lead_id FROM known_ids WHERE lead_id IN "
                f"(SELECT {keys['outcomes']} FROM {outcomes.sql} WHERE {closed_at} <= ?)",
                [moment.to_pydatetime()],
            ).df()["lead_id"]
        is_closed = is_known_id(leads["lead_id"], closed).to_numpy()
        if on_closed is not None and is_closed.any():
            on_closed(leads.loc[is_closed, "lead_id"].astype(str).reset_index(drop=True))
        keep = keep & ~is_closed
    return leads[keep].reset_index(drop=True)


def _check_outcome_rows(con: duckdb.DuckDBPyConnection, scan: _Scan, key: str) -> None:
    """One outcome per lead, each won or lost, over the whole table, with the messages of
    :func:`~leadscore.schema.validate_outcomes`. The slices read only the outcomes of the
    leads they hold, and a scorer reads none of a closed lead's: without this, a lead both won
    and lost, or an outcome written ``Closed Won``, passed ``score`` while ``validate`` and
    ``train`` refused it. Two aggregates over a table of one row per closed lead."""
    with scan.errors():
        repeated = con.execute(
            f"SELECT k, n FROM (SELECT {key} AS k, count(*) AS n FROM {scan.sql} "
            "WHERE k IS NOT NULL GROUP BY k HAVING count(*) > 1) ORDER BY k"
        ).fetchall()
    if repeated:
        ids = pd.Series([k for k, n in repeated for _ in range(n)], dtype=object)
        found = duplicate_ids_text(ids, "lead_id {id}")
        raise DataError(f"outcomes: {found}", "Keep one row per lead in outcomes.")
    text = "CAST(outcome AS VARCHAR)"
    with scan.errors():
        bad = con.execute(
            f"SELECT {text} AS v, count(*) FROM {scan.sql} "
            f"WHERE {text} IS NULL OR lower(trim({text})) NOT IN ('won', 'lost') GROUP BY v"
        ).fetchall()
    if bad:
        values = [None if v is None or not str(v).strip() else v for v, _ in bad]
        counts = [n for _, n in bad]
        raise outcome_values_error(pd.Series(values, dtype=object).repeat(counts))


def _check_closed_after_created(
    con: duckdb.DuckDBPyConnection, scan: _Scan, key: str, formats: Mapping[str, str | None]
) -> None:
    """Outcomes closed before the day their lead was created, over the whole file, as
    :func:`~leadscore.schema.validate_closed_loop` refuses them (same count, same lead)."""
    moment = _moment_sql("closed_at", formats.get("outcomes"))
    with scan.errors():
        count, lead, created, closed = con.execute(
            "SELECT count(*), min(o.k), arg_min(l.created_at, o.k), arg_min(o.m, o.k) "
            f"FROM (SELECT {key} AS k, {moment} AS m FROM {scan.sql}) o "
            "JOIN known_ids l ON o.k = l.lead_id WHERE o.m < date_trunc('day', l.created_at)"
        ).fetchall()[0]
    if count:
        raise closed_before_created_error(count, lead, pd.Timestamp(created), pd.Timestamp(closed))


def _latest_timestamp(
    con: duckdb.DuckDBPyConnection,
    leads: pd.DataFrame,
    others: Mapping[str, _Scan | None],
    formats: Mapping[str, str | None],
    keys: Mapping[str, str],
) -> pd.Timestamp:
    """The default ``observed_until`` of the folder, checked as
    :func:`~leadscore.timestamps.extract_moment` checks it, from two aggregates per table (row
    counts, then the latest rows) instead of loading the activity log. Text timestamps in a
    format other than ISO 8601 (``25/02/2024``) are read in the format the slices are parsed
    with, not skipped."""
    now = utc_now()
    cutoff = future_cutoff(now).to_pydatetime()
    moments: dict[str, tuple[_Scan, str]] = {}
    counts: dict[str, tuple[int, int]] = {}
    for name, column in _TIMESTAMP_COLUMNS.items():
        scan = others[name]
        if scan is None:
            continue
        moments[name] = (
            scan,
            f"SELECT {_moment_sql(column, formats.get(name))} AS m, "
            f"{keys[name]} AS k FROM {scan.sql}",
        )
        with scan.errors():
            rows, future = con.execute(
                f"SELECT count(*), count(*) FILTER (WHERE m > ?) FROM ({moments[name][1]})",
                [cutoff],
            ).fetchall()[0]
        counts[name] = (int(rows), int(future))
    keep = tail_rows(len(leads) + sum(rows for rows, _ in counts.values())) + 1
    summaries = [timestamp_summary(leads, "leads", "created_at", now=now, keep=keep)]
    for name, (scan, select) in moments.items():
        with scan.errors():
            latest = con.execute(
                f"SELECT m AS moment, k AS lead_id FROM ({select}) WHERE m IS NOT NULL "
                f"ORDER BY m DESC LIMIT {keep}"
            ).df()
        rows, future = counts[name]
        summaries.append(TimestampSummary(name, _TIMESTAMP_COLUMNS[name], rows, future, latest))
    return extract_moment(summaries, now=now)


def _check_declared_moment(
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    declared: str,
    leads: pd.DataFrame,
    others: Mapping[str, _Scan | None],
    formats: Mapping[str, str | None],
    keys: Mapping[str, str],
) -> None:
    """Hold the moment ``folder``'s manifest declares against the whole folder, as
    :func:`~leadscore.timestamps.check_manifest_moment` holds it against loaded data (same
    rule, same message), before the first slice is read.

    The rows after it, and apart from them those after the current time (typos whichever
    moment is declared, judged alike), are counted by one aggregate per table, which DuckDB
    streams through, so the log is never loaded and the check needs no slice: an error comes
    before anything is yielded, not after slices were scored. Checking slice by slice instead
    would name a wrong manifest only at the end, and warn where the whole folder says "error"
    in a first slice that happened to hold few late rows. Timestamps are read as the slices
    parse them (``formats``), and ignored activity types are left out as the slices leave
    them out.
    """
    until = naive_utc(parse_observed_until(declared))
    now = utc_now()
    cutoff = future_cutoff(now)
    late = [LateRows.of(leads, "leads", "created_at", until, cutoff)]
    rows = len(leads)
    bounds = [(until + EXTRACT_SLACK).to_pydatetime(), cutoff.to_pydatetime()]
    for name, column in _TIMESTAMP_COLUMNS.items():
        scan = others[name]
        if scan is None:
            continue
        moments = f"SELECT {_moment_sql(column, formats.get(name))} AS m, {keys[name]} AS k"
        with scan.errors():
            total, count, latest, lead, future, newest, newest_lead = con.execute(
                "SELECT count(*), count(*) FILTER (WHERE is_late), max(m) FILTER (WHERE is_late), "
                "arg_max(k, m) FILTER (WHERE is_late), count(*) FILTER (WHERE is_future), "
                "max(m) FILTER (WHERE is_future), arg_max(k, m) FILTER (WHERE is_future) "
                "FROM (SELECT m, k, m > ? AND m <= ? AS is_late, m > ? AS is_future "
                f"FROM ({moments} FROM {scan.sql}))",
                [*bounds, bounds[1]],
            ).fetchall()[0]
        rows += int(total)
        if count or future:
            late.append(
                LateRows(
                    name,
                    column,
                    int(count),
                    pd.Timestamp(latest) if count else None,
                    str(lead) if count else None,
                    int(future),
                    pd.Timestamp(newest) if future else None,
                    str(newest_lead) if future else None,
                )
            )
    hold_extract_moment(until, manifest_source(folder), late, rows, now=now)


def _duckdb_scan(file: Path) -> str:
    quoted = str(file).replace("'", "''")
    if file.suffix.lower() == ".parquet":
        return f"read_parquet('{quoted}')"
    return f"read_csv('{quoted}', header=true, all_varchar=true)"


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


def check_output_path(path: Path | None, option: str, *, folder: bool = False) -> None:
    """Before long work: ``path``, given as ``option``, can be written (a file, or a folder
    with ``folder``): not the other kind of thing already, and no file where one of its
    parent folders goes. ``train``'s outputs and every report's ``--out`` are checked so."""
    if path is None:
        return
    wanted = "folder" if folder else "file"
    if path.exists() and path.is_dir() != folder:
        raise DataError(
            f"{option} {path} is a {'file' if folder else 'folder'}", f"Give {option} a {wanted}."
        )
    blocking = file_in_the_way(path)
    if blocking is not None:
        raise DataError(
            f"{option} {path} cannot be created: {blocking} is a file, not a folder",
            f"Give {option} a {wanted} in a folder.",
        )


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
        raise DataError(f"cannot create a file in {folder}: {error_reason(err)}", fix) from err
    os.close(fd)
    Path(probe).unlink(missing_ok=True)


def write_text_atomically(target: Path, text: str) -> Path:
    """Write ``text`` to ``target`` in UTF-8 as :func:`write_atomically` writes a file."""

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    return write_atomically(target, write)


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
            f"cannot write {target}: {error_reason(err)}",
            "Write into a folder that exists or can be created, and that you may write to.",
        ) from err
    try:
        write(tmp)
        _keep_mode_of(target, tmp)
        os.replace(tmp, target)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise DataError(
            f"cannot write {target}: {error_reason(err)}",
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
