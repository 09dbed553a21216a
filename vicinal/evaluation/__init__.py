"""Evaluating a trained model: the evaluator contract and registry (:mod:`.evaluator`) and the metric
functions evaluators share (calibration, perturbation radii). The built-in evaluators live in
:mod:`vicinal.evaluators`, one file each."""

from typing import Any


def __getattr__(name: str) -> Any:
    # vicinal.evaluation was a module in 0.1: its names are still served, with a warning, until 0.3.
    from vicinal._compat import moved_name

    return moved_name(__name__, name)
