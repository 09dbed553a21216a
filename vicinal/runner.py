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

from vicinal.datasets import DataSplits, load_dataset, resolve_data_dir, to_unit
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
from vicinal.rng import RunRandom, seed_everything
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
    eval_overrides = {
        k.removeprefix("evaluators."): v for k, v in overrides.items() if k.startswith("evaluators.")
    }
    method_overrides = {k: v for k, v in overrides.items() if not k.startswith("evaluators.")}
    for name in sorted(set(method_overrides) - set(suite.methods)):
        get_method(name)  # a misspelt name is an error (with suggestions); a real one is just not run
        log(f"[yellow]note[/]: --set {name}.… ignored: {name} is not among this run's methods")
    for name in sorted(set(eval_overrides) - set(suite.evaluators)):
        EVALUATORS.get(name)
        log(f"[yellow]note[/]: --set evaluators.{name}.… ignored: {name} is not among this run's evaluators")
    if len(set(suite.methods)) != len(suite.methods):
        raise VicinalError(f"a method is listed twice in {', '.join(suite.methods)}")
    MODELS.get(suite.model)
    methods = {}
    for name in suite.methods:
        cls = get_method(name)
        values = {**suite.method_params.get(name, {}), **method_overrides.get(name, {})}
        methods[name] = cls(build_config(cls.Config, values, name))
    evaluators = []
    for name, params in suite.evaluators.items():
        cls = EVALUATORS.get(name)
        values = {**params, **eval_overrides.get(name, {})}
        evaluators.append(cls(build_config(cls.Config, values, f"evaluators.{name}")))
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
    # The suite's evaluator settings as run (with --set overrides), so suite_spec in the result file is
    # the protocol that produced its numbers.
    evaluators = {e.name: dataclasses.asdict(e.config) for e in plan.evaluators}
    return {
        "schema": SCHEMA_VERSION,
        "suite": {**plan.suite.spec(), "evaluators": evaluators},
        "data_fingerprint": fingerprint,
        "method": method.name,
        "hyperparameters": dataclasses.asdict(method.config),
    }


@dataclass
class RunData:
    """The suite's data, loaded once for every (method, seed)."""

    splits: DataSplits
    fingerprint: str
    mean: list[float]
    std: list[float]


def load_run_data(suite: Suite, data_dir: str | None, download: bool) -> RunData:
    data = load_dataset(suite.dataset, data_dir, download)
    data = data.hold_out(suite.validation).limit_train(suite.limit_train)
    mean, std = data.channel_stats()
    return RunData(data, data.fingerprint(), mean, std)


def training_key(base: dict[str, Any], seed: int) -> str:
    """Hash of what determines the trained weights: the run's configuration minus its evaluators."""
    suite = {k: v for k, v in base["suite"].items() if k not in ("evaluators", "eval_batch_size")}
    return config_hash({**base, "suite": suite, "seed": seed})


def execute(plan: RunPlan, progress: Any) -> list[RunOutcome]:
    suite = plan.suite
    rd = load_run_data(suite, plan.data_dir, plan.download)
    # Bit-reproducible on the CPU; on CUDA speed wins (cuDNN autotuning), so GPU runs agree only
    # statistically. Which one applied is recorded with the environment.
    deterministic = plan.device.type == "cpu"
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.benchmark = not deterministic
    env = {**environment(plan.device), "deterministic": deterministic}
    for name, method in plan.methods.items():
        base = run_config(plan, rd.splits, rd.fingerprint, method)
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
            # The final checkpoint is kept (keyed without the evaluators), so adding or resizing an
            # evaluator re-evaluates without retraining; --force retrains from scratch.
            checkpoint = plan.cache_dir / "checkpoints" / f"{training_key(base, seed)}.pt"
            if plan.force:
                checkpoint.unlink(missing_ok=True)
            result = run_one(plan, rd, method, seed, base, checkpoint, path, progress)
            result["environment"] = env
            write_result(path, result)
            plan.outcomes.append(RunOutcome(name, seed, path, "trained", result["metrics"]))
    return plan.outcomes


