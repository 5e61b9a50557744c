"""The trace viewer: a run's trace as a self-contained HTML page you can read.

    routine trace view runs/traces.jsonl --out runs/view      # index.html + run-001.html ...

For each run: the routine's steps (done or not, which turns were on each), then every
turn — the step it was on, the prompt the model saw (``RunTrace.request``: exactly what
was sent), its raw reply, the calls read from it with their arguments, results and
errors, timing and tokens — with failures highlighted. A trace file with several runs
(``--trace-dir`` appends one line per run) also gets an ``index.html`` listing them.

Pages are self-contained (inline CSS and a few lines of script, no network: a Content
Security Policy allows nothing else) and everything from a trace is escaped: traces hold
the user's and the model's words, and a reply that writes ``<script>`` shows as text.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, Template

from ..models.messages import AssistantMessage, Message, ToolCall
from ..spec.flow import Flow
from ..spec.format import Routine, Step
from .printable import visible
from .trace import RunTrace, ToolCallRecord, TurnRecord

__all__ = ["StepView", "TurnView", "RunView", "run_view", "render_run", "render_index",
           "write_views"]

# kinds of turns whose record stands for a failure, or a model mistake fed back
FAILED_KINDS = {"failed"}
RETRY_KINDS = {"retry"}


@dataclass
class StepView:
    """One step of the routine as the page shows it."""

    id: str
    label: str
    name: str
    what: str  # the tool, or the kind of step (branch, finish, ask, compute...)
    description: str
    depth: int
    done: bool
    turns: list[int] = field(default_factory=list)
    failed: bool = False  # a call made at this step failed


@dataclass
class TurnView:
    """One turn as the page shows it."""

    record: TurnRecord
    step: str  # "2 Check the leave balance", or the step id, or ""
    request: list[Message] | None  # what the model was sent (None: no request kept)
    new_from: int  # request[new_from:] is what the model had not seen the turn before
    width: float  # the turn's share of the run's time, in percent (the timeline bar)
    sent_calls: list[ToolCall]  # the calls as the history keeps them (structured replies)
    failed: bool
    retry: bool


@dataclass
class RunView:
    """Everything one run's page shows."""

    number: int
    page: str
    trace: RunTrace
    steps: list[StepView]
    turns: list[TurnView]
    routine_known: bool
    version_differs: bool
    failed: bool
    failed_calls: int = 0


def _failed(record: ToolCallRecord) -> bool:
    """A call that failed (one that waited for the user's yes did not)."""
    return not record.ok and record.error_kind != "awaiting_confirmation"


def _what(step: Step) -> str:
    if step.tool:
        return step.tool
    for kind in ("branch", "ask", "compute", "for_each", "handoff", "message"):
        if getattr(step, kind, None):
            return kind
    return "finish" if step.finish else "step"


def _steps(trace: RunTrace, routine: Routine | None) -> tuple[list[StepView], dict[str, str]]:
    """The routine's steps in document order, and a label for each step id."""
    if routine is None:
        ids = [t.current_step for t in trace.turns if t.current_step]
        ids += [c.step_id for c in trace.tool_calls if c.step_id] + list(trace.steps_done)
        order = list(dict.fromkeys(ids))
        views = [StepView(i, "", i, "", "", 0, i in trace.steps_done) for i in order]
        names = {i: i for i in order}
    else:
        flow = Flow.of(routine)
        views = [StepView(i, flow.labels[i], flow.steps[i].name, _what(flow.steps[i]),
                          flow.steps[i].description, flow.labels[i].count("-"),
                          i in trace.steps_done) for i in flow.order]
        names = {v.id: f"{v.label} {v.name}" for v in views}
    by_id = {v.id: v for v in views}
    for turn in trace.turns:
        if turn.current_step in by_id:
            by_id[turn.current_step].turns.append(turn.index)
        for record in turn.calls:
            step = by_id.get(record.step_id or turn.current_step or "")
            if step is not None and _failed(record):
                step.failed = True
    return views, names


