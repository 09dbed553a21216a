"""Per-example outcomes (vicinal.store.outcomes) and the paired intervals built on them
(vicinal.board.paired): the stored format round-trips, the statistics agree with the calibration module, the
intervals cover a known difference at their nominal rate, and runs on different examples are never paired."""

from __future__ import annotations

import math
import statistics
import zlib

import numpy as np
import pytest
from scipy import stats

from vicinal.board.paired import _CHUNK, Resampler, Side, difference, t_quantile
from vicinal.evaluation.calibration_metrics import calibration_metrics
from vicinal.store.declarations import MetricInfo
from vicinal.store.outcomes import (
    ExampleFile,
    ExampleRecorder,
    Examples,
    ExampleSet,
    Statistic,
    equal_width_bins,
    evaluate,
    read_examples,
    resample_weights,
)
from vicinal.store.results import Result

ACC = MetricInfo("acc", True, percent=True)
ECE = MetricInfo("ECE", False, percent=True)


def _space(n: int, index=None, fingerprint: str = "f00d") -> Examples:
    return Examples("toy test", fingerprint, n, np.arange(n) if index is None else np.asarray(index))


def _logits(rng: np.random.Generator, n: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, k, n)
    logits = rng.normal(0, 1.5, (n, k))
    logits[np.arange(n), labels] += rng.normal(1.5, 1.5, n)  # right more often than not, not always
    return logits, labels


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


# ---------------------------------------------------------------- the stored format


def test_the_file_round_trips_every_encoding_and_records_its_examples():
    rng = np.random.default_rng(0)
    rec = ExampleRecorder()
    clean, subset = _space(1017), _space(1017, [3, 10, 999, 4])
    correct = rng.random(1017) < 0.6
    confidence = rng.random(1017)
    confidence[:3] = [0.0, 1.0, 0.5]
    nll = rng.exponential(1.0, 1017)
    rec.record("test", clean, correct=correct, confidence=confidence, nll=nll)
    rec.record(
        "adv/fgsm@8/255",
        subset,
        correct=np.array([True, False, False, True]),
        confidence=[0.9, 0.2, 0.3, 0.7],
    )
    rec.statistic("acc", "mean", ["test"])
    rec.statistic("nll", "mean", ["test"], "nll")
    rec.statistic("ece", "ece", ["test"], "confidence", 15)
    rec.statistic("fgsm@8/255", "mean", ["adv/fgsm@8/255"])
    back = read_examples(rec.to_bytes())
    test = back.sets["test"]
    assert np.array_equal(test.columns["correct"], correct)  # bits: exact
    shift = test.columns["confidence"] - confidence  # rounded up to a step of 1/65520
    assert shift.min() >= -1e-10 and shift.max() < 1 / 65520
    assert test.columns["confidence"][:2].tolist() == [0.0, 1.0]  # the ends are exact
    assert np.allclose(test.columns["nll"], nll, rtol=1e-6)  # float32
    adv = back.sets["adv/fgsm@8/255"]
    assert adv.space.index.tolist() == [3, 10, 999, 4] and adv.space.id == subset.id != clean.id
    assert adv.space.describe() == "4 of 1017 toy test examples"
    assert back.statistics["ece"] == Statistic("ece", ("test",), "confidence", 15)
    assert back.point("acc") == pytest.approx(correct.mean(), abs=1e-12)
    assert back.point("nll") == pytest.approx(nll.mean(), rel=1e-6)
    assert back.point("fgsm@8/255") == 0.5


