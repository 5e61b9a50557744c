"""What OpenTelemetry costs a run: off, on without export, on with an in-process exporter.

    python benchmarks/telemetry_overhead.py [--runs 300] [--rounds 5]

A three-call routine (lookup, balance, answer: 3 turns, 2 tool calls, 10 spans when on)
runs in one event loop with an in-process model double, so what is timed is the
executor and the telemetry, never a network. The conditions are interleaved round by
round; the medians per run and the difference per turn are printed as a markdown table.
Needs the ``otel`` extra.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time
from datetime import UTC, datetime

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from routine import Agent, ToolRegistry, load_routine_text, tool
from routine.models.testing import FunctionModel, Request, call
from routine.run import telemetry

ROUTINE = """
name: balance
description: Tell a customer their balance.
inputs: {name: {type: string, description: the customer's name}}
steps:
  - {id: lookup, name: Find the customer, description: Look the customer up., tool: lookup,
     args: {name: "${inputs.name}"}}
  - {id: balance, name: Get the balance, description: Get their balance., tool: balance,
     args: {customer_id: "${steps.lookup.output.id}"}}
  - {id: answer, name: Answer, description: Say the balance., finish: true}
"""


@tool
def lookup(name: str) -> dict:
    """Find a customer.

    Args:
        name: the customer's name.
    """
    return {"id": 7, "name": name}


@tool
def balance(customer_id: int) -> dict:
    """A customer's balance.

    Args:
        customer_id: the customer's id.
    """
    return {"customer_id": customer_id, "balance": 12.5}


def play(request: Request):
    done = sum(m.role == "tool" for m in request.messages)
    return [call("lookup", name="Ana"), call("balance", customer_id=7),
            call("finish", answer="Ana has 12.5")][done]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="runs per condition per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    routine = load_routine_text(ROUTINE, "<balance>")
    registry = ToolRegistry(lookup, balance)
    bare, exported = TracerProvider(), TracerProvider()
    exporter = InMemorySpanExporter()
    exported.add_span_processor(SimpleSpanProcessor(exporter))
    conditions = {"off": (False, None), "on, no exporter": (True, bare),
                  "on, in-memory exporter": (True, exported)}
    times: dict[str, list[float]] = {name: [] for name in conditions}

    async def rounds() -> None:
        for _ in range(args.rounds):
            for name, (on, provider) in conditions.items():
                telemetry.use_tracer_provider(provider)
                agent = Agent(routine, registry, FunctionModel(play), telemetry=on)
                for _ in range(args.runs):
                    started = time.perf_counter()
                    trace = await agent.arun("What is Ana's balance?")
                    times[name].append(time.perf_counter() - started)
                    assert trace.outcome == "answered", trace.failure
                exporter.clear()

    asyncio.run(rounds())
    telemetry.use_tracer_provider(None)
    base = statistics.median(times["off"])
    print(f"{datetime.now(UTC):%Y-%m-%d} · {platform.processor() or platform.machine()} · "
          f"Python {platform.python_version()} · {args.rounds} rounds × {args.runs} runs\n")
    print("| telemetry | median per run | p95 per run | added per turn (3 turns) |")
    print("|---|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        p95 = statistics.quantiles(values, n=20)[-1]
        added = (median - base) / 3
        print(f"| {name} | {median * 1e3:.3f} ms | {p95 * 1e3:.3f} ms | "
              f"{'—' if name == 'off' else f'{added * 1e6:.0f} µs'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
