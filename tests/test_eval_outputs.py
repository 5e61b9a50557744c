"""What `routine eval` leaves for a reader: task records that explain a failure (each call
with its result or error, the rows that differ from the gold end state), reports that list
failures per condition with code that survives markdown, and progress a pipe can see."""

from __future__ import annotations

import asyncio
import json

from markdown_it import MarkdownIt

from routine.eval.conditions import CONDITIONS
from routine.eval.dataset import load_dataset, load_domain, seed_snapshot
from routine.eval.jobs import EvalProgress, ProgressLines
from routine.eval.report import failures_by_condition, failures_markdown, md_code, md_text
from routine.eval.runner import run_evaluation
from routine.eval.steps import StepResult
from routine.eval.tasks import RESULT_CHARS, CallRecord, TaskResult, run_task
from routine.models.base import ModelReply
from routine.models.messages import AssistantMessage
from routine.models.testing import FunctionModel, Request, call
from routine.run.settings import RunSettings
from routine.run.trace import ToolCallRecord

from .conftest import ROOT
from .test_evaluation import config, gold_model

HR = ROOT / "eval" / "datasets" / "hr"
TICKET = "hr-it.report.test-04"  # find the employee, then create_it_ticket(description=...)


WRONG = {"description": "printer jammed again", "priority": "high"}


def sloppy_model(example, ticket: dict | None = None) -> FunctionModel:
    """First a call that fails, then the gold calls with the ticket's arguments changed
    (default: described otherwise, its priority raised), then the gold answer."""
    def reply(request: Request) -> ModelReply:
        made = sum(1 for m in request.messages if isinstance(m, AssistantMessage) and m.tool_calls)
        if made == 0:
            return call("get_employee", employee_id="nobody")
        if made - 1 < len(example.calls):
            gold = example.calls[made - 1]
            arguments = dict(gold.arguments)
            if gold.name == "create_it_ticket":
                arguments.update(WRONG if ticket is None else ticket)
            return call(gold.name, **arguments)
        return call("finish", answer=example.answer)

    return FunctionModel(reply, name="sloppy")


def run_one(example_id: str, ticket: dict | None = None) -> TaskResult:
    domain = load_domain(HR)
    registry = domain.registry()
    routines = {n: lr.routine for n, lr in domain.routines().items()}
    example = next(e for e in load_dataset(HR, ("test",)) if e.id == example_id)

    async def go() -> TaskResult:
        seed = await seed_snapshot(domain, registry)
        return await run_task(example, routines, registry, sloppy_model(example, ticket),
                              CONDITIONS["nl+track"], 0, RunSettings(max_steps=12), domain, seed)

    return asyncio.run(go())


def test_a_failed_task_keeps_its_calls_with_results_and_the_rows_that_differ():
    result = run_one(TICKET)
    assert not result.success and not result.state_ok
    first, *rest = result.calls
    assert first.tool == "get_employee" and first.error and not first.ok
    assert [c.tool for c in rest] == ["find_employee", "create_it_ticket"]
    assert all(c.ok for c in rest) and rest[0].result  # what the tool returned is kept
    assert rest[1].arguments["description"] == "printer jammed again"
    rows = {(r.table, r.column): r for r in result.state_rows}
    priority = rows[("it_tickets", "priority")]
    assert (priority.got, priority.expected, priority.compared) == ("high", "normal", "exact")
    text = rows[("it_tickets", "description")]
    assert (text.got, text.expected) == ("printer jammed again", "my laptop screen flickers")
    assert text.compared == "fuzzy" and text.rule.startswith("free text: word overlap 0.00 < 0.5")
    assert priority.key == text.key and f"it_tickets row {text.key}: " in result.state_diff
    assert "word overlap 0.00 < 0.5" in result.state_diff  # the string comes from the rows
    line = json.loads(result.model_dump_json())
    assert "result" not in line["calls"][0] and "error" not in line["calls"][1]  # compact


def test_a_right_end_state_lists_no_rows():
    result = run_one(TICKET, {"description": "My laptop screen flickers!"})  # other words
    assert result.state_ok and result.state_rows == [] and result.state_diff == ""
    assert result.calls[0].error and len(result.calls) == 3


def test_long_results_are_cut_and_say_so():
    long = ToolCallRecord(call_id="c1", name="search_handbook", arguments={"query": "leave"},
                          result={"text": "x" * 2000})
    record = CallRecord.of(long)
    assert isinstance(record.result, str) and len(record.result) == RESULT_CHARS + 1
    assert record.cut == len(json.dumps({"text": "x" * 2000})) - RESULT_CHARS
    short = CallRecord.of(long.model_copy(update={"result": {"days": 7}}))
    assert (short.result, short.cut) == ({"days": 7}, 0)
    failed = CallRecord.of(long.model_copy(update={"result": None, "error": "e" * 900}))
    assert failed.cut == 400 and not failed.ok


