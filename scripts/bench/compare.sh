#!/usr/bin/env bash
# Runs the candle bench and the PyTorch reference back to back, on the same
# machine and thread count, and prints candle's time relative to each torch
# attention implementation. Iteration counts: SFT_BENCH_WARMUP / SFT_BENCH_ITERS.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-/work/venv-ref/bin/python}
WARMUP=${SFT_BENCH_WARMUP:-2}
ITERS=${SFT_BENCH_ITERS:-10}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "load before: $(uptime)"
SFT_BENCH_WARMUP=$WARMUP SFT_BENCH_ITERS=$ITERS \
    cargo bench -q -p ift --bench sft_step | tee "$out/candle.txt"
"$PYTHON" scripts/bench/sft_step_torch.py --warmup "$WARMUP" --iters "$ITERS" | tee "$out/torch.txt"
echo "load after: $(uptime)"

"$PYTHON" - "$out/candle.txt" "$out/torch.txt" <<'PY'
import json, sys

def first_json(path):
    return next(json.loads(l) for l in open(path) if l.startswith("{"))

candle, torch = first_json(sys.argv[1]), first_json(sys.argv[2])
ref = {(r["name"], r["attn"]): r for r in torch["results"]}
print(f"\ncandle / torch {torch['torch']} ({torch['threads']} threads): time ratio, >1 = candle slower")
print(f"{'measurement':<26} {'vs eager':>9} {'vs sdpa':>9}")
for r in candle["results"]:
    cells = []
    for attn in ("eager", "sdpa"):
        t = ref.get((r["name"], attn))
        cells.append(f"{r['ms'] / t['ms']:>8.2f}x" if t else f"{'-':>9}")
    print(f"{r['name']:<26} {cells[0]} {cells[1]}")
PY
