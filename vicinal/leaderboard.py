"""Leaderboards rendered only from result files: mean ± sample std over seeds, with n.

A :class:`Board` is one suite's table; every output format (``FORMATS``) renders the same boards, so the
numbers agree between formats by construction. The best value per column is marked among the measured
rows; rows reported by a paper (result files with a ``"reported"`` block) are shown after them, marked as
reported, and never marked best: their protocol is the paper's, not the suite's.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text
from tabulate import tabulate

from vicinal.errors import VicinalError
from vicinal.identity import short
from vicinal.relative import add_relative_metrics
from vicinal.results import Result, Store

#: Breakdowns for ``--by``: the family shown when ``--metrics`` names none, and the hint when a suite has
#: no such metrics.
BREAKDOWNS: dict[str, tuple[str, str]] = {
    "corruption": ("c_acc", "run the corruption evaluator (a -c suite)"),
    "severity": ("c_acc", "run the corruption evaluator (a -c suite)"),
    "eps": ("pgd_linf", "run the adversarial evaluator"),
}
#: The unperturbed counterpart shown as the first column of a breakdown (severity 0, ε = 0).
CLEAN_COLUMN: dict[str, dict[str, str]] = {
    "severity": {"c_acc": "acc", "c_ece": "ece"},
    "eps": {a: "adv_subset_acc" for a in ("fgsm", "pgd_linf", "pgd_l2", "autoattack")},
}
CAPTION = "mean ± sample std over seeds; n = seeds; best measured value per column in bold"
REPORTED_CAPTION = "reported rows: numbers copied from the cited paper, under its protocol; never marked best"


@dataclass
class Cell:
    mean: float
    std: float | None  # sample standard deviation (n − 1); None for a single seed
    n: int  # values averaged; 0 = the row has no such metric
    best: bool = False


@dataclass
class Row:
    method: str
    run_id: str
    label: str
    seeds: list[int]
    epochs: int | None
    n_train: int | None
    cells: dict[str, Cell]
    #: The citation block of a row reported by a paper; None for measured rows.
    reported: dict[str, Any] | None = None
    #: Every result file behind the row (a seed can have several: the same model evaluated again).
    paths: list[str] = field(default_factory=list)
    #: One result per seed, the metrics of a seed's files merged (what the cells aggregate).
    results: list[Result] = field(default_factory=list)
    training_id: str = ""

    @property
    def source(self) -> str:
        return "reported" if self.reported else "measured"

    @property
    def n(self) -> int | None:
        """Seeds behind the row: the paper's count for a reported row (None when it does not say)."""
        return self.reported.get("n") if self.reported else len(self.seeds)

    @property
    def citation(self) -> str:
        if not self.reported:
            return ""
        table = self.reported.get("table")
        return self.reported["citation"] + (f", {table}" if table else "")


@dataclass
class Board:
    suite: str
    rows: list[Row]
    metrics: list[str]
    info: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Short column titles that replace the metric's label (breakdown boards: "fog", "s3", "8/255").
    titles: dict[str, str] = field(default_factory=dict)
    #: ``--by`` breakdown and family, when this board is one.
    by: str | None = None
    family: str | None = None
    #: Per evaluator, the distinct protocol dicts found in the suite's measured result files.
    protocols: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def has_reported(self) -> bool:
        return any(r.reported for r in self.rows)

    @property
    def title(self) -> str:
        if not self.by:
            return f"suite: {self.suite}"
        # The columns of a breakdown share one unit and direction: say it once, here.
        first = self.info[self.metrics[-1]] if self.metrics else {}
        what = self.info.get(self.family or "", {}).get("label", self.family)
        unit = "%, " if first.get("percent") else ""
        arrow = "↑" if first.get("higher_is_better", True) else "↓"
        return f"suite: {self.suite} · {what} by {self.by} ({unit}{arrow})"


def _aggregate(values: list[float]) -> Cell:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return Cell(float("nan"), None, 0)
    return Cell(statistics.fmean(finite), sample_std(finite) if len(finite) > 1 else None, len(finite))


