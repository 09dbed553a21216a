"""Name → factory registries (methods, evaluators, models, datasets), in the spirit of timm's.

Built-in entries live in a package, one file per entry with a decorator in each; third-party ones come
through an entry-point group or an explicit plugin path. The built-in files are *indexed* rather than
imported when a registry is first asked: their ``@register_<kind>("name")`` decorators are read from the
source (:mod:`ast`), and a module is imported only when one of its entries is used. So listing the
methods, or running only the clean evaluator, does not import torch, VAEs, scipy or foolbox. A file that
registers in a way the index cannot read (a computed name, a call outside a decorator) is imported at
discovery, as before.
"""

from __future__ import annotations

import ast
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
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Generic, TypeVar

from vicinal.core.errors import VicinalError
from vicinal.core.names import check_name

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


@dataclass(frozen=True)
class IndexEntry:
    """A built-in entry known from its module's source, not yet imported."""

    module: str
    qualname: str
    #: The class's string attributes written as literals in its body (or a base class's in the same
    #: file), for listings that need no import.
    attrs: dict[str, str] = field(default_factory=dict)


def _decorator_name(node: ast.expr) -> str | None:
    func = node.func if isinstance(node, ast.Call) else None
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _literal_attrs(cls: ast.ClassDef, known: dict[str, dict[str, str]]) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for base in cls.bases:  # a base class from the same file passes its literals on
        if isinstance(base, ast.Name) and base.id in known:
            attrs.update(known[base.id])
    for stmt in cls.body:
        if not (isinstance(stmt, ast.Assign | ast.AnnAssign) and isinstance(stmt.value, ast.Constant)):
            continue
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        for target in targets:
            if isinstance(target, ast.Name) and isinstance(stmt.value.value, str):
                attrs[target.id] = stmt.value.value
    return attrs


def index_module(source: str, module: str, decorator: str) -> dict[str, IndexEntry] | None:
    """The entries a module registers with ``@decorator("name")`` on top-level classes or functions, read
    from its source; None when it also calls ``decorator`` in a way that cannot be read without running
    it (the module must then be imported to know what it registers)."""
    tree = ast.parse(source)
    found: dict[str, IndexEntry] = {}
    literals: dict[str, dict[str, str]] = {}
    static_calls = 0
    for node in tree.body:
        if not isinstance(node, ast.ClassDef | ast.FunctionDef):
            continue
        if isinstance(node, ast.ClassDef):
            literals[node.name] = _literal_attrs(node, literals)
        for dec in node.decorator_list:
            if _decorator_name(dec) != decorator:
                continue
            args = dec.args
            if len(args) != 1 or dec.keywords or not isinstance(args[0], ast.Constant):
                return None
            if not isinstance(args[0].value, str) or args[0].value in found:
                return None
            static_calls += 1
            found[args[0].value] = IndexEntry(module, node.name, literals.get(node.name, {}))
    calls = sum(1 for n in ast.walk(tree) if isinstance(n, ast.Call) and _decorator_name(n) == decorator)
    return found if calls == static_calls else None


class Registry(Generic[T]):
    """Maps names to registered objects; fills itself lazily from a package and an entry-point group."""

    def __init__(
        self,
        kind: str,
        builtin_package: str | None = None,
        entry_point_group: str | None = None,
        decorator: str | None = None,
    ):
        self.kind = kind
        self._builtin_package = builtin_package
        self._entry_point_group = entry_point_group
        #: The decorator the built-in files register with (``register_method``): what the index reads.
        self._decorator = decorator or f"register_{kind}"
        self._items: dict[str, T] = {}
        #: Built-in entries indexed from source and not imported yet.
        self._index: dict[str, IndexEntry] = {}
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
        self._index.pop(name, None)
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
                    self._index_or_import(f"{self._builtin_package}.{info.name}", info)
        if self._entry_point_group:
            for ep in entry_points(group=self._entry_point_group):
                try:
                    ep.load()
                except VicinalError:
                    raise
                except Exception as exc:  # a broken third-party plugin must not take the built-ins down
                    log.warning("could not load %s plugin %r (%s): %s", self.kind, ep.name, ep.value, exc)

    def _index_or_import(self, module: str, info: pkgutil.ModuleInfo) -> None:
        entries = None
        path = Path(getattr(info.module_finder, "path", "")) / f"{info.name}.py"
        if not info.ispkg and path.is_file():
            try:
                entries = index_module(path.read_text(encoding="utf-8"), module, self._decorator)
            except (SyntaxError, UnicodeDecodeError, OSError):
                entries = None  # importing it gives the real error
        if entries is None:
            importlib.import_module(module)
            return
        for name, entry in entries.items():
            if name not in self._items:  # an entry already imported (or a plugin's) is not shadowed
                self._index[name] = entry
            elif self._origins[name] != f"{entry.module}.{entry.qualname}":
                self._load(entry)  # the same name from two places: importing records the clash

    def _load(self, entry: IndexEntry) -> None:
        for name in [n for n, e in self._index.items() if e.module == entry.module]:
            del self._index[name]  # the import registers them (or fails, and then they are not there)
        importlib.import_module(entry.module)

    def get(self, name: str) -> T:
        self._discover()
        if name in self._index:
            self._load(self._index[name])
        if name in self._conflicts:
            raise VicinalError(
                f"{self.kind} {name!r} is registered twice: by {' and by '.join(self._conflicts[name])}. "
                f"Rename one of them (or leave out the plugin that redefines {name!r})."
            )
        try:
            return self._items[name]
        except KeyError:
            known = sorted({*self._items, *self._index})
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise VicinalError(
                f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(known)}. One defined in a plugin "
                "file or module is known once loaded: --plugin FILE (plugins=[…] from Python)."
            ) from None

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style pattern (``"mix*"``), sorted; a plain word without
        wildcards matches as a substring (``"mix"`` finds every mixup)."""
        self._discover()
        if not any(c in pattern for c in "*?["):
            pattern = f"*{pattern}*"
        return sorted(n for n in {*self._items, *self._index} if fnmatch.fnmatchcase(n, pattern))

    def attributes(self, name: str, attrs: tuple[str, ...]) -> dict[str, str]:
        """String attributes of an entry (``summary``, ``mixes_in``): from the index when its source
        states them all as literals, else from the imported object. Raises like :meth:`get`."""
        self._discover()
        entry = self._index.get(name)
        if entry is not None and name not in self._items and all(a in entry.attrs for a in attrs):
            return {a: entry.attrs[a] for a in attrs}
        obj = self.get(name)
        return {a: str(getattr(obj, a, "")) for a in attrs}

    def builtin(self, name: str) -> bool:
        """Whether the entry is one of vicinal's own (its built-in package), not a plugin's; known
        without importing it."""
        self._discover()
        if name in self._index and name not in self._items:
            return True
        prefix = f"{self._builtin_package}." if self._builtin_package else None
        return prefix is not None and self._origins.get(name, "").startswith(prefix)

    def origin(self, name: str) -> str:
        self.get(name)
        return self._origins[name]

    def __contains__(self, name: str) -> bool:
        self._discover()
        return name in self._items or name in self._index

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
