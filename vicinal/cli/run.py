"""``vicinal run``: train each method of a suite for each seed, evaluate, write one result file each."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from vicinal.cli.console import console, err_console
from vicinal.cli.console import reporter as console_reporter
from vicinal.cli.options import (
    CacheDirOpt,
    DataDirOpt,
    DeviceOpt,
    DownloadOpt,
    EvaluatorsOpt,
    PluginOpt,
    QuietOpt,
    ResultsOpt,
    SuiteOpt,
    ThreadsOpt,
    apply_threads,
    csv_list,
    load_results,
    parse_flag,
    table_width,
)
from vicinal.core.errors import VicinalError


def run_cmd(
    suite: SuiteOpt = "digits-c",
    methods: Annotated[
        str | None, typer.Option(help="comma-separated methods [default: the suite's]")
    ] = None,
    seeds: Annotated[str | None, typer.Option(help="comma-separated seeds [default: the suite's]")] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="override the suite's epochs")] = None,
    limit_train: Annotated[
        int | None, typer.Option(min=0, help="use only N training images (0 = all)")
    ] = None,
    model: Annotated[str | None, typer.Option(help="override the suite's model")] = None,
    evaluators: EvaluatorsOpt = None,
    device: DeviceOpt = "auto",
    data_dir: DataDirOpt = None,
    download: DownloadOpt = False,
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
    cache_dir: CacheDirOpt = None,
    force: Annotated[bool, typer.Option(help="recompute results that already exist")] = False,
    quiet: QuietOpt = False,
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
        typer.Option(
            help="with --executor ray: GPUs per run, at most 1; a fraction shares a GPU (its memory is not "
            "capped) [default: 1 if any]"
        ),
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
    apply_threads(threads)
    from vicinal.api import prepare
    from vicinal.core.hparams import parse_assignments, parse_sweeps
    from vicinal.execution.options import ExecutorOptions, Overrides, RunOptions

    if seeds is not None:
        try:
            seed_list = [int(s) for s in csv_list(seeds, "--seeds")]
        except ValueError:
            raise VicinalError(f"--seeds {seeds!r}: give comma-separated integers, e.g. 0,1,2") from None
    overrides = Overrides(
        methods=csv_list(methods, "--methods"),
        seeds=seed_list if seeds is not None else None,
        epochs=epochs,
        limit_train=limit_train,
        model=model,
        evaluators=csv_list(evaluators, "--evaluators"),
        settings=parse_flag("--set", parse_assignments, set_ or []),
        sweep=parse_flag("--sweep", parse_sweeps, sweep or []),
    )
    failed: RunsFailed | None = None
    with console_reporter(quiet) as rep:
        options = RunOptions(
            device=device,
            data_dir=data_dir,
            download=download,
            results_dir=results,
            cache_dir=cache_dir,
            force=force,
            plugins=tuple(plugin or ()),
            reporter=rep,
            threads=threads,
            executor=ExecutorOptions(executor, address, gpus_per_run, cpus_per_run, max_retries),
        )
        results_dir = options.results_dir
        plan = prepare(suite, overrides, options)
        from vicinal.execution.plan import RunsFailed, execute  # after the checks: it imports torch

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
            # Counted: under Ray several runs are cancelled at once, each keeping its own checkpoint.
            left = len(plan.unfinished_checkpoints())
            kept = {0: "no unfinished run had completed an epoch", 1: "the unfinished run left a checkpoint"}
            said = kept.get(left, f"{left} unfinished runs left checkpoints")
            after = (
                ""
                if left == 0
                else " at their last completed epoch"
                if left > 1
                else " at its last completed epoch"
            )
            err_console.print(
                f"[yellow]interrupted[/]: {len(plan.outcomes)} finished result(s) are kept in "
                f"{escape(str(results_dir))}; {said}{after}. Run the same command again to resume."
            )
            raise typer.Exit(130) from None
        except VicinalError as exc:
            if plan.outcomes:  # say that nothing finished was lost, then the error itself
                err_console.print(
                    escape(f"{len(plan.outcomes)} finished result(s) are kept in {results_dir}")
                )
            raise exc from None
    counts = {s: sum(o.status == s for o in outcomes) for s in ("trained", "re-evaluated", "reused")}
    # "re-evaluated" only when some were: the model came from the cache and only the evaluation ran.
    done = ", ".join(f"{n} {s}" for s, n in counts.items() if n or s != "re-evaluated")
    console.print(escape(f"{done} · results in {results_dir}"))
    from vicinal.board.boards import build_boards
    from vicinal.board.formats import print_boards

    store = load_results(results_dir, cache_dir)
    if any(r.suite == spec.name for r in store.results):
        print_boards(console, build_boards(store, spec.name), table_width(None))
    if failed is not None:
        raise failed
