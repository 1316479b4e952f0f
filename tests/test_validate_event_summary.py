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


def test_validate_warns_once_about_form_names_it_does_not_know(tmp_path, capsys, caplog):
    """validate reads the log twice (the features as of the data's end, then train's
    examples) and each read warned about the same unknown forms: the line came twice and the
    verdict asked to read "2 warning(s)"."""
    import logging

    import pandas as pd

    from leadscore.synth import SynthParams, write_synthetic

    crm = tmp_path / "crm"
    write_synthetic(SynthParams(n_leads=3000, seed=2), crm, progress=False)
    log = pd.read_parquet(crm / "activities.parquet")
    forms = log["activity_type"] == "form_fill"
    log["detail"] = log["detail"].astype(object)
    log.loc[forms, "detail"] = "Gated Asset XYZ"
    log.to_parquet(crm / "activities.parquet")
    code, out, err = _validate(capsys, "--data", str(crm))
    assert code == 0, err
    said = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and "name no form leadscore knows" in r.getMessage()
    ]
    assert len(said) == 1 and "'gated asset xyz'" in said[0]
    assert out.splitlines()[-1].endswith("; read the 1 warning(s) above first")


def _crm_without(tmp_path, *types: str):
    """Synthetic event data whose activity log holds none of ``types``."""
    import pandas as pd

    from leadscore.synth import SynthParams, write_synthetic

    crm = tmp_path / "crm"
    write_synthetic(SynthParams(n_leads=3000, seed=2), crm, progress=False)
    log = pd.read_parquet(crm / "activities.parquet")
    log[~log["activity_type"].isin(types)].to_parquet(crm / "activities.parquet")
    return crm


def _warned(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    import logging

    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and text in r.getMessage()
    ]


def test_validate_names_the_feature_families_a_log_without_their_types_leaves_empty(
    tmp_path, capsys, caplog
):
    """A CRM export without e-mail sends left the e-mail rates missing for every lead, one
    without web sessions every visit feature zero, and validate said nothing: one line per
    family names the type the log lacks and the features it empties."""
    crm = _crm_without(tmp_path, "email_sent", "web_visit")
    code, out, err = _validate(capsys, "--data", str(crm))
    assert code == 0, err
    (emails,) = _warned(caplog, "holds no email_sent rows")
    assert emails.startswith(
        "The activity log holds no email_sent rows: the e-mail open and click rates will be "
        "missing for every lead"
    )
    assert "email_open_rate_90d, email_click_rate_90d" in emails
    assert "map your sends to email_sent if the CRM logs them" in emails
    (visits,) = _warned(caplog, "holds no web_visit rows")
    assert "website visit and time-on-site features will be zero for every lead" in visits
    assert "web_visits_7d, web_visits_30d, web_visits_90d, web_seconds_30d" in visits
    assert len(_warned(caplog, "The activity log holds no")) == 2
    assert out.splitlines()[-1].endswith("; read the 2 warning(s) above first")


def test_validate_names_no_family_of_a_log_holding_every_type(tmp_path, capsys, caplog):
    crm = _crm_without(tmp_path)
    code, _, err = _validate(capsys, "--data", str(crm))
    assert code == 0, err
    assert _warned(caplog, "The activity log holds no") == []


def test_a_channel_the_company_may_not_offer_is_no_empty_family(tmp_path, capsys, caplog):
    """No chats, webinars or trial is usually a company that offers none: no warning."""
    crm = _crm_without(tmp_path, "trial_signup", "trial_usage", "chat", "webinar")
    code, _, err = _validate(capsys, "--data", str(crm))
    assert code == 0, err
    assert _warned(caplog, "The activity log holds no") == []


def test_every_empty_family_names_features_of_the_catalogue():
    """The families name features by stem: each must still name some, and only real ones."""
    from leadscore.commands.validate import EMPTY_FAMILIES, family_features
    from leadscore.features import feature_catalogue
    from leadscore.schema import ACTIVITY_TYPES

    names = {f.name for f in feature_catalogue()}
    for types, _, stems, _ in EMPTY_FAMILIES:
        assert set(types) <= set(ACTIVITY_TYPES)
        found = family_features(stems)
        assert found and set(found) <= names
        for stem in stems:
            assert any(n == stem or n.startswith(f"{stem}_") for n in found), stem
