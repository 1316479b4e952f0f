"""Time ``leadscore synth``: generation plus writing, rows per second and peak memory per size.

Each size runs in its own subprocess so that its peak RSS (``ru_maxrss``) is its own.

    .venv/bin/python benchmarks/bench_synth.py                    # 10k and 100k leads
    .venv/bin/python benchmarks/bench_synth.py --sizes 10k,100k,1m
    .venv/bin/python benchmarks/bench_synth.py --sizes 1m --format csv --keep data/bench
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def parse_size(text: str) -> int:
    """``10k`` -> 10000, ``1m`` -> 1000000, ``2500`` -> 2500."""
    text = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    number = text[:-1] if scale > 1 else text
    return int(float(number) * scale)


def run_one(n_leads: int, out: Path, fmt: str, seed: int) -> dict[str, float]:
    """Generate and write ``n_leads`` leads into ``out``; return the measurements."""
    from leadscore.synth import SynthParams, read_manifest, write_synthetic

    start = time.perf_counter()
    paths = write_synthetic(SynthParams(n_leads=n_leads, seed=seed), out, fmt=fmt, progress=False)
    seconds = time.perf_counter() - start
    counts = read_manifest(out)["counts"]
    rows = counts["leads"] + counts["activities"] + counts["closed"] + counts["leads"]
    return {
        "leads": counts["leads"],
        "activities": counts["activities"],
        "seconds": seconds,
        "leads_per_s": counts["leads"] / seconds,
        "rows_per_s": rows / seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "disk_mib": sum(p.stat().st_size for p in paths.values()) / 2**20,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10k,100k", help="comma-separated lead counts")
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="write into this folder (one subfolder per size) and keep it",
    )
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.one is not None:  # child process: one size, result as JSON on stdout
        print(json.dumps(run_one(args.one, args.out, args.format, args.seed)))
        return 0

    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    print(
        f"{'leads':>10} {'activities':>12} {'seconds':>8} {'leads/s':>9} {'rows/s':>10} "
        f"{'peak RSS MiB':>12} {'disk MiB':>9}"
    )
    with tempfile.TemporaryDirectory(prefix="bench_synth_") as tmp:
        root = args.keep or Path(tmp)
        for n in sizes:
            out = root / f"synth_{n}"
            result = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    str(n),
                    "--out",
                    str(out),
                    "--format",
                    args.format,
                    "--seed",
                    str(args.seed),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                print(result.stderr, file=sys.stderr)
                return result.returncode
            r = json.loads(result.stdout.strip().splitlines()[-1])
            print(
                f"{r['leads']:>10,} {r['activities']:>12,} {r['seconds']:>8.1f} "
                f"{r['leads_per_s']:>9,.0f} {r['rows_per_s']:>10,.0f} "
                f"{r['peak_rss_mib']:>12,.0f} {r['disk_mib']:>9,.1f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
