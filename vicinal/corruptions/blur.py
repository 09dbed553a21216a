"""Blur corruptions: defocus, glass, motion, zoom (the common four) and Gaussian blur (extra).

All work on a whole batch at once, on the images' device (CPU batches in slices of ``CHUNK_PIXELS``, see
``in_chunks``). How each relates to the reference generators (hendrycks/robustness ``make_*_c.py``):

* ``gaussian_blur`` — skimage's ``gaussian(sigma, multichannel)``: scipy's Gaussian (truncate 4, edge
  mode ``nearest``), as two products with banded matrices up to 32×32 px and as separable depthwise
  convolutions beyond. Same operator; float32 rounding only.
* ``defocus_blur`` — the reference's anti-aliased disk kernel (the same grid, normalisation and OpenCV
  Gaussian smoothing with reflect-101 borders, rebuilt in torch) and ``cv2.filter2D``'s reflect-101
  image border; a depthwise convolution, or an FFT product for disks of 11 taps and more on images
  larger than 32×32. Same operator.
* ``glass_blur`` — blur, ``np.uint8`` truncation, local pixel shuffle, blur. The reference's shuffle is a
  sequential Python loop over rows and columns (both descending, ``range(size - d, d, -1)``) whose
  "swap" ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` of numpy views in fact *copies*: pixel (h, w) takes
  the current value of (h + dy, w + dx), offsets ``randint(-d, d)`` (so in [-d, d-1]), and the neighbour
  keeps its value; pixels can so be duplicated and values travel along chains. That is reproduced
  exactly, as a wavefront: visit (row index i, column index j) of the loop runs at time ``j + (d+1)·i``
  (all at time 0 when d = 1, since then every read is of a pixel not yet visited or itself: one
  selection among four neighbours); every pixel a visit reads that the loop writes earlier has an
  earlier time, every one written later a time no earlier, and reads of a step happen before its
  writes, so the result equals the sequential loop's for the same offsets (checked against a literal
  loop, and against imagecorruptions with its own draws replayed, in the tests). Only the random numbers
  differ (torch generator instead of numpy's global state).
* ``motion_blur`` — the reference calls ImageMagick's ``MotionBlurImage`` through Wand. Its kernel is
  rebuilt here as imagecorruptions' ``_motion_blur`` does: width ``2·ceil(radius)+1``, one-sided Gaussian
  weights ``exp(-i²/2σ²)`` normalised, tap i at offset ``(ceil(i·cos a - ½), ceil(i·sin a - ½))``, edge
  pixels repeated outside the image; taps lighter than 1e-9 of the kernel are skipped (no visible
  change: under 255e-9 levels each). Differences: ImageMagick writes an 8-bit PNG, rounding, where the
  core truncates (≤ 1 level, −0.5 on average); imagecorruptions drops the remaining taps once an offset
  reaches the image size, ImageMagick (and this code) keeps them (never happens with the tables' radii
  on images larger than ``2·radius+1``). With imagecorruptions' angles replayed the outputs agree to
  0.001–0.02 levels mean absolute difference (float rounding at truncation boundaries).
* ``zoom_blur`` — the reference's ``clipped_zoom`` (central crop of ``ceil(h/z)`` pixels, scipy
  ``zoom(order=1)`` to ``round(ceil(h/z)·z)`` pixels, centred trim back to h) with scipy's corner-aligned
  linear interpolation: up to 32×32 px the whole ``(x + Σ zooms)/(F+1)`` as one (H·W)² matrix, beyond
  one ``grid_sample`` per factor (bilinear at the same source coordinates is the same separable
  interpolation). Same operator up to float32 rounding.

Public helpers the weather corruptions reuse (names kept stable):

* ``gaussian_filter(x, sigma, mode="nearest", truncate=4.0)`` — scipy/skimage Gaussian over the last two
  dims of any tensor; ``mode`` is ``nearest``, ``reflect`` (scipy's half-sample), ``mirror`` or
  ``constant`` (zeros).
* ``clipped_zoom(x, factor)`` — the reference's clipped zoom of N×C×H×W images.
* ``motion_blur_weights(radius, sigma)``, ``motion_blur_offsets(radius, angles)``,
  ``motion_blur_kernel(radius, sigma, angle_deg, device)`` (the dense 2-D correlation kernel of one
  angle) and ``apply_motion_blur(x, radius, sigma, angles)`` — the batched ImageMagick motion blur of
  N×C×H×W images (any C) with one angle (degrees) per image.
* ``in_chunks(pixels)`` — the decorator that slices CPU batches.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vicinal.corruptions.core import CorruptionFn, register

#: Pixels per chunk of a CPU batch (256 images at 32 px; 5 at 224 px).
CHUNK_PIXELS = 1 << 18


def in_chunks(pixels: int = CHUNK_PIXELS) -> Callable[[CorruptionFn], CorruptionFn]:
    """Run a corruption on consecutive slices of a CPU batch (same generator, in slice order).

    Tensors beyond glibc's largest heap-reuse size (32 MB) are mmapped afresh on every allocation, and
    their page faults cost more than the arithmetic (an elementwise op on 10,000 CIFAR images runs ~5×
    slower than on the same data in slices); slices also stay in cache between passes. The slice size
    is fixed, not tied to the machine, so a seed gives the same output everywhere.
    """

    def decorate(fn: CorruptionFn) -> CorruptionFn:
        @functools.wraps(fn)
        def run(x: torch.Tensor, param: Any, gen: torch.Generator) -> torch.Tensor:
            step = max(1, pixels // (x.shape[-2] * x.shape[-1]))
            if x.device.type != "cpu" or x.shape[0] <= step:
                return fn(x, param, gen)
            return torch.cat([fn(part, param, gen) for part in x.split(step)])

        return run

    return decorate


# --------------------------------------------------------------------------------------------------------
# Boundary handling and separable filters as matrices


def fold_index(idx: torch.Tensor, n: int, mode: str) -> torch.Tensor:
    """Map integer positions outside [0, n) back inside, as scipy.ndimage's edge ``mode`` does.

    ``nearest`` repeats the edge, ``reflect`` mirrors about the pixel edge (d c b a | a b c d, OpenCV's
    BORDER_REFLECT), ``mirror`` about the edge pixel's centre (d c b | a b c d, OpenCV's
    BORDER_REFLECT_101). Works for any distance from the image, unlike ``F.pad``'s reflection.
    """
    if mode == "nearest" or n == 1:
        return idx.clamp(0, n - 1)
    if mode == "reflect":
        m = idx.remainder(2 * n)
        return torch.where(m < n, m, 2 * n - 1 - m)
    if mode == "mirror":
        m = idx.remainder(2 * n - 2)
        return torch.where(m < n, m, 2 * n - 2 - m)
    raise ValueError(f"unknown boundary mode {mode!r}")


def filter_matrix(n: int, weights: torch.Tensor, mode: str) -> torch.Tensor:
    """The n×n matrix of a 1-D correlation with ``weights`` (odd length, centred) under ``mode``.

    As a matrix the boundary rule is exact for any kernel radius (scipy folds taps that reach past the
    far edge too), and applying it is one GEMM, which beats a padded convolution at 32 px.
    """
    r = (weights.numel() - 1) // 2
    rows = torch.arange(n).repeat_interleave(weights.numel())
    cols = (torch.arange(n)[:, None] + torch.arange(-r, r + 1)[None, :]).reshape(-1)
    vals = weights.to(torch.float64).repeat(n)
    if mode == "constant":
        keep = (cols >= 0) & (cols < n)
        rows, cols, vals = rows[keep], cols[keep], vals[keep]
    else:
        cols = fold_index(cols, n, mode)
    m = torch.zeros(n, n, dtype=torch.float64)
    m.index_put_((rows, cols), vals, accumulate=True)
    return m


def scipy_gaussian_weights(sigma: float, truncate: float) -> torch.Tensor:
    """scipy.ndimage's sampled Gaussian: radius ``int(truncate·σ + ½)``, normalised to sum 1."""
    radius = int(truncate * float(sigma) + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (t / float(sigma)) ** 2)
    return w / w.sum()


