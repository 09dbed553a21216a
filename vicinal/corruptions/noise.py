"""Noise corruptions: Gaussian, shot (Poisson), impulse (salt and pepper) and speckle noise.

Each is the reference's formula (hendrycks/robustness ``make_*_c.py``) on the whole batch, with torch's
generator instead of numpy's global state, so only the random draws differ:

* ``gaussian_noise`` — ``x + N(0, c²)`` per value.
* ``shot_noise`` — ``Poisson(x·c) / c`` per value (``torch.poisson`` with the generator).
* ``impulse_noise`` — skimage's ``random_noise(mode="s&p", amount=c)`` as current skimage (and so
  imagecorruptions) draws it: each value independently flipped with probability c, to 1 or 0 with equal
  odds. (skimage releases before 0.14 placed ``ceil(c·size/2)`` salt and pepper values at random
  coordinates with replacement instead; the expected fraction of flips is the same to within collisions.)
* ``speckle_noise`` — ``x + x·N(0, c²)`` per value.
"""

from __future__ import annotations

import torch

from vicinal.corruptions.core import register


def _randn(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)


@register("gaussian_noise", "noise", common=True, random=True)
def gaussian_noise(x: torch.Tensor, param: float, gen: torch.Generator) -> torch.Tensor:
    return x + _randn(x, gen) * param


@register("shot_noise", "noise", common=True, random=True)
def shot_noise(x: torch.Tensor, param: float, gen: torch.Generator) -> torch.Tensor:
    return torch.poisson(x * param, generator=gen) / param


@register("impulse_noise", "noise", common=True, random=True)
def impulse_noise(x: torch.Tensor, param: float, gen: torch.Generator) -> torch.Tensor:
    u = torch.rand((2, *x.shape), generator=gen, device=x.device)
    flipped, salted = u[0] < param, u[1] < 0.5
    return torch.where(flipped, salted.to(x.dtype), x)


@register("speckle_noise", "noise", common=False, random=True)
def speckle_noise(x: torch.Tensor, param: float, gen: torch.Generator) -> torch.Tensor:
    return x + x * _randn(x, gen) * param
