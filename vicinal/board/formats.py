"""The leaderboard's output formats: terminal table, Markdown, CSV, JSON, LaTeX and HTML, all rendered
from the same boards (:mod:`vicinal.board.boards`), so their numbers agree by construction.

The terminal table fits the width it gets: the method label is never cut; a board whose columns do not
fit is split into titled parts, one per group of columns its evaluators declare (accuracy & calibration,
attacks, …) and, where one group is still too wide, into numbered pieces of it. A file or pipe has no
terminal width, so the plain-text table is laid out for :data:`DEFAULT_WIDTH` unless told otherwise.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text
from tabulate import tabulate

from vicinal.board.boards import Board, Cell
from vicinal.board.text import (
    caption,
    format_cell,
    header,
    header_parts,
    mark_text,
    meta_columns,
    meta_values,
)

#: Columns of the plain-text table in a file or pipe: a screen's width, and short enough for a diff.
DEFAULT_WIDTH = 120


# ---------------------------------------------------------------- the terminal table


@dataclass
class Part:
    """One printed table of a board: some of its metric columns, under a title."""

    title: str
    metrics: list[str]
    meta: bool  # with the n / epochs / train (/ source) columns


@dataclass
class _Column:
    header: str
    cells: list[str]
    wrap: bool  # whether its values may wrap at spaces (only the citation of reported rows)

    @property
    def minimum(self) -> int:
        """The narrowest it can be without cutting a value or a header word."""
        words = [w for t in self.cells for w in (t.split() if self.wrap else [t])] + self.header.split()
        return max((cell_len(w) for w in words), default=1)

    @property
    def natural(self) -> int:
        """Its width with the header on one line."""
        return max([self.minimum, cell_len(self.header), *(cell_len(c) for c in self.cells)])


def metric_texts(board: Board, metric: str, colour: bool) -> list[str]:
    """A column's values, row by row: as formatted where colour marks the best and tied values, with the
    marks written in (:func:`vicinal.board.text.mark_text`) where there is no colour and the column has
    marks."""
    cells = [r.cells[metric] for r in board.rows]
    texts = [format_cell(board, metric, c) for c in cells]
    if colour or not any(c.mark for c in cells):
        return texts
    return [mark_text(t, c.mark) for t, c in zip(texts, cells, strict=True)]


def _columns(board: Board, metrics: list[str], meta: bool, colour: bool = True) -> list[_Column]:
    head = meta_columns(board) if meta else ["method"]
    values = [meta_values(board, r)[: len(head)] for r in board.rows]
    columns = [_Column(h, [v[i] for v in values], h == "source") for i, h in enumerate(head)]
    for m in metrics:
        columns.append(_Column(header(board, m), metric_texts(board, m, colour), False))
    return columns


def _table_width(widths: list[int]) -> int:
    """A rich table's width: the columns, one space of padding each side, and the vertical rules."""
    return sum(w + 2 for w in widths) + len(widths) + 1


def _columns_width(board: Board, metrics: list[str], meta: bool, colour: bool = True) -> int:
    return _table_width([c.minimum for c in _columns(board, metrics, meta, colour)])


def _fit(columns: list[_Column], width: int) -> list[int]:
    """Column widths: each at its minimum, then the room left spent unwrapping headers, the columns that
    need the least first (rich's own collapsing would cut values with "…" instead)."""
    widths = [c.minimum for c in columns]
    spare = width - _table_width(widths)
    for i in sorted(range(len(columns)), key=lambda i: columns[i].natural - widths[i]):
        grow = min(columns[i].natural - widths[i], max(spare, 0))
        widths[i] += grow
        spare -= grow
    return widths


