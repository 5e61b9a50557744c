"""The executor's loop with scripted model doubles and the real SQLite HR tools."""

from __future__ import annotations

import asyncio
import json

import pytest

from routine import Agent, RunContext, RunSettings, ToolRegistry, Toolset, load_routine_text, tool
from routine.errors import ModelRequestsForbidden
from routine.models.client import ModelReply, OpenAIModel
from routine.models.testing import FunctionModel, Request, ScriptedModel, call, text_call
from routine.run.approval import policy
from routine.run.trace import dump_traces, load_traces

from .conftest import ROUTINES

NAME, EMP_ID = "Arjun Garcia", 1  # first seeded employee: 25 annual days, 18 taken
QUERY = f"How many annual leave days does {NAME} have left?"


def leave_agent(model, hr_tools, **settings) -> Agent:
    """The leave-balance agent; in the full prompt style unless told (it offers ``finish``,
    so a script may end a run early with it: the compact style refuses an answer before
    the routine's finish step)."""
    settings.setdefault("prompt_style", "full")
    return Agent(ROUTINES / "hr" / "leave_balance.yaml", hr_tools, model, **settings)


def then_quit(*replies) -> FunctionModel:
    """Replays ``replies``, then calls ``finish`` at every turn: refused in the compact style
    before the routine's finish step, until the run fails (for tests that read requests)."""
    queue = list(replies)
    return FunctionModel(lambda request: queue.pop(0) if queue else call("finish", answer="x"))


def test_three_step_chain_runs_tools_on_real_database(hr_tools):
    model = ScriptedModel([
        call("find_employee", name=NAME),
        call("get_leave_balance", employee_id=EMP_ID, leave_type="annual"),
        call("finish", answer="7 of 25 days left"),
    ])
    trace = leave_agent(model, hr_tools).run(QUERY)
    model.assert_complete()
    assert trace.outcome == "answered" and trace.answer == "7 of 25 days left"
    assert trace.tool_sequence == ["find_employee", "get_leave_balance"]
    assert [c.step_id for c in trace.tool_calls] == ["find_employee", "check_balance"]
    assert trace.tool_calls[1].result == {"employee_id": 1, "leave_type": "annual",
                                          "entitled": 25.0, "taken": 18.0, "remaining": 7.0}
    assert trace.steps_done == ["find_employee", "check_balance", "answer"]
    # tool results reach the model as tool messages tied to their call ids
    tool_msgs = [m for m in trace.messages if m.role == "tool"]
    assert json.loads(tool_msgs[0].content)["id"] == EMP_ID


@pytest.mark.parametrize("style, expected", [
    ("compact", ['Now step 1: call find_employee with {"name": <the request\'s employee_name>}',
                 'Now step 2: call get_leave_balance with {"employee_id": 1, "leave_type": ',
                 "Now step 3: answer the user in plain text, no tool call."]),
    ("full", ["Current step: Step 1 — Find the employee.",
              "Current step: Step 2 — Check the leave balance.",
              "Call the finish tool now"]),
])
def test_state_prompt_names_current_step_with_known_values(hr_tools, style, expected):
    model = ScriptedModel([
        call("find_employee", name=NAME),
        call("get_leave_balance", employee_id=EMP_ID, leave_type="annual"),
        call("finish", answer="done"),
    ])
    leave_agent(model, hr_tools, prompt_style=style).run(QUERY)
    states = [r.messages[-1] for r in model.requests]
    assert all(m.role == "system" for m in states)
    assert all(e in m.content for e, m in zip(expected, states, strict=True)), states
    # the value produced by step 1 is stated for step 2
    assert ("- employee_id: 1" if style == "full" else '"employee_id": 1,') in states[1].content
    # the system prompt is identical on every request (prompt-cache friendly)
    assert len({r.messages[0].content for r in model.requests}) == 1


def test_step_tracking_off_sends_no_state_prompt(hr_tools):
    model = ScriptedModel([call("find_employee", name=NAME),
                           call("get_leave_balance", employee_id=EMP_ID, leave_type="annual"),
                           call("finish", answer="x")])
    leave_agent(model, hr_tools, step_tracking=False).run(QUERY)
    assert all(r.messages[-1].role != "system" for r in model.requests)
    assert all("Current step" not in m.content for r in model.requests for m in r.messages)


def test_calls_written_as_text_are_recovered(hr_tools):
    model = ScriptedModel([
        text_call("find_employee", name=NAME),
        '```json\n{"name": "get_leave_balance", "arguments": "{\\"employee_id\\": 1}"}\n```',
        '{{"name": "finish", "arguments": {"answer": "7 days"}}}',
    ])
    trace = leave_agent(model, hr_tools).run(QUERY)
    assert trace.outcome == "answered" and trace.answer == "7 days"
    assert trace.tool_sequence == ["find_employee", "get_leave_balance"]
    assert trace.tool_calls[1].arguments == {"employee_id": 1}
    # the history keeps the canonical structured form, not the model's raw text
    assistant = [m for m in trace.messages if m.role == "assistant"][0]
    assert assistant.tool_calls[0].function.name == "find_employee"
    assert assistant.content == ""


