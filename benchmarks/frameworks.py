"""The three frameworks under test, each set up once (as an application would at start-up)
and run per task through its async and its blocking API.

* ``routine`` — :class:`routine.Agent` (``arun`` / ``run``), one per task's routine, one
  :class:`routine.OpenAIModel` for all;
* ``agents`` — the OpenAI Agents SDK (``Runner.run`` / ``Runner.run_sync``), tracing off
  (it would export to OpenAI);
* ``langgraph`` — LangGraph's prebuilt ReAct agent over ``langchain-openai``'s ChatOpenAI
  (``ainvoke`` / ``invoke``);
* ``openai`` — not a framework: a floor. A hand-written loop over the ``openai`` client
  (``chat.completions.create``, run the tool calls, send the results back), what a program
  without a framework pays (the Agents SDK and LangGraph pay it too);
* ``httpx`` — the lowest floor: the same loop posting the request JSON with one ``httpx``
  client and reading the reply with ``json.loads``. Routine talks to the model this way
  (no ``openai`` types per request), so Routine minus this is what Routine's own code
  costs per round trip: the executor, the prompts, tracking, memory, the records.

The peers are told the routine's own text as their instructions and get the same tool
functions (returning the JSON text Routine shows). Each ``arun`` / ``run`` returns the final
answer text; the caller checks it and the calls the tools received.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

from .tasks import TASKS, Task, as_json_text, instructions

__all__ = ["FLOORS", "FRAMEWORKS", "PEERS", "make"]

FRAMEWORKS = ("routine", "agents", "langgraph", "openai", "httpx")
PEERS = ("agents", "langgraph")  # what Routine is compared with (the last two are floors)
FLOORS = ("openai", "httpx")
MODEL = "scripted"


class RoutineRunner:
    name = "routine"

    def __init__(self, base_url: str, tasks: list[Task] = TASKS, **settings: Any):
        from routine import Agent, OpenAIModel, Toolset, load_routine_text

        toolset = Toolset("bench")
        for function in {f for t in tasks for f in t.tools()}:
            toolset.tool(function)
        self.model = OpenAIModel(MODEL, base_url, "none")
        self.agents = {t.name: Agent(load_routine_text(t.routine, f"<{t.name}>"), [toolset],
                                     self.model, **settings) for t in tasks}

    async def arun(self, task: Task) -> str:
        return _answer(await self.agents[task.name].arun(task.query))

    def run(self, task: Task) -> str:
        return _answer(self.agents[task.name].run(task.query))


def _answer(trace: Any) -> str:
    if trace.outcome != "answered":
        raise RuntimeError(f"routine run {trace.outcome}: {trace.failure}")
    return str(trace.answer)


class AgentsRunner:
    name = "agents"

    def __init__(self, base_url: str, tasks: list[Task] = TASKS):
        from agents import (
            Agent,
            ModelSettings,
            OpenAIChatCompletionsModel,
            Runner,
            function_tool,
            set_tracing_disabled,
        )
        from openai import AsyncOpenAI

        set_tracing_disabled(True)
        self.runner = Runner
        model = OpenAIChatCompletionsModel(MODEL, AsyncOpenAI(base_url=base_url, api_key="none"))
        self.agents = {t.name: Agent(name=t.name, instructions=instructions(t), model=model,
                                     model_settings=ModelSettings(temperature=0),
                                     tools=[function_tool(as_json_text(f)) for f in t.tools()])
                       for t in tasks}

    async def arun(self, task: Task) -> str:
        return str((await self.runner.run(self.agents[task.name], task.query)).final_output)

    def run(self, task: Task) -> str:
        return str(self.runner.run_sync(self.agents[task.name], task.query).final_output)


class LangGraphRunner:
    name = "langgraph"

    def __init__(self, base_url: str, tasks: list[Task] = TASKS):
        from langchain_core.tools import StructuredTool
        from langchain_openai import ChatOpenAI

        with warnings.catch_warnings():  # create_react_agent moved to langchain.agents (v1)
            warnings.simplefilter("ignore")
            from langgraph.prebuilt import create_react_agent

            llm = ChatOpenAI(model=MODEL, base_url=base_url, api_key="none", temperature=0)
            self.graphs = {t.name: create_react_agent(
                llm, [StructuredTool.from_function(as_json_text(f), parse_docstring=True)
                      for f in t.tools()], prompt=instructions(t)) for t in tasks}

    async def arun(self, task: Task) -> str:
        out = await self.graphs[task.name].ainvoke({"messages": [("user", task.query)]})
        return str(out["messages"][-1].content)

    def run(self, task: Task) -> str:
        out = self.graphs[task.name].invoke({"messages": [("user", task.query)]})
        return str(out["messages"][-1].content)


class BareRunner:
    """The floor: the least a program can do with the ``openai`` client to run a task —
    one ``chat.completions.create`` per round trip, the tool calls run and their results
    sent back, the first reply without calls taken as the answer. Tool schemas are built
    once, at start-up."""

    name = "openai"

    def __init__(self, base_url: str, tasks: list[Task] = TASKS):
        import inspect

        from openai import AsyncOpenAI, OpenAI
        from pydantic import create_model

        self.clients = (AsyncOpenAI(base_url=base_url, api_key="none"),
                        OpenAI(base_url=base_url, api_key="none"))
        self.tools: dict[str, dict[str, Any]] = {}
        self.specs: dict[str, list[dict[str, Any]]] = {}
        for task in tasks:
            specs = []
            for function in task.tools():
                params = inspect.signature(function).parameters
                model = create_model(function.__name__, **{  # type: ignore[call-overload]
                    n: (p.annotation, ...) for n, p in params.items()})
                specs.append({"type": "function", "function": {
                    "name": function.__name__, "description": inspect.getdoc(function) or "",
                    "parameters": model.model_json_schema()}})
                self.tools[function.__name__] = as_json_text(function)
            self.specs[task.name] = specs

    async def aclose(self) -> None:
        await self.clients[0].close()
        self.clients[1].close()

    def _start(self, task: Task) -> list[dict[str, Any]]:
        return [{"role": "system", "content": instructions(task)},
                {"role": "user", "content": task.query}]

    def _after(self, messages: list[dict[str, Any]], reply: Any) -> str | None:
        """Run the reply's calls (appending them and their results); the answer if none."""
        message = reply.choices[0].message
        if not message.tool_calls:
            return str(message.content or "")
        messages.append(message.model_dump(exclude_none=True))
        self._call_tools(messages, [(c.id, c.function.name, c.function.arguments)
                                    for c in message.tool_calls])
        return None

    def _call_tools(self, messages: list[dict[str, Any]],
                    calls: list[tuple[str, str, str]]) -> None:
        """Run each (id, name, JSON arguments) call and append its result."""
        for call_id, name, arguments in calls:
            result = self.tools[name](**json.loads(arguments))
            messages.append({"role": "tool", "tool_call_id": call_id, "content": result})

    async def _asend(self, task: Task, messages: list[dict[str, Any]]) -> Any:
        return await self.clients[0].chat.completions.create(
            model=MODEL, messages=messages, tools=self.specs[task.name], temperature=0)

    def _send(self, task: Task, messages: list[dict[str, Any]]) -> Any:
        return self.clients[1].chat.completions.create(
            model=MODEL, messages=messages, tools=self.specs[task.name], temperature=0)

    async def arun(self, task: Task) -> str:
        messages = self._start(task)
        while (answer := self._after(messages, await self._asend(task, messages))) is None:
            pass
        return answer

    def run(self, task: Task) -> str:
        messages = self._start(task)
        while (answer := self._after(messages, self._send(task, messages))) is None:
            pass
        return answer


