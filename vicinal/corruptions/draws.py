"""Random draws shared by the corruptions, from the caller's generator only.

``uniform(shape, low, high, gen, device)`` — float32 uniforms on [low, high) with 24 random bits each,
written by one ``uniform_`` pass (``torch.rand(...) * (high - low) + low`` costs two more passes over
the batch and their allocations, for the same draws' distribution). The tests replace it to feed the
reference's own variates.
"""

from __future__ import annotations

import torch


def uniform(
    shape: tuple[int, ...], low: float, high: float, gen: torch.Generator, device: torch.device | str
) -> torch.Tensor:
    """float32 uniforms on [low, high), drawn from ``gen`` in one pass."""
    return torch.empty(shape, device=device).uniform_(low, high, generator=gen)
