"""vicinal from Python: run a suite, evaluate a model, read a leaderboard. The command line is a thin layer
over these.

``vicinal.run(suite="cifar10-quick", methods=["erm", "mixup"], seeds=[0, 1], data_dir=…)`` trains and
evaluates exactly as ``vicinal run`` does (same validation, same result files, same reuse rules) and
returns the typed results; ``vicinal.evaluate(model, suite="cifar10-c", name="my-model", …)`` measures a
model vicinal did not train (any ``nn.Module``, a checkpoint, or a RobustBench zoo entry) with the same
evaluators and writes a result marked as evaluated; ``vicinal.leaderboard(results_dir=…)`` returns the
boards the command prints, with ``to_markdown()``, ``to_csv()``, ``to_json()`` and ``to_dataframe()``
(pandas, when installed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vicinal.errors import VicinalError
from vicinal.reporting import Reporter, SilentReporter
from vicinal.results import Result, default_cache_dir, default_results_dir, load_store, read_result

if TYPE_CHECKING:
    from torch import nn

    from vicinal.compare import Comparison
    from vicinal.leaderboard import Board
    from vicinal.runner import RunPlan
    from vicinal.suite import Suite


def _settings(values: Mapping[str, Any] | Iterable[str] | None) -> dict[str, dict[str, Any]]:
    """``{"mixup.alpha": 0.4}`` or ``["mixup.alpha=0.4"]`` → ``{"mixup": {"alpha": 0.4}}``."""
    from vicinal.hparams import parse_assignments

    if values is None:
        return {}
    if isinstance(values, Mapping) and all(isinstance(v, Mapping) for v in values.values()):
        return {owner: dict(params) for owner, params in values.items()}  # already {"mixup": {...}}
    if isinstance(values, Mapping):
        out: dict[str, dict[str, Any]] = {}
        for key, value in values.items():
            owner, dot, name = key.rpartition(".")
            if not dot or not owner or not name:
                raise VicinalError(f"{key!r}: write settings as METHOD.PARAM (e.g. mixup.alpha)")
            out.setdefault(owner, {})[name] = value
        return out
    return parse_assignments(list(values))


def load(
    suite: str | Suite,
    *,
    methods: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    epochs: int | None = None,
    limit_train: int | None = None,
    model: str | None = None,
    evaluators: Sequence[str] | None = None,
) -> Suite:
    """A suite (shipped name, TOML path, or a :class:`Suite`) with the run's overrides applied and every
    name and setting validated."""
    from vicinal.suite import Suite, load_suite, validate_components

    spec = suite if isinstance(suite, Suite) else load_suite(suite)
    if methods is not None:
        spec.override("run", methods=list(methods))
    if seeds is not None:
        spec.override("run", seeds=list(seeds))
    if epochs is not None:
        spec.override("train", epochs=epochs)
    if limit_train is not None:
        spec.override("data", limit_train=limit_train)
    if model is not None:
        spec.override("model", name=model)
    if evaluators is not None:
        spec.evaluators = {name: spec.evaluators.get(name, {}) for name in evaluators}
    validate_components(spec)
    return spec


def prepare(
    suite: str | Suite = "digits-c",
    *,
    methods: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    epochs: int | None = None,
    limit_train: int | None = None,
    model: str | None = None,
    evaluators: Sequence[str] | None = None,
    settings: Mapping[str, Any] | Iterable[str] | None = None,
    sweep: Mapping[str, Sequence[Any]] | None = None,
    device: str = "auto",
    data_dir: str | Path | None = None,
    download: bool = False,
    results_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    force: bool = False,
    plugins: Sequence[str] = (),
    reporter: Reporter | None = None,
    executor: str = "local",
    address: str | None = None,
    gpus_per_run: float | None = None,
    cpus_per_run: float | None = None,
    max_retries: int | None = None,
) -> RunPlan:
    """Validate a run without starting it (what :func:`run` executes). ``executor`` is ``"local"`` (this
    process) or ``"ray"`` (one Ray task per run; ``address`` joins a running cluster, ``gpus_per_run``,
    ``cpus_per_run`` and ``max_retries`` are its options): see :mod:`vicinal.executors`."""
    from vicinal.registry import load_plugin

    for plugin in plugins:
        load_plugin(plugin)
    spec = load(
        suite,
        methods=methods,
        seeds=seeds,
        epochs=epochs,
        limit_train=limit_train,
        model=model,
        evaluators=evaluators,
    )
    # The suite first: a misnamed one is an error before the runner (and torch) is imported.
    from vicinal.executors import make_executor
    from vicinal.runner import plan_run

    runs_on = make_executor(
        executor,
        plugins=plugins,
        device=device,
        address=address,
        gpus_per_run=gpus_per_run,
        cpus_per_run=cpus_per_run,
        max_retries=max_retries,
    )
    sweeps = {owner: {k: list(v) for k, v in params.items()} for owner, params in _settings(sweep).items()}
    return plan_run(
        spec,
        device=device,
        results_dir=Path(results_dir) if results_dir is not None else default_results_dir(),
        cache_dir=Path(cache_dir) if cache_dir is not None else default_cache_dir(),
        overrides=_settings(settings),
        sweeps=sweeps,
        data_dir=str(data_dir) if data_dir is not None else None,
        download=download,
        force=force,
        reporter=reporter or SilentReporter(),
        executor=runs_on,
    )


def run(suite: str | Suite = "digits-c", **options: Any) -> list[Result]:
    """Train and evaluate every (method, seed) of a suite; returns the results in run order (reused ones
    included). Options are :func:`prepare`'s: ``methods``, ``seeds``, ``epochs``, ``limit_train``,
    ``model``, ``evaluators``, ``settings`` (``{"mixup.alpha": 0.4}``), ``sweep``
    (``{"mixup.alpha": [0.2, 1.0]}``), ``device``, ``data_dir``, ``results_dir``, ``cache_dir``, ``force``,
    ``plugins``, ``reporter``, and the executor's: ``executor="ray"``, ``address``, ``gpus_per_run``,
    ``cpus_per_run``, ``max_retries``. Raises :class:`vicinal.runner.RunsFailed` (with the finished runs
    kept) when some runs fail."""
    from vicinal.runner import execute

    plan = prepare(suite, **options)
    return [read_result(o.path) for o in execute(plan)]


def evaluate(
    model: nn.Module | str | Path | None = None,
    *,
    suite: str | Suite = "digits-c",
    name: str | None = None,
    architecture: str | None = None,
    normalize: Any = None,
    robustbench: str | None = None,
    threat: str = "corruptions",
    model_dir: str | Path | None = None,
    evaluators: Sequence[str] | None = None,
    settings: Mapping[str, Any] | Iterable[str] | None = None,
    device: str = "auto",
    data_dir: str | Path | None = None,
    download: bool = False,
    results_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    force: bool = False,
    plugins: Sequence[str] = (),
    reporter: Reporter | None = None,
) -> Result:
    """Evaluate a model that vicinal did not train under a suite's evaluation protocol and write its result
    file (marked as evaluated, with its origin); returns the result. Reuses the file written for the same
    weights, data, evaluators and code unless ``force``.

    The model is one of: an ``nn.Module`` (``model=``; it receives images in [0, 1] and normalises inside,
    unless ``normalize`` asks vicinal to standardise for it); a checkpoint path (``model=``) with a
    registered ``architecture`` (a state dict, loaded with ``weights_only=True``); or a RobustBench
    model-zoo entry (``robustbench="Standard"``, ``threat``, ``model_dir``: robustbench's folder).
    ``normalize``: ``None``, ``"suite"`` (the suite's training-set statistics), ``"none"``,
    ``"MEAN/STD"`` or ``(mean, std)``. ``evaluators`` runs a subset; ``settings`` resizes them
    (``{"evaluators.corruption.severities": [1, 5]}``). A model that cannot take the suite's images or
    gives the wrong number of classes is one :class:`VicinalError` before any evaluation."""
    if (model is None) == (robustbench is None):
        raise VicinalError("evaluate: give either a model (an nn.Module or a checkpoint) or robustbench=NAME")
    if robustbench is None and name is None:
        raise VicinalError("evaluate: name= is required (how the model is labelled on the leaderboard)")
    parsed = _settings(settings)
    methods_set = sorted(k for k in parsed if not k.startswith("evaluators."))
    if methods_set:
        raise VicinalError(
            f"evaluate: {methods_set[0]}.… is a method's setting; an evaluated model takes only "
            "evaluators.NAME.PARAM settings"
        )
    # The arguments' own consistency first: a typo should not wait for torch, the suite or the data.
    if robustbench is not None and normalize is not None:
        raise VicinalError("evaluate: RobustBench models normalise inside; drop normalize")
    if architecture is not None and not isinstance(model, str | Path):
        raise VicinalError("evaluate: architecture= goes with a checkpoint path, not with an nn.Module")
    if isinstance(model, str | Path):
        if architecture is None:
            raise VicinalError(f"evaluate: {model} is a checkpoint; say which registered architecture it is")
        if not Path(model).expanduser().is_file():
            raise VicinalError(f"evaluate: checkpoint {model}: no such file")
    from vicinal.external import check_evaluated_name, evaluate_given, from_module, load_checkpoint
    from vicinal.runner import load_run_data

    label = check_evaluated_name(name or str(robustbench))
    plan = prepare(
        suite,
        evaluators=evaluators,
        settings=parsed,
        device=device,
        data_dir=data_dir,
        download=download,
        results_dir=results_dir,
        cache_dir=cache_dir,
        force=force,
        plugins=plugins,
        reporter=reporter,
    )
    if robustbench is not None:
        from vicinal.robustbench import load_zoo_model

        # A zoo model needs no data: loaded first, a misnamed entry is an error before the data loads.
        given = load_zoo_model(robustbench, plan.suite.dataset, threat, model_dir)
    rd = load_run_data(plan.suite, plan.data_dir, plan.download)
    if isinstance(model, str | Path):
        given = load_checkpoint(model, architecture, normalize, rd)
    elif model is not None:
        given = from_module(model, normalize, rd)
    result, _ = evaluate_given(given, label, plan, rd)
    return read_result(result.path) if result.path else result


@dataclass
class Leaderboard:
    """The boards ``vicinal leaderboard`` prints (one per suite), in every output format."""

    boards: list[Board]

    def to_markdown(self) -> str:
        from vicinal.formats import FORMATS

        return FORMATS["markdown"](self.boards)

    def to_csv(self) -> str:
        from vicinal.formats import FORMATS

        return FORMATS["csv"](self.boards)

    def to_json(self) -> str:
        from vicinal.formats import FORMATS

        return FORMATS["json"](self.boards)

    def to_latex(self) -> str:
        from vicinal.formats import FORMATS

        return FORMATS["latex"](self.boards)

    def to_html(self) -> str:
        from vicinal.formats import FORMATS

        return FORMATS["html"](self.boards)

    def to_dataframe(self) -> Any:
        """One row per leaderboard row, the CSV's columns (needs pandas)."""
        import io

        try:
            import pandas as pd
        except ImportError:
            raise VicinalError("to_dataframe needs pandas: pip install pandas") from None
        return pd.read_csv(io.StringIO(self.to_csv()))


def leaderboard(
    results_dir: str | Path | None = None,
    *,
    suite: str | None = None,
    methods: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    sort: str | None = None,
    by: str | None = None,
    best_of: Sequence[str] | None = None,
    select: str = "val_acc",
) -> Leaderboard:
    """The leaderboard of the result files under ``results_dir`` (default: ``$VICINAL_RESULTS_DIR`` or
    ``./results``); unreadable files are skipped (``load_store`` says which). ``best_of`` keeps each
    method at its best value of those swept settings, chosen by the validation metric ``select``."""
    from vicinal.leaderboard import build_boards

    folder = Path(results_dir) if results_dir is not None else default_results_dir()
    store = load_store(folder)
    if not store.results:
        raise VicinalError(f"no result files in {folder}; run vicinal first or give results_dir")
    return Leaderboard(
        build_boards(
            store,
            suite,
            list(methods) if methods else None,
            list(metrics) if metrics else None,
            sort,
            by,
            best_of_params=list(best_of) if best_of else None,
            select=select,
        )
    )


def compare(
    a: str,
    b: str,
    *,
    suite: str | None = None,
    results_dir: str | Path | None = None,
    metrics: Sequence[str] | None = None,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """A − B per metric (``vicinal compare``): a :class:`vicinal.compare.Comparison` whose
    ``differences`` hold each metric's difference, interval, its source and ``verdict(a, b)``;
    ``to_json()``, ``to_markdown()`` and ``to_text()`` render it. A and B are method names or row labels."""
    from vicinal.compare import compare as compare_rows
    from vicinal.paired import Resampler

    folder = Path(results_dir) if results_dir is not None else default_results_dir()
    store = load_store(folder)
    if not store.results:
        raise VicinalError(f"no result files in {folder}; run vicinal first or give results_dir")
    resampler = Resampler(resamples=resamples, seed=seed, level=level)
    return compare_rows(store, a, b, suite, list(metrics) if metrics else None, resampler)
