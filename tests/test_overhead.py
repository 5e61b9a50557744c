"""What the framework itself costs, held as behaviour (the numbers are in benchmarks/):
one HTTP client and connection per model across runs (blocking and async), the routine's
prompt rendered once, no adapter built per result, reused tool threads, and an
``import routine`` that loads no MCP, torch or trl. Also a smoke test of the benchmark's
Routine side against its scripted server (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import contextvars
import json
import subprocess
import sys
import threading

import pytest

from benchmarks.compare import check_run
from benchmarks.frameworks import RoutineRunner
from benchmarks.scripted_server import ScriptServer, serve_in_thread
from benchmarks.tasks import TASKS, CallLog, script
from routine import Agent, OpenAIModel, Planner, ToolRegistry, Toolset, load_routine_text
from routine.errors import RoutineError
from routine.models.base import set_model_requests_allowed
from routine.run.blocking import run_blocking
from routine.tools import core

from .conftest import ROOT

LEAVE = TASKS[0]


@pytest.fixture(autouse=True)
def _allow():
    set_model_requests_allowed(True)  # the scripted server on 127.0.0.1: no model, no network


@pytest.fixture
def server():
    state = ScriptServer(script())
    with serve_in_thread(state) as url:
        yield state, url


def _agent(model: OpenAIModel, task=LEAVE) -> Agent:
    toolset = Toolset("bench")
    for function in task.tools():
        toolset.tool(function)
    return Agent(load_routine_text(task.routine), [toolset], model)


def _answered(trace) -> None:
    assert trace.outcome == "answered", trace.failure
    assert trace.answer == LEAVE.answer


def test_blocking_runs_share_one_client_and_one_connection(server):
    state, url = server
    model = OpenAIModel("scripted", url)
    agent = _agent(model)
    _answered(agent.run(LEAVE.query))
    first = list(model._clients.values())
    _answered(agent.run(LEAVE.query))
    _answered(_agent(model).run(LEAVE.query))  # another agent, the same model
    assert list(model._clients.values()) == first and len(first) == 1
    assert state.requests == 9 and state.connections == 1 and state.failures == []


def test_async_runs_share_one_client_and_one_connection(server):
    state, url = server
    model = OpenAIModel("scripted", url)
    agent = _agent(model)

    async def runs():
        for _ in range(3):
            _answered(await agent.arun(LEAVE.query))
        clients = list(model._clients.values())
        await model.aclose()  # an async application closes its model on its own loop
        return clients

    clients = asyncio.run(runs())
    assert len(clients) == 1
    assert state.requests == 9 and state.connections == 1 and state.failures == []


def test_the_blocking_api_works_inside_a_running_loop(server):
    """A notebook's cell runs in an event loop: ``Agent.run`` no longer calls asyncio.run."""
    _, url = server
    agent = _agent(OpenAIModel("scripted", url))

    async def cell():
        return agent.run(LEAVE.query)

    _answered(asyncio.run(cell()))


def test_run_blocking_carries_context_and_errors():
    variable: contextvars.ContextVar[str] = contextvars.ContextVar("variable", default="unset")
    variable.set("caller's")

    async def read():
        return variable.get(), threading.current_thread().name

    value, thread = run_blocking(read())
    assert value == "caller's" and thread == "routine-blocking-loop"

    async def fail():
        raise LookupError("from the loop")

    with pytest.raises(LookupError, match="from the loop"):
        run_blocking(fail())

    async def nested():
        return run_blocking(asyncio.sleep(0))

    with pytest.raises(RoutineError, match="await the async variant"):
        run_blocking(nested())


def test_the_routine_prompt_is_rendered_once_per_routine(monkeypatch):
    routine = load_routine_text(LEAVE.routine).routine
    rendered = []
    original = Planner._routines_prompt

    def counting(self, shown):
        rendered.append(shown)
        return original(self, shown)

    monkeypatch.setattr(Planner, "_routines_prompt", counting)
    fresh = original(Planner(), (routine,))
    first = Planner().system_prompt(routine, {"employee_name": "Arjun Garcia"})
    second = Planner().system_prompt(routine, {"employee_name": "Chen Okafor"})
    assert len(rendered) == 1
    assert first.startswith(fresh) and second.startswith(fresh)
    assert '- employee_name: "Chen Okafor"' in second and "Arjun" not in second
    Planner(routine_format="json").system_prompt(routine)  # another format: its own render
    other = load_routine_text(LEAVE.routine).routine  # another routine object: rendered anew
    assert Planner().system_prompt(other) == fresh
    assert len(rendered) == 3


