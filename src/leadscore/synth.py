"""Synthetic closed-loop lead data with a known ground truth.

The generator writes data in the event form of :mod:`leadscore.schema` (leads, activities,
outcomes) that is realistic enough to demo and test the whole product, plus a separate
``truth`` table holding each lead's true probabilities, so that tests can compare calibrated
predictions with the truth rather than with noisy outcomes.

The mechanism
-------------
Every lead draws a profile, then three latent scores:

* ``fit``: the sum of the firmographic and campaign effects: campaign quality, industry,
  company size, country, job-title seniority and department, free-mail address, and a "junk"
  flag (students, job seekers, test entries) that campaigns bring in different shares. Every
  input of ``fit`` is observable in the leads table, except where a field is left blank.
* ``intent``: campaign intent plus standard normal noise. It drives how much the lead does and
  what: web visits, pricing and demo pages, high-intent forms, chats, trial sign-up and use,
  e-mail opens and clicks.
* ``hidden``: normal noise (budget, timing, competition) that no column reveals. It keeps
  the problem from being trivial.

Outcome and timing are then drawn independently of each other given the latents:

* eventual win ``~ Bernoulli(p_win)``, ``logit(p_win) = b0 + FIT_COEF * fit +
  INTENT_COEF * intent + hidden``; ``b0`` is solved so that the mean ``p_win`` of the
  population equals :attr:`SynthParams.win_rate`;
* time from creation to close ``~ Exponential(close_rate_per_day)``, the rate a log-linear
  function of intent, company size, channel and noise, scaled so that the mean time to close
  is :attr:`SynthParams.mean_days_to_close`. Won and lost leads close with the same law.

A lead whose close falls after ``observed_until`` is still open: it has no outcome row.
Because the close delay is memoryless and independent of the outcome, a lead still open at
any moment ``as_of`` wins within the next ``H`` days with probability
``p_win * (1 - exp(-close_rate_per_day * H))``, whatever its age:
:func:`true_conversion_probability` computes it, the exact target of a model that predicts
"won within H days".

Activity is a Poisson process per lead whose intensity depends only on the latents and on the
lead's age (a burst after creation and a slower decay), never on the realised outcome or close
date; it stops at the close or at ``observed_until``. Rows of the log are therefore free of
leakage by construction: what a lead did before ``as_of`` says nothing about its future that
its latents do not. The log holds a first touch at creation (the form, chat, event or webinar
that made the lead), web visits with their page views, marketing e-mails with opens and
clicks, forms, downloads, webinar registrations and attendance, chats, events, and at most one
trial sign-up followed by days of trial use. The constants are set so that, on "won within
90 days", the truth reaches a ROC-AUC near 0.88 and LightGBM on the features of
:mod:`leadscore.features` about 0.83-0.85: learnable, not trivial.

What is written: ``leads``, ``activities``, ``outcomes`` (the event form), ``truth`` (per
lead: ``p_win``, ``close_rate_per_day``, the latents, the eventual outcome and close time even
when censored), ``costs.csv`` (spend per channel: cost per lead differs by channel, and at
:attr:`SynthParams.deal_value` some channels return more than they cost and some less) and
``manifest.json`` (parameters, ``observed_until``, counts).

Determinism: one seed gives one data set. Creation times are drawn once for all leads, then
leads are simulated in blocks of :attr:`SynthParams.block_size` leads, each with its own child
generator (``SeedSequence(seed, spawn_key=(1, block))``), so the in-memory and the chunked
writers give identical data and memory stays bounded by one block.

Examples
--------
>>> data = generate_closed_loop(SynthParams(n_leads=200, seed=1))
>>> sorted(data.leads.columns)[:3]
['campaign', 'company_size', 'country']
>>> float(true_conversion_probability(data.truth, 90).max()) <= 1.0
True
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from leadscore.errors import SpecError
from leadscore.schema import ACTIVITY_TYPES

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1
DAY_US = 86_400_000_000
SECOND_US = 1_000_000

#: Weights of the eventual-win log-odds on the latent scores.
FIT_COEF = 1.2
INTENT_COEF = 1.2
HIDDEN_SD = 0.6

# fmt: off
CHANNELS: tuple[str, ...] = (
    "paid_search", "paid_social", "organic", "referral", "events", "partner", "chat",
)
DEFAULT_CHANNEL_MIX: Mapping[str, float] = MappingProxyType({
    "paid_search": 0.25, "paid_social": 0.20, "organic": 0.22, "referral": 0.08,
    "events": 0.08, "partner": 0.07, "chat": 0.10,
})
#: What a lead costs in each channel (currency units); spend = leads x this x noise.
COST_PER_LEAD: Mapping[str, float] = MappingProxyType({
    "paid_search": 160.0, "paid_social": 110.0, "organic": 25.0, "referral": 70.0,
    "events": 900.0, "partner": 260.0, "chat": 35.0,
})
FREE_MAIL_DOMAINS: tuple[str, ...] = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com")
OUTPUT_TABLES: tuple[str, ...] = ("leads", "activities", "outcomes", "truth")
EVENT_TABLES: tuple[str, ...] = ("leads", "activities", "outcomes")


@dataclass(frozen=True)
class _Campaign:
    channel: str
    name: str
    share: float  # within its channel
    quality: float  # shift of fit
    intent: float  # shift of intent
    junk: float  # share of junk leads
    size_shift: float = 0.0  # shift of log10(employees)
    first_touch: float = 0.0  # shift of the odds that the first form is a high-intent one


CAMPAIGNS: tuple[_Campaign, ...] = (
    _Campaign("paid_search", "paid_search_brand", 0.30, 0.3, 0.6, 0.04, 0.0, 0.8),
    _Campaign("paid_search", "paid_search_generic", 0.45, -0.2, 0.0, 0.12),
    _Campaign("paid_search", "paid_search_competitor", 0.25, 0.2, 0.3, 0.06, 0.1, 0.4),
    _Campaign("paid_social", "paid_social_linkedin_abm", 0.30, 0.4, 0.0, 0.03, 0.4),
    _Campaign("paid_social", "paid_social_linkedin_content", 0.40, -0.1, -0.3, 0.10),
    _Campaign("paid_social", "paid_social_facebook_leadgen", 0.30, -0.5, -0.6, 0.35, -0.3, -0.5),
    _Campaign("organic", "organic_search", 0.50, 0.0, 0.0, 0.12),
    _Campaign("organic", "organic_blog", 0.35, -0.2, -0.5, 0.20, -0.1, -0.6),
    _Campaign("organic", "organic_direct", 0.15, 0.2, 0.4, 0.06, 0.0, 0.5),
    _Campaign("referral", "referral_customer", 0.60, 0.5, 0.6, 0.02, 0.1, 0.8),
    _Campaign("referral", "referral_review_site", 0.40, 0.2, 0.4, 0.05, 0.0, 0.4),
    _Campaign("events", "events_trade_show", 0.50, 0.0, -0.3, 0.08, 0.3),
    _Campaign("events", "events_user_conference", 0.20, 0.5, 0.3, 0.02, 0.3),
    _Campaign("events", "events_webinar_series", 0.30, 0.0, -0.1, 0.10),
    _Campaign("partner", "partner_reseller", 0.55, 0.3, 0.2, 0.03, 0.2, 0.3),
    _Campaign("partner", "partner_integration", 0.45, 0.3, 0.3, 0.03, 0.0, 0.3),
    _Campaign("chat", "chat_pricing_page", 0.45, 0.1, 0.8, 0.05),
    _Campaign("chat", "chat_website", 0.55, -0.1, 0.2, 0.15),
)
#: Channel effects on the speed of closing (log rate) and on the odds of a trial.
CHANNEL_SPEED: Mapping[str, float] = MappingProxyType({
    "paid_search": 0.0, "paid_social": -0.1, "organic": 0.0, "referral": 0.2, "events": -0.1,
    "partner": -0.15, "chat": 0.3,
})
CHANNEL_TRIAL: Mapping[str, float] = MappingProxyType({
    "paid_search": 0.3, "paid_social": 0.0, "organic": 0.3, "referral": 0.0, "events": -0.5,
    "partner": -0.4, "chat": 0.0,
})

# (name, share, effect on fit)
INDUSTRIES: tuple[tuple[str, float, float], ...] = (
    ("Software", 0.22, 0.5), ("Financial Services", 0.10, 0.3),
    ("Professional Services", 0.10, 0.2), ("Healthcare", 0.08, 0.0),
    ("Retail & E-commerce", 0.10, 0.1), ("Manufacturing", 0.09, -0.1),
    ("Media & Publishing", 0.06, 0.1), ("Telecommunications", 0.05, 0.1),
    ("Education", 0.08, -0.6), ("Government", 0.04, -0.7), ("Non-profit", 0.04, -0.8),
    ("Travel & Hospitality", 0.04, -0.2),
)
# (name, share, effect on fit, corporate top-level domain, extra log-odds of free mail)
COUNTRIES: tuple[tuple[str, float, float, str, float], ...] = (
    ("United States", 0.38, 0.3, "com", 0.0), ("United Kingdom", 0.10, 0.25, "co.uk", 0.0),
    ("Germany", 0.08, 0.2, "de", 0.0), ("Canada", 0.05, 0.2, "ca", 0.0),
    ("France", 0.05, 0.0, "fr", 0.0), ("Netherlands", 0.03, 0.15, "nl", 0.0),
    ("Australia", 0.04, 0.15, "com.au", 0.0), ("Sweden", 0.02, 0.1, "se", 0.0),
    ("Spain", 0.03, -0.2, "es", 0.3), ("India", 0.09, -0.5, "in", 0.8),
    ("Brazil", 0.05, -0.4, "com.br", 0.6), ("Singapore", 0.02, 0.1, "sg", 0.0),
    ("Mexico", 0.02, -0.4, "mx", 0.6), ("Nigeria", 0.02, -0.7, "ng", 1.0),
    ("Philippines", 0.02, -0.6, "ph", 0.8),
)
# company size bands: upper bound (exclusive) of employees and effect on fit
SIZE_BANDS: tuple[tuple[float, float], ...] = (
    (10, -0.9), (50, -0.3), (200, 0.2), (1000, 0.45), (5000, 0.35), (math.inf, 0.1),
)
# (seniority, share at companies over 20 employees, share at 20 or fewer, effect on fit)
SENIORITIES: tuple[tuple[str, float, float, float], ...] = (
    ("c_level", 0.05, 0.12, 0.5), ("vp", 0.07, 0.03, 0.7), ("head", 0.06, 0.06, 0.6),
    ("director", 0.10, 0.05, 0.6), ("manager", 0.23, 0.15, 0.3), ("senior", 0.17, 0.10, 0.0),
    ("individual", 0.24, 0.22, -0.2), ("junior", 0.05, 0.02, -0.5), ("owner", 0.03, 0.25, 0.3),
)
# (department, share, effect on fit, C-level titles, manager titles, individual roles)
DEPARTMENTS: tuple[tuple[str, float, float, tuple[str, ...], tuple[str, ...],
                         tuple[str, ...]], ...] = (
    ("Marketing", 0.30, 0.5, ("CMO", "Chief Marketing Officer"),
     ("Marketing Manager", "Demand Generation Manager", "Marketing Operations Manager"),
     ("Marketing Specialist", "Content Marketer", "Growth Marketer")),
    ("Sales", 0.20, 0.4, ("Chief Sales Officer", "CSO"),
     ("Sales Manager", "Account Manager"),
     ("Account Executive", "Sales Development Representative")),
    ("Revenue Operations", 0.05, 0.6, ("Chief Revenue Officer", "CRO"),
     ("Revenue Operations Manager",), ("Revenue Operations Analyst",)),
    ("Data & Analytics", 0.10, 0.3, ("Chief Data Officer",),
     ("Analytics Manager",), ("Data Analyst", "Data Engineer", "Data Scientist")),
    ("Engineering", 0.10, -0.1, ("CTO", "Chief Technology Officer"),
     ("Engineering Manager",), ("Software Engineer", "Backend Developer")),
    ("IT", 0.07, -0.1, ("CIO",), ("IT Manager",), ("Systems Administrator", "IT Specialist")),
    ("Operations", 0.06, 0.0, ("COO", "Chief Operating Officer"),
     ("Operations Manager",), ("Operations Analyst",)),
    ("Finance", 0.05, -0.2, ("CFO",), ("Finance Manager",), ("Financial Analyst", "Accountant")),
    ("Product", 0.04, 0.1, ("Chief Product Officer",),
     ("Product Manager",), ("Product Analyst", "Product Designer")),
    ("HR", 0.03, -0.6, ("Chief People Officer",), ("HR Manager",), ("Recruiter",)),
)
OWNER_TITLES: tuple[str, ...] = (
    "CEO", "Founder", "Co-Founder & CEO", "Owner", "President", "Managing Director",
)
JUNK_TITLES: tuple[tuple[str, float], ...] = (
    ("Student", 0.30), ("Intern", 0.12), ("Marketing Intern", 0.10), ("Job Seeker", 0.12),
    ("Freelancer", 0.12), ("Assistant", 0.08), ("Teacher", 0.06), ("Retired", 0.04),
    ("n/a", 0.06),
)
FIRST_NAMES: tuple[str, ...] = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas",
    "Sarah", "Daniel", "Karen", "Matthew", "Emma", "Lukas", "Sophie", "Hannah", "Felix",
    "Priya", "Rahul", "Ananya", "Arjun", "Lucas", "Gabriela", "Mateo", "Valentina", "Chen",
    "Wei", "Yuki", "Haruto", "Oluwaseun", "Chioma", "Fatima", "Omar", "Ingrid", "Lars",
    "Camille", "Louis", "Isabella", "Diego", "Aisha", "Noah", "Olivia", "Liam", "Mia",
    "Ethan", "Zoe", "Maya", "Ivan", "Elena", "Tomas", "Nora",
)
LAST_NAMES: tuple[str, ...] = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Martinez",
    "Lopez", "Wilson", "Anderson", "Taylor", "Thomas", "Moore", "Jackson", "Martin", "Lee",
    "Thompson", "White", "Harris", "Clark", "Lewis", "Walker", "Young", "King", "Wright",
    "Scott", "Green", "Baker", "Mueller", "Schmidt", "Schneider", "Fischer", "Weber", "Sharma",
    "Patel", "Gupta", "Singh", "Kumar", "Silva", "Santos", "Oliveira", "Costa", "Wang", "Li",
    "Zhang", "Tanaka", "Suzuki", "Okafor", "Adeyemi", "Hassan", "Ali", "Andersson",
    "Johansson", "Dubois", "Bernard", "Rossi", "Novak", "Kowalski",
)
COMPANY_PREFIXES: tuple[str, ...] = (
    "north", "blue", "bright", "silver", "apex", "cloud", "data", "green", "iron", "lumen",
    "nova", "orbit", "pixel", "quant", "red", "summit", "terra", "vertex", "zen", "acme",
    "alpine", "atlas", "cobalt", "delta", "ember", "falcon", "granite", "harbor", "helix",
    "kite", "maple", "metro", "nimbus", "oak", "pioneer", "prism", "river", "stellar",
    "swift", "union",
)
COMPANY_SUFFIXES: tuple[str, ...] = (
    "labs", "soft", "works", "systems", "logic", "tech", "group", "hq", "io", "digital",
    "media", "health", "bank", "retail", "analytics", "partners", "solutions", "cloud",
    "capital", "foods",
)

# activity vocabularies: (detail, base weight, slope on intent): weight = base * exp(slope * z)
PAGES: tuple[tuple[str, float, float], ...] = (
    ("blog", 3.0, -0.2), ("product", 2.0, 0.0), ("docs", 0.8, 0.2), ("pricing", 0.5, 1.2),
    ("demo", 0.2, 1.3), ("case_study", 0.4, 0.6), ("careers", 0.25, -0.5), ("about", 0.6, 0.0),
)
JUNK_PAGE_BOOST: Mapping[str, float] = MappingProxyType({"blog": 2.0, "careers": 8.0})
FORMS: tuple[tuple[str, float, float], ...] = (
    ("demo_request", 0.12, 1.1), ("contact_sales", 0.08, 1.0), ("pricing_quote", 0.06, 1.0),
    ("newsletter", 0.6, -0.3), ("content_download", 0.7, 0.0),
    ("webinar_registration", 0.3, 0.0),
)
HIGH_FIRST_FORMS: tuple[tuple[str, float], ...] = (
    ("demo_request", 0.5), ("contact_sales", 0.3), ("pricing_quote", 0.2),
)
LOW_FIRST_FORMS: tuple[tuple[str, float], ...] = (
    ("content_download", 0.55), ("newsletter", 0.30), ("webinar_registration", 0.15),
)
DOWNLOADS: tuple[tuple[str, float, float], ...] = (
    ("ebook", 1.0, 0.0), ("whitepaper", 0.8, 0.0), ("case_study", 0.35, 0.6),
    ("datasheet", 0.3, 0.8),
)
CHAT_TOPICS: tuple[tuple[str, float, float], ...] = (
    ("pricing", 0.5, 0.8), ("demo", 0.3, 0.8), ("support", 0.6, 0.0), ("general", 1.0, 0.0),
)
EVENT_NAMES: tuple[tuple[str, float], ...] = (
    ("trade_show", 0.45), ("user_conference", 0.2), ("meetup", 0.2), ("roadshow", 0.15),
)
EMAILS: tuple[tuple[str, float], ...] = (
    ("welcome_series", 0.10), ("nurture", 0.35), ("newsletter", 0.25), ("product_update", 0.10),
    ("webinar_invite", 0.08), ("case_study_digest", 0.07), ("pricing_offer", 0.05),
)
TRIAL_FEATURES: tuple[tuple[str, float, float], ...] = (
    ("dashboard", 1.0, 0.0), ("lead_scoring", 0.6, 0.4), ("integrations", 0.4, 0.5),
    ("reports", 0.7, 0.0), ("api", 0.3, 0.3),
)
WEBINAR_STATES: tuple[str, ...] = ("registered", "attended")
# fmt: on

#: Types of the background activity process (one Poisson process, split by per-lead rates).
BASE_TYPES: tuple[str, ...] = (
    "web_visit", "email_sent", "form_fill", "download", "webinar", "chat", "event",
)  # fmt: skip
BURST_DAYS = 14.0  # decay of the burst of activity after a lead is created
BURST_SHARE = 1.0
SLOW_DAYS = 120.0  # decay of the long tail of nurture activity
SLOW_SHARE = 1.5
TRIAL_SIGNUP_DAYS = 10.0
TRIAL_LENGTH_DAYS = 14
CALIBRATION_LEADS = 100_000
CALIBRATION_ENTROPY = 20_260_630


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class SynthParams:
    """Parameters of the synthetic data; with the seed they fix the data set exactly.

    Parameters
    ----------
    n_leads : number of leads.
    seed : random seed; one seed gives one data set.
    win_rate : mean eventual-win probability of a lead (before any censoring).
    channel_mix : share of leads per channel (``CHANNELS``); missing channels get none and
        the shares are normalised to sum to one.
    start, end : leads are created in ``[start, end)``; ``end`` is ``observed_until``, the
        moment the extract is taken (later closes are censored: those leads are open).
    mean_activities : mean number of activity rows per lead.
    mean_days_to_close : mean time from creation to close (won or lost), in days.
    deal_value : value of a won deal, for value-per-lead versus cost-per-lead analyses.
    missing_rate : share of leads with a blank industry, company size, job title (and half of
        it for country): CRMs are never complete.
    block_size : leads per random block; changing it changes the data (it fixes the child
        generators), so it is a parameter and not a tuning knob.
    """

    n_leads: int = 10_000
    seed: int = 0
    win_rate: float = 0.12
    channel_mix: Mapping[str, float] = field(default_factory=lambda: DEFAULT_CHANNEL_MIX)
    start: str = "2025-01-01"
    end: str = "2026-06-30"
    mean_activities: float = 50.0
    mean_days_to_close: float = 60.0
    deal_value: float = 6_000.0
    missing_rate: float = 0.05
    block_size: int = 50_000

    def __post_init__(self) -> None:
        _check_int("n_leads", self.n_leads, 1)
        _check_int("seed", self.seed, 0)
        _check_int("block_size", self.block_size, 1)
        _check_range("win_rate", self.win_rate, 0.001, 0.95)
        _check_range("mean_activities", self.mean_activities, 3.0, 10_000.0)
        _check_range("mean_days_to_close", self.mean_days_to_close, 1.0, 3_650.0)
        _check_range("deal_value", self.deal_value, 0.0, 1e12)
        _check_range("missing_rate", self.missing_rate, 0.0, 0.5)
        object.__setattr__(self, "channel_mix", _normalise_mix(self.channel_mix))
        start, end = self.start_ts, self.observed_until
        if end - start < pd.Timedelta(days=1):
            raise SpecError(
                f"end {self.end} is not at least one day after start {self.start}",
                "Give a start date before the end date.",
            )

    @property
    def start_ts(self) -> pd.Timestamp:
        return _parse_date("start", self.start)

    @property
    def observed_until(self) -> pd.Timestamp:
        return _parse_date("end", self.end)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready parameters, for the manifest."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["channel_mix"] = dict(self.channel_mix)
        return out


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise SpecError(
            f"{name} must be a whole number >= {low}, got {value!r}",
            f"Set {name} to {low} or more.",
        )


def _check_range(name: str, value: object, low: float, high: float) -> None:
    number = (
        float(value)
        if isinstance(value, int | float | np.number) and not isinstance(value, bool)
        else math.nan
    )
    if not math.isfinite(number) or not low <= number <= high:
        raise SpecError(
            f"{name} must be a number in [{low:g}, {high:g}], got {value!r}",
            f"Set {name} inside that range.",
        )


def _parse_date(name: str, text: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError) as err:
        raise SpecError(f"{name} {text!r} is not a date", "Write it as YYYY-MM-DD.") from err
    if ts is pd.NaT or pd.isna(ts):
        raise SpecError(f"{name} {text!r} is not a date", "Write it as YYYY-MM-DD.")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.as_unit("us")


def _normalise_mix(mix: Mapping[str, float]) -> dict[str, float]:
    if not isinstance(mix, Mapping) or not mix:
        raise SpecError(
            "channel_mix must map channels to shares",
            f"Give shares for some of: {', '.join(CHANNELS)}.",
        )
    unknown = [c for c in mix if c not in CHANNELS]
    if unknown:
        raise SpecError(
            f"channel_mix: unknown channel {unknown[0]!r}",
            f"Use channels from: {', '.join(CHANNELS)}.",
        )
    shares = {}
    for channel in CHANNELS:
        value = mix.get(channel, 0.0)
        _check_range(f"channel_mix[{channel!r}]", value, 0.0, 1e9)
        shares[channel] = float(value)
    total = sum(shares.values())
    if total <= 0:
        raise SpecError("channel_mix shares sum to zero", "Give at least one channel a share.")
    if math.isclose(total, 1.0, rel_tol=1e-9):
        return shares
    return {c: v / total for c, v in shares.items()}


# --------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class _Tables:
    """Lookup arrays built from the module constants and the parameters (no global state)."""

    campaign_p: np.ndarray
    campaign_channel: np.ndarray
    campaign_quality: np.ndarray
    campaign_intent: np.ndarray
    campaign_junk: np.ndarray
    campaign_size: np.ndarray
    campaign_first: np.ndarray
    channel_speed: np.ndarray
    channel_trial: np.ndarray
    titles: tuple[str, ...]
    title_offset: np.ndarray  # (seniority, department) -> first title index
    title_count: np.ndarray
    junk_title0: int
    details: tuple[str, ...]
    detail_code: Mapping[tuple[str, str], int]


def _build_tables(params: SynthParams) -> _Tables:
    channel_index = {c: i for i, c in enumerate(CHANNELS)}
    campaign_p = np.array([params.channel_mix[c.channel] * c.share for c in CAMPAIGNS])
    titles: list[str] = []
    offset = np.zeros((len(SENIORITIES), len(DEPARTMENTS)), dtype=np.int64)
    count = np.zeros_like(offset)
    for s, (level, *_rest) in enumerate(SENIORITIES):
        for d, (dept, _share, _eff, chiefs, managers, roles) in enumerate(DEPARTMENTS):
            options = {
                "c_level": list(chiefs),
                "vp": [f"VP of {dept}", f"Vice President, {dept}"],
                "head": [f"Head of {dept}"],
                "director": [f"Director of {dept}", f"{dept} Director"],
                "manager": list(managers),
                "senior": [f"Senior {r}" for r in roles],
                "individual": list(roles),
                "junior": [f"Junior {r}" for r in roles],
                "owner": list(OWNER_TITLES),
            }[level]
            offset[s, d], count[s, d] = len(titles), len(options)
            titles.extend(options)
    junk_title0 = len(titles)
    titles.extend(t for t, _ in JUNK_TITLES)
    groups: dict[str, list[str]] = {
        "page_view": [p for p, *_ in PAGES],
        "form_fill": [f for f, *_ in FORMS],
        "download": [d for d, *_ in DOWNLOADS],
        "webinar": list(WEBINAR_STATES),
        "chat": [c for c, *_ in CHAT_TOPICS],
        "event": [e for e, _ in EVENT_NAMES],
        "email": [e for e, _ in EMAILS],
        "trial_usage": [f for f, *_ in TRIAL_FEATURES],
    }
    details = tuple(sorted({d for names in groups.values() for d in names}))
    index = {d: i for i, d in enumerate(details)}
    detail_code = {(g, d): index[d] for g, names in groups.items() for d in names}
    return _Tables(
        campaign_p=campaign_p / campaign_p.sum(),
        campaign_channel=np.array([channel_index[c.channel] for c in CAMPAIGNS]),
        campaign_quality=np.array([c.quality for c in CAMPAIGNS]),
        campaign_intent=np.array([c.intent for c in CAMPAIGNS]),
        campaign_junk=np.array([c.junk for c in CAMPAIGNS]),
        campaign_size=np.array([c.size_shift for c in CAMPAIGNS]),
        campaign_first=np.array([c.first_touch for c in CAMPAIGNS]),
        channel_speed=np.array([CHANNEL_SPEED[c] for c in CHANNELS]),
        channel_trial=np.array([CHANNEL_TRIAL[c] for c in CHANNELS]),
        titles=tuple(titles),
        title_offset=offset,
        title_count=count,
        junk_title0=junk_title0,
        details=details,
        detail_code=MappingProxyType(detail_code),
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _shares(rows: tuple[tuple[Any, ...], ...], col: int = 1) -> np.ndarray:
    p = np.array([r[col] for r in rows], dtype=float)
    return p / p.sum()


# --------------------------------------------------------------------------- profiles


def _draw_created_us(rng: np.random.Generator, n: int, params: SynthParams) -> np.ndarray:
    """Creation times of ``n`` leads, sorted: weekdays busier, volume growing over the period."""
    start, end = params.start_ts, params.observed_until
    last_day = (end - pd.Timedelta(microseconds=1)).normalize()
    days = pd.date_range(start.normalize(), last_day, freq="D", inclusive="both")
    weight = np.where(days.day_of_week < 5, 1.0, 0.35) * np.linspace(1.0, 1.4, len(days))
    day = rng.choice(len(days), size=n, p=weight / weight.sum())
    hours = np.where(rng.random(n) < 0.85, rng.normal(14.0, 3.0, n), rng.uniform(0, 24, n))
    seconds = np.floor(np.clip(hours, 0.0, 23.999) * 3600.0).astype(np.int64)
    day_us = days.to_numpy().astype("datetime64[us]").astype(np.int64)
    created = day_us[day] + seconds * SECOND_US
    # days cut by start/end (start or end not at midnight) fold back inside the window
    lo, hi = start.value // 1000, end.value // 1000
    span = hi - lo
    created = lo + np.mod(created - lo, span)
    return np.sort(created)


def _size_effect(size: np.ndarray) -> np.ndarray:
    bounds = np.array([b for b, _ in SIZE_BANDS[:-1]])
    effects = np.array([e for _, e in SIZE_BANDS])
    return effects[np.searchsorted(bounds, size, side="right")]


def _draw_profiles(
    rng: np.random.Generator, n: int, tab: _Tables, missing_rate: float
) -> dict[str, np.ndarray]:
    """Firmographics (as codes) and latent scores of ``n`` leads."""
    camp = rng.choice(len(CAMPAIGNS), size=n, p=tab.campaign_p)
    channel = tab.campaign_channel[camp]
    junk = rng.random(n) < tab.campaign_junk[camp]
    industry = rng.choice(len(INDUSTRIES), size=n, p=_shares(INDUSTRIES))
    log_size = rng.normal(2.0 + tab.campaign_size[camp] - 0.8 * junk, 0.85)
    size = np.clip(np.round(10.0**log_size), 1, 250_000).astype(np.int64)
    country = rng.choice(len(COUNTRIES), size=n, p=_shares(COUNTRIES))

    small = size <= 20
    sen_large = rng.choice(len(SENIORITIES), size=n, p=_shares(SENIORITIES, 1))
    sen_small = rng.choice(len(SENIORITIES), size=n, p=_shares(SENIORITIES, 2))
    seniority = np.where(small, sen_small, sen_large)
    dept = rng.choice(len(DEPARTMENTS), size=n, p=_shares(DEPARTMENTS))
    variant = rng.random(n)
    title = tab.title_offset[seniority, dept] + np.floor(
        variant * tab.title_count[seniority, dept]
    ).astype(np.int64)
    junk_title = tab.junk_title0 + rng.choice(len(JUNK_TITLES), size=n, p=_shares(JUNK_TITLES))
    title = np.where(junk, junk_title, title)

    country_free = np.array([c[4] for c in COUNTRIES])[country]
    free_logit = np.where(junk, 1.7, np.where(size <= 10, -0.2, -2.2)) + country_free
    free_mail = rng.random(n) < _sigmoid(free_logit)

    sen_eff = np.array([s[3] for s in SENIORITIES])[seniority]
    dept_eff = np.array([d[2] for d in DEPARTMENTS])[dept]
    owner = np.array([s[0] == "owner" for s in SENIORITIES])[seniority]
    title_eff = np.where(junk, 0.0, sen_eff + np.where(owner, 0.0, dept_eff))
    fit = (
        tab.campaign_quality[camp]
        + np.array([i[2] for i in INDUSTRIES])[industry]
        + _size_effect(size)
        + np.array([c[2] for c in COUNTRIES])[country]
        + title_eff
        - 0.35 * free_mail
        - 1.8 * junk
    )
    intent = tab.campaign_intent[camp] - 0.6 * junk + rng.standard_normal(n)
    hidden = rng.normal(0.0, HIDDEN_SD, n)
    chatty = rng.standard_normal(n)
    speed_noise = rng.normal(0.0, 0.4, n)
    miss = rng.random((n, 4)) < missing_rate * np.array([1.0, 1.5, 1.0, 0.5])
    miss[:, :3] |= junk[:, None] & (rng.random((n, 3)) < 2.0 * missing_rate)
    return {
        "campaign": camp,
        "channel": channel,
        "junk": junk,
        "industry": industry,
        "size": size,
        "country": country,
        "title": title,
        "free_mail": free_mail,
        "fit": fit,
        "intent": intent,
        "hidden": hidden,
        "chatty": chatty,
        "speed_noise": speed_noise,
        "miss_industry": miss[:, 0],
        "miss_size": miss[:, 1],
        "miss_title": miss[:, 2],
        "miss_country": miss[:, 3],
    }


def _win_logit(p: Mapping[str, np.ndarray]) -> np.ndarray:
    return FIT_COEF * p["fit"] + INTENT_COEF * p["intent"] + p["hidden"]


def _raw_close_rate(p: Mapping[str, np.ndarray], tab: _Tables) -> np.ndarray:
    return np.exp(
        0.3 * p["intent"]
        - 0.25 * (np.log10(p["size"]) - 2.0)
        + tab.channel_speed[p["channel"]]
        + p["speed_noise"]
    )


# --------------------------------------------------------------------------- activity law


def _weights(
    rows: tuple[tuple[str, float, float], ...], intent: np.ndarray, extra: np.ndarray | None = None
) -> np.ndarray:
    """Per-lead category weights ``base * exp(k * intent)``, shape (leads, categories)."""
    base = np.array([r[1] for r in rows])
    slope = np.array([r[2] for r in rows])
    w = base[None, :] * np.exp(np.outer(intent, slope))
    return w if extra is None else w * extra


def _base_rates(p: Mapping[str, np.ndarray], tab: _Tables) -> np.ndarray:
    """Intensity (per unit of activity scale) of each of ``BASE_TYPES``, shape (leads, 7)."""
    z, c = p["intent"], p["chatty"]
    channel = np.asarray(CHANNELS)[p["channel"]]
    webinar_series = np.asarray([cp.name for cp in CAMPAIGNS])[p["campaign"]] == (
        "events_webinar_series"
    )
    return np.column_stack(
        [
            np.exp(0.45 * z + 0.4 * c),
            np.full(len(z), 0.8),
            0.05 * np.exp(0.6 * z),
            0.05 * np.exp(0.2 * z + 0.3 * c),
            0.025 * np.exp(0.3 * z) * np.where(webinar_series, 2.0, 1.0),
            0.012 * np.exp(0.9 * z) * np.where(channel == "chat", 3.0, 1.0),
            0.004 * np.where(channel == "events", 6.0, 1.0),
        ]
    )


def _pages_mean(p: Mapping[str, np.ndarray]) -> np.ndarray:
    """Mean extra page views per visit (a visit views 1 + Poisson(this) pages)."""
    return 1.2 * np.exp(0.25 * p["intent"] + 0.2 * p["chatty"])


def _open_prob(p: Mapping[str, np.ndarray]) -> np.ndarray:
    return _sigmoid(-1.3 + 0.7 * p["intent"] + 0.3 * p["chatty"])


def _click_prob(p: Mapping[str, np.ndarray]) -> np.ndarray:
    return _sigmoid(-1.6 + 0.8 * p["intent"])


def _attend_prob(p: Mapping[str, np.ndarray]) -> np.ndarray:
    return _sigmoid(-0.3 + 0.9 * p["intent"])


def _trial_prob(p: Mapping[str, np.ndarray], tab: _Tables) -> np.ndarray:
    return _sigmoid(
        -2.8
        + 1.0 * p["intent"]
        + 0.4 * p["fit"]
        + tab.channel_trial[p["channel"]]
        - 2.0 * p["junk"]
    )


def _usage_prob(p: Mapping[str, np.ndarray]) -> np.ndarray:
    return _sigmoid(-0.6 + 0.9 * p["intent"])


def _high_first_prob(p: Mapping[str, np.ndarray], tab: _Tables) -> np.ndarray:
    return _sigmoid(-1.8 + 1.2 * p["intent"] + tab.campaign_first[p["campaign"]])


def _exposure(window_days: np.ndarray) -> np.ndarray:
    """Integral of the activity-age profile over ``[0, window)`` (burst + slow decay)."""
    return BURST_SHARE * -np.expm1(-window_days / BURST_DAYS) + SLOW_SHARE * -np.expm1(
        -window_days / SLOW_DAYS
    )


def _expected_rows(
    p: Mapping[str, np.ndarray], tab: _Tables, window_days: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Expected activity rows per lead as ``scale * A + B`` (A scales with activity, B not)."""
    rates = _base_rates(p, tab)
    per_event = np.ones_like(rates)
    per_event[:, 0] = 2.0 + _pages_mean(p)
    per_event[:, 1] = 1.0 + _open_prob(p) * (1.0 + _click_prob(p))
    per_event[:, 4] = 1.0 + _attend_prob(p)
    a = _exposure(window_days) * (rates * per_event).sum(axis=1)
    channel = np.asarray(CHANNELS)[p["channel"]]
    forms_first = ~np.isin(channel, ["chat", "events"])
    low_share = dict(LOW_FIRST_FORMS)["content_download"] / sum(w for _, w in LOW_FIRST_FORMS)
    b = 1.0 + forms_first * (1.0 - _high_first_prob(p, tab)) * low_share
    days = np.arange(TRIAL_LENGTH_DAYS) + 0.5
    reach = -np.expm1(-np.clip(window_days[:, None] - days[None, :], 0, None) / TRIAL_SIGNUP_DAYS)
    b = b + _trial_prob(p, tab) * (
        -np.expm1(-window_days / TRIAL_SIGNUP_DAYS) + _usage_prob(p) * reach.sum(axis=1)
    )
    return a, b


