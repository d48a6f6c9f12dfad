"""Temperature scaling and ECE on synthetic logits whose true calibration is known."""

import numpy as np
import pytest

from models.calibration import expected_calibration_error, fit_temperature, nll, softmax


def _calibrated(n: int = 4000, k: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from softmax(logits): calibrated by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(n, k))
    probs = softmax(logits)
    labels = np.array([rng.choice(k, p=p) for p in probs])
    return logits, labels


def test_softmax_is_stable_and_normalised():
    p = softmax(np.array([[1000.0, 1000.0, -1000.0], [0.0, 0.0, 0.0]]))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[0], [0.5, 0.5, 0.0])
    assert np.isfinite(p).all()


def test_fit_temperature_recovers_overconfidence_and_lowers_ece():
    logits, labels = _calibrated()
    overconfident = logits * 3.0
    temperature = fit_temperature(overconfident, labels)
    assert temperature == pytest.approx(3.0, rel=0.15)
    before = expected_calibration_error(softmax(overconfident), labels)
    after = expected_calibration_error(softmax(overconfident / temperature), labels)
    assert after < before / 2
    assert nll(overconfident, labels, temperature) < nll(overconfident, labels)


def test_fit_temperature_keeps_calibrated_logits_near_one():
    logits, labels = _calibrated(seed=1)
    assert fit_temperature(logits, labels) == pytest.approx(1.0, rel=0.15)


def test_fit_temperature_stays_in_bounds_on_a_perfect_split():
    logits = np.array([[5.0, 0.0], [0.0, 5.0]])
    temperature = fit_temperature(logits, np.array([0, 1]))
    assert 0.05 <= temperature <= 20.0


def test_fit_temperature_rejects_bad_shapes():
    with pytest.raises(ValueError, match="need logits"):
        fit_temperature(np.zeros((3, 2)), np.zeros(2, dtype=int))


def test_ece_extremes():
    confident_wrong = np.array([[1.0, 0.0]] * 10)
    assert expected_calibration_error(confident_wrong, np.ones(10, dtype=int)) == pytest.approx(1.0)
    assert expected_calibration_error(confident_wrong, np.zeros(10, dtype=int)) == pytest.approx(
        0.0
    )
    # Confidence 0.7, right 7 times in 10: calibrated.
    probs = np.array([[0.7, 0.3]] * 10)
    labels = np.array([0] * 7 + [1] * 3)
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-12)
