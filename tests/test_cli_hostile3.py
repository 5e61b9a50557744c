"""The CLI in a user's own project, third hostile round: a closed pipe, Ctrl-C in a chat,
distilling nothing, drafts with natural file names and nowhere to go, escape sequences
from routine files, results files that are not text, an input given twice."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import threading

import click
import pytest
from rich.console import Console

from routine import load_routine_text
from routine.cli import commands
from routine.cli.commands import main
from routine.cli.draft import DraftJob, routine_name
from routine.errors import EvalResultsError
from routine.eval.compare import compare_results
from routine.eval.jobs import read_records
from routine.eval.steps import StepResult
from routine.models.testing import ScriptedModel
from routine.run.approval import ApprovalRequest, ask_in_terminal
from routine.run.blocking import run_blocking
from routine.run.trace import TurnRecord
from routine.spec.flow import Flow

from .shop import CANCEL


def test_a_system_exit_in_a_task_of_a_run_reaches_the_caller_and_the_loop_lives_on():
    async def printing_to_a_closed_pipe() -> None:
        raise SystemExit(1)  # what rich does on a broken pipe, inside a callback

    async def run() -> None:  # a run awaits its loop under wait_for: another task
        await asyncio.wait_for(printing_to_a_closed_pipe(), 5)

    raised: list[BaseException] = []

    def caller() -> None:
        try:
            run_blocking(run())
        except BaseException as exc:  # noqa: BLE001 - what the caller gets is the check
            raised.append(exc)

    thread = threading.Thread(target=caller, daemon=True)
    thread.start()
    thread.join(10)  # (it waited forever: the loop itself had stopped)
    assert not thread.is_alive() and isinstance(raised[0], SystemExit)
    assert run_blocking(asyncio.sleep(0, result=42)) == 42


def test_ctrl_c_in_a_chat_keeps_the_conversation_s_trace(tmp_path, monkeypatch):
    model = ScriptedModel(['{"email": "ana@example.com", "order_id": null, "reason": null}'])
    monkeypatch.setattr(commands, "_model",
                        lambda *a, **k: contextlib.nullcontext(model))

    def interrupted() -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "_read_line", interrupted)
    code = main(["chat", "routines/retail/cancel_order.yaml",
                 "I want to cancel an order, ana@example.com",
                 "--trace-dir", str(tmp_path / "traces")])
    assert code != 0  # (Ctrl-C: click's abort)
    (saved,) = [json.loads(line) for line in
                (tmp_path / "traces" / "traces.jsonl").read_text().splitlines()]
    assert saved["outcome"] == "waiting" and "order_id" in saved["asked"]


def test_distilling_nothing_keeps_the_file_it_would_replace(tmp_path):
    out = tmp_path / "sft.jsonl"
    out.write_text('{"kept": true}\n')
    empty = tmp_path / "traces.jsonl"
    empty.write_text("")
    code = main(["distill", "eval/datasets/hr", "--out", str(out), "--no-gold",
                 "--traces", str(empty)])
    assert code == 1 and out.read_text() == '{"kept": true}\n'


def test_a_draft_named_by_its_file_gets_a_routine_name_and_bad_outputs_fail_first(tmp_path):
    assert routine_name("Refill-Process") == "refill_process"
    assert routine_name("b c é") == "b_c_e" and routine_name("2 step") == "routine_2_step"
    draft = tmp_path / "Refill-Process.md"
    draft.write_text("Look the prescription up, then order the refill.")
    job = DraftJob(draft, ["routine_tools.hr"], out_path=tmp_path / "new" / "dir" / "x.yaml")
    assert job.pending() == [draft] and (tmp_path / "new" / "dir").is_dir()
    assert job._name(draft) == "refill_process"
    folder = DraftJob(draft, ["routine_tools.hr"], out_path=tmp_path)  # a folder: NAME.yaml in it
    assert folder.pending() == [draft] and folder.folder_out
    with pytest.raises(click.BadParameter, match="not a routine name"):
        DraftJob(draft, ["routine_tools.hr"], name="Bad Name").pending()
    empty = tmp_path / "empty.md"
    empty.write_text("  \n")
    with pytest.raises(click.BadParameter, match="the draft is empty"):
        DraftJob(empty, ["routine_tools.hr"]).pending()
    binary = tmp_path / "bin.md"
    binary.write_bytes(b"\xff\xfe\x00draft")
    with pytest.raises(click.BadParameter, match="not UTF-8 text"):
        DraftJob(binary, ["routine_tools.hr"]).pending()


def test_what_routine_files_say_is_written_out_not_sent_to_the_terminal(tmp_path, monkeypatch):
    routine = load_routine_text(CANCEL.replace("name: Find the customer\n",
                                               "name: \"Find \\e[2J the customer\"\n", 1),
                                "c.yaml")
    flow = Flow.of(routine.routine)
    assert "\x1b" not in commands._step_label(flow, "find_by_email")
    assert "\\x1b[2J" in commands._step_label(flow, "find_by_email")
    bad = tmp_path / "bad.yaml"
    bad.write_text(CANCEL + '"bad\\e[2Jkey": 1\n')
    buffer = io.StringIO()
    monkeypatch.setattr(commands, "out", Console(file=buffer, width=200))
    assert main(["validate", str(bad), "--tools", "tests.shop"]) == 1
    assert "\x1b" not in buffer.getvalue() and "bad\\x1b[2Jkey" in buffer.getvalue()
    asked = []
    approver = ask_in_terminal("me", ask=lambda q: asked.append(q) or "n")
    approver(ApprovalRequest(run_id="r", routine="x", tool="pay", step_id="s", arguments={},
                             reason="step s (Pay \x1b[31m) requires approval"))
    assert "\x1b" not in asked[0] and "\\u001b[31m" in asked[0]


def test_the_turn_that_reads_inputs_is_not_shown_as_a_retry(monkeypatch):
    buffer = io.StringIO()
    monkeypatch.setattr(commands, "out", Console(file=buffer, width=200))
    commands._show_turn(TurnRecord(index=0, kind="inputs", feedback='{"order_id": 7}'))
    assert buffer.getvalue() == ""
    commands._show_turn(TurnRecord(index=1, kind="retry", feedback="call a tool"))
    assert "retry: call a tool" in buffer.getvalue()


def test_results_that_are_not_text_or_end_torn_are_read_as_eval_reads_them(tmp_path):
    folder = tmp_path / "r"
    folder.mkdir()
    record = StepResult(sample_id="s1", example_id="e1", condition="nl", scenario="x",
                        routine="y", step=0, expected_tool="t", output=None, text="",
                        correct=True, layer=None, error="", tool_f1=1.0, arg_match=1.0,
                        seconds=1.0, prompt_tokens=1, completion_tokens=1)
    good = record.model_dump_json() + "\n"
    (folder / "steps.jsonl").write_text(good + '{"condition": "nl", "sam')
    rows = compare_results(folder, folder)
    assert rows[0].steps_a is not None and rows[0].steps_a.n == 1
    (folder / "steps.jsonl").write_bytes(good.encode() + b"\xff\xfe\n")
    with pytest.raises(EvalResultsError, match=r"steps.jsonl:2: not UTF-8 text"):
        read_records(folder / "steps.jsonl", StepResult)


def test_an_input_given_twice_with_two_values_is_a_usage_error():
    code = main(["run", "routines/retail/cancel_order.yaml", "cancel", "-i", "order_id=7",
                 "-i", "order_id=9"])
    assert code == 2


def test_ctrl_c_in_an_evaluation_says_what_is_kept_and_how_to_go_on(tmp_path, monkeypatch,
                                                                    capsys):
    """Ctrl-C during `routine eval` exited 130 without a word: whether the hour of samples
    already run was lost, and how to go on, the user had to guess."""
    from routine.eval import runner

    model = ScriptedModel([])
    monkeypatch.setattr(commands, "_model", lambda *a, **k: contextlib.nullcontext(model))

    async def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_evaluation", interrupted)
    out = tmp_path / "results"
    code = main(["eval", "eval/datasets/retail", "--out", str(out), "--steps", "2"])
    assert code == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and str(out) in err.replace("\n", "") and "goes on" in err
    assert "Traceback" not in err
