"""Commands import only what they use: reading results, rendering leaderboards and reports, listing methods
and every --help run without torch (2–3 s and ~600 MB of imports). Each check runs in a fresh interpreter
and looks at ``sys.modules``; how long start-up takes is a benchmark (test_startup_benchmarks.py), never
asserted here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from synthetic import write_suite

from vicinal.core.registry import index_module

HEAVY = ("torch", "scipy", "foolbox", "sklearn")

# Runs the real entry point in this interpreter, then reports which heavy packages got imported.
CLI = """
import json, sys
from vicinal.cli import main
sys.argv = ["vicinal", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit as exc:
    code = exc.code or 0
else:
    code = 0
print(json.dumps({"code": code, "heavy": sorted(m for m in HEAVY if m in sys.modules)}), file=sys.stderr)
""".replace("HEAVY", repr(HEAVY))


def _run(code: str, *args: str, cwd: Path) -> dict:
    env = {**os.environ, "VICINAL_CACHE_DIR": str(cwd / "cache")}  # the result index goes there
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, timeout=300, env=env
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stderr.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """A suite with clean, calibration, adversarial, linearity and corruption metrics and PNG artifacts."""
    root = tmp_path_factory.mktemp("results")
    write_suite(root)
    return root


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["leaderboard", "--help"],
        ["report", "--help"],
        ["methods", "--help"],
        ["run", "--help"],
        ["corrupt", "--help"],
        ["methods"],
        ["methods", "mix*"],
        ["evaluators"],
        ["suites"],
    ],
    ids=" ".join,
)
def test_help_and_listings_do_not_import_torch(args, tmp_path):
    got = _run(CLI, json.dumps(args), cwd=tmp_path)
    assert got == {"code": 0, "heavy": []}


@pytest.mark.parametrize(
    "args",
    [
        ["evaluate", "--checkpoint", "missing.pt", "--model", "small-cnn-16", "--name", "x"],
        ["evaluate", "--checkpoint", "missing.pt", "--name", "x"],
        ["evaluate", "--robustbench", "Standard", "--normalize", "suite"],
        ["run", "--suite", "nope"],
        ["run", "--seeds", "x"],
    ],
    ids=" ".join,
)
def test_argument_mistakes_are_reported_before_torch_loads(args, tmp_path):
    """A typo in a command's arguments is one error at once, not after torch, the suite and the data
    have loaded (seconds)."""
    got = _run(CLI, json.dumps([*args, "--quiet"]), cwd=tmp_path)
    assert got == {"code": 2, "heavy": []}


@pytest.mark.parametrize("fmt", ["table", "json", "html"])
def test_leaderboard_does_not_import_torch(results, fmt, tmp_path):
    got = _run(CLI, json.dumps(["leaderboard", "--results", str(results), "--format", fmt]), cwd=tmp_path)
    assert got == {"code": 0, "heavy": []}


@pytest.mark.parametrize("args", [[], ["toy", "c_acc/*"], ["pgd"]], ids=" ".join)
def test_listing_the_metrics_does_not_import_torch(results, args, tmp_path):
    got = _run(CLI, json.dumps(["metrics", "--results", str(results), *args]), cwd=tmp_path)
    assert got == {"code": 0, "heavy": []}


def test_report_does_not_import_torch(results, tmp_path):
    args = ["report", "--results", str(results), "--out", str(tmp_path / "r.html"), "--quiet"]
    got = _run(CLI, json.dumps(args), cwd=tmp_path)
    assert got == {"code": 0, "heavy": []}
    assert (tmp_path / "r.html").stat().st_size > 0


LIBRARY = """
import json, sys
from pathlib import Path
import vicinal
assert vicinal.__version__ and set(vicinal.__all__) <= set(dir(vicinal))
from vicinal import Method, VicinalError, hp, list_methods, register_method
from vicinal.board.formats import FORMATS
from vicinal.board.boards import build_boards
from vicinal.store.results import load_store
boards = build_boards(load_store(Path(sys.argv[1])))
texts = [FORMATS[f](boards) for f in FORMATS]
names = list_methods()
print(json.dumps({"methods": names, "heavy": sorted(m for m in HEAVY if m in sys.modules)}), file=sys.stderr)
""".replace("HEAVY", repr(HEAVY))


def test_the_library_reads_results_without_torch(results, tmp_path):
    got = _run(LIBRARY, str(results), cwd=tmp_path)
    assert got["heavy"] == [] and "erm" in got["methods"]


LISTED_VS_IMPORTED = """
import json, sys
from vicinal.training.method import METHODS, get_method
names = METHODS.names()
listed = {n: METHODS.attributes(n, ("mixes_in", "summary")) for n in names}
before = "torch" in sys.modules
imported = {n: {"mixes_in": get_method(n).mixes_in, "summary": get_method(n).summary} for n in names}
print(json.dumps({"same": listed == imported, "torch_before": before, "n": len(names)}), file=sys.stderr)
"""


def test_methods_are_listed_from_source_as_they_are_when_imported(tmp_path):
    """The method index reads ``mixes_in``/``summary`` from each file's source (no torch); importing the
    methods must give the same values."""
    got = _run(LISTED_VS_IMPORTED, cwd=tmp_path)
    assert got["same"] and not got["torch_before"] and got["n"] >= 6


def test_the_index_reads_decorators_and_literal_attributes():
    source = textwrap.dedent(
        """
        from vicinal.training.method import Method, register_method

        @register_method("a")
        class A(Method):
            mixes_in = "input"
            summary: str = "first"

        @register_method("b")
        class B(A):
            summary = "second"

        class Helper:
            pass
        """
    )
    index = index_module(source, "pkg.mod", "register_method")
    assert index is not None and set(index) == {"a", "b"}
    assert index["a"].attrs == {"mixes_in": "input", "summary": "first"} and index["a"].qualname == "A"
    assert index["b"].attrs == {"mixes_in": "input", "summary": "second"}  # inherited within the file


@pytest.mark.parametrize(
    "source",
    [
        "for n in ('a', 'b'):\n    register_method(n)(type(n, (), {}))",  # computed names
        "@register_method(NAME)\nclass A: pass",  # not a literal
        "@register_method('a')\nclass A: pass\nregister_method('b')(A)",  # a call besides the decorators
    ],
)
def test_registrations_the_index_cannot_read_make_it_import_the_module(source):
    assert index_module(source, "pkg.mod", "register_method") is None
