"""The closed-loop data contract and the tables that flow between stages.

Event form (what a CRM and a marketing-automation tool hold):

* ``leads``: one row per lead. ``lead_id`` and ``created_at`` are required; ``source``
  (channel), ``campaign`` and the fit fields in :data:`LEAD_FIT_FIELDS` are optional; any other
  column is kept as an extra fit feature, typed from the data.
* ``activities``: one row per action of a lead: ``lead_id``, ``occurred_at``, ``activity_type``
  (one of :data:`ACTIVITY_TYPES`), optional ``detail`` (page category, form name, ...) and
  optional numeric ``value`` (seconds on site, chat messages, trial minutes, ...).
* ``outcomes``: at most one row per lead: ``lead_id``, ``outcome`` (``won`` or ``lost``),
  ``closed_at``. A lead without an outcome is still open.
* ``activity_types`` (optional): the company's own activity vocabulary mapped onto
  :data:`ACTIVITY_TYPES`: ``source_type`` as the log writes it, ``activity_type`` (or
  ``ignore`` to leave its rows out) and optional ``detail``; see :class:`ActivityTypeMap`.

Flat form: one row per lead with a label, described by a
:class:`~leadscore.specs.DatasetSpec`.

Both forms end up as a :class:`LabelledDataset`: a feature frame, a 0/1 label, the lead ids,
an optional ordering column for time-ordered folds and one :class:`Feature` per column saying
which group it belongs to and how to name it for a marketer.

Timestamps are timezone-naive UTC ``datetime64`` throughout: inputs with a timezone are
converted to UTC and made naive once, at validation.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api import types as ptypes
from pandas.arrays import ArrowStringArray

from leadscore.errors import DataError, expect_type
from leadscore.names import closest_names, name_words, singular
from leadscore.timestamps import (
    extract_moment,
    parse_observed_until,
    tail_rows,
    timestamp_summary,
    to_utc_naive,
    utc_now,
)

logger = logging.getLogger(__name__)

#: A whole number written as text, ``"3"`` or ``"3.0"``: a code read from one file as a float
#: and from another as text is the same value.
INTEGRAL_TEXT = re.compile(r"[+-]?\d+\.0*")

#: The spellings pandas reads as missing by default: missing in an event CSV's columns that
#: are not text, and in any column of numbers (a number column cannot hold the word ``NULL``).
MISSING_SPELLINGS: tuple[str, ...] = (
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
)

FeatureGroup = Literal["fit", "engagement"]
FeatureKind = Literal["numeric", "categorical"]

#: Activity types of the event form and what ``detail`` / ``value`` mean for each.
ACTIVITY_TYPES: dict[str, str] = {
    "web_visit": "a session on the website; value = seconds on site",
    "page_view": "a page seen; detail = page category (pricing, demo, case_study, blog, ...)",
    "form_fill": "a form submitted; detail = form name (demo_request, contact_sales, ...)",
    "email_sent": "a marketing e-mail delivered to the lead; detail = e-mail or campaign name",
    "email_open": "a marketing e-mail opened; detail = e-mail or campaign name",
    "email_click": "a link clicked in a marketing e-mail; detail = e-mail or campaign name",
    "download": "content downloaded; detail = asset type (ebook, whitepaper, case_study, ...)",
    "webinar": "a webinar; detail = registered or attended",
    "chat": "a chat conversation (CQL signal); value = messages sent by the lead",
    "trial_signup": "a free-trial sign-up (PQL signal)",
    "trial_usage": "a day of trial use; value = minutes of use, detail = feature used",
    "event": "an in-person or virtual event visit; detail = event name",
}

#: Page categories and form names that signal buying intent.
HIGH_INTENT_PAGES: frozenset[str] = frozenset({"pricing", "demo"})
HIGH_INTENT_FORMS: frozenset[str] = frozenset({"demo_request", "contact_sales", "pricing_quote"})

#: Ordinary page categories and form names: no feature of their own, but a ``page_view`` or
#: ``form_fill`` detail naming one is read as meant (what ``leadscore synth`` writes, and what
#: sites and forms commonly hold). A log whose details mostly name neither these nor the
#: high-intent ones is warned about when features are built: its high-intent features would
#: be zero without a word. Matched as the high-intent ones are (see
#: :func:`leadscore.features.page_of_details`).
KNOWN_PAGES: frozenset[str] = frozenset(
    {
        "home",
        "blog",
        "product",
        "products",
        "platform",
        "features",
        "solutions",
        "docs",
        "documentation",
        "case_study",
        "case_studies",
        "customers",
        "resources",
        "careers",
        "jobs",
        "about",
        "about_us",
        "company",
        "contact",
        "contact_us",
        "integrations",
        "partners",
        "news",
        "press",
        "events",
        "webinars",
        "support",
        "help",
        "login",
        "signup",
        "trial",
        "legal",
        "privacy",
        "terms",
    }
)
KNOWN_FORMS: frozenset[str] = frozenset(
    {
        "newsletter",
        "subscribe",
        "content_download",
        "ebook",
        "whitepaper",
        "webinar_registration",
        "webinar",
        "event_registration",
        "contact",
        "contact_us",
        "trial_signup",
        "signup",
        "free_trial",
    }
)

#: Words (whole, any case; plurals too) that mark a source type of an ``activity_types`` map
#: as the sales team's doing: such a type mapped to a leadscore type leaks the outcome.
SALES_ACTIVITY_WORDS: tuple[str, ...] = (
    "call",
    "meeting",
    "task",
    "note",
    "status",
    "stage",
    "opportunity",
    "deal",
)

#: Optional lead columns the feature builder knows how to use; other columns pass through.
LEAD_FIT_FIELDS: dict[str, str] = {
    "source": "channel the lead came from (paid_search, organic, referral, ...)",
    "campaign": "campaign that brought the lead",
    "industry": "industry of the lead's company",
    "company_size": "employees of the lead's company (number) or a size band (text)",
    "country": "country of the lead",
    "job_title": "job title as typed by the lead; seniority and department are parsed from it",
    "email": "e-mail address; only its domain is used (corporate or free mail)",
    "email_domain": "e-mail domain, when the address itself is not shared",
}

OUTCOME_VALUES: tuple[str, str] = ("won", "lost")

LEADS_REQUIRED = ("lead_id", "created_at")
ACTIVITIES_REQUIRED = ("lead_id", "occurred_at", "activity_type")
OUTCOMES_REQUIRED = ("lead_id", "outcome", "closed_at")
ACTIVITY_TYPES_MAP_REQUIRED = ("source_type", "activity_type")

#: The ``activity_type`` of an ``activity_types`` row whose source type is left out of the log:
#: sales calls, notes and status changes happen after contact and would leak the outcome.
IGNORED_ACTIVITY = "ignore"


@dataclass(frozen=True)
class ClosedLoopData:
    """Validated event-form data: leads, their activity log and closed outcomes.

    Build it with :func:`validate_closed_loop` (or a loader that calls it), never by hand, so
    that dtypes and referential integrity hold. ``observed_until`` is the moment the data was
    extracted: an outcome window that ends after it is not complete yet (right-censoring).
    """

    leads: pd.DataFrame
    activities: pd.DataFrame
    outcomes: pd.DataFrame
    observed_until: pd.Timestamp
    #: The optional tables (``activities``, ``outcomes``) the source did not hold at all, as
    #: a loader found them: an absent outcomes table makes every lead open, which a summary
    #: should say rather than "0 closed".
    absent_tables: tuple[str, ...] = ()
    #: What the source's ``activity_types`` table did to the log (types mapped, rows left
    #: out), or ``None`` where the source holds no such table (the usual case).
    activity_mapping: ActivityMapping | None = None


@dataclass(frozen=True)
class Feature:
    """One model input: its column, group, human label and kind.

    ``label`` is how a marketer reads the feature ("Pricing page visits, last 30 days").
    ``sentence`` optionally phrases a value for a reason, as a :meth:`str.format` template with
    ``{value}`` ("Visited the pricing page {value:.0f} times in the last 30 days"); without it
    the explanation layer phrases the label and value generically. ``missing_sentence`` is the
    reason when the value is missing and missing means "none yet" rather than "not answered"
    ("No high-intent action yet"); without it a missing value reads "<label> not given".

    Three optional fields serve counts and amounts, where more is better:
    ``zero_sentence`` is the reason for a value of exactly 0, read as an absence ("Has not
    visited the pricing page in the last 90 days", never "... 0 times"); ``low_sentence`` is
    the template of a value above 0 that counts *against* the lead, read as too little ("Only
    {value:,.0f} pricing page visit{s} in the last 90 days", never "Visited ... 2 times" as a
    reason against); ``low_below``, where set, keeps it to values below that bound (training
    sets it to the median among won leads where the model may also lower the score for a
    count being high, so that 64 activities in a week never read "Only 64"); without it every
    value above 0 reads so. ``fact`` names what the feature tells about
    ("pricing_page_views"): features of one fact (the windows of a count, its recency) make
    one reason of a lead, not several. Without them (every flat-table feature, every model
    saved before they existed) reasons read as before.

    ``read_as`` names how the model reads the column's raw values before encoding them, one of
    :data:`~leadscore.encoding.VALUE_READINGS` (``email_domain_kind``: an e-mail address as
    ``corporate``, ``free`` or ``missing``), so that raw rows score as the training rows did;
    ``None`` reads the values as they are.
    """

    name: str
    group: FeatureGroup
    label: str
    kind: FeatureKind
    sentence: str | None = None
    missing_sentence: str | None = None
    zero_sentence: str | None = None
    low_sentence: str | None = None
    fact: str | None = None
    low_below: float | None = None
    read_as: str | None = None

    def __post_init__(self) -> None:
        # a model file is read back into Features: a wrong kind must fail there, not later
        # as "column must be numeric" blamed on the leads being scored
        if self.kind not in ("numeric", "categorical"):
            raise ValueError(f"feature {self.name!r} has unknown kind {self.kind!r}")
        if self.group not in ("fit", "engagement"):
            raise ValueError(f"feature {self.name!r} has unknown group {self.group!r}")


@dataclass(frozen=True)
class FeatureTable:
    """Features of leads as of one moment: one row per lead, in ``lead_id`` order.

    ``frame`` has a ``lead_id`` column followed by one column per entry of ``features``;
    ``as_of`` is the moment they describe (nothing later was read). :attr:`X` is the
    features alone, with the frame's RangeIndex: a row's lead is ``frame["lead_id"]`` at
    the same position, and so are the rows of an explanation of ``X``.
    """

    frame: pd.DataFrame
    features: tuple[Feature, ...]
    as_of: pd.Timestamp | None = None

    @property
    def X(self) -> pd.DataFrame:
        """The model's inputs: ``frame`` without ``lead_id``, in ``features`` order."""
        return self.frame[[f.name for f in self.features]]

    def __repr__(self) -> str:
        # the dataclass's own repr prints every row and feature (21,600 characters for
        # 3,000 leads), which floods a notebook cell
        return (
            f"FeatureTable({len(self.frame):,} leads x {len(self.features)} features, "
            f"as_of={self.as_of})"
        )


@dataclass(frozen=True)
class LabelledDataset:
    """Examples ready for modelling, from either data form.

    Attributes
    ----------
    name : data set name, for reports and MLflow.
    X : one column per feature; numeric columns are float, categorical ones ``category``.
    y : 0/1 labels (1 = won).
    lead_id : the lead of each example (a lead may appear at several as-of dates).
    order : time or sequence of each example for time-ordered folds, or ``None`` when the
        data has no time (folds are then stratified at random and reports say so).
    features : one :class:`Feature` per column of ``X``, same order.
    excluded : columns left out on purpose and why (leakage, identifiers, ...).
    horizon_days : for event-form examples, the label is "won within this many days".
    test_from : first ``order`` value that belongs to the test fold (from the spec), or
        ``None`` to take the newest share of examples as the test fold.
    allowed_leakage : features the leakage guard must not stop training for (from the spec).
    form : ``"events"`` for examples built from event data, ``"flat"`` for a flat table
        described by a spec, ``None`` when unknown; recorded with the model, so that scoring
        can tell a user who gives the other form which command to use.
    notes : what the checks at loading found (a counter kept up to the export, newest
        leads mostly still open), logged there and kept with the run that trains on the
        data, since they see rows (the open leads) the examples no longer hold.
    open_order : the ``order`` of the open leads a flat table left out of the examples
        (``None`` when unknown or none): they arrive with the closed ones and are scored, so
        the capacity policy counts them among the leads a period brings.
    missing_values : the spec's "not answered" tokens (``Select``), blanked before the
        examples were built: the model records them, so that its pyfunc and Spark UDF, which
        get the CRM's rows as written, read them as missing too.

    :attr:`order_kind` says how the examples are ordered (``"time"``, ``"sequence"`` or
    ``"none"``), and :meth:`subset` keeps the examples a mask selects.
    """

    name: str
    X: pd.DataFrame
    y: np.ndarray
    lead_id: pd.Series
    order: pd.Series | None
    features: tuple[Feature, ...]
    excluded: dict[str, str] = field(default_factory=dict)
    horizon_days: int | None = None
    test_from: object | None = None
    allowed_leakage: tuple[str, ...] = ()
    form: Literal["events", "flat"] | None = None
    notes: tuple[str, ...] = ()
    open_order: pd.Series | None = None
    missing_values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.X)
        if (
            len(self.y) != n
            or len(self.lead_id) != n
            or (self.order is not None and len(self.order) != n)
        ):
            raise ValueError("X, y, lead_id and order must have the same length")
        if [f.name for f in self.features] != list(self.X.columns):
            raise ValueError("features must describe the columns of X, in order")

    def __repr__(self) -> str:
        # one line, as for FeatureTable: the generated repr prints X, y and every feature
        won = int(np.asarray(self.y).sum())
        return (
            f"LabelledDataset({self.name!r}: {len(self.X):,} examples of "
            f"{self.lead_id.nunique():,} leads x {len(self.features)} features, {won:,} won, "
            f"form={self.form!r}, order={self.order_kind!r})"
        )

    @property
    def order_kind(self) -> Literal["time", "sequence", "none"]:
        """``"time"`` (dates: folds by time), ``"sequence"`` (a counter) or ``"none"``."""
        if self.order is None:
            return "none"
        return "time" if ptypes.is_datetime64_any_dtype(self.order) else "sequence"

    def subset(self, mask: np.ndarray) -> LabelledDataset:
        """The examples where ``mask`` (boolean or integer positions) selects."""
        idx = np.flatnonzero(mask) if np.asarray(mask).dtype == bool else np.asarray(mask)
        return LabelledDataset(
            name=self.name,
            X=self.X.iloc[idx].reset_index(drop=True),
            y=self.y[idx],
            lead_id=self.lead_id.iloc[idx].reset_index(drop=True),
            order=None if self.order is None else self.order.iloc[idx].reset_index(drop=True),
            features=self.features,
            excluded=self.excluded,
            horizon_days=self.horizon_days,
            test_from=self.test_from,
            allowed_leakage=self.allowed_leakage,
            form=self.form,
            notes=self.notes,
            open_order=self.open_order,
            missing_values=self.missing_values,
        )


