"""End to end through the real command line: run → result files → leaderboard; bad input → one message."""

import csv
import io
import json

import numpy as np
import pytest
from helpers import CIFAR_DIR, needs_cifar, run_cli

TINY = [
    "--epochs", "1", "--limit-train", "256", "--quiet",
    "--set", "varmixup.vae_epochs=1", "--set", "varmixup-beta.vae_epochs=1",
    "--set", "evaluators.adversarial.n_samples=32", "--set", "evaluators.adversarial.steps=2",
    "--set", "evaluators.linearity.n_samples=16", "--set", "evaluators.linearity.n_pairs=8",
    "--set", "evaluators.linearity.steps=2",
    "--set", "evaluators.corruption.corruptions=gaussian_noise,fog,speckle_noise",
    "--set", "evaluators.corruption.severities=1,5",
    # OOD and selective figures: ~4 s a run, drawn and checked in tests/test_ood.py and test_selective.py
    "--set", "evaluators.ood.figures=false", "--set", "evaluators.selective.figure=false",
]  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """The default suite, all five seed methods, two seeds, a tiny budget: run once for the module."""
    root = tmp_path_factory.mktemp("e2e")
    env = {"VICINAL_RESULTS_DIR": str(root / "results"), "VICINAL_CACHE_DIR": str(root / "cache")}
    out = run_cli("run", *TINY, "--seeds", "0,1", cwd=root, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    return root, env, out


def test_run_writes_one_result_per_method_and_seed(store):
    root, _, out = store
    files = sorted((root / "results" / "digits-c").rglob("*.json"))
    assert len(files) == 10
    methods = {"erm", "mixup", "manifold-mixup", "varmixup", "varmixup-beta"}
    assert {f.parent.name for f in files} == methods
    doc = json.loads(files[0].read_text())
    for key in (
        "metrics",
        "protocol",
        "method_info",
        "suite_spec",
        "data",
        "environment",
        "timing",
        "config_hash",
        "run_id",
    ):
        assert key in doc
    assert doc["protocol"]["calibration"]["bins"] == 15
    assert doc["protocol"]["adversarial"]["subset"] == {"n": 32, "seed": 0, "split": "test"}
    assert doc["data"]["n_train"] == 256 and doc["data"]["n_val"] == 135 and doc["data"]["n_test"] == 450
    for metric in (
        "ece_ts",
        "temperature",
        "pgd_linf@0.1",
        "fgsm@0.05",
        "lin_gamma@0.1",
        "interp_logit_dev",
    ):
        assert metric in doc["metrics"], metric
    png = files[0].with_name(doc["artifacts"]["reliability"]["file"])
    assert png.read_bytes()[:4] == b"\x89PNG" and doc["artifacts"]["reliability"]["title"]
    assert doc["environment"]["versions"]["torch"] and doc["environment"]["versions"]["netcal"]
    assert 0 <= doc["metrics"]["acc"] <= 1 and doc["metrics"]["nll"] > 0
    # The run printed the leaderboard.
    assert "suite: digits-c" in out.stdout and "manifold-mixup" in out.stdout
    # The default suite is a -c suite: corruptions generated on the fly, recorded with their protocol.
    assert doc["protocol"]["corruption"]["corruptions"] == ["gaussian_noise", "fog", "speckle_noise"]
    assert doc["protocol"]["corruption"]["source"]["kind"] == "generated"
    for metric in ("c_acc", "c_acc_all", "c_ece", "c_acc/fog", "c_acc/s5", "c_acc/fog/s5"):
        assert 0 <= doc["metrics"][metric] <= 1, metric


def test_varmixup_result_records_its_vae(store):
    root, _, _ = store
    doc = json.loads(next((root / "results" / "digits-c" / "varmixup").glob("*seed0.json")).read_text())
    vae = doc["method_info"]["prepared"]["vae"]
    assert vae["cache"] == "trained" and vae["recon_mse_train"] > 0
    assert doc["method_info"]["hyperparameters"]["vae_epochs"] == 1


def test_identical_rerun_reuses_results(store):
    root, env, _ = store
    before = {p: p.stat().st_mtime_ns for p in (root / "results").rglob("*.json")}
    out = run_cli("run", *TINY, "--seeds", "0,1", "--methods", "erm,varmixup", cwd=root, env=env)
    assert out.returncode == 0, out.stderr
    assert "0 trained, 4 reused" in out.stdout
    assert before == {p: p.stat().st_mtime_ns for p in (root / "results").rglob("*.json")}


def test_new_evaluator_settings_reevaluate_without_retraining(store):
    root, env, _ = store
    out = run_cli(
        "run",
        *TINY,
        "--seeds",
        "0",
        "--methods",
        "erm",
        "--evaluators",
        "clean,calibration",
        "--set",
        "evaluators.calibration.bins=10",
        cwd=root,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    # A new result file, from the cached model: the summary said "1 trained" although nothing trained.
    summary = [line for line in out.stdout.splitlines() if "reused" in line]
    assert "0 trained, 1 re-evaluated, 0 reused" in out.stdout, summary
    docs = [json.loads(p.read_text()) for p in (root / "results" / "digits-c" / "erm").glob("*seed0.json")]
    new = next(d for d in docs if d["protocol"]["calibration"]["bins"] == 10)
    old = next(d for d in docs if d["protocol"]["calibration"]["bins"] == 15)
    assert new["training"]["reused_trained_model"]  # ... but the trained model came from the cache
    assert new["suite_spec"]["evaluators"]["calibration"]["bins"] == 10  # the protocol as run
    assert new["metrics"]["acc"] == old["metrics"]["acc"] and "pgd_linf@0.1" not in new["metrics"]
    for p in (root / "results" / "digits-c" / "erm").glob("*seed0.json"):
        if json.loads(p.read_text())["protocol"]["calibration"]["bins"] == 10:
            p.unlink()  # keep the shared store as the other tests expect it


def test_leaderboard_formats_agree_with_the_result_files(store):
    root, env, _ = store
    docs = [json.loads(p.read_text()) for p in (root / "results").rglob("*.json")]
    erm_acc = sorted(d["metrics"]["acc"] for d in docs if d["method"] == "erm")
    table = run_cli("leaderboard", cwd=root, env=env)
    assert table.returncode == 0 and "mean ± sample std" in table.stdout
    as_json = json.loads(run_cli("leaderboard", "--format", "json", cwd=root, env=env).stdout)
    row = next(r for r in as_json[0]["rows"] if r["method"] == "erm")
    assert row["metrics"]["acc"]["n"] == 2 and row["seeds"] == [0, 1]
    assert row["metrics"]["acc"]["mean"] == pytest.approx(sum(erm_acc) / 2)
    assert row["metrics"]["acc"]["std"] == pytest.approx(abs(erm_acc[1] - erm_acc[0]) / 2**0.5)
    rows = list(
        csv.DictReader(io.StringIO(run_cli("leaderboard", "--format", "csv", cwd=root, env=env).stdout))
    )
    assert float(next(r for r in rows if r["method"] == "erm")["acc_mean"]) == pytest.approx(sum(erm_acc) / 2)
    # mCE is derived from the cells, relative to the erm rows (whose own mCE is 100 %).
    assert row["metrics"]["c_mce"]["mean"] == pytest.approx(1.0)
    mix = next(r for r in as_json[0]["rows"] if r["method"] == "mixup")
    assert mix["metrics"]["c_mce"]["mean"] > 0
    by = run_cli("leaderboard", "--by", "corruption", "--format", "csv", cwd=root, env=env)
    assert by.returncode == 0, by.stderr
    head = next(csv.reader(io.StringIO(by.stdout)))
    assert any("fog" in h for h in head) and any("speckle_noise" in h for h in head)
    md = run_cli(
        "leaderboard", "--format", "markdown", "--sort", "ece", "--metrics", "acc,ece", cwd=root, env=env
    ).stdout
    assert md.startswith("### digits-c") and "| method" in md and "NLL" not in md
    everything = run_cli("leaderboard", "--format", "csv", "--metrics", "all", cwd=root, env=env).stdout
    assert "cw_ece_ts_mean" in everything and "pgd_l2@2_mean" in everything


def test_corrupted_result_is_skipped_with_a_warning(store, tmp_path):
    root, env, _ = store
    bad = root / "results" / "digits-c" / "erm" / "broken.json"
    bad.write_text('{"schema": 1, "metrics": {')
    try:
        out = run_cli("leaderboard", cwd=root, env=env)
    finally:
        bad.unlink()
    assert out.returncode == 0
    assert "skipped" in out.stderr and "broken.json" in out.stderr
    assert "erm" in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--methods", "mixpu"], "Did you mean: mixup"),
        (["run", "--suite", "nope"], "unknown suite 'nope'"),
        (["run", "--set", "mixup.alfa=1", "--methods", "mixup"], "no hyperparameter 'alfa'"),
        (["run", "--set", "mixup.alpha=abc", "--methods", "mixup"], "expected a number"),
        (["run", "--set", "cutmx.alpha=1", "--methods", "mixup"], "Did you mean: cutmix"),
        (["run", "--seeds", "a,b"], "comma-separated integers"),
        (["run", "--device", "cuda:7"], "CUDA is not available"),
        (
            ["run", "--suite", "cifar10", "--data-dir", "/nonexistent/x", "--methods", "erm"],
            "vicinal download",
        ),
        (["leaderboard", "--format", "pdf"], "choose one of"),
        # The parser's own errors read as vicinal's: one "error:" line, not "Usage:" over a boxed "Error".
        (["run", "--methodz", "erm"], "error: no such option: --methodz (Possible options: --methods"),
        (["run", "--epochs", "x"], "error: invalid value for '--epochs'"),
        (["nosuch"], "error: no such command 'nosuch'; see `"),
        # A name a suite file uses may be a plugin's: say how to load one.
        (["run", "--methods", "label-smoothing"], "known once loaded: --plugin FILE"),
        # A typo in --evaluators is the run's, not the shipped suite file's.
        (["run", "--evaluators", "clean,adversarail"], "this run's evaluators (in place of "),
        (["leaderboard", "--results", "/nonexistent/results"], "no result files"),
    ],
)
def test_bad_input_is_one_clear_error(tmp_path, args, message):
    out = run_cli(*args, cwd=tmp_path, env={"VICINAL_CACHE_DIR": str(tmp_path / "c")})
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert out.stderr.startswith("error: ") and "Usage:" not in out.stderr and "Error" not in out.stderr


