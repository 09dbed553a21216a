"""RegMixup against its reference implementation, FrancescoPinto/RegMixup.

The literals were recorded by ``studies/zoo_reference/regmixup_reference.py`` running the reference's own
``RegMixupModel.training_step`` (checkout fd7846532990da67bf56ae71f78517270252f5f5, numpy 2.4.6, torch
2.14.1, CPU); the script says how each was made.
"""

import numpy as np
import torch
import torch.nn.functional as F
from reference_inputs import pattern_batch, pattern_weights

from vicinal.core.hparams import build_config
from vicinal.training.method import get_method
from vicinal.training.rng import RunRandom

# training_step((x, y), 0) with x = pattern_batch(6, 3, 8), y = TARGETS, a base model returning
# x.flatten(1) @ pattern_weights(192, 10), α = β = 20, after np.random.seed(seed) and torch.manual_seed(seed):
# (seed, the λ and permutation mixup_data drew, the loss, Σ position · value of the model's input, its shape).
TARGETS = [0, 3, 9, 1, 1, 7]
STEPS = [
    (0, 0.5706809442009638, [2, 5, 3, 0, 1, 4], 2.6560850143432617, 1275449.976068774, (12, 3, 8, 8)),
    (1, 0.6193540428111338, [1, 5, 2, 0, 3, 4], 2.6313986778259277, 1284473.3819285408, (12, 3, 8, 8)),
    (2, 0.4793205553669808, [0, 3, 1, 2, 4, 5], 2.5872809886932373, 1258927.0260227802, (12, 3, 8, 8)),
]
# 10,000 draws of mixup_data(x, y, 20, 20) after np.random.seed(0): λ's mean and sample std.
LAMBDA = {"n": 10000, "mean": 0.49912056098510493, "std": 0.07698843531579114}


class _Replay:
    """Stands in for the run's RunRandom with the reference's recorded draws."""

    def __init__(self, lam, perm):
        self.lam, self.perm = lam, torch.tensor(perm)

    def beta(self, alpha):
        assert alpha == 20.0
        return self.lam

    def permutation(self, n, device="cpu"):
        return self.perm[:n].to(device)


class _Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.from_numpy(pattern_weights(192, 10)))
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return x.flatten(1) @ self.weight


def _checksum(t: torch.Tensor) -> float:
    position = torch.arange(t.numel(), dtype=torch.float64).view_as(t)
    return float((t.double() * position).sum())


def test_the_step_feeds_the_references_images_and_its_loss_is_the_references():
    """The reference's single mean over 2n logits is ½·(CE + mixup CE), vicinal's default reduction; the
    paper's L as written (``reduction = "sum"``) is twice it."""
    x, y = torch.from_numpy(pattern_batch(6, 3, 8)), torch.tensor(TARGETS)
    cls = get_method("regmixup")
    for reduction, factor in (("mean", 1), ("sum", 2)):
        method = cls(build_config(cls.Config, {"reduction": reduction}, "regmixup"))
        for seed, lam, perm, loss, checksum, shape in STEPS:
            model = _Linear()
            out = method.training_step(model, x, y, _Replay(lam, perm))
            fed = model.seen[0]
            assert tuple(fed.shape) == shape and out.count == 12, seed
            assert abs(_checksum(fed) - checksum) < 1e-6 * abs(checksum), seed
            assert abs(float(out.loss.detach()) - factor * loss) < 1e-5, (reduction, seed)


def test_eta_weighs_the_mixup_term():
    x, y = torch.from_numpy(pattern_batch(6, 3, 8)), torch.tensor(TARGETS)
    cls = get_method("regmixup")
    _, lam, perm, *_ = STEPS[0]
    p = torch.tensor(perm)
    for reduction, scale in (("mean", 0.5), ("sum", 1.0)):
        method = cls(build_config(cls.Config, {"eta": 0.3, "reduction": reduction}, "regmixup"))
        model = _Linear()
        out = method.training_step(model, x, y, _Replay(lam, perm))
        logits = model.seen[0].flatten(1) @ model.weight
        mixed = lam * F.cross_entropy(logits[6:], y) + (1 - lam) * F.cross_entropy(logits[6:], y[p])
        torch.testing.assert_close(out.loss, scale * (F.cross_entropy(logits[:6], y) + 0.3 * mixed))


def test_lambda_statistics_match_the_references():
    """Beta(20, 20) from another stream: λ's mean within 4 standard errors of the reference's, its std within
    5 % (10,000 draws each; Beta(20, 20) has std 0.0781)."""
    rng = RunRandom(0)
    lams = np.array([rng.beta(get_method("regmixup").Config().alpha) for _ in range(LAMBDA["n"])])
    se = LAMBDA["std"] * (2 / LAMBDA["n"]) ** 0.5
    assert abs(lams.mean() - LAMBDA["mean"]) < 4 * se
    assert abs(lams.std(ddof=1) / LAMBDA["std"] - 1) < 0.05


def test_half_is_equal_compute_with_the_same_objective():
    cls = get_method("regmixup")
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(7, 3, 8, 8, generator=g), torch.tensor([0, 1, 2, 3, 4, 5, 6])
    for reduction in ("mean", "sum"):
        method = cls(build_config(cls.Config, {"train_on": "half", "reduction": reduction}, "regmixup"))
        model = _Linear()
        out = method.training_step(model, x, y, RunRandom(4))
        ref = RunRandom(4)
        lam, perm = ref.beta(20.0), ref.permutation(4)  # ⌈7/2⌉ = 4 mixed, 3 clean
        fed = model.seen[0]
        assert out.count == 7 and len(fed) == 7
        torch.testing.assert_close(fed[:4], lam * x[:4] + (1 - lam) * x[:4][perm])
        assert torch.equal(fed[4:], x[4:])
        logits = fed.flatten(1) @ model.weight
        per_image = torch.cat(
            [
                lam * F.cross_entropy(logits[:4], y[:4], reduction="none")
                + (1 - lam) * F.cross_entropy(logits[:4], y[:4][perm], reduction="none"),
                F.cross_entropy(logits[4:], y[4:], reduction="none"),
            ]
        )
        expected = per_image.mean() if reduction == "mean" else per_image[4:].mean() + per_image[:4].mean()
        torch.testing.assert_close(out.loss, expected)


def test_defaults_are_the_papers():
    """RegMixup's CIFAR-10 setting (the reference's commands.sh: --mixup_alpha 20 --mixup_beta 20), η = 1, the
    paper's clean batch plus mixes and the code's loss scale (which made the paper's results); the CIFAR-100
    suites set the paper's α = 10."""
    from vicinal.execution.suite import load_suite

    c = get_method("regmixup").Config()
    assert (c.alpha, c.eta, c.train_on, c.reduction) == (20.0, 1.0, "clean+mixed", "mean")
    for name in ("cifar100", "cifar100-c"):
        assert load_suite(name).method_params["regmixup"] == {"alpha": 10.0}, name
