"""The CPU allocator policy: glibc's malloc keeps freed memory for reuse instead of returning it at once.

Why vicinal chooses this itself: torch allocates CPU tensors with the C library's malloc. glibc serves an
allocation above its *mmap threshold* with a fresh ``mmap`` and gives the top of its heap back to the
kernel whenever more than the *trim threshold* lies free there. Both thresholds start low (128 KiB) and
move with the history of the process: each freed mmapped block raises the mmap threshold to its size
(up to 32 MiB) and the trim threshold to twice that. Work that allocates and frees temporaries of a few
MB per operation (a slice of corrupted images, an evaluation batch) therefore pays page faults and the
kernel's zeroing of fresh pages on some allocations and not on others, depending on what ran before. In
one process, shot noise on 200 CIFAR images cost 34 or 91 µs per image with nothing changed but the size
of the slices it was cut into, and glass blur run on its own 43–52 µs against 25 µs after other
corruptions had raised the thresholds (BENCHMARKS.md, "The allocator policy"). Fixed thresholds make
reuse the rule from the start. Where the dynamic thresholds have already settled high (a long mixed
workload, such as all 19 corruptions in turn) it changes nothing measurable. PyTorch's CPU tuning guide
recommends jemalloc or tcmalloc (through ``LD_PRELOAD``) for the same reason; glibc's own ``mallopt``
needs no preload and no extra package.

The policy, applied by :func:`apply_allocator_policy` (the CLI calls it when a command starts; it may be
called at any time, before or after torch is imported):

* ``mallopt(M_MMAP_THRESHOLD, 32 MiB)`` (glibc's ceiling on 64-bit systems, the largest size its
  dynamic threshold reaches anyway) and ``mallopt(M_TRIM_THRESHOLD, 256 MiB)``: blocks up to 32 MiB come
  from the heap and are reused; up to 256 MiB of freed memory stays with the process. The price is
  memory: the resident size after a peak may stay up to 256 MiB above what is in use (the default run's
  peak grew by 0.1 GB, to 1.47 GB, with 7× fewer page faults and the same wall time). Blocks above
  32 MiB are still mmapped, which is why the corruption engine slices large batches.
* left alone when the user chose: any ``MALLOC_*_`` variable, ``glibc.malloc`` tunables in
  ``GLIBC_TUNABLES``, an allocator in ``LD_PRELOAD``, or ``VICINAL_MALLOC=system``;
* nothing is done where the C library is not glibc (macOS, musl): ``mallopt``'s thresholds are glibc's.

Every result file records the policy in force (``environment.allocator``).
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
from dataclasses import dataclass
from typing import Any

ENV = "VICINAL_MALLOC"
#: glibc's largest accepted M_MMAP_THRESHOLD on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX).
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 256 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
#: glibc's own environment settings of these thresholds: if the user set one, malloc is theirs to tune.
USER_VARIABLES = (
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_MAX_",
)


@dataclass(frozen=True)
class AllocatorPolicy:
    #: Who decides: "vicinal" (the thresholds above), "user" (the reason in ``detail``), or "system"
    #: (the C library's defaults: not glibc, or glibc without mallopt).
    source: str
    detail: str
    mmap_threshold: int | None = None
    trim_threshold: int | None = None


_applied: AllocatorPolicy | None = None


def _user_choice(env: dict[str, str] | os._Environ) -> str | None:
    if env.get(ENV, "").strip().lower() == "system":
        return f"{ENV}=system"
    chosen = [v for v in USER_VARIABLES if env.get(v)]
    if chosen:
        return ", ".join(chosen)
    if "glibc.malloc." in env.get("GLIBC_TUNABLES", ""):
        return "GLIBC_TUNABLES"
    preload = env.get("LD_PRELOAD", "")
    if any(name in preload for name in ("jemalloc", "tcmalloc", "mimalloc")):
        return f"LD_PRELOAD={preload}"
    return None


def _libc() -> str:
    # confstr answers at once; platform.libc_ver() scans the interpreter's binary for the same answer.
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") or "unknown"
    except (ValueError, OSError, AttributeError):  # not glibc, or not POSIX
        return "unknown"


def resolve(environ: dict[str, str] | os._Environ | None = None) -> AllocatorPolicy:
    """The policy for this environment (``os.environ`` by default), without applying it."""
    env = os.environ if environ is None else environ
    user = _user_choice(env)
    if user:
        return AllocatorPolicy("user", user)
    libc = _libc()
    if not libc.startswith("glibc"):
        return AllocatorPolicy("system", f"C library {libc}: nothing to tune")
    return AllocatorPolicy("vicinal", f"{libc} mallopt", MMAP_THRESHOLD, TRIM_THRESHOLD)


def apply_allocator_policy() -> AllocatorPolicy:
    """Choose and apply the policy (see the module docstring), once per process."""
    global _applied
    if _applied is not None:
        return _applied
    policy = resolve()
    if policy.source == "vicinal":
        mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
        # mallopt returns 1 on success; both are set, since setting either one alone freezes the other
        # at whatever value the dynamic adjustment had reached.
        if mallopt is None or not (
            mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        ):
            policy = AllocatorPolicy("system", f"{policy.detail} unavailable or refused")
    _applied = policy
    return policy


def allocator_environment() -> dict[str, Any]:
    """The policy in force, for a result's environment block."""
    return dataclasses.asdict(_applied or AllocatorPolicy("system", "no policy applied"))
