"""RegMixup (Pinto, Yang, Lim, Torr & Dokania, NeurIPS 2022, arXiv 2206.14502): mixup as a regulariser
added to the cross-entropy on the clean batch, with a large α.

Per batch: λ ~ Beta(α, α) with α = 20 (the reference's CIFAR-10 setting; 10 for CIFAR-100, which
``suites/cifar100.toml`` sets), partners from a random permutation of the batch, x̃ = λx_i + (1 − λ)x_j;
the clean batch and its mixes go through the model in one forward pass (2n images per step, shared
batch-norm statistics, as the reference does). The paper's objective is
L = CE(f(x), y) + η·[λ·CE(f(x̃), y_i) + (1 − λ)·CE(f(x̃), y_j)], η = 1; the loss minimised is its mean
over the 2n images, L/2 (``reduction = "mean"``, the official code's), or L itself (``"sum"``).

**The loss's scale: code, not text.** The official code takes one cross-entropy mean over the
concatenated 2n logits, ½·[CE + mixup CE] — half the paper's L at η = 1: the same minimiser and gradient
direction, but half the step at a given learning rate (and so twice the relative weight of weight decay).
Every RegMixup number the paper reports was made that way, and a suite's learning rate is tuned for a
loss of cross-entropy's scale, so ``reduction = "mean"`` is the default: ½·[CE + η·mixup CE], i.e. one
mean over the 2n images with the mixed ones weighted by η (the reference has no η). ``"sum"`` is the
formula as written (as VarMixup's ``decoded+clean`` sums its terms).

Fidelity (tests/test_regmixup.py, against FrancescoPinto/RegMixup at fd78465, its
``RegMixupModel.training_step`` on a fixed linear model): for its recorded λ and permutation, vicinal
feeds the model the same 2n images (the same position-weighted checksum) and its loss equals the
reference's (``"sum"``: exactly twice it); over 10,000 draws λ's mean and spread match the reference's.

Where vicinal differs from the reference code, and why:

- **Randomness**: λ from the run's numpy generator and the permutation from its torch generator; the
  reference uses numpy's and torch's global states. Same distributions, other streams.
- **One α**: the reference allows Beta(α, β); its defaults and the paper use α = β, so vicinal draws from
  the symmetric Beta(α, α) like its mixup.
- **η** is exposed (the reference fixes it at 1).
- **Equal compute** (``train_on = "half"``, vicinal's variant: the paper's full text was not available
  offline to check for one of its own): one batch of n images, the first ⌈n/2⌉ replaced by their mixes
  with a permutation among themselves, the other ⌊n/2⌋ kept clean, in one forward pass; the same
  objective estimated from half as many images per term, at ERM's n images per step. ``"mean"``: one
  mean over the n images (clean ones by CE, mixed ones by η·mixup CE); ``"sum"``: CE of the clean part
  + η·mixup CE of the mixed part, each a mean over its part.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from vicinal import (
    Method,
    Preview,
    StepOutput,
    hp,
    interpolate,
    mixed_correct,
    mixed_cross_entropy,
    register_method,
)


def half_split(n: int) -> int:
    """How many of a batch of ``n`` images ``train_on = "half"`` replaces by mixes: ⌈n/2⌉."""
    return n - n // 2


@register_method("regmixup")
class RegMixup(Method):
    mixes_in = "input"
    summary = (
        "RegMixup: CE on the clean batch + η·mixup CE on its mixes, λ~Beta(20,20) (α = 10 on CIFAR-100); "
        "clean and mixed in one pass (2n/step; train_on=half: n)."
    )

    @dataclass
    class Config:
        alpha: float = hp(
            20.0, "Beta(α, α) parameter of λ (the paper: 20 on CIFAR-10, 10 on CIFAR-100)", gt=0
        )
        eta: float = hp(1.0, "η, the weight of the mixup term beside the clean cross-entropy", ge=0)
        reduction: Literal["mean", "sum"] = hp(
            "mean",
            "mean: one mean over the images forwarded, ½·(CE + η·mixup CE) for clean+mixed (the official "
            "code's, which made the paper's results); sum: CE + η·mixup CE as the paper writes it",
        )
        train_on: Literal["clean+mixed", "half"] = hp(
            "clean+mixed",
            "clean+mixed: the batch and its n mixes (2n images per step, the paper); half: equal compute, "
            "the first ⌈n/2⌉ images replaced by mixes among themselves, the rest clean (n per step)",
        )

    def training_step(self, model, x, y, rng):
        c = self.config
        lam = rng.beta(c.alpha)
        if c.train_on == "half":
            m = half_split(len(x))
            perm = rng.permutation(m, x.device)
            logits = model(torch.cat([interpolate(x[:m], perm, lam), x[m:]]))
            mixed, clean = logits[:m], logits[m:]
            y_a, y_b, y_clean = y[:m], y[:m][perm], y[m:]
            count = len(x)
        else:
            perm = rng.permutation(len(x), x.device)
            # One pass over the clean batch and its mixes, as the reference does (shared BN statistics).
            logits = model(torch.cat([x, interpolate(x, perm, lam)]))
            clean, mixed = logits[: len(x)], logits[len(x) :]
            y_a, y_b, y_clean = y, y[perm], y
            count = 2 * len(x)
        clean_loss = F.cross_entropy(clean, y_clean)
        mixup_loss = c.eta * mixed_cross_entropy(mixed, y_a, y_b, lam)
        if c.reduction == "sum":
            loss = clean_loss + mixup_loss
        else:  # one mean over the images forwarded: each part's mean weighted by its number of images
            loss = (len(clean) * clean_loss + len(mixed) * mixup_loss) / (len(clean) + len(mixed))
        correct = (clean.argmax(1) == y_clean).sum() + mixed_correct(mixed, y_a, y_b, lam)
        return StepOutput(loss, correct, count)

    def preview(self, x, y, perm, rng):
        lam = rng.beta(self.config.alpha)
        beside = (
            "beside the clean batch" if self.config.train_on == "clean+mixed" else "in half of each batch"
        )
        return Preview(
            {"image A": x, "image B": x[perm], f"mixed, λ = {lam:.2f}": interpolate(x, perm, lam)},
            f"λ ~ Beta({self.config.alpha:g}, {self.config.alpha:g}) stays near ½; the mixes are trained "
            f"on {beside}, CE on the clean images + η·mixup CE",
        )