# --------------------------------------------------------------------------- validation


def column_name(name: object) -> object:
    """A column name in Unicode's composed form (NFC): a header typed on macOS may arrive
    decomposed (``Sta\u0308dt``) and would not match the same name in a spec or a model."""
    return unicodedata.normalize("NFC", name) if isinstance(name, str) else name


def _require_columns(frame: pd.DataFrame, table: str, required: Iterable[str]) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        # every missing column at once: an export with its own names lacks several, and one
        # a run would send the user back once per column
        others = missing[1:]
        also = f" and {len(others)} more: {', '.join(map(repr, others))}" if others else ""
        raise DataError(
            f"{table}: missing column {missing[0]!r}{closest_names(missing[0], frame.columns)}"
            f"{also} (have: {', '.join(map(str, frame.columns))})",
            f"Add it or rename the matching column to {missing[0]!r}; the README's data "
            "contract lists every column.",
        )


def _require_rows(frame: pd.DataFrame, table: str) -> None:
    if len(frame) == 0:
        raise DataError(f"{table} is empty", f"Give {table} at least one row.")


def to_lead_ids(values: pd.Series, table: str, column: str = "lead_id") -> pd.Series:
    """Lead ids as strings (ids like 00123 keep their zeros when read as text).

    ``column`` names the id column in messages: a flat table's own id column, not ours.
    """
    if values.isna().any():
        raise DataError(
            f"{table}.{column} is empty in {int(values.isna().sum())} row(s)",
            f"Give every row a value in {column}.",
        )
    if ptypes.is_float_dtype(values):
        if not np.all(np.mod(values.to_numpy(), 1) == 0):
            raise DataError(
                f"{table}.{column} holds fractional numbers",
                "Use text or whole-number lead ids.",
            )
        values = values.astype("int64")
    return values.astype("string").astype(str)


