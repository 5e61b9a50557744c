#!/usr/bin/env bash
# The measured table in README.md: both protocols, all conditions, both test splits,
# on the embedded light model (Qwen2.5-Coder-0.5B, CPU). Resumable: rerun to continue.
# Tool order fixed so llama.cpp reuses its prompt cache (a cold HR prompt costs ~40 s);
# `routine eval` orders its jobs for the cache by itself.
set -euo pipefail
model="${MODEL:-qwen2.5-coder-0.5b}"
tag="${model#qwen2.5-coder-}"
common=(--no-shuffle-tools --model "$model")
routine eval eval/datasets/hr --out "eval/results/hr-$tag" --steps 0 --tasks 40 "${common[@]}"
routine eval eval/datasets/retail --out "eval/results/retail-$tag" --steps 0 --tasks 0 "${common[@]}"
