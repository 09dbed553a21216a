"""Runs a suite: data → each method trains a model → evaluators → one result file per (method, seed).

The driver's side: validate everything up front (:func:`plan_run`), decide each run's identity and
whether its result can be reused (:func:`plan_jobs`), hand the rest to an executor as jobs
(:mod:`vicinal.jobs`), and store what comes back (:func:`store_output`).

An executor is anything with :class:`Executor`'s ``run``: :class:`LocalExecutor` runs the jobs one after
another in this process (the default); others are named in :mod:`vicinal.executors` (the Ray executor in
:mod:`vicinal.ray_executor`). Whatever runs them, every result is written here, by the driver."""

from __future__ import annotations

import dataclasses
import itertools
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from vicinal.datasets import DATASETS, load_dataset, resolve_data_dir
from vicinal.errors import ResourceError, VicinalError
from vicinal.evaluation import EVALUATORS, Evaluator
from vicinal.hparams import build_config
from vicinal.identity import fingerprint, short, vicinal_version
from vicinal.io import atomic_write_bytes, atomic_write_text, probe_writable
from vicinal.jobs import JobOutput, RunData, RunJob, run_job
from vicinal.method import Method, get_method
from vicinal.models import MODELS
from vicinal.reporting import Reporter, SilentReporter
from vicinal.results import (
    SCHEMA_VERSION,
    Result,
    config_hash,
    read_result,
    result_path,
    write_result,
)
from vicinal.suite import Suite
from vicinal.training import train


@dataclass
class RunOutcome:
    method: str
    seed: int
    path: Path
    status: str  # "trained" | "reused"
    metrics: dict[str, float]


class Executor(Protocol):
    """Runs a plan's jobs and hands each outcome back to the driver: a finished run goes through
    :func:`store_output`, a run that raised becomes a :class:`RunFailure` in ``plan.failures`` (the others go
    on). ``KeyboardInterrupt`` and :class:`ResourceError` stop everything; finished runs stay stored."""

    name: str

    def describe(self) -> str:
        """Where the runs go, for the run's summary line ("local", "ray at 10.0.0.1:6379 · 1 GPU/run")."""
        ...

    def run(self, plan: RunPlan, rd: RunData, jobs: list[RunJob]) -> None: ...


class LocalExecutor:
    """The jobs one after another in this process: nothing to start, nothing to ship."""

    name = "local"

    def describe(self) -> str:
        return "local"

    def run(self, plan: RunPlan, rd: RunData, jobs: list[RunJob]) -> None:
        for job in jobs:
            try:
                output = run_job(job, rd, plan.reporter)
            except (KeyboardInterrupt, ResourceError):
                raise  # the user stopped everything, or the disk is full: nothing else can succeed either
            except Exception as exc:
                plan.failures.append(RunFailure.of(job, exc, plan.cache_dir))
                plan.reporter.warn(f"{job.label} failed: {plan.failures[-1].message}")
                continue
            store_output(plan, job, output)


