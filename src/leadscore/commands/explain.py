"""``leadscore explain LEAD_ID``: one lead's card, as sales and marketing read it."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from leadscore.cli import complete_later
from leadscore.errors import DataError

# pandas and the scored-leads tables (DuckDB) are imported where the card is made: registering
# this command must stay cheap, since every command's parser is built on each call.
if TYPE_CHECKING:
    import pandas as pd

    from leadscore.stages import StageThresholds


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="show one lead's score card",
        description="Print one lead's latest score, stage, fit and engagement sub-scores, the "
        "reasons for and against, and what changed since its previous scoring, from the "
        "scored-leads tables.",
    )
    parser.add_argument("lead_id", help="the lead to explain")
    parser.add_argument("--target", help="where the scores are kept (default: %(default)s)")
    parser.add_argument(
        "--model",
        default=None,
        metavar="URI",
        help="the model that scored the lead (models:/NAME/VERSION, models:/NAME@ALIAS or a "
        "model folder): the card then adds its MQL and SQL cut-offs and the probability a "
        "typical lead starts from, which the reasons' points move",
    )
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI for models:/ (default: $MLFLOW_TRACKING_URI or "
        "sqlite:///mlflow.db)",
    )
    parser.set_defaults(func=run)

    def complete() -> None:
        from leadscore.sinks import DEFAULT_TARGET

        parser.set_defaults(target=DEFAULT_TARGET)

    complete_later(parser, complete)


def _reasons(row: pd.Series) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {"for": [], "against": []}
    for reason in json.loads(row["reasons_json"] or "[]"):
        out[reason["direction"]].append(reason)
    return out


def _without_reasons(row: pd.Series) -> bool:
    """Whether a row was scored with ``--no-reasons``: no reasons and no sub-scores at all (a
    run with reasons always leaves a sub-score or a reason, unless the model has neither)."""
    import pandas as pd

    return (
        _reasons(row) == {"for": [], "against": []}
        and not row["reasons_for"]
        and not row["reasons_against"]
        and pd.isna(row["fit_score"])
        and pd.isna(row["engagement_score"])
    )


def _sub_score(value: object) -> str:
    import pandas as pd

    return "-" if pd.isna(value) else f"{value}/100"


def _sentences(row: pd.Series, reasons: dict[str, list[dict]]) -> dict[str, list[str]]:
    """The sentence of each reason of a row, as the card shows it: ``reasons_for`` and
    ``reasons_against`` hold the sentences in the order of ``reasons_json``."""
    from leadscore.sinks import REASONS_SEPARATOR

    out: dict[str, list[str]] = {}
    for direction in ("for", "against"):
        written = [t for t in str(row[f"reasons_{direction}"]).split(REASONS_SEPARATOR) if t]
        out[direction] = [
            written[i] if i < len(written) else reason["label"]
            for i, reason in enumerate(reasons[direction])
        ]
    return out


def _reason_lines(row: pd.Series, reasons: dict[str, list[dict]]) -> list[str]:
    """The reasons for and against of a row, as sentences with their points."""
    lines: list[str] = []
    sentences = _sentences(row, reasons)
    for direction, sign in (("for", "+"), ("against", "-")):
        lines.append(f"  Reasons {direction}:")
        if not reasons[direction]:
            lines.append("    (none notable)")
        for reason, text in zip(reasons[direction], sentences[direction], strict=True):
            points = 100 * float(reason["contribution"])
            lines.append(f"    {sign} {text} ({points:+.1f} points)")
    return lines


def _changed_reasons(before: pd.Series, latest: pd.Series) -> list[str]:
    """The reasons that came, went or changed sides between two scorings, in the words each
    card used.

    A reason is the same one when it is about the same fact (``fact`` in ``reasons_json``: the
    windows of a count and its recency are one fact, worded by whichever window moved the
    score most, which may differ between scorings) or, without one, the same field (its
    sentence may have moved on, "3 times" to "4 times"); a new one is quoted from the latest
    card, a gone one from the previous card. A fact that counted for the lead and now counts
    against it (or the other way) is neither new nor gone: it is listed as having changed
    sides, quoted from the latest card, since that turn is often the news a salesperson wants,
    with the value the previous card gave it where that differs (:func:`_with_previous`): the
    value that moved is usually why it turned.
    """
    from leadscore.sinks import REASONS_SEPARATOR

    def by_field(row: pd.Series) -> dict[str, tuple[str, str]]:
        reasons = _reasons(row)
        sentences = _sentences(row, reasons)
        out: dict[str, tuple[str, str]] = {}
        for direction in ("for", "against"):
            for reason, text in zip(reasons[direction], sentences[direction], strict=True):
                out.setdefault(reason.get("fact") or reason["feature"], (direction, text))
        return out

    old, new = by_field(before), by_field(latest)
    came = [text for f, (_, text) in new.items() if f not in old]
    gone = [text for f, (_, text) in old.items() if f not in new]
    turned = [
        f"{_with_previous(text, old[f][1])} (now {direction}, was {old[f][0]})"
        for f, (direction, text) in new.items()
        if f in old and old[f][0] != direction
    ]
    lines = []
    if came:
        lines.append("    new reasons: " + REASONS_SEPARATOR.join(came))
    if gone:
        lines.append("    no longer reasons: " + REASONS_SEPARATOR.join(gone))
    if turned:
        lines.append("    changed sides: " + REASONS_SEPARATOR.join(turned))
    return lines


def _with_previous(text: str, before: str) -> str:
    """``text`` of the latest card with the value the previous card gave the same reason,
    where it differs, in the reasons' own wording: "Meetings Booked: 4, was 0", "Industry:
    Retail, was not given".

    Only for sentences of the "<label>: <value>" form (and "<label> not given"), as a flat
    spec's columns read: there the value is the part after the label. An event reason's
    sentence says its value in its own words ("Has not visited the pricing page lately"),
    which already tells what moved; it is left as it is.
    """
    missing = " not given"

    def parts(sentence: str) -> tuple[str, str] | None:
        label, colon, value = sentence.partition(": ")
        if colon:
            return label, value
        if sentence.endswith(missing):
            return sentence[: -len(missing)], missing.strip()
        return None

    now, then = parts(text), parts(before)
    if now is None or then is None or now[0] != then[0] or now[1] == then[1]:
        return text
    return f"{text}, was {then[1]}"


@dataclass(frozen=True)
class CardScale:
    """What a card needs of the model to add its points up: the model's name and version (a
    card scored by another gets none of it), the probability of a typical lead, from which
    the reasons' points start, and the model's stage cut-offs."""

    name: str
    version: str
    base_rate: float
    stages: StageThresholds

    def line(self, latest: pd.Series) -> str:
        """The card's line: the cut-offs and the typical lead's probability, of the model
        that scored the lead. A model folder is recorded as its data set's name
        (``x_education``) where its registered version is ``leadscore-x_education``, so a
        model of the same data set under the other name is named beside the figures. Another
        version of the same name, a model of another data set, or one whose cut-offs would
        give the lead another stage is surely another model, and its figures are left out:
        its cut-offs and typical lead are not what this lead's points were measured from."""
        import numpy as np

        from leadscore.sinks import data_set_of, shown_model

        given = shown_model(self.name, self.version)
        row_name, row_version = str(latest["model_name"]), str(latest["model_version"])
        scored_by = shown_model(row_name, row_version)
        if self.name == row_name:
            other = self.version != row_version
        else:
            other = data_set_of(self.name) != data_set_of(row_name)
        stage = self.stages.transform(np.array([float(latest["probability"])]))[0]
        if other or stage != str(latest["stage"]):
            return (
                f"  Cut-offs not shown: --model {given} is not the model that scored this "
                f"lead ({scored_by})"
            )
        of = "" if given == scored_by else f" of {given} (--model)"
        cuts = ", ".join(
            f"{name} from {cut:.1%}" if math.isfinite(cut) else f"no lead reaches {name}"
            for name, cut in (
                ("MQL", self.stages.mql_threshold_),
                ("SQL", self.stages.sql_threshold_),
            )
        )
        return (
            f"  Cut-offs{of}: {cuts}; a typical lead starts at {self.base_rate:.1%}, and the "
            "points of its reasons (with the smaller ones not shown) take this one to "
            f"{latest['probability']:.1%}"
        )


