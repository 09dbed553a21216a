"""``vicinal evaluators``: list the registered evaluators (``-v``: their settings and defaults), and say
which shipped suites run each; a plugin's evaluator runs only where a run names it."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from vicinal.cli.console import console, err_console
from vicinal.cli.options import PluginOpt, load_plugins
from vicinal.core.errors import VicinalError

#: What a listing says of an evaluator no shipped suite runs (a plugin's, typically).
NAMED_ONLY = "none: runs only when named (--evaluators clean,NAME or [evaluators.NAME] in a suite file)"


def suites_running() -> dict[str, list[str]]:
    """Evaluator → the shipped suites whose protocol includes it (read from the suite files: no torch)."""
    from vicinal.execution.suite import builtin_suites, load_suite

    out: dict[str, list[str]] = {}
    for name in sorted(builtin_suites()):
        for evaluator in load_suite(name).evaluators:
            out.setdefault(evaluator, []).append(name)
    return out


def evaluators_cmd(
    pattern: Annotated[str, typer.Argument(help="shell-style filter, e.g. 'c*'")] = "*",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show settings and defaults")] = False,
    plugin: PluginOpt = None,
) -> None:
    """List the registered evaluators and the shipped suites that run each (-v: settings and defaults)."""
    from vicinal.core.hparams import describe
    from vicinal.evaluation.registry import EVALUATORS  # not .evaluator: listing needs no torch

    load_plugins(plugin)
    names = EVALUATORS.names(pattern)
    if not names:
        raise VicinalError(f"no evaluator matches {pattern!r}; registered: {', '.join(EVALUATORS.names())}")
    running = suites_running()
    if not verbose:
        table = Table()
        for col in ("evaluator", "in shipped suites", "description"):
            table.add_column(col, style="bold" if col == "evaluator" else None)
        for name in names:
            try:  # read from the evaluator's source where it can be: listing need not import torch
                summary = EVALUATORS.attributes(name, ("summary",))["summary"]
            except VicinalError as exc:  # registered twice: listed with the clash, usable by neither
                table.add_row(escape(name), "", f"[red]{escape(str(exc))}[/]")
                continue
            table.add_row(
                escape(name), escape(", ".join(running.get(name, [])) or NAMED_ONLY), escape(summary)
            )
        console.print(table)
        return
    for name in names:
        try:
            cls = EVALUATORS.get(name)
        except VicinalError as exc:
            err_console.print(f"[red]{escape(str(exc))}[/]")
            continue
        where = "built-in" if EVALUATORS.builtin(name) else f"plugin: {EVALUATORS.origin(name)}"
        suites = ", ".join(running.get(name, [])) or NAMED_ONLY
        table = Table(
            title=f"[bold]{escape(name)}[/] · {escape(where)}",
            caption=escape(
                f"{cls.summary}\nin shipped suites: {suites}\nset with --set evaluators.{name}.NAME=VALUE"
            ),
            title_justify="left",
            caption_justify="left",
        )
        for col in ("setting", "type", "default", "meaning"):
            table.add_column(col, style="bold" if col == "setting" else None)
        for row in describe(cls.Config) or [("—", "", "", "no settings")]:
            table.add_row(*map(escape, row))
        console.print(table)
