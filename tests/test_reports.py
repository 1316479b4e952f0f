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


# --------------------------------------------------------------------------- closed loop


def _closed_loop(seed: int = 0, n: int = 400):
    """Leads of four sources, one written two ways, won at rates that differ by source;
    a share still open, and each closed lead's activities around its close."""
    import numpy as np

    from leadscore.schema import validate_closed_loop

    rng = np.random.default_rng(seed)
    sources = rng.choice(["Paid Search", "paid search", "Organic", "Referral", "Events"], n)
    rate = {"paid search": 0.3, "organic": 0.1, "referral": 0.5, "events": 0.2}
    won = rng.random(n) < np.array([rate[s.lower()] for s in sources])
    closed = rng.random(n) < 0.8
    created = pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 200, n), "D")
    leads = pd.DataFrame(
        {"lead_id": [f"L{i}" for i in range(n)], "created_at": created, "source": sources}
    )
    ended = leads[closed].assign(
        outcome=np.where(won[closed], "won", "lost"),
        closed_at=created[closed] + pd.Timedelta(30, "D"),
    )
    demo = ended[ended["outcome"] == "won"]
    activities = pd.concat(
        [
            # every won lead asks for a demo before its close, and all use the trial after it
            demo.assign(
                occurred_at=demo["closed_at"] - pd.Timedelta(5, "D"), activity_type="form_fill"
            ),
            ended.assign(
                occurred_at=ended["closed_at"] + pd.Timedelta(3, "D"), activity_type="trial_usage"
            ),
            leads.assign(occurred_at=leads["created_at"], activity_type="web_visit"),
        ]
    )[["lead_id", "occurred_at", "activity_type"]]
    data = validate_closed_loop(
        leads, activities, ended[["lead_id", "outcome", "closed_at"]], observed_until="2026-01-01"
    )
    return data, won, closed


def test_funnel_counts_add_up_and_give_the_closed_leads_win_rate():
    from leadscore.reports import funnel_counts

    data, won, closed = _closed_loop()
    funnel = funnel_counts(data)
    leads = funnel["leads"]
    assert leads["all leads"] == len(data.leads) == leads["closed"] + leads["open"]
    assert leads["closed"] == leads["won"] + leads["lost"] == int(closed.sum())
    assert leads["won"] == int((won & closed).sum())
    assert funnel.attrs["win_rate"] == pytest.approx(leads["won"] / leads["closed"])
    assert funnel["share"]["all leads"] == 1.0


def test_conversion_by_groups_spellings_and_brackets_each_rate():
    from leadscore.errors import DataError
    from leadscore.reports import conversion_by

    data, won, closed = _closed_loop()
    table = conversion_by(data, "source")
    assert sorted(table.index) == [
        "Events",
        "Organic",
        "Paid Search",
        "Referral",
    ]  # one row per channel
    assert table["closed"].sum() == int(closed.sum()) and table["won"].sum() == int(
        (won & closed).sum()
    )
    assert (table["leads"] == table["closed"] + table["open"]).all()
    assert ((table["low"] <= table["win_rate"]) & (table["win_rate"] <= table["high"])).all()
    assert table["closed"].is_monotonic_decreasing
    assert table.attrs["win_rate"] == pytest.approx(won[closed].mean())
    # fewer closed leads, a wider interval; a group under min_closed is left out
    width = table["high"] - table["low"]
    assert width.loc[table["closed"].idxmin()] > width.loc[table["closed"].idxmax()]
    fewest = int(table["closed"].min())
    assert (
        table["closed"].idxmin() not in conversion_by(data, "source", min_closed=fewest + 1).index
    )
    with pytest.raises(DataError, match=r"no column 'sourse'.*source"):
        conversion_by(data, "sourse")


def test_activity_mix_counts_only_what_leads_did_before_they_closed():
    from leadscore.reports import activity_mix

    data, _, _ = _closed_loop()
    mix = activity_mix(data)
    # the demo form: every won lead, before its close; trial use after the close is no sign
    assert mix.loc["form_fill", "won_with"] == 1.0 and mix.loc["form_fill", "won_without"] == 0.0
    assert "trial_usage" not in mix.index
    assert mix.loc["web_visit", "leads"] == len(data.leads)


def test_conversion_figure_draws_the_largest_groups_with_their_counts():
    import numpy as np

    from leadscore.plots import conversion_figure
    from leadscore.reports import conversion_by

    data, _, _ = _closed_loop()
    table = conversion_by(data, "source")
    fig = conversion_figure(table, top=3)
    (ax,) = fig.axes
    assert len(ax.patches) == 3
    drawn = sorted(p.get_width() for p in ax.patches)
    largest = table.nlargest(3, "closed")
    np.testing.assert_allclose(drawn, sorted(largest["win_rate"]))
    texts = {t.get_text().strip() for t in ax.texts}
    assert {
        f"{w:,} of {c:,}" for w, c in zip(largest["won"], largest["closed"], strict=True)
    } <= texts
    assert "3 largest of 4" in ax.get_title()


def test_tiny_channels_do_not_top_the_table_and_the_order_is_said():
    """By SQL rate alone, channels of 1 and 2 leads at 100% topped channels of 90 and 41
    (x_education's Reference and Referral Sites)."""
    from leadscore.reports import RANK_NOTE, ranked_by_sql_rate

    report = pd.DataFrame(
        {
            "source": ["Reference", "Referral Sites", "Organic Search", "Google", "Olark"],
            "leads": [2, 1, 41, 90, 56],
            "sql_rate": [1.0, 1.0, 10 / 41, 18 / 90, 3 / 56],
        }
    )
    ranked = ranked_by_sql_rate(report)["source"].tolist()
    assert ranked == ["Organic Search", "Google", "Olark", "Reference", "Referral Sites"]
    assert "lower end of its SQL rate's 95% interval (Wilson)" in RANK_NOTE


def test_shown_shares_add_up_to_100_and_never_read_0():
    from leadscore.reports import shown_shares

    assert shown_shares([844, 657, 347]) == ["46%", "35%", "19%"]
    assert shown_shares([1844, 4]) == [">99%", "<1%"]
    assert shown_shares([0.5, 0.0, float("nan"), 0.5]) == ["50%", "0%", "", "50%"]


def test_expected_wins_names_no_horizon_on_flat_data():
    """A flat table's model has no horizon: the legend said "within the model's horizon"."""
    from leadscore.reports import format_legend

    assert "horizon" not in format_legend(["expected_wins"])
    assert "within the model's horizon" in format_legend(
        ["expected_wins"], horizon="the model's horizon"
    )
