"""The classifier's training recipe: a suite's ``[train]`` table, which the training loop follows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vicinal.core.hparams import hp

#: Sane maxima, stated in the errors: beyond them a run cannot finish or cannot fit in memory.
MAX_EPOCHS = 100_000
MAX_BATCH = 65_536
MAX_PADDING = 64


@dataclass
class Recipe:
    """The classifier's training recipe (the suite's ``[train]`` table)."""

    epochs: int = hp(200, "training epochs", ge=1, le=MAX_EPOCHS)
    batch_size: int = hp(128, "batch size", ge=2, le=MAX_BATCH)
    optimizer: Literal["sgd"] = hp("sgd", "optimizer")
    lr: float = hp(0.1, "initial learning rate", gt=0)
    momentum: float = hp(0.9, "SGD momentum", ge=0, lt=1)
    nesterov: bool = hp(False, "Nesterov momentum")
    weight_decay: float = hp(1e-4, "L2 weight decay (all parameters)", ge=0)
    schedule: Literal["step", "cosine", "constant"] = hp("step", "learning-rate schedule")
    milestones: list[float] = hp(
        [0.5, 0.75], "step schedule: decay points as fractions of the epochs", gt=0, lt=1
    )
    gamma: float = hp(0.1, "step schedule: multiplicative decay at each milestone", gt=0)
    crop_padding: int = hp(
        4, "random crop from a zero-padded image, in pixels (0 disables)", ge=0, le=MAX_PADDING
    )
    flip: bool = hp(True, "random horizontal flip")

    def milestone_epochs(self) -> list[int]:
        return sorted({max(1, round(m * self.epochs)) for m in (self.milestones or [])})
