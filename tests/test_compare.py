"""``vicinal compare``, the leaderboard's separated-best marking and the report's comparison with the
baseline, on result files with per-example outcomes as the runner writes them (simulated predictions)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import shutil

import numpy as np
import pytest
from helpers import run_cli
from scipy import stats
from synthetic import make_result

from vicinal import api
from vicinal.board.boards import build_boards
from vicinal.board.formats import FORMATS, latex_escape
from vicinal.board.report import build_report
from vicinal.board.text import format_cell
from vicinal.evaluation.calibration_metrics import _netcal
from vicinal.evaluation.evaluator import EXAMPLES
from vicinal.store.outcomes import ExampleRecorder, Examples
from vicinal.store.results import load_store

N = 1000


def _evaluators():
    from vicinal.evaluators.calibration import CalibrationEvaluator
    from vicinal.evaluators.clean import CleanEvaluator

    return [CleanEvaluator(), CalibrationEvaluator()]


def _outcomes(u: np.ndarray, threshold: float, flips: int, rng: np.random.Generator):
    """Correct where the shared difficulty u is below ``threshold``, ``flips`` examples flipped (the
    run's own luck), and a confidence that is higher where correct."""
    correct = u < threshold
    flipped = rng.choice(N, flips, replace=False)
    correct[flipped] = ~correct[flipped]
    confidence = np.where(correct, rng.uniform(0.55, 1.0, N), rng.uniform(0.3, 0.95, N))
    return correct, confidence


def write_store(root, runs: dict[str, list[float]], examples: bool = True, suite: str = "toy", seed: int = 0):
    """One result file per (method, seed) with ``acc`` and ``ece`` computed from simulated per-example
    outcomes on one shared test set (difficulty u), the outcomes beside it as the runner writes them."""
    rng = np.random.default_rng(seed)
    u = rng.random(N)
    space = Examples("toy test", "f" * 32, N, np.arange(N))
    ece_of = _netcal()[0]
    truth: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for i, (method, thresholds) in enumerate(runs.items()):
        run_id = f"{i:02d}" + "c" * 62
        folder = root / suite / method
        folder.mkdir(parents=True, exist_ok=True)
        for s, threshold in enumerate(thresholds):
            correct, confidence = _outcomes(u, threshold, 20, rng)
            truth.setdefault(method, []).append((correct, confidence))
            doc = make_result(suite, method, s, threshold, run_id, corruption=False, evaluators=_evaluators())
            doc["metrics"]["acc"] = float(correct.mean())
            doc["metrics"]["ece"] = float(ece_of(bins=15).measure(confidence, correct.astype(float)))
            doc["suite_spec"]["baseline"] = "erm"
            stem = f"{run_id[:12]}-seed{s}"
            if examples:
                rec = ExampleRecorder()
                rec.record("test", space, correct=correct, confidence=confidence)
                rec.statistic("acc", "mean", ["test"])
                rec.statistic("ece", "ece", ["test"], "confidence", 15)
                (folder / f"{stem}.examples.npz").write_bytes(rec.to_bytes())
                doc["artifacts"]["examples"] = dataclasses.replace(
                    EXAMPLES, file=f"{stem}.examples.npz"
                ).to_json()
            (folder / f"{stem}.json").write_text(json.dumps(doc))
    return truth


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    """mixup clearly above erm; varmixup the same model class as mixup, differing only by luck."""
    root = tmp_path_factory.mktemp("compare")
    truth = write_store(root, {"erm": [0.62, 0.63], "mixup": [0.80, 0.80], "varmixup": [0.80, 0.80]})
    return root, truth


def _acc(truth, method):
    return np.mean([c.mean() for c, _ in truth[method]])


# ---------------------------------------------------------------- best marking


def test_a_best_not_separated_from_the_runner_up_is_shown_tied_with_it(store_dir):
    root, _ = store_dir
    (board,) = build_boards(load_store(root), metrics=["acc", "ece", "nll"])
    rows = {r.method: r for r in board.rows}
    acc = board.marking["acc"]
    assert acc.rule == "interval" and not acc.separated and acc.difference.basis == "examples+seeds"
    assert acc.difference.low < 0 < acc.difference.high
    assert rows["mixup"].cells["acc"].tied and rows["varmixup"].cells["acc"].tied
    assert not rows["erm"].cells["acc"].tied and not any(r.cells["acc"].best for r in board.rows)
    # NLL has no per-example statistic in these files: the former rule, said so.
    assert (
        board.marking["nll"].rule == "precision" and "no per-example statistic" in board.marking["nll"].note
    )
    assert sum(r.cells["nll"].best for r in board.rows) >= 1


def test_a_separated_best_is_marked_alone(tmp_path):
    write_store(tmp_path, {"erm": [0.60, 0.61], "mixup": [0.80, 0.81], "cutmix": [0.70, 0.71]}, seed=1)
    (board,) = build_boards(load_store(tmp_path), metrics=["acc"])
    marks = {r.method: r.cells["acc"].mark for r in board.rows}
    assert marks == {"mixup": "best", "cutmix": "", "erm": ""}
    assert board.marking["acc"].separated and board.marking["acc"].runner_up == "cutmix"
    assert board.marking["acc"].difference.low > 0


def test_every_format_shows_the_marks_and_says_how_they_were_made(store_dir, tmp_path):
    root, _ = store_dir
    (board,) = build_boards(load_store(root), metrics=["acc", "nll"])
    out = {f: FORMATS[f]([board]) for f in FORMATS}
    tied = [r for r in board.rows if r.cells["acc"].tied]
    assert len(tied) == 2
    for row in tied:
        shown = format_cell(board, "acc", row.cells["acc"])
        assert f"*{shown}*" in out["markdown"] and f"**{shown}**" not in out["markdown"]
        assert rf"\textit{{{latex_escape(shown)}}}" in out["latex"]
        assert f'class="tied" data-metric="acc">{shown}</td>' in out["html"]
        assert "not separated from the runner-up" in out["html"]  # the hover text of a marked value
    for fmt in ("table", "markdown", "latex", "html"):
        text = " ".join(out[fmt].split())
        assert "not separated from the best (tied)" in text, fmt
        assert "at the displayed precision" in text and "NLL" in text, fmt  # the precision-rule column
    rows = list(csv.DictReader(io.StringIO(out["csv"])))
    assert sorted(r["acc_mark"] for r in rows) == ["", "tied", "tied"]
    assert "best-at-precision" in {r["nll_mark"] for r in rows}
    doc = json.loads(out["json"])[0]
    assert doc["marking"]["acc"]["rule"] == "interval" and doc["marking"]["acc"]["separated"] is False
    assert doc["marking"]["nll"]["rule"] == "precision"
    assert "tied" in doc["legend"] and sum(r["metrics"]["acc"]["tied"] for r in doc["rows"]) == 2


def test_without_colour_the_table_writes_the_marks_into_the_values_and_its_legend_says_so(store_dir):
    """Redirected to a file the table had no colour, hence no marks at all, under a legend that spoke of
    bold green and green. Without colour (a file, a pipe, NO_COLOR) the marks are in the text."""
    from rich.console import Console

    from vicinal.board.formats import print_boards, render_text

    root, _ = store_dir
    (board,) = build_boards(load_store(root), metrics=["acc", "nll"])
    tied = [format_cell(board, "acc", r.cells["acc"]) for r in board.rows if r.cells["acc"].tied]
    best_nll = [format_cell(board, "nll", r.cells["nll"]) for r in board.rows if r.cells["nll"].best]
    plain = format_cell(board, "acc", next(r.cells["acc"] for r in board.rows if not r.cells["acc"].mark))

    def printed(**console) -> str:
        out = Console(file=io.StringIO(), width=160, **console)
        print_boards(out, [board])
        return out.file.getvalue()

    for text in (render_text([board], 160), printed(), printed(force_terminal=True, no_color=True)):
        body = " ".join(text.split())
        assert len(tied) == 2 and all(f" *{t}* " in text for t in tied)
        assert best_nll and all(f"**{b}**" in text for b in best_nll)
        assert f"  {plain}  " in text  # unmarked values keep the marked ones' alignment
        assert "*x*: not separated from the best (tied)" in body and "**x** in NLL ↓" in body
        assert "green" not in body
    coloured = printed(force_terminal=True, color_system="truecolor")
    assert "\x1b[" in coloured and "*" not in coloured.replace("\x1b", "")
    assert "green: not separated from the best (tied)" in " ".join(coloured.split())

    cli = run_cli("leaderboard", "--results", str(root), "--metrics", "acc,nll", cwd=root)
    assert cli.returncode == 0, cli.stderr
    assert all(f" *{t}* " in cli.stdout for t in tied) and "green" not in cli.stdout


def test_files_without_per_example_outcomes_keep_the_former_rule_and_say_so(tmp_path):
    write_store(tmp_path, {"erm": [0.62], "mixup": [0.80]}, examples=False)
    (board,) = build_boards(load_store(tmp_path), metrics=["acc", "ece"])
    assert {m.rule for m in board.marking.values()} == {"precision"}
    assert [r.method for r in board.rows if r.cells["acc"].best] == ["mixup"]
    assert "bold in every column: the best value at the displayed precision" in FORMATS["markdown"]([board])
    assert not any(c.tied for r in board.rows for c in r.cells.values())


def test_a_folder_of_older_result_files_renders_and_compares_with_one_message(tmp_path):
    """Result files written before per-example outcomes existed: the leaderboard renders as before, and
    compare gives every difference with the seed interval and says once, for both rows, why."""
    truth = write_store(tmp_path, {"erm": [0.62, 0.63], "mixup": [0.80, 0.80]}, examples=False)
    board = run_cli("leaderboard", "--results", str(tmp_path), "--width", "200", cwd=tmp_path)
    assert board.returncode == 0 and "Traceback" not in board.stderr, board.stderr
    assert "mixup" in board.stdout and "not tested for separation" in " ".join(board.stdout.split())
    out = run_cli("compare", "mixup", "erm", "--results", str(tmp_path), "--width", "200", cwd=tmp_path)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    text = " ".join(out.stdout.split())
    reason = "mixup and erm, every seed: no per-example file (written before vicinal stored one)"
    assert text.count(reason) == 1 and "seeds only (2 df)" in text
    acc = [c.mean() for c, _ in truth["mixup"]], [c.mean() for c, _ in truth["erm"]]
    expected = stats.ttest_ind(*acc, equal_var=True).confidence_interval(0.95)
    assert f"[{100 * expected.low:+.2f}, {100 * expected.high:+.2f}]" in text
    one = tmp_path / "one"
    write_store(one, {"erm": [0.62], "mixup": [0.80]}, examples=False)
    out = run_cli("compare", "mixup", "erm", "--results", str(one), "--width", "200", cwd=tmp_path)
    text = " ".join(out.stdout.split())
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert text.count("no interval: one seed each, and mixup and erm, every seed: no per-example file") == 1


# ---------------------------------------------------------------- vicinal compare


def test_compare_prints_each_difference_its_interval_and_a_verdict(store_dir):
    root, truth = store_dir
    out = run_cli(
        "compare",
        "mixup",
        "erm",
        "--suite",
        "toy",
        "--results",
        str(root),
        "--metrics",
        "acc,ece,nll",
        cwd=root,
    )
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    assert "mixup vs erm · suite toy · mixup: seeds 0, 1 · erm: seeds 0, 1" in text
    assert "mixup better" in text and "examples + seeds (2 df)" in text
    assert f"{100 * (_acc(truth, 'mixup') - _acc(truth, 'erm')):+.2f}" in text
    assert (
        "seed spread only" in text and "no per-example statistic is recorded for this metric (NLL ↓)" in text
    )
    assert "2000 resamples of the test examples" in text and "all 1000 toy test examples" in text
    doc = json.loads(
        run_cli("compare", "mixup", "varmixup", "--results", str(root), "--format", "json", cwd=root).stdout
    )
    acc = next(d for d in doc["differences"] if d["metric"] == "acc")
    assert acc["diff"] == pytest.approx(_acc(truth, "mixup") - _acc(truth, "varmixup"))
    assert acc["verdict"] == "no detectable difference" and acc["low"] < 0 < acc["high"]
    assert doc["resamples"] == 2000 and doc["a"]["seeds"] == [0, 1]


def test_the_compare_table_fits_80_columns_without_breaking_words(store_dir):
    root, _ = store_dir
    comparison = api.compare("mixup", "erm", results_dir=root, metrics=["all"], resamples=200)
    text = comparison.to_text(80)
    assert max(len(line) for line in text.splitlines()) <= 80
    words = {w for d in comparison.differences for w in d.verdict("mixup", "erm").split()}
    cells = " ".join(part.strip() for line in text.splitlines() for part in line.split("│"))
    assert words <= set(cells.split()), "a verdict word was folded"
    assert "examples" in cells.split() and any(w.startswith("[") for w in cells.split())


def test_compare_from_python_returns_the_numbers(store_dir):
    root, truth = store_dir
    comparison = api.compare("mixup", "erm", results_dir=root, metrics=["acc", "ece"], resamples=500, seed=3)
    acc, ece = comparison.differences
    assert acc.diff == pytest.approx(_acc(truth, "mixup") - _acc(truth, "erm"))
    assert acc.verdict("mixup", "erm") == "mixup better" and acc.basis == "examples+seeds"
    ece_a = [ece.a, ece.b]
    assert ece_a[0] == pytest.approx(np.mean([r.metrics["ece"] for r in comparison.a.results]))
    assert comparison.verdicts()["acc"] == "mixup better"
    assert "| acc % ↑" in comparison.to_markdown()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["mixup", "nope"], "no measured row 'nope' in suite toy; rows:"),
        (["mixup", "mixup"], "are the same row"),
        (["mixup", "erm", "--metrics", "acc,zzz"], "unknown metric"),
        (["mixup", "erm", "--suite", "other"], "no results for suite 'other'"),
        (["mixup", "erm", "--format", "pdf"], "choose table, markdown or json"),
    ],
)
def test_compare_refuses_bad_input_with_one_message(store_dir, args, message):
    root, _ = store_dir
    out = run_cli("compare", *args, "--results", str(root), cwd=root)
    assert out.returncode == 2 and message in " ".join(out.stderr.split()), out.stderr