def layout(board: Board, width: int, colour: bool = True) -> list[Part]:
    """The tables a board is printed as within ``width`` columns: one if it fits, else one per declared
    group of columns, a group too wide for one table cut into numbered pieces. The n / epochs / train
    columns appear in the first table only; the method label in each, whole. (Without ``colour`` the
    marks are written into the values, which widens them.)"""
    if _columns_width(board, board.metrics, True, colour) <= width:
        return [Part(board.title, list(board.metrics), True)]
    groups: dict[str, list[str]] = {}
    for m in board.metrics:
        groups.setdefault(board.group(m), []).append(m)
    parts: list[Part] = []
    for group, metrics in groups.items():
        pieces: list[list[str]] = []
        for m in metrics:
            first = not parts and len(pieces) == 1  # the last piece is the board's first table
            if pieces and _columns_width(board, [*pieces[-1], m], first, colour) <= width:
                pieces[-1].append(m)
            else:
                pieces.append([m])  # a column wider than the screen alone still gets a table
        for i, piece in enumerate(pieces):
            count = f" ({i + 1}/{len(pieces)})" if len(pieces) > 1 else ""
            title = board.title + (f" · {group}" if len(groups) > 1 else "")
            parts.append(Part(title + count, piece, not parts))
    return parts


def rich_table(
    board: Board, part: Part | None = None, width: int = DEFAULT_WIDTH, colour: bool = True
) -> Table:
    """One terminal table within ``width``: best values bold green (without ``colour``: ``**x**``, tied
    ``*x*``, as the legend then says), reported rows italic and dim after a rule."""
    part = part or Part(board.title, list(board.metrics), True)
    columns = _columns(board, part.metrics, part.meta, colour)
    # Every string is wrapped in Text: labels such as "mixup [alpha=0.4]" and names from result files
    # must print as written, never be read as rich markup.
    table = Table(title=Text(part.title))
    widths = _fit(columns, width)
    for i, (column, w) in enumerate(zip(columns, widths, strict=True)):
        table.add_column(
            Text(column.header),
            justify="left" if i == 0 else "right",
            style="bold" if i == 0 else None,
            width=w,
            overflow="fold",  # never "…": only a label wider than the whole screen could need it
        )
    n_meta = len(columns) - len(part.metrics)
    for i, row in enumerate(board.rows):
        if colour:
            cells = [
                Text(column.cells[i], style=_STYLE[row.cells[m].mark])
                for column, m in zip(columns[n_meta:], part.metrics, strict=True)
            ]
        else:
            # Right-aligned by padding to the column's width: rich strips the spaces around a value that
            # it right-aligns itself, and those keep an unmarked value under a marked one's digits.
            cells = [
                Text(" " * (w - cell_len(column.cells[i])) + column.cells[i], justify="left")
                for column, w in zip(columns[n_meta:], widths[n_meta:], strict=True)
            ]
        last_measured = not row.reported and i + 1 < len(board.rows) and board.rows[i + 1].reported
        table.add_row(
            *map(Text, meta_values(board, row)[:n_meta]),
            *cells,
            style="italic dim" if row.reported else None,
            end_section=last_measured,
        )
    return table


#: A cell's terminal style by its mark (the legend says the same: ``leaderboard.STYLES``).
_STYLE = {"best": "bold green", "tied": "green", "": ""}


def terminal_tables(board: Board, width: int, colour: bool = True) -> list[Table]:
    """The board as tables that fit ``width`` columns (see :func:`layout`)."""
    return [rich_table(board, part, width, colour) for part in layout(board, width, colour)]


def has_colour(console: Console) -> bool:
    """Whether a console shows colour: not in a file or pipe (no colour system), nor under ``NO_COLOR``
    (rich then drops the green and keeps only the bold, so a tied value would look like any other)."""
    return console.color_system is not None and not console.no_color


def print_boards(console: Console, boards: list[Board], width: int | None = None) -> None:
    """Print boards on a console's file, laid out for ``width`` (default: the console's), in colour where
    the console has colour, else with the marks written into the values (``**best**``, ``*tied*``) and
    the legend saying so. (A console prints no wider than itself, and a pipe's console is 80 wide.)"""
    width = width or console.width
    colour = has_colour(console)
    out = Console(
        file=console.file,
        width=width,
        force_terminal=console.is_terminal,
        color_system=console.color_system,  # type: ignore[arg-type]
        no_color=console.no_color,
    )
    for board in boards:
        for table in terminal_tables(board, width, colour):
            out.print(table)
        # After the board's last table, at the page's width: as that table's caption it wrapped at the
        # table's width, down to 39 columns under a narrow one.
        out.print(Text(caption(board, "table" if colour else "text")))


