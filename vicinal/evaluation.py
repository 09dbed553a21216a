"""The evaluator interface and registry. Built-in evaluators live in ``vicinal/evaluators/``, one file each.

Evaluators receive an :class:`EvalContext` that computes the clean test-set predictions once and shares
them, and return flat ``{metric: value}`` dicts. Each declares its metrics (direction, unit, breakdown
keys), its ``--by`` breakdowns, report figures, images and derived metrics (:mod:`vicinal.declarations`);
the runner records all of it in every result file, so the leaderboard and report are rendered from the
result files alone, without knowing any evaluator.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from vicinal.datasets import DataSplits, ImageSet, to_unit
from vicinal.declarations import Artifact, Breakdown, Declarations, FigureSpec, MetricInfo, load
from vicinal.eps import eps_label, parse_eps
from vicinal.errors import VicinalError
from vicinal.hparams import NoConfig
from vicinal.registry import Registry
from vicinal.reporting import Reporter, SilentReporter

__all__ = [
    "EVALUATORS",
    "EvalContext",
    "Evaluator",
    "MetricInfo",
    "eps_label",
    "parse_eps",
    "register_evaluator",
    "seeded_subset",
]

if TYPE_CHECKING:
    from vicinal.calibration import TemperatureFit


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
    #: Tells people where a long evaluation is (see :mod:`vicinal.reporting`); silent by default.
    reporter: Reporter = field(default_factory=SilentReporter)

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

    @torch.inference_mode()
    def predict_batches(self, batches: Iterable[torch.Tensor], total: int | None = None) -> torch.Tensor:
        """Logits for a stream of uint8 batches (e.g. memory-mapped corrupted sets), concatenated.

        With ``total`` (the number of images the stream holds) the logits go straight into one tensor:
        thousands of small kept tensors between the batches' large temporaries fragment glibc's heap,
        which then grows with the stream (3.5 GB for 95 cells of 3,000 CIFAR images, 0.7 GB without).
        """
        self.model.eval()
        out: list[torch.Tensor] = []
        full: torch.Tensor | None = None
        done = 0
        for batch in batches:
            x = to_unit(batch, self.device)
            if self.device.type == "cuda":
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    logits = self.model(x)
            else:
                logits = self.model(x)
            if total is None:
                out.append(logits.double().cpu())
                continue
            if full is None:
                full = torch.empty((total, *logits.shape[1:]), dtype=torch.float64)
            full[done : done + len(logits)] = logits
            done += len(logits)
        if total is None:
            return torch.cat(out)
        if full is None or done != total:
            raise RuntimeError(f"the stream held {done} images, not the {total} announced")
        return full

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
    def temperature_fit(self) -> TemperatureFit | None:
        """Temperature scaling fitted on the validation split, once for every evaluator; None without
        one. A degenerate fit (a separable validation split) applies T = 1 and says so."""
        if self.val_logits is None:
            return None
        from vicinal.calibration import temperature_scaling

        return temperature_scaling(self.val_logits.numpy(), self.data.val.labels.numpy())

    @property
    def temperature(self) -> float | None:
        """The temperature every evaluator applies (1.0 when the fit was degenerate); None without one."""
        return None if self.temperature_fit is None else self.temperature_fit.temperature


class Evaluator:
    """Base class of evaluators. Subclasses set ``Config`` and the declarations below (class attributes,
    or the methods that return them when they depend on the configuration) and override ``evaluate``."""

    name: ClassVar[str] = ""
    Config: ClassVar[type] = NoConfig
    summary: ClassVar[str] = ""
    #: The metrics ``evaluate`` returns.
    metrics: ClassVar[dict[str, MetricInfo]] = {}
    #: Title of this evaluator's columns when a board is split to fit a terminal.
    group: ClassVar[str] = ""
    #: ``vicinal leaderboard --by`` axes over this evaluator's metric families.
    breakdowns: ClassVar[tuple[Breakdown, ...]] = ()
    #: Report figures drawn from its metrics.
    figures: ClassVar[tuple[FigureSpec, ...]] = ()
    #: Images it writes with ``ctx.artifact_path(name)``, by name: their gallery title and caption.
    artifacts: ClassVar[dict[str, Artifact]] = {}
    #: Derivations (``vicinal.derived``) to compute across a suite's results from its metrics.
    derived: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        raise NotImplementedError

    def metric_info(self) -> dict[str, MetricInfo]:
        """The metrics this evaluator reports under its configuration (names may depend on it)."""
        return dict(self.metrics)

    def declarations(self) -> Declarations:
        """Its group, breakdowns, figures and derivations under its configuration."""
        return Declarations(self.group, tuple(self.breakdowns), tuple(self.figures), tuple(self.derived))

    def protocol(self) -> dict[str, Any]:
        """Every choice that determines this evaluator's numbers; recorded in each result file."""
        return dataclasses.asdict(self.config)

    def check_declarations(self) -> None:
        """Raise VicinalError, before anything is trained, if what it declares would not load back from a
        result file (a plugin's typo would otherwise make every file it writes unreadable)."""
        try:
            for name, info in self.metric_info().items():
                MetricInfo.from_json(info.to_json(), f"metric {name!r}")
            Declarations.from_json(self.declarations().to_json(), "declarations")
            load(dict[str, Artifact], {k: a.to_json() for k, a in self.artifacts.items()}, "artifacts")
        except ValueError as exc:
            raise VicinalError(f"evaluator {self.name}: {exc}") from None
        except (TypeError, AttributeError) as exc:
            raise VicinalError(
                f"evaluator {self.name}: {exc} (metrics and artifacts are dicts of MetricInfo and Artifact; "
                "breakdowns, figures and derived are tuples)"
            ) from None


EVALUATORS: Registry[type[Evaluator]] = Registry("evaluator", "vicinal.evaluators", "vicinal.evaluators")


def seeded_subset(n_total: int, n: int, seed: int) -> torch.Tensor:
    """Indices (sorted) of a seeded subset of ``n`` of ``n_total`` images, the same for every method and
    run; all of them when ``n`` is 0 or at least ``n_total``."""
    if n <= 0 or n >= n_total:
        return torch.arange(n_total)
    return torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))[:n].sort().values


def register_evaluator(name: str) -> Callable[[type[Evaluator]], type[Evaluator]]:
    """Class decorator: ``@register_evaluator("occlusion")`` makes the evaluator available by that name."""
    return EVALUATORS.register_class(name, Evaluator)
