"""Suspected-leakage guard: features too good to be known before the outcome.

A column written after contact (a sales tag, a quality grade, a closed-deal field) separates won
from lost leads far better than anything known at scoring time. Two symptoms are checked on the
fit fold only, so the test fold stays untouched:

* **univariate ROC-AUC** above a threshold (default 0.9). Numeric features are ranked as they
  are, with missing values as their own lowest rank; categorical ones are target-encoded out of
  fold (5 folds, smoothed), so a high-cardinality column such as a landing-page id does not look
  predictive just because it memorises the fit fold. The AUC is symmetric: 0.05 is as
  suspicious as 0.95.
* **non-null for one class only**: a column that is filled in for won leads and empty for lost
  ones (or the reverse), as CRM fields that the sales team completes after a deal are.

A feature that trips either check stops training unless its name is allowed explicitly
(``allow_leakage`` in the dataset spec or the training config), and the report lists it.

A leaky column that is only moderately predictive (a quality grade the sales team sets with
some noise) passes both checks, so column names that say they were written after contact
(:data:`POST_CONTACT_WORDS`) are warned about as well: a warning, since a name is no proof.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from leadscore.errors import DataError

logger = logging.getLogger(__name__)

MIN_NON_NULL = 20

#: Words in a column name that say the sales team wrote it after contact (DOMAIN.md: call
#: notes, tags, lead quality grades, "last activity" set by sales), or that it records the
#: outcome itself. Matched as whole words of the name, so ``Country`` never matches ``rep``.
POST_CONTACT_WORDS: frozenset[str] = frozenset(
    {
        "quality",
        "grade",
        "graded",
        "tag",
        "tags",
        "status",
        "stage",
        "score",
        "scoring",
        "rating",
        "disposition",
        "reason",
        "owner",
        "rep",
        "note",
        "notes",
        "comment",
        "comments",
        "outcome",
        "qualified",
        "disqualified",
        "qualification",
        "opportunity",
        "deal",
        "won",
        "lost",
        "closed",
        "close",
        "converted",
    }
)

#: Listed words that CRM exports glue onto another word without a separator or a capital
#: (HubSpot's ``lifecyclestage``, ``hubspotscore``, ``dealstage``; ``isconverted``), found
#: at the end of a word when at least three letters precede them. Short or common words
#: (rep, tag, won, note, owner, rating) are left out: glued, they sit inside innocent words
#: (report, percentage, homeowner, operating).
GLUED_ENDINGS: frozenset[str] = frozenset(
    {
        "stage",
        "status",
        "score",
        "scoring",
        "grade",
        "quality",
        "disposition",
        "outcome",
        "reason",
        "qualified",
        "qualification",
        "opportunity",
        "deal",
        "closed",
        "converted",
    }
)

#: Listed words that begin a glued field name, when the rest is one of :data:`_FIELD_NOUNS`
#: (``closedate``, ``dealname``, ``closedwon``).
GLUED_BEGINNINGS: frozenset[str] = frozenset({"deal", "close", "closed", "opportunity"})
_FIELD_NOUNS = frozenset(
    {"date", "time", "stage", "status", "name", "type", "amount", "value", "id", "owner"}
    | {"reason", "probability", "won", "lost"}
)

#: Ordinary words that end like a glued field (``downgrade``, ``undisclosed``).
_NOT_GLUED = frozenset(
    {"downgrade", "downgraded", "disclosed", "undisclosed", "foreclosed", "backstage"}
    | {"underscore", "unconverted"}
)

#: Phrases (consecutive words) with the same meaning, where each word alone is innocent.
POST_CONTACT_PHRASES: tuple[tuple[str, ...], ...] = (
    ("last", "activity"),
    ("last", "notable", "activity"),
    ("last", "contacted"),
    ("sales", "feedback"),
)


@dataclass(frozen=True)
class LeakageSuspect:
    """A feature that looks like it was written after the outcome, and why."""

    feature: str
    reason: str
    roc_auc: float | None


def _out_of_fold_target_encoding(values: pd.Series, y: np.ndarray, seed: int) -> np.ndarray:
    """Smoothed won rate per category, each row encoded from folds it is not in."""
    codes = values.astype("string").fillna("\0missing").to_numpy()
    encoded = np.empty(len(values), dtype="float64")
    prior = float(y.mean())
    n_splits = int(min(5, np.bincount(y).min())) if len(np.unique(y)) > 1 else 0
    if n_splits < 2:
        return np.full(len(values), prior)
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for train_idx, apply_idx in folds.split(codes, y):
        stats = (
            pd.DataFrame({"code": codes[train_idx], "y": y[train_idx]})
            .groupby("code")["y"]
            .agg(["sum", "count"])
        )
        rate = (stats["sum"] + 10 * prior) / (stats["count"] + 10)
        encoded[apply_idx] = pd.Series(codes[apply_idx]).map(rate).fillna(prior).to_numpy()
    return encoded


def univariate_auc(values: pd.Series, y: np.ndarray, *, seed: int = 0) -> float:
    """Symmetric ROC-AUC of one feature alone (0.5 = no signal, 1.0 = separates perfectly)."""
    if ptypes.is_numeric_dtype(values) and not isinstance(values.dtype, pd.CategoricalDtype):
        numeric = values.astype("float64")
        lowest = np.nanmin(numeric.to_numpy()) - 1 if numeric.notna().any() else 0.0
        score = numeric.fillna(lowest).to_numpy()
    else:
        score = _out_of_fold_target_encoding(values, y, seed)
    if np.all(score == score[0]):
        return 0.5
    auc = float(roc_auc_score(y, score))
    return max(auc, 1.0 - auc)


def find_leakage_suspects(
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    auc_threshold: float = 0.9,
    allow: tuple[str, ...] | list[str] = (),
    seed: int = 0,
) -> list[LeakageSuspect]:
    """Features of ``X`` (the fit fold) that look like post-outcome leakage.

    Features named in ``allow`` are still checked but never reported.
    """
    y = np.asarray(y).astype(int)
    if len(np.unique(y)) < 2:
        raise DataError(
            "the fit fold holds one class only", "Give training data with both won and lost leads."
        )
    suspects: list[LeakageSuspect] = []
    for name in X.columns:
        if name in allow:
            continue
        values = X[name]
        present = values.notna().to_numpy()
        if MIN_NON_NULL <= present.sum() < len(values):
            classes = np.unique(y[present])
            if len(classes) == 1:
                who = "won" if classes[0] == 1 else "lost"
                suspects.append(
                    LeakageSuspect(
                        name, f"filled in for {who} leads only ({int(present.sum())} rows)", None
                    )
                )
                continue
        auc = univariate_auc(values, y, seed=seed)
        if auc > auc_threshold:
            suspects.append(
                LeakageSuspect(name, f"separates won from lost alone with ROC-AUC {auc:.3f}", auc)
            )
    return suspects


def leakage_error(suspects: list[LeakageSuspect]) -> DataError:
    """The one-line error that stops training when suspects were found."""
    names = ", ".join(f"{s.feature!r} ({s.reason})" for s in suspects)
    return DataError(
        f"suspected leakage in {len(suspects)} feature(s): {names}",
        "If they are written after contact, exclude them (a spec's exclude; for event data, "
        "drop the column from the leads table); if they are truly known at scoring time, "
        "allow them (a spec's allow_leakage, or leakage.allow in the training config).",
    )


def _name_words(name: str) -> list[str]:
    """``leadQuality``, ``Lead Quality`` and ``lead_quality`` as ``["lead", "quality"]``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", str(name))
    return [w for w in re.split(r"[^0-9a-zA-Z]+", spaced.lower()) if w]


