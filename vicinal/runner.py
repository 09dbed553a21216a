"""Runs a suite: data → each method trains a model → evaluators → one result file per (method, seed)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from vicinal.datasets import DataSplits, load_dataset
from vicinal.errors import VicinalError
from vicinal.evaluation import EVALUATORS, EvalContext, Evaluator
from vicinal.hparams import build_config
from vicinal.method import Method, PrepareContext, get_method
from vicinal.models import MODELS, build_model
from vicinal.results import (
    SCHEMA_VERSION,
    config_hash,
    environment,
    read_result,
    result_path,
    write_result,
)
from vicinal.rng import seed_everything
from vicinal.suite import Suite
from vicinal.training import train


@dataclass
class RunOutcome:
    method: str
    seed: int
    path: Path
    status: str  # "trained" | "reused"
    metrics: dict[str, float]


@dataclass
class RunPlan:
    """Everything validated up front, so bad input fails before any training starts."""

    suite: Suite
    methods: dict[str, Method]
    evaluators: list[Evaluator]
    device: torch.device
    results_dir: Path
    cache_dir: Path
    data_dir: str | None = None
    download: bool = False
    force: bool = False
    log: Callable[[str], None] = print
    outcomes: list[RunOutcome] = field(default_factory=list)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise VicinalError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VicinalError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return device


def plan_run(
    suite: Suite,
    *,
    device: str = "auto",
    results_dir: Path,
    cache_dir: Path,
    overrides: dict[str, dict[str, Any]] | None = None,
    data_dir: str | None = None,
    download: bool = False,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> RunPlan:
    overrides = overrides or {}
    for name in sorted(set(overrides) - set(suite.methods)):
        get_method(name)  # a misspelt name is an error (with suggestions); a real one is just not run
        log(f"[yellow]note[/]: --set {name}.… ignored: {name} is not among this run's methods")
    if len(set(suite.methods)) != len(suite.methods):
        raise VicinalError(f"a method is listed twice in {', '.join(suite.methods)}")
    MODELS.get(suite.model)
    methods = {}
    for name in suite.methods:
        cls = get_method(name)
        values = {**suite.method_params.get(name, {}), **overrides.get(name, {})}
        methods[name] = cls(build_config(cls.Config, values, name))
    evaluators = []
    for name, params in suite.evaluators.items():
        cls = EVALUATORS.get(name)
        evaluators.append(cls(build_config(cls.Config, params, f"evaluators.{name}")))
    return RunPlan(
        suite,
        methods,
        evaluators,
        resolve_device(device),
        results_dir,
        cache_dir,
        data_dir,
        download,
        force,
        log,
    )


def run_config(plan: RunPlan, data: DataSplits, fingerprint: str, method: Method) -> dict[str, Any]:
    """What determines one run's numbers (the seed is added separately)."""
    return {
        "schema": SCHEMA_VERSION,
        "suite": plan.suite.spec(),
        "data_fingerprint": fingerprint,
        "method": method.name,
        "hyperparameters": dataclasses.asdict(method.config),
        "evaluators": {e.name: dataclasses.asdict(e.config) for e in plan.evaluators},
    }


