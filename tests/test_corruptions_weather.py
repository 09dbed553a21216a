"""Weather corruptions (snow, frost, fog, spatter): what the shared harness in test_corruptions.py does not
cover (it checks all 19 in distribution against imagecorruptions, severity order, dtype and determinism).

Here: the frost textures (read once, from the installed package, cropped and rescaled like cv2), slicing
of large CPU batches, the global RNG left alone, spatter's OpenCV steps against cv2 on real liquid layers,
and image-by-image agreement with imagecorruptions (the pip port of hendrycks/robustness, ImageNet table,
on CIFAR test images upscaled to 224 px) when both are fed the same standard random variates.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import CIFAR_DIR, ROOT, needs_cifar
from PIL import Image

from vicinal.corruptions import corrupt, draws
from vicinal.corruptions import weather as W
from vicinal.corruptions.tables import TABLES

NAMES = ("snow", "frost", "fog", "spatter")


def _cv2():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import cv2

    return cv2


def _imagecorruptions(monkeypatch):
    """imagecorruptions' module of corruptions, made to run on numpy 2 (its fog uses ``np.float_``)."""
    monkeypatch.setattr(np, "float_", np.float64, raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from imagecorruptions import corruptions

    return corruptions


@pytest.fixture(scope="module")
def cifar_test():
    from vicinal.data.datasets import load_dataset

    return load_dataset("cifar10", CIFAR_DIR).test.images


def _upscale(images: torch.Tensor, size: int = 224) -> torch.Tensor:
    up = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False)
    return up.round().clamp(0, 255).to(torch.uint8)


# --------------------------------------------------------------------------------------------------------
# Frost textures


def test_frost_textures_are_the_installed_packages_and_are_read_once(monkeypatch):
    folder = Path(importlib.metadata.distribution("imagecorruptions").locate_file("imagecorruptions/frost"))
    reads: list[str] = []
    real = W._read_texture

    def counting(path: str) -> torch.Tensor:
        reads.append(path)
        return real(path)

    for cache in (W._frost_textures, W._scaled_textures, W._textures_on):
        cache.cache_clear()
    monkeypatch.setattr(W, "_read_texture", counting)
    gen = torch.Generator().manual_seed(0)
    for size in (32, 32, 64, 224):
        for severity in (1, 5):
            x = torch.rand(3, 3, size, size)
            y = corrupt(x, "frost", severity, generator=gen)
            assert y.shape == x.shape and torch.isfinite(y).all()
    # The reference draws randint(5): the first five files, each read once whatever the sizes and calls.
    assert sorted(Path(p).name for p in reads) == [
        "frost1.png",
        "frost2.png",
        "frost3.png",
        "frost4.jpg",
        "frost5.jpg",
    ]
    assert all(Path(p).parent == folder for p in reads)


