"""The CPU thread policy (vicinal.host.threads): who decides the thread count and the OpenMP waiting, that the
CLI applies it before torch loads OpenMP (libgomp itself reports what it read), and that results record it.
Speed under contention is measured in test_thread_benchmarks.py, never asserted."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import ROOT

from vicinal.core.errors import VicinalError
from vicinal.host import threads
from vicinal.host.threads import cgroup_cpu_limit, default_threads, physical_cores, resolve


def test_default_is_one_thread_per_available_core_and_passive_waiting(monkeypatch):
    # As before torch loads (other test modules have imported it by now): resolve only asks whether it has.
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    policy = resolve(environ={})
    assert policy.source == "default" and policy.threads == default_threads() >= 1
    assert policy.omp_wait_policy == "PASSIVE" and policy.wait_source == "vicinal"
    assert policy.gomp_spincount is None


@pytest.fixture
def eight_cpus(monkeypatch):
    """As on a machine of 8 CPUs (counts above the CPUs available are lowered to them)."""
    monkeypatch.setattr(threads, "available_cpus", lambda: 8)


def test_the_users_openmp_settings_win(eight_cpus):
    env = {"OMP_NUM_THREADS": "3", "VICINAL_THREADS": "1", "OMP_WAIT_POLICY": "ACTIVE"}
    policy = resolve(environ=env)
    assert (policy.threads, policy.source) == (3, "OMP_NUM_THREADS")
    assert (policy.omp_wait_policy, policy.wait_source) == ("ACTIVE", "user")
    spin = resolve(environ={"GOMP_SPINCOUNT": "10000"})
    assert spin.omp_wait_policy is None and spin.gomp_spincount == "10000" and spin.wait_source == "user"


def test_vicinal_threads_and_the_option(eight_cpus):
    assert resolve(environ={"VICINAL_THREADS": "1"}).threads == 1
    assert resolve(environ={"OMP_NUM_THREADS": "4,2"}).threads == 4  # nested levels: the first is ours
    option = resolve(2, environ={"OMP_NUM_THREADS": "1"}, origin="--threads")
    assert (option.threads, option.source) == (2, "--threads")


def test_a_count_above_the_cpus_is_lowered_and_recorded(monkeypatch):
    """Issue 22: OMP_NUM_THREADS=64 on a 2-CPU machine was recorded as 64 while torch ran 2."""
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
    policy = resolve(environ={"OMP_NUM_THREADS": "64"})
    assert (policy.threads, policy.requested, policy.source) == (2, 64, "OMP_NUM_THREADS")
    assert resolve(environ={"OMP_NUM_THREADS": "2"}).requested is None


def test_an_explicit_count_above_the_cpus_is_refused(monkeypatch):
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
    threads.check_thread_count(2, "--threads")
    with pytest.raises(
        VicinalError, match=r"--threads 100000: this process may use 2 CPU\(s\); give at most 2"
    ):
        threads.check_thread_count(100000, "--threads")


@pytest.mark.parametrize("env", [{"VICINAL_THREADS": "0"}, {"OMP_NUM_THREADS": "many"}])
def test_a_malformed_count_is_one_clear_error(env):
    with pytest.raises(VicinalError, match="positive number of threads"):
        resolve(environ=env)


def test_cgroup_quota_v1_and_v2(tmp_path):
    v2 = tmp_path / "v2"
    (v2 / "job").mkdir(parents=True)
    (v2 / "job" / "cpu.max").write_text("150000 100000\n")
    membership = tmp_path / "cgroup"
    membership.write_text("0::/job\n")
    assert cgroup_cpu_limit(v2, membership) == 2
    (v2 / "job" / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(v2, membership) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu,cpuacct").mkdir(parents=True)
    (v1 / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text("100000\n")
    (v1 / "cpu,cpuacct" / "cpu.cfs_period_us").write_text("100000\n")
    membership.write_text("5:memory:/x\n3:cpu,cpuacct:/docker/abc\n")
    assert cgroup_cpu_limit(v1, membership) == 1
    assert cgroup_cpu_limit(tmp_path / "none", tmp_path / "missing") is None


def test_physical_cores_of_this_machine():
    cpus = os.sched_getaffinity(0)
    assert 1 <= physical_cores(cpus) <= len(cpus)


# libgomp prints the settings it read at start-up with OMP_DISPLAY_ENV: the proof that the policy reached it.
CLI_THEN_TORCH = """
import sys
from vicinal.cli import main
sys.argv = ["vicinal", "methods", "--verbose", "erm"]  # imports the method, and with it torch
try:
    main()
except SystemExit:
    pass
import torch
print("threads", torch.get_num_threads())
"""


def _cli_then_torch(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_", "VICINAL_THREADS"))}
    return subprocess.run(
        [sys.executable, "-c", CLI_THEN_TORCH],
        env={**clean, "OMP_DISPLAY_ENV": "VERBOSE", **env},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def test_the_cli_sets_the_policy_before_torch_loads_openmp():
    out = _cli_then_torch({"VICINAL_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    assert "threads 1" in out.stdout
    assert "OMP_WAIT_POLICY = 'PASSIVE'" in out.stderr and "GOMP_SPINCOUNT = '0'" in out.stderr
    assert "OMP_NUM_THREADS = '1'" in out.stderr


def test_the_cli_leaves_the_users_waiting_alone():
    out = _cli_then_torch({"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "ACTIVE", "VICINAL_THREADS": "2"})
    assert out.returncode == 0, out.stderr
    assert "threads 1" in out.stdout and "OMP_WAIT_POLICY = 'ACTIVE'" in out.stderr


def test_results_record_the_policy():
    import torch

    from vicinal.host.environment import environment

    threads = environment(torch.device("cpu"))["threads"]
    assert threads["intra_op_threads"] == torch.get_num_threads()
    assert {"threads", "source", "omp_wait_policy", "gomp_spincount", "wait_source", "before_torch"} <= set(
        threads
    )


def test_the_option_after_the_defaults_still_sets_the_count_before_torch():
    """main() applies the defaults, then ``--threads`` re-applies the count before torch is imported."""
    code = (
        "from vicinal.host.threads import apply_thread_policy as apply\n"
        "apply(); p = apply(1, origin='--threads')\n"
        "import torch; print(torch.get_num_threads(), p.source, p.omp_wait_policy)\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_", "VICINAL_THREADS"))}
    out = subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True, timeout=300)
    assert out.stdout.split() == ["1", "--threads", "PASSIVE"], out.stderr


def test_the_option_is_the_recorded_source_even_when_the_environment_gives_the_same_count():
    """``--threads 1`` with ``OMP_NUM_THREADS=1``: main() applied the environment's count first, the flag
    then changed nothing, and the record said OMP_NUM_THREADS although the flag decides."""
    code = (
        "from vicinal.host.threads import apply_thread_policy as apply\n"
        "first = apply(); p = apply(1, origin='--threads')\n"
        "print(first.source, p.source, p.threads)\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_", "VICINAL_THREADS"))}
    out = subprocess.run(
        [sys.executable, "-c", code], env={**clean, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True
    )
    assert out.stdout.split() == ["OMP_NUM_THREADS", "--threads", "1"], out.stderr
