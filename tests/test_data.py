import numpy as np
import pytest
import torch
from helpers import CIFAR_DIR, needs_cifar
from PIL import Image

from vicinal.core.errors import VicinalError
from vicinal.data.datasets import load_dataset, resolve_data_dir
from vicinal.training.augment import random_crop_flip
from vicinal.training.rng import RunRandom


@needs_cifar
def test_cifar10_loader_reads_the_real_subset():
    data = load_dataset("cifar10", CIFAR_DIR)
    assert data.test.labels[:5].tolist() == [3, 8, 8, 0, 6]
    assert data.train.images.shape == (5085, 3, 32, 32) and data.train.images.dtype == torch.uint8
    assert data.test.images.shape == (1017, 3, 32, 32)
    assert data.class_names[3] == "cat" and data.num_classes == 10
    # Pointing at the batches folder itself works too.
    same = load_dataset("cifar10", CIFAR_DIR / "cifar-10-batches-py")
    assert torch.equal(same.test.images, data.test.images)


@needs_cifar
def test_limit_train_is_the_same_subset_for_every_call():
    data = load_dataset("cifar10", CIFAR_DIR)
    a, b = data.limit_train(500), data.limit_train(500)
    assert len(a.train) == 500 and torch.equal(a.train.labels, b.train.labels)
    assert a.fingerprint() != data.fingerprint()


def test_missing_cifar_names_the_folder_and_both_fixes(tmp_path):
    with pytest.raises(VicinalError) as err:
        load_dataset("cifar10", tmp_path)
    msg = str(err.value)
    assert str(tmp_path) in msg and "cifar-10-batches-py" in msg
    assert "vicinal download cifar10" in msg and "--data-dir" in msg


def test_damaged_cifar_batch_is_reported(tmp_path):
    import pickle

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(pickle.dumps({"data": np.zeros((3, 100), np.uint8), "labels": [0]}))
    with pytest.raises(VicinalError, match="not a CIFAR python batch"):
        load_dataset("cifar10", tmp_path)


def test_data_dir_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("VICINAL_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "cli") == tmp_path / "cli"
    assert resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("VICINAL_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir(None) == tmp_path / "xdg" / "vicinal" / "data"


def test_digits_default_dataset_is_real_and_reproducible():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert (len(a.train), len(a.test)) == (1347, 450)
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.labels, b.test.labels)
    assert a.train.images.shape[1:] == (3, 32, 32)
    # Stratified: every class in both splits in near-equal proportion.
    counts = torch.bincount(a.test.labels, minlength=10)
    assert counts.min() >= 43 and counts.max() <= 47
    # Real images, not noise: the digit strokes are bright on a dark background.
    assert a.train.images.float().mean() < 90 and a.train.images.max() == 255


def test_tinyimagenet_folder_layout(tmp_path):
    root = tmp_path / "tiny-imagenet-200"
    wnids = ["n01443537", "n01629819"]
    (root).mkdir()
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (root / "words.txt").write_text(
        "n01443537\tgoldfish, Carassius auratus\nn01629819\tEuropean fire salamander\n"
    )
    rng = np.random.default_rng(0)
    for k, w in enumerate(wnids):
        d = root / "train" / w / "images"
        d.mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((64, 64, 3), 40 * k + i, np.uint8)).save(d / f"{w}_{i}.JPEG")
    (root / "val" / "images").mkdir(parents=True)
    lines = []
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
            root / "val" / "images" / f"val_{i}.JPEG"
        )
        lines.append(f"val_{i}.JPEG\t{wnids[i % 2]}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    data = load_dataset("tinyimagenet", tmp_path)
    assert data.train.images.shape == (6, 3, 64, 64) and data.test.labels.tolist() == [0, 1, 0, 1]
    assert data.train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert data.class_names == ["goldfish", "European fire salamander"]


def test_augmentation_crops_and_flips_per_image():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    out = random_crop_flip(x, RunRandom(0), pad=2)
    assert out.shape == x.shape
    # Every output is a shifted/flipped window of its own zero-padded input.
    for i in range(2):
        padded = torch.nn.functional.pad(x[i], (2, 2, 2, 2))
        windows = [padded[:, r : r + 8, c : c + 8] for r in range(5) for c in range(5)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(2)) for w in windows)
    assert torch.equal(random_crop_flip(x, RunRandom(0), pad=0, crop=False, flip=False), x)
