"""Out-of-distribution detection: scores from logits, and AUROC, AUPR-In, AUPR-Out and FPR at 95 % TPR.

Pure functions over numpy arrays. Every metric also takes resampling ``weights`` (R × n, how often each
example is drawn: a bootstrap) and then returns the R values at once, so that
:mod:`vicinal.store.outcomes` puts intervals on them with the very code that computed the point value.
That is why these metric functions live in ``vicinal.store`` rather than ``vicinal.evaluation``: the
board recomputes them from stored outcomes, and it may import only ``core`` and ``store``.

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


def checked_pair(
    values: np.ndarray, flags: np.ndarray, names: tuple[str, str, str], flags_meaning: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """Scores (float64, finite) and their boolean flags, 1-D and of one length; ``names`` = (the values'
    argument, the flags' argument, the values in a sentence) for the errors. Shared by the OOD and the
    selective metrics."""
    s = np.asarray(values, dtype=np.float64)
    y = np.asarray(flags)
    if s.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"{names[0]} and {names[1]} must be 1-D of one length, got {s.shape} and {y.shape}")
    if y.dtype != np.bool_:
        raise ValueError(f"{names[1]} must be booleans{flags_meaning}, got {y.dtype}")
    if not np.isfinite(s).all():
        raise ValueError(f"{names[2]} must be finite")
    return s, y


def _cumulative(w: np.ndarray) -> np.ndarray:
    """Cumulative sums along the rows with a leading 0 column (written in place: no copy)."""
    out = np.empty((len(w), w.shape[1] + 1), w.dtype)
    out[:, 0] = 0
    np.cumsum(w, axis=1, out=out[:, 1:])
    return out


def _precision(tp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """tp / (tp + fp), 0 where nothing is kept (only at examples drawn 0 times, whose weight is 0)."""
    kept = tp + fp
    return np.divide(tp, kept, out=np.zeros_like(kept), where=kept > 0)


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b, NaN where b is 0 (a resample without a positive or a negative has no such metric)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)


class Ranking:
    """Scores of in-distribution and OOD examples sorted once; every metric under any block of weights.

    Each metric needs, per example, the weight of each class scored above it (strictly, or at least as
    high: a tie group is one threshold), which are cumulative sums over the classes' examples in
    decreasing score, read at positions found once by binary search. So a block of R resamples costs two
    cumulative sums over R × n, not a sort per resample. Counts are summed in float32, exact below 2²⁴."""

    def __init__(self, scores: np.ndarray, is_ood: np.ndarray):
        s, y = checked_pair(scores, is_ood, ("scores", "is_ood", "scores"), " (True: out-of-distribution)")
        self.n = len(s)
        inside, outside = np.flatnonzero(~y), np.flatnonzero(y)
        # Each class in decreasing score (stable: equal scores keep their order; it does not matter).
        self.inside = inside[np.argsort(-s[inside], kind="stable")]
        self.outside = outside[np.argsort(-s[outside], kind="stable")]
        si, so = -s[self.inside], -s[self.outside]  # increasing, for searchsorted
        # For each in-distribution example: OOD scored strictly above / at least as high; in-distribution
        # scored at least as high (its tie group's end). Likewise for each OOD example.
        self.out_above_in = np.searchsorted(so, si, side="left")
        self.out_atleast_in = np.searchsorted(so, si, side="right")
        self.in_atleast_in = np.searchsorted(si, si, side="right")
        self.in_above_out = np.searchsorted(si, so, side="left")
        self.out_above_out = np.searchsorted(so, so, side="left")
        self._block: np.ndarray | None = None  # the last block of weights, and its sums
        self._block_sums: tuple[np.ndarray, ...] = ()

    def _sums(self, weights: np.ndarray | None) -> tuple[np.ndarray, ...]:
        """(in-distribution weights in score order, cumulative in, cumulative OOD) with a leading 0
        column; the last block's are kept, so the four metrics of one block share them."""
        if weights is not None and weights is self._block:
            return self._block_sums
        w = np.ones((1, self.n), np.float32) if weights is None else np.asarray(weights)
        if w.ndim != 2 or w.shape[1] != self.n:
            raise ValueError(f"weights must be R × {self.n}, got shape {w.shape}")
        w = w.astype(np.float32, copy=False)
        w_in = np.take(w, self.inside, axis=1)
        cum_in = _cumulative(w_in)
        cum_out = _cumulative(np.take(w, self.outside, axis=1))
        out = (w_in, cum_in, cum_out)
        if weights is not None:
            self._block, self._block_sums = weights, out
        return out

    @staticmethod
    def _result(values: np.ndarray, weights: np.ndarray | None) -> float | np.ndarray:
        return float(values[0]) if weights is None else values

    def auroc(self, weights: np.ndarray | None = None) -> float | np.ndarray:
        w_in, cum_in, cum_out = self._sums(weights)
        n_in, n_out = cum_in[:, -1].astype(np.float64), cum_out[:, -1].astype(np.float64)
        # OOD weight strictly below an in-distribution example, plus half of the tied OOD weight.
        above = np.take(cum_out, self.out_above_in, axis=1).astype(np.float64)
        atleast = np.take(cum_out, self.out_atleast_in, axis=1).astype(np.float64)
        below = n_out[:, None] - (above + atleast) / 2
        return self._result(_ratio((w_in * below).sum(1), n_in * n_out), weights)

    def aupr_in(self, weights: np.ndarray | None = None) -> float | np.ndarray:
        w_in, cum_in, cum_out = self._sums(weights)
        tp = np.take(cum_in, self.in_atleast_in, axis=1).astype(np.float64)
        fp = np.take(cum_out, self.out_atleast_in, axis=1)
        total = (w_in * _precision(tp, fp)).sum(1)
        return self._result(_ratio(total, cum_in[:, -1].astype(np.float64)), weights)

    def aupr_out(self, weights: np.ndarray | None = None) -> float | np.ndarray:
        _, cum_in, cum_out = self._sums(weights)
        n_in, n_out = cum_in[:, -1].astype(np.float64), cum_out[:, -1].astype(np.float64)
        w_out = np.diff(cum_out, axis=1)
        # Ranked by the negated score: an OOD example's threshold keeps everything scored at most as high.
        tp = n_out[:, None] - np.take(cum_out, self.out_above_out, axis=1)
        fp = n_in[:, None] - np.take(cum_in, self.in_above_out, axis=1)
        return self._result(_ratio((w_out * _precision(tp, fp)).sum(1), n_out), weights)

    def fpr_at_tpr(self, level: float = 0.95, weights: np.ndarray | None = None) -> float | np.ndarray:
        if not 0 < level <= 1:
            raise ValueError(f"level must lie in (0, 1], got {level}")
        w_in, cum_in, cum_out = self._sums(weights)
        n_in, n_out = cum_in[:, -1].astype(np.float64), cum_out[:, -1].astype(np.float64)
        # Thresholds at the in-distribution examples' tie-group ends, from the top: the first whose TPR
        # reaches the level (the in-distribution ones are sorted, so TPR does not fall along them).
        tpr = _ratio(np.take(cum_in, self.in_atleast_in, axis=1).astype(np.float64), n_in[:, None])
        if not len(self.inside):
            return self._result(np.full(len(w_in), np.nan), weights)
        first = np.argmax(tpr >= level, axis=1)
        fp = cum_out[np.arange(len(first)), self.out_atleast_in[first]].astype(np.float64)
        return self._result(np.where(n_in > 0, _ratio(fp, n_out), np.nan), weights)


def auroc(scores: np.ndarray, is_ood: np.ndarray, weights: np.ndarray | None = None) -> float | np.ndarray:
    """Area under the ROC: the probability that an in-distribution image scores above an OOD one, a tie
    counting half. ``is_ood``: booleans; ``weights``: R × n resampling counts (then R values)."""
    return Ranking(scores, is_ood).auroc(weights)


def aupr_in(scores: np.ndarray, is_ood: np.ndarray, weights: np.ndarray | None = None) -> float | np.ndarray:
    """Average precision with the in-distribution images as positives, ranked by the score."""
    return Ranking(scores, is_ood).aupr_in(weights)


def aupr_out(scores: np.ndarray, is_ood: np.ndarray, weights: np.ndarray | None = None) -> float | np.ndarray:
    """Average precision with the OOD images as positives, ranked by the negated score."""
    return Ranking(scores, is_ood).aupr_out(weights)


def fpr_at_tpr(
    scores: np.ndarray, is_ood: np.ndarray, level: float = 0.95, weights: np.ndarray | None = None
) -> float | np.ndarray:
    """The share of OOD images scored at or above the highest threshold that keeps at least ``level`` of
    the in-distribution images (the first threshold from the top with TPR ≥ level)."""
    return Ranking(scores, is_ood).fpr_at_tpr(level, weights)


#: Detection metrics by name, over a :class:`Ranking`: how :mod:`vicinal.store.outcomes` recomputes them
#: (``level``: the TPR of FPR at a TPR).
METRICS = {
    "auroc": lambda r, w, level: r.auroc(w),
    "aupr_in": lambda r, w, level: r.aupr_in(w),
    "aupr_out": lambda r, w, level: r.aupr_out(w),
    "fpr_at_tpr": lambda r, w, level: r.fpr_at_tpr(level, w),
}