def card_scale(uri: str, tracking_uri: str | None = None) -> CardScale:
    """The :class:`CardScale` of the model at ``uri`` (as ``score --model`` takes it)."""
    from leadscore.scoring import load_scoring_model

    scoring = load_scoring_model(uri, tracking_uri=tracking_uri)
    return CardScale(
        name=str(scoring.name),
        version=str(scoring.version),
        base_rate=scoring.model.base_rate,
        stages=scoring.model.stages,
    )


def lead_card(
    history: pd.DataFrame,
    newest_run: pd.Timestamp | None = None,
    scale: CardScale | None = None,
) -> str:
    """The card of one lead from its history rows (oldest first).

    ``newest_run`` is the as-of of its model's newest run in the target: when that run left
    the lead out, the card says that its score is a last one, not a current one. ``scale``
    (:func:`card_scale`) adds the model's cut-offs and a typical lead's probability.
    """
    from leadscore.sinks import shown_model

    latest = history.iloc[-1]
    lines = [
        f"Lead {latest['lead_id']}: scored {latest['scored_at']:%Y-%m-%d %H:%M} as of "
        f"{latest['as_of']:%Y-%m-%d %H:%M} by "
        f"{shown_model(latest['model_name'], latest['model_version'])}",
        # in percent, as the reasons' points are: "+2.3 points" of a 4.4% probability
        f"  Score {latest['score']}/100 (probability {latest['probability']:.1%}), "
        f"stage {str(latest['stage']).upper()}",
    ]
    if newest_run is not None and newest_run > latest["as_of"]:
        lines.append(
            f"  Not scored by the newest run (as of {newest_run:%Y-%m-%d %H:%M}): the lead had "
            "closed (won or lost) or left the data by then, so this is its last score"
        )
    bare = _without_reasons(latest)
    if bare:
        lines.append("  Scored without reasons (--no-reasons): no fit, engagement or reasons")
    else:
        lines.append(
            f"  Fit {_sub_score(latest['fit_score'])}, "
            f"engagement {_sub_score(latest['engagement_score'])}"
        )
    if scale is not None:
        lines.append(scale.line(latest))
    reasons = _reasons(latest)
    if not bare:
        lines += _reason_lines(latest, reasons)
    # the previous scoring is the latest at an earlier as-of, as for previous_stage: a run
    # repeated at the same as-of (another model version) replaces, it does not precede
    earlier = history[history["as_of"] < latest["as_of"]]
    if earlier.empty:
        lines.append("  First scoring of this lead: nothing to compare with yet.")
        return "\n".join(lines)
    before = earlier.iloc[-1]
    move = (
        "no change"
        if before["stage"] == latest["stage"]
        else (f"{str(before['stage']).upper()} -> {str(latest['stage']).upper()}")
    )
    # where the 0-100 score did not move, the probability shows what crossed a cut-off
    detail = (
        f" (probability {before['probability']:.2%} -> {latest['probability']:.2%})"
        if before["score"] == latest["score"] and before["stage"] != latest["stage"]
        else ""
    )
    lines.append(
        f"  Since the scoring as of {before['as_of']:%Y-%m-%d %H:%M}: score "
        f"{before['score']} -> {latest['score']}{detail}, stage {move}"
    )
    if bare or _without_reasons(before):
        return "\n".join(lines)  # one of the two runs has no reasons to compare
    lines += _changed_reasons(before, latest)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from leadscore.sinks import closed_by, latest_as_of, read_history

    history = read_history(args.target, lead_ids=[args.lead_id])
    if history.empty:
        closed = closed_by(args.target, args.lead_id)
        if closed is not None:
            raise DataError(
                f"lead {args.lead_id!r} had closed (won or lost) by the run as of "
                f"{closed:%Y-%m-%d %H:%M} in {args.target}, before any run scored it",
                "Closed leads are not scored: its outcome (won or lost) is in the data, in the "
                "outcomes table of event data or the label column of a flat spec.",
            )
        raise DataError(
            f"lead {args.lead_id!r} has not been scored in {args.target}",
            "Check the id, or run `leadscore score` first.",
        )
    history = history.sort_values(["as_of", "scored_at"], kind="stable")
    newest_run = latest_as_of(args.target, str(history["model_name"].iloc[-1]))
    scale = card_scale(args.model, args.tracking_uri) if args.model else None
    print(lead_card(history, newest_run, scale))
    return 0
