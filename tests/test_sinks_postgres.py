"""The SQL sink against a real PostgreSQL server, started by ``scripts/postgres.sh``.

The session fixture installs (apt-get, only when the binaries are missing) and starts a
throwaway cluster, and stops it at the end; each test gets a fresh database in it. Set
``LEADSCORE_TEST_POSTGRES_URL`` to use a running server instead. The tests skip, saying why,
only where the server cannot be installed or started.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from event_sources import read_sliced
from leadscore import sinks
from leadscore.errors import DataError
from leadscore.io import iter_closed_loop_chunks, load_closed_loop
from leadscore.sinks.schema import _KEY_TEXT
from test_sink_errors import _one_line, check_rebuilt_after_dropping_latest
from test_sinks import CANONICAL_DTYPES, by_lead, expected_latest, make_scored, run_and_kill

#: An activity-type map, the optional fourth event table.
ACTIVITY_MAP = pd.DataFrame({"source_type": ["Web Visit"], "activity_type": ["web_visit"]})
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "postgres.sh"
ENV_URL = "LEADSCORE_TEST_POSTGRES_URL"


def _script(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path | None]]:
    """The URL of a running server, and the folder of the cluster the script started."""
    if os.environ.get(ENV_URL):
        yield os.environ[ENV_URL], None
        return
    if shutil.which("bash") is None:
        pytest.skip("PostgreSQL tests need bash to run scripts/postgres.sh")
    folder = tmp_path_factory.mktemp("postgres")
    try:
        started = _script("start", str(folder), timeout=900)  # a first apt-get install is slow
    except subprocess.TimeoutExpired:
        pytest.skip("scripts/postgres.sh did not install and start PostgreSQL within 15 minutes")
    if started.returncode != 0:
        why = (started.stderr.strip().splitlines() or ["no message"])[-1]
        pytest.skip(f"PostgreSQL could not be installed or started by scripts/postgres.sh: {why}")
    try:
        yield started.stdout.strip().splitlines()[-1], folder
    finally:
        _script("stop", str(folder), timeout=120)


def _admin(url: str) -> str:
    """A psycopg connection string for the server of an SQLAlchemy URL."""
    import sqlalchemy as sa

    parsed = sa.engine.make_url(url)
    parts = {
        "host": parsed.host,
        "port": parsed.port,
        "user": parsed.username,
        "password": parsed.password,
        "dbname": parsed.database,
    }
    return " ".join(f"{k}={v}" for k, v in parts.items() if v is not None)


@pytest.fixture
def pg_url(postgres_server: tuple[str, Path | None]) -> Iterator[str]:
    """A fresh, empty database on the test server, dropped afterwards."""
    import psycopg
    import sqlalchemy as sa

    server_url, _ = postgres_server
    name = f"leadscore_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_admin(server_url), autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    try:
        url = sa.engine.make_url(server_url).set(database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_admin(server_url), autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _load(
    url: str,
    frames: dict[str, pd.DataFrame] | None = None,
    *,
    schema: str | None = None,
    sql: tuple[str, ...] = (),
) -> list[object]:
    """Run ``sql`` (the first value of each statement that returns rows), then write
    ``frames`` as tables (in ``schema``), in one transaction of the database at ``url``."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as con:
            results = [con.exec_driver_sql(statement) for statement in sql]
            found = [r.scalar() if r.returns_rows else None for r in results]
            for name, frame in (frames or {}).items():
                frame.to_sql(name, con, index=False, schema=schema)
    finally:
        engine.dispose()
    return found


def _columns(url: str, table: str) -> dict[str, tuple[str, str]]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as con:
            rows = con.execute(
                sa.text(
                    "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                    "WHERE table_name = :t ORDER BY ordinal_position"
                ),
                {"t": table},
            ).all()
    finally:
        engine.dispose()
    return {name: (kind, nullable) for name, kind, nullable in rows}


def test_the_script_reports_the_running_server(postgres_server: tuple[str, Path | None]) -> None:
    url, folder = postgres_server
    assert url.startswith("postgresql+psycopg://") and "127.0.0.1" in url
    if folder is None:
        pytest.skip(f"server given by {ENV_URL}, not started by the script")
    assert _script("url", str(folder), timeout=30).stdout.strip() == url
    again = _script("start", str(folder), timeout=60)  # starting twice is harmless
    assert again.returncode == 0 and again.stdout.strip().splitlines()[-1] == url
    assert f"LEADSCORE_POSTGRES_URL='{url}'" in (folder / "env").read_text()


