import os

import pytest

import vicinal.host.allocator
import vicinal.host.threads

# The test process uses vicinal's thread policy, as the CLI does: set before any test module imports torch
# (OpenMP reads it only then), so idle threads sleep instead of spinning on a shared machine.
vicinal.host.threads.apply_thread_policy()
vicinal.host.allocator.apply_allocator_policy()  # and its allocator policy (timings in the benchmarks)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (the default run): one worker per CPU, at most 4. Each worker imports torch and trains
    with every core's threads (idle ones sleep), so more workers only add memory; the files are handed
    out whole (``--dist loadfile``), so a module's fixtures are built once."""
    return max(
        1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    )


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Results and caches in a temporary folder, never in the user's."""
    monkeypatch.setenv("VICINAL_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("VICINAL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path
