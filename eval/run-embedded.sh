#!/usr/bin/env bash
# The measured table in README.md: both protocols, all conditions, both test splits,
# on the embedded light model (Qwen2.5-Coder-0.5B, CPU). Resumable: rerun to continue.
# Tool order fixed so llama.cpp reuses its prompt cache (a cold HR prompt costs ~40 s).
set -euo pipefail
model="${MODEL:-qwen2.5-coder-0.5b}"
routine eval eval/datasets/retail --out "eval/results/retail-${model#qwen2.5-coder-}" \
  --steps 0 --tasks 0 --no-shuffle-tools --model "$model"
routine eval eval/datasets/hr --out "eval/results/hr-${model#qwen2.5-coder-}" \
  --steps 0 --tasks 40 --no-shuffle-tools --model "$model"
