"""Datasets as in-memory uint8 tensors (N×C×H×W), loaded from standard on-disk layouts.

Where the data comes from: ``--data-dir``, then ``$VICINAL_DATA_DIR``, then a cache folder
(``$XDG_CACHE_HOME/vicinal/data``). The default suite's dataset ships inside scikit-learn, so a fresh
machine without network can run it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vicinal.core.errors import VicinalError
from vicinal.core.io import check_folder
from vicinal.core.registry import Registry

DATA_ENV = "VICINAL_DATA_DIR"


def to_unit(images: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 images → float32 in [0, 1] on ``device`` (the one conversion every consumer uses)."""
    return images.to(device, non_blocking=True).float().div_(255.0)


def train_batches(order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Consecutive batches of a shuffled index order; a trailing single image is dropped, because batch
    norm cannot train on one."""
    return [b for b in order.split(batch_size) if len(b) > 1]


def count_train_batches(n: int, batch_size: int) -> int:
    return n // batch_size + (1 if n % batch_size > 1 else 0)


@dataclass
class ImageSet:
    images: torch.Tensor  # uint8, N×C×H×W
    labels: torch.Tensor  # int64, N

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> ImageSet:
        return ImageSet(self.images[index], self.labels[index])

    def update_hash(self, h: Any) -> None:
        h.update(str(tuple(self.images.shape)).encode())
        h.update(self.images.contiguous().numpy().tobytes())
        h.update(self.labels.numpy().astype(np.int64).tobytes())

    def fingerprint(self) -> str:
        h = hashlib.blake2b(digest_size=16)
        self.update_hash(h)
        return h.hexdigest()


@dataclass
class DataSplits:
    name: str
    train: ImageSet
    test: ImageSet
    num_classes: int
    class_names: list[str]
    source: str
    info: dict = field(default_factory=dict)
    val: ImageSet | None = None  # held out of the training images (for post-hoc calibration)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])  # type: ignore[return-value]

    def channel_stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of the training images in [0, 1] (the model's normalisation)."""
        x = self.train.images.to(torch.float64) / 255.0
        mean = x.mean(dim=(0, 2, 3))
        std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
        return [round(v, 6) for v in mean.tolist()], [round(v, 6) for v in std.tolist()]

    def fingerprint(self) -> str:
        """A content hash of both splits: results and caches are keyed by the data actually used."""
        h = hashlib.blake2b(digest_size=16)
        for part in (self.train, self.test):
            part.update_hash(h)
        return h.hexdigest()

    def limit_train(self, n: int) -> DataSplits:
        """The first ``n`` training images of a fixed (seed 0) shuffle; the same subset for every run seed."""
        if n <= 0 or n >= len(self.train):
            return self
        order = torch.randperm(len(self.train), generator=torch.Generator().manual_seed(0))[:n]
        return dataclasses.replace(
            self, train=self.train.subset(order.sort().values), info={**self.info, "limit_train": n}
        )

    def hold_out(self, fraction: float) -> DataSplits:
        """Move a fixed (seed 1) ``fraction`` of the training images into a validation split."""
        if fraction <= 0:
            return self
        if fraction >= 1:
            raise VicinalError(f"data.validation = {fraction}: give a fraction of the training set below 1")
        n_val = max(1, round(fraction * len(self.train)))
        order = torch.randperm(len(self.train), generator=torch.Generator().manual_seed(1))
        val, train = order[:n_val].sort().values, order[n_val:].sort().values
        return dataclasses.replace(
            self,
            train=self.train.subset(train),
            val=self.train.subset(val),
            info={**self.info, "validation": f"{n_val} training images held out (seed 1)"},
        )


Loader = Callable[[Path, bool], DataSplits]
DATASETS: Registry[Loader] = Registry("dataset", entry_point_group="vicinal.datasets")
register_dataset = DATASETS.register


def default_data_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "vicinal" / "data"


def resolve_data_dir(cli_value: str | Path | None) -> Path:
    """The data folder: ``--data-dir``, else ``$VICINAL_DATA_DIR``, else the default; one that cannot be
    a folder (a file, a symbolic link loop) is an error here rather than "not found" further on."""
    if cli_value:
        folder = Path(cli_value).expanduser()
    elif os.environ.get(DATA_ENV):
        folder = Path(os.environ[DATA_ENV]).expanduser()
    else:
        folder = default_data_dir()
    check_folder(folder, "data folder")
    return folder


def load_dataset(name: str, data_dir: str | Path | None = None, download: bool = False) -> DataSplits:
    return DATASETS.get(name)(resolve_data_dir(data_dir), download)


def _missing(dataset: str, name: str, looked_in: Path, folder: str) -> VicinalError:
    return VicinalError(
        f"{dataset} not found: looked for {folder}/ in {looked_in}. Either download it with "
        f"`vicinal download {name} --data-dir {looked_in}` (needs network), or point "
        f"--data-dir (or ${DATA_ENV}) at the folder that contains {folder}/."
    )


# ---------------------------------------------------------------- digits (embedded, offline)


@register_dataset("digits")
def load_digits(data_dir: Path, download: bool) -> DataSplits:
    """scikit-learn's 1,797 handwritten digits (8×8, 17 grey levels), upsampled to 3×32×32.

    Split 75/25, stratified by class, with a fixed seed (0), so every machine gets the same split.
    """
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    images = F.interpolate(images, size=(32, 32), mode="bilinear", align_corners=False)
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=0.25, random_state=0, stratify=bunch.target
    )
    train_idx, test_idx = torch.from_numpy(np.sort(train_idx)), torch.from_numpy(np.sort(test_idx))
    return DataSplits(
        "digits",
        ImageSet(images[train_idx], labels[train_idx]),
        ImageSet(images[test_idx], labels[test_idx]),
        num_classes=10,
        class_names=[str(i) for i in range(10)],
        source="sklearn.datasets.load_digits (UCI optdigits test set), bilinear 8→32 px, grey→RGB",
        info={"split": "stratified 75/25, random_state=0"},
    )


