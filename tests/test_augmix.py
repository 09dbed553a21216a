"""AugMix against its reference implementation, google-research/augmix.

Every literal below was recorded by ``studies/zoo_reference/augmix_reference.py`` running the reference's
own code (checkout 9b9824c7c19bf7e72df2d085d97b99b3bfb00ba4, Pillow 13.0.0, numpy 2.4.6, torch 2.14.1,
CPU) on the formula-made inputs of ``tests/reference_inputs.py``; the script says how each was made.
"""

import hashlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from reference_inputs import pattern_images, pattern_logits
from spies import Spy
from vicinal.methods.augmix import (
    EXCLUDED,
    GEOMETRIC_OPERATIONS,
    OPERATIONS,
    PIXEL_OPERATIONS,
    AugMixDraws,
    apply_operations,
    augment,
    chains,
    draw,
    jensen_shannon,
)

from vicinal.core.hparams import build_config
from vicinal.corruptions import corruption_names
from vicinal.training.method import get_method
from vicinal.training.rng import RunRandom

# The reference's augmentations.augmentations and what augmentations_all adds to it.
REFERENCE_OPERATIONS = [
    "autocontrast",
    "equalize",
    "posterize",
    "rotate",
    "solarize",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
]
REFERENCE_EXCLUDED = ["color", "contrast", "brightness", "sharpness"]

# Each operation of augmentations.py applied to the 4 pattern images at each level of LEVELS (its
# sample_level patched to return it) and each sign (its np.random patched to draw 0.9, then 0.1: the
# reference negates above 0.5), severity 3; outputs in that order (level, sign, image), HWC bytes:
# (first 32 hex digits of their SHA-256, sum of all values).
LEVELS = [0.1, 0.3333, 0.35, 1.0, 1.25, 1.7, 2.5, 2.9999]
OPS = {
    "autocontrast": ("db284cc602e10529f3852ffac3330193", 21560672),
    "equalize": ("440180b2b852b21351b0c31e4c697986", 24547968),
    "posterize": ("631942a4b0a6515d46fa70251c030b6f", 19147136),
    "rotate": ("71458438e2490bfbb785ec54f8165cd3", 20554790),
    "solarize": ("d73baace923765a5aaef30333dafca4a", 20233076),
    "shear_x": ("c715d9c1ad1f5600e413152bbaf30fa8", 20658783),
    "shear_y": ("290f9111b8fd77fb0268e071066a804a", 20633268),
    "translate_x": ("739d1a7bf1bde6e8b859bb5fb4acd5d0", 20504553),
    "translate_y": ("8a4f860b7e46aa1e01cd705967f9c6c4", 20444204),
}

