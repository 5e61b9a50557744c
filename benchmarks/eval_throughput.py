"""HR test queries per minute through ``routine eval`` (the task protocol) at several
concurrencies, against the scripted server playing the gold calls: the framework's
throughput (executor, tools on SQLite, end-state checks, records), not a model's.

    python -m benchmarks.eval_throughput --out benchmarks/results --concurrency 1,4,16

Each concurrency runs ``routine eval eval/datasets/hr --protocols task --conditions
nl+track --tasks 0 --trials 3`` into a fresh folder (every test query three times) and is
timed from start to exit; the task success it reports must be 100% (the server plays the gold), else this
stops. Adds ``eval_throughput`` to ``results.json`` and a line to ``results.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .compare import merge_results, scripted_server

__all__ = ["gold_script", "main"]

ROOT = Path(__file__).resolve().parent.parent


def gold_script(dataset: Path, split: str = "test") -> dict[str, list[dict[str, Any]]]:
    """``{query: [reply, ...]}``: each example's gold calls, then its gold answer."""
    out = {}
    for line in (dataset / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            example = json.loads(line)
            out[example["query"]] = [{"call": c["name"], "arguments": c["arguments"]}
                                     for c in example["calls"]] + [{"answer": example["answer"]}]
    return out


def run_eval(base_url: str, dataset: Path, concurrency: int, trials: int = 1) -> dict[str, Any]:
    """One ``routine eval`` run (a subprocess, as a user runs it), timed."""
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "routine", "eval", str(dataset), "--out", folder,
                   "--base-url", base_url, "--model", "scripted", "--protocols", "task",
                   "--conditions", "nl+track", "--tasks", "0", "--concurrency",
                   str(concurrency), "--trials", str(trials), "--no-shuffle-tools"]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"routine eval failed ({done.returncode}): {done.stderr[-2000:]}")
        summary = json.loads((Path(folder) / "summary.json").read_text(encoding="utf-8"))
    task = summary["conditions"]["nl+track"]["task"]
    count = task["success"]["n"]
    rate = task["success"]["rate"]
    if rate < 1.0:
        raise RuntimeError(f"gold replay scored {rate:.1%} at concurrency {concurrency}: the "
                           "framework, not the server, lost something")
    return {"concurrency": concurrency, "queries": count, "seconds": seconds,
            "queries_per_minute": count / seconds * 60, "success": rate}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--dataset", type=Path, default=ROOT / "eval" / "datasets" / "hr")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--trials", type=int, default=3,
                        help="each query this many times (start-up weighs less)")
    args = parser.parse_args(argv)
    rows = []
    with scripted_server(replies=gold_script(args.dataset), finish=True) as base_url:
        for level in [int(c) for c in args.concurrency.split(",")]:
            rows.append(run_eval(base_url, args.dataset, level, args.trials))
            print(json.dumps(rows[-1]))
    line = ("HR test queries per minute through `routine eval` (task protocol, nl+track, the "
            "scripted server playing the gold calls; whole command, start-up included): "
            + ", ".join(f"{r['queries_per_minute']:.0f} at concurrency {r['concurrency']}"
                        for r in rows) + f" ({rows[0]['queries']} query runs each: the "
            f"{rows[0]['queries'] // args.trials} test queries × {args.trials}, all succeeded).")
    print(line)
    merge_results(args.out, eval_throughput=rows, eval_throughput_line=line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
