"""Blur corruptions: defocus, glass, motion, zoom (the common four) and Gaussian blur (extra).

All work on a whole batch at once, on the images' device. How each relates to the reference generators
(hendrycks/robustness ``make_*_c.py``):

* ``gaussian_blur`` — skimage's ``gaussian(sigma, multichannel)``: scipy's Gaussian (truncate 4, edge
  mode ``nearest``) applied as two banded matrix products per image. Same operator; float32 rounding only.
* ``defocus_blur`` — the reference's anti-aliased disk kernel (the same grid, normalisation and OpenCV
  Gaussian smoothing with reflect-101 borders, rebuilt in torch) and ``cv2.filter2D``'s reflect-101
  image border. Same operator.
* ``glass_blur`` — blur, ``np.uint8`` truncation, local pixel swaps, blur. The reference swaps pixels in a
  sequential Python loop (rows and columns visited bottom-right to top-left, each pixel swapped with a
  random neighbour at offset ``randint(-d, d)`` in each axis, i.e. in [-d, d-1]). Here the same sequence
  of swaps runs as a wavefront: step (row i, column j) of the loop goes to time ``j + 2·d·i``; swaps that
  share a time touch disjoint pixels, and every earlier swap that could touch the same pixels has an
  earlier time, so the result equals the sequential loop's for the same offsets (exact, not
  approximate); only the random numbers differ (torch generator instead of numpy's global state).
* ``motion_blur`` — the reference calls ImageMagick's ``MotionBlurImage`` through Wand. Its kernel is
  rebuilt here as imagecorruptions' ``_motion_blur`` does: width ``2·ceil(radius)+1``, one-sided Gaussian
  weights ``exp(-i²/2σ²)`` normalised, tap i at offset ``(ceil(i·cos a - ½), ceil(i·sin a - ½))``, edge
  pixels repeated outside the image. Differences: ImageMagick rounds its 8-bit output where the core
  truncates (≤ 1 level, −0.5 on average); imagecorruptions drops the remaining taps once an offset
  reaches the image size, ImageMagick (and this code) keeps them (never happens with the tables' radii
  on images larger than ``2·radius+1``).
* ``zoom_blur`` — the reference's ``clipped_zoom`` (central crop of ``ceil(h/z)`` pixels, scipy
  ``zoom(order=1)`` to ``round(ceil(h/z)·z)`` pixels, centred trim back to h) as separable linear
  interpolation matrices with scipy's corner-aligned coordinates, summed over the zoom factors with two
  matrix products. Same operator up to float32 rounding.

Public helpers the weather corruptions reuse (names kept stable):

* ``gaussian_filter(x, sigma, mode="nearest", truncate=4.0)`` — scipy/skimage Gaussian over the last two
  dims of any tensor; ``mode`` is ``nearest``, ``reflect`` (scipy's half-sample), ``mirror`` or
  ``constant`` (zeros).
* ``clipped_zoom(x, factor)`` — the reference's clipped zoom over the last two dims.
* ``motion_blur_weights(radius, sigma)``, ``motion_blur_offsets(radius, angles)``,
  ``motion_blur_kernel(radius, sigma, angle_deg, device)`` (the dense 2-D correlation kernel of one
  angle) and ``apply_motion_blur(x, radius, sigma, angles)`` — the batched ImageMagick motion blur of
  N×C×H×W images with one angle (degrees) per image.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from vicinal.corruptions.core import register

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


def gaussian_filter(
    x: torch.Tensor, sigma: float, mode: str = "nearest", truncate: float = 4.0
) -> torch.Tensor:
    """Gaussian blur over the last two dims like ``scipy.ndimage.gaussian_filter`` (and skimage's
    ``gaussian``, whose defaults are ``mode="nearest"``, ``truncate=4``); σ ≤ 1e-15 leaves x as is."""
    if float(sigma) <= 1e-15:
        return x
    h, w = x.shape[-2], x.shape[-1]
    rows = _gaussian_matrix_cpu(h, float(sigma), mode, float(truncate)).to(x.device)
    cols = rows if w == h else _gaussian_matrix_cpu(w, float(sigma), mode, float(truncate)).to(x.device)
    return apply_rows_cols(x, rows, cols)


# --------------------------------------------------------------------------------------------------------
# Gaussian blur


@register("gaussian_blur", "blur", common=False, random=False)
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
    ih = fold_index(torch.arange(-pad, h + pad, device=x.device), h, mode)
    iw = fold_index(torch.arange(-pad, w + pad, device=x.device), w, mode)
    return x.index_select(-2, ih).index_select(-1, iw)


@register("defocus_blur", "blur", common=True, random=False)
def defocus_blur(x: torch.Tensor, param: tuple[float, float], gen: torch.Generator) -> torch.Tensor:
    radius, alias_blur = param
    k = disk_kernel(float(radius), float(alias_blur)).to(x.device)
    r = (k.shape[0] - 1) // 2
    n, c, h, w = x.shape
    xp = pad_fold(x, r, "mirror").reshape(n * c, 1, h + 2 * r, w + 2 * r)
    return F.conv2d(xp, k[None, None]).reshape(n, c, h, w)


# --------------------------------------------------------------------------------------------------------
# Glass blur


@lru_cache(maxsize=32)
def _glass_schedule(h: int, w: int, d: int) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Loop positions of the reference's swap loop, ordered by wavefront time, and step boundaries."""
    rows = torch.arange(h - d, d, -1)  # the reference's range(H - d, d, -1)
    cols = torch.arange(w - d, d, -1)
    i = torch.arange(rows.numel())[:, None].expand(-1, cols.numel())
    j = torch.arange(cols.numel())[None, :].expand(rows.numel(), -1)
    t = (j + 2 * d * i).reshape(-1)
    order = torch.argsort(t, stable=True)
    pos_r = rows[:, None].expand(-1, cols.numel()).reshape(-1)[order]
    pos_c = cols[None, :].expand(rows.numel(), -1).reshape(-1)[order]
    counts = torch.bincount(t[order]).tolist()
    return pos_r, pos_c, counts


