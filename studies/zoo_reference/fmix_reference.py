"""Record ecs-vlc/FMix's numbers for tests/test_fmix.py (run it, paste what it prints).

Imports the reference's ``fmix.py`` from a checkout given on the command line (nothing of it is copied):
``make_low_freq_image`` for the grey image of a seeded noise field, ``binarise_mask`` for the mask (its
coin, Python's ``random.random``, fixed), ``sample_mask`` for statistics over many draws.

Usage: python studies/zoo_reference/fmix_reference.py /path/to/FMix-checkout
Recorded with the checkout at e5991dca018882734c8ea63599f10dfbe67fa0ae, numpy 2.4.6, scipy 1.17.1.
"""

from __future__ import annotations

import hashlib
import random
import sys
from pathlib import Path

import numpy as np

# (noise seed, shape, decay power, λ, coin, max_soft): the coin is what random.random() returns (the
# reference rounds λ·HW up when it is > 0.5).
CASES = [
    (0, (32, 32), 3.0, 0.37, 0.9, 0.0),
    (1, (32, 32), 3.0, 0.81, 0.2, 0.0),
    (2, (32, 32), 1.5, 0.5, 0.7, 0.0),
    (3, (31, 33), 3.0, 0.6321, 0.3, 0.0),
    (4, (64, 64), 3.0, 0.25, 0.6, 0.0),
    (5, (32, 32), 3.0, 0.4, 0.9, 0.1),
    (6, (33, 31), 4.0, 0.93, 0.1, 0.2),
]
GREY_PIXELS = ((0, 0), (5, 17), (30, 30), (16, 3))


def boundary(mask: np.ndarray) -> float:
    """Fraction of horizontally or vertically adjacent pixel pairs on opposite sides of the mask's edge."""
    pairs = mask[:, 1:].size + mask[1:, :].size
    return float(((mask[:, 1:] != mask[:, :-1]).sum() + (mask[1:, :] != mask[:-1, :]).sum()) / pairs)


def main(checkout: Path) -> None:
    sys.path.insert(0, str(checkout))
    import fmix

    print("CASES = [")
    for seed, shape, decay, lam, coin, soft in CASES:
        np.random.seed(seed)
        grey = fmix.make_low_freq_image(decay, shape)[0]  # draws np.random.randn(1, H, W', 2)
        fmix.random.random = lambda coin=coin: coin
        mask = fmix.binarise_mask(grey.copy(), lam, shape, soft)[0]
        digest = hashlib.sha256(np.ascontiguousarray(mask, dtype=np.float64).tobytes()).hexdigest()[:32]
        grey_values = [float(grey[p]) for p in GREY_PIXELS]
        case = (seed, shape, decay, lam, coin, soft, grey_values, float(mask.sum()), digest)
        print(f"    {case!r},")
    print("]")
    fmix.random.random = random.random

    np.random.seed(0)
    random.seed(0)
    lams, means, edges = [], [], []
    for _ in range(2000):
        lam, mask = fmix.sample_mask(1.0, 3.0, (32, 32))
        lams.append(lam)
        means.append(mask.mean())
        edges.append(boundary(mask[0]))
    lams, means, edges = map(np.array, (lams, means, edges))
    stats = {
        "n": 2000,
        "lam_mean": float(lams.mean()),
        "lam_std": float(lams.std(ddof=1)),
        "gap_max": float(np.abs(means - lams).max()),
        "edge_mean": float(edges.mean()),
        "edge_std": float(edges.std(ddof=1)),
    }
    print("STATS =", stats)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
