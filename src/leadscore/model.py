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

import contextlib
import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Mapping
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
from leadscore.encoding import (
    CATEGORY_MATCHING,
    VALUE_READINGS,
    FeatureEncoder,
    expect_frame,
    unseen_values,
    warn_unseen_values,
)
from leadscore.errors import ModelError
from leadscore.explain import MIN_CONTRIBUTION, Explanation, explain, explain_batch
from leadscore.io import write_text_atomically
from leadscore.monitoring import DriftReference
from leadscore.schema import Feature
from leadscore.stages import StageThresholds
from leadscore.subscores import SubScorer

logger = logging.getLogger(__name__)

MODEL_FORMAT = "leadscore-model"
FORMAT_VERSION = 1
BOOSTER_FILE = "booster.txt"
META_FILE = "model.json"

#: The booster as :meth:`LeadScoringModel.save` stages it beside an older model's files, named
#: by its SHA-256; ``model.json`` may name such a file while a save is under way.
STAGED_BOOSTER = re.compile(r"booster-[0-9a-f]{64}\.txt")


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
        _check_booster_names(booster, encoder)
        self.booster = booster
        self.encoder = encoder
        self.calibrator = calibrator
        self.stages = stages
        self.sub_scorer = sub_scorer
        self.drift_reference = drift_reference
        self.metadata: dict[str, Any] = dict(metadata or {})
        # never offered as the closest match for a missing input (a leaky column the spec left out)
        self.encoder.excluded = tuple(self.metadata.get("excluded") or {})
        self.metadata.setdefault(
            "created_at", datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
        )

    @property
    def features(self) -> tuple[Feature, ...]:
        """The model inputs, in order, with their group and marketer-readable label."""
        return self.encoder.features

    @property
    def fingerprint(self) -> str:
        """SHA-256 of everything that makes the model's output: the booster's text and, as
        canonical JSON, its features and categories, calibrator, stage cut-offs, sub-scorer and
        the tokens it reads as missing. Two models with the same fingerprint score, stage and
        explain alike. A model folder's version is its first 12 characters, so a retrain that
        changed only the stage policy is a new version: hashing the booster alone had recorded
        two policies' stages under one version, and a switch between them went unseen."""
        record = self.to_dict()
        shaping = {
            key: record[key]
            for key in (
                "features",
                "categories",
                "category_matching",
                "calibrator",
                "stages",
                "sub_scorer",
            )
        }
        shaping["missing_values"] = list(self.missing_values)
        digest = hashlib.sha256(self.booster.model_to_string(num_iteration=-1).encode())
        digest.update(json.dumps(shaping, sort_keys=True).encode())
        return digest.hexdigest()

    @property
    def feature_names(self) -> list[str]:
        return self.encoder.names

    @property
    def mql_threshold(self) -> float:
        return self.stages.mql_threshold_

    @property
    def sql_threshold(self) -> float:
        return self.stages.sql_threshold_

    @property
    def missing_values(self) -> tuple[str, ...]:
        """The spec's "not answered" tokens (x_education's ``Select``), as recorded at
        training (``metadata["missing_values"]``): training read them as missing, so the
        model reads them so too, from any caller. Empty for event-data models and for models
        saved before the tokens were recorded, which read every value as before."""
        return tuple(self.metadata.get("missing_values") or ())

    def without_missing_tokens(self, X: pd.DataFrame) -> pd.DataFrame:
        """``X`` with the spec's "not answered" tokens in the model's feature columns made
        missing (trimmed, any case, as the spec's reader matches them); ``X`` itself when
        there is nothing to replace.

        The batch and Spark scorers read a table through the spec, which blanks the tokens
        before the model sees them; the MLflow pyfunc and its Spark UDF get the CRM's rows
        as they are. Without this, ``Select`` there was a category the model never saw: the
        same score (it reads as missing), but a warning to retrain for most leads, and in a
        numeric column an error. The categories :meth:`prepare` gives a column read another
        way (``read_as``: the ``missing`` kind of an e-mail domain) are left alone: values,
        not tokens. A training level never matches a token, as the spec blanked them first.
        """
        tokens = {t.strip().lower() for t in self.missing_values}
        if not tokens or not isinstance(X, pd.DataFrame):
            return X
        out = X
        for f in self.features:
            if f.name not in X.columns or not _holds_raw_text(X[f.name], f):
                continue
            values = X[f.name]
            codes, uniques = pd.factorize(values, use_na_sentinel=True)
            hits = [
                i
                for i, u in enumerate(uniques)
                if isinstance(u, str) and u.strip().lower() in tokens
            ]
            if hits:
                out = X.copy(deep=False) if out is X else out
                out[f.name] = values.mask(np.isin(codes, hits))
        return out

    def prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        """The model's features of ``X`` with training dtypes (for explainers and reports);
        the spec's "not answered" tokens read as missing (:meth:`without_missing_tokens`)."""
        expect_frame(X)
        return self.encoder.frame(self.without_missing_tokens(X))

    def encode(self, X: pd.DataFrame) -> np.ndarray:
        """The matrix the booster reads; pass it to ``booster.predict`` (e.g. SHAP values with
        ``pred_contrib=True``, which are log-odds before calibration)."""
        expect_frame(X)
        return self.encoder.matrix(self.without_missing_tokens(X))

    def predict_margin(self, X: pd.DataFrame) -> np.ndarray:
        """Raw log-odds of the booster, before calibration."""
        expect_frame(X)  # before len(): a FeatureTable has none
        if len(X) == 0:
            self.encoder._check_columns(X)
            return np.empty(0, dtype="float64")
        return np.asarray(self.booster.predict(self.encode(X), raw_score=True), dtype="float64")

    def predict_raw(self, X: pd.DataFrame) -> np.ndarray:
        """The booster's own probability, before calibration."""
        margin = self.predict_margin(X)
        return 0.5 * (1.0 + np.tanh(0.5 * margin))

    def predict_proba(self, X: pd.DataFrame, *, warn_unseen: bool = True) -> np.ndarray:
        """Calibrated probability that each lead converts (one value per row).

        A category the model never saw in training scores as missing; with ``warn_unseen``
        one warning per such feature says how many rows hold one (as ``leadscore score``
        and the pyfunc do), so that scoring new data from Python does not hide it. The
        batch scorer and the pyfunc count them per run or request and pass ``False``.
        """
        margin = self.predict_margin(X)
        if warn_unseen and len(X):
            unseen = unseen_values(self.encoder, self.prepare(X))
            warn_unseen_values(
                {name: len(values) for name, values in unseen.items()},
                {name: values.iloc[0] for name, values in unseen.items()},
                len(X),
            )
        return self.calibrator.predict(margin)

    @property
    def base_rate(self) -> float:
        """The calibrated probability of a typical lead: where every lead's reasons start
        from (``base_rate`` of :meth:`explain`, the same for every lead)."""
        return self.explain(pd.DataFrame(columns=[f.name for f in self.features])).base_rate

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

    def explain_batch(
        self, X: pd.DataFrame, top_n: int = 3, *, min_contribution: float = MIN_CONTRIBUTION
    ) -> pd.DataFrame:
        """Reasons for and against, ``reasons_json`` and the fit and engagement sub-scores of
        many leads, as the scored table holds them: :func:`leadscore.explain.explain_batch`
        with this model's calibration, encoding and sub-scorer, the same settings as
        :meth:`explain`, so a lead's reasons read the same from the scorer, Spark and the
        lead card."""
        return explain_batch(
            self.booster,
            self.calibrator.predict,
            self.features,
            self.prepare(X),
            top_n,
            calibrate_on="log_odds",
            sub_scorer=self.sub_scorer,
            min_contribution=min_contribution,
            encode=self.encode,
            rescale="sides",
        )

    def predict_stage(self, X: pd.DataFrame, *, warn_unseen: bool = True) -> np.ndarray:
        """Stage of each lead: ``"lead"``, ``"mql"`` or ``"sql"`` (``warn_unseen`` as in
        :meth:`predict_proba`)."""
        return self.stages.transform(self.predict_proba(X, warn_unseen=warn_unseen))

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
                "features": [_feature_record(f) for f in self.features],
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
        return self._meta_text(booster_text, BOOSTER_FILE), booster_text

    def _meta_text(self, booster_text: str, booster_file: str) -> str:
        """``model.json``'s text for ``booster_text`` saved as ``booster_file``."""
        meta = self.to_dict()
        meta["booster_file"] = booster_file
        meta["booster_sha256"] = hashlib.sha256(booster_text.encode()).hexdigest()
        return json.dumps(meta, indent=2, allow_nan=False) + "\n"

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``booster.txt`` and ``model.json`` into ``directory`` (created if needed),
        replacing an older model's two files there and leaving any other file alone.

        All or nothing for whoever loads the folder: it holds the older model or this one,
        never one's booster with the other's ``model.json``, whether the save fails (a full
        disk) or is killed at any point. Two files cannot be replaced at once, so the booster
        is first written under a name of its own (its checksum, :data:`STAGED_BOOSTER`) and
        ``model.json`` naming it is renamed into place: that rename is the moment the folder
        switches models. ``booster.txt`` and a ``model.json`` naming it then follow, and the
        staged copy goes, so that a saved folder is the two files every reader expects.
        """
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        meta_text, booster_text = self.to_texts()
        staged = target / f"booster-{hashlib.sha256(booster_text.encode()).hexdigest()}.txt"
        ours = not staged.exists()  # else the older model's, left by a save stopped half-way
        write_text_atomically(staged, booster_text)
        try:
            write_text_atomically(target / META_FILE, self._meta_text(booster_text, staged.name))
        except BaseException:
            if ours:  # the older model stays, as it was
                with contextlib.suppress(OSError):
                    staged.unlink(missing_ok=True)
            raise
        write_text_atomically(target / BOOSTER_FILE, booster_text)
        write_text_atomically(target / META_FILE, meta_text)
        for path in target.iterdir():  # this save's and those of saves stopped before it
            if STAGED_BOOSTER.fullmatch(path.name) and path.is_file():
                with contextlib.suppress(OSError):  # saved all the same; a later save retries
                    path.unlink(missing_ok=True)
        logger.info("saved model to %s", target)
        return target

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> LeadScoringModel:
        """Read a model folder written by :meth:`save`; runs no code from the folder.

        The booster is the file ``model.json`` names (``booster_file``): ``booster.txt``, or
        the staged copy of a save that was stopped after it switched models (:meth:`save`).
        """
        source = Path(directory)
        meta_path = source / META_FILE
        if not meta_path.is_file():
            raise _not_a_model_folder(source)
        meta_text = _read_model_text(meta_path, source)
        meta = _parse_meta(meta_text, str(meta_path))
        booster_path = source / _booster_file(meta, str(meta_path))
        if not booster_path.is_file():
            raise _not_a_model_folder(source)
        booster_text = _read_model_text(booster_path, source)
        return cls._from_meta(meta, booster_text, str(meta_path), str(booster_path))

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
            (checksum, or the booster's features are not the model's, in order), or
            ``model.json`` is damaged: a field missing or of the wrong type, or a value no
            fitted model has (a cut-off that is no probability, MQL above SQL, a calibrator
            parameter that is not finite, isotonic points out of order, category levels of a
            feature that is not categorical, sub-score quantiles out of order).
        """
        return cls._from_meta(
            _parse_meta(meta_text, meta_name), booster_text, meta_name, booster_name
        )

    @classmethod
    def _from_meta(
        cls, meta: Any, booster_text: str, meta_name: str, booster_name: str
    ) -> LeadScoringModel:
        """:meth:`from_texts` once ``model.json`` is parsed."""
        _booster_file(meta, meta_name)  # checks the format first
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
        unsafe = booster_text_problem(booster_text)
        if unsafe is not None:
            raise ModelError(
                f"{booster_name} is not a LightGBM model text that can be read safely: {unsafe}",
                "Restore the model folder as it was saved, or retrain.",
            )
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
        try:  # before the parts: features out of order would read as a damaged part
            _check_booster_names(booster, encoder)
        except ModelError as err:
            raise ModelError(f"{booster_name} and {meta_name}: {err.problem}", err.fix) from err
        try:  # the parts check their own values and raise ModelError naming the part
            calibrator = ProbabilityCalibrator.from_dict(meta["calibrator"])
            stages = StageThresholds.from_dict(meta["stages"])
            raw_sub = meta.get("sub_scorer")
            sub_scorer = (
                None if raw_sub is None else SubScorer.from_dict(raw_sub, columns=encoder.names)
            )
            raw_drift = meta.get("drift_reference")
            drift = None if raw_drift is None else DriftReference.from_dict(raw_drift)
        except ModelError as err:
            raise ModelError(f"{meta_name}: {err.problem}", err.fix) from err
        return cls(booster, encoder, calibrator, stages, metadata, sub_scorer, drift)

    def __repr__(self) -> str:
        name = self.metadata.get("dataset", "?")
        return (
            f"LeadScoringModel(dataset={name!r}, features={len(self.features)}, "
            f"calibration={self.calibrator.method_!r}, "
            f"mql>={self.mql_threshold:.3f}, sql>={self.sql_threshold:.3f})"
        )


