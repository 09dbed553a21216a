"""Leaderboards rendered only from result files: mean ± sample std over seeds, with n.

A :class:`Board` is one suite's table: rows (one per trained configuration and evaluation protocol) of
cells, with each metric's :class:`MetricInfo` and what the evaluators declared (breakdowns, column groups),
all as the result files hold them; no evaluator is known here. Every output format
(:mod:`vicinal.board.formats`) and the report render the same boards, so the numbers agree between them by
construction. The best value per column is marked among the measured rows; rows reported by a paper
(result files with a ``"reported"`` block) are shown after them, marked as reported, and never marked
best: their protocol is the paper's, not the suite's.

A column's best is marked only where it is *separated* from the runner-up: the 95 % interval of their
difference (:mod:`vicinal.board.paired`: paired bootstrap over the test examples, with the seed spread)
excludes 0. Otherwise the best and every row not separated from it are marked *tied*. Where the top two
rows lack per-example outcomes for the column (files written before vicinal stored them, metrics without
a per-example statistic), the former rule applies — the best value at the displayed precision — and the
legend names those columns.

Long because the board model and its build step (grouping, aggregation, breakdown columns, best
marking) read best in one place; how cells and headers are written is :mod:`vicinal.board.text`, and
the formats, the grouping rules and the derived metrics live in their own modules.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any

from vicinal.board.derived import derive
from vicinal.board.grouping import (
    Duplicate,
    RowKey,
    best_of,
    check_select,
    drop_duplicates,
    group_rows,
    latest_code,
    protocols_of,
    variant_labels,
)
from vicinal.board.paired import Difference, Resampler, Side, difference
from vicinal.core.errors import VicinalError
from vicinal.store.declarations import Breakdown, Declarations, MetricInfo, Reported
from vicinal.store.results import Result, Store

log = logging.getLogger("vicinal")
#: Warnings already given in this process: a report builds a suite's boards several times (one per
#: breakdown) and each fault is said once.
_said: set[str] = set()


@dataclass
class Cell:
    mean: float
    std: float | None  # sample standard deviation (n − 1); None for a single seed
    n: int  # values averaged; 0 = the row has no such metric
    #: The column's best, separated from the runner-up (or, where the column has no interval, the best
    #: value at the displayed precision: see the board's ``marking``).
    best: bool = False
    #: Not separated from the column's best value (the best itself included) when the best is not
    #: separated from the runner-up.
    tied: bool = False

    @property
    def mark(self) -> str:
        return "best" if self.best else "tied" if self.tied else ""

    @property
    def non_finite(self) -> bool:
        """Measured, but not a finite number (a NaN or infinite value in a result file): shown as
        ``nan``/``inf``, never ranked or marked; "—" is for a value that was not measured."""
        return self.n > 0 and not math.isfinite(self.mean)


@dataclass
class Marking:
    """How a column's best was decided: ``interval`` (the best separated from the runner-up, or not:
    ``difference`` says by how much and on what evidence), ``precision`` (no per-example outcomes for
    the top two rows: the best value at the displayed precision, as before) or ``only`` (one row)."""

    rule: str
    runner_up: str = ""
    difference: Difference | None = None
    note: str = ""

    @property
    def separated(self) -> bool:
        return self.difference is not None and self.difference.winner == 1

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "separated": self.separated if self.rule == "interval" else None,
            "runner_up": self.runner_up or None,
            "difference": self.difference.to_json() if self.difference else None,
            "note": self.note,
        }


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
    reported: Reported | None = None
    #: Every result file behind the row (a seed can have several: the same model evaluated again).
    paths: list[str] = field(default_factory=list)
    #: One result per seed, the metrics of a seed's files merged (what the cells aggregate).
    results: list[Result] = field(default_factory=list)
    training_id: str = ""

    @cached_property  # asked per row and column when a board is drawn; a row's results are fixed
    def evaluated(self) -> dict[str, Any] | None:
        """Where an evaluated model came from (``vicinal evaluate``); None for rows vicinal trained."""
        return next((r.evaluated for r in self.results if r.evaluated is not None), None)

    @property
    def source(self) -> str:
        if self.reported:
            return "reported"
        return "evaluated" if self.evaluated is not None else "measured"

    @property
    def n(self) -> int | None:
        """Seeds behind the row: the paper's count for a reported row (None when it does not say)."""
        return self.reported.n if self.reported else len(self.seeds)

    @property
    def citation(self) -> str:
        return self.reported.cited if self.reported else ""