def duplicate_ids_text(ids: pd.Series, what: str) -> str | None:
    """The duplicated ids of ``ids`` in words, ``what`` naming one (``lead_id 'b'``, ``id
    'p5' in column 'id'``, written with ``{id}`` where the id goes), or ``None`` without any:
    "duplicate lead_id 'b' (3 rows); 5 ids appear more than once, 7 rows too many". "'b' (5
    duplicate rows)" read as one id held five times when five ids were held twice."""
    dup = ids.duplicated()
    if not dup.any():
        return None
    first = ids[dup].iloc[0]
    text = f"duplicate {what.replace('{id}', repr(first))} ({int((ids == first).sum()):,} rows)"
    repeated = ids[dup].nunique()
    if repeated > 1:
        text += f"; {repeated:,} ids appear more than once, {int(dup.sum()):,} rows too many"
    return text


def space_twins_text(ids: pd.Series) -> str | None:
    """Two distinct ids of ``ids`` that differ only by spaces around them, in words, or
    ``None``: ``'X01850 ' and 'X01850' differ only by spaces around them (3 such ids)``. A
    flat export that pads some ids holds one lead twice under two ids, and a CRM sync would
    get two scores for it; the event form names such ids when they fail to match a lead."""
    text = ids.dropna().astype(str)
    stripped = text.str.strip()
    twins = stripped.duplicated(keep=False) & ~text.duplicated(keep=False)
    if not twins.any():
        return None
    first = stripped[twins].iloc[0]
    spellings = list(dict.fromkeys(text[twins & (stripped == first)]))
    shown = " and ".join(repr(v) for v in spellings[:2])
    many = int(stripped[twins].nunique())
    more = f" ({many:,} such ids)" if many > 1 else ""
    return f"{shown} differ only by spaces around them{more}"


def _check_unique(ids: pd.Series, table: str) -> None:
    found = duplicate_ids_text(ids, "lead_id {id}")
    if found is not None:
        raise DataError(f"{table}: {found}", f"Keep one row per lead in {table}.")


def is_known_id(ids: pd.Series, known: pd.Index | pd.Series) -> pd.Series:
    """Whether each of ``ids`` is among ``known`` (both lead ids as text).

    Arrow-backed text (pandas 3's ``str``) is matched by pyarrow's ``is_in``: pandas' own
    ``isin`` turns every known id into a Python object first, which took 11 s for a million
    leads against 1.8 s here, and a load makes three such checks. The ids are matched chunk
    by chunk as pandas holds them (``__arrow_array__``), not copied into one array first: a
    log of fifty million rows holds about a gigabyte of ids. Other dtypes use ``isin``.
    """
    if isinstance(ids.array, ArrowStringArray) and isinstance(known.array, ArrowStringArray):
        chunks = ids.array.__arrow_array__()
        found = pc.fill_null(pc.is_in(chunks, value_set=pa.array(known.array)), False)
        return pd.Series(found.to_numpy(), index=ids.index, dtype=bool)
    return ids.isin(known)


def _check_known(ids: pd.Series, known: pd.Index, table: str) -> None:
    unknown = ~is_known_id(ids, known)
    if unknown.any():
        raise unknown_ids_error(
            table,
            int(unknown.sum()),
            len(ids),
            str(ids[unknown].iloc[0]),
            pd.Series(pd.unique(ids[unknown])).iloc[:UNKNOWN_ID_SAMPLE],
            known,
        )


#: How many distinct unknown ids :func:`unknown_ids_error` looks at for lost leading zeros.
UNKNOWN_ID_SAMPLE = 10_000

_ZERO_LED_ID = re.compile(r"0+[0-9]+")


def spaced_ids(ids: pd.Series, known: pd.Index | pd.Series) -> list[tuple[str, str]]:
    """(id, lead's id) for each distinct id of ``ids`` that is no lead's id (``known``) as
    written but is one once the spaces around both are stripped: ``" 123"`` against
    ``"123"``, or the other way round.

    Ids are matched exactly as written, never stripped in silence (``"A "`` and ``"A"`` may
    be two leads of a careless CRM, and the scored table keeps ids as the leads table wrote
    them), so a message that reports ids matching no lead names these: the fix is the
    export, not adding leads. Every known id is stripped, so call it on the way to such a
    message, not on every read.
    """
    written = pd.Series(pd.unique(ids.astype(str)), dtype=object)
    if written.empty:
        return []
    text = pd.Series(np.asarray(known, dtype=object)).astype(str)
    lookup = pd.Series(text.to_numpy(), index=text.str.strip().to_numpy())
    lookup = lookup[~lookup.index.duplicated()]
    keys = written.str.strip()
    hit = keys.isin(lookup.index) & ~written.isin(text)
    return list(zip(written[hit], lookup[keys[hit]].tolist(), strict=True))


def spaced_ids_note(pairs: Sequence[tuple[str, str]], *, of_those: bool = True) -> str:
    """How :func:`spaced_ids` are named in a message: how many ("of those", after a count of
    unknown ids), and one of them."""
    shown, lead = pairs[0]
    return (
        f"{len(pairs):,} {'of those ' if of_those else ''}id(s) differ from a lead's id only "
        f"by spaces around them ({shown!r} vs {lead!r})"
    )


#: The fix for :func:`spaced_ids`: the ids are never stripped in silence.
SPACED_IDS_FIX = (
    "Strip the spaces around the ids in the export (leadscore matches ids exactly as written)."
)


