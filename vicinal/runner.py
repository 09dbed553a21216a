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

from vicinal.datasets import DATASETS, DataSplits, load_dataset, resolve_data_dir, to_unit
from vicinal.declarations import Artifact, Declarations, MetricInfo
from vicinal.errors import VicinalError
from vicinal.evaluation import EVALUATORS, EvalContext, Evaluator
from vicinal.hparams import build_config
from vicinal.identity import fingerprint, short, vicinal_version
from vicinal.io import probe_writable
from vicinal.method import Method, PrepareContext, get_method
from vicinal.models import MODELS, build_model
from vicinal.results import (
    SCHEMA_VERSION,
    Result,
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
    """A device this machine can run on: auto, cpu, cuda or cuda:N (mps where PyTorch has it); anything
    else, including devices torch can name but not run (meta, xla, …), is refused before work starts."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise VicinalError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise VicinalError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise VicinalError(
                f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                f"(cuda:0 … cuda:{torch.cuda.device_count() - 1})"
            )
        return device
    if device.type == "mps" and torch.backends.mps.is_available():
        return device
    if device.type == "cpu":
        return torch.device("cpu")
    raise VicinalError(
        f"--device {name}: vicinal cannot train on {device.type!r} here; use auto, cpu or cuda"
    )


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
    # Every override is validated, also for methods and evaluators this run does not use: a misspelt
    # setting is an error wherever it is written.
    for name in sorted(set(method_overrides) - set(suite.methods)):
        cls = get_method(name)
        build_config(cls.Config, {**suite.method_params.get(name, {}), **method_overrides[name]}, name)
        log(f"note: --set {name}.… not used: {name} is not among this run's methods")
    for name in sorted(set(eval_overrides) - set(suite.evaluators)):
        cls = EVALUATORS.get(name)
        build_config(cls.Config, eval_overrides[name], f"evaluators.{name}", what="setting")
        log(f"note: --set evaluators.{name}.… not used: {name} is not among this run's evaluators")
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
        evaluators.append(cls(build_config(cls.Config, values, f"evaluators.{name}", what="setting")))
        evaluators[-1].check_declarations()
    resolved = resolve_device(device)
    probe_writable(results_dir, "results folder")
    probe_writable(cache_dir, "cache folder")
    return RunPlan(
        suite, methods, evaluators, resolved, results_dir, cache_dir, data_dir, download, force, log
    )


@dataclass
class RunIdentity:
    """What determines one configuration's numbers, in two layers (the seed is added per run):

    * ``training``: the trained weights — dataset content, the suite's training settings (not its name or
      evaluators), method and hyperparameters, and the code of the method, model, dataset loader and
      training loop, with vicinal's version. A change here retrains.
    * ``evaluation``: each evaluator's settings and code, and the evaluation batch size. A change here
      re-evaluates the cached trained model (``training_id`` unchanged) and writes a new result file.
    """

    training: dict[str, Any]
    evaluation: dict[str, Any]
    suite: str

    @property
    def training_id(self) -> str:
        return config_hash(self.training)

    @property
    def run_id(self) -> str:
        return config_hash({"training": self.training, "evaluation": self.evaluation, "suite": self.suite})

    def training_key(self, seed: int) -> str:
        """Cache key of the trained weights (the per-epoch checkpoint): the training identity and seed."""
        return config_hash({**self.training, "seed": seed})

    def describe(self) -> str:
        code = self.training["code"]
        parts = [f"{k} {short(code[k])}" for k in ("method", "model", "dataset", "training")]
        parts += [f"evaluator {n} {short(e['code'])}" for n, e in self.evaluation["evaluators"].items()]
        return f"{', '.join(parts)}; vicinal {code['vicinal']}"


def code_identity(plan: RunPlan, method: Method) -> dict[str, Any]:
    """Fingerprints of the code that trains this method's model (see :mod:`vicinal.identity`)."""
    return {
        "vicinal": vicinal_version(),
        "method": fingerprint(type(method)),
        "model": fingerprint(MODELS.get(plan.suite.model)),
        "dataset": fingerprint(DATASETS.get(plan.suite.dataset)),
        "training": fingerprint(train),
    }


def run_identity(plan: RunPlan, fingerprint_of_data: str, method: Method) -> RunIdentity:
    training = {
        "schema": SCHEMA_VERSION,
        "suite": plan.suite.training_spec(),
        "data_fingerprint": fingerprint_of_data,
        "method": method.name,
        "hyperparameters": dataclasses.asdict(method.config),
        "code": code_identity(plan, method),
    }
    evaluation = {
        "eval_batch_size": plan.suite.eval_batch_size,
        "evaluators": {
            e.name: {"settings": dataclasses.asdict(e.config), "code": fingerprint(type(e))}
            for e in plan.evaluators
        },
    }
    return RunIdentity(training, evaluation, plan.suite.name)


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


