"""Leaderboard aggregation and labelling from result dicts (the store's contents)."""

import csv
import dataclasses
import io
import json
import math
import re
import shutil
import statistics
import subprocess

import pytest
from helpers import run_cli
from synthetic import EVIL, write_reported, write_suite

from vicinal.board.boards import build_boards
from vicinal.board.formats import (
    FORMATS,
    latex_escape,
    render_csv,
    render_json,
    render_latex,
    render_markdown,
)
from vicinal.board.text import format_cell
from vicinal.core.errors import VicinalError
from vicinal.store.declarations import MetricInfo
from vicinal.store.results import Result, Store, load_store, read_result

INFO = {
    "acc": MetricInfo("acc", True, percent=True),
    "ece": MetricInfo("ECE", False, percent=True, headline=False),
}


def _result(method, seed, acc, ece, run_id, code="c0de", created="2026-01-01", protocol=None, **hyper):
    return Result(
        suite="s",
        method=method,
        seed=seed,
        run_id=run_id,
        training_id="t-" + run_id,
        created=created,
        metrics={"acc": acc, "ece": ece},
        metric_info=INFO,
        protocol=protocol or {},
        training={"epochs": 3},
        data={"n_train": 100},
        method_info={"hyperparameters": hyper},
        environment={"code": {"vicinal": "0.1.0", "method": {"fingerprint": code}}},
    )


def test_mean_std_sorting_and_variant_labels():
    store = Store(
        [
            _result("mixup", 0, 0.80, 0.05, "aaa", alpha=1.0),
            _result("mixup", 1, 0.84, 0.07, "aaa", alpha=1.0),
            _result("mixup", 0, 0.70, 0.02, "bbb", alpha=0.2),
            _result("erm", 0, 0.90, 0.09, "ccc"),
        ],
        [],
    )
    (board,) = build_boards(store)
    assert [r.label for r in board.rows] == ["erm", "mixup [alpha=1.0]", "mixup [alpha=0.2]"]
    assert board.metrics == ["acc"]  # ECE is not a headline metric
    top = board.rows[1].cells["acc"]
    assert top.mean == pytest.approx(0.82) and top.std == pytest.approx(statistics.stdev([0.80, 0.84]))
    assert top.n == 2 and board.rows[0].cells["acc"].std is None
    (by_ece,) = build_boards(store, sort="ece", metrics=["acc", "ece"])
    assert by_ece.rows[0].label == "mixup [alpha=0.2]"  # lowest ECE first
    md = render_markdown([by_ece])
    assert "82.00 ± 2.83" in md and "ECE % ↓" in md


def test_rows_from_different_code_are_different_configurations_never_averaged():
    # Same settings, but the method's code changed between the runs: its training identity differs. The
    # newest code's row carries no code label; the older one says it is earlier code, and from when.
    store = Store(
        [
            _result("mixup", 0, 0.80, 0.05, "aaa", code="11111111aaaa", created="2026-03-01", alpha=1.0),
            _result("mixup", 0, 0.60, 0.05, "bbb", code="22222222bbbb", created="2026-01-05", alpha=1.0),
        ],
        [],
    )
    (board,) = build_boards(store)
    labels = {r.label: r.cells["acc"].mean for r in board.rows}
    assert labels == {"mixup": 0.80, "mixup [earlier code (vicinal 0.1.0, 2026-01-05)]": 0.60}
    assert all(r.cells["acc"].n == 1 for r in board.rows)


