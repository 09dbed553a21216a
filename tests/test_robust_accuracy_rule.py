"""Robust accuracy counts an image misclassified before the attack as broken, at every ε (issue 21).

foolbox judges an attack's success on its last iterate alone, so an image the model gets wrong on the
clean input but right after the attack (PGD's random start can land it on the right class) came out
"robust". The model here is built to do exactly that: it reads each image's class from its grey level,
which no perturbation within the radii can change, but answers wrong on the exact clean images of some
classes; its logits are constant in the pixels, so the only thing that moves an image is PGD's random
start, off the 8-bit grid, where the model is right.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vicinal.core.hparams import build_config
from vicinal.data.datasets import DataSplits, ImageSet
from vicinal.evaluation.evaluator import EVALUATORS, EvalContext
from vicinal.evaluators.adversarial import import_foolbox, robust_accuracy, robust_outcomes
from vicinal.store.outcomes import read_examples

CPU = torch.device("cpu")
#: Classes whose clean images the model gets wrong.
WRONG = (2, 5, 7)


class _WrongOnCleanImages(nn.Module):
    """Class k is the grey level 30 + 20k (a perturbation of at most 8 levels on average cannot move an
    image to another class); on an image of a class in ``WRONG`` whose every pixel is on the 8-bit grid
    (a clean test image) it answers k + 1 instead. Zero gradient everywhere."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scaled = x * 255
        k = ((scaled.mean((1, 2, 3)) - 30) / 20).round().long().clamp(0, 9)
        on_grid = ((scaled - scaled.round()).abs() < 1e-3).flatten(1).all(1)
        wrong = on_grid & torch.isin(k, torch.tensor(WRONG, device=x.device))
        logits = F.one_hot(torch.where(wrong, (k + 1) % 10, k), 10).to(x.dtype) * 5
        return logits + 0 * x.sum((1, 2, 3), keepdim=True).flatten(1)  # in the graph, with zero gradient


def _images(n: int) -> ImageSet:
    labels = torch.arange(n) % 10
    gen = torch.Generator().manual_seed(0)
    # Each image's mean is its class's level; the pixels vary around it (±3 levels), inside 0–255.
    noise = torch.randint(-3, 4, (n, 3, 32, 32), generator=gen)
    noise -= noise.sum((1, 2, 3), keepdim=True) // (3 * 32 * 32)
    images = (30 + 20 * labels[:, None, None, None] + noise).clamp(0, 255).to(torch.uint8)
    return ImageSet(images, labels)


@pytest.fixture(scope="module")
def data():
    test = _images(40)
    model = _WrongOnCleanImages().eval()
    clean = model(test.images.float() / 255).argmax(1) == test.labels
    # The construction itself: exactly the images of the WRONG classes are misclassified when clean, and
    # every image is classified correctly once off the grid.
    assert clean.tolist() == [int(c) not in WRONG for c in test.labels]
    off_grid = test.images.float().add(0.25) / 255
    assert bool((model(off_grid).argmax(1) == test.labels).all())
    return DataSplits("toy", _images(20), test, 10, [], "toy")


def test_images_wrong_on_the_clean_input_count_as_broken_under_every_attack(data):
    cls = EVALUATORS.get("adversarial")
    config = {"linf_eps": ["2/255", "8/255"], "l2_eps": ["0.5"], "n_samples": 0, "steps": 3, "batch_size": 16}
    ev = cls(build_config(cls.Config, config, "adversarial"))
    ctx = EvalContext(_WrongOnCleanImages(), data, CPU)
    out = ev.evaluate(ctx)
    clean = [int(c) not in WRONG for c in data.test.labels]
    assert out["adv_subset_acc"] == pytest.approx(0.7)
    stored = read_examples(ctx.examples.to_bytes())
    assert stored.sets["adv/clean"].columns["correct"].tolist() == clean
    for metric in ("fgsm@2/255", "fgsm@8/255", "pgd_linf@2/255", "pgd_linf@8/255", "pgd_l2@0.5"):
        # No attack changes this model's class on a correctly classified image, so robust = clean.
        assert out[metric] == out["adv_subset_acc"], metric
        assert stored.sets[f"adv/{metric}"].columns["correct"].tolist() == clean, metric
        assert stored.point(metric) == pytest.approx(out[metric]), metric


def test_robust_outcomes_apply_the_rule_without_the_evaluator(data):
    fb = import_foolbox()
    x, y = data.test.images, data.test.labels
    clean = torch.tensor([int(c) not in WRONG for c in y])
    model = _WrongOnCleanImages().eval()
    attack = fb.attacks.LinfPGD(steps=3, rel_stepsize=0.25)
    correct, _ = robust_outcomes(model, x, y, attack, [0.0, 8 / 255], 16, 0, CPU)
    assert torch.equal(correct, clean.expand(2, -1))
    assert robust_accuracy(model, x, y, fb.attacks.L2PGD(steps=3), [0.5], 16, 0, CPU) == [0.7]
    # Given the clean outcome (the evaluator hands over its shared test logits'), that is what counts:
    # off the grid after PGD's random start every image is classified correctly.
    told = torch.ones_like(clean)
    told[0] = False
    correct, _ = robust_outcomes(model, x, y, attack, [8 / 255], 16, 0, CPU, clean_correct=told)
    assert torch.equal(correct[0], told)


def test_autoattack_counts_images_wrong_on_the_clean_input_as_broken(data):
    pytest.importorskip("pyautoattack")
    from vicinal.evaluators.adversarial import autoattack_outcomes

    x, y = data.test.images, data.test.labels
    clean = torch.tensor([int(c) not in WRONG for c in y])
    model = _WrongOnCleanImages().eval()
    correct, confidence = autoattack_outcomes(model, x, y, 8 / 255, 0, 16, CPU, ["apgd-ce"])
    assert torch.equal(correct, clean) and confidence.shape == (len(y),)
