"""The channel report as printed: ROI in percent like the rates, and its help explaining the
columns a reader does not know (spend_scored, ROI)."""

from __future__ import annotations

import pandas as pd
import pytest

from leadscore.cli import main
from leadscore.reports import channel_report, format_report


def _report() -> pd.DataFrame:
    scored = pd.DataFrame(
        {"lead_id": ["a", "b", "c"], "stage": ["lead", "mql", "sql"], "probability": 0.1}
    )
    attributes = pd.DataFrame({"lead_id": ["a", "b", "c"], "source": ["x", "x", "y"]})
    spend = pd.DataFrame({"channel": ["x", "y"], "spend": [1822.0, 1.0]})
    return channel_report(scored, attributes, by=["source"], spend=spend, deal_value=2940)


def test_roi_prints_as_a_percentage_like_the_rates():
    """ROI was printed as a raw ratio (1,750.97) beside rates in percent: it prints in percent
    too, while the frame (and so the CSV) keeps the ratio."""
    report = _report()
    rows = report.set_index("source")
    assert rows.loc["y", "roi"] == pytest.approx((294 - 1) / 1)  # the ratio, as before
    lines = format_report(report).splitlines()
    header = lines[0].split()
    shown = {line.split()[0]: dict(zip(header, line.split(), strict=True)) for line in lines[1:]}
    assert shown["y"]["roi"] == "29,300%"
    assert shown["x"]["roi"] == "-68%"
    assert shown["x"]["sql_rate"] == "0.0%" and shown["y"]["sql_rate"] == "100.0%"


def _help(capsys: pytest.CaptureFixture[str], *command: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_channels_help_explains_spend_scored_and_roi(capsys):
    text = _help(capsys, "report", "channels")
    assert "spend_scored (the scored leads' share of the spend: cost per lead x scored leads)" in (
        text
    )
    assert "printed as a percentage like the rates" in text
    assert "the CSV holds the ratio: 150% is 1.5" in text


def test_a_duckdb_costs_file_is_one_line(tmp_path, capsys):
    """There is no option to name a table of a costs file: a DuckDB file is refused with the
    formats that work, before the scored leads are read."""
    costs = tmp_path / "costs.duckdb"
    costs.write_bytes(b"")
    argv = ["report", "channels", "--data", str(tmp_path / "crm"), "--costs", str(costs)]
    assert main([*argv, "--target", str(tmp_path / "s.duckdb")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "a costs file is a .csv or .parquet file" in err


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (["Original Source", "Original Source Drill-Down 1", "Industry"], "Original Source"),
        (["Lead Origin", "Lead Source", "TotalVisits"], "Lead Source"),  # X Education
        (["landing_page_id", "origin"], "origin"),  # Olist
        (["source", "campaign", "country"], "source"),  # the event form's leads table
        (["LeadSource"], "LeadSource"),
        (["utm_source", "utm_campaign"], "utm_source"),
        (["Channel", "Lead Origin"], "Channel"),
        (["Original Source", "Latest Source"], None),  # first or last touch: not a guess
        (["Industry", "source_id", "Sourced By"], None),
        # how the record was made, how the lead likes to be reached: no channel
        (["Record Source", "utm_medium"], None),
        (["Preferred Contact Channel", "Lead Origin"], "Lead Origin"),
        (["Record Source", "Original Traffic Source"], "Original Traffic Source"),
    ],
)
def test_the_channel_column_is_the_one_whose_name_ends_in_a_channel_word(columns, expected):
    from leadscore.reports import channel_column, channel_columns

    assert channel_column(columns) == expected
    found = [c for tier in channel_columns(columns) for c in tier]
    assert expected is None or found[0] == expected
    assert "Original Source Drill-Down 1" not in found and "source_id" not in found
