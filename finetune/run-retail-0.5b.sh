#!/usr/bin/env bash
# The README's fine-tuning table: distil the embedded 0.5B on retail's train split (CPU),
# export the adapter to GGUF, evaluate it on the test split with and without the routine,
# and put it beside the base model's results (eval/results/retail-0.5b, same samples).
# Resumable: every stage skips what is done; training resumes from its last checkpoint and
# `routine eval` from its last record. The schedule comparison: finetune/run-schedules-0.5b.sh.
#   finetune/run-retail-0.5b.sh
#   PRECISION=bf16 finetune/run-retail-0.5b.sh   # skip the recipe's bf16-or-fp32 probe
set -euo pipefail
recipes=$(cd "$(dirname "$0")" && pwd)/recipes  # this script's recipes, from any worktree
runs=${RUNS:-runs/ft-retail-0.5b}
results=eval/results/retail-0.5b-distilled
mkdir -p "$runs"
[ -s "$runs/sft-train.jsonl" ] ||
  routine distill eval/datasets/retail --out "$runs/sft-train.jsonl" > "$runs/sft-train.stats.json"
[ -s "$runs/sft-dev.jsonl" ] ||
  routine distill eval/datasets/retail --split dev --out "$runs/sft-dev.jsonl" > "$runs/sft-dev.stats.json"
# The adapter is kept with its results (~9 MB, committed): a later checkout evaluates it
# without training again.
adapter="$results/adapter.gguf"
mkdir -p "$results"
if [ ! -s "$adapter" ]; then
  [ -f "$runs/train/log.json" ] ||
    routine finetune --recipe "$recipes/retail-0.5b-cpu.yaml" --data "$runs/sft-train.jsonl" \
      --eval-data "$runs/sft-dev.jsonl" --out "$runs/train" ${PRECISION:+--precision "$PRECISION"}
  routine export-adapter "$runs/train/adapter" --out "$adapter" --base qwen2.5-coder-0.5b
  cp "$runs/train/log.json" "$results/train-log.json"
  cp "$runs/sft-train.stats.json" "$results/sft-train.stats.json"
fi
routine eval eval/datasets/retail --out "$results" --model qwen2.5-coder-0.5b \
  --adapter "$adapter" --conditions none,nl,nl+track --steps 0 --tasks 0 \
  --no-shuffle-tools
routine compare-results eval/results/retail-0.5b "$results" --labels base,adapter \
  --cross none=nl --cross none=nl+track > "$results/comparison.md"
cat "$results/comparison.md"
