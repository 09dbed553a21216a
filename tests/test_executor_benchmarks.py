"""Executor overhead (pytest-benchmark): the same tiny job set, 2 methods × 2 seeds of the digits suite at
one epoch, through ``vicinal run`` with the local executor (one process, one run after another) and with
``--executor ray`` joining a two-node Ray cluster on loopback (one CPU per node, so two runs at a time).
Both are the real command line in a subprocess, from a fresh cache and results folder each round, with one
torch thread, as each Ray task of one CPU gets. The default test run executes each once as a smoke test
(``--benchmark-disable``); ``pytest tests/test_executor_benchmarks.py --benchmark-enable`` measures, and
the figures go to BENCHMARKS.md with the machine and its load. Nothing here asserts a time."""

from __future__ import annotations

import itertools
import json
from importlib.util import find_spec
from pathlib import Path

import pytest
from helpers import ray_cluster, run_cli

JOBS = ["--suite", "digits", "--methods", "erm,mixup", "--seeds", "0,1", "--epochs", "1"]
JOBS += ["--limit-train", "64", "--evaluators", "clean"]
RUNS = 4


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("ray")
    with ray_cluster(nodes=2, cpus=1) as made:
        yield made


@pytest.mark.parametrize(
    "executor",
    [
        "local",
        pytest.param(
            "ray",
            marks=[
                pytest.mark.slow,
                pytest.mark.skipif(find_spec("ray") is None, reason="ray is not installed"),
            ],
        ),
    ],
)
def test_executor_overhead_on_four_tiny_runs(benchmark, request, tmp_path, executor):
    flags = []
    if executor == "ray":
        flags = ["--executor", "ray", "--address", request.getfixturevalue("cluster").address]
    rounds = itertools.count()
    folders: list[Path] = []

    def fresh() -> tuple[tuple, dict]:
        # A new cache and results folder each round: otherwise the second round reuses every result.
        folder = tmp_path / f"round{next(rounds)}"
        folders.append(folder)
        return (folder,), {}

    def run(folder: Path) -> None:
        out = run_cli(
            "run",
            *JOBS,
            *flags,
            "--results",
            str(folder / "results"),
            cwd=tmp_path,
            env={"VICINAL_CACHE_DIR": str(folder / "cache"), "OMP_NUM_THREADS": "1"},
        )
        assert out.returncode == 0, out.stderr

    benchmark.extra_info.update(executor=executor, runs=RUNS)
    benchmark.pedantic(run, setup=fresh, rounds=3, iterations=1)
    # Every round did the work it was timed for: one result file per run.
    for folder in folders:
        docs = [json.loads(p.read_text()) for p in (folder / "results").rglob("*.json")]
        assert len(docs) == RUNS and all("acc" in d["metrics"] for d in docs)
