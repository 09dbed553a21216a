"""AugMix's augmentation alone: one 128-image view, vicinal's batched operations against the reference's
``cifar.aug`` image by image (PIL), on the same real CIFAR-10 images, one thread, interleaved rounds
(the order alternates); prints the median and minimum ms per view.

Usage: python studies/zoo_reference/augmix_view_cost.py /path/to/augmix-checkout DATA_DIR [ROUNDS]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from vicinal.data.datasets import load_dataset
from vicinal.training.method import get_method


def main(checkout: Path, data_dir: Path, rounds: int) -> None:
    torch.set_num_threads(1)
    sys.path.insert(0, str(checkout))
    argv, sys.argv = sys.argv, ["cifar.py"]  # its module-level argparse
    import cifar
    from PIL import Image
    from torchvision import transforms

    sys.argv = argv
    get_method("augmix")  # registers and imports the method's module
    from vicinal.methods.augmix import augment, draw

    images = load_dataset("cifar10", data_dir).train.images[:128].clone()
    preprocess = transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.5] * 3)])
    pils = [Image.fromarray(a) for a in images.permute(0, 2, 3, 1).numpy()]
    x = images.float() / 255
    gen = np.random.default_rng(0)
    contenders = {
        "vicinal": lambda: augment(x, draw(128, 3, -1, 3, 1.0, gen)),
        "reference": lambda: torch.stack([cifar.aug(p, preprocess) for p in pils]),
    }
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for fn in contenders.values():
        fn()
    for r in range(rounds):
        for name in list(contenders)[:: 1 if r % 2 == 0 else -1]:
            t0 = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - t0)
    for name, t in times.items():
        print(
            f"{name}: median {1000 * statistics.median(t):.0f} ms per 128-image view, min {1000 * min(t):.0f}"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 10)
