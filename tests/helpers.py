"""Shared helpers for the tests (paths, the real CLI in a subprocess)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CIFAR_DIR = Path(os.environ.get("VICINAL_TEST_CIFAR", ROOT.parent / "shared" / "data"))

needs_cifar = pytest.mark.skipif(
    not (CIFAR_DIR / "cifar-10-batches-py" / "test_batch").is_file(),
    reason=f"real CIFAR-10 subset not found in {CIFAR_DIR}/cifar-10-batches-py (set VICINAL_TEST_CIFAR)",
)


def interruptible() -> None:
    """``preexec_fn`` for a child that a test interrupts with SIGINT: a shell that starts jobs in the
    background (``cmd &``, nohup, some CI runners) makes them ignore SIGINT, and the child would inherit it
    and never see the interrupt the test sends. Restores the default, so Python installs its handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli(
    *args: str, cwd: Path, env: dict | None = None, timeout: int = 600
) -> subprocess.CompletedProcess:
    """Run the real `vicinal` entry point in a subprocess (exit codes and stderr as a user sees them)."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "vicinal.cli", *args],
        cwd=cwd,
        env=full_env,
        # Not the test runner's terminal: a pipe read at a terminal takes that terminal's width.
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextmanager
def ray_cluster(nodes: int = 2, cpus: int = 1) -> Iterator:
    """A real Ray cluster of ``nodes`` nodes of ``cpus`` CPUs each, all on 127.0.0.1 (nothing on the
    network can reach it), shut down whatever happens. Needs Ray: skip before calling this."""
    from ray.cluster_utils import Cluster

    node = {"num_cpus": cpus, "node_ip_address": "127.0.0.1", "object_store_memory": 100 * 1024 * 1024}
    made = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        for _ in range(nodes - 1):
            made.add_node(**node)
        yield made
    finally:
        made.shutdown()
