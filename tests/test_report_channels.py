"""``leadscore report channels --data``: which scored leads it counts, from every form of data.

The data is a small hand-made event set, so that every expected count can be read off it:
zero-padded ids and Namibia (``NA``) in CSV files, two scoring runs written to a real DuckDB
target (leads that closed in between are not re-scored, as the scorer does; one more closed
after the second run, the report's moment), and another data set's leads scored into the same
target.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from leadscore.cli import main
from leadscore.errors import DataError
from leadscore.io import write_tables
from leadscore.reports import CHANNEL_COLUMN_NOTES
from leadscore.sinks import COLUMNS, write_scored_leads

FIRST = pd.Timestamp("2026-03-01")
#: The latest scoring of the data: the report's moment.
MOMENT = pd.Timestamp("2026-04-01")
#: Another data set scored later into the same target: it must not move the moment.
OTHER_AS_OF = pd.Timestamp("2026-05-01")

#: lead -> (source, campaign, country, probability at FIRST, probability at MOMENT or None)
LEADS: dict[str, tuple[str, str, str, float, float | None]] = {
    "000001": ("paid_search", "spring", "NA", 0.20, 0.25),
    "000002": ("paid_search", "spring", "DE", 0.50, None),  # won before MOMENT
    "000003": ("organic", "blog", "NA", 0.30, None),  # lost before MOMENT
    "000004": ("organic", "blog", "US", 0.60, 0.70),  # won after MOMENT: open then
    "000005": ("referral", "partner", "NA", 0.10, 0.15),
    "000006": ("paid_search", "autumn", "FR", 0.40, 0.45),
    "000007": ("events", "expo", "GB", 0.05, 0.08),
    "000008": ("referral", "partner", "US", 0.30, 0.35),
}
OUTCOMES = pd.DataFrame(
    {
        "lead_id": ["000002", "000003", "000004"],
        "outcome": ["won", "lost", "won"],
        "closed_at": ["2026-03-10", "2026-03-20", "2026-04-20"],
    }
)
#: x_education-style flat leads scored into the same default target.
OTHER_IDS = ["660737", "660728", "660727"]
OPEN_AT_MOMENT = {lead: row[4] for lead, row in LEADS.items() if row[4] is not None}


def event_frames() -> dict[str, pd.DataFrame]:
    """The leads, activities and outcomes of the hand-made data set, ids as text."""
    ids = list(LEADS)
    leads = pd.DataFrame(
        {
            "lead_id": ids,
            "created_at": [f"2026-01-{i + 1:02d}" for i in range(len(ids))],
            "source": [LEADS[i][0] for i in ids],
            "campaign": [LEADS[i][1] for i in ids],
            "country": [LEADS[i][2] for i in ids],
        }
    )
    activities = pd.DataFrame(
        {
            "lead_id": ids,
            "occurred_at": [f"2026-02-{i + 1:02d}" for i in range(len(ids))],
            "activity_type": "page_view",
        }
    )
    return {"leads": leads, "activities": activities, "outcomes": OUTCOMES.copy()}


def scored_run(
    probabilities: dict[str, float], as_of: pd.Timestamp, model: str = "leadscore"
) -> pd.DataFrame:
    """One scoring run's rows, in the scored-leads schema, with the given probabilities."""
    p = np.array(list(probabilities.values()))
    return pd.DataFrame(
        {
            "lead_id": list(probabilities),
            "scored_at": as_of + pd.Timedelta(hours=1),
            "as_of": as_of,
            "model_name": model,
            "model_version": "1",
            "probability": p,
            "score": np.round(p * 100).astype("int64"),
            "stage": np.where(p >= 0.6, "sql", np.where(p >= 0.3, "mql", "lead")),
            "previous_stage": None,
            "stage_changed": False,
            "fit_score": 50,
            "engagement_score": 50,
            "reasons_for": "",
            "reasons_against": "",
            "reasons_json": json.dumps([]),
        }
    )[list(COLUMNS)]


def write_both_runs(target: Path) -> None:
    """Every lead scored at FIRST; at MOMENT only those still open, as the scorer does."""
    write_scored_leads(scored_run({k: v[3] for k, v in LEADS.items()}, FIRST), str(target))
    write_scored_leads(scored_run(OPEN_AT_MOMENT, MOMENT), str(target))


def write_other_data_set(target: Path) -> None:
    other = scored_run(dict(zip(OTHER_IDS, (0.9, 0.8, 0.7), strict=True)), OTHER_AS_OF)
    write_scored_leads(other.assign(model_name="x_education"), str(target))


def csv_folder(root: Path) -> Path:
    """The data as event-form CSV files, ids and country codes written as they are."""
    folder = root / "crm_csv"
    write_tables(event_frames(), folder, fmt="csv")
    text = (folder / "leads.csv").read_text()
    assert "000001," in text and ",NA\n" in text  # what a CRM export looks like
    return folder


def costs_file(root: Path) -> Path:
    path = root / "costs.csv"
    channels = ["paid_search", "organic", "referral", "events"]
    pd.DataFrame({"channel": channels, "spend": [900.0, 300, 400, 80]}).to_csv(path, index=False)
    return path


