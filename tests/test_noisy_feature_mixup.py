"""Noisy Feature Mixup against its reference implementation, erichson/NFM.

The literals were recorded by ``studies/zoo_reference/nfm_reference.py`` running the reference's own
``do_noisy_mixup`` and ``_noise`` on the CPU (checkout ed22d5d825e089374ca7c6efb0e44c032a7d0fbd, numpy 2.4.6,
torch 2.14.1); the script says how each was made.
"""

import numpy as np
import pytest
import torch
from reference_inputs import pattern_batch

from vicinal import VicinalError
from vicinal.core.hparams import build_config
from vicinal.training.method import get_method, interpolate
from vicinal.training.models import build_model
from vicinal.training.rng import RunRandom

# do_noisy_mixup(h, y, alpha=1, add_noise_level, mult_noise_level) on h = pattern_batch(4, 3, 8) after
# np.random.seed(seed) and torch.manual_seed(seed): (seed, add level, mult level, λ, permutation, the
# Beta(2, 5) draws for the additive and multiplicative noise (0 where the level is 0 and the reference
# draws none), Σ position · value of its output, its values at PIXELS).
PIXELS = ((0, 0, 0, 0), (1, 2, 3, 4), (3, 2, 7, 7), (2, 1, 5, 0))
STEPS = [
    (
        0,
        0.4,
        0.2,
        0.44912526447830964,
        [0, 1, 3, 2],
        0.29844043627255623,
        0.5114112635467928,
        152275.68212144542,
        [0.4034012258052826, -0.06401754170656204, 0.19575053453445435, 0.5942164659500122],
    ),
    (
        1,
        0.4,
        0.2,
        0.00037816489242002753,
        [1, 3, 2, 0],
        0.2836412677805406,
        0.6132432153527607,
        157986.9263026705,
        [0.8298906683921814, 0.6474037766456604, 1.1836738586425781, 0.38273942470550537],
    ),
    (
        2,
        0.0,
        0.2,
        0.9438730338985074,
        [0, 1, 3, 2],
        0.0,
        0.016104143685368534,
        154264.22385989205,
        [0.49991774559020996, 0.07055675238370895, 0.45054686069488525, 0.2656392455101013],
    ),
    (
        3,
        0.4,
        0.0,
        0.3628452076929192,
        [2, 3, 1, 0],
        0.25281047151590963,
        0.0,
        153456.33426757157,
        [0.4258235692977905, 0.6391410827636719, 0.6128076314926147, 0.16864259541034698],
    ),
    (
        4,
        1.0,
        0.5,
        0.7635312284630402,
        [2, 1, 3, 0],
        0.37020091122181104,
        0.4506384942261827,
        144941.31557813706,
        [0.48745355010032654, 0.12138859927654266, 0.5036056637763977, 0.1937112808227539],
    ),
]
# _noise(ones(1000), 0.4, 0.2), 2,000 times after np.random.seed(0) and torch.manual_seed(0): per draw the std
# of the output; its mean and sample std over the draws.
SPREAD = {"n": 2000, "mean": 0.1221703827874735, "std": 0.05950560818822811}


def _noisy():
    from vicinal.methods.noisy_feature_mixup import noisy

    return noisy


@pytest.mark.parametrize("step", STEPS, ids=lambda s: f"seed{s[0]}")
def test_the_noisy_mix_for_the_references_draws_is_the_references(step):
    seed, add, mult, lam, perm, beta_add, beta_mult, checksum, values = step
    h = torch.from_numpy(pattern_batch(4, 3, 8))
    generator = torch.Generator().manual_seed(seed)
    assert torch.randperm(4, generator=generator).tolist() == perm  # the reference's first torch draw
    out = _noisy()(interpolate(h, torch.tensor(perm), lam), add * beta_add, mult * beta_mult, generator)
    position = torch.arange(out.numel(), dtype=torch.float64).view_as(out)
    assert abs(float((out.double() * position).sum()) - checksum) < 1e-6 * abs(checksum)
    np.testing.assert_allclose([float(out[p]) for p in PIXELS], values, rtol=0, atol=1e-6)


