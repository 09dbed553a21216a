"""What an evaluator declares about its numbers, as data: each metric's meaning, its ``--by`` breakdowns,
its report figures, the images it writes and the metrics derived from it across a suite.

The runner writes these into every result file (``metric_info``, ``declares``, ``artifacts``), and the
renderers (leaderboard, report) draw only from there: they never import an evaluator, so a third-party
evaluator's metrics, breakdowns and figures appear without any edit to vicinal, and the renderers stay free
of torch. Every type here loads from and dumps to JSON (``from_json``/``to_json``), checking what it loads,
so a hand-written file (a paper's reported numbers) gets one clear message per mistake.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

T = TypeVar("T")


class JsonData:
    """JSON for the dataclasses below: ``to_json`` a plain dict, ``from_json`` checked (:func:`load`)."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_json(cls, data: Any, where: str = "") -> Any:
        return load(cls, data, where or cls.__name__)


@dataclass(frozen=True)
class MetricInfo(JsonData):
    """What one metric means and how it is shown."""

    label: str
    higher_is_better: bool
    percent: bool = False  # stored as a fraction, shown ×100
    description: str = ""
    headline: bool = True  # shown by the leaderboard by default (others with --metrics or --metrics all)
    #: Breakdowns (``vicinal leaderboard --by corruption``): a metric such as ``c_acc/fog`` belongs to
    #: ``family`` "c_acc", is broken down ``by`` "corruption" and stands for ``key`` "fog".
    family: str = ""
    by: str = ""
    key: str = ""
    #: The unperturbed counterpart of a breakdown metric (severity 0, ε = 0): shown as the first column of
    #: the breakdown and the first point of its curves when a result has it (``"acc"`` for ``c_acc/s3``).
    clean: str = ""
    #: The evaluator that reported it; filled in by the runner (and for derived metrics by the renderers).
    evaluator: str = ""


@dataclass(frozen=True)
class Breakdown(JsonData):
    """A ``vicinal leaderboard --by AXIS`` board: one column per key of a metric family along the axis
    (metrics whose ``by`` is the axis), the clean counterpart first, the family's aggregate last."""

    axis: str  # the --by name: "corruption"
    title: str  # how the axis reads in a board title ("acc-C by corruption")
    family: str  # the family shown when --metrics names none
    column: str = "{key}"  # a column's title; "s{key}" gives "s3"
    clean: str = "clean"  # the clean counterpart's column title (and its tick in figures)
    hint: str = ""  # what to run to get it: said when a suite has no such metrics


@dataclass(frozen=True)
class PanelSpec(JsonData):
    """One panel of a figure: ``family`` along the figure's axis (lines, heatmap), or one bar per row for
    ``metric`` (bars)."""

    title: str
    family: str = ""
    metric: str = ""
    xlabel: str = ""
    ylabel: str = ""


@dataclass(frozen=True)
class FigureSpec(JsonData):
    """A report figure the report draws from the boards, whatever the evaluator:

    - ``lines``: per panel, one line per row of ``family`` over the keys of axis ``by`` (the clean
      counterpart at 0), x at the keys' values (``spacing="key"``) or evenly spaced (``"even"``);
    - ``heatmap``: rows × the keys of ``by`` for the first panel's family;
    - ``bars``: per panel, one bar per row for the panel's ``metric``.
    """

    kind: Literal["lines", "heatmap", "bars"]
    title: str
    panels: tuple[PanelSpec, ...]
    caption: str = ""
    by: str = ""
    spacing: Literal["key", "even"] = "key"
    alt: str = ""

    def __post_init__(self) -> None:
        if not self.panels:
            raise ValueError(f"figure {self.title!r} has no panels")
        if self.kind == "bars":
            missing = [p.title for p in self.panels if not p.metric]
            what = "a metric"
        else:
            missing = [p.title for p in self.panels if not p.family] + ([] if self.by else ["(figure: by)"])
            what = "a family and the figure an axis (by)"
        if missing:
            raise ValueError(f"{self.kind} figure {self.title!r}: {', '.join(missing)} need {what}")


@dataclass(frozen=True)
class Artifact(JsonData):
    """A file an evaluator writes beside the result (``ctx.artifact_path(name)``). An ``image`` is shown in
    the report as a gallery of one image per row under ``title`` (``layout`` "stack": one per line);
    ``data`` (the per-example outcomes, ``vicinal.store.outcomes``) is read by ``vicinal compare`` and the
    leaderboard, never shown."""

    title: str
    caption: str = ""
    layout: Literal["gallery", "stack"] = "gallery"
    file: str = ""  # the file name beside the result; set by the runner
    kind: Literal["image", "data"] = "image"

    def __post_init__(self) -> None:
        # Read from beside the result file into the report: a plain file name only.
        if self.file and (Path(self.file).name != self.file or self.file.startswith(".")):
            raise ValueError(f"artifact file must be a file name beside the result, got {self.file!r}")

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if self.kind == "image":  # the default, left out so that files written before it read back equal
            del out["kind"]
        return out