@dataclass
class Board:
    suite: str
    rows: list[Row]
    metrics: list[str]
    info: dict[str, MetricInfo] = field(default_factory=dict)
    #: Short column titles that replace the metric's label (breakdown boards: "fog", "s3", "ε=8/255").
    titles: dict[str, str] = field(default_factory=dict)
    #: The ``--by`` breakdown and family, when this board is one.
    breakdown: Breakdown | None = None
    family: str | None = None
    #: Per evaluator, the distinct protocol dicts found in the suite's measured result files.
    protocols: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: Per evaluator, what the suite's result files declare (groups, breakdowns, figures).
    declares: dict[str, Declarations] = field(default_factory=dict)
    #: Per column, how its best value was marked.
    marking: dict[str, Marking] = field(default_factory=dict)
    #: ``--best-of``: per method, which setting was kept and over what (empty otherwise).
    selection: list[str] = field(default_factory=list)
    #: ``--latest``: the result files of the rows of earlier code it left out (empty otherwise).
    hidden: list[str] = field(default_factory=list)
    #: Result files of one run and seed found twice: which was shown and which left out.
    duplicates: list[Duplicate] = field(default_factory=list)

    @property
    def by(self) -> str | None:
        return self.breakdown.axis if self.breakdown else None

    @property
    def has_reported(self) -> bool:
        return any(r.reported for r in self.rows)

    @property
    def has_evaluated(self) -> bool:
        return any(r.evaluated is not None for r in self.rows)

    @cached_property  # asked for every row drawn; a board's rows are fixed once it is built
    def shows_source(self) -> bool:
        """Whether the board has a ``source`` column: rows that vicinal did not train are among them."""
        return self.has_reported or self.has_evaluated

    @property
    def title(self) -> str:
        if not self.breakdown:
            return f"suite: {self.suite}"
        # The columns of a breakdown share one unit and direction: say it once, here.
        last = self.info[self.metrics[-1]] if self.metrics else None
        family = self.info.get(self.family or "")
        what = family.label if family else self.family
        unit = "%, " if last and last.percent else ""
        arrow = "↑" if last is None or last.higher_is_better else "↓"
        return f"suite: {self.suite} · {what} by {self.breakdown.title} ({unit}{arrow})"

    def group(self, metric: str) -> str:
        """The title of the group a column belongs to when the board is split to fit: its evaluator's
        declared group, else the evaluator's name."""
        evaluator = self.info[metric].evaluator
        declared = self.declares.get(evaluator)
        return (declared.group if declared else "") or evaluator or "other"


def _aggregate(values: list[float]) -> Cell:
    """Mean ± sample std of a cell's values. A non-finite value makes the cell non-finite (nan, or ±inf
    where every non-finite value is that infinity): it is never dropped, which would show the other seeds'
    mean as if it were all of them."""
    if not values:
        return Cell(float("nan"), None, 0)
    if not all(math.isfinite(v) for v in values):
        odd = {v for v in values if not math.isfinite(v)}
        return Cell(odd.pop() if len(odd) == 1 else float("nan"), None, len(values))
    n = len(values)
    return Cell(_mean(values), sample_std(values) if n > 1 else None, n)


def _mean(values: list[float]) -> float:
    try:
        return math.fsum(values) / len(values)
    except OverflowError:  # finite values whose sum is beyond float (1e308 twice): divide first
        return math.fsum(v / len(values) for v in values)


def sample_std(values: list[float]) -> float:
    """The sample standard deviation (n − 1) in floating point: ``statistics.stdev`` computes in exact
    fractions, which cost most of a 10,000-file leaderboard; this agrees with it to ~1e-15 (two passes
    with ``math.fsum``, and the first-order correction for the rounding of the mean)."""
    n = len(values)
    mean = _mean(values)
    deviations = [v - mean for v in values]
    try:
        ss = math.fsum(d * d for d in deviations) - math.fsum(deviations) ** 2 / n
    except (OverflowError, ValueError):  # deviations beyond float: the spread is not representable
        return math.inf
    return math.sqrt(max(ss, 0.0) / (n - 1))


