#!/usr/bin/env bash
# ift's engine against PyTorch + transformers on this machine, back to back:
# for each model and step, PyTorch, then ift, then PyTorch again, each in its
# own process (so every peak RSS is one measurement's). Prints the machine's
# load before and after and a table of ratios ift / PyTorch. See README.md.
#
#   scripts/bench/run.sh                   # both models, every step
#   BENCH_MODELS=32m BENCH_STEPS="sft ift" scripts/bench/run.sh
#
# PYTHON: an interpreter with torch + transformers; without it a virtual
# environment with the pinned versions below is created on first use in
# ${IFT_BENCH_CACHE:-~/.cache/ift-bench}. BENCH_WARMUP / BENCH_ITERS: steps per
# measurement (default 1 / 3). BENCH_THREADS: threads of both sides (default 2).
# BENCH_FEATURES: cargo features of the ift build (e.g. "openblas"; see README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
TORCH_VERSION=2.15.0
TRANSFORMERS_VERSION=5.23.0
MODELS=${BENCH_MODELS:-"32m smollm2"}
STEPS=${BENCH_STEPS:-"forward sft ift dpo"}
export BENCH_THREADS=${BENCH_THREADS:-2}
export RAYON_NUM_THREADS=$BENCH_THREADS CANDLE_NUM_THREADS=$BENCH_THREADS

if [[ -z "${PYTHON:-}" ]]; then
    venv=${IFT_BENCH_CACHE:-$HOME/.cache/ift-bench}/venv
    if [[ ! -x "$venv/bin/python" ]]; then
        echo "creating $venv (torch $TORCH_VERSION, transformers $TRANSFORMERS_VERSION)" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q "torch==$TORCH_VERSION" "transformers==$TRANSFORMERS_VERSION"
    fi
    PYTHON=$venv/bin/python
fi

cargo build -q --release -p ift-cli ${BENCH_FEATURES:+--features "$BENCH_FEATURES"}
bench="target/release/ift bench"
out=${BENCH_OUT:-$(mktemp)}
[[ -n "${BENCH_OUT:-}" ]] || trap 'rm -f "$out"' EXIT

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), threads $BENCH_THREADS"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for model in $MODELS; do
    for step in $STEPS; do
        echo "  $model $step" >&2
        "$PYTHON" scripts/bench/versus_torch.py "$model" "$step" >>"$out"
        $bench "$model" "$step" >>"$out"
        "$PYTHON" scripts/bench/versus_torch.py "$model" "$step" >>"$out"
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

"$PYTHON" - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
torch_v = next((r["torch"] for r in rows if r["impl"] == "torch"), "?")
backend = next((r.get("matmul", "?") for r in rows if r["impl"] == "ift"), "?")
print(f"ift's CPU matmuls: {backend}")
print(f"\nift / PyTorch {torch_v} (SDPA): tokens/s ratio (>1: ift faster) against each PyTorch run, peak RSS ratio (<1: ift smaller)")
print(f"{'model':<8} {'step':<8} {'ift tok/s':>10} {'torch tok/s':>15} {'speed':>13} {'ift MiB':>8} {'torch MiB':>10} {'RSS':>6}")
for key in dict.fromkeys((r["model"], r["step"]) for r in rows):
    ours = [r for r in rows if (r["model"], r["step"]) == key and r["impl"] == "ift"]
    ref = [r for r in rows if (r["model"], r["step"]) == key and r["impl"] == "torch"]
    if not ours or not ref:
        continue
    o = ours[0]
    speeds = [o["tokens_per_s"] / t["tokens_per_s"] for t in ref]
    rss = o["peak_rss_mib"] / max(t["peak_rss_mib"] for t in ref)
    print(f"{key[0]:<8} {key[1]:<8} {o['tokens_per_s']:>10.0f} "
          f"{' / '.join('%.0f' % t['tokens_per_s'] for t in ref):>15} "
          f"{' / '.join('%.2f' % s for s in speeds):>13} {o['peak_rss_mib']:>8.0f} "
          f"{max(t['peak_rss_mib'] for t in ref):>10.0f} {rss:>6.2f}")

# What IFT costs over SFT on each side (the same tokens: a ratio of step times).
def step_s(model, step, impl):
    s = [r["median_s"] for r in rows if (r["model"], r["step"], r["impl"]) == (model, step, impl)]
    return sum(s) / len(s) if s else None
for model in dict.fromkeys(r["model"] for r in rows):
    cost = {impl: (step_s(model, "ift", impl), step_s(model, "sft", impl)) for impl in ("ift", "torch")}
    if all(a and b for a, b in cost.values()):
        print(f"\n{model}: IFT step / SFT step: ift {cost['ift'][0] / cost['ift'][1]:.2f}, "
              f"PyTorch {cost['torch'][0] / cost['torch'][1]:.2f} (PyTorch: means of its runs)")
PY
