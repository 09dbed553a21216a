"""Framework overhead (pytest-benchmark): vicinal's ERM training against a bare PyTorch loop doing the same
work — the same small CNN from ``vicinal.training.models``, the same images (the real CIFAR-10 subset when
present, else random ones), batch size, SGD (momentum, Nesterov, weight decay), cosine schedule, random crop
and flip, loss and accuracy tracked per batch — in the same process, under the same thread count and the
same deterministic-algorithms flag.

vicinal's side is :func:`vicinal.training.loop.train` as ``vicinal run`` calls it: the ERM method, a live rich
progress bar (rendered into memory, refreshed as on a terminal), a checkpoint written after every epoch.
Each round trains both from the same initial weights, alternating which goes first (ABBA), so drifting
background load hits both alike; ``extra_info`` has the median ratio (vicinal / bare) of CPU and wall
time over the rounds. The goal is ≤ 1.05 (BENCHMARKS.md).

``VICINAL_BENCH_N`` training images (default 1,024: 8 batches of 128), ``VICINAL_BENCH_EPOCHS`` (2),
``VICINAL_BENCH_ROUNDS`` pairs (6). The default test run smoke-runs one pair on 256 images, 1 epoch.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import statistics
import time

import torch
import torch.nn.functional as F
from helpers import CIFAR_DIR
from rich.console import Console

from vicinal.data.datasets import ImageSet
from vicinal.host.startup import set_deterministic
from vicinal.training.loop import train
from vicinal.training.method import get_method
from vicinal.training.models import build_model
from vicinal.training.recipe import Recipe

N = int(os.environ.get("VICINAL_BENCH_N", "1024"))
EPOCHS = int(os.environ.get("VICINAL_BENCH_EPOCHS", "2"))
ROUNDS = int(os.environ.get("VICINAL_BENCH_ROUNDS", "6"))


def _images(n: int) -> ImageSet:
    if (CIFAR_DIR / "cifar-10-batches-py" / "data_batch_1").is_file():
        from vicinal.data.datasets import load_dataset

        data = load_dataset("cifar10", CIFAR_DIR).train
        return ImageSet(data.images[:n].clone(), data.labels[:n].clone())
    g = torch.Generator().manual_seed(0)
    return ImageSet(
        torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
        torch.randint(0, 10, (n,), generator=g),
    )


def bare_loop(model: torch.nn.Module, data: ImageSet, recipe: Recipe, seed: int) -> float:
    """A hand-written PyTorch training loop for the same recipe; returns the last epoch's mean loss."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(
        model.parameters(),
        lr=recipe.lr,
        momentum=recipe.momentum,
        nesterov=recipe.nesterov,
        weight_decay=recipe.weight_decay,
    )
    n, pad, bs = len(data), recipe.crop_padding, recipe.batch_size
    h, w = data.images.shape[2:]
    mean_loss = 0.0
    for epoch in range(recipe.epochs):
        for group in opt.param_groups:
            group["lr"] = recipe.lr * 0.5 * (1 + math.cos(math.pi * epoch / recipe.epochs))
        model.train()
        order = torch.randperm(n, generator=g)
        loss_sum = correct = seen = 0.0
        for start in range(0, n, bs):
            idx = order[start : start + bs]
            if len(idx) < 2:
                continue
            x = data.images[idx].float().div_(255)
            y = data.labels[idx]
            # random crop from the zero-padded image, then a random horizontal flip
            padded = F.pad(x, (pad, pad, pad, pad))
            di, dj = torch.randint(0, 2 * pad + 1, (2, len(idx)), generator=g)
            rows = (di[:, None] + torch.arange(h))[:, None, :, None]
            cols = (dj[:, None] + torch.arange(w))[:, None, None, :]
            x = padded[
                torch.arange(len(idx))[:, None, None, None], torch.arange(3)[None, :, None, None], rows, cols
            ]
            flip = torch.rand(len(idx), generator=g) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(idx)
        mean_loss = loss_sum / seen
    return mean_loss


@contextlib.contextmanager
def _progress():
    """The progress bars ``vicinal run`` shows (its reporter), drawing into memory as on a 120-column
    terminal."""
    import vicinal.cli.console

    saved = vicinal.cli.console.console
    vicinal.cli.console.console = Console(file=io.StringIO(), force_terminal=True, width=120)
    try:
        with vicinal.cli.console.reporter(quiet=False) as rep:
            yield rep
    finally:
        vicinal.cli.console.console = saved


def _measure(fn) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def test_erm_epochs_against_a_bare_loop(benchmark, tmp_path):
    smoke = benchmark.disabled
    n, epochs, rounds = (256, 1, 1) if smoke else (N, EPOCHS, ROUNDS)
    data = _images(n)
    recipe = Recipe(epochs=epochs, batch_size=128, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
                    schedule="cosine", crop_padding=4, flip=True)  # fmt: skip
    torch.manual_seed(0)
    initial = build_model("small-cnn", 10, [0.5] * 3, [0.25] * 3)
    erm = get_method("erm")()
    checkpoint = tmp_path / "ckpt.pt"
    pairs: list[tuple[tuple[float, float], tuple[float, float]]] = []

    def run_vicinal() -> None:
        checkpoint.unlink(missing_ok=True)  # a fresh run, writing its checkpoint every epoch
        with _progress() as progress:
            train(
                copy.deepcopy(initial), erm, data, recipe, torch.device("cpu"), 0, progress, "erm", checkpoint
            )

    def run_bare() -> None:
        bare_loop(copy.deepcopy(initial), data, recipe, 0)

    def pair() -> None:
        if len(pairs) % 2 == 0:
            v = _measure(run_vicinal)
            b = _measure(run_bare)
        else:
            b = _measure(run_bare)
            v = _measure(run_vicinal)
        pairs.append((v, b))

    load = round(os.getloadavg()[0], 2)
    deterministic = torch.are_deterministic_algorithms_enabled()
    set_deterministic(True)  # as vicinal run sets it on the CPU, for both loops
    try:
        benchmark.pedantic(pair, rounds=rounds, warmup_rounds=0 if smoke else 1)
    finally:
        set_deterministic(deterministic)
    pairs = pairs[-rounds:]
    benchmark.extra_info.update(
        images=n,
        epochs=epochs,
        threads=torch.get_num_threads(),
        deterministic=True,
        data="cifar10 subset" if (CIFAR_DIR / "cifar-10-batches-py").is_dir() else "random",
        vicinal_cpu_median_s=statistics.median(p[0][1] for p in pairs),
        bare_cpu_median_s=statistics.median(p[1][1] for p in pairs),
        cpu_ratio_median=statistics.median(p[0][1] / p[1][1] for p in pairs),
        wall_ratio_median=statistics.median(p[0][0] / p[1][0] for p in pairs),
        load_before=load,
        load_after=round(os.getloadavg()[0], 2),
    )
