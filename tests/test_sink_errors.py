"""Targets a run cannot be written to as they are: refused in one line before the scoring,
or, where they change after the check, in one line at the commit; never a traceback.

DuckDB, SQLite, Parquet and CSV here; PostgreSQL's rights, schemas and types are in
``test_sinks_postgres.py``.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from leadscore import sinks
from leadscore.errors import DataError
from test_sinks import FILE_KINDS, make_scored, target_for


def _files(folder: Path) -> dict[Path, bytes]:
    """Every file under ``folder`` with its bytes: what "left as it was" compares."""
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_line(err: pytest.ExceptionInfo[DataError]) -> str:
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def _sqlite(target: str, *statements: str) -> None:
    """Run ``statements`` on the SQLite file of ``target`` and commit them."""
    with contextlib.closing(sqlite3.connect(target.removeprefix("sqlite:///"))) as con:
        for statement in statements:
            con.execute(statement)
        con.commit()


def _sql(kind: str, target: str, *statements: str) -> None:
    """Run ``statements`` on a DuckDB or SQLite target, as a DBA would."""
    if kind == "duckdb":
        with duckdb.connect(target) as con:
            for statement in statements:
                con.execute(statement)
    else:
        _sqlite(target, *statements)


def _retype_sqlite(target: str, table: str, column: str, declared: str) -> None:
    """Give ``column`` of an SQLite table another declared type, rows kept: SQLite has no
    ALTER COLUMN ... TYPE, so the table is made anew, as a DBA does it."""
    path = target.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as con:
        info = con.execute(f"PRAGMA table_info({table})").fetchall()
    columns = ", ".join(
        f"{name} {declared if name == column else kind}" for _, name, kind, *_ in info
    )
    _sqlite(
        target,
        f"ALTER TABLE {table} RENAME TO old_{table}",
        f"CREATE TABLE {table} ({columns})",
        f"INSERT INTO {table} SELECT * FROM old_{table}",
        f"DROP TABLE old_{table}",
    )


# ------------------------------------------------------------------ passwords


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://scorer@db.internal/scoredb?password=s3cret",
        "postgresql+psycopg://scorer:s3cret@db.internal/scoredb?sslmode=require&password=s3cret",
    ],
)
def test_a_password_in_the_url_is_never_shown_by_the_target(url: str) -> None:
    """SQLAlchemy's hide_password masks ``user:pw@`` only: a libpq ``?password=`` reached
    every log line and error naming the target ("wrote N scored leads to ...")."""
    target = sinks.parse_target(url)
    for shown in (str(target), repr(target), f"{target}"):
        assert "s3cret" not in shown
        assert "password=***" in shown and "db.internal/scoredb" in shown
    assert target.location == url  # the connection still gets it


# ------------------------------------------------------ the latest table dropped


def _drop_latest(kind: str, target: str) -> None:
    """What a DBA resetting ``scored_leads`` does: drop it (delete the file), history kept."""
    if kind in ("parquet", "csv"):
        Path(target).unlink()
    else:
        _sql(kind, target, "DROP TABLE scored_leads")


def check_rebuilt_after_dropping_latest(
    twin: str, dropped: str, drop: Callable[[], None], caplog: pytest.LogCaptureFixture
) -> None:
    """Two targets given the same runs, one of them with its latest table dropped after the
    second: previous stages read from it and the tables after a third run are the twin's.
    Shared with the PostgreSQL tests."""
    for target in (twin, dropped):
        sinks.write_scored_leads(make_scored(6, "2024-04-01"), target)
        sinks.write_scored_leads(make_scored(3, "2024-05-01", seed=1), target, closed=["L0004"])
    drop()
    before = sinks.previous_stages(twin, "2024-06-01")
    assert len(before) == 6  # every lead, the closed one too: the history answers
    pd.testing.assert_frame_equal(sinks.previous_stages(dropped, "2024-06-01"), before)
    only = sinks.previous_stages(dropped, "2024-06-01", lead_ids=["L0001", "L0005"])
    wanted = before[before["lead_id"].isin(["L0001", "L0005"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(only, wanted)
    june = make_scored(ids=["L0001", "L0005"], as_of="2024-06-01", seed=2)
    with caplog.at_level(logging.INFO, logger="leadscore.sinks"):
        for target in (twin, dropped):
            previous = sinks.previous_stages(target, "2024-06-01", lead_ids=["L0001", "L0005"])
            sinks.write_scored_leads(sinks.attach_previous_stages(june, previous), target)
    latest = sinks.read_scored_leads(dropped)
    pd.testing.assert_frame_equal(latest, sinks.read_scored_leads(twin))
    pd.testing.assert_frame_equal(sinks.read_history(dropped), sinks.read_history(twin))
    # the closed lead stays out; the leads the third run did not score are back
    assert latest["lead_id"].tolist() == ["L0000", "L0001", "L0002", "L0003", "L0005"]
    assert (
        latest.set_index("lead_id").loc["L0005", "previous_stage"]
        == (before.set_index("lead_id").loc["L0005", "stage"])
    )
    if not dropped.endswith((".parquet", ".csv")):  # files rebuild the latest file every run
        assert f"{sinks.parse_target(dropped)} holds scored_leads_history but no " in caplog.text


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_a_history_without_its_latest_table_is_read_and_rebuilt(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A DBA dropped ``scored_leads`` to reset it: SQLite failed with ``no such table``,
    DuckDB read no previous stages and kept only the next run's leads, Parquet and CSV read
    no previous stages. Previous stages come from the history and the commit rebuilds the
    table from it, on every backend alike."""
    twin, dropped = target_for(kind, tmp_path / "twin"), target_for(kind, tmp_path / "dropped")
    for folder in ("twin", "dropped"):
        (tmp_path / folder).mkdir()
    check_rebuilt_after_dropping_latest(twin, dropped, lambda: _drop_latest(kind, dropped), caplog)


