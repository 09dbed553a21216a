"""Noisy Feature Mixup (Lim, Erichson, Utrera, Xu & Mahoney, ICLR 2022, arXiv 2110.02180): manifold mixup
with additive and multiplicative noise at the mixed layer.

Per batch: a layer drawn uniformly from {input, outputs of the model's first ``layers`` = 3 mixable
stages} (the reference's PreActResNet-18: the input or the output of residual stage 1, 2 or 3),
λ ~ Beta(α, α) with α = 1, partners from a random permutation; at that layer the batch's activations h
become m ⊙ (λh + (1 − λ)h[perm]) + a, elementwise, with
a = σ_add·β_add·N(0, 1) and m = 1 + σ_mult·β_mult·U(−1, 1), β_add, β_mult ~ Beta(2, 5) drawn per batch,
σ_add = 0.4, σ_mult = 0.2 (the paper's CIFAR settings); loss λ·CE(y_i) + (1 − λ)·CE(y_j). The model
names its stages (``mixing_layers()``) and the noisy mix is a forward hook, as for manifold mixup.

The input level is the *normalised* image, as in the reference, whose data loader standardises images
before the model sees them: vicinal models normalise inside, so the input-level mix and noise are applied
to the output of the model's ``normalize`` module (noise of 0.4 in pixel units would be about four times
stronger). A model without one cannot take input-level NFM: set ``include_input = false``.

Fidelity (tests/test_noisy_feature_mixup.py, against erichson/NFM at ed22d5d, its ``do_noisy_mixup`` run
on the CPU): for its recorded λ, permutation and Beta draws and the same torch generator state, the noisy
mix equals the reference's to float32 rounding (several noise levels, either noise off); over 2,000 draws
the size of the noise matches the reference's.

Where vicinal differs from the reference code, and why:

- **Randomness**: the layer, λ, the permutation and both Beta draws come from the run's generators; the
  noise itself from a torch generator on the activations' device, seeded from the run's stream per step
  (``RunRandom.generator_on``), so that batch-sized noise is drawn where it is used, as the reference
  draws it on the GPU. Both Beta values are drawn every step, also for a level of 0 (the reference skips
  the draw), so that the streams do not depend on the settings.
- **Which stages**: the first ``layers`` of the model's ``mixing_layers()`` (three: layer1–3 of vicinal's
  PreActResNet-18, as in the reference; stage1–3 of the small CNN, after which come only pooling and the
  linear head).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from vicinal import (
    Method,
    Preview,
    StepOutput,
    VicinalError,
    hp,
    interpolate,
    mixed_correct,
    mixed_cross_entropy,
    register_method,
)


def noisy(h: torch.Tensor, add_scale: float, mult_scale: float, generator: torch.Generator) -> torch.Tensor:
    """m ⊙ h + a with a = add_scale·N(0, 1) and m = 1 + mult_scale·U(−1, 1), elementwise, drawn from
    ``generator`` (normal first, then uniform) in the reference's order of operations."""
    add: torch.Tensor | float = 0.0
    mult: torch.Tensor | float = 1.0
    if add_scale > 0:
        add = add_scale * torch.randn(h.shape, generator=generator, device=h.device)
    if mult_scale > 0:
        mult = mult_scale * (2 * torch.rand(h.shape, generator=generator, device=h.device) - 1) + 1
    return mult * h + add


