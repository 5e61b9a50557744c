#!/usr/bin/env bash
# Routine against the OpenAI Agents SDK and LangGraph: the one benchmark command.
#
#   benchmarks/run.sh                 # from the repository root, in Routine's environment
#   benchmarks/run.sh --repeats 100   # options go to `python -m benchmarks.compare`
#
# 1. makes benchmarks/.venv (the peers live only there, pinned in requirements.txt; Routine
#    is installed into it with --no-deps: no torch, no llama.cpp) and times the three
#    frameworks against the scripted server (benchmarks/compare.py);
# 2. counts prompt tokens with the embedded model's tokenizer (benchmarks/tokens.py) and
#    times `routine eval` at concurrency 1, 4, 16 (benchmarks/eval_throughput.py), both in
#    Routine's own environment (the `python` on PATH, or $ROUTINE_PYTHON), which needs the
#    `local` extra for the tokenizer.
# Writes benchmarks/results/{results.json,results.md,requests.jsonl} (or $OUT).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results}
ROUTINE_PYTHON=${ROUTINE_PYTHON:-python}
if [ ! -x benchmarks/.venv/bin/python ]; then
    "${BASE_PYTHON:-python3}" -m venv benchmarks/.venv
fi
benchmarks/.venv/bin/python -m pip install -q -r benchmarks/requirements.txt
benchmarks/.venv/bin/python -m pip install -q --no-deps -e .
benchmarks/.venv/bin/python -m benchmarks.compare --out "$OUT" "$@"
if "$ROUTINE_PYTHON" -c "import llama_cpp, routine" 2>/dev/null; then
    "$ROUTINE_PYTHON" -m benchmarks.tokens "$OUT"
else
    echo "tokens: skipped ($ROUTINE_PYTHON has no llama_cpp: install Routine's 'local' extra)"
fi
"$ROUTINE_PYTHON" -m benchmarks.eval_throughput --out "$OUT"
cat "$OUT/results.md"
