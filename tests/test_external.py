"""Models vicinal did not train: evaluated under a suite's protocol, marked, identified by their weights."""

import csv
import hashlib
import io
import json
from pathlib import Path

import pytest
import torch
from helpers import run_cli
from torch import nn

import vicinal
import vicinal.training.models  # used below as vicinal.training.models (the package imports it lazily)
from vicinal.core.errors import VicinalError
from vicinal.store.results import load_store

TINY = {"suite": "digits-c", "evaluators": ["clean", "calibration"]}


class Probe(nn.Module):
    """A small model over images in [0, 1]; ``flat`` makes it accept one input size only."""

    def __init__(self, classes=10, flat=False):
        super().__init__()
        pool = nn.Flatten() if flat else nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), pool)
        self.head = nn.Linear(8 * (16 if not flat else 28 * 28), classes)

    def forward(self, x):
        return self.head(self.body(x))


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    return Probe(**kw)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """vicinal's own erm on the digits suite (one epoch, 64 images): a result and its cached checkpoint."""
    root = tmp_path_factory.mktemp("byom")
    results = vicinal.run(
        "digits-c",
        methods=["erm"],
        epochs=1,
        limit_train=64,
        evaluators=["clean", "calibration"],
        results_dir=root / "results",
        cache_dir=root / "cache",
    )
    (checkpoint,) = (root / "cache" / "checkpoints").glob("*.pt")
    return root, results[0], checkpoint


def test_a_trained_models_weights_evaluated_as_given_get_the_same_numbers(trained, tmp_path):
    """The same weights measured by vicinal.evaluate and by vicinal's own run agree exactly: one
    evaluation path, the same splits, subsets, bins and validation-fitted temperature."""
    root, result, checkpoint = trained
    state = torch.load(checkpoint, weights_only=True)["model"]
    torch.save(state, tmp_path / "erm.pt")
    again = vicinal.evaluate(
        tmp_path / "erm.pt",
        architecture="small-cnn-16",
        name="erm-given",
        results_dir=root / "results",
        cache_dir=root / "cache",
        **TINY,
    )
    assert again.metrics == result.metrics
    assert again.protocol == result.protocol
    assert again.evaluated["kind"] == "checkpoint"
    assert again.evaluated["normalisation"]["from"].startswith("the checkpoint")
    assert again.evaluated["sha256"] == hashlib.sha256((tmp_path / "erm.pt").read_bytes()).hexdigest()
    assert again.n_train is None and again.epochs is None
    board = vicinal.leaderboard(root / "results", suite="digits-c")
    rows = {r.label: r for r in board.boards[0].rows}
    assert rows["erm-given"].source == "evaluated" and rows["erm"].source == "measured"
    assert rows["erm-given"].epochs is None and rows["erm"].epochs == 1
    parsed = list(csv.DictReader(io.StringIO(board.to_csv())))
    assert {r["method"]: r["source"] for r in parsed} == {"erm": "measured", "erm-given": "evaluated"}
    markdown = board.to_markdown()
    assert "| evaluated |" in markdown and "not trained under its recipe" in markdown
    html = board.to_html()
    assert '<tr class="evaluated"' in html and "not trained under its recipe" in html
    # Both wrote per-example outcomes on the same test examples, so they pair: the same weights differ by
    # exactly 0, with a zero-width interval.
    assert "examples" in again.artifacts and "examples" in result.artifacts
    comparison = vicinal.api.compare(
        "erm-given",
        "erm",
        results_dir=root / "results",
        suite="digits-c",
        metrics=["acc", "ece"],
        resamples=200,
    )
    for d in comparison.differences:
        assert (d.basis, d.diff, d.low, d.high) == ("examples", 0.0, 0.0, 0.0), d.metric


def test_identity_comes_from_the_weights(isolated):
    first = vicinal.evaluate(_model(0), name="probe", **TINY)
    assert first.evaluated["kind"] == "python object"
    assert first.evaluated["class"].endswith("Probe")
    # Same weights, same evaluators: the file is reused, not rewritten.
    again = vicinal.evaluate(_model(0), name="probe", **TINY)
    assert again.path == first.path and again.created == first.created
    assert again.training_id == first.training_id
    # Other weights: another identity and another row, never averaged with the first.
    other = vicinal.evaluate(_model(1), name="probe", **TINY)
    assert other.training_id != first.training_id and other.path != first.path
    # The same weights under other evaluator settings: same training_id, new run_id.
    resized = vicinal.evaluate(_model(0), name="probe", settings={"evaluators.calibration.bins": 10}, **TINY)
    assert resized.training_id == first.training_id and resized.run_id != first.run_id
    board = vicinal.leaderboard(suite="digits-c").boards[0]
    probes = [r for r in board.rows if r.method == "probe"]
    assert len(probes) == 3 and all(r.n == 1 for r in probes)
    assert len({r.label for r in probes}) == 3  # told apart by weights (and the bins setting)
    # A normalisation applied by vicinal is part of the weights' identity.
    scaled = vicinal.evaluate(_model(0), name="probe", normalize=([0.5] * 3, [0.25] * 3), **TINY)
    assert scaled.training_id != first.training_id
    assert scaled.evaluated["normalisation"] == {
        "mean": [0.5] * 3,
        "std": [0.25] * 3,
        "from": "given (--normalize)",
    }