@lru_cache(maxsize=256)
def _gaussian_matrix_cpu(n: int, sigma: float, mode: str, truncate: float) -> torch.Tensor:
    return filter_matrix(n, scipy_gaussian_weights(sigma, truncate), mode)


def apply_rows_cols(x: torch.Tensor, rows: torch.Tensor | None, cols: torch.Tensor | None) -> torch.Tensor:
    """``rows @ x @ cols.T`` over the last two dims (either matrix may be None for identity)."""
    if cols is not None:
        x = torch.matmul(x, cols.T.to(x.dtype))
    if rows is not None:
        x = torch.matmul(rows.to(x.dtype), x)
    return x


def _separable_conv(x: torch.Tensor, weights: torch.Tensor, mode: str) -> torch.Tensor:
    """Correlate the last two dims with ``weights`` along each, as depthwise convolutions over
    channels-last memory (oneDNN's fast path); needs a padding ``F.pad`` can do."""
    h, w = x.shape[-2], x.shape[-1]
    r = (weights.numel() - 1) // 2
    planes = x.reshape(1, -1, h, w)
    k = weights.to(x.device, x.dtype)
    n = planes.shape[1]
    xp = pad_fold(planes, r, mode).contiguous(memory_format=torch.channels_last)
    y = F.conv2d(xp, k.view(1, 1, 1, -1).expand(n, 1, 1, -1).contiguous(), groups=n)
    y = F.conv2d(y, k.view(1, 1, -1, 1).expand(n, 1, -1, 1).contiguous(), groups=n)
    return y.contiguous().reshape(x.shape)