def report(data: str | Path, target: Path, out: Path, *extra: str) -> pd.DataFrame:
    """Run the command; the written CSV, read with only empty fields missing (``NA`` is a
    country)."""
    argv = ["report", "channels", "--data", str(data), "--target", str(target)]
    assert main([*argv, "--out", str(out), *extra]) == 0
    return pd.read_csv(out, keep_default_na=False, na_values=[""])


def test_zero_padded_ids_and_country_na_are_counted_in_their_channel(tmp_path):
    folder = csv_folder(tmp_path)
    target = tmp_path / "scores.duckdb"
    write_scored_leads(scored_run(OPEN_AT_MOMENT, MOMENT), str(target))

    by_source = report(folder, target, tmp_path / "by_source.csv", "--by", "source")
    counts = dict(zip(by_source["source"], by_source["leads"], strict=True))
    assert counts == {"paid_search": 2, "organic": 1, "referral": 2, "events": 1}
    wins = by_source.set_index("source")["expected_wins"]
    assert wins["paid_search"] == pytest.approx(0.25 + 0.45)
    assert wins["referral"] == pytest.approx(0.15 + 0.35)

    by_country = report(folder, target, tmp_path / "by_country.csv", "--by", "country")
    counts = dict(zip(by_country["country"], by_country["leads"], strict=True))
    assert counts == {"NA": 2, "US": 2, "FR": 1, "GB": 1}  # no "(none)": every lead matched
    assert by_country.set_index("country").loc["NA", "expected_wins"] == pytest.approx(0.40)


def test_duckdb_file_and_sqlite_url_give_the_folders_report(tmp_path, capsys):
    folder = csv_folder(tmp_path)
    target = tmp_path / "scores.duckdb"
    write_both_runs(target)
    costs = ["--costs", str(costs_file(tmp_path)), "--deal-value", "6000"]
    capsys.readouterr()
    from_folder = report(folder, target, tmp_path / "folder.csv", *costs)
    # under the tables, one line per column on the basis of each count and amount
    printed = capsys.readouterr().out
    legend = printed.split("columns:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [line.split()[0] for line in legend] == [
        c for c in CHANNEL_COLUMN_NOTES if c in from_folder.columns
    ]
    assert "roi" in from_folder.columns and "not MQL alone" in printed

    frames = event_frames()
    for frame, column in (
        (frames["leads"], "created_at"),
        (frames["activities"], "occurred_at"),
        (frames["outcomes"], "closed_at"),
    ):
        frame[column] = pd.to_datetime(frame[column])
    crm_duckdb = tmp_path / "crm.duckdb"
    with duckdb.connect(str(crm_duckdb)) as con:
        for name, frame in frames.items():
            con.register("frame", frame)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
            con.unregister("frame")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'crm.sqlite'}")
    with engine.begin() as con:
        for name, frame in frames.items():
            frame.to_sql(name, con, index=False)
    engine.dispose()

    from_duckdb = report(crm_duckdb, target, tmp_path / "duckdb.csv", *costs)
    from_sqlite = report(f"sqlite:///{tmp_path / 'crm.sqlite'}", target, tmp_path / "s.csv", *costs)
    assert from_folder["leads"].sum() == 2 * len(OPEN_AT_MOMENT)  # by source, by source / campaign
    assert from_folder["cost_per_lead"].notna().any()
    pd.testing.assert_frame_equal(from_duckdb, from_folder)
    pd.testing.assert_frame_equal(from_sqlite, from_folder)

    # a DuckDB file that really holds no leads says so, and names the tables it has
    no_leads = tmp_path / "outcomes_only.duckdb"
    with duckdb.connect(str(no_leads)) as con:
        con.execute("CREATE TABLE outcomes AS SELECT 'x' AS lead_id")
    capsys.readouterr()
    argv = ["report", "channels", "--data", str(no_leads), "--target", str(target)]
    assert main([*argv, "--out", str(tmp_path / "none.csv")]) == 2
    err = capsys.readouterr().err
    assert "has no table 'leads' (tables: outcomes)" in err
    assert len(err.strip().splitlines()) == 1


def test_other_data_sets_and_closed_leads_are_left_out(tmp_path, caplog):
    folder = csv_folder(tmp_path)
    target = tmp_path / "scores.duckdb"
    write_both_runs(target)
    write_other_data_set(target)
    caplog.set_level(logging.INFO, logger="leadscore.commands.report")

    out = report(folder, target, tmp_path / "report.csv")
    by_source = out[out["grouped_by"] == "source"]
    assert "(none)" not in set(by_source["source"])
    assert by_source["leads"].sum() == len(OPEN_AT_MOMENT)
    assert by_source["expected_wins"].sum() == pytest.approx(sum(OPEN_AT_MOMENT.values()))
    paid = by_source.set_index("source").loc["paid_search"]
    # 000002 (won before the last run, an MQL at 0.50 in the first) is no lead, MQL or SQL
    assert (paid["leads"], paid["mqls"], paid["sqls"]) == (2, 1, 0)
    # organic: 000003 lost before the moment; 000004 won after it, so it was open then
    organic = by_source.set_index("source").loc["organic"]
    assert (organic["leads"], organic["sqls"]) == (1, 1)
    assert organic["expected_wins"] == pytest.approx(0.70)

    logged = caplog.text
    assert "left out 3 of 11 scored lead(s)" in logged and "another data set" in logged
    assert "left out 2 scored lead(s) of" in logged
    assert "closed (won or lost) at or before 2026-04-01 00:00:00" in logged
    assert "1 lead(s) closed after 2026-04-01 00:00:00 still count" in logged


