"""How raw lead values become model input: numbers as CRMs write them, category levels, and
e-mail addresses as the kind of their domain.

Training and scoring both read values through these functions, so that a column read as text,
numbers or a differently ordered ``category`` scores the same: ``4``, ``4.0`` and ``"4.0"`` are
one level, ``$1,200`` and ``43%`` are numbers, and (in models that fold spellings)
``paid search`` is the level ``Paid Search``. :class:`FeatureEncoder` applies the levels a
model learnt, after the readings its features name (:data:`VALUE_READINGS`: a flat table's
column of addresses reads ``corporate``, ``free`` or ``missing``); the reports and baselines
share the spelling helpers so that a channel reads the same everywhere.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from leadscore.errors import DataError, ModelError
from leadscore.names import missing_names_text, spaced_twin
from leadscore.schema import INTEGRAL_TEXT, MISSING_SPELLINGS, Feature

logger = logging.getLogger(__name__)

_BOOLEAN_TEXT = {"true": "True", "false": "False"}

#: The currency symbols a written amount may carry, once, before or after the number.
CURRENCY_SYMBOLS = "$€£¥"

#: A number as spreadsheets and CRMs write it: a sign, a currency symbol before or after it,
#: commas grouping exactly three digits, a scale of thousands, millions or billions on an amount
#: with its currency (``$1.2M``, ``€3bn``, ``150K €``) or a trailing percent sign.
_WRITTEN_NUMBER = re.compile(
    rf"""
    (?P<sign>[+-]?)
    (?:(?P<symbol>[{re.escape(CURRENCY_SYMBOLS)}])\s*(?P<inner_sign>[+-]?))?
    (?P<amount>(?:\d{{1,3}}(?:,\d{{3}})+|\d+)(?:\.\d+)?|\.\d+)
    (?:(?P<scale>[kKmMbB]|bn|BN|Bn)(?![A-Za-z]))?
    (?:\s*(?P<unit>[{re.escape(CURRENCY_SYMBOLS)}%]))?
    """,
    re.VERBOSE,
)

#: An amount a dot may group in thousands as well as mark decimals in: ``12.500`` is twelve
#: thousand five hundred in much of Europe. ``$ € £ ¥`` amounts carry two decimals at most, so
#: with a currency symbol it is read as neither (``€0.125`` and ``€12.50`` are decimals).
_DOT_THOUSANDS = re.compile(r"[1-9]\d{0,2}\.\d{3}")

#: The powers of ten of :data:`_WRITTEN_NUMBER`'s scales, as finance and CRM exports write them.
_SCALES = {"k": "e3", "m": "e6", "b": "e9", "bn": "e9"}


def canonical_text(value: object) -> str:
    """One text form per category value, so ``3``, ``3.0``, ``"3"`` and ``"3.0"`` are the same
    level, and so are ``True``, ``"TRUE"`` and ``"true"``: a column arrives typed by one reader
    (floats, booleans) and as text from another, and models saved before this rule hold levels
    such as ``"3.0"``."""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | float | np.integer | np.floating) and float(value).is_integer():
        return str(int(value))
    text = str(value)
    if INTEGRAL_TEXT.fullmatch(text):
        return str(int(text.split(".")[0]))
    return _BOOLEAN_TEXT.get(text.strip().lower(), text)


def _is_blank(value: object) -> bool:
    return isinstance(value, str) and not value.strip()


def level_text(values: pd.Series) -> pd.Series:
    """``values`` as category level text (:func:`canonical_text`); blank text is missing.

    Training types categorical columns with it and scoring reads levels the same way, so a
    column of codes matches whether it is read as floats, integers or text.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    table = np.array(
        [None if _is_blank(u) else canonical_text(u) for u in uniques] + [None], dtype=object
    )
    return pd.Series(table[codes], index=values.index, dtype="str")


def check_single_columns(X: pd.DataFrame, names: list[str]) -> None:
    """Refuse a frame that holds one of ``names`` twice (a join that brought a column from
    both sides): which of the two is the feature is anyone's guess."""
    twice = [name for name in names if int((X.columns == name).sum()) > 1]
    if twice:
        raise DataError(
            f"the leads to score hold column {twice[0]!r} twice",
            "Keep one column of each name (drop or rename the copy a join brought).",
        )