def test_invalid_arguments_go_back_to_the_model_then_it_corrects(hr_tools):
    model = ScriptedModel([
        call("find_employee", name=NAME),
        call("get_leave_balance", employee_id="one", leave_type="annual"),
        call("get_leave_balance", employee_id=EMP_ID, leave_type="annual"),
        call("finish", answer="7"),
    ])
    trace = leave_agent(model, hr_tools).run(QUERY)
    assert trace.outcome == "answered"
    bad = trace.tool_calls[1]
    assert bad.error_kind == "invalid_arguments" and "employee_id" in bad.error
    assert trace.turns[1].kind == "retry"
    # the error message is what the model saw next
    assert "Error: invalid arguments for get_leave_balance" in model.requests[2].messages[-2].content


@pytest.mark.parametrize("reply, kind", [
    (call("delete_everything"), "unknown_tool"),
    (call("submit_leave_request", employee_id=1, leave_type="annual",
          start_date="2026-07-01", end_date="2026-07-02"), "not_allowed"),
])
def test_unknown_and_forbidden_tools_are_refused(hr_tools, reply, kind):
    model = ScriptedModel([reply, call("find_employee", name=NAME), call("finish", answer="a")])
    trace = leave_agent(model, hr_tools).run(QUERY)
    assert trace.tool_calls[0].error_kind == kind
    assert trace.tool_calls[0].resolved_arguments is None  # never executed
    assert trace.outcome == "answered"
    # a forbidden tool was not run: the database got no leave request
    assert "submit_leave_request" not in trace.tool_sequence


def test_run_fails_after_max_retries_with_clear_reason(hr_tools):
    model = ScriptedModel(["I think the answer is probably 7."] * 3)
    trace = leave_agent(model, hr_tools, max_retries=2).run(QUERY)
    assert trace.outcome == "failed"
    assert "3 mistakes in a row" in trace.failure and "did not call a tool" in trace.failure
    assert [t.kind for t in trace.turns] == ["retry", "retry", "failed"]


def test_unreadable_call_is_fed_back(hr_tools):
    model = ScriptedModel(['<tool_call>{"name": "find_employee", "arguments": {"name": </tool_call>',
                           call("find_employee", name=NAME), call("finish", answer="x")])
    trace = leave_agent(model, hr_tools).run(QUERY)
    assert trace.turns[0].kind == "retry"
    assert "could not read" in model.requests[1].messages[-2].content
    assert trace.outcome == "answered"


def test_tool_errors_are_data_for_the_model(hr_tools):
    model = ScriptedModel([
        call("find_employee", name="Nobody Atall"),
        call("finish", answer="There is no such employee."),
    ])
    trace = leave_agent(model, hr_tools).run("Leave days of Nobody Atall?")
    first = trace.tool_calls[0]
    assert first.error_kind == "tool_error" and "no employee named" in first.error
    assert trace.outcome == "answered" and trace.turns[0].kind == "tool_calls"
    assert model.requests[1].messages[-2].content.startswith("Error: LookupError")


def test_same_call_in_a_loop_is_stopped(hr_tools):
    model = ScriptedModel([call("find_employee", name=NAME)] * 4 + [call("finish", answer="x")])
    trace = leave_agent(model, hr_tools, max_repeats=2, enforce_steps=False).run(QUERY)
    kinds = [c.error_kind for c in trace.tool_calls]
    assert kinds == [None, None, "repeated", "repeated"]
    assert "already sent find_employee" in trace.tool_calls[2].error
    assert "its result is above" in trace.tool_calls[2].error
    assert trace.outcome == "answered"


def test_max_steps_limits_tool_calls(hr_tools):
    def always_lookup(request: Request) -> ModelReply:
        return call("get_employee", employee_id=len(request.messages))

    agent = Agent(ROUTINES / "hr" / "manager_lookup.yaml", hr_tools,
                  FunctionModel(always_lookup), max_steps=3,
                  enforce_steps=False)  # off: the contract would refuse the call first
    trace = agent.run("Who manages Wei Tanaka?")
    assert trace.outcome == "failed" and "max_steps=3" in trace.failure
    assert len(trace.tool_calls) == 3


def test_our_bugs_raise_instead_of_becoming_messages(hr_tools):
    def broken(request: Request) -> ModelReply:
        raise RuntimeError("bug in a model client")

    with pytest.raises(RuntimeError, match="bug in a model client"):
        leave_agent(FunctionModel(broken), hr_tools).run(QUERY)


def test_real_clients_are_forbidden_in_unit_tests(hr_tools):
    agent = leave_agent(OpenAIModel("m", base_url="http://127.0.0.1:9/v1"), hr_tools)
    with pytest.raises(ModelRequestsForbidden):
        agent.run(QUERY)


