"""Which result files form one leaderboard row, and how the rows of one method are told apart.

A row is one trained configuration (method, ``training_id``: settings, data and code) evaluated under one
protocol; files of several seeds, and files that evaluated the same model again, join it. Rows that differ
in any setting or code fingerprint are never averaged, and are labelled with what differs.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from vicinal.core.errors import VicinalError
from vicinal.core.fingerprints import short
from vicinal.store.results import Result

#: A row: (method, training_id, index of its evaluator-protocol group).
RowKey = tuple[str, str, int]

#: The rule for two files of one run and seed, as the legend states it.
DUPLICATE_RULE = (
    "two result files of one run and seed (a copied folder, an edited file): the one created last is "
    "shown (its recorded time, then its file's), the other left out; each pair is named in a warning"
)


@dataclass(frozen=True)
class Duplicate:
    """Files that are the same run (suite, method, run id) and seed: ``kept`` is shown, ``left_out`` not."""

    suite: str
    method: str
    run_id: str
    seed: int | None
    kept: str
    left_out: tuple[str, ...]

    def message(self) -> str:
        others = ", ".join(self.left_out)
        return (
            f"{self.kept} and {others} are the same run ({self.suite}, {self.method}, run "
            f"{self.run_id[:12]}, seed {self.seed}); {self.kept} is shown (created last), the other is left "
            "out: delete the copy you do not mean"
        )


def _newest_first(results: list[Result]) -> list[Result]:
    """Newest first: by the recorded creation time, then by the file's modification time, then path."""

    def mtime(r: Result) -> float:
        try:
            return r.path.stat().st_mtime if r.path is not None else 0.0
        except OSError:
            return 0.0

    return sorted(results, key=lambda r: (r.created, mtime(r), str(r.path)), reverse=True)


def drop_duplicates(results: list[Result]) -> tuple[list[Result], list[Duplicate]]:
    """The results with one file per (suite, method, run id, seed) — the newest
    (:data:`DUPLICATE_RULE`) — and what was left out. Without this, a second file of a run would be merged
    into its row as if it were a re-evaluation, its numbers replacing the first's without a word."""
    by_run: dict[tuple[str, str, str, int | None], list[Result]] = defaultdict(list)
    for r in results:
        by_run[(r.suite, r.method, r.run_id, r.seed)].append(r)
    kept: list[Result] = []
    found: list[Duplicate] = []
    for (suite, method, run_id, seed), files in by_run.items():
        if len(files) == 1:
            kept.append(files[0])
            continue
        ordered = _newest_first(files)
        kept.append(ordered[0])
        found.append(
            Duplicate(
                suite, method, run_id, seed, str(ordered[0].path), tuple(str(r.path) for r in ordered[1:])
            )
        )
    return kept, found


def _settings(result: Result) -> dict[str, Any]:
    """What tells configurations of one method apart, flattened for display: hyperparameters, training
    settings, evaluator settings, and the code that made the numbers."""
    flat: dict[str, Any] = dict(result.method_info.get("hyperparameters", {}))
    if result.evaluated is not None:  # an evaluated model is told apart by its weights
        flat["weights"] = str(result.evaluated.get("weights_sha256", ""))[:8]
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


def _is_code(setting: str) -> bool:
    return setting.endswith(" code") or setting == "vicinal"


def variant_labels(rows: dict[RowKey, list[Result]]) -> dict[RowKey, str]:
    """Row labels: the method's name, plus the settings that differ where it ran in several configurations.
    A setting only some rows have (an evaluator that others did not run) does not tell rows apart.

    Rows that differ in the code that made them are told apart by age, not by hash: the rows of the newest
    code carry no code label, older ones say ``earlier code (vicinal 0.1.0, 2026-12-02)`` — the version
    and the date of their newest file (plus the differing fingerprints where that is not enough)."""
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
        code = [k for k in differing if _is_code(k)]
        earlier = _earlier_code(keys, rows, settings, code)
        shown = {
            key: [f"{k}={settings[key][k]}" for k in differing if not _is_code(k) and k in settings[key]]
            + ([earlier[key]] if key in earlier else [])
            for key in keys
        }
        joined = {key: ", ".join(parts) for key, parts in shown.items()}
        for key in keys:
            text = joined[key]
            if list(joined.values()).count(text) > 1:  # nothing shown tells it apart: its run id does
                text = ", ".join([*shown[key], f"run {key[1][:6]}"])
            labels[key] = f"{method} [{text}]" if text else method
    return labels


def _earlier_code(
    keys: list[RowKey], rows: dict[RowKey, list[Result]], settings: dict[RowKey, dict], code: list[str]
) -> dict[RowKey, str]:
    """``earlier code (…)`` for each row whose code is not the newest among ``keys`` (by its newest file)."""
    if not code:
        return {}
    signature = {key: tuple(str(settings[key].get(k)) for k in code) for key in keys}
    newest = {key: max(r.created for r in rows[key]) for key in keys}
    latest = signature[max(keys, key=lambda k: newest[k])]
    out = {}
    for key in keys:
        if signature[key] == latest:
            continue
        version = settings[key].get("vicinal", "?")
        out[key] = f"earlier code (vicinal {version}, {newest[key][:10]})"
    # Two earlier generations with the same version and day: add what tells them apart.
    for label in set(out.values()):
        same = [k for k, v in out.items() if v == label]
        if len({signature[k] for k in same}) > 1:
            for k in same:
                hashes = ", ".join(
                    f"{c} {settings[k].get(c)}" for c in code if c != "vicinal" and c in settings[k]
                )
                out[k] = f"{label[:-1]}, {hashes})"
    return out


_KEY_ENCODER = json.JSONEncoder(sort_keys=True, default=str)  # one encoder, not one per call (json.dumps)


