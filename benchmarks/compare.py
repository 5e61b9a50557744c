"""Routine against the OpenAI Agents SDK and LangGraph: what the framework itself costs.

    benchmarks/run.sh                      # the documented command (makes benchmarks/.venv)
    python -m benchmarks.compare --out benchmarks/results --repeats 60

All three run the same tasks (:mod:`benchmarks.tasks`) against one scripted
OpenAI-compatible server on 127.0.0.1 (:mod:`benchmarks.scripted_server`, its own
process), interleaved in a shuffled order and repeated. Every run is checked: the tools
must have received exactly the task's calls, the answer must be the script's, and the
server must have accepted every request (else the benchmark stops with the reason).

Per run: wall time, the seconds the server spent on its requests (``GET /stats``) and
the seconds inside the tools; **overhead per model round trip** = (wall − server − tools)
/ requests. Reported per framework and API (async, blocking): median and p95, and the
ratio Routine / peer of the medians, all from the same run. Also: import time (each
module in a fresh interpreter, interleaved), and the request bodies of one run per task
and framework (``requests.jsonl``; :mod:`benchmarks.tokens` counts their prompt tokens).

Writes ``results.json`` and ``results.md`` (date, machine, command) into ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import http.client
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .frameworks import FLOORS, FRAMEWORKS, PEERS, RoutineRunner, make
from .tasks import TASKS, CallLog, Task, script

__all__ = ["main", "scripted_server", "check_run", "time_imports"]

APIS = ("async", "blocking")
IMPORTS = {
    "openai": "import openai",
    "routine": "import routine",
    "agents": "import agents",
    "langgraph": "import langgraph.prebuilt, langchain_openai",
}
# Routine's conditions for the token count: the paper's (the full prompt style, as `routine
# eval` runs them), memory off, and the default settings (the compact style)
_FULL = {"prompt_style": "full"}
TOKEN_VARIANTS = {
    "routine nl+track": _FULL,
    "routine nl": {**_FULL, "step_tracking": False},
    "routine json": {**_FULL, "routine_format": "json", "step_tracking": False},
    "routine none": {**_FULL, "routine_format": "none", "step_tracking": False},
    "routine nl+track, memory off": {**_FULL, "memory_threshold": 10**9},
    "routine nl+track, compact": {},
}


@contextlib.contextmanager
def scripted_server(tasks: list[Task] = TASKS, finish: bool = False,
                    replies: dict[str, Any] | None = None) -> Iterator[str]:
    """Start the scripted server in its own process; yields its base URL (``.../v1``)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(replies if replies is not None else script(tasks), handle)
    command = [sys.executable, "-m", "benchmarks.scripted_server", handle.name]
    if finish:
        command.append("--finish")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True,
                               cwd=Path(__file__).resolve().parent.parent)
    try:
        line = process.stdout.readline() if process.stdout else ""
        if not line.startswith("PORT "):
            raise RuntimeError(f"the scripted server did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}/v1"
    finally:
        process.terminate()
        process.wait(10)
        os.unlink(handle.name)


def _get(base_url: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    host = base_url.split("//")[1].split("/")[0]
    connection = http.client.HTTPConnection(host, timeout=30)
    try:
        data = json.dumps(body).encode() if body is not None else None
        connection.request("POST" if data is not None else "GET", path, data)
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def check_run(task: Task, answer: str, failures: list[str]) -> None:
    """Raise unless the run made exactly the task's calls and gave its answer."""
    problems = list(failures)
    if [(n, a) for n, a in CallLog.calls] != task.calls:
        problems.append(f"calls {CallLog.calls} != {task.calls}")
    if answer.strip() != task.answer:
        problems.append(f"answer {answer!r} != {task.answer!r}")
    if problems:
        raise RuntimeError(f"{task.name}: " + "; ".join(problems))


@functools.cache
def _async_loop() -> asyncio.AbstractEventLoop:
    """The async API's loop: one for the process, as an application has (langchain-openai
    keeps one HTTP client for the process, bound to the loop it first ran in)."""
    return asyncio.new_event_loop()


@functools.cache
def _default_loop() -> asyncio.AbstractEventLoop:
    return asyncio.new_event_loop()


def _one(runner: Any, api: str, task: Task, loop: asyncio.AbstractEventLoop,
         base_url: str) -> dict[str, float]:
    before = _get(base_url, "/stats")
    CallLog.reset()
    if api == "blocking":  # the thread's default loop, as a blocking application has it
        asyncio.set_event_loop(_default_loop())  # (LangGraph's ainvoke sets it to ours)
    started = time.perf_counter()
    if api == "async":
        answer = loop.run_until_complete(runner.arun(task))
    else:
        answer = runner.run(task)
    wall = time.perf_counter() - started
    after = _get(base_url, "/stats")
    check_run(task, answer, after["failures"][len(before["failures"]):])
    requests = after["requests"] - before["requests"]
    if requests != task.requests:
        raise RuntimeError(f"{runner.name} {api} {task.name}: {requests} requests, expected "
                           f"{task.requests}")
    server = after["busy_s"] - before["busy_s"]
    return {"wall_s": wall, "server_s": server, "requests": requests,
            "overhead_ms": (wall - server) / requests * 1000}


def _tools_cost(repeats: int = 2000) -> float:
    """Seconds one call of each tool takes (to show they are negligible)."""
    costs = []
    for task in TASKS:
        for name, arguments in task.calls:
            function = next(f for f in task.tools() if f.__name__ == name)
            started = time.perf_counter()
            for _ in range(repeats):
                function(**arguments)
            costs.append((time.perf_counter() - started) / repeats)
    CallLog.reset()
    return max(costs)


def time_imports(repeats: int, modules: dict[str, str] = IMPORTS) -> dict[str, dict[str, float]]:
    """Each module's import time in a fresh interpreter, interleaved, ``repeats`` times."""
    times: dict[str, list[float]] = {name: [] for name in modules}
    for _ in range(repeats):
        for name, statement in modules.items():
            code = (f"import time; t = time.perf_counter(); {statement}; "
                    "print(time.perf_counter() - t)")
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=False)
            if out.returncode != 0:
                raise RuntimeError(f"import {name} failed: {out.stderr[-500:]}")
            times[name].append(float(out.stdout.strip()))
    return {name: _summary(values) for name, values in times.items()}


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"median": statistics.median(values), "p95": p95, "n": len(values)}


