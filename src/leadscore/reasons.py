"""The words of a reason: one sentence per feature value, as a marketer reads it.

Pure functions of a :class:`~leadscore.schema.Feature` and one value, so the sentences can be
tested, and written in a spec, without a model: :func:`reason_text` fills the feature's
``sentence`` template (with the ``{value:A|B}``, ``{value:days_ago}``, ``{value:bands:...}``
and ``{s}`` specs of :class:`_Number` and :class:`_Plural`) or falls back to "label: value";
a count reads its ``zero_sentence`` at 0 ("Has not visited the pricing page in the last 90
days") and its ``low_sentence`` when it speaks against the lead ("Only 2 pricing page visits
in the last 90 days");
:func:`category_text` reads codes as words (``c_level`` is "C-level", ``unknown`` is not
given); :func:`format_number` writes numbers as a marketer does. Which reasons a lead gets
is decided in :mod:`leadscore.explain`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from string import Formatter
from typing import Any, Literal

import numpy as np

from leadscore.schema import Feature

__all__ = [
    "Reason",
    "category_text",
    "format_number",
    "format_rounded",
    "reason_text",
    "reasons_json",
    "rounded_for_display",
    "unseen_category_text",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reason:
    """One reason for or against a lead.

    ``feature`` is the business field, ``label`` and ``value`` those of the model column that
    speaks for it (``value`` is a float, a category, or ``None`` when missing), ``contribution``
    its share of the probability, ``group`` "fit" or "engagement" and ``text`` the sentence.
    ``fact`` is the :attr:`~leadscore.schema.Feature.fact` of that column, when it has one:
    the reason's ``contribution`` is then that of every field of the fact (all windows of a
    count and its recency), worded by the one that moved the score most in the reason's
    direction, so ``feature`` may move from one window to another between two scorings while
    ``fact`` stays.
    """

    feature: str
    label: str
    value: float | str | None
    contribution: float
    group: str
    text: str
    fact: str | None = None

    @property
    def direction(self) -> Literal["for", "against"]:
        return "for" if self.contribution > 0 else "against"

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form: feature, label, value, contribution, direction, and fact for a
        reason that has one (no key otherwise, so flat-table reasons read as they always did).
        """
        value = self.value
        if isinstance(value, float) and not np.isfinite(value):
            value = None
        out = {
            "feature": self.feature,
            "label": self.label,
            "value": value,
            "contribution": round(float(self.contribution), 6),
            "direction": self.direction,
        }
        if self.fact is not None:
            out["fact"] = self.fact
        return out


def rounded_for_display(values: np.ndarray) -> np.ndarray:
    """Values rounded as :func:`format_number` shows them (whole above 100, else 2 digits)."""
    v = np.asarray(values, dtype=float)
    a = np.abs(v)
    out = np.round(v)
    mid = (a >= 1) & (a < 100)
    out[mid] = np.round(v[mid], 2)
    small = (a > 0) & (a < 1)
    scale = 10.0 ** (1 - np.floor(np.log10(a[small])))
    out[small] = np.round(v[small] * scale) / scale
    return out


def format_rounded(key: float) -> str:
    """A value already rounded by :func:`rounded_for_display`, written with thousands commas."""
    if not np.isfinite(key):
        return str(key)
    if key == round(key):
        return f"{key:,.0f}"
    if abs(key) >= 1:
        return f"{key:,.2f}".rstrip("0").rstrip(".")
    return f"{key:.2g}"


def format_number(value: float) -> str:
    """A number as a marketer writes it: ``1,532``, ``12.5``, ``0.35``."""
    return format_rounded(float(rounded_for_display(np.array([value]))[0]))


def _generic_text(feature: Feature, value: float | str | None) -> str:
    if value is None:
        return feature.missing_sentence or f"{feature.label} not given"
    if isinstance(value, str):
        return f"{feature.label}: {value}"
    return f"{feature.label}: {format_number(value)}"


#: Category values that mean "not known" (``unknown`` seniority, ``missing`` e-mail kind).
_MISSING_CATEGORIES = frozenset({"unknown", "missing"})
#: Flags read alike however the export wrote them: ``TRUE`` beside ``Yes`` on one card read
#: as two vocabularies ("Requested Demo: yes", "Started Trial: Yes").
_BOOLEAN_CATEGORIES = {
    **{"true": "yes", "false": "no", "yes": "yes", "no": "no"},
    **{"y": "yes", "n": "no"},
}
#: Codes written as a marketer writes them: the words of leadscore's own vocabularies
#: (seniority, department) and common acronyms, whatever feature holds them.
_ACRONYMS = (
    *("vp", "svp", "evp", "avp", "it", "hr", "pr", "ux", "ui", "ceo", "cto", "cfo", "cmo"),
    *("coo", "cio", "cro", "cpo", "seo", "sem", "ppc", "crm", "erp", "b2b", "b2c", "smb"),
)
_CODE_WORDS: dict[str, str] = {"c_level": "C-level", **{a: a.upper() for a in _ACRONYMS}}