@dataclass(frozen=True)
class _Calibration:
    intercept: float
    close_rate_scale: float
    activity_scale: float


def _calibrate(params: SynthParams, tab: _Tables) -> _Calibration:
    """Solve the constants that make the population match the parameters.

    A fixed reference sample (independent of the seed) gives the intercept of the win log-odds
    (mean ``p_win`` = ``win_rate``), the scale of the close rate (mean delay =
    ``mean_days_to_close``) and the scale of activity (mean rows = ``mean_activities``), so
    that two seeds share one law and differ only by chance.
    """
    rng = np.random.default_rng(np.random.SeedSequence(CALIBRATION_ENTROPY))
    n = CALIBRATION_LEADS
    created = _draw_created_us(rng, n, params)
    prof = _draw_profiles(rng, n, tab, params.missing_rate)
    logit = _win_logit(prof)
    intercept = math.log(params.win_rate / (1 - params.win_rate)) - float(np.median(logit))
    for _ in range(50):  # Newton on mean(sigmoid(b + logit)) = win_rate; convex enough
        prob = _sigmoid(intercept + logit)
        gap = prob.mean() - params.win_rate
        intercept -= gap / max(float(np.mean(prob * (1 - prob))), 1e-12)
        if abs(gap) < 1e-10:
            break
    raw_rate = _raw_close_rate(prof, tab)
    rate_scale = float(np.mean(1.0 / raw_rate)) / params.mean_days_to_close
    delay = rng.exponential(1.0 / (raw_rate * rate_scale))
    observed = params.observed_until.value // 1000
    window = np.minimum(delay, (observed - created) / DAY_US)
    a, b = _expected_rows(prof, tab, window)
    scale = (params.mean_activities - b.mean()) / a.mean()
    if scale <= 0:
        raise SpecError(
            f"mean_activities {params.mean_activities:g} is below the floor of "
            f"{b.mean():.1f} rows per lead (first touch and trials)",
            f"Ask for mean_activities of at least {math.ceil(b.mean() + 1)}.",
        )
    return _Calibration(float(intercept), float(rate_scale), float(scale))


