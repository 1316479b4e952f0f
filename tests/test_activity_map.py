"""The optional ``activity_types`` table: a company's own activity vocabulary mapped onto
leadscore's, read from the same source as the log by every reader (whole, sliced, the default
extract moment), with the same features as the same data written in leadscore's vocabulary."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from event_sources import READER_IDS, READERS, read_whole, write_duckdb, write_sqlite
from leadscore.errors import DataError
from leadscore.features import build_features
from leadscore.io import (
    event_observed_until,
    iter_closed_loop_chunks,
    load_closed_loop,
    write_tables,
)
from leadscore.schema import (
    ACTIVITY_TYPES,
    ClosedLoopData,
    validate_activity_type_map,
    validate_closed_loop,
)
from leadscore.scoring import event_feature_chunks

TYPES = ", ".join(ACTIVITY_TYPES)

#: The company's map, as a CRM admin would write it: case and spaces of its own, a type of
#: leadscore's remapped (its "email_sent" are the sales team's e-mails), a rule for a type
#: this extract does not hold.
MAP = pd.DataFrame(
    {
        "source_type": [
            "Pricing Page Visit",
            "demo page visit ",
            "Page Viewed",
            "Demo Request Form",
            "Form Submitted",
            "Email Opened",
            "Sales Call Logged",
            "Note",
            "email_sent",
            "Webinar Attended",
        ],
        "activity_type": [
            "page_view",
            "page_view",
            "page_view",
            "form_fill",
            "Form_Fill",
            "email_open",
            "ignore",
            "IGNORE",
            "ignore",
            "webinar",
        ],
        "detail": [
            "pricing",
            "demo",
            None,
            "demo_request",
            None,
            None,
            None,
            None,
            None,
            "attended",
        ],
    }
)

#: leadscore's (type, detail) -> the company's (type, detail): the detail is the company's
#: where the map sets it, and the same text where it keeps the log's own.
COMPANY = {
    ("page_view", "pricing"): ("Pricing Page Visit", "/pricing?plan=team"),
    ("page_view", "demo"): ("Demo Page Visit", None),
    ("page_view", "blog"): ("Page Viewed", "Blog "),
    ("form_fill", "demo_request"): ("Demo Request Form", "Form #12"),
    ("form_fill", "newsletter"): ("Form Submitted", "Newsletter"),
    ("email_open", "March News"): ("Email Opened", "March News"),
    ("web_visit", None): ("web_visit", None),
    ("chat", None): ("Chat ", None),
}

AS_OF = pd.Timestamp("2024-06-01")


def _canonical(seed: int = 7, n_leads: int = 40) -> dict[str, pd.DataFrame]:
    """Event data in leadscore's vocabulary: leads, a varied log (every (type, detail) of
    :data:`COMPANY`), outcomes for some leads."""
    rng = np.random.default_rng(seed)
    ids = [f"L{i:03d}" for i in range(n_leads)]
    created = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 90, n_leads), "D")
    leads = pd.DataFrame(
        {
            "lead_id": ids,
            "created_at": created.strftime("%Y-%m-%dT%H:%M:%S"),
            "source": rng.choice(["organic", "paid_search", "referral"], n_leads),
        }
    )
    kinds = list(COMPANY)
    rows = []
    for lead, start in zip(ids, created, strict=True):
        for _ in range(int(rng.integers(1, 12))):
            kind, detail = kinds[int(rng.integers(0, len(kinds)))]
            moment = start + pd.Timedelta(minutes=int(rng.integers(1, 120 * 24 * 60)))
            value = float(rng.integers(10, 600)) if kind in ("web_visit", "chat") else None
            rows.append((lead, moment.strftime("%Y-%m-%dT%H:%M:%S"), kind, detail, value))
    activities = pd.DataFrame(
        rows, columns=["lead_id", "occurred_at", "activity_type", "detail", "value"]
    )
    closed = ids[::3]
    outcomes = pd.DataFrame(
        {
            "lead_id": closed,
            "outcome": ["won" if i % 2 else "lost" for i in range(len(closed))],
            "closed_at": [
                (c + pd.Timedelta(days=100)).strftime("%Y-%m-%d") for c in created[:n_leads:3]
            ],
        }
    )
    return {"leads": leads, "activities": activities, "outcomes": outcomes}


def _company(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The same data as the company's CRM writes it, with the rows leadscore must leave out
    (sales calls, notes, sales e-mails, one of them the latest timestamp of all and one for a
    lead that is not in the leads table), and its ``activity_types`` map."""
    log = frames["activities"]
    pairs = [
        COMPANY[(t, d if isinstance(d, str) else None)]
        for t, d in zip(log["activity_type"], log["detail"], strict=True)
    ]
    company = log.assign(activity_type=[t for t, _ in pairs], detail=[d for _, d in pairs])
    ignored = pd.DataFrame(
        {
            "lead_id": ["L000", "L001", "L002", "ghost"],
            "occurred_at": [
                "2024-01-20T10:00:00",
                "2024-09-30T23:00:00",  # after every other timestamp
                "2024-02-03T09:00:00",
                "2024-02-04T09:00:00",
            ],
            "activity_type": ["Sales Call Logged", "Note", "email_sent", "sales call logged"],
            "detail": ["Discovery call", "called back", "Proposal", None],
            "value": [None, None, None, None],
        }
    )
    company = pd.concat([company, ignored], ignore_index=True)
    return {**frames, "activities": company, "activity_types": MAP}


