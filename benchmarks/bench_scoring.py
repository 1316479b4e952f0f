"""Batch scoring throughput and peak memory, with and without reasons.

Two inputs, each scored in its own subprocess so that peak RSS is per run:

* **event form**: a synthetic folder of N leads with their activity log (``leadscore synth``),
  scored as of its end with a model trained on 20,000 synthetic leads;
* **flat form**: a Parquet table of M rows (the synthetic leads' features as of one date,
  repeated under new ids), scored with a model trained on a flat spec of those features.

Usage::

    python benchmarks/bench_scoring.py --event-leads 1000000 --flat-rows 10000000
    python benchmarks/bench_scoring.py --event-leads 100000 --flat-rows 1000000 \\
        --reasons-limit 200000
    python benchmarks/bench_scoring.py --event-leads 100000 --flat-rows 0 \\
        --database duckdb --database sqlite --database postgresql+psycopg://user@host/db

``--database`` also scores the event folder's tables copied into a DuckDB file, an SQLite
file (both under ``--work-dir``) or the database of a URL (its ``leads``, ``activities`` and
``outcomes`` tables are replaced), with an index on each table's ``lead_id``, as a CRM's
database has one.

``--reasons-limit`` caps the rows scored *with* reasons (TreeSHAP costs far more than a
prediction); rows/s is measured on what was scored. Inputs are cached under ``--work-dir``:
the synthetic event folders for good (``synth`` is deterministic per seed), the models and the
flat tables only while the package's source is unchanged (:func:`ensure_current`), since a
model or table built by older code may no longer be what this code scores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

import leadscore
from leadscore.config import parse_config
from leadscore.features import build_features, build_training_examples, default_as_of_dates
from leadscore.io import load_closed_loop
from leadscore.synth import SynthParams, write_synthetic
from leadscore.training import train

AS_OF = "2026-06-30"


def source_digest() -> str:
    """A digest of the leadscore package's Python source, to tell built inputs apart."""
    root = Path(leadscore.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def ensure_current(work: Path) -> None:
    """Drop the models and flat tables in ``work`` that other package source built."""
    stamp = work / "source.txt"
    current = source_digest()
    if stamp.exists() and stamp.read_text().strip() == current:
        return
    for stale in (work / "event_model", work / "flat_model"):
        shutil.rmtree(stale, ignore_errors=True)
    for stale in (work / "flat_base.parquet", *work.glob("flat_[0-9]*.parquet")):
        stale.unlink(missing_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    stamp.write_text(current + "\n")


def ensure_event_data(folder: Path, n_leads: int) -> Path:
    if not (folder / "manifest.json").exists():
        write_synthetic(SynthParams(n_leads=n_leads, seed=3), folder, progress=False)
    return folder


def ensure_event_model(work: Path) -> Path:
    model_dir = work / "event_model"
    if not (model_dir / "model.json").exists():
        data = load_closed_loop(ensure_event_data(work / "events_20k", 20_000))
        dates = default_as_of_dates(data, 90)
        result = train(build_training_examples(data, dates, 90, name="bench"), parse_config({}))
        result.model.save(model_dir)
    return model_dir


def ensure_event_database(folder: Path, database: str, work: Path) -> str:
    """The tables of event ``folder`` in ``database`` (``duckdb``, ``sqlite`` or a URL), each
    with an index on ``lead_id``; the files are kept for later runs, a URL's are replaced."""
    import duckdb
    import sqlalchemy as sa

    tables = {name: folder / f"{name}.parquet" for name in ("leads", "activities", "outcomes")}
    if database == "duckdb":
        path = work / f"{folder.name}.duckdb"
        if not path.exists():
            with duckdb.connect(str(path)) as con:
                for name, file in tables.items():
                    con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_parquet('{file}')")
        return str(path)
    url = f"sqlite:///{work / f'{folder.name}.sqlite'}" if database == "sqlite" else database
    if database == "sqlite" and (work / f"{folder.name}.sqlite").exists():
        return url
    engine = sa.create_engine(url)
    try:
        for name, file in tables.items():
            frame = pd.read_parquet(file)
            with engine.connect() as con:
                if sa.inspect(con).has_table(name):
                    rows = con.execute(sa.text(f"SELECT count(*) FROM {name}")).scalar_one()
                    if rows == len(frame):  # loaded by an earlier run
                        continue
            with engine.begin() as con:
                frame.to_sql(name, con, index=False, if_exists="replace", chunksize=50_000)
                con.exec_driver_sql(f"CREATE INDEX {name}_lead_id ON {name} (lead_id)")
    finally:
        engine.dispose()
    return url


def ensure_flat(work: Path, rows: int) -> tuple[Path, Path, Path]:
    """A flat table of ``rows`` leads, its spec, and a model trained on that spec."""
    base = work / "flat_base.parquet"
    if not base.exists():
        data = load_closed_loop(ensure_event_data(work / "events_20k", 20_000))
        table = build_features(data, "2026-03-01").frame
        won = data.outcomes[data.outcomes["outcome"] == "won"]["lead_id"]
        table["converted"] = table["lead_id"].isin(won).astype(int)
        table.to_parquet(base, index=False)
    spec_path = work / "flat_spec.yaml"
    spec_path.write_text(
        yaml.safe_dump(
            {
                "name": "bench_flat",
                "source": str(base.resolve()),
                "id": "lead_id",
                "label": {"column": "converted", "won": [1], "lost": [0]},
            }
        )
    )
    model_dir = work / "flat_model"
    if not (model_dir / "model.json").exists():
        from leadscore.datasets import load_dataset

        config = parse_config({"quality_gate": {"allow_worse": True}})
        train(load_dataset(spec_path), config).model.save(model_dir)
    big = work / f"flat_{rows}.parquet"
    if not big.exists():
        import pyarrow as pa
        import pyarrow.parquet as pq

        frame = pd.read_parquet(base).drop(columns=["converted"])  # open leads: no outcome yet
        writer = None
        for start in range(0, rows, len(frame)):
            n = min(len(frame), rows - start)
            part = frame.iloc[:n].copy()
            part["lead_id"] = [f"F{start + i:09d}" for i in range(n)]
            table = pa.Table.from_pandas(part, preserve_index=False)
            writer = writer or pq.ParquetWriter(big, table.schema)
            writer.write_table(table)
        writer.close()
    return spec_path, model_dir, big


def measure(label: str, args: list[str]) -> dict[str, object]:
    """Run ``leadscore score ARGS`` in a child process; its own peak RSS comes from wait4."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "leadscore", "-q", *args], stdout=out, stderr=err, text=True
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"{label}: scoring failed: {stderr.strip()}")
    match = re.search(r"scored ([\d,]+) leads", stdout)
    rows = int(match.group(1).replace(",", "")) if match else 0
    return report_run(label, rows, seconds, peak_rss_gib=round(usage.ru_maxrss / 1024**2, 2))


def report_run(label: str, rows: int, seconds: float, **extra: object) -> dict[str, object]:
    """One run's figures, printed as a JSON line (shared with bench_spark.py)."""
    result = {
        "run": label,
        "rows": rows,
        "seconds": round(seconds, 1),
        "rows_per_s": round(rows / seconds),
        **extra,
    }
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--event-leads", type=int, default=100_000)
    parser.add_argument("--flat-rows", type=int, default=1_000_000)
    parser.add_argument(
        "--reasons-limit", type=int, default=None, help="at most this many rows scored with reasons"
    )
    parser.add_argument("--work-dir", type=Path, default=Path("data/bench"))
    parser.add_argument(
        "--database",
        action="append",
        default=[],
        help="also score the event data from duckdb, sqlite or a database URL (repeatable)",
    )
    args = parser.parse_args()
    work = args.work_dir
    ensure_current(work)

    results = []
    for scratch in work.glob("ev_*.duckdb"):  # targets of earlier runs, maybe of other data
        scratch.unlink()
    if args.event_leads:
        model = ensure_event_model(work)
        folder = ensure_event_data(work / f"events_{args.event_leads}", args.event_leads)
        common = [
            "score",
            "--data",
            str(folder),
            "--model",
            str(model),
            "--as-of",
            AS_OF,
            "--no-progress",
        ]
        results.append(
            measure(
                "event, no reasons",
                [*common, "--no-reasons", "--target", str(work / "ev_fast.duckdb")],
            )
        )
        if args.reasons_limit is None or args.reasons_limit >= args.event_leads:
            results.append(
                measure("event, with reasons", [*common, "--target", str(work / "ev_full.duckdb")])
            )
        for database in args.database:
            source = ensure_event_database(folder, database, work)
            kind = database if database in ("duckdb", "sqlite") else database.split(":")[0]
            target = work / f"ev_{kind.split('+')[0]}.duckdb"
            at_source = [*common[:2], source, *common[3:]]
            results.append(
                measure(
                    f"event from {kind}, no reasons",
                    [*at_source, "--no-reasons", "--target", str(target)],
                )
            )
    if args.flat_rows:
        spec, model, big = ensure_flat(work, args.flat_rows)
        common = ["score", "--spec", str(spec), "--model", str(model), "--no-progress"]
        results.append(
            measure(
                "flat, no reasons",
                [
                    *common,
                    "--input",
                    str(big),
                    "--no-reasons",
                    "--target",
                    str(work / "flat_fast.duckdb"),
                ],
            )
        )
        with_reasons = min(args.flat_rows, args.reasons_limit or args.flat_rows)
        sample = big if with_reasons == args.flat_rows else ensure_flat(work, with_reasons)[2]
        results.append(
            measure(
                "flat, with reasons",
                [*common, "--input", str(sample), "--target", str(work / "flat_full.duckdb")],
            )
        )
    print("\n" + pd.DataFrame(results).to_string(index=False))


if __name__ == "__main__":
    main()
