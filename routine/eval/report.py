"""Evaluation reports: summary JSON, a markdown table, PNG charts, one self-contained HTML.

Every figure is printed with its sample size and 95% interval. Both reports list
failures per condition, for steps and for tasks (:data:`FAILURES_SHOWN` of each
condition, then how many more): a task with why it failed (the rows that differ
from the gold end state, the facts the answer lacks, the run's failure) and the
calls it made with their results. Code cells are one backtick span per line in
markdown (pipes escaped, lines joined by ``<br>``) and escaped text in HTML.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import PackageLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..run.printable import shown, visible
from .stats import Gain, Mean, Rate
from .steps import StepResult
from .summary import Summary
from .tasks import CallRecord, TaskResult

__all__ = ["write_report", "markdown_table", "table_rows", "failures_by_condition",
           "failures_markdown", "md_code", "md_text", "Failures", "StepFailure", "TaskFailure",
           "CHARTS", "HEADER", "FAILURES_SHOWN"]

CHARTS = ("accuracy_by_condition.png", "accuracy_by_layer.png", "accuracy_by_scenario.png")
HEADER = ("condition", "step accuracy", "gain vs none", "well-formed", "right tool", "tool F1",
          "arg match", "task success", "gain vs none", "end state ok", "tool-seq F1")


def _pct(rate: Rate | None) -> str:
    if rate is None or not rate.n:
        return "–"
    lo, hi = rate.ci95
    return f"{100 * rate.rate:.1f}% [{100 * lo:.0f}–{100 * hi:.0f}] (n={rate.n})"


def _points(gain: Gain | None) -> str:
    """A paired gain in percentage points, its 95% interval and McNemar's p."""
    if gain is None or not gain.n:
        return "–"
    lo, hi = gain.ci95
    return f"{100 * gain.gain:+.1f} pt [{100 * lo:+.0f}, {100 * hi:+.0f}] p={gain.p:.2g}"


def _num(value: Mean | None) -> str:
    """A mean score with its 95% interval and sample size."""
    if value is None or not value.n:
        return "–"
    lo, hi = value.ci95
    return f"{value.mean:.2f} [{lo:.2f}–{hi:.2f}] (n={value.n})"


def table_rows(summary: Summary) -> list[list[str]]:
    """One row of cells per condition (the columns of :data:`HEADER`)."""
    rows = []
    for name, entry in summary.conditions.items():
        step, task = entry.step, entry.task
        if step is None and task is None:
            continue  # not run (yet): no row
        rows.append([
            name, _pct(step.accuracy if step else None), _points(step.gain_vs_none if step else None),
            _pct(step.layers.format if step else None), _pct(step.layers.tool if step else None),
            _num(step.tool_f1 if step else None), _num(step.arg_match if step else None),
            _pct(task.success if task else None), _points(task.gain_vs_none if task else None),
            _pct(task.state_ok if task else None), _num(task.tool_f1 if task else None)])
    return rows


