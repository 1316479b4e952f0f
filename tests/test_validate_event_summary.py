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


def test_validate_says_what_the_activity_types_table_did(tmp_path, event_frames, capsys):
    """The counts are of the mapped log: the summary says a map made it and what it left out."""
    import pandas as pd

    activities = pd.concat(
        [
            event_frames["activities"].assign(
                activity_type=["Pricing Page Visit", "Demo Request Form", "email_open", "chat"],
                detail=["/pricing", None, None, None],
            ),
            pd.DataFrame(
                {
                    "lead_id": ["a", "b", "b"],
                    "occurred_at": ["2024-01-04", "2024-01-07", "2024-01-08"],
                    "activity_type": ["Sales Call Logged", "Sales Call Logged", "Note"],
                }
            ),
        ],
        ignore_index=True,
    )
    activity_types = pd.DataFrame(
        {
            "source_type": ["Pricing Page Visit", "Demo Request Form", "Sales Call Logged", "Note"],
            "activity_type": ["page_view", "form_fill", "ignore", "ignore"],
            "detail": ["pricing", "demo_request", None, None],
        }
    )
    frames = {**event_frames, "activities": activities, "activity_types": activity_types}
    write_tables(frames, tmp_path, fmt="csv")
    code, out, err = _validate(capsys, "--data", str(tmp_path))
    assert code == 0, err
    lines = out.splitlines()
    assert ": 3 leads, 4 activities, 2 closed (1 won), observed until 2024-03-01" in lines[0]
    assert lines[1] == (
        f"  activity types: {tmp_path / 'activity_types.csv'} maps 2 source type(s) (2 rows), "
        "ignores 3 rows: 'Sales Call Logged' (2 rows), 'Note' (1 row)"
    )


def test_validate_says_nothing_of_an_absent_activity_types_table(tmp_path, event_frames, capsys):
    write_tables(event_frames, tmp_path, fmt="csv")
    code, out, err = _validate(capsys, "--data", str(tmp_path))
    assert code == 0, err
    assert not [line for line in out.splitlines() if line.startswith("  activity types:")]
    assert "activity_types.csv" not in err and "activity_types table" not in err


def test_validate_ends_in_an_answer_when_train_would_take_the_data(tmp_path, capsys):
    """A run that printed only facts left the user to guess: its last line says train would
    take the data, with how many examples and wins (event data holds a lead at each as-of)."""
    from leadscore.synth import SynthParams, write_synthetic

    write_synthetic(SynthParams(n_leads=3000, seed=2), tmp_path / "crm", progress=False)
    code, out, err = _validate(capsys, "--data", str(tmp_path / "crm"))
    assert code == 0, err
    last = out.splitlines()[-1]
    assert last.startswith("ok: train would take these ") and " examples (" in last, out
    assert last.endswith(" won) as they are")


def test_validate_counts_categories_as_the_model_holds_them(tmp_path, capsys):
    """A CRM export spells one industry several ways (``Retail``, ``retail``, ``RETAIL``);
    the model holds each once, so "24 categories" above the warning that merges them
    overstated it: the count is of categories, with the spellings beside it."""
    import numpy as np
    import pandas as pd

    from flat_tables import write_flat_spec

    rng = np.random.default_rng(4)
    n = 240
    industries = rng.choice(["Retail", "Software", "Health Care"], n).astype(object)
    noisy = rng.uniform(size=n) < 0.2
    industries[noisy] = [
        rng.choice([v.lower(), v.upper(), v.replace(" ", "  ")]) for v in industries[noisy]
    ]
    regions = rng.choice(["EMEA", "APAC"], n)  # one spelling each: shown as before
    frame = pd.DataFrame({"Industry": industries, "Region": regions, "Visits": rng.poisson(3, n)})
    spec = write_flat_spec(tmp_path, frame, rng.uniform(size=n) < 0.3)
    code, out, err = _validate(capsys, "--spec", str(spec))
    assert code == 0, err
    categories = len({" ".join(v.split()).casefold() for v in industries})
    spellings = len(set(industries))
    assert spellings > categories  # the data holds what the test is about
    assert f"Industry ({categories} categories, {spellings} spellings)" in out
    assert f"Region ({len(set(regions))} categories)" in out
