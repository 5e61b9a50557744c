"""The conversation protocol: gold conversations from the oracle, a simulated user, and the
verdicts a conversation adds (no question for what was said, no write without a yes)."""

from __future__ import annotations

import asyncio
import json

import pytest

from routine.eval.conditions import CONDITIONS
from routine.eval.conversations import ScriptedUser, run_conversation
from routine.eval.dataset import Domain, Template, UserSpec, _build_from, load_dataset, seed_snapshot
from routine.eval.players import ConversationOracle
from routine.models.testing import FunctionModel, call
from routine.run.settings import RunSettings
from tests.conftest import ROOT
from tests.shop import CANCEL


def sample(deps, rng):
    return {"email": "ana@example.com", "order_id": 7, "reason": "ordered it by mistake"}


def answer(values, outputs):
    if "cancel" in outputs:
        return "Order 7 is cancelled; 25.0 will be refunded.", ["7", "25"]
    return "Nothing was changed: order 7 stays as it is.", ["7"]


@pytest.fixture
def domain(tmp_path):
    (tmp_path / "routines").mkdir()
    (tmp_path / "routines" / "cancel.yaml").write_text(CANCEL)
    says = {"order_id": "order {value}"}
    return Domain(
        name="shop", toolsets=["tests.shop:shop"], routines_dir="routines", root=tmp_path,
        templates=[
            Template(id="cancel.yes", scenario="orders", split="test",
                     routine="cancel_with_refund", count=1, sample=sample, answer=answer,
                     phrasings=["I want to cancel an order. My email is {email}."],
                     user=UserSpec(holds=["order_id", "reason"], says=says)),
            Template(id="cancel.no", scenario="orders", split="test",
                     routine="cancel_with_refund", count=1, sample=sample, answer=answer,
                     phrasings=["Cancel something for me please, I'm {email}."],
                     user=UserSpec(holds=["order_id", "reason"], says=says,
                                   confirms=False)),
        ])


def build(domain):
    async def go():
        registry = domain.registry()
        routines = domain.routines()
        async with registry.session() as contexts:
            examples = await _build_from(domain, registry, routines, contexts["shop"].deps)
        return examples, registry, {n: r.routine for n, r in routines.items()}, \
            await seed_snapshot(domain, registry)
    return asyncio.run(go())


def test_gold_conversations_hold_back_what_the_user_gives_later(domain):
    (yes, no), _, _, _ = build(domain)
    assert yes.inputs == {"email": "ana@example.com"}
    assert yes.user is not None and yes.user.facts == {"order_id": 7,
                                                       "reason": "ordered it by mistake"}
    assert [c.name for c in yes.calls][-2:] == ["cancel_order", "refund"] and yes.changes_state
    assert no.user is not None and not no.user.confirms
    assert "cancel_order" not in [c.name for c in no.calls] and not no.changes_state


def run(example, model, domain, registry, routines, seed, user=None):
    return asyncio.run(run_conversation(
        example, routines, registry, model, CONDITIONS["nl+track"], 0, RunSettings(),
        domain, seed, user))


def test_the_oracle_passes_every_gold_conversation(domain):
    examples, registry, routines, seed = build(domain)
    for example in examples:
        assert example.user is not None
        oracle = ConversationOracle({**example.inputs, **example.user.facts})
        result = run(example, oracle, domain, registry, routines, seed)
        assert result.success, (example.id, result)
        assert (result.questions, result.redundant_questions, result.writes_without_yes) == \
            (1, 0, 0)
        assert result.user_turns == 3  # the first message, the order, the yes (or no)


