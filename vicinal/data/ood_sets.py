"""Out-of-distribution image sets for the ``ood`` evaluator: the conventional downloads and sets made here.

- **Downloads** (``vicinal download NAME``, resumable and MD5-checked by :mod:`vicinal.data.download`):
  ``svhn`` — SVHN's test split, ``svhn/test_32x32.mat`` (26,032 house numbers: near-far OOD for CIFAR);
  ``cifar100`` and ``cifar10`` — the other CIFAR's test split (near OOD), read from the python batches the
  CIFAR archives extract to (the same folders the datasets use). Each can be given as a local copy instead
  (``evaluators.ood.paths = ["svhn=/data/test_32x32.mat"]``). SVHN's file must match its published MD5; a
  CIFAR test batch that does not (a subset, as in vicinal's test data) is used and said so.
- **Made here**, needing no download (so the offline digits suite gets an OOD column): ``uniform`` (each
  channel of each pixel i.i.d. uniform on [0, 1]) and ``gaussian`` (i.i.d. N(0.5, 1) clipped to [0, 1]),
  the synthetic sets of ODIN (Liang et al. 2018); ``patches``, crops of random size and position from the
  two photographs scikit-learn ships (``load_sample_images``: china.jpg, flower.jpg), resized to the
  suite's images. Seeded, generated in chunks of 1,000 with one generator each, so the same seed gives the
  same images whatever the batch size.

Every set is opened at the suite's image shape (C × H × W): a download of another size is resized
(bilinear, antialiased) and the result says so. A set yields uint8 batches, read from its file or
generated chunk by chunk, as the -C sets are streamed; its ``fingerprint`` identifies its content, so
per-example outcomes pair only across runs scored on the same images.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vicinal.core.errors import VicinalError
from vicinal.core.reporting import Reporter

#: Images generated per chunk (one generator each) by the synthetic sets.
CHUNK = 1000
#: A generated set up to this size (uint8 bytes) is kept in memory once made: a run evaluates the same set
#: for every model, and making it (the photo patches above all) costs a sizeable share of a forward pass
#: of the digits' small CNN. 64 MB holds 20,000 CIFAR-sized images.
KEEP_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Download:
    """A published file: where it comes from, its MD5, and where it goes in the data folder."""

    urls: tuple[str, ...]
    file: str  # the downloaded file's name, inside ``folder`` (archives: inside the data folder)
    md5: str
    folder: str = ""
    #: A .tar.gz to extract into the data folder (CIFAR); else the file is the set itself (SVHN's .mat).
    archive: bool = False


@dataclass
class OODImages:
    """An OOD set opened for one suite: ``n`` images at the suite's shape, in batches."""

    name: str
    n: int
    fingerprint: str
    info: dict[str, Any]
    _batches: Any = field(repr=False)

    def batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        """uint8 batches of N × C × H × W, in the set's order."""
        return self._batches(batch_size)


class OODSource(ABC):
    """One kind of OOD set: where it comes from and how it is opened at a suite's image shape."""

    name: str
    description: str
    download: Download | None = None

    def missing(self, data_dir: Path, path: str) -> str | None:
        """Why the set cannot be opened (a file not there), or None; checked before anything trains."""
        return None

    @abstractmethod
    def open(
        self, data_dir: Path, shape: tuple[int, int, int], n: int, seed: int, path: str
    ) -> OODImages: ...


def digest(*parts: Any) -> str:
    """A content hash of bytes and JSON-able parts (fingerprints of sets and of example spaces)."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _subset(total: int, n: int, seed: int, name: str) -> np.ndarray:
    """Sorted indices of a seeded subset of ``n`` of ``total`` (all for n = 0 or n ≥ total)."""
    if n <= 0 or n >= total:
        return np.arange(total)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    return np.sort(rng.choice(total, size=n, replace=False))


def _fit(batch: torch.Tensor, shape: tuple[int, int, int], name: str) -> torch.Tensor:
    """A uint8 N × C × H × W batch at the suite's shape: resized (bilinear, antialiased) if H × W differ."""
    if batch.shape[1] != shape[0]:
        raise VicinalError(
            f"OOD set {name} has {batch.shape[1]} channels, this suite's images {shape[0]}; choose other "
            "OOD sets (evaluators.ood.sets)"
        )
    if tuple(batch.shape[-2:]) == tuple(shape[1:]):
        return batch
    x = torch.nn.functional.interpolate(batch.float(), size=shape[1:], mode="bilinear", antialias=True)
    return x.round_().clamp_(0, 255).to(torch.uint8)


