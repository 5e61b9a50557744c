"""Fault injection: ≥100 runs through a proxy that breaks the endpoint at random.

Every run must end with a complete trace (an answer, or a failure with its kind and
reason), none lost, none corrupt, no tool call executed twice, no write the routine
does not allow. The counts print with ``pytest -s tests/test_faults.py`` (or
``python tests/servers/faults.py --runs 120``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tracemalloc

import pytest

from routine import Agent, RunContext, RunSettings, Toolset, load_routine_text
from routine.models.base import set_model_requests_allowed
from routine.models.client import OpenAIModel
from routine.run.approval import policy

from .servers.faults import FAULTS, ROUTINE, fault_rig, run_suite


@pytest.mark.timeout(300)
def test_every_run_ends_in_a_complete_trace_whatever_the_endpoint_does(tmp_path):
    counts = run_suite(runs=120, seed=0, trace_file=tmp_path / "traces.jsonl")
    print(json.dumps(counts, indent=2))
    assert counts["traces"] == counts["distinct_runs"] == counts["complete"] == 120
    assert set(counts["by_fault"]) == set(FAULTS)  # every kind of fault was injected
    assert counts["faults_injected"] >= 100
    assert counts["tool_calls_executed_twice"] == 0 and counts["stray_payments"] == 0
    assert counts["outcomes"].get("answered", 0) > 0
    assert set(counts["failure_kinds"]) <= {"endpoint", "rate_limited", "model_mistakes",
                                            "max_steps", "timeout"}


@pytest.mark.timeout(300)
def test_fifty_concurrent_runs_keep_to_their_own_state(tmp_path):
    """50 runs at once against one local server: all complete, each run's database and
    variable memory hold only its own values, and memory stays bounded."""
    claims = Toolset("claims")

    @contextlib.contextmanager
    def ledger():
        yield {"paid": []}  # a fresh "database" per run

    claims.setup = ledger

    @claims.tool
    def get_claim(ctx: RunContext[dict], claim: str) -> dict:
        """Look a claim up (a long result: it goes to variable memory)."""
        return {"claim": claim, "amount": 120, "history": [claim] * 200}

    @claims.tool
    def pay_claim(ctx: RunContext[dict], claim: str, amount: int) -> dict:
        """Pay a claim."""
        ctx.deps["paid"].append(claim)
        return {"paid": amount, "ledger": list(ctx.deps["paid"])}

    routine = load_routine_text(ROUTINE)
    set_model_requests_allowed(True)
    ledgers: dict[str, list[str]] = {}
    tracemalloc.start()
    with fault_rig(fault_rate=0.0) as (url, _):
        async def one(i: int):
            model = OpenAIModel("fake", base_url=url, timeout=20)
            agent = Agent(routine, [claims], model, RunSettings(memory_threshold=100),
                          approver=policy(True))
            try:
                return await agent.arun(f"pay claim C-{i}", {"claim": f"C-{i}"}, on_end=lambda
                                        contexts, i=i: ledgers.update({f"C-{i}": list(
                                            contexts["claims"].deps["paid"])}))
            finally:
                await model.aclose()

        async def all_runs():
            return await asyncio.gather(*(one(i) for i in range(50)))

        traces = asyncio.run(all_runs())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert [t.outcome for t in traces] == ["answered"] * 50
    for i, trace in enumerate(traces):
        claim = f"C-{i}"
        assert ledgers[claim] == [claim]  # its own database only
        assert trace.answer == f"paid 120 for {claim}"
        stored = [c for c in trace.tool_calls if c.memory_key]
        assert stored and all(c.result["claim"] == claim for c in stored)
        assert all(claim in json.dumps(c.resolved_arguments) for c in trace.tool_calls)
    assert peak < 200 * 2**20  # bounded: 50 runs in well under 200 MB of Python objects
