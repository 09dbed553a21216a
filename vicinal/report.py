"""``vicinal report``: one self-contained HTML file of the leaderboards and the figures people look at.

Everything comes from the result files (and the PNG artifacts written beside them); every image is
embedded as a base64 data URI, so the file opens anywhere without a network. Templates are Jinja2 with
autoescaping on, so nothing from a result file (a method called ``<script>``) can become markup.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

import numpy as np

from vicinal.identity import short
from vicinal.leaderboard import (
    CAPTION,
    REPORTED_CAPTION,
    Board,
    Row,
    board_id,
    build_boards,
    column_note,
    format_cell,
    header,
)
from vicinal.results import Result, Store

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


# ---------------------------------------------------------------- templates


def _http_only(url: str | None) -> str | None:
    """A reported row's link, only if it is a web address (a ``javascript:`` URL must not be clickable)."""
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) else None


_SCALAR_LIST = re.compile(r"\[\s*\n\s*([^\[\]{}]*?)\s*\n\s*\]")


def _pretty(value: Any) -> str:
    """Indented JSON with lists of scalars kept on one line (an ε grid reads better as one line)."""
    text = json.dumps(value, indent=2, sort_keys=False, default=str, ensure_ascii=False)
    return _SCALAR_LIST.sub(lambda m: "[" + re.sub(r",\s*\n\s*", ", ", m.group(1)) + "]", text)


def _reported_note(row: Row) -> str:
    rep = row.reported or {}
    parts = [f"reported by {row.citation}"]
    if rep.get("note"):
        parts.append(rep["note"])
    if rep.get("n"):
        parts.append(f"n = {rep['n']} runs")
    return "\n".join(parts)


@cache
def _environment() -> Any:
    import jinja2

    from vicinal.leaderboard import _meta_columns, _meta_values
    from vicinal.plots import method_colour

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("vicinal", "templates"),
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
        meta_columns=_meta_columns,
        meta_values=_meta_values,
        colour=method_colour,
        reported_note=_reported_note,
        http_only=_http_only,
        caption=CAPTION,
        reported_caption=REPORTED_CAPTION,
    )
    env.filters["pretty"] = _pretty
    return env


def render_template(name: str, **context: Any) -> str:
    return _environment().get_template(name).render(**context)


# ---------------------------------------------------------------- figures


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _measured(board: Board) -> list[Row]:
    return [r for r in board.rows if not r.reported]


def _linestyles(rows: list[Row]) -> dict[str, str]:
    """Configurations of one method share its colour and differ in line style."""
    from vicinal.plots import LINESTYLES

    count: dict[str, int] = {}
    styles = {}
    for row in rows:
        i = count.get(row.method, 0)
        count[row.method] = i + 1
        styles[row.label] = LINESTYLES[i % len(LINESTYLES)]
    return styles


def _family(info: dict[str, dict], by: str, family: str) -> list[str]:
    return [m for m, meta in info.items() if meta.get("by") == by and meta.get("family") == family]


def _series(rows: list[Row], metrics: list[str], xs: list[float], styles: dict[str, str]) -> list[Any]:
    """One line per row over ``metrics``, skipping rows that have none of them."""
    from vicinal.plots import Series

    out = []
    for row in rows:
        cells = [row.cells.get(m) for m in metrics]
        if not any(c is not None and c.n for c in cells):
            continue
        y = [c.mean if c is not None and c.n else float("nan") for c in cells]
        err = [c.std if c is not None and c.std is not None else float("nan") for c in cells]
        out.append(Series(row.label, row.method, xs, y, err, styles[row.label]))
    return out


def corruption_heat_map(full: Board) -> list[Figure]:
    from vicinal.plots import figure_png, heat_map

    columns = _family(full.info, "corruption", "c_acc")
    rows = _measured(full)
    if not columns or not rows:
        return []
    values = np.array(
        [[row.cells[m].mean if row.cells[m].n else np.nan for m in columns] for row in rows], dtype=float
    )
    names = [str(full.info[m].get("key", m)) for m in columns]
    fig = heat_map([r.label for r in rows], names, values, "accuracy per corruption", "accuracy")
    return [
        Figure(
            "Accuracy per corruption",
            "Mean over severities 1–5 and seeds, per method (rows) and corruption (columns).",
            _data_uri(figure_png(fig)),
            "heat map of accuracy per corruption and method",
        )
    ]


