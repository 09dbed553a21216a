"""Digital corruptions: contrast, elastic transform, pixelate, JPEG (the common four) and saturate (extra).

How each relates to the reference generators (hendrycks/robustness ``make_*_c.py``):

* ``contrast`` — ``(x - m)·c + m`` with m the per-image, per-channel mean. Same formula.
* ``saturate`` (and ``brightness``, in ``weather.py``) — the reference goes through skimage's
  ``rgb2hsv`` / ``hsv2rgb`` with S·a + b (V + c) clipped to [0, 1]. Both conversions are here in torch
  (``rgb_to_hsv`` / ``hsv_to_rgb``, same hue branches and tie order), but the corruptions use the round
  trip's closed form (each RGB channel is V·(1 - S·φ(H)), so only V or S needs recomputing): the same
  values, in float32 instead of float64, so a value within ~1e-6 of an integer level can truncate to the
  level below.
* ``jpeg_compression`` — the reference saves a PIL image with ``quality=c`` and reads it back. Here
  libjpeg-turbo with PIL's defaults (the same quality scaling, 4:2:0 chroma subsampling, islow DCT and
  fancy upsampling), a batch coded as one strip of images with the seams redone (``jpeg.py``): bit for
  bit what PIL gives image by image, in the tests. Float input is rounded to 8 bits first (the
  reference's input is 8-bit). The only corruption not computed on the images' device.
* ``pixelate`` — PIL's ``resize(BOX)`` down to ``int(size·c)`` then back up, reproduced exactly: Pillow's
  box coefficients in its 22-bit fixed point, horizontal pass first with an 8-bit intermediate, rounding
  like ``clip8``; the upscale picks source pixel ``floor((o + ½)·in/out)``, which is what both PIL's BOX
  (the CIFAR/Tiny-ImageNet reference) and NEAREST (imagecorruptions) give when enlarging.
* ``elastic_transform`` — the reference's random affine (three control points moved by U(-a, a), OpenCV
  ``warpAffine``: bilinear, reflect-101 border) then a displacement field
  (U(-1, 1) smoothed by scipy's Gaussian, truncate 3, ``reflect`` edges, times alpha) sampled with
  ``map_coordinates(order=1, mode="reflect")``; both samplings are ``grid_sample`` with reflection
  padding (about the pixel centres for reflect-101, the pixel edges for scipy's reflect: the same
  values as folding the neighbours' indices), the noise in float32 where the reference draws float64.
  Fed the same random numbers it matches the recipe (OpenCV 5, skimage, scipy) to ≤ 0.01 level. The
  points use (x = W//2, y = H//2) centres; the reference uses (H//2, W//2), the same for square images.
  The affine samples at full-precision coordinates like the installed OpenCV 5 (matches it to 2e-4
  levels); OpenCV 3/4, which made the released sets, rounds source coordinates to 1/32 pixel — a
  difference of 0.19 levels mean absolute (at most 2) at 32 px, 0.02 at 224 px.
  imagecorruptions implements an older variant (no affine, σ = 0.01·size, displacements
  U(-0.005·size, 0.005·size)·alpha); the ImageNet table here follows ``make_imagenet_c.py``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import torch
import torch.nn.functional as F

from vicinal.corruptions import draws, jpeg
from vicinal.corruptions.core import register
from vicinal.corruptions.filters import gaussian_filter

# --------------------------------------------------------------------------------------------------------
# HSV (skimage.color semantics)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] (channels at dim -3) to HSV in [0, 1], as ``skimage.color.rgb2hsv``."""
    r, g, b = x.unbind(-3)
    v = torch.maximum(torch.maximum(r, g), b)
    delta = v - torch.minimum(torch.minimum(r, g), b)
    flat = delta == 0
    safe = torch.where(flat, torch.ones_like(delta), delta)
    s = torch.where(flat, torch.zeros_like(v), delta / torch.where(v == 0, torch.ones_like(v), v))
    # skimage assigns red, then green, then blue where each is the max: later ones win ties.
    h = torch.where(b == v, 4 + (r - g) / safe, torch.where(g == v, 2 + (b - r) / safe, (g - b) / safe))
    h = torch.where(flat, torch.zeros_like(h), torch.remainder(h / 6, 1.0))
    return torch.stack([h, s, v], dim=-3)