def test_nothing_left_to_count_is_a_one_line_error(tmp_path, capsys):
    folder = csv_folder(tmp_path)
    others_only = tmp_path / "others.duckdb"
    write_other_data_set(others_only)
    argv = ["report", "channels", "--data", str(folder), "--out", str(tmp_path / "r.csv")]
    assert main([*argv, "--target", str(others_only)]) == 2
    err = capsys.readouterr().err
    assert "none of the 3 scored leads" in err and "Score that data first" in err

    # scored from an older extract, where their outcomes (dated before the run) were missing
    closed_only = tmp_path / "closed.duckdb"
    write_scored_leads(scored_run({"000002": 0.5, "000003": 0.3}, MOMENT), str(closed_only))
    assert main([*argv, "--target", str(closed_only)]) == 2
    err = capsys.readouterr().err
    assert "all 2 scored leads" in err and "were closed (won or lost) by 2026-04-01" in err
    assert "Score its open leads again" in err
    assert not (tmp_path / "r.csv").exists()


def test_closed_means_at_or_before_the_latest_scoring_of_the_data():
    from leadscore.reports import open_scored_leads

    scored = pd.concat(
        [
            scored_run({"a": 0.2, "b": 0.4}, FIRST),
            scored_run({"c": 0.6}, MOMENT),
            scored_run({"z": 0.9}, OTHER_AS_OF),  # not the data's: it does not set the moment
        ],
        ignore_index=True,
    )
    outcomes = pd.DataFrame(
        {"lead_id": ["a", "c"], "outcome": ["won", "lost"], "closed_at": [MOMENT, OTHER_AS_OF]}
    )
    picked = open_scored_leads(scored, pd.Series(["a", "b", "c", "d"]), outcomes)
    assert picked.scored["lead_id"].tolist() == ["b", "c"]  # "a" closed at the moment itself
    assert picked.moment == MOMENT
    assert (picked.other_data, picked.closed, picked.closed_later) == (1, 1, 1)


