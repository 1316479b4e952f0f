"""Suspected-leakage guard: features too good to be known before the outcome.

A column written after contact (a sales tag, a quality grade, a closed-deal field) separates won
from lost leads far better than anything known at scoring time. Two symptoms are checked on the
fit fold only, so the test fold stays untouched:

* **univariate ROC-AUC** above a threshold (:data:`AUC_THRESHOLD`). Numeric features are
  ranked as they are, with missing values as their own lowest rank; categorical ones are
  target-encoded out of fold (5 folds, smoothed), so a high-cardinality column such as a
  landing-page id does not look predictive just because it memorises the fit fold. The AUC
  is symmetric: 0.05 is as suspicious as 0.95.
* **non-null for one class only**: a column that is filled in for won leads and empty for lost
  ones (or the reverse), as CRM fields that the sales team completes after a deal are.

Event data holds a lead once per as-of date, labelled by a win within the horizon, which
dilutes a field written at the close (a lead won months after a date is a 0 there): its lead
columns are also checked one row per lead, against how the leads that closed within the fit
fold ended (:class:`ClosedLeadRows`), as the flat form's rows are. There a column filled in
for leads of one outcome only (:func:`one_outcome_fill`) is a suspect too: a lead won after an
as-of date carries the field at that date, labelled 0, so the examples never show it.

A flat table's ``within_days`` label has the same blind spot (a lead won after its window is a
0 with the closed deal's fields), so where it is loaded its columns are held against any won
date over the closed leads before the test fold (:func:`won_later_columns`).

A feature that trips a check stops training unless its name is allowed explicitly
(``allow_leakage`` in the dataset spec or the training config), and the report lists it.

A flat table that holds open leads as well (its spec's ``label.open``, or a blank label)
shows a third symptom, checked where the table is loaded since training sees closed leads
only: a column **given for (nearly) every closed lead and (nearly) no open one** is filled
in when the lead closes (a sales cycle, a close reason), however moderately it separates
won from lost (:func:`close_field_columns`). It stops loading unless allowed in the spec.

A leaky column that is only moderately predictive (a quality grade the sales team sets with
some noise) passes the checks, so column names that say they were written after contact
(:data:`POST_CONTACT_WORDS`) are warned about as well: a warning, since a name is no proof.
So are the extra lead columns of event data that look like values taken at the export rather
than at the as-of date (a running count, a score, a last touch: :func:`snapshot_lead_columns`),
by their name or, for a numeric column, by rising with the lead's activity after the date.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from leadscore.errors import DataError
from leadscore.names import name_words, singular

if TYPE_CHECKING:
    from leadscore.schema import ClosedLoopData, Feature, LabelledDataset

logger = logging.getLogger(__name__)

MIN_NON_NULL = 20

#: A feature that separates won from lost alone above this ROC-AUC is taken for one written
#: after contact. No field known before contact scores above 0.70 alone in the two real data
#: sets or the synthetic CRM (whole models reach 0.90 on X Education); at 0.9, a sales
#: "Temperature" that is Hot for 95% of the wins and 10% of the rest (ROC-AUC 0.925 over all
#: leads) passed by chance on two synthetic CRMs of seven (0.895-0.899 on the fit fold).
AUC_THRESHOLD = 0.85

#: Words in a column name that say the sales team wrote it after contact (DOMAIN.md: call
#: notes, tags, lead quality grades, "last activity" set by sales), or that it records the
#: outcome itself. Matched as whole words of the name, so ``Country`` never matches ``rep``.
POST_CONTACT_WORDS: frozenset[str] = frozenset(
    {
        "quality",
        "grade",
        "graded",
        "tag",
        "tags",
        "status",
        "stage",
        "score",
        "scoring",
        "rating",
        "disposition",
        "reason",
        "owner",
        "rep",
        "note",
        "notes",
        "comment",
        "comments",
        "outcome",
        "qualified",
        "disqualified",
        "qualification",
        "opportunity",
        "deal",
        "won",
        "lost",
        "closed",
        "close",
        "converted",
        # a sales temperature (Hot/Warm/Cold) or priority: a grade under another name
        "temperature",
        "priority",
    }
)

#: Listed words that CRM exports glue onto another word without a separator or a capital
#: (HubSpot's ``lifecyclestage``, ``hubspotscore``, ``dealstage``; ``isconverted``), found
#: at the end of a word when at least three letters precede them. Short or common words
#: (rep, tag, won, note, owner, rating) are left out: glued, they sit inside innocent words
#: (report, percentage, homeowner, operating).
GLUED_ENDINGS: frozenset[str] = frozenset(
    {
        "stage",
        "status",
        "score",
        "scoring",
        "grade",
        "quality",
        "disposition",
        "outcome",
        "reason",
        "qualified",
        "qualification",
        "opportunity",
        "deal",
        "closed",
        "converted",
        "temperature",
        "priority",
    }
)

#: Listed words that begin a glued field name, when the rest is one of :data:`_FIELD_NOUNS`
#: (``closedate``, ``dealname``, ``closedwon``).
GLUED_BEGINNINGS: frozenset[str] = frozenset({"deal", "close", "closed", "opportunity"})
_FIELD_NOUNS = frozenset(
    {"date", "time", "stage", "status", "name", "type", "amount", "value", "id", "owner"}
    | {"reason", "probability", "won", "lost"}
)

#: Ordinary words that end like a glued field (``downgrade``, ``undisclosed``).
_NOT_GLUED = frozenset(
    {"downgrade", "downgraded", "disclosed", "undisclosed", "foreclosed", "backstage"}
    | {"underscore", "unconverted"}
)

#: Phrases (consecutive words, matched as written or singular) with the same meaning, where
#: each word alone is innocent: ``Do Not Call`` is consent, ``Marketing Emails Opened`` is
#: marketing, while sales calls, sales e-mails and "Number of Sales Activities" are logged by
#: the sales team as it works the lead.
POST_CONTACT_PHRASES: tuple[tuple[str, ...], ...] = (
    ("last", "activity"),
    ("last", "notable", "activity"),
    ("last", "contacted"),
    ("time", "contacted"),
    ("sales", "feedback"),
    ("sales", "activity"),
    # meetings and appointments booked with sales (HubSpot's "Meetings Booked"), an SDR or
    # BDR assigned once the lead is worked; "Preferred Meeting Time" or "SDR Region" are no
    # such record
    ("meeting", "booked"),
    ("meeting", "held"),
    ("meeting", "set"),
    ("sales", "meeting"),
    ("appointment", "booked"),
    ("appointment", "set"),
    ("assigned", "sdr"),
    ("assigned", "bdr"),
    ("sales", "call"),
    ("sales", "email"),
    ("call", "logged"),
    ("demo", "completed"),
    ("demo", "held"),
    # "Hot Lead", "is_warm_lead": hot, warm and cold alone name water heaters and storage
    ("hot", "lead"),
    ("warm", "lead"),
    ("cold", "lead"),
)

#: A phrase's last word and the word after it that together name something else: a "Sales
#: Call Center Size" is the size of the company's call center, not a call sales made.
_COMPOUND_NOUNS = frozenset({("call", "center"), ("call", "centre")})


@dataclass(frozen=True)
class LeakageSuspect:
    """A feature that looks like it was written after the outcome, and why."""

    feature: str
    reason: str
    roc_auc: float | None


#: Out-of-fold splits of the target encoding: (rows whose won rate is counted, rows encoded).
Splits = list[tuple[np.ndarray, np.ndarray]]


def target_encoding_splits(y: np.ndarray, seed: int, groups: np.ndarray | None = None) -> Splits:
    """The folds of :func:`univariate_auc`'s out-of-fold target encoding, stratified by
    ``y`` (up to five, fewer where a class is rarer) and, with ``groups`` (each row's lead:
    event data holds a lead at several as-of dates), a lead's rows in one fold; empty when
    fewer than two folds are possible. They depend on the labels and leads only, so the
    guard computes them once for all categorical columns: the grouped split costs seconds
    (7.8 s of a 13.4 s training on 4,000 leads when it was redone per column)."""
    y = np.asarray(y)
    n_splits = int(min(5, np.bincount(y).min())) if len(np.unique(y)) > 1 else 0
    if groups is not None:
        n_splits = min(n_splits, len(np.unique(groups)))
    if n_splits < 2:
        return []
    folds = (
        StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        if groups is None
        else StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    )
    return list(folds.split(np.zeros(len(y)), y, groups))


def _out_of_fold_target_encoding(values: pd.Series, y: np.ndarray, splits: Splits) -> np.ndarray:
    """Smoothed won rate per category, each row encoded from folds it is not in.

    With splits grouped by lead (:func:`target_encoding_splits`) a lead's rows are in one
    fold: encoded from its own other dates, a lead-level field such as an account "predicts"
    each row from the same lead's other labels (an account shared by three leads, unrelated
    to the outcome, read ROC-AUC 0.89 and stopped training; 0.54 grouped).
    """
    prior = float(y.mean())
    if not splits:
        return np.full(len(values), prior)
    codes = values.astype("string").fillna("\0missing").to_numpy()
    encoded = np.empty(len(values), dtype="float64")
    for train_idx, apply_idx in splits:
        stats = (
            pd.DataFrame({"code": codes[train_idx], "y": y[train_idx]})
            .groupby("code")["y"]
            .agg(["sum", "count"])
        )
        rate = (stats["sum"] + 10 * prior) / (stats["count"] + 10)
        encoded[apply_idx] = pd.Series(codes[apply_idx]).map(rate).fillna(prior).to_numpy()
    return encoded


def _is_numeric(values: pd.Series) -> bool:
    """Whether :func:`univariate_auc` ranks ``values`` as they are (else it encodes them)."""
    return ptypes.is_numeric_dtype(values) and not isinstance(values.dtype, pd.CategoricalDtype)


def univariate_auc(
    values: pd.Series,
    y: np.ndarray,
    *,
    seed: int = 0,
    groups: np.ndarray | None = None,
    splits: Splits | None = None,
) -> float:
    """Symmetric ROC-AUC of one feature alone (0.5 = no signal, 1.0 = separates perfectly);
    ``groups`` names each row's lead where a lead has several rows. ``splits``: the
    categories' encoding folds when the caller already has them
    (:func:`target_encoding_splits` of the same ``y``, ``seed`` and ``groups``)."""
    if _is_numeric(values):
        numeric = values.astype("float64")
        lowest = np.nanmin(numeric.to_numpy()) - 1 if numeric.notna().any() else 0.0
        score = numeric.fillna(lowest).to_numpy()
    else:
        if splits is None:
            splits = target_encoding_splits(y, seed, groups)
        score = _out_of_fold_target_encoding(values, y, splits)
    if np.all(score == score[0]):
        return 0.5
    auc = float(roc_auc_score(y, score))
    return max(auc, 1.0 - auc)


@dataclass(frozen=True)
class ClosedLeadRows:
    """One row per lead of an event-form fit fold whose outcome the fold itself shows.

    Event data holds a lead once per as-of date, labelled won when it is won within the
    horizon, so a field written when the deal closed is diluted there: a lead won four months
    after an as-of date is a 0 at that date, whatever the field says (a tag that is "Hot" for
    exactly the leads won in the end scores ROC-AUC 0.96 on the examples of a synthetic CRM,
    1.0 on its leads). The lead columns (the same value at every date) are therefore also
    checked as the flat form checks them, one row per lead against how it ended: the leads
    that left the fold's open leads before its last as-of date, whose last example's label is
    their outcome (won or lost) where the next date lies within the horizon.

    ``rows`` are positions into the fold's rows (each lead's last example), ``y`` their
    labels and ``columns`` the lead columns to check this way.
    """

    rows: np.ndarray
    y: np.ndarray
    columns: tuple[str, ...]


def closed_lead_rows(
    lead_id: pd.Series | np.ndarray,
    as_of: pd.Series | np.ndarray,
    y: np.ndarray,
    *,
    horizon_days: int,
    columns: Iterable[str],
) -> ClosedLeadRows | None:
    """The :class:`ClosedLeadRows` of a fold's examples (``lead_id``, ``as_of``, ``y`` in the
    fold's row order), or ``None`` when fewer than :data:`MIN_NON_NULL` of them were won or
    lost (too few for an AUC worth a stop)."""
    frame = pd.DataFrame(
        {
            "lead": np.asarray(lead_id),
            "as_of": pd.to_datetime(np.asarray(as_of)),
            "y": np.asarray(y).astype(int),
        }
    )
    if frame.empty:
        return None
    dates = np.sort(frame["as_of"].unique())
    following = pd.Series(np.append(dates[1:], np.datetime64("NaT")), index=dates)
    last = frame.sort_values("as_of", kind="stable").groupby("lead", sort=False).tail(1)
    step = following.reindex(last["as_of"]).to_numpy() - last["as_of"].to_numpy()
    # gone by the next date, which lies within the horizon: the label is the outcome
    known = pd.notna(step) & (step <= np.timedelta64(int(horizon_days), "D"))
    closed = last[known]
    won = int(closed["y"].sum())
    if min(won, len(closed) - won) < MIN_NON_NULL:
        return None
    return ClosedLeadRows(closed.index.to_numpy(), closed["y"].to_numpy(), tuple(columns))


def event_closed_lead_rows(dataset: LabelledDataset, rows: np.ndarray) -> ClosedLeadRows | None:
    """:func:`closed_lead_rows` of the examples at positions ``rows`` of event-form
    ``dataset`` (its fit fold), checking its lead columns (the ``fit`` group); ``None`` for
    flat data, which holds one row per lead already."""
    if dataset.form != "events" or dataset.order is None or dataset.horizon_days is None:
        return None
    return closed_lead_rows(
        dataset.lead_id.iloc[rows],
        dataset.order.iloc[rows],
        np.asarray(dataset.y)[rows],
        horizon_days=dataset.horizon_days,
        columns=[f.name for f in dataset.features if f.group == "fit"],
    )


def find_leakage_suspects(
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    auc_threshold: float = AUC_THRESHOLD,
    allow: tuple[str, ...] | list[str] = (),
    seed: int = 0,
    closed_leads: ClosedLeadRows | None = None,
    groups: np.ndarray | None = None,
) -> list[LeakageSuspect]:
    """Features of ``X`` (the fit fold) that look like post-outcome leakage.

    Features named in ``allow`` are not checked at all. ``groups`` names each
    row's lead where leads have several rows (event data), so that categories are encoded
    from other leads only (:func:`univariate_auc`). With ``closed_leads``
    (event data: :func:`event_closed_lead_rows`), its lead columns are also checked one row
    per lead against how the lead ended, where the examples dilute a field written at the
    close (:class:`ClosedLeadRows`).
    """
    y = np.asarray(y).astype(int)
    if len(np.unique(y)) < 2:
        raise DataError(
            "the fit fold holds one class only", "Give training data with both won and lost leads."
        )
    per_lead = set(closed_leads.columns) if closed_leads is not None else set()
    suspects: list[LeakageSuspect] = []
    checked = [name for name in X.columns if name not in allow]
    # the categories' encoding folds, made once: they depend on the labels and leads only
    example_splits = (
        target_encoding_splits(y, seed, groups)
        if any(not _is_numeric(X[name]) for name in checked)
        else []
    )
    lead_splits = (
        target_encoding_splits(closed_leads.y, seed)
        if closed_leads is not None
        and any(not _is_numeric(X[name]) for name in checked if name in per_lead)
        else []
    )
    for name in X.columns:
        if name in allow:
            continue
        values = X[name]
        present = values.notna().to_numpy()
        if MIN_NON_NULL <= present.sum() < len(values):
            classes = np.unique(y[present])
            if len(classes) == 1:
                who = "won" if classes[0] == 1 else "lost"
                suspects.append(
                    LeakageSuspect(
                        name, f"filled in for {who} leads only ({int(present.sum())} rows)", None
                    )
                )
                continue
        auc = univariate_auc(values, y, splits=example_splits)
        if auc > auc_threshold:
            suspects.append(
                LeakageSuspect(name, f"separates won from lost alone with ROC-AUC {auc:.3f}", auc)
            )
            continue
        if closed_leads is not None and name in per_lead:
            lead_values = values.iloc[closed_leads.rows].reset_index(drop=True)
            one_outcome = one_outcome_fill(lead_values.notna().to_numpy(), closed_leads.y)
            if one_outcome is not None:
                suspects.append(
                    LeakageSuspect(
                        name,
                        f"{one_outcome}, one row per lead: the {len(closed_leads.rows):,} "
                        "leads that closed within the fit fold",
                        None,
                    )
                )
                continue
            auc = univariate_auc(lead_values, closed_leads.y, splits=lead_splits)
            if auc > auc_threshold:
                n = len(closed_leads.rows)
                suspects.append(
                    LeakageSuspect(
                        name,
                        f"separates won from lost leads alone with ROC-AUC {auc:.3f}, one row "
                        f"per lead: the {n:,} leads that closed within the fit fold",
                        auc,
                    )
                )
    return suspects


#: A column given for closed leads of one outcome is taken for one written at that outcome
#: when at most this share of the leads of the other outcome have it. A lead that wins after
#: the label's horizon or window is a 0 at the dates or in the window before it, with the
#: field a deal filled in already there, so the examples never show "one class only": a
#: contract reference given for 60% of the leads won in the end lifted a synthetic CRM's
#: test ROC-AUC from 0.765 to 0.922 with a per-lead ROC-AUC of 0.73 (54% of the won leads,
#: none of the lost). A few stray values (a deal reopened, a typo) stay below this share.
ONE_OUTCOME_OTHER_SHARE = 0.01


def one_outcome_fill(
    present: np.ndarray, won: np.ndarray, *, names: tuple[str, str] = ("won leads", "lost leads")
) -> str | None:
    """Why a column given where ``present`` is filled in for one outcome only (``won``: each
    row's lead won, in the end), or ``None``: given for at least :data:`MIN_NON_NULL` leads
    of one outcome and at most :data:`ONE_OUTCOME_OTHER_SHARE` of the other's.

    Only where the other outcome has leads enough that, were the column given for them as
    often, at least :data:`MIN_NON_NULL` of them would have it: with 40 won leads, a field
    given for a tenth of the leads at random misses all of them one time in 70, which is
    chance, not a field written at the loss. ``names`` say who the won and the other
    leads are.
    """
    present = np.asarray(present, dtype=bool)
    won = np.asarray(won).astype(bool)
    for who, other, one in ((*names, won), (*names[::-1], ~won)):
        given, n = int(present[one].sum()), int(one.sum())
        given_other, n_other = int(present[~one].sum()), int((~one).sum())
        if (
            n
            and given >= MIN_NON_NULL
            and given_other <= ONE_OUTCOME_OTHER_SHARE * n_other
            and n_other * given / n >= MIN_NON_NULL
        ):
            return (
                f"filled in for {given:,} of {n:,} {who} ({given / n:.0%}) and "
                f"{given_other:,} of {n_other:,} {other} ({given_other / n_other:.1%})"
            )
    return None


def leakage_error(suspects: list[LeakageSuspect]) -> DataError:
    """The one-line error that stops training when suspects were found."""
    names = ", ".join(f"{s.feature!r} ({s.reason})" for s in suspects)
    return DataError(
        f"suspected leakage in {len(suspects)} feature(s): {names}",
        "If they are written after contact, exclude them (a spec's exclude; for event data, "
        "drop the column from the leads table); if they are truly known at scoring time, "
        "allow them (a spec's allow_leakage, or leakage.allow in the training config).",
    )


#: The share of a flat table's closed leads, the newest, that :func:`won_later_columns` leaves
#: to the test fold where the spec sets no ``test_from``: the default ``folds.test_size``.
WON_LATER_TEST_SHARE = 0.2


def won_later_columns(
    X: pd.DataFrame,
    ever_won: np.ndarray | pd.Series,
    history: np.ndarray | pd.Series,
    *,
    allow: Iterable[str] = (),
) -> list[LeakageSuspect]:
    """Columns of a flat table ``X`` with a ``within_days`` label that are filled in for one
    outcome only (:func:`one_outcome_fill`) among the ``history`` rows (the closed leads
    before the test fold), where ``ever_won`` marks the leads with a won date at all.

    A lead won after its window is labelled 0 but carries the field sales filled in when the
    deal closed, so "filled for won leads only" never holds against the label, and in the
    fit fold, where few such deals had closed yet, the field is too sparse to separate
    won from lost: a behaviour profile from Olist's closed deals (45% of the wins, 1.7% of
    the rest, all won after 90 days) lifted the test ROC-AUC from 0.695 to 0.979. Against
    any won date, over all the history before the test fold, it is one outcome's field. The
    test fold is never read: the rows at or after ``test_from`` are left out of ``history``
    by the caller (:func:`history_rows`). Names in ``allow`` are vouched for.
    """
    rows = np.asarray(history, dtype=bool)
    won = np.asarray(ever_won, dtype=bool)[rows]
    allowed = set(allow)
    found = []
    for name in X.columns:
        if name in allowed:
            continue
        why = one_outcome_fill(
            X[name].notna().to_numpy()[rows],
            won,
            names=("leads won at any time", "leads never won"),
        )
        if why is not None:
            found.append(
                LeakageSuspect(
                    str(name),
                    f"{why}, over the {int(rows.sum()):,} closed leads before the test fold",
                    None,
                )
            )
    return found


def history_rows(
    order: pd.Series, closed: np.ndarray | pd.Series, test_from: object | None
) -> np.ndarray:
    """The ``closed`` rows before the test fold: before ``test_from`` where the spec sets
    it, else all but the newest :data:`WON_LATER_TEST_SHARE` of them by ``order``."""
    closed = np.asarray(closed, dtype=bool)
    when = pd.Series(np.asarray(order))
    if test_from is not None:
        return closed & (when < test_from).to_numpy()
    ranks = when.where(closed).rank(method="min", pct=True).to_numpy()
    return closed & (ranks <= 1 - WON_LATER_TEST_SHARE)


# --------------------------------------------------------------------------- written at close

#: A flat table's feature column given for at least this share of its closed leads (won or
#: lost) ...
WRITTEN_AT_CLOSE_CLOSED_SHARE = 0.75
#: ... and for at most this share of its open leads is taken for a field written at the close.
#: A value known before contact (a company size, a source) is given for open and closed
#: leads alike, since every lead starts open; a sales cycle, a contract term or a close
#: reason is given once the deal closes, often for some closed leads only (every won deal,
#: three lost ones in four) and for a few reopened open ones. A form field retired long ago
#: can look the same, and is no feature either: the leads the model scores never have it.
#: An enrichment that lags a few weeks is given for far more open leads than this.
WRITTEN_AT_CLOSE_OPEN_SHARE = 0.1
#: Fewer open leads than this say nothing: a table of closed leads with a few stragglers.
WRITTEN_AT_CLOSE_MIN_OPEN = 30


@dataclass(frozen=True)
class WrittenAtClose:
    """A feature of a flat table given for (nearly) every closed lead and (nearly) no open
    one, with the counts that say so. ``placeholder`` is the value read as blank
    (:data:`PLACEHOLDER_OPEN_SHARE`), held by ``closed_placeholder`` closed and
    ``open_placeholder`` open leads; ``None`` where blanks alone said so."""

    feature: str
    closed_given: int
    closed: int
    open_given: int
    open: int
    placeholder: str | None = None
    closed_placeholder: int = 0
    open_placeholder: int = 0

    def reason(self) -> str:
        given = (
            f"given for {self.closed_given:,} of {self.closed:,} closed leads "
            f"({self.closed_given / self.closed:.0%}) and {self.open_given:,} of "
            f"{self.open:,} open leads ({self.open_given / self.open:.0%})"
        )
        if self.placeholder is None:
            return given
        return (
            f"{self.placeholder!r}, read as blank, for {self.open_placeholder / self.open:.0%} "
            f"of open leads and {self.closed_placeholder / self.closed:.0%} of closed ones; "
            f"another value {given.removeprefix('given ')}"
        )


#: A field given for at least this share of the closed leads ...
FILLED_IN_SALES_CLOSED_SHARE = 0.5
#: ... and this many times as often as among the open ones, short of the refusal of
#: :func:`close_field_columns`, reads as one sales fills in while it works a lead: an owner
#: assigned once sales accepts it (63% of the closed leads, 14% of the open ones, under a name
#: the name warning does not know) lifted a model from the truth's ROC-AUC 0.74 to 0.85. It is
#: named in a warning, not refused: a form field retired a while ago, or an enrichment that
#: lags behind many new leads, can look the same.
FILLED_IN_SALES_RATIO = 4.0
#: The most common value of a categorical column among the open leads that have one is read
#: as a blank when at least this share of them hold it: a CRM that never leaves the field
#: empty writes a placeholder until sales takes the lead (Salesforce's lead queue as the
#: owner, "Unassigned", "-"). The column is then tested as a blank would be, so it is named
#: only where the value is also rare among the closed leads: the owner queue of 80% of the
#: open leads and 13% of the closed ones (reps otherwise) had lifted a model from ROC-AUC
#: 0.73 to 0.85, while a source or a country whose commonest value is as common among closed
#: leads is given for both alike. It is named in a warning, never refused: a channel launched
#: lately that most open leads came from reads the same.
PLACEHOLDER_OPEN_SHARE = 0.5


def close_field_columns(
    X: pd.DataFrame,
    closed: np.ndarray | pd.Series,
    still_open: np.ndarray | pd.Series,
    *,
    allow: Iterable[str] = (),
) -> tuple[list[WrittenAtClose], list[WrittenAtClose]]:
    """Columns of a flat table ``X`` (every row, open ones included) filled in as a lead is
    worked or closed, in one pass: those to refuse, given for at least
    :data:`WRITTEN_AT_CLOSE_CLOSED_SHARE` of the ``closed`` rows and at most
    :data:`WRITTEN_AT_CLOSE_OPEN_SHARE` of the ``still_open`` ones, and those to warn about,
    given for at least :data:`FILLED_IN_SALES_CLOSED_SHARE` of the closed rows and
    :data:`FILLED_IN_SALES_RATIO` times as often as among the open ones. Only where there are
    at least :data:`WRITTEN_AT_CLOSE_MIN_OPEN` open rows and :data:`MIN_NON_NULL` closed ones
    given. A categorical column whose blanks pass is tested once more with its placeholder
    (:data:`PLACEHOLDER_OPEN_SHARE`) read as blank, since a CRM that never leaves a field
    empty fills it with one.

    The checks of :func:`find_leakage_suspects` see closed leads only, where such a field is
    given for won and lost leads alike and may pass alone (a sales cycle in days that
    scores ROC-AUC 0.69 alone lifted a model to 0.98 with the other features): the open
    leads of the same export are what give it away. Names in ``allow`` are vouched for.
    """
    closed = np.asarray(closed, dtype=bool)
    still_open = np.asarray(still_open, dtype=bool)
    n_closed, n_open = int(closed.sum()), int(still_open.sum())
    at_close: list[WrittenAtClose] = []
    in_sales: list[WrittenAtClose] = []
    if n_open < WRITTEN_AT_CLOSE_MIN_OPEN or n_closed < MIN_NON_NULL:
        return at_close, in_sales
    allowed = set(allow)
    for name in X.columns:
        if name in allowed:
            continue
        values = X[name]
        given = values.notna().to_numpy()
        found = WrittenAtClose(
            str(name), int(given[closed].sum()), n_closed, int(given[still_open].sum()), n_open
        )
        kind = _fill_rate_test(found)
        if kind is None and not _is_numeric(values):
            placeholder = _placeholder(values[still_open & given])
            if placeholder is not None:
                held = given & (values.astype(object) == placeholder).to_numpy()
                found = WrittenAtClose(
                    str(name),
                    int((given & ~held)[closed].sum()),
                    n_closed,
                    int((given & ~held)[still_open].sum()),
                    n_open,
                    str(placeholder),
                    int(held[closed].sum()),
                    int(held[still_open].sum()),
                )
                # a value is no blank: warned about, never refused (a channel launched lately
                # that most open leads came from reads the same as an owner queue)
                kind = "in_sales" if _fill_rate_test(found) else None
        if kind == "at_close":
            at_close.append(found)
        elif kind == "in_sales":
            in_sales.append(found)
    return at_close, in_sales


def _fill_rate_test(found: WrittenAtClose) -> Literal["at_close", "in_sales"] | None:
    """Which test of :func:`close_field_columns` ``found``'s counts trip: ``at_close``
    (refused), ``in_sales`` (warned about) or neither (``None``)."""
    if found.closed_given < MIN_NON_NULL:
        return None
    closed_share, open_share = found.closed_given / found.closed, found.open_given / found.open
    if closed_share >= WRITTEN_AT_CLOSE_CLOSED_SHARE and open_share <= WRITTEN_AT_CLOSE_OPEN_SHARE:
        return "at_close"
    if (
        closed_share >= FILLED_IN_SALES_CLOSED_SHARE
        and open_share * FILLED_IN_SALES_RATIO <= closed_share
    ):
        return "in_sales"
    return None


def _placeholder(open_values: pd.Series) -> object | None:
    """The value that at least :data:`PLACEHOLDER_OPEN_SHARE` of ``open_values`` (the open
    leads' given values of one categorical column) hold, or ``None``."""
    if open_values.empty:
        return None
    counts = open_values.astype(object).value_counts()
    if counts.iloc[0] < PLACEHOLDER_OPEN_SHARE * len(open_values):
        return None
    return counts.index[0]


def filled_in_sales_note(found: list[WrittenAtClose]) -> str:
    """The warning of the fields :func:`close_field_columns` finds filled in while sales works
    a lead."""
    names = ", ".join(f"{c.feature!r} ({c.reason()})" for c in found)
    return (
        f"{names}: given far more often for closed leads than for open ones, as a field sales "
        "fills in while it works a lead (an owner, a qualification) is; such a field tells "
        "the model how the lead ended, and a new lead never has it: list it under exclude in "
        "the spec unless it is known before contact (allow_leakage vouches for it)"
    )


def written_at_close_error(found: list[WrittenAtClose]) -> DataError:
    """The one-line error that stops a flat table with :func:`close_field_columns`, as
    :func:`leakage_error` stops the guard's other suspects."""
    names = ", ".join(f"{c.feature!r} ({c.reason()})" for c in found)
    return DataError(
        f"suspected leakage in {len(found)} feature(s) filled in when a lead closes: {names}",
        "A field the CRM fills in at the close tells the model the outcome, and the leads it "
        "scores never have it (nor do they have a field no longer collected): list it under "
        "exclude in the spec, with the reason; if it is truly known before the close, list it "
        "under the spec's allow_leakage (or leakage.allow in the training config).",
    )


#: Rank correlation between a number and the lead's time (``order_by``) at or below which,
#: with :data:`AGE_TREND_RATIO`, the number reads as counted up to the export
#: (:func:`age_trending_columns`). Honest fit and behaviour columns of the shared data sets
#: stay within 0.1 of 0; a lifetime e-mail counter of a Salesforce export reached -0.72.
AGE_TREND_RHO = -0.4
#: How many times the oldest fifth's mean must exceed the newest fifth's.
AGE_TREND_RATIO = 2.0
#: Fewest values a column needs for the trend to be read.
AGE_TREND_MIN_VALUES = 200


@dataclass(frozen=True)
class AgeTrend:
    """A number of a flat table that falls steeply from the oldest leads to the newest."""

    feature: str
    oldest_mean: float
    newest_mean: float
    rho: float

    def reason(self) -> str:
        return (
            f"the oldest fifth of the leads average {_mean_text(self.oldest_mean)}, the "
            f"newest {_mean_text(self.newest_mean)}; rank correlation with the lead's time "
            f"{self.rho:+.2f}"
        )


def _mean_text(value: float) -> str:
    return f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"


def age_trending_columns(
    X: pd.DataFrame,
    order: pd.Series | np.ndarray,
    names: Iterable[str],
    *,
    allow: Iterable[str] = (),
) -> list[AgeTrend]:
    """Numbers of ``names`` in a flat table that fall steeply with the lead's time: the
    signature of a counter the CRM keeps adding to until the export ("Email Opens", "Total
    Web Visits"). A closed lead's count then includes the months after it closed, and an old
    lead's the years since: the model learns how old the record is, the newest leads (the
    test fold, and every lead it scores) look idle, and the probabilities drift (a Salesforce
    export's lifetime e-mail opens made the top feature and an ECE of 0.108).

    Flagged: a rank correlation with ``order`` (dates or numbers, one per row of ``X``) of
    :data:`AGE_TREND_RHO` or below, and the oldest fifth's mean :data:`AGE_TREND_RATIO` times
    the newest fifth's or more, on at least :data:`AGE_TREND_MIN_VALUES` values. Names in
    ``allow`` are vouched for. A flat table holds no dates of the activities counted, so this
    is a warning: a real decline reads the same."""
    allowed = set(allow)
    when = pd.Series(np.asarray(order)).reset_index(drop=True)
    if ptypes.is_datetime64_any_dtype(when):
        when = when.astype("int64").where(when.notna())
    when = pd.to_numeric(when, errors="coerce")
    found = []
    for name in names:
        if name in allowed or name not in X.columns:
            continue
        x = pd.to_numeric(X[name].reset_index(drop=True), errors="coerce")
        given = x.notna() & np.isfinite(x) & when.notna()
        if given.sum() < AGE_TREND_MIN_VALUES:
            continue
        xs, ws = x[given].astype("float64"), when[given]
        rho = float(xs.rank().corr(ws.rank()))
        if not (rho <= AGE_TREND_RHO):
            continue
        position = ws.rank(pct=True)
        oldest, newest = float(xs[position <= 0.2].mean()), float(xs[position > 0.8].mean())
        if oldest > 0 and oldest >= AGE_TREND_RATIO * max(newest, 0.0):
            found.append(AgeTrend(str(name), oldest, newest, rho))
    return found


def age_trend_note(found: list[AgeTrend], order_by: str | None) -> str:
    """One sentence naming the :func:`age_trending_columns` found, the log's warning at
    loading and the training run's note alike."""
    named = "; ".join(f"{t.feature!r} ({t.reason()})" for t in found)
    by = f" ({order_by})" if order_by else ""
    return (
        f"{len(found)} number(s) fall steeply with the lead's time{by}, as a counter the CRM "
        f"keeps adding to until the export does, which would leak the outcome: {named}. A "
        "closed lead's count then includes the months after it closed, so the model learns "
        "the record's age and the newest leads look idle: export such counters as of the "
        "close (or use the event form, whose activity log is counted as of each date), else "
        "exclude them in the spec; if the decline is real, list them under allow_leakage to "
        "silence this."
    )


def _post_contact_word(word: str) -> str | None:
    """The listed word that ``word`` is, is the plural of, or holds glued to another word."""
    for form in dict.fromkeys((word, singular(word))):
        if form in POST_CONTACT_WORDS:
            return form
        if form in _NOT_GLUED:
            return None
        for ending in GLUED_ENDINGS:
            if form.endswith(ending) and len(form) - len(ending) >= 3:
                return ending
        for beginning in GLUED_BEGINNINGS:
            if form.startswith(beginning) and form[len(beginning) :] in _FIELD_NOUNS:
                return beginning
    return None


def _phrase_at(words: list[str], start: int, phrase: tuple[str, ...]) -> bool:
    """Whether ``phrase`` begins at ``words[start]``, each word as written or singular
    (``Calls Logged`` and ``Sales Activities`` for ``call logged`` and ``sales activity``)."""
    window = words[start : start + len(phrase)]
    return len(window) == len(phrase) and all(
        w == p or singular(w) == p for w, p in zip(window, phrase, strict=True)
    )


def post_contact_columns(names: Iterable[str], *, allow: Iterable[str] = ()) -> dict[str, str]:
    """Columns of ``names`` whose name says they are written after contact, each with the
    word that says so; names in ``allow`` are left out (allowed as known at scoring).

    A word matches as written (``Lead Status``, ``leadStatus``, ``lead_status``), as a plural
    (``num_associated_deals``) and glued onto another word, as CRM exports write field names
    (``lifecyclestage``, ``hubspotscore``, ``closedate``): see :data:`GLUED_ENDINGS` and
    :data:`GLUED_BEGINNINGS`, which keep to words that do not hide inside ordinary ones.
    """
    allowed = set(allow)
    found: dict[str, str] = {}
    for name in names:
        if name in allowed:
            continue
        words = name_words(name)
        hit = next((h for h in map(_post_contact_word, words) if h is not None), None)
        if hit is None:
            for phrase in POST_CONTACT_PHRASES:
                n = len(phrase)
                # "days since last activity" is a recency measured at scoring, not a field
                if any(
                    _phrase_at(words, i, phrase)
                    and (i == 0 or words[i - 1] != "since")
                    and (phrase[-1], words[i + n] if i + n < len(words) else "")
                    not in _COMPOUND_NOUNS
                    for i in range(len(words) - n + 1)
                ):
                    hit = " ".join(phrase)
                    break
        if hit is not None:
            found[str(name)] = hit
    return found


def post_contact_note(found: dict[str, str], fix: str) -> str:
    """One sentence naming the :func:`post_contact_columns` found, with ``fix``: how to
    exclude them in the caller's data form (a spec's exclude, or dropping a lead column).

    The same words serve the log at loading and the training run's notes, which the model
    report lists under its leakage checks (they say "leak").
    """
    named = ", ".join(f"{name!r} ({word!r})" for name, word in found.items())
    return (
        f"{len(found)} column(s) named like a field written after contact, which would leak "
        f"the outcome: {named}. {fix}"
    )


def warn_post_contact_columns(found: dict[str, str], fix: str) -> None:
    """Log one warning naming the :func:`post_contact_columns` found, with ``fix``: how to
    exclude them in the caller's data form (a spec's exclude, or dropping a lead column)."""
    if found:
        logger.warning("%s", post_contact_note(found, fix))


# --------------------------------------------------------------------------- snapshot columns

#: Words of an extra lead column's name that say its value accumulates over the lead's life (a
#: running count, sum, average or rate) or points at its latest touch. Event data reads the
#: leads table as the export wrote it, at every as-of date, so such a value holds what happened
#: after the date. Alone each word is innocent (``Number of Employees``, ``Last Name``,
#: ``Tax Rate``): a name is flagged when it also holds one of :data:`ACTIVITY_NOUNS`.
SNAPSHOT_WORDS: frozenset[str] = frozenset(
    {"total", "count", "num", "number", "sum", "average", "avg", "mean", "per", "rate", "times"}
    | {"last", "latest", "recent", "recently", "newest"}
    | {"opened", "clicked", "viewed", "visited", "attended", "downloaded", "submitted"}
)

#: What a lead does, as column names count it (singular; plurals match as well).
ACTIVITY_NOUNS: frozenset[str] = frozenset(
    {"activity", "visit", "view", "pageview", "page", "session", "website", "web", "site"}
    | {"open", "click", "email", "mail", "download", "form", "submission", "webinar", "event"}
    | {"touch", "touchpoint", "interaction", "conversion", "call", "meeting", "message"}
    | {"reply", "response", "login", "usage", "time", "minute"}
)

#: Words that say so on their own (``Engagement Level``, ``Lifetime Value``).
SNAPSHOT_ALONE: frozenset[str] = frozenset({"lifetime", "cumulative", "engagement"})

#: Phrases that say so on their own: a recency measured at the export.
SNAPSHOT_PHRASES: tuple[tuple[str, ...], ...] = tuple(
    (unit, "since") for unit in ("days", "day", "hours", "weeks", "months", "time")
)

#: The partial rank correlation of a numeric lead column with a lead's activity after the
#: as-of date, given its activity up to then, above which the column is taken for a value
#: counted at the export (:func:`later_activity_correlations`). Lifetime counters of a synthetic
#: CRM and of ``leadscore synth`` data score 0.69 (counted with +-50% noise) to 0.92; values
#: fixed at creation score 0.23 at most (activity in the lead's first day; 0.49 for its first
#: week, which is not known at creation either), firmographics about 0.
SNAPSHOT_CORRELATION = 0.6

#: At most this many examples are drawn (seeded) for :func:`later_activity_correlations`.
SNAPSHOT_MAX_EXAMPLES = 20_000

#: Fewer examples with a value, or with later activity of a type, than this: no evidence.
SNAPSHOT_MIN_EXAMPLES = 100
SNAPSHOT_MIN_LATER = 50


@dataclass(frozen=True)
class SnapshotColumn:
    """An extra lead column that looks like a value taken at the export, and why.

    ``words`` are the words of its name that say so (empty when its name does not);
    ``correlation`` and ``activity`` the data's evidence (``None`` when there is none): the
    partial rank correlation with the lead's later activity of that type (``any`` for all
    types together) given its activity up to the as-of date.
    """

    feature: str
    words: tuple[str, ...]
    correlation: float | None = None
    activity: str | None = None

    def reason(self) -> str:
        parts = []
        if self.words:
            parts.append(f"named like a running count or last touch: {', '.join(self.words)}")
        if self.correlation is not None:
            rows = "activity" if self.activity == "any" else f"{self.activity} rows"
            parts.append(
                f"rises with the lead's {rows} after the as-of date: partial rank correlation "
                f"{self.correlation:.2f} given those up to it, where a value fixed at creation "
                "shows about 0"
            )
        return "; ".join(parts)


def snapshot_words(name: str) -> tuple[str, ...]:
    """The words of ``name`` that say it holds a running count or a last touch, or ``()``:
    one of :data:`SNAPSHOT_ALONE` or :data:`SNAPSHOT_PHRASES`, or one of
    :data:`SNAPSHOT_WORDS` together with one of :data:`ACTIVITY_NOUNS` (``TotalVisits``,
    ``Total Web Activity``, ``hs_analytics_num_page_views``, ``Last Touch Channel``)."""
    words = name_words(name)
    forms = [(w, singular(w)) for w in words]
    alone = [w for w, s in forms if w in SNAPSHOT_ALONE or s in SNAPSHOT_ALONE]
    phrases = [
        " ".join(p)
        for p in SNAPSHOT_PHRASES
        if any(tuple(words[i : i + len(p)]) == p for i in range(len(words) - len(p) + 1))
    ]
    if alone or phrases:
        return tuple(dict.fromkeys([*phrases, *alone]))
    counting = [w for w, s in forms if w in SNAPSHOT_WORDS or s in SNAPSHOT_WORDS]
    nouns = [w for w, s in forms if w in ACTIVITY_NOUNS or s in ACTIVITY_NOUNS]
    if counting and nouns:
        return tuple(dict.fromkeys([*counting, *nouns]))
    return ()


def extra_lead_features(dataset: LabelledDataset) -> list[Feature]:
    """The features of event-form examples that pass a leads column through as it is (the
    ``fit`` group's columns beyond the built-in ones)."""
    from leadscore.features import feature_catalogue

    builtin = {f.name for f in feature_catalogue()}
    return [f for f in dataset.features if f.group == "fit" and f.name not in builtin]


def _rank_partial_correlation(v: np.ndarray, later: np.ndarray, upto: np.ndarray) -> float | None:
    """Spearman's partial correlation of ``v`` and ``later`` given ``upto``; ``None`` where a
    variable is constant or ``later`` is all but fixed by ``upto``."""
    ranks = np.vstack([pd.Series(a).rank().to_numpy() for a in (v, later, upto)])
    if np.any(ranks.std(axis=1) == 0):
        return None
    r = np.corrcoef(ranks)
    denominator = (1 - r[0, 2] ** 2) * (1 - r[1, 2] ** 2)
    if denominator < 1e-9:
        return None
    return float((r[0, 1] - r[0, 2] * r[1, 2]) / np.sqrt(denominator))


def activity_counts(
    activities: pd.DataFrame, lead_id: np.ndarray, as_of: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For each example (``lead_id`` at ``as_of``): the lead's activities up to as-of and
    after it (to the end of the log), for all types together (``any``) and by type."""
    codes, leads = pd.factorize(np.asarray(lead_id))
    act_codes = pd.Index(leads).get_indexer(activities["lead_id"])
    keep = act_codes >= 0  # the log of the examples' leads only, before any other column
    act_codes = act_codes[keep].astype("int64")
    activities = activities.loc[keep, ["occurred_at", "activity_type"]]
    act_times = activities["occurred_at"].to_numpy("datetime64[us]").view("int64")
    ex_times = np.asarray(as_of, dtype="datetime64[us]").view("int64")
    moments, inverse = np.unique(np.concatenate([act_times, ex_times]), return_inverse=True)
    act_rank, ex_rank = inverse[: len(act_times)], inverse[len(act_times) :]
    base = np.int64(len(moments) + 1)
    lead_start, lead_end = codes.astype("int64") * base, (codes.astype("int64") + 1) * base
    example_key = lead_start + ex_rank
    types = activities["activity_type"].astype("string").to_numpy()
    counts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for kind in ("any", *sorted(pd.unique(types))):
        rows = slice(None) if kind == "any" else types == kind
        keys = np.sort(act_codes[rows] * base + act_rank[rows])
        first = np.searchsorted(keys, lead_start, side="left")
        upto = np.searchsorted(keys, example_key, side="right") - first
        later = np.searchsorted(keys, lead_end, side="left") - first - upto
        counts[str(kind)] = (upto, later)
    return counts


def later_activity_correlations(
    values: pd.DataFrame, lead_id: pd.Series, as_of: pd.Series, activities: pd.DataFrame
) -> dict[str, tuple[float, str]]:
    """How closely each numeric lead column of ``values`` (one row per example, as
    ``lead_id`` at ``as_of``) follows the lead's activity after the as-of date, beyond its
    activity up to then: the largest partial rank correlation over all types together and
    each type alone, with that type (``any`` for all); a column without enough examples is
    left out.

    A value fixed when the lead was created cannot know later activity: it correlates with
    it only as much as with the earlier activity, and given that, about 0. A counter, a
    score or an average taken at the export holds the later activity and scores well above
    (:data:`SNAPSHOT_CORRELATION`). Examples beyond :data:`SNAPSHOT_MAX_EXAMPLES` are
    drawn at random (seeded).
    """
    positions = np.arange(len(values))
    if len(positions) > SNAPSHOT_MAX_EXAMPLES:
        rng = np.random.default_rng(0)
        positions = np.sort(rng.choice(positions, SNAPSHOT_MAX_EXAMPLES, replace=False))
    if values.empty or len(positions) < SNAPSHOT_MIN_EXAMPLES:
        return {}
    counts = activity_counts(activities, lead_id.to_numpy()[positions], as_of.to_numpy()[positions])
    found: dict[str, tuple[float, str]] = {}
    for name in values.columns:
        v = values[name].to_numpy(dtype="float64", na_value=np.nan)[positions]
        given = ~np.isnan(v)
        if given.sum() < SNAPSHOT_MIN_EXAMPLES:
            continue
        for kind, (upto, later) in counts.items():
            if int((later[given] > 0).sum()) < SNAPSHOT_MIN_LATER:
                continue
            r = _rank_partial_correlation(v[given], later[given], upto[given])
            if r is not None and (name not in found or r > found[name][0]):
                found[name] = (r, kind)
    return found


def snapshot_lead_columns(
    examples: LabelledDataset, data: ClosedLoopData | None = None, *, allow: Iterable[str] = ()
) -> list[SnapshotColumn]:
    """Extra lead columns of event-form ``examples`` that look like values taken at the
    export rather than at the as-of date: named like a running count or a last touch
    (:func:`snapshot_words`; names the post-contact check already warns about are left to
    it), or, given the ``data`` the examples were built from, numeric and rising with the
    lead's activity after the as-of date (:func:`later_activity_correlations`). Columns in
    ``allow`` are vouched for. Flat data has no as-of date: nothing to say there.
    """
    if examples.form != "events":
        return []
    allowed = set(allow)
    extras = [f for f in extra_lead_features(examples) if f.name not in allowed]
    named_after_contact = post_contact_columns([f.name for f in extras])
    numeric = [f.name for f in extras if f.kind == "numeric"]
    correlations: dict[str, tuple[float, str]] = {}
    if data is not None and examples.order is not None and numeric and len(data.activities):
        correlations = later_activity_correlations(
            examples.X[numeric], examples.lead_id, examples.order, data.activities
        )
    found: list[SnapshotColumn] = []
    for feature in extras:
        words = () if feature.name in named_after_contact else snapshot_words(feature.name)
        evidence = correlations.get(feature.name)
        if evidence is not None and evidence[0] < SNAPSHOT_CORRELATION:
            evidence = None
        if words or evidence is not None:
            correlation, activity = evidence if evidence is not None else (None, None)
            found.append(SnapshotColumn(feature.name, words, correlation, activity))
    return found


def snapshot_note(found: list[SnapshotColumn]) -> str:
    """One paragraph naming the :func:`snapshot_lead_columns` found, why, and the fix; it
    says "leak", so the model report lists it under its leakage checks."""
    named = "; ".join(f"{c.feature!r} ({c.reason()})" for c in found)
    return (
        f"{len(found)} lead column(s) look like values taken at the export, not at the as-of "
        f"date, which would leak the outcome: {named}. Lead columns are read as the export "
        "wrote them at every as-of date, so a count, score or last touch that kept changing "
        "tells the model what the lead did later. Drop them from the leads table, or give "
        "each lead's value at its creation (the activity log already gives counts and "
        "recency as of each date); if they are fixed when the lead is created, list them "
        "under leakage.allow in the config."
    )


def warn_snapshot_lead_columns(
    examples: LabelledDataset, data: ClosedLoopData | None = None, *, allow: Iterable[str] = ()
) -> list[str]:
    """Log one warning naming the :func:`snapshot_lead_columns` of ``examples``, and return
    it as a note for the training run (``[]`` when none)."""
    found = snapshot_lead_columns(examples, data, allow=allow)
    if not found:
        return []
    note = snapshot_note(found)
    logger.warning("%s", note)
    return [note]