def test_old_task_records_still_load():
    old = {"example_id": "hr-x", "condition": "nl", "trial": 0, "scenario": "leave",
           "routine": "leave", "success": False, "state_ok": False, "facts_ok": True,
           "tool_f1": 1.0, "outcome": "answered", "answer": "done", "failure": None,
           "state_diff": "the database differs from the gold end state",
           "tools": ["find_employee"], "calls": [["find_employee", {"name": "Ana"}]],
           "gold_tools": ["find_employee"], "seconds": 1.0, "prompt_tokens": 1,
           "completion_tokens": 1}
    record = TaskResult.model_validate_json(json.dumps(old))
    assert record.calls == [CallRecord(tool="find_employee", arguments={"name": "Ana"})]
    assert record.calls[0].ok and record.state_rows == [] and record.missing_facts is None
    again = TaskResult.model_validate_json(record.model_dump_json())
    assert again == record


# ------------------------------------------------------------------------- the reports
def step(condition: str, n: int, tool: str = "get_leave_balance") -> StepResult:
    return StepResult(
        sample_id=f"hr-{condition}-{n}#1", example_id=f"hr-{n}", condition=condition,
        scenario="leave", routine="leave", step=1, expected_tool=tool,
        output=[("get_leave_balance", {"employee_id": 7, "leave_type": "annual|sick"})],
        text="", correct=False, layer="arguments", error="leave_type: 'annual|sick' != 'annual'",
        tool_f1=1.0, arg_match=0.5, seconds=1.0, prompt_tokens=1, completion_tokens=1)


def task(condition: str, n: int, **kw) -> TaskResult:
    base = dict(example_id=f"hr-task_{n}", condition=condition, trial=0, scenario="leave",
                routine="leave", success=False, state_ok=True, facts_ok=False,
                missing_facts=["7.5"], tool_f1=1.0, outcome="answered", answer="You have *7* days",
                failure=None, tools=["get_leave_balance"],
                calls=[CallRecord(tool="get_leave_balance", arguments={"employee_id": 7},
                                  result={"remaining_days": 7.5})],
                gold_tools=["get_leave_balance"], seconds=1.0, prompt_tokens=1,
                completion_tokens=1)
    return TaskResult(**{**base, **kw})


MD = MarkdownIt("commonmark").enable("table")


def test_failures_are_listed_per_condition_capped_with_how_many_more():
    steps = [step("none", n) for n in range(40)] + [step("nl+track", n) for n in range(3)]
    tasks = [task("none", n) for n in range(12)] + [task("nl+track", 1)]
    groups = failures_by_condition(steps, tasks)
    assert [(g.condition, g.protocol, g.failed, len(g.shown), g.more) for g in groups] == [
        ("none", "step", 40, 10, 30), ("none", "task", 12, 10, 2),
        ("nl+track", "step", 3, 3, 0), ("nl+track", "task", 1, 1, 0)]
    text = failures_markdown(groups)
    assert "### none: 40 of 40 failed" in text and "### nl+track: 3 of 3 failed" in text
    assert "and 30 more (in steps.jsonl)" in text and "and 2 more (in tasks.jsonl)" in text
    html = MD.render(text)
    assert html.count("<td>hr-nl+track-") == 3 and html.count("<td>hr-none-") == 10


def test_code_cells_keep_underscores_and_pipes_in_markdown():
    text = failures_markdown(failures_by_condition([step("nl", 1)], [task("nl", 1)]))
    html = MD.render(text)
    assert "<em>" not in html  # underscores and stars were taken for emphasis before
    assert "<code>get_leave_balance</code>" in html  # the expected tool
    assert ('<code>[[&quot;get_leave_balance&quot;, {&quot;employee_id&quot;: 7, '
            '&quot;leave_type&quot;: &quot;annual|sick&quot;}]]</code>') in html
    assert "leave_type: 'annual|sick' != 'annual'" in html.replace("&#x27;", "'")
    assert "<td>hr-task_1</td>" in html and "You have *7* days" in html
    assert "the answer lacks '7.5'" in html.replace("&#x27;", "'")
    assert ("<code>get_leave_balance({&quot;employee_id&quot;: 7}) → "
            "{&quot;remaining_days&quot;: 7.5}</code>") in html
    assert all(line.count("|") >= 5 for line in text.splitlines() if line.startswith("| "))


