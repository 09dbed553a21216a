"""FMix (Harris, Marcu, Painter, Niranjan, Prügel-Bennett & Hare, 2020, arXiv 2002.12047): mixed-sample
augmentation with masks cut from low-frequency Fourier noise.

Per batch: λ ~ Beta(α, α) (α = 1); a grey image is drawn from Fourier space — Gaussian noise scaled by
1 / max(f, 1/max(H, W))^δ at frequency f (decay power δ = 3), back to pixels by an inverse real FFT and
stretched to [0, 1] — and binarised: its top ⌈λ·HW⌉ or ⌊λ·HW⌋ pixels (rounding up or down with
probability ½) become 1, the rest 0. The batch is mixed with a random permutation of itself through that
one mask, x̃ = M ⊙ x + (1 − M) ⊙ x[perm], and the loss is λ·CE(y) + (1 − λ)·CE(y[perm]). ``max_soft`` > 0
(0 by default, as in the paper) softens the mask's edge: 2·⌊HW·s⌋ pixels around the threshold ramp
linearly from 1 to 0, s = min(max_soft, λ, 1 − λ).

**The paper's text and its code disagree on the spectrum.** The paper samples one complex Gaussian
coefficient per 2-D frequency. The official code (``make_low_freq_image``) draws and scales that H × W'
grid but then combines it with ``spectrum[:, 0] + 1j * spectrum[:, 1]`` on an array whose axis 1 is the
image's rows, so the grey image is built from rows 0 and 1 of the grid only: vertical frequencies
0 … W/2 (positive only) and horizontal frequencies 0 and 1, scaled by the magnitudes of frequencies
(0, j) and (1/H, j). Every FMix result the paper reports was made by that code, and its masks are still
low-frequency blobs (at δ = 3, 32 px, over 1,000 masks each: 3.9 % of adjacent pixel pairs cross the edge
for both constructions; the code's run more across rows, 4.5 against 3.2 %, the paper's 4.3 and 3.6 %), so
``spectrum = "reference"`` — the code's construction, bit for bit — is the default; ``spectrum =
"isotropic"`` is the paper's text. The tests pin both (``SPECTRA``).

Fidelity (tests/test_fmix.py, against ecs-vlc/FMix at e5991dc): for the reference's own noise field the
grey image equals its ``make_low_freq_image`` to 1e-12 and the mask equals its ``binarise_mask`` exactly
(even and odd sizes, soft edges included); over many seeded draws, λ, the mask's mean and the length of
its boundary (which the decay power sets) match the reference's statistics; and a single nonzero
coefficient shows where each spectrum puts it (a plane wave of that frequency for ``isotropic``).

Where vicinal differs from the reference code, and why:

- **Randomness**: λ, the noise field, the rounding coin and the permutation come from the run's
  generators (numpy and torch), in that order; the reference draws λ from scipy's global numpy state,
  the noise from ``np.random``, the coin from Python's ``random`` and the permutation from torch. Same
  distributions, other streams.
- **Mask size**: the batch's own height and width (the reference takes a ``size`` argument, (32, 32) by
  default for CIFAR).
- **Labels**: weighted by the drawn λ, as the reference does, not by the mask's mean (which differs from
  λ by less than one pixel's share, 1/HW, because of the rounding).
- The mask is made on the CPU in float64 with numpy's FFT (one H×W array per batch, microseconds) and
  copied to the batch's device; the reference does the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from vicinal import (
    Method,
    Preview,
    StepOutput,
    hp,
    mixed_correct,
    mixed_cross_entropy,
    register_method,
)
from vicinal.host.devices import to_device


def noise_shape(h: int, w: int) -> tuple[int, int, int]:
    """The shape of the Gaussian noise field behind an H×W mask: (H, frequencies along W, re/im). The
    reference keeps W//2 + 2 frequencies for odd W (one more than the inverse FFT uses), so for odd widths
    the field has one extra, unused column; kept so that the same field gives the same mask."""
    return h, w // 2 + (2 if w % 2 else 1), 2


#: How the scaled noise field (H × W' × 2) becomes the Fourier coefficients of the grey image.
SPECTRA: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    # The reference's ``spectrum[:, 0] + 1j * spectrum[:, 1]`` on its (1, H, W', 2) array picks rows 0 and 1
    # of the field as the real and imaginary parts: W' × 2 coefficients, i.e. vertical frequencies 0 … W'−1
    # (positive only) and horizontal frequencies 0 and 1, each scaled by the magnitude of frequency
    # (0, j) or (1/H, j) — not the H × W' grid it draws and scales.
    "reference": lambda field: field[0] + 1j * field[1],
    # The paper's text: every frequency of the real FFT gets its own complex Gaussian coefficient.
    "isotropic": lambda field: field[..., 0] + 1j * field[..., 1],
}


def low_frequency_image(
    noise: np.ndarray, h: int, w: int, decay: float, spectrum: str = "reference"
) -> np.ndarray:
    """The grey image in [0, 1] (H×W, float64) made from a noise field of :func:`noise_shape`: each
    frequency f's coefficient is the noise over max(f, 1/max(H, W))^decay, arranged as ``SPECTRA[spectrum]``
    says, back to pixels by numpy's inverse real FFT."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[: noise.shape[1]]
    freqs = np.sqrt(fx * fx + fy * fy)
    scale = 1.0 / np.maximum(freqs, 1.0 / max(w, h)) ** decay
    coefficients = SPECTRA[spectrum](scale[..., None] * noise)
    grey = np.fft.irfftn(coefficients, (h, w), axes=(0, 1))
    grey = grey - grey.min()
    return grey / grey.max()


