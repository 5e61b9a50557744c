"""The trace viewer: one self-contained page per run (steps, turns, prompts, replies, calls,
timing, tokens, failures), an index, everything escaped; checked in a real headless
browser when one is installed."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from routine import Agent
from routine.cli import main
from routine.models.base import ModelReply
from routine.models.messages import Usage
from routine.models.testing import ScriptedModel, call
from routine.run.trace import dump_traces
from routine.run.viewer import run_view, write_views
from routine.spec.loader import load_routine

from .conftest import ROUTINES

LEAVE = ROUTINES / "hr" / "leave_balance.yaml"
NAME, EMP_ID = "Arjun Garcia", 1
HOSTILE = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>"


BLOCKS = {"p", "div", "li", "dt", "dd", "pre", "h1", "h2", "h3", "h4", "section", "tr", "td",
          "th", "summary", "details", "nav", "table", "br", "button"}


class _Text(HTMLParser):
    """The page's text and its elements, as a browser would build them (no script runs)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.tags: list[str] = []
        self.policy = ""
        self._skip = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)
        self._skip = tag in ("style", "script")
        if tag in BLOCKS:
            self.parts.append(" ")
        found = dict(attrs)
        if tag == "meta" and found.get("http-equiv") == "Content-Security-Policy":
            self.policy = found.get("content") or ""

    def handle_endtag(self, tag: str) -> None:
        self._skip = False

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def parsed(path: Path) -> _Text:
    page = _Text()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def text_of(path: Path) -> str:
    return " ".join("".join(parsed(path).parts).split())


def used(reply: ModelReply, prompt: int, completion: int) -> ModelReply:
    reply.usage = Usage(prompt_tokens=prompt, completion_tokens=completion)
    return reply


def hostile_run(hr_tools):
    """A run with a failing tool call, a reply that is no call (fed back), hostile text from
    the user and the model, then an answer."""
    model = ScriptedModel([
        used(call("find_employee", name=f"Nobody {HOSTILE}"), 310, 12),
        used(ModelReply(content=f"{HOSTILE} I think I am done"), 350, 20),
        used(call("find_employee", name=NAME), 390, 11),
        used(call("get_leave_balance", employee_id=EMP_ID, leave_type="annual"), 450, 19),
        used(call("finish", answer=f"7 of 25 days left {HOSTILE}"), 520, 15),
    ])
    return Agent(LEAVE, hr_tools, model).run(f"How many annual days does {NAME} have? {HOSTILE}")


def failed_run(hr_tools):
    model = ScriptedModel([call("delete_everything")] * 2)
    return Agent(LEAVE, hr_tools, model, max_retries=1).run(f"Leave days of {NAME}?")


def test_a_run_page_shows_steps_turns_prompts_replies_calls_and_failures(hr_tools, tmp_path):
    trace = hostile_run(hr_tools)
    assert trace.outcome == "answered"
    routine = load_routine(LEAVE).routine
    index, page = write_views([trace], tmp_path, {routine.name: routine}, "traces.jsonl")
    text = text_of(page)
    # the routine's steps, done, with the turns that were on each
    assert "1 Find the employee · find_employee · done · a call failed · turns 1, 2, 3" in text
    assert "2 Check the leave balance · get_leave_balance · done · turns 4" in text
    assert "3 Answer · finish · done · turns 5" in text
    # each turn: kind, step, timing, tokens; the prompt; the raw reply; the calls
    assert "Turn 2 · retry · step 1 Find the employee" in text
    assert "350+20 tokens" in text and "Turn 4 · tool_calls · step 2 Check the leave balance" in text
    assert "Prompt the model saw: 9 messages (3 new since the last request)" in text
    assert 'Now step 2: call get_leave_balance with {"employee_id": 1, ' in text  # state
    assert f"Raw reply {HOSTILE} I think I am done" in text
    assert f'Raw reply finish({{"answer": "7 of 25 days left {HOSTILE}"}}) [call_finish]' in text
    assert "Fed back to the model: Your reply did not call a tool." in text
    assert f"✗ find_employee(name=\"Nobody {HOSTILE}\")" in text
    assert f'tool_error: LookupError: no employee named "Nobody {HOSTILE}"' in text
    assert "✓ get_leave_balance(employee_id=1, leave_type=\"annual\")" in text
    assert "completed step check_balance" in text and '"remaining": 7.0' in text
    assert f"Answer: 7 of 25 days left {HOSTILE}" in text
    assert "tokens 2020 prompt + 77 completion" in text
    # the prompt of turn 4 is exactly what the model was sent
    view = run_view(trace, routine)
    assert view.turns[3].request == trace.request(3) and view.turns[1].retry
    # the index links to the page
    assert "traces.jsonl" in text_of(index) and 'href="run-001.html"' in index.read_text()


