#!/usr/bin/env bash
# The VarMixup VAE study ("What VarMixup needs from its VAE"; docs/methods.md, "VarMixup: what matters").
#
# Runs, on the real CIFAR-10 subset and the study suite studies/cifar10-quick-c.toml (small CNN,
# 10 epochs, batch 128, 15 common corruptions × 5 severities on 300 images per cell, FGSM/PGD-L∞ at
# 1/255 and 2/255 on 200 images, γ on 64 images), all with `vicinal run` from this worktree's code:
#   1. a pre-screen of VAE designs by held-out reconstruction MSE, VAE training only (seed 0):
#      architecture (conv, resnet), likelihood (bernoulli, gaussian), latent size (64, 128, 256),
#      VAE epochs (15, 30, 60) and β (1, 4) — studies/vae_prescreen.py;
#   2. the references erm and mixup, seeds 0 and 1;
#   3. VarMixup at VAE designs chosen from the pre-screen, seeds 0 and 1, train_on = decoded+clean;
#   4. at the best VAE: train_on = decoded, train_on = half (equal compute), mix = means; seeds 0 and 1.
# Every VarMixup run spells out all VAE settings with --set, so the study does not depend on the
# method's defaults. Finished runs are reused (same configuration and code), so rerunning resumes the
# study; the result files written before the branch merged main's result schema 2 are not reused by
# `vicinal run` (docs/methods.md, "VarMixup: what matters"), so after that merge only capacity, architecture and
# prescreen still have work to do that the existing files do not already cover.
#
# Two lanes of one single-threaded process each run side by side (OMP_NUM_THREADS=1, nice 5), i.e. two
# threads in all: on the shared 2-core machine (load 5–16 from other users during the study) a small-CNN
# training step took 2.6 s single-threaded against 4.2 s two-threaded, which waits on its own threads
# whenever another user's job holds a core (one measurement each).
#
# Usage: studies/varmixup_vae.sh [prescreen|refs|base|variants|capacity|architecture|all]   (default: all,
#   which runs variants, capacity in one lane and refs, base, prescreen, architecture in the other, the
#   order in which they were run; BEST=… overrides the VAE
#   of the variants, whose default is set from the pre-screen — edit it before running `variants`).
#   DATA (default /work/shared/data) and OUT (default /work/vae-study) choose the folders;
#   studies/varmixup_vae_report.py then writes the table and docs/varmixup-vae.png.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${DATA:-/work/shared/data}
OUT=${OUT:-/work/vae-study}
SUITE=studies/cifar10-quick-c.toml
export OMP_NUM_THREADS=1
mkdir -p "$OUT/logs"

run() {
    nice -n 5 .venv/bin/vicinal run --suite "$SUITE" --data-dir "$DATA" --cache-dir "$OUT/cache" \
        --results "$OUT/results" --quiet "$@"
}

# varmixup SEEDS "k=v k=v …": one VarMixup configuration; every key becomes --set varmixup.k=v.
varmixup() {
    local seeds=$1 args=()
    for kv in $2; do args+=(--set "varmixup.$kv"); done
    echo "$(date +%T) varmixup seeds $seeds: $2"
    run --methods varmixup --seeds "$seeds" "${args[@]}"
}

# VAE designs: every setting of the VAE explicit (alpha, vae_lr, vae_batch_size, vae_width stay at
# 1, 1e-3, 128 and 32 throughout).
vae() {  # vae ARCH LIKELIHOOD LATENT EPOCHS BETA
    echo "vae_arch=$1 vae_likelihood=$2 latent_dim=$3 vae_epochs=$4 beta=$5"
}
CONV_BERN=$(vae conv bernoulli 128 30 1)      # VarMixup's definition before this study
CONV_BERN_B4=$(vae conv bernoulli 128 30 4)   # varmixup-beta's
CONV_GAUSS=$(vae conv gaussian 128 30 1)
CONV_GAUSS_256=$(vae conv gaussian 256 30 1)
CONV_GAUSS_B4=$(vae conv gaussian 128 30 4)
RES_GAUSS=$(vae resnet gaussian 128 30 1)
# The VAE of the train_on / mix variants. The pre-screen ranked the Gaussian conv VAEs first (validation
# MSE 0.0050 at latent 256, 0.0059 at 60 epochs, 0.0061 at latent 128 and 30 epochs, vs 0.0121 for the
# Bernoulli one); the latent-128, 30-epoch one is used because `base` already runs it with
# train_on = decoded+clean, so each variant is compared with the same VAE at no extra cost.
BEST=${BEST:-$CONV_GAUSS}
VARIANT="mix=sample train_on=decoded+clean"

prescreen() {
    local designs=()
    for d in "$CONV_BERN" "$(vae conv gaussian 128 30 1)" "$CONV_GAUSS_256" "$(vae conv gaussian 128 60 1)" \
        "$CONV_GAUSS_B4" "$CONV_BERN_B4" "$(vae conv gaussian 64 30 1)" "$(vae conv gaussian 128 15 1)" \
        "$RES_GAUSS"; do
        designs+=("${d// /,}")
    done
    nice -n 5 .venv/bin/python studies/vae_prescreen.py --data-dir "$DATA" --cache-dir "$OUT/cache" \
        --out "$OUT/prescreen.json" --seeds 0 "${designs[@]}"
}

refs() {
    for seed in 0 1; do
        echo "$(date +%T) erm, mixup seed $seed"
        run --methods erm,mixup --seeds "$seed"
    done
}

base() {  # the VAE VarMixup had before this study, and the same VAE with the calibrated Gaussian
    varmixup 0,1 "$CONV_BERN $VARIANT"
    varmixup 0,1 "$CONV_GAUSS $VARIANT"
}

capacity() {  # latent size and β around the Gaussian conv VAE
    varmixup 0,1 "$CONV_GAUSS_256 $VARIANT"
    varmixup 0,1 "$CONV_GAUSS_B4 $VARIANT"
}

architecture() {  # the residual VAE, and varmixup-beta's Bernoulli β = 4 VAE
    varmixup 0,1 "$RES_GAUSS $VARIANT"
    varmixup 0,1 "$CONV_BERN_B4 $VARIANT"
}

variants() {  # at the best VAE: equal compute first, then decoded only and decoded means
    varmixup 0,1 "$BEST mix=sample train_on=half"
    varmixup 0 "$BEST mix=sample train_on=decoded"
    varmixup 0 "$BEST mix=means train_on=decoded+clean"
    varmixup 1 "$BEST mix=sample train_on=decoded"
    varmixup 1 "$BEST mix=means train_on=decoded+clean"
}

# Everything runs inside main, called on the script's last line together with exit: bash reads a script
# as it executes it, so a script edited during a study (hours) otherwise resumes at a stale byte offset
# after the running phase returns — the cut-off study died that way ("line 112: syntax error near
# unexpected token `)'") instead of starting its capacity phase.
main() {
    case "${1:-all}" in
        prescreen | refs | base | variants | capacity | architecture) "$1" ;;
        all)
            # As run: the pre-screen's first four VAEs, then lane a; lane b; the rest of the pre-screen last.
            { variants && capacity; } > "$OUT/logs/lane-a.log" 2>&1 &
            { refs && base && prescreen && architecture; } > "$OUT/logs/lane-b.log" 2>&1 &
            wait
            ;;
        *) echo "usage: $0 [prescreen|refs|base|variants|capacity|architecture|all]" >&2; exit 2 ;;
    esac
}

main "$@"; exit
