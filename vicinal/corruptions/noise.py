"""Noise corruptions: Gaussian, shot (Poisson), impulse (salt and pepper) and speckle noise.

Each is the reference's formula (hendrycks/robustness ``make_*_c.py``) on the whole batch, with torch's
generator instead of numpy's global state, so only the random draws differ:

* ``gaussian_noise`` — ``x + N(0, c²)`` per value.
* ``shot_noise`` — ``Poisson(x·c) / c`` per value. For 8-bit images (uint8, or floats that are exactly
  ``level/255``) the rate takes one of 256 values per severity, and the draws come by inverse CDF from
  per-level tables (``poisson_of_levels``): the exact Poisson(l·c/255) probabilities up to float64
  rounding of the CDF and the 2^-53 resolution of the uniform (the support left out past 20 standard
  deviations weighs nothing in float64); the tests check the sampler against scipy's CDF uniform by
  uniform. The rate is the reference's float64 l·c/255. Other float images use
  ``torch.poisson``. Since engine version 2 the draws for 8-bit images come from this sampler instead of
  ``torch.poisson`` (seeded outputs changed, their distribution did not).
* ``impulse_noise`` — skimage's ``random_noise(mode="s&p", amount=c)`` as current skimage (and so
  imagecorruptions) draws it: each value independently flipped with probability c, to 1 or 0 with equal
  odds (one 31-bit uniform integer per value: the odds exact to 2^-31; before engine version 2 a float
  uniform). (Older skimage releases placed ``ceil(c·size/2)`` salt and ``ceil(c·size/2)`` pepper values at
  random coordinates with replacement; the fraction of changed values is the same up to collisions.)
* ``speckle_noise`` — ``x + x·N(0, c²)`` per value.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import torch

from vicinal.corruptions.core import register


def _randn(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)


@register("gaussian_noise", "noise", common=True, random=True)
def gaussian_noise(x: torch.Tensor, param: float, gen: torch.Generator) -> torch.Tensor:
    return torch.empty_like(x).normal_(0.0, param, generator=gen).add_(x)


# --------------------------------------------------------------------------------------------------------
# Poisson draws for 8-bit images: inverse CDF from per-level tables

#: Guide cells per level (a power of two: a cell is the top bits of a uniform integer). 2^9 cells keep a
#: table at 512 KB, within a core's cache.
_CELL_BITS = 9
#: Bits of the uniform compared with a cell's 16-bit threshold; equal values are searched instead.
_FRACTION_BITS = 16
#: Bits of a searched uniform: 31 drawn for every value, the rest only for the values searched.
_SEARCH_BITS = 53


@lru_cache(maxsize=32)
def _poisson_tables_cpu(c: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse-CDF tables of Poisson(l·c/255) for the 256 levels l.

    Each level's unit interval is cut into 2^9 cells. ``cells`` holds, per (level, cell), one int32:
    the draw k at the cell's start in its upper 16 bits, and in its lower 16 where in the cell the CDF
    steps to k + 1 (floor, in 2^16ths; 2^16 - 1 when it does not step inside the cell). A cell the CDF
    steps twice or more in (the tails) holds ``-1 - k`` above: its uniforms are searched in ``keys``,
    the CDF of every level as one sorted int64 array (``l·2^54 + ceil(CDF_l(k)·2^53)``, k = 0…width-1).
    The support reaches 20 standard deviations (plus 40) past the largest rate, where the probability
    left out is far below float64's resolution.
    """
    rates = torch.arange(256, dtype=torch.float64) * (float(c) / 255.0)
    top = float(rates[-1])
    width = int(top + 20.0 * math.sqrt(top) + 40.0)
    k = torch.arange(width, dtype=torch.float64)
    log_pmf = k * torch.log(rates[:, None]) - rates[:, None] - torch.lgamma(k + 1.0)
    pmf = torch.exp(log_pmf)
    pmf[0] = 0.0
    pmf[0, 0] = 1.0  # rate 0: always 0 (the log formula gives NaN there)
    cdf = torch.cumsum(pmf, dim=1)
    cdf = cdf / cdf[:, -1:]
    cdf[:, -1] = 1.0  # every uniform in [0, 1) finds its draw
    cells = 1 << _CELL_BITS
    # With a = CDF·cells (exact: cells is a power of two), the draw at cell j's start is
    # #{k : a_k ≤ j} = #{k : ceil(a_k) ≤ j}, and the least k with CDF(k) ≥ the cell's end is
    # #{k : a_k < j + 1} = #{k : floor(a_k) ≤ j}: cumulative histograms instead of searches.
    a = cdf * cells
    ones = torch.ones_like(a, dtype=torch.int64)
    below = torch.zeros(256, cells + 1, dtype=torch.int64)
    first = below.scatter_add(1, torch.ceil(a).long(), ones).cumsum_(1)[:, :cells]
    last = below.scatter_add_(1, torch.floor(a).long(), ones).cumsum_(1)[:, :cells]
    start = torch.arange(cells, dtype=torch.float64)
    step = a.gather(1, first.clamp(max=width - 1)) - start  # where in the cell the CDF passes k = first
    cut = torch.floor(step * (1 << _FRACTION_BITS)).clamp_(0, (1 << _FRACTION_BITS) - 1).long()
    first = torch.where(last - first >= 2, -1 - first, first)
    packed = (first << _FRACTION_BITS) | cut
    keys = torch.ceil(cdf * 2.0**53).long() + (torch.arange(256)[:, None] << 54)
    return packed.to(torch.int32).reshape(-1), keys.reshape(-1)


