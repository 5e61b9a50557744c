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

__all__ = ["write_report", "markdown_table", "CHARTS"]

CHARTS = ("accuracy_by_condition.png", "accuracy_by_layer.png", "accuracy_by_scenario.png")


def _pct(rate: dict[str, Any]) -> str:
    if not rate or not rate.get("n"):
        return "–"
    lo, hi = rate["ci95"]
    return f"{100 * rate['rate']:.1f}% [{100 * lo:.0f}–{100 * hi:.0f}] (n={rate['n']})"


def markdown_table(summary: dict[str, Any]) -> str:
    """One row per condition: step accuracy by layer, partial credit, task success."""
    lines = ["| condition | step accuracy | gain vs none | well-formed | right tool | tool F1 | "
             "arg match | task success | gain vs none | end state ok | tool-seq F1 |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, entry in summary["conditions"].items():
        step, task = entry.get("step", {}), entry.get("task", {})
        layers = step.get("layers", {})
        lines.append(
            f"| {name} | {_pct(step.get('accuracy', {}))} | {_points(step.get('gain_vs_none'))} | "
            f"{_pct(layers.get('format', {}))} | "
            f"{_pct(layers.get('tool', {}))} | {_num(step.get('tool_f1'))} | "
            f"{_num(step.get('arg_match'))} | {_pct(task.get('success', {}))} | "
            f"{_points(task.get('gain_vs_none'))} | "
            f"{_pct(task.get('state_ok', {}))} | {_num(task.get('tool_f1'))} |")
    return "\n".join(lines)


def _points(gain: dict[str, Any] | None) -> str:
    """A paired gain in percentage points, its 95% interval and McNemar's p."""
    if not gain or not gain.get("n"):
        return "–"
    lo, hi = gain["ci95"]
    return (f"{100 * gain['gain']:+.1f} pt [{100 * lo:+.0f}, {100 * hi:+.0f}] "
            f"p={gain['p']:.2g}")


def _num(value: dict[str, Any] | None) -> str:
    """A mean score with its 95% interval and sample size."""
    if not value or not value.get("n"):
        return "–"
    lo, hi = value["ci95"]
    return f"{value['mean']:.2f} [{lo:.2f}–{hi:.2f}] (n={value['n']})"


def _charts(summary: dict[str, Any], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conditions = [c for c, e in summary["conditions"].items() if "step" in e or "task" in e]
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
    steps = [summary["conditions"][c].get("step", {}).get("accuracy", {}) for c in conditions]
    tasks = [summary["conditions"][c].get("task", {}).get("success", {}) for c in conditions]
    bars(ax, conditions, steps, -0.2, 0.4, "step accuracy")
    bars(ax, conditions, tasks, 0.2, 0.4, "task success")
    _finish(ax, conditions, "Accuracy by condition (95% CI)")
    paths.append(_save(fig, folder / CHARTS[0]))
    # 2. by layer
    fig, ax = plt.subplots(figsize=(8, 4))
    layers = ("format", "tool", "arguments")
    for n, layer in enumerate(layers):
        rates = [summary["conditions"][c].get("step", {}).get("layers", {}).get(layer, {})
                 for c in conditions]
        bars(ax, conditions, rates, (n - 1) * 0.27, 0.27, layer)
    _finish(ax, conditions, "Step samples passing each layer (cumulative)")
    paths.append(_save(fig, folder / CHARTS[1]))
    # 3. by scenario
    fig, ax = plt.subplots(figsize=(9, 4))
    scenarios = sorted({s for c in conditions for s in
                        summary["conditions"][c].get("step", {}).get("by_scenario", {})})
    width = 0.8 / max(1, len(conditions))
    for n, c in enumerate(conditions):
        per = summary["conditions"][c].get("step", {}).get("by_scenario", {})
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
    loader=PackageLoader("routine", "templates"), undefined=StrictUndefined, autoescape=True,
).get_template("report.html.j2")


def write_report(summary: dict[str, Any], steps: list[Any], folder: Path) -> dict[str, Path]:
    """Write summary.json, report.md, the PNG charts and report.html into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"summary": folder / "summary.json", "markdown": folder / "report.md",
             "html": folder / "report.html"}
    paths["summary"].write_text(json.dumps(summary, indent=2, default=str))
    table = markdown_table(summary)
    paths["markdown"].write_text(f"# Evaluation: {summary['config']['dataset']}\n\n{table}\n")
    charts = _charts(summary, folder)
    titles = ["Accuracy by condition", "Accuracy by layer", "Accuracy by sub-scenario"]
    header, *rows = [[c.strip() for c in line.strip("|").split("|")]
                     for line in table.splitlines() if not line.startswith("|---")]
    failures = [{"condition": s.condition, "sample_id": s.sample_id,
                 "expected_tool": s.expected_tool, "error": s.error,
                 "got": json.dumps(s.output)[:200] if s.output else s.text[:200]}
                for s in steps if not s.correct][:40]
    html = _HTML.render(
        title=str(summary["config"]["dataset"]), config=summary["config"], header=header,
        rows=rows, conditions=summary["conditions"], failures=failures,
        charts=[{"title": t, "data": base64.b64encode(p.read_bytes()).decode()}
                for t, p in zip(titles, charts, strict=True)])
    paths["html"].write_text(html)
    for path in charts:
        paths[path.stem] = path
    return paths
