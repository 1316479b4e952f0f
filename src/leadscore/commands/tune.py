"""``leadscore tune``: search LightGBM parameters with Optuna, then train the tuned model."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from leadscore.cli import complete_later
from leadscore.commands.train import (
    METRIC_LABELS,
    _fmt,
    _log_to_mlflow,
    add_config_argument,
    add_mlflow_arguments,
    check_outputs,
    config_from_args,
    format_report,
    load_training_data_with_notes,
    save_model,
    write_json,
)
from leadscore.commands.validate import add_data_arguments

# Optuna, LightGBM and MLflow are imported by the handler: registering this command must stay
# cheap, since every command's parser is built on each call (see leadscore.cli).
if TYPE_CHECKING:
    from leadscore.tuning import TuneResult

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Tune the LightGBM parameters of the lead-scoring model with an Optuna study (TPE sampler,
median pruner), then train the final model with the best parameters and compare it on the
test fold with the model trained on the default parameters.

Each trial is fitted on the fit fold and early-stopped and scored on the valid fold (the same
time-ordered folds as `leadscore train`); the calibration and test folds are never seen by the
search. The study is stored (default: optuna.db beside the MLflow store) under the name
leadscore-<data set>, so running the command again adds --trials more trials to it; a stored
study is only continued with the config it was run with (the parameters fixed in
lightgbm.params, which are never searched, the folds and seeds). Unless
--no-mlflow, each trial is a nested MLflow run under one parent run, and the tuned model is
logged and registered like `leadscore train` does, and saved like it to
models/<data set>/ (or --model-out): that folder always holds the newest model.
"""