def _source(form: str, folder: Path, frames: dict[str, pd.DataFrame]) -> str | Path:
    folder.mkdir(parents=True)
    if form in ("csv", "parquet"):
        write_tables(frames, folder, fmt=form)
        return folder
    if form == "duckdb":
        return write_duckdb(folder / "crm.duckdb", frames)
    return write_sqlite(folder / "crm.sqlite", frames)


FORMS = ["csv", "parquet", "duckdb", "sqlite"]


def _sliced(source: str | Path, chunk_leads: int = 7) -> list[ClosedLoopData]:
    return list(iter_closed_loop_chunks(source, chunk_leads=chunk_leads))


def _features(data: ClosedLoopData, features: object = None) -> pd.DataFrame:
    return build_features(data, AS_OF, features=features).frame  # type: ignore[arg-type]


def _scored(source: str | Path, features: object) -> pd.DataFrame:
    """The features ``score`` computes, a slice at a time (a folder) or whole (a database)."""
    parts = [
        pd.concat([ids.reset_index(drop=True), X.reset_index(drop=True)], axis=1)
        for X, ids in event_feature_chunks(source, AS_OF, chunk_leads=7, features=features)  # type: ignore[arg-type]
    ]
    return pd.concat(parts, ignore_index=True)


# ------------------------------------------------------------- same features as canonical


@pytest.mark.parametrize("form", FORMS)
def test_a_mapped_log_gives_the_features_of_the_same_log_in_leadscores_types(tmp_path, form):
    """Both readers, every source form: the company's vocabulary with its map gives exactly
    the features, the extract moment and the scoring input of the same data written in
    leadscore's vocabulary without the rows the map ignores."""
    canonical = _canonical()
    mapped_source = _source(form, tmp_path / "mapped", _company(canonical))
    plain_source = _source(form, tmp_path / "plain", canonical)

    plain = load_closed_loop(plain_source)
    mapped = load_closed_loop(mapped_source)
    assert plain.activity_mapping is None
    # the latest timestamp of the company's log is an ignored note's
    assert mapped.observed_until == plain.observed_until < pd.Timestamp("2024-09-30")
    assert event_observed_until(mapped_source) == plain.observed_until
    assert len(mapped.activities) == len(plain.activities) == len(canonical["activities"])
    expected = _features(plain)
    pd.testing.assert_frame_equal(_features(mapped), expected, check_exact=True)
    features = build_features(plain, AS_OF).features

    slices = _sliced(mapped_source)
    assert len(slices) == 6
    assert {s.activity_mapping for s in slices} == {mapped.activity_mapping}
    assert {s.observed_until for s in slices} == {plain.observed_until}
    sliced = pd.concat([_features(s, features) for s in slices], ignore_index=True)
    pd.testing.assert_frame_equal(sliced, expected, check_exact=True)

    scored = _scored(mapped_source, features)
    pd.testing.assert_frame_equal(scored, _scored(plain_source, features), check_exact=True)
    assert len(scored) > 0