# cifar.aug (the reference's training-time AugMix, severity 3, width 3, depth -1, α = 1) on pattern image
# ``image`` after np.random.seed(seed), with every numpy draw logged: the Dirichlet weights and m (as the
# float32 it uses), each chain's depth, operations (index into the list), levels and signs (0.0 and +1
# where the operation draws none); the hash of the three chains' PIL images (the order the reference's
# preprocess saw them, HWC bytes); and the mixed view mapped back to [0, 1] (x·0.5 + 0.5, float64): its
# sum, sum of squares and the values at PIXELS (channel, row, column).
PIXELS = ((0, 0, 0), (1, 5, 17), (2, 31, 31), (0, 16, 3))
VIEWS = [
    {
        "seed": 0,
        "image": 0,
        "weights": [0.2675182819366455, 0.42215755581855774, 0.31032413244247437],
        "m": 0.5625832080841064,
        "depth": [2, 2, 2],
        "ops": [[2, 6], [6, 1], [8, 3]],
        "levels": [
            [1.3690029126618084, 0.2644676342205852],
            [2.4552893134489304, 0.0],
            [0.35267496913446805, 2.8757499609638346],
        ],
        "signs": [[1, 1], [1, 1], [1, 1]],
        "chains_sha": "cbdb221b045c0d088196883f3bc3ddd1",
        "sum": 1359.3459289073944,
        "sumsq": 681.0384618302323,
        "pixels": [0.09588316082954407, 0.43062639236450195, 0.07549333572387695, 0.34966665506362915],
    },
    {
        "seed": 1,
        "image": 1,
        "weights": [0.29749274253845215, 0.7024441957473755, 6.306014256551862e-05],
        "m": 0.6732138395309448,
        "depth": [1, 1, 3],
        "ops": [[1], [7], [4, 2, 2]],
        "levels": [[0.0], [1.1021261084248386], [1.315664091769555, 1.621189662761327, 2.7504898712797754]],
        "signs": [[1], [1], [1, 1, 1]],
        "chains_sha": "df4fac9dd3df6d1307d1bde6abc5c6d7",
        "sum": 1333.8668058812618,
        "sumsq": 711.7533068616813,
        "pixels": [0.014835923910140991, 0.24292945861816406, 0.15916281938552856, 0.29718753695487976],
    },
    {
        "seed": 2,
        "image": 2,
        "weights": [0.410026878118515, 0.018807116895914078, 0.5711659789085388],
        "m": 0.5087383389472961,
        "depth": [3, 2, 3],
        "ops": [[1, 5, 4], [7, 3], [3, 6, 2]],
        "levels": [
            [0.0, 0.44785657352953046, 1.9012881150309553],
            [0.4902818415003073, 2.377471928668353],
            [0.3309718833262769, 0.9348195660230125, 0.46876391793370464],
        ],
        "signs": [[1, 1, 1], [-1, -1], [-1, 1, 1]],
        "chains_sha": "a0b63308a5f1d393c8dbac3614d2a04d",
        "sum": 1056.0013350844383,
        "sumsq": 467.58672217318707,
        "pixels": [0.17403355240821838, 0.7061524987220764, 0.3458481729030609, 0.40423786640167236],
    },
    {
        "seed": 3,
        "image": 3,
        "weights": [0.33688220381736755, 0.5184083580970764, 0.14470946788787842],
        "m": 0.8010622262954712,
        "depth": [1, 3, 3],
        "ops": [[4], [8, 2, 1], [5, 8, 1]],
        "levels": [
            [0.18664101154784418],
            [0.7251733244032644, 1.8135021705074175, 0.0],
            [1.2668458663209785, 1.8011979101398272, 0.0],
        ],
        "signs": [[1], [1, 1, 1], [-1, 1, 1]],
        "chains_sha": "de0fed9da8ed17151144d657595df766",
        "sum": 1481.674476057291,
        "sumsq": 872.1415226221563,
        "pixels": [0.08492237329483032, 0.18553099036216736, 0.7039119005203247, 0.563024640083313],
    },
    {
        "seed": 4,
        "image": 0,
        "weights": [0.43718504905700684, 0.10152387619018555, 0.46129110455513],
        "m": 0.02403530851006508,
        "depth": [1, 3, 3],
        "ops": [[4], [4, 7, 6], [8, 0, 8]],
        "levels": [
            [2.360210473201882],
            [2.951861963808407, 1.2361219654401274, 0.8727739559714806],
            [0.15517175832416258, 0.0, 1.3944126725359238],
        ],
        "signs": [[1], [1, -1, -1], [1, 1, 1]],
        "chains_sha": "dc7df8858709d321e28f4db1f01a48e7",
        "sum": 1341.5978045165539,
        "sumsq": 658.0163410388551,
        "pixels": [0.15613213181495667, 0.6027090549468994, 0.12802478671073914, 0.35287338495254517],
    },
    {
        "seed": 5,
        "image": 1,
        "weights": [0.09927750378847122, 0.8091342449188232, 0.09158825874328613],
        "m": 0.6359252333641052,
        "depth": [2, 3, 3],
        "ops": [[5, 1], [4, 2, 1], [7, 0, 0]],
        "levels": [
            [1.9834307614078883, 0.0],
            [0.6920487687087172, 0.958631804927579, 0.0],
            [0.9255890538599549, 0.0, 0.0],
        ],
        "signs": [[-1, 1], [1, 1, 1], [1, 1, 1]],
        "chains_sha": "e076a25472a79010808f31681468395a",
        "sum": 1323.520031929016,
        "sumsq": 743.3816608527056,
        "pixels": [0.0, 0.11774659156799316, 0.27572888135910034, 0.35350966453552246],
    },
]

# 2,000 calls of cifar.aug after np.random.seed(0), alternating pattern images 0 and 2: the mean absolute
# change of a view from its image (in [0, 1]), averaged over the pixels: mean and sample std over calls.
CHANGE = {"n": 2000, "mean": 0.04507308585934097, "std": 0.03573008517898119}

# cifar.train's loss for one batch: a model returning pattern_logits(6, 10, v) for the clean images (v = 0)
# and the two views (v = 1, 2), targets [0, 3, 9, 1, 1, 7]; captured at loss.backward().
JSD_TARGETS = [0, 3, 9, 1, 1, 7]
JSD_LOSS = 14.91372299194336


