"""FMix against its reference implementation, ecs-vlc/FMix.

The literals were recorded by ``studies/zoo_reference/fmix_reference.py`` running the reference's own
``fmix.py`` (checkout e5991dca018882734c8ea63599f10dfbe67fa0ae, numpy 2.4.6, scipy 1.17.1); the script
says how each was made.
"""

import hashlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from spies import Spy
from vicinal.methods.fmix import binarise, low_frequency_image, noise_shape

from vicinal.core.hparams import build_config
from vicinal.training.method import get_method
from vicinal.training.rng import RunRandom

# make_low_freq_image(decay, shape) after np.random.seed(seed) (its noise is np.random.randn(1, H, W', 2)),
# then binarise_mask(grey, λ, shape, max_soft) with random.random() returning ``coin``:
# (seed, shape, decay, λ, coin, max_soft, grey at GREY_PIXELS, mask sum, first 32 hex digits of the
# SHA-256 of the mask's float64 bytes).
GREY_PIXELS = ((0, 0), (5, 17), (30, 30), (16, 3))
CASES = [
    (
        0,
        (32, 32),
        3.0,
        0.37,
        0.9,
        0.0,
        [0.9907313293323883, 0.31702101681420686, 0.929692855823236, 0.15136489371356077],
        379.0,
        "d3f3f80f373de4130c1782dc3d4822a0",
    ),
    (
        1,
        (32, 32),
        3.0,
        0.81,
        0.2,
        0.0,
        [0.0, 0.7477571654589825, 0.16275662743950425, 0.649026387907737],
        829.0,
        "940366d00fe90b3ac19cd6f95a3dcd03",
    ),
    (
        2,
        (32, 32),
        1.5,
        0.5,
        0.7,
        0.0,
        [0.41616540670830776, 0.24220557754351515, 0.5095967109823847, 0.16869249169005837],
        512.0,
        "ae8f9447188743e47df6010922811b78",
    ),
    (
        3,
        (31, 33),
        3.0,
        0.6321,
        0.3,
        0.0,
        [0.2852810591361105, 0.5754305609469562, 0.28459009201310054, 0.9082950389019477],
        646.0,
        "c0b41d90da97b800266099cf6ad81d5d",
    ),
    (
        4,
        (64, 64),
        3.0,
        0.25,
        0.6,
        0.0,
        [0.5710946410566355, 0.2760444935935139, 0.7501718943405764, 0.4558516186210584],
        1024.0,
        "c6286eff9d187c88745dfe943e081b7e",
    ),
    (
        5,
        (32, 32),
        3.0,
        0.4,
        0.9,
        0.1,
        [0.618277325341623, 0.8793073215033431, 0.7510820442921188, 0.12839533685156332],
        410.0,
        "0642f72ec34b7d49a829da7a24cdb1b0",
    ),
    (
        6,
        (33, 31),
        4.0,
        0.93,
        0.1,
        0.2,
        [0.54811410103109, 0.3970277604386695, 0.5233087190407587, 0.8497501918179691],
        951.0,
        "c622395097c20b16849dd9a0d385ec73",
    ),
]
# 2,000 calls of sample_mask(α = 1, δ = 3, (32, 32)) after np.random.seed(0) and random.seed(0): λ's mean and
# sample std; the largest |mask mean − λ|; the boundary fraction (adjacent pixel pairs across the mask's
# edge, over all horizontal and vertical pairs): mean and sample std.
STATS = {
    "n": 2000,
    "lam_mean": 0.502688267294692,
    "lam_std": 0.29069212147553763,
    "gap_max": 0.0009761907680203574,
    "edge_mean": 0.03873966733870968,
    "edge_std": 0.0142482824608441,
}


def boundary(mask: np.ndarray) -> float:
    pairs = mask[:, 1:].size + mask[1:, :].size
    return float(((mask[:, 1:] != mask[:, :-1]).sum() + (mask[1:, :] != mask[:-1, :]).sum()) / pairs)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"seed{c[0]}")
def test_the_mask_for_the_references_noise_is_the_references_mask(case):
    seed, (h, w), decay, lam, coin, soft, grey_values, total, digest = case
    noise = np.random.RandomState(seed).randn(1, *noise_shape(h, w))[0]  # the reference's draw
    grey = low_frequency_image(noise, h, w, decay)
    assert grey.shape == (h, w) and grey.min() == 0 and grey.max() == 1
    np.testing.assert_allclose([grey[p] for p in GREY_PIXELS], grey_values, rtol=0, atol=1e-12)
    mask = binarise(grey, lam, coin > 0.5, soft)
    assert float(mask.sum()) == total
    assert hashlib.sha256(np.ascontiguousarray(mask, dtype=np.float64).tobytes()).hexdigest()[:32] == digest


