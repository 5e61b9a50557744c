"""The steps a routine takes with the user rather than the model choosing a call.

* **ask** — before asking, the user's words so far are read for the inputs the step
  fills (one turn, constrained to the inputs' types under guided decoding): asking for
  something the user already said is a mistake. What is still missing and required is
  asked with the step's own question, and the run waits (:class:`Waiting`); an optional
  input not said takes its default. The reply is read the same way. A question asked
  ``max_visits`` times (default 3) without an answer ends the run.
* **confirm** — a call of a ``confirm`` step does not run until the user answers an
  explicit yes to what it will do (:func:`consent`: a reply that opens with a yes and adds
  no negation, condition or second request). A negation declines. A reply that is
  neither ("Is that the right amount?", "yes and also the other card", "hmm") is asked
  again, up to 3 times in all, then it declines. The
  decision and the user's words are the call's approval record.
  Declined, the run goes to the step's ``on_decline``, or ends saying nothing changed.
* **message** — a finish step's exact ``message`` is the answer, no model asked.
* **handoff** — the run ends handing the conversation to another routine, with its
  inputs: the step's ``args`` and every same-named input already known.

Outside a conversation (``Agent.run``), a question ends the run ``waiting`` with the
question as its answer, and confirmations go to the agent's approver.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import jinja2

from ..models.base import Model
from ..models.messages import AssistantMessage, UserMessage, inert_markup
from .approval import Decision
from .inputs import extract_inputs
from .trace import HandOff, Pending, ToolCallRecord, TurnRecord, now
from .turn import (
    Failed,
    FinalAnswer,
    HandedOff,
    NextTurn,
    RunState,
    TurnResult,
    Waiting,
    run_call,
    signature_of,
)

__all__ = ["before_turn", "answer_pending", "consent", "is_yes", "is_question", "MAX_ASKS"]

MAX_ASKS = 3  # a question asked this often without an answer ends the run (else max_visits)

_NEGATIONS = {"no", "n", "nope", "nah", "not", "never", "wait", "stop", "hold", "negative",
               "cannot", "cant", "dont", "wont", "didnt", "doesnt", "isnt", "shouldnt",
               "wouldnt", "aint", "havent", "hasnt", "arent", "refuse", "decline"}
_HOLDS = ("cancel that", "rather not", "hang on")
# A yes opens the reply: one of these (after an optional "please", "then" or "well"), e.g.
# "Yes please", "ok, go ahead", "That's correct"; "Go away" does not open so. Longest first.
_YES_OPENINGS = sorted((tuple(p.split()) for p in (
    "yes", "y", "yeah", "yep", "yup", "sure", "ok", "okay", "k", "alright", "fine",
    "confirm", "confirmed", "i confirm", "correct", "that's correct", "that is correct",
    "that's right", "right", "proceed", "go ahead", "go on", "go for it", "do it", "please do",
    "absolutely", "affirmative", "agreed", "i agree", "definitely", "i approve", "approved",
    "sounds good", "of course", "certainly")), key=len, reverse=True)
# ...and what follows it is only courtesy ("yes please, thanks", "sure, why not", "yes, no
# problem") or words of the question itself ("yes, block it" to "Shall I block card 1234?"):
# anything else may be a condition, a change or a second request ("ok, the 50 GB one", "yes
# and add Spain too", "yes, on my wife's line"), and the confirmation is asked again.
_COURTESY = {"please", "pls", "plz", "thanks", "thank", "you", "thx", "ty", "cheers", "much",
             "very", "so", "a", "lot", "go", "ahead", "do", "it", "that", "that's", "thats",
             "this", "is", "fine", "great", "perfect", "good", "sounds", "right", "correct",
             "sure", "ok", "okay", "yes", "yeah", "yep", "yup", "y", "absolutely", "of",
             "course", "certainly", "definitely", "proceed", "confirm", "confirmed", "now",
             "then", "all", "lovely", "exactly", "indeed", "agreed", "approved", "by", "me",
             "i", "i'm", "im", "happy", "with", "works", "for", "looks", "and", "the", "on",
             "sir", "madam", "mate", "awesome", "brilliant", "super"}
_POLITE = ("no problem", "not a problem", "no worries", "why not", "no problemo")
# a whole reply to a question that stops the process instead of answering it ("never mind",
# "forget it"): the run ends, nothing more is done (it was asked again and again, then failed)
_STOPS = {("cancel",), ("stop",), ("quit",), ("abort",), ("never", "mind"), ("nevermind",),
          ("forget", "it"), ("forget", "about", "it"), ("leave", "it"), ("no", "thanks"),
          ("no", "thank", "you"), ("don't", "bother"), ("dont", "bother"), ("not", "now")}
_STOP_FILLER = {"oh", "ah", "actually", "please", "just", "ok", "okay", "then", "well", "sorry",
                "thanks", "thank", "you", "it", "that", "all", "everything"}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[@-_]")


MAX_LISTED = 10  # calls a stopped conversation lists as already done

def _words(text: str) -> list[str]:
    text = _ANSI.sub("", text).lower().replace("\u2019", "'").replace("\u2018", "'")
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text)


def what_ran(state: RunState) -> str:
    """The calls that ran (here, and in the routines that handed off to this one), listed
    for the user ("" if none): a call that raised or timed out ran too (it may have written
    before it failed)."""
    done = [c for c in [*state.before, *state.trace.tool_calls]
            if c.ok or c.error_kind in ("tool_error", "timeout")]
    made = "; ".join(f"{c.name}(" + ", ".join(
        f"{k}={json.dumps(v, ensure_ascii=False, default=str)}"
        for k, v in c.arguments.items()) + ")" + (
        "" if c.ok else " (failed: it may have made changes)") for c in done[:MAX_LISTED])
    if len(done) > MAX_LISTED:
        made += f"; and {len(done) - MAX_LISTED} more"
    return made


def is_question(text: str) -> bool:
    """The reply asks something back ("Is that the right amount?")."""
    return "?" in text


def consent(text: str, question: str = "") -> str:
    """What a reply to a confirmation ``question`` says: ``"yes"``, ``"no"`` or ``"unclear"``.

    ``"yes"``: the reply opens with a yes ("yes", "ok, go ahead", "that's correct") and
    what follows is only courtesy ("please", "thanks", "why not", "no problem") or words
    of the question ("yes, block it"; numbers only all of them: "yes, card 5678" to
    "Freeze cards 1234 and 5678?" is unclear). ``"no"``: otherwise, a negation or a hold anywhere
    ("no", "not", "can't", "I won't", "wait", "don't"). Anything else — a question, a
    change ("ok, the 50 GB one"), a condition or a second request ("yes and also cancel
    the other one") — is ``"unclear"``: the confirmation is asked again."""
    words = _words(text)
    if is_question(text):
        return "no" if _negated(words) else "unclear"
    rest = words[1:] if words[:1] in (["please"], ["then"], ["well"]) else words
    for opening in _YES_OPENINGS:
        if tuple(rest[:len(opening)]) == opening:
            tail = " " + " ".join(rest[len(opening):]) + " "
            for phrase in _POLITE:
                tail = tail.replace(f" {phrase} ", " ")
            if _negated(tail.split()):
                return "no"
            allowed = _COURTESY | set(_words(question))
            if not all(w in allowed for w in tail.split()):
                return "unclear"
            # numbers restated after the yes must be all of the question's: "yes, card
            # 5678" to "Freeze card 1234 and card 5678?", or "yes, send 2 EUR" to "Send 100
            # EUR to account 2?", agree to less than is asked
            said = {w for w in tail.split() if w.isdigit()}
            asked = {w for w in _words(question) if w.isdigit()}
            return "yes" if not said or said == asked else "unclear"
    return "no" if _negated(words) else "unclear"


def stops(text: str) -> bool:
    """A reply that stops the process instead of answering its question: the whole reply is
    "cancel", "never mind", "forget it", "no thanks"... with at most filler around it ("oh,
    never mind then"). "Cancel order 5" is an answer (it says which), not a stop."""
    words = _words(text)
    while words and words[0] in _STOP_FILLER:
        words = words[1:]
    for stop in _STOPS:
        if tuple(words[:len(stop)]) == stop and all(w in _STOP_FILLER
                                                    for w in words[len(stop):]):
            return True
    return False


def _negated(words: list[str]) -> bool:
    joined = f" {' '.join(words)} "
    return any(w.replace("'", "") in _NEGATIONS or w.endswith("n't") for w in words) or any(
        f" {hold} " in joined for hold in _HOLDS)


def is_yes(text: str, question: str = "") -> bool:
    """An explicit yes (:func:`consent`): anything else, a question or a hedge included,
    is not consent."""
    return consent(text, question) == "yes"


def _record(state: RunState, kind: Any, text: str = "", calls: list[ToolCallRecord] | None = None,
            feedback: str | None = None) -> None:
    tracker = state.tracker
    state.trace.turns.append(TurnRecord(
        index=len(state.trace.turns), kind=kind, model_text=text, calls=calls or [],
        current_step=tracker.current if tracker is not None and not tracker.finished else None,
        feedback=feedback))


async def before_turn(state: RunState, model: Model) -> TurnResult | None:
    """Take the current step if it is the routine's to take (None: ask the model)."""
    tracker = state.tracker
    if tracker is None:
        return None
    if tracker.awaiting:  # a `when` or `compute` reads inputs the request may state
        await extract_inputs(state, model, names=list(tracker.awaiting),
                             said=_heard(state, 0) or None)  # (a "yes" to a confirmation
        # is no value: "Refill 30 tablets?" "yes" is not asking for home delivery)
        state.trace.inputs.update(tracker.inputs_read())  # (the step is taken, or stops)
    if tracker.stopped is not None:
        return Failed(f"the routine cannot go on: {tracker.stopped}", "routine_limit")
    if tracker.declined is not None and tracker.finished:
        step = tracker.flow.steps[tracker.declined]
        what = _phrase(step)
        refused = next((c.approval for c in reversed(state.trace.tool_calls)
                        if c.error_kind == "denied" and c.approval is not None), None)
        why = ("was not confirmed" if refused is None or refused.by == "user" else
               f"was not approved ({refused.by}: {refused.reason})")
        # every call that ran (here, and in the routines that handed off to this one): a
        # write without a confirmation is still a change, so "nothing was changed" is said
        # only when nothing ran; a call that raised or timed out ran too (it may have
        # written before it failed)
        made = what_ran(state)
        text = f"Nothing was changed: {what} {why}."
        if made:
            text = f"Stopped: {what} {why}, so it was not done. What ran before that: {made}."
        _record(state, "message", text)
        return FinalAnswer(text)
    step = tracker.step
    if step is None:
        return None
    if step.ask is not None:
        return await _ask(state, model, step)
    if step.finish and step.message:
        return await _message(state, model, step)
    if step.handoff:
        known = {**state.trace.inputs, **tracker.inputs}
        inputs = {name: value for name, value in known.items()}
        inputs |= {a.name: a.value for a in tracker.arguments(step) if a.known}
        handoff = HandOff(routine=step.handoff, inputs=inputs)
        tracker.complete()
        _record(state, "handoff", f"handing over to {step.handoff}")
        return HandedOff(handoff)
    return None


def _phrase(step: Any) -> str:
    """A step's name inside a sentence ("Refill the prescription" -> "refill the ...")."""
    return f"{step.name[0].lower()}{step.name[1:]}"


def _stopped_at(state: RunState, step: Any) -> FinalAnswer:
    """The end of a run the user stopped at an ask step: nothing more is done, and what
    ran before is said."""
    made = what_ran(state)
    text = (f"Stopped at your word: {_phrase(step)} was not answered, so nothing more was "
            "done." + (f" What ran before that: {made}." if made else " Nothing was changed."))
    state.pending = None
    _record(state, "message", text)
    return FinalAnswer(text)


def _take_defaults(state: RunState, names: list[str]) -> list[str]:
    """Of the inputs ``names`` the user did not state, each with a default takes it (not
    said, so the default holds); returns those still missing that the routine requires."""
    tracker = state.tracker
    assert tracker is not None
    specs = tracker.routine.inputs
    unsaid = [n for n in names if n not in tracker.inputs]
    defaults = {n: specs[n].default for n in unsaid if specs[n].default is not None}
    tracker.fill(defaults)
    state.trace.inputs.update(defaults)
    return [n for n in unsaid if specs[n].required and n not in defaults]


def _heard(state: RunState, start: int) -> list[str]:
    """What the user said from reply ``start`` on, less the replies to confirmations (a
    "yes" to "Shall I go ahead?" is no value for a later question)."""
    said = state.trace.said
    return [text for n, text in enumerate(said) if n >= start and
            n not in state.trace.said_yes_no]


async def _ask(state: RunState, model: Model, step: Any) -> TurnResult:
    tracker = state.tracker
    assert tracker is not None
    said = state.trace.said
    pending = state.pending if state.pending is not None and state.pending.kind == "inputs" \
        and state.pending.step_id == step.id else None
    failed = tracker.failed_into.get(step.id) if pending is None else None
    revisit = tracker.visits.get(step.id, 0) > 1
    if step.id in tracker.fresh:  # the loop's next item: the last item's answer is not its
        tracker.fresh.discard(step.id)
        for name in step.fills:
            state.trace.inputs.pop(name, None)
        missing = list(step.fills)
    elif pending is None and (revisit or failed is not None):
        # come back to by a loop, or reached because a call with what the user said
        # failed: what was said for it is what went wrong (on a loop, every value it
        # fills; after a failure, those the failed call used). What the user said since
        # this step last completed (a "no, I meant order 9") is read first; else ask anew.
        stale = list(step.fills) if revisit else [
            n for n in step.fills if n in tracker.inputs_used(failed or "")]
        since = said[tracker.answered_at[step.id]:] if revisit and \
            step.id in tracker.answered_at else []
        before = {n: tracker.inputs.pop(n) for n in stale if n in tracker.inputs}
        for name in stale:
            state.trace.inputs.pop(name, None)
        missing = list(stale)
        if since:
            missing = await extract_inputs(state, model, missing, since)
            if len(missing) < len(stale):  # something new was said: keep the rest
                tracker.fill({n: v for n, v in before.items() if n in missing})
                state.trace.inputs.update({n: v for n, v in before.items() if n in missing})
                missing = [n for n in missing if n not in before]
        unknown = [n for n in step.fills if n not in stale and n not in tracker.inputs]
        heard = _heard(state, 0)
        if unknown and heard:  # never known: the user may have said them already
            unknown = await extract_inputs(state, model, unknown, heard)
        missing += unknown
    else:
        replies = said[pending.said_from:] if pending is not None else []
        if replies and stops(replies[-1]):  # "never mind": the process ends here
            return _stopped_at(state, step)
        missing = [n for n in step.fills if n not in tracker.inputs]
        if missing:  # read what the user said (since the question): never ask twice
            heard = _heard(state, pending.said_from if pending is not None else 0)
            if heard:
                missing = await extract_inputs(state, model, missing, heard,
                                               pending.message if pending is not None else None)
        missing = _take_defaults(state, missing)
    if not missing:
        state.pending = None
        tracker.failed_into.pop(step.id, None)
        tracker.answered_at[step.id] = len(said)
        tracker.complete()
        return NextTurn()
    try:
        question = tracker.render(step.ask)
    except Exception:  # noqa: BLE001 - the question needs a value not known: ask plainly
        question = "Could you tell me " + ", ".join(
            tracker.routine.inputs[n].description for n in missing) + "?"
    asked = pending.asked + 1 if pending is not None else 1
    if asked > (step.max_visits or MAX_ASKS) and pending is not None:
        return Failed(f"step {step.id}: asked {asked - 1} times and still missing "
                      f"{', '.join(missing)}", "user")
    state.pending = Pending(kind="inputs", step_id=step.id, message=question, fills=missing,
                            asked=asked, said_from=len(said))
    state.history.append(AssistantMessage(content=inert_markup(question)))
    _record(state, "ask", question, feedback=json.dumps(missing))  # what it asked for
    return Waiting(question)


async def _message(state: RunState, model: Model, step: Any) -> TurnResult | None:
    """A finish step's exact message. Inputs it names that no call carried are read from
    the user's words first; a message that still cannot be written (a required input the
    user never stated) leaves the answer to the model — the run's work is done by now, and
    failing it would hide that — with the reason in the trace. A template that fails for
    another reason (a number added to a text) is the routine's bug: the run fails, saying
    so, rather than let the model write what the routine fixes."""
    tracker = state.tracker
    assert tracker is not None
    tried = any(t.kind == "message" and t.current_step == step.id for t in state.trace.turns)
    if tried:  # the message could not be written: the model answers
        return None
    missing = tracker.unknown_inputs(step.message)
    if missing:
        await extract_inputs(state, model, names=missing, said=_heard(state, 0) or None)
        _take_defaults(state, missing)
    try:
        text = tracker.render(step.message)
    except jinja2.UndefinedError as exc:  # a value the message needs is missing
        _record(state, "message", "", feedback=f"the exact message of step {step.id} needs a "
                f"value the run does not have ({exc}): the model writes the answer instead")
        return None
    except Exception as exc:  # noqa: BLE001 - the routine's template is wrong for these values
        _record(state, "message", "", feedback=f"the exact message of step {step.id} cannot "
                f"be written: {type(exc).__name__}: {exc}")
        return Failed(f"the exact message of step {step.id} cannot be written: "
                      f"{type(exc).__name__}: {exc} (the routine's template, not the model)",
                      "routine_limit")
    _record(state, "message", text)
    return FinalAnswer(text)


async def answer_pending(state: RunState, model: Model, reply: str) -> TurnResult:
    """The user's reply to what the run waits for: a question's values, or a yes/no."""
    pending = state.pending
    state.history.append(UserMessage(content=reply))
    state.trace.said.append(reply)
    if pending is None:
        return NextTurn()  # nothing asked: the model reads the message
    tracker = state.tracker
    assert tracker is not None
    if pending.kind == "inputs":
        return NextTurn()  # the ask step reads the reply (and asks again if it must)
    state.trace.said_yes_no.append(len(state.trace.said) - 1)
    said = consent(reply, pending.message or "")
    if said == "unclear" and pending.asked < MAX_ASKS:  # not a yes, not a no: ask again
        text = f"I need a clear yes or no before I go on. {pending.message}"
        state.pending = pending.model_copy(update={"asked": pending.asked + 1})
        state.history.append(AssistantMessage(content=inert_markup(text)))
        why = "a question" if is_question(reply) else "not a clear yes or no"
        _record(state, "confirm", text, feedback=f"asked again: the reply was {why}")
        return Waiting(text)
    state.pending = None
    started = time.perf_counter()
    if said == "yes":
        state.confirmed = (signature_of(pending.tool or "", pending.arguments), reply)
        record = await run_call(state, pending.tool or "", pending.arguments)
        _record(state, "reply", reply, [record], "confirmed")
        if not record.ok and record.error_kind not in ("tool_error", "timeout", "denied"):
            return Failed(f"the confirmed call did not run: {record.error}", "model_mistakes")
        # (refused by the approver after the yes: the routine declined it, as for a no)
        return NextTurn()
    decision = Decision(approved=False, by="user", reason=reply, at=now())
    record = ToolCallRecord(call_id=f"call_{state.call_ids}", name=pending.tool or "",
                            arguments=pending.arguments, error_kind="denied",
                            error="not run: the user declined", approval=decision,
                            duration_s=time.perf_counter() - started)
    state.call_ids += 1
    _record(state, "reply", reply, [record], "declined")
    tracker.decline(pending.step_id)
    return NextTurn()  # the routine goes on where it says (or ends: nothing changed)