# --------------------------------------------------------------------------- simulation


def _per_row_category(
    rng: np.random.Generator, weights: np.ndarray, row_lead: np.ndarray
) -> np.ndarray:
    """For each row draw a category from its lead's row of ``weights`` (one search, no loop)."""
    n, k = weights.shape
    if len(row_lead) == 0:
        return np.zeros(0, dtype=np.int64)
    cum = np.cumsum(weights, axis=1)
    cum = cum / cum[:, -1:]
    cum[:, -1] = 1.0
    flat = (cum + np.arange(n)[:, None]).ravel()
    u = rng.random(len(row_lead)) + row_lead
    pos = np.searchsorted(flat, u, side="right") - row_lead * k
    return np.clip(pos, 0, k - 1)


def _repeat_index(counts: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(counts)), counts)


class _Rows:
    """Activity rows as parallel arrays, collected part by part."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(
        self,
        lead: np.ndarray,
        t_us: np.ndarray,
        kind: str,
        detail: np.ndarray | int | np.integer,
        value: np.ndarray | float = np.nan,
    ) -> None:
        m = len(lead)
        self.parts.append(
            (
                lead.astype(np.int64),
                t_us.astype(np.int64),
                np.full(m, list(ACTIVITY_TYPES).index(kind), dtype=np.int8),
                np.broadcast_to(np.asarray(detail, dtype=np.int16), (m,)),
                np.broadcast_to(np.asarray(value, dtype=np.float64), (m,)),
            )
        )

    def arrays(self) -> tuple[np.ndarray, ...]:
        return tuple(np.concatenate([p[i] for p in self.parts]) for i in range(5))


def _codes(tab: _Tables, group: str, names: list[str]) -> np.ndarray:
    return np.array([tab.detail_code[(group, n)] for n in names], dtype=np.int16)


def _simulate_activities(
    rng: np.random.Generator,
    p: Mapping[str, np.ndarray],
    tab: _Tables,
    scale: float,
    window_days: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Activity rows ``(lead, offset_us, type, detail, value)`` inside each lead's window."""
    n = len(window_days)
    z, c = p["intent"], p["chatty"]
    rows = _Rows()
    none = np.int16(-1)

    # first touch, at creation: the form, chat or event that made the lead
    lead = np.arange(n)
    zero = np.zeros(n, dtype=np.int64)
    channel = np.asarray(CHANNELS)[p["channel"]]
    is_chat, is_event = channel == "chat", channel == "events"
    campaign = np.asarray([cp.name for cp in CAMPAIGNS])[p["campaign"]]
    high = rng.random(n) < _high_first_prob(p, tab)
    high_form = _codes(tab, "form_fill", [f for f, _ in HIGH_FIRST_FORMS])[
        rng.choice(len(HIGH_FIRST_FORMS), size=n, p=_shares(HIGH_FIRST_FORMS))
    ]
    low_names = [f for f, _ in LOW_FIRST_FORMS]
    low_pick = rng.choice(len(LOW_FIRST_FORMS), size=n, p=_shares(LOW_FIRST_FORMS))
    low_form = _codes(tab, "form_fill", low_names)[low_pick]
    forms = ~is_chat & ~is_event
    rows.add(lead[forms], zero[forms], "form_fill", np.where(high, high_form, low_form)[forms])
    companion = forms & ~high & (low_pick == low_names.index("content_download"))
    asset = _codes(tab, "download", ["ebook", "whitepaper"])[rng.integers(0, 2, n)]
    rows.add(lead[companion], zero[companion] + SECOND_US, "download", asset[companion])
    topic = _per_row_category(rng, _weights(CHAT_TOPICS, z), lead)
    messages = 1 + rng.poisson(3.0 * np.exp(0.3 * z))
    rows.add(
        lead[is_chat],
        zero[is_chat],
        "chat",
        _codes(tab, "chat", [t for t, *_ in CHAT_TOPICS])[topic][is_chat],
        messages[is_chat].astype(float),
    )
    webinar_first = is_event & (campaign == "events_webinar_series")
    event_first = is_event & ~webinar_first
    event_name = np.where(
        campaign == "events_user_conference",
        tab.detail_code[("event", "user_conference")],
        tab.detail_code[("event", "trade_show")],
    )
    rows.add(lead[event_first], zero[event_first], "event", event_name[event_first])
    rows.add(
        lead[webinar_first],
        zero[webinar_first],
        "webinar",
        tab.detail_code[("webinar", "registered")],
    )

    # the background process: a burst after creation plus a slow decay, all types at once
    rates = _base_rates(p, tab) * scale
    total = rates.sum(axis=1)
    times: list[np.ndarray] = []
    leads: list[np.ndarray] = []
    for share, decay in ((BURST_SHARE, BURST_DAYS), (SLOW_SHARE, SLOW_DAYS)):
        idx = _repeat_index(rng.poisson(total * share))
        t = rng.exponential(decay, len(idx))
        keep = t < window_days[idx]
        leads.append(idx[keep])
        times.append(t[keep])
    ev_lead = np.concatenate(leads)
    ev_t = np.concatenate(times)
    ev_type = _per_row_category(rng, rates, ev_lead)
    ev_us = (ev_t * DAY_US).astype(np.int64)

    def pick(name: str) -> tuple[np.ndarray, np.ndarray]:
        mask = ev_type == BASE_TYPES.index(name)
        return ev_lead[mask], ev_us[mask]

    # web visits and the pages they view
    vl, vt = pick("web_visit")
    seconds = np.clip(
        np.round(rng.lognormal(np.log(75.0) + 0.3 * z[vl] + 0.2 * c[vl], 0.9)), 3, 10_800
    )
    rows.add(vl, vt, "web_visit", none, seconds)
    n_pages = 1 + rng.poisson(_pages_mean(p)[vl])
    page_visit = _repeat_index(n_pages)
    page_lead = vl[page_visit]
    page_weights = _weights(PAGES, z)
    for name, boost in JUNK_PAGE_BOOST.items():
        col = [pg for pg, *_ in PAGES].index(name)
        page_weights[:, col] *= np.where(p["junk"], boost, 1.0)
    category = _per_row_category(rng, page_weights, page_lead)
    page_t = vt[page_visit] + (rng.random(len(page_visit)) * seconds[page_visit] * SECOND_US)
    rows.add(
        page_lead, page_t, "page_view", _codes(tab, "page_view", [pg for pg, *_ in PAGES])[category]
    )

    # marketing e-mails, opens and clicks
    el, et = pick("email_sent")
    email = _codes(tab, "email", [e for e, _ in EMAILS])[
        rng.choice(len(EMAILS), size=len(el), p=_shares(EMAILS))
    ]
    rows.add(el, et, "email_sent", email)
    opened = rng.random(len(el)) < _open_prob(p)[el]
    ot = et[opened] + (rng.exponential(0.4, int(opened.sum())) * DAY_US).astype(np.int64)
    rows.add(el[opened], ot, "email_open", email[opened])
    clicked = rng.random(len(ot)) < _click_prob(p)[el[opened]]
    ct = ot[clicked] + (rng.exponential(120.0, int(clicked.sum())) * SECOND_US).astype(np.int64)
    rows.add(el[opened][clicked], ct, "email_click", email[opened][clicked])

    # forms, downloads, webinars, chats, events
    fl, ft = pick("form_fill")
    form = _per_row_category(rng, _weights(FORMS, z), fl)
    rows.add(fl, ft, "form_fill", _codes(tab, "form_fill", [f for f, *_ in FORMS])[form])
    dl, dt = pick("download")
    kind = _per_row_category(rng, _weights(DOWNLOADS, z), dl)
    rows.add(dl, dt, "download", _codes(tab, "download", [d for d, *_ in DOWNLOADS])[kind])
    wl, wt = pick("webinar")
    rows.add(wl, wt, "webinar", tab.detail_code[("webinar", "registered")])
    attended = rng.random(len(wl)) < _attend_prob(p)[wl]
    at = wt[attended] + (rng.uniform(1.0, 14.0, int(attended.sum())) * DAY_US).astype(np.int64)
    rows.add(wl[attended], at, "webinar", tab.detail_code[("webinar", "attended")])
    hl, ht = pick("chat")
    topic = _per_row_category(rng, _weights(CHAT_TOPICS, z), hl)
    rows.add(
        hl,
        ht,
        "chat",
        _codes(tab, "chat", [t for t, *_ in CHAT_TOPICS])[topic],
        (1 + rng.poisson(3.0 * np.exp(0.3 * z[hl]))).astype(float),
    )
    xl, xt = pick("event")
    event_name = _codes(tab, "event", [e for e, _ in EVENT_NAMES])[
        rng.choice(len(EVENT_NAMES), size=len(xl), p=_shares(EVENT_NAMES))
    ]
    rows.add(xl, xt, "event", event_name)

    # free trial: at most one sign-up, then a day of use now and then for the trial's length
    signs = rng.random(n) < _trial_prob(p, tab)
    sl = np.flatnonzero(signs)
    st = rng.exponential(TRIAL_SIGNUP_DAYS, len(sl))
    rows.add(sl, (st * DAY_US).astype(np.int64), "trial_signup", none)
    used = rng.random((len(sl), TRIAL_LENGTH_DAYS)) < _usage_prob(p)[sl][:, None]
    ui, ud = np.nonzero(used)
    ul = sl[ui]
    ut = st[ui] + ud + rng.uniform(0.05, 0.95, len(ui))
    minutes = np.clip(np.round(rng.lognormal(np.log(18.0) + 0.4 * z[ul], 0.8)), 1, 600)
    feature = _per_row_category(rng, _weights(TRIAL_FEATURES, z), ul)
    rows.add(
        ul,
        (ut * DAY_US).astype(np.int64),
        "trial_usage",
        _codes(tab, "trial_usage", [f for f, *_ in TRIAL_FEATURES])[feature],
        minutes,
    )
    return rows.arrays()


