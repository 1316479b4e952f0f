"""SQL databases by SQLAlchemy URL (PostgreSQL and SQLite are tested): tables, commit, reads.

Portable SQL (window functions, correlated updates), so that every database runs the same
statements; PostgreSQL with psycopg bulk-loads by COPY. SQLAlchemy is imported only when an
SQL target is used.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from leadscore.errors import DataError
from leadscore.io import driver_error, error_reason, sqlite_file
from leadscore.sinks.schema import (
    _KEY_TEXT,
    CLOSED_TABLE,
    COLUMNS,
    HISTORY_TABLE,
    LATEST_TABLE,
    RUN_KEY_COLUMNS,
    SCORED_LEADS_SCHEMA,
    Column,
    ColumnKind,
    _conform_read,
    _empty_frame,
)
from leadscore.sinks.target import (
    RunKey,
    SinkTarget,
    StoredType,
    _check_columns,
    _check_types,
    _missing_target,
    _os_error,
    make_folders,
    remove_empty_folders,
)

if TYPE_CHECKING:
    import sqlalchemy as sa

logger = logging.getLogger(__name__)


def _sql_tables(metadata: sa.MetaData, temp_suffix: str) -> tuple[sa.Table, sa.Table, sa.Table]:
    """The two scored-leads tables and a temporary table of affected lead ids."""
    import sqlalchemy as sa

    def sql_type(col: Column) -> sa.types.TypeEngine[Any]:
        if col.kind == "text":
            return sa.String(255) if col.name in _KEY_TEXT else sa.Text()
        types: dict[str, sa.types.TypeEngine[Any]] = {
            "timestamp": sa.DateTime(timezone=False),
            "double": sa.Double(),
            "integer": sa.Integer(),
            "boolean": sa.Boolean(),
        }
        return types[col.kind]

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
    """A connection to the target (``write``: in a transaction, committed on leaving) whose
    database errors, whatever the statement, come out as one line (:func:`_database_error`):
    SQLAlchemy's wrappers, the driver's own errors (the COPY of the staged rows runs on the
    driver's cursor) and pandas' wrapper around a failed read alike."""
    import sqlalchemy as sa

    engine = _sql_engine(target)
    dbapi = getattr(engine.dialect, "loaded_dbapi", None)
    driver_error = getattr(dbapi, "Error", None)
    driver_errors = (driver_error,) if isinstance(driver_error, type) else ()
    try:
        with engine.begin() if write else engine.connect() as con:
            yield con
    except (sa.exc.DBAPIError, pd.errors.DatabaseError, *driver_errors) as err:
        raise _database_error(target, err, write=write) from err
    finally:
        engine.dispose()


#: PostgreSQL's SQLSTATEs, by the fix they need: a right the user lacks, no schema to create
#: the tables in, a column of another type, a table or column not there.
_PG_RIGHTS = frozenset({"42501"})
_PG_NO_SCHEMA = frozenset({"3F000"})
_PG_TYPES = frozenset({"42804", "42883", "42846", "22P02", "22003", "22007", "22008"})
_PG_MISSING = frozenset({"42P01", "42703"})
#: SQLite's words (it has no SQLSTATE) for the same.
_SQLITE_MISSING = ("no such table", "no such column", "has no column named")
#: The fix of a table that is not what a run writes: only the scored-leads schema fixes it.
_SCHEMA_FIX = (
    "Check its tables against the scored-leads schema (see the README): give a column back "
    "its type or drop a table that differs, or use another --target."
)


def _database_error(target: SinkTarget, err: BaseException, *, write: bool) -> DataError:
    """A database error of the target as one line with the fix its cause needs.

    Only a failed connection was mapped, and a user without grants, a misspelt schema in the
    search path or a column of another type came out as a traceback after the scoring; a
    missing column on SQLite was told to check the URL. What could be checked before the
    scoring is (:func:`_check_sql_target`); this names what slipped through (another writer
    changing the tables meanwhile, a right the check cannot see, a trigger).
    """
    driver = driver_error(err)
    state = str(getattr(driver, "sqlstate", None) or getattr(driver, "pgcode", None) or "")
    text = str(driver).lower()
    reason = error_reason(err)
    verb = "write the scored leads to" if write else "read the scored leads of"
    integrity = state.startswith("23") or type(driver).__name__ == "IntegrityError"
    if write and integrity and _is_unique_violation(driver):
        return _overlapping_runs(target, err)
    if integrity:
        return DataError(
            f"cannot {verb} {target}: {reason}",
            "Drop the constraint or trigger added to its tables (keep checks of your own on a "
            "table of your own), or use another --target.",
        )
    no_room = _no_room_fix(target, driver)
    if no_room is not None:
        return DataError(f"cannot use the database {target}: {reason}", no_room)
    if state in _PG_RIGHTS or "readonly database" in text:
        fix = (
            "Make the database file and its folder writable for this user, or use another --target."
            if "readonly database" in text
            else f"Grant the database user SELECT, INSERT, UPDATE and DELETE on {LATEST_TABLE}, "
            f"{HISTORY_TABLE} and {CLOSED_TABLE} (and CREATE on the schema, for a first run), "
            "or use a --target of a user that has them."
        )
        return DataError(f"cannot {verb} {target}: {reason}", fix)
    if state in _PG_NO_SCHEMA:
        return DataError(
            f"cannot {verb} {target}: {reason}",
            "Name an existing schema in the URL: ?options=-csearch_path%3Dmyschema (%3D is =), "
            "or create it.",
        )
    if state in _PG_TYPES or state in _PG_MISSING or "datatype mismatch" in text:
        return DataError(f"cannot {verb} {target}: {reason}", _SCHEMA_FIX)
    if any(words in text for words in _SQLITE_MISSING):
        return DataError(f"cannot {verb} {target}: {reason}", _SCHEMA_FIX)
    return DataError(
        f"cannot use the database {target}: {reason}",
        "Check the URL, the server and the credentials.",
    )


def _stored_types(columns: Iterable[dict[str, Any]], dialect: Any) -> dict[str, StoredType]:
    """The :data:`StoredType` of reflected columns (``Inspector.get_columns``); a column of no
    declared type (SQLite's) is left out: SQLite stores there whatever it is given."""
    import sqlalchemy as sa

    found: dict[str, StoredType] = {}
    for column in columns:
        kind = column["type"]
        if isinstance(kind, sa.types.NullType):
            continue
        try:
            shown = kind.compile(dialect=dialect)
        except Exception:  # a type the dialect cannot spell: its class names it
            shown = type(kind).__name__
        found[str(column["name"])] = (_sql_kind(kind), shown)
    return found


def _sql_kind(kind: Any) -> ColumnKind | None:
    """The schema kind an SQL column type takes and reads back, or None (a ``numeric`` or an
    ``integer`` column would round the probabilities it is given)."""
    import sqlalchemy as sa

    kinds: tuple[tuple[ColumnKind, type[Any]], ...] = (
        ("boolean", sa.Boolean),
        ("integer", sa.Integer),
        ("double", sa.Float),
        ("timestamp", sa.DateTime),
        ("text", sa.String),
    )
    return next((name for name, base in kinds if isinstance(kind, base)), None)


def _check_sql_table(con: sa.Connection, target: SinkTarget, table: str, inspector: Any) -> None:
    """An existing ``table`` of the target has the schema's columns with types that take
    what a run writes (:func:`~leadscore.sinks.target._check_types`)."""
    columns = inspector.get_columns(table)
    _check_columns(target, table, [c["name"] for c in columns])
    _check_types(target, table, _stored_types(columns, con.dialect))


#: What a commit does to each table, as PostgreSQL privileges.
_PG_PRIVILEGES: dict[str, tuple[str, ...]] = {
    LATEST_TABLE: ("SELECT", "INSERT", "DELETE"),
    HISTORY_TABLE: ("SELECT", "INSERT", "UPDATE", "DELETE"),
    CLOSED_TABLE: ("SELECT", "INSERT", "DELETE"),
}


def _check_sql_target(target: SinkTarget) -> None:
    """What the commit of a run into an SQL target needs and can be checked cheaply, checked
    before the scoring: existing tables with the schema's columns and types (the closed-lead
    records too) and, on PostgreSQL, a schema to keep the tables in and the user's rights.
    Each failed the commit, after minutes of scoring, with the database's traceback."""
    import sqlalchemy as sa

    with _sql_connection(target, write=False) as con:
        schema = _postgres_schema(con, target)
        inspector = sa.inspect(con)
        present = [t for t in (LATEST_TABLE, HISTORY_TABLE, CLOSED_TABLE) if inspector.has_table(t)]
        for table in present:
            _check_sql_table(con, target, table, inspector)
        if schema is not None:
            _check_postgres_rights(con, target, schema, present)


def _postgres_schema(con: sa.Connection, target: SinkTarget) -> str | None:
    """The schema a PostgreSQL target keeps its tables in (the search path's first that
    exists and that the user may use), or None for another database.

    A URL whose ``search_path`` names no such schema (a typo) has none: creating the tables
    failed at the commit with ``no schema has been selected to create in``."""
    import sqlalchemy as sa

    if con.dialect.name != "postgresql":
        return None
    schema = con.execute(sa.text("SELECT current_schema()")).scalar()
    if schema is None:
        path = con.execute(sa.text("SHOW search_path")).scalar()
        raise DataError(
            f"{target}: no schema of the search path ({path}) exists and may be used by the "
            "database user, so there is none to keep the scored-leads tables in",
            "Name an existing schema in the URL: ?options=-csearch_path%3Dmyschema (%3D is =), "
            "or create it (or grant the user USAGE on it).",
        )
    return str(schema)


def _check_postgres_rights(
    con: sa.Connection, target: SinkTarget, schema: str, present: list[str]
) -> None:
    """The database user may do what the commit does (:data:`_PG_PRIVILEGES` on the tables
    there are, CREATE on the schema for those there are not, temporary tables), or one line
    with the GRANT statements that are missing, names quoted as the owner must paste them
    (``GRANT CREATE ON SCHEMA "Sales Ops" TO "Low User"``)."""
    import sqlalchemy as sa

    quote = con.dialect.identifier_preparer.quote

    def holds(sql: str, **params: str) -> bool:
        return bool(con.execute(sa.text(f"SELECT {sql}"), params).scalar())

    grants = []
    for table in present:
        lacking = [
            privilege
            for privilege in _PG_PRIVILEGES[table]
            if not holds(
                "has_table_privilege(format('%I.%I', CAST(:s AS text), CAST(:t AS text)), :p)",
                s=schema,
                t=table,
                p=privilege,
            )
        ]
        if lacking:
            grants.append(f"{', '.join(lacking)} ON {quote(table)}")
    creates = len(present) < len(_PG_PRIVILEGES)  # a table to create
    if creates and not holds("has_schema_privilege(:s, 'CREATE')", s=schema):
        grants.append(f"CREATE ON SCHEMA {quote(schema)}")
    if not holds("has_database_privilege(current_database(), 'TEMPORARY')"):
        database = con.execute(sa.text("SELECT current_database()")).scalar()
        grants.append(f"TEMPORARY ON DATABASE {quote(str(database))}")
    if grants:
        user = con.execute(sa.text("SELECT current_user")).scalar()
        grantee = quote(str(user))
        raise DataError(
            f"the database user {user} may not write the scored leads to {target}: it lacks "
            f"{'; '.join(grants)}",
            f"Have the owner run {'; '.join(f'GRANT {g} TO {grantee}' for g in grants)}, or use "
            "a --target of a user that has them.",
        )


def _no_room_fix(target: SinkTarget, err: BaseException | None) -> str | None:
    """The fix of a database that ran out of room while writing (SQLite's ``database or disk
    is full`` or ``disk I/O error``, PostgreSQL's ``disk_full``), or ``None`` for any other
    error: "check the URL and the credentials" sends a user with a full disk the wrong way."""
    sqlite = sqlite_file(target.location)
    name = str(getattr(err, "sqlite_errorname", ""))
    if sqlite is not None and (name == "SQLITE_FULL" or name.startswith("SQLITE_IOERR")):
        folder = sqlite.absolute().parent
        return (
            f"Free disk space in {folder} (or raise the quota or file size limit), or use a "
            "--target on another disk."
        )
    if getattr(err, "sqlstate", None) == _PG_DISK_FULL:
        return "Free disk space on the database server, then run again."
    return None


#: PostgreSQL's SQLSTATE of a full disk (``could not extend file``).
_PG_DISK_FULL = "53100"


def _copy_postgres(con: sa.Connection, table: str, staged: Path) -> None:
    """Bulk-load the staged rows with COPY (psycopg), inside the open transaction."""
    import pyarrow.csv as pacsv

    raw: Any = con.connection.driver_connection
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


def _newest_first(history: Any) -> list[Any]:
    """The order of a lead's rows, newest first: the latest row is the first (as-of, then
    scoring time, model name and version, as ``_LATEST_ORDER`` orders them in DuckDB)."""
    return [
        history.c.as_of.desc(),
        history.c.scored_at.desc(),
        history.c.model_name.desc(),
        history.c.model_version.desc(),
    ]


def _latest_select(history: sa.Table, where: Any) -> sa.Select[Any]:
    import sqlalchemy as sa

    rank = (
        sa.func.row_number()
        .over(partition_by=history.c.lead_id, order_by=_newest_first(history))
        .label("_rank")
    )
    ranked = sa.select(*history.c, rank).where(where).subquery()
    return sa.select(*(ranked.c[c] for c in COLUMNS)).where(ranked.c._rank == 1)


def _temporary_ids(prefix: str, *, unique: bool = False) -> sa.Table:
    """A temporary table of lead ids (``unique``: its primary key), named ``prefix`` and a
    random suffix so that two tables of one transaction never clash."""
    import sqlalchemy as sa

    return sa.Table(
        f"{prefix}_{uuid.uuid4().hex[:8]}",
        sa.MetaData(),
        sa.Column("lead_id", sa.String(255), primary_key=unique),
        prefixes=["TEMPORARY"],
    )


def _closed_table(metadata: sa.MetaData) -> sa.Table:
    """The closed-leads records of an SQL target (see the module docstring)."""
    import sqlalchemy as sa

    return sa.Table(
        CLOSED_TABLE,
        metadata,
        sa.Column("lead_id", sa.String(255), primary_key=True),
        sa.Column("closed_by", sa.DateTime(timezone=False), nullable=False),
    )


def _restage_run_sql(con: sa.Connection, history: sa.Table, run_rows: Any, as_of: Any) -> int:
    """Set previous_stage and stage_changed of the run's rows (``run_rows``) from the history
    as the commit sees it; return how many rows changed.

    The scorer read the previous stages before it scored; another run committed meanwhile
    (a run that waited for :func:`_wait_for_other_runs`, or one that finished while this one
    scored) makes them stale. Each row looks its lead's newest earlier row up through the
    history's (lead_id, as_of) index, and only rows that disagree are rewritten, so the usual
    run rewrites nothing.
    """
    import sqlalchemy as sa

    earlier = history.alias("earlier")
    before = (
        sa.select(earlier.c.stage)
        .where(earlier.c.lead_id == history.c.lead_id, earlier.c.as_of < as_of)
        .order_by(*_newest_first(earlier))
        .limit(1)
        .scalar_subquery()
    )
    moved = sa.and_(before.is_not(None), before != history.c.stage)
    result = con.execute(
        history.update()
        .where(run_rows, history.c.previous_stage.is_distinct_from(before))
        .values(
            previous_stage=before,
            stage_changed=sa.case((moved, sa.true()), else_=sa.false()),
        )
    )
    return int(result.rowcount)


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
        rank = sa.func.row_number().over(  # within one as-of, as_of first changes nothing
            partition_by=[history.c.lead_id, history.c.as_of], order_by=_newest_first(history)
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


def _rebuild_latest_sql(
    con: sa.Connection, target: SinkTarget, history: sa.Table, latest: sa.Table, closed: sa.Table
) -> None:
    """Fill the (new, empty) latest table from the history, inside the commit's transaction,
    as DuckDB's :func:`~leadscore.sinks.duckdb_sink._rebuild_latest_duckdb` does: a DBA who
    dropped ``scored_leads`` to reset it left the history, and the commit's statements read
    each lead's latest row from that table."""
    import sqlalchemy as sa

    logger.info(
        "%s holds %s but no %s: rebuilding it from the history", target, HISTORY_TABLE, LATEST_TABLE
    )
    con.execute(latest.insert().from_select(list(COLUMNS), _latest_select(history, sa.true())))
    con.execute(latest.delete().where(_closed_since(latest, closed)))


def _closed_since(latest: sa.Table, closed: sa.Table) -> Any:
    """The condition "a closed-lead record is newer than this latest row"."""
    import sqlalchemy as sa

    return (
        sa.select(closed.c.lead_id)
        .where(closed.c.lead_id == latest.c.lead_id, closed.c.closed_by > latest.c.as_of)
        .exists()
    )


def _apply_closed_sql(
    con: sa.Connection, latest: sa.Table, closed: sa.Table, staged_closed: Path | None, as_of: Any
) -> None:
    """:func:`_apply_closed_duckdb` in portable SQL: drop the latest rows a closed-lead record
    is newer than, then record the run's closed leads and drop their older rows."""
    import sqlalchemy as sa

    con.execute(latest.delete().where(_closed_since(latest, closed)))
    if staged_closed is None:
        return
    given = _temporary_ids("_leadscore_given")
    closing = _temporary_ids("_leadscore_closing", unique=True)
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
) -> tuple[int, int, int]:
    """Replace the run in the history and update the latest rows, in one transaction.

    Only the leads the run touches get their latest row rebuilt: the leads in the run, and
    those in an earlier write of the same run (a re-run that drops a lead falls back to the
    lead's earlier row). That keeps a run that scores a few new leads cheap on a large table.
    Those leads' rows at later as-ofs get their previous stages recomputed (a back-fill).
    Last, the closed leads are recorded and leave the latest table (:func:`_apply_closed_sql`).

    An SQLite file in a new folder gets its folders here; a commit that fails removes them
    again, as a failed run of a file target does (:func:`_remove_new_sqlite`).
    """
    del memory_limit  # the database manages its own memory
    sqlite = sqlite_file(target.location)
    if sqlite is None:
        return _commit_sql_transaction(target, staged, run, closed)
    existed = sqlite.exists()
    try:
        made = make_folders(sqlite.parent)
    except OSError as err:
        raise _os_error(sqlite, err) from err
    try:
        return _commit_sql_transaction(target, staged, run, closed)
    except BaseException:
        _remove_new_sqlite(sqlite, existed, made)
        raise


def _remove_new_sqlite(path: Path, existed: bool, made: list[Path]) -> None:
    """After a failed commit, remove what it left of an SQLite target it was creating: the
    database file where it did not exist before and is still empty (the transaction rolled
    back: nothing of it is anyone's), then the folders :func:`make_folders` made for it, where
    nothing else was put in them meanwhile.

    A commit that failed while writing (a full disk) leaves the file partly written beside
    its rollback journal: opening it rolls the journal back (to an empty file, for a new
    database) before its size is looked at, so that no database and no journal is left."""
    if not existed:
        with contextlib.suppress(OSError, sqlite3.Error):
            journal = path.with_name(f"{path.name}-journal")
            if journal.exists():
                with contextlib.closing(sqlite3.connect(path)) as con:
                    con.execute("SELECT count(*) FROM sqlite_master").fetchall()
            if path.stat().st_size == 0:
                path.unlink()
                journal.unlink(missing_ok=True)
    remove_empty_folders(made)


def _is_unique_violation(err: BaseException | None) -> bool:
    """Whether a driver's integrity error is a unique key broken (SQLSTATE 23505, SQLite's
    ``UNIQUE constraint failed``, MySQL's ``Duplicate entry``)."""
    if getattr(err, "sqlstate", None) == "23505" or getattr(err, "pgcode", None) == "23505":
        return True
    text = str(err).lower()
    return "unique" in text or "duplicate" in text


def _overlapping_runs(target: SinkTarget, err: Any) -> DataError:
    """A unique key broken while committing: the rows were checked to be unique in the run,
    so another writer committed the same keys meanwhile."""
    return DataError(
        f"another scoring run wrote to {target} at the same time: {error_reason(err)}",
        "Run again once it has finished; runs into one target must not overlap.",
    )


#: The first key of the advisory lock that serialises leadscore's commits into one schema
#: (the second is the schema's): ``int.from_bytes(b"lscr")``, so that no other program's
#: locks of the database are taken by mistake.
_PG_LOCK_KEY = 0x6C736372


def _wait_for_other_runs(con: sa.Connection, target: SinkTarget) -> None:
    """On PostgreSQL, take the transaction-level advisory lock of the target's schema (the
    search path's first), waiting, with a line in the log, while another run holds it.

    The lock is released by the commit or rollback. Without it two runs overlapping on a new
    schema both created the tables (``pg_type_typname_nsp_index``), and on existing tables
    both inserted a lead's latest row (``scored_leads_pkey``): the later one failed."""
    import sqlalchemy as sa

    if con.dialect.name != "postgresql":
        return
    keys = f"{_PG_LOCK_KEY}, hashtext(coalesce(current_schema(), ''))"
    if con.execute(sa.text(f"SELECT pg_try_advisory_xact_lock({keys})")).scalar_one():
        return
    logger.info("another scoring run is writing to %s: waiting for it to finish", target)
    con.execute(sa.text(f"SELECT pg_advisory_xact_lock({keys})"))


def _commit_sql_transaction(
    target: SinkTarget, staged: Path, run: RunKey, closed: Path | None
) -> tuple[int, int, int]:
    """:func:`_commit_sql`'s transaction.

    Runs into one target take turns: on PostgreSQL the transaction first takes a lock of its
    own for the target's schema (:func:`_wait_for_other_runs`), so that a second run started
    while one commits waits for it, then sees its tables and rows. Elsewhere, and against a
    writer that takes no such lock, the loser of an overlap fails on a unique key (both
    creating the tables of a new schema, or inserting the same lead's latest row): that is
    one line (:func:`_overlapping_runs`, from :func:`_database_error`), and its transaction
    is rolled back.
    """
    import sqlalchemy as sa

    history, latest, affected = _sql_tables(sa.MetaData(), uuid.uuid4().hex[:8])
    records = _closed_table(history.metadata)
    with _sql_connection(target, write=True) as con:
        _wait_for_other_runs(con, target)
        inspector = sa.inspect(con)
        rebuild = inspector.has_table(history.name) and not inspector.has_table(latest.name)
        history.metadata.create_all(con)
        if rebuild:
            _rebuild_latest_sql(con, target, history, latest, records)
        affected.create(con)
        key = sa.and_(*(history.c[k] == v for k, v in run.params().items()))
        con.execute(
            affected.insert().from_select(["lead_id"], sa.select(history.c.lead_id).where(key))
        )
        replaced = con.execute(history.delete().where(key)).rowcount
        _insert_rows(con, history, staged)
        as_of = run.as_of.to_pydatetime()
        restaged = _restage_run_sql(con, history, key, as_of)
        con.execute(
            affected.insert().from_select(["lead_id"], sa.select(history.c.lead_id).where(key))
        )
        if con.dialect.name == "postgresql":
            con.exec_driver_sql(f'ANALYZE "{affected.name}"')
        _restage_later_sql(con, history, latest, affected, as_of, records)
        _update_latest_sql(con, history, latest, affected, records, key, as_of)
        affected.drop(con)
        _apply_closed_sql(con, latest, records, closed, as_of)
        count = con.execute(sa.select(sa.func.count()).select_from(latest)).scalar_one()
    return int(replaced), int(count), restaged


def _update_latest_sql(
    con: sa.Connection,
    history: sa.Table,
    latest: sa.Table,
    affected: sa.Table,
    closed: sa.Table,
    run_rows: Any,
    as_of: Any,
) -> None:
    """Give the ``affected`` leads their newest history row as their latest row.

    A lead of the run whose latest row is older than the run, or that has none and no
    closed record (a new lead), takes its new row: no history is read for it, so a daily
    run's cost follows the run, not the history. The others (re-runs, back-fills, leads
    closed before) are rebuilt from their history, as few as they are.
    """
    import sqlalchemy as sa

    fresh = _temporary_ids("_leadscore_fresh", unique=True)
    fresh.create(con)
    older = sa.exists().where(latest.c.lead_id == history.c.lead_id, latest.c.as_of < as_of)
    unseen = sa.and_(
        ~sa.exists().where(latest.c.lead_id == history.c.lead_id),
        ~sa.exists().where(closed.c.lead_id == history.c.lead_id),
    )
    con.execute(
        fresh.insert().from_select(
            ["lead_id"], sa.select(history.c.lead_id).where(run_rows, sa.or_(older, unseen))
        )
    )
    if con.dialect.name == "postgresql":
        con.exec_driver_sql(f'ANALYZE "{fresh.name}"')
    con.execute(latest.delete().where(latest.c.lead_id.in_(sa.select(affected.c.lead_id))))
    con.execute(
        latest.insert().from_select(
            list(COLUMNS),
            sa.select(*(history.c[c] for c in COLUMNS)).where(
                run_rows, history.c.lead_id.in_(sa.select(fresh.c.lead_id))
            ),
        )
    )
    rebuilt = sa.and_(
        history.c.lead_id.in_(sa.select(affected.c.lead_id)),
        ~sa.exists().where(fresh.c.lead_id == history.c.lead_id),
    )
    con.execute(latest.insert().from_select(list(COLUMNS), _latest_select(history, rebuilt)))
    fresh.drop(con)


def _with_ids_sql(con: sa.Connection, lead_ids: Iterable[str]) -> sa.Table:
    """A temporary table holding ``lead_ids``, for joins that scale past an IN list."""
    ids = _temporary_ids("_leadscore_ids")
    ids.create(con)
    values = [str(i) for i in lead_ids]
    if values and con.dialect.name == "postgresql" and con.dialect.driver == "psycopg":
        # COPY: a daily run's 100,000 ids took 2 s as inserts, 0.06 s this way
        raw: Any = con.connection.driver_connection
        with raw.cursor() as cur, cur.copy(f'COPY "{ids.name}" (lead_id) FROM STDIN') as copy:
            for value in values:
                copy.write_row((value,))
    elif values:
        con.execute(ids.insert(), [{"lead_id": v} for v in values])
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
        _check_sql_table(con, target, table.name, inspector)
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

    history, latest, _ = _sql_tables(sa.MetaData(), "r")
    sqlite = sqlite_file(target.location)
    if sqlite is not None and not sqlite.is_file():
        return _empty_frame(("lead_id", "stage"))  # no history yet; the commit makes the file
    with _sql_connection(target, write=False) as con:
        inspector = sa.inspect(con)
        if not inspector.has_table(history.name):
            return _empty_frame(("lead_id", "stage"))
        _check_sql_table(con, target, history.name, inspector)
        stamp = as_of.to_pydatetime()
        where = history.c.as_of < stamp
        ids = None if lead_ids is None else _with_ids_sql(con, lead_ids)
        if ids is not None:
            where = sa.and_(where, history.c.lead_id.in_(sa.select(ids.c.lead_id)))
        # without the latest table (dropped to reset it; the next commit rebuilds it) the
        # history alone answers, as it does for DuckDB and files
        if model_name is not None or not inspector.has_table(latest.name):
            if model_name is not None:
                where = sa.and_(where, history.c.model_name == model_name)
            newest = _latest_select(history, where).subquery()
            query = sa.select(newest.c.lead_id, newest.c.stage)
        else:
            closed = _closed_table(history.metadata) if inspector.has_table(CLOSED_TABLE) else None
            if closed is not None:
                count = sa.select(sa.func.count()).select_from(closed).where(_of_ids(closed, ids))
                if not con.execute(count).scalar_one():
                    closed = None  # no closed lead among these: the latest table answers
            query = _previous_from_latest(history, latest, closed, ids, stamp)
        frame = pd.read_sql(query.order_by("lead_id"), con)
    if frame.empty:
        return _empty_frame(("lead_id", "stage"))
    return _conform_read(frame)


def _previous_from_latest(
    history: sa.Table, latest: sa.Table, closed: sa.Table | None, ids: sa.Table | None, as_of: Any
) -> sa.Select[Any]:
    """(lead_id, stage) of each lead (of ``ids``) at its newest row before ``as_of``, by any
    model, as DuckDB's :func:`~leadscore.sinks.duckdb_sink._previous_stages_duckdb` finds it.

    A lead whose latest row is older than as-of needs nothing else: that row is its newest
    earlier one. Only leads scored again at or after as-of (re-runs, back-fills) and closed
    leads (no latest row) need the history, so a daily run reads as fast in a year as on day
    one. The two tables change in one transaction, so the latest table tells the truth.
    """
    import sqlalchemy as sa

    current = sa.select(latest.c.lead_id, latest.c.stage).where(
        latest.c.as_of < as_of, _of_ids(latest, ids)
    )
    again: sa.Select[Any] = sa.select(latest.c.lead_id).where(
        latest.c.as_of >= as_of, _of_ids(latest, ids)
    )
    if closed is not None:  # the caller passes it only when some of the leads are closed
        shut = sa.select(closed.c.lead_id).where(_of_ids(closed, ids))
        again = sa.union_all(again, shut)  # type: ignore[assignment]
    # a lead reopened after its close has a closed record and a latest row: the row answers
    answered = sa.exists().where(latest.c.lead_id == history.c.lead_id, latest.c.as_of < as_of)
    earlier = _latest_select(
        history,
        sa.and_(
            history.c.as_of < as_of,
            _of_ids(history, ids),
            history.c.lead_id.in_(again),
            ~answered,
        ),
    ).subquery()
    union = sa.union_all(current, sa.select(earlier.c.lead_id, earlier.c.stage)).subquery()
    return sa.select(union.c.lead_id, union.c.stage)


def _of_ids(table: sa.Table, ids: sa.Table | None) -> Any:
    """The condition "``table``'s lead is one of ``ids``" (always true without ``ids``)."""
    import sqlalchemy as sa

    return sa.true() if ids is None else table.c.lead_id.in_(sa.select(ids.c.lead_id))