def test_latest_shows_each_configuration_at_its_newest_code_and_says_what_to_prune(tmp_path):
    """Every plugin edit added a leaderboard row of earlier code; --latest keeps each configuration's
    newest code only (another setting is another configuration and stays), and names the files left out."""
    from vicinal.store.results import write_result

    def run(method, seed, acc, run_id, code, created, **hyper):
        return _result(method, seed, acc, 0.05, run_id, code=code, created=created, **hyper)

    runs = {
        "mixup/new-seed0.json": run("mixup", 0, 0.80, "a", "1111aaaa", "2026-03-01", alpha=1.0),
        "mixup/new-seed1.json": run("mixup", 1, 0.82, "a", "1111aaaa", "2026-03-01", alpha=1.0),
        "mixup/old-seed0.json": run("mixup", 0, 0.60, "b", "2222bbbb", "2026-01-05", alpha=1.0),
        "mixup/older-seed0.json": run("mixup", 0, 0.50, "c", "3333cccc", "2026-01-01", alpha=1.0),
        # another setting: its own configuration, whose newest code is this one
        "mixup/alpha-seed0.json": run("mixup", 0, 0.70, "d", "2222bbbb", "2026-01-05", alpha=0.2),
        "erm/erm-seed0.json": run("erm", 0, 0.75, "e", "4444dddd", "2026-01-01"),
    }
    for name, result in runs.items():
        write_result(tmp_path / "s" / name, result)
    (every,) = build_boards(load_store(tmp_path))
    assert len(every.rows) == 5 and not every.hidden
    (latest,) = build_boards(load_store(tmp_path), latest=True)
    # alpha=0.2 was never run with the newest code: it stays, saying its code is earlier than alpha=1.0's
    assert sorted(r.label for r in latest.rows) == [
        "erm",
        "mixup [alpha=0.2, earlier code (vicinal 0.1.0, 2026-01-05)]",
        "mixup [alpha=1.0]",
    ]
    assert next(r for r in latest.rows if r.label == "mixup [alpha=1.0]").cells["acc"].n == 2
    assert [p.split("/s/")[1] for p in latest.hidden] == ["mixup/old-seed0.json", "mixup/older-seed0.json"]

    out = run_cli("leaderboard", "--results", str(tmp_path), "--latest", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "60.00" not in out.stdout and "50.00" not in out.stdout and "81.00 ± 1.41" in out.stdout
    assert "latest code only (--latest): each configuration at its newest code" in " ".join(
        out.stdout.split()
    )
    note = " ".join(out.stderr.split())
    assert "--latest left out the rows of earlier code (2 result file(s))" in note
    assert f"rm {tmp_path}/s/mixup/old-seed0.* {tmp_path}/s/mixup/older-seed0.*" in note
    doc = json.loads(
        run_cli(
            "leaderboard", "--results", str(tmp_path), "--latest", "--format", "json", cwd=tmp_path
        ).stdout
    )
    assert doc[0]["hidden"] == latest.hidden


def test_results_of_an_earlier_vicinal_are_labelled_as_such():
    """Moving modules (0.1 → 0.2) changes every fingerprint: the old rows say which version made them, and
    two earlier generations of the same day are told apart by their fingerprints."""
    old = _result("erm", 0, 0.80, 0.05, "aaa", code="11111111aaaa", created="2026-01-05T10:00", lr=0.1)
    older = _result("erm", 0, 0.79, 0.05, "bbb", code="33333333cccc", created="2026-01-05T09:00", lr=0.1)
    new = _result("erm", 0, 0.81, 0.05, "ccc", code="22222222bbbb", created="2026-02-01", lr=0.1)
    new.environment["code"]["vicinal"] = "0.2.0"
    (board,) = build_boards(Store([old, older, new], []))
    assert sorted(r.label for r in board.rows) == [
        "erm",
        "erm [earlier code (vicinal 0.1.0, 2026-01-05, method code 11111111)]",
        "erm [earlier code (vicinal 0.1.0, 2026-01-05, method code 33333333)]",
    ]


def test_an_evaluator_added_later_joins_the_row_instead_of_splitting_it():
    first = _result("erm", 0, 0.90, 0.09, "aaa", protocol={"clean": {"split": "test"}})
    first.training_id = "same"
    later = _result("erm", 0, 0.90, 0.09, "bbb", created="2026-02-01", protocol={"clean": {"split": "test"}})
    later.training_id = "same"
    later.metrics = {**later.metrics, "pgd": 0.5}
    later.metric_info = {**INFO, "pgd": MetricInfo("PGD", True, percent=True)}
    later.protocol["adversarial"] = {"eps": 0.1}
    other_seed = _result("erm", 1, 0.92, 0.09, "aaa", protocol={"clean": {"split": "test"}})
    other_seed.training_id = "same"
    (board,) = build_boards(Store([first, later, other_seed], []), metrics=["acc", "pgd"])
    (row,) = board.rows
    assert row.label == "erm" and row.seeds == [0, 1]
    assert row.cells["acc"].n == 2 and row.cells["acc"].mean == pytest.approx(0.91)
    assert row.cells["pgd"].n == 1  # seed 1 lacks the metric: shown as missing, not as another row
    # A changed setting of an evaluator both files ran does split them, labelled by that setting.
    changed = _result("erm", 0, 0.90, 0.09, "ccc", protocol={"clean": {"split": "val"}})
    changed.training_id = "same"
    changed.suite_spec = {"evaluators": {"clean": {"split": "val"}}}
    first.suite_spec = {"evaluators": {"clean": {"split": "test"}}}
    (board,) = build_boards(Store([first, changed], []))
    assert sorted(r.label for r in board.rows) == ["erm [clean.split=test]", "erm [clean.split=val]"]


def test_unknown_metric_and_suite_are_errors():
    store = Store([_result("erm", 0, 0.9, 0.1, "x")], [])
    with pytest.raises(
        VicinalError, match=r"unknown metric\(s\) nope for suite s\. `vicinal metrics s` lists its 2"
    ):
        build_boards(store, metrics=["acc", "nope"])
    with pytest.raises(VicinalError, match="Did you mean: ece"):
        build_boards(store, sort="ecee")
    with pytest.raises(VicinalError, match="results exist for: s"):
        build_boards(store, suite="other")
    with pytest.raises(VicinalError, match=r"no results for method\(s\) mixup; results exist for: erm"):
        build_boards(store, methods=["mixup"])


# ---------------------------------------------------------------- formats, best marking, breakdowns


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    docs = write_suite(root, artifacts=False)
    return root, docs


def _expected(docs, method, metric):
    values = [d["metrics"][metric] for d in docs if d["method"] == method]
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None), len(values)


