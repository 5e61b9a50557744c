"""Simulated users for the conversation protocol.

A conversational example holds some of its inputs back from the first message (or
states a wrong value first); its :class:`UserProfile` gives the right values when the
agent asks and answers confirmations yes or no. :class:`ScriptedUser` plays a profile
deterministically (gold conversations are made with it); a model can play one too
(:class:`routine.eval.conversations.ModelUser`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["UserProfile", "UserSpec", "ScriptedUser"]


class UserProfile(BaseModel):
    """A simulated user of a conversational example: what they know and did not say at
    first (given when asked), and whether they say yes when asked to confirm."""

    model_config = ConfigDict(extra="forbid")  # ("confirm": false was a yes-sayer)

    facts: dict[str, Any] = Field(default_factory=dict, description="Input name -> the value "
                                  "the user gives when asked for it.")
    says: dict[str, str] = Field(default_factory=dict, description="Input name -> how the "
                                 "user words it (a str.format string over {value}).")
    confirms: bool = Field(True, description="Answers yes to a confirmation (else no).")
    changes: dict[str, Any] = Field(
        default_factory=dict, description="A change of mind: at the first confirmation the "
        "user says no and that they meant these values instead (input name -> value); "
        "asked again, they give them, and say yes.")


@dataclass
class UserSpec:
    """How a template's queries become conversations.

    Attributes:
        holds: sampled inputs the first message does not state; the user gives them when
            the agent asks (the phrasings must not mention them).
        confirms: the user answers yes to confirmations (False: no).
        says: how the user words a value (``{"order_id": "it's order {value}"}``).
        first: input -> the sampled value the first message states instead (a wrong
            identity: ``{"email": "old_email"}``); the user gives the right one when asked.
        changes: input -> the sampled value the user changes their mind to: they decline
            the first confirmation ("No, I meant ..."), then give it when asked again.
    """

    holds: list[str] = field(default_factory=list)
    confirms: bool = True
    says: dict[str, str] = field(default_factory=dict)
    first: dict[str, str] = field(default_factory=dict)
    changes: dict[str, str] = field(default_factory=dict)




class ScriptedUser:
    """Answers from its profile: the values asked for (worded as ``says`` has them), yes or
    no to confirmations; "I don't know" for anything it does not hold."""

    def __init__(self, profile: UserProfile):
        self.profile = profile
        self.facts = dict(profile.facts)
        self.changed = not profile.changes

    def _say(self, name: str) -> str:
        return self.profile.says.get(name, "{value}").format(value=self.facts[name])

    async def reply(self, reply: Any) -> str:
        waiting = reply.trace.waiting
        if waiting is not None and waiting.kind == "confirmation":
            if not self.changed:  # a change of mind: no, and what they meant instead
                self.changed = True
                self.facts.update(self.profile.changes)
                return "No, sorry, I meant " + ", ".join(
                    self._say(n) for n in self.profile.changes) + "."
            return "Yes, go ahead." if self.profile.confirms else "No, please don't."
        names = waiting.fills if waiting is not None else []
        parts = [self._say(n) for n in names if n in self.facts]
        return ", ".join(parts) if parts else "I don't know."
