#!/usr/bin/env bash
# The README's fine-tuning table: distil the embedded 0.5B on retail's train split (CPU),
# export the adapter to GGUF, evaluate it on the test split with and without the routine,
# and put it beside the base model's results (eval/results/retail-0.5b, same samples).
# Resumable: every stage skips what is done; training resumes from its last checkpoint and
# `routine eval` from its last record. Then the schedule comparison (SCHEDULES=0 skips it).
#   finetune/run-retail-0.5b.sh
set -euo pipefail
runs=${RUNS:-runs/ft-retail-0.5b}
results=eval/results/retail-0.5b-distilled
mkdir -p "$runs"
[ -s "$runs/sft-train.jsonl" ] ||
  routine distill eval/datasets/retail --out "$runs/sft-train.jsonl" > "$runs/sft-train.stats.json"
[ -s "$runs/sft-dev.jsonl" ] ||
  routine distill eval/datasets/retail --split dev --out "$runs/sft-dev.jsonl" > "$runs/sft-dev.stats.json"
[ -f "$runs/train/log.json" ] ||
  routine finetune --recipe finetune/recipes/retail-0.5b-cpu.yaml --data "$runs/sft-train.jsonl" \
    --eval-data "$runs/sft-dev.jsonl" --out "$runs/train"
[ -s "$runs/adapter.gguf" ] ||
  routine export-adapter "$runs/train/adapter" --out "$runs/adapter.gguf" --base qwen2.5-coder-0.5b
mkdir -p "$results"
cp "$runs/train/log.json" "$results/train-log.json"
cp "$runs/sft-train.stats.json" "$results/sft-train.stats.json"
routine eval eval/datasets/retail --out "$results" --model qwen2.5-coder-0.5b \
  --adapter "$runs/adapter.gguf" --conditions none,nl,nl+track --steps 0 --tasks 0 \
  --no-shuffle-tools
routine compare-results eval/results/retail-0.5b "$results" --labels base,adapter \
  --cross none=nl --cross none=nl+track > "$results/comparison.md"
cat "$results/comparison.md"
[ "${SCHEDULES:-1}" = 0 ] && exit 0
routine compare-schedules --recipe finetune/recipes/schedules-0.5b-cpu.yaml \
  --data "$runs/sft-train.jsonl" --eval-data "$runs/sft-dev.jsonl" --out runs/schedules-0.5b \
  --schedules linear,cosine,rex,uba:0.5,refined --seeds 0,1,2
mkdir -p eval/results/schedules-0.5b
cp runs/schedules-0.5b/comparison.{md,json} eval/results/schedules-0.5b/
