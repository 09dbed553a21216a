"""Import paths of vicinal 0.1, kept working for one version (until 0.3) through one table.

0.2 moved vicinal's modules into subpackages by concern (``docs/architecture.md``). A plugin or script
written against 0.1 keeps working unchanged: importing an old path gives the module at its new home — the
same module object, so registries and ``isinstance`` checks are shared — and warns once per old path with
a :class:`FutureWarning` naming the new one (shown to users by default, unlike a DeprecationWarning raised
from a plugin's module).

Three old modules became packages of the same name, ``vicinal.training`` (the training loop),
``vicinal.evaluation`` (the evaluator interface) and ``vicinal.external`` (evaluating given models): their
old names are served by the packages' ``__getattr__`` from :data:`MOVED_NAMES`. ``vicinal.leaderboard``
and ``vicinal.compare`` are the Python API's functions now (their modules are :mod:`vicinal.board.boards`
and :mod:`vicinal.board.compare`), so those two old module paths are not served: importing a module would
replace the function.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import warnings
from types import ModuleType
from typing import Any

#: Old module path → new module path.
MOVED: dict[str, str] = {
    "vicinal.allocator": "vicinal.host.allocator",
    "vicinal.augment": "vicinal.training.augment",
    "vicinal.calibration": "vicinal.evaluation.calibration_metrics",
    "vicinal.console": "vicinal.cli.console",
    "vicinal.corrupted": "vicinal.data.corrupted",
    "vicinal.datasets": "vicinal.data.datasets",
    "vicinal.declarations": "vicinal.store.declarations",
    "vicinal.derived": "vicinal.board.derived",
    "vicinal.download": "vicinal.data.download",
    "vicinal.eps": "vicinal.evaluation.radii",
    "vicinal.errors": "vicinal.core.errors",
    "vicinal.examples": "vicinal.store.outcomes",
    "vicinal.executors": "vicinal.execution.executors",
    "vicinal.formats": "vicinal.board.formats",
    "vicinal.forwarding": "vicinal.execution.forwarding",
    "vicinal.grouping": "vicinal.board.grouping",
    "vicinal.hparams": "vicinal.core.hparams",
    "vicinal.html": "vicinal.board.html",
    "vicinal.identity": "vicinal.core.fingerprints",
    "vicinal.io": "vicinal.core.io",
    "vicinal.jobs": "vicinal.execution.jobs",
    "vicinal.method": "vicinal.training.method",
    "vicinal.models": "vicinal.training.models",
    "vicinal.names": "vicinal.core.names",
    "vicinal.paired": "vicinal.board.paired",
    "vicinal.plots": "vicinal.core.plots",
    "vicinal.ray_executor": "vicinal.execution.ray",
    "vicinal.registry": "vicinal.core.registry",
    "vicinal.relative": "vicinal.board.relative",
    "vicinal.report": "vicinal.board.report",
    "vicinal.reporting": "vicinal.core.reporting",
    "vicinal.result_index": "vicinal.store.index",
    "vicinal.results": "vicinal.store.results",
    "vicinal.rng": "vicinal.training.rng",
    "vicinal.runner": "vicinal.execution.plan",
    "vicinal.startup": "vicinal.host.startup",
    "vicinal.suite": "vicinal.execution.suite",
    "vicinal.threads": "vicinal.host.threads",
    "vicinal.vae": "vicinal.methods.vae",
}

#: Names of an old module whose path is now a package: package → {name: the module that defines it now}.
MOVED_NAMES: dict[str, dict[str, str]] = {
    "vicinal.training": {
        name: "vicinal.training.loop"
        for name in (
            "PROGRESS_EVERY_S",
            "TrainSummary",
            "lr_at",
            "make_optimizer",
            "read_checkpoint",
            "train",
        )
    },
    "vicinal.evaluation": {
        name: "vicinal.evaluation.evaluator"
        for name in (
            "EVALUATORS",
            "EXAMPLES",
            "EvalContext",
            "Evaluator",
            "register_evaluator",
            "seeded_subset",
        )
    },
    "vicinal.external": {
        name: "vicinal.external.given"
        for name in (
            "GivenModel",
            "check_evaluated_name",
            "evaluate_given",
            "file_sha256",
            "from_module",
            "load_checkpoint",
            "parse_normalize",
            "probe",
            "weights_sha256",
        )
    },
}

_warned: set[str] = set()


def _internal(frame: Any) -> bool:
    name = frame.f_code.co_filename
    return "importlib" in name and "_bootstrap" in name


def _served(frame: Any) -> bool:
    """A package's ``__getattr__`` serving an old name (``vicinal/training/__init__.py``, …)."""
    return frame.f_code.co_name == "__getattr__" and frame.f_globals.get("__name__") in MOVED_NAMES


def _warn(old: str, new: str) -> None:
    if old in _warned:
        return
    _warned.add(old)
    # The warning points at the line that used the old path: the first frame outside this file, the
    # import machinery and a package's __getattr__. warnings itself passes over importlib's frames when it
    # counts ``stacklevel``, so only the others are counted.
    level, frame = 1, sys._getframe(0)
    while frame is not None and (_internal(frame) or frame.f_code.co_filename == __file__ or _served(frame)):
        if not _internal(frame):
            level += 1
        frame = frame.f_back
    warnings.warn(
        f"{old} moved to {new} in vicinal 0.2; the old path works until 0.3 (see CHANGELOG.md)",
        FutureWarning,
        stacklevel=level,
    )


class _OldPaths:
    """Finds an old module path and loads it as the new module (the same object): a meta path finder and
    its loader, by protocol (subclassing importlib.abc would import importlib.resources, ~0.1 s, into every
    ``import vicinal``)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: Any) -> ModuleType:
        _warn(spec.name, MOVED[spec.name])
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        pass  # the module was executed under its new name


def moved_name(package: str, name: str) -> Any:
    """An old module's ``name`` served from a package of the same path (for the package's ``__getattr__``);
    AttributeError for any other name, as a module would raise."""
    home = MOVED_NAMES.get(package, {}).get(name)
    if home is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    _warn(f"{package}.{name}", f"{home}.{name}")
    return getattr(importlib.import_module(home), name)


def install() -> None:
    """Put the old-path finder on ``sys.meta_path`` (once; after the standard finders, so it is consulted
    only for names no file provides)."""
    if not any(isinstance(f, _OldPaths) for f in sys.meta_path):
        sys.meta_path.append(_OldPaths())