def _singular(word: str) -> str:
    """``deals`` as ``deal``, ``opportunities`` as ``opportunity``, ``statuses`` as
    ``status``; a word not ending in s as it is."""
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ses", "xes")) and len(word) > 4:
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us")) and len(word) > 3:
        return word[:-1]
    return word


def _post_contact_word(word: str) -> str | None:
    """The listed word that ``word`` is, is the plural of, or holds glued to another word."""
    for form in dict.fromkeys((word, _singular(word))):
        if form in POST_CONTACT_WORDS:
            return form
        if form in _NOT_GLUED:
            return None
        for ending in GLUED_ENDINGS:
            if form.endswith(ending) and len(form) - len(ending) >= 3:
                return ending
        for beginning in GLUED_BEGINNINGS:
            if form.startswith(beginning) and form[len(beginning) :] in _FIELD_NOUNS:
                return beginning
    return None


def post_contact_columns(names: Iterable[str], *, allow: Iterable[str] = ()) -> dict[str, str]:
    """Columns of ``names`` whose name says they are written after contact, each with the
    word that says so; names in ``allow`` are left out (allowed as known at scoring).

    A word matches as written (``Lead Status``, ``leadStatus``, ``lead_status``), as a plural
    (``num_associated_deals``) and glued onto another word, as CRM exports write field names
    (``lifecyclestage``, ``hubspotscore``, ``closedate``): see :data:`GLUED_ENDINGS` and
    :data:`GLUED_BEGINNINGS`, which keep to words that do not hide inside ordinary ones.
    """
    allowed = set(allow)
    found: dict[str, str] = {}
    for name in names:
        if name in allowed:
            continue
        words = _name_words(name)
        hit = next((h for h in map(_post_contact_word, words) if h is not None), None)
        if hit is None:
            for phrase in POST_CONTACT_PHRASES:
                n = len(phrase)
                # "days since last activity" is a recency measured at scoring, not a field
                if any(
                    tuple(words[i : i + n]) == phrase and (i == 0 or words[i - 1] != "since")
                    for i in range(len(words) - n + 1)
                ):
                    hit = " ".join(phrase)
                    break
        if hit is not None:
            found[str(name)] = hit
    return found


def post_contact_note(found: dict[str, str], fix: str) -> str:
    """One sentence naming the :func:`post_contact_columns` found, with ``fix``: how to
    exclude them in the caller's data form (a spec's exclude, or dropping a lead column).

    The same words serve the log at loading and the training run's notes, which the model
    report lists under its leakage checks (they say "leak").
    """
    named = ", ".join(f"{name!r} ({word!r})" for name, word in found.items())
    return (
        f"{len(found)} column(s) named like a field written after contact, which would leak "
        f"the outcome: {named}. {fix}"
    )


def warn_post_contact_columns(found: dict[str, str], fix: str) -> None:
    """Log one warning naming the :func:`post_contact_columns` found, with ``fix``: how to
    exclude them in the caller's data form (a spec's exclude, or dropping a lead column)."""
    if found:
        logger.warning("%s", post_contact_note(found, fix))
