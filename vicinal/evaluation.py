"""The evaluator interface and registry. Built-in evaluators live in ``vicinal/evaluators/``, one file each.

Evaluators receive an :class:`EvalContext` that computes the clean test-set predictions once and shares
them, and return flat ``{metric: value}`` dicts; each declares its metrics (direction, unit) so the
leaderboard can be rendered from the result files alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from vicinal.datasets import DataSplits, ImageSet, to_unit
from vicinal.eps import eps_label, parse_eps  # noqa: F401  (the evaluators' import path for them)
from vicinal.method import NoConfig
from vicinal.registry import Registry


@dataclass(frozen=True)
class MetricInfo:
    label: str
    higher_is_better: bool
    percent: bool = False  # stored as a fraction, shown ×100
    description: str = ""
    headline: bool = True  # shown by the leaderboard by default (others with --metrics or --metrics all)
    #: Breakdowns (``vicinal leaderboard --by corruption|severity``): a metric such as ``c_acc/fog`` belongs
    #: to ``family`` "c_acc", is broken down ``by`` "corruption" and stands for ``key`` "fog".
    family: str = ""
    by: str = ""
    key: str = ""


@dataclass
class EvalContext:
    model: nn.Module
    data: DataSplits
    device: torch.device
    batch_size: int = 512
    #: Evaluators write figures as ``<artifact_stem>.<name>.png`` (beside the result file); None: no files.
    artifact_stem: Path | None = None
    title: str = ""
    seed: int = 0
    artifacts: dict[str, str] = field(default_factory=dict)
    #: Where the suite's data came from and where caches go (for evaluators that read more data).
    data_dir: Path | None = None
    cache_dir: Path | None = None
    progress: Any = None  # a rich Progress for long evaluations, or None

    def artifact_path(self, name: str, suffix: str = ".png") -> Path | None:
        if self.artifact_stem is None:
            return None
        path = self.artifact_stem.with_name(f"{self.artifact_stem.name}.{name}{suffix}")
        self.artifacts[name] = path.name  # recorded relative to the result file
        return path

    def predict(self, images: ImageSet | torch.Tensor) -> torch.Tensor:
        """Logits (float64, CPU) of the model in eval mode for uint8 images."""
        x_all = images.images if isinstance(images, ImageSet) else images
        return self.predict_batches(x_all.split(self.batch_size))

    @torch.no_grad()
    def predict_batches(self, batches: Iterable[torch.Tensor]) -> torch.Tensor:
        """Logits for a stream of uint8 batches (e.g. memory-mapped corrupted sets), concatenated."""
        self.model.eval()
        out = []
        for batch in batches:
            x = to_unit(batch, self.device)
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

    @cached_property
    def val_logits(self) -> torch.Tensor | None:
        """Logits on the held-out validation split (for post-hoc calibration); None without one."""
        return None if self.data.val is None else self.predict(self.data.val)

    @cached_property
    def temperature(self) -> float | None:
        """Temperature fitted on the validation split (shared by every evaluator); None without one."""
        if self.val_logits is None:
            return None
        from vicinal.calibration import fit_temperature

        return fit_temperature(self.val_logits.numpy(), self.data.val.labels.numpy())


class Evaluator:
    name: ClassVar[str] = ""
    Config: ClassVar[type] = NoConfig
    metrics: ClassVar[dict[str, MetricInfo]] = {}
    summary: ClassVar[str] = ""

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        raise NotImplementedError

    def metric_info(self) -> dict[str, MetricInfo]:
        """The metrics this evaluator reports under its configuration (names may depend on it)."""
        return dict(self.metrics)

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
