"""Calibration metrics and temperature scaling on logits (numpy/scipy; netcal for ECE and MCE).

Which definitions, and why some are computed here rather than taken from netcal:
- ECE and MCE: netcal's ``ECE``/``MCE``, equal-width bins over [0, 1] on the top-1 confidence.
- adaptive ECE: equal-mass bins (each holds N/bins predictions, by sorted confidence), weighted by
  bin size (Nguyen & O'Connor 2015; "AdaECE" in Mukhoti et al. 2020). netcal's ``ACE`` is a different
  quantity (an unweighted mean over bins), so vicinal computes this one itself.
- classwise ECE: Kull et al. (2019), the mean over classes of each class's equal-width-binned ECE of p_k.
- OE: overconfidence error (Thulasidasan et al. 2019); netcal has none.
- temperature: fitted on held-out logits by minimising NLL over log T with scipy's bounded scalar
  minimiser; netcal's scaler works on probabilities (re-taking logs loses saturated softmax outputs).
  When the held-out split is classified perfectly, the NLL falls monotonically as T → 0 and has no
  minimiser: the search would stop at its lower bound and report that bound as "fitted". Such a fit (or
  any other that ends on a bound of the search) is degenerate: T = 1 is applied instead (no scaling) and
  the result says so (``TemperatureFit.fitted``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.special import log_softmax, softmax

#: The most confidence bins a setting may ask for: more bins than a test split has predictions per class
#: measure noise, and each bin is a pass over the predictions.
MAX_BINS = 1_000


def _netcal():
    # netcal pulls in pyro/gpytorch, some of which warn at import; import it only when needed.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from netcal.metrics import ECE, MCE
    return ECE, MCE


def _equal_width_bins(confidence: np.ndarray, bins: int) -> np.ndarray:
    """Bin index per prediction, bins (k/B, (k+1)/B] (the first also takes 0), as netcal bins them."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    return np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)


def _binned_gaps(confidence: np.ndarray, correct: np.ndarray, which: np.ndarray, bins: int):
    """Per bin: (weight |B|/N, mean confidence, accuracy); empty bins are dropped."""
    out = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            out.append((mask.mean(), confidence[mask].mean(), correct[mask].mean()))
    return out


def overconfidence_error(confidence: np.ndarray, correct: np.ndarray, bins: int) -> float:
    """OE = Σ_b |B_b|/N · conf_b · max(conf_b − acc_b, 0) over equal-width bins."""
    rows = _binned_gaps(confidence, correct, _equal_width_bins(confidence, bins), bins)
    return float(sum(w * conf * max(conf - acc, 0.0) for w, conf, acc in rows))


def adaptive_ece(confidence: np.ndarray, correct: np.ndarray, bins: int) -> float:
    """ECE over equal-mass bins of the sorted confidences, weighted by bin size."""
    order = np.argsort(confidence, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, bins):
        if len(chunk):
            total += len(chunk) / len(confidence) * abs(confidence[chunk].mean() - correct[chunk].mean())
    return float(total)


def classwise_ece(probs: np.ndarray, labels: np.ndarray, bins: int) -> float:
    """Mean over classes k of the equal-width-binned ECE of p_k against 1[y = k]."""
    per_class = []
    for k in range(probs.shape[1]):
        conf, hit = probs[:, k], (labels == k).astype(np.float64)
        rows = _binned_gaps(conf, hit, _equal_width_bins(conf, bins), bins)
        per_class.append(sum(w * abs(c - a) for w, c, a in rows))
    return float(np.mean(per_class))