def test_frost_does_not_import_imagecorruptions():
    code = (
        "import sys, torch\n"
        "from vicinal.corruptions import corrupt\n"
        "corrupt(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), 'frost', 3, seed=1)\n"
        "assert 'imagecorruptions' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_frost_rescales_like_cv2_and_crops_whole_texture_windows():
    cv2 = _cv2()
    for tex, name in zip(W._frost_textures(), W._FROST_FILES, strict=False):
        bgr = cv2.imread(W._frost_path(name))
        assert torch.equal(tex, torch.from_numpy(bgr[..., ::-1].copy()).permute(2, 0, 1))
        for factor in (0.2, 0.3):
            ref = cv2.resize(bgr, (0, 0), fx=factor, fy=factor)[..., ::-1]
            mine = W._resize_linear(tex, factor).permute(1, 2, 0).numpy()
            assert mine.shape == ref.shape
            assert np.abs(mine.astype(int) - ref).max() <= 1  # cv2's 11-bit fixed-point weights
    # With the image weight 0 and texture weight 1, each output is a window of one drawn texture.
    stack, sizes = W._scaled_textures(0.2, 32, 32)
    out = W.frost(torch.zeros(3, 3, 32, 32), (0.0, 1.0, 0.2), torch.Generator().manual_seed(3))
    for img in (out * 255).round():
        found = False
        for k in range(len(stack)):
            tex = stack[k, :, : sizes[k, 0], : sizes[k, 1]].float()
            windows = tex.unfold(1, 32, 1).unfold(2, 32, 1)  # 3 × rows × cols × 32 × 32
            found |= bool((windows == img[:, None, None]).flatten(3).all(-1).all(0).any())
        assert found


# --------------------------------------------------------------------------------------------------------
# Determinism


@pytest.mark.parametrize("name", NAMES)
def test_batches_larger_than_a_cpu_slice(name):
    # One image repeated past a slice (256 at 32 px): slices draw in turn from the one generator, so no
    # slice repeats another's draws, and the whole is reproducible.
    x = (torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    x = x.expand(300, -1, -1, -1)
    for severity in (1, 5):
        a = corrupt(x, name, severity, seed=7)
        assert torch.equal(a, corrupt(x, name, severity, generator=torch.Generator().manual_seed(7)))
        assert not torch.equal(a[:44], a[256:])
        assert ((a.int() - x.int()).abs().flatten(1).sum(1) > 0).all()  # every image changes


def test_other_sizes_and_the_global_rng_untouched():
    gen = torch.Generator().manual_seed(5)
    batches = [torch.rand(s, generator=gen) for s in ((2, 3, 40, 56), (1, 3, 100, 300), (3, 3, 64, 64))]
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    np_before = np.random.get_state()[1].copy()
    for x in batches:
        for name in NAMES:
            y = corrupt(x, name, 5, seed=1)
            assert y.shape == x.shape and torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
    assert torch.equal(before, torch.random.get_rng_state())
    assert np.array_equal(np_before, np.random.get_state()[1])


# --------------------------------------------------------------------------------------------------------
# Spatter's OpenCV steps on real liquid layers


def _liquid_layers(size: int, param: tuple, count: int, seed: int) -> list[np.ndarray]:
    """The reference's thresholded liquid layers (its first steps, skimage's gaussian)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from skimage.filters import gaussian

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        layer = gaussian(rng.normal(size=(size, size), loc=param[0], scale=param[1]), sigma=param[2])
        layer[layer < param[3]] = 0
        out.append(layer)
    return out


@pytest.mark.parametrize(
    ("size", "table", "severity"), [(32, "cifar", 1), (32, "cifar", 3), (224, "imagenet", 1)]
)
def test_water_steps_match_opencv(size, table, severity):
    cv2 = _cv2()
    param = TABLES[table]["spatter"][severity - 1]
    layers = _liquid_layers(size, param, 12 if size == 32 else 2, seed=severity)
    ker = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
    for layer in layers:
        level = (layer * 255).astype(np.uint8)
        edges = cv2.Canny(level, 50, 150)
        dist = cv2.distanceTransform(255 - edges, cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist8 = cv2.blur(dist, (3, 3)).astype(np.uint8)
        eq = cv2.equalizeHist(dist8)
        final = cv2.blur(cv2.filter2D(eq, cv2.CV_8U, ker), (3, 3)).astype(np.float32)

        t_level = torch.from_numpy(level.astype(np.float32))[None, None]
        t_edges = W._canny(t_level, 50, 150)
        assert torch.equal(t_edges[0, 0], torch.from_numpy(edges > 0))
        # OpenCV adds its float32 weights step by step, this sums exactly and rounds once: the last bit may
        # differ (never enough to change the uint8 truncation after the blur, see the water mask below).
        t_dist = W._chamfer_distance(t_edges[:, 0], 20.0)[0]
        assert torch.allclose(t_dist, torch.from_numpy(dist), rtol=0, atol=1e-5)
        assert torch.equal(W._equalize_hist(torch.from_numpy(dist8.astype(np.float32))[None, None])[0, 0],
                           torch.from_numpy(eq.astype(np.float32)))  # fmt: skip
        # float64 like the reference's layer, so its uint8 truncation sees the same numbers.
        water = W._water(torch.from_numpy(layer)[None, None])[0, 0]
        assert torch.equal(water, torch.from_numpy((level * final).astype(np.float64)))


def test_water_level_wraps_past_255_like_numpy():
    liquid = torch.tensor([0.0, 0.7, 1.0, 1.003, 1.2, 2.1]).view(1, 1, 1, -1)
    expected = (liquid.numpy().astype(np.float64) * 255).astype(np.uint8)
    level = torch.floor(liquid * 255.0).remainder_(256.0)
    assert np.array_equal(level.numpy().astype(np.uint8), expected)


def test_distance_transform_handles_no_edges_and_borders():
    cv2 = _cv2()
    for mask in (
        np.zeros((9, 13), bool),
        np.eye(9, 13, 4, dtype=bool),
        np.pad(np.ones((1, 1), bool), ((0, 30), (31, 0))),
    ):
        ref = cv2.distanceTransform(np.where(mask, 0, 255).astype(np.uint8), cv2.DIST_L2, 5)
        mine = W._chamfer_distance(torch.from_numpy(mask)[None], 20.0)[0].numpy()
        assert np.allclose(mine, np.minimum(ref, 20.0), rtol=0, atol=1e-5)


@pytest.mark.parametrize(("size", "table"), [(32, "cifar"), (224, "imagenet")])
def test_water_masks_agree_across_backends(size, table):
    """The CPU makes the reference's OpenCV calls image by image, other devices the batched torch steps:
    the same masks, bit for bit, on every water severity's real liquid layers (a float32 batch, as
    spatter draws it)."""
    for severity, param in enumerate(TABLES[table]["spatter"], start=1):
        if param[5]:
            continue  # mud: no water mask
        layers = _liquid_layers(size, param, 16 if size == 32 else 2, seed=severity)
        liquid = torch.from_numpy(np.stack(layers)).float()[:, None]
        opencv, batched = W._water_opencv(liquid), W._water(liquid)
        assert batched.abs().sum() > 0, severity  # layers with water in them
        assert torch.equal(opencv, batched), severity


# --------------------------------------------------------------------------------------------------------
# Reference fidelity with shared random variates (imagecorruptions at 224 px, the ImageNet table)


class _Variates:
    """Records the standard variates numpy's reference consumes, then replays them to torch."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.queue: list[np.ndarray] = []

    def np_uniform(self, low=0.0, high=1.0, size=None):
        u = self.rng.random(size)
        self.queue.append(np.asarray(u))
        return low + (high - low) * u

    def np_normal(self, loc=0.0, scale=1.0, size=None):
        z = self.rng.standard_normal(size)
        self.queue.append(np.asarray(z))
        return loc + scale * z

    def torch_draw(self, *size, generator=None, device=None, dtype=None, **_):
        shape = size[0] if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)) else size
        v = self.queue.pop(0)
        assert v.size == int(np.prod(shape)), (v.shape, shape)
        return torch.from_numpy(v.reshape(shape)).to(dtype or torch.float32)

    def torch_uniform(self, shape, low, high, gen, device):
        return low + (high - low) * self.torch_draw(shape)