def test_everything_from_a_trace_is_escaped(hr_tools, tmp_path):
    trace = hostile_run(hr_tools)
    trace.routine = f"evil{HOSTILE}"  # even names: a trace file is data from elsewhere
    index, page = write_views([trace], tmp_path)
    for path in (index, page):
        html = path.read_text(encoding="utf-8")
        tags = parsed(path).tags
        assert tags.count("script") == 1 and "img" not in tags  # only the page's own script
        assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in html
        assert parsed(path).policy.startswith("default-src 'none';")  # nothing loads


def test_failures_are_highlighted_and_the_index_lists_every_run(hr_tools, tmp_path):
    good, bad = hostile_run(hr_tools), failed_run(hr_tools)
    assert bad.outcome == "failed"
    index, first, second = write_views([good, bad], tmp_path, source="runs.jsonl")
    text = text_of(second)
    assert "Failed (model_mistakes): the model made 2 mistakes in a row" in text
    assert "unknown_tool: unknown tool 'delete_everything'" in text
    assert 'class="turn fail"' in second.read_text() and 'class="banner fail"' in \
        second.read_text()
    listing = text_of(index)
    assert "2 runs · 1 failed" in listing
    assert "answered" in listing and "failed model_mistakes" in listing


def test_without_the_routine_the_visited_steps_are_shown(hr_tools, tmp_path):
    trace = failed_run(hr_tools)
    _, page = write_views([trace], tmp_path)
    text = text_of(page)
    assert "The routine's definition was not found" in text
    assert "find_employee · a call failed · turns 1, 2" in text


def test_cli_writes_the_pages_of_a_trace_dir(hr_tools, tmp_path, capsys):
    dump_traces([hostile_run(hr_tools), failed_run(hr_tools)], tmp_path / "traces.jsonl")
    assert main(["trace", "view", str(tmp_path), "--routines", str(LEAVE)]) == 0
    folder = tmp_path / "traces-view"
    assert sorted(p.name for p in folder.iterdir()) == ["index.html", "run-001.html",
                                                        "run-002.html"]
    assert capsys.readouterr().out.strip() == str(folder / "index.html")
    assert "2 Check the leave balance" in text_of(folder / "run-001.html")
    assert main(["trace", "view", str(tmp_path / "traces.jsonl"), "--out",
                 str(tmp_path / "v")]) == 0
    assert (tmp_path / "v" / "run-002.html").is_file()