def _resized(native: tuple[int, int], shape: tuple[int, int, int]) -> dict[str, str]:
    if tuple(native) == tuple(shape[1:]):
        return {}
    return {"resized": f"{native[0]}×{native[1]} → {shape[1]}×{shape[2]} (bilinear, antialiased)"}


# ---------------------------------------------------------------- downloaded sets


class _FileSet(OODSource):
    """A set read from one file in the data folder (or a local copy named in ``paths``)."""

    relative: str  # the file inside the data folder

    def _file(self, data_dir: Path, path: str) -> Path:
        if path:
            given = Path(path).expanduser()
            return given / Path(self.relative).name if given.is_dir() else given
        return data_dir / self.relative

    def missing(self, data_dir: Path, path: str) -> str | None:
        file = self._file(data_dir, path)
        if file.is_file():
            return None
        if path:
            return f"OOD set {self.name}: {file} does not exist (evaluators.ood.paths)"
        return (
            f"OOD set {self.name} not found: looked for {self.relative} in {data_dir}. Download it with "
            f"`vicinal download {self.name} --data-dir {data_dir}` (needs network), give a local copy with "
            f"--set evaluators.ood.paths={self.name}=PATH, or leave it out of evaluators.ood.sets"
        )

    def _located(self, data_dir: Path, path: str) -> Path:
        why = self.missing(data_dir, path)
        if why:
            raise VicinalError(why)
        return self._file(data_dir, path)


class SVHNTest(_FileSet):
    name = "svhn"
    description = "SVHN test split (26,032 house-number crops, 32 px): near-far OOD for CIFAR"
    relative = "svhn/test_32x32.mat"
    download = Download(
        ("http://ufldl.stanford.edu/housenumbers/test_32x32.mat",),
        "test_32x32.mat",
        "eb5a983be6a315427106f1b164d9cef3",  # as torchvision's SVHN lists it
        folder="svhn",
    )

    def open(self, data_dir: Path, shape: tuple[int, int, int], n: int, seed: int, path: str) -> OODImages:
        from scipy.io import loadmat

        from vicinal.data.corrupted import VerifiedFiles, md5_of

        file = self._located(data_dir, path)
        seen = VerifiedFiles(file.parent)
        if not seen.fresh(file):
            found = md5_of(file)
            if found != self.download.md5:
                raise VicinalError(
                    f"{file}: MD5 {found} is not the published {self.download.md5} of SVHN's "
                    f"test_32x32.mat; the file is damaged or another one. Delete it and run `vicinal "
                    f"download svhn`"
                )
            seen.record(file)
            seen.save()
        try:
            x = loadmat(file, variable_names=["X"])["X"]
        except (ValueError, OSError, KeyError, TypeError) as exc:
            raise VicinalError(
                f"{file} is not a readable SVHN .mat file ({exc}); download it again"
            ) from None
        if x.ndim != 4 or x.shape[2] != 3 or x.dtype != np.uint8:
            raise VicinalError(f"{file}: X has shape {x.shape} ({x.dtype}); SVHN's is uint8 (32, 32, 3, N)")
        index = _subset(x.shape[3], n, seed, self.name)

        def batches(size: int) -> Iterator[torch.Tensor]:
            for i in range(0, len(index), size):
                block = x[..., index[i : i + size]].transpose(3, 2, 0, 1)  # H W C N → N C H W
                yield _fit(torch.from_numpy(np.ascontiguousarray(block)), shape, self.name)

        info = {
            "path": str(file),
            "md5": self.download.md5,
            "images": f"{len(index)} of {x.shape[3]}" + (f" (seeded subset, seed {seed})" if n else ""),
            **_resized(x.shape[:2], shape),
        }
        return OODImages(
            self.name, len(index), digest(self.download.md5, index.tobytes(), shape), info, batches
        )


