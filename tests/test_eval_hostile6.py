"""Bugs found by the sixth hostile-input round's evaluation and routing probe (a university's
student services, its own dataset and library): each test fails on the code before its
fix."""

from __future__ import annotations

from routine.eval.compare import compare_results, comparison_table
from routine.eval.tasks import TaskResult
from routine.routing.decision import Candidate, Thresholds, decide


def _talk(example: str, success: bool) -> str:
    return TaskResult(
        example_id=example, condition="nl+track", trial=0, scenario="s", routine="drop_course",
        success=success, state_ok=success, facts_ok=True, tool_f1=1.0, outcome="answered",
        answer="Done.", failure=None, tools=[], gold_tools=[], seconds=1.0, prompt_tokens=1,
        completion_tokens=1, protocol="conversation").model_dump_json()


def test_compare_results_pairs_conversations(tmp_path):
    for name, verdicts in (("a", [True, False, False]), ("b", [True, True, True])):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "conversations.jsonl").write_text(
            "".join(_talk(f"talk.{i}", ok) + "\n" for i, ok in enumerate(verdicts)))
    (row,) = compare_results(tmp_path / "a", tmp_path / "b")  # "holds no records" before
    assert row.talks_a.n == 3 and round(row.talks_a.rate, 3) == 0.333
    assert row.talks_b.rate == 1.0 and round(row.talks_gain.gain, 3) == 0.667
    assert "conversation success" in comparison_table([row])


def test_an_exact_tie_between_two_routines_is_asked_not_decided_by_order():
    tied = [Candidate(name="enrol_course", score=1.2325),
            Candidate(name="enrol_course_b", score=1.2325)]
    decision = decide(tied, Thresholds(none_below=0.5, margin=0.0))
    assert decision.kind == "ambiguous" and "tied" in decision.reason
    apart = [Candidate(name="enrol_course", score=1.3), tied[1]]
    assert decide(apart, Thresholds(none_below=0.5, margin=0.0)).kind == "routine"


def test_a_model_playing_the_user_is_told_its_change_of_mind_and_its_words():
    import asyncio

    from routine.eval.conversations import ModelUser
    from routine.eval.users import UserProfile
    from routine.models.testing import FunctionModel
    from routine.run.conversation import Reply
    from routine.run.trace import RunTrace

    prompts: list[str] = []

    def user_model(request):
        prompts.append(request.messages[0].content)
        return "ok"

    profile = UserProfile(facts={"phone": "555-1111"}, says={"phone": "my phone is {value}"},
                          changes={"phone": "555-2222"})
    user = ModelUser(profile, FunctionModel(user_model))

    def waiting(kind: str) -> Reply:
        trace = RunTrace.model_validate({"run_id": "r", "outcome": "waiting", "waiting": {
            "kind": kind, "step_id": "change", "message": "Change your phone to 555-1111?"}})
        return Reply(text="Change your phone to 555-1111?", status="waiting", trace=trace)

    asyncio.run(user.reply(waiting("confirmation")))
    asyncio.run(user.reply(waiting("confirmation")))
    assert "say no, and that you meant" in prompts[0] and "555-2222" in prompts[0]
    assert "my phone is 555-1111" in prompts[0]  # its own words (only facts before)
    assert "say yes" in prompts[1] and "my phone is 555-2222" in prompts[1]


