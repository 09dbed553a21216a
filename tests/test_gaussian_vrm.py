"""Gaussian vicinal risk minimisation (Chapelle et al., 2000). No reference code exists; the step is
checked against the definition: it trains on x + ε with ε ~ N(0, σ²I) from the run's generator, label kept.
"""

import torch
import torch.nn.functional as F
from spies import Spy

from vicinal.core.hparams import build_config
from vicinal.training.method import get_method
from vicinal.training.rng import RunRandom


def test_the_step_trains_on_x_plus_gaussian_noise_with_the_labels_kept():
    method = get_method("gaussian-vrm")()
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(64, 3, 32, 32, generator=g), torch.randint(0, 10, (64,), generator=g)
    spy = Spy()
    out = method.training_step(spy, x, y, RunRandom(3))
    fed = spy.seen[0]
    noise = fed - x
    # The noise is the run's draw (replayed) ...
    expected = torch.randn(x.shape, generator=RunRandom(3).generator_on("cpu"))
    torch.testing.assert_close(noise, 0.1 * expected, rtol=0, atol=1e-6)
    # ... of mean 0 and std σ (196,608 values: the std's standard error is 0.16 %), never clipped.
    assert abs(float(noise.mean())) < 4 * 0.1 / noise.numel() ** 0.5
    assert abs(float(noise.std()) / 0.1 - 1) < 0.01
    assert fed.min() < 0 and fed.max() > 1
    logits = spy.proj(fed.mean((2, 3)))
    torch.testing.assert_close(out.loss, F.cross_entropy(logits, y))
    assert out.count == 64


def test_sigma_zero_is_erm():
    cls = get_method("gaussian-vrm")
    method = cls(build_config(cls.Config, {"sigma": 0.0}, "gaussian-vrm"))
    x = torch.rand(4, 3, 8, 8)
    spy = Spy()
    method.training_step(spy, x, torch.arange(4), RunRandom(0))
    assert torch.equal(spy.seen[0], x)


def test_default_sigma_is_the_documented_choice_and_a_vicinity_of_the_input():
    """Chapelle et al. give no CIFAR σ; vicinal's default is 0.1, the 32-px gaussian_noise corruption's
    severity-5 σ (methods/gaussian_vrm.py says why). ``mixes_in`` is where the vicinity lives: the input."""
    from vicinal.corruptions.tables import TABLES

    cls = get_method("gaussian-vrm")
    assert cls.Config().sigma == 0.1
    assert max(TABLES["cifar"]["gaussian_noise"]) == cls.Config().sigma
    assert cls.mixes_in == "input"
