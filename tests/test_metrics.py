"""Metric values against independent computations on known inputs."""

import math

import numpy as np
import torch

from vicinal.evaluators.calibration import calibration_metrics, overconfidence_error
from vicinal.evaluators.clean import classification_metrics


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


def test_ece_on_a_known_input():
    # Four predictions: confidences 0.9, 0.9, 0.6, 0.3 (two classes' worth of probability mass each).
    probs = torch.tensor(
        [[0.9, 0.1, 0.0], [0.9, 0.05, 0.05], [0.2, 0.6, 0.2], [0.3, 0.3, 0.4]], dtype=torch.float64
    )
    labels = torch.tensor([0, 1, 1, 0])  # correct, wrong, correct, wrong
    logits = probs.clamp_min(1e-12).log()
    m = calibration_metrics(logits, labels, bins=10)
    # Bins: (0.8,0.9] holds two at 0.9 with acc 0.5 → 0.4·0.5; (0.5,0.6] one at 0.6, acc 1 → 0.4·0.25;
    # (0.3,0.4] one at 0.4, acc 0 → 0.4·0.25. ECE = 0.2 + 0.1 + 0.1 = 0.4.
    assert math.isclose(m["ece"], 0.4, abs_tol=1e-9)
    assert math.isclose(m["mce"], 0.4, abs_tol=1e-9)


def test_ece_matches_independent_loop_on_random_predictions():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(10, 0.4), size=700)
    labels = rng.integers(0, 10, 700)
    m = calibration_metrics(torch.from_numpy(np.log(probs)), torch.from_numpy(labels), bins=15)
    conf, correct = probs.max(1), (probs.argmax(1) == labels).astype(float)
    assert math.isclose(m["ece"], _ece_by_hand(conf, correct, 15), rel_tol=1e-9)


def test_overconfidence_error_counts_only_overconfident_bins():
    conf = np.array([0.95, 0.95, 0.95, 0.95, 0.25, 0.25])
    correct = np.array([1, 0, 0, 0, 1, 1], dtype=float)
    # Bin (0.9,1]: conf 0.95, acc 0.25 → 4/6·0.95·0.70; bin (0.2,0.3]: under-confident → 0.
    expected = 4 / 6 * 0.95 * 0.70
    assert math.isclose(overconfidence_error(conf, correct, 10), expected, rel_tol=1e-9)


def test_nll_brier_accuracy():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1])
    p = torch.softmax(logits, 1)
    m = classification_metrics(logits, labels)
    assert math.isclose(m["acc"], 1 / 3)  # the tie predicts class 0 (argmax's first index)
    expected_nll = -(p[0, 0].log() + p[1, 0].log() + p[2, 1].log()) / 3
    assert math.isclose(m["nll"], float(expected_nll), rel_tol=1e-12)
    expected_brier = (
        ((1 - p[0, 0]) ** 2 + p[0, 1] ** 2)
        + (p[1, 0] - 1) ** 2
        + p[1, 1] ** 2
        + (p[2, 0] ** 2 + (p[2, 1] - 1) ** 2)
    ) / 3
    assert math.isclose(m["brier"], float(expected_brier), rel_tol=1e-12)
