"""Result files: one JSON per (suite, method, seed), written atomically, holding the full protocol.

Layout: ``<results>/<suite>/<method>/<run_id>-seed<seed>.json`` where ``run_id`` hashes everything
that determines the run except the seed, so the seeds of one configuration sit side by side.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vicinal.io import atomic_write_text

SCHEMA_VERSION = 1
RESULTS_ENV = "VICINAL_RESULTS_DIR"
REQUIRED_KEYS = ("schema", "suite", "method", "seed", "run_id", "metrics", "metric_info")
#: A row reported by a paper needs less: it was not run here, so it has no seed, run or environment.
REPORTED_REQUIRED_KEYS = ("schema", "suite", "method", "metrics", "reported")
REPORTED_TEXT_FIELDS = ("url", "table", "note")


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
    return results_dir / suite / method / f"{run_id[:12]}-seed{seed}.json"


def write_result(path: Path, result: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(result, indent=2, sort_keys=False, default=str) + "\n")


def read_result(path: Path) -> dict[str, Any]:
    """Load and sanity-check one result file; raises ValueError with the reason when unusable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    reported = "reported" in data
    missing = [k for k in (REPORTED_REQUIRED_KEYS if reported else REQUIRED_KEYS) if k not in data]
    if missing:
        raise ValueError(f"missing keys {', '.join(missing)}")
    if data["schema"] != SCHEMA_VERSION:
        raise ValueError(f"schema {data['schema']} (this vicinal reads {SCHEMA_VERSION})")
    if not isinstance(data["metrics"], dict) or not all(
        isinstance(v, int | float) for v in data["metrics"].values()
    ):
        raise ValueError("metrics must map names to numbers")
    if reported:
        _check_reported(data)
    return data


def _check_reported(data: dict[str, Any]) -> None:
    """Validate a paper's reported numbers and give them the identity a measured result has: no seed, and
    a ``run_id`` derived from the citation so that each cited table is its own leaderboard row."""
    rep = data["reported"]
    if not isinstance(rep, dict) or not isinstance(rep.get("citation"), str) or not rep["citation"].strip():
        raise ValueError('"reported" must be an object with a non-empty "citation"')
    bad = [k for k in REPORTED_TEXT_FIELDS if k in rep and not isinstance(rep[k], str)]
    if bad:
        raise ValueError(f"reported.{bad[0]} must be a string")
    if "n" in rep and (not isinstance(rep["n"], int) or isinstance(rep["n"], bool) or rep["n"] < 1):
        raise ValueError("reported.n (the paper's number of runs) must be a positive integer")
    std = rep.get("std", {})
    if not isinstance(std, dict) or not all(isinstance(v, int | float) for v in std.values()):
        raise ValueError("reported.std must map metric names to numbers")
    stray = sorted(set(std) - set(data["metrics"]))
    if stray:
        raise ValueError(f"reported.std names metrics that are not in metrics: {', '.join(stray)}")
    if not isinstance(data.setdefault("metric_info", {}), dict):
        raise ValueError("metric_info must be an object")
    data.setdefault("seed", None)
    identity = json.dumps([data["suite"], data["method"], rep], sort_keys=True, default=str)
    data.setdefault("run_id", "reported-" + hashlib.sha256(identity.encode()).hexdigest()[:12])


@dataclass
class Store:
    """All readable result files under a folder, plus the ones skipped and why."""

    results: list[dict[str, Any]]
    skipped: list[tuple[Path, str]]


def load_store(results_dir: Path) -> Store:
    results, skipped = [], []
    if results_dir.is_dir():
        for path in sorted(results_dir.rglob("*.json")):
            if any(part.startswith(".") for part in path.relative_to(results_dir).parts):
                continue
            try:
                data = read_result(path)
            except ValueError as exc:
                skipped.append((path, str(exc)))
                continue
            data["_path"] = str(path)
            results.append(data)
    return Store(results, skipped)


def git_commit() -> str | None:
    """The commit of the vicinal source tree, when it is a git checkout (editable installs)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if out.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: Any) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    import torch

    versions = {"python": sys.version.split()[0]}
    for pkg in ("vicinal", "torch", "torchvision", "numpy", "netcal", "scikit-learn"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    dev = {"type": str(device)}
    if getattr(device, "type", "") == "cuda":
        dev["name"] = torch.cuda.get_device_name(device)
    else:
        dev["name"] = platform.processor() or platform.machine()
        dev["torch_threads"] = torch.get_num_threads()
    return {"versions": versions, "device": dev, "platform": platform.platform(), "git_commit": git_commit()}