def sample_std(values: list[float]) -> float:
    """The sample standard deviation (n − 1) in floating point: ``statistics.stdev`` computes in exact
    fractions, which cost most of a 10,000-file leaderboard; this agrees with it to ~1e-15 (two passes
    with ``math.fsum``, and the first-order correction for the rounding of the mean)."""
    n = len(values)
    mean = math.fsum(values) / n
    deviations = [v - mean for v in values]
    ss = math.fsum(d * d for d in deviations) - math.fsum(deviations) ** 2 / n
    return math.sqrt(max(ss, 0.0) / (n - 1))


def _settings(result: Result) -> dict[str, Any]:
    """What tells configurations of one method apart, flattened for display: hyperparameters, training
    settings, evaluator settings, and the code that made the numbers."""
    flat: dict[str, Any] = dict(result.method_info.get("hyperparameters", {}))
    spec = result.suite_spec
    for key in ("model", "limit_train", "validation", "eval_batch_size"):
        if key in spec:
            flat[key] = spec[key]
    flat.update({f"train.{k}": v for k, v in spec.get("recipe", {}).items()})
    for name, params in spec.get("evaluators", {}).items():
        flat.update({f"{name}.{k}": v for k, v in params.items()})
    code = result.environment.get("code", {})
    if code.get("vicinal"):
        flat["vicinal"] = code["vicinal"]
    for part in ("method", "model", "dataset", "training"):
        if part in code:
            flat[f"{part} code"] = short(code[part])
    for name, proto in result.protocol.items():
        if isinstance(proto.get("code"), dict):
            flat[f"{name} code"] = short(proto["code"])
    return flat


def variant_labels(rows: dict[RowKey, list[Result]]) -> dict[RowKey, str]:
    """Row labels: the method's name, plus the settings that differ where it ran in several configurations.
    A setting only some rows have (an evaluator that others did not run) does not tell rows apart."""
    by_method: dict[str, list[RowKey]] = defaultdict(list)
    for key in rows:
        by_method[key[0]].append(key)
    labels = {}
    for method, keys in by_method.items():
        if len(keys) == 1:
            labels[keys[0]] = method
            continue
        settings = {key: _settings(rows[key][-1]) for key in keys}
        names = sorted({k for s in settings.values() for k in s})
        differing = [
            k
            for k in names
            if k not in ("epochs", "n_train")
            and len({json.dumps(s[k], sort_keys=True, default=str) for s in settings.values() if k in s}) > 1
        ]
        for key in keys:
            shown = ", ".join(
                (f"{k} {settings[key][k]}" if k.endswith(" code") else f"{k}={settings[key][k]}")
                for k in differing
                if k in settings[key]
            )
            labels[key] = f"{method} [{shown or 'run ' + key[1][:6]}]"
    return labels


#: A row: (method, training_id, index of its evaluator-protocol group).
RowKey = tuple[str, str, int]


_KEY_ENCODER = json.JSONEncoder(sort_keys=True, default=str)  # one encoder, not one per call (json.dumps)


def _protocol_key(proto: dict[str, Any]) -> str:
    return _KEY_ENCODER.encode(proto)


def group_rows(results: list[Result]) -> tuple[dict[RowKey, list[Result]], dict[RowKey, list[str]]]:
    """Measured results grouped into leaderboard rows, one result per seed in each.

    A row is one trained configuration (method, ``training_id``: settings, data and code) evaluated under
    one protocol. Files that ran different sets of evaluators on the same configuration join one row (an
    evaluator added later adds columns, it does not split the method); they split only where an evaluator
    they share was configured or coded differently. Where a seed has several files in a row, their metrics
    are merged, the newest file winning a metric both have (same protocol, so the same number up to GPU
    nondeterminism). Returns the rows' merged per-seed results and, per row, every file behind it.
    """
    clusters: dict[tuple[str, str], list[tuple[dict[str, str], list[Result]]]] = defaultdict(list)
    keys: dict[int, str] = {}  # by id: results read through the result index share their protocol dicts
    for r in sorted(results, key=lambda r: (r.created, str(r.path))):
        protos = {
            name: keys.get(id(p)) or keys.setdefault(id(p), _protocol_key(p))
            for name, p in r.protocol.items()
        }
        for seen, members in clusters[(r.method, r.training_id)]:
            if all(seen[n] == k for n, k in protos.items() if n in seen):
                seen.update(protos)
                members.append(r)
                break
        else:
            clusters[(r.method, r.training_id)].append((dict(protos), [r]))
    rows: dict[RowKey, list[Result]] = {}
    paths: dict[RowKey, list[str]] = {}
    for (method, training_id), groups in clusters.items():
        for i, (_, members) in enumerate(groups):
            per_seed: dict[int | None, Result] = {}
            for r in members:  # oldest first: newer files win
                old = per_seed.get(r.seed)
                per_seed[r.seed] = r if old is None else _merge(old, r)
            key = (method, training_id, i)
            rows[key] = [per_seed[k] for k in sorted(per_seed, key=lambda s: s or 0)]
            paths[key] = sorted(str(r.path) for r in members if r.path is not None)
    return rows, paths