def category_text(value: str) -> str | None:
    """A category as a marketer reads it, or ``None`` when it means "not known".

    ``unknown`` and ``missing`` (how leadscore's own vocabularies write an absent job title or
    e-mail) are a missing value and read like one; ``true`` and ``false``, ``Yes`` and
    ``No``, ``Y`` and ``N`` read "yes" and "no"; the codes ``c_level``, ``vp``, ``it``,
    ``hr`` (and a few other acronyms) read "C-level", "VP", "IT", "HR". Any other value is
    quoted as written, so a campaign key reads as in the CRM and in ``report channels``. The
    raw value stays in ``reasons_json``.

    Examples
    --------
    >>> [category_text(v) for v in ("c_level", "vp", "Software", "TRUE", "No", "unknown")]
    ['C-level', 'VP', 'Software', 'yes', 'no', None]
    """
    key = value.strip().lower()
    if key in _MISSING_CATEGORIES or not key:
        return None
    if key in _BOOLEAN_CATEGORIES:
        return _BOOLEAN_CATEGORIES[key]
    if value.strip() in _CODE_WORDS:
        return _CODE_WORDS[value.strip()]
    return value


def _band(value: float, cuts: Sequence[float]) -> str:
    """The whole-number band holding ``value``: right-closed bands between ``cuts``, from 1
    up (``cuts`` 10, 50: "1-10", "11-50", "51+"). A value of 0 or less has no band."""
    if not value > 0:
        raise ValueError(f"{value} is in no band")
    low: float = 1
    for cut in cuts:
        if value <= cut:
            return f"{low:.0f}-{cut:.0f}"
        low = cut + 1
    return f"{low:.0f}+"


_SECONDS_IN = {"seconds": 1.0, "minutes": 60.0}


#: The units :func:`format_duration` writes a time in: (name, seconds, used below this many
#: seconds).
_DURATION_UNITS = (
    ("second", 1.0, 59.5),
    ("minute", 60.0, 5400.0),
    ("hour", 3600.0, math.inf),
)


def format_duration(seconds: float) -> str:
    """A time as a marketer says it: seconds below a minute, minutes up to an hour and a
    half, then hours (one decimal below 10): nobody reads "6,835 seconds" as the two hours
    it is. Never days: the times summed are time on site or in a trial over a window, and
    "3.7 days in the last 30 days" would read as calendar days. A negative or non-finite
    time is a :class:`ValueError` (the reason then reads as label and value).

    Examples
    --------
    >>> [format_duration(s) for s in (1, 45, 95, 3000, 6835, 40_000, 400_000)]
    ['1 second', '45 seconds', '2 minutes', '50 minutes', '1.9 hours', '11 hours', '111 hours']
    """
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"{seconds} is no time")
    unit, size, _ = next(u for u in _DURATION_UNITS if seconds < u[2])
    amount = seconds / size
    if unit == "second" and round(amount) == 0:
        return "less than a second"
    if unit == "hour" and amount < 10:
        shown = f"{amount:,.1f}".removesuffix(".0")
    else:
        shown = f"{round(amount):,}"
    return f"{shown} {unit}{'' if shown == '1' else 's'}"