# Which of (v, q, p, t) each RGB channel takes in the six hue sectors.
_SECTOR = torch.tensor([[0, 1, 2, 2, 3, 0], [3, 0, 0, 1, 2, 2], [2, 2, 3, 0, 0, 1]])


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """HSV in [0, 1] (channels at dim -3) to RGB, as ``skimage.color.hsv2rgb``."""
    h, s, v = x.unbind(-3)
    hi = torch.floor(h * 6)
    f = h * 6 - hi
    p = v * (1 - s)
    q = v * (1 - f * s)
    t = v * (1 - (1 - f) * s)
    cand = torch.stack([v, q, p, t], dim=0)  # 4,…,H,W
    sector = hi.long().remainder(6)
    table = _SECTOR.to(x.device)
    chans = [torch.gather(cand, 0, table[ch][sector].unsqueeze(0)).squeeze(0) for ch in range(3)]
    return torch.stack(chans, dim=-3)


# --------------------------------------------------------------------------------------------------------
# Contrast, saturate


@register("contrast", "digital", common=True, random=False)
def contrast(x: torch.Tensor, param: float, gen: torch.Generator) -> torch.Tensor:
    m = x.mean(dim=(-2, -1), keepdim=True)
    return (x - m) * param + m


@register("saturate", "digital", common=False, random=False)
def saturate(x: torch.Tensor, param: tuple[float, float], gen: torch.Generator) -> torch.Tensor:
    scale, shift = param
    # Every channel of hsv2rgb(h, s, v) is v·(1 - s·φ) with φ a function of h alone, and s·v is the
    # channel spread, so φ = (v - rgb)/spread; the new colour is v - s'·v·φ. A grey pixel has h = 0,
    # φ = (0, 1, 1): a positive shift tints it red, as in the reference.
    v = x.amax(dim=-3, keepdim=True)
    spread = v - x.amin(dim=-3, keepdim=True)
    grey = spread == 0
    s = torch.where(grey, torch.zeros_like(v), spread / torch.where(v > 0, v, torch.ones_like(v)))
    s2 = (s * scale + shift).clamp(0, 1)
    phi_grey = torch.tensor([0.0, 1.0, 1.0], dtype=x.dtype, device=x.device).view(3, 1, 1)
    phi = torch.where(grey, phi_grey, (v - x) / torch.where(grey, torch.ones_like(spread), spread))
    return v - s2 * v * phi


# --------------------------------------------------------------------------------------------------------
# Elastic transform


def _normalised(size: int, mode: str) -> tuple[float, float]:
    """(scale, shift) taking a pixel coordinate to ``grid_sample``'s [-1, 1] for the boundary ``mode``."""
    if mode == "reflect":  # align_corners=False: the outer pixel edges are ±1
        return 2.0 / size, 1.0 / size - 1.0
    if mode == "mirror":  # align_corners=True: the outer pixel centres are ±1
        return 2.0 / max(size - 1, 1), -1.0
    raise ValueError(f"unknown boundary mode {mode!r}")


def _grid_sample(x: torch.Tensor, grid: torch.Tensor, mode: str) -> torch.Tensor:
    return F.grid_sample(
        x, grid.to(x.dtype), mode="bilinear", padding_mode="reflection", align_corners=(mode == "mirror")
    )


def sample_bilinear(x: torch.Tensor, sy: torch.Tensor, sx: torch.Tensor, mode: str) -> torch.Tensor:
    """Bilinear samples of N×C×H×W images at source coordinates sy, sx (each N×H'×W', pixel units),
    outside the image as scipy's ``map_coordinates(order=1, mode=...)`` with ``mode`` ``reflect``
    (half-sample symmetric) or ``mirror`` (whole-sample, OpenCV's reflect-101).

    ``grid_sample``'s reflection padding mirrors the coordinate about the outer pixel edges
    (align_corners=False) or the outer pixel centres (True); the linear interpolant of a symmetric
    extension is symmetric about the same point, so this equals folding the neighbours' indices.
    """
    (ax, bx), (ay, by) = _normalised(x.shape[-1], mode), _normalised(x.shape[-2], mode)
    return _grid_sample(x, torch.stack([sx * ax + bx, sy * ay + by], dim=-1), mode)


def elastic_control_points(h: int, w: int) -> torch.Tensor:
    """The reference's three affine control points (x, y) around the image centre (float64, 3×2)."""
    cx, cy, s = w // 2, h // 2, min(h, w) // 3
    return torch.tensor([[cx + s, cy + s], [cx + s, cy - s], [cx - s, cy - s]], dtype=torch.float64)


