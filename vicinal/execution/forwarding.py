"""Progress from runs in other processes: a :class:`Reporter` that turns every call into an event, and the
driver's side that replays those events into its own reporter.

A run on a Ray worker reports through :class:`ForwardingReporter` exactly as a local run reports to the
console; the events travel to the driver as plain tuples (through whatever ``post`` the executor gives it)
and :class:`EventReplayer` feeds them into the driver's reporter (``vicinal.cli.console.reporter``), so the
terminal's live bars and the line-by-line log stay implemented in one place. Nothing here knows Ray.

Events (tuples, so they pickle cheaply):

- ``("start", run, attempt, node)``: an attempt at run ``run`` began on ``node`` (a second one is a retry);
- ``("task", run, tid, label, total, done)``, ``("advance", run, tid, steps, fields)``,
  ``("line", run, tid, text, fields)``, ``("close", run, tid)``: a task and its progress;
- ``("note", run, message)``, ``("warn", run, message)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from vicinal.core.reporting import Reporter, Task

Event = tuple[Any, ...]


class _ForwardingTask:
    def __init__(self, owner: ForwardingReporter, tid: str):
        self.owner, self.tid = owner, tid
        self.steps = 0.0
        self.fields: dict[str, Any] = {}

    def advance(self, steps: float = 1, **fields: Any) -> None:
        # Coalesced: a training loop advances once per batch, far more often than a screen needs.
        self.steps += steps
        self.fields.update(fields)
        self.owner._pending.add(self.tid)
        self.owner._maybe_flush()

    def line(self, text: str = "", **fields: Any) -> None:
        self.owner._send(("line", self.owner.run, self.tid, text, {**fields, **self.owner.fields}))

    def close(self) -> None:
        self.owner._send(("close", self.owner.run, self.tid))

    def take(self) -> Event | None:
        if not self.steps and not self.fields:
            return None
        event = ("advance", self.owner.run, self.tid, self.steps, {**self.fields, **self.owner.fields})
        self.steps, self.fields = 0.0, {}
        return event


class ForwardingReporter:
    """A reporter whose calls become events handed to ``post`` (a list at a time). Advances are sent at
    most every ``interval`` seconds; everything else is sent at once, after the advances before it, so
    the order of events is the order of calls. ``fields`` (such as the node) are added to every task's
    figures; ``rename`` maps task labels to the ones the driver shows (a sweep point's setting added)."""

    def __init__(
        self,
        post: Callable[[list[Event]], None],
        run: int,
        *,
        attempt: str = "",
        fields: dict[str, Any] | None = None,
        rename: dict[str, str] | None = None,
        interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.post, self.run, self.attempt = post, run, attempt
        self.fields = dict(fields or {})
        self.rename = dict(rename or {})
        self.interval, self.clock = interval, clock
        self._tasks: dict[str, _ForwardingTask] = {}
        self._pending: set[str] = set()
        self._last = clock()

    def start(self, node: str) -> None:
        self._send(("start", self.run, self.attempt, node))

    def task(self, label: str, total: float | None = None, done: float = 0) -> Task:
        tid = f"{self.attempt}.{len(self._tasks)}"
        for old, new in self.rename.items():
            if label.startswith(old):
                label = new + label[len(old) :]
                break
        self._tasks[tid] = _ForwardingTask(self, tid)
        self._send(("task", self.run, tid, label, total, done))
        return self._tasks[tid]

    def note(self, message: str) -> None:
        self._send(("note", self.run, message))

    def warn(self, message: str) -> None:
        self._send(("warn", self.run, message))

    def _advances(self) -> list[Event]:
        events = [e for tid in sorted(self._pending) if (e := self._tasks[tid].take()) is not None]
        self._pending.clear()
        return events

    def _maybe_flush(self) -> None:
        if self.clock() - self._last >= self.interval:
            self.flush()

    def _send(self, event: Event) -> None:
        self._last = self.clock()
        self.post([*self._advances(), event])

    def flush(self) -> None:
        """Send the advances not sent yet."""
        self._last = self.clock()
        events = self._advances()
        if events:
            self.post(events)


class EventReplayer:
    """Applies forwarded events to the driver's reporter: each remote task becomes one of its tasks.
    ``labels`` names each run (index → "mixup [alpha=0.2] · seed 0") for the messages about retries."""

    def __init__(self, reporter: Reporter, labels: dict[int, str], retries: int | None = None):
        self.reporter = reporter
        self.labels = labels
        self.retries = retries
        self.tasks: dict[tuple[int, str], Task] = {}
        self.attempts: dict[int, list[str]] = {}
        #: The node each run's latest attempt runs on.
        self.nodes: dict[int, str] = {}

    def apply(self, events: list[Event]) -> None:
        for event in events:
            kind, run = event[0], event[1]
            if kind == "start":
                _, _, attempt, node = event
                seen = self.attempts.setdefault(run, [])
                seen.append(attempt)
                self.nodes[run] = node
                if len(seen) > 1:
                    of = f" of {self.retries + 1}" if self.retries is not None else ""
                    self.reporter.warn(
                        f"{self.labels.get(run, run)}: its worker or node was lost; restarted on {node} "
                        f"(attempt {len(seen)}{of}), from its last epoch checkpoint where the cache is "
                        "reachable"
                    )
            elif kind == "task":
                _, _, tid, label, total, done = event
                self.tasks[(run, tid)] = self.reporter.task(label, total, done)
            elif kind in ("advance", "line", "close"):
                task = self.tasks.get((run, event[2]))
                if task is None:  # an event of a task whose start was never seen: nothing to attach it to
                    continue
                if kind == "advance":
                    task.advance(event[3], **event[4])
                elif kind == "line":
                    task.line(event[3], **event[4])
                else:
                    task.close()
            elif kind == "note":
                self.reporter.note(event[2])
            elif kind == "warn":
                self.reporter.warn(f"{self.labels.get(run, run)}: {event[2]}")