# ----------------------------------------------------- columns of other types


@pytest.mark.parametrize("kind", ["duckdb", "sqlite"])
@pytest.mark.parametrize(
    ("table", "column", "declared", "shown"),
    [
        ("scored_leads", "score", "BOOLEAN", "score is BOOLEAN, not integer"),
        ("scored_leads_history", "lead_id", "INTEGER", "lead_id is INTEGER, not text"),
        ("scored_leads_closed", "closed_by", "VARCHAR", "closed_by is VARCHAR, not timestamp"),
    ],
)
def test_a_column_of_another_type_is_refused_before_scoring(
    kind: str, table: str, column: str, declared: str, shown: str, tmp_path: Path
) -> None:
    """The right column names with a type the run cannot write (``score boolean``,
    ``lead_id integer``) passed the check and failed the commit after the scoring (DuckDB's
    BinderException), or, on SQLite, stored numeric-looking lead ids as numbers. Refused
    before the scoring, naming the table and the column, and nothing is written."""
    target = target_for(kind, tmp_path)
    sinks.write_scored_leads(make_scored(4, "2024-04-01"), target, closed=["L9999"])
    if kind == "duckdb":
        using = {"BOOLEAN": "score > 50", "INTEGER": "1", "VARCHAR": "CAST(closed_by AS VARCHAR)"}
        _sql(kind, target, f"ALTER TABLE {table} ALTER {column} TYPE {declared} USING "
             f"{using[declared]}")  # fmt: skip
    else:
        _retype_sqlite(target, table, column, declared)
    files = _files(tmp_path)
    with pytest.raises(DataError) as checked:
        sinks.check_target(target)
    message = _one_line(checked)
    assert message.startswith(
        f"{sinks.parse_target(target)} has a table {table} with columns of other types ({shown})."
    )
    with pytest.raises(DataError) as written:
        sinks.write_scored_leads(make_scored(4, "2024-05-01"), target)
    assert str(written.value) == message
    assert _files(tmp_path) == files
    if table == "scored_leads":
        # the fix it gives works: the next run rebuilds the dropped table from the history
        assert message.endswith(
            "Drop the table (the next run rebuilds it from scored_leads_history), or use "
            "another --target."
        )
        _sql(kind, target, "DROP TABLE scored_leads")
        sinks.write_scored_leads(make_scored(ids=["L0000"], as_of="2024-05-01"), target)
        latest = sinks.read_scored_leads(target)
        assert latest["lead_id"].tolist() == ["L0000", "L0001", "L0002", "L0003"]
    else:
        assert "Give that column its type back" in message


# ------------------------------------------------- the closed-lead records