def _with_relative_metrics(rows: dict[RowKey, list[Result]]) -> dict[RowKey, list[Result]]:
    keys = [k for k, runs in rows.items() for _ in runs]
    derived = add_relative_metrics([r for runs in rows.values() for r in runs])
    out: dict[RowKey, list[Result]] = defaultdict(list)
    for k, r in zip(keys, derived, strict=True):
        out[k].append(r)
    return out


def _merge(old: Result, new: Result) -> Result:
    return dataclasses.replace(
        new,
        metrics={**old.metrics, **new.metrics},
        metric_info={**old.metric_info, **new.metric_info},
        protocol={**old.protocol, **new.protocol},
        artifacts={**old.artifacts, **new.artifacts},
    )


def _protocols(rows: dict[RowKey, list[Result]]) -> dict[str, list[dict[str, Any]]]:
    seen: dict[str, dict[str, dict]] = defaultdict(dict)
    keys: dict[int, str] = {}
    for runs in rows.values():
        for r in runs:
            for name, proto in r.protocol.items():
                key = keys.get(id(proto)) or keys.setdefault(id(proto), _protocol_key(proto))
                seen[name].setdefault(key, proto)
    return {name: list(protos.values()) for name, protos in seen.items()}


def _breakdown_columns(
    suite: str, info: dict[str, dict], by: str, metrics: list[str] | None
) -> tuple[str, list[str], dict[str, str]] | None:
    """(family, columns, titles) of a ``--by`` board; None when the suite has no such metrics."""
    if by not in BREAKDOWNS:
        raise VicinalError(f"--by {by!r}: choose one of {', '.join(BREAKDOWNS)}")
    default_family = BREAKDOWNS[by][0]
    if metrics and len(metrics) > 1:
        raise VicinalError(f"with --by, --metrics names one family (e.g. {default_family}), not a list")
    family = metrics[0] if metrics else default_family
    families = list(dict.fromkeys(m.get("family", "") for m in info.values() if m.get("by") == by))
    if not families:
        return None
    columns = [k for k, m in info.items() if m.get("by") == by and m.get("family") == family]
    if not columns:
        raise VicinalError(
            f"no per-{by} metrics of family {family!r} in suite {suite}; available: {', '.join(families)}"
        )
    prefix = {"severity": "s", "eps": "ε="}.get(by, "")
    titles = {k: f"{prefix}{info[k].get('key')}" for k in columns}
    clean = CLEAN_COLUMN.get(by, {}).get(family)
    if clean in info:
        columns.insert(0, clean)
        titles[clean] = "clean" if by == "severity" else "ε=0"
    if family in info and family not in columns:
        columns.append(family)  # the family's own aggregate (e.g. the mean over corruptions)
    return family, columns, titles


def _mark_best(board: Board) -> None:
    """Bold the best measured value per column; ties at the displayed precision are all best."""
    measured = [r for r in board.rows if not r.reported]
    for m in board.metrics:
        sign = 1.0 if board.info[m].get("higher_is_better", True) else -1.0
        shown = [(round(sign * r.cells[m].mean * _scale(board, m), _digits(board, m)), r) for r in measured]
        shown = [(v, r) for v, r in shown if r.cells[m].n]
        if not shown:
            continue
        top = max(v for v, _ in shown)
        for v, r in shown:
            r.cells[m].best = v == top


def _reported_row(method: str, run_id: str, runs: list[Result], info: dict[str, dict]) -> Row:
    r = runs[0]
    rep = r.reported or {}
    std = rep.get("std", {})
    cells = {}
    for m in info:
        if m in r.metrics:
            cells[m] = Cell(float(r.metrics[m]), std.get(m), int(rep.get("n") or 1))
        else:
            cells[m] = Cell(float("nan"), None, 0)
    return Row(
        method=method,
        run_id=run_id,
        label=f"{method} (reported)",
        seeds=[],
        epochs=r.epochs,
        n_train=r.n_train,
        cells=cells,
        reported=rep,
        paths=[str(x.path or "") for x in runs],
        results=runs,
        training_id=r.training_id,
    )


