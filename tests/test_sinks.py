"""The scored-leads sinks: DuckDB, Parquet, CSV and SQLite round trips, runs, atomicity."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadscore import sinks
from leadscore.errors import DataError
from leadscore.sinks.schema import _DUCKDB_TYPES

FILE_KINDS = ("duckdb", "parquet", "csv", "sqlite")
CANONICAL_DTYPES = {
    "lead_id": "str",
    "scored_at": "datetime64[us]",
    "as_of": "datetime64[us]",
    "model_name": "str",
    "model_version": "str",
    "probability": "float64",
    "score": "int64",
    "stage": "str",
    "previous_stage": "str",
    "stage_changed": "bool",
    "fit_score": "Int64",
    "engagement_score": "Int64",
    "reasons_for": "str",
    "reasons_against": "str",
    "reasons_json": "str",
}
#: Text that breaks naive CSV and SQL quoting.
AWKWARD_TEXT = [
    'Visited the "pricing" page 3 times, twice this week',
    "Line one\nline two; with a semicolon",
    "Ünïcödé — 日本語 ✓",
    "",
    "O'Brien's company, Inc.",
]


def make_scored(
    n: int = 8,
    as_of: str = "2024-05-01",
    *,
    version: str = "1",
    model: str = "leadscore",
    seed: int = 0,
    ids: list[str] | None = None,
    scored_at: str | None = None,
) -> pd.DataFrame:
    """A valid scored-leads frame of ``n`` leads, first scoring (no previous stage)."""
    rng = np.random.default_rng(seed)
    ids = ids if ids is not None else [f"L{i:04d}" for i in range(n)]
    n = len(ids)
    prob = rng.random(n)
    stage = np.where(prob >= 0.6, "sql", np.where(prob >= 0.3, "mql", "lead"))
    reasons = [
        json.dumps(
            [
                {
                    "feature": "pricing_views_30d",
                    "label": "Pricing page views (30 days)",
                    "value": int(i % 4),
                    "contribution": round(float(p) / 10, 6),
                    "direction": "for",
                },
                {
                    "feature": "email_domain",
                    "label": "E-mail domain",
                    "value": "gmail.com",
                    "contribution": -0.01,
                    "direction": "against",
                },
            ]
        )
        for i, p in enumerate(prob)
    ]
    return pd.DataFrame(
        {
            "lead_id": ids,
            "scored_at": pd.Timestamp(scored_at or as_of) + pd.Timedelta(hours=6),
            "as_of": pd.Timestamp(as_of),
            "model_name": model,
            "model_version": version,
            "probability": prob,
            "score": np.round(prob * 100).astype("int64"),
            "stage": stage,
            "previous_stage": None,
            "stage_changed": False,
            "fit_score": rng.integers(0, 101, n),
            "engagement_score": rng.integers(0, 101, n),
            "reasons_for": [AWKWARD_TEXT[i % len(AWKWARD_TEXT)] for i in range(n)],
            "reasons_against": [AWKWARD_TEXT[(i + 2) % len(AWKWARD_TEXT)] for i in range(n)],
            "reasons_json": reasons,
        }
    )


def target_for(kind: str, folder: Path) -> str:
    """A target string of ``kind`` inside ``folder``."""
    return {
        "duckdb": str(folder / "scored_leads.duckdb"),
        "parquet": str(folder / "scored_leads.parquet"),
        "csv": str(folder / "scored_leads.csv"),
        "sqlite": f"sqlite:///{folder / 'scored_leads.sqlite'}",
    }[kind]


def expected_latest(history: pd.DataFrame) -> pd.DataFrame:
    """The latest table computed the slow, obvious way: newest as_of (then scored_at) wins."""
    ordered = history.sort_values(["lead_id", "as_of", "scored_at", "model_name", "model_version"])
    return ordered.groupby("lead_id", sort=True).tail(1).reset_index(drop=True)


def by_lead(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["lead_id", "as_of"]).reset_index(drop=True)


@pytest.fixture(params=FILE_KINDS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return target_for(request.param, tmp_path)


# --------------------------------------------------------------------------- schema


def test_schema_is_defined_once_and_documented() -> None:
    assert tuple(CANONICAL_DTYPES) == sinks.COLUMNS
    assert [c.name for c in sinks.SCORED_LEADS_SCHEMA if c.nullable] == [
        "previous_stage",
        "fit_score",
        "engagement_score",
    ]
    table = sinks.schema_markdown()
    for name in sinks.COLUMNS:
        assert f"| `{name}` |" in table
    assert sinks.ARROW_SCHEMA.names == list(sinks.COLUMNS)


def test_write_then_read_round_trips_every_value_and_dtype(target: str) -> None:
    frame = make_scored(12)
    summary = sinks.write_scored_leads(frame, target)
    assert (summary.rows, summary.replaced_rows, summary.latest_rows) == (12, 0, 12)

    for table in (sinks.read_scored_leads(target), sinks.read_history(target)):
        assert tuple(table.columns) == sinks.COLUMNS
        assert {c: str(t) for c, t in table.dtypes.items()} == CANONICAL_DTYPES
        expected = sinks.validate_scored_leads(frame)
        pd.testing.assert_frame_equal(by_lead(table), by_lead(expected))
    # empty strings stay empty strings and the missing previous stage stays missing
    latest = sinks.read_scored_leads(target)
    assert (latest["reasons_for"] == "").sum() == (frame["reasons_for"] == "").sum() > 0
    assert latest["previous_stage"].isna().all()


def test_duckdb_tables_have_the_schema_types(tmp_path: Path) -> None:
    target = target_for("duckdb", tmp_path)
    sinks.write_scored_leads(make_scored(3), target)
    expected = {c.name: _DUCKDB_TYPES[c.kind] for c in sinks.SCORED_LEADS_SCHEMA}
    with duckdb.connect(target, read_only=True) as con:
        for table in (sinks.LATEST_TABLE, sinks.HISTORY_TABLE):
            described = {r[0]: r[1] for r in con.execute(f"DESCRIBE {table}").fetchall()}
            assert described == expected
            nullable = {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall() if r[2] == "YES"}
            assert nullable == {"previous_stage", "fit_score", "engagement_score"}


def test_parquet_files_carry_the_arrow_schema(tmp_path: Path) -> None:
    target = sinks.parse_target(target_for("parquet", tmp_path))
    sinks.write_scored_leads(make_scored(3), target)
    runs = list(target.history_dir.glob("*.parquet"))
    assert len(runs) == 1
    for path in (target.path, runs[0]):
        schema = pq.read_schema(path)
        assert [(f.name, f.type) for f in schema] == [(f.name, f.type) for f in sinks.ARROW_SCHEMA]


def test_every_parquet_file_has_one_schema_with_or_without_sub_scores(tmp_path: Path) -> None:
    """Run files with sub-scores and without (--no-reasons), a later run's file rewritten by a
    back-fill and the latest file: one Arrow schema, and pandas reads them with one dtype."""
    target = str(tmp_path / "s.parquet")
    sinks.write_scored_leads(make_scored(4, "2024-05-01"), target)
    bare = make_scored(4, "2024-06-01", seed=1).assign(fit_score=None, engagement_score=None)
    sinks.write_scored_leads(bare, target)
    back = make_scored(4, "2024-04-01", seed=2).assign(stage=["sql", "sql", "sql", "sql"])
    sinks.write_scored_leads(back, target)  # rewrites the May file's previous stages
    files = [*sorted((tmp_path / "s_history").glob("*.parquet")), tmp_path / "s.parquet"]
    assert len(files) == 4
    for path in files:
        assert pq.read_schema(path).equals(sinks.ARROW_SCHEMA, check_metadata=True), path
        frame = pd.read_parquet(path)
        assert str(frame["fit_score"].dtype) == "Int64", path
        assert str(frame["score"].dtype) == "int32", path


def test_sqlite_columns_are_typed(tmp_path: Path) -> None:
    import sqlalchemy as sa

    url = target_for("sqlite", tmp_path)
    sinks.write_scored_leads(make_scored(3), url)
    engine = sa.create_engine(url)
    try:
        columns = {c["name"]: c["type"] for c in sa.inspect(engine).get_columns("scored_leads")}
    finally:
        engine.dispose()
    assert list(columns) == list(sinks.COLUMNS)
    assert isinstance(columns["scored_at"], sa.DateTime)
    assert isinstance(columns["probability"], sa.Double | sa.Float)
    assert isinstance(columns["score"], sa.Integer)
    assert isinstance(columns["stage_changed"], sa.Boolean)


# --------------------------------------------------------------------------- runs


def test_history_grows_by_one_row_per_lead_per_run(target: str) -> None:
    sinks.write_scored_leads(make_scored(10, "2024-04-01"), target)
    sinks.write_scored_leads(make_scored(10, "2024-05-01", seed=1), target)
    sinks.write_scored_leads(make_scored(10, "2024-05-01", version="2", seed=2), target)
    history = sinks.read_history(target)
    assert len(history) == 30
    per_run = history.groupby(["lead_id", *sinks.RUN_KEY_COLUMNS]).size()
    assert (per_run == 1).all()
    assert history.groupby(list(sinks.RUN_KEY_COLUMNS)).size().tolist() == [10, 10, 10]
    assert len(sinks.read_scored_leads(target)) == 10


def test_rerunning_the_same_as_of_changes_nothing(target: str) -> None:
    sinks.write_scored_leads(make_scored(10, "2024-04-01"), target)

    def run_may() -> sinks.WriteSummary:
        previous = sinks.previous_stages(target, "2024-05-01")
        scored = sinks.attach_previous_stages(make_scored(10, "2024-05-01", seed=1), previous)
        return sinks.write_scored_leads(scored, target)

    first = run_may()
    latest, history = sinks.read_scored_leads(target), sinks.read_history(target)
    again = run_may()
    assert (first.replaced_rows, again.replaced_rows) == (0, 10)
    pd.testing.assert_frame_equal(sinks.read_scored_leads(target), latest)
    pd.testing.assert_frame_equal(sinks.read_history(target), history)
    if "://" not in target and not target.endswith(".duckdb"):  # one file per run, no more
        assert len(list(sinks.parse_target(target).history_dir.iterdir())) == 2


def test_a_run_committed_while_another_scored_sets_its_previous_stages(
    target: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Two schedules into one target: June's run read the previous stages (April's), then
    May's run committed while June's scored. June's rows take May's stages as their previous
    ones, in both tables, and the log says how many changed; a run whose stages agree with the
    target rewrites nothing and says nothing."""
    ids = [f"L{i:04d}" for i in range(4)]
    sinks.write_scored_leads(make_scored(ids=ids, as_of="2024-04-01").assign(stage="lead"), target)
    june = make_scored(ids=ids, as_of="2024-06-01", seed=3)
    june = june.assign(stage=["sql", "mql", "lead", "lead"])
    june = sinks.attach_previous_stages(june, sinks.previous_stages(target, "2024-06-01"))
    assert (june["previous_stage"] == "lead").all()
    may = make_scored(ids=ids[:3], as_of="2024-05-01", seed=2).assign(stage=["sql", "lead", "mql"])
    may = sinks.attach_previous_stages(may, sinks.previous_stages(target, "2024-05-01"))
    with caplog.at_level(logging.INFO, logger="leadscore.sinks"):
        assert sinks.write_scored_leads(may, target).restaged_rows == 0
        assert "previous stages differed" not in caplog.text
        assert sinks.write_scored_leads(june, target).restaged_rows == 2
    assert "2 of this run's previous stages differed" in caplog.text
    for table in (sinks.read_scored_leads(target), sinks.read_history(target)):
        rows = table[table["as_of"] == pd.Timestamp("2024-06-01")].set_index("lead_id")
        assert rows["previous_stage"].tolist() == ["sql", "lead", "mql", "lead"]
        assert rows["stage_changed"].tolist() == [False, True, True, False]
    moves = {("sql", "sql"): 1, ("lead", "mql"): 1, ("mql", "lead"): 1, ("lead", "lead"): 1}
    assert sinks.run_transitions(target, sinks.RunKey.from_frame(june)) == moves


