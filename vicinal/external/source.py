"""Which model ``vicinal evaluate`` measures, as the user named it: an ``nn.Module``, a checkpoint of a
registered architecture, or a RobustBench model-zoo entry — checked for consistency before anything is
loaded, then loaded as a :class:`~vicinal.external.given.GivenModel`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vicinal.core.errors import VicinalError

if TYPE_CHECKING:
    from torch import nn

    from vicinal.execution.jobs import RunData
    from vicinal.external.given import GivenModel


@dataclass(frozen=True)
class ModelSource:
    """One of ``module``, ``checkpoint`` (with ``architecture``) or ``robustbench`` (with ``threat`` and
    ``model_dir``); ``normalize`` standardises inputs for a model that expects it; ``name`` labels it."""

    module: nn.Module | None = None
    checkpoint: Path | None = None
    architecture: str | None = None
    normalize: Any = None
    robustbench: str | None = None
    threat: str = "corruptions"
    model_dir: Path | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        """The model's name on the leaderboard (a RobustBench entry's own name by default)."""
        return self.name if self.name is not None else str(self.robustbench)

    def check(self) -> None:
        """The arguments' own consistency, before torch, the suite or the data is loaded."""
        given = sum(x is not None for x in (self.module, self.checkpoint, self.robustbench))
        if given != 1:
            raise VicinalError(
                "evaluate: give exactly one of a model (an nn.Module or a checkpoint) or robustbench=NAME"
            )
        if self.robustbench is None and self.name is None:
            raise VicinalError("evaluate: name= is required (how the model is labelled on the leaderboard)")
        if self.name is not None and not self.name.strip():  # it would be labelled "None"
            raise VicinalError("evaluate: the name is empty; give the model a name for the leaderboard")
        if self.robustbench is not None and self.normalize is not None:
            raise VicinalError("evaluate: RobustBench models normalise inside; drop normalize")
        if self.architecture is not None and self.checkpoint is None:
            raise VicinalError("evaluate: architecture= goes with a checkpoint path, not with an nn.Module")
        if self.checkpoint is not None:
            if self.architecture is None:
                raise VicinalError(
                    f"evaluate: {self.checkpoint} is a checkpoint; say which registered architecture it is"
                )
            if not self.checkpoint.expanduser().is_file():
                raise VicinalError(f"evaluate: checkpoint {self.checkpoint}: no such file")

    def load_zoo(self, dataset: str) -> GivenModel | None:
        """The RobustBench entry, if this is one (it needs no data, so it is loaded first: a misnamed entry
        is an error before the data loads); None otherwise."""
        if self.robustbench is None:
            return None
        from vicinal.external.robustbench import load_zoo_model

        return load_zoo_model(self.robustbench, dataset, self.threat, self.model_dir)

    def load(self, rd: RunData) -> GivenModel:
        """The module or checkpoint, wrapped to normalise as asked (``rd``: the suite's statistics)."""
        from vicinal.external.given import from_module, load_checkpoint

        if self.checkpoint is not None:
            assert self.architecture is not None  # check() made sure
            return load_checkpoint(self.checkpoint, self.architecture, self.normalize, rd)
        return from_module(self.module, self.normalize, rd)
