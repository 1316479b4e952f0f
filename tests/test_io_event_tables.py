"""Event-form tables as the readers find them: misnamed or missing tables, an empty activity
log, an SQLite file given as a path, ids that lost their leading zeros, and the default
extract moment computed without loading the activity log."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd
import pytest

from event_sources import (
    READER_IDS,
    READERS,
    read_sliced,
    read_whole,
    write_duckdb,
    write_sqlite,
)
from leadscore.errors import DataError
from leadscore.io import (
    event_observed_until,
    iter_closed_loop_chunks,
    load_closed_loop,
    write_tables,
)

#: An ``activity_types`` table of one rule, for the tests of how tables are found.
ACTIVITY_MAP = pd.DataFrame({"source_type": ["Web Visit"], "activity_type": ["web_visit"]})

EMPTY_LOG_FIX = "Export the activity log again; a company's log is never empty."


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# ----------------------------------------------------------------- misnamed or missing tables


@pytest.mark.parametrize(
    ("table", "written"),
    [
        ("outcomes", "Outcomes.csv"),
        ("leads", "LEADS.CSV"),
        ("activities", "Activities.parquet"),
        ("activity_types", "Activity_Types.csv"),
        ("activity_types", "ACTIVITY_TYPES.parquet"),
    ],
)
@pytest.mark.parametrize("read", READERS, ids=READER_IDS)
def test_a_table_file_named_but_for_case_is_refused(tmp_path, event_frames, table, written, read):
    """Only the exact name is read on a case-sensitive file system: ``Outcomes.csv`` made
    every lead open without a word. It is refused, not guessed, on every file system."""
    crm = tmp_path / "crm"
    write_tables(event_frames, crm, fmt="csv")
    (crm / f"{table}.csv").unlink(missing_ok=True)  # the optional map is not written
    frame = event_frames.get(table, ACTIVITY_MAP)
    if written.endswith(".parquet"):
        frame.to_parquet(crm / written, index=False)
    else:
        frame.to_csv(crm / written, index=False)
    with pytest.raises(DataError) as err:
        read(crm)
    assert str(err.value) == (
        f"{crm / written}: table names are lower case. Rename it to {written.lower()}."
    )


def test_a_table_file_beside_one_named_but_for_case_is_refused(tmp_path, event_frames):
    write_tables(event_frames, tmp_path, fmt="csv")
    event_frames["outcomes"].to_csv(tmp_path / "Outcomes.csv", index=False)
    names = sorted(p.name for p in tmp_path.iterdir())
    if "Outcomes.csv" not in names or "outcomes.csv" not in names:
        pytest.skip("a case-insensitive file system holds one of the two names only")
    with pytest.raises(DataError, match=r"holds both outcomes.csv and Outcomes.csv"):
        load_closed_loop(tmp_path)


@pytest.mark.parametrize("read", [read_whole, read_sliced], ids=["whole", "sliced"])
def test_a_missing_outcomes_table_is_warned_naming_what_is_there(
    tmp_path, event_frames, caplog, read
):
    crm = tmp_path / "crm"
    write_tables(event_frames, crm, fmt="csv")
    (crm / "outcomes.csv").rename(crm / "closed_deals.csv")
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        read(crm)
    assert _warnings(caplog) == [
        f"no outcomes table in {crm}/ (looked for outcomes.parquet, outcomes.csv; found "
        "activities.csv, closed_deals.csv, leads.csv): every lead is treated as open"
    ]


def test_absent_tables_are_said_on_the_data(tmp_path, event_frames):
    write_tables({"leads": event_frames["leads"]}, tmp_path, fmt="csv")
    assert load_closed_loop(tmp_path).absent_tables == ("activities", "outcomes")
    slices = list(iter_closed_loop_chunks(tmp_path, chunk_leads=2))
    assert {c.absent_tables for c in slices} == {("activities", "outcomes")}
    write_tables(event_frames, tmp_path, fmt="csv")
    assert load_closed_loop(tmp_path).absent_tables == ()


def test_a_missing_outcomes_table_of_a_database_is_warned(tmp_path, event_frames, caplog):
    frames = {
        "leads": event_frames["leads"],
        "activities": event_frames["activities"],
        "closed_deals": event_frames["outcomes"],
    }
    duck = write_duckdb(tmp_path / "crm.duckdb", frames)
    url = write_sqlite(tmp_path / "crm.sqlite", frames)
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        for source in (duck, url):
            assert load_closed_loop(source).absent_tables == ("outcomes",)
            slices = read_sliced(source)
            assert {s.absent_tables for s in slices} == {("outcomes",)}
    assert _warnings(caplog) == [
        f"no outcomes table in {where} (tables: activities, closed_deals, leads): every lead "
        "is treated as open"
        for where in (duck, duck, url, url)
    ]


# ------------------------------------------------------------------------ empty tables


def _header_only(frames: dict[str, pd.DataFrame], table: str) -> dict[str, pd.DataFrame]:
    return {**frames, table: frames[table].iloc[:0]}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("read", READERS, ids=READER_IDS)
def test_an_activity_log_without_rows_is_refused(tmp_path, event_frames, fmt, read):
    """A header and no rows scored every lead as inactive and overwrote the scores."""
    write_tables(_header_only(event_frames, "activities"), tmp_path, fmt=fmt)
    assert (tmp_path / f"activities.{fmt}").stat().st_size > 0
    with pytest.raises(DataError) as err:
        read(tmp_path)
    assert str(err.value) == f"{tmp_path / f'activities.{fmt}'} has no rows. {EMPTY_LOG_FIX}"


@pytest.mark.parametrize(
    "read", [read_whole, event_observed_until], ids=["whole", "observed_until"]
)
def test_an_activity_table_without_rows_in_a_database_is_refused(tmp_path, event_frames, read):
    frames = _header_only(event_frames, "activities")
    duck = write_duckdb(tmp_path / "crm.duckdb", frames)
    url = write_sqlite(tmp_path / "crm.sqlite", frames)
    for source in (duck, url):
        with pytest.raises(DataError) as err:
            read(source)
        assert str(err.value) == f"{source}: the activities table has no rows. {EMPTY_LOG_FIX}"


@pytest.mark.parametrize("read", [read_whole, read_sliced], ids=["whole", "sliced"])
def test_an_outcomes_table_without_rows_is_allowed_and_logged(tmp_path, event_frames, caplog, read):
    write_tables(_header_only(event_frames, "outcomes"), tmp_path, fmt="csv")
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        read(tmp_path)
    assert _warnings(caplog) == [
        f"{tmp_path / 'outcomes.csv'} has no rows: no deal has closed yet, every lead is "
        "treated as open"
    ]


def test_synthetic_data_never_has_an_empty_activity_log():
    from leadscore.synth import SynthParams, generate_closed_loop

    for seed in range(5):
        data = generate_closed_loop(SynthParams(n_leads=1, seed=seed, mean_activities=3.0))
        assert len(data.activities) > 0


# -------------------------------------------------------------- an SQLite file as a path


@pytest.mark.parametrize("name", ["crm.sqlite", "crm.sqlite3", "crm.db", "crm"])
def test_an_sqlite_file_names_its_url(tmp_path, event_frames, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    write_sqlite(tmp_path / name, event_frames)
    for source in (name, tmp_path / name):
        for read in (load_closed_loop, iter_closed_loop_chunks, event_observed_until):
            with pytest.raises(DataError) as err:
                list(read(source)) if read is iter_closed_loop_chunks else read(source)
            assert str(err.value) == (
                f"{source} is an SQLite database, not a folder of event tables or a DuckDB "
                f"file. Give it as a URL: --data sqlite:///{source}"
            )
    assert f"sqlite:////{str(tmp_path).lstrip('/')}/{name}" in str(err.value)


def test_a_missing_sqlite_file_names_the_url_too(tmp_path):
    with pytest.raises(DataError) as err:
        load_closed_loop(tmp_path / "crm.sqlite")
    assert str(err.value).endswith(f"Give it as a URL: --data sqlite:///{tmp_path}/crm.sqlite")


def test_validate_names_the_url_of_an_sqlite_file(tmp_path, event_frames, monkeypatch, capsys):
    from leadscore.cli import main

    monkeypatch.chdir(tmp_path)
    write_sqlite(tmp_path / "crm.sqlite", event_frames)
    assert main(["-q", "validate", "--data", "crm.sqlite"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.endswith("Give it as a URL: --data sqlite:///crm.sqlite")


# ------------------------------------------------------------ ids without leading zeros


def _zero_led(event_frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    ids = {"a": "000123", "b": "000456", "c": "000789"}
    frames = {name: frame.assign(lead_id=frame["lead_id"].map(ids)) for name, frame in
              event_frames.items()}  # fmt: skip
    frames["activities"]["lead_id"] = frames["activities"]["lead_id"].astype(int)
    return frames


@pytest.mark.parametrize("read", [read_whole, read_sliced], ids=["whole", "sliced"])
def test_activity_ids_that_lost_their_leading_zeros_are_named(tmp_path, event_frames, read):
    """Activities exported as numbers (123) against leads written as text (000123): every
    row is unknown, and "add those leads" would be the wrong fix."""
    write_tables(_zero_led(event_frames), tmp_path, fmt="csv")
    with pytest.raises(DataError) as err:
        read(tmp_path)
    message = str(err.value)
    assert message.startswith("activities: 4 row(s) for lead_id(s) not in leads, e.g. '")
    assert "; the ids in activities look like the leads' ids without their leading zeros (" in (
        message
    )
    assert any(f"('{n}' vs '000{n}')" in message for n in ("123", "456", "789"))
    assert message.endswith(
        "Export the ids as text in activities too, with their leading zeros as in leads."
    )


def test_a_few_unknown_ids_keep_the_plain_message(tmp_path, event_frames):
    frames = _zero_led(event_frames)
    frames["activities"]["lead_id"] = ["000123", "000123", "000456", "123"]
    write_tables(frames, tmp_path, fmt="csv")
    with pytest.raises(DataError) as err:
        load_closed_loop(tmp_path)
    assert str(err.value) == (
        "activities: 1 row(s) for lead_id(s) not in leads, e.g. '123'. Add those leads to "
        "the leads table or drop their rows from activities."
    )


# ------------------------------------------------------------ ids with spaces around them


@pytest.mark.parametrize(
    ("read", "fmt"),
    [(read, fmt) for read in (read_whole, read_sliced) for fmt in ("csv", "parquet", "sqlite")],
)
def test_ids_that_differ_only_by_spaces_are_named_and_not_stripped(
    tmp_path, event_frames, read, fmt
):
    """An export that pads ids (" 123" against "123") gets the fix that helps, the export,
    not "add those leads"; the ids are still matched as written, so it stays an error."""
    frames = {name: frame.copy() for name, frame in event_frames.items()}
    frames["activities"]["lead_id"] = [" a", " a", "b", "c"]
    source = (
        write_sqlite(tmp_path / "crm.sqlite", frames)
        if fmt == "sqlite"
        else write_tables(frames, tmp_path, fmt=fmt) and tmp_path
    )
    with pytest.raises(DataError) as err:
        read(source)
    assert str(err.value) == (
        "activities: 2 row(s) for lead_id(s) not in leads, e.g. ' a'; 1 of those id(s) differ "
        "from a lead's id only by spaces around them (' a' vs 'a'). Strip the spaces around "
        "the ids in the export (leadscore matches ids exactly as written)."
    )


def test_padded_lead_ids_are_named_too(tmp_path, event_frames):
    """The spaces may be the leads table's: "b " there, "b" in outcomes."""
    frames = {name: frame.copy() for name, frame in event_frames.items()}
    frames["leads"]["lead_id"] = ["a", "b ", "c"]
    frames["activities"]["lead_id"] = ["a", "a", "b ", "c"]
    write_tables(frames, tmp_path, fmt="csv")
    with pytest.raises(DataError, match=r"1 of those id\(s\) differ .* \('b' vs 'b '\)"):
        load_closed_loop(tmp_path)
    frames["outcomes"]["lead_id"] = ["a", "b "]
    write_tables(frames, tmp_path, fmt="csv")
    assert len(load_closed_loop(tmp_path).outcomes) == 2  # ids as written, spaces and all


