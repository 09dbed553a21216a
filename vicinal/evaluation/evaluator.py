"""The evaluator interface and registry. Built-in evaluators live in ``vicinal/evaluators/``, one file each.

Evaluators receive an :class:`EvalContext` that computes the clean test-set predictions once and shares
them, and return flat ``{metric: value}`` dicts. Each declares its metrics (direction, unit, breakdown
keys), its ``--by`` breakdowns, report figures, images and derived metrics
(:mod:`vicinal.store.declarations`); the runner records all of it in every result file, so the leaderboard and
report are rendered from the result files alone, without knowing any evaluator.
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

from vicinal.core.errors import VicinalError
from vicinal.core.hparams import NoConfig
from vicinal.core.reporting import Reporter, SilentReporter, Task
from vicinal.data.datasets import DataSplits, ImageSet, to_unit
from vicinal.evaluation.radii import eps_label, parse_eps
from vicinal.evaluation.registry import EVALUATORS
from vicinal.store.declarations import (
    Artifact,
    Breakdown,
    Declarations,
    FigureSpec,
    MetricInfo,
    inconsistencies,
    load,
)
from vicinal.store.outcomes import ARTIFACT, ExampleRecorder, Examples

__all__ = [
    "EVALUATORS",
    "EXAMPLES",
    "EvalContext",
    "Evaluator",
    "Examples",
    "MetricInfo",
    "eps_label",
    "parse_eps",
    "register_evaluator",
    "seeded_subset",
]

if TYPE_CHECKING:
    from vicinal.evaluation.calibration_metrics import TemperatureFit


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
    #: Tells people where a long evaluation is (see :mod:`vicinal.core.reporting`); silent by default.
    reporter: Reporter = field(default_factory=SilentReporter)
    #: The run's name in progress lines ("erm · seed 0"): :meth:`task` labels an evaluator's work with it.
    label: str = ""
    #: Per-example outcomes for paired comparisons (:mod:`vicinal.store.outcomes`), written beside the result.
    examples: ExampleRecorder = field(default_factory=ExampleRecorder)

    def task(self, what: str, total: float | None = None) -> Task:
        """A progress task for an evaluator's long work, named after the run (``erm · seed 0 ·
        adversarial``): a bar on a terminal; in a log, a line with how far, the rate and the time left
        at least every 30 s while it advances. Advance it as the work goes (per batch), not once at the
        end."""
        return self.reporter.task(f"{self.label} · {what}" if self.label else what, total)

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
        """Logits (float32 arithmetic, returned as float64 on the CPU) for a stream of uint8 batches (e.g.
        memory-mapped corrupted sets, or corrupted on the device), concatenated.

        With ``total`` (the number of images the stream holds) the logits go straight into one tensor:
        thousands of small kept tensors between the batches' large temporaries fragment glibc's heap,
        which then grows with the stream (3.5 GB for 95 cells of 3,000 CIFAR images, 0.7 GB without).
        """
        self.model.eval()
        out: list[torch.Tensor] = []
        full: torch.Tensor | None = None
        done = 0
        for batch in batches:
            # float32 on every device, never autocast (vicinal.host.devices.EVALUATION_PRECISION; the
            # runner turns TF32 off around every evaluator): one model gets the same numbers, up to
            # float32 rounding, on a CPU and a GPU, and its clean logits in the precision of its attacks.
            logits = self.model(to_unit(batch, self.device))
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
        """The model's logits on the test split. Not finite anywhere, the model is broken (its training
        diverged on its last steps, after the loss was read, or its weights are): every number an
        evaluator would draw from it is meaningless, so the run stops instead of writing them."""
        logits = self.predict(self.data.test)
        broken = int((~logits.isfinite()).any(dim=1).sum())
        if broken:
            raise VicinalError(
                f"the model's logits are NaN or infinite on {broken} of the {len(logits)} test images, so "
                "nothing is evaluated from it: its weights are broken (a training that diverged: lower the "
                "learning rate or the weight decay and run again)"
            )
        return logits

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
        from vicinal.evaluation.calibration_metrics import temperature_scaling

        return temperature_scaling(self.val_logits.numpy(), self.data.val.labels.numpy())

    @property
    def temperature(self) -> float | None:
        """The temperature every evaluator applies (1.0 when the fit was degenerate); None without one."""
        return None if self.temperature_fit is None else self.temperature_fit.temperature

    # ------------------------------------------------------------ per-example outcomes
    # (vicinal.store.outcomes)

    @cached_property
    def test_fingerprint(self) -> str:
        return self.data.test.fingerprint()

    def test_examples(self, index: torch.Tensor | None = None, description: str = "") -> Examples:
        """The clean test split as an example space: all of it, or the positions ``index`` (a seeded
        subset), in that order. Sets recorded on equal spaces are paired across runs and methods."""
        n = len(self.data.test)
        index = torch.arange(n) if index is None else index
        return Examples(f"{self.data.name} test", self.test_fingerprint, n, index.cpu().numpy(), description)

    def record_examples(self, name: str, examples: Examples, **columns: Any) -> None:
        """Store per-example columns of set ``name`` (one value per example of ``examples``, in order):
        ``correct`` (booleans), ``confidence…`` (in [0, 1]) or any other number per example."""
        self.examples.record(name, examples, **columns)

    def record_logits(
        self,
        name: str,
        examples: Examples,
        logits: torch.Tensor,
        labels: torch.Tensor,
        *,
        suffix: str = "",
        nll: bool = False,
        brier: bool = False,
    ) -> None:
        """Store what the logits say per example: ``correct`` and the top-1 ``confidence`` (and ``nll``,
        ``brier`` when asked), the latter names with ``suffix`` (``"_ts"``: after temperature scaling)."""
        z = logits.detach().double().cpu()
        y = labels.detach().cpu()
        log_p = z.log_softmax(1)
        columns: dict[str, torch.Tensor] = {
            "correct": z.argmax(1) == y,
            f"confidence{suffix}": log_p.max(1).values.exp(),
        }
        if nll:
            columns[f"nll{suffix}"] = -log_p[torch.arange(len(y)), y]
        if brier:
            p = log_p.exp()
            columns[f"brier{suffix}"] = (p - torch.nn.functional.one_hot(y, p.shape[1])).pow(2).sum(1)
        self.examples.record(name, examples, **columns)

    def statistic(
        self,
        metric: str,
        kind: str,
        sets: list[str] | tuple[str, ...],
        column: str = "correct",
        bins: int = 15,
        *,
        target: str = "correct",
        groups: Iterable[int] = (),
        level: float = 0.0,
    ) -> None:
        """Declare how ``metric`` is recomputed from the recorded sets, so that comparisons can resample
        test examples: ``kind`` "mean" of ``column`` (accuracy: ``correct``), or "ece", "oe", "mce" of the
        confidence ``column`` against ``correct`` over ``bins`` equal-width bins; the mean over ``sets``.
        Ranking kinds (:class:`vicinal.store.outcomes.Statistic`): selective prediction ("aurc", "eaurc",
        "augrc", "risk_at_coverage", "coverage_at_risk" at ``level``) of the score ``column`` against the
        boolean ``target``; OOD detection ("auroc", "aupr_in", "aupr_out", "fpr_at_tpr" at ``level``) of
        the score ``column`` for each of ``groups`` against group 0 of the group-code column ``target``."""
        self.examples.statistic(metric, kind, sets, column, bins, target=target, groups=groups, level=level)

    def write_examples(self) -> None:
        """Write the recorded outcomes beside the result (``<stem>.examples.npz``); called by the runner
        after every evaluator. A malformed record from a plugin costs the file, with a warning, not the
        run."""
        if not self.examples:
            return
        try:
            blob = self.examples.to_bytes()
        except ValueError as exc:
            self.reporter.warn(f"no per-example file: {exc}")
            return
        path = self.artifact_path(ARTIFACT, ".npz")
        if path is not None:
            path.write_bytes(blob)


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
    #: Derivations (``vicinal.board.derived``) to compute across a suite's results from its metrics.
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

    def check_inputs(self, ctx: EvalContext) -> None:
        """Check, before any model is trained, the data this evaluator will read besides the suite's (a
        corrupted set on disk, say): raise VicinalError for one that is missing, truncated or altered,
        rather than after hours of training. ``ctx`` has the suite's data and folders but no trained
        model (``ctx.model`` must not be used). Nothing to check by default."""

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
        declared = self.declarations()
        problems = inconsistencies(self.metric_info(), declared, derives=bool(declared.derived))
        if problems:
            raise VicinalError(f"evaluator {self.name}: " + "; ".join(problems))


#: How a result lists its per-example file (``artifacts["examples"]``).
EXAMPLES = Artifact(
    "Per-example outcomes",
    "Per test example of every scored set (clean, each corruption cell, each attack radius): correct or "
    "not and the top-1 confidence, with the examples' identity and the statistic behind each metric; read "
    "by vicinal compare and the leaderboard's best marking (vicinal.store.outcomes).",
    kind="data",
)


def seeded_subset(n_total: int, n: int, seed: int) -> torch.Tensor:
    """Indices (sorted) of a seeded subset of ``n`` of ``n_total`` images, the same for every method and
    run; all of them when ``n`` is 0 or at least ``n_total``."""
    if n <= 0 or n >= n_total:
        return torch.arange(n_total)
    return torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))[:n].sort().values


def register_evaluator(name: str) -> Callable[[type[Evaluator]], type[Evaluator]]:
    """Class decorator: ``@register_evaluator("occlusion")`` makes the evaluator available by that name.
    Its declarations under its default settings are checked against each other here (a metric along
    ``"nosie"`` beside a ``Breakdown("noise", …)`` is an error naming both, not a run that succeeds and a
    ``--by noise`` that finds nothing); a run checks them again under its own settings."""
    register = EVALUATORS.register_class(name, Evaluator)

    def decorator(cls: type[Evaluator]) -> type[Evaluator]:
        if isinstance(cls, type) and issubclass(cls, Evaluator):  # else register() says what is wrong
            if "name" not in cls.__dict__:
                cls.name = name
            try:
                default = cls()
            except Exception:  # settings without defaults, or refused ones: the run's settings are checked
                default = None
            if default is not None:
                default.check_declarations()  # before registering: a refused class is not left behind
        return register(cls)

    return decorator
