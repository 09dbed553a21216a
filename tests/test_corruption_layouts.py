"""The corruption engine's output does not depend on how its input is laid out in memory (issue 21).

``corrupt`` promises (see its docstring): for the same images, seed (or generator state), table and device,
the output is bit-identical whatever the input's strides, storage offset, memory format or broadcast dims
— contiguous, channels-last, permuted from NHWC, sliced, strided, a batch slice, a batch of one, a single
3×H×W image — for uint8 and float input alike. Checked here for all 19 corruptions at every severity,
on every device this machine has, with named layouts and with layouts hypothesis draws (any storage order
of the four dims, steps and offsets in each); then through the paths that hand the engine a dataset's
images: ``vicinal corrupt`` and the corruption evaluator.

What a batch of one promises beyond its layout: a deterministic corruption computes each image from that
image alone, so an image gives the same output alone as inside a batch, up to float32 rounding (matrix
products choose their kernels by size); a random one draws for the whole batch, so a batch of one is a
batch of its own and its draws are not those the image gets inside a larger batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vicinal.corruptions import SEVERITIES, corrupt, corruption_names, get_corruption

NAMES = corruption_names("all")
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def _images(n: int, h: int, w: int, seed: int, device: str = "cpu") -> torch.Tensor:
    """Blocky random uint8 images (4×4 blocks plus noise): edges and flat parts, as photos have."""
    gen = torch.Generator().manual_seed(seed)
    blocks = torch.randint(0, 256, (n, 3, -(-h // 4), -(-w // 4)), generator=gen)
    x = blocks.repeat_interleave(4, 2).repeat_interleave(4, 3)[..., :h, :w]
    x = x + torch.randint(-12, 13, x.shape, generator=gen)
    return x.clamp(0, 255).to(torch.uint8).to(device)


def _as_float(x: torch.Tensor) -> torch.Tensor:
    return x.float().div_(255.0)


def laid_out(x: torch.Tensor, order: list[int], steps: list[int], offsets: list[int], seed: int = 1):
    """``x`` (N×C×H×W) as a view with the same values in other memory: the dims stored in ``order``
    (outermost first), each dim d every ``steps[d]``-th element of a larger buffer from ``offsets[d]``
    on, the elements between them random garbage. Returns the view and the buffer it lives in."""
    big = [size * step + offset for size, step, offset in zip(x.shape, steps, offsets, strict=True)]
    gen = torch.Generator().manual_seed(seed)
    garbage = torch.randint(0, 256, [big[d] for d in order], generator=gen).to(x.device)
    buffer = (garbage.float().div_(255.0) if x.is_floating_point() else garbage).to(x.dtype)
    view = buffer.permute(*np.argsort(order).tolist())
    view = view[tuple(slice(o, None, s) for o, s in zip(offsets, steps, strict=True))]
    view.copy_(x)
    return view, buffer


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    """The usual way a channels-last batch arises: an N×H×W×C array permuted to N×C×H×W."""
    return torch.from_numpy(x.cpu().permute(0, 2, 3, 1).numpy().copy()).permute(0, 3, 1, 2).to(x.device)


#: name → (the input, and the contiguous batch whose output it must give, from a contiguous x).
LAYOUTS = {
    "channels_last": lambda x: (x.contiguous(memory_format=torch.channels_last), x),
    "permuted_from_nhwc": lambda x: (_nhwc(x), x),
    "strided_hw": lambda x: (laid_out(x, [0, 1, 2, 3], [1, 1, 2, 2], [0, 0, 1, 0])[0], x),
    "batch_slice": lambda x: (laid_out(x, [0, 1, 2, 3], [2, 1, 1, 1], [1, 0, 0, 0])[0], x),
    "one_from_channels_last": lambda x: (x.contiguous(memory_format=torch.channels_last)[1:2], x[1:2]),
    "one_strided": lambda x: (laid_out(x, [0, 2, 3, 1], [3, 1, 2, 1], [2, 0, 0, 1])[0][2:3], x[2:3]),
    "single_image": lambda x: (_nhwc(x)[1], x[1:2]),
}


def _check(view: torch.Tensor, reference: torch.Tensor, name: str, severity: int, seed: int) -> None:
    """corrupt(view) is bit-identical to corrupt(reference) (the same values, contiguous), returned as a
    contiguous batch of the input's dtype, and leaves the input's memory untouched."""
    before = view.clone()
    got = corrupt(view, name, severity, seed=seed)
    want = corrupt(reference.contiguous(), name, severity, seed=seed)
    if view.dim() == 3:
        want = want[0]
    assert got.dtype == view.dtype and got.device == view.device and got.is_contiguous()
    if not torch.equal(got, want):
        diff = (got.double() - want.double()).abs()
        pytest.fail(
            f"{name} s{severity}: {int((diff > 0).sum())} of {diff.numel()} values differ from the "
            f"contiguous input's output (max {float(diff.max()):.3g}, mean {float(diff.mean()):.3g}); "
            f"input shape {tuple(view.shape)} strides {view.stride()} dtype {view.dtype}"
        )
    assert torch.equal(view, before), "corrupt wrote into its input"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", NAMES)
def test_every_corruption_and_severity_gives_the_same_bits_in_every_named_layout(name, layout, device):
    x = _images(4, 32, 32, seed=7, device=device)
    for images in (x, _as_float(x)):
        view, reference = LAYOUTS[layout](images)
        assert not view.is_contiguous(), layout
        for severity in SEVERITIES:
            _check(view, reference, name, severity, seed=severity)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", NAMES)
def test_a_64px_channels_last_batch_gives_the_same_bits(name, device):
    """64 px takes other paths than 32 px (another table, OpenCV and separable filters, grid sampling)."""
    x = _images(3, 64, 64, seed=3, device=device)
    for images in (x, _as_float(x)):
        for layout in ("permuted_from_nhwc", "strided_hw"):
            view, reference = LAYOUTS[layout](images)
            _check(view, reference, name, 3, seed=0)


@st.composite
def layouts(draw):
    """A batch, how it is laid out in memory, its dtype and a seed (see ``laid_out``)."""
    n = draw(st.integers(1, 4))
    h, w = draw(st.sampled_from([(32, 32), (24, 40), (33, 31)]))
    return {
        "n": n,
        "size": (h, w),
        "order": draw(st.permutations(range(4))),
        "steps": draw(st.lists(st.integers(1, 3), min_size=4, max_size=4)),
        "offsets": draw(st.lists(st.integers(0, 2), min_size=4, max_size=4)),
        # One image broadcast over the batch (stride 0), or a 3×H×W image.
        "form": draw(st.sampled_from(["batch", "expanded", "single"] if n == 1 else ["batch", "expanded"])),
        "dtype": draw(st.sampled_from(["uint8", "float levels", "float", "float64"])),
        "severity": draw(st.sampled_from(SEVERITIES)),
        "seed": draw(st.integers(0, 2**31 - 1)),
    }


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=layouts())
def test_any_layout_gives_the_contiguous_inputs_bits(name, device, case):
    h, w = case["size"]
    n = 1 if case["form"] == "expanded" else case["n"]
    x = _images(n, h, w, seed=case["seed"] % 1000, device=device)
    if case["dtype"] == "float":  # values off the 8-bit grid (shot noise's other path)
        gen = torch.Generator().manual_seed(case["seed"])
        x = torch.rand(x.shape, generator=gen).to(device)
    elif case["dtype"] != "uint8":
        x = _as_float(x).to(torch.float64 if case["dtype"] == "float64" else torch.float32)
    view, _ = laid_out(x, case["order"], case["steps"], case["offsets"], seed=case["seed"])
    if case["form"] == "expanded":
        view, x = view.expand(case["n"], -1, -1, -1), x.expand(case["n"], -1, -1, -1).contiguous()
    elif case["form"] == "single":
        view = view[0]
    _check(view, x, name, case["severity"], case["seed"])


@pytest.mark.parametrize("device", DEVICES)
def test_the_public_helpers_give_the_same_bits_in_any_layout(device):
    """The registered functions themselves (``get_corruption(name).fn``, the modules' names) and the
    helpers that read raw memory (strided windows, flat views), called directly with channels-last input."""
    from vicinal.corruptions.filters import apply_motion_blur
    from vicinal.corruptions.noise import inverse_cdf, poisson_of_levels
    from vicinal.corruptions.tables import TABLES

    x = _images(4, 32, 32, seed=5, device=device)
    xf = _as_float(x)
    for name in NAMES:
        fn, param = get_corruption(name).fn, TABLES["cifar"][name][2]
        want = fn(xf, param, torch.Generator(device).manual_seed(1))
        got = fn(_nhwc(xf), param, torch.Generator(device).manual_seed(1))
        assert torch.equal(got, want), name
    angles = torch.tensor([10.0, -30.0, 44.0, 0.0], dtype=torch.float64)
    for images in (xf, _as_float(_images(2, 64, 64, seed=6, device=device))):
        a = angles[: len(images)]
        assert torch.equal(apply_motion_blur(_nhwc(images), 3, 2, a), apply_motion_blur(images, 3, 2, a))
    draws = [poisson_of_levels(t, 60.0, torch.Generator(device).manual_seed(0)) for t in (x, _nhwc(x))]
    assert torch.equal(*draws)
    u = torch.randint(0, 2**53, x.shape, generator=torch.Generator().manual_seed(2)).to(device)
    assert torch.equal(inverse_cdf(_nhwc(x), _nhwc(u), 60.0), inverse_cdf(x, u, 60.0))


@pytest.mark.parametrize("name", [n for n in NAMES if not get_corruption(n).random])
def test_a_deterministic_corruption_gives_an_image_alone_what_it_gives_it_in_a_batch(name):
    """Up to float32 rounding: a product over the batch (zoom blur's at 32 px) picks its kernel by size."""
    x = _images(5, 32, 32, seed=11)
    for images in (x, _as_float(x)):
        for severity in SEVERITIES:
            batch = corrupt(images, name, severity)
            alone = torch.cat([corrupt(images[i : i + 1], name, severity) for i in range(len(images))])
            diff = (batch.double() - alone.double()).abs()
            if images.dtype == torch.uint8:
                assert float(diff.max()) <= 1 and float((diff > 0).double().mean()) < 0.01, (name, severity)
            else:
                assert float(diff.max()) <= 1e-6, (name, severity)


# --------------------------------------------------------------------------------------------------------
# The paths that hand the engine a dataset's images


@pytest.fixture(scope="module")
def digits_pair():
    """A small digits dataset (150 test images), and a copy whose test images are permuted from an
    N×H×W×C array: the layout a dataset plugin built with ``torch.from_numpy(hwc).permute(0, 3, 1, 2)``
    hands over."""
    import copy

    from vicinal.data.datasets import ImageSet, load_dataset

    data = load_dataset("digits").hold_out(0.1)
    data.test = data.test.subset(torch.arange(150))
    permuted = copy.copy(data)
    permuted.test = ImageSet(_nhwc(data.test.images), data.test.labels)
    assert data.test.images.is_contiguous() and not permuted.test.images.is_contiguous()
    assert torch.equal(permuted.test.images, data.test.images)
    return data, permuted


def test_vicinal_corrupt_writes_the_same_set_from_a_channels_last_dataset(tmp_path, digits_pair):
    from typer.testing import CliRunner

    from vicinal.cli.app import build_app
    from vicinal.data.datasets import DATASETS

    names = ("digits-contiguous", "digits-nhwc")
    for name, data in zip(names, digits_pair, strict=True):
        DATASETS.register(name)(lambda data_dir, download, data=data: data)
    try:
        for name in names:
            args = ["corrupt", "--dataset", name, "--out", str(tmp_path / name), "--severities", "1,5"]
            result = CliRunner().invoke(build_app(), [*args, "--quiet", "--device", "cpu"])
            assert result.exit_code == 0, result.output
    finally:
        for name in names:
            DATASETS.remove(name)
    for name in ["labels", *NAMES]:
        want = np.load(tmp_path / names[0] / f"{name}.npy")
        assert np.array_equal(np.load(tmp_path / names[1] / f"{name}.npy"), want), name


class _PooledLinear(torch.nn.Module):
    """A fixed random linear classifier of 4×4-pooled pixels: cheap, and its logits move with the pixels."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3 * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1))


@pytest.mark.parametrize("cached", [False, True], ids=["on the fly", "cached set"])
def test_corruption_evaluator_gives_equal_metrics_for_a_channels_last_test_split(
    tmp_path, digits_pair, cached
):
    from vicinal.evaluation.evaluator import EvalContext
    from vicinal.evaluators.corruption import CorruptionEvaluator

    torch.manual_seed(0)
    model = _PooledLinear().eval()
    outs = []
    for i, data in enumerate(digits_pair):
        ev = CorruptionEvaluator(CorruptionEvaluator.Config(corruptions=["all"], severities=[2, 5]))
        cache: Path | None = tmp_path / str(i) if cached else None
        outs.append(ev.evaluate(EvalContext(model, data, torch.device("cpu"), 64, cache_dir=cache)))
    assert {f"c_ece/{n}/s5" for n in NAMES} <= set(outs[0])
    assert outs[0] == outs[1]
