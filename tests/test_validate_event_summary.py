"""``leadscore validate --data``: what its summary says of absent or misnamed tables."""

from __future__ import annotations

import pytest

from leadscore.cli import main
from leadscore.io import write_tables


def _validate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["-q", "validate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_says_the_outcomes_table_is_missing(tmp_path, event_frames, capsys, caplog):
    """ "0 closed" read as a company without closed deals; a misnamed file was the cause."""
    crm = tmp_path / "crm"
    write_tables(event_frames, crm, fmt="csv")
    (crm / "outcomes.csv").rename(crm / "closed_deals.csv")
    code, out, err = _validate(capsys, "--data", str(crm))
    assert code == 0, err
    first = out.splitlines()[0]
    assert first.startswith(f"{crm}: 3 leads, 4 activities, outcomes table missing (every lead")
    assert "closed" not in first
    assert "found activities.csv, closed_deals.csv, leads.csv): every lead is treated as open" in (
        caplog.text
    )
    assert out.splitlines()[-1].startswith(
        "note: train would stop here: crm has no outcomes table, so no lead has an outcome to "
        "learn from. Add outcomes.parquet or outcomes.csv"
    )


def test_validate_counts_the_closed_leads_of_an_outcomes_table(tmp_path, event_frames, capsys):
    write_tables(event_frames, tmp_path, fmt="csv")
    code, out, err = _validate(capsys, "--data", str(tmp_path))
    assert code == 0, err
    assert ": 3 leads, 4 activities, 2 closed (1 won), observed until" in out.splitlines()[0]


def test_validate_refuses_a_table_named_but_for_case(tmp_path, event_frames, capsys):
    crm = tmp_path / "crm"
    write_tables(event_frames, crm, fmt="csv")
    (crm / "outcomes.csv").rename(crm / "Outcomes.csv")
    code, out, err = _validate(capsys, "--data", str(crm))
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        f"leadscore validate: error: {crm / 'Outcomes.csv'}: table names are lower case. "
        "Rename it to outcomes.csv."
    ]
