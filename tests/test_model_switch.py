"""What a run does to the runs a target already holds: a model switch, a back-fill by another
version, an as-of scored twice, and another data set's leads in the same target.

A real (small) model scores real synthetic event data into DuckDB, Parquet and SQLite
targets; the previous stages another model gave are read back from the history.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd
import pytest

from leadscore.commands.score import _sql_handoff
from leadscore.config import parse_config
from leadscore.errors import DataError
from leadscore.features import build_training_examples, default_as_of_dates
from leadscore.io import load_closed_loop
from leadscore.scoring import ScoringModel, event_feature_chunks, load_scoring_model, run_scoring
from leadscore.sinks import read_history, read_scored_leads, recorded_closed
from leadscore.synth import SynthParams, write_synthetic
from leadscore.training import train

DAY1 = pd.Timestamp("2026-04-10")
DAY2 = pd.Timestamp("2026-04-11")
DAY3 = pd.Timestamp("2026-04-12")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Synthetic event data and one trained model, scored under two versions of one name."""
    root = tmp_path_factory.mktemp("switch")
    data = root / "crm"
    write_synthetic(SynthParams(n_leads=1500, seed=5, start="2025-06-01"), data, progress=False)
    events = load_closed_loop(data)
    dates = default_as_of_dates(events, 60, every_days=30, warmup_days=60)
    examples = build_training_examples(events, dates, 60, name="crm")
    config = parse_config(
        {
            "cold_start": {"min_wins": 20, "min_leads": 100},
            "quality_gate": {"allow_worse": True},
            "evaluation": {"resamples": 0},
        }
    )
    model = load_scoring_model(train(examples, config).model.save(root / "model")).model
    # another CRM whose ids overlap the first's, with leads of its own (open ones closed there)
    other = root / "acme"
    write_synthetic(SynthParams(n_leads=1500, seed=9, start="2025-06-01"), other, progress=False)
    return {"data": data, "model": model, "other": other}


def _scoring(world: dict[str, object], version: str, name: str = "leadscore-crm") -> ScoringModel:
    model = world["model"]
    assert not isinstance(model, (str, Path))
    return ScoringModel(model=model, name=name, version=version)  # type: ignore[arg-type]


def _score(world, target: str, as_of: pd.Timestamp, version: str, **kwargs):
    """One run of ``version``; ``closed=True`` records the leads closed by ``as_of``, as
    ``score`` does."""
    data = world[kwargs.pop("data", "data")]
    closed: list[pd.Series] | None = [] if kwargs.pop("closed", False) else None
    on_closed = None if closed is None else closed.append
    return run_scoring(
        _scoring(world, version, kwargs.pop("name", "leadscore-crm")),
        event_feature_chunks(data, as_of, chunk_leads=400, on_closed=on_closed),
        target=target,
        as_of=as_of,
        with_reasons=False,
        progress=False,
        closed=closed,
        **kwargs,
    )


TARGETS = {
    "duckdb": lambda folder: str(folder / "scored_leads.duckdb"),
    "parquet": lambda folder: str(folder / "scored_leads.parquet"),
    "sqlite": lambda folder: f"sqlite:///{folder / 'scored_leads.sqlite'}",
}


@pytest.fixture(params=sorted(TARGETS))
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return TARGETS[request.param](tmp_path)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_moves_against_another_versions_stages_are_counted_and_said(world, target, caplog):
    """v1 yesterday, v2 today: every move of today's run is against a stage v1 gave, and the
    run says so in one warning, in its moved line and in the SQL hand-off."""
    _score(world, target, DAY1, "1")
    same = _score(world, target, DAY2, "1")
    assert same.moved_by_other_models() == {} and same.new_sqls_by_other_models() == {}
    assert "against stages given by" not in same.moved_line()
    caplog.set_level(logging.WARNING)
    switched = _score(world, target, DAY3, "2")
    today = read_history(target).query("as_of == @DAY3")
    moved = int(today["stage_changed"].sum())
    assert switched.moved == moved > 0
    assert switched.moved_by_other_models() == {"leadscore-crm v1": moved}
    line = switched.moved_line()
    assert line.startswith(f"{moved:,} moved since their previous scoring, {moved:,} of them ")
    assert "against stages given by leadscore-crm v1: a new model moves leads by itself" in line
    assert [w for w in _warnings(caplog) if "against stages given by" in w] == [line]
    new_sqls = sum(switched.new_sqls().values())
    by_v1 = switched.new_sqls_by_other_models()
    assert sum(by_v1.values()) == new_sqls - switched.new_sqls().get(None, 0)
    if by_v1:
        assert "previously staged by leadscore-crm v1" in _sql_handoff(switched)
    # the history alone tells the same story: the previous row of each mover is v1's
    from leadscore.sinks import run_moves_by_model

    pairs = run_moves_by_model(target, switched.write.run)
    assert sum(n for (b, s, name, _), n in pairs.items() if b and b != s and name) == moved
    assert {v for (b, _, _, v), _n in pairs.items() if b is not None} == {"1"}