# ---------------------------------------------------------------- variable memory
DOC_ROUTINE = """
name: summarise_policy
description: Fetch a policy document and count its words.
inputs:
  topic: {type: string, description: the policy topic}
steps:
  - id: fetch
    name: Fetch
    description: Fetch the policy text.
    tool: fetch_policy
    args: {topic: "${inputs.topic}"}
  - id: count
    name: Count
    description: Count the words of the fetched text.
    tool: count_words
    args: {text: "${steps.fetch.output}"}
  - id: answer
    name: Answer
    description: Report the count.
    finish: true
"""


def doc_tools() -> tuple[ToolRegistry, list[str]]:
    received: list[str] = []

    @tool
    def fetch_policy(topic: str) -> str:
        """Return the full text of a policy."""
        return f"{topic} policy. " + "Employees must follow the rules. " * 60

    @tool
    def count_words(text: str) -> int:
        """Count the words of a text."""
        received.append(text)
        return len(text.split())

    return ToolRegistry(fetch_policy, count_words), received


@pytest.mark.parametrize("style, named", [("compact", 'count_words with {"text": "memory_1"}'),
                                           ("full", '- text: "memory_1"')])
@pytest.mark.parametrize("decoding", ["free", "guided"])
def test_long_results_go_to_variable_memory_and_keys_are_substituted(style, named, decoding):
    registry, received = doc_tools()
    model = ScriptedModel([call("fetch_policy", topic="travel"),
                           call("count_words", text="memory_1"),
                           call("finish", answer="362 words")])
    agent = Agent(load_routine_text(DOC_ROUTINE), registry, model, memory_threshold=200,
                  prompt_style=style, decoding=decoding)
    trace = agent.run("How long is the travel policy?")
    fetch, count = trace.tool_calls
    assert fetch.memory_key == "memory_1"
    assert "stored in variable memory as 'memory_1'" in fetch.result_text
    assert len(fetch.result_text) < 400  # the model saw a preview, not 2,000 characters
    assert received == [fetch.result] and count.result == len(fetch.result.split())
    assert count.arguments == {"text": "memory_1"}  # as the model sent it
    # the state prompt lists the memory key, and step 2's argument by its key (not the
    # 2,000 characters again); the guide fixes the argument to the key too
    state = model.requests[1].messages[-1].content
    assert "memory_1 (" in state and named in state and len(state) < 500
    assert model.requests[1].guide.fixed == {"count_words": {"text": "memory_1"}}


# ---------------------------------------------------------------- branches
def test_branch_is_chosen_by_when_expression(hr_tools):
    model = ScriptedModel([
        call("find_employee", name=NAME),
        call("get_leave_balance", employee_id=EMP_ID, leave_type="annual"),
        call("submit_leave_request", employee_id=EMP_ID, leave_type="annual",
             start_date="2026-06-08", end_date="2026-06-09"),
        call("finish", answer="booked"),
    ], inputs={"start_date": "2026-06-08", "end_date": "2026-06-09"})  # the ask step reads
    agent = Agent(ROUTINES / "hr" / "request_leave.yaml", hr_tools, model,
                  approver=policy(True))  # the booking is confirmed by the approver
    trace = agent.run(f"Book annual leave for {NAME} on 8-9 June 2026.")
    assert trace.outcome == "answered"
    assert trace.branches == {"enough_days": 0}
    assert trace.steps_done == ["ask_dates", "find_employee", "check_balance", "enough_days",
                                "submit", "confirm"]
    assert trace.tool_calls[2].result["days"] == 2.0
    # once the branch was decided, the model was told to submit with the known id
    assert 'Now step 4-1_1: call submit_leave_request with {"employee_id": 1, ' in \
        model.requests[2].messages[-1].content


BRANCH_BY_MODEL = """
name: greet_or_lookup
description: Either look someone up or answer directly.
inputs:
  name: {type: string, description: a name}
steps:
  - id: choose
    name: Choose
    description: Decide what the user wants.
    branch:
      - condition: the user asks about a person
        steps:
          - id: lookup
            name: Look up
            description: Look the person up.
            tool: find_employee
            args: {name: "${inputs.name}"}
      - condition: the user only says hello
        steps:
          - id: hello
            name: Greet
            description: Greet back.
            finish: true
  - id: answer
    name: Answer
    description: Answer with what was found.
    finish: true
"""


def test_branch_without_expressions_follows_the_models_choice(hr_tools):
    model = ScriptedModel([call("find_employee", name=NAME), call("finish", answer="found")])
    agent = Agent(load_routine_text(BRANCH_BY_MODEL), hr_tools, model)
    trace = agent.run(f"Who is {NAME}?")
    first_state = model.requests[0].messages[-1].content
    assert first_state == ("Now step 1: choose:\n- if the user asks about a person: "
                           "find_employee\n- if the user only says hello: finish")
    assert trace.branches == {"choose": 0}
    assert trace.steps_done == ["choose", "lookup", "answer"]


