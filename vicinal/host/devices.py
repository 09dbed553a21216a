"""Which device a run can use, checked on the machine that runs it (for ``--executor ray``, the worker),
and what a device means for a run's arithmetic and for the host: the precision of training and
evaluation, and copies to the device that do not make the host wait."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from vicinal.core.errors import VicinalError

if TYPE_CHECKING:
    import torch

#: The rule every evaluation follows, on every device: logits, temperature fits, attacks and corrupted
#: images are computed in IEEE float32 — no autocast, and TF32 off for CUDA's matmuls and cuDNN's
#: convolutions (cuDNN's default for float32 convolutions is TF32) — so one model gets the same numbers,
#: up to float32 rounding, on a CPU and on any GPU.
EVALUATION_PRECISION = "float32 (no autocast; TF32 off for CUDA matmuls and cuDNN convolutions)"

#: Device types whose copies from the host are staged in pinned (page-locked) memory: only from there
#: can a copy run asynchronously; from ordinary memory it waits for everything queued before it.
PINNED_TYPES = frozenset({"cuda"})


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


def check_device_name(name: str) -> None:
    """Refuse a device name that no machine could run (a typo), without asking whether this machine has
    it: for runs that execute elsewhere, where :func:`resolve_device` is called."""
    import torch

    if name == "auto":
        return
    try:
        device = torch.device(name)
    except RuntimeError:
        raise VicinalError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise VicinalError(f"--device {name}: vicinal cannot train on {device.type!r}; use auto, cpu or cuda")


def to_device(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """A host tensor on ``device`` without making the host wait. A copy from ordinary host memory to a GPU
    waits until the GPU has finished everything queued before it (a host sync); staged in pinned memory
    it is queued like a kernel. Tensors already on ``device`` (every tensor, on the CPU) are returned as
    they are; a copy from a device is an ordinary, complete one."""
    import torch

    device = torch.device(device)
    if tensor.device.type == device.type and device.index in (None, tensor.device.index):
        return tensor
    if tensor.device.type != "cpu":
        return tensor.to(device)  # read back: the host must not see it before the copy has finished
    if device.type in PINNED_TYPES:
        # The caching host allocator keeps the pinned block until the copy that reads it has finished.
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


def training_autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """The precision the training step runs in: bfloat16 autocast on CUDA (tensor cores; the weights,
    optimiser and loss stay float32), float32 elsewhere. Evaluation never uses it."""
    import torch

    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def training_precision(device: torch.device) -> str:
    """:func:`training_autocast`'s choice, as a result file records it."""
    return "bfloat16 autocast" if device.type == "cuda" else "float32"


#: The float32 settings of torch's CUDA backends (their new API: the legacy ``allow_tf32`` flags raise
#: once the two APIs disagree), as (backend object path, attribute).
_FP32_SETTINGS = (("cuda", "matmul"), ("cudnn", "conv"))


def _fp32_setting(backend: str, op: str) -> Any:
    import torch

    return getattr(getattr(torch.backends, backend), op)


@contextlib.contextmanager
def evaluation_precision() -> Iterator[None]:
    """Within the block, CUDA's float32 matmuls and cuDNN's float32 convolutions run in IEEE float32
    (:data:`EVALUATION_PRECISION`), whatever the process set before; restored afterwards. Only torch's
    new per-operation settings are touched (a CPU computes the same either way)."""
    saved = [(_fp32_setting(b, op), _fp32_setting(b, op).fp32_precision) for b, op in _FP32_SETTINGS]
    for setting, _ in saved:
        setting.fp32_precision = "ieee"
    try:
        yield
    finally:
        for setting, value in saved:
            setting.fp32_precision = value


def precision_record(device: torch.device) -> dict[str, Any]:
    """What a result's environment records about its arithmetic: the evaluation rule and, on CUDA, torch's
    float32 settings outside evaluation (TF32 or IEEE: a training step's float32 work outside autocast
    follows them). The training precision is in the result's ``training`` block."""
    record: dict[str, Any] = {"evaluation": EVALUATION_PRECISION}
    if device.type == "cuda":
        record["fp32_outside_evaluation"] = fp32_settings()
    return record


def fp32_settings() -> dict[str, str]:
    """torch's float32 settings for CUDA matmuls and cuDNN convolutions now ("ieee", "tf32" or "none":
    inherited, for matmuls IEEE unless the process chose otherwise)."""
    return {f"{b}.{op}": _fp32_setting(b, op).fp32_precision for b, op in _FP32_SETTINGS}


def generator_device(device: torch.device) -> str:
    """The device whose random streams made a generated set, as keys and manifests record it: a CUDA
    generator's stream differs from the CPU's, and may differ between GPU models."""
    import torch

    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type