class CifarTest(_FileSet):
    """The test split of the other CIFAR, from its python batches."""

    def __init__(self, name: str, folder: str, batch: str, label_key: str, classes: int, md5: str):
        from vicinal.data.datasets import CIFAR_ARCHIVES

        self.name, self.relative, self.label_key, self.classes, self.md5 = (
            name,
            f"{folder}/{batch}",
            label_key,
            classes,
            md5,
        )
        self.description = f"{name.upper().replace('CIFAR', 'CIFAR-')} test split (10,000 images, 32 px)"
        url, archive_md5, _ = CIFAR_ARCHIVES[name]
        self.download = Download((url,), url.rsplit("/", 1)[1], archive_md5, archive=True)

    def open(self, data_dir: Path, shape: tuple[int, int, int], n: int, seed: int, path: str) -> OODImages:
        from vicinal.data.corrupted import md5_of
        from vicinal.data.datasets import read_cifar_batch

        file = self._located(data_dir, path)
        images = read_cifar_batch(file, self.label_key, self.classes).images
        file_md5 = md5_of(file)
        index = _subset(len(images), n, seed, self.name)

        def batches(size: int) -> Iterator[torch.Tensor]:
            for i in range(0, len(index), size):
                yield _fit(images[torch.from_numpy(index[i : i + size])], shape, self.name)

        info = {
            "path": str(file),
            "md5": file_md5,
            "verified": "the published test batch"
            if file_md5 == self.md5
            else f"not the published test batch (MD5 {self.md5}): a subset or another copy",
            "images": f"{len(index)} of {len(images)}" + (f" (seeded subset, seed {seed})" if n else ""),
            **_resized(images.shape[-2:], shape),
        }
        return OODImages(self.name, len(index), digest(file_md5, index.tobytes(), shape), info, batches)


# ---------------------------------------------------------------- sets made here


class _Generated(OODSource):
    """n images generated chunk by chunk, one generator per (seed, set, chunk)."""

    #: Bump when the images a seed gives change: it is part of the fingerprint.
    version = 1

    @abstractmethod
    def chunk(self, n: int, shape: tuple[int, int, int], generator: torch.Generator) -> torch.Tensor: ...

    def content(self) -> Any:
        """What else determines the images (the photographs the patches are cut from)."""
        return None

    #: The last set made and its (n, seed, shape), kept for the next model of the process: every run of a
    #: suite evaluates the same set. Read-only: evaluators convert batches, never write into them.
    _kept: tuple[tuple, torch.Tensor] | None = None

    def _chunks(self, n: int, seed: int, shape: tuple[int, int, int]) -> Iterator[torch.Tensor]:
        base = seed * 1_000_003 + zlib.crc32(self.name.encode())
        for k, start in enumerate(range(0, n, CHUNK)):
            yield self.chunk(min(CHUNK, n - start), shape, torch.Generator().manual_seed(base + k))

    def open(self, data_dir: Path, shape: tuple[int, int, int], n: int, seed: int, path: str) -> OODImages:
        if path:
            raise VicinalError(f"OOD set {self.name} is generated; it takes no path (evaluators.ood.paths)")
        if n <= 0:
            raise VicinalError(
                f"OOD set {self.name} is generated: give its size (evaluators.ood.n_generated)"
            )
        key = (n, seed, tuple(shape))

        def batches(size: int) -> Iterator[torch.Tensor]:
            if self._kept is not None and self._kept[0] == key:
                yield from self._kept[1].split(size)
                return
            made = []
            for chunk in self._chunks(n, seed, shape):
                made.append(chunk)
                yield from chunk.split(size)
            if n * int(np.prod(shape)) <= KEEP_BYTES:
                self._kept = (key, torch.cat(made))

        info = {"generated": self.description, "images": n, "seed": seed, "version": self.version}
        fingerprint = digest(self.name, self.version, n, seed, shape, self.content())
        return OODImages(self.name, n, fingerprint, info, batches)


class Uniform(_Generated):
    name = "uniform"
    description = "each channel of each pixel i.i.d. uniform on [0, 1] (ODIN's Uniform), as 8-bit levels"

    def chunk(self, n: int, shape: tuple[int, int, int], generator: torch.Generator) -> torch.Tensor:
        return torch.randint(0, 256, (n, *shape), generator=generator, dtype=torch.uint8)


class Gaussian(_Generated):
    name = "gaussian"
    description = "each channel of each pixel i.i.d. N(0.5, 1), clipped to [0, 1] (ODIN's Gaussian)"

    def chunk(self, n: int, shape: tuple[int, int, int], generator: torch.Generator) -> torch.Tensor:
        x = torch.randn((n, *shape), generator=generator).add_(0.5).clamp_(0, 1)
        return x.mul_(255).round_().to(torch.uint8)


