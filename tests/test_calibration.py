"""Probability calibration: never worse on held-out data, monotone, JSON round trip."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from leadscore.calibration import ProbabilityCalibrator
from leadscore.errors import ModelError


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


#: Ways a booster's log-odds can be off from the truth, the first one not at all.
DISTORTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "calibrated": lambda z: z,
    "overconfident": lambda z: 2.5 * z,
    "underconfident": lambda z: 0.4 * z,
    "shifted": lambda z: z + 1.0,
    "bent": lambda z: z**3 / 3 + 0.5,
}


def _draw(
    seed: int, n: int, distort: Callable[[np.ndarray], np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(-0.8, 1.5, n)
    y = (rng.random(n) < _sigmoid(z)).astype(int)
    return distort(z), y


def _brier(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("distortion", list(DISTORTIONS))
def test_auto_calibration_never_raises_the_held_out_brier_score(seed: int, distortion: str) -> None:
    distort = DISTORTIONS[distortion]
    s_cal, y_cal = _draw(seed, 1500, distort)
    s_new, y_new = _draw(seed + 100, 20000, distort)
    cal = ProbabilityCalibrator("auto").fit(s_cal, y_cal)
    raw, calibrated = _brier(_sigmoid(s_new), y_new), _brier(cal.predict(s_new), y_new)
    assert calibrated <= raw + 1e-3
    if distortion != "calibrated":
        assert cal.method_ != "identity"
        assert calibrated < raw - 2e-3


def test_auto_keeps_identity_when_nothing_helps() -> None:
    picks = [
        ProbabilityCalibrator("auto").fit(*_draw(seed, 1500, DISTORTIONS["calibrated"])).method_
        for seed in range(5)
    ]
    assert picks.count("identity") >= 3


@pytest.mark.parametrize("method", ["auto", "isotonic", "sigmoid", "identity"])
def test_calibrated_probabilities_are_monotone_and_in_range(method: str) -> None:
    s, y = _draw(3, 2000, DISTORTIONS["bent"])
    cal = ProbabilityCalibrator(method).fit(s, y)
    grid = np.linspace(-20, 20, 2001)
    p = cal.predict(grid)
    assert np.all(np.diff(p) >= 0)
    assert p.min() > 0 and p.max() < 1


@pytest.mark.parametrize("method", ["auto", "sigmoid", "isotonic"])
def test_scores_ranking_leads_backwards_never_give_a_decreasing_map(method: str, caplog) -> None:
    """A booster that ranks the calibration fold backwards (drift) must not be "fixed" by a
    decreasing sigmoid, which would reverse every ranking and every explanation: the map
    stays non-decreasing and, with nothing to go on, gives every lead the fold's rate."""
    s, y = _draw(4, 1500, lambda z: -z)
    cal = ProbabilityCalibrator(method).fit(s, y)
    p = cal.predict(np.linspace(-10, 10, 401))
    assert np.all(np.diff(p) >= 0)
    if cal.method_ != "identity":
        assert np.ptp(p) == pytest.approx(0.0, abs=0.02)
        assert p.mean() == pytest.approx(y.mean(), abs=0.02)
        assert "do not rank the calibration fold" in caplog.text


def test_isotonic_keeps_the_ranking_of_the_scores() -> None:
    s_cal, y_cal = _draw(4, 2000, DISTORTIONS["overconfident"])
    s_new, y_new = _draw(5, 5000, DISTORTIONS["overconfident"])
    cal = ProbabilityCalibrator("isotonic").fit(s_cal, y_cal)
    assert roc_auc_score(y_new, cal.predict(s_new)) == pytest.approx(
        roc_auc_score(y_new, s_new), abs=2e-3
    )


@pytest.mark.parametrize("method", ["auto", "isotonic", "sigmoid", "identity"])
def test_json_round_trip_gives_identical_probabilities(method: str) -> None:
    s, y = _draw(6, 1500, DISTORTIONS["shifted"])
    cal = ProbabilityCalibrator(method).fit(s, y)
    back = ProbabilityCalibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
    grid = np.linspace(-8, 8, 501)
    assert back.method_ == cal.method_
    np.testing.assert_array_equal(back.predict(grid), cal.predict(grid))


def test_sigmoid_recovers_known_parameters() -> None:
    rng = np.random.default_rng(0)
    s = rng.normal(size=20000)
    y = (rng.random(20000) < _sigmoid(2 * s - 1)).astype(int)
    cal = ProbabilityCalibrator("sigmoid").fit(s, y)
    assert cal.params_["a"] == pytest.approx(2, abs=0.1)
    assert cal.params_["b"] == pytest.approx(-1, abs=0.1)


def test_single_class_keeps_raw_scores_and_bad_method_raises() -> None:
    cal = ProbabilityCalibrator("isotonic").fit(np.array([0.0, 1.0, 2.0]), np.zeros(3))
    assert cal.method_ == "identity"
    with pytest.raises(ModelError, match="unknown calibration method 'platt'"):
        ProbabilityCalibrator("platt").fit(np.array([0.0, 1.0]), np.array([0, 1]))  # type: ignore[arg-type]


def test_incomplete_json_raises_model_error() -> None:
    with pytest.raises(ModelError, match="calibrator"):
        ProbabilityCalibrator.from_dict({"method": "auto"})


