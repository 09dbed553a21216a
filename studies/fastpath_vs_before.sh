#!/usr/bin/env bash
# The training fast path against the code before it, on the CPU: the same `vicinal run` (ERM, small CNN,
# cifar10-quick at 3 epochs on the CIFAR subset, clean evaluator only, one thread) from two checkouts,
# interleaved (before/after, after/before, …), each from a fresh cache; prints the training throughput the
# result file records and the command's wall and user CPU seconds. BENCHMARKS.md has the figures.
#
# Usage: BEFORE=/path/to/old/checkout AFTER=/path/to/this/checkout DATA=../shared/data OUT=/tmp/fastpath \
#        studies/fastpath_vs_before.sh       (each checkout with its own .venv holding an editable install)
set -u
BEFORE=${BEFORE:?a checkout of the older commit, with .venv} AFTER=${AFTER:-$(cd "$(dirname "$0")/.." && pwd)}
DATA=${DATA:-../shared/data} OUT=${OUT:-/tmp/fastpath} ROUNDS=${ROUNDS:-3}
mkdir -p "$OUT"
for round in $(seq 1 "$ROUNDS"); do
  order="before after"; [ $((round % 2)) = 0 ] && order="after before"
  for side in $order; do
    dir=$BEFORE; [ "$side" = after ] && dir=$AFTER
    run="$OUT/$side-r$round"; rm -rf "$run"
    ( cd "$dir" && OMP_NUM_THREADS=1 VICINAL_THREADS=1 /usr/bin/time -f "%e %U" -o "$run.time" \
      .venv/bin/vicinal run --suite cifar10-quick --methods erm --seeds 0 --epochs 3 --evaluators clean \
      --quiet --data-dir "$DATA" --results "$run/results" --cache-dir "$run/cache" > "$run.log" 2>&1 )
    ips=$(python3 -c "import glob, json, sys; f = glob.glob(sys.argv[1] + '/**/*.json', recursive=True)[0]; \
print(json.load(open(f))['training']['images_per_second'])" "$run/results")
    echo "round $round $side: img/s $ips · wall, user CPU s $(cat "$run.time") · load $(cut -d' ' -f1 /proc/loadavg)"
  done
done
