"""Reading one table: a DuckDB file or a database whose table is not named, or not there,
is an error that lists its tables and names the fix of the caller (``named_by``)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest

from leadscore.errors import DataError
from leadscore.io import (
    event_data_name,
    iter_table_chunks,
    load_closed_loop,
    read_table,
)

FRAME = pd.DataFrame({"lead_id": ["a", "b"], "x": [1, 2]})


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, str]:
    import duckdb

    with duckdb.connect(str(tmp_path / "crm.duckdb")) as con:
        con.execute("CREATE TABLE open_leads AS SELECT * FROM FRAME")
        con.execute("CREATE TABLE other AS SELECT * FROM FRAME")
    with closing(sqlite3.connect(tmp_path / "crm.sqlite")) as con:
        FRAME.to_sql("open_leads", con, index=False)
    return {
        "duckdb": str(tmp_path / "crm.duckdb"),
        "sqlite": f"sqlite:///{tmp_path / 'crm.sqlite'}",
    }


def _both_readers(source: str, table: str | None, **options: object) -> str:
    """The one error both readers give, as text."""
    with pytest.raises(DataError) as whole:
        read_table(source, table, **options)  # type: ignore[arg-type]
    with pytest.raises(DataError) as chunked:
        list(iter_table_chunks(source, table, chunk_rows=1, **options))  # type: ignore[arg-type]
    assert str(whole.value) == str(chunked.value)
    assert "\n" not in str(whole.value)
    return str(whole.value)


def test_a_duckdb_file_without_a_table_lists_its_tables_and_the_spec_fix(sources):
    """The default caller is a spec's reader: the fix is the spec's table:, never a --table
    option no command has."""
    message = _both_readers(sources["duckdb"], None)
    assert "crm.duckdb is a DuckDB file but no table was named (tables: open_leads, other)" in (
        message
    )
    assert message.endswith("Name one of its tables in the spec (table: NAME).")
    assert "--table" not in message


@pytest.mark.parametrize("kind", ["duckdb", "sqlite"])
def test_an_unknown_table_names_the_callers_fix(sources, kind):
    default = _both_readers(sources[kind], "leadz")
    assert "has no table 'leadz' (tables: open_leads" in default
    assert default.endswith("Name one of its tables in the spec (table: NAME).")
    option = _both_readers(sources[kind], "leadz", named_by="with --input-table NAME")
    assert option.endswith("Name one of its tables with --input-table NAME.")


def test_a_database_url_without_a_table_names_the_callers_fix(sources):
    message = _both_readers(sources["sqlite"], None, named_by="with --input-table NAME")
    assert "no table or query named" in message
    assert message.endswith("Name one of its tables with --input-table NAME.")


def test_a_duckdb_url_reads_the_duckdb_file(sources):
    """duckdb:///path reads the file itself, as a scored-leads target of that form is read:
    no DuckDB driver for SQLAlchemy is needed."""
    url = f"duckdb:///{sources['duckdb']}"
    pd.testing.assert_frame_equal(read_table(url, "open_leads"), FRAME, check_dtype=False)
    (chunk,) = list(iter_table_chunks(url, "open_leads", chunk_rows=10))
    assert chunk["lead_id"].tolist() == ["a", "b"]
    assert event_data_name(url) == "crm"


def test_event_data_without_leads_says_to_load_the_table(sources):
    """The tables of the data contract have fixed names: a DuckDB file without leads is told
    to hold that table, not to name one in a spec."""
    with pytest.raises(DataError) as caught:
        load_closed_loop(sources["duckdb"])
    message = str(caught.value)
    assert "has no table 'leads' (tables: open_leads, other)" in message
    assert message.endswith("Load a leads table into it (see the data contract).")
    assert "spec" not in message


# ------------------------------------------------------------------ a read that fails


def test_a_view_that_fails_when_read_keeps_the_databases_reason(tmp_path, event_frames):
    """A view whose table was dropped (as a permission denied or a missing file) fails only
    when it is read. The line keeps the database's own reason, not the first line of pandas'
    wrapper (``query failed: Execution failed on sql 'SELECT *``), and speaks of a query
    only where the user wrote one."""
    path = tmp_path / "crm.sqlite"
    with closing(sqlite3.connect(path)) as con:
        event_frames["leads"].to_sql("crm_leads", con, index=False)
        con.execute("CREATE VIEW leads AS SELECT * FROM crm_leads")
        con.execute("DROP TABLE crm_leads")
        con.commit()
    url = f"sqlite:///{path}"
    table = _both_readers(url, "leads")
    assert table == (
        f"{url}: table 'leads' cannot be read: no such table: main.crm_leads. Check that the "
        "database user may read it (GRANT SELECT) and, for a view, that the tables and files "
        "it reads are there."
    )
    with pytest.raises(DataError) as loaded:
        load_closed_loop(url)
    assert str(loaded.value) == table
    query = _both_readers(url, None, query="SELECT lead_id,\n       created_at\n  FROM leads")
    assert query == (
        f"{url}: query failed: no such table: main.crm_leads. Check the table and column names "
        "in the query."
    )


def test_a_duckdb_view_of_a_missing_file_names_the_file(tmp_path):
    """A DuckDB view over a Parquet export that was moved away: the reason names the file."""
    import duckdb

    export = tmp_path / "export.parquet"
    FRAME.to_parquet(export)
    with duckdb.connect(str(tmp_path / "crm.duckdb")) as con:
        con.execute(f"CREATE VIEW open_leads AS SELECT * FROM read_parquet('{export}')")
    export.unlink()
    message = _both_readers(str(tmp_path / "crm.duckdb"), "open_leads")
    assert message.startswith(f"{tmp_path / 'crm.duckdb'}: table 'open_leads' cannot be read: ")
    assert str(export) in message and "query" not in message


def test_a_long_reason_is_one_line_of_at_most_300_characters(sources):
    """DuckDB's reason runs over several lines (the candidates, then the SQL quoted under a
    caret): it is one line, without the quoted SQL, cut at 300 characters."""
    column = "x" * 400
    message = _both_readers(sources["duckdb"], None, query=f'SELECT "{column}"\nFROM open_leads')
    where = f"{sources['duckdb']}: query failed: "
    assert message.startswith(where + "Binder Error: Referenced column")
    reason = message[len(where) : message.index(". Check the table and column names")]
    assert len(reason) <= 300 and reason.endswith("x (...)")
    assert "LINE 1" not in message


# ------------------------------------------------------------------ passwords and names


def test_a_url_password_is_masked_even_where_the_url_does_not_parse():
    from leadscore.io import shown_url

    assert shown_url("postgresql+psycopg://u:secret@db:5432/crm") == (
        "postgresql+psycopg://u:***@db:5432/crm"
    )
    # a port that is no number, an "@" in the password: SQLAlchemy refuses both
    assert shown_url("postgresql+psycopg://u:secret@db:port/crm") == (
        "postgresql+psycopg://u:***@db:port/crm"
    )
    assert shown_url("postgresql://u:se@cr:et@db:5432/crm") == "postgresql://u:***@db:5432/crm"
    assert shown_url("postgresql://db:port/crm") == "postgresql://db:port/crm"
    assert shown_url("data/crm") == "data/crm"
    # a password given as a query parameter is as secret
    assert shown_url("postgresql+psycopg://u@db/crm?password=QuerySecret9&sslmode=require") == (
        "postgresql+psycopg://u@db/crm?password=***&sslmode=require"
    )
    assert "QuerySecret9" not in shown_url("postgresql://u@db:port/crm?PASSWORD=QuerySecret9")


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("postgresql+psycopg://leads:secret@127.0.0.1:1/crm", "cannot connect to the database"),
        ("postgresql+psycopg://leads:secret@127.0.0.1:port/crm", "cannot open database URL"),
    ],
)
def test_a_password_in_the_data_url_is_never_printed(url, error):
    """The data URL that cannot be used is named, as a target that fails is, with its
    password masked: not in the error line, not in a log line at -v."""
    result = subprocess.run(
        [sys.executable, "-m", "leadscore", "-v", "validate", "--data", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "secret" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    shown = url.replace(":secret@", ":***@")
    assert f"{error} {shown}: " in errors[0]


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("postgresql+psycopg://u:p@db.example.com:5432/acme_crm?sslmode=require", "acme_crm"),
        ("postgresql+psycopg://u@db/emea sales", "emea_sales"),
        ("postgresql://db/..", "events"),
        ("sqlite:////data/exports/crm.db", "crm"),
        ("sqlite:///crm.sqlite", "crm"),
        ("duckdb:///x/crm.duckdb", "crm"),
        ("postgresql+psycopg://u@db:5432", "events"),
        ("sqlite://", "events"),
        ("mssql+pyodbc://?odbc_connect=DSN%3Dcrm", "events"),
        ("data/crm", "crm"),
        ("data/crm.duckdb", "crm"),
    ],
)
def test_event_data_of_a_database_is_named_after_the_database(source, name):
    """Two business units scoring from two databases had one name, ``events``, and so one
    champion (``leadscore-events``) and one model folder: the database's name is the data
    set's, made safe for the registry, and ``events`` only where the URL names none."""
    from leadscore.commands.score import default_model_uri

    assert event_data_name(source) == name
    assert default_model_uri(None, source) == f"models:/leadscore-{name}@champion"


