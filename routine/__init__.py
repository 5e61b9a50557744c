"""Routine: make LLM agents follow your business processes.

Write the process as a YAML routine, check it against the tools' schemas,
run it with any OpenAI-compatible model (or the embedded local one), and get
a typed trace of every step.

The package is layered; a layer imports only the layers below it (a test holds this)::

    errors                 every error class and the Problem record
    tools/   models/       typed tools, MCP, SQLite  |  model protocol, clients, messages
    spec/                  the routine format, its flow, validation against tools
    run/                   the executor: turns, prompts, tracking, memory, trace
    routing/               procedure memory: a request finds its routine in a library
    eval/                  gold data, step and task protocols, statistics, reports
    cli/                   the ``routine`` command
"""

from .errors import (
    DatasetError,
    EvalConfigError,
    EvalResultsError,
    ModelRequestError,
    ModelRequestsForbidden,
    ModelServerError,
    ModelUnavailable,
    Problem,
    RoutineError,
    RoutineWarning,
    RunFailed,
    SpecError,
    ToolDefinitionError,
    ToolsetSetupError,
    ToolsetStopped,
)
from .models import Message, Model, ModelReply, OpenAIModel, TurnGuide
from .routing import Library, RoutedAgent, RouteDecision, make_router
from .run import (
    Agent,
    Conversation,
    Planner,
    Reply,
    RunSettings,
    RunTrace,
    ToolCallRecord,
    TurnRecord,
    dump_traces,
    load_traces,
)
from .spec import LoadedRoutine, Routine, Step, check_routine, load_routine, load_routine_text
from .tools import RunContext, Tool, ToolRegistry, Toolset, tool

__all__ = [
    "Agent",
    "Library",
    "RoutedAgent",
    "RouteDecision",
    "make_router",
    "Conversation",
    "Reply",
    "DatasetError",
    "EvalConfigError",
    "EvalResultsError",
    "LoadedRoutine",
    "Message",
    "Model",
    "ModelReply",
    "ModelRequestError",
    "ModelRequestsForbidden",
    "ModelServerError",
    "ModelUnavailable",
    "OpenAIModel",
    "Planner",
    "Problem",
    "Routine",
    "RoutineError",
    "RoutineWarning",
    "RunContext",
    "RunFailed",
    "RunSettings",
    "RunTrace",
    "SpecError",
    "Step",
    "Tool",
    "ToolCallRecord",
    "ToolDefinitionError",
    "ToolsetSetupError",
    "ToolsetStopped",
    "ToolRegistry",
    "Toolset",
    "TurnGuide",
    "TurnRecord",
    "check_routine",
    "dump_traces",
    "load_routine",
    "load_routine_text",
    "load_traces",
    "tool",
]
__version__ = "0.1.0"