def gaussian_filter(
    x: torch.Tensor, sigma: float, mode: str = "nearest", truncate: float = 4.0
) -> torch.Tensor:
    """Gaussian blur over the last two dims like ``scipy.ndimage.gaussian_filter`` (and skimage's
    ``gaussian``, whose defaults are ``mode="nearest"``, ``truncate=4``); σ ≤ 1e-15 leaves x as is."""
    if float(sigma) <= 1e-15:
        return x
    h, w = x.shape[-2], x.shape[-1]
    weights = scipy_gaussian_weights(float(sigma), float(truncate))
    r = (weights.numel() - 1) // 2
    if h * w > 1024 and (mode == "nearest" or (mode in ("mirror", "reflect") and r < min(h, w))):
        # Large images: 2·(2r+1) taps per pixel beat two products whose cost grows with the side.
        return _separable_conv(x, weights, mode)
    rows = _gaussian_matrix_cpu(h, float(sigma), mode, float(truncate)).to(x.device)
    cols = rows if w == h else _gaussian_matrix_cpu(w, float(sigma), mode, float(truncate)).to(x.device)
    return apply_rows_cols(x, rows, cols)


# --------------------------------------------------------------------------------------------------------
# Gaussian blur


@register("gaussian_blur", "blur", common=False, random=False)
@in_chunks()
def gaussian_blur(x: torch.Tensor, param: float, gen: torch.Generator) -> torch.Tensor:
    return gaussian_filter(x, param)


# --------------------------------------------------------------------------------------------------------
# Defocus blur


def _opencv_gaussian_1d(ksize: int, sigma: float) -> torch.Tensor:
    t = torch.arange(ksize, dtype=torch.float64) - (ksize - 1) / 2
    g = torch.exp(-(t**2) / (2 * sigma * sigma))
    return (g / g.sum()).to(torch.float32).to(torch.float64)  # OpenCV keeps float32 taps for float images


