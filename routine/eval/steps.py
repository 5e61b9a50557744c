"""Step accuracy, the Routine paper's protocol.

One sample per gold step: the gold history up to that step (teacher forcing)
plus that step's exact prompt under a condition (no routine, the routine in
natural language or JSON, with or without step tracking, with a distractor
routine). The samples are not rebuilt by hand: the executor runs each gold
example with a model double that plays the gold calls
(:class:`~routine.eval.players.GoldPlayer`), and every request it is sent IS a
sample — the messages, tools and turn guide a live run sends at that step. The
tool list is then shuffled per sample with a fixed seed (switchable off so
servers can reuse their prompt cache). The model's reply is scored in layers by
:mod:`routine.eval.scoring`. The answer step counts too: the model must call
``finish`` (the text of the answer is judged by the task protocol).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

from pydantic import BaseModel

from ..errors import DatasetError, ModelRequestError
from ..models.base import Model, ModelReply, TurnGuide
from ..models.messages import Message
from ..models.parsing import CallParseError, parse_reply
from ..run.approval import policy
from ..run.settings import RunSettings
from ..spec.format import Routine
from ..spec.validate import value_json_type
from ..tools.core import FINISH_TOOL, ToolRegistry
from .conditions import CONDITIONS, Condition, pick_distractors
from .dataset import ORACLE_SETTINGS, GoldExample
from .players import GoldPlayer
from .scoring import ArgMode, ExpectedCall, score_calls

_log = logging.getLogger(__name__)

__all__ = ["Condition", "CONDITIONS", "StepSample", "StepResult", "build_step_samples",
           "step_samples", "pick_distractors", "run_step_sample"]


class StepSample(BaseModel):
    """One step to predict: the request a live run sends at it, and the gold call."""

    id: str
    example_id: str
    scenario: str
    routine: str | None
    step: int
    messages: list[Message]
    tools: list[dict[str, Any]]
    guide: TurnGuide | None = None
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


def _off_type(arguments: dict[str, Any], schema: dict[str, Any]) -> str:
    """The first gold argument whose JSON type is not its parameter's one type (``'3'`` for
    an integer), said as ``days '3' (text) for an integer``; "" when there is none."""
    for name, value in arguments.items():
        kind = schema.get("properties", {}).get(name, {}).get("type")
        given = value_json_type(value)
        if value is None or not isinstance(kind, str) or given == kind or \
                (given, kind) == ("integer", "number"):
            continue
        said = "text" if given == "string" else given
        return f"{name} {value!r} ({said}) for {'an' if kind[0] in 'aeiou' else 'a'} {kind}"
    return ""


def _defaults(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v["default"] for k, v in schema.get("properties", {}).items() if "default" in v}


async def step_samples(examples: list[GoldExample], routines: dict[str, Routine],
                       registry: ToolRegistry, condition: Condition, *, seed: int = 0,
                       shuffle_tools: bool = True, settings: RunSettings = ORACLE_SETTINGS,
                       strict: bool = True) -> list[StepSample]:
    """Every step of every routine example, as a live run under ``condition`` sends it.

    ``strict=False`` (routines other than the dataset's own, e.g. drafted ones): the gold
    calls run whatever the routine allows (no step contract), and an example whose gold
    calls still do not replay under its routine is left out (logged) instead of failing."""
    samples = []
    if not strict:
        settings = settings.model_copy(update={"enforce_steps": False})
    skipped = []
    for example in examples:
        if example.kind != "routine" or example.routine is None or example.user is not None:
            continue
        try:
            samples += await _example_samples(example, routines, registry, condition, seed,
                                              shuffle_tools, settings)
        except DatasetError as exc:
            if strict:
                raise
            skipped.append(str(exc).split("; rebuild")[0])
    if skipped:
        _log.warning(f"{len(skipped)} example(s) left out of the step samples of "
                     f"{condition.name}: their gold calls do not replay under the given "
                     f"routines: {'; '.join(skipped[:5])}" + (" ..." if len(skipped) > 5 else ""))
    return samples


async def _example_samples(example: GoldExample, routines: dict[str, Routine],
                           registry: ToolRegistry, condition: Condition, seed: int,
                           shuffle_tools: bool, settings: RunSettings) -> list[StepSample]:
    """One example's step samples (DatasetError: its gold calls do not replay)."""
    samples = []
    player = GoldPlayer([(c.name, c.arguments) for c in example.calls], example.answer,
                        inputs=example.inputs)
    agent = condition.agent(routines[example.routine], routines, registry, player,
                            settings, seed)
    agent.approver = policy(True, by="evaluation policy (approve all)")  # as in tasks
    trace = await agent.arun(example.query)
    made = [(c.name, c.result) for c in trace.tool_calls]
    if trace.outcome != "answered" or made != [(c.name, c.result) for c in example.calls]:
        why = trace.failure or "results differ"
        raise DatasetError(f"{example.id}: the gold calls do not replay ({why}); rebuild "
                           "the dataset (routine dataset build)")
    requests = player.requests
    if len(requests) > len(example.calls) and await _routine_writes_answer(
            example, routines, registry, seed, settings):
        requests = requests[:len(example.calls)]  # tracked, the routine writes the answer
    for index, request in enumerate(requests):
        tools = list(request.tools)
        if shuffle_tools:
            random.Random(f"{seed}:{example.id}:{index}").shuffle(tools)
        if index < len(example.calls):
            gold = example.calls[index]
            tool = registry.get(gold.name)
            expected = ExpectedCall.exact(gold.name, gold.arguments,
                                          _defaults(tool.parameters) if tool else {})
            if tool and (wrong := _off_type(gold.arguments, tool.parameters)):
                # ("3" for an integer: a model that sends the 3 its schema asks for is wrong)
                raise DatasetError(f"{example.id}: gold call {index + 1} ({gold.name}) gives "
                                   f"{wrong}; expected each argument in the type the tool's "
                                   "schema gives it (rebuild the dataset, or write it so)")
        else:
            expected = ExpectedCall(FINISH_TOOL, {"answer": ["<any>"]})
        samples.append(StepSample(
            id=f"{example.id}#{index}", example_id=example.id, scenario=example.scenario,
            routine=example.routine, step=index, messages=request.messages, tools=tools,
            guide=request.guide,
            expected={"name": expected.name, "arguments": expected.arguments}))
    return samples


async def _routine_writes_answer(example: GoldExample, routines: dict[str, Routine],
                                 registry: ToolRegistry, seed: int,
                                 settings: RunSettings) -> bool:
    """Whether the example's run ends in a finish step with an exact ``message`` (no model
    asked for the answer when the routine is tracked): then no condition has an answer
    sample, so every condition is scored on the same samples."""
    routine = routines[example.routine or ""]
    if not any(s.finish and s.message for s, _ in routine.walk()):
        return False
    player = GoldPlayer([(c.name, c.arguments) for c in example.calls], example.answer,
                        inputs=example.inputs)
    agent = CONDITIONS["nl+track"].agent(routine, routines, registry, player, settings, seed)
    agent.approver = policy(True, by="evaluation policy (approve all)")
    trace = await agent.arun(example.query)
    return any(t.kind == "message" and t.model_text for t in trace.turns)


def build_step_samples(examples: list[GoldExample], routines: dict[str, Routine],
                       registry: ToolRegistry, condition: Condition, *, seed: int = 0,
                       shuffle_tools: bool = True) -> list[StepSample]:
    """Blocking :func:`step_samples`."""
    return asyncio.run(step_samples(examples, routines, registry, condition, seed=seed,
                                    shuffle_tools=shuffle_tools))


async def run_step_sample(sample: StepSample, condition: str, model: Model,
                          schemas: dict[str, dict[str, Any]], modes: dict[str, ArgMode],
                          **sampling: Any) -> StepResult:
    """Ask the model for one step and score its reply."""
    started = time.perf_counter()
    failed = ""
    try:
        reply = await model.complete(sample.messages, sample.tools, guide=sample.guide,
                                     **sampling)
    except ModelRequestError as exc:  # e.g. the prompt does not fit the context: a failure
        reply, failed = ModelReply(), f"model request failed: {exc}"
    seconds = time.perf_counter() - started
    output: list[tuple[str, dict[str, Any]]] | None
    try:
        if failed:
            raise CallParseError(failed)
        parsed = parse_reply(reply.content, reply.tool_calls, sample.tools)
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
