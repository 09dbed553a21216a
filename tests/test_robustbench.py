"""RobustBench as part of the suite: zoo models loaded offline through robustbench's own load_model,
vicinal's corruption accuracy checked against robustbench's loader and accuracy, and the export for a
model-zoo submission. Also a model trained by a plain PyTorch script, outside vicinal."""

import csv
import dataclasses
import importlib.util
import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import CIFAR_DIR, ROOT, needs_cifar, run_cli

import vicinal
from vicinal.core.errors import VicinalError
from vicinal.external.given import weights_sha256

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("robustbench") is None,
    reason='robustbench is not installed (pip install -e ".[dev]" or "vicinal[robustbench]")',
)

CORRUPTIONS = ["gaussian_noise", "brightness", "contrast"]
ZOO = (
    "Kireev2021Effectiveness_RLATAugMix"  # a PreActResNet-18 entry of RobustBench's CIFAR-10 corruptions zoo
)

# A training script that knows nothing of vicinal (also used by studies/side_by_side.py).
PLAIN_SCRIPT = ROOT / "studies" / "train_plain.py"


@pytest.fixture(autouse=True)
def _robustbench():
    """robustbench imported as vicinal imports it (autoattack from pyautoattack, import-time warnings
    silenced), before a test reaches into its modules."""
    from vicinal.external.robustbench import import_robustbench

    import_robustbench()


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """The plain script run in its own process; its model class imported from the script file."""
    root = tmp_path_factory.mktemp("plain")
    script = PLAIN_SCRIPT
    weights = root / "plain-cnn.pt"
    folder = CIFAR_DIR / "cifar-10-batches-py"
    done = subprocess.run(
        [sys.executable, str(script), str(folder), str(weights), "3"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    spec = importlib.util.spec_from_file_location("train_plain", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_plain"] = module  # its class must be importable by name for the fingerprint
    spec.loader.exec_module(module)
    model = module.PlainCNN()
    model.load_state_dict(torch.load(weights, weights_only=True))
    return root, model.eval(), weights


@pytest.fixture(scope="module")
def plain_on_c(plain, tmp_path_factory):
    """The plain model evaluated by vicinal on a CIFAR-10-C folder in the released layout, written with
    vicinal.data.corrupted.write_set from the real CIFAR subset (3 corruptions × 5 severities)."""
    from vicinal.data.corrupted import write_set
    from vicinal.data.datasets import load_dataset

    root, model, _ = plain
    test = load_dataset("cifar10", CIFAR_DIR).test
    folder = tmp_path_factory.mktemp("c") / "CIFAR-10-C"
    source = {"dataset": "cifar10", "path": str(CIFAR_DIR), "test_fingerprint": test.fingerprint()}
    write_set(
        test,
        folder,
        CORRUPTIONS,
        [1, 2, 3, 4, 5],
        seed=0,
        table=None,
        device=torch.device("cpu"),
        source=source,
    )
    result = vicinal.evaluate(
        model,
        suite="cifar10-c",
        name="plain-cnn",
        evaluators=["clean", "corruption"],
        settings={
            "evaluators.corruption.corruptions": CORRUPTIONS,
            "evaluators.corruption.path": str(folder),
            "evaluators.corruption.source": "disk",
        },
        data_dir=CIFAR_DIR,
        results_dir=root / "results",
        cache_dir=root / "cache",
    )
    return result, folder, test


def test_autoattack_alias_only_where_missing():
    from vicinal.external.robustbench import import_robustbench

    import_robustbench()
    autoattack = sys.modules["autoattack"]
    if importlib.util.find_spec("pyautoattack") is not None and autoattack.__name__ == "pyautoattack":
        assert sys.modules["autoattack.state"].__name__ == "pyautoattack.state"
    from robustbench.utils import clean_accuracy, load_model

    assert callable(load_model) and callable(clean_accuracy)


def test_zoo_names_and_datasets_are_checked():
    from vicinal.external.robustbench import zoo_entries

    assert ZOO in zoo_entries("cifar10", "corruptions") and "Standard" in zoo_entries("cifar10", "Linf")
    with pytest.raises(VicinalError, match="did you mean Kireev2021Effectiveness_RLATAugMix"):
        vicinal.evaluate(
            robustbench="Kireev2021Effectiveness_RLATAugmix", suite="cifar10-c", data_dir=CIFAR_DIR
        )
    with pytest.raises(VicinalError, match="dataset is digits"):
        vicinal.evaluate(robustbench="Standard", suite="digits-c")
    with pytest.raises(VicinalError, match="--threat 'Lfoo'"):
        vicinal.evaluate(robustbench="Standard", threat="Lfoo", suite="cifar10-c", data_dir=CIFAR_DIR)


@needs_cifar
@pytest.mark.slow
def test_zoo_model_offline_from_robustbenchs_model_folder(isolated):
    """A zoo entry's checkpoint placed where robustbench.utils.load_model looks for it
    (<model_dir>/<dataset>/<threat>/<name>.pt; random weights: the mechanics, not the numbers) is loaded by
    robustbench's own code without a network and evaluated like any model."""
    from vicinal.external.robustbench import checkpoint_path, zoo_entries

    net = zoo_entries("cifar10", "corruptions")[ZOO]["model"]()
    path = checkpoint_path(isolated / "models", "cifar10", "corruptions", ZOO)
    path.parent.mkdir(parents=True)
    torch.save({"last": net.state_dict()}, path)  # the layout of this entry's published checkpoint
    out = run_cli(
        "evaluate", "--robustbench", ZOO, "--suite", "cifar10-c", "--data-dir", str(CIFAR_DIR),
        "--evaluators", "clean", "--quiet", cwd=isolated,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (file,) = (isolated / "results" / "cifar10-c" / ZOO).glob("*.json")
    doc = json.loads(file.read_text())
    origin = doc["evaluated"]
    assert origin["kind"] == "robustbench" and origin["robustbench"]["threat_model"] == "corruptions"
    assert origin["robustbench"]["name"] == ZOO and origin["architecture"] == "Kireev2021EffectivenessNet"
    assert Path(origin["checkpoint"]) == path.resolve() and origin["weights_sha256"] == weights_sha256(net)
    assert doc["metrics"]["acc"] >= 0 and doc["data"]["n_test"] == 1017
    assert "evaluated" in out.stdout


def _padded_copy(folder: Path, target: Path, n: int) -> None:
    """robustbench's loader hard-codes 10,000 images per severity (``n_total_cifar`` in
    ``load_corruptions_cifar``): severity s starts at row (s − 1)·10,000. The same images are laid out that
    way, the rest of each block filled with blank images and label −1, which would show if they were read."""
    target.mkdir(parents=True)
    for name in [*CORRUPTIONS, "labels"]:
        arr = np.load(folder / f"{name}.npy")
        padded = np.full((5 * 10_000, *arr.shape[1:]), -1 if name == "labels" else 0, dtype=arr.dtype)
        for s in range(5):
            padded[s * 10_000 : s * 10_000 + n] = arr[s * n : (s + 1) * n]
        np.save(target / f"{name}.npy", padded)


@needs_cifar
@pytest.mark.slow
def test_corruption_accuracy_agrees_with_robustbench(plain, plain_on_c, tmp_path):
    """On a CIFAR-10-C folder in the released layout made from the real CIFAR subset, vicinal's accuracy
    per (corruption, severity) equals robustbench's load_cifar10c + clean_accuracy on the same model and
    images, and c_acc is their unweighted mean, as robustbench.eval.corruptions_evaluation averages."""
    from robustbench.data import load_cifar10c
    from robustbench.utils import clean_accuracy

    _, model, _ = plain
    result, folder, test = plain_on_c
    n = len(test)
    _padded_copy(folder, tmp_path / "rb" / "CIFAR-10-C", n)
    theirs = {}
    for c in CORRUPTIONS:
        for s in range(1, 6):
            x, y = load_cifar10c(n, s, str(tmp_path / "rb"), shuffle=False, corruptions=[c])
            assert len(y) == n and int(y.min()) >= 0
            theirs[f"c_acc/{c}/s{s}"] = clean_accuracy(model, x, y, batch_size=100)
    diffs = {k: abs(result.metrics[k] - v) for k, v in theirs.items()}
    assert max(diffs.values()) == 0, diffs
    assert len(set(theirs.values())) > 3  # a model that tells the cells apart, not a constant
    assert result.metrics["c_acc"] == pytest.approx(statistics.fmean(theirs.values()), abs=1e-12)
    clean = clean_accuracy(model, test.images.float() / 255, test.labels, batch_size=100)
    assert result.metrics["acc"] == clean
    artifacts = ROOT / "tests" / "artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "robustbench-agreement.json").write_text(
        json.dumps({"images_per_cell": n, "max_abs_diff": max(diffs.values()), "cells": theirs}, indent=1)
    )


@needs_cifar
@pytest.mark.slow
def test_export_for_a_robustbench_submission(plain, plain_on_c, tmp_path):
    """The model-info JSON (robustbench.utils.ModelInfo's fields, accuracies as its update_json writes
    them), the state dict where load_model looks, the per-cell CSV in its layout; a result not measured
    under RobustBench's protocol is refused unless --allow-partial, which says so in the footnote."""
    from robustbench.utils import ModelInfo

    _, model, weights = plain
    result_file = plain_on_c[0].path
    out = tmp_path / "export"
    args = ["export", "--robustbench", str(result_file), "--out", str(out)]
    refused = run_cli(*args, cwd=tmp_path)
    assert (
        refused.returncode == 2 and "not measured under RobustBench's corruptions protocol" in refused.stderr
    )
    assert "1017 test images" in refused.stderr and "corruptions missing: shot_noise" in refused.stderr
    no_weights = run_cli(*args, "--allow-partial", cwd=tmp_path)
    assert no_weights.returncode == 2 and "pass --checkpoint" in no_weights.stderr
    done = run_cli(*args, "--allow-partial", "--checkpoint", str(weights), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = vicinal.store.results.read_result(result_file)
    info = json.loads((out / "model_info" / "cifar10" / "corruptions" / "plain-cnn.json").read_text())
    assert set(info) <= {f.name for f in dataclasses.fields(ModelInfo)}
    assert info["clean_acc"] == str(round(result.metrics["acc"] * 100, 2))
    assert info["corruptions_acc"] == str(round(result.metrics["c_acc"] * 100, 2))
    assert info["dataset"] == "cifar10" and info["architecture"] == "PlainCNN" and info["eps"] is None
    assert info["footnote"].startswith("Not RobustBench's protocol") and info["additional_data"] is None
    state = torch.load(out / "cifar10" / "corruptions" / "plain-cnn.pt", weights_only=True)
    fresh = type(model)()
    fresh.load_state_dict(state)
    assert weights_sha256(fresh) == weights_sha256(model)
    table = (out / "model_info" / "cifar10" / "corruptions" / "unaggregated_results.csv").read_text()
    rows = list(csv.reader(table.splitlines()))
    assert (
        rows[0][1:] == [c for c in CORRUPTIONS for _ in range(5)]
        and rows[1][1:] == ["1", "2", "3", "4", "5"] * 3
    )
    assert [float(v) for v in rows[2][1:6]] == [
        result.metrics[f"c_acc/gaussian_noise/s{s}"] for s in range(1, 6)
    ]
    assert "Fill in by hand" in (out / "SUBMISSION.md").read_text()
    other = tmp_path / "other.pt"
    torch.save({k: v + 1 if v.is_floating_point() else v for k, v in state.items()}, other)
    wrong = run_cli(*args, "--allow-partial", "--checkpoint", str(other), cwd=tmp_path)
    assert wrong.returncode == 0  # a python object's result records no file hash to check against


@needs_cifar
@pytest.mark.slow
def test_export_takes_a_vicinal_runs_cached_final_checkpoint(tmp_path):
    (result,) = vicinal.run(
        "cifar10-c",
        methods=["erm"],
        seeds=[0],
        epochs=1,
        limit_train=128,
        model="small-cnn",
        evaluators=["clean", "corruption"],
        settings={
            "evaluators.corruption.corruptions": ["brightness"],
            "evaluators.corruption.severities": [1],
        },
        data_dir=CIFAR_DIR,
        results_dir=tmp_path / "results",
        cache_dir=tmp_path / "cache",
    )
    from vicinal.external.robustbench import export_submission

    with pytest.raises(VicinalError, match=r"corrupted set '(on the fly|generated)'"):
        export_submission(result.path, tmp_path / "x", cache_dir=tmp_path / "cache")
    written = export_submission(result.path, tmp_path / "x", cache_dir=tmp_path / "cache", allow_partial=True)
    (checkpoint,) = (tmp_path / "cache" / "checkpoints").glob("*.pt")
    cached = torch.load(checkpoint, weights_only=True)["model"]
    exported = torch.load(written["weights"], weights_only=True)
    assert exported.keys() == cached.keys() and all(torch.equal(exported[k], cached[k]) for k in cached)
    info = json.loads(written["model_info"].read_text())
    assert info["architecture"] == "small-cnn" and info["additional_data"] is False
    assert "small-cnn" in written["notes"].read_text()
    with pytest.raises(VicinalError, match="not in the cache"):
        export_submission(result.path, tmp_path / "y", cache_dir=tmp_path / "elsewhere", allow_partial=True)
