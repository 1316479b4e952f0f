"""Reading and writing tables at the edges of the flow.

Sources are named by a string: a path to a ``.csv``, ``.parquet`` or ``.duckdb`` file (a
DuckDB file needs a table name), or an SQLAlchemy URL (``postgresql://...``, ``sqlite:///...``)
with a table name or a query. Everything inside the package works on DataFrames; only this
module touches files and databases.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from leadscore.errors import DataError
from leadscore.schema import ClosedLoopData, to_utc_naive, validate_closed_loop

if TYPE_CHECKING:
    import duckdb

logger = logging.getLogger(__name__)

TABLE_SUFFIXES = (".parquet", ".csv")
DUCKDB_SUFFIXES = (".duckdb", ".db", ".ddb")
EVENT_TABLES = ("leads", "activities", "outcomes")


def is_sql_url(source: str | os.PathLike[str]) -> bool:
    """Whether ``source`` is an SQLAlchemy URL rather than a file path."""
    text = str(source)
    return "://" in text and not text.startswith("file://")


def read_table(
    source: str | os.PathLike[str],
    table: str | None = None,
    *,
    query: str | None = None,
    na_values: list[str] | None = None,
) -> pd.DataFrame:
    """Read one table from a file or a database.

    Parameters
    ----------
    source : path of a CSV, Parquet or DuckDB file, or an SQLAlchemy URL.
    table : table name, for DuckDB files and databases.
    query : SQL to run instead of reading a whole table (databases and DuckDB files).
    na_values : extra tokens that mean "missing" in CSV files.
    """
    if is_sql_url(source):
        return _read_sql(str(source), table, query)
    path = Path(source)
    if not path.exists():
        raise DataError(f"{path} does not exist", "Check the path, or create the file first.")
    if path.is_dir():
        raise DataError(
            f"{path} is a folder, not a table file", "Name a .csv, .parquet or .duckdb file."
        )
    suffix = path.suffix.lower()
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty", "Give a file with a header and at least one row.")
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, na_values=na_values, low_memory=False)
        elif suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix in DUCKDB_SUFFIXES:
            frame = _read_duckdb(path, table, query)
        else:
            raise DataError(
                f"{path}: unknown file type {suffix!r}",
                "Use a .csv, .parquet or .duckdb file, or an SQLAlchemy URL.",
            )
    except DataError:
        raise
    except (pd.errors.EmptyDataError, pd.errors.ParserError, OSError, ValueError) as err:
        raise DataError(
            f"{path} cannot be read: {str(err).splitlines()[0]}",
            "Check that the file is a valid " + suffix.lstrip(".").upper() + " file.",
        ) from err
    return _drop_unnamed(frame)


def _drop_unnamed(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop empty ``Unnamed: N`` columns that a trailing comma in a CSV header creates."""
    unnamed = [c for c in frame.columns if str(c).startswith("Unnamed: ") and frame[c].isna().all()]
    return frame.drop(columns=unnamed) if unnamed else frame


def _read_duckdb(path: Path, table: str | None, query: str | None) -> pd.DataFrame:
    import duckdb

    if table is None and query is None:
        raise DataError(
            f"{path} is a DuckDB file but no table was named",
            "Name the table to read (table: in the spec, or --table).",
        )
    with duckdb.connect(str(path), read_only=True) as con:
        try:
            sql = query or f'SELECT * FROM "{table}"'
            return con.execute(sql).df()
        except duckdb.CatalogException as err:
            tables = [r[0] for r in con.execute("SHOW TABLES").fetchall()]
            raise DataError(
                f"{path} has no table {table!r} (tables: {', '.join(tables) or 'none'})",
                "Name one of its tables.",
            ) from err


