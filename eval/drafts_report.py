"""The drafting table: how many expert drafts became valid routines, after how many repair
rounds, and how the drafted routines do against the hand-written ones on the same samples.

    python eval/drafts_report.py eval/results/drafts-0.5b            # writes report.md there

Reads what ``eval/run-drafts.sh`` wrote in the folder: ``drafts-<domain>.jsonl`` (one
record per draft: ``routine draft --record``) and, per domain, the evaluations
``<domain>-hand`` (the hand-written routines) and ``<domain>-drafted`` (``routine eval
--routines-from``; same model, condition and samples). Step samples and tasks are those of
the hand-written run: a sample the drafted run lacks (its routine did not validate, or the
gold calls do not replay under it) counts as wrong there, and the coverage column says how
many it has. The paired gain is drafted minus hand-written with its 95% interval and exact
McNemar p (routine.eval.stats).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from routine.eval.jobs import read_records
from routine.eval.stats import Gain, Rate, paired_gain, rate
from routine.eval.steps import StepResult
from routine.eval.tasks import TaskResult


def _pct(value: Rate) -> str:
    if not value.n:
        return "–"
    low, high = value.ci95
    return f"{100 * value.rate:.1f}% [{100 * low:.0f}–{100 * high:.0f}] (n={value.n})"


def _gain(value: Gain) -> str:
    low, high = value.ci95
    return f"{100 * value.gain:+.1f} pt [{100 * low:+.0f}, {100 * high:+.0f}] p={value.p:.2g}"


def drafting_rows(folder: Path) -> list[str]:
    rows = []
    for record_file in sorted(folder.glob("drafts-*.jsonl")):
        domain = record_file.stem.removeprefix("drafts-")
        records = [json.loads(line) for line in record_file.read_text().splitlines() if line]
        valid = [r for r in records if r["ok"]]
        by_round = [sum(1 for r in valid if r["repairs"] == k) for k in range(4)]
        seconds = sum(a["seconds"] for r in records for a in r["attempts"])
        rows.append(f"| {domain} | {len(records)} | {_pct(rate([r['ok'] for r in records]))} | "
                    + " | ".join(map(str, by_round)) + f" | {len(records) - len(valid)} | "
                    f"{seconds / max(len(records), 1):.0f} s |")
    return rows


def _paired(hand: dict, drafted: dict) -> tuple[Rate, Rate, Gain, int]:
    keys = sorted(hand)
    left = [hand[k] for k in keys]
    right = [drafted.get(k, False) for k in keys]
    return rate(left), rate(right), paired_gain(left, right), sum(k in drafted for k in keys)


def accuracy_rows(folder: Path) -> list[str]:
    rows = []
    for hand_dir in sorted(folder.glob("*-hand")):
        domain = hand_dir.name.removesuffix("-hand")
        drafted_dir = folder / f"{domain}-drafted"
        for kind, file, record, key in (
                ("steps", "steps.jsonl", StepResult, lambda r: (r.condition, r.sample_id)),
                ("tasks", "tasks.jsonl", TaskResult, lambda r: (r.condition, r.example_id))):
            if not (hand_dir / file).exists():
                continue
            verdict = (lambda r: r.correct) if kind == "steps" else (lambda r: r.success)
            hand = {key(r): verdict(r) for r in read_records(hand_dir / file, record)}
            drafted = ({key(r): verdict(r) for r in read_records(drafted_dir / file, record)}
                       if (drafted_dir / file).exists() else {})
            for condition in sorted({k[0] for k in hand}):
                h = {k: v for k, v in hand.items() if k[0] == condition}
                d = {k: v for k, v in drafted.items() if k[0] == condition}
                a, b, gain, covered = _paired(h, d)
                rows.append(f"| {domain} | {condition} | {kind} | {_pct(a)} | {_pct(b)} | "
                            f"{_gain(gain)} | {covered}/{len(h)} |")
    return rows


def _count(results: list, verdict) -> str:
    return f"{sum(map(verdict, results))}/{len(results)}" if results else "–"


def routine_rows(folder: Path) -> list[str]:
    """Per routine: did its draft validate (after how many repair rounds), and its samples
    right with the hand-written and with the drafted routine (the drafted run's count is
    of the samples it has: those its gold calls replay under)."""
    rows = []
    for record_file in sorted(folder.glob("drafts-*.jsonl")):
        domain = record_file.stem.removeprefix("drafts-")
        records = {r["name"]: r for r in map(json.loads, record_file.read_text().splitlines())}
        runs = {}
        for side in ("hand", "drafted"):
            for kind, file, record in (("steps", "steps.jsonl", StepResult),
                                       ("tasks", "tasks.jsonl", TaskResult)):
                path = folder / f"{domain}-{side}" / file
                runs[side, kind] = read_records(path, record) if path.exists() else []
        if not runs["hand", "steps"] and not runs["hand", "tasks"]:
            continue
        right = {"steps": lambda r: r.correct, "tasks": lambda r: r.success}
        for name in sorted(records):
            record = records[name]
            valid = f"yes ({record['repairs']} repairs)" if record["ok"] else "no"
            cells = [_count([r for r in runs[side, kind] if r.routine == name], right[kind])
                     for kind in ("steps", "tasks") for side in ("hand", "drafted")]
            rows.append(f"| {domain} | {name} | {valid} | {cells[0]} | {cells[1]} | "
                        f"{cells[2]} | {cells[3]} |")
    return rows


def report(folder: Path) -> str:
    lines = [f"# Drafting: {folder.name}", "",
             "| domain | drafts | valid | after 0 repairs | 1 | 2 | 3 | still invalid | "
             "seconds per draft |", "|---|---|---|---|---|---|---|---|---|",
             *drafting_rows(folder), "",
             "| domain | condition | protocol | hand-written | drafted | drafted − hand | "
             "drafted covers |", "|---|---|---|---|---|---|---|", *accuracy_rows(folder), ""]
    by_routine = routine_rows(folder)
    if by_routine:  # right / samples each run has (a drafted run lacks what does not replay)
        lines += ["| domain | routine | draft valid | steps hand | steps drafted | tasks hand "
                  "| tasks drafted |", "|---|---|---|---|---|---|---|", *by_routine, ""]
    return "\n".join(lines)


if __name__ == "__main__":
    target = Path(sys.argv[1])
    text = report(target)
    (target / "report.md").write_text(text, encoding="utf-8")
    print(text)