# ---------------------------------------------------------------- limits & async
def test_slow_tool_times_out_and_the_run_goes_on():
    @tool
    async def slow(seconds: float) -> str:
        """Sleep."""
        await asyncio.sleep(seconds)
        return "woke"

    model = ScriptedModel([call("slow", seconds=5), call("slow", seconds=0),
                           call("finish", answer="ok")])
    trace = Agent(None, [slow], model, tool_timeout_s=0.2).run("sleep")
    assert trace.tool_calls[0].error_kind == "timeout"
    assert trace.tool_calls[1].result == "woke"
    assert trace.outcome == "answered"


def test_whole_run_timeout():
    @tool
    async def slow(seconds: float) -> str:
        """Sleep."""
        await asyncio.sleep(seconds)
        return "woke"

    trace = Agent(None, [slow], ScriptedModel([call("slow", seconds=3)]), timeout_s=0.3).run("x")
    assert trace.outcome == "failed" and "timed out" in trace.failure


def test_no_routine_accepts_a_plain_text_answer_and_offers_every_tool(hr_tools):
    model = ScriptedModel([call("find_employee", name=NAME), "Arjun is Head of Engineering."])
    trace = Agent(None, hr_tools, model).run(f"Who is {NAME}?")
    assert trace.outcome == "answered" and trace.answer.startswith("Arjun")
    # the compact style answers in plain text: no finish tool; the full style offers it
    assert set(model.requests[0].tool_names) == set(hr_tools.names())
    assert len(model.requests[0].tool_names) == 25
    assert model.requests[0].messages[0].content.startswith("Use the tools, one tool call")
    model = ScriptedModel([call("find_employee", name=NAME), "Arjun is Head of Engineering."])
    trace = Agent(None, hr_tools, model, prompt_style="full").run(f"Who is {NAME}?")
    assert trace.outcome == "answered"
    assert set(model.requests[0].tool_names) == set(hr_tools.names()) | {"finish"}
    assert "# Routine" not in model.requests[0].messages[0].content


def test_offered_tools_follow_the_routine_unless_all_are_asked_for(hr_tools):
    for offer, expected in (("routine", 2), ("all", 25)):  # no finish: answers are text
        model = then_quit()
        leave_agent(model, hr_tools, offer_tools=offer, prompt_style="compact").run(QUERY)
        assert len(model.requests[0].tools) == expected


def test_runs_never_see_each_others_writes(hr_tools):
    def book() -> ScriptedModel:
        return ScriptedModel([
            call("find_employee", name=NAME),
            call("get_leave_balance", employee_id=EMP_ID, leave_type="annual"),
            call("submit_leave_request", employee_id=EMP_ID, leave_type="annual",
                 start_date="2026-06-01", end_date="2026-06-05"),
            call("finish", answer="booked")],
            inputs={"start_date": "2026-06-01", "end_date": "2026-06-05"})

    agent_path = ROUTINES / "hr" / "request_leave.yaml"
    query = f"book annual leave for {NAME} from 2026-06-01 to 2026-06-05"
    first = Agent(agent_path, hr_tools, book(), approver=policy(True)).run(query)
    second = Agent(agent_path, hr_tools, book(), approver=policy(True)).run(query)
    # each run starts from 18 taken days: 5 more fit (7 left) both times
    assert first.tool_calls[1].result["remaining"] == 7.0
    assert second.tool_calls[1].result["remaining"] == 7.0
    assert second.tool_calls[2].ok


def test_trace_round_trips_through_jsonl(tmp_path, hr_tools):
    model = then_quit(call("find_employee", name=NAME))
    trace = leave_agent(model, hr_tools, prompt_style="compact").run(QUERY, trace_dir=tmp_path)
    again = list(load_traces(tmp_path / "traces.jsonl"))
    assert again == [trace]
    dump_traces([trace], tmp_path / "traces.jsonl")
    assert len(list(load_traces(tmp_path / "traces.jsonl"))) == 2
    assert again[0].settings == RunSettings().model_dump()
    assert again[0].usage.prompt_tokens == 0 and again[0].routine == "leave_balance"


def test_a_torn_or_binary_trace_file_is_said_not_silently_cut(tmp_path, caplog):
    from routine.errors import RoutineError

    path = tmp_path / "t.jsonl"
    path.write_text('{"run_id": "a", "outcome": "answered"}\n{"run_id": "b", "outc')
    assert [t.run_id for t in load_traces(path)] == ["a"]
    assert "t.jsonl:2: a line that was never finished" in caplog.text  # silent before
    path.write_bytes(b"\xff\xfe{}\n")
    with pytest.raises(RoutineError, match="t.jsonl:1: not UTF-8 text"):  # a raw error before
        list(load_traces(path))


