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
