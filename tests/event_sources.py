"""Event-form sources for reader tests: tables written into a DuckDB file or an SQLite
database, and the three readers every source must agree on."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from leadscore.io import event_observed_until, iter_closed_loop_chunks, load_closed_loop


def write_duckdb(path: Path, frames: dict[str, pd.DataFrame]) -> Path:
    """A DuckDB file at ``path`` holding one table per frame, named as its key."""
    import duckdb

    with duckdb.connect(str(path)) as con:
        for name, frame in frames.items():
            con.register("frame", frame)
            con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM frame')
            con.unregister("frame")
    return path


def write_sqlite(path: Path, frames: dict[str, pd.DataFrame]) -> str:
    """An SQLite database at ``path`` holding one table per frame; its ``sqlite:///`` URL."""
    with sqlite3.connect(path) as con:
        for name, frame in frames.items():
            frame.to_sql(name, con, index=False)
    return f"sqlite:///{path}"


def read_whole(source: str | Path) -> object:
    return load_closed_loop(source)


def read_sliced(source: str | Path) -> object:
    """The sliced reader, two leads a slice, so that every source is read in several slices."""
    return list(iter_closed_loop_chunks(source, chunk_leads=2))


#: Whole reader, sliced reader and the extract moment: each must refuse what the others do.
READERS: list[Callable[[str | Path], object]] = [read_whole, read_sliced, event_observed_until]
READER_IDS = ["whole", "sliced", "observed_until"]
