"""Timestamps as the data contract reads them, and the moment an extract was taken.

CRMs write dates as ISO text with a zone or without, day-first or month-first, or as typed
columns; every table's timestamps become timezone-naive UTC ``datetime64`` here, once, in one
format per column, never one per value (a column that reads both day-first and month-first is
an error, not a guess). The extract moment (``observed_until``) is the given value, a
manifest's entry, or the latest timestamp in the data, checked for a timestamp in the future
and for a lone late row that would set it by mistake (:func:`extract_moment`). A folder's
``manifest.json`` is read by :func:`manifest_observed_until` (an unknown key, or a moment after
the current time, is an error) and the moment it declares is held against the data by
:func:`check_manifest_moment`: an extract holds nothing after the moment it was taken, and,
whatever moment it declares, nothing after the current time.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from pandas.api import types as ptypes
from pandas.tseries.api import guess_datetime_format

from leadscore.errors import DataError

if TYPE_CHECKING:
    from leadscore.schema import ClosedLoopData

logger = logging.getLogger(__name__)


def to_utc_naive(values: pd.Series, table: str, column: str) -> pd.Series:
    """Parse ``values`` as timestamps in UTC without timezone, or raise a :class:`DataError`."""
    if ptypes.is_datetime64_any_dtype(values):
        parsed = values
    else:
        if ptypes.is_numeric_dtype(values) or ptypes.is_bool_dtype(values):
            raise DataError(
                f"{table}.{column} holds numbers, not timestamps",
                f"Write {column} as ISO dates such as 2024-03-01 or 2024-03-01T10:15:00.",
            )
        parsed = _parse_text_timestamps(values.astype("string"), table, column)
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    parsed = parsed.astype("datetime64[us]")
    if parsed.isna().any():
        raise DataError(
            f"{table}.{column} is empty in {int(parsed.isna().sum())} row(s)",
            f"Give every row a {column}, or drop the rows without one.",
        )
    return parsed


#: BigQuery and some exports write " UTC" where ISO 8601 writes an offset.
_UTC_SUFFIX = r"\s*\bUTC$"


def _year_then_day(fmt: str) -> bool:
    """A year-first format with the day before the month (``%Y-%d-%m``): no one writes that,
    and guessing it would make every year-first column look ambiguous."""
    return fmt.startswith("%Y") and fmt.find("%d") < fmt.find("%m")


def _parse_text_timestamps(text: pd.Series, table: str, column: str) -> pd.Series:
    """Text as timestamps in one format for the whole column, never one format per value
    (:func:`text_timestamp_format`)."""
    return _choose_timestamp_format(text, table, column)[1]


def text_timestamp_format(text: pd.Series, table: str, column: str) -> str:
    """The one format (``ISO8601`` or a strftime format) in which a text column of timestamps
    is written, decided as :func:`to_utc_naive` decides it. A reader that parses a column in
    slices decides it once on the whole column (or its distinct values) and parses every
    slice with :func:`parse_timestamps_as`: a slice whose days are all 12 or less would
    otherwise read both day-first and month-first."""
    return _choose_timestamp_format(text, table, column)[0]


#: A date written with its day and month as numbers before the year (``01/09/2025``,
#: ``1.9.25``, ``01-09-2025 10:00``): day-first or month-first, the text does not say.
_NUMERIC_DAY_MONTH = re.compile(
    r"\s*(?P<first>\d{1,2})(?P<sep>[/.-])(?P<second>\d{1,2})(?P=sep)(?P<year>\d{4}|\d{2})"
    r"(?:[T\s].*)?",
    re.DOTALL,
)


def day_month_readings(text: str) -> tuple[str, str] | None:
    """The two days a date written by a person reads as, day-first and month-first, as
    YYYY-MM-DD (``01/09/2025``: ``2025-09-01``, ``2025-01-09``), or ``None`` where it reads
    one way (``15/09/2025``, ``05/05/2025``, ISO text).

    pandas reads such text month-first whatever the data's own format is, so ``--as-of`` and
    a spec's ``test_from`` written so would be taken silently as the wrong day: both refuse
    it, naming the two readings.

    Examples
    --------
    >>> day_month_readings("01/09/2025"), day_month_readings("2025-09-01")
    (('2025-09-01', '2025-01-09'), None)
    """
    match = _NUMERIC_DAY_MONTH.fullmatch(text)
    if match is None:
        return None
    first, second = int(match["first"]), int(match["second"])
    if first == second or not (1 <= first <= 12 and 1 <= second <= 12):
        return None
    year = int(match["year"]) + (2000 if len(match["year"]) == 2 else 0)
    return f"{year:04d}-{second:02d}-{first:02d}", f"{year:04d}-{first:02d}-{second:02d}"


def parse_timestamps_as(text: pd.Series, fmt: str, table: str, column: str) -> pd.Series:
    """Text timestamps in the format :func:`text_timestamp_format` chose (UTC, tz-aware);
    missing text stays missing, a value in another format is an error."""
    text = _normalised(text.astype("string"))
    parsed = pd.to_datetime(text, errors="coerce", utc=True, format=fmt)
    bad = parsed.isna() & text.notna()
    if bad.any():
        raise DataError(
            f"{table}.{column}: {int(bad.sum())} value(s) do not parse as timestamps in one "
            f"format, e.g. {text[bad].iloc[0]!r}",
            f"Write {column} as ISO dates such as 2024-03-01 or 2024-03-01T10:15:00.",
        )
    return parsed


def _normalised(text: pd.Series) -> pd.Series:
    text = text.str.strip()
    # the regex runs in Python, value by value: only where it can match (1.9 s a million)
    marked = text.str.endswith("UTC").fillna(False).astype(bool)
    if not marked.any():
        return text
    return text.mask(marked, text[marked].str.replace(_UTC_SUFFIX, "+00:00", regex=True))


def _choose_timestamp_format(text: pd.Series, table: str, column: str) -> tuple[str, pd.Series]:
    """The format of a text column and the column parsed with it.

    Parsing value by value would read ``25/02/2024`` day-first and ``03/02/2024`` month-first
    in the same column. ISO 8601 comes first; otherwise the formats pandas guesses from the
    values (day-first and month-first) are each tried on the whole column, and a column both
    read completely but differently is ambiguous: an error rather than a guess. Spaces around
    a value and a trailing " UTC" are allowed.
    """
    fix = f"Write {column} as ISO dates such as 2024-03-01 or 2024-03-01T10:15:00."
    parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    bad = parsed.isna() & text.notna()
    if not bad.any():
        _warn_if_zones_mixed(text, table, column)
        return "ISO8601", parsed
    text = _normalised(text)
    parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    bad = parsed.isna() & text.notna()
    if not bad.any():
        _warn_if_zones_mixed(text, table, column)
        return "ISO8601", parsed
    formats: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for value in pd.unique(text[bad])[:100]:
            for dayfirst in (False, True):
                guessed = guess_datetime_format(str(value), dayfirst=dayfirst)
                if guessed is None or guessed in formats or _year_then_day(guessed):
                    continue
                formats.append(guessed)
    complete: list[tuple[str, pd.Series]] = []
    for fmt in formats:
        candidate = pd.to_datetime(text, errors="coerce", utc=True, format=fmt)
        candidate_bad = candidate.isna() & text.notna()
        if not candidate_bad.any():
            complete.append((fmt, candidate))
        elif candidate_bad.sum() < bad.sum():
            bad = candidate_bad
    if not complete:
        raise DataError(
            f"{table}.{column}: {int(bad.sum())} value(s) do not parse as timestamps in one "
            f"format, e.g. {text[bad].iloc[0]!r}",
            fix,
        )
    first = complete[0][1]
    for _, other in complete[1:]:
        differ = first.ne(other) & first.notna()
        if differ.any():
            raise DataError(
                f"{table}.{column}: dates such as {text[differ].iloc[0]!r} read both day-first "
                "and month-first",
                fix,
            )
    return complete[0]


#: An ISO timestamp that ends in a zone: ``Z``, ``+02:00``, ``-0500`` or ``+01``.
_ZONE_SUFFIX = re.compile(r"(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$")


def _warn_if_zones_mixed(text: pd.Series, table: str, column: str) -> None:
    """Warn when some timestamps of a column carry a zone and others do not.

    Those without one are read as UTC, which is right for an export that writes UTC without
    saying so and wrong by hours for one that writes local time beside converted values (two
    systems merged into one file): a lead's visits would move across the as-of moment.
    Only ISO text is checked, where the time part makes a zone unambiguous.
    """
    written = text.dropna()
    written = written[written.str.len() > 10]
    if written.empty:
        return
    tails = written.str[-6:].str.strip()
    zoned_tails = {tail for tail in tails.unique() if _ZONE_SUFFIX.search(tail)}
    zoned = tails.isin(zoned_tails)
    n_zoned = int(zoned.sum())
    if 0 < n_zoned < len(zoned):
        example = written[~zoned].iloc[0].strip()
        logger.warning(
            "%s.%s: %d timestamp(s) carry a timezone and %d do not (e.g. %r); those without "
            "are read as UTC. If they are local times, write every value with its offset.",
            table,
            column,
            n_zoned,
            len(zoned) - n_zoned,
            example,
        )


#: A month's name in English, or in German where it starts otherwise (Jänner, März, Mai, Okt.).
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|jän|mär|maerz|mai|okt|dez)[a-z]*\.?"
_DATE_TEXT = re.compile(
    r"^\s*(?:[a-z]{3,9},?\s+)?(?:"
    r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}"  # 2024-03-05, 05/03/2024
    rf"|{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}"  # Mar 5, 2024
    rf"|\d{{1,2}}(?:st|nd|rd|th)?[\s-]+{_MONTH}[\s,-]+\d{{2,4}}"  # 5 March 2024, 05-Mar-24
    rf"|\d{{1,2}}\.\s*{_MONTH}\s*\d{{4}}"  # 17. Mar 2025, 17. März 2025
    r"|\d{4}[-/](?:0?[1-9]|1[0-2])(?=\s*$)"  # a month: 2024-03
    rf"|{_MONTH}[\s,-]+\d{{4}}(?=\s*$)"  # March 2024
    r")(?:[T\s,]|$)",
    re.IGNORECASE,
)


#: German month names as the English abbreviation that pandas reads, for the check that the
#: values :data:`_DATE_TEXT` takes for dates parse as dates (``17. März 2025``).
_GERMAN_MONTHS = re.compile(
    r"\b(?:(?P<Jan>jänner|januar)|(?P<Feb>februar)|(?P<Mar>märz|maerz|mär)|(?P<May>mai)"
    r"|(?P<Jun>juni)|(?P<Jul>juli)|(?P<Oct>oktober|okt)|(?P<Dec>dezember|dez))\b",
    re.IGNORECASE,
)


def _in_english(text: str) -> str:
    """``text`` with German month names as English abbreviations (``6. Juli 2025`` as
    ``6. Jul 2025``), which pandas parses; other text as it is."""
    return _GERMAN_MONTHS.sub(lambda m: str(m.lastgroup), text)


def is_text_timestamps(distinct: pd.Series) -> bool:
    """Whether (nearly) all distinct values are dates written as text (a CSV's ``str``): such
    a column is a moment, not a property of the lead, and a later one would leak. Month names
    count in English and German (``17-Mar-2025``, ``Mar 17, 2025``, ``17. März 2025``): a
    date the check misses is kept as a category, and a later one leaks all the same."""
    text = distinct.astype("str")
    if text.empty:
        return False
    dated = text[text.str.contains(_DATE_TEXT, regex=True)]
    if len(dated) < 0.95 * len(text):
        return False
    sample = dated.iloc[:10_000].map(_in_english)
    parsed = pd.to_datetime(sample, errors="coerce", utc=True, format="mixed")
    return bool(parsed.notna().sum() >= 0.95 * len(sample))


def utc_now() -> pd.Timestamp:
    """The current time as the package keeps time: UTC without timezone."""
    return pd.Timestamp.now(tz="UTC").tz_localize(None)


def future_cutoff(now: pd.Timestamp) -> pd.Timestamp:
    """Timestamps after this moment are in the future: a day after ``now``, since local
    times written without a timezone are read as UTC and run up to 14 hours ahead of it."""
    return now + pd.Timedelta(days=1)


#: A latest timestamp more than this many days after the rest of the data is named: the
#: default extract moment was taken from it.
EXTRACT_GAP_DAYS = 30


def tail_rows(rows: int) -> int:
    """How many of the latest rows :func:`extract_moment` sets aside before it compares: 0.1%
    of all rows, at least one."""
    return max(1, rows // 1000)


@dataclass(frozen=True)
class FutureRows:
    """The rows of one timestamp column after :func:`future_cutoff`: how many, and the latest
    of them and its lead, as both future-row messages name them (:func:`future_rows_said`)."""

    table: str
    column: str
    count: int
    newest: pd.Timestamp
    lead: str


def future_rows_said(found: Sequence[FutureRows], now: pd.Timestamp) -> str:
    """The one sentence that names timestamps in the future, whether the extract moment is
    taken from the data (:func:`extract_moment`) or declared (:func:`hold_extract_moment`):
    the first column that has any, and how many the other columns have."""
    first, *others = found
    said = (
        f"{first.table}.{first.column}: {first.count:,} timestamp(s) after the current time "
        f"({now:%Y-%m-%d %H:%M} UTC), e.g. {pd.Timestamp(first.newest):%Y-%m-%d} for lead "
        f"{first.lead!r}"
    )
    if others:
        said += ", and " + ", ".join(f"{f.count:,} in {f.table}.{f.column}" for f in others)
    return said


@dataclass(frozen=True)
class TimestampSummary:
    """What :func:`extract_moment` needs of one timestamp column, so that a reader of slices
    can compute it in a database and the whole loader in pandas.

    ``latest`` holds the column's latest rows, newest first (``moment``, ``lead_id``), at
    least ``tail_rows(all rows) + 1`` of them where the column has that many; ``future`` is
    the number of rows after :func:`future_cutoff`.
    """

    table: str
    column: str
    rows: int
    future: int
    latest: pd.DataFrame


def timestamp_summary(
    frame: pd.DataFrame, table: str, column: str, *, now: pd.Timestamp, keep: int
) -> TimestampSummary:
    """:class:`TimestampSummary` of a validated table's timestamp ``column``."""
    moments = frame[column]
    top = moments.nlargest(keep, keep="first") if len(moments) else moments
    latest = pd.DataFrame(
        {"moment": top.to_numpy(), "lead_id": frame["lead_id"].to_numpy()[top.index]}
    )
    future = int((moments > future_cutoff(now)).sum())
    return TimestampSummary(table, column, len(frame), future, latest)


def extract_moment(summaries: Sequence[TimestampSummary], *, now: pd.Timestamp) -> pd.Timestamp:
    """The default ``observed_until``: the latest timestamp of the data, checked.

    A timestamp after ``now`` (more than a day: :func:`future_cutoff`) is an error: a typo
    (2062 for 2026) would become the extract moment, every as-of date's label window would
    look complete and no lead would be censored. The error offers a manifest's
    ``observed_until`` only where that would let the data through: no more than the newest
    0.1% of rows (:func:`tail_rows`), which a declared moment names in a warning
    (:func:`hold_extract_moment`); more are refused whatever the manifest says. A latest
    timestamp more than :data:`EXTRACT_GAP_DAYS` days after the latest of the other rows,
    once the newest 0.1% (at least one row) are set aside, is a warning naming it: a real
    extract ends where its rows are dense, and a stray date on its own would move the
    extract moment, and label windows that were never observed would count as observed.
    """
    rows = sum(s.rows for s in summaries)
    future = [
        FutureRows(
            s.table, s.column, s.future, s.latest["moment"].iloc[0], s.latest["lead_id"].iloc[0]
        )
        for s in summaries
        if s.future
    ]
    if future:
        stray = sum(f.count for f in future) <= tail_rows(rows)
        raise DataError(
            future_rows_said(future, now),
            "Correct them (a typo such as 2062 for 2026) or drop those rows: taken from the "
            "data, the extract moment would move to that date"
            + (
                ". If they are stray typos, give the moment of the extract as observed_until "
                "in the folder's manifest.json instead: with a declared moment, so few are "
                "named in a warning."
                if stray
                else ", and a manifest's observed_until does not excuse so many."
            ),
        )
    frames = [s.latest.assign(where=f"{s.table}.{s.column}") for s in summaries if len(s.latest)]
    merged = pd.concat(frames, ignore_index=True).sort_values(
        "moment", ascending=False, kind="stable"
    )
    latest = merged.iloc[0]
    skip = tail_rows(sum(s.rows for s in summaries))
    if len(merged) > skip:
        rest = pd.Timestamp(merged["moment"].iloc[skip])
        gap = pd.Timestamp(latest["moment"]) - rest
        if gap > pd.Timedelta(days=EXTRACT_GAP_DAYS):
            logger.warning(
                "observed_until (the extract moment) was taken from the latest timestamp, "
                "%s %s of lead %r, which is %d days after the rest of the data (latest once "
                "the newest %s row(s) are set aside: %s); if it is a typo, correct it, or give "
                "observed_until in the folder's manifest.json: label windows up to it count as "
                "observed",
                latest["where"],
                f"{pd.Timestamp(latest['moment']):%Y-%m-%d %H:%M}",
                latest["lead_id"],
                gap.days,
                f"{skip:,}",
                f"{rest:%Y-%m-%d %H:%M}",
            )
    return pd.Timestamp(latest["moment"])


def parse_observed_until(value: pd.Timestamp | str, source: str = "observed_until") -> pd.Timestamp:
    """The given extract moment, or a one-line error naming ``source`` instead of pandas'
    parser traceback (an argument, or a manifest's entry)."""
    try:
        until = pd.Timestamp(value)
    except (ValueError, TypeError):
        until = pd.NaT
    if pd.isna(until):
        raise DataError(
            f"{source} {value!r} is not a date or timestamp",
            "Give the moment of the extract as an ISO timestamp such as 2024-06-30T00:00:00.",
        )
    return until


#: The one key of a data folder's ``manifest.json`` that leadscore reads.
MANIFEST_KEY = "observed_until"

#: The keys ``leadscore synth`` writes beside it (its parameters and counts), read by nothing
#: else; any other key is an error, so that a misspelt ``observed_until`` is not ignored.
SYNTH_MANIFEST_KEYS = (
    "generator",
    "version",
    "seed",
    "params",
    "format",
    "counts",
    "calibration",
    "truth",
    "files",
)

#: A declared extract moment may precede the data's rows by this much without an error or a
#: warning: local times written without a timezone are read as UTC and run up to 14 hours
#: ahead of it, and a moment written with a time but meant as the day (``2026-06-30T00:00``)
#: for an export that ran through that day. A day written alone needs none of it: the
#: manifest's day is read as its end (:func:`manifest_observed_until`). Rows inside the
#: slack are after the moment scored at by default: their leads are scored as open.
EXTRACT_SLACK = pd.Timedelta(days=1)


def manifest_observed_until(
    folder: str | os.PathLike[str], *, now: pd.Timestamp | None = None
) -> str | None:
    """The ``observed_until`` of ``folder``'s ``manifest.json``, checked to be a date, or
    ``None`` where the folder has no manifest or the manifest no such key.

    A moment is returned as written. A day written alone (``"2026-06-30"``) is the end of
    that day (``2026-06-30T23:59:59.999999``): a manifest that names the day of the export
    means an export that ran through it, and read as its midnight it made score's default
    as-of the start of the day, so a lead won that day was scored as open, and the day's
    leads and activity were left out (:data:`EXTRACT_SLACK` let those rows pass without a
    word). Read here, once, every reader of the folder takes the same moment: the label
    windows of ``train``, the default as-of of ``score`` and ``report``, and the check
    against the data's rows (:func:`check_manifest_moment`). A moment given in Python
    (``load_closed_loop(..., observed_until=...)``) is taken as given: a caller who passes
    a day there means its midnight, as ``pd.Timestamp`` reads it.

    The manifest must be a JSON object of known keys (:data:`MANIFEST_KEY` and the
    :data:`SYNTH_MANIFEST_KEYS` that ``leadscore synth`` writes): an unknown key such as
    ``extract`` is an error naming the known ones, since the moment it meant to give would
    otherwise be replaced by the latest timestamp of the data without a word.

    A moment after the current time (``now``, default: the current time, UTC), more than
    :func:`future_cutoff` allows, is an error: no extract was taken in the future, and every
    label window up to it would count as complete (a back-test's runs as judged, its leads
    as lost). A day written alone is held by its start, since a local day may begin up to 14
    hours before UTC's.
    """
    manifest = Path(folder) / "manifest.json"
    if not manifest.exists():
        return None
    try:
        content = json.loads(manifest.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{manifest} is not a JSON object", "Fix or remove the file.") from err
    if not isinstance(content, dict):
        raise DataError(f"{manifest} is not a JSON object", "Fix or remove the file.")
    known = (MANIFEST_KEY, *SYNTH_MANIFEST_KEYS)
    unknown = [str(key) for key in content if key not in known]
    misspelt = [k for k in unknown if difflib.get_close_matches(k, [MANIFEST_KEY], n=1)]
    if misspelt:  # the moment it meant to give would silently come from the data instead
        raise DataError(
            f"{manifest}: unknown key {misspelt[0]!r} (did you mean {MANIFEST_KEY!r}?)",
            'Give the moment of the extract as {"observed_until": "2026-06-30T00:00:00"}.',
        )
    if unknown:  # a team's own notes (source, exported_by) are theirs to keep
        logger.warning(
            "%s: key(s) %s are not read; leadscore reads %r (the moment of the extract)",
            manifest,
            ", ".join(map(repr, unknown)),
            MANIFEST_KEY,
        )
    value = content.get(MANIFEST_KEY)
    if value is None:
        return None
    written = str(value)
    moment = parse_observed_until(written, f"{manifest}: {MANIFEST_KEY}")
    now = now if now is not None else utc_now()
    if naive_utc(moment) > future_cutoff(now):
        raise DataError(
            f"{manifest}: {MANIFEST_KEY} {written!r} is in the future (it is "
            f"{now:%Y-%m-%d %H:%M} UTC now)",
            "Give the moment the extract was taken, no later than now, or remove "
            f"{MANIFEST_KEY} to take the latest timestamp of the data.",
        )
    if _is_day(written, moment):
        return (moment + DAY_END).isoformat()
    return written


#: What a day written alone covers: from its midnight up to this much later, the last
#: microsecond of the day (timestamps are held to the microsecond).
DAY_END = pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)


def _is_day(written: str, moment: pd.Timestamp) -> bool:
    """``written`` names a day without a time of day (``2026-06-30``, ``20260630``): no
    ``:`` and it reads as midnight, so ``2026-06-30T00:00`` stays the midnight it says."""
    return ":" not in written and moment == moment.normalize()


def naive_utc(moment: pd.Timestamp) -> pd.Timestamp:
    """``moment`` in UTC without a timezone, as the data's timestamps are held (a naive one
    is taken as UTC already): a manifest may write its moment with an offset."""
    return moment.tz_convert("UTC").tz_localize(None) if moment.tzinfo is not None else moment


@dataclass(frozen=True)
class LateRows:
    """The rows of one timestamp column after a declared extract moment: those more than
    :data:`EXTRACT_SLACK` after it and not in the future (``count``, the ``latest`` of them
    and its ``lead``; ``None`` when there are none), and those in the future, after
    :func:`future_cutoff` (``future``, the ``newest`` of them and its ``newest_lead``), so
    that the whole loader can count them in pandas and the reader of slices in DuckDB, and
    both judge them alike (:func:`hold_extract_moment`)."""

    table: str
    column: str
    count: int = 0
    latest: pd.Timestamp | None = None
    lead: str | None = None
    future: int = 0
    newest: pd.Timestamp | None = None
    newest_lead: str | None = None

    @classmethod
    def of(
        cls,
        frame: pd.DataFrame | None,
        table: str,
        column: str,
        until: pd.Timestamp,
        cutoff: pd.Timestamp,
    ) -> LateRows:
        """The late and the future rows of ``frame[column]`` (validated: naive UTC),
        ``cutoff`` being the start of the future (:func:`future_cutoff`)."""
        if frame is None or frame.empty:
            return cls(table, column)
        moments = frame[column]
        late = (moments > until + EXTRACT_SLACK) & (moments <= cutoff)
        future = moments > cutoff

        def latest_of(rows: pd.Series) -> tuple[int, pd.Timestamp | None, str | None]:
            if not rows.any():
                return 0, None, None
            label = moments[rows].idxmax()
            return int(rows.sum()), pd.Timestamp(moments[label]), str(frame.loc[label, "lead_id"])

        return cls(table, column, *latest_of(late), *latest_of(future))


def hold_extract_moment(
    until: pd.Timestamp,
    source: str,
    late: Sequence[LateRows],
    rows: int,
    *,
    now: pd.Timestamp | None = None,
) -> None:
    """Judge the rows found after ``until``, declared by ``source``, out of ``rows`` rows in
    all (leads, activities and outcomes), ``now`` being the current time the future rows were
    counted against (default: the current time, UTC): the rows in the future first, then
    those after ``until``; of each, more than the newest 0.1% (:func:`tail_rows`) are an
    error, fewer a warning; see :func:`check_extract_moment_holds`."""
    _hold_future_rows(late, rows, now if now is not None else utc_now())
    after = sum(found.count for found in late)
    if not after:
        return
    # of equal moments the first table in order is named (max keeps the first)
    found = [(f.latest, f) for f in late if f.latest is not None]
    moment, latest = max(found, key=lambda pair: pair[0])
    said = (
        f"{source} {until:%Y-%m-%d %H:%M} is before {after:,} row(s) of the data (the latest: "
        f"{latest.table}.{latest.column} {moment:%Y-%m-%d %H:%M} for lead {latest.lead!r}); "
        "an extract holds nothing after the moment it was taken"
    )
    fix = (
        f"Set observed_until to the moment the extract was taken (no earlier than "
        f"{moment:%Y-%m-%d %H:%M}), or remove it from manifest.json to take the latest "
        "timestamp of the data."
    )
    if after > tail_rows(rows):
        raise DataError(said, fix)
    logger.warning(
        "%s; if they are typos, correct them: they count as after every as-of date. %s",
        said,
        fix,
    )


def _hold_future_rows(late: Sequence[LateRows], rows: int, now: pd.Timestamp) -> None:
    """The rows after the current time of data whose extract moment is declared: typos
    (2062 for 2026) whichever moment is declared, judged as the late rows are. A manifest
    had switched this check off: 20% of a log dated 2062 validated, and score dropped it
    without a word. More than the newest 0.1% of all rows are an error (in the words of
    :func:`extract_moment`), fewer a warning, since a manifest is the documented way around
    a stray typo."""
    found = [
        FutureRows(f.table, f.column, f.future, f.newest, str(f.newest_lead))
        for f in late
        if f.future and f.newest is not None
    ]
    if not found:
        return
    said = future_rows_said(found, now)
    if sum(f.count for f in found) > tail_rows(rows):
        raise DataError(
            said,
            "Correct them (a typo such as 2062 for 2026) or drop those rows: a manifest's "
            "observed_until does not excuse rows after the current time.",
        )
    logger.warning(
        "%s; if they are typos, correct them: they count as after every as-of date "
        "(a lead created then is never open, an outcome closed then never in).",
        said,
    )


def check_extract_moment_holds(
    data: ClosedLoopData, source: str, *, now: pd.Timestamp | None = None
) -> None:
    """Hold ``data.observed_until``, declared by ``source`` (a manifest's entry), against
    the data's own timestamps: an extract holds nothing after the moment it was taken, nor
    after the moment it is read.

    Rows more than :data:`EXTRACT_SLACK` after it (leads created, activities, outcomes
    closed) say the declared moment is wrong: label windows it counts as complete were not,
    and the activity after it would be read as if it had never happened. More such rows than
    the newest 0.1% of all rows (:func:`tail_rows`, the stray dates the extract-moment check
    sets aside too) are an error naming both moments and the fix; fewer are a warning naming
    them, since a manifest is the documented way around a stray typo. Rows after the current
    time (``now``, default: the current time, UTC; :func:`future_cutoff`) are typos whichever
    moment is declared: counted apart and judged alike (more than 0.1% an error in the
    words of :func:`extract_moment`, fewer a warning), before the late rows.
    """
    now = now if now is not None else utc_now()
    until = data.observed_until
    cutoff = future_cutoff(now)
    tables = (
        ("leads", "created_at", data.leads),
        ("activities", "occurred_at", data.activities),
        ("outcomes", "closed_at", data.outcomes),
    )
    late = [LateRows.of(frame, table, column, until, cutoff) for table, column, frame in tables]
    rows = sum(0 if frame is None else len(frame) for _, _, frame in tables)
    hold_extract_moment(until, source, late, rows, now=now)


def manifest_source(folder: str | os.PathLike[str]) -> str:
    """How a manifest's moment is named in :func:`hold_extract_moment`'s messages."""
    return f"{Path(folder) / 'manifest.json'}: {MANIFEST_KEY}"


def check_manifest_moment(
    folder: str | os.PathLike[str],
    declared: str | None,
    data: ClosedLoopData,
    *,
    now: pd.Timestamp | None = None,
) -> None:
    """:func:`check_extract_moment_holds` for data read from ``folder``, when its
    ``observed_until`` is ``declared``, the entry of ``folder``'s ``manifest.json`` as
    :func:`manifest_observed_until` read it (``None``: the manifest gives none, or it was not
    read because the caller gave a moment; a moment the caller gave is the caller's).

    The reader passes the entry it read rather than this function reading the manifest
    again: one read, so the moment checked is the moment the data was read with.
    """
    if declared is None:
        return
    if naive_utc(parse_observed_until(declared)) != data.observed_until:
        return
    check_extract_moment_holds(data, manifest_source(folder), now=now)