def run_view(trace: RunTrace, routine: Routine | None = None, number: int = 1) -> RunView:
    """What the page of one run shows (``routine``: its definition, for the steps)."""
    routine_known = routine is not None and routine.name == trace.routine
    steps, names = _steps(trace, routine if routine_known else None)
    total = sum(t.duration_s for t in trace.turns) or 1.0
    turns: list[TurnView] = []
    seen = 0
    for turn in trace.turns:
        asked = turn.history_length > 0 or turn.state_prompt is not None
        request = trace.request(turn.index) if asked else None
        after = trace.messages[turn.history_length] if asked and turn.history_length < len(
            trace.messages) else None
        sent = (after.tool_calls or []) if isinstance(after, AssistantMessage) else []
        turns.append(TurnView(
            record=turn, step=names.get(turn.current_step or "", turn.current_step or ""),
            request=request, new_from=min(seen, turn.history_length), width=round(
                100 * turn.duration_s / total, 1), sent_calls=sent,
            failed=turn.kind in FAILED_KINDS,
            retry=turn.kind in RETRY_KINDS))
        if asked:
            seen = turn.history_length
    return RunView(number=number, page=f"run-{number:03d}.html", trace=trace, steps=steps,
                   turns=turns, routine_known=routine_known,
                   version_differs=routine_known and routine is not None
                   and routine.version != trace.routine_version,
                   failed=trace.outcome == "failed",
                   failed_calls=sum(map(_failed, trace.tool_calls)))


SHOWN_CHARS = 20_000  # of one value on a page (a 3 MB tool result made a 3 MB page)


def _bounded(text: str) -> str:
    """``text``, its first :data:`SHOWN_CHARS` characters when longer, and how many more
    there are (the whole value is in the trace file)."""
    if len(text) <= SHOWN_CHARS:
        return text
    return (f"{text[:SHOWN_CHARS]}\n… {len(text) - SHOWN_CHARS:,} more characters (the whole "
            "value is in the trace file)")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def _shown(value: Any) -> Any:
    """What the page writes for each ``{{ ... }}``: text bounded (:func:`_bounded`), with
    its control characters and overrides written out (:func:`visible`)."""
    return visible(_bounded(value) if isinstance(value, str) else value)


def _arguments(record: ToolCallRecord) -> str:
    return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False, default=str)}"
                     for k, v in record.arguments.items())


SCRIPT = """
document.documentElement.setAttribute('data-script', 'ran');
document.querySelectorAll('button[data-open]').forEach(function (b) {
  b.addEventListener('click', function () {
    var open = b.getAttribute('data-open') === '1';
    document.querySelectorAll('details').forEach(function (d) { d.open = open; });
  });
});
""".strip()


def _policy() -> str:
    """The page may run its own script and styles, and load nothing."""
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    return (f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'; "
            "img-src data:; base-uri 'none'; form-action 'none'")


@cache
def _template(name: str) -> Template:
    env = Environment(loader=PackageLoader("routine.run", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      finalize=_shown)
    env.filters["pretty"] = _json
    env.filters["arguments"] = _arguments
    env.globals.update(script=SCRIPT, policy=_policy())
    return env.get_template(name)


def render_run(view: RunView, index: str | None = None) -> str:
    """One run's page (``index``: the file name of the index page to link back to)."""
    return _template("viewer_run.html.j2").render(run=view, index=index)


def render_index(views: list[RunView], source: str) -> str:
    """The page listing the runs of a trace file."""
    return _template("viewer_index.html.j2").render(runs=views, source=source)


def write_views(traces: Iterable[RunTrace], out: str | Path,
                routines: Mapping[str, Routine] | None = None, source: str = "") -> list[Path]:
    """Write ``run-NNN.html`` for each trace and ``index.html`` listing them into ``out``;
    return the paths written (the index first). ``routines``: definitions by name, to show
    each run's steps (a run whose routine is not among them shows the steps it visited)."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    routines = routines or {}
    views = [run_view(trace, routines.get(trace.routine or ""), number)
             for number, trace in enumerate(traces, 1)]
    index = folder / "index.html"
    index.write_text(render_index(views, source), encoding="utf-8")
    written = [index]
    for view in views:
        path = folder / view.page
        path.write_text(render_run(view, index.name), encoding="utf-8")
        written.append(path)
    return written
