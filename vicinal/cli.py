"""The ``vicinal`` command line (typer). Every user error ends as one message and a non-zero exit.

Longer than most modules because it is one function per command with typer's option declarations, which
read best beside the code that uses them; the work itself lives in the library modules.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from vicinal.console import WarningHandler, console, err_console
from vicinal.console import reporter as console_reporter
from vicinal.errors import VicinalError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Benchmark vicinal distributions (ERM, mixup, manifold mixup, VarMixup, ...) "
    "on robustness and calibration.",
)

PluginOpt = Annotated[
    list[str] | None, typer.Option("--plugin", help="extra method/evaluator module or .py file (repeatable)")
]
ResultsOpt = Annotated[
    Path | None, typer.Option("--results", help="results folder [default: $VICINAL_RESULTS_DIR or ./results]")
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="CPU threads for torch (default: $OMP_NUM_THREADS, else $VICINAL_THREADS, else one per "
        "physical core available); idle threads sleep (OMP_WAIT_POLICY=PASSIVE) unless you set "
        "OMP_WAIT_POLICY or GOMP_SPINCOUNT",
    ),
]


def _threads(threads: int | None) -> None:
    """Apply ``--threads`` before this command imports torch (main() applied the defaults already)."""
    from vicinal.threads import apply_thread_policy

    apply_thread_policy(threads, origin="--threads")


def _load_plugins(plugins: list[str] | None) -> None:
    from vicinal.registry import load_plugin

    for p in plugins or []:
        load_plugin(p)


def _flag(flag: str, parse: Callable[[list[str]], Any], values: list[str]) -> Any:
    """Parse a repeatable option; its errors name the option."""
    try:
        return parse(values)
    except VicinalError as exc:
        raise VicinalError(f"{flag} {exc}") from None


def _csv(value: str | None, what: str) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise VicinalError(f"{what} is empty; give a comma-separated list")
    return items


@app.command("methods")
def methods_cmd(
    pattern: Annotated[str, typer.Argument(help="shell-style filter, e.g. 'mix*'")] = "*",
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="show hyperparameters and defaults")
    ] = False,
    plugin: PluginOpt = None,
) -> None:
    """List the registered vicinal methods."""
    from vicinal.hparams import describe
    from vicinal.method import METHODS, get_method, list_methods

    _load_plugins(plugin)
    names = list_methods(pattern)
    if not names:
        raise VicinalError(f"no method matches {pattern!r}; registered: {', '.join(list_methods())}")
    if not verbose:
        table = Table()
        for col in ("method", "mixes in", "description"):
            table.add_column(col, style="bold" if col == "method" else None)
        for name in names:
            try:  # read from the method's source where it can be: listing need not import torch
                attrs = METHODS.attributes(name, ("mixes_in", "summary"))
            except VicinalError as exc:  # registered twice: listed with the clash, usable by neither
                table.add_row(escape(name), "", f"[red]{escape(str(exc))}[/]")
                continue
            table.add_row(*map(escape, (name, attrs["mixes_in"], attrs["summary"])))
        console.print(table)
        return
    for name in names:
        try:
            cls = get_method(name)
        except VicinalError as exc:
            err_console.print(f"[red]{escape(str(exc))}[/]")
            continue
        table = Table(
            title=f"[bold]{escape(name)}[/] · mixes in: {escape(str(cls.mixes_in))} · "
            f"{escape(METHODS.origin(name))}",
            caption=escape(str(cls.summary)),
            title_justify="left",
            caption_justify="left",
        )
        for col in ("hyperparameter", "type", "default", "meaning"):
            table.add_column(col, style="bold" if col == "hyperparameter" else None)
        for row in describe(cls.Config) or [("—", "", "", "no hyperparameters")]:
            table.add_row(*map(escape, row))
        console.print(table)


@app.command("suites")
def suites_cmd() -> None:
    """List the suites shipped with vicinal."""
    from vicinal.suite import builtin_suites, load_suite

    table = Table()
    for col in ("suite", "dataset", "model", "epochs", "description"):
        table.add_column(col, style="bold" if col == "suite" else None)
    for name in sorted(builtin_suites()):
        # The shipped suites' components are checked by the tests; a listing need not import them.
        s = load_suite(name, check_components=False)
        table.add_row(name, s.dataset, s.model, str(s.recipe.epochs), s.description)
    console.print(table)


@app.command("run")
def run_cmd(
    suite: Annotated[str, typer.Option(help="shipped suite name or path to a suite TOML")] = "digits-c",
    methods: Annotated[
        str | None, typer.Option(help="comma-separated methods [default: the suite's]")
    ] = None,
    seeds: Annotated[str | None, typer.Option(help="comma-separated seeds [default: the suite's]")] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="override the suite's epochs")] = None,
    limit_train: Annotated[
        int | None, typer.Option(min=0, help="use only N training images (0 = all)")
    ] = None,
    model: Annotated[str | None, typer.Option(help="override the suite's model")] = None,
    evaluators: Annotated[
        str | None, typer.Option(help="comma-separated evaluators to run [default: the suite's]")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N")] = "auto",
    data_dir: Annotated[
        str | None, typer.Option(help="data folder [default: $VICINAL_DATA_DIR or the cache folder]")
    ] = None,
    download: Annotated[bool, typer.Option(help="download the dataset if it is missing")] = False,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="METHOD.PARAM=VALUE or evaluators.NAME.PARAM=VALUE (repeatable)"),
    ] = None,
    sweep: Annotated[
        list[str] | None,
        typer.Option(
            "--sweep",
            help="METHOD.PARAM=V1,V2,… (repeatable): every combination is its own configuration",
        ),
    ] = None,
    results: ResultsOpt = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="VAE and checkpoint cache [default: $VICINAL_CACHE_DIR or ~/.cache/vicinal]"),
    ] = None,
    force: Annotated[bool, typer.Option(help="recompute results that already exist")] = False,
    quiet: Annotated[bool, typer.Option(help="no progress bars")] = False,
    threads: ThreadsOpt = None,
    plugin: PluginOpt = None,
    executor: Annotated[
        str, typer.Option(help="local (this process, one run after another) or ray (one Ray task per run)")
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(help="with --executor ray: join this cluster, auto or HOST:PORT [default: start one]"),
    ] = None,
    gpus_per_run: Annotated[
        float | None,
        typer.Option(help="with --executor ray: GPUs per run, fractions share a GPU [default: 1 if any]"),
    ] = None,
    cpus_per_run: Annotated[
        float | None, typer.Option(help="with --executor ray: CPUs (and torch threads) per run [default: 1]")
    ] = None,
    max_retries: Annotated[
        int | None,
        typer.Option(help="with --executor ray: restarts of a run whose worker or node died [default: 3]"),
    ] = None,
) -> None:
    """Train each method of a suite for each seed, evaluate, write one result file each."""
    _threads(threads)
    from vicinal.api import prepare
    from vicinal.hparams import parse_assignments, parse_sweeps
    from vicinal.results import default_results_dir

    if seeds is not None:
        try:
            seed_list = [int(s) for s in _csv(seeds, "--seeds")]
        except ValueError:
            raise VicinalError(f"--seeds {seeds!r}: give comma-separated integers, e.g. 0,1,2") from None
    results_dir = results or default_results_dir()
    failed: RunsFailed | None = None
    with console_reporter(quiet) as rep:
        plan = prepare(
            suite,
            methods=_csv(methods, "--methods"),
            seeds=seed_list if seeds is not None else None,
            epochs=epochs,
            limit_train=limit_train,
            model=model,
            evaluators=_csv(evaluators, "--evaluators"),
            settings=_flag("--set", parse_assignments, set_ or []),
            sweep=_flag("--sweep", parse_sweeps, sweep or []),
            device=device,
            data_dir=data_dir,
            download=download,
            results_dir=results_dir,
            cache_dir=cache_dir,
            force=force,
            plugins=plugin or [],
            reporter=rep,
            executor=executor,
            address=address,
            gpus_per_run=gpus_per_run,
            cpus_per_run=cpus_per_run,
            max_retries=max_retries,
        )
        from vicinal.runner import RunsFailed, execute  # after the checks: it imports torch

        spec = plan.suite
        where = str(plan.device) if plan.executor.name == "local" else plan.executor.describe()
        rep.note(
            f"suite {spec.name} · {spec.dataset} · {spec.model} · {spec.recipe.epochs} epochs · "
            f"methods {', '.join(spec.methods)} · seeds {', '.join(map(str, spec.seeds))} · {where}"
        )
        try:
            outcomes = execute(plan)
        except RunsFailed as exc:  # the other runs finished: show them, then the failures
            failed, outcomes = exc, plan.outcomes
        except KeyboardInterrupt:
            err_console.print(
                f"[yellow]interrupted[/]: {len(plan.outcomes)} finished result(s) are kept in "
                f"{escape(str(results_dir))}; the unfinished run left a checkpoint at its last completed "
                "epoch. Run the same command again to resume."
            )
            raise typer.Exit(130) from None
        except VicinalError as exc:
            if plan.outcomes:  # say that nothing finished was lost, then the error itself
                err_console.print(
                    escape(f"{len(plan.outcomes)} finished result(s) are kept in {results_dir}")
                )
            raise exc from None
    trained = sum(o.status == "trained" for o in outcomes)
    console.print(escape(f"{trained} trained, {len(outcomes) - trained} reused · results in {results_dir}"))
    from vicinal.formats import print_boards
    from vicinal.leaderboard import build_boards

    store = _load_store(results_dir, cache_dir)
    if any(r.suite == spec.name for r in store.results):
        print_boards(console, build_boards(store, spec.name), _width(None))
    if failed is not None:
        raise failed


def _width(option: int | None) -> int:
    """Columns for the terminal table: ``--width``, else the terminal's (or $COLUMNS), else the default
    for a file or pipe, which has no width of its own."""
    import os

    from vicinal.formats import DEFAULT_WIDTH

    if option is not None:
        return option
    return console.width if console.is_terminal or os.environ.get("COLUMNS") else DEFAULT_WIDTH


def _load_store(results_dir: Path, cache_dir: Path | None = None):
    """The result files under ``results_dir``; each unreadable one is named in a warning, never fatal."""
    from vicinal.result_index import index_file
    from vicinal.results import default_cache_dir, load_store

    # The index in the cache folder spares decoding unchanged result files again (10,000 files: seconds).
    store = load_store(results_dir, index=index_file(results_dir, cache_dir or default_cache_dir()))
    for path, why in store.skipped:
        err_console.print(f"[yellow]warning[/]: skipped {escape(str(path))}: {escape(why)}")
    return store


@app.command("leaderboard")
def leaderboard_cmd(
    suite: Annotated[str | None, typer.Option(help="only this suite [default: every suite]")] = None,
    sort: Annotated[str | None, typer.Option(help="metric to sort by (its better direction first)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, markdown, csv, json, latex or html")] = "table",
    metrics: Annotated[
        str | None,
        typer.Option(help="comma-separated metrics to show ('all' for every one); with --by: one family"),
    ] = None,
    methods: Annotated[str | None, typer.Option(help="comma-separated methods to show")] = None,
    by: Annotated[
        str | None,
        typer.Option(
            help="break one metric family down along an axis the evaluators declare: corruption, "
            "severity, eps, … (columns per key)"
        ),
    ] = None,
    best_of: Annotated[
        str | None,
        typer.Option(
            help="comma-separated swept settings (e.g. alpha): show each method only at its best value of "
            "them, chosen by --select"
        ),
    ] = None,
    select: Annotated[
        str, typer.Option(help="the validation metric --best-of chooses by (val_acc or val_nll)")
    ] = "val_acc",
    out: Annotated[Path | None, typer.Option(help="write to this file instead of printing")] = None,
    width: Annotated[
        int | None,
        typer.Option(
            min=40, help="columns the table is laid out for [default: the terminal's; 120 in a file or pipe]"
        ),
    ] = None,
    results: ResultsOpt = None,
    plugin: PluginOpt = None,
) -> None:
    """Rank methods from the result files: mean ± std over seeds, best per column in bold."""
    from vicinal.formats import DEFAULT_WIDTH, FORMATS, print_boards, render_text
    from vicinal.io import atomic_write_text, probe_output_file
    from vicinal.leaderboard import build_boards
    from vicinal.results import default_results_dir

    _load_plugins(plugin)  # derivations that plugins declare
    if fmt not in FORMATS:
        raise VicinalError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if out is not None:
        probe_output_file(out)
    results_dir = results or default_results_dir()
    store = _load_store(results_dir)
    if not store.results:
        raise VicinalError(f"no result files in {results_dir}; run `vicinal run` first or pass --results DIR")
    boards = build_boards(
        store,
        suite,
        _csv(methods, "--methods"),
        _csv(metrics, "--metrics"),
        sort,
        by,
        best_of_params=_csv(best_of, "--best-of"),
        select=select,
    )
    if fmt == "table" and out is None:  # rich's colours and bold on a terminal, plain text in a pipe
        print_boards(console, boards, _width(width))
        return
    text = render_text(boards, width or DEFAULT_WIDTH) if fmt == "table" else FORMATS[fmt](boards)
    if out is not None:
        atomic_write_text(out, text)
        err_console.print(f"wrote {escape(str(out))}")
    else:
        sys.stdout.write(text)


@app.command("compare")
def compare_cmd(
    a: Annotated[
        str, typer.Argument(help="a method name or a row label, e.g. varmixup or 'mixup [alpha=0.4]'")
    ],
    b: Annotated[str, typer.Argument(help="the other method name or row label")],
    suite: Annotated[
        str | None, typer.Option(help="the suite [default: the only suite with results]")
    ] = None,
    metrics: Annotated[
        str | None, typer.Option(help="comma-separated metrics, or 'all' [default: the headline metrics]")
    ] = None,
    resamples: Annotated[int, typer.Option(min=100, help="bootstrap resamples of the test examples")] = 2000,
    level: Annotated[
        float, typer.Option(min=0.5, max=0.999, help="confidence level of the intervals")
    ] = 0.95,
    seed: Annotated[int, typer.Option(help="seed of the resamples")] = 0,
    fmt: Annotated[str, typer.Option("--format", help="table, markdown or json")] = "table",
    width: Annotated[
        int | None, typer.Option(min=60, help="columns of the table [default: the terminal's]")
    ] = None,
    results: ResultsOpt = None,
    plugin: PluginOpt = None,
) -> None:
    """A − B per metric with its interval (paired bootstrap over test examples and seeds) and a verdict."""
    from vicinal.compare import compare, render
    from vicinal.paired import Resampler
    from vicinal.results import default_results_dir

    _load_plugins(plugin)  # derivations that plugins declare
    if fmt not in ("table", "markdown", "json"):
        raise VicinalError(f"--format {fmt!r}: choose table, markdown or json")
    results_dir = results or default_results_dir()
    store = _load_store(results_dir)
    if not store.results:
        raise VicinalError(f"no result files in {results_dir}; run `vicinal run` first or pass --results DIR")
    resampler = Resampler(resamples=resamples, seed=seed, level=level)
    comparison = compare(store, a, b, suite, _csv(metrics, "--metrics"), resampler)
    if fmt == "table" and console.is_terminal:
        console.print(comparison.table(console.width))
        return
    sys.stdout.write(render(comparison, fmt, width or _width(None)))


@app.command("report")
def report_cmd(
    out: Annotated[Path, typer.Option(help="the HTML file to write")] = Path("report.html"),
    suite: Annotated[
        str | None, typer.Option(help="comma-separated suites [default: every suite with results]")
    ] = None,
    results: ResultsOpt = None,
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
    plugin: PluginOpt = None,
) -> None:
    """Write one self-contained HTML report: leaderboards, protocols, figures, run metadata."""
    import time

    from vicinal.io import atomic_write_text, probe_output_file
    from vicinal.report import build_report
    from vicinal.results import default_results_dir

    _load_plugins(plugin)  # derivations that plugins declare
    probe_output_file(out)
    results_dir = results or default_results_dir()
    store = _load_store(results_dir)
    if not store.results:
        raise VicinalError(f"no result files in {results_dir}; run `vicinal run` first or pass --results DIR")
    suites = _csv(suite, "--suite")
    known = sorted({r.suite for r in store.results})
    unknown = [s for s in suites or [] if s not in known]
    if unknown:
        raise VicinalError(
            f"no results for suite(s) {', '.join(unknown)}; results exist for: {', '.join(known)}"
        )
    # The bar appears only once rendering has taken a second: a small report should just print its path.
    bar = Progress(
        TextColumn("[bold]report"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        console=err_console,
        transient=True,
        disable=quiet,
    )
    task = bar.add_task("", total=None)
    start = time.perf_counter()

    def progress(what: str, done: int, total: int) -> None:
        if not bar.live.is_started and time.perf_counter() - start > 1.0:
            bar.start()
        bar.update(task, description=escape(what), completed=done, total=total)

    try:
        html = build_report(store, suites, source=str(results_dir), progress=progress)
    finally:
        bar.stop()
    atomic_write_text(out, html)
    console.print(f"wrote {escape(str(out))} ({len(html) / 1e6:.1f} MB, {len(store.results)} result files)")


@app.command("download")
def download_cmd(
    dataset: Annotated[
        str,
        typer.Argument(
            help="cifar10, cifar100, tinyimagenet, an OOD set (svhn), or a released -C set: cifar10-c, …"
        ),
    ],
    data_dir: Annotated[
        str | None, typer.Option(help="where to put it [default: $VICINAL_DATA_DIR or the cache folder]")
    ] = None,
) -> None:
    """Download and verify (MD5) a dataset, an OOD set or a released -C set into the data folder (the -C
    sets, SVHN and the CIFAR archives resumably)."""
    from vicinal.datasets import DATASETS, load_dataset, resolve_data_dir

    if dataset.endswith("-c"):
        from vicinal.corrupted import find_set
        from vicinal.download import fetch_release

        with console_reporter() as rep:
            folder = fetch_release(dataset[:-2], resolve_data_dir(data_dir), rep)
        found = find_set(folder, None, verify=False)
        console.print(f"{dataset}: {folder}" + (f", {len(found.corruptions)} corruptions" if found else ""))
        return
    from vicinal.ood_sets import OOD_SETS, fetch

    source = OOD_SETS.get(dataset)
    if source is not None and source.download is not None:
        # The OOD sets' files (SVHN's test split; the CIFAR archives, which hold the datasets too) come
        # through the resumable, MD5-checked downloader.
        with console_reporter() as rep:
            path = fetch(dataset, resolve_data_dir(data_dir), rep)
        console.print(f"{dataset}: {path}")
        if dataset not in DATASETS:
            return
    data = load_dataset(dataset, data_dir, download=True)
    console.print(
        f"{dataset}: {len(data.train)} train / {len(data.test)} test images in {resolve_data_dir(data_dir)}"
    )


@app.command("corrupt")
def corrupt_cmd(
    dataset: Annotated[str, typer.Option(help="dataset whose test split is corrupted (cifar10, digits, …)")],
    out: Annotated[
        Path | None,
        typer.Option(help="output folder [default: <data dir>/CIFAR-10-C etc., where -c suites look]"),
    ] = None,
    corruptions: Annotated[str, typer.Option(help="names or subsets: common, extra, noise, …, all")] = "all",
    severities: Annotated[str, typer.Option(help="comma-separated severities 1–5")] = "1,2,3,4,5",
    seed: Annotated[int, typer.Option(help="seed (one generator per corruption and severity)")] = 0,
    table: Annotated[str, typer.Option(help="cifar, tinyimagenet, imagenet or auto (by size)")] = "auto",
    data_dir: Annotated[
        str | None, typer.Option(help="clean data folder [default: $VICINAL_DATA_DIR or the cache folder]")
    ] = None,
    download: Annotated[bool, typer.Option(help="download the clean dataset if it is missing")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N")] = "auto",
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
    threads: ThreadsOpt = None,
) -> None:
    """Write a corrupted test set (the released -C layout, with a manifest) from a clean dataset."""
    _threads(threads)
    from vicinal.corrupted import default_folder, write_set
    from vicinal.corruptions import SCALES, resolve_corruptions
    from vicinal.datasets import load_dataset, resolve_data_dir
    from vicinal.io import probe_writable
    from vicinal.runner import resolve_device

    names = resolve_corruptions(_csv(corruptions, "--corruptions"))
    try:
        levels = sorted({int(s) for s in _csv(severities, "--severities")})
    except ValueError:
        raise VicinalError(f"--severities {severities!r}: give comma-separated integers 1–5") from None
    if not levels or any(s not in range(1, 6) for s in levels):
        raise VicinalError(f"--severities {severities!r}: severities run from 1 to 5")
    if table != "auto" and table not in SCALES:
        raise VicinalError(f"--table {table!r}: choose auto or one of {', '.join(SCALES)}")
    dev = resolve_device(device)
    target = out or default_folder(dataset, resolve_data_dir(data_dir))
    probe_writable(target, "output folder")
    data = load_dataset(dataset, data_dir, download)
    source = {"dataset": data.name, "path": data.source, "test_fingerprint": data.test.fingerprint()}
    with console_reporter(quiet) as rep:
        manifest = write_set(
            data.test,
            target,
            names,
            levels,
            seed=seed,
            table=None if table == "auto" else table,
            device=dev,
            source=source,
            reporter=rep,
        )
    settings = manifest["settings"]
    console.print(
        f"wrote {len(names)} corruptions × {len(levels)} severities × {len(data.test)} images to {target} "
        f"(table {settings['table']}, seed {seed}; manifest.json records the protocol)"
    )


@app.command("evaluate")
def evaluate_cmd(
    suite: Annotated[str, typer.Option(help="shipped suite name or path to a suite TOML")] = "digits-c",
    checkpoint: Annotated[
        Path | None, typer.Option(help="a state dict (torch.save(model.state_dict())) of --model")
    ] = None,
    model: Annotated[str | None, typer.Option(help="registered architecture of --checkpoint")] = None,
    robustbench: Annotated[
        str | None,
        typer.Option(help="a RobustBench model-zoo entry, e.g. Standard (needs vicinal[robustbench])"),
    ] = None,
    threat: Annotated[
        str, typer.Option(help="RobustBench threat model: corruptions, Linf or L2")
    ] = "corruptions",
    model_dir: Annotated[
        Path | None, typer.Option(help="RobustBench's model folder [default: ./models, as robustbench's]")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="the model's name on the leaderboard [default: the RobustBench entry]")
    ] = None,
    normalize: Annotated[
        str | None,
        typer.Option(
            help="for a state dict without normalize.mean/std: MEAN/STD (0.49,0.48,0.45/0.25,0.24,0.26), "
            "suite (the suite's training-set statistics) or none (inputs in [0, 1])"
        ),
    ] = None,
    evaluators: Annotated[
        str | None, typer.Option(help="comma-separated evaluators to run [default: the suite's]")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="evaluators.NAME.PARAM=VALUE (repeatable)")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N")] = "auto",
    data_dir: Annotated[
        str | None, typer.Option(help="data folder [default: $VICINAL_DATA_DIR or the cache folder]")
    ] = None,
    download: Annotated[bool, typer.Option(help="download the dataset if it is missing")] = False,
    results: ResultsOpt = None,
    cache_dir: Annotated[
        Path | None, typer.Option(help="cache folder [default: $VICINAL_CACHE_DIR or ~/.cache/vicinal]")
    ] = None,
    force: Annotated[bool, typer.Option(help="evaluate again even if the result exists")] = False,
    quiet: Annotated[bool, typer.Option(help="no progress bars")] = False,
    plugin: PluginOpt = None,
) -> None:
    """Evaluate a model vicinal did not train (a checkpoint or a RobustBench entry) under a suite's protocol;
    its result is marked as evaluated and sits on the leaderboard beside the trained methods."""
    from vicinal.api import evaluate
    from vicinal.hparams import parse_assignments
    from vicinal.results import default_results_dir

    if checkpoint is not None and robustbench is not None:
        raise VicinalError("give either --checkpoint (with --model) or --robustbench, not both")
    if checkpoint is None and robustbench is None:
        raise VicinalError("nothing to evaluate: give --checkpoint FILE --model ARCH, or --robustbench NAME")
    if checkpoint is not None and model is None:
        raise VicinalError("--checkpoint needs --model: the registered architecture the state dict is for")
    if checkpoint is None and model is not None:
        raise VicinalError(
            "--model names the architecture of a --checkpoint; RobustBench entries bring theirs"
        )
    if robustbench is None and (threat != "corruptions" or model_dir is not None):
        raise VicinalError("--threat and --model-dir go with --robustbench")
    if checkpoint is not None and name is None:
        raise VicinalError("--name is required: how the model is labelled on the leaderboard")
    results_dir = results or default_results_dir()
    with console_reporter(quiet) as rep:
        result = evaluate(
            checkpoint,
            suite=suite,
            name=name,
            architecture=model,
            normalize=normalize,
            robustbench=robustbench,
            threat=threat,
            model_dir=model_dir,
            evaluators=_csv(evaluators, "--evaluators"),
            settings=_flag("--set", parse_assignments, set_ or []),
            device=device,
            data_dir=data_dir,
            download=download,
            results_dir=results_dir,
            cache_dir=cache_dir,
            force=force,
            plugins=plugin or [],
            reporter=rep,
        )
    console.print(escape(f"{result.method}: result in {result.path}"))
    from vicinal.formats import print_boards
    from vicinal.leaderboard import build_boards

    print_boards(console, build_boards(_load_store(results_dir), result.suite), _width(None))


@app.command("export")
def export_cmd(
    robustbench: Annotated[
        Path, typer.Option(help="a result file to export in RobustBench's submission format")
    ],
    out: Annotated[Path, typer.Option(help="folder to write the submission material into")],
    threat: Annotated[str, typer.Option(help="corruptions, Linf or L2")] = "corruptions",
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="the model's state dict [default: the run's cached final checkpoint]"),
    ] = None,
    name: Annotated[str | None, typer.Option(help="the model's name [default: the result's method]")] = None,
    cache_dir: Annotated[
        Path | None, typer.Option(help="cache folder [default: $VICINAL_CACHE_DIR or ~/.cache/vicinal]")
    ] = None,
    allow_partial: Annotated[
        bool,
        typer.Option(help="export a result not measured under RobustBench's protocol (said in the footnote)"),
    ] = False,
) -> None:
    """Write a RobustBench model-zoo submission (model-info JSON, state dict, per-cell CSV) for a result."""
    from vicinal.robustbench import export_submission

    written = export_submission(
        robustbench,
        out,
        threat=threat,
        checkpoint=checkpoint,
        model_name=name,
        cache_dir=cache_dir,
        allow_partial=allow_partial,
    )
    for what, path in written.items():
        console.print(escape(f"{what}: {path}"))


def main() -> None:
    # Before any command can import torch: libgomp reads its wait policy only when torch loads it.
    from vicinal.allocator import apply_allocator_policy
    from vicinal.threads import apply_thread_policy

    # A malformed OMP_NUM_THREADS/VICINAL_THREADS is an error only for the commands that use threads.
    with contextlib.suppress(VicinalError):
        apply_thread_policy()
    apply_allocator_policy()
    handler = WarningHandler()
    logging.getLogger("vicinal").addHandler(handler)
    logging.getLogger("vicinal").setLevel(logging.INFO)
    try:
        app()
    except VicinalError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]; nothing finished was lost")
        sys.exit(130)
    except OSError as exc:  # the environment (a file, a folder, the disk), not vicinal, failed
        where = f" {exc.filename}" if exc.filename else ""
        err_console.print(f"[bold red]error:[/]{escape(where)} {escape(exc.strerror or str(exc))}")
        sys.exit(1)
    finally:
        logging.getLogger("vicinal").removeHandler(handler)


if __name__ == "__main__":
    main()