def test_inputs_are_typed_and_checked(hr_tools):
    model = ScriptedModel([call("finish", answer="x")])
    trace = leave_agent(model, hr_tools).run(None, {"employee_name": NAME, "leave_type": "sick"})
    assert trace.inputs == {"employee_name": NAME, "leave_type": "sick"}
    assert '- leave_type: "sick"' in model.requests[0].messages[-1].content or \
        "sick" in model.requests[0].messages[0].content
    from routine.errors import RoutineError

    with pytest.raises(RoutineError, match="must be one of"):
        leave_agent(ScriptedModel([]), hr_tools).run(None, {"employee_name": NAME,
                                                            "leave_type": "holiday"})
    with pytest.raises(RoutineError, match="no input 'salary'"):
        leave_agent(ScriptedModel([]), hr_tools).run(QUERY, {"salary": "1"})


def test_toolset_setup_is_entered_once_per_run():
    events: list[str] = []

    class Setup:
        def __enter__(self) -> str:
            events.append("enter")
            return "deps"

        def __exit__(self, *exc: object) -> None:
            events.append("exit")

    ts = Toolset("demo", setup=Setup)

    @ts.tool
    def ping(ctx: RunContext[str]) -> str:
        """Ping."""
        return ctx.deps

    model = ScriptedModel([call("ping"), call("finish", answer="pong")])
    trace = Agent(None, [ts], model).run("ping")
    assert trace.tool_calls[0].result == "deps" and events == ["enter", "exit"]


def test_agent_checks_the_routine_before_running(hr_tools):
    from routine.errors import SpecError

    broken = DOC_ROUTINE  # names tools the HR registry does not have
    with pytest.raises(SpecError, match="unknown tool 'fetch_policy'"):
        Agent(load_routine_text(broken), hr_tools, ScriptedModel([]))


def test_a_failing_call_repeated_is_a_loop_too(hr_tools):
    # the 0.5B model once retried find_employee("Alice Andersen") until max_steps
    model = ScriptedModel([call("find_employee", name="Alice Andersen")] * 6)
    trace = leave_agent(model, hr_tools, max_repeats=2, max_retries=3, max_steps=20).run(QUERY)
    kinds = [c.error_kind for c in trace.tool_calls]
    assert kinds[:2] == ["tool_error", "tool_error"] and set(kinds[2:]) == {"repeated"}
    assert trace.outcome == "failed" and "mistakes in a row" in trace.failure


def test_trace_records_the_end_state_of_the_database(hr_tools):
    def run(replies):
        return leave_agent(ScriptedModel(replies), hr_tools).run(QUERY)

    read_only = run([call("find_employee", name=NAME), call("finish", answer="x")])
    again = run([call("finish", answer="y")])
    assert read_only.end_state["hr"] == again.end_state["hr"] and len(again.end_state["hr"]) == 64
    booked = Agent(ROUTINES / "hr" / "request_leave.yaml", hr_tools, ScriptedModel([
        call("find_employee", name=NAME),
        call("get_leave_balance", employee_id=EMP_ID, leave_type="annual"),
        call("submit_leave_request", employee_id=EMP_ID, leave_type="annual",
             start_date="2026-06-08", end_date="2026-06-08"),
        call("finish", answer="ok")], inputs={"start_date": "2026-06-08",
                                              "end_date": "2026-06-08"}),
        approver=policy(True)).run(f"book annual leave for {NAME} on 2026-06-08")
    assert booked.end_state["hr"] != read_only.end_state["hr"]


def test_other_routines_are_shown_but_not_allowed(hr_tools):
    from routine import load_routine

    other = load_routine(ROUTINES / "hr" / "payslip_lookup.yaml").routine
    model = then_quit(call("get_payslip", employee_id=1, month="2026-05"))
    trace = leave_agent(model, hr_tools, others=[other], prompt_style="compact").run(QUERY)
    system = model.requests[0].messages[0].content
    assert "\n# leave_balance: " in system and "\n# payslip_lookup: " in system
    assert system.startswith("Follow the routine below that fits the request")
    assert trace.tool_calls[0].error_kind == "not_allowed"


def test_input_defaults_are_not_stated_as_facts_when_a_request_may_give_them(hr_tools):
    model = then_quit()
    # a request: it may name another leave type
    leave_agent(model, hr_tools, prompt_style="compact").run(QUERY)
    state = model.requests[0].messages[-1].content
    model = then_quit(call("find_employee", name=NAME))
    leave_agent(model, hr_tools, prompt_style="compact").run(QUERY)
    second = model.requests[1].messages[-1].content
    assert '"leave_type": <the request\'s leave_type, else "annual">}' in second
    model = then_quit(call("find_employee", name=NAME))
    # inputs only: the defaults hold
    leave_agent(model, hr_tools, prompt_style="compact").run(None, {"employee_name": NAME})
    assert '"leave_type": "annual"}' in model.requests[1].messages[-1].content
    assert "Now step 1: " in state
    full = ScriptedModel([call("find_employee", name=NAME), call("finish", answer="x")])
    leave_agent(full, hr_tools, prompt_style="full").run(QUERY)
    second = full.requests[1].messages[-1].content
    assert "- leave_type: take it from the user's request" in second
    assert "if the request does not say, 'annual'" in second