def test_scored_ids_that_differ_from_the_leads_only_by_spaces_are_warned_about(caplog):
    """A leads table exported anew with padded ids (" b" for "b") leaves its scored rows out
    as another data set's: the warning names the spaces, and the ids are not stripped."""
    from leadscore.reports import open_scored_leads

    scored = pd.concat(
        [scored_run({"a": 0.2, "b": 0.4}, MOMENT), scored_run({"z": 0.9}, MOMENT)],
        ignore_index=True,
    )
    outcomes = pd.DataFrame(
        {"lead_id": ["x"], "outcome": ["won"], "closed_at": [pd.Timestamp("2020-01-01")]}
    )
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        picked = open_scored_leads(scored, pd.Series(["a", " b "]), outcomes)
    assert picked.scored["lead_id"].tolist() == ["a"] and picked.other_data == 2
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert said == [
        "scored leads: 2 row(s) are left out as no lead of the data; 1 of those id(s) differ "
        "from a lead's id only by spaces around them ('b' vs ' b '). Strip the spaces around "
        "the ids in the export (leadscore matches ids exactly as written)."
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        open_scored_leads(scored, pd.Series(["a", "b"]), outcomes)  # "z": another data set's
    assert caplog.text == ""


def test_roi_is_the_return_over_the_spend(tmp_path):
    """ROI = (expected value - spend) / spend: a channel whose value per lead is below its
    cost per lead has a negative ROI, and the value reads the same in the CSV."""
    from leadscore.reports import channel_report

    scored = pd.DataFrame(
        {"lead_id": ["a", "b", "c"], "stage": ["lead", "mql", "sql"], "probability": 0.1}
    )
    attributes = pd.DataFrame({"lead_id": ["a", "b", "c"], "source": ["x", "x", "y"]})
    spend = pd.DataFrame({"channel": ["x", "y"], "spend": [1822.0, 100.0]})
    out = channel_report(scored, attributes, by=["source"], spend=spend, deal_value=2940)
    rows = out.set_index("source")
    # x: value per lead 294 against cost per lead 911
    assert rows.loc["x", "value_per_lead"] == pytest.approx(294)
    assert rows.loc["x", "cost_per_lead"] == pytest.approx(911)
    assert rows.loc["x", "roi"] == pytest.approx((294 - 911) / 911)
    assert rows.loc["y", "roi"] == pytest.approx((294 - 100) / 100)


def test_a_channel_without_spend_has_no_roi_and_value_needs_no_costs():
    """A channel that cost nothing has no ROI (not infinity); a deal value without a costs
    file still gives the value per lead, rather than being ignored."""
    from leadscore.reports import channel_report, format_report

    scored = pd.DataFrame(
        {"lead_id": ["a", "b", "c"], "stage": ["lead", "mql", "sql"], "probability": 0.2}
    )
    attributes = pd.DataFrame({"lead_id": ["a", "b", "c"], "source": ["x", "x", "organic"]})
    spend = pd.DataFrame({"channel": ["x", "organic"], "spend": [100.0, 0.0]})
    out = channel_report(scored, attributes, by=["source"], spend=spend, deal_value=1000)
    rows = out.set_index("source")
    assert pd.isna(rows.loc["organic", "roi"])
    assert rows.loc["x", "roi"] == pytest.approx((400 - 100) / 100)
    shown = format_report(out)
    assert "inf" not in shown
    assert shown.splitlines()[1 + list(out["source"]).index("organic")].split()[-1] == "-"

    no_costs = channel_report(scored, attributes, by=["source"], deal_value=1000)
    assert no_costs.set_index("source")["value_per_lead"].to_dict() == pytest.approx(
        {"x": 200.0, "organic": 200.0}
    )
    assert "roi" not in no_costs.columns


def test_an_roi_that_rounds_to_zero_prints_without_a_minus():
    """-0.4% breaks even as the table rounds it: ``0%``, not a ``-0%`` that reads as a loss;
    a real loss keeps its sign."""
    from leadscore.reports import format_report

    out = pd.DataFrame(
        {
            "source": ["even", "loss", "gain", "free"],
            "mql_rate": [0.5, -0.0, 0.25, 0.0],
            "spend": [100.0, 100.0, 100.0, 0.0],
            "value_per_lead": [99.6, 88.0, 150.0, -0.2],
            "roi": [-0.004, -0.12, 0.5, np.nan],
        }
    )
    rows = {line.split()[0]: line.split() for line in format_report(out).splitlines()[1:]}
    assert rows["even"][-1] == "0%" and rows["loss"][-1] == "-12%"
    assert rows["gain"][-1] == "50%" and rows["free"][-1] == "-"
    assert rows["loss"][1] == "0.0%" and rows["free"][3] == "0"


def test_spreadsheet_spend_reads_as_numbers_and_text_is_refused():
    """Spend written as a spreadsheet writes it ("1,822.00", "$100") is the same spend as
    1822.0 and 100.0; a currency code is a one-line error naming the value."""
    from leadscore.errors import DataError
    from leadscore.reports import channel_report

    scored = pd.DataFrame({"lead_id": ["a", "b"], "stage": ["lead", "sql"], "probability": 0.1})
    attributes = pd.DataFrame({"lead_id": ["a", "b"], "source": ["x", "y"]})
    as_text = pd.DataFrame({"channel": ["x", "y", "y"], "spend": ["1,822.00", "$100", ""]})
    as_numbers = pd.DataFrame({"channel": ["x", "y"], "spend": [1822.0, 100.0]})
    out = channel_report(scored, attributes, by=["source"], spend=as_text, deal_value=100)
    expected = channel_report(scored, attributes, by=["source"], spend=as_numbers, deal_value=100)
    pd.testing.assert_frame_equal(out, expected)
    with pytest.raises(DataError, match="'90 USD'"):
        channel_report(
            scored,
            attributes,
            by=["source"],
            spend=pd.DataFrame({"channel": ["x"], "spend": ["90 USD"]}),
        )


def test_costs_file_mistakes_are_caught_not_summed():
    """A blank or ``N/A`` spend is no spend (it showed as a spend of 0, a free channel); a
    negative spend and amounts in two currencies are one-line errors rather than a total
    nobody paid; ``Channel,Spend`` headers are read, and a costs file without them names the
    columns it has."""
    from leadscore.errors import DataError
    from leadscore.reports import channel_report

    scored = pd.DataFrame({"lead_id": ["a", "b"], "stage": ["lead", "sql"], "probability": 0.1})
    attributes = pd.DataFrame({"lead_id": ["a", "b"], "source": ["x", "y"]})

    def report(channel: list[str], spend: list[str], header: str = "spend") -> pd.DataFrame:
        costs = pd.DataFrame({"Channel": channel, header: spend})
        return channel_report(scored, attributes, by=["source"], spend=costs, deal_value=100)

    rows = report(["x", "y"], ["100", "N/A"], header="Spend").set_index("source")
    assert rows.loc["x", "spend"] == 100 and pd.isna(rows.loc["y", "spend"])
    assert pd.isna(rows.loc["y", "cost_per_lead"]) and pd.isna(rows.loc["y", "roi"])
    assert pd.isna(report(["x", "y"], ["100", ""]).set_index("source").loc["y", "spend"])
    with pytest.raises(DataError, match=r"spend for 'y' is -500: a spend cannot be negative"):
        report(["x", "y"], ["100", "-500"])
    # inf read as a number had made every cost column inf; the row is named, from 1
    for endless in ("inf", "-inf", "Infinity"):
        with pytest.raises(DataError) as raised:
            report(["x", "y"], ["100", endless])
        message = str(raised.value)
        assert message.startswith("the costs file, column 'spend', row 2: the spend for 'y' ")
        assert "\n" not in message
    assert "not a finite amount" in str(raised.value)
    with pytest.raises(
        DataError, match=r"spend is in \$ and €: summing them .*Convert every spend"
    ):
        report(["x", "y"], ["$28,000", "€3000"])
    with pytest.raises(DataError, match=r"no column 'spend' \(its columns: Channel, Cost\)"):
        report(["x"], ["1"], header="Cost")


def test_two_spellings_one_cost_row_pays_for_share_the_spend():
    """``paid_search`` and ``paid search`` are two rows of the leads' report but one channel
    of the costs file: they share its spend by the leads each brought, so the total is what
    was spent (each row had been charged all of it)."""
    from leadscore.reports import channel_report, channel_total

    ids = [f"l{i}" for i in range(6)]
    sources = ["paid_search"] * 3 + ["paid search", "email", "email"]
    attributes = pd.DataFrame({"lead_id": ids, "source": sources})
    scored = pd.DataFrame({"lead_id": ids, "stage": ["sql", "mql", "lead"] * 2}).assign(
        probability=0.2
    )
    costs = pd.DataFrame({"channel": ["Paid Search", "email"], "spend": [1000, 100]})
    out = channel_report(scored, attributes, by=["source"], spend=costs).set_index("source")
    assert out.loc["paid_search", "spend"] == pytest.approx(750)
    assert out.loc["paid search", "spend"] == pytest.approx(250)
    assert out.loc["paid_search", "cost_per_lead"] == out.loc["paid search", "cost_per_lead"]
    total = channel_total(out.reset_index(), ["source"]).iloc[0]
    assert total["spend"] == pytest.approx(1100)


def test_cost_channels_matching_no_lead_are_named(tmp_path, caplog):
    """A costs file that spells a channel differently (not only in case, spacing or ``_``
    between words: those match) warns with the unmatched names and the known ones; grouping
    by a column that is not
    the channel warns that costs are per channel and leaves the cost columns out instead of
    printing "-" everywhere."""
    folder = csv_folder(tmp_path)
    target = tmp_path / "scores.duckdb"
    write_both_runs(target)
    costs = tmp_path / "costs.csv"
    costs.write_text("channel,spend\nPartners,100\npaid search,900\norganic,300\n")
    caplog.set_level(logging.WARNING, logger="leadscore")

    out = report(folder, target, tmp_path / "r.csv", "--by", "source", "--costs", str(costs))
    warned = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name.startswith("leadscore.report")
    ]
    assert len(warned) == 1
    assert "'Partners' match" in warned[0] and "'paid search'" not in warned[0]
    assert "events, organic, paid_search, referral" in warned[0]
    assert out.set_index("source").loc["organic", "spend"] == 300
    assert out.set_index("source").loc["paid_search", "spend"] == 900

    caplog.clear()
    out = report(folder, target, tmp_path / "c.csv", "--by", "campaign", "--costs", str(costs))
    warned = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name.startswith("leadscore.report")
    ]
    assert len(warned) == 1 and "spend is per channel" in warned[0]
    assert "campaign" in warned[0] and "--by source" in warned[0]
    assert "spend" not in out.columns and "cost_per_lead" not in out.columns

    caplog.clear()
    by_both = ["--by", "source", "campaign", "--costs", str(costs)]
    out = report(folder, target, tmp_path / "b.csv", *by_both)
    warned = [r.getMessage() for r in caplog.records if "cost" in r.getMessage()]
    assert len(warned) == 1 and "no cost column for source / campaign" in warned[0]
    assert "spend" not in out.columns