def _sort_by_lead_and_time(lead: np.ndarray, occurred: np.ndarray) -> np.ndarray:
    """Order of rows by lead, then time: one argsort of a packed key (4x a lexsort)."""
    if len(lead) == 0:
        return np.zeros(0, dtype=np.int64)
    offset = occurred - occurred.min()
    span = int(offset.max()) + 1
    if (int(lead.max()) + 1) * span >= 2**62:
        return np.lexsort((occurred, lead))
    key = lead * span + offset
    order = np.argsort(key)
    ordered = key[order]
    if np.any(ordered[1:] == ordered[:-1]):  # ties: keep the generation order, as lexsort does
        order = np.argsort(key, kind="stable")
    return order


@dataclass(frozen=True)
class _Block:
    leads: pa.Table
    activities: pa.Table
    outcomes: pa.Table
    truth: pa.Table
    channel_counts: np.ndarray


def _lead_ids(first: int, n: int, width: int) -> pa.Array:
    numbers = np.arange(first, first + n).astype(str)
    return pa.array(np.char.add("L", np.char.zfill(numbers, width)).tolist(), pa.string())


def _take_strings(
    values: tuple[str, ...] | list[str], codes: np.ndarray, missing: np.ndarray | None = None
) -> pa.Array:
    arr = pa.array(list(values), pa.string()).take(pa.array(codes))
    if missing is None or not missing.any():
        return arr
    import pyarrow.compute as pc

    return pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), arr)


