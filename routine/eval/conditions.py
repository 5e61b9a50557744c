"""Evaluation conditions: how the routine is shown to the model.

The same condition means the same prompt in both protocols: a step sample and a
task run under ``nl+distractor`` show the same routines in the same order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from ..models.base import Model
from ..run.executor import Agent
from ..run.settings import RunSettings
from ..spec.format import Routine
from ..tools.core import ToolRegistry

__all__ = ["Condition", "CONDITIONS", "NO_MEMORY", "pick_distractors", "tracking_baseline"]

NO_MEMORY = 10**12  # a memory threshold no result reaches


@dataclass(frozen=True)
class Condition:
    """How the routine is given to the model."""

    name: str
    routine_format: Literal["nl", "json", "none"]
    step_tracking: bool
    distractors: int = 0
    description: str = ""
    decoding: Literal["free", "guided"] = "free"
    inputs_first: bool = False
    routed: bool = False  # the routine is chosen by the router (routine.eval.routed)
    memory: bool = True  # variable memory for long results (off: every result in full)
    optional: bool = False  # not in the default set: run only when named
    prompt_style: Literal["full", "compact"] = "full"
    # every tool (the paper's protocol: the model must pick the routine's tools among them);
    # "routine": only the routine's, as a live run offers them by default (distill's option)
    offer_tools: Literal["routine", "all"] = "all"

    def settings(self, base: RunSettings) -> RunSettings:
        """``base`` with this condition's prompt, tools and decoding options."""
        return base.model_copy(update={"routine_format": self.routine_format,
                                       "step_tracking": self.step_tracking,
                                       "offer_tools": self.offer_tools,
                                       "decoding": self.decoding,
                                       "inputs_first": self.inputs_first,
                                       "prompt_style": self.prompt_style,
                                       **({} if self.memory else
                                          {"memory_threshold": NO_MEMORY}),
                                       # the paper's conditions judge the model's own answer
                                       "answer_facts": self.decoding == "guided"})

    def agent(self, routine: Routine, routines: dict[str, Routine], registry: ToolRegistry,
              model: Model, base: RunSettings, seed: int = 0) -> Agent:
        """The agent that runs a query of ``routine`` under this condition: the same for a
        task run and for the live runs step samples are taken from. Without a routine in
        the prompt the agent has none at all (no tracker, no named outputs, no guide)."""
        if self.routine_format == "none":
            return Agent(None, registry, model, self.settings(base), validate=False)
        others, position = pick_distractors(routine, routines, self.distractors, seed)
        return Agent(routine, registry, model, self.settings(base), validate=False,
                     others=others, position=position)


CONDITIONS = {c.name: c for c in [
    Condition("none", "none", False, 0, "no routine: tools only"),
    Condition("nl", "nl", False, 0, "routine in natural language (the paper's)"),
    Condition("json", "json", False, 0, "routine as JSON (the paper's)"),
    Condition("nl+track", "nl", True, 0, "routine in natural language + step tracking"),
    Condition("nl+distractor", "nl", False, 1, "routine + one unrelated routine in the prompt"),
    # beyond the paper: the routine constrains decoding (reported beside, never instead)
    # in the default (compact) prompt style, as `--decoding guided` runs; their paired gain
    # is over unguided tracking in the same style (nl+track+compact)
    Condition("nl+track+guided", "nl", True, 0, "step tracking + replies constrained to "
              "the calls the routine allows (guided decoding)", decoding="guided",
              prompt_style="compact"),
    Condition("nl+track+guided+inputs", "nl", True, 0, "guided decoding + the request's "
              "inputs read first", decoding="guided", inputs_first=True,
              prompt_style="compact"),
    # variable memory off: long results (policies, announcements) shown in full (tokens and
    # accuracy against nl+track; not run unless asked for)
    Condition("nl+track+nomemory", "nl", True, 0, "step tracking, variable memory off (every "
              "tool result shown in full)", memory=False, optional=True),
    # the compact prompt style, the default of live runs: the same facts in fewer tokens
    # (against nl+track, the paper's full style)
    Condition("nl+track+compact", "nl", True, 0, "step tracking, compact prompts (the same "
              "facts in fewer tokens; the default of live runs)", prompt_style="compact"),
    # the paper's retrieval condition (task protocol only; not run unless asked for)
    Condition("nl+track+routed", "nl", True, 0, "step tracking, the routine chosen by the "
              "router from the domain's library instead of given", routed=True),
]}


def pick_distractors(routine: Routine, routines: dict[str, Routine], count: int,
                     seed: int = 0) -> tuple[list[Routine], int]:
    """``count`` other routines to show beside ``routine``, and where ``routine`` goes among
    them (it is not always listed first).

    Fixed per routine and seed, not per query: every prompt of one routine then starts the
    same way, so a server's prompt cache serves them all."""
    if count == 0:
        return [], 0
    rng = random.Random(f"{seed}:{routine.name}")
    others = [routines[n] for n in rng.sample(sorted(n for n in routines if n != routine.name),
                                              count)]
    position = 1 if random.Random(f"{seed}:{routine.name}:order").random() < 0.5 else 0
    return others, position


def tracking_baseline(name: str) -> str | None:
    """The unguided step-tracking condition a tracking variant is compared with, paired:
    a guided condition against unguided tracking in its own prompt style, any other
    variant (compact, memory off, routed) against the paper's ``nl+track``."""
    condition = CONDITIONS[name]
    if not condition.step_tracking or condition.routine_format != "nl" or name == "nl+track":
        return None
    if condition.decoding == "guided" and condition.prompt_style == "compact":
        return "nl+track+compact"
    return "nl+track"
