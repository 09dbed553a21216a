"""Workloads in a child process whose OpenMP settings are fixed at its start, for the thread-policy
benchmarks (tests/test_thread_benchmarks.py) and measurements by hand.

libgomp reads ``OMP_WAIT_POLICY``/``GOMP_SPINCOUNT`` once, when torch loads it, so every setting needs
its own process. The parent keeps one :class:`Worker` per setting and asks it for one unit of work at a
time over a pipe (the pipe costs microseconds; a unit costs tens to hundreds of milliseconds), so
pytest-benchmark can time units while the child's torch stays warm. A :class:`Competitor` is a
single-threaded CPU-bound process: another job sharing the cores.

By hand: ``python tests/threadbench.py train-step 1 --policy passive --reps 5 [--compete]``.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = ("train-step", "corrupt-batch")
#: What each policy name sets before torch loads: "default" is OpenMP's own behaviour (libgomp spins
#: 300,000 rounds before sleeping), "spin:N" a bounded spin, "passive" sleeps at once; "vicinal" is
#: whatever vicinal's thread policy chooses (``vicinal.host.threads``).
POLICIES = ("default", "passive", "vicinal")


def policy_env(threads: int, policy: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.pop("OMP_NUM_THREADS", None)
    env.pop("VICINAL_THREADS", None)
    env["VICINAL_BENCH_THREADS"] = str(threads)
    env["VICINAL_BENCH_POLICY"] = policy
    return env


class Worker:
    """A child process running one workload under one (threads, policy) setting."""

    def __init__(self, workload: str, threads: int, policy: str):
        self.workload, self.threads, self.policy = workload, threads, policy
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__)), "serve", workload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=policy_env(threads, policy),
            cwd=ROOT,
        )
        self.info = self._read()  # the settings the child ended up with, once it is warm

    def _read(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"threadbench worker {self.workload}/{self.threads}/{self.policy} died")
        return line.strip()

    def run(self) -> tuple[float, float]:
        """One unit of work; returns the child's (wall, CPU) seconds for it."""
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        wall, cpu = self._read().split()
        return float(wall), float(cpu)

    def close(self) -> None:
        self.proc.stdin.close()  # the child's loop ends at end of input
        self.proc.wait(timeout=60)
        self.proc.stdout.close()


class Competitor:
    """One CPU-bound, single-threaded process (a pure-Python loop) for as long as the block lasts."""

    def __enter__(self) -> Competitor:
        self.proc = subprocess.Popen([sys.executable, "-c", "while True:\n    pass"])
        time.sleep(0.2)  # let the scheduler see it before the first measurement
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait()


# ------------------------------------------------------------------------------------------ child side


def _configure() -> str:
    threads = int(os.environ["VICINAL_BENCH_THREADS"])
    policy = os.environ["VICINAL_BENCH_POLICY"]
    if policy == "vicinal":
        os.environ["VICINAL_THREADS"] = str(threads)
        from vicinal.host.threads import apply_thread_policy

        apply_thread_policy()
    else:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        if policy == "passive":
            os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        elif policy.startswith("spin:"):
            os.environ["GOMP_SPINCOUNT"] = policy.removeprefix("spin:")
        elif policy != "default":
            raise SystemExit(f"unknown policy {policy!r}")
    import torch

    torch.set_num_threads(threads)
    return (
        f"threads={torch.get_num_threads()} OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '-')} "
        f"GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT', '-')}"
    )


def _train_step():
    """One ERM step of the small CNN on a 128-image batch (forward, backward, SGD with momentum)."""
    import torch
    import torch.nn.functional as F

    from vicinal.training.models import build_model

    torch.manual_seed(0)
    model = build_model("small-cnn", 10, [0.5] * 3, [0.25] * 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.rand(128, 3, 32, 32), torch.randint(0, 10, (128,))

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def _corrupt_batch():
    """All 19 corruptions at severity 3 (CIFAR table) on 64 smooth 32-px images."""
    import torch
    import torch.nn.functional as F

    from vicinal.corruptions import ORDER, corrupt

    coarse = torch.rand(64, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    images = (F.interpolate(coarse, size=32, mode="bilinear", align_corners=False) * 255).to(torch.uint8)

    def batch() -> None:
        for name in ORDER:
            corrupt(images, name, 3, seed=0, table="cifar")

    return batch


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def serve(workload: str) -> None:
    info = _configure()
    unit = {"train-step": _train_step, "corrupt-batch": _corrupt_batch}[workload]()
    unit()  # warm: the OpenMP pool, oneDNN's primitives, lazily built tables
    print(info, flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        w0, c0 = time.perf_counter(), _cpu()
        unit()
        print(f"{time.perf_counter() - w0:.6f} {_cpu() - c0:.6f}", flush=True)


def main(argv: list[str]) -> None:
    if argv[0] == "serve":
        serve(argv[1])
        return
    import argparse
    import statistics

    parser = argparse.ArgumentParser()
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("threads", type=int)
    parser.add_argument("--policy", default="default")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--compete", action="store_true")
    args = parser.parse_args(argv)
    worker = Worker(args.workload, args.threads, args.policy)
    try:
        if args.compete:
            with Competitor():
                times = [worker.run() for _ in range(args.reps)]
        else:
            times = [worker.run() for _ in range(args.reps)]
    finally:
        worker.close()
    walls, cpus = [t[0] for t in times], [t[1] for t in times]
    print(
        f"{args.workload} threads={args.threads} policy={args.policy} compete={args.compete} "
        f"[{worker.info}] wall median {statistics.median(walls) * 1e3:.0f} ms "
        f"(min {min(walls) * 1e3:.0f}) cpu median {statistics.median(cpus) * 1e3:.0f} ms "
        f"load {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
