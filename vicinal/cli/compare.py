"""``vicinal compare A B``: A − B per metric, with a paired-bootstrap interval and a verdict."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from vicinal.cli.console import console
from vicinal.cli.options import (
    PluginOpt,
    ResultsOpt,
    csv_list,
    load_plugins,
    require_results,
    table_width,
)
from vicinal.core.errors import VicinalError


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
    resamples: Annotated[
        int, typer.Option(help="bootstrap resamples of the test examples (100 to 100,000)")
    ] = 2000,
    level: Annotated[float, typer.Option(help="confidence level of the intervals (0.5 to 0.999)")] = 0.95,
    seed: Annotated[int, typer.Option(help="seed of the resamples (0 to 4,294,967,295)")] = 0,
    fmt: Annotated[str, typer.Option("--format", help="table, markdown or json")] = "table",
    width: Annotated[
        int | None, typer.Option(min=60, help="columns of the table [default: the terminal's]")
    ] = None,
    results: ResultsOpt = None,
    plugin: PluginOpt = None,
) -> None:
    """A − B per metric with its interval (paired bootstrap over test examples and seeds) and a verdict."""
    from vicinal.board.compare import compare, render
    from vicinal.board.paired import Resampler

    load_plugins(plugin)  # derivations that plugins declare
    if fmt not in ("table", "markdown", "json"):
        raise VicinalError(f"--format {fmt!r}: choose table, markdown or json")
    resampler = Resampler(resamples=resamples, seed=seed, level=level)  # checked before reading results
    _, store = require_results(results)
    comparison = compare(store, a, b, suite, csv_list(metrics, "--metrics"), resampler)
    if fmt == "table" and console.is_terminal:
        console.print(comparison.table(console.width))
        return
    sys.stdout.write(render(comparison, fmt, width or table_width(None)))