def _images() -> torch.Tensor:
    return torch.from_numpy(pattern_images()).permute(0, 3, 1, 2).contiguous()


def _digest(tensors) -> tuple[str, int]:
    h, total = hashlib.sha256(), 0
    for t in tensors:
        hwc = t.permute(0, 2, 3, 1).contiguous().numpy()
        h.update(hwc.tobytes())
        total += int(hwc.astype(np.int64).sum())
    return h.hexdigest()[:32], total


def test_the_operations_are_the_references_and_none_is_a_test_corruption():
    assert list(OPERATIONS) == REFERENCE_OPERATIONS
    assert sorted(EXCLUDED) == sorted(REFERENCE_EXCLUDED)
    assert set(PIXEL_OPERATIONS) | set(GEOMETRIC_OPERATIONS) == set(OPERATIONS)
    corruptions = set(corruption_names("all"))
    # Disjoint from every corruption vicinal evaluates on, and what was left out names the corruptions it
    # overlaps (so the reason for leaving it out can be checked against the corruption list).
    assert not set(OPERATIONS) & corruptions
    assert not set(OPERATIONS) & set(EXCLUDED)
    for name, overlapped in EXCLUDED.items():
        assert overlapped and set(overlapped) <= corruptions, name


@pytest.mark.parametrize("name", REFERENCE_OPERATIONS)
def test_each_operation_is_bit_identical_to_the_references(name):
    images, k = _images(), OPERATIONS.index(name)
    outputs = [
        apply_operations(images, np.full(4, k), np.full(4, level), np.full(4, sign), np.ones(4, bool))
        for level in LEVELS
        for sign in (-1, 1)
    ]
    assert _digest(outputs) == OPS[name]


def test_operations_take_any_layout_and_a_batch_of_one():
    images = _images()
    ops = np.arange(4) % len(OPERATIONS)
    levels, signs, active = np.full(4, 2.2), np.array([1, -1, 1, -1]), np.ones(4, bool)
    expected = apply_operations(images, ops, levels, signs, active)
    spaced = torch.zeros(4, 3, 64, 64, dtype=torch.uint8)
    spaced[:, :, ::2, ::2] = images
    layouts = {
        "channels-last": images.contiguous(memory_format=torch.channels_last),
        "strided": spaced[:, :, ::2, ::2],
        "permuted": images.permute(0, 1, 3, 2).contiguous().transpose(2, 3),
    }
    for what, variant in layouts.items():
        assert torch.equal(apply_operations(variant, ops, levels, signs, active), expected), what
    for i in range(4):  # one image at a time: the same as in the batch
        for k in range(len(OPERATIONS)):
            one = apply_operations(images[i : i + 1], np.array([k]), levels[:1], signs[:1], active[:1])
            batch = apply_operations(images, np.full(4, k), levels, np.full(4, signs[0]), active)
            assert torch.equal(one[0], batch[i]), (i, OPERATIONS[k])
    # Inactive images are left as they are.
    assert torch.equal(apply_operations(images, ops, levels, signs, np.zeros(4, bool)), images)


def _draws(view) -> AugMixDraws:
    steps = 3
    ops, levels, signs = (np.zeros((1, 3, steps), dtype) for dtype in (np.int64, np.float64, np.int64))
    for i, (o, lv, s) in enumerate(zip(view["ops"], view["levels"], view["signs"], strict=True)):
        ops[0, i, : len(o)], levels[0, i, : len(lv)], signs[0, i, : len(s)] = o, lv, s
    signs[signs == 0] = 1
    return AugMixDraws(
        ops,
        levels,
        signs,
        np.array([view["depth"]]),
        np.array([view["weights"]], dtype=np.float32),
        np.array([view["m"]], dtype=np.float32),
    )


@pytest.mark.parametrize("view", VIEWS, ids=lambda v: f"seed{v['seed']}")
def test_a_view_for_the_references_draws_is_the_references_view(view):
    image = _images()[view["image"] : view["image"] + 1]
    draws = _draws(view)
    assert _digest(chains(image, draws))[0] == view["chains_sha"]
    # The mix is float arithmetic in another order (vicinal mixes in [0, 1], the reference normalised
    # images): equal to float32 rounding.
    for x in (image, image.float() / 255):  # uint8 in, or float in [0, 1]
        mixed = augment(x, draws)[0].double()
        assert abs(float(mixed.sum()) - view["sum"]) < 1e-3
        assert abs(float((mixed**2).sum()) - view["sumsq"]) < 1e-3
        for (c, y, xx), value in zip(PIXELS, view["pixels"], strict=True):
            assert abs(float(mixed[c, y, xx]) - value) < 1e-6