def test_turn_records_are_complete_when_appended_and_messages_typed(hr_tools, tmp_path):
    """on_turn sees each record as it is appended; nothing mends it afterwards (frozen), and
    the trace's messages are typed records that survive the JSONL round trip."""
    from pydantic import ValidationError

    from routine.models.messages import AssistantMessage, SystemMessage, ToolMessage, UserMessage

    model = ScriptedModel([
        "not a call at all",
        call("find_employee", name=NAME),
        call("get_leave_balance", employee_id=EMP_ID, leave_type="annual"),
        call("finish", answer="7 days"),
    ])
    seen = []
    trace = leave_agent(model, hr_tools).run(QUERY, on_turn=lambda t: seen.append(t.model_dump()))
    assert seen == [t.model_dump() for t in trace.turns]
    assert [t["kind"] for t in seen] == ["retry", "tool_calls", "tool_calls", "answer"]
    with pytest.raises(ValidationError):
        trace.turns[0].kind = "answer"  # type: ignore[misc]
    kinds = [type(m) for m in trace.messages]
    assert kinds[:2] == [SystemMessage, UserMessage] and ToolMessage in kinds
    assert AssistantMessage in kinds
    dump_traces([trace], tmp_path / "t.jsonl")
    (again,) = load_traces(tmp_path / "t.jsonl")
    assert again.messages == trace.messages and again.turns == trace.turns
    # the trace rebuilds every request exactly as the model received it
    assert [again.request(i) for i in range(len(again.turns))] == \
        [r.messages for r in model.requests]


def test_arguments_wrapped_in_the_tool_schema_reach_the_tool_unwrapped(hr_tools):
    wrapped = json.dumps({"name": "find_employee", "arguments": {
        "properties": {"name": NAME}, "required": ["name"], "type": "object"}})
    model = ScriptedModel([wrapped, call("get_leave_balance", employee_id=EMP_ID,
                                         leave_type="annual"), call("finish", answer="7")])
    trace = leave_agent(model, hr_tools).run(QUERY)
    assert trace.outcome == "answered" and trace.tool_calls[0].ok
    assert trace.tool_calls[0].arguments == {"name": NAME}


STRUCTURED = """
name: ship_items
description: Ship an order's first item.
inputs:
  street: {type: string, description: the street to ship to}
steps:
  - id: order
    name: Get the order
    description: Look the order up.
    tool: get_first_item
    args: {order_id: 7}
  - id: ship
    name: Ship
    description: Ship that item to the street.
    tool: ship
    args:
      address: {street: "${inputs.street}", note: "for ${inputs.street}"}
      lines: [{sku: "${steps.order.output.sku}", qty: 2}]
  - id: done
    name: Done
    description: Say it shipped.
    finish: true
"""


def _shipping_tools() -> tuple[ToolRegistry, list[dict]]:
    shipped: list[dict] = []

    @tool
    def get_first_item(order_id: int) -> dict[str, str]:
        """The first item of an order."""
        return {"sku": "A-1"}

    @tool
    def ship(address: dict[str, str], lines: list[dict[str, str | int]]) -> str:
        """Ship lines to an address."""
        shipped.append({"address": address, "lines": lines})
        return "shipped"

    return ToolRegistry(get_first_item, ship), shipped


def test_a_reference_inside_a_structured_argument_fixes_that_leaf_not_the_whole_argument():
    """`lines: [{sku: ${steps.order.output.sku}, qty: 2}]` fixes the list with the sku
    filled in (it was read as "lines must be 'A-1'", refusing every right call)."""
    from routine.run.tracking import StepTracker

    registry, shipped = _shipping_tools()
    routine = load_routine_text(STRUCTURED).routine
    tracker = StepTracker(routine, {"street": "Elm St"})
    tracker.record("get_first_item", {"sku": "A-1"})
    by_name = {a.name: a for a in tracker.arguments()}
    assert by_name["lines"].value == [{"sku": "A-1", "qty": 2}] and by_name["lines"].known
    assert [a.name for a in tracker.fixed_arguments(tracker.step)] == ["lines"]  # the
    # address holds text built around a reference: known, but the model may word it
    assert by_name["address"].value == {"street": "Elm St", "note": "for Elm St"}
    assert "sku" in (tracker.contract("ship", {"address": {}, "lines": [{"sku": "B-2",
                                                                         "qty": 2}]}) or "")
    model = ScriptedModel([
        call("get_first_item", order_id=7),
        call("ship", address={"street": "Elm St", "note": "Elm St please"},
             lines=[{"sku": "A-1", "qty": 2}]),
        call("finish", answer="Shipped A-1 to Elm St."),
    ])
    trace = Agent(load_routine_text(STRUCTURED), registry, model).run(
        "Ship my order 7 to Elm St", inputs={"street": "Elm St"})
    model.assert_complete()
    assert trace.outcome == "answered" and [c.error for c in trace.tool_calls] == [None, None]
    assert shipped == [{"address": {"street": "Elm St", "note": "Elm St please"},
                        "lines": [{"sku": "A-1", "qty": 2}]}]


