"""The CPU thread policy: how many intra-op threads torch uses and how its idle OpenMP threads wait.

Why vicinal chooses this itself: the torch wheel runs its intra-op parallelism on GNU OpenMP (libgomp),
whose idle threads busy-wait (``GOMP_SPINCOUNT`` 300,000 rounds, milliseconds) before they sleep. On a
machine whose cores are shared with other jobs, those spinning threads take CPU time from the thread that
has the work, and two threads end up several times slower than one (BENCHMARKS.md, "Threads under
contention"). With ``OMP_WAIT_POLICY=PASSIVE`` an idle thread sleeps at once, so a second thread can only
help. libgomp reads these variables once, when torch loads it, so the policy must be applied **before
torch is imported**; torch's own default thread count also ignores CPU affinity and cgroup quotas (it
counts the machine's cores), which oversubscribes a container.

The policy, applied by :func:`apply_thread_policy` (the CLI calls it before it imports torch):

* threads: ``--threads`` if given, else ``$OMP_NUM_THREADS`` (the user's own setting wins), else
  ``$VICINAL_THREADS``, else one per physical core this process may run on (affinity mask and cgroup
  CPU quota respected);
* waiting: ``OMP_WAIT_POLICY=PASSIVE`` unless the user set ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``.

From Python, call it before anything imports torch::

    import vicinal.host.threads
    vicinal.host.threads.apply_thread_policy()        # or apply_thread_policy(threads=1)
    import torch

Called after torch was imported, it can still set the thread count, but not the wait policy; the result
says so (``before_torch``), and every result file records the policy that was in force
(``environment.threads``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vicinal.core.errors import VicinalError

THREADS_ENV = "VICINAL_THREADS"
#: libgomp's own knobs; if the user set either, vicinal leaves waiting to them.
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
DEFAULT_WAIT_POLICY = "PASSIVE"


@dataclass
class ThreadPolicy:
    threads: int
    #: Where the count came from: "--threads" (or "argument" from Python), "OMP_NUM_THREADS",
    #: "VICINAL_THREADS" or "default"; "torch" when no policy was applied (torch's own choice).
    source: str
    #: The OpenMP waiting in force: the variables as set (None: unset, libgomp's default spinning).
    omp_wait_policy: str | None
    gomp_spincount: str | None
    #: Who chose the waiting: "user" (their OMP_WAIT_POLICY/GOMP_SPINCOUNT), "vicinal", or "openmp
    #: default" (torch was loaded before a policy was applied: libgomp spins, then sleeps).
    wait_source: str
    #: Whether the policy was applied before torch loaded OpenMP (only then can it set the waiting).
    before_torch: bool
    #: The count asked for where it was more than the CPUs this process may use (``threads`` is then
    #: that number of CPUs: torch would not run more, and the record must say what ran); else None.
    requested: int | None = None


_applied: ThreadPolicy | None = None


def physical_cores(cpus: set[int]) -> int:
    """Physical cores among ``cpus`` (SMT siblings counted once); ``len(cpus)`` when topology is hidden."""
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            package = (topology / "physical_package_id").read_text().strip()
            core = (topology / "core_id").read_text().strip()
        except OSError:
            return len(cpus)
        cores.add((package, core))
    return len(cores) or len(cpus)


def _quota(quota: str, period: str) -> int | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:  # "max": no limit
        return None
    return max(1, math.ceil(q / p)) if q > 0 and p > 0 else None


def cgroup_cpu_limit(
    root: Path = Path("/sys/fs/cgroup"), membership: Path = Path("/proc/self/cgroup")
) -> int | None:
    """The CPU quota of this process's cgroup in whole CPUs (rounded up); None when unlimited or unknown.
    cgroup v2 (``cpu.max``) and v1 (``cpu.cfs_quota_us``), at the process's own cgroup or the root."""
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        if line.count(":") < 2:
            continue
        _, controllers, path = line.split(":", 2)
        rel = path.lstrip("/")
        if controllers == "":
            for folder in (root / rel, root):
                try:
                    return _quota(*(folder / "cpu.max").read_text().split()[:2])
                except (OSError, TypeError):
                    continue
        elif "cpu" in controllers.split(","):
            for folder in (root / controllers / rel, root / controllers, root / "cpu"):
                try:
                    quota = (folder / "cpu.cfs_quota_us").read_text().strip()
                    return _quota(quota, (folder / "cpu.cfs_period_us").read_text().strip())
                except OSError:
                    continue
    return None


