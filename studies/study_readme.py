"""Writes a published study's README (results/<study>/README.md): how it was made, and its board and paired
comparisons against ERM, rendered from the result files by vicinal itself (nothing typed by hand but the
protocol text below). ``tests/test_published.py`` checks that each committed README is what this script
writes from the committed files, so the two cannot drift apart.

Usage: python studies/study_readme.py STUDY [RESULTS_DIR]
(STUDY: zoo-digits-c or ood-cifar10-quick; default RESULTS_DIR: results; writes RESULTS_DIR/STUDY/README.md)
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import NamedTuple

BASELINE = "erm"

ZOO_HEADER = """\
# results/zoo-digits-c — the method zoo's published study

Every built-in method of vicinal (the project card's ERM, mixup, manifold mixup, VarMixup and its β-VAE
variant; CutMix; the zoo's Gaussian VRM, RegMixup, AugMix, FMix and Noisy Feature Mixup, each at its
paper's defaults) trained and evaluated by `vicinal run` on `studies/zoo-digits-c.toml`, three seeds each.
These are the result files as `vicinal run` wrote them (with their per-example outcomes and figures);
`vicinal leaderboard --results results --suite zoo-digits-c`, `vicinal compare METHOD erm --results
results --suite zoo-digits-c` and `vicinal report --results results --suite zoo-digits-c` render them
without training anything. This page was written from them by `studies/study_readme.py`;
`tests/test_published.py` checks that the files load, validate and render, and that this page is what
the script writes from them.

## How they were made

- **Suite**: `studies/zoo-digits-c.toml` = the offline default `digits-c` (scikit-learn's digits at 32 px,
  100 training images, 135 held out for temperature scaling, 450 test images; half-width small CNN,
  120 epochs of batch 32, SGD lr 0.05 cosine; clean, calibration with temperature scaling, FGSM/PGD-L∞ at
  0.05 and 0.1 and PGD-L2 at 1 and 2 on 200 seeded test images, local linearity, all 19 corruptions × 5
  severities generated from the test digits with seed 0) with all 11 methods and seeds 0, 1, 2.
- **Why digits-c and not the CIFAR subset**: at the CIFAR study's budget (`studies/cifar10-quick-c.toml`,
  10 epochs on 4,577 images) the 33 runs would have needed an estimated three hours or more of this
  project's shared 2-core CPU (no GPU was lent), more than the session that made them had left.
  digits-c is the suite calibrated to separate methods at a budget a CPU can afford
  (docs/performance.md: 12–13 of its 15 headline columns over three to five seeds).
- **Command**: `studies/zoo_study.sh` — two lanes side by side, each a single-threaded `vicinal run` per
  seed (`--threads 1`). They ran on 2026-12-07 from 14:28 to 15:39 UTC (lane A 70 min, lane B 65 min of
  wall clock, with other jobs on the same two cores: load 2.7–8.1); `lane-a.log` and `lane-b.log` are
  their output as written (with `/usr/bin/time -v` per seed).
"""

ZOO_FOOTER = """\
## What this study supports, and what it does not

See docs/methods.md ("The method zoo: the study"). In short: the intervals above are over the test
examples (paired bootstrap, 95 %), and the `n = 3` seeds are a small sample of training runs; digits at
100 training images is a low-data regime, and none of it says how the methods rank on CIFAR at paper
budgets.
"""


OOD_HEADER = """\
# results/ood-cifar10-quick — OOD detection and selective prediction on the CIFAR-10 subset