def test_the_mapped_log_holds_the_rows_and_details_of_the_canonical_one(tmp_path):
    canonical = _canonical()
    write_tables(_company(canonical), tmp_path / "mapped", fmt="csv")
    write_tables(canonical, tmp_path / "plain", fmt="csv")
    plain = load_closed_loop(tmp_path / "plain").activities
    key = ["lead_id", "occurred_at", "activity_type", "detail", "value"]

    def rows(frame: pd.DataFrame) -> list[tuple[object, ...]]:
        return sorted(map(tuple, frame[key].astype("string").fillna("").to_numpy().tolist()))

    for data in (load_closed_loop(tmp_path / "mapped"), *_sliced(tmp_path / "mapped")):
        ids = plain["lead_id"].isin(data.leads["lead_id"])
        assert rows(data.activities) == rows(plain[ids])


def test_what_the_map_did_is_said_once_by_both_readers(tmp_path, caplog):
    write_tables(_company(_canonical()), tmp_path, fmt="csv")
    lines = []
    for read in (load_closed_loop, _sliced):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="leadscore"):
            read(tmp_path)
        said = [r.getMessage() for r in caplog.records if "activity_types" in r.getMessage()]
        assert len(said) == 1
        lines.append(said[0])
    assert lines[0] == lines[1]
    assert lines[0].startswith(
        f"activities: {tmp_path / 'activity_types.csv'} maps 6 source type(s) ("
    )
    assert lines[0].endswith(
        "ignores 4 rows: 'Note' (1 row), 'Sales Call Logged' (1 row), 'email_sent' (1 row), "
        "'sales call logged' (1 row)"
    )
    mapping = load_closed_loop(tmp_path).activity_mapping
    assert mapping is not None
    assert (mapping.mapped_types, mapping.ignored_rows) == (6, 4)


# ------------------------------------------------------------------------ details


def _log(types: list[str], details: list[str | None] | None) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "lead_id": ["a"] * len(types),
            "occurred_at": [f"2024-01-0{i + 2}" for i in range(len(types))],
            "activity_type": types,
        }
    )
    return frame if details is None else frame.assign(detail=details)


LEADS = pd.DataFrame({"lead_id": ["a"], "created_at": ["2024-01-01"]})


def _read_both(folder: Path) -> list[pd.DataFrame]:
    return [load_closed_loop(folder).activities, *(s.activities for s in _sliced(folder))]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_detail_the_map_does_not_set_stays_as_the_log_wrote_it(tmp_path, fmt):
    """Only a map row with a detail sets one; other rows keep theirs, read as without a map."""
    types = ["Page Viewed", "Page Viewed", "Pricing Visit", "email_open", "Page Viewed"]
    details = [" Case_Study ", None, "/pricing", "NA", "3"]
    activity_map = pd.DataFrame(
        {
            "source_type": ["Page Viewed", "pricing visit"],
            "activity_type": ["page_view", "page_view"],
            "detail": [None, "Pricing"],
        }
    )
    write_tables(
        {"leads": LEADS, "activities": _log(types, details), "activity_types": activity_map},
        tmp_path / "mapped",
        fmt=fmt,
    )
    canonical = ["page_view", "page_view", "page_view", "email_open", "page_view"]
    plain_details = [" Case_Study ", None, "Pricing", "NA", "3"]
    write_tables(
        {"leads": LEADS, "activities": _log(canonical, plain_details)},
        tmp_path / "plain",
        fmt=fmt,
    )
    (plain,) = {
        tuple(a["detail"].astype("string").fillna("-")) for a in _read_both(tmp_path / "plain")
    }
    for activities in _read_both(tmp_path / "mapped"):
        assert activities["activity_type"].tolist() == canonical
        assert tuple(activities["detail"].astype("string").fillna("-")) == plain
    assert plain[0] == "case_study" and plain[2] == "pricing"


