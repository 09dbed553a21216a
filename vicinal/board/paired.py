"""Differences between two configurations, with a confidence interval and a plain verdict.

For a metric m, two leaderboard rows A and B (each one result per seed) give the point estimate
Δ = mean over A's seeds of m − mean over B's seeds of m (the leaderboard's means). Its interval:

1. **Test examples (paired bootstrap).** Where every run of A and B stored per-example outcomes for m
   (:mod:`vicinal.store.outcomes`) on the *same* examples, R resamples (default 2,000) each draw n of the n
   test examples with replacement — **one draw shared by every run of A and B**, since every seed of both was
   scored on the same images; that is the pairing — recompute m for every run from the resampled
   examples (ECE and the other calibration errors are recomputed from the resampled confidences, not
   averaged), and form Δ*_r = mean_A m*_r − mean_B m*_r. The draw is seeded by (``seed``, the example
   set's id), so every metric on one example set sees the same resamples and reruns give the same numbers.
2. **Training seeds.** Where the rows have three or more runs between them, the per-seed values give the
   pooled within-row variance s² = (Σ_A (m_s − m̄_A)² + Σ_B (m_s − m̄_B)²) / (k_A + k_B − 2) and the
   standard error of Δ due to seeds, se = s·√(1/k_A + 1/k_B). Each resample adds se·t_r, t_r drawn from
   Student's t with k_A + k_B − 2 degrees of freedom (seeded by ``seed`` and the metric's name).
   Resampling the seeds themselves instead would understate their variance by a factor (k − 1)/k — half
   with two seeds — and a percentile of two or three values says little; the t draw carries the
   uncertainty of s itself, which with 2 + 2 seeds is large (2 degrees of freedom).
3. The interval is the ((1 − level)/2, (1 + level)/2) quantiles of Δ*_r + se·t_r (numpy's default linear
   interpolation).

Every seed of a row is scored on the same test images, so the spread of the per-seed values is training
variability on this test set and the bootstrap in 1. is the test-set sampling variability: the two are
added, not double-counted (except for the seed × example interaction, which both include; that errs
towards wider intervals).

Where per-example data cannot be used — no statistic recorded for m (γ, the linearity measures, NLL under
corruption, derived metrics such as mCE), a file without it (written before vicinal stored it), or runs
scored on different examples (never paired) — the interval uses the seeds alone: Δ ± t_{df, (1+level)/2}·se
(needs ≥ 3 runs); with one seed each there is no interval and the verdict is "undetermined". Every
difference says which of these it is.

This module needs numpy only, not torch or scipy (the t quantile is computed here): the leaderboard marks
its best values with it.
"""

from __future__ import annotations

import math
import statistics
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vicinal.core.errors import VicinalError
from vicinal.core.hparams import SEED_MAX
from vicinal.store.declarations import MetricInfo
from vicinal.store.outcomes import (
    ARTIFACT,
    ExampleFile,
    ExampleSet,
    Statistic,
    designs,
    read_examples,
    resample_weights,
)
from vicinal.store.results import Result

RESAMPLES = 2000
#: A bootstrap this long takes 50× the default; beyond it a board would not finish in a working day.
MAX_RESAMPLES = 100_000
LEVEL = 0.95
SEED = 0
#: Resamples drawn per matrix product (bounds memory: 250 × n weights).
_CHUNK = 250
#: Largest gap tolerated between a result file's value and the same metric recomputed from its
#: per-example file (the confidences are rounded up to a step of 1/65520); larger means the files do
#: not belong together, and the per-example data is not used.
_TOLERANCE = 1e-3

Basis = Literal["examples+seeds", "examples", "seeds", "none"]


@dataclass
class Side:
    """One row of a comparison: its label and one result per seed."""

    label: str
    results: list[Result]

    @property
    def seeds(self) -> list[int]:
        return sorted(r.seed for r in self.results if r.seed is not None)


