"""Suites: TOML files (shipped in ``suites/``, installed as ``vicinal.suites``) that fix a protocol.

A suite names the dataset, the model, the training recipe, the evaluators with their protocol
parameters, the methods and seeds to run, and per-method hyperparameter overrides.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from vicinal.errors import VicinalError
from vicinal.hparams import build_config, hp


@dataclass
class Recipe:
    """The classifier's training recipe."""

    epochs: int = hp(200, "training epochs")
    batch_size: int = hp(128, "batch size")
    optimizer: Literal["sgd"] = hp("sgd", "optimizer")
    lr: float = hp(0.1, "initial learning rate")
    momentum: float = hp(0.9, "SGD momentum")
    nesterov: bool = hp(False, "Nesterov momentum")
    weight_decay: float = hp(1e-4, "L2 weight decay (all parameters)")
    schedule: Literal["step", "cosine", "constant"] = hp("step", "learning-rate schedule")
    milestones: list[float] = hp([0.5, 0.75], "step schedule: decay points as fractions of the epochs")
    gamma: float = hp(0.1, "step schedule: multiplicative decay at each milestone")
    crop_padding: int = hp(4, "random crop from a zero-padded image (0 disables)")
    flip: bool = hp(True, "random horizontal flip")

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 2 or self.lr <= 0:
            raise ValueError("need epochs ≥ 1, batch_size ≥ 2 and lr > 0")
        if any(not 0 < m < 1 for m in self.milestones):
            raise ValueError("milestones are fractions of the epochs, strictly between 0 and 1")

    def milestone_epochs(self) -> list[int]:
        return sorted({max(1, round(m * self.epochs)) for m in (self.milestones or [])})


@dataclass
class Suite:
    name: str
    description: str
    dataset: str
    model: str
    recipe: Recipe
    methods: list[str]
    seeds: list[int]
    evaluators: dict[str, dict[str, Any]]
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    limit_train: int = 0
    validation: float = 0.0
    eval_batch_size: int = 512
    path: str = ""

    def spec(self) -> dict[str, Any]:
        """The protocol as data (recorded in every result file); the run's seed is not part of it."""
        d = dataclasses.asdict(self)
        d.pop("path")
        d.pop("seeds")
        d.pop("methods")
        d.pop("method_params")
        d["milestone_epochs"] = self.recipe.milestone_epochs()
        return d


def builtin_suites() -> dict[str, Path]:
    folder = resources.files("vicinal.suites")
    return {p.name[:-5]: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml")}


def _table(table: Any, where: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise VicinalError(f"{where} must be a table")
    return table


def load_suite(name_or_path: str) -> Suite:
    """A suite by built-in name (``cifar10``) or by path to a TOML file."""
    raw, path = _load_raw(name_or_path, [])
    return parse_suite(raw, str(path))


def _merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in child.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _load_raw(name_or_path: str, chain: list[str]) -> tuple[dict[str, Any], Path]:
    """The suite's TOML as a dict, with ``extends = "other"`` resolved (the child's tables merge into
    the parent's key by key, so a -c suite is its clean suite plus one evaluator)."""
    shipped = builtin_suites()
    if name_or_path in shipped:
        path = shipped[name_or_path]
    else:
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise VicinalError(
                f"unknown suite {name_or_path!r}: not a shipped suite ({', '.join(sorted(shipped))}) "
                "and not a TOML file. Run `vicinal suites` to list them."
            )
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise VicinalError(f"suite file {path} is not valid TOML: {exc}") from None
    parent = raw.pop("extends", None)
    if parent is not None:
        chain = [*chain, str(path.resolve())]
        ref = str(parent)
        if ref not in shipped and not Path(ref).is_absolute():
            ref = str(path.parent / ref)  # a user's suite extends a file beside it
        target = shipped.get(ref, Path(ref))
        if str(target.resolve()) in chain:
            raise VicinalError(f"suite {path}: `extends` loops back to {target}")
        base, _ = _load_raw(ref, chain)
        raw = _merge(base, raw)
    return raw, path


def parse_suite(raw: dict[str, Any], where: str = "<suite>") -> Suite:
    known = {"name", "description", "data", "model", "train", "run", "evaluators", "methods"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise VicinalError(
            f"{where}: unknown section(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    try:
        data = _table(raw.get("data", {}), "[data]")
        run = _table(raw.get("run", {}), "[run]")
        model = _table(raw.get("model", {}), "[model]")
        recipe = build_config(Recipe, _table(raw.get("train", {}), "[train]"), "train")
        return Suite(
            name=str(raw["name"]),
            description=str(raw.get("description", "")),
            dataset=str(data["dataset"]),
            limit_train=int(data.get("limit_train", 0)),
            validation=float(data.get("validation", 0.0)),
            model=str(model.get("name", "small-cnn")),
            eval_batch_size=int(model.get("eval_batch_size", 512)),
            recipe=recipe,
            methods=[str(m) for m in run.get("methods", ["erm"])],
            seeds=[int(s) for s in run.get("seeds", [0])],
            evaluators={k: dict(v) for k, v in raw.get("evaluators", {"clean": {}}).items()},
            method_params={k: dict(v) for k, v in raw.get("methods", {}).items()},
            path=where,
        )
    except KeyError as exc:
        raise VicinalError(f"{where}: missing required key {exc}") from None
    except (TypeError, ValueError) as exc:
        raise VicinalError(f"{where}: {exc}") from None