def _replay(monkeypatch, ic, name: str, image: np.ndarray, severity: int, seed: int):
    feed = _Variates(seed)
    with monkeypatch.context() as m:
        m.setattr(np.random, "uniform", feed.np_uniform)
        m.setattr(np.random, "normal", feed.np_normal)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = np.uint8(getattr(ic, name)(Image.fromarray(image), severity))
    with monkeypatch.context() as m:
        m.setattr(torch, "rand", feed.torch_draw)
        m.setattr(torch, "randn", feed.torch_draw)
        m.setattr(draws, "uniform", feed.torch_uniform)
        mine = corrupt(torch.from_numpy(image).permute(2, 0, 1), name, severity, table="imagenet")
    assert not feed.queue  # both sides used the same number of variates
    return ref.astype(int), mine.permute(1, 2, 0).numpy().astype(int)


@needs_cifar
def test_fog_and_spatter_equal_the_reference_given_the_same_variates(monkeypatch, cifar_test):
    ic = _imagecorruptions(monkeypatch)
    images = _upscale(cifar_test[:2]).permute(0, 2, 3, 1).numpy()
    for severity in range(1, 6):
        for i, image in enumerate(images):
            for name in ("fog", "spatter"):
                ref, mine = _replay(monkeypatch, ic, name, image, severity, seed=10 * severity + i)
                diff = np.abs(ref - mine)
                # float32 here, float64 there: a truncation may land one level apart, and where the
                # smoothed liquid sits within float32 rounding of a threshold a spot may differ.
                assert diff.max() <= 1 or (diff > 1).mean() < 1e-3, (name, severity, diff.max())
                assert (diff > 0).mean() < 0.02, (name, severity)


@needs_cifar
def test_snow_is_close_to_the_reference_given_the_same_variates(monkeypatch, cifar_test):
    ic = _imagecorruptions(monkeypatch)
    image = _upscale(cifar_test[2:3]).permute(0, 2, 3, 1).numpy()[0]
    for severity in range(1, 6):
        ref, mine = _replay(monkeypatch, ic, "snow", image, severity, seed=severity)
        # imagecorruptions zooms the layer to 225 px and blurs it before cropping to 224, so near the last
        # row and column its blur reads a row/column the reference (and this code) trim away first; the
        # layer is also added rotated by 180°, so both borders are left out.
        diff = np.abs(ref - mine)[26:-26, 26:-26]
        # It also blurs the float layer where the reference truncates it to uint8 for ImageMagick (one
        # level), and float32 here may flip a layer pixel lying within rounding of the threshold.
        assert diff.mean() < 0.2 and (diff > 2).mean() < 0.002, (severity, diff.mean())
