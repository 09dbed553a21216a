"""JPEG round trips as the reference makes them: PIL's ``save(format="JPEG", quality=q)`` and read back.

libjpeg-turbo does the work (Pillow's and torchvision's builds give the same bytes: baseline, 4:2:0
chroma, the islow DCT and fancy upsampling). For a 32-px image most of a codec call is its set-up, so a
batch goes through the codec as **one strip**: the images stacked vertically, encoded once and decoded
once, with the result made bit-identical to coding each image alone:

* Encoding is local to each 16×16 macroblock (colour conversion per pixel, 2×2 chroma averaging,
  the DCT and quantisation per 8×8 block; the entropy coding is lossless), so when an image's height
  is a multiple of 16 its blocks in the strip hold exactly the coefficients it has alone.
* Decoding is local too, except fancy upsampling: each chroma row is blended with the chroma row above
  or below, which at an image's top and bottom edge is the neighbouring image's in the strip and the
  edge row itself (replicated) alone. Only those two pixel rows per image differ, and they are redone:
  the image's chroma samples come from a second decode at half scale in YCbCr (libjpeg decodes 4:2:0
  chroma at half scale with the full 8×8 IDCT and no upsampling), the luma is recovered from the
  decoded RGB (R = Y + f(Cr) exactly unless clamped to 0 or 255; likewise G and B), and the rows are
  upsampled and converted with libjpeg's integer formulas. A pixel whose three channels are all clamped
  can leave the luma undetermined; if the right output depends on it, that image is coded alone.

The tests check the strip against per-image coding bit for bit on real images at every quality in the
tables. Sizes the strip cannot take (heights or widths not a multiple of 16), and images beyond 64×64
pixels, where it does not pay, are coded image by image.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
from PIL import Image

#: libjpeg's 4:2:0 macroblock: an image stacked in the strip must start on one.
_MCU = 16
#: The JPEG format's largest height.
_MAX_ROWS = 65_535
#: Images up to this size go through the strip. Per image and severity on one thread (2-core EPYC VM):
#: 32 px 1.8× faster, 64 px 1.1×, 96 and 128 px even, 224 px 7 % slower: beyond the smallest sizes
#: the half-scale decode costs more than the per-call set-up it saves.
_STRIP_MAX_PIXELS = 64 * 64


class _NoHalfScaleDecode(RuntimeError):
    """This Pillow does not decode at half scale in YCbCr (DCT scaling), which the seam repair needs."""


def _fix(x: float) -> int:
    return int(x * (1 << 16) + 0.5)


# libjpeg's YCbCr → RGB tables (jdcolor.c, 16-bit fixed point), indexed by the 8-bit chroma sample.
_C = np.arange(256, dtype=np.int32) - 128
_CR_R = (_fix(1.40200) * _C + (1 << 15)) >> 16
_CB_B = (_fix(1.77200) * _C + (1 << 15)) >> 16
_CR_G = -_fix(0.71414) * _C
_CB_G = -_fix(0.34414) * _C + (1 << 15)


def _pil_decode(data: bytes) -> torch.Tensor:
    with Image.open(io.BytesIO(data)) as im:
        return torch.from_numpy(np.asarray(im.convert("RGB")).transpose(2, 0, 1).copy())


def _pil_round_trip(image: torch.Tensor, quality: int) -> torch.Tensor:
    buf = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(buf, "JPEG", quality=quality)
    return _pil_decode(buf.getvalue())


@lru_cache(maxsize=1)
def _torchvision_ops() -> tuple[Callable[..., torch.Tensor], Callable[[torch.Tensor], torch.Tensor]] | None:
    """torchvision's libjpeg-turbo ops, encode (3×H×W uint8, quality → JPEG bytes as a uint8 tensor) and
    decode (such bytes → 3×H×W uint8 RGB), or None where they are missing. They have a third of PIL's
    per-call Python cost; their Python wrappers are deprecated (0.29), so the ops are called directly."""
    try:
        from torchvision.io import ImageReadMode

        encode, decode = torch.ops.image.encode_jpeg, torch.ops.image.decode_jpeg
        rgb = ImageReadMode.RGB.value
    except (ImportError, AttributeError, RuntimeError):
        return None
    return encode, lambda data: decode(data, rgb, False)


@lru_cache(maxsize=1)
def _image_codec() -> Callable[[torch.Tensor, int], torch.Tensor]:
    """One 3×H×W image's round trip: torchvision's ops, PIL where they are missing."""
    ops = _torchvision_ops()
    if ops is None:
        return _pil_round_trip
    encode, decode = ops
    return lambda image, quality: decode(encode(image.contiguous(), quality))


def round_trip_each(images: torch.Tensor, quality: int) -> torch.Tensor:
    """N×3×H×W uint8 images, each coded alone."""
    codec = _image_codec()
    return torch.stack([codec(image, quality) for image in images.unbind(0)])


def round_trip(images: torch.Tensor, quality: int) -> torch.Tensor:
    """N×3×H×W uint8 CPU images after a JPEG round trip at ``quality``, as PIL gives image by image."""
    n, _, h, w = images.shape
    if n < 2 or h % _MCU or w % _MCU or h * w > _STRIP_MAX_PIXELS or not _strip_is_exact():
        return round_trip_each(images, quality)
    per_strip = _MAX_ROWS // h
    parts = [strip_round_trip(images[i : i + per_strip], quality)[0] for i in range(0, n, per_strip)]
    return parts[0] if len(parts) == 1 else torch.cat(parts)


@lru_cache(maxsize=1)
def _strip_is_exact() -> bool:
    """Whether this process's Pillow and libjpeg code a strip bit for bit as image by image, checked
    once on a small probe (blocky and saturated colours, a high and a low quality): the seam repair
    relies on how libjpeg decodes at half scale, which another build could do differently or not at
    all."""
    gen = torch.Generator().manual_seed(0)
    levels = torch.cat(
        [
            torch.randint(0, 256, (4, 3, 8, 8), generator=gen),
            torch.randint(0, 2, (4, 3, 8, 8), generator=gen) * 255,
        ]
    )
    probe = levels.repeat_interleave(4, 2).repeat_interleave(4, 3).to(torch.uint8)
    try:
        return all(torch.equal(strip_round_trip(probe, q)[0], round_trip_each(probe, q)) for q in (95, 10))
    except _NoHalfScaleDecode:
        return False


def _fancy_upsample_rows(colsums: np.ndarray) -> np.ndarray:
    """libjpeg's h2v2 fancy upsampling across a row, from its vertical blends (3·near + far per
    chroma sample, last axis): each output pixel takes 3/4 of its sample and 1/4 of the next one out,
    with the edge samples replicated (jdsample.c, rounding 8 then 7)."""
    left = np.concatenate([colsums[..., :1], colsums[..., :-1]], -1)
    right = np.concatenate([colsums[..., 1:], colsums[..., -1:]], -1)
    near = 3 * colsums
    pairs = np.stack([(near + left + 8) >> 4, (near + right + 7) >> 4], -1)
    return pairs.reshape(*colsums.shape[:-1], -1)


def _chroma_offsets(cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    """What libjpeg adds to the luma for R, G and B (stacked first) at upsampled chroma ``cb``/``cr``."""
    return np.stack([_CR_R[cr], (_CB_G[cb] + _CR_G[cr]) >> 16, _CB_B[cb]])


def strip_round_trip(images: torch.Tensor, quality: int) -> tuple[torch.Tensor, list[int]]:
    """The round trip of N ≥ 2 images (heights and widths multiples of 16) coded as one strip; also
    which images had to be coded alone (their edge rows' luma undetermined). Raises
    ``_NoHalfScaleDecode`` where Pillow cannot decode at half scale in YCbCr."""
    n, _, h, w = images.shape
    # Built from the three colour planes: an 8× cheaper copy than interleaving the channels first.
    planes = images.transpose(0, 1).contiguous().numpy()
    bands = [Image.frombuffer("L", (w, n * h), plane, "raw", "L", 0, 1) for plane in planes]
    buf = io.BytesIO()
    Image.merge("RGB", bands).save(buf, "JPEG", quality=quality)
    data = buf.getvalue()
    ops = _torchvision_ops()
    out = _pil_decode(data) if ops is None else ops[1](torch.frombuffer(bytearray(data), dtype=torch.uint8))
    with Image.open(io.BytesIO(data)) as im:
        im.draft("YCbCr", (w // 2, n * h // 2))
        if im.mode != "YCbCr" or im.size != (w // 2, n * h // 2):
            raise _NoHalfScaleDecode(f"Pillow decoded {im.mode} {im.size} at half scale")
        chroma = np.asarray(im)[..., 1:].reshape(n, h // 2, w // 2, 2)
    rgb = out.numpy().reshape(3, n, h, w)

    # The seams: the first pixel row of images 1…n-1 and the last of images 0…n-2, as (seam, 2, w/2)
    # chroma samples of the image itself (near) and of its neighbour across the seam (far).
    near = np.concatenate([chroma[1:, 0], chroma[:-1, -1]]).transpose(0, 2, 1).astype(np.int32)
    far = np.concatenate([chroma[:-1, -1], chroma[1:, 0]]).transpose(0, 2, 1).astype(np.int32)
    in_strip = _fancy_upsample_rows(3 * near + far)
    alone = _fancy_upsample_rows(4 * near)
    seams = np.concatenate([rgb[:, 1:, 0], rgb[:, :-1, -1]], 1).astype(np.int32)  # (3, seam, w)
    luma = seams - _chroma_offsets(in_strip[:, 0], in_strip[:, 1])
    free = (seams > 0) & (seams < 255)
    # The luma from a channel that was not clamped; where all three were, the interval the clamps allow.
    y = np.where(free[1], luma[1], np.where(free[0], luma[0], luma[2]))
    offsets = _chroma_offsets(alone[:, 0], alone[:, 1])
    determined = free.any(0)
    alone_images: list[int] = []
    if not determined.all():
        low = np.where(seams == 255, luma, 0).max(0)
        high = np.where(seams == 0, luma, 255).min(0)
        y = np.where(determined, y, low)
        unsure = ~determined & (np.clip(low + offsets, 0, 255) != np.clip(high + offsets, 0, 255)).any(0)
        seam_images = np.concatenate([np.arange(1, n), np.arange(n - 1)])
        alone_images = sorted(set(seam_images[unsure.any(-1)].tolist()))
    fixed = np.clip(y + offsets, 0, 255).astype(np.uint8)
    rgb[:, 1:, 0] = fixed[:, : n - 1]
    rgb[:, :-1, -1] = fixed[:, n - 1 :]
    result = torch.from_numpy(rgb).permute(1, 0, 2, 3)
    if alone_images:
        result[alone_images] = round_trip_each(images[alone_images], quality)
    return result, alone_images
