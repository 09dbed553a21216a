"""The published studies (results/zoo-digits-c/, issue 25; results/ood-cifar10-quick/, issue 26): their
files load and validate, render in every format and in the report without training anything, hold the
methods and seeds their README names, of one code, and each README is what studies/study_readme.py
writes from the files."""

from __future__ import annotations

import importlib.util
import json

import pytest
from helpers import ROOT, run_cli

import vicinal
from vicinal.store.results import load_store
from vicinal.training.method import METHODS

RESULTS = ROOT / "results"
#: Each published study: its methods and seeds.
STUDIES = {
    "zoo-digits-c": (METHODS.names(), [0, 1, 2]),
    "ood-cifar10-quick": (["erm", "manifold-mixup", "mixup", "regmixup", "varmixup"], [0, 1]),
}


@pytest.fixture(scope="module", params=list(STUDIES))
def study(request):
    return request.param


@pytest.fixture(scope="module")
def published(study):
    store = load_store(RESULTS / study)  # every file decoded and validated (no index)
    assert not store.skipped, store.skipped
    return store.results


def test_every_method_of_the_study_is_published_at_each_seed(study, published):
    methods, wanted = STUDIES[study]
    seeds = {}
    for r in published:
        seeds.setdefault(r.method, set()).add(r.seed)
    assert seeds == {name: set(wanted) for name in methods}


def test_the_files_are_of_one_code_and_one_configuration_per_method(published):
    by_method = {}
    for r in published:
        by_method.setdefault(r.method, set()).add(r.run_id.split("-")[0])
    assert all(len(ids) == 1 for ids in by_method.values()), by_method
    # one code per method: the fingerprints of the method, model, data loader and training loop, whatever
    # commit each file names (a study resumed at a later commit with the same code records both)
    codes = {}
    for r in published:
        codes.setdefault(r.method, set()).add(json.dumps(r.environment["code"], sort_keys=True))
    assert all(len(c) == 1 for c in codes.values()), sorted(m for m, c in codes.items() if len(c) > 1)


def test_the_board_renders_in_every_format_with_every_seed_in_a_row(study, isolated):
    methods, seeds = STUDIES[study]
    board = vicinal.leaderboard(RESULTS, suite=study)
    (suite,) = json.loads(board.to_json())
    assert sorted(row["method"] for row in suite["rows"]) == methods
    assert all(row["n"] == len(seeds) and row["seeds"] == seeds for row in suite["rows"])
    for text in (board.to_markdown(), board.to_csv(), board.to_latex(), board.to_html()):
        assert all(name in text for name in methods)
    done = run_cli("leaderboard", "--results", str(RESULTS), "--suite", study, "--width", "80", cwd=isolated)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr


def test_the_readme_compares_every_method_with_erm(study):
    """Its intervals are vicinal compare's (the last test renders the README again from the files)."""
    methods, _ = STUDIES[study]
    readme = (RESULTS / study / "README.md").read_text()
    for method in sorted(set(methods) - {"erm"}):
        assert f"### {method} vs erm · suite {study}" in readme, method
    assert readme.count("| 95% interval ") == len(methods) - 1


def test_the_report_renders_from_the_files_alone(study, isolated):
    out = isolated / "report.html"
    args = ["report", "--results", str(RESULTS), "--suite", study, "--out", str(out), "--quiet"]
    done = run_cli(*args, cwd=isolated)
    assert done.returncode == 0, done.stderr
    html = out.read_text()
    assert all(name in html for name in STUDIES[study][0])


def test_the_readme_is_what_the_script_writes_from_the_files(study, isolated):
    spec = importlib.util.spec_from_file_location("study_readme", ROOT / "studies" / "study_readme.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert (RESULTS / study / "README.md").read_text() == script.render(RESULTS, study)
