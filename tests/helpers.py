"""Shared helpers for the tests (paths, the real CLI in a subprocess)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
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


def benchmarks_enabled(config: pytest.Config) -> bool:
    """Whether this pytest run times its benchmarks (``--benchmark-enable``, or no ``--benchmark-disable``):
    the default run only smoke-tests them, once each, on their smallest case."""
    return bool(config.getoption("benchmark_enable", False)) or not config.getoption(
        "benchmark_disable", False
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


#: Ray's command line as its console script runs it (the venv running the tests may lack the script).
RAY_CLI = [sys.executable, "-c", "import sys; from ray.scripts.scripts import main; sys.exit(main())"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sessions(sids: set[int]) -> list[int]:
    """PIDs of the processes in these sessions (from /proc: no psutil)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) in sids and fields[0] != "Z":  # after the command: state, ppid, pgrp, session
            pids.append(int(stat.parent.name))
    return pids


@contextmanager
def ray_cli_cluster(
    env: dict[str, str], workers: int = 2, cpus: int = 1, worker_env: dict[str, str] | None = None
) -> Iterator[str]:
    """A Ray cluster made with Ray's own command line, as the README's recipe makes one: ``ray start
    --head`` and ``workers`` × ``ray start --address``, each a separate process in a session of its own;
    yields the address to join (``127.0.0.1:PORT``). Whatever happens, every process of those sessions is
    ended — never ``ray stop``, which ends every Ray process of the user on the machine (another
    program's clusters too). ``env`` should hold a temporary ``HOME``: Ray keeps its token there;
    ``worker_env`` is added for the workers."""
    port = free_port()
    temp = tempfile.mkdtemp(prefix="vr", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    sessions: set[int] = set()

    def ray(*args: str, env: dict[str, str] = env) -> None:
        proc = subprocess.Popen(
            [*RAY_CLI, *args, f"--num-cpus={cpus}", f"--temp-dir={temp}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        sessions.add(proc.pid)
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out

    try:
        ray("start", "--head", f"--port={port}", "--include-dashboard=false", "--disable-usage-stats")
        for _ in range(workers):
            ray("start", f"--address=127.0.0.1:{port}", env={**env, **(worker_env or {})})
        yield f"127.0.0.1:{port}"
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in _sessions(sessions):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 10
            while _sessions(sessions) and time.monotonic() < deadline:
                time.sleep(0.2)
        shutil.rmtree(temp, ignore_errors=True)
