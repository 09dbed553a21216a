"""Corrupted test sets (-C) on disk: the released Hendrycks/RobustBench layout, read batch by batch.

Layout (CIFAR-10-C, CIFAR-100-C, and what ``vicinal corrupt`` writes for any dataset): one
``<corruption>.npy`` of uint8 ``(S·N, H, W, 3)`` per corruption, severity-major (rows ``(s−1)·N`` to
``s·N`` hold severity ``s``), plus ``labels.npy`` ``(S·N,)``. Files are memory-mapped and sliced one batch
at a time, so evaluating CIFAR-10-C (19 × 150 MB) needs only a batch in RAM — robustbench's loaders
``np.load`` whole arrays, which is why they are not used here.

Released files are checked against their published MD5s once (the result is remembered beside them);
sets made by ``vicinal corrupt`` carry a ``manifest.json`` with their parameters, seed, versions and the
MD5 of every file.

Longer than most modules because it holds both sources of corrupted batches (a set on disk, one made on
the fly) and writing a set, which share the layout, the checks and the checksums.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vicinal.core.errors import Interrupted, VicinalError
from vicinal.core.io import PendingFile, atomic_write, atomic_write_text
from vicinal.core.reporting import Reporter, SilentReporter
from vicinal.data.datasets import ImageSet
from vicinal.host.devices import generator_device

MANIFEST = "manifest.json"
VERIFIED = ".vicinal-verified.json"

_CIFAR10C_MD5 = {
    "fog": "7b397314b5670f825465fbcd1f6e9ccd",
    "jpeg_compression": "2b9cc4c864e0193bb64db8d7728f8187",
    "zoom_blur": "6ea8e63f1c5cdee1517533840641641b",
    "speckle_noise": "ef00b87611792b00df09c0b0237a1e30",
    "glass_blur": "7361fb4019269e02dbf6925f083e8629",
    "spatter": "8a5a3903a7f8f65b59501a6093b4311e",
    "shot_noise": "3a7239bb118894f013d9bf1984be7f11",
    "defocus_blur": "7d1322666342a0702b1957e92f6254bc",
    "elastic_transform": "9421657c6cd452429cf6ce96cc412b5f",
    "gaussian_blur": "c33370155bc9b055fb4a89113d3c559d",
    "frost": "31f6ab3bce1d9934abfb0cc13656f141",
    "saturate": "1cfae0964219c5102abbb883e538cc56",
    "brightness": "0a81ef75e0b523c3383219c330a85d48",
    "snow": "bb238de8555123da9c282dea23bd6e55",
    "gaussian_noise": "ecaf8b9a2399ffeda7680934c33405fd",
    "motion_blur": "fffa5f852ff7ad299cfe8a7643f090f4",
    "contrast": "3c8262171c51307f916c30a3308235a8",
    "impulse_noise": "2090e01c83519ec51427e65116af6b1a",
    "labels": "c439b113295ed5254878798ffe28fd54",
    "pixelate": "0f14f7e2db14288304e1de10df16832f",
}
_CIFAR100C_MD5 = {
    "fog": "4efc7ebd5e82b028bdbe13048e3ea564",
    "jpeg_compression": "c851b7f1324e1d2ffddeb76920576d11",
    "zoom_blur": "0204613400c034a81c4830d5df81cb82",
    "speckle_noise": "e3f215b1a0f9fd9fd6f0d1cf94a7ce99",
    "glass_blur": "0bf384f38e5ccbf8dd479d9059b913e1",
    "spatter": "12ccf41d62564d36e1f6a6ada5022728",
    "shot_noise": "b0a1fa6e1e465a747c1b204b1914048a",
    "defocus_blur": "d923e3d9c585a27f0956e2f2ad832564",
    "elastic_transform": "a0792bd6581f6810878be71acedfc65a",
    "gaussian_blur": "5204ba0d557839772ef5a4196a052c3e",
    "frost": "3a39c6823bdfaa0bf8b12fe7004b8117",
    "saturate": "c0697e9fdd646916a61e9c312c77bf6b",
    "brightness": "f22d7195aecd6abb541e27fca230c171",
    "snow": "0237be164583af146b7b144e73b43465",
    "gaussian_noise": "ecc4d366eac432bdf25c024086f5e97d",
    "motion_blur": "732a7e2e54152ff97c742d4c388c5516",
    "contrast": "322bb385f1d05154ee197ca16535f71e",
    "impulse_noise": "3b3c210ddfa0b5cb918ff4537a429fef",
    "labels": "bb4026e9ce52996b95f439544568cdb2",
    "pixelate": "96c00c60f144539e14cffb02ddbd0640",
}


@dataclass(frozen=True)
class Release:
    """A published -C set: where it comes from and what its files must hash to."""

    dataset: str
    folder: str  # the folder the archive extracts to, looked for inside the data dir
    archive: str
    archive_md5: str
    archive_bytes: int | None
    urls: tuple[str, ...]
    n_per_severity: int
    file_md5: dict[str, str] = field(default_factory=dict)
    layout: str = "npy"  # "npy" (CIFAR) or "folders" (Tiny-ImageNet-C: <c>/<s>/<wnid>/*.JPEG)


# Archive checksums as published on the Zenodo records; per-file MD5s as used by torch-uncertainty's
# CIFAR-C datasets (the two agree with the extracted archives they were computed from).
RELEASES: dict[str, Release] = {
    "cifar10": Release(
        "cifar10",
        "CIFAR-10-C",
        "CIFAR-10-C.tar",
        "56bf5dcef84df0e2308c6dcbcbbd8499",
        2_918_471_680,
        (
            "https://zenodo.org/records/2535967/files/CIFAR-10-C.tar?download=1",
            "https://zenodo.org/record/2535967/files/CIFAR-10-C.tar",
        ),
        10_000,
        _CIFAR10C_MD5,
    ),
    "cifar100": Release(
        "cifar100",
        "CIFAR-100-C",
        "CIFAR-100-C.tar",
        "11f0ed0f1191edbf9fa23466ae6021d3",
        2_918_473_216,
        (
            "https://zenodo.org/records/3555552/files/CIFAR-100-C.tar?download=1",
            "https://zenodo.org/record/3555552/files/CIFAR-100-C.tar",
        ),
        10_000,
        _CIFAR100C_MD5,
    ),
    "tinyimagenet": Release(
        "tinyimagenet",
        "Tiny-ImageNet-C",
        "TinyImageNet-C.tar",
        "3d9c6e89c2609aeb4198f84c8edd1ff0",
        None,
        (
            "https://zenodo.org/records/2469796/files/TinyImageNet-C.tar?download=1",
            "https://zenodo.org/record/2469796/files/TinyImageNet-C.tar",
        ),
        10_000,
        layout="folders",
    ),
}


def default_folder(dataset: str, data_dir: Path) -> Path:
    """Where a dataset's -C set lives in the data folder: the released folder name (CIFAR-10-C, …)."""
    release = RELEASES.get(dataset)
    return data_dir / (release.folder if release else f"{dataset}-C")