@lru_cache(maxsize=64)
def disk_kernel(radius: float, alias_blur: float) -> torch.Tensor:
    """The reference's anti-aliased disk: a hard disk on a 17×17 grid (or ±radius when radius > 8),
    normalised, then ``cv2.GaussianBlur`` (3×3, or 5×5 for the large grid; reflect-101 borders of the
    kernel array itself). Returned cropped to its non-zero support (same result, fewer taps)."""
    grid = np.arange(-8, 8 + 1) if radius <= 8 else np.arange(-radius, radius + 1)
    ksize = 3 if radius <= 8 else 5
    yy, xx = np.meshgrid(grid, grid)
    disk = torch.from_numpy(((xx**2 + yy**2) <= radius**2).astype(np.float32)).to(torch.float64)
    disk = (disk / disk.sum()).to(torch.float32).to(torch.float64)
    g = _opencv_gaussian_1d(ksize, alias_blur)
    n = disk.shape[0]
    m = filter_matrix(n, g, "mirror")
    k = (m @ disk @ m.T).to(torch.float32)
    # Crop symmetric zero margins (an all-zero border contributes nothing to the correlation).
    nz = k.abs().amax(dim=0) > 0
    first = int(torch.nonzero(nz)[0])
    margin = min(first, n - 1 - int(torch.nonzero(nz)[-1]))
    nz_r = k.abs().amax(dim=1) > 0
    margin = min(margin, int(torch.nonzero(nz_r)[0]), n - 1 - int(torch.nonzero(nz_r)[-1]))
    return k[margin : n - margin, margin : n - margin].contiguous()


def pad_fold(x: torch.Tensor, pad: int, mode: str) -> torch.Tensor:
    """Pad the last two dims by ``pad`` on every side with ``fold_index``'s rule (any pad size)."""
    h, w = x.shape[-2], x.shape[-1]
    if pad == 0:
        return x
    if mode == "nearest":
        return F.pad(x, (pad, pad, pad, pad), mode="replicate")
    if mode == "mirror" and pad < min(h, w):
        return F.pad(x, (pad, pad, pad, pad), mode="reflect")  # torch's "reflect" is reflect-101
    if mode == "reflect" and pad <= min(h, w):
        x = torch.cat([x[..., :pad, :].flip(-2), x, x[..., h - pad :, :].flip(-2)], dim=-2)
        return torch.cat([x[..., :pad].flip(-1), x, x[..., w - pad :].flip(-1)], dim=-1)
    ih = fold_index(torch.arange(-pad, h + pad, device=x.device), h, mode)
    iw = fold_index(torch.arange(-pad, w + pad, device=x.device), w, mode)
    return x[..., ih[:, None], iw[None, :]]


@register("defocus_blur", "blur", common=True, random=False)
@in_chunks()
def defocus_blur(x: torch.Tensor, param: tuple[float, float], gen: torch.Generator) -> torch.Tensor:
    radius, alias_blur = param
    k = disk_kernel(float(radius), float(alias_blur)).to(x.device, x.dtype)
    r = (k.shape[0] - 1) // 2
    _, c, h, w = x.shape
    xp = pad_fold(x, r, "mirror")
    if k.shape[0] >= 11 and h * w > 1024:
        # Large disks (ImageNet's radii 4–10) cost (2r+1)² taps per pixel directly; by FFT a few
        # operations per pixel. The padded image is at least as long as the full correlation's valid
        # part, so the circular wrap never reaches it.
        size = xp.shape[-2:]
        spec = torch.fft.rfft2(xp, s=size) * torch.fft.rfft2(k.flip(0, 1), s=size)
        return torch.fft.irfft2(spec, s=size)[..., 2 * r :, 2 * r :].contiguous()
    # Depthwise over channels-last memory: oneDNN's fast path (several times faster than N·C 1-channel maps).
    xp = xp.contiguous(memory_format=torch.channels_last)
    return F.conv2d(xp, k[None, None].expand(c, 1, -1, -1).contiguous(), groups=c).contiguous()


# --------------------------------------------------------------------------------------------------------
# Glass blur


