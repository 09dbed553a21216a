"""``vicinal report``: one self-contained HTML file of the leaderboards and the figures people look at.

Everything comes from the result files (and the PNG artifacts written beside them): the figures are the
ones the evaluators declared (:class:`~vicinal.store.declarations.FigureSpec`, recorded in each result file)
and are drawn here generically from the boards, so a plugin's figure appears like a built-in one; the
galleries are the images the result files list. Every image is embedded as a base64 data URI, so the file
opens anywhere without a network.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from vicinal.board.boards import Board, Row, breakdowns_of, build_boards, clean_of, family_columns
from vicinal.board.compare import BaselineComparisons, against_baseline
from vicinal.board.html import render_template
from vicinal.board.paired import Resampler
from vicinal.core.errors import VicinalError
from vicinal.core.fingerprints import short
from vicinal.store.declarations import Artifact, FigureSpec, PanelSpec
from vicinal.store.results import Result, Store

#: Called once per unit of work with (what, done, total): the CLI drives a progress bar with it.
Progress = Callable[[str, int, int], None]


@dataclass
class Figure:
    title: str
    caption: str
    src: str  # data: URI
    alt: str


@dataclass
class Gallery:
    """One image per method row (reliability diagrams, training samples), with what was missing."""

    title: str
    caption: str
    layout: str = "gallery"  # CSS class: "gallery" (a grid) or "stack" (one per line, to compare down)
    items: list[tuple[Row, Figure]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


@dataclass
class SuiteReport:
    suite: str
    board: Board
    full: Board
    breakdowns: list[Board]
    figures: list[Figure]
    galleries: list[Gallery]
    runs: list[dict[str, Any]]
    recipes: list[dict[str, Any]]
    notes: list[str]
    #: Every measured row against the suite's baseline, with intervals (None without a baseline row).
    comparisons: BaselineComparisons | None = None


# ---------------------------------------------------------------- figures, drawn from their declarations


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _measured(board: Board) -> list[Row]:
    return [r for r in board.rows if not r.reported]


def _linestyles(rows: list[Row]) -> dict[str, str]:
    """Configurations of one method share its colour and differ in line style."""
    from vicinal.core.plots import LINESTYLES

    count: dict[str, int] = {}
    styles = {}
    for row in rows:
        i = count.get(row.method, 0)
        count[row.method] = i + 1
        styles[row.label] = LINESTYLES[i % len(LINESTYLES)]
    return styles


def _series(rows: list[Row], metrics: list[str], xs: list[float], styles: dict[str, str]) -> list[Any]:
    """One line per row over ``metrics``, skipping rows that have none of them."""
    from vicinal.core.plots import Series

    out = []
    for row in rows:
        cells = [row.cells.get(m) for m in metrics]
        if not any(c is not None and c.n for c in cells):
            continue
        y = [c.mean if c is not None and c.n else float("nan") for c in cells]
        err = [c.std if c is not None and c.std is not None else float("nan") for c in cells]
        out.append(Series(row.label, row.method, xs, y, err, styles[row.label]))
    return out


def _numbers(keys: list[str]) -> list[float] | None:
    try:
        return [float(k) for k in keys]
    except ValueError:
        return None


def _line_panel(full: Board, spec: FigureSpec, panel: PanelSpec) -> Any:
    """One panel of a line figure: the family along the axis, its clean counterpart first (at 0)."""
    from vicinal.core.plots import Panel

    columns = family_columns(full.info, spec.by, panel.family)
    if not columns:
        return None
    keys = [full.info[m].key for m in columns]
    clean = clean_of(full.info, columns)
    xs = _numbers(keys) if spec.spacing == "key" else None
    if xs is None:  # evenly spaced (also keys that are not numbers), the clean counterpart at 0
        xs = [float(i + bool(clean)) for i in range(len(keys))]
    if clean:
        axis = breakdowns_of(full.declares).get(spec.by)
        columns, keys, xs = [clean, *columns], [axis.clean if axis else "clean", *keys], [0.0, *xs]
    rows = _measured(full)
    series = _series(rows, columns, xs, _linestyles(rows))
    if not series:
        return None
    ticks = list(zip(xs, keys, strict=True))
    return Panel(panel.title, panel.xlabel, panel.ylabel, series, ticks, full.info[columns[-1]].percent)


def _lines(full: Board, spec: FigureSpec) -> bytes | None:
    from vicinal.core.plots import figure_png, line_panels

    panels = [p for p in (_line_panel(full, spec, panel) for panel in spec.panels) if p is not None]
    return figure_png(line_panels(panels)) if panels else None


def _heatmap(full: Board, spec: FigureSpec) -> bytes | None:
    from vicinal.core.plots import figure_png, heat_map

    panel = spec.panels[0]
    columns, rows = family_columns(full.info, spec.by, panel.family), _measured(full)
    if not columns or not rows:
        return None
    values = np.array(
        [[row.cells[m].mean if row.cells[m].n else np.nan for m in columns] for row in rows], dtype=float
    )
    names = [full.info[m].key for m in columns]
    percent = full.info[columns[0]].percent
    fig = heat_map([r.label for r in rows], names, values, panel.title, panel.ylabel, percent=percent)
    return figure_png(fig)


def _bars(full: Board, spec: FigureSpec) -> bytes | None:
    from vicinal.core.plots import Panel, Series, bar_panels, figure_png

    rows = _measured(full)
    styles = _linestyles(rows)
    panels = []
    for panel in spec.panels:
        meta = full.info.get(panel.metric)
        if meta is None:
            continue
        series = [
            Series(
                r.label,
                r.method,
                [0.0],
                [r.cells[panel.metric].mean],
                [r.cells[panel.metric].std if r.cells[panel.metric].std is not None else float("nan")],
                styles[r.label],
            )
            for r in rows
            if r.cells[panel.metric].n
        ]
        if series:
            panels.append(
                Panel(panel.title, panel.xlabel, panel.ylabel or meta.label, series, [], meta.percent)
            )
    return figure_png(bar_panels(panels)) if panels else None


#: How each kind of declared figure is drawn; None when the boards hold nothing to draw.
DRAW: dict[str, Callable[[Board, FigureSpec], bytes | None]] = {
    "lines": _lines,
    "heatmap": _heatmap,
    "bars": _bars,
}


def declared_figures(full: Board) -> list[FigureSpec]:
    """Every figure the suite's result files declare, once, in the evaluators' order."""
    return list(dict.fromkeys(f for d in full.declares.values() for f in d.figures))


def draw_figure(full: Board, spec: FigureSpec) -> Figure | None:
    png = DRAW[spec.kind](full, spec)
    if png is None:
        return None
    return Figure(spec.title, spec.caption, _data_uri(png), spec.alt or spec.title)


# ---------------------------------------------------------------- artifacts and metadata


def _first_result(row: Row) -> Result | None:
    return min(row.results, key=lambda r: (r.seed is None, r.seed or 0)) if row.results else None


def artifact_galleries(rows: list[Row]) -> list[Gallery]:
    """One gallery per image the result files list (in the order they first appear), each row's from
    its lowest seed, under the title and caption recorded with it."""
    described: dict[str, Artifact] = {}
    for row in rows:
        result = _first_result(row)
        for name, artifact in (result.artifacts if result is not None else {}).items():
            if artifact.kind == "image":  # data files (per-example outcomes) are read, not shown
                described.setdefault(name, artifact)
    galleries = []
    for name, spec in described.items():
        gallery = Gallery(spec.title, spec.caption, spec.layout)
        for row in rows:
            result = _first_result(row)
            artifact = result.artifacts.get(name) if result is not None else None
            if artifact is None or result is None or result.path is None:
                gallery.missing.append(row.label)
                continue
            try:
                png = (result.path.parent / artifact.file).read_bytes()
            except OSError:
                gallery.missing.append(f"{row.label} ({artifact.file} not found)")
                continue
            title = f"{row.label} · seed {result.seed}"
            gallery.items.append((row, Figure(title, "", _data_uri(png), f"{spec.title}: {row.label}")))
        if gallery.items:
            galleries.append(gallery)
    return galleries


def _short_commit(commit: str | None) -> str:
    """12 hex digits, keeping the ``+dirty`` mark: a run from uncommitted code must say so."""
    if not commit:
        return ""
    return commit[:12] + ("+dirty" if commit.endswith("+dirty") else "")


def run_metadata(rows: list[Row]) -> list[dict[str, Any]]:
    """One line per seed of each measured row (its newest file): identity, versions, device, times."""
    out = []
    for row in rows:
        for r in row.results:
            env = r.environment
            versions = env.get("versions", {})
            device = env.get("device", {})
            code = env.get("code", {})
            out.append(
                {
                    "label": row.label,
                    "method": row.method,
                    "seed": r.seed,
                    "run_id": r.run_id[:12],
                    "training_id": r.training_id[:12],
                    "config_hash": r.config_hash[:12],
                    "created": r.created,
                    "device": " ".join(str(v) for v in (device.get("type"), device.get("name")) if v),
                    "versions": ", ".join(f"{k} {v}" for k, v in versions.items() if v),
                    "git_commit": _short_commit(env.get("git_commit")),
                    "code": ", ".join(f"{k} {short(v)}" for k, v in code.items() if isinstance(v, dict)),
                    "timing": r.timing,
                    "images_per_second": r.training.get("images_per_second"),
                    "deterministic": env.get("deterministic"),
                    "file": r.path.name if r.path else "",
                }
            )
    return sorted(out, key=lambda m: (m["label"], m["seed"] if m["seed"] is not None else -1))


def _recipes(rows: list[Row]) -> list[dict[str, Any]]:
    seen: dict[str, dict] = {}
    for row in rows:
        for r in row.results:
            if r.evaluated is not None:  # not trained under a recipe: its origin is in the result file
                continue
            spec = dict(r.suite_spec)
            spec.pop("evaluators", None)
            if spec:
                seen.setdefault(json.dumps(spec, sort_keys=True, default=str), spec)
    return list(seen.values())


# ---------------------------------------------------------------- the report


@dataclass
class _Plan:
    """A suite's boards, built before any figure is drawn (so that the progress bar knows the total)."""

    suite: str
    board: Board
    full: Board
    breakdowns: list[Board]
    figures: list[FigureSpec]
    resampler: Resampler


