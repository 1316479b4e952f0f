"""Writing event-form tables into a DuckDB file or an SQLite database, for reader tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd


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