# ------------------------------------------------------------- unknown activity types


def test_the_sliced_reader_counts_unknown_types_over_the_whole_log(tmp_path, event_frames):
    activities = event_frames["activities"]
    activities = pd.concat([activities] * 3, ignore_index=True)
    activities["activity_type"] = (
        ["Demo Requested"] * 5 + ["Webinar Attended"] * 4 + ["page_view"] * 3
    )
    write_tables({**event_frames, "activities": activities}, tmp_path, fmt="csv")
    messages = set()
    for read in (read_whole, read_sliced):
        with pytest.raises(DataError) as err:
            read(tmp_path)
        messages.add(str(err.value))
    (message,) = messages
    assert message.startswith(
        "activities.activity_type: unknown types: 'Demo Requested' (5 rows), "
        "'Webinar Attended' (4 rows). Map each activity to one of: web_visit, "
    )


# ------------------------------------------------------------------ event_observed_until


def _forms(tmp_path: Path, frames: dict[str, pd.DataFrame]) -> list[str | Path]:
    write_tables(frames, tmp_path / "csv", fmt="csv")
    write_tables(frames, tmp_path / "parquet", fmt="parquet")
    return [
        tmp_path / "csv",
        tmp_path / "parquet",
        write_duckdb(tmp_path / "crm.duckdb", frames),
        write_sqlite(tmp_path / "crm.sqlite", frames),
    ]