def test_cli_says_which_line_is_not_a_trace(tmp_path, capsys, caplog):
    bad = tmp_path / "traces.jsonl"
    bad.write_text('{"run_id": "a"}\n{"turns": 3}\n' + "[" * 5000 + "]" * 5000 + "\n")
    # the runs that are there are shown (before: one bad line hid every run, and JSON
    # nested deeply was a RecursionError); each bad line is named and left out
    assert main(["trace", "view", str(bad)]) == 0
    said = " ".join((capsys.readouterr().err + caplog.text).split())
    assert f"{bad}:2: not a run trace (run_id: Field required)" in said
    assert f"{bad}:3: not a run trace" in said and "1 run ->" in said
    assert main(["trace", "view", str(tmp_path / "missing")]) == 2
    assert "no such trace file" in capsys.readouterr().err
    bad.write_text("")
    assert main(["trace", "view", str(bad)]) == 2
    assert "no runs in this file" in capsys.readouterr().err


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)")
def test_the_page_in_a_real_headless_browser(hr_tools, tmp_path):
    trace = hostile_run(hr_tools)
    routine = load_routine(LEAVE).routine
    _, page = write_views([trace], tmp_path / "view", {routine.name: routine})
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'p'}",
             "--window-size=1280,2000"]
    shot = tmp_path / "page.png"
    done = subprocess.run([*flags, f"--screenshot={shot}", page.as_uri()], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    done = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert 'data-script="ran"' in dom  # the page's own script ran under its CSP
    dumped = tmp_path / "dom.html"
    dumped.write_text(dom, encoding="utf-8")
    tags = parsed(dumped).tags
    assert tags.count("script") == 1 and "img" not in tags  # the hostile text stayed text
    text = text_of(dumped)
    assert "leave_balance" in text and "answered" in text
    assert "2 Check the leave balance · get_leave_balance · done · turns 4" in text
    assert "Turn 2 · retry" in text and f"Raw reply {HOSTILE} I think I am done" in text
    assert "<title>" not in dom or "pwned" not in dom.split("<title>")[1].split("</title>")[0]


def test_a_conversation_page_shows_questions_confirmations_and_the_routines_own_steps(tmp_path):
    from routine import load_routine_text
    from routine.tools.core import ToolRegistry
    from tests.shop import CANCEL, shop
    from tests.test_conversation import FIND_TO_CANCEL, extracted

    routine = load_routine_text(CANCEL, "cancel.yaml").routine
    model = ScriptedModel([extracted(order_id=None, reason=None),
                           extracted(order_id=7, reason="ordered it by mistake"),
                           *FIND_TO_CANCEL, call("refund", order_id=7, amount=25.0)])
    with Agent(routine, ToolRegistry(shop), model).conversation() as chat:
        chat.send("I want to cancel an order. My email is ana@example.com")
        chat.send("Order 7, I ordered it by mistake")
        trace = chat.send("Yes please, go ahead").trace
    assert trace.outcome == "answered"
    _, page = write_views([trace], tmp_path, {routine.name: routine})
    text = text_of(page)
    assert "then the user Order 7, I ordered it by mistake then the user Yes please" in text
    assert "· ask ·" in text and "· confirm ·" in text and "· message ·" in text
    assert "The model read the inputs from the user's words" in text
    assert '"reason": "ordered it by mistake"' in text
    assert "No model request: the routine took this step itself." in text
    assert "Said to the user Which order would you like to cancel, and why?" in text
    assert "approval: approved by user (Yes please, go ahead)" in text
    assert "Answer: Order 7 is cancelled; 25.0 will be refunded." in text


@pytest.mark.parametrize("domain", ["hr", "retail"])
def test_every_kind_of_gold_run_renders(domain, tmp_path):
    """The oracle's runs of one example per template (branches, loops, refusals, writes)
    render, each call on its page."""
    import asyncio

    from routine.eval.dataset import gold_run, load_dataset, load_domain, seed_snapshot

    folder = ROUTINES.parent / "eval" / "datasets" / domain
    loaded = load_domain(folder)
    examples = list({e.template: e for e in load_dataset(folder, ("test",))
                     if e.user is None}.values())
    registry, routines = loaded.registry(), loaded.routines()

    async def runs():
        seed = await seed_snapshot(loaded, registry)
        return [(await gold_run(e, loaded, registry, routines, seed))[0] for e in examples]

    traces = asyncio.run(runs())
    assert len(traces) >= 5
    written = write_views(traces, tmp_path, {n: r.routine for n, r in routines.items()})
    for trace, page in zip(traces, written[1:], strict=True):
        text = text_of(page)
        for record in trace.tool_calls:
            assert f"{record.name}(" in text
        assert f"{len(trace.turns)} · tool calls" in text
    assert f"{len(traces)} runs" in text_of(written[0])


def test_a_call_that_waited_for_the_user_s_yes_is_not_counted_as_failed(tmp_path):
    from routine import Toolset, load_routine_text

    shop = Toolset("shop")

    @shop.tool
    def refund(order: int) -> str:
        """Refund an order."""
        return "refunded"

    loaded = load_routine_text("""
name: refund
description: Refund an order after a yes.
toolsets: [shop]
inputs: {order: {type: integer, description: the order}}
steps:
  - {id: pay, name: Refund, description: Refund it., tool: refund,
     args: {order: "${inputs.order}"}, confirm: true}
  - {id: done, name: Done, description: Say so., finish: true, message: Refunded.}
""", "refund.yaml")
    agent = Agent(loaded, [shop], ScriptedModel([call("refund", order=7)]))
    with agent.conversation(inputs={"order": 7}) as chat:
        assert chat.send("Refund order 7").status == "waiting"
        assert chat.send("yes").status == "answered"
    trace = chat.trace
    assert [c.error_kind for c in trace.tool_calls] == ["awaiting_confirmation", None]
    _, page = write_views([trace], tmp_path, {"refund": loaded.routine})
    text = text_of(page)
    assert "(0 failed)" in text and "a call failed" not in text


def test_bidi_overrides_and_controls_from_a_trace_are_written_out_in_the_page():
    from routine.run.trace import RunTrace
    from routine.run.viewer import render_run, run_view

    trace = RunTrace(run_id="r", routine="pay", outcome="answered",
                     answer="IBAN DE\u202e9876 paid\x1b[2J")
    page = render_run(run_view(trace))
    assert "\u202e" not in page and "\x1b" not in page  # before: the browser reversed it
    assert "DE\\u202e9876" in page


def test_a_huge_tool_result_makes_a_page_of_bounded_size(tmp_path):
    """A 3,000,000-character tool result made a 3.07 MB run page (every value shown whole,
    here the call that passed it on), and a larger one a page a browser struggles to open.
    Each value on the page is its first 20,000
    characters and how many more there are; the trace file keeps it whole."""
    from routine import tool
    from routine.run.viewer import SHOWN_CHARS

    big = "x" * 3_000_000

    @tool
    def read_log(name: str) -> str:
        """Read a log file."""
        return big

    @tool
    def count(text: str) -> int:
        """Count characters."""
        return len(text)

    model = ScriptedModel([call("read_log", name="a"), call("count", text=big), "done"])
    trace = Agent(None, [read_log, count], model).run("read log a and count it")
    assert trace.tool_calls[0].result == big  # the record keeps it
    _, page = write_views([trace], tmp_path)
    size = page.stat().st_size
    assert size < 20 * SHOWN_CHARS, size  # was 3,070,710 bytes
    text = page.read_text(encoding="utf-8")
    assert "2,980,0" in text and "more characters (the whole value is in the trace file)" in text
