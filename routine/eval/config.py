"""What an evaluation run measures and how: one typed record (the CLI's options come from it)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from .conditions import CONDITIONS

__all__ = ["EvalConfig", "Protocol"]

Protocol = Literal["step", "task", "conversation"]


class EvalConfig(BaseModel):
    """What to evaluate and how."""

    dataset: Path = Field(description="eval/datasets/<domain>")
    out: Path = Field(description="Results folder (a rerun resumes it).")
    split: Literal["train", "dev", "test"] = Field("test", description="train, dev or test.")
    conditions: list[str] = Field(default_factory=lambda: [n for n, c in CONDITIONS.items()
                                                           if not c.routed and not c.optional],
                                  description="Conditions: " + ", ".join(CONDITIONS) + " (all "
                                  "but the routed ones by default).")
    protocols: list[Protocol] = Field(default_factory=lambda: ["step", "task"],
                                      description="step, task (both by default), "
                                      "conversation (conversational examples: a simulated user "
                                      "answers questions and confirmations).")
    step_limit: int | None = Field(300, ge=0, description="Step samples per condition (0 or "
                                   "None: all).")
    task_limit: int | None = Field(40, ge=0, description="Tasks per condition (0 or None: all).")
    trials: int = Field(1, ge=1, description="Trials per task (pass^k).")
    seed: int = Field(0, description="Sampling and shuffling seed.")
    shuffle_tools: bool = Field(True, description="Shuffle the tool list per sample (off: "
                                "servers can cache prompts).")
    concurrency: int = Field(1, ge=1, description="Requests in flight.")
    temperature: float = Field(0.0, ge=0, description="Sampling temperature.")
    max_tokens: int = Field(256, ge=1, description="Tokens per model reply.")
    enforce_steps: bool = Field(False, description="The step contract during task runs (off: "
                                "the paper's protocol measures the model, not the guard).")
    model: str = Field("", description="The model's name (recorded in the summary).")
    routines: list[str] | None = Field(None, description="Only these routines' queries.")
    router: Literal["lexical", "embedding", "llm"] = Field(
        "embedding", description="The router of the routed conditions (llm: the model under "
        "test chooses among the embedding router's top 5).")
    routines_from: Path | None = Field(
        None, description="Take the routines from this folder (NAME.yaml: drafted ones, say) "
        "instead of the domain's; the gold data stays. Queries of routines the folder lacks "
        "are left out, and so are step samples whose gold calls do not replay under the "
        "folder's routine (counted in the log).")
    report_only: bool = Field(False, description="Rebuild the report from the results in "
                              "--out; run nothing.")
