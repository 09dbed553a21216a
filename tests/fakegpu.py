"""A stand-in GPU for tests on a machine without one: torch's ``meta`` device, watched by a dispatch mode.

Tensors on ``meta`` have shapes and dtypes but no data, so a whole training run can execute on it in
milliseconds, and every operation passes through :class:`FakeGPU`, which counts what would make a host
wait for a real GPU:

- ``sync_copies``: host → device copies not marked ``non_blocking`` (from ordinary memory a copy to a GPU
  waits for everything queued before it);
- ``async_copies``: host → device copies marked ``non_blocking``;
- ``reads``: device → host reads (``.item()``, ``float()``, ``.cpu()``), which always wait. They are
  answered with zeros, as a GPU's memory would be read, so code that reads a loss goes on running.

What it cannot see: whether a real GPU's kernels are correct or fast. The selfcheck's ``host syncs`` check
counts the real thing with torch's sync debug mode where a GPU is there.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
META = torch.device("meta")


def _device(value: Any) -> torch.device | None:
    return None if value is None else torch.device(value)


class FakeGPU(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.sync_copies = 0
        self.async_copies = 0
        self.reads = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is aten._to_copy.default:
            source, target = args[0].device, _device(kwargs.get("device"))
            if source.type == "cpu" and target is not None and target.type == "meta":
                if kwargs.get("non_blocking"):
                    self.async_copies += 1
                else:
                    self.sync_copies += 1
            elif source.type == "meta" and target is not None and target.type == "cpu":
                self.reads += 1
                return torch.zeros(args[0].shape, dtype=kwargs.get("dtype") or args[0].dtype)
        elif func is aten.copy_.default and args[0].device.type == "meta" and args[1].device.type == "cpu":
            if (len(args) > 2 and args[2]) or kwargs.get("non_blocking"):
                self.async_copies += 1
            else:
                self.sync_copies += 1
        elif func is aten._local_scalar_dense.default and args[0].device.type == "meta":
            self.reads += 1
            return False if args[0].dtype == torch.bool else 0 if not args[0].is_floating_point() else 0.0
        return func(*args, **kwargs)