def test_csv_and_json_give_back_the_numbers_of_the_result_files(toy):
    root, docs = toy
    boards = build_boards(load_store(root), metrics=["all"])
    # Metrics derived at render time (vicinal.board.relative) are not in the files; the rest must match them.
    stored = docs[0]["metric_info"]
    metrics = [m for m in boards[0].metrics if m in stored and boards[0].info[m].to_json() == stored[m]]
    assert len(metrics) > 70 and "c_acc/fog/s3" in metrics
    rows = list(csv.DictReader(io.StringIO(render_csv(boards))))
    as_json = json.loads(render_json(boards))[0]
    assert len(rows) == len(as_json["rows"]) == 4
    for row, jrow in zip(rows, as_json["rows"], strict=True):
        assert row["method"] == jrow["method"] and row["source"] == jrow["source"] == "measured"
        for m in metrics:
            mean, std, n = _expected(docs, row["method"], m)
            assert float(row[f"{m}_mean"]) == pytest.approx(mean, rel=1e-12)
            assert jrow["metrics"][m]["mean"] == pytest.approx(mean, rel=1e-12)
            assert int(row[f"{m}_n"]) == jrow["metrics"][m]["n"] == n
            if std is None:
                assert row[f"{m}_std"] == "" and jrow["metrics"][m]["std"] is None
            else:
                assert float(row[f"{m}_std"]) == pytest.approx(std, rel=1e-12)


def test_text_formats_show_the_formatted_numbers_and_bold_the_best(toy):
    root, _ = toy
    (board,) = build_boards(load_store(root), metrics=["acc", "ece", "nll"])
    md, latex, html = (FORMATS[f]([board]) for f in ("markdown", "latex", "html"))
    text = FORMATS["table"]([board])
    for metric in board.metrics:
        higher = board.info[metric].higher_is_better
        pick = max if higher else min
        best = pick(board.rows, key=lambda r, m=metric: r.cells[m].mean)
        assert [r.cells[metric].best for r in board.rows].count(True) >= 1 and best.cells[metric].best
        for row in board.rows:
            shown = format_cell(board, metric, row.cells[metric])
            assert shown in text
            if row.cells[metric].best:
                assert f"**{shown}**" in md
                assert rf"\textbf{{{latex_escape(shown)}}}" in latex
                assert f'class="best" data-metric="{metric}">{shown}</td>' in html
            else:
                assert f"**{shown}**" not in md and shown in md
                assert rf"\textbf{{{latex_escape(shown)}}}" not in latex
    # Hover text on every metric column: the definition and the evaluator's protocol.
    assert 'title="acc: top-1 accuracy on the clean test split' in html and "evaluator calibration" in html


