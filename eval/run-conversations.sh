#!/usr/bin/env bash
# The README's conversation table (issue 14): the conversation protocol on both domains'
# test splits, both embedded models, free and guided decoding. Resumable like run-queue.sh
# (each `routine eval` resumes from its last record); run it from a frozen worktree when the
# code keeps changing (see eval/run-queue.sh).
#   eval/run-conversations.sh
#   ITEMS="retail-0.5b hr-0.5b" eval/run-conversations.sh
set -euo pipefail
for item in ${ITEMS:-retail-0.5b hr-0.5b retail-1.5b hr-1.5b}; do
  domain=${item%-*}; size=${item#*-}
  echo "=== conversations $item ($(date -u +%H:%M))"
  routine eval "eval/datasets/$domain" --out "eval/results/$domain-$size-conv" \
    --model "qwen2.5-coder-$size" --protocols conversation --tasks 0 --steps 0 \
    --conditions nl+track+guided,nl+track --no-shuffle-tools
done
