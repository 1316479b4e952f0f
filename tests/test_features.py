"""Point-in-time features: leakage property, windows, parsers, training examples, CLI."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandas.api import types as ptypes

from leadscore.cli import main
from leadscore.encoding import (
    READING_WORDS,
    VALUE_READINGS,
    email_domain_kind,
    looks_like_email_addresses,
    read_email_domain_kind,
)
from leadscore.errors import DataError, SpecError, UsageError
from leadscore.features import (
    DEPARTMENTS,
    SENIORITY_LEVELS,
    build_event_examples,
    build_features,
    build_training_examples,
    check_lead_columns,
    company_size_band,
    default_as_of_dates,
    feature_catalogue,
    lead_fit_features,
    parse_company_size,
    parse_department,
    parse_seniority,
)
from leadscore.io import load_closed_loop, write_tables
from leadscore.schema import ACTIVITY_TYPES, validate_closed_loop

BASE = pd.Timestamp("2024-01-01")
US = pd.Timedelta(microseconds=1)


def assert_same_features(left: pd.DataFrame, right: pd.DataFrame) -> None:
    """Equal frames, NaN equal to NaN, dtypes (and categories) included."""
    pd.testing.assert_frame_equal(left, right, check_exact=True)


# --------------------------------------------------------------------------- leakage property

DETAILS = ["pricing", "demo", "blog", "demo_request", "newsletter", "registered", "attended", None]
TITLES = ["VP Marketing", "CTO", "Student", "Software Engineer", None]
EMAILS = ["ann@acme.io", "bob@gmail.com", None, "broken"]


@st.composite
def event_data(draw: st.DrawFn) -> dict[str, object]:
    """Random small event data, an as-of instant and events strictly after it."""
    day_us = 86_400_000_000
    n_leads = draw(st.integers(1, 6))
    created = draw(st.lists(st.integers(0, 150 * day_us), min_size=n_leads, max_size=n_leads))
    leads = pd.DataFrame(
        {
            "lead_id": [f"L{i}" for i in range(n_leads)],
            "created_at": [BASE + pd.Timedelta(microseconds=c) for c in created],
            "source": draw(
                st.lists(st.sampled_from(["ads", "seo", None]), min_size=n_leads, max_size=n_leads)
            ),
            "job_title": draw(
                st.lists(st.sampled_from(TITLES), min_size=n_leads, max_size=n_leads)
            ),
            "email": draw(st.lists(st.sampled_from(EMAILS), min_size=n_leads, max_size=n_leads)),
            "company_size": draw(
                st.lists(
                    st.sampled_from([3, 40, 900, 20000, None]), min_size=n_leads, max_size=n_leads
                )
            ),
            "budget": draw(
                st.lists(st.floats(0, 1e6) | st.none(), min_size=n_leads, max_size=n_leads)
            ),
        }
    )

    def activity(times: st.SearchStrategy[int]) -> st.SearchStrategy[dict[str, object]]:
        return st.fixed_dictionaries(
            {
                "lead_id": st.sampled_from(list(leads["lead_id"])),
                "occurred_at": times.map(lambda us: BASE + pd.Timedelta(microseconds=us)),
                "activity_type": st.sampled_from(list(ACTIVITY_TYPES)),
                "detail": st.sampled_from(DETAILS),
                "value": st.none() | st.floats(0, 1000),
            }
        )

    past = draw(st.lists(activity(st.integers(0, 250 * day_us)), max_size=40))
    times = [int((a["occurred_at"] - BASE) / US) for a in past] + created
    # as-of is often exactly an event's instant, where <= versus < matters.
    as_of_us = draw(st.sampled_from(times) | st.integers(0, 260 * day_us))
    as_of = BASE + pd.Timedelta(microseconds=as_of_us)
    after = st.integers(as_of_us + 1, as_of_us + 120 * day_us)
    future = draw(st.lists(activity(after), min_size=1, max_size=20))
    closers = draw(st.lists(st.sampled_from(list(leads["lead_id"])), unique=True))
    closed_before = draw(st.lists(st.booleans(), min_size=len(closers), max_size=len(closers)))
    outcomes, late_outcomes = [], []
    for lead, before in zip(closers, closed_before, strict=True):
        row = {"lead_id": lead, "outcome": draw(st.sampled_from(["won", "lost"]))}
        born = created[int(lead[1:])]  # a lead never closes before it was created
        if before and born <= as_of_us:
            row["closed_at"] = BASE + pd.Timedelta(microseconds=draw(st.integers(born, as_of_us)))
            outcomes.append(row)
        else:
            late = st.integers(max(as_of_us + 1, born), max(as_of_us + 1, born) + 120 * day_us)
            row["closed_at"] = BASE + pd.Timedelta(microseconds=draw(late))
            late_outcomes.append(row)
    return {
        "leads": leads,
        "activities": pd.DataFrame(past, columns=list(future[0])),
        "outcomes": pd.DataFrame(outcomes, columns=["lead_id", "outcome", "closed_at"]),
        "future_activities": pd.DataFrame(future),
        "late_outcomes": pd.DataFrame(late_outcomes, columns=["lead_id", "outcome", "closed_at"]),
        "as_of": as_of,
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=event_data())
def test_events_after_as_of_change_no_feature(case):
    before = validate_closed_loop(case["leads"], case["activities"], case["outcomes"])
    after = validate_closed_loop(
        case["leads"],
        pd.concat([case["activities"], case["future_activities"]], ignore_index=True),
        pd.concat([case["outcomes"], case["late_outcomes"]], ignore_index=True),
    )
    old = build_features(before, case["as_of"], threads=1)
    new = build_features(after, case["as_of"], threads=1)
    assert old.features == new.features
    assert_same_features(old.frame, new.frame)
    assert old.frame["lead_id"].tolist() == sorted(
        case["leads"].loc[case["leads"]["created_at"] <= case["as_of"], "lead_id"]
    )


def test_leads_created_after_as_of_change_nothing(event_frames):
    data = validate_closed_loop(**event_frames)
    more = dict(event_frames)
    more["leads"] = pd.concat(
        [
            event_frames["leads"],
            pd.DataFrame(
                {
                    "lead_id": ["z"],
                    "created_at": ["2024-06-01"],
                    "source": ["tv"],
                    "job_title": ["CEO"],
                }
            ),
        ],
        ignore_index=True,
    )
    more["activities"] = pd.concat(
        [
            event_frames["activities"],
            pd.DataFrame(
                {
                    "lead_id": ["z"],
                    "occurred_at": ["2024-06-02"],
                    "activity_type": ["page_view"],
                    "detail": ["pricing"],
                }
            ),
        ],
        ignore_index=True,
    )
    old = build_features(data, "2024-03-01")
    new = build_features(validate_closed_loop(**more), "2024-03-01")
    assert_same_features(old.frame, new.frame)


def _keyword_leads() -> tuple[pd.DataFrame, pd.DataFrame]:
    """800 leads with 300 search terms by 2024-02-01, and 1,500 later ones with new terms."""
    rng = np.random.default_rng(0)
    past = pd.DataFrame(
        {
            "lead_id": [f"p{i}" for i in range(800)],
            "created_at": BASE + pd.to_timedelta(rng.integers(0, 30 * 24, 800), unit="h"),
            "utm_term": rng.choice([f"kw{i}" for i in range(300)], 800),
        }
    )
    future = pd.DataFrame(
        {
            "lead_id": [f"f{i}" for i in range(1500)],
            "created_at": pd.Timestamp("2024-03-01"),
            "utm_term": [f"new_kw{i}" for i in range(1500)],
        }
    )
    return past, future


def test_leads_created_after_as_of_do_not_decide_the_extra_columns():
    past, future = _keyword_leads()
    both = validate_closed_loop(pd.concat([past, future], ignore_index=True))
    old = build_features(validate_closed_loop(past), "2024-02-01")
    new = build_features(both, "2024-02-01")
    assert "utm_term" in [f.name for f in old.features]
    assert old.features == new.features
    assert_same_features(old.frame, new.frame)
    ds = build_training_examples(
        validate_closed_loop(
            pd.concat([past, future], ignore_index=True), observed_until="2024-06-01"
        ),
        ["2024-01-15", "2024-02-01"],
        horizon_days=30,
    )
    assert "utm_term" in ds.X.columns


def test_a_model_s_features_fix_the_extra_columns_and_their_kinds():
    past, future = _keyword_leads()
    trained = build_features(
        validate_closed_loop(past.assign(region=1.0, seniority="x")), "2024-02-01"
    )
    assert {"utm_term", "region", "extra_seniority"} <= {f.name for f in trained.features}
    # later, utm_term has a new value for most leads and region is written as text
    later = pd.concat([past, future], ignore_index=True).assign(region="2", seniority="y")
    scored = build_features(validate_closed_loop(later), "2024-04-01", features=trained.features)
    assert scored.features == trained.features
    assert scored.frame["region"].dtype == np.float64
    assert scored.frame["region"].unique().tolist() == [2.0]
    assert scored.frame["extra_seniority"].unique().tolist() == ["y"]
    for column in ("utm_term", "seniority"):
        with pytest.raises(DataError, match=rf"leads have no column '{column}', which the model"):
            build_features(
                validate_closed_loop(later.drop(columns=column)),
                "2024-04-01",
                features=trained.features,
            )
    with_title = past.assign(job_title="CTO")
    titled = build_features(validate_closed_loop(with_title), "2024-02-01")
    with pytest.raises(DataError, match=r"leads have no column 'job_title', which the model"):
        build_features(validate_closed_loop(past), "2024-02-01", features=titled.features)


def test_chunked_folder_gives_the_features_of_the_whole_folder(tmp_path):
    from leadscore.io import iter_closed_loop_chunks

    ids = ["00123", "00456", "01000"]
    write_tables(
        {
            "leads": pd.DataFrame({"lead_id": ids, "created_at": ["2024-01-01"] * 3}),
            "activities": pd.DataFrame(
                {
                    "lead_id": [ids[0], ids[0], ids[1], ids[2]],
                    "occurred_at": ["2024-01-03"] * 4,
                    "activity_type": ["page_view", "form_fill", "chat", "download"],
                    "detail": ["pricing", "demo_request", None, None],
                }
            ),
        },
        tmp_path,
        fmt="csv",
    )
    whole = build_features(load_closed_loop(tmp_path), "2024-02-01").frame
    chunks = [
        build_features(c, "2024-02-01").frame
        for c in iter_closed_loop_chunks(tmp_path, chunk_leads=2)
    ]
    chunked = pd.concat(chunks, ignore_index=True)
    assert chunked["lead_id"].tolist() == ids
    assert chunked["activities_total"].tolist() == [2.0, 1.0, 1.0]
    assert_same_features(chunked, whole)


# --------------------------------------------------------------------------- windows


AS_OF = pd.Timestamp("2024-03-31 12:00")


def ago(days: float) -> pd.Timestamp:
    return AS_OF - pd.Timedelta(days=days)


@pytest.fixture
def window_data():
    """Three leads with activity placed on and around the window edges, one lead too late."""
    rows = [
        # lead a: pricing views at 0 (the as-of instant), 1, 7 (edge), 29.5, 30 (edge) days ago
        ("a", ago(0), "page_view", "pricing", None),
        ("a", ago(1), "page_view", "pricing", None),
        ("a", ago(7), "page_view", "pricing", None),
        ("a", ago(29.5), "page_view", "pricing", None),
        ("a", ago(30), "page_view", "pricing", None),
        ("a", AS_OF + pd.Timedelta(seconds=1), "page_view", "pricing", None),  # future
        ("a", ago(2), "page_view", "demo", None),
        ("a", ago(10), "form_fill", "demo_request", None),
        ("a", ago(3), "web_visit", None, 120),
        ("a", ago(5), "web_visit", None, None),
        ("a", ago(40), "web_visit", None, 60),
        ("a", ago(15), "email_sent", "nurture", None),
        ("a", ago(15.2), "email_sent", "nurture", None),
        ("a", ago(16), "email_sent", "nurture", None),
        ("a", ago(16.1), "email_sent", "nurture", None),
        ("a", ago(14), "email_open", "nurture", None),
        ("a", ago(14.1), "email_open", "nurture", None),
        ("a", ago(13), "email_click", "nurture", None),
        # lead c: chat, trial sign-up and usage, one usage day outside 30 days
        ("c", ago(3), "chat", None, 5),
        ("c", ago(20), "trial_signup", None, None),
        ("c", ago(1), "trial_usage", "reports", 30),
        ("c", ago(40), "trial_usage", "reports", 45),
        # lead d is created after as-of
        ("d", AS_OF + pd.Timedelta(days=2), "page_view", "pricing", None),
    ]
    activities = pd.DataFrame(
        rows, columns=["lead_id", "occurred_at", "activity_type", "detail", "value"]
    )
    leads = pd.DataFrame(
        {
            "lead_id": ["a", "b", "c", "d"],
            "created_at": [
                pd.Timestamp("2024-01-01"),
                ago(30.5),
                pd.Timestamp("2024-02-01"),
                AS_OF + pd.Timedelta(days=1),
            ],
            "company_size": [12, None, 5000, 7],
            "job_title": ["Head of Growth", None, "Software Engineer", "CEO"],
            "email": ["x@acme.io", None, "y@yahoo.co.uk", "z@d.com"],
        }
    )
    return validate_closed_loop(leads, activities)


def test_trial_use_without_a_logged_sign_up_is_a_trial(window_data):
    activities = window_data.activities
    no_signup = validate_closed_loop(
        window_data.leads, activities[activities["activity_type"] != "trial_signup"]
    )
    frame = build_features(no_signup, AS_OF).frame.set_index("lead_id")
    assert frame.loc["c", "has_trial"] == 1 and frame.loc["a", "has_trial"] == 0


def test_window_counts_on_hand_made_leads(window_data):
    table = build_features(window_data, AS_OF)
    frame = table.frame.set_index("lead_id")
    assert list(frame.index) == ["a", "b", "c"]
    a, b, c = frame.loc["a"], frame.loc["b"], frame.loc["c"]
    # windows are (as_of - N days, as_of]: 7 and 30 days ago fall out of the 7- and 30-day ones
    assert (
        a["pricing_page_views_7d"],
        a["pricing_page_views_30d"],
        a["pricing_page_views_90d"],
    ) == (2, 4, 5)
    assert a["demo_page_views_30d"] == 1
    assert (a["high_intent_actions_7d"], a["high_intent_actions_30d"]) == (3, 6)
    assert a["high_intent_forms_30d"] == 1
    assert a["days_since_last_high_intent"] == 0
    assert a["days_since_last_activity"] == 0
    assert a["days_since_first_activity"] == 40
    assert (a["web_visits_7d"], a["web_visits_90d"]) == (2, 3)
    assert (a["web_seconds_30d"], a["web_seconds_90d"]) == (120, 180)
    assert a["email_sends_90d"] == 4
    assert a["email_open_rate_90d"] == 0.5
    assert a["email_click_rate_90d"] == 0.25
    assert a["activities_7d"] == 5  # pricing x2, demo page, two web visits
    # e-mails sent (15, 15.2, 16, 16.1 days ago) are ours, not the lead's: no activity
    assert a["activities_total"] == 13
    # trend: 5 in the last 7 days against 5 in the 21 days before (29.5, 30, 40 are older)
    assert a["activity_trend"] == pytest.approx(5 - 5 / 3)
    # calendar days before the as-of's date with activity in the window (29.5 days before
    # noon is the midnight that begins day 29): 0,1,2,3,5,7,10,13,14,29 (+30, 40 in 90 d)
    assert (a["active_days_30d"], a["active_days_90d"]) == (10, 12)
    assert a["activity_types_90d"] == 5
    assert a["lead_age_days"] == (AS_OF - pd.Timestamp("2024-01-01")).days + 0.5
    # b: no activity at all
    assert b["lead_age_days"] == 30.5
    assert b["activities_total"] == 0 and b["pricing_page_views_30d"] == 0
    assert np.isnan(b["days_since_last_activity"]) and np.isnan(b["email_open_rate_90d"])
    assert np.isnan(b["days_since_last_high_intent"])
    # c: chat and trial signals
    assert (c["has_chatted"], c["chats_30d"], c["chat_messages_30d"]) == (1, 1, 5)
    assert (c["has_trial"], c["trial_days_30d"], c["trial_minutes_30d"]) == (1, 1, 30)
    assert np.isnan(c["days_since_last_high_intent"])
    assert c["days_since_last_activity"] == 1
    # fit
    assert list(frame["seniority"]) == ["director", "unknown", "individual"]
    assert list(frame["department"]) == ["marketing", "unknown", "engineering"]
    assert list(frame["email_domain_kind"]) == ["corporate", "missing", "free"]
    assert list(frame["company_size_band"]) == ["11-50", "unknown", "1001-5000"]


def _one_lead_log(rows: list[tuple], lead: str = "t") -> object:
    """Validated event data of one lead created 30 days before as-of, with ``rows`` of
    (days before as-of, activity type, detail, value)."""
    activities = pd.DataFrame(
        [(lead, ago(days), kind, detail, value) for days, kind, detail, value in rows],
        columns=["lead_id", "occurred_at", "activity_type", "detail", "value"],
    )
    leads = pd.DataFrame({"lead_id": [lead], "created_at": [ago(30)]})
    return validate_closed_loop(leads, activities)


def test_trial_days_count_days_not_usage_rows():
    """One trial_usage row per feature used (README: detail is the feature used): three
    features on one day are one day of use, as active_days counts days."""
    rows = [(5, "trial_signup", None, None)]
    rows += [
        (3 + h / 24, "trial_usage", f, 10) for h, f in enumerate(["dashboard", "api", "reports"])
    ]
    rows += [(1, "trial_usage", "reports", 5), (1.2, "trial_usage", "api", 5)]
    row = build_features(_one_lead_log(rows), AS_OF).frame.iloc[0]
    assert row["trial_days_30d"] == 2
    assert row["trial_minutes_30d"] == 40


def test_active_days_are_calendar_days_at_any_time_of_day():
    """Training's as-of dates are midnights, where the 24 hours before the as-of are one
    calendar day; scoring runs at the extract's end, any time of day. Two uses of the trial
    on one day (09:00 and 20:00, scored at noon the next day) are one day of use, not two
    as 24-hour steps back from noon counted them; a lead active every day of the window
    reads 30 days of 30, not the 31 calendar days a noon-to-noon window touches."""
    rows = [(1.125, "trial_usage", "api", 5), (16 / 24, "trial_usage", "reports", 5)]
    row = build_features(_one_lead_log(rows), AS_OF).frame.iloc[0]
    assert (row["trial_days_30d"], row["active_days_30d"]) == (1, 1)
    daily = [(d + 0.4, "web_visit", None, 30) for d in range(30)] + [(29.9, "web_visit", None, 1)]
    row = build_features(_one_lead_log(daily), AS_OF).frame.iloc[0]
    assert row["activities_30d"] == 31 and row["active_days_30d"] == 30
    assert row["active_days_90d"] == 31  # within 90 days, all 31 calendar days count


def test_emails_we_sent_are_not_the_leads_activity():
    """A lead who only received newsletters did nothing: no activity, no recency, no active
    day, while the sends still count as sends (and make the e-mail rates 0, not missing)."""
    rows = [(d, "email_sent", "newsletter", None) for d in (0.5, 3, 9, 20)]
    row = build_features(_one_lead_log(rows), AS_OF).frame.iloc[0]
    assert row["email_sends_90d"] == 4 and row["email_open_rate_90d"] == 0
    assert row["activities_7d"] == row["activities_total"] == row["active_days_90d"] == 0
    assert row["activity_types_90d"] == 0 and np.isnan(row["activity_trend"])
    assert np.isnan(row["days_since_last_activity"])
    assert np.isnan(row["days_since_first_activity"])
    # one visit among the sends is the lead's only activity
    row = build_features(_one_lead_log([*rows, (6, "web_visit", None, 30)]), AS_OF).frame.iloc[0]
    assert row["activities_total"] == row["active_days_30d"] == row["activity_types_90d"] == 1
    assert row["days_since_last_activity"] == row["days_since_first_activity"] == 6


#: E-mail logs of one lead in the last 90 days, (type, e-mail name) per row, and the rates.
EMAIL_LOGS = {
    # one e-mail clicked three times is one e-mail clicked, not 300%
    "clicked thrice": ([("email_sent", "oct"), *[("email_click", "oct")] * 3], 0.0, 1.0),
    # two e-mails, one of them opened three times: half of them were opened
    "one of two": (
        [("email_sent", "a"), ("email_sent", "b"), *[("email_open", "a")] * 3],
        0.5,
        0.0,
    ),
    # a campaign name sending five e-mails, two opened: names are not e-mails
    "drip campaign": ([("email_sent", "nurture")] * 5 + [("email_open", "nurture")] * 2, 0.4, 0.0),
    # no names at all: opens per send, at most one per send
    "no names": ([("email_sent", None)] * 2 + [("email_open", None)] * 3, 1.0, 0.0),
    # named sends, opens logged without a name: they pair with any send
    "unnamed opens": (
        [("email_sent", "a"), ("email_sent", "b"), ("email_open", None), ("email_click", "a")],
        0.5,
        0.5,
    ),
}


@pytest.mark.parametrize("case", list(EMAIL_LOGS))
def test_email_rates_are_shares_of_the_emails_received(case):
    log, open_rate, click_rate = EMAIL_LOGS[case]
    rows = [(10 + i / 100, kind, name, None) for i, (kind, name) in enumerate(log)]
    row = build_features(_one_lead_log(rows), AS_OF).frame.iloc[0]
    assert row["email_open_rate_90d"] == pytest.approx(open_rate)
    assert row["email_click_rate_90d"] == pytest.approx(click_rate)


def _paired(log: pd.DataFrame, kind: str) -> int:
    """The most ``kind`` rows paired with sends, one each, by name or with an unnamed row:
    a maximum bipartite matching, the slow, obvious way."""
    from scipy.optimize import linear_sum_assignment

    sends = log[log["activity_type"] == "email_sent"]["detail"].tolist()
    others = log[log["activity_type"] == kind]["detail"].tolist()
    if not sends or not others:
        return 0
    fits = np.array([[a is None or b is None or a == b for b in sends] for a in others])
    rows, cols = linear_sum_assignment(fits, maximize=True)
    return int(fits[rows, cols].sum())


def test_email_rates_match_a_maximum_pairing_and_stay_within_0_and_1():
    rng = np.random.default_rng(5)
    names = ["a", "b", "c", None]
    types = ["email_sent", "email_open", "email_click"]
    rows = []
    for lead in range(60):
        for _ in range(rng.integers(0, 12)):
            rows.append(
                (
                    f"L{lead:02d}",
                    ago(float(rng.uniform(0, 120))),  # some outside the 90 days
                    types[rng.integers(0, 3)],
                    names[rng.integers(0, 4)],
                )
            )
    activities = pd.DataFrame(rows, columns=["lead_id", "occurred_at", "activity_type", "detail"])
    leads = pd.DataFrame({"lead_id": [f"L{i:02d}" for i in range(60)], "created_at": ago(200)})
    data = validate_closed_loop(leads, activities)
    frame = build_features(data, AS_OF).frame.set_index("lead_id")
    recent = data.activities[
        (data.activities["occurred_at"] > AS_OF - pd.Timedelta(days=90))
        & (data.activities["occurred_at"] <= AS_OF)
    ].astype({"detail": object})
    recent["detail"] = recent["detail"].where(recent["detail"].notna(), None)
    for lead, row in frame.iterrows():
        log = recent[recent["lead_id"] == lead]
        sends = int((log["activity_type"] == "email_sent").sum())
        for kind, rate in (
            ("email_open", "email_open_rate_90d"),
            ("email_click", "email_click_rate_90d"),
        ):
            if sends == 0:
                assert np.isnan(row[rate]), lead
            else:
                assert row[rate] == pytest.approx(_paired(log, kind) / sends), (lead, kind)
                assert 0 <= row[rate] <= 1


def test_opens_without_logged_sends_do_not_read_as_no_emails_received():
    from leadscore.reasons import reason_text

    data = _one_lead_log([(d, "email_open", "oct", None) for d in (1, 2, 3, 4)])
    table = build_features(data, AS_OF)
    features = {f.name: f for f in table.features}
    row = table.frame.iloc[0]
    for rate in ("email_open_rate_90d", "email_click_rate_90d"):
        assert np.isnan(row[rate])
        text = reason_text(features[rate], None)
        assert "received no" not in text.lower() and "no record" in text.lower(), text


def test_one_email_opened_three_times_reads_as_three_opens_not_three_emails():
    """Trackers log an open each time an e-mail is shown: the count is of opens."""
    from leadscore.reasons import reason_text

    data = _one_lead_log(
        [(1, "email_sent", "oct", None)]
        + [(d, "email_open", "oct", None) for d in (1, 2, 3)]
        + [(2, "email_click", "oct", None)]
    )
    table = build_features(data, AS_OF)
    features = {f.name: f for f in table.features}
    row = table.frame.iloc[0]
    assert row["email_opens_30d"] == 3 and row["email_open_rate_90d"] == 1
    assert reason_text(features["email_opens_30d"], 3.0) == (
        "Opened marketing e-mails 3 times in the last 30 days"
    )
    assert reason_text(features["email_clicks_30d"], 1.0) == (
        "Clicked a link in a marketing e-mail 1 time in the last 30 days"
    )


def test_synthetic_email_rates_stay_shares_and_read_as_before():
    """The generator logs one open per opened e-mail: the rates keep their meaning there."""
    from leadscore.reasons import reason_text
    from leadscore.synth import SynthParams, generate_closed_loop

    synthetic = generate_closed_loop(SynthParams(n_leads=3000, seed=2))
    data = validate_closed_loop(
        synthetic.leads, synthetic.activities, observed_until=synthetic.observed_until
    )
    table = build_features(data, synthetic.observed_until)
    frame = table.frame
    features = {f.name: f for f in table.features}
    opens, clicks = frame["email_open_rate_90d"], frame["email_click_rate_90d"]
    assert opens.notna().mean() > 0.2
    assert opens.dropna().between(0, 1).all() and clicks.dropna().between(0, 1).all()
    assert (clicks.dropna() <= opens.dropna() + 1e-12).mean() > 0.99  # clicks follow opens
    assert 0.1 < opens.mean() < 0.9
    assert reason_text(features["email_open_rate_90d"], 0.25) == (
        "Opened 25% of marketing e-mails in the last 90 days"
    )


def test_as_of_minutes_after_the_extract_is_no_warning(window_data, caplog):
    """A weekly job scores "now", minutes after the extract: no warning; days later, one
    that names the fix."""
    extract = window_data.observed_until
    with caplog.at_level("WARNING", logger="leadscore.features"):
        build_features(window_data, extract + pd.Timedelta(minutes=15))
        build_features(window_data, extract + pd.Timedelta(hours=23))
    assert "observed_until" not in caplog.text
    with caplog.at_level("WARNING", logger="leadscore.features"):
        build_features(window_data, extract + pd.Timedelta(days=3))
    assert "observed_until" in caplog.text and "recent activity may be missing" in caplog.text
    assert "manifest.json" in caplog.text and "--as-of" in caplog.text


def reference_counts(data, as_of: pd.Timestamp) -> pd.DataFrame:
    """A few features the slow, obvious way: one lead at a time in Python."""
    rows = {}
    acts = data.activities
    for lead in data.leads.loc[data.leads["created_at"] <= as_of, "lead_id"]:
        mine = acts[
            (acts["lead_id"] == lead)
            & (acts["occurred_at"] <= as_of)
            & (acts["activity_type"] != "email_sent")
        ]
        age = as_of - mine["occurred_at"]
        pricing = (mine["activity_type"] == "page_view") & (mine["detail"] == "pricing")
        rows[lead] = {
            "activities_7d": float((age < pd.Timedelta(days=7)).sum()),
            "pricing_page_views_30d": float((pricing & (age < pd.Timedelta(days=30))).sum()),
            "active_days_90d": float(
                min(
                    90,
                    len(
                        {
                            t.normalize()
                            for t, a in zip(mine["occurred_at"], age, strict=True)
                            if a < pd.Timedelta(days=90)
                        }
                    ),
                )
            ),
            "days_since_last_activity": (age.min() / pd.Timedelta(days=1) if len(mine) else np.nan),
        }
    return pd.DataFrame.from_dict(rows, orient="index").sort_index()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=event_data())
def test_windowed_features_match_a_reference_implementation(case):
    data = validate_closed_loop(case["leads"], case["activities"], case["outcomes"])
    table = build_features(data, case["as_of"], threads=1)
    expected = reference_counts(data, case["as_of"])
    if expected.empty:
        assert table.frame.empty
        return
    got = table.frame.set_index("lead_id")[list(expected.columns)]
    got.index.name = None
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-12)


# --------------------------------------------------------------------------- catalogue, dtypes


def test_every_feature_has_a_group_a_label_and_a_unique_name():
    catalogue = feature_catalogue()
    names = [f.name for f in catalogue]
    assert len(names) == len(set(names))
    assert 40 <= len(catalogue) <= 70
    for f in catalogue:
        assert f.group in ("fit", "engagement")
        assert f.kind in ("numeric", "categorical")
        assert f.label.strip() and f.label[0].isupper(), f


def test_dtypes_follow_feature_kinds(window_data):
    table = build_features(window_data, AS_OF)
    assert list(table.frame.columns) == ["lead_id", *(f.name for f in table.features)]
    for f in table.features:
        column = table.frame[f.name]
        if f.kind == "categorical":
            assert isinstance(column.dtype, pd.CategoricalDtype), f.name
        else:
            assert column.dtype == np.float64, f.name
    assert table.as_of == AS_OF


def test_only_present_lead_columns_make_fit_features(event_frames):
    table = build_features(validate_closed_loop(**event_frames), "2024-03-01")
    fit = {f.name for f in table.features if f.group == "fit"}
    assert fit == {"source", "seniority", "department"}


def test_extra_lead_columns_pass_through_typed_from_the_data(event_frames):
    leads = event_frames["leads"].assign(
        annual_revenue=[1e6, None, 5e5],
        plan=["free", "pro", None],
        signed_up_at=pd.to_datetime(["2024-01-02", "2024-01-06", "2024-02-02"]),
        seniority=["x", "y", "z"],
    )
    table = build_features(validate_closed_loop(leads, event_frames["activities"]), "2024-03-01")
    kinds = {f.name: (f.kind, f.label) for f in table.features if f.group == "fit"}
    assert kinds["annual_revenue"] == ("numeric", "Annual revenue")
    assert kinds["plan"] == ("categorical", "Plan")
    assert kinds["extra_seniority"][0] == "categorical"
    assert "signed_up_at" not in kinds  # a timestamp could postdate as-of
    assert table.frame["annual_revenue"].tolist()[:1] == [1e6]


def test_lead_fit_features_read_the_leads_as_the_features_do(event_frames):
    """Spark's input checks read a model's fit features from the leads table alone: the
    same values the features hold."""
    leads = event_frames["leads"].assign(
        company_size=["51-200", "1,001-5,000", None],
        annual_revenue=["$1.2M", None, "500000"],
        seniority=[1.0, 2.0, 3.0],
        plan=["free", " pro", None],
    )
    table = build_features(validate_closed_loop(leads, event_frames["activities"]), "2024-03-01")
    fit = lead_fit_features(leads, table.features)
    assert list(fit.columns) == [f.name for f in table.features if f.group == "fit"]
    assert {"company_size", "annual_revenue", "extra_seniority", "plan", "seniority"} <= set(
        fit.columns
    )
    pd.testing.assert_frame_equal(
        fit, table.frame[fit.columns].set_axis(leads.index), check_dtype=False
    )
    with pytest.raises(DataError, match=r"leads have no column 'annual_revenue', which the model"):
        check_lead_columns(leads.drop(columns="annual_revenue").columns, table.features)


def test_extra_lead_column_with_a_non_text_name(event_frames):
    leads = event_frames["leads"].copy()
    leads[0] = [1, 2, 3]
    table = build_features(validate_closed_loop(leads), "2024-03-01")
    assert table.frame["0"].tolist() == [1.0, 2.0, 3.0]


def test_text_dates_in_lead_columns_are_left_out_like_timestamps(tmp_path, event_frames):
    leads = event_frames["leads"].assign(
        plan=["free", "pro", None],
        signed_up_at=["2024-05-01", None, "2024-06-01T10:00:00"],  # filled in after as-of
        renewal=["01/07/2024", "15/08/2024", None],
        last_contacted=["Jun 20, 2024", None, "March 3, 2024"],  # CRM word formats
        demo_on=["20 June 2024", "05-Mar-24", None],
    )
    write_tables({"leads": leads, "activities": event_frames["activities"]}, tmp_path, fmt="csv")
    data = load_closed_loop(tmp_path)
    assert ptypes.is_string_dtype(data.leads["signed_up_at"])
    names = {f.name for f in build_features(data, "2024-03-01").features}
    assert "plan" in names
    assert not names & {"signed_up_at", "renewal", "last_contacted", "demo_on"}


def test_lead_columns_holding_lists_or_objects_are_left_out(tmp_path, event_frames):
    import duckdb

    path = tmp_path / "crm.duckdb"
    leads = event_frames["leads"].assign(plan=["free", "pro", None])
    with duckdb.connect(str(path)) as con:
        con.register("frame", leads)
        con.execute(
            "CREATE TABLE leads AS SELECT *, CASE WHEN lead_id = 'a' THEN ['webinar', 'ebook'] "
            "ELSE [] END AS tags, {'k': 1} AS meta FROM frame"
        )
    data = load_closed_loop(path)
    table = build_features(data, "2024-03-01")
    names = {f.name for f in table.features}
    assert "plan" in names and not names & {"tags", "meta"}
    ds = build_training_examples(
        validate_closed_loop(
            data.leads, outcomes=event_frames["outcomes"], observed_until="2024-06-01"
        ),
        ["2024-01-10"],
        horizon_days=30,
    )
    assert ds.excluded["tags"] == "holds lists or objects, not single values"


def test_none_yet_features_say_so_when_missing():
    sentences = {f.name: f.missing_sentence for f in feature_catalogue()}
    assert sentences["days_since_last_activity"] == "No activity yet"
    assert sentences["days_since_first_activity"] == "No activity yet"
    assert sentences["days_since_last_high_intent"] == "No high-intent action yet"
    for rate in ("email_open_rate_90d", "email_click_rate_90d"):
        # a lead with opens whose sends are not logged has no rate either: no "received no"
        assert sentences[rate] == "No record of marketing e-mails sent in the last 90 days"
    assert sentences["lead_age_days"] is None and sentences["pricing_page_views_30d"] is None


def test_features_never_read_outcomes(event_frames):
    with_outcomes = validate_closed_loop(**event_frames)
    without = validate_closed_loop(event_frames["leads"], event_frames["activities"])
    for as_of in ("2024-01-03", "2024-02-15", "2024-12-31"):
        assert_same_features(
            build_features(with_outcomes, as_of).frame, build_features(without, as_of).frame
        )


def test_bad_as_of_is_a_one_line_error(event_frames):
    data = validate_closed_loop(**event_frames)
    with pytest.raises(DataError, match="not a date"):
        build_features(data, "next tuesday")
    both = r"'05/06/2024' reads both day-first \(2024-06-05\) and month-first \(2024-05-06\)"
    with pytest.raises(DataError, match=both):
        build_features(data, "05/06/2024")
    assert build_features(data, "25/01/2024").as_of == pd.Timestamp("2024-01-25")
    for yearless in ("June 30", "06/30", "30 June"):  # pandas puts these in the year 1
        with pytest.raises(DataError, match=rf"'{yearless}' has no year"):
            build_features(data, yearless)


def test_an_as_of_in_the_future_is_refused_with_a_day_of_slack():
    from leadscore.features import parse_as_of

    now = pd.Timestamp("2026-11-23 10:00")
    assert parse_as_of("2026-11-24 09:00", now=now) == pd.Timestamp("2026-11-24 09:00")
    with pytest.raises(DataError, match="--as-of 2030-01-01 00:00 is in the future"):
        parse_as_of("2030-01-01", now=now)
    with pytest.raises(DataError, match="has no year"):
        parse_as_of("June 30", now=now)


def test_as_of_with_timezone_means_utc(event_frames):
    data = validate_closed_loop(**event_frames)
    local = build_features(data, "2024-01-03T11:00:00+01:00")
    utc = build_features(data, "2024-01-03T10:00:00")
    assert local.as_of == utc.as_of
    assert_same_features(local.frame, utc.frame)


# --------------------------------------------------------------------------- fit parsers


@pytest.mark.parametrize(
    ("title", "seniority", "department"),
    [
        ("Chief Marketing Officer", "c_level", "marketing"),
        ("CEO", "c_level", "executive"),
        ("Co-Founder & CEO", "c_level", "executive"),
        ("Vice President, Sales", "vp", "sales"),
        ("SVP Engineering", "vp", "engineering"),
        ("Head of Growth", "director", "marketing"),
        ("Director of IT", "director", "it"),
        ("Finance Manager", "manager", "finance"),
        ("Sr. Recruiter", "senior", "hr"),
        ("Senior Product Designer", "senior", "product"),
        ("Operations Analyst", "individual", "operations"),
        ("Account Executive", "individual", "sales"),
        ("Marketing Intern", "intern", "marketing"),
        ("Student", "student", "other"),
        ("Teacher", "individual", "other"),
        # a chief no function names is executive; CSO reads as sales
        ("CSO", "c_level", "sales"),
        ("Chief Strategy Officer", "c_level", "executive"),
        ("Chief Data Officer", "c_level", "data"),
        ("Analytics Manager", "manager", "data"),
        ("Data Analyst", "individual", "data"),
        ("Data Engineer", "individual", "data"),
        ("Head of BI", "director", "data"),
        ("Financial Analyst", "individual", "finance"),
        ("Database Administrator", "individual", "it"),
        ("Retired", "not_employed", "other"),
        ("Job Seeker", "not_employed", "other"),
        ("Freelancer", "individual", "other"),
        ("  n/a ", "unknown", "unknown"),
        (None, "unknown", "unknown"),
    ],
)
def test_job_title_parser(title, seniority, department):
    titles = pd.Series([title], dtype="str")
    assert parse_seniority(titles).tolist() == [seniority]
    assert parse_department(titles).tolist() == [department]


def test_job_title_parser_keeps_index_and_fixed_categories():
    titles = pd.Series(["CTO", "Intern", None, "CTO"], index=[10, 11, 12, 13])
    seniority = parse_seniority(titles)
    assert list(seniority.index) == [10, 11, 12, 13]
    assert list(seniority.cat.categories) == list(SENIORITY_LEVELS)
    assert list(parse_department(titles).cat.categories) == list(DEPARTMENTS)


def test_email_domain_kind():
    emails = pd.Series(
        [
            "Ann@Acme.io",
            "bob@gmail.com",
            "c@yahoo.co.uk",
            "d@GMX.de",
            None,
            "not an email",
            "e@web.de",
            "f@sub.corp.example.com",
        ]
    )
    assert email_domain_kind(emails).tolist() == [
        "corporate",
        "free",
        "free",
        "free",
        "missing",
        "missing",
        "free",
        "corporate",
    ]
    domains = pd.Series(["acme.io", "hotmail.com", None, None])
    both = pd.Series(["x@outlook.com", None, "y@firm.de", None])
    assert email_domain_kind(domains=domains).tolist() == [
        "corporate",
        "free",
        "missing",
        "missing",
    ]
    assert email_domain_kind(both, domains).tolist() == ["free", "free", "corporate", "missing"]


def test_an_address_column_reads_the_same_raw_and_already_read():
    """The scorer types a chunk, then scoring types it again: addresses read once must read
    the same a second time, and a column is addresses when 90% of its distinct values are."""
    raw = pd.Series(["Ann@Acme.io ", "bob@gmail.com", None, "n/a"], dtype="str")
    once = read_email_domain_kind(raw)
    assert once.tolist() == ["corporate", "free", "missing", "missing"]
    assert read_email_domain_kind(once).tolist() == once.tolist()
    assert READING_WORDS.keys() == VALUE_READINGS.keys()  # every reading can be named
    addresses = [f"p{i}@acme.io" for i in range(9)]
    assert looks_like_email_addresses(pd.Series([*addresses, "n/a"]))
    assert not looks_like_email_addresses(pd.Series([*addresses[:8], "n/a", "ann at acme"]))


def test_company_size_band_and_text_sizes():
    sizes = pd.Series([1, 10, 11, 50, 51, 200, 201, 1000, 1001, 5000, 5001, None, 0, -3])
    assert company_size_band(sizes).tolist() == [
        "1-10",
        "1-10",
        "11-50",
        "11-50",
        "51-200",
        "51-200",
        "201-1000",
        "201-1000",
        "1001-5000",
        "1001-5000",
        "5001+",
        "unknown",
        "unknown",
        "unknown",
    ]
    text = pd.Series(["51-200", "10,000+", "42", "about twenty", None])
    parsed = parse_company_size(text)
    np.testing.assert_array_equal(parsed.to_numpy(), [125.5, 10001, 42, np.nan, np.nan])
    assert company_size_band(parsed).tolist() == ["51-200", "5001+", "11-50", "unknown", "unknown"]


def test_a_company_size_nothing_reads_is_warned_about_once(caplog):
    """ "lots" is scored as "company size not given": a typo should not pass for that quietly.
    The leads table is checked once when it is read, not per as-of date or chunk."""
    past, _ = _keyword_leads()
    sizes = np.where(np.arange(len(past)) % 100 == 0, "lots", "51-200")
    caplog.set_level("WARNING", logger="leadscore")
    table = build_features(validate_closed_loop(past.assign(company_size=sizes)), "2024-02-01")
    warned = [r.getMessage() for r in caplog.records if "company_size" in r.getMessage()]
    assert len(warned) == 1
    assert "8 value(s) read as not given, such as 'lots'" in warned[0]
    assert table.frame["company_size_band"].eq("unknown").sum() == 8
    caplog.clear()
    build_features(validate_closed_loop(past.assign(company_size="51-200")), "2024-02-01")
    assert not [r for r in caplog.records if "company_size" in r.getMessage()]


def test_the_slice_reader_warns_of_unread_company_sizes_once(tmp_path, caplog):
    from leadscore.io import iter_closed_loop_chunks, write_tables

    past, _ = _keyword_leads()
    sizes = np.where(np.arange(len(past)) % 100 == 0, "lots", "51-200")
    data = validate_closed_loop(past.assign(company_size=sizes))
    write_tables({"leads": data.leads}, tmp_path / "crm")
    caplog.set_level("WARNING", logger="leadscore")
    caplog.clear()
    slices = list(iter_closed_loop_chunks(tmp_path / "crm", chunk_leads=200))
    assert len(slices) > 1
    warned = [r.getMessage() for r in caplog.records if "company_size" in r.getMessage()]
    assert len(warned) == 1 and "8 value(s) read as not given" in warned[0]


def test_n_plus_sizes_land_in_the_band_above_n():
    """A CRM's "1000+" follows its "201-1000": more than 1000 employees, never 1000 itself."""
    sizes = pd.Series(["10+", "50+", "200+", "1000+", "1,000+", "5000+", " 5000 + ", "10,000+"])
    bands = company_size_band(parse_company_size(sizes)).tolist()
    assert bands == [
        "11-50",
        "51-200",
        "201-1000",
        "1001-5000",
        "1001-5000",
        "5001+",
        "5001+",
        "5001+",
    ]
    # a band written as a range and the head counts at its ends keep their band
    ends = pd.Series(["201-1000", "1000", "1001", "1001-5000", "5000"])
    assert company_size_band(parse_company_size(ends)).tolist() == [
        "201-1000",
        "201-1000",
        "1001-5000",
        "1001-5000",
        "1001-5000",
    ]