def parse_numbers(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """``values`` as float64 and the mask of values that are no number.

    The one reading of a numeric column, at training and at scoring, from any source: exports
    write a missing number as an empty or blank cell or as one of pandas' missing spellings
    (``NULL``, ``NA``, ``N/A``, ...), spreadsheets write ``12,500.75`` with thousands
    separators (only commas grouping exactly three digits count as such), amounts as
    ``$1,549,000``, ``-€12.50``, ``12.50 €`` or ``$1.2M`` (one symbol of ``$ € £ ¥``, dropped:
    the column is read in its one currency; on such an amount ``K``, ``M``, ``B`` or ``bn``
    scale the number by a thousand, a million or a billion, while a bare ``1B`` or ``4K`` is
    a code, a tier or a resolution and stays text) and shares as ``43.6%`` or ``-5 %``, read as the
    number divided by 100 (0.436), so ``43%`` and ``0.43`` in one column are one share.
    Currency codes (``1,200 USD``), decimal commas (``12,50``) and amounts whose dot may group
    thousands (``€12.500``: :data:`_DOT_THOUSANDS`) stay text: three letters may as well be a
    unit or a product code, ``1,200`` is twelve hundred, and ``12.500`` twelve thousand five
    hundred in much of Europe. A column holding text reads as numbers when it can; dates and
    durations are no numbers (pandas would read them as counts of their time unit).
    """
    if (
        ptypes.is_datetime64_any_dtype(values)
        or ptypes.is_timedelta64_dtype(values)
        or isinstance(values.dtype, pd.PeriodDtype)
    ):
        # a moment is no quantity: pandas would read it as a count of its time unit
        return pd.Series(np.nan, index=values.index), values.notna()
    if ptypes.is_bool_dtype(values) or ptypes.is_numeric_dtype(values):
        numbers = pd.Series(values.to_numpy(dtype="float64", na_value=np.nan), index=values.index)
        return numbers, pd.Series(False, index=values.index)
    text = values.astype("string").str.strip()
    given = values.mask(text.isin(MISSING_SPELLINGS))
    parsed = pd.to_numeric(given, errors="coerce")
    numbers = parsed.to_numpy(dtype="float64", na_value=np.nan, copy=True)
    failed = np.isnan(numbers) & given.notna().to_numpy(dtype=bool)
    if failed.any():  # only the values that did not parse are tried as written numbers
        codes, uniques = pd.factorize(text[failed])
        read = np.array([_written_number(u) for u in uniques], dtype="float64")[codes]
        numbers[failed] = read
        failed[failed] = np.isnan(read)
    return pd.Series(numbers, index=values.index), pd.Series(failed, index=values.index)


def _written_number(text: str) -> float:
    """``text`` as the number it writes (:data:`_WRITTEN_NUMBER`), or NaN.

    A percentage moves the decimal point in the text (``43.6e-2``), so ``43.6%`` is the very
    float that ``0.436`` is."""
    match = _WRITTEN_NUMBER.fullmatch(text)
    if match is None:
        return math.nan
    sign, symbol, inner_sign, amount, scale, unit = match.group(
        "sign", "symbol", "inner_sign", "amount", "scale", "unit"
    )
    if (symbol and unit) or (sign and inner_sign) or (scale and unit in ("%", None) and not symbol):
        return math.nan  # a bare 1B, 4K or 3M is a tier, a resolution, a term: not an amount
    if (symbol or unit not in ("%", None)) and not scale and _DOT_THOUSANDS.fullmatch(amount):
        return math.nan  # €12.500: twelve and a half, or twelve thousand five hundred
    exponent = "e-2" if unit == "%" else _SCALES[scale.lower()] if scale else ""
    return float(f"{sign or inner_sign or ''}{amount.replace(',', '')}{exponent}")


def category_levels(values: pd.Series) -> list[str]:
    """The levels of a training column in text form: its categories, or its sorted values."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        raw = list(values.cat.categories)
    else:
        raw = sorted(pd.unique(values.dropna()), key=canonical_text)
    return list(dict.fromkeys(canonical_text(v) for v in raw))


#: ``model.json``'s ``category_matching``: how values are matched to the levels. ``"exact"``
#: compares canonical text (:func:`canonical_text`), as every model saved before the field did;
#: ``"folded"`` also ignores case and spacing (:func:`spelling_key`).
CATEGORY_MATCHING = ("exact", "folded")

#: Merged spellings named per column in the training warning; the rest are counted.
_SHOWN_SPELLINGS = 5


def fold_text(text: str) -> str:
    """``text`` with case and spacing ignored: CRM exports write one category as ``Paid
    Search``, ``paid search`` and ``Paid  Search `` (``str.casefold`` of the words joined by
    single spaces), and a report or model that keeps them apart splits one channel in two."""
    return " ".join(text.split()).casefold()


def spelling_key(value: object) -> str:
    """The key under which spellings of one category value agree: the canonical text
    (:func:`canonical_text`, so ``3`` and ``" 3.0 "`` agree too) with case and spacing folded."""
    if isinstance(value, str):
        value = " ".join(value.split())
    return fold_text(canonical_text(value))


def preferred_spellings(
    counts: Mapping[str, int], key: Callable[[str], str] = fold_text
) -> dict[str, str]:
    """Each spelling of ``counts`` -> the spelling its group (same ``key``) is read as.

    The most frequent spelling of a group is the one people wrote and will recognise; a tie
    goes to the first in sorted order, so the choice does not depend on row order.
    """
    groups: dict[str, list[str]] = {}
    for spelling in sorted(counts):
        groups.setdefault(key(spelling), []).append(spelling)
    chosen: dict[str, str] = {}
    for members in groups.values():
        best = max(members, key=lambda s: counts[s])  # the first of equals: sorted order
        chosen.update(dict.fromkeys(members, best))
    return chosen


def describe_merged(
    chosen: Mapping[str, str], counts: Mapping[str, int], limit: int = _SHOWN_SPELLINGS
) -> str:
    """The spellings read as another, most frequent first (``'paid search' (150) read as
    'Paid Search' (1,316)``), ``limit`` of them and how many more; empty when none."""
    merged = sorted(
        (s for s, to in chosen.items() if s != to), key=lambda s: (-counts.get(s, 0), s)
    )
    shown = [
        f"{s!r} ({counts.get(s, 0):,}) read as {chosen[s]!r} ({counts.get(chosen[s], 0):,})"
        for s in merged[:limit]
    ]
    more = f" and {len(merged) - limit} more" if len(merged) > limit else ""
    return ", ".join(shown) + more


def _level_counts(values: pd.Series) -> dict[str, int]:
    """Rows per level (canonical text) of a training column; blank text is no level."""
    counts: dict[str, int] = {}
    for value, n in values.value_counts(dropna=True, sort=False).items():
        if not _is_blank(value):
            key = canonical_text(value)
            counts[key] = counts.get(key, 0) + int(n)
    return counts


# --------------------------------------------------------------------------- e-mail addresses

EMAIL_DOMAIN_KINDS: tuple[str, ...] = ("corporate", "free", "missing")

#: Free-mail providers; a domain whose first label is in :data:`_FREE_MAIL_BRANDS` is also free
#: (yahoo.co.uk, hotmail.fr, gmx.de, ...).
FREE_MAIL_DOMAINS: frozenset[str] = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "aol.com",
        "msn.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "mail.com",
        "mail.ru",
        "inbox.com",
        "proton.me",
        "protonmail.com",
        "pm.me",
        "zoho.com",
        "zohomail.com",
        "fastmail.com",
        "tutanota.com",
        "tuta.io",
        "hey.com",
        "web.de",
        "t-online.de",
        "freenet.de",
        "orange.fr",
        "free.fr",
        "laposte.net",
        "sfr.fr",
        "wanadoo.fr",
        "libero.it",
        "virgilio.it",
        "seznam.cz",
        "wp.pl",
        "o2.pl",
        "interia.pl",
        "onet.pl",
        "qq.com",
        "163.com",
        "126.com",
        "sina.com",
        "naver.com",
        "daum.net",
        "hanmail.net",
        "rediffmail.com",
        "uol.com.br",
        "bol.com.br",
        "terra.com.br",
        "rocketmail.com",
        "comcast.net",
        "verizon.net",
        "att.net",
        "sbcglobal.net",
        "btinternet.com",
        "bigpond.com",
    }
)
_FREE_MAIL_BRANDS = frozenset({"yahoo", "ymail", "hotmail", "outlook", "live", "gmx", "yandex"})


def classify_distinct(values: pd.Series, classify: Callable[[pd.Series], np.ndarray]) -> pd.Series:
    """Apply ``classify`` (text in, one class per value out) to the distinct values only, the
    missing value included: job titles and e-mail domains repeat a lot."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    classes = classify(pd.Series(uniques, dtype="str"))
    missing_class = np.asarray(classify(pd.Series([None], dtype="str")))[0]
    lookup = np.append(np.asarray(classes, dtype=object), missing_class)
    return pd.Series(lookup[codes], index=values.index)


def _domain_kind_of_unique(domains: pd.Series) -> np.ndarray:
    text = domains.astype("str").str.strip().str.lower()
    valid = text.str.fullmatch(r"[a-z0-9.-]+\.[a-z0-9-]{2,}", na=False).to_numpy()
    first_label = text.str.replace(r"\..*$", "", regex=True)
    free = (text.isin(FREE_MAIL_DOMAINS) | first_label.isin(_FREE_MAIL_BRANDS)).to_numpy()
    return np.where(~valid, "missing", np.where(free, "free", "corporate"))


def email_domain_kind(
    emails: pd.Series | None = None, domains: pd.Series | None = None
) -> pd.Series:
    """Whether each lead gave a ``corporate``, ``free`` (gmail, yahoo, ...) or no e-mail.

    A corporate address says the lead writes from work, a classic fit signal in B2B. The
    domain comes from ``emails`` (the part after ``@``); where that is missing, from
    ``domains``. Anything that does not look like a domain counts as ``missing``.

    Examples
    --------
    >>> email_domain_kind(pd.Series(["ann@acme.io", "bob@gmail.com", "n/a"])).tolist()
    ['corporate', 'free', 'missing']
    """
    if emails is None and domains is None:
        raise ValueError("give emails, domains or both")
    index = (emails if emails is not None else domains).index  # type: ignore[union-attr]
    domain = pd.Series(pd.NA, index=index, dtype="str")
    if emails is not None:
        text = emails.astype("str").str.strip()
        # replace() runs in Arrow, extract() in Python: 10x faster on a million addresses
        domain = text.str.replace(r"^.*@", "", regex=True).where(text.str.contains("@"))
    if domains is not None:
        fallback = domains.astype("str").str.strip().str.lstrip("@")
        domain = domain.where(domain.notna(), fallback)
    kinds = classify_distinct(domain, _domain_kind_of_unique)
    return pd.Series(
        pd.Categorical(kinds, categories=EMAIL_DOMAIN_KINDS), index=index, name="email_domain_kind"
    )


#: An e-mail address: something before one "@", a domain with a dot after it.
_EMAIL_ADDRESS = r"[^@\s]+@[^@\s]+\.[^@\s.]{2,}"


def looks_like_email_addresses(non_null: pd.Series, *, share: float = 0.9) -> bool:
    """Whether a text column holds e-mail addresses: at least ``share`` of its distinct values
    (the first 10,000) are addresses, so a few typos ("n/a", "ann at acme") do not hide it."""
    distinct = pd.Series(pd.unique(non_null.astype("str").str.strip())[:10_000], dtype="str")
    return bool(len(distinct)) and bool(distinct.str.fullmatch(_EMAIL_ADDRESS).mean() >= share)


def read_email_domain_kind(values: pd.Series) -> pd.Series:
    """E-mail addresses as :func:`email_domain_kind` reads them; a value that already is a
    kind (``corporate``, ``free``, ``missing``) stays that kind, so a column read once reads
    the same again (the scorer types a chunk before scoring it, and scoring types it too)."""
    text = values.astype("str").str.strip()
    already = text.isin(EMAIL_DOMAIN_KINDS)
    kinds = email_domain_kind(text.where(~already)).astype("str").where(~already, text)
    return pd.Series(
        pd.Categorical(kinds, categories=EMAIL_DOMAIN_KINDS), index=values.index, name=values.name
    )


def read_title_seniority(values: pd.Series) -> pd.Series:
    """Free-text job titles as the seniority they name (``VP of Sales`` is ``vp``), as the
    event form reads its ``job_title``; a value that already is a level stays that level, so
    a column read once reads the same again."""
    # features builds on this module, so its title parser is imported where it is used
    from leadscore.features import SENIORITY_LEVELS, parse_seniority

    text = values.astype("str").str.strip()
    already = text.str.lower().isin(SENIORITY_LEVELS)
    levels = parse_seniority(text.where(~already)).astype("str")
    levels = levels.where(~already, text.str.lower())
    return pd.Series(
        pd.Categorical(levels, categories=SENIORITY_LEVELS), index=values.index, name=values.name
    )


#: How a model may read a raw column before encoding it (:attr:`Feature.read_as`): the same
#: function at training and at scoring, so raw rows score as the training rows did.
VALUE_READINGS: dict[str, Callable[[pd.Series], pd.Series]] = {
    "email_domain_kind": read_email_domain_kind,
    "title_seniority": read_title_seniority,
}

#: What each reading makes of a column, in a marketer's words: added to the column's label
#: ("Email (corporate or free mail)") and to what ``validate`` lists.
READING_WORDS: dict[str, str] = {
    "email_domain_kind": "corporate or free mail",
    "title_seniority": "seniority",
}


def read_column(X: pd.DataFrame, feature: Feature) -> pd.Series:
    """The values of ``feature`` in ``X`` as the model reads them (:data:`VALUE_READINGS`)."""
    values = X[feature.name]
    return values if feature.read_as is None else VALUE_READINGS[feature.read_as](values)


def expect_frame(X: object, what: str = "leads to score") -> None:
    """A :class:`DataError` unless ``X`` is a DataFrame, in the encoder's words; an object
    that holds the leads' frame at ``.X`` (a :class:`~leadscore.schema.FeatureTable`, a
    labelled data set) is told to pass that frame: handing over the table itself is the
    natural slip in a notebook, and without this check it reads as ``has no len()``."""
    if isinstance(X, pd.DataFrame):
        return
    name = type(X).__name__
    if isinstance(getattr(X, "X", None), pd.DataFrame):
        holder = {"FeatureTable": "table", "LabelledDataset": "dataset"}.get(name, "obj")
        fix = f"Pass {holder}.X, the {name}'s DataFrame of features, not the {name} itself."
    else:
        fix = "Pass a pandas DataFrame with one column per model feature."
    raise DataError(f"{what} must be a DataFrame, not {name}", fix)


class FeatureEncoder:
    """Types a frame the way the booster was trained: floats, and codes of fixed levels.

    Parameters
    ----------
    features : the model inputs, in order.
    categories : levels of each categorical feature, as text; a value not among them is read
        as missing (an unseen landing page says nothing the model learnt). Values and levels
        are compared in their canonical text (:func:`canonical_text`), so ``4``, ``4.0`` and
        ``"4.0"`` are one level.
    fold_spellings : also ignore case and spacing (:func:`spelling_key`), so ``PAID SEARCH``
        is the level ``Paid Search`` rather than an unseen value. :meth:`from_frame` learns
        levels that way (one level per spelling group). Off for models saved before folding
        (no ``category_matching`` in ``model.json``): they may hold two levels of one
        spelling group, each with its own splits, and even where they do not, a spelling
        they scored as missing would start to score as a level: their scores must not move.
    excluded : columns of the training data that are no feature (a spec's ``exclude``, its
        id, label and order; ``model.json``'s ``metadata.excluded``): an input column of that
        name is never offered as the rename of a missing feature, since a lifetime counter
        the spec left out is no stand-in for the feature the model needs.
    """

    def __init__(
        self,
        features: Sequence[Feature],
        categories: Mapping[str, Sequence[str]],
        *,
        fold_spellings: bool = False,
        excluded: Iterable[str] = (),
    ) -> None:
        self.features = tuple(features)
        self.categories = {k: list(v) for k, v in categories.items()}
        self.fold_spellings = fold_spellings
        self.excluded: tuple[str, ...] = tuple(excluded)
        for f in self.features:
            if f.kind == "categorical" and f.name not in self.categories:
                raise ModelError(
                    f"no category levels for feature {f.name!r}",
                    "Retrain the model or restore its model.json.",
                )
        self._check_categories()
        self._positions: dict[str, dict[str, int]] = {}
        for name, levels in self.categories.items():
            positions = self._positions[name] = {}
            for i, level in enumerate(levels):
                key = self._key(level)
                if key in positions and canonical_text(level) != canonical_text(
                    levels[positions[key]]
                ):
                    raise ModelError(
                        f"the levels {levels[positions[key]]!r} and {level!r} of {name!r} "
                        "differ only in case or spacing, but the model matches them ignoring both",
                        "Retrain the model or restore its model.json as it was saved.",
                    )
                positions.setdefault(key, i)

    def _check_categories(self) -> None:
        """Refuse levels that scoring cannot use: levels of a column that is no categorical
        feature (scoring failed on them with a ``KeyError`` or an ``AttributeError``) and a
        level given twice (pandas refuses such categories when the column is typed)."""
        kinds = {f.name: f.kind for f in self.features}
        for name, levels in self.categories.items():
            if kinds.get(name) != "categorical":
                what = "no feature" if name not in kinds else f"a {kinds[name]} feature"
                raise ModelError(
                    f"category levels are given for {name!r}, which is {what}",
                    "Retrain the model or restore its model.json as it was saved.",
                )
            seen: set[object] = set()
            for level in levels:
                if level in seen:
                    raise ModelError(
                        f"the level {level!r} of {name!r} is given twice",
                        "Retrain the model or restore its model.json as it was saved.",
                    )
                seen.add(level)

    def _key(self, value: object) -> str:
        return spelling_key(value) if self.fold_spellings else canonical_text(value)

    @classmethod
    def from_frame(cls, X: pd.DataFrame, features: Sequence[Feature]) -> FeatureEncoder:
        """Learn the category levels from training data, one per spelling group.

        Spellings that differ only in case or spacing (``Paid Search`` and ``paid search``)
        are one level named by the most frequent spelling, so the model learns one effect and
        its reasons quote one name; the merges are logged as a warning per column, since they
        may hide a data-entry problem worth fixing at the source.
        """
        cats: dict[str, list[str]] = {}
        for f in features:
            if f.kind != "categorical":
                continue
            values = read_column(X, f)
            counts = _level_counts(values)
            # a category of the dtype that no training row holds is one the model never saw
            levels = [level for level in category_levels(values) if counts.get(level, 0)]
            counts = {level: counts[level] for level in levels}
            chosen = preferred_spellings(counts, spelling_key)
            merged = describe_merged(chosen, counts)
            if merged:
                logger.warning(
                    "%s: spellings that differ only in case or spacing are one level: %s",
                    f.name,
                    merged,
                )
            cats[f.name] = [level for level in levels if chosen[level] == level]
        return cls(features, cats, fold_spellings=True)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def _check_columns(self, X: pd.DataFrame) -> None:
        expect_frame(X)
        missing = [name for name in self.names if name not in X.columns]
        if missing:
            # every missing feature with the input's column most like it: an export that
            # renamed two columns must say both, and which columns are probably them
            columns = "columns" if len(missing) > 1 else "column"
            has_spaces = any(spaced_twin(name, X.columns) is not None for name in missing)
            raise DataError(
                f"the leads to score have no {columns} "
                + missing_names_text(
                    missing, X.columns, used=[*self.names, *self.excluded], holder="the input"
                ),
                "Rename the input's columns to the model's names"
                f"{' (without the spaces around them)' if has_spaces else ''}, or add them "
                "(empty values are fine): the model needs every feature it was trained on.",
            )
        check_single_columns(X, self.names)

    def _codes(self, name: str, values: pd.Series, new: dict[str, int] | None = None) -> np.ndarray:
        """Level position of each value, -1 when missing or blank.

        A value that is no level is -1 too, unless ``new`` is given: it then collects such
        values (canonical text -> code) and codes them after the levels.
        """
        positions, n_levels = self._positions[name], len(self.categories[name])
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        lookup = np.full(len(uniques) + 1, -1, dtype="int64")  # the last entry: missing
        for i, value in enumerate(uniques):
            if _is_blank(value):
                continue
            key = self._key(value)
            if key in positions:
                lookup[i] = positions[key]
            elif new is not None:  # quoted as given (canonical text), not as its folded key
                lookup[i] = new.setdefault(canonical_text(value), n_levels + len(new))
        return lookup[codes]

    def _numeric(self, name: str, values: pd.Series) -> np.ndarray:
        numbers, bad = parse_numbers(values)
        if bad.any():
            raise _at_rows(
                DataError(
                    f"column {name!r} must be numeric but holds {values[bad].iloc[0]!r}",
                    "Score with numbers (or blanks) in that column, as in the training data.",
                ),
                np.asarray(bad),
            )
        out = numbers.to_numpy()
        infinite = np.isinf(out)
        if infinite.any():
            raise _at_rows(
                DataError(
                    f"column {name!r} holds an infinite value in {int(infinite.sum())} row(s)",
                    "Score with finite numbers (or blanks) in that column, as in the training "
                    "data.",
                ),
                infinite,
            )
        return out

    def frame(self, X: pd.DataFrame) -> pd.DataFrame:
        """``X`` reduced to the model's features, in order, with the training dtypes.

        A categorical column has the training levels, in order, then the values the model
        never saw: :meth:`matrix` reads those as missing, and reasons can still quote them.
        """
        self._check_columns(X)
        columns: dict[str, Any] = {}
        for f in self.features:
            if f.kind == "categorical":
                new: dict[str, int] = {}
                codes = self._codes(f.name, read_column(X, f), new)
                columns[f.name] = pd.Categorical.from_codes(
                    codes, categories=[*self.categories[f.name], *new]
                )
            else:
                columns[f.name] = self._numeric(f.name, X[f.name])
        return pd.DataFrame(columns, index=X.index)

    def matrix(self, X: pd.DataFrame) -> np.ndarray:
        """``X`` as the float matrix the booster reads: numbers, and category codes (missing
        as ``nan``)."""
        self._check_columns(X)
        out = np.empty((len(X), len(self.features)), dtype="float64")
        for j, f in enumerate(self.features):
            if f.kind == "categorical":
                codes = self._codes(f.name, read_column(X, f)).astype("float64")
                codes[codes < 0] = np.nan
                out[:, j] = codes
            else:
                out[:, j] = self._numeric(f.name, X[f.name])
        return out

    @property
    def categorical_indices(self) -> list[int]:
        return [j for j, f in enumerate(self.features) if f.kind == "categorical"]

    @property
    def booster_names(self) -> list[str]:
        """Feature names as LightGBM accepts them (no JSON special characters), unique: a
        name that cleans to one already taken gets its position, and a further suffix in the
        rare case that is taken too (``a_b_2``, then ``a_b`` and ``a b``)."""
        names: list[str] = []
        taken: set[str] = set()
        for j, name in enumerate(self.names):
            clean = re.sub(r"[^0-9A-Za-z_]+", "_", name).strip("_") or f"f{j}"
            unique = clean if clean not in taken else f"{clean}_{j}"
            more = 0
            while unique in taken:
                more += 1
                unique = f"{clean}_{j}_{more}"
            names.append(unique)
            taken.add(unique)
        return names


def _at_rows(error: DataError, mask: np.ndarray) -> DataError:
    """``error`` with the positions of the rows it is about (``error.rows``), so that a
    caller that knows the rows' leads can name the first (:func:`leadscore.scoring`)."""
    error.rows = np.flatnonzero(mask)
    return error


def unseen_values(encoder: FeatureEncoder, prepared: pd.DataFrame) -> dict[str, pd.Series]:
    """Per categorical feature of ``encoder``, the values of ``prepared`` (typed by the model,
    :meth:`~leadscore.model.LeadScoringModel.prepare`) it never saw in training, one per lead
    that holds one: they are scored as missing."""
    out = {}
    for name, levels in encoder.categories.items():
        values = prepared[name]
        new = values.cat.codes.to_numpy() >= len(levels)
        if new.any():
            out[name] = values[new].astype(str)
    return out


def warn_unseen_values(counts: Mapping[str, int], examples: Mapping[str, str], rows: int) -> None:
    """One warning per categorical feature with values the model never saw in training
    (:func:`unseen_values`: ``counts`` of leads and an example each, of ``rows`` scored);
    shared by the batch scorer, per run, and the pyfunc, per request."""
    for name, n in counts.items():
        logger.warning(
            "%s of %s scored leads have a value of %r the model never saw in training (e.g. %r): "
            "it is scored as missing, so their scores may be off; retrain on data that holds it, "
            "or map it to a known value",
            f"{n:,}",
            f"{rows:,}",
            name,
            examples[name],
        )
