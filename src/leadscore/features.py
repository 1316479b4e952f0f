"""Point-in-time features of leads from the event form.

:func:`build_features` turns leads, their activity log and nothing else into one row per lead
*as known at one moment* (``as_of``): fit features from what the lead told us (channel,
industry, company size, seniority and department parsed from the job title, corporate or free
e-mail) and engagement features from what it did (windowed counts, recency, frequency,
variety, trend, high-intent pages and forms, e-mail rates, chat and trial signals).

Point in time, precisely:

* a lead is scored when ``created_at <= as_of``;
* an activity counts when ``occurred_at <= as_of`` (the as-of instant is inclusive, so a bare
  date such as ``2024-03-01`` means midnight at the start of that day);
* "last N days" is ``as_of - N days < occurred_at <= as_of``;
* outcomes never enter features; they only make labels in :func:`build_training_examples`.

Engagement features are declared once in a table (:data:`_SIGNALS` and :data:`_DERIVED`) that
compiles into one DuckDB query: every windowed aggregate of every lead comes from a single pass
over the activity log, so 1M leads with 50M activities build in seconds on two cores.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
import re
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api import types as ptypes

from leadscore.encoding import classify_distinct, email_domain_kind, parse_numbers
from leadscore.errors import DataError, SpecError, UsageError
from leadscore.schema import (
    ACTIVITY_TYPES,
    HIGH_INTENT_FORMS,
    HIGH_INTENT_PAGES,
    KNOWN_FORMS,
    KNOWN_PAGES,
    LEAD_FIT_FIELDS,
    ClosedLoopData,
    Feature,
    FeatureTable,
    LabelledDataset,
    _to_numeric,
    is_known_id,
    normalized_labels,
    parse_company_size,
)
from leadscore.timestamps import (
    day_month_readings,
    future_cutoff,
    is_text_timestamps,
    utc_now,
)

if TYPE_CHECKING:
    from leadscore.config import EventConfig, TrainConfig

logger = logging.getLogger(__name__)

_DAY_US = 86_400_000_000

#: Calendar days (UTC dates) between an activity at ``ts`` and the as-of: 0 for the as-of's
#: date, 1 for the day before. Scoring at the extract's end, any time of day, then counts
#: days as training's midnight as-of dates do, not as 24-hour steps back from the as-of,
#: which split a working day's visits in two.
_CALENDAR_DAY_SQL = f"($as_of_us // {_DAY_US} - ts // {_DAY_US})"

SENIORITY_LEVELS: tuple[str, ...] = (
    "c_level",
    "vp",
    "director",
    "manager",
    "senior",
    "individual",
    "intern",
    "student",
    "not_employed",
    "unknown",
)
DEPARTMENTS: tuple[str, ...] = (
    "marketing",
    "sales",
    "data",
    "engineering",
    "it",
    "finance",
    "hr",
    "operations",
    "product",
    "executive",
    "other",
    "unknown",
)
#: Upper ends of the company size bands (employees, right-closed: 10 is in 1-10).
SIZE_BAND_CUTS: tuple[int, ...] = (10, 50, 200, 1000, 5000)
SIZE_BANDS: tuple[str, ...] = (
    "1-10",
    "11-50",
    "51-200",
    "201-1000",
    "1001-5000",
    "5001+",
    "unknown",
)

# First match wins: trainee titles before rank words ("Marketing Intern"), "vice president"
# before "president", named chiefs before generic rank words.
_SENIORITY_PATTERNS: tuple[tuple[str, str], ...] = (
    ("intern", r"\bintern(?:ship)?\b|\btrainee\b|\bapprentice\b|\bwerkstudent"),
    ("student", r"\bstudent\b|\bundergrad|\bphd candidate\b|\bgraduate student\b"),
    (
        "not_employed",
        r"\bretired\b|\bjob ?seeker\b|\bunemployed\b|\bbetween jobs\b|\bseeking\b"
        r"|\blooking for (?:a )?(?:job|work|opportunit)",
    ),
    ("vp", r"\bvice[- ]?president\b|\b[se]?vp\b"),
    (
        "c_level",
        r"\bc[a-z]o\b|\bchief\b|\b(?:co[- ]?)?founder\b|\bowner\b|\bpresident\b|\bpartner\b"
        r"|\bmanaging director\b",
    ),
    ("director", r"\bdirector\b|\bhead of\b|\bhead\b"),
    ("manager", r"\bmanager\b|\bmgr\b|\bsupervisor\b|\bteam lead\b|\blead\b"),
    ("senior", r"\bsenior\b|\bsr\b\.?|\bprincipal\b|\bstaff\b|\bexpert\b"),
)
# First match wins: functional words before the executive catch-all, so "VP Marketing" is
# marketing and "CEO" is executive; a chief no function names ("CSO" read as sales, the
# common reading in B2B; "Chief Strategy Officer") is executive. Data and analytics titles
# ("Data Engineer", "Analytics Manager") are the data team, before engineering.
_DEPARTMENT_PATTERNS: tuple[tuple[str, str], ...] = (
    (
        "marketing",
        r"market|\bcmo\b|\bgrowth\b|\bbrand|\bdemand gen|\bseo\b|\bcontent\b"
        r"|\bcommunications?\b|\bpr\b",
    ),
    (
        "sales",
        r"\bsales\b|\baccount (?:executive|manager|director)\b|\bbusiness development\b"
        r"|\b[bs]dr\b|\bcro\b|\bcso\b|\brevenue\b|\bcommercial\b|\bae\b",
    ),
    (
        "data",
        r"\bdata\b|\banalytics\b|\bbusiness intelligence\b|\bbi\b|\bcdo\b"
        r"|\bmachine learning\b|\bml\b",
    ),
    (
        "engineering",
        r"engineer|\bdevelop|\bsoftware\b|\bdevops\b|\bcto\b|\bchief technology\b|\barchitect\b"
        r"|\bprogrammer\b",
    ),
    (
        "it",
        r"\bit\b|\binformation technology\b|\bcio\b|\bciso\b|\bsys(?:tems?)? ?admin|\bnetwork\b"
        r"|\bsecurity\b|\bhelp ?desk\b|\binfrastructure\b|\bdatabase\b|\bdba\b",
    ),
    ("finance", r"financ|\bcfo\b|\baccount(?:ing|ant)\b|\bcontroller\b|\btreasur|\baudit"),
    ("hr", r"\bhr\b|\bhuman resources\b|\bpeople\b|\btalent\b|\brecruit|\bchro\b"),
    (
        "operations",
        r"\boperations?\b|\boperating\b|\bops\b|\bcoo\b|\blogistics\b|\bsupply chain\b"
        r"|\bprocurement\b|\bpurchasing\b",
    ),
    ("product", r"\bproduct\b|\bcpo\b|\bux\b|\bdesign"),
    (
        "executive",
        r"\bceo\b|\bchief executive\b|\b(?:co[- ]?)?founder\b|\bowner\b"
        r"|(?<!vice )(?<!vice-)(?<!vice)\bpresident\b"
        r"|\bmanaging director\b|\bgeneral manager\b|\bpartner\b|\bc[a-z]o\b|\bchief\b",
    ),
)
_MISSING_TITLES = frozenset({"", "-", "n/a", "na", "none", "null", "unknown", "select"})


# --------------------------------------------------------------------------- fit parsers


def _first_match(text: pd.Series, patterns: Sequence[tuple[str, str]], default: str) -> np.ndarray:
    out = np.full(len(text), default, dtype=object)
    undecided = np.ones(len(text), dtype=bool)
    for label, pattern in patterns:
        hit = text.str.contains(pattern, regex=True, na=False).to_numpy()
        out[hit & undecided] = label
        undecided &= ~hit
    return out


def _normal_titles(titles: pd.Series) -> tuple[pd.Series, np.ndarray]:
    text = titles.astype("str").str.strip().str.lower()
    missing = (text.isna() | text.isin(_MISSING_TITLES)).to_numpy()
    return text.str.replace(r"[_/&,|()]+", " ", regex=True), missing


def _seniority_of_unique(titles: pd.Series) -> np.ndarray:
    text, missing = _normal_titles(titles)
    out = _first_match(text, _SENIORITY_PATTERNS, "individual")
    out[missing] = "unknown"
    return out


def _department_of_unique(titles: pd.Series) -> np.ndarray:
    text, missing = _normal_titles(titles)
    out = _first_match(text, _DEPARTMENT_PATTERNS, "other")
    out[missing] = "unknown"
    return out


def parse_seniority(titles: pd.Series) -> pd.Series:
    """Seniority level of free-text job titles, one of :data:`SENIORITY_LEVELS`.

    Regexes, first match wins: intern, student, vp, c_level (chief, founder, owner, president),
    director (director, head of), manager (manager, lead), senior (senior, principal, staff).
    A title that names no rank is ``individual``; a missing or placeholder title ``unknown``.

    Examples
    --------
    >>> parse_seniority(pd.Series(["VP of Sales", "CTO", "Marketing Intern", None])).tolist()
    ['vp', 'c_level', 'intern', 'unknown']
    """
    out = classify_distinct(titles, _seniority_of_unique)
    return pd.Series(
        pd.Categorical(out, categories=SENIORITY_LEVELS), index=titles.index, name="seniority"
    )


def parse_department(titles: pd.Series) -> pd.Series:
    """Department of free-text job titles, one of :data:`DEPARTMENTS`.

    Functional words win over rank words ("VP Marketing" is marketing, "CEO" executive); a
    title that names no department is ``other``, a missing one ``unknown``.

    Examples
    --------
    >>> parse_department(pd.Series(["Head of Growth", "Software Engineer", "CEO"])).tolist()
    ['marketing', 'engineering', 'executive']
    """
    out = classify_distinct(titles, _department_of_unique)
    return pd.Series(
        pd.Categorical(out, categories=DEPARTMENTS), index=titles.index, name="department"
    )


def company_size_band(sizes: pd.Series) -> pd.Series:
    """Size band of a head count, one of :data:`SIZE_BANDS` (``unknown`` when missing).

    Examples
    --------
    >>> company_size_band(pd.Series([3.0, 50.0, 51.0, 12000.0, np.nan])).tolist()
    ['1-10', '11-50', '51-200', '5001+', 'unknown']
    """
    numeric = pd.to_numeric(sizes, errors="coerce").astype("float64")
    bands = pd.cut(
        numeric,
        bins=[0, *SIZE_BAND_CUTS, np.inf],
        labels=SIZE_BANDS[:-1],
        right=True,
        include_lowest=False,
    )
    out = pd.Categorical(bands.astype("str"), categories=SIZE_BANDS)
    out[pd.isna(bands)] = "unknown"
    return pd.Series(out, index=sizes.index, name="company_size_band")


# --------------------------------------------------------------------------- catalogue

_When = tuple[tuple[str, tuple[str, ...] | None], ...]
_Agg = Literal["count", "sum", "active_days", "variety"]


def _on(activity_type: str, *details: str) -> _When:
    """An activity filter: this type, optionally with one of these details."""
    return ((activity_type, tuple(sorted(details)) or None),)


#: Everything the lead did: every activity type but ``email_sent``, which is what we did to
#: the lead. A week of newsletters is not a week of activity: counted in, a lead who never
#: opened one would read "Last active 1 day ago" and "Active on 4 days".
_LEAD_ACTIVITY: _When = tuple((t, None) for t in ACTIVITY_TYPES if t != "email_sent")
_HIGH_INTENT: _When = (
    ("page_view", tuple(sorted(HIGH_INTENT_PAGES))),
    ("form_fill", tuple(sorted(HIGH_INTENT_FORMS))),
)


@dataclass(frozen=True)
class _Signal:
    """An aggregate of matching activities over one or more trailing windows.

    Its reasons, each completed by the window ("... in the last 30 days", "... so far"):
    ``sentence`` for a value that counts for the lead, e.g. "Visited the pricing page
    {value:,.0f} time{s}" ({s:y|ies}, {value:A|B} (non-zero | zero) and {value:days_ago} as
    :func:`leadscore.reasons.reason_text` reads them); ``zero`` for a value of 0, as an
    absence ("Has not visited the pricing page"; all history reads "... yet"); ``low`` for a
    value above 0 that counts against the lead, as too little ("Only {value:,.0f} pricing page
    visit{s}"). Every signal here counts something the lead did, so more reads as better;
    a count that is not the lead's doing (e-mails we sent) has no ``low``.

    ``fact`` is what the signal tells about, the stem unless given: all windows of a signal,
    and other features naming the same fact, make one reason (see :mod:`leadscore.explain`).
    Signals share a fact when a marketer would read their reasons as one thing said twice
    ("No activity of any kind in the last 30 days", "Was not active in the last 30 days"), and
    when one counts what the other counts: a pricing page visit is a high-intent action, so
    "Visited the pricing page 3 times" for and "Only 3 high-intent actions" against would be
    one deed speaking both ways.
    """

    stem: str
    label: str
    when: _When
    windows: tuple[int | None, ...]
    agg: _Agg = "count"
    sentence: str | None = None
    zero: str | None = None
    low: str | None = None
    fact: str | None = None


@dataclass(frozen=True)
class _Derived:
    """An engagement feature computed from helper aggregates (recency, rates, trend, flags).

    ``inner`` lists helper aggregates as (name, aggregate, activity filter, span of whole days
    before as-of or ``None`` for all history); ``outer`` is SQL combining them, with ``a.`` for
    helpers, ``l.`` for the lead's own columns and ``$as_of_us`` for the as-of instant.
    """

    name: str
    label: str
    inner: tuple[tuple[str, _Agg | str, _When, tuple[int, int] | None], ...]
    outer: str
    sentence: str | None = None
    missing_sentence: str | None = None  # the reason when the value is missing ("none yet")
    # as on a signal, whole sentences (a derived feature has no window to add)
    zero_sentence: str | None = None
    low_sentence: str | None = None
    fact: str | None = None


#: Windowed aggregates; each window gives one feature named ``{stem}_{N}d`` or
#: ``{stem}_total`` (all history up to as-of).
_SIGNALS: tuple[_Signal, ...] = (
    _Signal(
        "activities",
        "Activities of any kind",
        _LEAD_ACTIVITY,
        (7, 30, 90, None),
        sentence="Had {value:,.0f} activit{s:y|ies} of any kind",
        zero="No activity of any kind",
        low="Only {value:,.0f} activit{s:y|ies} of any kind",
        fact="activity",
    ),
    _Signal(
        "web_visits",
        "Website visits",
        _on("web_visit"),
        (7, 30, 90),
        sentence="Visited the website {value:,.0f} time{s}",
        zero="Has not visited the website",
        low="Only {value:,.0f} website visit{s}",
        fact="website",
    ),
    _Signal(
        "web_seconds",
        "Time on the website",
        _on("web_visit"),
        (30, 90),
        "sum",
        sentence="Spent {value:duration:seconds} on the website",
        zero="Has not spent time on the website",
        low="Only {value:duration:seconds} on the website",
        fact="website",
    ),
    _Signal(
        "page_views",
        "Pages viewed",
        _on("page_view"),
        (30, 90),
        sentence="Viewed {value:,.0f} page{s}",
        zero="Has not viewed a page of the website",
        low="Only {value:,.0f} page{s} viewed",
        fact="website",
    ),
    _Signal(
        "pricing_page_views",
        "Pricing page visits",
        _on("page_view", "pricing"),
        (7, 30, 90),
        sentence="Visited the pricing page {value:,.0f} time{s}",
        zero="Has not visited the pricing page",
        low="Only {value:,.0f} pricing page visit{s}",
        fact="high_intent_actions",
    ),
    _Signal(
        "demo_page_views",
        "Demo page visits",
        _on("page_view", "demo"),
        (30, 90),
        sentence="Visited the demo page {value:,.0f} time{s}",
        zero="Has not visited the demo page",
        low="Only {value:,.0f} demo page visit{s}",
        fact="high_intent_actions",
    ),
    _Signal(
        "high_intent_actions",
        "High-intent actions (pricing or demo pages, demo or sales forms)",
        _HIGH_INTENT,
        (7, 30, 90),
        sentence="Took {value:,.0f} high-intent action{s} (pricing or demo pages, demo or sales "
        "forms)",
        zero="No high-intent action (pricing or demo pages, demo or sales forms)",
        low="Only {value:,.0f} high-intent action{s} (pricing or demo pages, demo or sales forms)",
    ),
    _Signal(
        "form_fills",
        "Forms submitted",
        _on("form_fill"),
        (30, 90),
        sentence="Submitted {value:,.0f} form{s}",
        zero="Has not submitted a form",
        low="Only {value:,.0f} form{s} submitted",
    ),
    _Signal(
        "high_intent_forms",
        "Demo, sales or quote requests",
        _on("form_fill", *HIGH_INTENT_FORMS),
        (30, None),
        sentence="Requested a demo, a sales call or a quote {value:,.0f} time{s}",
        zero="Has not requested a demo, a sales call or a quote",
        low="Only {value:,.0f} demo, sales or quote request{s}",
        fact="high_intent_actions",
    ),
    _Signal(
        "email_sends",
        "Marketing e-mails received",
        _on("email_sent"),
        (90,),
        sentence="Received {value:,.0f} marketing e-mail{s}",
        # what the e-mail rates say when no send is logged: one sentence, one reason
        zero="No record of marketing e-mails sent",
        # e-mails we sent are not the lead's doing: more is no better, so no "Only"
    ),
    _Signal(
        "email_opens",
        "Marketing e-mail opens",
        _on("email_open"),
        (30,),
        sentence="Opened marketing e-mails {value:,.0f} time{s}",
        zero="Has not opened a marketing e-mail",
        low="Only {value:,.0f} marketing e-mail open{s}",
    ),
    _Signal(
        "email_clicks",
        "Clicks in marketing e-mails",
        _on("email_click"),
        (30,),
        sentence="Clicked a link in a marketing e-mail {value:,.0f} time{s}",
        zero="Has not clicked a link in a marketing e-mail",
        low="Only {value:,.0f} click{s} in marketing e-mails",
    ),
    _Signal(
        "downloads",
        "Content downloads",
        _on("download"),
        (30, 90),
        sentence="Downloaded content {value:,.0f} time{s}",
        zero="Has not downloaded content",
        low="Only {value:,.0f} content download{s}",
    ),
    _Signal(
        "webinars_registered",
        "Webinar registrations",
        _on("webinar", "registered"),
        (90,),
        sentence="Registered for {value:,.0f} webinar{s}",
        zero="Has not registered for a webinar",
        low="Only {value:,.0f} webinar registration{s}",
        fact="webinars",
    ),
    _Signal(
        "webinars_attended",
        "Webinars attended",
        _on("webinar", "attended"),
        (90,),
        sentence="Attended {value:,.0f} webinar{s}",
        zero="Has not attended a webinar",
        low="Only {value:,.0f} webinar{s} attended",
        fact="webinars",
    ),
    _Signal(
        "events",
        "Events attended",
        _on("event"),
        (90,),
        sentence="Attended {value:,.0f} event{s}",
        zero="Has not attended an event",
        low="Only {value:,.0f} event{s} attended",
    ),
    _Signal(
        "chats",
        "Chat conversations",
        _on("chat"),
        (30,),
        sentence="Chatted with us {value:,.0f} time{s}",
        zero="Has not chatted with us",
        low="Only {value:,.0f} chat conversation{s}",
        fact="chat",
    ),
    _Signal(
        "chat_messages",
        "Chat messages sent",
        _on("chat"),
        (30,),
        "sum",
        sentence="Sent {value:,.0f} chat message{s}",
        zero="Has not sent a chat message",
        low="Only {value:,.0f} chat message{s} sent",
        fact="chat",
    ),
    _Signal(
        "trial_days",
        "Days of trial use",
        _on("trial_usage"),
        (30,),
        # distinct days, as active_days counts them: a day on which the lead used three
        # features of the trial (one trial_usage row each) is one day of use
        "active_days",
        sentence="Used the trial on {value:,.0f} day{s}",
        zero="Has not used the trial",
        low="Only {value:,.0f} day{s} of trial use",
        fact="trial",
    ),
    _Signal(
        "trial_minutes",
        "Time in the trial",
        _on("trial_usage"),
        (30,),
        "sum",
        sentence="Used the trial for {value:duration:minutes}",
        zero="Has not used the trial",
        low="Only {value:duration:minutes} of trial use",
        fact="trial",
    ),
    _Signal(
        "active_days",
        "Days with any activity",
        _LEAD_ACTIVITY,
        (30, 90),
        "active_days",
        sentence="Was active on {value:,.0f} day{s}",
        zero="Was not active",
        low="Only {value:,.0f} active day{s}",
        fact="activity",
    ),
    _Signal(
        "activity_types",
        "Different kinds of activity",
        _LEAD_ACTIVITY,
        (90,),
        "variety",
        sentence="Did {value:,.0f} different kind{s} of activity",
        zero="No activity of any kind",
        low="Only {value:,.0f} kind{s} of activity",
        fact="activity",
    ),
)

_DAYS = "(CAST({t} AS DOUBLE) / {day})"
# a lead whose opens are logged but whose sends are not has no rate either: say what the log
# lacks, not that the lead received nothing
_NO_EMAILS = "No record of marketing e-mails sent in the last 90 days"

#: Engagement features that are not a plain windowed aggregate.
_DERIVED: tuple[_Derived, ...] = (
    _Derived(
        "lead_age_days",
        "Days since the lead was created",
        (),
        _DAYS.format(t="$as_of_us - l.created_us", day=_DAY_US),
        sentence="Became a lead {value:days_ago}",
    ),
    _Derived(
        "days_since_last_activity",
        "Days since the last activity",
        (("last_any", "max_ts", _LEAD_ACTIVITY, None),),
        _DAYS.format(t="$as_of_us - a.last_any", day=_DAY_US),
        sentence="Last active {value:days_ago}",
        missing_sentence="No activity yet",
        fact="activity",
    ),
    _Derived(
        "days_since_first_activity",
        "Days since the first activity",
        (("first_any", "min_ts", _LEAD_ACTIVITY, None),),
        _DAYS.format(t="$as_of_us - a.first_any", day=_DAY_US),
        sentence="First active {value:days_ago}",
        missing_sentence="No activity yet",
        fact="activity",
    ),
    _Derived(
        "days_since_last_high_intent",
        "Days since the last high-intent action",
        (("last_high_intent", "max_ts", _HIGH_INTENT, None),),
        _DAYS.format(t="$as_of_us - a.last_high_intent", day=_DAY_US),
        sentence="Last high-intent action {value:days_ago}",
        missing_sentence="No high-intent action yet",
        fact="high_intent_actions",
    ),
    _Derived(
        "activity_trend",
        "Change in weekly activity, last 7 days against the 21 before",
        (("n_0_7", "count", _LEAD_ACTIVITY, (0, 7)), ("n_7_28", "count", _LEAD_ACTIVITY, (7, 28))),
        # no trend without activity: 0 against 0 read "As many activities ... as" for a lead
        # idle for a month
        "CASE WHEN coalesce(a.n_0_7, 0) + coalesce(a.n_7_28, 0) = 0 THEN NULL "
        "ELSE CAST(coalesce(a.n_0_7, 0) AS DOUBLE) - coalesce(a.n_7_28, 0) / 3.0 END",
        sentence="{value:change} activit{s:y|ies} in the last 7 days than in an average week "
        "of the 21 days before",
        missing_sentence="No activity in the last 28 days",
        fact="activity",
        zero_sentence="As many activities in the last 7 days as in an average week of the 21 "
        "days before",
    ),
    _Derived(
        "email_open_rate_90d",
        "E-mail open rate (share of e-mails received that were opened), last 90 days",
        (("sends_90", "count", _on("email_sent"), (0, 90)),),
        "CAST(coalesce(m.opened_90, 0) AS DOUBLE) / nullif(a.sends_90, 0)",
        sentence="Opened {value:.0%} of marketing e-mails in the last 90 days",
        missing_sentence=_NO_EMAILS,
        # a share says itself how much of the possible it is: no "Opened only 100%"
        zero_sentence="Opened none of the marketing e-mails received in the last 90 days",
        fact="email_opens",
    ),
    _Derived(
        "email_click_rate_90d",
        "E-mail click rate (share of e-mails received that were clicked), last 90 days",
        (("sends_90", "count", _on("email_sent"), (0, 90)),),
        "CAST(coalesce(m.clicked_90, 0) AS DOUBLE) / nullif(a.sends_90, 0)",
        sentence="Clicked in {value:.0%} of marketing e-mails in the last 90 days",
        missing_sentence=_NO_EMAILS,
        zero_sentence="Clicked in none of the marketing e-mails received in the last 90 days",
        fact="email_clicks",
    ),
    _Derived(
        "has_chatted",
        "Has chatted with us",
        (("chats_all", "count", _on("chat"), None),),
        "CASE WHEN coalesce(a.chats_all, 0) > 0 THEN 1.0 ELSE 0.0 END",
        sentence="{value:Chatted with us|Has not chatted with us}",
        fact="chat",
    ),
    _Derived(
        "has_trial",
        "Has started a free trial",
        # a CRM may log trial use without the sign-up: using the trial is having one
        (("trials_all", "count", _on("trial_signup") + _on("trial_usage"), None),),
        "CASE WHEN coalesce(a.trials_all, 0) > 0 THEN 1.0 ELSE 0.0 END",
        sentence="{value:Has started a free trial|Has not started a free trial}",
        fact="trial",
    ),
)

#: Fit features built from known lead columns: (name, label, kind, source columns).
_FIT: tuple[tuple[str, str, Literal["numeric", "categorical"], tuple[str, ...]], ...] = (
    ("source", "Lead source (channel)", "categorical", ("source",)),
    ("campaign", "Campaign that brought the lead", "categorical", ("campaign",)),
    ("industry", "Industry", "categorical", ("industry",)),
    ("country", "Country", "categorical", ("country",)),
    ("company_size", "Company size (employees)", "numeric", ("company_size",)),
    ("company_size_band", "Company size band", "categorical", ("company_size",)),
    ("seniority", "Seniority from the job title", "categorical", ("job_title",)),
    ("department", "Department from the job title", "categorical", ("job_title",)),
    (
        "email_domain_kind",
        "E-mail address (corporate or free mail)",
        "categorical",
        ("email", "email_domain"),
    ),
)


#: Reasons of fit features: (sentence, missing sentence). Company size reads as its band,
#: since the number may be a band's midpoint ("1-10" is 5.5, not five employees); both size
#: features then read one sentence, which :mod:`leadscore.explain` shows once. Seniority
#: and department quote leadscore's codes in words (:data:`leadscore.reasons.CATEGORY_WORDS`).
_FIT_SENTENCES: dict[str, tuple[str, str | None]] = {
    "company_size": (
        "Company size: {value:bands:" + ",".join(map(str, SIZE_BAND_CUTS)) + "} employees",
        "Company size not given",
    ),
    "company_size_band": ("Company size: {value} employees", "Company size not given"),
    "seniority": ("Seniority from the job title: {value:seniority}", None),
    "department": ("Department from the job title: {value:department}", None),
}


def _window_label(label: str, window: int | None) -> str:
    return f"{label}, to date" if window is None else f"{label}, last {window} days"


def _window_sentence(
    sentence: str | None, window: int | None, to_date: str = "so far"
) -> str | None:
    """``sentence`` over ``window`` days: "... in the last 30 days", or over all history
    "... so far" (an absence reads "... yet": "Has not requested a demo ... yet")."""
    if sentence is None:
        return None
    return f"{sentence} {to_date}" if window is None else f"{sentence} in the last {window} days"


def _window_name(stem: str, window: int | None) -> str:
    return f"{stem}_total" if window is None else f"{stem}_{window}d"


def _engagement_features() -> tuple[Feature, ...]:
    signals = [
        Feature(
            _window_name(s.stem, w),
            "engagement",
            _window_label(s.label, w),
            "numeric",
            _window_sentence(s.sentence, w),
            zero_sentence=_window_sentence(s.zero, w, to_date="yet"),
            low_sentence=_window_sentence(s.low, w),
            fact=s.fact or s.stem,
        )
        for s in _SIGNALS
        for w in s.windows
    ]
    derived = [
        Feature(
            d.name,
            "engagement",
            d.label,
            "numeric",
            d.sentence,
            d.missing_sentence,
            zero_sentence=d.zero_sentence,
            low_sentence=d.low_sentence,
            fact=d.fact,
        )
        for d in _DERIVED
    ]
    return (*signals, *derived)


def _fit_features(columns: Iterable[str] | None = None) -> tuple[Feature, ...]:
    present = None if columns is None else set(columns)
    return tuple(
        Feature(name, "fit", label, kind, *_FIT_SENTENCES.get(name, (None, None)))
        for name, label, kind, sources in _FIT
        if present is None or present.intersection(sources)
    )


def feature_catalogue() -> tuple[Feature, ...]:
    """Every built-in feature: fit features (when their lead column exists) and engagement.

    The one place names, groups, labels and kinds are defined; extra lead columns passed
    through as fit features are added by :func:`build_features` from the data.
    """
    return (*_fit_features(), *_engagement_features())


# --------------------------------------------------------------------------- engagement SQL


def _detail_vocabulary() -> dict[str, int]:
    """Codes of the activity details the catalogue filters on (0 stands for any other)."""
    filters = [s.when for s in _SIGNALS] + [h[2] for d in _DERIVED for h in d.inner]
    details = sorted({v for when in filters for _, values in when for v in values or ()})
    return {d: i + 1 for i, d in enumerate(details)}


_TYPE_CODES: dict[str, int] = {t: i + 1 for i, t in enumerate(ACTIVITY_TYPES)}


def _condition(when: _When, span: tuple[int, int] | None, details: dict[str, int]) -> str:
    parts = []
    if when:
        alternatives = []
        whole_types = sorted(_TYPE_CODES[t] for t, detail_values in when if not detail_values)
        if whole_types:
            codes = ", ".join(map(str, whole_types))
            alternatives.append(f"(t IN ({codes}))" if len(whole_types) > 1 else f"(t = {codes})")
        for activity_type, detail_values in when:
            if detail_values:
                values = ", ".join(str(details[v]) for v in detail_values)
                alternatives.append(f"(t = {_TYPE_CODES[activity_type]} AND d IN ({values}))")
        parts.append("(" + " OR ".join(alternatives) + ")")
    if span is not None:
        low, high = span
        if low > 0:
            parts.append(f"age >= {low * _DAY_US}")
        parts.append(f"age < {high * _DAY_US}")
    return " AND ".join(parts)


def _aggregate_sql(
    agg: str, when: _When, span: tuple[int, int] | None, details: dict[str, int]
) -> str:
    """``agg(CASE WHEN condition THEN x END)``: twice as fast in DuckDB as ``FILTER (WHERE)``."""
    condition = _condition(when, span, details)
    if agg == "count":
        return f"count_if({condition})" if condition else "count(*)"
    function, argument = {
        "sum": ("sum", "v"),
        "active_days": ("count", "DISTINCT day"),
        "variety": ("bit_or", "CAST(1 AS UBIGINT) << t"),
        "max_ts": ("max", "ts"),
        "min_ts": ("min", "ts"),
    }[agg]
    if not condition:
        return f"{function}({argument})"
    if argument.startswith("DISTINCT "):
        return f"{function}(DISTINCT CASE WHEN {condition} THEN {argument[9:]} END)"
    return f"{function}(CASE WHEN {condition} THEN {argument} END)"


_MASK_DAYS = 64


def _day_mask_sql(when: _When, window: int, chunk: int, details: dict[str, int]) -> str:
    """Bit ``k`` set when an activity of the last ``window`` days (24-hour steps, as every
    windowed count) happened on the calendar day ``chunk * 64 + k`` before the as-of's
    (``day``, :data:`_CALENDAR_DAY_SQL`).

    Counting active days through a bitmask avoids ``count(DISTINCT ...)``, which costs as much
    as all other aggregates together on large logs.
    """
    low = chunk * _MASK_DAYS
    # DuckDB may evaluate the shift on rows the condition rejects: keep it in range.
    shift = f"CAST(least(greatest(day - {low}, 0), {_MASK_DAYS - 1}) AS INTEGER)"
    days = f"day >= {low} AND day < {low + _MASK_DAYS}" if low else f"day < {_MASK_DAYS}"
    condition = f"{_condition(when, (0, window), details)} AND {days}"
    return f"bit_or(CASE WHEN {condition} THEN CAST(1 AS UBIGINT) << {shift} END)"


def _compile_signal(
    s: _Signal, window: int | None, details: dict[str, int]
) -> tuple[dict[str, str], str]:
    """Helper aggregates and the outer expression of one windowed signal."""
    name = _window_name(s.stem, window)
    span = None if window is None else (0, window)
    if s.agg == "active_days" and window is not None:
        # a window of 24-hour steps that starts mid-day touches window + 1 calendar days;
        # a lead active on each of them was active every day of the window
        inner, parts = {}, []
        for chunk in range(window // _MASK_DAYS + 1):
            helper = f"{s.stem}__{window}d_days{chunk}"
            inner[helper] = _day_mask_sql(s.when, window, chunk, details)
            parts.append(f"coalesce(bit_count(a.{helper}), 0)")
        return inner, f"least({' + '.join(parts)}, {window})"
    inner = {name: _aggregate_sql(s.agg, s.when, span, details)}
    if s.agg == "variety":
        return inner, f"coalesce(bit_count(a.{name}), 0)"
    return inner, f"coalesce(a.{name}, 0)"


def _paired_sql(x: str) -> str:
    """Opens (``x = 'o'``) or clicks (``'c'``) of a lead paired with its sends, most pairs.

    Per e-mail name, ``least(x, s)`` pairs; a row without a name pairs with any unpaired row
    of the other side, which gives the smaller of: unpaired named plus unnamed ``x``, unpaired
    named plus unnamed sends, unnamed ``x`` plus unnamed sends (a maximum matching).
    """

    def total(expression: str, named: bool) -> str:
        return f"sum(CASE WHEN {'' if named else 'NOT '}named THEN {expression} ELSE 0 END)"

    return (
        f"{total(f'least({x}, s)', True)} + least("
        f"{total(f'greatest({x} - s, 0)', True)} + {total(x, False)}, "
        f"{total(f'greatest(s - {x}, 0)', True)} + {total('s', False)}, "
        f"{total(f'{x} + s', False)})"
    )


def _email_pairs_sql(details: dict[str, int]) -> str:
    """Per lead, the e-mails received in the last 90 days that were opened and clicked.

    A share of e-mails must not count an e-mail twice: trackers log an open each time the
    e-mail is shown and a click per link followed, and counting rows read one e-mail clicked
    three times as 300%. Each open (click) is therefore paired with a send of the same
    ``detail`` (the e-mail's name), at most one per send. Distinct names alone would not do:
    ``detail`` may name a campaign that sends the lead several e-mails, each of which can be
    opened. Rows without a name pair with any unpaired row, so a log without names reads
    opens per send capped at 1. The pairs never outnumber the sends, so the rates
    (:data:`_DERIVED`) stay within 0 to 1.
    """
    emails = (*_on("email_sent"), *_on("email_open"), *_on("email_click"))
    condition = _condition(emails, (0, 90), details)
    sent, opened, clicked = (_TYPE_CODES[t] for t in ("email_sent", "email_open", "email_click"))
    return f"""
  SELECT lead_id,
    {_paired_sql("o")} AS opened_90,
    {_paired_sql("c")} AS clicked_90
  FROM (
    SELECT lead_id, e >= 0 AS named,
      count_if(t = {sent}) AS s, count_if(t = {opened}) AS o, count_if(t = {clicked}) AS c
    FROM (SELECT lead_id, t, d, e, $as_of_us - ts AS age FROM acts WHERE ts <= $as_of_us)
    WHERE {condition}
    GROUP BY lead_id, e
  )
  GROUP BY lead_id"""


def _engagement_sql(details: dict[str, int]) -> str:
    """One query: per-lead aggregates over activities, joined onto the leads to score.

    The aggregates come from one pass over the log (``a``); the e-mail pairs of the rates
    (``m``, :func:`_email_pairs_sql`) group the e-mail rows of the last 90 days by e-mail.
    """
    inner: dict[str, str] = {}
    outer: list[str] = []
    for s in _SIGNALS:
        for w in s.windows:
            helpers, expression = _compile_signal(s, w, details)
            inner.update(helpers)
            outer.append(f"CAST({expression} AS DOUBLE) AS {_window_name(s.stem, w)}")
    for d in _DERIVED:
        for helper, agg, when, span in d.inner:
            inner[helper] = _aggregate_sql(agg, when, span, details)
        outer.append(f"CAST({d.outer} AS DOUBLE) AS {d.name}")
    aggregates = ",\n    ".join(f"{sql} AS {name}" for name, sql in inner.items())
    selected = ",\n  ".join(outer)
    return f"""
WITH a AS (
  SELECT lead_id,
    {aggregates}
  FROM (
    SELECT lead_id, ts, t, d, v, $as_of_us - ts AS age, {_CALENDAR_DAY_SQL} AS day
    FROM acts WHERE ts <= $as_of_us
  )
  GROUP BY lead_id
),
m AS ({_email_pairs_sql(details)}
)
SELECT l.pos,
  {selected}
FROM leads_now l LEFT JOIN a ON a.lead_id = l.lead_id LEFT JOIN m ON m.lead_id = l.lead_id
ORDER BY l.pos
"""


def _codes(values: pd.Series, mapping: dict[str, int]) -> np.ndarray:
    """Small integer codes of a categorical column (0 for anything not in ``mapping``)."""
    cat = values if isinstance(values.dtype, pd.CategoricalDtype) else values.astype("category")
    lookup = np.array([mapping.get(str(c), 0) for c in cat.cat.categories] + [0], dtype=np.int8)
    return lookup[cat.cat.codes.to_numpy()]


# --------------------------------------------------------------------------- details read

#: What a page URL holds besides its path: scheme and host (``https://www.acme.com``,
#: ``//acme.com``, ``www.acme.com``), query, and a fragment that is no route. A fragment
#: that begins with ``/`` or ``!/`` is a single-page site's route (``/#/pricing``,
#: ``/#!/pricing``) and reads as part of the path; any other is a place on the page
#: (``/pricing#faq``). RE2 has no look-ahead, hence the spelled-out fragment cases.
_URL_NOISE = (
    r"^\s*(?:[a-z][a-z0-9+.\-]*:)?//[^/?#]*|^\s*www\.[^/?#]*"
    r"|\?[^#]*|#(?:$|[^!/].*$|!$|![^/].*$)"
)
#: A language or region as a path segment names it (``en``, ``en-us`` read ``en_us``).
_LANGUAGE = r"[a-z]{2}(?:_[a-z]{2})?"
#: A first path segment that is a language or region (``/en/``, ``/en-us/``, ``/de_de/``).
_LOCALE = rf"(?:{_LANGUAGE}_*/[/_]*)?"
#: A path without a page: none at all (``/``), or a language alone (``/en/``, ``/en-us``),
#: the site's root in that language.
_HOME_PATH = rf"^[/_]*$|^[/_]*/{_LANGUAGE}[/_]*$"
#: File suffixes a path segment may carry (``/products/pricing.html`` is the pricing page).
_PAGE_SUFFIX = r"(?:_(?:html?|php|aspx?|jsp))?"


def _alternation(names: Iterable[str]) -> str:
    """Names as one regex alternation, longest first (``case_studies`` before ``case``)."""
    return "|".join(re.escape(n) for n in sorted(set(names), key=lambda n: (-len(n), n)))


def _page_pattern(names: Iterable[str], lead: str = "", anywhere: str = "") -> str:
    """A path naming one of ``names``: the first segment (after a language) beginning with
    it, followed by ``_`` (a run of other characters) or nothing, or any segment equal to it
    (give ``lead`` and ``anywhere`` as ``?P<group>`` to extract which)."""
    n = _alternation(names)
    return rf"^[/_]*{_LOCALE}({lead}{n})(?:_|/|$)|(?:^|/)_*({anywhere}{n}){_PAGE_SUFFIX}_*(?:/|$)"


def _form_pattern(names: Iterable[str], group: str = "") -> str:
    """A form name that is one of ``names``, maybe followed by more words."""
    return rf"^_*({group}{_alternation(names)})(?:_|$)"


def _arrow_texts(values: pd.Index | pd.Series | Sequence[object]) -> pa.Array:
    """Values as an Arrow string array (missing ones null), without a Python loop where
    pandas already holds them as Arrow strings (a log's detail categories)."""
    index = values if isinstance(values, pd.Index | pd.Series) else pd.Index(values, dtype=object)
    array = pa.array(index.astype("str").array)
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def _replace(array: pa.Array, pattern: str, replacement: str) -> pa.Array:
    return pc.replace_substring_regex(array, pattern=pattern, replacement=replacement)


def _page_paths(texts: pa.Array) -> pa.Array:
    """Page details as the paths they are matched on: lower case, scheme, host, query and
    fragment dropped (a route fragment kept, :data:`_URL_NOISE`), and every run of characters
    other than letters, digits and ``/`` written ``_``
    (``https://www.acme.com/en/Pricing-Plans/?utm_source=x`` reads ``/en/pricing_plans/``,
    ``https://acme.com/#/pricing`` reads ``/_/pricing``)."""
    return _replace(_replace(pc.utf8_lower(texts), _URL_NOISE, ""), r"[^a-z0-9/]+", "_")


def _form_names(texts: pa.Array) -> pa.Array:
    """Form details as the names they are matched on: lower case, every run of characters
    other than letters and digits written ``_`` (``Demo Request`` reads ``demo_request``)."""
    return _replace(pc.utf8_lower(texts), r"[^a-z0-9]+", "_")


def _extracted(texts: pa.Array, pattern: str) -> pa.Array:
    """The first non-empty named group of ``pattern``'s first match in each text (null:
    no match)."""
    found = pc.extract_regex(texts, pattern=pattern)
    groups = [pc.struct_field(found, [i]) for i in range(found.type.num_fields)]
    name = groups[-1]
    for group in reversed(groups[:-1]):
        name = pc.if_else(pc.equal(group, ""), name, group)
    return pc.if_else(pc.is_valid(found), name, pa.scalar(None, pa.string()))


def _index_in(texts: pa.Array, names: Sequence[str]) -> np.ndarray:
    """Position of each text in ``names``, -1 where it is none of them."""
    found = pc.index_in(texts, value_set=pa.array(list(names), type=pa.string()))
    return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _matches(texts: pa.Array, pattern: str) -> np.ndarray:
    return pc.fill_null(pc.match_substring_regex(texts, pattern=pattern), False).to_numpy(
        zero_copy_only=False
    )


def _home(texts: pa.Array, paths: pa.Array) -> np.ndarray:
    """A URL or path without a page (``https://www.acme.com/``, ``/``, ``/en-us/``): the home
    page. The one test of :func:`_read_pages` and :func:`page_of_details`."""
    given = pc.not_equal(pc.utf8_trim_whitespace(texts), "")
    home = pc.and_(given, pc.match_substring_regex(paths, pattern=_HOME_PATH))
    return pc.fill_null(home, False).to_numpy(zero_copy_only=False)


_HIGH_PAGES = tuple(sorted(HIGH_INTENT_PAGES))
_HIGH_FORMS = tuple(sorted(HIGH_INTENT_FORMS))
_HIGH_PAGE = _page_pattern(_HIGH_PAGES, "?P<a>", "?P<b>")
_KNOWN_PAGE = _page_pattern(HIGH_INTENT_PAGES | KNOWN_PAGES)
_HIGH_FORM = _form_pattern(_HIGH_FORMS, "?P<x>")
_KNOWN_FORM = _form_pattern(HIGH_INTENT_FORMS | KNOWN_FORMS)


def _read_pages(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Per text, the position in :data:`_HIGH_PAGES` of the high-intent page it names (-1:
    none) and whether it names a page leadscore knows at all (:func:`page_of_details`)."""
    paths = _page_paths(texts)
    high = _index_in(_extracted(paths, _HIGH_PAGE), _HIGH_PAGES)
    return high, (high >= 0) | _matches(paths, _KNOWN_PAGE) | _home(texts, paths)


def _read_forms(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Per text, the position in :data:`_HIGH_FORMS` of the high-intent form it names (-1:
    none) and whether it names a form leadscore knows at all (:func:`form_of_details`)."""
    names = _form_names(texts)
    high = _index_in(_extracted(names, _HIGH_FORM), _HIGH_FORMS)
    return high, (high >= 0) | _matches(names, _KNOWN_FORM)


def _as_series(read: pa.Array, details: pd.Series | Sequence[object]) -> pd.Series:
    out = pd.Series(read.to_pylist(), dtype=object)
    return out.set_axis(details.index if isinstance(details, pd.Series) else out.index)


def page_of_details(details: pd.Series | Sequence[object]) -> pd.Series:
    """The page category a ``page_view`` detail names, as features match it: a high-intent
    page (:data:`~leadscore.schema.HIGH_INTENT_PAGES`), an ordinary one
    (:data:`~leadscore.schema.KNOWN_PAGES`; ``home`` for a URL or path without one), or
    ``None`` where it names none.

    A detail is a category (``pricing``) or a URL or path: its scheme, host, query and
    fragment are dropped (a fragment that is a route, ``/#/pricing``, is read as the path; a
    query, ``?page=pricing``, never is: queries hold campaign tags), case does not matter,
    and ``-``, ``_``, spaces and other marks are one. It names a page when a segment of the
    path is the page (``/en/pricing/``, ``/products/pricing``, ``/products/pricing.html``),
    or when its first segment (after a language such as ``en`` or ``en-us``) begins with the
    page followed by ``-`` or other words (``/pricing-plans``, ``Pricing Page``). A later
    segment never names a page by its first words alone: ``/blog/pricing-strategies`` is a
    blog post, not the pricing page. A high-intent page anywhere in the path wins over an
    ordinary one (``/product/pricing`` is the pricing page).

    Examples
    --------
    >>> page_of_details(["https://acme.com/en/pricing/?utm_source=x", "Demo-Videos",
    ...                  "/blog/pricing-tips", "https://acme.com/", "/de/preise"]).tolist()
    ['pricing', 'demo', 'blog', 'home', None]
    """
    texts = _arrow_texts(details)
    paths = _page_paths(texts)
    high = _extracted(paths, _HIGH_PAGE)
    ordinary = _extracted(paths, _page_pattern(KNOWN_PAGES, "?P<a>", "?P<b>"))
    read = pc.coalesce(high, ordinary)
    read = pc.if_else(_home(texts, paths), pc.coalesce(read, "home"), read)
    return _as_series(read, details)


def form_of_details(details: pd.Series | Sequence[object]) -> pd.Series:
    """The form a ``form_fill`` detail names, as features match it: a high-intent form
    (:data:`~leadscore.schema.HIGH_INTENT_FORMS`), an ordinary one
    (:data:`~leadscore.schema.KNOWN_FORMS`), or ``None`` where it names none. Case does not
    matter, and spaces, ``-``, ``_`` and other marks are one (``Demo Request`` is
    ``demo_request``); a name may add words after the form's (``Contact Sales - EMEA``), not
    before it (``Website Demo Request`` names none).

    Examples
    --------
    >>> names = ["Demo Request", "contact-sales form", "Newsletter", "Book a demo"]
    >>> form_of_details(names).tolist()
    ['demo_request', 'contact_sales', 'newsletter', None]
    """
    names = _form_names(_arrow_texts(details))
    pattern = _form_pattern(HIGH_INTENT_FORMS | KNOWN_FORMS, "?P<x>")
    return _as_series(_extracted(names, pattern), details)


@dataclass(frozen=True)
class _DetailReading:
    """How the distinct details of a log (its ``detail`` categories) read, one entry per
    category: whether it is blank, its code in the catalogue's vocabulary
    (:func:`_detail_vocabulary`) as any type's detail (exactly, folded), as a page and as a
    form, and whether it names a page or form leadscore knows at all. Only the details of
    some ``page_view`` row are read as pages, and those of a ``form_fill`` row as forms: a
    log of a million distinct URLs holds few form names."""

    categories: pa.Array
    blank: np.ndarray
    exact: np.ndarray
    page: np.ndarray
    form: np.ndarray
    page_known: np.ndarray
    form_known: np.ndarray

    @classmethod
    def of(
        cls, categories: pd.Index, details: dict[str, int], counts: np.ndarray
    ) -> _DetailReading:
        """The reading of ``categories``, given the rows per (type of :data:`DETAIL_KINDS`,
        detail code + 1) (:func:`_type_detail_counts`)."""
        texts = _arrow_texts(categories)
        folded = pc.utf8_lower(pc.utf8_trim_whitespace(texts))
        vocabulary = list(details)
        codes = np.array([*details.values(), 0], dtype=np.int8)  # -1 (none) reads 0
        out = {"page": codes[-1:].repeat(len(texts)), "form": codes[-1:].repeat(len(texts))}
        known = {"page": np.zeros(len(texts), bool), "form": np.zeros(len(texts), bool)}
        for kind, activity_type, names, read in (
            ("page", "page_view", _HIGH_PAGES, _read_pages),
            ("form", "form_fill", _HIGH_FORMS, _read_forms),
        ):
            used = np.flatnonzero(counts[DETAIL_KINDS.index(activity_type), 1:])
            high, named = read(texts.take(pa.array(used, type=pa.int64())))
            lookup = np.array([details[n] for n in names] + [0], dtype=np.int8)
            out[kind][used] = lookup[high]
            known[kind][used] = named
        return cls(
            categories=texts,
            blank=pc.equal(folded, "").to_numpy(zero_copy_only=False),
            exact=codes[_index_in(folded, vocabulary)],
            page=out["page"],
            form=out["form"],
            page_known=known["page"],
            form_known=known["form"],
        )

    def table(self) -> np.ndarray:
        """``d`` by (type code, detail code + 1): the exact detail's code on every type but
        ``page_view`` (the page's) and ``form_fill`` (the form's); column 0 is no detail."""
        table = np.zeros((len(_TYPE_CODES) + 1, len(self.categories) + 1), dtype=np.int8)
        table[:, 1:] = self.exact
        table[_TYPE_CODES["page_view"], 1:] = self.page
        table[_TYPE_CODES["form_fill"], 1:] = self.form
        return table


#: Rows handled at a time by :func:`_cells` and :func:`_type_detail_counts`, to bound their
#: temporary arrays.
_DETAIL_CHUNK_ROWS = 1 << 23


def _cells(
    types: np.ndarray, detail_codes: np.ndarray, width: int
) -> Iterator[tuple[slice, np.ndarray]]:
    """(rows, cell) a chunk at a time: each row's cell ``type code * width + detail code + 1``
    of a (type, detail) table, column 0 standing for no detail."""
    for start in range(0, len(types), _DETAIL_CHUNK_ROWS):
        rows = slice(start, start + _DETAIL_CHUNK_ROWS)
        cell = types[rows].astype(np.int32)
        cell *= width
        cell += detail_codes[rows]
        cell += 1
        yield rows, cell


#: The types whose details are read as pages and forms, in the order of the rows of
#: :func:`_type_detail_counts`.
DETAIL_KINDS = ("page_view", "form_fill")


def _type_detail_counts(
    types: np.ndarray,
    detail_codes: np.ndarray,
    n_details: int,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Rows per (type of :data:`DETAIL_KINDS`, detail code + 1); ``weights``: the rows each
    row stands for. Only those two types' details are ever read or counted, so the table has
    their two rows and not one per type: a log of 10M distinct URLs would make it 1 GB."""
    width = n_details + 1
    kind_of = np.full(len(_TYPE_CODES) + 1, -1, dtype=np.int64)  # type code -> row, -1: none
    for row, kind in enumerate(DETAIL_KINDS):
        kind_of[_TYPE_CODES[kind]] = row
    counts = np.zeros(len(DETAIL_KINDS) * width, dtype=np.int64)
    for start in range(0, len(types), _DETAIL_CHUNK_ROWS):
        rows = slice(start, start + _DETAIL_CHUNK_ROWS)
        kind = kind_of[types[rows]]
        read = np.flatnonzero(kind >= 0)
        cell = kind[read]
        cell *= width
        cell += detail_codes[rows][read]
        cell += 1
        if weights is None:
            counts += np.bincount(cell, minlength=counts.size)
        else:
            added = np.bincount(cell, weights=weights[rows][read], minlength=counts.size)
            counts += np.rint(added).astype(np.int64)
    return counts.reshape(len(DETAIL_KINDS), width)


def _detail_codes_of_rows(
    types: np.ndarray, detail_codes: np.ndarray, table: np.ndarray
) -> np.ndarray:
    """``d`` of each row, looked up in the (type, detail) ``table`` in one pass: a mask per
    type would cost several times as much on large logs."""
    d = np.empty(len(types), dtype=np.int8)
    flat = table.ravel()
    for rows, cell in _cells(types, detail_codes, table.shape[1]):
        np.take(flat, cell, out=d[rows])
    return d


@dataclass(frozen=True)
class DetailCounts:
    """Per type (``page_view``, ``form_fill``): its rows with a detail, those whose detail
    names a high-intent page or form, and those whose detail names no page or form leadscore
    knows, by detail (as read), from :func:`count_unrecognised_details`. Counts of slices add
    up (``+``), so that a reader of slices can warn once over all of them
    (:func:`warn_unrecognised_details`).

    ``unread`` holds all the rows whose detail names nothing known; ``unrecognised`` only the
    :data:`KEPT_DETAILS` most common such details, enough to name the top ones: a log of
    URLs with their query strings holds millions of distinct details, and adding those up
    slice after slice grew slower with every slice (18 s for the tenth of 1M each)."""

    rows: Mapping[str, int]
    unrecognised: Mapping[str, pd.Series]
    high_intent: Mapping[str, int] = dataclasses.field(default_factory=dict)
    unread: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def __add__(self, other: DetailCounts) -> DetailCounts:
        kinds = dict.fromkeys([*self.rows, *other.rows])
        empty = pd.Series(dtype="int64")

        def total(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
            return {k: a.get(k, 0) + b.get(k, 0) for k in kinds}

        return DetailCounts(
            rows=total(self.rows, other.rows),
            high_intent=total(self.high_intent, other.high_intent),
            unrecognised={
                k: _most_common(
                    self.unrecognised.get(k, empty).add(
                        other.unrecognised.get(k, empty), fill_value=0
                    )
                )
                for k in kinds
            },
            unread=total(self.unread, other.unread),
        )


#: How many of the most common unrecognised details :class:`DetailCounts` keeps per type.
KEPT_DETAILS = 1_000


def _most_common(counts: pd.Series) -> pd.Series:
    return counts.astype("int64").nlargest(KEPT_DETAILS, keep="first")


def _detail_counts(counts: np.ndarray, reading: _DetailReading) -> DetailCounts:
    """:class:`DetailCounts` of the rows per (type of :data:`DETAIL_KINDS`, detail code + 1)
    (:func:`_type_detail_counts`)."""
    rows: dict[str, int] = {}
    high: dict[str, int] = {}
    unrecognised: dict[str, pd.Series] = {}
    unread: dict[str, int] = {}
    for kind, codes, known in (
        ("page_view", reading.page, reading.page_known),
        ("form_fill", reading.form, reading.form_known),
    ):
        per = counts[DETAIL_KINDS.index(kind), 1:].copy()
        per[reading.blank] = 0  # a blank detail is no detail
        rows[kind] = int(per.sum())
        high[kind] = int(per[codes > 0].sum())
        bad = np.flatnonzero((per > 0) & ~known)
        values = reading.categories.take(pa.array(bad, type=pa.int64())).to_pylist()
        unrecognised[kind] = _most_common(pd.Series(per[bad], index=pd.Index(values, dtype=object)))
        unread[kind] = int(per[bad].sum())
    return DetailCounts(rows, unrecognised, high, unread)


def count_unrecognised_details(
    activities: pd.DataFrame, *, rows: str | None = None
) -> DetailCounts:
    """The ``page_view`` and ``form_fill`` rows of an activity log (``activity_type`` in
    leadscore's types, ``detail``) with a detail, those naming a high-intent page or form,
    and those whose detail names no page or form leadscore knows (:func:`page_of_details`,
    :func:`form_of_details`). ``rows`` names a column holding how many rows each row
    stands for, for a log already counted by type and detail (as a Spark driver would
    count it: ``groupBy("activity_type", "detail").count()``)."""
    if "detail" not in activities.columns:
        return DetailCounts(dict.fromkeys(DETAIL_KINDS, 0), {}, dict.fromkeys(DETAIL_KINDS, 0))
    detail = activities["detail"]
    if not isinstance(detail.dtype, pd.CategoricalDtype):
        detail = detail.astype("category")
    types = _codes(pd.Series(normalized_labels(activities["activity_type"])), _TYPE_CODES)
    categories = detail.cat.categories
    weights = None if rows is None else activities[rows].to_numpy(dtype="float64")
    counts = _type_detail_counts(types, detail.cat.codes.to_numpy(), len(categories), weights)
    return _detail_counts(counts, _DetailReading.of(categories, _detail_vocabulary(), counts))


#: Above this share of unrecognised details (of the rows with one), features warn.
UNRECOGNISED_DETAIL_SHARE = 0.5
#: From this many rows with a detail, a type none of whose details is high intent is warned
#: about (a site whose pricing page is ``/plans`` would have every pricing feature zero).
NO_HIGH_INTENT_ROWS = 100
#: How many of the most common unrecognised details the warning names.
SHOWN_DETAILS = 3

_DETAIL_ADVICE = {
    "page_view": (
        "page",
        ("pricing_page_views", "demo_page_views"),
        HIGH_INTENT_PAGES,
        KNOWN_PAGES,
        "write the page category, or a URL or path with it as a segment "
        "(https://www.acme.com/pricing?utm_source=x and /en/pricing-plans/ are the pricing page)",
    ),
    "form_fill": (
        "form",
        ("high_intent_forms",),
        HIGH_INTENT_FORMS,
        KNOWN_FORMS,
        "write the form's name (case, spaces and hyphens aside: Demo Request is demo_request)",
    ),
}


def _details_said(kind: str, counts: DetailCounts) -> str | None:
    """What the warning says of one type's details, or ``None`` when they read well."""
    total = counts.rows.get(kind, 0)
    bad = counts.unrecognised.get(kind, pd.Series(dtype="int64"))
    unread = counts.unread.get(kind, int(bad.sum()))
    mostly_unread = total > 0 and unread > UNRECOGNISED_DETAIL_SHARE * total
    no_high = total >= NO_HIGH_INTENT_ROWS and counts.high_intent.get(kind, 0) == 0
    if not (mostly_unread or no_high):
        return None
    noun, features, high, ordinary, fix = _DETAIL_ADVICE[kind]
    top = sorted(bad.items(), key=lambda item: (-item[1], str(item[0])))[:SHOWN_DETAILS]
    shown = ", ".join(f"{value!r} ({n:,})" for value, n in top)
    if mostly_unread:
        said = (
            f"{unread:,} of {total:,} {kind} rows with a detail ({unread / total:.0%}) name "
            f"no {noun} leadscore knows, most often {shown}"
        )
        if no_high:
            said += f", and none names a high-intent {noun}"
    else:
        said = f"none of the {total:,} {kind} rows with a detail names a high-intent {noun}"
        if unread:
            said += f" ({unread:,} name no {noun} leadscore knows, most often {shown})"
    # high_intent_actions also counts the other type's rows: zero only where both are
    if no_high:
        zero = " and ".join(features)
        effect = f"{zero} {'are' if len(features) > 1 else 'is'} zero for every lead and "
        effect += f"high_intent_actions counts no {noun}"
    else:
        effect = f"{', '.join(features)} and high_intent_actions count none of them"
    return (
        f"{said}, so {effect}: the high-intent {noun}s are "
        f"{', '.join(sorted(high))} (others known: {', '.join(sorted(ordinary))}); {fix}"
    )


def warn_unrecognised_details(counts: DetailCounts) -> None:
    """Warn, in one line, when the details of ``page_view`` or ``form_fill`` rows would
    leave the high-intent features empty without a word, which reads as leads that never
    looked at pricing rather than as a log written in other words: when most of them (more
    than :data:`UNRECOGNISED_DETAIL_SHARE` of the rows with a detail) name no page or form
    leadscore knows, or when none of at least :data:`NO_HIGH_INTENT_ROWS` names a
    high-intent one. The line names how many, the most common unknown details and the known
    ones. ``leadscore synth`` writes known details only, and a CRM's own page or form names
    among known ones (``ebook_gate``) stay a minority."""
    parts = [said for kind in DETAIL_KINDS if (said := _details_said(kind, counts))]
    if parts:
        logger.warning("activities: %s", "; ".join(parts))


def _activity_frame(
    activities: pd.DataFrame,
    details: dict[str, int],
    *,
    on_details: Callable[[DetailCounts], None] | None = None,
) -> pd.DataFrame:
    """The lean activity log the query scans: lead id, microsecond time, type and detail codes.

    ``d`` codes the details the catalogue filters on, a ``page_view``'s as the page it names
    and a ``form_fill``'s as the form (:func:`page_of_details`, :func:`form_of_details`: a
    URL or ``Demo Request`` counts); ``e`` numbers every distinct detail (-1 when missing),
    which tells one e-mail from another (:func:`_email_pairs_sql`). ``on_details`` receives
    the counts of the page and form details (:func:`count_unrecognised_details` of
    ``activities``), taken from the table the reading needs anyway. The work on text is done
    once per distinct detail.
    """
    ts = activities["occurred_at"].to_numpy().astype("datetime64[us]").view("int64")
    detail = (
        activities["detail"]
        if "detail" in activities.columns
        else pd.Series(pd.Categorical([None] * len(activities)))
    )
    if not isinstance(detail.dtype, pd.CategoricalDtype):
        detail = detail.astype("category")
    value = (
        activities["value"].to_numpy(dtype="float64", na_value=np.nan)
        if "value" in activities.columns
        else np.full(len(activities), np.nan)
    )
    types = _codes(activities["activity_type"], _TYPE_CODES)
    detail_codes = detail.cat.codes.to_numpy()
    categories = detail.cat.categories
    counts = _type_detail_counts(types, detail_codes, len(categories))
    reading = _DetailReading.of(categories, details, counts)
    if on_details is not None:
        on_details(_detail_counts(counts, reading))
    d = _detail_codes_of_rows(types, detail_codes, reading.table())
    return pd.DataFrame(
        {
            "lead_id": activities["lead_id"].astype("str").reset_index(drop=True),
            "ts": ts,
            "t": types,
            "d": d,
            "e": detail_codes.astype(np.int32),
            "v": value,
        }
    )


def _memory_limit() -> str:
    """Half the machine's memory: the frames themselves live in the other half."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return "4GB"
    return f"{max(total // 2 // 2**20, 512)}MB"


_Query = Callable[[pd.DataFrame, int], pd.DataFrame]


@contextmanager
def _engagement_engine(
    activities: pd.DataFrame,
    threads: int | None,
    memory_limit: str | None,
    *,
    on_details: Callable[[DetailCounts], None] | None = warn_unrecognised_details,
) -> Iterator[_Query]:
    """A DuckDB connection holding the activity log, yielding ``query(leads_now, as_of_us)``.

    Several as-of dates reuse one connection and one prepared activity frame, whose page and
    form details are read (and their counts handed to ``on_details``: by default warned
    about) once.
    """
    import duckdb

    details = _detail_vocabulary()
    sql = _engagement_sql(details)
    acts = _activity_frame(activities, details, on_details=on_details)
    # DuckDB creates the spill folder only when it spills and removes it on close; without
    # one it would spill into ".tmp" under the working directory.
    spill = Path(tempfile.gettempdir()) / f"leadscore-duckdb-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    config: dict[str, str | bool | int | float | list[str]] = {
        "threads": threads or os.cpu_count() or 1,
        "memory_limit": memory_limit or _memory_limit(),
        "temp_directory": str(spill),
        "preserve_insertion_order": False,
    }
    with duckdb.connect(config=config) as con:
        # a library must not draw on stdout; inside Jupyter without ipywidgets DuckDB refuses
        # the setting, and its bar is off there anyway
        with contextlib.suppress(duckdb.InvalidInputException):
            con.execute("SET enable_progress_bar = false")
        con.register("acts", acts)

        def query(leads_now: pd.DataFrame, as_of_us: int) -> pd.DataFrame:
            con.register("leads_now", leads_now)
            try:
                return con.execute(sql, {"as_of_us": as_of_us}).df()
            finally:
                con.unregister("leads_now")

        yield query


# --------------------------------------------------------------------------- fit features


def _as_categorical(values: pd.Series) -> pd.Categorical:
    """Text as a categorical whose categories are the sorted values seen (blanks missing)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    text = pd.Series(uniques).astype("str").str.strip()
    text = text.where(text != "")
    categories = pd.Index(sorted(text.dropna().unique()), dtype="str")
    lookup = np.append(categories.get_indexer(text), -1)
    return pd.Categorical.from_codes(lookup[codes], categories=categories)


@dataclass(frozen=True)
class _Extras:
    """Lead columns passed through as fit features: planned from the leads known at as-of, or
    taken from a trained model's features."""

    columns: dict[str, Feature]  # source column (as text) -> feature
    excluded: dict[str, str]


def _humanise(column: str) -> str:
    text = re.sub(r"[_\s]+", " ", str(column)).strip()
    return text[:1].upper() + text[1:] if text else str(column)


_TIMESTAMP_REASON = "a timestamp: its value may postdate as-of and leak"


def _holds_objects(values: pd.Series) -> bool:
    """Whether a column holds lists, arrays or mappings (DuckDB LIST, Postgres arrays, JSON)."""
    if not ptypes.is_object_dtype(values):
        return False
    return any(isinstance(v, list | tuple | dict | set | np.ndarray) for v in values.dropna())


def _spells_booleans(values: pd.Series) -> bool:
    """Whether every given value is text spelling True or False (:func:`_boolean_text`)."""
    given = values.dropna()
    if given.empty or not all(isinstance(v, str) for v in given):
        return False
    return bool(given.str.strip().str.lower().isin(["true", "false"]).all())


def _is_boolean(values: pd.Series) -> bool:
    """Whether every given value is a boolean (a bool column, or one with blanks read as
    objects): such a column reads "yes" or "no" in reasons, not 1 or 0."""
    if ptypes.is_bool_dtype(values):
        return True
    if not ptypes.is_object_dtype(values):
        return False
    given = values.dropna()
    return not given.empty and all(isinstance(v, bool | np.bool_) for v in given)


def _boolean_text(values: pd.Series) -> pd.Series:
    """``values`` with text spelling True or False (any case, as CSV readers take it) read as
    ``"1"`` or ``"0"``; other values as they are. A reader types a column of only True and
    False as booleans, and the same column with one ``unknown`` anywhere in the file as
    text: read either way, the leads known at as-of plan the same feature from it."""
    if not (ptypes.is_string_dtype(values) or ptypes.is_object_dtype(values)):
        return values
    # vectorised, as scoring reads every chunk this way; a bool among objects reads as 1 or
    # 0 here, as parse_numbers reads it anyway
    folded = values.astype("string").str.strip().str.lower()
    spelled = folded.isin(["true", "false"]).fillna(False).astype(bool)
    if not spelled.any():
        return values
    return values.where(~spelled, folded.map({"true": "1", "false": "0"}))


def _lead_numbers(values: pd.Series, column: object) -> pd.Series:
    """An extra lead column of a numeric feature as float64, read as the leads planned it.

    Text is read by :func:`leadscore.encoding.parse_numbers` (a CSV column holds text wherever
    one row anywhere in the file is no number); a value that is no number, or infinity, is
    an error naming the column.
    """
    numbers, bad = parse_numbers(_boolean_text(values))
    if bad.any():
        raise DataError(
            f"leads.{column} must be numeric but holds {values[bad].iloc[0]!r}",
            f"Keep only numbers (or blanks) in {column}.",
        )
    return _to_numeric(numbers, "leads", str(column))


def _not_numbers_reason(values: pd.Series, bad: pd.Series) -> str:
    examples = ", ".join(repr(str(v)) for v in pd.unique(values[bad])[:3])
    return f"numbers with {int(bad.sum())} non-numeric value(s), e.g. {examples}"


def _plan_extras(leads: pd.DataFrame) -> _Extras:
    """Which extra lead columns become features, and why others do not.

    Decided once for a feature table (a schema decision, not a value) from the values of the
    leads known at as-of, never from the dtype a reader gave the whole table (one later
    lead's ``unknown`` makes a CSV column text), so every as-of date of a training set gets
    the same columns and leads created later change nothing. A column whose given values all
    read as numbers (:func:`leadscore.encoding.parse_numbers`) is numeric; one of mostly numbers
    with a few words among them is left out with those words named; other text is
    categorical. Left out as well: columns empty for every lead, timestamps (a date after
    as-of would leak what happened later), also when written as text, identifier-like text
    (one value per lead) and columns holding lists or objects.
    """
    reserved = {f.name for f in feature_catalogue()} | {"lead_id"}
    columns: dict[str, Feature] = {}
    excluded: dict[str, str] = {}
    for column in leads.columns:
        if column in ("lead_id", "created_at") or column in LEAD_FIT_FIELDS:
            continue
        values = leads[column]
        name = str(column)
        if name in reserved:
            name = f"extra_{name}"
        if name in reserved or name in {f.name for f in columns.values()}:
            raise DataError(
                f"leads column {column!r} clashes with a feature name", "Rename the column."
            )
        if ptypes.is_datetime64_any_dtype(values) or ptypes.is_timedelta64_dtype(values):
            excluded[str(column)] = _TIMESTAMP_REASON
            continue
        if _holds_objects(values):
            excluded[str(column)] = "holds lists or objects, not single values"
            continue
        if isinstance(values.dtype, pd.CategoricalDtype):
            numbers, bad = pd.Series(np.nan, index=values.index), values.notna()
        else:
            numbers, bad = parse_numbers(_boolean_text(values))
        if not (numbers.notna() | bad).any():
            excluded[str(column)] = "empty for every lead created by as-of"
            continue
        label = _humanise(column)
        if not bad.any():
            # braces in a column name must not read as template fields
            flag = label.replace("{", "{{").replace("}", "}}") + ": {value:yes|no}"
            sentence = flag if _is_boolean(values) or _spells_booleans(values) else None
            columns[str(column)] = Feature(name, "fit", label, "numeric", sentence)
            continue
        if numbers.notna().sum() > bad.sum():
            excluded[str(column)] = _not_numbers_reason(values, bad)
            continue
        distinct = pd.Series(values.dropna().unique())
        if is_text_timestamps(distinct):
            excluded[str(column)] = _TIMESTAMP_REASON
            continue
        if len(distinct) > 1000 and len(distinct) > 0.5 * values.notna().sum():
            excluded[str(column)] = "identifier-like text (a different value for most leads)"
            continue
        columns[str(column)] = Feature(name, "fit", label, "categorical")
    for column, reason in excluded.items():
        logger.info("leads column %r is not a feature: %s", column, reason)
    return _Extras(columns, excluded)


def _model_extras(leads: pd.DataFrame, features: Sequence[Feature]) -> _Extras:
    """The extra lead columns of a trained model's ``features``, with the model's kinds.

    Scoring must build the columns the model was trained on, whatever the leads at hand would
    plan (a column with more distinct values now, a column added since).
    """
    builtin = {f.name for f in feature_catalogue()}
    fit_sources = {name: sources for name, _, _, sources in _FIT}
    present = {str(c) for c in leads.columns}
    columns: dict[str, Feature] = {}
    for feature in features:
        if feature.group != "fit":
            continue
        if feature.name in fit_sources:
            needed = fit_sources[feature.name]
        elif feature.name in builtin:
            continue
        else:
            stem = feature.name.removeprefix("extra_")
            needed = (stem if stem != feature.name and stem in builtin else feature.name,)
        if present.isdisjoint(needed):
            raise DataError(
                f"leads have no column {needed[0]!r}, which the model was trained with",
                "Add the column (empty values are fine), or retrain the model.",
            )
        if feature.name not in fit_sources:
            columns[needed[0]] = feature
    return _Extras(columns, {})


def check_lead_columns(columns: Iterable[object], features: Sequence[Feature]) -> None:
    """Stop with one line when a leads table with ``columns`` lacks a column that a model's
    ``features`` are built from: checked where the leads are not built here (on Spark's
    driver, before its workers build them)."""
    _model_extras(pd.DataFrame(columns=list(columns)), features)


def lead_columns_read(columns: Iterable[object], features: Sequence[Feature]) -> list[str]:
    """The columns of a leads table with ``columns`` that a model's fit ``features`` are read
    from (``job_title`` for seniority, an extra column under its own name), in table order:
    the columns whose type Spark's driver checks before its workers read them."""
    present = [str(c) for c in columns]
    fit_sources = {name: sources for name, _, _, sources in _FIT}
    read = set(_model_extras(pd.DataFrame(columns=present), features).columns)
    for feature in features:
        if feature.group == "fit":
            read.update(fit_sources.get(feature.name, ()))
    return [c for c in present if c in read]


def lead_fit_features(leads: pd.DataFrame, features: Sequence[Feature]) -> pd.DataFrame:
    """The fit features among a model's ``features``, read from a leads table alone (no
    activity log, no as-of) exactly as :func:`build_features` reads them.

    For checks of every lead that need not build their activity features (the checks of
    Spark's scorer for a column in other units or one that came empty,
    :class:`~leadscore.monitoring.SizeCheck` and :class:`~leadscore.monitoring.EmptyCheck`).
    """
    frame, _ = _fit_frame(leads, _model_extras(leads, features))
    return frame[[f.name for f in features if f.group == "fit" and f.name in frame.columns]]


def _fit_frame(leads: pd.DataFrame, extras: _Extras) -> tuple[pd.DataFrame, list[Feature]]:
    """Fit features of ``leads`` (already restricted to the leads known at as-of)."""
    out: dict[str, object] = {}
    features: list[Feature] = []
    sizes: pd.Series | None = None  # read once for the two size features
    for feature in _fit_features(leads.columns):
        name = feature.name
        if name in ("source", "campaign", "industry", "country"):
            out[name] = _as_categorical(leads[name])
        elif name in ("company_size", "company_size_band"):
            if sizes is None:
                sizes = parse_company_size(leads["company_size"])
            out[name] = (
                sizes.to_numpy() if name == "company_size" else company_size_band(sizes).array
            )
        elif name == "seniority":
            out[name] = parse_seniority(leads["job_title"]).array
        elif name == "department":
            out[name] = parse_department(leads["job_title"]).array
        elif name == "email_domain_kind":
            out[name] = email_domain_kind(leads.get("email"), leads.get("email_domain")).array
        features.append(feature)
    by_text = {str(c): c for c in leads.columns}
    for column, feature in extras.columns.items():
        values = leads[by_text[column]]
        if feature.kind == "numeric":
            out[feature.name] = _lead_numbers(values, column).to_numpy(na_value=np.nan)
        else:
            out[feature.name] = _as_categorical(values)
        features.append(feature)
    return pd.DataFrame(out, index=leads.index), features


# --------------------------------------------------------------------------- public API


#: What the feature builders read of their data: :class:`ClosedLoopData`, or anything that
#: holds the same validated tables (the generator's ``SyntheticData``).
_LOADED_PARTS = ("leads", "activities", "outcomes", "observed_until")


def _expect_loaded(data: object, function: str) -> None:
    """A :class:`UsageError` unless ``data`` holds loaded closed-loop tables (a folder's
    name is the usual mix-up)."""
    if not all(hasattr(data, part) for part in _LOADED_PARTS):
        raise UsageError(
            f"{function}'s data is a {type(data).__name__}",
            "Load it first: load_closed_loop(folder, DuckDB file or URL), or "
            "validate_closed_loop(leads, activities, outcomes) for DataFrames in memory.",
        )


def parse_timestamp(value: pd.Timestamp | str, what: str) -> pd.Timestamp:
    """A moment given by a person (``--as-of``) as tz-naive UTC.

    ``05/06/2026`` is refused: it is 6 May to pandas and 5 June to most of the world, and a
    data column with such dates is an error too. So is text without a four-digit year
    (``June 30``, ``06/30``), which pandas would place in the year 1.
    """
    readings = day_month_readings(value) if isinstance(value, str) else None
    if readings is not None:
        raise DataError(
            f"{what} {value!r} reads both day-first ({readings[0]}) and month-first "
            f"({readings[1]})",
            f"Write it as an ISO date: {readings[0]} or {readings[1]}.",
        )
    try:
        with warnings.catch_warnings():  # pandas' guess at a format: the errors below say more
            warnings.simplefilter("ignore", UserWarning)
            ts = pd.Timestamp(value)
    except (ValueError, TypeError) as err:
        raise DataError(
            f"{what} {value!r} is not a date or timestamp",
            "Write it as an ISO date such as 2024-03-01.",
        ) from err
    if ts is pd.NaT or pd.isna(ts):
        raise DataError(f"{what} is empty", "Give a date such as 2024-03-01.")
    if isinstance(value, str) and not re.search(r"\d{4}", value):
        raise DataError(
            f"{what} {value!r} has no year", "Write it as an ISO date such as 2024-03-01."
        )
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.as_unit("us")


def parse_as_of(
    value: pd.Timestamp | str, what: str = "--as-of", *, now: pd.Timestamp | None = None
) -> pd.Timestamp:
    """The moment of a scoring run as a person gives it: :func:`parse_timestamp`, and not in
    the future.

    A run as of next year would score every lead as idle for a year, replace the current
    scores and, being the newest run, keep later runs from taking its place, so it is refused
    as a data timestamp in the future is. A day of slack covers local times written without a
    timezone (read as UTC), as for the data.
    """
    ts = parse_timestamp(value, what)
    now = utc_now() if now is None else now
    if ts > future_cutoff(now):
        raise DataError(
            f"{what} {ts:%Y-%m-%d %H:%M} is in the future (it is {now:%Y-%m-%d %H:%M} UTC now)",
            f"Give a moment up to now, or leave {what} out (event data is then scored as of "
            "its end, its observed_until; flat data as of now).",
        )
    return ts


def _build(
    leads_now: pd.DataFrame, as_of: pd.Timestamp, query: _Query, extras: _Extras
) -> FeatureTable:
    """Features of ``leads_now`` (leads known at ``as_of``) in ``lead_id`` order."""
    leads_now = leads_now.sort_values("lead_id", kind="stable").reset_index(drop=True)
    as_of_us = int(as_of.as_unit("us").asm8.view("int64"))
    keys = pd.DataFrame(
        {
            "pos": np.arange(len(leads_now), dtype=np.int64),
            "lead_id": leads_now["lead_id"].astype("str"),
            "created_us": leads_now["created_at"].to_numpy().astype("datetime64[us]").view("int64"),
        }
    )
    engagement = query(keys, as_of_us)
    if not np.array_equal(engagement["pos"].to_numpy(), keys["pos"].to_numpy()):
        raise RuntimeError("engagement query lost or reordered leads")
    fit, fit_features = _fit_frame(leads_now, extras)
    eng_features = list(_engagement_features())
    frame = pd.concat(
        [keys[["lead_id"]], fit, engagement[[f.name for f in eng_features]].astype("float64")],
        axis=1,
    )
    return FeatureTable(frame=frame, features=(*fit_features, *eng_features), as_of=as_of)


#: How far as-of may pass the extract before scoring warns: a weekly job scores "now", minutes
#: or hours after the extract whose latest row sets observed_until.
AS_OF_GAP_TOLERANCE = pd.Timedelta(days=1)


def gap_in_days(gap: pd.Timedelta) -> str:
    """A gap between two moments as a reader says it (``8.9 days``), not as pandas prints a
    ``Timedelta`` (``8 days 21:51:02``)."""
    days = gap / pd.Timedelta(days=1)
    return f"{days:,.1f} days" if round(days, 1) != 1 else "1 day"


def _warn_as_of_after_extract(as_of: pd.Timestamp, observed_until: pd.Timestamp) -> None:
    """Warn when ``as_of`` is more than a day after ``observed_until``.

    Activity between the two is not in the data, so leads look idler than they are and
    recency features grow. A gap of minutes or hours is every scheduled run's lot (the data
    was extracted, then scored) and says nothing, so it passes without a word.
    """
    gap = as_of - observed_until
    if gap <= AS_OF_GAP_TOLERANCE:
        return
    logger.warning(
        "as_of %s is %s after observed_until %s (the extract's latest timestamp unless "
        "given): activity after it is not in the data, so recent activity may be missing. "
        "If the extract is complete up to as_of, declare it: a folder's manifest.json "
        '({"observed_until": "..."}), or in Python load_closed_loop(..., observed_until=...) '
        "(a database declares none: its latest timestamp is its end); else score with "
        "--as-of (as_of= in Python) no later than %s",
        f"{as_of:%Y-%m-%d %H:%M}",
        gap_in_days(gap),
        f"{observed_until:%Y-%m-%d %H:%M}",
        f"{observed_until:%Y-%m-%d %H:%M}",
    )


def build_features(
    data: ClosedLoopData,
    as_of: pd.Timestamp | str,
    *,
    threads: int | None = None,
    memory_limit: str | None = None,
    features: Sequence[Feature] | None = None,
    on_details: Callable[[DetailCounts], None] | None = warn_unrecognised_details,
) -> FeatureTable:
    """Features of every lead created by ``as_of``, from what was known at ``as_of`` only.

    Parameters
    ----------
    data : validated event-form data (:func:`leadscore.schema.validate_closed_loop`).
    as_of : the moment of scoring. Leads with ``created_at <= as_of`` get a row; activities
        with ``occurred_at <= as_of`` count; "last N days" is ``(as_of - N days, as_of]``.
        Outcomes are never read: adding any activity or outcome dated after ``as_of`` leaves
        every value unchanged.
    threads, memory_limit : DuckDB settings (default: all CPUs, half the machine's memory).
    features : a trained model's features (``LeadScoringModel.features``), when scoring: the
        extra lead columns and their kinds are then the model's, not planned again from the
        leads at hand. Without it they are planned from the leads created by ``as_of``, so
        leads created later never change which columns are features.
    on_details : receives the counts of the ``page_view`` and ``form_fill`` details of
        ``data.activities`` (all of its rows, whatever their lead or time), as
        :func:`count_unrecognised_details` gives them, from the counts the reading takes
        anyway (no second pass over the log). By default :func:`warn_unrecognised_details`,
        which warns when most of them name no page or form leadscore knows. A caller that
        builds the features of slices of one log collects each slice's counts and warns once
        over their sum; ``None`` neither counts nor warns (a Spark worker: its driver warns).

    Returns
    -------
    FeatureTable
        One row per lead in ``lead_id`` order: fit features (categorical columns as
        ``category``, numbers as float64) then engagement features (float64; counts are 0 and
        recency and rates NaN when nothing happened).

    Examples
    --------
    >>> table = build_features(data, "2024-03-01")  # doctest: +SKIP
    >>> table.X["pricing_page_views_30d"].describe()  # doctest: +SKIP
    """
    _expect_loaded(data, "build_features")
    ts = parse_timestamp(as_of, "as_of")
    _warn_as_of_after_extract(ts, data.observed_until)
    leads_now = data.leads[data.leads["created_at"] <= ts]
    extras = _plan_extras(leads_now) if features is None else _model_extras(leads_now, features)
    with _engagement_engine(data.activities, threads, memory_limit, on_details=on_details) as query:
        table = _build(leads_now, ts, query, extras)
    logger.info(
        "features as of %s: %s leads x %s features",
        ts,
        f"{len(table.frame):,}",
        len(table.features),
    )
    return table


def default_as_of_dates(
    data: ClosedLoopData,
    horizon_days: int,
    every_days: int = 30,
    warmup_days: int = 90,
) -> list[pd.Timestamp]:
    """As-of dates for training: every ``every_days`` back from the last complete window.

    The latest date is ``observed_until - horizon_days`` (its label window just closes), and
    dates go back while at least ``warmup_days`` of history exist before them (the longest
    feature window), so early examples do not look idle only because logging had just begun.
    Dates are midnights, oldest first.
    """
    _check_days(horizon_days, "horizon_days")
    _check_days(every_days, "every_days")
    if warmup_days < 0:
        raise SpecError(
            f"warmup_days must be 0 or more, got {warmup_days}", "Give a whole number of days."
        )
    start = data.leads["created_at"].min() + pd.Timedelta(days=warmup_days)
    last = (data.observed_until - pd.Timedelta(days=horizon_days)).floor("D")
    if last < start:
        first = data.leads["created_at"].min()
        raise DataError(
            f"the data spans too little time for {warmup_days} days of history plus a "
            f"{horizon_days}-day outcome window (leads from {first:%Y-%m-%d}"
            f", observed until {data.observed_until:%Y-%m-%d})",
            "Use a shorter horizon or warm-up, or more history.",
        )
    step = pd.Timedelta(days=every_days)
    count = int((last - start) // step) + 1
    return [(last - k * step).as_unit("us") for k in reversed(range(count))]


def _check_days(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise SpecError(
            f"{what} must be a whole number of days of at least 1, got {value!r}",
            f"Set {what} to e.g. 30.",
        )


def _unify_categories(frames: list[pd.DataFrame], features: Sequence[Feature]) -> None:
    """Give each categorical column the same categories in all frames (in place).

    Fixed vocabularies (seniority, bands, ...) already agree; raw text columns get the sorted
    union, so that concatenating the frames keeps the ``category`` dtype.
    """
    for f in features:
        if f.kind != "categorical":
            continue
        first = frames[0][f.name].cat.categories
        if all(frame[f.name].cat.categories.equals(first) for frame in frames):
            continue
        ordered = sorted(set().union(*(frame[f.name].cat.categories for frame in frames)))
        for frame in frames:
            frame[f.name] = frame[f.name].cat.set_categories(ordered)


def build_event_examples(
    data: ClosedLoopData,
    events: EventConfig | TrainConfig,
    *,
    name: str = "events",
    on_details: Callable[[DetailCounts], None] | None = warn_unrecognised_details,
) -> LabelledDataset:
    """The examples ``leadscore train --data`` trains on, from the config's ``events``
    section: as-of dates every ``every_days`` after ``warmup_days`` of history
    (:func:`default_as_of_dates`), each labelled over ``horizon_days``
    (:func:`build_training_examples`). One function, so that a notebook builds what the
    command builds and the settings logged with a run are the ones used. ``events`` is the
    config's ``events`` section or the whole :class:`~leadscore.config.TrainConfig` (its
    ``events`` are read), the object a notebook already holds for :func:`train`.

    Data read without an outcomes table (``absent_tables``) is refused: every lead would be
    open, and the cold-start advice to wait for more outcomes would hide a missing file.
    ``on_details`` as for :func:`build_training_examples`.
    """
    _expect_loaded(data, "build_event_examples")
    events = _events_section(events)
    if "outcomes" in data.absent_tables:
        raise DataError(
            f"{name} has no outcomes table, so no lead has an outcome to learn from",
            "Add outcomes.parquet or outcomes.csv (lead_id, outcome, closed_at; see the data "
            "contract).",
        )
    dates = default_as_of_dates(
        data, events.horizon_days, every_days=events.every_days, warmup_days=events.warmup_days
    )
    return build_training_examples(
        data, dates, events.horizon_days, name=name, on_details=on_details
    )


def _events_section(events: object) -> EventConfig:
    """The ``events`` section of a config, given the section or a whole ``TrainConfig``
    (read by its attributes: importing the config here would load sklearn with every feature
    build); a :class:`UsageError` for anything else."""
    section = getattr(events, "events", events)
    if all(hasattr(section, key) for key in ("horizon_days", "every_days", "warmup_days")):
        return cast("EventConfig", section)
    raise UsageError(
        f"build_event_examples' events is a {type(events).__name__}",
        "Pass the training config or its events section: config or config.events, with "
        "config = load_config('configs/train.yaml') (TrainConfig() for the defaults).",
    )


def _warn_date_only_activities(activities: pd.DataFrame, dates: Sequence[pd.Timestamp]) -> None:
    """Warn when the activity log holds dates without a time of day and the as-of dates fall
    at midnight: a date reads as the day's first moment, so an activity of an as-of date
    counts in that date's example although it may have happened later that day, after the
    as-of moment (a demo logged on the day a deal was won reaches the example that predicts
    the win). Timestamps with their time of day keep the boundary exact."""
    moments = activities["occurred_at"]
    if moments.empty or any(d != d.normalize() for d in dates):
        return
    head = moments.iloc[:100_000]
    if not (head == head.dt.normalize()).all() or not (moments == moments.dt.normalize()).all():
        return
    logger.warning(
        "activities.occurred_at holds dates without a time of day: an activity dated on an "
        "as-of date counts in that date's training example although it may have happened "
        "later that day (a demo logged on the day a deal was won reaches the example that "
        "predicts the win), so the test metrics may flatter the model by up to a day of "
        "activity; export occurred_at with its time of day"
    )


def build_training_examples(
    data: ClosedLoopData,
    as_of_dates: Sequence[pd.Timestamp | str],
    horizon_days: int,
    *,
    name: str = "events",
    threads: int | None = None,
    memory_limit: str | None = None,
    on_details: Callable[[DetailCounts], None] | None = warn_unrecognised_details,
) -> LabelledDataset:
    """Labelled examples: open leads at each as-of date, 1 if won within ``horizon_days``.

    For each date ``d``: leads created by ``d`` and still open (no outcome with
    ``closed_at <= d``) get their features as of ``d`` and label 1 when they were won with
    ``d < closed_at <= d + horizon``, else 0. A date whose window ends after
    ``observed_until`` is left out entirely: its leads might still win (right-censoring), so
    calling them lost would bias the model. A lead appears once per date it was open.

    The extra lead columns are planned once, from the leads created by the latest usable
    date: leads created after it take no part in training and decide nothing.

    ``on_details`` receives the counts of the log's page and form details, as in
    :func:`build_features` (by default a warning when most name nothing leadscore knows);
    ``None`` for a caller that has already warned over the same log (``validate``).

    Returns
    -------
    LabelledDataset
        ``order`` holds each example's as-of date (for time-ordered folds) and
        ``excluded`` the lead columns not used and why.
    """
    _expect_loaded(data, "build_training_examples")
    if isinstance(as_of_dates, (str, datetime.date, np.datetime64)):
        raise UsageError(
            f"build_training_examples' as_of_dates is a single date ({as_of_dates!r})",
            f"Pass a list of dates, e.g. [{str(as_of_dates)!r}], or "
            "default_as_of_dates(data, horizon_days).",
        )
    _check_days(horizon_days, "horizon_days")
    horizon = pd.Timedelta(days=int(horizon_days))
    dates = sorted({parse_timestamp(d, "as-of date") for d in as_of_dates})
    if not dates:
        raise SpecError(
            "no as-of dates given",
            "Pass at least one date, or use default_as_of_dates(data, horizon_days).",
        )
    usable = [d for d in dates if d + horizon <= data.observed_until]
    if len(usable) < len(dates):
        logger.info(
            "left out %d as-of date(s) whose %d-day window ends after %s",
            len(dates) - len(usable),
            horizon_days,
            data.observed_until,
        )
    if not usable:
        raise DataError(
            f"no as-of date leaves a complete {horizon_days}-day outcome window before "
            f"observed_until {data.observed_until}",
            "Choose earlier as-of dates or a shorter horizon.",
        )
    _warn_date_only_activities(data.activities, usable)
    outcomes = data.outcomes.set_index("lead_id")
    extras = _plan_extras(data.leads[data.leads["created_at"] <= usable[-1]])
    frames: list[pd.DataFrame] = []
    labels: list[np.ndarray] = []
    orders: list[np.ndarray] = []
    features: tuple[Feature, ...] = ()
    with _engagement_engine(data.activities, threads, memory_limit, on_details=on_details) as query:
        for d in usable:
            closed = outcomes.index[outcomes["closed_at"] <= d]
            leads = data.leads
            leads_now = leads[(leads["created_at"] <= d) & ~is_known_id(leads["lead_id"], closed)]
            if leads_now.empty:
                continue
            table = _build(leads_now, d, query, extras)
            features = table.features
            outcome = outcomes.reindex(table.frame["lead_id"])
            won = (
                (outcome["outcome"] == "won")
                & (outcome["closed_at"] > d)
                & (outcome["closed_at"] <= d + horizon)
            )
            frames.append(table.frame)
            labels.append(won.to_numpy(dtype=np.int64))
            orders.append(np.full(len(table.frame), d.to_datetime64(), dtype="datetime64[us]"))
            logger.info(
                "as of %s: %s open leads, %d won within %d days",
                d.date(),
                f"{len(table.frame):,}",
                int(labels[-1].sum()),
                horizon_days,
            )
    if not frames:
        raise DataError(
            "no lead was open at any usable as-of date",
            "Choose as-of dates after the first leads were created.",
        )
    _unify_categories(frames, features)
    frame = pd.concat(frames, ignore_index=True)
    excluded = {"outcomes": "used only for labels, never as features", **extras.excluded}
    return LabelledDataset(
        name=name,
        X=frame[[f.name for f in features]],
        y=np.concatenate(labels),
        lead_id=frame["lead_id"].rename("lead_id"),
        order=pd.Series(np.concatenate(orders), name="as_of"),
        features=features,
        excluded=excluded,
        horizon_days=int(horizon_days),
        form="events",
    )
