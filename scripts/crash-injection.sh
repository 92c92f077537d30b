#!/bin/sh
# The crash-injection harness at a large size: 40-step runs of every objective,
# each killed at the CI plan's points plus KILLS more at random steps and
# inside checkpoint writes (seeded by SEED), resumed each time, then compared
# file by file with an unbroken run. CI runs the small size
# (crates/ift-cli/tests/crash_injection.rs without IFT_CRASH_KILLS).
#
#   scripts/crash-injection.sh [KILLS] [SEED]     # default 30 kills, seed 1
set -eu
cd "$(dirname "$0")/.."
IFT_CRASH_KILLS="${1:-30}" IFT_CRASH_SEED="${2:-1}" CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}" \
  cargo test -p ift-cli --test crash_injection -- --nocapture killed_runs