def test_wrong_classes_input_size_or_output_is_one_error_before_evaluation(isolated):
    with pytest.raises(VicinalError, match=r"returns shape \(2, 7\).*10 classes"):
        vicinal.evaluate(_model(classes=7), name="seven", **TINY)
    with pytest.raises(VicinalError, match=r"fails on a batch of 2 digits test images.*32×32 px"):
        vicinal.evaluate(_model(flat=True), name="flat", **TINY)

    class Pair(nn.Module):
        def forward(self, x):
            return x.mean((2, 3)), None

    with pytest.raises(VicinalError, match="returns a tuple"):
        vicinal.evaluate(Pair(), name="pair", **TINY)
    assert not list(Path("results").rglob("*.json"))  # nothing was evaluated or written
    with pytest.raises(VicinalError, match="registered method"):
        vicinal.evaluate(_model(), name="mixup", **TINY)
    with pytest.raises(VicinalError, match="method's setting"):
        vicinal.evaluate(_model(), name="p", settings={"mixup.alpha": 0.4}, **TINY)
    with pytest.raises(VicinalError, match="normalize"):
        vicinal.evaluate(_model(), name="p", normalize="0.5,0.5/0.1", **TINY)


def test_cli_checkpoint_without_normalisation_buffers(isolated):
    """A torchvision-style state dict (no normalize.mean/std) of a registered architecture: refused until
    --normalize says how its inputs were standardised; then loaded and evaluated."""
    model = vicinal.training.models.build_model("small-cnn-16", 10, [0.5] * 3, [0.5] * 3)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("normalize.")}
    torch.save(state, isolated / "plain.pt")
    args = ["evaluate", "--checkpoint", "plain.pt", "--model", "small-cnn-16", "--name", "plain"]
    args += ["--evaluators", "clean", "--quiet"]
    out = run_cli(*args, cwd=isolated)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "no normalize.mean / normalize.std buffers" in out.stderr and "--normalize suite" in out.stderr
    out = run_cli(*args, "--normalize", "suite", cwd=isolated)
    assert out.returncode == 0, out.stderr
    (path,) = Path("results/digits-c/plain").glob("*.json")
    doc = json.loads(path.read_text())
    assert doc["evaluated"]["normalisation"]["from"].startswith("the suite's training images")
    assert doc["evaluated"]["architecture"] == "small-cnn-16" and doc["training"] == {}
    assert "evaluated" in out.stdout  # the leaderboard it prints has the source column
    # The wrong architecture for the weights, a state dict for 100 classes, pickled objects: one error each.
    out = run_cli(*args[:4], "small-cnn", *args[5:], "--normalize", "none", cwd=isolated)
    assert out.returncode == 2 and "does not fit small-cnn" in out.stderr and "Traceback" not in out.stderr
    wide = vicinal.training.models.build_model("small-cnn-16", 100, [0.5] * 3, [0.5] * 3)
    torch.save(wide.state_dict(), isolated / "wide.pt")
    out = run_cli("evaluate", "--checkpoint", "wide.pt", *args[3:], cwd=isolated)
    assert out.returncode == 2 and "linear.weight is (100, 64)" in out.stderr
    torch.save({"model": model, "note": object.__new__(Probe)}, isolated / "pickled.pt")
    out = run_cli("evaluate", "--checkpoint", "pickled.pt", *args[3:], cwd=isolated)
    assert out.returncode == 2 and "is not a plain checkpoint" in out.stderr and "Traceback" not in out.stderr
    assert "weights_only=False" not in out.stderr  # never the advice to load it anyway
    for bad, message in (
        (["--checkpoint", "plain.pt", "--name", "x"], "--checkpoint needs --model"),
        (["--checkpoint", "plain.pt", "--model", "small-cnn-16"], "--name is required"),
        (["--checkpoint", "nope.pt", "--model", "small-cnn-16", "--name", "x"], "no such file"),
        (["--checkpoint", "plain.pt", "--model", "nope", "--name", "x", "--normalize", "none"], "nope"),
        ([], "nothing to evaluate"),
    ):
        out = run_cli("evaluate", *bad, "--quiet", cwd=isolated)
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, (
            bad,
            out.stderr,
        )
    assert len(load_store(Path("results")).results) == 1