def _plan(store: Store, suite: str, resampler: Resampler) -> _Plan:
    board = build_boards(store, suite, resampler=resampler)[0]
    full = build_boards(store, suite, metrics=["all"], resampler=resampler)[0]
    breakdowns = []
    for axis in breakdowns_of(full.declares):
        try:
            breakdowns += build_boards(store, suite, by=axis, resampler=resampler)
        except VicinalError:
            continue  # declared, but this suite holds none of its default family
    return _Plan(suite, board, full, breakdowns, declared_figures(full), resampler)


def suite_report(plan: _Plan, step: Callable[[str], None]) -> SuiteReport:
    rows = _measured(plan.full)
    figures: list[Figure] = []
    for spec in plan.figures:
        step(f"{plan.suite}: {spec.title}")
        figure = draw_figure(plan.full, spec)
        if figure is not None:
            figures.append(figure)
    notes = []
    undeclared = sum(not r.declares for row in rows for r in row.results)
    if undeclared:
        notes.append(
            f"{undeclared} result file(s) here declare no breakdowns or figures (written by an older "
            "vicinal): re-run `vicinal run` with the same options to re-evaluate the cached models and "
            "get them."
        )
    step(f"{plan.suite}: comparisons with the baseline")
    comparisons = against_baseline(plan.board, plan.resampler)
    step(f"{plan.suite}: embedded images")
    return SuiteReport(
        plan.suite,
        plan.board,
        plan.full,
        plan.breakdowns,
        figures,
        artifact_galleries(rows),
        run_metadata(rows),
        _recipes(rows),
        notes,
        comparisons,
    )


def build_report(
    store: Store,
    suites: list[str] | None = None,
    *,
    source: str = "",
    progress: Progress | None = None,
) -> str:
    """The report's HTML for ``suites`` (default: every suite with results)."""
    names = suites or sorted({r.suite for r in store.results})
    resampler = Resampler()  # one, so that the boards and comparisons read each per-example file once
    plans = [_plan(store, name, resampler) for name in names]
    total = sum(len(p.figures) + 2 for p in plans)
    done = 0

    def step(what: str) -> None:
        nonlocal done
        if progress is not None:
            progress(what, done, total)
        done += 1

    reports = [suite_report(plan, step) for plan in plans]
    if progress is not None:
        progress("done", total, total)
    from importlib.metadata import PackageNotFoundError, version

    try:
        vicinal_version = version("vicinal")
    except PackageNotFoundError:
        vicinal_version = "unknown"
    return render_template(
        "report.html.j2",
        reports=reports,
        generated=datetime.now(UTC).isoformat(timespec="seconds"),
        source=source,
        n_files=len(store.results),
        skipped=store.skipped,
        version=vicinal_version,
    )