def test_mask_statistics_over_many_draws_match_the_references():
    """Other random streams than the reference's, so compared in distribution over 2,000 draws: λ's mean
    within 4 standard errors and its std within 10 % (Beta(1, 1): 0.5 and 0.289); the mask's mean within
    one pixel's share of λ; and the boundary fraction — how smooth the masks are, which the decay power and
    the frequency floor set — within 4 standard errors of the difference of the two means."""
    method = get_method("fmix")()
    rng = RunRandom(0)
    x = torch.zeros(2, 3, 32, 32)
    lams, gaps, edges = [], [], []
    for _ in range(STATS["n"]):
        d = method.draw(x, rng)
        mask = d.mask.numpy()
        assert set(np.unique(mask)) <= {0.0, 1.0}
        lams.append(d.lam)
        gaps.append(abs(mask.mean() - d.lam))
        edges.append(boundary(mask))
    lams, edges = np.array(lams), np.array(edges)
    n = STATS["n"]
    assert abs(lams.mean() - STATS["lam_mean"]) < 4 * STATS["lam_std"] * (2 / n) ** 0.5
    assert abs(lams.std(ddof=1) / STATS["lam_std"] - 1) < 0.1
    assert max(gaps) <= 1 / 1024 and STATS["gap_max"] <= 1 / 1024
    se = (STATS["edge_std"] ** 2 / n + edges.var(ddof=1) / n) ** 0.5
    assert abs(edges.mean() - STATS["edge_mean"]) < 4 * se
    # The statistic can tell decay powers apart: δ = 1.5 masks are visibly rougher.
    rough = get_method("fmix")(build_config(get_method("fmix").Config, {"decay_power": 1.5}, "fmix"))
    rough_edges = [boundary(rough.draw(x, rng).mask.numpy()) for _ in range(200)]
    assert np.mean(rough_edges) > STATS["edge_mean"] + 10 * se


def test_the_step_pastes_the_partner_through_the_mask_and_mixes_the_labels_by_lambda():
    method = get_method("fmix")()
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(6, 3, 32, 32, generator=g), torch.tensor([0, 1, 2, 3, 4, 5])
    spy = Spy()
    out = method.training_step(spy, x, y, RunRandom(9))
    ref = RunRandom(9)  # the draws replayed: λ, noise, coin, permutation
    lam = ref.beta(1.0)
    noise = ref.numpy.standard_normal(noise_shape(32, 32))
    mask = binarise(low_frequency_image(noise, 32, 32, 3.0), lam, ref.numpy.random() > 0.5)
    perm = ref.permutation(6)
    m = torch.as_tensor(mask, dtype=torch.float32)
    torch.testing.assert_close(spy.seen[0], m * x + (1 - m) * x[perm])
    logits = spy.proj(spy.seen[0].mean((2, 3)))
    expected = lam * F.cross_entropy(logits, y) + (1 - lam) * F.cross_entropy(logits, y[perm])
    torch.testing.assert_close(out.loss, expected)
    assert out.count == 6


def test_defaults_are_the_papers():
    """FMix's CIFAR settings (the paper and the reference's FMix defaults): α = 1, δ = 3, max_soft = 0; the
    spectrum the paper's results were made with (the code's)."""
    c = get_method("fmix").Config()
    assert (c.alpha, c.decay_power, c.max_soft, c.spectrum) == (1.0, 3.0, 0.0, "reference")


def _wave(h, w, ky, kx):
    y, x = np.mgrid[0:h, 0:w]
    return (1 + np.cos(2 * np.pi * (ky * y / h + kx * x / w))) / 2


@pytest.mark.parametrize(("ky", "kx"), [(0, 1), (2, 3), (5, 0)])
def test_the_isotropic_spectrum_puts_each_coefficient_at_its_own_2d_frequency(ky, kx):
    """The paper's construction, checked against the plane wave a single real coefficient must make."""
    noise = np.zeros(noise_shape(32, 32))
    noise[ky, kx, 0] = 1.0
    np.testing.assert_allclose(
        low_frequency_image(noise, 32, 32, 3.0, "isotropic"), _wave(32, 32, ky, kx), atol=1e-12
    )


def test_the_reference_spectrum_uses_only_the_first_two_rows_of_the_noise():
    """The official code's construction (see methods/fmix.py): row 0, column j, slot k of the noise field
    becomes vertical frequency j and horizontal frequency k; rows 2 onwards are drawn but never used."""
    noise = np.zeros(noise_shape(32, 32))
    noise[0, 3, 1] = 1.0
    grey = low_frequency_image(noise, 32, 32, 3.0, "reference")
    np.testing.assert_allclose(grey, _wave(32, 32, 3, 1), atol=1e-12)
    field = np.random.default_rng(0).standard_normal(noise_shape(32, 32))
    changed = field.copy()
    changed[2:] = np.random.default_rng(1).standard_normal(changed[2:].shape)
    assert np.array_equal(
        low_frequency_image(field, 32, 32, 3.0, "reference"),
        low_frequency_image(changed, 32, 32, 3.0, "reference"),
    )
    assert not np.array_equal(
        low_frequency_image(field, 32, 32, 3.0, "isotropic"),
        low_frequency_image(changed, 32, 32, 3.0, "isotropic"),
    )
