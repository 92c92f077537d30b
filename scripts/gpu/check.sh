#!/usr/bin/env bash
# The device check of issue 15, on a GPU machine with PyTorch + CUDA 13 but no Rust toolchain and
# no network, in one call of a few minutes. Carry dist/gpu (scripts/gpu/build.sh makes it):
#   1. unpacks the stripped CUDA binaries (ift, cuda_parity) and points the loader at the CUDA
#      libraries inside PyTorch's environment;
#   2. runs the CUDA test binary: GPU against CPU for logits, losses and gradients of SFT, IFT
#      and every preference objective, LoRA and a q8_0 base (tolerances in
#      crates/ift/tests/cuda_parity.rs);
#   3. benchmarks `ift bench` against PyTorch eager and PyTorch SDPA (autocast bf16, f32 master
#      weights, AdamW), SFT and IFT steps, on random models of SmolLM2-135M's config and of
#      Llama 3.2 1B's shapes, and prints tokens/s, the ratios, peak GPU memory (nvidia-smi, the
#      same way for every process) and MFU against the chip's bf16 peak.
# Knobs: CHECK_MODELS ("smollm2 1b"), CHECK_STEPS ("sft ift"), PEAK_TFLOPS (989, H100/H200 SXM
# dense bf16), BENCH_ITERS (3), SKIP_PARITY=1. Logs go to $OUT (the device tool's) or /tmp.
set -uo pipefail
cd "$(dirname "$0")/../.."
DIST=${DIST:-dist/gpu}
LOG=${OUT:-/tmp/ift-gpu-check}
mkdir -p "$LOG"
BIN=$(mktemp -d)
PY=${PYTHON:-python3}
"$PY" - "$DIST" "$BIN" <<'PY' || exit 1
import lzma, os, shutil, sys
for name in ("ift", "cuda_parity"):
    src, dst = f"{sys.argv[1]}/{name}.xz", f"{sys.argv[2]}/{name}"
    with lzma.open(src) as f, open(dst, "wb") as o:
        shutil.copyfileobj(f, o)
    os.chmod(dst, 0o755)
PY
# cuBLAS, cuRAND, NVRTC and the runtime as PyTorch's wheels ship them.
LIBS=$("$PY" - <<'PY'
import glob, os
dirs = set()
try:
    import nvidia
    for root in nvidia.__path__:
        for so in glob.glob(os.path.join(root, "**", "lib*.so*"), recursive=True):
            dirs.add(os.path.dirname(so))
except ImportError:
    pass
import torch
dirs.add(os.path.join(os.path.dirname(torch.__file__), "lib"))
print(":".join(sorted(dirs)))
PY
)
export LD_LIBRARY_PATH=$LIBS:${LD_LIBRARY_PATH:-}
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  "$PY" -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)'
  echo "unresolved libraries:"; ldd "$BIN/ift" | grep "not found" || echo "  none"
} 2>&1 | tee "$LOG/machine.txt"

if [[ -z "${SKIP_PARITY:-}" ]]; then
  echo "== CUDA parity tests"
  IFT_TEST_FIXTURES=crates/ift/tests/fixtures timeout "${PARITY_TIMEOUT:-240}" \
    "$BIN/cuda_parity" --test-threads 1 >"$LOG/parity.txt" 2>&1
  echo "exit $?" >>"$LOG/parity.txt"
  grep -E "^test |test result|panicked|exit" "$LOG/parity.txt"
fi

echo "== benchmark (bf16, AdamW; PyTorch eager and SDPA around ift)"
export BENCH_ITERS=${BENCH_ITERS:-3} BENCH_WARMUP=${BENCH_WARMUP:-1}
rows=$LOG/bench.jsonl
: >"$rows"
# Peak GPU memory of one process: nvidia-smi sampled every 50 ms, minus what was in use before.
measure() {
  local base; base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 >"$LOG/mem.txt" &
  local poll=$!
  local line; line=$(timeout 240 "$@" 2>>"$LOG/bench.err" | tail -1)
  kill "$poll" 2>/dev/null; wait "$poll" 2>/dev/null
  local peak; peak=$(sort -n "$LOG/mem.txt" | tail -1)
  if [[ "$line" == \{* ]]; then
    "$PY" -c 'import json,sys; r=json.loads(sys.argv[1]); r["gpu_mib"]=float(sys.argv[2])-float(sys.argv[3]); print(json.dumps(r))' \
      "$line" "${peak:-0}" "${base:-0}" >>"$rows"
  else
    echo "  failed: $* (see $LOG/bench.err)"
  fi
}
for model in ${CHECK_MODELS:-smollm2 1b}; do
  case $model in
    smollm2) shape="--batch 16 --seq 1024" ;;
    1b) shape="--batch 8 --seq 1024" ;;
    *) shape="--batch 8 --seq 1024" ;;
  esac
  for step in ${CHECK_STEPS:-sft ift}; do
    echo "  $model $step ($shape)"
    measure "$PY" scripts/bench/versus_torch.py "$model" "$step" --device cuda --dtype bf16 --attn eager $shape
    measure "$PY" scripts/bench/versus_torch.py "$model" "$step" --device cuda --dtype bf16 --attn sdpa $shape
    measure "$BIN/ift" bench "$model" "$step" --device cuda --dtype bf16 $shape
  done
done

"$PY" - "$rows" "${PEAK_TFLOPS:-989}" <<'PY' | tee "$LOG/table.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
peak = float(sys.argv[2]) * 1e12
def find(model, step, impl, attn=None):
    for r in rows:
        if (r["model"], r["step"], r["impl"]) == (model, step, impl) and (attn is None or r.get("attn") == attn):
            return r
print(f"\nbf16 step tokens/s, peak GPU memory (MiB, nvidia-smi) and MFU (of {sys.argv[2]} TFLOP/s), ift against PyTorch")
print("| model | step | ift tok/s | eager tok/s | sdpa tok/s | ift/eager | ift/sdpa | ift MiB | eager MiB | sdpa MiB | MFU ift | MFU eager | MFU sdpa |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for key in dict.fromkeys((r["model"], r["step"]) for r in rows):
    o, e, s = find(*key, "ift"), find(*key, "torch", "eager"), find(*key, "torch", "sdpa")
    if not o:
        continue
    f = o["flops_per_token"]
    tps = lambda r: r["tokens_per_s"] if r else float("nan")
    mib = lambda r: r["gpu_mib"] if r else float("nan")
    mfu = lambda r: tps(r) * f / peak
    print(f"| {key[0]} | {key[1]} | {tps(o):.0f} | {tps(e):.0f} | {tps(s):.0f} | {tps(o)/tps(e):.2f} | "
          f"{tps(o)/tps(s):.2f} | {mib(o):.0f} | {mib(e):.0f} | {mib(s):.0f} | "
          f"{mfu(o):.1%} | {mfu(e):.1%} | {mfu(s):.1%} |")
for model in dict.fromkeys(r["model"] for r in rows):
    sft, ift = find(model, "sft", "ift"), find(model, "ift", "ift")
    if sft and ift:
        print(f"\n{model}: ift's IFT step / SFT step = {sft['tokens_per_s'] / ift['tokens_per_s']:.2f}")
PY
