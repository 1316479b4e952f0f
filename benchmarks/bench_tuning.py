"""Time the trials of ``leadscore tune``: LightGBM threads and pruning reports, side by side.

The same trials (points drawn at random from the search space, seeded) are run under each
variant, interleaved trial by trial so that a machine busy with other work weighs on every
variant alike, each on its own SQLite study like the command's:

* ``lgb-threads``: LightGBM's default thread count (``num_threads`` 0, a thread per core) and
  a report every ``report_every`` steps, however few rounds apart (tune before the fix);
* ``lgb-threads+spaced``: the default thread count, reports spaced ``report_rounds`` apart;
* ``trial-threads``: :func:`leadscore.training.booster_threads` threads, reports on every step;
* ``tuned``: both, as ``leadscore tune`` runs trials now.

The pruner is the command's (median, judging from the 11th trial on): with up to 10 trials no
trial is pruned, and every variant must give each trial the same value (the boosters are
deterministic, reports only feed the pruner): the benchmark says so, or fails.

    .venv/bin/python benchmarks/bench_tuning.py --spec x_education --data-root /work/shared/data
    .venv/bin/python benchmarks/bench_tuning.py --spec path/to/spec.yaml --trials 20
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from pathlib import Path

import optuna


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="data set spec (a name or a YAML file)")
    parser.add_argument("--data-root", default=os.environ.get("LEADSCORE_DATA_ROOT"))
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from leadscore.config import TrainConfig
    from leadscore.datasets import load_dataset
    from leadscore.specs import load_spec
    from leadscore.tuning import (
        TuneSettings,
        make_objective,
        prepare_problem,
        quiet_optuna,
        suggest_params,
    )

    dataset = load_dataset(load_spec(args.spec, data_root=args.data_root))
    tuned = prepare_problem(dataset, TrainConfig())
    rows, features = len(tuned.folds.fit), tuned.matrix.shape[1]
    print(
        f"{dataset.name}: {rows:,} fit x {features} features, "
        f"{tuned.base_params['num_threads']} trial thread(s) of {os.cpu_count()} CPUs"
    )
    default_threads = {**tuned.base_params, "num_threads": 0}
    variants = {
        "lgb-threads": (default_threads, 1),
        "lgb-threads+spaced": (default_threads, TuneSettings().report_rounds),
        "trial-threads": (tuned.base_params, 1),
        "tuned": (tuned.base_params, TuneSettings().report_rounds),
    }
    with quiet_optuna():
        sampler = optuna.samplers.RandomSampler(seed=args.seed)
        draw = optuna.create_study(sampler=sampler)
        points = [suggest_params(draw.ask(), tuned.space) for _ in range(args.trials)]

    seconds: dict[str, list[float]] = {name: [] for name in variants}
    values: dict[str, list[float]] = {name: [] for name in variants}
    reports: dict[str, int] = dict.fromkeys(variants, 0)
    with tempfile.TemporaryDirectory() as tmp, quiet_optuna():
        studies = {}
        for name in variants:
            settings = TuneSettings()
            pruner = optuna.pruners.MedianPruner(
                n_startup_trials=settings.startup_trials, n_warmup_steps=settings.warmup_steps
            )
            storage = f"sqlite:///{Path(tmp) / f'{name}.db'}"
            studies[name] = optuna.create_study(storage=storage, pruner=pruner)
        for point in points:
            for name, (base, report_rounds) in variants.items():
                problem = dataclasses.replace(tuned, base_params=base)
                settings = TuneSettings(report_rounds=report_rounds)
                study = studies[name]
                study.enqueue_trial(point)
                started = time.perf_counter()
                study.optimize(make_objective(problem, settings), n_trials=1)
                seconds[name].append(time.perf_counter() - started)
                trial = study.trials[-1]
                values[name].append(trial.value if trial.value is not None else float("nan"))
                reports[name] += len(trial.intermediate_values)

    print(f"{'variant':20} {'total s':>8} {'median s':>9} {'max s':>7} {'reports':>8}")
    for name in variants:
        s = seconds[name]
        print(
            f"{name:20} {sum(s):>8.2f} {statistics.median(s):>9.2f} {max(s):>7.2f} "
            f"{reports[name]:>8}"
        )
    pruned = {name: sum(v != v for v in vals) for name, vals in values.items()}
    same = all(vals == values["lgb-threads"] for vals in values.values())
    print(f"pruned trials: {pruned}; trial values identical across variants: {same}")
    best = {name: min(v for v in vals if v == v) for name, vals in values.items()}
    print("best valid value per variant:", {k: round(v, 5) for k, v in best.items()})
    # past the pruner's start-up trials, reports spaced otherwise may prune otherwise
    return 0 if same or args.trials > TuneSettings().startup_trials else 1


if __name__ == "__main__":
    raise SystemExit(main())
