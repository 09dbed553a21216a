"""Random draws shared by the corruptions, from the caller's generator only.

``uniform(shape, low, high, gen, device)`` — float32 uniforms on [low, high) with 24 random bits each
(``torch.rand``'s resolution), made from one 32-bit integer draw per value: on the CPU that is half the
cost of ``torch.rand`` (which spends 64 random bits per float32), for the same distribution.
"""

from __future__ import annotations

import torch


def uniform(
    shape: tuple[int, ...], low: float, high: float, gen: torch.Generator, device: torch.device
) -> torch.Tensor:
    """float32 uniforms on [low, high): the top 24 bits of 31-bit integer draws, scaled and shifted."""
    bits = torch.empty(shape, dtype=torch.int32, device=device).random_(generator=gen)
    unit = bits.bitwise_right_shift_(7).to(torch.float32).mul_(2.0**-24)  # exact: 24 bits, [0, 1)
    return unit.mul_(high - low).add_(low)
