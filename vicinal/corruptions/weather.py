"""Weather corruptions: snow, frost, fog, brightness (four of the common 15) and spatter (one of the 4 extra).

Each follows the reference generators of hendrycks/robustness step by step, batched in torch with all
randomness drawn from the caller's generator. Where they differ from the reference:

- **snow**: the reference blurs its snow layer with ImageMagick's ``MotionBlurImage`` (through Wand);
  this uses the shared reimplementation in ``filters.py`` (ImageMagick's taps, offsets and edge rule, as
  imagecorruptions ports them) and reproduces the PNG round trips around it (uint8 truncation before
  the blur, rounding after). The noise layer's ``clipped_zoom`` is scipy's order-1 zoom (also shared).
  Computed in float32, so a layer pixel within rounding of the threshold may fall the other way.
  imagecorruptions, which the tests compare with, differs from the reference more than this does: it
  blurs an untrimmed (225-px) layer, so the last rows and columns differ, and does not truncate before
  the blur. Given the same random numbers, 2–4 % of interior pixels differ, nearly all by one level.
- **frost**: the same textures (read from the installed imagecorruptions package, decoded with PIL,
  which gives cv2's pixels exactly) and the same per-table rescaling (cv2 ``INTER_LINEAR``
  arithmetic, within one level; 0.2 for CIFAR, 0.3 for Tiny-ImageNet, none for ImageNet). Like the
  reference, only the first five textures are drawn (``randint(5)``; ``frost6.jpg`` is never used).
  When a texture is too small for the image (sizes the reference never met), it is enlarged to 1.1×
  the image, as imagecorruptions does. imagecorruptions also enlarges every texture by 1.1 (cubic) at
  224 px; the reference does not, and this code follows the reference.
- **fog**: the same diamond-square plasma fractal (wibble ``w·U(−w, w)``, w divided by the decay at
  each halving of the step, normalised to [0, 1] per image), of side the next power of two of the
  image, cropped top-left. Computed in float32 instead of float64: given the same random numbers,
  0.001 % of pixels differ from imagecorruptions', by one level.
- **brightness**: the reference goes through skimage's ``rgb2hsv`` / ``hsv2rgb`` with V + c clipped to
  [0, 1]; this uses the round trip's closed form (each RGB channel is V·(1 - S·φ(H)), so the new colour is
  the old one times V'/V, and black becomes grey V'): the same values in float32 instead of float64, so a
  value within ~1e-6 of an integer level can truncate to the level below. (Hendrycks & Dietterich count
  brightness as weather, like imagecorruptions.)
- **spatter**: the mud mode (severities with ``mud=1``) is the reference's up to float rounding. The
  water mode makes the reference's own OpenCV calls on a CPU, one image at a time (3× faster than
  batched torch at 32 px, 6× at 224 px); on other devices it redoes OpenCV's steps in torch:
  ``Canny(50, 150)`` (3×3 Sobel with repeated edges, L1 magnitude, OpenCV's fixed-point 22.5°/67.5°
  non-maximum suppression, 8-connected hysteresis), ``distanceTransform(DIST_L2, 5)`` (the 5×5 chamfer
  weights 1 / 1.4 / 2.1969 as float32, OpenCV's two raster passes), truncation at 20, box blurs,
  ``equalizeHist`` and the 3×3 emboss ``filter2D``, with their reflect-101 borders and uint8
  truncations and roundings. The tests check each against cv2 on real layers (equal, the distances
  within float32 rounding), and the two paths' masks are equal. numpy's uint8 wrap-around of liquid
  levels above 1 is kept too. Given the same random numbers, at most 0.02 % of pixels differ from
  imagecorruptions', by one level. Deviation: a layer with no liquid at all adds nothing where the
  reference divides 0 by 0.

On CPU the batch is worked through in slices (see ``core.corrupt``); BENCHMARKS.md has their speed.

Longer than most modules: one family of five corruptions, each a faithful port with its deviations stated
above, as the other family modules (noise, blur, digital) hold theirs.
"""

from __future__ import annotations