def _saved(method: str = "sigmoid", **params: object) -> dict:
    return {
        "method": "auto",
        "cv": 5,
        "random_state": 0,
        "method_": method,
        "params_": params,
        "brier_oof_": {},
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_saved(a="nan", b=1.0), "sigmoid parameters"),
        (_saved(a=float("nan"), b=1.0), "sigmoid parameters"),
        (_saved(a=1.0, b=float("inf")), "sigmoid parameters"),
        (_saved(a=True, b=0.0), "sigmoid parameters"),
        (_saved("sigmoid"), "sigmoid parameters"),
        (_saved(a=-2.0, b=0.0), "slope a=-2.0 is negative"),
        (_saved("isotonic", x=[1.0, 0.0], y=[0.1, 0.9]), "x is not sorted"),
        (_saved("isotonic", x=[0.0, 1.0], y=[0.9, 0.1]), "y decreases"),
        (_saved("isotonic", x=[0.0, 1.0], y=[0.1, 1.5]), "leaves \\[0, 1\\]"),
        (_saved("isotonic", x=[], y=[]), "0 and 0 points"),
        (_saved("isotonic", x=[0.0, 1.0], y=[0.5]), "2 and 1 points"),
        (_saved("isotonic", x=[0.0, None], y=[0.1, 0.2]), "not a finite number"),
        (_saved("isotonic", x="0,1", y=[0.1, 0.2]), "not lists"),
        ({**_saved(a=1.0, b=0.0), "params_": [1, 2]}, "params_ is list"),
        ({**_saved(a=1.0, b=0.0), "cv": "5"}, "whole number"),
        ({**_saved(a=1.0, b=0.0), "method": "platt"}, "method 'platt'"),
        ({**_saved(a=1.0, b=0.0), "brier_oof_": [0.1]}, "brier_oof_"),
        ([1, 2], "not a mapping"),
    ],
)
def test_a_damaged_calibrator_is_refused_when_read(data: object, message: str) -> None:
    """Values that would turn every probability into nan, or into a map that is not monotone
    or leaves [0, 1], fail when the model file is read: the file is blamed, not the leads."""
    with pytest.raises(ModelError, match=f"calibrator in the model file is damaged: .*{message}"):
        ProbabilityCalibrator.from_dict(data)  # type: ignore[arg-type]


def test_a_saved_calibrator_reads_back_with_its_checks_passing() -> None:
    """The checks accept every method :meth:`fit` produces, a one-point isotonic map too."""
    one_point = ProbabilityCalibrator.from_dict(_saved("isotonic", x=[0.2], y=[0.3]))
    np.testing.assert_array_equal(one_point.predict(np.array([-5.0, 5.0])), [0.3, 0.3])
    sigmoid = ProbabilityCalibrator.from_dict(_saved(a=2, b=-1))
    assert sigmoid.params_ == {"a": 2.0, "b": -1.0}


def test_auto_keeps_a_leads_snapshots_together_when_it_compares_methods() -> None:
    """Event data holds a lead at several as-of dates. Split by row, a lead's snapshots
    fall on both sides of the cross-fitting and isotonic wins by fitting the lead's own other
    rows (3 of 5 seeds on scores that are calibrated already); split by lead, with the gain's
    noise counted per lead, identity is kept every time."""
    picked = {"rows": [], "leads": []}
    for seed in range(5):
        rng = np.random.default_rng(seed)
        s = rng.normal(size=150)
        y = (rng.random(150) < 1 / (1 + np.exp(-s))).astype(int)
        scores, labels, leads = np.repeat(s, 8), np.repeat(y, 8), np.repeat(np.arange(150), 8)
        picked["rows"].append(ProbabilityCalibrator("auto").fit(scores, labels).method_)
        grouped = ProbabilityCalibrator("auto").fit(scores, labels, groups=leads)
        picked["leads"].append(grouped.method_)
    assert picked["leads"] == ["identity"] * 5
    assert "isotonic" in picked["rows"]


def test_one_example_per_lead_chooses_as_without_groups() -> None:
    rng = np.random.default_rng(3)
    s = rng.normal(size=1500)
    y = (rng.random(1500) < 1 / (1 + np.exp(-(2 * s - 1)))).astype(int)
    plain = ProbabilityCalibrator("auto").fit(s, y)
    grouped = ProbabilityCalibrator("auto").fit(s, y, groups=np.arange(1500))
    assert grouped.brier_oof_ == plain.brier_oof_ and grouped.method_ == plain.method_


def test_grouped_auto_with_one_winning_lead_keeps_the_raw_scores() -> None:
    """The wins of a small calibration fold may all be one lead's snapshots: no split by
    lead can put a win on both sides, so auto keeps the raw scores instead of fitting a
    sigmoid on a training split without wins (which raised)."""
    rng = np.random.default_rng(0)
    leads = np.repeat(np.arange(40), 6)
    s = rng.normal(size=leads.size)
    y = (leads == 3).astype(int)
    cal = ProbabilityCalibrator("auto", cv=5).fit(s, y, groups=leads)
    assert cal.method_ == "identity" and cal.brier_oof_ == {}


def test_a_grouped_split_without_both_outcomes_keeps_the_raw_scores():
    """Two won leads, each at several as-of dates, can land in one fold of the grouped
    split: the other folds hold no win to fit a calibrator on, and the choice had raised
    scikit-learn's "needs samples of at least 2 classes" instead of keeping the scores."""
    y = np.array([1, 1, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    groups = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 3, 3, 3, 3, 3, 3])
    scores = np.linspace(-2, 2, len(y))
    calibrator = ProbabilityCalibrator("auto").fit(scores, y, groups=groups)
    assert calibrator.method_ == "identity"
    np.testing.assert_allclose(calibrator.predict(scores), 1 / (1 + np.exp(-scores)))
