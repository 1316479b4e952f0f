"""``leadscore train``: learn a calibrated lead-scoring model from closed-loop history."""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from leadscore.commands import optional_path
from leadscore.commands.validate import add_data_arguments
from leadscore.errors import DataError, UsageError

# The library is imported where it is used, not here: `leadscore --help` and the other commands
# build this parser too, and must not wait for scikit-learn, LightGBM and MLflow to load.
if TYPE_CHECKING:
    from leadscore.config import TrainConfig
    from leadscore.model import LeadScoringModel
    from leadscore.schema import LabelledDataset
    from leadscore.training import TrainingResult

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Train a calibrated LightGBM model on won and lost leads, with MQL/SQL thresholds, and compare
it with a logistic regression and rule points on the same time-ordered folds.

Folds, oldest to newest: fit | early-stopping valid | calibration | test. The model is saved as
a folder (LightGBM text booster + model.json, no pickle) and, unless --no-mlflow, logged to
MLflow with its metrics, plots and the model. Exits non-zero on bad input, with too little
history (cold start: use rule points), or when the model does not beat the best baseline's
test ROC-AUC (unless --allow-worse).
"""

METRIC_LABELS = {
    "roc_auc": "ROC-AUC",
    "pr_auc": "PR-AUC",
    "brier": "Brier score",
    "ece": "ECE (10 bins)",
    "log_loss": "log loss",
    "lift_top_decile": "lift, top 10%",
    "capture_top_decile": "share of wins, top 10%",
}
_LABEL_WIDTH = max(len(label) for label in METRIC_LABELS.values()) + 2


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand."""
    parser = subparsers.add_parser(
        "train",
        help="train, calibrate and benchmark a lead-scoring model",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_data_arguments(parser)
    add_config_argument(parser)
    parser.add_argument(
        "--allow-worse",
        action="store_true",
        help="keep a model that does not beat the best baseline",
    )
    parser.add_argument(
        "--promote",
        action="store_true",
        help="make this version the champion without the comparison (mlflow.champion: "
        "always), e.g. once a fix to how the data is read ties the old champion",
    )
    parser.add_argument(
        "--metrics-out",
        type=optional_path,
        default=None,
        metavar="FILE",
        help="write the test metrics as JSON",
    )
    parser.add_argument(
        "--model-out",
        type=optional_path,
        default=None,
        metavar="DIR",
        help="model folder (default: models/<data set name>/)",
    )
    add_mlflow_arguments(parser)
    parser.set_defaults(func=run)


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """``--config YAML``, shared by train and tune."""
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="YAML",
        help="training config (default: the built-in defaults, documented in configs/train.yaml)",
    )


