"""Flat lead tables: read a table as its spec says, validate it, type it, label it.

:func:`read_flat_table` is the I/O edge (source, joins); :func:`prepare_flat_dataset` is pure
(a frame and a spec in, a :class:`~leadscore.schema.LabelledDataset` out) so that it can be
tested on three-row frames. :func:`load_dataset` does both.

Columns the spec does not name are features, typed from the data: numeric columns stay
numeric, everything else is categorical. Some columns are left out automatically, each with
its reason recorded in ``LabelledDataset.excluded``: the id, the label, the ordering column
(time itself is not a property of a lead), other dates, columns that hold one value only,
identifiers (text or whole numbers unique per row), free text and other text with a
different value for most of the leads that hold one. A column of e-mail addresses is read as
the kind of each address (corporate, free mail or none) rather than left out as an identifier.

Where ``label.won`` names values, a blank label is an open lead, in training as in scoring, so
that one CRM export serves both; the open rows then tell a column filled in when a lead
closes (given for the closed leads, not the open ones), which stops loading as a leak.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from leadscore.encoding import (
    CURRENCY_SYMBOLS,
    READING_WORDS,
    level_text,
    looks_like_email_addresses,
    parse_numbers,
    read_email_domain_kind,
    read_title_seniority,
)
from leadscore.errors import DataError, SpecError
from leadscore.io import is_sql_url, read_table
from leadscore.leakage import (
    age_trend_note,
    age_trending_columns,
    close_field_columns,
    filled_in_sales_note,
    history_rows,
    leakage_error,
    post_contact_columns,
    warn_post_contact_columns,
    won_later_columns,
    written_at_close_error,
)
from leadscore.schema import (
    SPACED_IDS_FIX,
    UNKNOWN_ID_SAMPLE,
    Feature,
    FeatureKind,
    LabelledDataset,
    closest_names,
    duplicate_ids_text,
    outcome_reading,
    rows_text,
    space_twins_text,
    spaced_ids,
    spaced_ids_note,
    to_lead_ids,
    value_listing,
)
from leadscore.specs import DatasetSpec, LabelSpec, label_key, load_spec
from leadscore.timestamps import (
    future_cutoff,
    is_text_timestamps,
    to_utc_naive,
    utc_now,
)

logger = logging.getLogger(__name__)


def read_flat_table(spec: DatasetSpec) -> pd.DataFrame:
    """Read the spec's source and left-join the columns named in its ``join`` entries.

    Every CSV column is read as text and typed by :func:`prepare_flat_dataset`, as a text
    column of Parquet or a database is: the same table types the same whatever its file
    (pandas' own guess would read ``00731`` as 731 and ``TRUE`` as a boolean). Ids keep their
    zeros and still join back to the CRM.
    """
    frame = read_table(
        spec.resolve(spec.source),
        spec.table,
        query=spec.query,
        text_columns=(spec.id,),
        strings=True,
    )
    frame = join_tables(frame, spec, read_joined_tables(spec))
    return frame


def read_joined_tables(spec: DatasetSpec) -> list[pd.DataFrame]:
    """The spec's ``join`` tables, each as the lead id (text, named as in the lead table) and
    the columns taken from it, one row per lead. Read once, also by a scorer that joins them
    to every slice of the leads it scores."""
    tables = []
    for join in spec.join:
        other = read_table(
            spec.resolve(join.source), join.table, text_columns=(join.id,), strings=True
        )
        _require(other, [join.id, *join.columns], f"joined table {join.source}")
        other = other[[join.id, *join.columns]].rename(columns={join.id: spec.id})
        other[spec.id] = to_lead_ids(other[spec.id], join.source, join.id)
        if other[spec.id].duplicated().any():
            dup = other.loc[other[spec.id].duplicated(), spec.id].iloc[0]
            raise DataError(
                f"joined table {join.source}: {join.id} {dup!r} appears more than once",
                "Keep one row per lead in a joined table.",
            )
        tables.append(other)
    return tables


def join_tables(
    frame: pd.DataFrame,
    spec: DatasetSpec,
    tables: list[pd.DataFrame],
    *,
    scoring: bool = False,
) -> pd.DataFrame:
    """``frame`` with the columns of the joined ``tables`` (from :func:`read_joined_tables`).

    In training a join column the lead table already holds is a spec error, and a join that
    matches no lead is a data error: ids written differently (``000123`` against ``123``)
    would otherwise leave the columns empty and the model silently without them. A scorer
    (``scoring``) joins only the columns its input lacks (current leads may come with them)
    and accepts new leads that a joined table does not know yet. In training, joined ids that
    differ from a lead's only by spaces around them are named, in the error or in a warning.
    """
    if not tables:
        return frame
    _require(frame, [spec.id], "the lead table")
    frame = frame.assign(**{spec.id: to_lead_ids(frame[spec.id], spec.name, spec.id)})
    for join, other in zip(spec.join, tables, strict=True):
        present = [c for c in join.columns if c in frame.columns]
        if present and not scoring:
            raise SpecError(
                f"join column {present[0]!r} already exists in the lead table",
                "Join only columns the lead table does not have.",
            )
        wanted = [c for c in join.columns if c not in present]
        if not wanted:
            continue
        matched = frame[spec.id].isin(other[spec.id])
        spaced = [] if scoring else _spaced_join_ids(other[spec.id], frame[spec.id])
        if not scoring and len(frame) and not matched.any():
            problem = (
                f"joined table {join.source}: none of its {len(other):,} {join.id} values is "
                f"a lead id of the lead table (e.g. {other[spec.id].iloc[0]!r} against "
                f"{frame[spec.id].iloc[0]!r})"
            )
            if spaced:
                raise DataError(f"{problem}; {spaced_ids_note(spaced)}", SPACED_IDS_FIX)
            raise DataError(
                problem,
                "Write the ids the same way in both tables (as text, with the same zeros).",
            )
        if spaced:  # the rows of those leads would join nothing, in silence
            logger.warning(
                "joined table %s: %s; their columns stay empty. %s",
                join.source,
                spaced_ids_note(spaced, of_those=False),
                SPACED_IDS_FIX,
            )
        logger.info(
            "join %s: %d of %d lead(s) matched", join.source, int(matched.sum()), len(frame)
        )
        frame = frame.merge(other[[spec.id, *wanted]], how="left", on=spec.id, validate="m:1")
    return frame


def _spaced_join_ids(joined: pd.Series, leads: pd.Series) -> list[tuple[str, str]]:
    """The joined ids that match no lead but would once the spaces around them are stripped
    (:func:`~leadscore.schema.spaced_ids`). Training only: a scorer's chunk leaves most of a
    joined table unmatched (the other chunks' leads), which says nothing."""
    unmatched = joined[~joined.isin(leads)]
    return spaced_ids(unmatched.iloc[:UNKNOWN_ID_SAMPLE], leads)


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    for column in columns:
        if column not in frame.columns:
            raise DataError(
                f"{what} has no column {column!r}{closest_names(column, frame.columns)} "
                f"(have: {', '.join(map(str, frame.columns))})",
                "Fix the column name in the spec or add the column to the data.",
            )


def mark_missing(
    frame: pd.DataFrame, tokens: list[str], *, as_written: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Replace blank text and the spec's "not answered" tokens (case-insensitive, trimmed) by
    missing, and trim the spaces around every other text value, except in the columns
    ``as_written`` (the id).

    A CSV reads an empty cell as missing, while Parquet and databases hand over ``""``, and a
    label or feature must not depend on which one the table came from. Training and scoring
    both read text through here, so ``'Pro '`` at scoring is the level ``Pro`` it was in
    training, not a category never seen (the event form trims its categories too); case is
    kept, as in the event form.
    """
    lowered = {"", *(t.strip().lower() for t in tokens)}
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if isinstance(values.dtype, pd.CategoricalDtype):
            continue
        if ptypes.is_string_dtype(values) or ptypes.is_object_dtype(values):
            text = values.astype("string").str.strip()
            blank = text.str.lower().isin(lowered).fillna(False).to_numpy(dtype=bool)
            if column not in as_written:
                values = _trimmed(values)
            out[column] = values.mask(blank)
    return out


def _trimmed(values: pd.Series) -> pd.Series:
    """Text values without surrounding spaces; values that are no text stay as they are.
    Worked on the distinct values: a column of categories holds few."""
    codes, distinct = pd.factorize(values, use_na_sentinel=True)
    uniques = list(distinct)  # once: an Arrow array hands out a new str on every pass
    texts = [u.strip() if isinstance(u, str) else u for u in uniques]
    if all(t is u for t, u in zip(texts, uniques, strict=True)):
        return values
    table = np.array([*texts, None], dtype=object)
    trimmed = pd.Series(table[codes], index=values.index)
    return trimmed.astype(values.dtype) if ptypes.is_string_dtype(values.dtype) else trimmed


def _label_matches(values: pd.Series, wanted: list[object]) -> pd.Series:
    """Rows whose label is one of the declared values, compared by :func:`label_key` on the
    distinct values only (a label column holds a handful; the scorer checks every row). A
    declared ``""`` matches a blank label (empty, or a ``missing_values`` token)."""
    wanted_keys = {label_key(v) for v in wanted}
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    hits = np.array(
        [label_key(u) in wanted_keys for u in uniques] + ["" in wanted_keys], dtype=bool
    )
    return pd.Series(hits[codes], index=values.index)


def _blank_labels(values: pd.Series) -> pd.Series:
    """Rows whose label is blank: missing, empty or only spaces."""
    return values.isna() | (values.astype("string").str.strip() == "").fillna(False)


def closed_rows(
    values: pd.Series,
    spec: DatasetSpec,
    *,
    order: pd.Series | None = None,
    extract: pd.Timestamp | None = None,
    as_of: pd.Timestamp | None = None,
) -> pd.Series:
    """Rows of a table to score whose lead is closed (won or lost) at the scoring moment:
    such a lead is not scored.

    A label of values says no more than the outcome now: a blank label is an open lead (a
    CRM leaves the deal stage blank while there is no deal), unless the spec lists ``""``
    under ``label.won`` or ``label.lost``, as training reads it; with ``label.lost``
    declared, a value that is neither won nor lost (``Open``, ``Nurture``) is open too, with
    a line naming such values, unless it reads like an outcome (``Closed-Won``,
    ``Disqualified``), which is the error training gives (:func:`_check_undeclared_open`); a
    value under ``label.open`` always is open. Such a label carries no date, so ``as_of``
    cannot apply: a lead closed after it is closed here too (the snapshot is all there is).

    A won date (``within_days``, which ``won: not_null`` needs) says when: given ``as_of``
    (``score --as-of``, an older moment than the export), a lead is closed only if it was
    won by then, since one won later was open at ``as_of`` and is what a score at that
    moment is for (left out, a back-test of the run counted none of its wins). Without it
    (the run is stamped now) any won date closes its lead. Given the rows' ``order`` (the
    spec's order_by, parsed) and the ``extract`` moment (:func:`scoring_extract`, no later
    than ``as_of``), a lead whose window ended by then without a win is lost, as training
    labels it, and closed too: a lead won after its window ended counts so."""
    label = spec.label
    blank = _blank_labels(values)
    given = ~blank
    if label.within_days is not None:
        won = given if as_of is None else given & _won_by(values, given, spec, as_of)
        timed = order is not None and ptypes.is_datetime64_any_dtype(order)
        if not timed or extract is None:
            return won
        assert order is not None
        until = extract if as_of is None else min(extract, as_of)
        ended = (order + pd.Timedelta(days=label.within_days) <= until).fillna(False)
        return won | ended.to_numpy()
    assert label.won != "not_null"  # LabelSpec refuses it without within_days
    outcome = _label_matches(values, [*label.won, *(label.lost or [])])
    if label.open is not None:
        given &= ~_label_matches(values, list(label.open))
    if label.lost is None:
        closed = given
    else:
        undeclared = given & ~outcome
        if undeclared.any():
            _check_undeclared_open(values[undeclared], label)
        closed = given & outcome
    return closed | (blank & outcome)


def _won_by(
    values: pd.Series, given: pd.Series, spec: DatasetSpec, as_of: pd.Timestamp
) -> pd.Series:
    """Rows whose won date (``values``, given where ``given``) is at or before ``as_of``,
    read as training reads the won dates (a won date that is no date is its error)."""
    rows = given.to_numpy()
    won_at = to_utc_naive(values[rows], _source_name(spec), spec.label.column)
    by = np.zeros(len(values), dtype=bool)
    by[rows] = (won_at <= as_of).to_numpy()
    return pd.Series(by, index=values.index)


def _check_undeclared_open(values: pd.Series, label: LabelSpec) -> None:
    """Judge the label values of leads to score that are neither won, lost nor under
    ``label.open``, which :func:`closed_rows` reads as open (a ``Working`` the spec did not
    list is a lead in play).

    A value that reads like an outcome (:func:`_outcome_like`: ``Closed-Won``,
    ``Disqualified``, ``Closed Lost``, or a declared value spelt with other punctuation) is
    the error training gives for it: scored as open, a customer or a rejected lead would
    reach sales. The others are scored, with one line naming them and their rows, a warning
    where the spec lists its open values (these are not among them), else a log line, the
    documented reading of a spec without ``label.open``. ``values`` are the labels as the
    scorer read them (spaces around them trimmed); the scorer reads a table in chunks, each
    judged on its own."""
    items = _counted(values)
    like = {v for v, _ in items if _outcome_like(v, label) is not None}
    if like:
        distinct = values.astype(object)
        raise _undeclared_values_error(
            distinct[distinct.map(lambda v: _plain(v) in like)], label, scoring=True
        )
    logger.log(
        logging.WARNING if label.open is not None else logging.INFO,
        "label %s: %s lead(s) to score hold a value under neither label.won, label.lost nor "
        "label.open and are scored as open: %s; list the values under label.open to make "
        "this explicit (or under label.won or label.lost where they are closed)",
        label.column,
        f"{sum(n for _, n in items):,}",
        value_listing(items, quote=_quoted, count=_thousands, shown=SHOWN_LABEL_VALUES),
    )


def scoring_extract(
    spec: DatasetSpec, joined: Sequence[pd.DataFrame], as_of: pd.Timestamp
) -> pd.Timestamp | None:
    """The moment up to which a table being scored tells outcomes, for a ``within_days``
    label (``None`` otherwise): the extract, ``label.observed_until`` where the spec sets
    it; else, where the won date comes from a joined table (a closed-deals table), its
    newest won date, as training reads the extract; else the scoring ``as_of`` (a CRM export
    scored as it comes out). Never later than ``as_of``: scored as of an earlier moment
    (``--as-of``), a window that ends between then and the extract had not ended yet, and
    its lead was open. A window that ended by then without a win is a lost lead
    (:func:`closed_rows`)."""
    label = spec.label
    if label.within_days is None:
        return None
    if label.observed_until is not None:
        return min(pd.Timestamp(label.observed_until), as_of)
    for table in joined:
        if label.column in table.columns:
            won_at = to_utc_naive(table[label.column].dropna(), _source_name(spec), label.column)
            if len(won_at):
                return min(_latest_won_date(won_at, label.column), as_of)
    return as_of


def parse_order_column(values: pd.Series, spec: DatasetSpec, table: str | None = None) -> pd.Series:
    """The spec's order_by column of a table being scored, parsed as training parses it.

    ``table`` names that table in errors (the file given as ``score --input``): the spec's
    own source, the default, is not what the user handed over."""
    assert spec.order_by is not None
    return _parse_order(values, spec.order_by, table or _source_name(spec))


def _plain(value: object) -> object:
    """A numpy scalar as the Python value it holds, so messages read ``2`` not ``np.int64(2)``."""
    return value.item() if isinstance(value, np.generic) else value


def _source_name(spec: DatasetSpec) -> str:
    """The spec's table as messages name it: its file (``leads.csv``) or database table, the
    name the user knows, rather than the spec's own name."""
    if spec.table:
        return spec.table
    if spec.query:
        return f"{spec.name} (query)"
    return Path(str(spec.source)).name if not is_sql_url(str(spec.source)) else spec.name


def _parse_order(values: pd.Series, column: str, table: str) -> pd.Series:
    """The order_by column as float64 (a sequence) or timestamps.

    Text holding mostly numbers is a sequence: naming the values that are no number says
    more than "does not parse as a timestamp", and short numbers must not read as years;
    text holding mostly dates and a few plain numbers is an error for the same reason.
    """
    if _is_text(values):
        numbers, bad = parse_numbers(values)
        given = int(numbers.notna().sum() + bad.sum())
        if given and numbers.notna().sum() > given / 2:
            if bad.any():
                examples = ", ".join(repr(_plain(v)) for v in values[bad].unique()[:3])
                raise DataError(
                    f"order_by column {column!r} holds sequence numbers, but "
                    f"{int(bad.sum())} value(s) are not numbers: {examples}",
                    "Correct those values, or drop those rows: every lead needs a sequence number.",
                )
            values = numbers
        elif numbers.notna().any():
            # "1000" among dates would read as the year 1000: the oldest lead, in the fit fold
            plain = values[numbers.notna()]
            examples = ", ".join(repr(_plain(v)) for v in plain.unique()[:3])
            raise DataError(
                f"order_by column {column!r} holds dates, but {len(plain):,} value(s) are "
                f"plain numbers: {examples}",
                "Write those as dates (YYYY-MM-DD), or drop those rows: a number would be read "
                "as a year.",
            )
    if ptypes.is_numeric_dtype(values) and not ptypes.is_bool_dtype(values):
        if values.isna().any():
            raise DataError(
                f"order_by column {column!r} is empty in {int(values.isna().sum())} row(s)",
                "Give every lead a value, or drop those rows.",
            )
        return values.astype("float64")
    try:
        return to_utc_naive(values, table, column)
    except DataError:
        if not _is_text(values):
            raise
        dates = pd.to_datetime(values, errors="coerce", format="mixed")
        if dates.notna().any():
            raise  # dates in more than one format: the timestamp reader's error says which
        # no value is a number or a date ("abc" in a sequence column): asking for ISO dates
        # would send the user the wrong way where order_by holds sequence numbers
        given = values.dropna()
        examples = ", ".join(repr(_plain(v)) for v in given.unique()[:3])
        raise DataError(
            f"{table}: order_by column {column!r} holds {len(given):,} value(s) that are "
            f"neither numbers nor dates: {examples}",
            f"Write {column} as the spec's order_by reads it: the sequence number or the date "
            "(YYYY-MM-DD) each lead had in training.",
        ) from None


def _refuse_future_order(
    order: pd.Series, written: pd.Series, lead_id: pd.Series, spec: DatasetSpec
) -> None:
    """Refuse order_by dates in the future (more than a day after now:
    :func:`~leadscore.timestamps.future_cutoff`), as the event form refuses a lead created
    in the future: a typo (``24/11/2062`` for 2025) would put its lead in the test fold,
    move the test fold's dates and name the MLflow run after 2062. The error names how many,
    the latest of them as read and as written, and its lead."""
    now = utc_now()
    future = order > future_cutoff(now)
    if not future.any():
        return
    latest = order[future].idxmax()
    read = f"{order[latest]:%Y-%m-%d}"
    shown = str(written[latest]).strip()
    as_written = "" if shown.startswith(read) else f" (written {_quoted(shown)})"
    raise DataError(
        f"order_by column {spec.order_by!r} holds {int(future.sum()):,} date(s) after the "
        f"current time ({now:%Y-%m-%d %H:%M} UTC), the latest {read}{as_written} for lead "
        f"{lead_id[latest]!r}",
        "Correct them (a typo such as 2062 for 2026): a lead cannot start in the future, and "
        "its date would move the test fold.",
    )


def _observed(frame: pd.DataFrame, spec: DatasetSpec, order: pd.Series | None) -> pd.Series:
    """Rows inside ``[observed_from, observed_until]`` by their order_by date: outcomes were
    recorded in that span only."""
    label = spec.label
    keep = pd.Series(True, index=frame.index)
    if label.observed_from is None and label.observed_until is None:
        return keep
    if order is None or not ptypes.is_datetime64_any_dtype(order):
        raise SpecError(
            f"label.observed_from/observed_until need dates in order_by, but {spec.order_by!r} "
            "holds numbers",
            "Use a date column as order_by, or drop observed_from and observed_until.",
        )
    if label.observed_from is not None:
        keep &= order >= pd.Timestamp(label.observed_from)
    if label.observed_until is not None:
        keep &= order < pd.Timestamp(label.observed_until) + pd.Timedelta(days=1)
    logger.info("label %s: %d row(s) outside the observed span", label.column, int((~keep).sum()))
    return keep


def _latest_won_date(won_at: pd.Series, column: str) -> pd.Timestamp:
    """The extract date implied by the data: its latest won date. A won date in the future
    is a typo (2204 for 2024) that would move the extract date and end every censoring: the
    newest leads, the test fold, would count as lost."""
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    future = won_at > now
    if future.any():
        raise DataError(
            f"label column {column!r} holds {int(future.sum())} won date(s) in the future, "
            f"e.g. {won_at[future].iloc[0]:%Y-%m-%d}",
            "Correct them, or set label.observed_until to the date of the extract.",
        )
    return won_at.max()


def _moment_text(moment: pd.Timestamp) -> str:
    """A date as messages write it: the day alone where it has no time of day."""
    return f"{moment:%Y-%m-%d}" if moment == moment.normalize() else f"{moment:%Y-%m-%d %H:%M}"


def _warn_won_before(
    won_at: pd.Series,
    order: pd.Series,
    labelled_won: pd.Series,
    lead_id: pd.Series,
    spec: DatasetSpec,
) -> None:
    """Warn about training's wins dated before their lead's own order_by date (olist holds
    one: first contact 2018-03-08, won 2018-03-06).

    The event form refuses an outcome closed before its lead was created; a flat table's
    won date is joined from another system (closed deals) whose clock or data entry may run
    apart from the lead's, so such a lead stays a win, since the sale happened: the warning
    names how many, and one of them with both dates, to check at the source. A warning, not
    an error: the built-in olist spec trains with its one such lead."""
    early = labelled_won & (won_at < order)
    if not early.any():
        return
    first = early.to_numpy().nonzero()[0][0]
    label = spec.label
    logger.warning(
        "label %s: %s lead(s) were won before their %s, e.g. lead %r: %s %s, %s %s; they count "
        "as wins (the sale happened), but check these dates at the source",
        label.column,
        f"{int(early.sum()):,}",
        spec.order_by,
        str(lead_id.iloc[first]),
        spec.order_by,
        _moment_text(order.iloc[first]),
        label.column,
        _moment_text(won_at.iloc[first]),
    )


class _Label(NamedTuple):
    """What :func:`_compute_label` makes of the label column: the 0/1 label, the rows to
    train on (closed, observed, not censored) and the open rows (leads still in play, by a
    value under ``label.open`` or a blank label), which training leaves out and which
    :func:`~leadscore.leakage.close_field_columns` compares with the closed ones."""

    y: pd.Series
    keep: pd.Series
    still_open: pd.Series


def _compute_label(
    frame: pd.DataFrame, spec: DatasetSpec, order: pd.Series | None, written: pd.Series
) -> _Label:
    """The 0/1 label, the rows to keep (observed, not censored, closed) and the open rows.

    ``written`` is the label column as the table wrote it (spaces around values kept), so
    that a message quotes ``'Won '`` as the user will find it, not as it was matched.

    Where ``label.won`` names values, a blank label (empty, or a ``missing_values`` token)
    is an open lead, as ``score --spec`` reads it: a CRM leaves the deal stage blank while
    there is no deal, and one export must serve training and scoring. One log line says how
    many rows were read so, a warning where the spec declares no ``label.open`` (the user
    may not expect open leads at all), with the fix for a table whose blank means lost: list
    ``""`` under ``label.lost``. With ``within_days`` (which ``won: not_null`` needs) a
    blank label is no win, as before.
    """
    label = spec.label
    values = frame[label.column]
    keep = _observed(frame, spec, order)
    none_open = pd.Series(False, index=frame.index)
    if label.within_days is not None:
        assert order is not None  # guaranteed by the spec validator
        if not ptypes.is_datetime64_any_dtype(order):
            raise DataError(
                f"label.within_days needs a time in order_by, but {spec.order_by!r} holds numbers",
                "Use a date column as order_by.",
            )
        won_at = to_utc_naive(values.dropna(), _source_name(spec), label.column)
        won_at = won_at.reindex(frame.index)
        if label.observed_until is not None:
            until = pd.Timestamp(label.observed_until)
        else:
            until = _latest_won_date(won_at, label.column)
        window_end = order + pd.Timedelta(days=label.within_days)
        # a win dated before its lead is still a win: the sale happened (see _warn_won_before)
        won = won_at.notna() & (won_at <= window_end)
        # A window still open at the extract is censored whatever happened in it so far:
        # keeping its early wins and dropping the rest would inflate the newest leads' rate.
        censored = window_end > until
        logger.info("label %s: %d censored", label.column, int((censored & keep).sum()))
        _warn_won_before(won_at, order, won & keep & ~censored, frame[spec.id], spec)
        return _Label(won.astype("int8"), keep & ~censored, none_open)
    assert label.won != "not_null"  # LabelSpec refuses it without within_days
    won = _label_matches(values, list(label.won))
    lost = _label_matches(values, list(label.lost)) if label.lost is not None else none_open.copy()
    listed = (
        _label_matches(values, list(label.open)) & ~(won | lost) & keep
        if label.open is not None
        else none_open
    )
    # a declared "" under label.open counts its blanks as listed: the spec said what they are
    blank = _blank_labels(values) & ~(won | lost | listed) & keep
    _log_open_rows(label, int(listed.sum()), int(blank.sum()))
    still_open = listed | blank
    keep &= ~still_open
    if label.lost is not None:
        other = keep & ~(won | lost)
        if other.any():
            raise _undeclared_values_error(written[other], label)
    _require_both_outcomes(values[keep], won[keep], label, blank=int(blank.sum()))
    if label.lost is None:
        _warn_counted_as_lost(written[keep & ~won], label)
    return _Label(won.astype("int8"), keep, still_open)


#: Share of the newest fifth of the leads still open above which training warns that its
#: newest (test) leads are the quick decisions (:func:`_unripe_newest_note`).
UNRIPE_OPEN_SHARE = 0.2
#: Share of open leads under which a tenth of the leads counts as ripe, for the suggested
#: ``label.observed_until``, or half as much again as the older tenths' usual share, where a
#: CRM parks leads (a nurture status) and keeps some of every period open.
RIPE_OPEN_SHARE = 0.05
#: The suggested ``label.observed_until`` keeps at least this many tenths of the leads: one
#: that would drop more of the history is no fix.
RIPE_MIN_TENTHS = 5


def _unripe_newest_note(
    order: pd.Series, y: pd.Series, keep: pd.Series, still_open: pd.Series, column: str
) -> str | None:
    """A note when many of the newest leads are still open, with the ``observed_until`` that
    leaves them out; ``None`` otherwise.

    A status label (won, lost, open) leaves the open leads out of training. Among the newest
    leads, those already closed are the quick decisions: their conversion differs from what
    the same leads will show once all have closed, and the newest fold, on which the model
    is tested and its cut-offs checked, measures them. Warned when at least
    :data:`UNRIPE_OPEN_SHARE` of the newest fifth (by ``order_by``) is open, and twice the
    share among the older leads (``label.within_days`` censors such leads instead and needs
    no warning). The suggested date ends the span at the newest tenth of the leads in which
    fewer than :data:`RIPE_OPEN_SHARE` are still open, or than half as much again as the
    older eight tenths' median share, if it keeps :data:`RIPE_MIN_TENTHS` tenths."""
    if not ptypes.is_datetime64_any_dtype(order) or not still_open.any():
        return None
    considered = (keep | still_open).to_numpy()
    when = order.to_numpy()[considered]
    is_open = still_open.to_numpy()[considered]
    if len(when) < 100:
        return None
    rank = np.argsort(np.argsort(when, kind="stable"), kind="stable")
    tenth = rank * 10 // len(when)
    newest = tenth >= 8
    share = float(is_open[newest].mean())
    # open leads spread evenly over the years are a CRM's habit, not young leads
    if share < UNRIPE_OPEN_SHARE or share < 2 * float(is_open[~newest].mean()):
        return None
    open_by_tenth = np.array([is_open[tenth == t].mean() for t in range(10)])
    usual = float(np.median(open_by_tenth[:8]))
    ripe = np.flatnonzero(open_by_tenth < max(RIPE_OPEN_SHARE, 1.5 * usual))
    since = pd.Timestamp(when[newest].min())
    won = y.to_numpy()[considered]
    closed_newest = newest & ~is_open
    closed_before = ~newest & ~is_open
    rates = ""
    if closed_newest.sum() >= 30 and closed_before.sum() >= 30:
        rates = (
            f"; those that closed won at {won[closed_newest].mean():.1%}, against "
            f"{won[closed_before].mean():.1%} among older leads"
        )
    fix = "set label.observed_until to a date before which most leads had closed"
    if ripe.size and RIPE_MIN_TENTHS - 1 <= ripe[-1] < 9:
        last_ripe = pd.Timestamp(when[tenth == ripe[-1]].max()).normalize()
        fix = (
            f"set label.observed_until: {last_ripe:%Y-%m-%d} (of the tenth of the leads "
            f"just before it, {open_by_tenth[ripe[-1]]:.0%} are open, against "
            f"{usual:.0%} of the older ones)"
        )
    return (
        f"label {column}: {100 * share:.0f}% of the newest fifth of the leads (from "
        f"{since:%Y-%m-%d} on) are still open and left out of training{rates}. The closed ones "
        "are the quick decisions, and the newest fold tests the model and its cut-offs on "
        f"them. To train and test on leads that had time to close, {fix}; the open leads are "
        "scored all the same"
    )


def _log_open_rows(label: LabelSpec, listed: int, blank: int) -> None:
    """One line: how many open leads training leaves out, and how many of them for a blank
    label (see :func:`_compute_label`). A warning where the spec declares no open values, or
    where blank labels outnumber the declared ones: leads disqualified before any deal often
    keep a blank stage, and read as open they would leave the lost leads out of training
    and reach the SQL queue at scoring."""
    if not blank:
        if label.open is not None:
            logger.info("label %s: %s open lead(s) left out", label.column, f"{listed:,}")
        return
    if label.open is not None and blank > listed:
        logger.warning(
            "label %s: %s row(s) with a blank label read as open leads (no outcome yet), more "
            "than the %s under label.open: left out of training, and score --spec scores "
            'them; if a blank means lost (a lead disqualified before any deal), list "" '
            "under label.lost",
            label.column,
            f"{blank:,}",
            f"{listed:,}",
        )
        return
    if label.open is None:
        logger.warning(
            "label %s: %s row(s) with a blank label read as open leads (no outcome yet): left "
            'out of training, and score --spec scores them; if a blank means lost, list "" '
            "under label.lost",
            label.column,
            f"{blank:,}",
        )
        return
    logger.info(
        "label %s: %s open lead(s) left out: %s under label.open and %s with a blank label "
        "(no outcome yet, read as open)",
        label.column,
        f"{listed + blank:,}",
        f"{listed:,}",
        f"{blank:,}",
    )


#: How many distinct label values a message names before "and N more".
SHOWN_LABEL_VALUES = 5


def _thousands(n: int) -> str:
    """A count in a warning, as the other counts there: ``2,204``."""
    return f"{n:,}"


def _counted(written: pd.Series) -> list[tuple[object, int]]:
    """The distinct values of ``written`` (label values as the table wrote them) with their
    rows, most rows first, ties in the order of their text (a categorical column's unused
    categories are no values)."""
    counts = written.astype(object).value_counts(sort=False, dropna=True)
    items = [(_plain(value), int(n)) for value, n in counts.items()]
    return sorted(items, key=lambda item: (-item[1], str(item[0])))


def _folded(value: object) -> str:
    """A label value without case, spaces or punctuation: ``Closed-Won`` is ``closedwon``."""
    return re.sub(r"[\W_]+", "", str(value).lower())


def _looks_won(value: object, won: list[object]) -> bool:
    """Whether a value the spec does not count as won reads like a spelling of a won value:
    the same once case, spacing and punctuation are folded (``Closed-Won`` for
    ``Closed Won``), or reading as a win (:func:`~leadscore.schema.outcome_reading`: ``Won``,
    not ``Not Won``)."""
    if _folded(value) in {_folded(v) for v in won}:
        return True
    return outcome_reading(value) == "won"


#: Words of a lead status that say the lead was turned down (``Disqualified``, ``DQ``,
#: ``Rejected``, ``Junk``): a loss in a CRM's words besides those that name it lost
#: (:func:`~leadscore.schema.outcome_reading`).
_TURNED_DOWN_WORDS = frozenset(
    {"disqualified", "disqualify", "unqualified", "dq", "dqd", "dq'd", "rejected", "junk"}
)
#: Words that deny the word after them: ``Not Disqualified``, ``Not Closed``.
_DENIALS = frozenset({"not", "no", "non", "never"})


def _words(value: object) -> list[str]:
    return re.findall(r"[a-z0-9']+", str(value).lower())


def _looks_lost(value: object, lost: list[object]) -> bool:
    """The counterpart of :func:`_looks_won`: a spelling of a lost value once case, spacing
    and punctuation are folded (``Closed-Lost`` for ``Closed Lost``), a value reading as a
    loss (``Lost``, ``Closed Lost``), or one saying the lead was turned down
    (``Disqualified``, ``Junk``; not ``Not Disqualified``)."""
    if _folded(value) in {_folded(v) for v in lost if str(v).strip()}:
        return True
    if outcome_reading(value) == "lost":
        return True
    words = _words(value)
    return bool(set(words) & _TURNED_DOWN_WORDS) and not set(words) & _DENIALS


def _looks_closed(value: object) -> bool:
    """Whether a value says the lead is closed, won or lost (``Closed - Converted``,
    ``Closed - Not Converted``, Salesforce's default lead statuses), unless the word before
    ``closed`` denies it (``Not Closed``)."""
    words = _words(value)
    return any(
        word == "closed" and (i == 0 or words[i - 1] not in _DENIALS)
        for i, word in enumerate(words)
    )


def _outcome_like(value: object, label: LabelSpec) -> str | None:
    """What an undeclared label value reads like: ``"won"``, ``"lost"``, ``"closed"`` (a
    closed lead, won or lost: :func:`_looks_closed`), or ``None`` (``Working``, ``Nurture``:
    a lead that may well be in play)."""
    if isinstance(label.won, list) and _looks_won(value, list(label.won)):
        return "won"
    if _looks_lost(value, list(label.lost or [])):
        return "lost"
    return "closed" if _looks_closed(value) else None


#: Two or more spaces in a row: a message's one line collapses them (:class:`DataError`).
_SPACE_RUN = re.compile(r" {2,}")


def _quoted(value: object) -> str:
    """A label value quoted exactly as written, as :func:`repr` does, with each space of a run
    of spaces written ``\\x20``: an error's one line collapses runs of spaces, and
    ``'Closed  Won'`` must not read as the ``'Closed Won'`` the spec already lists."""
    return _SPACE_RUN.sub(lambda run: "\\x20" * len(run.group()), repr(_plain(value)))


def _values_text(values: Sequence[object]) -> str:
    """Declared label values as a message lists them, ``['Closed Won', 'Closed\\x20\\x20Won']``,
    each quoted by :func:`_quoted`."""
    return "[" + ", ".join(_quoted(v) for v in values) + "]"


def _outcome_hints(values: list[object], label: LabelSpec) -> str:
    """The fix's hint for undeclared values that read like an outcome: ``'Closed-Won' reads
    like a win: list it under label.won; 'Disqualified' reads like a loss: list it under
    label.lost``, or ``""`` where none does."""
    where = {
        "won": ("a win", "label.won"),
        "lost": ("a loss", "label.lost"),
        "closed": ("a closed lead", "label.won or label.lost"),
    }
    hints = []
    for kind, (what, key) in where.items():
        like = [v for v in values if _outcome_like(v, label) == kind]
        if not like:
            continue
        named = ", ".join(_quoted(v) for v in like[:SHOWN_LABEL_VALUES])
        if len(like) > SHOWN_LABEL_VALUES:
            named += f" and {len(like) - SHOWN_LABEL_VALUES} more"
        read, them = ("reads", "it") if len(like) == 1 else ("read", "them")
        hints.append(f"{named} {read} like {what}: list {them} under {key}")
    return "; ".join(hints)


def _undeclared_values_error(
    written: pd.Series, label: LabelSpec, *, scoring: bool = False
) -> DataError:
    """The error for closed rows whose label is neither won nor lost (nor open): each value
    as written (:func:`_quoted`) with its own rows, most first, as the event form's outcomes
    error does, and the values that read like a win, a loss or a closed lead named in the
    fix (a typo must not become a loss). ``scoring``: the values are those of leads to score
    that read like an outcome (:func:`closed_rows`), which scored as open would reach sales."""
    items = _counted(written)
    won, lost = _values_text(list(label.won)), _values_text(label.lost or [])
    declared = f"neither won {won} nor lost {lost}"
    column, but = f"label column {label.column!r}", ""
    if scoring and label.open is not None:
        declared = f"neither won {won}, lost {lost} nor open {_values_text(label.open)}"
    if scoring:
        column, but = f"{column} of the leads to score", " like an outcome but"
    if len(items) == 1:
        value, n = items[0]
        reads = f" reads{but}" if scoring else ""
        what = f"{column} holds {_quoted(value)}, which{reads} is {declared} ({rows_text(n)})"
    else:
        total = sum(n for _, n in items)
        listing = value_listing(items, quote=_quoted, shown=SHOWN_LABEL_VALUES)
        read = f" read{but}" if scoring else ""
        what = (
            f"{column} holds {len(items):,} values that{read} are {declared} "
            f"({rows_text(total)}): {listing}"
        )
    if scoring:
        what += "; scored as open leads, closed ones would reach sales"
    hints = _outcome_hints([v for v, _ in items], label)
    return DataError(
        what,
        f"Declare each value under label.won, label.lost or label.open (leads still in play), "
        f"or drop those rows{f' ({hints})' if hints else ''}.",
    )


def _require_both_outcomes(
    values: pd.Series, won: pd.Series, label: LabelSpec, *, blank: int = 0
) -> None:
    """Refuse closed rows that are all won or all lost, naming the values found: a spelling of
    ``label.won`` that matches nothing would otherwise read as "too little history, 0 won".
    Where blank labels were read as open (``blank`` rows) and no row is lost, the fix says
    how to read a blank as lost."""
    if not won.empty and (won.all() or not won.any()):
        which = "lost" if won.all() else "won"
        found = ", ".join(_quoted(v) for v in pd.unique(values)[:5])
        if which == "lost" and label.lost is None:
            declared, check = "every value not under label.won", "label.won"
        else:
            declared = f"label.{which}: {label.lost if which == 'lost' else label.won}"
            check = f"label.{which}"
        fix = f"Check {check} against those values, or give a history with both outcomes."
        if which == "lost" and blank:
            fix += (
                f" {blank:,} row(s) with a blank label were read as open leads: if a blank "
                'means lost, list "" under label.lost.'
            )
        raise DataError(
            f"no closed row of {label.column!r} is {which} ({declared}); "
            f"the closed rows hold {found}",
            fix,
        )


_OTHER_FLAG = {"true": "false", "false": "true"}


def _warn_counted_as_lost(lost: pd.Series, label: LabelSpec) -> None:
    """Without ``label.lost`` every value that is not won counts as lost: name them (as the
    table wrote them), since an ``Open`` or ``Working`` among them is a lead still in play
    that would teach the model it was lost. The other answer of a yes/no label (``0``
    against ``won: [1]``) goes unsaid. Values that read like a win (``Won``, ``Closed-Won``
    against ``won: [Closed Won]``: :func:`_looks_won`) get a warning of their own, since
    each of their rows is a win taught as a loss."""
    if lost.empty:
        return
    items = _counted(lost)
    won_keys = {label_key(v) for v in label.won}
    if len(won_keys) == 1 and {label_key(v) for v, _ in items} == {_OTHER_FLAG.get(won_keys.pop())}:
        return
    listing = value_listing(items, quote=_quoted, count=_thousands, shown=SHOWN_LABEL_VALUES)
    logger.warning(
        "label %s: counted as lost: %s; declare label.lost and label.open to make this explicit",
        label.column,
        listing,
    )
    won_like = [(v, n) for v, n in items if _looks_won(v, list(label.won))]
    if won_like:
        rows = sum(n for _, n in won_like)
        logger.warning(
            "label %s: %s value(s) counted as lost read like a win of label.won %s: %s, so "
            "%s won lead(s) would be taught as lost; list them under label.won if they are "
            "wins, or declare label.lost with them if they are not",
            label.column,
            f"{len(won_like):,}",
            _values_text(list(label.won)),
            value_listing(won_like, quote=_quoted, count=_thousands, shown=SHOWN_LABEL_VALUES),
            f"{rows:,}",
        )


def _is_text(values: pd.Series) -> bool:
    """Text or objects; a categorical dtype is not text: the data typed it already."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return False
    return ptypes.is_string_dtype(values) or ptypes.is_object_dtype(values)


def _is_identifier(non_null: pd.Series, rows: int) -> bool:
    """Unique per row and given for most of the ``rows``: an id is there for every lead, while
    a column filled in for a few leads differs in those few whatever it holds."""
    return len(non_null) > 50 and len(non_null) > rows / 2 and non_null.nunique() == len(non_null)


def _is_whole_number_identifier(numbers: pd.Series) -> bool:
    """Whole numbers unique per row (a phone number, a row number): an identifier, whatever the
    file typed them as. Unique decimals are measurements (revenue, seconds on site), and so are
    whole numbers given for a few leads only (a deal size)."""
    given = numbers.dropna()
    return _is_identifier(given, len(numbers)) and bool((given == np.floor(given)).all())


def _distinct_text(non_null: pd.Series) -> pd.Series:
    return pd.Series(non_null.unique()).astype("string")


def _is_free_text(non_null: pd.Series) -> bool:
    """Most distinct values hold a space inside (notes, descriptions, names), which tokens such
    as ids, e-mail addresses and URLs do not."""
    return bool(_distinct_text(non_null).str.contains(r"\s", regex=True).mean() > 0.5)


def _written_as_amounts(non_null: pd.Series) -> bool:
    """Numbers written with a currency or percent sign: quantities, never an identifier, even
    when each lead has its own (a price in whole dollars)."""
    signs = f"[{re.escape(CURRENCY_SYMBOLS)}%]"
    return bool(_distinct_text(non_null).str.contains(signs, regex=True).any())


def _written_unit(non_null: pd.Series) -> str | None:
    """How most of a number column's values were written: ``percent`` (``44%``), a currency
    symbol (``$24,035``), or ``None`` for plain numbers; reasons then quote a value as it was
    written ("Engagement: 44%"), not as the number it was read as (0.44)."""
    distinct = _distinct_text(non_null)
    for unit in ("%", *CURRENCY_SYMBOLS):
        if distinct.str.contains(unit, regex=False).mean() >= 0.5:
            return "percent" if unit == "%" else unit
    return None


def _number_sentence(label: str, unit: str | None) -> str | None:
    """The reason template of a number column written with ``unit`` (:func:`_written_unit`),
    or holding a time in the spec's ``units`` (``seconds``, ``minutes``), which reads in the
    unit that suits it ("Time on the website: 20 minutes", not "1,225")."""
    if unit is None:
        return None
    shown = label.replace("{", "{{").replace("}", "}}")
    if unit in ("seconds", "minutes"):
        spec = f"duration:{unit}"
    else:
        spec = "percent" if unit == "percent" else f"amount:{unit}"
    return f"{shown}: {{value:{spec}}}"


def _mostly_distinct_reason(non_null: pd.Series, rows: int) -> str | None:
    """Why a text column with a different value for most of the leads that hold one is no
    feature, or ``None`` when its values repeat enough to be categories.

    As categories each level would hold a lead or two, which no split can use and which only
    adds noise; the reason tells an identifier (given for most leads) from free text and from
    a column that is mostly empty, so the user knows whether anything was lost. A table of 50
    rows or fewer is too small to judge; a column listed under ``categorical`` is kept.
    """
    given, distinct = len(non_null), non_null.nunique()
    if rows <= 50 or distinct <= given / 2:
        return None
    if given <= rows / 2:
        kind = "free text, mostly empty" if _is_free_text(non_null) else "mostly empty"
        return (
            f"{kind} ({given:,} of {rows:,} rows have a value) and different in most of "
            "those (too few leads per value to learn from)"
        )
    each = distinct == given
    if _is_free_text(non_null):
        return f"free text (a different text for {'each lead' if each else 'most leads'})"
    if not each:
        return "identifier-like text (a different value for most leads)"
    if given == rows:
        return "unique per row (an identifier)"
    return f"unique per row where given, {given:,} of {rows:,} rows (an identifier)"


#: Amounts :func:`~leadscore.encoding.parse_numbers` leaves as text on purpose, and how to
#: write them so that they read as numbers: with a currency code (``12500 EUR``), with a
#: dot that may group thousands (``€12.500``), or with a decimal comma (``4,3``: a European
#: export saved as a comma-separated file keeps its cells as written).
_CURRENCY_CODES = "USD|EUR|GBP|JPY|CHF|CAD|AUD|NZD|INR|BRL|CNY|SEK|NOK|DKK|PLN|MXN|ZAR|SGD|HKD"
_AMOUNTS_LEFT_AS_TEXT = (
    (
        re.compile(
            rf"[+-]?(?:(?:{_CURRENCY_CODES})\s*[\d.,]*\d|\d[\d.,]*\s*(?:{_CURRENCY_CODES}))"
        ),
        "amounts with a currency code",
        "write them as numbers (12500) or with a symbol ($ € £ ¥)",
    ),
    (
        re.compile(
            rf"[+-]?[{re.escape(CURRENCY_SYMBOLS)}]?\s*[1-9]\d{{0,2}}(?:\.\d{{3}})+"
            rf"\s*[{re.escape(CURRENCY_SYMBOLS)}]?"
        ),
        "amounts whose dot may group thousands",
        "write them as 12500 or 12,500 (a dot marks decimals)",
    ),
    (
        re.compile(
            rf"[+-]?[{re.escape(CURRENCY_SYMBOLS)}]?\s*(?:[1-9]\d{{0,2}}(?:\.\d{{3}})+|\d+),\d{{1,2}}"
            rf"\s*[{re.escape(CURRENCY_SYMBOLS)}%]?"
        ),
        "decimal commas",
        "write them with a dot ({dotted}), or read the file through a DuckDB view that parses "
        "them (source: a .duckdb file holding CREATE VIEW leads AS SELECT * FROM "
        "read_csv('leads.csv', decimal_separator=','), and table: leads)",
    ),
)


class _Unread(NamedTuple):
    """Why a text column of numbers is not read as numbers (:func:`_text_reads_as_numbers`):
    what it holds besides numbers, how to read it as numbers, and whether those are words
    among numbers (``unknown``, a dash) or amounts written in a way left as text on purpose.
    Messages say what then happens to the column: read as categories, or left out."""

    what: str
    fix: str
    words: bool

    @property
    def held(self) -> str:
        """What the column holds, as a sentence says it after "holds"."""
        return self.what if self.words else f"{self.what}, which stay text"

    def as_categories(self) -> str:
        if self.words:
            return (
                f"{self.what}, so the numbers lose their order and a value not seen in "
                f"training scores as missing ({self.fix})"
            )
        return f"{self.what} stay text: {self.fix}"


def _amounts_left_as_text(written: pd.Series) -> _Unread | None:
    """What the text values ``written`` are, and how to fix them, when nearly all of them
    (90%) are amounts of one of :data:`_AMOUNTS_LEFT_AS_TEXT`'s kinds; else ``None``."""
    distinct = pd.Series(written.dropna().astype(str).str.strip().unique())
    if distinct.empty:
        return None
    for pattern, what, fix in _AMOUNTS_LEFT_AS_TEXT:
        matched = distinct[distinct.map(lambda v, p=pattern: p.fullmatch(v) is not None)]
        if len(matched) >= 0.9 * len(distinct):
            example = str(_plain(matched.iloc[0]))
            dotted = example.replace(".", "").replace(",", ".")
            return _Unread(f"{what} ({example!r})", fix.format(dotted=dotted), False)
    return None


#: Cells holding only a dash: how many CRMs and spreadsheets write an empty cell.
_LONE_DASHES = frozenset({"-", "–", "—", "--"})


def _words_fix(words: pd.Series) -> str:
    """How to read a column of numbers with ``words`` among them as numbers: the words under
    ``missing_values``, written as the YAML line to add (the first three), and a lone dash
    named for what it usually is."""
    listed = ", ".join(f'"{_plain(w)}"' for w in words.index[:3])
    if set(map(str, words.index)) <= _LONE_DASHES:
        return (
            "a lone dash is how many CRMs write an empty cell: list it under missing_values "
            f"(missing_values: [{listed}]) to read the column as numbers"
        )
    return (
        f"list the words under missing_values (missing_values: [{listed}]) to read the column "
        "as numbers"
    )


def _text_reads_as_numbers(
    name: str, values: pd.Series, non_null: pd.Series
) -> tuple[pd.Series | None, _Unread | None]:
    """A text column as numbers when every value reads as one (amounts such as ``$1,549`` and
    percentages such as ``43.6%`` included), else ``None``; and, for numbers with a few words
    among them (``unknown``, ``3+``, a dash) or amounts left as text (decimal commas), what
    they are and how to read them as numbers (:class:`_Unread`), for the warning that
    :func:`_type_features` gives once it knows whether the column is read as categories or
    left out.

    Codes written with leading zeros (``007``, postcodes) stay text: the zeros say it is a
    label, not a quantity. Amounts in more than one currency are read as they are, with a
    warning: the symbols are dropped and nothing converts them. Mostly numbers with a few
    words stay categories, which keep every value (``3+`` is a bucket, not noise) but lose
    the order of the numbers, and a count never seen in training scores as missing: the
    warning says so, and that listing the words under ``missing_values`` reads the column
    as numbers.
    """
    if _is_code(non_null):
        return None, None
    parsed, bad = parse_numbers(values)
    if bad.any():
        amounts = _amounts_left_as_text(values[bad])
        if amounts is not None:
            return None, amounts
        if parsed.notna().sum() <= bad.sum():
            return None, None
        words = pd.Series(values[bad]).value_counts()
        shown = ", ".join(f"{_plain(w)!r} ({n:,})" for w, n in words.head(3).items())
        more = f" and {len(words) - 3} more" if len(words) > 3 else ""
        what = f"numbers, except {int(bad.sum()):,} value(s): {shown}{more}"
        return None, _Unread(what, _words_fix(words), True)
    symbols = sorted(
        _distinct_text(non_null)
        .str.extract(f"([{re.escape(CURRENCY_SYMBOLS)}])", expand=False)
        .dropna()
        .unique()
    )
    if len(symbols) > 1:
        logger.warning(
            "column %s: amounts in %s are read as plain numbers, one currency for another; "
            "convert them to one currency first",
            name,
            " and ".join(symbols),
        )
    return parsed, None


def _is_code(non_null: pd.Series) -> bool:
    """Digits written with leading zeros (``007``, postcodes): a label, not a quantity."""
    return bool(non_null.astype("string").str.strip().str.match(r"[+-]?0\d").any())


#: Column names that say a column holds job titles, the whole name (``Job Title``, ``jobtitle``,
#: ``Contact Title``, ``Position``), never a word inside another name (``Last Page Title``,
#: ``Disposition``).
_TITLE_NAME = re.compile(
    r"(?:(?:contact|lead|person)[\W_]*)?(?:job[\W_]*)?(?:title|position|role)", re.IGNORECASE
)
#: Of the titles given, the share that must name a rank for the column to read as seniority:
#: job titles do (manager, director, VP); page or course titles seldom do.
MIN_RANKED_TITLES = 0.1


#: Fewest levels, and most leads per level on average, of a column whose values are too
#: scattered to learn from as categories although they repeat (``_long_tail``).
LONG_TAIL_LEVELS = 20
LONG_TAIL_LEADS_PER_LEVEL = 10


def _long_tail(non_null: pd.Series) -> bool:
    """Whether the values repeat, but too little to learn from as categories: at least
    :data:`LONG_TAIL_LEVELS` levels holding fewer than :data:`LONG_TAIL_LEADS_PER_LEVEL` leads
    each on average. Job titles written by hand are so ("Sr. Director, IT, EMEA"): 43% of
    them distinct in a Salesforce export, which as categories gave the model nothing."""
    distinct = non_null.nunique()
    return distinct >= LONG_TAIL_LEVELS and distinct * LONG_TAIL_LEADS_PER_LEVEL > len(non_null)


def _title_seniority(name: str, values: pd.Series, non_null: pd.Series) -> pd.Series | None:
    """A free-text column named like job titles as the seniority each names
    (:func:`~leadscore.encoding.read_title_seniority`), or ``None`` when its name or values
    do not read as titles. Titles are unique per lead as written, but seniority is a classic
    fit signal that commercial lead scoring reads from them, as the event form does."""
    if not _TITLE_NAME.fullmatch(name.strip()):
        return None
    levels = read_title_seniority(values)
    given = levels[non_null.index].astype("str")
    ranked = ~given.isin(["individual", "unknown"])
    if ranked.mean() < MIN_RANKED_TITLES or given[ranked].nunique() < 2:
        return None
    return levels


def _read_feature(name: str, spec: DatasetSpec, engagement: set[str], read_as: str) -> Feature:
    """A column the model reads another way before encoding it (:attr:`Feature.read_as`):
    e-mail addresses as the kind of their domain (corporate, free mail or none), job titles
    as the seniority they name; classic B2B fit signals, where the raw values are unique per
    lead and say nothing a model can learn. The model reads every value it scores the same
    way (:data:`~leadscore.encoding.VALUE_READINGS`), and the label says how."""
    logger.info("%s: the model reads each value as %s", name, READING_WORDS[read_as])
    label = f"{spec.labels.get(name, name)} ({READING_WORDS[read_as]})"
    quoted = label.replace("{", "{{").replace("}", "}}")
    return Feature(
        name=name,
        group="engagement" if name in engagement else "fit",
        label=label,
        kind="categorical",
        sentence=f"{quoted}: {{value:seniority}}" if read_as == "title_seniority" else None,
        read_as=read_as,
        fact=_fact_of(spec, name),
    )


def _fact_of(spec: DatasetSpec, column: str) -> str | None:
    """The fact the spec's ``facts`` says ``column`` tells about: columns of one fact make one
    reason (:mod:`leadscore.explain`), so that a lead's visits and its time on the website,
    two counts of one behaviour, never speak one for and one against."""
    return next((fact for fact, columns in spec.facts.items() if column in columns), None)


def _type_features(
    frame: pd.DataFrame, spec: DatasetSpec, candidates: list[str]
) -> tuple[pd.DataFrame, list[Feature], dict[str, str]]:
    """Feature columns typed as scoring reads them (:func:`~leadscore.encoding.parse_numbers`,
    :func:`~leadscore.encoding.level_text`): blank text is missing, and a text column whose
    values all read as numbers once the missing tokens are gone is numeric, unless written
    with leading zeros (a code). Left out: whole numbers unique per row (identifiers, however
    the file typed them, unless written as amounts or shares), text with a different value for
    most of the rows that hold one (:func:`_mostly_distinct_reason`), and dates, also written
    as text. A text column of e-mail addresses becomes the kind of each address's domain
    (:func:`_read_feature`), unless declared categorical, and free-text job titles become
    the seniority each names (:func:`_title_seniority`)."""
    columns: dict[str, pd.Series] = {}
    features: list[Feature] = []
    excluded: dict[str, str] = {}
    engagement = set(spec.groups.engagement)
    for name in candidates:
        values = frame[name]  # blank text is missing already (mark_missing)
        non_null = values.dropna()
        if non_null.empty:
            excluded[name] = "empty in every row"
            continue
        if non_null.nunique() == 1:
            excluded[name] = "holds a single value"
            continue
        numeric: pd.Series | None = None
        unread: _Unread | None = None
        if name in spec.numeric or name in spec.units:  # a time is a number
            numeric, bad = parse_numbers(values)
            if bad.any():
                amounts = _amounts_left_as_text(values[bad])
                if amounts is not None:
                    fix = amounts.fix[0].upper() + amounts.fix[1:]
                    raise DataError(
                        f"column {name!r} is declared numeric but holds {amounts.held}", f"{fix}."
                    )
                first = _plain(values[bad].iloc[0])
                raise DataError(
                    f"column {name!r} is declared numeric but holds {first!r}",
                    f'Clean the column, list it under missing_values (missing_values: ["{first}"]) '
                    "if it means not known, or drop the column from numeric.",
                )
        elif name not in spec.categorical and not ptypes.is_bool_dtype(values):
            if ptypes.is_numeric_dtype(values):
                numeric = parse_numbers(values)[0]
            elif _is_text(values):
                numeric, unread = _text_reads_as_numbers(name, values, non_null)
            if (
                numeric is not None
                and _is_whole_number_identifier(numeric)
                and not (_is_text(values) and _written_as_amounts(non_null))
            ):
                excluded[name] = "unique per row (an identifier)"
                continue
        sentence = None
        if numeric is not None:
            columns[name] = numeric
            kind: FeatureKind = "numeric"
            if name in spec.units:
                sentence = _number_sentence(spec.labels.get(name, name), spec.units[name])
            elif _is_text(values):
                sentence = _number_sentence(spec.labels.get(name, name), _written_unit(non_null))
        else:
            if ptypes.is_datetime64_any_dtype(values) or (
                _is_text(values) and is_text_timestamps(pd.Series(non_null.unique()))
            ):
                excluded[name] = "a timestamp (not a property of the lead)"
                continue
            if (
                name not in spec.categorical
                and _is_text(values)
                and looks_like_email_addresses(non_null)
            ):
                kinds = read_email_domain_kind(values)
                if kinds.nunique() == 1:
                    excluded[name] = f"e-mail addresses of one kind only ({kinds.iloc[0]})"
                    continue
                columns[name] = kinds
                features.append(_read_feature(name, spec, engagement, "email_domain_kind"))
                continue
            reason = (
                None if name in spec.categorical else _mostly_distinct_reason(non_null, len(values))
            )
            seniority = (
                _title_seniority(name, values, non_null)
                if name not in spec.categorical and (reason is not None or _long_tail(non_null))
                else None
            )
            if seniority is not None:
                columns[name] = seniority
                features.append(_read_feature(name, spec, engagement, "title_seniority"))
                continue
            if reason is not None:
                excluded[name] = reason
                if unread is not None:  # said as what happens: left out, not categories
                    excluded[name] = f"{reason}; it holds {unread.held}; {unread.fix}"
                    logger.warning(
                        "%r is left out as %s: it holds %s; %s",
                        name,
                        reason,
                        unread.held,
                        unread.fix,
                    )
                continue
            if unread is not None:
                logger.warning("%r is read as categories: %s", name, unread.as_categories())
            columns[name] = level_text(values).astype("category")
            kind = "categorical"
        features.append(
            Feature(
                name=name,
                group="engagement" if name in engagement else "fit",
                label=spec.labels.get(name, name),
                kind=kind,
                sentence=sentence,
                fact=_fact_of(spec, name),
            )
        )
    return pd.DataFrame(columns, index=frame.index), features, excluded


def prepare_flat_dataset(
    frame: pd.DataFrame,
    spec: DatasetSpec,
    *,
    check_close_fields: bool = True,
    allow: Sequence[str] = (),
) -> LabelledDataset:
    """Validate and type a flat lead table into labelled examples, as ``spec`` describes it.

    ``check_close_fields`` stops a table whose open rows lack a feature its closed ones hold
    (:func:`~leadscore.leakage.close_field_columns`): a leak for training; a reader
    that needs the labels only (the back-test) turns it off, since the model it judges is
    already trained, and with it the warnings meant for training (counters kept up to the
    export, newest leads mostly still open). ``allow`` names features vouched for besides the spec's
    ``allow_leakage`` (the training config's ``leakage.allow``): every guard here lets them
    through, as training's own guard does."""
    if len(frame) == 0:
        raise DataError(f"{spec.name}: the table is empty", "Give a table with at least one lead.")
    named = [spec.id, spec.label.column, *([spec.order_by] if spec.order_by else [])]
    named += [*spec.exclude, *spec.categorical, *spec.numeric, *spec.labels]
    named += [*spec.groups.fit, *spec.groups.engagement, *spec.allow_leakage]
    named += [column for columns in spec.facts.values() for column in columns]
    named += list(spec.units)
    _require(frame, list(dict.fromkeys(named)), f"{spec.name}")
    frame = frame.reset_index(drop=True)
    # a label read as categories (Parquet from pandas) is text like any other: blanks and
    # tokens must be missing here as in scoring, and unused categories no values
    if isinstance(frame[spec.label.column].dtype, pd.CategoricalDtype):
        frame[spec.label.column] = frame[spec.label.column].astype(object)
    written_label = frame[spec.label.column]  # as written, for messages that quote values
    frame = mark_missing(frame, spec.missing_values, as_written=(spec.id,))

    lead_id = to_lead_ids(frame[spec.id], spec.name, spec.id)
    duplicated = duplicate_ids_text(lead_id, "id {id} in column " + repr(spec.id))
    if duplicated is not None:
        raise DataError(f"{spec.name}: {duplicated}", "Keep one row per lead.")
    twins = space_twins_text(lead_id)
    if twins is not None:
        raise DataError(
            f"{spec.name}: ids {twins} in column {spec.id!r}",
            "Strip the spaces around ids in the export: each is one lead.",
        )
    order = (
        _parse_order(frame[spec.order_by], spec.order_by, _source_name(spec))
        if spec.order_by
        else None
    )
    if order is not None and ptypes.is_datetime64_any_dtype(order):
        _refuse_future_order(order, frame[spec.order_by], lead_id, spec)
    y, keep, still_open = _compute_label(frame, spec, order, written_label)
    notes: list[str] = []
    if check_close_fields and order is not None and spec.label.within_days is None:
        unripe = _unripe_newest_note(order, y, keep, still_open, spec.label.column)
        if unripe is not None:
            notes.append(unripe)

    reasons: dict[str, str] = {spec.id: "lead id", spec.label.column: "label"}
    if spec.order_by:
        reasons[spec.order_by] = "ordering column (time is not a property of the lead)"
    reasons.update(spec.exclude)
    candidates = [c for c in frame.columns if c not in reasons]
    X, features, auto_excluded = _type_features(frame, spec, candidates)
    reasons.update(auto_excluded)
    if not features:
        raise DataError(
            f"{spec.name}: no feature column is left after exclusions",
            "Keep at least one column that is not the id, label or excluded.",
        )
    allowed = [*spec.allow_leakage, *allow]
    warn_post_contact_columns(
        post_contact_columns([f.name for f in features], allow=allowed),
        "If the sales team fills them in, list them under exclude in the spec, with the "
        "reason; if they are known before contact, list them under allow_leakage to silence "
        "this warning.",
    )

    if check_close_fields and order is not None:
        trending = age_trending_columns(
            X, order, [f.name for f in features if f.kind == "numeric"], allow=allowed
        )
        if trending:
            notes.append(age_trend_note(trending, spec.order_by))
    for note in notes:
        logger.warning("%s", note)

    kept = keep.to_numpy()
    if not kept.any():
        raise DataError(
            f"{spec.name}: no closed lead to learn from: every row is open (label.open, or a "
            "blank label), censored (label.within_days) or outside "
            "label.observed_from/observed_until",
            "Check those label settings against the data.",
        )
    if check_close_fields:
        at_close, in_sales = close_field_columns(X, kept, still_open, allow=allowed)
        if at_close:
            raise written_at_close_error(at_close)
        if in_sales:
            notes.append(filled_in_sales_note(in_sales))
            logger.warning("%s", notes[-1])
    test_from = _parse_test_from(spec, order)
    if check_close_fields and spec.label.within_days is not None and order is not None:
        # a lead won after its window is a 0 with the closed deal's fields: see the guard
        won_later = won_later_columns(
            X,
            ~_blank_labels(frame[spec.label.column]).to_numpy(),
            history_rows(order, kept, test_from),
            allow=allowed,
        )
        if won_later:
            raise leakage_error(won_later)
    dataset = LabelledDataset(
        name=spec.name,
        X=X.reset_index(drop=True),
        y=y.to_numpy(dtype="int8"),
        lead_id=lead_id,
        order=order,
        features=tuple(features),
        excluded=reasons,
        horizon_days=spec.label.within_days,
        test_from=test_from,
        allowed_leakage=tuple(spec.allow_leakage),
        form="flat",
        notes=tuple(notes),
        open_order=None if order is None else order[still_open.to_numpy()].reset_index(drop=True),
        missing_values=tuple(spec.missing_values),
    ).subset(kept)
    logger.info(
        "%s: %d leads (%d won, %.1f%%), %d features, %d columns excluded",
        spec.name,
        len(dataset.y),
        int(dataset.y.sum()),
        100 * dataset.y.mean(),
        len(features),
        len(reasons),
    )
    return dataset


def _parse_test_from(spec: DatasetSpec, order: pd.Series | None) -> object | None:
    """The spec's ``test_from`` as a moment (a date ``order_by``) or a number (a sequence).

    Text is read by the spec's own rule, not in the format the ``order_by`` column was
    written in: the spec refused a day and month that read both ways (``01/09/2025``:
    :func:`~leadscore.timestamps.day_month_readings`) before any data was read, as it refuses
    any ``label.observed_from`` but YYYY-MM-DD, so what is left reads one way only
    (``2025-09-01``, ``15/09/2025``)."""
    if spec.test_from is None or order is None:
        return None
    if ptypes.is_datetime64_any_dtype(order):
        try:
            return pd.Timestamp(spec.test_from)
        except (TypeError, ValueError) as err:
            raise SpecError(
                f"test_from {spec.test_from!r} is not a date",
                "Write test_from as a date such as 2018-04-01.",
            ) from err
    try:
        return float(spec.test_from)  # type: ignore[arg-type]
    except (TypeError, ValueError) as err:
        raise SpecError(
            f"test_from {spec.test_from!r} is not a number like {spec.order_by!r}",
            "Write test_from as a value of the order_by column.",
        ) from err


def load_dataset(
    spec: DatasetSpec | str | os.PathLike[str],
    data_root: Path | None = None,
    *,
    allow: Sequence[str] = (),
) -> LabelledDataset:
    """Load a flat data set from a spec object, a built-in spec name or a spec file path;
    ``allow`` as in :func:`prepare_flat_dataset`."""
    if not isinstance(spec, DatasetSpec):
        spec = load_spec(spec, data_root=data_root)
    frame = read_flat_table(spec)
    return prepare_flat_dataset(frame, spec, allow=allow)