def test_results_need_no_adapter_per_call(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a TypeAdapter was built for a result")

    monkeypatch.setattr(core, "TypeAdapter", refuse)
    record = LEAVE.tools()[0]("Arjun Garcia")
    data = core.to_jsonable(record)
    assert data["id"] == 1
    assert json.loads(core.result_text(record, data)) == data == json.loads(
        core.result_text(record))


def test_sync_tools_reuse_their_threads(monkeypatch):
    # a pool of its own: workers left idle by earlier tests would share the jobs
    monkeypatch.setattr(core, "_WORKERS", core._DaemonWorkers())
    threads = []

    @core.tool
    def where() -> str:
        """Say which thread ran this."""
        threads.append(threading.get_ident())
        return "here"

    async def calls():
        for _ in range(5):
            assert await where.invoke({}, None) == "here"

    asyncio.run(calls())
    assert len(threads) == 5 and len(set(threads)) == 1
    assert threading.get_ident() not in threads


def test_import_routine_loads_no_mcp_torch_or_trl():
    code = (
        "import sys, routine\n"
        "from routine.spec import registry_for\n"
        "from routine import load_routine\n"
        "registry, problems = registry_for(load_routine('routines/hr/leave_balance.yaml'))\n"
        "assert not problems, problems\n"
        "heavy = ('mcp', 'torch', 'trl', 'transformers', 'llama_cpp', 'statsmodels',"
        " 'matplotlib')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def run_every_task(runner) -> None:
    """Each benchmark task once through the runner's blocking API, checked like the
    benchmark checks it: the calls the tools got, in order, and the answer."""
    for task in TASKS:
        CallLog.reset()
        check_run(task, runner.run(task), [])
        assert [name for name, _ in CallLog.calls] == [name for name, _ in task.calls]


def test_the_benchmarks_routine_side_against_its_scripted_server(server):
    state, url = server
    runner = RoutineRunner(url)
    run_every_task(runner)

    async def both():
        for task in TASKS:
            CallLog.reset()
            check_run(task, await runner.arun(task), [])
        await runner.model.aclose()

    asyncio.run(both())
    assert state.failures == []
    assert state.requests == 2 * sum(task.requests for task in TASKS)


@pytest.mark.parametrize("floor", ["openai", "httpx"])
def test_the_benchmarks_floors_run_every_task_as_the_script_says(server, floor):
    """The bare loops (the openai client's, and one httpx client posting JSON) do the same
    work, checked alike, in both APIs."""
    from benchmarks.frameworks import make

    state, url = server
    runner = make(floor, url)
    run_every_task(runner)

    async def both():
        for task in TASKS:
            CallLog.reset()
            check_run(task, await runner.arun(task), [])
        await runner.aclose()

    asyncio.run(both())
    assert state.failures == []
    assert state.requests == 2 * sum(task.requests for task in TASKS)


def test_the_scripted_server_refuses_what_the_script_does_not_say(server):
    state, url = server
    model = OpenAIModel("scripted", url, max_retries=0)
    other = Agent(load_routine_text(LEAVE.routine), ToolRegistry(*[
        core.tool_from_function(f) for f in LEAVE.tools()]), model)
    trace = other.run("A question the script does not have")
    assert trace.outcome == "failed" and trace.failure_kind == "request_refused"
    assert state.failures == ["unknown query 'A question the script does not have'"]


def test_the_nomemory_condition_shows_long_results_in_full(server):
    """Variable memory on (nl+track) vs off (nl+track+nomemory, named only when asked for):
    the same run, the long payslip and policy kept under keys or shown whole."""
    from routine.eval.conditions import CONDITIONS, NO_MEMORY
    from routine.eval.config import EvalConfig
    from routine.run import RunSettings

    off = CONDITIONS["nl+track+nomemory"]
    assert off.settings(RunSettings()).memory_threshold == NO_MEMORY
    assert CONDITIONS["nl+track"].settings(RunSettings()).memory_threshold == 600
    assert off.name not in EvalConfig(dataset="d", out="o").conditions
    _, url = server
    task = TASKS[2]
    shown = {}
    for name in ("nl+track", "nl+track+nomemory"):
        model = OpenAIModel("scripted", url)
        toolset = Toolset("bench")
        for function in task.tools():
            toolset.tool(function)
        agent = Agent(load_routine_text(task.routine), [toolset], model,
                      CONDITIONS[name].settings(RunSettings()))
        trace = agent.run(task.query)
        assert trace.outcome == "answered", trace.failure
        shown[name] = [m.content for m in trace.messages if m.role == "tool"]
    assert [len(c) > 600 for c in shown["nl+track+nomemory"]] == [False, True, True]
    assert all("memory_" in c for c in shown["nl+track"][1:])
    assert sum(map(len, shown["nl+track"])) < sum(map(len, shown["nl+track+nomemory"])) / 2