@pytest.mark.parametrize("bins", [10, 15, 20])
def test_stored_confidences_never_cross_a_bin_edge(bins):
    """On, just below and just above every edge of the equal-width bins: each stored confidence falls in
    the bin of the value it stands for, so calibration errors are recomputed exactly up to 1.6e-5."""
    edges = np.linspace(0, 1, bins + 1)
    near = np.concatenate([edges, edges - 1e-7, edges + 1e-7, edges + 2e-5]).clip(0, 1)
    rec = ExampleRecorder()
    rec.record("test", _space(len(near)), confidence=near)
    stored = read_examples(rec.to_bytes()).sets["test"].columns["confidence"]
    assert np.array_equal(equal_width_bins(stored, bins), equal_width_bins(near, bins))
    # The points do straddle the edges: 1e-7 below and above an inner edge lie in adjacent bins.
    inner = edges[1:-1]
    assert (equal_width_bins(inner + 1e-7, bins) - equal_width_bins(inner - 1e-7, bins) == 1).all()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda rec: rec.statistic("acc", "mean", ["nope"]), "not recorded: nope"),
        (lambda rec: rec.statistic("acc", "median", ["test"]), "choose one of"),
        (lambda rec: rec.statistic("ece", "ece", ["test", "sub"], "confidence"), "different examples"),
        (lambda rec: rec.statistic("nll", "mean", ["test"], "nll"), "has no column nll"),
        (lambda rec: rec.record("test", _space(5), correct=[True] * 4), "4 values for 5 examples"),
        (
            lambda rec: rec.record("test", _space(5, [0, 1, 2, 3, 4], "other"), correct=[True] * 5),
            "other examples",
        ),
        (lambda rec: rec.record("x", _space(2), confidence=[0.5, 1.5]), r"in \[0, 1\]"),
    ],
)
def test_malformed_records_are_refused_with_the_reason(damage, message):
    rec = ExampleRecorder()
    rec.record(
        "test", _space(5), correct=[True, False, True, True, False], confidence=[0.9, 0.8, 0.7, 0.6, 0.5]
    )
    rec.record("sub", _space(5, [0, 1]), correct=[True, False], confidence=[0.9, 0.8])
    with pytest.raises(ValueError, match=message):
        damage(rec)
        rec.to_bytes()


