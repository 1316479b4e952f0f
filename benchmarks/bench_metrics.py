"""Time the test-metric intervals of ``leadscore train``: bootstrap and ECE-by-chance per size.

Each training scores the model and two baselines on every resample of the test fold, so the
figure that matters is the time for three score sets. Compared with calling ``evaluate`` on
every drawn sample (measured on a few resamples and scaled up).

    .venv/bin/python benchmarks/bench_metrics.py                     # 2k, 50k and 500k leads
    .venv/bin/python benchmarks/bench_metrics.py --sizes 2k,1m --resamples 200
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench_synth import parse_size  # the benchmarks' folder is on sys.path when run
from leadscore.metrics import bootstrap_intervals, ece_by_chance, evaluate


def scores(n: int, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Labels and three score sets of ``n`` leads (a model and two noisier baselines)."""
    rng = np.random.default_rng(seed)
    p = rng.beta(0.8, 4.0, n)
    y = (rng.random(n) < p).astype("int64")
    sets = {"model": p}
    for name, noise in (("logistic_regression", 0.05), ("rule_points", 0.15)):
        sets[name] = np.clip(p + rng.normal(0, noise, n), 0, 1)
    return y, sets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2k,50k,500k", help="comma-separated lead counts")
    parser.add_argument("--resamples", type=int, default=200)
    args = parser.parse_args(argv)

    print(f"{'leads':>10} {'bootstrap s':>12} {'by chance s':>12} {'naive s (est.)':>15}")
    for n in (parse_size(s) for s in args.sizes.split(",") if s.strip()):
        y, sets = scores(n)
        start = time.perf_counter()
        bootstrap_intervals(y, sets, resamples=args.resamples)
        boot = time.perf_counter() - start
        start = time.perf_counter()
        ece_by_chance(sets["model"], resamples=args.resamples)
        chance = time.perf_counter() - start
        rng = np.random.default_rng(1)
        probe = 3
        start = time.perf_counter()
        for _ in range(probe):
            idx = rng.integers(0, n, n)
            for p in sets.values():
                evaluate(y[idx], p[idx])
        naive = (time.perf_counter() - start) / probe * args.resamples
        print(f"{n:>10,} {boot:>12.2f} {chance:>12.2f} {naive:>15.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
