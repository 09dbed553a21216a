"""The package map of ``docs/architecture.md``, enforced: which package may import which, no import
cycle (lazy imports included), no private name imported from another module, and no module over ~450
lines without a reason in its docstring. Read from the source with :mod:`ast`; nothing is imported."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

DOC = ROOT / "docs" / "architecture.md"


def _allowed() -> dict[str, set[str]]:
    """Package → the packages it may import (besides itself), read from the package map's table in
    docs/architecture.md, so the page and the rule cannot drift apart."""
    allowed: dict[str, set[str]] = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not re.fullmatch(r"`vicinal\.\w+`( \(`\w+/`\))?", cells[0]):
            continue
        package = cells[0].split("`")[1].removeprefix("vicinal.")
        allowed[package] = set(re.findall(r"`([\w.]+)`", cells[2]))
    assert {"core", "board", "execution"} <= set(allowed), "the package map's table was not found"
    # Beside the map: the leaf modules, the suites' data package, the lazy old-path table that the two
    # packages that were modules in 0.1 use, and the package's own __init__ (the public names, lazily).
    allowed.update({"_version": set(), "_compat": set(), "suites": set()})
    for package in _compat_packages():
        allowed[package].add("_compat")
    allowed["vicinal"] = {
        "_compat",
        "_version",
        "api",
        "core",
        "data",
        "store",
        "training",
        "evaluation",
        "board",
    }
    return allowed


def _compat_packages() -> set[str]:
    """The packages that were modules in 0.1 and serve their old names through vicinal._compat."""
    source = (ROOT / "vicinal" / "_compat.py").read_text()
    block = source[source.index("MOVED_NAMES") :]
    return set(re.findall(r'^    "vicinal\.(\w+)": \{', block, re.M))


ALLOWED = _allowed()


def _modules() -> dict[str, Path]:
    """Module name → file, for the installed layout (``methods/`` is ``vicinal.methods``)."""
    found = {}
    for path in sorted((ROOT / "vicinal").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    for folder in ("methods", "suites"):
        for path in sorted((ROOT / folder).glob("*.py")):
            stem = path.stem
            found[f"vicinal.{folder}" if stem == "__init__" else f"vicinal.{folder}.{stem}"] = path
    return found


MODULES = _modules()


def _type_checking_only(tree: ast.Module) -> set[int]:
    """The ids of import nodes inside ``if TYPE_CHECKING:`` (annotations only: nothing runs them)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            found |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return found


def _imports(name: str, path: Path, runtime: bool = False) -> list[tuple[str, list[str], int]]:
    """(imported module, names imported from it, line) for every import in the file, lazy ones too
    (``runtime``: leaving out those only type checkers see)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skip = _type_checking_only(tree) if runtime else set()
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            out.append((target, [a.name for a in node.names], node.lineno))
    return [(t, n, line) for t, n, line in out if t == "vicinal" or t.startswith("vicinal.")]


def _resolve(target: str, names: list[str]) -> list[str]:
    """The vicinal modules an import statement reaches: ``from pkg import sub`` reaches ``pkg.sub``."""
    reached = []
    for n in names:
        if f"{target}.{n}" in MODULES:
            reached.append(f"{target}.{n}")
    if len(reached) < max(len(names), 1) and target in MODULES:
        reached.append(target)
    return reached


def _area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "vicinal"


#: Module → the modules it imports when it runs (lazy imports included, type-checking ones not).
GRAPH = {
    name: {m for t, names, _ in _imports(name, path, runtime=True) for m in _resolve(t, names) if m != name}
    for name, path in MODULES.items()
}


def test_every_package_is_on_the_map():
    assert {_area(m) for m in MODULES} <= set(ALLOWED), "a new package: add it to ALLOWED and the docs"


def test_layers():
    """Each package imports only the packages below it on the map (the board never reaches execution,
    core reaches nothing of vicinal, …)."""
    wrong = []
    for name, path in MODULES.items():
        area = _area(name)
        for target, names, line in _imports(name, path):
            for reached in _resolve(target, names):
                other = _area(reached)
                if other != area and other not in ALLOWED[area]:
                    wrong.append(f"{path.relative_to(ROOT)}:{line}: {area} imports {reached}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle():
    """No module reaches itself through the imports it runs, lazy ones included."""
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH.get(node, ())):
            # A package's __init__ is reached by importing any of its modules; it may name its own
            # submodules (lazily), which is not a cycle through the importer.
            if node.startswith(nxt + "."):
                continue
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)
    assert not cycles, "\n".join(" → ".join(c) for c in cycles)


def test_no_private_name_crosses_modules():
    wrong = []
    for name, path in MODULES.items():
        for target, names, line in _imports(name, path):
            for n in names:
                if n.startswith("_") and not n.startswith("__") and target != name:
                    wrong.append(f"{path.relative_to(ROOT)}:{line}: imports {target}.{n}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_long_modules_say_why(name):
    """A module over ~450 lines says in its docstring why it is one module ("Longer than most … because",
    "Long because …")."""
    path = MODULES[name]
    lines = path.read_text().count("\n")
    if lines <= 460:
        return
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert re.search(r"(?i)\blonger than most\b|\blong because\b", doc), (
        f"{path.relative_to(ROOT)}: {lines} lines"
    )
