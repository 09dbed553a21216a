"""The command line's output: the reporter protocol implemented with rich on a terminal, line by line
elsewhere, and the two consoles every command prints through.

On a terminal each task is a live bar with its figures beside it; anywhere else (a CI log, ``nohup``, a
file) each task prints one line per reported moment (an epoch, an evaluator) through
:class:`vicinal.core.reporting.LineReporter`, because a redrawn bar is unreadable in a file. Library text is
printed as written: nothing in it is read as rich markup.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from vicinal.core.reporting import LineReporter, Reporter, format_fields

console = Console()
# Messages are never wrapped: one message stays one line in a log file or a narrow terminal.
err_console = Console(stderr=True, soft_wrap=True)


def note(message: str) -> None:
    console.print(escape(message), style="dim")


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning[/]: {escape(message)}")


class _BarTask:
    def __init__(self, progress: Progress, task: TaskID):
        self.progress, self.id = progress, task
        self.fields: dict[str, Any] = {}

    def advance(self, steps: float = 1, **fields: Any) -> None:
        self.fields.update(fields)
        self.progress.update(self.id, advance=steps, figures=escape(format_fields(self.fields)))

    def line(self, text: str = "", **fields: Any) -> None:
        self.fields.update(fields)  # the bar shows the figures; a terminal needs no extra line
        self.progress.update(self.id, figures=escape(format_fields(self.fields)))

    def close(self) -> None:
        task = self.progress.tasks[[t.id for t in self.progress.tasks].index(self.id)]
        if task.total is not None and task.completed < task.total:
            self.progress.update(self.id, total=task.completed)  # finished early: show it as done


class BarReporter:
    """Live bars on a terminal (rich), one per task, with the task's figures beside each."""

    def __init__(self, progress: Progress):
        self.progress = progress

    def task(self, label: str, total: float | None = None, done: float = 0) -> _BarTask:
        return _BarTask(
            self.progress, self.progress.add_task(escape(label), total=total, completed=done, figures="")
        )

    def note(self, message: str) -> None:
        self.progress.console.print(escape(message), style="dim")

    def warn(self, message: str) -> None:
        warn(message)


@contextmanager
def reporter(quiet: bool = False) -> Iterator[Reporter]:
    """The reporter a command should use: bars on a terminal, lines elsewhere, only notes and warnings
    with ``quiet``."""
    if quiet or not console.is_terminal:
        yield LineReporter(quiet_tasks=quiet)
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[figures]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        # rich redraws 10 times a second by default: ~1.3 % of a core beside training, most of vicinal's
        # overhead over a bare loop (BENCHMARKS.md); twice a second is enough for bars of epochs.
        refresh_per_second=2,
    )
    with progress:
        yield BarReporter(progress)


class WarningHandler(logging.Handler):
    """vicinal's library warnings (logger "vicinal": e.g. a plugin that fails to load) as one line each."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            warn(record.getMessage())
        else:
            err_console.print(escape(record.getMessage()))