def test_spellings_of_one_channel_are_one_row_and_costs_match_any_case(caplog):
    """``Paid Search`` and ``paid search`` are one channel, shown as most leads spell it, and
    a costs file writing ``PAID SEARCH`` pays for it: no second row, no spend left out."""
    from leadscore.reports import channel_report

    sources = ["Paid Search"] * 3 + ["paid search", "Organic", "Organic", "organic  "]
    ids = [f"l{i}" for i in range(len(sources))]
    attributes = pd.DataFrame(
        {"lead_id": ids, "source": sources, "campaign": ["Spring", "spring "] * 3 + ["x"]}
    )
    scored = pd.DataFrame(
        {"lead_id": ids[:-1], "stage": ["sql", "mql", "lead", "sql", "lead", "mql"]}
    ).assign(probability=0.25)
    spend = pd.DataFrame({"channel": ["PAID SEARCH", "organic"], "spend": [800.0, 90.0]})
    caplog.set_level(logging.WARNING, logger="leadscore")
    out = channel_report(scored, attributes, by=["source"], spend=spend, deal_value=1000)
    rows = out.set_index("source")
    assert sorted(rows.index) == ["Organic", "Paid Search"]
    assert rows.loc["Paid Search", ["leads", "mqls", "sqls"]].tolist() == [4, 3, 2]
    assert rows.loc["Paid Search", "cost_per_lead"] == pytest.approx(800 / 4)
    assert rows.loc["Organic", "leads"] == 2
    assert rows.loc["Organic", "cost_per_lead"] == pytest.approx(90 / 3)  # 3 leads brought
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    both = channel_report(scored, attributes, by=["source", "campaign"])
    pairs = set(zip(both["source"], both["campaign"], strict=True))
    assert pairs == {("Paid Search", "Spring"), ("Organic", "Spring")}
    assert both["leads"].sum() == len(scored)


