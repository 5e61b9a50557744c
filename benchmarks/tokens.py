"""Prompt tokens per task: each framework's and each Routine condition's requests, counted
as the embedded Qwen2.5 model sees them (its chat template with the tools, its vocabulary).

    python -m benchmarks.tokens benchmarks/results      # reads requests.jsonl there

Needs Routine's ``local`` extra (llama.cpp's tokenizer and the embedded model's file), so
it runs in the project's environment, not the benchmark's. Adds a ``tokens`` section to
``results.json`` and the table to ``results.md`` (both written by
:mod:`benchmarks.compare`), and prints it.

**What Routine adds per request beyond the routine's own text**: each Routine request is
counted again with its system prompt replaced by the routine's own text (its description
and its steps' names and descriptions: what the peers are told as their instructions), the
state prompt left out and the ``finish`` tool left out; the difference, split into those
three parts (the tool results are left as Routine sent them, so what variable memory saves
is not counted against it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

__all__ = ["count", "table", "main"]

BASELINE = "agents"


def count(rows: list[dict[str, Any]], tokenizer: Any = None) -> dict[str, dict[str, list[int]]]:
    """Prompt tokens of every recorded request: ``{variant: {task: [tokens, ...]}}``."""
    tokenizer = tokenizer or _tokenizer()
    out: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for row in sorted(rows, key=lambda r: (r["variant"], r["task"], r["index"])):
        out[row["variant"]][row["task"]].append(
            tokenizer.count(row["messages"], row["tools"], generation_prompt=True))
    return {k: dict(v) for k, v in out.items()}


def _tokenizer() -> Any:
    from routine.models.embedded import ChatTokenizer

    return ChatTokenizer()


def added(rows: list[dict[str, Any]], tokenizer: Any = None) -> dict[str, dict[str, float]]:
    """Per Routine condition, the mean tokens per request Routine adds beyond the routine's
    own text: ``{variant: {"system": .., "state": .., "finish": .., "total": ..}}``."""
    from .tasks import TASKS, instructions

    tokenizer = tokenizer or _tokenizer()
    own = {t.name: instructions(t) for t in TASKS}
    parts: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if not row["variant"].startswith("routine"):
            continue

        def tokens(system: bool, state: bool, finish: bool, row: dict[str, Any] = row) -> int:
            messages = []
            for index, message in enumerate(row["messages"]):
                if message["role"] != "system":
                    messages.append(message)
                elif index == 0:
                    messages.append(message if system else
                                    {"role": "system", "content": own[row["task"]]})
                elif state:
                    messages.append(message)
            tools = [t for t in row["tools"] if finish or t["function"]["name"] != "finish"]
            return int(tokenizer.count(messages, tools, generation_prompt=True))

        bare = tokens(False, False, False)
        mine = parts[row["variant"]]
        mine["system"].append(tokens(True, False, False) - bare)
        mine["state"].append(tokens(False, True, False) - bare)
        mine["finish"].append(tokens(False, False, True) - bare)
        mine["total"].append(tokens(True, True, True) - bare)
    return {variant: {k: statistics.mean(v) for k, v in per.items()}
            for variant, per in parts.items()}


def table(tokens: dict[str, dict[str, list[int]]]) -> tuple[str, dict[str, Any]]:
    """The markdown table and its figures."""
    tasks = sorted({t for per in tokens.values() for t in per})
    figures: dict[str, Any] = {}
    base = tokens.get(BASELINE, {})
    lines = ["Prompt tokens per task (all requests of one run; Qwen2.5 chat template with "
             "the tools), and what Routine adds per request beyond the Agents SDK given the "
             "routine's own text:", "",
             "| | " + " | ".join(tasks) + " | added per request (mean) |",
             "|---|" + "---|" * (len(tasks) + 1)]
    for variant, per in tokens.items():
        cells, added = [], []
        for task in tasks:
            counts = per.get(task, [])
            cells.append(f"{sum(counts):,} ({len(counts)} req.)")
            if variant != BASELINE and task in base and len(base[task]) == len(counts):
                added += [a - b for a, b in zip(counts, base[task], strict=True)]
        mean = statistics.mean(added) if added else None
        figures[variant] = {"per_task": {t: per.get(t, []) for t in tasks},
                            "added_per_request": mean}
        lines.append(f"| {variant} | " + " | ".join(cells) + " | "
                     + (f"{mean:+.0f}" if mean is not None else "—") + " |")
    return "\n".join(lines), figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="the folder benchmarks.compare wrote")
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in
            (args.results / "requests.jsonl").read_text(encoding="utf-8").splitlines() if line]
    tokenizer = _tokenizer()
    text, figures = table(count(rows, tokenizer))
    extra = added(rows, tokenizer)
    text += ("\n\nWhat Routine adds per request beyond the routine's own text (mean tokens; "
             "the system prompt's rules and rendering of the routine, the state prompt, the "
             "finish tool):\n\n| condition | system prompt | state prompt | finish tool | "
             "total |\n|---|---|---|---|---|\n" + "\n".join(
                 f"| {v} | {p['system']:.0f} | {p['state']:.0f} | {p['finish']:.0f} | "
                 f"{p['total']:.0f} |" for v, p in extra.items()))
    figures["added_beyond_own_text"] = extra
    print(text)
    from .compare import merge_results

    merge_results(args.results, tokens=text, token_figures=figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
