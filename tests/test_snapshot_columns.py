"""Lead columns taken at the export, not at the as-of date, and the extract moment a folder's
manifest declares: two ways an export can hold what happened after the moments training
reads it at."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leadscore.config import TrainConfig
from leadscore.errors import DataError
from leadscore.features import build_event_examples
from leadscore.io import write_tables
from leadscore.leakage import (
    SNAPSHOT_CORRELATION,
    snapshot_lead_columns,
    snapshot_words,
    warn_snapshot_lead_columns,
)
from leadscore.schema import ClosedLoopData, validate_closed_loop
from leadscore.synth import SynthParams, generate_closed_loop
from leadscore.timestamps import (
    SYNTH_MANIFEST_KEYS,
    check_extract_moment_holds,
    check_manifest_moment,
    manifest_observed_until,
)

# --------------------------------------------------------------------------- names


def test_names_of_running_counts_and_last_touches_are_recognised():
    flagged = {
        "Total Web Activity": ("total", "web", "activity"),
        "TotalVisits": ("total", "visits"),
        "Page Views Per Visit": ("per", "page", "views", "visit"),
        "Total Time Spent on Website": ("total", "time", "website"),
        "hs_analytics_num_page_views": ("num", "page", "views"),
        "num_conversion_events": ("num", "conversion", "events"),
        "Emails Opened": ("opened", "emails"),
        "email_open_rate": ("rate", "email", "open"),
        "Last Touch Channel": ("last", "touch"),
        "recent_conversion_event": ("recent", "conversion", "event"),
        "Engagement Level": ("engagement",),
        "Lifetime Value": ("lifetime",),
        "days_since_last_visit": ("days since",),
        "Number of Webinars": ("number", "webinars"),
    }
    assert {name: snapshot_words(name) for name in flagged} == flagged


def test_names_known_at_creation_are_not_taken_for_running_counts():
    innocent = [
        "Number of Employees",
        "Phone Number",
        "Lead Number",
        "Last Name",
        "Total Revenue",
        "annual_revenue",
        "Tax Rate",
        "employee_count",
        "First Page Seen",
        "first_conversion_event",
        "Web Source",
        "Do Not Email",
        "Activity Index",
        "Business Activity",
        "Hot Water Heater Owner",
        "budget",
    ]
    assert {name: snapshot_words(name) for name in innocent if snapshot_words(name)} == {}


# --------------------------------------------------------------------------- data


def _synthetic(n_leads: int = 2500, seed: int = 4) -> ClosedLoopData:
    synthetic = generate_closed_loop(SynthParams(n_leads=n_leads, seed=seed))
    return validate_closed_loop(
        synthetic.leads,
        synthetic.activities,
        synthetic.outcomes,
        observed_until=synthetic.observed_until,
    )


def _with_lead_columns(data: ClosedLoopData, **columns: object) -> ClosedLoopData:
    return validate_closed_loop(
        data.leads.assign(**columns),
        data.activities,
        data.outcomes,
        observed_until=data.observed_until,
    )


def _counted(data: ClosedLoopData, rows: pd.Series) -> np.ndarray:
    """Each lead's count of the activity rows ``rows`` selects, in lead order."""
    counts = data.activities[rows].groupby("lead_id").size()
    return counts.reindex(data.leads["lead_id"]).fillna(0).to_numpy()


def test_activity_is_counted_up_to_and_after_each_as_of_date(event_frames):
    from leadscore.leakage import activity_counts

    data = validate_closed_loop(**event_frames)
    lead_id = np.array(["a", "a", "b", "c"])
    as_of = pd.to_datetime(["2024-01-02", "2024-01-10", "2024-01-01", "2024-02-02"]).to_numpy()
    counts = activity_counts(data.activities, lead_id, as_of)
    assert set(counts) == {"any", "page_view", "form_fill", "email_open", "chat"}
    upto, later = counts["any"]
    assert upto.tolist() == [1, 2, 0, 1]  # an activity at the as-of moment counts as known
    assert later.tolist() == [1, 0, 1, 0]
    assert [c.tolist() for c in counts["form_fill"]] == [[0, 1, 0, 0], [1, 0, 0, 0]]


