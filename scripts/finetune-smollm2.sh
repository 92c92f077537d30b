#!/bin/sh
# The real fine-tune of docs/results-smollm2.md, reproducible on a 2-core CPU:
# SmolLM2-135M-Instruct evaluated, fine-tuned with SFT and with IFT on the
# Alpaca demo set (examples/smollm2-{sft,ift}.toml), and each result evaluated
# the same way. Everything lands in OUT (default runs/smollm2): the runs,
# eval-<model>-*.json, samples-<model>.txt and timing.log.
#   scripts/finetune-smollm2.sh [OUT]
# LIMIT (200) records per multiple-choice task, GEN_LIMIT (100) SVAMP problems.
set -eu
cd "$(dirname "$0")/.."
out="${1:-runs/smollm2}"
ift="${IFT:-target/release/ift}"
limit="${LIMIT:-200}"
gen_limit="${GEN_LIMIT:-100}"
evals=../shared/data/eval
[ -d "$evals" ] || { echo "$evals is missing (the shared evaluation sets)" >&2; exit 1; }
[ -x "$ift" ] || cargo build --release -p ift-cli
mkdir -p "$out"
log="$out/timing.log"
stamp() { echo "$(date -u +%FT%TZ) $*" | tee -a "$log" >&2; }
base=$("$ift" fetch smollm2)

evaluate() { # NAME MODEL_DIR
  stamp "eval $1: multiple choice"
  "$ift" eval --model "$2" --limit "$limit" --out "$out/eval-$1-mc.json" \
    --task "$evals/arc_easy.jsonl" --task "$evals/piqa.jsonl" --task "$evals/winogrande.jsonl" 2>>"$log"
  stamp "eval $1: svamp (3-shot, greedy)"
  "$ift" eval --model "$2" --limit "$gen_limit" --fewshot 3 --out "$out/eval-$1-svamp.json" \
    --task "$evals/svamp.jsonl" 2>>"$log"
  stamp "eval $1: chat samples"
  : > "$out/samples-$1.txt"
  for p in "What is the capital of France?" \
           "Give three tips for staying healthy." \
           "Rewrite this sentence in the passive voice: The cat chased the mouse." \
           "What is 12 times 7?"; do
    printf '### %s\n' "$p" >> "$out/samples-$1.txt"
    "$ift" generate --model "$2" --chat --max-new-tokens 96 --prompt "$p" >> "$out/samples-$1.txt" 2>>"$log"
    printf '\n\n' >> "$out/samples-$1.txt"
  done
}

evaluate base "$base"
for objective in sft ift; do
  stamp "train $objective"
  /usr/bin/time -f "train $objective: wall %e s, user %U s, sys %S s, peak RSS %M KB" \
    "$ift" train --config "examples/smollm2-$objective.toml" \
    --set "train.output_dir=$out/$objective" 2>>"$log"
  evaluate "$objective" "$out/$objective/final"
done
stamp done
