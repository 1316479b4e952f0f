"""Column and type names as words, for the checks that read a name for what it says.

The leakage guard reads column names (``leadQuality``, ``num_associated_deals``) and the
activity-type map reads the company's own type names (``SalesCallLogged``, ``Meeting Booked``)
the same way, so they share one splitter. It lives here, free of heavy imports, because the
schema module imports it and must stay light (the leakage guard imports scikit-learn).
"""

from __future__ import annotations

import re


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
