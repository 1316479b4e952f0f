"""The scoring progress bar's end: every sliced reader learns its input's rows before the first
slice and counts the rows it reads, closed and not-yet-created leads included."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tqdm.auto import tqdm

from event_sources import write_duckdb, write_sqlite
from leadscore.features import build_features
from leadscore.io import ReadProgress, iter_closed_loop_chunks, iter_table_chunks, load_closed_loop
from leadscore.scoring import (
    _advance,
    _open_leads,
    closed_lead_ids,
    event_feature_chunks,
    flat_feature_chunks,
)
from leadscore.specs import parse_spec
from leadscore.synth import SynthParams, write_synthetic

ROWS = 23


def _table() -> pd.DataFrame:
    return pd.DataFrame(
        {"id": [f"L{i}" for i in range(ROWS)], "visits": np.arange(ROWS) % 5, "won": [""] * ROWS}
    )


def _source(kind: str, folder: Path) -> tuple[str, str | None, str | None]:
    """(source, table, query) of the same 23 rows written as ``kind``."""
    frame = _table()
    if kind == "csv":
        frame.to_csv(folder / "t.csv", index=False)
        return str(folder / "t.csv"), None, None
    if kind == "parquet":
        frame.to_parquet(folder / "t.parquet", row_group_size=5)
        return str(folder / "t.parquet"), None, None
    database, _, ending = kind.partition(" ")
    query = QUERIES.get(ending)
    if database == "duckdb":
        return str(write_duckdb(folder / "t.duckdb", {"t": frame})), "t", query
    return write_sqlite(folder / "t.db", {"t": frame}), "t", query


#: Queries as users write them: closed by ";", or by a line comment.
QUERIES = {
    "query;": "SELECT * FROM t WHERE visits >= 0;\n",
    "query--": "SELECT * FROM t WHERE visits >= 0  -- every lead",
}
KINDS = [
    "csv",
    "parquet",
    *(f"{db} {ending}".strip() for db in ("duckdb", "sqlite") for ending in ("", *QUERIES)),
]


@pytest.mark.parametrize("kind", KINDS)
def test_sliced_table_readers_know_their_rows_before_the_first_slice(kind, tmp_path):
    """The total is there with the first slice (of a query ending in ';' or a comment too), and
    the rows read add up to it slice by slice."""
    source, table, query = _source(kind, tmp_path)
    progress = ReadProgress()
    chunks = iter_table_chunks(source, table, query=query, chunk_rows=10, progress=progress)
    assert progress.total is None  # lazy: nothing is opened before the first slice
    seen = []
    for chunk in chunks:
        seen.append(len(chunk))
        assert progress.total == ROWS
        assert progress.read == sum(seen)
    assert seen == [10, 10, 3]


@pytest.mark.parametrize("kind", KINDS)
def test_without_a_bar_no_count_query_is_run(kind, tmp_path):
    """A count in DuckDB or a database runs the query once more, which no one needs when no
    bar is shown (run_scoring with progress off): the rows are read without a total. A file's
    total costs nothing and is still learnt."""
    source, table, query = _source(kind, tmp_path)
    progress = ReadProgress(count_rows=False)
    chunks = iter_table_chunks(source, table, query=query, chunk_rows=10, progress=progress)
    assert sum(len(c) for c in chunks) == progress.read == ROWS
    assert progress.total == (ROWS if kind in ("csv", "parquet") else None)


def test_csv_lines_are_an_upper_bound_where_a_field_breaks_a_line(tmp_path):
    """A quoted line break and a blank line make the line count exceed the rows; a last line
    without its line break is still counted."""
    path = tmp_path / "t.csv"
    path.write_text('id,note\nL1,"two\nlines"\n\nL2,plain\nL3,last')
    progress = ReadProgress()
    rows = sum(len(c) for c in iter_table_chunks(path, chunk_rows=2, progress=progress))
    assert rows == progress.read == 3
    assert progress.total == 5

    path.write_text("id,note\nL1,a\nL2,b")
    progress = ReadProgress()
    assert sum(len(c) for c in iter_table_chunks(path, progress=progress)) == 2
    assert progress.total == 2


def test_a_query_the_database_cannot_nest_is_read_without_a_total(tmp_path):
    """SQLite runs a PRAGMA but cannot count it as a subquery: the rows are still read, in
    the same transaction, and the bar has no end."""
    url = write_sqlite(tmp_path / "t.db", {"t": _table()})
    progress = ReadProgress()
    chunks = list(iter_table_chunks(url, query="PRAGMA table_info(t)", progress=progress))
    assert sum(len(c) for c in chunks) == progress.read == 3
    assert progress.total is None


def test_flat_chunks_count_closed_rows_as_read(tmp_path):
    """Rows with an outcome are read but not scored: the bar still reaches the table's end."""
    frame = _table().assign(won=["1", "", "0", ""] * 5 + ["", "", ""])
    frame.to_parquet(tmp_path / "leads.parquet", row_group_size=4)
    spec = parse_spec(
        {"name": "acme", "source": "leads.parquet", "id": "id",
         "label": {"column": "won", "won": ["1"], "lost": ["0"]}},
        base_dir=tmp_path,
    )  # fmt: skip
    chunks = flat_feature_chunks(spec, chunk_rows=6)
    scored = sum(len(ids) for _, ids in chunks)
    assert scored == ROWS - 10
    assert chunks.progress.total == chunks.progress.read == ROWS


