"""``vicinal report``: one self-contained HTML file of the boards, protocols and figures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from vicinal.cli.console import console, err_console
from vicinal.cli.options import (
    PluginOpt,
    QuietOpt,
    ResultsOpt,
    csv_list,
    load_plugins,
    path_of,
    require_results,
)
from vicinal.core.errors import VicinalError


def report_cmd(
    out: Annotated[Path, typer.Option(parser=path_of("--out"), help="the HTML file to write")] = Path(
        "report.html"
    ),
    suite: Annotated[
        str | None, typer.Option(help="comma-separated suites [default: every suite with results]")
    ] = None,
    results: ResultsOpt = None,
    quiet: QuietOpt = False,
    plugin: PluginOpt = None,
) -> None:
    """Write one self-contained HTML report: leaderboards, protocols, figures, run metadata."""
    import time

    from vicinal.board.report import build_report
    from vicinal.core.io import atomic_write_text, probe_output_file

    load_plugins(plugin)  # derivations that plugins declare
    probe_output_file(out)
    results_dir, store = require_results(results)
    suites = csv_list(suite, "--suite")
    known = sorted({r.suite for r in store.results})
    unknown = [s for s in suites or [] if s not in known]
    if unknown:
        raise VicinalError(
            f"no results for suite(s) {', '.join(unknown)}; results exist for: {', '.join(known)}"
        )
    # The bar appears only once rendering has taken a second: a small report should just print its path.
    bar = Progress(
        TextColumn("[bold]report"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        console=err_console,
        transient=True,
        disable=quiet,
    )
    task = bar.add_task("", total=None)
    start = time.perf_counter()

    def progress(what: str, done: int, total: int) -> None:
        if not bar.live.is_started and time.perf_counter() - start > 1.0:
            bar.start()
        bar.update(task, description=escape(what), completed=done, total=total)

    try:
        html = build_report(store, suites, source=str(results_dir), progress=progress)
    finally:
        bar.stop()
    atomic_write_text(out, html)
    console.print(f"wrote {escape(str(out))} ({len(html) / 1e6:.1f} MB, {len(store.results)} result files)")
