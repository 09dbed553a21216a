"""The evaluator interface and registry. Built-in evaluators live in ``vicinal/evaluators/``, one file each.

Evaluators receive an :class:`EvalContext` that computes the clean test-set predictions once and shares
them, and return flat ``{metric: value}`` dicts; each declares its metrics (direction, unit) so the
leaderboard can be rendered from the result files alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import torch
from torch import nn

from vicinal.datasets import DataSplits, ImageSet
from vicinal.method import NoConfig
from vicinal.registry import Registry


@dataclass(frozen=True)
class MetricInfo:
    label: str
    higher_is_better: bool
    percent: bool = False  # stored as a fraction, shown ×100
    description: str = ""


@dataclass
class EvalContext:
    model: nn.Module
    data: DataSplits
    device: torch.device
    batch_size: int = 512

    @torch.no_grad()
    def predict(self, images: ImageSet | torch.Tensor) -> torch.Tensor:
        """Logits (float64, CPU) of the model in eval mode for uint8 images."""
        x_all = images.images if isinstance(images, ImageSet) else images
        self.model.eval()
        out = []
        for i in range(0, len(x_all), self.batch_size):
            x = x_all[i : i + self.batch_size].to(self.device).float().div_(255.0)
            if self.device.type == "cuda":
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    logits = self.model(x)
            else:
                logits = self.model(x)
            out.append(logits.double().cpu())
        return torch.cat(out)

    @cached_property
    def test_logits(self) -> torch.Tensor:
        return self.predict(self.data.test)

    @property
    def test_labels(self) -> torch.Tensor:
        return self.data.test.labels


class Evaluator:
    name: ClassVar[str] = ""
    Config: ClassVar[type] = NoConfig
    metrics: ClassVar[dict[str, MetricInfo]] = {}
    summary: ClassVar[str] = ""

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        raise NotImplementedError

    def protocol(self) -> dict[str, Any]:
        """Every choice that determines this evaluator's numbers; recorded in each result file."""
        return dataclasses.asdict(self.config)


EVALUATORS: Registry[type[Evaluator]] = Registry("evaluator", "vicinal.evaluators", "vicinal.evaluators")


def register_evaluator(name: str) -> Callable[[type[Evaluator]], type[Evaluator]]:
    def decorator(cls: type[Evaluator]) -> type[Evaluator]:
        EVALUATORS.add(name, cls)
        if "name" not in cls.__dict__:
            cls.name = name
        return cls

    return decorator
