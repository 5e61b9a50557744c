#!/usr/bin/env bash
# Every pending measurement of the README, in order, one at a time (two cores: anything
# run beside a model is slower for both). Each item resumes where it stopped, so after a
# stop simply run this again; finished items cost seconds.
#   eval/run-queue.sh                    # all
#   ITEMS="guided-retail-0.5b" eval/run-queue.sh
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
guided=nl+track+guided,nl+track+guided+inputs
table() {  # domain size conditions
  local tasks=0; [ "$1" = hr ] && tasks=40
  routine eval "eval/datasets/$1" --out "eval/results/$1-$2" --tasks "$tasks" --steps 0 \
    --model "qwen2.5-coder-$2" --no-shuffle-tools --conditions "$3"
}
for item in ${ITEMS:-finetune-retail-0.5b guided-retail-0.5b guided-hr-0.5b \
                      guided-retail-1.5b schedules-0.5b hr-1.5b}; do
  echo "=== $item ($(date -u +%H:%M))"
  case "$item" in
    hr-0.5b) table hr 0.5b "$paper" ;;                        # done 2026-12-02
    finetune-retail-0.5b) SCHEDULES=0 "$here/finetune/run-retail-0.5b.sh" ;;   # issue 10
    guided-retail-0.5b) table retail 0.5b "$guided" ;;         # issue 12
    guided-hr-0.5b) table hr 0.5b "$guided" ;;
    guided-retail-1.5b) table retail 1.5b "$guided" ;;
    schedules-0.5b) "$here/finetune/run-retail-0.5b.sh" ;;              # issue 10: + the schedules
    hr-1.5b) table hr 1.5b "$paper,$guided" ;;                  # never measured before
    *) echo "unknown item $item" >&2; exit 2 ;;
  esac
done
