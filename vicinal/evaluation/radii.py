"""Perturbation radii as written in suites (``"8/255"``) and as shown in metric names.

Kept apart from :mod:`vicinal.evaluation.evaluator` (which needs torch) because the report reads radii back
from metric names and must not load torch to do so."""

from __future__ import annotations


def parse_eps(value: float | int | str) -> float:
    """A perturbation size written as a number or a fraction such as ``"8/255"``."""
    if isinstance(value, str) and "/" in value:
        num, _, den = value.partition("/")
        return float(num) / float(den)
    return float(value)


def eps_label(eps: float) -> str:
    """A short decimal where there is one (``0.1``, ``0.25``, ``2``: MNIST-style radii), else ``8/255`` for
    multiples of 1/255 (the CIFAR convention), else the shortest decimal. The decimal is tried first
    because 0.2 and 1.0 are also multiples of 1/255 (51/255, 255/255)."""
    if eps > 0 and abs(round(eps, 4) - eps) < 1e-12:
        return f"{eps:g}"
    k = eps * 255
    if eps > 0 and abs(k - round(k)) < 1e-6:
        return f"{round(k)}/255"
    return f"{eps:g}"