ERM, mixup, manifold mixup, RegMixup and VarMixup trained by `vicinal run` on the real CIFAR-10 subset
(`studies/ood-cifar10-quick.toml`), two seeds each, and evaluated on the clean test split, calibration,
OOD detection and selective prediction (issue 26's observation). These are the result files as `vicinal
run` wrote them (with their per-example outcomes and figures); `vicinal leaderboard --results results
--suite ood-cifar10-quick [--by ood]`, `vicinal compare METHOD erm --results results --suite
ood-cifar10-quick` and `vicinal report --results results --suite ood-cifar10-quick` render them without
training anything. This page was written from them by `studies/study_readme.py`;
`tests/test_published.py` checks that the files load, validate and render, and that this page is what
the script writes from them.

## How they were made

- **Data**: the CIFAR-10 subset of `../shared/data/cifar-10-batches-py` (5 × 1,017 training images, of
  which 10 % = 508 are held out for temperature scaling, leaving 4,577; the 1,017 test images).
- **Suite**: `studies/ood-cifar10-quick.toml` = `cifar10-quick` (the small CNN, batch 128, SGD lr 0.1
  Nesterov, cosine schedule, crop and flip) at 15 epochs instead of 30, methods at their defaults,
  seeds 0 and 1. Evaluators: clean, calibration (15 bins, temperature scaling), `ood` and `selective`
  (`--evaluators clean,calibration,ood,selective`: the suite's attacks and linearity are left out).
- **OOD sets**: the three made without a download, 2,000 images each at seed 0: uniform noise, Gaussian
  noise (N(0.5, 1) clipped) and crops of scikit-learn's two sample photographs (`patches`). SVHN and
  CIFAR-100, the suite's near-OOD sets, are downloads this machine cannot make (no network): the
  numbers below say nothing about near OOD.
- **Command**: `studies/ood_study.sh ../shared/data` — two lanes side by side, each a single-threaded
  `vicinal run` per seed (`--threads 1`), on 2026-12-07 from 17:13 to 18:42 UTC (load 2–4: the lanes
  and the test suite); `ood-lane-a.log` and `ood-lane-b.log` are their output. Seed 0 trained first and
  was evaluated with the evaluators of that hour; their code changed (the generated OOD sets kept per
  process, the board's bootstrap) before seed 1 ran, so the script ran again at 18:43, which
  re-evaluated the seed-0 models with the final evaluator code (training reused: its code had not
  changed) and reused seed 1. The two commits the files name hold the same `vicinal/` code.
"""

OOD_FOOTER = """\
## What this study supports, and what it does not

See docs/evaluators.md ("What the columns said on the CIFAR subset"). In short: two seeds, 15 epochs on
4,577 images (accuracy 54–70 %, far below the paper's), and only far-OOD sets (noise and photo patches).
The intervals combine a paired bootstrap over the test and OOD examples with the spread of the two seeds
(a t quantile with 2 degrees of freedom): where the seeds disagree, as they do on the noise sets, two
seeds cannot separate the methods.
"""


class Study(NamedTuple):
    header: str  # what the study is and how it was run (typed: the commands and times of the session)
    footer: str  # what it supports


STUDIES = {
    "zoo-digits-c": Study(ZOO_HEADER, ZOO_FOOTER),
    "ood-cifar10-quick": Study(OOD_HEADER, OOD_FOOTER),
}


def machine_lines(results: list) -> list[str]:
    """Code, machine and time, as the result files record them."""
    env = [r.environment for r in results]
    commits = Counter(str(e.get("git_commit", "?"))[:12] for e in env)
    versions = Counter(str(e.get("versions", {}).get("vicinal", "?")) for e in env)
    torches = Counter(str(e.get("versions", {}).get("torch", "?")) for e in env)
    platforms = Counter(str(e.get("platform", "?")) for e in env)
    threads = Counter(str(e.get("device", {}).get("torch_threads", "?")) for e in env)
    created = sorted(r.created for r in results if r.created)
    seconds = {k: sum(float(r.timing.get(k, 0)) for r in results) for k in ("prepare_s", "train_s", "eval_s")}

    def listed(counter: Counter) -> str:
        return ", ".join(f"`{k}`" + (f" ({n} files)" if len(counter) > 1 else "") for k, n in counter.items())

    return [
        f"- **Code**: git commit {listed(commits)}, vicinal {listed(versions)}, torch {listed(torches)}.",
        f"- **Machine**: {listed(platforms)} (2 CPU cores shared with other jobs), CPU only, torch threads"
        f" per run: {listed(threads)}, two runs at a time.",
        f"- **Files**: {len(results)} result files, created {created[0]} to {created[-1]} (UTC)."
        if created
        else f"- **Files**: {len(results)} result files.",
        f"- **Time**, summed over the files: training {seconds['train_s'] / 3600:.2f} h, preparing"
        f" {seconds['prepare_s'] / 3600:.2f} h (VAE pre-training, or loading a cached VAE), evaluation"
        f" {seconds['eval_s'] / 3600:.2f} h.",
    ]


def render(results_dir: Path, study: str) -> str:
    import vicinal
    from vicinal.store.results import load_store

    spec = STUDIES[study]
    store = load_store(results_dir)
    mine = [r for r in store.results if r.suite == study]
    board = vicinal.leaderboard(results_dir, suite=study, metrics=["all"])
    headline = vicinal.leaderboard(results_dir, suite=study)
    methods = sorted({r.method for r in mine} - {BASELINE})
    parts = [spec.header, *machine_lines(mine), ""]
    parts += ["## The board (headline columns)", "", headline.to_markdown().strip(), ""]
    parts += ["## Every method against ERM (A − B, paired over the test examples)", ""]
    for method in methods:
        comparison = vicinal.compare(method, BASELINE, suite=study, results_dir=results_dir)
        parts += [comparison.to_markdown().strip(), ""]
    parts += ["## Every metric", "", board.to_markdown().strip(), "", spec.footer]
    return "\n".join(parts)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in STUDIES:
        sys.exit(f"usage: python studies/study_readme.py {{{','.join(STUDIES)}}} [RESULTS_DIR]")
    study = sys.argv[1]
    results_dir = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("results")
    out = results_dir / study / "README.md"
    out.write_text(render(results_dir, study))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