def test_routine_route_says_when_the_routine_it_picks_would_not_run(tmp_path, monkeypatch,
                                                                      capsys):
    from routine.cli.commands import main

    (tmp_path / "fees.py").write_text(
        "from routine import tool\n\n@tool\ndef refund_fee(student_id: int) -> str:\n"
        "    \"\"\"Refund a student's fee.\"\"\"\n    return 'refunded'\n")
    (tmp_path / "routine.toml").write_text('[toolsets]\nfees = "fees"\n')
    library = tmp_path / "routines"
    library.mkdir()
    for name, tool in (("refund_fees", "refund_everything"), ("refund_one", "refund_fee")):
        (library / f"{name}.yaml").write_text(
            f"name: {name}\ndescription: Refund the library fees a student paid twice by "
            f"mistake ({name}).\ntoolsets: [fees]\ninputs:\n  student_id: {{type: integer, "
            "description: the student}\nsteps:\n  - {id: refund, name: Refund, description: "
            f"Refund., tool: {tool}, args: {{student_id: \"${{inputs.student_id}}\"}}}}\n"
            "  - {id: done, name: Answer, description: Say it., finish: true}\n")
    (library / "refund_one.yaml").write_text(
        (library / "refund_one.yaml").read_text().replace(
            "Refund the library fees a student paid twice by mistake",
            "Refund one course fee"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ROUTINE_PROJECT", raising=False)
    code = main(["route", "refund the library fees I paid twice by mistake", "--library",
                 str(library), "--router", "lexical", "--none-below", "0"])
    captured = capsys.readouterr()
    assert "refund_fees" in captured.out  # the pick, as before
    assert code == 1 and "refund_fees would not run" in captured.err  # exit 0 before
    assert "unknown tool 'refund_everything'" in captured.err


def _shop(tmp_path, **template):
    from routine.eval.dataset import Domain, Template
    from tests.shop import CANCEL

    (tmp_path / "routines").mkdir(exist_ok=True)
    (tmp_path / "routines" / "cancel.yaml").write_text(CANCEL)
    fields = {"id": "cancel.t", "scenario": "orders", "split": "test",
              "routine": "cancel_with_refund", "count": 1,
              "sample": lambda deps, rng: {"email": "ana@example.com", "order_id": 7,
                                           "reason": "ordered it by mistake"},
              "answer": lambda values, outputs: ("Order 7 is cancelled.", ["7"]),
              "phrasings": ["Cancel order {order_id} for {email}: {reason}."], **template}
    return Domain(name="shop", toolsets=["tests.shop:shop"], routines_dir="routines",
                  root=tmp_path, templates=[Template(**fields)])


def _build_error(domain) -> str:
    import pytest

    from routine.errors import DatasetError
    from tests.test_conversation_protocol import build

    with pytest.raises(DatasetError) as caught:
        build(domain)
    return str(caught.value)


def test_a_decline_whose_message_cannot_state_the_required_facts_is_a_build_error(tmp_path):
    from routine.eval.dataset import UserSpec

    text = _build_error(_shop(  # the user says no: the routine's own message ends the run
        tmp_path, phrasings=["Cancel an order for {email}."],
        user=UserSpec(holds=["order_id", "reason"], confirms=False),
        answer=lambda values, outputs: ("Order 7 is cancelled; 25.0 refunded.", ["7", "25"])))
    assert "cancel.t" in text and "'25'" in text and "writes itself" in text


def test_a_phrasing_that_states_a_held_value_is_a_build_error(tmp_path):
    from routine.eval.dataset import UserSpec

    text = _build_error(_shop(tmp_path, user=UserSpec(holds=["order_id", "reason"])))
    assert "states order_id, reason" in text and "holds back" in text


def test_template_mistakes_name_the_function_to_fix(tmp_path):
    text = _build_error(_shop(tmp_path, sample=lambda deps, rng: {
        "email": "ana@example.com", "order_id": 7}, phrasings=["Cancel order {order_id}."]))
    assert "sample() returned no value for the required input(s) reason" in text
    other = tmp_path / "other"
    other.mkdir()
    text = _build_error(_shop(other, answer=lambda values, outputs: (
        f"Order {outputs['cancel_it']}", [])))
    assert "answer(values, outputs) looked up 'cancel_it'" in text and "cancel" in text


def test_an_approver_that_says_true_approves():
    from routine import Agent, load_routine_text
    from routine.models.testing import ScriptedModel, call
    from tests.test_conversation_hostile6 import OFFICE, TAKE_FEE, uni

    agent = Agent(load_routine_text(TAKE_FEE, "fee.yaml"), [uni],
                  ScriptedModel([call("take_payment", student_id=1001, amount=20.0)]),
                  approver=lambda request: True)
    trace = agent.run("charge 20 to 1001", inputs={"student_id": 1001, "amount": 20.0})
    assert OFFICE[-1].payments == [(1001, 20.0)]  # refused before: "returned bool"
    assert trace.answer == "Paid 20.0." and trace.tool_calls[0].approval.by == "approver"
