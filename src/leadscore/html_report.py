"""One self-contained HTML page per trained model, for marketing ops and data scientists.

:func:`build_model_report` reads a training run back from MLflow (the metrics, the stage
table, the spec, the warnings and the model itself) and writes one HTML file that opens
anywhere, offline: figures are embedded as base64 PNG, the CSS is inline, and nothing links
outside the page. :func:`write_model_report` writes it and logs it to the run as
``report.html``.

Where the figures come from
---------------------------
The curves need the test fold: labels, probabilities before and after calibration, the
baselines' probabilities and the features. When the run holds :data:`TEST_FOLD_ARTIFACT`
(written by :func:`test_fold_frame`), every figure is drawn afresh from it with
:mod:`leadscore.plots` (the SHAP summary included), and the channel table
is computed on it. Without it, the charts that training logged under ``plots/`` (drawn by the
same functions at training time) are embedded as they are, and SHAP and the fit/engagement
view fall back to the few leads of the model's input example, with a visible note saying so.

The page carries a tiny inline script that marks every image with ``data-rendered`` (its
natural width) once the browser has decoded it, so a headless browser's DOM dump shows
whether each figure rendered.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from matplotlib.figure import Figure

from leadscore import plots
from leadscore.errors import DataError, ModelError
from leadscore.explain import mean_abs_contribution
from leadscore.io import (
    check_folder_takes_files,
    check_output_path,
    sqlite_file,
    write_text_atomically,
)
from leadscore.metrics import (
    chance_draws,
    decile_table,
    ece_reading,
    resampled_units,
    signed_difference,
)
from leadscore.model import LeadScoringModel
from leadscore.reports import (
    channel_candidates,
    channel_column,
    channel_report,
    channel_total,
)

logger = logging.getLogger(__name__)

__all__ = [
    "REPORT_ARTIFACT",
    "TEST_FOLD_ARTIFACT",
    "build_model_report",
    "check_report_path",
    "test_fold_frame",
    "write_model_report",
]

#: Artifact name of the report inside the run.
REPORT_ARTIFACT = "report.html"
#: Optional artifact with the test fold (see :func:`test_fold_frame`).
TEST_FOLD_ARTIFACT = "test_fold.parquet"
_FEATURE_PREFIX = "feature:"
_BASELINE_PREFIX = "baseline:"
_LOGGED_PLOTS = {
    "roc": "roc.png",
    "precision_recall": "precision_recall.png",
    "reliability": "reliability.png",
    "cumulative_gains": "cumulative_gains.png",
    "stages": "stages.png",
}
_METRIC_ROWS = (
    ("roc_auc", "ROC-AUC", "higher is better; 0.5 is random order", 3),
    ("pr_auc", "PR-AUC", "higher is better; the base rate is random order", 3),
    ("brier", "Brier score", "lower is better", 4),
    ("ece", "ECE (10 bins)", "lower is better: predicted vs. observed rates", 4),
    ("log_loss", "Log loss", "lower is better", 4),
    (
        "lift_top_decile",
        "Lift, top 10 %",
        "how many times the average rate the top 10 % convert",
        2,
    ),
    (
        "capture_top_decile",
        "Wins in top 10 %",
        "share of all wins among the top 10 % of {unit}",
        1,
    ),
)
#: Metrics that are shares, shown as percentages (the headline says "44 %", so must the
#: table); the scores (ROC-AUC, Brier, ECE, log loss) stay decimals.
_PERCENT_METRICS = frozenset({"capture_top_decile"})
_STAGES = ("lead", "mql", "sql")


# --------------------------------------------------------------------------- the test fold


def test_fold_frame(result: Any) -> pd.DataFrame:
    """The test fold of a :class:`~leadscore.training.TrainingResult` as one table.

    Columns: ``lead_id``, ``y``, ``p_raw``, ``p_cal``, ``stage``, ``baseline:<name>`` per
    baseline and ``feature:<name>`` per model input, rows in the fold's order. Logged to a
    run as :data:`TEST_FOLD_ARTIFACT` (Parquet keeps the categories), it lets the report draw
    every chart and the SHAP summary on the same leads the metrics were measured on.
    """
    y = np.asarray(result.y)
    frame = pd.DataFrame(
        {
            "lead_id": pd.array(np.asarray(result.lead_id).astype(str), dtype="str"),
            "y": y.astype("int8"),
            "p_raw": np.asarray(result.p_raw, dtype="float64"),
            "p_cal": np.asarray(result.p_cal, dtype="float64"),
            "stage": pd.array(np.asarray(result.stages).astype(str), dtype="str"),
        }
    )
    for name, proba in (result.baselines or {}).items():
        frame[f"{_BASELINE_PREFIX}{name}"] = np.asarray(proba, dtype="float64")
    features = result.X_test.reset_index(drop=True).add_prefix(_FEATURE_PREFIX)
    return pd.concat([frame, features], axis=1)


@dataclass(frozen=True)
class _TestFold:
    y: np.ndarray
    p_raw: np.ndarray
    p_cal: np.ndarray
    stages: np.ndarray
    baselines: dict[str, np.ndarray]
    X: pd.DataFrame
    lead_id: np.ndarray

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> _TestFold:
        return cls(
            y=frame["y"].to_numpy(dtype="int64"),
            p_raw=frame["p_raw"].to_numpy(dtype="float64"),
            p_cal=frame["p_cal"].to_numpy(dtype="float64"),
            stages=frame["stage"].astype(str).to_numpy(),
            baselines={
                c[len(_BASELINE_PREFIX) :]: frame[c].to_numpy(dtype="float64")
                for c in frame.columns
                if c.startswith(_BASELINE_PREFIX)
            },
            X=frame[[c for c in frame.columns if c.startswith(_FEATURE_PREFIX)]].rename(
                columns=lambda c: c[len(_FEATURE_PREFIX) :]
            ),
            lead_id=frame["lead_id"].astype(str).to_numpy(),
        )


# --------------------------------------------------------------------------- reading a run


@dataclass
class _Run:
    run_id: str
    tags: dict[str, str]
    params: dict[str, str]
    start_time: pd.Timestamp | None
    metrics: dict[str, Any]
    stages: pd.DataFrame | None
    spec: dict[str, Any] | None
    config: dict[str, Any] | None
    warnings: list[str]
    plots: dict[str, bytes]
    model: LeadScoringModel
    input_example: pd.DataFrame | None
    test_fold: _TestFold | None
    notes: list[str] = field(default_factory=list)


def _read_run(run_id: str, tracking_uri: str | None) -> _Run:
    """Everything the report needs from one run; :class:`ModelError` when there is no run."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from leadscore import tracking

    uri = tracking.resolve_tracking_uri(tracking_uri)
    db = sqlite_file(uri)
    if db is not None and not db.is_file():
        raise ModelError(
            f"no MLflow store at {db} (tracking URI {uri}) to read run {run_id!r} from",
            "Point --tracking-uri or MLFLOW_TRACKING_URI at the store that holds the run.",
        )
    with (
        tracking.quiet_mlflow(),
        tracking.using_tracking_uri(uri),
        tempfile.TemporaryDirectory() as tmp,
    ):
        client = MlflowClient(tracking_uri=uri)
        try:
            run = client.get_run(run_id)
        except MlflowException as err:
            raise ModelError(
                f"no run {run_id!r} in {uri} ({tracking._mlflow_reason(err)})",
                "Give the id of a run logged by `leadscore train` (`mlflow ui` lists them).",
            ) from None
        folder = Path(tmp)
        try:
            local = Path(client.download_artifacts(run_id, "", str(folder / "run")))
        except (MlflowException, OSError) as err:
            raise ModelError(
                f"cannot fetch the artifacts of run {run_id} ({tracking._mlflow_reason(err)})",
                "Check that the run's artifact store is reachable from here.",
            ) from None
        try:
            model_dir = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=f"runs:/{run_id}/{tracking.MODEL_ARTIFACT_PATH}",
                    dst_path=str(folder / "model"),
                    tracking_uri=uri,
                )
            )
        except (MlflowException, OSError) as err:
            raise ModelError(
                f"run {run_id} holds no leadscore model ({tracking._mlflow_reason(err)})",
                "Report on a run logged by `leadscore train`.",
            ) from None
        model = tracking._load_folder(model_dir, f"runs:/{run_id}/model")
        return _Run(
            run_id=run_id,
            tags=dict(run.data.tags),
            params=dict(run.data.params),
            start_time=pd.Timestamp(run.info.start_time, unit="ms")
            if run.info.start_time
            else None,
            metrics=_read_json(local / "metrics.json") or dict(model.metadata.get("metrics") or {}),
            stages=pd.read_csv(local / "stages.csv") if (local / "stages.csv").is_file() else None,
            spec=_read_yaml(local / "spec.yaml"),
            config=_read_json(local / "config.json"),
            warnings=_read_lines(local / "warnings.txt")
            or list(model.metadata.get("warnings") or []),
            plots={
                key: (local / "plots" / name).read_bytes()
                for key, name in _LOGGED_PLOTS.items()
                if (local / "plots" / name).is_file()
            },
            model=model,
            input_example=_input_example(model_dir, model),
            test_fold=_TestFold.from_frame(pd.read_parquet(local / TEST_FOLD_ARTIFACT))
            if (local / TEST_FOLD_ARTIFACT).is_file()
            else None,
        )


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _read_yaml(path: Path) -> dict[str, Any] | None:
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else None


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _input_example(model_dir: Path, model: LeadScoringModel) -> pd.DataFrame | None:
    """The few test leads logged with the model (MLflow's input example), typed for the model."""
    from mlflow.models import Model

    try:
        example = Model.load(str(model_dir)).load_input_example(str(model_dir))
    except Exception as err:
        logger.warning("cannot read the model's input example: %s", err)
        return None
    if example is None:
        return None
    frame = pd.DataFrame(example)
    return model.prepare(frame.reindex(columns=model.feature_names))


