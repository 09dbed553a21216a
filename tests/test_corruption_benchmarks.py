"""Corruption speed benchmarks (pytest-benchmark), vicinal against imagecorruptions.

The default test run (``--benchmark-disable``) executes each benchmark once, on few images, as a smoke
test. ``pytest tests/test_corruption_benchmarks.py --benchmark-enable`` (or ``tox -e bench``) measures, all
with **one torch thread** (and one OpenCV thread for imagecorruptions), so the figures compare work rather
than cores:

* per corruption at CIFAR scale: all five severities (CIFAR table) on ``VICINAL_BENCH_N32`` real 32-px
  CIFAR test images (default 200), vicinal batched; imagecorruptions per image on the same images (its
  ImageNet table); divide a round by 5·N for ms per image and severity;
* per corruption at ImageNet scale: all five severities (ImageNet table) on the same 8 real images
  upscaled to 224 px, vicinal (batched) and imagecorruptions (per image); divide a round by 40 for ms per
  image and severity;
* the whole CIFAR-C generation: 19 corruptions × 5 severities on ``VICINAL_BENCH_N`` 32-px images
  (default 256; BENCHMARKS.md's figure is with ``VICINAL_BENCH_N=10000``, the CIFAR-10 test set), and
  imagecorruptions on a few 32-px images for its per-image cost.

The reference generator itself (hendrycks/robustness ``make_cifar_c.py``) is not a package and needs
ImageMagick; BENCHMARKS.md says how it was timed beside these.

imagecorruptions 1.1.2 runs with the same two compatibility shims as in test_corruptions.py (numpy 2's
missing ``np.float_``, skimage's removed ``multichannel``).
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import CIFAR_DIR

from vicinal.corruptions import SEVERITIES, corrupt, corruption_names

FULL_N = int(os.environ.get("VICINAL_BENCH_N", "256"))
N32 = int(os.environ.get("VICINAL_BENCH_N32", "200"))
NAMES = corruption_names("all")


def _cifar(n: int) -> torch.Tensor:
    """n CIFAR-10 test images (repeated past the subset's size); smooth random images without it."""
    if (CIFAR_DIR / "cifar-10-batches-py" / "test_batch").is_file():
        from vicinal.data.datasets import load_dataset

        images = load_dataset("cifar10", CIFAR_DIR).test.images
        return images.repeat((n + len(images) - 1) // len(images), 1, 1, 1)[:n].contiguous()
    coarse = torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    return (F.interpolate(coarse, size=32, mode="bilinear", align_corners=False) * 255).to(torch.uint8)


def _upscaled(n: int) -> torch.Tensor:
    up = F.interpolate(_cifar(n).float(), size=224, mode="bicubic", align_corners=False)
    return up.round().clamp(0, 255).to(torch.uint8)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch (and OpenCV) thread for every benchmark of the module, restored afterwards."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import cv2
    threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    yield
    torch.set_num_threads(threads)
    cv2.setNumThreads(cv2_threads)


@pytest.fixture(scope="module")
def imagecorruptions():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import imagecorruptions
        import imagecorruptions.corruptions as icc
    from skimage.filters import gaussian

    def gaussian_compat(image, sigma=1, multichannel=None, **kwargs):
        if multichannel:
            kwargs["channel_axis"] = -1
        return gaussian(image, sigma=sigma, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(icc, "gaussian", gaussian_compat)
        mp.setattr(np, "float_", np.float64, raising=False)
        yield imagecorruptions.corrupt


def _run_reference(corrupt_one, arrays: list[np.ndarray], names: list[str]) -> None:
    state = np.random.get_state()
    np.random.seed(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name in names:
                for severity in SEVERITIES:
                    for image in arrays:
                        corrupt_one(image, severity=severity, corruption_name=name)
    finally:
        np.random.set_state(state)


def _images_for(benchmark, enabled: int, disabled: int = 1) -> int:
    return disabled if benchmark.disabled else enabled


def _vicinal_rounds(benchmark, images: torch.Tensor, name: str, table: str, rounds: int) -> None:
    benchmark.extra_info.update(images=len(images), severities=5, threads=torch.get_num_threads())
    for severity in (1, 5):  # caches (operators, tables, textures) filled outside the timing
        corrupt(images[:2], name, severity, seed=0, table=table)

    def run():
        for severity in SEVERITIES:
            corrupt(images, name, severity, seed=severity, table=table)

    benchmark.pedantic(run, rounds=rounds, warmup_rounds=1)


@pytest.mark.parametrize("name", NAMES)
def test_vicinal_32(benchmark, name):
    """All five severities of one corruption on N32 real 32-px images (CIFAR table), batched."""
    _vicinal_rounds(benchmark, _cifar(_images_for(benchmark, N32, 2)), name, "cifar", rounds=7)


@pytest.mark.parametrize("name", NAMES)
def test_imagecorruptions_32(benchmark, name, imagecorruptions):
    """The same images for imagecorruptions, one at a time (its ImageNet table: a per-image cost)."""
    arrays = [im.permute(1, 2, 0).numpy() for im in _cifar(_images_for(benchmark, N32))]
    benchmark.extra_info.update(images=len(arrays), severities=5)
    benchmark.pedantic(_run_reference, args=(imagecorruptions, arrays, [name]), rounds=1)


@pytest.mark.parametrize("name", NAMES)
def test_vicinal_224(benchmark, name):
    """All five severities of one corruption on 224-px images (ImageNet table), batched."""
    _vicinal_rounds(benchmark, _upscaled(_images_for(benchmark, 8)), name, "imagenet", rounds=3)


@pytest.mark.parametrize("name", NAMES)
def test_imagecorruptions_224(benchmark, name, imagecorruptions):
    """The same work for imagecorruptions, one image at a time (its glass blur: ~1 s per image)."""
    arrays = [im.permute(1, 2, 0).numpy() for im in _upscaled(_images_for(benchmark, 8))]
    benchmark.extra_info.update(images=len(arrays), severities=5)
    rounds = 1 if name == "glass_blur" else 3
    benchmark.pedantic(_run_reference, args=(imagecorruptions, arrays, [name]), rounds=rounds)


def test_vicinal_full_generation_32px(benchmark):
    """19 corruptions × 5 severities (CIFAR table) on VICINAL_BENCH_N 32-px images: a CIFAR-10-C."""
    images = _cifar(FULL_N)
    benchmark.extra_info.update(images=FULL_N, threads=torch.get_num_threads())

    def run():
        for name in NAMES:
            for severity in SEVERITIES:
                out = corrupt(images, name, severity, seed=severity, table="cifar")
                assert out.shape == images.shape

    benchmark.pedantic(run, rounds=1)


def test_imagecorruptions_all_32px(benchmark, imagecorruptions):
    """imagecorruptions' 19 × 5 on a few 32-px images (its ImageNet table: a per-image cost only)."""
    arrays = [im.permute(1, 2, 0).numpy() for im in _cifar(_images_for(benchmark, 16, 2))]
    benchmark.extra_info.update(images=len(arrays))
    benchmark.pedantic(_run_reference, args=(imagecorruptions, arrays, NAMES), rounds=1)