def markdown_table(summary: Summary) -> str:
    """One row per condition: step accuracy by layer, partial credit, task success."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(summary)]
    return "\n".join(lines)


def cost_table(summary: Summary) -> str:
    """Per condition: the paired gain over unguided step tracking (tracking variants, each
    against its baseline), tokens and seconds per step sample and per task, and the facts
    answers lacked."""
    lines = ["| condition | against | steps gain | tasks gain | tokens/sample (prompt + "
             "completion) | s/sample | tokens/task | s/task | facts missing (state ok) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, entry in summary.conditions.items():
        step, task = entry.step, entry.task
        if step is None and task is None:
            continue
        lines.append(
            f"| {name} | {entry.tracking_baseline or '–'} | "
            f"{_points(step.gain_vs_track if step else None)} | "
            f"{_points(task.gain_vs_track if task else None)} | "
            + (f"{step.prompt_tokens_per_sample:.0f} + {step.completion_tokens_per_sample:.1f}"
               f" | {step.seconds_per_sample:.1f}" if step else "– | –")
            + " | "
            + (f"{task.prompt_tokens_per_task:.0f} + {task.completion_tokens_per_task:.0f} | "
               f"{task.seconds_per_task:.0f} | "
               + ("–" if task.missing_facts is None else
                  ", ".join(f"{k} {v}" for k, v in task.missing_facts.items()) or "none")
               if task else "– | – | –") + " |")
    return "\n".join(lines)


def _charts(typed: Summary, folder: Path) -> list[Path]:
    import matplotlib

    summary = typed.model_dump()

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conditions = [c for c, e in summary["conditions"].items()
                  if e["step"] or e["task"] or e.get("conversation")]
    paths = []

    def bars(ax: Any, labels: list[str], rates: list[dict[str, Any]], offset: float,
             width: float, label: str) -> None:
        values = [100 * r["rate"] if r.get("n") else 0 for r in rates]
        errors = [[100 * (r["rate"] - r["ci95"][0]) if r.get("n") else 0 for r in rates],
                  [100 * (r["ci95"][1] - r["rate"]) if r.get("n") else 0 for r in rates]]
        ax.bar([i + offset for i in range(len(labels))], values, width, yerr=errors,
               capsize=3, label=label)

    # 1. accuracy by condition: step accuracy, task success, conversation success
    fig, ax = plt.subplots(figsize=(8, 4))
    steps = [(summary["conditions"][c]["step"] or {}).get("accuracy", {}) for c in conditions]
    tasks = [(summary["conditions"][c]["task"] or {}).get("success", {}) for c in conditions]
    talks = [(summary["conditions"][c].get("conversation") or {}).get("success", {})
             for c in conditions]
    bars(ax, conditions, steps, -0.27, 0.27, "step accuracy")
    bars(ax, conditions, tasks, 0.0, 0.27, "task success")
    bars(ax, conditions, talks, 0.27, 0.27, "conversation success")
    _finish(ax, conditions, "Accuracy by condition (95% CI)")
    paths.append(_save(fig, folder / CHARTS[0]))
    # 2. by layer
    fig, ax = plt.subplots(figsize=(8, 4))
    layers = ("format", "tool", "arguments")
    for n, layer in enumerate(layers):
        rates = [(summary["conditions"][c]["step"] or {}).get("layers", {}).get(layer, {})
                 for c in conditions]
        bars(ax, conditions, rates, (n - 1) * 0.27, 0.27, layer)
    _finish(ax, conditions, "Step samples passing each layer (cumulative)")
    paths.append(_save(fig, folder / CHARTS[1]))
    # 3. by scenario
    fig, ax = plt.subplots(figsize=(9, 4))
    scenarios = sorted({s for c in conditions for s in
                        (summary["conditions"][c]["step"] or {}).get("by_scenario", {})})
    width = 0.8 / max(1, len(conditions))
    for n, c in enumerate(conditions):
        per = (summary["conditions"][c]["step"] or {}).get("by_scenario", {})
        bars(ax, scenarios, [per.get(s, {}) for s in scenarios],
             (n - (len(conditions) - 1) / 2) * width, width, c)
    _finish(ax, scenarios, "Step accuracy by sub-scenario")
    paths.append(_save(fig, folder / CHARTS[2]))
    return paths


def _finish(ax: Any, labels: list[str], title: str) -> None:
    ax.set_xticks(range(len(labels)), labels, rotation=15)
    ax.set_ylim(0, 105)
    ax.set_ylabel("%")
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


_HTML = ImmutableSandboxedEnvironment(
    loader=PackageLoader("routine.eval", "templates"), undefined=StrictUndefined, autoescape=True,
    finalize=visible).get_template("report.html.j2")


FAILURES_SHOWN = 10


@dataclass(frozen=True)
class StepFailure:
    """A failed step sample as the reports show it (``got``: one line of code)."""

    sample_id: str
    expected_tool: str
    got: str
    error: str


@dataclass(frozen=True)
class TaskFailure:
    """A failed task as the reports show it: why (one reason a line), and its calls (one
    line of code each, with the result or error)."""

    example_id: str
    why: list[str]
    calls: list[str]
    answer: str


@dataclass(frozen=True)
class Failures:
    """One condition's failures under one protocol: the first ones and how many in all."""

    condition: str
    protocol: str
    total: int
    failed: int
    shown: list[StepFailure] | list[TaskFailure]

    @property
    def more(self) -> int:
        return self.failed - len(self.shown)


