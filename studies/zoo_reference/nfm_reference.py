"""Record erichson/NFM's numbers for tests/test_noisy_feature_mixup.py (run it, paste what it prints).

Imports the reference's ``src/noisy_mixup.py`` (the file alone) from a checkout given on the command line
(nothing of it is copied here) and runs its ``do_noisy_mixup`` and ``_noise``. It allocates its noise with
``torch.cuda.FloatTensor`` inside ``torch.cuda.device(0)``; to run on a CPU those are swapped for
``torch.FloatTensor`` and a null context, and ``.cuda()`` is a no-op — so its noise comes from torch's global
CPU generator, which the test replays.

Usage: python studies/zoo_reference/nfm_reference.py /path/to/NFM-checkout
Recorded with the checkout at ed22d5d825e089374ca7c6efb0e44c032a7d0fbd, numpy 2.4.6, torch 2.14.1 (CPU).
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from reference_inputs import pattern_batch

PIXELS = ((0, 0, 0, 0), (1, 2, 3, 4), (3, 2, 7, 7), (2, 1, 5, 0))


def main(checkout: Path) -> None:
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.cuda.device = lambda index: contextlib.nullcontext()
    torch.cuda.FloatTensor = torch.FloatTensor
    # The module alone: the package's __init__ imports its data loaders (and their dependencies).
    spec = importlib.util.spec_from_file_location("noisy_mixup", checkout / "src" / "noisy_mixup.py")
    noisy_mixup = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(noisy_mixup)
    _noise, do_noisy_mixup = noisy_mixup._noise, noisy_mixup.do_noisy_mixup

    h = torch.from_numpy(pattern_batch(4, 3, 8))
    y = torch.tensor([0, 1, 2, 3])
    print("STEPS = [")
    for seed, add, mult in ((0, 0.4, 0.2), (1, 0.4, 0.2), (2, 0.0, 0.2), (3, 0.4, 0.0), (4, 1.0, 0.5)):
        np.random.seed(seed)
        torch.manual_seed(seed)
        out, _, y_b, lam = do_noisy_mixup(h, y, alpha=1.0, add_noise_level=add, mult_noise_level=mult)
        # Replay the numpy draws to report them: λ, then β for the additive and the multiplicative noise
        # (each drawn only when its level is > 0); the permutation is torch's first draw.
        np.random.seed(seed)
        torch.manual_seed(seed)
        lam_replayed = float(np.random.beta(1.0, 1.0))
        perm = torch.randperm(4).tolist()
        beta_add = float(np.random.beta(2, 5)) if add > 0 else 0.0
        beta_mult = float(np.random.beta(2, 5)) if mult > 0 else 0.0
        assert lam_replayed == lam and y_b.tolist() == perm
        position = torch.arange(out.numel(), dtype=torch.float64).view_as(out)
        values = [float(out[p]) for p in PIXELS]
        step = (
            seed,
            add,
            mult,
            lam,
            perm,
            beta_add,
            beta_mult,
            float((out.double() * position).sum()),
            values,
        )
        print(f"    {step!r},")
    print("]")

    # The noise's size over many draws: _noise on a tensor of ones (1,000 values), per draw the std of the
    # output; its mean and std over 2,000 draws (the levels of the paper's CIFAR runs, 0.4 and 0.2).
    np.random.seed(0)
    torch.manual_seed(0)
    ones = torch.ones(1000)
    spread = np.array([float(_noise(ones, 0.4, 0.2).std()) for _ in range(2000)])
    print("SPREAD =", {"n": len(spread), "mean": float(spread.mean()), "std": float(spread.std(ddof=1))})


if __name__ == "__main__":
    main(Path(sys.argv[1]))
