"""A small CNN really trained on the digits (CPU, seconds), shared by the OOD and selective-prediction tests
of one process: the peers are compared on a trained model's outputs, not only on made-up scores."""

from __future__ import annotations

import functools

import torch

from vicinal.core.reporting import SilentReporter
from vicinal.data.datasets import DataSplits, load_dataset
from vicinal.evaluation.evaluator import EvalContext
from vicinal.execution.suite import Recipe
from vicinal.training.loop import train
from vicinal.training.method import get_method
from vicinal.training.models import build_model
from vicinal.training.rng import seed_everything


@functools.cache
def trained_digits() -> tuple[torch.nn.Module, DataSplits]:
    """small-cnn-16 after 6 epochs of ERM on 300 digits, with a validation split (for T)."""
    data = load_dataset("digits").hold_out(0.1).limit_train(300)
    mean, std = data.channel_stats()
    seed_everything(0)
    model = build_model("small-cnn-16", 10, mean, std)
    recipe = Recipe(epochs=6, batch_size=32, lr=0.05, schedule="cosine", crop_padding=2, flip=False)
    train(model, get_method("erm")(), data.train, recipe, torch.device("cpu"), 0, SilentReporter(), "t")
    return model.eval(), data


def context(**options) -> EvalContext:
    model, data = trained_digits()
    return EvalContext(model, data, torch.device("cpu"), batch_size=256, title="digits · erm", **options)