def affine_warp(x: torch.Tensor, pts1: torch.Tensor, pts2: torch.Tensor) -> torch.Tensor:
    """``cv2.warpAffine(x, getAffineTransform(pts1, pts2), borderMode=BORDER_REFLECT_101)`` per image:
    pts1 (3×2) and pts2 (N×3×2) are (x, y) points; bilinear at full-precision coordinates as OpenCV 5
    does (OpenCV 3/4 round them to 1/32 pixel first, see the module docstring)."""
    n, _, h, w = x.shape
    dev = x.device
    pts1 = pts1.to(dev, torch.float64).expand(n, 3, 2)
    pts2 = pts2.to(dev, torch.float64)
    # warpAffine samples the source at M⁻¹(dst); M⁻¹ is the affine map taking pts2 to pts1.
    ones = torch.ones(n, 3, 1, dtype=torch.float64, device=dev)
    inv = torch.linalg.solve(torch.cat([pts2, ones], dim=2), pts1)  # N×3×2: [x y 1] @ inv = source
    # The grid directly: [x y 1] @ inv, scaled and shifted into grid_sample's coordinates (float64).
    (ax, bx), (ay, by) = _normalised(w, "mirror"), _normalised(h, "mirror")
    inv = inv * torch.tensor([ax, ay], dtype=torch.float64, device=dev)
    inv[:, 2] += torch.tensor([bx, by], dtype=torch.float64, device=dev)
    xs = torch.arange(w, dtype=torch.float64, device=dev)[None, None, :, None]
    ys = torch.arange(h, dtype=torch.float64, device=dev)[None, :, None, None]
    # The per-column and per-row terms in float64, their sum (the only full-size step) in float32.
    across = (xs * inv[:, None, None, 0]).to(x.dtype)
    down = (ys * inv[:, None, None, 1] + inv[:, None, None, 2]).to(x.dtype)
    return _grid_sample(x, across + down, "mirror")


