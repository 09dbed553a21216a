"""The plugin author's guide (docs/plugins.md) works as written: its Python blocks are saved as plugin
files (named by their first line) or executed, and the plugins go through the real command line on a tiny
budget — a method, an evaluator that adds a metric, a ``--by`` axis, a figure and a derived metric, and a
model — without any edit to vicinal, in a folder outside the repository."""

from __future__ import annotations

import csv
import io
import json
import re
import statistics
import tomllib

import pytest
from helpers import ROOT, run_cli
from rich.cells import cell_len

GUIDE = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
PYTHON = re.findall(r"```python\n(.*?)```", GUIDE, flags=re.S)
PLUGINS = {m.group(1): code for code in PYTHON if (m := re.match(r"# (\w+\.py)\n", code))}
SIZES = ["4", "8", "12"]


def test_the_guide_has_its_plugins():
    assert set(PLUGINS) == {"smoothing.py", "occlusion.py", "flips.py", "tiny_mlp.py"}
    assert len(PYTHON) == len(PLUGINS) + 1  # and the block of helper signatures


def test_the_helper_signatures_run_as_documented():
    (code,) = [c for c in PYTHON if c not in PLUGINS.values()]
    exec(compile(code, "docs/plugins.md", "exec"), {})


def test_the_documented_entry_point_groups_are_the_registries():
    from vicinal.board.derived import DERIVATIONS
    from vicinal.data.datasets import DATASETS
    from vicinal.evaluation.evaluator import EVALUATORS
    from vicinal.training.method import METHODS
    from vicinal.training.models import MODELS

    (block,) = re.findall(r"```toml\n(.*?)```", GUIDE, flags=re.S)
    documented = set(tomllib.loads(block)["project"]["entry-points"])
    registries = (METHODS, EVALUATORS, MODELS, DATASETS, DERIVATIONS)
    assert documented == {r._entry_point_group for r in registries}


def test_methods_pattern_is_a_glob_and_a_plain_word_a_substring():
    from vicinal.training.method import list_methods

    assert {"mixup", "manifold-mixup", "varmixup"} <= set(list_methods("mix"))
    assert list_methods("mix*") == ["mixup"]
    assert "manifold-mixup" in list_methods("*mixup") and "erm" not in list_methods("*mixup")