def unknown_ids_error(
    table: str, unknown: int, rows: int, example: str, distinct: pd.Series, known: pd.Index
) -> DataError:
    """The error for ``unknown`` of ``rows`` rows of ``table`` whose lead id is not in the
    leads (``example`` one of them, ``distinct`` up to :data:`UNKNOWN_ID_SAMPLE` of their
    distinct ids), shared by the whole and the sliced reader.

    When ids differ from leads' ids only by spaces around them (:func:`spaced_ids`), or when
    most rows are unknown and most of their ids are leads' ids with the leading zeros dropped
    (``123`` for ``000123``: a spreadsheet or an export read the column as a number), the
    error says so: adding "those leads" would be the wrong fix.
    """
    problem = f"{table}: {unknown:,} row(s) for lead_id(s) not in leads, e.g. {example!r}"
    fix = f"Add those leads to the leads table or drop their rows from {table}."
    spaced = spaced_ids(distinct, known)
    if spaced:
        return DataError(f"{problem}; {spaced_ids_note(spaced)}", SPACED_IDS_FIX)
    if 2 * unknown <= rows:
        return DataError(problem, fix)
    # the other way round: the leads' ids lost their zeros (a leads table typed as numbers)
    theirs = distinct.astype(str)
    zero_led = theirs[theirs.str.fullmatch(_ZERO_LED_ID)]
    known_text = set(known.astype(str))
    lost = zero_led[zero_led.str.lstrip("0").isin(known_text)]
    if len(lost) and 2 * len(lost) >= len(distinct):
        return DataError(
            f"{problem}; the leads' ids look like these without their leading zeros "
            f"({str(lost.iloc[0])!r} vs {str(lost.iloc[0]).lstrip('0')!r})",
            "Export lead_id of the leads table as text, with its leading zeros.",
        )
    ids = pd.Series(known.astype(str))
    led = ids[ids.str.fullmatch(_ZERO_LED_ID)]
    stripped = pd.Series(led.to_numpy(), index=led.str.lstrip("0").to_numpy())
    stripped = stripped[~stripped.index.duplicated()]
    matched = distinct.astype(str)
    matched = matched[matched.isin(stripped.index)]
    if len(matched) == 0 or 2 * len(matched) < len(distinct):
        return DataError(problem, fix)
    short = example if example in stripped.index else str(matched.iloc[0])
    return DataError(
        f"{table}: {unknown:,} row(s) for lead_id(s) not in leads, e.g. {short!r}; the ids in "
        f"{table} look like the leads' ids without their leading zeros "
        f"({short!r} vs {str(stripped[short])!r})",
        f"Export the ids as text in {table} too, with their leading zeros as in leads.",
    )


def _to_numeric(values: pd.Series, table: str, column: str) -> pd.Series:
    """``values`` as float64; text that is no number and infinity are errors naming the input
    column (an infinite value would otherwise surface as a derived feature the user never
    wrote, such as ``web_seconds_30d``)."""
    if ptypes.is_bool_dtype(values) or ptypes.is_numeric_dtype(values):
        numbers = values.astype("float64")
    else:
        parsed = pd.to_numeric(values, errors="coerce")
        bad = parsed.isna() & values.notna()
        if bad.any():
            raise DataError(
                f"{table}.{column} must be numeric but holds {values[bad].iloc[0]!r}",
                f"Keep only numbers (or blanks) in {column}.",
            )
        numbers = parsed.astype("float64")
    infinite = np.isinf(numbers.to_numpy())
    if infinite.any():
        raise DataError(
            f"{table}.{column} holds an infinite value in {int(infinite.sum())} row(s)",
            "Replace it with a number or leave it empty.",
        )
    return numbers


def normalized_labels(values: pd.Series) -> pd.Categorical:
    """Text labels trimmed and lower-cased, as a Categorical; missing values stay missing.

    The work is done on the distinct labels, not on every row: an activity log of fifty
    million rows holds a few dozen types and details, and string operations on every row
    would cost minutes and gigabytes. Labels that only differ in case or spaces
    (``"Page_View "``, ``"page_view"``) become one category.
    """
    raw = values if isinstance(values.dtype, pd.CategoricalDtype) else values.astype("category")
    labels = pd.Index([fold_label(c) for c in raw.cat.categories.astype(str)], dtype="str")
    categories = pd.Index(pd.unique(labels))
    # old code -> new code; the appended -1 is where a missing value's code (-1) points
    remap = np.append(categories.get_indexer(labels), -1)
    return pd.Categorical.from_codes(
        remap[raw.cat.codes.to_numpy()], categories=categories.astype(str)
    )


_RANGE_RE = re.compile(r"^\s*(\d[\d,.]*)\s*(?:-|–|to)\s*(\d[\d,.]*)\s*$")
_PLUS_RE = re.compile(r"^\s*(\d[\d,.]*)\s*\+\s*$")


def _size_of_text(text: str | None) -> float:
    if text is None or pd.isna(text):
        return np.nan
    clean = text.replace(" ", "")
    if (m := _RANGE_RE.match(clean)) is not None:
        low, high = (float(g.replace(",", "")) for g in m.groups())
        return (low + high) / 2
    if (m := _PLUS_RE.match(clean)) is not None:
        # "5000+" means more than 5000: read as the next head count, so the band is the one
        # above 5000, as a CRM's "1000+" follows its "201-1000"
        return float(m.group(1).replace(",", "")) + 1
    try:
        return float(clean.replace(",", ""))
    except ValueError:
        return np.nan


def parse_company_size(values: pd.Series) -> pd.Series:
    """Employees as a float: numbers as they are, ``51-200`` as its midpoint, ``5000+`` as 5001.

    CRMs hold company size either as a head count or as a band; reading both lets the size
    band and the numeric feature mean the same thing whatever the source wrote. ``N+`` is
    read just above N, so that it lands in the band above N (``1000+`` in 1001-5000, not in
    201-1000 with the companies of 201 to 1000 employees).

    Examples
    --------
    >>> parse_company_size(pd.Series(["1-10", "1000+", "5,000+", "250"])).tolist()
    [5.5, 1001.0, 5001.0, 250.0]
    """
    if ptypes.is_numeric_dtype(values) and not ptypes.is_bool_dtype(values):
        out = values.astype("float64")
    else:
        codes, uniques = pd.factorize(values.astype("str"), use_na_sentinel=True)
        sizes = np.append(np.array([_size_of_text(u) for u in uniques], dtype=float), np.nan)
        out = pd.Series(sizes[codes], index=values.index)
    return out.where(out >= 0).rename("company_size")


def _warn_unread_company_sizes(values: pd.Series) -> None:
    """Name the company sizes :func:`parse_company_size` cannot read: those leads are scored
    as "company size not given", which a typo (``lots``) should not pass for quietly."""
    sizes = parse_company_size(values)
    unread = sizes.isna() & values.notna() & values.astype("string").str.strip().ne("")
    if unread.any():
        logger.warning(
            "leads.company_size: %s value(s) read as not given, such as %r; write a head "
            "count (250) or a band (51-200, 1000+)",
            f"{int(unread.sum()):,}",
            values[unread].iloc[0],
        )


def validate_leads(leads: pd.DataFrame, *, warn: bool = True) -> pd.DataFrame:
    """Check and type the leads table; extra columns pass through unchanged. ``warn`` logs
    company sizes that read as no number (a reader of slices warns once, on all leads)."""
    _require_columns(leads, "leads", LEADS_REQUIRED)
    _require_rows(leads, "leads")
    out = leads.copy()
    out["lead_id"] = to_lead_ids(out["lead_id"], "leads")
    _check_unique(out["lead_id"], "leads")
    twins = space_twins_text(out["lead_id"])
    if twins is not None:
        raise DataError(
            f"leads: lead ids {twins}",
            "Strip the spaces around ids in the export: each is one lead.",
        )
    out["created_at"] = to_utc_naive(out["created_at"], "leads", "created_at")
    if warn and "company_size" in out.columns:
        _warn_unread_company_sizes(out["company_size"])
    return out.reset_index(drop=True)


