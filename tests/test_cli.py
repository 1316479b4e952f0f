"""The command line as a user meets it: one-line errors, non-zero exits, nothing written."""

from __future__ import annotations

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
    flat_frame.to_csv(tmp_path / "leads.csv", index=False)
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


def test_write_table_is_atomic(tmp_path):
    from leadscore.io import write_table

    target = tmp_path / "out.parquet"
    write_table(pd.DataFrame({"a": [1]}), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet"]
