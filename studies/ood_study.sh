#!/usr/bin/env bash
# Issue 26's CIFAR observation: studies/ood-cifar10-quick.toml (cifar10-quick at 15 epochs; ERM, mixup,
# manifold mixup, RegMixup, VarMixup; seeds 0-1) on the real CIFAR-10 subset, with the clean, calibration,
# ood and selective evaluators, one thread per run, two lanes side by side (lane B holds VarMixup, which
# trains a VAE first). Finished runs are reused, so running it again resumes; the lane logs are appended to.
#
# Usage: studies/ood_study.sh DATA_DIR [RESULTS_DIR]   (DATA_DIR holds cifar-10-batches-py/)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:?give the folder that holds cifar-10-batches-py}
results=${2:-results}
mkdir -p "$results"
lane() {
    for seed in 0 1; do
        vicinal run --suite studies/ood-cifar10-quick.toml --methods "$1" --seeds "$seed" --threads 1 \
            --evaluators clean,calibration,ood,selective --data-dir "$data" --results "$results"
    done
}
lane erm,mixup,regmixup >> "$results/ood-lane-a.log" 2>&1 &
lane varmixup,manifold-mixup >> "$results/ood-lane-b.log" 2>&1 &
wait
