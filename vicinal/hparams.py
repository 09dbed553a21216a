"""Hyperparameter dataclasses: defaults, typed overrides from suite files and ``--set``, descriptions."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal, get_args, get_origin

from vicinal.errors import VicinalError


def field_help(f: dataclasses.Field) -> str:
    return str(f.metadata.get("help", ""))


def hp(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A dataclass field with a default and a one-line description shown by ``vicinal methods -v``."""
    meta: dict[str, Any] = {"help": help}
    if choices:
        meta["choices"] = choices
    if isinstance(default, list):  # lists need a factory: each config gets its own copy
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    origin = get_origin(annotation)
    if origin is list:
        (inner,) = get_args(annotation) or (Any,)
        items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise VicinalError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, inner, where) for v in items]
    if origin is Literal:
        choices = get_args(annotation)
        if value not in choices:
            raise VicinalError(f"{where}: {value!r} is not one of {', '.join(map(repr, choices))}")
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "1", "yes", "on", "false", "0", "no", "off"}:
            return value.lower() in {"true", "1", "yes", "on"}
        raise VicinalError(f"{where}: expected true or false, got {value!r}")
    if annotation in (int, float):
        if isinstance(value, bool):
            raise VicinalError(f"{where}: expected a number, got {value!r}")
        try:
            number = annotation(value)
        except (TypeError, ValueError):
            raise VicinalError(f"{where}: expected {annotation.__name__}, got {value!r}") from None
        if annotation is int and isinstance(value, float) and value != number:
            raise VicinalError(f"{where}: expected an integer, got {value!r}")
        return number
    if annotation is str:
        return str(value)
    return value


def build_config(cls: type, values: dict[str, Any], owner: str) -> Any:
    """Instantiate the dataclass ``cls`` from defaults plus ``values`` (coerced and validated)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise VicinalError(
            f"{owner} has no hyperparameter {', '.join(map(repr, unknown))}; "
            f"it has: {', '.join(fields) or '(none)'}"
        )
    kwargs = {k: _coerce(v, hints[k], f"{owner}.{k}") for k, v in values.items()}
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
            raise VicinalError(f"--set {item!r}: write it as METHOD.PARAM=VALUE, e.g. --set mixup.alpha=0.4")
        out.setdefault(owner, {})[name] = value.strip()
    return out


def describe(cls: type) -> list[tuple[str, str, str, str]]:
    """(name, type, default, help) for each hyperparameter of a config dataclass."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        annotation = hints[f.name]
        if get_origin(annotation) is Literal:
            type_name = " | ".join(map(str, get_args(annotation)))
        else:
            type_name = getattr(annotation, "__name__", str(annotation))
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
        rows.append((f.name, type_name, repr(default), field_help(f)))
    return rows
