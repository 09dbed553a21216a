"""The corruption registry, name resolution and the one-call API, ``corrupt(images, name, severity, seed)``.

Every corruption is a batched torch function ``fn(x, param, gen) -> y`` on float32 images in [0, 1]
(N×3×H×W, any device, always contiguous: ``register`` wraps ``fn`` so, whoever calls it) that returns
float images in [0, 1] (corruptions registered with
``uint8_input=True`` are handed uint8 batches as they are, and must take float ones too; one whose result
is exactly 8-bit, like a codec's, may return it as uint8, stored as it is); its
per-severity parameters live in ``tables.py`` (one table per image scale, from the hendrycks/robustness
generators). ``corrupt`` picks the table, converts, and quantises as the reference does (``np.uint8``
truncation of the 0–255 result), so generated sets match released ones statistically.

The benchmark's order of the corruptions (the 15 common ones, then the 4 extra; within each, noise, blur,
weather, digital; within a group, the order of registration) is derived from the registry, so a newly
registered corruption is listed, resolved and generated like the others. Each of the package's modules
holds one group and registers in the benchmark's order, which reproduces hendrycks/robustness' listing.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import torch

from vicinal.core.errors import VicinalError

Group = Literal["noise", "blur", "weather", "digital"]
CorruptionFn = Callable[[torch.Tensor, Any, torch.Generator], torch.Tensor]

#: The benchmark's groups, in its order.
GROUPS: tuple[Group, ...] = ("noise", "blur", "weather", "digital")
#: The image side each reference table was made for; ``table=None`` picks the nearest one.
SCALES: dict[str, int] = {"cifar": 32, "tinyimagenet": 64, "imagenet": 224}
SEVERITIES = (1, 2, 3, 4, 5)
SUBSETS = ("common", "extra", "noise", "blur", "weather", "digital", "all")
#: Bumped whenever a corruption's output changes, so cached generated sets are made again.
#: 2: shot noise samples its Poisson draws from per-level tables (see noise.py).
#: 3: on the CPU, spatter's water mask by OpenCV itself (equal on every tested layer; its distances are
#: OpenCV's float32 sums, which the torch steps matched only to the last bit) and Gaussian blurs of
#: images beyond 32×32 by OpenCV's separable filter (other float32 rounding).
#: 4: inputs in any memory layout give the contiguous input's output (before, a channels-last batch got
#: a garbage motion blur, other Gaussian noise draws and contrast rounding, and failed shot noise); the
#: output of contiguous inputs did not change, but a set cached from a channels-last dataset did.
ENGINE_VERSION = 4

#: Pixels per slice of a CPU batch (256 images at 32 px; 5 at 224 px), unless a corruption asks for
#: another size when it registers. Tensors beyond glibc's largest heap-reuse size (32 MB) are mmapped
#: afresh on every allocation, and their page faults cost more than the arithmetic (an elementwise op on
#: 10,000 CIFAR images runs ~5× slower than on the same data in slices); slices also stay in cache
#: between passes. The size is fixed, not tied to the machine, so a seed gives the same output
#: everywhere: a corruption draws from the one generator slice after slice.
CHUNK_PIXELS = 1 << 18


@dataclass(frozen=True)
class Corruption:
    name: str
    group: Group
    common: bool  # one of the 15 of Hendrycks & Dietterich's benchmark (else one of the 4 extra)
    random: bool  # draws random numbers (else a deterministic function of the image)
    fn: CorruptionFn
    chunk_pixels: int = CHUNK_PIXELS  # CPU slice size (part of the output's definition: see above)
    uint8_input: bool = False  # fn takes uint8 batches as they are (8-bit codecs, level tables)


_REGISTRY: dict[str, Corruption] = {}


def register(
    name: str,
    group: Group,
    *,
    common: bool,
    random: bool,
    chunk_pixels: int = CHUNK_PIXELS,
    uint8_input: bool = False,
) -> Callable[[CorruptionFn], CorruptionFn]:
    """Register ``fn`` as corruption ``name``; it joins the listing after those already registered in
    its place (common or extra, then group)."""
    if group not in GROUPS:
        raise ValueError(f"unknown corruption group {group!r}; choose one of {', '.join(GROUPS)}")

    def decorator(fn: CorruptionFn) -> CorruptionFn:
        if name in _REGISTRY or name in SUBSETS:
            raise ValueError(f"corruption {name!r} registered twice or named like a subset")
        contiguous = _on_contiguous_input(fn)
        _REGISTRY[name] = Corruption(name, group, common, random, contiguous, int(chunk_pixels), uint8_input)
        return contiguous

    return decorator


def _on_contiguous_input(fn: CorruptionFn) -> CorruptionFn:
    """``fn`` handed its batch as contiguous N×C×H×W memory, whatever the caller's layout.

    The corruptions read raw memory (strided windows, flat views, numpy arrays for OpenCV) and draw
    random numbers in memory order, so any other layout would give other numbers or garbage; normalising
    here, once per call, makes that impossible for every corruption, built-in or registered later. A
    contiguous batch goes through as it is (no copy).
    """

    @functools.wraps(fn)
    def on_contiguous(x: torch.Tensor, param: Any, gen: torch.Generator) -> torch.Tensor:
        return fn(x.contiguous(), param, gen)

    return on_contiguous


def _ordered() -> list[Corruption]:
    rank = {name: i for i, name in enumerate(_REGISTRY)}  # dicts keep insertion (registration) order
    return sorted(_REGISTRY.values(), key=lambda c: (not c.common, GROUPS.index(c.group), rank[c.name]))


def get_corruption(name: str) -> Corruption:
    try:
        return _REGISTRY[name]
    except KeyError:
        available = ", ".join(c.name for c in _ordered())
        raise VicinalError(f"unknown corruption {name!r}; available: {available}") from None


def corruption_names(subset: str = "common") -> list[str]:
    """Names in the benchmark's order: ``common`` (the 15), ``extra`` (the 4 others), a group
    (``noise``, ``blur``, ``weather``, ``digital``, across both) or ``all`` (19)."""
    if subset not in SUBSETS:
        raise VicinalError(f"unknown corruption subset {subset!r}; choose one of {', '.join(SUBSETS)}")
    return [
        c.name
        for c in _ordered()
        if subset == "all"
        or (subset == "common" and c.common)
        or (subset == "extra" and not c.common)
        or subset == c.group
    ]


def resolve_corruptions(names: Iterable[str]) -> list[str]:
    """Corruption names and subset names (``common``, ``extra``, ``blur``, ``all``, …) to the corruptions
    they name, each once, in the benchmark's order. Unknown names raise ``VicinalError``."""
    picked: set[str] = set()
    for name in names:
        picked.update(corruption_names(name) if name in SUBSETS else [get_corruption(name).name])
    return [c for c in corruption_names("all") if c in picked]