@dataclass(frozen=True)
class Declarations(JsonData):
    """Everything an evaluator declares besides its metrics, recorded per evaluator in each result."""

    #: Title of this evaluator's columns when a board is split to fit a terminal ("attacks").
    group: str = ""
    breakdowns: tuple[Breakdown, ...] = ()
    figures: tuple[FigureSpec, ...] = ()
    #: Names of derivations (``vicinal.board.derived``) computed across the suite's results from its metrics.
    derived: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reported(JsonData):
    """The citation block of numbers copied from a paper (a reported row)."""

    citation: str = ""  # required: checked below, so that a missing and an empty one read alike
    url: str | None = None
    table: str | None = None
    note: str | None = None
    n: int | None = None  # the paper's number of runs
    std: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.citation.strip():
            raise ValueError('needs a non-empty "citation"')
        if self.n is not None and self.n < 1:
            raise ValueError("n (the paper's number of runs) must be a positive integer")

    @property
    def cited(self) -> str:
        """The citation with its table, as rows show it."""
        return self.citation + (f", {self.table}" if self.table else "")

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


# ---------------------------------------------------------------- consistency


def _close(word: str, options: list[str]) -> str:
    import difflib

    found = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"; did you mean {found[0]!r}?" if found else ""


def inconsistencies(
    metrics: dict[str, MetricInfo], declared: Declarations, derives: bool = False
) -> list[str]:
    """What in one evaluator's declarations names something the others do not declare, one message each:
    a breakdown whose axis and family no metric has (the metrics say ``by="nosie"`` beside
    ``Breakdown("noise", …)``: the run succeeded and ``--by noise`` then found nothing), a metric along an
    axis that is a near miss of a declared one, a figure whose panel family has no metrics along the
    figure's axis, a bar of a metric not declared. ``derives``: the evaluator adds derived metrics, which a
    bar may show (they are declared by the derivation, later)."""
    problems = []
    axes = [b.axis for b in declared.breakdowns]
    along: dict[str, set[str]] = {}  # axis → the families with metrics along it
    for name, info in metrics.items():
        if info.by:
            along.setdefault(info.by, set()).add(info.family)
            if not info.family or not info.key:
                problems.append(f"metric {name!r} is along axis {info.by!r} but has no family or no key")
            if info.by not in axes and (hint := _close(info.by, axes)):
                problems.append(f"metric {name!r}: by={info.by!r} is no declared breakdown axis{hint}")
    for b in declared.breakdowns:
        if b.family not in along.get(b.axis, set()):
            families = sorted(along.get(b.axis, set()))
            have = (
                f"families along {b.axis!r}: {', '.join(families)}"
                if families
                else f"no metric has by={b.axis!r}"
            )
            problems.append(
                f"Breakdown({b.axis!r}, …, family={b.family!r}): no metric has by={b.axis!r} and "
                f"family={b.family!r} ({have}{_close(b.axis, sorted(along))})"
            )
    for f in declared.figures:
        if f.kind == "bars":
            missing = [p.metric for p in f.panels if p.metric not in metrics]
            if missing and not derives:
                problems.append(f"figure {f.title!r}: bar metric(s) {', '.join(missing)} are not declared")
            continue
        for p in f.panels:
            if p.family not in along.get(f.by, set()):
                where = f"by={f.by!r}"
                hint = (
                    _close(f.by, sorted(along))
                    if f.by not in along
                    else _close(p.family, sorted(along[f.by]))
                )
                problems.append(
                    f"figure {f.title!r}: panel {p.title!r} draws family {p.family!r} along {where}, but no "
                    f"metric of that family has {where}{hint}"
                )
    return problems


# ---------------------------------------------------------------- loading, checked


def load(annotation: Any, data: Any, where: str) -> Any:
    """A value of type ``annotation`` (one of these dataclasses, or a dict or tuple of them) from JSON
    data, every value checked against its annotation; raises ValueError naming the first wrong key
    (``metric_info.acc.percent must be true or false``)."""
    return _value(annotation, data, where)


@functools.cache
def _fields(cls: type) -> tuple[dict[str, Any], frozenset[str]]:
    """Each field's resolved annotation, and the names without a default. Resolving the string
    annotations (``from __future__ import annotations``) compiles each one: cached, since reading
    10,000 result files loads the same few classes hundreds of thousands of times."""
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    missing = dataclasses.MISSING
    required = frozenset(f.name for f in fields if f.default is missing and f.default_factory is missing)
    return {f.name: hints[f.name] for f in fields}, required


def _object(cls: type[T], data: Any, where: str) -> T:
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be an object")
    hints, required = _fields(cls)
    if not data.keys() <= hints.keys():
        unknown = sorted(set(data) - set(hints))
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(hints)}")
    values = {}
    for name, hint in hints.items():
        if name in data:
            values[name] = _value(hint, data[name], f"{where}.{name}")
        elif name in required:
            raise ValueError(f"{where}: missing {name!r}")
    try:
        return cls(**values)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _value(annotation: Any, value: Any, where: str) -> Any:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _value(inner, value, where)
    if origin is Literal:
        if value not in args:
            raise ValueError(f"{where} must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where} must be a list")
        return tuple(_value(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where} must be an object")
        return {k: _value(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(annotation):
        return _object(annotation, value, where)
    expected = {bool: (bool, "true or false"), str: (str, "a string"), int: (int, "an integer")}
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where} must be a number")
        return float(value)
    kind, name = expected[annotation]
    if not isinstance(value, kind) or (annotation is int and isinstance(value, bool)):
        raise ValueError(f"{where} must be {name}")
    return value