def test_a_map_sets_the_detail_of_a_log_without_a_detail_column(tmp_path):
    activity_map = pd.DataFrame(
        {
            "source_type": ["Demo Request Form", "Email Opened"],
            "activity_type": ["form_fill", "email_open"],
            "detail": ["demo_request", None],
        }
    )
    frames = {
        "leads": LEADS,
        "activities": _log(["Demo Request Form", "Email Opened", "chat"], None),
        "activity_types": activity_map,
    }
    write_tables(frames, tmp_path, fmt="csv")
    for activities in _read_both(tmp_path):
        assert activities["activity_type"].tolist() == ["form_fill", "email_open", "chat"]
        assert activities["detail"].astype("string").fillna("-").tolist() == [
            "demo_request",
            "-",
            "-",
        ]


def test_a_map_without_a_detail_column_maps_types_only(tmp_path):
    activity_map = pd.DataFrame({"source_type": ["Visit"], "activity_type": ["web_visit"]})
    frames = {
        "leads": LEADS,
        "activities": _log(["Visit", "page_view"], ["home", "pricing"]),
        "activity_types": activity_map,
    }
    write_tables(frames, tmp_path, fmt="parquet")
    for activities in _read_both(tmp_path):
        assert activities["activity_type"].tolist() == ["web_visit", "page_view"]
        assert activities["detail"].tolist() == ["home", "pricing"]


def test_the_python_api_takes_the_map_as_a_frame(event_frames):
    log = event_frames["activities"].assign(
        activity_type=["Pricing Page Visit", "form_fill", "email_open", "Sales Call"]
    )
    activity_map = pd.DataFrame(
        {
            "source_type": ["Pricing Page Visit", "Sales Call"],
            "activity_type": ["page_view", "ignore"],
            "detail": ["pricing", None],
        }
    )
    data = validate_closed_loop(event_frames["leads"], log, activity_types=activity_map)
    assert data.activities["activity_type"].tolist() == ["page_view", "form_fill", "email_open"]
    assert data.activities["detail"].tolist()[0] == "pricing"
    assert data.activity_mapping is not None
    assert data.activity_mapping.ignored == (("Sales Call", 1),)


# ------------------------------------------------------------------ what is refused


def _with_map(tmp_path: Path, event_frames: dict[str, pd.DataFrame], table: pd.DataFrame) -> Path:
    log = event_frames["activities"].assign(
        activity_type=["Pricing Page Visit", "form_fill", "Email Opened", "chat"]
    )
    write_tables({**event_frames, "activities": log}, tmp_path, fmt="csv")
    table.to_csv(tmp_path / "activity_types.csv", index=False)
    return tmp_path


