"""``vicinal metrics [SUITE] [PATTERN]``: the metric keys a results folder's boards can show, grouped by
the evaluator that reports them, with their descriptions: what ``vicinal leaderboard --metrics``,
``--sort`` and ``vicinal compare --metrics`` accept.

Read from the result files alone (the declarations each file carries, plus the metrics derived across a
suite such as mCE), like the leaderboard: nothing here imports torch or an evaluator, and the list is
exactly what those options accept for that folder.
"""

from __future__ import annotations

import fnmatch
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from vicinal.cli.console import console
from vicinal.cli.options import PluginOpt, ResultsOpt, load_plugins, require_results
from vicinal.core.errors import VicinalError

#: The group of metrics no evaluator reports: derived across a suite's results by the boards.
DERIVED = "derived across the suite's results"


def _matches(pattern: str, name: str) -> bool:
    # As `vicinal methods`: a plain word matches as a substring, a shell pattern as written.
    if not any(c in pattern for c in "*?["):
        return pattern in name
    return fnmatch.fnmatchcase(name, pattern)


def metrics_cmd(
    suite: Annotated[
        str | None,
        typer.Argument(help="a suite with results [default: every suite]; or a PATTERN when given alone"),
    ] = None,
    pattern: Annotated[
        str | None, typer.Argument(help="shell-style filter of the keys, e.g. 'c_acc/*' or a word: 'pgd'")
    ] = None,
    results: ResultsOpt = None,
    plugin: PluginOpt = None,
) -> None:
    """List the metric keys of the result files by evaluator, with what each means (what --metrics takes)."""
    from vicinal.board.boards import available_metrics

    load_plugins(plugin)  # derivations that plugins declare
    _, store = require_results(results)
    catalogue = available_metrics(store)
    if suite is not None and suite not in catalogue:
        if pattern is None and any(_matches(suite, m) for info in catalogue.values() for m in info):
            suite, pattern = None, suite  # `vicinal metrics pgd`: one argument that is no suite filters
        else:
            raise VicinalError(
                f"no results for suite {suite!r} and no metric matches it; suites with results: "
                f"{', '.join(catalogue)}"
            )
    shown = 0
    for name, info in catalogue.items():
        if suite is not None and name != suite:
            continue
        keys = [k for k in info if pattern is None or _matches(pattern, k)]
        if not keys:
            continue
        groups: dict[str, list[str]] = {}
        for k in keys:
            groups.setdefault(info[k].evaluator or DERIVED, []).append(k)
        for evaluator, members in groups.items():
            title = f"suite {name} · {evaluator if evaluator == DERIVED else f'evaluator {evaluator}'}"
            table = Table(title=escape(title), title_justify="left")
            for col in ("metric", "column", "default", "meaning"):
                table.add_column(col, style="bold" if col == "metric" else None, overflow="fold")
            for k in members:
                meta = info[k]
                # As the board's header writes it: label, unit, the better direction.
                column = f"{meta.label}{' %' if meta.percent else ''} {'↑' if meta.higher_is_better else '↓'}"
                table.add_row(
                    escape(k), escape(column), "✓" if meta.headline else "", escape(meta.description or "")
                )
            console.print(table)
        shown += len(keys)
    if not shown:
        where = f" of suite {suite}" if suite else ""
        listing = f"vicinal metrics {suite}" if suite else "vicinal metrics"
        raise VicinalError(f"no metric{where} matches {pattern!r}; `{listing}` lists them all")
    console.print(
        escape(
            f"{shown} metric(s); ✓: a default column of the leaderboard. Show others with `vicinal "
            "leaderboard --metrics a,b` (or all), rank with --sort METRIC"
        ),
        style="dim",
    )
