"""Selective prediction: the risk–coverage curve of abstaining on the least confident inputs, and AURC,
E-AURC, AUGRC, risk at a coverage and coverage at a risk.

Pure functions over numpy arrays (a confidence per prediction, higher = more confident, and whether the
prediction was correct). Like :mod:`vicinal.store.detection_metrics`, every metric also takes resampling
``weights`` (R × n integer counts: a bootstrap) and then returns R values from one sort (and lives in
``vicinal.store`` for the same reason: the board recomputes it from stored outcomes).

Conventions (checked against torch-uncertainty 0.13 in ``tests/test_selective.py``):

- The predictions are sorted by decreasing confidence; at coverage k/N the N·(k/N) = k most confident
  are kept and the **risk** r_k is their error rate (Geifman & El-Yaniv 2017).
- **AURC** is torch-uncertainty's: the trapezoidal area under r over the coverages 1/N, 2/N, …, 1,
  rescaled to a support of [0, 1]: (Σ_k r_k − (r_1 + r_N)/2) / (N − 1). Geifman et al.'s (1/N) Σ_k r_k
  differs from it by less than max r / N.
- **AUGRC** (Traub et al. 2024) is the same area under the generalised risk (k/N)·r_k, the share of all
  predictions that are kept and wrong.
- **E-AURC** is AURC minus the AURC of the oracle that keeps every correct prediction before any error,
  computed with the same finite-sample formula (so it is ≥ 0 exactly); Geifman et al.'s
  r + (1 − r) ln(1 − r) is its limit for large N. torch-uncertainty has no E-AURC.
- **Risk at coverage c** is r_k at k = ⌈N·c⌉ (torch-uncertainty's RiskAtxCov). **Coverage at risk x** is
  the largest k/N with r_k ≤ x, also where r is not monotonic (torch-uncertainty's CovAtxRisk); where no
  coverage reaches x it is 0 here (abstain on everything) and NaN in torch-uncertainty.
- **Ties** (equal confidences) are where the libraries differ: torch-uncertainty orders tied predictions
  as its sort happens to leave them, so its numbers depend on that order. Here a tie group is abstained on
  in random order: inside it the cumulative error count grows linearly, by the group's error rate per
  prediction, so every metric is the *expected* value over the orders of tied predictions (for AURC,
  AUGRC and risk at a coverage exactly the mean of torch-uncertainty's over every order, which the tests
  enumerate). Without ties the two agree to float rounding.

Written here rather than called from torch-uncertainty, which computes one unweighted curve per call and
breaks ties by sort order (see above); its metrics are the reference of the tests.
"""

from __future__ import annotations

import math

import numpy as np

from vicinal.store.detection_metrics import checked_pair


class _Curve:
    """The expected risk–coverage curve in closed form per tie group (R × G arrays: c predictions and e
    errors in group g, C and E their cumulative sums up to and including it). Inside group g (predictions
    C_{g−1}+1 … C_g), the expected number of errors among the k most confident is E_{g−1} + (k − C_{g−1})·b_g
    with b_g = e_g / c_g, so r_k = b_g + a_g / k with a_g = E_{g−1} − C_{g−1}·b_g."""

    def __init__(self, c: np.ndarray, e: np.ndarray, C: np.ndarray, E: np.ndarray):
        self.c, self.e, self.C, self.E = c, e, C, E
        self.C0, self.E0 = C - c, E - e
        # c and e are counts with e ≤ c: an empty group (c = 0) has e = 0, so dividing by max(c, 1) gives
        # e / c where c > 0 and 0 elsewhere, in two passes over the R × G arrays rather than five.
        self.b = e / np.maximum(c, 1.0)
        self.a = self.E0 - self.C0 * self.b
        self.n = C[:, -1]
        self.rows = np.arange(len(self.n))
        # Expected errors among the single most confident prediction: the first non-empty group's rate.
        self.first = self.b[self.rows, np.argmax(c > 0, axis=1)]

    def errors_at(self, k: np.ndarray) -> np.ndarray:
        """Expected number of errors among the k (one per row) most confident predictions."""
        g = np.argmax(k[:, None] <= self.C, axis=1)
        return self.E0[self.rows, g] + (k - self.C0[self.rows, g]) * self.b[self.rows, g]

    def trapezoid(self, total: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
        """torch-uncertainty's area: the trapezoid over coverages 1/N … 1 of values whose sum over the N
        positions is ``total``, rescaled by 1 / (1 − 1/N); NaN below two predictions."""
        n = self.n
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n >= 2, (total - (first + last) / 2) / (n - 1), np.nan)


