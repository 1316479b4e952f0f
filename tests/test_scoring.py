"""The batch scorer end to end on small synthetic data: tables, stages, reasons, history."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tqdm.auto import tqdm

from leadscore.cli import main
from leadscore.config import parse_config
from leadscore.features import build_features, build_training_examples, default_as_of_dates
from leadscore.io import load_closed_loop
from leadscore.model import LeadScoringModel
from leadscore.reports import channel_report
from leadscore.scoring import (
    event_feature_chunks,
    load_scoring_model,
    run_scoring,
    scores_from_probability,
)
from leadscore.sinks import COLUMNS, read_history, read_scored_leads
from leadscore.synth import SynthParams, write_synthetic
from leadscore.training import train

AS_OF = pd.Timestamp("2026-05-01")
LATER = pd.Timestamp("2026-06-01")


@pytest.fixture(scope="module")
def scored_world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Synthetic history, a model trained on it and saved, and a first scoring run."""
    root = tmp_path_factory.mktemp("scoring")
    data_dir = root / "crm"
    write_synthetic(
        SynthParams(n_leads=4000, seed=11, start="2025-06-01"), data_dir, progress=False
    )
    events = load_closed_loop(data_dir)
    dates = default_as_of_dates(events, 60, every_days=30, warmup_days=60)
    examples = build_training_examples(events, dates, 60, name="crm")
    config = parse_config(
        {
            "cold_start": {"min_wins": 20, "min_leads": 200},
            "quality_gate": {"allow_worse": True},
            "evaluation": {"resamples": 0},  # no test here reads the bootstrap intervals
        }
    )
    result = train(examples, config)
    model_dir = result.model.save(root / "model")
    target = root / "scores.duckdb"
    scoring = load_scoring_model(model_dir)
    run_scoring(
        scoring,
        event_feature_chunks(data_dir, AS_OF, chunk_leads=700),
        target=str(target),
        as_of=AS_OF,
        progress=False,
    )
    return {
        "data": data_dir,
        "model": model_dir,
        "target": target,
        "root": root,
        "result": result,
        "config": config,
    }


def test_tables_have_the_schema(scored_world):
    latest = read_scored_leads(str(scored_world["target"]))
    history = read_history(str(scored_world["target"]))
    for table in (latest, history):
        assert tuple(table.columns) == COLUMNS
        assert table["score"].between(0, 100).all()
        assert table["probability"].between(0, 1).all()
        assert set(table["stage"]) <= {"lead", "mql", "sql"}
        assert table["fit_score"].dropna().between(0, 100).all()
    assert latest["lead_id"].is_unique and len(latest) == len(history) > 100


def test_leads_closed_by_a_later_run_leave_scored_leads(scored_world, tmp_path):
    """scored_leads holds the leads open at their latest scoring: after a later run, leads that
    closed in between are gone from it (their rows stay in the history), and a back-fill of
    the earlier as-of, when they were open, does not bring them back."""
    data, model = scored_world["data"], scored_world["model"]
    target = tmp_path / "s.duckdb"
    argv = ["score", "--data", str(data), "--model", str(model), "--target", str(target)]
    argv += ["--no-reasons", "--no-progress", "--chunk-size", "1500"]
    outcomes = load_closed_loop(data).outcomes
    closed_between = set(
        outcomes.loc[outcomes["closed_at"].between(AS_OF, LATER, inclusive="right"), "lead_id"]
    )
    for as_of in (AS_OF, LATER, AS_OF):  # the third run is a back-fill
        assert main([*argv, "--as-of", str(as_of.date())]) == 0
        latest = read_scored_leads(str(target))
        history = read_history(str(target))
        newest = history[history["as_of"] == LATER]
        if len(newest):
            assert set(latest["lead_id"]) == set(newest["lead_id"])
            assert (latest["as_of"] == LATER).all()
    first = set(history.loc[history["as_of"] == AS_OF, "lead_id"])
    assert first & closed_between  # the case under test happens
    assert not set(latest["lead_id"]) & closed_between
    assert len(history) == len(first) + len(newest)


@pytest.mark.slow
def test_a_run_uri_records_the_registered_name_and_version(scored_world, tmp_path):
    """runs:/RUN/model of a registered model is recorded as that registered name and version,
    as models:/NAME/VERSION is; a run never registered gets a name that says it is a run."""
    from leadscore import tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    logged = {
        name: tracking.log_training_run(
            scored_world["result"],
            dataset_name="crm",
            spec=None,
            config=scored_world["config"],
            data_hash="test",
            tracking_uri=uri,
            registered_model=name,
        )
        for name in ("leadscore-test", None)
    }
    registered = load_scoring_model("models:/leadscore-test/1", tracking_uri=uri)
    by_run = load_scoring_model(f"runs:/{logged['leadscore-test']}/model", tracking_uri=uri)
    assert (by_run.name, by_run.version) == (registered.name, registered.version)
    assert (by_run.name, by_run.version) == ("leadscore-test", "1")
    plain = load_scoring_model(f"runs:/{logged[None]}/model", tracking_uri=uri)
    assert plain.name == f"run:{logged[None]}" and plain.version == logged[None]


def _score_warnings(data: Path, folder: Path, target: Path, caplog) -> list[str]:
    """The warnings of one scoring run of ``data`` (no reasons, as of AS_OF)."""
    scoring = load_scoring_model(folder)
    features = scoring.model.features
    caplog.clear()
    with caplog.at_level("WARNING", logger="leadscore.scoring"):
        run_scoring(
            scoring,
            event_feature_chunks(data, AS_OF, chunk_leads=1500, features=features),
            target=str(target),
            as_of=AS_OF,
            with_reasons=False,
            progress=False,
        )
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_unseen_categories_and_an_empty_activity_log_are_warned(scored_world, tmp_path, caplog):
    """A category value never seen in training (scored as missing) is counted per feature with
    an example, and a model that learnt from engagement warns when the data holds no activity
    in the 90 days before the as-of; clean data warns of neither."""
    import shutil

    model = scored_world["model"]
    clean = _score_warnings(scored_world["data"], model, tmp_path / "a.duckdb", caplog)
    assert not [w for w in clean if "'industry'" in w or "no activity" in w]

    changed = tmp_path / "crm"
    shutil.copytree(scored_world["data"], changed)
    leads = pd.read_parquet(changed / "leads.parquet")
    leads.loc[leads.index[::3], "industry"] = "platinum"
    leads.to_parquet(changed / "leads.parquet")
    activities = pd.read_parquet(changed / "activities.parquet")
    # an extract that stopped long before the as-of (an empty log is refused outright)
    old = activities[activities["occurred_at"] < AS_OF - pd.Timedelta(days=91)]
    assert 0 < len(old) < len(activities)
    old.to_parquet(changed / "activities.parquet")
    warned = _score_warnings(changed, model, tmp_path / "b.duckdb", caplog)

    scored = read_scored_leads(str(tmp_path / "b.duckdb"))
    platinum = scored["lead_id"].isin(leads.loc[leads["industry"] == "platinum", "lead_id"])
    (unseen,) = [w for w in warned if "'industry'" in w]
    assert unseen.startswith(f"{int(platinum.sum()):,} of {len(scored):,} scored leads")
    assert "'platinum'" in unseen
    (empty,) = [w for w in warned if "no activity" in w]
    theirs = old["lead_id"].isin(scored["lead_id"]).sum()
    opening = f"the {len(scored):,} open leads have no activity in the 90 days before 2026-05-01"
    assert opening in empty
    assert f"({theirs:,} activities of theirs in all)" in empty


def test_an_as_of_before_every_lead_is_one_error_without_an_activity_warning(
    scored_world, tmp_path, caplog
):
    """With no open lead at the as-of (before any lead was created), the run's error names
    the as-of; no warning comes first telling the user to load the activities of 0 leads."""
    from leadscore.errors import DataError

    early = pd.Timestamp("2024-01-01")
    scoring = load_scoring_model(scored_world["model"])
    chunks = event_feature_chunks(
        scored_world["data"], early, chunk_leads=1500, features=scoring.model.features
    )
    target = tmp_path / "early.duckdb"
    with (
        caplog.at_level("WARNING", logger="leadscore.scoring"),
        pytest.raises(DataError, match="no open lead was created by 2024-01-01 00:00"),
    ):
        run_scoring(scoring, chunks, target=str(target), as_of=early, progress=False)
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not target.exists()


def test_drift_of_event_data_counts_the_test_fold_in_examples(scored_world, tmp_path, capsys):
    """Event data's test fold holds a lead at several as-of dates: report drift compares the
    open leads with its examples, and does not call them leads."""
    argv = ["report", "drift", "--data", str(scored_world["data"]), "--as-of", "2026-05-01"]
    argv += ["--model", str(scored_world["model"]), "--out", str(tmp_path / "drift.csv")]
    assert main(argv) == 0
    first = capsys.readouterr().out.splitlines()[0]
    n_test = scored_world["result"].metrics["n_test"]
    assert f"against the {n_test:,} test-fold examples of " in first
    assert "test-fold leads" not in first


