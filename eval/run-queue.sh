#!/usr/bin/env bash
# Every pending measurement of the README, in order, one at a time (two cores: anything
# run beside a model is slower for both). Each item resumes where it stopped, so after a
# stop simply run this again; finished items cost seconds. Each condition runs alone
# (its own `routine eval` into the item's folder), then one --report-only pass pairs them.
#   eval/run-queue.sh                    # all
#   ITEMS="guided-retail-0.5b" eval/run-queue.sh
#   ITEMS="routed-retail-0.5b routed-hr-0.5b routing-llm-0.5b routing-llm-1.5b drafts-0.5b
#     drafts-1.5b" eval/run-queue.sh     # what is left of issue 15, in order
# To keep working on the code meanwhile, run it from a frozen worktree (what it measures
# must not change under it), with the outputs linked back:
#   git worktree add ../queue COMMIT && cd ../queue && rm -r eval/results &&
#   ln -s "$OLDPWD/eval/results" eval/results && ln -s "$OLDPWD/runs" runs &&
#   PYTHONPATH=$PWD "$OLDPWD/eval/run-queue.sh"
# (this checkout's queue and fine-tuning recipes, the frozen commit's code, routines and
# datasets).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
paper=none,nl,json,nl+track,nl+distractor
# issue 12: unguided tracking in the default (compact) style, and guided decoding in it
guided=nl+track+compact,nl+track+guided,nl+track+guided+inputs
alone() {  # domain size folder conditions: step and task protocols, each condition alone
  local steps=0 tasks=0
  [ "$1" = hr ] && steps=80 tasks=40  # HR: the seeded 80 step samples and 40 tasks
  for condition in ${4//,/ }; do
    routine eval "eval/datasets/$1" --out "eval/results/$3" --steps "$steps" \
      --tasks "$tasks" --model "qwen2.5-coder-$2" --no-shuffle-tools --conditions "$condition"
  done
  routine eval "eval/datasets/$1" --out "eval/results/$3" --steps "$steps" --tasks "$tasks" \
    --model "qwen2.5-coder-$2" --no-shuffle-tools --conditions "$4" --report-only
}
# done: finetune-retail-0.5b(-compact), schedules-0.5b, guided-{retail,hr}-{0.5b,1.5b} (2026-12-03)
for item in ${ITEMS:-guided-hr-0.5b guided-retail-1.5b guided-hr-1.5b hr-1.5b}; do
  echo "=== $item ($(date -u +%H:%M))"
  case "$item" in
    finetune-retail-0.5b) "$here/finetune/run-retail-0.5b.sh" ;;  # done 2026-12-02
    finetune-retail-0.5b-compact) "$here/finetune/run-retail-0.5b-compact.sh" ;;  # issue 10
    guided-retail-0.5b) alone retail 0.5b guided-retail-0.5b "$guided" ;;      # issue 12
    guided-hr-0.5b) alone hr 0.5b guided-hr-0.5b "$guided" ;;
    guided-retail-1.5b) alone retail 1.5b guided-retail-1.5b "$guided" ;;
    guided-hr-1.5b) alone hr 1.5b guided-hr-1.5b "$guided" ;;
    hr-1.5b) alone hr 1.5b hr-1.5b "$paper" ;;                   # never measured before
    schedules-0.5b) "$here/finetune/run-schedules-0.5b.sh" ;;  # issue 10
    conv-*) ITEMS="${item#conv-}" "$here/eval/run-conversations.sh" ;;  # issue 14: conv-hr-0.5b
    drafts-*) SIZES="${item#drafts-}" "$here/eval/run-drafts.sh" ;;     # issue 15: drafts-0.5b
    routed-*)  # issue 15: the paper's retrieval condition against the given routine
      domain=${item#routed-}; domain=${domain%-*}; size=${item##*-}; tasks=0
      [ "$domain" = hr ] && tasks=40
      routine eval "eval/datasets/$domain" --out "eval/results/$domain-routed-$size" \
        --protocols task --conditions nl+track,nl+track+routed --tasks "$tasks" \
        --no-shuffle-tools --model "qwen2.5-coder-$size" ;;             # routed-retail-0.5b
    routing-llm-*) routine route-eval eval/datasets/hr eval/datasets/retail --routers llm \
      --model "qwen2.5-coder-${item#routing-llm-}" --out "eval/results/$item" ;;  # issue 15
    *) echo "unknown item $item" >&2; exit 2 ;;
  esac
done