def _read_sql(url: str, table: str | None, query: str | None) -> pd.DataFrame:
    import sqlalchemy as sa

    if table is None and query is None:
        raise DataError(
            f"{url.split('@')[-1]}: no table or query named",
            "Name the table to read, or give a query.",
        )
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ModuleNotFoundError) as err:
        raise DataError(
            f"cannot open database URL: {err}",
            "Use an SQLAlchemy URL such as postgresql+psycopg://user@host/db.",
        ) from err
    try:
        with engine.connect() as con:
            if query is None:
                if not sa.inspect(con).has_table(table):
                    raise DataError(f"database has no table {table!r}", "Name an existing table.")
                return pd.read_sql_table(table, con)
            return pd.read_sql_query(sa.text(query), con)
    except sa.exc.OperationalError as err:
        raise DataError(
            f"cannot connect to the database: {str(err.orig).splitlines()[0]}",
            "Check the URL, the server and the credentials.",
        ) from err
    finally:
        engine.dispose()


def iter_table_chunks(
    source: str | os.PathLike[str],
    table: str | None = None,
    *,
    query: str | None = None,
    chunk_rows: int = 250_000,
) -> Iterator[pd.DataFrame]:
    """Read one table a slice of rows at a time, so memory is bounded by the slice.

    Parquet is read by record batches, CSV by pandas chunks, DuckDB files and databases by
    fetching the result in batches.
    """
    if chunk_rows < 1:
        raise DataError(
            f"chunk size must be at least 1, got {chunk_rows}",
            "Give a positive number of rows per chunk.",
        )
    if is_sql_url(source):
        import sqlalchemy as sa

        engine = sa.create_engine(str(source))
        try:
            with engine.connect() as con:
                sql = sa.text(query) if query is not None else sa.text(f'SELECT * FROM "{table}"')
                yield from pd.read_sql_query(sql, con, chunksize=chunk_rows)
        finally:
            engine.dispose()
        return
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix == ".parquet" and path.is_file():
        import pyarrow.parquet as pq

        # batches are filled across row groups, so every chunk but the last has chunk_rows
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
            yield _drop_unnamed(batch.to_pandas())
        return
    if suffix == ".csv" and path.is_file() and path.stat().st_size > 0:
        yield from (_drop_unnamed(c) for c in pd.read_csv(path, chunksize=chunk_rows))
        return
    if suffix in DUCKDB_SUFFIXES and path.is_file():
        import duckdb

        with duckdb.connect(str(path), read_only=True) as con:
            reader = con.sql(query or f'SELECT * FROM "{table}"').to_arrow_reader(chunk_rows)
            for batch in reader:
                yield batch.to_pandas()
        return
    yield read_table(source, table, query=query)  # raises the right one-line error


def find_event_table(folder: Path, name: str) -> Path | None:
    """The file holding event table ``name`` in ``folder`` (Parquet preferred over CSV)."""
    for suffix in TABLE_SUFFIXES:
        candidate = folder / f"{name}{suffix}"
        if candidate.exists():
            return candidate
    return None


def load_closed_loop(
    source: str | os.PathLike[str],
    *,
    observed_until: pd.Timestamp | str | None = None,
) -> ClosedLoopData:
    """Load and validate event-form data.

    ``source`` is a folder with ``leads``, ``activities`` and ``outcomes`` as ``.parquet`` or
    ``.csv`` files (``activities`` and ``outcomes`` may be absent), a DuckDB file holding tables
    of those names, or an SQLAlchemy URL of a database holding them.

    ``observed_until``, the moment of the extract, is taken from the argument, else from an
    ``observed_until`` entry of a ``manifest.json`` in the folder (``leadscore synth`` writes
    one), else the latest timestamp in the data.
    """
    frames: dict[str, pd.DataFrame | None] = {}
    text = str(source)
    path = Path(source)
    if is_sql_url(text) or path.suffix.lower() in DUCKDB_SUFFIXES:
        for name in EVENT_TABLES:
            try:
                frames[name] = read_table(text, name)
            except DataError:
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
        for name in EVENT_TABLES:
            found = find_event_table(path, name)
            if found is None and name == "leads":
                raise DataError(
                    f"{path} has no leads.parquet or leads.csv",
                    "Write the leads table there; see the README's data contract.",
                )
            frames[name] = None if found is None else read_table(found)
    logger.info(
        "loaded %s: %s",
        text,
        ", ".join(f"{k}={0 if v is None else len(v):,}" for k, v in frames.items()),
    )
    return validate_closed_loop(
        frames["leads"], frames["activities"], frames["outcomes"], observed_until=observed_until
    )


