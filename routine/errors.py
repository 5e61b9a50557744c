"""Every exception Routine raises on purpose, and the :class:`Problem` record.

The model's mistakes are *data*: they go back to the model as messages and end
up in the trace. Only problems the caller must act on raise::

    RoutineError
    ├── SpecError              a routine file is invalid (carries every Problem found)
    │   └── ProjectError       the project file (routine.toml) is invalid
    ├── ToolDefinitionError    a Python function cannot become a tool
    ├── ToolsetSetupError      a toolset's per-run setup did not finish within timeout_s
    ├── ToolsetStopped         a toolset's server stopped during a run (the run ends, kind
    │                          "toolset"; Agent.arun records it, never raises it)
    ├── ModelUnavailable       no model endpoint / embedded model could be used
    │   ├── ModelUnreachable   no connection or no answer in time, after the retries
    │   └── ModelRequestsForbidden   a unit test tried to reach a real model
    ├── ModelRequestError      the endpoint refused one request (HTTP 4xx: prompt over its
    │                          context, unsupported parameter): a fact about that request
    ├── ModelServerError       the endpoint failed (HTTP 5xx, a reply that is not a chat
    │   │                      completion): a fault of the server; a retry may succeed
    │   └── ModelRateLimited   HTTP 429 after the retries (Retry-After honoured)
    ├── RunFailed              raised by ``RunTrace.raise_for_outcome()`` (carries the trace)
    ├── DatasetError           a gold dataset or its domain is wrong (the dataset's bug)
    ├── EvalConfigError        an evaluation names a condition or routine that does not exist
    └── EvalResultsError       a results file holds a line that is not a record

Inside a run, every model error ends the run as a failed trace with the reason and
its kind (``Agent.arun`` never raises them; ``RunTrace.raise_for_outcome()`` does). Three more
exceptions are model-facing and never reach the caller; each goes back to the
model as a message: a reply that cannot be read
(``routine.models.parsing.CallParseError``), arguments that do not fit a tool
(``routine.tools.core.ToolArgumentsError``) and an MCP tool's reported error
(``routine.tools.mcp.McpToolError``). A test checks this list against the code.

One warning class: ``RoutineWarning`` (a ``UserWarning``), what ``Agent(...)`` emits for each
of ``routine validate``'s warnings — the routine runs, but may stop where the warning says
(filter it with the :mod:`warnings` module; ``Agent.warnings`` keeps them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "Problem",
    "RoutineError",
    "SpecError",
    "ProjectError",
    "ToolDefinitionError",
    "ToolsetSetupError",
    "ToolsetStopped",
    "ModelUnavailable",
    "ModelRequestsForbidden",
    "ModelUnreachable",
    "ModelRateLimited",
    "RunFailed",
    "ModelRequestError",
    "ModelServerError",
    "DatasetError",
    "EvalConfigError",
    "EvalResultsError",
    "RoutineWarning",
]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a routine file: where, what, and what was expected."""

    file: str
    line: int
    column: int
    message: str
    expected: str = ""
    #: "error" (the routine is refused) or "warning" (it runs, but may stop where it says)
    severity: str = "error"

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}:{self.column}: {self.severity}: {self.message}"
        return f"{text} (expected {self.expected})" if self.expected else text


class RoutineWarning(UserWarning):
    """A routine that validates but may stop at run time (``routine validate``'s warnings)."""


class RoutineError(Exception):
    """Base class of every exception this package raises on purpose."""


class SpecError(RoutineError):
    """A routine file failed to load or validate; ``problems`` lists every problem."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ProjectError(SpecError):
    """The project file (``routine.toml``: the toolsets and datasets the application
    trusts) is invalid; ``problems`` says where."""


class ToolDefinitionError(RoutineError):
    """A function cannot be turned into a tool (missing annotations, bad name, ...)."""


class ToolsetSetupError(RoutineError):
    """A toolset's per-run ``setup`` did not finish within the run's time limit."""


class ToolsetStopped(RoutineError):
    """A toolset's server (an MCP server) stopped during a run: its tools cannot answer."""


class ModelUnavailable(RoutineError):
    """No usable model: the endpoint cannot be reached or the embedded model is missing."""


class ModelRequestsForbidden(ModelUnavailable):
    """Raised when real model requests are disabled (see ``routine.models.testing``)."""


class ModelUnreachable(ModelUnavailable):
    """The endpoint could not be reached, or did not answer in time, after the retries: a
    fault of the connection, not of the request; a later attempt may succeed."""


class ModelRequestError(RoutineError):
    """The endpoint answered a request with an error (HTTP 4xx other than auth): the prompt
    is longer than the model's context, a parameter is not supported, ..."""

    def __init__(self, message: str, status: int | None = None):
        self.status = status
        super().__init__(message)


class ModelServerError(RoutineError):
    """The endpoint failed to answer (HTTP 5xx after the client's retries, or a reply that
    is not a chat completion: malformed JSON, an HTML page, no choices)."""

    def __init__(self, message: str, status: int | None = None):
        self.status = status
        super().__init__(message)


class ModelRateLimited(ModelServerError):
    """The endpoint kept answering HTTP 429 (too many requests) through the retries."""


class RunFailed(RoutineError):
    """A run ended without an answer. ``trace`` holds everything that happened."""

    def __init__(self, reason: str, trace: Any = None):
        self.reason = reason
        self.trace = trace
        super().__init__(reason)


class DatasetError(RoutineError):
    """A template or gold trajectory is wrong (the dataset's bug, not a model's)."""


class EvalConfigError(RoutineError, ValueError):
    """An evaluation names a condition or routine that does not exist."""


class EvalResultsError(RoutineError, ValueError):
    """A results file in an evaluation's output folder holds a line that is not a record."""