def validate_activities(
    activities: pd.DataFrame, lead_ids: pd.Index, *, types_place: str | None = None
) -> pd.DataFrame:
    """Check and type the activity log against the known leads and activity types
    (``types_place``: the source's ``activity_types`` table, named in the fix for unknown
    types: :func:`check_activity_types`)."""
    _require_columns(activities, "activities", ACTIVITIES_REQUIRED)
    out = activities.copy(deep=False)
    if len(out):
        out["lead_id"] = to_lead_ids(out["lead_id"], "activities")
        _check_known(out["lead_id"], lead_ids, "activities")
    else:
        out["lead_id"] = out["lead_id"].astype(str)
    out["occurred_at"] = to_utc_naive(out["occurred_at"], "activities", "occurred_at")
    raw = out["activity_type"]
    raw = raw if isinstance(raw.dtype, pd.CategoricalDtype) else raw.astype("category")
    counts = np.bincount(raw.cat.codes.to_numpy().astype("int64") + 1, minlength=1)
    counts = np.pad(counts, (0, len(raw.cat.categories) + 1 - len(counts)))
    check_activity_types(
        dict(zip(raw.cat.categories.astype(str), counts[1:].tolist(), strict=True)),
        int(counts[0]),
        place=types_place,
    )
    types = normalized_labels(raw)
    out["activity_type"] = types.set_categories(list(ACTIVITY_TYPES))
    if "detail" in out.columns:
        out["detail"] = normalized_labels(out["detail"])
    else:
        out["detail"] = pd.Categorical([None] * len(out), categories=[])
    out["value"] = (
        _to_numeric(out["value"], "activities", "value")
        if "value" in out.columns
        else np.full(len(out), np.nan)
    )
    return out[["lead_id", "occurred_at", "activity_type", "detail", "value"]].reset_index(
        drop=True
    )


#: How many unknown activity types an error names before "and N more".
SHOWN_UNKNOWN_TYPES = 5


def check_activity_types(
    counts: Mapping[str, int], missing: int, *, place: str | None = None
) -> None:
    """Refuse activity types outside :data:`ACTIVITY_TYPES` (compared trimmed and lower-cased)
    and empty ones, from the rows per type as written (``counts``) and the rows without one
    (``missing``): the error names the unknown types as the user wrote them, each with its
    own row count, most frequent first. Shared by the whole and the sliced reader.

    ``place`` names the source's ``activity_types`` table, or where one would go: a loader
    gives it, so that the fix says how to map the log's own types, not only which exist."""
    unknown = sorted(
        ((str(label), int(n)) for label, n in counts.items() if n > 0),
        key=lambda item: (-item[1], item[0]),
    )
    unknown = [(label, n) for label, n in unknown if fold_label(label) not in ACTIVITY_TYPES]
    fix = f"Map each activity to one of: {', '.join(ACTIVITY_TYPES)}."
    if unknown:
        shown = ", ".join(
            f"{label!r} ({n:,} row{'' if n == 1 else 's'})"
            for label, n in unknown[:SHOWN_UNKNOWN_TYPES]
        )
        rest = unknown[SHOWN_UNKNOWN_TYPES:]
        if rest:
            more = sum(n for _, n in rest)
            shown += f" and {len(rest)} more ({more:,} row{'' if more == 1 else 's'})"
        kind = "type" if len(unknown) == 1 else "types:"
        if place is not None:
            fix = (
                f"{fix.rstrip('.')}: list the log's own types in {place} (columns source_type, "
                f"activity_type and optionally detail; activity_type {IGNORED_ACTIVITY} leaves a "
                "type's rows out)."
            )
        raise DataError(f"activities.activity_type: unknown {kind} {shown}", fix)
    if missing:
        raise DataError(f"activities.activity_type is empty in {missing:,} row(s)", fix)


def fold_label(label: object) -> str:
    """An activity type or detail as it is compared: trimmed and lower-cased. The one rule of
    :func:`normalized_labels`, :func:`check_activity_types` and the ``activity_types`` map,
    so that ``"Email Opened "`` in the log finds ``email opened`` in the map."""
    return str(label).strip().lower()


def rows_text(n: int) -> str:
    """``1 row``, ``2,500 rows``: how messages count rows."""
    return f"{n:,} row{'' if n == 1 else 's'}"


def value_listing(
    items: Sequence[tuple[object, int]],
    *,
    quote: Callable[[object], str] = repr,
    count: Callable[[int], str] = rows_text,
    shown: int = SHOWN_UNKNOWN_TYPES,
) -> str:
    """``'Won ' (200 rows), 'won' (100 rows) and 3 more (12 rows)``: the first ``shown`` of
    ``items`` (value, rows), most rows first as given, and how many values and rows are
    left: how every error and warning that names unexpected values lists them."""
    listed = ", ".join(f"{quote(value)} ({count(n)})" for value, n in items[:shown])
    rest = items[shown:]
    if rest:
        listed += f" and {len(rest):,} more ({count(sum(n for _, n in rest))})"
    return listed


@dataclass(frozen=True)
class ActivityMapping:
    """What a source's ``activity_types`` table did to its activity log, for one log line and
    for ``validate``'s summary (a map that ignores the wrong type would otherwise drop rows
    without a word).

    ``mapped`` holds (type as the log writes it, activity type, detail set or ``None``, rows)
    for each of the log's types that a row of the map changed, ``ignored`` (type as written,
    rows) for those left out, most rows first. Both readers compute it from the rows per type
    of the whole log, so every slice of a folder carries the same.
    """

    place: str
    mapped: tuple[tuple[str, str, str | None, int], ...] = ()
    ignored: tuple[tuple[str, int], ...] = ()

    @property
    def mapped_types(self) -> int:
        """The source types (rows of the map, matched folded) that mapped some of the log."""
        return len({fold_label(label) for label, *_ in self.mapped})

    @property
    def ignored_rows(self) -> int:
        return sum(n for _, n in self.ignored)

    def summary(self) -> str:
        """One line: how many source types were mapped and which rows were left out."""
        rows = sum(n for *_, n in self.mapped)
        text = f"{self.place} maps {self.mapped_types} source type(s) ({rows_text(rows)})"
        if not self.ignored:
            return f"{text}, ignores none"
        shown = ", ".join(
            f"{label!r} ({rows_text(n)})" for label, n in self.ignored[:SHOWN_UNKNOWN_TYPES]
        )
        rest = self.ignored[SHOWN_UNKNOWN_TYPES:]
        if rest:
            shown += f" and {len(rest)} more ({rows_text(sum(n for _, n in rest))})"
        return f"{text}, ignores {rows_text(self.ignored_rows)}: {shown}"