def _emails(rng: np.random.Generator, p: Mapping[str, np.ndarray]) -> pa.Array:
    import pyarrow.compute as pc

    n = len(p["fit"])
    first = pc.utf8_lower(_take_strings(FIRST_NAMES, rng.integers(0, len(FIRST_NAMES), n)))
    last = pc.utf8_lower(_take_strings(LAST_NAMES, rng.integers(0, len(LAST_NAMES), n)))
    initial = pc.utf8_slice_codeunits(first, 0, 1)
    style = rng.integers(0, 4, n)
    local = pc.case_when(
        pc.make_struct(pa.array(style == 0), pa.array(style == 1), pa.array(style == 2)),
        pc.binary_join_element_wise(first, last, "."),
        pc.binary_join_element_wise(initial, last, ""),
        pc.binary_join_element_wise(first, last, "_"),
        first,
    )
    digits = pc.cast(pa.array(rng.integers(1, 100, n)), pa.string())
    local = pc.if_else(
        pa.array(p["free_mail"] & (rng.random(n) < 0.6)),
        pc.binary_join_element_wise(local, digits, ""),
        local,
    )
    company = pc.binary_join_element_wise(
        _take_strings(COMPANY_PREFIXES, rng.integers(0, len(COMPANY_PREFIXES), n)),
        _take_strings(COMPANY_SUFFIXES, rng.integers(0, len(COMPANY_SUFFIXES), n)),
        "",
    )
    tld = _take_strings([c[3] for c in COUNTRIES], p["country"])
    corporate = pc.binary_join_element_wise(company, tld, ".")
    free = _take_strings(
        FREE_MAIL_DOMAINS, rng.choice(len(FREE_MAIL_DOMAINS), size=n, p=[0.55, 0.15, 0.15, 0.15])
    )
    domain = pc.if_else(pa.array(p["free_mail"]), free, corporate)
    return pc.binary_join_element_wise(local, domain, "@")


