"""How a board's numbers, headers and legend are written — the same in every format (terminal, Markdown,
CSV, LaTeX, HTML, the report and ``vicinal compare``), so the formats agree by construction."""

from __future__ import annotations

import hashlib
import json
import math
from decimal import Decimal

from vicinal.board.boards import Board, Cell, Row, digits, scale
from vicinal.board.grouping import DUPLICATE_RULE
from vicinal.board.paired import Resampler

CAPTION = "mean ± sample std over seeds; n = seeds"
REPORTED_CAPTION = "reported rows: numbers copied from the cited paper, under its protocol; never marked best"
EVALUATED_CAPTION = (
    "evaluated rows: models given to vicinal evaluate (a checkpoint, a Python object or a RobustBench "
    "entry), measured under this suite's evaluation protocol but not trained under its recipe"
)


#: How a cell's text is marked where there is no colour (``STYLES["text"]``), padded so that marked and
#: unmarked values of a column stay aligned.
TEXT_MARKS = {"best": "**{}**", "tied": " *{}* ", "": "  {}  "}


def mark_text(text: str, mark: str) -> str:
    """A cell's text with its mark written in it, for output without colour."""
    return TEXT_MARKS[mark].format(text)


def format_cell(board: Board, metric: str, cell: Cell, pm: str = " ± ") -> str:
    """``mean ± std`` at the metric's display precision (percentages ×100); "—" for a value that was not
    measured, ``nan``/``inf`` for one that is not a finite number."""
    if cell.n == 0:
        return "—"
    if cell.non_finite:
        return str(cell.mean)
    s, d = scale(board, metric), digits(board, metric)
    text = _number(cell.mean, s, d)
    if cell.std is not None:
        text += f"{pm}{_number(cell.std, s, d)}"
    return text


def _number(value: float, s: float, d: int) -> str:
    """A value at ``d`` decimals after scaling by ``s``; beyond 10^15 (or beyond float once scaled:
    1e308 as a percentage) in scientific notation, scaled exactly, never as "inf"."""
    scaled = value * s
    if math.isfinite(scaled) and abs(scaled) < 1e15:
        return f"{scaled:.{d}f}"
    if not math.isfinite(value):
        return str(value)
    return f"{Decimal(value) * Decimal(s):.{d}e}"


def header_parts(board: Board, metric: str) -> tuple[str, str, str]:
    """(title, unit, direction arrow) of a column."""
    meta = board.info[metric]
    if metric in board.titles:  # a breakdown column: unit and direction are in the board's title
        return board.titles[metric], "", ""
    return meta.label, "%" if meta.percent else "", "↑" if meta.higher_is_better else "↓"


def header(board: Board, metric: str) -> str:
    return " ".join(p for p in header_parts(board, metric) if p)


def column_note(board: Board, metric: str) -> str:
    """What a column means and under which protocol: the HTML header's hover text."""
    meta = board.info[metric]
    parts = [f"{metric}: {meta.description or meta.label}"]
    evaluator = meta.evaluator
    if evaluator:
        protos = board.protocols.get(evaluator, [])
        if len(protos) == 1:
            parts.append(f"evaluator {evaluator}, protocol: {json.dumps(protos[0], default=str)}")
        elif protos:
            parts.append(f"evaluator {evaluator}: the protocol differs between runs (see the protocol list)")
        else:
            parts.append(f"evaluator {evaluator}")
    parts.append("higher is better" if meta.higher_is_better else "lower is better")
    return "\n".join(parts)


def signed(board: Board, metric: str, value: float) -> str:
    """A difference at the metric's display precision, with its sign."""
    return f"{value * scale(board, metric):+.{digits(board, metric)}f}"


def marking_note(board: Board, metric: str) -> str:
    """How a column's best was marked, in words (the HTML hover text of a marked value)."""
    mark = board.marking[metric]
    d = mark.difference
    if mark.rule in ("only", "non-finite"):
        return mark.note
    if mark.rule == "precision" or d is None or d.low is None or d.high is None:
        return f"best at the displayed precision; not tested for separation: {mark.note}"
    verdict = "separated from" if mark.separated else "not separated from"
    interval = f"[{signed(board, metric, d.low)}, {signed(board, metric, d.high)}]"
    return (
        f"the best is {verdict} the runner-up {mark.runner_up}: difference {signed(board, metric, d.diff)}, "
        f"{d.level:.0%} interval {interval}; {d.source}"
    )


def meta_columns(board: Board) -> list[str]:
    return ["method", "n", "epochs", "train"] + (["source"] if board.shows_source else [])


def meta_values(board: Board, row: Row) -> list[str]:
    n = "—" if row.n is None else str(row.n)
    values = [row.label, n, "—" if row.epochs is None else str(row.epochs)]
    values.append("—" if row.n_train is None else str(row.n_train))
    return values + ([row.citation or row.source] if board.shows_source else [])


#: How each format shows a best and a tied value, for its legend.
STYLES = {
    "table": ("bold green", "green"),
    # The terminal table without colour (a file, a pipe, NO_COLOR): the marks are in the text.
    "text": ("**x**", "*x*"),
    "markdown": ("bold", "italic"),
    "latex": ("bold", "italic"),
    "html": ("bold green", "green, underlined"),
    "plain": ("marked best", "marked tied"),
}


def caption(board: Board, style: str = "plain") -> str:
    """The board's legend: what the numbers are and how best values are marked (in ``style``'s words,
    one of :data:`STYLES`), one line per point."""
    best, tied = STYLES[style]
    lines = [CAPTION]
    by_rule: dict[str, list[str]] = {}
    for m in board.metrics:
        if m in board.marking:
            by_rule.setdefault(board.marking[m].rule, []).append(header(board, m))
    level = f"{Resampler().level:.0%}"
    if "interval" in by_rule:
        lines.append(
            f"{best}: the best measured value, separated from the runner-up (the {level} interval of their "
            "difference excludes 0: paired bootstrap over test examples with the seed spread, as `vicinal "
            f"compare` shows); {tied}: not separated from the best (tied)"
        )
    if "precision" in by_rule:
        where = "every column" if len(by_rule) == 1 else ", ".join(by_rule["precision"])
        lines.append(
            f"{best} in {where}: the best value at the displayed precision, not tested for separation "
            "(no per-example outcomes for the top rows: older files, or a metric without a per-example "
            "statistic)"
        )
    if "only" in by_rule:
        where = "every column" if len(by_rule) == 1 else ", ".join(by_rule["only"])
        lines.append(f"{best} in {where}: the only measured row with a value")
    if "non-finite" in by_rule:
        lines.append(
            f"no best marked in {', '.join(by_rule['non-finite'])}: a value there is not a finite number "
            "(nan or inf, shown as such; named in the warnings); — is a value that was not measured"
        )
    if board.duplicates:
        lines.append(DUPLICATE_RULE[0].upper() + DUPLICATE_RULE[1:])
    if board.selection:
        lines.append(
            "best-of: each method at its best swept setting by a validation metric (the test split never "
            "chooses): " + "; ".join(board.selection)
        )
    if board.hidden:
        lines.append(
            "latest code only (--latest): each configuration at its newest code; the rows of earlier code "
            f"of the same configurations ({len(board.hidden)} result file(s)) are left out"
        )
    if board.has_evaluated:
        lines.append(EVALUATED_CAPTION)
    if board.has_reported:
        lines.append(REPORTED_CAPTION)
    return "\n".join(lines)


def board_id(board: Board) -> str:
    """A stable HTML id for a board."""
    return "board-" + hashlib.sha1(f"{board.suite}/{board.by}/{board.family}".encode()).hexdigest()[:10]
