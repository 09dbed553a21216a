"""Which device a run can use, checked on the machine that runs it (for ``--executor ray``, the worker)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vicinal.core.errors import VicinalError

if TYPE_CHECKING:
    import torch


def resolve_device(name: str) -> torch.device:
    """A device this machine can run on: auto, cpu, cuda or cuda:N (mps where PyTorch has it); anything
    else, including devices torch can name but not run (meta, xla, …), is refused before work starts."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise VicinalError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise VicinalError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise VicinalError(
                f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                f"(cuda:0 … cuda:{torch.cuda.device_count() - 1})"
            )
        return device
    if device.type == "mps" and torch.backends.mps.is_available():
        return device
    if device.type == "cpu":
        return torch.device("cpu")
    raise VicinalError(
        f"--device {name}: vicinal cannot train on {device.type!r} here; use auto, cpu or cuda"
    )