def _simulate_block(
    params: SynthParams,
    tab: _Tables,
    cal: _Calibration,
    block: int,
    created_us: np.ndarray,
    width: int,
) -> _Block:
    """Simulate the leads of one block: profiles, truth, outcomes and activity."""
    rng = np.random.default_rng(np.random.SeedSequence(params.seed, spawn_key=(1, block)))
    n = len(created_us)
    first_number = block * params.block_size + 1
    p = _draw_profiles(rng, n, tab, params.missing_rate)
    p_win = _sigmoid(cal.intercept + _win_logit(p))
    rate = _raw_close_rate(p, tab) * cal.close_rate_scale
    won = rng.random(n) < p_win
    delay_us = np.maximum((rng.exponential(1.0 / rate) * DAY_US).astype(np.int64), 1)
    closes_us = created_us + delay_us
    observed_us = params.observed_until.value // 1000
    closed = closes_us <= observed_us
    end_us = np.minimum(closes_us, observed_us)
    window_days = (end_us - created_us) / DAY_US
    emails = _emails(rng, p)
    act_lead, act_off, act_type, act_detail, act_value = _simulate_activities(
        rng, p, tab, cal.activity_scale, window_days
    )

    occurred = created_us[act_lead] + act_off
    keep = occurred < end_us[act_lead]
    act_lead, occurred = act_lead[keep], occurred[keep]
    act_type, act_detail, act_value = act_type[keep], act_detail[keep], act_value[keep]
    order = _sort_by_lead_and_time(act_lead, occurred)

    ids = _lead_ids(first_number, n, width)
    ts = pa.timestamp("us")
    leads = pa.table(
        {
            "lead_id": ids,
            "created_at": pa.array(created_us, ts),
            "source": _take_strings(CHANNELS, p["channel"]),
            "campaign": _take_strings([cp.name for cp in CAMPAIGNS], p["campaign"]),
            "industry": _take_strings(
                [i[0] for i in INDUSTRIES], p["industry"], p["miss_industry"]
            ),
            "company_size": pa.array(p["size"], pa.int64(), mask=p["miss_size"]),
            "country": _take_strings([c[0] for c in COUNTRIES], p["country"], p["miss_country"]),
            "job_title": _take_strings(tab.titles, p["title"], p["miss_title"]),
            "email": emails,
        }
    )
    detail = act_detail[order]
    activities = pa.table(
        {
            "lead_id": ids.take(pa.array(act_lead[order])),
            "occurred_at": pa.array(occurred[order], ts),
            "activity_type": pa.DictionaryArray.from_arrays(
                pa.array(act_type[order], pa.int8()), pa.array(list(ACTIVITY_TYPES), pa.string())
            ),
            "detail": pa.DictionaryArray.from_arrays(
                pa.array(detail, pa.int16(), mask=detail < 0), pa.array(tab.details, pa.string())
            ),
            "value": pa.array(act_value[order], pa.float64(), mask=np.isnan(act_value[order])),
        }
    )
    closed_idx = np.flatnonzero(closed)
    outcome_text = np.array(["lost", "won"])
    outcomes = pa.table(
        {
            "lead_id": ids.take(pa.array(closed_idx)),
            "outcome": pa.array(outcome_text[won[closed_idx].astype(int)].tolist(), pa.string()),
            "closed_at": pa.array(closes_us[closed_idx], ts),
        }
    )
    truth = pa.table(
        {
            "lead_id": ids,
            "p_win": pa.array(p_win),
            "close_rate_per_day": pa.array(rate),
            "fit": pa.array(p["fit"]),
            "intent": pa.array(p["intent"]),
            "hidden": pa.array(p["hidden"]),
            "junk": pa.array(p["junk"]),
            "eventual_outcome": pa.array(outcome_text[won.astype(int)].tolist(), pa.string()),
            "closes_at": pa.array(closes_us, ts),
        }
    )
    counts = np.bincount(p["channel"], minlength=len(CHANNELS))
    return _Block(leads, activities, outcomes, truth, counts)


