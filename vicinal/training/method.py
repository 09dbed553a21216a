"""The interface of a vicinal method and the registry that holds them.

A method differs from ERM in three places, and the interface has one hook for each:

* ``prepare(ctx)``: what it needs before training (VarMixup trains or loads a VAE here);
* ``training_step(model, x, y, rng)``: where it mixes (inputs, a hidden layer through the model's
  ``mixing_layers()`` and a forward hook, or the latent space of a generative model) and how the loss
  is formed (mixed targets via :func:`mixed_cross_entropy`);
* ``Config``: a dataclass of hyperparameters with defaults, overridable from suites and ``--set``.

Adding a method is one file with one decorator; see docs/plugins.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from vicinal.core.hparams import NoConfig
from vicinal.core.registry import Registry

if TYPE_CHECKING:  # torch is imported where a method runs, so listing methods does not load it
    import torch
    from torch import nn

    from vicinal.core.reporting import Reporter
    from vicinal.data.datasets import ImageSet
    from vicinal.training.rng import RunRandom


@dataclass
class StepOutput:
    """What one training step produced: the loss to minimise, the expected number of correct predictions
    under the mixed targets (for the progress bar), and ``count``, the number of images the classifier
    was trained on in this step — the batch size, or twice it for a method that adds the clean batch to
    its mixed one. Summed into the result's ``training.images_forwarded``, so compute can be compared."""

    loss: torch.Tensor
    #: A float or a 0-d tensor; a tensor left on the device keeps the step from waiting for the GPU.
    correct: float | torch.Tensor
    count: int


@dataclass
class Preview:
    """What a method trains on, for people to look at: named rows of images (N, C, H, W) in [0, 1], one
    column per pair, drawn as a grid by the runner (``<result>.samples.png``) and shown in the report."""

    rows: dict[str, torch.Tensor]
    note: str = ""


@dataclass
class PrepareContext:
    """Everything a method may use before training starts."""

    train: ImageSet
    num_classes: int
    dataset: str
    data_fingerprint: str
    seed: int
    device: torch.device
    cache_dir: Path
    #: Tells people where long preparation is (``reporter.task(label, total)``, ``.advance``, ``.line``,
    #: ``reporter.warn``): see :mod:`vicinal.core.reporting`.
    reporter: Reporter


class Method:
    """Base class of vicinal methods. Subclasses set ``Config`` and override ``training_step``."""

    name: ClassVar[str] = ""
    Config: ClassVar[type] = NoConfig
    #: Where the vicinal distribution lives, shown by ``vicinal methods`` as "vicinity in": "input",
    #: "hidden" or "latent" — for a vicinity that mixes pairs there (mixup, manifold mixup, VarMixup) and
    #: for one around each example that mixes nothing (Gaussian noise x + σε: "input") alike — or "none"
    #: for no vicinity at all (ERM: the training examples as they are). The name is kept from 0.1.
    mixes_in: ClassVar[str] = "none"
    #: One line for ``vicinal methods``.
    summary: ClassVar[str] = ""

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()

    def prepare(self, ctx: PrepareContext) -> dict[str, Any]:
        """Build whatever the method needs before training; returns facts to record in the result."""
        return {}

    def training_step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: RunRandom) -> StepOutput:
        """One step on the augmented batch ``x`` (float in [0, 1], N×C×H×W) with labels ``y``: mix where
        the method mixes, form the loss, and return it with the expected number of correct predictions and
        the number of images the classifier saw. All randomness comes from ``rng``, the run's seeded state."""
        raise NotImplementedError

    def preview(self, x: torch.Tensor, y: torch.Tensor, perm: torch.Tensor, rng: RunRandom) -> Preview | None:
        """The training samples this method makes from clean images ``x`` (in [0, 1]) paired with
        ``x[perm]``; called after ``prepare`` and training with a fixed seed. The caller fixes the pairs so
        that every method's grid shows the same images. None: this method draws no preview."""
        return None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "mixes_in": self.mixes_in,
            "summary": self.summary,
            "hyperparameters": dataclasses.asdict(self.config),
        }


METHODS: Registry[type[Method]] = Registry(
    "method", "vicinal.methods", "vicinal.methods", decorator="register_method"
)


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    """Class decorator: ``@register_method("mixup")`` makes the method available under that name."""
    return METHODS.register_class(name, Method)


def list_methods(pattern: str = "*") -> list[str]:
    return METHODS.names(pattern)


def get_method(name: str) -> type[Method]:
    return METHODS.get(name)


# ---------------------------------------------------------------- helpers shared by methods


def mixed_cross_entropy(
    logits: torch.Tensor, y_a: torch.Tensor, y_b: torch.Tensor, lam: float
) -> torch.Tensor:
    """λ·CE(logits, y_a) + (1−λ)·CE(logits, y_b): the mixup loss (= CE with the mixed one-hot target)."""
    import torch.nn.functional as F

    return lam * F.cross_entropy(logits, y_a) + (1.0 - lam) * F.cross_entropy(logits, y_b)


def mixed_correct(logits: torch.Tensor, y_a: torch.Tensor, y_b: torch.Tensor, lam: float) -> torch.Tensor:
    """Expected correct predictions under the mixed targets, λ·#(pred = y_a) + (1−λ)·#(pred = y_b), as a
    0-d tensor on the logits' device (turning it into a float would make every step wait for the GPU)."""
    pred = logits.argmax(1)
    return lam * (pred == y_a).sum() + (1.0 - lam) * (pred == y_b).sum()


def interpolate(a: torch.Tensor, perm: torch.Tensor, lam: float) -> torch.Tensor:
    """λ·a + (1−λ)·a[perm]: pair every example with the one the permutation assigns it."""
    return lam * a + (1.0 - lam) * a[perm]


@contextmanager
def mix_output_of(module: nn.Module, perm: torch.Tensor, lam: float):
    """Within the block, ``module``'s output is replaced by its mix with the permuted batch."""
    handle = module.register_forward_hook(lambda _m, _inp, out: interpolate(out, perm, lam))
    try:
        yield
    finally:
        handle.remove()
