"""The allocator policy (vicinal.host.allocator): freed arrays are reused instead of faulted in afresh, the
user's own malloc settings win, and results record what was in force."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from vicinal.host import allocator

GLIBC = os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc") if hasattr(os, "confstr") else False

# Allocate and free temporaries the size of a corruption slice's (2.4 MB each, three alive at once; numpy
# takes large arrays from malloc as torch does, and imports in a fraction of the time), then count the
# minor page faults of 50 more rounds: each is a page the kernel mapped (and zeroed) again because malloc
# had handed the memory back.
_FAULTS = """
import resource, sys
import numpy as np
if sys.argv[1] == "policy":
    from vicinal.host.allocator import apply_allocator_policy
    print(apply_allocator_policy().source, file=sys.stderr)
x = np.ones((200, 3, 32, 32), dtype=np.float32)
def round_():
    y = x * 255.0
    z = y.astype(np.int32)
    w = z + 1
    del y, z, w
for _ in range(5):
    round_()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    round_()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "VICINAL_MALLOC", "GLIBC_"))}
    out = subprocess.run(
        [sys.executable, "-c", _FAULTS, mode], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert mode == "default" or out.stderr.strip() == "vicinal", out.stderr
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not GLIBC, reason="the policy tunes glibc's malloc")
def test_the_policy_stops_page_faults_on_repeated_temporaries():
    # One round frees three 2.4 MB blocks. With glibc's dynamic thresholds (mmap 2.4 MB after the first
    # free, trim twice that) the freed heap top goes back to the kernel each round: ~1,800 pages.
    without = _faults("default")
    assert without > 50 * 500, without
    with_policy = _faults("policy")
    assert with_policy < 50 * 20, with_policy  # a few at most (the interpreter's own)


def test_the_users_settings_win():
    assert allocator.resolve({"MALLOC_TRIM_THRESHOLD_": "0"}).source == "user"
    assert allocator.resolve({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}).source == "user"
    assert allocator.resolve({"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"}).source == "user"
    opted_out = allocator.resolve({"VICINAL_MALLOC": "system"})
    assert opted_out.source == "user" and opted_out.detail == "VICINAL_MALLOC=system"
    assert opted_out.mmap_threshold is None
    if GLIBC:
        chosen = allocator.resolve({})
        assert (chosen.source, chosen.mmap_threshold, chosen.trim_threshold) == (
            "vicinal",
            allocator.MMAP_THRESHOLD,
            allocator.TRIM_THRESHOLD,
        )


def test_results_record_the_policy():
    import dataclasses

    import torch

    from vicinal.host.environment import environment

    recorded = environment(torch.device("cpu"))["allocator"]
    assert recorded == dataclasses.asdict(allocator.apply_allocator_policy())