def _with_derived_metrics(rows: dict[RowKey, list[Result]]) -> dict[RowKey, list[Result]]:
    keys = [k for k, runs in rows.items() for _ in runs]
    derived = derive([r for runs in rows.values() for r in runs])
    out: dict[RowKey, list[Result]] = defaultdict(list)
    for k, r in zip(keys, derived, strict=True):
        out[k].append(r)
    return out


def declared_by(results: list[Result]) -> dict[str, Declarations]:
    """Per evaluator, what the results declare (the first result that names an evaluator wins)."""
    out: dict[str, Declarations] = {}
    for r in results:
        for name, declared in r.declares.items():
            out.setdefault(name, declared)
    return out


def breakdowns_of(declares: dict[str, Declarations]) -> dict[str, Breakdown]:
    """``{axis: Breakdown}``; the first declaration of an axis wins (in the evaluators' order), so its
    default family is the first evaluator's."""
    out: dict[str, Breakdown] = {}
    for declared in declares.values():
        for b in declared.breakdowns:
            out.setdefault(b.axis, b)
    return out


def family_columns(info: dict[str, MetricInfo], by: str, family: str) -> list[str]:
    """A family's metrics along an axis, in the order the evaluator declared them."""
    return [k for k, m in info.items() if m.by == by and m.family == family]


def clean_of(info: dict[str, MetricInfo], columns: list[str]) -> str | None:
    """The clean counterpart the columns declare, if the board has it."""
    clean = next((info[k].clean for k in columns if info[k].clean), "")
    return clean if clean in info else None


def _breakdown_columns(
    suite: str, info: dict[str, MetricInfo], breakdown: Breakdown, metrics: list[str] | None
) -> tuple[str, list[str], dict[str, str]] | None:
    """(family, columns, titles) of a ``--by`` board; None when the suite has no such metrics."""
    by = breakdown.axis
    if metrics and len(metrics) > 1:
        raise VicinalError(f"with --by, --metrics names one family (e.g. {breakdown.family}), not a list")
    family = metrics[0] if metrics else breakdown.family
    families = list(dict.fromkeys(m.family for m in info.values() if m.by == by))
    if not families:
        return None
    columns = family_columns(info, by, family)
    if not columns:
        raise VicinalError(
            f"no per-{by} metrics of family {family!r} in suite {suite}; available: {', '.join(families)}"
        )
    titles = {k: breakdown.column.format(key=info[k].key) for k in columns}
    clean = clean_of(info, columns)
    if clean:
        columns.insert(0, clean)
        titles[clean] = breakdown.clean
    if family in info and family not in columns:
        columns.append(family)  # the family's own aggregate (e.g. the mean over corruptions)
    return family, columns, titles


def side(row: Row) -> Side:
    """A row as one side of a comparison."""
    return Side(row.label, row.results)


def _mark_at_precision(board: Board, m: str, rows: list[Row]) -> None:
    """The former rule: the best value at the displayed precision (ties there all best)."""
    shown = [(displayed(board, m, r.cells[m].mean), r) for r in rows]
    if not board.info[m].higher_is_better:
        shown = [(-v, r) for v, r in shown]
    top = max(v for v, _ in shown)
    for v, r in shown:
        r.cells[m].best = v == top