def failures_by_condition(steps: list[StepResult], tasks: list[TaskResult],
                          shown: int = FAILURES_SHOWN) -> list[Failures]:
    """Per condition (in the order the records name them), its failed step samples, then
    its failed tasks: the first ``shown`` of each, never one condition's crowding out
    another's."""
    out: list[Failures] = []
    for condition in dict.fromkeys([*(s.condition for s in steps), *(t.condition for t in tasks)]):
        mine = [s for s in steps if s.condition == condition]
        lost = [s for s in mine if not s.correct]
        if mine:
            out.append(Failures(condition, "step", len(mine), len(lost),
                                [_step_failure(s) for s in lost[:shown]]))
        for protocol in ("task", "conversation"):
            runs = [t for t in tasks if t.condition == condition and t.protocol == protocol]
            failed = [t for t in runs if not t.success]
            if runs:
                out.append(Failures(condition, protocol, len(runs), len(failed),
                                    [_task_failure(t) for t in failed[:shown]]))
    return out


def _step_failure(s: StepResult) -> StepFailure:
    got = json.dumps(s.output, ensure_ascii=False) if s.output else s.text
    return StepFailure(s.sample_id, s.expected_tool, _line(got, 200), s.error)


def _task_failure(t: TaskResult, rows: int = 5, calls: int = 8) -> TaskFailure:
    why = [f"run failed: {t.failure}"] if t.failure else []
    if t.outcome != "answered" and not t.failure:
        why.append(f"the run ended {t.outcome}")
    if not t.state_ok:
        why += [str(r) for r in t.state_rows[:rows]] or [t.state_diff or "end state differs"]
        if len(t.state_rows) > rows:
            why.append(f"and {len(t.state_rows) - rows} more rows")
    if not t.facts_ok and t.outcome == "answered":
        why.append("the answer lacks " + ", ".join(repr(f) for f in t.missing_facts)
                   if t.missing_facts else "the answer misses a required fact")
    lines = [_call_line(c) for c in t.calls[:calls]]
    if len(t.calls) > calls:
        lines.append(f"… {len(t.calls) - calls} more calls")
    return TaskFailure(t.example_id, why, lines, _line(t.answer or "", 200))


def _call_line(call: CallRecord) -> str:
    arguments = json.dumps(call.arguments, ensure_ascii=False, default=str)
    if call.error is not None:
        outcome = f"error: {call.error}"
    else:
        outcome = json.dumps(call.result, ensure_ascii=False, default=str)
    return _line(f"{call.tool}({_line(arguments, 160)}) → {outcome}", 320)


