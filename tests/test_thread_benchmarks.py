"""Threads under contention (pytest-benchmark): does a second torch thread help or hurt when another
CPU-bound process shares the cores, with OpenMP's default waiting and with vicinal's thread policy?

Each setting runs in its own child process (tests/threadbench.py), because libgomp reads its wait policy
once, when torch loads it; a child stays warm and does one unit of work per round:

* ``train-step``: one ERM step of the small CNN on 128 images (forward, backward, SGD);
* ``corrupt-batch``: all 19 corruptions at severity 3 on 64 images of 32 px.

``policy``: ``default`` is OpenMP's own waiting (libgomp spins ~300,000 rounds before sleeping),
``vicinal`` is :func:`vicinal.host.threads.apply_thread_policy` (``OMP_WAIT_POLICY=PASSIVE``). ``compete``: a
single-threaded busy loop runs during the measurement. The timed call includes a pipe round trip
(microseconds); ``extra_info`` has the child's own wall and CPU seconds per unit (CPU time shows the
spinning directly). ``test_two_threads_against_one`` alternates a 1-thread and a 2-thread child under
the same competitor, so drifting background load hits both alike; its ``extra_info`` has the median
ratio of their times per pair.

The default test run (``--benchmark-disable``) smoke-runs one setting per workload; with
``--benchmark-enable`` every setting is measured (``VICINAL_BENCH_ROUNDS`` rounds, default 10).
"""

from __future__ import annotations

import os
import statistics

import pytest
from threadbench import Competitor, Worker

ROUNDS = int(os.environ.get("VICINAL_BENCH_ROUNDS", "10"))
WORKLOADS = ("train-step", "corrupt-batch")


def _enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("benchmark_enable", False)) or not config.getoption(
        "benchmark_disable", False
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    full = _enabled(metafunc.config)
    if metafunc.definition.name == "test_threads_under_contention":
        cases = [
            (w, t, p, c)
            for w in WORKLOADS
            for c in (False, True)
            for t in (1, 2)
            for p in ("default", "vicinal")
            if full or (t, p, c) == (2, "vicinal", True)
        ]
        ids = [f"{w}-{t}thread-{p}-{'compete' if c else 'alone'}" for w, t, p, c in cases]
        metafunc.parametrize(("workload", "threads", "policy", "compete"), cases, ids=ids)
    elif metafunc.definition.name == "test_two_threads_against_one":
        cases = [
            (w, p)
            for w in WORKLOADS
            for p in ("default", "vicinal")
            if full or (w, p) == (WORKLOADS[0], "vicinal")
        ]
        metafunc.parametrize(("workload", "policy"), cases, ids=[f"{w}-{p}" for w, p in cases])


@pytest.fixture(scope="module")
def workers():
    """Warm children, one per (workload, threads, policy), shared by the tests of this module."""
    pool: dict[tuple[str, int, str], Worker] = {}

    def get(workload: str, threads: int, policy: str) -> Worker:
        key = (workload, threads, policy)
        if key not in pool:
            pool[key] = Worker(workload, threads, policy)
        return pool[key]

    yield get
    for worker in pool.values():
        worker.close()


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def test_threads_under_contention(benchmark, workers, workload, threads, policy, compete):
    worker = workers(workload, threads, policy)
    times: list[tuple[float, float]] = []

    def unit() -> None:
        times.append(worker.run())

    rounds = ROUNDS if not benchmark.disabled else 1
    load_before = _load()
    if compete:
        with Competitor():
            benchmark.pedantic(unit, rounds=rounds, warmup_rounds=1 if rounds > 1 else 0)
    else:
        benchmark.pedantic(unit, rounds=rounds, warmup_rounds=1 if rounds > 1 else 0)
    benchmark.extra_info.update(
        child=worker.info,
        wall_median_s=statistics.median(t[0] for t in times),
        cpu_median_s=statistics.median(t[1] for t in times),
        load_before=load_before,
        load_after=_load(),
    )


def test_two_threads_against_one(benchmark, workers, workload, policy):
    """Pairs of units under one competitor, 1 thread then 2 threads; the ratio (2 threads / 1 thread) per
    pair is what the thread policy has to keep at or below 1."""
    one, two = workers(workload, 1, policy), workers(workload, 2, policy)
    pairs: list[tuple[tuple[float, float], tuple[float, float]]] = []

    def pair() -> None:
        pairs.append((one.run(), two.run()))

    rounds = ROUNDS if not benchmark.disabled else 1
    load_before = _load()
    with Competitor():
        benchmark.pedantic(pair, rounds=rounds, warmup_rounds=1 if rounds > 1 else 0)
    benchmark.extra_info.update(
        one=one.info,
        two=two.info,
        wall_1thread_median_s=statistics.median(p[0][0] for p in pairs),
        wall_2threads_median_s=statistics.median(p[1][0] for p in pairs),
        wall_ratio_median=statistics.median(p[1][0] / p[0][0] for p in pairs),
        cpu_ratio_median=statistics.median(p[1][1] / p[0][1] for p in pairs),
        load_before=load_before,
        load_after=_load(),
    )