class _Number(float):
    """A value handed to a sentence template: a float with three more format specs.

    ``{value:A|B}`` reads ``A`` for a non-zero value and ``B`` for zero (a 0/1 flag:
    "{value:Chatted with us|Has not chatted with us}", "Is partner: {value:yes|no}");
    ``{value:days_ago}`` reads whole days gone by: "less than a day ago" (under 1), "1 day
    ago" (1 to under 2), "12 days ago";
    ``{value:bands:10,50,200}`` reads the band holding the value ("1-10", "11-50", "51-200",
    "201+"), for a number that may stand for a band (company size read from "11-50" is its
    midpoint, 30.5, which no CRM wrote); ``{value:percent}`` reads a share as the percentage
    it was written as (0.125 as "12.5%"), ``{value:amount:$}`` an amount with its currency
    ("$24,035"), ``{value:change}`` a difference as "4.3 more" or "2 fewer", and
    ``{value:duration:seconds}`` (or ``:minutes``) a time counted in that
    unit in the unit that suits it (:func:`format_duration`: 6,835 seconds as "1.9 hours").
    """

    def __format__(self, spec: str) -> str:
        if "|" in spec:
            yes, _, no = spec.partition("|")
            return yes if float(self) != 0 else no
        if spec == "days_ago":
            # whole days gone by, as "3 days ago" means: 0.64 days is less than a day, and
            # one lead reads the same as another whose value is 0.4
            days = math.floor(float(self))
            if days == 0:
                return "less than a day ago"
            return f"{days:,} day{'' if days == 1 else 's'} ago"
        if spec.startswith("bands:"):
            return _band(float(self), [float(c) for c in spec[6:].split(",")])
        if spec == "percent":
            return f"{format_number(100 * float(self))}%"
        if spec == "change":
            amount = abs(float(self))
            shown = f"{amount:,.1f}".removesuffix(".0") if amount < 10 else f"{amount:,.0f}"
            return f"{shown} {'more' if float(self) > 0 else 'fewer'}"
        if spec.startswith("duration:"):
            if float(self) == 0:
                return "none"  # "less than a second" is a time spent; 0 is none at all
            return format_duration(float(self) * _SECONDS_IN[spec[9:]])
        if spec.startswith("amount:"):
            sign = "-" if float(self) < 0 else ""
            return f"{sign}{spec[7:]}{format_number(abs(float(self)))}"
        return float.__format__(self, spec)


#: Words of leadscore's own readings of a job title (:func:`leadscore.features.parse_seniority`
#: and ``parse_department``), for templates that quote one (``{value:seniority}``): a code
#: such as ``individual`` means something only to the code that wrote it. ``c_level``,
#: ``vp``, ``it`` and ``hr`` already read as words (:func:`category_text`).
CATEGORY_WORDS: dict[str, dict[str, str]] = {
    "seniority": {
        "director": "Director",
        "manager": "Manager",
        "senior": "Senior individual contributor",
        "individual": "Individual contributor",
        "intern": "Intern",
        "student": "Student",
        "not_employed": "Not employed (retired, looking for work)",
    },
    "department": {
        "marketing": "Marketing",
        "sales": "Sales",
        "data": "Data and analytics",
        "engineering": "Engineering",
        "finance": "Finance",
        "operations": "Operations",
        "product": "Product",
        "executive": "Executive",
        "other": "Other",
    },
}


class _Category(str):
    """A category handed to a sentence template: ``{value:seniority}`` and
    ``{value:department}`` read leadscore's codes in words (:data:`CATEGORY_WORDS`); any
    other value, and any other spec, read as the value is."""

    def __format__(self, spec: str) -> str:
        if spec in CATEGORY_WORDS:
            return CATEGORY_WORDS[spec].get(str(self), str(self))
        return str.__format__(str(self), spec)


class _Plural:
    """``{s}`` in a template: ``""`` after a number shown as 1, else ``"s"``; ``{s:y|ies}``
    picks a singular or plural ending ("activit{s:y|ies}")."""

    def __init__(self, one: bool) -> None:
        self.one = one

    def __format__(self, spec: str) -> str:
        one, _, many = spec.partition("|") if spec else ("", "", "s")
        return one if self.one else many


#: Format specs of ``{value}`` that carry a unit a bare number loses (a share, a time, money).
_UNIT_SPECS = ("percent", "duration:", "amount:")


def unit_text(feature: Feature, value: float) -> str | None:
    """``value`` in the unit the feature's sentence writes it, without the sentence: a share
    as "27.3%", seconds on the website as "1.9 hours", an amount as "$24,035"; ``None`` when
    the sentence writes a plain number (or there is none), for the caller's own format.

    For readings outside a lead card, such as the drift report's bins, which would otherwise
    print 0.2727 for an open rate and 6,835 for the seconds of a visit. A share is written
    as ``percent`` whatever digits the sentence keeps, so that close bin edges stay apart;
    days since an action as days ("0.27 days", not "less than a day ago")."""
    spec = _value_spec(feature.sentence) if feature.sentence else None
    if spec is None or not math.isfinite(value):
        return None
    if spec.endswith("%"):
        spec = "percent"
    if spec == "days_ago":
        return f"{format_number(value)} day{'' if format_number(value) == '1' else 's'}"
    if not spec.startswith(_UNIT_SPECS):
        return None
    if value == 0 and spec.startswith("duration:"):
        return "0"  # "less than a second" is the sentence's, not a bin edge's
    try:
        return format(_Number(value), spec)
    except ValueError:  # a negative time
        return None


