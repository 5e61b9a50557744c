"""What an evaluation run measures and how: one typed record (the CLI's options come from it)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from .conditions import CONDITIONS

__all__ = ["EvalConfig", "Protocol", "results_folder_problem"]

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

    @field_validator("conditions", "protocols", "routines")
    @classmethod
    def _named_once(cls, names: list[str] | None, info: ValidationInfo) -> list[str] | None:
        """At least one name, each once: a condition named twice ran every sample twice
        and counted both; an empty list ran nothing and wrote an empty report."""
        if names is None:
            return None
        if not names:
            raise ValueError(f"no {(info.field_name or '').rstrip('s')} given (expected a "
                             "comma-separated list of names)")
        unknown = [n for n in names if n not in CONDITIONS] \
            if info.field_name == "conditions" else []
        if unknown:  # a usage error before the dataset or a model is loaded
            raise ValueError(f"unknown condition {unknown[0]!r}; choose from "
                             f"{', '.join(CONDITIONS)}")
        return list(dict.fromkeys(names))

    @field_validator("dataset", "out", "routines_from")
    @classmethod
    def _utf8_path(cls, path: Path | None) -> Path | None:
        """A folder name holding a byte that is not UTF-8 (read from the command line as a
        lone surrogate) cannot go into summary.json: say so before the run, not after it."""
        try:
            str(path).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"{str(path)!r}: the folder name is not UTF-8 text ({exc.reason} "
                             f"at character {exc.start}); rename it") from None
        return path

    @field_validator("out")
    @classmethod
    def _results_folder(cls, out: Path, info: ValidationInfo) -> Path:
        """A results folder of its own: not a file, not the dataset's folder (the records
        and reports would sit among its gold files)."""
        dataset = info.data.get("dataset")
        if problem := results_folder_problem(out, [dataset] if dataset is not None else []):
            raise ValueError(problem)
        return out


def results_folder_problem(out: Path, datasets: list[Path]) -> str | None:
    """What is wrong with ``out`` as the results folder of a command over ``datasets``
    (``routine eval``, ``routine route-eval``): a file, or a dataset's own folder."""
    if out.exists() and not out.is_dir():
        return f"{out} is a file; expected a results folder (new, or one this command wrote)"
    if any(out.resolve() == Path(d).resolve() for d in datasets):
        return (f"{out} is the dataset's folder; expected a results folder of its own "
                "(results/ beside it, say): the results would sit among its gold files")
    return None