# --------------------------------------------------------------------------- figures


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    # "tight" keeps labels that a chart draws past its own canvas (SHAP's bar titles)
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _display_name(name: str) -> str:
    return name.replace("_", " ").capitalize()


# --------------------------------------------------------------------------- HTML pieces


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, digits: int = 3) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(number):
        return "–"
    return f"{number:,.{digits}f}"


def _pct(value: Any, digits: int = 1) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "–"
    return f"{100 * number:.{digits}f} %" if math.isfinite(number) else "–"


def _count(value: Any) -> str:
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "–"


def _img(png: bytes, name: str, alt: str, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{_esc(alt)}" '
        f'data-figure="{_esc(name)}"><figcaption>{caption}</figcaption></figure>'
    )


def _nowrap(text: str) -> str:
    """``text`` kept on one line: a narrow column must not break "16.0 %" after the number."""
    return f'<span class="nowrap">{text}</span>'


def _note(text: str, kind: str = "note") -> str:
    return f'<p class="{kind}">{text}</p>'


def _table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    cls: str = "",
    *,
    footer: Sequence[str] | None = None,
) -> str:
    """An HTML table; ``footer`` is a row under the body (a total), set apart."""
    head = "".join(f"<th>{h}</th>" for h in header)
    head = f"<thead><tr>{head}</tr></thead>" if any(header) else ""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    foot = ""
    if footer is not None:
        foot = "<tfoot><tr>" + "".join(f"<td>{c}</td>" for c in footer) + "</tr></tfoot>"
    return f'<table class="{cls}">{head}<tbody>{body}</tbody>{foot}</table>'


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
  margin:0;color:#212121;background:#fafafa;line-height:1.5}