def test_a_reopened_lead_has_one_previous_stage(target: str) -> None:
    """A lead closed, then scored again, has a closed record and a latest row: it got two
    previous stages, one from each; the newest row before the as-of is the one."""
    ids = ["L0000", "L0001", "L0002"]
    sinks.write_scored_leads(make_scored(ids=ids, as_of="2024-04-01"), target)
    may = make_scored(ids=ids[:2], as_of="2024-05-01", seed=1)
    sinks.write_scored_leads(may, target, closed=["L0002"])
    june = make_scored(ids=ids, as_of="2024-06-01", seed=2).assign(stage=["lead", "mql", "sql"])
    sinks.write_scored_leads(june, target)
    before = sinks.previous_stages(target, "2024-07-01")
    assert before["lead_id"].tolist() == ids
    assert before["stage"].tolist() == ["lead", "mql", "sql"]
    some = sinks.previous_stages(target, "2024-07-01", lead_ids=["L0002"])
    assert some["stage"].tolist() == ["sql"]


def test_previous_stages_look_strictly_before_the_as_of(target: str) -> None:
    assert sinks.previous_stages(target, "2024-05-01").empty
    april = make_scored(6, "2024-04-01")
    sinks.write_scored_leads(april, target)

    same_day = sinks.previous_stages(target, "2024-04-01")
    assert same_day.empty and list(same_day.columns) == ["lead_id", "stage"]
    previous = sinks.previous_stages(target, "2024-05-01")
    assert dict(zip(previous["lead_id"], previous["stage"], strict=True)) == dict(
        zip(april["lead_id"], april["stage"], strict=True)
    )

    may = make_scored(8, "2024-05-01", seed=3)  # two leads are new in May
    scored = sinks.attach_previous_stages(may, previous)
    sinks.write_scored_leads(scored, target)
    after = sinks.previous_stages(target, "2024-05-01")
    pd.testing.assert_frame_equal(after, previous)  # the May run does not see itself

    latest = sinks.read_scored_leads(target).set_index("lead_id")
    new_leads = ["L0006", "L0007"]
    assert latest.loc[new_leads, "previous_stage"].isna().all()
    assert not latest.loc[new_leads, "stage_changed"].any()
    old = latest.drop(index=new_leads)
    assert (old["stage_changed"] == (old["stage"] != old["previous_stage"])).all()
    assert (
        old["previous_stage"].tolist()
        == april.set_index("lead_id").loc[old.index, "stage"].tolist()
    )


def test_previous_stages_filter_by_lead_and_model(target: str) -> None:
    sinks.write_scored_leads(make_scored(5, "2024-04-01"), target)
    sinks.write_scored_leads(make_scored(3, "2024-04-15", model="challenger", seed=9), target)
    some = sinks.previous_stages(target, "2024-05-01", lead_ids=["L0001", "L0004", "nobody"])
    assert some["lead_id"].tolist() == ["L0001", "L0004"]
    champion = sinks.previous_stages(target, "2024-05-01", model_name="leadscore")
    any_model = sinks.previous_stages(target, "2024-05-01")
    challenger = make_scored(3, "2024-04-15", model="challenger", seed=9)
    assert any_model.set_index("lead_id").loc["L0000", "stage"] == challenger["stage"].iloc[0]
    assert champion.set_index("lead_id").loc["L0000", "stage"] == make_scored(5)["stage"].iloc[0]


