"""Score recorded step replies again with today's parser and scorer, without the model.

    python eval/rescore_steps.py eval/datasets/hr eval/results/OLD eval/results/NEW

Each record of ``OLD/steps.jsonl`` is replayed: the step sample it answered is rebuilt
(same condition, seed 0, tools unshuffled or shuffled as ``--shuffle-tools`` says), a model
double returns the recorded reply text, and :func:`routine.eval.steps.run_step_sample`
scores it as a live run would. ``NEW/steps.jsonl`` keeps the recorded timings and token
counts; ``routine eval ... --out NEW --report-only`` (the original command, new folder)
writes its report. For a parser or scorer change: what it changes on replies already
recorded (the replies themselves would differ only if the prompts had changed).
Replies are stored cut at 2,000 characters; structured ``tool_calls`` are not stored, so
records from endpoints that return them cannot be replayed (the embedded model writes
calls as text).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
from pathlib import Path

from routine.eval.conditions import CONDITIONS
from routine.eval.dataset import load_dataset, load_domain
from routine.eval.steps import build_step_samples, run_step_sample
from routine.models.base import ModelReply
from routine.models.messages import Usage
from routine.models.testing import FunctionModel
from routine.tools.core import FINISH_TOOL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--shuffle-tools", action="store_true")
    args = parser.parse_args()
    domain = load_domain(args.dataset)
    registry = domain.registry()
    routines = {n: lr.routine for n, lr in domain.routines().items()}
    examples = [e for e in load_dataset(args.dataset) if e.user is None]
    schemas = {t.name: t.parameters for t in registry}
    schemas[FINISH_TOOL] = {"type": "object", "properties": {"answer": {"type": "string"}},
                            "required": ["answer"]}
    records = [json.loads(line) for line in (args.old / "steps.jsonl").read_text().splitlines()
               if line.strip()]
    samples = {}
    for name in sorted({r["condition"] for r in records}):
        for sample in build_step_samples([e for e in examples if e.routine in routines],
                                         routines, registry, CONDITIONS[name], seed=0,
                                         shuffle_tools=args.shuffle_tools):
            samples[name, sample.id] = sample
    args.new.mkdir(parents=True, exist_ok=True)
    changed = 0
    with open(args.new / "steps.jsonl", "w", encoding="utf-8") as out:
        for record in records:
            sample = samples[record["condition"], record["sample_id"]]
            model = FunctionModel(lambda request, text=record["text"]: ModelReply(
                content=text, usage=Usage()))
            result = asyncio.run(run_step_sample(sample, record["condition"], model, schemas,
                                                 domain.arg_modes))
            row = result.model_dump(mode="json")
            for kept in ("seconds", "prompt_tokens", "completion_tokens"):
                row[kept] = record[kept]
            changed += row["correct"] != record["correct"]
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    if (args.old / "command.txt").exists():
        shutil.copy(args.old / "command.txt", args.new / "recorded-command.txt")
    right = sum(json.loads(line)["correct"] for line in
                (args.new / "steps.jsonl").read_text().splitlines())
    print(f"{len(records)} replies rescored: {right} right, {changed} changed")


if __name__ == "__main__":
    main()