def test_a_structured_argument_waits_for_the_reference_it_needs():
    from routine.run.tracking import StepTracker

    tracker = StepTracker(load_routine_text(STRUCTURED).routine, {"street": "Elm St"})
    tracker.record("get_first_item", {"other": 1})  # no sku in the output
    lines = {a.name: a for a in tracker.arguments()}["lines"]
    assert not lines.known and lines.value is None


def test_an_answer_before_the_finish_step_is_marked_early(hr_tools):
    """Where ``finish`` is offered, the model may answer at any turn (a lookup that finds
    nobody), but the trace says where the routine stood, so a caller or an evaluation can
    tell it from a finished run."""
    early = leave_agent(ScriptedModel([call("finish", answer="I cannot find that person.")]),
                        hr_tools).run(QUERY)
    assert early.outcome == "answered" and early.early_answer == "find_employee"
    # where finish is not offered (the compact style), an answer waits for the steps
    refused = leave_agent(then_quit(), hr_tools, prompt_style="compact").run(QUERY)
    assert refused.outcome == "failed" and refused.failure_kind == "model_mistakes"
    assert refused.tool_calls[0].error_kind == "not_allowed"
    done = leave_agent(ScriptedModel([
        call("find_employee", name=NAME),
        call("get_leave_balance", employee_id=EMP_ID, leave_type="annual"),
        call("finish", answer="7 of 25 days left"),
    ]), hr_tools).run(QUERY)
    assert done.outcome == "answered" and done.early_answer is None


TYPED_INPUTS = """
name: typed
description: Inputs of every type.
inputs:
  n: {type: integer, description: a count, required: false}
  x: {type: number, description: an amount, required: false}
  flag: {type: boolean, description: a flag, required: false}
  items: {type: array, description: some items, required: false}
  extra: {type: object, description: more, required: false}
  email: {type: string, description: an email, required: false}
steps:
  - {id: done, name: Done, description: Answer., finish: true}
"""


@pytest.mark.parametrize("given,wanted", [
    ({"n": "7", "x": "2.5", "flag": "false", "items": "[1, 2]", "extra": '{"a": 1}'},
     {"n": 7, "x": 2.5, "flag": False, "items": [1, 2], "extra": {"a": 1}}),
    ({"n": 3.0, "flag": True, "email": "a@b.c", "x": None}, {"n": 3, "flag": True,
                                                            "email": "a@b.c"}),
])
def test_input_values_become_their_declared_types(given, wanted):
    from routine.run.inputs import coerce_inputs

    assert coerce_inputs(load_routine_text(TYPED_INPUTS, "t.yaml").routine, given) == wanted


@pytest.mark.parametrize("given,message", [
    ({"flag": "maybe"}, "input 'flag' must be a boolean (e.g. true or false), got 'maybe'"),
    ({"items": "[1,2"}, "input 'items' must be an array"),  # stayed the text '[1,2' before
    ({"x": "nan"}, "input 'x' must be a number"),
    ({"x": "1e999"}, "input 'x' must be a number"),
    ({"email": 5}, "input 'email' must be a string"),  # reached the tool as 5 before
    ({"n": 2.5}, "input 'n' must be an integer"),
    ({"n": True}, "input 'n' must be an integer"),
])
def test_an_input_value_of_the_wrong_type_is_one_clear_error(given, message):
    from routine.errors import RoutineError

    agent = Agent(load_routine_text(TYPED_INPUTS, "t.yaml"), ToolRegistry(),
                  ScriptedModel([]))
    with pytest.raises(RoutineError) as info:
        agent.run("go", inputs=given)
    assert str(info.value).startswith(message)


BROKEN_WHEN = """
name: broken_when
description: A branch whose expression fails at run time.
inputs:
  n: {type: integer, description: a number}
steps:
  - id: look
    name: Look it up
    description: Look the number up.
    tool: lookup
    args: {n: "${inputs.n}"}
  - id: decide
    name: Decide
    description: Decide.
    branch:
      - condition: big
        when: "steps.look.output.value / 0 > 1"
        steps:
          - {id: big, name: Big, description: Say big., finish: true}
      - condition: small
        steps:
          - {id: small, name: Small, description: Say small., finish: true}
"""


@tool
def lookup(n: int) -> dict:
    """Look a number up."""
    return {"value": n}