def flat_export(root: Path, columns: dict[str, list[str]], **spec_keys: object) -> Path:
    """A CRM export of one row per contact (``Record ID``, ``Create Date``, a ``Deal Stage``
    label and ``columns``) and its spec; returns the spec's path. Every deal is still open,
    as the contacts a channel report is run on are."""
    import yaml

    n = len(next(iter(columns.values())))
    table = pd.DataFrame(
        {
            "Record ID": [str(1000 + i) for i in range(n)],
            "Create Date": [f"2026-01-{i % 28 + 1:02d}" for i in range(n)],
            **columns,
            "Deal Stage": "Qualified To Buy",
        }
    )
    table.to_csv(root / "contacts.csv", index=False)
    spec = {
        "name": "contacts",
        "source": "contacts.csv",
        "id": "Record ID",
        "label": {
            "column": "Deal Stage",
            "won": ["Closed Won"],
            "lost": ["Closed Lost"],
            "open": ["Qualified To Buy"],
        },
        "order_by": "Create Date",
        **spec_keys,
    }
    path = root / "contacts.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def flat_scores(target: Path, n: int) -> dict[str, float]:
    """Scores for the export's ``n`` contacts written to ``target``; their probabilities."""
    probabilities = {str(1000 + i): round(0.05 + 0.9 * i / n, 3) for i in range(n)}
    write_scored_leads(scored_run(probabilities, MOMENT), str(target))
    return probabilities


def test_a_flat_spec_is_grouped_by_its_one_source_column_without_by(tmp_path, caplog):
    """A HubSpot export's ``Original Source`` is its channel (its ``Drill-Down 1`` is a detail
    under it, not a second channel): ``--spec`` needs no ``--by``, and groups as ``--by``
    naming it does."""
    sources = ["PAID_SEARCH", "ORGANIC_SEARCH", "PAID_SEARCH", "OFFLINE", "PAID_SEARCH"] * 4
    detail = ["google", "bing", "linkedin", "expo", "google"] * 4
    spec = flat_export(
        tmp_path, {"Original Source": sources, "Original Source Drill-Down 1": detail}
    )
    target = tmp_path / "scores.duckdb"
    probabilities = flat_scores(target, len(sources))
    argv = ["report", "channels", "--spec", str(spec), "--target", str(target)]
    caplog.set_level(logging.INFO, logger="leadscore")
    assert main([*argv, "--out", str(tmp_path / "auto.csv")]) == 0
    assert "grouping by 'Original Source'" in caplog.text
    auto = pd.read_csv(tmp_path / "auto.csv", keep_default_na=False)
    assert set(auto["grouped_by"]) == {"Original Source"}
    counts = dict(zip(auto["Original Source"], auto["leads"], strict=True))
    assert counts == dict(pd.Series(sources).value_counts())
    wins = auto.set_index("Original Source")["expected_wins"]
    paid = [p for p, s in zip(probabilities.values(), sources, strict=True) if s == "PAID_SEARCH"]
    assert wins["PAID_SEARCH"] == pytest.approx(sum(paid))
    by = ["--by", "Original Source", "--out", str(tmp_path / "by.csv")]
    assert main([*argv, *by]) == 0
    pd.testing.assert_frame_equal(auto, pd.read_csv(tmp_path / "by.csv", keep_default_na=False))


@pytest.mark.parametrize(
    ("columns", "exclude", "expected"),
    [
        # first touch or last touch is the user's choice: both are named
        (["Original Source", "Latest Source"], {}, "('Original Source', 'Latest Source')"),
        (["Lead Source", "Channel"], {}, "('Lead Source', 'Channel')"),
        (["Industry", "Country"], {}, "no column reads as the channel"),
        # an excluded column is no candidate, but the one left is
        (["Original Source", "Latest Source"], {"Latest Source": "set after contact"}, None),
    ],
)
def test_a_flat_spec_asks_for_by_when_the_channel_is_not_one_column(
    tmp_path, capsys, columns, exclude, expected
):
    values = {c: ["a", "b", "c"] * 4 for c in columns}
    spec = flat_export(tmp_path, values, exclude=exclude)
    target = tmp_path / "scores.duckdb"
    flat_scores(target, 12)
    argv = ["report", "channels", "--spec", str(spec), "--target", str(target)]
    code = main([*argv, "--out", str(tmp_path / "out.csv")])
    err = capsys.readouterr().err
    if expected is None:
        assert code == 0, err
        assert set(pd.read_csv(tmp_path / "out.csv")["grouped_by"]) == {"Original Source"}
        return
    assert code == 2 and not (tmp_path / "out.csv").exists()
    line = err.strip()
    assert len(line.splitlines()) == 1 and "--by is needed with --spec contacts" in line
    assert expected in line and "--by" in line.split(". ", 1)[-1]


def test_a_source_wins_over_an_origin_as_in_x_education(tmp_path, caplog):
    """X Education has ``Lead Origin`` (how the record was created: form, import) and ``Lead
    Source`` (Google, Reference: what spend is booked against): the source is the channel,
    and the log names the origin, so a user who wants it knows to ask."""
    origins = ["Landing Page Submission", "API", "Lead Import"] * 4
    sources = ["Google", "Direct Traffic", "Reference", "Google"] * 3
    spec = flat_export(tmp_path, {"Lead Origin": origins, "Lead Source": sources})
    target = tmp_path / "scores.duckdb"
    flat_scores(target, 12)
    caplog.set_level(logging.INFO, logger="leadscore")
    argv = ["report", "channels", "--spec", str(spec), "--target", str(target)]
    assert main([*argv, "--out", str(tmp_path / "out.csv")]) == 0
    out = pd.read_csv(tmp_path / "out.csv")
    assert set(out["grouped_by"]) == {"Lead Source"}
    assert dict(zip(out["Lead Source"], out["leads"], strict=True)) == {
        "Google": 6,
        "Direct Traffic": 3,
        "Reference": 3,
    }
    assert "ranked lower: 'Lead Origin'" in caplog.text


