"""A real OpenAI-compatible HTTP endpoint that plays a gold dataset perfectly.

For a request, it finds the example whose query is the conversation's first user
message, counts the tool results the conversation already holds, and replies with the
next gold call (as a ``tool_calls`` reply), or, when every call is made, with ``finish``
and the gold answer. So ``routine eval`` over this endpoint must score every step and
every task right: a test of the whole evaluation path (HTTP client, executor, scoring,
end states) on a project's own data, with no model.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.servers.completions import send_completion


def _reply(example: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    done = sum(1 for m in messages if m.get("role") == "tool")
    calls = example["calls"]
    if done < len(calls):
        name, arguments = calls[done]["name"], calls[done]["arguments"]
    else:
        name, arguments = "finish", {"answer": example["answer"]}
    return {"content": None, "tool_calls": [{
        "id": f"call_{done}", "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)}}]}


@contextmanager
def gold_endpoint(dataset: Path) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(base URL, the requests received) of a gold endpoint for ``dataset``'s splits."""
    examples = {}
    for split in dataset.glob("*.jsonl"):
        for line in split.read_text(encoding="utf-8-sig").split("\n"):
            if line.strip():
                example = json.loads(line)
                examples[example["query"]] = example
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append(body)
            query = next(m["content"] for m in body["messages"] if m["role"] == "user")
            message = _reply(examples[query], body["messages"])
            send_completion(self, body["model"], message, (10, 5))

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", received
    finally:
        server.shutdown()
        server.server_close()
