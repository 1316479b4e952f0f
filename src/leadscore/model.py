"""The one artefact training ships: a calibrated LightGBM lead-scoring model.

A :class:`LeadScoringModel` holds everything scoring needs, so no caller has to remember how
the training data was typed:

* the LightGBM booster (native categorical splits),
* the category levels of every categorical feature, re-applied to any input so that a column
  read as text, numbers or a differently ordered ``category`` scores the same, and (models
  trained since spellings are folded) so that ``paid search`` scores as ``Paid Search``,
* the probability calibrator and the stage thresholds,
* the feature metadata (group and human label of each column) and training metadata (data
  set, horizon, creation time, metrics, parameters).

It is saved as a folder with the booster as LightGBM's text format (``booster.txt``) and
everything else as JSON (``model.json``). There is no pickle anywhere: loading reads numbers
and text and cannot run code, so a model folder from elsewhere is safe to open.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from leadscore import __version__
from leadscore.calibration import ProbabilityCalibrator
from leadscore.errors import DataError, ModelError
from leadscore.explain import Explanation, explain
from leadscore.io import write_atomically
from leadscore.monitoring import DriftReference
from leadscore.schema import INTEGRAL_TEXT, MISSING_SPELLINGS, Feature, closest_names
from leadscore.stages import StageThresholds
from leadscore.subscores import SubScorer

logger = logging.getLogger(__name__)

MODEL_FORMAT = "leadscore-model"
FORMAT_VERSION = 1
BOOSTER_FILE = "booster.txt"
META_FILE = "model.json"


# --------------------------------------------------------------------------- encoding


_BOOLEAN_TEXT = {"true": "True", "false": "False"}

#: The currency symbols a written amount may carry, once, before or after the number.
CURRENCY_SYMBOLS = "$€£¥"

#: A number as spreadsheets and CRMs write it: a sign, a currency symbol before or after it,
#: commas grouping exactly three digits, or a trailing percent sign.
_WRITTEN_NUMBER = re.compile(
    rf"""
    (?P<sign>[+-]?)
    (?:(?P<symbol>[{re.escape(CURRENCY_SYMBOLS)}])\s*(?P<inner_sign>[+-]?))?
    (?P<amount>(?:\d{{1,3}}(?:,\d{{3}})+|\d+)(?:\.\d+)?|\.\d+)
    (?:\s*(?P<unit>[{re.escape(CURRENCY_SYMBOLS)}%]))?
    """,
    re.VERBOSE,
)


def _canon(value: object) -> str:
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
    """``values`` as category level text (:func:`_canon`); blank text is missing.

    Training types categorical columns with it and scoring reads levels the same way, so a
    column of codes matches whether it is read as floats, integers or text.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    table = np.array([None if _is_blank(u) else _canon(u) for u in uniques] + [None], dtype=object)
    return pd.Series(table[codes], index=values.index, dtype="str")