def test_a_back_fill_by_another_version_is_warned_and_is_no_news(world, target, caplog):
    """v1 scored 04-10 and 04-12; v2 back-fills 04-11: the run names both dates, says that
    the later run of v1 now counts its moves against v2's stages, and its hand-off line is
    no "new SQLs for sales"."""
    _score(world, target, DAY1, "1")
    _score(world, target, DAY3, "1")
    caplog.set_level(logging.WARNING)
    back = _score(world, target, DAY2, "2")
    found = [w for w in _warnings(caplog) if "back-fill" in w]
    assert len(found) == 1
    assert "as-of 2026-04-11 00:00 is earlier than the latest run of leadscore-crm" in found[0]
    assert "(as of 2026-04-12 00:00)" in found[0]
    assert "later runs of leadscore-crm v1 now count their moves against" in found[0]
    assert back.backfill_before == DAY3
    handoff = _sql_handoff(back)
    assert handoff.startswith("back-fill, no news for sales (the target's latest run is as of ")
    assert "new SQLs for sales" not in handoff
    # the documented rule: a later run's previous stage is the newest earlier row, any model
    from leadscore.sinks import run_moves_by_model

    later = read_history(target).query("as_of == @DAY3")
    assert later["previous_stage"].notna().any()
    pairs = run_moves_by_model(target, later.pipe(lambda f: _run_of(f)))
    assert {v for (b, _, _, v), _n in pairs.items() if b is not None} == {"2"}


def _run_of(rows: pd.DataFrame):
    from leadscore.sinks import RunKey

    return RunKey.from_frame(rows)


def test_an_as_of_scored_again_by_another_version_is_warned(world, target, caplog):
    """Scoring 04-10 with v1 then v2 replaces nothing (two run keys): the second run says
    that v1 had scored that as-of and that scored_leads now holds v2's rows."""
    _score(world, target, DAY1, "1")
    caplog.set_level(logging.WARNING)
    _score(world, target, DAY1, "2")
    found = [w for w in _warnings(caplog) if "was already scored" in w]
    assert len(found) == 1
    assert found[0].startswith("as-of 2026-04-10 00:00 was already scored into ")
    assert "by leadscore-crm v1 (" in found[0]
    assert "scored_leads and later runs' previous stages now take leadscore-crm v2's" in found[0]
    assert set(read_scored_leads(target)["model_version"]) == {"2"}


def test_another_data_set_with_overlapping_ids_is_refused_naming_it(world, target):
    """A second data set (another model name) whose lead ids overlap the target's is refused
    in one line naming the other model and the fix, not as outcomes gone missing: the first
    data set's closed records are no evidence about the second's leads, and scored_leads
    keeps one row per lead_id."""
    _score(world, target, DAY1, "1", closed=True)
    before = read_history(target)
    acme = load_closed_loop(world["other"])
    open_ids = acme.leads["lead_id"].astype(str)
    assert recorded_closed(target, DAY2, open_ids)  # what the old refusal misread
    with pytest.raises(DataError) as err:
        _score(world, target, DAY2, "1", name="leadscore-acme", data="other", closed=True)
    text = str(err.value)
    assert "share their ids with leads leadscore-crm scored into" in text
    assert "leadscore-acme has never scored there" in text
    assert "Score each data set into its own --target" in text and "--same-leads" in text
    assert "recorded as closed" not in text
    pd.testing.assert_frame_equal(read_history(target), before)  # nothing written
    # event data is refused so before any feature is built, ahead of the reopened check
    from leadscore.commands.score import _refuse_before_features

    args = argparse.Namespace(target=target, same_leads=False)
    with pytest.raises(DataError, match="share their ids"):
        _refuse_before_features(args, "leadscore-acme", DAY2, open_ids)
    # the same leads under a new model name (a model renamed) are scored when told
    renamed = _score(world, target, DAY2, "1", name="leadscore-acme", same_leads=True)
    assert renamed.rows > 0


def test_data_sets_with_ids_of_their_own_share_a_target(world, target):
    """Model names whose leads do not overlap are no conflict: both are kept."""
    _score(world, target, DAY1, "1")
    history = read_history(target)
    assert history["lead_id"].nunique() > 0
    from leadscore.scoring import check_shared_leads

    check_shared_leads(target, "leadscore-acme", pd.Series(["no-such-lead-1", "no-such-lead-2"]))


def test_a_model_folder_and_its_registered_name_are_one_data_set(world, target):
    """`score --model models/crm` after runs of `leadscore-crm` scores the same leads: the
    folder is recorded as `crm`, the registered model as `leadscore-crm`, and refusing it as
    another data set would ask for --same-leads on the README's own commands."""
    from leadscore.scoring import check_shared_leads

    _score(world, target, DAY1, "1")
    ids = read_history(target)["lead_id"]
    check_shared_leads(target, "crm", ids)  # no refusal
    with pytest.raises(DataError, match="share their ids"):
        check_shared_leads(target, "acme", ids)
