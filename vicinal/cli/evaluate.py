"""``vicinal evaluate``: a model vicinal did not train, under a suite's evaluation protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from vicinal.cli.console import console
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
    csv_list,
    load_results,
    parse_flag,
    path_of,
    table_width,
    text_of,
)
from vicinal.core.errors import Interrupted, VicinalError


def evaluate_cmd(
    suite: SuiteOpt = "digits-c",
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            parser=path_of("--checkpoint"), help="a state dict (torch.save(model.state_dict())) of --model"
        ),
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
        Path | None,
        typer.Option(
            parser=path_of("--model-dir"),
            help="RobustBench's model folder [default: ./models, as robustbench's]",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            parser=text_of("--name"),
            help="the model's name on the leaderboard [default: the RobustBench entry]",
        ),
    ] = None,
    normalize: Annotated[
        str | None,
        typer.Option(
            help="for a state dict without normalize.mean/std: MEAN/STD (0.49,0.48,0.45/0.25,0.24,0.26), "
            "suite (the suite's training-set statistics) or none (inputs in [0, 1])"
        ),
    ] = None,
    evaluators: EvaluatorsOpt = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="evaluators.NAME.PARAM=VALUE (repeatable)")
    ] = None,
    device: DeviceOpt = "auto",
    data_dir: DataDirOpt = None,
    download: DownloadOpt = False,
    results: ResultsOpt = None,
    cache_dir: CacheDirOpt = None,
    force: Annotated[bool, typer.Option(help="evaluate again even if the result exists")] = False,
    quiet: QuietOpt = False,
    plugin: PluginOpt = None,
) -> None:
    """Evaluate a model vicinal did not train (a checkpoint or a RobustBench entry) under a suite's protocol;
    its result is marked as evaluated and sits on the leaderboard beside the trained methods."""
    from vicinal.api import evaluate_source, parse_settings
    from vicinal.core.hparams import parse_assignments
    from vicinal.execution.options import Overrides, RunOptions
    from vicinal.external.source import ModelSource

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
    source = ModelSource(
        checkpoint=checkpoint,
        architecture=model,
        normalize=normalize,
        robustbench=robustbench,
        threat=threat,
        model_dir=model_dir,
        name=name,
    )
    source.check()
    settings = parse_settings(parse_flag("--set", parse_assignments, set_ or []))
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
        )
        overrides = Overrides(evaluators=csv_list(evaluators, "--evaluators"), settings=settings)
        try:
            result = evaluate_source(source, suite, overrides, options)
        except Interrupted:
            raise  # it says what was kept (a corrupted set being generated into the cache)
        except KeyboardInterrupt:
            raise Interrupted(
                f"the evaluation of {source.label} stopped before its result was written (a result is "
                f"written only when complete); the results in {options.results_dir} are as they were. "
                "Run the same command again to evaluate it"
            ) from None
    results_dir = options.results_dir
    console.print(escape(f"{result.method}: result in {result.path}"))
    from vicinal.board.boards import build_boards
    from vicinal.board.formats import print_boards

    print_boards(console, build_boards(load_results(results_dir), result.suite), table_width(None))