@pytest.fixture(scope="module")
def synthetic() -> ClosedLoopData:
    return _synthetic()


def test_a_lifetime_counter_is_found_in_the_data_whatever_its_name(synthetic):
    """A count of every web visit the lead ever made, as the export wrote it: the name says
    nothing, the data does (it rises with the visits after each as-of date)."""
    acts = synthetic.activities
    web = acts["activity_type"].isin(["web_visit", "page_view"])
    created = acts["lead_id"].map(synthetic.leads.set_index("lead_id")["created_at"])
    first_day = web & (acts["occurred_at"] <= created + pd.Timedelta(days=1))
    rng = np.random.default_rng(0)
    data = _with_lead_columns(
        synthetic,
        web_x=_counted(synthetic, web),
        opens_x=_counted(synthetic, acts["activity_type"] == "email_open"),
        first_day_visits=_counted(synthetic, first_day),  # known a day after creation
        employees=rng.integers(1, 5000, len(synthetic.leads)),
    )
    examples = build_event_examples(data, TrainConfig().events)
    found = {c.feature: c for c in snapshot_lead_columns(examples, data)}
    assert set(found) == {"web_x", "opens_x"}
    assert found["web_x"].words == () and found["web_x"].correlation >= SNAPSHOT_CORRELATION
    assert found["opens_x"].activity == "email_open"
    assert "after the as-of date" in found["web_x"].reason()
    # without the log only names speak, and these say nothing
    assert snapshot_lead_columns(examples) == []
    # vouched for
    assert [c.feature for c in snapshot_lead_columns(examples, data, allow=["web_x"])] == [
        "opens_x"
    ]


def test_names_alone_are_warned_about_and_the_warning_says_leak_and_the_fix(synthetic, caplog):
    n = len(synthetic.leads)
    data = _with_lead_columns(
        synthetic,
        **{
            "Last Touch Channel": np.resize(["email", "web", "event"], n),
            "Lead Temperature": np.resize(["Hot", "Cold"], n),  # the post-contact check's
        },
    )
    examples = build_event_examples(data, TrainConfig().events)
    with caplog.at_level(logging.WARNING, logger="leadscore.leakage"):
        notes = warn_snapshot_lead_columns(examples, data)
    assert len(notes) == 1 and notes[0] in caplog.text
    assert (
        "'Last Touch Channel' (named like a running count or last touch: last, touch)" in notes[0]
    )
    assert "Lead Temperature" not in notes[0]  # warned about at loading as post-contact
    assert "leak" in notes[0] and "Drop them from the leads table" in notes[0]
    assert "value at its creation" in notes[0] and "leakage.allow" in notes[0]


def test_synthetic_data_and_flat_specs_raise_no_snapshot_warning(synthetic, shared_data_root):
    from leadscore.datasets import load_dataset

    examples = build_event_examples(synthetic, TrainConfig().events)
    assert snapshot_lead_columns(examples, synthetic) == []
    for name in ("x_education", "olist"):  # one row per lead, no as-of date
        assert snapshot_lead_columns(load_dataset(name, data_root=shared_data_root)) == []


def _write_counter_folder(folder: Path) -> None:
    """A synthetic event folder whose leads table holds a lifetime e-mail open counter."""
    data = _synthetic(n_leads=3000, seed=5)
    opens = _counted(data, data.activities["activity_type"] == "email_open")
    leads = data.leads.assign(**{"Email Opens": opens})
    write_tables({"leads": leads, "activities": data.activities, "outcomes": data.outcomes}, folder)


