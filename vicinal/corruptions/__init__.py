"""The 19 corruptions of Hendrycks & Dietterich (2019) as batched torch functions.

``corrupt(images, name, severity, seed=...)`` and ``corruption_names(subset)`` in the spirit of
imagecorruptions, but with the parameter table made for the images' scale (CIFAR 32 px, Tiny-ImageNet
64 px, ImageNet 224 px), on CPU or GPU, with explicit seeds.
"""

from vicinal.corruptions import blur, digital, noise, weather  # noqa: F401  (registers the corruptions)
from vicinal.corruptions.core import (
    ORDER,
    SCALES,
    SEVERITIES,
    SUBSETS,
    Corruption,
    corrupt,
    corruption_names,
    get_corruption,
    table_for,
)

__all__ = [
    "ORDER",
    "SCALES",
    "SEVERITIES",
    "SUBSETS",
    "Corruption",
    "corrupt",
    "corruption_names",
    "get_corruption",
    "table_for",
]
