"""Code fingerprints: which source produced a number, so a result is reused only with the code that made it.

A component (a method, model, dataset loader, evaluator, or the training loop itself) is fingerprinted by
the modules it is defined in and **every module they import**, followed transitively through the import
statements (read with :mod:`ast`, nothing is executed; lazy imports inside functions count too). What an
import leads to decides how it is covered:

* **source** — vicinal's own modules, the component's own package, and every other module of the user's
  own code: a module that is neither in the standard library nor shipped by an installed distribution (a
  helper beside a ``--plugin`` file, a package on ``PYTHONPATH``), or shipped by an *editable* install
  (``pip install -e``: its version does not pin its code). Each such module is hashed and followed.
* **distribution** — a third-party package (torch, numpy, …) counts by its distribution's name and
  version: upgrading it changes the fingerprint of every component that imports it.
* the standard library counts through the Python version recorded beside the result, not here.

Editing any followed module — a plugin's method, a helper module it imports, vicinal's training loop —
changes the fingerprint; editing a renderer (leaderboard, report) does not, because no number depends on
it.

**What is hashed**: each module's syntax tree, not its text, with docstrings left out. Comments, blank
lines, line breaks, quote style, parentheses and trailing commas never reach the tree, so reformatting a
file (by hand, black or ruff) or editing a comment keeps every result reusable. Docstrings are left out
for the same reason: they document, and a component whose numbers depend on a docstring (code reading
``__doc__``) is not one vicinal knows of — such code would have to be edited elsewhere to change its
numbers, and that edit is seen. The tree is written out field by field, leaving out empty fields, so
Python versions that only add fields (``type_params`` in 3.12) give the same hash.

Why source hashes rather than the git commit: they also cover a dirty checkout file by file, installed
releases (no git at all), ``--plugin`` files outside any repository, and they do not invalidate results
when an unrelated file changes. The commit (``+dirty`` with local changes) is recorded beside them.

What a fingerprint cannot see: code reached without an import statement (a module imported by a string
name, ``importlib.import_module(name)``), data files the code reads, and the code inside a third-party
package beyond its version (a package edited in place in site-packages).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import json
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from vicinal._version import __version__

#: vicinal's own top-level package: always followed by source (it ships as an ordinary distribution too).
_VICINAL = "vicinal"
#: Fields of a syntax tree that record how the code was written, not what it does (``u"x"`` vs ``"x"``).
_FORMATTING_FIELDS = frozenset({"kind", "type_comment", "type_ignores"})


def vicinal_version() -> str:
    return __version__


@cache
def _module_file(name: str) -> Path | None:
    """The file a module is loaded from (``.py`` or a compiled extension); None for built-in modules,
    namespace packages and names that cannot be found."""
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None)
    if file is None:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            return None
        file = spec.origin if spec is not None and spec.has_location else None
    if not file or file in ("built-in", "frozen") or not Path(file).is_file():
        return None
    return Path(file)


# ---------------------------------------------------------------- what a module's code is


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0] if body else None
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return body[1:]
    return body


def _canonical(node: Any, out: list[str]) -> None:
    """The tree written out: node types and their non-empty fields, never positions or formatting."""
    if isinstance(node, ast.AST):
        out.append(type(node).__name__)
        out.append("(")
        for name, value in ast.iter_fields(node):
            if name in _FORMATTING_FIELDS or value is None or (isinstance(value, list) and not value):
                continue
            if name == "body" and isinstance(
                node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
            ):
                value = _without_docstring(value)
            out.append(name)
            out.append("=")
            _canonical(value, out)
            out.append(",")
        out.append(")")
    elif isinstance(node, list):
        out.append("[")
        for item in node:
            _canonical(item, out)
            out.append(",")
        out.append("]")
    else:  # a constant or identifier; repr tells 1 from 1.0 from "1" and b"1"
        out.append(repr(node))


def code_hash(source: bytes | str) -> str:
    """SHA-256 of Python source as code: its syntax tree without docstrings (see the module docstring),
    so comments and formatting do not change it. Source that does not parse is hashed as bytes."""
    raw = source.encode() if isinstance(source, str) else source
    try:
        tree = ast.parse(raw)
    except (SyntaxError, ValueError):
        return hashlib.sha256(raw).hexdigest()
    parts: list[str] = []
    _canonical(tree, parts)
    return hashlib.sha256("".join(parts).encode()).hexdigest()


@cache
def _read(path: Path, stamp: tuple[int, int]) -> tuple[str, ast.Module | None]:
    """(hash, syntax tree) of a module file; ``stamp`` (mtime, size) keys the cache, so a file edited while
    this process runs is read again."""
    raw = path.read_bytes()
    if path.suffix != ".py":  # a compiled extension of the user's own: its bytes are its code
        return hashlib.sha256(raw).hexdigest(), None
    try:
        tree = ast.parse(raw, str(path))
    except (SyntaxError, ValueError):
        return hashlib.sha256(raw).hexdigest(), None
    return code_hash(raw), tree


def _module_code(path: Path) -> tuple[str, ast.Module | None]:
    stat = path.stat()
    return _read(path, (stat.st_mtime_ns, stat.st_size))


# ---------------------------------------------------------------- where an import leads


@dataclass(frozen=True)
class _Installed:
    name: str
    version: str
    editable: bool


def _metadata_folders() -> Iterator[tuple[str, Path]]:
    """(folder name, folder) of every distribution's metadata on ``sys.path``, in path order."""
    for entry in sys.path:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:
            continue
        for name in names:
            if name.endswith((".dist-info", ".egg-info")):
                yield name, Path(entry or ".") / name


