"""Reading one table: a DuckDB file or a database whose table is not named, or not there,
is an error that lists its tables and names the fix of the caller (``named_by``)."""

from __future__ import annotations

import sqlite3
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
