"""Noise corruptions: Gaussian, shot (Poisson), impulse (salt and pepper) and speckle noise.

Each is the reference's formula (hendrycks/robustness ``make_*_c.py``) on the whole batch, with torch's
generator instead of numpy's global state, so only the random draws differ:

* ``gaussian_noise`` — ``x + N(0, c²)`` per value.
* ``shot_noise`` — ``Poisson(x·c) / c`` per value (``torch.poisson``; on the CPU in eight streams with
  generators seeded from the given one, run in threads, as the op itself uses one core).
* ``impulse_noise`` — skimage's ``random_noise(mode="s&p", amount=c)`` as current skimage (and so
  imagecorruptions) draws it: each value independently flipped with probability c, to 1 or 0 with equal
  odds. (Older skimage releases placed ``ceil(c·size/2)`` salt and ``ceil(c·size/2)`` pepper values at
  random coordinates with replacement; the fraction of changed values is the same up to collisions.)
* ``speckle_noise`` — ``x + x·N(0, c²)`` per value.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch

from vicinal.corruptions.core import register


def _randn(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)


@register("gaussian_noise", "noise", common=True, random=True)
def gaussian_noise(x: torch.Tensor, param: float, gen: torch.Generator) -> torch.Tensor:
    return x + _randn(x, gen) * param


# Fixed, so the draws do not depend on how many threads run them.
_POISSON_STREAMS = 8


def poisson(rates: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Poisson draws with the given rates. On the CPU ``torch.poisson`` runs on one core, so the values
    are split into a fixed number of streams, each with its own generator seeded from ``gen``, and the
    streams run in threads (the op releases the GIL): same result for any thread count."""
    if rates.device.type != "cpu" or rates.numel() < 1 << 16:
        return torch.poisson(rates, generator=gen)
    seeds = torch.randint(0, 2**62, (_POISSON_STREAMS,), generator=gen, device=rates.device).tolist()
    flat = rates.reshape(-1)
    out = torch.empty_like(flat)
    bounds = torch.linspace(0, flat.numel(), _POISSON_STREAMS + 1).long().tolist()

    def stream(i: int) -> None:
        sub = torch.Generator().manual_seed(seeds[i])
        out[bounds[i] : bounds[i + 1]] = torch.poisson(flat[bounds[i] : bounds[i + 1]], generator=sub)

    workers = max(1, min(torch.get_num_threads(), _POISSON_STREAMS))
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(stream, range(_POISSON_STREAMS)))
    return out.view(rates.shape)


@register("shot_noise", "noise", common=True, random=True)
def shot_noise(x: torch.Tensor, param: float, gen: torch.Generator) -> torch.Tensor:
    return poisson(x * param, gen) / param


@register("impulse_noise", "noise", common=True, random=True)
def impulse_noise(x: torch.Tensor, param: float, gen: torch.Generator) -> torch.Tensor:
    # One uniform per value: below c/2 salt, in [c/2, c) pepper — flipped with probability c, then salt
    # or pepper with equal odds, as skimage's two Bernoulli draws give.
    u = torch.rand(x.shape, generator=gen, device=x.device)
    return torch.where(u < param, (u < param / 2).to(x.dtype), x)


@register("speckle_noise", "noise", common=False, random=True)
def speckle_noise(x: torch.Tensor, param: float, gen: torch.Generator) -> torch.Tensor:
    return x + x * _randn(x, gen) * param
