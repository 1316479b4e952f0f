"""What a flat table's label and dates may not say silently: leads to score whose status
reads like an outcome the spec never declared, label values that differ by a doubled space,
lead dates in the future and wins dated before their lead.

Every table is generated here as a CRM export writes it and read through the public Python
API or the CLI, as a user would.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import yaml

from flat_tables import train_flat_model
from leadscore.cli import main
from leadscore.datasets import closed_rows, load_dataset, prepare_flat_dataset
from leadscore.errors import DataError
from leadscore.specs import parse_spec

WON, LOST = "Closed Won", "Closed Lost"
LABEL = {"column": "Lead Status", "won": [WON], "lost": [LOST], "open": ["Open", "Nurture"]}


def _spec(label: dict[str, object] | None = None, **extra: object):
    """A flat spec of ``leads.csv`` with ``label`` (default :data:`LABEL`)."""
    body = {"name": "nw", "source": "leads.csv", "id": "Lead ID", "label": label or LABEL}
    return parse_spec({**body, **extra})


def _export(n: int, seed: int, statuses: dict[str, float]) -> pd.DataFrame:
    """A CRM export of ``n`` leads whose status is drawn from ``statuses`` (value: share),
    closed leads won more often the more pages they viewed."""
    rng = np.random.default_rng(seed)
    views = rng.poisson(5, n)
    status = rng.choice(list(statuses), n, p=list(statuses.values()))
    closed = np.isin(status, [WON, LOST])
    won = rng.random(n) < 1 / (1 + np.exp(2.0 - 0.3 * views))
    return pd.DataFrame(
        {
            "Lead ID": [f"NW-{100000 + i}" for i in range(n)],
            "Created Date": pd.date_range("2024-01-01", periods=n, freq="5h").strftime(
                "%d/%m/%Y %H:%M"
            ),
            "Lead Status": np.where(closed, np.where(won, WON, LOST), status),
            "Pages Viewed": views,
            "Lead Source": rng.choice(["Organic Search", "Paid Search", "Referral"], n),
        }
    )


# ------------------------------------------------------------- scoring undeclared statuses


@pytest.mark.parametrize(
    "value", ["Closed-Won", "Won", "Disqualified", "Lost", "Closed-Lost", "Closed - Converted"]
)
def test_a_status_that_reads_like_an_outcome_is_refused_at_scoring(value):
    """Training refuses an undeclared status; scoring read it as an open lead and sent a
    customer or a disqualified lead to sales. It is refused at scoring too."""
    statuses = pd.Series(["Open", WON, value, "", value])
    with pytest.raises(DataError) as err:
        closed_rows(statuses, _spec())
    message = str(err.value)
    assert f"holds {value!r}, which reads like an outcome but is neither won" in message
    assert "(2 rows)" in message and "label.won, label.lost or label.open" in message


def test_the_scoring_refusal_names_each_value_as_written_with_its_rows(caplog):
    """The error lists the values that read like an outcome, as written, most rows first,
    with the declared values and where each belongs; an undeclared ``Working`` is no part
    of it."""
    statuses = pd.Series(
        ["Closed-Won"] * 20 + ["Disqualified"] * 10 + ["Working"] * 30 + ["Open"] * 5
    )
    with pytest.raises(DataError) as err:
        closed_rows(statuses, _spec())
    assert str(err.value) == (
        "label column 'Lead Status' of the leads to score holds 2 values that read like an "
        "outcome but are neither won ['Closed Won'], lost ['Closed Lost'] nor open ['Open', "
        "'Nurture'] (30 rows): 'Closed-Won' (20 rows), 'Disqualified' (10 rows); scored as "
        "open leads, closed ones would reach sales. Declare each value under label.won, "
        "label.lost or label.open (leads still in play), or drop those rows ('Closed-Won' "
        "reads like a win: list it under label.won; 'Disqualified' reads like a loss: list it "
        "under label.lost)."
    )


@pytest.mark.parametrize("open_declared", [True, False])
def test_other_undeclared_statuses_are_scored_as_open_with_a_line_naming_them(
    caplog, open_declared
):
    """``Working`` or ``Not Disqualified`` may be leads in play: scored as the README says,
    with one line naming them and their rows (a warning where the spec lists its open
    values and these are not among them)."""
    label = LABEL if open_declared else {k: v for k, v in LABEL.items() if k != "open"}
    statuses = pd.Series(["Working"] * 30 + ["Not Disqualified"] * 4 + [WON, LOST, "Open"])
    with caplog.at_level(logging.INFO, logger="leadscore.datasets"):
        done = closed_rows(statuses, _spec(label))
    assert done.tolist() == [False] * 34 + [True, True, False]
    lines = [r for r in caplog.records if "scored as open" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].levelno == (logging.WARNING if open_declared else logging.INFO)
    assert (
        lines[0]
        .getMessage()
        .startswith(
            f"label Lead Status: {34 + (not open_declared)} lead(s) to score hold a value under "
            "neither label.won, label.lost nor label.open and are scored as open: 'Working' (30), "
            "'Not Disqualified' (4)"
        )
    )


def test_declared_statuses_need_no_line_at_scoring(caplog):
    with caplog.at_level(logging.INFO, logger="leadscore.datasets"):
        done = closed_rows(pd.Series(["Open", WON, "nurture ", LOST, ""]), _spec())
    assert done.tolist() == [False, True, False, True, False]
    assert "scored as open" not in caplog.text


def test_score_refuses_an_export_with_won_statuses_the_spec_never_declared(tmp_path, capsys):
    """End to end: a model trained on an export, then a new export where some open leads
    became ``Closed-Won`` or ``Disqualified``: ``score`` stops with one line and writes
    nothing, where it scored them as open leads before."""
    frame = _export(900, 1, {WON: 0.35, LOST: 0.45, "Open": 0.2})
    frame.to_csv(tmp_path / "leads.csv", index=False)
    body = {"name": "nw", "source": "leads.csv", "id": "Lead ID", "label": LABEL}
    model = train_flat_model(tmp_path, {**body, "order_by": "Created Date"}, rounds=10)
    spec = tmp_path / "spec.yaml"
    capsys.readouterr()

    current = frame.copy()
    open_rows = np.flatnonzero(current["Lead Status"] == "Open")
    current.loc[open_rows[:20], "Lead Status"] = "Closed-Won"
    current.loc[open_rows[20:30], "Lead Status"] = "Disqualified"
    current.to_csv(tmp_path / "current.csv", index=False)
    target = tmp_path / "scored.duckdb"
    argv = ["score", "--spec", str(spec), "--model", str(model), "--no-progress"]
    assert main([*argv, "--input", str(tmp_path / "current.csv"), "--target", str(target)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1
    assert "'Closed-Won' (20 rows), 'Disqualified' (10 rows)" in error[0]
    assert not target.exists()


# ------------------------------------------------------------- spaces inside a label value


def test_a_doubled_space_inside_a_label_value_matches_in_training_and_scoring():
    """``Closed  Won`` (two spaces) is the ``Closed Won`` the spec lists, as ``Paid  Search``
    is one level with ``Paid Search``: a win in training and a closed lead at scoring."""
    frame = _export(300, 2, {WON: 0.4, LOST: 0.6})
    doubled = frame["Lead Status"].eq(WON) & (np.arange(len(frame)) % 3 == 0)
    frame.loc[doubled, "Lead Status"] = "Closed  Won"
    frame.loc[frame["Lead Status"].eq(LOST) & (np.arange(len(frame)) % 4 == 0), "Lead Status"] = (
        "Closed \t Lost"
    )
    data = prepare_flat_dataset(frame, _spec(order_by="Created Date"))
    assert int(data.y.sum()) == int(frame["Lead Status"].isin([WON, "Closed  Won"]).sum())
    done = closed_rows(pd.Series(["Closed  Won", "Closed \t Lost", "Open"]), _spec())
    assert done.tolist() == [True, True, False]


def test_a_label_error_quotes_a_doubled_space_so_it_can_be_seen(tmp_path, capsys):
    """An error is one line, whose runs of spaces collapse: ``'Closed  Won'`` printed as
    ``'Closed Won'`` told the user to list a value the spec already listed. The doubled
    space is written ``\\x20`` in the value and in the declared values alike."""
    frame = _export(600, 3, {WON: 0.4, LOST: 0.6})
    frame.loc[frame["Lead Status"].eq(WON) & (np.arange(len(frame)) % 4 == 0), "Lead Status"] = (
        "Closed  Won"
    )
    frame.to_csv(tmp_path / "leads.csv", index=False)
    spec = tmp_path / "spec.yaml"
    body = {"name": "nw", "source": "leads.csv", "id": "Lead ID", "order_by": "Created Date"}
    label = {"column": "Lead Status", "won": ["Won", "Sold  Out"], "lost": [LOST]}
    spec.write_text(yaml.safe_dump({**body, "label": label}))
    assert main(["validate", "--spec", str(spec)]) == 2
    error = capsys.readouterr().err.strip()
    doubled = int(frame["Lead Status"].eq("Closed  Won").sum())
    assert f"'Closed\\x20\\x20Won' ({doubled} rows)" in error
    assert "won ['Won', 'Sold\\x20\\x20Out']" in error
    assert "'Closed Won', 'Closed\\x20\\x20Won' read like a win" in error


# ------------------------------------------------------------- dates of a flat table


def test_an_order_by_date_in_the_future_is_refused_with_its_lead():
    """A typo such as ``24/11/2062`` became the newest lead, the test fold's and the MLflow
    run's date; the event form refuses the same. The error names how many, the latest as
    read and as written, and its lead."""
    frame = _export(200, 4, {WON: 0.4, LOST: 0.6})
    frame.loc[17, "Created Date"] = "24/11/2062 10:00"
    frame.loc[40, "Created Date"] = "02/01/2061 09:00"
    with pytest.raises(DataError) as err:
        prepare_flat_dataset(frame, _spec(order_by="Created Date"))
    message = str(err.value)
    assert message.startswith(
        "order_by column 'Created Date' holds 2 date(s) after the current time ("
    )
    assert "the latest 2062-11-24 (written '24/11/2062 10:00') for lead 'NW-100017'" in message
    assert "a typo such as 2062" in message


def test_an_order_by_date_later_today_is_no_typo():
    """Local times written without a zone run up to 14 hours ahead of UTC: within a day of
    now is not the future (as in the event form)."""
    frame = _export(200, 5, {WON: 0.4, LOST: 0.6})
    soon = pd.Timestamp.now(tz="UTC").tz_localize(None) + pd.Timedelta(hours=12)
    frame.loc[len(frame) - 1, "Created Date"] = f"{soon:%d/%m/%Y %H:%M}"
    data = prepare_flat_dataset(frame, _spec(order_by="Created Date"))
    assert data.order.max() <= soon


def test_a_win_dated_before_its_lead_counts_as_a_win_with_a_warning(caplog):
    """olist holds a lead won two days before its first contact. The event form refuses an
    outcome closed before its lead; here the lead stays a win (the sale happened) and one
    warning names how many, one lead and both dates."""
    frame = pd.DataFrame(
        {
            "id": list("abcdef"),
            "contact": [
                "2018-01-01",
                "2018-03-08",
                "2018-01-10",
                "2018-02-01",
                "2018-01-20",
                "2018-01-05",
            ],
            "won_date": [
                "2018-01-20 10:00:00",
                "2018-03-06 19:38:55",
                None,
                "2018-01-31 08:00:00",
                None,
                "2018-02-01 12:00:00",
            ],
            "origin": ["x", "y", "x", "y", "x", "y"],
        }
    )
    spec = parse_spec(
        {
            "name": "w",
            "source": "unused.csv",
            "id": "id",
            "order_by": "contact",
            "label": {
                "column": "won_date",
                "won": "not_null",
                "within_days": 30,
                "observed_until": "2018-06-30",
            },
        }
    )
    with caplog.at_level(logging.WARNING, logger="leadscore.datasets"):
        data = prepare_flat_dataset(frame, spec)
    assert dict(zip(data.lead_id, data.y.tolist(), strict=True)) == {
        "a": 1,
        "b": 1,
        "c": 0,
        "d": 1,
        "e": 0,
        "f": 1,
    }
    lines = [r.getMessage() for r in caplog.records if "won before" in r.getMessage()]
    assert lines == [
        "label won_date: 2 lead(s) were won before their contact, e.g. lead 'b': contact "
        "2018-03-08, won_date 2018-03-06 19:38; they count as wins (the sale happened), but "
        "check these dates at the source"
    ]


def test_builtin_olist_still_loads_with_its_one_early_win(shared_data_root, caplog):
    with caplog.at_level(logging.WARNING, logger="leadscore.datasets"):
        data = load_dataset("olist", data_root=shared_data_root)
    assert len(data.y) == 5998 and int(data.y.sum()) == 678
    early = [r.getMessage() for r in caplog.records if "won before" in r.getMessage()]
    assert len(early) == 1 and early[0].startswith(
        "label won_date: 1 lead(s) were won before their first_contact_date, e.g. lead "
    )
    assert "first_contact_date 2018-03-08, won_date 2018-03-06 19:38" in early[0]


def test_without_label_open_the_scoring_refusal_names_won_and_lost_only():
    label = {k: v for k, v in LABEL.items() if k != "open"}
    with pytest.raises(DataError) as err:
        closed_rows(pd.Series(["Closed  Lost ", "Closed-Won", "Working"]), _spec(label))
    assert str(err.value).startswith(
        "label column 'Lead Status' of the leads to score holds 'Closed-Won', which reads like "
        "an outcome but is neither won ['Closed Won'] nor lost ['Closed Lost'] (1 row); "
    )