@dataclass
class RunPlan:
    """Everything validated up front, so bad input fails before any training starts."""

    suite: Suite
    #: The configurations to run, in order: one per method, or one per point of its sweep.
    methods: list[Method]
    evaluators: list[Evaluator]
    device: torch.device
    results_dir: Path
    cache_dir: Path
    data_dir: str | None = None
    download: bool = False
    force: bool = False
    reporter: Reporter = field(default_factory=SilentReporter)
    #: What runs the jobs (:mod:`vicinal.executors`); this process, one after another, by default.
    executor: Executor = field(default_factory=LocalExecutor)
    outcomes: list[RunOutcome] = field(default_factory=list)
    failures: list[RunFailure] = field(default_factory=list)


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
    sweeps: dict[str, dict[str, list[Any]]] | None = None,
    data_dir: str | None = None,
    download: bool = False,
    force: bool = False,
    reporter: Reporter | None = None,
    executor: Executor | None = None,
) -> RunPlan:
    """Validate everything a run needs before any work: methods and their settings (each point of a
    sweep is its own configuration), evaluators, the device, and that results can be written.
    ``sweeps`` (``{"mixup": {"alpha": [0.2, 1.0]}}``) adds to the suite's ``[sweep]`` table."""
    overrides = overrides or {}
    reporter = reporter or SilentReporter()
    sweeps = {**suite.sweep, **{m: {**suite.sweep.get(m, {}), **p} for m, p in (sweeps or {}).items()}}
    eval_overrides = {
        k.removeprefix("evaluators."): v for k, v in overrides.items() if k.startswith("evaluators.")
    }
    method_overrides = {k: v for k, v in overrides.items() if not k.startswith("evaluators.")}
    # Every override is validated, also for methods and evaluators this run does not use: a misspelt
    # setting is an error wherever it is written.
    for name in sorted(set(method_overrides) - set(suite.methods)):
        cls = get_method(name)
        build_config(cls.Config, {**suite.method_params.get(name, {}), **method_overrides[name]}, name)
        reporter.note(f"--set {name}.… not used: {name} is not among this run's methods")
    for name in sorted(set(eval_overrides) - set(suite.evaluators)):
        cls = EVALUATORS.get(name)
        build_config(cls.Config, eval_overrides[name], f"evaluators.{name}", what="setting")
        reporter.note(f"--set evaluators.{name}.… not used: {name} is not among this run's evaluators")
    for name in sorted(set(sweeps) - set(suite.methods)):
        get_method(name)
        reporter.note(f"the sweep over {name}.… is not used: {name} is not among this run's methods")
    MODELS.get(suite.model)
    methods = []
    for name in suite.methods:
        cls = get_method(name)
        values = {**suite.method_params.get(name, {}), **method_overrides.get(name, {})}
        grid = sweeps.get(name, {})
        both = sorted(set(grid) & set(method_overrides.get(name, {})))
        if both:
            raise VicinalError(f"{name}.{both[0]} is both swept and set (--set): keep one of them")
        for point in itertools.product(*grid.values()):
            setting = dict(zip(grid, point, strict=True))
            methods.append(cls(build_config(cls.Config, {**values, **setting}, name)))
    evaluators = []
    for name, params in suite.evaluators.items():
        cls = EVALUATORS.get(name)
        values = {**params, **eval_overrides.get(name, {})}
        evaluators.append(cls(build_config(cls.Config, values, f"evaluators.{name}", what="setting")))
        evaluators[-1].check_declarations()
        evaluators[-1].check_data(resolve_data_dir(data_dir), suite.dataset)
    resolved = resolve_device(device)
    probe_writable(results_dir, "results folder")
    probe_writable(cache_dir, "cache folder")
    return RunPlan(
        suite,
        methods,
        evaluators,
        resolved,
        results_dir,
        cache_dir,
        data_dir,
        download,
        force,
        reporter,
        executor or LocalExecutor(),
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
    return RunIdentity(training, evaluation_identity(plan.suite, plan.evaluators), plan.suite.name)


def evaluation_identity(suite: Suite, evaluators: list[Evaluator]) -> dict[str, Any]:
    """What determines the numbers a trained model gets: each evaluator's settings and code, and the
    evaluation batch size (shared by vicinal's runs and models evaluated as given)."""
    return {
        "eval_batch_size": suite.eval_batch_size,
        "evaluators": {
            e.name: {"settings": dataclasses.asdict(e.config), "code": fingerprint(type(e))}
            for e in evaluators
        },
    }


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


def plan_jobs(plan: RunPlan, rd: RunData) -> list[RunJob]:
    """One job per (method, seed) in run order; results that can be reused are recorded as outcomes here
    and get no job."""
    todo = []
    for method in plan.methods:
        name = method.name
        identity = run_identity(plan, rd.fingerprint, method)
        for seed in plan.suite.seeds:
            path = result_path(plan.results_dir, plan.suite.name, name, identity.run_id, seed)
            existing = None if plan.force else _reusable(path, identity)
            if existing is not None:
                plan.reporter.note(
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
            todo.append(
                RunJob(
                    suite=plan.suite,
                    method=method,
                    evaluators=plan.evaluators,
                    seed=seed,
                    training=identity.training,
                    evaluation=identity.evaluation,
                    run_id=identity.run_id,
                    training_id=identity.training_id,
                    result_path=path,
                    checkpoint=checkpoint,
                    device=str(plan.device),
                    cache_dir=plan.cache_dir,
                    data_dir=resolve_data_dir(plan.data_dir),
                )
            )
    return todo


def store_output(plan: RunPlan, job: RunJob, output: JobOutput) -> RunOutcome:
    """Write a finished run into the results folder: its artifacts first, then the result (atomically),
    so a result file never names an artifact that is not there."""
    for name, blob in output.artifacts.items():
        atomic_write_bytes(job.result_path.with_name(name), blob)
    output.result.environment = {**output.result.environment, "code": job.training["code"]}
    write_result(job.result_path, output.result)
    outcome = RunOutcome(job.method.name, job.seed, job.result_path, "trained", output.result.metrics)
    plan.outcomes.append(outcome)
    return outcome


def execute(plan: RunPlan) -> list[RunOutcome]:
    """Run the plan: load the data once, make the jobs, and hand them to the plan's executor (by default
    one after another in this process). A run that fails is reported and the others go on; their results
    are kept."""
    rd = load_run_data(plan.suite, plan.data_dir, plan.download)
    jobs = plan_jobs(plan, rd)
    if jobs:  # nothing to run (every result reused): no executor is started, no cluster contacted
        plan.executor.run(plan, rd, jobs)
    if plan.failures:
        raise RunsFailed(plan.failures, len(plan.outcomes))
    return plan.outcomes


@dataclass
class RunFailure:
    method: str
    seed: int
    message: str
    #: Where the full traceback was written, for an error that is not a user-facing one.
    details: Path | None = None

    @classmethod
    def of(cls, job: RunJob, exc: BaseException, cache_dir: Path) -> RunFailure:
        if isinstance(exc, VicinalError):
            return cls(job.method.name, job.seed, str(exc))
        return cls.of_traceback(
            job, f"{type(exc).__name__}: {exc}", "".join(traceback.format_exception(exc)), cache_dir
        )

    @classmethod
    def of_traceback(cls, job: RunJob, summary: str, trace: str, cache_dir: Path) -> RunFailure:
        """A failure known by its text: ``summary`` ("RuntimeError: …") and its full traceback, written to
        the driver's cache folder for a bug report (a run on another machine sends both back as text)."""
        details: Path | None = cache_dir / "errors" / f"{job.result_path.stem}-{job.method.name}.txt"
        try:
            atomic_write_text(details, trace)
        except VicinalError:
            details = None
        where = f" (traceback in {details})" if details else ""
        return cls(job.method.name, job.seed, f"{summary}{where}", details)


class RunsFailed(VicinalError):
    """Some runs failed; the others finished and their results are kept (exit code 1)."""

    exit_code = 1

    def __init__(self, failures: list[RunFailure], finished: int):
        self.failures = failures
        lines = "; ".join(f"{f.method} seed {f.seed}: {f.message}" for f in failures)
        super().__init__(
            f"{len(failures)} run(s) failed, {finished} finished and kept — {lines}. "
            "Fix the cause and run the same command again: finished runs are reused."
        )
