"""Selective prediction: AURC, AUGRC, risk at a coverage and coverage at a risk against torch-uncertainty
number for number (and, with tied confidences, against the mean of its values over every order of the
ties), E-AURC against its definition, bootstrap weights, the selective evaluator and AURC-C."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch
from scipy.special import softmax
from trained import context

from vicinal.core.hparams import build_config
from vicinal.evaluation.evaluator import EVALUATORS
from vicinal.store import selective_metrics as sm
from vicinal.store.detection_metrics import log_msp
from vicinal.store.outcomes import read_examples, resample_weights


def _peer(metric, confidence: np.ndarray, correct: np.ndarray) -> float:
    """A torch-uncertainty metric on two-class probabilities whose top-class probability is
    ``confidence`` (> 0.5), correct where ``correct``: its own update path, from probabilities."""
    p = torch.tensor(confidence, dtype=torch.float64)
    metric.update(torch.stack([p, 1 - p], 1), torch.tensor(np.where(correct, 0, 1)))
    return metric.compute().item()


def _peers() -> dict:
    pytest.importorskip("torch_uncertainty")
    from torch_uncertainty.metrics import AUGRC, AURC, CovAtxRisk, RiskAtxCov

    return {
        "aurc": (AURC, lambda s, y: sm.aurc(s, y)),
        "augrc": (AUGRC, lambda s, y: sm.augrc(s, y)),
        "risk@80": (lambda: RiskAtxCov(0.8), lambda s, y: sm.risk_at_coverage(s, y, 0.8)),
        "risk@95": (lambda: RiskAtxCov(0.95), lambda s, y: sm.risk_at_coverage(s, y, 0.95)),
        "cov@5": (lambda: CovAtxRisk(0.05), lambda s, y: sm.coverage_at_risk(s, y, 0.05)),
        "cov@30": (lambda: CovAtxRisk(0.3), lambda s, y: sm.coverage_at_risk(s, y, 0.3)),
    }


def _assert_equal_to_peer(confidence: np.ndarray, correct: np.ndarray, peers: dict) -> None:
    for name, (make, ours) in peers.items():
        theirs = _peer(make(), confidence, correct)
        if name.startswith("cov") and np.isnan(theirs):
            theirs = 0.0  # no coverage reaches the risk: NaN there, 0 (abstain on everything) here
        # torch-uncertainty's coverage grid k/N (and its coverage at a risk) are float32
        assert ours(confidence, correct) == pytest.approx(theirs, rel=1e-6, abs=1e-9), name


def test_selective_metrics_equal_torch_uncertainty_without_ties():
    peers = _peers()
    rng = np.random.default_rng(0)
    for _ in range(25):
        n = int(rng.integers(2, 60))
        confidence = 0.5 + 0.5 * rng.permutation(n) / n + 1e-3  # distinct, in (0.5, 1)
        _assert_equal_to_peer(confidence, rng.random(n) < 0.75, peers)


def test_selective_metrics_equal_torch_uncertainty_on_a_trained_models_outputs():
    ctx = context()
    probs = softmax(ctx.test_logits.numpy(), axis=1)
    correct = probs.argmax(1) == ctx.test_labels.numpy()
    confidence = probs.max(1)
    assert len(np.unique(confidence)) == len(confidence)  # no ties: the libraries must agree exactly
    assert 0.05 < 1 - correct.mean() < 0.5
    pytest.importorskip("torch_uncertainty")
    from torch_uncertainty.metrics import AUGRC, AURC, CovAtxRisk, RiskAtxCov

    t_probs, labels = torch.tensor(probs), ctx.test_labels
    for metric, ours in (
        (AURC(), sm.aurc(confidence, correct)),
        (AUGRC(), sm.augrc(confidence, correct)),
        (RiskAtxCov(0.8), sm.risk_at_coverage(confidence, correct, 0.8)),
        (RiskAtxCov(0.9), sm.risk_at_coverage(confidence, correct, 0.9)),
        (CovAtxRisk(0.05), sm.coverage_at_risk(confidence, correct, 0.05)),
    ):
        metric.update(t_probs, labels)
        assert ours == pytest.approx(metric.compute().item(), rel=1e-6), type(metric).__name__
    # The evaluator ranks by log-MSP: the same order, so the same numbers.
    assert sm.aurc(log_msp(ctx.test_logits.numpy()), correct) == pytest.approx(sm.aurc(confidence, correct))


def _every_order(confidence: np.ndarray, correct: np.ndarray, make) -> float:
    """torch-uncertainty's value averaged over every order of the tied confidences (each order imposed
    by a perturbation far below the gaps between distinct confidences)."""
    values = []
    for perm in itertools.permutations(range(len(confidence))):
        rank = np.empty(len(confidence))
        rank[list(perm)] = np.arange(len(confidence))
        values.append(_peer(make(), confidence + 1e-9 * rank, correct))
    return float(np.mean(values))


def test_with_ties_each_metric_is_the_mean_over_the_orders_of_the_ties():
    peers = _peers()
    rng = np.random.default_rng(1)
    for n in (3, 4, 5, 5, 5):
        confidence = 0.6 + 0.1 * rng.integers(0, 3, n)  # three levels: ties
        correct = rng.random(n) < 0.6
        for name in ("aurc", "augrc", "risk@80"):
            make, ours = peers[name]
            assert ours(confidence, correct) == pytest.approx(
                _every_order(confidence, correct, make), abs=1e-7
            )


def _expected_errors(confidence: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """E[errors among the k most confident] over uniformly random orders of ties, by enumeration."""
    total = np.zeros(len(confidence))
    orders = list(itertools.permutations(range(len(confidence))))
    for perm in orders:
        rank = np.empty(len(confidence))
        rank[list(perm)] = np.arange(len(confidence))
        order = np.lexsort((rank, -confidence))
        total += np.cumsum(~correct[order])
    return total / len(orders)


def test_with_ties_coverage_at_a_risk_reads_the_expected_risk_curve():
    rng = np.random.default_rng(2)
    for _ in range(15):
        n = int(rng.integers(2, 7))
        confidence = 0.5 + 0.1 * rng.integers(0, 3, n)
        correct = rng.random(n) < 0.7
        risk = _expected_errors(confidence, correct) / np.arange(1, n + 1)
        coverage, curve = sm.risk_coverage_curve(confidence, correct)
        np.testing.assert_allclose(curve, risk, atol=1e-12)
        np.testing.assert_allclose(coverage, np.arange(1, n + 1) / n)
        for level in (0.0, 0.2, 0.34, 0.5):
            admissible = np.flatnonzero(risk <= level + 1e-12)
            expected = (admissible[-1] + 1) / n if len(admissible) else 0.0
            assert sm.coverage_at_risk(confidence, correct, level) == pytest.approx(expected), level


def test_eaurc_is_aurc_above_the_oracle():
    rng = np.random.default_rng(4)
    pytest.importorskip("torch_uncertainty")
    from torch_uncertainty.metrics import AURC

    for n in (10, 57, 400):
        confidence = rng.random(n)
        correct = rng.random(n) < 0.8
        # The oracle: every correct prediction before any error (torch-uncertainty on such an order).
        oracle = _peer(AURC(), 0.5 + 0.25 * correct + 0.2 * rng.random(n), correct)
        assert sm.eaurc(confidence, correct) == pytest.approx(sm.aurc(confidence, correct) - oracle, rel=1e-6)
        assert sm.eaurc(correct.astype(float), correct) == 0.0
    # Geifman et al.'s r + (1 − r) ln(1 − r) is the limit of the oracle's AURC.
    correct = np.arange(20000) % 10 != 0
    r = 1 - correct.mean()
    oracle = sm.aurc(correct.astype(float), correct)
    assert oracle == pytest.approx(r + (1 - r) * np.log(1 - r), abs=1e-3)


def test_metrics_under_bootstrap_weights_equal_the_metrics_of_the_resampled_predictions():
    rng = np.random.default_rng(5)
    confidence = rng.integers(0, 8, 50) / 8.0
    correct = rng.random(50) < 0.7
    weights = resample_weights(50, 5, rng)
    ranking = sm.Ranking(confidence, correct)
    for r in range(len(weights)):
        drawn = np.repeat(np.arange(50), weights[r].astype(int))
        for kind, metric in sm.METRICS.items():
            for level in (0.05, 0.8):
                expected = metric(sm.Ranking(confidence[drawn], correct[drawn]), None, level)
                assert metric(ranking, weights, level)[r] == pytest.approx(expected, abs=1e-12), kind
    with pytest.raises(ValueError, match="counts"):
        ranking.aurc(weights + 0.5)


def test_selective_evaluator_metrics_statistics_and_figure(tmp_path):
    selective = EVALUATORS.get("selective")
    evaluator = selective(build_config(selective.Config, {}, "evaluators.selective"))
    ctx = context(artifact_stem=tmp_path / "run")
    out = evaluator.evaluate(ctx)
    info = evaluator.metric_info()
    assert set(out) == set(info)
    assert {k for k, m in info.items() if m.headline} == {"aurc", "augrc"}
    assert [m.key for m in info.values() if m.family == "risk"] == [
        "10",
        "20",
        "30",
        "40",
        "50",
        "60",
        "70",
        "80",
        "90",
        "95",
        "100",
    ]
    z, y = ctx.test_logits.numpy(), ctx.test_labels.numpy()
    correct = z.argmax(1) == y
    assert out["risk@100"] == pytest.approx(1 - correct.mean())
    assert out["aurc"] == pytest.approx(sm.aurc(log_msp(z), correct))
    assert out["aurc_ts"] == pytest.approx(sm.aurc(log_msp(z / ctx.temperature), correct))
    assert out["cov@5"] == pytest.approx(sm.coverage_at_risk(log_msp(z), correct, 0.05))
    ctx.write_examples()
    file = read_examples(tmp_path / "run.examples.npz")
    for metric in out:
        assert file.point(metric) == pytest.approx(out[metric], abs=1e-12), metric
    assert (tmp_path / "run.risk-coverage.png").stat().st_size > 10_000


def test_aurc_under_corruptions_is_the_mean_of_the_cells_with_intervals(tmp_path):
    from vicinal.data.corrupted import GeneratedSet

    corruption = EVALUATORS.get("corruption")
    config = {"corruptions": ["fog", "gaussian_noise"], "severities": [1, 5], "source": "generate"}
    evaluator = corruption(build_config(corruption.Config, config, "evaluators.corruption"))
    ctx = context(artifact_stem=tmp_path / "run")
    out = evaluator.evaluate(ctx)
    cells = GeneratedSet(ctx.data.test, ["fog", "gaussian_noise"], [1, 5], 0, None, torch.device("cpu"))
    y = ctx.test_labels.numpy()
    per_cell = []
    for name, s in itertools.product(["fog", "gaussian_noise"], [1, 5]):
        z = ctx.predict_batches(cells.batches(name, s, 256)).numpy()
        per_cell.append(sm.aurc(log_msp(z), z.argmax(1) == y))
    assert out["c_aurc"] == pytest.approx(np.mean(per_cell), abs=1e-12)
    ctx.write_examples()
    file = read_examples(tmp_path / "run.examples.npz")
    assert file.point("c_aurc") == pytest.approx(out["c_aurc"], abs=1e-12)


def test_the_peers_own_ties_depend_on_the_order():
    """Why ties are taken in expectation: torch-uncertainty's AURC of tied predictions is whatever order
    its sort leaves (here, two orders of one tie give two values)."""
    pytest.importorskip("torch_uncertainty")
    from torch_uncertainty.metrics import AURC

    confidence, correct = np.array([0.9, 0.9, 0.6]), np.array([True, False, True])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = _peer(AURC(), confidence + np.array([1e-9, 0, 0]), correct)
        second = _peer(AURC(), confidence + np.array([0, 1e-9, 0]), correct)
    assert first != pytest.approx(second)
    assert sm.aurc(confidence, correct) == pytest.approx((first + second) / 2)
