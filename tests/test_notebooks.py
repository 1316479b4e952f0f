"""The notebooks: stripped in git, and they run end to end on small synthetic data.

Each notebook has a cell tagged ``parameters``; the test adds a cell after it with small
values (papermill's convention) and executes a copy with nbclient in the project's own
Python: the ``python3`` kernel spec runs ``python``, which jupyter_client replaces with the
interpreter running the test. The three run in order in one work folder, since 03 scores
with the champion that 02 registered. Notebook 02 runs with events settings unlike the defaults
and must build its examples from them, as ``leadscore train --data`` does. Notebook 03 must
explain the open leads it scored, not every lead created by then.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from leadscore.features import default_as_of_dates
from leadscore.io import load_closed_loop
from leadscore.sinks.tables import read_scored_leads

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ("01_explore_closed_loop", "02_train_and_compare", "03_explain_scores")
#: Unlike the defaults (90 / 30 / 90) and the values notebook 02 once hard-coded (90 / 30 / 60).
EVENTS = {"horizon_days": 60, "every_days": 21, "warmup_days": 45}
#: Appended to notebook 02: the settings its examples were built with, and those its run logged.
EXAMPLES_CHECK = """\
import json
print("examples: " + json.dumps({
    "horizon_days": examples.horizon_days,
    "as_of": sorted(str(d.date()) for d in pd.to_datetime(examples.order).unique()),
    "logged": {k: v for k, v in run.data.params.items() if k.startswith("config.events.")},
}))"""

#: Appended to notebook 03: the leads its SHAP view explains against those it scored.
SHAP_CHECK = """\
import json
print("shap: " + json.dumps({"explained": len(X), "scored": int(summary.rows)}))"""
#: Computation that belongs in ``leadscore``, not in a notebook that only calls and shows.
OWN_LOGIC = (".groupby(", ".merge(", ".agg(", ".unstack(", ".pivot", "plt.", ".scatter(")


def _path(name: str) -> Path:
    return NOTEBOOKS / f"{name}.ipynb"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_committed_without_outputs(name: str) -> None:
    nb = nbformat.read(_path(name), as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{name} has no code cells"
    for cell in code:
        assert cell.outputs == [], f"{name}: a cell has outputs; run scripts/strip_notebooks.py"
        assert cell.execution_count is None, f"{name}: a cell has an execution count"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is code[0], f"{name}: first code cell is not parameters"
    assert nb.metadata.kernelspec.name == "python3"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_holds_no_logic_of_its_own(name: str) -> None:
    nb = nbformat.read(_path(name), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            found = [x for x in OWN_LOGIC if x in cell.source]
            assert not found, f"{name}: computes {found} itself; call leadscore instead"


def test_notebook_03_builds_features_as_scoring_does() -> None:
    """``features=model.features``: the model's columns, as ``leadscore score`` builds them."""
    nb = nbformat.read(_path(NAMES[2]), as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    tree = ast.parse("\n".join(x for x in code.splitlines() if not x.startswith("%")))
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("event_feature_chunks", "build_features")
    ]
    assert calls
    for call in calls:
        given = {k.arg: ast.unparse(k.value) for k in call.keywords}
        assert given.get("features") == "model.features", ast.unparse(call)


def _strip_script() -> Any:
    spec = importlib.util.spec_from_file_location(
        "strip_notebooks", ROOT / "scripts" / "strip_notebooks.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_strip_script_restores_the_committed_form() -> None:
    strip = _strip_script().strip
    committed = nbformat.read(_path(NAMES[0]), as_version=4)
    assert not strip(committed)  # nothing to strip in the committed file
    ran = nbformat.read(_path(NAMES[0]), as_version=4)
    for i, cell in enumerate(c for c in ran.cells if c.cell_type == "code"):
        cell.execution_count = i + 1
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="x\n")]
        cell.metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00Z"}
    ran.metadata["widgets"] = {"state": {}}
    assert strip(ran)
    assert nbformat.writes(ran) == nbformat.writes(committed)


def _with_parameters(
    nb: nbformat.NotebookNode, values: dict[str, Any], check: str | None = None
) -> None:
    """Insert an ``injected-parameters`` cell after the ``parameters`` cell, and append the
    ``check`` cell, if any, and one that prints the interpreter."""
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    source = "\n".join(f"{key} = {value!r}" for key, value in values.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(at + 1, cell)
    if check is not None:
        nb.cells.append(nbformat.v4.new_code_cell(check))
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.executable)"))


