"""Parquet and CSV targets: a run is committed by renaming complete files into place.

The run's history file, the later runs' files a back-fill changes, the closed-leads file and
the rebuilt latest file are built in full beside the target (by DuckDB), then swapped in with
``os.replace``, all or none (:func:`_replace_all_or_none`), so readers see whole files only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from leadscore.sinks.duckdb_sink import (
    _closed_scan,
    _configure_duckdb,
    _file_scan,
    _previous_by_as_of_duckdb,
    _unreadable_files,
    _visible_files,
    count_rows,
)
from leadscore.sinks.schema import (
    _LATEST_KEY,
    _LATEST_ORDER,
    ARROW_SCHEMA,
    COLUMNS,
    _select_list,
    _sql_literal,
)
from leadscore.sinks.target import RunKey, SinkTarget, TargetKind, _os_error, is_out_of_room

logger = logging.getLogger(__name__)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _restaged(previous: str) -> dict[str, str]:
    """The expressions of a rewritten row ``h``'s two derived columns, given the SQL of its
    recomputed previous stage (NULL: the lead's first scoring)."""
    return {
        "previous_stage": previous,
        "stage_changed": f"coalesce({previous} <> h.stage, false)",
    }


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
        closed_later = count_rows(
            con,
            f"SELECT count(*) FROM {_closed_scan(target.closed_path, target.kind)} "
            f"WHERE closed_by > $as_of AND lead_id IN {touched_ids}",
            params,
        )
    if target.path.exists() and not closed_later:
        # A lead with a later row has a later latest row: a forward run (the daily case)
        # answers from the latest file alone, without reading the whole history.
        later_latest = count_rows(
            con,
            f"SELECT count(*) FROM {_file_scan([target.path], target.kind)} "
            f"WHERE as_of > $as_of AND lead_id IN {touched_ids}",
            params,
        )
        if not later_latest:
            return {}
    con.execute(
        "CREATE TEMP TABLE _leadscore_later AS SELECT DISTINCT lead_id FROM "
        f"{scan} WHERE as_of > $as_of AND lead_id IN {touched_ids}",
        params,
    )
    if not count_rows(con, "SELECT count(*) FROM _leadscore_later"):
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
    recomputed = _restaged("p.previous_stage")
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


def _restage_run_files(
    con: duckdb.DuckDBPyConnection,
    target: SinkTarget,
    run: RunKey,
    new_run_file: Path,
    others: list[Path],
    work: Path,
) -> tuple[Path, int]:
    """The run's file with previous_stage and stage_changed as the history holds them now,
    and how many rows changed (the file itself when none did).

    The scorer read the previous stages before it scored; another run committed meanwhile
    makes them stale. Read while the commit holds the target's lock (:func:`_target_lock`).
    """
    if not others:
        return new_run_file, 0
    params = {"as_of": run.as_of.to_pydatetime()}
    run_scan = _file_scan([new_run_file], target.kind)
    con.execute(
        "CREATE TEMP TABLE _leadscore_before AS SELECT lead_id, "
        f"arg_max(stage, {_LATEST_KEY}) AS stage FROM {_file_scan(others, target.kind)} "
        f"WHERE as_of < $as_of AND lead_id IN (SELECT lead_id FROM {run_scan}) GROUP BY lead_id",
        params,
    )
    joined = (
        f"FROM (SELECT {_select_list()} FROM {run_scan}) h "
        "LEFT JOIN _leadscore_before b ON h.lead_id = b.lead_id"
    )
    changed = count_rows(
        con, f"SELECT count(*) {joined} WHERE h.previous_stage IS DISTINCT FROM b.stage"
    )
    if not changed:
        return new_run_file, 0
    recomputed = _restaged("b.stage")
    columns = ", ".join(f"{recomputed[c]} AS {c}" if c in recomputed else f"h.{c}" for c in COLUMNS)
    out = work / f"run_restaged{target.suffix}"
    _copy_rows(con, f"SELECT {columns} {joined} ORDER BY h.lead_id", out, target.kind)
    return out, int(changed)


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
) -> tuple[int, int, int]:
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
    with _target_lock(target):
        return _commit_files_locked(target, staged, run, memory_limit, closed)


@contextlib.contextmanager
def _target_lock(target: SinkTarget) -> Iterator[None]:
    """Hold an exclusive lock of the target's history folder while a run commits, waiting,
    with a line in the log, while another run holds it.

    Runs into one target take turns, as PostgreSQL's do: without it two overlapping commits
    each rebuilt the latest file from the history they saw, and the later rename lost the
    other run's rows there. An advisory ``flock`` of the folder itself, so that no lock file
    is left behind; released when the folder is closed, also by a killed run. Where the
    system has no ``flock`` (Windows), runs into one target must not overlap.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    folder = target.history_dir
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError as err:
        raise _os_error(folder, err) from err
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("another scoring run is writing to %s: waiting for it to finish", target)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)


def _commit_files_locked(
    target: SinkTarget, staged: Path, run: RunKey, memory_limit: str, closed: Path | None
) -> tuple[int, int, int]:
    """:func:`_commit_files` once it holds the target's lock."""
    hist_dir = target.history_dir
    run_file = hist_dir / f"{run.slug}{target.suffix}"
    others = [p for p in _visible_files(hist_dir, target.suffix) if p != run_file]
    work = staged.parent
    new_latest = work / f"latest{target.suffix}"
    fmt = (
        "(FORMAT PARQUET, COMPRESSION ZSTD)" if target.kind == "parquet" else "(FORMAT CSV, HEADER)"
    )
    with duckdb.connect() as con, _read_errors(target):
        _configure_duckdb(con, memory_limit, work)
        replaced = 0
        if run_file.exists():
            replaced = count_rows(
                con, f"SELECT count(*) FROM {_file_scan([run_file], target.kind)}"
            )
        if target.kind == "csv":
            new_run_file = work / "run.csv"
            con.execute(
                f"COPY (SELECT {_select_list()} FROM read_parquet({_sql_literal(str(staged))})) "
                f"TO {_sql_literal(str(new_run_file))} {fmt}"
            )
        else:
            new_run_file = staged
        new_run_file, restaged = _restage_run_files(con, target, run, new_run_file, others, work)
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
    return int(replaced), int(latest), restaged


@contextlib.contextmanager
def _read_errors(target: SinkTarget) -> Iterator[None]:
    """DuckDB's errors of reading the target's files while a commit builds the new ones, as
    one line (:func:`~leadscore.sinks.duckdb_sink._unreadable_files`): a history file damaged
    or replaced after :func:`~leadscore.sinks.run.check_target` looked at it. Errors of
    writing (a full disk) go on to the caller, which names them as such."""
    try:
        yield
    except duckdb.Error as err:
        if isinstance(err, duckdb.IOException | duckdb.TransactionException) or is_out_of_room(err):
            raise
        raise _unreadable_files(target, err) from err


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
        + (
            old
            if old is not None
            else "(SELECT NULL::VARCHAR AS lead_id, NULL::TIMESTAMP AS closed_by WHERE false)"
        )
    )
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
    if not count_rows(con, "SELECT count(*) FROM _leadscore_closing"):
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