def test_a_damaged_or_foreign_file_is_one_message(tmp_path):
    rec = ExampleRecorder()
    rec.record("test", _space(8), correct=np.ones(8, bool), confidence=np.full(8, 0.5))
    blob = rec.to_bytes()
    with pytest.raises(ValueError, match=r"not a readable \.npz"):
        read_examples(blob[: len(blob) // 2])
    np.savez(tmp_path / "other.npz", meta=np.frombuffer(b'{"format": "x"}', np.uint8))
    with pytest.raises(ValueError, match="is not vicinal-examples"):
        read_examples(tmp_path / "other.npz")


# ---------------------------------------------------------------- statistics against independent code


def _recorded(logits, labels, bins=15) -> ExampleFile:
    p = _softmax(logits)
    rec = ExampleRecorder()
    rec.record("test", _space(len(labels)), correct=p.argmax(1) == labels, confidence=p.max(1))
    for kind in ("ece", "oe", "mce"):
        rec.statistic(kind, kind, ["test"], "confidence", bins)
    rec.statistic("acc", "mean", ["test"])
    return read_examples(rec.to_bytes())


def test_calibration_errors_recomputed_from_stored_outcomes_match_the_calibration_module():
    rng = np.random.default_rng(1)
    logits, labels = _logits(rng, 2000)
    file = _recorded(logits, labels)
    expected = calibration_metrics(logits, labels, 15)  # netcal's ECE and MCE, vicinal's OE
    for kind in ("ece", "oe", "mce"):
        assert file.point(kind) == pytest.approx(expected[kind], abs=2e-5), kind
    assert file.point("acc") == pytest.approx((logits.argmax(1) == labels).mean())


def test_weighted_statistics_equal_the_statistics_of_the_explicit_resample():
    """A row of weights (how often each example was drawn) gives what the calibration module computes on
    the resampled examples themselves."""
    rng = np.random.default_rng(2)
    logits, labels = _logits(rng, 600)
    file = _recorded(logits, labels)
    draws = rng.integers(0, 600, size=(3, 600))
    weights = np.stack([np.bincount(d, minlength=600) for d in draws]).astype(float)
    for kind in ("ece", "oe", "mce", "acc"):
        values = evaluate(file, file.statistics[kind], weights)
        for value, draw in zip(values, draws, strict=True):
            resampled = calibration_metrics(logits[draw], labels[draw], 15)
            resampled["acc"] = (logits[draw].argmax(1) == labels[draw]).mean()
            assert value == pytest.approx(resampled[kind], abs=2e-5), kind


def test_a_statistic_over_several_sets_is_the_mean_of_the_per_set_values():
    rng = np.random.default_rng(3)
    space = _space(300)
    rec = ExampleRecorder()
    cells = []
    for i in range(4):
        logits, labels = _logits(rng, 300)
        p = _softmax(logits)
        rec.record(f"c{i}", space, correct=p.argmax(1) == labels, confidence=p.max(1))
        cells.append(calibration_metrics(logits, labels, 15) | {"acc": (p.argmax(1) == labels).mean()})
    rec.statistic("c_acc", "mean", [f"c{i}" for i in range(4)])
    rec.statistic("c_ece", "ece", [f"c{i}" for i in range(4)], "confidence")
    file = read_examples(rec.to_bytes())
    assert file.point("c_acc") == pytest.approx(statistics.fmean(c["acc"] for c in cells))
    assert file.point("c_ece") == pytest.approx(statistics.fmean(c["ece"] for c in cells), abs=2e-5)


def test_resample_weights_are_counts_of_a_uniform_draw():
    w = resample_weights(50, 4000, np.random.default_rng(4))
    assert w.shape == (4000, 50) and (w.sum(1) == 50).all()
    assert w.mean() == pytest.approx(1.0) and w.var() == pytest.approx(1 - 1 / 50, rel=0.02)  # multinomial


# ---------------------------------------------------------------- intervals


class _Memory(Resampler):
    """A resampler whose per-example files live in memory (keyed by the result's run id)."""

    def __init__(self, files: dict[str, ExampleFile], **kw):
        super().__init__(**kw)
        self.memory = files

    def examples(self, result):
        return self.memory.get(result.run_id, "no per-example file")


def _file(correct: np.ndarray, space: Examples) -> ExampleFile:
    s = ExampleSet(space, {"correct": correct.astype(bool)})
    return ExampleFile({"test": s}, {"acc": Statistic("mean", ("test",))})


def _sides(a_runs: list[np.ndarray], b_runs: list[np.ndarray], space: Examples | None = None, **kw):
    """Sides A and B (one result per run) and a resampler that serves their correctness vectors."""
    files, sides = {}, []
    for name, runs in (("A", a_runs), ("B", b_runs)):
        results = []
        for seed, correct in enumerate(runs):
            run_id = f"{name}{seed}"
            files[run_id] = _file(correct, space or _space(len(correct)))
            results.append(Result("s", name, {"acc": float(correct.mean())}, seed=seed, run_id=run_id))
        sides.append(Side(name, results))
    return sides[0], sides[1], _Memory(files, **kw)


#: Joint outcome of A and B on one example: P(both right), P(only A), P(only B), P(neither).
JOINT = np.array([0.60, 0.10, 0.06, 0.24])
TRUE_DIFF = JOINT[1] - JOINT[2]  # P(A right) − P(B right) = 0.70 − 0.66


def _paired_draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    kind = rng.choice(4, size=n, p=JOINT)
    return np.isin(kind, (0, 1)), np.isin(kind, (0, 2))


def _coverage(hits: int, trials: int, level: float) -> tuple[float, float]:
    """The band a correct interval's coverage falls in: level ± 3 binomial standard errors."""
    se = math.sqrt(level * (1 - level) / trials)
    return level - 3 * se, level + 3 * se


def test_the_interval_covers_a_known_accuracy_difference_at_its_nominal_rate():
    """400 simulated test sets of 400 examples whose true accuracy difference is 4 points: the 95 %
    interval covers it 95 % of the time and the 80 % interval 80 % (within 3 binomial standard errors),
    so the intervals are neither too narrow nor merely wide."""
    rng = np.random.default_rng(5)
    trials, covered, covered_80, widths = 400, 0, 0, []
    for _ in range(trials):
        a, b, resampler = _sides(*map(lambda v: [v], _paired_draw(rng, 400)), resamples=1000)
        d = difference(a, b, "acc", ACC, resampler)
        assert d.basis == "examples" and d.diff == pytest.approx(
            a.results[0].metrics["acc"] - b.results[0].metrics["acc"]
        )
        covered += d.low <= TRUE_DIFF <= d.high
        widths.append(d.high - d.low)
        resampler.level = 0.80  # the same resamples, other quantiles
        d80 = difference(a, b, "acc", ACC, resampler)
        covered_80 += d80.low <= TRUE_DIFF <= d80.high
    low, high = _coverage(covered, trials, 0.95)
    assert low <= covered / trials <= high, covered / trials
    low, high = _coverage(covered_80, trials, 0.80)
    assert low <= covered_80 / trials <= high, covered_80 / trials
    # Pairing matters: the exact standard error of a paired difference is far below the unpaired one.
    paired_se = math.sqrt((JOINT[1] + JOINT[2] - TRUE_DIFF**2) / 400)
    assert statistics.fmean(widths) == pytest.approx(2 * 1.96 * paired_se, rel=0.08)
    unpaired_se = math.sqrt((0.7 * 0.3 + 0.66 * 0.34) / 400)
    assert statistics.fmean(widths) < 0.7 * 2 * 1.96 * unpaired_se


def test_with_several_seeds_the_interval_includes_the_seed_spread_and_still_covers():
    """Two seeds per method whose population accuracies vary (training noise, σ = 1.5 points) around
    means 4 points apart, all scored on one test set: the combined interval covers the true difference
    of the means at ≥ 95 % − 3 se (the t draw with 2 df is conservative), while the examples alone,
    blind to the seeds, fall far short."""
    rng = np.random.default_rng(6)
    trials, n, covered, covered_examples_only = 200, 400, 0, 0
    for _ in range(trials):
        u = rng.random(n)  # per-example difficulty, shared by every run: the pairing
        runs = {}
        for name, mean in (("A", 0.70), ("B", 0.66)):
            runs[name] = [u < mean + rng.normal(0, 0.015) for _ in range(2)]
        a, b, resampler = _sides(runs["A"], runs["B"], resamples=1000)
        d = difference(a, b, "acc", ACC, resampler)
        assert d.basis == "examples+seeds" and d.seed_df == 2
        covered += d.low <= 0.04 <= d.high
        only = difference(Side("A", a.results[:1]), Side("B", b.results[:1]), "acc", ACC, resampler)
        covered_examples_only += only.low <= 0.04 <= only.high
    low, _ = _coverage(covered, trials, 0.95)
    assert covered / trials >= low, covered / trials
    assert covered_examples_only / trials < 0.85, covered_examples_only / trials


def test_without_per_example_data_the_interval_is_the_two_sample_t_interval_of_the_seeds():
    a = Side("A", [Result("s", "A", {"acc": v}, seed=i) for i, v in enumerate([0.72, 0.74, 0.73])])
    b = Side("B", [Result("s", "B", {"acc": v}, seed=i) for i, v in enumerate([0.66, 0.67])])
    d = difference(a, b, "acc", ACC, Resampler())
    expected = stats.ttest_ind([0.72, 0.74, 0.73], [0.66, 0.67], equal_var=True).confidence_interval(0.95)
    assert d.basis == "seeds" and d.seed_df == 3
    assert (d.low, d.high) == pytest.approx((expected.low, expected.high))
    assert "A and B, every seed: no per-example file" in d.note and d.verdict("A", "B") == "A better"
    one_each = difference(Side("A", a.results[:1]), Side("B", b.results[:1]), "acc", ACC, Resampler())
    assert one_each.low is None and one_each.verdict() == "undetermined" and one_each.basis == "none"


def test_runs_on_different_examples_are_never_paired():
    rng = np.random.default_rng(7)
    a_correct, b_correct = _paired_draw(rng, 200)
    a, b, resampler = _sides([a_correct, a_correct], [b_correct, b_correct])
    # B's second seed was scored on another subset (another seed of the subset): same size, other images.
    other = _space(400, np.arange(200, 400))
    resampler.memory["B1"] = _file(b_correct, other)
    d = difference(a, b, "acc", ACC, resampler)
    assert d.basis == "seeds" and "not paired" in d.note and "different examples" in d.note
    # Same indices of another test set's content: refused too.
    resampler.memory["B1"] = _file(b_correct, _space(200, fingerprint="another test split"))
    assert "not paired" in difference(a, b, "acc", ACC, resampler).note
    resampler.memory["B1"] = _file(b_correct, _space(200))
    assert difference(a, b, "acc", ACC, resampler).basis == "examples+seeds"


def test_a_per_example_file_that_does_not_reproduce_the_result_is_not_used():
    rng = np.random.default_rng(8)
    a, b, resampler = _sides(*map(lambda v: [v], _paired_draw(rng, 300)))
    a.results[0].metrics["acc"] += 0.01  # the file belongs to another evaluation
    d = difference(a, b, "acc", ACC, resampler)
    assert d.basis == "none" and "does not reproduce" in d.note


def test_verdicts_follow_the_metric_direction():
    rng = np.random.default_rng(9)
    right = rng.random(500) < 0.8
    worse = right & (rng.random(500) < 0.9)  # B loses 10 % of A's correct answers, gains none
    a, b, resampler = _sides([right], [worse])
    d = difference(a, b, "acc", ACC, resampler)
    assert d.low > 0 and d.winner == 1 and d.verdict("varmixup", "mixup") == "varmixup better"
    # The same numbers read as an error rate (lower is better): B is better.
    err = MetricInfo("err", False, percent=True)
    assert difference(a, b, "acc", err, resampler).verdict("varmixup", "mixup") == "mixup better"
    a, b, resampler = _sides([right], [right.copy()])
    tie = difference(a, b, "acc", ACC, resampler)
    assert (tie.low, tie.high, tie.verdict()) == (0.0, 0.0, "no detectable difference")


def test_the_interval_is_reproducible_from_its_seed_and_changes_with_it():
    rng = np.random.default_rng(10)
    draws = _paired_draw(rng, 300)
    a, b, r1 = _sides([draws[0]], [draws[1]], seed=3)
    _, _, r2 = _sides([draws[0]], [draws[1]], seed=3)
    _, _, r3 = _sides([draws[0]], [draws[1]], seed=4)
    d1, d2, d3 = (difference(a, b, "acc", ACC, r) for r in (r1, r2, r3))
    assert (d1.low, d1.high) == (d2.low, d2.high) and (d1.low, d1.high) != (d3.low, d3.high)


# ---------------------------------------------------------------- intervals against a plain bootstrap


def _plain_ece(conf: np.ndarray, hit: np.ndarray, bins: int = 15) -> float:
    """ECE by its definition, one bin (k/B, (k+1)/B] at a time (the first also takes 0): written here,
    independently of the matrix form in vicinal.store.outcomes."""
    total = 0.0
    for k in range(bins):
        lo, hi = k / bins, (k + 1) / bins
        inside = (conf <= hi) & ((conf > lo) if k else (conf >= 0))
        if inside.any():
            total += inside.mean() * abs(conf[inside].mean() - hit[inside].mean())
    return total


def _same_draws(seed: int, space: Examples, resamples: int) -> np.ndarray:
    """The example indices the resampler draws: seeded by (seed, example set id), _CHUNK rows at a time
    (reproduced here so that the interval can be checked number for number)."""
    rng = np.random.default_rng([seed, int(space.id, 16)])
    n = len(space)
    return np.concatenate(
        [rng.integers(0, n, size=(min(_CHUNK, resamples - s), n)) for s in range(0, resamples, _CHUNK)]
    )


def test_the_ece_interval_is_the_percentile_interval_of_a_plain_numpy_bootstrap():
    """Two seeds of A and B on one test set: the interval equals the quantiles of (mean ECE of A's runs −
    mean ECE of B's) over explicitly resampled examples, each ECE recomputed by the plain loop above from
    the unrounded confidences, plus se·t with se taken from scipy's two-sample t statistic."""
    rng = np.random.default_rng(11)
    n, resamples, seed = 300, 2 * _CHUNK, 5
    space = _space(n)
    labels = rng.integers(0, 10, n)
    runs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"A": [], "B": []}
    files, sides = {}, {}
    for name, boost in (("A", 1.0), ("B", 2.5)):  # B: larger logit gaps, so more overconfident
        results = []
        for s in range(2):
            logits = rng.normal(0, 1.5, (n, 10))
            logits[np.arange(n), labels] += rng.normal(1.5, 1.5, n)
            logits *= boost
            p = _softmax(logits)
            conf, hit = p.max(1), p.argmax(1) == labels
            runs[name].append((conf, hit))
            rec = ExampleRecorder()
            rec.record("test", space, correct=hit, confidence=conf)
            rec.statistic("ece", "ece", ["test"], "confidence", 15)
            files[f"{name}{s}"] = read_examples(rec.to_bytes())
            ece = calibration_metrics(logits, labels, 15)["ece"]  # the evaluator's value (netcal)
            results.append(Result("s", name, {"ece": ece}, seed=s, run_id=f"{name}{s}"))
        sides[name] = Side(name, results)
    d = difference(sides["A"], sides["B"], "ece", ECE, _Memory(files, resamples=resamples, seed=seed))
    assert d.basis == "examples+seeds" and d.seed_df == 2

    per_run = {k: [_plain_ece(c, h) for c, h in v] for k, v in runs.items()}
    assert d.diff == pytest.approx(np.mean(per_run["A"]) - np.mean(per_run["B"]), abs=1e-9)
    idx = _same_draws(seed, space, resamples)
    boot = np.array(
        [
            np.mean([_plain_ece(c[i], h[i]) for c, h in runs["A"]])
            - np.mean([_plain_ece(c[i], h[i]) for c, h in runs["B"]])
            for i in idx
        ]
    )
    t = stats.ttest_ind(per_run["A"], per_run["B"], equal_var=True)
    se = (np.mean(per_run["A"]) - np.mean(per_run["B"])) / t.statistic  # pooled-variance standard error
    boot += se * np.random.default_rng([seed, zlib.crc32(b"ece")]).standard_t(2, resamples)
    expected = np.quantile(boot, [0.025, 0.975])
    # Within the confidence rounding (≤ 1.6e-5 per ECE) and float32 sums.
    assert (d.low, d.high) == pytest.approx(tuple(expected), abs=5e-5)
    assert d.high < 0 and d.verdict("A", "B") == "A better"  # B is the overconfident one


def test_statistics_over_shared_cells_get_the_same_resamples_whatever_is_asked_first():
    """c_ece (4 cells) and c_ece/s2 (2 of them) share cells: each cell is computed once, and either
    order of asking gives the same replicates, equal to the plain bootstrap of the per-cell ECEs."""
    rng = np.random.default_rng(12)
    n, resamples = 200, _CHUNK
    space = _space(n)
    rec, cells = ExampleRecorder(), []
    for i in range(4):
        logits, labels = _logits(rng, n)
        p = _softmax(logits)
        cells.append((p.max(1), p.argmax(1) == labels))
        rec.record(f"c{i}", space, correct=cells[-1][1], confidence=cells[-1][0])
    rec.statistic("c_ece", "ece", [f"c{i}" for i in range(4)], "confidence")
    rec.statistic("c_ece/s2", "ece", ["c2", "c3"], "confidence")
    rec.statistic("c_acc", "mean", [f"c{i}" for i in range(4)])
    file = read_examples(rec.to_bytes())

    first = Resampler(resamples=resamples, seed=1)
    sub = first.replicates([(file, "c_ece/s2")])[0]
    whole = first.replicates([(file, "c_ece")])[0]
    assert len(first._per_set) == 4  # c2 and c3 were not computed twice
    other = Resampler(resamples=resamples, seed=1)
    whole2, sub2, acc = other.replicates([(file, "c_ece"), (file, "c_ece/s2"), (file, "c_acc")])
    assert np.array_equal(whole, whole2) and np.array_equal(sub, sub2)

    idx = _same_draws(1, space, resamples)
    plain = np.array([[_plain_ece(c[i], h[i]) for c, h in cells] for i in idx])  # R × cells
    assert np.abs(whole - plain.mean(1)).max() < 5e-5
    assert np.abs(sub - plain[:, 2:].mean(1)).max() < 5e-5
    assert np.allclose(acc, np.array([[h[i].mean() for _, h in cells] for i in idx]).mean(1))


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 8, 13, 30, 101])
def test_the_t_quantile_without_scipy_agrees_with_scipy(df):
    for p in (0.001, 0.025, 0.1, 0.5, 0.9, 0.975, 0.995, 0.9995):
        assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-9, abs=1e-12), p
    with pytest.raises(ValueError):
        t_quantile(1.0, df)


