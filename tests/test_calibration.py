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
