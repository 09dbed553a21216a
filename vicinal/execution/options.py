"""A run's options as two objects, built once (by the command line or the Python API) and passed down
unchanged: :class:`Overrides` — *what* a run changes in its suite (``--methods``, ``--seeds``, ``--set``,
``--sweep``, …) — and :class:`RunOptions` — *how* it runs (device, folders, reuse, plugins, progress,
threads, and the executor's settings in :class:`ExecutorOptions`).

Nothing here validates names against registries or imports torch: :func:`vicinal.execution.plan.plan_run`
checks the suite once, after the overrides are applied, and the executor checks its own settings.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vicinal.core.errors import VicinalError
from vicinal.core.reporting import Reporter, SilentReporter

if TYPE_CHECKING:
    from vicinal.execution.suite import Suite


@dataclass(frozen=True)
class ExecutorOptions:
    """Where the runs execute: ``name`` (``local`` or ``ray``, or a plugin's) and the executor's own
    settings, ``None`` where not given (an executor refuses a setting it does not take)."""

    name: str = "local"
    address: str | None = None
    gpus_per_run: float | None = None
    cpus_per_run: float | None = None
    max_retries: int | None = None

    def __post_init__(self) -> None:
        # The executor checks its own ranges; a number that is not one (nan, inf) is refused for all.
        for name in ("gpus_per_run", "cpus_per_run", "max_retries"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                flag = "--" + name.replace("_", "-")
                raise VicinalError(f"{flag} {value}: give a finite number")

    def given(self) -> dict[str, Any]:
        """The settings given, by name (what the executor is constructed with)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name != "name" and getattr(self, f.name) is not None
        }


@dataclass
class RunOptions:
    """How a run runs. Folders left ``None`` are the defaults (``$VICINAL_RESULTS_DIR`` or ``./results``;
    ``$VICINAL_CACHE_DIR`` or ``~/.cache/vicinal``), resolved when the options are made."""

    device: str = "auto"
    data_dir: str | Path | None = None
    download: bool = False
    results_dir: str | Path | None = None
    cache_dir: str | Path | None = None
    force: bool = False
    plugins: tuple[str, ...] = ()
    reporter: Reporter = field(default_factory=SilentReporter)
    #: CPU threads for torch (``--threads``); None keeps the thread policy's default.
    threads: int | None = None
    executor: ExecutorOptions = field(default_factory=ExecutorOptions)

    def __post_init__(self) -> None:
        from vicinal.store.results import default_cache_dir, default_results_dir

        for name in ("results_dir", "cache_dir", "data_dir"):  # "" would be the current folder
            value = getattr(self, name)
            if isinstance(value, str) and not value.strip():
                raise VicinalError(f"{name} is empty; give a folder, or None for the default")

        self.results_dir = Path(self.results_dir) if self.results_dir is not None else default_results_dir()
        self.cache_dir = Path(self.cache_dir) if self.cache_dir is not None else default_cache_dir()
        self.data_dir = str(self.data_dir) if self.data_dir is not None else None
        self.plugins = tuple(self.plugins)


@dataclass(frozen=True)
class Overrides:
    """What a run changes in its suite. ``settings`` (``{"mixup": {"alpha": 0.4}}``, or
    ``{"evaluators.corruption": {...}}``) replace method and evaluator settings; ``sweep`` adds to the
    suite's ``[sweep]`` grid."""

    methods: Sequence[str] | None = None
    seeds: Sequence[int] | None = None
    epochs: int | None = None
    limit_train: int | None = None
    model: str | None = None
    evaluators: Sequence[str] | None = None
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    sweep: dict[str, dict[str, list[Any]]] = field(default_factory=dict)

    def apply(self, suite: Suite) -> Suite:
        """The suite with these overrides in place (each typed and range-checked as in a suite file;
        names are checked against the registries later, once, by the plan)."""
        if self.methods is not None:
            suite.override("run", methods=list(self.methods))
        if self.seeds is not None:
            suite.override("run", seeds=list(self.seeds))
        if self.epochs is not None:
            suite.override("train", epochs=self.epochs)
        if self.limit_train is not None:
            suite.override("data", limit_train=self.limit_train)
        if self.model is not None:
            suite.override("model", name=self.model)
        if self.evaluators is not None:
            # The names the file does not have are this run's: errors about them name the run, not the file.
            suite.overridden.update(f"[evaluators.{n}]" for n in self.evaluators if n not in suite.evaluators)
            suite.evaluators = {name: suite.evaluators.get(name, {}) for name in self.evaluators}
            suite.overridden.add("[evaluators]")
        return suite