def test_event_observed_until_is_the_loaders_default(tmp_path, event_frames):
    """The latest timestamp is an activity (2024-03-01 is an outcome's; the activity below
    is later): report drift's default moment must not leave the activity log out."""
    frames = dict(event_frames)
    frames["activities"] = pd.concat(
        [
            frames["activities"],
            pd.DataFrame(
                {
                    "lead_id": ["c"],
                    "occurred_at": ["2024-03-05T10:30:00+02:00"],
                    "activity_type": ["web_visit"],
                    "value": [30],
                }
            ),
        ],
        ignore_index=True,
    )
    for source in _forms(tmp_path, frames):
        expected = load_closed_loop(source).observed_until
        assert expected == pd.Timestamp("2024-03-05T08:30:00")
        assert event_observed_until(source) == expected, source
        assert event_observed_until(str(source)) == expected


def test_event_observed_until_reads_text_dates_as_the_loader_does(tmp_path, event_frames):
    frames = dict(event_frames)
    frames["activities"] = frames["activities"].assign(
        occurred_at=["02/01/2024 09:00", "03/01/2024 10:00", "06/01/2024 11:00", "25/03/2024 14:00"]
    )
    frames["outcomes"] = frames["outcomes"].assign(
        closed_at=["2024-02-01 10:00 UTC", "2024-03-01 11:00:00 UTC"]
    )
    for source in _forms(tmp_path, frames):
        assert event_observed_until(source) == load_closed_loop(source).observed_until
        assert event_observed_until(source) == pd.Timestamp("2024-03-25T14:00")


