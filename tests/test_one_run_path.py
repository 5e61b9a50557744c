"""One run path: what the step protocol shows a model is what a live run sends; the gold
data is made by the executor itself; and the gold trajectories pass their own checks."""

from __future__ import annotations

import asyncio

import pytest

from routine.eval.conditions import CONDITIONS
from routine.eval.conversations import run_conversation
from routine.eval.dataset import load_dataset, load_domain, seed_snapshot
from routine.eval.players import ConversationOracle, GoldPlayer
from routine.eval.steps import build_step_samples
from routine.eval.tasks import run_task
from routine.models.messages import SystemMessage
from routine.models.testing import ScriptedModel, text_call
from routine.run.settings import RunSettings

from .conftest import ROOT

DOMAINS = ["hr", "retail"]


def _domain(name: str):
    domain = load_domain(ROOT / "eval" / "datasets" / name)
    routines = {n: loaded.routine for n, loaded in domain.routines().items()}
    return domain, domain.registry(), routines



@pytest.mark.parametrize("name", DOMAINS)
@pytest.mark.parametrize("condition", [c for c in CONDITIONS if not CONDITIONS[c].routed])
# (a routed condition picks the routine per task: the task protocol only)
def test_step_samples_are_what_a_live_run_sends(name, condition):
    """Every step of every gold example: the sample's messages, tools and guide equal the
    request a live run of the task protocol makes at that step, with a model that writes
    its calls as text (as the embedded models do) instead of the gold player's structured
    calls."""
    domain, registry, routines = _domain(name)
    examples = [e for e in load_dataset(ROOT / "eval" / "datasets" / name)
                if e.kind == "routine" and e.user is None]  # (conversations: below)
    samples = build_step_samples(examples, routines, registry, CONDITIONS[condition],
                                 shuffle_tools=False)
    by_example: dict[str, list] = {}
    for sample in samples:
        by_example.setdefault(sample.example_id, []).append(sample)
    assert len(by_example) == len(examples)

    async def live(example):
        model = ScriptedModel([text_call(c.name, **c.arguments) for c in example.calls]
                              + [text_call("finish", answer=example.answer)],
                              inputs=example.inputs)
        result = await run_task(example, routines, registry, model, CONDITIONS[condition], 0,
                                RunSettings(max_steps=50), domain, seed)
        model.assert_complete()
        return result, model.requests

    seed = asyncio.run(seed_snapshot(domain, registry))
    for example in examples:
        result, requests = asyncio.run(live(example))
        assert result.success, (example.id, result)
        mine = by_example[example.id]
        assert len(mine) == len(requests) == len(example.calls) + 1
        for sample, request in zip(mine, requests, strict=True):
            assert sample.messages == request.messages, (example.id, sample.step)
            assert sample.tools == request.tools, (example.id, sample.step)
            assert sample.guide == request.guide, (example.id, sample.step)
        if condition == "none":
            assert all(r.guide is None for r in requests)  # nothing of the routine leaks


def test_named_outputs_reach_the_step_samples():
    """The drift that started this: a step's named output (``output: policy_text``) is in
    the live run's state prompt, so it must be in the step sample's too."""
    domain, registry, routines = _domain("hr")
    examples = [e for e in load_dataset(ROOT / "eval" / "datasets" / "hr")
                if e.routine == "policy_question"]
    assert examples
    samples = build_step_samples(examples[:1], routines, registry, CONDITIONS["nl+track"])
    last = samples[-1].messages[-1]
    assert isinstance(last, SystemMessage) and "policy_text" in last.content


@pytest.mark.parametrize("name", DOMAINS)
def test_gold_replay_scores_100_percent_on_every_split(name):
    """The task protocol's ceiling: the gold calls and the gold answer, played through the
    executor and judged like any model's run, pass every example of every split."""
    domain, registry, routines = _domain(name)
    examples = load_dataset(ROOT / "eval" / "datasets" / name)
    assert {e.split for e in examples} == {"train", "dev", "test"}

    async def judge_all() -> list[str]:
        seed = await seed_snapshot(domain, registry)
        failed = []
        for example in examples:
            if example.user is not None:  # a conversation: the conversation protocol's
                oracle = ConversationOracle.for_user(example.inputs, example.user,
                                                     answer=example.answer)
                result = await run_conversation(example, routines, registry, oracle,
                                                CONDITIONS["nl+track"], 0,
                                                RunSettings(max_steps=50), domain, seed)
                if not result.success:
                    failed.append(f"{example.id} (conversation): {result}")
                continue
            player = GoldPlayer([(c.name, c.arguments) for c in example.calls], example.answer,
                                inputs=example.inputs)
            result = await run_task(example, routines, registry, player,
                                    CONDITIONS["nl+track"], 0, RunSettings(max_steps=50),
                                    domain, seed)
            if not result.success:
                failed.append(f"{example.id}: state_ok={result.state_ok} "
                              f"facts_ok={result.facts_ok} {result.state_diff}")
        return failed

    assert asyncio.run(judge_all()) == []


def test_a_wrong_gold_answer_fails_the_ceiling_check():
    """The ceiling check can fail: an answer without its required fact is caught."""
    domain, registry, routines = _domain("retail")
    example = next(e for e in load_dataset(ROOT / "eval" / "datasets" / "retail", ("test",))
                   if e.kind == "routine" and e.required_facts)

    async def judge() -> tuple[bool, bool]:
        seed = await seed_snapshot(domain, registry)
        player = GoldPlayer([(c.name, c.arguments) for c in example.calls], "Done.")
        result = await run_task(example, routines, registry, player, CONDITIONS["nl+track"], 0,
                                RunSettings(), domain, seed)
        return result.state_ok, result.facts_ok

    assert asyncio.run(judge()) == (True, False)
