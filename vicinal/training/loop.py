"""The training loop shared by every method: batches, augmentation, schedule, AMP, checkpoints."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vicinal.core.errors import VicinalError
from vicinal.core.io import atomic_torch_save, load_plain
from vicinal.core.reporting import Pacer, Reporter
from vicinal.data.datasets import ImageSet, count_train_batches, to_unit, train_batches
from vicinal.host.devices import training_autocast
from vicinal.training.augment import random_crop_flip
from vicinal.training.method import Method
from vicinal.training.recipe import Recipe
from vicinal.training.rng import RunRandom

log = logging.getLogger("vicinal")

#: Seconds between progress updates (each one reads the running loss back from the device).
PROGRESS_EVERY_S = 0.5


def finite_loss(
    loss_sum: torch.Tensor, seen: int, label: str, epoch: int, recipe: Recipe, method: Method
) -> float:
    """The epoch's mean loss so far; a non-finite one stops the run with advice (:func:`divergence`)."""
    value = float(loss_sum) / max(seen, 1)
    if math.isfinite(value):
        return value
    raise divergence(f"the training loss became {value}", label, epoch, recipe, method)


def check_finite_weights(model: nn.Module, label: str, epoch: int, recipe: Recipe, method: Method) -> None:
    """Stops the run when a weight is not finite at the end of an epoch. The loss is read before each
    step's update, so a last step that overflows the weights (a huge finite weight decay) would otherwise
    reach the evaluators as a model that predicts one class, and its numbers as a result. One read per
    epoch: the count of non-finite values."""
    bad = int(torch.stack([(~p.detach().isfinite()).sum() for p in model.parameters()]).sum())
    if bad:
        raise divergence(f"{bad} weights became NaN or infinite", label, epoch, recipe, method)


def divergence(what: str, label: str, epoch: int, recipe: Recipe, method: Method) -> VicinalError:
    """The error for a diverged run, with advice: the setting that is not a finite number where there is
    one (settings are checked when read, but a Recipe or config made in Python is not), else the recipe's
    learning rate and weight decay, by value."""
    settings = {f"train.{k}": v for k, v in dataclasses.asdict(recipe).items()}
    if dataclasses.is_dataclass(method.config):
        settings |= {f"{method.name}.{k}": v for k, v in dataclasses.asdict(method.config).items()}
    odd = [f"{k} = {v}" for k, v in settings.items() if isinstance(v, float) and not math.isfinite(v)]
    if odd:
        advice = f"{', '.join(odd)} is not a finite number; give a finite value"
    else:
        advice = (
            f"lower the learning rate (train.lr = {recipe.lr:g}) or the weight decay "
            f"(train.weight_decay = {recipe.weight_decay:g}) and run again"
        )
    return VicinalError(f"{label}: {what} at epoch {epoch + 1}; {advice}")


@dataclass
class TrainSummary:
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    images: int = 0  # training images drawn (batches × batch size)
    forwarded: int = 0  # images through the classifier (a method may forward more than it draws)
    resumed_from_epoch: int = 0

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        model.parameters(),
        lr=recipe.lr,
        momentum=recipe.momentum,
        nesterov=recipe.nesterov,
        weight_decay=recipe.weight_decay,
    )


def lr_at(recipe: Recipe, epoch: int) -> float:
    """Learning rate for a 0-based epoch."""
    if recipe.schedule == "cosine":
        return recipe.lr * 0.5 * (1 + math.cos(math.pi * epoch / recipe.epochs))
    if recipe.schedule == "step":
        return recipe.lr * recipe.gamma ** sum(epoch >= m for m in recipe.milestone_epochs())
    return recipe.lr


def read_checkpoint(path: Path) -> dict[str, Any] | None:
    """The saved training state, or None when there is none or it cannot be read (then training restarts).

    Loaded with ``weights_only=True``: a checkpoint holds only tensors and plain values (numbers, strings,
    lists, dicts — the RNG and optimiser states included), so a cache folder copied from elsewhere cannot
    run code when it is read. Loaded onto the CPU whatever the run's device: the RNG state must stay a
    CPU byte tensor (a generator refuses any other), and ``load_state_dict`` copies weights and optimiser
    state to their parameters' device."""
    if not path.is_file():
        return None
    try:
        return load_plain(path, map_location="cpu")
    except ValueError as exc:  # a damaged or unsafe checkpoint costs a retrain, never the run
        log.warning("checkpoint %s %s; training from scratch", path, exc)
        return None