def execute(plan: RunPlan, progress: Any) -> list[RunOutcome]:
    suite = plan.suite
    data = load_dataset(suite.dataset, plan.data_dir, plan.download).limit_train(suite.limit_train)
    fingerprint = data.fingerprint()
    mean, std = data.channel_stats()
    # Bit-reproducible on the CPU; on CUDA speed wins (cuDNN autotuning), so GPU runs agree only
    # statistically. Which one applied is recorded with the environment.
    deterministic = plan.device.type == "cpu"
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.benchmark = not deterministic
    env = {**environment(plan.device), "deterministic": deterministic}
    for name, method in plan.methods.items():
        base = run_config(plan, data, fingerprint, method)
        run_id = config_hash(base)
        for seed in suite.seeds:
            path = result_path(plan.results_dir, suite.name, name, run_id, seed)
            if path.is_file() and not plan.force:
                try:
                    existing = read_result(path)
                except ValueError:
                    pass  # unreadable: recompute it
                else:
                    plan.log(f"[dim]reusing {path} (same configuration; --force recomputes)[/]")
                    plan.outcomes.append(RunOutcome(name, seed, path, "reused", existing["metrics"]))
                    continue
            checkpoint = plan.cache_dir / "checkpoints" / f"{config_hash({**base, 'seed': seed})}.pt"
            result = run_one(
                plan, data, fingerprint, mean, std, method, seed, base, run_id, env, progress, checkpoint
            )
            write_result(path, result)
            checkpoint.unlink(missing_ok=True)  # only once the result is safely on disk
            plan.outcomes.append(RunOutcome(name, seed, path, "trained", result["metrics"]))
    return plan.outcomes


def run_one(
    plan: RunPlan,
    data: DataSplits,
    fingerprint: str,
    mean: list[float],
    std: list[float],
    method: Method,
    seed: int,
    base: dict[str, Any],
    run_id: str,
    env: dict[str, Any],
    progress: Any,
    checkpoint: Path,
) -> dict[str, Any]:
    suite = plan.suite
    label = f"{method.name} · seed {seed}"
    wall = time.perf_counter()
    seed_everything(seed)
    model = build_model(suite.model, data.num_classes, mean, std).to(plan.device)
    t0 = time.perf_counter()
    prepared = method.prepare(
        PrepareContext(
            train=data.train,
            num_classes=data.num_classes,
            dataset=data.name,
            data_fingerprint=fingerprint,
            seed=seed,
            device=plan.device,
            cache_dir=plan.cache_dir,
            progress=progress,
            log=plan.log,
        )
    )
    prepare_s = time.perf_counter() - t0
    summary = train(model, method, data.train, suite.recipe, plan.device, seed, progress, label, checkpoint)
    t0 = time.perf_counter()
    ctx = EvalContext(model, data, plan.device, suite.eval_batch_size)
    metrics: dict[str, float] = {}
    metric_info: dict[str, dict] = {}
    protocol: dict[str, dict] = {}
    for evaluator in plan.evaluators:
        metrics.update(evaluator.evaluate(ctx))
        metric_info.update(
            {k: {**dataclasses.asdict(v), "evaluator": evaluator.name} for k, v in evaluator.metrics.items()}
        )
        protocol[evaluator.name] = evaluator.protocol()
    eval_s = time.perf_counter() - t0
    result = {
        "schema": SCHEMA_VERSION,
        "suite": suite.name,
        "method": method.name,
        "seed": seed,
        "run_id": run_id,
        "config_hash": config_hash({**base, "seed": seed}),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "metrics": metrics,
        "metric_info": metric_info,
        "protocol": protocol,
        "method_info": {**method.describe(), "prepared": prepared},
        "suite_spec": base["suite"],
        "data": {
            "dataset": data.name,
            "source": data.source,
            "n_train": len(data.train),
            "n_test": len(data.test),
            "num_classes": data.num_classes,
            "image_shape": list(data.image_shape),
            "fingerprint": fingerprint,
            "normalisation": {"mean": mean, "std": std, "from": "training images"},
            **data.info,
        },
        "training": {
            "epochs": suite.recipe.epochs,
            "images_per_second": round(summary.images_per_second, 1),
            "resumed_from_epoch": summary.resumed_from_epoch,
            "final_loss": summary.history[-1]["loss"] if summary.history else None,
            "history": summary.history,
        },
        "timing": {
            "prepare_s": round(prepare_s, 2),
            "train_s": round(summary.seconds, 2),
            "eval_s": round(eval_s, 2),
            "wall_s": round(time.perf_counter() - wall, 2),
        },
        "environment": env,
    }
    return result
