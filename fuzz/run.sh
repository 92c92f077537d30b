#!/bin/sh
# Long fuzz runs, one target after another with ONE libFuzzer job each (the
# machine is shared): fuzz/run.sh [SECONDS per target, default 600] [TARGET...]
# Seeds each corpus from the repository's fixtures and fuzz/regressions/
# first. A crash lands in fuzz/artifacts/<target>/; copy it to
# fuzz/regressions/<target>/ and turn it into a regression test in the
# crate's tests before fixing it. `fuzz/run.sh 5` is a seconds-long smoke run.
set -eu
cd "$(dirname "$0")"
secs="${1:-600}"
[ $# -gt 0 ] && shift
targets="${*:-records run_config model_files chat_template gguf checkpoint}"
fx=../crates/ift/tests/fixtures
seed() { mkdir -p "corpus/$1"; }
seed records; cp $fx/records/* corpus/records/
seed run_config; cp ../examples/*.toml corpus/run_config/
seed model_files
{ printf '\0'; cat $fx/models/llama_gqa/config.json; } > corpus/model_files/config
{ printf '\1'; cat $fx/models/llama_gqa/model-00004-of-00004.safetensors; } > corpus/model_files/weights
seed chat_template
for t in chatml llama3 zephyr; do
  { printf '\0'; cat $fx/templates/$t/tokenizer_config.json; } > corpus/chat_template/$t
done
printf '\1{%% for m in messages %%}{{ m.role }}: {{ m.content }}{%% endfor %%}' > corpus/chat_template/plain
seed gguf; cp $fx/gguf/*.gguf corpus/gguf/
# checkpoint: the first byte picks the file of checkpoint-1 (sorted: 3 is
# manifest.json, 5 optimizer.safetensors, 8 trainer_state.json; +9 also drops
# the manifest).
seed checkpoint
state='{"step":1,"epoch":0,"batch_in_epoch":1,"seed":42,"tokens_seen":9,"elapsed_s":0.1,"bad_steps":0,"evaluated":true}'
printf '\010%s' "$state" > corpus/checkpoint/state
printf '\021%s' "$state" > corpus/checkpoint/state-legacy
printf '\003{"format":"ift-checkpoint-manifest-1","files":{}}' > corpus/checkpoint/manifest
{ printf '\016'; cat $fx/models/llama_gqa/model-00004-of-00004.safetensors; } > corpus/checkpoint/optimizer
# Inputs that crashed once stay in the corpus (each also has a regression test).
for d in regressions/*/; do seed "$(basename "$d")"; cp "$d"* "corpus/$(basename "$d")/"; done
for t in $targets; do
  echo "== $t: ${secs}s" >&2
  CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}" cargo +nightly fuzz run -s none "$t" "corpus/$t" -- \
    -max_total_time="$secs" -jobs=1 -workers=1 -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 >"fuzz-$t.driver.log" 2>&1 || true
  # With -jobs, libFuzzer's worker logs to fuzz-0.log.
  mv fuzz-0.log "fuzz-$t.log" 2>/dev/null || mv "fuzz-$t.driver.log" "fuzz-$t.log"
  grep -E "^(stat::|#[0-9]+.*DONE|==[0-9]+== ERROR|SUMMARY|artifact_prefix|Test unit written)" "fuzz-$t.log" >&2 || tail -n 5 "fuzz-$t.log" >&2
done
# The targets' scratch directories (named with their pid).
rm -rf /dev/shm/ift-fuzz-model-* /dev/shm/ift-fuzz-checkpoint-* 2>/dev/null || true