class Patches(_Generated):
    name = "patches"
    description = (
        "crops of scikit-learn's sample photographs (china.jpg, flower.jpg): side uniform between the "
        "image side and half the photograph's height, position uniform, resized (area-averaged)"
    )
    #: 2: crops read from a pyramid of the photographs (version 1 sampled the full-size ones densely).
    version = 2
    #: Pyramid levels: the photographs halved (2×2 means) up to this many times.
    LEVELS = 4

    def __init__(self) -> None:
        self._pyramid: list[torch.Tensor] | None = None
        self._content: str | None = None

    def pyramid(self) -> list[torch.Tensor]:
        """The photographs as float 2 × 3 × 427 × 640 (0–255), decoded once, and halved LEVELS − 1 times."""
        if self._pyramid is None:
            from sklearn.datasets import load_sample_images

            stack = np.stack(load_sample_images().images).transpose(0, 3, 1, 2)
            levels = [torch.from_numpy(np.ascontiguousarray(stack)).float()]
            for _ in range(self.LEVELS - 1):
                levels.append(torch.nn.functional.avg_pool2d(levels[-1], 2))
            self._pyramid = levels
        return self._pyramid

    def content(self) -> Any:
        # Hashed once: 6.5 MB of pixels cost 13 ms, a tenth of a digits forward pass, at every model
        if self._content is None:
            pixels = self.pyramid()[0].numpy().tobytes()
            self._content = hashlib.md5(pixels, usedforsecurity=False).hexdigest()
        return self._content

    def chunk(self, n: int, shape: tuple[int, int, int], generator: torch.Generator) -> torch.Tensor:
        from torchvision.ops import roi_align

        pyramid = self.pyramid()
        c, h, w = shape
        if c not in (1, 3):
            raise VicinalError(f"OOD set patches: cannot make {c}-channel images from RGB photographs")
        ph, pw = pyramid[0].shape[-2:]
        low = min(max(h, w), ph // 2)
        which = torch.randint(0, len(pyramid[0]), (n,), generator=generator)
        side = low + torch.rand(n, generator=generator) * (ph // 2 - low)
        top = torch.rand(n, generator=generator) * (ph - side)
        left = torch.rand(n, generator=generator) * (pw - side)
        boxes = torch.stack([which.float(), left, top, left + side, top + side], 1)
        # Each crop is read from the pyramid level where it spans less than twice the output, and there
        # roi_align averages ⌈side / h⌉² ≤ 4 bilinear samples per output pixel: shrinking a 200-px crop to
        # 32 px without aliasing, at a few samples per pixel instead of 49 from the full-size photograph.
        level = torch.ceil(torch.log2(side / (2 * max(h, w)))).clamp(0, self.LEVELS - 1).long()
        x = torch.empty((n, 3, h, w))
        for k in level.unique().tolist():
            rows = torch.nonzero(level == k).flatten()
            x[rows] = roi_align(
                pyramid[k],
                boxes[rows],
                output_size=(h, w),
                spatial_scale=0.5**k,
                sampling_ratio=-1,
                aligned=True,
            )
        if c == 1:
            x = (x * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(1, keepdim=True)
        return x.round_().clamp_(0, 255).to(torch.uint8)


OOD_SETS: dict[str, OODSource] = {
    s.name: s
    for s in (
        SVHNTest(),
        CifarTest(
            "cifar100", "cifar-100-python", "test", "fine_labels", 100, "f0ef6b0ae62326f3e7ffdfab6717acfc"
        ),
        CifarTest(
            "cifar10", "cifar-10-batches-py", "test_batch", "labels", 10, "40351d587109b95175f43aff81a1287e"
        ),
        Uniform(),
        Gaussian(),
        Patches(),
    )
}


def get_ood_set(name: str) -> OODSource:
    if name not in OOD_SETS:
        raise VicinalError(f"unknown OOD set {name!r}; choose from {', '.join(OOD_SETS)}")
    return OOD_SETS[name]


def fetch(name: str, data_dir: Path, reporter: Reporter | None = None) -> Path:
    """Download (resumably), verify and, for an archive, extract OOD set ``name`` into ``data_dir``;
    returns the file the set is read from."""
    import tarfile

    from vicinal.data.download import download_file

    source = get_ood_set(name)
    if source.download is None:
        raise VicinalError(f"OOD set {name} is generated; it needs no download")
    d = source.download
    folder = data_dir / d.folder if d.folder else data_dir
    got = download_file(d.urls, folder / d.file, d.md5, None, reporter)
    if d.archive:
        with tarfile.open(got) as tar:
            tar.extractall(data_dir, filter="data")
    return source._file(data_dir, "")