@lru_cache(maxsize=32)
def _glass_schedule(h: int, w: int, d: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
    """The reference loop's positions (rows, then columns, both descending) and their wavefront order.

    Returns the positions' rows and columns in loop order, the permutation that sorts the loop by
    wavefront time, and how many positions each time step holds.
    """
    rows = torch.arange(h - d, d, -1) if h > 2 * d else torch.zeros(0, dtype=torch.long)  # range(H-d, d, -1)
    cols = torch.arange(w - d, d, -1) if w > 2 * d else torch.zeros(0, dtype=torch.long)
    i = torch.arange(rows.numel())[:, None].expand(-1, cols.numel())
    j = torch.arange(cols.numel())[None, :].expand(rows.numel(), -1)
    # With d = 1 every read is of a pixel the loop has not reached yet (or the pixel itself): one step.
    t = torch.zeros_like(i).reshape(-1) if d == 1 else (j + (d + 1) * i).reshape(-1)
    order = torch.argsort(t, stable=True)
    pos_r = rows[:, None].expand(-1, cols.numel()).reshape(-1)
    pos_c = cols[None, :].expand(rows.numel(), -1).reshape(-1)
    counts = torch.bincount(t).tolist() if t.numel() else []
    return pos_r, pos_c, order, counts


def glass_loop_size(h: int, w: int, max_delta: int) -> int:
    """How many positions the reference's shuffle loop visits per iteration."""
    return max(h - 2 * int(max_delta), 0) * max(w - 2 * int(max_delta), 0)


def glass_copy(x: torch.Tensor, max_delta: int, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """The reference's shuffle loop on N×C×H×W images with given offsets, exactly.

    ``dy``, ``dx``: integer offsets of shape (iterations, positions, N), positions in the reference's
    loop order (rows descending, then columns descending, over ``range(size - d, d, -1)``). Each visit
    sets pixel (h, w) to the current value of pixel (h + dy, w + dx) — the reference's tuple "swap" of
    numpy views copies rather than swaps, and it is reproduced as is. Visits run as a wavefront (see the
    module docstring): all reads of a step happen before its writes, which is what the sequential order
    needs, since a step never reads a pixel that an earlier-in-the-loop visit of the same step writes.
    """
    n, c, h, w = x.shape
    d = int(max_delta)
    pos_r, pos_c, order, counts = _glass_schedule(h, w, d)
    if not counts:
        return x
    dev = x.device
    if d == 1:
        # Every visit reads a pixel not yet visited (or itself), so an iteration is one gather of the
        # whole image from the iteration's start.
        nh, nw = h - 2, w - 2  # loop rows and columns h-1…2, w-1…2
        index = torch.arange(h * w, device=dev).view(1, h, w).repeat(n, 1, 1)
        inner = index[:, 2:, 2:].clone()
        for it in range(dy.shape[0]):
            step = (dy[it].to(dev) * w + dx[it].to(dev)).view(nh, nw, n).permute(2, 0, 1).flip(1, 2)
            index[:, 2:, 2:] = inner + step
            x = x.reshape(n, c, h * w).gather(2, index.view(n, 1, h * w).expand(n, c, h * w)).view(n, c, h, w)
        return x
    order = order.to(dev)
    pix = x.permute(0, 2, 3, 1).contiguous().view(n * h * w, c)  # one row per pixel: a copy moves a row
    base = (torch.arange(n, device=dev) * (h * w))[None, :]  # (1, N)
    own = ((pos_r * w + pos_c).to(dev)[:, None] + base)[order]  # (M, N) in time order
    bounds = np.cumsum([0, *counts]).tolist()
    for it in range(dy.shape[0]):
        src = own + (dy[it].to(dev) * w + dx[it].to(dev))[order]
        for s in range(len(counts)):
            a, b = bounds[s], bounds[s + 1]
            pix.index_copy_(0, own[a:b].reshape(-1), pix.index_select(0, src[a:b].reshape(-1)))
    return pix.view(n, h, w, c).permute(0, 3, 1, 2).contiguous()


def glass_offsets(
    n: int, h: int, w: int, max_delta: int, iterations: int, gen: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (dy, dx) for ``glass_copy``: ``randint(-d, d)`` (in [-d, d-1]) per axis and visit."""
    d = int(max_delta)
    shape = (int(iterations), glass_loop_size(h, w, d), n)
    dy = torch.randint(-d, d, shape, generator=gen, device=device)
    return dy, torch.randint(-d, d, shape, generator=gen, device=device)


def apply_glass_blur(
    x: torch.Tensor, sigma: float, max_delta: int, dy: torch.Tensor, dx: torch.Tensor
) -> torch.Tensor:
    """The reference's glass blur with given shuffle offsets (see ``glass_copy``): Gaussian blur, 8-bit
    truncation (the reference stores the first blur as ``np.uint8``), shuffle, Gaussian blur."""
    y = gaussian_filter(x, sigma)
    y = torch.floor(y.clamp(0, 1) * 255) / 255
    return gaussian_filter(glass_copy(y, max_delta, dy, dx), sigma)


@register("glass_blur", "blur", common=True, random=True)
@in_chunks(1 << 20)  # larger slices: fewer passes of the wavefront's Python loop
def glass_blur(x: torch.Tensor, param: tuple[float, int, int], gen: torch.Generator) -> torch.Tensor:
    sigma, max_delta, iterations = param
    n, _, h, w = x.shape
    dy, dx = glass_offsets(n, h, w, max_delta, iterations, gen, x.device)
    return apply_glass_blur(x, sigma, max_delta, dy, dx)


# --------------------------------------------------------------------------------------------------------
# Motion blur (ImageMagick MotionBlurImage)


def motion_blur_width(radius: float) -> int:
    """ImageMagick's GetOptimalKernelWidth1D for radius > 0: ``2·ceil(radius) + 1`` taps."""
    return int(2 * math.ceil(radius) + 1)


def motion_blur_weights(radius: float, sigma: float) -> torch.Tensor:
    """The one-sided Gaussian tap weights ``exp(-i²/2σ²)``, i = 0…width-1, normalised (float64)."""
    i = torch.arange(motion_blur_width(radius), dtype=torch.float64)
    k = torch.exp(-(i**2) / (2 * float(sigma) ** 2))
    return k / k.sum()


def motion_blur_offsets(radius: float, angles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer tap offsets (dx, dy), each N×width, for angles in degrees (N,): tap i reads the pixel at
    ``(x + ceil(i·cos a - ½), y + ceil(i·sin a - ½))`` (ImageMagick's rounding)."""
    width = motion_blur_width(radius)
    a = torch.deg2rad(angles.to(torch.float64))
    px, py = width * torch.sin(a), width * torch.cos(a)  # ImageMagick's point.x / point.y
    hyp = torch.hypot(px, py)
    i = torch.arange(width, dtype=torch.float64, device=angles.device)
    dx = torch.ceil(i[None, :] * py[:, None] / hyp[:, None] - 0.5).long()
    dy = torch.ceil(i[None, :] * px[:, None] / hyp[:, None] - 0.5).long()
    return dx, dy


def motion_blur_kernel(
    radius: float, sigma: float, angle_deg: float, device: torch.device | str | None = None
) -> torch.Tensor:
    """The dense (2·width-1)² correlation kernel of one motion-blur angle, centre at [width-1, width-1]:
    ``out[y, x] = Σ K[width-1+j, width-1+i] · in[y+j, x+i]`` with edge pixels repeated (float32)."""
    width = motion_blur_width(radius)
    dx, dy = motion_blur_offsets(radius, torch.tensor([float(angle_deg)]))
    k = torch.zeros(2 * width - 1, 2 * width - 1, dtype=torch.float64)
    k.index_put_((dy[0] + width - 1, dx[0] + width - 1), motion_blur_weights(radius, sigma), accumulate=True)
    return k.to(torch.float32).to(device)


#: Taps lighter than this share of the kernel change no float32 output and are skipped (at most 41 of
#: them, each under 255e-9 levels).
NEGLIGIBLE_TAP = 1e-9


def apply_motion_blur(
    x: torch.Tensor, radius: float, sigma: float, angles: torch.Tensor | float
) -> torch.Tensor:
    """ImageMagick's motion blur of N×C×H×W images (any C), one angle in degrees per image (or one for
    all), edge pixels repeated outside the image. Taps of weight below ``NEGLIGIBLE_TAP`` are skipped."""
    n, c, h, w = x.shape
    if not isinstance(angles, torch.Tensor):
        angles = torch.full((n,), float(angles), dtype=torch.float64)
    angles = angles.to(x.device, torch.float64)
    weights = motion_blur_weights(radius, sigma)
    taps = [(i, wt) for i, wt in enumerate(weights.tolist()) if wt >= NEGLIGIBLE_TAP]
    dx, dy = motion_blur_offsets(radius, angles)
    # Pad by the largest offset: every tap is then a window read inside the padded image.
    p = int(max(dx.abs().max(), dy.abs().max()))
    xp = pad_fold(x, p, "nearest").contiguous()
    hp, wp = h + 2 * p, w + 2 * p
    if x.device.type != "cpu":
        # One advanced-index read per tap gathers every image's window from a strided view indexed by
        # (image, flat window offset): a single kernel per tap.
        shift = (dy + p) * wp + (dx + p)
        windows = xp.as_strided((n, 2 * p * wp + 2 * p + 1, c, h, w), (c * hp * wp, 1, hp * wp, wp, 1))
        images = torch.arange(n, device=x.device)
        out = torch.zeros_like(x)
        for i, wt in taps:
            out.add_(windows[images, shift[:, i]], alpha=wt)
        return out
    # CPU: with the images sorted by angle, a tap's offset is constant over runs of consecutive images,
    # so each (tap, run) is one vectorised add of plain slices — a few hundred adds for any batch, no
    # per-element indexing.
    order = torch.argsort(angles)
    xp = xp[order]
    dx, dy = dx[order] + p, dy[order] + p
    # Run starts of every tap at once: where either offset differs from the previous image's.
    change = torch.ones(n, dx.shape[1], dtype=torch.bool)
    change[1:] = (dx[1:] != dx[:-1]) | (dy[1:] != dy[:-1])
    out = torch.zeros_like(x)
    for i, wt in taps:
        starts = torch.nonzero(change[:, i]).squeeze(1).tolist()
        tops, lefts = dy[starts, i].tolist(), dx[starts, i].tolist()
        for a, b, top, left in zip(starts, [*starts[1:], n], tops, lefts, strict=True):
            out[a:b].add_(xp[a:b, :, top : top + h, left : left + w], alpha=wt)
    return out[torch.argsort(order)]


@register("motion_blur", "blur", common=True, random=True)
@in_chunks()
def motion_blur(x: torch.Tensor, param: tuple[float, float], gen: torch.Generator) -> torch.Tensor:
    radius, sigma = param
    angles = torch.rand(x.shape[0], generator=gen, device=x.device, dtype=torch.float64) * 90 - 45
    return apply_motion_blur(x, radius, sigma, angles)


# --------------------------------------------------------------------------------------------------------
# Zoom blur


def _zoom_sources(n: int, factor: float) -> tuple[torch.Tensor, int]:
    """Source coordinates (float64, relative to the crop's first pixel) of the n output samples of the
    reference's clipped_zoom along one axis, and the crop's first pixel."""
    ch = math.ceil(n / factor)
    top = (n - ch) // 2
    out = round(ch * factor)  # scipy.ndimage.zoom's output length
    trim = (out - n) // 2
    o = torch.arange(n, dtype=torch.float64) + trim
    # scipy's zoom (grid_mode=False) puts the first and last samples on the crop's corner pixels.
    src = o * ((ch - 1) / (out - 1)) if out > 1 else torch.zeros_like(o)
    return src.clamp(0, ch - 1), top


def _zoom_matrix(n: int, factor: float) -> torch.Tensor:
    """n×n linear-interpolation matrix of the reference's clipped_zoom along one axis (float64)."""
    src, top = _zoom_sources(n, factor)
    ch = math.ceil(n / factor)
    i0 = src.floor().long().clamp(max=ch - 1)
    i1 = (i0 + 1).clamp(max=ch - 1)
    f = src - i0
    m = torch.zeros(n, n, dtype=torch.float64)
    r = torch.arange(n)
    m.index_put_((r, top + i0), 1 - f, accumulate=True)
    m.index_put_((r, top + i1), f, accumulate=True)
    return m


@lru_cache(maxsize=64)
def _zoom_matrix_cached(n: int, factor: float) -> torch.Tensor:
    return _zoom_matrix(n, factor)


@lru_cache(maxsize=64)
def _zoom_grid(h: int, w: int, factor: float) -> torch.Tensor:
    """The clipped zoom as a ``grid_sample`` grid (1×H×W×2, align_corners=True): bilinear sampling at the
    zoom's source coordinates is the same separable linear interpolation."""
    sy, top_y = _zoom_sources(h, factor)
    sx, top_x = _zoom_sources(w, factor)
    gy = (sy + top_y) / (h - 1) * 2 - 1 if h > 1 else torch.zeros_like(sy)
    gx = (sx + top_x) / (w - 1) * 2 - 1 if w > 1 else torch.zeros_like(sx)
    grid = torch.stack(torch.broadcast_tensors(gx[None, :], gy[:, None]), dim=-1)
    return grid.unsqueeze(0).to(torch.float32)


def _small(h: int, w: int) -> bool:
    # Up to 32×32 a dense matrix per axis (or the whole H·W operator) is cheapest; beyond, grid_sample's
    # two taps per axis win over products whose cost grows with the image side.
    return h * w <= 1024


def clipped_zoom(x: torch.Tensor, factor: float) -> torch.Tensor:
    """The reference's ``clipped_zoom`` of N×C×H×W images: zoom the central ``ceil(size/factor)`` crop by
    ``factor`` (linear, scipy's corner-aligned grid) and trim the centre back to the input size."""
    n, _, h, w = x.shape
    if _small(h, w):
        rows = _zoom_matrix_cached(h, float(factor)).to(x.device)
        cols = rows if h == w else _zoom_matrix_cached(w, float(factor)).to(x.device)
        return apply_rows_cols(x, rows, cols)
    grid = _zoom_grid(h, w, float(factor)).to(x.device, x.dtype).expand(n, -1, -1, -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def zoom_factors(spec: tuple[float, float, float]) -> list[float]:
    """The reference's ``np.arange(start, stop, step)`` zoom factors (arange's float quirks included)."""
    return [float(z) for z in np.arange(*spec)]


@lru_cache(maxsize=16)
def _zoom_operator(h: int, w: int, spec: tuple[float, float, float]) -> torch.Tensor:
    """(x + Σ_f A_f x B_fᵀ)/(F+1) as one (H·W)×(H·W) matrix acting on flattened images (transposed)."""
    factors = zoom_factors(spec)
    op = torch.eye(h * w, dtype=torch.float64)
    for z in factors:
        op += torch.kron(_zoom_matrix(h, z), _zoom_matrix(w, z))
    return (op / (len(factors) + 1)).T.contiguous()


@register("zoom_blur", "blur", common=True, random=False)
@in_chunks()
def zoom_blur(x: torch.Tensor, param: tuple[float, float, float], gen: torch.Generator) -> torch.Tensor:
    n, c, h, w = x.shape
    spec = tuple(float(v) for v in param)
    if _small(h, w):
        # One GEMM with the whole operator: 1,024 MACs per pixel at 32 px, at full GEMM speed.
        op = _zoom_operator(h, w, spec).to(x.device, x.dtype)
        return (x.reshape(n * c, h * w) @ op).reshape(n, c, h, w)
    factors = zoom_factors(spec)
    out = x.clone()
    for z in factors:
        out += clipped_zoom(x, z)
    return out / (len(factors) + 1)