def md5_of(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class VerifiedFiles:
    """Files of a folder whose MD5 was checked, by (size, mtime): each file version is hashed once."""

    def __init__(self, folder: Path):
        self.marker = folder / VERIFIED
        try:
            self.seen = json.loads(self.marker.read_text()) if self.marker.is_file() else {}
        except (OSError, json.JSONDecodeError):
            self.seen = {}
        self.changed = False

    @staticmethod
    def _stamp(path: Path) -> list[int]:
        stat = path.stat()
        return [stat.st_size, stat.st_mtime_ns]

    def fresh(self, path: Path) -> bool:
        return path.is_file() and self.seen.get(path.stem) == self._stamp(path)

    def record(self, path: Path) -> None:
        self.seen[path.stem] = self._stamp(path)
        self.changed = True

    def save(self) -> None:
        if self.changed:
            # A read-only data folder only means verifying again next time.
            with contextlib.suppress(OSError):
                atomic_write_text(self.marker, json.dumps(self.seen, indent=1))
            self.changed = False


class CorruptedSet(ABC):
    """A -C set that yields uint8 N×3×H×W batches for one corruption and severity, plus its labels."""

    corruptions: list[str]
    severities: list[int]
    n: int  # images per severity
    info: dict[str, Any]

    @abstractmethod
    def labels(self) -> torch.Tensor: ...

    @abstractmethod
    def batches(
        self, corruption: str, severity: int, batch_size: int, index: torch.Tensor | None = None
    ) -> Iterator[torch.Tensor]:
        """uint8 N×3×H×W batches of ``corruption`` at ``severity``, in test-set order (or ``index``)."""


class NpySet(CorruptedSet):
    """The released/generated ``<corruption>.npy`` layout, memory-mapped."""

    def __init__(self, folder: Path, release: Release | None = None, verify: bool = True):
        self.folder = folder
        manifest_path = folder / MANIFEST
        self.manifest: dict[str, Any] | None = None
        if manifest_path.is_file():
            try:
                self.manifest = json.loads(manifest_path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise VicinalError(f"{manifest_path} is not readable JSON ({exc}); regenerate it") from None
        self.severities = list(self.manifest["severities"]) if self.manifest else [1, 2, 3, 4, 5]
        self._labels = np.array(self._open(folder / "labels.npy", ndim=1), dtype=np.int64)  # small: in RAM
        rows = len(self._labels)
        if rows % len(self.severities):
            raise VicinalError(
                f"{folder / 'labels.npy'} has {rows} labels, not a multiple of {len(self.severities)} "
                "severities; the file is truncated or not a -C label file"
            )
        self.n = rows // len(self.severities)
        names = sorted(p.stem for p in folder.glob("*.npy") if p.stem != "labels")
        from vicinal.corruptions import ORDER

        self.corruptions = [c for c in ORDER if c in names] + [c for c in names if c not in ORDER]
        if not self.corruptions:
            raise VicinalError(f"{folder} holds labels.npy but no <corruption>.npy files")
        for c in self.corruptions:
            arr = self._open(folder / f"{c}.npy", ndim=4)
            if arr.shape[0] != rows or arr.shape[-1] != 3:
                raise VicinalError(
                    f"{folder / f'{c}.npy'} has shape {arr.shape}; expected ({rows}, H, W, 3) to match "
                    "labels.npy. The file is truncated or from another set: download or generate it again."
                )
            del arr  # mapped again per read: pages of a file in use count towards the process's RSS
        self.verified = self._verify(release) if verify else "not verified"
        self.info = {
            "path": str(folder),
            "kind": "generated" if self.manifest else "released",
            "images_per_severity": self.n,
            "severities": self.severities,
            "verified": self.verified,
            **({"manifest": self.manifest} if self.manifest else {}),
        }

    @staticmethod
    def _open(path: Path, ndim: int) -> np.ndarray:
        if not path.is_file():
            raise VicinalError(f"{path} is missing: the corrupted set in {path.parent} is incomplete")
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise VicinalError(
                f"{path} is not a readable .npy file ({exc}); it is probably truncated — download or "
                "generate it again"
            ) from None
        if arr.ndim != ndim or (ndim == 4 and arr.dtype != np.uint8):
            raise VicinalError(
                f"{path} has shape {arr.shape} and dtype {arr.dtype}; expected "
                + ("uint8 (N, H, W, 3)" if ndim == 4 else "(N,) labels")
            )
        return arr

    def _verify(self, release: Release | None) -> str:
        """MD5 of every file against the published (or manifest) checksums, once per file version."""
        expected: dict[str, str] = {}
        # Say which checksum a file failed: the one its own manifest recorded when vicinal wrote it, or the
        # one published with the release (only the latter is anybody's but vicinal's).
        if self.manifest:
            expected = dict(self.manifest.get("md5", {}))
            source = f"the MD5 {MANIFEST} recorded when vicinal wrote the set"
            again = "Delete it and generate the set again (vicinal corrupt)"
        elif release is not None:
            expected = dict(release.file_md5)
            source = f"the published MD5 of the {release.folder} release"
            again = f"Delete it and download it again (vicinal download {release.dataset}-c)"
        if not expected:
            return "no known checksums"
        seen = VerifiedFiles(self.folder)
        for name in ["labels", *self.corruptions]:
            if name not in expected:
                continue
            path = self.folder / f"{name}.npy"
            if seen.fresh(path):
                continue
            digest = md5_of(path)
            if digest != expected[name]:
                raise VicinalError(
                    f"{path}: its MD5 is {digest}, not {expected[name]} ({source}); the file was altered, "
                    f"truncated or replaced. {again}."
                )
            seen.record(path)
        seen.save()
        return "md5 ok"

    def labels(self) -> torch.Tensor:
        return torch.from_numpy(self._labels[: self.n].copy())

    def batches(
        self, corruption: str, severity: int, batch_size: int, index: torch.Tensor | None = None
    ) -> Iterator[torch.Tensor]:
        if corruption not in self.corruptions:
            raise VicinalError(f"{corruption} is not in the corrupted set at {self.folder}")
        if severity not in self.severities:
            raise VicinalError(f"severity {severity} is not in the corrupted set at {self.folder}")
        # One mapping per (corruption, severity), dropped when the stream ends, so at most one
        # severity's pages (30 MB for CIFAR) stay resident however many cells are evaluated.
        arr = np.load(self.folder / f"{corruption}.npy", mmap_mode="r")
        start = self.severities.index(severity) * self.n
        rows = np.arange(self.n) if index is None else index.numpy()
        for i in range(0, len(rows), batch_size):
            chunk = rows[i : i + batch_size] + start
            # A contiguous range is one read from the memory map; fancy indexing copies only the batch.
            block = arr[chunk[0] : chunk[-1] + 1] if _contiguous(chunk) else arr[chunk]
            yield torch.from_numpy(np.ascontiguousarray(block.transpose(0, 3, 1, 2)))


def _contiguous(rows: np.ndarray) -> bool:
    return len(rows) > 0 and rows[-1] - rows[0] == len(rows) - 1


class GeneratedSet(CorruptedSet):
    """Corrupts the clean test split on the fly, batch by batch, with a seed per (corruption, severity).
    The batches stay on the device that made them: the model reads them there, with no round trip
    through the host."""

    def __init__(
        self,
        test: ImageSet,
        corruptions: list[str],
        severities: list[int],
        seed: int,
        table: str | None,
        device: torch.device,
        chunk: int = 1000,
    ):
        self.test, self.seed, self.table, self.device, self.chunk = test, seed, table, device, chunk
        self.corruptions, self.severities, self.n = corruptions, severities, len(test)
        self.info = {
            "kind": "on the fly",
            "device": generator_device(device),
            "seed": seed,
            "chunk": chunk,
            "images_per_severity": self.n,
            "severities": severities,
        }

    def labels(self) -> torch.Tensor:
        return self.test.labels

    def batches(
        self, corruption: str, severity: int, batch_size: int, index: torch.Tensor | None = None
    ) -> Iterator[torch.Tensor]:
        images = self.test.images if index is None else self.test.images[index]
        gen = cell_generator(self.seed, corruption, severity, self.device)
        for i in range(0, len(images), self.chunk):
            y = corrupt_chunk(images[i : i + self.chunk], corruption, severity, gen, self.table, self.device)
            yield from y.split(batch_size)


def cell_generator(seed: int, corruption: str, severity: int, device: torch.device) -> torch.Generator:
    """One generator per (seed, corruption, severity): any subset of cells reproduces the same images."""
    from vicinal.corruptions import ORDER

    position = ORDER.index(corruption) if corruption in ORDER else len(ORDER)
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + position * 10 + severity)


def corrupt_chunk(
    images: torch.Tensor,
    corruption: str,
    severity: int,
    gen: torch.Generator,
    table: str | None,
    device: torch.device,
) -> torch.Tensor:
    """uint8 ``images`` corrupted on ``device``, left there."""
    from vicinal.corruptions import corrupt

    return corrupt(images.to(device), corruption, severity, generator=gen, table=table)


class FolderSet(CorruptedSet):
    """The released Tiny-ImageNet-C layout: ``<corruption>/<severity>/<wnid>/*.JPEG``, decoded per batch."""

    def __init__(self, folder: Path, wnids: list[str]):
        from vicinal.corruptions import ORDER

        index = {w: i for i, w in enumerate(wnids)}
        present = {p.name for p in folder.iterdir() if p.is_dir()}
        self.corruptions = [c for c in ORDER if c in present]
        if not self.corruptions:
            raise VicinalError(f"{folder} has no <corruption>/<severity>/ folders of Tiny-ImageNet-C")
        self.severities = [1, 2, 3, 4, 5]
        self.folder = folder
        # Every corruption and severity holds the same images (the val split), listed in one order.
        first = folder / self.corruptions[0] / "1"
        self.files = sorted(
            (p.relative_to(first), index[p.parent.name])
            for p in first.glob("*/*.JPEG")
            if p.parent.name in index
        )
        if not self.files:
            raise VicinalError(f"no JPEG images under {first}/<wnid>/ matching the dataset's classes")
        self.n = len(self.files)
        self.info = {
            "path": str(folder),
            "kind": "released (JPEG folders)",
            "images_per_severity": self.n,
            "severities": self.severities,
            "verified": "archive MD5 at download",
        }

    def labels(self) -> torch.Tensor:
        return torch.tensor([label for _, label in self.files], dtype=torch.int64)

    def batches(
        self, corruption: str, severity: int, batch_size: int, index: torch.Tensor | None = None
    ) -> Iterator[torch.Tensor]:
        from vicinal.data.datasets import read_rgb

        rows = range(self.n) if index is None else index.tolist()
        base = self.folder / corruption / str(severity)
        rows = list(rows)
        for i in range(0, len(rows), batch_size):
            block = np.stack([read_rgb(base / self.files[r][0]) for r in rows[i : i + batch_size]])
            yield torch.from_numpy(np.ascontiguousarray(block.transpose(0, 3, 1, 2)))


def find_set(
    folder: Path, release: Release | None, verify: bool = True, wnids: list[str] | None = None
) -> CorruptedSet | None:
    """The -C set in ``folder`` when it holds one, else None."""
    if (folder / "labels.npy").is_file():
        return NpySet(folder, release, verify)
    if release is not None and release.layout == "folders" and folder.is_dir() and wnids:
        return FolderSet(folder, wnids)
    return None


def write_set(
    test: ImageSet,
    out: Path,
    corruptions: list[str],
    severities: list[int],
    *,
    seed: int,
    table: str | None,
    device: torch.device,
    source: dict[str, Any],
    reporter: Reporter | None = None,
    chunk: int = 1000,
) -> dict[str, Any]:
    """Write a -C set in the released layout (plus ``manifest.json``); finished files are kept, so an
    interrupted run resumes where it stopped. Returns the manifest."""
    from vicinal.corruptions import SCALES, table_for
    from vicinal.host.environment import environment

    out.mkdir(parents=True, exist_ok=True)
    n = len(test)
    h, w = test.images.shape[-2:]
    chosen_table = table or table_for(h, w)
    settings = {
        "format": "vicinal corrupted set, released Hendrycks/RobustBench layout (severity-major .npy)",
        "source": source,
        "images_per_severity": n,
        "image_shape": [h, w, 3],
        "corruptions": corruptions,
        "severities": severities,
        "seed": seed,
        "seeding": "one torch.Generator per (seed, corruption, severity); chunks of "
        f"{chunk} images in test-set order",
        # A CUDA generator's stream is not the CPU's (and may differ between GPU models): the same seed
        # makes other images on another device.
        "device": generator_device(device),
        "table": chosen_table,
        "table_image_side": SCALES[chosen_table],
        "quantisation": "uint8 truncation of the 0–255 result, as the reference generators",
    }
    old_path = out / MANIFEST
    old = json.loads(old_path.read_text()) if old_path.is_file() else {}
    done = dict(old.get("md5", {})) if old.get("settings") == settings else {}
    versions = environment(device)["versions"]

    def write_manifest() -> dict[str, Any]:
        # Rewritten after every finished file, so an interrupted run leaves a consistent set behind.
        manifest = {"settings": settings, "severities": severities, "md5": done, "versions": versions}
        atomic_write_text(old_path, json.dumps(manifest, indent=2))
        return manifest

    # Files hashed here are recorded as verified, so reading the set right after does not hash them again.
    verified = VerifiedFiles(out)
    labels = test.labels.numpy().astype(np.int64)
    _save_npy(out / "labels.npy", np.tile(labels, len(severities)))
    done["labels"] = md5_of(out / "labels.npy")
    verified.record(out / "labels.npy")
    task = (reporter or SilentReporter()).task("corrupting", total=len(corruptions) * len(severities) * n)
    finished = 0
    try:
        for c in corruptions:
            target = out / f"{c}.npy"
            if c in done and (verified.fresh(target) or (target.is_file() and md5_of(target) == done[c])):
                task.advance(len(severities) * n, corruption=c)
                finished += 1
                continue
            shape = (len(severities) * n, h, w, 3)
            header = _npy_header(shape)
            with PendingFile(target, len(header) + math.prod(shape)) as pending:
                os.pwrite(pending.fd, header, 0)
                with os.fdopen(os.dup(pending.fd), "r+b") as f:
                    arr = np.memmap(f, dtype=np.uint8, mode="r+", offset=len(header), shape=shape)
                for k, s in enumerate(severities):
                    gen = cell_generator(seed, c, s, device)
                    for i in range(0, n, chunk):
                        y = corrupt_chunk(test.images[i : i + chunk], c, s, gen, table, device)
                        arr[k * n + i : k * n + i + len(y)] = y.permute(0, 2, 3, 1).cpu().numpy()
                        task.advance(len(y), corruption=f"{c} · severity {s}")
                arr.flush()
                del arr
                pending.commit()
            task.line(f"{c} done", severities=",".join(map(str, severities)), images=n)
            done[c] = md5_of(target)
            verified.record(target)
            verified.save()
            write_manifest()
            finished += 1
    except KeyboardInterrupt:
        raise Interrupted(
            f"{finished} of {len(corruptions)} corruptions are finished and kept in {out} (its {MANIFEST} "
            "lists them; the one being written was discarded); run the same command again to write the rest"
        ) from None
    verified.save()
    return write_manifest()


def _npy_header(shape: tuple[int, ...]) -> bytes:
    """The .npy header (format 1.0) of a C-ordered uint8 array of ``shape``: written first, the data is
    then filled in through a memory map at its end."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def _save_npy(path: Path, array: np.ndarray) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.save(f, array)

    atomic_write(path, write)