def glass_shuffle(x: torch.Tensor, max_delta: int, iterations: int, gen: torch.Generator) -> torch.Tensor:
    """The reference's local pixel shuffle on N×C×H×W images, exact up to the random draws.

    See the module docstring for why the wavefront order gives the sequential loop's result.
    """
    n, c, h, w = x.shape
    d = int(max_delta)
    pos_r, pos_c, counts = _glass_schedule(h, w, d)
    if not counts:
        return x
    dev = x.device
    pos_r, pos_c = pos_r.to(dev), pos_c.to(dev)
    pix = x.permute(0, 2, 3, 1).contiguous().view(n * h * w, c)  # one row per pixel: a swap moves a row
    base = (torch.arange(n, device=dev) * (h * w))[None, :]  # (1, N)
    own = (pos_r * w + pos_c)[:, None] + base  # (M, N), step-major so a step is a contiguous slice
    bounds = np.cumsum([0, *counts]).tolist()
    for _ in range(int(iterations)):
        # randint(-d, d) per axis: offsets in [-d, d-1], drawn for every (position, image).
        dy = torch.randint(-d, d, (pos_r.numel(), n), generator=gen, device=dev)
        dx = torch.randint(-d, d, (pos_r.numel(), n), generator=gen, device=dev)
        other = own + dy * w + dx
        for s in range(len(counts)):
            a, b = bounds[s], bounds[s + 1]
            ip, iq = own[a:b].reshape(-1), other[a:b].reshape(-1)
            vp, vq = pix.index_select(0, ip), pix.index_select(0, iq)
            pix.index_copy_(0, ip, vq)
            pix.index_copy_(0, iq, vp)
    return pix.view(n, h, w, c).permute(0, 3, 1, 2).contiguous()


@register("glass_blur", "blur", common=True, random=True)
def glass_blur(x: torch.Tensor, param: tuple[float, int, int], gen: torch.Generator) -> torch.Tensor:
    sigma, max_delta, iterations = param
    y = gaussian_filter(x, sigma)
    y = torch.floor(y.clamp(0, 1) * 255) / 255  # the reference stores the first blur as np.uint8
    y = glass_shuffle(y, max_delta, iterations, gen)
    return gaussian_filter(y, sigma)


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


