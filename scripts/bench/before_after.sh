#!/usr/bin/env bash
# Our binary against itself: `ift bench MODEL STEP` of two builds in
# alternating pairs (the order flips every repetition, so drift in the
# machine's load does not favour one side), one JSON line per run with
# "which" (before / after) and "rep" added. What docs/benchmarks.md's
# "Before and after the consolidation" table was computed from.
#
#   scripts/bench/before_after.sh BEFORE_BINARY AFTER_BINARY
#   MODEL=smollm2 STEPS="sft ift dpo" REPS=2 ITERS=3 (defaults)
#
# Build the "before" side from another commit in a worktree with its own
# target directory, e.g.
#   git worktree add /tmp/before 73b6dbb
#   (cd /tmp/before && CARGO_TARGET_DIR=/tmp/before-target cargo build --release -p ift-cli)
set -euo pipefail
before=$1 after=$2
export RAYON_NUM_THREADS=${BENCH_THREADS:-2} CANDLE_NUM_THREADS=${BENCH_THREADS:-2}
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for rep in $(seq 1 "${REPS:-2}"); do
  for step in ${STEPS:-sft ift dpo}; do
    order="before after"; [ $((rep % 2)) = 0 ] && order="after before"
    for which in $order; do
      bin=$before; [ "$which" = after ] && bin=$after
      line=$("$bin" bench "${MODEL:-smollm2}" "$step" --iters "${ITERS:-3}" --warmup 1 | tail -1)
      echo "{\"which\":\"$which\",\"rep\":$rep,${line:1}"
    done
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
