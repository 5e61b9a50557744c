"""The three frameworks under test, each set up once (as an application would at start-up)
and run per task through its async and its blocking API.

* ``routine`` — :class:`routine.Agent` (``arun`` / ``run``), one per task's routine, one
  :class:`routine.OpenAIModel` for all;
* ``agents`` — the OpenAI Agents SDK (``Runner.run`` / ``Runner.run_sync``), tracing off
  (it would export to OpenAI);
* ``langgraph`` — LangGraph's prebuilt ReAct agent over ``langchain-openai``'s ChatOpenAI
  (``ainvoke`` / ``invoke``).

The peers are told the routine's own text as their instructions and get the same tool
functions (returning the JSON text Routine shows). Each ``arun`` / ``run`` returns the final
answer text; the caller checks it and the calls the tools received.
"""

from __future__ import annotations

import warnings
from typing import Any

from .tasks import TASKS, Task, as_json_text, instructions

__all__ = ["FRAMEWORKS", "make"]

FRAMEWORKS = ("routine", "agents", "langgraph")
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


def make(name: str, base_url: str, **options: Any) -> Any:
    """A framework's runner for every task."""
    kinds = {"routine": RoutineRunner, "agents": AgentsRunner, "langgraph": LangGraphRunner}
    return kinds[name](base_url, **options)
