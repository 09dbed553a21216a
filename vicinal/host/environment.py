"""What a result records about the machine that made it: package versions, the device and its arithmetic
(the evaluation precision; TF32 settings on CUDA), the thread and allocator policies, the platform and the
source tree's commit (timings depend on all of them; a CPU run's last bits may depend on the thread
count)."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from vicinal.host.allocator import allocator_environment
from vicinal.host.devices import precision_record
from vicinal.host.threads import thread_environment


def git_commit() -> str | None:
    """The commit of the vicinal source tree, when it is a git checkout (editable installs)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if out.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: Any) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    import torch

    versions = {"python": sys.version.split()[0]}
    for pkg in ("vicinal", "torch", "torchvision", "numpy", "netcal", "scikit-learn"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    dev = {"type": str(device)}
    if getattr(device, "type", "") == "cuda":
        dev["name"] = torch.cuda.get_device_name(device)
    else:
        dev["name"] = platform.processor() or platform.machine()
        dev["torch_threads"] = torch.get_num_threads()
    return {
        "versions": versions,
        "device": dev,
        "precision": precision_record(device),
        # Timings depend on it (BENCHMARKS.md: threads under contention), and so may the last bits of a
        # CPU run's numbers (reduction order), though not its identity.
        "threads": thread_environment(),
        "allocator": allocator_environment(),  # timings only (BENCHMARKS.md: the allocator)
        "platform": platform.platform(),
        "git_commit": git_commit(),
    }