def _line(text: str, chars: int) -> str:
    """``text`` on one line, cut to ``chars`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= chars else flat[:chars] + "…"


def md_code(text: str) -> str:
    """``text`` as a code span for a markdown table cell: one span per line joined by
    ``<br>``, pipes escaped, a fence longer than any backtick run in it; control characters
    and bidirectional overrides written out (:func:`~routine.run.printable.shown`)."""
    spans = []
    for line in shown(text).splitlines():
        if not line.strip():
            continue
        fence = "`" * (max(map(len, re.findall("`+", line)), default=0) + 1)
        pad = " " if line.startswith("`") or line.endswith("`") else ""
        spans.append(fence + pad + line.replace("|", "\\|") + pad + fence)
    return "<br>".join(spans)


def md_text(text: str) -> str:
    """``text`` for a markdown table cell: markdown's characters escaped (``_`` no longer
    starts emphasis), lines joined by ``<br>``, control characters and bidirectional
    overrides written out (a ticket's ESC sequence in report.md on a terminal, a reversed
    IBAN in a browser)."""
    escaped = "".join("\\" + ch if ch in _MARKDOWN else ch for ch in shown(text))
    return "<br>".join(line for line in escaped.splitlines() if line.strip())


_MARKDOWN = set("\\`*_|<>[]#")


def failures_markdown(groups: list[Failures]) -> str:
    """The failures of each condition: a heading, a table, and how many are not shown."""
    parts = []
    for protocol, title in (("step", "Failed steps"), ("task", "Failed tasks"),
                            ("conversation", "Failed conversations")):
        mine = [g for g in groups if g.protocol == protocol]
        if not mine:
            continue
        parts.append(f"## {title}, per condition")
        for group in mine:
            parts.append(f"### {group.condition}: {group.failed} of {group.total} failed")
            if not group.shown:
                continue
            if protocol == "step":
                head = "| sample | expected | got | error |"
                cells = [[md_text(f.sample_id), md_code(f.expected_tool), md_code(f.got),
                          md_text(f.error)] for f in group.shown if isinstance(f, StepFailure)]
            else:
                head = "| task | why | calls | answer |"
                cells = [[md_text(f.example_id), md_text("\n".join(f.why)),
                          md_code("\n".join(f.calls)), md_text(f.answer)]
                         for f in group.shown if isinstance(f, TaskFailure)]
            rows = [head, "|---|---|---|---|", *("| " + " | ".join(c) + " |" for c in cells)]
            more = [f"\nand {group.more} more (in {protocol}s.jsonl)"] if group.more else []
            parts.append("\n".join([*rows, *more]))
    return "\n\n".join(parts)


CONVERSATION_HEADER = ["condition", "conversations", "success", "end state ok", "facts ok",
                       "questions per task", "user turns per task",
                       "questions for what was said", "writes without a yes", "s/task"]


def conversation_rows(summary: Summary) -> list[list[str]]:
    """The conversation protocol per condition, a row each under
    :data:`CONVERSATION_HEADER` (none when it did not run)."""
    return [[name, str(c.tasks), _pct(c.success), _pct(c.state_ok), _pct(c.facts_ok),
             _num(c.questions_per_task), _num(c.user_turns_per_task),
             str(c.redundant_questions), str(c.writes_without_yes),
             f"{c.seconds_per_task:.0f}"]
            for name, entry in summary.conditions.items()
            if (c := entry.conversation) is not None]


def conversation_table(summary: Summary) -> str:
    """The conversation protocol per condition ("" when it did not run)."""
    rows = conversation_rows(summary)
    if not rows:
        return ""
    lines = ["| " + " | ".join(CONVERSATION_HEADER) + " |",
             "|" + "---|" * len(CONVERSATION_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "## Conversations\n\n" + "\n".join(lines)


def write_report(summary: Summary, steps: list[StepResult], tasks: list[TaskResult],
                 folder: Path) -> dict[str, Path]:
    """Write summary.json, report.md, the PNG charts and report.html into ``folder``
    (``tasks`` holds the task and the conversation protocols' records)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"summary": folder / "summary.json", "markdown": folder / "report.md",
             "html": folder / "report.html"}
    paths["summary"].write_text(summary.model_dump_json(indent=2), encoding="utf-8")
    failures = failures_by_condition(steps, tasks)
    talks = conversation_table(summary)
    runs = any(e.step is not None or e.task is not None for e in summary.conditions.values())
    tables = (f"{markdown_table(summary)}\n\n{cost_table(summary)}\n\n" if runs else
              "No step or task samples here (the conversation protocol only).\n\n")
    heading = md_text(str(summary.config["dataset"]))  # (a path is text from elsewhere)
    paths["markdown"].write_text(f"# Evaluation: {heading}\n\n{tables}"
                                 + (f"{talks}\n\n" if talks else "")
                                 + f"{failures_markdown(failures)}\n", encoding="utf-8")
    charts = _charts(summary, folder)
    titles = ["Accuracy by condition", "Accuracy by layer", "Accuracy by sub-scenario"]
    html = _HTML.render(
        title=str(summary.config["dataset"]), config=summary.config, header=HEADER,
        rows=table_rows(summary), conditions=summary.conditions,
        step_failures=[g for g in failures if g.protocol == "step"],
        task_failures=[g for g in failures if g.protocol == "task"],
        talk_header=CONVERSATION_HEADER, talks=conversation_rows(summary),
        talk_failures=[g for g in failures if g.protocol == "conversation"],
        charts=[{"title": t, "data": base64.b64encode(p.read_bytes()).decode()}
                for t, p in zip(titles, charts, strict=True)])
    paths["html"].write_text(html, encoding="utf-8")
    for path in charts:
        paths[path.stem] = path
    return paths
