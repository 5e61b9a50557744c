"""Exceptions raised by Routine.

The model's mistakes are *data*: they go back to the model as messages and end
up in the trace. Only problems the caller must act on raise::

    RoutineError
    ├── SpecError            a routine file is invalid (carries every Problem found)
    ├── ToolDefinitionError  a Python function cannot become a tool
    ├── ModelUnavailable     no model endpoint / embedded model could be used
    │   └── ModelRequestsForbidden   a unit test tried to reach a real model
    ├── ModelRequestError    the endpoint refused one request (e.g. prompt over its context)
    └── RunFailed            a run stopped without an answer (carries its trace)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .validate import Problem

__all__ = [
    "RoutineError",
    "SpecError",
    "ToolDefinitionError",
    "ModelUnavailable",
    "ModelRequestsForbidden",
    "RunFailed",
    "ModelRequestError",
    "EvalConfigError",
    "EvalResultsError",
]


class RoutineError(Exception):
    """Base class of every exception this package raises on purpose."""


class SpecError(RoutineError):
    """A routine file failed to load or validate; ``problems`` lists every problem."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ToolDefinitionError(RoutineError):
    """A function cannot be turned into a tool (missing annotations, bad name, ...)."""


class ModelUnavailable(RoutineError):
    """No usable model: the endpoint cannot be reached or the embedded model is missing."""


class ModelRequestsForbidden(ModelUnavailable):
    """Raised when real model requests are disabled (see ``routine.testing``)."""


class ModelRequestError(RoutineError):
    """The endpoint answered a request with an error (HTTP 4xx other than auth): the prompt
    is longer than the model's context, a parameter is not supported, ..."""


class RunFailed(RoutineError):
    """A run ended without an answer. ``trace`` holds everything that happened."""

    def __init__(self, reason: str, trace: Any = None):
        self.reason = reason
        self.trace = trace
        super().__init__(reason)


class EvalConfigError(RoutineError, ValueError):
    """An evaluation names a condition or routine that does not exist."""


class EvalResultsError(RoutineError, ValueError):
    """A results file in an evaluation's output folder holds a line that is not a record."""