def _mark_best(board: Board, resampler: Resampler | None) -> None:
    """Per column: the best measured row is marked best where the interval of its difference to the
    runner-up excludes 0, else it and every row not separated from it are marked tied; without
    per-example outcomes for the top two rows (or with ``resampler`` None), the best at the displayed
    precision."""
    measured = [r for r in board.rows if not r.reported]
    contested: list[tuple[str, list[Row]]] = []
    for m in board.metrics:
        rows = [r for r in measured if r.cells[m].n]
        if not rows:
            continue
        odd = [r.label for r in rows if r.cells[m].non_finite]
        if odd:  # a NaN is not smaller or larger than anything: no row can be called the best
            board.marking[m] = Marking("non-finite", note=f"not a finite number in {', '.join(odd)}")
            continue
        sign = 1.0 if board.info[m].higher_is_better else -1.0
        ranked = sorted(rows, key=lambda r: -sign * r.cells[m].mean)
        if len(ranked) == 1:
            ranked[0].cells[m].best = True
            board.marking[m] = Marking("only", note="the only measured row with a value")
            continue
        contested.append((m, ranked))
    if resampler is not None:  # every column's best against its runner-up, computed together
        resampler.prepare([(side(ranked[0]), side(ranked[1]), m) for m, ranked in contested])
    for m, ranked in contested:
        info = board.info[m]
        top, runner = ranked[0], ranked[1]
        found = difference(side(top), side(runner), m, info, resampler) if resampler else None
        if found is None or found.basis not in ("examples", "examples+seeds"):
            _mark_at_precision(board, m, ranked)
            why = found.note if found is not None else "intervals not computed"
            board.marking[m] = Marking("precision", runner.label, found, why)
            continue
        board.marking[m] = Marking("interval", runner.label, found)
        if found.winner == 1:
            top.cells[m].best = True
            continue
        top.cells[m].tied = True
        for other in ranked[1:]:
            versus = found if other is runner else difference(side(top), side(other), m, info, resampler)
            other.cells[m].tied = versus.winner != 1


def _reported_row(method: str, run_id: str, runs: list[Result], info: dict[str, MetricInfo]) -> Row:
    r = runs[0]
    rep = r.reported or Reported("?")
    cells = {}
    for m in info:
        if m in r.metrics:
            cells[m] = Cell(float(r.metrics[m]), rep.std.get(m), rep.n or 1)
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


def _measured_row(key: RowKey, runs: list[Result], label: str, paths: list[str], info: dict) -> Row:
    newest = max(runs, key=lambda r: r.created)
    return Row(
        method=key[0],
        run_id=newest.run_id,
        label=label,
        seeds=sorted(r.seed for r in runs if r.seed is not None),
        epochs=newest.epochs,
        n_train=newest.n_train,
        cells={m: _aggregate([float(r.metrics[m]) for r in runs if m in r.metrics]) for m in info},
        paths=paths,
        results=runs,
        training_id=key[1],
    )


def _sort(rows: list[Row], info: dict[str, MetricInfo], key: str, suite: str) -> None:
    if key not in info:
        raise VicinalError("--sort: " + unknown_metrics([key], info, suite))
    sign = -1.0 if info[key].higher_is_better else 1.0

    def rank(row: Row) -> tuple[int, float, str]:
        # Non-finite values after the measured ones, rows without the metric last, whatever the direction.
        cell = row.cells[key]
        if not cell.n:
            return 2, 0.0, row.label
        return (1, 0.0, row.label) if cell.non_finite else (0, sign * cell.mean, row.label)

    rows.sort(key=rank)


def available_metrics(store: Store, suite: str | None = None) -> dict[str, dict[str, MetricInfo]]:
    """Per suite (only ``suite`` if given), every metric a board of it can show — what its result files
    record and what is derived across them (mCE) — in the boards' order, with its declaration: what
    ``--metrics`` and ``--sort`` accept, and what ``vicinal metrics`` lists."""
    suites: dict[str, list[Result]] = defaultdict(list)
    for r in store.results:
        if not suite or r.suite == suite:
            suites[r.suite].append(r)
    out: dict[str, dict[str, MetricInfo]] = {}
    for name in sorted(suites):
        measured, _ = group_rows([r for r in suites[name] if not r.is_reported])
        results = [r for runs in _with_derived_metrics(measured).values() for r in runs]
        info: dict[str, MetricInfo] = {}
        for r in [*results, *(r for r in suites[name] if r.is_reported)]:
            for k, v in r.metric_info.items():
                info.setdefault(k, v)
        out[name] = info
    return out


def unknown_metrics(unknown: list[str], info: dict[str, MetricInfo], suite: str, what: str = "metric") -> str:
    """The message for metric names a suite's results do not have: the close ones, and the command that
    lists them all (a suite with corruptions has hundreds: they are not dumped into one error)."""
    import difflib

    close = sorted({c for u in unknown for c in difflib.get_close_matches(u, list(info), n=3, cutoff=0.6)})
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    headline = [k for k, m in info.items() if m.headline]
    return (
        f"unknown {what}(s) {', '.join(unknown)} for suite {suite}.{hint} `vicinal metrics {suite}` lists "
        f"its {len(info)} metrics by evaluator (`vicinal metrics {suite} PATTERN` filters them); the "
        f"default columns are {', '.join(headline) or 'none'}."
    )