def apply_motion_blur(
    x: torch.Tensor, radius: float, sigma: float, angles: torch.Tensor | float
) -> torch.Tensor:
    """ImageMagick's motion blur of N×C×H×W images (any C), one angle in degrees per image (or one for
    all), edge pixels repeated outside the image."""
    n, c, h, w = x.shape
    if not isinstance(angles, torch.Tensor):
        angles = torch.full((n,), float(angles), dtype=torch.float64)
    dx, dy = motion_blur_offsets(radius, angles.to(x.device))
    wts = motion_blur_weights(radius, sigma).to(x.dtype).tolist()
    # The image padded by the largest offset: every tap is then a plain in-bounds window read, which one
    # gather per tap does for all images at their own offsets.
    p = int(max(dx.abs().max(), dy.abs().max()))
    xp = pad_fold(x, p, "nearest")
    hp, wp = h + 2 * p, w + 2 * p
    flat = xp.reshape(n, c, hp * wp)
    rows = torch.arange(h, device=x.device) + p
    base = (rows[:, None] * wp + torch.arange(w, device=x.device) + p).reshape(-1)
    shift = dy * wp + dx  # (N, width)
    out = torch.zeros_like(x).reshape(n, c, h * w)
    for i, wt in enumerate(wts):
        idx = (base[None, :] + shift[:, i : i + 1]).unsqueeze(1).expand(n, c, h * w)
        out.add_(torch.gather(flat, 2, idx), alpha=wt)
    return out.reshape(n, c, h, w)


@register("motion_blur", "blur", common=True, random=True)
def motion_blur(x: torch.Tensor, param: tuple[float, float], gen: torch.Generator) -> torch.Tensor:
    radius, sigma = param
    angles = torch.rand(x.shape[0], generator=gen, device=x.device, dtype=torch.float64) * 90 - 45
    return apply_motion_blur(x, radius, sigma, angles)


# --------------------------------------------------------------------------------------------------------
# Zoom blur


def _zoom_matrix(n: int, factor: float) -> torch.Tensor:
    """n×n linear-interpolation matrix of the reference's clipped_zoom along one axis (float64)."""
    ch = math.ceil(n / factor)
    top = (n - ch) // 2
    out = round(ch * factor)  # scipy.ndimage.zoom's output length
    trim = (out - n) // 2
    o = torch.arange(n, dtype=torch.float64) + trim
    # scipy's zoom (grid_mode=False) puts the first and last samples on the crop's corner pixels.
    src = o * ((ch - 1) / (out - 1)) if out > 1 else torch.zeros_like(o)
    src = src.clamp(0, ch - 1)
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


def clipped_zoom(x: torch.Tensor, factor: float) -> torch.Tensor:
    """The reference's ``clipped_zoom`` over the last two dims: zoom the central ``ceil(size/factor)``
    crop by ``factor`` (linear, scipy's corner-aligned grid) and trim the centre back to the input size."""
    h, w = x.shape[-2], x.shape[-1]
    rows = _zoom_matrix_cached(h, float(factor)).to(x.device)
    cols = rows if h == w else _zoom_matrix_cached(w, float(factor)).to(x.device)
    return apply_rows_cols(x, rows, cols)


def zoom_factors(spec: tuple[float, float, float]) -> list[float]:
    """The reference's ``np.arange(start, stop, step)`` zoom factors (arange's float quirks included)."""
    return [float(z) for z in np.arange(*spec)]


@lru_cache(maxsize=32)
def _zoom_stacks(h: int, w: int, spec: tuple[float, float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    factors = zoom_factors(spec)
    rows = torch.cat([_zoom_matrix(h, z) for z in factors], dim=1)  # H × (F·H): [A_1 | … | A_F]
    cols = torch.cat([_zoom_matrix(w, z).T for z in factors], dim=1)  # W × (F·W): [B_1ᵀ | … | B_Fᵀ]
    return rows, cols


@register("zoom_blur", "blur", common=True, random=False)
def zoom_blur(x: torch.Tensor, param: tuple[float, float, float], gen: torch.Generator) -> torch.Tensor:
    n, c, h, w = x.shape
    rows, cols = _zoom_stacks(h, w, tuple(float(v) for v in param))
    nf = cols.shape[1] // w
    # Σ_f A_f x B_fᵀ as two GEMMs: x [B_1ᵀ|…|B_Fᵀ] gives the F column-zoomed images side by side; stacked
    # vertically they meet [A_1|…|A_F], which sums the F row-zooms in the same product.
    t = torch.matmul(x, cols.to(x.device, x.dtype))  # N,C,H,F·W
    t = t.view(n, c, h, nf, w).transpose(2, 3).reshape(n, c, nf * h, w)
    out = torch.matmul(rows.to(x.device, x.dtype), t)
    return (x + out) / (nf + 1)