def add_mlflow_arguments(parser: argparse.ArgumentParser) -> None:
    """``--no-mlflow``, ``--experiment`` and ``--tracking-uri``, shared by train and tune."""
    parser.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    parser.add_argument(
        "--experiment",
        default=None,
        metavar="NAME",
        help="MLflow experiment (default: mlflow.experiment of the config)",
    )
    parser.add_argument(
        "--tracking-uri",
        default=None,
        metavar="URI",
        help="MLflow tracking URI (default: mlflow.tracking_uri of the config, "
        "else $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )


def load_training_data(
    args: argparse.Namespace, config: TrainConfig
) -> tuple[LabelledDataset, dict[str, Any] | None]:
    """The labelled examples of ``--spec`` or ``--data``, and the spec as plain data."""
    dataset, spec, _ = load_training_data_with_notes(args, config)
    return dataset, spec


def load_training_data_with_notes(
    args: argparse.Namespace, config: TrainConfig
) -> tuple[LabelledDataset, dict[str, Any] | None, list[str]]:
    """:func:`load_training_data` and the notes its checks of the data leave for the run.

    Event data: lead columns that look like values taken at the export rather than at the
    as-of date (:func:`~leadscore.leakage.warn_snapshot_lead_columns`) are warned about here,
    where the activity log is at hand, and returned as a note that the run records.
    """
    if args.spec:
        from leadscore.datasets import load_dataset
        from leadscore.specs import load_spec

        spec = load_spec(args.spec, data_root=args.data_root)
        return load_dataset(spec, allow=config.leakage.allow), spec.to_dict(), []
    from leadscore.features import build_event_examples
    from leadscore.io import event_data_name, load_closed_loop
    from leadscore.leakage import warn_snapshot_lead_columns

    events = load_closed_loop(args.data)
    examples = build_event_examples(events, config.events, name=event_data_name(args.data))
    notes = warn_snapshot_lead_columns(examples, events, allow=config.leakage.allow)
    return examples, None, notes


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def format_report(result: TrainingResult, spec: dict[str, Any] | None = None) -> str:
    """The side-by-side metrics table and the stage table, as printed by the command."""
    from leadscore.metrics import (
        METRIC_KEYS,
        STAGES,
        chance_draws,
        resampled_units,
        signed_difference,
    )

    m = result.metrics
    uncertainty = m.get("uncertainty")
    columns: dict[str, dict[str, str]] = {"model": {k: _fmt(v) for k, v in m["model"].items()}}
    if uncertainty:
        level = f"{uncertainty['level']:.0%}"
        columns[f"{level} interval"] = {
            key: f"{_fmt(low)}-{_fmt(high)}"
            for key, (low, high) in uncertainty["intervals"]["model"].items()
        }
    columns["uncalibrated"] = {k: _fmt(v) for k, v in m["model_uncalibrated"].items()}
    for name, values in m["baselines"].items():
        columns[name.replace("_", " ")] = {k: _fmt(v) for k, v in values.items()}
    width = max(len(c) for c in columns) + 2
    meta = result.model.metadata or {}
    rows = "leads" if meta.get("data_form") == "flat" else "examples"
    lines = [
        f"Test fold ({m['n_test']:,} {rows}, {m['fold_kind']} folds; trained on "
        f"{m['n_train']:,}, {_calibration_words(m, rows)}):",
        f"{'':{_LABEL_WIDTH}}" + "".join(f"{c:>{width}}" for c in columns),
    ]
    for key in METRIC_KEYS:
        cells = "".join(f"{v[key]:>{width}}" for v in columns.values())
        lines.append(f"{METRIC_LABELS[key]:{_LABEL_WIDTH}}{cells}")
    if uncertainty:
        gains = [
            f"over {name.replace('_', ' ')} "
            f"{signed_difference(m['model']['roc_auc'] - base['roc_auc'])} "
            f"({signed_difference(low)} to {signed_difference(high)})"
            for name, base in m["baselines"].items()
            for low, high in [uncertainty["roc_auc_gain"][name]]
        ]
        chance = uncertainty["ece_by_chance"]
        lines += [
            f"ROC-AUC gain, {level} interval: {', '.join(gains)}",
            f"ECE of a perfectly calibrated model on these leads, by chance alone: "
            f"{_fmt(chance['mean'])} ({level} of draws below {_fmt(chance['upper'])}"
            f"{chance_draws(chance, m['n_test'])})",
            *_ece_verdict(m["model"]["ece"], chance, _boundaries(result, spec)),
            f"(intervals: {uncertainty['resamples']} bootstrap resamples of "
            f"{resampled_units(uncertainty, m['n_test'])})",
        ]
    cuts = m["thresholds"]
    lines += [
        "",
        f"Stages (MQL at p >= {_fmt(cuts['mql'])}, SQL at p >= {_fmt(cuts['sql'])}):",
        f"{'stage':8}{'count':>10}{'share':>10}{'converts':>10}{'of wins':>10}",
    ]
    for stage in STAGES:
        s = m["stages"][stage]
        lines.append(
            f"{stage:8}{s['count']:>10,}{_fmt(s['share'] * 100, 1) + '%':>10}"
            f"{_pct(s['conversion_rate']):>10}{_pct(s['share_of_wins']):>10}"
        )
    lines += _policy_lines(m.get("stage_policy") or {})
    return "\n".join(lines)


def _calibration_words(m: dict[str, Any], rows: str) -> str:
    """How the model was calibrated, in words: "calibrated on 1,109 with isotonic", or for
    the identity calibrator, which keeps the booster's own probabilities, "not calibrated"
    ("calibrated on 1,109 with identity" read as a method that was applied). Identity is
    chosen by config, by a calibration fold too small or of one outcome, or because neither
    method earned its place there: the training log says which."""
    if m.get("calibration") in (None, "identity", "none"):
        return (
            "not calibrated (identity: the booster's own probabilities, kept on the "
            f"{m['n_calibrate']:,} calibration {rows})"
        )
    return f"calibrated on {m['n_calibrate']:,} with {m['calibration']}"


def _boundaries(result: TrainingResult, spec: dict[str, Any] | None = None) -> dict[str, str]:
    """Where the calibration and test folds begin (time folds only), to name the periods:
    each value after the column it is of ("Lead Number 631431", which alone read like a
    date), the spec's ``order_by`` on a flat table; event data's folds start at an as-of
    date."""
    meta = result.model.metadata or {}
    folds = meta.get("folds") or {}
    column = (spec or {}).get("order_by")
    if column:
        where = str(column)
    elif meta.get("data_form") == "events":
        where = "as-of"
    else:
        return dict(folds.get("boundaries") or {})
    return {k: f"{where} {v}" for k, v in (folds.get("boundaries") or {}).items()}


def _ece_verdict(
    ece: float | None, chance: dict[str, Any], boundaries: dict[str, str]
) -> list[str]:
    """One line reading the test ECE against the chance band: the band alone left the user
    to compare two numbers. Within it (at most the ``upper`` quantile of what a perfectly
    calibrated model shows on these leads) is no evidence of miscalibration; just above it
    (within :data:`~leadscore.metrics.ECE_MARGIN` of the edge) weak evidence, worth
    watching; further above, the probabilities are off by more than sampling noise, and the
    line says what to do: the calibrator learned from too little (the calibration fold is the
    newest share of the history before the test fold, purged), or the win rate moved between
    the calibration and the test period, which more calibration data does not cure."""
    from leadscore.metrics import ece_reading

    upper = chance.get("upper")
    reading = ece_reading(ece, upper)
    if ece is None or upper is None or reading is None:
        return []
    digits = 3
    while digits < 6 and _fmt(ece, digits) == _fmt(upper, digits):
        digits += 1  # "0.011 > 0.011" says nothing
    shown, edge = _fmt(ece, digits), _fmt(upper, digits)
    if reading == "within":
        return [
            f"ECE verdict: within chance ({shown}, band up to {edge}): no evidence that the "
            "probabilities are off on the test fold"
        ]
    if reading == "just above":
        return [
            f"ECE verdict: just above the chance band ({shown} > {edge}, within a quarter of "
            "it): weak evidence that the probabilities are off; compare the reliability "
            "diagram, and the verdict of the next retrain"
        ]
    periods = ""
    if "calibrate" in boundaries and "test" in boundaries:
        periods = (
            f" (calibration fold from {boundaries['calibrate']}, test fold from "
            f"{boundaries['test']})"
        )
    return [
        f"ECE verdict: above the chance band ({shown} > {edge}): the probabilities are off by "
        "more than sampling noise; give the calibration fold more history "
        "(folds.calibration_size, or a longer extract), or check for drift between the "
        f"calibration and test periods{periods}"
    ]


def _policy_lines(checks: dict[str, Any]) -> list[str]:
    """Each stage's policy target against what it gave on the calibration fold, where the
    cut-off was set, and on the test fold, in the policy's own measure."""
    lines = []
    for stage, check in checks.items():
        measure = check.get("measure")
        if measure is None:
            continue

        def shown(value: float | None, measure: str = measure) -> str:
            if value is None:
                return "-"
            if measure == "value_per_contact":
                return f"{value:,.0f} per lead at the stage"
            return f"{value:,.1f}" if measure == "per_period" else _pct(value)

        if measure == "per_period":
            wanted = f"at most {check['target']:,g} leads per {check['period_days']:g} days"
        elif measure == "value_per_contact":
            wanted = "leads worth more than their contact (deal value x conversion - cost)"
        elif measure == "recall":
            wanted = f"{_pct(check['target'])} of the wins"
        else:
            wanted = f"{_pct(check['target'])} convert"
        line = (
            f"{stage.upper()} policy {check['policy']}, {wanted}: {shown(check['fitted'])} on "
            f"the calibration fold (where it was set), {shown(check['test'])} on the test fold"
        )
        if check.get("set_by_sql"):
            line += " (not this policy's figures: its cut-off is the SQL cut-off, see above)"
        lines.append(line)
    return lines


def _pct(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def write_metrics(path: Path, metrics: dict[str, Any], run_id: str | None) -> Path:
    """Write the ``--metrics-out`` JSON (non-finite numbers as ``null``)."""
    return write_json(path, {**metrics, "run_id": run_id})


def write_json(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as JSON, atomically (:func:`~leadscore.io.write_atomically`): a write
    that fails half-way (a full disk) leaves an older file as it was, not half a JSON document
    that a pipeline would then fail to read. An OS error is one line naming the file."""
    from leadscore.io import write_text_atomically
    from leadscore.model import to_jsonable

    text = json.dumps(to_jsonable(data), indent=2, allow_nan=False) + "\n"
    return write_text_atomically(path, text)


def check_outputs(args: argparse.Namespace, config: TrainConfig) -> None:
    """Every output of train and tune, checked before the (long) training."""
    from leadscore.io import check_output_path

    check_output_path(args.metrics_out, "--metrics-out")
    check_output_path(args.model_out, "--model-out", folder=True)
    if not args.no_mlflow:
        from leadscore.tracking import check_tracking_uri, resolve_tracking_uri

        check_tracking_uri(resolve_tracking_uri(config.mlflow.tracking_uri))


def save_model(model: LeadScoringModel, path: Path) -> Path:
    """Write ``model`` to ``path``; called once MLflow logging and metrics succeeded, so that
    a training whose logging fails leaves the model folder as it was.

    The model replaces an older one there all or nothing (:meth:`LeadScoringModel.save`): a
    save that fails or is killed leaves a folder that loads as the older model or the new one,
    never one's booster with the other's ``model.json``. Other files in the folder are left
    alone (``--model-out`` may name a folder that holds more).
    """
    try:
        return model.save(path)
    except OSError as err:
        raise DataError(
            f"cannot write the model folder {path}: {err.strerror or err}",
            "Give --model-out a folder in a writable place.",
        ) from err


def _log_to_mlflow(
    result: TrainingResult,
    dataset: LabelledDataset,
    spec: dict[str, Any] | None,
    config: TrainConfig,
) -> str:
    from leadscore.tracking import (
        dataset_fingerprint,
        log_training_run,
        mlflow_errors,
        resolve_tracking_uri,
    )

    with mlflow_errors(resolve_tracking_uri(config.mlflow.tracking_uri)):
        return log_training_run(
            result,
            dataset_name=dataset.name,
            spec=spec,
            config=config,
            data_hash=dataset_fingerprint(dataset),
            X_test=result.X_test,
        )


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The config file with the command line's overrides on top (shared with ``tune``)."""
    from leadscore.config import load_config

    overrides: dict[str, Any] = {}
    if args.allow_worse:
        overrides["quality_gate.allow_worse"] = True
    if getattr(args, "promote", False):  # train's flag; tune always compares
        overrides["mlflow.champion"] = "always"
    if args.experiment:
        overrides["mlflow.experiment"] = args.experiment
    if args.tracking_uri:
        overrides["mlflow.tracking_uri"] = args.tracking_uri
    return load_config(args.config, overrides)


def run(args: argparse.Namespace) -> int:
    from leadscore.training import train

    if args.promote and args.no_mlflow:
        # --promote names the new registry version champion; without MLflow there is no
        # version, and the flag would be dropped without a word
        raise UsageError(
            "--promote makes the new model version the champion in MLflow's registry, and "
            "--no-mlflow registers no version",
            "Leave out --promote, or --no-mlflow to register and promote the model.",
        )
    config = config_from_args(args)
    check_outputs(args, config)
    dataset, spec, notes = load_training_data_with_notes(args, config)
    result = train(dataset, config, notes=notes)
    model_dir = args.model_out or Path("models") / dataset.name
    run_id = None if args.no_mlflow else _log_to_mlflow(result, dataset, spec, config)
    if args.metrics_out is not None:
        write_metrics(args.metrics_out, result.metrics, run_id)
    save_model(result.model, model_dir)

    print(format_report(result, spec))
    for note in result.warnings:
        print(f"note: {note}")
    note = _champion_note(run_id, config, dataset.name)
    print(f"model saved to {model_dir} (the newest model){note}")
    if args.metrics_out is not None:
        print(f"metrics written to {args.metrics_out}")
    return 0


def _champion_note(run_id: str | None, config: TrainConfig, dataset_name: str) -> str:
    """What the MLflow registry made of the run, for the "model saved" line."""
    if run_id is None:
        return ""
    from leadscore.tracking import champion_decision, registered_name, resolve_tracking_uri

    name = registered_name(config.mlflow.registered_model, dataset_name)
    uri = resolve_tracking_uri(config.mlflow.tracking_uri)
    champion, comparison = champion_decision(run_id, uri)
    if champion is None:
        return f"; MLflow run {run_id}"
    if champion:
        return f"; MLflow run {run_id}, now the registry's champion"
    verdict = (
        "which was not compared with the registry's champion (see the warning above)"
        if comparison.startswith("not compared")
        else "which did not beat the registry's champion"
    )
    older = f"models:/{name}@champion still scores the older model"
    return f"; MLflow run {run_id}, {verdict} ({older})"