import functools
import importlib.metadata
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vicinal.corruptions import draws
from vicinal.corruptions.core import CHUNK_PIXELS, register
from vicinal.corruptions.filters import apply_motion_blur, clipped_zoom, gaussian_filter
from vicinal.corruptions.opencv import serial_opencv

# --------------------------------------------------------------------------------------------------
# Shared helpers


def _uniform(n: int, low: float, high: float, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device, dtype=torch.float64) * (high - low) + low


def _windows(
    padded: torch.Tensor,
    h: int,
    w: int,
    top: torch.Tensor,
    left: torch.Tensor,
    source: torch.Tensor | None = None,
) -> torch.Tensor:
    """The h×w window at (top[k], left[k]) of padded[source[k]] (default padded[k]), as K×C×h×w.

    Indexes a strided view of all windows, which copies only the picked ones (no index tensor per
    pixel, unlike ``gather``).
    """
    b, c, hp, wp = padded.shape
    s = padded.stride()
    views = padded.as_strided((b, c, hp - h + 1, wp - w + 1, h, w), (s[0], s[1], s[2], s[3], s[2], s[3]))
    if source is None:
        source = torch.arange(b, device=padded.device)
    return views[source, :, top, left]


def _gray(x: torch.Tensor) -> torch.Tensor:
    """cv2.COLOR_RGB2GRAY (ITU-R 601 luma) of N×3×H×W, keeping a channel axis."""
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).to(x.dtype)


# --------------------------------------------------------------------------------------------------
# Snow


@register("snow", "weather", common=True, random=True)
def snow(x: torch.Tensor, param: Any, gen: torch.Generator) -> torch.Tensor:
    mean, std, zoom, threshold, radius, sigma, keep = param
    n, _, h, w = x.shape
    layer = torch.randn(n, 1, h, w, generator=gen, device=x.device).mul_(std).add_(mean)
    if zoom != 1:  # a zoom by 1 is the identity (scipy's zoom of the whole layer to its own size)
        layer = clipped_zoom(layer, zoom)
    layer = layer.masked_fill_(layer < threshold, 0.0)
    # The reference hands the layer to ImageMagick as an 8-bit PNG and reads an 8-bit PNG back.
    layer = layer.clamp_(0.0, 1.0).mul_(255.0).floor_()
    angle = _uniform(n, -135.0, -45.0, gen, x.device)
    layer = apply_motion_blur(layer, radius, sigma, angle).round_().div_(255.0)
    layer = layer.add_(layer.flip(-1, -2))  # the layer and its rotation by 180°, added once
    brighter = torch.maximum(x, _gray(x).mul_(1.5).add_(0.5))
    return torch.lerp(x, brighter, 1.0 - keep).add_(layer)


# --------------------------------------------------------------------------------------------------
# Frost

_FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")
_FROST_DRAWN = 5  # the reference draws np.random.randint(5): frost6.jpg is never used


def _frost_path(name: str) -> str:
    # locate_file reads the installed distribution's metadata only: importing imagecorruptions would
    # pull in cv2, skimage and scipy for nothing.
    dist = importlib.metadata.distribution("imagecorruptions")
    return str(dist.locate_file(f"imagecorruptions/frost/{name}"))


def _read_texture(path: str) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))  # drops the PNGs' alpha like cv2.imread's IMREAD_COLOR
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).contiguous()


@functools.lru_cache(maxsize=1)
def _frost_textures() -> tuple[torch.Tensor, ...]:
    """The textures the reference draws from, 3×h×w uint8 RGB, read once per process."""
    return tuple(_read_texture(_frost_path(name)) for name in _FROST_FILES[:_FROST_DRAWN])


