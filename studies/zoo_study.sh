#!/usr/bin/env bash
# The method zoo's study (issue 25): every built-in method on studies/zoo-digits-c.toml (digits-c: 100
# training digits, small CNN of width 16, 120 epochs; clean, calibration, FGSM/PGD-L∞/PGD-L2 at MNIST
# radii, local linearity, all 19 corruptions × 5 severities generated from the test digits), seeds 0-2,
# one thread per run, written to results/ (published: results/zoo-digits-c/).
#
# Two lanes side by side, each one single-threaded `vicinal run` per seed, seeds in order, so that a study
# cut short leaves every method of a lane with the same seeds. The lanes split the methods by cost (lane B
# holds RegMixup and AugMix, which forward 2n and 3n images per step). Finished runs are reused (same
# configuration, data and code), so running it again resumes.
#
# Usage: studies/zoo_study.sh [RESULTS_DIR]   (default: results)
#   then: python studies/study_readme.py zoo-digits-c [RESULTS_DIR]   rewrites results/zoo-digits-c/README.md's tables.
set -euo pipefail
cd "$(dirname "$0")/.."
results=${1:-results}
lane() {
    for seed in 0 1 2; do
        vicinal run --suite studies/zoo-digits-c.toml --methods "$1" --seeds "$seed" --threads 1 \
            --results "$results"
    done
}
lane erm,mixup,manifold-mixup,cutmix,varmixup,varmixup-beta > "$results/zoo-lane-a.log" 2>&1 &
lane gaussian-vrm,regmixup,augmix,fmix,noisy-feature-mixup > "$results/zoo-lane-b.log" 2>&1 &
wait
