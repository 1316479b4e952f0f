"""``leadscore validate``: check data against the contract and show what the model will see."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from leadscore.commands import optional_path
from leadscore.errors import LeadscoreError, ModelError

# The readers and the feature code (pandas, scikit-learn through the config) are imported by the
# handler: every command's parser is built on each call, and this module's add_data_arguments
# is shared by most of them.
if TYPE_CHECKING:
    import pandas as pd

    from leadscore.config import TrainConfig
    from leadscore.schema import ClosedLoopData, Feature, LabelledDataset

logger = logging.getLogger(__name__)


#: Feature families that an activity log without some activity type leaves empty for every
#: lead, as the feature catalogue builds them (:mod:`leadscore.features`): the types whose
#: absence empties the family, what that does to which features (by stem: every window of a
#: ``stem_`` count, or the feature of that exact name) and the fix. A CRM export that left a
#: type out (sends logged by the e-mail tool, sessions by web analytics) gives features that
#: read as leads who never did it, without a word. Only the channels every B2B company logs
#: are named: a log without chats, webinars, events, downloads or a trial is usually a company
#: that offers none, and a warning for each would bury the ones that matter.
EMPTY_FAMILIES: tuple[tuple[tuple[str, ...], str, tuple[str, ...], str], ...] = (
    (
        ("web_visit",),
        "the website visit and time-on-site features will be zero for every lead",
        ("web_visits", "web_seconds"),
        "map your website sessions to web_visit if your web analytics or CRM logs them",
    ),
    (
        ("page_view",),
        "the page view, pricing page and demo page features will be zero for every lead",
        ("page_views", "pricing_page_views", "demo_page_views"),
        "map your page views to page_view (detail: the page's URL or category)",
    ),
    (
        ("form_fill",),
        "the form and demo, sales or quote request features will be zero for every lead",
        ("form_fills", "high_intent_forms"),
        "map your form submissions to form_fill (detail: the form's name)",
    ),
    (
        ("email_sent",),
        "the e-mail open and click rates will be missing for every lead, and e-mails received zero",
        ("email_open_rate_90d", "email_click_rate_90d", "email_sends"),
        "map your sends to email_sent if the CRM logs them",
    ),
    (
        ("email_open",),
        "the e-mail open count will be zero for every lead, and the open rate too",
        ("email_opens", "email_open_rate_90d"),
        "map your e-mail opens to email_open if the CRM logs them",
    ),
    (
        ("email_click",),
        "the e-mail click count will be zero for every lead, and the click rate too",
        ("email_clicks", "email_click_rate_90d"),
        "map your e-mail clicks to email_click if the CRM logs them",
    ),
)


def family_features(stems: tuple[str, ...]) -> list[str]:
    """The catalogue's features of ``stems``: a feature named as a stem, or every window of
    one (``web_visits`` is ``web_visits_7d``, ``web_visits_30d``, ...), in catalogue order,
    so that the warning names the features the model would hold."""
    from leadscore.features import feature_catalogue

    names = [f.name for f in feature_catalogue() if f.group == "engagement"]
    return [n for n in names if n in stems or any(n.startswith(f"{s}_") for s in stems)]


def warn_empty_families(events: ClosedLoopData) -> None:
    """Warn, one line per family of :data:`EMPTY_FAMILIES`, when the activity log holds no
    row of its types: a log that lacks ``email_sent`` makes the e-mail rates missing for
    every lead and one that lacks ``web_visit`` makes every visit feature zero, which reads
    as leads who did nothing rather than as an export that left a type out. A family of
    which the log holds some type is not named, and neither is any when the source has no
    activities table at all (the summary says so). Counted on the mapped log (after an
    ``activity_types`` table): the types leadscore reads, not the CRM's own names."""
    if "activities" in events.absent_tables or events.activities.empty:
        return
    held = set(events.activities["activity_type"].dropna().astype(str).unique())
    for types, effect, stems, fix in EMPTY_FAMILIES:
        if held.intersection(types):
            continue
        rows = " or ".join(types) + " rows"
        logger.warning(
            "The activity log holds no %s: %s (%s); %s",
            rows,
            effect,
            ", ".join(family_features(stems)),
            fix,
        )


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """``--spec`` / ``--data`` / ``--data-root``, shared by the commands that read lead data."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--spec",
        metavar="NAME_OR_YAML",
        help="flat data: a built-in spec (x_education, olist) or a YAML spec file",
    )
    source.add_argument(
        "--data",
        metavar="DIR_OR_URL",
        type=str,
        help="event form: a folder with leads/activities/outcomes (.parquet or "
        ".csv; optionally activity_types, mapping the log's own activity types), a DuckDB "
        "file or a database URL holding those tables",
    )
    parser.add_argument(
        "--data-root",
        type=optional_path,
        default=None,
        metavar="DIR",
        help="where built-in specs find the shared data sets "
        "(default: $LEADSCORE_DATA_ROOT or ../shared/data)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check lead data against the data contract",
        description="Check flat data (with its spec) or event-form data against the data "
        "contract and print what the model will see: leads, wins, features by group and the "
        "columns left out with their reasons. Then run the checks train runs before it grows "
        "a tree (the config against the features, infinite values, the leakage guard) on the "
        "examples train would build. Exits non-zero with a one-line error otherwise.",
    )
    add_data_arguments(parser)
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="YAML",
        help="training config to check as train would (LightGBM parameters, monotone "
        "features, rule points) and whose folds, events and leakage settings to use "
        "(default: the built-in defaults)",
    )
    parser.set_defaults(func=run)


def check_as_train_would(dataset: LabelledDataset, config: TrainConfig) -> str | None:
    """Run the checks with which ``train`` refuses a config or data before fitting (the
    config against the data's features: monotone patterns, LightGBM's parameter values,
    rule points, :func:`~leadscore.training.check_config`; then folds, infinite values, the
    leakage guard: :func:`~leadscore.training.prepare_training`), so that validate does not
    pass what train then refuses, and warn where train would set the config's
    ``rule_points.default`` aside. The config is checked first, whatever the history. Too
    little history (cold start) is no fault of the data: it is returned as a note, and the
    later checks are skipped.
    """
    from leadscore.training import check_config, check_finite, prepare_training

    points = check_config(dataset, config)
    if points.set_aside:
        logger.warning("%s", points.set_aside_text(dataset.name))
    check_finite(dataset.X)
    try:
        prepare_training(dataset, config)
    except ModelError as err:
        return f"train would stop here: {err}"
    return None


def _shown_feature(feature: Feature, values: pd.Series) -> str:
    """A flat feature's column and how the model reads it: as numbers, as categories (how
    many), or read another way ("Email (read as corporate or free mail)"). A column of counts
    read as categories, or revenue that stayed text, shows here before it costs a model.

    Categories are counted as the model will hold them: spellings that differ only in case or
    spacing are one category (:meth:`~leadscore.encoding.FeatureEncoder.from_frame`), so
    ``Retail`` and ``RETAIL`` count once, and the spellings are counted beside them where
    there are more ("8 categories, 24 spellings"): "24 categories" above the warning that
    merges them would overstate what the model learns from.
    """
    from leadscore.encoding import READING_WORDS, category_levels, spelling_key

    if feature.read_as is not None:
        return f"{feature.name} (read as {READING_WORDS[feature.read_as]})"
    if feature.kind == "numeric":
        return f"{feature.name} (number)"
    spellings = category_levels(values)
    levels = len({spelling_key(s) for s in spellings})
    shown = f"{levels:,} categor{'y' if levels == 1 else 'ies'}"
    if len(spellings) > levels:
        shown += f", {len(spellings):,} spellings"
    return f"{feature.name} ({shown})"


def run(args: argparse.Namespace) -> int:
    counted = _WarningCount()
    package = logging.getLogger("leadscore")
    package.addHandler(counted)
    try:
        return _validate(args, counted)
    finally:
        package.removeHandler(counted)


def _validate(args: argparse.Namespace, warnings: _WarningCount) -> int:
    from leadscore.config import load_config
    from leadscore.datasets import load_dataset
    from leadscore.features import build_event_examples, build_features
    from leadscore.io import event_data_name, load_closed_loop, shown_url

    config = load_config(getattr(args, "config", None))
    if args.spec:
        data = load_dataset(args.spec, data_root=args.data_root, allow=config.leakage.allow)
        groups = {
            g: [_shown_feature(f, data.X[f.name]) for f in data.features if f.group == g]
            for g in ("fit", "engagement")
        }
        print(
            f"{data.name}: {len(data.y):,} leads, {int(data.y.sum()):,} won "
            f"({data.y.mean():.1%}); ordered by {data.order_kind}"
        )
        for group, names in groups.items():
            print(f"  {group} features ({len(names)}): {', '.join(names) or '-'}")
        for column, reason in data.excluded.items():
            print(f"  left out {column!r}: {reason}")
        _print_verdict(data, check_as_train_would(data, config), warnings.count)
        return 0
    if args.data is None:  # pragma: no cover - argparse enforces one of the two
        raise LeadscoreError("no data given", "Pass --spec or --data.")
    events = load_closed_loop(args.data)
    print(
        f"{shown_url(args.data)}: {len(events.leads):,} leads, {_activities_summary(events)}, "
        f"{_outcomes_summary(events)}, observed until {events.observed_until:%Y-%m-%d %H:%M}"
    )
    if events.activity_mapping is not None:
        # the counts above are of the mapped log: say that a map made it, and what it left out
        print(f"  activity types: {events.activity_mapping.summary()}")
    warn_empty_families(events)
    # The features as of the end of the data: as cheap as loading it, and what train will see
    # (lead columns that are not features are logged with their reason as they are planned).
    table = build_features(events, events.observed_until)
    for group in ("fit", "engagement"):
        names = [f.name for f in table.features if f.group == group]
        print(f"  {group} features ({len(names)}): {', '.join(names) or '-'}")
    from leadscore.training import check_finite

    check_finite(table.X)
    try:
        # the summary above warned about the log's page and form details; the same log
        # again would warn again
        examples = build_event_examples(
            events, config.events, name=event_data_name(args.data), on_details=None
        )
    except LeadscoreError as err:  # no outcomes table, or too little time for one window
        _print_note(f"train would stop here: {err}")
        return 0
    from leadscore.leakage import warn_snapshot_lead_columns

    warn_snapshot_lead_columns(examples, events, allow=config.leakage.allow)
    _print_verdict(examples, check_as_train_would(examples, config), warnings.count)
    return 0


def _activities_summary(events: ClosedLoopData) -> str:
    if "activities" in events.absent_tables:
        return "no activities table (every lead without activity)"
    return f"{len(events.activities):,} activities"


def _outcomes_summary(events: ClosedLoopData) -> str:
    """How many leads closed and won, or that the outcomes table is missing: "0 closed"
    would read as a company without closed deals, not as a misnamed file."""
    if "outcomes" in events.absent_tables:
        return "outcomes table missing (every lead is open)"
    won = int((events.outcomes["outcome"] == "won").sum())
    return f"{len(events.outcomes):,} closed ({won:,} won)"


def _print_note(note: str | None) -> None:
    if note is not None:
        print(f"note: {note}")


def _print_verdict(dataset: LabelledDataset, note: str | None, warnings: int = 0) -> None:
    """The last line: why train would stop, or that it would take the data, so that a run
    that printed only facts still ends in an answer. ``warnings`` logged on the way are
    counted in it: "ok" right under "'Working - Contacted' (916) counted as lost" read as if
    the warning did not matter."""
    if note is not None:
        _print_note(note)
        return
    rows = "examples" if dataset.form == "events" else "leads"
    read = f"; read the {warnings} warning(s) above first" if warnings else ""
    print(
        f"ok: train would take these {len(dataset.y):,} {rows} "
        f"({int(dataset.y.sum()):,} won) as they are{read}"
    )


class _WarningCount(logging.Handler):
    """Counts the warnings leadscore logs while ``validate`` runs, for its last line."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
