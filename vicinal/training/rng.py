"""Explicit random state for a run: every random draw in training goes through one of these.

Draws are made on the CPU, whatever the device, so a run draws the same batch order, crops, flips, λ
and pairs on a CPU and on a GPU, and its state is two CPU generators a checkpoint can hold. A draw
bound for a GPU is sent with :func:`vicinal.host.devices.to_device` (pinned, asynchronous), so drawing
never makes a training step wait for the GPU."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vicinal.host.devices import to_device


class RunRandom:
    """A numpy Generator (for Beta draws, which torch cannot seed per call) plus a torch CPU Generator."""

    def __init__(self, seed: int):
        self.numpy = np.random.default_rng(seed)
        self.torch = torch.Generator().manual_seed(seed)

    def beta(self, alpha: float) -> float:
        """λ ~ Beta(α, α); α ≤ 0 means no mixing (λ = 1)."""
        return float(self.numpy.beta(alpha, alpha)) if alpha > 0 else 1.0

    def permutation(self, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
        return to_device(torch.randperm(n, generator=self.torch), device)

    def integer(self, high: int) -> int:
        return int(self.numpy.integers(high))

    def normal_like(self, t: torch.Tensor) -> torch.Tensor:
        draw = torch.randn(t.shape, generator=self.torch, dtype=torch.float32)
        return to_device(draw, t.device).to(t.dtype)

    def uniform(self, shape: tuple[int, ...], device: torch.device | str = "cpu") -> torch.Tensor:
        return to_device(torch.rand(shape, generator=self.torch), device)

    def generator_on(self, device: torch.device | str) -> torch.Generator:
        """A fresh torch generator on ``device``, seeded from this run's numpy stream: for noise as large as
        a batch of hidden activations, drawn where it is used (drawing it on the CPU and copying it to a
        GPU would cost more than the step's mixing). Reproducible and resumable like every other draw."""
        generator = torch.Generator(device=device)
        generator.manual_seed(int(self.numpy.integers(2**63)))
        return generator

    def state(self) -> dict[str, Any]:
        """Both generators' states (the torch one a CPU byte tensor: it must be loaded back on the CPU)."""
        return {"numpy": self.numpy.bit_generator.state, "torch": self.torch.get_state()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.numpy.bit_generator.state = state["numpy"]
        self.torch.set_state(state["torch"])


def seed_everything(seed: int) -> None:
    """Seed the global generators too (weight initialisation draws from torch's global RNG)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