# ---------------------------------------------------------------- ranking statistics (OOD, selective)


def test_integer_columns_round_trip_exactly_in_the_smallest_dtype():
    from vicinal.store.outcomes import decode, encode

    for values, dtype in (
        (np.array([0, 5, 65535]), np.uint16),
        (np.array([0, 70000]), np.int32),
        (np.array([-3, 4]), np.int32),
        (np.array([2**40]), np.int64),
    ):
        stored = encode("int", values)
        assert stored.dtype == dtype
        assert np.array_equal(decode("int", stored, len(values)), values.astype(np.float64))
    rec = ExampleRecorder()
    rec.record("test", _space(3), correct=[True, False, True], rank=np.array([2, 0, 1]))
    file = read_examples(rec.to_bytes())
    assert np.array_equal(file.sets["test"].columns["rank"], [2.0, 0.0, 1.0])


def test_a_version_1_file_still_reads():
    import io
    import json

    rec = ExampleRecorder()
    rec.record("test", _space(4), correct=[True, False, True, True], confidence=[0.9, 0.8, 0.7, 0.6])
    rec.statistic("acc", "mean", ["test"])
    arrays = dict(np.load(io.BytesIO(rec.to_bytes())))
    meta = json.loads(arrays["meta"].tobytes())
    assert meta["version"] == 2
    meta["version"] = 1
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    assert read_examples(buffer.getvalue()).point("acc") == 0.75


