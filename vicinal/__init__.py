"""vicinal: a benchmark of vicinal distributions (mixup and relatives) on robustness and calibration.

The public names below are imported on first use (PEP 562 module ``__getattr__``), so ``import vicinal``
and the commands that never train (``vicinal leaderboard``, ``report``, ``--help``) do not pay for torch
(2–3 s and ~600 MB). A program that trains should choose its thread policy before anything imports torch:
``import vicinal.threads; vicinal.threads.apply_thread_policy()``, and may fix malloc's thresholds at any
time: ``vicinal.allocator.apply_allocator_policy()`` (the CLI does both itself).

The Python API is ``vicinal.run``, ``vicinal.evaluate`` and ``vicinal.leaderboard`` (:mod:`vicinal.api`).
``vicinal.leaderboard`` is the module of that name, made callable as the API's function: importing a
submodule sets the package attribute of its name, which would silently replace an exported function.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Exported name → the module that defines it.
_EXPORTS = {
    "Artifact": "vicinal.declarations",
    "Breakdown": "vicinal.declarations",
    "Declarations": "vicinal.declarations",
    "EvalContext": "vicinal.evaluation",
    "Evaluator": "vicinal.evaluation",
    "FigureSpec": "vicinal.declarations",
    "Method": "vicinal.method",
    "MetricInfo": "vicinal.declarations",
    "PanelSpec": "vicinal.declarations",
    "Preview": "vicinal.method",
    "StepOutput": "vicinal.method",
    "VicinalError": "vicinal.errors",
    "evaluate": "vicinal.api",
    "get_method": "vicinal.method",
    "hp": "vicinal.hparams",
    "interpolate": "vicinal.method",
    "list_methods": "vicinal.method",
    "mix_output_of": "vicinal.method",
    "mixed_correct": "vicinal.method",
    "mixed_cross_entropy": "vicinal.method",
    "register_dataset": "vicinal.datasets",
    "register_derivation": "vicinal.derived",
    "register_evaluator": "vicinal.evaluation",
    "register_method": "vicinal.method",
    "register_model": "vicinal.models",
    "run": "vicinal.api",
    "seeded_subset": "vicinal.evaluation",
}
#: Exported names that are submodules (callable ones: see above).
_MODULES = {"leaderboard"}
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
    from vicinal import leaderboard
    from vicinal.api import evaluate, run
    from vicinal.datasets import register_dataset
    from vicinal.declarations import (
        Artifact,
        Breakdown,
        Declarations,
        FigureSpec,
        MetricInfo,
        PanelSpec,
    )
    from vicinal.derived import register_derivation
    from vicinal.errors import VicinalError
    from vicinal.evaluation import EvalContext, Evaluator, register_evaluator, seeded_subset
    from vicinal.hparams import hp
    from vicinal.method import (
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
    from vicinal.models import register_model


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(f"vicinal.{name}")  # also sets the package attribute
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vicinal' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, *_MODULES})
