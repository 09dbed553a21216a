"""What runs a plan's jobs, by name: ``local`` (this process, one run after another: the default) and
``ray`` (one Ray task per run, on a local or an existing cluster). Third-party executors register under
the ``vicinal.executors`` entry-point group.

An executor is a class with ``name``, ``describe()`` and ``run(plan, rd, jobs)`` (the protocol is
:class:`vicinal.runner.Executor`), constructed with the options it declares in ``options`` plus
``plugins`` and ``device``. :func:`make_executor` refuses an option the chosen executor does not take, so
``--address`` without ``--executor ray`` is an error rather than silently ignored. Nothing here imports
Ray: the Ray executor imports it when it runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vicinal.errors import VicinalError
from vicinal.ray_executor import RayExecutor
from vicinal.registry import Registry
from vicinal.runner import Executor, LocalExecutor

EXECUTORS: Registry[type] = Registry("executor", entry_point_group="vicinal.executors")
EXECUTORS.add("local", LocalExecutor)
EXECUTORS.add("ray", RayExecutor)

#: How each executor option is written on the command line (errors name the flag a user typed).
FLAGS = {
    "address": "--address",
    "gpus_per_run": "--gpus-per-run",
    "cpus_per_run": "--cpus-per-run",
    "max_retries": "--max-retries",
}


def make_executor(
    name: str = "local", *, plugins: Sequence[str] = (), device: str = "auto", **options: Any
) -> Executor:
    """The executor ``name`` with ``options`` (those left ``None`` are not given), validated before any
    work: an option the executor does not take is refused with the executor that takes it."""
    cls = EXECUTORS.get(name)
    given = {k: v for k, v in options.items() if v is not None}
    accepted = tuple(getattr(cls, "options", ()))
    for key in given:
        if key not in accepted:
            owners = [n for n in EXECUTORS.names() if key in getattr(EXECUTORS.get(n), "options", ())]
            flag = FLAGS.get(key, key)
            where = f"--executor {owners[0]}" if owners else "another executor"
            raise VicinalError(f"{flag} applies only to {where}; the {name} executor takes no {flag}")
    if cls is LocalExecutor:
        return LocalExecutor()
    return cls(**given, plugins=list(plugins), device=device)