def test_markdown_cells_are_one_line_code_spans():
    assert md_code("a_b(x)\nc|d") == "`a_b(x)`<br>`c\\|d`"
    assert md_code("say `hi`") == "`` say `hi` ``"  # a longer fence, padded
    cell = md_code("say `hi`")
    assert MD.render(f"| a |\n|---|\n| {cell} |").count("<code>say `hi`</code>") == 1
    assert md_text("get_leave_balance *x*\n<b>|") == "get\\_leave\\_balance \\*x\\*<br>\\<b\\>\\|"


# ------------------------------------------------------------------------- progress
def test_progress_lines_say_where_the_run_stands_at_most_every_few_seconds():
    report = EvalProgress(done=12, total=94, condition="nl+track", protocol="step",
                          sample="hr-1#0", elapsed_s=180.0)
    assert report.line() == "eval: 12/94 samples · nl+track step · 3 min elapsed, ~20 min left"
    assert EvalProgress(done=0, total=94).line() == "eval: 0/94 samples · 0 s elapsed"
    assert "2 endpoint failures" in report.model_copy(update={"failed": 2}).line()
    lines, now = [], [0.0]
    show = ProgressLines(lines.append, every_s=5.0, clock=lambda: now[0])
    for done, at in [(0, 0.0), (1, 1.0), (2, 2.0), (3, 6.0), (4, 7.0), (5, 8.0)]:
        now[0] = at
        show(EvalProgress(done=done, total=5, elapsed_s=at))
    assert [line.split()[1] for line in lines] == ["0/5", "3/5", "5/5"]  # first, 5 s on, last


def test_the_evaluation_reports_typed_progress_and_still_takes_count_callbacks(tmp_path):
    reports, counts = [], []
    cfg = config(tmp_path, conditions=["none", "nl+track"], step_limit=3, task_limit=1)
    asyncio.run(run_evaluation(cfg, gold_model(), lambda d, t: counts.append((d, t)),
                               progress=reports.append))
    # before the jobs, each condition's step samples are made (every chosen gold example
    # replayed: a large split spent a while there without a word): said, not counted as jobs
    preparing = [r for r in reports if r.preparing]
    assert [r.preparing.split(" (")[0] for r in preparing] == [
        "the step samples of none", "the step samples of nl+track"]
    assert preparing[0].line().startswith("eval: preparing the step samples of none (")
    reports = [r for r in reports if not r.preparing]
    total = 2 * 3 + 2 * 1
    assert [(r.done, r.total) for r in reports] == [(n, total) for n in range(total + 1)]
    assert counts == [(r.done, r.total) for r in reports]
    assert reports[0].condition is None and reports[-1].elapsed_s >= reports[1].elapsed_s
    seen = {(r.condition, r.protocol) for r in reports[1:]}
    assert seen == {(c, p) for c in ("none", "nl+track") for p in ("step", "task")}
    assert all(r.sample and r.sample.startswith("hr-") for r in reports[1:])


def _eval_cli(tmp_path, monkeypatch, capsys, terminal: bool) -> str:
    import contextlib

    from rich.console import Console

    import routine.cli.commands as cli

    monkeypatch.setattr(cli, "_model", lambda *a, **k: contextlib.nullcontext(gold_model()))
    monkeypatch.setattr(cli, "err", Console(stderr=True, force_terminal=terminal))
    code = cli.main(["eval", str(HR), "--out", str(tmp_path / "run"), "--conditions",
                     "nl+track", "--steps", "3", "--tasks", "1", "--seed", "1"])
    assert code == 0
    return capsys.readouterr().err


def test_eval_writes_plain_progress_lines_when_stderr_is_not_a_terminal(tmp_path, monkeypatch,
                                                                        capsys):
    err = _eval_cli(tmp_path, monkeypatch, capsys, terminal=False)
    lines = [line for line in err.splitlines() if line.startswith("eval: ")]
    assert lines[0] == "eval: preparing the step samples of nl+track (65 gold examples)"
    assert lines[1] == "eval: 0/4 samples · 0 s elapsed"
    assert lines[-1].startswith("eval: 4/4 samples · nl+track task · ")
    assert "report: " in err


def test_eval_draws_a_bar_on_a_terminal_not_lines(tmp_path, monkeypatch, capsys):
    err = _eval_cli(tmp_path, monkeypatch, capsys, terminal=True)
    assert "evaluating" in err and "eval: " not in err