def measure(base_url: str, repeats: int, seed: int,
            frameworks: tuple[str, ...] = FRAMEWORKS) -> dict[str, Any]:
    """The interleaved timing runs; returns per-run records and their summaries."""
    # one runner (and HTTP client) per framework and API: a client made for one event
    # loop cannot serve another (the Agents SDK's run_sync keeps a loop of its own)
    runners = {(name, api): make(name, base_url) for name in frameworks for api in APIS}
    loop = _async_loop()
    order = [(f, api, t) for f in frameworks for api in APIS for t in TASKS]
    for framework, api, task in order:  # warm-up (and a first check of every combination)
        _one(runners[framework, api], api, task, loop, base_url)
    rng = random.Random(seed)
    runs: list[dict[str, Any]] = []
    for repeat in range(repeats):
        rng.shuffle(order)
        for framework, api, task in order:
            record = _one(runners[framework, api], api, task, loop, base_url)
            runs.append({"framework": framework, "api": api, "task": task.name,
                         "repeat": repeat, **record})
    summary: dict[str, Any] = {}
    for framework in frameworks:
        for api in APIS:
            mine = [r for r in runs if r["framework"] == framework and r["api"] == api]
            summary[f"{framework} {api}"] = {
                "overhead_ms": _summary([r["overhead_ms"] for r in mine]),
                "wall_ms_per_request": _summary([r["wall_s"] / r["requests"] * 1000
                                                 for r in mine]),
                "server_ms_per_request": _summary([r["server_s"] / r["requests"] * 1000
                                                   for r in mine]),
            }
    ratios, own = {}, {}
    for api in APIS:
        ours = summary.get(f"routine {api}", {}).get("overhead_ms", {}).get("median")
        if ours is None:
            continue
        for peer in frameworks:
            if peer in PEERS:
                ratios[f"routine/{peer} {api}"] = ours / summary[f"{peer} {api}"][
                    "overhead_ms"]["median"]
        for floor in FLOORS:  # Routine's own code: beyond a bare client loop
            if floor in frameworks:
                own[f"{floor} {api}"] = ours - summary[f"{floor} {api}"]["overhead_ms"][
                    "median"]
    return {"runs": runs, "summary": summary, "ratios": ratios, "routine_own_ms": own}


def record_requests(base_url: str, frameworks: tuple[str, ...] = FRAMEWORKS
                    ) -> list[dict[str, Any]]:
    """The request bodies of one run per task, framework and Routine condition."""
    variants: dict[str, Any] = {}
    for framework in frameworks:
        if framework == "routine":
            for label, settings in TOKEN_VARIANTS.items():
                variants[label] = RoutineRunner(base_url, **settings)
        else:
            variants[framework] = make(framework, base_url)
    out = []
    loop = _async_loop()
    for label, runner in variants.items():
        for task in TASKS:
            _get(base_url, "/record", {"on": True})
            CallLog.reset()
            answer = loop.run_until_complete(runner.arun(task))
            _get(base_url, "/record", {"on": False})
            check_run(task, answer, [])
            for index, body in enumerate(_get(base_url, "/recorded")["requests"]):
                out.append({"variant": label, "task": task.name, "index": index,
                            "messages": body["messages"], "tools": body.get("tools") or []})
    return out


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, " \
           f"Python {platform.python_version()}"


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("routine", "openai", "openai-agents", "langgraph", "langchain-openai",
                    "langchain-core", "httpx"):
        with contextlib.suppress(PackageNotFoundError):
            out[package] = version(package)
    return out



