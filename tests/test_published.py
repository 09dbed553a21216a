"""The published study (results/zoo-digits-c/, issue 25): its files load and validate, render in every
format and in the report without training anything, hold every built-in method at three seeds of the
code they name, and its README is what studies/zoo_readme.py writes from them."""

from __future__ import annotations

import importlib.util
import json

import pytest
from helpers import ROOT, run_cli

import vicinal
from vicinal.store.results import load_store
from vicinal.training.method import METHODS

RESULTS = ROOT / "results"
SUITE = "zoo-digits-c"


@pytest.fixture(scope="module")
def published():
    store = load_store(RESULTS / SUITE)  # every file decoded and validated (no index)
    assert not store.skipped, store.skipped
    return store.results


def test_every_builtin_method_is_published_at_three_seeds(published):
    seeds = {}
    for r in published:
        seeds.setdefault(r.method, set()).add(r.seed)
    assert seeds == {name: {0, 1, 2} for name in METHODS.names()}


def test_the_files_are_of_one_code_and_one_configuration_per_method(published):
    by_method = {}
    for r in published:
        by_method.setdefault(r.method, set()).add(r.run_id.split("-")[0])
    assert all(len(ids) == 1 for ids in by_method.values()), by_method
    assert len({r.environment.get("git_commit") for r in published}) == 1


def test_the_board_renders_in_every_format_with_three_seeds_a_row(isolated):
    board = vicinal.leaderboard(RESULTS, suite=SUITE)
    (suite,) = json.loads(board.to_json())
    assert sorted(row["method"] for row in suite["rows"]) == METHODS.names()
    assert all(row["n"] == 3 and row["seeds"] == [0, 1, 2] for row in suite["rows"])
    for text in (board.to_markdown(), board.to_csv(), board.to_latex(), board.to_html()):
        assert all(name in text for name in METHODS.names())
    done = run_cli("leaderboard", "--results", str(RESULTS), "--suite", SUITE, "--width", "80", cwd=isolated)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr


def test_the_readme_compares_every_method_with_erm():
    """Its intervals are vicinal compare's (the next test renders the README again from the files)."""
    readme = (RESULTS / SUITE / "README.md").read_text()
    for method in sorted(set(METHODS.names()) - {"erm"}):
        assert f"### {method} vs erm · suite {SUITE}" in readme, method
    assert readme.count("| 95% interval ") == len(METHODS.names()) - 1


def test_the_report_renders_from_the_files_alone(isolated):
    out = isolated / "report.html"
    args = ["report", "--results", str(RESULTS), "--suite", SUITE, "--out", str(out), "--quiet"]
    done = run_cli(*args, cwd=isolated)
    assert done.returncode == 0, done.stderr
    html = out.read_text()
    assert all(name in html for name in METHODS.names())


def test_the_readme_is_what_the_script_writes_from_the_files(isolated):
    spec = importlib.util.spec_from_file_location("zoo_readme", ROOT / "studies" / "zoo_readme.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert (RESULTS / SUITE / "README.md").read_text() == script.render(RESULTS)