def test_ranking_statistics_load_back_and_are_checked():
    stat = Statistic("auroc", ("ood",), "rank_msp", target="ood_set", groups=(1, 2), level=0.0)
    assert Statistic.from_json(stat.to_json()) == stat
    assert stat.parts() == [("ood", 1), ("ood", 2)]
    plain = Statistic("ece", ("test",), "confidence", 15)
    assert set(plain.to_json()) == {"kind", "sets", "column", "bins"}  # older statistics read as before
    with pytest.raises(ValueError, match="OOD detection statistics"):
        Statistic("auroc", ("ood",), "rank_msp", target="ood_set")
    with pytest.raises(ValueError, match="OOD detection statistics"):
        Statistic("aurc", ("test",), "rank_msp", groups=(1,))
    rec = ExampleRecorder()
    rec.record("test", _space(3), correct=[True, False, True], rank_msp=np.array([2, 0, 1]))
    rec.statistic("aurc", "aurc", ["test"], "rank_msp", target="missing")
    with pytest.raises(ValueError, match="no column missing"):
        rec.to_bytes()


def test_preparing_a_boards_pairs_at_once_gives_the_intervals_of_separate_calls(monkeypatch):
    """The leaderboard computes every column's best-against-runner-up replicates in one call, so that the
    selective and detection metrics of one set share a curve per block of draws; the intervals are those
    that comparing column by column gives, and the curves are built once per set, not once per metric."""
    from vicinal.store import selective_metrics

    rng = np.random.default_rng(5)
    n = 300
    space = _space(n)
    kinds = {"aurc": 0.0, "eaurc": 0.0, "augrc": 0.0, "risk_at_coverage": 0.8, "coverage_at_risk": 0.05}
    files, sides = {}, []
    for name in ("A", "B"):
        results = []
        for seed in range(2):
            logits, labels = _logits(rng, n)
            p = _softmax(logits)
            rec = ExampleRecorder()
            rec.record("test", space, correct=p.argmax(1) == labels, confidence=p.max(1))
            rec.statistic("acc", "mean", ["test"])
            for kind, level in kinds.items():
                rec.statistic(kind, kind, ["test"], "confidence", level=level)
            file = read_examples(rec.to_bytes())
            run_id = f"{name}{seed}"
            files[run_id] = file
            metrics = {m: float(file.point(m)) for m in ("acc", *kinds)}
            results.append(Result("s", name, metrics, seed=seed, run_id=run_id))
        sides.append(Side(name, results))
    a, b = sides
    metrics = ["acc", *kinds]
    info = {m: MetricInfo(m, m == "coverage_at_risk") for m in metrics}
    built = []
    real = selective_metrics._Curve.__init__
    monkeypatch.setattr(
        selective_metrics._Curve, "__init__", lambda self, *x: built.append(1) or real(self, *x)
    )
    together = _Memory(files, resamples=500)
    together.prepare([(a, b, m) for m in metrics])
    shared = len(built)
    first = [difference(a, b, m, info[m], together) for m in metrics]
    assert len(built) == shared  # prepared: nothing recomputed
    apart = [difference(a, b, m, info[m], _Memory(files, resamples=500)) for m in metrics]
    assert [(d.low, d.high) for d in first] == [(d.low, d.high) for d in apart]
    # Per file and block of draws (2 blocks): one curve, and E-AURC's oracle's, where a call per metric
    # builds one per metric (the stored values were recomputed once, when the results were made).
    assert shared == 4 * 2 * 2 and len(built) - shared == 4 * 2 * (len(kinds) + 1)
