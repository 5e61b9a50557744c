"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1 (real HTTP, no model).

Every framework under test talks to it through its own HTTP client, exactly as it would
talk to a model server, and gets the same replies: the script's next call, or the final
answer. A request's script is found by the conversation's first user message (the task's
query); its position by the tool results the conversation already holds. Every request is
checked: the query must be known, the last call's result must be in the conversation
under the id this server gave it, and the request must offer the tool it is about to be
asked to call. A request that fails a check gets HTTP 400, and the check is counted
(``GET /stats``), so a benchmark can fail a framework that did not do the expected work.

    python -m benchmarks.scripted_server SCRIPT.json [--port 0]

prints ``PORT <n>`` once it listens. ``SCRIPT.json``: ``{query: [reply, ...]}`` where a
reply is ``{"call": NAME, "arguments": {...}}`` or ``{"answer": TEXT}`` (sent as a
``finish`` call when the request offers ``finish`` and ``--finish`` is given, else as text).

``GET /stats`` — requests, seconds spent inside the handler, failed checks;
``POST /record`` ``{"on": true}`` — keep every request body; ``GET /recorded`` returns them
and forgets them; ``POST /reset`` — zero the counters.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["ScriptServer", "main", "serve_in_thread"]


class ScriptServer:
    """The scripted endpoint's state (counters, checks, recorded requests)."""

    def __init__(self, script: dict[str, list[dict[str, Any]]], finish: bool = False):
        self.script = script
        self.finish = finish
        self.requests = 0
        self.connections = 0
        self.writers: set[asyncio.StreamWriter] = set()
        self.busy_s = 0.0
        self.failures: list[str] = []
        self.recording = False
        self.recorded: list[dict[str, Any]] = []

    # ------------------------------------------------------------ chat completions
    def complete(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        messages = body.get("messages") or []
        query = next((_text(m) for m in messages if m.get("role") in ("user", "human")), None)
        replies = self.script.get(query or "")
        if replies is None:
            return self._fail(f"unknown query {query!r}")
        done = [m for m in messages if m.get("role") == "tool"]
        index = len(done)
        if index >= len(replies):
            return self._fail(f"{query!r}: request {index + 1} after the script's "
                              f"{len(replies)} replies")
        if index:  # the previous call's result must be here, under the id we gave
            expected = _call_id(query, index - 1)
            if done[-1].get("tool_call_id") != expected:
                return self._fail(f"{query!r}: the result of call {index} came back as "
                                  f"{done[-1].get('tool_call_id')!r}, not {expected!r}")
        reply = replies[index]
        offered = {t.get("function", {}).get("name") for t in body.get("tools") or []}
        if self.recording:
            self.recorded.append(body)
        if "call" in reply:
            if reply["call"] not in offered:
                return self._fail(f"{query!r}: the request does not offer {reply['call']!r} "
                                  f"(offered: {sorted(n for n in offered if n)})")
            return 200, _completion(body, None, reply["call"], reply.get("arguments", {}),
                                    _call_id(query, index))
        if self.finish and "finish" in offered:
            return 200, _completion(body, None, "finish", {"answer": reply["answer"]},
                                    _call_id(query, index))
        return 200, _completion(body, reply["answer"])

    def _fail(self, why: str) -> tuple[int, dict[str, Any]]:
        self.failures.append(why)
        return 400, {"error": {"message": why, "type": "invalid_request_error"}}

    # ------------------------------------------------------------ HTTP
    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                started = time.perf_counter()
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, v in
                           (line.split(":", 1) for line in lines[1:] if ":" in line)}
                length = int(headers.get("content-length", "0"))
                raw = await reader.readexactly(length) if length else b""
                status, payload = self.route(method, path.split("?")[0], raw)
                data = json.dumps(payload).encode()
                writer.write(b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n" % (
                                 status, b"OK" if status == 200 else b"Bad Request", len(data))
                             + data)
                if path.startswith("/v1/"):
                    self.busy_s += time.perf_counter() - started
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()

    def route(self, method: str, path: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        if method == "POST" and path.endswith("/chat/completions"):
            self.requests += 1
            try:
                body = json.loads(raw)
            except ValueError:
                return self._fail("a body that is not JSON")
            return self.complete(body)
        if path == "/stats":
            return 200, {"requests": self.requests, "busy_s": self.busy_s,
                         "failures": self.failures, "connections": self.connections}
        if path == "/reset":
            self.requests, self.busy_s, self.failures = 0, 0.0, []
            return 200, {}
        if path == "/record":
            self.recording = bool(json.loads(raw or b"{}").get("on"))
            return 200, {}
        if path == "/recorded":
            out, self.recorded = self.recorded, []
            return 200, {"requests": out}
        return 404, {"error": {"message": f"no route {method} {path}"}}


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):  # content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def _call_id(query: str, index: int) -> str:
    return f"call_{zlib.crc32(query.encode()):08x}_{index}"


def _completion(body: dict[str, Any], content: str | None, name: str | None = None,
                arguments: dict[str, Any] | None = None, call_id: str = "") -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if name is not None:
        message["tool_calls"] = [{"id": call_id, "type": "function", "function": {
            "name": name, "arguments": json.dumps(arguments or {})}}]
    return {"id": "chatcmpl-scripted", "object": "chat.completion", "created": 0,
            "model": body.get("model", "scripted"),
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if name else "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


@contextlib.contextmanager
def serve_in_thread(state: ScriptServer) -> Iterator[str]:
    """Serve ``state`` from a daemon thread of this process (tests); yields the base URL."""
    loop = asyncio.new_event_loop()
    ready: list[Any] = []
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        ready.append(loop.run_until_complete(asyncio.start_server(state.serve, "127.0.0.1", 0,
                                                                  limit=1 << 24)))
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True, name="scripted-server")
    thread.start()
    started.wait(30)
    server = ready[0]
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    finally:
        async def stop() -> None:
            server.close()
            for writer in list(state.writers):  # the connections clients keep alive
                writer.close()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            await asyncio.wait(others, timeout=10) if others else None

        asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


async def _main(script: Path, port: int, finish: bool) -> None:
    state = ScriptServer(json.loads(script.read_text(encoding="utf-8")), finish)
    server = await asyncio.start_server(state.serve, "127.0.0.1", port, limit=1 << 24)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("script", type=Path, help="JSON: {query: [reply, ...]}")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--finish", action="store_true",
                        help="answer through the finish tool when the request offers it")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_main(args.script, args.port, args.finish))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