def severity_curves(full: Board) -> list[Figure]:
    from vicinal.plots import Panel, figure_png, line_panels

    rows, styles = _measured(full), _linestyles(_measured(full))
    panels = []
    for family, clean, what in (("c_acc", "acc", "accuracy"), ("c_ece", "ece", "ECE")):
        columns = _family(full.info, "severity", family)
        if not columns:
            continue
        xs = [float(full.info[m].get("key", i + 1)) for i, m in enumerate(columns)]
        ticks = [(x, str(int(x))) for x in xs]
        if clean in full.info:
            columns, xs, ticks = [clean, *columns], [0.0, *xs], [(0.0, "clean"), *ticks]
        series = _series(rows, columns, xs, styles)
        if series:
            panels.append(Panel(f"{what} versus severity", "severity", what, series, ticks, percent=True))
    if not panels:
        return []
    return [
        Figure(
            "Accuracy versus severity",
            "Mean over the corruptions at each severity (clean test split at 0); the band is ± one std over "
            "seeds.",
            _data_uri(figure_png(line_panels(panels))),
            "accuracy versus corruption severity per method",
        )
    ]


def robustness_curves(full: Board) -> list[Figure]:
    from vicinal.eps import parse_eps
    from vicinal.plots import Panel, figure_png, line_panels

    rows, styles = _measured(full), _linestyles(_measured(full))
    attacks = list(
        dict.fromkeys(
            meta["family"]
            for meta in full.info.values()
            if meta.get("by") == "eps" and meta.get("evaluator") == "adversarial" and meta.get("family")
        )
    )
    panels = []
    for attack in attacks:
        columns = sorted(_family(full.info, "eps", attack), key=lambda m: parse_eps(full.info[m]["key"]))
        labels = [str(full.info[m]["key"]) for m in columns]
        if "adv_subset_acc" in full.info:
            columns, labels = ["adv_subset_acc", *columns], ["0", *labels]
        # Evenly spaced: the radii roughly double, and on a linear axis 1/255 and 2/255 collide.
        xs = [float(i) for i in range(len(columns))]
        ticks = list(zip(xs, labels, strict=True))
        series = _series(rows, columns, xs, styles)
        norm = "L2" if "l2" in attack else "L∞"
        if series:
            panels.append(
                Panel(attack.replace("_", " "), f"ε ({norm})", "robust accuracy", series, ticks, percent=True)
            )
    if not panels:
        return []
    return [
        Figure(
            "Robust accuracy versus ε",
            "Per attack: accuracy on the seeded attacked subset at each radius (ε = 0: its clean accuracy), "
            "radii evenly spaced; the band is ± one std over seeds.",
            _data_uri(figure_png(line_panels(panels))),
            "robust accuracy versus perturbation size per attack and method",
        )
    ]


def _bar_panel(full: Board, rows: list[Row], styles: dict[str, str], metric: str, title: str) -> Any:
    """One bar per row for ``metric`` (None when no row has it)."""
    from vicinal.plots import Panel, Series

    meta = full.info[metric]
    series = [
        Series(
            r.label,
            r.method,
            [0.0],
            [r.cells[metric].mean],
            [r.cells[metric].std if r.cells[metric].std is not None else float("nan")],
            styles[r.label],
        )
        for r in rows
        if r.cells[metric].n
    ]
    return (
        Panel(title, "", meta.get("label", metric), series, [], meta.get("percent", False))
        if series
        else None
    )


def linearity_figures(full: Board) -> list[Figure]:
    from vicinal.eps import parse_eps
    from vicinal.plots import Panel, bar_panels, figure_png, line_panels

    rows, styles = _measured(full), _linestyles(_measured(full))
    figures = []
    bars = []
    gamma = sorted(_family(full.info, "eps", "lin_gamma"), key=lambda m: parse_eps(full.info[m]["key"]))
    if len(gamma) == 1:  # one radius: a bar per method says it better than a line of single points
        bars.append(_bar_panel(full, rows, styles, gamma[0], f"γ at ε = {full.info[gamma[0]]['key']}"))
    elif gamma:
        xs = [float(i) for i in range(len(gamma))]
        ticks = [(x, str(full.info[m]["key"])) for x, m in zip(xs, gamma, strict=True)]
        series = _series(rows, gamma, xs, styles)
        if series:
            panel = Panel("local linearity γ (lower = more linear)", "ε (L∞)", "γ", series, ticks)
            figures.append(
                Figure(
                    "Local linearity",
                    "γ(ε): the largest deviation of the loss from its first-order Taylor expansion within "
                    "the L∞ ball of radius ε, averaged over the seeded test subset (Qin et al. 2019).",
                    _data_uri(figure_png(line_panels([panel]))),
                    "local linearity γ versus ε per method",
                )
            )
    for metric in ("interp_logit_dev", "interp_miss"):
        if metric in full.info:
            bars.append(_bar_panel(full, rows, styles, metric, full.info[metric].get("label", metric)))
    bars = [b for b in bars if b is not None]
    if bars:
        figures.append(
            Figure(
                "Linearity" if len(gamma) == 1 else "Linearity between test inputs",
                (
                    "γ: the largest deviation of the loss from its first-order Taylor expansion within "
                    "the L∞ ball (Qin et al. 2019), lower = more linear; "
                    if len(gamma) == 1
                    else ""
                )
                + "interp dev: mean deviation of the logits from the linear interpolation of the endpoint "
                "logits, relative to their distance, along segments between test inputs of different "
                "classes (0 for a linear model); interp miss: in-between points predicted as neither class.",
                _data_uri(figure_png(bar_panels(bars))),
                "linearity measures per method",
            )
        )
    return figures