main{max-width:1100px;margin:0 auto;padding:24px 32px 64px;background:#fff}
header{border-bottom:3px solid #1565c0;margin-bottom:16px;padding-bottom:8px}
h1{font-size:1.7em;margin:0 0 4px}h2{font-size:1.3em;margin-top:36px;color:#0d47a1;
  border-bottom:1px solid #e0e0e0;padding-bottom:4px}
.meta{color:#616161;font-size:.9em}
.summary{background:#e3f2fd;border-left:4px solid #1565c0;padding:10px 16px}
.note{background:#f5f5f5;border-left:4px solid #9e9e9e;padding:8px 14px;font-size:.95em}
.warn{background:#fff3e0;border-left:4px solid #ef6c00;padding:8px 14px}
.alert{background:#ffebee;border-left:4px solid #c62828;padding:8px 14px;font-weight:600}
table{border-collapse:collapse;margin:8px 0 16px;font-size:.92em}
th,td{border-bottom:1px solid #e0e0e0;padding:5px 12px;text-align:right;vertical-align:top}
th{background:#f5f5f5}th:first-child,td:first-child{text-align:left}
table.text td,table.text th{text-align:left}
td.best{font-weight:700;color:#1b5e20}
tfoot td{font-weight:700;border-top:2px solid #9e9e9e}
figure{margin:12px 0 24px}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#424242;font-size:.9em;max-width:900px}
ul.warnings li{margin-bottom:4px}
nav a{margin-right:14px;font-size:.9em}
.nowrap{white-space:nowrap}
"""

_SCRIPT = """
(function(){
  function mark(img){img.setAttribute('data-rendered', String(img.naturalWidth));}
  function markAll(){document.querySelectorAll('img').forEach(function(img){
    if(img.complete){mark(img);}else{img.addEventListener('load',function(){mark(img);});
      img.addEventListener('error',function(){img.setAttribute('data-rendered','0');});}
  });}
  markAll();window.addEventListener('load',markAll);
})();
"""


# --------------------------------------------------------------------------- sections


def _whole_number(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _test_counts(run: _Run) -> tuple[int | None, int | None]:
    """(examples, leads) of the run's test fold; leads ``None`` where the run does not tell.

    Event data has one example per lead and as-of moment, so its test fold holds more
    examples than leads; a flat table has one per lead. The leads are the metrics'
    ``n_test_leads``, else the leads the bootstrap drew (``uncertainty.n_groups``), else the
    distinct leads of the logged test fold, else the examples of a run one per lead.
    """
    m = run.metrics
    examples = _whole_number(m.get("n_test"))
    leads = _whole_number(m.get("n_test_leads"))
    if leads is None:
        leads = _whole_number((m.get("uncertainty") or {}).get("n_groups"))
    fold = getattr(run, "test_fold", None)
    if leads is None and fold is not None and len(fold.lead_id):
        leads = len(pd.unique(fold.lead_id))
    model = getattr(run, "model", None)
    meta = getattr(model, "metadata", None) or {}
    history = meta.get("history") or {}
    one_per_lead = meta.get("data_form") == "flat" or (
        history.get("examples") is not None and history.get("examples") == history.get("leads")
    )
    if leads is None and one_per_lead:
        leads = examples
    return examples, leads


def _test_unit(run: _Run) -> str:
    """What the test fold's rows are: ``leads`` (one example per lead) or ``examples``."""
    examples, leads = _test_counts(run)
    return "leads" if examples is not None and leads == examples else "examples"


def _test_size(run: _Run) -> str:
    """The test fold's size in words: ``1,052 leads``, ``2,712 examples of 1,348 leads``, or
    ``2,712 examples`` where the leads are not known."""
    examples, leads = _test_counts(run)
    if leads is None:
        return f"{_count(examples)} examples"
    if leads == examples:
        return f"{_count(examples)} leads"
    return f"{_count(examples)} examples of {_count(leads)} leads"


def _pair_shares(y: np.ndarray, p: np.ndarray) -> tuple[float, float] | None:
    """Of all (won, lost) pairs of ``y``, the share where the won one scores strictly higher
    in ``p`` and the share where the two score the same; ``None`` without both outcomes.

    ROC-AUC is the first plus half the second: on olist 0.664 + 0.062 / 2 = 0.696, so "a won
    lead above a lost one 70 % of the time" overstated the strict order by 4 points, and a
    model that scores every lead the same (all pairs tied) read as "50 % of the time".
    """
    y = np.asarray(y).astype(bool)
    p = np.asarray(p, dtype="float64")
    won, lost = p[y], np.sort(p[~y])
    pairs = float(len(won)) * float(len(lost))
    if not pairs:
        return None
    below = np.searchsorted(lost, won, side="left").sum()
    level = np.searchsorted(lost, won, side="right").sum() - below
    return float(below) / pairs, float(level) / pairs


def _row_noun(run: _Run) -> str:
    """What one row of the test fold is, in the singular: ``lead``, or ``example`` on event
    data (a lead at one as-of date), where the metrics count examples."""
    return "example" if _event_data(run) else "lead"


def _random_order(values: Any) -> bool:
    """Whether a ROC-AUC interval ``[low, high]`` holds 0.5: no better than random order."""
    try:
        low, high = (float(v) for v in values)
    except (TypeError, ValueError):
        return False
    return low <= 0.5 <= high


def _ranking_sentence(run: _Run) -> str:
    """The headline's first sentence: how often the model orders a won row above a lost one.

    With the test fold at hand, the strict share and the tied share of won/lost pairs
    (:func:`_pair_shares`); without it, the ROC-AUC in words that say ties count as half.
    A model whose interval holds 0.5 is said to be no better than random order.
    """
    m = run.metrics
    auc = (m.get("model") or {}).get("roc_auc")
    row = _row_noun(run)
    fold = getattr(run, "test_fold", None)
    shares = _pair_shares(fold.y, fold.p_cal) if fold is not None else None
    start = f"On the test fold ({_test_size(run)}) the model"
    if shares is not None and shares[1] >= 1:
        text = (
            f"{start} gives every won {row} the same score as every lost one, so it does not "
            f"rank them at all (ROC-AUC {_num(auc)})."
        )
    elif shares is not None:
        above, tied = shares
        ties = f", the same score in {_pct(tied, 0)}" if tied >= 0.005 else ""
        text = (
            f"{start} scores the won {row} above the lost one in {_pct(above, 0)} of won/lost "
            f"pairs{ties} (ROC-AUC {_num(auc)}, which counts a tie as half)."
        )
    else:
        text = (
            f"{start} scores the won {row} above the lost one in {_pct(auc, 0)} of won/lost "
            f"pairs, ties counted as half (ROC-AUC {_num(auc)})."
        )
    uncertainty = m.get("uncertainty") or {}
    interval = ((uncertainty.get("intervals") or {}).get("model") or {}).get("roc_auc")
    if interval is not None and _random_order(interval):
        low, high = (float(v) for v in interval)
        level = f"{float(uncertainty.get('level') or 0.95):.0%}"
        text += (
            f" That is no better than random order: its {level} interval, {_num(low)} to "
            f"{_num(high)}, holds 0.500."
        )
    return text


def _summary(run: _Run) -> str:
    m = run.metrics
    model = m.get("model") or {}
    baselines = m.get("baselines") or {}
    best_name, best_auc = None, -math.inf
    for name, values in baselines.items():
        auc = float(values.get("roc_auc") or float("nan"))
        if math.isfinite(auc) and auc > best_auc:
            best_name, best_auc = name, auc
    parts = [_ranking_sentence(run)]
    if best_name is not None:
        parts.append(_baseline_verdict(m, best_name, best_auc))
    rows = "examples" if _event_data(run) else "leads"
    parts.append(
        f"Calling the top 10 % of {rows} by score reaches "
        f"{_pct(model.get('capture_top_decile'), 0)} of all wins, "
        f"{_num(model.get('lift_top_decile'), 1)} times the average conversion rate."
    )
    calibration = _calibration_sentence(m, getattr(run, "test_fold", None), rows)
    if calibration:
        parts.append(calibration)
    return f'<p class="summary">{" ".join(parts)}</p>'


def _top_group(fold: _TestFold | None, rows: str) -> tuple[str, str] | None:
    """The test fold's highest-scored tenth (the reliability diagram's top point, the
    ``rows`` sales would call first) in words: its size and mean probability, and the rate
    at which it converted; ``None`` without a test fold of at least ten rows."""
    if fold is None or len(fold.y) < 10:
        return None
    mean_p, rate, counts = plots.equal_count_bins(fold.y, fold.p_cal, 10)
    group = f"the highest-scored tenth of the test {rows} ({_count(counts[-1])})"
    return f"{group}, given {_pct(mean_p[-1])} on average,", _pct(rate[-1])


def _calibration_sentence(
    m: Mapping[str, Any], fold: _TestFold | None = None, rows: str = "leads"
) -> str | None:
    """The headline's sentence on whether a probability means what it says, read as
    ``leadscore train`` reads it (:func:`~leadscore.metrics.ece_reading`): a marketer takes
    "30 %" for 30 wins in 100, and the terminal's verdict had stayed off the page.

    The example is a real group of the test fold (:func:`_top_group`), not a fixed "of leads
    scored 30 %", which olist (no test lead above 20 %) never scored; without the fold the
    sentence gives the figures alone. "Mean what they say" only where the ECE is within
    what a perfectly calibrated model shows by chance.
    """
    ece = (m.get("model") or {}).get("ece")
    upper = ((m.get("uncertainty") or {}).get("ece_by_chance") or {}).get("upper")
    reading = ece_reading(ece, upper)
    if reading is None:
        return None
    figures = f"ECE {_num(ece)}; a perfectly calibrated model shows up to {_num(upper)} here"
    group = _top_group(fold, rows)
    if reading == "within":
        example = f": {group[0]} converted at {group[1]}" if group else ""
        return (
            f"Its probabilities mean what they say on the test fold{example} ({figures} by chance)."
        )
    example = f" ({group[0]} converted at {group[1]})" if group else ""
    if reading == "just above":
        return (
            "Its probabilities are about right on the test fold, perhaps slightly off "
            f"({figures} by chance); the reliability diagram shows where{example}."
        )
    return (
        "Its probabilities are off on the test fold by more than chance "
        f"({figures}): read them as a ranking rather than as exact odds, and the "
        f"reliability diagram for where they are too high or too low{example}."
    )


def _baseline_verdict(m: Mapping[str, Any], name: str, base_auc: float) -> str:
    """The headline's sentence on the best baseline, read off the interval of the ROC-AUC gain.

    The page says that a gain whose interval holds 0 is a tie, so the headline must not call
    a point-estimate gain of +0.013 (-0.044 to +0.060) a win: "beats" needs the whole
    interval above 0, "falls behind" the whole interval below, anything else "ties with".
    Runs without intervals (``evaluation.resamples: 0``) get the point-estimate comparison,
    labelled as such.
    """
    value = (m.get("model") or {}).get("roc_auc")
    model_auc = float(value) if value is not None else math.nan
    baseline = f"the best simple baseline, {_esc(_display_name(name).lower())}"
    uncertainty = m.get("uncertainty") or {}
    base_interval = ((uncertainty.get("intervals") or {}).get(name) or {}).get("roc_auc")
    if _random_order(base_interval):
        baseline += ", itself no better than random order"
    interval = (uncertainty.get("roc_auc_gain") or {}).get(name)
    bounds = [float(b) for b in interval] if interval is not None else []
    if len(bounds) != 2 or not all(math.isfinite(b) for b in bounds):
        verdict = "beats" if model_auc > base_auc else "does not beat"
        return (
            f"It {verdict} {baseline} (ROC-AUC {_num(base_auc)}), on the point estimates "
            "alone: this run has no interval to tell a real gain from luck."
        )
    low, high = bounds
    level = f"{float(uncertainty.get('level') or 0.95):.0%}"
    gain = (
        f"ROC-AUC gain {signed_difference(model_auc - base_auc)}, {level} interval "
        f"{signed_difference(low)} to {signed_difference(high)}"
    )
    if low > 0:
        return f"It beats {baseline} (ROC-AUC {_num(base_auc)}; {gain})."
    if high < 0:
        return f"It falls behind {baseline} (ROC-AUC {_num(base_auc)}; {gain})."
    return (
        f"It ties with {baseline} (ROC-AUC {_num(base_auc)}; {gain}, which holds 0, so the "
        "difference may be luck)."
    )


def _event_data(run: _Run) -> bool:
    """Whether the run's rows are examples (a lead at each as-of date) rather than leads.

    The model records its data form (``events`` or ``flat``); a run without it is taken to
    be event data when its test fold holds more examples than leads.
    """
    meta = getattr(getattr(run, "model", None), "metadata", None) or {}
    if meta.get("data_form"):
        return meta["data_form"] == "events"
    return _test_unit(run) == "examples"


def _test_rows(run: _Run) -> str:
    """What the test fold's rows are, for a chart's note: ``leads``, ``examples of 3,963
    leads``, or ``examples`` where the leads are not known."""
    if _test_unit(run) == "leads":
        return "leads"
    _, leads = _test_counts(run)
    return f"examples of {_count(leads)} leads" if leads is not None else "examples"


def _fold_starts(run: _Run) -> dict[str, str]:
    """First order value (date) of the valid, calibrate and test folds, as training logged
    them: the run's ``folds.<name>_from`` parameters, else the model's fold boundaries."""
    params = getattr(run, "params", None) or {}
    meta = getattr(getattr(run, "model", None), "metadata", None) or {}
    logged = (meta.get("folds") or {}).get("boundaries") or {}
    starts = {}
    for name in ("valid", "calibrate", "test"):
        value = params.get(f"folds.{name}_from") or logged.get(name)
        if value not in (None, ""):
            starts[name] = str(value)
    return starts


def _fold_span(run: _Run) -> tuple[str, str] | None:
    """First and last order value of the examples, as training logged them (``folds.first``
    and ``folds.last``, else the model's ``folds.span``); ``None`` for runs logged before."""
    params = getattr(run, "params", None) or {}
    meta = getattr(getattr(run, "model", None), "metadata", None) or {}
    logged = (meta.get("folds") or {}).get("span") or []
    first = params.get("folds.first") or (logged[0] if len(logged) == 2 else None)
    last = params.get("folds.last") or (logged[1] if len(logged) == 2 else None)
    return (str(first), str(last)) if first and last else None


def _period_rows(run: _Run, kind: str) -> list[tuple[str, str]]:
    """Training, calibration and test periods in calendar dates, for time-ordered folds.

    Training logs where each fold starts and, since it logs them, where the examples start
    and end (:func:`_fold_span`); a run logged before says "before" for the first period
    and "from" for the last. The model learns from the fit and valid folds when it is
    refitted on both (``n_train`` is their sum), else from the fit fold alone, the valid
    fold only deciding when boosting stops.
    """
    starts = _fold_starts(run)
    span = _fold_span(run)
    if kind not in ("time", "time_ordered", "temporal") or not {"calibrate", "test"} <= set(starts):
        return []
    meta = getattr(getattr(run, "model", None), "metadata", None) or {}
    sizes = (meta.get("folds") or {}).get("sizes") or {}
    n_train = _whole_number(run.metrics.get("n_train"))
    fit_only = (
        "valid" in starts
        and n_train is not None
        and _whole_number(sizes.get("fit")) == n_train
        and _whole_number(sizes.get("valid"))
    )
    dates = "as-of dates" if _event_data(run) else "dates"
    cal, test = _esc(starts["calibrate"]), _esc(starts["test"])
    since = f" from {_esc(span[0])}," if span else ""
    if fit_only:
        valid = _esc(starts["valid"])
        training = f"{dates}{since} before {valid} (boosting stopped on {valid} up to {cal})"
    else:
        training = f"{dates}{since} before {cal}"
    return [
        ("Training period", training),
        ("Calibration period", f"{dates} from {cal}, before {test}"),
        ("Test period", f"{dates} from {test}" + (f" to {_esc(span[1])}" if span else "")),
    ]


def _data_section(run: _Run) -> str:
    meta = run.model.metadata
    m = run.metrics
    history = meta.get("history") or {}
    folds = meta.get("folds") or {}
    sizes = folds.get("sizes") or {}
    kind = str(m.get("fold_kind") or folds.get("kind") or run.tags.get("fold_kind", "unknown"))
    if _event_data(run):
        # a lead is an example at each as-of date; its win counts only within the window
        days = meta.get("horizon_days")
        window = f"{_count(days)} days" if days else "the window"
        counted = [
            ("Leads in the examples", _count(history.get("leads"))),
            (f"Leads won within {window} of an as-of date", _count(history.get("wins"))),
        ]
    else:
        counted = [
            ("Leads", _count(history.get("leads"))),
            ("Won leads", _count(history.get("wins"))),
        ]
    calibration = _calibration_name(run)
    if calibration == "identity":
        calibration = "none (identity): the model's own probabilities"
    rows = [
        ("Data set", _esc(run.tags.get("dataset") or meta.get("dataset") or "–")),
        ("Rows in the data set (all folds)", _count(history.get("examples"))),
        *counted,
        ("Fold kind", _esc(kind)),
        (
            "Fold sizes",
            _esc(", ".join(f"{k} {int(v):,}" for k, v in sizes.items()) or "–"),
        ),
        *_period_rows(run, kind),
        ("Test fold", _test_size(run)),
        ("Calibration", _esc(calibration or "–")),
    ]
    if meta.get("horizon_days"):
        rows.append(("Outcome window", f"{_count(meta.get('horizon_days'))} days"))
    if run.spec and run.spec.get("description"):
        rows.append(("Description", _esc(run.spec["description"])))
    out = ["<h2 id='data'>The data</h2>", _table(["", ""], rows, "text")]
    if kind == "random":
        out.append(
            _note(
                "Folds are RANDOM: the data has no time order, so the test leads are not "
                "newer than the training leads. Test numbers may be optimistic compared with "
                "scoring next month's leads.",
                "alert",
            )
        )
    elif kind in ("time", "time_ordered", "temporal"):
        out.append(
            _note("Folds are time-ordered: the model is tested on leads newer than any it saw.")
        )
    excluded = dict(meta.get("excluded") or (run.spec or {}).get("exclude") or {})
    if excluded:
        out.append("<h3>Columns left out of the model</h3>")
        out.append(
            _table(
                ["Column", "Why"],
                [(_esc(c), _esc(r)) for c, r in excluded.items()],
                "text",
            )
        )
    allowed = list((run.spec or {}).get("allow_leakage") or [])
    leakage = [w for w in run.warnings if "leak" in w.lower()]
    other = [w for w in run.warnings if w not in leakage]
    out.append("<h3>Leakage checks and warnings</h3>")
    if allowed:
        out.append(
            _note(
                "Allowed despite the leakage check (the spec says they are known at scoring "
                f"time): {_esc(', '.join(allowed))}.",
                "warn",
            )
        )
    if leakage:
        # name warnings (training notes that say "leak") do not stop training; the checks
        # that do found nothing, or training would have stopped
        items = "".join(f"<li>{_esc(w)}</li>" for w in leakage)
        out.append(f'<div class="warn"><ul class="warnings">{items}</ul></div>')
        out.append(
            _note(
                "Apart from these, no feature was flagged: none separates won from lost leads "
                "alone too well, and none is filled in for one outcome only."
            )
        )
    else:
        out.append(
            _note(
                "No feature was flagged as suspected leakage: none separates won from lost "
                "leads alone too well, and none is filled in for one outcome only."
            )
        )
    if other:
        items = "".join(f"<li>{_esc(w)}</li>" for w in other)
        out.append(f'<p>Notes from training:</p><ul class="warnings">{items}</ul>')
    return "\n".join(out)


def _calibrated(run: _Run) -> bool:
    """Whether training chose a calibrator (isotonic, sigmoid): the identity calibrator hands
    on the model's own probabilities, which the page must not call calibrated."""
    return _calibration_name(run) not in (None, "identity", "none")


def _calibration_name(run: _Run) -> str | None:
    """The calibrator training chose (``identity``, ``sigmoid``, ``isotonic``), if recorded."""
    tags = getattr(run, "tags", None) or {}
    name = run.metrics.get("calibration") or tags.get("calibration")
    return str(name) if name else None


def _metric_text(key: str, value: float, digits: int) -> str:
    return _pct(value, digits) if key in _PERCENT_METRICS else _num(value, digits)


def _metrics_section(run: _Run) -> str:
    m = run.metrics
    columns: dict[str, Mapping[str, Any]] = {}
    if m.get("model"):
        columns["Model"] = m["model"]
    # the identity calibrator hands on the raw probabilities: the column would repeat Model's
    uncalibrated_is_model = _calibration_name(run) == "identity"
    if m.get("model_uncalibrated") and not uncalibrated_is_model:
        columns["Model, uncalibrated"] = m["model_uncalibrated"]
    for name, values in (m.get("baselines") or {}).items():
        columns[_display_name(name)] = values or {}
    if not columns:
        return "<h2 id='metrics'>Model against baselines</h2>" + _note(
            "This run logged no test metrics."
        )
    uncertainty = m.get("uncertainty") or {}
    intervals = (uncertainty.get("intervals") or {}).get("model") or {}
    lower_is_better = {"brier", "ece", "log_loss"}
    rows = []
    unit = _test_unit(run)
    for key, label, help_text, digits in _METRIC_ROWS:
        values = [float(v[key]) if v.get(key) is not None else math.nan for v in columns.values()]
        finite = [v for v in values if math.isfinite(v)]
        best = (min(finite) if key in lower_is_better else max(finite)) if finite else None
        cells = [f'{label}<br><span class="meta">{help_text.format(unit=unit)}</span>']
        for i, v in enumerate(values):
            text = _metric_text(key, v, digits)
            if i == 0 and key in intervals and "Model" in columns:
                low, high = (_metric_text(key, float(b), digits) for b in intervals[key])
                text += f'<br><span class="meta">{low} to {high}</span>'
            cells.append(
                f'<span class="best">{text}</span>' if best is not None and v == best else text
            )
        rows.append(cells)
    table = _table(["Metric", *(_esc(c) for c in columns)], rows)
    table = table.replace('<td><span class="best">', '<td class="best"><span>')
    same = ""
    if uncalibrated_is_model and m.get("model_uncalibrated"):
        same = (
            " Calibration kept the model's own probabilities (identity: no calibration "
            "was applied), so the uncalibrated model is the same as the model and has no "
            "column of its own."
        )
    return (
        "<h2 id='metrics'>Model against baselines</h2>"
        f"<p>All numbers are on the test fold ({_test_size(run)}), which neither "
        "the model nor the baselines saw while learning. The best value of each row is in "
        "bold. The logistic regression and rule points are the simple alternatives a model "
        f"must beat to be worth running.{same}</p>" + table + _uncertainty_note(m, uncertainty)
    )


def _uncertainty_note(m: Mapping[str, Any], uncertainty: Mapping[str, Any]) -> str:
    """What the intervals under the model's numbers mean, the gain over each baseline with
    its interval, and the ECE a perfectly calibrated model would show by chance."""
    if not uncertainty.get("intervals"):
        return ""
    level = f"{float(uncertainty['level']):.0%}"
    model_auc = float((m.get("model") or {}).get("roc_auc", math.nan))
    gains = []
    for name, (low, high) in (uncertainty.get("roc_auc_gain") or {}).items():
        base = float(((m.get("baselines") or {}).get(name) or {}).get("roc_auc", math.nan))
        gains.append(
            f"{_esc(_display_name(name))} {signed_difference(model_auc - base)} "
            f"({signed_difference(float(low))} to {signed_difference(float(high))})"
        )
    chance = uncertainty.get("ece_by_chance") or {}
    text = (
        f"Under the model's numbers: the {level} interval from "
        f"{int(uncertainty['resamples'])} bootstrap resamples of "
        f"{resampled_units(uncertainty, m.get('n_test'))}."
    )
    if gains:
        text += f" ROC-AUC gain over {', '.join(gains)}; an interval that holds 0 is a tie."
    if chance:
        text += (
            " A perfectly calibrated model would show an ECE of "
            f"{float(chance['mean']):.3f} on these leads by chance alone ({level} of draws "
            f"below {float(chance['upper']):.3f}{chance_draws(chance, m.get('n_test'))})."
        )
    return f"<p class='meta'>{text}</p>"


def _curve_figures(run: _Run) -> dict[str, bytes]:
    """ROC, PR, reliability, gains and stage histogram: fresh from the test fold, else logged."""
    fold = run.test_fold
    if fold is None:
        return dict(run.plots)
    scores = {"Model": fold.p_cal}
    for name, proba in fold.baselines.items():
        scores[_display_name(name)] = proba
    thresholds = {
        k: float(v)
        for k, v in (run.metrics.get("thresholds") or {}).items()
        if v is not None and math.isfinite(float(v))
    }
    return {
        "roc": _png(plots.roc_figure(fold.y, scores)),
        "precision_recall": _png(plots.pr_figure(fold.y, scores)),
        "reliability": _png(
            plots.reliability_figure(fold.y, fold.p_raw, fold.p_cal, rows=_test_rows(run))
        ),
        "cumulative_gains": _png(plots.gains_figure(fold.y, scores, rows=_test_unit(run))),
        "stages": _png(
            plots.stage_histogram_figure(
                fold.p_cal,
                fold.stages,
                thresholds,
                rows=_test_unit(run),
                calibrated=_calibrated(run),
            )
        ),
    }


def _curves_section(run: _Run, figures: Mapping[str, bytes]) -> str:
    out = ["<h2 id='curves'>How well the score ranks leads</h2>"]
    if run.test_fold is None and figures:
        out.append(
            _note(
                "These charts are the ones drawn at training time on the test fold and "
                "logged with the run."
            )
        )
    specs = [
        (
            "roc",
            "ROC curve of the model and the baselines on the test fold",
            "<b>ROC curve.</b> Higher and further left is better: the share of won leads "
            "flagged (up) against the share of lost leads flagged with them (right).",
        ),
        (
            "precision_recall",
            "Precision-recall curve of the model and the baselines on the test fold",
            "<b>Precision-recall.</b> Working down the list from the top score: the share of "
            "flagged leads that convert (up) as more of all wins are reached (right).",
        ),
        (
            "reliability",
            "Reliability diagram: predicted probability against observed conversion rate",
            "<b>Reliability.</b> On the diagonal, a lead given 30 % converts 30 times in 100. "
            "The lower panel shows how the probabilities spread.",
        ),
        (
            "cumulative_gains",
            "Cumulative gains and lift of the model and the baselines",
            f"<b>Cumulative gains and lift.</b> Calling the top X % of {_test_unit(run)} "
            "reaches the share of wins on the upper curve; the lower one says how many times "
            f"the average conversion rate those {_test_unit(run)} convert at.",
        ),
    ]
    for name, alt, caption in specs:
        if name in figures:
            out.append(_img(figures[name], name, alt, caption))
        else:
            out.append(_note(f"The {_esc(name.replace('_', ' '))} chart is not in this run."))
    if run.test_fold is not None:
        out.append(_decile_section(run.test_fold, _test_unit(run)))
    return "\n".join(out)


def _decile_section(fold: _TestFold, unit: str) -> str:
    """The model's test fold in ten equal groups from the top score down: the numbers behind
    the gains chart, which a team plans its calls with (call the top two tenths, reach this
    share of the wins)."""
    table = decile_table(fold.y, fold.p_cal)
    rows = [
        (
            f"{int(r.decile)}",
            _nowrap(f"{_pct(r.lowest)} – {_pct(r.highest)}"),
            _count(r.leads),
            f"{r.wins:,.0f}" if float(r.wins).is_integer() else f"{r.wins:,.1f}",
            _pct(r.conversion_rate),
            _num(r.lift, 2),
            _pct(r.cumulative_share_of_wins, 0),
        )
        for r in table.itertuples()
    ]
    header = ["Tenth", "Probability", unit.capitalize(), "Won", "Convert", "Lift"]
    return (
        "<h3>The test fold by tenths of the score</h3>"
        + _table([*header, "Wins reached so far"], rows)
        + _note(
            f"Each tenth holds the same number of test {unit}, from the highest probability "
            "down; lift is its conversion rate over the average. Tied scores share their "
            "wins, so a count may be fractional."
        )
    )


def _stages_section(run: _Run, figures: Mapping[str, bytes]) -> str:
    m = run.metrics
    cuts = m.get("thresholds") or {}
    stages = m.get("stages") or {}
    if not stages and run.stages is not None and "stage" in run.stages.columns:
        stages = {r["stage"]: r for r in run.stages.to_dict("records")}
    out = ["<h2 id='stages'>The stage funnel</h2>"]
    unit = _test_unit(run)
    cut_text = []
    for stage in ("mql", "sql"):
        value = cuts.get(stage)
        if value is None or not math.isfinite(float(value)):
            cut_text.append(f"no lead reaches {stage.upper()}")
        else:
            cut_text.append(f"{stage.upper()} from a probability of {_pct(value)}")
    out.append(
        f"<p>Stage thresholds, set on the calibration fold: {'; '.join(cut_text)}. "
        "The first table shows the policy each cut-off was chosen by and what it achieved "
        "on the calibration fold (where it was set) and on the test fold (unseen), counting "
        f"the {unit} at that stage or above (an SQL is also past the MQL cut-off); the second "
        f"counts the test {unit} in each stage alone and how they turned out."
        f"{_per_period_note(run)}</p>"
    )
    policy_rows = _policy_rows(run)
    if policy_rows:
        out.append(
            _table(
                [
                    "Stage",
                    "Policy and target",
                    _nowrap("Cut-off"),
                    "At this stage or above, calibration fold",
                    "At this stage or above, test fold",
                ],
                policy_rows,
            )
        )
    rows = []
    for stage in _STAGES:
        s = stages.get(stage)
        if not s:
            continue
        rows.append(
            (
                stage.upper(),
                _count(s.get("count")),
                _pct(s.get("share")),
                _pct(s.get("conversion_rate")),
                _pct(s.get("share_of_wins")),
            )
        )
    if rows:
        out.append(
            _table(
                [
                    "Stage",
                    unit.capitalize(),
                    f"Share of {unit}",
                    "Conversion rate",
                    "Share of wins",
                ],
                rows,
            )
        )
    else:
        out.append(_note("This run logged no stage table."))
    if "stages" in figures:
        out.append(
            _img(
                figures["stages"],
                "stages",
                "Histogram of probabilities by stage with the MQL and SQL thresholds",
                f"<b>Where the cut-offs fall.</b> "
                f"{'Calibrated probability' if _calibrated(run) else 'Probability'} of the "
                f"test {unit}, one colour per stage; dashed lines are the thresholds.",
            )
        )
    return "\n".join(out)


def _per_period_note(run: _Run) -> str:
    """What a capacity policy's per-period figures count, where a stage has one: distinct
    leads (each counted once however many of its examples reach the stage) over the fold's
    calendar span, scaled for the leads the fold left out
    (:func:`leadscore.training.calibration_periods`)."""
    policy = getattr(getattr(getattr(run, "model", None), "stages", None), "policy_", None)
    if policy is None or not any(
        getattr(getattr(policy, s, None), "policy", None) == "capacity" for s in ("mql", "sql")
    ):
        return ""
    return (
        " A capacity policy's figure per period counts distinct leads that reach the stage "
        "(a lead counts once, however many of its examples do) per period of the fold's "
        "calendar span, scaled up for the leads the fold leaves out (purged between folds, "
        "or still open) so that it stands for all the leads scoring will see; it is not the "
        "count beside it divided by the periods."
    )


def _policy_text(stage: str, policy: Any) -> tuple[str, str]:
    """The stage's policy and target in words, and which achieved measure answers it."""
    rule = getattr(policy, stage)
    target = rule.target
    if rule.policy == "recall":
        return f"holds {_pct(target, 0)} of the wins (recall)", "recall"
    if rule.policy == "precision":
        return f"converts at {_pct(target, 0)} or more (precision)", "precision"
    if rule.policy == "capacity":
        return (
            f"at most {target:,g} leads per {policy.period_days:g} days (sales capacity)",
            "per_period",
        )
    if rule.policy == "probability":
        return f"a probability of {_pct(target)} or more (fixed)", "count"
    cost = policy.nurture_cost if stage == "mql" else policy.contact_cost
    name = "nurturing" if stage == "mql" else "a contact"
    return (
        f"p &times; deal value {policy.deal_value:,g} above the cost of {name} {cost:,g} "
        "(expected value)",
        "count",
    )


def _achieved_text(
    achieved: Mapping[str, Any] | None,
    measure: str,
    *,
    unit: str = "leads",
    period_days: float | None = None,
) -> str:
    """Leads (``unit``) at the stage or above, their conversion, share of wins and, for a
    capacity policy (``measure`` ``per_period``), how many distinct leads per period of
    ``period_days``; the policy's own measure in bold. Event data's examples are followed by
    their distinct leads where known ("812 examples of 540 leads"), since the per-period
    figure counts leads. Other policies get no per-period figure: it answered no target of
    theirs and read as one ("per 30 days" beside a recall). Each separator stays beside its
    text, inside the bold, so that no reading of the page (a text dump turns a closing tag
    into a space) sets a comma apart."""
    if not achieved or achieved.get("count") is None:
        return "–"
    count = f"{_count(achieved.get('count'))} {unit}"
    leads = _whole_number(achieved.get("leads"))
    if unit != "leads" and leads is not None and leads != _whole_number(achieved.get("count")):
        count += f" of {_count(leads)} leads"
    parts = {
        "count": count,
        "precision": f"{_pct(achieved.get('precision'))} convert",
        "recall": f"{_pct(achieved.get('recall'))} of the wins",
    }
    if measure == "per_period" and achieved.get("per_period") is not None:
        period = f"{period_days:g} days" if period_days else "period"
        parts["per_period"] = f"{_num(achieved['per_period'], 1)} distinct leads per {period}"
    last = list(parts)[-1]
    shown = [(k, v if k == last else f"{v},") for k, v in parts.items()]
    return " ".join(f"<b>{v}</b>" if k == measure else v for k, v in shown)


def _test_achieved(run: _Run, stage: str, cut: float) -> dict[str, Any] | None:
    """What the cut-off achieved on the test fold, counted as training counts it on the
    calibration fold: the leads at the stage or above (SQL counts towards MQL), their
    distinct leads, and the distinct leads per period that training measured on the test
    fold (``stage_policy.<stage>.test`` of a capacity policy, what ``train`` prints)."""
    check = (run.metrics.get("stage_policy") or {}).get(stage) or {}
    per_period = check.get("test") if check.get("measure") == "per_period" else None
    fold = run.test_fold
    if fold is not None:
        p, y = np.asarray(fold.p_cal, dtype="float64"), np.asarray(fold.y, dtype="float64")
        at = p >= cut
        wins = float(y.sum())
        return {
            "count": int(at.sum()),
            "leads": len(pd.unique(np.asarray(fold.lead_id)[at])),
            "precision": float(y[at].mean()) if at.any() else None,
            "recall": float(y[at].sum() / wins) if wins else None,
            "per_period": per_period,
        }
    table = run.metrics.get("stages") or {}
    above = [table.get(s) or {} for s in (("mql", "sql") if stage == "mql" else ("sql",))]
    try:
        count = sum(int(s["count"]) for s in above)
        won = sum(float(s["count"]) * float(s["conversion_rate"]) for s in above)
        recall = sum(float(s["share_of_wins"]) for s in above)
    except (KeyError, TypeError, ValueError):
        return None
    return {
        "count": count,
        "precision": won / count if count else None,
        "recall": recall,
        "per_period": per_period,
    }


def _policy_rows(run: _Run) -> list[tuple[str, ...]]:
    """Per stage: policy and target, cut-off, and what it achieved on both folds."""
    stages = run.model.stages
    policy = getattr(stages, "policy_", None)
    if policy is None:
        return []
    rows: list[tuple[str, ...]] = []
    unit = _test_unit(run)
    period_days = getattr(policy, "period_days", None)
    for stage in ("mql", "sql"):
        text, measure = _policy_text(stage, policy)
        cut = float(getattr(stages, f"{stage}_threshold_"))
        rows.append(
            (
                stage.upper(),
                text,
                _nowrap(_pct(cut) if math.isfinite(cut) else "nobody"),
                _achieved_text(
                    (stages.achieved_ or {}).get(stage),
                    measure,
                    unit=unit,
                    period_days=period_days,
                ),
                _achieved_text(
                    _test_achieved(run, stage, cut), measure, unit=unit, period_days=period_days
                ),
            )
        )
    return rows


@dataclass(frozen=True)
class _Explained:
    log_odds: pd.DataFrame
    values: pd.DataFrame  # the model columns the log-odds are of
    X: pd.DataFrame
    contributions: pd.DataFrame
    stages: np.ndarray
    won: np.ndarray | None
    source: str


def _explain_leads(run: _Run) -> _Explained | None:
    model = run.model
    if run.test_fold is not None and len(run.test_fold.X):
        X = model.prepare(run.test_fold.X.reindex(columns=model.feature_names))
        stages, won, source = run.test_fold.stages, run.test_fold.y, "test"
    elif run.input_example is not None and len(run.input_example):
        X = run.input_example
        stages = np.asarray(model.predict_stage(X, warn_unseen=False)).astype(str)
        won, source = None, "example"
    else:
        return None
    exp = model.explain(X)
    return _Explained(exp.log_odds, exp.values, X, exp.contributions, stages, won, source)


def _source_note(run: _Run, explained: _Explained) -> str:
    if explained.source == "test":
        return _note(f"Computed with the run's model on the test fold ({_test_size(run)}).")
    return _note(
        f"This run did not log its test fold, so this view uses only the "
        f"{len(explained.X)} leads of the input example logged with the model: read it as an "
        "illustration, not a summary.",
        "warn",
    )


def _explained_unit(run: _Run, explained: _Explained) -> str:
    """What the explained rows are: the test fold's unit, or for the input example
    ``examples`` on event data and ``leads`` on a flat table."""
    if explained.source == "test":
        return _test_unit(run)
    return "examples" if _event_data(run) else "leads"


def _shap_section(run: _Run, explained: _Explained | None) -> str:
    out = ["<h2 id='shap'>What drives the score (SHAP)</h2>"]
    if explained is None:
        out.append(_note("Skipped: the run holds neither its test fold nor an input example."))
        return "\n".join(out)
    out.append(_source_note(run, explained))
    unit = _explained_unit(run, explained)
    fig = plots.shap_summary_figure(explained.log_odds, explained.X, run.model.features, rows=unit)
    dot = "a lead" if unit == "leads" else "an example, a lead at one as-of date"
    out.append(
        _img(
            _png(fig),
            "shap_summary",
            "SHAP beeswarm and mean absolute SHAP bar chart of the model's features",
            f"<b>Left:</b> each dot is {dot}; right of zero the feature raised its score, left "
            "lowered it; red is a high value of the feature, blue a low one, grey a category or "
            "a missing value. <b>Right:</b> the average size of each feature's effect.",
        )
    )
    table = mean_abs_contribution(explained.contributions, run.model.features).head(10)
    rows = [
        (
            _esc(r.label),
            _esc(r.group or "–"),
            f"{100 * r.mean_abs_contribution:.1f} points",
        )
        for r in table.itertuples()
    ]
    out.append(
        "<p>The same in probability points: how far each field moves a lead's chance of "
        "converting, on average.</p>" + _table(["Field", "Group", "Average effect"], rows)
    )
    return "\n".join(out)


def _fit_engagement_section(run: _Run, explained: _Explained | None) -> str:
    out = ["<h2 id='fit'>Fit against engagement</h2>"]
    scorer = run.model.sub_scorer
    if explained is None or scorer is None:
        out.append(_note("Skipped: the model has no sub-scores or the run has no leads to show."))
        return "\n".join(out)
    scores = scorer.transform(explained.log_odds, explained.values)
    if scores["fit_score"].isna().all() or scores["engagement_score"].isna().all():
        out.append(
            _note("Skipped: the model has no fit features or no engagement features to score.")
        )
        return "\n".join(out)
    out.append(_source_note(run, explained))
    fig = plots.fit_engagement_figure(
        scores["fit_score"].to_numpy(dtype=float, na_value=np.nan),
        scores["engagement_score"].to_numpy(dtype=float, na_value=np.nan),
        explained.stages,
        won=explained.won,
        rows=_explained_unit(run, explained),
    )
    out.append(
        _img(
            _png(fig),
            "fit_engagement",
            "Scatter of fit score against engagement score, coloured by stage",
            "<b>Fit</b> scores what the lead told us (company, role, channel); "
            "<b>engagement</b> what the lead did. Both are percentiles of past leads: 80 "
            "means better than 80 % of them. Top right: good fits that are active.",
        )
    )
    return "\n".join(out)


def _channel_section(run: _Run) -> str:
    out = ["<h2 id='channels'>Channels</h2>"]
    fold = run.test_fold
    if fold is None:
        out.append(
            _note(
                "Skipped: the run did not log its test fold, so there are no leads to group "
                "by channel. <code>leadscore report channels</code> gives the table on scored "
                "leads."
            )
        )
        return "\n".join(out)
    column = channel_column(fold.X.columns)
    if column is None:
        tied = channel_candidates(fold.X.columns)
        if tied:
            which = ", ".join(_esc(c) for c in tied)
            out.append(
                _note(
                    f"Skipped: several columns read as the channel ({which}). "
                    "<code>leadscore report channels --by COLUMN</code> gives the table of the "
                    "one you pick."
                )
            )
        else:
            out.append(
                _note(
                    "Skipped: no feature reads as the channel (a name ending in source, channel "
                    "or origin, such as Lead Source)."
                )
            )
        return "\n".join(out)
    scored = pd.DataFrame(
        {
            "lead_id": np.arange(len(fold.y)).astype(str),
            "stage": fold.stages,
            "probability": fold.p_cal,
        }
    )
    attributes = pd.DataFrame(
        {"lead_id": scored["lead_id"], column: fold.X[column].astype("string")}
    )
    report = channel_report(scored, attributes, by=[column])
    channel = attributes[column].fillna("(none)").astype(str)
    won = pd.Series(fold.y, index=channel.to_numpy()).groupby(level=0).sum()
    report = report.sort_values("leads", ascending=False, kind="stable")
    unit = _test_unit(run)

    def cells(r: pd.Series, name: str, actual: int) -> tuple[str, ...]:
        return (
            name,
            _count(r["leads"]),
            _count(r["mqls"]),
            _count(r["sqls"]),
            _pct(r["mql_rate"]),
            _pct(r["sql_rate"]),
            _num(r["expected_wins"], 1),
            _count(actual),
        )

    rows = [cells(r, _esc(r[column]), won.get(str(r[column]), 0)) for _, r in report.iterrows()]
    total = channel_total(report, [column]).iloc[0]
    out.append(
        f"<p>Test {unit} by {_esc(column)}: MQLs count {unit} at MQL or SQL; expected wins "
        "is the sum of calibrated probabilities, to compare with the wins that happened.</p>"
    )
    out.append(
        _table(
            [
                _esc(column),
                unit.capitalize(),
                "MQLs",
                "SQLs",
                "MQL rate",
                "SQL rate",
                "Expected wins",
                "Actual wins",
            ],
            rows,
            footer=cells(total, "Total", int(np.sum(fold.y))),
        )
    )
    return "\n".join(out)


# --------------------------------------------------------------------------- the page


def build_model_report(run_id: str, *, tracking_uri: str | None = None) -> str:
    """The HTML report of training run ``run_id``, as one self-contained page.

    Parameters
    ----------
    run_id : an MLflow run logged by :func:`leadscore.tracking.log_training_run`.
    tracking_uri : the MLflow store; see :func:`leadscore.tracking.resolve_tracking_uri`.

    Returns
    -------
    str
        The HTML text: inline CSS, base64 PNG figures (each ``<img>`` with an ``alt`` and a
        ``data-figure`` name), no external URL.

    Raises
    ------
    ModelError
        When the store, the run or its model cannot be found.
    """
    run = _read_run(run_id, tracking_uri)
    figures = _curve_figures(run)
    explained = _explain_leads(run)
    dataset = run.tags.get("dataset") or run.model.metadata.get("dataset") or "leads"
    when = run.start_time.strftime("%Y-%m-%d %H:%M UTC") if run.start_time is not None else "–"
    facts = [f"run {_esc(run_id)}", f"trained {when}"]
    if run.tags.get("registered_model"):
        champion = " (champion)" if run.tags.get("champion") == "true" else ""
        facts.append(f"registered as {_esc(run.tags['registered_model'])}{champion}")
    if run.tags.get("git_commit"):
        facts.append(f"code {_esc(run.tags['git_commit'][:10])}")
    nav = "".join(
        f'<a href="#{a}">{t}</a>'
        for a, t in (
            ("data", "Data"),
            ("metrics", "Baselines"),
            ("curves", "Curves"),
            ("stages", "Stages"),
            ("shap", "Drivers"),
            ("fit", "Fit vs engagement"),
            ("channels", "Channels"),
        )
    )
    body = "\n".join(
        [
            f"<header><h1>Lead-scoring model: {_esc(dataset)}</h1>"
            f'<div class="meta">{" · ".join(facts)}</div><nav>{nav}</nav></header>',
            _summary(run),
            _data_section(run),
            _metrics_section(run),
            _curves_section(run, figures),
            _stages_section(run, figures),
            _shap_section(run, explained),
            _fit_engagement_section(run, explained),
            _channel_section(run),
        ]
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Lead-scoring model report: {_esc(dataset)}</title>"
        f"<style>{_CSS}</style></head>\n"
        f"<body><main>\n{body}\n</main><script>{_SCRIPT}</script></body></html>\n"
    )


def write_model_report(
    run_id: str,
    out: Path,
    *,
    tracking_uri: str | None = None,
    log_to_run: bool = True,
) -> Path:
    """Write the report of ``run_id`` to ``out`` and, by default, log it to the run.

    The output path is checked first (:func:`check_report_path`), since building the page
    takes seconds; the page is then built completely before anything is written, and written
    through a temporary file, so a run that cannot be read leaves no file behind. Logged as
    the run artifact :data:`REPORT_ARTIFACT`.
    """
    out = Path(out)
    check_report_path(out)
    text = build_model_report(run_id, tracking_uri=tracking_uri)
    write_text_atomically(out, text)
    if log_to_run:
        from mlflow import MlflowClient

        from leadscore import tracking

        uri = tracking.resolve_tracking_uri(tracking_uri)
        with tracking.quiet_mlflow(), tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / REPORT_ARTIFACT
            copy.write_text(text, encoding="utf-8")
            MlflowClient(tracking_uri=uri).log_artifact(run_id, str(copy))
    logger.info("wrote the report of run %s to %s", run_id, out)
    return out


#: Suffixes the model report is written under: it is HTML whatever the name says.
REPORT_SUFFIXES: tuple[str, ...] = (".html", ".htm")


def check_report_path(out: Path) -> None:
    """Refuse, before the report is built, an ``--out`` that cannot take an HTML file.

    The same checks :func:`leadscore.io.write_table` makes for a channel report: a known
    suffix (a ``.pdf`` would silently hold HTML), not a folder, and a folder that exists or
    can be created and takes a new file (tried with a temporary file, removed at once).

    Raises
    ------
    DataError
        Naming the path and what is wrong with it.
    """
    out = Path(out)
    check_output_path(out, "--out")
    if out.suffix.lower() not in REPORT_SUFFIXES:
        what = f"not {out.suffix!r}" if out.suffix else "and the name has no .html suffix"
        raise DataError(
            f"{out}: the model report is HTML, {what}",
            "Write to a .html file (a browser prints it to PDF).",
        )
    check_folder_takes_files(
        out, "Write into a folder that exists or can be created, and that you may write to."
    )
