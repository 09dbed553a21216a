"""vicinal: a benchmark of vicinal distributions (mixup and relatives) on robustness and calibration.

The public names below are imported on first use (PEP 562 module ``__getattr__``), so ``import vicinal``
and the commands that never train (``vicinal leaderboard``, ``report``, ``--help``) do not pay for torch
(2–3 s and ~600 MB). A program that trains should choose its thread policy before anything imports torch:
``import vicinal.threads; vicinal.threads.apply_thread_policy()`` (the CLI does this itself).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Exported name → the module that defines it.
_EXPORTS = {
    "Evaluator": "vicinal.evaluation",
    "Method": "vicinal.method",
    "MetricInfo": "vicinal.evaluation",
    "Preview": "vicinal.method",
    "StepOutput": "vicinal.method",
    "VicinalError": "vicinal.errors",
    "get_method": "vicinal.method",
    "hp": "vicinal.hparams",
    "list_methods": "vicinal.method",
    "register_dataset": "vicinal.datasets",
    "register_evaluator": "vicinal.evaluation",
    "register_method": "vicinal.method",
    "register_model": "vicinal.models",
}
__all__ = [  # literal for static tools; the same names as _EXPORTS, plus __version__
    "Evaluator",
    "Method",
    "MetricInfo",
    "Preview",
    "StepOutput",
    "VicinalError",
    "__version__",
    "get_method",
    "hp",
    "list_methods",
    "register_dataset",
    "register_evaluator",
    "register_method",
    "register_model",
]

if TYPE_CHECKING:
    from vicinal.datasets import register_dataset
    from vicinal.errors import VicinalError
    from vicinal.evaluation import Evaluator, MetricInfo, register_evaluator
    from vicinal.hparams import hp
    from vicinal.method import Method, Preview, StepOutput, get_method, list_methods, register_method
    from vicinal.models import register_model


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vicinal' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