def test_the_noise_is_as_large_as_the_references_over_many_draws():
    """Other streams: the per-draw std of noisy(ones) over 2,000 draws (it is set by the levels and the
    Beta(2, 5) draws), mean within 4 standard errors of the difference of the two means."""
    rng = RunRandom(0)
    c = get_method("noisy-feature-mixup").Config()
    spread = []
    for _ in range(SPREAD["n"]):
        add, mult = c.add_noise_level * rng.numpy.beta(2, 5), c.mult_noise_level * rng.numpy.beta(2, 5)
        spread.append(float(_noisy()(torch.ones(1000), add, mult, rng.generator_on("cpu")).std()))
    spread = np.array(spread)
    se = (SPREAD["std"] ** 2 / SPREAD["n"] + spread.var(ddof=1) / len(spread)) ** 0.5
    assert abs(spread.mean() - SPREAD["mean"]) < 4 * se


def _model():
    torch.manual_seed(0)
    return build_model("small-cnn", 10, [0.5] * 3, [0.25] * 3).eval()


def test_candidates_are_the_normalised_input_and_three_stages():
    method = get_method("noisy-feature-mixup")()
    assert list(method.candidates(_model())) == ["input", "stage1", "stage2", "stage3"]
    resnet = build_model("preactresnet18", 10, [0.5] * 3, [0.25] * 3)
    assert list(method.candidates(resnet)) == ["input", "layer1", "layer2", "layer3"]  # the reference's
    assert method.candidates(resnet)["input"] is resnet.normalize

    class Bare(torch.nn.Module):
        def mixing_layers(self):
            return {"a": torch.nn.Identity(), "b": torch.nn.Identity(), "c": torch.nn.Identity()}

    with pytest.raises(VicinalError, match="include_input = false"):
        method.candidates(Bare())
    cls = get_method("noisy-feature-mixup")
    deep = cls(build_config(cls.Config, {"layers": 4}, "noisy-feature-mixup"))
    with pytest.raises(VicinalError, match="only 3 mixable stages"):
        deep.candidates(_model())


@pytest.mark.parametrize("layer", ["input", "stage2"])
def test_the_step_mixes_and_perturbs_the_drawn_layer(layer):
    model = _model()
    method = get_method("noisy-feature-mixup")()
    names = list(method.candidates(model))
    seed = next(s for s in range(200) if names[RunRandom(s).integer(4)] == layer)
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(4, 3, 32, 32, generator=g), torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        clean = model.normalize(x) if layer == "input" else model.stage2(model.stage1(model.normalize(x)))
    after = model.stage1 if layer == "input" else model.stage3
    seen = {}

    def observe(_module, inputs, _out):
        seen["h"] = inputs[0].detach()

    handle = after.register_forward_hook(observe)
    out = method.training_step(model, x, y, RunRandom(seed))
    handle.remove()
    ref = RunRandom(seed)  # replayed: layer, λ, permutation, the two Betas, the noise generator's seed
    ref.integer(4)
    lam, perm = ref.beta(1.0), ref.permutation(4)
    add, mult = 0.4 * ref.numpy.beta(2, 5), 0.2 * ref.numpy.beta(2, 5)
    expected = _noisy()(interpolate(clean, perm, lam), add, mult, ref.generator_on("cpu"))
    torch.testing.assert_close(seen["h"], expected, rtol=1e-5, atol=1e-5)
    assert torch.isfinite(out.loss) and out.count == 4
    assert not any(m._forward_hooks for m in model.modules())  # the hook is gone


def test_without_noise_it_is_manifold_mixup_at_the_same_draw():
    cls = get_method("noisy-feature-mixup")
    quiet = cls(build_config(cls.Config, {"add_noise_level": 0.0, "mult_noise_level": 0.0}, "nfm"))
    h = torch.rand(3, 4, 5, 5)
    assert torch.equal(_noisy()(h, 0.0, 0.0, torch.Generator()), h)
    model = _model()
    a = quiet.training_step(model, torch.rand(4, 3, 32, 32), torch.arange(4), RunRandom(2))
    assert torch.isfinite(a.loss)


def test_defaults_are_the_papers():
    """NFM's CIFAR settings (the reference's README command: --alpha 1.0 --add_noise_level 0.4
    --mult_noise_level 0.2 --manifold_mixup 1, mixing at the input or after residual stage 1, 2 or 3)."""
    c = get_method("noisy-feature-mixup").Config()
    assert (c.alpha, c.add_noise_level, c.mult_noise_level, c.layers, c.include_input) == (
        1.0,
        0.4,
        0.2,
        3,
        True,
    )
