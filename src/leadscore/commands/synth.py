"""``leadscore synth``: write a synthetic closed-loop data set with a known ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from leadscore.cli import complete_later
from leadscore.errors import SpecError

if TYPE_CHECKING:
    import pandas as pd

# leadscore.synth (pandas, pyarrow) is imported when the command is used: registering it must
# stay cheap, since every command's parser is built on each call (see leadscore.cli).

DESCRIPTION = """\
Generate realistic closed-loop lead data for demos, tests and benchmarks.

Writes into OUT:
  leads.parquet       one row per lead: lead_id, created_at, source (channel), campaign,
                      industry, company_size, country, job_title, email
  activities.parquet  the activity log: lead_id, occurred_at, activity_type (web_visit,
                      page_view, form_fill, email_sent/open/click, download, webinar, chat,
                      trial_signup, trial_usage, event), detail, value
  outcomes.parquet    closed leads: lead_id, outcome (won/lost), closed_at; leads that had
                      not closed by the end date are open and have no row
  truth.parquet       the ground truth per lead: p_win (eventual win probability),
                      close_rate_per_day, latent fit and intent; a lead open at any moment
                      wins within H days with probability p_win * (1 - exp(-rate * H))
  costs.csv           spend per channel over the period (cost per lead differs by channel)
  manifest.json       parameters, seed, observed_until and row counts

The same seed and parameters always give the same data. With --format csv the four tables
are written as .csv instead. 10,000 leads take seconds; 1,000,000 take about a minute.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``synth`` subcommand."""
    parser = subparsers.add_parser(
        "synth",
        help="generate synthetic closed-loop lead data with a known ground truth",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--leads", type=int, required=True, metavar="N", help="number of leads to generate (>= 1)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="folder to write into (created if needed)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        metavar="S",
        help="random seed (default: %(default)s)",
    )
    parser.add_argument(
        "--format",
        choices=("parquet", "csv"),
        default="parquet",
        help="file format of the tables (default: %(default)s)",
    )
    parser.add_argument(
        "--win-rate",
        type=float,
        metavar="P",
        help="mean eventual win probability of a lead (default: %(default)s)",
    )
    parser.add_argument(
        "--start",
        metavar="DATE",
        help="first day leads are created (default: %(default)s)",
    )
    parser.add_argument(
        "--end",
        metavar="DATE",
        help="end of the period and observed_until: closes after it are "
        "censored; no later than today, since validate refuses data in the future "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--mean-activities",
        type=float,
        metavar="K",
        help="mean activity rows per lead (default: %(default)s)",
    )
    channel_mix = parser.add_argument(
        "--channel-mix",
        default=None,
        metavar="MIX",
        help="share of leads per channel, e.g. paid_search=0.5,organic=0.5",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)

    def complete() -> None:
        """The defaults of :class:`~leadscore.synth.SynthParams`, one source for both."""
        from leadscore.synth import CHANNELS, SynthParams

        defaults = SynthParams()
        parser.set_defaults(
            seed=defaults.seed,
            win_rate=defaults.win_rate,
            start=defaults.start,
            end=defaults.end,
            mean_activities=defaults.mean_activities,
        )
        channel_mix.help = f"{channel_mix.help} (channels: {', '.join(CHANNELS)})"

    complete_later(parser, complete)


def parse_channel_mix(text: str) -> dict[str, float]:
    """``paid_search=0.5,organic=0.5`` as a mapping, or a :class:`SpecError`."""
    mix: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError(item)
            mix[name.strip()] = float(value)
        except ValueError as err:
            raise SpecError(
                f"--channel-mix: cannot read {item!r}",
                "Write channel=share pairs separated by commas, e.g. paid_search=0.5,organic=0.5.",
            ) from err
    if not mix:
        raise SpecError("--channel-mix is empty", "Give channel=share pairs, or leave it out.")
    return mix


def _iso_date(value: str, option: str) -> str:
    """``value`` read as ``--as-of`` is read (:func:`~leadscore.features.parse_timestamp`),
    written back in ISO form: ``01/02/2025`` reads as 1 February or 2 January and was taken
    without a word, and the manifest kept the text as typed, which no later reader parses
    alike; an ambiguous date is refused as ``--as-of 05/06/2026`` is."""
    from leadscore.features import parse_timestamp

    ts = parse_timestamp(value, option)
    return ts.date().isoformat() if ts == ts.normalize() else ts.isoformat()


def refuse_future_end(end: pd.Timestamp, written: str, *, now: pd.Timestamp | None = None) -> None:
    """Refuse an ``--end`` after the current time (``now``, default: the current time, UTC)
    by more than the day :func:`~leadscore.timestamps.future_cutoff` allows.

    ``--end`` is the data's ``observed_until``, written to its manifest, and the rows run up
    to it: ``validate``, ``train`` and ``score`` refuse both (a manifest moment in the
    future, rows after the current time), so such a data set would be written only to be
    refused, after a minute for a million leads. A period in the past, however long ago,
    is fine.
    """
    from leadscore.synth import SynthParams
    from leadscore.timestamps import future_cutoff, utc_now

    now = now if now is not None else utc_now()
    if end > future_cutoff(now):
        raise SpecError(
            f"--end {written} is in the future (it is {now:%Y-%m-%d %H:%M} UTC now): the data "
            "would hold rows after the current time, which validate, train and score refuse",
            "Give an --end no later than today (and a --start before it); the default period "
            f"ends on {SynthParams().end}.",
        )


def run(args: argparse.Namespace) -> int:
    """Validate the arguments, write the data set and print a one-paragraph summary."""
    from leadscore.synth import SynthParams, read_manifest, write_synthetic

    if args.leads < 1:
        raise SpecError(f"--leads must be at least 1, got {args.leads}", "Ask for 1 lead or more.")
    if not 0.0 < args.win_rate < 1.0:
        raise SpecError(
            f"--win-rate must be between 0 and 1, got {args.win_rate}",
            "Give a probability such as 0.12.",
        )
    if args.seed < 0:
        raise SpecError(f"--seed must be >= 0, got {args.seed}", "Give a non-negative seed.")
    kwargs: dict[str, object] = {}
    if args.channel_mix is not None:
        kwargs["channel_mix"] = parse_channel_mix(args.channel_mix)
    params = SynthParams(
        n_leads=args.leads,
        seed=args.seed,
        win_rate=args.win_rate,
        start=_iso_date(args.start, "--start"),
        end=_iso_date(args.end, "--end"),
        mean_activities=args.mean_activities,
        **kwargs,  # type: ignore[arg-type]
    )
    refuse_future_end(params.observed_until, params.end)
    paths = write_synthetic(
        params, args.out, fmt=args.format, progress=False if args.no_progress else None
    )
    counts = read_manifest(args.out)["counts"]
    closed = counts["closed"]
    rate = f"{counts['won'] / closed:.1%}" if closed else "n/a"
    print(
        f"Wrote {counts['leads']:,} synthetic leads with {counts['activities']:,} activities "
        f"(seed {params.seed}) to {args.out}: {closed:,} closed ({counts['won']:,} won, "
        f"{counts['lost']:,} lost, win rate {rate}) and {counts['open']:,} still open at "
        f"{params.observed_until.date()}. Tables: "
        f"{', '.join(p.name for k, p in paths.items() if k != 'manifest')}; the ground truth "
        f"is in {paths['truth'].name}, parameters and counts in {paths['manifest'].name}."
    )
    return 0
