"""The corruption registry and the one-call API: ``corrupt(images, name, severity, seed=...)``.

Every corruption is a batched torch function ``fn(x, param, gen) -> y`` on float32 images in [0, 1]
(N×3×H×W, any device) that returns float images in [0, 1]; its per-severity parameters live in
``tables.py`` (one table per image scale, from the hendrycks/robustness generators). ``corrupt`` picks the
table, converts, and quantises as the reference does (``np.uint8`` truncation of the 0–255 result), so
generated sets match released ones statistically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch

from vicinal.errors import VicinalError

Group = Literal["noise", "blur", "weather", "digital"]
CorruptionFn = Callable[[torch.Tensor, Any, torch.Generator], torch.Tensor]

#: The image side each reference table was made for; ``table=None`` picks the nearest one.
SCALES: dict[str, int] = {"cifar": 32, "tinyimagenet": 64, "imagenet": 224}
SEVERITIES = (1, 2, 3, 4, 5)
#: Bumped whenever a corruption's output changes, so cached generated sets are made again.
ENGINE_VERSION = 1


@dataclass(frozen=True)
class Corruption:
    name: str
    group: Group
    common: bool  # one of the 15 of Hendrycks & Dietterich's benchmark (else one of the 4 extra)
    random: bool  # draws random numbers (else a deterministic function of the image)
    fn: CorruptionFn


_REGISTRY: dict[str, Corruption] = {}


def register(
    name: str, group: Group, *, common: bool, random: bool
) -> Callable[[CorruptionFn], CorruptionFn]:
    def decorator(fn: CorruptionFn) -> CorruptionFn:
        if name in _REGISTRY:
            raise ValueError(f"corruption {name!r} registered twice")
        _REGISTRY[name] = Corruption(name, group, common, random, fn)
        return fn

    return decorator


# The benchmark's canonical order (hendrycks/robustness), used for every table and file listing.
ORDER = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
    "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
    "jpeg_compression", "speckle_noise", "gaussian_blur", "spatter", "saturate",
)  # fmt: skip
SUBSETS = ("common", "extra", "noise", "blur", "weather", "digital", "all")


def get_corruption(name: str) -> Corruption:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise VicinalError(
            f"unknown corruption {name!r}; available: {', '.join(n for n in ORDER if n in _REGISTRY)}"
        ) from None


def corruption_names(subset: str = "common") -> list[str]:
    """Names in the benchmark's order: ``common`` (the 15), ``extra`` (the 4 others), a group
    (``noise``, ``blur``, ``weather``, ``digital``, across both) or ``all`` (19)."""
    if subset not in SUBSETS:
        raise VicinalError(f"unknown corruption subset {subset!r}; choose one of {', '.join(SUBSETS)}")
    picked = []
    for name in ORDER:
        c = _REGISTRY.get(name)
        if c is None:
            continue
        if (
            subset == "all"
            or (subset == "common" and c.common)
            or (subset == "extra" and not c.common)
            or subset == c.group
        ):
            picked.append(name)
    return picked


def table_for(height: int, width: int) -> str:
    """The reference table whose image scale is nearest (in log size) to ``height × width``."""
    import math

    side = math.sqrt(height * width)
    return min(SCALES, key=lambda t: abs(math.log(side / SCALES[t])))


def parameters(name: str, severity: int, table: str) -> Any:
    from vicinal.corruptions.tables import TABLES

    if table not in TABLES:
        raise VicinalError(f"unknown corruption table {table!r}; choose one of {', '.join(TABLES)}")
    if severity not in SEVERITIES:
        raise VicinalError(f"severity must be one of 1–5, got {severity!r}")
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
    unquantised. Randomness comes only from ``generator`` or a fresh one seeded with ``seed`` (default 0)
    on the images' device, never from global state, so equal seeds give equal outputs on one device.
    ``table`` chooses the parameter table (``cifar``, ``tinyimagenet``, ``imagenet``); by default the one
    made for the nearest image size.
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
    xf = x.float().div_(255.0) if as_uint8 else x.float()
    y = c.fn(xf, param, generator).clamp_(0.0, 1.0)
    # The reference returns 0–255 floats and the generators store np.uint8(result): truncation.
    y = y.mul_(255.0).to(torch.uint8) if as_uint8 else y.to(images.dtype)
    return y.squeeze(0) if single else y
