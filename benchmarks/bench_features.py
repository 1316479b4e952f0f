"""Build time and peak memory of point-in-time features at 100k and 1M synthetic leads.

Each size runs in its own subprocess so that its peak resident memory (which includes DuckDB's)
is measured alone; loading (read + validate) is timed apart from building the features. CPU
seconds (all threads) are printed beside wall time: on a shared machine they vary less.

    .venv/bin/python benchmarks/bench_features.py                      # 100k and 1M leads
    .venv/bin/python benchmarks/bench_features.py --sizes 100000 --data-dir /tmp/bench
    .venv/bin/python benchmarks/bench_features.py --training-dates 6   # also training examples

Synthetic data is generated with :func:`leadscore.synth.write_synthetic` into ``--data-dir``
(default: a temporary folder, removed at the end) and reused there when a folder of the same
size and seed already exists.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _generate(folder: Path, n_leads: int, seed: int) -> float:
    """Write the synthetic data set unless the same one is already there; seconds spent."""
    from leadscore.synth import SynthParams, read_manifest, write_synthetic

    try:
        params = read_manifest(folder)["params"]
        if params["n_leads"] == n_leads and params["seed"] == seed:
            return 0.0
    except Exception:
        pass
    started = time.perf_counter()
    write_synthetic(SynthParams(n_leads=n_leads, seed=seed), folder, progress=False)
    return time.perf_counter() - started


def child(folder: Path, training_dates: int, horizon_days: int) -> dict[str, object]:
    """Load, build features once as of the end of the data, and report (runs in a subprocess)."""
    from leadscore.features import build_features, build_training_examples, default_as_of_dates
    from leadscore.io import load_closed_loop

    started, cpu_started = time.perf_counter(), time.process_time()
    data = load_closed_loop(folder)
    loaded, cpu_loaded = time.perf_counter(), time.process_time()
    rss_loaded = _peak_rss_mib()
    table = build_features(data, data.observed_until)
    built, cpu_built = time.perf_counter(), time.process_time()
    report: dict[str, object] = {
        "leads": len(data.leads),
        "activities": len(data.activities),
        "features": len(table.features),
        "rows": len(table.frame),
        "load_s": round(loaded - started, 1),
        "build_s": round(built - loaded, 1),
        "load_cpu_s": round(cpu_loaded - cpu_started, 1),
        "build_cpu_s": round(cpu_built - cpu_loaded, 1),
        "peak_rss_after_load_mib": round(rss_loaded),
        "peak_rss_mib": round(_peak_rss_mib()),
    }
    if training_dates:
        dates = default_as_of_dates(data, horizon_days)[-training_dates:]
        del table
        started, cpu_started = time.perf_counter(), time.process_time()
        examples = build_training_examples(data, dates, horizon_days)
        report.update(
            training_dates=len(dates),
            training_rows=len(examples.y),
            training_s=round(time.perf_counter() - started, 1),
            training_cpu_s=round(time.process_time() - cpu_started, 1),
            peak_rss_with_training_mib=round(_peak_rss_mib()),
        )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[100_000, 1_000_000],
        help="numbers of leads (default: 100000 1000000)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where to keep the generated data (default: a temporary folder)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--training-dates",
        type=int,
        default=0,
        help="also build training examples at this many monthly as-of dates",
    )
    parser.add_argument("--horizon-days", type=int, default=60)
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--generate", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.generate is not None:
        print(_generate(args.generate, args.sizes[0], args.seed))
        return 0

    if args.child is not None:
        print(json.dumps(child(args.child, args.training_dates, args.horizon_days)))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-features-") as scratch:
        root = args.data_dir or Path(scratch)
        print(f"cpus={os.cpu_count()}  data in {root}")
        for n_leads in args.sizes:
            folder = root / f"synth_{n_leads}_{args.seed}"
            generated = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--generate",
                    str(folder),
                    "--sizes",
                    str(n_leads),
                    "--seed",
                    str(args.seed),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            gen_s = float(generated.stdout.strip().splitlines()[-1])
            result = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    str(folder),
                    "--training-dates",
                    str(args.training_dates),
                    "--horizon-days",
                    str(args.horizon_days),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            report = json.loads(result.stdout.strip().splitlines()[-1])
            line = (
                f"{report['leads']:>9,} leads {report['activities']:>11,} activities: "
                f"load {report['load_s']:>6.1f} s (cpu {report['load_cpu_s']:.1f} s)  "
                f"features {report['build_s']:>5.1f} s (cpu {report['build_cpu_s']:.1f} s)  "
                f"peak RSS {report['peak_rss_mib'] / 1024:5.1f} GiB "
                f"(after load {report['peak_rss_after_load_mib'] / 1024:4.1f} GiB)  "
                f"{report['features']} features"
            )
            if gen_s:
                line += f"  [generated in {gen_s:.0f} s]"
            print(line, flush=True)
            if args.training_dates:
                print(
                    f"{'':>9}  training examples: {report['training_rows']:,} rows at "
                    f"{report['training_dates']} as-of dates in {report['training_s']:.1f} s "
                    f"(cpu {report['training_cpu_s']:.1f} s), "
                    f"peak RSS {report['peak_rss_with_training_mib'] / 1024:.1f} GiB",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