def render_text(boards: list[Board], width: int = DEFAULT_WIDTH) -> str:
    """The terminal table as plain text (``--format table`` into a file or pipe)."""
    buffer = io.StringIO()
    print_boards(Console(file=buffer, width=width), boards, width)
    return buffer.getvalue()


# ---------------------------------------------------------------- the other formats


def _plain_rows(board: Board) -> tuple[list[str], list[list[str]]]:
    head = meta_columns(board) + [header(board, m) for m in board.metrics]
    body = [
        meta_values(board, r) + [format_cell(board, m, r.cells[m]) for m in board.metrics] for r in board.rows
    ]
    return head, body


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", r"\|").replace("<", "&lt;").replace("*", r"\*")


def _md_mark(text: str, mark: str) -> str:
    return f"**{text}**" if mark == "best" else f"*{text}*" if mark == "tied" else text


def render_markdown(boards: list[Board]) -> str:
    parts = []
    for b in boards:
        head, _ = _plain_rows(b)
        body = []
        for row in b.rows:
            meta = [_md_escape(v) for v in meta_values(b, row)]
            if row.reported:
                meta[0] = f"*{meta[0]}*"
            cells = [_md_mark(format_cell(b, m, row.cells[m]), row.cells[m].mark) for m in b.metrics]
            body.append(meta + cells)
        table = tabulate(
            body,
            headers=[_md_escape(h) for h in head],
            tablefmt="github",
            disable_numparse=True,
            colalign=("left",) + ("right",) * (len(head) - 1),
        )
        heading = b.title.removeprefix("suite: ")
        legend = _md_escape(caption(b, "markdown")).replace("\n", "; ")
        parts.append(f"### {_md_escape(heading)}\n\n{table}\n\n{legend}\n")
    return "\n".join(parts)


