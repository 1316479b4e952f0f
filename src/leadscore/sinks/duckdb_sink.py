"""DuckDB: the DuckDB-file target, and the engine that reads Parquet and CSV targets.

Opening a DuckDB file (waiting a little on another process's lock), a read-only view of the
tables of a DuckDB, Parquet or CSV target as FROM-expressions (:func:`_duckdb_view`: DuckDB
reads the files too), and the commit of a run into a DuckDB file in one transaction. The SQL
that recomputes later rows' previous stages is shared with :mod:`leadscore.sinks.files`.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from leadscore.errors import DataError
from leadscore.io import error_reason
from leadscore.sinks.schema import (
    _DUCKDB_TYPES,
    _LATEST_KEY,
    _LATEST_KEY_H,
    _LATEST_ORDER,
    CLOSED_SCHEMA,
    CLOSED_TABLE,
    HISTORY_TABLE,
    LATEST_TABLE,
    SCORED_LEADS_SCHEMA,
    ColumnKind,
    _duckdb_ddl,
    _select_list,
    _sql_literal,
)
from leadscore.sinks.target import (
    RunKey,
    SinkTarget,
    TargetKind,
    _check_columns,
    _check_target_files,
    _check_types,
    _os_error,
    _visible_files,
)

logger = logging.getLogger(__name__)

#: How long a DuckDB open waits for another process's lock before giving up.
_LOCK_WAIT_S = 15.0


def count_rows(con: duckdb.DuckDBPyConnection, sql: str, parameters: object = None) -> int:
    """The one number a statement returns as its only row: the count of ``SELECT count(*)``,
    or the rows an ``UPDATE`` changed."""
    row = con.execute(sql, parameters).fetchone()
    if row is None:
        raise ValueError(f"no row from a statement that returns one: {sql}")
    return int(row[0])


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
_CLOSED_COLUMNS: dict[str, str] = {c.name: _DUCKDB_TYPES[c.kind] for c in CLOSED_SCHEMA}
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


def _connect_duckdb(path: Path, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB file, waiting a little (with a line in the log) while another process
    holds its lock: another run committing lets go within seconds."""
    deadline = time.monotonic() + _LOCK_WAIT_S
    waiting = False
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except OSError as err:
            raise _os_error(path, err) from err
        except duckdb.Error as err:
            if not isinstance(err, duckdb.IOException) or "lock" not in str(err).lower():
                raise DataError(
                    f"{path} cannot be opened as a DuckDB file: {error_reason(err)}",
                    "Use another --target, or a .parquet or .csv target.",
                ) from err
            holder = _lock_holder(str(err))
            if time.monotonic() > deadline:
                raise DataError(
                    f"{path} is held open by another program{holder}",
                    "Close it there and retry (a notebook that only reads opens it with "
                    "duckdb.connect(path, read_only=True), which leadscore's reports can read "
                    "beside; scoring writes, so it needs the file closed everywhere else).",
                ) from err
            if not waiting:
                logger.info(
                    "%s is held open by another program%s: waiting up to %g s for it",
                    path,
                    holder,
                    _LOCK_WAIT_S,
                )
                waiting = True
            time.sleep(0.2)


def _lock_holder(message: str) -> str:
    """`` (python3.11, PID 6898)`` from DuckDB's lock error, or nothing; DuckDB's advice to
    open the file read-only is left out, since a scorer must write."""
    found = re.search(r"lock is held in (.+?) \(PID (\d+)\)", message)
    return "" if found is None else f" ({Path(found.group(1)).name}, PID {found.group(2)})"


def _duckdb_kind(data_type: str) -> ColumnKind | None:
    """The schema kind a DuckDB column of ``data_type`` (as ``duckdb_columns()`` names it)
    takes and reads back, or None: what :func:`_check_types` compares."""
    name = data_type.upper()
    if name == "VARCHAR" or name.startswith("VARCHAR("):
        return "text"
    if name.startswith("TIMESTAMP"):  # TIMESTAMP_NS, _MS, _S, WITH TIME ZONE
        return "timestamp"
    if name in ("DOUBLE", "FLOAT"):
        return "double"
    if name in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"):
        return "integer"
    return "boolean" if name == "BOOLEAN" else None


def _unreadable_files(target: SinkTarget, err: duckdb.Error) -> DataError:
    """DuckDB failing to read the files of a Parquet or CSV target (a file damaged or replaced
    since :func:`~leadscore.sinks.run.check_target` looked at it) as one line: the file the
    checks of :func:`~leadscore.sinks.target._check_target_files` find now where they find
    one, else DuckDB's reason (which names a Parquet file, not a CSV file)."""
    try:
        _check_target_files(target, history=True)
    except DataError as found:
        return found
    reason = error_reason(err)
    places = (target.history_dir, target.path, target.closed_path)
    if any(str(place) in reason for place in places):
        fix = (
            f"Move that file away (a run file: out of {target.history_dir}), or restore it "
            "from a backup."
        )
    else:
        fix = (
            f"Find the damaged file (a run file in {target.history_dir}, {target.path.name} or "
            f"{target.closed_path.name}) and move it away, or restore it from a backup."
        )
    return DataError(f"cannot read the scored-leads files of {target}: {reason}", fix)


