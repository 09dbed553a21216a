"""Method.preview: what each method trains on, drawn by the runner as ``<result>.samples.png``."""

import io

import torch

from vicinal.core.hparams import build_config
from vicinal.core.reporting import SilentReporter
from vicinal.data.datasets import DataSplits, ImageSet
from vicinal.evaluation.evaluator import EvalContext
from vicinal.execution.jobs import save_samples
from vicinal.training.method import Method, PrepareContext, get_method
from vicinal.training.rng import RunRandom


def _method(name, tmp_path):
    cls = get_method(name)
    values = {"latent_dim": 8, "vae_epochs": 1} if name.startswith("varmixup") else {}
    method = cls(build_config(cls.Config, values, name))
    train = ImageSet((torch.rand(64, 3, 32, 32) * 255).to(torch.uint8), torch.arange(64) % 10)
    method.prepare(PrepareContext(train, 10, "t", "fp", 0, torch.device("cpu"), tmp_path, SilentReporter()))
    return method, train


def test_every_builtin_method_previews_the_same_pairs(tmp_path):
    x = torch.rand(4, 3, 32, 32)
    perm = torch.tensor([1, 2, 3, 0])
    for name in ("erm", "mixup", "manifold-mixup", "cutmix", "varmixup", "varmixup-beta"):
        method, _ = _method(name, tmp_path)
        preview = method.preview(x, torch.arange(4), perm, RunRandom(0))
        assert preview is not None and preview.rows, name
        first = next(iter(preview.rows.values()))
        assert torch.equal(first, x), name  # the clean images come first, unchanged
        for row, images in preview.rows.items():
            assert images.shape == x.shape and images.min() >= 0 and images.max() <= 1, (name, row)
        if name != "erm":
            assert torch.equal(preview.rows["image B"], x[perm])
    varmixup, _ = _method("varmixup", tmp_path)
    rows = varmixup.preview(x, torch.arange(4), perm, RunRandom(0)).rows
    assert {"VAE reconstruction A", "VAE reconstruction B"} <= set(rows)
    assert any(k.startswith("decoded mix, λ = ") for k in rows)


def test_preview_does_not_change_training_draws(tmp_path):
    """cutmix's box pasting was factored out for the preview; training must draw exactly as before."""
    method, train = _method("cutmix", tmp_path)
    x, y = train.images[:8].float() / 255, train.labels[:8]
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))
    a = method.training_step(model, x, y, RunRandom(3)).loss
    b = method.training_step(model, x, y, RunRandom(3)).loss
    assert torch.equal(a, b)


def _splits():
    train = ImageSet((torch.rand(40, 3, 32, 32) * 255).to(torch.uint8), torch.arange(40) % 10)
    return DataSplits("t", train, train, 10, [str(i) for i in range(10)], "test")


def test_runner_writes_the_samples_artifact(tmp_path):
    method, _ = _method("mixup", tmp_path)
    ctx = EvalContext(None, _splits(), torch.device("cpu"), artifact_stem=tmp_path / "r-seed0", title="t")
    save_samples(method, _splits(), torch.device("cpu"), ctx, print)
    assert ctx.artifacts == {"samples": "r-seed0.samples.png"}
    assert (tmp_path / "r-seed0.samples.png").read_bytes()[:4] == b"\x89PNG"


def test_a_failing_or_absent_preview_costs_no_run(tmp_path):
    class Broken(Method):
        name = "broken"

        def preview(self, x, y, perm, rng):
            raise RuntimeError("boom")

    logged = io.StringIO()
    for method in (Broken(), Method()):
        ctx = EvalContext(None, _splits(), torch.device("cpu"), artifact_stem=tmp_path / "r", title="t")
        save_samples(method, _splits(), torch.device("cpu"), ctx, SilentReporter(warnings_to=logged))
        assert ctx.artifacts == {}
    assert logged.getvalue().count("warning:") == 1 and "boom" in logged.getvalue()
