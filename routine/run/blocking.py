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
from dataclasses import dataclass
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
                        # task of wait_for): the task holds it and its awaiters get it on
                        # the next round, as the run's own error (run_blocking's guard)
                        continue

            _thread = threading.Thread(target=serve, name="routine-blocking-loop", daemon=True)
            _thread.start()
            ready.wait()
            _loop = loop
        return _loop


@dataclass
class _Escape:
    """A SystemExit or KeyboardInterrupt of a run, carried to the caller's thread."""

    inner: BaseException


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

    async def guarded() -> T | _Escape:  # SystemExit or KeyboardInterrupt raised in the
        try:                             # run (rich on a closed pipe, say) would stop the
            return await coroutine       # loop itself, and the caller would wait forever:
        except (SystemExit, KeyboardInterrupt) as exc:  # it gets them instead
            return _Escape(exc)

    def start() -> None:
        if not done.set_running_or_notify_cancel():
            coroutine.close()
            return
        created = loop.create_task(guarded(), context=context)
        task.append(created)

        def finished(t: asyncio.Task[Any]) -> None:
            if t.cancelled():
                done.cancel()
            elif t.exception() is not None:
                done.set_exception(t.exception())  # type: ignore[arg-type]
            elif isinstance(result := t.result(), _Escape):
                done.set_exception(result.inner)
            else:
                done.set_result(result)

        created.add_done_callback(finished)

    loop.call_soon_threadsafe(start)
    try:
        return done.result()
    except BaseException:  # Ctrl-C (or anything) in the caller: stop the run too
        if not done.done():
            loop.call_soon_threadsafe(lambda: [t.cancel() for t in task])
            done.cancel()
        raise
