"""``score --input`` and ``report drift --input`` on a DuckDB file or a database: the table is
named with ``--input-table`` (the spec's ``table:`` and ``query:`` are its own source's), and
every error about a missing table names the fix of the caller that reads it."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest
import yaml

from flat_tables import status_leads, train_status_model
from leadscore.cli import main
from leadscore.errors import DataError
from leadscore.scoring import flat_feature_chunks
from leadscore.sinks import read_scored_leads
from leadscore.specs import load_spec

N_HISTORY = 1200
N_OPEN = 40


def _write_duckdb(frame: pd.DataFrame, path: Path, table: str) -> None:
    import duckdb

    with duckdb.connect(str(path)) as con:
        con.register("frame", frame)
        con.execute(f'CREATE TABLE "{table}" AS SELECT * FROM frame')


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A spec whose source is table ``contacts`` of a DuckDB file, a model trained on it, and
    the open leads as table ``open_leads`` of a DuckDB file and of an SQLite database, and as
    a CSV file."""
    root = tmp_path_factory.mktemp("score_input")
    _write_duckdb(status_leads(N_HISTORY, 0, "A", status=None), root / "history.duckdb", "contacts")
    train_status_model(root, "history.duckdb", table="contacts")
    current = status_leads(N_OPEN, 1, "N", status="")
    _write_duckdb(current, root / "open.duckdb", "open_leads")
    with closing(sqlite3.connect(root / "open.sqlite")) as con:
        current.to_sql("open_leads", con, index=False)
    current.to_csv(root / "open.csv", index=False)
    return root


def _score(project: Path, target: Path, *args: str) -> int:
    argv = ["score", "--spec", str(project / "spec.yaml"), "--model", str(project / "model")]
    return main([*argv, "--target", str(target), "--no-progress", *args])


def _inputs(project: Path) -> dict[str, str]:
    return {
        "duckdb file": str(project / "open.duckdb"),
        "duckdb url": f"duckdb:///{project / 'open.duckdb'}",
        "sqlite url": f"sqlite:///{project / 'open.sqlite'}",
    }


@pytest.mark.parametrize("form", ["duckdb file", "duckdb url", "sqlite url"])
def test_input_table_names_the_table_of_a_database_input(project, tmp_path, form, capsys):
    """--input-table reads the named table of a DuckDB file, a duckdb:/// URL or an SQLite
    URL given as --input, whatever the spec's own table is called (contacts)."""
    target = tmp_path / "s.duckdb"
    source = _inputs(project)[form]
    assert _score(project, target, "--input", source, "--input-table", "open_leads") == 0
    assert f"scored {N_OPEN} leads" in capsys.readouterr().out
    assert set(read_scored_leads(str(target))["lead_id"]) == {f"N{i:05d}" for i in range(N_OPEN)}


