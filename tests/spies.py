"""A classifier that records what a training step feeds it (for the methods' step tests)."""

from __future__ import annotations

import torch


class Spy(torch.nn.Module):
    """Records every input it is fed (detached copies, in ``seen``); its logits depend on the input (a
    linear map of the channel means), so the loss a step returns can be checked against them."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.proj = torch.nn.Linear(3, classes)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return self.proj(x.mean((2, 3)))
