"""``vicinal methods``: list the registered methods (``-v``: their hyperparameters and defaults)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from vicinal.cli.console import console, err_console
from vicinal.cli.options import (
    PluginOpt,
    load_plugins,
)
from vicinal.core.errors import VicinalError


def methods_cmd(
    pattern: Annotated[str, typer.Argument(help="shell-style filter, e.g. 'mix*'")] = "*",
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="show hyperparameters and defaults")
    ] = False,
    plugin: PluginOpt = None,
) -> None:
    """List the registered vicinal methods."""
    from vicinal.core.hparams import describe
    from vicinal.training.method import METHODS, get_method, list_methods

    load_plugins(plugin)
    names = list_methods(pattern)
    if not names:
        raise VicinalError(f"no method matches {pattern!r}; registered: {', '.join(list_methods())}")
    if not verbose:
        table = Table()
        # "vicinity in", not "mixes in": a vicinity around each example (Gaussian noise) mixes nothing but
        # lives in the input space all the same.
        for col in ("method", "vicinity in", "description"):
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
            title=f"[bold]{escape(name)}[/] · vicinity in: {escape(str(cls.mixes_in))} · "
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
