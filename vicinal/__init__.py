"""vicinal: a benchmark of vicinal distributions (mixup and relatives) on robustness and calibration."""

from vicinal.datasets import register_dataset
from vicinal.errors import VicinalError
from vicinal.evaluation import Evaluator, MetricInfo, register_evaluator
from vicinal.hparams import hp
from vicinal.method import Method, Preview, StepOutput, get_method, list_methods, register_method
from vicinal.models import register_model

__version__ = "0.1.0"
__all__ = [
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
