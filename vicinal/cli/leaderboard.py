"""``vicinal leaderboard``: the boards of a results folder, in any output format."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from vicinal.cli.console import console, err_console
from vicinal.cli.options import (
    PluginOpt,
    ResultsOpt,
    csv_list,
    load_plugins,
    path_of,
    require_results,
    table_width,
)
from vicinal.core.errors import VicinalError


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
        str | None,
        typer.Option(
            help="with --best-of: the validation metric it chooses by (val_acc or val_nll) [default: val_acc]"
        ),
    ] = None,
    latest: Annotated[
        bool,
        typer.Option(
            "--latest",
            help="each configuration only at its newest code: leave out the rows of earlier code (each "
            "edit of a method or evaluator makes one), and say which files could be deleted",
        ),
    ] = False,
    out: Annotated[
        Path | None, typer.Option(parser=path_of("--out"), help="write to this file instead of printing")
    ] = None,
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
    from vicinal.board.boards import build_boards
    from vicinal.board.formats import DEFAULT_WIDTH, FORMATS, print_boards, render_text
    from vicinal.core.io import atomic_write_text, probe_output_file

    load_plugins(plugin)  # derivations that plugins declare
    if fmt not in FORMATS:
        raise VicinalError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if out is not None:
        probe_output_file(out)
    _, store = require_results(results)
    boards = build_boards(
        store,
        suite,
        csv_list(methods, "--methods"),
        csv_list(metrics, "--metrics"),
        sort,
        by,
        best_of_params=csv_list(best_of, "--best-of"),
        select=select,
        latest=latest,
    )
    hidden = sorted({f for b in boards for f in b.hidden})
    if hidden:
        err_console.print(escape(prune_note(hidden)), soft_wrap=True)
    if fmt == "table" and out is None:  # rich's colours and bold on a terminal, plain text in a pipe
        print_boards(console, boards, table_width(width))
        return
    text = render_text(boards, width or DEFAULT_WIDTH) if fmt == "table" else FORMATS[fmt](boards)
    if out is not None:
        atomic_write_text(out, text)
        err_console.print(f"wrote {escape(str(out))}")
    else:
        sys.stdout.write(text)


#: Files named in the note of what --latest left out; the rest are counted (--format json lists all).
PRUNE_SHOWN = 8


def prune_note(files: list[str]) -> str:
    """What ``--latest`` left out, and how to prune it: each result file goes with the files beside it
    that share its name (figures, per-example outcomes), hence ``<stem>.*``."""
    stems = [f"{Path(f).with_suffix('')}.*" for f in files]
    more = len(stems) - PRUNE_SHOWN
    listed = " ".join(stems[:PRUNE_SHOWN]) + (
        f' … and {more} more (`--format json` lists them all under "hidden")' if more > 0 else ""
    )
    return (
        f"--latest left out the rows of earlier code ({len(files)} result file(s)). To prune them, delete "
        f"each with the files beside it that share its name: rm {listed}"
    )
