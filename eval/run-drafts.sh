#!/usr/bin/env bash
# The README's drafting table (issue 15): every expert draft in routines/{retail,hr}/drafts
# drafted by each embedded model (guided by the reduced schema, up to ROUNDS repair rounds;
# the hand-written routines are never in the prompt), then step and task accuracy of the
# drafted routines against the hand-written ones: the same test samples, the same model, the
# same condition. Results: eval/results/drafts-<size>/ (report.md: the table).
# Resumable: drafts already in drafts-<domain>.jsonl are not drafted again, and each
# `routine eval` resumes from its last record; rerun the same command.
#   eval/run-drafts.sh                                   # everything (hours on 2 cores)
#   SIZES=0.5b DOMAINS=retail ONLY=track_order,order_status STAGES=draft eval/run-drafts.sh
# SIZES: 0.5b 1.5b · DOMAINS: retail hr · ONLY: draft names (default: all) · STAGES: draft
# eval report · CONDITIONS: routine eval conditions (default nl+track) · ROUNDS (default 3) ·
# RESULTS: where drafts-<size>/ goes (default eval/results; a trial run elsewhere leaves the
# README's records alone) · BASE_URL (with MODEL, optional API_KEY): any OpenAI-compatible
# endpoint instead of the embedded models, its results in drafts-<LABEL>/ (LABEL: default
# MODEL with / and : made -), e.g.
#   BASE_URL=http://gpu-box:8000/v1 MODEL=Qwen/Qwen3-14B LABEL=qwen3-14b eval/run-drafts.sh
set -euo pipefail
ROUNDS=${ROUNDS:-3}
CONDITIONS=${CONDITIONS:-nl+track}
STAGES=${STAGES:-draft eval report}
endpoint=()
if [ -n "${BASE_URL:-}" ]; then
  : "${MODEL:?BASE_URL needs MODEL, the model name at that endpoint}"
  endpoint=(--base-url "$BASE_URL")
  if [ -n "${API_KEY:-}" ]; then endpoint+=(--api-key "$API_KEY"); fi
  LABEL=${LABEL:-$(printf '%s' "$MODEL" | tr '/:' '--')}
  SIZES=$LABEL
fi
for size in ${SIZES:-0.5b 1.5b}; do
  model=${MODEL:-qwen2.5-coder-$size}
  out="${RESULTS:-eval/results}/drafts-$size"
  for domain in ${DOMAINS:-retail hr}; do
    drafts="routines/$domain/drafts"
    if [ -n "${ONLY:-}" ]; then  # a subset: its drafts in a folder of their own
      drafts="$out/only-$domain"
      mkdir -p "$drafts"
      for name in ${ONLY//,/ }; do
        [ -f "routines/$domain/drafts/$name.md" ] && cp "routines/$domain/drafts/$name.md" "$drafts/"
      done
      ls "$drafts"/*.md >/dev/null 2>&1 || continue
    fi
    if [[ " $STAGES " == *" draft "* ]]; then
      echo "=== draft $domain with $model ($(date -u +%H:%M))"
      # exit status 1 when a draft stays invalid: reported in the record, not saved
      routine draft "$drafts" --toolset "routine_tools.$domain" --model "$model" ${endpoint[@]+"${endpoint[@]}"} \
        --rounds "$ROUNDS" --out "$out/routines/$domain" \
        --record "$out/drafts-$domain.jsonl" --diff "routines/$domain" || true
    fi
    if [[ " $STAGES " == *" eval "* ]]; then
      names=$(ls "$drafts" | sed -n 's/\.md$//p' | paste -sd, -)
      drafted=$(ls "$out/routines/$domain" 2>/dev/null | sed -n 's/\.yaml$//p' | paste -sd, -)
      echo "=== eval $domain, hand-written routines, $model ($(date -u +%H:%M))"
      routine eval "eval/datasets/$domain" --out "$out/$domain-hand" --model "$model" ${endpoint[@]+"${endpoint[@]}"} \
        --conditions "$CONDITIONS" --steps 0 --tasks 0 --no-shuffle-tools --routines "$names"
      if [ -n "$drafted" ]; then
        echo "=== eval $domain, drafted routines, $model ($(date -u +%H:%M))"
        routine eval "eval/datasets/$domain" --out "$out/$domain-drafted" --model "$model" ${endpoint[@]+"${endpoint[@]}"} \
          --conditions "$CONDITIONS" --steps 0 --tasks 0 --no-shuffle-tools \
          --routines "$drafted" --routines-from "$out/routines/$domain"
      fi
    fi
  done
  if [[ " $STAGES " == *" report "* ]]; then
    python eval/drafts_report.py "$out"
  fi
done