def test_an_event_model_with_a_spec_points_to_event_data(scored_world, tmp_path, capsys):
    """An event-data model given a flat spec ends in one line that says to score with --data."""
    pd.DataFrame({"id": ["a", "b"], "status": ["", "won"], "visits": [1, 2]}).to_csv(
        tmp_path / "leads.csv", index=False
    )
    spec = {"name": "acme", "source": "leads.csv", "id": "id", "label": {"column": "status",
            "won": ["won"]}}  # fmt: skip
    (tmp_path / "spec.yaml").write_text(json.dumps(spec))
    target = tmp_path / "s.duckdb"
    argv = ["score", "--spec", str(tmp_path / "spec.yaml"), "--model", str(scored_world["model"])]
    assert main([*argv, "--target", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "was trained on event data (crm)" in err and "Score with --data DIR" in err
    assert not target.exists()


def test_event_chunks_have_the_models_features_in_every_slice(scored_world):
    model = LeadScoringModel.load(scored_world["model"])
    names = [f.name for f in model.features]
    chunks = list(
        event_feature_chunks(scored_world["data"], AS_OF, chunk_leads=300, features=model.features)
    )
    assert len(chunks) > 1
    assert all(list(X.columns) == names for X, _ in chunks)


def test_only_open_leads_created_by_as_of_are_scored(scored_world):
    events = load_closed_loop(scored_world["data"])
    latest = read_scored_leads(str(scored_world["target"]))
    created = events.leads.set_index("lead_id")["created_at"]
    assert (created.loc[latest["lead_id"]] <= AS_OF).all()
    closed = events.outcomes.loc[events.outcomes["closed_at"] <= AS_OF, "lead_id"]
    assert not latest["lead_id"].isin(closed).any()
    still_open = events.leads[
        (events.leads["created_at"] <= AS_OF) & ~events.leads["lead_id"].isin(closed)
    ]
    assert len(latest) == len(still_open)


def test_scores_agree_with_the_model_and_its_thresholds(scored_world):
    scoring = load_scoring_model(scored_world["model"])
    latest = read_scored_leads(str(scored_world["target"])).set_index("lead_id")
    features = build_features(load_closed_loop(scored_world["data"]), AS_OF)
    rows = features.frame.set_index("lead_id").loc[latest.index]
    p = scoring.model.predict_proba(rows[scoring.model.feature_names])
    # exactly: the scorer stores the prediction path's probability, reasons or not
    np.testing.assert_array_equal(latest["probability"].to_numpy(), p)
    assert (latest["stage"].to_numpy() == scoring.model.stages.transform(p)).all()
    stages = scoring.model.stages
    assert (latest["score"].to_numpy() == scores_from_probability(p, stages)).all()
    assert (np.abs(latest["score"].to_numpy() - scores_from_probability(p)) <= 1).all()
    order = np.argsort(latest["probability"].to_numpy())
    rank = latest["stage"].map({"lead": 0, "mql": 1, "sql": 2}).to_numpy()[order]
    assert (np.diff(rank) >= 0).all()  # a higher probability never gets a lower stage
    assert (np.diff(latest["score"].to_numpy()[order]) >= 0).all()
    # the stage reads off the score: the lowest SQL score is above every MQL's
    by_stage = latest.groupby("stage")["score"]
    if {"mql", "sql"} <= set(by_stage.groups):
        assert by_stage.min()["sql"] > by_stage.max()["mql"]


def test_contributions_and_base_rate_add_up_to_the_probability(scored_world):
    model = load_scoring_model(scored_world["model"]).model
    X = build_features(load_closed_loop(scored_world["data"]), AS_OF).X.head(500)
    exp = model.explain(X)
    total = exp.base_rate + exp.contributions.sum(axis=1).to_numpy()
    np.testing.assert_allclose(total, model.predict_proba(X), atol=1e-6)


def test_reasons_are_readable_and_signed(scored_world):
    latest = read_scored_leads(str(scored_world["target"]))
    with_reasons = latest[latest["reasons_for"] != ""]
    assert len(with_reasons) > len(latest) / 2
    for _, row in with_reasons.head(50).iterrows():
        reasons = json.loads(row["reasons_json"])
        assert {r["direction"] for r in reasons} <= {"for", "against"}
        assert all((r["contribution"] > 0) == (r["direction"] == "for") for r in reasons)
        assert len([r for r in reasons if r["direction"] == "for"]) <= 3
        assert row["reasons_for"].count("; ") <= 2


def test_rerun_of_the_same_as_of_is_idempotent(scored_world, tmp_path):
    target = tmp_path / "twice.duckdb"
    scoring = load_scoring_model(scored_world["model"])
    for _ in range(2):
        run_scoring(
            scoring,
            event_feature_chunks(scored_world["data"], AS_OF, chunk_leads=900),
            target=str(target),
            as_of=AS_OF,
            progress=False,
        )
    first = read_history(str(scored_world["target"])).drop(columns="scored_at")
    again = read_history(str(target)).drop(columns="scored_at")
    pd.testing.assert_frame_equal(first, again)


def test_history_grows_one_row_per_lead_per_run_and_tracks_stage_moves(scored_world, tmp_path):
    target = str(tmp_path / "two_runs.duckdb")
    scoring = load_scoring_model(scored_world["model"])
    summaries = [
        run_scoring(
            scoring,
            event_feature_chunks(scored_world["data"], as_of, chunk_leads=900),
            target=target,
            as_of=as_of,
            progress=False,
        )
        for as_of in (AS_OF, LATER)
    ]
    history = read_history(target)
    first = history[history["as_of"] == AS_OF]
    second = history[history["as_of"] == LATER]
    assert len(history) == len(first) + len(second)
    assert not history.duplicated(["lead_id", "as_of"]).any()
    latest = read_scored_leads(target)
    assert (latest["as_of"] == LATER).sum() == len(second)
    both = second.merge(first[["lead_id", "stage"]], on="lead_id", suffixes=("", "_before"))
    assert (both["previous_stage"] == both["stage_before"]).all()
    assert (both["stage_changed"] == (both["stage"] != both["stage_before"])).all()
    new = second[~second["lead_id"].isin(first["lead_id"])]
    assert new["previous_stage"].isna().all() and not new["stage_changed"].any()
    # the sales hand-off: the leads that reached SQL, by where they came from, and the SQLs
    # that fell back, as the history table has them
    came = second[(second["stage"] == "sql") & (second["previous_stage"] != "sql")]
    from_where = came["previous_stage"].astype("object").where(came["previous_stage"].notna())
    expected = {k: int(n) for k, n in from_where.value_counts(dropna=False).items()}
    expected = {(None if pd.isna(k) else k): n for k, n in expected.items()}
    assert summaries[1].new_sqls() == expected and sum(expected.values()) > 0
    fell = ((second["previous_stage"] == "sql") & (second["stage"] != "sql")).sum()
    assert summaries[1].left_sql() == fell
    assert summaries[0].new_sqls() == {None: int((first["stage"] == "sql").sum())}


def test_moves_count_the_previous_stages_a_run_committed_meanwhile_set(scored_world, tmp_path):
    """June's run reads its first chunk's previous stages before May's run commits (nothing
    yet: first scorings); at commit they become May's stages, and June's summary counts the
    moves and new SQLs as the history holds them, not as read."""
    target = str(tmp_path / "overlap.duckdb")
    scoring = load_scoring_model(scored_world["model"])

    def june_chunks():
        chunks = iter(event_feature_chunks(scored_world["data"], LATER, chunk_leads=400))
        yield next(chunks)
        run_scoring(
            scoring,
            event_feature_chunks(scored_world["data"], AS_OF, chunk_leads=900),
            target=target,
            as_of=AS_OF,
            progress=False,
        )
        yield from chunks

    june = run_scoring(scoring, june_chunks(), target=target, as_of=LATER, progress=False)
    assert june.write.restaged_rows > 0
    rows = read_history(target).query("as_of == @LATER")
    before = rows["previous_stage"].astype("object").where(rows["previous_stage"].notna())
    pairs = pd.Series(1, index=pd.MultiIndex.from_arrays([before, rows["stage"].astype(str)]))
    expected = {
        (b if isinstance(b, str) else None, s): int(n)
        for (b, s), n in pairs.groupby(level=[0, 1], dropna=False).sum().items()
    }
    assert june.transitions == expected
    assert june.moved == int(rows["stage_changed"].sum())


def _on_a_terminal(argv: list[str]) -> tuple[int, str]:
    """Run ``argv`` with its stderr on a pseudo-terminal, as a person at a shell sees it (bars
    are drawn on a terminal only); its exit code and what it wrote there."""
    import fcntl
    import pty
    import struct
    import termios

    main_fd, term_fd = pty.openpty()
    fcntl.ioctl(term_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=term_fd, env=env)
    os.close(term_fd)
    written = bytearray()
    while True:
        try:
            data = os.read(main_fd, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not data:
            break
        written += data
    os.close(main_fd)
    return proc.wait(timeout=300), written.decode(errors="replace")


def test_the_bar_ends_at_the_leads_read_and_log_lines_stay_off_it(scored_world, tmp_path):
    """On a terminal the bar counts the folder's open leads read (closed ones are never read)
    out of their total, and a log line is written above it, never glued to the bar's end."""
    target = tmp_path / "bar.duckdb"
    code, stderr = _on_a_terminal(
        [
            sys.executable, "-m", "leadscore", "score",
            "--data", str(scored_world["data"]), "--model", str(scored_world["model"]),
            "--target", str(target), "--as-of", str(AS_OF.date()),
            "--chunk-size", "100", "--no-reasons",
        ],
    )  # fmt: skip
    assert code == 0, stderr
    segments = [s for s in re.split(r"[\r\n]", stderr) if s.strip()]
    logged = [s for s in segments if " INFO " in s]
    assert len(logged) >= 4  # one line per slice's features, then the write
    assert all(re.match(r"\d\d:\d\d:\d\d INFO ", s) for s in logged), logged
    scored = len(read_scored_leads(str(target)))
    assert any(f"{scored}/{scored} " in s for s in segments if s.startswith("scoring:"))


def test_a_run_without_a_bar_asks_its_reader_for_no_count(scored_world, tmp_path):
    """A count in a database runs the query once more: only a run that shows a bar asks the
    reader for one (io.ReadProgress.count_rows), so a scheduled --no-progress run never does."""
    scoring = load_scoring_model(scored_world["model"])
    for shown in (False, True):
        chunks = event_feature_chunks(scored_world["data"], AS_OF, chunk_leads=2000)
        target = str(tmp_path / f"bar_{shown}.duckdb")
        run_scoring(scoring, chunks, target=target, as_of=AS_OF, progress=shown, with_reasons=False)
        assert chunks.progress.count_rows is shown
        assert chunks.progress.read == chunks.progress.total > 0


def test_killed_run_leaves_the_old_table_intact(scored_world, tmp_path):
    target = tmp_path / "killed.duckdb"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = [
        sys.executable,
        "-m",
        "leadscore",
        "-q",
        "score",
        "--data",
        str(scored_world["data"]),
        "--model",
        str(scored_world["model"]),
        "--target",
        str(target),
        "--no-progress",
    ]
    done = subprocess.run(
        [*args, "--as-of", str(AS_OF.date())], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    before = read_history(str(target))
    proc = subprocess.Popen(
        [*args, "--as-of", str(LATER.date()), "--chunk-size", "100"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(tmp_path.glob(".*leadscore-run-*")):
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    pd.testing.assert_frame_equal(read_history(str(target)), before)
    assert (read_scored_leads(str(target))["as_of"] == AS_OF).all()


def test_score_explain_and_report_commands(scored_world, tmp_path, capsys):
    target = str(tmp_path / "cli.duckdb")
    code = main(
        [
            "score",
            "--data",
            str(scored_world["data"]),
            "--model",
            str(scored_world["model"]),
            "--as-of",
            "2026-05-01",
            "--target",
            target,
            "--no-progress",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    latest = read_scored_leads(target)
    assert f"scored {len(latest):,} leads" in out
    counts = latest["stage"].value_counts()
    assert f"SQL {counts.get('sql', 0):,}" in out and f"LEAD {counts.get('lead', 0):,}" in out
    sqls = counts.get("sql", 0)
    assert f"new SQLs for sales: {sqls:,} ({sqls:,} not scored at an earlier as-of)" in out
    lead = latest.sort_values("probability").iloc[-1]["lead_id"]
    assert main(["explain", lead, "--target", target]) == 0
    card = capsys.readouterr().out
    assert f"Lead {lead}" in card and "Reasons for:" in card and "First scoring" in card
    assert "Cut-offs" not in card

    # with the model, the card adds its cut-offs and where a typical lead starts
    model = LeadScoringModel.load(scored_world["model"])
    prepared = build_features(load_closed_loop(scored_world["data"]), pd.Timestamp("2026-05-01"))
    assert model.base_rate == pytest.approx(model.explain(prepared.X.head(50)).base_rate)
    assert main(["explain", lead, "--target", target, "--model", str(scored_world["model"])]) == 0
    card = capsys.readouterr().out
    row = latest.set_index("lead_id").loc[lead]
    expected = (
        f"Cut-offs: MQL from {model.stages.mql_threshold_:.1%}, SQL from "
        f"{model.stages.sql_threshold_:.1%}; a typical lead starts at {model.base_rate:.1%}, "
        f"and the points of its reasons (with the smaller ones not shown) take this one to "
        f"{row['probability']:.1%}"
    )
    assert expected in card
    report_csv = tmp_path / "channels.csv"
    assert (
        main(
            [
                "report",
                "channels",
                "--data",
                str(scored_world["data"]),
                "--target",
                target,
                "--out",
                str(report_csv),
                "--deal-value",
                "6000",
            ]
        )
        == 0
    )
    report = pd.read_csv(report_csv)
    by_channel = report[report["grouped_by"] == "source"]
    assert by_channel["leads"].sum() == len(latest)
    assert by_channel["cost_per_mql"].notna().any()


@pytest.mark.parametrize("target_name", ["cards.duckdb", "cards.parquet", "sqlite"])
def test_a_lead_card_says_when_the_newest_run_left_the_lead_out(
    scored_world, tmp_path, capsys, target_name
):
    """A lead that closed between two runs keeps its last row in scored_leads; its card must
    not present that old stage as current, while an open lead's card says nothing of it."""
    sqlite = f"sqlite:///{tmp_path / 'cards.db'}"
    target = sqlite if target_name == "sqlite" else str(tmp_path / target_name)
    data, model = str(scored_world["data"]), str(scored_world["model"])
    argv = ["-q", "score", "--data", data, "--model", model]
    for as_of in ("2026-04-01", "2026-05-01"):
        options = ["--as-of", as_of, "--target", target, "--no-progress", "--no-reasons"]
        assert main([*argv, *options]) == 0
    history = read_history(target)
    runs = history.groupby("lead_id")["as_of"].max()
    closed = runs[runs < AS_OF].index
    still_open = runs[runs == AS_OF].index
    assert len(closed) and len(still_open)
    capsys.readouterr()
    assert main(["explain", str(closed[0]), "--target", target]) == 0
    assert "Not scored by the newest run (as of 2026-05-01 00:00)" in capsys.readouterr().out
    assert main(["explain", str(still_open[0]), "--target", target]) == 0
    assert "Not scored by the newest run" not in capsys.readouterr().out


def test_unknown_lead_and_unknown_model_are_one_line_errors(scored_world, tmp_path, capsys):
    assert main(["explain", "nobody", "--target", str(scored_world["target"])]) == 2
    assert "has not been scored" in capsys.readouterr().err
    target = tmp_path / "none.duckdb"
    assert (
        main(
            [
                "score",
                "--data",
                str(scored_world["data"]),
                "--model",
                str(tmp_path / "no-model"),
                "--target",
                str(target),
            ]
        )
        == 2
    )
    assert "no leadscore model" in capsys.readouterr().err
    assert not target.exists()


def test_channel_report_counts_and_costs():
    scored = pd.DataFrame(
        {
            "lead_id": list("abcdef"),
            "stage": ["sql", "mql", "lead", "sql", "lead", "lead"],
            "probability": [0.6, 0.3, 0.05, 0.7, 0.1, 0.02],
        }
    )
    # lead "g" was brought by x but is closed, so not scored: it still shares x's spend
    attrs = pd.DataFrame({"lead_id": list("abcdefg"), "source": list("xxxyyzx")})
    spend = pd.DataFrame({"channel": ["x", "y", "z"], "spend": [400.0, 100.0, 50.0]})
    report = channel_report(scored, attrs, by=["source"], spend=spend, deal_value=1000)
    x = report.set_index("source").loc["x"]
    assert (x["leads"], x["mqls"], x["sqls"]) == (3, 2, 1)
    assert x["expected_wins"] == pytest.approx(0.95)
    assert x["cost_per_lead"] == pytest.approx(100.0)
    assert x["cost_per_mql"] == pytest.approx(150.0)
    assert x["cost_per_expected_win"] == pytest.approx(300 / 0.95)
    assert x["roi"] == pytest.approx((950 - 300) / 300)  # return on the spend: 0 breaks even
    assert report["source"].tolist()[0] == "y"  # best SQL rate first


def test_a_lead_repeated_across_chunks_is_an_error(scored_world, tmp_path):
    from leadscore.errors import DataError

    scoring = load_scoring_model(scored_world["model"])
    X, ids = next(event_feature_chunks(scored_world["data"], AS_OF, chunk_leads=5000))
    target = tmp_path / "dup.duckdb"
    chunks = [(X.iloc[:200], ids.iloc[:200]), (X.iloc[150:], ids.iloc[150:])]
    repeated = re.escape(f"lead {ids.iloc[150]!r} appears on more than one row of the input")
    with pytest.raises(DataError, match=repeated):
        run_scoring(scoring, chunks, target=str(target), as_of=AS_OF, progress=False)
    assert not target.exists()
    # named in the chunk where it comes back, before the chunks after it are read
    read: list[int] = []

    def reading(parts):
        for i, part in enumerate(parts):
            read.append(i)
            yield part

    later = [*chunks, (X.iloc[:0], ids.iloc[:0])]
    with pytest.raises(DataError, match=repeated):
        run_scoring(scoring, reading(later), target=str(target), as_of=AS_OF, progress=False)
    assert read == [0, 1]


def test_a_bad_value_names_the_lead_that_holds_it(scored_world, tmp_path):
    """In an input of many thousand rows, "holds an infinite value in 2 row(s)" alone
    cannot be found: the error names the first lead, in any chunk, and writes nothing."""
    import numpy as np

    from leadscore.errors import DataError

    scoring = load_scoring_model(scored_world["model"])
    X, ids = next(event_feature_chunks(scored_world["data"], AS_OF, chunk_leads=5000))
    X = X.copy()
    X.loc[X.index[[230, 260]], "activities_30d"] = np.inf
    chunks = [(X.iloc[:200], ids.iloc[:200]), (X.iloc[200:], ids.iloc[200:])]
    target = tmp_path / "bad.duckdb"
    with pytest.raises(DataError) as err:
        run_scoring(scoring, chunks, target=str(target), as_of=AS_OF, progress=False)
    assert str(err.value).startswith(
        f"column 'activities_30d' holds an infinite value in 2 row(s) (lead {ids.iloc[230]!r} "
        "and 1 more). Score with finite numbers"
    )
    assert not target.exists()


def test_one_lead_under_two_spellings_of_its_id_is_an_error(scored_world, tmp_path):
    """'L1' and 'L1 ' are one lead exported twice: in one chunk or two, the run stops before
    a CRM sync gets two scores for it, and writes nothing."""
    from leadscore.errors import DataError

    scoring = load_scoring_model(scored_world["model"])
    X, ids = next(event_feature_chunks(scored_world["data"], AS_OF, chunk_leads=5000))
    padded = ids.copy()
    padded.iloc[0] = f"{ids.iloc[1]} "
    target = tmp_path / "twins.duckdb"
    with pytest.raises(DataError, match=r"differ only by spaces around them in the input\. Strip"):
        run_scoring(scoring, [(X, padded)], target=str(target), as_of=AS_OF, progress=False)
    apart = [(X.iloc[:1], padded.iloc[:1]), (X.iloc[1:], padded.iloc[1:])]
    with pytest.raises(DataError, match=rf"lead {ids.iloc[1]!r} appears on more than one .*spaces"):
        run_scoring(scoring, apart, target=str(target), as_of=AS_OF, progress=False)
    assert not target.exists()


def test_flat_spec_on_duckdb_scores_a_csv_of_new_leads(tmp_path, monkeypatch, capsys):
    """A spec reading a DuckDB table scores new leads given as CSV (the spec's table applies
    to its own source only), and zero-padded ids come back as written."""
    import duckdb
    import yaml

    rng = np.random.default_rng(5)
    n = 2400
    minutes = rng.exponential(8, n).round(1)
    plan = rng.choice(["basic", "pro", "team"], n)
    won = (rng.random(n) < 1 / (1 + np.exp(2 - 0.25 * minutes - (plan == "pro")))).astype(int)
    frame = pd.DataFrame(
        {"lead": [f"{i:06d}" for i in range(n)], "minutes": minutes, "plan": plan, "won": won}
    )
    frame["seq"] = np.arange(n)
    with duckdb.connect(str(tmp_path / "crm.duckdb")) as con:
        con.register("frame", frame)
        con.execute("CREATE TABLE leads AS SELECT * FROM frame")
    spec = {
        "name": "padded",
        "source": "crm.duckdb",
        "table": "leads",
        "id": "lead",
        "label": {"column": "won", "won": [1], "lost": [0]},
        "order_by": "seq",
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--spec", "spec.yaml", "--no-mlflow", "--allow-worse"]) == 0
    new = frame.tail(50).drop(columns=["won", "seq"])
    new.to_csv(tmp_path / "new.csv", index=False)
    argv = ["score", "--spec", "spec.yaml", "--model", "models/padded", "--input", "new.csv"]
    target = tmp_path / "scores.duckdb"
    assert main([*argv, "--target", str(target), "--no-progress", "--no-reasons"]) == 0
    scored = read_scored_leads(target).set_index("lead_id").loc[new["lead"]]
    expected = LeadScoringModel.load(tmp_path / "models" / "padded").predict_proba(new)
    np.testing.assert_allclose(scored["probability"].to_numpy(), expected, rtol=0, atol=1e-12)


CRM_LABEL = {"column": "status", "won": ["Closed Won"], "lost": ["Closed Lost"]}


def _crm_export(n: int, seed: int) -> pd.DataFrame:
    """A CRM's flat export of closed leads: visits raise the chance of ``Closed Won``."""
    rng = np.random.default_rng(seed)
    visits = rng.poisson(4, n)
    won = rng.random(n) < 1 / (1 + np.exp(1.5 - 0.35 * visits))
    return pd.DataFrame(
        {
            "id": [f"L{i}" for i in range(n)],
            "seq": np.arange(n),
            "visits": visits,
            "plan": rng.choice(["basic", "pro"], n),
            "status": np.where(won, "Closed Won", "Closed Lost").astype(object),
        }
    )


def _write_crm_spec(folder: Path, source: str, label: dict) -> None:
    """``spec.yaml`` (name ``crm``) for a CRM export, and a ``train.yaml`` without bootstrap."""
    import yaml

    spec = {"name": "crm", "source": source, "id": "id", "label": label, "order_by": "seq"}
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    (folder / "train.yaml").write_text("evaluation: {resamples: 0}\n")


def test_flat_scoring_skips_closed_leads_and_finds_the_spec_s_champion(
    tmp_path, monkeypatch, capsys
):
    """A CRM export holds closed and open leads: only rows without an outcome are scored, a
    table of closed leads only is a one-line error, and without --model a spec scores with
    its own registered champion (leadscore-<spec name>), the name train registers it under."""
    frame = _crm_export(2000, seed=8)
    frame.to_csv(tmp_path / "history.csv", index=False)
    _write_crm_spec(tmp_path, "history.csv", CRM_LABEL)
    monkeypatch.chdir(tmp_path)
    train = ["train", "--spec", "spec.yaml", "--config", "train.yaml", "--allow-worse"]
    assert main(["-q", *train]) == 0
    capsys.readouterr()

    current = frame.head(300).assign(status=["Open", "Closed Won", "", "Nurture"] * 75)
    current.to_csv(tmp_path / "current.csv", index=False)
    target = tmp_path / "scores.duckdb"
    argv = ["score", "--spec", "spec.yaml", "--no-progress", "--no-reasons", "--target"]
    assert main([*argv, str(target), "--input", "current.csv"]) == 0
    scored = read_scored_leads(target)
    assert sorted(scored["lead_id"]) == sorted(current.loc[current["status"] != "Closed Won", "id"])
    assert set(scored["model_name"]) == {"leadscore-crm"}

    assert main([*argv, str(tmp_path / "history.duckdb")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "all 2,000 leads are closed" in error[0]
    assert not (tmp_path / "history.duckdb").exists()


def test_one_crm_export_trains_on_closed_leads_and_scores_the_open_ones(
    tmp_path, monkeypatch, capsys
):
    """``label.open`` names the values of leads still in play: training leaves them out and
    ``score --spec`` (reading the spec's own source) scores exactly them, while a value the
    spec does not declare (a typo) stays an error rather than becoming an open lead."""
    frame = _crm_export(2400, seed=9)
    rng = np.random.default_rng(10)
    frame.loc[rng.random(len(frame)) < 0.2, "status"] = "Open"
    frame.loc[rng.random(len(frame)) < 0.05, "status"] = "working "
    frame.to_csv(tmp_path / "export.csv", index=False)
    _write_crm_spec(tmp_path, "export.csv", CRM_LABEL)
    monkeypatch.chdir(tmp_path)
    train = ["train", "--spec", "spec.yaml", "--config", "train.yaml", "--allow-worse"]
    assert main(["-q", *train, "--no-mlflow"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "label.open" in error[0]

    _write_crm_spec(tmp_path, "export.csv", {**CRM_LABEL, "open": ["Open", "Working"]})
    assert main(["-q", *train, "--metrics-out", "metrics.json"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    closed = frame["status"].str.startswith("Closed")
    assert metrics["n_train"] + metrics["n_test"] <= closed.sum()
    assert metrics["n_test"] == pytest.approx(0.2 * closed.sum(), abs=2)
    capsys.readouterr()

    target = tmp_path / "scores.duckdb"
    argv = ["score", "--spec", "spec.yaml", "--no-progress", "--no-reasons", "--target"]
    assert main([*argv, str(target)]) == 0
    assert sorted(read_scored_leads(target)["lead_id"]) == sorted(frame.loc[~closed, "id"])

    frame.loc[5, "status"] = "Clsoed Lost"
    frame.to_csv(tmp_path / "export.csv", index=False)
    assert main(["-q", *train, "--no-mlflow"]) == 2
    assert "'Clsoed Lost'" in capsys.readouterr().err


def test_score_spec_applies_the_spec_s_joins(tmp_path, monkeypatch):
    """A spec whose label and a feature come from joined tables scores its own table: the
    joins are applied to the leads scored, and the leads a joined won date closes are
    skipped (without the join the features were missing and every won lead was scored), as
    are those whose window ended without a win by the newest joined won date."""
    import yaml

    rng = np.random.default_rng(12)
    n = 2400
    ids = [f"{i:05d}" for i in range(n)]
    pages = rng.poisson(3, n)
    won = rng.random(n) < 1 / (1 + np.exp(2.5 - 0.5 * pages))
    contact = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.sort(rng.integers(0, 300, n)), "D")
    leads = pd.DataFrame({"id": ids, "contact": contact, "plan": rng.choice(["a", "b"], n)})
    leads.to_csv(tmp_path / "leads.csv", index=False)
    pd.DataFrame({"lead": ids, "pages": pages}).to_parquet(tmp_path / "web.parquet")
    won_date = contact[won] + pd.Timedelta("9D")
    deals = pd.DataFrame({"lead": np.array(ids)[won], "won_date": won_date})
    deals.to_csv(tmp_path / "deals.csv", index=False)
    spec = {
        "name": "joined",
        "source": "leads.csv",
        "id": "id",
        "order_by": "contact",
        "label": {"column": "won_date", "won": "not_null", "within_days": 30},
        "join": [
            {"source": "deals.csv", "id": "lead", "columns": ["won_date"]},
            {"source": "web.parquet", "id": "lead", "columns": ["pages"]},
        ],
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    (tmp_path / "train.yaml").write_text("evaluation: {resamples: 0}\n")
    monkeypatch.chdir(tmp_path)
    argv = ["-q", "train", "--spec", "spec.yaml", "--config", "train.yaml", "--allow-worse"]
    assert main([*argv, "--no-mlflow"]) == 0
    target = tmp_path / "scores.duckdb"
    score = ["-q", "score", "--spec", "spec.yaml", "--model", "models/joined"]
    assert main([*score, "--target", str(target), "--no-progress", "--no-reasons"]) == 0
    scored = read_scored_leads(target).set_index("lead_id")
    extract = won_date.max()  # the newest joined won date ends every window
    running = np.asarray(contact + pd.Timedelta(days=30) > extract)
    assert sorted(scored.index) == sorted(np.array(ids)[~won & running])
    model = LeadScoringModel.load(tmp_path / "models" / "joined")
    rows = leads.assign(id=ids, pages=pages)[~won & running].set_index("id").loc[scored.index]
    expected = model.predict_proba(rows.reset_index())
    np.testing.assert_allclose(scored["probability"].to_numpy(), expected, rtol=0, atol=1e-12)


def test_the_data_form_is_the_one_recorded_at_training(scored_world):
    """A flat table made of the built-in engagement features (as the scoring benchmark
    writes one) is still a flat model: the form recorded at training decides, not the names."""
    from leadscore.scoring import model_data_form

    model = LeadScoringModel.load(scored_world["model"])
    assert model.metadata["data_form"] == "events"
    assert model_data_form(model) == "events"
    as_flat = LeadScoringModel(
        model.booster, model.encoder, model.calibrator, model.stages,
        {**model.metadata, "data_form": "flat"},
    )  # fmt: skip
    assert model_data_form(as_flat) == "flat"


def test_flat_chunks_keep_ids_as_written_and_trim_the_other_text(tmp_path):
    """Training keeps ids as written (an id is a key, not a category); scoring must too, or
    ' A1 ' is written to scored_leads as 'A1', a lead the CRM does not have."""
    from leadscore.scoring import flat_feature_chunks
    from leadscore.specs import parse_spec

    pd.DataFrame({"id": [" A1 ", "B2"], "plan": ["pro ", " team"], "status": ["", ""]}).to_csv(
        tmp_path / "leads.csv", index=False
    )
    spec = parse_spec(
        {"name": "acme", "source": "leads.csv", "id": "id",
         "label": {"column": "status", "won": ["won"]}},
        base_dir=tmp_path,
    )  # fmt: skip
    ((rows, ids),) = flat_feature_chunks(spec, chunk_rows=10)
    assert ids.tolist() == [" A1 ", "B2"]
    assert rows["plan"].tolist() == ["pro", "team"]


@pytest.mark.parametrize("joined", [False, True], ids=["won-date-column", "closed-deals-join"])
def test_a_won_within_days_lead_whose_window_ended_is_lost_not_scored(tmp_path, joined):
    """With ``within_days``, training labels a lead without a win whose window ended by the
    extract as lost; scoring sent such leads to sales as open (olist: 7,158 leads, 1,621 new
    SQLs, all lost by the back-test of the same run). By the extract (observed_until, the
    newest won date of a closed-deals join, else the as-of) they are closed, a win too, and
    only leads whose window is still running are scored."""
    from leadscore.scoring import flat_feature_chunks
    from leadscore.specs import parse_spec

    leads = pd.DataFrame(
        {
            "id": ["old", "won", "young", "edge"],
            "created": ["2024-01-01", "2024-05-01", "2024-05-20", "2024-03-02"],
            "plan": ["pro", "team", "pro", "team"],
        }
    )
    wins = pd.DataFrame({"id": ["won"], "won_at": ["2024-05-10"]})
    spec: dict = {
        "name": "acme",
        "source": "leads.csv",
        "id": "id",
        "label": {"column": "won_at", "won": "not_null", "within_days": 90},
        "order_by": "created",
    }
    if joined:
        wins.to_csv(tmp_path / "deals.csv", index=False)
        spec["join"] = [{"source": "deals.csv", "id": "id", "columns": ["won_at"]}]
        leads.to_csv(tmp_path / "leads.csv", index=False)
    else:
        leads.merge(wins, on="id", how="left").to_csv(tmp_path / "leads.csv", index=False)

    def scored(given: dict, as_of: str) -> tuple[set, set]:
        closed: list[pd.Series] = []
        chunks = flat_feature_chunks(
            parse_spec(given, base_dir=tmp_path),
            chunk_rows=2,
            on_closed=closed.append,
            as_of=pd.Timestamp(as_of),
        )
        ids = {i for _, chunk_ids in chunks for i in chunk_ids}
        return ids, set(pd.concat(closed)) if closed else set()

    # the extract is 2024-05-31: "edge" (window ends 05-31) is lost, "young" runs to August
    as_of = "2024-05-31" if not joined else "2026-01-01"  # a join's newest won date wins
    if joined:
        wins.assign(won_at=["2024-05-31"]).to_csv(tmp_path / "deals.csv", index=False)
    assert scored(spec, as_of) == ({"young"}, {"old", "won", "edge"})
    earlier = {**spec, "label": {**spec["label"], "observed_until": "2024-05-30"}}
    assert scored(earlier, "2026-01-01") == ({"young", "edge"}, {"old", "won"})


@pytest.mark.parametrize("extract", ["won-date-column", "closed-deals-join", "observed-until"])
def test_a_within_days_lead_won_after_the_as_of_is_scored_as_open_then(tmp_path, extract):
    """Scored --as-of a moment before the export, a lead won after it was open then: it is
    scored (olist as of 2018-04-15 left out all 84 leads won later, and the back-test of the
    run counted none of their wins). A window counts as ended by the as-of, not by a later
    extract (the built-in olist spec's newest won date, 2018-11-14, closed every lead of
    April); a win after its window had ended by the as-of is no win, as training reads it."""
    from leadscore.scoring import flat_feature_chunks
    from leadscore.specs import parse_spec

    leads = pd.DataFrame(
        {
            "id": ["before", "after", "between", "lost", "late"],
            "created": ["2024-01-10", "2024-02-01", "2024-01-05", "2023-11-01", "2023-10-01"],
            "plan": ["pro", "team", "pro", "team", "pro"],
        }
    )
    wins = pd.DataFrame(
        {"id": ["before", "after", "late"], "won_at": ["2024-02-01", "2024-04-20", "2024-04-10"]}
    )
    spec: dict = {
        "name": "acme",
        "source": "leads.csv",
        "id": "id",
        "label": {"column": "won_at", "won": "not_null", "within_days": 90},
        "order_by": "created",
    }
    if extract == "closed-deals-join":  # the extract is the newest won date, 2024-04-20
        wins.to_csv(tmp_path / "deals.csv", index=False)
        spec["join"] = [{"source": "deals.csv", "id": "id", "columns": ["won_at"]}]
        leads.to_csv(tmp_path / "leads.csv", index=False)
    else:
        leads.merge(wins, on="id", how="left").to_csv(tmp_path / "leads.csv", index=False)
    if extract == "observed-until":
        spec["label"]["observed_until"] = "2024-06-30"
    closed: list[pd.Series] = []
    chunks = flat_feature_chunks(
        parse_spec(spec, base_dir=tmp_path),
        chunk_rows=2,
        on_closed=closed.append,
        as_of=pd.Timestamp("2024-03-01"),
    )
    scored = {i for _, chunk_ids in chunks for i in chunk_ids}
    # "between": its window ends 2024-04-04, after the as-of, before the extract
    assert scored == {"after", "between"}
    assert set(pd.concat(closed)) == {"before", "lost", "late"}


@pytest.mark.parametrize("within_days", [90, None])
def test_a_bad_order_column_names_the_input_scored_not_the_spec_source(tmp_path, within_days):
    """``score --input open.csv`` with an order column of words had named ``leads.csv``, the
    spec's training table, which the user never handed over."""
    from leadscore.errors import DataError
    from leadscore.scoring import flat_feature_chunks
    from leadscore.specs import parse_spec

    label = {"column": "status", "won": ["Won"]}
    if within_days is not None:
        label = {"column": "won_at", "won": "not_null", "within_days": within_days}
    spec = parse_spec(
        {"name": "acme", "source": "leads.csv", "id": "id", "label": label, "order_by": "created"},
        base_dir=tmp_path,
    )
    pd.DataFrame({"id": ["a", "b"], "created": ["abc", "abc"], "plan": ["pro", "team"]}).to_csv(
        tmp_path / "open.csv", index=False
    )
    chunks = flat_feature_chunks(spec, source=str(tmp_path / "open.csv"), chunk_rows=10)
    with pytest.raises(DataError, match=r"^open\.csv: order_by column 'created'"):
        next(iter(chunks))


def test_a_lead_won_on_the_day_the_manifest_names_is_not_scored_as_open(scored_world, tmp_path):
    """A manifest naming the export's day ("2026-06-30") is read as that day's end: scored at
    the data's end by default, a lead won that day at 10:00 is closed, not handed to sales
    as open (read as the day's midnight, it was, and nothing warned)."""
    import shutil

    from leadscore.sinks import closed_by

    folder = tmp_path / "crm"
    shutil.copytree(scored_world["data"], folder)
    day = load_closed_loop(folder).observed_until.normalize()
    (folder / "manifest.json").write_text(json.dumps({"observed_until": f"{day:%Y-%m-%d}"}))
    (path,) = folder.glob("outcomes.*")
    read = pd.read_parquet if path.suffix == ".parquet" else pd.read_csv
    outcomes = read(path)
    leads = load_closed_loop(folder).leads
    open_ids = leads.loc[~leads["lead_id"].isin(outcomes["lead_id"]), "lead_id"]
    lead = str(sorted(open_ids)[0])
    won = pd.DataFrame(
        {"lead_id": [lead], "outcome": ["won"], "closed_at": [day + pd.Timedelta(hours=10)]}
    )
    outcomes = pd.concat([outcomes, won.astype({"closed_at": outcomes["closed_at"].dtype})])
    if path.suffix == ".parquet":
        outcomes.to_parquet(path, index=False)
    else:
        outcomes.to_csv(path, index=False)
    target = tmp_path / "s.duckdb"
    argv = ["score", "--data", str(folder), "--model", str(scored_world["model"])]
    assert main([*argv, "--target", str(target), "--no-progress", "--no-reasons"]) == 0
    scored = read_scored_leads(str(target))
    end = day + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    assert (scored["as_of"] == end).all()
    assert lead not in set(scored["lead_id"])
    assert closed_by(str(target), lead) == end


def test_event_data_is_scored_as_of_its_end_unless_told(scored_world, tmp_path, caplog):
    """Without --as-of, event data is scored at its observed_until, not "now": a stale
    extract scored now would read the days it lacks as days without activity. The run equals
    one given that moment, and a warning names how old the data is."""
    from leadscore.io import event_observed_until

    end = event_observed_until(scored_world["data"])
    assert pd.Timestamp.now() - end > pd.Timedelta(days=1)  # the synthetic extract is old
    runs = {}
    for name, extra in (("default", []), ("given", ["--as-of", f"{end:%Y-%m-%d %H:%M:%S}"])):
        target = tmp_path / f"{name}.duckdb"
        argv = ["score", "--data", str(scored_world["data"]), "--model", str(scored_world["model"])]
        with caplog.at_level(logging.WARNING, logger="leadscore"):
            assert main([*argv, "--target", str(target), "--no-progress", *extra]) == 0
        runs[name] = read_scored_leads(str(target)).sort_values("lead_id", ignore_index=True)
    assert (runs["default"]["as_of"] == end).all()
    pd.testing.assert_series_equal(runs["default"]["probability"], runs["given"]["probability"])
    stale = [m for m in caplog.messages if m.startswith("the data ends at")]
    assert len(stale) == 1 and "days before now" in stale[0] and "--as-of" in stale[0]
    assert not [m for m in caplog.messages if "after observed_until" in m]


def test_the_pyfunc_of_an_event_model_refuses_a_leads_table(scored_world):
    """An event model scores the features built from the activity log: a leads table sent as
    it is (its company_size and source match feature names) is one line saying so, not a
    score of every lead as inactive."""
    from leadscore.errors import DataError
    from leadscore.pyfunc import score_frame

    model = load_scoring_model(scored_world["model"]).model
    assert model.metadata["data_form"] == "events"
    data = load_closed_loop(scored_world["data"])
    assert {f.name for f in model.features} & set(data.leads.columns)
    with pytest.raises(DataError, match=r"none of this event-data model's .* activity features"):
        score_frame(model, data.leads)
    table = build_features(data, AS_OF, features=model.features)
    assert len(score_frame(model, table.frame)) == len(table.frame)


def test_an_event_model_checks_the_sizes_of_lead_columns_only(scored_world):
    """Lead age, recency and activity counts are leadscore's own sums: an early as-of gives
    honest leads a lead age far below the test fold's, which no export fixes, so only the
    lead table's numbers (company size here) keep a typical size to hold scoring against."""
    model = scored_world["result"].model
    buckets = model.drift_reference.buckets_
    sized = {name for name, spec in buckets.items() if spec.get("size") is not None}
    numeric_fit = {f.name for f in model.features if f.group == "fit" and f.kind == "numeric"}
    assert sized == numeric_fit and "company_size" in sized


def test_a_manifest_moment_in_the_future_is_refused_as_a_given_one_is(
    scored_world, tmp_path, capsys
):
    """Scoring at the data's end must not score as of next year because a manifest says so:
    an --as-of in the future is refused, and so is that default."""
    import shutil

    folder = tmp_path / "crm"
    shutil.copytree(scored_world["data"], folder)
    later = (pd.Timestamp.now() + pd.Timedelta(days=60)).strftime("%Y-%m-%dT00:00:00")
    (folder / "manifest.json").write_text(json.dumps({"observed_until": later}))
    target = tmp_path / "s.duckdb"
    argv = ["score", "--data", str(folder), "--model", str(scored_world["model"])]
    assert main([*argv, "--target", str(target), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "observed_until" in err and "is in the future" in err and "manifest.json" in err
    assert not target.exists()


@pytest.mark.parametrize("kind", ["duckdb", "sqlite", "parquet"])
def test_explain_says_a_lead_closed_before_any_run_scored_it(scored_world, tmp_path, kind, capsys):
    """A lead closed before the first run is recorded as closed, never scored: its card says
    so, not "has not been scored ... check the id"."""
    from leadscore.sinks import closed_by

    data = load_closed_loop(scored_world["data"])
    closed = data.outcomes.loc[data.outcomes["closed_at"] <= AS_OF, "lead_id"].astype(str)
    lead = closed.iloc[0]
    target = {
        "duckdb": str(tmp_path / "s.duckdb"),
        "sqlite": f"sqlite:///{tmp_path / 's.db'}",
        "parquet": str(tmp_path / "s.parquet"),
    }[kind]
    argv = ["score", "--data", str(scored_world["data"]), "--model", str(scored_world["model"])]
    argv += ["--as-of", str(AS_OF.date()), "--target", target, "--no-progress", "--no-reasons"]
    assert main(argv) == 0
    assert closed_by(target, lead) == AS_OF
    assert closed_by(target, "no such lead") is None
    capsys.readouterr()
    assert main(["explain", lead, "--target", target]) == 2
    err = capsys.readouterr().err
    assert f"lead {lead!r} had closed (won or lost) by the run as of 2026-05-01 00:00" in err
    assert main(["explain", "no such lead", "--target", target]) == 2
    assert "has not been scored" in capsys.readouterr().err


def test_the_data_s_end_is_found_once_when_scoring_at_it(scored_world, tmp_path, monkeypatch):
    """Scoring at the data's end finds that end by reading every timestamp; the reader is
    handed it instead of reading them all again (a second full pass on a database)."""
    import leadscore.io as io

    found = []
    latest = io._latest_timestamp

    def counted(*args, **kwargs):
        found.append(1)
        return latest(*args, **kwargs)

    import shutil

    folder = tmp_path / "crm"  # without a manifest: the end is the latest timestamp
    shutil.copytree(scored_world["data"], folder)
    (folder / "manifest.json").unlink(missing_ok=True)
    monkeypatch.setattr(io, "_latest_timestamp", counted)
    argv = ["score", "--data", str(folder), "--model", str(scored_world["model"])]
    target = tmp_path / "s.duckdb"
    assert main([*argv, "--target", str(target), "--no-progress", "--no-reasons"]) == 0
    assert len(found) == 1
    end = io.event_observed_until(folder)
    assert (read_scored_leads(str(target))["as_of"] == end).all()


@pytest.mark.parametrize("kind", ["duckdb", "sqlite", "parquet"])
def test_an_input_that_lost_its_outcomes_or_activities_writes_nothing(
    scored_world, tmp_path, kind, capsys, caplog
):
    """A nightly export gone wrong: without its outcomes table every closed lead would
    return to scored_leads as open (the target's records of earlier runs say they had
    closed), and without its activities table every lead would look idle. Both stop with
    one line and leave the target as it was; a few reopened leads are only a warning."""
    import shutil

    target = {
        "duckdb": str(tmp_path / "s.duckdb"),
        "sqlite": f"sqlite:///{tmp_path / 's.db'}",
        "parquet": str(tmp_path / "s.parquet"),
    }[kind]
    argv = ["score", "--model", str(scored_world["model"]), "--target", target, "--no-progress"]
    argv += ["--no-reasons"]
    assert main([*argv, "--data", str(scored_world["data"]), "--as-of", "2026-04-01"]) == 0
    before = read_scored_leads(target)
    capsys.readouterr()

    for missing, words in (
        ("outcomes", "were recorded as closed"),
        ("activities", "no activities"),
    ):
        broken = tmp_path / f"no_{missing}"
        shutil.copytree(scored_world["data"], broken)
        (broken / f"{missing}.parquet").unlink()
        assert main([*argv, "--data", str(broken), "--as-of", str(AS_OF.date())]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        errors = [line for line in err if "error:" in line]
        assert len(errors) == 1 and words in errors[0] and errors[0] == err[-1], err
        pd.testing.assert_frame_equal(read_scored_leads(target), before)

    # an incremental load that kept the newest outcomes only: closes some, reopens most
    outcomes = pd.read_parquet(scored_world["data"] / "outcomes.parquet")
    recent = tmp_path / "recent_outcomes"
    shutil.copytree(scored_world["data"], recent)
    outcomes[outcomes["closed_at"] > pd.Timestamp("2026-04-01")].to_parquet(
        recent / "outcomes.parquet"
    )
    assert main([*argv, "--data", str(recent), "--as-of", str(AS_OF.date())]) == 2
    assert "were recorded as closed" in capsys.readouterr().err
    pd.testing.assert_frame_equal(read_scored_leads(target), before)

    # three closed leads lost their outcome: reopened deals, scored with one warning, once
    closed_early = outcomes[outcomes["closed_at"] <= pd.Timestamp("2026-04-01")]
    gone = closed_early["lead_id"].astype(str).iloc[:3].tolist()
    reopened = tmp_path / "reopened"
    shutil.copytree(scored_world["data"], reopened)
    outcomes[~outcomes["lead_id"].astype(str).isin(gone)].to_parquet(reopened / "outcomes.parquet")
    for as_of, warned in ((AS_OF, True), (AS_OF + pd.Timedelta(days=7), False)):
        with caplog.at_level("WARNING", logger="leadscore.scoring"):
            caplog.clear()
            assert main([*argv, "--data", str(reopened), "--as-of", str(as_of.date())]) == 0
        lines = [m for m in caplog.messages if "recorded as closed" in m]
        assert bool(lines) == warned, lines
        if warned:
            assert lines[0].startswith("3 of the ") and "reopened deals" in lines[0]
    assert set(gone) <= set(read_scored_leads(target)["lead_id"])


@pytest.mark.parametrize("target", ["scores.duckdb", "scores.xlsx"])
def test_a_target_that_cannot_take_the_run_fails_before_the_model_is_loaded(
    tmp_path, target, capsys
):
    """A file that is no DuckDB database, or a target of an unknown kind, was refused only
    once the model was loaded and the data read (7 s on a 10,000-lead folder): the target is
    checked first, here before a model that does not exist is even looked for."""
    path = tmp_path / target
    path.write_text("not a database")
    argv = ["score", "--data", str(tmp_path / "crm"), "--model", str(tmp_path / "no-model")]
    assert main([*argv, "--target", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and "no-model" not in err
    assert path.read_text() == "not a database"


def test_a_model_reading_a_column_the_spec_excludes_is_refused(tmp_path, monkeypatch, capsys):
    """``score --spec`` with a model trained by another spec: a column this spec excludes
    (graded by sales after contact) read by the model is a one-line error naming the column,
    and another spec name alone is a warning naming both data sets."""
    import yaml

    from flat_tables import status_leads, train_flat_model

    leads = status_leads(600, seed=3, prefix="L", status=None)
    leads["grade"] = np.random.default_rng(4).choice(["A", "B", "C"], len(leads))
    leads.to_csv(tmp_path / "crm.csv", index=False)
    spec = {
        "name": "graded",
        "source": str(tmp_path / "crm.csv"),
        "id": "id",
        "label": {"column": "status", "won": ["won"], "lost": ["lost"]},
        "order_by": "created",
    }
    model = train_flat_model(tmp_path, spec)
    assert "grade" in [f.name for f in LeadScoringModel.load(model).features]
    open_leads = leads.head(40).assign(status="")
    open_leads.to_csv(tmp_path / "open.csv", index=False)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()

    strict = {**spec, "name": "acme", "exclude": {"grade": "graded by sales after contact"}}
    (tmp_path / "acme.yaml").write_text(yaml.safe_dump(strict))
    argv = ["score", "--spec", "acme.yaml", "--model", str(model), "--input", "open.csv"]
    argv += ["--no-progress", "--no-reasons", "--target"]
    assert main([*argv, str(tmp_path / "refused.parquet")]) == 2
    err = capsys.readouterr().err
    error = [line for line in err.splitlines() if "error:" in line]
    assert len(error) == 1
    assert "'grade'" in error[0] and "acme excludes" in error[0] and "exclude" in error[0]
    assert "trained on the data set 'graded', not on the spec 'acme'" in err
    assert not (tmp_path / "refused.parquet").exists()

    (tmp_path / "acme.yaml").write_text(yaml.safe_dump({**spec, "name": "acme"}))
    assert main([*argv, str(tmp_path / "scored.parquet")]) == 0
    assert "trained on the data set 'graded', not on the spec 'acme'" in capsys.readouterr().err

    (tmp_path / "graded.yaml").write_text(yaml.safe_dump(spec))
    argv[2] = "graded.yaml"
    assert main([*argv, str(tmp_path / "own.parquet")]) == 0
    assert "not on the spec" not in capsys.readouterr().err


def test_the_bar_moves_within_a_chunk_and_slices_score_as_one(scored_world, tmp_path, monkeypatch):
    """A run no larger than one chunk held the bar at 0% until it ended (a minute on 100,000
    leads with reasons): the chunk is now scored in slices, the bar moving after each, and
    the slices write what the whole chunk wrote."""
    import leadscore.scoring as scoring_module

    positions: list[int] = []

    class RecordingBar(tqdm):
        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            positions.append(int(self.n))
            return shown

    monkeypatch.setattr(scoring_module, "tqdm", RecordingBar)
    scoring = load_scoring_model(scored_world["model"])
    targets = {}
    for slice_rows in (1_000_000, 97):
        monkeypatch.setattr(scoring_module, "SCORE_SLICE_ROWS", slice_rows)
        positions.clear()
        targets[slice_rows] = tmp_path / f"s{slice_rows}.duckdb"
        chunks = event_feature_chunks(scored_world["data"], AS_OF, chunk_leads=100_000)
        run_scoring(scoring, chunks, target=str(targets[slice_rows]), as_of=AS_OF, progress=True)
        if slice_rows == 97:
            assert len(positions) > 3 and positions == sorted(positions)
            assert 0 < positions[0] < positions[-1] == chunks.progress.total
        else:
            assert len(positions) == 1  # one chunk, one step: the bar had nothing between
    whole, sliced = (
        read_history(str(targets[n])).drop(columns="scored_at").sort_values("lead_id")
        for n in (1_000_000, 97)
    )
    assert len(whole) > 97 * 3
    pd.testing.assert_frame_equal(whole.reset_index(drop=True), sliced.reset_index(drop=True))


@pytest.mark.parametrize("period_days", [7, 10])
def test_a_capacity_policy_is_held_to_the_new_sqls_of_its_period(
    scored_world, tmp_path, caplog, period_days
):
    """The capacity policy promises sales so many SQLs per period; the runs of the period
    that ends at a run's as-of are counted against it, a lead that came back to SQL counted
    again, and more than a quarter over the capacity is a warning that says what to change.
    Weekly runs against a 10-day period: the runs after the latest one at or before the
    period's start cover 14 days, and their hand-offs are scaled to 10 (summed as 10 days'
    flow, runs every 14 days against 30 had read 40% over)."""
    from dataclasses import replace

    from leadscore.scoring import ScoringModel
    from leadscore.stages import StageThresholds

    scoring = load_scoring_model(scored_world["model"])
    X, _ = next(event_feature_chunks(scored_world["data"], AS_OF, chunk_leads=5000))
    p = scoring.model.predict_proba(X, warn_unseen=False)
    policy = {"sql": {"policy": "capacity", "target": 3}, "period_days": period_days}
    fitted = StageThresholds(policy).fit(p, p > np.median(p), periods=10).to_dict()
    fitted["policy"]["sql"]["target"] = 1  # the cut-off of 30 standing SQLs, promised as 1
    stages = StageThresholds.from_dict(fitted)
    capped = ScoringModel(
        LeadScoringModel(
            scoring.model.booster,
            scoring.model.encoder,
            scoring.model.calibrator,
            stages,
            dict(scoring.model.metadata),
            scoring.model.sub_scorer,
            scoring.model.drift_reference,
        ),
        scoring.name,
        "capped",
    )
    target = str(tmp_path / "capacity.duckdb")
    checks = []
    runs = [AS_OF - pd.Timedelta(days=21), AS_OF - pd.Timedelta(days=14)][period_days == 7 :]
    for as_of in (*runs, AS_OF - pd.Timedelta(days=7), AS_OF):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="leadscore"):
            summary = run_scoring(
                capped,
                event_feature_chunks(scored_world["data"], as_of, chunk_leads=5000),
                target=target,
                as_of=as_of,
                progress=False,
                with_reasons=False,
            )
        checks.append((summary.capacity, [r.getMessage() for r in caplog.records]))
    history = read_history(target)
    period = pd.Timedelta(days=period_days)
    run_times = pd.Series(sorted(history["as_of"].unique()))
    for check, said in checks:
        before = run_times[run_times <= check.until - period]
        since = before.max() if len(before) else None
        assert check.since == since
        window = history[
            (history["as_of"] > (check.until - period if since is None else since))
            & (history["as_of"] <= check.until)
        ]
        came = (window["stage"] == "sql") & (window["previous_stage"].fillna("") != "sql")
        assert check.entries == int(came.sum()) > 0
        assert (check.capacity, check.period_days) == (1, period_days)
        days = period_days if since is None else (check.until - since).days
        assert check.per_period == pytest.approx(check.entries * period_days / days)
        warned = [s for s in said if "more than sales can take" in s]
        assert bool(warned) == check.exceeded
    first, second, third = (c for c, _ in checks[-3:])
    assert not first.complete and not first.exceeded and "a first backlog" in first.line()
    assert second.complete and third.complete
    if period_days == 7:
        assert third.exceeded and f"capacity: {third.entries:,} new SQLs in the 7 days to" in (
            third.line()
        )
    else:
        assert (third.until - third.since).days == 14
        assert third.line().startswith(
            f"capacity: {third.entries:,} new SQLs in the 14 days to {AS_OF:%Y-%m-%d} (the runs "
            f"since {third.since:%Y-%m-%d}), {third.per_period:,.1f} per 10 days, against 1 per "
            "10 days"
        )
    other = replace(scoring, version="other")  # a recall policy: nothing to hold it to
    plain = run_scoring(
        other,
        event_feature_chunks(scored_world["data"], AS_OF, chunk_leads=5000),
        target=str(tmp_path / "recall.duckdb"),
        as_of=AS_OF,
        progress=False,
        with_reasons=False,
    )
    assert plain.capacity is None


def test_a_run_says_when_an_activity_stopped_being_tracked(scored_world, tmp_path, caplog):
    """With the website's tracking gone, every lead's visits read 0 and its score falls,
    with no missing value to warn of: the run names the activity that went quiet."""
    import shutil

    quiet = tmp_path / "crm"
    shutil.copytree(scored_world["data"], quiet)
    log = load_closed_loop(quiet).activities
    kept = log[~log["activity_type"].isin(["web_visit", "page_view"])]
    assert len(kept) < len(log)
    for path in quiet.glob("activities.*"):
        path.unlink()
    kept.to_parquet(quiet / "activities.parquet", index=False)
    scoring = load_scoring_model(scored_world["model"])
    said = {}
    for name, folder in (("tracked", scored_world["data"]), ("quiet", quiet)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="leadscore"):
            run_scoring(
                scoring,
                event_feature_chunks(folder, AS_OF, chunk_leads=5000),
                target=str(tmp_path / f"{name}.duckdb"),
                as_of=AS_OF,
                progress=False,
                with_reasons=False,
            )
        said[name] = [r.getMessage() for r in caplog.records if "tracking" in r.getMessage()]
    assert said["tracked"] == []
    assert said["quiet"] and any("Website" in s for s in said["quiet"]), said["quiet"]


def test_an_as_of_ahead_of_utc_now_is_named_and_a_day_ahead_refused(scored_world, tmp_path, caplog):
    """The README's notebook call stamped runs with ``pd.Timestamp.now()``: a local time, hours
    ahead of UTC east of Greenwich. That run stayed the target's latest, and the nightly job's
    runs read as back-fills that left scored_leads alone. A time ahead of UTC now is named
    with its fix; a day ahead is refused as ``--as-of`` is, before anything is written; a
    time with its zone is converted and says nothing."""
    from leadscore.errors import DataError
    from leadscore.timestamps import utc_now

    scoring = load_scoring_model(scored_world["model"])
    target = tmp_path / "s.duckdb"
    data = scored_world["data"]

    def scored(as_of) -> list[str]:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="leadscore.scoring"):
            run_scoring(
                scoring,
                event_feature_chunks(data, LATER, chunk_leads=2000),
                target=str(target),
                as_of=as_of,
                with_reasons=False,
                progress=False,
            )
        return [m for m in caplog.messages if "ahead of the time in UTC" in m]

    tokyo = (utc_now() + pd.Timedelta(hours=9)).floor("s")
    (said,) = scored(tokyo)
    assert said.startswith(f"as_of {tokyo:%Y-%m-%d %H:%M} is 9.0 hours ahead of the time in UTC")
    assert 'pass a time in UTC (pd.Timestamp.now(tz="UTC"))' in said
    zoned = pd.Timestamp.now(tz="Asia/Tokyo").floor("s")
    assert scored(zoned) == []  # a time with its zone is converted: on time
    with pytest.raises(DataError, match=r"^as_of .* is in the future"):
        scored(utc_now() + pd.Timedelta(days=2))
    runs = set(read_history(str(target))["as_of"])
    assert runs == {tokyo, zoned.tz_convert("UTC").tz_localize(None)}
