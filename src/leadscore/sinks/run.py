"""Runs: stage a scoring run chunk by chunk, then commit it atomically to any target.

:func:`open_run` checks the target before any scoring work (:func:`check_target`) and returns
a :class:`RunWriter`, which stages validated chunks in a Parquet file (memory bounded by one
chunk) and hands it at commit to the committer of the target's kind (DuckDB, files, SQL).
Staging folders of killed runs are swept away by the next run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from leadscore.errors import DataError
from leadscore.io import sqlite_file
from leadscore.sinks.duckdb_sink import _commit_duckdb, _configure_duckdb, _duckdb_view
from leadscore.sinks.files import _commit_files
from leadscore.sinks.schema import ARROW_SCHEMA, LATEST_TABLE, validate_scored_leads
from leadscore.sinks.sql import _check_sql_target, _commit_sql
from leadscore.sinks.target import (
    RunKey,
    SinkTarget,
    TargetKind,
    WriteSummary,
    _check_target_files,
    _check_writable_path,
    _os_error,
    is_out_of_room,
    log_restaged,
    make_folders,
    os_error_fix,
    os_reason,
    parse_target,
    remove_empty_folders,
)

logger = logging.getLogger(__name__)


_STAGING_PREFIX = "leadscore-run-"


def check_target(target: str | os.PathLike[str] | SinkTarget | None) -> SinkTarget:
    """Check that a run can be written to ``target`` before any scoring work: a one-line
    :class:`DataError` for a path that cannot hold the file, a file that is no DuckDB (or
    Parquet, CSV) file, existing tables (the closed-lead records too) with other columns or
    columns of other types, a file of a Parquet or CSV target's history that is no run file,
    and, on PostgreSQL, no schema to keep the tables in or rights the user lacks. Each of
    these failed the commit, after the scoring. Writes nothing."""
    sink = parse_target(target)
    if sink.kind == "sql":
        sqlite = sqlite_file(sink.location)
        if sqlite is not None:
            if sqlite.is_dir():
                raise DataError(f"{sqlite} is a folder", "Name a database file for --target.")
            _check_writable_path(SinkTarget("duckdb", str(sqlite)))
            if not sqlite.exists():
                return sink
        _check_sql_target(sink)
        return sink
    _check_writable_path(sink)
    if sink.kind != "duckdb":
        _check_target_files(sink, history=True)
    with _duckdb_view(sink):  # opens a DuckDB file, checks the columns and types of its tables
        pass
    return sink


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
        self._committed = False
        self._closed_leads: list[np.ndarray] = []
        #: folders made for a file target in a new folder: removed if the run fails
        self._made: list[Path] = []

    # -- staging

    def _staging_parent_and_prefix(self) -> tuple[Path, str]:
        if self.target.kind == "sql":
            return Path(tempfile.gettempdir()), _STAGING_PREFIX
        path = self.target.path.absolute()
        return path.parent, f".{path.name}.{_STAGING_PREFIX}"

    def _open_staging(self) -> None:
        parent, prefix = self._staging_parent_and_prefix()
        try:
            if self.target.kind == "sql":
                parent.mkdir(parents=True, exist_ok=True)
            else:
                self._made = make_folders(parent)
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
        table = pa.Table.from_pandas(frame, schema=ARROW_SCHEMA, preserve_index=False)
        try:
            if self._writer is None:
                self._open_staging()
            assert self._writer is not None
            self._writer.write_table(table)
        except OSError as err:  # Arrow's too: a full disk, a file size limit
            self.abort()
            raise self._write_failed(err, staging=True) from err
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
        staging = True
        fresh = self._fresh_paths()
        try:
            self._finish_staging()
            closed = self._stage_closed_leads()
            staging = False
            commit = _COMMITTERS[self.target.kind]
            replaced, latest, restaged = commit(
                self.target, self._staged, self.run, self.memory_limit, closed
            )
            self._committed = True
        except BaseException as err:
            _remove_unused(fresh)
            if isinstance(err, OSError | duckdb.Error) and _is_write_error(err):
                raise self._write_failed(err, staging=staging) from err
            raise
        finally:
            self.abort()
        self.summary_ = WriteSummary(
            target=str(self.target),
            run=self.run,
            rows=self.rows_,
            replaced_rows=replaced,
            latest_rows=latest,
            seconds=time.perf_counter() - start,
            restaged_rows=restaged,
        )
        log_restaged(self.target, restaged)
        logger.info(
            "wrote %s scored leads to %s (%s replaced; %s leads in %s) in %.1fs",
            f"{self.rows_:,}", self.target, f"{replaced:,}", f"{latest:,}", LATEST_TABLE,
            self.summary_.seconds,
        )  # fmt: skip
        return self.summary_

    def _fresh_paths(self) -> list[Path]:
        """The paths of a file target that do not exist before its commit (a first run's
        DuckDB file, a Parquet or CSV target's history folder): a commit that fails removes
        them again where they hold nothing (:func:`_remove_unused`), so that a first run that
        failed (a full disk) leaves no empty database or folder behind."""
        if self.target.kind == "sql":
            return []
        paths = [self.target.path] if self.target.kind == "duckdb" else [self.target.history_dir]
        return [p for p in paths if not p.exists()]

    def _write_failed(self, err: BaseException, *, staging: bool) -> DataError:
        """A write the system refused while staging or committing (a full disk, a file size
        limit, a folder made read-only meanwhile) as one line naming the target and the
        system's reason, rather than the traceback of the library that wrote. The caller
        discards what was staged, so the target is left as it was."""
        parent, _ = self._staging_parent_and_prefix()
        step = f"staging the run in {parent}" if staging else "committing the run"
        problem = f"cannot write the scored leads to {self.target} ({step}): {os_reason(err)}"
        if self.target.kind == "sql" and staging:
            # staged in the temporary folder, not beside the target: another --target is no fix
            fix = os_error_fix(err, f"in {parent}", "set TMPDIR to a folder on another disk")
        else:
            fix = os_error_fix(err, f"in {parent}")
        return DataError(problem, fix)

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
        if not self._committed:
            remove_empty_folders(self._made)
            self._made = []

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


def _remove_unused(paths: list[Path]) -> None:
    """Remove what a failed commit made of ``paths`` (:meth:`RunWriter._fresh_paths`) and
    left unused: a DuckDB file holding no table (its transaction rolled back), with its
    write-ahead log; a folder still empty. Anything holding data, another run's included,
    stays."""
    for path in paths:
        if path.is_dir():
            with contextlib.suppress(OSError):
                path.rmdir()  # only while empty
        elif path.is_file():
            try:
                with duckdb.connect(str(path), read_only=True) as con:
                    tables = con.execute("SELECT count(*) FROM duckdb_tables()").fetchone()
            except duckdb.Error:
                continue
            if tables is not None and tables[0] == 0:
                for leftover in (path, path.with_name(f"{path.name}.wal")):
                    with contextlib.suppress(OSError):
                        leftover.unlink(missing_ok=True)


def _is_write_error(err: BaseException) -> bool:
    """Whether ``err`` is the system refusing a write rather than a bug: an ``OSError``
    (Arrow's I/O errors are ones), DuckDB's I/O error, or DuckDB failing to commit because
    its write-ahead log could not be written (a full disk: ``Could not write file``)."""
    if isinstance(err, OSError | duckdb.IOException):
        return True
    return isinstance(err, duckdb.TransactionException) and (
        "Could not write" in str(err) or is_out_of_room(err)
    )


_COMMITTERS: dict[
    TargetKind, Callable[[SinkTarget, Path, RunKey, str, Path | None], tuple[int, int, int]]
] = {
    "duckdb": _commit_duckdb,
    "parquet": _commit_files,
    "csv": _commit_files,
    "sql": _commit_sql,
}