def test_names_are_escaped_in_every_markup_format(toy):
    root, _ = toy
    boards = build_boards(load_store(root))
    html = FORMATS["html"](boards)
    assert EVIL not in html and "&lt;script&gt;" in html
    assert "<script" not in FORMATS["markdown"](boards)
    assert r"\textless{}script\textgreater{}" in FORMATS["latex"](boards)


def test_latex_escapes_specials():
    assert latex_escape("a_b 5% & #1 ± ↑ γ {x} ~ ^ \\") == (
        r"a\_b 5\% \& \#1 $\pm$ $\uparrow$ $\gamma$ \{x\} "
        r"\textasciitilde{} \textasciicircum{} \textbackslash{}"
    )


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed (texlive-latex-base)")
def test_latex_output_compiles(toy, tmp_path):
    root, _ = toy
    write_reported(root, "toy", "mixup", {"acc": 0.9}, note="100% of the_data & more")
    try:
        body = render_latex(build_boards(load_store(root), metrics=["acc", "ece", "lin_gamma@8/255"]))
    finally:
        (root / "toy" / "mixup" / "reported-example.json").unlink()
    doc = "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n" + body + "\\end{document}\n"
    (tmp_path / "board.tex").write_text(doc)
    out = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "board.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout[-3000:]
    assert (tmp_path / "board.pdf").stat().st_size > 0


# ---------------------------------------------------------------- typed result files


def test_result_files_load_typed_and_write_back_unchanged(toy):
    from vicinal.store.declarations import Artifact, Declarations

    root, _ = toy
    path = next(p for p in sorted(root.rglob("*.json")) if "m0" in p.parts)
    result = read_result(path)
    assert result.metric_info["c_acc/s3"] == MetricInfo(
        "acc s3", True, percent=True, headline=False, description=result.metric_info["c_acc/s3"].description,
        family="c_acc", by="severity", key="3", clean="acc", evaluator="corruption",
    )  # fmt: skip
    assert isinstance(result.declares["corruption"], Declarations)
    assert result.declares["corruption"].derived == ("corruption_error",)
    assert json.loads(json.dumps(result.to_json())) == json.loads(path.read_text())
    assert Result.from_json(result.to_json(), path) == result
    # Files written before artifacts described themselves list bare file names: still read.
    old = json.loads(path.read_text()) | {"artifacts": {"reliability": "x.reliability.png"}}
    assert Result.from_json(old).artifacts == {
        "reliability": Artifact("reliability", file="x.reliability.png")
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"metric_info": {"acc": {"label": "acc", "higher_is_better": "yes"}}},
            "higher_is_better must be true",
        ),
        ({"metric_info": {"acc": {"label": "acc", "higher_is_beter": True}}}, "unknown key.*higher_is_beter"),
        ({"metric_info": {"acc": {"higher_is_better": True}}}, "metric_info.acc: missing 'label'"),
        ({"declares": {"x": {"figures": [{"kind": "pie", "title": "t", "panels": []}]}}}, "must be one of"),
        ({"declares": {"x": {"figures": [{"kind": "lines", "title": "t", "panels": []}]}}}, "has no panels"),
        ({"artifacts": {"a": {"title": "t", "file": "../x.png"}}}, "file name beside the result"),
    ],
)
def test_a_malformed_declaration_is_one_message(toy, change, message):
    root, _ = toy
    doc = json.loads(next(root.rglob("*.json")).read_text()) | change
    with pytest.raises(ValueError, match=message):
        Result.from_json(doc)


# ---------------------------------------------------------------- reported rows


def test_reported_rows_are_shown_after_the_measured_ones_and_never_best(tmp_path):
    write_suite(tmp_path, methods={"erm": (0.8, 2), "mixup": (0.85, 2)}, corruption=False, artifacts=False)
    path = write_reported(tmp_path, "toy", "mixup", {"acc": 0.99, "ece": 0.001}, n=5, std={"acc": 0.002})
    doc = read_result(path)
    assert doc.seed is None and doc.run_id.startswith("reported-") and doc.is_reported
    store = load_store(tmp_path)
    assert not store.skipped
    (board,) = build_boards(store, metrics=["acc", "ece"])
    assert [r.source for r in board.rows] == ["measured", "measured", "reported"]
    reported = board.rows[-1]
    assert reported.label == "mixup (reported)" and reported.n == 5
    assert reported.citation == "Example et al. 2099, Table 9"
    assert not any(c.best for c in reported.cells.values())  # 99 % would beat everything measured
    assert board.rows[0].cells["acc"].best
    assert format_cell(board, "acc", reported.cells["acc"]) == "99.00 ± 0.20"
    md = FORMATS["markdown"]([board])
    assert "| *mixup (reported)* |" in md and "Example et al. 2099, Table 9" in md and "**99.00" not in md
    rows = list(csv.DictReader(io.StringIO(render_csv([board]))))
    assert rows[-1]["source"] == "reported" and rows[-1]["citation"] == "Example et al. 2099, Table 9"
    assert float(rows[-1]["acc_mean"]) == 0.99 and rows[-1]["n"] == "5"
    latex = render_latex([board])
    assert r"\textit{mixup (reported)}" in latex and latex.count(r"\midrule") == 2
    assert json.loads(render_json([board]))[0]["rows"][-1]["reported"]["table"] == "Table 9"
    html = FORMATS["html"]([board])
    assert 'class="reported"' in html and 'href="https://example.org/paper"' in html


