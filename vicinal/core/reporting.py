"""How long work tells people where it is: the reporter protocol, and the two plain implementations.

The library never prints. Code that does long work (training, a VAE, an evaluator, a download) takes a
:class:`Reporter`, starts a task with a total, advances it with named figures, and marks the moments that
deserve a line of their own in a log (the end of an epoch, of an evaluator). The command line implements
the protocol with rich's live bars on a terminal and with :class:`LineReporter` elsewhere (CI logs,
``nohup``, a file), so a non-interactive run prints lines for its epochs (paced: :class:`Pacer`) and one
per evaluator instead of nothing, and a task that goes on advancing without a line for
:data:`HEARTBEAT_S` seconds (an attack over a thousand images, a 20-minute epoch) prints where it is:
how far, its rate and the time left. Messages are plain text; the caller decides how to colour them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, Protocol, TextIO


class Task(Protocol):
    def advance(self, steps: float = 1, **fields: Any) -> None:
        """Move the bar by ``steps``; ``fields`` (loss, acc, img/s, …) are shown beside it."""

    def line(self, text: str = "", **fields: Any) -> None:
        """A moment worth a line in a log (an epoch or an evaluation finished), with its figures."""

    def close(self) -> None:
        """The task is over (its bar may stay on screen)."""


class Reporter(Protocol):
    def task(self, label: str, total: float | None = None, done: float = 0) -> Task:
        """Start a task; ``done`` is what an earlier, resumed attempt already finished."""

    def note(self, message: str) -> None:
        """Something worth knowing that is not a problem (a result reused, a setting not used)."""

    def warn(self, message: str) -> None:
        """Something went wrong but the work goes on (a damaged cache entry retrained)."""


#: Seconds between two periodic lines (an epoch ended) in a log: an epoch of minutes gets its line, but
#: 0.2-second epochs do not fill the log with one line each.
LINE_EVERY_S = 10.0


class Pacer:
    """When a periodic line (an epoch ended) is due: the first, the last, and one per
    :data:`LINE_EVERY_S` between. For the moments a log could otherwise have thousands of; the lines that
    carry results (an evaluator's figures) are never paced."""

    def __init__(self) -> None:
        self.last: float | None = None

    def due(self, last: bool) -> bool:
        now = time.perf_counter()
        if self.last is None or last or now - self.last >= LINE_EVERY_S:
            self.last = now
            return True
        return False


#: Seconds a task may advance without a line in a log before it prints where it is: long work is never
#: silent for more than this (while it advances at least that often).
HEARTBEAT_S = 30.0


def format_count(x: float) -> str:
    """``12,000`` for a whole number (never ``1.2e+06``), ``2.5`` otherwise."""
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:g}"


def format_duration(seconds: float) -> str:
    """``45 s``, ``6 min 50 s``, ``2 h 05 min``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def format_fields(fields: dict[str, Any]) -> str:
    """``loss 0.512 · acc 83.1%`` from ``{"loss": "0.512", "acc": "83.1%"}``: names and values as given."""
    return " · ".join(f"{k} {v}" for k, v in fields.items() if v not in (None, ""))


class _SilentTask:
    def advance(self, steps: float = 1, **fields: Any) -> None:
        pass

    def line(self, text: str = "", **fields: Any) -> None:
        pass

    def close(self) -> None:
        pass


class SilentReporter:
    """Reports nothing (the default of the Python API): warnings still reach ``warnings_to`` if given."""

    def __init__(self, warnings_to: TextIO | None = None):
        self.warnings_to = warnings_to

    def task(self, label: str, total: float | None = None, done: float = 0) -> Task:
        return _SilentTask()

    def note(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        if self.warnings_to is not None:
            print(f"warning: {message}", file=self.warnings_to)


class _LineTask:
    def __init__(self, owner: LineReporter, label: str, total: float | None, done: float):
        self.owner, self.label, self.total, self.done = owner, label, total, done
        self.fields: dict[str, Any] = {}
        self.started = self.spoke = owner.clock()
        self.done_at_start = done  # what a resumed attempt had done already: not part of the rate

    def advance(self, steps: float = 1, **fields: Any) -> None:
        self.done += steps
        self.fields.update(fields)
        now = self.owner.clock()
        if now - self.spoke >= HEARTBEAT_S:
            self.spoke = now
            self.owner.progress(self.where(now))

    def where(self, now: float) -> str:
        """``label [done/total, 28%]: figures · 2.1/s · 6 min 50 s left``: how far, how fast, how long."""
        head = f"{self.label} [{format_count(self.done)}"
        head += f"/{format_count(self.total)}, {self.done / self.total:.0%}]" if self.total else "]"
        parts = [format_fields(self.fields)] if self.fields else []
        elapsed = now - self.started
        rate = (self.done - self.done_at_start) / elapsed if elapsed > 0 else 0.0
        if rate > 0:
            parts.append(f"{rate:.3g}/s")
            if self.total:
                parts.append(f"{format_duration(max(self.total - self.done, 0) / rate)} left")
        parts.append(f"{format_duration(elapsed)} so far")
        return f"{head}: {' · '.join(p for p in parts if p)}"

    def line(self, text: str = "", **fields: Any) -> None:
        self.fields.update(fields)
        self.spoke = self.owner.clock()
        where = f" [{format_count(self.done)}/{format_count(self.total)}]" if self.total else ""
        parts = [p for p in (text, format_fields(fields)) if p]
        self.owner.progress(f"{self.label}{where}: {' · '.join(parts)}" if parts else f"{self.label}{where}")

    def close(self) -> None:
        pass


class LineReporter:
    """One line per reported moment, for output that is not a terminal (no bars, no cursor movement),
    and a line of where a task is whenever it has advanced for :data:`HEARTBEAT_S` seconds without one.
    ``quiet_tasks`` keeps notes and warnings but drops the progress lines."""

    def __init__(
        self,
        stream: TextIO | None = None,
        quiet_tasks: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.stream = stream
        self.quiet_tasks = quiet_tasks
        self.clock = clock

    def progress(self, text: str) -> None:
        if not self.quiet_tasks:
            print(text, file=self.stream or sys.stdout, flush=True)

    def task(self, label: str, total: float | None = None, done: float = 0) -> Task:
        return _LineTask(self, label, total, done)

    def note(self, message: str) -> None:
        print(message, file=self.stream or sys.stdout, flush=True)

    def warn(self, message: str) -> None:
        print(f"warning: {message}", file=sys.stderr, flush=True)
