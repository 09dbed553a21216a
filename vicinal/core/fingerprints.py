"""Code fingerprints: which source produced a number, so a result is reused only with the code that made it.

A component (a method, model, dataset loader, evaluator, or the training loop itself) is fingerprinted by
the source files it is defined in **and every module of its own package or of vicinal that it imports**,
followed transitively through the import statements (read with :mod:`ast`, nothing is executed). Editing
the code of any of those files — a plugin's method, vicinal's training loop, a helper it calls — changes the
fingerprint; editing a renderer (leaderboard, report) does not, because no number depends on it. Nor do
comments, docstrings or layout (line breaks, spacing, quotes, parentheses, ``1.0`` for ``1.``): a file is
hashed as its syntax tree (:func:`code_digest`), so a plugin author who tidies a file keeps the rows and
results of the code that made them.

Why source hashes rather than the git commit: they also cover a dirty checkout file by file, installed
releases (no git at all), ``--plugin`` files outside any repository, and they do not invalidate results
when an unrelated file changes. The commit (``+dirty`` with local changes) is recorded beside them.

What a fingerprint cannot see: code reached without an import statement in a tracked package (e.g. a
module imported by a string name, or a third-party library's own code — its version is recorded in the
result's environment instead).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import sys
from functools import cache
from importlib.metadata import packages_distributions, version
from pathlib import Path
from typing import Any

from vicinal._version import __version__

#: Top-level packages whose source is followed into: vicinal's own, plus the component's (added per call).
_VICINAL = "vicinal"


def vicinal_version() -> str:
    return __version__


@cache
def _module_file(name: str) -> Path | None:
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None)
    if file is None:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            return None
        file = spec.origin if spec is not None else None
    if not file or not str(file).endswith(".py"):
        return None
    return Path(file)


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _imports(module: str, tops: frozenset[str]) -> set[str]:
    """The modules of ``tops`` that ``module``'s source imports (anywhere in the file, lazy imports too)."""
    path = _module_file(module)
    if path is None:
        return set()
    tree = ast.parse(path.read_bytes(), str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node, module, is_package)
            if target.split(".")[0] not in tops:
                continue
            for alias in node.names:
                # `from pkg import name`: name is a submodule, or an object defined in some module; follow
                # the object to where it is defined rather than the whole package's __init__.
                sub = f"{target}.{alias.name}"
                if _module_file(sub) is not None:
                    found.add(sub)
                    continue
                obj = getattr(sys.modules.get(target), alias.name, None)
                defined_in = getattr(obj, "__module__", None)
                found.add(defined_in if isinstance(defined_in, str) else target)
    return {m for m in found if m.split(".")[0] in tops}


#: Nodes whose body may open with a docstring.
_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _canonical(node: Any) -> str:
    """A syntax tree as text: node types and fields, no positions, docstrings left out. Hand-written
    rather than :func:`ast.dump` because that one's text changes between Python versions (3.13 leaves
    empty fields out); fields that are None or empty are left out here, so a field a later Python adds
    (``type_params``) does not change the text of code that does not use it."""
    if isinstance(node, ast.AST):
        parts = []
        for name, value in ast.iter_fields(node):
            if name == "body" and isinstance(node, _DOCUMENTED) and ast.get_docstring(node, clean=False):
                value = value[1:]
            if value is None or (isinstance(value, list) and not value):
                continue
            parts.append(f"{name}={_canonical(value)}")
        return f"{type(node).__name__}({','.join(parts)})"
    if isinstance(node, list):
        return "[" + ",".join(_canonical(v) for v in node) + "]"
    return repr(node)


def code_digest(path: Path) -> str:
    """sha256 of a Python file's code: its syntax tree without comments, docstrings or layout, which no
    number depends on."""
    tree = ast.parse(path.read_bytes(), str(path))
    return hashlib.sha256(_canonical(tree).encode()).hexdigest()


def _closure(roots: tuple[str, ...], tops: frozenset[str]) -> dict[str, str]:
    """``{module: sha256 of its source}`` for the roots and everything of ``tops`` they import."""
    seen: dict[str, str] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_file(name)
        if path is None:
            continue
        seen[name] = code_digest(path)
        todo.extend(_imports(name, tops) - set(seen))
    return seen


@cache
def _distribution(top: str) -> dict[str, str] | None:
    """The installed distribution that provides the top-level package ``top``, if any."""
    names = packages_distributions().get(top) or []
    if not names:
        return None
    try:
        return {"name": names[0], "version": version(names[0])}
    except Exception:
        return None


def fingerprint(*objects: Any) -> dict[str, Any]:
    """The code identity of the modules defining ``objects`` (classes, functions or module names): a short
    combined hash, the hashed files, and the distribution that ships them (for plugins)."""
    roots = tuple(
        o if isinstance(o, str) else getattr(o, "__module__", None) or inspect.getmodule(o).__name__
        for o in objects
    )
    tops = frozenset({_VICINAL, *(r.split(".")[0] for r in roots)})
    files = _closure(roots, tops)
    digest = hashlib.sha256("".join(f"{k}={v};" for k, v in sorted(files.items())).encode()).hexdigest()
    out: dict[str, Any] = {
        "module": roots[0],
        "fingerprint": digest[:16],
        "files": {k: v[:16] for k, v in sorted(files.items())},
    }
    top = roots[0].split(".")[0]
    if top != _VICINAL:  # a plugin: say which distribution ships it, or which file it is
        dist = _distribution(top)
        if dist is not None:
            out["distribution"] = dist
        elif (origin := _module_file(roots[0])) is not None:
            out["file"] = str(origin)
    return out


def short(code: dict[str, Any] | None) -> str:
    """The fingerprint as shown to people (leaderboard labels, reuse messages)."""
    return (code or {}).get("fingerprint", "?")[:8]