def test_a_when_that_raises_at_run_time_is_in_the_trace():
    model = ScriptedModel([call("lookup", n=4), call("finish", answer="big")])
    trace = Agent(load_routine_text(BROKEN_WHEN, "b.yaml"), ToolRegistry(lookup), model).run(
        "is 4 big?", inputs={"n": 4})
    assert trace.outcome == "answered"  # the model chose, as before, but no longer silently
    assert trace.branch_errors == {
        "decide": "`steps.look.output.value / 0 > 1`: ZeroDivisionError: division by zero"}


def test_the_compact_style_never_tells_the_model_to_call_a_finish_tool_it_does_not_offer():
    routine = load_routine_text(BROKEN_WHEN, "b.yaml")
    model = ScriptedModel(["Sorry, I cannot look that up.", call("lookup", n=4),
                           "4 is small."])  # plain text at the branch's finish option
    trace = Agent(routine, ToolRegistry(lookup), model, RunSettings(prompt_style="compact")).run(
        "is 4 big?", inputs={"n": 4})
    assert "finish" not in [t["function"]["name"] for t in model.requests[0].tools]
    feedback = trace.turns[0].feedback or ""
    assert "finish tool" not in feedback and "answer comes at the routine's finish step" in \
        feedback and "call lookup" in feedback
    # at a branch whose option answers at once, a plain-text answer is that answer
    assert (trace.outcome, trace.answer) == ("answered", "4 is small.")


MEMORY_KEY_VALUE = """
name: note_after_report
description: Fetch a long report, then file a note.
inputs:
  note: {type: string, description: the note}
steps:
  - {id: report, name: Report, description: Fetch the report., tool: long_report}
  - id: file
    name: File the note
    description: File the note.
    tool: file_note
    args: {text: "${inputs.note}"}
  - {id: done, name: Done, description: Say it is filed., finish: true}
"""


@tool
def long_report() -> str:
    """A long report."""
    return "A" * 50_000


@tool
def file_note(text: str) -> str:
    """File a note."""
    return f"filed {text[:20]}"


def test_a_value_the_routine_fixes_is_never_swapped_for_a_stored_result():
    model = ScriptedModel([call("long_report"), call("file_note", text="memory_1"),
                           call("finish", answer="filed")])
    trace = Agent(load_routine_text(MEMORY_KEY_VALUE, "m.yaml"),
                  ToolRegistry(long_report, file_note), model).run(
        "file my note", inputs={"note": "memory_1"})
    report, filed = trace.tool_calls
    assert report.memory_key == "memory_1"  # the long result is memory_1 ...
    assert filed.ok and filed.result == "filed memory_1"  # ... and the user's note stays text


def test_a_value_quoted_in_feedback_is_cut_short():
    huge = "B" * 100_000
    model = ScriptedModel([call("long_report"), call("file_note", text=huge),
                           call("file_note", text="hello"), call("finish", answer="filed")])
    trace = Agent(load_routine_text(MEMORY_KEY_VALUE, "m.yaml"),
                  ToolRegistry(long_report, file_note), model).run(
        "file my note", inputs={"note": "hello"})
    refused = trace.tool_calls[1]
    assert refused.error_kind == "off_routine" and "100,002 characters" in refused.error
    assert len(refused.error) < 1_000 and trace.outcome == "answered"


@tool
def broken_lookup(n: int) -> dict:
    """A lookup whose system is down."""
    raise ConnectionError("the claims system is down")


def test_under_the_compact_style_the_model_can_give_up_after_a_tool_error():
    routine = load_routine_text(BROKEN_WHEN.replace("tool: lookup", "tool: broken_lookup"),
                                "b.yaml")
    model = ScriptedModel([call("broken_lookup", n=4), "Sorry, the system is down.",
                           "Sorry, the system is down."])  # told once to call a tool
    trace = Agent(routine, ToolRegistry(broken_lookup), model,
                  RunSettings(prompt_style="compact")).run("is 4 big?", inputs={"n": 4})
    # refused four times before, ending model_mistakes: the full style's finish call was
    # accepted, and compact does not offer finish
    assert (trace.outcome, trace.answer) == ("answered", "Sorry, the system is down.")
    assert trace.early_answer == "look" and [t.kind for t in trace.turns] == [
        "tool_calls", "retry", "answer"]


def test_a_refused_call_repeated_is_not_said_to_have_a_result():
    model = ScriptedModel([call("long_report")] + [call("file_note", text="wrong")] * 3
                          + [call("file_note", text="hello"), call("finish", answer="filed")])
    trace = Agent(load_routine_text(MEMORY_KEY_VALUE, "m.yaml"),
                  ToolRegistry(long_report, file_note), model, RunSettings(max_repeats=2)).run(
        "file my note", inputs={"note": "hello"})
    third = trace.tool_calls[3]
    assert third.error_kind == "repeated"
    # "its result is above" before, of a call that never ran
    assert "refused each time" in third.error and "result is above" not in third.error