@dataclass(frozen=True)
class ActivityTypeMap:
    """A source's ``activity_types`` table: the company's own activity vocabulary ("Pricing
    Page Visit", "Demo Request Form", "Sales Call Logged") mapped onto
    :data:`ACTIVITY_TYPES`. It lives with the data, so every command that reads the source
    reads the same mapped log, whichever reader (whole or sliced) it uses.

    ``rules`` maps a source type, folded (:func:`fold_label`), to its activity type or
    :data:`IGNORED_ACTIVITY` and the ``detail`` it sets (``None``: the log's own detail is
    kept, exactly as written). Types the map does not name pass through as the log writes
    them, so leadscore's own types need no row. ``place`` names the table in a fix
    (``crm/activity_types.csv``); a map without rules stands for a source without the table,
    ``place`` then saying where one would go. Build one with
    :func:`validate_activity_type_map`.
    """

    place: str
    rules: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)

    def rule(self, label: object) -> tuple[str, str | None] | None:
        """(activity type or ``ignore``, detail) for a type as the log writes it, or ``None``."""
        return self.rules.get(fold_label(label))

    def mapping(self, counts: Mapping[str, int], missing: int) -> ActivityMapping | None:
        """What the map does to a log of ``counts`` rows per type as written and ``missing``
        rows without one, or ``None`` without rules. A log whose every row is ignored is an
        error: the map is wrong, and an empty log would score every lead as inactive."""
        if not self.rules:
            return None
        mapped: list[tuple[str, str, str | None, int]] = []
        ignored: list[tuple[str, int]] = []
        for label, n in sorted(counts.items(), key=lambda item: (-item[1], str(item[0]))):
            found = self.rule(label) if n > 0 else None
            if found is None:
                continue
            if found[0] == IGNORED_ACTIVITY:
                ignored.append((str(label), int(n)))
            else:
                mapped.append((str(label), found[0], found[1], int(n)))
        total = sum(int(n) for n in counts.values()) + missing
        if total and total == sum(n for _, n in ignored):
            raise DataError(
                f"activities: all {rows_text(total)} are of types that {self.place} maps to "
                f"{IGNORED_ACTIVITY}",
                f"Map the log's types onto leadscore's there; {IGNORED_ACTIVITY} is for the "
                "sales team's activities (calls, notes, status changes).",
            )
        return ActivityMapping(self.place, tuple(mapped), tuple(ignored))

    def mapped_counts(self, counts: Mapping[str, int]) -> dict[str, int]:
        """``counts`` (rows per type as written) as the mapped log holds them: ignored types
        left out, mapped ones under their activity type, the others as written, so that
        :func:`check_activity_types` names what is still unknown as the user wrote it."""
        out: dict[str, int] = {}
        for label, n in counts.items():
            found = self.rule(label)
            if found is not None and found[0] == IGNORED_ACTIVITY:
                continue
            key = str(label) if found is None else found[0]
            out[key] = out.get(key, 0) + int(n)
        return out


def _map_texts(values: pd.Series, *, missing: Iterable[str] = ("",)) -> list[str | None]:
    """The values of an ``activity_types`` column as trimmed text, ``None`` where empty."""
    tokens = set(missing)
    out: list[str | None] = []
    for value in values.tolist():
        text = (
            None
            if value is None or (not isinstance(value, str) and pd.isna(value))
            else str(value).strip()
        )
        out.append(None if text is None or text in tokens else text)
    return out


def _target_text(target: str, detail: str | None) -> str:
    return target if detail is None else f"{target} (detail {detail!r})"


def validate_activity_type_map(
    frame: pd.DataFrame, where: str, place: str | None = None, *, warn: bool = True
) -> ActivityTypeMap:
    """Check a source's ``activity_types`` table, read from ``where``, and return its rules.

    Columns: ``source_type`` (required, the type as the log writes it, matched folded),
    ``activity_type`` (required, one of :data:`ACTIVITY_TYPES` or ``ignore``) and ``detail``
    (optional: where given, it becomes the detail of the mapped rows; a blank cell, or one
    of pandas' missing spellings such as ``NULL``, keeps the log's own detail, as in the log
    itself). Every mistake is an error rather than a guess, since a wrong map changes every
    feature without a word: a table without rows (a failed export), an empty source type,
    an activity type outside the vocabulary and two rows for one folded source type that
    map it differently. ``place`` names the table in fixes (default ``where``).

    ``warn`` logs the source types that read as the sales team's activity
    (:func:`sales_source_types`). A reader that checks the map only on the way to another
    reader of the same source (the extract moment, :func:`leadscore.io.event_observed_until`,
    before ``score`` reads the log) passes ``False``, so that one command warns once; its
    mistakes are errors all the same.
    """
    _require_columns(frame, "activity_types", ACTIVITY_TYPES_MAP_REQUIRED)
    if frame.empty:
        raise DataError(
            f"{where} has no rows",
            "Export it again with a row per activity type of the log, or remove it to read "
            "the log's types as they are.",
        )
    sources = _map_texts(frame["source_type"])
    targets = _map_texts(frame["activity_type"])
    details = (
        _map_texts(frame["detail"], missing=MISSING_SPELLINGS)
        if "detail" in frame.columns
        else [None] * len(frame)
    )
    named = [source for source in sources if source is not None]
    if len(named) < len(sources):
        raise DataError(
            f"activity_types.source_type is empty in {len(sources) - len(named):,} row(s)",
            "Give each row the activity type as the log writes it, or drop the row.",
        )
    allowed = (*ACTIVITY_TYPES, IGNORED_ACTIVITY)
    bad = [
        (source, target)
        for source, target in zip(named, targets, strict=True)
        if target is None or fold_label(target) not in allowed
    ]
    if bad:
        source, target = bad[0]
        what = "is empty" if target is None else f"is {target!r}, not a leadscore type,"
        others = f" (and {len(bad) - 1:,} other row(s))" if len(bad) > 1 else ""
        raise DataError(
            f"activity_types.activity_type {what} for source_type {source!r}{others}",
            f"Map each source_type to one of: {', '.join(ACTIVITY_TYPES)}, or to "
            f"{IGNORED_ACTIVITY} to leave its rows out.",
        )
    rules: dict[str, tuple[str, str | None]] = {}
    written: dict[str, str] = {}
    for source, target, detail in zip(named, targets, details, strict=True):
        key = fold_label(source)
        kind = fold_label(target)
        rule = (kind, None if kind == IGNORED_ACTIVITY else detail)
        if key in rules:
            before = rules[key]
            fold_before = (before[0], None if before[1] is None else fold_label(before[1]))
            fold_now = (rule[0], None if rule[1] is None else fold_label(rule[1]))
            if fold_before != fold_now:
                first = written[key]
                which = (
                    f"source_type {first!r} is mapped twice"
                    if first == source
                    else f"source_types {first!r} and {source!r} are one type (case and spaces "
                    "aside) but are mapped"
                )
                raise DataError(
                    f"activity_types: {which}, to {_target_text(*before)} and to "
                    f"{_target_text(*rule)}",
                    "Keep one row per activity type of the log; source_type is matched "
                    "ignoring case and spaces around it.",
                )
            continue
        rules[key] = rule
        written[key] = source
    shown_place = where if place is None else place
    if warn:
        _warn_sales_types(shown_place, [(written[k], r[0]) for k, r in rules.items()])
    return ActivityTypeMap(shown_place, rules)