def test_bad_suite_file(tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text('name = "x"\n[data]\ndataset = "digits"\n[train]\nepochs = "many"\n')
    out = run_cli("run", "--suite", str(suite), cwd=tmp_path)
    assert out.returncode == 2 and "[train] epochs: expected an integer" in out.stderr
    assert "Traceback" not in out.stderr


def test_every_shipped_suite_is_valid_and_listed(tmp_path):
    """`vicinal suites` lists without checking components (it need not import torch): checked here."""
    from vicinal.execution.suite import builtin_suites, load_suite, validate_components

    out = run_cli("suites", cwd=tmp_path, env={"COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    for name in builtin_suites():
        suite = load_suite(name)
        validate_components(suite)  # every method, evaluator, model and dataset registered and set validly
        assert name in out.stdout and suite.dataset in out.stdout


@needs_cifar
@pytest.mark.slow
def test_cifar_subset_end_to_end(tmp_path):
    env = {"VICINAL_RESULTS_DIR": str(tmp_path / "r"), "VICINAL_CACHE_DIR": str(tmp_path / "c")}
    out = run_cli(
        "run",
        "--suite",
        "cifar10-quick",
        "--data-dir",
        str(CIFAR_DIR),
        "--methods",
        "erm,varmixup",
        "--epochs",
        "1",
        "--limit-train",
        "512",
        "--set",
        "varmixup.vae_epochs=1",
        "--quiet",
        "--evaluators",
        "clean,calibration",
        cwd=tmp_path,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    docs = [json.loads(p.read_text()) for p in (tmp_path / "r").rglob("*.json")]
    assert {d["method"] for d in docs} == {"erm", "varmixup"}
    assert all(d["data"]["n_test"] == 1017 for d in docs)
    # 1 epoch on 512 images: better than chance (10%) on the real test images.
    assert max(d["metrics"]["acc"] for d in docs) > 0.12


@needs_cifar
@pytest.mark.slow
def test_cifar10_c_from_vicinal_corrupt_to_the_per_corruption_leaderboard(tmp_path):
    """The issue's path for a user without downloads: corrupt → run the -c suite → --by corruption."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "cifar-10-batches-py").symlink_to(CIFAR_DIR / "cifar-10-batches-py")
    env = {"VICINAL_RESULTS_DIR": str(tmp_path / "r"), "VICINAL_CACHE_DIR": str(tmp_path / "c")}
    pick = ["--corruptions", "fog,contrast,saturate", "--severities", "1,5"]
    out = run_cli("corrupt", "--dataset", "cifar10", "--data-dir", str(data), *pick, "--quiet", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert np.load(data / "CIFAR-10-C" / "fog.npy", mmap_mode="r").shape == (2 * 1017, 32, 32, 3)
    out = run_cli(
        "run", "--suite", "cifar10-c", "--data-dir", str(data), "--methods", "erm,mixup", "--seeds", "0",
        "--epochs", "1", "--limit-train", "512", "--model", "small-cnn", "--evaluators", "clean,corruption",
        "--set", "evaluators.corruption.corruptions=fog,contrast,saturate",
        "--set", "evaluators.corruption.severities=1,5", "--set", "evaluators.corruption.source=disk",
        "--quiet", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(next((tmp_path / "r" / "cifar10-c" / "erm").glob("*.json")).read_text())
    source = doc["protocol"]["corruption"]["source"]
    assert source["kind"] == "generated" and source["path"] == str(data / "CIFAR-10-C")
    assert source["manifest"]["settings"]["table"] == "cifar" and source["images_per_cell"] == 1017
    board = run_cli(
        "leaderboard", "--suite", "cifar10-c", "--by", "corruption", "--format", "csv", cwd=tmp_path, env=env
    )
    assert board.returncode == 0, board.stderr
    rows = list(csv.DictReader(io.StringIO(board.stdout)))
    assert {r["method"] for r in rows} == {"erm", "mixup"}
    erm = next(r for r in rows if r["method"] == "erm")
    fog = next(k for k in erm if "fog" in k and k.endswith("_mean"))
    assert float(erm[fog]) == pytest.approx(doc["metrics"]["c_acc/fog"])
