"""Calibration metrics against independent computations on known inputs."""

import math

import numpy as np
import pytest

from vicinal.evaluation.calibration_metrics import (
    adaptive_ece,
    brier,
    calibration_metrics,
    classwise_ece,
    ece,
    fit_temperature,
    nll,
    overconfidence_error,
    temperature_scaling,
)


def _ece_by_hand(conf, correct, bins):
    """Independent ECE: loop over bins (lo, hi] (the first bin includes 0), weights |B|/N."""
    total, n = 0.0, len(conf)
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [i for i in range(n) if (lo < conf[i] <= hi) or (b == 0 and conf[i] == 0)]
        if members:
            acc = sum(correct[i] for i in members) / len(members)
            avg = sum(conf[i] for i in members) / len(members)
            total += len(members) / n * abs(avg - acc)
    return total


def _random_predictions(n=700, k=10, seed=0):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(k, 0.4), size=n)
    return np.log(probs), probs, rng.integers(0, k, n)


def test_ece_on_a_known_input():
    probs = np.array([[0.9, 0.1, 0.0], [0.9, 0.05, 0.05], [0.2, 0.6, 0.2], [0.3, 0.3, 0.4]])
    labels = np.array([0, 1, 1, 0])  # correct, wrong, correct, wrong
    m = calibration_metrics(np.log(np.clip(probs, 1e-300, None)), labels, bins=10)
    # Bins: (0.8,0.9] holds two at 0.9 with acc 0.5 → 0.4·0.5; (0.5,0.6] one at 0.6, acc 1 → 0.4·0.25;
    # (0.3,0.4] one at 0.4, acc 0 → 0.4·0.25. ECE = 0.2 + 0.1 + 0.1 = 0.4; every gap is 0.4, so MCE too.
    assert math.isclose(m["ece"], 0.4, abs_tol=1e-9)
    assert math.isclose(m["mce"], 0.4, abs_tol=1e-9)


def test_ece_matches_independent_loop_on_random_predictions():
    logits, probs, labels = _random_predictions()
    m = calibration_metrics(logits, labels, bins=15)
    conf, correct = probs.max(1), (probs.argmax(1) == labels).astype(float)
    assert math.isclose(m["ece"], _ece_by_hand(conf, correct, 15), rel_tol=1e-9)


def test_adaptive_ece_uses_equal_mass_bins():
    conf = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])
    correct = np.array([0, 0, 1, 0, 1, 1, 1, 0], dtype=float)
    # 4 bins of 2 sorted predictions: |0.15−0| , |0.35−0.5| , |0.65−1| , |0.85−0.5| each weighted 1/4.
    expected = (0.15 + 0.15 + 0.35 + 0.35) / 4
    assert math.isclose(adaptive_ece(conf, correct, 4), expected, rel_tol=1e-12)


def test_classwise_ece_by_hand():
    probs = np.array([[0.7, 0.3], [0.2, 0.8], [0.6, 0.4]])
    labels = np.array([0, 1, 1])
    # class 0, 2 bins (0,.5],(.5,1]: p = .7,.2,.6 → bin1 {.2}: |0.2−0| = .2 ·1/3; bin2 {.7,.6}: |.65−.5| ·2/3
    c0 = 0.2 / 3 + 0.15 * 2 / 3
    # class 1: p = .3,.8,.4 → bin1 {.3,.4}: |.35−.5| ·2/3; bin2 {.8}: |.8−1| ·1/3
    c1 = 0.15 * 2 / 3 + 0.2 / 3
    assert math.isclose(classwise_ece(probs, labels, 2), (c0 + c1) / 2, rel_tol=1e-12)


def test_overconfidence_error_counts_only_overconfident_bins():
    conf = np.array([0.95, 0.95, 0.95, 0.95, 0.25, 0.25])
    correct = np.array([1, 0, 0, 0, 1, 1], dtype=float)
    # Bin (0.9,1]: conf 0.95, acc 0.25 → 4/6·0.95·0.70; bin (0.2,0.3]: under-confident → 0.
    assert math.isclose(overconfidence_error(conf, correct, 10), 4 / 6 * 0.95 * 0.70, rel_tol=1e-9)


def test_nll_and_brier():
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    labels = np.array([0, 0, 1])
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert math.isclose(nll(logits, labels), -(np.log(p[0, 0]) + np.log(p[1, 0]) + np.log(p[2, 1])) / 3)
    expected = (
        (1 - p[0, 0]) ** 2
        + p[0, 1] ** 2
        + (1 - p[1, 0]) ** 2
        + p[1, 1] ** 2
        + p[2, 0] ** 2
        + (1 - p[2, 1]) ** 2
    ) / 3
    assert math.isclose(brier(logits, labels), expected, rel_tol=1e-12)


def test_temperature_minimises_validation_nll():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 2000)
    logits = rng.normal(size=(2000, 10)) * 4
    logits[np.arange(1200), labels[:1200]] += 6  # overconfident: the best temperature is > 1
    t = fit_temperature(logits, labels)
    grid = np.linspace(0.5, 8, 3001)
    best = grid[np.argmin([nll(logits / g, labels) for g in grid])]
    assert t > 1 and t == pytest.approx(best, abs=5e-3)
    # Temperature scaling never changes the predicted class, so accuracy is unchanged.
    assert np.array_equal((logits / t).argmax(1), logits.argmax(1))


def _separable(n=135, k=10, seed=0):
    """Logits whose true class is strictly the largest for every image, with varied margins."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), labels] = logits.max(1) + rng.uniform(0.05, 3.0, n)
    return logits, labels


def test_a_separable_validation_split_falls_back_to_t_1():
    logits, labels = _separable()
    # The NLL keeps falling as T → 0 (no minimiser), so the raw search stops on its lower bound ...
    grid = np.geomspace(0.05, 20, 200)
    assert np.all(np.diff([nll(logits / t, labels) for t in grid]) > 0)
    assert fit_temperature(logits, labels) == pytest.approx(0.05, rel=1e-3)
    # ... which is not reported as fitted: T = 1 is applied and the fit says why.
    fit = temperature_scaling(logits, labels)
    assert (fit.temperature, fit.fitted, fit.status, fit.val_errors) == (1.0, False, "separable", 0)
    assert fit.searched == pytest.approx(0.05, rel=1e-3)
    assert "not fitted" in fit.describe()


def test_one_validation_error_gives_an_interior_fitted_temperature():
    logits, labels = _separable()
    wrong = (labels[0] + 1) % 10
    logits[0, wrong] = logits[0, labels[0]] + 1.0  # one misclassified image: NLL → ∞ as T → 0
    fit = temperature_scaling(logits, labels)
    grid = np.geomspace(0.05, 20, 4001)
    best = grid[np.argmin([nll(logits / t, labels) for t in grid])]
    assert fit.fitted and fit.status == "fitted" and fit.val_errors == 1
    assert fit.temperature == pytest.approx(best, rel=5e-3) and 0.05 < fit.temperature < 20


def test_a_minimum_on_the_upper_bound_is_not_a_fitted_temperature():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(200, 10)) * 3
    labels = logits.argmin(1)  # anti-informative: the NLL falls as T → ∞, towards the uniform prediction
    fit = temperature_scaling(logits, labels)
    assert fit.searched == pytest.approx(20, rel=1e-3)
    assert (fit.temperature, fit.fitted, fit.status) == (1.0, False, "at bound")


def test_ece_alone_equals_the_full_computation():
    logits, _, labels = _random_predictions(seed=3)
    assert ece(logits, labels, 15) == calibration_metrics(logits, labels, 15)["ece"]