@contextlib.contextmanager
def _duckdb_view(
    target: SinkTarget,
) -> Iterator[tuple[duckdb.DuckDBPyConnection, dict[str, str | None]]]:
    """A DuckDB connection and FROM-expressions for the tables of a DuckDB/Parquet/CSV target
    (the two scored-leads tables and the closed-leads records).

    A table's expression is None when the target does not hold it yet. The tables' columns
    and types are checked first (of a Parquet or CSV target: the latest and closed-leads
    files; :func:`~leadscore.sinks.run.check_target` checks the history's files too).
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
            for table in tables & {LATEST_TABLE, HISTORY_TABLE, CLOSED_TABLE}:
                columns = con.execute(
                    "SELECT column_name, data_type FROM duckdb_columns() "
                    "WHERE table_name = ? AND NOT internal",
                    [table],
                ).fetchall()
                _check_columns(target, table, [r[0] for r in columns])
                _check_types(target, table, {r[0]: (_duckdb_kind(r[1]), r[1]) for r in columns})
            yield (
                con,
                {
                    t: (f'"{t}"' if t in tables else None)
                    for t in (LATEST_TABLE, HISTORY_TABLE, CLOSED_TABLE)
                },
            )
        return
    _check_target_files(target, history=False)
    latest = [target.path] if target.path.exists() else []
    history = _visible_files(target.history_dir, target.suffix)
    try:
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
    except duckdb.Error as err:  # read-only: every error is one of reading the files
        raise _unreadable_files(target, err) from err


def _id_filter_duckdb(con: duckdb.DuckDBPyConnection, lead_ids: Iterable[str] | None) -> str:
    if lead_ids is None:
        return "TRUE"
    ids = pa.table({"lead_id": pa.array([str(i) for i in lead_ids], pa.string())})
    con.register("_leadscore_ids", ids)
    return "lead_id IN (SELECT lead_id FROM _leadscore_ids)"


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


def _previous_stages_duckdb(
    con: duckdb.DuckDBPyConnection,
    latest: str,
    history: str,
    closed: str | None,
    leads: str,
) -> str:
    """A query of (lead_id, stage): each lead of ``leads`` (a WHERE condition on lead_id) with
    its stage at its newest row strictly before ``$as_of``, by any model.

    A lead whose latest row is older than as-of needs nothing else: that row is its newest
    earlier one. Only leads scored again at or after as-of (re-runs, back-fills) and closed
    leads (no latest row) need the history, so the usual case never scans the whole history.
    Only where the two tables always change together (a DuckDB file), and the latest table
    tells the truth.
    """
    from_history = f"(SELECT lead_id FROM {latest} WHERE as_of >= $as_of)"
    if closed is not None and count_rows(con, f"SELECT count(*) FROM {closed} WHERE {leads}"):
        from_history = (
            f"(SELECT lead_id FROM {latest} WHERE as_of >= $as_of "
            f"UNION ALL SELECT lead_id FROM {closed})"
        )
    where = f"as_of < $as_of AND {leads}"
    # a lead reopened after its close has a closed record and a latest row: the row answers
    answered = f"(SELECT lead_id FROM {latest} WHERE as_of < $as_of)"
    return (
        f"SELECT lead_id, stage FROM {latest} WHERE {where} UNION ALL "
        f"SELECT lead_id, arg_max(stage, {_LATEST_KEY}) FROM {history} "
        f"WHERE {where} AND lead_id IN {from_history} AND lead_id NOT IN {answered} "
        "GROUP BY lead_id"
    )


def _restage_run_duckdb(con: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> int:
    """Set previous_stage and stage_changed of the run's rows (in both tables) from
    ``_leadscore_before`` (lead_id, stage: the target's stages before the run's as-of, read
    inside the commit by :func:`_previous_stages_duckdb`); return how many rows changed.

    The scorer read the previous stages before it scored; another run committed meanwhile
    (two schedules overlapping into one target) makes them stale. Rows that agree are left
    alone, so the usual run rewrites nothing.
    """
    key = "{t}as_of = $as_of AND {t}model_name = $model_name AND {t}model_version = $model_version"
    changed = count_rows(
        con,
        f"UPDATE {HISTORY_TABLE} SET previous_stage = fresh.stage, "
        f"stage_changed = coalesce(fresh.stage <> {HISTORY_TABLE}.stage, false) "
        f"FROM (SELECT r.lead_id, b.stage FROM (SELECT lead_id FROM {HISTORY_TABLE} "
        f"WHERE {key.format(t='')}) r LEFT JOIN _leadscore_before b ON r.lead_id = b.lead_id) "
        f"AS fresh WHERE {HISTORY_TABLE}.lead_id = fresh.lead_id "
        f"AND {key.format(t=HISTORY_TABLE + '.')} "
        f"AND {HISTORY_TABLE}.previous_stage IS DISTINCT FROM fresh.stage",
        params,
    )
    if changed:
        con.execute(
            f"UPDATE {LATEST_TABLE} SET previous_stage = h.previous_stage, "
            f"stage_changed = h.stage_changed FROM {HISTORY_TABLE} h "
            f"WHERE {LATEST_TABLE}.lead_id = h.lead_id AND {key.format(t=LATEST_TABLE + '.')} "
            f"AND {key.format(t='h.')}",
            params,
        )
    return int(changed)


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
) -> tuple[int, int, int]:
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
            tables = {
                r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
            }
            con.execute(_duckdb_ddl(HISTORY_TABLE))
            con.execute(_duckdb_ddl(LATEST_TABLE))
            con.execute(_CLOSED_DDL)
            if HISTORY_TABLE in tables and LATEST_TABLE not in tables:
                _rebuild_latest_duckdb(con, target)
            before = _previous_stages_duckdb(
                con, LATEST_TABLE, HISTORY_TABLE, f'"{CLOSED_TABLE}"', in_run
            )
            con.execute(
                f"CREATE TEMP TABLE _leadscore_before AS {before}", {"as_of": params["as_of"]}
            )
            con.execute(
                "CREATE TEMP TABLE _leadscore_rerun AS "
                f"SELECT lead_id FROM {LATEST_TABLE} WHERE {key}",
                params,
            )
            rerun = count_rows(con, "SELECT count(*) FROM _leadscore_rerun")
            con.execute(
                "CREATE TEMP TABLE _leadscore_touched AS "
                f"SELECT lead_id FROM {HISTORY_TABLE} WHERE {key}",
                params,
            )
            replaced = count_rows(con, "SELECT count(*) FROM _leadscore_touched")
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
            if count_rows(
                con,
                f'SELECT count(*) FROM "{CLOSED_TABLE}" WHERE closed_by > $as_of',
                {"as_of": params["as_of"]},
            ):
                # closed leads have no latest row: their later rows are in the history only
                later += (
                    f" UNION SELECT DISTINCT lead_id FROM {HISTORY_TABLE} WHERE as_of > $as_of "
                    "AND lead_id IN (SELECT lead_id FROM _leadscore_touched) AND lead_id IN "
                    f'(SELECT lead_id FROM "{CLOSED_TABLE}" WHERE closed_by > $as_of)'
                )
            con.execute(
                f"CREATE TEMP TABLE _leadscore_later AS {later}", {"as_of": params["as_of"]}
            )
            if count_rows(con, "SELECT count(*) FROM _leadscore_later"):
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
            restaged = _restage_run_duckdb(con, params)
            for temp in ("before", "rerun", "winner", "touched", "later"):
                con.execute(f"DROP TABLE _leadscore_{temp}")
            _apply_closed_duckdb(con, closed, params["as_of"])
            latest = count_rows(con, f"SELECT count(*) FROM {LATEST_TABLE}")
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise
    return int(replaced), int(latest), restaged


#: Drop every latest row that a closed-lead record is newer than.
_DROP_CLOSED_DUCKDB = (
    f'DELETE FROM {LATEST_TABLE} WHERE EXISTS (SELECT 1 FROM "{CLOSED_TABLE}" c '
    f"WHERE c.lead_id = {LATEST_TABLE}.lead_id AND c.closed_by > {LATEST_TABLE}.as_of)"
)


def _rebuild_latest_duckdb(con: duckdb.DuckDBPyConnection, target: SinkTarget) -> None:
    """Fill the (new, empty) latest table from the history, inside the commit's transaction.

    A DBA who dropped ``scored_leads`` to reset it left the history: the commit's shortcuts
    read each lead's latest row from that table, and without it every lead the run did not
    score was lost from it and the run's previous stages were read as none. The table is
    derived from the history, so it is rebuilt, closed leads left out, as it was.
    """
    logger.info(
        "%s holds %s but no %s: rebuilding it from the history", target, HISTORY_TABLE, LATEST_TABLE
    )
    con.execute(
        f"INSERT INTO {LATEST_TABLE} SELECT {_select_list()} FROM {HISTORY_TABLE} "
        f"QUALIFY row_number() OVER (PARTITION BY lead_id ORDER BY {_LATEST_ORDER}) = 1"
    )
    con.execute(_DROP_CLOSED_DUCKDB)


def _apply_closed_duckdb(con: duckdb.DuckDBPyConnection, closed: Path | None, as_of: Any) -> None:
    """Record the run's closed leads and drop every latest row a record is newer than.

    The rows the commit just (re)built may belong to leads recorded closed later (a back-fill
    of an earlier as-of): those go first. A closed lead of the run is recorded when it has no
    record yet, or when it is shown with a row older than the run (reopened, then closed
    again); a lead already left out keeps its record, so the table grows by newly closed
    leads only.
    """
    con.execute(_DROP_CLOSED_DUCKDB)
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
