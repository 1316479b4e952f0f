"""Messages of the event-form contract that name what the user wrote."""

from __future__ import annotations

import pandas as pd
import pytest

from leadscore.errors import DataError
from leadscore.schema import ACTIVITY_TYPES, validate_closed_loop

TYPES_FIX = f"Map each activity to one of: {', '.join(ACTIVITY_TYPES)}."


def _with_types(event_frames: dict[str, pd.DataFrame], types: dict[str, int]) -> pd.DataFrame:
    kinds = [kind for kind, n in types.items() for _ in range(n)]
    return pd.DataFrame(
        {"lead_id": "a", "occurred_at": "2024-01-02", "activity_type": kinds, "value": None}
    )


def test_unknown_activity_types_are_listed_as_written_with_their_own_counts(event_frames):
    """It named one type (lower-cased) with the rows of all unknown types."""
    types = {
        "Webinar Attended": 120,
        "Demo Requested": 256,
        "page_view": 50,
        "Page_View ": 3,
        "demo requested": 7,
        "Call": 1,
        "Meeting": 2,
        "Trade Show": 2,
        "SMS": 9,
    }
    activities = _with_types(event_frames, types)
    with pytest.raises(DataError) as err:
        validate_closed_loop(event_frames["leads"], activities)
    assert str(err.value) == (
        "activities.activity_type: unknown types: 'Demo Requested' (256 rows), "
        "'Webinar Attended' (120 rows), 'SMS' (9 rows), 'demo requested' (7 rows), "
        f"'Meeting' (2 rows) and 2 more (3 rows). {TYPES_FIX}"
    )


def test_one_unknown_activity_type(event_frames):
    activities = _with_types(event_frames, {"email_open": 3, "Sales Call": 1})
    with pytest.raises(DataError) as err:
        validate_closed_loop(event_frames["leads"], activities)
    assert (
        str(err.value)
        == f"activities.activity_type: unknown type 'Sales Call' (1 row). {TYPES_FIX}"
    )


def test_empty_activity_types_are_counted(event_frames):
    activities = event_frames["activities"].assign(activity_type=["chat", None, None, "chat"])
    with pytest.raises(DataError) as err:
        validate_closed_loop(event_frames["leads"], activities)
    assert str(err.value) == f"activities.activity_type is empty in 2 row(s). {TYPES_FIX}"


@pytest.mark.parametrize("table", ["activities", "outcomes"])
def test_ids_without_their_leading_zeros_are_named(event_frames, table):
    leads = event_frames["leads"].assign(lead_id=["000123", "000456", "0789"])
    frame = event_frames[table].copy()
    frame["lead_id"] = frame["lead_id"].map({"a": 123, "b": 456, "c": 789})
    tables = {"activities": event_frames["activities"].iloc[:0], "outcomes": None, table: frame}
    with pytest.raises(DataError) as err:
        validate_closed_loop(leads, tables["activities"], tables["outcomes"])
    assert str(err.value) == (
        f"{table}: {len(frame)} row(s) for lead_id(s) not in leads, e.g. '123'; the ids in "
        f"{table} look like the leads' ids without their leading zeros ('123' vs '000123'). "
        f"Export the ids as text in {table} too, with their leading zeros as in leads."
    )


def test_leads_ids_that_lost_their_zeros_are_named(event_frames):
    """The other way round: the leads table was typed as numbers (a bigint lead_id), the
    activity log kept the zeros."""
    leads = event_frames["leads"].assign(lead_id=["123", "456", "789"])
    activities = event_frames["activities"].assign(
        lead_id=event_frames["activities"]["lead_id"].map(
            {"a": "000123", "b": "000456", "c": "0789"}
        )
    )
    with pytest.raises(DataError) as err:
        validate_closed_loop(leads, activities)
    assert str(err.value) == (
        f"activities: {len(activities)} row(s) for lead_id(s) not in leads, e.g. '000123'; "
        "the leads' ids look like these without their leading zeros ('000123' vs '123'). "
        "Export lead_id of the leads table as text, with its leading zeros."
    )


def test_duplicates_count_the_ids_held_twice(event_frames):
    """Five ids held twice read as such, not as one id held five times."""
    from leadscore.schema import duplicate_ids_text

    ids = pd.Series(["a", "b", "b", "c", "c", "d", "d", "d"])
    assert duplicate_ids_text(ids, "lead_id {id}") == (
        "duplicate lead_id 'b' (2 rows); 3 ids appear more than once, 4 rows too many"
    )
    assert duplicate_ids_text(pd.Series(["a", "b", "b"]), "lead_id {id}") == (
        "duplicate lead_id 'b' (2 rows)"
    )
    assert duplicate_ids_text(pd.Series(["a", "b"]), "lead_id {id}") is None


def test_unknown_ids_unlike_the_leads_keep_the_plain_message(event_frames):
    leads = event_frames["leads"].assign(lead_id=["000123", "000456", "000789"])
    activities = event_frames["activities"].assign(lead_id=["x1", "x2", "x3", "x4"])
    with pytest.raises(DataError) as err:
        validate_closed_loop(leads, activities)
    assert str(err.value) == (
        "activities: 4 row(s) for lead_id(s) not in leads, e.g. 'x1'. Add those leads to the "
        "leads table or drop their rows from activities."
    )