_FEATURE_FIELDS = frozenset(f.name for f in fields(Feature))


def _holds_raw_text(values: pd.Series, feature: Feature) -> bool:
    """Whether ``values`` may hold a "not answered" token as written: text, or categories
    other than those :meth:`LeadScoringModel.prepare` gives a column read another way."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return feature.read_as is None
    return ptypes.is_string_dtype(values.dtype) or ptypes.is_object_dtype(values.dtype)


def _feature_record(feature: Feature) -> dict[str, Any]:
    """A feature as ``model.json`` holds it: the fields that are set. An optional field left
    unset is left out rather than written as null, so a model that uses none of the newer
    fields (every flat-table model) reads in releases that came before them."""
    return {k: v for k, v in asdict(feature).items() if v is not None}


#: The most leaves a LightGBM tree may have (its own bound on ``num_leaves``).
MAX_TREE_LEAVES = 131_072


def booster_text_problem(text: str) -> str | None:
    """What makes ``text`` unsafe to hand to LightGBM's parser, or ``None``.

    LightGBM reads a model text in C++ and trusts its arrays: a tree whose split names a
    feature that does not exist, a child index out of range, fewer leaf values than leaves, a
    huge ``num_leaves`` or a text cut short aborts the whole process ("terminate called
    without an active exception"), a served model included, with no exception to catch. The
    checksum in ``model.json`` catches damage, not a crafted folder whose checksum was
    recomputed; so every tree's shape is checked here first, in Python (10 ms for the 274
    trees of ``make run``'s model).
    """
    if not text.startswith("tree\n"):
        return "it does not start as a LightGBM model text"
    head, trees_start, rest = text.partition("\nTree=")
    if not trees_start:
        return "it holds no tree"
    if "\nend of trees" not in rest:
        return "it is cut short (no 'end of trees')"
    header = dict(line.split("=", 1) for line in head.splitlines() if "=" in line)
    n_features = _whole(header.get("max_feature_idx"))
    if n_features is None or n_features < 0:
        return "its max_feature_idx is not a whole number"
    n_features += 1
    if len(header.get("feature_names", "").split()) != n_features:
        return f"it names {len(header.get('feature_names', '').split())} features, not {n_features}"
    for block in rest.split("\nend of trees", 1)[0].split("\nTree="):
        name, _, fields_text = block.partition("\n")
        tree = dict(line.split("=", 1) for line in fields_text.splitlines() if "=" in line)
        problem = _tree_problem(tree, n_features)
        if problem is not None:
            return f"tree {name.strip()[:20]} {problem}"
    return None


def _whole(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _numbers(tree: Mapping[str, str], key: str) -> list[float] | None:
    try:
        return [float(v) for v in tree.get(key, "").split()]
    except ValueError:
        return None


def _tree_problem(tree: Mapping[str, str], n_features: int) -> str | None:
    """What is wrong with one tree's fields (see :func:`booster_text_problem`), or None."""
    leaves, n_cat = _whole(tree.get("num_leaves")), _whole(tree.get("num_cat", "0"))
    if leaves is None or not 1 <= leaves <= MAX_TREE_LEAVES:
        return f"has num_leaves {tree.get('num_leaves', '')[:20]!r}"
    if n_cat is None or not 0 <= n_cat < leaves:
        return f"has num_cat {tree.get('num_cat', '')[:20]!r}"
    values = _numbers(tree, "leaf_value")
    if values is None or len(values) != leaves:
        return f"has {0 if values is None else len(values)} leaf values for {leaves} leaves"
    if leaves == 1:
        return None
    arrays = {}
    for key in ("split_feature", "threshold", "decision_type", "left_child", "right_child"):
        got = _numbers(tree, key)
        if got is None or len(got) != leaves - 1:
            return f"has {key} of {0 if got is None else len(got)} values for {leaves - 1} splits"
        arrays[key] = got
    if any(not (0 <= f < n_features and f == int(f)) for f in arrays["split_feature"]):
        return f"splits on a feature outside 0 to {n_features - 1}"
    for key in ("left_child", "right_child"):
        if any(not (-leaves <= c <= leaves - 2 and c == int(c)) for c in arrays[key]):
            return f"has a {key} outside the tree"
    categorical = [
        t for t, d in zip(arrays["threshold"], arrays["decision_type"], strict=True) if int(d) & 1
    ]
    if categorical or n_cat:
        bounds = _numbers(tree, "cat_boundaries")
        cats = _numbers(tree, "cat_threshold")
        if bounds is None or cats is None or len(bounds) != n_cat + 1:
            return "has categorical splits without their category sets"
        if bounds[0] != 0 or bool(np.any(np.diff(bounds) < 0)):
            return "has category sets out of order"
        if bounds[-1] != len(cats):
            return "has category sets of the wrong length"
        if any(not (0 <= t < n_cat and t == int(t)) for t in categorical):
            return "has a categorical split on a category set that does not exist"
    return None


def _check_booster_names(booster: lgb.Booster, encoder: FeatureEncoder) -> None:
    """Refuse a booster whose columns are not the encoder's features, in order.

    The booster reads a matrix by position: a ``model.json`` that lists two features the other
    way round, or a booster from another training, scored every lead on the wrong columns
    without a word. Training names the booster's columns :attr:`FeatureEncoder.booster_names`
    (the features' names made safe for LightGBM), so that is what the booster must hold.
    """
    stored, expected = booster.feature_name(), encoder.booster_names
    if len(stored) != len(expected):
        raise ModelError(
            f"the booster reads {len(stored)} features but the model describes {len(expected)}",
            "Retrain the model; its files do not belong together.",
        )
    for j, (held, wanted) in enumerate(zip(stored, expected, strict=True)):
        if held != wanted:
            shown = encoder.names[j]
            as_read = "" if shown == wanted else f" (named {wanted!r} in a booster)"
            raise ModelError(
                f"the booster's feature {j + 1} is {held!r} but the model's is {shown!r}{as_read}",
                "Retrain the model; its files do not belong together.",
            )


def _not_a_model_folder(source: Path) -> ModelError:
    return ModelError(
        f"{source} is not a model folder (no {META_FILE} or {BOOSTER_FILE})",
        "Point to a folder written by `leadscore train`.",
    )


def _read_model_text(path: Path, source: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ModelError(
            f"{source} holds a file that is not text ({err})",
            "Restore the model folder as it was saved, or retrain.",
        ) from err


def _parse_meta(meta_text: str, meta_name: str) -> Any:
    """``model.json`` parsed; any text that is no JSON a model holds is a :class:`ModelError`
    (a number of thousands of digits is a ``ValueError``, arrays nested thousands deep a
    ``RecursionError``: both were tracebacks)."""
    try:
        return json.loads(meta_text)
    except json.JSONDecodeError as err:
        raise ModelError(
            f"{meta_name} is not valid JSON ({err})", "Restore the file or retrain the model."
        ) from err
    except ValueError as err:
        raise _damaged(meta_name, f"it holds a value JSON cannot read ({err})") from err
    except RecursionError:
        raise _damaged(meta_name, "it nests values too deep to read") from None


def _check_format(meta: Any, meta_name: str) -> None:
    """Refuse parsed JSON that is no leadscore model, or one of a newer format."""
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


def _booster_file(meta: Any, meta_name: str) -> str:
    """The booster's file name in a parsed ``model.json`` (format checked first): a bare name,
    ``booster.txt`` or a staged copy (:data:`STAGED_BOOSTER`), never a path that could lead
    out of the folder. ``booster.txt`` when absent."""
    _check_format(meta, meta_name)
    name = meta.get("booster_file", BOOSTER_FILE)
    if not isinstance(name, str) or not (name == BOOSTER_FILE or STAGED_BOOSTER.fullmatch(name)):
        raise _damaged(
            meta_name, f"booster_file {name!r} is not {BOOSTER_FILE} or booster-<sha256>.txt"
        )
    return name


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
        bound = raw.get("low_below")
        raw = {k: v for k, v in raw.items() if k != "low_below"}
        optional = (
            "sentence",
            "missing_sentence",
            "zero_sentence",
            "low_sentence",
            "fact",
            "read_as",
        )
        if not all(isinstance(v, str) or (k in optional and v is None) for k, v in raw.items()):
            raise _damaged(meta_name, f"feature {i} has a field that is not a text")
        if raw.get("read_as") is not None and raw["read_as"] not in VALUE_READINGS:
            raise _damaged(meta_name, f"feature {i} is read as unknown {raw['read_as']!r}")
        if bound is not None:
            if not isinstance(bound, int | float) or isinstance(bound, bool):
                raise _damaged(meta_name, f"feature {i} has a low_below that is not a number")
            if not math.isfinite(bound):
                raise _damaged(meta_name, f"feature {i} has a low_below that is not finite")
            raw["low_below"] = float(bound)
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
    metadata = dict(meta.get("metadata") or {})
    tokens = metadata.get("missing_values")  # absent in models saved before it was recorded
    if tokens is not None and (
        not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens)
    ):
        raise _damaged(meta_name, "metadata.missing_values is not a list of texts")
    _check_metadata(metadata, meta_name)
    return features, categories, metadata


#: The metadata fields that scoring, reports and the registry read, with the check each must
#: pass where present: a hand-edited ``{"a": 1}`` as the data set had been recorded as the
#: model name "{'a': 1}" on every scored row, and ``"ninety"`` days read as a horizon.
_METADATA_CHECKS: dict[str, tuple[str, Any]] = {
    "dataset": ("a text", lambda v: isinstance(v, str) and v != ""),
    "data_form": ("events or flat", lambda v: v in ("events", "flat")),
    "horizon_days": (
        "a whole number of days",
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
    ),
    "warnings": (
        "a list of texts",
        lambda v: isinstance(v, list) and all(isinstance(w, str) for w in v),
    ),
    "metrics": ("a mapping", lambda v: isinstance(v, dict)),
    "feature_importance": ("a mapping", lambda v: isinstance(v, dict)),
}


def _check_metadata(metadata: Mapping[str, Any], meta_name: str) -> None:
    """Refuse a metadata field of the wrong type (:data:`_METADATA_CHECKS`); absent or null
    fields are those of models saved before the field was written."""
    for key, (what, ok) in _METADATA_CHECKS.items():
        value = metadata.get(key)
        if value is not None and not ok(value):
            raise _damaged(meta_name, f"metadata.{key} is {value!r:.60}, not {what}")


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
