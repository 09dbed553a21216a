"""vicinal from Python: run a suite, evaluate a model, read a leaderboard, compare two configurations. The
command line is a thin layer over these.

``vicinal.run(suite="cifar10-quick", methods=["erm", "mixup"], seeds=[0, 1], data_dir=…)`` trains and
evaluates exactly as ``vicinal run`` does (same validation, same result files, same reuse rules) and
returns the typed results; ``vicinal.evaluate(model, suite="cifar10-c", name="my-model", …)`` measures a
model vicinal did not train (any ``nn.Module``, a checkpoint, or a RobustBench zoo entry) with the same
evaluators and writes a result marked as evaluated; ``vicinal.leaderboard(results_dir=…)`` returns the
boards the command prints, with ``to_markdown()``, ``to_csv()``, ``to_json()`` and ``to_dataframe()``
(pandas, when installed); ``vicinal.compare("mixup", "erm")`` gives A − B per metric with its interval.

Each public function takes its options as keywords, builds the run's :class:`~vicinal.execution.options.
Overrides` and :class:`~vicinal.execution.options.RunOptions` once, and hands them to :func:`prepare`;
the command line builds the same two objects from its flags.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vicinal.core.errors import VicinalError
from vicinal.core.reporting import Reporter, SilentReporter
from vicinal.store.results import Result, default_results_dir, load_store, read_result

if TYPE_CHECKING:
    from torch import nn

    from vicinal.board.boards import Board
    from vicinal.board.compare import Comparison
    from vicinal.execution.options import Overrides, RunOptions
    from vicinal.execution.plan import RunPlan
    from vicinal.execution.suite import Suite
    from vicinal.external.source import ModelSource

Settings = Mapping[str, Any] | Iterable[str]


def parse_settings(values: Settings | None) -> dict[str, dict[str, Any]]:
    """``{"mixup.alpha": 0.4}`` or ``["mixup.alpha=0.4"]`` → ``{"mixup": {"alpha": 0.4}}``."""
    from vicinal.core.hparams import parse_assignments

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


def apply_threads(threads: int | None, origin: str = "threads=") -> None:
    """The CPU thread policy, as the command line applies it (:mod:`vicinal.host.threads`): before torch
    is imported it chooses the count and OpenMP's waiting; after, only the count (the result records
    that the waiting was OpenMP's default)."""
    from vicinal.host.threads import apply_thread_policy, check_thread_count

    check_thread_count(threads, origin)
    apply_thread_policy(threads, origin=origin)


def prepare(suite: str | Suite, overrides: Overrides, options: RunOptions) -> RunPlan:
    """Validate a run without starting it (what :func:`run` executes): the plugins are loaded, the suite
    read, the overrides applied, and everything checked once (:func:`vicinal.execution.plan.plan_run`)."""
    from vicinal.core.registry import load_plugin
    from vicinal.execution.suite import Suite, load_suite, validate_components

    for plugin in options.plugins:
        load_plugin(plugin)
    spec = suite if isinstance(suite, Suite) else load_suite(suite)
    # The suite is checked once, after the run's overrides (a --methods may replace a method the file
    # names), and before the runner (and torch) is imported: a misnamed method is an error in 0.3 s.
    validate_components(overrides.apply(spec))
    from vicinal.execution.plan import plan_run

    return plan_run(spec, overrides, options)