def test_postgres_tables_have_the_schema_types(pg_url: str) -> None:
    sinks.write_scored_leads(make_scored(4), pg_url)
    expected_types = {
        "text": "text",
        "timestamp": "timestamp without time zone",
        "double": "double precision",
        "integer": "integer",
        "boolean": "boolean",
    }
    for table in (sinks.LATEST_TABLE, sinks.HISTORY_TABLE):
        columns = _columns(pg_url, table)
        assert list(columns) == list(sinks.COLUMNS)
        for col in sinks.SCORED_LEADS_SCHEMA:
            kind, nullable = columns[col.name]
            key_text = col.name in _KEY_TEXT
            assert kind == ("character varying" if key_text else expected_types[col.kind])
            assert (nullable == "YES") == col.nullable


def test_postgres_round_trips_values_and_dtypes(pg_url: str) -> None:
    frame = make_scored(15)
    summary = sinks.write_scored_leads(frame, pg_url)
    assert (summary.rows, summary.latest_rows) == (15, 15)
    assert "postgresql+psycopg://" in summary.target
    expected = sinks.validate_scored_leads(frame)
    for table in (sinks.read_scored_leads(pg_url), sinks.read_history(pg_url)):
        assert {c: str(t) for c, t in table.dtypes.items()} == CANONICAL_DTYPES
        pd.testing.assert_frame_equal(by_lead(table), by_lead(expected))


def test_postgres_runs_history_idempotence_and_latest(pg_url: str) -> None:
    with pytest.raises(DataError, match="holds no scored leads yet"):
        sinks.read_scored_leads(pg_url)
    assert sinks.previous_stages(pg_url, "2024-05-01").empty

    june = make_scored(6, "2024-06-01", seed=1)
    sinks.write_scored_leads(june, pg_url)
    april = make_scored(8, "2024-04-01", seed=2)  # an older as-of, written later
    sinks.write_scored_leads(april, pg_url)
    previous = sinks.previous_stages(pg_url, "2024-05-01")
    assert previous["stage"].tolist() == april["stage"].tolist()

    def run_may() -> sinks.WriteSummary:
        scored = make_scored(8, "2024-05-01", seed=3)
        prev = sinks.previous_stages(pg_url, "2024-05-01")
        return sinks.write_scored_leads(sinks.attach_previous_stages(scored, prev), pg_url)

    first = run_may()
    latest, history = sinks.read_scored_leads(pg_url), sinks.read_history(pg_url)
    again = run_may()
    assert (first.replaced_rows, again.replaced_rows) == (0, 8)
    pd.testing.assert_frame_equal(sinks.read_scored_leads(pg_url), latest)
    pd.testing.assert_frame_equal(sinks.read_history(pg_url), history)

    assert len(history) == 6 + 8 + 8
    assert (history.groupby(["lead_id", *sinks.RUN_KEY_COLUMNS]).size() == 1).all()
    pd.testing.assert_frame_equal(latest, expected_latest(history))
    newest = latest.set_index("lead_id")["as_of"]
    assert (newest.loc[june["lead_id"]] == pd.Timestamp("2024-06-01")).all()
    assert (newest.loc[["L0006", "L0007"]] == pd.Timestamp("2024-05-01")).all()
    may_rows = history[history["as_of"] == pd.Timestamp("2024-05-01")].set_index("lead_id")
    assert may_rows["previous_stage"].tolist() == april["stage"].tolist()

    card = sinks.read_history(pg_url, lead_ids=["L0007"])
    assert card["as_of"].tolist() == [pd.Timestamp("2024-04-01"), pd.Timestamp("2024-05-01")]
    only = sinks.previous_stages(pg_url, "2024-07-01", lead_ids=["L0000"], model_name="leadscore")
    assert only["stage"].tolist() == [june["stage"].iloc[0]]


def test_previous_stages_of_ids_copy_must_escape(pg_url: str) -> None:
    """The lead ids a read looks up go to the server by COPY: ids with a tab, a backslash,
    a quote or a line break, and the text NULL, find their own rows."""
    ids = ["a\tb", "back\\slash", "O'Brien", "line\nbreak", "\\N", "NULL", "plain"]
    first = make_scored(ids=ids, as_of="2024-05-01")
    sinks.write_scored_leads(first, pg_url)
    before = sinks.previous_stages(pg_url, "2024-06-01", lead_ids=ids)
    assert dict(zip(before["lead_id"], before["stage"], strict=True)) == dict(
        zip(first["lead_id"], first["stage"], strict=True)
    )


def test_postgres_streams_chunks_through_copy(pg_url: str) -> None:
    whole = make_scored(20_000, "2024-05-01", ids=[f"S{i}" for i in range(20_000)])
    run = sinks.RunKey("2024-05-01", "leadscore", "1")
    with sinks.open_run(pg_url, run) as writer:
        for start in range(0, len(whole), 6_000):
            writer.append(whole.iloc[start : start + 6_000])
    assert writer.summary_ is not None and writer.summary_.latest_rows == 20_000
    pd.testing.assert_frame_equal(
        by_lead(sinks.read_history(pg_url)), by_lead(sinks.validate_scored_leads(whole))
    )


