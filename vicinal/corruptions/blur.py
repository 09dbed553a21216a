"""Blur corruptions: defocus, glass, motion, zoom (the common four) and Gaussian blur (extra).

All work on a whole batch at once, on the images' device (CPU batches in slices, see ``core.corrupt``).
How each relates to the reference generators (hendrycks/robustness ``make_*_c.py``):

* ``gaussian_blur`` — skimage's ``gaussian(sigma, multichannel)``: scipy's Gaussian (truncate 4, edge
  mode ``nearest``), as two products with banded matrices (up to 32×32 px, and for kernels longer than
  a sixth of the side) or as separable depthwise convolutions. Same operator; float32 rounding only.
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
  differ (torch generator instead of numpy's global state; since engine version 2 the offsets are groups
  of bits of 31-bit uniform integers when 2d is a power of two, the same uniform distribution).
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
  linear interpolation: up to 32×32 px the whole ``(x + Σ zooms)/(F+1)`` as one matrix per output row
  over the input rows that row reads (a batched product), beyond one ``grid_sample`` per factor
  (bilinear at the same source coordinates is the same separable interpolation). Same operator up to
  float32 rounding.

The linear operators these share with the weather corruptions (Gaussian filter, clipped zoom, motion
blur) live in ``filters.py``.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from vicinal.corruptions.core import register
from vicinal.corruptions.filters import (
    apply_motion_blur,
    clipped_zoom,
    filter_matrix,
    gaussian_filter,
    pad_fold,
    zoom_matrix,
)

# --------------------------------------------------------------------------------------------------------
# --------------------------------------------------------------------------------------------------------
# Gaussian blur


@register("gaussian_blur", "blur", common=False, random=False)
def gaussian_blur(x: torch.Tensor, param: float, gen: torch.Generator) -> torch.Tensor:
    return gaussian_filter(x, param)


# --------------------------------------------------------------------------------------------------------
# Defocus blur


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


def _fast_length(n: int) -> int:
    """The least m ≥ n with no prime factor above 5: a fast FFT length."""
    m = n
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


@register("defocus_blur", "blur", common=True, random=False)
def defocus_blur(x: torch.Tensor, param: tuple[float, float], gen: torch.Generator) -> torch.Tensor:
    radius, alias_blur = param
    k = disk_kernel(float(radius), float(alias_blur)).to(x.device, x.dtype)
    r = (k.shape[0] - 1) // 2
    _, c, h, w = x.shape
    xp = pad_fold(x, r, "mirror")
    if k.shape[0] >= 11 and h * w > 1024:
        # Large disks (ImageNet's radii 4–10) cost (2r+1)² taps per pixel directly; by FFT a few
        # operations per pixel. The transform is at least as long as the padded image, so the circular
        # wrap never reaches the valid part; its length has only factors 2, 3 and 5 (an FFT of 242 =
        # 2·11² points costs about three of 256).
        size = [_fast_length(n) for n in xp.shape[-2:]]
        spec = torch.fft.rfft2(xp, s=size) * torch.fft.rfft2(k.flip(0, 1), s=size)
        return torch.fft.irfft2(spec, s=size)[..., 2 * r : 2 * r + h, 2 * r : 2 * r + w].contiguous()
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
            step = (dy[it].to(dev) * w + dx[it].to(dev)).reshape(nh, nw, n).permute(2, 0, 1).flip(1, 2)
            index[:, 2:, 2:] = inner + step
            x = x.reshape(n, c, h * w).gather(2, index.view(n, 1, h * w).expand(n, c, h * w)).view(n, c, h, w)
        return x
    order = order.to(dev)
    base = (torch.arange(n, device=dev) * (h * w))[None, :]  # (1, N)
    own = ((pos_r * w + pos_c).to(dev)[:, None] + base)[order]  # (M, N) in time order
    bounds = np.cumsum([0, *counts]).tolist()
    if dev.type == "cpu" and x.dtype == torch.float32 and c <= 4:
        # Hundreds of small steps: in numpy, with each pixel's channels padded to 16 bytes and moved as
        # one complex128, a step costs a fraction of torch's index_select + index_copy_.
        pix = F.pad(x.permute(0, 2, 3, 1), (0, 4 - c)).contiguous()
        moved = pix.numpy().view(np.complex128).reshape(-1)
        for it in range(dy.shape[0]):
            src = (own + (dy[it] * w + dx[it])[order]).numpy()
            own_np = own.numpy()
            for s in range(len(counts)):
                a, b = bounds[s], bounds[s + 1]
                moved[own_np[a:b].ravel()] = moved[src[a:b].ravel()]
        return pix[..., :c].permute(0, 3, 1, 2).contiguous()
    pix = x.permute(0, 2, 3, 1).contiguous().view(n * h * w, c)  # one row per pixel: a copy moves a row
    for it in range(dy.shape[0]):
        src = own + (dy[it].to(dev) * w + dx[it].to(dev))[order]
        for s in range(len(counts)):
            a, b = bounds[s], bounds[s + 1]
            pix.index_copy_(0, own[a:b].reshape(-1), pix.index_select(0, src[a:b].reshape(-1)))
    return pix.view(n, h, w, c).permute(0, 3, 1, 2).contiguous()


def glass_offsets(
    n: int, h: int, w: int, max_delta: int, iterations: int, gen: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (dy, dx) for ``glass_copy``: ``randint(-d, d)`` (in [-d, d-1]) per axis and visit.

    When 2d is a power of two (d = 1, 2, 4: every table's d but ImageNet's 3) each offset is a group of
    log2(2d) bits of a 31-bit uniform integer, so one draw serves 31 / log2(2d) offsets; else randint.
    """
    d = int(max_delta)
    shape = (2, int(iterations), glass_loop_size(h, w, d), n)
    count = math.prod(shape)
    bits = (2 * d).bit_length() - 1
    if 1 << bits != 2 * d:
        offsets = torch.randint(-d, d, shape, generator=gen, device=device, dtype=torch.int32)
        return offsets[0], offsets[1]
    per_word = 31 // bits
    words = torch.empty(-(-count // per_word), dtype=torch.int32, device=device).random_(generator=gen)
    shifts = torch.arange(0, per_word * bits, bits, dtype=torch.int32, device=device)
    groups = (words[:, None] >> shifts).bitwise_and_((1 << bits) - 1).sub_(d)
    offsets = groups.view(-1)[:count].view(shape)
    return offsets[0], offsets[1]


def apply_glass_blur(
    x: torch.Tensor, sigma: float, max_delta: int, dy: torch.Tensor, dx: torch.Tensor
) -> torch.Tensor:
    """The reference's glass blur with given shuffle offsets (see ``glass_copy``): Gaussian blur, 8-bit
    truncation (the reference stores the first blur as ``np.uint8``), shuffle, Gaussian blur."""
    y = gaussian_filter(x, sigma)
    y = y.clamp(0, 1).mul_(255).floor_().div_(255)  # clamp out of place: y may be x (one-tap blur)
    return gaussian_filter(glass_copy(y, max_delta, dy, dx), sigma)


# Larger slices: fewer passes of the wavefront's Python loop.
@register("glass_blur", "blur", common=True, random=True, chunk_pixels=1 << 20)
def glass_blur(x: torch.Tensor, param: tuple[float, int, int], gen: torch.Generator) -> torch.Tensor:
    sigma, max_delta, iterations = param
    n, _, h, w = x.shape
    dy, dx = glass_offsets(n, h, w, max_delta, iterations, gen, x.device)
    return apply_glass_blur(x, sigma, max_delta, dy, dx)


# --------------------------------------------------------------------------------------------------------
# Motion blur (ImageMagick MotionBlurImage)


@register("motion_blur", "blur", common=True, random=True)
def motion_blur(x: torch.Tensor, param: tuple[float, float], gen: torch.Generator) -> torch.Tensor:
    radius, sigma = param
    angles = torch.rand(x.shape[0], generator=gen, device=x.device, dtype=torch.float64) * 90 - 45
    return apply_motion_blur(x, radius, sigma, angles)


# --------------------------------------------------------------------------------------------------------
# Zoom blur


def zoom_factors(spec: tuple[float, float, float]) -> list[float]:
    """The reference's ``np.arange(start, stop, step)`` zoom factors (arange's float quirks included)."""
    return [float(z) for z in np.arange(*spec)]


@lru_cache(maxsize=16)
def _zoom_bands(h: int, w: int, spec: tuple[float, float, float]) -> tuple[torch.Tensor, int, int]:
    """(x + Σ_f A_f x B_fᵀ)/(F+1) as one matrix per output row over the input rows it reads.

    Output row i reads input rows i - above … i - above + rows - 1 only (at 32 px at most 8 of the 32),
    so row i is ``window_i (rows·W) @ bands[i] (rows·W × W)``: a batched product with an eighth to a
    quarter of the whole (H·W)² operator's work. Returns the bands (H × rows·W × W), above and rows.
    """
    factors = zoom_factors(spec)
    op = torch.eye(h * w, dtype=torch.float64)
    for z in factors:
        op += torch.kron(zoom_matrix(h, z), zoom_matrix(w, z))
    op = (op / (len(factors) + 1)).view(h, w, h, w)  # out row, out col, in row, in col
    reads = torch.nonzero(op.abs().sum((1, 3)) > 0)
    offsets = reads[:, 1] - reads[:, 0]
    above, rows = int(-offsets.min()), int(offsets.max() - offsets.min()) + 1
    bands = torch.zeros(h, rows, w, w, dtype=torch.float64)  # out row, window row, in col, out col
    for i in range(h):
        for t in range(rows):
            if 0 <= i - above + t < h:
                bands[i, t] = op[i, :, i - above + t, :].T
    return bands.reshape(h, rows * w, w).to(torch.float32), above, rows


@register("zoom_blur", "blur", common=True, random=False)
def zoom_blur(x: torch.Tensor, param: tuple[float, float, float], gen: torch.Generator) -> torch.Tensor:
    n, c, h, w = x.shape
    spec = tuple(float(v) for v in param)
    if h * w <= 1024:
        bands, above, rows = _zoom_bands(h, w, spec)
        # Rows of zeros above and below, so every output row's window is a plain strided view.
        padded = F.pad(x.reshape(n * c, h, w), (0, 0, above, rows - 1 - above))
        windows = padded.as_strided((h, n * c, rows * w), (w, padded.shape[1] * w, 1))
        out = torch.bmm(windows, bands.to(x.device, x.dtype))  # out row, image plane, out col
        return out.permute(1, 0, 2).reshape(n, c, h, w)
    factors = zoom_factors(spec)
    out = x.clone()
    for z in factors:
        # arange starts at 1: a zoom by 1 is the image itself (exactly, rather than resampled).
        out += x if z == 1.0 else clipped_zoom(x, z)
    return out / (len(factors) + 1)