def train(
    model: nn.Module,
    method: Method,
    train_set: ImageSet,
    recipe: Recipe,
    device: torch.device,
    seed: int,
    reporter: Reporter,
    label: str,
    checkpoint: Path | None = None,
    progress_every_s: float | None = None,
) -> TrainSummary:
    """Train ``model`` in place with ``method``'s loss. Resumes from ``checkpoint`` if it exists and
    rewrites it after every epoch, so an interrupted run loses at most one epoch.

    A step never makes the host wait for the device: the images are resident on it, random draws reach
    it asynchronously, and the running loss is read back only every ``progress_every_s`` seconds (default
    :data:`PROGRESS_EVERY_S`) and at the end of an epoch."""
    every = PROGRESS_EVERY_S if progress_every_s is None else progress_every_s
    rng = RunRandom(seed)
    optimizer = make_optimizer(model, recipe)
    summary = TrainSummary()
    start_epoch = 0
    state = read_checkpoint(checkpoint) if checkpoint is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        rng.load_state(state["rng"])
        summary.history, summary.seconds, summary.images = state["history"], state["seconds"], state["images"]
        summary.forwarded = state.get("forwarded", 0)
        start_epoch = summary.resumed_from_epoch = state["epoch"]

    # The training images live on the device for the whole run (uint8: CIFAR-10 is 150 MB), so a batch is
    # an index into device memory, not a copy from the host.
    images, labels = train_set.images.to(device), train_set.labels.to(device)
    n = len(train_set)
    steps = count_train_batches(n, recipe.batch_size)
    task = reporter.task(label, total=recipe.epochs * steps, done=start_epoch * steps)
    pacer = Pacer()
    for epoch in range(start_epoch, recipe.epochs):
        lr = lr_at(recipe, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        # On the device (sent once per epoch): each batch's indices are a slice of it, not a copy.
        order = rng.permutation(n, device)
        task_done = 0
        t0 = shown = time.perf_counter()
        # Running sums stay on the device: reading a number back (.item()) makes the host wait for the
        # GPU, so it happens only when the progress display is refreshed and at the end of the epoch.
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.float64, device=device)
        count = seen = 0
        batches = train_batches(order, recipe.batch_size)
        for done, idx in enumerate(batches, start=1):
            x = to_unit(images[idx], device)
            y = labels[idx]
            x = random_crop_flip(x, rng, recipe.crop_padding, recipe.crop_padding > 0, recipe.flip)
            with training_autocast(device):
                out = method.training_step(model, x, y, rng)
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            optimizer.step()
            loss_sum += out.loss.detach().double() * len(idx)
            correct += out.correct
            count += out.count
            seen += len(idx)
            now = time.perf_counter()
            if now - shown >= every or done == len(batches):
                shown = now
                mean_loss = finite_loss(loss_sum, seen, label, epoch, recipe, method)
                task.advance(
                    done - task_done,
                    loss=f"{mean_loss:.3f}",
                    acc=f"{100 * float(correct) / max(count, 1):.1f}%",
                    **{"img/s": f"{seen / max(now - t0, 1e-9):.0f}", "epoch": f"{epoch + 1}/{recipe.epochs}"},
                )
                task_done = done
        epoch_seconds = time.perf_counter() - t0
        check_finite_weights(model, label, epoch, recipe, method)
        loss_sum, correct = float(loss_sum), float(correct)
        summary.seconds += epoch_seconds
        summary.images += seen
        summary.forwarded += int(count)  # StepOutput.count: the images this step forwarded
        summary.history.append(
            {
                "epoch": epoch + 1,
                "lr": lr,
                "loss": loss_sum / max(seen, 1),
                "train_acc": correct / max(count, 1),
                "seconds": round(epoch_seconds, 3),
            }
        )
        if pacer.due(last=epoch + 1 == recipe.epochs):
            task.line(
                f"epoch {epoch + 1}/{recipe.epochs}",
                loss=f"{loss_sum / max(seen, 1):.3f}",
                acc=f"{100 * correct / max(count, 1):.1f}%",
                **{"img/s": f"{seen / max(epoch_seconds, 1e-9):.0f}", "lr": f"{lr:.4g}"},
            )
        if checkpoint is not None:
            atomic_torch_save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "rng": rng.state(),
                    "epoch": epoch + 1,
                    "history": summary.history,
                    "seconds": summary.seconds,
                    "images": summary.images,
                    "forwarded": summary.forwarded,
                },
                checkpoint,
            )
    return summary