def test_postgres_bad_frame_writes_nothing(pg_url: str) -> None:
    sinks.write_scored_leads(make_scored(3, "2024-04-01"), pg_url)
    before = sinks.read_history(pg_url)
    bad = make_scored(3, "2024-05-01").assign(score=lambda f: f["score"] + 1000)
    with pytest.raises(DataError, match="score outside 0-100"):
        sinks.write_scored_leads(bad, pg_url)
    pd.testing.assert_frame_equal(sinks.read_history(pg_url), before)


def test_postgres_run_killed_while_committing_leaves_old_or_new(
    pg_url: str, tmp_path: Path
) -> None:
    sinks.write_scored_leads(make_scored(5, "2024-04-01"), pg_url)
    old_latest, old_history = sinks.read_scored_leads(pg_url), sinks.read_history(pg_url)
    for delay in (0.0, 0.2):
        run_and_kill(pg_url, "commit", "COMMITTING", delay, tmp_path)
        latest, history = sinks.read_scored_leads(pg_url), sinks.read_history(pg_url)
        if len(history) == len(old_history):
            pd.testing.assert_frame_equal(history, old_history)
            pd.testing.assert_frame_equal(latest, old_latest)
        else:
            assert len(history) == len(old_history) + 20 * 2000
            assert len(latest) == len(old_latest) + 20 * 2000
    # the next run works (and sweeps away the staging folder the killed one left behind)
    before = len(sinks.read_history(pg_url))
    sinks.write_scored_leads(make_scored(5, "2024-06-01"), pg_url)
    assert len(sinks.read_history(pg_url)) == before + 5


def test_postgres_sliced_reads_know_their_rows_or_read_without(pg_url: str) -> None:
    """A table and a query are counted before the first slice; a statement PostgreSQL runs
    but cannot nest (SHOW) is read without a total, and the refused count (rolled back to its
    savepoint) does not abort the transaction the rows are read in."""
    import sqlalchemy as sa

    from leadscore.io import ReadProgress, iter_table_chunks

    engine = sa.create_engine(pg_url)
    try:
        with engine.begin() as con:
            pd.DataFrame({"id": [f"L{i}" for i in range(25)]}).to_sql("t", con, index=False)
    finally:
        engine.dispose()
    for table, query, total in [
        ("t", None, 25),
        (None, "SELECT * FROM t WHERE id <> 'L0' ORDER BY id;", 24),
        (None, "SHOW server_version", None),
    ]:
        progress = ReadProgress()
        chunks = iter_table_chunks(pg_url, table, query=query, chunk_rows=10, progress=progress)
        totals = [progress.total for _ in chunks]
        assert totals and set(totals) == {total}
        assert progress.read == (total or 1)


@pytest.mark.parametrize("table", ["outcomes", "activity_types"])
def test_a_table_named_but_for_case_is_refused(pg_url: str, event_frames, table: str) -> None:
    """PostgreSQL's table names are case-sensitive once quoted: pandas writes "Outcomes" so,
    and asking for outcomes does not find it (nor "Activity_Types" for the optional map).
    That is refused, not read as no outcomes or no map."""
    written = table.title()  # Outcomes, Activity_Types
    frames = dict(event_frames)
    frames[written] = frames.pop(table, ACTIVITY_MAP)
    _load(pg_url, frames)
    with pytest.raises(DataError) as err:
        load_closed_loop(pg_url)
    assert str(err.value).endswith(
        f"table {written!r}: table names are lower case. Rename it to {table}."
    )
    assert "Traceback" not in str(err.value) and "\n" not in str(err.value)


# --------------------------------------------------------------------- overlapping runs