@pytest.mark.parametrize(
    ("reported", "message"),
    [
        ({"table": "Table 2"}, 'non-empty "citation"'),
        ({"citation": "x", "n": 0}, "positive integer"),
        ({"citation": "x", "std": {"nope": 0.1}}, "not in metrics: nope"),
        ({"citation": "x", "url": 3}, "reported.url must be a string"),
    ],
)
def test_bad_reported_entries_are_rejected(tmp_path, reported, message):
    path = tmp_path / "r.json"
    path.write_text(
        json.dumps({"schema": 1, "suite": "s", "method": "m", "metrics": {"acc": 1}, "reported": reported})
    )
    with pytest.raises(ValueError, match=message):
        read_result(path)


def test_a_javascript_url_is_not_linked(tmp_path):
    write_suite(tmp_path, methods={"erm": (0.8, 1)}, corruption=False, artifacts=False)
    write_reported(tmp_path, "toy", "erm", {"acc": 0.5}, url="javascript:alert(1)")
    html = FORMATS["html"](build_boards(load_store(tmp_path)))
    assert "javascript:" not in html


# ---------------------------------------------------------------- breakdowns


def test_breakdown_by_corruption_and_severity(toy):
    root, docs = toy
    store = load_store(root)
    (board,) = build_boards(store, by="corruption")
    assert board.metrics == ["c_acc/gaussian_noise", "c_acc/fog", "c_acc/jpeg_compression", "c_acc"]
    assert board.titles["c_acc/fog"] == "fog" and "acc-C by corruption (%, ↑)" in board.title
    assert [r.method for r in board.rows][:3] == ["mixup", "varmixup", "erm"]  # by c_acc, best first
    (sev,) = build_boards(store, by="severity")
    assert sev.metrics == ["acc", "c_acc/s1", "c_acc/s2", "c_acc/s3", "c_acc/s4", "c_acc/s5", "c_acc"]
    assert sev.titles["acc"] == "clean" and sev.titles["c_acc/s3"] == "s3"
    (ece,) = build_boards(store, by="severity", metrics=["c_ece"])
    assert ece.metrics[0] == "ece" and ece.metrics[1] == "c_ece/s1"
    mean, _, _ = _expected(docs, "erm", "c_ece/s4")
    erm = next(r for r in ece.rows if r.method == "erm")
    assert erm.cells["c_ece/s4"].mean == pytest.approx(mean)
    (eps,) = build_boards(store, by="eps", metrics=["fgsm"])
    assert eps.metrics == ["adv_subset_acc", "fgsm@1/255", "fgsm@2/255", "fgsm@4/255", "fgsm@8/255"]
    md = FORMATS["markdown"]([sev])
    assert re.search(r"\|\s+clean\s+\|\s+s1\s+\|", md)
    with pytest.raises(VicinalError, match="available: c_acc, c_ece"):
        build_boards(store, by="corruption", metrics=["acc"])
    with pytest.raises(VicinalError, match="one family"):
        build_boards(store, by="corruption", metrics=["c_acc", "c_ece"])


