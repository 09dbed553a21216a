"""``vicinal selfcheck``: check that this machine trains, resumes and evaluates as it should, and how fast
(the work is :mod:`vicinal.execution.selfcheck`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from vicinal.cli.console import console
from vicinal.cli.options import DataDirOpt, ThreadsOpt, apply_threads

STYLE = {"ok": "green", "failed": "bold red", "skipped": "yellow"}


def selfcheck_cmd(
    device: Annotated[str, typer.Option(help="auto, cpu or cuda[:N]")] = "auto",
    quick: Annotated[
        bool, typer.Option(help="a small CNN on a few hundred images: under a minute on a CPU")
    ] = False,
    data_dir: DataDirOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Train every built-in method briefly (images/s), interrupt and resume a run, evaluate one model on
    the CPU and on the device, and run two half-GPU Ray tasks where there is a GPU; exit 0 only when
    every check holds. Uses the CIFAR-10 images in the data folder when there, else synthetic ones."""
    apply_threads(threads)
    from vicinal.execution.selfcheck import FAILED, Check, run_selfcheck

    def show(check: Check) -> None:
        style = STYLE.get(check.status, "")
        console.print(
            f"[{style}]{check.status:>7}[/] {escape(check.name)}: {escape(check.summary)} "
            f"[dim]({check.seconds:.0f} s)[/]",
            soft_wrap=True,
        )
        for line in check.lines:  # tables: never wrapped, so their columns stay aligned in a log
            console.print(f"          {escape(line)}", highlight=False, soft_wrap=True)

    checks = run_selfcheck(
        device,
        quick,
        data_dir,
        say=lambda text: console.print(escape(text), highlight=False, soft_wrap=True),
        on_check=show,
    )
    failed = [c.name for c in checks if c.status == FAILED]
    if failed:
        console.print(f"[bold red]selfcheck failed[/]: {escape(', '.join(failed))}")
        raise typer.Exit(1)
    console.print("[green]selfcheck passed[/]")
