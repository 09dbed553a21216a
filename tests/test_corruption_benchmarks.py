"""Corruption speed benchmarks (pytest-benchmark), vicinal against imagecorruptions.

The default test run (``--benchmark-disable``) executes each benchmark once, on few images, as a smoke
test. ``pytest tests/test_corruption_benchmarks.py --benchmark-enable`` measures:

* per corruption at ImageNet scale: all five severities (ImageNet table) on the same 8 real images
  upscaled to 224 px, vicinal (batched) and imagecorruptions (per image); divide a round by 40 for ms per
  image and severity;
* the whole CIFAR-C generation: 19 corruptions × 5 severities on ``VICINAL_BENCH_N`` 32-px images
  (default 256; BENCHMARKS.md's figure is with ``VICINAL_BENCH_N=10000``, the CIFAR-10 test set), and
  imagecorruptions on a few 32-px images for its per-image cost.

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

from vicinal.corruptions import ORDER, SEVERITIES, corrupt

FULL_N = int(os.environ.get("VICINAL_BENCH_N", "256"))


def _cifar(n: int) -> torch.Tensor:
    """n CIFAR-10 test images (repeated past the subset's size); smooth random images without it."""
    if (CIFAR_DIR / "cifar-10-batches-py" / "test_batch").is_file():
        from vicinal.datasets import load_dataset

        images = load_dataset("cifar10", CIFAR_DIR).test.images
        return images.repeat((n + len(images) - 1) // len(images), 1, 1, 1)[:n].contiguous()
    coarse = torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    return (F.interpolate(coarse, size=32, mode="bilinear", align_corners=False) * 255).to(torch.uint8)


def _upscaled(n: int) -> torch.Tensor:
    up = F.interpolate(_cifar(n).float(), size=224, mode="bicubic", align_corners=False)
    return up.round().clamp(0, 255).to(torch.uint8)


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


@pytest.mark.parametrize("name", ORDER)
def test_vicinal_224(benchmark, name):
    """All five severities of one corruption on 224-px images (ImageNet table), batched."""
    images = _upscaled(_images_for(benchmark, 8))
    benchmark.extra_info.update(images=len(images), severities=5, threads=torch.get_num_threads())

    def run():
        for severity in SEVERITIES:
            corrupt(images, name, severity, seed=severity, table="imagenet")

    benchmark.pedantic(run, rounds=3, warmup_rounds=1)


@pytest.mark.parametrize("name", ORDER)
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
        for name in ORDER:
            for severity in SEVERITIES:
                out = corrupt(images, name, severity, seed=severity, table="cifar")
                assert out.shape == images.shape

    benchmark.pedantic(run, rounds=1)


def test_imagecorruptions_all_32px(benchmark, imagecorruptions):
    """imagecorruptions' 19 × 5 on a few 32-px images (its ImageNet table: a per-image cost only)."""
    arrays = [im.permute(1, 2, 0).numpy() for im in _cifar(_images_for(benchmark, 16, 2))]
    benchmark.extra_info.update(images=len(arrays))
    benchmark.pedantic(_run_reference, args=(imagecorruptions, arrays, list(ORDER)), rounds=1)