def test_the_total_rows_add_counts_and_recompute_rates_and_costs_on_one_basis_each():
    """The printed totals sum counts and money and recompute each ratio from the sums. A
    channel the costs file does not pay for (z) counts in the ``total`` of every channel,
    whose cost columns then stay empty and whose ``all_leads`` counts every lead; the
    ``with spend`` row totals x and y alone, costs included, so no row mixes the paid
    channels' spend with every channel's leads. The CSV's frame holds the channels alone."""
    from leadscore.reports import PAID_TOTAL, channel_report, channel_total, format_report

    scored = pd.DataFrame(
        {
            "lead_id": list("abcdef"),
            "stage": ["sql", "mql", "lead", "sql", "lead", "mql"],
            "probability": [0.6, 0.3, 0.05, 0.7, 0.1, 0.25],
        }
    )
    attrs = pd.DataFrame({"lead_id": list("abcdefg"), "source": list("xxxyyzx")})
    spend = pd.DataFrame({"channel": ["x", "y"], "spend": [400.0, 100.0]})
    report = channel_report(scored, attrs, by=["source"], spend=spend, deal_value=1000)
    totals = channel_total(report, ["source"], deal_value=1000)
    assert list(totals["source"]) == ["total", PAID_TOTAL] and len(report) == 3
    total, paid = totals.iloc[0], totals.iloc[1]
    assert (total["leads"], total["mqls"], total["sqls"]) == (6, 4, 2)
    assert total["sql_rate"] == pytest.approx(2 / 6)
    assert total["expected_wins"] == pytest.approx(2.0)
    assert total["all_leads"] == 7  # every lead of every channel, z's included
    costs = ["spend", "cost_per_lead", "spend_scored", "cost_per_mql", "roi"]
    assert total[costs].isna().all()
    # z pays nothing in the costs file: x and y alone carry the spend, in their own row
    assert (paid["leads"], paid["mqls"], paid["sqls"]) == (5, 3, 2)
    assert paid["sql_rate"] == pytest.approx(2 / 5)
    assert paid["expected_wins"] == pytest.approx(1.75)
    assert paid["spend"] == pytest.approx(500.0) and paid["all_leads"] == 6
    assert paid["cost_per_lead"] == pytest.approx(500 / 6)
    spend_scored = 400 / 4 * 3 + 100 / 2 * 2
    assert paid["spend_scored"] == pytest.approx(spend_scored)
    assert paid["cost_per_mql"] == pytest.approx(spend_scored / 3)
    assert paid["cost_per_expected_win"] == pytest.approx(spend_scored / 1.75)
    assert paid["roi"] == pytest.approx((1750 - spend_scored) / spend_scored)

    lines = format_report(report, totals).splitlines()
    assert lines[-2].split()[:2] == ["total", "6"] and lines[-2].split()[-1] == "-"
    last = lines[-1].split()
    assert last[:4] == ["with", "spend", "5", "3"] and last[-1] == f"{paid['roi']:.0%}"
    # counts read with thousands commas, as the money does
    big = report.assign(leads=report["leads"] * 1000, all_leads=report["all_leads"] * 1000)
    assert "3,000" in format_report(big) and "4,000" in format_report(big)


def test_one_total_row_when_every_channel_has_spend():
    from leadscore.reports import channel_report, channel_total, total_note

    scored = pd.DataFrame({"lead_id": list("abc"), "stage": "mql", "probability": 0.2})
    attrs = pd.DataFrame({"lead_id": list("abcd"), "source": list("xyyx")})
    spend = pd.DataFrame({"channel": ["x", "y"], "spend": [300.0, 100.0]})
    report = channel_report(scored, attrs, by=["source"], spend=spend)
    totals = channel_total(report, ["source"])
    assert len(totals) == 1 and totals.iloc[0]["all_leads"] == 4
    assert totals.iloc[0]["spend"] == pytest.approx(400.0)
    assert total_note(report, ["source"]) is None


def test_the_printed_report_says_what_each_total_covers(tmp_path, capsys):
    """``report channels --costs`` with a channel the costs file gives no spend: under the
    table, a line says that ``total`` is every channel and which channels have no spend."""
    folder = csv_folder(tmp_path)
    target = tmp_path / "scores.duckdb"
    write_both_runs(target)
    costs = tmp_path / "costs.csv"
    costs.write_text("channel,spend\npaid_search,1000\nevents,N/A\n")
    report(folder, target, tmp_path / "out.csv", "--costs", str(costs), "--by", "source")
    out = capsys.readouterr().out
    table = out.split("\n\n")[0].splitlines()
    assert table[-3].split()[0] == "total" and table[-2].split()[:2] == ["with", "spend"]
    assert table[-1] == (
        "total: every channel above; its cost columns are empty, since 'organic', 'referral', "
        "'events' have no spend in the costs file. with spend: the 1 channel(s) with a spend, "
        "costs included."
    )
    assert "with spend" not in pd.read_csv(tmp_path / "out.csv")["source"].tolist()


