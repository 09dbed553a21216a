"""Result folders for the leaderboard benchmarks: files shaped like real ones (schema 2, the ``digits``
suite's clean, calibration, adversarial and linearity metrics with their real metric_info and protocols,
a 15-epoch history, code fingerprints; ~15 KB each), made-up numbers.

``python tests/bench_store.py DIR N`` writes one by hand (N = 1000: one suite, 50 methods × 20 seeds;
N = 10000: ten such suites)."""

from __future__ import annotations

import copy
import json
import random
import sys
from pathlib import Path
from typing import Any

METHODS_PER_SUITE = 50
SEEDS = 20


def _template() -> dict[str, Any]:
    from synthetic import make_result

    doc = make_result("suite", "method", 0, 0.8, corruption=False)
    code = {
        name: {
            "module": module,
            "fingerprint": "0123456789abcdef",
            "files": {
                f"vicinal.{m}": "fedcba9876543210" for m in ("datasets", "errors", "names", "registry")
            },
        }
        for name, module in (
            ("method", "vicinal.methods.erm"),
            ("model", "vicinal.training.models"),
            ("dataset", "vicinal.data.datasets"),
            ("training", "vicinal.training.loop"),
        )
    }
    doc["environment"].update(
        code={"vicinal": "0.1.0", **code},
        platform="Linux-6.1-x86_64-with-glibc2.36",
        threads={"threads": 2, "source": "default", "omp_wait_policy": "PASSIVE"},
    )
    doc["training"]["history"] = [
        {"epoch": e, "lr": 0.05, "loss": 1.0 / e, "train_acc": 0.9, "seconds": 12.345} for e in range(1, 16)
    ]
    doc["suite_spec"]["recipe"] = {"epochs": 15, "batch_size": 64, "lr": 0.05, "schedule": "cosine"}
    doc["data"].update(
        dataset="digits", n_val=135, n_test=450, fingerprint="c6e384562e4b544bf3b99a879dcea260"
    )
    return doc


def write_store(root: Path, n: int) -> Path:
    """``n`` result files under ``root``: suites of 50 methods × 20 seeds (the last one partial)."""
    template = _template()
    rng = random.Random(0)
    for i in range(n):
        suite, rest = divmod(i, METHODS_PER_SUITE * SEEDS)
        method, seed = f"method-{rest % METHODS_PER_SUITE}", rest // METHODS_PER_SUITE
        doc = copy.deepcopy(template)
        run_id = f"{suite:02d}{rest % METHODS_PER_SUITE:04d}".ljust(64, "a")
        doc.update(
            suite=f"suite-{suite}",
            method=method,
            seed=seed,
            run_id=run_id,
            training_id="t" + run_id[1:],
            config_hash=f"{seed:02d}" + run_id[2:],
            metrics={k: rng.random() for k in doc["metrics"]},
        )
        doc["method_info"]["name"] = method
        # Each run has its own training curve and timings, as real files do.
        doc["training"]["history"] = [
            {**h, "loss": rng.random(), "train_acc": rng.random(), "seconds": round(rng.uniform(5, 20), 3)}
            for h in doc["training"]["history"]
        ]
        doc["timing"] = {k: round(rng.uniform(1, 100), 2) for k in doc["timing"]}
        path = root / f"suite-{suite}" / method / f"{run_id[:12]}-seed{seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=2))
    return root


if __name__ == "__main__":
    write_store(Path(sys.argv[1]), int(sys.argv[2]))