def test_train_warns_and_records_the_note(tmp_path, capsys):
    """A counter that does not give the outcome away (the guard lets it through) still
    leaks: train says so, and the run's notes keep it for the report."""
    from leadscore.cli import main

    _write_counter_folder(tmp_path / "crm")
    code = main(
        [
            "-q",
            "train",
            "--data",
            str(tmp_path / "crm"),
            "--no-mlflow",
            "--allow-worse",
            "--model-out",
            str(tmp_path / "model"),
            "--metrics-out",
            str(tmp_path / "metrics.json"),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "note: 1 lead column(s) look like values taken at the export" in out
    assert "'Email Opens'" in out
    # the model keeps the note too, where the report reads it for a run without MLflow
    saved = json.loads((tmp_path / "model" / "model.json").read_text())
    assert any("'Email Opens'" in note for note in saved["metadata"]["warnings"])


def test_tune_warns_and_records_the_note_as_train_does(tmp_path, capsys, caplog):
    """``tune`` trains and saves a model from the same data as ``train``: the counter is
    warned about, and the tuned model's notes keep it for the report."""
    from leadscore.cli import main

    _write_counter_folder(tmp_path / "crm")
    config = {"lightgbm": {"num_boost_round": 30, "early_stopping_rounds": 5}}
    (tmp_path / "fast.yaml").write_text(json.dumps(config))
    with caplog.at_level(logging.WARNING, logger="leadscore.leakage"):
        code = main(
            [
                "-q",
                "tune",
                "--data",
                str(tmp_path / "crm"),
                "--config",
                str(tmp_path / "fast.yaml"),
                "--trials",
                "1",
                "--storage",
                f"sqlite:///{tmp_path / 'optuna.db'}",
                "--no-mlflow",
                "--no-progress",
                "--allow-worse",
                "--model-out",
                str(tmp_path / "model"),
            ]
        )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "'Email Opens'" in caplog.text
    assert "note: 1 lead column(s) look like values taken at the export" in out
    saved = json.loads((tmp_path / "model" / "model.json").read_text())
    assert any("'Email Opens'" in note for note in saved["metadata"]["warnings"])


# --------------------------------------------------------------------------- manifest


def _folder(tmp_path, event_frames, manifest: object) -> str:
    write_tables(event_frames, tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return str(tmp_path)


def test_a_misspelt_manifest_key_is_an_error_and_other_keys_a_warning(
    tmp_path, event_frames, caplog
):
    """A key spelt like observed_until would leave the extract moment to the data: an
    error. A team's own notes (source, exported_by) are named in a warning, not refused."""
    folder = _folder(tmp_path, event_frames, {"source": "hubspot", "observed_until": "2024-06-30"})
    with caplog.at_level(logging.WARNING, logger="leadscore.timestamps"):
        assert manifest_observed_until(folder) == "2024-06-30T23:59:59.999999"  # the day's end
    assert any("'source' are not read" in r.getMessage() for r in caplog.records)
    folder = _folder(tmp_path, event_frames, {"observed_untill": "2024-06-30"})
    with pytest.raises(DataError, match=r"did you mean 'observed_until'\?"):
        manifest_observed_until(folder)
    with pytest.raises(DataError, match="not a JSON object"):
        _folder(tmp_path, event_frames, ["2024-06-30"])
        manifest_observed_until(folder)


def test_a_synth_manifest_is_read(tmp_path):
    from leadscore.synth import write_synthetic

    write_synthetic(SynthParams(n_leads=50, seed=1), tmp_path, fmt="csv", progress=False)
    written = json.loads((tmp_path / "manifest.json").read_text())
    assert set(written) <= {"observed_until", *SYNTH_MANIFEST_KEYS}
    assert manifest_observed_until(tmp_path) == written["observed_until"]


def test_a_declared_extract_moment_before_the_data_is_an_error(tmp_path, event_frames):
    """Activity after the moment the extract was taken cannot be: the manifest is wrong."""
    data = validate_closed_loop(**event_frames, observed_until="2024-01-04")
    folder = _folder(tmp_path, event_frames, {"observed_until": "2024-01-04T00:00:00"})
    with pytest.raises(DataError) as raised:
        check_manifest_moment(folder, manifest_observed_until(folder), data)
    message = str(raised.value)
    assert "manifest.json: observed_until 2024-01-04 00:00 is before 5 row(s)" in message
    assert "outcomes.closed_at 2024-03-01 00:00 for lead 'b'" in message
    assert "no earlier than 2024-03-01 00:00" in message and "\n" not in message
    # within a day of the declared moment: the day of the extract, as a date
    fine = validate_closed_loop(**event_frames, observed_until="2024-02-29T12:00")
    check_manifest_moment(
        _folder(tmp_path, event_frames, {"observed_until": "2024-02-29T12:00"}),
        "2024-02-29T12:00",
        fine,
    )


def test_a_stray_row_after_the_declared_moment_is_a_warning(event_frames, caplog):
    """A manifest is the documented way around a lone typo: named, not refused."""
    frames = {k: v.copy() for k, v in event_frames.items()}
    frames["activities"].loc[1, "occurred_at"] = "2024-05-01"
    data = validate_closed_loop(**frames, observed_until="2024-03-01")
    with caplog.at_level(logging.WARNING, logger="leadscore.timestamps"):
        check_extract_moment_holds(data, "manifest.json: observed_until")
    assert "is before 1 row(s) of the data (the latest: activities.occurred_at 2024-05-01" in (
        caplog.text
    )
    caplog.clear()
    frames["activities"].loc[1, "occurred_at"] = "2062-05-01"  # in the future: said apart
    data = validate_closed_loop(**frames, observed_until="2024-03-01")
    now = pd.Timestamp("2026-11-25 12:00")
    with caplog.at_level(logging.WARNING, logger="leadscore.timestamps"):
        check_extract_moment_holds(data, "manifest.json: observed_until", now=now)
    (warned,) = [r.getMessage() for r in caplog.records]
    assert warned.startswith(
        "activities.occurred_at: 1 timestamp(s) after the current time (2026-11-25 12:00 UTC), "
        "e.g. 2062-05-01 for lead 'a'; if they are typos, correct them"
    )
    assert "is before" not in warned  # not counted as late as well


def test_rows_in_the_future_are_held_whatever_moment_the_manifest_declares(event_frames):
    """A manifest had switched the future check off: 20% of a log dated 2062 validated. More
    than 0.1% of the rows after the current time (a day of slack) are an error, in the words
    of the check without a manifest, and are judged before the rows after the declared
    moment; the rows within the day of slack are neither."""
    frames = {k: v.copy() for k, v in event_frames.items()}
    frames["activities"].loc[[0, 2], "occurred_at"] = ["2062-05-01", "2062-06-01"]
    frames["outcomes"].loc[1, "closed_at"] = "2063-01-01"
    data = validate_closed_loop(**frames, observed_until="2024-01-04")
    now = pd.Timestamp("2026-11-25 12:00")
    with pytest.raises(DataError) as raised:
        check_extract_moment_holds(data, "manifest.json: observed_until", now=now)
    message = str(raised.value)
    assert message.startswith(
        "activities.occurred_at: 2 timestamp(s) after the current time (2026-11-25 12:00 UTC), "
        "e.g. 2062-06-01 for lead 'b', and 1 in outcomes.closed_at. Correct them"
    ), message
    # within the day of slack: not in the future (local time read as UTC), and the late-row
    # check names the declared moment as it did
    frames = {k: v.copy() for k, v in event_frames.items()}
    frames["activities"].loc[[0, 2], "occurred_at"] = "2026-11-26T10:00"
    data = validate_closed_loop(**frames, observed_until="2024-03-01")
    with pytest.raises(DataError, match="observed_until 2024-03-01 00:00 is before 2 row"):
        check_extract_moment_holds(data, "manifest.json: observed_until", now=now)


def test_a_manifest_moment_in_the_future_is_refused(tmp_path, event_frames):
    """No extract is taken in the future: every label window up to it would count as
    complete. A day of slack as for the rows, a day written alone held by its start (a local
    day starts up to 14 hours before UTC's), and a moment with an offset in UTC."""
    from leadscore.io import event_observed_until, load_closed_loop

    now = pd.Timestamp("2026-11-25 12:00")
    folder = _folder(tmp_path, event_frames, {"observed_until": "2099-01-01T00:00:00"})
    with pytest.raises(DataError) as raised:
        manifest_observed_until(folder, now=now)
    assert str(raised.value) == (
        f"{tmp_path / 'manifest.json'}: observed_until '2099-01-01T00:00:00' is in the future "
        "(it is 2026-11-25 12:00 UTC now). Give the moment the extract was taken, no later "
        "than now, or remove observed_until to take the latest timestamp of the data."
    )
    for reader in (load_closed_loop, _sliced, event_observed_until):
        with pytest.raises(DataError, match="observed_until '2099-01-01T00:00:00' is in the fut"):
            reader(folder)
    for fine in ("2026-11-26", "2026-11-26T12:00", "2026-11-27T01:00:00+14:00"):
        _folder(tmp_path, event_frames, {"observed_until": fine})
        assert manifest_observed_until(folder, now=now) is not None
    for refused in ("2026-11-27", "2026-11-26T12:01", "2026-11-26T08:00:00-05:00"):
        _folder(tmp_path, event_frames, {"observed_until": refused})
        with pytest.raises(DataError, match="is in the future"):
            manifest_observed_until(folder, now=now)


def test_a_day_in_the_manifest_is_read_as_its_end_by_every_reader(tmp_path, event_frames):
    """A manifest naming the day of the export ("2024-03-01") means an export that ran
    through that day: read as its midnight, score's default as-of left the day's outcomes,
    leads and activity out (a lead won that day was scored as open, without a word). The
    whole loader, the sliced one and the default as-of all take the end of the day; a moment
    written with its time stays as written."""
    from leadscore.io import event_observed_until, load_closed_loop

    end = pd.Timestamp("2024-03-01 23:59:59.999999")
    folder = _folder(tmp_path, event_frames, {"observed_until": "2024-03-01"})
    assert load_closed_loop(folder).observed_until == end
    assert {s.observed_until for s in _sliced(folder)} == {end}
    assert event_observed_until(folder) == end
    folder = _folder(tmp_path, event_frames, {"observed_until": "2024-03-01T00:00:00"})
    assert event_observed_until(folder) == pd.Timestamp("2024-03-01")


def test_a_moment_the_caller_gives_is_not_held_against_the_manifest(tmp_path, event_frames):
    data = validate_closed_loop(**event_frames, observed_until="2024-01-04")
    folder = _folder(tmp_path, event_frames, {"observed_until": "2024-06-30"})
    # the manifest's moment was not used: nothing to say
    check_manifest_moment(folder, "2024-06-30", data)
    check_manifest_moment(folder, None, data)


# ------------------------------------------------- through the loaders (io.py, validate.py)


def test_loading_a_folder_checks_its_manifest(tmp_path, event_frames):
    from leadscore.io import load_closed_loop

    folder = _folder(tmp_path, event_frames, {"observed_until": "2024-01-04"})
    with pytest.raises(DataError, match="is before 5 row"):
        load_closed_loop(folder)
    folder = _folder(tmp_path, event_frames, {"observed_untl": "2024-06-30"})
    with pytest.raises(DataError, match=r"unknown key 'observed_untl'"):
        load_closed_loop(folder)


def test_the_whole_loader_reads_the_manifest_once(tmp_path, event_frames, monkeypatch):
    """The moment checked is the one the data was read with: one read of manifest.json."""
    import leadscore.io
    import leadscore.timestamps
    from leadscore.io import load_closed_loop

    reads = []

    def counted(folder):
        reads.append(folder)
        return manifest_observed_until(folder)

    monkeypatch.setattr(leadscore.io, "manifest_observed_until", counted)
    monkeypatch.setattr(leadscore.timestamps, "manifest_observed_until", counted)
    folder = _folder(tmp_path, event_frames, {"observed_until": "2024-03-02"})
    assert load_closed_loop(folder).observed_until == pd.Timestamp("2024-03-02 23:59:59.999999")
    assert len(reads) == 1


def _sliced(folder: str, **kwargs: object) -> list[ClosedLoopData]:
    from leadscore.io import iter_closed_loop_chunks

    return list(iter_closed_loop_chunks(folder, chunk_leads=1, **kwargs))


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_the_sliced_reader_checks_the_manifest_before_its_first_slice(tmp_path, event_frames, fmt):
    """``score`` reads a folder slice by slice: a manifest the data contradicts is the same
    error there, raised before any slice is yielded (the late rows are all in the last slice
    here), and with ``open_at`` too, which leaves the closed leads unread."""
    from leadscore.io import iter_closed_loop_chunks, load_closed_loop

    write_tables(event_frames, tmp_path, fmt=fmt)
    (tmp_path / "manifest.json").write_text(json.dumps({"observed_until": "2024-01-04"}))
    with pytest.raises(DataError) as whole:
        load_closed_loop(tmp_path)
    yielded = []
    for kwargs in ({}, {"open_at": pd.Timestamp("2024-06-01")}):
        chunks = iter_closed_loop_chunks(tmp_path, chunk_leads=1, **kwargs)
        with pytest.raises(DataError) as sliced:
            yielded.extend(chunks)
        assert yielded == []
        assert str(sliced.value) == str(whole.value)
    assert "manifest.json: observed_until 2024-01-04 23:59 is before 5 row(s)" in str(whole.value)
    # a moment the caller gives is the caller's, as for the whole loader
    assert len(_sliced(str(tmp_path), observed_until="2024-01-04")) == 3


def test_the_sliced_reader_warns_about_a_stray_row_after_the_manifest(
    tmp_path, event_frames, caplog
):
    """Ignored activity types do not count, as the whole loader leaves them out."""
    from leadscore.io import load_closed_loop

    frames = {k: v.copy() for k, v in event_frames.items()}
    frames["activities"].loc[1, "occurred_at"] = "2024-05-01"
    sales = pd.DataFrame(
        {
            "lead_id": ["c", "c"],
            "occurred_at": ["2024-07-01", "2024-07-02"],
            "activity_type": ["Sales Call", "Sales Call"],
        }
    )
    frames["activities"] = pd.concat([frames["activities"], sales], ignore_index=True)
    frames["activity_types"] = pd.DataFrame(
        {"source_type": ["Sales Call"], "activity_type": ["ignore"]}
    )
    folder = _folder(tmp_path, frames, {"observed_until": "2024-03-01"})
    said = []
    for read in (load_closed_loop, _sliced):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="leadscore.timestamps"):
            read(folder)
        said.append([r.getMessage() for r in caplog.records if "is before" in r.getMessage()])
    assert said[0] == said[1] and len(said[0]) == 1
    assert (
        "is before 1 row(s) of the data (the latest: activities.occurred_at 2024-05-01"
        in (said[0][0])
    )


def test_validate_warns_about_a_snapshot_column(tmp_path, caplog):
    from leadscore.cli import main

    data = _synthetic(n_leads=1500, seed=6)
    web = data.activities["activity_type"].isin(["web_visit", "page_view"])
    leads = data.leads.assign(**{"Total Web Activity": _counted(data, web)})
    write_tables(
        {"leads": leads, "activities": data.activities, "outcomes": data.outcomes},
        tmp_path / "crm",
    )
    with caplog.at_level(logging.WARNING):
        main(["-q", "validate", "--data", str(tmp_path / "crm")])
    assert "'Total Web Activity' (named like a running count" in caplog.text
