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
    # the file edited in between: "run ... was changed after it was saved"

Without a key nothing is signed or checked (as before). The key is a secret of the
deployment: keep it where the application keeps its other secrets, not beside the traces.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from ..errors import RoutineError
from .trace import RunTrace, trace_json

__all__ = ["KEY_ENV", "trace_key", "sign_trace", "verify_trace", "signature_of"]

KEY_ENV = "ROUTINE_TRACE_KEY"


def trace_key(key: str | bytes | None = None) -> bytes | None:
    """The signing key: ``key`` if given, else ``ROUTINE_TRACE_KEY`` (None: not signing).
    A key shorter than 16 bytes is refused (it is guessed, not kept)."""
    value = key if key is not None else os.environ.get(KEY_ENV) or None
    if value is None:
        return None
    raw = value.encode() if isinstance(value, str) else bytes(value)
    if len(raw) < 16:
        raise RoutineError(f"the trace signing key ({KEY_ENV}) has {len(raw)} bytes: use at "
                           "least 16 (e.g. 32 random bytes as hex)")
    return raw


def signature_of(trace: RunTrace, key: bytes) -> str:
    """HMAC-SHA256 of the trace's JSON without its signature, as hex."""
    payload = trace_json(trace.model_copy(update={"signature": None}))
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def sign_trace(trace: RunTrace, key: str | bytes | None = None) -> RunTrace:
    """The trace with its signature (unchanged when there is no key)."""
    raw = trace_key(key)
    if raw is None:  # (a resumed trace's old signature would not match what it is now)
        return trace.model_copy(update={"signature": None}) if trace.signature else trace
    return trace.model_copy(update={"signature": signature_of(trace, raw)})


def verify_trace(trace: RunTrace, key: str | bytes | None = None) -> None:
    """Raise :class:`RoutineError` when a key is set and ``trace`` is unsigned or its
    signature does not match (nothing to check without a key)."""
    raw = trace_key(key)
    if raw is None:
        return
    if trace.signature is None:
        raise RoutineError(f"run {trace.run_id} is not signed, and {KEY_ENV} is set: only a "
                           "trace saved with the key resumes")
    if not hmac.compare_digest(trace.signature, signature_of(trace, raw)):
        raise RoutineError(f"run {trace.run_id} was changed after it was saved (its signature "
                           "does not match): it does not resume")
