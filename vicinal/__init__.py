"""vicinal: a benchmark of vicinal distributions (mixup and relatives) on robustness and calibration."""

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
    "get_method",
    "hp",
    "interpolate",
    "list_methods",
    "mix_output_of",
    "mixed_correct",
    "mixed_cross_entropy",
    "register_dataset",
    "register_derivation",
    "register_evaluator",
    "register_method",
    "register_model",
    "seeded_subset",
]
