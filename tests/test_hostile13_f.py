"""Thirteenth hostile round (f): a municipal permits office's own project — look a building
permit up, list its documents, file an inspection — whose texts come from elsewhere: an
applicant's words, a permit system's records (an owner's name typed with a right-to-left
override, a scanned document's title holding an escape sequence), routine files and gold
examples written by another department. What the framework renders or prints of them (the
trace viewer, eval's report.html and report.md, the terminal) must show them as text, in
the order they were written, and never as markup or terminal commands. Scripted doubles and
no model; the HTML is checked by parsing it. Each test fails on the code before its fix."""

from __future__ import annotations

import io
import json
from html.parser import HTMLParser
from pathlib import Path

from markdown_it import MarkdownIt
from rich.console import Console

from routine.cli import commands, main
from routine.eval.config import EvalConfig
from routine.eval.report import CHARTS, write_report
from routine.eval.steps import StepResult
from routine.eval.summary import summarize
from routine.eval.tasks import CallRecord, TaskResult

# an owner's name as the permit system holds it: U+202E makes "9876" read "6789"; an
# escape sequence that clears a terminal and retitles its window; markup that would run
OWNER = "Ana Ruiz, IBAN DE44\u202e9876\u202c"
ESCAPES = "\x1b[2J\x1b]0;permits pwned\x07"
MARKUP = "<img src=x onerror=alert(1)><script>alert(2)</script>"
REVERSERS = ("\u202e", "\u202c", "\x1b", "\x07")


class _Elements(HTMLParser):
    """The elements and attributes a browser would build (no script runs)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)
        self.attributes += [name for name, _ in attrs]


def _elements(html: str) -> _Elements:
    page = _Elements()
    page.feed(html)
    return page


def _buffers(monkeypatch) -> tuple[io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(commands, "out", Console(file=out, width=300, force_terminal=True))
    monkeypatch.setattr(commands, "err", Console(file=err, width=300, force_terminal=True))
    return out, err


# ------------------------------------------------------------------------- eval's reports
def test_the_eval_reports_write_out_overrides_and_escapes_from_records(tmp_path):
    """report.html and report.md showed a failed task's answer and its calls' results as
    they came: the permit system's owner name, holding U+202E, was shown reversed ("IBAN
    DE44 6789" for 9876) in a browser and on GitHub, and an escape sequence in a scanned
    document's title cleared the screen of whoever ran `cat report.md` (the trace viewer,
    and the terminal, already wrote them out as ``\\u202e`` and ``\\x1b``)."""
    example = f"permits-status-01{ESCAPES}"
    steps = [StepResult(
        sample_id=f"{example}#1", example_id=example, condition="nl", scenario="permits",
        routine="permit_status", step=1, expected_tool="find_permit",
        output=[("find_permit", {"permit_no": f"P-1 {OWNER}"})], text="", correct=False,
        layer="arguments", error=f"permit_no: 'P-1 {OWNER}' != 'P-1'", tool_f1=1.0,
        arg_match=0.5, seconds=1.0, prompt_tokens=1, completion_tokens=1)]
    tasks = [TaskResult(
        example_id=example, condition="nl", trial=0, scenario="permits",
        routine="permit_status", success=False, state_ok=True, facts_ok=False,
        missing_facts=["approved"], tool_f1=1.0, outcome="answered",
        answer=f"Permit P-1 of {OWNER} is pending {MARKUP}", failure=None,
        tools=["find_permit", "list_documents"],
        calls=[CallRecord(tool="find_permit", arguments={"permit_no": "P-1"},
                          result={"owner": OWNER}),
               CallRecord(tool="list_documents", arguments={"permit_id": 7},
                          result=[{"title": f"site plan{ESCAPES}"}])],
        gold_tools=["find_permit"], seconds=1.0, prompt_tokens=1, completion_tokens=1)]
    # the dataset's path heads report.md: a folder name is text from elsewhere too
    config = EvalConfig(dataset=f"eval/permits{ESCAPES}", out=tmp_path, conditions=["nl"])
    paths = write_report(summarize(steps, tasks, config), steps, tasks, tmp_path)
    html = paths["html"].read_text(encoding="utf-8")
    markdown = paths["markdown"].read_text(encoding="utf-8")
    rendered = MarkdownIt("commonmark").enable("table").render(markdown)
    for text in (html, markdown):
        assert not any(c in text for c in REVERSERS)  # before: the name read 6789
        assert "\x1b" not in text and "\x07" not in text  # (the heading's path too)
    for text in (html, rendered):
        assert "DE44\\u202e9876" in text and "permits-status-01\\x1b[2J" in text
    for page, charts in ((_elements(html), len(CHARTS)), (_elements(rendered), 0)):
        assert page.tags.count("img") == charts and "script" not in page.tags  # (text, as
        assert not any(name.startswith("on") for name in page.attributes)  # it was)


# ------------------------------------------------------------------------- the terminal
BAD_ROUTINE = """
name: permit_status
description: Say a permit's status.
"owner\\e[2J\\e]0;pwned\\a": 1
steps:
  - id: answer
    name: Answer
    description: Tell the applicant.
    finish: true
