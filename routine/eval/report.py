"""Evaluation reports: summary JSON, a markdown table, PNG charts, one self-contained HTML.

Every figure is printed with its sample size and 95% interval.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from jinja2 import PackageLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .stats import Gain, Mean, Rate
from .steps import StepResult
from .summary import Summary
from .tasks import TaskResult

__all__ = ["write_report", "markdown_table", "table_rows", "CHARTS", "HEADER"]

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
    """Per condition: the paired gain over plain step tracking (guided conditions), tokens
    and seconds per step sample and per task, and the facts answers lacked."""
    lines = ["| condition | steps vs nl+track | tasks vs nl+track | tokens/sample (prompt + "
             "completion) | s/sample | tokens/task | s/task | facts missing (state ok) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, entry in summary.conditions.items():
        step, task = entry.step, entry.task
        if step is None and task is None:
            continue
        lines.append(
            f"| {name} | {_points(step.gain_vs_track if step else None)} | "
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

    conditions = [c for c, e in summary["conditions"].items() if e["step"] or e["task"]]
    paths = []

    def bars(ax: Any, labels: list[str], rates: list[dict[str, Any]], offset: float,
             width: float, label: str) -> None:
        values = [100 * r["rate"] if r.get("n") else 0 for r in rates]
        errors = [[100 * (r["rate"] - r["ci95"][0]) if r.get("n") else 0 for r in rates],
                  [100 * (r["ci95"][1] - r["rate"]) if r.get("n") else 0 for r in rates]]
        ax.bar([i + offset for i in range(len(labels))], values, width, yerr=errors,
               capsize=3, label=label)

    # 1. accuracy by condition: step accuracy and task success
    fig, ax = plt.subplots(figsize=(8, 4))
    steps = [(summary["conditions"][c]["step"] or {}).get("accuracy", {}) for c in conditions]
    tasks = [(summary["conditions"][c]["task"] or {}).get("success", {}) for c in conditions]
    bars(ax, conditions, steps, -0.2, 0.4, "step accuracy")
    bars(ax, conditions, tasks, 0.2, 0.4, "task success")
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
    ax.legend(fontsize=8)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


_HTML = ImmutableSandboxedEnvironment(
    loader=PackageLoader("routine.eval", "templates"), undefined=StrictUndefined, autoescape=True,
).get_template("report.html.j2")


def _failures(steps: list[StepResult], tasks: list[TaskResult], per_condition: int = 8
              ) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Some failed step samples and tasks from EVERY condition (not the first n of one)."""
    step_rows: list[dict[str, str]] = []
    task_rows: list[dict[str, str]] = []
    for condition in dict.fromkeys([*(s.condition for s in steps), *(t.condition for t in tasks)]):
        failed = [s for s in steps if s.condition == condition and not s.correct][:per_condition]
        step_rows += [{"condition": s.condition, "sample_id": s.sample_id,
                       "expected_tool": s.expected_tool, "error": s.error,
                       "got": json.dumps(s.output)[:200] if s.output else s.text[:200]}
                      for s in failed]
        lost = [t for t in tasks if t.condition == condition and not t.success][:per_condition]
        task_rows += [{"condition": t.condition, "example_id": t.example_id,
                       "why": t.failure or t.state_diff or ("" if t.facts_ok else
                                                            "the answer misses a required fact"),
                       "calls": "; ".join(f"{n}({json.dumps(a)[:80]})" for n, a in t.calls)[:300],
                       "answer": (t.answer or "")[:200]}
                      for t in lost]
    return step_rows, task_rows


def write_report(summary: Summary, steps: list[StepResult], tasks: list[TaskResult],
                 folder: Path) -> dict[str, Path]:
    """Write summary.json, report.md, the PNG charts and report.html into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"summary": folder / "summary.json", "markdown": folder / "report.md",
             "html": folder / "report.html"}
    paths["summary"].write_text(summary.model_dump_json(indent=2))
    paths["markdown"].write_text(f"# Evaluation: {summary.config['dataset']}\n\n"
                                 f"{markdown_table(summary)}\n\n{cost_table(summary)}\n")
    charts = _charts(summary, folder)
    titles = ["Accuracy by condition", "Accuracy by layer", "Accuracy by sub-scenario"]
    step_failures, task_failures = _failures(steps, tasks)
    html = _HTML.render(
        title=str(summary.config["dataset"]), config=summary.config, header=HEADER,
        rows=table_rows(summary), conditions=summary.conditions, failures=step_failures,
        task_failures=task_failures,
        charts=[{"title": t, "data": base64.b64encode(p.read_bytes()).decode()}
                for t, p in zip(titles, charts, strict=True)])
    paths["html"].write_text(html)
    for path in charts:
        paths[path.stem] = path
    return paths
