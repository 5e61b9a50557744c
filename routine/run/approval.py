"""Human approval of writes: a call marked for approval waits for a decision before it runs.

A routine step marks it (``approval: required``), or a tool does for every routine
(``@tool(approval=True)``). Before such a call runs, the executor asks the run's
*approver* — any callable (sync or async) taking an :class:`ApprovalRequest` and
returning a :class:`Decision` — and records the decision, who or what made it and
why, in the call's trace record. A refused call does not run; the model is told.

    agent = Agent(routine, tools, model, approver=ask_in_terminal())    # a person decides
    agent = Agent(routine, tools, model, approver=policy(True, by="nightly batch"))

With no approver, a call that needs approval is refused ("no approver"): nothing
writes unattended by accident. The CLI asks in the terminal (``routine run
--approve ask``, the default on a terminal) or applies a policy (``--approve
all|none``); ``routine eval`` approves by policy, recorded as such.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from .printable import shown

__all__ = ["ApprovalRequest", "Decision", "Approver", "policy", "ask_in_terminal", "decide"]


class ApprovalRequest(BaseModel):
    """A call waiting for a decision."""

    run_id: str
    routine: str | None
    step_id: str | None = Field(description="The routine step the call would complete.")
    tool: str
    arguments: dict[str, Any]
    reason: str = Field(description="Why approval is needed (the step or the tool says so).")


class Decision(BaseModel):
    """What was decided about one call, by whom, and when (recorded in the trace)."""

    approved: bool
    by: str = Field(description="Who or what decided: a person, a policy, 'no approver'.")
    reason: str = ""
    at: datetime | None = None


Approver = Callable[[ApprovalRequest], "Decision | bool | Awaitable[Decision | bool]"]


def policy(approve: bool, by: str = "policy") -> Approver:
    """An approver that always decides the same way (unattended runs, evaluations)."""

    def decide_by_policy(request: ApprovalRequest) -> Decision:
        return Decision(approved=approve, by=by,
                        reason="approved by policy" if approve else "refused by policy")

    return decide_by_policy


def ask_in_terminal(by: str | None = None, ask: Callable[[str], str] | None = None) -> Approver:
    """An approver that asks on the terminal (``ask`` reads the answer: ``input`` by default)."""
    import getpass

    who = by or getpass.getuser()

    def decide_in_terminal(request: ApprovalRequest) -> Decision:
        arguments = shown(json.dumps(request.arguments, ensure_ascii=False))
        where = f" (step {request.step_id})" if request.step_id else ""
        reason = json.dumps(request.reason, ensure_ascii=False)[1:-1]  # (escapes written out)
        question = shown(f"Approve {request.tool}({arguments}){where}? {reason} [y/N] ")
        answer = (ask or _read_answer)(question)
        approved = answer.strip().lower() in ("y", "yes")
        return Decision(approved=approved, by=who,
                        reason="approved in the terminal" if approved else
                        f"refused in the terminal ({answer.strip() or 'no answer'})")

    return decide_in_terminal


def _read_answer(question: str) -> str:
    """``input(question)`` without Python's buffered stdin: the approver runs on the
    blocking loop's thread, and a buffered read left waiting there when Ctrl-C ends the
    process aborted the interpreter at exit ("could not acquire lock")."""
    sys.stderr.write(question)
    sys.stderr.flush()
    answer = bytearray()
    while (byte := os.read(sys.stdin.fileno(), 1)) and byte != b"\n":
        answer += byte
    return answer.decode("utf-8", "replace")


def now() -> datetime:
    return datetime.now(UTC)


async def decide(approver: Approver | None, request: ApprovalRequest) -> Decision:
    """The approver's decision (refused when there is none, or when it fails)."""
    if approver is None:
        return Decision(approved=False, by="no approver", at=now(),
                        reason="this call needs approval and the run has no approver")
    try:
        decision = approver(request)
        if inspect.isawaitable(decision):
            decision = await decision
        if isinstance(decision, bool):  # ``lambda request: True``: a plain yes or no
            decision = Decision(approved=decision, by="approver",
                                reason="approved" if decision else "refused")
        if not isinstance(decision, Decision):
            raise TypeError(f"the approver returned {type(decision).__name__}, not a Decision "
                            "(or True/False)")
    except Exception as exc:  # an approver that fails refuses: nothing runs by accident
        return Decision(approved=False, by="approver error", at=now(),
                        reason=f"{type(exc).__name__}: {exc}")
    return decision.model_copy(update={"at": decision.at or now()})