def run_one(
    plan: RunPlan,
    rd: RunData,
    method: Method,
    seed: int,
    base: dict[str, Any],
    checkpoint: Path,
    result_file: Path,
    progress: Any,
) -> dict[str, Any]:
    suite, data = plan.suite, rd.splits
    wall = time.perf_counter()
    seed_everything(seed)
    model = build_model(suite.model, data.num_classes, rd.mean, rd.std).to(plan.device)
    t0 = time.perf_counter()
    prepared = method.prepare(
        PrepareContext(
            train=data.train,
            num_classes=data.num_classes,
            dataset=data.name,
            data_fingerprint=rd.fingerprint,
            seed=seed,
            device=plan.device,
            cache_dir=plan.cache_dir,
            progress=progress,
            log=plan.log,
        )
    )
    prepare_s = time.perf_counter() - t0
    summary = train(
        model,
        method,
        data.train,
        suite.recipe,
        plan.device,
        seed,
        progress,
        f"{method.name} · seed {seed}",
        checkpoint,
    )
    t0 = time.perf_counter()
    ctx = EvalContext(
        model,
        data,
        plan.device,
        suite.eval_batch_size,
        artifact_stem=result_file.with_suffix(""),
        title=f"{suite.name} · {method.name} · seed {seed}",
        seed=seed,
        data_dir=resolve_data_dir(plan.data_dir),
        cache_dir=plan.cache_dir,
        progress=progress,
    )
    metrics: dict[str, float] = {}
    metric_info: dict[str, dict] = {}
    protocol: dict[str, dict] = {}
    for evaluator in plan.evaluators:
        metrics.update(evaluator.evaluate(ctx))
        metric_info.update(
            {
                k: {**dataclasses.asdict(v), "evaluator": evaluator.name}
                for k, v in evaluator.metric_info().items()
                if k in metrics
            }
        )
        protocol[evaluator.name] = evaluator.protocol()
    eval_s = time.perf_counter() - t0
    save_samples(method, data, plan.device, ctx, plan.log)
    return {
        "schema": SCHEMA_VERSION,
        "suite": suite.name,
        "method": method.name,
        "seed": seed,
        "run_id": config_hash(base),
        "config_hash": config_hash({**base, "seed": seed}),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "metrics": metrics,
        "metric_info": metric_info,
        "protocol": protocol,
        "artifacts": ctx.artifacts,
        "method_info": {**method.describe(), "prepared": prepared},
        "suite_spec": base["suite"],
        "data": {
            "dataset": data.name,
            "source": data.source,
            "n_train": len(data.train),
            "n_val": len(data.val) if data.val is not None else 0,
            "n_test": len(data.test),
            "num_classes": data.num_classes,
            "image_shape": list(data.image_shape),
            "fingerprint": rd.fingerprint,
            "normalisation": {"mean": rd.mean, "std": rd.std, "from": "training images"},
            **data.info,
        },
        "training": {
            "epochs": suite.recipe.epochs,
            "images_per_second": round(summary.images_per_second, 1),
            "resumed_from_epoch": summary.resumed_from_epoch,
            "reused_trained_model": summary.resumed_from_epoch == suite.recipe.epochs,
            "final_loss": summary.history[-1]["loss"] if summary.history else None,
            "history": summary.history,
        },
        "timing": {
            "prepare_s": round(prepare_s, 2),
            "train_s": round(summary.seconds, 2),
            "eval_s": round(eval_s, 2),
            "wall_s": round(time.perf_counter() - wall, 2),
        },
    }


PREVIEW_SEED = 0  # the same images, pairs and draws for every method and seed, so grids compare


def save_samples(
    method: Method, data: DataSplits, device: torch.device, ctx: EvalContext, log: Callable[[str], None]
) -> None:
    """Draw what the method trains on (``Method.preview``) as ``<result>.samples.png``: eight training
    images of different classes, each paired with the next. Runs after evaluation, with its own
    generators, so it cannot change a metric; a failing preview is a warning, not a lost run."""
    g = torch.Generator().manual_seed(PREVIEW_SEED)
    order = torch.randperm(len(data.train), generator=g)
    first: dict[int, int] = {}
    for i in order.tolist():
        first.setdefault(int(data.train.labels[i]), i)
        if len(first) == 8:
            break
    index = torch.tensor(list(first.values()))
    x, y = to_unit(data.train.images[index], device), data.train.labels[index].to(device)
    perm = torch.roll(torch.arange(len(index)), -1).to(device)
    try:
        preview = method.preview(x, y, perm, RunRandom(PREVIEW_SEED))
        if preview is None:
            return
        path = ctx.artifact_path("samples")
        if path is None:
            return
        from vicinal.plots import sample_grid

        rows = {
            k: v.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
            for k, v in preview.rows.items()
        }
        sample_grid(rows, f"{ctx.title}: training samples", preview.note, path)
    except Exception as exc:  # a plugin's preview must not cost a finished run
        ctx.artifacts.pop("samples", None)
        log(f"[yellow]warning[/]: {method.name}: no training-sample preview ({type(exc).__name__}: {exc})")
