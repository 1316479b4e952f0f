"""Column and type names as words, for the checks that read a name for what it says.

The leakage guard reads column names (``leadQuality``, ``num_associated_deals``) and the
activity-type map reads the company's own type names (``SalesCallLogged``, ``Meeting Booked``)
the same way, so they share one splitter. It lives here, free of heavy imports, because the
schema module imports it and must stay light (the leakage guard imports scikit-learn).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence


def name_words(name: str) -> list[str]:
    """``leadQuality``, ``Lead Quality`` and ``lead_quality`` as ``["lead", "quality"]``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", str(name))
    return [w for w in re.split(r"[^0-9a-zA-Z]+", spaced.lower()) if w]


def singular(word: str) -> str:
    """``deals`` as ``deal``, ``opportunities`` as ``opportunity``, ``statuses`` as
    ``status``; a word not ending in s as it is."""
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ses", "xes")) and len(word) > 4:
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us")) and len(word) > 3:
        return word[:-1]
    return word


def spaced_twin(name: object, have: Iterable[object]) -> str | None:
    """The one of ``have`` that is ``name`` but for spaces (or tabs) around it
    (``'Lead Status '`` for ``'Lead Status'``), or ``None``.

    Such a column is the one meant, yet a message quoting it (``closest: 'Lead Status '``)
    shows the difference only to a reader who counts the characters between the quotes.
    """
    wanted = str(name)
    for candidate in map(str, have):
        if candidate != wanted and candidate.strip() == wanted.strip():
            return candidate
    return None


def spaces_around(name: str) -> str:
    """Where ``name`` has white space that a header or a spec hides: ``a space after it``,
    ``2 spaces before it``, ``a tab before it and a space after it``; ``""`` for none."""

    def spaces(run: str) -> str:
        if run == " ":
            return "a space"
        if run == "\t":
            return "a tab"
        return f"{len(run)} spaces" if set(run) == {" "} else f"{len(run)} blank characters"

    lead = name[: len(name) - len(name.lstrip())]
    trail = name[len(name.rstrip()) :]
    parts = [f"{spaces(lead)} before it"] if lead else []
    parts += [f"{spaces(trail)} after it"] if trail else []
    return " and ".join(parts)


def spacing_difference(wanted: str, twin: str) -> str:
    """How ``twin`` differs from ``wanted`` (:func:`spaced_twin`), read from ``wanted``:
    ``with a space after it`` (the data's name has it), ``without a space after it`` (the
    name asked for has it)."""
    if twin.strip() != twin:
        return f"with {spaces_around(twin)}"
    return f"without {spaces_around(wanted)}"


def _nearest(name: object, names: Sequence[str], n: int) -> list[str]:
    """Up to ``n`` of ``names`` most like ``name``: first the same but for the spaces around
    it or its case (an export's ``lead status``), then the nearest spellings (``Pricing
    Views`` for ``Pricing Page Views``, :mod:`difflib`'s ratio of at least 0.6)."""
    wanted = str(name)
    folded = wanted.strip().casefold()
    found = [c for c in names if c != wanted and c.strip().casefold() == folded][:1]
    found += difflib.get_close_matches(wanted, names, n=n, cutoff=0.6)
    return list(dict.fromkeys(found))[:n]


#: Two words of at least four letters this alike (:mod:`difflib`'s ratio) are one word
#: misspelt (``Sorce`` for ``Source``) when :func:`closest_name` compares names word by word.
SAME_WORD_RATIO = 0.8


def _same_word(a: str, b: str) -> bool:
    if a == b:
        return True
    return (
        min(len(a), len(b)) >= 4 and difflib.SequenceMatcher(None, a, b).ratio() >= SAME_WORD_RATIO
    )


#: Words that name no particular thing (``ID``, ``Date``, ``Name``): many columns end in
#: one, so sharing it says nothing about which column was meant. ``Close Date`` is no
#: rename of ``Created Date``, and offering it points the user at a column that leaks.
GENERIC_WORDS = frozenset(
    {
        "id",
        "date",
        "name",
        "number",
        "no",
        "at",
        "time",
        "type",
        "code",
        "status",
        "value",
        "count",
        "amount",
        "total",
        "first",
        "last",
        "created",
        "updated",
    }
)

#: Words that join others (``Number of Sessions``) and name nothing.
_JOINING_WORDS = frozenset({"of", "the", "a", "an", "and", "or", "per", "in", "on", "to", "for"})


def _distinctive(word: str) -> bool:
    return word not in GENERIC_WORDS and word not in _JOINING_WORDS


