#!/usr/bin/env bash
# The README's schedule comparison (issue 10): linear, cosine, REX, UBA (φ = 0.5) and
# linear refined from the linear run's gradient norms, each for 3 seeds at the same budget
# (finetune/recipes/schedules-0.5b-cpu.yaml), ranked by held-out loss; then step accuracy
# on retail's test split of the best two (their seed-0 adapters, without and with the
# routine). Resumable: a finished run's log.json is all the comparison needs, and the run
# folders live in eval/results/schedules-0.5b (checkpoints and adapters ignored by git),
# so committing them as they come carries the comparison to the next session's checkout.
#   finetune/run-schedules-0.5b.sh
#   SCHEDULES=linear,rex SEEDS=0 finetune/run-schedules-0.5b.sh   # a part of it
set -euo pipefail
recipes=$(cd "$(dirname "$0")" && pwd)/recipes
data=runs/schedules-0.5b
out=eval/results/schedules-0.5b
mkdir -p "$data" "$out"
[ -s "$data/sft-train.jsonl" ] || routine distill eval/datasets/retail --variants distilled \
  --out "$data/sft-train.jsonl" > "$out/sft-train.stats.json"
[ -s "$data/sft-dev.jsonl" ] || routine distill eval/datasets/retail --split dev \
  --variants distilled --out "$data/sft-dev.jsonl" > "$out/sft-dev.stats.json"
compare() {  # [schedules] [seeds]
  routine compare-schedules --recipe "$recipes/schedules-0.5b-cpu.yaml" \
    --data "$data/sft-train.jsonl" --eval-data "$data/sft-dev.jsonl" --out "$out" \
    ${PRECISION:+--precision "$PRECISION"} \
    --schedules "${1:-${SCHEDULES:-linear,cosine,rex,uba:0.5,refined}}" \
    --seeds "${2:-${SEEDS:-0,1,2}}"
}
compare
[ -n "${SCHEDULES:-}${SEEDS:-}" ] && exit 0  # a part: no step accuracy yet
# A run's adapter lives in its folder only while the checkout does: a missing one is
# trained again (same seed, same data order, so the same run), its first log kept aside.
for spec in $(python -c "import json, sys; t = json.load(open(sys.argv[1]))['table']
print(' '.join(r['schedule'] for r in t[:2]))" "$out/comparison.json"); do
  run="$out/${spec/:/-}-seed0"
  if [ ! -s "$run/adapter.gguf" ]; then
    if [ ! -d "$run/adapter" ]; then
      mv "$run/log.json" "$run/log.first.json"
      compare "$spec" 0 > /dev/null
    fi
    routine export-adapter "$run/adapter" --out "$run/adapter.gguf" --base qwen2.5-coder-0.5b
  fi
  routine eval eval/datasets/retail --out "$out/eval-${spec/:/-}" --model qwen2.5-coder-0.5b \
    --adapter "$run/adapter.gguf" --conditions none,nl+track+compact --steps 0 --tasks 0 \
    --protocols step --no-shuffle-tools
done
compare > /dev/null  # the whole table again (a retraining above wrote a partial one)
cat "$out/comparison.md"
