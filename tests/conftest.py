import pytest

import vicinal.host.allocator
import vicinal.host.threads

# The test process uses vicinal's thread policy, as the CLI does: set before any test module imports torch
# (OpenMP reads it only then), so idle threads sleep instead of spinning on a shared machine.
vicinal.host.threads.apply_thread_policy()
vicinal.host.allocator.apply_allocator_policy()  # and its allocator policy (timings in the benchmarks)


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Results and caches in a temporary folder, never in the user's."""
    monkeypatch.setenv("VICINAL_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("VICINAL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path