def binarise(grey: np.ndarray, lam: float, round_up: bool, max_soft: float = 0.0) -> np.ndarray:
    """The mask of mean ≈ λ: the ⌈λ·HW⌉ (``round_up``) or ⌊λ·HW⌋ brightest pixels of ``grey`` set to 1, the
    rest 0, with a linear ramp over 2·⌊HW·s⌋ pixels around the cut when s = min(max_soft, λ, 1 − λ) > 0."""
    size = grey.size
    order = grey.reshape(-1).argsort()[::-1]
    num = math.ceil(lam * size) if round_up else math.floor(lam * size)
    soft = int(size * (min(lam, 1 - lam) if max_soft > lam or max_soft > 1 - lam else max_soft))
    low, high = num - soft, num + soft
    mask = np.zeros(size)
    mask[order[:high]] = 1
    mask[order[low:]] = 0
    mask[order[low:high]] = np.linspace(1, 0, high - low)
    return mask.reshape(grey.shape)


@dataclass
class FMixDraw:
    lam: float
    mask: torch.Tensor  # (H, W) float32 on the batch's device
    perm: torch.Tensor


@register_method("fmix")
class FMix(Method):
    mixes_in = "input"
    summary = (
        "FMix: one mask per batch, the top-λ pixels of low-frequency Fourier noise (decay δ = 3), pastes "
        "a permuted partner; λ~Beta(1,1), loss λCE(y_i)+(1−λ)CE(y_j)."
    )

    @dataclass
    class Config:
        alpha: float = hp(1.0, "Beta(α, α) parameter of λ, the mask's mean", gt=0)
        decay_power: float = hp(3.0, "δ: the noise's amplitude falls as 1/f^δ (larger: smoother masks)", gt=0)
        max_soft: float = hp(
            0.0, "soften the mask's edge over up to this fraction of pixels each side", ge=0, le=0.5
        )
        spectrum: Literal["reference", "isotropic"] = hp(
            "reference",
            "reference: the official code's Fourier coefficients (two rows of the noise field: vertical "
            "frequencies 0–W/2, horizontal 0 and 1), which made the paper's results; isotropic: the paper's "
            "text, one coefficient per 2-D frequency",
        )

    def draw(self, x: torch.Tensor, rng) -> FMixDraw:
        c = self.config
        h, w = x.shape[-2:]
        lam = rng.beta(c.alpha)
        noise = rng.numpy.standard_normal(noise_shape(h, w))
        round_up = bool(rng.numpy.random() > 0.5)
        grey = low_frequency_image(noise, h, w, c.decay_power, c.spectrum)
        mask = binarise(grey, lam, round_up, c.max_soft)
        perm = rng.permutation(len(x), x.device)
        return FMixDraw(lam, to_device(torch.as_tensor(mask, dtype=torch.float32), x.device), perm)

    @staticmethod
    def mix(x: torch.Tensor, d: FMixDraw) -> torch.Tensor:
        return d.mask * x + (1 - d.mask) * x[d.perm]

    def training_step(self, model, x, y, rng):
        d = self.draw(x, rng)
        logits = model(self.mix(x, d))
        y_b = y[d.perm]
        return StepOutput(
            mixed_cross_entropy(logits, y, y_b, d.lam), mixed_correct(logits, y, y_b, d.lam), len(y)
        )

    def preview(self, x, y, perm, rng):
        d = self.draw(x, rng)
        d.perm = perm
        mask = d.mask.expand_as(x)
        return Preview(
            {
                "image A": x,
                "image B": x[perm],
                "mask (white: from A)": mask,
                f"mixed, λ = {d.lam:.2f}": self.mix(x, d),
            },
            f"one low-frequency mask per batch (decay δ = {self.config.decay_power:g}); labels mixed by λ",
        )