def _reusable(path: Path, identity: RunIdentity) -> Result | None:
    """The result at ``path`` if it is intact and was made by this exact configuration and code."""
    if not path.is_file():
        return None
    try:
        existing = read_result(path)
    except ValueError:
        return None  # unreadable: recompute it
    if existing.run_id != identity.run_id or existing.training_id != identity.training_id:
        return None  # a 12-character file-name collision, or a file from elsewhere: never trust it
    return existing


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
        identity = run_identity(plan, rd.fingerprint, method)
        for seed in suite.seeds:
            path = result_path(plan.results_dir, suite.name, name, identity.run_id, seed)
            existing = None if plan.force else _reusable(path, identity)
            if existing is not None:
                plan.log(
                    f"reusing {path}: same configuration, data and code ({identity.describe()}); "
                    "--force recomputes"
                )
                plan.outcomes.append(RunOutcome(name, seed, path, "reused", existing.metrics))
                continue
            # The final checkpoint is kept (keyed by the training identity), so adding or resizing an
            # evaluator re-evaluates without retraining; --force retrains from scratch.
            checkpoint = plan.cache_dir / "checkpoints" / f"{identity.training_key(seed)}.pt"
            if plan.force:
                checkpoint.unlink(missing_ok=True)
            result = run_one(plan, rd, method, seed, identity, checkpoint, path, progress)
            result.environment = {**env, "code": identity.training["code"]}
            write_result(path, result)
            plan.outcomes.append(RunOutcome(name, seed, path, "trained", result.metrics))
    return plan.outcomes


def run_one(
    plan: RunPlan,
    rd: RunData,
    method: Method,
    seed: int,
    identity: RunIdentity,
    checkpoint: Path,
    result_file: Path,
    progress: Any,
) -> Result:
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
    metric_info: dict[str, MetricInfo] = {}
    protocol: dict[str, dict] = {}
    declares: dict[str, Declarations] = {}
    described: dict[str, Artifact] = {"samples": SAMPLES}
    for evaluator in plan.evaluators:
        metrics.update(evaluator.evaluate(ctx))
        metric_info.update(
            {
                k: dataclasses.replace(v, evaluator=evaluator.name)
                for k, v in evaluator.metric_info().items()
                if k in metrics
            }
        )
        declares[evaluator.name] = evaluator.declarations()
        described.update(evaluator.artifacts)
        code = identity.evaluation["evaluators"][evaluator.name]["code"]
        protocol[evaluator.name] = {
            **evaluator.protocol(),
            "code": {"module": code["module"], "fingerprint": code["fingerprint"]},
        }
    eval_s = time.perf_counter() - t0
    save_samples(method, data, plan.device, ctx, plan.log)
    method_code = identity.training["code"]["method"]
    return Result(
        suite=suite.name,
        method=method.name,
        seed=seed,
        run_id=identity.run_id,
        training_id=identity.training_id,
        config_hash=config_hash({"run_id": identity.run_id, "seed": seed}),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        metrics=metrics,
        metric_info=metric_info,
        protocol=protocol,
        declares=declares,
        # Each image with its gallery title, so that the report needs nothing but the result file.
        artifacts={
            name: dataclasses.replace(described.get(name, Artifact(name)), file=file)
            for name, file in ctx.artifacts.items()
        },
        method_info={
            **method.describe(),
            "prepared": prepared,
            "code": {k: v for k, v in method_code.items() if k != "files"},
        },
        # The evaluator settings as run (with --set overrides): the protocol that produced these numbers.
        suite_spec={
            **suite.spec(),
            "evaluators": {n: e["settings"] for n, e in identity.evaluation["evaluators"].items()},
        },
        data={
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
        training={
            "epochs": suite.recipe.epochs,
            "images_per_second": round(summary.images_per_second, 1),
            # Images through the classifier per training image: 2 when a method adds the clean batch to
            # its mixed one, so methods can be compared at equal compute.
            "images_seen": summary.images,
            "images_forwarded": summary.forwarded,
            "resumed_from_epoch": summary.resumed_from_epoch,
            "reused_trained_model": summary.resumed_from_epoch == suite.recipe.epochs,
            "final_loss": summary.history[-1]["loss"] if summary.history else None,
            "history": summary.history,
        },
        timing={
            "prepare_s": round(prepare_s, 2),
            "train_s": round(summary.seconds, 2),
            "eval_s": round(eval_s, 2),
            "wall_s": round(time.perf_counter() - wall, 2),
        },
    )


PREVIEW_SEED = 0  # the same images, pairs and draws for every method and seed, so grids compare
SAMPLES = Artifact(
    "Training samples",
    "What each method trains on, from the same eight training images and pairs (fixed seed): the clean "
    "pair and the mixed sample the method makes, with any intermediate images its preview adds (such as a "
    "VAE's reconstructions and decoded mixes).",
    layout="stack",
)


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
        log(f"warning: {method.name}: no training-sample preview ({type(exc).__name__}: {exc})")