def nll(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood (nats)."""
    return float(-log_softmax(logits, axis=1)[np.arange(len(labels)), labels].mean())


def brier(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean over images of Σ_k (p_k − 1[y = k])²."""
    probs = softmax(logits, axis=1)
    return float(((probs - np.eye(probs.shape[1])[labels]) ** 2).sum(1).mean())


def ece(logits: np.ndarray, labels: np.ndarray, bins: int) -> float:
    """ECE alone (netcal, equal-width bins on the top-1 confidence), as in ``calibration_metrics``."""
    ECE, _ = _netcal()
    probs = softmax(logits, axis=1)
    correct = (probs.argmax(1) == labels).astype(np.float64)
    return float(ECE(bins=bins).measure(probs.max(1), correct))


def calibration_metrics(logits: np.ndarray, labels: np.ndarray, bins: int) -> dict[str, float]:
    """ECE, MCE, adaptive ECE, classwise ECE and OE from logits (N×K) and integer labels."""
    ECE, MCE = _netcal()
    probs = softmax(logits, axis=1)
    confidence = probs.max(1)
    correct = (probs.argmax(1) == labels).astype(np.float64)
    return {
        # netcal gets the top-1 problem as (confidence, correct): with the full matrix it infers
        # "binary" from the labels present and fails on a split that holds only two classes.
        "ece": float(ECE(bins=bins).measure(confidence, correct)),
        "mce": float(MCE(bins=bins).measure(confidence, correct)),
        "ace": adaptive_ece(confidence, correct, bins),
        "cw_ece": classwise_ece(probs, labels, bins),
        "oe": overconfidence_error(confidence, correct, bins),
    }


T_BOUNDS = (0.05, 20.0)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T minimising the NLL of softmax(logits / T) on held-out data, searched in ``T_BOUNDS``
    (the raw search result: see :func:`temperature_scaling` for the degenerate cases)."""
    from scipy.optimize import minimize_scalar  # ~1 s of imports that a run without this evaluator skips

    res = minimize_scalar(
        lambda log_t: nll(logits / np.exp(log_t), labels),
        bounds=(np.log(T_BOUNDS[0]), np.log(T_BOUNDS[1])),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(np.exp(res.x))


@dataclass(frozen=True)
class TemperatureFit:
    """The temperature to apply, and whether it was fitted or fell back to 1."""

    temperature: float  # the T applied: the fitted one, or 1.0 when the fit is degenerate
    fitted: bool
    status: str  # "fitted" | "separable" (no held-out error: no minimiser) | "at bound"
    searched: float  # what the bounded search returned (its bound when degenerate)
    val_errors: int  # held-out images whose true class is not the strict arg-max

    def describe(self) -> str:
        if self.fitted:
            return f"T = {self.temperature:.3f} (fitted)"
        why = {
            "separable": "the validation split is classified perfectly, so its NLL has no minimiser",
            "at bound": f"the NLL minimum lies at the search bound T = {self.searched:.3g}",
        }[self.status]
        return f"T = 1, not fitted: {why}"


def temperature_scaling(logits: np.ndarray, labels: np.ndarray) -> TemperatureFit:
    """Fit T on held-out logits, or fall back to T = 1 when no interior minimiser exists.

    With every true-class logit strictly largest, each image's NLL, log Σ_k exp((z_k − z_y)/T), decreases
    as T → 0, so the search can only stop at its lower bound: a "temperature" that says nothing but that
    the split is separable (and would sharpen the test predictions 20-fold). A minimum on either bound is
    likewise not a fitted value. Both are recorded as not fitted and T = 1 is applied.
    """
    true = logits[np.arange(len(labels)), labels]
    others = np.where(np.eye(logits.shape[1], dtype=bool)[labels], -np.inf, logits)
    errors = int((others.max(1) >= true).sum())
    searched = fit_temperature(logits, labels)
    if errors == 0:
        return TemperatureFit(1.0, False, "separable", searched, errors)
    # Relative tolerance of the bounded search around log T (xatol 1e-6 in log space).
    if any(abs(np.log(searched / b)) < 1e-3 for b in T_BOUNDS):
        return TemperatureFit(1.0, False, "at bound", searched, errors)
    return TemperatureFit(searched, True, "fitted", searched, errors)


def reliability_bins(logits: np.ndarray, labels: np.ndarray, bins: int) -> list[tuple[float, ...]]:
    """(bin centre, accuracy, mean confidence, share of predictions) per equal-width bin."""
    probs = softmax(logits, axis=1)
    confidence, correct = probs.max(1), (probs.argmax(1) == labels).astype(np.float64)
    which = _equal_width_bins(confidence, bins)
    out = []
    for b in range(bins):
        mask = which == b
        acc = float(correct[mask].mean()) if mask.any() else float("nan")
        conf = float(confidence[mask].mean()) if mask.any() else float("nan")
        out.append(((b + 0.5) / bins, acc, conf, float(mask.mean())))
    return out
