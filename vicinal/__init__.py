"""vicinal: a benchmark of vicinal distributions (mixup and relatives) on robustness and calibration.

The public names below are imported on first use (PEP 562 module ``__getattr__``), so ``import vicinal``
and the commands that never train (``vicinal leaderboard``, ``report``, ``--help``) do not pay for torch
(2–3 s and ~600 MB). A program that trains should choose its thread policy before anything imports torch:
``import vicinal.host.threads; vicinal.host.threads.apply_thread_policy()``, and may fix malloc's thresholds
at any time: ``vicinal.host.allocator.apply_allocator_policy()`` (the CLI does both itself).

The Python API is ``vicinal.run``, ``vicinal.evaluate``, ``vicinal.leaderboard`` and ``vicinal.compare``
(:mod:`vicinal.api`); the names a plugin needs are exported here too. How the package is laid out, and what
may import what: ``docs/architecture.md``. Modules that moved in 0.2 are still importable under their old
names for one version (:mod:`vicinal._compat`, with a warning).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vicinal._compat import install as _install_compat
from vicinal._version import __version__

#: Exported name → the module that defines it.
_EXPORTS = {
    "Artifact": "vicinal.store.declarations",
    "Breakdown": "vicinal.store.declarations",
    "Declarations": "vicinal.store.declarations",
    "EvalContext": "vicinal.evaluation.evaluator",
    "Evaluator": "vicinal.evaluation.evaluator",
    "FigureSpec": "vicinal.store.declarations",
    "Method": "vicinal.training.method",
    "MetricInfo": "vicinal.store.declarations",
    "PanelSpec": "vicinal.store.declarations",
    "Preview": "vicinal.training.method",
    "StepOutput": "vicinal.training.method",
    "VicinalError": "vicinal.core.errors",
    "compare": "vicinal.api",
    "evaluate": "vicinal.api",
    "get_method": "vicinal.training.method",
    "hp": "vicinal.core.hparams",
    "interpolate": "vicinal.training.method",
    "leaderboard": "vicinal.api",
    "list_methods": "vicinal.training.method",
    "mix_output_of": "vicinal.training.method",
    "mixed_correct": "vicinal.training.method",
    "mixed_cross_entropy": "vicinal.training.method",
    "register_dataset": "vicinal.data.datasets",
    "register_derivation": "vicinal.board.derived",
    "register_evaluator": "vicinal.evaluation.evaluator",
    "register_method": "vicinal.training.method",
    "register_model": "vicinal.training.models",
    "run": "vicinal.api",
    "seeded_subset": "vicinal.evaluation.evaluator",
}
__all__ = [  # literal for static tools; the same names as _EXPORTS, plus __version__
    "Artifact",
    "Breakdown",
    "Declarations",
    "EvalContext",
    "Evaluator",
    "FigureSpec",
    "Method",
    "MetricInfo",
    "PanelSpec",
    "Preview",
    "StepOutput",
    "VicinalError",
    "__version__",
    "compare",
    "evaluate",
    "get_method",
    "hp",
    "interpolate",
    "leaderboard",
    "list_methods",
    "mix_output_of",
    "mixed_correct",
    "mixed_cross_entropy",
    "register_dataset",
    "register_derivation",
    "register_evaluator",
    "register_method",
    "register_model",
    "run",
    "seeded_subset",
]

if TYPE_CHECKING:
    from vicinal.api import compare, evaluate, leaderboard, run
    from vicinal.board.derived import register_derivation
    from vicinal.core.errors import VicinalError
    from vicinal.core.hparams import hp
    from vicinal.data.datasets import register_dataset
    from vicinal.evaluation.evaluator import EvalContext, Evaluator, register_evaluator, seeded_subset
    from vicinal.store.declarations import (
        Artifact,
        Breakdown,
        Declarations,
        FigureSpec,
        MetricInfo,
        PanelSpec,
    )
    from vicinal.training.method import (
        Method,
        Preview,
        StepOutput,
        get_method,
        interpolate,
        list_methods,
        mix_output_of,
        mixed_correct,
        mixed_cross_entropy,
        register_method,
    )
    from vicinal.training.models import register_model


_install_compat()


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vicinal' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
