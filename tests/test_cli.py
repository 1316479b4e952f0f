"""The command line as a user meets it: one-line errors, non-zero exits, nothing written."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from leadscore.cli import build_parser, main
from leadscore.io import write_tables


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leadscore", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert {"synth", "validate", "features", "train", "tune", "score", "explain", "report"} <= set(
        commands
    )
    for name in commands:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert f"usage: leadscore {name}" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["-q", "validate", "--data", "DIR"],
        ["validate", "-q", "--data", "DIR"],
        ["validate", "--data", "DIR", "--quiet"],
        ["report", "channels", "--data", "DIR", "-q"],
    ],
)
def test_quiet_is_accepted_before_and_after_the_subcommand(tmp_path, event_frames, argv):
    """-q / -v work where users type them: before or after the subcommand, with the same
    effect (only warnings: the INFO steps are not logged)."""
    write_tables(event_frames, tmp_path / "crm")
    args = build_parser().parse_args([str(tmp_path / "crm") if a == "DIR" else a for a in argv])
    assert args.quiet is True and args.verbose == 0
    if argv[:2] == ["validate", "-q"]:  # one real run: a subprocess takes seconds
        done = run_cli(*(str(tmp_path / "crm") if a == "DIR" else a for a in argv))
        assert done.returncode == 0, done.stderr
        assert " INFO " not in done.stderr


@pytest.mark.parametrize("command", ["score", "features", "report drift"])
def test_an_as_of_in_the_future_stops_before_anything_is_read_or_written(
    tmp_path, event_frames, command
):
    write_tables(event_frames, tmp_path / "crm")
    done = run_cli(
        *command.split(), "--data", str(tmp_path / "crm"), "--as-of", "2999-01-01", cwd=tmp_path
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--as-of 2999-01-01 00:00 is in the future" in lines[0]
    assert not (tmp_path / "data").exists()


def test_verbose_counts_after_the_subcommand_and_defaults_hold():
    parser = build_parser()
    assert parser.parse_args(["score", "--data", "d", "-vv"]).verbose == 2
    assert parser.parse_args(["-v", "score", "--data", "d"]).verbose == 1
    plain = parser.parse_args(["score", "--data", "d"])
    assert (plain.verbose, plain.quiet) == (0, False)


def test_user_error_is_one_line_without_traceback(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "x",
                "source": "a.csv",
                "id": "id",
                "label": {"column": "y", "won": [1]},
                "lables": {},
            }
        )
    )
    result = run_cli("validate", "--spec", str(spec))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("leadscore validate: error:")
    assert "unknown key 'lables'" in lines[0]
    assert "Traceback" not in result.stderr


def test_validate_event_folder_reports_counts(tmp_path, event_frames):
    write_tables(event_frames, tmp_path / "crm")
    result = run_cli("validate", "--data", str(tmp_path / "crm"))
    assert result.returncode == 0, result.stderr
    assert "3 leads, 4 activities, 2 closed (1 won)" in result.stdout
    assert "  fit features (" in result.stdout and "source" in result.stdout
    assert "  engagement features (" in result.stdout and "web_visits_30d" in result.stdout


def test_features_before_any_lead_is_an_error_and_writes_nothing(tmp_path, event_frames):
    write_tables(event_frames, tmp_path / "crm")
    out = tmp_path / "features.parquet"
    result = run_cli(
        "features", "--data", str(tmp_path / "crm"), "--as-of", "2000-01-01", "--out", str(out)
    )
    assert result.returncode == 2
    assert "no lead of" in result.stderr and "was created by 2000-01-01" in result.stderr
    assert not out.exists()


def test_output_piped_into_a_closed_reader_ends_quietly(tmp_path, event_frames):
    """`leadscore ... | head -1`: the reader leaves early; no BrokenPipeError traceback."""
    write_tables(event_frames, tmp_path / "crm")
    piped = subprocess.run(
        f"{sys.executable} -m leadscore -q validate --data {tmp_path / 'crm'} | (exec 0<&-)",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Traceback" not in piped.stderr and "BrokenPipe" not in piped.stderr, piped.stderr


def test_ctrl_c_while_a_command_loads_the_library_is_one_line():
    """`score` fills in its options' defaults from the scorer, which imports LightGBM: a
    Ctrl-C in those seconds gave a 41-line traceback. The user's Ctrl-C is played by an
    import hook that raises it when LightGBM starts to load."""
    code = """