def _trials(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``tune`` subcommand."""
    parser = subparsers.add_parser(
        "tune",
        help="tune LightGBM parameters with Optuna and train the tuned model",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_data_arguments(parser)
    parser.add_argument(
        "--trials",
        type=_trials,
        default=30,
        metavar="N",
        help="trials to add to the study (default 30; 0 trains with the stored best trial)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=None,
        metavar="S",
        help="start no new trial after S seconds (default: no limit)",
    )
    objective = parser.add_argument(
        "--objective",
        default="log_loss",
        help="valid-fold metric to optimise (default log_loss, minimised; roc_auc and pr_auc "
        "are maximised)",
    )
    add_config_argument(parser)
    parser.add_argument(
        "--study-name",
        default=None,
        metavar="NAME",
        help="Optuna study name (default: leadscore-<data set name>)",
    )
    parser.add_argument(
        "--storage",
        default=None,
        metavar="URL",
        help="Optuna storage (default: sqlite:///optuna.db beside the MLflow SQLite store, "
        "else in the working directory)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the TPE sampler")
    parser.add_argument(
        "--allow-worse",
        action="store_true",
        help="keep a tuned model that does not beat the best baseline",
    )
    parser.add_argument(
        "--metrics-out",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the study summary and the tuned and default test metrics as JSON",
    )
    parser.add_argument(
        "--model-out",
        type=Path,
        default=None,
        metavar="DIR",
        help="model folder for the tuned model (default: models/<data set name>/, as train)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar over the trials"
    )
    add_mlflow_arguments(parser)
    parser.set_defaults(func=run)

    def complete() -> None:
        from leadscore.tuning import OBJECTIVES

        objective.choices = tuple(OBJECTIVES)

    complete_later(parser, complete)


def format_comparison(result: TuneResult) -> str:
    """The study line, the best parameters and the tuned-vs-default test metrics."""
    from leadscore.metrics import signed_difference
    from leadscore.tuning import COMPARED_METRICS

    s = result.summary
    lines = [
        f"Study {s.study_name}: {s.n_trials} trials ({s.new_trials} new in {s.seconds:.0f}s; "
        f"{s.n_complete} complete, {s.n_pruned} pruned, {s.n_failed} failed)",
        f"Best trial #{s.best_trial}: valid {s.objective} {s.best_value:.4f}"
        + (f" at {s.best_iteration} rounds" if s.best_iteration else ""),
        "  " + ", ".join(f"{k}={_param(v)}" for k, v in s.best_params.items()),
    ]
    if s.fixed_params:
        fixed = ", ".join(f"{k}={_param(v)}" for k, v in s.fixed_params.items())
        lines.append(f"  fixed by the config, not tuned: {fixed}")
    lines += [
        "",
        f"Test fold ({result.tuned.metrics['n_test']:,} examples), calibrated model:",
        f"{'':18}{'tuned':>10}{'default':>10}{'gain':>10}",
    ]
    for key in COMPARED_METRICS:
        tuned = result.tuned.metrics["model"][key]
        default = result.default.metrics["model"][key]
        gain = result.gain[key]
        lines.append(f"{METRIC_LABELS[key]:18}{_fmt(tuned):>10}{_fmt(default):>10}{gain:>+10.3f}")
    if result.roc_auc_gain_interval is not None:
        low, high = result.roc_auc_gain_interval
        verdict = "a tie" if low <= 0 <= high else "a real difference"
        lines.append(
            "ROC-AUC gain of tuning, paired bootstrap interval: "
            f"{signed_difference(low)} to {signed_difference(high)} "
            f"({verdict})"
        )
    return "\n".join(lines)


def _param(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_metrics(path: Path, result: TuneResult, run_id: str | None, parent: str | None) -> Path:
    """Write the ``--metrics-out`` JSON (non-finite numbers as ``null``)."""
    from leadscore.metrics import METRIC_KEYS

    data = {
        "study": result.summary.to_dict(),
        "tuned": {k: result.tuned.metrics["model"][k] for k in METRIC_KEYS},
        "default": {k: result.default.metrics["model"][k] for k in METRIC_KEYS},
        "gain": result.gain,
        "roc_auc_gain_interval": result.roc_auc_gain_interval,
        "tuned_metrics": result.tuned.metrics,
        "params": result.tuned.params,
        "run_id": run_id,
        "parent_run_id": parent,
    }
    return write_json(path, data)


def run(args: argparse.Namespace) -> int:
    from leadscore.tracking import mlflow_errors, resolve_tracking_uri
    from leadscore.training import check_config
    from leadscore.tuning import (
        MlflowTrialLogger,
        TrialLog,
        TuneSettings,
        check_study_to_reuse,
        default_storage,
        shown_url,
        study_config,
        study_name_for,
        tune,
    )

    config = config_from_args(args)
    check_outputs(args, config)
    tracking_uri = resolve_tracking_uri(config.mlflow.tracking_uri)
    storage = args.storage or default_storage(tracking_uri)
    settings = TuneSettings(
        trials=args.trials,
        timeout=args.timeout,
        objective=args.objective,
        study_name=args.study_name,
        storage=storage,
        seed=args.seed,
    )
    dataset, spec, notes = load_training_data_with_notes(args, config)
    # before a study or an MLflow run is opened: a config that train refuses (a LightGBM
    # parameter, a monotone pattern, a rule points feature) fails no trial and leaves no
    # study or failed run behind; neither does a refused study
    check_config(dataset, config)
    check_study_to_reuse(settings, dataset.name, storage, study_config(config, dataset))
    progress = not args.no_progress
    # without a bar (a log file, CI) a line every tenth of the trials says how far it got
    logged = [] if progress else [TrialLog(settings.trials, settings.objective)]

    run_id = parent_id = None
    if args.no_mlflow:
        result = tune(
            dataset, config, settings, callbacks=logged, show_progress_bar=progress, notes=notes
        )
    else:
        mlflow_log = MlflowTrialLogger(
            tracking_uri,
            config.mlflow.experiment,
            run_name=f"tune-{dataset.name}",
            tags={
                "dataset": dataset.name,
                "optuna.study": study_name_for(settings, dataset.name),
                "optuna.storage": shown_url(storage),
                "objective": settings.objective,
            },
            params={
                "trials": settings.trials,
                "timeout": settings.timeout,
                "objective": settings.objective,
                "seed": settings.seed,
            },
        )
        with mlflow_errors(tracking_uri), mlflow_log:
            parent_id = mlflow_log.parent_run_id_
            result = tune(
                dataset,
                config,
                settings,
                callbacks=[mlflow_log, *logged],
                show_progress_bar=progress,
                notes=notes,
            )
            config = config.with_overrides({"mlflow.tracking_uri": tracking_uri})
            run_id = _log_to_mlflow(result.tuned, dataset, spec, config)
            mlflow_log.log_summary(result, run_id)
    if args.metrics_out is not None:
        write_metrics(args.metrics_out, result, run_id, parent_id)

    print(format_comparison(result))
    print()
    print("Tuned model:")
    print(format_report(result.tuned))
    for note in result.tuned.warnings:
        print(f"note: {note}")
    model_dir = args.model_out or Path("models") / dataset.name
    save_model(result.tuned.model, model_dir)
    print(f"model saved to {model_dir} (the newest model)")
    if run_id:
        print(f"MLflow: tuning run {parent_id}, tuned model run {run_id}")
    print(f"study stored in {shown_url(storage)} as {result.summary.study_name}")
    if args.metrics_out is not None:
        print(f"metrics written to {args.metrics_out}")
    return 0