def _word_match(a: list[str], b: list[str]) -> bool:
    """Whether the shorter of two names' words is a run of the longer's that ends it
    (``Sessions`` in ``Number of Sessions``) or holds two words or more; a run of generic
    words only (``ID`` in ``Account ID``) says nothing of what the column holds."""
    short, long = sorted((a, b), key=len)
    if not any(_distinctive(w) for w in short):
        return False
    runs = [i for i in range(len(long) - len(short) + 1) if long[i : i + len(short)] == short]
    return any(len(short) >= 2 or i + len(short) == len(long) for i in runs)


def closest_name(name: object, have: Iterable[object]) -> str | None:
    """The one name of ``have`` most like ``name``, or ``None``: the same but for the spaces
    around it or its case, else the one that holds ``name``'s last word, then most of its
    words, then :mod:`difflib`'s highest ratio, among those at a ratio of 0.6 or more and
    those whose words are a run of ``name``'s, or ``name``'s of theirs (:func:`_word_match`).

    A renamed export column usually keeps the noun at the end of the name: ``Sessions``
    for ``Number of Sessions``, where the ratio alone prefers ``Number of Pageviews``, the
    same words about something else. That column is no candidate at all: it shares only
    generic words (:data:`GENERIC_WORDS`) and names a thing ``name`` does not, as ``Close
    Date`` does for ``Created Date``. A generic last word (``Date``, ``ID``) counts only
    with another word shared, else ``Close Date`` would outrank ``Created``."""
    names = [str(c) for c in have]
    found = _nearest(name, names, 1)
    if found and found[0].strip().casefold() == str(name).strip().casefold():
        return found[0]
    wanted = [singular(w) for w in name_words(str(name))]
    ranked = []
    for candidate in names:
        if candidate == str(name):
            continue
        words = [singular(w) for w in name_words(candidate)]
        ratio = difflib.SequenceMatcher(None, str(name), candidate).ratio()
        if ratio < 0.6 and not _word_match(wanted, words):
            continue
        shared = [
            v for v in wanted if v not in _JOINING_WORDS and any(_same_word(v, w) for w in words)
        ]
        other = [w for w in words if _distinctive(w) and not any(_same_word(v, w) for v in wanted)]
        if shared and other and not any(_distinctive(v) for v in shared):
            continue
        last = bool(wanted) and any(_same_word(wanted[-1], w) for w in words)
        head = last and (_distinctive(wanted[-1]) or len(shared) >= 2)
        ranked.append(((head, len(shared), ratio), candidate))
    return max(ranked, key=lambda r: r[0])[1] if ranked else None


def closest_names(name: object, have: Iterable[object]) -> str:
    """`` (closest: 'Budget ', 'budget')`` for a column that is not there, or ``""``; the
    same name but for the spaces around it says so (`` (closest: 'Lead Status ', with a space
    after it)``): quoted alone, a trailing space is easy to misread as a match."""
    names = [str(c) for c in have]
    twin = spaced_twin(name, names)
    if twin is not None:
        return f" (closest: {twin!r}, {spacing_difference(str(name), twin)})"
    found = _nearest(name, names, 3)
    return f" (closest: {', '.join(repr(n) for n in found)})" if found else ""


#: Most missing columns one error line names, each with its closest match.
MISSING_NAMES_SHOWN = 8


def missing_names_text(
    missing: Sequence[str],
    have: Iterable[object],
    used: Iterable[str] = (),
    *,
    holder: str = "the data",
) -> str:
    """``'Annual Revenue', 'Pricing Page Views' (closest: 'Pricing Views')``: every missing
    name (up to :data:`MISSING_NAMES_SHOWN`, then how many more), each with the one column of
    ``have`` most like it, or a note that the column differs only in the spaces around it.

    A new export that renamed two columns must say both, and which of its columns is
    probably each, in one run: naming one per run sends the user back once per column. The
    columns in ``used`` are no candidates: the ones already matched to another name, and
    those the model must not read (a spec's excluded columns: its lifetime counter is no
    rename of a feature); ``holder`` names what has the columns (``the input``)."""
    taken = set(used)
    others = [str(c) for c in have if str(c) not in taken]
    shown = []
    for name in missing[:MISSING_NAMES_SHOWN]:
        twin = spaced_twin(name, others)
        near = closest_name(name, others) if twin is None else None
        if twin is not None:
            shown.append(f"{name!r} ({holder} has {twin!r}, {spacing_difference(name, twin)})")
        elif near is not None:
            shown.append(f"{name!r} (closest: {near!r})")
        else:
            shown.append(repr(name))
    more = len(missing) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")