def sales_source_types(rules: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (source type as written, activity type) pairs of a map whose source type reads as
    the sales team's activity (a whole word of :data:`SALES_ACTIVITY_WORDS`, or its plural,
    in any case) and whose activity type is not ``ignore``.

    Words are read as the leakage guard reads column names (:func:`leadscore.names.name_words`):
    spaces, ``_`` and ``-`` separate them and so does a capital after a small letter, since
    CRMs write types glued in camelCase (``SalesCallLogged``, ``statusChange``) as often as
    spelled out. A word merely holding one (``Callback``, ``Footnote``) does not count."""
    sales = frozenset(SALES_ACTIVITY_WORDS)
    return [
        (source, target)
        for source, target in rules
        if target != IGNORED_ACTIVITY
        and any(w in sales or singular(w) in sales for w in name_words(source))
    ]


def _warn_sales_types(place: str, rules: Iterable[tuple[str, str]]) -> None:
    """One warning per map naming the source types that look like the sales team's activity
    (calls, meetings, tasks, notes, status or stage changes, opportunities, deals) but are
    mapped to a leadscore type. Such activity happens after a salesperson took the lead up,
    so it says who is being worked and leaks the outcome; it is a warning, not an error,
    because a name can mislead ("Webinar Call" may be the lead's own webinar), and the
    warning names the types so that a user who checked can leave them."""
    found = sales_source_types(rules)
    if not found:
        return
    shown = ", ".join(f"{source!r} (to {target})" for source, target in found)
    logger.warning(
        "%s maps %s to leadscore type(s), but %s like the sales team's activities (calls, "
        "meetings, tasks, notes, status or stage changes, opportunities, deals): those happen "
        "after a salesperson took the lead up and leak the outcome into the features; map "
        "%s to %s, unless %s truly the lead's own doing (a webinar held as a call)",
        place,
        shown,
        "it reads" if len(found) == 1 else "they read",
        "it" if len(found) == 1 else "them",
        IGNORED_ACTIVITY,
        "it is" if len(found) == 1 else "one is",
    )


def map_activity_types(
    activities: pd.DataFrame, type_map: ActivityTypeMap
) -> tuple[pd.DataFrame, ActivityMapping | None]:
    """``activities`` as read (not yet validated) with ``type_map`` applied, and what it did.

    Mapped types take their activity type, and their map row's ``detail`` where it gives one;
    ignored types' rows are left out; every other row, and every detail the map does not
    set, stays exactly as the log wrote it, so that validation treats it as it would without
    a map. The work is done on the distinct types, not on every row (a log of fifty million
    rows holds a few dozen types), as :func:`normalized_labels` does it.
    """
    if not type_map.rules:
        return activities, None
    raw = activities["activity_type"]
    raw = raw if isinstance(raw.dtype, pd.CategoricalDtype) else raw.astype("category")
    labels = [str(label) for label in raw.cat.categories]
    codes = raw.cat.codes.to_numpy().astype("int64")
    per_code = np.bincount(codes + 1, minlength=len(labels) + 1)
    counts: dict[str, int] = {}
    for label, n in zip(labels, per_code[1:].tolist(), strict=True):
        if n:
            counts[label] = counts.get(label, 0) + int(n)
    mapping = type_map.mapping(counts, int(per_code[0]))
    rules = [type_map.rule(label) for label in labels]
    # the appended entries are where a missing type's code (-1) points
    ignored = np.array([r is not None and r[0] == IGNORED_ACTIVITY for r in rules] + [False])
    kept = [None if r is None or r[0] == IGNORED_ACTIVITY else r for r in rules]
    types = [label if r is None else r[0] for label, r in zip(labels, kept, strict=True)]
    categories = pd.Index(types, dtype=str).unique()
    out = activities.copy(deep=False)
    out["activity_type"] = pd.Categorical.from_codes(
        np.append(categories.get_indexer(types), -1)[codes], categories=categories
    )
    details = sorted({r[1] for r in kept if r is not None and r[1] is not None})
    if details:
        position = [-1 if r is None or r[1] is None else details.index(r[1]) for r in kept]
        which = np.append(np.array(position, dtype="int64"), -1)[codes]
        if (which >= 0).any():
            out["detail"] = _details_set(activities, which, details)
    keep = ~ignored[codes]
    if not keep.all():
        out = out[keep].reset_index(drop=True)
    return out, mapping


def _details_set(activities: pd.DataFrame, which: np.ndarray, details: list[str]) -> pd.Categorical:
    """The log's detail where ``which`` is -1, ``details[which]`` elsewhere: the log's own
    details keep their text (as :func:`normalized_labels` would read them)."""
    if "detail" in activities.columns:
        given = activities["detail"]
        given = given if isinstance(given.dtype, pd.CategoricalDtype) else given.astype("category")
        written = [str(label) for label in given.cat.categories]
        own_codes = given.cat.codes.to_numpy().astype("int64")
    else:
        written, own_codes = [], np.full(len(activities), -1, dtype="int64")
    labels = [*written, *details]
    categories = pd.Index(labels, dtype=str).unique()
    remap = categories.get_indexer(labels)
    own = np.append(remap[: len(written)], -1)[own_codes]
    codes = np.where(which >= 0, remap[len(written) + which], own)
    return pd.Categorical.from_codes(codes, categories=categories)


def log_activity_mapping(mapping: ActivityMapping) -> None:
    """Log once what a source's ``activity_types`` table did to its log: which types it left
    out and how many rows, since a type ignored by mistake would vanish from every feature."""
    logger.info("activities: %s", mapping.summary())


def validate_outcomes(outcomes: pd.DataFrame, lead_ids: pd.Index) -> pd.DataFrame:
    """Check and type outcomes: one per lead, ``won`` or ``lost``, with a close date."""
    _require_columns(outcomes, "outcomes", OUTCOMES_REQUIRED)
    out = outcomes.copy()
    out["lead_id"] = to_lead_ids(out["lead_id"], "outcomes") if len(out) else out["lead_id"]
    out["lead_id"] = out["lead_id"].astype(str)
    _check_unique(out["lead_id"], "outcomes")
    _check_known(out["lead_id"], lead_ids, "outcomes")
    outcome = out["outcome"].astype("string").str.strip().str.lower()
    bad = ~outcome.isin(OUTCOME_VALUES)
    if bad.any():
        raise outcome_values_error(out.loc[bad.to_numpy(), "outcome"])
    out["outcome"] = outcome.astype(str)
    out["closed_at"] = to_utc_naive(out["closed_at"], "outcomes", "closed_at")
    return out[["lead_id", "outcome", "closed_at"]].reset_index(drop=True)


#: Words of an outcome value that say it is a win or a loss, and words that turn the
#: reading: a negation any reading (``Not Won``, ``No loss``), a competitor a win (``Lost -
#: won by a competitor`` is a loss). ``won't`` is one word, never ``won``.
_WIN_WORDS = frozenset({"won", "win", "wins", "winner"})
_LOSS_WORDS = frozenset({"lost", "loss", "lose", "loses"})
_NEGATIONS = frozenset({"not", "no", "non", "never"})


def outcome_reading(value: object) -> Literal["won", "lost"] | None:
    """What an outcome written in a CRM's words says, where it says one thing: ``Closed
    Won`` is won, ``Closed Lost`` and ``Lost to a competitor`` lost; ``Not Won``, ``Won't
    buy`` or a value naming both say nothing sure. The one reading behind every hint that
    names the value to write."""
    words = set(re.findall(r"[a-z0-9']+", str(value).lower()))
    if words & _NEGATIONS:
        return None
    won = bool(words & _WIN_WORDS) and "competitor" not in words
    lost = bool(words & _LOSS_WORDS)
    if won != lost:
        return "won" if won else "lost"
    return None


def outcome_values_error(bad: pd.Series) -> DataError:
    """The error for outcomes spelled neither won nor lost (``bad``: those values as read):
    each distinct value quoted as written with its row count, most rows first, and a fix
    that names the won and lost values to write where the value says which (a CRM's
    ``Closed Won`` is won, ``Closed Lost`` lost)."""
    text = bad.astype("string").fillna("")
    counts = sorted(text.value_counts(sort=False).items(), key=lambda item: (-item[1], item[0]))
    values = [(str(value), int(n)) for value, n in counts]

    def quoted(value: object) -> str:
        return repr(value) if str(value).strip() else "an empty value"

    shown = value_listing(values, quote=quoted)
    if len(values) == 1:
        value, n = values[0]
        what = f"outcomes.outcome holds {quoted(value)}, not won or lost ({rows_text(n)})"
    else:
        total = sum(n for _, n in values)
        what = (
            f"outcomes.outcome holds {len(values):,} values that are not won or lost "
            f"({rows_text(total)}): {shown}"
        )
    readings = [
        f"{value!r} as {reading}"
        for value, _ in values
        if (reading := outcome_reading(value)) is not None
    ]
    read_as = f" ({', '.join(readings[:SHOWN_UNKNOWN_TYPES])})" if readings else ""
    return DataError(
        what,
        f"Write won or lost in outcomes.outcome{read_as}; leave open leads out of outcomes.",
    )


def validate_closed_loop(
    leads: pd.DataFrame,
    activities: pd.DataFrame | None = None,
    outcomes: pd.DataFrame | None = None,
    observed_until: pd.Timestamp | str | None = None,
    *,
    now: pd.Timestamp | None = None,
    warn_whole: bool = True,
    activity_types: ActivityTypeMap | pd.DataFrame | None = None,
) -> ClosedLoopData:
    """Validate the three event-form tables and return them typed.

    ``activity_types`` maps the log's own activity types onto leadscore's before anything
    else is checked (:func:`map_activity_types`): an :class:`ActivityTypeMap` as a loader
    read it from the source, or the table itself (``source_type``, ``activity_type``,
    optional ``detail``). Ignored rows are left out of every check, as if never exported.

    ``observed_until`` defaults to the latest timestamp anywhere in the data: the moment the
    extract was taken, after which nothing can be known. Taken from the data, it is checked
    by :func:`extract_moment`: a timestamp after ``now`` (default: the current time, UTC) is
    an error, and a latest timestamp far after the rest is a warning, since one typo would
    move every label window and all censoring with it. An outcome closed before the day its
    lead was created is an error: training would leave the lead out without a word.
    ``warn_whole`` logs what is said once about the whole data: how many activity rows repeat
    another one exactly, and company sizes read as no number (a reader of slices says both
    once, over all slices, instead of once per slice).
    """
    for name, table in (("leads", leads), ("activities", activities), ("outcomes", outcomes)):
        if table is not None or name == "leads":
            expect_type(
                table,
                pd.DataFrame,
                f"validate_closed_loop's {name}",
                f"Pass the {name} table as a pandas DataFrame (pd.DataFrame(rows) for a list "
                "of records), or load_closed_loop(source) to read the tables from files.",
            )
    leads_v = validate_leads(leads, warn=warn_whole)
    ids = pd.Index(leads_v["lead_id"])
    acts = activities if activities is not None else pd.DataFrame(columns=ACTIVITIES_REQUIRED)
    outs = outcomes if outcomes is not None else pd.DataFrame(columns=OUTCOMES_REQUIRED)
    type_map = (
        validate_activity_type_map(activity_types, "the activity_types table")
        if isinstance(activity_types, pd.DataFrame)
        else activity_types
    )
    mapping = None
    if type_map is not None and activities is not None:
        _require_columns(acts, "activities", ACTIVITIES_REQUIRED)
        acts, mapping = map_activity_types(acts, type_map)
        if mapping is not None and warn_whole:
            log_activity_mapping(mapping)
    acts_v = validate_activities(
        acts, ids, types_place=None if type_map is None else type_map.place
    )
    outs_v = validate_outcomes(outs, ids)
    _check_closed_after_created(leads_v, outs_v)
    if warn_whole:
        warn_duplicate_activities(count_duplicate_activities(acts_v), len(acts_v))
    if observed_until is None:
        moment = now if now is not None else utc_now()
        total = len(leads_v) + len(acts_v) + len(outs_v)
        keep = tail_rows(total) + 1
        until = extract_moment(
            [
                timestamp_summary(leads_v, "leads", "created_at", now=moment, keep=keep),
                timestamp_summary(acts_v, "activities", "occurred_at", now=moment, keep=keep),
                timestamp_summary(outs_v, "outcomes", "closed_at", now=moment, keep=keep),
            ],
            now=moment,
        )
    else:
        until = parse_observed_until(observed_until)
    if until.tzinfo is not None:
        until = until.tz_convert("UTC").tz_localize(None)
    return ClosedLoopData(leads_v, acts_v, outs_v, until, activity_mapping=mapping)


def _check_closed_after_created(leads: pd.DataFrame, outcomes: pd.DataFrame) -> None:
    if outcomes.empty:
        return
    created = outcomes["lead_id"].map(leads.set_index("lead_id")["created_at"])
    # by day: a CRM that writes close dates without a time closes same-day leads at midnight
    early = outcomes["closed_at"] < created.astype("datetime64[us]").dt.floor("D")
    if early.any():
        first = outcomes[early].assign(created=created[early]).sort_values("lead_id").iloc[0]
        raise closed_before_created_error(
            int(early.sum()),
            str(first["lead_id"]),
            pd.Timestamp(first["created"]),
            pd.Timestamp(first["closed_at"]),
        )


def closed_before_created_error(
    count: int, lead_id: str, created: pd.Timestamp, closed: pd.Timestamp
) -> DataError:
    """The error for outcomes closed before the day their lead was created (``lead_id``: the
    smallest such id, so that every reader names the same one)."""
    return DataError(
        f"outcomes: {count:,} outcome(s) closed before the day their lead was created, e.g. "
        f"lead {lead_id!r} created {created:%Y-%m-%d %H:%M}, closed {closed:%Y-%m-%d %H:%M}",
        "Correct closed_at or the lead's created_at (a lead that came back after it closed "
        "needs a new lead_id): training would leave these leads out without a word.",
    )


ACTIVITY_KEY = ("lead_id", "occurred_at", "activity_type", "detail", "value")


def count_duplicate_activities(activities: pd.DataFrame) -> int:
    """Activity rows (validated) that repeat an earlier row exactly: same lead, moment, type,
    detail and value. Such rows are counted twice by every feature, and an export that
    joined one table twice writes them.

    Rows are first compared by a hash of the cheap columns, and only those whose hash repeats
    are compared in full: an activity log of fifty million rows is too large to hash its ids
    for a check that usually finds nothing.
    """
    if len(activities) < 2:
        return 0
    moment = activities["occurred_at"].to_numpy().view("int64").astype("uint64")
    key = moment * np.uint64(1_000_003)
    for shift, column in ((56, "activity_type"), (40, "detail")):
        codes = activities[column].cat.codes.to_numpy().astype("int64") + 1
        key ^= codes.astype("uint64") << np.uint64(shift)
    value = activities["value"].to_numpy(dtype="float64", na_value=np.nan)
    key ^= np.where(np.isnan(value), -1.0, value).view("uint64")
    candidates = pd.Series(key).duplicated(keep=False).to_numpy()
    if not candidates.any():
        return 0
    return int(activities[candidates].duplicated(list(ACTIVITY_KEY)).sum())


def warn_duplicate_activities(count: int, total: int) -> None:
    """Log the duplicate activity rows :func:`count_duplicate_activities` found, if any."""
    if count:
        logger.warning(
            "activities: %s row(s) of %s repeat another row exactly (same lead, occurred_at, "
            "activity_type, detail and value) and count twice in every feature; drop the "
            "duplicates if the export repeated them",
            f"{count:,}",
            f"{total:,}",
        )