class HttpxRunner(BareRunner):
    """The lowest floor: :class:`BareRunner`'s loop with the ``openai`` client replaced by
    one ``httpx`` client posting the request as JSON and ``json.loads`` on the reply."""

    name = "httpx"

    def __init__(self, base_url: str, tasks: list[Task] = TASKS):
        import httpx

        super().__init__(base_url, tasks)
        self.url = base_url.rstrip("/") + "/chat/completions"
        headers = {"Authorization": "Bearer none", "Content-Type": "application/json"}
        self.http = (httpx.AsyncClient(headers=headers), httpx.Client(headers=headers))

    async def aclose(self) -> None:
        await super().aclose()
        await self.http[0].aclose()
        self.http[1].close()

    def _body(self, task: Task, messages: list[dict[str, Any]]) -> bytes:
        return json.dumps({"model": MODEL, "messages": messages,
                           "tools": self.specs[task.name], "temperature": 0}).encode()

    def _after(self, messages: list[dict[str, Any]], reply: Any) -> str | None:
        reply.raise_for_status()
        message = json.loads(reply.content)["choices"][0]["message"]
        if not message.get("tool_calls"):
            return str(message.get("content") or "")
        messages.append(message)
        self._call_tools(messages, [(c["id"], c["function"]["name"], c["function"]["arguments"])
                                    for c in message["tool_calls"]])
        return None

    async def _asend(self, task: Task, messages: list[dict[str, Any]]) -> Any:
        return await self.http[0].post(self.url, content=self._body(task, messages))

    def _send(self, task: Task, messages: list[dict[str, Any]]) -> Any:
        return self.http[1].post(self.url, content=self._body(task, messages))


def make(name: str, base_url: str, **options: Any) -> Any:
    """A framework's runner for every task."""
    kinds = {"routine": RoutineRunner, "agents": AgentsRunner, "langgraph": LangGraphRunner,
             "openai": BareRunner, "httpx": HttpxRunner}
    return kinds[name](base_url, **options)
