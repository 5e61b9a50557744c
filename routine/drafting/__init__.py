"""Drafting: an expert's plain-language draft of a process becomes a routine that validates.

* :mod:`.prompt` — the drafting prompt (the format, a worked help-desk example, the tools,
  the draft) and the repair prompt (numbered YAML and every problem);
* :mod:`.schema` — the reduced JSON schema replies are held to under guided decoding;
* :mod:`.reply` — a reply read as a routine and written as YAML;
* :mod:`.draft` — the draft, validate and repair loop (:func:`adraft`, :func:`draft`);
* :mod:`.diff` — how one routine differs from another, step by step.
"""

from .diff import InputChange, RoutineDiff, StepChange, StepRef, diff_routines
from .draft import (
    INVALID_MARKER,
    DraftAttempt,
    DraftResult,
    adraft,
    check_draft,
    draft,
    toolset_registry,
)
from .prompt import repair_prompt, request_prompt, system_prompt, tool_listing
from .reply import routine_data, routine_yaml
from .schema import draft_schema

__all__ = ["INVALID_MARKER", "DraftAttempt", "DraftResult", "InputChange",
           "RoutineDiff", "StepChange", "StepRef", "adraft", "check_draft", "diff_routines",
           "draft", "draft_schema", "repair_prompt", "request_prompt", "routine_data", "routine_yaml",
           "system_prompt", "tool_listing", "toolset_registry"]