def merge_results(folder: Path, **sections: Any) -> None:
    """Add ``sections`` to a finished comparison's results.json and redraw its results.md
    (nothing when the comparison has not run there)."""
    summary = folder / "results.json"
    if not summary.exists():
        return
    results = json.loads(summary.read_text(encoding="utf-8"))
    results.update(sections)
    summary.write_text(json.dumps(results, indent=1), encoding="utf-8")
    (folder / "results.md").write_text(markdown(results), encoding="utf-8")

def markdown(results: dict[str, Any]) -> str:
    """The results as a markdown report (what the README quotes)."""
    summary, ratios, imports = results["summary"], results["ratios"], results["imports"]
    frameworks = [f for f in FRAMEWORKS if f"{f} async" in summary]
    names = {"routine": "Routine", "agents": "Agents SDK", "langgraph": "LangGraph",
             "openai": "bare openai loop", "httpx": "bare httpx loop (floor)"}
    lines = ["# Framework overhead: Routine, the OpenAI Agents SDK, LangGraph",
             "", f"Measured {results['date']} on {results['machine']}.",
             f"Command: `{results['command']}`. Versions: "
             + ", ".join(f"{k} {v}" for k, v in results["versions"].items()) + ".",
             "", f"{results['repeats']} interleaved repeats of {len(TASKS)} tasks "
             f"({', '.join(t.name for t in TASKS)}) per framework and API; every run checked "
             "(calls, answer, every request accepted by the scripted server). Overhead per "
             "model round trip = (wall − time inside the server) / requests; tools are "
             f"dictionary look-ups (≤ {results['tool_call_us']:.0f} µs a call). "
             "Median (p95), milliseconds.", "",
             "| API | " + " | ".join(names[f] for f in frameworks) + " | Routine / peer |",
             "|---|" + "---|" * (len(frameworks) + 1)]
    for api in APIS:
        cells = [f"{summary[f'{f} {api}']['overhead_ms']['median']:.2f} "
                 f"({summary[f'{f} {api}']['overhead_ms']['p95']:.2f})" for f in frameworks]
        ratio = ", ".join(f"{ratios[f'routine/{p} {api}']:.2f}× {names[p]}"
                          for p in frameworks if p in PEERS)
        label = "async (`arun` / `Runner.run` / `ainvoke`)" if api == "async" else \
            "blocking (`run` / `run_sync` / `invoke`)"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {ratio} |")
    server = statistics.median(summary[f"{f} {a}"]["server_ms_per_request"]["median"]
                               for f in frameworks for a in APIS)
    own = results.get("routine_own_ms") or {}
    if own:
        lines += ["", "What Routine's own code adds per round trip beyond a bare loop (the "
                  "same requests, the tools run, nothing else; the `openai` client's loop, "
                  "and the lowest floor: one `httpx` client posting JSON, `json.loads` on "
                  "the reply): "
                  + ", ".join(f"{ms:+.2f} ms beyond the {floor} loop ({api})"
                              for floor, api, ms in ((*k.split(), v) for k, v in own.items()))
                  + "."]
    lines += ["", f"The scripted server spent a median {server:.2f} ms on each request.", "",
              "Import time (fresh interpreter, median of "
              f"{imports['openai']['n']}, seconds):", "",
              "| openai | routine | Agents SDK | LangGraph + langchain-openai | routine − openai |",
              "|---|---|---|---|---|",
              f"| {imports['openai']['median']:.2f} | {imports['routine']['median']:.2f} | "
              f"{imports.get('agents', {}).get('median', float('nan')):.2f} | "
              f"{imports.get('langgraph', {}).get('median', float('nan')):.2f} | "
              f"{imports['routine']['median'] - imports['openai']['median']:.2f} |"]
    if results.get("tokens"):
        lines += ["", results["tokens"]]
    if results.get("eval_throughput_line"):
        lines += ["", results["eval_throughput_line"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--repeats", type=int, default=60, help="interleaved repeats")
    parser.add_argument("--import-repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS),
                        help="comma-separated: " + ", ".join(FRAMEWORKS))
    args = parser.parse_args(argv)
    frameworks = tuple(f for f in args.frameworks.split(",") if f)
    args.out.mkdir(parents=True, exist_ok=True)
    with scripted_server() as base_url:
        timed = measure(base_url, args.repeats, args.seed, frameworks)
        # the httpx floor sends what the openai loop sends: no token count of its own
        requests = record_requests(base_url, tuple(f for f in frameworks if f != "httpx"))
    with open(args.out / "requests.jsonl", "w", encoding="utf-8") as handle:
        for row in requests:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    modules = {k: v for k, v in IMPORTS.items() if k in ("openai", "routine") or k in frameworks}
    results = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": _machine(),
        "command": " ".join(["python -m benchmarks.compare", *(argv or sys.argv[1:])]),
        "versions": _versions(), "repeats": args.repeats, "seed": args.seed,
        "tool_call_us": _tools_cost() * 1e6, "imports": time_imports(args.import_repeats,
                                                                     modules),
        **timed,
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    (args.out / "results.md").write_text(markdown(results), encoding="utf-8")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