MAP_ERRORS = {
    "unknown type": (
        pd.DataFrame({"source_type": ["Email Opened", "Call"], "activity_type": ["opened", "x"]}),
        "activity_types.activity_type is 'opened', not a leadscore type, for source_type "
        "'Email Opened' (and 1 other row(s)). Map each source_type to one of: "
        f"{TYPES}, or to ignore to leave its rows out.",
    ),
    "empty type": (
        pd.DataFrame({"source_type": ["Email Opened"], "activity_type": [None]}),
        "activity_types.activity_type is empty for source_type 'Email Opened'. Map each "
        f"source_type to one of: {TYPES}, or to ignore to leave its rows out.",
    ),
    "mapped twice": (
        pd.DataFrame(
            {
                "source_type": ["Pricing Page Visit", "Pricing Page Visit"],
                "activity_type": ["page_view", "page_view"],
                "detail": ["pricing", "demo"],
            }
        ),
        "activity_types: source_type 'Pricing Page Visit' is mapped twice, to page_view "
        "(detail 'pricing') and to page_view (detail 'demo'). Keep one row per activity type "
        "of the log; source_type is matched ignoring case and spaces around it.",
    ),
    "two spellings": (
        pd.DataFrame(
            {
                "source_type": ["Email Opened", " email opened"],
                "activity_type": ["email_open", "ignore"],
            }
        ),
        "activity_types: source_types 'Email Opened' and 'email opened' are one type (case "
        "and spaces aside) but are mapped, to email_open and to ignore. Keep one row per "
        "activity type of the log; source_type is matched ignoring case and spaces around it.",
    ),
    "missing column": (
        pd.DataFrame({"Source Type": ["Email Opened"], "activity_type": ["email_open"]}),
        "activity_types: missing column 'source_type' (closest: 'Source Type') (have: Source "
        "Type, activity_type). Add it or rename the matching column to 'source_type'; the "
        "README's data contract lists every column.",
    ),
    "empty source type": (
        pd.DataFrame({"source_type": ["Email Opened", None], "activity_type": ["email_open"] * 2}),
        "activity_types.source_type is empty in 1 row(s). Give each row the activity type as "
        "the log writes it, or drop the row.",
    ),
}


@pytest.mark.parametrize("case", list(MAP_ERRORS))
@pytest.mark.parametrize("read", READERS, ids=READER_IDS)
def test_a_wrong_map_is_refused_by_every_reader(tmp_path, event_frames, case, read):
    table, message = MAP_ERRORS[case]
    folder = _with_map(tmp_path, event_frames, table)
    with pytest.raises(DataError) as err:
        read(folder)
    assert str(err.value) == message


def test_duplicate_rows_of_one_rule_are_fine(tmp_path, event_frames):
    table = pd.DataFrame(
        {
            "source_type": ["Pricing Page Visit", "pricing page visit", "Email Opened"],
            "activity_type": ["page_view", "Page_View", "email_open"],
            "detail": ["pricing", "Pricing", None],
        }
    )
    folder = _with_map(tmp_path, event_frames, table)
    assert load_closed_loop(folder).activities["activity_type"].tolist()[:3] == [
        "page_view",
        "form_fill",
        "email_open",
    ]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("read", READERS, ids=READER_IDS)
def test_a_map_without_rows_is_refused(tmp_path, event_frames, fmt, read):
    """A header and no rows is a failed export: read as no map, every type would be unknown
    or, worse, the sales calls it ignored would become features."""
    folder = _with_map(tmp_path, event_frames, MAP.iloc[:0])
    (folder / "activity_types.csv").unlink()
    write_tables({"activity_types": MAP.iloc[:0]}, folder, fmt=fmt)
    with pytest.raises(DataError) as err:
        read(folder)
    assert str(err.value) == (
        f"{folder / f'activity_types.{fmt}'} has no rows. Export it again with a row per "
        "activity type of the log, or remove it to read the log's types as they are."
    )


@pytest.mark.parametrize("read", [read_whole, _sliced], ids=["whole", "sliced"])
def test_types_still_unknown_name_the_map_in_the_fix(tmp_path, event_frames, read):
    table = pd.DataFrame({"source_type": ["Pricing Page Visit"], "activity_type": ["page_view"]})
    folder = _with_map(tmp_path, event_frames, table)
    with pytest.raises(DataError) as err:
        read(folder)
    assert str(err.value) == (
        "activities.activity_type: unknown type 'Email Opened' (1 row). Map each activity to "
        f"one of: {TYPES}: list the log's own types in {folder / 'activity_types.csv'} "
        "(columns source_type, activity_type and optionally detail; activity_type ignore "
        "leaves a type's rows out)."
    )