def test_latest_keeps_the_newest_as_of_even_when_an_older_one_is_rescored(target: str) -> None:
    june = make_scored(4, "2024-06-01", seed=1)
    sinks.write_scored_leads(june, target)
    older = make_scored(6, "2024-05-01", seed=2)  # back-fill an older as-of, two more leads
    sinks.write_scored_leads(older, target)
    latest = sinks.read_scored_leads(target).set_index("lead_id")
    assert (latest.loc[june["lead_id"], "as_of"] == pd.Timestamp("2024-06-01")).all()
    assert latest.loc[june["lead_id"], "probability"].tolist() == june["probability"].tolist()
    assert (latest.loc[["L0004", "L0005"], "as_of"] == pd.Timestamp("2024-05-01")).all()


def test_a_rerun_that_drops_a_lead_falls_back_to_its_earlier_row(target: str) -> None:
    sinks.write_scored_leads(make_scored(3, "2024-04-01"), target)
    sinks.write_scored_leads(make_scored(3, "2024-05-01", seed=1), target)
    sinks.write_scored_leads(make_scored(2, "2024-05-01", seed=1), target)  # L0002 gone
    latest = sinks.read_scored_leads(target).set_index("lead_id")
    assert latest.loc["L0002", "as_of"] == pd.Timestamp("2024-04-01")
    assert len(sinks.read_history(target)) == 5


RUNS = st.lists(
    st.tuples(
        st.sampled_from(["2024-03-01", "2024-04-01", "2024-05-01"]),
        st.sampled_from(["1", "2"]),
        st.lists(st.integers(0, 9), min_size=1, max_size=6, unique=True),
        st.integers(0, 1000),
    ),
    min_size=1,
    max_size=5,
)


def expected_previous_stages(history: pd.DataFrame) -> pd.DataFrame:
    """``history`` with previous_stage and stage_changed computed the slow, obvious way: the
    stage of the lead's newest row strictly before each row's as-of."""
    out = history.copy()
    previous = []
    for row in out.itertuples():
        earlier = history[(history["lead_id"] == row.lead_id) & (history["as_of"] < row.as_of)]
        previous.append(expected_latest(earlier)["stage"].iloc[0] if len(earlier) else np.nan)
    out["previous_stage"] = pd.Series(previous, index=out.index, dtype="str")
    out["stage_changed"] = out["previous_stage"].notna() & (out["previous_stage"] != out["stage"])
    return out