def parse_numbers(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """``values`` as float64 and the mask of values that are no number.

    The one reading of a numeric column, at training and at scoring, from any source: exports
    write a missing number as an empty or blank cell or as one of pandas' missing spellings
    (``NULL``, ``NA``, ``N/A``, ...), spreadsheets write ``12,500.75`` with thousands
    separators (only commas grouping exactly three digits count as such), amounts as
    ``$1,549,000``, ``-€12.50`` or ``12.50 €`` (one symbol of ``$ € £ ¥``, dropped: the
    column is read in its one currency) and shares as ``43.6%`` or ``-5 %``, read as the
    number divided by 100 (0.436), so ``43%`` and ``0.43`` in one column are one share.
    Currency codes (``1,200 USD``) and decimal commas (``12,50``) stay text: three letters
    may as well be a unit or a product code, and ``1,200`` is twelve hundred. A column
    holding text reads as numbers when it can.
    """
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
    sign, symbol, inner_sign, amount, unit = match.group(
        "sign", "symbol", "inner_sign", "amount", "unit"
    )
    if (symbol and unit) or (sign and inner_sign):
        return math.nan
    exponent = "e-2" if unit == "%" else ""
    return float(f"{sign or inner_sign or ''}{amount.replace(',', '')}{exponent}")


def category_levels(values: pd.Series) -> list[str]:
    """The levels of a training column in text form: its categories, or its sorted values."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        raw = list(values.cat.categories)
    else:
        raw = sorted(pd.unique(values.dropna()), key=_canon)
    return list(dict.fromkeys(_canon(v) for v in raw))


#: ``model.json``'s ``category_matching``: how values are matched to the levels. ``"exact"``
#: compares canonical text (:func:`_canon`), as every model saved before the field did;
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
    (:func:`_canon`, so ``3`` and ``" 3.0 "`` agree too) with case and spacing folded."""
    if isinstance(value, str):
        value = " ".join(value.split())
    return fold_text(_canon(value))


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
            key = _canon(value)
            counts[key] = counts.get(key, 0) + int(n)
    return counts


class FeatureEncoder:
    """Types a frame the way the booster was trained: floats, and codes of fixed levels.

    Parameters
    ----------
    features : the model inputs, in order.
    categories : levels of each categorical feature, as text; a value not among them is read
        as missing (an unseen landing page says nothing the model learnt). Values and levels
        are compared in their canonical text (:func:`_canon`), so ``4``, ``4.0`` and ``"4.0"``
        are one level.
    fold_spellings : also ignore case and spacing (:func:`spelling_key`), so ``PAID SEARCH``
        is the level ``Paid Search`` rather than an unseen value. :meth:`from_frame` learns
        levels that way (one level per spelling group). Off for models saved before folding
        (no ``category_matching`` in ``model.json``): they may hold two levels of one
        spelling group, each with its own splits, and even where they do not, a spelling
        they scored as missing would start to score as a level: their scores must not move.
    """

    def __init__(
        self,
        features: Sequence[Feature],
        categories: Mapping[str, Sequence[str]],
        *,
        fold_spellings: bool = False,
    ) -> None:
        self.features = tuple(features)
        self.categories = {k: list(v) for k, v in categories.items()}
        self.fold_spellings = fold_spellings
        for f in self.features:
            if f.kind == "categorical" and f.name not in self.categories:
                raise ModelError(
                    f"no category levels for feature {f.name!r}",
                    "Retrain the model or restore its model.json.",
                )
        self._positions: dict[str, dict[str, int]] = {}
        for name, levels in self.categories.items():
            positions = self._positions[name] = {}
            for i, level in enumerate(levels):
                key = self._key(level)
                if key in positions and _canon(level) != _canon(levels[positions[key]]):
                    raise ModelError(
                        f"the levels {levels[positions[key]]!r} and {level!r} of {name!r} "
                        "differ only in case or spacing, but the model matches them ignoring both",
                        "Retrain the model or restore its model.json as it was saved.",
                    )
                positions.setdefault(key, i)

    def _key(self, value: object) -> str:
        return spelling_key(value) if self.fold_spellings else _canon(value)

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
            levels = category_levels(X[f.name])
            counts = _level_counts(X[f.name])
            counts = {level: counts.get(level, 0) for level in levels}
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
        if not isinstance(X, pd.DataFrame):
            raise DataError(
                f"leads to score must be a DataFrame, not {type(X).__name__}",
                "Pass a pandas DataFrame with one column per model feature.",
            )
        missing = [name for name in self.names if name not in X.columns]
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise DataError(
                f"the leads to score have no column {missing[0]!r}"
                f"{closest_names(missing[0], X.columns)}{more}",
                "Add the column (empty values are fine); the model needs every feature it "
                "was trained on.",
            )

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
                lookup[i] = new.setdefault(_canon(value), n_levels + len(new))
        return lookup[codes]

    def _numeric(self, name: str, values: pd.Series) -> np.ndarray:
        numbers, bad = parse_numbers(values)
        if bad.any():
            raise DataError(
                f"column {name!r} must be numeric but holds {values[bad].iloc[0]!r}",
                "Score with numbers (or blanks) in that column, as in the training data.",
            )
        out = numbers.to_numpy()
        infinite = np.isinf(out)
        if infinite.any():
            raise DataError(
                f"column {name!r} holds an infinite value in {int(infinite.sum())} row(s)",
                "Score with finite numbers (or blanks) in that column, as in the training data.",
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
                codes = self._codes(f.name, X[f.name], new)
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
                codes = self._codes(f.name, X[f.name]).astype("float64")
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
        """Feature names as LightGBM accepts them (no JSON special characters)."""
        names: list[str] = []
        for j, name in enumerate(self.names):
            clean = re.sub(r"[^0-9A-Za-z_]+", "_", name).strip("_") or f"f{j}"
            names.append(clean if clean not in names else f"{clean}_{j}")
        return names


# --------------------------------------------------------------------------- the model


def to_jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars and arrays unpacked, non-finite floats as ``null``."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    return value


class LeadScoringModel:
    """Calibrated lead scoring: probability, stage and the metadata to explain them.

    Parameters
    ----------
    booster : the trained LightGBM booster (binary objective).
    encoder : the feature typing the booster was trained with.
    calibrator : a fitted :class:`~leadscore.calibration.ProbabilityCalibrator`.
    stages : fitted :class:`~leadscore.stages.StageThresholds`.
    metadata : training facts (``dataset``, ``horizon_days``, ``created_at``, ``metrics``, ...).
    sub_scorer : fitted fit and engagement sub-scores (:class:`~leadscore.subscores.SubScorer`).
    drift_reference : the inputs' and scores' distribution on the test fold, for
        ``leadscore report drift`` (:class:`~leadscore.monitoring.DriftReference`); models
        saved before it existed have none.

    Examples
    --------
    >>> model = LeadScoringModel.load("models/x_education")  # doctest: +SKIP
    >>> model.predict_proba(leads)                           # doctest: +SKIP
    """

    def __init__(
        self,
        booster: lgb.Booster,
        encoder: FeatureEncoder,
        calibrator: ProbabilityCalibrator,
        stages: StageThresholds,
        metadata: Mapping[str, Any] | None = None,
        sub_scorer: SubScorer | None = None,
        drift_reference: DriftReference | None = None,
    ) -> None:
        if booster.num_feature() != len(encoder.features):
            raise ModelError(
                f"the booster reads {booster.num_feature()} features but the model describes "
                f"{len(encoder.features)}",
                "Retrain the model; its files do not belong together.",
            )
        self.booster = booster
        self.encoder = encoder
        self.calibrator = calibrator
        self.stages = stages
        self.sub_scorer = sub_scorer
        self.drift_reference = drift_reference
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.metadata.setdefault(
            "created_at", datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
        )

    @property
    def features(self) -> tuple[Feature, ...]:
        """The model inputs, in order, with their group and marketer-readable label."""
        return self.encoder.features

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the booster's text: two models with the same fingerprint score alike."""
        text = self.booster.model_to_string(num_iteration=-1)
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def feature_names(self) -> list[str]:
        return self.encoder.names

    @property
    def mql_threshold(self) -> float:
        return self.stages.mql_threshold_

    @property
    def sql_threshold(self) -> float:
        return self.stages.sql_threshold_

    def prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        """The model's features of ``X`` with training dtypes (for explainers and reports)."""
        return self.encoder.frame(X)

    def encode(self, X: pd.DataFrame) -> np.ndarray:
        """The matrix the booster reads; pass it to ``booster.predict`` (e.g. SHAP values with
        ``pred_contrib=True``, which are log-odds before calibration)."""
        return self.encoder.matrix(X)

    def predict_margin(self, X: pd.DataFrame) -> np.ndarray:
        """Raw log-odds of the booster, before calibration."""
        if len(X) == 0:
            self.encoder._check_columns(X)
            return np.empty(0, dtype="float64")
        return np.asarray(self.booster.predict(self.encode(X), raw_score=True), dtype="float64")

    def predict_raw(self, X: pd.DataFrame) -> np.ndarray:
        """The booster's own probability, before calibration."""
        margin = self.predict_margin(X)
        return 0.5 * (1.0 + np.tanh(0.5 * margin))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated probability that each lead converts (one value per row)."""
        return self.calibrator.predict(self.predict_margin(X))

    def explain(self, X: pd.DataFrame) -> Explanation:
        """Each lead's contributions in calibrated probability points (base rate + sum = the
        probability), with the log-odds TreeSHAP values behind them; see
        :mod:`leadscore.explain`. The "sides" rescaling is the one the scored table uses."""
        return explain(
            self.booster,
            self.calibrator.predict,
            self.features,
            self.prepare(X),
            calibrate_on="log_odds",
            encode=self.encode,
            rescale="sides",
        )

    def predict_stage(self, X: pd.DataFrame) -> np.ndarray:
        """Stage of each lead: ``"lead"``, ``"mql"`` or ``"sql"``."""
        return self.stages.transform(self.predict_proba(X))

    # ------------------------------------------------------------------ files

    def to_dict(self) -> dict[str, Any]:
        """Everything but the booster, as JSON-ready values."""
        return to_jsonable(
            {
                "format": MODEL_FORMAT,
                "format_version": FORMAT_VERSION,
                "leadscore_version": __version__,
                "lightgbm_version": lgb.__version__,
                "booster_file": BOOSTER_FILE,
                "features": [asdict(f) for f in self.features],
                "categories": self.encoder.categories,
                "category_matching": "folded" if self.encoder.fold_spellings else "exact",
                "calibrator": self.calibrator.to_dict(),
                "stages": self.stages.to_dict(),
                "sub_scorer": None if self.sub_scorer is None else self.sub_scorer.to_dict(),
                "drift_reference": (
                    None if self.drift_reference is None else self.drift_reference.to_dict()
                ),
                "metadata": self.metadata,
            }
        )

    def to_texts(self) -> tuple[str, str]:
        """The saved folder's two files as text: ``(model.json, booster.txt)``.

        What :meth:`save` writes and what travels to Spark executors: a model crosses process
        and machine boundaries as text only, never as a pickled object.
        """
        booster_text = self.booster.model_to_string(num_iteration=-1)
        meta = self.to_dict()
        meta["booster_sha256"] = hashlib.sha256(booster_text.encode()).hexdigest()
        return json.dumps(meta, indent=2, allow_nan=False) + "\n", booster_text

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``booster.txt`` and ``model.json`` into ``directory`` (created if needed)."""
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        meta_text, booster_text = self.to_texts()
        for name, text in ((BOOSTER_FILE, booster_text), (META_FILE, meta_text)):
            write_atomically(target / name, lambda tmp, text=text: tmp.write_text(text))
        logger.info("saved model to %s", target)
        return target

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> LeadScoringModel:
        """Read a model folder written by :meth:`save`; runs no code from the folder."""
        source = Path(directory)
        meta_path, booster_path = source / META_FILE, source / BOOSTER_FILE
        if not meta_path.is_file() or not booster_path.is_file():
            raise ModelError(
                f"{source} is not a model folder (no {META_FILE} or {BOOSTER_FILE})",
                "Point to a folder written by `leadscore train`.",
            )
        try:
            meta_text, booster_text = meta_path.read_text(), booster_path.read_text()
        except UnicodeDecodeError as err:
            raise ModelError(
                f"{source} holds a file that is not text ({err})",
                "Restore the model folder as it was saved, or retrain.",
            ) from err
        return cls.from_texts(
            meta_text,
            booster_text,
            meta_name=str(meta_path),
            booster_name=str(booster_path),
        )

    @classmethod
    def from_texts(
        cls,
        meta_text: str,
        booster_text: str,
        *,
        meta_name: str = META_FILE,
        booster_name: str = BOOSTER_FILE,
    ) -> LeadScoringModel:
        """A model from the text of its two files (:meth:`to_texts`); runs no code from them.

        ``meta_name`` and ``booster_name`` say where the texts came from, in error messages.

        Raises
        ------
        ModelError
            The texts are no model, were written by a newer leadscore, do not belong together
            (checksum), or ``model.json`` is damaged: a field missing or of the wrong type, or
            a value no fitted model has (a cut-off that is no probability, MQL above SQL, a
            calibrator parameter that is not finite, isotonic points out of order).
        """
        try:
            meta = json.loads(meta_text)
        except json.JSONDecodeError as err:
            raise ModelError(
                f"{meta_name} is not valid JSON ({err})", "Restore the file or retrain the model."
            ) from err
        if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
            raise ModelError(
                f"{meta_name} is not a leadscore model file",
                "Point to a folder written by `leadscore train`.",
            )
        version = meta.get("format_version", FORMAT_VERSION)
        if not isinstance(version, int) or isinstance(version, bool):
            raise _damaged(meta_name, f"format_version {version!r} is not a whole number")
        if version > FORMAT_VERSION:
            raise ModelError(
                f"{meta_name} was written by a newer leadscore "
                f"({meta.get('leadscore_version')}, format {version})",
                "Upgrade leadscore to load it.",
            )
        expected = meta.get("booster_sha256")
        if not expected:
            raise ModelError(
                f"{meta_name} has no booster_sha256 (every model file is saved with one)",
                "Restore the model folder as it was saved, or retrain.",
            )
        if not isinstance(expected, str):
            raise _damaged(meta_name, "booster_sha256 is not a text")
        if hashlib.sha256(booster_text.encode()).hexdigest() != expected:
            raise ModelError(
                f"{booster_name} does not match its model.json (checksum differs)",
                "Restore the model folder as it was saved, or retrain.",
            )
        features, categories, metadata = _read_structure(meta, meta_name)
        try:  # the parts check their own values and raise ModelError naming the part
            calibrator = ProbabilityCalibrator.from_dict(meta["calibrator"])
            stages = StageThresholds.from_dict(meta["stages"])
            raw_sub = meta.get("sub_scorer")
            sub_scorer = None if raw_sub is None else SubScorer.from_dict(raw_sub)
            raw_drift = meta.get("drift_reference")
            drift = None if raw_drift is None else DriftReference.from_dict(raw_drift)
        except ModelError as err:
            raise ModelError(f"{meta_name}: {err.problem}", err.fix) from err
        try:
            booster = lgb.Booster(model_str=booster_text)
        except lgb.basic.LightGBMError as err:
            raise ModelError(
                f"{booster_name} is not a LightGBM model ({err})",
                "Restore the file or retrain the model.",
            ) from err
        folded = _read_matching(meta, meta_name) == "folded"
        try:  # levels one spelling apart cannot both be reached when matching folds them
            encoder = FeatureEncoder(features, categories, fold_spellings=folded)
        except ModelError as err:
            raise _damaged(meta_name, err.problem) from err
        return cls(booster, encoder, calibrator, stages, metadata, sub_scorer, drift)

    def __repr__(self) -> str:
        name = self.metadata.get("dataset", "?")
        return (
            f"LeadScoringModel(dataset={name!r}, features={len(self.features)}, "
            f"calibration={self.calibrator.method_!r}, "
            f"mql>={self.mql_threshold:.3f}, sql>={self.sql_threshold:.3f})"
        )


_FEATURE_FIELDS = frozenset(f.name for f in fields(Feature))


def _damaged(meta_name: str, what: str) -> ModelError:
    return ModelError(
        f"{meta_name} is damaged: {what}",
        "Retrain the model or restore its model.json as it was saved.",
    )


def _read_structure(
    meta: Mapping[str, Any], meta_name: str
) -> tuple[list[Feature], dict[str, list[str]], dict[str, Any]]:
    """The features, category levels and metadata of a parsed model file, with every type
    checked, and the calibrator, stages, sub-scorer and drift reference present as mappings
    (their values are checked by their own ``from_dict``).

    Types are checked one by one rather than by catching whatever a constructor raises, so
    that a damaged file is named as such and a bug in our own code still shows as one.
    """
    for key in ("features", "categories", "calibrator", "stages"):
        if key not in meta:
            raise _damaged(meta_name, f"it has no {key!r}")
    for key in ("categories", "calibrator", "stages"):
        if not isinstance(meta[key], dict):
            raise _damaged(meta_name, f"{key} is {type(meta[key]).__name__}, not a mapping")
    for key in ("sub_scorer", "drift_reference", "metadata"):
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            raise _damaged(meta_name, f"{key} is {type(meta[key]).__name__}, not a mapping")

    raw_features = meta["features"]
    if not isinstance(raw_features, list) or not raw_features:
        raise _damaged(meta_name, "features is not a list of features")
    features: list[Feature] = []
    for i, raw in enumerate(raw_features):
        if not isinstance(raw, dict) or not {"name", "group", "label", "kind"} <= raw.keys():
            raise _damaged(meta_name, f"feature {i} lacks its name, group, label or kind")
        unknown = sorted(set(raw) - _FEATURE_FIELDS)
        if unknown:
            raise _damaged(meta_name, f"feature {i} has an unknown field {unknown[0]!r}")
        optional = ("sentence", "missing_sentence")
        if not all(isinstance(v, str) or (k in optional and v is None) for k, v in raw.items()):
            raise _damaged(meta_name, f"feature {i} has a field that is not a text")
        try:  # Feature checks its kind and group itself
            features.append(Feature(**raw))
        except ValueError as err:
            raise _damaged(meta_name, str(err)) from err
    names = [f.name for f in features]
    if len(set(names)) != len(names):
        raise _damaged(meta_name, "a feature name appears twice")

    categories: dict[str, list[str]] = {}
    for name, levels in meta["categories"].items():
        if not isinstance(levels, list) or not all(isinstance(v, str) for v in levels):
            raise _damaged(meta_name, f"the levels of {name!r} are not a list of texts")
        categories[name] = levels
    return features, categories, dict(meta.get("metadata") or {})


def _read_matching(meta: Mapping[str, Any], meta_name: str) -> str:
    """``category_matching`` of a parsed model file; ``"exact"`` when absent, as every model
    saved before spellings were folded matched levels exactly and must score as it did."""
    matching = meta.get("category_matching", "exact")
    if matching not in CATEGORY_MATCHING:
        raise _damaged(
            meta_name,
            f"category_matching is {matching!r}, not one of {', '.join(CATEGORY_MATCHING)}",
        )
    return str(matching)
