"""SFT data from the run path: trajectories become trl conversational examples.

A trajectory (a gold example of the train split, or a run trace judged right
against its gold example) is played through the executor by
:class:`~routine.eval.players.GoldPlayer`; every request the executor makes IS
one training example's prompt, and the call the player answers with is its
completion. Nothing is rebuilt by hand, so the training prompt is the inference
prompt by construction (a test checks it against live runs). Each prompt offers every tool
of the domain, as ``routine eval`` does (the paper's protocol); ``offer_tools="routine"``
offers only the routine's, as ``routine run`` does by default, so an adapter served there
trains on exactly the prompts it will see. Three variants:

* ``routine`` — routine-following: the routine in the system prompt and the state
  prompt naming the current step (the ``nl+track`` condition);
* ``compact`` — routine-following in the compact prompt style, the default of live runs
  (``nl+track+compact``): the answer step is a plain-text reply, no ``finish`` tool;
* ``distilled`` — the same trajectory with no routine at all (the ``none``
  condition): the model must internalise the process.

**Merged turns.** Where every request of a trajectory extends the one before it by the
reply and its tool results (the ``distilled`` variant: no state prompt that changes each
turn), its examples are one row: the first request as the prompt, the rest of the
conversation as the completion, every assistant message in it trained (the training code
masks the tool results). The conditional each reply is trained on is the same as one row
per step, but the shared prefix is computed once: an epoch of the distilled retail train
split takes ~2.4x fewer tokens. The ``routine`` variant's state prompt is replaced at each
turn, so its requests are not prefixes of each other and stay one row per step.

Rows are trl's prompt-completion conversational format with a ``tools`` column
holding the offered tools as a JSON string (Arrow would merge nested schemas
across rows otherwise). Messages are in the OpenAI wire form the executor sends
(tool-call arguments as JSON text), which the embedded model's chat template
renders exactly as at inference. Only trajectories whose end state and answer
are right are kept; only train-split templates are used; duplicates are dropped.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field, ValidationError

from ..errors import DatasetError, RoutineError
from ..eval.conditions import CONDITIONS
from ..eval.dataset import (
    ORACLE_SETTINGS,
    SPLITS,
    Domain,
    GoldExample,
    jsonl_lines,
    load_dataset,
    load_domain,
    seed_snapshot,
)
from ..eval.endstate import Snapshot
from ..eval.players import GoldPlayer
from ..eval.tasks import run_task
from ..models.messages import ToolCall, to_wire
from ..run.signing import verify_trace
from ..run.trace import RunTrace
from ..spec.format import Routine
from ..tools.core import FINISH_TOOL, ToolRegistry

__all__ = ["SftExample", "Variant", "VARIANTS", "Trajectory", "distill", "merge_turns",
           "write_sft", "load_sft", "sft_stats", "trajectories_from_traces"]

Variant = Literal["routine", "compact", "distilled"]
OfferTools = Literal["all", "routine"]
VARIANTS: dict[str, str] = {"routine": "nl+track", "compact": "nl+track+compact",
                            "distilled": "none"}


class SftExample(BaseModel):
    """One training example: what the executor sent at one step, and the right reply."""

    id: str = Field(description="<example id>#<step>:<variant>")
    example_id: str
    template: str
    split: str
    routine: str | None
    variant: Variant
    source: Literal["gold", "trace"]
    step: int = Field(description="The step of the first reply trained.")
    turns: int = Field(1, description="Replies trained: more than 1 for merged turns.")
    prompt: list[dict[str, Any]] = Field(description="The request's messages (wire form).")
    completion: list[dict[str, Any]] = Field(
        description="The reply: one assistant message (the call); for merged turns the "
                    "rest of the conversation, every assistant message in it trained.")
    tools: str = Field(description="The offered tools, as a JSON string.")

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.prompt + self.completion

    def trained(self) -> list[int]:
        """Indexes in :attr:`messages` of the assistant messages trained on."""
        return [i for i, m in enumerate(self.messages)
                if i >= len(self.prompt) and m.get("role") == "assistant"]


class Trajectory(BaseModel):
    """Calls and an answer for a gold example's query (the gold ones, or a teacher's)."""

    example: GoldExample
    calls: list[tuple[str, dict[str, Any]]]
    answer: str
    source: Literal["gold", "trace"] = "gold"


def trajectories_from_traces(traces: list[RunTrace], examples: list[GoldExample],
                             key: str | bytes | None = None
                             ) -> tuple[list[Trajectory], int, int]:
    """The answered traces whose query is a gold example's, as trajectories (judged later);
    how many traces matched no gold query; and how many matched one but did not answer
    (failed, waiting, handed off: nothing to learn from, counted rather than lost).
    Signed traces are checked as a resumed conversation checks them (``key``, else
    ``ROUTINE_TRACE_KEY``): the judge reads only an answer's facts, so an edited answer
    that keeps them (a promise added) would be trained on."""
    for trace in traces:
        verify_trace(trace, key, use="become training data")
    by_query = {e.query: e for e in examples}
    out, unmatched, unanswered = [], 0, 0
    for trace in traces:
        example = by_query.get(trace.query or "")
        if example is None:
            unmatched += 1
            continue
        if trace.outcome != "answered" or trace.answer is None:
            unanswered += 1
            continue
        out.append(Trajectory(example=example, answer=trace.answer, source="trace",
                              calls=[(c.name, c.arguments) for c in trace.tool_calls if c.ok]))
    return out, unmatched, unanswered


def merge_turns(rows: list[SftExample]) -> list[SftExample]:
    """One trajectory's per-step rows as one row when each request is the previous one plus
    its reply and what followed (same tools); else the rows unchanged."""
    if len(rows) < 2:
        return rows
    for before, after in zip(rows, rows[1:], strict=False):
        done = before.messages
        if after.tools != before.tools or after.prompt[:len(done)] != done:
            return rows
    first, last = rows[0], rows[-1]
    return [first.model_copy(update={
        "id": f"{first.example_id}#{first.step}-{last.step}:{first.variant}",
        "turns": len(rows), "completion": last.messages[len(first.prompt):]})]


def _offers(tools: list[dict[str, Any]], name: str) -> bool:
    return any((t.get("function") or t).get("name") == name for t in tools)


async def _rows(trajectory: Trajectory, variant: Variant, routines: dict[str, Routine],
                registry: ToolRegistry, domain: Domain, seed: Snapshot,
                offer_tools: OfferTools = "all") -> list[SftExample]:
    """Play one trajectory under a variant, judged by the task protocol; [] if it does not
    end right (wrong end state or answer, a call refused, more replies asked for)."""
    example = trajectory.example
    player = GoldPlayer(trajectory.calls, trajectory.answer, inputs=trajectory.example.inputs)
    condition = dataclasses.replace(CONDITIONS[VARIANTS[variant]], offer_tools=offer_tools)
    try:
        result = await run_task(example, routines, registry, player, condition, 0,
                                ORACLE_SETTINGS, domain, seed)
    except DatasetError:  # the trajectory asked for more replies than it has
        return []
    if not result.success or len(result.calls) != len(trajectory.calls) \
            or any(c.error is not None for c in result.calls):  # a call refused or failed
        return []
    rows = []
    replies = [*trajectory.calls, (FINISH_TOOL, {"answer": trajectory.answer})]
    for step, (request, (name, arguments)) in enumerate(zip(player.requests, replies,
                                                            strict=False)):
        if name == FINISH_TOOL and not _offers(request.tools, FINISH_TOOL):
            reply = {"role": "assistant", "content": arguments["answer"]}  # the compact style
        else:
            reply = {"role": "assistant", "content": "", "tool_calls": [
                ToolCall.of(f"call_{step}", name, arguments).model_dump(mode="json")]}
        rows.append(SftExample(
            id=f"{example.id}#{step}:{variant}", example_id=example.id,
            template=example.template, split=example.split, routine=example.routine,
            variant=variant, source=trajectory.source, step=step,
            prompt=to_wire(request.messages),
            completion=[reply],
            tools=json.dumps(request.tools, ensure_ascii=False)))
    return rows


async def distill(folder: str | Path, *, split: str = "train",
                  variants: tuple[Variant, ...] = ("compact", "distilled"),
                  traces: list[RunTrace] | None = None, gold: bool = True,
                  merge: bool = True, trace_key: str | bytes | None = None,
                  offer_tools: OfferTools = "all"
                  ) -> tuple[list[SftExample], dict[str, int]]:
    """SFT examples from a domain's gold ``split`` (and/or traces of its queries): only
    right trajectories, only ``split`` templates (train by default), no duplicates;
    ``merge``: a trajectory whose requests extend each other is one row (:func:`merge_turns`);
    ``trace_key``: what signed traces are checked with (default ``ROUTINE_TRACE_KEY``);
    ``offer_tools``: the tools each prompt offers — "all" of the domain's (as ``routine
    eval`` offers them: the paper's protocol, and what the README's adapters trained on) or
    only the routine's ("routine": what ``routine run`` and ``Agent`` offer by default, so
    the adapter trains on the prompts it is served). Returns the examples and counts of
    what was kept and dropped."""
    if split not in SPLITS:  # (no file of that name: "no SFT examples" said nothing of why)
        raise DatasetError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if offer_tools not in get_args(OfferTools):
        raise DatasetError(f"unknown offer_tools {offer_tools!r}; expected one of "
                           f"{', '.join(get_args(OfferTools))}")
    if not variants:
        raise DatasetError("no variant to build; expected some of "
                           f"{', '.join(get_args(Variant))}")
    if not (Path(folder) / f"{split}.jsonl").is_file():
        raise DatasetError(f"{Path(folder) / f'{split}.jsonl'} is missing: run `routine dataset "
                           "build` first")
    domain = load_domain(folder)
    registry = domain.registry()
    routines = {n: loaded.routine for n, loaded in domain.routines().items()}
    examples = [e for e in load_dataset(folder, (split,)) if e.kind == "routine"
                and e.user is None]  # conversations: the conversation protocol's
    trajectories = [Trajectory(example=e, calls=[(c.name, c.arguments) for c in e.calls],
                               answer=e.answer) for e in examples] if gold else []
    counts: Counter[str] = Counter()
    if traces is not None:
        from_traces, unmatched, unanswered = trajectories_from_traces(traces, examples,
                                                                      trace_key)
        counts["traces_without_a_gold_query"] = unmatched
        counts["traces_not_answered"] = unanswered
        trajectories += from_traces
    seed = await seed_snapshot(domain, registry)
    rows: list[SftExample] = []
    seen: set[str] = set()
    for trajectory in trajectories:
        for variant in variants:
            made = await _rows(trajectory, variant, routines, registry, domain, seed,
                               offer_tools)
            if not made:
                counts[f"dropped_{trajectory.source}_{variant}"] += 1
                continue
            counts[f"kept_{trajectory.source}_{variant}"] += 1
            for row in merge_turns(made) if merge else made:
                key = json.dumps([row.prompt, row.completion, row.tools], sort_keys=True)
                if key in seen:
                    counts["duplicates"] += 1
                    continue
                seen.add(key)
                rows.append(row)
    return rows, dict(counts)


def write_sft(rows: list[SftExample], path: str | Path) -> Path:
    """One JSON object per line (``datasets.load_dataset("json", data_files=...)`` reads it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(row.model_dump_json() + "\n")
    return path


def load_sft(path: str | Path) -> list[SftExample]:
    """The rows of an SFT file; a line that is not one (torn, another file's, not UTF-8)
    is one RoutineError naming the file and line."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RoutineError(f"{path}: cannot read the SFT data ({exc.strerror or exc})") from None
    rows = []
    for number, line in jsonl_lines(path, data, RoutineError,
                                    "the JSONL `routine distill` writes"):
        try:
            rows.append(SftExample.model_validate_json(line))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            torn = " (a line cut short: was the file copied or written whole?)" if \
                first.get("type") == "json_invalid" and number == data.count(b"\n") + 1 \
                else ""
            raise RoutineError(f"{path}:{number}: not an SFT row{torn}: "
                               f"{(where + ': ') if where else ''}{first['msg']}; expected "
                               "the JSONL `routine distill` writes") from None
    return rows


def sft_stats(rows: list[SftExample], tokenizer: Any = None) -> dict[str, Any]:
    """Counts to quote per variant: examples, replies trained, trajectories, templates,
    characters, and with a tokenizer (``routine.models.embedded.ChatTokenizer``) tokens as
    the chat template renders them: ``tokens`` (whole rows: what training computes over),
    ``trained_tokens`` (the assistant replies: where the loss is), ``prompt_tokens`` (the
    rest) and ``completion_tokens`` (everything after each row's prompt)."""
    out: dict[str, Any] = {}
    for variant in sorted({r.variant for r in rows}):
        chosen = [r for r in rows if r.variant == variant]
        out[variant] = {
            "examples": len(chosen),
            "replies": sum(r.turns for r in chosen),
            "trajectories": len({r.example_id for r in chosen}),
            "templates": len({r.template for r in chosen}),
            "prompt_chars": sum(len(json.dumps(r.prompt, ensure_ascii=False)) for r in chosen),
            "completion_chars": sum(len(json.dumps(r.completion, ensure_ascii=False))
                                    for r in chosen),
        }
        if tokenizer is not None:
            total = trained = asked = 0
            for row in chosen:
                tools, messages = json.loads(row.tools), row.messages
                total += tokenizer.count(messages, tools)
                asked += tokenizer.count(row.prompt, tools, generation_prompt=True)
                trained += sum(tokenizer.count(messages[:i + 1], tools)
                               - tokenizer.count(messages[:i], tools, generation_prompt=True)
                               for i in row.trained())
            out[variant] |= {"tokens": total, "trained_tokens": trained,
                             "prompt_tokens": total - trained,
                             "completion_tokens": total - asked}
    return out
