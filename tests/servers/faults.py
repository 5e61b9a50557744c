"""A fault-injection rig: a scripted OpenAI-compatible server behind a proxy that breaks things.

The server plays a three-call routine (look a claim up, pay it, answer) from whatever
conversation it is sent, so retries and concurrent runs need no state. The proxy, on
127.0.0.1 in front of it, injects one fault per request at random (seeded): a reply
too late, 429 with Retry-After, 500/503, a connection dropped mid-body, malformed
JSON, an empty body, an HTML page, a hallucinated tool, a flood of parallel calls, a
huge reply; or passes the request through.

    python tests/servers/faults.py --runs 200      # prints the counts (what the test checks)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

FAULTS = ("pass", "slow", "429", "500", "503", "drop", "malformed", "empty", "html",
          "hallucinated", "flood", "huge")

ROUTINE = """
name: payout
description: Look a claim up, then pay it.
inputs:
  claim: {type: string, description: the claim number}
steps:
  - id: lookup
    name: Look the claim up
    description: Find the claim.
    tool: get_claim
    args: {claim: "${inputs.claim}"}
  - id: pay
    name: Pay
    description: Pay the claim's amount.
    tool: pay_claim
    args: {claim: "${inputs.claim}", amount: "${steps.lookup.output.amount}"}
    approval: required
  - id: answer
    name: Answer
    description: Say what was paid.
    finish: true
"""


def _completion(message: dict[str, Any]) -> bytes:
    return json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "fake",
                       "choices": [{"index": 0, "message": {"role": "assistant", **message},
                                    "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 10, "completion_tokens": 5,
                                 "total_tokens": 15}}).encode()


def _call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"content": None, "tool_calls": [{"id": f"c_{name}", "type": "function",
                                             "function": {"name": name,
                                                          "arguments": json.dumps(arguments)}}]}


def next_reply(request: dict[str, Any]) -> dict[str, Any]:
    """The routine's next call for this conversation (a well-behaved model)."""
    messages = request["messages"]
    user = next(m["content"] for m in messages if m["role"] == "user")
    claim = user.split()[-1]
    done = {m.get("name") for m in messages if m["role"] == "tool"
            and not str(m.get("content", "")).startswith("Error")}
    if "get_claim" not in done:
        return _call("get_claim", claim=claim)
    if "pay_claim" not in done:
        return _call("pay_claim", claim=claim, amount=120)
    return _call("finish", answer=f"paid 120 for {claim}")


class _Backend(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        data = _completion(next_reply(body))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Proxy(BaseHTTPRequestHandler):
    backend = ""
    rng = random.Random(0)
    lock = threading.Lock()
    injected: collections.Counter[str] = collections.Counter()
    weights: tuple[float, ...] = ()
    slow_s = 1.5

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, data: bytes, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            fault = self.rng.choices(FAULTS, self.weights)[0]
            self.injected[fault] += 1
        quick = {"retry-after-ms": "10"}
        if fault == "slow":
            time.sleep(self.slow_s)  # past the client's timeout
        if fault == "429":
            return self._send(429, b'{"error": {"message": "slow down"}}', headers=quick)
        if fault in ("500", "503"):
            return self._send(int(fault), b"upstream failed", "text/plain", quick)
        if fault == "drop":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "5000")
            self.end_headers()
            self.wfile.write(b'{"id": "x", "choices": [{"mess')
            self.wfile.flush()
            self.connection.shutdown(2)  # the connection dies mid-body
            return None
        if fault == "malformed":
            return self._send(200, b'{"id": "x", "choices": [}')
        if fault == "empty":
            return self._send(200, b"")
        if fault == "html":
            return self._send(200, b"<html><body>Bad gateway</body></html>", "text/html")
        if fault == "hallucinated":
            return self._send(200, _completion(_call("refund_everything", claim="all")))
        if fault == "flood":
            calls = [{"id": f"f{i}", "type": "function", "function": {
                "name": "pay_claim", "arguments": '{"claim": "X", "amount": 1}'}}
                for i in range(300)]
            return self._send(200, _completion({"content": None, "tool_calls": calls}))
        if fault == "huge":
            return self._send(200, _completion({"content": "x" * 3_000_000}))
        forwarded = httpx.post(self.backend + self.path, content=raw,
                               headers={"Content-Type": "application/json"}, timeout=30)
        return self._send(forwarded.status_code, forwarded.content)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (timeout) closes the socket: expected here