def build_boards(
    store: Store,
    suite: str | None = None,
    methods: list[str] | None = None,
    metrics: list[str] | None = None,
    sort: str | None = None,
    by: str | None = None,
) -> list[Board]:
    """One board per suite (only ``suite`` if given): rows per (method, run_id), measured ones ranked by
    ``sort`` (default: the first shown column), reported ones after them. ``by`` makes breakdown boards
    whose columns are one metric family per corruption, severity or ε."""
    suites: dict[str, list[Result]] = defaultdict(list)
    for r in store.results:
        if not suite or r.suite == suite:
            suites[r.suite].append(r)
    if suite and not suites:
        known = sorted({r.suite for r in store.results})
        raise VicinalError(
            f"no results for suite {suite!r}"
            + (f"; results exist for: {', '.join(known)}" if known else "; run `vicinal run` first")
        )
    boards = []
    for suite_name in sorted(suites):
        reported: dict[tuple[str, str], list[Result]] = defaultdict(list)
        for r in suites[suite_name]:
            if r.is_reported:
                reported[(r.method, r.run_id)].append(r)
        measured, sources = group_rows([r for r in suites[suite_name] if not r.is_reported])
        # Relative metrics (mCE) are normalised by the suite's baseline rows, so they are derived before the
        # method filter and from measured rows only: a paper's ERM is not this suite's baseline.
        measured = _with_relative_metrics(measured)
        if methods:
            measured = {k: v for k, v in measured.items() if k[0] in methods}
            reported = {k: v for k, v in reported.items() if k[0] in methods}
        if not measured and not reported:
            continue
        info: dict[str, dict] = {}
        for group in (measured, reported):
            for runs in group.values():
                for r in runs:
                    for k, v in r.metric_info.items():
                        info.setdefault(k, v)
        titles: dict[str, str] = {}
        family = None
        if by:
            found = _breakdown_columns(suite_name, info, by, metrics)
            if found is None:
                if suite:
                    raise VicinalError(f"no per-{by} metrics in suite {suite_name}; {BREAKDOWNS[by][1]}")
                continue
            family, shown, titles = found
        elif metrics == ["all"]:
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
        labels = variant_labels(measured)
        rows = []
        for key, runs in measured.items():
            method, training_id, _ = key
            newest = max(runs, key=lambda r: r.created)
            rows.append(
                Row(
                    method=method,
                    run_id=newest.run_id,
                    label=labels[key],
                    seeds=sorted(r.seed for r in runs if r.seed is not None),
                    epochs=newest.epochs,
                    n_train=newest.n_train,
                    cells={
                        m: _aggregate([float(r.metrics[m]) for r in runs if m in r.metrics]) for m in info
                    },
                    paths=sources[key],
                    results=runs,
                    training_id=training_id,
                )
            )
        extra = [_reported_row(method, run_id, runs, info) for (method, run_id), runs in reported.items()]
        if by:  # a breakdown ranks by its family's aggregate, else by its last (hardest) column
            default_key: str | None = family if family in info else shown[-1]
        else:
            default_key = shown[0] if shown else None
        key = sort or default_key
        if key is not None:
            if key not in info:
                raise VicinalError(f"cannot sort by {key!r}: available metrics are {', '.join(info)}")
            sign = -1.0 if info[key].get("higher_is_better", True) else 1.0

            def order(row: Row, key: str = key, sign: float = sign) -> tuple[float, str]:
                # Rows without the metric go last whatever the direction.
                return (sign * row.cells[key].mean if row.cells[key].n else math.inf, row.label)

            rows.sort(key=order)
            extra.sort(key=order)
        board = Board(
            suite_name,
            rows + extra,
            shown,
            {m: info[m] for m in shown},
            titles,
            by,
            family,
            _protocols(measured),
        )
        _mark_best(board)
        boards.append(board)
    if by and not boards:
        where = f"suite {suite}" if suite else "any suite"
        raise VicinalError(f"no per-{by} metrics in {where}; {BREAKDOWNS[by][1]}")
    if methods and not boards:
        known = sorted({r.method for rs in suites.values() for r in rs})
        raise VicinalError(
            f"no results for method(s) {', '.join(methods)}; results exist for: {', '.join(known)}"
        )
    return boards


