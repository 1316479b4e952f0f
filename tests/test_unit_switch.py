"""An export that changed since training: a share written ``7`` then, ``7%`` now, or a
column that came empty.

Both read without error (``7%`` is 0.07 by design, so that ``43%`` and ``0.43`` in one column
are one share; an empty cell is "not given"), so every score would move without a word.
``score`` and ``report drift`` hold each numeric input's typical size against the test
fold's and warn, and ``score`` warns of an input empty for nearly every lead that the test
fold had; the same export in the same units stays silent. Trained once on a CRM-like CSV
through the CLI, as a user would.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from flat_tables import status_leads, train_status_model
from leadscore.cli import main

N_HISTORY = 1500
N_OPEN = 200


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained on open rates written as ``37.5``, and today's open leads written in
    the same units (``same.csv``) and as shares with a percent sign (``percent.csv``)."""
    root = tmp_path_factory.mktemp("unit_switch")
    history = status_leads(N_HISTORY, 0, "A", status=None, open_rate=True)
    history.to_csv(root / "history.csv", index=False)
    train_status_model(root, "history.csv", rounds=30)
    today = status_leads(N_OPEN, 1, "N", status="", open_rate=True)
    today.to_csv(root / "same.csv", index=False)
    today.assign(open_rate=today["open_rate"].map(lambda r: f"{r}%")).to_csv(
        root / "percent.csv", index=False
    )
    today.assign(visits="").to_csv(root / "no_visits.csv", index=False)
    return root


def _run(project: Path, command: list[str], given: str, tmp_path: Path) -> None:
    argv = [*command, "--spec", str(project / "spec.yaml"), "--model", str(project / "model")]
    argv += ["--input", str(project / given)]
    if command == ["score"]:
        argv += ["--target", str(tmp_path / "scored.duckdb"), "--no-progress"]
    else:
        argv += ["--out", str(tmp_path / "drift.csv")]
    assert main(argv) == 0


@pytest.mark.parametrize("command", [["score"], ["report", "drift"]])
def test_a_column_exported_in_other_units_is_warned_about(
    project, tmp_path, command, caplog, capsys
):
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        _run(project, command, "percent.csv", tmp_path)
    said = [m for m in caplog.messages if "other units" in m]
    assert len(said) == 1, caplog.messages
    # the same leads' medians, one set in percent points: about 100 times, read off bins
    times = re.match(r"'open_rate' is about ([\d,]+) times smaller", said[0])
    assert times and 80 <= int(times[1].replace(",", "")) <= 120, said[0]
    assert "visits" not in said[0]


@pytest.mark.parametrize("command", [["score"], ["report", "drift"]])
def test_the_same_units_are_not_warned_about(project, tmp_path, command, caplog, capsys):
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        _run(project, command, "same.csv", tmp_path)
    assert not [m for m in caplog.messages if "other units" in m or "is empty for" in m]


def test_a_column_that_came_empty_is_warned_about(project, tmp_path, caplog, capsys):
    """A column an export view dropped, or one filled in only when a lead closes: present,
    so no error, but empty for every open lead."""
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        _run(project, ["score"], "no_visits.csv", tmp_path)
    (said,) = [m for m in caplog.messages if "is empty for" in m]
    assert said.startswith(f"'visits' is empty for all {N_OPEN} leads scored, but was given for")