@pytest.mark.parametrize("kind", ["duckdb", "sqlite"])
def test_a_closed_table_with_other_columns_is_refused_before_scoring(
    kind: str, tmp_path: Path
) -> None:
    """``scored_leads_closed`` with other columns was not checked: on SQLite the commit, after
    the scoring, said "no such column ... Check the URL, the server and the credentials", in
    DuckDB a BinderException. It is refused as the other two tables are."""
    target = target_for(kind, tmp_path)
    sinks.write_scored_leads(make_scored(3, "2024-04-01"), target)
    _sql(
        kind,
        target,
        "DROP TABLE scored_leads_closed",
        "CREATE TABLE scored_leads_closed (lead_id VARCHAR, lost_on VARCHAR)",
    )
    files = _files(tmp_path)
    for call in (
        lambda: sinks.check_target(target),
        lambda: sinks.write_scored_leads(make_scored(3, "2024-05-01"), target, closed=["L0001"]),
    ):
        with pytest.raises(DataError) as err:
            call()
        assert _one_line(err) == (
            f"{sinks.parse_target(target)} has a table scored_leads_closed with other columns "
            "(unexpected lost_on; missing closed_by). Use another --target or drop the table."
        )
    assert _files(tmp_path) == files


def test_a_table_changed_after_the_check_is_named_with_its_fix(tmp_path: Path) -> None:
    """A DBA changes a table while the run scores: the commit's error is one line that points
    at the tables, not at "the URL, the server and the credentials", and the target is left
    as it was (SQLite's transaction rolled back)."""
    target = target_for("sqlite", tmp_path)
    sinks.write_scored_leads(make_scored(3, "2024-04-01"), target)
    history = sinks.read_history(target)
    run = sinks.RunKey("2024-05-01", "leadscore", "1")
    with pytest.raises(DataError) as err, sinks.open_run(target, run) as writer:
        writer.append(make_scored(3, "2024-05-01"))
        writer.close_leads(["L0002"])
        _sql("sqlite", target, "DROP TABLE scored_leads_closed",
             "CREATE TABLE scored_leads_closed (lead_id VARCHAR, lost_on VARCHAR)")  # fmt: skip
    message = _one_line(err)
    assert message.startswith(f"cannot write the scored leads to {sinks.parse_target(target)}: ")
    assert "no such column" in message and "closed_by" in message
    assert message.endswith(
        "Check its tables against the scored-leads schema (see the README): give a column back "
        "its type or drop a table that differs, or use another --target."
    )
    pd.testing.assert_frame_equal(sinks.read_history(target), history)


# ------------------------------------------------- files of Parquet and CSV targets


def _frame_file(path: Path, frame: pd.DataFrame) -> None:
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


def _run_file(target: str) -> Path:
    """The one run file in the history folder of a Parquet or CSV target."""
    (path,) = sinks.parse_target(target).history_dir.iterdir()
    return path


BAD_FILES: dict[str, Callable[[str], Path]] = {}


def _bad(name: str) -> Callable[[Callable[[str], Path]], Callable[[str], Path]]:
    def register(make: Callable[[str], Path]) -> Callable[[str], Path]:
        BAD_FILES[name] = make
        return make

    return register


@_bad("history file with other columns")
def _history_other_columns(target: str) -> Path:
    path = _run_file(target).with_name(f"export{Path(target).suffix}")
    _frame_file(path, pd.DataFrame({"lead_id": ["a"], "owner": ["x"]}))
    return path


@_bad("history file truncated")
def _history_truncated(target: str) -> Path:
    path = _run_file(target).with_name(f"copy{Path(target).suffix}")
    path.write_bytes(b"PAR1")
    return path


@_bad("history file with a column of another type")
def _history_other_type(target: str) -> Path:
    path = _run_file(target).with_name(f"edited{Path(target).suffix}")
    frame = sinks.read_history(target)
    frame["score"] = (frame["score"].astype(str) + "%").astype(object)  # Arrow's string
    _frame_file(path, frame)
    return path


@_bad("history file with the columns in another order")
def _history_reordered(target: str) -> Path:
    path = _run_file(target).with_name(f"edited{Path(target).suffix}")
    frame = sinks.read_history(target)
    _frame_file(path, frame[list(reversed(frame.columns))])
    return path


@_bad("closed file with other columns")
def _closed_other_columns(target: str) -> Path:
    path = sinks.parse_target(target).closed_path
    _frame_file(path, pd.DataFrame({"lead_id": ["a"], "lost_on": ["2024-01-01"]}))
    return path