def _axis(store: Store, by: str) -> Breakdown:
    axes = breakdowns_of(declared_by(store.results))
    if by not in axes:
        older = any(not r.declares and not r.is_reported for r in store.results)
        note = (
            "; files written before vicinal recorded what evaluators declare have none: run them again"
            if older
            else ""
        )
        if not axes:
            raise VicinalError(f"--by {by!r}: no result file declares a breakdown{note}")
        raise VicinalError(f"--by {by!r}: choose one of {', '.join(axes)}{note}")
    return axes[by]


def build_boards(
    store: Store,
    suite: str | None = None,
    methods: list[str] | None = None,
    metrics: list[str] | None = None,
    sort: str | None = None,
    by: str | None = None,
    resampler: Resampler | None = None,
    separate: bool = True,
    best_of_params: list[str] | None = None,
    select: str | None = None,
    latest: bool = False,
) -> list[Board]:
    """One board per suite (only ``suite`` if given): rows per (method, run_id), measured ones ranked by
    ``sort`` (default: the first shown column), reported ones after them. ``by`` makes breakdown boards
    whose columns are one metric family along an axis the result files declare. Best values are marked
    by ``resampler``'s intervals (default settings when None); ``separate=False`` marks them at the
    displayed precision without computing any interval. ``best_of_params`` keeps each method at its best
    setting of those parameters by the validation metric ``select`` (default ``val_acc``; given without
    ``best_of_params`` it is an error, not ignored) (:func:`vicinal.board.grouping.best_of`). ``latest``
    keeps each configuration at its newest code only (:func:`vicinal.board.grouping.latest_code`; the
    files it leaves out are the board's ``hidden``)."""
    if select is not None and not best_of_params:
        raise VicinalError(
            f"--select {select} chooses among swept settings and needs --best-of (e.g. --best-of alpha); "
            "give both, or neither"
        )
    select = select or "val_acc"
    resampler = (resampler or Resampler()) if separate else None
    suites: dict[str, list[Result]] = defaultdict(list)
    for r in store.results:
        if not suite or r.suite == suite:
            suites[r.suite].append(r)
    duplicates: dict[str, list[Duplicate]] = {}
    for name in suites:
        suites[name], duplicates[name] = drop_duplicates(suites[name])
        _say([d.message() for d in duplicates[name]] + _non_finite(suites[name]))
    if suite and not suites:
        known = sorted({r.suite for r in store.results})
        raise VicinalError(
            f"no results for suite {suite!r}"
            + (f"; results exist for: {', '.join(known)}" if known else "; run `vicinal run` first")
        )
    if best_of_params:
        _check_select(select, [r for rs in suites.values() for r in rs if not r.is_reported])
    hint = _axis(store, by) if by else None
    boards = []
    settings_seen: set[str] = set()
    for suite_name in sorted(suites):
        reported: dict[tuple[str, str], list[Result]] = defaultdict(list)
        for r in suites[suite_name]:
            if r.is_reported:
                reported[(r.method, r.run_id)].append(r)
        measured, sources = group_rows([r for r in suites[suite_name] if not r.is_reported])
        hidden: list[str] = []
        if latest:  # before deriving: earlier code is not this board's baseline either
            measured, hidden = latest_code(measured, sources)
        # Derived metrics (mCE) are normalised by the suite's baseline rows, so they are derived before the
        # method filter and from measured rows only: a paper's ERM is not this suite's baseline.
        measured = _with_derived_metrics(measured)
        if methods:
            measured = {k: v for k, v in measured.items() if k[0] in methods}
            reported = {k: v for k, v in reported.items() if k[0] in methods}
        selection: list[str] = []
        if best_of_params:
            measured, selection, known = best_of(measured, best_of_params, select)
            settings_seen |= known
        if not measured and not reported:
            continue
        results = [r for group in (measured, reported) for runs in group.values() for r in runs]
        info: dict[str, MetricInfo] = {}
        for r in results:
            for k, v in r.metric_info.items():
                info.setdefault(k, v)
        declares = declared_by(results)
        titles: dict[str, str] = {}
        family = breakdown = None
        if hint:
            breakdown = breakdowns_of(declares).get(hint.axis, hint)
            found = _breakdown_columns(suite_name, info, breakdown, metrics)
            if found is None:
                if suite:
                    where = f"; {hint.hint}" if hint.hint else ""
                    raise VicinalError(f"no per-{hint.axis} metrics in suite {suite_name}{where}")
                continue
            family, shown, titles = found
        elif metrics == ["all"]:
            shown = list(info)
        elif metrics:
            shown = metrics
        else:
            shown = [m for m, meta in info.items() if meta.headline]
        unknown = [m for m in shown if m not in info]
        if unknown:
            raise VicinalError(unknown_metrics(unknown, info, suite_name))
        labels = variant_labels(measured)
        rows = [_measured_row(k, runs, labels[k], sources[k], info) for k, runs in measured.items()]
        extra = [_reported_row(method, run_id, runs, info) for (method, run_id), runs in reported.items()]
        if breakdown:  # a breakdown ranks by its family's aggregate, else by its last (hardest) column
            default_key: str | None = family if family in info else shown[-1]
        else:
            default_key = shown[0] if shown else None
        if sort or default_key:
            _sort(rows, info, sort or default_key, suite_name)
            _sort(extra, info, sort or default_key, suite_name)
        board = Board(
            suite_name,
            rows + extra,
            shown,
            {m: info[m] for m in shown},
            titles,
            breakdown,
            family,
            protocols_of(measured),
            declares,
            selection=selection,
            hidden=hidden,
            duplicates=duplicates[suite_name],
        )
        _mark_best(board, resampler)
        boards.append(board)
    if best_of_params and not set(best_of_params) & settings_seen:
        raise VicinalError(
            f"--best-of {', '.join(best_of_params)}: no row has such a setting; settings of these rows: "
            + ", ".join(sorted(settings_seen))
        )
    if hint and not boards:
        where = f"suite {suite}" if suite else "any suite"
        raise VicinalError(f"no per-{hint.axis} metrics in {where}" + (f"; {hint.hint}" if hint.hint else ""))
    if methods and not boards:
        known = sorted({r.method for rs in suites.values() for r in rs})
        raise VicinalError(
            f"no results for method(s) {', '.join(methods)}; results exist for: {', '.join(known)}"
        )
    return boards


