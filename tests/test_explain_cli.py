"""``leadscore explain`` through the CLI on a real DuckDB target: what a flat spec's lead card
says of a reason whose value moved, and of a lead closed before any run scored it."""

from __future__ import annotations

import pandas as pd
import pytest

from leadscore.cli import main
from leadscore.reasons import Reason, reasons_json
from leadscore.sinks import COLUMNS, REASONS_SEPARATOR, write_scored_leads
from leadscore.stages import StagePolicy, StageThresholds


def run_rows(as_of: str, leads: dict[str, list[tuple[str, object, float]]]) -> pd.DataFrame:
    """One scoring run of flat-spec leads: per lead its reasons as (column, value,
    contribution), worded as a flat spec's reasons are ("<column>: <value>") and written as
    the scorer writes them (:func:`leadscore.reasons.reasons_json`)."""
    rows = []
    for lead, given in leads.items():
        reasons = [
            Reason(column, column, value, contribution, "fit", f"{column}: {value}")
            for column, value, contribution in given
        ]
        sides = {side: [r for r in reasons if r.direction == side] for side in ("for", "against")}
        rows.append(
            {
                "lead_id": lead,
                "scored_at": pd.Timestamp(as_of) + pd.Timedelta(hours=1),
                "as_of": pd.Timestamp(as_of),
                "model_name": "contacts",
                "model_version": "1",
                "probability": 0.4,
                "score": 40,
                "stage": "mql",
                "previous_stage": None,
                "stage_changed": False,
                "fit_score": 50,
                "engagement_score": 50,
                "reasons_for": REASONS_SEPARATOR.join(r.text for r in sides["for"]),
                "reasons_against": REASONS_SEPARATOR.join(r.text for r in sides["against"]),
                "reasons_json": reasons_json(sides["for"], sides["against"]),
            }
        )
    return pd.DataFrame(rows)[list(COLUMNS)]


def explain(capsys: pytest.CaptureFixture[str], lead: str, target: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["explain", lead, "--target", target])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_reason_that_changed_sides_shows_its_previous_value(tmp_path, capsys):
    """``Meetings Booked: 4 (now for, was against)`` hid that it was 0 before, the news
    itself; a reason whose value did not move shows no "was"."""
    target = str(tmp_path / "scores.duckdb")
    before = {"1000": [("Meetings Booked", 0, -0.2), ("Industry", "Retail", 0.05)]}
    after = {"1000": [("Meetings Booked", 4, 0.3), ("Industry", "Retail", -0.01)]}
    write_scored_leads(run_rows("2026-11-01", before), target)
    write_scored_leads(run_rows("2026-11-08", after), target)
    code, out, err = explain(capsys, "1000", target)
    assert code == 0, err
    turned = next(line for line in out.splitlines() if "changed sides:" in line)
    assert "Meetings Booked: 4, was 0 (now for, was against)" in turned
    assert "Industry: Retail (now against, was for)" in turned  # same value: no "was"


@pytest.mark.parametrize(
    ("now", "before", "shown"),
    [
        ("Country: Spain", "Country not given", "Country: Spain, was not given"),
        ("Country not given", "Country: Spain", "Country not given, was Spain"),
        ("Country: Spain", "Country: Spain", "Country: Spain"),
        # an event reason words its value itself: nothing to add
        ("Has not visited the pricing page lately", "Visited the pricing page 3 times", None),
        ("Pages viewed: 12", "Visits: 3", None),  # not the same label: not its value
    ],
)
def test_the_previous_value_is_read_off_a_label_and_value_sentence(now, before, shown):
    from leadscore.commands.explain import _with_previous

    assert _with_previous(now, before) == (now if shown is None else shown)


def test_a_lead_closed_before_any_run_is_not_sent_to_an_outcomes_table(tmp_path, capsys):
    """A flat spec has no outcomes table: the hint names where a closed lead's outcome is
    in either form, rather than "the data's outcomes" of event data only."""
    target = str(tmp_path / "scores.duckdb")
    rows = run_rows("2026-11-01", {"1001": [("Meetings Booked", 1, 0.1)]})
    write_scored_leads(rows, target, closed=["1000"])
    code, _, err = explain(capsys, "1000", target)
    assert code == 2
    line = err.strip()
    assert len(line.splitlines()) == 1 and "had closed (won or lost) by the run" in line
    assert "data's outcomes" not in line
    assert "the label column of a flat spec" in line and "outcomes table of event data" in line