def test_the_change_a_view_makes_matches_the_references_over_many_draws():
    """The reference's and vicinal's streams differ, so the whole pipeline (operation choice, magnitudes,
    Dirichlet and Beta weights) is compared in distribution: the mean absolute change a view makes to its
    image. Tolerance: 4 standard errors of the difference of the two means (a false alarm about once in
    16,000 runs; the seed is fixed, so the test is deterministic)."""
    n = 1000
    images = _images()[torch.arange(n) % 2 * 2]  # pattern images 0 and 2, alternating, as recorded
    draws = draw(n, 3, -1, 3, 1.0, np.random.default_rng(0))
    change = (augment(images, draws) - images.float() / 255).abs().mean((1, 2, 3)).double()
    se = (CHANGE["std"] ** 2 / CHANGE["n"] + float(change.var()) / n) ** 0.5
    assert abs(float(change.mean()) - CHANGE["mean"]) < 4 * se
    # The draws themselves: depth uniform on 1–3, operations uniform, levels in [0.1, 3).
    assert set(np.unique(draws.depth)) == {1, 2, 3} and set(np.unique(draws.ops)) == set(range(9))
    assert draws.levels.min() >= 0.1 and draws.levels.max() < 3
    np.testing.assert_allclose(draws.weights.sum(1), 1, rtol=1e-6)


def test_the_consistency_loss_equals_the_references():
    logits = [torch.from_numpy(pattern_logits(6, 10, v)) for v in range(3)]
    y = torch.tensor(JSD_TARGETS)
    loss = F.cross_entropy(logits[0], y) + 12 * jensen_shannon(*logits)
    assert abs(float(loss) - JSD_LOSS) < 1e-5
    # And it is what it says: the mean KL of each distribution from the three's mean (no clamp hit here).
    p = [z.softmax(1).double() for z in logits]
    mean = sum(p) / 3
    js = sum((q * (q.log() - mean.log())).sum(1).mean() for q in p) / 3
    torch.testing.assert_close(jensen_shannon(*logits).double(), js, rtol=1e-5, atol=1e-7)


def test_the_step_trains_on_the_image_and_two_views_with_the_consistency_loss():
    method = get_method("augmix")()
    x = _images().float() / 255
    y = torch.tensor([1, 2, 3, 4])
    spy = Spy()
    out = method.training_step(spy, x, y, RunRandom(5))
    fed = spy.seen[0]
    assert out.count == 12 and len(fed) == 12 and 0 <= float(out.correct) <= 12
    ref = RunRandom(5)  # the same draws, replayed: first view, then second
    first, second = (augment(x, draw(4, 3, -1, 3, 1.0, ref.numpy)) for _ in range(2))
    torch.testing.assert_close(fed, torch.cat([x, first, second]))
    logits = spy.proj(fed.mean((2, 3))).split(4)
    expected = F.cross_entropy(logits[0], y) + 12 * jensen_shannon(*logits)
    torch.testing.assert_close(out.loss, expected)


def test_without_the_consistency_loss_it_trains_on_one_view_per_image():
    cls = get_method("augmix")
    method = cls(build_config(cls.Config, {"jsd": False}, "augmix"))
    x, y = _images().float() / 255, torch.tensor([1, 2, 3, 4])
    spy = Spy()
    out = method.training_step(spy, x, y, RunRandom(5))
    assert out.count == 4 and len(spy.seen[0]) == 4
    torch.testing.assert_close(spy.seen[0], augment(x, draw(4, 3, -1, 3, 1.0, RunRandom(5).numpy)))


def test_defaults_are_the_papers():
    """AugMix's CIFAR settings (paper Sec. 4 and cifar.py's defaults): severity 3, width 3, depth 1–3 at
    random (-1), α = 1, the JSD loss on, λ = 12."""
    c = get_method("augmix").Config()
    assert (c.severity, c.width, c.depth, c.alpha, c.jsd, c.jsd_weight) == (3, 3, -1, 1.0, True, 12.0)


def test_depth_zero_is_refused():
    from vicinal.core.errors import VicinalError

    cls = get_method("augmix")
    with pytest.raises(VicinalError, match="depth = 0"):
        build_config(cls.Config, {"depth": 0}, "augmix")
