#!/usr/bin/env bash
# Checks that a build with the default `avx512` feature (gemm's x86-v4
# kernels) still runs correctly on a CPU without AVX-512: the golden model
# tests run under qemu-user emulating a Haswell (AVX2, no AVX-512).
# Needs Debian's qemu-user (apt-get install qemu-user).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(cargo test -p ift --test model_reference --no-run --message-format=json 2>/dev/null \
  | grep -o '"executable":"[^"]*model_reference[^"]*"' | cut -d'"' -f4 | tail -1)
echo "binary: $bin"
echo "AVX-512 (zmm) instructions in it: $(objdump -d --no-show-raw-insn "$bin" | grep -c zmm)"
qemu-x86_64 -cpu Haswell "$bin"
