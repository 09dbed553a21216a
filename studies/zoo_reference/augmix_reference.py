"""Record google-research/augmix's numbers for tests/test_augmix.py (run it, paste what it prints).

Runs the reference's own code, imported from a checkout given on the command line (nothing of it is
copied here): ``augmentations.py`` for the operations, ``cifar.py``'s ``aug`` (its training-time AugMix)
and ``train`` (its loss). Only what makes it run on a CPU without a dataset is patched: ``.cuda()`` is a
no-op, the module-level argparse sees no arguments, and the random draws are logged or fixed.

Usage: python studies/zoo_reference/augmix_reference.py /path/to/augmix-checkout
Recorded with the checkout at 9b9824c7c19bf7e72df2d085d97b99b3bfb00ba4, Pillow 13.0.0, numpy 2.4.6,
torch 2.14.1 (CPU).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from reference_inputs import pattern_images, pattern_logits

LEVELS = [0.1, 0.3333, 0.35, 1.0, 1.25, 1.7, 2.5, 2.9999]
SIGN_DRAWS = [0.9, 0.1]
PIXELS = (
    (0, 0, 0),
    (1, 5, 17),
    (2, 31, 31),
    (0, 16, 3),
)  # the reference negates when its uniform draw is > 0.5: -1, then +1


def sha(chunks: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(np.ascontiguousarray(c, dtype=np.uint8).tobytes())
    return h.hexdigest()[:32]


def main(checkout: Path) -> None:
    sys.path.insert(0, str(checkout))
    sys.argv = ["cifar.py"]
    torch.Tensor.cuda = lambda self, *a, **k: self  # CPU
    import augmentations
    import cifar
    from PIL import Image

    images = pattern_images()
    pils = [Image.fromarray(a) for a in images]

    # 1. Each operation for fixed levels and signs: outputs for LEVELS × SIGN_DRAWS × images, hashed.
    class FixedRandom:
        def __init__(self, value):
            self.value = value

        def uniform(self, *args, **kwargs):
            return self.value

        def random(self, *args, **kwargs):
            return self.value

    class FixedNumpy:
        def __init__(self, value):
            self.random = FixedRandom(value)

    real_np, real_level = augmentations.np, augmentations.sample_level
    ops = {}
    for op in augmentations.augmentations:
        outs = []
        for level in LEVELS:
            augmentations.sample_level = lambda n, level=level: level
            for s in SIGN_DRAWS:
                augmentations.np = FixedNumpy(s)
                outs.extend(np.asarray(op(p, 3)) for p in pils)
        ops[op.__name__] = {"sha": sha(outs), "sum": int(sum(o.astype(np.int64).sum() for o in outs))}
    augmentations.np, augmentations.sample_level = real_np, real_level
    print("OPERATIONS =", [op.__name__ for op in augmentations.augmentations])
    print(
        "EXCLUDED =",
        [op.__name__ for op in augmentations.augmentations_all if op not in augmentations.augmentations],
    )
    print("OPS =", ops)

    # 2. Whole views from cifar.aug with the draws logged: per view the draws, the chains' hash, the mix.
    log: list[tuple] = []

    def logged(name, fn):
        def wrapper(*args, **kwargs):
            value = fn(*args, **kwargs)
            log.append((name, args, kwargs, value))
            return value

        return wrapper

    rnd = np.random
    originals = {n: getattr(rnd, n) for n in ("dirichlet", "beta", "randint", "choice", "uniform", "random")}
    for n, fn in originals.items():
        setattr(rnd, n, logged(n, fn))
    seen: list[np.ndarray] = []

    from torchvision import transforms

    # cifar.main's preprocess, logging the PIL images it is given.
    reference_preprocess = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.5] * 3)]
    )

    def preprocess(pil):
        seen.append(np.asarray(pil).copy())
        return reference_preprocess(pil)

    views = []
    for seed in range(6):
        image_index = seed % len(pils)
        np.random.seed(seed)
        log.clear()
        seen.clear()
        mixed = cifar.aug(pils[image_index], preprocess)
        draws = parse(log)
        unit = (mixed.numpy() * 0.5 + 0.5).astype(np.float64)
        views.append(
            {
                "seed": seed,
                "image": image_index,
                **draws,
                "chains_sha": sha(seen[1:-1]),  # preprocess saw the image, the 3 chains, the image
                "sum": float(unit.sum()),
                "sumsq": float((unit**2).sum()),
                "pixels": [float(unit[c, y, x]) for c, y, x in PIXELS],
            }
        )
    for n, fn in originals.items():
        setattr(rnd, n, fn)
    print("VIEWS = [")
    for v in views:
        print(f"    {v!r},")
    print("]")

    # 3. The statistics of the change a view makes, over many seeded draws (image 0 and 2, seed 0).
    np.random.seed(0)
    changes = []
    for i in range(2000):
        image = images[0 if i % 2 == 0 else 2]
        seen.clear()
        mixed = cifar.aug(pils[0 if i % 2 == 0 else 2], preprocess)
        unit = mixed.numpy() * 0.5 + 0.5
        changes.append(np.abs(unit - image.transpose(2, 0, 1) / 255.0).mean())
    changes = np.array(changes)
    print("CHANGE =", {"n": len(changes), "mean": float(changes.mean()), "std": float(changes.std(ddof=1))})

    # 4. The loss of cifar.train for fixed logits: a model that returns them, one batch, no optimiser step.
    n, classes = 6, 10
    logits = torch.from_numpy(np.concatenate([pattern_logits(n, classes, v) for v in range(3)]))
    targets = torch.tensor([0, 3, 9, 1, 1, 7])
    captured = {}

    class Fixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return logits + self.p

    real_backward = torch.Tensor.backward

    def capture(self, *args, **kwargs):
        captured["loss"] = float(self)
        return real_backward(self, *args, **kwargs)

    torch.Tensor.backward = capture
    net = Fixed()
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    batch = [((torch.zeros(n, 3, 2, 2),) * 3, targets)]
    cifar.train(net, batch, opt, sched)
    torch.Tensor.backward = real_backward
    print("JSD_LOSS =", repr(captured["loss"]))


def parse(log: list[tuple]) -> dict:
    """The draws of one cifar.aug call, from the logged numpy calls, in vicinal's layout."""
    names = [op.__name__ for op in __import__("augmentations").augmentations]
    weights = [float(v) for v in np.float32(log[0][3])]
    m = float(np.float32(log[1][3]))
    depth, ops, levels, signs = [], [], [], []
    i = 2
    while i < len(log):
        assert log[i][0] == "randint"
        d = int(log[i][3])
        depth.append(d)
        i += 1
        chain_ops, chain_levels, chain_signs = [], [], []
        for _ in range(d):
            name = log[i][3].__name__
            i += 1
            chain_ops.append(names.index(name))
            level, sign = 0.0, 1
            if name not in ("autocontrast", "equalize"):
                level = float(log[i][3])
                i += 1
                if name in ("rotate", "shear_x", "shear_y", "translate_x", "translate_y"):
                    sign = -1 if log[i][3] > 0.5 else 1
                    i += 1
            chain_levels.append(level)
            chain_signs.append(sign)
        ops.append(chain_ops)
        levels.append(chain_levels)
        signs.append(chain_signs)
    return {"weights": weights, "m": m, "depth": depth, "ops": ops, "levels": levels, "signs": signs}


if __name__ == "__main__":
    main(Path(sys.argv[1]))