def run(
    suite: str | Suite = "digits-c",
    *,
    methods: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    epochs: int | None = None,
    limit_train: int | None = None,
    model: str | None = None,
    evaluators: Sequence[str] | None = None,
    settings: Settings | None = None,
    sweep: Mapping[str, Sequence[Any]] | None = None,
    device: str = "auto",
    data_dir: str | Path | None = None,
    download: bool = False,
    results_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    force: bool = False,
    plugins: Sequence[str] = (),
    reporter: Reporter | None = None,
    threads: int | None = None,
    executor: str = "local",
    address: str | None = None,
    gpus_per_run: float | None = None,
    cpus_per_run: float | None = None,
    max_retries: int | None = None,
) -> list[Result]:
    """Train and evaluate every (method, seed) of a suite, as ``vicinal run`` does; returns the results in
    run order (reused ones included).

    Args:
        suite: a shipped suite's name, a suite TOML path, or a :class:`~vicinal.execution.suite.Suite`.
        methods: the methods to run (default: the suite's).
        seeds: the seeds to run (default: the suite's).
        epochs: training epochs (default: the suite's).
        limit_train: train on a fixed, seed-independent subset of N images (0: all).
        model: a registered classifier in place of the suite's.
        evaluators: the evaluators to run (default: the suite's).
        settings: method and evaluator settings, ``{"mixup.alpha": 0.4}`` or ``["mixup.alpha=0.4"]``
            (``evaluators.NAME.PARAM`` for an evaluator's).
        sweep: ``{"mixup.alpha": [0.2, 1.0]}``: every combination is its own configuration.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        data_dir: the data folder (default: ``$VICINAL_DATA_DIR`` or the cache folder).
        download: download the dataset if it is missing.
        results_dir: where result files go (default: ``$VICINAL_RESULTS_DIR`` or ``./results``).
        cache_dir: VAEs, checkpoints, generated -C sets (default: ``$VICINAL_CACHE_DIR`` or
            ``~/.cache/vicinal``).
        force: recompute results that already exist (and retrain from scratch).
        plugins: modules or ``.py`` files to load first (methods, evaluators, models, datasets).
        reporter: where progress goes (:class:`vicinal.core.reporting.Reporter`; default: nowhere).
        threads: CPU threads for torch (default: the thread policy's, as on the command line).
        executor: ``"local"`` (this process) or ``"ray"`` (one Ray task per run).
        address: with ``executor="ray"``: the cluster to join (``"auto"`` or ``HOST:PORT``).
        gpus_per_run: with ``executor="ray"``: GPUs per run, at most 1 (a run trains on one GPU); a
            fraction shares a GPU between runs, without capping their memory.
        cpus_per_run: with ``executor="ray"``: CPUs (and torch threads) per run.
        max_retries: with ``executor="ray"``: restarts of a run whose worker or node died.

    Raises:
        VicinalError: bad input, before any training starts.
        RunsFailed: some runs failed (:class:`vicinal.execution.outcomes.RunsFailed`); the finished ones
            are kept.
    """
    from vicinal.execution.options import ExecutorOptions, Overrides, RunOptions

    apply_threads(threads)
    overrides = Overrides(
        methods=methods,
        seeds=seeds,
        epochs=epochs,
        limit_train=limit_train,
        model=model,
        evaluators=evaluators,
        settings=parse_settings(settings),
        sweep={o: {k: list(v) for k, v in p.items()} for o, p in parse_settings(sweep).items()},
    )
    options = RunOptions(
        device=device,
        data_dir=data_dir,
        download=download,
        results_dir=results_dir,
        cache_dir=cache_dir,
        force=force,
        plugins=tuple(plugins),
        reporter=reporter or SilentReporter(),
        threads=threads,
        executor=ExecutorOptions(executor, address, gpus_per_run, cpus_per_run, max_retries),
    )
    from vicinal.execution.plan import execute

    plan = prepare(suite, overrides, options)
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
    settings: Settings | None = None,
    device: str = "auto",
    data_dir: str | Path | None = None,
    download: bool = False,
    results_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    force: bool = False,
    plugins: Sequence[str] = (),
    reporter: Reporter | None = None,
    threads: int | None = None,
) -> Result:
    """Evaluate a model that vicinal did not train under a suite's evaluation protocol, as ``vicinal
    evaluate`` does, and write its result file (marked as evaluated, with its origin); returns the result.
    Reuses the file written for the same weights, data, evaluators and code unless ``force``.

    Args:
        model: an ``nn.Module`` (it receives images in [0, 1] and normalises inside, unless ``normalize``
            asks vicinal to standardise for it) or a checkpoint path (a state dict of ``architecture``,
            loaded with ``weights_only=True``). Leave it out for a RobustBench entry.
        suite: the suite whose evaluation protocol is applied.
        name: the model's name on the leaderboard (default for RobustBench: the entry's name).
        architecture: the registered architecture of a checkpoint.
        normalize: ``None``, ``"suite"`` (the suite's training-set statistics), ``"none"``, ``"MEAN/STD"``
            or ``(mean, std)``.
        robustbench: a RobustBench model-zoo entry (e.g. ``"Standard"``), with ``threat`` and
            ``model_dir`` (robustbench's model folder).
        threat: RobustBench's threat model: ``"corruptions"``, ``"Linf"`` or ``"L2"``.
        model_dir: RobustBench's model folder.
        evaluators: run a subset of the suite's evaluators.
        settings: evaluator settings, ``{"evaluators.corruption.severities": [1, 5]}``.
        device: as for :func:`run`.
        data_dir: as for :func:`run`.
        download: as for :func:`run`.
        results_dir: as for :func:`run`.
        cache_dir: as for :func:`run`.
        force: as for :func:`run`.
        plugins: as for :func:`run`.
        reporter: as for :func:`run`.
        threads: as for :func:`run`.

    Raises:
        VicinalError: bad input, or a model that cannot take the suite's images or gives the wrong number
            of classes — before any evaluation.
    """
    from vicinal.execution.options import Overrides, RunOptions
    from vicinal.external.source import ModelSource

    source = ModelSource(
        module=None if isinstance(model, str | Path) else model,
        checkpoint=Path(model) if isinstance(model, str | Path) else None,
        architecture=architecture,
        normalize=normalize,
        robustbench=robustbench,
        threat=threat,
        model_dir=None if model_dir is None else Path(model_dir),
        name=name,
    )
    source.check()  # the arguments' own consistency first: a typo should not wait for torch or the data
    parsed = parse_settings(settings)
    apply_threads(threads)
    options = RunOptions(
        device=device,
        data_dir=data_dir,
        download=download,
        results_dir=results_dir,
        cache_dir=cache_dir,
        force=force,
        plugins=tuple(plugins),
        reporter=reporter or SilentReporter(),
        threads=threads,
    )
    return evaluate_source(source, suite, Overrides(evaluators=evaluators, settings=parsed), options)


