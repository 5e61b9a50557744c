"""Signed traces: a saved conversation that was edited does not resume.

A waiting run's trace is its state (the tracker, variable memory, what the user said and
confirmed): whoever can edit the file could change what a resumed confirmation runs. With
a key (``ROUTINE_TRACE_KEY`` in the environment, or passed in code) every trace written by
:func:`~routine.run.trace.dump_traces` carries an HMAC-SHA256 ``signature`` over its JSON,
and :func:`~routine.run.conversation.restore` refuses a trace whose signature is missing or
does not match — one byte changed anywhere (an amount, a yes, a step marked done) is
refused with a :class:`~routine.errors.RoutineError` naming the run.

    ROUTINE_TRACE_KEY=$(openssl rand -hex 32) routine chat refund "..." --trace-dir t
    ROUTINE_TRACE_KEY=... routine chat refund --resume t            # resumes
    # the file edited in between: "run ... does not match its signature"

Without a key nothing is signed, and a signed trace is refused (there is no key to check
it). The key is a secret of the deployment: keep it where the application keeps its other
secrets, not beside the traces. A signature proves a trace was written by a holder of the
key; it does not prove it is the latest: an older copy of a conversation, signed, still
verifies (``routine chat --resume`` goes on only from a run whose last line waits).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any, Protocol, TypeVar

from ..errors import RoutineError

__all__ = ["KEY_ENV", "trace_key", "sign_trace", "verify_trace", "signature_of", "payload"]

KEY_ENV = "ROUTINE_TRACE_KEY"


class Signable(Protocol):
    """What is signed: a :class:`~routine.run.trace.RunTrace` (this module does not import
    it: the trace module writes signed lines with it)."""

    run_id: str
    signature: str | None

    @property
    def read_payload(self) -> bytes | None: ...

    def model_copy(self, *, update: dict[str, Any] | None = None,
                   deep: bool = False) -> Any: ...

    def model_dump_json(self) -> str: ...


T = TypeVar("T", bound=Signable)


def trace_key(key: str | bytes | None = None) -> bytes | None:
    """The signing key: ``key`` if given, else ``ROUTINE_TRACE_KEY`` (None: not signing).
    A key shorter than 16 bytes is refused (it is guessed, not kept): call this before a
    run, so a bad key is found before the tools act, not when the trace is written."""
    value = key if key is not None else os.environ.get(KEY_ENV) or None
    if value is None:
        return None
    raw = value.encode() if isinstance(value, str) else bytes(value)
    if len(raw) < 16:
        raise RoutineError(f"the trace signing key ({KEY_ENV}) has {len(raw)} bytes: use at "
                           "least 16 (e.g. 32 random bytes as hex)")
    return raw


def payload(data: dict[str, Any]) -> bytes:
    """What is signed: the trace's JSON object without its signature, keys sorted, compact.
    Computed from the line as written (a reader of another version, with fields added or
    dropped, checks the bytes that were signed, not its own re-serialisation)."""
    rest = {k: v for k, v in data.items() if k != "signature"}
    return json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=True).encode("utf-8", "surrogatepass")


def _hmac(key: bytes, signed: bytes) -> str:
    return hmac.new(key, signed, hashlib.sha256).hexdigest()


def signature_of(trace: Signable, key: bytes) -> str:
    """HMAC-SHA256 of the trace's :func:`payload` as hex: of the line it was read from,
    else of the trace as it would be written."""
    return _hmac(key, trace.read_payload or payload(json.loads(trace.model_dump_json())))


def sign_trace(trace: T, key: str | bytes | None = None) -> T:
    """The trace with its signature over what it is now (without one when there is no key:
    a resumed trace's old signature would not match it)."""
    raw = trace_key(key)
    fresh = trace.model_copy(update={"signature": None})
    if raw is None:
        return fresh
    signature = _hmac(raw, payload(json.loads(fresh.model_dump_json())))
    return fresh.model_copy(update={"signature": signature})


def verify_trace(trace: Signable, key: str | bytes | None = None, *,
                 use: str = "resume") -> None:
    """Raise :class:`RoutineError` when ``trace`` may not resume (``use``: what else it may
    not do, e.g. become training data): a key is set and the trace is unsigned or its
    signature does not match, or the trace is signed and no key is set to check it."""
    raw = trace_key(key)
    if raw is None:
        if trace.signature is not None:
            raise RoutineError(f"run {trace.run_id} is signed, but no key is set to check it: "
                               f"set {KEY_ENV} (or pass trace_key=) as when it was saved")
        return
    if trace.signature is None:
        raise RoutineError(f"run {trace.run_id} is not signed, and a trace key is set: only "
                           f"a trace saved with the key may {use}")
    if not hmac.compare_digest(trace.signature, signature_of(trace, raw)):
        raise RoutineError(f"run {trace.run_id} does not match its signature: it was changed "
                           f"after it was saved, or signed with another key; it may not "
                           f"{use}")
