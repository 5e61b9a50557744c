"""`routine distill`: SFT examples whose prompts are what the executor sends, from the
train split only, right trajectories only, without duplicates."""

from __future__ import annotations

import asyncio
import json

import pytest

from routine.cli.commands import main
from routine.eval.conditions import CONDITIONS
from routine.eval.dataset import load_dataset, load_domain, seed_snapshot
from routine.eval.tasks import run_task
from routine.finetune.distill import distill, load_sft
from routine.models.messages import to_wire
from routine.models.testing import ScriptedModel, text_call
from routine.run.executor import Agent
from routine.run.settings import RunSettings

from .conftest import ROOT

RETAIL = ROOT / "eval" / "datasets" / "retail"


@pytest.fixture(scope="module")
def retail_rows():
    return asyncio.run(distill(RETAIL, variants=("routine", "compact", "distilled")))


def test_prompts_are_what_a_live_run_sends(retail_rows):
    rows, _ = retail_rows
    domain = load_domain(RETAIL)
    registry = domain.registry()
    routines = {n: loaded.routine for n, loaded in domain.routines().items()}
    examples = [e for e in load_dataset(RETAIL, ("train",))
                if e.kind == "routine" and e.user is None]
    seed = asyncio.run(seed_snapshot(domain, registry))
    by_id = {r.id: r for r in rows}
    checked = 0
    for example in examples[::4]:
        for variant, condition in (("routine", "nl+track"), ("compact", "nl+track+compact"),
                                   ("distilled", "none")):
            model = ScriptedModel([text_call(c.name, **c.arguments) for c in example.calls]
                                  + [text_call("finish", answer=example.answer)],
                                  inputs=example.inputs)
            result = asyncio.run(run_task(example, routines, registry, model,
                                          CONDITIONS[condition], 0, RunSettings(), domain,
                                          seed))
            assert result.success
            if variant != "distilled":  # one row per step: its prompt is that request
                for step, request in enumerate(model.requests):
                    row = by_id[f"{example.id}#{step}:{variant}"]
                    assert row.prompt == to_wire(request.messages)
                    assert json.loads(row.tools) == request.tools
                    checked += 1
                continue
            # merged turns: each request is the row's conversation up to a trained reply
            last = len(model.requests) - 1
            row = by_id[f"{example.id}#0-{last}:{variant}"]
            assert row.turns == len(model.requests) == len(row.trained())
            messages = row.messages
            for request, index in zip(model.requests, row.trained(), strict=True):
                assert messages[:index] == to_wire(request.messages)
                assert json.loads(row.tools) == request.tools
                checked += 1
    assert checked > 40


def test_only_train_templates_and_the_variants_differ_as_they_should(retail_rows):
    rows, counts = retail_rows
    examples = load_dataset(RETAIL)
    held_out = {e.template for e in examples if e.split != "train"}
    assert rows and not {r.template for r in rows} & held_out
    assert {r.split for r in rows} == {"train"}
    kept = counts["kept_gold_routine"]
    assert kept == counts["kept_gold_compact"] == counts["kept_gold_distilled"] > 0
    for row in rows:
        system = row.prompt[0]["content"]
        state = json.dumps(row.prompt[1:])
        if row.variant == "routine":
            assert "# Routine:" in system and row.prompt[-1]["role"] == "system"
            assert "Current step" in row.prompt[-1]["content"]
        elif row.variant == "compact":
            assert f"# {row.routine}:" in system and row.prompt[-1]["content"].startswith(
                "Now step ")
        else:
            assert "# Routine:" not in system and f"# {row.routine}:" not in system
            assert "Current step" not in state and "Now step" not in state
        replies = [row.messages[i] for i in row.trained()]
        assert len(replies) == row.turns
        if row.variant == "compact" and "tool_calls" not in replies[-1]:  # the answer step
            assert replies[-1]["content"].strip() and '"finish"' not in row.tools
            assert "answer the user in plain text" in row.prompt[-1]["content"]
        else:
            assert all(len(r["tool_calls"]) == 1 for r in replies)
        if row.variant != "distilled":
            assert row.turns == 1 and row.completion == replies
        else:  # merged: the whole trajectory in one row, the tool results between replies
            assert row.turns > 1 and {m["role"] for m in row.completion} == {"assistant", "tool"}
    last = [r for r in rows if "tool_calls" in r.completion[-1]
            and r.completion[-1]["tool_calls"][0]["function"]["name"] == "finish"]
    assert len(last) == counts["kept_gold_routine"] + counts["kept_gold_distilled"]
    answers = [r for r in rows if r.variant == "compact" and "tool_calls" not in r.completion[-1]]
    assert len(answers) == counts["kept_gold_compact"]  # one plain-text answer a trajectory
    distilled = [r for r in rows if r.variant == "distilled"]
    assert len(distilled) == counts["kept_gold_distilled"]  # one row per trajectory


def test_no_merge_keeps_one_row_per_step(retail_rows):
    merged, _ = retail_rows
    steps, _ = asyncio.run(distill(RETAIL, variants=("distilled",), merge=False))
    assert all(r.turns == 1 for r in steps)
    assert len(steps) == sum(r.turns for r in merged if r.variant == "distilled")
    by_id = {r.id: r for r in steps}
    row = next(r for r in merged if r.variant == "distilled")
    for step, index in enumerate(row.trained()):  # the same prompts and replies
        one = by_id[f"{row.example_id}#{step}:distilled"]
        assert one.prompt == row.messages[:index] and one.completion == [row.messages[index]]


