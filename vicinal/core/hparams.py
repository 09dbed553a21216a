"""Settings dataclasses: defaults, ranges, typed overrides from suite files and ``--set``, descriptions.

One mechanism validates every setting a user can write — method and evaluator hyperparameters, and every
section of a suite file — so each gets the same messages: the unknown key with the closest valid name,
the expected type, the allowed range.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from typing import Any, Literal, get_args, get_origin

from vicinal.core.errors import VicinalError

_BOUNDS = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
#: The largest float32: torch trains and evaluates in float32, where a larger setting becomes inf.
FLOAT32_MAX = 3.4028234663852886e38
#: Integers beyond 64 bits fit no tensor, numpy array or C type that the settings end up in.
INT64_MAX = 2**63 - 1
#: Seeds are 32-bit, as numpy's legacy seeding takes them; a larger one would overflow where an evaluator
#: derives per-batch seeds from it (seed × 100,003 + batch), after the training has run.
SEED_MAX = 2**32 - 1


@dataclasses.dataclass
class NoConfig:
    """The settings of a method or evaluator that has none."""


def field_help(f: dataclasses.Field) -> str:
    return str(f.metadata.get("help", ""))


def hp(
    default: Any,
    help: str,
    choices: tuple[str, ...] | None = None,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> Any:
    """A dataclass field with a default, a one-line description (``vicinal methods -v``) and optionally
    a range: ``hp(0.1, "label smoothing", ge=0, lt=1)``. The range applies to a number, or to each item
    of a list of numbers, and is checked wherever the value is set (suite files, ``--set``)."""
    meta: dict[str, Any] = {"help": help}
    if choices:
        meta["choices"] = choices
    meta.update({k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None})
    if isinstance(default, list):  # lists need a factory: each config gets its own copy
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def range_text(f: dataclasses.Field) -> str:
    """The field's range as people read it ("≥ 0, < 1"), or ""."""
    return ", ".join(f"{sym} {_bound(f.metadata[k])}" for k, sym in _BOUNDS.items() if k in f.metadata)


def _bound(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) and abs(value) >= 10_000 else f"{value:g}"


def _type_name(annotation: Any) -> str:
    if get_origin(annotation) is list:
        (inner,) = get_args(annotation) or (Any,)
        return f"a list of {_type_name(inner)}"
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(map(repr, get_args(annotation)))
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        annotation, getattr(annotation, "__name__", str(annotation))
    )


def _coerce(value: Any, annotation: Any, where: str, strict: bool) -> Any:
    """``value`` as ``annotation``. ``strict`` (suite files, whose values are typed TOML) refuses strings
    for numbers and booleans; from the command line every value arrives as a string and is parsed."""
    origin = get_origin(annotation)
    if origin is list:
        (inner,) = get_args(annotation) or (Any,)
        if isinstance(value, str) and not strict:
            items: Any = [v.strip() for v in value.split(",") if v.strip()]
        else:
            items = value
        if not isinstance(items, list | tuple):
            raise VicinalError(f"{where}: expected {_type_name(annotation)}, got {value!r}")
        return [_coerce(v, inner, f"{where}[{i}]", strict) for i, v in enumerate(items)]
    if origin is Literal:
        choices = get_args(annotation)
        if value not in choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise VicinalError(f"{where}: {value!r} is not one of {', '.join(map(repr, choices))}{hint}")
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if not strict and isinstance(value, str):
            lowered = value.lower()
            if lowered in {"true", "1", "yes", "on", "false", "0", "no", "off"}:
                return lowered in {"true", "1", "yes", "on"}
        raise VicinalError(f"{where}: expected true or false, got {value!r}")
    if annotation in (int, float):
        if isinstance(value, bool) or (strict and not isinstance(value, int | float)):
            raise VicinalError(f"{where}: expected {_type_name(annotation)}, got {value!r}")
        try:
            number = annotation(value)
        except (TypeError, ValueError):
            raise VicinalError(f"{where}: expected {_type_name(annotation)}, got {value!r}") from None
        if annotation is int and isinstance(value, float) and value != number:
            raise VicinalError(f"{where}: expected an integer, got {value!r}")
        return number
    if annotation is str:
        # Numbers are accepted where text is expected: radii such as 0.25 are stored as text so that
        # "8/255" can sit beside them.
        if strict and (isinstance(value, bool) or not isinstance(value, str | int | float)):
            raise VicinalError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def check_number(value: Any, where: str) -> None:
    """Every number a setting holds must be usable where it goes: finite, within float32 for a float
    (torch computes in it: 1e39 is inf there), within 64 bits for an integer. Raises VicinalError."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise VicinalError(f"{where} = {value!r} is not a finite number; give a finite value")
    if isinstance(value, float) and abs(value) > FLOAT32_MAX:
        raise VicinalError(
            f"{where} = {value!r} is beyond float32's range (±3.4e38), in which torch computes; "
            "give a smaller value"
        )
    if isinstance(value, int) and abs(value) > INT64_MAX:
        raise VicinalError(f"{where} = {value!r} does not fit in 64 bits; give a smaller value")


def _check_range(value: Any, f: dataclasses.Field, where: str) -> None:
    items = value if isinstance(value, list) else [value]
    for v in items:  # a NaN passes every comparison below: say what it is first
        if isinstance(v, float) and not math.isfinite(v):
            check_number(v, where)
    if isinstance(value, list):  # a list setting names each value once (each would be run or shown twice)
        twice = [v for i, v in enumerate(value) if v in value[:i]]
        if twice:
            raise VicinalError(f"{where} lists {twice[0]!r} twice; give each value once")
    # ``hp(choices=…)`` on a plain ``str`` field (a ``Literal[...]`` annotation is checked by _coerce).
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise VicinalError(f"{where}: {value!r} is not one of {', '.join(map(repr, choices))}")
    bounds = {k: f.metadata[k] for k in _BOUNDS if k in f.metadata}
    for v in items:
        ok = (
            ("ge" not in bounds or v >= bounds["ge"])
            and ("gt" not in bounds or v > bounds["gt"])
            and ("le" not in bounds or v <= bounds["le"])
            and ("lt" not in bounds or v < bounds["lt"])
        )
        if not ok:
            raise VicinalError(f"{where} = {v!r} is out of range: it must be {range_text(f)}")
        check_number(v, where)  # within its range, it must still fit where it goes (float32, 64 bits)


def unknown_key(key: str, known: list[str], owner: str, what: str = "setting") -> VicinalError:
    """The error for a key that does not exist: names it, the closest valid one, and the valid ones."""
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return VicinalError(f"{owner} has no {what} {key!r}.{hint} It has: {', '.join(known) or '(none)'}.")


def build_config(
    cls: type, values: dict[str, Any], owner: str, *, strict: bool = False, what: str = "hyperparameter"
) -> Any:
    """Instantiate the dataclass ``cls`` from defaults plus ``values`` (coerced, range-checked, validated).
    ``owner`` prefixes every message (``mixup``, ``suites/x.toml: [train]``)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in values:
        if key not in fields:
            raise unknown_key(key, list(fields), owner, what)
    kwargs = {}
    for k, v in values.items():
        where = f"{owner}.{k}" if not owner.endswith("]") else f"{owner} {k}"
        kwargs[k] = _coerce(v, hints[k], where, strict)
        _check_range(kwargs[k], fields[k], where)
    config = cls(**kwargs)
    validate = getattr(config, "validate", None)
    if callable(validate):
        try:
            validate()
        except ValueError as exc:
            raise VicinalError(f"{owner}: {exc}") from None
    return config