import sys
class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "lightgbm":
            raise KeyboardInterrupt
sys.meta_path.insert(0, CtrlC())
from leadscore.cli import main
sys.exit(main(["score", "--data", "crm"]))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip() == "leadscore: interrupted"


def test_validate_bad_event_folder(tmp_path, event_frames):
    frames = dict(event_frames)
    frames["activities"] = frames["activities"].assign(lead_id=["a", "a", "b", "ghost"])
    write_tables(frames, tmp_path / "crm")
    result = run_cli("validate", "--data", str(tmp_path / "crm"))
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("leadscore validate: error:") and "not in leads, e.g. 'ghost'" in last
    assert result.stderr.count("error") == 1 and "Traceback" not in result.stderr


def test_validate_flat_spec_lists_exclusions(tmp_path, flat_frame):
    n = len(flat_frame)
    emails = [f"p{i}@{('gmail.com', 'acme.io')[i % 2]}" for i in range(n)]
    flat_frame.assign(email=emails).to_csv(tmp_path / "leads.csv", index=False)
    (tmp_path / "spec.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "toy",
                "source": "leads.csv",
                "id": "id",
                "order_by": "seq",
                "label": {"column": "converted", "won": [1], "lost": [0]},
                "exclude": {"tags": "written by sales"},
            }
        )
    )
    result = run_cli("validate", "--spec", str(tmp_path / "spec.yaml"))
    assert result.returncode == 0, result.stderr
    assert "60 leads, 20 won" in result.stdout
    assert "left out 'tags': written by sales" in result.stdout
    assert "email (read as corporate or free mail)" in result.stdout
    # how each feature is read, so counts read as categories show before a model is trained
    assert "visits (number)" in result.stdout and "source (3 categories)" in result.stdout


def test_missing_required_option_exits_non_zero():
    result = run_cli("validate")
    assert result.returncode == 2
    assert "one of the arguments --spec --data is required" in result.stderr


def test_unreadable_parquet(tmp_path):
    (tmp_path / "crm").mkdir()
    (tmp_path / "crm" / "leads.parquet").write_bytes(b"not parquet at all")
    result = run_cli("validate", "--data", str(tmp_path / "crm"))
    assert result.returncode == 2
    assert "cannot be read" in result.stderr and "Traceback" not in result.stderr