def test_breakdown_without_such_metrics_is_a_clear_error(tmp_path):
    # The axes and the hint come from the result files: another suite's corruption results declare them.
    write_suite(tmp_path, methods={"erm": (0.8, 1)}, corruption=False, artifacts=False)
    write_suite(tmp_path, "toy-c", methods={"erm": (0.8, 1)}, artifacts=False)
    with pytest.raises(VicinalError, match=r"no per-corruption metrics in suite toy; run the corruption"):
        build_boards(load_store(tmp_path), suite="toy", by="corruption")
    out = run_cli(
        "leaderboard", "--by", "severity", "--suite", "toy", "--results", str(tmp_path), cwd=tmp_path
    )
    assert out.returncode == 2 and "no per-severity metrics" in out.stderr and "-c suite" in out.stderr
    out = run_cli("leaderboard", "--by", "colour", "--results", str(tmp_path), cwd=tmp_path)
    assert out.returncode == 2 and "choose one of" in out.stderr
    assert all(axis in out.stderr for axis in ("corruption", "severity", "eps"))


def test_cli_writes_every_format_to_a_file(toy, tmp_path):
    root, _ = toy
    for fmt in FORMATS:
        target = tmp_path / f"board.{fmt}"
        out = run_cli(
            "leaderboard", "--results", str(root), "--format", fmt, "--out", str(target), "--sort", "ece",
            cwd=tmp_path,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert target.stat().st_size > 0 and f"wrote {target}" in out.stderr
        assert out.stdout == ""
    assert "\x1b[" not in (tmp_path / "board.table").read_text()  # plain text, no terminal colours
    assert not list(tmp_path.glob(".board*"))  # no temporary files left behind
    nan_free = json.loads((tmp_path / "board.json").read_text())
    assert all(
        not isinstance(c["mean"], float) or math.isfinite(c["mean"])
        for r in nan_free[0]["rows"]
        for c in r["metrics"].values()
    )


def test_terminal_table_prints_labels_and_names_as_written_not_as_markup():
    from rich.console import Console

    from vicinal.board.formats import rich_table

    store = Store(
        [
            _result("mixup", 0, 0.80, 0.05, "aaa", alpha=0.4),
            _result("mixup", 0, 0.70, 0.05, "bbb", alpha=1.0),
            _result("[bold]x[/]", 0, 0.5, 0.1, "ccc"),
        ],
        [],
    )
    console = Console(file=io.StringIO(), width=200)
    for board in build_boards(store):
        console.print(rich_table(board))
    text = console.file.getvalue()
    assert "mixup [alpha=0.4]" in text and "mixup [alpha=1.0]" in text
    assert "[bold]x[/]" in text


# ---------------------------------------------------------------- the terminal table fits its width


@pytest.fixture(scope="module")
def five_methods(tmp_path_factory):
    """The default suite's five methods, plus two configurations of one of them (labelled by alpha)."""
    from synthetic import make_result

    root = tmp_path_factory.mktemp("five")
    methods = {"erm": (0.8, 2), "mixup": (0.85, 2), "manifold-mixup": (0.84, 2), "varmixup": (0.83, 2)}
    write_suite(root, "digits-c", methods, artifacts=False)
    for alpha, run_id in ((1.0, "e" * 64), (0.4, "f" * 64)):
        for seed in (0, 1):
            doc = make_result("digits-c", "varmixup-beta", seed, 0.82, run_id)
            doc["method_info"]["hyperparameters"] = {"alpha": alpha}
            path = root / "digits-c" / "varmixup-beta" / f"{run_id[:12]}-seed{seed}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(doc))
    return root


LABELS = [
    "erm",
    "mixup",
    "manifold-mixup",
    "varmixup",
    "varmixup-beta [alpha=1.0]",
    "varmixup-beta [alpha=0.4]",
]


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize(
    "options", [{}, {"metrics": ["all"]}, {"by": "corruption"}, {"by": "severity"}, {"by": "eps"}]
)
def test_the_table_fits_its_width_with_every_label_and_number_whole(five_methods, width, options):
    from rich.cells import cell_len

    from vicinal.board.formats import render_text

    boards = build_boards(load_store(five_methods), **options)
    text = render_text(boards, width)
    lines = text.splitlines()
    assert max(cell_len(line) for line in lines) <= width
    assert "…" not in text
    for label in LABELS:  # on one line, never cut
        assert any(re.search(rf"│ {re.escape(label)}\s+│", line) for line in lines), label
    (board,) = boards
    for row in board.rows:
        for m in board.metrics:
            assert format_cell(board, m, row.cells[m]) in text
    if width == 80 and not options:  # split into the groups the evaluators declare, each titled
        titles = [line.strip() for line in lines if line.strip().startswith("suite: digits-c · ")]
        groups = [t.split(" · ")[1].split(" (")[0] for t in titles]
        assert list(dict.fromkeys(groups)) == [
            "accuracy & calibration",
            "attacks",
            "linearity",
            "corruptions",
        ]


def test_the_legend_wraps_at_the_page_width_not_the_last_tables(five_methods):
    """The legend follows the board's last table as a paragraph of the page's width: as that table's
    caption it wrapped at the table's width (39 columns under a narrow one)."""
    from rich.cells import cell_len

    from vicinal.board.formats import render_text

    boards = build_boards(load_store(five_methods), metrics=["acc"])
    lines = render_text(boards, 120).splitlines()
    table_width = max(cell_len(line) for line in lines if line.startswith("└"))
    legend = lines[next(i for i, line in enumerate(lines) if line.startswith("└")) + 1 :]
    assert legend and legend[0].startswith("mean ± sample std over seeds")
    assert max(cell_len(line) for line in legend) > table_width + 20


def test_a_pipe_gets_the_default_width_and_width_chooses_another(five_methods, tmp_path):
    from rich.cells import cell_len

    env = {"COLUMNS": ""}  # a pipe: no terminal width
    default = run_cli("leaderboard", "--results", str(five_methods), cwd=tmp_path, env=env)
    narrow = run_cli("leaderboard", "--results", str(five_methods), "--width", "80", cwd=tmp_path, env=env)
    assert default.returncode == narrow.returncode == 0, default.stderr + narrow.stderr
    assert 80 < max(cell_len(line) for line in default.stdout.splitlines()) <= 120
    assert max(cell_len(line) for line in narrow.stdout.splitlines()) <= 80
    assert "…" not in default.stdout + narrow.stdout and "\x1b[" not in default.stdout
    assert default.stdout.count("suite: digits-c") < narrow.stdout.count("suite: digits-c")


def _at_a_terminal(args: list[str], cwd, stdout, columns: int) -> str:
    """Run the CLI with standard error on a pseudo-terminal ``columns`` wide (the user's screen) and
    standard output where ``stdout`` says (a pipe or a file); returns what reached standard output."""
    import fcntl
    import os
    import pty
    import struct
    import sys
    import termios

    main, screen = pty.openpty()
    fcntl.ioctl(screen, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    try:
        out = subprocess.run(
            [sys.executable, "-m", "vicinal.cli", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=screen,
            timeout=300,
        )
    finally:
        os.close(screen)
        os.close(main)
    assert out.returncode == 0
    return out.stdout.decode() if out.stdout is not None else ""


def test_a_pipe_read_at_a_terminal_takes_its_width_and_a_file_keeps_the_default(five_methods, tmp_path):
    """``vicinal leaderboard | less`` in an 80-column terminal printed 120-column tables that wrapped."""
    from rich.cells import cell_len

    args = ["leaderboard", "--results", str(five_methods)]
    piped = _at_a_terminal(args, tmp_path, subprocess.PIPE, 80)
    assert piped and max(cell_len(line) for line in piped.splitlines()) <= 80
    assert "…" not in piped and "\x1b[" not in piped  # no colour in a pipe: the marks are in the text
    with open(tmp_path / "board.txt", "wb") as file:
        _at_a_terminal(args, tmp_path, file, 80)
    written = (tmp_path / "board.txt").read_text()
    assert 80 < max(cell_len(line) for line in written.splitlines()) <= 120


def test_vicinal_metrics_lists_the_keys_by_evaluator_and_the_leaderboard_error_names_it(
    five_methods, tmp_path
):
    """`vicinal leaderboard --metrics list` (a natural guess) dumped every metric name as one error."""
    wrong = run_cli("leaderboard", "--results", str(five_methods), "--metrics", "list", cwd=tmp_path)
    assert wrong.returncode == 2
    assert "`vicinal metrics digits-c` lists its" in wrong.stderr and "c_acc/fog/s3" not in wrong.stderr
    assert len(wrong.stderr) < 600

    every = run_cli("metrics", "--results", str(five_methods), cwd=tmp_path)
    assert every.returncode == 0, every.stderr
    (board,) = build_boards(load_store(five_methods), metrics=["all"])
    for key in board.metrics:  # every key --metrics accepts, derived ones (mCE) included
        assert re.search(rf"│ {re.escape(key)}\s+│", every.stdout), key
    for evaluator in ("clean", "calibration", "adversarial", "linearity", "corruption"):
        assert f"suite digits-c · evaluator {evaluator}" in every.stdout
    assert re.search(
        r"│ c_mce\s+│ mCE % ↓", every.stdout
    )  # derived across the suite, listed with its evaluator
    assert "robust accuracy under pgd_l2 (l2, ε = 0.5)" in " ".join(every.stdout.split())
    assert f"{len(board.metrics)} metric(s)" in every.stdout

    filtered = run_cli("metrics", "digits-c", "c_acc/s*", "--results", str(five_methods), cwd=tmp_path)
    alone = run_cli("metrics", "c_acc/s*", "--results", str(five_methods), cwd=tmp_path)  # a pattern alone
    for out in (filtered, alone):
        assert out.returncode == 0, out.stderr
        keys = re.findall(r"^│ (\S+)\s+│", out.stdout, flags=re.M)
        assert keys == [f"c_acc/s{s}" for s in range(1, 6)], keys
    nothing = run_cli("metrics", "nope", "--results", str(five_methods), cwd=tmp_path)
    assert nothing.returncode == 2 and "suites with results: digits-c" in nothing.stderr


def _swept(method, seed, acc, val_acc, run_id, **hyper):
    r = _result(method, seed, acc, 0.05, run_id, **hyper)
    return dataclasses.replace(
        r,
        metrics={**r.metrics, "val_acc": val_acc},
        metric_info={**INFO, "val_acc": MetricInfo("val acc", True, percent=True, headline=False)},
    )


def test_best_of_chooses_on_the_validation_split_never_on_test():
    """alpha=0.2 has the better test accuracy, alpha=1.0 the better validation accuracy (seed means): the
    validation metric chooses, the other point disappears, and the legend says what was chosen over what.
    erm, never swept, stays as it is."""
    store = Store(
        [
            _swept("mixup", 0, 0.90, 0.70, "aaa", alpha=0.2),
            _swept("mixup", 1, 0.88, 0.74, "aaa", alpha=0.2),
            _swept("mixup", 0, 0.80, 0.80, "bbb", alpha=1.0),
            _swept("mixup", 1, 0.82, 0.76, "bbb", alpha=1.0),
            _swept("erm", 0, 0.85, 0.75, "ccc"),
        ],
        [],
    )
    (board,) = build_boards(store, best_of_params=["alpha"])
    assert sorted(r.label for r in board.rows) == ["erm", "mixup"]
    (mixup,) = [r for r in board.rows if r.method == "mixup"]
    assert mixup.cells["acc"].mean == pytest.approx(0.81)  # the alpha=1.0 row's test accuracy
    (line,) = board.selection
    assert line == "mixup: alpha=1.0 chosen by val_acc 0.78 (mean over 2 seed(s)) over alpha=0.2: 0.72"
    assert "best-of" in render_markdown([board]) and json.loads(render_json([board]))[0]["selection"]
    # Lower is better for an NLL: the direction comes from the metric's declaration.
    nll_store = Store(
        [
            dataclasses.replace(
                r,
                metrics={"acc": r.metrics["acc"], "val_nll": 1 - r.metrics["val_acc"]},
                metric_info={**INFO, "val_nll": MetricInfo("val NLL", False)},
            )
            for r in store.results
        ],
        [],
    )
    (by_nll,) = build_boards(nll_store, best_of_params=["alpha"], select="val_nll")
    assert by_nll.selection[0].startswith("mixup: alpha=1.0 chosen by val_nll 0.22")


def test_best_of_refuses_test_metrics_unknown_settings_and_missing_validation():
    rows = [_swept("mixup", 0, 0.9, 0.7, "aaa", alpha=0.2), _result("mixup", 0, 0.8, 0.1, "b", alpha=1)]
    store = Store(rows, [])
    with pytest.raises(VicinalError, match="validation split"):
        build_boards(store, best_of_params=["alpha"], select="acc")
    with pytest.raises(VicinalError, match="no row has such a setting; settings of these rows: alpha"):
        build_boards(store, best_of_params=["beta"])
    with pytest.raises(VicinalError, match=r"mixup \[alpha=1\] has no val_acc"):
        build_boards(store, best_of_params=["alpha"])
