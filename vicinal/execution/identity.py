"""What determines a run's numbers (its identity), and when an existing result can stand for it.

Two layers (the seed is added per run): the *training* identity — what determines the trained weights —
and the *evaluation* identity — what determines the numbers those weights get. Both hash the code that
takes part (:mod:`vicinal.core.fingerprints`), so a result is reused only with the code that made it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vicinal.core.fingerprints import fingerprint, short, vicinal_version
from vicinal.data.datasets import DATASETS
from vicinal.evaluation.evaluator import Evaluator
from vicinal.execution.suite import Suite
from vicinal.store.results import SCHEMA_VERSION, Result, config_hash, read_result
from vicinal.training.loop import train
from vicinal.training.method import Method
from vicinal.training.models import MODELS


@dataclass
class RunIdentity:
    """What determines one configuration's numbers, in two layers (the seed is added per run):

    * ``training``: the trained weights — dataset content, the suite's training settings (not its name or
      evaluators), method and hyperparameters, and the code of the method, model, dataset loader and
      training loop, with vicinal's version. A change here retrains.
    * ``evaluation``: each evaluator's settings and code, and the evaluation batch size. A change here
      re-evaluates the cached trained model (``training_id`` unchanged) and writes a new result file.
    """

    training: dict[str, Any]
    evaluation: dict[str, Any]
    suite: str

    @property
    def training_id(self) -> str:
        return config_hash(self.training)

    @property
    def run_id(self) -> str:
        return config_hash({"training": self.training, "evaluation": self.evaluation, "suite": self.suite})

    def training_key(self, seed: int) -> str:
        """Cache key of the trained weights (the per-epoch checkpoint): the training identity and seed."""
        return config_hash({**self.training, "seed": seed})

    def describe(self) -> str:
        code = self.training["code"]
        parts = [f"{k} {short(code[k])}" for k in ("method", "model", "dataset", "training")]
        parts += [f"evaluator {n} {short(e['code'])}" for n, e in self.evaluation["evaluators"].items()]
        return f"{', '.join(parts)}; vicinal {code['vicinal']}"


def code_identity(suite: Suite, method: Method) -> dict[str, Any]:
    """Fingerprints of the code that trains this method's model (see :mod:`vicinal.core.fingerprints`)."""
    return {
        "vicinal": vicinal_version(),
        "method": fingerprint(type(method)),
        "model": fingerprint(MODELS.get(suite.model)),
        "dataset": fingerprint(DATASETS.get(suite.dataset)),
        "training": fingerprint(train),
    }


def run_identity(
    suite: Suite, evaluators: list[Evaluator], fingerprint_of_data: str, method: Method
) -> RunIdentity:
    training = {
        "schema": SCHEMA_VERSION,
        "suite": suite.training_spec(),
        "data_fingerprint": fingerprint_of_data,
        "method": method.name,
        "hyperparameters": dataclasses.asdict(method.config),
        "code": code_identity(suite, method),
    }
    return RunIdentity(training, evaluation_identity(suite, evaluators), suite.name)


def evaluation_identity(suite: Suite, evaluators: list[Evaluator]) -> dict[str, Any]:
    """What determines the numbers a trained model gets: each evaluator's settings and code, and the
    evaluation batch size (shared by vicinal's runs and models evaluated as given)."""
    return {
        "eval_batch_size": suite.eval_batch_size,
        "evaluators": {
            e.name: {"settings": dataclasses.asdict(e.config), "code": fingerprint(type(e))}
            for e in evaluators
        },
    }


def reusable_result(path: Path, identity: RunIdentity) -> Result | None:
    """The result at ``path`` if it is intact and was made by this exact configuration and code."""
    if not path.is_file():
        return None
    try:
        existing = read_result(path)
    except ValueError:
        return None  # unreadable: recompute it
    if existing.run_id != identity.run_id or existing.training_id != identity.training_id:
        return None  # a 12-character file-name collision, or a file from elsewhere: never trust it
    return existing