def test_overlapping_runs_take_turns_and_both_are_kept(pg_url: str) -> None:
    """Two runs started together into one target: on a new schema both created the tables
    (``pg_type_typname_nsp_index``), on existing tables both inserted the same lead's latest
    row (``scored_leads_pkey``), and the later one died with a traceback. A transaction-level
    advisory lock makes the second wait for the first; both runs are in the history."""
    import threading

    def together(frames: list[pd.DataFrame]) -> list[BaseException | sinks.WriteSummary]:
        start = threading.Barrier(len(frames))
        results: list[BaseException | sinks.WriteSummary] = [None] * len(frames)  # type: ignore[list-item]

        def write(i: int) -> None:
            start.wait()
            try:
                results[i] = sinks.write_scored_leads(frames[i], pg_url)
            except BaseException as err:  # handed to the test thread
                results[i] = err

        threads = [threading.Thread(target=write, args=(i,)) for i in range(len(frames))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        return results

    ids = [f"O{i}" for i in range(5_000)]
    first = [make_scored(5_000, "2024-04-01", ids=ids), make_scored(5_000, "2024-05-01", ids=ids)]
    second = [make_scored(5_000, "2024-06-01", ids=ids), make_scored(5_000, "2024-07-01", ids=ids)]
    for frames in (first, second):  # a new schema, then existing tables
        results = together(frames)
        assert all(isinstance(r, sinks.WriteSummary) for r in results), results
    history = sinks.read_history(pg_url)
    assert history.groupby("as_of").size().to_dict() == {
        pd.Timestamp(day): 5_000 for day in ("2024-04-01", "2024-05-01", "2024-06-01", "2024-07-01")
    }
    latest = sinks.read_scored_leads(pg_url)
    assert len(latest) == 5_000 and (latest["as_of"] == pd.Timestamp("2024-07-01")).all()
    # the frames carry no previous stages, as if read before the other run committed: each
    # commit sets them from the history it sees once it holds the lock
    ordered = history.sort_values(["lead_id", "as_of"])
    before = ordered.groupby("lead_id")["stage"].shift()
    assert ordered["previous_stage"].fillna("-").tolist() == before.fillna("-").tolist()
    assert (
        latest["stage_changed"].tolist() == (latest["previous_stage"] != latest["stage"]).tolist()
    )


def test_a_writer_that_overlaps_without_the_lock_is_one_line_and_rolled_back(pg_url: str) -> None:
    """Another writer that takes no lock (a sync job, an older leadscore) inserts a lead the
    run scores; the run blocks on it, and when it commits the run's insert breaks the key.
    That is one line saying what happened, and the run's transaction is rolled back."""
    import threading

    import psycopg

    sinks.write_scored_leads(make_scored(3, "2024-04-01"), pg_url)
    before = sinks.read_history(pg_url)
    failed: list[BaseException] = []

    def run() -> None:
        try:
            sinks.write_scored_leads(
                make_scored(4, "2024-05-01", ids=["N1", "N2", "N3", "N4"]), pg_url
            )
        except BaseException as err:  # handed to the test thread
            failed.append(err)

    with psycopg.connect(_admin(pg_url)) as other:
        other.execute(
            "CREATE TEMP TABLE synced AS SELECT * FROM scored_leads WHERE lead_id = 'L0000'"
        )
        other.execute("UPDATE synced SET lead_id = 'N2'")
        other.execute("INSERT INTO scored_leads SELECT * FROM synced")
        writer = threading.Thread(target=run)
        writer.start()
        with psycopg.connect(_admin(pg_url), autocommit=True) as watch:
            for _ in range(600):  # the run waits on the other writer's uncommitted row
                waiting = watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                ).fetchone()
                if waiting and waiting[0]:
                    break
                time.sleep(0.05)
            else:
                pytest.fail("the run never waited for the other writer")
        other.commit()
    writer.join(timeout=60)
    (err,) = failed
    assert isinstance(err, DataError) and "\n" not in str(err)
    assert str(err).startswith(f"another scoring run wrote to {sinks.parse_target(pg_url)} at ")
    assert 'duplicate key value violates unique constraint "scored_leads_pkey"' in str(err)
    assert str(err).endswith(
        "Run again once it has finished; runs into one target must not overlap."
    )
    pd.testing.assert_frame_equal(sinks.read_history(pg_url), before)


# ----------------------------------------------------------------- columns, reads, passwords


def test_a_column_the_crm_team_added_is_named(pg_url: str) -> None:
    import psycopg

    sinks.write_scored_leads(make_scored(3), pg_url)
    with psycopg.connect(_admin(pg_url), autocommit=True) as con:
        con.execute("ALTER TABLE scored_leads ADD COLUMN synced_at timestamp")
    with pytest.raises(DataError) as err:
        sinks.write_scored_leads(make_scored(3, "2024-06-01"), pg_url)
    assert "has a table scored_leads with other columns (unexpected synced_at)." in str(err.value)
    assert len(sinks.read_history(pg_url)) == 3


@pytest.fixture
def reader(pg_url: str) -> Iterator[str]:
    """The URL of ``pg_url`` as a role of its own that may log in and nothing more (its
    grants are the test's), dropped afterwards."""
    import psycopg
    import sqlalchemy as sa

    role = f"reader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_admin(pg_url), autocommit=True) as con:
        try:
            con.execute(f"CREATE ROLE {role} LOGIN")
        except psycopg.errors.InsufficientPrivilege:
            pytest.skip("the test server's user may not create roles")
    try:
        yield sa.engine.make_url(pg_url).set(username=role).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_admin(pg_url), autocommit=True) as con:
            con.execute(f"DROP OWNED BY {role}")
            con.execute(f"DROP ROLE {role}")