def parse_assignments(assignments: list[str]) -> dict[str, dict[str, Any]]:
    """``["mixup.alpha=0.4", "varmixup.mix=means"]`` → ``{"mixup": {"alpha": "0.4"}, ...}``."""
    out: dict[str, dict[str, Any]] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        owner, dot, name = key.strip().rpartition(".")
        if not sep or not dot or not owner or not name:
            raise VicinalError(f"{item!r}: write it as METHOD.PARAM=VALUE, e.g. mixup.alpha=0.4")
        if name in out.get(owner, {}):  # the last one would win without a word
            raise VicinalError(
                f"{owner}.{name} is given twice ({out[owner][name]!r}, then {value.strip()!r}); give it once"
            )
        out.setdefault(owner, {})[name] = value.strip()
    return out


def typed_values(
    cls: type, base: dict[str, Any], param: str, values: list[Any], owner: str, *, strict: bool = False
) -> list[Any]:
    """The values of a swept setting, each typed and checked as ``param`` of ``cls`` (with the other
    settings ``base``); the same value twice (``0.2`` and ``0.20``) is refused: it would train one
    configuration twice."""
    typed: list[Any] = []
    for value in values:
        config = build_config(cls, {**base, param: value}, owner, strict=strict)
        if getattr(config, param) in typed:
            raise VicinalError(
                f"{owner}: the sweep lists {param} = {getattr(config, param)!r} twice; give each value once"
            )
        typed.append(getattr(config, param))
    return typed


def parse_sweeps(assignments: list[str]) -> dict[str, dict[str, list[str]]]:
    """``["mixup.alpha=0.2,1.0"]`` → ``{"mixup": {"alpha": ["0.2", "1.0"]}}`` (typed later, per point)."""
    out: dict[str, dict[str, list[str]]] = {}
    for owner, params in parse_assignments(assignments).items():
        for name, value in params.items():
            values = [v.strip() for v in str(value).split(",") if v.strip()]
            if not values:
                raise VicinalError(f"--sweep {owner}.{name}=: give comma-separated values, e.g. 0.2,1.0")
            out.setdefault(owner, {})[name] = values
    return out


def describe(cls: type) -> list[tuple[str, str, str, str]]:
    """(name, type, default, help) for each hyperparameter of a config dataclass; the help ends with the
    range when the field has one."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        annotation = hints[f.name]
        if get_origin(annotation) is Literal:
            type_name = " | ".join(map(str, get_args(annotation)))
        else:
            type_name = getattr(annotation, "__name__", str(annotation))
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
        limits = range_text(f)
        rows.append((f.name, type_name, repr(default), field_help(f) + (f" ({limits})" if limits else "")))
    return rows
