"""The event-form data contract: typing, and one test per validation error."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pandas.api import types as ptypes

from leadscore.errors import DataError
from leadscore.io import load_closed_loop, write_tables
from leadscore.schema import normalized_labels, validate_closed_loop


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


def test_empty_table(event_frames):
    with pytest.raises(DataError, match=r"leads is empty"):
        validate_closed_loop(event_frames["leads"].iloc[0:0])


def test_duplicate_lead_id(event_frames):
    leads = pd.concat([event_frames["leads"], event_frames["leads"].iloc[[1]]])
    with pytest.raises(DataError, match=r"leads: duplicate lead_id 'b'.*one row per lead"):
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


def test_wrong_type_of_value(event_frames):
    acts = event_frames["activities"].assign(value=["a lot", None, None, 4])
    with pytest.raises(DataError, match=r"activities.value must be numeric but holds 'a lot'"):
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
    data = load_closed_loop(tmp_path)
    expected = validate_closed_loop(**event_frames)
    pd.testing.assert_frame_equal(data.leads, expected.leads, check_dtype=False)
    pd.testing.assert_frame_equal(data.activities, expected.activities, check_categorical=False)
    assert data.observed_until == expected.observed_until


def test_duckdb_file_round_trip(tmp_path, event_frames):
    import duckdb

    path = tmp_path / "crm.duckdb"
    with duckdb.connect(str(path)) as con:
        for name, frame in event_frames.items():
            con.register("frame", frame)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
            con.unregister("frame")
    data = load_closed_loop(path)
    assert data.leads["lead_id"].tolist() == ["a", "b", "c"]
    assert len(data.activities) == 4 and len(data.outcomes) == 2


def test_sql_url_round_trip(tmp_path, event_frames):
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    engine = sa.create_engine(url)
    for name, frame in event_frames.items():
        frame.to_sql(name, engine, index=False)
    engine.dispose()
    data = load_closed_loop(url)
    assert data.outcomes["outcome"].tolist() == ["won", "lost"]


def test_missing_leads_file(tmp_path):
    with pytest.raises(DataError, match=r"has no leads.parquet or leads.csv"):
        load_closed_loop(tmp_path)


def test_empty_file(tmp_path, event_frames):
    write_tables(event_frames, tmp_path, fmt="csv")
    (tmp_path / "activities.csv").write_text("")
    with pytest.raises(DataError, match=r"activities.csv is empty"):
        load_closed_loop(tmp_path)


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
