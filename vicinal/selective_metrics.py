"""Selective prediction: the risk–coverage curve of abstaining on the least confident inputs, and AURC,
E-AURC, AUGRC, risk at a coverage and coverage at a risk.

Pure functions over numpy arrays (a confidence per prediction, higher = more confident, and whether the
prediction was correct). Like :mod:`vicinal.detection_metrics`, every metric also takes resampling
``weights`` (R × n integer counts: a bootstrap) and then returns R values from one sort.

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


def _check(confidence: np.ndarray, correct: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, ...]:
    s = np.asarray(confidence, dtype=np.float64)
    y = np.asarray(correct)
    if s.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"confidence and correct must be 1-D of one length, got {s.shape} and {y.shape}")
    if y.dtype != np.bool_:
        raise ValueError(f"correct must be booleans, got {y.dtype}")
    if not np.isfinite(s).all():
        raise ValueError("confidences must be finite")
    w = np.ones((1, len(s))) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != len(s):
        raise ValueError(f"weights must be R × {len(s)}, got shape {w.shape}")
    if (w < 0).any() or (w != np.round(w)).any():
        raise ValueError("weights must be counts (non-negative integers): how often each prediction is drawn")
    return s, y, w


def _groups(
    confidence: np.ndarray, correct: np.ndarray, weights: np.ndarray | None
) -> tuple[np.ndarray, ...]:
    """Per tie group of confidences, from the most confident down (R × G each): the number of
    predictions c, the number of errors e, and their cumulative sums C, E up to and including the group."""
    s, y, w = _check(confidence, correct, weights)
    order = np.argsort(-s, kind="stable")
    ordered = s[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    w = w[:, order]
    count = np.add.reduceat(w, starts, axis=1)
    errors = np.add.reduceat(w * ~y[order], starts, axis=1)
    return count, errors, np.cumsum(count, 1), np.cumsum(errors, 1)


class _Curve:
    """The expected risk–coverage curve in closed form per tie group. Inside group g (predictions
    C_{g−1}+1 … C_g), the expected number of errors among the k most confident is E_{g−1} + (k − C_{g−1})·b_g
    with b_g = e_g / c_g, so r_k = b_g + a_g / k with a_g = E_{g−1} − C_{g−1}·b_g."""

    def __init__(self, confidence: np.ndarray, correct: np.ndarray, weights: np.ndarray | None):
        self.c, self.e, self.C, self.E = _groups(confidence, correct, weights)
        self.C0, self.E0 = self.C - self.c, self.E - self.e
        with np.errstate(invalid="ignore", divide="ignore"):
            self.b = np.where(self.c > 0, self.e / np.where(self.c > 0, self.c, 1.0), 0.0)
        self.a = self.E0 - self.C0 * self.b
        self.n = self.C[:, -1]
        self.rows = np.arange(len(self.n))
        # Expected errors among the single most confident prediction: the first non-empty group's rate.
        self.first = self.b[self.rows, np.argmax(self.c > 0, axis=1)]

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


def _aurc(curve: _Curve) -> np.ndarray:
    # Σ_k r_k over group g = a_g (H_{C_g} − H_{C_{g−1}}) + e_g (the b_g term summed over c_g positions).
    h = _harmonic(int(curve.n.max()) if curve.n.size else 0)
    upper, lower = h[curve.C.astype(np.int64)], h[curve.C0.astype(np.int64)]
    total = (curve.a * (upper - lower) + curve.e).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        last = curve.E[:, -1] / curve.n
    return curve.trapezoid(total, curve.first, last)


def _out(values: np.ndarray, weights: np.ndarray | None) -> float | np.ndarray:
    return float(values[0]) if weights is None else values


def aurc(
    confidence: np.ndarray, correct: np.ndarray, weights: np.ndarray | None = None
) -> float | np.ndarray:
    """Area under the risk–coverage curve (see the module docstring); lower is better."""
    return _out(_aurc(_Curve(confidence, correct, weights)), weights)


def eaurc(
    confidence: np.ndarray, correct: np.ndarray, weights: np.ndarray | None = None
) -> float | np.ndarray:
    """Excess AURC: AURC minus that of the oracle ranking every correct prediction first."""
    y = np.asarray(correct)
    oracle = _aurc(_Curve(y.astype(np.float64), y, weights))
    return _out(_aurc(_Curve(confidence, correct, weights)) - oracle, weights)


def augrc(
    confidence: np.ndarray, correct: np.ndarray, weights: np.ndarray | None = None
) -> float | np.ndarray:
    """Area under the generalised risk–coverage curve, (k/N)·r_k: kept-and-wrong over all predictions."""
    curve = _Curve(confidence, correct, weights)
    # Σ over group g's positions of the expected cumulative errors: c_g E_{g−1} + e_g (c_g + 1) / 2.
    total = (curve.c * curve.E0 + curve.e * (curve.c + 1) / 2).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = curve.trapezoid(total / curve.n, curve.first / curve.n, curve.E[:, -1] / curve.n)
    return _out(values, weights)


def _positions(coverage: float, n: np.ndarray) -> np.ndarray:
    if not 0 < coverage <= 1:
        raise ValueError(f"coverage must lie in (0, 1], got {coverage}")
    return np.array([math.ceil(v * coverage) for v in n], dtype=np.float64)


def risk_at_coverage(
    confidence: np.ndarray, correct: np.ndarray, coverage: float, weights: np.ndarray | None = None
) -> float | np.ndarray:
    """The error rate of the ⌈N·coverage⌉ most confident predictions."""
    curve = _Curve(confidence, correct, weights)
    k = _positions(coverage, curve.n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _out(np.where(k > 0, curve.errors_at(k) / k, np.nan), weights)


def coverage_at_risk(
    confidence: np.ndarray, correct: np.ndarray, risk: float, weights: np.ndarray | None = None
) -> float | np.ndarray:
    """The largest coverage k/N whose risk r_k is at most ``risk``; 0 where none is."""
    if not 0 <= risk <= 1:
        raise ValueError(f"risk must lie in [0, 1], got {risk}")
    curve = _Curve(confidence, correct, weights)
    c, C, C0, E, a, b = curve.c, curve.C, curve.C0, curve.E, curve.a, curve.b
    with np.errstate(invalid="ignore", divide="ignore"):
        # r_k = b + a/k is monotonic inside a group: its last position if that qualifies (where r_k is the
        # exact error rate E_g / C_g), else, where r rises (a < 0, b > risk), the positions up to
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
        return _out(np.where(curve.n > 0, best / curve.n, np.nan), weights)


def risk_coverage_curve(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coverage k/N, expected risk r_k) for k = 1 … N, for figures."""
    curve = _Curve(confidence, correct, None)
    n = int(curve.n[0])
    k = np.arange(1, n + 1, dtype=np.float64)
    group = np.searchsorted(curve.C[0], k)  # the group holding position k (first C_g ≥ k)
    errors = curve.E0[0, group] + (k - curve.C0[0, group]) * curve.b[0, group]
    return k / n, errors / k


#: Selective metrics by name: how :mod:`vicinal.examples` recomputes them (``level``: the coverage of
#: risk at a coverage, the risk of coverage at a risk).
METRICS = {
    "aurc": lambda s, y, w, level: aurc(s, y, w),
    "eaurc": lambda s, y, w, level: eaurc(s, y, w),
    "augrc": lambda s, y, w, level: augrc(s, y, w),
    "risk_at_coverage": lambda s, y, w, level: risk_at_coverage(s, y, level, w),
    "coverage_at_risk": lambda s, y, w, level: coverage_at_risk(s, y, level, w),
}