def test_traces_are_judged_and_duplicates_dropped(tmp_path):
    domain = load_domain(RETAIL)
    registry = domain.registry()
    routines = {n: loaded.routine for n, loaded in domain.routines().items()}
    example = next(e for e in load_dataset(RETAIL, ("train",))
                   if e.kind == "routine" and e.required_facts)

    def trace_with(answer: str):
        model = ScriptedModel([text_call(c.name, **c.arguments) for c in example.calls]
                              + [text_call("finish", answer=answer)])
        return Agent(routines[example.routine], registry, model).run(example.query)

    right, wrong = trace_with(example.answer), trace_with("Done.")
    failed = right.model_copy(update={"outcome": "failed", "answer": None})
    rows, counts = asyncio.run(distill(RETAIL, gold=False, traces=[right, wrong, failed],
                                       variants=("routine",)))
    assert counts == {"traces_without_a_gold_query": 0, "kept_trace_routine": 1,
                      "dropped_trace_routine": 1,
                      "traces_not_answered": 1}  # before: counted nowhere
    assert {r.source for r in rows} == {"trace"} and len(rows) == len(example.calls) + 1
    both, counts = asyncio.run(distill(RETAIL, traces=[right], variants=("routine",)))
    assert counts["duplicates"] == len(example.calls) + 1  # the trace repeats the gold one
    assert len({r.id for r in both}) == len(both)


def test_cli_writes_the_data(tmp_path, capsys):
    out = tmp_path / "sft.jsonl"
    assert main(["distill", str(RETAIL), "--out", str(out), "--variants", "distilled"]) == 0
    rows = load_sft(out)
    assert rows and {r.variant for r in rows} == {"distilled"}
    assert '"examples"' in capsys.readouterr().out
    assert main(["distill", str(RETAIL), "--out", str(out), "--variants", "magic"]) == 2
    assert main(["distill", str(RETAIL), "--out", str(out), "--no-count-tokens"]) == 0
    assert {r.variant for r in load_sft(out)} == {"compact", "distilled"}  # the default


def test_token_totals_with_the_embedded_vocabulary(retail_rows):
    pytest.importorskip("llama_cpp")
    from routine.finetune.distill import sft_stats
    from routine.models.embedded import ChatTokenizer

    rows, _ = retail_rows
    same_steps = [r for r in rows if r.variant == "routine"][:30]
    same_steps += [r for r in rows if r.variant == "distilled"][:30]
    stats = sft_stats(same_steps, ChatTokenizer())
    routine, distilled = stats["routine"], stats["distilled"]
    assert routine["prompt_tokens"] > distilled["prompt_tokens"] > 0  # the routine costs tokens
    assert 0 < routine["completion_tokens"] < routine["prompt_tokens"] / 10
    assert routine["trained_tokens"] == routine["completion_tokens"]  # one reply a row
    assert routine["tokens"] == routine["prompt_tokens"] + routine["trained_tokens"]
    # merged rows: the tool results between replies are in the rows, not trained
    assert 0 < distilled["trained_tokens"] < distilled["completion_tokens"]
    assert distilled["replies"] > distilled["examples"]
    # one call's tokens: its JSON text plus the template's markup, not the whole prompt
    tokenizer = ChatTokenizer()
    one = rows[0]
    asked = tokenizer.count(one.prompt, json.loads(one.tools), generation_prompt=True)
    assert 5 < tokenizer.count(one.prompt + one.completion, json.loads(one.tools)) - asked < 200


def test_offer_tools_routine_trains_on_what_a_default_live_run_sends():
    """The compact variant is the prompt style live runs use, but distill offered every
    tool of the domain (as ``routine eval`` does) where ``routine run``/``Agent`` offer only
    the routine's by default: an adapter served there saw other tools than it trained with.
    ``offer_tools="routine"``: each row is the request a plain Agent with default settings
    sends, tools included."""
    from routine.eval.dataset import run_with_snapshot

    rows, _ = asyncio.run(distill(RETAIL, variants=("compact",), offer_tools="routine"))
    everything, _ = asyncio.run(distill(RETAIL, variants=("compact",)))
    domain = load_domain(RETAIL)
    registry = domain.registry()
    routines = {n: loaded.routine for n, loaded in domain.routines().items()}
    examples = [e for e in load_dataset(RETAIL, ("train",))
                if e.kind == "routine" and e.user is None]
    by_id = {r.id: r for r in rows}
    checked = 0
    for example in examples[::5]:
        routine = routines[example.routine]
        model = ScriptedModel([text_call(c.name, **c.arguments) for c in example.calls]
                              + [text_call("finish", answer=example.answer)],
                              inputs=example.inputs)
        live = Agent(routine, registry, model, RunSettings())  # what `routine run` builds
        asyncio.run(run_with_snapshot(live, domain.deps_toolset, example.query))
        for step, request in enumerate(model.requests[:len(example.calls)]):
            row = by_id[f"{example.id}#{step}:compact"]
            assert row.prompt == to_wire(request.messages)
            offered = {t["function"]["name"] for t in json.loads(row.tools)}
            assert offered == set(routine.tool_names()) & set(registry.names())
            assert json.loads(row.tools) == request.tools
            checked += 1
    assert checked > 10
    # the default still offers every tool (the README's adapters trained on that)
    assert all(len(json.loads(r.tools)) == len(registry.names()) for r in everything)
    with pytest.raises(Exception, match="offer_tools"):
        asyncio.run(distill(RETAIL, variants=("compact",), offer_tools="some"))  # type: ignore[arg-type]