def _tops_of(folder: Path) -> set[str]:
    """The top-level modules a distribution installs: its ``top_level.txt``, else the first part of each
    path its ``RECORD`` lists (as the standard library infers them)."""
    try:
        return {line.strip() for line in (folder / "top_level.txt").read_text().splitlines() if line.strip()}
    except OSError:
        pass
    tops: set[str] = set()
    try:
        lines = (folder / "RECORD").read_text().splitlines()
    except OSError:
        return tops
    for line in lines:
        path = line.split(",", 1)[0]
        first, slash, _ = path.partition("/")
        top = first if slash else inspect.getmodulename(first)
        if top and not top.endswith((".dist-info", ".data")) and top.isidentifier():
            tops.add(top)
    return tops


def _version_of(label: str, folder: Path) -> tuple[str, str]:
    """(name, version) from a metadata folder's name (``numpy-2.4.6.dist-info``: the wheel spec puts both
    there), or from ``PKG-INFO`` for an egg-info folder without a version in its name."""
    stem = label.rsplit(".", 1)[0]
    name, _, rest = stem.partition("-")
    version = rest.split("-py", 1)[0]
    if not version:
        try:
            for line in (folder / "PKG-INFO").read_text().splitlines():
                if line.startswith("Version:"):
                    version = line.partition(":")[2].strip()
                    break
        except OSError:
            pass
    return re.sub(r"[-_.]+", "-", name).lower(), version or "?"


@cache
def _installed() -> dict[str, list[_Installed]]:
    """``{top-level module: the distributions that install it}``, the first on ``sys.path`` first.

    Hand-written rather than :func:`importlib.metadata.packages_distributions`, which parses every
    distribution's metadata and builds a path object per line of every RECORD: 1–6 s for this project's
    ~160 distributions, on every run; reading the folder names and ``top_level.txt``/RECORD lines as text
    takes ~0.2 s."""
    out: dict[str, list[_Installed]] = {}
    for label, folder in _metadata_folders():
        name, version = _version_of(label, folder)
        try:
            direct = json.loads((folder / "direct_url.json").read_text())
            editable = bool(direct.get("dir_info", {}).get("editable"))
        except (OSError, ValueError, AttributeError):
            editable = False
        for top in _tops_of(folder):
            out.setdefault(top, []).append(_Installed(name, version, editable))
    return out


@cache
def _provider(top: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """How the top-level module ``top`` is covered: ``("source", ())`` (the user's own code),
    ``("distribution", ((name, version), …))`` or ``("none", ())`` (standard library, or not found)."""
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return "none", ()
    dists = _installed().get(top, [])
    if dists and not dists[0].editable:
        return "distribution", ((dists[0].name, dists[0].version),)
    if dists:
        return "source", ()
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return "none", ()
    return ("source", ()) if spec is not None else ("none", ())


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _imports(module: str, tree: ast.Module, path: Path) -> set[str]:
    """Every module ``module``'s source imports (anywhere in the file, lazy imports too), with a
    ``from pkg import name`` of an object followed to the module that defines it."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node, module, is_package)
            if not target:
                continue
            top = target.split(".")[0]
            if top != _VICINAL and _provider(top)[0] != "source":
                found.add(target)  # a distribution counts as a whole, the standard library not at all
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
    return found


def _closure(roots: tuple[str, ...], own: frozenset[str]) -> tuple[dict[str, str], dict[str, str]]:
    """``({module: hash of its code}, {distribution: version})`` for the roots and everything they
    import: modules of ``own`` (vicinal, the component's package) and of the user's other code by source,
    third-party packages by distribution."""
    seen: dict[str, str] = {}
    packages: dict[str, str] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        top = name.split(".")[0]
        if top not in own:
            kind, dists = _provider(top)
            if kind == "distribution":
                packages.update(dists)
                continue
            if kind != "source":
                continue
        path = _module_file(name)
        if path is None:
            continue
        digest, tree = _module_code(path)
        seen[name] = digest
        if tree is not None:
            todo.extend(_imports(name, tree, path) - set(seen))
    return seen, packages


def _distribution(top: str) -> dict[str, str] | None:
    """The installed distribution that provides the top-level package ``top``, if any."""
    dists = _installed().get(top)
    return {"name": dists[0].name, "version": dists[0].version} if dists else None


def fingerprint(*objects: Any) -> dict[str, Any]:
    """The code identity of the modules defining ``objects`` (classes, functions or module names): a short
    combined hash, the hashed modules, the third-party distributions they import (name and version), and
    the distribution or file that ships a plugin."""
    roots = tuple(
        o if isinstance(o, str) else getattr(o, "__module__", None) or inspect.getmodule(o).__name__
        for o in objects
    )
    own = frozenset({_VICINAL, *(r.split(".")[0] for r in roots)})
    files, packages = _closure(roots, own)
    identity = "".join(f"{k}={v};" for k, v in sorted(files.items()))
    identity += "".join(f"package {k}=={v};" for k, v in sorted(packages.items()))
    digest = hashlib.sha256(identity.encode()).hexdigest()
    out: dict[str, Any] = {
        "module": roots[0],
        "fingerprint": digest[:16],
        "files": {k: v[:16] for k, v in sorted(files.items())},
        "packages": dict(sorted(packages.items())),
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