def _blocks(params: SynthParams, tab: _Tables, cal: _Calibration) -> Iterator[_Block]:
    """The data set block by block; creation times are drawn once for all leads."""
    root = np.random.default_rng(np.random.SeedSequence(params.seed, spawn_key=(0,)))
    created = _draw_created_us(root, params.n_leads, params)
    width = max(7, len(str(params.n_leads)))
    for block, lo in enumerate(range(0, params.n_leads, params.block_size)):
        chunk = created[lo : lo + params.block_size]
        yield _simulate_block(params, tab, cal, block, chunk, width)


def _costs(params: SynthParams, channel_counts: np.ndarray) -> pd.DataFrame:
    """Spend per channel: leads x cost per lead x a little noise (campaign bids vary)."""
    rng = np.random.default_rng(np.random.SeedSequence(params.seed, spawn_key=(2,)))
    noise = rng.lognormal(0.0, 0.1, len(CHANNELS))
    cpl = np.array([COST_PER_LEAD[c] for c in CHANNELS])
    spend = np.round(channel_counts * cpl * noise, 2)
    return pd.DataFrame({"channel": list(CHANNELS), "spend": spend})


# --------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class SyntheticData:
    """A generated data set: the three event tables, the ground truth and channel spend."""

    leads: pd.DataFrame
    activities: pd.DataFrame
    outcomes: pd.DataFrame
    truth: pd.DataFrame
    costs: pd.DataFrame
    observed_until: pd.Timestamp
    params: SynthParams


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)