def table_for(height: int, width: int) -> str:
    """The reference table whose image scale is nearest (in log size) to ``height × width``."""
    side = math.sqrt(height * width)
    return min(SCALES, key=lambda t: abs(math.log(side / SCALES[t])))


def parameters(name: str, severity: int, table: str) -> Any:
    from vicinal.corruptions.tables import TABLES

    if table not in TABLES:
        raise VicinalError(f"unknown corruption table {table!r}; choose one of {', '.join(TABLES)}")
    if severity not in SEVERITIES:
        raise VicinalError(f"severity must be one of 1–5, got {severity!r}")
    if name not in TABLES[table]:
        raise VicinalError(f"corruption {name!r} has no parameters in the {table!r} table (tables.py)")
    return TABLES[table][name][severity - 1]


def corrupt(
    images: torch.Tensor,
    name: str,
    severity: int,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    table: str | None = None,
) -> torch.Tensor:
    """Corrupt a batch (N×3×H×W or one 3×H×W image) with one corruption at severity 1–5.

    uint8 in → uint8 out, quantised like the reference (truncation); float in [0, 1] in → float out,
    unquantised; either way a new contiguous tensor, the input left as it was. Randomness comes only from
    ``generator`` or a fresh one seeded with ``seed`` (default 0) on the images' device, never from global
    state, so equal seeds give equal outputs on one device. ``table`` chooses the parameter table
    (``cifar``, ``tinyimagenet``, ``imagenet``); by default the one made for the nearest image size.

    The contract on layouts and batches (tested in ``tests/test_corruption_layouts.py``):

    * The memory layout does not matter: for the same values, seed (or generator state), table and
      device, a batch gives the same bits whether it is contiguous, channels-last, permuted, sliced,
      strided or broadcast, and a 3×H×W image gives what the same image as a batch of one gives.
    * A deterministic corruption computes each image from that image alone: an image gives the same
      output alone as inside a batch, up to float32 rounding (a matrix product over the batch picks its
      kernel by size; after uint8 truncation at most one level).
    * A random corruption draws its numbers for the whole batch, in order, slice after slice (on the CPU
      in slices of a fixed size): an image's draws depend on its place in the batch and the batch's size
      (and for shot noise on other images' values too), so a batch of one is a batch of its own, not the
      image as it would come out of a larger one. Seed a batch of one separately to get independent draws.
    """
    c = get_corruption(name)
    single = images.dim() == 3
    x = images.unsqueeze(0) if single else images
    if x.dim() != 4 or x.shape[1] != 3:
        raise VicinalError(f"corrupt expects RGB images N×3×H×W or 3×H×W, got shape {tuple(images.shape)}")
    param = parameters(name, severity, table or table_for(x.shape[-2], x.shape[-1]))
    if generator is None:
        generator = torch.Generator(device=x.device).manual_seed(0 if seed is None else seed)
    as_uint8 = x.dtype == torch.uint8
    step = x.shape[0]
    if x.device.type == "cpu":
        step = max(1, c.chunk_pixels // (x.shape[-2] * x.shape[-1]))
    out = torch.empty(x.shape, dtype=images.dtype, device=x.device)
    # Conversion, corruption and quantisation slice by slice: the whole batch never exists in float.
    # The conversion writes contiguous memory, which ``c.fn`` needs (see ``_on_contiguous_input``): one
    # copy of a slice in another layout, not two. Contiguous float32 input is used as it is.
    for start in range(0, x.shape[0], step):
        part = x[start : start + step]
        if not as_uint8 or not c.uint8_input:
            part = part.to(torch.float32, memory_format=torch.contiguous_format)
            if as_uint8:
                part = part.div_(255.0)
        y = c.fn(part, param, generator)
        if y.dtype == torch.uint8:  # an 8-bit result: nothing to clamp or quantise
            out[start : start + step] = y if as_uint8 else y.float().div_(255.0)
            continue
        if y.untyped_storage().data_ptr() == x.untyped_storage().data_ptr():
            y = y.clone()  # an identity on float input: never clamp the caller's images in place
        y = y.clamp_(0.0, 1.0)
        # The reference returns 0–255 floats and the generators store np.uint8(result): truncation
        # (through int32, which the CPU converts to in vector instructions; to uint8 it does not).
        out[start : start + step] = y.mul_(255.0).to(torch.int32) if as_uint8 else y
    return out.squeeze(0) if single else out