def evaluate_source(
    source: ModelSource, suite: str | Suite, overrides: Overrides, options: RunOptions
) -> Result:
    """:func:`evaluate` with its arguments already gathered (the command line builds them from flags)."""
    methods_set = sorted(k for k in overrides.settings if not k.startswith("evaluators."))
    if methods_set:
        raise VicinalError(
            f"evaluate: {methods_set[0]}.… is a method's setting; an evaluated model takes only "
            "evaluators.NAME.PARAM settings"
        )
    from vicinal.execution.plan import load_run_data
    from vicinal.external.given import check_evaluated_name, evaluate_given

    label = check_evaluated_name(source.label)
    plan = prepare(suite, overrides, options)
    # A zoo model needs no data: loaded first, a misnamed entry is an error before the data loads.
    zoo = source.load_zoo(plan.suite.dataset)
    rd = load_run_data(plan.suite, plan.data_dir, plan.download)
    given = zoo or source.load(rd)
    result, _ = evaluate_given(given, label, plan, rd)
    return read_result(result.path) if result.path else result


@dataclass
class Leaderboard:
    """The boards ``vicinal leaderboard`` prints (one per suite), in every output format."""

    boards: list[Board]

    def to_markdown(self) -> str:
        """The boards as Markdown tables (the separated best in bold, ties in italics)."""
        return self._render("markdown")

    def to_csv(self) -> str:
        """One CSV row per leaderboard row: mean, std and n per metric."""
        return self._render("csv")

    def to_json(self) -> str:
        """The boards as JSON, every number with its std and n."""
        return self._render("json")

    def to_latex(self) -> str:
        """The boards as LaTeX tables (booktabs)."""
        return self._render("latex")

    def to_html(self) -> str:
        """The boards as one self-contained HTML page."""
        return self._render("html")

    def to_dataframe(self) -> Any:
        """One row per leaderboard row, the CSV's columns (needs pandas)."""
        import io

        try:
            import pandas as pd
        except ImportError:
            raise VicinalError("to_dataframe needs pandas: pip install pandas") from None
        return pd.read_csv(io.StringIO(self.to_csv()))

    def _render(self, fmt: str) -> str:
        from vicinal.board.formats import FORMATS

        return FORMATS[fmt](self.boards)


def leaderboard(
    results_dir: str | Path | None = None,
    *,
    suite: str | None = None,
    methods: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    sort: str | None = None,
    by: str | None = None,
    best_of: Sequence[str] | None = None,
    select: str | None = None,
    latest: bool = False,
) -> Leaderboard:
    """The leaderboard of the result files under a folder, as ``vicinal leaderboard`` builds it.

    Args:
        results_dir: the results folder (default: ``$VICINAL_RESULTS_DIR`` or ``./results``); unreadable
            files are skipped (``load_store`` says which).
        suite: only this suite (default: one board per suite).
        methods: only these methods (or row labels).
        metrics: the columns (default: the evaluators' headline metrics; ``["all"]`` for every one).
        sort: the metric to rank by (its better direction first; default: the first column).
        by: break one metric family down along an axis the evaluators declare (``"corruption"``,
            ``"severity"``, ``"eps"``, …).
        best_of: swept settings (e.g. ``["alpha"]``): each method only at its best value of them,
            chosen on the validation split by ``select``.
        select: the validation metric ``best_of`` chooses by: ``"val_acc"`` (the default) or ``"val_nll"``;
            only with ``best_of``.
        latest: each configuration only at its newest code (the rows of earlier code left out; each
            board's ``hidden`` lists their result files).
    """
    from vicinal.board.boards import build_boards

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
            latest=latest,
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
    """A − B per metric, as ``vicinal compare`` computes it: a :class:`vicinal.board.compare.Comparison`
    whose ``differences`` hold each metric's difference, interval, its source and ``verdict(a, b)``;
    ``to_json()``, ``to_markdown()`` and ``to_text()`` render it.

    Args:
        a: a method name or row label (``"mixup [alpha=0.4]"``).
        b: the other method name or row label; the differences are A − B.
        suite: the suite (default: the only suite with results for both).
        results_dir: the results folder (default: ``$VICINAL_RESULTS_DIR`` or ``./results``).
        metrics: the metrics (default: the headline ones; ``["all"]`` for every one).
        resamples: bootstrap resamples of the test examples.
        level: the confidence level of the intervals.
        seed: the seed of the resamples.
    """
    from vicinal.board.compare import compare as compare_rows
    from vicinal.board.paired import Resampler

    folder = Path(results_dir) if results_dir is not None else default_results_dir()
    store = load_store(folder)
    if not store.results:
        raise VicinalError(f"no result files in {folder}; run vicinal first or give results_dir")
    resampler = Resampler(resamples=resamples, seed=seed, level=level)
    return compare_rows(store, a, b, suite, list(metrics) if metrics else None, resampler)
