"""Input mixup (Zhang et al., ICLR 2018): convex combinations of image pairs and of their labels."""

from dataclasses import dataclass

import torch

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
from vicinal.training.rng import RunRandom


@dataclass
class MixedBatch:
    x: torch.Tensor
    y_a: torch.Tensor
    y_b: torch.Tensor
    lam: float
    perm: torch.Tensor


def mix_batch(x: torch.Tensor, y: torch.Tensor, alpha: float, rng: RunRandom) -> MixedBatch:
    """One λ ~ Beta(α, α) for the batch, partners from a random permutation of the batch."""
    lam = rng.beta(alpha)
    perm = rng.permutation(len(x), x.device)
    return MixedBatch(interpolate(x, perm, lam), y, y[perm], lam, perm)


@register_method("mixup")
class Mixup(Method):
    mixes_in = "input"
    summary = "Input mixup: λ~Beta(α,α) per batch, x̃=λx_i+(1−λ)x_j, loss λCE(y_i)+(1−λ)CE(y_j)."

    @dataclass
    class Config:
        alpha: float = hp(1.0, "Beta(α, α) parameter of the mixing coefficient λ (0 disables mixing)", ge=0)

    def training_step(self, model, x, y, rng):
        batch = mix_batch(x, y, self.config.alpha, rng)
        logits = model(batch.x)
        return StepOutput(
            mixed_cross_entropy(logits, batch.y_a, batch.y_b, batch.lam),
            mixed_correct(logits, batch.y_a, batch.y_b, batch.lam),
            len(y),
        )

    def preview(self, x, y, perm, rng):
        lam = rng.beta(self.config.alpha)
        return Preview(
            {"image A": x, "image B": x[perm], f"mixed, λ = {lam:.2f}": interpolate(x, perm, lam)},
            f"one λ ~ Beta({self.config.alpha:g}, {self.config.alpha:g}) per batch; labels mixed by λ",
        )