def category_words(feature: Feature, value: str) -> str:
    """A category of ``feature`` as its sentence quotes it (``individual`` as "Individual
    contributor" for a seniority read from the job title), else as :func:`category_text`
    writes it; the value itself where that means "not known"."""
    spec = _value_spec(feature.sentence) if feature.sentence else None
    if spec in CATEGORY_WORDS:
        return format(_Category(value), spec)
    return category_text(value) or value


@lru_cache(maxsize=256)
def _value_spec(template: str) -> str | None:
    """The format spec of ``{value}`` in a template (parsed once per template)."""
    specs = [spec for _, name, spec, _ in Formatter().parse(template) if name == "value"]
    return (specs[0] or "") if specs else None


def _shown_as_one(template: str, value: float) -> bool:
    """Whether ``value`` reads as 1 where the template writes it (``{value:,.0f}`` shows 0.6
    as 1, so the noun after it is singular)."""
    try:
        spec = _value_spec(template)
        if spec == "change":
            return round(abs(float(value)), 1) == 1
        if spec is not None:
            return float(format(float(value), spec).replace(",", "").strip()) == 1
    except (ValueError, TypeError):
        pass
    return round(float(value), 6) == 1


def _template(feature: Feature, value: float | str, against: bool) -> str | None:
    """The template that phrases ``value``: the zero sentence at exactly 0, the low sentence
    above 0 (and below its ``low_below``, where set) against the lead, else the feature's
    sentence (each only where the feature has one). Exactly 0, not "shown as 0": 0.3 seconds
    on the website is not "no time"."""
    if not isinstance(value, str):
        if value == 0 and feature.zero_sentence:
            return feature.zero_sentence
        below = feature.low_below is None or value < feature.low_below
        if against and value > 0 and below and feature.low_sentence:
            return feature.low_sentence
    return feature.sentence


def reason_text(feature: Feature, value: float | str | None, *, against: bool = False) -> str:
    """The sentence for one value: the feature's template, or label and value.

    A missing value reads the feature's ``missing_sentence`` ("No high-intent action yet") or
    else "<label> not given" (a template such as "Visited the pricing page {value:.0f} time{s}"
    has nothing to say about it); a template that does not fit the value falls back to the
    generic phrasing. ``{s}`` in a template is "s" unless the value reads as 1 where the
    template writes it (``{s:y|ies}`` for other endings); see :class:`_Number` for the flag
    and day specs. A category is phrased by :func:`category_text` (``unknown`` is missing).

    A count reads as an absence at 0 when the feature has a ``zero_sentence`` ("Has not
    visited the pricing page in the last 90 days"), and, when the reason is ``against`` the
    lead, as too little when it has a ``low_sentence`` ("Only 2 pricing page visits in the
    last 90 days") and the value is below its ``low_below``, where set: a count that lowers
    the score is below what converting leads show, and "Visited the pricing page 2 times" as
    a reason against reads as nonsense.
    """
    if isinstance(value, str):
        value = category_text(value)
    text = None
    template = None if value is None else _template(feature, value, against)
    if value is not None and template:
        try:
            if isinstance(value, str):
                text = template.format(value=_Category(value), s=_Plural(False))
            else:
                one = "{s" in template and _shown_as_one(template, value)
                text = template.format(value=_Number(value), s=_Plural(one))
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            logger.debug("sentence of %s does not fit value %r", feature.name, value)
    # "; " joins the reasons of a lead: inside one sentence it would split it in two
    return (text or _generic_text(feature, value)).replace("; ", ", ")


def unseen_category_text(feature: Feature, value: str) -> str:
    """The sentence for a category the model never saw, which it scored as missing.

    The sentence says so: the points beside it are what the model gives a missing value, and
    "How the lead was created: Lead Import" at +2 points read as Lead Import raising the
    score, where such leads convert below average. A value that itself means "not known"
    (``missing`` e-mail kind, ``unknown`` seniority) reads as the missing value it is.
    """
    shown = category_text(value)
    if shown is None:
        return reason_text(feature, None)
    return f"{feature.label}: {shown} (not seen in training, so scored as not given)".replace(
        "; ", ", "
    )


def reasons_json(reasons_for: Sequence[Reason], reasons_against: Sequence[Reason]) -> str:
    """The reasons as a JSON list of {feature, label, value, contribution, direction}, with
    ``fact`` on a reason whose feature declares one (see :class:`Reason`)."""
    items = [r.to_dict() for r in (*reasons_for, *reasons_against)]
    return json.dumps(items, ensure_ascii=False)