@pytest.mark.parametrize("form", FORMS)
def test_unknown_types_without_a_map_say_where_one_goes(tmp_path, event_frames, form):
    log = event_frames["activities"].assign(
        activity_type=["Demo Form", "form_fill", "chat", "chat"]
    )
    source = _source(form, tmp_path / "crm", {**event_frames, "activities": log})
    place = {
        "csv": f"{source}/activity_types.csv",
        "parquet": f"{source}/activity_types.csv",
        "duckdb": f"an activity_types table in {source}",
        "sqlite": f"an activity_types table in {source}",
    }[form]
    for read in (read_whole, _sliced):
        with pytest.raises(DataError) as err:
            read(source)
        assert str(err.value).startswith(
            "activities.activity_type: unknown type 'Demo Form' (1 row). Map each activity to "
            f"one of: {TYPES}: list the log's own types in {place} (columns source_type, "
        )


@pytest.mark.parametrize("read", READERS, ids=READER_IDS)
def test_a_log_whose_every_row_is_ignored_is_refused(tmp_path, event_frames, read):
    table = pd.DataFrame(
        {"source_type": ["Pricing Page Visit", "form_fill", "Email Opened", "chat"],
         "activity_type": ["ignore"] * 4}
    )  # fmt: skip
    folder = _with_map(tmp_path, event_frames, table)
    with pytest.raises(DataError) as err:
        read(folder)
    assert str(err.value) == (
        f"activities: all 4 rows are of types that {folder / 'activity_types.csv'} maps to "
        "ignore. Map the log's types onto leadscore's there; ignore is for the sales team's "
        "activities (calls, notes, status changes)."
    )


# ------------------------------------------------------------ found as the other tables


def test_a_map_as_csv_and_parquet_at_once_is_refused(tmp_path, event_frames):
    write_tables({**event_frames, "activity_types": MAP}, tmp_path, fmt="csv")
    MAP.to_parquet(tmp_path / "activity_types.parquet", index=False)
    for read in READERS:
        with pytest.raises(
            DataError, match=r"holds both activity_types.parquet and activity_types"
        ):
            read(tmp_path)


@pytest.mark.parametrize("form", FORMS)
def test_an_absent_map_is_not_warned(tmp_path, event_frames, caplog, form):
    """Most sources hold no map: its absence is no news, and no absent table."""
    source = _source(form, tmp_path / "crm", event_frames)
    with caplog.at_level(logging.INFO, logger="leadscore"):
        data = load_closed_loop(source)
        slices = _sliced(source)
        event_observed_until(source)
    assert data.absent_tables == () and data.activity_mapping is None
    assert all(s.absent_tables == () and s.activity_mapping is None for s in slices)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "activity_types" not in caplog.text


def test_a_map_is_not_read_without_an_activity_log(tmp_path, event_frames):
    """A caller that leaves the log out (report channels) does not read the map either."""
    write_tables({**event_frames, "activity_types": MAP.iloc[:0]}, tmp_path, fmt="csv")
    data = load_closed_loop(tmp_path, tables=("leads", "outcomes"))
    assert data.activity_mapping is None and len(data.activities) == 0


# --------------------------------------------------------------------------- sales-named types


@pytest.mark.parametrize(
    "source", ["SalesCallLogged", "MeetingBooked", "statusChange", "dealWon", "OpportunitiesOpened"]
)
def test_sales_types_written_in_camel_case_are_warned_about(source, caplog):
    """CRMs glue a type's words in camelCase as often as they spell them out; a sales call so
    written leaks the outcome as much as "Sales Call Logged" does."""
    table = pd.DataFrame({"source_type": [source], "activity_type": ["event"]})
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        validate_activity_type_map(table, "the map")
    assert f"the map maps {source!r} (to event)" in caplog.text
    assert "like the sales team's activities" in caplog.text


@pytest.mark.parametrize(
    "source", ["EmailClicked", "WebPageVisit", "CallbackFormSubmitted", "FootnoteDownload"]
)
def test_ordinary_types_written_in_camel_case_are_not_warned_about(source, caplog):
    table = pd.DataFrame({"source_type": [source], "activity_type": ["event"]})
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        validate_activity_type_map(table, "the map")
    assert caplog.text == ""