def _resize_linear(img: torch.Tensor, factor: float) -> torch.Tensor:
    """cv2.resize(img, (0, 0), fx=factor, fy=factor) with INTER_LINEAR on a 3×h×w uint8 image.

    cv2 samples at ``(d + ½)/factor − ½`` without antialiasing (so 0.2 picks every fifth pixel) and
    sizes the output ``round(side·factor)``.
    """

    def axis(size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = round(size * factor)
        src = ((torch.arange(out, dtype=torch.float64) + 0.5) / factor - 0.5).clamp(min=0.0)
        lo = torch.floor(src).long().clamp(max=size - 1)
        hi = (lo + 1).clamp(max=size - 1)
        return lo, hi, (src - lo).clamp(0.0, 1.0)

    f = img.double()
    ylo, yhi, fy = axis(img.shape[1])
    xlo, xhi, fx = axis(img.shape[2])
    rows = f[:, ylo] * (1 - fy)[:, None] + f[:, yhi] * fy[:, None]
    out = rows[:, :, xlo] * (1 - fx) + rows[:, :, xhi] * fx
    return out.round().clamp(0, 255).to(torch.uint8)


@functools.lru_cache(maxsize=8)
def _scaled_textures(scale: float, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The textures rescaled for the table, stacked K×3×h'×w' (zero-padded), and their K×2 sizes."""
    scaled = []
    for tex in _frost_textures():
        th, tw = tex.shape[1:]
        factor = scale
        if round(th * factor) <= h or round(tw * factor) <= w:
            # Too small for a crop (the reference never meets this): fit the image with a margin.
            factor = max(h / th, w / tw) * 1.1
        scaled.append(tex if factor == 1.0 else _resize_linear(tex, factor))
    sizes = torch.tensor([t.shape[1:] for t in scaled])
    stack = torch.zeros(len(scaled), 3, int(sizes[:, 0].max()), int(sizes[:, 1].max()), dtype=torch.uint8)
    for k, t in enumerate(scaled):
        stack[k, :, : t.shape[1], : t.shape[2]] = t
    return stack, sizes


@functools.lru_cache(maxsize=4)
def _textures_on(scale: float, h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    stack, sizes = _scaled_textures(scale, h, w)
    return stack.to(device), sizes.to(device)


@register("frost", "weather", common=True, random=True)
def frost(x: torch.Tensor, param: Any, gen: torch.Generator) -> torch.Tensor:
    keep, amount, scale = param
    n, _, h, w = x.shape
    stack, sizes = _textures_on(float(scale), h, w, x.device)
    which = torch.randint(len(stack), (n,), generator=gen, device=x.device)
    u = torch.rand(n, 2, generator=gen, device=x.device, dtype=torch.float64)
    # randint(0, side − size): the last possible offset is excluded, as in the reference.
    room = sizes[which] - torch.tensor([h, w], device=x.device)
    offset = (u * room).long()
    layer = _windows(stack, h, w, offset[:, 0], offset[:, 1], which).to(x.dtype)
    return keep * x + amount * layer / 255.0


# --------------------------------------------------------------------------------------------------
# Fog


def _plasma_fractal(
    n: int, size: int, decay: float, gen: torch.Generator, device: torch.device
) -> torch.Tensor:
    """n diamond-square height maps (size a power of two), each normalised to [0, 1]."""
    m = torch.zeros(n, size, size, device=device)
    step, wibble = size, 100.0

    def wibbled(total: torch.Tensor) -> torch.Tensor:
        return total / 4.0 + wibble * draws.uniform(total.shape, -wibble, wibble, gen, device)

    while step >= 2:
        half = step // 2
        corners = m[:, ::step, ::step]
        square = corners + corners.roll(-1, 1)
        square = square + square.roll(-1, 2)
        m[:, half::step, half::step] = wibbled(square)
        centres, corners = m[:, half::step, half::step], m[:, ::step, ::step]
        m[:, ::step, half::step] = wibbled(centres + centres.roll(1, 1) + corners + corners.roll(-1, 2))
        m[:, half::step, ::step] = wibbled(centres + centres.roll(1, 2) + corners + corners.roll(-1, 1))
        step //= 2
        wibble /= decay
    m = m - m.amin((1, 2), keepdim=True)
    return m / m.amax((1, 2), keepdim=True)


@register("fog", "weather", common=True, random=True)
def fog(x: torch.Tensor, param: Any, gen: torch.Generator) -> torch.Tensor:
    strength, decay = param
    n, _, h, w = x.shape
    size = 1 << (max(h, w, 2) - 1).bit_length()
    plasma = _plasma_fractal(n, size, decay, gen, x.device)[:, None, :h, :w]
    peak = x.amax((1, 2, 3), keepdim=True)
    return (x + strength * plasma) * peak / (peak + strength)


# --------------------------------------------------------------------------------------------------
# Brightness


@register("brightness", "weather", common=True, random=False)
def brightness(x: torch.Tensor, param: float, gen: torch.Generator) -> torch.Tensor:
    # hsv2rgb(h, s, v') = rgb · v'/v exactly (every channel is v times a function of h and s), and a black
    # pixel (v = 0, so h = s = 0) becomes grey v'. Same result as the round trip, in four passes.
    v = x.amax(dim=-3, keepdim=True)
    v2 = (v + param).clamp(0, 1)
    return torch.where(v > 0, x * (v2 / torch.where(v > 0, v, torch.ones_like(v))), v2)


# --------------------------------------------------------------------------------------------------
# Spatter: OpenCV's steps of the water mode, batched

_TG22 = int(0.4142135623730950488 * (1 << 15) + 0.5)  # tan 22.5° in OpenCV Canny's 15-bit fixed point
# distanceTransform(DIST_L2, 5)'s chamfer weights, as the float32 numbers OpenCV adds up.
_CHAMFER = tuple(float(np.float32(v)) for v in (1.0, 1.4, 2.1969))
_EMBOSS = [[-2.0, -1.0, 0.0], [-1.0, 1.0, 1.0], [0.0, 1.0, 2.0]]


class _Flat:
    """A batch of images padded by one pixel and laid end to end as one contiguous vector.

    Neighbour ``(dy, dx)`` of every pixel is then one contiguous slice at a fixed offset, which CPU
    kernels run several times faster than the short strided rows of N×1×32×32 slices. Only interior
    pixels are meaningful; the ring's values are whatever the padding or the arithmetic left there.
    """

    def __init__(self, padded: torch.Tensor) -> None:
        self.shape = padded.shape  # N×1×(H+2)×(W+2)
        self.width = padded.shape[-1]
        self.size = padded.numel()
        self.margin = self.width + 1

    def extend(self, flat: torch.Tensor) -> torch.Tensor:
        return F.pad(flat.reshape(1, -1), (self.margin, self.margin)).view(-1)

    def at(self, extended: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
        start = self.margin + dy * self.width + dx
        return extended[start : start + self.size]

    def correlate(self, extended: torch.Tensor, rows: list[list[float]]) -> torch.Tensor:
        out = torch.zeros(self.size, dtype=extended.dtype, device=extended.device)
        for i, row in enumerate(rows):
            for j, weight in enumerate(row):
                if weight:
                    out.add_(self.at(extended, i - 1, j - 1), alpha=weight)
        return out

    def smooth(self, extended: torch.Tensor, dy: int, dx: int, centre: float) -> torch.Tensor:
        """``at(-dy, -dx) + centre·at(0, 0) + at(dy, dx)``: a symmetric 3-tap filter along one axis."""
        out = torch.add(self.at(extended, -dy, -dx), self.at(extended, dy, dx))
        return out.add_(self.at(extended, 0, 0), alpha=centre)

    def interior(self, flat: torch.Tensor) -> torch.Tensor:
        return flat.view(self.shape)[..., 1:-1, 1:-1]


def _correlate3(img: torch.Tensor, rows: list[list[float]], mode: str) -> torch.Tensor:
    """3×3 correlation (cv2.filter2D's convention, anchor at the centre) of N×1×H×W, borders by ``mode``."""
    padded = F.pad(img, (1, 1, 1, 1), mode=mode)
    grid = _Flat(padded)
    return grid.interior(grid.correlate(grid.extend(padded.reshape(-1)), rows))


def _box3(img: torch.Tensor, mode: str) -> torch.Tensor:
    """The 3×3 box sum of N×1×H×W (cv2.blur's sum before it divides by 9), borders by ``mode``, as a
    row pass and a column pass: the same sums, exactly, for the integers and float32 sums it takes."""
    padded = F.pad(img, (1, 1, 1, 1), mode=mode)
    grid = _Flat(padded)
    rows = grid.smooth(grid.extend(padded.reshape(-1)), 0, 1, 1.0)
    return grid.interior(grid.smooth(grid.extend(rows), 1, 0, 1.0))


def _canny(img: torch.Tensor, low: int, high: int) -> torch.Tensor:
    """cv2.Canny(img, low, high) of uint8-valued N×1×H×W float32s: aperture 3, L1 gradient."""
    # OpenCV's Sobel for Canny repeats the edge pixels; the values are small integers, exact in floats.
    padded = F.pad(img, (1, 1, 1, 1), mode="replicate")
    grid = _Flat(padded)
    inside = torch.zeros_like(padded, dtype=torch.bool)
    inside[..., 1:-1, 1:-1] = True
    inside = inside.view(-1)
    pe = grid.extend(padded.reshape(-1))
    # The 3×3 Sobel kernels are [1 2 1]ᵀ[-1 0 1] and its transpose: a difference along one axis, then
    # [1 2 1] along the other (small integers: exact in any order).
    gx = grid.smooth(grid.extend(torch.sub(grid.at(pe, 0, 1), grid.at(pe, 0, -1))), 1, 0, 2.0)
    gy = grid.smooth(grid.extend(torch.sub(grid.at(pe, 1, 0), grid.at(pe, -1, 0))), 0, 1, 2.0)
    ax, ay = gx.abs(), gy.abs()
    mag = (ax + ay).mul_(inside)  # no neighbours outside the image
    me = grid.extend(mag)

    # OpenCV's sector test in its 15-bit fixed point, |gy|·2¹⁵ against |gx|·tan 22.5° and |gx|·tan 67.5°
    # (= |gx|·(tan 22.5° + 2)), rearranged so every product stays exact in float32.
    tg22 = ax * _TG22
    horizontal = ay * 32768.0 < tg22
    vertical = (ay - 2.0 * ax) * 32768.0 > tg22
    anti = (gx < 0) ^ (gy < 0)  # OpenCV's (xs ^ ys) < 0: the gradient points into quadrants 2 or 4
    diagonal = ~(horizontal | vertical)
    at = grid.at
    # Across the edge one neighbour must be strictly smaller and the other no larger (strictly smaller on
    # diagonals), as in OpenCV. Masks and comparisons rather than torch.where, which is slow on CPU.
    local_max = (
        (horizontal & (mag > at(me, 0, -1)) & (mag >= at(me, 0, 1)))
        | (vertical & (mag > at(me, -1, 0)) & (mag >= at(me, 1, 0)))
        | (diagonal & anti & (mag > at(me, -1, 1)) & (mag > at(me, 1, -1)))
        | (diagonal & ~anti & (mag > at(me, -1, -1)) & (mag > at(me, 1, 1)))
    )
    candidate = local_max & (mag > low)  # mag is 0 on the ring, so only interior pixels
    edges = candidate & (mag > high)
    # Hysteresis: grow the strong edges through 8-connected candidates until nothing changes.
    weak = candidate & ~edges
    while bool(weak.any()):
        ee = grid.extend(edges.to(torch.uint8))
        near = at(ee, -1, -1) | at(ee, -1, 0) | at(ee, -1, 1) | at(ee, 0, -1)
        near = near | at(ee, 0, 1) | at(ee, 1, -1) | at(ee, 1, 0) | at(ee, 1, 1)
        reached = weak & near.bool()
        if not bool(reached.any()):
            break
        edges = edges | reached
        weak = weak & ~reached
    return grid.interior(edges)


def _chamfer_distance(zero: torch.Tensor, cap: float) -> torch.Tensor:
    """cv2.distanceTransform(DIST_L2, 5) of N×H×W (distance to the nearest ``zero`` pixel), min(·, cap),
    for batches on devices other than the CPU (where OpenCV itself runs: ``_water_opencv``).

    OpenCV scans the image twice in raster order with the two halves of the 5×5 chamfer mask. Here each
    pass goes row by row over the whole batch: contributions of the two rows already scanned are
    elementwise minima, and the run along the row (cost 1 per pixel) is a cumulative minimum, which
    gives the raster scan's result exactly; the backward pass is the forward one on the batch turned by
    180° (the mask's halves are each other's rotation). Computed in float64 and rounded once to float32,
    which matches OpenCV's float32 sums on real layers (checked in the tests).
    """
    n, h, w = zero.shape
    far = cap + 8.0  # anything beyond the cap is as good as infinity
    # Two columns of "infinity" on each side, so neighbours up to two columns away are plain slices.
    dt = torch.full((n, h, w + 4), far, dtype=torch.float64, device=zero.device)
    dt[:, :, 2:-2].masked_fill_(zero, 0.0)
    _chamfer_pass(dt)
    turned = dt.flip(1, 2)
    _chamfer_pass(turned)
    return turned.flip(1, 2)[:, :, 2:-2].clamp(max=cap).float()


def _chamfer_pass(d: torch.Tensor) -> None:
    """The forward raster pass of the chamfer transform, in place, on N×H×(W+4) float64."""
    a, b, c = _CHAMFER
    h = d.shape[1]
    ramp = torch.arange(d.shape[2] - 4, dtype=torch.float64, device=d.device) * a
    for y in range(h):
        best = d[:, y, 2:-2]
        if y >= 1:
            r = d[:, y - 1]
            best = torch.minimum(best, r[:, 2:-2] + a)
            best = torch.minimum(best, torch.minimum(r[:, 1:-3], r[:, 3:-1]) + b)
            knight = torch.minimum(r[:, :-4], r[:, 4:])
            if y >= 2:
                r2 = d[:, y - 2]
                knight = torch.minimum(knight, torch.minimum(r2[:, 1:-3], r2[:, 3:-1]))
            best = torch.minimum(best, knight + c)
        d[:, y, 2:-2] = torch.cummin(best - ramp, 1).values + ramp


def _equalize_hist(img: torch.Tensor) -> torch.Tensor:
    """cv2.equalizeHist per image of uint8-valued N×1×H×W floats."""
    n = img.shape[0]
    values = img.reshape(n, -1).long()
    total = values.shape[1]
    hist = torch.zeros(n, 256, device=img.device, dtype=torch.long)
    hist.scatter_add_(1, values, torch.ones_like(values))
    first = (hist > 0).to(torch.uint8).argmax(1, keepdim=True)
    base = hist.gather(1, first)
    rest = (total - base).clamp(min=1)
    # OpenCV's arithmetic: float32 scale 255/(total − count of the lowest value), rounded half to even.
    scale = torch.tensor(255.0, dtype=torch.float32, device=img.device) / rest.to(torch.float32)
    lut = torch.round((hist.cumsum(1) - base).to(torch.float32) * scale).clamp_(0, 255)
    out = lut.gather(1, values).to(img.dtype).view_as(img)
    # A one-valued image is left as it is.
    return torch.where((base == total).view(n, 1, 1, 1), img, out)


def _liquid_level(liquid: torch.Tensor) -> torch.Tensor:
    """The water mode's uint8 liquid level (as floats), N×1×H×W."""
    # astype(np.uint8) wraps values past 255 around (numpy casts through a wider integer), which punches
    # dark holes, and so Canny edges, into the brightest liquid; kept because CIFAR-10-C has them.
    return torch.floor(liquid * 255.0).remainder_(256.0)


def _water_edges(liquid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The water mode's liquid level and its Canny edges, N×1×H×W."""
    level = _liquid_level(liquid)
    return level, _canny(level, 50, 150)


def _water_mask(level: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    """The reference's ``liquid·dist`` (before its normalisation) from the level and capped distances."""
    # cv2.blur sums in float64 and returns float32 (so 5.99999999 becomes 6) before astype(np.uint8).
    dist = torch.floor((_box3(dist.double(), "reflect") / 9.0).float())
    dist = _equalize_hist(dist)
    dist = _correlate3(dist, _EMBOSS, "reflect").clamp_(0.0, 255.0)  # filter2D into CV_8U saturates
    dist = torch.round(_box3(dist, "reflect") / 9.0)  # cv2.blur on uint8 rounds
    return level * dist.to(level.dtype)


def _water(liquid: torch.Tensor) -> torch.Tensor:
    """The reference's water mask ``liquid·dist`` (before its normalisation), N×1×H×W, in torch."""
    level, edges = _water_edges(liquid)
    return _water_mask(level, _chamfer_distance(edges[:, 0], 20.0).unsqueeze(1))


_EMBOSS_CV = np.array(_EMBOSS)


def _water_opencv(liquid: torch.Tensor) -> torch.Tensor:
    """``_water`` on a CPU batch by the reference's own OpenCV calls, image by image (the same numbers:
    tested). Batched torch needs a Python step per row for the distance transform and a dozen passes for
    Canny's hysteresis; OpenCV's C does each image in one call."""
    level = _liquid_level(liquid)
    levels = level[:, 0].numpy().astype(np.uint8)
    dist = np.empty(levels.shape, dtype=np.float32)
    with serial_opencv() as cv2:
        for i, layer in enumerate(levels):
            d = cv2.distanceTransform(255 - cv2.Canny(layer, 50, 150), cv2.DIST_L2, 5)
            d8 = cv2.blur(np.minimum(d, 20.0, out=d), (3, 3)).astype(np.uint8)
            dist[i] = cv2.blur(cv2.filter2D(cv2.equalizeHist(d8), cv2.CV_8U, _EMBOSS_CV), (3, 3))
    return level * torch.from_numpy(dist).unsqueeze(1).to(level.dtype)


def _liquid(n: int, h: int, w: int, param: Any, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    mean, std, sigma, threshold = param[:4]
    liquid = torch.randn(n, 1, h, w, generator=gen, device=device) * std + mean
    liquid = gaussian_filter(liquid, sigma)
    return liquid * (liquid >= threshold)


def _mud(x: torch.Tensor, param: Any, gen: torch.Generator) -> torch.Tensor:
    threshold, sigma = param[3], param[4]
    liquid = _liquid(x.shape[0], x.shape[2], x.shape[3], param, gen, x.device)
    m = gaussian_filter((liquid > threshold).to(x.dtype), sigma)
    m = m * (m >= 0.8)
    brown = torch.tensor([63.0, 42.0, 20.0], device=x.device, dtype=x.dtype).view(1, 3, 1, 1) / 255.0
    return torch.lerp(x, brown.expand_as(x), m)  # x·(1 - m) + brown·m in one pass


# The torch distance transform's row scan costs per row of the batch whatever its size, so the core hands
# spatter slices eight times larger than the pixelwise steps around it, which take them in parts (kept on
# the CPU too, where OpenCV does that step: the slicing decides which random numbers each image gets).
@register("spatter", "weather", common=False, random=True, chunk_pixels=8 * CHUNK_PIXELS)
def spatter(x: torch.Tensor, param: Any, gen: torch.Generator) -> torch.Tensor:
    h, w = x.shape[-2:]
    parts = x.split(max(1, CHUNK_PIXELS // (h * w))) if x.device.type == "cpu" else [x]
    if param[5]:
        return torch.cat([_mud(p, param, gen) for p in parts])
    water = torch.tensor([175.0, 238.0, 238.0], device=x.device, dtype=x.dtype).view(1, 3, 1, 1) / 255.0
    if x.device.type == "cpu":
        masks = [_water_opencv(_liquid(len(p), h, w, param, gen, x.device)) for p in parts]
    else:
        found = [_water_edges(_liquid(len(p), h, w, param, gen, x.device)) for p in parts]
        dist = _chamfer_distance(torch.cat([e for _, e in found])[:, 0], 20.0).unsqueeze(1)
        splits = dist.split([len(p) for p in parts])
        masks = [_water_mask(level, d) for (level, _), d in zip(found, splits, strict=True)]
    out = []
    for p, m in zip(parts, masks, strict=True):
        m = m / m.amax((1, 2, 3), keepdim=True).clamp(min=1e-12) * param[4]
        out.append(p + m.to(x.dtype) * water)
    return torch.cat(out)