@dataclass
class Difference:
    """A − B for one metric, with its interval and where the interval comes from."""

    metric: str
    info: MetricInfo
    a: float
    b: float
    runs_a: int
    runs_b: int
    diff: float
    low: float | None
    high: float | None
    level: float
    basis: Basis
    #: The examples the bootstrap resampled, e.g. "all 1017 test examples".
    examples: str = ""
    #: Why the interval is what it is (a fallback's reason), for the reader.
    note: str = ""
    seed_df: int = 0

    @property
    def winner(self) -> int | None:
        """+1: A is better, −1: B is better, 0: no detectable difference, None: no interval."""
        if self.low is None or self.high is None:
            return None
        sign = 1 if self.info.higher_is_better else -1
        if self.low > 0:
            return sign
        if self.high < 0:
            return -sign
        return 0

    def verdict(self, a: str = "A", b: str = "B") -> str:
        return {1: f"{a} better", -1: f"{b} better", 0: "no detectable difference", None: "undetermined"}[
            self.winner
        ]

    @property
    def source(self) -> str:
        """Where the interval comes from, in words."""
        if self.basis == "examples+seeds":
            return f"paired bootstrap over {self.examples} + seed spread (t, {self.seed_df} df)"
        if self.basis == "examples":
            return f"paired bootstrap over {self.examples}; one seed each, seed variability not included"
        if self.basis == "seeds":
            return f"seed spread only (t, {self.seed_df} df): {self.note}"
        return f"no interval: {self.note}"

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "label": self.info.label,
            "higher_is_better": self.info.higher_is_better,
            "percent": self.info.percent,
            "a": self.a,
            "b": self.b,
            "runs_a": self.runs_a,
            "runs_b": self.runs_b,
            "diff": self.diff,
            "low": self.low,
            "high": self.high,
            "level": self.level,
            "basis": self.basis,
            "examples": self.examples,
            "seed_df": self.seed_df,
            "note": self.note,
            "source": self.source,
            "winner": self.winner,
        }


# ---------------------------------------------------------------- per-example files and their resamples