def default_threads() -> int:
    """One thread per physical core this process may use (affinity mask, cgroup quota)."""
    try:
        cpus = os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        return max(1, (os.cpu_count() or 1))
    n = physical_cores(cpus)
    limit = cgroup_cpu_limit()
    return max(1, min(n, limit) if limit else n)


def machine_cpus() -> int:
    """The CPUs this process may use (:func:`available_cpus`), capped by its cgroup's CPU quota: what a
    private Ray cluster is given (``--executor ray`` without ``--address``), and so what a run's
    ``--cpus-per-run`` is checked against before such a cluster is started."""
    n, limit = available_cpus(), cgroup_cpu_limit()
    return max(1, min(n, limit) if limit else n)


def available_cpus() -> int:
    """The logical CPUs this process may run on (its affinity mask): more threads than these never run
    at once, and torch itself starts no more when it reads ``OMP_NUM_THREADS``."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def check_thread_count(threads: int | None, what: str) -> None:
    """Refuse an explicit thread count above the CPUs this process may use (``--threads``, ``threads=``),
    before anything runs: it would be recorded while torch ran another."""
    if threads is None:
        return
    cpus = available_cpus()
    if threads > cpus:
        raise VicinalError(
            f"{what} {threads}: this process may use {cpus} CPU(s); give at most {cpus} "
            "(more threads than CPUs only wait for each other)"
        )


def _positive(value: str, what: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise VicinalError(f"{what}={value!r}: give a positive number of threads")
    return n


def resolve(
    threads: int | None = None,
    environ: dict[str, str] | os._Environ | None = None,
    origin: str = "argument",
) -> ThreadPolicy:
    """The policy for these inputs, without applying it (``environ`` defaults to ``os.environ``)."""
    env = os.environ if environ is None else environ
    if threads is not None:
        count, source = _positive(str(threads), origin), origin
    elif env.get("OMP_NUM_THREADS"):
        # OpenMP accepts a list ("4,2" for nested levels); the first is the intra-op count.
        count, source = _positive(env["OMP_NUM_THREADS"].split(",")[0], "OMP_NUM_THREADS"), "OMP_NUM_THREADS"
    elif env.get(THREADS_ENV):
        count, source = _positive(env[THREADS_ENV], THREADS_ENV), THREADS_ENV
    else:
        count, source = default_threads(), "default"
    requested = None
    if count > available_cpus():  # e.g. OMP_NUM_THREADS=64 inherited on a 2-CPU machine
        requested, count = count, available_cpus()
    loaded = "torch" in sys.modules
    if any(env.get(v) for v in WAIT_VARIABLES):
        wait = (env.get("OMP_WAIT_POLICY"), env.get("GOMP_SPINCOUNT"), "user")
    elif loaded:  # too late to choose: libgomp read the environment when torch loaded it
        wait = (None, None, "openmp default")
    else:
        wait = (DEFAULT_WAIT_POLICY, None, "vicinal")
    return ThreadPolicy(count, source, *wait, before_torch=not loaded, requested=requested)


def _set_count(threads: int) -> None:
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(threads)
    else:  # read by torch at its import (and inherited by child processes)
        os.environ["OMP_NUM_THREADS"] = str(threads)


def apply_thread_policy(threads: int | None = None, origin: str = "argument") -> ThreadPolicy:
    """Choose and apply the policy (see the module docstring); ``threads`` overrides the count (``origin``
    names where it came from, for the record). Call it before importing torch. A second call changes at
    most the thread count: the waiting stays what OpenMP read when torch loaded it."""
    global _applied
    if _applied is not None:
        if threads is not None:
            # Given explicitly, it is the count's source even when it equals the default's
            # (--threads 1 with OMP_NUM_THREADS=1: the flag decided).
            count = _positive(str(threads), origin)
            requested = count if count > available_cpus() else None
            effective = min(count, available_cpus())
            if effective != _applied.threads:
                _set_count(effective)
            _applied = dataclasses.replace(_applied, threads=effective, source=origin, requested=requested)
        return _applied
    policy = resolve(threads, origin=origin)
    if policy.wait_source == "vicinal":
        os.environ["OMP_WAIT_POLICY"] = DEFAULT_WAIT_POLICY
    _set_count(policy.threads)
    _applied = policy
    return policy


def thread_environment() -> dict[str, Any]:
    """The thread policy in force, for a result's environment block (torch is imported by then)."""
    import torch

    policy = _applied or dataclasses.replace(resolve(), threads=torch.get_num_threads(), source="torch")
    return {**dataclasses.asdict(policy), "intra_op_threads": torch.get_num_threads()}