@contextmanager
def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def fault_rig(seed: int = 0, fault_rate: float = 0.35) -> Iterator[tuple[str, type[_Proxy]]]:
    """(the proxy's /v1 URL, the proxy class holding the ``injected`` counts)."""
    with _serve(_Backend) as backend:
        proxy = type("Proxy", (_Proxy,), {
            "backend": backend, "rng": random.Random(seed), "lock": threading.Lock(),
            "injected": collections.Counter(),
            "weights": (1 - fault_rate,) + (fault_rate / (len(FAULTS) - 1),) * (len(FAULTS) - 1)})
        with _serve(proxy) as url:
            yield url + "/v1", proxy


def run_suite(runs: int = 120, seed: int = 0, concurrency: int = 12,
              trace_file: Path | None = None) -> dict[str, Any]:
    """``runs`` payout runs through the faulty proxy; returns what happened."""
    import tempfile

    from routine import Agent, RunSettings, ToolRegistry, load_routine_text, tool
    from routine.models.base import set_model_requests_allowed
    from routine.models.client import OpenAIModel
    from routine.run.approval import policy
    from routine.run.trace import dump_traces, load_traces

    executions: collections.Counter[tuple[str, str]] = collections.Counter()
    lock = threading.Lock()

    @tool
    def get_claim(claim: str) -> dict:
        """Look a claim up."""
        with lock:
            executions[("get_claim", claim)] += 1
        return {"claim": claim, "amount": 120}

    @tool
    def pay_claim(claim: str, amount: int) -> dict:
        """Pay a claim."""
        with lock:
            executions[("pay_claim", claim)] += 1
        return {"paid": amount}

    routine = load_routine_text(ROUTINE)
    trace_file = trace_file or Path(tempfile.mkdtemp()) / "traces.jsonl"
    set_model_requests_allowed(True)  # a loopback rig, not a real model
    started = time.perf_counter()
    with fault_rig(seed) as (url, proxy):
        async def one(index: int, gate: asyncio.Semaphore) -> None:
            async with gate:
                model = OpenAIModel("fake", base_url=url, timeout=1.0, max_retries=2)
                agent = Agent(routine, ToolRegistry(get_claim, pay_claim), model,
                              RunSettings(max_steps=6, timeout_s=30), approver=policy(True))
                try:
                    trace = await agent.arun(f"pay claim C-{index}", {"claim": f"C-{index}"})
                finally:
                    await model.aclose()
                dump_traces([trace], trace_file)

        async def all_runs() -> None:
            gate = asyncio.Semaphore(concurrency)
            await asyncio.gather(*(one(i, gate) for i in range(runs)))

        asyncio.run(all_runs())
        injected = dict(proxy.injected)
    traces = list(load_traces(trace_file))
    outcomes = collections.Counter(t.outcome for t in traces)
    kinds = collections.Counter(t.failure_kind for t in traces if t.outcome == "failed")
    return {
        "runs": runs, "traces": len(traces), "distinct_runs": len({t.run_id for t in traces}),
        "complete": sum(1 for t in traces if t.outcome == "answered" and t.answer
                        or t.outcome == "failed" and t.failure and t.failure_kind),
        "outcomes": dict(outcomes), "failure_kinds": dict(kinds),
        "requests": sum(injected.values()), "faults_injected": sum(
            v for k, v in injected.items() if k != "pass"), "by_fault": injected,
        "tool_calls_executed_twice": sum(1 for v in executions.values() if v > 1),
        "paid_claims": sum(1 for (name, claim) in executions if name == "pay_claim"),
        "stray_payments": sum(1 for (name, claim) in executions
                              if name == "pay_claim" and not claim.startswith("C-")),
        "seconds": round(time.perf_counter() - started, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    print(json.dumps(run_suite(args.runs, args.seed), indent=2))