@dataclass
class Resampler:
    """Reads per-example files once and keeps each (file, metric)'s resampled values, so a leaderboard
    that compares many pairs of rows recomputes nothing. Its settings are the interval's."""

    resamples: int = RESAMPLES
    seed: int = SEED
    level: float = LEVEL
    _files: dict[Any, ExampleFile | str] = field(default_factory=dict)
    _per_set: dict[tuple, np.ndarray] = field(default_factory=dict)
    #: Every file whose values are kept, by id: holding them keeps their ids from being reused by
    #: another file (the keys of ``_per_set`` name files by id).
    _held: dict[int, ExampleFile] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Checked when the options are read: a count that cannot finish, or a seed numpy refuses, would
        # otherwise surface as a hang or a traceback half-way through a board.
        if isinstance(self.resamples, bool) or not isinstance(self.resamples, int):
            raise VicinalError(f"resamples = {self.resamples!r}: give a whole number")
        if not 100 <= self.resamples <= MAX_RESAMPLES:
            raise VicinalError(
                f"--resamples {self.resamples}: give 100 to {MAX_RESAMPLES:,} (each resample recomputes "
                "every metric; the default is 2,000)"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= SEED_MAX:
            raise VicinalError(f"--seed {self.seed!r}: give a whole number from 0 to {SEED_MAX:,}")
        if not (isinstance(self.level, int | float) and 0.5 <= self.level <= 0.999):
            raise VicinalError(f"--level {self.level!r}: give a confidence level from 0.5 to 0.999")

    def examples(self, result: Result) -> ExampleFile | str:
        """The result's per-example file, or why there is none."""
        artifact = result.artifacts.get(ARTIFACT)
        if artifact is None or result.path is None:
            return "no per-example file (written before vicinal stored one)"
        path = Path(result.path).parent / artifact.file
        try:
            stat = path.stat()
        except OSError:
            return f"{artifact.file} not found"
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        if key not in self._files:
            try:
                self._files[key] = read_examples(path)
            except ValueError as exc:
                self._files[key] = f"{artifact.file}: {exc}"
        return self._files[key]

    def replicates(self, items: Sequence[tuple[ExampleFile, str]]) -> list[np.ndarray]:
        """The metric under each resample, per (file, metric). Items on one example set share its draws;
        each set's values are computed once (``c_ece`` and ``c_ece/s3`` share cells), in batches."""
        todo: dict[str, dict[tuple, tuple[tuple[ExampleSet, int | None], Statistic]]] = {}
        for file, metric in items:
            stat = file.statistics[metric]
            self._held[id(file)] = file
            if all(self._key(file, name, group, stat) in self._per_set for name, group in stat.parts()):
                continue
            # A set's mean or calibration error is computed with its whole family — every set of its file
            # on the same examples with the statistic's column, in the file's order — never with whatever
            # else was asked: BLAS sums a product in an order that depends on the matrix's width, so a
            # set's replicates would otherwise change in their last bits with the company it was computed
            # in. A ranking statistic is computed part by part (one sort each), alone whatever the company.
            if stat.ranking:
                wanted_parts = stat.parts()
            else:
                wanted_parts = [(name, None) for name in _family(file, file.sets[stat.sets[0]], stat)]
            for name, group in wanted_parts:
                key = self._key(file, name, group, stat)
                if key not in self._per_set:
                    todo.setdefault(file.space_of(metric).id, {})[key] = ((file.sets[name], group), stat)
        for space_id, wanted in todo.items():
            n = len(next(iter(wanted.values()))[0][0].space)
            groups: dict[tuple, list[tuple]] = {}
            for key, (_, stat) in wanted.items():  # key[0]: the file (by id), one design per file
                groups.setdefault((key[0], *stat.how), []).append(key)
            parts: dict[tuple, list[np.ndarray]] = {key: [] for key in wanted}
            rankings: dict = {}  # sorted once per set, column and group, shared by their statistics
            built = [
                (keys, designs([wanted[k][0] for k in keys], wanted[keys[0]][1], rankings))
                for keys in groups.values()
            ]
            # The draws depend on the seed and the example set only, so any subset of sets computed in
            # any call sees the same resamples.
            rng = np.random.default_rng([self.seed, int(space_id, 16)])
            for start in range(0, self.resamples, _CHUNK):
                weights = resample_weights(n, min(_CHUNK, self.resamples - start), rng)
                for keys, chunks in built:
                    values = np.concatenate([d.values(weights) for d in chunks], axis=1)
                    for j, key in enumerate(keys):
                        parts[key].append(values[:, j])
            for key, values in parts.items():
                self._per_set[key] = np.concatenate(values)
        out = []
        for file, metric in items:
            stat = file.statistics[metric]
            keys = [self._key(file, name, group, stat) for name, group in stat.parts()]
            out.append(np.mean([self._per_set[k] for k in keys], axis=0))
        return out

    def prepare(self, pairs: Sequence[tuple[Side, Side, str]]) -> None:
        """Compute at once the replicates that :func:`difference` will read for each (A, B, metric): the
        statistics of one example set then share its sorted ranking and, per block of draws, its cumulative
        sums (five selective metrics read one risk–coverage curve, four detection metrics one ROC), which
        separate calls would each recompute. The values are those separate calls give (see
        :meth:`replicates`); pairs without paired per-example files are left to :func:`difference`."""
        items: dict[tuple[int, str], tuple[ExampleFile, str]] = {}
        for a, b, metric in pairs:
            if _too_large(_values(a, metric) + _values(b, metric)):
                continue
            files, _ = _paired_data(a, b, metric, self)
            for f in files or ():
                items[(id(f), metric)] = (f, metric)
        if items:
            self.replicates(list(items.values()))

    def _key(self, file: ExampleFile, name: str, group: int | None, stat: Statistic) -> tuple:
        return (id(file), name, group, *stat.how, self.resamples, self.seed)


def _family(file: ExampleFile, first: ExampleSet, stat: Statistic) -> list[str]:
    """The sets of ``file`` computed together for ``stat``: those on ``first``'s examples that hold its
    column (and the correctness a calibration statistic needs), in the file's order."""
    needed = {stat.column} if stat.kind == "mean" else {stat.column, "correct"}
    return [
        name for name, s in file.sets.items() if s.space.id == first.space.id and needed <= set(s.columns)
    ]


def _values(side: Side, metric: str) -> list[float]:
    return [float(r.metrics[metric]) for r in side.results if _finite(r.metrics.get(metric))]


#: Beyond this magnitude a value's square overflows a float: an interval is not computed from it.
_HUGE = 1e150


def _too_large(values: list[float]) -> bool:
    """Whether a value lies beyond ±_HUGE, where the interval's squares and sums overflow."""
    return any(abs(v) > _HUGE for v in values)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _seed_spread(va: list[float], vb: list[float]) -> tuple[float, int]:
    """(standard error of Δ due to seeds, degrees of freedom) from the pooled within-row variance."""
    df = len(va) + len(vb) - 2
    if df < 1:
        return 0.0, 0
    ma, mb = statistics.fmean(va), statistics.fmean(vb)
    pooled = (sum((v - ma) ** 2 for v in va) + sum((v - mb) ** 2 for v in vb)) / df
    return math.sqrt(pooled * (1 / len(va) + 1 / len(vb))), df


def _t_two_sided(t: float, df: int) -> float:
    """P(|T| < t) for Student's t with integer ``df``, in closed form (Abramowitz & Stegun 26.7.3–4)."""
    theta = math.atan(t / math.sqrt(df))
    sin, cos2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2:  # odd: (2/π)(θ + sin θ (cos θ + 2/3 cos³θ + … + (2·4···(df−3))/(1·3···(df−2)) cos^(df−2) θ))
        term, total = math.cos(theta), 0.0
        for k in range(1, (df - 1) // 2 + 1):
            total += term
            term *= 2 * k / (2 * k + 1) * cos2
        return 2 / math.pi * (theta + sin * total)
    term, total = 1.0, 0.0  # even: sin θ (1 + 1/2 cos²θ + … + (1·3···(df−3))/(2·4···(df−2)) cos^(df−2) θ)
    for k in range(1, df // 2 + 1):
        total += term
        term *= (2 * k - 1) / (2 * k) * cos2
    return sin * total


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with integer ``df`` ≥ 1, by bisection on the closed-form CDF.
    Computed here rather than with scipy: the leaderboard and the report go through this module and must
    not import scipy (start-up time; tests/test_startup.py checks it)."""
    if not 0 < p < 1 or df < 1:
        raise ValueError("t_quantile needs 0 < p < 1 and df ≥ 1")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    target = 2 * p - 1
    low, high = 0.0, 1.0
    while _t_two_sided(high, df) < target:
        low, high = high, 2 * high
    for _ in range(200):  # to the last bits of a float: the bracket halves each step
        mid = (low + high) / 2
        if mid in (low, high):
            break
        low, high = (mid, high) if _t_two_sided(mid, df) < target else (low, mid)
    return (low + high) / 2


def _paired_data(a: Side, b: Side, metric: str, resampler: Resampler) -> tuple[list[ExampleFile] | None, str]:
    """The per-example files of every run of A and B for ``metric``, or why they cannot be paired."""
    files: list[ExampleFile] = []
    runs = [
        (side, r, resampler.examples(r))
        for side in (a, b)
        for r in side.results
        if _finite(r.metrics.get(metric))
    ]
    # Result files written before vicinal stored per-example outcomes all lack them for one reason: say it
    # for both rows at once rather than naming whichever run happened to come first.
    reasons = {found for *_, found in runs if isinstance(found, str)}
    if len(reasons) == 1 and all(isinstance(found, str) for *_, found in runs):
        return None, f"{a.label} and {b.label}, every seed: {reasons.pop()}"
    for side, r, found in runs:
        where = f"{side.label} seed {r.seed}"
        if isinstance(found, str):
            return None, f"{where}: {found}"
        if metric not in found.statistics:
            return None, "no per-example statistic is recorded for this metric"
        if abs(found.point(metric) - float(r.metrics[metric])) > _TOLERANCE:
            return None, f"{where}: the per-example file does not reproduce the result's value"
        files.append(found)
    spaces = {f.space_of(metric).id: f.space_of(metric) for f in files}
    if len(spaces) > 1:
        described = "; ".join(f"{s.describe()} [{i}]" for i, s in spaces.items())
        return None, f"not paired: the runs were scored on different examples ({described})"
    return files, ""


def difference(
    a: Side, b: Side, metric: str, info: MetricInfo, resampler: Resampler | None = None
) -> Difference:
    """A − B for ``metric`` with its interval (see the module docstring for the procedure)."""
    resampler = resampler or Resampler()
    level = resampler.level
    va, vb = _values(a, metric), _values(b, metric)

    def without_interval(note: str) -> Difference:
        nan = float("nan")
        return Difference(metric, info, nan, nan, len(va), len(vb), nan, None, None, level, "none", note=note)

    if not va or not vb:
        return without_interval(" and ".join(s.label for s, v in ((a, va), (b, vb)) if not v) + " lacks it")
    if _too_large(va + vb):  # squares and sums overflow: no interval is computable
        return without_interval(f"values beyond ±{_HUGE:g}: no interval computed")
    ma, mb = statistics.fmean(va), statistics.fmean(vb)
    diff = ma - mb
    se, df = _seed_spread(va, vb)
    files, why = _paired_data(a, b, metric, resampler)
    common = dict(
        metric=metric, info=info, a=ma, b=mb, runs_a=len(va), runs_b=len(vb), diff=diff, level=level
    )
    if files is not None:
        reps = resampler.replicates([(f, metric) for f in files])
        delta = np.mean(reps[: len(va)], axis=0) - np.mean(reps[len(va) :], axis=0)
        if df:
            rng = np.random.default_rng([resampler.seed, zlib.crc32(metric.encode())])
            delta = delta + se * rng.standard_t(df, size=len(delta))
        low, high = np.quantile(delta, [(1 - level) / 2, (1 + level) / 2])
        return Difference(
            **common,
            low=float(low),
            high=float(high),
            basis="examples+seeds" if df else "examples",
            examples=files[0].space_of(metric).describe(),
            seed_df=df,
        )
    if df:
        half = t_quantile((1 + level) / 2, df) * se
        return Difference(**common, low=diff - half, high=diff + half, basis="seeds", note=why, seed_df=df)
    return Difference(**common, low=None, high=None, basis="none", note=f"one seed each, and {why}")


def compare_sides(
    a: Side, b: Side, metrics: Sequence[str], info: dict[str, MetricInfo], resampler: Resampler | None = None
) -> list[Difference]:
    """:func:`difference` for each metric (resamples shared between metrics on one example set)."""
    resampler = resampler or Resampler()
    return [difference(a, b, m, info[m], resampler) for m in metrics]


# ---------------------------------------------------------------- the procedure in words


def procedure(resampler: Resampler) -> str:
    """How every interval of a comparison was computed, for the reader of its output."""
    pct = f"{resampler.level:.0%}"
    return (
        f"{pct} intervals of A − B (A's seed mean minus B's). Paired bootstrap: {resampler.resamples} "
        "resamples of the test examples with replacement, one draw shared by every seed of A and B (all "
        "were scored on the same images), each metric recomputed from the resampled per-example outcomes "
        "(calibration errors re-binned, not averaged); where the rows have ≥ 3 runs between them, each "
        "resample adds se·t with se = s_pooled·√(1/k_A + 1/k_B) from the per-seed values and t ~ Student "
        f"t (k_A + k_B − 2 df); quantiles {(1 - resampler.level) / 2:.3g} and "
        f"{(1 + resampler.level) / 2:.3g}. "
        f"Seed {resampler.seed}. Metrics without per-example data use the seed spread alone "
        "(mean ± t quantile · se). Verdict: 'better' when the interval excludes 0."
    )
