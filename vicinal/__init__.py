"""vicinal: a benchmark of vicinal distributions (mixup and relatives) on robustness and calibration.

The Python API is ``vicinal.run``, ``vicinal.evaluate`` and ``vicinal.leaderboard`` (:mod:`vicinal.api`).
``vicinal.leaderboard`` is the module of that name, made callable as the API's function: importing a
submodule sets the package attribute of its name, which would silently replace an exported function.
"""

from vicinal import leaderboard
from vicinal.api import evaluate, run
from vicinal.datasets import register_dataset
from vicinal.declarations import Artifact, Breakdown, Declarations, FigureSpec, MetricInfo, PanelSpec
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

__version__ = "0.1.0"
__all__ = [
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