# --------------------------------------------------------------------------- training examples


@pytest.fixture
def outcome_data():
    leads = pd.DataFrame(
        {
            "lead_id": ["a", "b", "c", "d", "e", "f"],
            "created_at": [
                "2024-01-01",
                "2024-01-01",
                "2024-01-15",
                "2024-02-15",
                "2024-01-10",
                "2024-01-10",
            ],
            "source": ["ads", "seo", "ads", "tv", "seo", "ads"],
        }
    )
    outcomes = pd.DataFrame(
        {
            "lead_id": ["a", "b", "c", "e", "f"],
            "outcome": ["won", "lost", "won", "won", "won"],
            "closed_at": ["2024-02-10", "2024-01-20", "2024-03-20", "2024-02-01", "2024-03-02"],
        }
    )
    activities = pd.DataFrame(
        {
            "lead_id": ["a", "c"],
            "occurred_at": ["2024-01-05", "2024-02-20"],
            "activity_type": ["page_view", "chat"],
            "detail": ["pricing", None],
        }
    )
    return validate_closed_loop(leads, activities, outcomes, observed_until="2024-04-15")


def test_training_examples_labels_exclusions_and_censoring(outcome_data):
    dates = ["2024-02-01", "2024-03-01", "2024-04-01"]  # the last window ends after 04-15
    ds = build_training_examples(outcome_data, dates, horizon_days=30, name="toy")
    got = list(zip(ds.order.dt.strftime("%m-%d"), ds.lead_id, ds.y.tolist(), strict=True))
    # b closed before 02-01; e closed exactly at 02-01 (closed_at <= as_of is closed);
    # f closes exactly at as_of + 30 days (inside the window); d is created on 02-15.
    assert got == [
        ("02-01", "a", 1),
        ("02-01", "c", 0),
        ("02-01", "f", 1),
        ("03-01", "c", 1),
        ("03-01", "d", 0),
        ("03-01", "f", 1),
    ]
    assert ds.name == "toy" and ds.horizon_days == 30
    assert ds.order_kind == "time"
    assert ds.X.shape == (6, len(ds.features))
    assert isinstance(ds.X["source"].dtype, pd.CategoricalDtype)
    assert set(ds.X["source"].cat.categories) == {"ads", "tv"}
    assert "outcomes" in ds.excluded
    # c's chat on 02-20 is seen at 03-01 but not at 02-01
    assert ds.X["has_chatted"].tolist() == [0, 0, 0, 1, 0, 0]