def test_event_observed_until_without_optional_tables(tmp_path, event_frames):
    for source in _forms(tmp_path, {"leads": event_frames["leads"]}):
        assert event_observed_until(source) == pd.Timestamp("2024-02-01")


def test_event_observed_until_takes_the_manifest_first(tmp_path, event_frames):
    write_tables(event_frames, tmp_path)
    (tmp_path / "manifest.json").write_text('{"observed_until": "2024-06-30T02:00:00+02:00"}')
    assert event_observed_until(tmp_path) == load_closed_loop(tmp_path).observed_until
    assert event_observed_until(tmp_path) == pd.Timestamp("2024-06-30")


def test_event_observed_until_refuses_a_future_timestamp_as_the_loader_does(tmp_path, event_frames):
    frames = dict(event_frames)
    frames["activities"] = frames["activities"].assign(
        occurred_at=["2024-01-02", "2062-01-03", "2024-01-06", "2024-02-02"]
    )
    for source in _forms(tmp_path, frames):
        with pytest.raises(DataError) as loaded:
            load_closed_loop(source)
        with pytest.raises(DataError) as computed:
            event_observed_until(source)
        # the messages name the current minute, which may turn between the two calls
        now = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC")
        assert now.sub("<now>", str(computed.value)) == now.sub("<now>", str(loaded.value))
        assert "activities.occurred_at: 1 timestamp(s) after the current time" in str(loaded.value)


