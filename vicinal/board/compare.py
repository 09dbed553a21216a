"""``vicinal compare A B``: is one configuration better than another, and by how much?

For each metric: the difference A − B of the seed means, its interval (:mod:`vicinal.board.paired`: a paired
bootstrap over the test examples combined with the spread over seeds, or the seed spread alone where no
per-example outcomes exist, saying which) and a plain verdict — "A better", "B better" or "no detectable
difference" ("undetermined" without any interval). A and B are leaderboard rows, named by method or by
row label (``"mixup [alpha=0.4]"``); the report compares every row with the suite's baseline the same way.
Needs numpy and rich, not torch.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text
from tabulate import tabulate

from vicinal.board.boards import Board, Row, build_boards, side, unknown_metrics
from vicinal.board.paired import Difference, Resampler, compare_sides, procedure
from vicinal.board.relative import baseline_of
from vicinal.board.text import format_cell, header, signed
from vicinal.core.errors import VicinalError
from vicinal.store.results import Store


@dataclass
class Comparison:
    """A against B on one suite: one :class:`~vicinal.board.paired.Difference` per metric."""

    suite: str
    a: Row
    b: Row
    differences: list[Difference]
    resampler: Resampler
    board: Board

    def verdicts(self) -> dict[str, str]:
        return {d.metric: d.verdict(self.a.label, self.b.label) for d in self.differences}

    @property
    def procedure(self) -> str:
        return procedure(self.resampler)

    def to_json(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "a": {"label": self.a.label, "method": self.a.method, "seeds": self.a.seeds},
            "b": {"label": self.b.label, "method": self.b.method, "seeds": self.b.seeds},
            "resamples": self.resampler.resamples,
            "level": self.resampler.level,
            "seed": self.resampler.seed,
            "procedure": self.procedure,
            "differences": [
                d.to_json() | {"verdict": d.verdict(self.a.label, self.b.label)} for d in self.differences
            ],
        }

    # ------------------------------------------------------------ as text

    def _cells(self, d: Difference, pm: str = " ± ") -> list[str]:
        board, m = self.board, d.metric
        a, b = self.a.cells[m], self.b.cells[m]
        diff = "—" if d.diff != d.diff else signed(board, m, d.diff)
        interval = (
            "—"
            if d.low is None or d.high is None
            else f"[{signed(board, m, d.low)}, {signed(board, m, d.high)}]"
        )
        return [
            header(board, m),
            format_cell(board, m, a, pm),
            format_cell(board, m, b, pm),
            diff,
            interval,
            d.verdict(self.a.label, self.b.label),
            _basis(d),
        ]

    def _head(self) -> list[str]:
        level = f"{self.resampler.level:.0%}"
        return [
            "metric",
            self.a.label,
            self.b.label,
            f"{self.a.label} − {self.b.label}",
            f"{level} interval",
            "verdict",
            "interval from",
        ]

    def title(self) -> str:
        def seeds(row: Row) -> str:
            return f"{row.label}: seed{'s' if len(row.seeds) != 1 else ''} {', '.join(map(str, row.seeds))}"

        return f"{self.a.label} vs {self.b.label} · suite {self.suite} · {seeds(self.a)} · {seeds(self.b)}"

    def notes(self) -> list[str]:
        """Each reason for a fallback once, with the metrics it applies to, then the procedure."""
        grouped: dict[str, list[str]] = {}
        for d in self.differences:
            if d.basis == "seeds":
                why = f"seed spread only: {d.note}"
            elif d.basis == "none":
                why = f"no interval: {d.note}"
            elif d.basis == "examples":
                why = "one seed each: the interval holds the test-example uncertainty only"
            else:
                continue
            grouped.setdefault(why, []).append(header(self.board, d.metric))
        examples = sorted({d.examples for d in self.differences if d.examples})
        lines = [f"{why} ({', '.join(names)})" for why, names in grouped.items()]
        if examples:
            lines.append("examples resampled: " + "; ".join(examples))
        return [*lines, self.procedure]

    def table(self, width: int | None = None) -> Table:
        """The rich table; with ``width`` (the console's columns), fitted to it (see :func:`_fit`)."""
        table = Table(
            title=Text(self.title()),
            caption=Text("\n".join(self.notes())),
            caption_justify="left",
        )
        head = self._head()
        rows = [self._cells(d) for d in self.differences]
        columns = [[h, *(row[i] for row in rows)] for i, h in enumerate(head)]
        shortest = [max(len(w) for text in col for w in text.split()) for col in columns]
        longest = [max(len(text) for text in col) for col in columns]
        # Borders (columns + 1) and one space of padding either side of every cell.
        room = None if width is None else width - (len(head) + 1) - 2 * len(head)
        widths = _fit(shortest, longest, room)
        for i, h in enumerate(head):
            table.add_column(
                Text(h), justify="left" if i in (0, 5, 6) else "right", overflow="fold", width=widths[i]
            )
        for d, row in zip(self.differences, rows, strict=True):
            style = {1: "bold green", -1: "bold red"}.get(d.winner or 0, "")
            cells = [Text(c) for c in row]
            cells[5].stylize(style)
            table.add_row(*cells)
        return table

    def to_text(self, width: int = 160) -> str:
        buffer = io.StringIO()
        Console(file=buffer, width=width).print(self.table(width))
        return buffer.getvalue()

    def to_markdown(self) -> str:
        body = tabulate(
            [self._cells(d) for d in self.differences],
            headers=self._head(),
            tablefmt="github",
            disable_numparse=True,
        )
        notes = "\n".join(f"- {n}" for n in self.notes())
        return f"### {self.title()}\n\n{body}\n\n{notes}\n"


def _fit(shortest: list[int], longest: list[int], room: int | None) -> list[int | None]:
    """Column widths within ``room`` characters: every column gets its longest word, then the columns
    with the most text left to show widen first. Rich's own shrinking narrows all columns alike and then
    folds words mid-way ("detectabl e"), or draws past the edge when that is too narrow for a word; None
    (rich decides) where the table fits unwrapped or where no room is given."""
    if room is None or sum(longest) <= room:
        return [None] * len(longest)
    widths = list(shortest)
    for _ in range(max(room - sum(widths), 0)):
        i = max(range(len(widths)), key=lambda j: longest[j] - widths[j])
        if widths[i] >= longest[i]:
            break
        widths[i] += 1
    return widths


def _basis(d: Difference) -> str:
    """Where an interval comes from, in a few words (the notes below the table say more)."""
    return {
        "examples+seeds": f"examples + seeds ({d.seed_df} df)",
        "examples": "examples (1 seed each)",
        "seeds": f"seeds only ({d.seed_df} df)",
        "none": "none",
    }[d.basis]


# ---------------------------------------------------------------- choosing the rows


def find_row(board: Board, name: str) -> Row:
    """The measured row labelled ``name``, else the only measured row of method ``name``."""
    measured = [r for r in board.rows if not r.reported]
    for row in measured:
        if row.label == name:
            return row
    of_method = [r for r in measured if r.method == name]
    if len(of_method) == 1:
        return of_method[0]
    labels = ", ".join(repr(r.label) for r in measured)
    if of_method:
        raise VicinalError(
            f"{name} has {len(of_method)} configurations in suite {board.suite}; name one by its label: "
            + ", ".join(repr(r.label) for r in of_method)
        )
    if any(r.reported and (r.method == name or r.label == name) for r in board.rows):
        raise VicinalError(
            f"{name} is a reported row (numbers from a paper): it has no seeds or examples to compare"
        )
    raise VicinalError(f"no measured row {name!r} in suite {board.suite}; rows: {labels}")


def _suite(store: Store, suite: str | None) -> str:
    known = sorted({r.suite for r in store.results})
    if suite:
        if suite not in known:
            raise VicinalError(
                f"no results for suite {suite!r}; results exist for: {', '.join(known) or 'none'}"
            )
        return suite
    if len(known) == 1:
        return known[0]
    raise VicinalError(f"results exist for several suites ({', '.join(known)}): choose one with --suite")


def _metrics(board: Board, a: Row, b: Row, metrics: list[str] | None) -> list[str]:
    both = [m for m in board.info if a.cells[m].n and b.cells[m].n]
    if metrics == ["all"]:
        return both
    if metrics:
        unknown = [m for m in metrics if m not in board.info]
        if unknown:
            raise VicinalError(unknown_metrics(unknown, board.info, board.suite))
        return metrics
    return [m for m in both if board.info[m].headline]


def compare(
    store: Store,
    a: str,
    b: str,
    suite: str | None = None,
    metrics: list[str] | None = None,
    resampler: Resampler | None = None,
) -> Comparison:
    """A against B (method names or row labels) on ``suite`` (optional where the store holds one suite),
    for ``metrics`` (default: the headline metrics both have; ``["all"]``: every metric both have)."""
    name = _suite(store, suite)
    board = build_boards(store, name, metrics=["all"], separate=False)[0]
    row_a, row_b = find_row(board, a), find_row(board, b)
    if row_a is row_b:
        raise VicinalError(f"{a} and {b} are the same row ({row_a.label})")
    chosen = _metrics(board, row_a, row_b, metrics)
    resampler = resampler or Resampler()
    differences = compare_sides(side(row_a), side(row_b), chosen, board.info, resampler)
    return Comparison(name, row_a, row_b, differences, resampler, board)


# ---------------------------------------------------------------- every row against the baseline


@dataclass
class BaselineComparisons:
    """Every measured row of a suite against its baseline row (the report's comparison section)."""

    baseline: Row
    metrics: list[str]
    rows: list[tuple[Row, list[Difference]]]
    resampler: Resampler
    board: Board

    @property
    def procedure(self) -> str:
        return procedure(self.resampler)

    def cell(self, d: Difference) -> str:
        """ "+1.23 [+0.40, +2.10]" at the metric's precision."""
        if d.diff != d.diff:
            return "—"
        text = signed(self.board, d.metric, d.diff)
        if d.low is not None and d.high is not None:
            text += f" [{signed(self.board, d.metric, d.low)}, {signed(self.board, d.metric, d.high)}]"
        return text

    @staticmethod
    def css(d: Difference) -> str:
        return {1: "better", -1: "worse", 0: "tie", None: "undetermined"}[d.winner]


def against_baseline(board: Board, resampler: Resampler | None = None) -> BaselineComparisons | None:
    """Each measured row against the suite's baseline (``[run] baseline``, ERM by default) on the board's
    metrics; None where the suite has no baseline row or no other row."""
    measured = [r for r in board.rows if not r.reported]
    if not measured or not measured[0].results:
        return None
    name = baseline_of(measured[0].results[0])
    candidates = [r for r in measured if r.method == name]
    if not candidates:
        return None
    base = next((r for r in candidates if r.label == name), candidates[0])
    others = [r for r in measured if r is not base]
    if not others:
        return None
    resampler = resampler or Resampler()
    rows = [(r, compare_sides(side(r), side(base), board.metrics, board.info, resampler)) for r in others]
    return BaselineComparisons(base, list(board.metrics), rows, resampler, board)


def render(comparison: Comparison, fmt: str, width: int = 160) -> str:
    """``table`` (plain text), ``markdown`` or ``json``."""
    if fmt == "table":
        return comparison.to_text(width)
    if fmt == "markdown":
        return comparison.to_markdown()
    if fmt == "json":
        return json.dumps(comparison.to_json(), indent=2, default=str) + "\n"
    raise VicinalError(f"--format {fmt!r}: choose table, markdown or json")