# ---------------------------------------------------------------- cells and headers


def _scale(board: Board, metric: str) -> float:
    return 100.0 if board.info[metric].get("percent") else 1.0


def _digits(board: Board, metric: str) -> int:
    return 2 if _scale(board, metric) == 100.0 else 4


def format_cell(board: Board, metric: str, cell: Cell, pm: str = " ± ") -> str:
    """``mean ± std`` at the metric's display precision (percentages ×100); "—" for a missing value."""
    if cell.n == 0:
        return "—"
    s, digits = _scale(board, metric), _digits(board, metric)
    text = f"{cell.mean * s:.{digits}f}"
    if cell.std is not None:
        text += f"{pm}{cell.std * s:.{digits}f}"
    return text


def header_parts(board: Board, metric: str) -> tuple[str, str, str]:
    """(title, unit, direction arrow) of a column."""
    meta = board.info[metric]
    if metric in board.titles:  # a breakdown column: unit and direction are in the board's title
        return board.titles[metric], "", ""
    return (
        meta.get("label", metric),
        "%" if meta.get("percent") else "",
        ("↑" if meta.get("higher_is_better", True) else "↓"),
    )


def header(board: Board, metric: str) -> str:
    return " ".join(p for p in header_parts(board, metric) if p)


def column_note(board: Board, metric: str) -> str:
    """What a column means and under which protocol: the HTML header's hover text."""
    meta = board.info[metric]
    parts = [f"{metric}: {meta.get('description') or meta.get('label', metric)}"]
    evaluator = meta.get("evaluator")
    if evaluator:
        protos = board.protocols.get(evaluator, [])
        if len(protos) == 1:
            parts.append(f"evaluator {evaluator}, protocol: {json.dumps(protos[0], default=str)}")
        elif protos:
            parts.append(f"evaluator {evaluator}: the protocol differs between runs (see the protocol list)")
        else:
            parts.append(f"evaluator {evaluator}")
    parts.append("higher is better" if meta.get("higher_is_better", True) else "lower is better")
    return "\n".join(parts)


def _meta_columns(board: Board) -> list[str]:
    return ["method", "n", "epochs", "train"] + (["source"] if board.has_reported else [])


def _meta_values(board: Board, row: Row) -> list[str]:
    n = "—" if row.n is None else str(row.n)
    values = [row.label, n, "—" if row.epochs is None else str(row.epochs)]
    values.append("—" if row.n_train is None else str(row.n_train))
    return values + ([row.citation or "measured"] if board.has_reported else [])


def _plain_rows(board: Board) -> tuple[list[str], list[list[str]]]:
    head = _meta_columns(board) + [header(board, m) for m in board.metrics]
    body = [
        _meta_values(board, r) + [format_cell(board, m, r.cells[m]) for m in board.metrics]
        for r in board.rows
    ]
    return head, body


def _caption(board: Board) -> str:
    return CAPTION + ("\n" + REPORTED_CAPTION if board.has_reported else "")


# ---------------------------------------------------------------- formats


def rich_table(board: Board) -> Table:
    """The terminal table: best values bold green, reported rows italic and dim after a rule."""
    head, _ = _plain_rows(board)
    # Every string is wrapped in Text: labels such as "mixup [alpha=0.4]" and names from result files
    # must print as written, never be read as rich markup.
    table = Table(title=Text(board.title), caption=Text(_caption(board)))
    for i, h in enumerate(head):
        table.add_column(Text(h), justify="left" if i == 0 else "right", style="bold" if i == 0 else None)
    for i, row in enumerate(board.rows):
        cells = [
            Text(format_cell(board, m, row.cells[m]), style="bold green" if row.cells[m].best else "")
            for m in board.metrics
        ]
        last_measured = not row.reported and i + 1 < len(board.rows) and board.rows[i + 1].reported
        table.add_row(
            *map(Text, _meta_values(board, row)),
            *cells,
            style="italic dim" if row.reported else None,
            end_section=last_measured,
        )
    return table


