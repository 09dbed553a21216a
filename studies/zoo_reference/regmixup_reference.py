"""Record FrancescoPinto/RegMixup's numbers for tests/test_regmixup.py (run it, paste what it prints).

Imports the reference's ``models/regmixup.py`` from a checkout given on the command line (nothing of it is
copied here) and runs its ``RegMixupModel.training_step`` on a stand-in base model: a fixed linear
classifier (``pattern_weights``) that records its input, with the reference's ``hparams``. ``.cuda()`` is a
no-op so that it runs on a CPU.

Usage: python studies/zoo_reference/regmixup_reference.py /path/to/RegMixup-checkout
Recorded with the checkout at fd7846532990da67bf56ae71f78517270252f5f5, numpy 2.4.6, torch 2.14.1 (CPU).
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from reference_inputs import pattern_batch, pattern_weights

N, CLASSES = 6, 10
TARGETS = [0, 3, 9, 1, 1, 7]


def main(checkout: Path) -> None:
    sys.path.insert(0, str(checkout))
    torch.Tensor.cuda = lambda self, *a, **k: self  # CPU
    from models.regmixup import RegMixup
    from models.regularizers.mixup import mixup_data

    weights = torch.from_numpy(pattern_weights(3 * 8 * 8, CLASSES))

    class Base(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.hparams = SimpleNamespace(mixup_alpha=20.0, mixup_beta=20.0)
            self.seen = None

        def forward(self, x):
            self.seen = x
            return x.flatten(1) @ weights, None

    x = torch.from_numpy(pattern_batch(N, 3, 8))
    y = torch.tensor(TARGETS)
    print("STEPS = [")
    for seed in range(3):
        np.random.seed(seed)
        torch.manual_seed(seed)
        model = RegMixup(Base)()
        model.build_loss()
        loss = model.training_step((x, y), 0)
        np.random.seed(seed)  # replay mixup_data's draws to report them: λ, then the permutation
        torch.manual_seed(seed)
        lam, perm = float(np.random.beta(20.0, 20.0)), torch.randperm(N).tolist()
        # A checksum of what the model saw, each value weighted by its position (a plain sum would not
        # see the mixing: it conserves the total).
        position = torch.arange(model.seen.numel(), dtype=torch.float64).view_as(model.seen)
        checksum = float((model.seen.double() * position).sum())
        step = (seed, lam, perm, float(loss), checksum, tuple(model.seen.shape))
        print(f"    {step!r},")
    print("]")

    np.random.seed(0)
    torch.manual_seed(0)
    lams = np.array([mixup_data(x, y, 20.0, 20.0)[3] for _ in range(10000)])
    print("LAMBDA =", {"n": len(lams), "mean": float(lams.mean()), "std": float(lams.std(ddof=1))})


if __name__ == "__main__":
    main(Path(sys.argv[1]))
