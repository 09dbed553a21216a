"""Result files: one JSON per (suite, method, seed), written atomically, holding the full protocol.

Layout: ``<results>/<suite>/<method>/<run_id>-seed<seed>.json`` where ``run_id`` hashes everything
that determines the run except the seed, so the seeds of one configuration sit side by side.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from vicinal.core.io import atomic_write_all, atomic_write_text, bulk_allocation, check_folder, decode_json
from vicinal.core.names import check_name
from vicinal.store.declarations import Artifact, Declarations, MetricInfo, Reported, load

#: 2: run identity (``training_id``) and code fingerprints. Files of schema 1 had neither, so they cannot be
#: tied to the code that made them: they are skipped with a message (reported rows may still say 1).
SCHEMA_VERSION = 2
REPORTED_SCHEMAS = (1, 2)
RESULTS_ENV = "VICINAL_RESULTS_DIR"


def default_results_dir() -> Path:
    return Path(os.environ.get(RESULTS_ENV) or "results")


def default_cache_dir() -> Path:
    if os.environ.get("VICINAL_CACHE_DIR"):
        return Path(os.environ["VICINAL_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vicinal"


def config_hash(config: dict[str, Any]) -> str:
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def result_path(results_dir: Path, suite: str, method: str, run_id: str, seed: int) -> Path:
    # Registered and suite names are validated where they are defined; checked again here because a name
    # that could climb out of results_dir must never become a path, whoever forgot to validate it.
    check_name(suite, "suite")
    check_name(method, "method")
    return results_dir / suite / method / f"{run_id[:12]}-seed{seed}.json"


@dataclass
class Result:
    """One result file: what a run measured and everything needed to trust and reproduce it.

    A *measured* result has a seed, a ``run_id`` (everything that determines its numbers except the seed:
    configuration, evaluators and code fingerprints) and a ``training_id`` (the part that determines the
    trained weights). A *reported* result (``reported`` set) holds numbers copied from a paper.
    """

    suite: str
    method: str
    metrics: dict[str, float]
    metric_info: dict[str, MetricInfo] = field(default_factory=dict)
    seed: int | None = None
    run_id: str = ""
    training_id: str = ""
    config_hash: str = ""
    created: str = ""
    protocol: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Per evaluator, what it declared besides its metrics: breakdowns, figures, derived metrics.
    declares: dict[str, Declarations] = field(default_factory=dict)
    #: Images written beside the result file, by name, each with its gallery title.
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    method_info: dict[str, Any] = field(default_factory=dict)
    suite_spec: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    #: The citation block of numbers copied from a paper; None for measured results.
    reported: Reported | None = None
    #: Set for a model vicinal evaluated but did not train (``vicinal evaluate``): where it came from
    #: (checkpoint path and SHA-256, Python class, RobustBench entry), its architecture and input convention.
    evaluated: dict[str, Any] | None = None
    schema: int = SCHEMA_VERSION
    #: Where the result was read from (not part of the file).
    path: Path | None = field(default=None, compare=False, repr=False)

    @property
    def is_reported(self) -> bool:
        return self.reported is not None

    @property
    def is_evaluated(self) -> bool:
        return self.evaluated is not None

    @property
    def epochs(self) -> int | None:
        return self.training.get("epochs")

    @property
    def n_train(self) -> int | None:
        # An evaluated model was not trained on the suite's training split: no training-set size to show.
        return None if self.evaluated is not None else self.data.get("n_train")

    def to_json(self) -> dict[str, Any]:
        out = {f.name: _json(getattr(self, f.name)) for f in fields(self) if f.name != "path"}
        order = ["schema", "suite", "method", "seed", "run_id", "training_id", "config_hash", "created"]
        return {k: out[k] for k in order} | {k: v for k, v in out.items() if k not in order and v is not None}

    @classmethod
    def from_json(cls, data: Any, path: Path | None = None, memo: dict[int, Any] | None = None) -> Result:
        """A result from its JSON object; raises ValueError saying what is wrong with it.

        ``memo`` (keyed by ``id``) lets documents that share their ``metric_info``/``declares`` dicts (the
        result index hands out one dict per distinct block) share the typed versions too: converting them
        per file is most of reading 10,000 files. The caller keeps the documents alive while it is used."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        reported = "reported" in data
        required = ("schema", "suite", "method", "metrics") + (
            ("reported",) if reported else ("seed", "run_id", "training_id", "metric_info")
        )
        missing = [k for k in required if k not in data]
        if missing and not reported and data.get("schema") == 1:
            raise ValueError("written by an older vicinal (schema 1, no code fingerprints); run it again")
        if missing:
            raise ValueError(f"missing keys {', '.join(missing)}")
        schemas = REPORTED_SCHEMAS if reported else (SCHEMA_VERSION,)
        if data["schema"] not in schemas:
            raise ValueError(f"schema {data['schema']!r} (this vicinal reads {SCHEMA_VERSION})")
        for key in ("suite", "method"):
            if not isinstance(data[key], str) or not data[key]:
                raise ValueError(f"{key} must be a non-empty string")
        metrics = data["metrics"]
        if not isinstance(metrics, dict) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in metrics.values()
        ):
            raise ValueError("metrics must map names to numbers")
        known = {f.name for f in fields(cls)} - {"path"}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("protocol", "method_info", "suite_spec", "data", "training", "evaluated"):
            if not isinstance(values.get(key) or {}, dict):
                raise ValueError(f"{key} must be an object")
        for key, kind in (("metric_info", dict[str, MetricInfo]), ("declares", dict[str, Declarations])):
            raw = values.get(key, {})
            typed = memo.get(id(raw)) if memo is not None else None
            if typed is None:
                typed = load(kind, raw, key)
                if memo is not None:
                    memo[id(raw)] = typed
            values[key] = typed
        values["artifacts"] = _artifacts(values.get("artifacts", {}))
        if reported:
            _check_reported(values)
        elif not isinstance(values["seed"], int) or isinstance(values["seed"], bool):
            raise ValueError("seed must be an integer")
        return cls(**values, path=path)


