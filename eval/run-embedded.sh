#!/usr/bin/env bash
# The measured tables in README.md: both protocols, all conditions, on the embedded
# models (CPU). Resumable: rerun to continue; each `routine eval` skips finished samples.
# Tool order fixed so llama.cpp reuses its prompt cache (a cold HR prompt costs ~40 s);
# `routine eval` orders its jobs for the cache by itself.
#   eval/run-embedded.sh                 # all three tables, default model's first
#   TABLES="retail-1.5b" eval/run-embedded.sh
set -euo pipefail
common=(--steps 0 --no-shuffle-tools)
for table in ${TABLES:-retail-1.5b retail-0.5b hr-0.5b hr-1.5b}; do
  domain="${table%-*}"; size="${table##*-}"
  tasks=0; [ "$domain" = hr ] && tasks=40
  routine eval "eval/datasets/$domain" --out "eval/results/$table" --tasks "$tasks" \
    --model "qwen2.5-coder-$size" "${common[@]}"
done
