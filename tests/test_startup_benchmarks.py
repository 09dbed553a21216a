"""Whole-process start-up benchmarks (pytest-benchmark): what a user waits for at the command line.

* ``test_command``: ``vicinal --help``, ``vicinal methods``, ``vicinal leaderboard`` over 1,000 and 10,000
  result files (tests/bench_store.py: files shaped like real ones, ~15 KB), without and with the result
  index in the cache folder (vicinal.store.index) — each a fresh process, as the user runs it.
  ``extra_info`` has the command's CPU seconds and peak RSS (``os.wait4``) and the load.
* ``test_run_startup``: ``vicinal run --suite digits --methods erm`` from spawn to its second training step
  (the first batch done, optimizer step included; tests/startup_probe.py), and a re-evaluation (the
  trained model cached, a new evaluator set: no training step) as a whole process.

The default test run (``--benchmark-disable``) smoke-runs a 20-file leaderboard, ``--help`` and the run
start-up once; ``--benchmark-enable`` measures everything (``VICINAL_BENCH_ROUNDS``, default 5).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from bench_store import write_store
from helpers import ROOT

ROUNDS = int(os.environ.get("VICINAL_BENCH_ROUNDS", "5"))
PROBE = ROOT / "tests" / "startup_probe.py"


def _enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("benchmark_enable", False)) or not config.getoption(
        "benchmark_disable", False
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    full = _enabled(metafunc.config)
    if metafunc.definition.name == "test_command":
        cases = [("help", 0, ""), ("methods", 0, "")]
        cases += [("leaderboard", n, index) for n in (1000, 10000) for index in ("cold", "warm")]
        if not full:
            cases = [("help", 0, ""), ("leaderboard", 20, "warm")]
        ids = ["-".join(str(p) for p in case if p) for case in cases]
        metafunc.parametrize(("command", "files", "index"), cases, ids=ids)
    elif metafunc.definition.name == "test_run_startup":
        metafunc.parametrize("mode", ["train", "reevaluate"] if full else ["train"])


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    made: dict[int, Path] = {}

    def get(n: int) -> Path:
        if n not in made:
            made[n] = write_store(tmp_path_factory.mktemp(f"store{n}"), n)
        return made[n]

    return get


# Commands are started by a small launcher process, not by pytest: a process started from a large one
# (vfork, then exec) carries the large one's peak RSS into its own rusage, so pytest's ~600 MB would show
# as every command's peak. The launcher times each command with wait4: its CPU time and peak RSS.
LAUNCHER = """
import json, os, subprocess, sys, time
for line in sys.stdin:
    job = json.loads(line)
    with open(job["stderr"], "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            job["args"], cwd=job["cwd"], env=job["env"], stdout=subprocess.DEVNULL, stderr=err
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    print(json.dumps([proc.returncode, wall, cpu, usage.ru_maxrss / 1024]), flush=True)
"""


@pytest.fixture(scope="module")
def launcher():
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    yield proc
    proc.stdin.close()
    proc.wait(timeout=60)
    proc.stdout.close()


def _spawn(
    launcher, args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> tuple[float, float, float]:
    """Run a command to completion; (wall s, CPU s, peak RSS MB) of the command."""
    with tempfile.NamedTemporaryFile() as err:
        job = {"args": args, "cwd": str(cwd), "env": {**os.environ, **(env or {})}, "stderr": err.name}
        launcher.stdin.write(json.dumps(job) + "\n")
        launcher.stdin.flush()
        code, wall, cpu, rss = json.loads(launcher.stdout.readline())
        assert code == 0, Path(err.name).read_text()[-2000:]
    return wall, cpu, rss


def _record(benchmark, runs: list[tuple[float, float, float]], load: float) -> None:
    benchmark.extra_info.update(
        cpu_s=sorted(r[1] for r in runs)[len(runs) // 2],
        rss_mb=max(r[2] for r in runs),
        load_before=load,
        load_after=round(os.getloadavg()[0], 2),
    )


def test_command(benchmark, launcher, stores, tmp_path, command, files, index):
    """``index``: ``cold`` — no result index yet (each round reads every file, then writes the index, as
    the first leaderboard after new results does); ``warm`` — the index from the round before."""
    vicinal = [sys.executable, "-m", "vicinal.cli"]
    args = {
        "help": [*vicinal, "--help"],
        "methods": [*vicinal, "methods"],
        "leaderboard": [*vicinal, "leaderboard", "--results", str(stores(files) if files else tmp_path)],
    }[command]
    cache = tmp_path / "cache"
    env = {"VICINAL_CACHE_DIR": str(cache)}
    runs: list[tuple[float, float, float]] = []
    load = round(os.getloadavg()[0], 2)
    rounds = ROUNDS if not benchmark.disabled else 1

    def setup() -> None:
        if index == "cold":
            shutil.rmtree(cache, ignore_errors=True)

    if index == "warm":
        _spawn(launcher, args, tmp_path, env)  # writes the index
    benchmark.pedantic(lambda: runs.append(_spawn(launcher, args, tmp_path, env)), setup=setup, rounds=rounds)
    _record(benchmark, runs, load)


RUN = ["run", "--suite", "digits", "--methods", "erm", "--epochs", "1", "--limit-train", "256", "--quiet"]


def test_run_startup(benchmark, launcher, tmp_path, mode):
    env = {"VICINAL_RESULTS_DIR": str(tmp_path / "results"), "VICINAL_CACHE_DIR": str(tmp_path / "cache")}
    runs: list[tuple[float, float, float]] = []
    reports: list[dict] = []
    load = round(os.getloadavg()[0], 2)
    rounds = ROUNDS if not benchmark.disabled else 1
    if mode == "train":
        out = tmp_path / "probe.json"

        def start() -> None:
            runs.append(
                _spawn(
                    launcher,
                    [sys.executable, str(PROBE), str(out), *RUN, "--evaluators", "clean"],
                    tmp_path,
                    env,
                )
            )
            reports.append(json.loads(out.read_text()))

        benchmark.pedantic(start, rounds=rounds, warmup_rounds=int(rounds > 1))
        # By the second step torch.optim has imported dynamo itself (Optimizer.step does), so that is
        # recorded, not asserted.
        benchmark.extra_info["imported"] = reports[-1]["imported"]
    else:
        cli = [sys.executable, "-c", REEVALUATE, *RUN, "--evaluators", "clean"]
        _spawn(launcher, cli, tmp_path, env)  # trains once; the trained model stays cached

        def drop_results() -> None:
            for path in (tmp_path / "results").rglob("*.json"):
                path.unlink()

        benchmark.pedantic(
            lambda: runs.append(_spawn(launcher, cli, tmp_path, env)), setup=drop_results, rounds=rounds
        )
        # No optimizer step: nothing needs the compiler stack (torch.use_deterministic_algorithms and the
        # optimizer's state loading would import it; vicinal.host.startup keeps them from doing so).
        assert (tmp_path / "imported.json").read_text() == "[]"
    _record(benchmark, runs, load)


REEVALUATE = """
import atexit, json, sys
atexit.register(lambda: open("imported.json", "w").write(json.dumps(
    sorted(m for m in ("torch._dynamo", "torch._inductor") if m in sys.modules))))
sys.argv = ["vicinal", *sys.argv[1:]]
from vicinal.cli import main
main()
"""