@pytest.mark.parametrize("kind", FILE_KINDS)
@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(runs=RUNS)
def test_tables_match_a_reference_model_for_any_run_sequence(
    kind: str, runs: list[tuple[str, str, list[int], int]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Runs in any order, as the scorer writes them (previous stages attached): back-fills of
    an earlier as-of and re-runs that change or drop leads keep every stored previous_stage
    and stage_changed true, in the history and the latest table."""
    target = target_for(kind, tmp_path_factory.mktemp(kind))
    reference: dict[tuple[str, str], pd.DataFrame] = {}
    for as_of, version, leads, seed in runs:
        frame = make_scored(
            ids=[f"L{i}" for i in leads], as_of=as_of, version=version, seed=seed,
            scored_at=f"2024-06-{1 + seed % 28:02d}",
        )  # fmt: skip
        before = sinks.previous_stages(target, as_of, lead_ids=frame["lead_id"].tolist())
        frame = sinks.attach_previous_stages(frame, before)
        sinks.write_scored_leads(frame, target)
        reference[(as_of, version)] = sinks.validate_scored_leads(frame)
    history = expected_previous_stages(pd.concat(reference.values(), ignore_index=True))
    got_history = sinks.read_history(target)
    order = ["lead_id", "as_of", "model_version"]
    pd.testing.assert_frame_equal(
        got_history.sort_values(order).reset_index(drop=True),
        history.sort_values(order).reset_index(drop=True),
    )
    pd.testing.assert_frame_equal(sinks.read_scored_leads(target), expected_latest(history))
    for as_of in ["2024-03-01", "2024-04-01", "2024-05-01", "2024-07-01"]:
        earlier = expected_latest(history[history["as_of"] < pd.Timestamp(as_of)])
        pd.testing.assert_frame_equal(
            sinks.previous_stages(target, as_of), earlier[["lead_id", "stage"]]
        )


def test_a_back_fill_updates_the_later_rows_previous_stage(target: str) -> None:
    june = make_scored(4, "2024-06-01", seed=1).assign(stage=["lead", "mql", "sql", "lead"])
    sinks.write_scored_leads(june, target)
    may = make_scored(3, "2024-05-01", seed=2).assign(stage=["lead", "lead", "mql"])
    sinks.write_scored_leads(may, target)  # back-fill
    for table in (sinks.read_scored_leads(target), sinks.read_history(target)):
        rows = table[table["as_of"] == pd.Timestamp("2024-06-01")].set_index("lead_id")
        assert rows["previous_stage"].tolist()[:3] == ["lead", "lead", "mql"]
        assert pd.isna(rows.loc["L0003", "previous_stage"])
        assert rows["stage_changed"].tolist() == [False, True, True, False]
    sinks.write_scored_leads(may.iloc[:1], target)  # re-run of May without L0001 and L0002
    latest = sinks.read_scored_leads(target).set_index("lead_id")
    assert latest.loc["L0000", "previous_stage"] == "lead"
    assert latest.loc[["L0001", "L0002", "L0003"], "previous_stage"].isna().all()
    assert latest["stage_changed"].tolist() == [False, False, False, False]


#: Month of each of the ten leads' close (won or lost), None while open: runs as of that
#: month or later know it closed.
CLOSES = [None, "2024-03-01", "2024-04-01", "2024-05-01", None, "2024-04-01", None, "2024-05-01",
          "2024-03-01", None]  # fmt: skip
CLOSING_RUNS = st.lists(
    st.tuples(
        st.sampled_from(["2024-02-01", "2024-03-01", "2024-04-01", "2024-05-01"]),
        st.lists(st.integers(0, 9), min_size=1, max_size=8, unique=True),
        st.integers(0, 1000),
    ),
    min_size=1,
    max_size=5,
)


def closing_run(target: str, as_of: str, leads: list[int], seed: int) -> tuple[pd.DataFrame, set]:
    """One run over ``leads``, as the scorer writes it: the open ones scored, the closed ones
    named closed. Returns the scored rows and the closed ids."""
    stamp = pd.Timestamp(as_of)
    shut = {f"L{i}" for i in leads if CLOSES[i] is not None and pd.Timestamp(CLOSES[i]) <= stamp}
    ids = [f"L{i}" for i in leads if f"L{i}" not in shut] or ["L0"]
    frame = make_scored(ids=ids, as_of=as_of, seed=seed)
    frame = sinks.attach_previous_stages(frame, sinks.previous_stages(target, as_of, lead_ids=ids))
    sinks.write_scored_leads(frame, target, closed=sorted(shut))
    return sinks.validate_scored_leads(frame), shut


@pytest.mark.parametrize("kind", FILE_KINDS)
@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(runs=CLOSING_RUNS)
def test_closed_leads_leave_the_latest_table_in_any_run_order(
    kind: str, runs: list[tuple[str, list[int], int]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """scored_leads holds the leads open at their latest scoring: a lead any run knew closed
    is left out, also after a back-fill scored it when it was still open; a lead no run
    mentions stays; the history keeps every row and its previous stages."""
    target = target_for(kind, tmp_path_factory.mktemp(kind))
    reference: dict[str, pd.DataFrame] = {}
    gone: set[str] = set()  # a closure, once known, is kept (a re-run does not undo it)
    for as_of, leads, seed in runs:
        reference[as_of], shut = closing_run(target, as_of, leads, seed)
        gone |= shut
    history = expected_previous_stages(pd.concat(reference.values(), ignore_index=True))
    order = ["lead_id", "as_of"]
    pd.testing.assert_frame_equal(
        sinks.read_history(target).sort_values(order).reset_index(drop=True),
        history.sort_values(order).reset_index(drop=True),
    )
    expected = expected_latest(history)
    expected = expected[~expected["lead_id"].isin(gone)].reset_index(drop=True)
    pd.testing.assert_frame_equal(sinks.read_scored_leads(target), expected)
    for as_of in ["2024-03-01", "2024-04-01", "2024-06-01"]:
        earlier = expected_latest(history[history["as_of"] < pd.Timestamp(as_of)])
        pd.testing.assert_frame_equal(
            sinks.previous_stages(target, as_of), earlier[["lead_id", "stage"]]
        )


def test_a_closed_lead_leaves_scored_leads_and_comes_back_when_scored_later(target: str) -> None:
    """Closing, a back-fill that must not bring the lead back, a run over other leads that
    leaves it out, and a reopened lead scored at a later as-of."""
    sinks.write_scored_leads(make_scored(3, "2024-03-01"), target)
    sinks.write_scored_leads(make_scored(2, "2024-05-01", seed=1), target, closed=["L0002"])
    latest = sinks.read_scored_leads(target)
    assert latest["lead_id"].tolist() == ["L0000", "L0001"]
    assert len(sinks.read_history(target)) == 5  # the history keeps the closed lead's row
    sinks.write_scored_leads(make_scored(3, "2024-04-01", seed=2), target)  # back-fill
    assert sinks.read_scored_leads(target)["lead_id"].tolist() == ["L0000", "L0001"]
    sinks.write_scored_leads(make_scored(ids=["L0009"], as_of="2024-06-01"), target)
    assert sinks.read_scored_leads(target)["lead_id"].tolist() == ["L0000", "L0001", "L0009"]
    reopened = make_scored(ids=["L0002"], as_of="2024-07-01", seed=3)
    before = sinks.previous_stages(target, "2024-07-01", lead_ids=["L0002"])
    sinks.write_scored_leads(sinks.attach_previous_stages(reopened, before), target)
    latest = sinks.read_scored_leads(target).set_index("lead_id")
    assert latest.index.tolist() == ["L0000", "L0001", "L0002", "L0009"]
    april = make_scored(3, "2024-04-01", seed=2).set_index("lead_id")
    assert latest.loc["L0002", "previous_stage"] == april.loc["L0002", "stage"]
    sinks.write_scored_leads(make_scored(ids=["L0000"], as_of="2024-08-01"), target,
                             closed=["L0002"])  # fmt: skip
    assert sinks.read_scored_leads(target)["lead_id"].tolist() == ["L0000", "L0001", "L0009"]


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_overlapping_runs_into_a_file_target_take_turns(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two runs committing into one Parquet or CSV target at once: each rebuilt the latest
    file from the history it saw, and the later rename lost the other's rows. The history
    folder's lock makes them take turns: both runs are kept, the latest file holds each lead's
    newest row, and each row's previous stage is the one before it."""
    import threading

    target = target_for(kind, tmp_path)
    ids = [f"L{i:05d}" for i in range(20_000)]
    sinks.write_scored_leads(make_scored(ids=ids, as_of="2024-05-01"), target)
    frames = [
        make_scored(ids=ids, as_of=day, seed=i)
        for i, day in enumerate(["2024-07-01", "2024-06-01"])
    ]
    start = threading.Barrier(len(frames))
    errors: list[BaseException] = []

    def write(frame: pd.DataFrame) -> None:
        start.wait()
        try:
            sinks.write_scored_leads(frame, target)
        except BaseException as err:  # handed to the test thread
            errors.append(err)

    threads = [threading.Thread(target=write, args=(f,)) for f in frames]
    with caplog.at_level(logging.INFO, logger="leadscore.sinks"):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert not errors
    assert "waiting for it to finish" in caplog.text
    history = sinks.read_history(target)
    assert history.groupby("as_of").size().to_dict() == {
        pd.Timestamp(day): len(ids) for day in ("2024-05-01", "2024-06-01", "2024-07-01")
    }
    latest = sinks.read_scored_leads(target)
    assert len(latest) == len(ids) and (latest["as_of"] == pd.Timestamp("2024-07-01")).all()
    july = history[history["as_of"] == pd.Timestamp("2024-07-01")].set_index("lead_id")
    june = history[history["as_of"] == pd.Timestamp("2024-06-01")].set_index("lead_id")
    assert july["previous_stage"].tolist() == june.loc[july.index, "stage"].tolist()


def test_a_duckdb_target_another_program_holds_is_named_with_the_program(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A notebook holding the file open for writing: the read waits (saying so), then names
    the program and its PID, and the fix; not DuckDB's advice to open the file read-only,
    which a scorer cannot take."""
    from leadscore.sinks import duckdb_sink

    target = target_for("duckdb", tmp_path)
    sinks.write_scored_leads(make_scored(3), target)
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({target!r}); "
         "print('open', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        monkeypatch.setattr(duckdb_sink, "_LOCK_WAIT_S", 0.5)
        logged = caplog.at_level(logging.INFO, logger="leadscore.sinks")
        with logged, pytest.raises(DataError) as err:
            sinks.read_scored_leads(target)
        message = str(err.value)
        assert "is held open by another program (python" in message
        assert f"PID {holder.pid})" in message and "read_only=True" in message
        assert "-readonly" not in message and "\n" not in message
        assert "waiting up to 0.5 s" in caplog.text
    finally:
        holder.kill()
        holder.wait()
    assert len(sinks.read_scored_leads(target)) == 3  # readable again once it is closed


# --------------------------------------------------------------------------- validation


def _drop(f: pd.DataFrame) -> pd.DataFrame:
    return f.drop(columns="stage")


def _float_score(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(score=f["score"].astype("float64"))


def _text_time(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(as_of=f["as_of"].astype(str))


def _bad_probability(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(probability=f["probability"] * 100)


def _bad_stage(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(stage="won")


def _duplicate(f: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([f, f.iloc[:1]], ignore_index=True)


def _two_runs(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(
        as_of=[pd.Timestamp("2024-05-01")] * (len(f) - 1) + [pd.Timestamp("2024-06-01")]
    )


def _changed_wrong(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(previous_stage=f["stage"], stage_changed=True)


def _bad_json(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(reasons_json="pricing page")


def _reason_keys(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(reasons_json='[{"feature": "x"}]')


def _extra(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(channel="organic")


def _missing_id(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(lead_id=[None, *f["lead_id"].iloc[1:]])


def _score_range(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(fit_score=f["fit_score"] + 200)


def _empty(f: pd.DataFrame) -> pd.DataFrame:
    return f.iloc[:0]


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (_drop, "missing column 'stage'"),
        (_float_score, "score has dtype float64, not integer"),
        (_text_time, "as_of has dtype .*, not a timestamp"),
        (_bad_probability, "probability outside"),
        (_bad_stage, "unknown stage 'won'"),
        (_duplicate, "duplicate lead_id 'L0000'"),
        (_two_runs, "2 different as_of"),
        (_changed_wrong, "stage_changed disagrees"),
        (_bad_json, "not a JSON list"),
        (_reason_keys, "without the keys"),
        (_extra, "unexpected column 'channel'"),
        (_missing_id, "lead_id is empty in 1 row"),
        (_score_range, "fit_score outside 0-100"),
        (_empty, "no rows"),
    ],
)
def test_bad_frames_raise_one_line_and_write_nothing(
    tmp_path: Path, mutate: Callable[[pd.DataFrame], pd.DataFrame], match: str
) -> None:
    target = target_for("duckdb", tmp_path)
    sinks.write_scored_leads(make_scored(5, "2024-04-01"), target)
    before = sinks.read_history(target)
    with pytest.raises(DataError, match=match) as err:
        sinks.write_scored_leads(mutate(make_scored(5, "2024-05-01", seed=4)), target)
    assert "\n" not in str(err.value)
    pd.testing.assert_frame_equal(sinks.read_history(target), before)


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_a_bad_frame_leaves_every_kind_of_target_untouched(kind: str, tmp_path: Path) -> None:
    target = target_for(kind, tmp_path / "old")
    sinks.write_scored_leads(make_scored(5, "2024-04-01"), target)
    latest, history = sinks.read_scored_leads(target), sinks.read_history(target)
    with pytest.raises(DataError, match="stage_changed disagrees"):
        sinks.write_scored_leads(_changed_wrong(make_scored(5, "2024-05-01")), target)
    pd.testing.assert_frame_equal(sinks.read_scored_leads(target), latest)
    pd.testing.assert_frame_equal(sinks.read_history(target), history)

    (tmp_path / "new").mkdir()
    with pytest.raises(DataError, match="not a JSON list"):
        sinks.write_scored_leads(_bad_json(make_scored(5)), target_for(kind, tmp_path / "new"))
    assert not list((tmp_path / "new").iterdir())


def test_validation_accepts_usual_variants() -> None:
    frame = make_scored(4)
    frame["stage"] = frame["stage"].astype("category")
    frame["score"] = frame["score"].astype("int16")
    frame["scored_at"] = frame["scored_at"].dt.tz_localize("Europe/Berlin")
    frame["as_of"] = frame["as_of"].astype("datetime64[ns]")
    frame["previous_stage"] = np.nan
    out = sinks.validate_scored_leads(frame)
    assert {c: str(t) for c, t in out.dtypes.items()} == CANONICAL_DTYPES
    assert out["scored_at"].iloc[0] == pd.Timestamp("2024-05-01 04:00")  # 06:00 Berlin is 04:00 UTC


def test_attach_previous_stages_sets_changed_only_for_moves() -> None:
    scored = make_scored(3).assign(stage=["lead", "mql", "sql"])
    previous = pd.DataFrame({"lead_id": ["L0000", "L0001"], "stage": ["lead", "lead"]})
    out = sinks.attach_previous_stages(scored, previous)
    assert out["previous_stage"].tolist()[:2] == ["lead", "lead"]
    assert pd.isna(out["previous_stage"].iloc[2])
    assert out["stage_changed"].tolist() == [False, True, False]
    sinks.validate_scored_leads(out)


# --------------------------------------------------------------------------- targets


def test_parse_target_kinds_and_defaults(tmp_path: Path) -> None:
    assert sinks.parse_target(None) == sinks.SinkTarget("duckdb", sinks.DEFAULT_TARGET)
    assert sinks.parse_target("x/y.duckdb").kind == "duckdb"
    assert sinks.parse_target("duckdb:///x/y.duckdb").location == "x/y.duckdb"
    parquet = sinks.parse_target(tmp_path / "out" / "scores.parquet")
    assert parquet.kind == "parquet"
    assert parquet.history_dir == tmp_path / "out" / "scores_history"
    assert sinks.parse_target("a.CSV").kind == "csv"
    url = sinks.parse_target("postgresql+psycopg://me:secret@db.example.com:5432/crm")
    assert url.kind == "sql"
    assert "secret" not in str(url)
    with pytest.raises(DataError, match=r"unknown scored-leads target type '\.xlsx'"):
        sinks.parse_target("scores.xlsx")
    # an object store is no database: not "install the driver for dialect s3"
    with pytest.raises(DataError, match=r"object store \(s3://\) is not supported\. Write"):
        sinks.parse_target("s3://bucket/scores.parquet")
    with pytest.raises(DataError, match=r"is a folder, not a scored-leads target\. Name a file"):
        sinks.parse_target(tmp_path)


def _foreign_table(kind: str, folder: Path) -> str:
    """A target of ``kind`` whose scored_leads table exists with other columns."""
    target = target_for(kind, folder)
    foreign = pd.DataFrame({"lead_id": ["a"], "score": [1]})
    if kind == "duckdb":
        with duckdb.connect(target) as con:
            con.execute("CREATE TABLE scored_leads (lead_id VARCHAR, score INTEGER)")
    elif kind == "sqlite":
        import sqlite3

        with contextlib.closing(sqlite3.connect(folder / "scored_leads.sqlite")) as con:
            con.execute("CREATE TABLE scored_leads_history (lead_id TEXT, score INTEGER)")
            con.commit()
    elif kind == "parquet":
        foreign.to_parquet(target)
    else:
        foreign.to_csv(target, index=False)
    return target


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_a_table_with_other_columns_is_one_line_and_left_alone(kind: str, tmp_path: Path) -> None:
    target = _foreign_table(kind, tmp_path)
    before = sorted((p.name, p.stat().st_size) for p in tmp_path.iterdir())
    calls = [
        lambda: sinks.write_scored_leads(make_scored(3), target),
        lambda: sinks.read_scored_leads(target) if kind != "sqlite" else sinks.read_history(target),
        lambda: sinks.previous_stages(target, "2024-06-01"),
    ]
    # a file holds no table to drop: its fix speaks of the file
    fix = "move that file away" if kind in ("parquet", "csv") else "drop the table"
    # the missing columns first, then (another table altogether) the columns it has
    other = r"with other columns \(missing scored_at, as_of, .* \(8 more\); it has lead_id, score\)"
    for call in calls:
        with pytest.raises(DataError, match=other) as err:
            call()
        assert "\n" not in str(err.value) and fix in str(err.value)
        if kind in ("parquet", "csv"):
            assert "table" not in str(err.value).replace(str(target), "")
    assert sorted((p.name, p.stat().st_size) for p in tmp_path.iterdir()) == before


def _change_columns(kind: str, target: str, change: str) -> None:
    """Run ``change`` (an ``ALTER TABLE scored_leads ...``) on a DuckDB or SQLite target, or
    do it to the latest file of a Parquet or CSV target."""
    if kind == "duckdb":
        with duckdb.connect(target) as con:
            con.execute(change)
    elif kind == "sqlite":
        import sqlite3

        with contextlib.closing(sqlite3.connect(target.removeprefix("sqlite:///"))) as con:
            con.execute(change)
            con.commit()
    else:
        frame = pd.read_parquet(target) if kind == "parquet" else pd.read_csv(target)
        action, column = change.split()[3], change.split()[5]
        if action == "ADD":
            frame[column] = pd.Timestamp("2024-05-02")
        else:
            frame = frame.drop(columns=column)
        if kind == "parquet":
            frame.to_parquet(target)
        else:
            frame.to_csv(target, index=False)


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_a_column_added_to_or_dropped_from_the_table_is_named(kind: str, tmp_path: Path) -> None:
    """A CRM team added ``synced_at`` to scored_leads: the message named the table's 16
    columns cut off as "... (8 more)", never ``synced_at``. The unexpected and the missing
    columns come first, and a table that only gained a column is told to drop it."""
    target = target_for(kind, tmp_path)
    sinks.write_scored_leads(make_scored(3), target)
    _change_columns(kind, target, "ALTER TABLE scored_leads ADD COLUMN synced_at TIMESTAMP")
    files = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(DataError) as added:
        sinks.write_scored_leads(make_scored(3, "2024-06-01"), target)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == files
    message = str(added.value)
    assert "with other columns (unexpected synced_at)" in message and "more" not in message
    if kind in ("duckdb", "sqlite"):
        assert message.endswith(
            "Drop those columns from it (keep your own columns in a table of your own, joined "
            "on lead_id: every run rewrites the rows of this one), or use another --target."
        )
    _change_columns(kind, target, "ALTER TABLE scored_leads DROP COLUMN synced_at")
    _change_columns(kind, target, "ALTER TABLE scored_leads DROP COLUMN reasons_json")
    with pytest.raises(DataError, match=r"with other columns \(missing reasons_json\)") as gone:
        sinks.check_target(target)
    assert "it has" not in str(gone.value)


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_a_target_under_a_file_is_one_line_and_writes_nothing(kind: str, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a folder")
    target = target_for(kind, tmp_path / "notes.txt" / "sub")
    with pytest.raises(DataError, match=r"notes\.txt is a file, not a folder") as err:
        sinks.write_scored_leads(make_scored(3), target)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux's /proc")
@pytest.mark.parametrize("kind", FILE_KINDS)
def test_a_folder_that_takes_no_file_is_named_before_scoring(kind: str) -> None:
    """/proc exists but no file can be created there: the check says so (not that /proc is
    missing), before any scoring work."""
    with pytest.raises(DataError, match=r"^cannot create a file in /proc: ") as err:
        sinks.check_target(target_for(kind, Path("/proc")))
    assert len(str(err.value).splitlines()) == 1


@pytest.mark.parametrize("kind", ["duckdb", "sqlite"])
def test_a_file_that_is_no_database_is_one_line(kind: str, tmp_path: Path) -> None:
    target = target_for(kind, tmp_path)
    path = tmp_path / ("scored_leads.duckdb" if kind == "duckdb" else "scored_leads.sqlite")
    path.write_text("hello, not a database\n" * 100)
    with pytest.raises(DataError) as err:
        sinks.write_scored_leads(make_scored(3), target)
    assert "\n" not in str(err.value)
    assert path.read_text().startswith("hello")


def test_an_sqlite_target_in_a_new_folder_is_created_by_the_first_run(tmp_path: Path) -> None:
    url = target_for("sqlite", tmp_path / "new" / "deeper")
    assert sinks.previous_stages(url, "2024-05-01").empty
    with pytest.raises(DataError, match=r"scored_leads\.sqlite does not exist"):
        sinks.read_scored_leads(url)
    assert not (tmp_path / "new").exists()  # reading creates no file
    sinks.write_scored_leads(make_scored(3), url)
    assert len(sinks.read_scored_leads(url)) == 3


def test_reading_a_target_that_does_not_exist_says_so(target: str) -> None:
    """A path that is not there (a typo, mostly) is named as such; a target that exists but
    was never written to holds no scored leads yet."""
    for read in (sinks.read_scored_leads, sinks.read_history):
        with pytest.raises(DataError, match=r"scored_leads\.\w+ does not exist\. Check the path"):
            read(target)
    if target.endswith(".duckdb"):
        duckdb.connect(target).close()  # an empty database: no tables yet
        with pytest.raises(DataError, match="holds no scored leads yet"):
            sinks.read_scored_leads(target)


def test_read_filters_by_lead(target: str) -> None:
    sinks.write_scored_leads(make_scored(6, "2024-04-01"), target)
    sinks.write_scored_leads(make_scored(6, "2024-05-01", seed=1), target)
    card = sinks.read_history(target, lead_ids=["L0003"])
    assert card["lead_id"].unique().tolist() == ["L0003"]
    assert card["as_of"].tolist() == [pd.Timestamp("2024-04-01"), pd.Timestamp("2024-05-01")]
    assert sinks.read_scored_leads(target, lead_ids=["L0003", "L0005"])["lead_id"].tolist() == [
        "L0003",
        "L0005",
    ]


# --------------------------------------------------------------------------- streaming


def test_streamed_chunks_equal_one_write(tmp_path: Path, target: str) -> None:
    whole = make_scored(30, "2024-05-01")
    run = sinks.RunKey(pd.Timestamp("2024-05-01"), "leadscore", "1")
    with sinks.open_run(target, run) as writer:
        for start in range(0, 30, 7):
            writer.append(whole.iloc[start : start + 7])
    assert writer.summary_ is not None and writer.summary_.rows == 30
    reference = target_for("duckdb", tmp_path / "ref")
    sinks.write_scored_leads(whole, reference)
    pd.testing.assert_frame_equal(
        sinks.read_scored_leads(target), sinks.read_scored_leads(reference)
    )


def test_streaming_rejects_overlapping_chunks_and_other_runs(target: str) -> None:
    frame = make_scored(6, "2024-05-01")
    run = sinks.RunKey("2024-05-01", "leadscore", "1")
    overlap = pytest.raises(DataError, match="lead_id 'L0002' appears 2 times")
    with overlap, sinks.open_run(target, run) as writer:
        writer.append(frame.iloc[:3])
        writer.append(frame.iloc[2:])
    other_run = sinks.RunKey("2024-06-01", "leadscore", "1")
    with pytest.raises(DataError, match="chunk of run"), sinks.open_run(target, other_run) as w:
        w.append(frame)
    with pytest.raises(DataError, match="has no rows"), sinks.open_run(target, run):
        pass
    with pytest.raises(DataError, match="does not exist"):  # nothing written, not even a file
        sinks.read_history(target)


def test_an_error_inside_the_run_discards_the_staged_chunks(tmp_path: Path) -> None:
    target = target_for("parquet", tmp_path)
    sinks.write_scored_leads(make_scored(4, "2024-04-01"), target)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    run = sinks.RunKey("2024-05-01", "leadscore", "1")
    with pytest.raises(RuntimeError, match="scorer crashed"), sinks.open_run(target, run) as w:
        w.append(make_scored(4, "2024-05-01"))
        raise RuntimeError("scorer crashed")
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert len(sinks.read_history(target)) == 4


# --------------------------------------------------------------------------- killed runs

KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {tests!r})
    from test_sinks import make_scored
    from leadscore import sinks

    target, mode = sys.argv[1], sys.argv[2]
    run = sinks.RunKey("2024-05-01", "leadscore", "1")
    chunk = make_scored(2000, "2024-05-01", seed=5)
    writer = sinks.open_run(target, run)
    for i in range(20):
        writer.append(chunk.assign(lead_id=[f"K{{i}}-{{j}}" for j in range(len(chunk))]))
        if mode == "staging" and i == 2:
            print("STAGED", flush=True)
            time.sleep(0.05)
    if mode == "commit":
        print("COMMITTING", flush=True)
    writer.commit()
    print("DONE", flush=True)
    """
)


def run_and_kill(target: str, mode: str, marker: str, delay: float, tmp_path: Path) -> bool:
    """Start a streaming write, SIGKILL it ``delay`` s after ``marker``; True if it finished."""
    script = tmp_path / "killed_writer.py"
    script.write_text(KILLED_WRITER.format(tests=str(Path(__file__).parent)))
    proc = subprocess.Popen(
        [sys.executable, str(script), target, mode],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if line.strip() == marker:
                time.sleep(delay)
                proc.send_signal(signal.SIGKILL)
                break
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return rc == 0


@pytest.mark.parametrize("kind", ["duckdb", "parquet"])
def test_a_run_killed_while_staging_leaves_the_previous_tables(kind: str, tmp_path: Path) -> None:
    target = target_for(kind, tmp_path / "sink")
    sinks.write_scored_leads(make_scored(5, "2024-04-01"), target)
    latest, history = sinks.read_scored_leads(target), sinks.read_history(target)

    finished = run_and_kill(target, "staging", "STAGED", 0.0, tmp_path)

    assert not finished
    pd.testing.assert_frame_equal(sinks.read_scored_leads(target), latest)
    pd.testing.assert_frame_equal(sinks.read_history(target), history)
    assert (
        sinks.previous_stages(target, "2024-05-01")["lead_id"].tolist()
        == latest["lead_id"].tolist()
    )
    leftovers = list((tmp_path / "sink").glob(".*leadscore-run-*"))
    assert len(leftovers) == 1  # the killed run's staging folder, hidden

    # the next run works and sweeps the dead run's staging folder away
    sinks.write_scored_leads(make_scored(5, "2024-05-01", seed=1), target)
    assert len(sinks.read_history(target)) == 10
    assert not list((tmp_path / "sink").glob(".*leadscore-run-*"))


@pytest.mark.parametrize("kind", ["duckdb", "parquet"])
def test_a_run_killed_while_committing_leaves_old_or_new_tables(kind: str, tmp_path: Path) -> None:
    target = target_for(kind, tmp_path / "sink")
    sinks.write_scored_leads(make_scored(5, "2024-04-01"), target)
    old_latest, old_history = sinks.read_scored_leads(target), sinks.read_history(target)

    new_rows = 20 * 2000
    for delay in (0.0, 0.15):
        run_and_kill(target, "commit", "COMMITTING", delay, tmp_path)
        latest, history = sinks.read_scored_leads(target), sinks.read_history(target)
        history_is_old = len(history) == len(old_history)
        latest_is_old = len(latest) == len(old_latest)
        if history_is_old:
            pd.testing.assert_frame_equal(history, old_history)
        else:
            assert len(history) == len(old_history) + new_rows
        if latest_is_old:
            pd.testing.assert_frame_equal(latest, old_latest)
        else:
            assert len(latest) == len(old_latest) + new_rows and latest["lead_id"].is_unique
        if kind == "duckdb":  # one transaction: the two tables move together
            assert latest_is_old == history_is_old


FULL_DISK_WRITER = textwrap.dedent(
    """
    import resource, signal, sys
    sys.path.insert(0, {tests!r})
    from test_sinks import make_scored
    from leadscore import sinks
    from leadscore.errors import LeadscoreError

    limit, targets = int(sys.argv[1]), sys.argv[2:]
    # the disk "fills up" at `limit` bytes a file: writes past it fail (EFBIG), as on a full
    # disk (ENOSPC), instead of the process being killed by SIGXFSZ
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    rows = make_scored(20_000, "2024-05-01", ids=[f"F{{i}}" for i in range(20_000)])
    for target in targets:
        try:
            sinks.write_scored_leads(rows, target)
            print("WRITTEN")
        except LeadscoreError as err:  # what the CLI prints; anything else: a traceback
            print(f"ERROR {{err}}")
    """
)


@pytest.mark.parametrize(
    ("kind", "limit", "step"),
    [
        ("duckdb", 100_000, "staging"),
        ("csv", 100_000, "staging"),
        ("sqlite", 100_000, "staging"),
        ("duckdb", 1_500_000, "committing"),
        ("csv", 1_500_000, "committing"),
        ("sqlite", 1_500_000, "committing"),
    ],
)
def test_a_full_disk_is_one_line_and_leaves_the_target_as_it_was(
    kind: str, limit: int, step: str, tmp_path: Path
) -> None:
    """A disk that fills up while the run is staged (20,000 rows, 0.4 MB of Parquet) or
    committed (several MB in the target) was a 24-line traceback from Arrow or DuckDB. It is
    one line naming the target and the system's reason, the tables are as they were, and
    nothing is left of the run: no staging folder, and for a first run into a new folder no
    database, history folder or folder. The disk is filled by a real limit on file sizes
    (``RLIMIT_FSIZE``, which root is held to as well), in a process of its own."""
    existing = target_for(kind, tmp_path / "sink")
    (tmp_path / "sink").mkdir()
    sinks.write_scored_leads(make_scored(5, "2024-04-01"), existing)
    latest, history = sinks.read_scored_leads(existing), sinks.read_history(existing)
    fresh = target_for(kind, tmp_path / "new" / "deeper")
    script = tmp_path / "full_disk_writer.py"
    script.write_text(FULL_DISK_WRITER.format(tests=str(Path(__file__).parent)))
    staging = tmp_path / "tmp"  # where an SQL target's run is staged
    staging.mkdir()
    result = subprocess.run(
        [sys.executable, str(script), str(limit), existing, fresh],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TMPDIR": str(staging)},
        cwd=tmp_path,
    )
    assert result.returncode == 0 and not result.stderr, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("ERROR ") for line in lines), lines
    for line, target in zip(lines, (existing, fresh), strict=True):
        if kind == "sqlite" and step == "committing":  # SQLite's own error, of its file
            assert line.startswith(f"ERROR cannot use the database {target}: disk I/O error. ")
        else:
            assert line.startswith(f"ERROR cannot write the scored leads to {target} ({step}")
            assert "): File too large. " in line
        assert "Free disk space in " in line
    pd.testing.assert_frame_equal(sinks.read_scored_leads(existing), latest)
    pd.testing.assert_frame_equal(sinks.read_history(existing), history)
    assert not list(tmp_path.rglob("*leadscore-run-*"))
    assert not (tmp_path / "new").exists()
    sinks.write_scored_leads(make_scored(5, "2024-05-01", seed=1), existing)  # room again
    assert len(sinks.read_history(existing)) == 10


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_a_rename_that_fails_undoes_the_ones_before_it(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A back-fill renames the run's file, the later run's file and then the latest file; when
    the last rename fails (a file another user owns, a full disk), the two before it are
    turned back: history and the latest table stay as they were, and the error is one line."""
    target = target_for(kind, tmp_path / "sink")
    sinks.write_scored_leads(make_scored(6, "2024-04-01"), target)
    sinks.write_scored_leads(make_scored(6, "2024-06-01", seed=2), target)
    latest, history = sinks.read_scored_leads(target), sinks.read_history(target)
    files = {p: p.read_bytes() for p in (tmp_path / "sink").rglob("*") if p.is_file()}
    real_replace = os.replace

    def replace_failing_on_the_latest_file(src: object, dst: object) -> None:
        if Path(str(dst)) == Path(target).absolute() or str(dst) == target:
            raise PermissionError(1, "Operation not permitted", str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_failing_on_the_latest_file)
    with pytest.raises(DataError, match="Operation not permitted") as failed:
        sinks.write_scored_leads(make_scored(6, "2024-05-01", seed=3), target)
    monkeypatch.undo()
    assert "\n" not in str(failed.value)
    assert {p: p.read_bytes() for p in (tmp_path / "sink").rglob("*") if p.is_file()} == files
    pd.testing.assert_frame_equal(sinks.read_scored_leads(target), latest)
    pd.testing.assert_frame_equal(sinks.read_history(target), history)
    sinks.write_scored_leads(make_scored(6, "2024-05-01", seed=3), target)  # then it goes through
    assert len(sinks.read_history(target)) == 18


def test_sub_scores_may_be_empty(target: str) -> None:
    frame = make_scored(5).assign(fit_score=pd.array([None, 10, None, 90, 50], dtype="Int64"))
    sinks.write_scored_leads(frame, target)
    latest = by_lead(sinks.read_scored_leads(target))
    assert latest["fit_score"].isna().sum() == 2
    assert latest["fit_score"].dropna().astype(int).tolist() == [10, 90, 50]


def test_a_model_is_named_by_version_run_id_or_fingerprint():
    from leadscore.sinks import shown_model

    assert shown_model("leadscore", "12") == "leadscore v12"
    assert shown_model("run", "a0eff123") == "run a0eff123"  # not "run va0eff123"


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_a_target_in_a_new_folder_creates_it_and_says_so(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A target in folders that do not exist yet is written there, as data/scored_leads.duckdb
    is in a fresh project; the folder made is logged (INFO), so a mistyped --target does not
    make folders in silence."""
    import logging

    target = target_for(kind, tmp_path / "new" / "deeper")
    with caplog.at_level(logging.INFO, logger="leadscore.sinks"):
        sinks.write_scored_leads(make_scored(3), target)
    assert len(sinks.read_scored_leads(target)) == 3
    made = [r.getMessage() for r in caplog.records if "created the folder" in r.getMessage()]
    assert made == [f"created the folder {tmp_path / 'new' / 'deeper'} for the scored-leads target"]


@pytest.mark.parametrize("kind", ["duckdb", "parquet", "csv"])
def test_a_failed_run_removes_the_folders_it_made(kind: str, tmp_path: Path) -> None:
    """A run that fails after staging leaves no trace: not even the new folders of its
    target, while a folder that was there stays."""
    target = target_for(kind, tmp_path / "new" / "deeper")
    run = sinks.RunKey(pd.Timestamp("2024-06-01"), "leadscore", "1")
    with pytest.raises(RuntimeError, match="scoring failed"), sinks.open_run(target, run) as writer:
        writer.append(make_scored(3, "2024-06-01"))
        assert (tmp_path / "new" / "deeper").is_dir()
        raise RuntimeError("scoring failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_failed_sqlite_commit_removes_the_folders_it_made(tmp_path: Path) -> None:
    """An SQLite target's folders are made at commit; a commit that fails removes them again,
    as a failed run of a file target does, while a folder that was there stays. The commit
    fails for a real reason here: the path is longer than SQLite opens (512 characters),
    though the system makes its folders."""
    (tmp_path / "kept").mkdir()
    folder = tmp_path / "kept" / "new" / ("d" * 200) / ("e" * 200) / ("f" * 100)
    url = target_for("sqlite", folder)
    with pytest.raises(DataError, match="unable to open database file") as err:
        sinks.write_scored_leads(make_scored(3), url)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["kept"]


def check_runs_and_previous_models(target: str) -> None:
    """The runs a target holds, the model that gave each previous stage, and the leads other
    model names scored: what a scorer reads to say what its run does to the runs there."""
    sinks.write_scored_leads(make_scored(8, "2024-05-01", version="1", seed=1), target)
    sinks.write_scored_leads(make_scored(8, "2024-05-02", version="2", seed=2), target)
    sinks.write_scored_leads(make_scored(4, "2024-05-02", model="other", seed=3), target)
    runs = sinks.target_runs(target)
    assert [(str(a.date()), n, v, c) for a, n, v, c in runs.itertuples(index=False)] == [
        ("2024-05-01", "leadscore", "1", 8),
        ("2024-05-02", "leadscore", "2", 8),
        ("2024-05-02", "other", "1", 4),
    ]
    # v2's rows: every previous stage is v1's, as the history holds it
    run = sinks.RunKey(pd.Timestamp("2024-05-02"), "leadscore", "2")
    pairs = sinks.run_moves_by_model(target, run)
    history = sinks.read_history(target)
    rows = history[(history["as_of"] == run.as_of) & (history["model_version"] == "2")]
    assert sum(pairs.values()) == len(rows) == 8
    assert {(name, version) for _, _, name, version in pairs} == {("leadscore", "1")}
    moved = sum(n for (before, stage, _, _), n in pairs.items() if before != stage)
    assert moved == int(rows["stage_changed"].sum())
    first = sinks.RunKey(pd.Timestamp("2024-05-01"), "leadscore", "1")
    assert set(sinks.run_moves_by_model(target, first)) <= {
        (None, s, None, None) for s in sinks.STAGES
    }
    ids = ["L0000", "L0003", "L0007", "nobody"]
    assert sinks.leads_of_other_models(target, "leadscore", ids) == {"other": 2}
    assert sinks.leads_of_other_models(target, "new", ids) == {"leadscore": 3, "other": 2}


def test_runs_and_the_models_that_gave_previous_stages(target: str) -> None:
    check_runs_and_previous_models(target)


def write_switching_history(target: str) -> list[sinks.RunKey]:
    """Runs of three model versions over five days, two of them on one as-of (told apart by
    their scoring time), each over a shifting set of leads; returns the runs in order."""
    plan = [
        ("2024-05-01", "1", "2024-05-01 06:00", range(0, 30)),
        ("2024-05-02", "1", "2024-05-02 06:00", range(5, 35)),
        ("2024-05-03", "2", "2024-05-03 06:00", range(0, 40)),
        ("2024-05-03", "3", "2024-05-03 07:00", range(10, 45)),
        ("2024-05-05", "2", "2024-05-05 06:00", range(0, 50)),
        ("2024-05-06", "3", "2024-05-06 06:00", range(20, 50)),
    ]
    runs = []
    for day, (as_of, version, scored_at, leads) in enumerate(plan):
        ids = [f"L{i:04d}" for i in leads]
        frame = make_scored(as_of=as_of, version=version, seed=day, ids=ids, scored_at=scored_at)
        before = sinks.previous_stages(target, as_of, lead_ids=ids)
        sinks.write_scored_leads(sinks.attach_previous_stages(frame, before), target)
        runs.append(sinks.RunKey(pd.Timestamp(as_of), "leadscore", version))
    return runs


def check_sql_entries(target: str) -> None:
    """The new SQLs of a period, as the history holds them: a lead counted each time it comes
    to SQL from another stage or from none, only the runs of the named model, the period's
    start left out and its end kept."""
    write_switching_history(target)
    sinks.write_scored_leads(make_scored(12, "2024-05-04", model="other", seed=9), target)
    history = sinks.read_history(target)
    came = (history["stage"] == "sql") & (history["previous_stage"].fillna("") != "sql")
    assert came.sum() > 0 and (history["stage"] == "sql").sum() > came.sum()
    for after, until in (("2024-04-30", "2024-05-06"), ("2024-05-01", "2024-05-03")):
        start, end = pd.Timestamp(after), pd.Timestamp(until)
        mine = (history["model_name"] == "leadscore") & history["as_of"].between(start, end)
        mine &= history["as_of"] > start
        handed = history.loc[came & mine, ["lead_id", "as_of"]].drop_duplicates()
        assert sinks.sql_entries(target, "leadscore", start, end) == len(handed)
        # 05-03's two versions handed some leads over twice: one hand-off each
        assert history.loc[came & mine].duplicated(["lead_id", "as_of"]).sum() > 0
    assert sinks.sql_entries(target, "nobody", pd.Timestamp("2024-01-01"), end) == 0


def test_the_new_sqls_of_a_period(target: str, tmp_path: Path) -> None:
    assert sinks.sql_entries(target, "leadscore", pd.Timestamp(0), pd.Timestamp.now()) == 0
    check_sql_entries(target)


@pytest.mark.parametrize("kind", ["parquet", "sqlite"])
def test_the_model_of_each_previous_stage_is_the_same_on_every_target(
    kind: str, tmp_path: Path
) -> None:
    """SQL targets find each lead's newest earlier row with a lookup per lead, DuckDB and files
    with arg_max: both take the newest as-of, then the latest scoring time, so that a second
    model's run on the same as-of is the one that gave the next run's previous stage."""
    reference = target_for("duckdb", tmp_path / "duckdb")
    other = target_for(kind, tmp_path / kind)
    runs = write_switching_history(reference)
    assert write_switching_history(other) == runs
    for run in runs:
        expected = sinks.run_moves_by_model(reference, run)
        assert sinks.run_moves_by_model(other, run) == expected, run
    last = sinks.run_moves_by_model(reference, runs[-1])
    # day 6's leads 20-44 were last scored by v2 on day 5; 45-49 too; none is new
    assert {(name, version) for _, _, name, version in last} == {("leadscore", "2")}
    after_tie = sinks.run_moves_by_model(reference, runs[4])
    # day 5: leads 10-44 were last scored by v3 (07:00 beat v2's 06:00 on day 3), 0-9 by v2
    by_model: dict[tuple[str | None, str | None], int] = {}
    for (_, _, name, version), n in after_tie.items():
        by_model[(name, version)] = by_model.get((name, version), 0) + n
    assert by_model == {("leadscore", "3"): 35, ("leadscore", "2"): 10, (None, None): 5}


def test_a_target_without_runs_has_none(tmp_path: Path) -> None:
    for kind in FILE_KINDS:
        target = target_for(kind, tmp_path / kind)
        assert sinks.target_runs(target).empty
        assert sinks.leads_of_other_models(target, "leadscore", ["L1"]) == {}
