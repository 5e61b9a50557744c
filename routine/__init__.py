"""Routine: make LLM agents follow your business processes.

Write the process as a YAML routine, check it against the tools' schemas,
run it with any OpenAI-compatible model (or the embedded local one), and get
a typed trace of every step.
"""

from .errors import (
    EvalConfigError,
    EvalResultsError,
    ModelRequestError,
    ModelRequestsForbidden,
    ModelUnavailable,
    RoutineError,
    RunFailed,
    SpecError,
    ToolDefinitionError,
)
from .executor import Agent
from .model import Model, ModelReply, OpenAIModel
from .planner import Planner
from .settings import RunSettings
from .spec import LoadedRoutine, Routine, Step, load_routine, load_routine_text
from .tools import RunContext, Tool, ToolRegistry, Toolset, tool
from .trace import RunTrace, ToolCallRecord, TurnRecord, dump_traces, load_traces
from .validate import Problem, check_routine

__all__ = [
    "Agent",
    "EvalConfigError",
    "EvalResultsError",
    "LoadedRoutine",
    "Model",
    "ModelReply",
    "ModelRequestError",
    "ModelRequestsForbidden",
    "ModelUnavailable",
    "OpenAIModel",
    "Planner",
    "Problem",
    "Routine",
    "RoutineError",
    "RunContext",
    "RunFailed",
    "RunSettings",
    "RunTrace",
    "SpecError",
    "Step",
    "Tool",
    "ToolCallRecord",
    "ToolDefinitionError",
    "ToolRegistry",
    "Toolset",
    "TurnRecord",
    "check_routine",
    "dump_traces",
    "load_routine",
    "load_routine_text",
    "load_traces",
    "tool",
]
__version__ = "0.1.0"