def test_asking_for_what_was_said_and_writing_without_a_yes_fail_the_task(domain):
    examples, registry, routines, seed = build(domain)
    yes = examples[0]
    full = {**yes.inputs, **yes.user.facts}

    def forgetful(request):  # reads nothing from the user: asks again for all of it
        if request.guide is not None and request.guide.label == "inputs":
            return json.dumps({n: None for n in request.guide.schema["properties"]})
        return "nothing"

    result = run(yes.model_copy(update={"inputs": full}), FunctionModel(forgetful), domain,
                 registry, routines, seed)
    assert result.redundant_questions == 3 and not result.success  # asked 3 times, in vain

    class Pushover(ScriptedUser):  # a user whose reply to the confirmation is not a yes
        async def reply(self, reply):
            if reply.waiting_for == "confirmation":
                return "hmm, what would that cost?"
            return await super().reply(reply)

    oracle = ConversationOracle(full)
    result = run(yes, oracle, domain, registry, routines, seed, Pushover(yes.user))
    assert result.writes_without_yes == 0 and not result.state_ok  # not a yes: nothing ran
    assert result.answer == "Nothing was changed: order 7 stays as it is."


def test_a_write_out_of_order_still_waits_for_the_yes(domain):
    examples, registry, routines, seed = build(domain)
    yes = examples[0]
    full = {**yes.inputs, **yes.user.facts}

    def hasty(request):  # reads the values, then cancels at once, skipping the lookups
        if request.guide is not None and request.guide.label == "inputs":
            return json.dumps({n: full.get(n) for n in request.guide.schema["properties"]})
        return call("cancel_order", order_id=7, reason="ordered it by mistake")

    class Declines(ScriptedUser):
        async def reply(self, reply):
            assert reply.waiting_for != "confirmation" or "cancel" in reply.text.lower()
            return "no" if reply.waiting_for == "confirmation" else await super().reply(reply)

    result = run(yes, FunctionModel(hasty), domain, registry, routines, seed, Declines(yes.user))
    assert result.writes_without_yes == 0 and "cancel_order" not in result.tools
    assert any(c.tool == "cancel_order" and c.error for c in result.calls)


def test_routine_eval_runs_the_conversation_protocol_and_reports_it(domain, tmp_path,
                                                                    monkeypatch, caplog):
    from routine.eval import runner
    from routine.eval.config import EvalConfig
    from routine.eval.dataset import build_dataset, write_dataset

    folder = tmp_path / "data"
    folder.mkdir()
    write_dataset(build_dataset(domain), folder)
    examples, _, _, _ = build(domain)
    full = {}
    for e in examples:
        full |= {**e.inputs, **e.user.facts}
    monkeypatch.setattr(runner, "load_domain", lambda path, project=None: domain)
    config = EvalConfig(dataset=folder, out=tmp_path / "out", conditions=["none", "nl+track"],
                        protocols=["conversation"])
    summary = asyncio.run(runner.run_evaluation(config, ConversationOracle(full)))
    # `none` shows no routine: said, not skipped silently
    assert any("not run under none" in r.getMessage() for r in caplog.records)
    talk = summary.conditions["nl+track"].conversation
    assert talk is not None and talk.tasks == 2 and (talk.success.k, talk.success.n) == (2, 2)
    assert talk.writes_without_yes == 0 and talk.redundant_questions == 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Conversations" in report and "| nl+track | 2 | 100.0%" in report
    assert "No step or task samples here" in report and "| step accuracy" not in report
    # report.html had no conversation table at all (report.md's alone had it)
    page = (tmp_path / "out" / "report.html").read_text()
    assert page.startswith("<!doctype html>") and "<h2>Conversations</h2>" in page
    assert "<td>nl+track</td><td>2</td><td>100.0%" in page
    lines = (tmp_path / "out" / "conversations.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["protocol"] == "conversation"
                                   for line in lines)
    with pytest.raises(Exception, match="add --protocols conversation"):
        asyncio.run(runner.run_evaluation(config.model_copy(update={
            "protocols": ["task"], "out": tmp_path / "out2"}), ConversationOracle(full)))