#: What each bad file is told: its problem, and the fix for its place.
EXPECTED = {
    "history file with other columns": (
        "is a {kind} file with other columns (unexpected owner; missing scored_at, as_of, "
        "model_name, model_version, probability, ... (9 more); it has lead_id, owner), not a "
        "scored-leads run file"
    ),
    "history file truncated": "is not a scored-leads run file: ",
    "history file with a column of another type": (
        "is a Parquet file with columns of other types (score is string, not integer), not a "
        "scored-leads run file"
    ),
    "history file with the columns in another order": (
        "has the columns of a scored-leads run file in another order (column 1 is "
        "reasons_json, not lead_id), and CSV columns are read by position"
    ),
    "closed file with other columns": (
        "is a {kind} file with other columns (unexpected lost_on; missing closed_by), not a "
        "closed-leads file"
    ),
}
CASES = [
    ("parquet", "history file with other columns"),
    ("parquet", "history file truncated"),
    ("parquet", "history file with a column of another type"),
    ("parquet", "closed file with other columns"),
    ("csv", "history file with other columns"),
    ("csv", "history file with the columns in another order"),
    ("csv", "closed file with other columns"),
]


@pytest.mark.parametrize(("kind", "case"), CASES)
def test_a_bad_file_of_a_file_target_is_named_before_scoring(
    kind: str, case: str, tmp_path: Path
) -> None:
    """A file in the history folder that is no run file (another export, a truncated copy, an
    edited run) or a closed-leads file with other columns was read only by the commit, after
    the scoring: DuckDB's BinderException, ``too small to be a Parquet file``, a
    ConversionException. Each is one line before the scoring naming the file and what to do
    with it, and the target is left as it was."""
    target = target_for(kind, tmp_path)
    sinks.write_scored_leads(make_scored(3, "2024-04-01"), target)
    bad = BAD_FILES[case](target)
    files = _files(tmp_path)
    with pytest.raises(DataError) as checked:
        sinks.check_target(target)
    message = _one_line(checked)
    expected = EXPECTED[case].format(kind="Parquet" if kind == "parquet" else "CSV")
    assert message.startswith(f"{bad} {expected}")
    if case.startswith("history"):
        history = sinks.parse_target(target).history_dir
        assert message.endswith(
            f"Move it out of {history} (or restore it from a backup): every .{kind} file there "
            f"is read as a run of {target}."
        )
    else:
        assert message.endswith(
            "Restore it from a backup, or move it away (the leads it recorded closed then show "
            "in scored_leads again until a run closes them)."
        )
    with pytest.raises(DataError) as written:
        sinks.write_scored_leads(make_scored(3, "2024-05-01"), target, closed=["L0001"])
    assert str(written.value) == message
    assert _files(tmp_path) == files
    bad.unlink()  # the fix: the file moved away, the run goes through
    sinks.write_scored_leads(make_scored(3, "2024-05-01"), target)
    assert len(sinks.read_history(target)) == 6


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_a_file_damaged_after_the_check_is_one_line_at_the_commit(
    kind: str, tmp_path: Path
) -> None:
    """A history file damaged while the run scored (after :func:`check_target`) failed the
    commit with DuckDB's traceback. It is one line: the file where the checks find it now (a
    truncated Parquet file), else DuckDB's reason (a bad row in a CSV file); reading the
    history says the same, and the other files are left as they were."""
    target = target_for(kind, tmp_path)
    sinks.write_scored_leads(make_scored(3, "2024-04-01"), target)
    run_file = _run_file(target)
    run = sinks.RunKey("2024-05-01", "leadscore", "1")
    files = _files(tmp_path)
    with pytest.raises(DataError) as err, sinks.open_run(target, run) as writer:
        writer.append(make_scored(3, "2024-05-01"))
        if kind == "parquet":
            run_file.write_bytes(b"PAR1")
        else:  # the header is right; a row is not
            run_file.write_text(run_file.read_text().replace("2024-04-01 06:00:00", "yesterday"))
        files[run_file] = run_file.read_bytes()
    message = _one_line(err)
    history = sinks.parse_target(target).history_dir
    if kind == "parquet":
        assert message.startswith(f"{run_file} is not a scored-leads run file: Parquet file ")
        assert message.endswith(
            f"Move it out of {history} (or restore it from a backup): every .parquet file "
            f"there is read as a run of {target}."
        )
    else:
        assert message.startswith(
            f"cannot read the scored-leads files of {target}: Conversion Error: CSV Error on "
        )
        assert "yesterday" in message
        assert message.endswith(
            f"Find the damaged file (a run file in {history}, scored_leads.csv or "
            "scored_leads_closed.csv) and move it away, or restore it from a backup."
        )
    assert _files(tmp_path) == files
    with pytest.raises(DataError) as read:
        sinks.read_history(target)
    assert str(read.value) == message
