"""The Jinja2 environment of vicinal's HTML (the report and ``--format html``): templates, filters and the
board helpers the templates call. Autoescaping is on, so nothing from a result file (a method called
``<script>``) can become markup.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import TYPE_CHECKING, Any

from vicinal.board.boards import Row
from vicinal.board.text import (
    board_id,
    caption,
    column_note,
    format_cell,
    header,
    marking_note,
    meta_columns,
    meta_values,
)
from vicinal.core.plots import method_colour

if TYPE_CHECKING:
    from markupsafe import Markup


def http_only(url: str | None) -> str | None:
    """A reported row's link, only if it is a web address (a ``javascript:`` URL must not be clickable)."""
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) else None


_SCALAR_LIST = re.compile(r"\[\s*\n\s*([^\[\]{}]*?)\s*\n\s*\]")


def pretty(value: Any) -> str:
    """Indented JSON with lists of scalars kept on one line (an ε grid reads better as one line)."""
    text = json.dumps(value, indent=2, sort_keys=False, default=str, ensure_ascii=False)
    return _SCALAR_LIST.sub(lambda m: "[" + re.sub(r",\s*\n\s*", ", ", m.group(1)) + "]", text)


def reported_note(row: Row) -> str:
    """A reported row's hover text: the citation, the paper's note and number of runs."""
    rep = row.reported
    parts = [f"reported by {row.citation}"]
    if rep is not None and rep.note:
        parts.append(rep.note)
    if rep is not None and rep.n:
        parts.append(f"n = {rep.n} runs")
    return "\n".join(parts)


@cache
def environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("vicinal.board", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.globals.update(
        board_id=board_id,
        column_note=column_note,
        format_cell=format_cell,
        header=header,
        marking_note=marking_note,
        meta_columns=meta_columns,
        meta_values=meta_values,
        colour=method_colour,
        reported_note=reported_note,
        http_only=http_only,
        legend=lambda board: inline_code(caption(board, "html").replace("\n", "; ")),
    )
    env.filters["pretty"] = pretty
    return env


def inline_code(text: str) -> Markup:
    """``text`` escaped, with its `backticked` spans (the legend's quoting of commands, shared with the
    terminal and Markdown) shown as code; safe markup for the templates."""
    from markupsafe import Markup, escape  # Jinja2's own markup type

    parts = str(escape(text)).split("`")
    return Markup("".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts)))


def render_template(name: str, **context: Any) -> str:
    return environment().get_template(name).render(**context)
