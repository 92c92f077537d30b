#!/usr/bin/env bash
# Builds the CUDA release binary and the CUDA test binary on a machine without a GPU
# (issue 15), following ../shared/docs/gpu-build.md:
#   1. installs CUDA 13.0's compiler, headers and libraries from PyPI into $IFT_CUDA_CACHE
#      (default ~/.cache/ift-cuda) on first use;
#   2. makes the unversioned link names and a link-time stub of the driver (libcuda.so), which
#      the GPU machine's real driver replaces at run time;
#   3. builds `ift` and the `cuda_parity` test binary with `--features cuda` for compute
#      capability 9.0 (H100/H200; CUDA_COMPUTE_CAP overrides), in target-cuda/ so that the
#      CPU build is not rebuilt;
#   4. strips and compresses both into dist/gpu/ (`ift.xz`, `cuda_parity.xz`), which
#      scripts/gpu/check.sh unpacks on the GPU machine.
# About 10-15 minutes on 2 cores the first time. CI never runs this.
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE=${IFT_CUDA_CACHE:-$HOME/.cache/ift-cuda}
PY=${PYTHON:-python3}
if [ ! -x "$CACHE/venv/bin/pip" ]; then
  "$PY" -m venv "$CACHE/venv"
fi
# nvvm pinned: pip's newest emits PTX that 13.0's ptxas rejects (gpu-build.md).
"$CACHE/venv/bin/pip" install -q \
  "nvidia-cuda-nvcc==13.0.*" "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-cccl==13.0.*" \
  "nvidia-cuda-crt==13.0.*" "nvidia-nvvm==13.0.*" "nvidia-cublas==13.0.*" \
  "nvidia-curand==10.4.0.*" "nvidia-cuda-nvrtc==13.0.*"
C=$(ls -d "$CACHE"/venv/lib/python3*/site-packages/nvidia/cu13)
L=$CACHE/link
mkdir -p "$L"
for l in cudart.so.13 nvrtc.so.13 curand.so.10 cublas.so.13 cublasLt.so.13; do
  ln -sf "$C/lib/lib$l" "$L/lib${l%%.so*}.so"
done
# Every driver entry point cudarc declares, returning an error code; never run.
cargo fetch -q   # the lock file names cudarc (an optional dependency); its source holds the list
CUDARC=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.* | tail -1)
if [ ! -f "$L/libcuda.so" ] || [ "$CUDARC" -nt "$L/libcuda.so" ]; then
  grep -rhoE "pub (unsafe )?fn cu[A-Za-z0-9_]+" "$CUDARC/src/driver/sys/" \
    | awk '{print "int "$NF"(void){return 999;}"}' | sort -u > "$L/stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$L/libcuda.so" "$L/stub.c"
fi
export PATH=$C/bin:$PATH CUDA_ROOT=$C CUDA_PATH=$C CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export NVCC_APPEND_FLAGS="-I$C/include -I$C/include/cccl"
export RUSTFLAGS="-L $L" CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target-cuda}
nvcc --version | tail -2
cargo build --release -p ift-cli --features cuda
# The test binary's path is printed by cargo as JSON; take the cuda_parity one.
TEST_BIN=$(cargo test --release -p ift --features cuda --test cuda_parity --no-run \
  --message-format=json 2>/dev/null | "$PY" -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "cuda_parity":
        print(m["executable"])')
mkdir -p dist/gpu
for pair in "ift:$CARGO_TARGET_DIR/release/ift" "cuda_parity:$TEST_BIN"; do
  name=${pair%%:*}; bin=${pair#*:}
  strip -o "dist/gpu/$name" "$bin"
  xz -T0 -9 -f "dist/gpu/$name"
done
ls -l dist/gpu
echo "run on a GPU machine: scripts/gpu/check.sh (carry dist/gpu)"