def test_training_examples_rows_equal_features_at_that_date(outcome_data):
    ds = build_training_examples(outcome_data, ["2024-03-01"], horizon_days=30)
    direct = build_features(outcome_data, "2024-03-01").frame.set_index("lead_id")
    rows = ds.X.assign(lead_id=ds.lead_id).set_index("lead_id")
    # categories come from the leads scored, so only the values can be compared
    pd.testing.assert_frame_equal(rows, direct.loc[rows.index], check_categorical=False)


def test_training_examples_refuse_fully_censored_dates(outcome_data):
    with pytest.raises(DataError, match="complete 30-day outcome window"):
        build_training_examples(outcome_data, ["2024-04-01"], horizon_days=30)
    with pytest.raises(SpecError, match="horizon_days"):
        build_training_examples(outcome_data, ["2024-02-01"], horizon_days=0)


def test_default_as_of_dates_leave_complete_windows(outcome_data):
    dates = default_as_of_dates(outcome_data, horizon_days=30, every_days=7, warmup_days=14)
    assert dates == sorted(dates)
    assert dates[-1] == pd.Timestamp("2024-03-16")
    assert dates[0] >= pd.Timestamp("2024-01-15")
    assert all(
        later - earlier == pd.Timedelta(days=7) for earlier, later in itertools.pairwise(dates)
    )
    with pytest.raises(DataError, match="too little time"):
        default_as_of_dates(outcome_data, horizon_days=200)


