"""Run settings: limits, prompt options and sampling, in one typed record."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["RunSettings"]


class RunSettings(BaseModel):
    """How a run behaves. Every field is recorded in the run's trace."""

    model_config = ConfigDict(extra="forbid")

    routine_format: Literal["nl", "json", "none"] = Field(
        "nl", description="How the routine is shown: natural language, JSON, or not at all.")
    step_tracking: bool = Field(
        True, description="Send the current step (with known argument values) every turn.")
    prompt_style: Literal["full", "compact"] = Field(
        "compact", description="compact: each step as `name: description -> tool(arg=source)`, "
        "the state as the call to make, the answer in plain text (149 tokens a request); "
        "full: rules and the routine in sentences, the current step restated every turn, "
        "the answer through a finish tool (392 tokens; the paper conditions of `routine "
        "eval` and the distilled training data use it).")
    offer_tools: Literal["routine", "all"] = Field(
        "routine", description="Offer the model only the routine's tools, or every registered "
        "tool (calls are still limited to the routine's tools).")
    enforce_steps: bool = Field(
        True, description="The step contract: a call must be one the current step allows, "
        "with the argument values the routine fixes; other calls are refused and fed back.")
    decoding: Literal["free", "guided"] = Field(
        "free", description="guided: each reply is constrained to the calls the routine allows "
        "at that turn (JSON schema through the endpoint's structured output), where the "
        "endpoint supports it; free: today's unconstrained replies.")
    inputs_first: bool = Field(
        False, description="Before the first step, one turn reads the routine's inputs from "
        "the request (constrained under guided decoding); a required input not stated ends "
        "the run with a question to the user.")
    answer_facts: bool = Field(
        False, description="Add the finish step's `answer` template, rendered from the step "
        "outputs, to an answer that does not state its values.")
    max_steps: int = Field(20, ge=1, description="Tool calls a run may make.")
    max_retries: int = Field(3, ge=0, description="Model mistakes in a row before the run fails.")
    max_repeats: int = Field(2, ge=1, description="Identical calls allowed before it is a loop.")
    timeout_s: float = Field(600.0, gt=0, description="Wall-clock limit of the whole run.")
    tool_timeout_s: float = Field(60.0, gt=0, description="Limit of one tool call.")
    memory_threshold: int = Field(
        600, ge=0, description="Tool results longer than this (characters) go to variable memory.")
    temperature: float | None = Field(0.0, ge=0, description="Sampling temperature (None: the "
                                      "endpoint's default, not sent).")
    max_tokens: int | None = Field(512, ge=1, description="Tokens per model reply (None: the "
                                   "endpoint's default, not sent; a reasoning model's thinking "
                                   "counts: give it room).")
    seed: int | None = Field(0, description="Sampling seed, where the server supports it.")
    telemetry: bool = Field(
        False, description="Emit OpenTelemetry spans of the run, its turns, model requests and "
        "tool calls (also ROUTINE_OTEL=1; exported as the OTEL_* variables say).")

    def sampling(self) -> dict[str, Any]:
        """The request's sampling settings (those set: None is the endpoint's default)."""
        values = {"temperature": self.temperature, "max_tokens": self.max_tokens,
                  "seed": self.seed}
        return {k: v for k, v in values.items() if v is not None}