def _train(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("train", "--spec", "spec.yaml", "--config", "train.yaml", *args, cwd=project)


def _one_line_error(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and text in errors[0], result.stderr
    assert result.stderr.strip().splitlines()[-1] == errors[0]
    assert "Traceback" not in result.stderr


def test_train_checks_its_outputs_before_training(flat_project: Path) -> None:
    (flat_project / "notes.txt").write_text("a file")
    bad_uri = _train(flat_project, "--tracking-uri", "sqlite:///notes.txt/mlflow.db")
    _one_line_error(bad_uri, "notes.txt is a file, not a folder")
    (flat_project / "out").mkdir()
    bad_metrics = _train(flat_project, "--no-mlflow", "--metrics-out", "out")
    _one_line_error(bad_metrics, "--metrics-out out is a folder")
    assert not (flat_project / "models").exists()
    assert not list((flat_project / "out").iterdir())


@pytest.mark.slow
def test_train_writes_the_model_folder_only_after_logging_succeeded(flat_project: Path) -> None:
    (flat_project / "mlflow.db").write_text("not a database\n" * 100)
    failed = _train(
        flat_project, "--tracking-uri", "sqlite:///mlflow.db", "--metrics-out", "m.json"
    )
    _one_line_error(failed, "cannot log to MLflow")
    assert not (flat_project / "models").exists()
    assert not (flat_project / "m.json").exists()

    done = _train(flat_project, "--no-mlflow", "--metrics-out", "m.json")
    assert done.returncode == 0, done.stderr
    assert "model saved to models/acme (the newest model)" in done.stdout
    assert sorted(p.name for p in (flat_project / "models").iterdir()) == ["acme"]
    assert sorted(p.name for p in (flat_project / "models" / "acme").iterdir()) == [
        "booster.txt",
        "model.json",
    ]
    assert (flat_project / "m.json").is_file()

    shared = flat_project / "shared"
    shared.mkdir()
    (shared / "mlflow.db").write_text("kept")
    assert _train(flat_project, "--no-mlflow", "--model-out", "shared").returncode == 0
    assert sorted(p.name for p in shared.iterdir()) == ["booster.txt", "mlflow.db", "model.json"]


def test_explain_card_of_a_no_reasons_run_claims_no_reasons() -> None:
    from leadscore.commands.explain import lead_card
    from test_sinks import make_scored

    april = make_scored(1, "2024-04-01")
    may = make_scored(1, "2024-05-01", seed=1).assign(
        fit_score=pd.array([pd.NA], dtype="Int64"),
        engagement_score=pd.array([pd.NA], dtype="Int64"),
        reasons_for="",
        reasons_against="",
        reasons_json="[]",
    )
    card = lead_card(pd.concat([april, may], ignore_index=True))
    assert "Scored without reasons (--no-reasons)" in card
    for wrong in ("<NA>", "(none notable)", "no longer reasons", "new reasons", "Reasons for"):
        assert wrong not in card
    assert "Since the scoring as of 2024-04-01" in card
    with_reasons = lead_card(pd.concat([may, april.assign(as_of=pd.Timestamp("2024-06-01"))]))
    assert "Reasons for:" in with_reasons and "new reasons" not in with_reasons


def test_explain_compares_with_the_latest_earlier_as_of_not_a_rerun() -> None:
    """A second model version scoring the same as-of again is not the "previous" scoring:
    the card compares with the latest earlier as-of, as previous_stage does."""
    from leadscore.commands.explain import lead_card
    from test_sinks import make_scored

    mid = make_scored(1, "2024-05-15", seed=2).assign(stage="lead", score=10)
    v1 = make_scored(1, "2024-05-31", seed=3).assign(stage="mql", score=40)
    v2 = make_scored(1, "2024-05-31", seed=4).assign(stage="mql", score=42, model_version="2")
    card = lead_card(pd.concat([mid, v1, v2], ignore_index=True))
    assert "Since the scoring as of 2024-05-15 00:00: score 10 -> 42, stage LEAD -> MQL" in card
    assert lead_card(pd.concat([v1, v2], ignore_index=True)).count("First scoring") == 1


def test_a_model_used_with_the_other_data_form_names_the_right_command(
    flat_project: Path, tmp_path: Path, event_frames, capsys, caplog
) -> None:
    """A flat-spec model given event data (and an event model given --spec) ends in one line
    naming the command that fits, not in a missing column; a flat table holding a value the
    model never saw warns with the count and an example."""
    import logging

    model = flat_project / "models" / "acme"
    argv = ["--config", str(flat_project / "train.yaml"), "--no-mlflow", "--model-out", str(model)]
    assert main(["train", "--spec", str(flat_project / "spec.yaml"), *argv]) == 0
    write_tables(event_frames, tmp_path / "crm")
    target = tmp_path / "s.duckdb"
    capsys.readouterr()
    score = ["score", "--target", str(target), "--no-progress"]
    assert main([*score, "--data", str(tmp_path / "crm"), "--model", str(model)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "trained on the flat spec acme" in err
    assert "--spec YOUR_SPEC.yaml (the spec named acme) --input FILE" in err  # not built in
    assert not target.exists()

    new = pd.DataFrame(
        {"id": ["N1", "N2", "N3"], "created": "2024-06-01", "status": "",
         "visits": [1, 5, 2], "source": ["tiktok", "google", "tiktok"]}
    )  # fmt: skip
    new.to_csv(tmp_path / "new.csv", index=False)
    spec = ["--spec", str(flat_project / "spec.yaml"), "--input", str(tmp_path / "new.csv")]
    with caplog.at_level(logging.WARNING, logger="leadscore.scoring"):
        assert main([*score, *spec, "--model", str(model)]) == 0
    (unseen,) = [r.getMessage() for r in caplog.records if "never saw" in r.getMessage()]
    assert unseen.startswith("2 of 3 scored leads") and "'source'" in unseen
    assert "'tiktok'" in unseen


@pytest.mark.parametrize("size", ["0", "-5"])
def test_chunk_size_below_one_is_refused_by_argparse(capsys, size):
    """--chunk-size 0 was read as "the default" and a negative one was refused only for
    folders: any value below 1 is now argparse's own error, before anything is read."""
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["score", "--data", "crm", "--chunk-size", size])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --chunk-size: expected a whole number of at least 1" in err
    assert build_parser().parse_args(["score", "--data", "d", "--chunk-size", "1"]).chunk_size == 1


# The library's heavy imports: none of them may be loaded to build the command line.
HEAVY_MODULES = (
    "pandas", "numpy", "pyarrow", "duckdb", "sklearn", "lightgbm", "optuna", "sqlalchemy",
    "matplotlib", "mlflow", "shap", "scipy",
)  # fmt: skip
# commands/report.py still imports the library at module level; it is left out until it is not
LIGHT_COMMANDS = ("synth", "validate", "features", "train", "tune", "score", "explain", "report")


def test_registering_the_commands_imports_none_of_the_library():
    """`leadscore --help` took 7-10 s: each command module imported the whole stack to add
    its options. Registering them must load none of the heavy libraries."""
    code = f"""
import argparse, importlib, sys
from leadscore import cli
parser_class = getattr(cli, "CommandParser", argparse.ArgumentParser)
sub = argparse.ArgumentParser().add_subparsers(parser_class=parser_class)
for name in {LIGHT_COMMANDS!r}:
    importlib.import_module("leadscore.commands." + name).register(sub)
print(sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY_MODULES!r})))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout


def test_defaults_filled_in_when_a_command_is_used_match_the_library(capsys):
    """The defaults a command takes from the library (filled in when it is used, so that
    building the parser stays cheap) are those of the library, in the parsed arguments and in
    the help."""
    from leadscore.scoring import DEFAULT_CHUNK_LEADS, DEFAULT_CHUNK_ROWS
    from leadscore.sinks import DEFAULT_TARGET
    from leadscore.synth import CHANNELS, SynthParams
    from leadscore.tuning import OBJECTIVES

    parser = build_parser()
    assert parser.parse_args(["score", "--data", "d"]).target == DEFAULT_TARGET
    assert parser.parse_args(["explain", "L1"]).target == DEFAULT_TARGET
    for report in ("channels", "backtest"):
        assert parser.parse_args(["report", report, "--data", "d"]).target == DEFAULT_TARGET
    synth = vars(parser.parse_args(["synth", "--leads", "5", "--out", "o"]))
    defaults = SynthParams()
    for name in ("seed", "win_rate", "start", "end", "mean_activities"):
        assert synth[name] == getattr(defaults, name), name
    assert parser.parse_args(["tune", "--data", "d", "--objective", "roc_auc"]).objective
    with pytest.raises(SystemExit):
        parser.parse_args(["tune", "--data", "d", "--objective", "accuracy"])
    assert "invalid choice: 'accuracy'" in capsys.readouterr().err

    helps = {}
    for name in ("score", "synth", "tune", "explain"):
        with pytest.raises(SystemExit):
            main([name, "--help"])
        helps[name] = " ".join(capsys.readouterr().out.split())
    chunks = f"{DEFAULT_CHUNK_LEADS:,} event-form leads, {DEFAULT_CHUNK_ROWS:,} flat rows"
    assert chunks in helps["score"]
    assert f"(default: {DEFAULT_TARGET})" in helps["score"]
    assert f"(default: {DEFAULT_TARGET})" in helps["explain"]
    assert f"(channels: {', '.join(CHANNELS)})" in helps["synth"]
    assert f"(default: {defaults.seed})" in helps["synth"]
    assert "{" + ",".join(OBJECTIVES) + "}" in helps["tune"]


def test_default_model_uri_is_the_data_sets_own_champion():
    """commands.report imports default_model_uri from commands.score; the registry name is
    tracking.registered_name, as train registers under: one champion per data set, so that
    scoring event folder crm/ never picks up the synthetic demo's model."""
    from leadscore.commands.score import default_model_uri
    from leadscore.specs import load_spec

    spec = load_spec("x_education", data_root=Path("."))
    assert default_model_uri(spec, None) == "models:/leadscore-x_education@champion"
    assert default_model_uri(None, "data/synthetic") == "models:/leadscore-synthetic@champion"
    assert default_model_uri(None, "exports/crm/") == "models:/leadscore-crm@champion"
    assert default_model_uri(None, "crm.duckdb") == "models:/leadscore-crm@champion"


def test_reports_say_what_the_bootstrap_drew():
    from leadscore.metrics import resampled_units

    assert resampled_units({"n_groups": 1848}, 1848) == "the 1,848 test leads"
    assert resampled_units({}, 1848) == "the test fold"  # a run logged before groups
    grouped = resampled_units({"n_groups": 826}, 1401)
    assert grouped == "the 826 test leads, each drawn with all its rows (1,401 rows in all)"


def test_training_without_an_outcomes_table_names_the_missing_table(tmp_path, event_frames):
    """Not the cold-start line ("until more outcomes close"): the table itself is missing."""
    write_tables({k: v for k, v in event_frames.items() if k != "outcomes"}, tmp_path / "crm")
    done = run_cli("train", "--data", str(tmp_path / "crm"), "--no-mlflow", cwd=tmp_path)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert "has no outcomes table, so no lead has an outcome to learn from" in last
    assert "until more outcomes close" not in done.stderr
    assert not (tmp_path / "models").exists()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    "command", [["tune", "--spec", "x"], ["score", "--data", "d"], ["synth", "--leads", "9"]]
)
def test_bars_are_drawn_on_a_terminal_only_and_never_when_quiet(command, monkeypatch):
    from leadscore.cli import parse_args

    command = [*command, "--out", "o"] if command[0] == "synth" else command
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert parse_args(command).no_progress is False
    assert parse_args([*command, "-q"]).no_progress is True
    assert parse_args(["-q", *command]).no_progress is True
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a log file, a CI log
    assert parse_args(command).no_progress is True


def test_main_run_in_process_leaves_logging_as_it_found_it(tmp_path: Path) -> None:
    """A notebook runs ``main(["validate", ...])`` in its kernel: the command's log handler
    and its quieting of MLflow and SHAP must not outlive the command."""
    import logging

    root = logging.getLogger()
    saved = root.handlers[:]  # pytest's capture handlers would make basicConfig a no-op
    for handler in saved:
        root.removeHandler(handler)
    mlflow_logger = logging.getLogger("mlflow")
    levels = (root.level, mlflow_logger.level)
    try:
        out = tmp_path / "crm"
        assert main(["synth", "--leads", "300", "--out", str(out), "--no-progress"]) == 0
        assert main(["validate", "--data", str(out), "-q"]) in (0, 1)
        assert root.handlers == []
        assert (root.level, mlflow_logger.level) == levels
    finally:
        for handler in saved:
            root.addHandler(handler)


def test_train_names_the_order_column_and_says_when_nothing_was_calibrated():
    """ "calibration fold from 631431, test fold from 641584" read like dates with no column
    named; "calibrated on 1,109 with identity" read as a method applied."""
    from types import SimpleNamespace

    from leadscore.commands import train

    folds = {"boundaries": {"calibrate": "631431", "test": "641584"}}
    result = SimpleNamespace(model=SimpleNamespace(metadata={"data_form": "flat", "folds": folds}))
    named = train._boundaries(result, {"order_by": "Lead Number"})
    assert named == {"calibrate": "Lead Number 631431", "test": "Lead Number 641584"}
    words = train._calibration_words({"calibration": "identity", "n_calibrate": 1109}, "leads")
    assert words == (
        "not calibrated (identity: the booster's own probabilities, kept on the 1,109 "
        "calibration leads)"
    )
    sigmoid = train._calibration_words({"calibration": "sigmoid", "n_calibrate": 1109}, "leads")
    assert sigmoid == "calibrated on 1,109 with sigmoid"


def _interrupted_query(args: object) -> int:
    """A command whose DuckDB query is stopped as Ctrl-C stops it: DuckDB's interrupt, from
    another thread while the query runs, raises DuckDB's own error, not KeyboardInterrupt."""
    import threading

    import duckdb

    con = duckdb.connect()
    timer = threading.Timer(0.3, con.interrupt)
    timer.start()
    try:
        con.execute("SELECT count(*) FROM range(100000000000) a WHERE a.range % 7 = 3").fetchall()
    finally:
        timer.cancel()
        con.close()
    return 0


def _raising(error: BaseException):
    def command(args: object) -> int:
        raise error

    return command


@pytest.mark.parametrize(
    "command",
    [_interrupted_query, _raising(RuntimeError("Query interrupted"))],
    ids=["duckdb-interrupt", "runtime-error"],
)
def test_ctrl_c_during_a_duckdb_query_is_the_interrupted_line(monkeypatch, capsys, command):
    """Ctrl-C while DuckDB ran a query ended in ``RuntimeError: Query interrupted`` (or
    DuckDB's InterruptException), a traceback with exit 1, where a Ctrl-C elsewhere prints one
    line and exits 130."""
    import argparse

    import leadscore.cli as cli

    args = argparse.Namespace(command="features", func=command, verbose=0, quiet=True)
    monkeypatch.setattr(cli, "parse_args", lambda argv=None: args)
    assert main(["features"]) == 130
    assert capsys.readouterr().err.strip() == "leadscore features: interrupted"


def test_another_runtime_error_keeps_its_traceback(monkeypatch):
    """Only DuckDB's interruption is read as Ctrl-C: a bug still shows where it happened."""
    import argparse

    import leadscore.cli as cli

    args = argparse.Namespace(
        command="features", func=_raising(RuntimeError("boom")), verbose=0, quiet=True
    )
    monkeypatch.setattr(cli, "parse_args", lambda argv=None: args)
    with pytest.raises(RuntimeError, match="boom"):
        main(["features"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["train", "--data", "crm", "--promote", "--no-mlflow"],
            "leadscore train: error: --promote makes the new model version the champion in "
            "MLflow's registry, and --no-mlflow registers no version",
        ),
        (
            ["score", "--data", "crm", "--no-reasons", "--top", "5"],
            "leadscore score: error: --top 5 sets how many reasons each lead gets, and "
            "--no-reasons gives none",
        ),
    ],
)
def test_contradictory_flags_are_refused_before_any_work(capsys, tmp_path, argv, message):
    """``train --promote --no-mlflow`` had nothing to promote and ``score --no-reasons --top
    5`` no reasons to count: both flags were taken, one of them ignored without a word."""
    assert main([*argv[:2], str(tmp_path / "missing"), *argv[3:]]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and len(err.strip().splitlines()) == 1, err
