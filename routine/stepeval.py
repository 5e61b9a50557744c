"""Step accuracy, the Routine paper's protocol.

One sample per gold step: the gold history up to that step (teacher forcing)
plus that step's exact prompt under a condition (no routine, the routine in
natural language or JSON, with or without step tracking, with a distractor
routine), the tool list shuffled per sample with a fixed seed (switchable off so
servers can reuse their prompt cache). The model's reply is scored in layers by
:mod:`routine.scoring`. The answer step counts too: the model must call
``finish`` (the text of the answer is judged by the task protocol).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from .dataset import GoldExample
from .errors import ModelRequestError
from .memory import VariableMemory
from .model import Model, ModelReply
from .parsing import CallParseError, parse_reply
from .planner import Planner, finish_tool_spec
from .scoring import ArgMode, ExpectedCall, score_calls
from .spec import Routine
from .tools import FINISH_TOOL, ToolRegistry, result_text
from .tracking import StepTracker

__all__ = ["Condition", "CONDITIONS", "StepSample", "StepResult", "build_step_samples",
           "pick_distractors", "run_step_sample"]


@dataclass(frozen=True)
class Condition:
    """How the routine is given to the model."""

    name: str
    routine_format: Literal["nl", "json", "none"]
    step_tracking: bool
    distractors: int = 0
    description: str = ""


CONDITIONS = {c.name: c for c in [
    Condition("none", "none", False, 0, "no routine: tools only"),
    Condition("nl", "nl", False, 0, "routine in natural language (the paper's)"),
    Condition("json", "json", False, 0, "routine as JSON (the paper's)"),
    Condition("nl+track", "nl", True, 0, "routine in natural language + step tracking"),
    Condition("nl+distractor", "nl", False, 1, "routine + one unrelated routine in the prompt"),
]}


class StepSample(BaseModel):
    """One step to predict: the messages up to it and the gold call."""

    id: str
    example_id: str
    scenario: str
    routine: str | None
    step: int
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    expected: dict[str, Any]  # {"name": ..., "arguments": {arg: [acceptable values]}}


class StepResult(BaseModel):
    """A scored step sample."""

    sample_id: str
    example_id: str
    condition: str
    scenario: str
    routine: str | None
    step: int
    expected_tool: str
    output: list[tuple[str, dict[str, Any]]] | None
    text: str
    correct: bool
    layer: str | None
    error: str
    tool_f1: float
    arg_match: float
    seconds: float
    prompt_tokens: int
    completion_tokens: int


def _defaults(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v["default"] for k, v in schema.get("properties", {}).items() if "default" in v}


def pick_distractors(routine: Routine, routines: dict[str, Routine], count: int,
                     seed: int = 0) -> list[Routine]:
    """``count`` other routines to show beside ``routine``.

    Fixed per routine and seed, not per query: every prompt of one routine then
    starts the same way, so a server's prompt cache serves them all."""
    if count == 0:
        return []
    rng = random.Random(f"{seed}:{routine.name}")
    return [routines[n] for n in rng.sample(sorted(n for n in routines if n != routine.name),
                                            count)]


def build_step_samples(examples: list[GoldExample], routines: dict[str, Routine],
                       registry: ToolRegistry, condition: Condition, *, seed: int = 0,
                       shuffle_tools: bool = True) -> list[StepSample]:
    """Every step of every routine example, as the model would see it under ``condition``."""
    planner = Planner(condition.routine_format, condition.step_tracking)
    all_tools = [t.openai_spec() for t in registry] + [finish_tool_spec()]
    samples = []
    for example in examples:
        if example.kind != "routine" or example.routine is None:
            continue
        routine = routines[example.routine]
        others = pick_distractors(routine, routines, condition.distractors, seed)
        if others and random.Random(f"{seed}:{routine.name}:order").random() < 0.5:
            # the target is not always listed first
            system = planner.system_prompt(others[0], None, [routine, *others[1:]])
        else:
            system = planner.system_prompt(routine, None, others)
        history: list[dict[str, Any]] = [{"role": "system", "content": system},
                                         {"role": "user", "content": example.query}]
        tracker = StepTracker(routine, {}, use_defaults=False)
        memory = VariableMemory()
        for index in range(len(example.calls) + 1):
            messages = list(history)
            state = planner.state_prompt(tracker, memory)
            if state:
                messages.append({"role": "system", "content": state})
            tools = list(all_tools)
            if shuffle_tools:
                random.Random(f"{seed}:{example.id}:{index}").shuffle(tools)
            if index < len(example.calls):
                gold = example.calls[index]
                tool = registry.get(gold.name)
                expected = ExpectedCall.exact(gold.name, gold.arguments,
                                              _defaults(tool.parameters) if tool else {})
            else:
                expected = ExpectedCall(FINISH_TOOL, {"answer": ["<any>"]})
            samples.append(StepSample(
                id=f"{example.id}#{index}", example_id=example.id, scenario=example.scenario,
                routine=example.routine, step=index, messages=messages, tools=tools,
                expected={"name": expected.name, "arguments": expected.arguments}))
            if index == len(example.calls):
                break
            gold = example.calls[index]
            call_id = f"call_{index}"
            history.append({"role": "assistant", "content": "", "tool_calls": [
                {"id": call_id, "type": "function",
                 "function": {"name": gold.name, "arguments": json.dumps(gold.arguments)}}]})
            text = result_text(gold.result)
            if memory.is_long(text):
                text = memory.shown(memory.store(gold.result, text, gold.name))
            history.append({"role": "tool", "tool_call_id": call_id, "name": gold.name,
                            "content": text})
            tracker.record(gold.name, gold.result)
    return samples


async def run_step_sample(sample: StepSample, condition: str, model: Model,
                          schemas: dict[str, dict[str, Any]], modes: dict[str, ArgMode],
                          **sampling: Any) -> StepResult:
    """Ask the model for one step and score its reply."""
    started = time.perf_counter()
    failed = ""
    try:
        reply = await model.complete(sample.messages, sample.tools, **sampling)
    except ModelRequestError as exc:  # e.g. the prompt does not fit the context: a failure
        reply, failed = ModelReply(), f"model request failed: {exc}"
    seconds = time.perf_counter() - started
    output: list[tuple[str, dict[str, Any]]] | None
    try:
        if failed:
            raise CallParseError(failed)
        parsed = parse_reply(reply.content, reply.tool_calls)
        if parsed.calls:
            output = [(c.name, c.arguments) for c in parsed.calls]
        elif parsed.text:  # the executor takes plain text as the answer: so does the scorer
            output = [(FINISH_TOOL, {"answer": parsed.text})]
        else:
            output = None
    except CallParseError:
        output = None
    expected = ExpectedCall(sample.expected["name"], sample.expected["arguments"])
    score = score_calls(output, [expected], schemas,
                        modes={f"{FINISH_TOOL}.answer": "ignore", **modes})
    return StepResult(
        sample_id=sample.id, example_id=sample.example_id, condition=condition,
        scenario=sample.scenario, routine=sample.routine, step=sample.step,
        expected_tool=expected.name, output=output, text=reply.content[:2000],
        correct=score.correct, layer=score.layer, error=failed or score.error,
        tool_f1=score.tool_f1,
        arg_match=score.arg_match, seconds=seconds, prompt_tokens=reply.usage.prompt_tokens,
        completion_tokens=reply.usage.completion_tokens)
