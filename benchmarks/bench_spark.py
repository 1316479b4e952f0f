"""Scoring on local Spark against the batch scorer, on the same inputs and models.

The inputs and models are bench_scoring.py's (cached under ``--work-dir``): a synthetic
event-form folder of N leads, and a flat Parquet table of M rows. Spark runs in local mode
with ``--cores`` cores and writes Parquet; the batch scorer runs in its own process
(bench_scoring.measure) and writes DuckDB. Spark's session start is reported apart.

Usage::

    python benchmarks/bench_spark.py --event-leads 100000 --flat-rows 1000000
    python benchmarks/bench_spark.py --flat-rows 200000 --reasons --no-batch

On one machine Spark buys nothing but the way to a cluster: the figures say what its
overhead costs, so that the move is made for scale and not for speed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from bench_scoring import (
    AS_OF,
    ensure_current,
    ensure_event_data,
    ensure_event_model,
    ensure_flat,
    measure,
    report_run,
)
from leadscore.scoring import load_scoring_model
from leadscore.spark import local_spark_session, score_events_spark, score_flat_spark
from leadscore.specs import load_spec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def timed_write(label: str, score: Callable[[], DataFrame], out: Path) -> dict[str, object]:
    """Build the scoring (its checks on the driver included), write it to Parquet at ``out``,
    and report rows per second."""
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    score().write.parquet(str(out))
    seconds = time.perf_counter() - started
    rows = len(pd.read_parquet(out, columns=["lead_id"]))
    return report_run(label, rows, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--event-leads", type=int, default=100_000)
    parser.add_argument("--flat-rows", type=int, default=1_000_000)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--reasons", action="store_true", help="score with reasons (TreeSHAP)")
    parser.add_argument("--no-batch", action="store_true", help="skip the batch scorer runs")
    parser.add_argument("--work-dir", type=Path, default=Path("data/bench"))
    args = parser.parse_args()
    work = args.work_dir
    ensure_current(work)
    reasons = [] if args.reasons else ["--no-reasons"]
    kind = "with reasons" if args.reasons else "no reasons"

    started = time.perf_counter()
    spark = local_spark_session(args.cores, driver_memory="4g")
    print(json.dumps({"spark_session_start_s": round(time.perf_counter() - started, 1)}))
    results = []
    if args.event_leads:
        model_dir = ensure_event_model(work)
        folder = ensure_event_data(work / f"events_{args.event_leads}", args.event_leads)
        tables = [
            spark.read.parquet(str(folder / f"{t}.parquet"))
            for t in ("leads", "activities", "outcomes")
        ]
        scoring = load_scoring_model(model_dir)
        results.append(
            timed_write(
                f"spark event, {kind}",
                lambda: score_events_spark(
                    *tables, scoring, as_of=AS_OF, with_reasons=args.reasons
                ),
                work / "spark_events.parquet",
            )
        )
        if not args.no_batch:
            common = ["score", "--data", str(folder), "--model", str(model_dir), "--as-of", AS_OF]
            target = str(work / "batch_events.duckdb")
            results.append(
                measure(
                    f"batch event, {kind}", [*common, *reasons, "--no-progress", "--target", target]
                )
            )
    if args.flat_rows:
        spec_path, model_dir, big = ensure_flat(work, args.flat_rows)
        spec = load_spec(spec_path)
        scoring = load_scoring_model(model_dir)
        results.append(
            timed_write(
                f"spark flat, {kind}",
                lambda: score_flat_spark(
                    spark.read.parquet(str(big)),
                    scoring,
                    id_column=spec.id,
                    as_of=AS_OF,
                    with_reasons=args.reasons,
                ),
                work / "spark_flat.parquet",
            )
        )
        if not args.no_batch:
            common = [
                "score",
                "--spec",
                str(spec_path),
                "--model",
                str(model_dir),
                "--input",
                str(big),
            ]
            target = str(work / "batch_flat.duckdb")
            results.append(
                measure(
                    f"batch flat, {kind}", [*common, *reasons, "--no-progress", "--target", target]
                )
            )
    spark.stop()
    print(
        "\n"
        + pd.DataFrame(results).drop(columns="peak_rss_gib", errors="ignore").to_string(index=False)
    )


if __name__ == "__main__":
    main()
