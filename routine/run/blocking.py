"""The blocking API's event loop: one per process, in a daemon thread.

``Agent.run`` and ``Conversation.send`` are blocking wrappers around coroutines. With
``asyncio.run`` every call made a new event loop, so every call made a new HTTP client
(connections cannot outlive their loop: a new connection, TLS certificates loaded
again). Here every blocking call runs on ONE loop that lives as long as the process, so
a model keeps one client and its open connections across runs.

The caller's context variables (an OpenTelemetry span, say) are copied into the run;
Ctrl-C in the calling thread cancels the run. Calling it from inside the loop's own
thread (a blocking call in a coroutine that itself runs here) would wait on itself
forever, so that raises instead.

>>> run_blocking(asyncio.sleep(0, result=42))
42
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from ..errors import RoutineError

__all__ = ["run_blocking", "blocking_loop"]

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def blocking_loop() -> asyncio.AbstractEventLoop:
    """The process's loop for blocking calls (started on first use)."""
    global _loop, _thread
    with _lock:
        if _loop is None or _loop.is_closed() or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                while True:
                    try:
                        loop.run_forever()
                        return
                    except (SystemExit, KeyboardInterrupt):
                        # raised in a task (a callback printing to a closed pipe, in a
                        # task of wait_for) stops the loop; the task holds it, and its
                        # awaiters, then run_blocking's caller, get it on the next round
                        continue

            _thread = threading.Thread(target=serve, name="routine-blocking-loop", daemon=True)
            _thread.start()
            ready.wait()
            _loop = loop
        return _loop


SETTLE_S = 10.0  # how long an interrupted blocking call waits for its run to unwind


def run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on the process's blocking loop and wait for its result."""
    loop = blocking_loop()
    if threading.current_thread() is _thread:
        coroutine.close()
        raise RoutineError("a blocking call (Agent.run, Conversation.send) was made inside "
                           "a coroutine running on the blocking loop; await the async "
                           "variant (arun, asend) there instead")
    context = contextvars.copy_context()
    done: concurrent.futures.Future[T] = concurrent.futures.Future()
    task: list[asyncio.Task[Any]] = []

    def start() -> None:
        if not done.set_running_or_notify_cancel():
            coroutine.close()
            return
        created = loop.create_task(coroutine, context=context)
        task.append(created)

        def finished(t: asyncio.Task[Any]) -> None:
            if t.cancelled():  # (``done`` runs already: cancel() would leave it waiting)
                done.set_exception(concurrent.futures.CancelledError(
                    "the run was cancelled from inside it (a CancelledError no caller asked "
                    "for)"))
            elif t.exception() is not None:  # (SystemExit included: see serve)
                done.set_exception(t.exception())  # type: ignore[arg-type]
            else:
                done.set_result(t.result())
            settled.set()

        created.add_done_callback(finished)

    settled = threading.Event()
    loop.call_soon_threadsafe(start)
    try:
        return done.result()
    except BaseException:  # Ctrl-C (or anything) in the caller: stop the run too
        if not done.done():
            loop.call_soon_threadsafe(lambda: [t.cancel() for t in task])
            done.cancel()
            # the run settles its trace as it unwinds (a conversation goes back to waiting
            # or says what was cut short): wait for that, briefly, before the caller saves
            settled.wait(SETTLE_S)
        raise
