"""Inputs shared by the fidelity tests of the method zoo and by the scripts that recorded the reference
implementations' numbers on them (``studies/zoo_reference/``): built from integer and trigonometric
formulas only, so the same arrays come out of any numpy and torch version, with no random generator.
"""

from __future__ import annotations

import numpy as np


def pattern_images(n: int = 4, size: int = 32) -> np.ndarray:
    """``n`` uint8 RGB images, (n, size, size, 3) (PIL's layout), with the cases the operations care about:
    low-contrast channels (autocontrast stretches them), uneven histograms (equalize), edges and texture
    (the warps), a full-range image, and a constant channel (autocontrast and equalize leave it)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.int64)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for k in range(n):
        texture = ((x * 73856093) ^ (y * 19349663) ^ (k * 83492791)) % 23
        red = 40 + (x * (5 + k) + y * 2) % 120 + texture
        green = 60 + (x * y + 7 * k) % 90 + 2 * y
        blue = 30 + ((x ^ (y + k)) * 7) % 150 + texture // 2
        if k % 4 == 1:
            red = (x * 8 + y * 3) % 256  # spans 0..255: autocontrast leaves it
            blue = np.full_like(blue, 77)  # constant channel
        if k % 4 == 2:
            green = np.where((x - 16) ** 2 + (y - 12) ** 2 < 60, 230, 20 + (x + y) % 16)
        out[k] = np.stack([red, green, blue], axis=-1).clip(0, 255).astype(np.uint8)
    return out


def pattern_logits(n: int, classes: int, view: int = 0) -> np.ndarray:
    """Deterministic float32 logits (n, classes), a different pattern per ``view``."""
    i, j = np.mgrid[0:n, 0:classes].astype(np.float64)
    return (3.0 * np.sin(1.3 * i + 0.7 * j + 2.1 * view) + 0.5 * np.cos(0.9 * i * j + view)).astype(
        np.float32
    )


def pattern_batch(n: int, channels: int = 3, size: int = 8) -> np.ndarray:
    """Deterministic float32 activations or images (n, channels, size, size) in [0, 1]."""
    b, c, y, x = np.mgrid[0:n, 0:channels, 0:size, 0:size].astype(np.float64)
    return (0.5 + 0.5 * np.sin(0.37 * x + 0.23 * y * (c + 1) + 1.7 * b)).astype(np.float32)


def pattern_weights(in_features: int, classes: int) -> np.ndarray:
    """Deterministic float32 weights (in_features, classes) of a linear classifier for the loss tests."""
    k, c = np.mgrid[0:in_features, 0:classes].astype(np.float64)
    return (0.05 * np.sin(0.013 * k * (c + 1) + 0.3 * c)).astype(np.float32)
