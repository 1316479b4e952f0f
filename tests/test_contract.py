"""The event-form data contract: typing, and one test per validation error."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pandas.api import types as ptypes

from leadscore.errors import DataError
from leadscore.io import (
    iter_closed_loop_chunks,
    iter_table_chunks,
    load_closed_loop,
    read_table,
    write_table,
    write_tables,
)
from leadscore.schema import is_known_id, normalized_labels, validate_closed_loop


def test_valid_frames_are_typed(event_frames):
    data = validate_closed_loop(**event_frames)
    assert ptypes.is_datetime64_dtype(data.leads["created_at"])
    assert ptypes.is_datetime64_dtype(data.activities["occurred_at"])
    assert isinstance(data.activities["activity_type"].dtype, pd.CategoricalDtype)
    assert data.activities["value"].dtype == "float64"
    assert data.observed_until == pd.Timestamp("2024-03-01")
    assert set(data.leads.columns) >= {"source", "job_title"}


def test_timezones_are_converted_to_naive_utc(event_frames):
    event_frames["leads"]["created_at"] = [
        "2024-01-01T02:00:00+02:00",
        "2024-01-05T00:00:00Z",
        "2024-02-01T00:00:00-05:00",
    ]
    data = validate_closed_loop(**event_frames)
    assert data.leads["created_at"].tolist() == [
        pd.Timestamp("2024-01-01T00:00"),
        pd.Timestamp("2024-01-05T00:00"),
        pd.Timestamp("2024-02-01T05:00"),
    ]


@pytest.mark.parametrize(
    ("written", "warned"),
    [
        (["2024-01-01T02:00:00+02:00", "2024-01-05T00:00:00", "2024-02-01"], True),
        (["2024-01-01 02:00:00 UTC", "2024-01-05 00:00:00", "2024-02-01"], True),
        (["2024-01-01T02:00:00+0200", "2024-01-05T00:00:00-05", "2024-02-01"], False),
        (["2024-01-01T02:00:00", "2024-01-05 00:00", "2024-02-01"], False),
    ],
    ids=["offset-and-none", "utc-suffix-and-none", "all-zoned-or-dates", "none-zoned"],
)
def test_a_column_mixing_zoned_and_unzoned_times_is_warned_about(
    event_frames, caplog, written, warned
):
    """Values without a zone are read as UTC; beside zoned ones they may be local times."""
    event_frames["leads"]["created_at"] = pd.array(written, dtype="str")
    with caplog.at_level("WARNING", logger="leadscore.timestamps"):
        data = validate_closed_loop(**event_frames)
    messages = [r.getMessage() for r in caplog.records if "carry a timezone" in r.getMessage()]
    assert bool(messages) is warned
    if warned:
        assert messages[0].startswith("leads.created_at: 1 timestamp(s) carry a timezone and 1")
        assert data.leads["created_at"].iloc[1] == pd.Timestamp("2024-01-05T00:00")


def test_numeric_lead_ids_match_across_tables(event_frames):
    event_frames["leads"]["lead_id"] = [1, 2, 3]
    event_frames["activities"]["lead_id"] = [1.0, 1.0, 2.0, 3.0]
    event_frames["outcomes"]["lead_id"] = ["1", "2"]
    data = validate_closed_loop(**event_frames)
    assert data.activities["lead_id"].tolist() == ["1", "1", "2", "3"]


def test_missing_column(event_frames):
    leads = event_frames["leads"].drop(columns="created_at")
    with pytest.raises(DataError, match=r"leads: missing column 'created_at'.*rename"):
        validate_closed_loop(leads, event_frames["activities"], event_frames["outcomes"])


def test_every_missing_column_is_named_at_once(event_frames):
    """An export with its own column names lacks several: all are named in the one error."""
    activities = event_frames["activities"].rename(
        columns={"occurred_at": "ActivityDate", "activity_type": "Type"}
    )
    with pytest.raises(DataError) as caught:
        validate_closed_loop(event_frames["leads"], activities, event_frames["outcomes"])
    message = str(caught.value)
    assert message.startswith("activities: missing column ")
    assert "'occurred_at'" in message and "'activity_type'" in message and "1 more" in message


def test_empty_table(event_frames):
    with pytest.raises(DataError, match=r"leads is empty"):
        validate_closed_loop(event_frames["leads"].iloc[0:0])


def test_duplicate_lead_id(event_frames):
    leads = pd.concat([event_frames["leads"], event_frames["leads"].iloc[[1]]])
    with pytest.raises(DataError, match=r"leads: duplicate lead_id 'b'.*one row per lead"):
        validate_closed_loop(leads)


def test_lead_ids_that_differ_only_by_spaces_around_them(event_frames):
    leads = event_frames["leads"].copy()
    leads.loc[2, "lead_id"] = " a"
    with pytest.raises(DataError, match=r"leads: lead ids 'a' and ' a' differ only by spaces"):
        validate_closed_loop(leads)


def test_duplicate_outcome(event_frames):
    outcomes = pd.concat([event_frames["outcomes"], event_frames["outcomes"].iloc[[0]]])
    with pytest.raises(DataError, match=r"outcomes: duplicate lead_id 'a'"):
        validate_closed_loop(event_frames["leads"], outcomes=outcomes)


def test_activity_for_unknown_lead(event_frames):
    acts = event_frames["activities"].copy()
    acts.loc[0, "lead_id"] = "zz"
    with pytest.raises(
        DataError, match=r"activities: 1 row\(s\) for lead_id\(s\) not in leads.*'zz'"
    ):
        validate_closed_loop(event_frames["leads"], acts)


def test_timestamps_that_do_not_parse(event_frames):
    acts = event_frames["activities"].copy()
    acts.loc[2, "occurred_at"] = "last tuesday"
    with pytest.raises(DataError, match=r"occurred_at: 1 value\(s\) do not parse.*'last tuesday'"):
        validate_closed_loop(event_frames["leads"], acts)


def test_numbers_are_not_timestamps(event_frames):
    leads = event_frames["leads"].assign(created_at=[1, 2, 3])
    with pytest.raises(DataError, match=r"created_at holds numbers, not timestamps"):
        validate_closed_loop(leads)


def test_day_first_dates_are_read_in_one_format_per_column(event_frames):
    leads = event_frames["leads"].assign(created_at=["25/01/2024", "03/02/2024", "13/02/2024"])
    data = validate_closed_loop(leads)
    assert data.leads["created_at"].dt.strftime("%Y-%m-%d").tolist() == [
        "2024-01-25",
        "2024-02-03",
        "2024-02-13",
    ]


@pytest.mark.parametrize(
    "written",
    [
        ["2024-03-01 10:15:00 UTC", "2024-03-02 09:00:00 UTC", "2024-03-11 00:00:00 UTC"],
        ["2024-03-01 10:15:00 ", " 2024-03-02 09:00:00", "2024-03-11"],
        ["2024/03/01 10:15", "2024/03/02 09:00", "2024/03/11 00:00"],
    ],
    ids=["bigquery-utc", "padded", "year-first-slashes"],
)
def test_year_first_dates_with_days_up_to_12_are_not_ambiguous(event_frames, written):
    """Year-first is never day-first: only DD/MM against MM/DD can be ambiguous."""
    leads = event_frames["leads"].assign(created_at=pd.array(written, dtype="str"))
    data = validate_closed_loop(leads)
    assert data.leads["created_at"].dt.strftime("%Y-%m-%d").tolist() == [
        "2024-03-01",
        "2024-03-02",
        "2024-03-11",
    ]


def test_dates_that_read_both_day_and_month_first_are_refused(event_frames):
    leads = event_frames["leads"].assign(created_at=["03/02/2024", "04/02/2024", "05/02/2024"])
    with pytest.raises(DataError, match=r"created_at: dates such as .* day-first and month-first"):
        validate_closed_loop(leads)


def test_observed_until_that_is_not_a_date(tmp_path, event_frames):
    with pytest.raises(DataError, match=r"observed_until 'yesterday' is not a date"):
        validate_closed_loop(**event_frames, observed_until="yesterday")
    write_tables(event_frames, tmp_path)
    (tmp_path / "manifest.json").write_text('{"observed_until": "end of march"}')
    with pytest.raises(DataError, match=r"manifest.json: observed_until 'end of march' is not"):
        load_closed_loop(tmp_path)
    with pytest.raises(DataError, match=r"manifest.json: observed_until"):
        list(iter_closed_loop_chunks(tmp_path))


def test_wrong_type_of_value(event_frames):
    acts = event_frames["activities"].assign(value=["a lot", None, None, 4])
    with pytest.raises(DataError, match=r"activities.value must be numeric but holds 'a lot'"):
        validate_closed_loop(event_frames["leads"], acts)


@pytest.mark.parametrize("infinite", [np.inf, "inf", "-Infinity"])
def test_infinite_activity_value_names_the_input_column(event_frames, infinite):
    acts = event_frames["activities"].assign(value=[infinite, None, None, 4])
    with pytest.raises(DataError, match=r"activities.value holds an infinite value in 1 row"):
        validate_closed_loop(event_frames["leads"], acts)


def test_unknown_activity_type(event_frames):
    acts = event_frames["activities"].copy()
    acts.loc[0, "activity_type"] = "sales_call"
    with pytest.raises(DataError, match=r"unknown type 'sales_call'.*Map each activity to one of"):
        validate_closed_loop(event_frames["leads"], acts)


def test_outcome_other_than_won_or_lost(event_frames):
    outs = event_frames["outcomes"].assign(outcome=["won", "maybe"])
    with pytest.raises(DataError, match=r"outcomes.outcome holds 'maybe', not won or lost"):
        validate_closed_loop(event_frames["leads"], outcomes=outs)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_folder_round_trip(tmp_path, event_frames, fmt):
    write_tables(event_frames, tmp_path, fmt=fmt)
    _assert_loaded_as_given(load_closed_loop(tmp_path), event_frames)


def _assert_loaded_as_given(data, event_frames) -> None:
    """Every table read back from a source holds what validating the frames gives."""
    expected = validate_closed_loop(**event_frames)
    for table in ("leads", "activities", "outcomes"):
        pd.testing.assert_frame_equal(
            getattr(data, table).reset_index(drop=True),
            getattr(expected, table).reset_index(drop=True),
            check_dtype=False,
            check_categorical=False,
        )
    assert data.observed_until == expected.observed_until


def test_duckdb_file_round_trip(tmp_path, event_frames):
    import duckdb

    path = tmp_path / "crm.duckdb"
    with duckdb.connect(str(path)) as con:
        for name, frame in event_frames.items():
            con.register("frame", frame)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
            con.unregister("frame")
    _assert_loaded_as_given(load_closed_loop(path), event_frames)


def test_duckdb_event_tables_absent_or_broken(tmp_path, event_frames):
    """A missing activities table means none were recorded; one that exists but cannot be
    read is an error, never a silently empty activity log."""
    import duckdb

    path = tmp_path / "crm.duckdb"
    with duckdb.connect(str(path)) as con:
        con.register("frame", event_frames["leads"])
        con.execute("CREATE TABLE leads AS SELECT * FROM frame")
        con.unregister("frame")
    data = load_closed_loop(path)
    assert data.activities.empty and data.outcomes.empty
    with duckdb.connect(str(path)) as con:
        con.register("frame", event_frames["activities"])
        con.execute("CREATE TABLE raw_activities AS SELECT * FROM frame")
        con.execute("CREATE VIEW activities AS SELECT * FROM raw_activities")
        con.execute("DROP TABLE raw_activities")
    with pytest.raises(DataError, match=r"table 'activities' cannot be read"):
        load_closed_loop(path)


def test_sql_url_round_trip(tmp_path, event_frames):
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    engine = sa.create_engine(url)
    for name, frame in event_frames.items():
        frame.to_sql(name, engine, index=False)
    engine.dispose()
    _assert_loaded_as_given(load_closed_loop(url), event_frames)


def test_csv_ids_and_country_are_read_as_written(tmp_path):
    (tmp_path / "leads.csv").write_text(
        "lead_id,created_at,country\n00123,2024-01-01,NA\nNA,2024-01-02,DE\n"
    )
    (tmp_path / "activities.csv").write_text(
        "lead_id,occurred_at,activity_type\n00123,2024-01-03,chat\nNA,2024-01-04,chat\n"
    )
    data = load_closed_loop(tmp_path)
    assert data.leads["lead_id"].tolist() == ["00123", "NA"]
    assert data.leads["country"].tolist() == ["NA", "DE"]  # Namibia, not missing
    assert data.activities["lead_id"].tolist() == ["00123", "NA"]


def _chunked(folder, chunk_leads):
    chunks = list(iter_closed_loop_chunks(folder, chunk_leads=chunk_leads))
    activities = pd.concat([c.activities for c in chunks], ignore_index=True)
    outcomes = pd.concat([c.outcomes for c in chunks], ignore_index=True)
    return chunks, activities, outcomes


def _rows(frame):
    return sorted(map(tuple, frame.astype("string").fillna("").to_numpy().tolist()))


def test_chunks_of_zero_padded_csv_ids_hold_every_activity(tmp_path):
    ids = [f"{i:05d}" for i in (7, 123, 456, 9000)]
    write_table(
        pd.DataFrame({"lead_id": ids, "created_at": ["2024-01-01"] * 4}), tmp_path / "leads.csv"
    )
    write_table(
        pd.DataFrame(
            {
                "lead_id": [ids[0], ids[1], ids[1], ids[2], ids[3]],
                "occurred_at": ["2024-01-03"] * 5,
                "activity_type": ["chat", "page_view", "form_fill", "chat", "web_visit"],
                "detail": [None, "pricing", "demo_request", "NA", None],
                "value": ["4", None, None, "NA", "30"],
            }
        ),
        tmp_path / "activities.csv",
    )
    write_table(
        pd.DataFrame({"lead_id": [ids[1]], "outcome": ["won"], "closed_at": ["2024-02-01"]}),
        tmp_path / "outcomes.csv",
    )
    whole = load_closed_loop(tmp_path)
    for chunk_leads in (1, 3, 100):
        chunks, activities, outcomes = _chunked(tmp_path, chunk_leads)
        assert [i for c in chunks for i in c.leads["lead_id"]] == ids
        assert _rows(activities) == _rows(whole.activities)
        assert _rows(outcomes) == _rows(whole.outcomes)


def test_chunks_normalise_float_ids_like_the_whole_loader(tmp_path):
    pd.DataFrame(
        {"lead_id": [1.0, 2.0, 10.0], "created_at": pd.to_datetime(["2024-01-01"] * 3)}
    ).to_parquet(tmp_path / "leads.parquet")
    pd.DataFrame(
        {
            "lead_id": [1, 2, 10, 10],
            "occurred_at": pd.to_datetime(["2024-01-03"] * 4),
            "activity_type": ["chat"] * 4,
        }
    ).to_parquet(tmp_path / "activities.parquet")
    whole = load_closed_loop(tmp_path)
    chunks, activities, _ = _chunked(tmp_path, 2)
    assert [c.leads["lead_id"].tolist() for c in chunks] == [["1", "10"], ["2"]]
    assert _rows(activities) == _rows(whole.activities)


@pytest.mark.parametrize(
    ("leads", "activity_ids", "message"),
    [
        (["a", "b", "b", "c"], ["b"], r"leads: duplicate lead_id 'b'"),
        (["a", "c"], ["b"], r"activities: 1 row\(s\) for lead_id\(s\) not in leads, e.g. 'b'"),
        (["a", "c"], ["a", None], r"activities.lead_id is empty in 1 row"),
    ],
)
def test_chunks_refuse_what_the_whole_loader_refuses(tmp_path, leads, activity_ids, message):
    pd.DataFrame(
        {"lead_id": leads, "created_at": pd.to_datetime(["2024-01-01"] * len(leads))}
    ).to_parquet(tmp_path / "leads.parquet")
    pd.DataFrame(
        {
            "lead_id": activity_ids,
            "occurred_at": pd.to_datetime(["2024-01-03"] * len(activity_ids)),
            "activity_type": ["chat"] * len(activity_ids),
        }
    ).to_parquet(tmp_path / "activities.parquet")
    with pytest.raises(DataError, match=message):
        load_closed_loop(tmp_path)
    with pytest.raises(DataError, match=message):
        list(iter_closed_loop_chunks(tmp_path, chunk_leads=2))


@pytest.fixture
def sources(tmp_path):
    """A DuckDB file, an SQLite database and a broken CSV, each with a table ``leads``."""
    import sqlite3

    import duckdb

    frame = pd.DataFrame({"lead_id": ["a", "b"], "x": [1, 2]})
    with duckdb.connect(str(tmp_path / "crm.duckdb")) as con:
        con.execute("CREATE TABLE leads AS SELECT * FROM frame")
    with sqlite3.connect(tmp_path / "crm.sqlite") as con:
        frame.to_sql("leads", con, index=False)
    (tmp_path / "bad.csv").write_text('id,x\n1,2\n3,"4\n')
    return {
        "duckdb": str(tmp_path / "crm.duckdb"),
        "sqlite": f"sqlite:///{tmp_path / 'crm.sqlite'}",
        "csv": str(tmp_path / "bad.csv"),
    }


@pytest.mark.parametrize(
    ("source", "table", "query", "message"),
    [
        ("duckdb", "leadz", None, r"has no table 'leadz' \(tables: leads\)"),
        ("sqlite", "leadz", None, r"database has no table 'leadz'"),
        ("duckdb", None, "SELECT lead_idd FROM leads", r"query failed: Binder Error"),
        ("sqlite", None, "SELECT nope FROM leads", r"query failed: .*no such column: nope"),
        ("csv", None, None, r"bad.csv cannot be read: .*EOF inside string"),
        ("postgres", "leads", None, r"cannot connect to the database"),
        ("postgres", None, None, r"^postgresql\+psycopg://u:\*\*\*@127.0.0.1:1/crm: no table"),
    ],
)
def test_both_readers_give_the_same_one_line_error(sources, source, table, query, message):
    location = sources.get(source, "postgresql+psycopg://u:secret@127.0.0.1:1/crm")
    with pytest.raises(DataError, match=message) as whole:
        read_table(location, table, query=query)
    with pytest.raises(DataError, match=message) as chunked:
        list(iter_table_chunks(location, table, query=query, chunk_rows=1))
    assert str(whole.value) == str(chunked.value)
    assert "\n" not in str(whole.value) and "secret" not in str(whole.value)


def test_sqlite_file_named_db_is_not_opened_with_duckdb(tmp_path, event_frames):
    import sqlite3

    with sqlite3.connect(tmp_path / "crm.db") as con:
        event_frames["leads"].to_sql("leads", con, index=False)
    with pytest.raises(DataError, match=r"crm.db is an SQLite database.*sqlite:///"):
        load_closed_loop(tmp_path / "crm.db")
    with pytest.raises(DataError, match=r"SQLite database"):
        list(iter_table_chunks(tmp_path / "crm.db", "leads"))


def test_sqlite_url_to_a_missing_file_creates_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'typo.db'}"
    with pytest.raises(DataError, match=r"typo.db does not exist. Check the path"):
        read_table(url, "leads")
    with pytest.raises(DataError, match=r"does not exist"):
        list(iter_table_chunks(url, "leads"))
    assert not (tmp_path / "typo.db").exists()


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_query_or_table_on_a_file_is_refused(tmp_path, suffix):
    path = write_table(pd.DataFrame({"id": ["a", "b"], "x": [1, 2]}), tmp_path / f"t.{suffix}")
    with pytest.raises(DataError, match=r"a query applies to DuckDB files and SQL databases"):
        read_table(path, query="SELECT * FROM t WHERE x > 1")
    with pytest.raises(DataError, match=r"a table applies to DuckDB files"):
        list(iter_table_chunks(path, "t"))


def test_write_table_under_a_file_is_a_one_line_error(tmp_path):
    (tmp_path / "notadir").write_text("x")
    with pytest.raises(DataError, match=r"cannot write .*notadir/f.parquet"):
        write_table(pd.DataFrame({"a": [1]}), tmp_path / "notadir" / "f.parquet")


def test_missing_leads_file(tmp_path):
    with pytest.raises(DataError, match=r"has no leads.parquet or leads.csv"):
        load_closed_loop(tmp_path)


def test_a_table_in_two_formats_is_an_error(tmp_path, event_frames):
    write_tables(event_frames, tmp_path, fmt="parquet")
    event_frames["leads"].head(5).to_csv(tmp_path / "leads.csv", index=False)
    with pytest.raises(DataError, match=r"holds both leads.parquet and leads.csv"):
        load_closed_loop(tmp_path)
    with pytest.raises(DataError, match=r"holds both leads.parquet and leads.csv"):
        list(iter_closed_loop_chunks(tmp_path))


def test_empty_file(tmp_path, event_frames):
    write_tables(event_frames, tmp_path, fmt="csv")
    (tmp_path / "activities.csv").write_text("")
    with pytest.raises(DataError, match=r"activities.csv is empty"):
        load_closed_loop(tmp_path)


@pytest.mark.parametrize("separator", [";", "\t"])
def test_a_table_not_separated_by_commas_is_named_as_such(tmp_path, event_frames, separator):
    """A European Excel export (``;``, decimal commas) read as one column would fail as a
    missing column; both readers, whole and sliced, name the separator instead."""
    write_tables(event_frames, tmp_path, fmt="csv")
    event_frames["activities"].to_csv(tmp_path / "activities.csv", sep=separator, index=False)
    with pytest.raises(DataError, match=r"activities.csv: columns are separated by .*not commas"):
        load_closed_loop(tmp_path)
    with pytest.raises(DataError, match=r"activities.csv: columns are separated by .*not commas"):
        list(iter_closed_loop_chunks(tmp_path))


def test_sliced_reader_names_a_missing_column_or_an_empty_file(tmp_path, event_frames):
    """Scoring reads a folder in slices: a renamed column or an empty file gets the same
    message as loading it whole, not a DuckDB binder error."""
    write_tables(event_frames, tmp_path, fmt="csv")
    renamed = event_frames["activities"].rename(columns={"occurred_at": "timestamp"})
    renamed.to_csv(tmp_path / "activities.csv", index=False)
    with pytest.raises(DataError, match=r"activities: missing column 'occurred_at'"):
        list(iter_closed_loop_chunks(tmp_path))
    (tmp_path / "activities.csv").write_text("")
    with pytest.raises(DataError, match=r"activities.csv is empty"):
        list(iter_closed_loop_chunks(tmp_path))


def test_sqlite_datetime_columns_with_two_utc_offsets_load(tmp_path, event_frames):
    """A CRM writes local times with their offset, +01:00 in winter and +02:00 in summer;
    in a column declared DATETIME SQLAlchemy's own parsing made the second offset NaT and the
    contract then called the column empty."""
    import sqlite3

    leads = event_frames["leads"].head(3)
    stamps = ["2025-01-15T09:00:00+01:00", "2025-07-15T09:00:00+02:00", "2025-07-16 07:00:00 UTC"]
    with sqlite3.connect(tmp_path / "crm.sqlite") as con:
        con.execute("CREATE TABLE leads (lead_id TEXT, created_at DATETIME)")
        rows = zip(leads["lead_id"], stamps, strict=True)
        con.executemany("INSERT INTO leads VALUES (?, ?)", rows)
    data = load_closed_loop(f"sqlite:///{tmp_path / 'crm.sqlite'}", tables=("leads",))
    expected = ["2025-01-15 08:00:00", "2025-07-15 07:00:00", "2025-07-16 07:00:00"]
    assert data.leads["created_at"].tolist() == [pd.Timestamp(t) for t in expected]


def test_sliced_reader_reads_day_first_dates_by_the_whole_file(tmp_path, event_frames):
    """The file says day-first (25/03); a slice holding only 01/04 and 03/04 must not be
    called ambiguous, nor read month-first: the format is decided once per file."""
    leads = event_frames["leads"].head(2).assign(lead_id=["A", "B"])
    leads.to_csv(tmp_path / "leads.csv", index=False)
    activities = pd.DataFrame(
        {
            "lead_id": ["A", "B", "B"],
            "occurred_at": ["25/03/2026 10:00:00", "01/04/2026 10:00:00", "03/04/2026 10:00:00"],
            "activity_type": ["web_visit", "web_visit", "page_view"],
        }
    )
    activities.to_csv(tmp_path / "activities.csv", index=False)
    whole = load_closed_loop(tmp_path).activities
    sliced = pd.concat([c.activities for c in iter_closed_loop_chunks(tmp_path, chunk_leads=1)])
    expected = pd.to_datetime(["2026-03-25 10:00", "2026-04-01 10:00", "2026-04-03 10:00"])
    assert whole["occurred_at"].tolist() == list(expected)
    assert sliced["occurred_at"].tolist() == list(expected)


def test_sliced_reader_takes_the_latest_moment_from_day_first_dates(tmp_path, event_frames):
    """Without a manifest, observed_until is the latest moment in the folder; a day-first
    activity log (25/05/2026 14:30) must count, as it does for the whole-folder reader."""
    leads = (
        event_frames["leads"]
        .head(2)
        .assign(lead_id=["A", "B"], created_at=["2026-01-05", "2026-01-06"])
    )
    leads.to_csv(tmp_path / "leads.csv", index=False)
    activities = pd.DataFrame(
        {
            "lead_id": ["A", "B"],
            "occurred_at": ["13/02/2026 10:00:00", "25/05/2026 14:30:00"],
            "activity_type": ["web_visit", "web_visit"],
        }
    )
    activities.to_csv(tmp_path / "activities.csv", index=False)
    whole = load_closed_loop(tmp_path)
    chunks = list(iter_closed_loop_chunks(tmp_path, chunk_leads=1))
    assert whole.observed_until == pd.Timestamp("2026-05-25 14:30")
    assert {c.observed_until for c in chunks} == {whole.observed_until}


def test_sqlite_tables_are_found_in_any_case(tmp_path, event_frames):
    """SQLite table names are case-insensitive: Leads, Activities and Outcomes load."""
    import sqlite3

    with sqlite3.connect(tmp_path / "crm.sqlite") as con:
        for name, frame in event_frames.items():
            frame.to_sql(name.capitalize(), con, index=False)
    data = load_closed_loop(f"sqlite:///{tmp_path / 'crm.sqlite'}")
    assert len(data.leads) == len(event_frames["leads"])
    assert len(data.activities) == len(event_frames["activities"])


def test_manifest_sets_observed_until(tmp_path, event_frames):
    write_tables(event_frames, tmp_path)
    (tmp_path / "manifest.json").write_text('{"observed_until": "2024-06-30T00:00:00"}')
    assert load_closed_loop(tmp_path).observed_until == pd.Timestamp("2024-06-30")
    assert load_closed_loop(tmp_path, observed_until="2024-05-01").observed_until == pd.Timestamp(
        "2024-05-01"
    )


def test_parquet_chunks_are_regrouped_to_the_chunk_size(tmp_path):
    from leadscore.io import iter_table_chunks

    frame = pd.DataFrame({"lead_id": [f"L{i}" for i in range(100)], "x": range(100)})
    frame.to_parquet(tmp_path / "t.parquet", row_group_size=7)
    chunks = list(iter_table_chunks(tmp_path / "t.parquet", chunk_rows=30))
    assert [len(c) for c in chunks] == [30, 30, 30, 10]
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), frame)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_chunks_of_a_folder_without_manifest_share_its_latest_time(tmp_path, event_frames, fmt):
    from leadscore.io import iter_closed_loop_chunks

    event_frames["outcomes"].loc[1, "closed_at"] = "2024-03-01T10:00:00+02:00"
    write_tables(event_frames, tmp_path, fmt=fmt)
    chunks = list(iter_closed_loop_chunks(tmp_path, chunk_leads=2))
    assert [len(c.leads) for c in chunks] == [2, 1]
    whole = load_closed_loop(tmp_path)
    assert {c.observed_until for c in chunks} == {whole.observed_until}
    assert whole.observed_until == pd.Timestamp("2024-03-01T08:00")
    assert sum(len(c.activities) for c in chunks) == len(whole.activities)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.none(),
            st.sampled_from(["page_view", " Page_View", "PAGE_VIEW ", "chat", "Chat", "", " "]),
            st.text(alphabet="aB _", max_size=4),
        ),
        max_size=30,
    ),
    st.booleans(),
)
def test_normalized_labels_equal_trimming_and_lowering_every_row(labels, as_category):
    """Working on the distinct labels gives what strip().lower() on every row gives."""
    values = pd.Series(labels, dtype="category" if as_category else "str")
    result = normalized_labels(values)
    expected = values.astype("string").str.strip().str.lower()
    assert [None if pd.isna(v) else v for v in pd.Series(result).astype("object")] == [
        None if pd.isna(v) else v for v in expected.astype("object")
    ]
    assert pd.Index(result.categories).is_unique


def _both_readers(folder):
    """What the whole loader and the sliced reader (slices of one lead) make of a folder."""
    whole = load_closed_loop(folder)
    slices = list(iter_closed_loop_chunks(folder, chunk_leads=1))
    return whole, slices


@pytest.mark.parametrize(
    "table, column", [("activities", "occurred_at"), ("outcomes", "closed_at")]
)
@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_timestamp_in_the_future_is_an_error_and_a_manifest_names_a_stray_one(
    tmp_path, event_frames, table, column, fmt, caplog
):
    """Taken from the data, the extract moment refuses a row in the future; declared in
    the manifest, the row is still held against the current time: a lone one (no more than
    0.1% of the rows, as for rows after the declared moment) is named in a warning by both
    readers, not passed without a word."""
    event_frames[table].loc[0, column] = "2062-06-01"
    write_tables(event_frames, tmp_path, fmt=fmt)
    expected = rf"{table}.{column}: 1 timestamp\(s\) after the current time .* e\.g\. 2062-06-01 "
    expected += r"for lead 'a'.*observed_until in the folder's manifest.json"
    with pytest.raises(DataError, match=expected):
        load_closed_loop(tmp_path)
    with pytest.raises(DataError, match=expected):
        list(iter_closed_loop_chunks(tmp_path, chunk_leads=1))
    (tmp_path / "manifest.json").write_text('{"observed_until": "2024-03-01"}')
    with caplog.at_level("WARNING", logger="leadscore.timestamps"):
        whole, slices = _both_readers(tmp_path)
    assert (
        {s.observed_until for s in slices}
        == {whole.observed_until}
        == {pd.Timestamp("2024-03-01 23:59:59.999999")}  # a day written alone: its end
    )
    warned = [r.getMessage() for r in caplog.records if "after the current time" in r.getMessage()]
    assert len(warned) == 2 and warned[0] == warned[1]
    assert f"{table}.{column}: 1 timestamp(s) after the current time" in warned[0]
    assert "e.g. 2062-06-01 for lead 'a'" in warned[0]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_many_timestamps_in_the_future_are_an_error_whatever_the_manifest_declares(
    tmp_path, event_frames, fmt
):
    """20% of a log moved to 2062 under a manifest had validated, and score had dropped the
    rows without a word: more than 0.1% of the rows after the current time are the error the
    data without a manifest gets, from both readers before any slice, and the fix no longer
    offers the manifest that did not help."""
    event_frames["activities"].loc[[0, 2], "occurred_at"] = ["2062-06-01", "2062-07-01"]
    write_tables(event_frames, tmp_path, fmt=fmt)
    with pytest.raises(DataError) as without:
        load_closed_loop(tmp_path)
    assert "manifest.json" not in str(without.value)
    assert "does not excuse so many" in str(without.value)
    (tmp_path / "manifest.json").write_text('{"observed_until": "2024-03-01"}')
    with pytest.raises(DataError) as whole:
        load_closed_loop(tmp_path)
    yielded = []
    chunks = iter_closed_loop_chunks(tmp_path, chunk_leads=1)
    with pytest.raises(DataError) as sliced:
        yielded.extend(chunks)
    assert yielded == []
    now = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC")
    assert now.sub("<now>", str(sliced.value)) == now.sub("<now>", str(whole.value))
    message = str(whole.value)
    assert message.startswith("activities.occurred_at: 2 timestamp(s) after the current time (")
    assert "e.g. 2062-07-01 for lead 'b'" in message
    assert "a manifest's observed_until does not excuse rows after the current time" in message
    assert "\n" not in message


def test_a_local_time_a_few_hours_ahead_of_utc_is_not_in_the_future(event_frames):
    now = pd.Timestamp("2024-03-01T02:00")
    data = validate_closed_loop(**event_frames, now=now)  # latest row 2024-03-01T00:00
    assert data.observed_until == pd.Timestamp("2024-03-01")
    with pytest.raises(DataError, match="after the current time"):
        validate_closed_loop(**event_frames, now=now - pd.Timedelta(days=2))


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_lone_latest_timestamp_that_sets_the_extract_moment_is_named(
    tmp_path, event_frames, fmt, caplog
):
    clean = tmp_path / "clean"
    write_tables(event_frames, clean, fmt=fmt)
    with caplog.at_level("WARNING"):
        _both_readers(clean)
    assert "observed_until" not in caplog.text
    event_frames["activities"].loc[2, "occurred_at"] = "2024-06-01"  # a typo for 2024-01-06
    write_tables(event_frames, tmp_path / "typo", fmt=fmt)
    caplog.clear()
    with caplog.at_level("WARNING"):
        whole, slices = _both_readers(tmp_path / "typo")
    assert {s.observed_until for s in slices} == {whole.observed_until}
    assert whole.observed_until == pd.Timestamp("2024-06-01")
    warned = [r.getMessage() for r in caplog.records if "observed_until" in r.getMessage()]
    assert len(warned) == 2 and warned[0] == warned[1]
    assert "activities.occurred_at 2024-06-01 00:00 of lead 'b'" in warned[0]
    assert "92 days after the rest" in warned[0] and "2024-03-01 00:00" in warned[0]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_an_outcome_closed_before_its_lead_was_created_is_an_error(tmp_path, event_frames, fmt):
    event_frames["leads"].loc[1, "created_at"] = "2024-01-05T15:30:00"
    event_frames["outcomes"]["closed_at"] = ["2023-12-01", "2024-01-05"]  # b: same day, no time
    with pytest.raises(DataError, match=r"1 outcome\(s\) closed before the day their lead was"):
        validate_closed_loop(**event_frames)
    event_frames["outcomes"]["closed_at"] = ["2024-02-01", "2024-01-05"]
    assert len(validate_closed_loop(**event_frames).outcomes) == 2
    event_frames["outcomes"]["closed_at"] = ["2023-12-01", "2024-01-04"]
    write_tables(event_frames, tmp_path, fmt=fmt)
    expected = (
        r"outcomes: 2 outcome\(s\) closed before the day their lead was created, e\.g\. lead "
        r"'a' created 2024-01-01 00:00, closed 2023-12-01 00:00\. Correct closed_at"
    )
    with pytest.raises(DataError, match=expected):
        load_closed_loop(tmp_path)
    with pytest.raises(DataError, match=expected):
        list(iter_closed_loop_chunks(tmp_path, chunk_leads=1))


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_activity_rows_repeated_exactly_are_counted_once_by_both_readers(
    tmp_path, event_frames, fmt, caplog
):
    acts = event_frames["activities"]
    event_frames["activities"] = pd.concat([acts, acts.iloc[[0, 3, 3]]], ignore_index=True)
    # the same moment with another detail or value is another action, not a repeat
    other = acts.iloc[[3]].assign(value=5)
    event_frames["activities"] = pd.concat([event_frames["activities"], other], ignore_index=True)
    write_tables(event_frames, tmp_path, fmt=fmt)
    with caplog.at_level("WARNING"):
        whole, slices = _both_readers(tmp_path)
    warned = [r.getMessage() for r in caplog.records if "repeat another row" in r.getMessage()]
    assert warned == [warned[0]] * 2
    assert warned[0].startswith("activities: 3 row(s) of 8 repeat another row exactly")
    assert sum(len(s.activities) for s in slices) == len(whole.activities) == 8


def test_decomposed_unicode_headers_are_read_composed(tmp_path):
    import unicodedata

    decomposed = unicodedata.normalize("NFD", "Städt Region")
    assert decomposed != "Städt Region"
    frame = pd.DataFrame({"lead_id": ["a", "b"], decomposed: ["x", "y"]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet")
    for path in (tmp_path / "t.csv", tmp_path / "t.parquet"):
        assert list(read_table(path).columns) == ["lead_id", "Städt Region"]
        assert list(next(iter_table_chunks(path)).columns) == ["lead_id", "Städt Region"]


def test_a_missing_column_names_the_closest_ones(event_frames):
    leads = event_frames["leads"].rename(columns={"created_at": "Created_At "})
    with pytest.raises(DataError, match=r"missing column 'created_at' \(closest: 'Created_At '\)"):
        validate_closed_loop(leads)


def test_the_declared_pandas_floor_has_the_str_dtype_the_contract_relies_on():
    """Text columns are pandas 3's ``str`` dtype throughout (on pandas 2.2 a missing previous
    stage became the text 'nan' and scoring failed), so pyproject.toml must not admit 2.x."""
    import tomllib
    from pathlib import Path

    from packaging.requirements import Requirement

    pyproject = Path(__file__).parents[1] / "pyproject.toml"
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    (pandas,) = [r for r in map(Requirement, deps) if r.name == "pandas"]
    assert not pandas.specifier.contains("2.2.3") and pandas.specifier.contains("3.0.0")
    assert ptypes.is_string_dtype(pd.Series(["a", None]).dtype)
    assert pd.Series(["a", None]).dtype == "str"


@pytest.mark.parametrize("dtype", ["str", object])
def test_known_ids_match_pandas_isin_whatever_the_text_storage(dtype) -> None:
    """The Arrow fast path of is_known_id (many chunks, missing ids, any index) gives exactly
    what pandas' isin gives."""
    rng = np.random.default_rng(5)
    pool = [f"L{i:05d}" for i in range(2_000)]
    known = pd.Index(pool[::3], dtype=dtype)
    parts = [pd.Series([*rng.choice(pool, 700).tolist(), None], dtype=dtype) for _ in range(3)]
    ids = pd.concat(parts)  # several Arrow chunks for "str"
    ids.index = rng.permutation(len(ids))
    found = is_known_id(ids, known)
    expected = ids.isin(known) & ids.notna()
    assert found.dtype == bool
    assert found.index.equals(ids.index)
    assert found.tolist() == expected.tolist()
    assert 0 < found.sum() < len(ids)
    assert is_known_id(ids.iloc[:0], known).empty