def test_a_table_the_user_may_not_read_names_the_databases_reason(
    pg_url: str, reader: str, event_frames: dict[str, pd.DataFrame]
) -> None:
    """The activity log is a view the reporting user has no SELECT on: the line was "query
    failed: Execution failed on sql 'SELECT *. Check the table and column names in the
    query." (no query was written); it keeps PostgreSQL's reason and gives a fix for a table."""
    import psycopg
    import sqlalchemy as sa

    engine = sa.create_engine(pg_url)
    try:
        with engine.begin() as con:
            event_frames["leads"].to_sql("leads", con, index=False)
            event_frames["outcomes"].to_sql("outcomes", con, index=False)
            event_frames["activities"].to_sql("crm_activities", con, index=False)
            con.exec_driver_sql("CREATE VIEW activities AS SELECT * FROM crm_activities")
    finally:
        engine.dispose()
    role = sa.engine.make_url(reader).username
    with psycopg.connect(_admin(pg_url), autocommit=True) as con:
        con.execute(f"GRANT SELECT ON leads, outcomes TO {role}")
    for read in (load_closed_loop, read_sliced):
        with pytest.raises(DataError) as err:
            read(reader)
        assert str(err.value) == (
            f"{reader}: table 'activities' cannot be read: permission denied for view "
            "activities. Check that the database user may read it (GRANT SELECT) and, for a "
            "view, that the tables and files it reads are there."
        )


def test_a_url_without_the_schema_of_the_views_names_the_schema(
    pg_url: str, event_frames: dict[str, pd.DataFrame]
) -> None:
    """The README's set-up keeps the contract's views in a schema of their own (``ls_in``)
    and names it in the URL; a URL without it (or with a typo) found "no table 'leads'
    (tables: nothing)". The error names the schema that holds one and the URL option."""
    _load(pg_url, event_frames, schema="ls_in", sql=("CREATE SCHEMA ls_in",))
    with pytest.raises(DataError) as err:
        load_closed_loop(pg_url)
    assert str(err.value) == (
        "database has no table 'leads' on its search path (tables: nothing); schema 'ls_in' "
        "holds one. Name the schema in the URL: ?options=-csearch_path%3Dls_in (%3D is =)."
    )
    assert len(load_closed_loop(f"{pg_url}?options=-csearch_path%3Dls_in").leads) == 3


@pytest.mark.parametrize("zone", ["timestamp", "timestamptz"])
def test_the_extract_moment_of_stored_timestamps_is_found_in_the_database(
    pg_url: str, event_frames: dict[str, pd.DataFrame], zone: str
) -> None:
    """A database that stores moments (PostgreSQL's timestamp or timestamptz) gives the
    extract moment by aggregates in the database, not by reading every activity into
    Python: the same moment as the whole reader, and the same error for a row in the
    future."""

    from leadscore.io import event_observed_until

    frames = {name: frame.copy() for name, frame in event_frames.items()}
    for name, column in (("activities", "occurred_at"), ("outcomes", "closed_at")):
        frames[name][column] = pd.to_datetime(frames[name][column], format="ISO8601")
        if zone == "timestamptz":
            frames[name][column] = frames[name][column].dt.tz_localize("Europe/Berlin")
    _load(pg_url, frames)
    (kind,) = _load(
        pg_url,
        sql=(
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_name = 'activities' AND column_name = 'occurred_at'",
        ),
    )
    assert str(kind).startswith("timestamp with" if zone == "timestamptz" else "timestamp without")
    assert event_observed_until(pg_url) == load_closed_loop(pg_url).observed_until
    _load(
        pg_url,
        sql=(
            "INSERT INTO activities (lead_id, occurred_at, activity_type) "
            "VALUES ('a', '2099-01-01', 'chat')",
        ),
    )
    errors = []
    for read in (load_closed_loop, event_observed_until):
        with pytest.raises(DataError) as err:
            read(pg_url)
        errors.append(str(err.value).split(" (now")[0])
    assert errors[0] == errors[1] and "2099-01-01" in errors[0]


def test_a_database_is_read_in_slices_by_its_own_integer_ids(pg_url: str) -> None:
    """PostgreSQL compares no integer with text: a slice's log is fetched by the ids as the
    column holds them, and the slices hold the whole reader's rows."""

    frames = {
        "leads": pd.DataFrame({"lead_id": [7, 11, 12], "created_at": ["2024-01-01"] * 3}),
        "activities": pd.DataFrame(
            {
                "lead_id": [7, 7, 11, 12],
                "occurred_at": ["25/02/2024 10:00", "03/02/2024 09:00", "02/03/2024 08:00",
                                "01/02/2024 11:00"],
                "activity_type": ["page_view", "form_fill", "email_open", "chat"],
            }
        ),
        "outcomes": pd.DataFrame({"lead_id": [7], "outcome": ["won"], "closed_at": ["2024-03-01"]}),
    }  # fmt: skip
    _load(pg_url, frames)
    whole = load_closed_loop(pg_url).activities
    sliced = pd.concat([s.activities for s in read_sliced(pg_url)], ignore_index=True)
    key = ["lead_id", "occurred_at"]
    pd.testing.assert_frame_equal(
        sliced.sort_values(key).reset_index(drop=True),
        whole.sort_values(key).reset_index(drop=True),
    )
    opened = iter_closed_loop_chunks(pg_url, chunk_leads=1, open_at=pd.Timestamp("2024-03-05"))
    assert [s.leads["lead_id"].tolist() for s in opened] == [["11"], ["12"]]


