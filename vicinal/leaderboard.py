"""Leaderboards rendered only from result files: mean ± sample std over seeds, with n."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table
from tabulate import tabulate

from vicinal.errors import VicinalError
from vicinal.relative import add_relative_metrics
from vicinal.results import Store

FORMATS = ("table", "markdown", "csv", "json")


@dataclass
class Cell:
    mean: float
    std: float | None  # sample standard deviation (n − 1); None for a single seed
    n: int


@dataclass
class Row:
    method: str
    run_id: str
    label: str
    seeds: list[int]
    epochs: int | None
    n_train: int | None
    cells: dict[str, Cell]


@dataclass
class Board:
    suite: str
    rows: list[Row]
    metrics: list[str]
    info: dict[str, dict[str, Any]] = field(default_factory=dict)


def _aggregate(values: list[float]) -> Cell:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return Cell(float("nan"), None, 0)
    return Cell(statistics.fmean(finite), statistics.stdev(finite) if len(finite) > 1 else None, len(finite))


def _settings(result: dict[str, Any]) -> dict[str, Any]:
    """The settings that tell configurations of one method apart, flattened for display."""
    flat = {k: v for k, v in result.get("method_info", {}).get("hyperparameters", {}).items()}
    flat["epochs"] = result.get("training", {}).get("epochs")
    flat["n_train"] = result.get("data", {}).get("n_train")
    for name, params in result.get("suite_spec", {}).get("evaluators", {}).items():
        flat.update({f"{name}.{k}": v for k, v in params.items()})
    return flat


def variant_labels(entries: dict[tuple[str, str], list[dict]]) -> dict[tuple[str, str], str]:
    """Row labels: the method's name, plus the settings that differ where it ran in several configurations."""
    by_method: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for key in entries:
        by_method[key[0]].append(key)
    labels = {}
    for method, keys in by_method.items():
        if len(keys) == 1:
            labels[keys[0]] = method
            continue
        settings = {key: _settings(entries[key][0]) for key in keys}
        names = sorted({k for s in settings.values() for k in s})
        differing = [
            k for k in names if len({json.dumps(s.get(k), sort_keys=True) for s in settings.values()}) > 1
        ]
        for key in keys:
            shown = ", ".join(
                f"{k}={settings[key].get(k)}" for k in differing if k not in ("epochs", "n_train")
            )
            labels[key] = f"{method} [{shown or key[1][:6]}]"
    return labels


def _with_relative_metrics(
    entries: dict[tuple[str, str], list[dict]],
) -> dict[tuple[str, str], list[dict]]:
    keys = [k for k, runs in entries.items() for _ in runs]
    derived = add_relative_metrics([r for runs in entries.values() for r in runs])
    out: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for k, r in zip(keys, derived, strict=True):
        out[k].append(r)
    return out


