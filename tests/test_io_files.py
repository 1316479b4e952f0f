"""Files leadscore writes: atomic, and readable by whom a plain ``open()`` would allow."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from leadscore.commands.train import write_json
from leadscore.errors import DataError
from leadscore.io import write_atomically, write_table

resource = pytest.importorskip("resource", reason="file size limits are POSIX only")
signal = pytest.importorskip("signal")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask() -> Iterator[None]:
    """Run the test under umask 022 (the usual default), whatever the caller's was."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("name", ["scores.parquet", "scores.csv"])
def test_a_new_table_gets_the_mode_of_a_plain_open(tmp_path, umask, name):
    written = write_table(pd.DataFrame({"lead_id": ["a"], "score": [3]}), tmp_path / name)
    assert _mode(written) == 0o644


def test_a_new_file_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        written = write_atomically(tmp_path / "model.json", lambda tmp: tmp.write_text("{}"))
    finally:
        os.umask(old)
    assert _mode(written) == 0o640


def test_a_replaced_file_keeps_its_mode(tmp_path, umask):
    target = tmp_path / "report.html"
    target.write_text("old")
    target.chmod(0o664)
    write_atomically(target, lambda tmp: tmp.write_text("new"))
    assert (target.read_text(), _mode(target)) == ("new", 0o664)


def test_a_failed_write_leaves_no_temporary_file(tmp_path, umask):
    def fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(DataError, match="cannot write"):
        write_atomically(tmp_path / "t.csv", fail)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def file_size_limit() -> Iterator[int]:
    """Writes beyond 200 bytes fail with EFBIG (as a full disk fails a write half-way)."""
    limit = 200
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield limit
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def test_a_table_that_fails_half_way_leaves_the_older_file(tmp_path, file_size_limit):
    from leadscore.io import read_table

    target = tmp_path / "out.csv"  # a Parquet file, footer and all, is over the limit
    write_table(pd.DataFrame({"a": [1]}), target)
    before = target.read_bytes()
    with pytest.raises(DataError, match="cannot write"):
        write_table(pd.DataFrame({"a": range(10_000)}), target)
    assert target.read_bytes() == before
    assert read_table(target)["a"].tolist() == [1]
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_metrics_out_that_fails_half_way_leaves_the_older_file(tmp_path, file_size_limit):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"run_id": "old"}))
    big = {"roc_auc": 0.8, "notes": ["x" * 50] * 20}
    with pytest.raises(DataError, match=f"cannot write {path}"):
        write_json(path, big)
    assert json.loads(path.read_text()) == {"run_id": "old"}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