def test_a_wrong_identity_first_takes_the_fail_over_path_in_gold_and_in_the_run(domain):
    def sample_wrong(deps, rng):
        return {**sample(deps, rng), "wrong_email": "zed@example.com", "name": "Ana Lima",
                "zip": "1000"}

    domain.templates = [Template(
        id="cancel.wrong", scenario="orders", split="test", routine="cancel_with_refund",
        count=1, sample=sample_wrong, answer=answer,
        phrasings=["Please cancel an order for me. My email is {wrong_email}."],
        user=UserSpec(holds=["order_id", "reason", "name", "zip"], first={"email": "wrong_email"},
                      says={"order_id": "order {value}", "zip": "zip {value}"}))]
    (example,), registry, routines, seed = build(domain)
    assert example.inputs["email"] == "zed@example.com"  # what the first message says
    assert [c.name for c in example.calls][:3] == ["find_by_email", "find_by_name", "get_order"]
    assert example.calls[0].result is None  # the failed lookup is part of the gold path
    oracle = ConversationOracle({**example.inputs, **example.user.facts},
                                first={"email": "zed@example.com"})
    result = run(example, oracle, domain, registry, routines, seed)
    assert result.success and result.questions == 2 and result.redundant_questions == 0


def test_gold_conversations_replay(domain):
    from routine.eval.dataset import build_dataset, replay

    examples = build_dataset(domain)
    assert replay(examples, domain) == {e.id: [] for e in examples}
    broken = examples[0].model_copy(update={"end_state": "0" * 64})
    assert replay([broken], domain)[broken.id][0].startswith("end state differs")


def test_a_user_who_changes_their_mind_is_asked_again_and_the_new_value_counts(domain,
                                                                             tmp_path):
    changing = CANCEL.replace("    on_decline: kept", "    on_decline: ask_order").replace(
        "    fills: [order_id, reason]\n", "    fills: [order_id, reason]\n    max_visits: 2\n")
    (domain.root / "routines" / "cancel.yaml").write_text(changing)

    def sample_two(deps, rng):
        return {**sample(deps, rng), "other_order": 9}

    def answer_two(values, outputs):
        return "Order 9 is cancelled; 5.0 will be refunded.", ["9"]

    domain.templates = [Template(
        id="cancel.changes", scenario="orders", split="test", routine="cancel_with_refund",
        count=1, sample=sample_two, answer=answer_two,
        phrasings=["I want to cancel an order. My email is {email}."],
        user=UserSpec(holds=["order_id", "reason"], changes={"order_id": "other_order"},
                      says={"order_id": "order {value}"}))]
    (example,), registry, routines, seed = build(domain)
    assert example.user.facts["order_id"] == 7 and example.user.changes == {"order_id": 9}
    assert [c.arguments for c in example.calls if c.name == "cancel_order"] == [
        {"order_id": 9, "reason": "ordered it by mistake"}]  # only the order they meant
    oracle = ConversationOracle({**example.inputs, **example.user.facts, "order_id": 9},
                                first={"order_id": 7}, answer=example.answer)
    result = run(example, oracle, domain, registry, routines, seed)
    # the "no, I meant order 9" is read: not asked again, the reason kept
    assert result.success and result.questions == 1 and result.writes_without_yes == 0
    assert result.user_turns == 4  # request, order 7 and why, "no, I meant order 9", yes


def test_retail_has_users_who_change_their_mind_and_gold_writes_what_they_meant():
    examples = [e for e in load_dataset(ROOT / "eval" / "datasets" / "retail")
                if e.template.startswith("talk.address.changes_mind")]
    assert {e.split for e in examples} == {"train", "test"}  # split by template
    for e in examples:
        meant = e.user.changes["address"]
        assert meant != e.inputs["address"] and e.inputs["address"] in e.query
        updates = [c.arguments for c in e.calls if c.name == "update_shipping_address"]
        assert updates == [{"order_id": e.inputs["order_id"], "address": meant}]