def _poisson_tables(c: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    cells, keys = _poisson_tables_cpu(float(c))
    return cells.to(device), keys.to(device)


def poisson_of_levels(levels: torch.Tensor, c: float, gen: torch.Generator) -> torch.Tensor:
    """Poisson(l·c/255) draws for integer levels l in 0–255 (any shape, any integer dtype), as float32.

    Inverse-CDF sampling from one 31-bit uniform integer per value: its top 9 bits pick a cell of the
    level's table, the next 16 where in the cell it falls. Where that cannot tell (the cells the CDF
    steps twice in, and a fraction equal to the cell's threshold: about 1 % of the values), 22 more bits
    are drawn and the 53-bit uniform is searched in the level's CDF. So the draws have the Poisson
    probabilities up to the float64 CDF's rounding and the 2^-53 resolution of the uniform.
    """
    r = torch.empty(levels.shape, dtype=torch.int32, device=levels.device).random_(generator=gen)

    def more_bits(searched: torch.Tensor) -> torch.Tensor:
        extra = torch.empty(searched.shape, dtype=torch.int64, device=levels.device).random_(generator=gen)
        return extra >> (63 - (_SEARCH_BITS - 31))

    return _inverse_cdf(levels, r, c, more_bits)


def inverse_cdf(levels: torch.Tensor, u: torch.Tensor, c: float) -> torch.Tensor:
    """The Poisson(l·c/255) draw at uniform u/2^53 for each level l and 53-bit integer u (int64, same
    shape): the least k with u/2^53 < CDF(k), read from the tables as the sampler does (float32)."""
    low = u & ((1 << (_SEARCH_BITS - 31)) - 1)
    top = (u >> (_SEARCH_BITS - 31)).to(torch.int32)
    return _inverse_cdf(levels, top, c, lambda searched: low.reshape(-1)[searched])


def _inverse_cdf(
    levels: torch.Tensor, r: torch.Tensor, c: float, more_bits: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Draws at the 31-bit uniforms r; ``more_bits(searched)`` gives the next 22 bits of the uniforms at
    the flat positions ``searched``, where the table cannot tell."""
    # Flat positions index the values in row-major order, and the searched draws are written back
    # through a flat view: both need contiguous memory (a view of anything else fails or writes nowhere).
    levels, r = levels.contiguous(), r.contiguous()
    cells, keys = _poisson_tables(c, levels.device)
    width = keys.numel() // 256
    index = (levels.to(torch.int32) << _CELL_BITS) | (r >> (31 - _CELL_BITS))
    entry = cells.index_select(0, index.view(-1)).view(index.shape)  # one lookup in a 512 KB table
    k = entry >> _FRACTION_BITS
    cut = entry & ((1 << _FRACTION_BITS) - 1)
    fraction = (r >> (31 - _CELL_BITS - _FRACTION_BITS)) & ((1 << _FRACTION_BITS) - 1)
    draws = k + (fraction > cut)
    searched = torch.nonzero(((k < 0) | (fraction == cut)).view(-1)).squeeze(1)
    if searched.numel():
        # min k with u < CDF_l(k), i.e. the count of the level's keys at or below l·2^54 + u·2^53.
        level = levels.reshape(-1)[searched].long()
        u = (r.view(-1)[searched].long() << (_SEARCH_BITS - 31)) | more_bits(searched)
        found = torch.searchsorted(keys, (level << 54) | u, right=True) - level * width
        draws.view(-1)[searched] = found.to(draws.dtype)
    return draws.float()


def as_levels(x: torch.Tensor) -> torch.Tensor | None:
    """uint8 images as they are; float ones as their 8-bit levels if they are exactly ``level / 255`` in
    float32 everywhere (as ``corrupt`` makes of uint8 images), else None."""
    if x.dtype == torch.uint8:
        return x
    levels = (x * 255.0).round_()
    return levels.to(torch.uint8) if torch.equal(levels / 255.0, x) else None


@register("shot_noise", "noise", common=True, random=True, chunk_pixels=1 << 16, uint8_input=True)
def shot_noise(x: torch.Tensor, param: float, gen: torch.Generator) -> torch.Tensor:
    levels = as_levels(x)
    if levels is None:
        return torch.poisson(x * param, generator=gen) / param
    return poisson_of_levels(levels, float(param), gen).div_(param)


@register("impulse_noise", "noise", common=True, random=True)
def impulse_noise(x: torch.Tensor, param: float, gen: torch.Generator) -> torch.Tensor:
    # One uniform per value: below c/2 salt, in [c/2, c) pepper — flipped with probability c, then salt
    # or pepper with equal odds, as skimage's two Bernoulli draws give.
    # The uniform is a 31-bit integer (one 32-bit draw: half the cost of a float's), the odds exact to
    # 2^-31.
    r = torch.empty(x.shape, dtype=torch.int32, device=x.device).random_(generator=gen)
    flip, salt = round(param * 2.0**31), round(param / 2 * 2.0**31)
    return torch.where(r < flip, (r < salt).to(x.dtype), x)


@register("speckle_noise", "noise", common=False, random=True)
def speckle_noise(x: torch.Tensor, param: float, gen: torch.Generator) -> torch.Tensor:
    return torch.addcmul(x, x, _randn(x, gen), value=param)