@contextmanager
def noisy_mix_output_of(
    module: nn.Module,
    perm: torch.Tensor,
    lam: float,
    add_scale: float,
    mult_scale: float,
    generator: torch.Generator,
) -> Iterator[None]:
    """Within the block, ``module``'s output is mixed with its permutation and perturbed by :func:`noisy`."""

    def hook(_module, _inputs, out):
        return noisy(interpolate(out, perm, lam), add_scale, mult_scale, generator)

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@register_method("noisy-feature-mixup")
class NoisyFeatureMixup(Method):
    mixes_in = "hidden"
    summary = (
        "Noisy Feature Mixup: manifold mixup at a layer drawn from {input, stage 1–3} plus additive "
        "(0.4·Beta(2,5)·N(0,1)) and multiplicative (1 + 0.2·Beta(2,5)·U(−1,1)) noise there; α = 1."
    )

    @dataclass
    class Config:
        alpha: float = hp(1.0, "Beta(α, α) parameter of λ", ge=0)
        add_noise_level: float = hp(0.4, "σ_add: additive noise σ_add·Beta(2, 5)·N(0, 1)", ge=0)
        mult_noise_level: float = hp(0.2, "σ_mult: multiplicative noise 1 + σ_mult·Beta(2, 5)·U(−1, 1)", ge=0)
        layers: int = hp(3, "mix at the input or after one of the model's first N mixable stages", ge=0)
        include_input: bool = hp(True, "the (normalised) input itself is one of the candidate layers")

        def validate(self) -> None:
            if self.layers == 0 and not self.include_input:
                raise ValueError("no candidate layer: set layers ≥ 1 or include_input = true")

    def candidates(self, model: nn.Module) -> dict[str, nn.Module]:
        """The modules whose outputs may be mixed, by name: the input's normaliser, then the stages."""
        stages = model.mixing_layers()
        if self.config.layers > len(stages):
            raise VicinalError(
                f"noisy-feature-mixup.layers = {self.config.layers}, but the model exposes only "
                f"{len(stages)} mixable stages ({', '.join(stages)})"
            )
        out = {}
        if self.config.include_input:
            normalize = getattr(model, "normalize", None)
            if not isinstance(normalize, nn.Module):
                raise VicinalError(
                    "noisy-feature-mixup adds its input-level noise to the normalised image, the output of "
                    f"the model's `normalize` module, and {type(model).__name__} has none: give it one "
                    "(vicinal.training.models.Normalize) or set noisy-feature-mixup.include_input = false"
                )
            out["input"] = normalize
        out.update(list(stages.items())[: self.config.layers])
        return out

    def prepare(self, ctx) -> dict:
        # Only for the preview, which draws the input-level noise in pixels: the training images'
        # per-channel mean and spread (the model's normalisation), from up to 4,096 of them.
        images = ctx.train.images[:4096].float() / 255
        self.pixel_mean = images.mean(dim=(0, 2, 3))
        self.pixel_std = images.std(dim=(0, 2, 3)).clamp_min(1e-3)
        return {}

    def training_step(self, model, x, y, rng):
        c = self.config
        options = self.candidates(model)
        name = list(options)[rng.integer(len(options))]
        lam = rng.beta(c.alpha)
        perm = rng.permutation(len(x), x.device)
        add_scale = c.add_noise_level * float(rng.numpy.beta(2, 5))
        mult_scale = c.mult_noise_level * float(rng.numpy.beta(2, 5))
        generator = rng.generator_on(x.device)
        with noisy_mix_output_of(options[name], perm, lam, add_scale, mult_scale, generator):
            logits = model(x)
        y_b = y[perm]
        return StepOutput(
            mixed_cross_entropy(logits, y, y_b, lam), mixed_correct(logits, y, y_b, lam), len(y)
        )

    def preview(self, x, y, perm, rng):
        c = self.config
        lam = rng.beta(c.alpha)
        add_scale = c.add_noise_level * float(rng.numpy.beta(2, 5))
        mult_scale = c.mult_noise_level * float(rng.numpy.beta(2, 5))
        rows = {"image A": x, "image B": x[perm]}
        if c.include_input:
            # The noise is drawn in the model's normalised units and shown in pixels: scaled by the
            # training images' per-channel std (additive noise; the multiplicative noise scales the
            # normalised value, i.e. acts around the channel mean).
            mean = getattr(self, "pixel_mean", x.mean(dim=(0, 2, 3))).to(x.device)[:, None, None]
            std = getattr(self, "pixel_std", x.std(dim=(0, 2, 3))).to(x.device)[:, None, None]
            mixed = interpolate(x, perm, lam)
            shown = (
                noisy((mixed - mean) / std, add_scale, mult_scale, rng.generator_on(x.device)) * std + mean
            )
            rows[f"input-level mix, λ = {lam:.2f}"] = mixed
            rows["… with its noise (as trained on)"] = shown.clamp(0, 1)
        return Preview(
            rows,
            "mixes and perturbs the input or a hidden layer (drawn per batch); only the input level is an "
            "image (noise shown clipped to [0, 1])",
        )