def test_a_method_with_several_configurations_is_named_by_its_row_label(store_dir, tmp_path):
    root, _ = store_dir
    shutil.copytree(root, tmp_path / "r")
    extra = json.loads(next((tmp_path / "r" / "toy" / "mixup").glob("*seed0.json")).read_text())
    extra["run_id"] = extra["training_id"] = "9" * 64
    extra["method_info"]["hyperparameters"] = {"alpha": 0.4}
    (tmp_path / "r" / "toy" / "mixup" / "999999999999-seed0.json").write_text(json.dumps(extra))
    out = run_cli("compare", "mixup", "erm", "--results", str(tmp_path / "r"), cwd=tmp_path)
    assert out.returncode == 2 and "name one by its label" in out.stderr
    out = run_cli("compare", "mixup [run 999999]", "erm", "--results", str(tmp_path / "r"), cwd=tmp_path)
    assert out.returncode == 0 and "mixup [run 999999] vs erm" in " ".join(out.stdout.split()), out.stderr


# ---------------------------------------------------------------- the report


def test_the_report_compares_every_configuration_with_the_baseline(store_dir):
    root, truth = store_dir
    html = build_report(load_store(root))
    assert "<h3>Against the baseline (erm)</h3>" in html
    shown = f"{100 * (_acc(truth, 'mixup') - _acc(truth, 'erm')):+.2f} ["
    assert 'class="better" data-metric="acc" title="mixup better — paired bootstrap' in html
    assert shown in html and "2000 resamples of the test examples" in html
