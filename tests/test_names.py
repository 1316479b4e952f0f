"""Column names read as words: the closest column offered for one that is missing."""

from __future__ import annotations

from leadscore.names import closest_name, missing_names_text

#: The columns of a HubSpot export whose ``Number of Sessions`` was renamed ``Sessions``.
HUBSPOT_RENAMED = [
    "Record ID",
    "Create Date",
    "Lifecycle Stage",
    "Original Source",
    "Number of Pageviews",
    "Sessions",
    "Number of Form Submissions",
    "Industry",
    "Annual Revenue",
    "Number of Employees",
    "Became a Customer Date",
    "Close Date",
]


def test_a_rename_that_keeps_the_last_words_is_the_closest_column():
    """``Sessions`` for ``Number of Sessions``: difflib's ratio alone preferred ``Number of
    Pageviews``, the same words about something else."""
    assert closest_name("Number of Sessions", HUBSPOT_RENAMED) == "Sessions"
    assert closest_name("Total Web Visits", ["Visits", "Lead ID"]) == "Visits"
    assert closest_name("Pricing Page Views", ["Views", "Pricing Views"]) == "Pricing Views"
    assert closest_name("Annual Revenue", ["Revenue", "Annual Revenue USD"]) == (
        "Annual Revenue USD"
    )
    assert closest_name("Lead Source", ["Original Source", "Lead Sorce"]) == "Lead Sorce"
    assert closest_name("lead source", ["Lead Sources", "Lead Source"]) == "Lead Source"
    assert closest_name("Budget", ["Lead ID", "Number of Sessions"]) is None


def test_columns_used_or_excluded_are_never_offered():
    """A column the model already reads, or one its spec excluded (a lifetime counter), is
    no rename of the missing feature: nothing is offered rather than a wrong column, and
    ``Number of Pageviews``, the same words about something else, is no rename either."""
    have = ["Number of Pageviews", "Number of Form Submissions", "Industry"]
    used = ["Number of Sessions", "Number of Form Submissions", "Industry"]
    assert missing_names_text(["Number of Sessions"], have, used) == "'Number of Sessions'"
    excluded = [*used, "Number of Pageviews"]
    assert missing_names_text(["Number of Sessions"], have, excluded) == "'Number of Sessions'"
    assert missing_names_text(["Number of Sessions"], HUBSPOT_RENAMED, excluded) == (
        "'Number of Sessions' (closest: 'Sessions')"
    )


def test_a_shared_generic_last_word_does_not_make_a_rename():
    """``Close Date`` for ``Created Date`` points the user at a column that leaks the outcome,
    and ``ID`` for ``Account ID`` at one that says nothing: sharing ``Date``, ``Name`` or
    ``ID`` says nothing of which column was meant, so the ratio and the distinctive words
    decide, as they did before names were compared word by word."""
    assert closest_name("Created Date", ["Created", "Close Date"]) == "Created"
    assert closest_name("Company Name", ["Company", "Contact Name"]) == "Company"
    assert closest_name("Account ID", ["ID", "Account"]) == "Account"
    assert closest_name("Signup Date", ["Date", "Signup"]) == "Signup"
    assert closest_name("Lead ID", ["Lead", "Account ID"]) == "Lead"
    assert closest_name("Created Date", ["Create Date", "Last Activity Date"]) == "Create Date"
    assert missing_names_text(["Created Date"], ["Created", "Close Date", "Score"]) == (
        "'Created Date' (closest: 'Created')"
    )
