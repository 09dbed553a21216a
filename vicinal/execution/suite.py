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
from typing import Any

from vicinal.core.errors import VicinalError
from vicinal.core.hparams import SEED_MAX, build_config, hp, typed_values
from vicinal.core.names import check_name
from vicinal.training.recipe import Recipe


@dataclass
class DataSettings:
    """The suite's ``[data]`` table."""

    dataset: str = hp("", "registered dataset (vicinal datasets lists them)")
    limit_train: int = hp(0, "use only N images of a fixed shuffle of the training split (0 = all)", ge=0)
    validation: float = hp(0.0, "share of the training images held out (temperature scaling)", ge=0, lt=1)

    def validate(self) -> None:
        if not self.dataset:
            raise ValueError('dataset is required, e.g. dataset = "cifar10"')


@dataclass
class ModelSettings:
    """The suite's ``[model]`` table."""

    name: str = hp("small-cnn", "registered classifier architecture")
    eval_batch_size: int = hp(512, "images per batch when evaluating", ge=1, le=65_536)


@dataclass
class RunSettings:
    """The suite's ``[run]`` table."""

    methods: list[str] = hp(["erm"], "methods to train, in order")
    seeds: list[int] = hp([0], "seeds; each (method, seed) is one run", ge=0, le=SEED_MAX)
    baseline: str = hp("erm", "the method that relative metrics such as mCE are computed against")

    def validate(self) -> None:
        if not self.methods:
            raise ValueError("methods is empty: name at least one method")
        if not self.seeds:
            raise ValueError("seeds is empty: give at least one seed, e.g. seeds = [0]")


#: The tables and keys a suite file may have; everything else is an error naming the closest valid key.
SECTIONS: dict[str, type] = {
    "data": DataSettings,
    "model": ModelSettings,
    "train": Recipe,
    "run": RunSettings,
}
TOP_LEVEL = ("name", "description", "extends", *SECTIONS, "evaluators", "methods", "sweep")


@dataclass
class Suite:
    name: str
    description: str
    data: DataSettings
    model_settings: ModelSettings
    recipe: Recipe
    run: RunSettings
    evaluators: dict[str, dict[str, Any]]
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ``[sweep.METHOD] PARAM = [v1, v2]``: the grid of every combination, each point its own configuration.
    sweep: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    path: str = ""
    #: The settings a run replaced (``override``), as ``[section] key``: errors name them as the run's own.
    overridden: set[str] = field(default_factory=set, compare=False, repr=False)

    # The settings most code reads, by their plain names.
    @property
    def dataset(self) -> str:
        return self.data.dataset

    @property
    def limit_train(self) -> int:
        return self.data.limit_train

    @property
    def validation(self) -> float:
        return self.data.validation

    @property
    def model(self) -> str:
        return self.model_settings.name

    @property
    def eval_batch_size(self) -> int:
        return self.model_settings.eval_batch_size

    @property
    def methods(self) -> list[str]:
        return self.run.methods

    @property
    def seeds(self) -> list[int]:
        return self.run.seeds

    def override(self, section: str, **values: Any) -> None:
        """Replace settings of one section (``override("run", seeds=[1, 2])``), validated as in a file."""
        current = getattr(self, {"train": "recipe", "model": "model_settings"}.get(section, section))
        merged = {**dataclasses.asdict(current), **values}
        setattr(
            self,
            {"train": "recipe", "model": "model_settings"}.get(section, section),
            build_config(type(current), merged, section),
        )
        self.overridden.update(f"[{section}] {key}" for key in values)

    def training_spec(self) -> dict[str, Any]:
        """What of the suite determines the trained weights (with the method, seed and code): not its name,
        description, evaluators or run list, so suites that train alike (cifar10, cifar10-c) share models."""
        return {
            "dataset": self.dataset,
            "limit_train": self.limit_train,
            "validation": self.validation,
            "model": self.model,
            "recipe": dataclasses.asdict(self.recipe),
            "milestone_epochs": self.recipe.milestone_epochs(),
        }

    def spec(self) -> dict[str, Any]:
        """The protocol as data (recorded in every result file); the run's seed is not part of it."""
        return {
            "name": self.name,
            "description": self.description,
            **self.training_spec(),
            "eval_batch_size": self.eval_batch_size,
            "baseline": self.run.baseline,
            "evaluators": self.evaluators,
        }


