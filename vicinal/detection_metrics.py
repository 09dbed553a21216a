"""Out-of-distribution detection: scores from logits, and AUROC, AUPR-In, AUPR-Out and FPR at 95 % TPR.

Pure functions over numpy arrays. Every metric also takes resampling ``weights`` (R × n, how often each
example is drawn: a bootstrap) and then returns the R values at once, so that :mod:`vicinal.examples` puts
intervals on them with the very code that computed the point value.

Conventions (each checked against a peer in ``tests/test_ood.py``):

- **Scores** are *in-distribution* scores: higher means "more like the training data". The maximum softmax
  probability (Hendrycks & Gimpel 2017) is ranked by its logarithm, −log(1 + Σ_{k≠top} e^{z_k − z_top}),
  which keeps the order of confident predictions that a float64 MSP rounds to 1.0 (a tie); maximum logit
  (Hendrycks et al. 2022); energy at temperature 1 as the negative free energy logsumexp(z) (Liu et al.
  2020). torch-uncertainty's criteria return the same quantities negated (OOD scores).
- **Positive class.** In-distribution test images are the positives of the ROC, of AUPR-In and of FPR at
  95 % TPR (Hendrycks & Gimpel; ODIN; OpenOOD); AUPR-Out takes the OOD images as positives, ranked by the
  negated score. AUROC is the same either way. torch-uncertainty's ``eval_ood`` routine takes OOD as
  positive throughout: its "AUPR" is AUPR-Out here, and its FPR95 is the share of *in-distribution* images
  flagged when 95 % of the OOD ones are caught — not this FPR95, which is the share of OOD images accepted
  when 95 % of the in-distribution ones are.
- **Ties** are one threshold: no threshold separates tied scores. AUROC counts a tied (in, out) pair as
  half (the trapezoidal ROC; scikit-learn's ``roc_auc_score``, torchmetrics' ``BinaryAUROC``). AUPR is
  average precision, Σ (R_k − R_{k−1}) P_k over the distinct thresholds, without interpolation
  (scikit-learn's ``average_precision_score``, torchmetrics' ``BinaryAveragePrecision``).
- **FPR at 95 % TPR** is taken at the first threshold, from the top, whose TPR is *at least* 95 %
  (torch-uncertainty's FPRx, OpenOOD), not at the TPR *nearest* 95 % (Hendrycks's original
  ``fpr_and_fdr_at_recall``), which can lie below 95 %.

Written here rather than taken from scikit-learn because a paired bootstrap needs every metric under
thousands of resampling weights: scikit-learn computes one weighting per call (2,000 calls of ~5 ms per
metric and set), these compute all R from one sort.
"""

from __future__ import annotations

import numpy as np

#: The in-distribution scores, by name: (label, what it is).
SCORES: dict[str, tuple[str, str]] = {
    "msp": ("MSP", "maximum softmax probability (ranked by its logarithm)"),
    "maxlogit": ("max logit", "maximum logit"),
    "energy": ("energy", "negative energy logsumexp(z) at temperature 1"),
}