def test_a_stage_that_moved_with_the_same_score_shows_the_probabilities(tmp_path, capsys):
    """Score 3 -> 3 with a new stage reads as a contradiction: the probabilities behind the
    rounded score show the cut-off that was crossed."""
    target = str(tmp_path / "scores.duckdb")
    reasons = {"1000": [("Pages viewed", 12, 0.1)]}
    before = run_rows("2026-11-01", reasons).assign(probability=0.025, score=3, stage="lead")
    after = run_rows("2026-11-08", reasons).assign(probability=0.035, score=3, stage="mql")
    write_scored_leads(before, target)
    write_scored_leads(after, target)
    code, out, err = explain(capsys, "1000", target)
    assert code == 0, err
    (since,) = [line for line in out.splitlines() if "Since the scoring" in line]
    assert since.endswith("score 3 -> 3 (probability 2.50% -> 3.50%), stage LEAD -> MQL")
    # a score that moved says enough
    later = run_rows("2026-11-15", reasons).assign(probability=0.15, score=15, stage="sql")
    write_scored_leads(later, target)
    code, out, _ = explain(capsys, "1000", target)
    (since,) = [line for line in out.splitlines() if "Since the scoring" in line]
    assert since.endswith("score 3 -> 15, stage MQL -> SQL")


def _cuts(mql: float, sql: float) -> StageThresholds:
    """Fitted cut-offs as a model.json holds them."""
    return StageThresholds.from_dict(
        {"policy": StagePolicy().model_dump(), "mql_threshold_": mql, "sql_threshold_": sql}
    )


def test_the_cut_off_line_names_the_model_and_refuses_one_that_disagrees():
    """A card adds the cut-offs of the model that scored it; another model's figures are
    named as such, and a model whose cut-offs would give the lead another stage, or another
    version of the same model, is left out."""
    from leadscore.commands.explain import CardScale, lead_card

    history = run_rows("2026-11-01", {"7": [("Industry", "Retail", 0.1)]})  # p 0.4, MQL
    same = CardScale("contacts", "1", base_rate=0.3, stages=_cuts(0.25, 0.6))
    line = lead_card(history, scale=same).splitlines()[3]
    assert line == (
        "  Cut-offs: MQL from 25.0%, SQL from 60.0%; a typical lead starts at 30.0%, and the "
        "points of its reasons (with the smaller ones not shown) take this one to 40.0%"
    )
    no_sql = CardScale("contacts", "1", base_rate=0.3, stages=_cuts(0.25, None))
    assert "MQL from 25.0%, no lead reaches SQL;" in lead_card(history, scale=no_sql)
    # scored by the registered version, explained with the folder of the same data set
    registered = history.assign(model_name="leadscore-contacts")
    folder = CardScale("contacts", "abc123", base_rate=0.3, stages=_cuts(0.25, 0.6))
    assert "Cut-offs of contacts abc123 (--model): MQL from 25.0%" in lead_card(
        registered, scale=folder
    )
    other = CardScale("contacts", "abc123", base_rate=0.3, stages=_cuts(0.45, 0.6))
    card = lead_card(registered, scale=other)
    assert "Cut-offs not shown: --model contacts abc123 is not the model that" in card
    assert "MQL from" not in card
    # a model of another data set, even one that would agree on the stage
    olist = CardScale("olist", "def456", base_rate=0.1, stages=_cuts(0.25, 0.6))
    card = lead_card(registered, scale=olist)
    assert "Cut-offs not shown: --model olist def456 is not the model that" in card
    # another version of the same model, even one that would agree on the stage
    version_2 = CardScale("contacts", "2", base_rate=0.3, stages=_cuts(0.25, 0.6))
    card = lead_card(history, scale=version_2)
    assert "Cut-offs not shown: --model contacts v2 is not the model that scored this lead" in (
        card
    )