def _non_finite(results: list[Result]) -> list[str]:
    """One line per file and metric whose value is not a finite number."""
    return [
        f"{r.path}: {m} = {v} is not a finite number; it is shown as {v} and no best is marked in its column"
        for r in results
        for m, v in r.metrics.items()
        if not math.isfinite(v)
    ]


def _say(messages: list[str]) -> None:
    for message in messages:
        if message not in _said:
            _said.add(message)
            log.warning("%s", message)


def _check_select(select: str, results: list[Result]) -> None:
    """``--select`` must name a validation metric that the results record (else nothing is chosen)."""
    check_select(select)
    recorded = sorted({m for r in results for m in r.metrics if m.startswith("val_")})
    if select not in recorded:
        have = f"they record {', '.join(recorded)}" if recorded else "none records a validation metric"
        raise VicinalError(
            f"--select {select}: no result file records it ({have}; results need a validation split, "
            "[data] validation > 0)"
        )


# ---------------------------------------------------------------- the displayed precision


def scale(board: Board, metric: str) -> float:
    return 100.0 if board.info[metric].percent else 1.0


def digits(board: Board, metric: str) -> int:
    return 2 if scale(board, metric) == 100.0 else 4


def displayed(board: Board, metric: str, value: float) -> float | Decimal:
    """``value`` as the board shows it (×100 for a percentage, rounded to the shown digits), for deciding
    ties at the displayed precision. A value whose percentage is beyond float (1e308 × 100) is scaled as a
    Decimal (28 significant digits, more than a float has; it compares exactly with floats) rather than
    becoming inf, which would tie it with every other such value; it has no decimals to round."""
    scaled = value * scale(board, metric)
    if math.isfinite(scaled) or not math.isfinite(value):
        return round(scaled, digits(board, metric))
    return Decimal(value) * Decimal(scale(board, metric))