@pytest.fixture(scope="module")
def guide(tmp_path_factory):
    """The guide's three plugins saved in a temporary folder and run: two methods, two seeds, the plugin
    model, the clean and plugin evaluators; the board printed at the end in an 80-column terminal."""
    root = tmp_path_factory.mktemp("plugin-author")
    for name, code in PLUGINS.items():
        (root / name).write_text(code)
    env = {"VICINAL_RESULTS_DIR": str(root / "results"), "VICINAL_CACHE_DIR": str(root / "cache")}
    plugins = [arg for name in PLUGINS for arg in ("--plugin", name)]
    out = run_cli(
        "run", *plugins, "--methods", "erm,label-smoothing", "--model", "tiny-mlp", "--seeds", "0,1",
        "--evaluators", "clean,occlusion", "--epochs", "1", "--limit-train", "64", "--quiet",
        "--set", "evaluators.occlusion.n_samples=200",
        cwd=root, env={**env, "COLUMNS": "80"},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    docs = [json.loads(p.read_text()) for p in sorted((root / "results").rglob("*.json"))]
    return root, env, out, docs


def _mean(docs, method, metric):
    return statistics.fmean(d["metrics"][metric] for d in docs if d["method"] == method)


def test_the_plugins_run_and_their_declarations_reach_the_result_files(guide):
    _, _, out, docs = guide
    assert sorted((d["method"], d["seed"]) for d in docs) == [
        ("erm", 0), ("erm", 1), ("label-smoothing", 0), ("label-smoothing", 1),
    ]  # fmt: skip
    doc = docs[0]
    assert doc["suite_spec"]["model"] == "tiny-mlp"
    assert {f"occ_acc@{k}" for k in SIZES} | {"occ_acc", "acc"} <= set(doc["metrics"])
    assert doc["metric_info"]["occ_acc@8"]["evaluator"] == "occlusion"
    assert doc["metric_info"]["occ_acc@8"]["clean"] == "acc"
    assert doc["declares"]["occlusion"]["breakdowns"][0]["axis"] == "patch"
    assert doc["declares"]["occlusion"]["figures"][0]["title"] == "Accuracy versus occlusion"
    # The board printed at the end of the run fits 80 columns, every label and number whole.
    lines = out.stdout[out.stdout.index("suite: digits-c") :].splitlines()
    assert max(cell_len(line) for line in lines) <= 80
    assert "…" not in out.stdout and "label-smoothing" in out.stdout and "acc-occ" in out.stdout


def test_leaderboard_by_the_plugins_axis(guide):
    root, env, _, docs = guide
    board = json.loads(run_cli("leaderboard", "--by", "patch", "--format", "json", cwd=root, env=env).stdout)
    (suite,) = board
    assert suite["columns"] == ["acc", *(f"occ_acc@{k}" for k in SIZES), "occ_acc"]
    assert suite["titles"]["acc"] == "clean" and suite["titles"]["occ_acc@4"] == "4 px"
    for row in suite["rows"]:
        for m in suite["columns"]:
            assert row["metrics"][m]["mean"] == pytest.approx(_mean(docs, row["method"], m), rel=1e-12)
            assert row["metrics"][m]["n"] == 2
    table = run_cli("leaderboard", "--by", "patch", "--width", "80", cwd=root, env=env).stdout
    assert "acc-occ by square size" in table and "4 px" in table and "12 px" in table


def test_every_metric_and_the_plugins_derived_metric(guide):
    root, env, _, docs = guide
    plain = run_cli("leaderboard", "--metrics", "all", "--format", "csv", cwd=root, env=env)
    rows = {r["method"]: r for r in csv.DictReader(io.StringIO(plain.stdout))}
    assert float(rows["erm"]["occ_acc@8_mean"]) == pytest.approx(_mean(docs, "erm", "occ_acc@8"))
    # Its derivation lives in the plugin: without the plugin the leaderboard says what it leaves out.
    assert "occ_vs_base_mean" not in plain.stdout and "occlusion_vs_baseline" in plain.stderr
    loaded = run_cli(
        "leaderboard", "--metrics", "all", "--format", "csv", "--plugin", "occlusion.py", cwd=root, env=env
    )
    rows = {r["method"]: r for r in csv.DictReader(io.StringIO(loaded.stdout))}
    assert float(rows["erm"]["occ_vs_base_mean"]) == pytest.approx(1.0)  # erm is the suite's baseline
    ratio = _mean(docs, "label-smoothing", "occ_acc") / _mean(docs, "erm", "occ_acc")
    assert float(rows["label-smoothing"]["occ_vs_base_mean"]) == pytest.approx(ratio)


def test_report_draws_the_plugins_figure_and_breakdown(guide):
    root, env, _, _ = guide
    out = run_cli("report", "--plugin", "occlusion.py", "--out", "report.html", "--quiet", cwd=root, env=env)
    assert out.returncode == 0, out.stderr
    html = (root / "report.html").read_text()
    figure = html[html.index("<h3>Accuracy versus occlusion</h3>") :]
    assert figure.split("</figure>")[0].count('src="data:image/png;base64,') == 1
    assert "acc-occ by square size" in html and 'data-metric="occ_acc@8"' in html
    assert 'data-metric="occ_vs_base"' in html


def test_a_config_rule_from_the_guide_is_one_message_before_training(guide):
    root, env, _, _ = guide
    out = run_cli(
        "run", "--plugin", "smoothing.py", "--methods", "label-smoothing",
        "--set", "label-smoothing.warmup_smoothing=0.5", cwd=root, env=env,
    )  # fmt: skip
    assert out.returncode == 2 and "label-smoothing: warmup_smoothing must not exceed smoothing" in out.stderr


def test_a_malformed_declaration_is_one_message_before_training(guide):
    root, env, _, _ = guide
    broken = PLUGINS["occlusion.py"].replace('MetricInfo("acc-occ", True,', 'MetricInfo("acc-occ", "yes",')
    assert broken != PLUGINS["occlusion.py"]
    (root / "broken.py").write_text(broken)
    out = run_cli("run", "--plugin", "broken.py", "--evaluators", "clean,occlusion", cwd=root, env=env)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "evaluator occlusion: metric 'occ_acc'.higher_is_better must be true or false" in out.stderr


@pytest.mark.parametrize(
    ("typo", "named"),
    [
        # the metrics' axis misspelt beside the Breakdown's: the run succeeded, `--by patch` found nothing
        (
            ('by="patch",', 'by="ptach",'),
            [
                "by='ptach' is no declared breakdown axis; did you mean 'patch'?",
                "Breakdown('patch', …, family='occ_acc'): no metric has by='patch'",
            ],
        ),
        # the figure's axis misspelt
        (
            ('by="patch",\n        ),', 'by="ptach",\n        ),'),
            [
                "figure 'Accuracy versus occlusion': panel "
                "'accuracy versus square size' draws family "
                "'occ_acc' along by='ptach'",
                "did you mean 'patch'?",
            ],
        ),
        # the breakdown's family misspelt
        (
            ('"square size", "occ_acc"', '"square size", "occ_ac"'),
            ["family='occ_ac'): no metric has by='patch' and family='occ_ac'"],
        ),
    ],
    ids=["metric-by", "figure-by", "breakdown-family"],
)
def test_declarations_that_do_not_match_each_other_are_refused_when_the_evaluator_registers(
    typo, named, tmp_path
):
    """A MetricInfo.by or FigureSpec.by of `nosie` beside a Breakdown axis `noise` ran (rc 0), and
    `leaderboard --by noise` then said there were no per-noise metrics. Now loading the plugin names the
    mismatch, before anything is trained."""
    old, new = typo
    assert old in PLUGINS["occlusion.py"]
    (tmp_path / "typo.py").write_text(PLUGINS["occlusion.py"].replace(old, new))
    env = {"VICINAL_RESULTS_DIR": str(tmp_path / "results"), "VICINAL_CACHE_DIR": str(tmp_path / "cache")}
    out = run_cli("run", "--plugin", "typo.py", "--evaluators", "clean,occlusion", cwd=tmp_path, env=env)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    message = " ".join(out.stderr.split())
    assert message.startswith("error: ") and "evaluator occlusion: " in message
    for part in named:
        assert part in message, message
    assert not (tmp_path / "results").exists()


def test_the_shipped_evaluators_declarations_agree_with_each_other():
    from vicinal.evaluation.evaluator import EVALUATORS
    from vicinal.store.declarations import inconsistencies

    for name in EVALUATORS.names():
        evaluator = EVALUATORS.get(name)()
        declared = evaluator.declarations()
        assert inconsistencies(evaluator.metric_info(), declared, bool(declared.derived)) == [], name


def test_vicinal_evaluators_lists_settings_and_says_a_plugins_runs_only_when_named(tmp_path):
    """There was no listing of evaluators (as `vicinal methods -v` lists methods), and nothing said that a
    plugin's evaluator runs only when a run names it."""
    (tmp_path / "occlusion.py").write_text(PLUGINS["occlusion.py"])
    env = {"COLUMNS": "250"}
    listing = run_cli("evaluators", "--plugin", "occlusion.py", cwd=tmp_path, env=env)
    assert listing.returncode == 0, listing.stderr
    rows = {line.split("│")[1].strip(): line for line in listing.stdout.splitlines() if line.startswith("│ ")}
    assert {"adversarial", "calibration", "clean", "corruption", "linearity", "occlusion"} <= set(rows)
    assert "runs only when named (--evaluators clean,NAME" in rows["occlusion"]
    assert "cifar10-c" in rows["corruption"] and "digits" in rows["corruption"]
    assert "accuracy when a grey square hides part of each test image" in rows["occlusion"]
    verbose = run_cli("evaluators", "occ", "-v", "--plugin", "occlusion.py", cwd=tmp_path, env=env)
    assert verbose.returncode == 0, verbose.stderr
    text = verbose.stdout
    assert "occlusion · plugin: vicinal_plugin_occlusion_" in text and "(plugin file " in text
    assert re.search(r"│ sizes\s+│ list\s+│ \[4, 8, 12\]\s+│ side of the square in pixels", text)
    assert re.search(r"│ n_samples\s+│ int\s+│ 0\s+│", text)
    assert "set with --set evaluators.occlusion.NAME=VALUE" in text


#: A plugin evaluator that stores its per-example outcomes the way the guide says (docs notes: "Per-example
#: outcomes"): one set of (correct, confidence) per example and the statistic that recomputes its metric.
FLIPS = """
from dataclasses import dataclass

from vicinal import EvalContext, Evaluator, MetricInfo, hp, register_evaluator, seeded_subset


@register_evaluator("flips")
class Flips(Evaluator):
    summary = "accuracy on horizontally flipped test images"
    metrics = {"flip_acc": MetricInfo("acc flip", True, percent=True, description="on flipped test images")}

    @dataclass
    class Config:
        n_samples: int = hp(0, "seeded test subset (0 = the whole test split)", ge=0)
        seed: int = hp(0, "seed of the subset")
        outcomes: bool = hp(True, "store the per-example outcomes")

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        c = self.config
        index = seeded_subset(len(ctx.data.test), c.n_samples, c.seed)
        images, labels = ctx.data.test.images[index], ctx.data.test.labels[index]
        logits = ctx.predict(images.flip(-1))
        if c.outcomes:
            examples = ctx.test_examples(index, f"seeded subset: n_samples {c.n_samples}, seed {c.seed}")
            ctx.record_logits("flips", examples, logits, labels)  # correct + confidence per example
            ctx.statistic("flip_acc", "mean", ["flips"])  # flip_acc = the mean of "correct" over the set
        return {"flip_acc": float((logits.argmax(1) == labels).double().mean())}
"""


@pytest.mark.parametrize("outcomes", [True, False])
def test_a_plugin_evaluators_per_example_outcomes_give_its_metrics_marks_and_verdicts(outcomes, tmp_path):
    """How a plugin evaluator stores per-example outcomes was not documented, so its metrics were always
    "undetermined" in `vicinal compare` and marked only at the displayed precision. Stored as documented,
    they are compared and marked like the built-in metrics."""
    (tmp_path / "flips.py").write_text(FLIPS)
    env = {"VICINAL_RESULTS_DIR": str(tmp_path / "results"), "VICINAL_CACHE_DIR": str(tmp_path / "cache")}
    out = run_cli(
        "run", "--plugin", "flips.py", "--suite", "digits", "--methods", "erm,mixup", "--seeds", "0",
        "--evaluators", "clean,flips", "--epochs", "2", "--limit-train", "128", "--quiet",
        "--set", f"evaluators.flips.outcomes={str(outcomes).lower()}", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    board = json.loads(
        run_cli("leaderboard", "--format", "json", "--metrics", "acc,flip_acc", cwd=tmp_path, env=env).stdout
    )
    compared = run_cli(
        "compare", "mixup", "erm", "--metrics", "flip_acc", "--format", "json", cwd=tmp_path, env=env
    )
    assert compared.returncode == 0, compared.stderr
    (difference,) = json.loads(compared.stdout)["differences"]
    if outcomes:
        assert board[0]["marking"]["flip_acc"]["rule"] == "interval"
        assert difference["basis"] == "examples" and difference["low"] is not None
        assert difference["verdict"] != "undetermined"
    else:  # what a plugin author met: one seed each and no outcomes
        assert board[0]["marking"]["flip_acc"]["rule"] == "precision"
        assert difference["verdict"] == "undetermined"
