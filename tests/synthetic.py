"""Synthetic result files for rendering tests: real metric_info, declarations and protocols from the
evaluators (the corruption evaluator included), made-up numbers (rendering code needs inputs, not trained
models), PNG artifacts beside them described as the runner describes them."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import numpy as np

from vicinal.evaluation.evaluator import MetricInfo

EVIL = "<script>document.title='pwned';console.error('xss')</script>"
CORRUPTIONS = ("gaussian_noise", "fog", "jpeg_compression")


def _evaluators() -> list[Any]:
    from vicinal.evaluators.adversarial import AdversarialEvaluator
    from vicinal.evaluators.calibration import CalibrationEvaluator
    from vicinal.evaluators.clean import CleanEvaluator
    from vicinal.evaluators.linearity import LinearityEvaluator

    return [CleanEvaluator(), CalibrationEvaluator(), AdversarialEvaluator(), LinearityEvaluator()]


def _value(name: str, info: MetricInfo, skill: float, rng: random.Random) -> float:
    if info.percent and info.higher_is_better:
        return min(1.0, max(0.0, skill - 0.05 * name.count("/") + rng.uniform(-0.02, 0.02)))
    return max(0.0, (1.0 - skill) * 0.3 + rng.uniform(0, 0.02))


def _png(path: Path, seed: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.imsave(path, np.random.default_rng(seed).random((24, 48, 3)))


def make_result(
    suite: str,
    method: str,
    seed: int,
    skill: float,
    run_id: str = "a" * 64,
    corruption: bool = True,
    evaluators: list[Any] | None = None,
) -> dict[str, Any]:
    rng = random.Random(f"{suite}/{method}/{seed}")
    metrics: dict[str, float] = {}
    metric_info: dict[str, dict] = {}
    protocol: dict[str, Any] = {}
    declares: dict[str, Any] = {}
    chosen = evaluators or _evaluators()
    if corruption:
        from vicinal.evaluators.corruption import CorruptionEvaluator

        config = CorruptionEvaluator.Config(corruptions=list(CORRUPTIONS))
        chosen = [*chosen, CorruptionEvaluator(config)]
    for e in chosen:
        for k, v in e.metric_info().items():
            metrics[k] = _value(k, v, skill, rng)
            metric_info[k] = dataclasses.replace(v, evaluator=e.name).to_json()
        protocol[e.name] = e.protocol()
        declares[e.name] = e.declarations().to_json()
    return {
        "schema": 2,
        "suite": suite,
        "method": method,
        "seed": seed,
        "run_id": run_id,
        "training_id": "t" + run_id[1:],
        "config_hash": f"{seed:02d}" + run_id[2:],
        "created": "2026-01-01T00:00:00+00:00",
        "metrics": metrics,
        "metric_info": metric_info,
        "protocol": protocol,
        "declares": declares,
        "artifacts": {},
        "method_info": {"name": method, "hyperparameters": {}},
        "suite_spec": {"name": suite, "dataset": "toy", "model": "small-cnn", "recipe": {"epochs": 3}},
        "data": {"n_train": 100},
        "training": {"epochs": 3, "images_per_second": 123.4},
        "timing": {"prepare_s": 0.1, "train_s": 1.0, "eval_s": 2.0, "wall_s": 3.1},
        "environment": {
            "versions": {"python": "3.11", "vicinal": "0.1.0", "torch": "2.x"},
            "device": {"type": "cpu", "name": "x86_64"},
            "git_commit": "0123456789abcdef",
            "deterministic": True,
        },
    }


def write_suite(
    root: Path,
    suite: str = "toy",
    methods: dict[str, tuple[float, int]] | None = None,
    corruption: bool = True,
    artifacts: bool = True,
) -> list[dict[str, Any]]:
    """Result files (method → (skill, seeds)) with reliability and samples PNGs beside each; returns them."""
    methods = methods or {"erm": (0.80, 3), "mixup": (0.85, 3), "varmixup": (0.83, 2), EVIL: (0.5, 1)}
    from vicinal.evaluators.calibration import CalibrationEvaluator
    from vicinal.execution.jobs import SAMPLES

    described = {"reliability": CalibrationEvaluator.artifacts["reliability"], "samples": SAMPLES}
    evaluators = _evaluators()
    written = []
    for i, (method, (skill, seeds)) in enumerate(methods.items()):
        run_id = f"{i:02d}" + "b" * 62
        folder = root / suite / f"m{i}"
        folder.mkdir(parents=True, exist_ok=True)
        for seed in range(seeds):
            doc = make_result(suite, method, seed, skill, run_id, corruption, evaluators)
            stem = f"{run_id[:12]}-seed{seed}"
            if artifacts:
                for name, spec in described.items():
                    _png(folder / f"{stem}.{name}.png", seed)
                    doc["artifacts"][name] = dataclasses.replace(spec, file=f"{stem}.{name}.png").to_json()
            (folder / f"{stem}.json").write_text(json.dumps(doc))
            written.append(doc)
    return written


def write_reported(root: Path, suite: str, method: str, metrics: dict[str, float], **reported: Any) -> Path:
    """A row reported by a (here: made-up) paper, as a user would add one."""
    block = {"citation": "Example et al. 2099", "table": "Table 9", "url": "https://example.org/paper"}
    block.update(reported)
    doc = {
        "schema": 1,
        "suite": suite,
        "method": method,
        "reported": block,
        "metrics": metrics,
        "protocol": {"paper": {"model": "PreActResNet-18", "epochs": 200}},
        "training": {"epochs": 200},
    }
    path = root / suite / method / "reported-example.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path