def builtin_suites() -> dict[str, Path]:
    folder = resources.files("vicinal.suites")
    return {p.name[:-5]: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml")}


def load_suite(name_or_path: str) -> Suite:
    """A suite by built-in name (``cifar10``) or by path to a TOML file, its own settings typed and
    checked. The names it uses (methods, evaluators, model, dataset) are checked against their
    registries by :func:`validate_components`, once a run's overrides are in place (a ``--methods`` may
    replace a method the file names), which :func:`vicinal.execution.plan.plan_run` does."""
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
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise VicinalError(f"suite file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise VicinalError(f"cannot read suite file {path}: {exc.strerror or exc}") from None
    parent = raw.pop("extends", None)
    if parent is not None:
        if not isinstance(parent, str):
            raise VicinalError(f"{path}: extends must be a suite name or a path, got {parent!r}")
        chain = [*chain, str(path.resolve())]
        ref = parent
        if ref not in shipped and not Path(ref).is_absolute():
            ref = str(path.parent / ref)  # a user's suite extends a file beside it
        target = shipped.get(ref, Path(ref))
        if str(target.resolve()) in chain:
            raise VicinalError(f"suite {path}: `extends` loops back to {target}")
        base, _ = _load_raw(ref, chain)
        raw = _merge(base, raw)
    return raw, path


def _tables(raw: Any, where: str, section: str) -> dict[str, dict[str, Any]]:
    """A table of tables (``[evaluators.NAME]``, ``[methods.NAME]``), each entry checked to be a table."""
    if not isinstance(raw, dict):
        raise VicinalError(f"{where}: [{section}] must be a table of tables, e.g. [{section}.NAME]")
    for name, value in raw.items():
        if not isinstance(value, dict):
            raise VicinalError(
                f"{where}: [{section}] {name} = {value!r}: expected a table of settings, "
                f"e.g. [{section}.{name}] (empty for the defaults)"
            )
    return raw


def parse_suite(raw: dict[str, Any], where: str = "<suite>") -> Suite:
    """A suite whose own settings are valid: every key known (or an error naming the closest valid one),
    every value typed and in range. Its components are checked by :func:`validate_components`."""
    from vicinal.core.hparams import unknown_key

    for key in raw:
        if key not in TOP_LEVEL:
            raise unknown_key(key, list(TOP_LEVEL), f"suite file {where}", "section or key")
    if "name" not in raw:
        raise VicinalError(f'{where}: missing required key name (e.g. name = "my-suite")')
    name = check_name(raw["name"], "suite")
    if not isinstance(raw.get("description", ""), str):
        raise VicinalError(f"{where}: description must be a string")
    sections = {}
    for key, cls in SECTIONS.items():
        table = raw.get(key, {})
        if not isinstance(table, dict):
            raise VicinalError(f"{where}: [{key}] must be a table, got {table!r}")
        sections[key] = build_config(cls, table, f"{where}: [{key}]", strict=True, what="setting")
    evaluators = _tables(raw.get("evaluators", {"clean": {}}), where, "evaluators")
    method_params = _tables(raw.get("methods", {}), where, "methods")
    sweep = _tables(raw.get("sweep", {}), where, "sweep")
    for method, grid in sweep.items():
        for param, values in grid.items():
            if not isinstance(values, list) or not values:
                raise VicinalError(
                    f"{where}: [sweep.{method}] {param} = {values!r}: give a non-empty list of values, "
                    f"e.g. {param} = [0.2, 1.0]"
                )
    suite = Suite(
        name=name,
        description=raw.get("description", ""),
        data=sections["data"],
        model_settings=sections["model"],
        recipe=sections["train"],
        run=sections["run"],
        evaluators={k: dict(v) for k, v in evaluators.items()},
        method_params={k: dict(v) for k, v in method_params.items()},
        sweep={k: dict(v) for k, v in sweep.items()},
        path=where,
    )
    return suite


def validate_components(suite: Suite) -> None:
    """Every name the suite uses is registered and every setting it gives exists and is valid."""
    from vicinal.data.datasets import DATASETS
    from vicinal.evaluation.evaluator import EVALUATORS
    from vicinal.training.method import get_method
    from vicinal.training.models import MODELS

    where = suite.path

    def named(context: str, lookup: Any, name: str) -> Any:
        try:
            return lookup(name)
        except VicinalError as exc:
            if context.startswith("[evaluators.") and context in suite.overridden:  # --evaluators
                raise VicinalError(f"this run's evaluators (in place of {where}'s): {exc}") from None
            if context in suite.overridden:  # the value came from this run, not from the file
                raise VicinalError(f"this run's {context} (in place of {where}'s): {exc}") from None
            raise VicinalError(f"{where}: {context}: {exc}") from None

    named("[data] dataset", DATASETS.get, suite.dataset)
    named("[model] name", MODELS.get, suite.model)
    for name in suite.methods:
        named("[run] methods", get_method, name)
    # Relative metrics (mCE) divide by the baseline's rows: a baseline that is no method has none, and the
    # columns would vanish without a word.
    named("[run] baseline", get_method, suite.run.baseline)
    for name, params in suite.method_params.items():
        cls = named(f"[methods.{name}]", get_method, name)
        build_config(cls.Config, params, f"{where}: [methods.{name}]", strict=True)
    for name, grid in suite.sweep.items():  # every value of every swept setting is checked here
        cls = named(f"[sweep.{name}]", get_method, name)
        for param, values in grid.items():
            base = suite.method_params.get(name, {})
            typed_values(cls.Config, base, param, values, f"{where}: [sweep.{name}]", strict=True)
    for name, params in suite.evaluators.items():
        cls = named(f"[evaluators.{name}]", EVALUATORS.get, name)
        build_config(cls.Config, params, f"{where}: [evaluators.{name}]", strict=True, what="setting")
