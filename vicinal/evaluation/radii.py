"""Perturbation radii as written in suites (``"8/255"``) and as shown in metric names.

Kept apart from :mod:`vicinal.evaluation.evaluator` (which needs torch) because the report reads radii back
from metric names and must not load torch to do so."""

from __future__ import annotations

import math
from collections.abc import Sequence


def parse_eps(value: float | int | str) -> float:
    """A perturbation size written as a number or a fraction such as ``"8/255"``; ValueError for anything
    else (a zero denominator included)."""
    if isinstance(value, str) and "/" in value:
        num, _, den = value.partition("/")
        if float(den) == 0:
            raise ValueError(f"{value!r} divides by zero")
        return float(num) / float(den)
    return float(value)


def check_radii(values: Sequence[float | int | str], where: str) -> list[float]:
    """Radii as a suite writes them, parsed and checked: each a finite number ≥ 0 (a fraction such as
    8/255 included), none twice (``0.5`` and ``1/2`` are one radius: its metric would be written twice).
    Raises ValueError naming ``where`` and the value."""
    out: list[float] = []
    for text in values:
        try:
            eps = parse_eps(text)
        except ValueError as exc:
            why = "its denominator is 0" if "divides by zero" in str(exc) else "write a number"
            raise ValueError(f"{where}: {text!r} is not a radius ({why}); e.g. 0.25 or 8/255") from None
        if not math.isfinite(eps) or eps < 0:
            raise ValueError(f"{where}: {text!r} is not a radius; a radius is a finite number ≥ 0")
        if eps in out:
            raise ValueError(f"{where}: {text!r} is the radius {eps:g} again; give each radius once")
        out.append(eps)
    return out


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