def _json(value: Any) -> Any:
    if hasattr(value, "to_json"):
        return value.to_json()
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    return value


def _artifacts(data: Any) -> dict[str, Artifact]:
    if not isinstance(data, dict):
        raise ValueError("artifacts must be an object")
    out = {}
    for name, entry in data.items():
        # Files written before artifacts described themselves hold the bare file name.
        artifact = (
            Artifact(name, file=entry)
            if isinstance(entry, str)
            else load(Artifact, entry, f"artifacts.{name}")
        )
        if not artifact.file:
            raise ValueError(f"artifact {name!r} names no file")
        out[name] = artifact
    return out


def write_result(path: Path, result: Result, beside: dict[str, bytes] | None = None) -> None:
    """Write a result file, and with ``beside`` the files it names (figures, per-example outcomes, by
    file name, in its folder) together with it: all land, or none (:func:`vicinal.core.io.atomic_write_all`;
    the result is renamed into place last)."""
    text = json.dumps(result.to_json(), indent=2, default=str) + "\n"
    if not beside:
        atomic_write_text(path, text)
        return
    atomic_write_all({**{path.with_name(name): blob for name, blob in beside.items()}, path: text.encode()})


def read_result(path: Path) -> Result:
    """Load and check one result file; raises ValueError with the reason when unusable."""
    try:
        data, _ = decode_json(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ValueError(f"not readable JSON ({exc})") from None
    return Result.from_json(data, path)


def _check_reported(values: dict[str, Any]) -> None:
    """Validate a paper's reported numbers and give them the identity a measured result has: no seed, and
    a ``run_id`` derived from the citation so that each cited table is its own leaderboard row."""
    rep = load(Reported, values["reported"], "reported")
    stray = sorted(set(rep.std) - set(values["metrics"]))
    if stray:
        raise ValueError(f"reported.std names metrics that are not in metrics: {', '.join(stray)}")
    values["reported"] = rep
    values["seed"] = None
    identity = json.dumps([values["suite"], values["method"], rep.to_json()], sort_keys=True, default=str)
    values.setdefault("run_id", "reported-" + hashlib.sha256(identity.encode()).hexdigest()[:12])
    values.setdefault("training_id", values["run_id"])


@dataclass
class Store:
    """All readable result files under a folder, plus the ones skipped and why."""

    results: list[Result]
    skipped: list[tuple[Path, str]]


def load_store(results_dir: Path, index: Path | None = None) -> Store:
    """Every result file under ``results_dir``. With ``index`` (a file in the cache folder, see
    :mod:`vicinal.store.index`), unchanged files are taken from it instead of being decoded again; the
    results are the same, but their dicts may be shared between results: treat them as read-only."""
    results: list[Result] = []
    skipped: list[tuple[Path, str]] = []
    check_folder(results_dir, "results folder")  # a file, or a symbolic link loop: not "no results"
    if not results_dir.is_dir():
        return Store(results, skipped)
    reader = None
    if index is not None:
        from vicinal.store.index import ResultIndex

        reader = ResultIndex(index)
    memo: dict[int, Any] = {}
    docs: list[Any] = []  # kept alive while ``memo``'s ids refer to them
    with bulk_allocation():
        for path in sorted(results_dir.rglob("*.json")):
            rel = path.relative_to(results_dir)
            if any(part.startswith(".") for part in rel.parts):
                continue
            try:
                if reader is None:
                    results.append(read_result(path))
                else:
                    docs.append(reader.document(path, rel.as_posix()))
                    results.append(Result.from_json(docs[-1], path, memo))
            except ValueError as exc:
                skipped.append((path, str(exc)))
    if reader is not None:
        reader.save()
    return Store(results, skipped)