def _protocol_key(proto: dict[str, Any], cache: dict[int, str]) -> str:
    """The protocol as a canonical string, computed once per dict: results read through the result index
    share their protocol dicts, and encoding them is most of a 10,000-file leaderboard. ``cache`` is keyed
    by ``id`` and lives only while the results holding those dicts do."""
    key = cache.get(id(proto))
    if key is None:
        key = cache[id(proto)] = _KEY_ENCODER.encode(proto)
    return key


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
    cache: dict[int, str] = {}
    for r in sorted(results, key=lambda r: (r.created, str(r.path))):
        protos = {name: _protocol_key(p, cache) for name, p in r.protocol.items()}
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


def _merge(old: Result, new: Result) -> Result:
    return dataclasses.replace(
        new,
        metrics={**old.metrics, **new.metrics},
        metric_info={**old.metric_info, **new.metric_info},
        protocol={**old.protocol, **new.protocol},
        declares={**old.declares, **new.declares},
        artifacts={**old.artifacts, **new.artifacts},
    )


def protocols_of(rows: dict[RowKey, list[Result]]) -> dict[str, list[dict[str, Any]]]:
    seen: dict[str, dict[str, dict]] = defaultdict(dict)
    cache: dict[int, str] = {}
    for runs in rows.values():
        for r in runs:
            for name, proto in r.protocol.items():
                seen[name].setdefault(_protocol_key(proto, cache), proto)
    return {name: list(protos.values()) for name, protos in seen.items()}


def latest_code(
    rows: dict[RowKey, list[Result]], paths: dict[RowKey, list[str]]
) -> tuple[dict[RowKey, list[Result]], list[str]]:
    """Each configuration at its newest code only (``--latest``): rows of one method that differ in
    nothing but the code that made them (every edit of a plugin makes one) are one group, and the rows
    of the code of the group's newest file stay. Returns the kept rows and the files of the others
    (sorted), which a person may delete to prune them."""
    settings = {key: _settings(runs[-1]) for key, runs in rows.items()}
    groups: dict[tuple[str, str], list[RowKey]] = defaultdict(list)
    for key, flat in settings.items():
        rest = {k: v for k, v in flat.items() if not _is_code(k)}
        groups[(key[0], _KEY_ENCODER.encode(rest))].append(key)
    kept: dict[RowKey, list[Result]] = {}
    hidden: list[str] = []
    for keys in groups.values():
        code = {k: _KEY_ENCODER.encode({c: v for c, v in settings[k].items() if _is_code(c)}) for k in keys}
        newest = max(keys, key=lambda k: max(r.created for r in rows[k]))
        for key in keys:
            if code[key] == code[newest]:
                kept[key] = rows[key]
            else:
                hidden += paths.get(key, [])
    return {k: v for k, v in rows.items() if k in kept}, sorted(hidden)


def check_select(select: str) -> None:
    """``--select`` must be a validation metric (``val_*``): choosing on the test split would report the
    winner's luck as its skill."""
    if not select.startswith("val_"):
        raise VicinalError(
            f"--select {select}: choose a metric measured on the validation split (val_acc, val_nll); "
            "selecting on test metrics would overstate the chosen setting"
        )


def best_of(
    rows: dict[RowKey, list[Result]], params: list[str], select: str
) -> tuple[dict[RowKey, list[Result]], list[str], set[str]]:
    """Each method at its best setting of ``params``: rows of one method that differ only in those settings
    (a sweep over them) are one group, and the row with the best seed-mean of ``select`` stays. ``select``
    must be a validation metric (``val_*``): choosing on the test split would report the winner's luck as
    its skill. Returns the kept rows, one line per group saying what was chosen over what (rows where
    none of ``params`` varies come back as they are), and the names of the settings the rows have."""
    check_select(select)
    settings = {key: _settings(runs[-1]) for key, runs in rows.items()}
    groups: dict[tuple[str, str], list[RowKey]] = defaultdict(list)
    for key, flat in settings.items():
        rest = {k: v for k, v in flat.items() if k not in params}
        groups[(key[0], _KEY_ENCODER.encode(rest))].append(key)
    kept: dict[RowKey, list[Result]] = {}
    notes: list[str] = []
    for (method, _), keys in sorted(groups.items(), key=lambda item: item[0][0]):
        if len(keys) == 1:
            kept[keys[0]] = rows[keys[0]]
            continue
        scores: dict[RowKey, float] = {}
        for key in keys:
            values = [r.metrics[select] for r in rows[key] if select in r.metrics]
            if len(values) != len(rows[key]):
                raise VicinalError(
                    f"--best-of: {method} [{_shown(settings[key], params)}] has no {select} in every seed "
                    "(results written without a validation split or by an older vicinal); run them again, "
                    "or choose another --select"
                )
            scores[key] = sum(values) / len(values)
        info = rows[keys[0]][0].metric_info.get(select)
        sign = -1.0 if info is None or info.higher_is_better else 1.0
        ranked = sorted(keys, key=lambda k: (sign * scores[k], _shown(settings[k], params)))
        best = ranked[0]
        kept[best] = rows[best]
        others = "; ".join(f"{_shown(settings[k], params)}: {scores[k]:.4g}" for k in ranked[1:])
        notes.append(
            f"{method}: {_shown(settings[best], params)} chosen by {select} {scores[best]:.4g} "
            f"(mean over {len(rows[best])} seed(s)) over {others}"
        )
    known = {k for flat in settings.values() for k in flat if " code" not in k}
    return kept, notes, known


def _shown(flat: dict[str, Any], params: list[str]) -> str:
    return ", ".join(f"{p}={flat[p]}" for p in params if p in flat) or "default"
