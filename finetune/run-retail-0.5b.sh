#!/usr/bin/env bash
# The README's fine-tuning table: distil the embedded 0.5B on retail's train split (CPU),
# export the adapter to GGUF, evaluate it on the test split with and without the routine,
# and put it beside the base model's results (eval/results/retail-0.5b, same samples).
# Resumable: every stage skips what is done; training resumes from its last checkpoint and
# `routine eval` from its last record. Then the schedule comparison (SCHEDULES=0 skips it).
#   finetune/run-retail-0.5b.sh
#   PRECISION=bf16 finetune/run-retail-0.5b.sh   # skip the recipe's bf16-or-fp32 probe
#   SCHEDULE_FLAGS="--gradient-accumulation 1 --eval-limit 8" finetune/run-retail-0.5b.sh
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
[ "${SCHEDULES:-1}" = 0 ] && exit 0
# Straight into eval/results (its .gitignore keeps checkpoints and adapters out of git): a
# finished run's log.json is all a resumed comparison needs, so committing them as they
# come carries the comparison from one session's checkout to the next.
compare() {  # [schedules] [seeds]
  routine compare-schedules --recipe "$recipes/schedules-0.5b-cpu.yaml" \
    --data "$runs/sft-train.jsonl" --eval-data "$runs/sft-dev.jsonl" \
    --out eval/results/schedules-0.5b ${PRECISION:+--precision "$PRECISION"} \
    --schedules "${1:-linear,cosine,rex,uba:0.5,refined}" --seeds "${2:-0,1,2}" \
    ${SCHEDULE_FLAGS:-}  # flags over the recipe, e.g. a smaller budget on a slow CPU
}
compare
# Step accuracy of the two schedules with the lowest held-out loss (their seed-0 adapters,
# on the test split's step samples, without and with the routine). A run's adapter lives
# in its folder only while the checkout does: a missing one is trained again (same seed,
# same data order, so the same run), its log kept aside.
schedules=eval/results/schedules-0.5b
for spec in $(python -c "import json, sys; t = json.load(open(sys.argv[1]))['table']
print(' '.join(r['schedule'] for r in t[:2]))" "$schedules/comparison.json"); do
  run="$schedules/${spec/:/-}-seed0"
  out="$schedules/eval-${spec/:/-}"
  if [ ! -s "$run/adapter.gguf" ]; then
    if [ ! -d "$run/adapter" ]; then
      mv "$run/log.json" "$run/log.first.json"
      compare "$spec" 0 > /dev/null
    fi
    routine export-adapter "$run/adapter" --out "$run/adapter.gguf" --base qwen2.5-coder-0.5b
  fi
  routine eval eval/datasets/retail --out "$out" --model qwen2.5-coder-0.5b \
    --adapter "$run/adapter.gguf" --conditions none,nl+track --steps 0 --tasks 0 \
    --protocols step --no-shuffle-tools
done
compare > /dev/null  # the full table again (the retraining above wrote a partial one)