# ---------------------------------------------------------------- artifacts and metadata


def _first_result(row: Row) -> Result | None:
    return min(row.results, key=lambda r: (r.seed is None, r.seed or 0)) if row.results else None


def artifact_gallery(
    rows: list[Row], name: str, title: str, caption: str, layout: str = "gallery"
) -> Gallery | None:
    """The ``name`` artifact of each row's lowest seed, embedded; None when no row has one."""
    gallery = Gallery(title, caption, layout)
    for row in rows:
        result = _first_result(row)
        artifact = result.artifacts.get(name) if result is not None else None
        if not artifact or result is None or result.path is None:
            gallery.missing.append(row.label)
            continue
        path = result.path.parent / artifact
        try:
            png = path.read_bytes()
        except OSError:
            gallery.missing.append(f"{row.label} ({artifact} not found)")
            continue
        gallery.items.append(
            (
                row,
                Figure(f"{row.label} · seed {result.seed}", "", _data_uri(png), f"{title}: {row.label}"),
            )
        )
    return gallery if gallery.items else None


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
            spec = dict(r.suite_spec)
            spec.pop("evaluators", None)
            if spec:
                seen.setdefault(json.dumps(spec, sort_keys=True, default=str), spec)
    return list(seen.values())


# ---------------------------------------------------------------- the report


def _breakdown_boards(store: Store, suite: str) -> list[Board]:
    from vicinal.errors import VicinalError

    boards = []
    for by in ("corruption", "severity"):
        try:
            boards += build_boards(store, suite, by=by)
        except VicinalError:
            continue  # this suite has no such breakdown
    return boards


def suite_report(store: Store, suite: str, step: Callable[[str], None]) -> SuiteReport:
    board = build_boards(store, suite)[0]
    full = build_boards(store, suite, metrics=["all"])[0]
    rows = _measured(full)
    figures: list[Figure] = []
    notes: list[str] = []
    for what, draw in (
        ("heat map", corruption_heat_map),
        ("severity curves", severity_curves),
        ("robustness curves", robustness_curves),
        ("linearity", linearity_figures),
    ):
        step(f"{suite}: {what}")
        figures += draw(full)
    if not any(m.get("by") == "eps" for m in full.info.values()) and any(
        m.get("evaluator") == "adversarial" for m in full.info.values()
    ):
        notes.append(
            "These adversarial results carry no ε breakdown (written by an older vicinal): re-run "
            "`vicinal run` with the same options to re-evaluate the cached models and get the curves."
        )
    step(f"{suite}: embedded images")
    galleries = [
        g
        for g in (
            artifact_gallery(
                rows,
                "reliability",
                "Reliability diagrams",
                "Accuracy per confidence bin against the diagonal, before and after temperature scaling "
                "(the calibration evaluator's diagram of each configuration's lowest seed).",
            ),
            artifact_gallery(
                rows,
                "samples",
                "Training samples",
                "What each method trains on, from the same eight training images and pairs (fixed seed): "
                "the clean pair and the mixed sample the method makes, with VarMixup's VAE "
                "reconstructions and decoded mixes.",
                layout="stack",
            ),
        )
        if g is not None
    ]
    return SuiteReport(
        suite,
        board,
        full,
        _breakdown_boards(store, suite),
        figures,
        galleries,
        run_metadata(rows),
        _recipes(rows),
        notes,
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
    steps_per_suite = 5
    total = steps_per_suite * len(names)
    done = 0

    def step(what: str) -> None:
        nonlocal done
        if progress is not None:
            progress(what, done, total)
        done += 1

    reports = [suite_report(store, name, step) for name in names]
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
