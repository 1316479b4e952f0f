"""Time the monitoring reports' own work: drift bucketing per chunk and the back-test per run.

``report drift`` buckets every open lead's inputs (50 numeric and 10 categorical here, as many
as the event model has) into the model's reference bins, chunk by chunk; ``report backtest``
labels every row of the scoring history and measures each run. Feature building and reading
the history are the scorer's and the sinks' costs, timed by their own benchmarks.

    .venv/bin/python benchmarks/bench_monitoring.py                  # 100k and 1M leads
    .venv/bin/python benchmarks/bench_monitoring.py --sizes 1m --runs 52
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from bench_synth import parse_size  # the benchmarks' folder is on sys.path when run
from leadscore.monitoring import DriftReference, backtest_runs, event_outcomes
from leadscore.schema import Feature

NUMERIC, CATEGORICAL = 50, 10


def leads(n: int, seed: int) -> tuple[pd.DataFrame, list[Feature], np.ndarray, np.ndarray]:
    """``n`` leads with model-typed inputs, their probability and stage."""
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {}
    features = []
    for i in range(NUMERIC):
        x = rng.poisson(1 + i % 7, n).astype("float64")
        x[rng.random(n) < 0.05] = np.nan
        columns[f"n{i}"] = x
        features.append(Feature(f"n{i}", "engagement", f"n{i}", "numeric"))
    for i in range(CATEGORICAL):
        columns[f"c{i}"] = pd.Categorical(rng.choice([f"v{k}" for k in range(30)], n))
        features.append(Feature(f"c{i}", "fit", f"c{i}", "categorical"))
    p = rng.beta(1, 8, n)
    stages = np.where(p > 0.3, "sql", np.where(p > 0.1, "mql", "lead"))
    return pd.DataFrame(columns), features, p, stages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100k,1m", help="comma-separated lead counts")
    parser.add_argument("--runs", type=int, default=20, help="scoring runs in the history")
    args = parser.parse_args(argv)

    reference_frame, features, p, stages = leads(20_000, seed=0)
    reference = DriftReference().fit(reference_frame, features, p, stages)
    print(f"{'leads':>10} {'drift s':>8} {'leads/s':>10} {'history rows':>13} {'backtest s':>11}")
    for n in (parse_size(s) for s in args.sizes.split(",") if s.strip()):
        frame, _, q, s = leads(n, seed=1)
        start = time.perf_counter()
        counts = reference.counts(frame, q, s)
        reference.compare(counts)
        drift = time.perf_counter() - start

        rng = np.random.default_rng(2)
        per_run = max(1, n // args.runs)
        as_of = pd.Timestamp("2026-01-01") + pd.to_timedelta(
            np.repeat(np.arange(args.runs) * 7, per_run), unit="D"
        )
        history = pd.DataFrame(
            {
                "lead_id": rng.integers(0, n, per_run * args.runs).astype(str),
                "as_of": as_of,
                "model_name": "leadscore",
                "model_version": "1",
                "probability": q[: per_run * args.runs],
                "stage": s[: per_run * args.runs],
            }
        )
        won = rng.random(n) < 0.1
        outcomes = pd.DataFrame(
            {
                "lead_id": np.arange(n).astype(str),
                "outcome": np.where(won, "won", "lost"),
                "closed_at": pd.Timestamp("2026-01-01")
                + pd.to_timedelta(rng.integers(1, 300, n), unit="D"),
            }
        )
        start = time.perf_counter()
        labelled = event_outcomes(history, outcomes, pd.Timestamp("2026-12-31"), 90)
        backtest_runs(labelled)
        backtest = time.perf_counter() - start
        print(f"{n:>10,} {drift:>8.2f} {n / drift:>10,.0f} {len(history):>13,} {backtest:>11.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