def build_boards(
    store: Store,
    suite: str | None = None,
    methods: list[str] | None = None,
    metrics: list[str] | None = None,
    sort: str | None = None,
) -> list[Board]:
    groups: dict[str, dict[tuple[str, str], list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in store.results:
        if suite and r["suite"] != suite:
            continue
        if methods and r["method"] not in methods:
            continue
        groups[r["suite"]][(r["method"], r["run_id"])].append(r)
    if suite and not groups:
        known = sorted({r["suite"] for r in store.results})
        raise VicinalError(
            f"no results for suite {suite!r}"
            + (f"; results exist for: {', '.join(known)}" if known else "; run `vicinal run` first")
        )
    boards = []
    for suite_name in sorted(groups):
        entries = _with_relative_metrics(groups[suite_name])
        info: dict[str, dict] = {}
        for runs in entries.values():
            for r in runs:
                for k, v in r["metric_info"].items():
                    info.setdefault(k, v)
        if metrics == ["all"]:
            shown = list(info)
        elif metrics:
            shown = metrics
        else:
            shown = [m for m, meta in info.items() if meta.get("headline", True)]
        unknown = [m for m in shown if m not in info]
        if unknown:
            raise VicinalError(
                f"unknown metric(s) {', '.join(unknown)} for suite {suite_name}; available: {', '.join(info)}"
            )
        labels = variant_labels(entries)
        rows = []
        for (method, run_id), runs in entries.items():
            label = labels[(method, run_id)]
            first = runs[0]
            rows.append(
                Row(
                    method=method,
                    run_id=run_id,
                    label=label,
                    seeds=sorted(r["seed"] for r in runs),
                    epochs=first.get("training", {}).get("epochs"),
                    n_train=first.get("data", {}).get("n_train"),
                    cells={
                        m: _aggregate([float(r["metrics"][m]) for r in runs if m in r["metrics"]])
                        for m in info
                    },
                )
            )
        key = sort or (shown[0] if shown else None)
        if key is not None:
            if key not in info:
                raise VicinalError(f"cannot sort by {key!r}: available metrics are {', '.join(info)}")
            sign = -1.0 if info[key].get("higher_is_better", True) else 1.0
            # Rows without the metric go last whatever the direction.
            rows.sort(
                key=lambda row: (sign * row.cells[key].mean if row.cells[key].n else math.inf, row.label)
            )
        boards.append(Board(suite_name, rows, shown, {m: info[m] for m in shown}))
    return boards


def _scale(board: Board, metric: str) -> float:
    return 100.0 if board.info[metric].get("percent") else 1.0


def format_cell(board: Board, metric: str, cell: Cell) -> str:
    if cell.n == 0:
        return "—"
    s = _scale(board, metric)
    digits = 2 if s == 100.0 else 4
    text = f"{cell.mean * s:.{digits}f}"
    if cell.std is not None:
        text += f" ± {cell.std * s:.{digits}f}"
    return text


def header(board: Board, metric: str) -> str:
    meta = board.info[metric]
    arrow = "↑" if meta.get("higher_is_better", True) else "↓"
    unit = " %" if meta.get("percent") else ""
    return f"{meta.get('label', metric)}{unit} {arrow}"


def _plain_rows(board: Board) -> tuple[list[str], list[list[str]]]:
    head = ["method", "n", "epochs", "train"] + [header(board, m) for m in board.metrics]
    body = [
        [r.label, str(len(r.seeds)), str(r.epochs), str(r.n_train)]
        + [format_cell(board, m, r.cells[m]) for m in board.metrics]
        for r in board.rows
    ]
    return head, body


def rich_table(board: Board) -> Table:
    head, body = _plain_rows(board)
    table = Table(title=f"suite: {board.suite}", caption="mean ± sample std over seeds; n = seeds")
    for i, h in enumerate(head):
        table.add_column(h, justify="left" if i == 0 else "right", style="bold" if i == 0 else None)
    for row in body:
        table.add_row(*row)
    return table


def render_markdown(boards: list[Board]) -> str:
    parts = []
    for b in boards:
        head, body = _plain_rows(b)
        parts.append(f"### {b.suite}\n\n" + tabulate(body, headers=head, tablefmt="github") + "\n")
    return "\n".join(parts)


def render_csv(boards: list[Board]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    metrics = list(dict.fromkeys(m for b in boards for m in b.metrics))
    writer.writerow(
        ["suite", "method", "run_id", "n", "epochs", "n_train"]
        + [f"{m}_{s}" for m in metrics for s in ("mean", "std")]
    )
    for b in boards:
        for r in b.rows:
            values = []
            for m in metrics:
                cell = r.cells.get(m)
                values += [
                    "" if cell is None or not cell.n else repr(cell.mean),
                    "" if cell is None or cell.std is None else repr(cell.std),
                ]
            writer.writerow([b.suite, r.method, r.run_id, len(r.seeds), r.epochs, r.n_train, *values])
    return out.getvalue()


def render_json(boards: list[Board]) -> str:
    doc = [
        {
            "suite": b.suite,
            "metrics": b.info,
            "rows": [
                {
                    "method": r.method,
                    "run_id": r.run_id,
                    "seeds": r.seeds,
                    "epochs": r.epochs,
                    "n_train": r.n_train,
                    "metrics": {
                        m: {
                            "mean": r.cells[m].mean if r.cells[m].n else None,
                            "std": r.cells[m].std,
                            "n": r.cells[m].n,
                        }
                        for m in b.metrics
                    },
                }
                for r in b.rows
            ],
        }
        for b in boards
    ]
    return json.dumps(doc, indent=2) + "\n"
