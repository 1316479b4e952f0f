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


def test_unknown_ids_unlike_the_leads_keep_the_plain_message(event_frames):
    leads = event_frames["leads"].assign(lead_id=["000123", "000456", "000789"])
    activities = event_frames["activities"].assign(lead_id=["x1", "x2", "x3", "x4"])
    with pytest.raises(DataError) as err:
        validate_closed_loop(leads, activities)
    assert str(err.value) == (
        "activities: 4 row(s) for lead_id(s) not in leads, e.g. 'x1'. Add those leads to the "
        "leads table or drop their rows from activities."
    )