def test_event_observed_until_reads_a_view_of_a_duckdb_file(tmp_path, event_frames):
    import duckdb

    path = write_duckdb(
        tmp_path / "crm.duckdb", {**event_frames, "raw": event_frames["activities"]}
    )
    with duckdb.connect(str(path)) as con:
        con.execute("DROP TABLE activities")
        con.execute("CREATE VIEW activities AS SELECT * FROM raw")
    assert event_observed_until(path) == load_closed_loop(path).observed_until


def test_a_data_folder_that_does_not_exist_says_so_and_names_the_closest(tmp_path):
    """A misspelt --data is "does not exist (closest: 'crm')", not "is not a folder of event
    tables", which reads as if the folder were there but wrong."""
    from leadscore.cli import main

    (tmp_path / "crm").mkdir()
    for given, closest in ((tmp_path / "crmx", " (closest: 'crm')"), (tmp_path / "qqq", "")):
        with pytest.raises(DataError, match=re.escape(f"{given} does not exist{closest}.")):
            load_closed_loop(given)
        assert main(["validate", "--data", str(given)]) == 2


# ------------------------------------------------------------- a database read in slices


def test_a_database_is_read_in_slices_by_its_own_ids_and_timestamp_format(tmp_path):
    """An SQLite CRM with integer ids and day-first text timestamps, read one lead a slice:
    each slice's log is fetched by the integer ids (not compared as text), and a slice whose
    days are all 12 or less is parsed day-first, as the whole column says; the slices hold
    the rows of the whole reader, and a scoring read skips the activity of closed leads."""
    leads = pd.DataFrame(
        {"lead_id": [7, 11, 12], "created_at": ["2024-01-01", "2024-01-05", "2024-01-06"]}
    )
    activities = pd.DataFrame(
        {
            "lead_id": [7, 7, 11, 12],
            "occurred_at": ["25/02/2024 10:00", "03/02/2024 09:00", "02/03/2024 08:00",
                            "01/02/2024 11:00"],
            "activity_type": ["page_view", "form_fill", "email_open", "chat"],
        }
    )  # fmt: skip
    outcomes = pd.DataFrame({"lead_id": [7], "outcome": ["won"], "closed_at": ["2024-03-01"]})
    url = write_sqlite(
        tmp_path / "crm.sqlite", {"leads": leads, "activities": activities, "outcomes": outcomes}
    )
    whole = load_closed_loop(url)
    slices = list(iter_closed_loop_chunks(url, chunk_leads=1))
    assert len(slices) == 3
    sliced = pd.concat([s.activities for s in slices], ignore_index=True)
    key = ["lead_id", "occurred_at"]
    pd.testing.assert_frame_equal(
        sliced.sort_values(key).reset_index(drop=True),
        whole.activities.sort_values(key).reset_index(drop=True),
    )
    assert sliced.loc[sliced["lead_id"] == "11", "occurred_at"].tolist() == [
        pd.Timestamp("2024-03-02 08:00")
    ]
    closed: list[pd.Series] = []
    open_slices = list(
        iter_closed_loop_chunks(
            url, chunk_leads=1, open_at=pd.Timestamp("2024-03-05"), on_closed=closed.append
        )
    )
    assert [s.leads["lead_id"].tolist() for s in open_slices] == [["11"], ["12"]]
    assert pd.concat(closed).tolist() == ["7"]
    assert all((s.activities["lead_id"] != "7").all() for s in open_slices)