def _outputs(nb: nbformat.NotebookNode, kind: str) -> list[Any]:
    return [
        out["data"][kind]
        for c in nb.cells
        if c.cell_type == "code"
        for out in c.outputs
        if kind in out.get("data", {})
    ]


def _stream(nb: nbformat.NotebookNode, name: str) -> str:
    return "".join(
        out.get("text", "")
        for c in nb.cells
        if c.cell_type == "code"
        for out in c.outputs
        if out.get("name") == name
    )


def _stdout(nb: nbformat.NotebookNode) -> str:
    return _stream(nb, "stdout")


def _stderr(nb: nbformat.NotebookNode) -> str:
    return _stream(nb, "stderr")


@pytest.mark.slow
def test_notebooks_run_on_small_synthetic_data(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the kernels inherit it
    work = tmp_path / "work"
    small = {"N_LEADS": 1500, "SEED": 3, "WORK_DIR": str(work)}
    extra = {
        "02_train_and_compare": {
            "CONFIG": {
                "cold_start": {"min_wins": 20, "min_leads": 200},
                "quality_gate": {"allow_worse": True},
                "events": EVENTS,
            }
        },
        "03_explain_scores": {"SHAP_LEADS": 300},
    }
    ran: dict[str, nbformat.NotebookNode] = {}
    for name in NAMES:
        nb = nbformat.read(_path(name), as_version=4)
        check = {"02_train_and_compare": EXAMPLES_CHECK, "03_explain_scores": SHAP_CHECK}.get(name)
        _with_parameters(nb, {**small, **extra.get(name, {})}, check)
        client = NotebookClient(
            nb,
            timeout=300,
            kernel_name="python3",
            resources={"metadata": {"path": str(tmp_path)}},
        )
        client.execute()  # raises CellExecutionError, with the traceback, if a cell fails
        nbformat.write(nb, tmp_path / f"{name}.ipynb")  # left for a look when a check fails
        ran[name] = nb
        assert not [
            out
            for c in nb.cells
            if c.cell_type == "code"
            for out in c.outputs
            if out["output_type"] == "error"
        ]
        assert _stdout(nb).rstrip().splitlines()[-1] == sys.executable
        assert "IProgress" not in _stderr(nb)  # no TqdmWarning about ipywidgets

    explore, trained, explained = (ran[n] for n in NAMES)
    # what `leadscore validate` prints: leads, activities, closed and won, features by group
    assert re.search(r"[\d,]+ leads, .*[\d,]+ closed \([\d,]+ won\)", _stdout(explore))
    assert "fit features (" in _stdout(explore)
    assert "suspected leakage:" in _stdout(explore)
    assert re.search(r"win rate of the closed leads: \d+\.\d%", _stdout(explore))
    assert len(_outputs(explore, "image/png")) == 2  # win rate by source and by campaign
    assert any("deal_amount" in html for html in _outputs(explore, "text/html"))

    assert len(_outputs(trained, "image/png")) >= 2  # reliability, gains
    store = work / "mlflow.db"
    assert store.is_file() and (work / "mlruns").is_dir()
    assert any("leadscore-crm v1" in html for html in _outputs(trained, "text/html"))
    html = "".join(_outputs(trained, "text/html"))
    assert "low (95% interval)" in html  # the ROC-AUC gain over each baseline
    assert "how it was decided" in html
    assert all(word in html for word in ("policy", "measure", "fitted"))  # the stage policy
    line = next(x for x in _stdout(trained).splitlines() if x.startswith("examples: "))
    built = json.loads(line.removeprefix("examples: "))
    expected = default_as_of_dates(load_closed_loop(work / "crm"), **EVENTS)
    assert built["as_of"] == [str(d.date()) for d in expected]  # spacing and warm-up
    assert built["horizon_days"] == EVENTS["horizon_days"]
    assert built["logged"] == {f"config.events.{k}": str(v) for k, v in EVENTS.items()}

    assert len(_outputs(explained, "image/png")) >= 2  # SHAP summary, fit vs engagement
    scored = read_scored_leads(str(work / "scores.duckdb"))
    out = _stdout(explained)
    assert "open leads scored as of" in out and "Reasons for:" in out
    line = next(x for x in out.splitlines() if x.startswith("shap: "))
    shap = json.loads(line.removeprefix("shap: "))
    assert 0 < shap["explained"] == min(300, shap["scored"])  # the open leads it scored
    assert len(scored) == shap["scored"] and scored["lead_id"].is_unique

    assert json.loads(nbformat.writes(explained))["cells"]  # the executed copy is valid JSON