def test_a_password_never_reaches_the_output_of_validate_and_score(
    pg_url: str, tmp_path: Path, event_frames: dict[str, pd.DataFrame]
) -> None:
    """``validate --data`` and ``score --target`` with a password in the URL, at -v: the
    header, the summary line, the log lines and an error show it as ***. (The test server
    trusts every local connection: any password is taken.)"""
    import sqlalchemy as sa

    from flat_tables import status_leads, train_status_model

    url = sa.engine.make_url(pg_url).set(password="s3cret-pw")
    secret = url.render_as_string(hide_password=False)
    shown = url.render_as_string(hide_password=True)
    _load(secret, event_frames)
    status_leads(600, 0, "A", status=None).to_csv(tmp_path / "history.csv", index=False)
    model = train_status_model(tmp_path, "history.csv")
    status_leads(20, 1, "N", status="").to_csv(tmp_path / "open.csv", index=False)
    down = sa.engine.make_url(secret).set(port=1).render_as_string(hide_password=False)
    score = ["score", "--spec", str(tmp_path / "spec.yaml"), "--model", str(model)]
    score += ["--input", str(tmp_path / "open.csv"), "--no-progress", "--target"]
    runs = {
        "validate": (["validate", "--data", secret], 0, f"{shown}: 3 leads, 4 activities"),
        "score": ([*score, secret], 0, f" into {shown}\n"),
        "score, server down": ([*score, down], 2, "cannot use the database "),
    }
    for name, (argv, code, expected) in runs.items():
        result = subprocess.run(
            [sys.executable, "-m", "leadscore", "-v", *argv],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )
        output = result.stdout + result.stderr
        assert result.returncode == code, (name, result.stderr)
        assert expected in output, (name, output)
        assert "s3cret-pw" not in output, name
        assert ":***@" in output, name
    assert len(sinks.read_history(pg_url)) == 20


# ------------------------------------------- targets a run cannot be written to as they are


