"""Calibration of the top-1 confidence: ECE and MCE (netcal), overconfidence error (OE)."""

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from vicinal.evaluation import EvalContext, Evaluator, MetricInfo, register_evaluator
from vicinal.hparams import hp


def _netcal_metrics():
    # netcal pulls in pyro/gpytorch, some of which warn at import; import it only when calibrating.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from netcal.metrics import ECE, MCE
    return ECE, MCE


def overconfidence_error(confidence: np.ndarray, correct: np.ndarray, bins: int) -> float:
    """OE (Thulasidasan et al., 2019): Σ_b |B_b|/N · conf_b · max(conf_b − acc_b, 0), equal-width bins.

    netcal has no OE, so it is computed here with the same binning as netcal's ECE (right-closed bins).
    """
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            conf, acc = confidence[mask].mean(), correct[mask].mean()
            total += mask.mean() * conf * max(conf - acc, 0.0)
    return float(total)


@register_evaluator("calibration")
class CalibrationEvaluator(Evaluator):
    summary = "ECE and MCE (netcal, equal-width bins) and overconfidence error on the clean test split"
    metrics = {
        "ece": MetricInfo("ECE", False, percent=True, description="expected calibration error, top-1"),
        "mce": MetricInfo("MCE", False, percent=True, description="maximum calibration error, top-1"),
        "oe": MetricInfo("OE", False, percent=True, description="overconfidence error (Thulasidasan 2019)"),
    }

    @dataclass
    class Config:
        bins: int = hp(15, "number of equal-width confidence bins over [0, 1]")

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        return calibration_metrics(ctx.test_logits, ctx.test_labels, self.config.bins)

    def protocol(self) -> dict:
        import netcal

        return {
            "bins": self.config.bins,
            "binning": "equal-width over [0, 1], top-1 confidence",
            "split": "test",
            "library": f"netcal {netcal.__version__} (ECE, MCE); OE by vicinal",
        }


def calibration_metrics(logits: torch.Tensor, labels: torch.Tensor, bins: int) -> dict[str, float]:
    ECE, MCE = _netcal_metrics()
    probs = logits.softmax(1).numpy()
    y = labels.numpy()
    confidence = probs.max(1)
    correct = (probs.argmax(1) == y).astype(np.float64)
    # netcal is given the top-1 problem as a binary one (confidence, correct): with the full (N, K)
    # matrix it guesses "binary" from the labels present and fails when a split holds only two classes.
    return {
        "ece": float(ECE(bins=bins).measure(confidence, correct)),
        "mce": float(MCE(bins=bins).measure(confidence, correct)),
        "oe": overconfidence_error(confidence, correct, bins),
    }