def _harmonic(n: int) -> np.ndarray:
    """H_0 … H_n (H_k = Σ_{j ≤ k} 1/j)."""
    return np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, n + 1))])


class Ranking:
    """Predictions sorted once by decreasing confidence; every metric under any block of weights (R × n
    integer counts), from two cumulative sums over it (counts, exact in float64). The last
    block's curve is kept, so the metrics of one block share it."""

    def __init__(self, confidence: np.ndarray, correct: np.ndarray):
        s, y = checked_pair(confidence, correct, ("confidence", "correct", "confidences"))
        self.correct = y
        self.order = np.argsort(-s, kind="stable")
        ordered = s[self.order]
        # The first position of each tie group (a tie group is abstained on in random order).
        self.starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        self.wrong = (~y[self.order]).astype(np.float64)
        self._block: np.ndarray | None = None
        self._curve: _Curve | None = None
        self._oracle: Ranking | None = None

    def curve(self, weights: np.ndarray | None) -> _Curve:
        if weights is not None and weights is self._block and self._curve is not None:
            return self._curve
        n = len(self.order)
        w = np.ones((1, n), np.float32) if weights is None else np.asarray(weights)
        if w.ndim != 2 or w.shape[1] != n:
            raise ValueError(f"weights must be R × {n}, got shape {w.shape}")
        if weights is not None and ((w < 0).any() or (w != np.round(w)).any()):
            raise ValueError(
                "weights must be counts (non-negative integers): how often each prediction is drawn"
            )
        # Counts per tie group, then their running sums: integers, exact in float64 (below 2⁵³) in
        # whatever order they are summed, so the values equal the former float32 sums bit for bit.
        w = np.take(w.astype(np.float64, copy=False), self.order, axis=1)
        c, e = w, w * self.wrong
        if len(self.starts) < n:
            c, e = np.add.reduceat(c, self.starts, axis=1), np.add.reduceat(e, self.starts, axis=1)
        curve = _Curve(c, e, np.cumsum(c, 1), np.cumsum(e, 1))
        if weights is not None:
            self._block, self._curve = weights, curve
        return curve

    @staticmethod
    def _result(values: np.ndarray, weights: np.ndarray | None) -> float | np.ndarray:
        return float(values[0]) if weights is None else values

    def _aurc(self, weights: np.ndarray | None) -> np.ndarray:
        curve = self.curve(weights)
        # Σ_k r_k over group g = a_g (H_{C_g} − H_{C_{g−1}}) + e_g (the b_g term summed over c_g positions).
        h = _harmonic(int(curve.n.max()) if curve.n.size else 0)
        upper, lower = np.take(h, curve.C.astype(np.int64)), np.take(h, curve.C0.astype(np.int64))
        total = (curve.a * (upper - lower) + curve.e).sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            last = curve.E[:, -1] / curve.n
        return curve.trapezoid(total, curve.first, last)

    def aurc(self, weights: np.ndarray | None = None) -> float | np.ndarray:
        return self._result(self._aurc(weights), weights)

    def eaurc(self, weights: np.ndarray | None = None) -> float | np.ndarray:
        if self._oracle is None:
            self._oracle = Ranking(self.correct.astype(np.float64), self.correct)
        return self._result(self._aurc(weights) - self._oracle._aurc(weights), weights)

    def augrc(self, weights: np.ndarray | None = None) -> float | np.ndarray:
        curve = self.curve(weights)
        # Σ over group g's positions of the expected cumulative errors: c_g E_{g−1} + e_g (c_g + 1) / 2.
        total = (curve.c * curve.E0 + curve.e * (curve.c + 1) / 2).sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            values = curve.trapezoid(total / curve.n, curve.first / curve.n, curve.E[:, -1] / curve.n)
        return self._result(values, weights)

    def risk_at_coverage(self, coverage: float, weights: np.ndarray | None = None) -> float | np.ndarray:
        if not 0 < coverage <= 1:
            raise ValueError(f"coverage must lie in (0, 1], got {coverage}")
        curve = self.curve(weights)
        k = np.array([math.ceil(v * coverage) for v in curve.n], dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._result(np.where(k > 0, curve.errors_at(k) / k, np.nan), weights)

    def coverage_at_risk(self, risk: float, weights: np.ndarray | None = None) -> float | np.ndarray:
        if not 0 <= risk <= 1:
            raise ValueError(f"risk must lie in [0, 1], got {risk}")
        curve = self.curve(weights)
        c, C, C0, E, a, b = curve.c, curve.C, curve.C0, curve.E, curve.a, curve.b
        with np.errstate(invalid="ignore", divide="ignore"):
            # r_k = b + a/k is monotonic inside a group: its last position if that qualifies (where r_k is
            # the exact error rate E_g / C_g), else, where r rises (a < 0, b > risk), the positions up to
            # k = a / (risk − b), else none.
            whole = (c > 0) & (E / np.where(C > 0, C, 1.0) <= risk)
            rising = (c > 0) & ~whole & (a < 0) & (b > risk)
            estimate = np.floor(a / np.where(rising, risk - b, -1.0))
            k = np.zeros_like(C)
            # The division may round across an integer: the largest of its neighbours that qualifies.
            for step in (-1.0, 0.0, 1.0):
                candidate = estimate + step
                fits = rising & (candidate > C0) & (candidate < C)
                fits &= b + a / np.where(fits, candidate, 1.0) <= risk
                k = np.where(fits, candidate, k)
            best = np.where(whole, C, k).max(1)
            return self._result(np.where(curve.n > 0, best / curve.n, np.nan), weights)

    def risk_coverage_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """(coverage k/N, expected risk r_k) for k = 1 … N, for figures."""
        curve = self.curve(None)
        n = int(curve.n[0])
        k = np.arange(1, n + 1, dtype=np.float64)
        group = np.searchsorted(curve.C[0], k)  # the group holding position k (the first C_g ≥ k)
        errors = curve.E0[0, group] + (k - curve.C0[0, group]) * curve.b[0, group]
        return k / n, errors / k


def aurc(
    confidence: np.ndarray, correct: np.ndarray, weights: np.ndarray | None = None
) -> float | np.ndarray:
    """Area under the risk–coverage curve (see the module docstring); lower is better. ``weights``: R × n
    resampling counts (then R values)."""
    return Ranking(confidence, correct).aurc(weights)


def eaurc(
    confidence: np.ndarray, correct: np.ndarray, weights: np.ndarray | None = None
) -> float | np.ndarray:
    """Excess AURC: AURC minus that of the oracle ranking every correct prediction first."""
    return Ranking(confidence, correct).eaurc(weights)


def augrc(
    confidence: np.ndarray, correct: np.ndarray, weights: np.ndarray | None = None
) -> float | np.ndarray:
    """Area under the generalised risk–coverage curve, (k/N)·r_k: kept-and-wrong over all predictions."""
    return Ranking(confidence, correct).augrc(weights)


def risk_at_coverage(
    confidence: np.ndarray, correct: np.ndarray, coverage: float, weights: np.ndarray | None = None
) -> float | np.ndarray:
    """The error rate of the ⌈N·coverage⌉ most confident predictions."""
    return Ranking(confidence, correct).risk_at_coverage(coverage, weights)


def coverage_at_risk(
    confidence: np.ndarray, correct: np.ndarray, risk: float, weights: np.ndarray | None = None
) -> float | np.ndarray:
    """The largest coverage k/N whose risk r_k is at most ``risk``; 0 where none is."""
    return Ranking(confidence, correct).coverage_at_risk(risk, weights)


def risk_coverage_curve(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coverage k/N, expected risk r_k) for k = 1 … N, for figures."""
    return Ranking(confidence, correct).risk_coverage_curve()


def dense_ranks(scores: np.ndarray) -> np.ndarray:
    """Each score's rank among the distinct scores (0: the lowest; equal scores share one), as int64: all
    that ranking metrics read, stored losslessly in 16 bits for up to 65,536 examples."""
    return (
        np.unique(np.asarray(scores, dtype=np.float64), return_inverse=True)[1].astype(np.int64).reshape(-1)
    )


#: Selective metrics by name, over a :class:`Ranking`: how :mod:`vicinal.store.outcomes` recomputes them
#: (``level``: the coverage of risk at a coverage, the risk of coverage at a risk).
METRICS = {
    "aurc": lambda r, w, level: r.aurc(w),
    "eaurc": lambda r, w, level: r.eaurc(w),
    "augrc": lambda r, w, level: r.augrc(w),
    "risk_at_coverage": lambda r, w, level: r.risk_at_coverage(level, w),
    "coverage_at_risk": lambda r, w, level: r.coverage_at_risk(level, w),
}
