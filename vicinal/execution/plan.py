"""Runs a suite: data → each method trains a model → evaluators → one result file per (method, seed).

The driver's side: apply the run's overrides to the suite and validate everything up front, once
(:func:`plan_run`), decide each run's identity and whether its result can be reused (:func:`plan_jobs`),
hand the rest to the executor as jobs (:mod:`vicinal.execution.jobs`, :mod:`vicinal.execution.executors`),
and store what comes back (:meth:`RunPlan.store`). Whatever runs the jobs, every result is written here,
by the driver.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from vicinal.core.errors import VicinalError
from vicinal.core.hparams import build_config, typed_values
from vicinal.core.io import probe_writable
from vicinal.core.reporting import Reporter
from vicinal.data.datasets import load_dataset, resolve_data_dir
from vicinal.evaluation.evaluator import EVALUATORS, EvalContext, Evaluator
from vicinal.execution.executors import Executor, make_executor
from vicinal.execution.identity import reusable_result, run_identity
from vicinal.execution.jobs import JobOutput, RunData, RunJob
from vicinal.execution.options import Overrides, RunOptions
from vicinal.execution.outcomes import RunFailure, RunOutcome, RunsFailed
from vicinal.execution.suite import Suite
from vicinal.host.devices import check_device_name, resolve_device
from vicinal.store.results import Result, result_path, write_result
from vicinal.training.method import Method, get_method

if TYPE_CHECKING:
    import torch


@dataclass
class RunPlan:
    """Everything validated up front, so bad input fails before any training starts."""

    suite: Suite
    #: The configurations to run, in order: one per method, or one per point of its sweep.
    methods: list[Method]
    evaluators: list[Evaluator]
    #: The device this machine runs on; None where the executor checks it where each run executes (Ray:
    #: the driver may have no GPU).
    device: torch.device | None
    options: RunOptions
    #: What runs the jobs (:mod:`vicinal.execution.executors`).
    executor: Executor
    outcomes: list[RunOutcome] = field(default_factory=list)
    failures: list[RunFailure] = field(default_factory=list)
    #: The jobs handed to the executor (the runs not reused), once :func:`execute` made them.
    jobs: list[RunJob] = field(default_factory=list)

    def unfinished_checkpoints(self) -> list[Path]:
        """The checkpoints the runs that did not finish left behind (after Ctrl-C: what a rerun resumes)."""
        done = {o.path for o in self.outcomes}
        return [j.checkpoint for j in self.jobs if j.result_path not in done and j.checkpoint.is_file()]

    # The options most code reads, by their plain names.
    @property
    def results_dir(self) -> Path:
        return self.options.results_dir

    @property
    def cache_dir(self) -> Path:
        return self.options.cache_dir

    @property
    def data_dir(self) -> str | None:
        return self.options.data_dir

    @property
    def download(self) -> bool:
        return self.options.download

    @property
    def force(self) -> bool:
        return self.options.force

    @property
    def reporter(self) -> Reporter:
        return self.options.reporter

    def store(self, job: RunJob, output: JobOutput) -> RunOutcome:
        """Write a finished run into the results folder: its artifacts and the result together, all or
        none (a full disk leaves neither a figure without its result nor a result naming a missing one)."""
        output.result.environment = {**output.result.environment, "code": job.training["code"]}
        write_result(job.result_path, output.result, beside=output.artifacts)
        reevaluated = bool(output.result.training.get("reused_trained_model"))
        status = "re-evaluated" if reevaluated else "trained"
        outcome = RunOutcome(job.method.name, job.seed, job.result_path, status, output.result.metrics)
        self.outcomes.append(outcome)
        return outcome

    def fail(self, failure: RunFailure, label: str, *, quiet: bool = False) -> None:
        """Record a run that failed (the others go on) and, unless ``quiet``, say so."""
        self.failures.append(failure)
        if not quiet:
            self.reporter.warn(f"{label} failed: {failure.message}")


def plan_run(suite: Suite, overrides: Overrides | None = None, options: RunOptions | None = None) -> RunPlan:
    """Build the run's configurations from a suite that has the run's overrides applied and its
    components checked (:func:`vicinal.api.prepare` does both): methods with their settings (each point
    of a sweep its own configuration; ``overrides.settings`` and ``overrides.sweep`` checked here),
    evaluators, the device, the executor, and that results can be written — all before any work."""
    overrides = overrides or Overrides()
    options = options or RunOptions()
    reporter = options.reporter
    sweeps = {
        **suite.sweep,
        **{m: {**suite.sweep.get(m, {}), **p} for m, p in overrides.sweep.items()},
    }
    eval_overrides = {
        k.removeprefix("evaluators."): v for k, v in overrides.settings.items() if k.startswith("evaluators.")
    }
    method_overrides = {k: v for k, v in overrides.settings.items() if not k.startswith("evaluators.")}
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
    methods = []
    for name in suite.methods:
        cls = get_method(name)
        values = {**suite.method_params.get(name, {}), **method_overrides.get(name, {})}
        grid = sweeps.get(name, {})
        both = sorted(set(grid) & set(method_overrides.get(name, {})))
        if both:
            raise VicinalError(f"{name}.{both[0]} is both swept and set (--set): keep one of them")
        typed = {p: typed_values(cls.Config, values, p, grid[p], name) for p in grid}
        for point in itertools.product(*typed.values()):
            setting = dict(zip(typed, point, strict=True))
            methods.append(cls(build_config(cls.Config, {**values, **setting}, name)))
    evaluators = []
    for name, params in suite.evaluators.items():
        cls = EVALUATORS.get(name)
        values = {**params, **eval_overrides.get(name, {})}
        evaluators.append(cls(build_config(cls.Config, values, f"evaluators.{name}", what="setting")))
        evaluators[-1].check_declarations()
    executor = make_executor(options.executor, plugins=options.plugins, device=options.device)
    device: torch.device | None = None
    if getattr(executor, "resolves_device", False):
        check_device_name(options.device)  # the rest is checked where the runs execute
    else:
        device = resolve_device(options.device)
    probe_writable(options.results_dir, "results folder")
    probe_writable(options.cache_dir, "cache folder")
    return RunPlan(suite, methods, evaluators, device, options, executor)


def load_run_data(suite: Suite, data_dir: str | None, download: bool) -> RunData:
    data = load_dataset(suite.dataset, data_dir, download)
    data = data.hold_out(suite.validation).limit_train(suite.limit_train)
    mean, std = data.channel_stats()
    return RunData(data, data.fingerprint(), mean, std)


def plan_jobs(plan: RunPlan, rd: RunData) -> list[RunJob]:
    """One job per (method, seed) in run order; results that can be reused are recorded as outcomes here
    and get no job."""
    todo = []
    for method in plan.methods:
        name = method.name
        identity = run_identity(plan.suite, plan.evaluators, rd.fingerprint, method)
        for seed in plan.suite.seeds:
            path = result_path(plan.results_dir, plan.suite.name, name, identity.run_id, seed)
            existing = None if plan.force else reusable_result(path, identity)
            if existing is not None:
                plan.reporter.note(
                    f"reusing {path}: same configuration, data and code ({identity.describe()})"
                    f"{_made_elsewhere(existing, plan.device)}; --force recomputes"
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
                    device=str(plan.device) if plan.device is not None else plan.options.device,
                    cache_dir=plan.cache_dir,
                    data_dir=resolve_data_dir(plan.data_dir),
                )
            )
    return todo


def _made_elsewhere(result: Result, device: torch.device | None) -> str:
    """What a reuse note adds (", trained on cuda:0 (bfloat16 autocast)") where a reused result was trained
    on another kind of device than this run's. A run's identity leaves the device out (runs agree
    statistically across devices, as GPU runs do among themselves), so seeds trained on a CPU and on a GPU
    join one row; the reuse says so."""
    made_on = str(result.environment.get("device", {}).get("type", ""))
    if device is None or not made_on or made_on.split(":")[0] == device.type:
        return ""
    precision = result.training.get("precision")
    return f", trained on {made_on}" + (f" ({precision})" if precision else "")


def check_evaluator_inputs(plan: RunPlan, rd: RunData) -> None:
    """Each evaluator checks the data it will read besides the suite's (a corrupted set on disk: its
    manifest, checksums and sizes) before any training starts (:meth:`Evaluator.check_inputs`)."""
    ctx = EvalContext(
        model=None,  # type: ignore[arg-type]  # nothing is trained yet: check_inputs reads no model
        data=rd.splits,
        device=plan.device,
        batch_size=plan.suite.eval_batch_size,
        data_dir=resolve_data_dir(plan.data_dir),
        cache_dir=plan.cache_dir,
        reporter=plan.reporter,
    )
    for evaluator in plan.evaluators:
        evaluator.check_inputs(ctx)


def execute(plan: RunPlan) -> list[RunOutcome]:
    """Run the plan: load the data once, make the jobs, and hand them to the plan's executor (by default
    one after another in this process). A run that fails is reported and the others go on; their results
    are kept."""
    rd = load_run_data(plan.suite, plan.data_dir, plan.download)
    jobs = plan.jobs = plan_jobs(plan, rd)
    if jobs:  # nothing to run (every result reused): no executor is started, no cluster contacted
        check_evaluator_inputs(plan, rd)
        plan.executor.run(plan, rd, jobs)
    if plan.failures:
        raise RunsFailed(plan.failures, len(plan.outcomes))
    return plan.outcomes