def test_a_password_in_the_url_query_is_masked_in_log_and_error_lines(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """libpq takes the password as ``?password=`` too: SQLAlchemy's hide_password left it in
    "wrote N scored leads to ...", in the summary and in the error of a server that is down."""
    import sqlalchemy as sa

    secret = f"{pg_url}?password=s3cret-q"
    with caplog.at_level(logging.INFO, logger="leadscore"):
        summary = sinks.write_scored_leads(make_scored(3), secret)
    shown = f"{pg_url}?password=***"
    assert f"wrote 3 scored leads to {shown} (" in caplog.text
    assert summary.target == shown
    down = sa.engine.make_url(secret).set(port=1).render_as_string(hide_password=False)
    with pytest.raises(DataError) as err:
        sinks.write_scored_leads(make_scored(3), down)
    shown_down = shown.replace(f":{sa.engine.make_url(pg_url).port}/", ":1/")
    assert str(err.value).startswith(f"cannot use the database {shown_down}: connection failed")
    assert "s3cret-q" not in caplog.text + str(err.value)


def test_a_user_without_grants_is_told_them_before_scoring(pg_url: str, reader: str) -> None:
    """A user the DBA gave no rights on the tables failed the commit, after the scoring, with
    ``InsufficientPrivilege: permission denied for table scored_leads_closed``. The check
    before the scoring names the GRANT statements that are missing (and they are what the
    run needs); a right taken away while a run scores is one line at the commit."""
    import psycopg
    import sqlalchemy as sa

    sinks.write_scored_leads(make_scored(3, "2024-04-01"), pg_url)
    role = sa.engine.make_url(reader).username
    target = sinks.parse_target(reader)
    with pytest.raises(DataError) as checked:
        sinks.check_target(reader)
    message = str(checked.value)
    assert message == (
        f"the database user {role} may not write the scored leads to {target}: it lacks "
        "SELECT, INSERT, DELETE ON scored_leads; SELECT, INSERT, UPDATE, DELETE ON "
        "scored_leads_history; SELECT, INSERT, DELETE ON scored_leads_closed. Have the owner run "
        f"GRANT SELECT, INSERT, DELETE ON scored_leads TO {role}; GRANT SELECT, INSERT, UPDATE, "
        f"DELETE ON scored_leads_history TO {role}; GRANT SELECT, INSERT, DELETE ON "
        f"scored_leads_closed TO {role}, or use a --target of a user that has them."
    )
    with pytest.raises(DataError) as written:
        sinks.write_scored_leads(make_scored(3, "2024-05-01"), reader, closed=["L0000"])
    assert str(written.value) == message
    assert len(sinks.read_history(pg_url)) == 3
    grants = message.split("Have the owner run ", 1)[1].split(", or use a --target", 1)[0]
    with psycopg.connect(_admin(pg_url), autocommit=True) as con:
        for grant in grants.split("; "):
            con.execute(grant)
    sinks.write_scored_leads(make_scored(3, "2024-05-01"), reader, closed=["L0000"])
    assert len(sinks.read_history(pg_url)) == 6
    run = sinks.RunKey("2024-06-01", "leadscore", "1")
    with pytest.raises(DataError) as late, sinks.open_run(reader, run) as writer:
        writer.append(make_scored(3, "2024-06-01"))
        with psycopg.connect(_admin(pg_url), autocommit=True) as con:
            con.execute(f"REVOKE INSERT ON scored_leads_history FROM {role}")
    assert str(late.value) == (
        f"cannot write the scored leads to {target}: permission denied for table "
        "scored_leads_history. Grant the database user SELECT, INSERT, UPDATE and DELETE on "
        "scored_leads, scored_leads_history and scored_leads_closed (and CREATE on the schema, "
        "for a first run), or use a --target of a user that has them."
    )
    assert len(sinks.read_history(pg_url)) == 6


def test_a_search_path_without_a_schema_is_named_before_scoring(pg_url: str) -> None:
    """A misspelt schema in ``?options=-csearch_path%3D...`` leaves no schema to create the
    tables in: the commit, after the scoring, failed with ``InvalidSchemaName: no schema has
    been selected to create in``. The check before the scoring names the search path and the
    fix; a schema dropped while a run scores is one line at the commit."""
    url = f"{pg_url}?options=-csearch_path%3Dnope"
    expected = (
        f"{sinks.parse_target(url)}: no schema of the search path (nope) exists and may be used "
        "by the database user, so there is none to keep the scored-leads tables in. Name an "
        "existing schema in the URL: ?options=-csearch_path%3Dmyschema (%3D is =), or create "
        "it (or grant the user USAGE on it)."
    )
    for call in (
        lambda: sinks.check_target(url),
        lambda: sinks.write_scored_leads(make_scored(3), url),
    ):
        with pytest.raises(DataError) as err:
            call()
        assert str(err.value) == expected
    _load(pg_url, sql=("CREATE SCHEMA scores",))
    scores = f"{pg_url}?options=-csearch_path%3Dscores"
    run = sinks.RunKey("2024-05-01", "leadscore", "1")
    with pytest.raises(DataError) as late, sinks.open_run(scores, run) as writer:
        writer.append(make_scored(3))
        _load(pg_url, sql=("DROP SCHEMA scores",))
    assert str(late.value) == (
        f"cannot write the scored leads to {sinks.parse_target(scores)}: no schema has been "
        "selected to create in. Name an existing schema in the URL: "
        "?options=-csearch_path%3Dmyschema (%3D is =), or create it."
    )
    left = (
        "SELECT count(*) FROM pg_tables WHERE tablename IN ('scored_leads', 'scored_leads_history')"
    )
    assert _load(pg_url, sql=(left,)) == [0]


@pytest.mark.parametrize(
    ("table", "change", "shown", "database_says"),
    [
        (
            "scored_leads",
            "score TYPE boolean USING score > 50",
            "score is BOOLEAN, not integer",
            'column "score" is of type boolean but expression is of type integer',
        ),
        (
            "scored_leads_history",
            "lead_id TYPE integer USING 1",
            "lead_id is INTEGER, not text",
            'invalid input syntax for type integer: "L0000"',
        ),
    ],
)
def test_a_column_of_another_type_is_named_before_scoring(
    pg_url: str, table: str, change: str, shown: str, database_says: str
) -> None:
    """A table with the right column names and a column of another type passed the check and
    failed the commit, after the scoring (``DatatypeMismatch``). It is refused before the
    scoring naming the table and the column; changed while a run scores, it is one line at
    the commit pointing at the schema. Nothing is written either way."""
    sinks.write_scored_leads(make_scored(3, "2024-04-01"), pg_url)
    target = sinks.parse_target(pg_url)
    count = "SELECT count(*) FROM scored_leads_history"
    run = sinks.RunKey("2024-05-01", "leadscore", "1")
    with pytest.raises(DataError) as late, sinks.open_run(pg_url, run) as writer:
        writer.append(make_scored(3, "2024-05-01"))
        _load(pg_url, sql=(f"ALTER TABLE {table} ALTER COLUMN {change}",))
    assert str(late.value).startswith(f"cannot write the scored leads to {target}: ")
    assert database_says in str(late.value)
    assert str(late.value).endswith(
        "Check its tables against the scored-leads schema (see the README): give a column back "
        "its type or drop a table that differs, or use another --target."
    )
    for call in (
        lambda: sinks.check_target(pg_url),
        lambda: sinks.write_scored_leads(make_scored(3, "2024-05-01"), pg_url),
    ):
        with pytest.raises(DataError) as err:
            call()
        assert str(err.value).startswith(
            f"{target} has a table {table} with columns of other types ({shown}). "
        )
    assert _load(pg_url, sql=(count,)) == [3]


def test_a_history_without_its_latest_table_is_read_and_rebuilt(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A DBA dropped ``scored_leads`` to reset it: reading the previous stages failed with
    ``UndefinedTable: relation "scored_leads" does not exist``. The history answers and the
    commit rebuilds the table, as on DuckDB and SQLite (one schema each, twin and dropped)."""
    _load(pg_url, sql=("CREATE SCHEMA twin", "CREATE SCHEMA dropped"))
    twin, dropped = (f"{pg_url}?options=-csearch_path%3D{schema}" for schema in ("twin", "dropped"))
    check_rebuilt_after_dropping_latest(
        twin, dropped, lambda: _load(dropped, sql=("DROP TABLE scored_leads",)), caplog
    )


def test_postgres_runs_and_the_models_that_gave_previous_stages(pg_url: str) -> None:
    from test_sinks import check_runs_and_previous_models

    check_runs_and_previous_models(pg_url)


def test_postgres_gives_each_previous_stage_the_model_duckdb_gives(
    pg_url: str, tmp_path: Path
) -> None:
    from test_sinks import write_switching_history

    reference = str(tmp_path / "scored_leads.duckdb")
    runs = write_switching_history(reference)
    assert write_switching_history(pg_url) == runs
    for run in runs:
        assert sinks.run_moves_by_model(pg_url, run) == sinks.run_moves_by_model(reference, run)


def test_postgres_counts_the_new_sqls_of_a_period(pg_url: str) -> None:
    from test_sinks import check_sql_entries

    check_sql_entries(pg_url)


def test_the_grant_hint_quotes_names_that_need_it(
    postgres_server: tuple[str, Path | None],
) -> None:
    """User ``Low User``, schema ``Sales Ops`` and database ``Emea Sales`` were pasted bare:
    "GRANT CREATE ON SCHEMA Sales Ops TO Low User" is a syntax error for the owner who runs
    it. The names are quoted as PostgreSQL reads them, and the statements, run as written,
    give the user what the run needs."""
    import psycopg
    import sqlalchemy as sa

    server = sa.engine.make_url(postgres_server[0])

    def admin(database: str | None = server.database) -> psycopg.Connection:
        """The server's own user on ``database`` (keywords: a space needs no quoting)."""
        return psycopg.connect(
            host=server.host,
            port=server.port,
            user=server.username,
            password=server.password,
            dbname=database,
            autocommit=True,
        )

    database, role, schema = "Emea Sales", "Low User", "Sales Ops"
    with admin() as con:
        try:
            con.execute(f'CREATE ROLE "{role}" LOGIN')
        except psycopg.errors.InsufficientPrivilege:
            pytest.skip("the test server's user may not create roles")
        con.execute(f'CREATE DATABASE "{database}"')
    try:
        with admin(database) as con:
            con.execute(f'CREATE SCHEMA "{schema}"')
            con.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
            con.execute(f'REVOKE TEMPORARY ON DATABASE "{database}" FROM PUBLIC')
            con.execute(
                f'ALTER ROLE "{role}" IN DATABASE "{database}" SET search_path = "{schema}"'
            )
        url = server.set(database=database, username=role).render_as_string(hide_password=False)
        with pytest.raises(DataError) as err:
            sinks.check_target(url)
        message = _one_line(err)
        grants = [
            f'GRANT CREATE ON SCHEMA "{schema}" TO "{role}"',
            f'GRANT TEMPORARY ON DATABASE "{database}" TO "{role}"',
        ]
        assert f"Have the owner run {'; '.join(grants)}, or use a --target" in message
        with admin(database) as con:
            for grant in grants:
                con.execute(grant)
        sinks.write_scored_leads(make_scored(3), url)
        assert len(sinks.read_history(url)) == 3
    finally:
        with admin() as con:
            con.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            con.execute(f'DROP ROLE IF EXISTS "{role}"')
