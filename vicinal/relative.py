"""Metrics relative to the suite's baseline method, derived when a leaderboard is rendered.

Hendrycks & Dietterich normalise corruption errors by AlexNet's; CIFAR and Tiny-ImageNet have no AlexNet
reference, so vicinal normalises by the baseline rows of the same suite (``[run] baseline``, ERM by
default; same epochs and training-set size), averaged over their seeds. Deriving at render time keeps
every result file self-contained and lets the numbers follow when the baseline is re-run (``c_`` names:
``mce`` is the calibration evaluator's maximum calibration error):

- ``ce/<c>``  = Σ_s err_{c,s} / Σ_s err^{erm}_{c,s}
- ``c_mce``     = mean of ``ce/<c>`` over the common corruptions the result has
- ``c_rel_mce`` = mean over c of Σ_s (err_{c,s} − err_clean) / Σ_s (err^{erm}_{c,s} − err^{erm}_clean)
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections import defaultdict

from vicinal.results import Result

DEFAULT_BASELINE = "erm"  # when a result does not record its suite's baseline
_CELL = "c_acc/"


def _cells(result: Result) -> dict[str, dict[int, float]]:
    """Per-corruption, per-severity errors from the ``c_acc/<corruption>/s<k>`` metrics."""
    out: dict[str, dict[int, float]] = defaultdict(dict)
    for name, value in result.metrics.items():
        info = result.metric_info.get(name, {})
        if info.get("family") == "c_acc" and info.get("by") == "cell":
            corruption, _, severity = info["key"].rpartition("/")
            out[corruption][int(severity)] = 1.0 - float(value)
    return out


def _common(result: Result) -> list[str]:
    return list(result.protocol.get("corruption", {}).get("common", []))


def baseline_of(result: Result) -> str:
    """The method relative metrics are computed against: the suite's ``[run] baseline`` as recorded."""
    return str(result.suite_spec.get("baseline", DEFAULT_BASELINE))


def _baseline_for(result: Result, baselines: list[Result]) -> list[Result]:
    def key(r: Result) -> tuple:
        return (r.epochs, r.n_train)

    same = [b for b in baselines if key(b) == key(result)]
    return same or baselines


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else float("nan")


def _share(used: list[str], listed: list[str], baseline: str) -> str:
    if len(used) == len(listed):
        return f"the {len(used)} common corruptions"
    left = ", ".join(c for c in listed if c not in used)
    return f"{len(used)} of the {len(listed)} common corruptions (undefined against {baseline}: {left})"


def add_relative_metrics(results: list[Result]) -> list[Result]:
    """Copies of one suite's results with ``c_mce``, ``c_rel_mce`` and ``ce/<c>`` added where both the
    result and a baseline result (the suite's ``baseline`` method) carry per-cell corruption accuracies;
    other results are returned as is."""
    out = []
    all_cells = [_cells(r) for r in results]
    # Once per baseline name, not per result: a 1,000-file suite made this quadratic (seconds).
    baselines_of: dict[str, list[Result]] = {}
    for r, cells in zip(results, all_cells, strict=True):
        baseline = baseline_of(r)
        if baseline not in baselines_of:
            baselines_of[baseline] = [
                b
                for b, bc in zip(results, all_cells, strict=True)
                if b.method == baseline and bc and "acc" in b.metrics
            ]
        baselines = baselines_of[baseline]
        if not cells or "acc" not in r.metrics or not baselines:
            out.append(r)
            continue
        base = _baseline_for(r, baselines)
        base_cells = [_cells(b) for b in base]
        base_clean = statistics.fmean(1.0 - float(b.metrics["acc"]) for b in base)
        clean = 1.0 - float(r.metrics["acc"])
        metrics, info = dict(r.metrics), dict(r.metric_info)
        ces, rel = {}, {}
        for corruption, errs in cells.items():
            severities = sorted(errs)
            if not all(set(severities) <= set(bc.get(corruption, {})) for bc in base_cells):
                continue
            b = {s: statistics.fmean(bc[corruption][s] for bc in base_cells) for s in severities}
            ces[corruption] = _ratio(sum(errs.values()), sum(b.values()))
            rel[corruption] = _ratio(
                sum(errs[s] - clean for s in severities), sum(b[s] - base_clean for s in severities)
            )
        # CE is undefined where the baseline makes no error at all (ERM is perfect on most corrupted digits)
        # and relative CE where its corrupted error does not exceed its clean error: such corruptions are
        # left out of the means, and the descriptions say how many remain.
        listed = [c for c in _common(r) if c in ces]
        common = [c for c in listed if math.isfinite(ces[c])]
        rel_common = [c for c in listed if math.isfinite(rel[c])]
        if not common:
            out.append(r)
            continue
        baseline_note = f"relative to the {baseline} rows of this suite (same epochs, n_train; seed mean)"
        for c, v in ces.items():
            if not math.isfinite(v):
                continue
            metrics[f"ce/{c}"] = v
            info[f"ce/{c}"] = {
                "label": f"CE {c}",
                "higher_is_better": False,
                "percent": True,
                "description": f"corruption error of {c} summed over severities, {baseline_note}",
                "headline": False,
                "family": "ce",
                "by": "corruption",
                "key": c,
                "evaluator": "corruption",
            }
        metrics["c_mce"] = statistics.fmean(ces[c] for c in common)
        if rel_common:
            metrics["c_rel_mce"] = statistics.fmean(rel[c] for c in rel_common)
        info["c_mce"] = {
            "label": "mCE",
            "higher_is_better": False,
            "percent": True,
            "description": f"mean corruption error over {_share(common, listed, baseline)}, {baseline_note}",
            "headline": True,
            "evaluator": "corruption",
        }
        info["c_rel_mce"] = {
            "label": "rel. mCE",
            "higher_is_better": False,
            "percent": True,
            "description": "mean relative corruption error (error above the clean error) over "
            f"{_share(rel_common, listed, baseline)}, {baseline_note}",
            "headline": False,
            "evaluator": "corruption",
        }
        out.append(dataclasses.replace(r, metrics=metrics, metric_info=info))
    return out
