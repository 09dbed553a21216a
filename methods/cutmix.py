"""CutMix (Yun et al., ICCV 2019), shipped as the registry's worked example: this file is all it takes.

A box of area 1−λ from a partner image is pasted in; the labels are mixed by the pasted area.
"""

import math
from dataclasses import dataclass

from vicinal.core.hparams import hp
from vicinal.training.method import (
    Method,
    Preview,
    StepOutput,
    mixed_correct,
    mixed_cross_entropy,
    register_method,
)


@register_method("cutmix")
class CutMix(Method):
    mixes_in = "input"
    summary = "CutMix: paste a random box from a partner image; labels mixed by the box's area."

    @dataclass
    class Config:
        alpha: float = hp(1.0, "Beta(α, α) parameter of λ (the kept area)", ge=0)
        prob: float = hp(1.0, "probability of applying CutMix to a batch (else plain CE)", ge=0, le=1)

    def training_step(self, model, x, y, rng):
        if rng.numpy.random() >= self.config.prob:
            logits = model(x)
            return StepOutput(
                mixed_cross_entropy(logits, y, y, 1.0), mixed_correct(logits, y, y, 1.0), len(y)
            )
        lam = rng.beta(self.config.alpha)
        perm = rng.permutation(len(x), x.device)
        mixed, lam = self.paste_box(x, perm, lam, rng)
        y_b = y[perm]
        logits = model(mixed)
        return StepOutput(
            mixed_cross_entropy(logits, y, y_b, lam), mixed_correct(logits, y, y_b, lam), len(y)
        )

    @staticmethod
    def paste_box(x, perm, lam, rng):
        """x with a box of area ≈ 1−λ from x[perm] pasted in; returns it and the area actually kept."""
        h, w = x.shape[2:]
        cut_h, cut_w = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
        cy, cx = rng.integer(h), rng.integer(w)
        top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
        left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
        mixed = x.clone()
        mixed[:, :, top:bottom, left:right] = x[perm, :, top:bottom, left:right]
        return mixed, 1 - (bottom - top) * (right - left) / (h * w)  # the area kept after clipping

    def preview(self, x, y, perm, rng):
        mixed, kept = self.paste_box(x, perm, rng.beta(self.config.alpha), rng)
        return Preview(
            {"image A": x, "image B": x[perm], f"box from B, A keeps {kept:.0%}": mixed},
            "one box per batch; labels mixed by the area kept",
        )
