"""Name → factory registries (methods, evaluators, models, datasets), in the spirit of timm's.

Built-in entries are discovered by importing every module of a package (one file per entry, a
decorator in each) or one module, third-party ones through an entry-point group or an explicit plugin path.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import hashlib
import importlib
import importlib.util
import logging
import pkgutil
import re
import sys
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Generic, TypeVar

from vicinal.errors import VicinalError
from vicinal.names import check_name

T = TypeVar("T")
log = logging.getLogger("vicinal")


def _origin(obj: object) -> str:
    """Where an object was defined, as people can find it: ``module.Qualname`` plus the file of a plugin
    loaded from a path (its module name is generated)."""
    module = getattr(obj, "__module__", "?")
    where = f"{module}.{getattr(obj, '__qualname__', repr(obj))}"
    file = getattr(sys.modules.get(module), "__file__", None)
    if module.startswith("vicinal_plugin_") and file:
        where += f" (plugin file {file})"
    return where


class Registry(Generic[T]):
    """Maps names to registered objects; fills itself lazily from a package and an entry-point group."""

    def __init__(self, kind: str, builtin_package: str | None = None, entry_point_group: str | None = None):
        self.kind = kind
        self._builtin_package = builtin_package
        self._entry_point_group = entry_point_group
        self._items: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        #: Names registered twice by different code: an error when used, not when registered, so that one
        #: plugin clashing with a built-in cannot take down commands that never touch that name.
        self._conflicts: dict[str, list[str]] = {}
        self._discovered = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@registry.register("name")`` records the decorated object under ``name``."""

        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        check_name(name, self.kind)
        origin = _origin(obj)
        existing = self._items.get(name)
        if existing is not None and existing is not obj:
            if origin != self._origins[name]:  # re-importing the same module is not a clash
                self._conflicts.setdefault(name, [self._origins[name]]).append(origin)
            return
        self._items[name] = obj
        self._origins[name] = origin

    def register_class(self, name: str, base: type) -> Callable[[type], type]:
        """Class decorator for a subclass of ``base`` with a ``Config`` dataclass (methods, evaluators):
        records it under ``name`` and gives it that ``name`` unless it sets its own."""

        def decorator(cls: type) -> type:
            if not (isinstance(cls, type) and issubclass(cls, base)):
                raise TypeError(f"{self.kind} {name!r} must be a subclass of vicinal.{base.__name__}")
            if not dataclasses.is_dataclass(getattr(cls, "Config", None)):
                raise TypeError(f"{cls.__qualname__}.Config must be a dataclass")
            self.add(name, cls)  # type: ignore[arg-type]
            if "name" not in cls.__dict__:
                cls.name = name  # type: ignore[attr-defined]
            return cls

        return decorator

    def remove(self, name: str) -> None:
        """Forget an entry (used by tests that register throw-away entries)."""
        self._items.pop(name, None)
        self._origins.pop(name, None)
        self._conflicts.pop(name, None)

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        if self._builtin_package:
            package = importlib.import_module(self._builtin_package)
            # A package: every module in it; a plain module registers its entries by being imported.
            for info in pkgutil.iter_modules(getattr(package, "__path__", [])):
                if not info.name.startswith("_"):
                    importlib.import_module(f"{self._builtin_package}.{info.name}")
        if self._entry_point_group:
            for ep in entry_points(group=self._entry_point_group):
                try:
                    ep.load()
                except VicinalError:
                    raise
                except Exception as exc:  # a broken third-party plugin must not take the built-ins down
                    log.warning("could not load %s plugin %r (%s): %s", self.kind, ep.name, ep.value, exc)

    def get(self, name: str) -> T:
        self._discover()
        if name in self._conflicts:
            raise VicinalError(
                f"{self.kind} {name!r} is registered twice: by {' and by '.join(self._conflicts[name])}. "
                f"Rename one of them (or leave out the plugin that redefines {name!r})."
            )
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._items), n=3, cutoff=0.5)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise VicinalError(
                f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(sorted(self._items))}."
            ) from None

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style pattern (``"mix*"``), sorted; a plain word without
        wildcards matches as a substring (``"mix"`` finds every mixup)."""
        self._discover()
        if not any(c in pattern for c in "*?["):
            pattern = f"*{pattern}*"
        return sorted(n for n in self._items if fnmatch.fnmatchcase(n, pattern))

    def origin(self, name: str) -> str:
        self.get(name)
        return self._origins[name]

    def __contains__(self, name: str) -> bool:
        self._discover()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


_loaded_plugins: dict[str, object] = {}


def load_plugin(spec: str) -> None:
    """Import a plugin given as a ``.py`` file path or a dotted module name; its decorators register it."""
    path = Path(spec).expanduser()
    if spec.endswith(".py") or path.exists():
        if not path.is_file():
            raise VicinalError(
                f"plugin file {spec!r} not found; pass a .py file or an importable module name"
            )
        key = str(path.resolve())
        if key in _loaded_plugins:
            return
        # A stable name (not Python's per-process string hash): it is part of the code fingerprint.
        digest = hashlib.sha256(key.encode()).hexdigest()[:8]
        module_name = f"vicinal_plugin_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{digest}"
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        if module_spec is None or module_spec.loader is None:
            raise VicinalError(f"cannot import plugin file {spec!r}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        try:
            module_spec.loader.exec_module(module)
        except VicinalError:
            sys.modules.pop(module_name, None)
            raise
        except Exception as exc:
            sys.modules.pop(module_name, None)
            raise VicinalError(f"plugin {spec!r} failed to import: {type(exc).__name__}: {exc}") from exc
        _loaded_plugins[key] = module
        return
    try:
        _loaded_plugins[spec] = importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        raise VicinalError(
            f"plugin {spec!r} is neither a .py file nor an importable module ({exc}); "
            "pass a path to a .py file or install the module"
        ) from exc