def render_text(boards: list[Board]) -> str:
    """The terminal table as plain text (for ``--format table --out FILE``)."""
    console = Console(file=io.StringIO(), width=max(100, 40 + 22 * max(len(b.metrics) for b in boards)))
    for board in boards:
        console.print(rich_table(board))
    return console.file.getvalue()  # type: ignore[attr-defined]


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", r"\|").replace("<", "&lt;").replace("*", r"\*")


def render_markdown(boards: list[Board]) -> str:
    parts = []
    for b in boards:
        head, _ = _plain_rows(b)
        body = []
        for row in b.rows:
            meta = [_md_escape(v) for v in _meta_values(b, row)]
            if row.reported:
                meta[0] = f"*{meta[0]}*"
            cells = [format_cell(b, m, row.cells[m]) for m in b.metrics]
            cells = [f"**{c}**" if row.cells[m].best else c for c, m in zip(cells, b.metrics, strict=True)]
            body.append(meta + cells)
        table = tabulate(
            body,
            headers=[_md_escape(h) for h in head],
            tablefmt="github",
            disable_numparse=True,
            colalign=("left",) + ("right",) * (len(head) - 1),
        )
        heading = b.title.removeprefix("suite: ")
        parts.append(f"### {_md_escape(heading)}\n\n{table}\n\n{_caption(b).replace(chr(10), '; ')}\n")
    return "\n".join(parts)


def render_csv(boards: list[Board]) -> str:
    """One line per row; ``<metric>_mean``, ``_std`` and ``_n`` per metric, raw (fractions, not %)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    metrics = list(dict.fromkeys(m for b in boards for m in b.metrics))
    writer.writerow(
        ["suite", "method", "label", "run_id", "training_id", "source", "citation", "n", "epochs", "n_train"]
        + [f"{m}_{s}" for m in metrics for s in ("mean", "std", "n")]
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


def _json_cell(cell: Cell) -> dict[str, Any]:
    return {"mean": cell.mean if cell.n else None, "std": cell.std, "n": cell.n, "best": cell.best}


def render_json(boards: list[Board]) -> str:
    doc = [
        {
            "suite": b.suite,
            "by": b.by,
            "family": b.family,
            "metrics": b.info,
            "columns": b.metrics,
            "titles": b.titles,
            "protocols": b.protocols,
            "rows": [
                {
                    "method": r.method,
                    "label": r.label,
                    "run_id": r.run_id,
                    "training_id": r.training_id,
                    "source": r.source,
                    "reported": r.reported,
                    "seeds": r.seeds,
                    "n": r.n,
                    "epochs": r.epochs,
                    "n_train": r.n_train,
                    "metrics": {m: _json_cell(r.cells[m]) for m in b.metrics},
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
        meta = _meta_columns(b)
        head = [latex_escape(h) for h in meta]
        for m in b.metrics:
            title, unit, arrow = header_parts(b, m)
            head.append(latex_escape(" ".join(p for p in (title, f"({unit})" if unit else "", arrow) if p)))
        lines = [
            f"% {latex_escape(b.title)}: {latex_escape(_caption(b).replace(chr(10), '; '))}",
            r"\begin{tabular}{l" + "r" * (len(head) - 1) + "}",
            r"\toprule",
            " & ".join(head) + r" \\",
            r"\midrule",
        ]
        for i, row in enumerate(b.rows):
            if row.reported and i > 0 and not b.rows[i - 1].reported:
                lines.append(r"\midrule")
            cells = [latex_escape(v) for v in _meta_values(b, row)]
            for m in b.metrics:
                text = latex_escape(format_cell(b, m, row.cells[m]))
                cells.append(rf"\textbf{{{text}}}" if row.cells[m].best else text)
            if row.reported:
                cells = [rf"\textit{{{c}}}" for c in cells]
            lines.append(" & ".join(cells) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}", ""]
        parts.append("\n".join(lines))
    return "% vicinal leaderboard: needs \\usepackage{booktabs}\n" + "\n".join(parts)


def render_html(boards: list[Board]) -> str:
    """A standalone HTML page of the boards (the same table markup as ``vicinal report``)."""
    from vicinal.report import render_template

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


def board_id(board: Board) -> str:
    """A stable HTML id for a board."""
    return "board-" + hashlib.sha1(f"{board.suite}/{board.by}/{board.family}".encode()).hexdigest()[:10]