def _top_and_rest(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the largest logit and Σ_{k≠top} e^{z_k − z_top} (the top entry itself left out, so that
    the sum keeps its tiny values instead of vanishing next to 1)."""
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] < 1:
        raise ValueError(f"logits must be N × K, got shape {z.shape}")
    top = z.argmax(1)
    rows = np.arange(len(z))
    high = z[rows, top]
    e = np.exp(z - high[:, None])
    e[rows, top] = 0.0
    return high, e.sum(1)


def log_msp(logits: np.ndarray) -> np.ndarray:
    """log max softmax probability, exactly ordered where the MSP itself rounds to 1."""
    _, rest = _top_and_rest(logits)
    return -np.log1p(rest)


def ood_scores(logits: np.ndarray, temperature: float | None = None) -> dict[str, np.ndarray]:
    """The in-distribution scores of :data:`SCORES` for N × K logits (higher: more in-distribution), and
    ``msp_ts``, the MSP after dividing the logits by ``temperature``, when one is given."""
    high, rest = _top_and_rest(logits)
    out = {"msp": -np.log1p(rest), "maxlogit": high, "energy": high + np.log1p(rest)}
    if temperature is not None:
        out["msp_ts"] = log_msp(np.asarray(logits, dtype=np.float64) / temperature)
    return out


# ---------------------------------------------------------------- metrics (optionally under weights)


def _check(scores: np.ndarray, is_ood: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, ...]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(is_ood)
    if s.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"scores and is_ood must be 1-D of one length, got {s.shape} and {y.shape}")
    if y.dtype != np.bool_:
        raise ValueError(f"is_ood must be booleans (True: out-of-distribution), got {y.dtype}")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    w = np.ones((1, len(s))) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != len(s):
        raise ValueError(f"weights must be R × {len(s)}, got shape {w.shape}")
    return s, y, w


def _tie_groups(scores: np.ndarray, weights: np.ndarray, *values: np.ndarray) -> list[np.ndarray]:
    """Per group of tied scores, from the highest score down: the sums of weight × each of ``values``
    (R × G arrays). A tie group is one threshold."""
    order = np.argsort(-scores, kind="stable")
    ordered = scores[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    w = weights[:, order]
    return [np.add.reduceat(w * v[order], starts, axis=1) for v in values]


def _in_out(scores: np.ndarray, is_ood: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, ...]:
    s, y, w = _check(scores, is_ood, weights)
    return tuple(_tie_groups(s, w, (~y).astype(np.float64), y.astype(np.float64)))


def _out(values: np.ndarray, weights: np.ndarray | None) -> float | np.ndarray:
    return float(values[0]) if weights is None else values


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b, NaN where b is 0 (a resample without a positive or a negative has no such metric)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)


def auroc(scores: np.ndarray, is_ood: np.ndarray, weights: np.ndarray | None = None) -> float | np.ndarray:
    """Area under the ROC: the probability that an in-distribution image scores above an OOD one, a tie
    counting half. ``is_ood``: booleans; ``weights``: R × n resampling counts (then R values)."""
    inside, outside = _in_out(scores, is_ood, weights)
    n_out = outside.sum(1, keepdims=True)
    below = n_out - np.cumsum(outside, 1)  # OOD weight scored strictly lower than each group
    return _out(_ratio((inside * (below + outside / 2)).sum(1), inside.sum(1) * n_out[:, 0]), weights)


def _average_precision(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Σ_k (R_k − R_{k−1}) P_k over tie groups ordered from the most to the least positive."""
    tp, fp = np.cumsum(pos, 1), np.cumsum(neg, 1)
    precision = _ratio(tp, tp + fp)
    return _ratio(np.nansum(pos * precision, 1), pos.sum(1))


def aupr_in(scores: np.ndarray, is_ood: np.ndarray, weights: np.ndarray | None = None) -> float | np.ndarray:
    """Average precision with the in-distribution images as positives, ranked by the score."""
    inside, outside = _in_out(scores, is_ood, weights)
    return _out(_average_precision(inside, outside), weights)


def aupr_out(scores: np.ndarray, is_ood: np.ndarray, weights: np.ndarray | None = None) -> float | np.ndarray:
    """Average precision with the OOD images as positives, ranked by the negated score."""
    inside, outside = _in_out(scores, is_ood, weights)
    return _out(_average_precision(outside[:, ::-1], inside[:, ::-1]), weights)


def fpr_at_tpr(
    scores: np.ndarray, is_ood: np.ndarray, level: float = 0.95, weights: np.ndarray | None = None
) -> float | np.ndarray:
    """The share of OOD images scored at or above the highest threshold that keeps at least ``level`` of
    the in-distribution images (the first threshold from the top with TPR ≥ level)."""
    if not 0 < level <= 1:
        raise ValueError(f"level must lie in (0, 1], got {level}")
    inside, outside = _in_out(scores, is_ood, weights)
    tpr = _ratio(np.cumsum(inside, 1), inside.sum(1, keepdims=True))
    first = np.argmax(tpr >= level, axis=1)
    fpr = _ratio(np.cumsum(outside, 1)[np.arange(len(first)), first], outside.sum(1))
    return _out(np.where(inside.sum(1) > 0, fpr, np.nan), weights)


#: Detection metrics by name: how :mod:`vicinal.examples` recomputes them (``level``: FPR's TPR).
METRICS = {
    "auroc": lambda s, y, w, level: auroc(s, y, w),
    "aupr_in": lambda s, y, w, level: aupr_in(s, y, w),
    "aupr_out": lambda s, y, w, level: aupr_out(s, y, w),
    "fpr_at_tpr": lambda s, y, w, level: fpr_at_tpr(s, y, level, w),
}
