"""The 19 corruptions of Hendrycks & Dietterich (2019) as batched torch functions.

``corrupt(images, name, severity, seed=...)`` and ``corruption_names(subset)`` in the spirit of
imagecorruptions, but with the parameter table made for the images' scale (CIFAR 32 px, Tiny-ImageNet
64 px, ImageNet 224 px), on CPU or GPU, with explicit seeds. ``resolve_corruptions(names)`` turns names and
subset names into corruptions (the CLI and the corruption evaluator use it).

The listing order comes from registration (``core.corruption_names``): common before extra, then the
group (noise, blur, weather, digital), then registration order. Each module holds one group and registers
its corruptions in the benchmark's order, which reproduces hendrycks/robustness' listing.
"""

from typing import Any

from vicinal.corruptions import blur, digital, noise, weather  # noqa: F401  (registers the corruptions)
from vicinal.corruptions.core import (
    GROUPS,
    SCALES,
    SEVERITIES,
    SUBSETS,
    Corruption,
    corrupt,
    corruption_names,
    get_corruption,
    register,
    resolve_corruptions,
    table_for,
)

__all__ = [
    "GROUPS",
    "SCALES",
    "SEVERITIES",
    "SUBSETS",
    "Corruption",
    "corrupt",
    "corruption_names",
    "get_corruption",
    "register",
    "resolve_corruptions",
    "table_for",
]


def __getattr__(name: str) -> Any:
    # ``ORDER`` (all registered names in the benchmark's order) is derived on each access, so it
    # includes corruptions registered after this package was imported.
    if name == "ORDER":
        return tuple(corruption_names("all"))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
