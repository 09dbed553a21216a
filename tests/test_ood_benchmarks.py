"""Cost of the ood and selective evaluators (pytest-benchmark), against a clean evaluation of the same size.

The goal (issue 26): each OOD set adds at most the cost of one clean evaluation of its size. So, per OOD
set and image count, two benchmarks on the same model:

* ``clean``: the clean evaluator's work on a test split of N images — the forward pass of N uint8 images in
  batches (``ctx.test_logits``), accuracy, NLL and Brier, and the per-example outcomes it stores for paired
  intervals (what a clean evaluation costs in a run);
* ``ood set``: what the ood evaluator does per set — open N images (read them; a generated set is made by
  the first model of a process and kept for the next, so the rounds after the warm-up read it), the forward
  pass, the four scores, AUROC/AUPR-In/AUPR-Out/FPR95 for each score against the test split's scores, and the
  ranks stored per example.

And the selective evaluator on the test split (its work beyond the shared test logits), and the paired
bootstrap of the OOD headline metrics (2,000 resamples: what ``vicinal compare`` and the leaderboard's
best marking add per result file).

Sizes: the digits default (small-cnn-16, 32 px, 300 images per generated set, 450 test images) and, with
``--benchmark-enable``, a CIFAR-sized case (small-cnn, 2,000 generated images against 10,000 test scores).
The default test run (``--benchmark-disable``) runs each once on the digits size as a smoke test. Two torch
threads (the default run's).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import benchmarks_enabled

from vicinal.board.paired import Resampler
from vicinal.core.hparams import build_config
from vicinal.data.datasets import DataSplits, ImageSet
from vicinal.data.ood_sets import OOD_SETS
from vicinal.evaluation.evaluator import EVALUATORS, EvalContext
from vicinal.store import detection_metrics as dm
from vicinal.store import selective_metrics as sm
from vicinal.store.outcomes import read_examples
from vicinal.training.models import build_model

CASES = {"digits": ("small-cnn-16", 300, 450), "cifar": ("small-cnn", 2000, 10000)}


@pytest.fixture(scope="module", autouse=True)
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _context(case: str) -> EvalContext:
    model_name, _, n_test = CASES[case]
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n_test, 3, 32, 32), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (n_test,), generator=g)
    test = ImageSet(images, labels)
    names = [str(i) for i in range(10)]
    data = DataSplits("bench", test, test, 10, names, "random", val=test.subset(torch.arange(200)))
    model = build_model(model_name, 10, [0.5] * 3, [0.25] * 3).eval()
    return EvalContext(model, data, torch.device("cpu"), batch_size=256)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        metafunc.parametrize("case", list(CASES) if benchmarks_enabled(metafunc.config) else ["digits"])


def _clean(ctx: EvalContext, images: torch.Tensor, labels: torch.Tensor) -> None:
    """The clean evaluator on a context whose test split is ``images``: fresh, so nothing is cached."""
    data = DataSplits("bench", ctx.data.train, ImageSet(images, labels), 10, ctx.data.class_names, "random")
    clean = EVALUATORS.get("clean")
    clean(build_config(clean.Config, {}, "evaluators.clean")).evaluate(
        EvalContext(ctx.model, data, ctx.device, batch_size=ctx.batch_size)
    )


def _one_set(ctx: EvalContext, name: str, n: int, id_scores: dict[str, np.ndarray]) -> None:
    images = OOD_SETS[name].open(Path("."), (3, 32, 32), n, 0, "")
    z = ctx.predict_batches(images.batches(ctx.batch_size), total=images.n).numpy()
    for score, values in dm.ood_scores(z, 1.5).items():
        s = np.concatenate([id_scores[score], values])
        is_ood = np.r_[np.zeros(len(id_scores[score]), bool), np.ones(len(values), bool)]
        ranking = dm.Ranking(s, is_ood)
        [metric(ranking, None, 0.95) for metric in dm.METRICS.values()]
        sm.dense_ranks(s)


@pytest.mark.parametrize("name", ["uniform", "gaussian", "patches"])
def test_an_ood_set_against_a_clean_evaluation_of_its_size(benchmark, case, name):
    """Times the OOD set's work; before each round (untimed by the benchmark) the clean evaluation of as
    many images, timed by hand: the two interleaved, so a changing load hits both alike. ``extra_info``
    holds the clean times and the ratio of the minima."""
    import time

    _, n, _ = CASES[case]
    ctx = _context(case)
    id_scores = dm.ood_scores(ctx.test_logits.numpy(), 1.5)
    images = torch.cat(list(OOD_SETS[name].open(Path("."), (3, 32, 32), n, 0, "").batches(1000)))
    labels = torch.zeros(n, dtype=torch.int64)
    clean: list[float] = []

    def setup() -> tuple[tuple, dict]:
        start = time.perf_counter()
        _clean(ctx, images, labels)
        clean.append(time.perf_counter() - start)
        return (ctx, name, n, id_scores), {}

    benchmark.pedantic(_one_set, setup=setup, rounds=7, warmup_rounds=1)
    benchmark.extra_info.update(images=n, test_scores=len(ctx.data.test), clean_s=clean)
    if benchmark.stats is not None:
        benchmark.extra_info["ood_over_clean"] = benchmark.stats.stats.min / min(clean)


def test_selective_evaluator_beyond_the_shared_test_logits(benchmark, case):
    ctx = _context(case)
    assert len(ctx.test_logits) == len(ctx.data.test)  # shared by every evaluator: computed before timing
    selective = EVALUATORS.get("selective")
    evaluator = selective(build_config(selective.Config, {"figure": False}, "evaluators.selective"))
    benchmark.extra_info.update(test_images=len(ctx.data.test))
    benchmark.pedantic(evaluator.evaluate, args=(ctx,), rounds=5, warmup_rounds=1)


def test_paired_bootstrap_of_the_ood_headlines(benchmark, case):
    """2,000 resamples of ood_auroc and ood_fpr95 (three generated sets) for one result file."""
    _, n, _ = CASES[case]
    ctx = _context(case)
    ood = EVALUATORS.get("ood")
    ood(build_config(ood.Config, {"n_generated": n, "figures": False}, "evaluators.ood")).evaluate(ctx)
    file = read_examples(ctx.examples.to_bytes())
    benchmark.extra_info.update(examples=file.space_of("ood_auroc").n_total)

    def replicates() -> None:
        Resampler().replicates([(file, "ood_auroc"), (file, "ood_fpr95")])

    benchmark.pedantic(replicates, rounds=3)
