"""The chat-completion reply the test endpoints send (real HTTP, no model)."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any


def send_completion(handler: BaseHTTPRequestHandler, model: str, message: dict[str, Any],
                    usage: tuple[int, int] = (100, 10)) -> None:
    """Write one OpenAI chat completion holding ``message`` as the response."""
    payload = {"id": "x", "object": "chat.completion", "created": 0, "model": model,
               "choices": [{"index": 0, "finish_reason": "stop",
                            "message": {"role": "assistant", **message}}],
               "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                         "total_tokens": sum(usage)}}
    data = json.dumps(payload).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