def test_a_duckdb_file_of_views_maps_an_export_named_otherwise(tmp_path, event_frames):
    """The README's recipe: a CRM export with its own column names, deal stages and form
    URLs reads, through a DuckDB file of views, as the same data as the contract's folder."""
    import duckdb

    frames = {k: v.copy() for k, v in event_frames.items()}
    frames["activities"].loc[1, "detail"] = "https://acme.io/forms/demo_request?utm=ads"
    export = tmp_path / "exports"
    export.mkdir()
    frames["leads"].rename(columns={"lead_id": "contact_id", "created_at": "createdate"}).to_csv(
        export / "contacts.csv", index=False
    )
    frames["activities"].rename(
        columns={"lead_id": "contact_id", "occurred_at": "timestamp", "activity_type": "event"}
    ).to_csv(export / "events.csv", index=False)
    deals = frames["outcomes"].rename(columns={"lead_id": "contact_id"})
    deals["stage"] = deals.pop("outcome").map({"won": "closedwon", "lost": "closedlost"})
    deals.to_csv(export / "deals.csv", index=False)
    path = tmp_path / "crm.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(f"""
        CREATE VIEW leads AS SELECT * EXCLUDE (contact_id, createdate),
            contact_id AS lead_id, createdate AS created_at
          FROM read_csv('{export / "contacts.csv"}', all_varchar = true);
        CREATE VIEW activities AS SELECT contact_id AS lead_id, "timestamp" AS occurred_at,
            event AS activity_type,
            CASE WHEN event = 'form_fill' THEN regexp_extract(detail, '/forms/([^/?#]+)', 1)
                 ELSE detail END AS detail, value
          FROM read_csv('{export / "events.csv"}', all_varchar = true);
        CREATE VIEW outcomes AS SELECT contact_id AS lead_id, closed_at,
            CASE stage WHEN 'closedwon' THEN 'won' WHEN 'closedlost' THEN 'lost' END AS outcome
          FROM read_csv('{export / "deals.csv"}', all_varchar = true);
        """)
    folder = tmp_path / "contract"
    write_tables(event_frames, folder, fmt="csv")
    viewed, expected = load_closed_loop(path), load_closed_loop(folder)
    for name in ("leads", "activities", "outcomes"):
        got = getattr(viewed, name)
        want = getattr(expected, name)
        pd.testing.assert_frame_equal(got[list(want.columns)], want, check_dtype=False)
    assert viewed.activities.loc[1, "detail"] == "demo_request"


@pytest.mark.parametrize(
    ("outcomes", "message"),
    [
        (
            {"lead_id": ["a", "a"], "outcome": ["won", "lost"]},
            "outcomes: duplicate lead_id 'a' (2 rows). Keep one row per lead in outcomes.",
        ),
        (
            {"lead_id": ["a", "b"], "outcome": ["Closed Won", "lost"]},
            "outcomes.outcome holds 'Closed Won', not won or lost (1 row). Write won or lost "
            "in outcomes.outcome ('Closed Won' as won); leave open leads out of outcomes.",
        ),
        (
            {"lead_id": ["a", "b"], "outcome": ["won", None]},
            "outcomes.outcome holds an empty value, not won or lost (1 row).",
        ),
    ],
    ids=["a lead both won and lost", "a CRM's stage", "blank"],
)
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_the_scorer_refuses_the_outcomes_training_refuses(
    tmp_path, event_frames, outcomes, message, fmt
):
    """The scorer reads no outcome of a lead it leaves out as closed, so these rows passed
    `score` unread while `validate` and `train` refused them: every reader gives one error."""
    frames = dict(event_frames)
    frames["outcomes"] = pd.DataFrame({**outcomes, "closed_at": ["2024-02-01", "2024-03-01"]})
    write_tables(frames, tmp_path, fmt=fmt)
    messages = []
    for read in (
        load_closed_loop,
        lambda p: list(iter_closed_loop_chunks(p, open_at=pd.Timestamp("2024-06-01"))),
    ):
        with pytest.raises(DataError) as err:
            read(tmp_path)
        messages.append(str(err.value))
    assert messages[0] == messages[1]
    assert messages[0].startswith(message)


def test_a_csv_cut_off_mid_line_is_named_as_such_by_every_reader(tmp_path, event_frames):
    """An export stopped early ends mid-line: the readers padded the line and blamed an empty
    column, or quoted DuckDB's parser options. A file that only lacks its final newline, or
    whose last line quotes a comma, is complete."""
    write_tables(event_frames, tmp_path, fmt="csv")
    log = tmp_path / "activities.csv"
    whole = log.read_bytes()
    log.write_bytes(whole.rstrip(b"\n"))  # complete, without the final newline
    assert len(load_closed_loop(tmp_path).activities) == len(event_frames["activities"])
    log.write_bytes(whole + b'c,2024-02-03,page_view,"pricing, annual",')
    assert len(load_closed_loop(tmp_path).activities) == len(event_frames["activities"]) + 1
    log.write_bytes(whole + b"c,2024-02-0")
    for read in READERS:
        with pytest.raises(DataError) as err:
            read(tmp_path)
        assert str(err.value) == (
            f"{log}: the last line holds 2 of the header's 5 columns and no line break: the file "
            "looks cut off. Export or copy it again, whole."
        ), read
