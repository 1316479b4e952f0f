"""Commit time of a daily scoring run as the target's history grows, per kind of target.

Each target gets ``--runs`` daily runs of ``--leads`` leads, written as the scorer writes
them (previous stages read from the target, then the run committed), and the script prints
the seconds the read and the commit took on the first and the last day. A daily run should
cost the same in a year as on day one: its cost follows the run, not the history. Two reads
that the scorer adds to a run are timed apart: ``runs s``, the runs the target holds
(:func:`leadscore.sinks.target_runs`, read before every run to warn of a back-fill or an
as-of scored twice), and ``moves s``, the model that gave each lead's previous stage
(:func:`leadscore.sinks.run_moves_by_model`, read after a run that follows another model's).

Usage::

    python benchmarks/bench_sinks.py --leads 200000 --runs 10
    python benchmarks/bench_sinks.py --kinds duckdb,postgres --postgres-url postgresql://...

PostgreSQL is measured only given ``--postgres-url`` (a database the script may fill: it
writes the tables into a new schema and drops it at the end).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from leadscore import sinks


def daily_run(ids: np.ndarray, as_of: pd.Timestamp, seed: int) -> pd.DataFrame:
    """One run's scored leads: random probabilities, stages from fixed cut-offs."""
    rng = np.random.default_rng(seed)
    prob = rng.random(len(ids))
    return pd.DataFrame(
        {
            "lead_id": ids,
            "scored_at": as_of + pd.Timedelta(hours=6),
            "as_of": as_of,
            "model_name": "leadscore",
            "model_version": "1",
            "probability": prob,
            "score": np.round(prob * 100).astype("int64"),
            "stage": np.where(prob >= 0.9, "sql", np.where(prob >= 0.6, "mql", "lead")),
            "previous_stage": None,
            "stage_changed": False,
            "fit_score": rng.integers(0, 101, len(ids)),
            "engagement_score": rng.integers(0, 101, len(ids)),
            "reasons_for": "Visited the pricing page 3 times",
            "reasons_against": "Personal e-mail address",
            "reasons_json": "[]",
        }
    )


def measure(target: str, leads: int, runs: int) -> list[tuple[int, float, float, float, float]]:
    """(day, read, commit, runs, moves seconds) of the first and the last run into
    ``target``."""
    ids = np.array([f"L{i:07d}" for i in range(leads)])
    start = pd.Timestamp("2026-01-01")
    out = []
    for day in range(runs):
        as_of = start + pd.Timedelta(days=day)
        frame = daily_run(ids, as_of, seed=day)
        began = time.perf_counter()
        sinks.target_runs(target)
        held = time.perf_counter() - began
        began = time.perf_counter()
        before = sinks.previous_stages(target, as_of, lead_ids=ids)
        scored = sinks.attach_previous_stages(frame, before)
        read = time.perf_counter() - began
        began = time.perf_counter()
        sinks.write_scored_leads(scored, target)
        commit = time.perf_counter() - began
        began = time.perf_counter()
        sinks.run_moves_by_model(target, sinks.RunKey.from_frame(scored))
        moves = time.perf_counter() - began
        if day in (0, runs - 1):
            out.append((day + 1, read, commit, held, moves))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--kinds", default="duckdb,parquet,sqlite")
    parser.add_argument("--postgres-url", default=None)
    args = parser.parse_args()
    kinds = args.kinds.split(",")
    if args.postgres_url and "postgres" not in kinds:
        kinds.append("postgres")
    print(f"{args.leads:,} leads, {args.runs} daily runs")
    print(f"{'target':<10} {'day':>4} {'read s':>8} {'commit s':>9} {'runs s':>7} {'moves s':>8}")
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        for kind in kinds:
            if kind == "postgres":
                if not args.postgres_url:
                    continue
                schema = f"bench_{uuid.uuid4().hex[:8]}"
                target = _postgres_schema(args.postgres_url, schema)
            else:
                target = {
                    "duckdb": str(folder / "scored.duckdb"),
                    "parquet": str(folder / "scored.parquet"),
                    "csv": str(folder / "scored.csv"),
                    "sqlite": f"sqlite:///{folder / 'scored.sqlite'}",
                }[kind]
            try:
                for day, read, commit, held, moves in measure(target, args.leads, args.runs):
                    print(
                        f"{kind:<10} {day:>4} {read:>8.2f} {commit:>9.2f} {held:>7.2f} "
                        f"{moves:>8.2f}"
                    )
            finally:
                if kind == "postgres":
                    _drop_schema(args.postgres_url, schema)


def _postgres_schema(url: str, schema: str) -> str:
    """A URL of ``url``'s database whose tables go to a new ``schema``."""
    import sqlalchemy as sa

    with sa.create_engine(url).begin() as con:
        con.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options=-csearch_path%3D{schema}"


def _drop_schema(url: str, schema: str) -> None:
    import sqlalchemy as sa

    with sa.create_engine(url).begin() as con:
        con.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


if __name__ == "__main__":
    main()
