"""Metrics relative to the suite's baseline method, derived when a leaderboard is rendered: the corruption
evaluator's declared derivation ``corruption_error`` (see :mod:`vicinal.board.derived`).

Hendrycks & Dietterich normalise corruption errors by AlexNet's; CIFAR and Tiny-ImageNet have no AlexNet
reference, so vicinal normalises by the baseline rows of the same suite (``[run] baseline``, ERM by
default; same epochs and training-set size), averaged over their seeds. Deriving at render time keeps
every result file self-contained and lets the numbers follow when the baseline is re-run (``c_`` names:
``mce`` is the calibration evaluator's maximum calibration error). With err_{c,s} a cell's error, over
the common corruptions c and severities s:

- ``ce/<c>``    = Σ_s err_{c,s} / Σ_s err^{erm}_{c,s}   (the per-corruption breakdown)
- ``c_mce``     = Σ_{c,s} err_{c,s} / Σ_{c,s} err^{erm}_{c,s}
- ``c_rel_mce`` = Σ_{c,s} (err_{c,s} − err_clean) / Σ_{c,s} (err^{erm}_{c,s} − err^{erm}_clean)

``c_mce`` is a ratio of errors summed over the same cells that ``c_acc`` averages, i.e.
(1 − c_acc) / (1 − c_acc^{erm}): it cannot rank two methods in the opposite order to ``c_acc``.
Hendrycks's mCE is instead the *mean of the per-corruption ratios*; where the baseline makes almost no
error on some corruption (on the easy digits suite: one or two wrong images out of 2,250), that
corruption's ratio explodes and dominates the mean, and a method with the better corrupted accuracy showed
the worse mCE (282 % against ERM's 100 %). Summing first weights each corruption by the baseline's errors
on it, so a corruption the baseline barely gets wrong barely counts. The per-corruption ratios remain as
the ``ce/<c>`` breakdown, defined where the baseline makes at least one error.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import statistics
from collections import defaultdict

from vicinal.board.derived import register_derivation
from vicinal.store.declarations import MetricInfo
from vicinal.store.results import Result

DEFAULT_BASELINE = "erm"  # when a result does not record its suite's baseline
log = logging.getLogger("vicinal")
_CELL = "c_acc/"


def _cells(result: Result) -> dict[str, dict[int, float]]:
    """Per-corruption, per-severity errors from the ``c_acc/<corruption>/s<k>`` metrics."""
    out: dict[str, dict[int, float]] = defaultdict(dict)
    for name, value in result.metrics.items():
        info = result.metric_info.get(name)
        if info is not None and info.family == "c_acc" and info.by == "cell":
            corruption, _, severity = info.key.rpartition("/")
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


def _mean(values: list[float]) -> float:
    """The mean, divided first where the sum would overflow (a hand-edited 1e308 must not crash a board)."""
    try:
        return statistics.fmean(values)
    except OverflowError:
        return math.fsum(v / len(values) for v in values)
    except ValueError:  # inf − inf
        return float("nan")


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else float("nan")


@register_derivation("corruption_error")
def add_relative_metrics(results: list[Result]) -> list[Result]:
    """Copies of one suite's results with ``c_mce``, ``c_rel_mce`` and ``ce/<c>`` added where both the
    result and a baseline result (the suite's ``baseline`` method) carry per-cell corruption accuracies;
    other results are returned as is."""
    out = []
    missing: set[tuple[str, str]] = set()
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
        if cells and "acc" in r.metrics and not baselines:
            missing.add((r.suite, baseline))
        if not cells or "acc" not in r.metrics or not baselines:
            out.append(r)
            continue
        base = _baseline_for(r, baselines)
        base_cells = [_cells(b) for b in base]
        base_clean = _mean([1.0 - float(b.metrics["acc"]) for b in base])
        clean = 1.0 - float(r.metrics["acc"])
        metrics, info = dict(r.metrics), dict(r.metric_info)
        # Per corruption: (Σ_s err, Σ_s err^base, Σ_s (err − clean), Σ_s (err^base − clean^base)).
        sums: dict[str, tuple[float, float, float, float]] = {}
        for corruption, errs in cells.items():
            severities = sorted(errs)
            if not all(set(severities) <= set(bc.get(corruption, {})) for bc in base_cells):
                continue
            b = {s: _mean([bc[corruption][s] for bc in base_cells]) for s in severities}
            sums[corruption] = (
                sum(errs.values()),
                sum(b.values()),
                sum(errs[s] - clean for s in severities),
                sum(b[s] - base_clean for s in severities),
            )
        common = [c for c in _common(r) if c in sums]
        mce = _ratio(sum(sums[c][0] for c in common), sum(sums[c][1] for c in common))
        if not math.isfinite(mce):  # the baseline makes no error on any common cell: nothing to divide by
            out.append(r)
            continue
        rel_mce = _ratio(sum(sums[c][2] for c in common), sum(sums[c][3] for c in common))
        baseline_note = f"relative to the {baseline} rows of this suite (same epochs, n_train; seed mean)"
        for c, (err, base_err, _, _) in sums.items():
            if base_err <= 0:  # x / 0: the baseline never errs on this corruption
                continue
            metrics[f"ce/{c}"] = err / base_err
            info[f"ce/{c}"] = MetricInfo(
                f"CE {c}",
                False,
                percent=True,
                description=f"corruption error of {c}: errors summed over severities, divided by the "
                f"{baseline} rows' sum, {baseline_note}",
                headline=False,
                family="ce",
                by="corruption",
                key=c,
            )
        cells_note = f"the {len(common)} common corruptions × severities"
        metrics["c_mce"] = mce
        info["c_mce"] = MetricInfo(
            "mCE",
            False,
            percent=True,
            description=f"corruption error: errors summed over {cells_note}, divided by the {baseline} "
            f"rows' sum over the same cells, i.e. (1 − acc-C) / (1 − acc-C of {baseline}), so it ranks as "
            "acc-C does (Hendrycks's mean of per-corruption ratios is not used: ratios against a baseline "
            f"error near zero explode), {baseline_note}",
        )
        if math.isfinite(rel_mce):
            metrics["c_rel_mce"] = rel_mce
            info["c_rel_mce"] = MetricInfo(
                "rel. mCE",
                False,
                percent=True,
                description="relative corruption error: error above the clean error, summed over "
                f"{cells_note}, divided by the {baseline} rows' sum, {baseline_note}",
                headline=False,
            )
        out.append(dataclasses.replace(r, metrics=metrics, metric_info=info))
    for suite, baseline in sorted(missing):  # the columns are absent: say why, once
        log.warning(
            "suite %s: mCE and the CE breakdown are not shown: its baseline %r has no result with "
            "per-corruption accuracies here; run it (vicinal run --suite %s --methods %s)",
            suite,
            baseline,
            suite,
            baseline,
        )
    return out
