"""``leadscore features``: point-in-time features of event-form data, as of one moment."""

from __future__ import annotations

import argparse
import time

from leadscore.errors import DataError

# The readers and the feature code (pandas) are imported by the handler: every command's parser
# is built on each call (see leadscore.cli).


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "features",
        help="build point-in-time features of event-form leads",
        description="Build one row of features per lead from what was known at --as-of only: "
        "leads created by then and activities up to that instant (outcomes are never used). "
        "Prints a summary and, with --out, writes the table.",
    )
    parser.add_argument(
        "--data",
        required=True,
        metavar="DIR_OR_URL",
        help="event form: a folder with leads/activities/outcomes (.parquet or "
        ".csv; optionally activity_types, mapping the log's own activity types), a DuckDB "
        "file or a database URL holding those tables",
    )
    parser.add_argument(
        "--as-of",
        metavar="DATE",
        default=None,
        help="the moment of scoring, e.g. 2024-03-01 or 2024-03-01T12:00 (UTC); activities at "
        "or before it count (default: the end of the data)",
    )
    parser.add_argument(
        "--out",
        metavar="FILE",
        default=None,
        help="write the feature table to this .parquet or .csv file",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from leadscore.features import build_features, parse_as_of
    from leadscore.io import load_closed_loop, write_table

    started = time.perf_counter()
    given_as_of = parse_as_of(args.as_of) if args.as_of is not None else None
    data = load_closed_loop(args.data)
    loaded = time.perf_counter()
    as_of = given_as_of if given_as_of is not None else data.observed_until
    table = build_features(data, as_of)
    built = time.perf_counter()
    if len(table.frame) == 0:
        raise DataError(
            f"no lead of {args.data} was created by {table.as_of:%Y-%m-%d %H:%M}",
            "Give a later --as-of.",
        )
    written = write_table(table.frame, args.out) if args.out is not None else None
    groups = {
        group: [f.name for f in table.features if f.group == group]
        for group in ("fit", "engagement")
    }
    print(
        f"{args.data}: {len(table.frame):,} leads as of {table.as_of:%Y-%m-%d %H:%M:%S}, "
        f"{len(table.features)} features (loaded in {loaded - started:.1f} s, "
        f"built in {built - loaded:.1f} s)"
    )
    for group, names in groups.items():
        print(f"  {group} ({len(names)}): {', '.join(names) or '-'}")
    if written is not None:
        print(f"  wrote {written}")
    return 0