@pytest.fixture(scope="module")
def event_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("progress") / "crm"
    write_synthetic(SynthParams(n_leads=600, seed=5, start="2025-06-01"), folder, progress=False)
    return folder


def test_every_source_is_read_for_its_open_leads_only_and_scores_as_when_loaded_whole(
    event_folder, tmp_path
):
    """A folder, a DuckDB file and an SQLite database are read for the leads open at the
    as-of only: features, ids and the closed leads' ids equal those of the data loaded whole.
    The bar counts the open leads, and the activity of closed leads is never read."""
    data = load_closed_loop(event_folder)
    frames = {"leads": data.leads, "activities": data.activities, "outcomes": data.outcomes}
    as_of = data.leads["created_at"].quantile(0.8)
    features = build_features(data, as_of).features
    closed_ids = closed_lead_ids(data, as_of)
    expected = build_features(_open_leads(data, closed_ids), as_of, features=features)
    expected_X = expected.X.assign(lead_id=expected.frame["lead_id"].to_numpy())
    expected_X = expected_X.sort_values("lead_id").reset_index(drop=True)
    sources = {
        "folder": event_folder,
        "duckdb": write_duckdb(tmp_path / "crm.duckdb", frames),
        "sqlite": write_sqlite(tmp_path / "crm.sqlite", frames),
    }
    for form, source in sources.items():
        closed: list[pd.Series] = []
        chunks = event_feature_chunks(
            source, as_of, chunk_leads=150, features=features, on_closed=closed.append
        )
        parts = list(chunks)
        X = pd.concat([x.assign(lead_id=ids.to_numpy()) for x, ids in parts])
        pd.testing.assert_frame_equal(
            X.sort_values("lead_id").reset_index(drop=True), expected_X, obj=form
        )
        assert sorted(pd.concat(closed).tolist()) == sorted(closed_ids.tolist()), form
        assert chunks.progress.total == chunks.progress.read == len(X) < len(data.leads), form
    assert len(closed_ids) > 0
    assert (data.leads["created_at"] > as_of).any()  # leads not created yet: never scored


def test_the_bar_moves_to_the_leads_read_out_of_the_total():
    """With a reader's progress the bar shows leads read against the total and the leads
    scored beside them; without one it counts leads scored, with no end."""
    bar = tqdm(file=io.StringIO(), unit="lead")
    read = ReadProgress(total=1000, read=400)
    _advance(bar, read, scored=250, scored_in_all=250)
    assert (bar.n, bar.total) == (400, 1000)
    read.read = 1000
    _advance(bar, read, scored=300, scored_in_all=550)
    assert (bar.n, bar.total) == (1000, 1000)
    assert "scored=550" in str(bar)

    bare = tqdm(file=io.StringIO(), unit="lead")
    _advance(bare, None, scored=250, scored_in_all=250)
    _advance(bare, None, scored=300, scored_in_all=550)
    assert (bare.n, bare.total) == (550, None)


def test_the_open_leads_are_named_before_any_slice_is_read(event_folder, tmp_path):
    """``on_open`` gets every open lead's id before the first slice is read (a scorer
    refuses an input that lost its outcomes before it builds a feature): the ids the slices
    then hold, from a folder and from a database alike."""
    data = load_closed_loop(event_folder)
    frames = {"leads": data.leads, "activities": data.activities, "outcomes": data.outcomes}
    as_of = data.leads["created_at"].quantile(0.8)
    for source in (event_folder, write_sqlite(tmp_path / "crm.sqlite", frames)):
        events: list[tuple[str, list[str]]] = []
        slices = iter_closed_loop_chunks(
            source,
            chunk_leads=150,
            open_at=as_of,
            on_open=lambda ids, events=events: events.append(("open", sorted(ids))),
        )
        for part in slices:
            events.append(("slice", part.leads["lead_id"].astype(str).tolist()))
        assert events[0][0] == "open" and all(kind == "slice" for kind, _ in events[1:])
        read = sorted(i for _, ids in events[1:] for i in ids)
        assert events[0][1] == read and 0 < len(read) < len(data.leads)
