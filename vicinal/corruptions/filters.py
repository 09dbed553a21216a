"""Linear image operators shared by the corruptions: boundary rules, Gaussian blur, the reference's
clipped zoom and ImageMagick's motion blur, each on N×C×H×W tensors (or any tensor's last two dims).

* ``fold_index(idx, n, mode)``, ``pad_fold(x, pad, mode)``, ``filter_matrix(n, weights, mode)`` — scipy's
  edge modes (``nearest``, ``reflect``, ``mirror``, ``constant``) as index folding, padding of any width,
  and the matrix of a 1-D correlation; ``apply_rows_cols(x, rows, cols)`` applies two such matrices.
* ``gaussian_filter(x, sigma, mode="nearest", truncate=4.0)`` — scipy/skimage's Gaussian over the last two
  dims: two products with banded matrices up to 32×32 px and for kernels longer than a sixth of the
  side, separable depthwise convolutions otherwise. Same operator; float32 rounding only.
* ``clipped_zoom(x, factor)`` — the reference's clipped zoom (central crop of ``ceil(h/z)`` pixels, scipy
  ``zoom(order=1)`` to ``round(ceil(h/z)·z)`` pixels, centred trim back to h) with scipy's corner-aligned
  linear interpolation; ``zoom_matrix(n, factor)`` is its matrix along one axis.
* ``motion_blur_weights(radius, sigma)``, ``motion_blur_offsets(radius, angles)``,
  ``motion_blur_kernel(radius, sigma, angle_deg, device)`` (the dense 2-D correlation kernel of one
  angle) and ``apply_motion_blur(x, radius, sigma, angles)`` — ImageMagick's ``MotionBlurImage`` as
  imagecorruptions' ``_motion_blur`` rebuilds it (see ``blur.py`` for how it differs from ImageMagick),
  batched, one angle per image.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from vicinal.corruptions.opencv import serial_opencv

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


#: OpenCV's border for each scipy edge mode (one fold: for kernels shorter than the image).
_BORDER = {"nearest": 1, "mirror": 4, "reflect": 2}  # BORDER_REPLICATE, BORDER_REFLECT_101, BORDER_REFLECT


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
    if r == 0:
        return x  # a single tap of weight 1 (σ < 1/8 with truncate 4): scipy returns the input too
    opencv_can = x.device.type == "cpu" and x.dtype == torch.float32 and not x.requires_grad
    if opencv_can and h * w > 1024 and r < min(h, w) and mode in _BORDER:
        return _gaussian_opencv(x, weights, mode)
    if h * w > 1024 and 6 * (2 * r + 1) <= min(h, w) and mode in ("nearest", "mirror", "reflect"):
        # Large images and short kernels: 2·(2r+1) taps per pixel beat two products whose cost grows
        # with the side (measured at 224 px: the products win from about 25 taps on).
        return _separable_conv(x, weights, mode)
    rows = _gaussian_matrix_cpu(h, float(sigma), mode, float(truncate)).to(x.device)
    cols = rows if w == h else _gaussian_matrix_cpu(w, float(sigma), mode, float(truncate)).to(x.device)
    return apply_rows_cols(x, rows, cols)


def _gaussian_opencv(x: torch.Tensor, weights: torch.Tensor, mode: str) -> torch.Tensor:
    """``gaussian_filter`` of a float32 CPU batch beyond 32×32 px: OpenCV's separable filter, one plane at a
    time, 3.5–4× faster than depthwise convolutions (which need the planes transposed to channels-last
    and back) and equal to them up to float32 rounding (≤ 4e-7: tested)."""
    planes = x.contiguous().reshape(-1, x.shape[-2], x.shape[-1]).numpy()
    out = np.empty_like(planes)
    k = weights.numpy()
    with serial_opencv() as cv2:
        for src, dst in zip(planes, out, strict=True):
            cv2.sepFilter2D(src, -1, k, k, dst=dst, borderType=_BORDER[mode])
    return torch.from_numpy(out).view(x.shape)


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
    if x.device.type != "cpu":
        # Pad by the largest offset: every tap is then a window read inside the padded image. One
        # advanced-index read per tap gathers every image's window from a strided view indexed by
        # (image, flat window offset): a single kernel per tap.
        p = int(max(dx.abs().max(), dy.abs().max()))
        xp = pad_fold(x, p, "nearest").contiguous()
        hp, wp = h + 2 * p, w + 2 * p
        shift = (dy + p) * wp + (dx + p)
        windows = xp.as_strided((n, 2 * p * wp + 2 * p + 1, c, h, w), (c * hp * wp, 1, hp * wp, wp, 1))
        images = torch.arange(n, device=x.device)
        out = torch.zeros(x.shape, dtype=x.dtype, device=x.device)
        for i, wt in taps:
            out.add_(windows[images, shift[:, i]], alpha=wt)
        return out
    # CPU: with the images sorted by angle, a tap's offset is constant over runs of consecutive images,
    # so each (tap, run) is one vectorised add of a window of the padded images — a few hundred adds
    # for any batch, no per-element indexing. The adds of one tap go to disjoint images and run as one
    # foreach call; the padding is only on the sides the taps reach.
    order = torch.argsort(angles)
    dx, dy = dx[order].numpy(), dy[order].numpy()
    left, top = max(0, -int(dx.min())), max(0, -int(dy.min()))
    xp = F.pad(x[order], (left, max(0, int(dx.max())), top, max(0, int(dy.max()))), mode="replicate")
    # The windows are views with xp's own strides and offset, so they are right in any memory layout
    # (F.pad keeps a channels-last input channels-last).
    sn, sc, sh, sw = xp.stride()
    starts_of = np.ones((n, dx.shape[1]), dtype=bool)
    starts_of[1:] = (dx[1:] != dx[:-1]) | (dy[1:] != dy[:-1])  # run starts of every tap at once
    shift = (dy + top) * sh + (dx + left) * sw + xp.storage_offset()  # each image's window per tap
    out = torch.zeros(x.shape, dtype=x.dtype, device=x.device)
    for i, wt in taps:
        starts = np.flatnonzero(starts_of[:, i])
        ends = [*starts[1:].tolist(), n]
        windows = [
            xp.as_strided((b - a, c, h, w), (sn, sc, sh, sw), a * sn + int(s))
            for a, b, s in zip(starts.tolist(), ends, shift[starts, i].tolist(), strict=True)
        ]
        torch._foreach_add_(list(out.tensor_split(starts[1:].tolist())), windows, alpha=wt)
    return torch.empty_like(out).index_copy_(0, order, out)


# --------------------------------------------------------------------------------------------------------
# Clipped zoom


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


def zoom_matrix(n: int, factor: float) -> torch.Tensor:
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
    return zoom_matrix(n, factor)


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
