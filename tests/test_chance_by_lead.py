"""The HTML report says when the chance ECE drew one outcome per lead (event data), and says
nothing of the kind for flat data or for runs logged before the draws were per lead."""

from __future__ import annotations

from leadscore import html_report


def _metrics(chance: dict) -> dict:
    return {
        "n_test": 1401,
        "model": {"roc_auc": 0.767},
        "baselines": {"rule_points": {"roc_auc": 0.754}},
        "uncertainty": {
            "level": 0.95,
            "resamples": 200,
            "n_groups": 826,
            "intervals": {"model": {"roc_auc": [0.71, 0.81]}},
            "roc_auc_gain": {"rule_points": [0.004, 0.025]},
            "ece_by_chance": chance,
        },
    }


def test_the_report_says_the_chance_draws_were_per_lead_on_event_data():
    metrics = _metrics({"mean": 0.031, "upper": 0.045, "n_groups": 826})
    note = html_report._uncertainty_note(metrics, metrics["uncertainty"])
    assert (
        "an ECE of 0.031 on these leads by chance alone (95% of draws below 0.045; each of "
        "the 826 leads drew one outcome for all its rows, 1,401 rows in all)."
    ) in note


def test_flat_runs_and_runs_logged_before_read_as_they_did():
    for chance in (
        {"mean": 0.031, "upper": 0.045, "n_groups": 1401},  # one row per lead
        {"mean": 0.031, "upper": 0.045},  # logged before: the draws were per row
    ):
        metrics = _metrics(chance)
        note = html_report._uncertainty_note(metrics, metrics["uncertainty"])
        assert "an ECE of 0.031 on these leads by chance alone (95% of draws below 0.045)." in note