@pytest.mark.parametrize("form", ["duckdb file", "sqlite url"])
def test_report_drift_takes_input_table_too(project, tmp_path, form, capsys):
    argv = ["report", "drift", "--spec", str(project / "spec.yaml")]
    argv += ["--model", str(project / "model"), "--out", str(tmp_path / "drift.csv")]
    source = _inputs(project)[form]
    assert main([*argv, "--input", source, "--input-table", "open_leads"]) == 0
    assert f"{N_OPEN} open leads now" in capsys.readouterr().out
    assert main([*argv, "--input", str(project / "open.duckdb")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "Name one of its tables with --input-table NAME." in err


def test_a_database_input_without_input_table_names_its_tables_and_the_option(
    project, tmp_path, capsys
):
    """The spec's table (contacts) is its own source's: a DuckDB --input without
    --input-table is an error listing the file's tables and naming --input-table, and a table
    it lacks names --input-table too; neither offers a --table option that does not exist."""
    target = tmp_path / "s.duckdb"
    duck = str(project / "open.duckdb")
    assert _score(project, target, "--input", duck) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "open.duckdb is a DuckDB file but no table was named (tables: open_leads)" in err
    assert err.endswith("Name one of its tables with --input-table NAME.")
    assert _score(project, target, "--input", duck, "--input-table", "contacts") == 2
    err = capsys.readouterr().err.strip()
    assert "open.duckdb has no table 'contacts' (tables: open_leads)" in err
    assert err.endswith("Name one of its tables with --input-table NAME.")
    sqlite = _inputs(project)["sqlite url"]
    assert _score(project, target, "--input", sqlite, "--input-table", "leads") == 2
    err = capsys.readouterr().err.strip()
    assert "database has no table 'leads' (tables: open_leads)" in err
    assert err.endswith("Name one of its tables with --input-table NAME.")
    assert "--table" not in err.replace("--input-table", "")
    assert not target.exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--input-table", "open_leads"], "--input-table names a table of --input, and no --input"),
        (
            ["--input", "open.csv", "--input-table", "open_leads"],
            "and open.csv is a .csv file (one table). Leave out --input-table.",
        ),
    ],
    ids=["without-input", "csv-input"],
)
def test_input_table_where_it_does_not_apply_is_one_line(
    project, tmp_path, args, expected, capsys, monkeypatch
):
    monkeypatch.chdir(project)
    target = tmp_path / "s.duckdb"
    assert _score(project, target, *args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err
    assert not target.exists()


@pytest.mark.parametrize("given", [["--input-table", "t"], ["--input", "x.csv"]])
def test_input_options_with_event_data_name_the_form_not_a_second_mistake(tmp_path, given, capsys):
    """With --data, --input-table alone was told to add --input, which then failed as
    "--input goes with --spec": the first error names the data form instead."""
    argv = ["score", "--data", str(tmp_path / "crm"), "--target", str(tmp_path / "s.duckdb")]
    assert main([*argv, "--no-progress", *given]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{given[0]} goes with --spec (a flat table), not with --data" in err


def test_the_spec_source_table_error_points_to_the_spec(project, tmp_path):
    """The spec's own source: a table it lacks is fixed in the spec (table:), not with an
    option of a command."""
    spec = yaml.safe_load((project / "spec.yaml").read_text())
    spec.update(source=str(project / "history.duckdb"), table="contactz")
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    chunks = flat_feature_chunks(load_spec(str(tmp_path / "spec.yaml")), chunk_rows=100)
    with pytest.raises(DataError) as caught:
        next(chunks)
    message = str(caught.value)
    assert "has no table 'contactz' (tables: contacts)" in message
    assert message.endswith("Name one of its tables in the spec (table: NAME).")


def test_a_spec_table_does_not_apply_to_the_input(project):
    """flat_feature_chunks: the spec's table is not looked for in ``source``; its
    ``source_table`` is, and a source table without a source is an error."""
    spec = load_spec(str(project / "spec.yaml"))
    with pytest.raises(DataError, match=r"no table was named \(tables: open_leads\)"):
        next(flat_feature_chunks(spec, source=str(project / "open.duckdb"), chunk_rows=100))
    rows, ids = next(
        flat_feature_chunks(
            spec, source=str(project / "open.duckdb"), source_table="open_leads", chunk_rows=100
        )
    )
    assert len(rows) == len(ids) == N_OPEN
    with pytest.raises(DataError, match="no source to read it from"):
        flat_feature_chunks(spec, source_table="open_leads", chunk_rows=100)


@pytest.mark.parametrize("command", [["score"], ["report", "drift"]])
def test_help_says_where_the_input_table_is_named(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert (
        "--input-table NAME the table to read from the DuckDB file or database URL given as "
        in (text)
    )
    assert "the spec's table: and query: apply to the spec's own source only" in text


def test_leads_that_begin_after_the_as_of_are_named(tmp_path, caplog):
    """A flat input scored as of a moment before its leads began (the as-of of an older
    export, or a 2030 typo that training refuses) was scored without a word; one warning,
    across chunks, names how many, the latest and what to do."""
    (tmp_path / "open.csv").write_text(
        "id,created,visits\na,2025-03-01,1\nb,2025-05-02,2\nc,2024-12-01,3\nd,2030-01-01,4\n"
    )
    (tmp_path / "spec.yaml").write_text(
        "name: dated\nsource: open.csv\nid: id\nlabel: {column: status, won: [won]}\n"
        "order_by: created\n"
    )
    spec = load_spec(str(tmp_path / "spec.yaml"))
    source = str(tmp_path / "open.csv")

    def warned(as_of: pd.Timestamp) -> list[str]:
        caplog.clear()
        with caplog.at_level("WARNING", logger="leadscore.scoring"):
            list(flat_feature_chunks(spec, source=source, chunk_rows=2, as_of=as_of))
        return [r.getMessage() for r in caplog.records if "open lead(s) have" in r.getMessage()]

    (line,) = warned(pd.Timestamp("2025-01-01"))
    assert line.startswith(
        "3 open lead(s) have a created after the as-of 2025-01-01 00:00, the latest 2030-01-01 "
        "for lead 'd'"
    )
    assert line.endswith(
        "correct the dates in the future (a typo such as 2062 for 2026): train refuses them"
    )
    (tmp_path / "open.csv").write_text("id,created,visits\na,2025-03-01,1\nb,2025-05-02,2\n")
    (line,) = warned(pd.Timestamp("2025-04-01"))
    assert "1 open lead(s)" in line and line.endswith(
        "give --as-of the moment the input was exported"
    )
    assert warned(pd.Timestamp("2025-06-01")) == []

    # an older export scored without --as-of is stamped now: its newest lead says so
    def stale(as_of: pd.Timestamp, stamped_now: bool) -> list[str]:
        caplog.clear()
        with caplog.at_level("WARNING", logger="leadscore.scoring"):
            chunks = flat_feature_chunks(
                spec, source=source, chunk_rows=2, as_of=as_of, stamped_now=stamped_now
            )
            list(chunks)
        return [r.getMessage() for r in caplog.records if "newest open lead" in r.getMessage()]

    (line,) = stale(pd.Timestamp("2026-11-24 09:00"), True)
    assert line.startswith(
        "the newest open lead's created is 2025-05-02, 571 days before the as-of 2026-11-24 "
        "09:00 (now, no --as-of given)"
    )
    assert stale(pd.Timestamp("2026-11-24 09:00"), False) == []  # an --as-of was given
    assert stale(pd.Timestamp("2025-05-20"), True) == []  # a fresh export


def test_an_input_without_the_label_column_is_scored_as_open_with_one_warning(tmp_path, caplog):
    """An input that lacks the label column cannot say which leads are closed: every row was
    scored as open without a word, so converted and lost leads reached sales. One warning per
    run, across chunks, names the column and what was done; an input with the column says
    nothing, and its closed leads are left out."""
    (tmp_path / "spec.yaml").write_text(
        "name: plain\nsource: open.csv\nid: id\nlabel: {column: status, won: [won], lost: [lost]}\n"
    )
    spec = load_spec(str(tmp_path / "spec.yaml"))

    def scored(text: str) -> tuple[list[str], list[str]]:
        (tmp_path / "open.csv").write_text(text)
        caplog.clear()
        with caplog.at_level("WARNING", logger="leadscore.scoring"):
            chunks = flat_feature_chunks(spec, source=str(tmp_path / "open.csv"), chunk_rows=2)
            ids = [i for _, chunk_ids in chunks for i in chunk_ids]
        return ids, [r.getMessage() for r in caplog.records if "label column" in r.getMessage()]

    ids, lines = scored("id,visits\na,1\nb,2\nc,3\n")
    assert ids == ["a", "b", "c"]
    assert lines == [
        f"{tmp_path / 'open.csv'} has no label column 'status' (3 row(s)): every lead in it "
        "is taken as open; score only open leads, or keep the column so that closed ones are "
        "left out"
    ]
    ids, lines = scored("id,visits,status\na,1,won\nb,2,\nc,3,lost\n")
    assert ids == ["b"] and lines == []


def test_an_input_without_the_won_date_names_the_window_it_still_reads(tmp_path, caplog):
    """With ``within_days`` the leads whose window ended are still left out as lost, but a win
    inside a window still running cannot be seen: the warning says which leads are scored."""
    (tmp_path / "open.csv").write_text("id,created,visits\nold,2024-01-01,1\nnew,2024-05-20,2\n")
    (tmp_path / "spec.yaml").write_text(
        "name: dated\nsource: open.csv\nid: id\norder_by: created\n"
        "label: {column: won_at, won: not_null, within_days: 90}\n"
    )
    spec = load_spec(str(tmp_path / "spec.yaml"))
    with caplog.at_level("WARNING", logger="leadscore.scoring"):
        chunks = flat_feature_chunks(
            spec, source=str(tmp_path / "open.csv"), chunk_rows=1, as_of="2024-05-31"
        )
        ids = [i for _, chunk_ids in chunks for i in chunk_ids]
    assert ids == ["new"]
    (line,) = [r.getMessage() for r in caplog.records if "label column" in r.getMessage()]
    assert line.endswith(
        "has no label column 'won_at' (2 row(s)): every lead whose 90-day window is still "
        "running is taken as open, won or not; score only open leads, or keep the column so "
        "that closed ones are left out"
    )