def displacement_warp(x: torch.Tensor, noise: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
    """The reference's elastic displacement: ``noise`` (2×N×H×W, the U(-1, 1) fields for dx and dy) is
    smoothed by scipy's Gaussian (truncate 3, ``reflect``), scaled by alpha, and x is sampled at
    (y + dy, x + dx) like ``map_coordinates(order=1, mode="reflect")``."""
    n, _, h, w = x.shape
    disp = gaussian_filter(noise, float(sigma), mode="reflect", truncate=3.0)
    # (x + alpha·d)·a + b as alpha·a·d + (x·a + b): one multiply-add per coordinate, into the grid.
    grid = torch.empty(n, h, w, 2, dtype=disp.dtype, device=x.device)
    for axis, size in ((0, w), (1, h)):
        a, b = _normalised(size, "reflect")
        pos = torch.arange(size, dtype=torch.float64, device=x.device) * a + b
        pos = pos.to(disp.dtype).view((1, -1) if axis == 0 else (-1, 1))
        torch.add(pos, disp[axis], alpha=float(alpha) * a, out=grid[..., axis])
    return _grid_sample(x, grid, "reflect")


@register("elastic_transform", "digital", common=True, random=True)
def elastic_transform(
    x: torch.Tensor, param: tuple[float, float, float], gen: torch.Generator
) -> torch.Tensor:
    alpha, sigma, affine = param
    n, _, h, w = x.shape
    dev = x.device
    if affine > 0:
        pts1 = elastic_control_points(h, w)
        jitter = draws.uniform((n, 3, 2), -float(affine), float(affine), gen, dev)
        x = affine_warp(x, pts1, pts1.to(dev) + jitter.to(torch.float32).to(torch.float64))
    noise = draws.uniform((2, n, h, w), -1.0, 1.0, gen, dev)
    return displacement_warp(x, noise, float(alpha), float(sigma))


# --------------------------------------------------------------------------------------------------------
# Pixelate (Pillow's BOX resize, bit-exact)

_PRECISION_BITS = 22  # Pillow's fixed point for 8-bit resampling: 32 - 8 - 2


@lru_cache(maxsize=64)
def pil_box_matrix(in_size: int, out_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pillow's BOX resampling from ``in_size`` to ``out_size`` samples: which inputs each output sums
    (out×in, 0/1, float32) and the output's fixed-point weight (out, int32).

    Pillow samples the box at source pixel centres, so an output's taps all weigh 1/m (m taps); each
    weight is stored as ``int(0.5 + 2^22/m)`` and the sum rounded by ``+2^21 >> 22``.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    taps = torch.zeros(out_size, in_size, dtype=torch.float32)
    weight = torch.zeros(out_size, dtype=torch.int32)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        inside = [x for x in range(xmin, xmax) if -0.5 < (x - center + 0.5) / filterscale <= 0.5]
        taps[xx, inside] = 1.0
        weight[xx] = int(0.5 + (1 << _PRECISION_BITS) / len(inside))
    return taps, weight


def _fixed_point(sums: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Pillow's rounding of box sums: ``(sum·w + 2^21) >> 22``, clipped to 8 bits (float32 out).

    Sums of at most a few 8-bit values are exact in float32, and their fixed-point products stay below
    255·2^22 < 2^31 (an output's m weights are ~2^22/m each), so int32 holds them exactly.
    """
    fixed = sums.to(torch.int32).mul_(weight).add_(1 << (_PRECISION_BITS - 1))
    return fixed.bitwise_right_shift_(_PRECISION_BITS).clamp_(0, 255).to(torch.float32)


@lru_cache(maxsize=64)
def _box_rows(in_size: int, out_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The box taps as row indices: ``index[t, o]`` is output o's t-th input row, or ``in_size`` (a row of
    zeros appended to the input) past its last tap; and the weights as an out×1 column."""
    taps, weight = pil_box_matrix(in_size, out_size)
    most = int(taps.sum(1).max())
    index = torch.full((most, out_size), in_size, dtype=torch.int64)
    for o in range(out_size):
        inside = torch.nonzero(taps[o]).squeeze(1)
        index[: len(inside), o] = inside
    return index, weight[:, None]


def pil_box_downscale(u8: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """Pillow's ``resize((out_w, out_h), BOX)`` of 8-bit values (uint8 or integer-valued floats) over the
    last two dims: the horizontal pass first, into 8 bits, then the vertical one, as Pillow does."""
    h, w = u8.shape[-2], u8.shape[-1]
    y = u8.to(torch.float32)
    if out_w != w:
        taps, weight = (t.to(y.device) for t in pil_box_matrix(w, out_w))
        y = _fixed_point(torch.matmul(y, taps.T), weight)  # one product over every row of the batch
    if out_h != h:
        # Whole rows picked and added: cheaper than a product per image for the vertical direction.
        index, weight = (t.to(y.device) for t in _box_rows(h, out_h))
        padded = torch.cat([y, y.new_zeros(*y.shape[:-2], 1, y.shape[-1])], dim=-2)
        sums = padded.index_select(-2, index[0])
        for t in range(1, len(index)):
            sums += padded.index_select(-2, index[t])
        y = _fixed_point(sums, weight)
    return y


@lru_cache(maxsize=64)
def enlarge_index(in_size: int, out_size: int) -> torch.Tensor:
    """Source ``floor((o + ½)·in/out)`` of each output o: Pillow's BOX and NEAREST enlargement."""
    o = torch.arange(out_size, dtype=torch.float64)
    return torch.floor((o + 0.5) * (in_size / out_size)).long().clamp_(max=in_size - 1)


@register("pixelate", "digital", common=True, random=False, uint8_input=True)
def pixelate(x: torch.Tensor, param: float, gen: torch.Generator) -> torch.Tensor:
    h, w = x.shape[-2], x.shape[-1]
    small = pil_box_downscale(x if x.dtype == torch.uint8 else to_uint8(x), int(h * param), int(w * param))
    sh, sw = small.shape[-2], small.shape[-1]
    small = small.to(torch.uint8)  # 8-bit values already: enlarged by picking pixels, returned as they are
    wide = small.index_select(-1, enlarge_index(sw, w).to(x.device))
    return wide.index_select(-2, enlarge_index(sh, h).to(x.device))


# --------------------------------------------------------------------------------------------------------
# JPEG


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats to 8-bit by rounding (exact for images that came from 8 bits)."""
    return (x * 255).round_().clamp_(0, 255).to(torch.uint8)


@register("jpeg_compression", "digital", common=True, random=False, uint8_input=True)
def jpeg_compression(x: torch.Tensor, param: int, gen: torch.Generator) -> torch.Tensor:
    images, quality = (x if x.dtype == torch.uint8 else to_uint8(x)).cpu(), int(param)
    # The codecs release the GIL, so threads share the cores (deterministic: no random numbers here).
    workers = max(1, min(torch.get_num_threads(), 8, len(images)))
    if workers == 1:
        out = jpeg.round_trip(images, quality)
    else:
        parts = images.tensor_split(workers)
        with ThreadPoolExecutor(workers) as pool:
            out = torch.cat(list(pool.map(lambda part: jpeg.round_trip(part, quality), parts)))
    return out.to(x.device)
