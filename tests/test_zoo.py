"""The method zoo's five additions as a whole: listed by `vicinal methods`, each trains through vicinal's
training loop (recording the images it forwards), is reproducible from its seed, and previews what it
trains on. Each method's fidelity to its reference implementation is in its own test file."""

import pytest
import torch
from helpers import CIFAR_DIR, needs_cifar, run_cli

from vicinal.core.hparams import build_config
from vicinal.core.reporting import SilentReporter
from vicinal.data.datasets import ImageSet, load_dataset
from vicinal.execution.suite import Recipe
from vicinal.training.loop import train
from vicinal.training.method import PrepareContext, get_method
from vicinal.training.models import build_model
from vicinal.training.rng import RunRandom, seed_everything

#: name → (where its vicinity lives, images forwarded per training image and step).
ZOO = {
    "gaussian-vrm": ("input", 1),
    "regmixup": ("input", 2),
    "augmix": ("input", 3),
    "fmix": ("input", 1),
    "noisy-feature-mixup": ("hidden", 1),
}


def test_vicinal_methods_lists_them(tmp_path):
    out = run_cli("methods", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = [[cell.strip() for cell in line.split("│")] for line in out.stdout.splitlines() if "│" in line]
    listed = {row[1]: row[2] for row in rows if len(row) > 2 and row[1] in ZOO}
    assert set(listed) == set(ZOO)
    for name, (where, _) in ZOO.items():
        assert listed[name] == where, name
        assert get_method(name).mixes_in == where


def _prepared(name, train_set):
    method = get_method(name)()
    method.prepare(PrepareContext(train_set, 10, "t", "fp", 0, torch.device("cpu"), None, SilentReporter()))
    return method


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits").limit_train(64)


def _train(name, data):
    seed_everything(0)
    model = build_model("small-cnn-16", 10, [0.1] * 3, [0.3] * 3)
    recipe = Recipe(epochs=1, batch_size=32, lr=0.05, schedule="cosine", crop_padding=2, flip=False)
    method = _prepared(name, data.train)
    summary = train(model, method, data.train, recipe, torch.device("cpu"), 0, SilentReporter(), name)
    return model, summary


@pytest.mark.parametrize("name", list(ZOO))
def test_each_trains_records_what_it_forwards_and_repeats_from_its_seed(name, digits):
    model, summary = _train(name, digits)
    assert summary.images == 64 and summary.forwarded == 64 * ZOO[name][1]
    assert all(torch.isfinite(p).all() for p in model.parameters())
    again, _ = _train(name, digits)
    for p, q in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


@pytest.mark.parametrize("name", list(ZOO))
def test_each_previews_what_it_trains_on(name):
    g = torch.Generator().manual_seed(0)
    train_set = ImageSet(
        torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=g), torch.arange(16)
    )
    method = _prepared(name, train_set)
    x = train_set.images[:4].float() / 255
    perm = torch.tensor([1, 2, 3, 0])
    preview = method.preview(x, torch.arange(4), perm, RunRandom(0))
    rows = list(preview.rows.items())
    assert len(rows) >= 2 and preview.note
    assert torch.equal(rows[0][1], x)  # the clean images first, unchanged
    for label, images in rows:
        assert images.shape == x.shape and images.min() >= 0 and images.max() <= 1, (name, label)
        if label != rows[0][0]:
            assert not torch.equal(images, x) or label == "image B", (name, label)
    if "image B" in preview.rows:
        assert torch.equal(preview.rows["image B"], x[perm])


@needs_cifar
@pytest.mark.slow
def test_each_trains_on_the_real_cifar_subset():
    """One epoch of 256 real CIFAR-10 images (two steps of 128) with the small CNN, the cifar10-quick recipe's
    crop and flip: every method's step runs on real 32-px colour images and leaves finite weights."""
    data = load_dataset("cifar10", CIFAR_DIR).limit_train(256)
    recipe = Recipe(epochs=1, batch_size=128, lr=0.1, nesterov=True, weight_decay=5e-4, schedule="cosine")
    for name, (_, per_image) in ZOO.items():
        seed_everything(0)
        model = build_model("small-cnn", 10, [0.5] * 3, [0.25] * 3)
        method = _prepared(name, data.train)
        summary = train(model, method, data.train, recipe, torch.device("cpu"), 0, SilentReporter(), name)
        assert summary.forwarded == 256 * per_image, name
        assert all(torch.isfinite(p).all() for p in model.parameters()), name


def test_equal_compute_variants_forward_one_image_per_training_image():
    x, y = torch.rand(8, 3, 32, 32), torch.arange(8) % 10
    model = build_model("small-cnn-16", 10, [0.1] * 3, [0.3] * 3)
    for name, values in (("regmixup", {"train_on": "half"}), ("augmix", {"jsd": False})):
        cls = get_method(name)
        out = cls(build_config(cls.Config, values, name)).training_step(model, x, y, RunRandom(0))
        assert out.count == 8, name
