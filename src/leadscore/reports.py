"""Marketing views of scored leads: which channels and campaigns bring leads worth their cost.

:func:`channel_report` is pure: scored leads joined to the lead attributes to group by, and an
optional spend per channel, in; one row per group out. Definitions, so that the numbers agree
with what sales sees in the scored-leads table:

* **leads** are the scored leads of the data set reported on that are open at the report's
  moment, its latest scoring (:func:`open_scored_leads`): a target shared with another data
  set, or a lead won or lost since it was scored, must not count as a lead of a channel.
* **MQLs** are leads whose stage is MQL *or SQL* (reached at least MQL); **SQLs** are leads at SQL.
* **MQL rate** and **SQL rate** are those counts over all scored leads of the group.
* **expected wins** is the sum of calibrated probabilities: with a calibrated model, the number
  of the group's leads expected to convert.
* with a spend per channel: **cost per lead** is the spend over every lead the channel brought
  (all rows of the leads table, closed ones included); the scored leads carry their share of
  the spend (``spend_scored`` = cost per lead x scored leads), from which come **cost per MQL**
  and **cost per expected win**.
* with a deal value: **value per lead** (expected win rate x deal value), with or without
  spend; with spend too, **ROI**, the return on the spend: (expected value of the scored
  leads - their share of the spend) / that share, so 0 breaks even, -0.68 loses 68% of the
  spend and 1.5 returns it plus 150%. The frame (and the CSV) holds that ratio; the printed
  table shows it as a percentage, as it shows the rates (``-68%``, ``150%``). A channel whose
  cost per lead exceeds its value per lead (ROI below 0) costs more than it brings. A channel
  that cost nothing has no ROI (a return on no spend is not a number): its row shows "-", as
  does one without a cost row.

Values that differ only in case or spacing (``Paid Search``, ``paid search``, ``Paid  Search``)
are one group, shown with the spelling most leads carry: CRM exports write one channel several
ways, and two rows for one channel split its leads and leave one row without its cost.

Campaign rows get no cost: spend is known per channel only, and splitting it across campaigns
by lead count would invent numbers. Cost rows are matched to the channel values ignoring case
and spacing (``PAID SEARCH`` pays for ``Paid Search``); a cost channel that matches none
(``Partner`` for ``partners``) is logged as a warning with the known channels, since its spend
would otherwise vanish from the report unnoticed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from leadscore.encoding import (
    CURRENCY_SYMBOLS,
    describe_merged,
    fold_text,
    parse_numbers,
    preferred_spellings,
)
from leadscore.errors import DataError, shortened_list
from leadscore.metrics import wilson_interval
from leadscore.names import closest_names, name_words
from leadscore.schema import (
    SPACED_IDS_FIX,
    UNKNOWN_ID_SAMPLE,
    ClosedLoopData,
    spaced_ids,
    spaced_ids_note,
)

logger = logging.getLogger(__name__)

#: Last words that make a column name read as the lead's channel, in tiers: a column of the
#: first tier wins over one of the second (see :func:`channel_column`).
CHANNEL_WORDS: tuple[tuple[str, ...], ...] = (("channel", "source"), ("origin",))
#: Words that make such a name something else than the channel that brought the lead: how
#: the record was made (HubSpot's ``Record Source``: forms, import, CRM UI), the system the
#: data came from, or how the lead likes to be reached (``Preferred Contact Channel``).
NOT_CHANNEL_WORDS = frozenset(
    {"record", "data", "object", "system", "import", "preferred", "communication"}
)

REPORT_COLUMNS: tuple[str, ...] = (
    "leads",
    "mqls",
    "sqls",
    "mql_rate",
    "sql_rate",
    "expected_wins",
    "expected_win_rate",
)


@dataclass(frozen=True)
class ScoredSelection:
    """The scored leads a channel report counts, and what was left out and why.

    The counts are kept apart from the rows so that the caller can say (log) why the report
    holds fewer leads than the scored-leads table: a silent drop would look like lost leads.
    """

    #: latest rows of the data's leads open at ``moment``, in the scored-leads schema
    scored: pd.DataFrame
    #: the report's moment: the latest ``as_of`` among the data's scored rows (None if none)
    moment: pd.Timestamp | None
    #: scored rows whose lead is not in the data's leads table (another data set's leads)
    other_data: int
    #: scored rows of the data's leads closed (won or lost) at or before ``moment``
    closed: int
    #: kept rows of leads that closed after ``moment``: they were open at the moment
    closed_later: int

    @property
    def of_data(self) -> int:
        """Scored rows that belong to the data, open or closed."""
        return len(self.scored) + self.closed


def open_scored_leads(
    scored: pd.DataFrame, lead_ids: pd.Series, outcomes: pd.DataFrame
) -> ScoredSelection:
    """The scored leads of one data set that are open at the report's moment.

    ``scored_leads`` keeps a lead's latest row until a scoring run knows it closed, so it may
    hold leads that closed after the latest run (or rows written before leadscore dropped
    closed leads), and one target may hold the scores of several data sets. A channel report
    counts neither:

    * rows whose ``lead_id`` is not in ``lead_ids`` (the data's leads table, ids as text, as
      the scorer wrote them) are another data set's; they would otherwise form a "(none)"
      channel;
    * the report's **moment** ("now") is the latest ``as_of`` among the remaining rows: the
      moment the newest scores describe. A lead with an outcome (won or lost) whose
      ``closed_at`` is at or before the moment is closed: the scorer stopped scoring it when it
      closed, so its row is stale, and its old stage and probability must count neither as an
      open lead, an MQL, an SQL nor an expected win. This is the scorer's own rule (it scores
      the leads not closed by its ``as_of``), so a report right after a run counts exactly
      what the run scored.
    * a lead that closed *after* the moment is kept: it was open at the moment the
      probabilities describe, and dropping the leads that later closed, and only those, would
      bias expected wins down (the won ones are mostly those with high probabilities). Scoring
      again (as of now) moves the moment and drops them.

    Parameters
    ----------
    scored : latest scored leads (``lead_id``, ``as_of``, ``stage``, ``probability``, ...).
    lead_ids : every lead id of the data set, as text.
    outcomes : the data's validated outcomes (``lead_id``, ``closed_at``), one per lead.
    """
    ours = scored["lead_id"].isin(pd.Index(lead_ids))
    mine = scored[ours]
    other_data = int((~ours).sum())
    if other_data:
        _warn_spaced_ids(scored.loc[~ours, "lead_id"], lead_ids)
    if mine.empty:
        return ScoredSelection(mine.reset_index(drop=True), None, other_data, 0, 0)
    moment = pd.Timestamp(mine["as_of"].max())
    closed_at = mine["lead_id"].map(outcomes.set_index("lead_id")["closed_at"])
    closed = closed_at.notna() & (closed_at <= moment)
    later = closed_at.notna() & (closed_at > moment)
    return ScoredSelection(
        scored=mine[~closed].reset_index(drop=True),
        moment=moment,
        other_data=other_data,
        closed=int(closed.sum()),
        closed_later=int(later.sum()),
    )


def _warn_spaced_ids(others: pd.Series, lead_ids: pd.Series) -> None:
    """Warn when scored rows left out as another data set's are the data's own leads whose
    ids gained or lost spaces around them since the scoring run (the leads table exported
    anew): they would leave the report in silence, as if closed. Ids are not stripped to
    match, since the scored table keeps each id as the leads table wrote it."""
    distinct = pd.Series(pd.unique(others.astype(str))).iloc[:UNKNOWN_ID_SAMPLE]
    spaced = spaced_ids(distinct, lead_ids)
    if spaced:
        logger.warning(
            "scored leads: %s row(s) are left out as no lead of the data; %s. %s",
            f"{len(others):,}",
            spaced_ids_note(spaced),
            SPACED_IDS_FIX,
        )


def channel_columns(columns: Iterable[str]) -> list[list[str]]:
    """The columns whose name reads as the lead's channel, per tier of :data:`CHANNEL_WORDS`
    (first tier first; a tier may be empty), each in the order of ``columns``.

    A name reads as a channel when its last word is one of the tier's words (``Source``,
    ``Lead Source``, ``Original Source``, ``utm_source``, ``Channel``, ``Lead Origin``): the
    last word, since a CRM export names the details of a channel after it too (HubSpot's
    ``Original Source Drill-Down 1`` is the campaign or site under ``Original Source``). A
    name with a word of :data:`NOT_CHANNEL_WORDS` is none (``Record Source``, ``Preferred
    Contact Channel``).
    """
    tiers: list[list[str]] = [[] for _ in CHANNEL_WORDS]
    for column in columns:
        words = name_words(str(column))
        if NOT_CHANNEL_WORDS.intersection(words):
            continue
        for tier, names in zip(tiers, CHANNEL_WORDS, strict=True):
            if words and words[-1] in names:
                tier.append(column)
                break
    return tiers


def channel_column(columns: Iterable[str]) -> str | None:
    """The lead's channel column among ``columns``, or ``None`` when none or several could be.

    One rule for every caller (``report channels --spec`` and the model report's channel
    table), so both group by the same column. The first tier of :func:`channel_columns` that
    holds any column decides: its one column, or ``None`` when it holds several, since
    ``Original Source`` against ``Latest Source`` (first touch or last) is the user's choice,
    not a guess to make for them. A ``channel`` or ``source`` column wins over an ``origin``
    one: in CRM exports the origin tends to say how the record was created (X Education's
    ``Lead Origin``: landing page submission, lead import, API) and the source the marketing
    channel that spend is booked against (its ``Lead Source``: Google, Olark Chat, Reference),
    which is what a channel report with costs needs; a data set with an origin only (Olist's
    ``origin``) is grouped by it.
    """
    candidates = channel_candidates(columns)
    return candidates[0] if len(candidates) == 1 else None


def channel_candidates(columns: Iterable[str]) -> list[str]:
    """The columns of the first tier of :func:`channel_columns` that holds any: the one
    :func:`channel_column` picks, or the several it cannot choose between (to name them)."""
    return next((tier for tier in channel_columns(columns) if tier), [])


#: How the costs file is named in its errors when the caller does not name it (a frame
#: passed in Python).
COSTS_FILE = "the costs file"


def channel_report(
    scored: pd.DataFrame,
    attributes: pd.DataFrame,
    *,
    by: Sequence[str],
    spend: pd.DataFrame | None = None,
    deal_value: float | None = None,
    spend_source: str = COSTS_FILE,
) -> pd.DataFrame:
    """Leads, MQLs, SQLs, rates and expected wins per value of ``by`` (and cost where known).

    Parameters
    ----------
    scored : latest scored leads (``lead_id``, ``stage``, ``probability``), all of them leads
        of ``attributes`` (select them with :func:`open_scored_leads`: a lead missing there
        lands in a "(none)" group).
    attributes : ``lead_id`` and the columns named in ``by`` (channel, campaign, ...).
    by : grouping columns, coarsest first (e.g. ``["source", "campaign"]``).
    spend : ``channel`` and ``spend`` per channel; channels are matched to the values of
        ``by[0]``, ignoring case and spacing, when ``by`` is that one column (spend is per
        channel: rows grouped by two columns get no cost). Cost channels matching no value
        are logged as a warning; when none matches (grouped by campaign, say) the cost columns
        are left out rather than shown empty.
    deal_value : value of a won deal, for value per lead and, with ``spend``, ROI
        ((value - spend) / spend; empty where the spend is 0): a positive, finite amount
        (:func:`check_deal_value`).
    spend_source : how errors in ``spend`` name it (the costs file's path).
    """
    check_deal_value(deal_value)
    missing = [c for c in ("lead_id", *by) if c not in attributes.columns]
    if missing:
        # the attributes' own columns, not event data's "source": a flat table has its own
        known = [str(c) for c in attributes.columns if c != "lead_id"]
        raise DataError(
            f"the lead attributes have no column {missing[0]!r}{closest_names(missing[0], known)}",
            f"Group by one of their columns: {shortened_list([repr(c) for c in known], 12)}.",
        )
    joined = scored[["lead_id", "stage", "probability"]].merge(
        attributes[["lead_id", *by]].drop_duplicates("lead_id"), on="lead_id", how="left"
    )
    if joined.empty:
        raise DataError("no scored lead to report on", "Run `leadscore score` first.")
    spellings = {column: _spellings(attributes[column], column) for column in by}
    for column in by:
        joined[column] = _respell(joined[column], spellings[column])
    joined["is_mql"] = joined["stage"].isin(["mql", "sql"])
    joined["is_sql"] = joined["stage"].eq("sql")
    grouped = joined.groupby(list(by), observed=True, sort=True)
    report = pd.DataFrame(
        {
            "leads": grouped.size(),
            "mqls": grouped["is_mql"].sum(),
            "sqls": grouped["is_sql"].sum(),
            "expected_wins": grouped["probability"].sum(),
        }
    )
    report["mql_rate"] = report["mqls"] / report["leads"]
    report["sql_rate"] = report["sqls"] / report["leads"]
    report["expected_win_rate"] = report["expected_wins"] / report["leads"]
    report = report[list(REPORT_COLUMNS)].reset_index()
    if deal_value is not None:
        report["value_per_lead"] = report["expected_win_rate"] * deal_value
    if spend is not None and len(by) == 1:
        brought = _respell(attributes[by[0]], spellings[by[0]]).value_counts()
        report = _add_costs(report, spend, by[0], deal_value, brought, spend_source)
    return ranked_by_sql_rate(report)


def check_deal_value(value: float | None, name: str = "deal_value") -> None:
    """Refuse a deal value (``name``, as the caller calls it) that is not a positive, finite
    amount: a negative one made every channel's value and ROI negative, and an infinite or
    NaN one every figure that uses it, without a word."""
    if value is None:
        return
    if not np.isfinite(value) or value <= 0:
        raise DataError(
            f"{name} {value:g} is not a positive amount",
            f"Give {name} the value of a won deal, such as 6000; leave it out for no value "
            "columns.",
        )


#: Groups with fewer leads than this are ranked after the others (:func:`ranked_by_sql_rate`).
SMALL_GROUP = 10
#: How a channel report's rows are ordered, in words, for under the printed table.
RANK_NOTE = (
    f"rows: groups of {SMALL_GROUP} or more leads first, then smaller ones; each part by the "
    "lower end of its SQL rate's 95% interval (Wilson), highest first, so that 2 SQLs of 2 "
    "leads do not top the table"
)


def ranked_by_sql_rate(report: pd.DataFrame) -> pd.DataFrame:
    """``report``'s rows, groups of :data:`SMALL_GROUP` leads or more first, each part by the
    lower end of the SQL rate's 95% Wilson interval, then by leads.

    Ranked by the rate itself, a channel whose one lead is an SQL (100%) topped channels of
    hundreds, as :func:`leadscore.plots.conversion_figure` guards against with its whiskers;
    Wilson's lower bound alone still puts 2 of 2 (34%) above 40 of 100 (31%), so the
    smallest groups go last. :data:`RANK_NOTE` says so under the printed table.
    """
    leads = report["leads"].to_numpy(dtype="float64")
    rate = report["sql_rate"].to_numpy(dtype="float64")
    low, _ = wilson_interval(np.nan_to_num(rate), np.maximum(leads, 1.0))
    order = pd.DataFrame({"small": leads < SMALL_GROUP, "low": -low, "leads": -leads})
    ranked = order.sort_values(["small", "low", "leads"], kind="stable").index
    return report.loc[ranked].reset_index(drop=True)


def shown_shares(values: Sequence[float]) -> list[str]:
    """``values`` (counts or shares) as whole percentages of their sum that add up to 100%.

    Each value rounded alone can give 46% + 36% + 19% = 101%, and a stage of 4 of 1,848 leads
    "0%": the percentages are rounded by largest remainder (the floors, then a point each to
    the largest remainders), and a share that is neither 0 nor all reads "<1%" or ">99%"
    where it rounds to 0% or 100%. :func:`leadscore.monitoring._shown_share`, which writes
    one share in a sentence, raises such a share to "1%" or lowers it to "99%" instead: a
    sentence has no column to add up. Missing values give "".
    """
    x = np.asarray(values, dtype="float64")
    known = np.isfinite(x) & (x >= 0)
    total = float(x[known].sum())
    if total <= 0:
        return ["0%" if k else "" for k in known]
    exact = np.where(known, 100 * np.where(known, x, 0.0) / total, 0.0)
    whole = np.floor(exact)
    short = int(np.round(100 - whole.sum()))
    if short > 0:
        whole[np.argsort(-(exact - whole), kind="stable")[:short]] += 1
    out = []
    for k, v, w in zip(known, exact, whole, strict=True):
        if not k:
            out.append("")
        elif v > 0 and w == 0:
            out.append("<1%")
        elif v < 100 and w == 100:
            out.append(">99%")
        else:
            out.append(f"{int(w)}%")
    return out


def grouped_values(values: pd.Series, column: str) -> pd.Series:
    """``values`` as a report groups them: as text, spellings that differ only in case or
    spacing as the one most leads carry, missing as "(none)"; ``column`` names them in the
    log line that lists the merged spellings."""
    return _respell(values, _spellings(values, column))


def _spellings(values: pd.Series, column: str) -> dict[str, str]:
    """Each spelling of ``values`` that is read as another -> that one: the spelling most of
    the leads carry among those differing only in case or spacing. Counted on every lead of
    the data, so a row's name does not change with which leads are still open."""
    counts = values.astype("string").value_counts(dropna=True)
    tally = {str(k): int(n) for k, n in counts.items()}
    chosen = preferred_spellings(tally)
    merged = describe_merged(chosen, tally)
    if merged:
        logger.info(
            "%s: values that differ only in case or spacing are one row: %s", column, merged
        )
    return {s: to for s, to in chosen.items() if s != to}


def _respell(values: pd.Series, spellings: dict[str, str]) -> pd.Series:
    """``values`` as text in their group's spelling (:func:`_spellings`), missing as "(none)"."""
    text = values.astype("string")
    if spellings:
        text = text.replace(spellings)
    return text.fillna("(none)")


def _cost_key(value: object) -> str:
    """A channel as the costs file is matched to the leads' values: case, spacing and the
    ``_`` or ``-`` between words ignored (``paid_search`` pays for ``Paid Search``)."""
    return fold_text(re.sub(r"[_\-]+", " ", str(value)))


def costs_table(spend: pd.DataFrame, source: str = COSTS_FILE) -> pd.DataFrame:
    """The costs file as (channel, spend): its two columns found whatever their case, spend
    read as lead columns are ("84,000.00" or "$84,000" from a spreadsheet is 84000; blank or
    ``N/A`` is no spend). A spend that is no number, a negative or an infinite one (``inf``
    read as a number made every cost column inf), or amounts in two currencies is a one-line
    error naming ``source`` (the file), the column and the row (counted from 1, the header
    not counted): summed, they would be a cost nobody paid. ``report channels`` calls it on
    the file before any other work."""
    columns = {fold_text(str(c)): c for c in spend.columns}
    missing = [c for c in ("channel", "spend") if c not in columns]
    if missing:
        found = ", ".join(str(c) for c in spend.columns) or "none"
        raise DataError(
            f"{source} has no column {missing[0]!r} (its columns: {found})",
            "Give a CSV with columns channel and spend.",
        )
    column = columns["spend"]
    written = spend[column]
    amounts, bad = parse_numbers(written)
    channels = spend[columns["channel"]].astype("string")

    def where(rows: pd.Series) -> str:
        row = int(np.flatnonzero(rows.to_numpy())[0])
        return f"{source}, column {str(column)!r}, row {row + 1}"

    if bad.any():
        raise DataError(
            f"{where(bad)}: the spend {written[bad].iloc[0]!r} is not a number",
            "Write spend as numbers such as 12500, 12,500.00 or $12,500 (commas group thousands, "
            "a dot marks decimals), without a currency code.",
        )
    negative = amounts < 0
    if negative.any():
        raise DataError(
            f"{where(negative)}: the spend for {channels[negative].iloc[0]!r} is "
            f"{written[negative].iloc[0]}: a spend cannot be negative",
            "Write what each channel cost, as a positive amount (a refund goes into the spend).",
        )
    endless = pd.Series(np.isinf(amounts.to_numpy()), index=amounts.index)
    if endless.any():
        raise DataError(
            f"{where(endless)}: the spend for {channels[endless].iloc[0]!r} is "
            f"{written[endless].iloc[0]}, not a finite amount",
            "Write what each channel cost as a number such as 12500; leave it blank where "
            "the spend is unknown.",
        )
    symbols = sorted(
        written.astype("string")
        .str.extract(f"([{re.escape(CURRENCY_SYMBOLS)}])", expand=False)
        .dropna()
        .unique()
    )
    if len(symbols) > 1:
        raise DataError(
            f"the costs file's spend is in {' and '.join(symbols)}: summing them would add one "
            "currency to another",
            "Convert every spend to one currency.",
        )
    return pd.DataFrame({"channel": channels, "spend": amounts}).dropna(subset=["channel"])


def _add_costs(
    report: pd.DataFrame,
    spend: pd.DataFrame,
    channel: str,
    deal_value: float | None,
    brought_per_channel: pd.Series,
    source: str = COSTS_FILE,
) -> pd.DataFrame:
    spend = costs_table(spend, source)
    # matched as the leads' values are grouped, "_" and "-" as spaces: "PAID SEARCH" and
    # "paid_search" in the costs pay for "Paid Search"
    spend = spend.assign(key=spend["channel"].map(_cost_key))
    # min_count: a channel whose spend is blank has no spend, not a spend of 0
    per_key = spend.groupby("key")["spend"].sum(min_count=1)
    known = sorted(brought_per_channel.index.astype(str))
    known_keys = {_cost_key(c) for c in known}
    cost_channels = sorted(spend["channel"].unique())
    unmatched = [str(c) for c in cost_channels if _cost_key(c) not in known_keys]
    shown_known = shortened_list(known)
    if unmatched and len(unmatched) == len(cost_channels):
        logger.warning(
            "no cost column: none of the costs file's channels (%s) is a value of %r (%s); "
            "spend is per channel, so group by the column whose values the costs file names "
            "(--by COLUMN: --by source for event data)",
            ", ".join(unmatched),
            channel,
            shown_known,
        )
        return report
    if unmatched:
        logger.warning(
            "the costs file's channel(s) %s match no %s of the leads, so their spend is left "
            "out; the %s values are: %s (matched ignoring case and spacing: fix the spelling "
            "in the costs file)",
            ", ".join(repr(c) for c in unmatched),
            channel,
            channel,
            shown_known,
        )
    out = report.copy()
    brought = out[channel].map(brought_per_channel).astype("int64")
    # rows the leads spell apart that one cost row pays for (paid_search, paid search) share
    # its spend by the leads each brought, rather than each being charged all of it
    keys = out[channel].map(_cost_key)
    share = brought / brought.groupby(keys).transform("sum")
    out["spend"] = keys.map(per_key).astype("float64") * share.where(share.notna(), 1.0)
    out["all_leads"] = brought
    with np.errstate(divide="ignore", invalid="ignore"):
        out["cost_per_lead"] = out["spend"] / out["all_leads"]
        out["spend_scored"] = out["cost_per_lead"] * out["leads"]
        out["cost_per_mql"] = out["spend_scored"] / out["mqls"].replace(0, np.nan)
        out["cost_per_expected_win"] = out["spend_scored"] / out["expected_wins"].replace(0, np.nan)
        if deal_value is not None:
            paid = out["spend_scored"].where(out["spend_scored"] > 0)
            out["roi"] = (out["expected_wins"] * deal_value - paid) / paid
    return out


#: The label of the total row over the channels the costs file gives a spend, printed under
#: the ``total`` of every channel when some channel has none.
PAID_TOTAL = "with spend"


def channel_total(
    report: pd.DataFrame, by: Sequence[str], *, deal_value: float | None = None
) -> pd.DataFrame:
    """The total rows of a :func:`channel_report`, for the printed table (the CSV keeps the
    channels alone, so that summing a column never counts a lead twice).

    Counts and money add up; rates and costs are recomputed from the sums rather than
    averaged. Each row has one basis: the first, ``total`` in the first grouping column,
    covers every channel. Where some channel has no spend (no cost row, or ``N/A``), its
    cost columns stay empty and a second row, :data:`PAID_TOTAL`, totals the channels that
    have one, costs included: a cost per lead over every lead would count free leads as
    paid, and one row of the paid channels' spend and ``all_leads`` beside every channel's
    ``leads`` mixed two bases. :func:`total_note` says so under the printed table."""
    rows = [_total_row(report, by, "total", deal_value)]
    if "spend" in report.columns:
        paid = report[report["spend"].notna()]
        if len(paid) == len(report):
            rows[0].update(_cost_totals(paid, deal_value))
        else:
            rows[0]["all_leads"] = int(report["all_leads"].sum())
            if not paid.empty:
                rows.append(
                    _total_row(paid, by, PAID_TOTAL, deal_value) | _cost_totals(paid, deal_value)
                )
    return pd.DataFrame(rows, columns=list(report.columns))


def _total_row(
    report: pd.DataFrame, by: Sequence[str], label: str, deal_value: float | None
) -> dict[str, object]:
    """The counts and rates of the rows of ``report`` summed, labelled ``label``."""
    total: dict[str, object] = {column: "" for column in by}
    total[by[0]] = label
    counts = {column: int(report[column].sum()) for column in ("leads", "mqls", "sqls")}
    expected_wins = float(report["expected_wins"].sum())
    leads = max(counts["leads"], 1)
    total.update(counts)
    total["expected_wins"] = expected_wins
    total["mql_rate"] = counts["mqls"] / leads
    total["sql_rate"] = counts["sqls"] / leads
    total["expected_win_rate"] = expected_wins / leads
    if "value_per_lead" in report.columns and deal_value is not None:
        total["value_per_lead"] = expected_wins / leads * deal_value
    return total


def _cost_totals(paid: pd.DataFrame, deal_value: float | None) -> dict[str, object]:
    """The cost columns of the channels ``paid`` (all with a spend), summed and divided."""
    spend, all_leads = float(paid["spend"].sum()), int(paid["all_leads"].sum())
    spend_scored = float(paid["spend_scored"].sum())
    expected = float(paid["expected_wins"].sum())
    total: dict[str, object] = {
        "spend": spend,
        "all_leads": all_leads,
        "spend_scored": spend_scored,
        "cost_per_lead": _ratio(spend, all_leads),
        "cost_per_mql": _ratio(spend_scored, float(paid["mqls"].sum())),
        "cost_per_expected_win": _ratio(spend_scored, expected),
    }
    if "roi" in paid.columns and deal_value is not None:
        total["roi"] = _ratio(expected * deal_value - spend_scored, spend_scored)
    return total


def total_note(report: pd.DataFrame, by: Sequence[str]) -> str | None:
    """The line printed under a table with two total rows (:func:`channel_total`), saying
    what each covers, or ``None`` with one: a reader comparing ``total`` with ``with spend``
    must not wonder which channels went where."""
    if "spend" not in report.columns or report["spend"].notna().all():
        return None
    free = report.loc[report["spend"].isna(), by[0]].astype(str).tolist()
    paid = int(report["spend"].notna().sum())
    named = shortened_list([repr(c) for c in free], 5)
    note = (
        f"total: every channel above; its cost columns are empty, since {named} "
        f"{'has' if len(free) == 1 else 'have'} no spend in the costs file"
    )
    if not paid:
        return f"{note}."
    return f"{note}. {PAID_TOTAL}: the {paid} channel(s) with a spend, costs included."


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, missing where the denominator is 0 (no cost per MQL
    without an MQL, no ROI without spend)."""
    return numerator / denominator if denominator > 0 else float("nan")


def _shown(value: float, spec: str) -> str:
    """``value`` formatted by ``spec``, ``-`` where missing. A value that rounds to zero shows
    no sign: an ROI of -0.004 is ``0%``, not a ``-0%`` that reads as a loss, while a real one
    keeps it (``-12%``)."""
    if pd.isna(value):
        return "-"
    text = format(value, spec)
    if text.startswith("-") and not any(c in "123456789" for c in text):
        return text[1:]
    return text


#: What each column of a channel report counts, printed under the tables: the leads are
#: the open leads of the latest scoring, while spend covers the whole period of the costs
#: file, so the basis of each money column is worth a line.
CHANNEL_COLUMN_NOTES: dict[str, str] = {
    "leads": "open leads at the latest scoring",
    "mqls": "of them at MQL or SQL (every SQL is past the MQL cut-off), not MQL alone as "
    "score prints",
    "sqls": "of them at SQL",
    "expected_wins": "sum of their calibrated probabilities: the wins they should bring",
    "value_per_lead": "expected win rate x --deal-value",
    "spend": "all spend of the channel in the costs file, for the whole period",
    "all_leads": "every lead the channel brought in the data, open or closed",
    "cost_per_lead": "spend over all_leads",
    "spend_scored": "cost per lead x the open leads above: their share of the spend",
    "cost_per_mql": "spend_scored over mqls",
    "cost_per_expected_win": "spend_scored over expected_wins",
    "roi": "(expected_wins x --deal-value - spend_scored) / spend_scored: the open leads' "
    "expected return, not the channel's past wins",
}


def format_legend(columns: Sequence[str], *, horizon: str | None = None) -> str:
    """One line per column of :data:`CHANNEL_COLUMN_NOTES` the report holds.

    ``horizon``: event data's outcome window in words ("the model's horizon"), within which
    the expected wins fall; a flat table's model has none (its label is the lead's eventual
    outcome), so without it the line names no window."""
    notes = dict(CHANNEL_COLUMN_NOTES)
    if horizon:
        notes["expected_wins"] += f" within {horizon}"
    width = max((len(c) for c in columns if c in notes), default=0)
    return "\n".join(f"  {c:<{width}}  {notes[c]}" for c in columns if c in notes)


#: Columns printed as whole numbers with thousands commas: money and counts of leads.
_WHOLE_UNITS = frozenset(
    {"spend", "spend_scored", "value_per_lead", "leads", "mqls", "sqls", "all_leads"}
)


def format_report(report: pd.DataFrame, total: pd.DataFrame | None = None) -> str:
    """The report as an aligned text table for the terminal: rates and ROI as percentages
    (the frame holds them as ratios: ROI 1.5 prints ``150%``), money rounded to units, counts
    with thousands commas; ``total`` (:func:`channel_total`) is its last row."""
    shown = report if total is None else pd.concat([report, total], ignore_index=True)
    shown = shown.copy()
    for column in shown.columns:
        if column.endswith("_rate"):
            shown[column] = shown[column].map(lambda v: _shown(v, ".1%"))
        elif column == "expected_wins":
            shown[column] = shown[column].map(lambda v: _shown(v, ",.1f"))
        elif column == "roi":
            shown[column] = shown[column].map(lambda v: _shown(v, ",.0%"))
        elif column in _WHOLE_UNITS or column.startswith("cost_per"):
            shown[column] = shown[column].map(lambda v: _shown(v, ",.0f"))
    return shown.to_string(index=False)


# --------------------------------------------------------------------------- closed loop


def _lead_outcomes(data: ClosedLoopData) -> pd.Series:
    """Each lead's outcome at the extract's end: ``won``, ``lost`` or ``open``, by lead id."""
    ended = data.outcomes.set_index("lead_id")["outcome"].astype("string")
    return ended.reindex(data.leads["lead_id"].to_numpy()).fillna("open").set_axis(data.leads.index)


def funnel_counts(data: ClosedLoopData) -> pd.DataFrame:
    """The closed loop at the extract's end, one row per state: all leads, closed (won and
    lost) and still open, with each count's share of all leads, and the win rate of the
    closed leads (won over closed).

    Only closed leads teach a model anything, and the win rate among them is the base rate
    its probabilities should average to; the open leads are what it will score.
    """
    outcome = _lead_outcomes(data)
    counts = outcome.value_counts()
    n = len(outcome)
    won, lost, open_ = (int(counts.get(k, 0)) for k in ("won", "lost", "open"))
    table = pd.DataFrame(
        {"leads": [n, won + lost, won, lost, open_]},
        index=pd.Index(["all leads", "closed", "won", "lost", "open"], name="state"),
    )
    table["share"] = table["leads"] / n
    table.attrs["win_rate"] = won / (won + lost) if won + lost else float("nan")
    return table


def conversion_by(
    data: ClosedLoopData, column: str, *, confidence: float = 0.95, min_closed: int = 1
) -> pd.DataFrame:
    """Win rate of the closed leads per value of the lead column ``column`` (a channel, a
    campaign), with a Wilson interval, most closed leads first.

    Columns: ``leads`` (all of the group), ``closed``, ``won``, ``win_rate`` (won over
    closed), ``low`` and ``high`` (the ``confidence`` interval of the win rate: a campaign
    with 3 wins of 4 closed leads is no better channel than one with 300 of 600) and
    ``open``. Values are grouped as the channel report groups them (:func:`grouped_values`:
    case and spacing, missing as "(none)"); groups with fewer than ``min_closed`` closed
    leads are left out. ``attrs["win_rate"]`` holds the rate of all closed leads, for a line
    to compare against.
    """
    if column not in data.leads.columns:
        raise DataError(
            f"the leads table has no column {column!r}{closest_names(column, data.leads.columns)}",
            f"Name one of: {shortened_list([str(c) for c in data.leads.columns])}.",
        )
    if not 0 < confidence < 1:
        raise DataError(f"confidence must lie between 0 and 1, got {confidence}", "Give e.g. 0.95.")
    outcome = _lead_outcomes(data)
    group = grouped_values(data.leads[column], column)
    table = (
        pd.crosstab(group, outcome)
        .reindex(columns=["won", "lost", "open"], fill_value=0)
        .rename_axis(index=column, columns=None)
    )
    table["closed"] = table["won"] + table["lost"]
    table["leads"] = table["closed"] + table["open"]
    table = table[table["closed"] >= max(min_closed, 1)]
    table["win_rate"] = table["won"] / table["closed"]
    table["low"], table["high"] = wilson_interval(
        table["win_rate"].to_numpy(), table["closed"].to_numpy(), confidence
    )
    table = table[["leads", "closed", "won", "win_rate", "low", "high", "open"]]
    table = table.sort_values(["closed", "win_rate"], ascending=False, kind="stable")
    closed = outcome.isin(["won", "lost"])
    table.attrs["win_rate"] = (
        float((outcome[closed] == "won").mean()) if closed.any() else float("nan")
    )
    table.attrs["confidence"] = confidence
    return table


def activity_mix(data: ClosedLoopData) -> pd.DataFrame:
    """The activity log by type: how many activities, how many leads did one, and the win
    rate of the closed leads that did one against those that did not (``won_with``,
    ``won_without``), most activities first.

    A type whose leads win far more often than the rest is what the model should learn to
    weigh (a demo request); one that never differs (an e-mail open) tells it little. Only
    activities up to a lead's close count: a won customer's trial use after the deal says
    nothing about how leads become customers.
    """
    outcome = _lead_outcomes(data).set_axis(data.leads["lead_id"].to_numpy())
    closed = outcome[outcome.isin(["won", "lost"])]
    closed_at = data.outcomes.set_index("lead_id")["closed_at"]
    acts = data.activities
    ended = acts["lead_id"].map(closed_at)
    acts = acts[(ended.isna() | (acts["occurred_at"] <= ended)).to_numpy()]
    rows = []
    for kind, ids in acts.groupby(acts["activity_type"].astype("string"), sort=False)["lead_id"]:
        did = closed.index.isin(ids.unique())
        won = closed == "won"
        rows.append(
            {
                "activity_type": kind,
                "activities": len(ids),
                "leads": ids.nunique(),
                "won_with": float(won[did].mean()) if did.any() else float("nan"),
                "won_without": float(won[~did].mean()) if (~did).any() else float("nan"),
            }
        )
    columns = ["activity_type", "activities", "leads", "won_with", "won_without"]
    table = pd.DataFrame(rows, columns=columns).set_index("activity_type")
    return table.sort_values("activities", ascending=False, kind="stable")