def generate_closed_loop(params: SynthParams) -> SyntheticData:
    """Generate a whole data set in memory (use :func:`write_synthetic` for millions of leads).

    The frames equal what :func:`write_synthetic` writes for the same parameters.
    """
    parts: dict[str, list[pa.Table]] = {name: [] for name in OUTPUT_TABLES}
    counts = np.zeros(len(CHANNELS), dtype=np.int64)
    tab = _build_tables(params)
    for block in _blocks(params, tab, _calibrate(params, tab)):
        for name in OUTPUT_TABLES:
            parts[name].append(getattr(block, name))
        counts += block.channel_counts
    frames = {name: _to_pandas(pa.concat_tables(tables)) for name, tables in parts.items()}
    return SyntheticData(
        leads=frames["leads"],
        activities=frames["activities"],
        outcomes=frames["outcomes"],
        truth=frames["truth"],
        costs=_costs(params, counts),
        observed_until=params.observed_until,
        params=params,
    )


def true_conversion_probability(truth: pd.DataFrame, horizon_days: float) -> pd.Series:
    """Exact probability that a lead still open at any moment wins within ``horizon_days``.

    ``p_win * (1 - exp(-close_rate_per_day * horizon_days))``: the close delay is exponential
    (memoryless) and independent of the outcome, so the answer does not depend on the lead's
    age or on the moment, as long as the lead exists and is still open then.

    Parameters
    ----------
    truth : the ``truth`` table (``p_win`` and ``close_rate_per_day`` per lead).
    horizon_days : length of the window, in days (>= 0).

    Returns
    -------
    Series aligned with ``truth``, named ``p_won_within_{horizon_days}d``.
    """
    missing = [c for c in ("p_win", "close_rate_per_day") if c not in truth.columns]
    if missing:
        raise SpecError(
            f"truth has no column {missing[0]!r}",
            "Pass the truth table written by leadscore synth.",
        )
    if not math.isfinite(float(horizon_days)) or horizon_days < 0:
        raise SpecError(
            f"horizon_days must be >= 0, got {horizon_days!r}", "Give a window length in days."
        )
    reach = -np.expm1(-truth["close_rate_per_day"].to_numpy(float) * float(horizon_days))
    return pd.Series(
        truth["p_win"].to_numpy(float) * reach,
        index=truth.index,
        name=f"p_won_within_{horizon_days:g}d",
    )


def _check_out_dir(out: Path) -> list[Path]:
    """Refuse a folder of someone else's tables; list our own earlier output in it."""
    if out.exists() and not out.is_dir():
        raise SpecError(f"{out} is a file, not a folder", "Give a folder path for --out.")
    if not out.exists():
        return []
    ours = (out / "manifest.json").exists()
    names = [*OUTPUT_TABLES, *EVENT_TABLES]
    earlier = sorted({out / f"{n}.{fmt}" for n in names for fmt in ("parquet", "csv")})
    present = [path for path in earlier if path.exists()]
    if present and not ours:
        raise SpecError(
            f"{out} already holds {present[0].name}, which leadscore synth did not write",
            "Choose an empty or new folder for the synthetic data.",
        )
    return present


def _make_out_dir(out: Path) -> list[Path]:
    """Create ``out`` and its missing parents; return the folders created, outermost first,
    so that a run that fails (an error, Ctrl+C) takes away the empty folders it made rather
    than leave ``NEW/a/b`` behind. A folder that was there is not among them and stays."""
    missing: list[Path] = []
    at = out.absolute()
    while not at.exists() and at != at.parent:
        missing.append(at)
        at = at.parent
    out.mkdir(parents=True, exist_ok=True)
    return missing[::-1]


def _remove_empty_folders(folders: list[Path]) -> None:
    """Remove ``folders`` (of :func:`_make_out_dir`), innermost first, while they are empty:
    a folder something else wrote into meanwhile is kept, and so are those outside it."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            return


def write_synthetic(
    params: SynthParams,
    out_dir: str | os.PathLike[str],
    fmt: Literal["parquet", "csv"] = "parquet",
    progress: bool | None = None,
) -> dict[str, Path]:
    """Generate and write a data set block by block, in bounded memory.

    Writes ``leads``, ``activities``, ``outcomes`` and ``truth`` as ``.parquet`` (one row group
    per block) or ``.csv``, plus ``costs.csv`` and ``manifest.json``. Files are written under
    temporary names and renamed at the end, so a failed run leaves no half-written table.

    Parameters
    ----------
    params : what to generate.
    out_dir : folder to write into (created if needed). A folder of earlier synthetic output
        is replaced; a folder holding other event tables is refused.
    fmt : ``parquet`` (default) or ``csv``.
    progress : show a progress bar; ``None`` shows it only on a terminal.

    Returns
    -------
    Path of each file written, by name (``leads``, ..., ``costs``, ``manifest``).
    """
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    if fmt not in ("parquet", "csv"):
        raise SpecError(f"unknown format {fmt!r}", "Use parquet or csv.")
    out = Path(out_dir)
    earlier = _check_out_dir(out)
    made = _make_out_dir(out)
    targets = {name: out / f"{name}.{fmt}" for name in OUTPUT_TABLES}
    targets["costs"] = out / "costs.csv"
    targets["manifest"] = out / "manifest.json"
    temps = {name: out / f".{path.name}.partial" for name, path in targets.items()}
    writers: dict[str, Any] = {}
    counts = np.zeros(len(CHANNELS), dtype=np.int64)
    rows = dict.fromkeys(OUTPUT_TABLES, 0)
    won = 0
    written = False
    try:
        tab = _build_tables(params)
        cal = _calibrate(params, tab)
        disable = None if progress is None else not progress
        with tqdm(total=params.n_leads, unit="lead", desc="synth", disable=disable) as bar:
            for block in _blocks(params, tab, cal):
                for name in OUTPUT_TABLES:
                    table = getattr(block, name)
                    if name not in writers:
                        writers[name] = (
                            pq.ParquetWriter(temps[name], table.schema, compression="zstd")
                            if fmt == "parquet"
                            else pacsv.CSVWriter(temps[name], table.schema)
                        )
                    writers[name].write_table(table)
                    rows[name] += table.num_rows
                outcome = block.outcomes.column("outcome").to_numpy(zero_copy_only=False)
                won += int(np.sum(outcome == "won"))
                counts += block.channel_counts
                bar.update(block.leads.num_rows)
        while writers:
            writers.popitem()[1].close()
        _costs(params, counts).to_csv(temps["costs"], index=False)
        manifest = {
            "generator": "leadscore.synth",
            "version": GENERATOR_VERSION,
            "seed": params.seed,
            "params": params.to_dict(),
            "observed_until": params.observed_until.isoformat(),
            "format": fmt,
            "counts": {
                "leads": rows["leads"],
                "activities": rows["activities"],
                "closed": rows["outcomes"],
                "won": won,
                "lost": rows["outcomes"] - won,
                "open": rows["leads"] - rows["outcomes"],
                "leads_per_channel": dict(zip(CHANNELS, counts.tolist(), strict=True)),
            },
            "calibration": asdict(cal),
            "truth": "a lead open at any moment wins within H days with probability "
            "p_win * (1 - exp(-close_rate_per_day * H))",
            "files": {name: path.name for name, path in targets.items()},
        }
        temps["manifest"].write_text(json.dumps(manifest, indent=2) + "\n")
        for path in earlier:  # e.g. parquet left from a run before this csv one
            if path not in targets.values():
                path.unlink()
        for name, path in targets.items():
            os.replace(temps[name], path)
        written = True
    finally:
        for writer in writers.values():
            writer.close()
        for temp in temps.values():
            temp.unlink(missing_ok=True)
        if not written:
            _remove_empty_folders(made)
    logger.info(
        "wrote %s leads and %s activities to %s",
        f"{rows['leads']:,}",
        f"{rows['activities']:,}",
        out,
    )
    return targets


def read_manifest(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a folder written by :func:`write_synthetic`."""
    path = Path(out_dir) / "manifest.json"
    if not path.exists():
        raise SpecError(f"{path} does not exist", "Run leadscore synth to create the folder.")
    return json.loads(path.read_text())
