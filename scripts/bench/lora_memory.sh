#!/usr/bin/env bash
# Peak RSS and step time of full fine-tuning vs LoRA vs LoRA on a q8_0 / q4_k base, SFT and DPO,
# on the explicit engine (the only training path since issue 28 removed `train.engine`; the
# graph-built rows of docs/lora.md were measured before), on SmolLM2-135M-Instruct (issue 14). One run per setting per repetition; the step time is the
# median of steps 2..N from metrics.jsonl (step 1 includes one-off allocation), peak RSS is
# GNU time's "Maximum resident set size" of the whole process (loading included).
#   scripts/bench/lora_memory.sh [IFT_BINARY] [REPEATS]
# OBJECTIVES, SETTINGS and DPO_DATA narrow it down. Full-fine-tuning DPO first scores the reference
# log-probabilities of every pair of the file (a LoRA run scores only the steps' pairs), so the
# figures in docs/lora.md use the first 6 pairs of dpo_en_demo.json as DPO_DATA.
set -euo pipefail
BIN=${1:-target/debug/ift}
REPEATS=${2:-1}
MODEL=$(realpath "${MODEL:-models/SmolLM2-135M-Instruct}")  # absolute: config paths are relative to the config file
DATA=${DATA:-$(cd "$(dirname "$0")/../.." && pwd)/../shared/data/llamafactory}
OUT=$(mktemp -d)
printf "objective\tsetting\trun\tpeak_rss_mib\tstep_s_median\n"
for rep in $(seq 1 "$REPEATS"); do
for obj in ${OBJECTIVES:-sft dpo}; do
  data=$DATA/alpaca_en_demo.json; [ $obj = dpo ] && data=${DPO_DATA:-$DATA/dpo_en_demo.json}
  for setting in ${SETTINGS:-full lora lora_q8_0 lora_q4_k}; do
    adapter=""; quant="none"
    case $setting in
      lora) adapter='kind = "lora"' ;;
      lora_q8_0) adapter='kind = "lora"'; quant=q8_0 ;;
      lora_q4_k) adapter='kind = "lora"'; quant=q4_k ;;
    esac
    dir=$OUT/$obj-$setting-$rep
    cat > "$OUT/run.toml" <<TOML
[model]
path = "$MODEL"
quantize = "$quant"
[data]
train = "$data"
max_length = 256
[objective]
kind = "$obj"
[train]
output_dir = "$dir"
max_steps = 3
batch_size = 2
micro_batch_size = 2
lr = 1e-5
optimizer = "adamw"
reference_cache = "$OUT/cache-$setting-$rep"
[adapter]
$adapter
TOML
    /usr/bin/time -f "%M" -o "$OUT/rss" "$BIN" train --config "$OUT/run.toml" > /dev/null 2> "$OUT/err" || { tail -5 "$OUT/err"; exit 1; }
    rss=$(( $(tail -1 "$OUT/rss") / 1024 ))
    step=$(python3 -c "
import json,sys,statistics
rows=[json.loads(l) for l in open('$dir/metrics.jsonl') if '\"loss\"' in l]
t=[r['elapsed_s'] for r in rows]
d=[b-a for a,b in zip(t,t[1:])]
print(f'{statistics.median(d):.2f}')")
    printf "%s\t%s\t%s\t%s\t%s\n" "$obj" "$setting" "$rep" "$rss" "$step"
    rm -rf "$dir"
  done
done
done
rm -rf "$OUT"