# --------------------------------------------------------------------------- CLI


def test_cli_round_trip(tmp_path, event_frames, capsys):
    folder = tmp_path / "events"
    write_tables(event_frames, folder, fmt="csv")
    out = tmp_path / "features.parquet"
    assert (
        main(["features", "--data", str(folder), "--as-of", "2024-01-10", "--out", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert "2 leads as of 2024-01-10" in printed
    assert "fit (3)" in printed
    written = pd.read_parquet(out)
    expected = build_features(validate_closed_loop(**event_frames), "2024-01-10").frame
    assert list(written["lead_id"]) == ["a", "b"]
    assert written["pricing_page_views_30d"].tolist() == [1.0, 0.0]
    for column in expected.columns:
        if ptypes.is_float_dtype(expected[column]):
            np.testing.assert_array_equal(written[column].to_numpy(), expected[column].to_numpy())


def test_cli_default_as_of_is_end_of_data(tmp_path, event_frames, capsys):
    folder = tmp_path / "events"
    write_tables(event_frames, folder)
    assert main(["features", "--data", str(folder)]) == 0
    assert "3 leads as of 2024-03-01" in capsys.readouterr().out


# --------------------------------------------------------------------------- wording


def test_every_template_reads_well_at_zero_one_and_two():
    from leadscore.reasons import reason_text

    templated = [f for f in feature_catalogue() if f.sentence and f.kind == "numeric"]
    assert len(templated) > 40
    for feature in templated:
        zero, one, two = (reason_text(feature, v) for v in (0.0, 1.0, 2.0))
        assert "{" not in zero + one + two and f"{feature.label}:" not in one, feature.name
        if " 2 " in f"{two} ":  # "2 times" against "1 time", "2 activities" against "1 activity"
            assert f"{one} ".replace(" 1 ", " 2 ") != f"{two} ", (feature.name, one, two)
        # a value shown as 1 takes the singular whatever its decimals (one shown as 1.2 or
        # 120% is another value)
        shown_apart = "%" in one or "1.2 " in reason_text(feature, 1.2)
        assert reason_text(feature, 1.2) == reason_text(feature, 1.0) or shown_apart, feature.name
        assert " 0 days ago" not in zero, zero
    texts = {f.name: f for f in templated}
    assert (
        reason_text(texts["activities_30d"], 1.0)
        == "Had 1 activity of any kind in the last 30 days"
    )
    assert (
        reason_text(texts["days_since_last_high_intent"], 1.3)
        == "Last high-intent action 1 day ago"
    )
    assert reason_text(texts["lead_age_days"], 0.2) == "Became a lead less than a day ago"
    assert reason_text(texts["has_chatted"], 1.0) == "Chatted with us"
    assert reason_text(texts["has_chatted"], 0.0) == "Has not chatted with us"
    assert reason_text(texts["has_trial"], 0.0) == "Has not started a free trial"
    # a categorical template reads its categories: the size band as the size reads it
    band = next(f for f in feature_catalogue() if f.name == "company_size_band")
    assert reason_text(band, "11-50") == reason_text(texts["company_size"], 30.5)
    assert reason_text(band, "unknown") == reason_text(texts["company_size"], None)


def test_a_boolean_lead_column_reads_yes_or_no(event_frames):
    from leadscore.reasons import reason_text

    leads = event_frames["leads"].assign(is_partner=[True, False, None], seats=[1, 2, 3])
    table = build_features(validate_closed_loop(leads), "2024-03-01")
    features = {f.name: f for f in table.features}
    assert table.frame["is_partner"].tolist()[:2] == [1.0, 0.0]
    assert reason_text(features["is_partner"], 1.0) == "Is partner: yes"
    assert reason_text(features["is_partner"], 0.0) == "Is partner: no"
    assert reason_text(features["seats"], 1.0) == "Seats: 1"
    assert reason_text(features["seniority"], "c_level") == "Seniority from the job title: C-level"


# --------------------------------------------------------------------------- extra columns, typed


def _budget_leads(n: int = 1500) -> pd.DataFrame:
    """Leads by 2024-02-01 whose budget and seats are numbers (budget different per lead)."""
    rng = np.random.default_rng(4)
    return pd.DataFrame(
        {
            "lead_id": [f"p{i}" for i in range(n)],
            "created_at": BASE + pd.to_timedelta(rng.integers(0, 30 * 24, n), unit="h"),
            "budget": np.round(rng.lognormal(8, 1, n), 2),
            "seats": rng.integers(1, 20, n),
            "plan": rng.choice(["free", "pro"], n),
        }
    )


def test_a_later_lead_with_text_in_a_number_column_changes_no_feature(tmp_path):
    past = _budget_leads()
    later = pd.DataFrame(
        {
            "lead_id": ["NEW1", "NEW2", "NEW3"],
            "created_at": pd.Timestamp("2024-03-01"),
            "budget": ["unknown", "n/a", "?"],
            "seats": ["many", "1", "2"],
            "plan": ["pro", "free", "pro"],
        }
    )
    for name, leads in (("before", past), ("after", pd.concat([past, later], ignore_index=True))):
        write_tables({"leads": leads}, tmp_path / name, fmt="csv")
    after = load_closed_loop(tmp_path / "after")
    assert ptypes.is_string_dtype(after.leads["budget"])  # the CSV reader saw the text
    old = build_features(load_closed_loop(tmp_path / "before"), "2024-02-01")
    new = build_features(after, "2024-02-01")
    assert old.features == new.features
    kinds = {f.name: f.kind for f in new.features}
    assert (kinds["budget"], kinds["seats"], kinds["plan"]) == ("numeric", "numeric", "categorical")
    assert_same_features(old.frame, new.frame)
    # training plans from its latest as-of date, so the later leads decide nothing there either
    ds = build_training_examples(
        validate_closed_loop(after.leads, observed_until="2024-06-01"),
        ["2024-02-01"],
        horizon_days=30,
    )
    assert {"budget", "seats"} <= set(ds.X.columns) and "budget" not in ds.excluded


def test_a_later_word_in_a_true_false_column_changes_no_feature(tmp_path):
    """A CSV column of only True and False is read as booleans; one later lead's
    ``unknown`` makes the whole file's column text. The leads known at as-of plan the same
    flag either way, read as yes or no."""
    past = _budget_leads(300)
    past["has_budget"] = np.arange(300) % 3 == 0
    later = pd.DataFrame(
        {"lead_id": ["NEW1"], "created_at": pd.Timestamp("2024-03-01"), "has_budget": ["unknown"]}
    )
    for name, leads in (("before", past), ("after", pd.concat([past, later], ignore_index=True))):
        write_tables({"leads": leads}, tmp_path / name, fmt="csv")
    before, after = load_closed_loop(tmp_path / "before"), load_closed_loop(tmp_path / "after")
    assert ptypes.is_bool_dtype(before.leads["has_budget"])
    assert ptypes.is_string_dtype(after.leads["has_budget"])
    old = build_features(before, "2024-02-01")
    new = build_features(after, "2024-02-01")
    assert old.features == new.features
    flag = next(f for f in new.features if f.name == "has_budget")
    assert flag.kind == "numeric" and flag.sentence == "Has budget: {value:yes|no}"
    assert_same_features(old.frame, new.frame)
    # scoring the later lead with the planned features names the word, not a True
    with pytest.raises(DataError, match=r"leads\.has_budget must be numeric but holds 'unknown'"):
        build_features(after, "2024-03-02", features=new.features)


def test_numbers_with_a_few_words_are_left_out_naming_the_words():
    leads = _budget_leads().astype({"budget": "str"})
    leads.loc[:2, "budget"] = ["unknown", "?", "unknown"]
    ds = build_training_examples(
        validate_closed_loop(leads, observed_until="2024-06-01"), ["2024-02-01"], horizon_days=30
    )
    assert "budget" not in ds.X.columns
    assert ds.excluded["budget"] == "numbers with 3 non-numeric value(s), e.g. 'unknown', '?'"
    assert "identifier" not in ds.excluded["budget"]


def test_scoring_reads_numbers_written_as_text_and_refuses_words():
    past = _budget_leads(200)
    trained = build_features(validate_closed_loop(past), "2024-02-01")
    assert {f.name: f.kind for f in trained.features}["budget"] == "numeric"
    as_text = past.astype({"budget": "str"})
    as_text.loc[0, "budget"] = "12,500.75"
    scored = build_features(validate_closed_loop(as_text), "2024-02-01", features=trained.features)
    expected = past["budget"].to_numpy().copy()
    expected[0] = 12500.75
    got = scored.frame.set_index("lead_id").loc[past["lead_id"], "budget"].to_numpy()
    np.testing.assert_array_equal(got, expected)
    as_text.loc[1, "budget"] = "unknown"
    with pytest.raises(DataError, match=r"leads\.budget must be numeric but holds 'unknown'"):
        build_features(validate_closed_loop(as_text), "2024-02-01", features=trained.features)


def test_a_log_of_dates_without_times_is_warned_about_in_training(caplog):
    """Dates without a time of day read as midnight, the as-of dates' moment: an activity of
    the day a deal was won counts in that day's example. Said once; a log with times is not."""
    from leadscore.features import build_training_examples, default_as_of_dates
    from leadscore.synth import SynthParams, generate_closed_loop

    data = generate_closed_loop(SynthParams(n_leads=300, seed=4))
    dates = default_as_of_dates(data, 60)
    message = "activities.occurred_at holds dates without a time of day"
    with caplog.at_level("WARNING", logger="leadscore.features"):
        build_training_examples(data, dates, 60)
    assert message not in caplog.text
    days = data.activities.assign(occurred_at=data.activities["occurred_at"].dt.normalize())
    dated = validate_closed_loop(
        data.leads, days, data.outcomes, observed_until=data.observed_until
    )
    with caplog.at_level("WARNING", logger="leadscore.features"):
        build_training_examples(dated, dates, 60)
    assert caplog.text.count(message) == 1


def test_event_examples_take_the_whole_training_config_or_its_events_section() -> None:
    from leadscore.config import TrainConfig, parse_config
    from leadscore.synth import SynthParams, generate_closed_loop

    synthetic = generate_closed_loop(SynthParams(n_leads=400, seed=4))
    data = validate_closed_loop(
        synthetic.leads,
        synthetic.activities,
        synthetic.outcomes,
        observed_until=synthetic.observed_until,
    )
    config = parse_config({"events": {"horizon_days": 60, "every_days": 45}})
    whole = build_event_examples(data, config)
    section = build_event_examples(data, config.events)
    assert whole.horizon_days == 60 and whole.order.nunique() == section.order.nunique()
    pd.testing.assert_frame_equal(whole.X, section.X)
    assert (whole.y == section.y).all() and whole.lead_id.equals(section.lead_id)
    for wrong in ({"horizon_days": 60}, 60):
        with pytest.raises(UsageError, match=r"events is a .*Pass the training config or its"):
            build_event_examples(data, wrong)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"build_event_examples's data is a str"):
        build_event_examples("data/synthetic", TrainConfig())  # type: ignore[arg-type]


def test_an_as_of_after_the_extract_names_the_flag_and_the_python_keyword(caplog) -> None:
    import logging

    from leadscore.synth import SynthParams, generate_closed_loop

    synthetic = generate_closed_loop(SynthParams(n_leads=200, seed=5))
    data = validate_closed_loop(
        synthetic.leads,
        synthetic.activities,
        synthetic.outcomes,
        observed_until=synthetic.observed_until,
    )
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        build_features(data, data.observed_until + pd.Timedelta(days=10))
    said = [m for m in caplog.messages if "after observed_until" in m]
    assert len(said) == 1 and "--as-of (as_of= in Python) no later than" in said[0]