@pytest.mark.parametrize("command", ["channels", "backtest"])
def test_by_a_column_the_flat_table_lacks_names_the_closest_of_its_columns(
    tmp_path, capsys, command
):
    """``--by 'Lead source'`` with a spec whose column is ``Lead Source``: the closest column
    and the spec's own columns, not event data's ``--by source`` that failed when followed;
    ``report backtest`` says it the same way."""
    spec = flat_export(tmp_path, {"Lead Source": ["Web", "Ads", "Expo"] * 4})
    target = tmp_path / "scores.duckdb"
    flat_scores(target, 12)
    argv = ["report", command, "--spec", str(spec), "--target", str(target)]
    for by, closest in (("Lead source", " (closest: 'Lead Source')"), ("source", "")):
        out = tmp_path / "out.csv"
        assert main([*argv, "--by", by, "--out", str(out)]) == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and not out.exists()
        assert (
            f"--by {by!r}: the leads of spec 'contacts' have no such column{closest}. "
            in (error[0])
        )
        assert "Name one of their columns: 'Create Date', 'Lead Source', 'Deal Stage'" in error[0]
        assert "--by source" not in error[0]


def test_the_channel_report_names_its_attributes_columns():
    """The library's own check, for a caller that skips the command's: no event-data hint."""
    from leadscore.reports import channel_report

    scored = pd.DataFrame({"lead_id": ["a"], "stage": "lead", "probability": 0.1})
    attrs = pd.DataFrame({"lead_id": ["a"], "Lead Source": ["Web"], "Country": ["DE"]})
    with pytest.raises(DataError) as caught:
        channel_report(scored, attrs, by=["Lead source"])
    assert str(caught.value) == (
        "the lead attributes have no column 'Lead source' (closest: 'Lead Source'). Group by "
        "one of their columns: 'Lead Source', 'Country'."
    )


def test_a_total_by_two_columns_names_the_first_and_has_no_costs():
    from leadscore.reports import channel_report, channel_total

    scored = pd.DataFrame({"lead_id": list("abc"), "stage": "lead", "probability": 0.1})
    attrs = pd.DataFrame(
        {"lead_id": list("abc"), "source": list("xxy"), "campaign": ["c1", "c2", "c3"]}
    )
    report = channel_report(scored, attrs, by=["source", "campaign"])
    total = channel_total(report, ["source", "campaign"]).iloc[0]
    assert (total["source"], total["campaign"], total["leads"]) == ("total", "", 3)
    assert "spend" not in total.index


def test_a_flat_spec_s_missing_values_are_no_channel_of_their_own(tmp_path):
    """The model reads the spec's ``missing_values`` as missing, so the channel report must
    too: ``N/A`` was a row apart from the blank cells' ``(none)``, and ``'Paid '`` apart from
    ``Paid`` although scoring trims it."""
    sources = ["Paid", "", "N/A", "Organic", "n/a", "Paid ", "Paid", "Organic"]
    spec = flat_export(tmp_path, {"Original Source": sources}, missing_values=["N/A"])
    target = tmp_path / "scores.duckdb"
    flat_scores(target, len(sources))
    argv = ["report", "channels", "--spec", str(spec), "--target", str(target)]
    assert main([*argv, "--out", str(tmp_path / "out.csv")]) == 0
    out = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    counts = dict(zip(out["Original Source"], out["leads"], strict=True))
    assert counts == {"Paid": 3, "Organic": 2, "(none)": 3}


def test_mistakes_in_the_arguments_are_one_line_before_any_work(tmp_path, capsys):
    """``--out x.xlsx`` (or a folder) had been refused only after the whole report was
    computed and printed; a costs file with a spend of ``inf`` was accepted and every cost
    column read inf; ``--deal-value -100`` was accepted. Each is one line naming the
    mistake, before the data or the scores are read, and nothing is written."""
    folder = csv_folder(tmp_path)
    target = tmp_path / "scores.duckdb"
    write_both_runs(target)
    argv = ["report", "channels", "--data", str(folder), "--target", str(target)]
    out = tmp_path / "r.csv"
    (tmp_path / "a folder").mkdir()
    endless = tmp_path / "inf.csv"
    endless.write_text("channel,spend\npaid_search,900\norganic,inf\n")
    for extra, said in (
        (["--out", str(tmp_path / "r.xlsx")], "written as .csv or .parquet, not '.xlsx'"),
        (["--out", str(tmp_path / "a folder")], "is a folder"),
        (["--costs", str(endless)], f"{endless}, column 'spend', row 2: the spend for 'organic'"),
        (["--deal-value", "-100"], "--deal-value -100 is not a positive amount"),
        (["--deal-value", "0"], "--deal-value 0 is not a positive amount"),
        (["--deal-value", "nan"], "--deal-value nan is not a positive amount"),
    ):
        if "--out" not in extra:
            extra = [*extra, "--out", str(out)]
        assert main([*argv, *extra]) == 2, extra
        captured = capsys.readouterr()
        (line,) = captured.err.strip().splitlines()
        assert said in line, line
        assert captured.out == ""  # nothing computed and printed first
    assert not out.exists() and not (tmp_path / "r.xlsx").exists()
    # the other reports check --out first too: nothing else is read
    for command in ("backtest", "drift"):
        wrong = ["report", command, "--data", str(tmp_path / "none"), "--out", "x.xlsx"]
        assert main(wrong) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert "--out x.xlsx: a report is written as .csv or .parquet" in line
    # and a right one still reports
    assert main([*argv, "--deal-value", "6000", "--out", str(out)]) == 0
    assert out.exists()
