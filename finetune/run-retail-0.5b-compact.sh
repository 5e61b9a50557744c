#!/usr/bin/env bash
# The README's second fine-tuning table: the embedded 0.5B trained on retail's train split
# with the routine in the compact style and without it (retail-0.5b-compact-cpu.yaml),
# exported to GGUF, evaluated on the test split under every condition, and put beside the
# base model's results on the same samples and the same code. Resumable: each stage skips
# what is done; training resumes from its last checkpoint, `routine eval` from its last
# record (each condition runs alone, into the same results folder).
#   finetune/run-retail-0.5b-compact.sh
set -euo pipefail
recipes=$(cd "$(dirname "$0")" && pwd)/recipes
runs=${RUNS:-runs/ft-retail-0.5b-compact}
results=eval/results/retail-0.5b-compact-adapter
base=eval/results/retail-0.5b-base
model=qwen2.5-coder-0.5b
mkdir -p "$runs" "$results" "$base"
[ -s "$runs/sft-train.jsonl" ] ||
  routine distill eval/datasets/retail --variants compact,distilled \
    --out "$runs/sft-train.jsonl" > "$runs/sft-train.stats.json"
adapter="$results/adapter.gguf"
if [ ! -s "$adapter" ]; then
  [ -f "$runs/train/log.json" ] ||
    routine finetune --recipe "$recipes/retail-0.5b-compact-cpu.yaml" \
      --data "$runs/sft-train.jsonl" --out "$runs/train" ${PRECISION:+--precision "$PRECISION"}
  routine export-adapter "$runs/train/adapter" --out "$adapter" --base "$model"
  cp "$runs/train/log.json" "$results/train-log.json"
  cp "$runs/sft-train.stats.json" "$results/sft-train.stats.json"
fi
step() {  # folder condition [--adapter FILE]
  local out=$1 condition=$2; shift 2
  routine eval eval/datasets/retail --out "$out" --model "$model" "$@" \
    --conditions "$condition" --protocols step --steps 0 --tasks 0 --no-shuffle-tools
}
# the goals first: the adapter with compact tracking, then without any routine
for condition in nl+track+compact none nl nl+track; do
  step "$results" "$condition" --adapter "$adapter"
done
for condition in none nl nl+track nl+track+compact; do
  step "$base" "$condition"
done
routine eval eval/datasets/retail --out "$results" --report-only \
  --conditions none,nl,nl+track,nl+track+compact --protocols step --steps 0 --tasks 0
routine eval eval/datasets/retail --out "$base" --report-only \
  --conditions none,nl,nl+track,nl+track+compact --protocols step --steps 0 --tasks 0
routine compare-results "$base" "$results" --labels base,adapter \
  --cross none=nl --cross none=nl+track --cross none=nl+track+compact > "$results/comparison.md"
cat "$results/comparison.md"