"""


def test_routine_run_writes_out_escapes_of_a_routine_file_s_problems(tmp_path, monkeypatch):
    """`routine run` of a routine file another department wrote printed its problems as
    they were: `unknown key ... at owner<ESC>[2J<ESC>]0;pwned` cleared the terminal and
    retitled its window (`routine validate` already wrote them out; run, tools, route and
    the CLI's own error line did not)."""
    routine = tmp_path / "permit_status.yaml"
    routine.write_text(BAD_ROUTINE, encoding="utf-8")
    out, err = _buffers(monkeypatch)
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(routine), "status of permit P-1",
                 "--base-url", "http://127.0.0.1:9/v1"]) == 1
    said = err.getvalue()
    assert "unknown key" in said and "\\x1b[2J" in said
    assert "\x1b[2J" not in said and "\x1b]0" not in said  # before: the screen was cleared


def _project_with_an_escaping_gold_id(tmp_path, monkeypatch) -> Path:
    """A `routine init` project, its dataset built, one gold example's id carrying an escape
    sequence and its gold result edited so that it no longer replays."""
    monkeypatch.chdir(tmp_path)
    assert main(["init", "permits"]) == 0
    project = tmp_path / "permits"
    monkeypatch.chdir(project)
    dataset = project / "eval" / "helpdesk"
    assert main(["dataset", "build", str(dataset)]) == 0
    gold = dataset / "test.jsonl"
    lines = gold.read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    first["id"] = f"permits-01{ESCAPES}\u202eevil"
    first["calls"][0]["result"] = {**first["calls"][0]["result"], "user_id": 99}
    gold.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n", encoding="utf-8")
    return dataset


def test_a_gold_example_s_id_is_written_out_by_dataset_check_and_eval(tmp_path, monkeypatch):
    """A gold file edited by another department, an example id holding an escape sequence:
    `routine dataset check` printed `permits-01<ESC>[2J...: call 0 find_user: result
    differs` and `routine eval` its one error line (`error: permits-01<ESC>[2J...: the gold
    calls do not replay`) as they were — the terminal was cleared and retitled, and U+202E
    reversed the rest of the line."""
    dataset = _project_with_an_escaping_gold_id(tmp_path, monkeypatch)
    out, err = _buffers(monkeypatch)
    assert main(["dataset", "check", str(dataset)]) == 1
    assert "result differs" in out.getvalue()
    assert main(["eval", str(dataset), "--model", "nobody", "--base-url",
                 "http://127.0.0.1:9/v1", "--out", str(tmp_path / "results")]) == 1
    assert "do not replay" in err.getvalue()
    for said in (out.getvalue(), err.getvalue()):
        assert "permits-01\\x1b[2J\\x1b]0;permits pwned\\x07\\u202eevil" in said
        assert not any(c in said for c in ("\x1b[2J", "\x1b]0", "\u202e"))