# ---------------------------------------------------------------- CIFAR (python pickle layout)

CIFAR_ARCHIVES = {
    # name: (url, archive md5, folder inside the archive)
    "cifar10": (
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
        "cifar-10-batches-py",
    ),
    "cifar100": (
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "eb9058c3a382ffc7106e4002c42a8d85",
        "cifar-100-python",
    ),
}


class _CifarUnpickler(pickle.Unpickler):
    """CIFAR's python batches are pickles by nature (the format its authors chose). A pickle can name any
    importable callable, so a batch is read admitting only what the format uses — builtin containers,
    bytes and strings, and numpy arrays (numpy 1 and 2 module paths, Python 2 and 3 pickles) — and
    anything else is refused before it is called."""

    ALLOWED: frozenset[tuple[str, str]] = frozenset(
        {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy.core.numeric", "_frombuffer"),
            ("numpy._core.numeric", "_frombuffer"),
            ("_codecs", "encode"),  # how Python 3 pickles bytes at protocol 2
            ("builtins", "bytearray"),
            ("copy_reg", "_reconstructor"),  # Python 2 pickles of numpy arrays name these two
            ("__builtin__", "object"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: not part of the CIFAR format")
        if module == "copy_reg":
            module = "copyreg"
        if module == "__builtin__":
            module = "builtins"
        return super().find_class(module, name)


def _unpickle(path: Path) -> Any:
    """One CIFAR batch file, safely (see :class:`_CifarUnpickler`); every way it can fail is one error."""
    try:
        with open(path, "rb") as f:
            return _CifarUnpickler(f, encoding="latin1").load()
    except PermissionError:
        raise VicinalError(f"cannot read {path}: permission denied; make it readable (chmod u+r)") from None
    except OSError as exc:
        raise VicinalError(
            f"cannot read {path}: {exc.strerror or exc}; replace it or fix its permissions"
        ) from None
    except pickle.UnpicklingError as exc:
        if "refused to load" in str(exc):
            raise VicinalError(f"{path} is not a plain CIFAR batch: {exc}; it was not loaded") from None
        raise VicinalError(
            f"{path} is truncated or damaged ({exc}); replace it with an intact copy"
        ) from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError) as exc:
        size = path.stat().st_size
        what = "empty (0 bytes)" if size == 0 else f"truncated or damaged ({type(exc).__name__}: {exc})"
        raise VicinalError(
            f"{path} is {what}; replace it with an intact copy (e.g. `vicinal download`)"
        ) from None


def _cifar_folder(data_dir: Path, name: str, download: bool) -> Path:
    url, md5, folder = CIFAR_ARCHIVES[name]
    marker = "data_batch_1" if name == "cifar10" else "train"
    # Accept either the parent folder or the batches folder itself.
    for candidate in (data_dir / folder, data_dir):
        if (candidate / marker).is_file():
            return candidate
    if download:
        download_archive(url, md5, data_dir)
        return data_dir / folder
    raise _missing("CIFAR-10" if name == "cifar10" else "CIFAR-100", name, data_dir, folder)


def _cifar_images(raw: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(raw, dtype=np.uint8).reshape(-1, 3, 32, 32))


def _check_cifar(d: Any, path: Path, label_key: str, num_classes: int) -> None:
    """The batch is what the format promises; a wrong dtype is an error, never a silent uint8 wrap."""
    if not isinstance(d, dict):
        raise VicinalError(f"{path} is not a CIFAR python batch (it holds a {type(d).__name__}, not a dict)")
    data = d.get("data")
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072 or label_key not in d:
        raise VicinalError(f"{path} is not a CIFAR python batch (expected 'data' N×3072 and '{label_key}')")
    if data.dtype != np.uint8:
        raise VicinalError(
            f"{path}: 'data' is {data.dtype}, the format stores uint8 pixels; the file is not CIFAR"
        )
    labels = d[label_key]
    try:
        labels = np.asarray(labels)
    except Exception:
        labels = np.asarray([])
    if labels.ndim != 1 or len(labels) != len(data):
        raise VicinalError(f"{path}: {len(data)} images but {len(labels)} labels; the file is damaged")
    if len(labels) and (
        not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= num_classes
    ):
        raise VicinalError(
            f"{path}: labels must be integers 0–{num_classes - 1}; found {labels.min()}–{labels.max()}"
        )


def read_cifar_batch(path: Path, label_key: str, num_classes: int) -> ImageSet:
    """One CIFAR python batch file (e.g. CIFAR-100's ``test``), read safely and checked; VicinalError if
    it is not one."""
    d = _unpickle(path)
    _check_cifar(d, path, label_key, num_classes)
    return ImageSet(_cifar_images(d["data"]), torch.tensor(d[label_key], dtype=torch.int64))


def _label_names(meta: Path, key: str, n: int) -> list[str]:
    """Class names from the metadata file; numbers when it is absent (it only labels figures)."""
    if not meta.is_file():
        return [str(i) for i in range(n)]
    d = _unpickle(meta)
    names = d.get(key) if isinstance(d, dict) else None
    if not isinstance(names, list) or len(names) != n:
        raise VicinalError(f"{meta} is damaged: expected {n} class names under {key!r}; replace the file")
    return [str(x) for x in names]


@register_dataset("cifar10")
def load_cifar10(data_dir: Path, download: bool) -> DataSplits:
    root = _cifar_folder(data_dir, "cifar10", download)
    parts = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        path = root / name
        if not path.exists():
            raise VicinalError(f"{path} is missing: the CIFAR-10 folder {root} is incomplete")
        d = _unpickle(path)
        _check_cifar(d, path, "labels", 10)
        parts.append((_cifar_images(d["data"]), torch.tensor(d["labels"], dtype=torch.int64)))
    names = _label_names(root / "batches.meta", "label_names", 10)
    train = ImageSet(torch.cat([p[0] for p in parts[:5]]), torch.cat([p[1] for p in parts[:5]]))
    return DataSplits("cifar10", train, ImageSet(*parts[5]), 10, list(names), str(root))


@register_dataset("cifar100")
def load_cifar100(data_dir: Path, download: bool) -> DataSplits:
    root = _cifar_folder(data_dir, "cifar100", download)
    splits = []
    for name in ("train", "test"):
        path = root / name
        if not path.exists():
            raise VicinalError(f"{path} is missing: the CIFAR-100 folder {root} is incomplete")
        d = _unpickle(path)
        _check_cifar(d, path, "fine_labels", 100)
        splits.append(ImageSet(_cifar_images(d["data"]), torch.tensor(d["fine_labels"], dtype=torch.int64)))
    names = _label_names(root / "meta", "fine_label_names", 100)
    return DataSplits("cifar100", splits[0], splits[1], 100, list(names), str(root))


# ---------------------------------------------------------------- Tiny-ImageNet-200 (folder layout)

TINYIMAGENET_ARCHIVE = (
    "http://cs231n.stanford.edu/tiny-imagenet-200.zip",
    "90528d7ca1a48142e341f4ef8d21d0de",
    "tiny-imagenet-200",
)


def read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


@register_dataset("tinyimagenet")
def load_tinyimagenet(data_dir: Path, download: bool) -> DataSplits:
    """Tiny-ImageNet-200: train/<wnid>/images/*.JPEG; the labelled val/ split serves as the test split."""
    url, md5, folder = TINYIMAGENET_ARCHIVE
    root = data_dir / folder if (data_dir / folder).is_dir() else data_dir
    if not (root / "wnids.txt").is_file():
        if not download:
            raise _missing("Tiny-ImageNet", "tinyimagenet", data_dir, folder)
        download_archive(url, md5, data_dir)
        root = data_dir / folder
    wnids = [w.strip() for w in (root / "wnids.txt").read_text().split() if w.strip()]
    index = {w: i for i, w in enumerate(wnids)}
    train_files: list[tuple[Path, int]] = []
    for w in wnids:
        files = sorted((root / "train" / w / "images").glob("*.JPEG"))
        train_files += [(f, index[w]) for f in files]
    annotations = root / "val" / "val_annotations.txt"
    if not annotations.is_file():
        raise VicinalError(f"{annotations} is missing: the Tiny-ImageNet folder {root} is incomplete")
    test_files = []
    for line in annotations.read_text().splitlines():
        cols = line.split("\t")
        if len(cols) >= 2 and cols[1] in index:
            test_files.append((root / "val" / "images" / cols[0], index[cols[1]]))
    if not train_files or not test_files:
        raise VicinalError(f"no images found under {root}/train or {root}/val: the folder is incomplete")

    def stack(files: list[tuple[Path, int]]) -> ImageSet:
        images = np.stack([read_rgb(f) for f, _ in files]).transpose(0, 3, 1, 2)
        return ImageSet(torch.from_numpy(np.ascontiguousarray(images)), torch.tensor([c for _, c in files]))

    words = root / "words.txt"
    names = list(wnids)
    if words.is_file():
        lookup = dict(line.split("\t", 1) for line in words.read_text().splitlines() if "\t" in line)
        names = [lookup.get(w, w).split(",")[0].strip() for w in wnids]
    return DataSplits(
        "tinyimagenet",
        stack(train_files),
        stack(test_files),
        len(wnids),
        names,
        str(root),
        info={"test_split": "val (labelled)"},
    )


# ---------------------------------------------------------------- downloads


def download_archive(url: str, md5: str, data_dir: Path) -> None:
    """Download, verify (MD5) and extract an archive into ``data_dir`` using torchvision's helpers."""
    from torchvision.datasets.utils import download_and_extract_archive

    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        download_and_extract_archive(url, str(data_dir), md5=md5)
    except Exception as exc:  # network errors come in many types; all get the same advice
        raise VicinalError(
            f"download of {url} failed ({type(exc).__name__}: {exc}). Download it by hand, extract it "
            f"into {data_dir}, or point --data-dir at a folder that already holds the data."
        ) from exc