@pytest.mark.parametrize("table", ['My "Leads"; -- x', 'plain" WHERE "x" > 1 --'])
def test_a_duckdb_table_name_is_quoted_not_read_as_sql(tmp_path, table):
    """``--input-table`` and a spec's ``table:`` were pasted into the SELECT as written: a
    table named with a quote, a space and a semicolon failed with DuckDB's parser error, and
    a name closing the quote could add a WHERE that dropped rows unseen. Both readers (the
    CLI's ``score --input-table`` reads by chunks) return every row of the named table."""
    import duckdb

    source = tmp_path / "crm.duckdb"
    with duckdb.connect(str(source)) as con:
        escaped = table.replace('"', '""')
        con.execute(f'CREATE TABLE "{escaped}" AS SELECT * FROM FRAME')
        con.execute("CREATE TABLE plain AS SELECT * FROM FRAME")

    whole = read_table(str(source), table)
    chunked = pd.concat(list(iter_table_chunks(str(source), table, chunk_rows=1)))
    for read in (whole, chunked.reset_index(drop=True)):
        pd.testing.assert_frame_equal(read, FRAME, check_dtype=False)


def test_a_duckdb_table_name_that_closes_its_quote_is_not_a_filter(sources):
    """A name ending the quoted identifier early names no table: it is refused as unknown,
    never run as ``SELECT * FROM "open_leads" WHERE ...``."""
    message = _both_readers(sources["duckdb"], 'open_leads" WHERE "x" > 1 --')
    assert "has no table 'open_leads\" WHERE" in message
