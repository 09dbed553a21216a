"""What runs a plan's jobs, by name: ``local`` (this process, one run after another: the default) and
``ray`` (one Ray task per run, on a local or an existing cluster). Third-party executors register under
the ``vicinal.executors`` entry-point group.

An executor is a class with ``name``, ``describe()`` and ``run(plan, rd, jobs)`` (:class:`Executor`),
constructed with the settings it declares in ``options`` plus ``plugins`` and ``device``.
:func:`make_executor` refuses a setting the chosen executor does not take, so ``--address`` without
``--executor ray`` is an error rather than silently ignored. Nothing here imports Ray: the Ray executor
imports it when it runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from vicinal.core.errors import ResourceError, VicinalError
from vicinal.core.registry import Registry
from vicinal.execution.jobs import RunData, RunJob, run_job
from vicinal.execution.options import ExecutorOptions
from vicinal.execution.outcomes import RunFailure
from vicinal.execution.ray import RayExecutor

if TYPE_CHECKING:
    from vicinal.execution.plan import RunPlan


class Executor(Protocol):
    """Runs a plan's jobs and hands each outcome back to the driver: a finished run goes to
    :meth:`RunPlan.store`, a run that raised becomes a :class:`RunFailure` through :meth:`RunPlan.fail`
    (the others go on). ``KeyboardInterrupt`` and :class:`ResourceError` stop everything; finished runs
    stay stored.

    An executor whose runs execute on other machines sets ``resolves_device = True``: the plan then checks
    only that ``--device`` names a device, and each run checks it where it executes (``run_job``); without
    it the device must exist on this machine."""

    name: str

    def describe(self) -> str:
        """Where the runs go, for the run's summary line ("local", "ray at 10.0.0.1:6379 · 1 GPU/run")."""
        ...

    def run(self, plan: RunPlan, rd: RunData, jobs: list[RunJob]) -> None: ...


class LocalExecutor:
    """The jobs one after another in this process: nothing to start, nothing to ship."""

    name = "local"
    options: tuple[str, ...] = ()

    def describe(self) -> str:
        return "local"

    def run(self, plan: RunPlan, rd: RunData, jobs: list[RunJob]) -> None:
        for job in jobs:
            try:
                output = run_job(job, rd, plan.reporter)
            except (KeyboardInterrupt, ResourceError):
                raise  # the user stopped everything, or the disk is full: nothing else can succeed either
            except Exception as exc:
                plan.fail(RunFailure.of(job, exc, plan.cache_dir), job.label)
                continue
            plan.store(job, output)


EXECUTORS: Registry[type] = Registry("executor", entry_point_group="vicinal.executors")
EXECUTORS.add("local", LocalExecutor)
EXECUTORS.add("ray", RayExecutor)

#: How each executor setting is written on the command line (errors name the flag a user typed).
FLAGS = {
    "address": "--address",
    "gpus_per_run": "--gpus-per-run",
    "cpus_per_run": "--cpus-per-run",
    "max_retries": "--max-retries",
}


def make_executor(
    options: ExecutorOptions | None = None, *, plugins: Sequence[str] = (), device: str = "auto"
) -> Executor:
    """The executor ``options.name`` with the settings given, validated before any work: a setting the
    executor does not take is refused with the executor that takes it."""
    options = options or ExecutorOptions()
    cls = EXECUTORS.get(options.name)
    given = options.given()
    accepted = tuple(getattr(cls, "options", ()))
    for key in given:
        if key not in accepted:
            owners = [n for n in EXECUTORS.names() if key in getattr(EXECUTORS.get(n), "options", ())]
            flag = FLAGS.get(key, key)
            where = f"--executor {owners[0]}" if owners else "another executor"
            raise VicinalError(f"{flag} applies only to {where}; the {options.name} executor takes no {flag}")
    if cls is LocalExecutor:
        return LocalExecutor()
    return cls(**given, plugins=list(plugins), device=device)