def iter_closed_loop_chunks(
    folder: str | os.PathLike[str],
    *,
    chunk_leads: int = 100_000,
    observed_until: pd.Timestamp | str | None = None,
) -> Iterator[ClosedLoopData]:
    """Event-form data of a folder, a slice of leads at a time, each slice validated.

    Memory is bounded by the slice, not the folder: leads are sorted by id and cut into
    slices of ``chunk_leads``; each slice's activities and outcomes are read with DuckDB by the
    slice's id range, which skips whole row groups of Parquet files sorted by lead id (as
    ``leadscore synth`` writes them). Every slice shares the folder's ``observed_until``.
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
    leads = read_table(leads_file)
    if "lead_id" in leads.columns:
        leads = leads.assign(lead_id=leads["lead_id"].astype("string").astype(str))
        leads = leads.sort_values("lead_id", kind="stable").reset_index(drop=True)
    until = observed_until if observed_until is not None else _manifest_observed_until(path)
    others = {name: find_event_table(path, name) for name in ("activities", "outcomes")}
    with duckdb.connect() as con:
        if until is None:
            until = _latest_timestamp(con, leads, others)
        for start in range(0, len(leads), chunk_leads):
            part = leads.iloc[start : start + chunk_leads]
            low, high = part["lead_id"].iloc[0], part["lead_id"].iloc[-1]
            frames: dict[str, pd.DataFrame | None] = {}
            for name, file in others.items():
                if file is None:
                    frames[name] = None
                    continue
                scan = _duckdb_scan(file)
                frames[name] = con.execute(
                    f"SELECT * FROM {scan} WHERE CAST(lead_id AS VARCHAR) BETWEEN ? AND ?",
                    [low, high],
                ).df()
            yield validate_closed_loop(
                part, frames["activities"], frames["outcomes"], observed_until=until
            )


def _latest_timestamp(
    con: duckdb.DuckDBPyConnection, leads: pd.DataFrame, others: Mapping[str, Path | None]
) -> pd.Timestamp:
    """The latest moment in the folder (the default ``observed_until``), from one aggregate
    per file instead of loading the activity log."""
    con.execute("SET TimeZone = 'UTC'")
    latest = [to_utc_naive(leads["created_at"], "leads", "created_at").max()]
    for name, column in (("activities", "occurred_at"), ("outcomes", "closed_at")):
        file = others[name]
        if file is not None:
            value = con.execute(
                f"SELECT CAST(max(TRY_CAST({column} AS TIMESTAMPTZ)) AS TIMESTAMP) "
                f"FROM {_duckdb_scan(file)}"
            ).fetchone()[0]
            if value is not None:
                latest.append(pd.Timestamp(value))
    return max(latest)


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
    return None if value is None else str(value)


def write_table(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``frame`` to a Parquet or CSV file atomically (a temp file, then a rename)."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise DataError(f"{target}: unknown output type {suffix!r}", "Write to .parquet or .csv.")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        if suffix == ".parquet":
            frame.to_parquet(tmp_name, index=False)
        else:
            frame.to_csv(tmp_name, index=False)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def write_tables(
    frames: Mapping[str, pd.DataFrame], folder: str | os.PathLike[str], fmt: str = "parquet"
) -> dict[str, Path]:
    """Write several named tables into ``folder`` as ``NAME.parquet`` or ``NAME.csv``."""
    out = Path(folder)
    return {name: write_table(frame, out / f"{name}.{fmt}") for name, frame in frames.items()}