def render_csv(boards: list[Board]) -> str:
    """One line per row; ``<metric>_mean``, ``_std`` and ``_n`` per metric, raw (fractions, not %)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    metrics = list(dict.fromkeys(m for b in boards for m in b.metrics))
    writer.writerow(
        ["suite", "method", "label", "run_id", "training_id", "source", "citation", "n", "epochs", "n_train"]
        + [f"{m}_{s}" for m in metrics for s in ("mean", "std", "n", "mark")]
    )
    for b in boards:
        for r in b.rows:
            values = []
            for m in metrics:
                cell = r.cells.get(m)
                present = cell is not None and cell.n > 0
                values += [
                    repr(cell.mean) if present else "",
                    repr(cell.std) if present and cell.std is not None else "",
                    cell.n if present else 0,
                    _csv_mark(b, m, cell) if present else "",
                ]
            writer.writerow(
                [
                    b.suite,
                    r.method,
                    r.label,
                    r.run_id,
                    r.training_id,
                    r.source,
                    r.citation,
                    r.n,
                    r.epochs,
                    r.n_train,
                    *values,
                ]
            )
    return out.getvalue()


def _csv_mark(board: Board, metric: str, cell: Cell) -> str:
    """A cell's mark with the rule behind a best: ``best`` (separated from the runner-up), ``tied``,
    ``best-at-precision`` (no interval for the column), ``best-only-row``, or empty."""
    rule = board.marking[metric].rule if metric in board.marking else "precision"
    if cell.best and rule != "interval":
        return "best-at-precision" if rule == "precision" else "best-only-row"
    return cell.mark


def _json_cell(board: Board, metric: str, cell: Cell) -> dict[str, Any]:
    # JSON has no nan or inf: a non-finite mean is null, and "non_finite" says which it was.
    return {
        "mean": cell.mean if cell.n and not cell.non_finite else None,
        "non_finite": str(cell.mean) if cell.non_finite else None,
        "std": cell.std,
        "n": cell.n,
        "best": cell.best,
        "tied": cell.tied,
        "mark": _csv_mark(board, metric, cell) if cell.n else "",
    }


def render_json(boards: list[Board]) -> str:
    doc = [
        {
            "suite": b.suite,
            "by": b.by,
            "family": b.family,
            "metrics": {m: info.to_json() for m, info in b.info.items()},
            "columns": b.metrics,
            "titles": b.titles,
            "protocols": b.protocols,
            "legend": caption(b),
            "selection": b.selection,
            "hidden": b.hidden,
            "marking": {m: b.marking[m].to_json() for m in b.metrics if m in b.marking},
            "rows": [
                {
                    "method": r.method,
                    "label": r.label,
                    "run_id": r.run_id,
                    "training_id": r.training_id,
                    "source": r.source,
                    "reported": r.reported.to_json() if r.reported else None,
                    "seeds": r.seeds,
                    "n": r.n,
                    "epochs": r.epochs,
                    "n_train": r.n_train,
                    "metrics": {m: _json_cell(b, m, r.cells[m]) for m in b.metrics},
                }
                for r in b.rows
            ],
        }
        for b in boards
    ]
    return json.dumps(doc, indent=2, default=str) + "\n"


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    "±": r"$\pm$",
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
    "—": "---",
    "–": "--",
    "·": r"$\cdot$",
    "×": r"$\times$",
    "∞": r"$\infty$",
    "α": r"$\alpha$",
    "β": r"$\beta$",
    "γ": r"$\gamma$",
    "ε": r"$\varepsilon$",
    "λ": r"$\lambda$",
    "μ": r"$\mu$",
    "σ": r"$\sigma$",
}
_LATEX_TABLE = str.maketrans(_LATEX_SPECIALS)


def latex_escape(text: str) -> str:
    """Text safe in a tabular cell under pdflatex: specials escaped, the symbols vicinal uses mapped."""
    return text.translate(_LATEX_TABLE)


def render_latex(boards: list[Board]) -> str:
    """One booktabs ``tabular`` per board (needs ``\\usepackage{booktabs}``); best values in bold,
    reported rows in italics below a rule."""
    parts = []
    for b in boards:
        meta = meta_columns(b)
        head = [latex_escape(h) for h in meta]
        for m in b.metrics:
            title, unit, arrow = header_parts(b, m)
            head.append(latex_escape(" ".join(p for p in (title, f"({unit})" if unit else "", arrow) if p)))
        lines = [
            f"% {latex_escape(b.title)}: {latex_escape(caption(b, 'latex').replace(chr(10), '; '))}",
            r"\begin{tabular}{l" + "r" * (len(head) - 1) + "}",
            r"\toprule",
            " & ".join(head) + r" \\",
            r"\midrule",
        ]
        for i, row in enumerate(b.rows):
            if row.reported and i > 0 and not b.rows[i - 1].reported:
                lines.append(r"\midrule")
            cells = [latex_escape(v) for v in meta_values(b, row)]
            for m in b.metrics:
                text = latex_escape(format_cell(b, m, row.cells[m]))
                mark = row.cells[m].mark
                cells.append(
                    rf"\textbf{{{text}}}" if mark == "best" else rf"\textit{{{text}}}" if mark else text
                )
            if row.reported:
                cells = [rf"\textit{{{c}}}" for c in cells]
            lines.append(" & ".join(cells) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}", ""]
        parts.append("\n".join(lines))
    return "% vicinal leaderboard: needs \\usepackage{booktabs}\n" + "\n".join(parts)


def render_html(boards: list[Board]) -> str:
    """A standalone HTML page of the boards (the same table markup as ``vicinal report``)."""
    from vicinal.board.html import render_template

    return render_template("leaderboard.html.j2", boards=boards)


#: ``--format`` name → renderer of the boards as text.
FORMATS: dict[str, Callable[[list[Board]], str]] = {
    "table": render_text,
    "markdown": render_markdown,
    "csv": render_csv,
    "json": render_json,
    "latex": render_latex,
    "html": render_html,
}
