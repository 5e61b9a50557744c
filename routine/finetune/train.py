"""LoRA fine-tuning on distilled SFT data with trl + peft (``routine finetune``).

    routine finetune --recipe finetune/recipes/embedded-0.5b-cpu.yaml --data sft.jsonl \\
        --out runs/ft-0.5b --max-steps 200

A :class:`FinetuneConfig` holds every setting with the paper's defaults (LoRA
rank 8, learning rate 1e-4, 3 epochs, effective batch 16); a YAML recipe sets
some of them and command-line flags override the recipe. The loss covers the
completions only (the call the executor wants at each step); prompts are the
executor's own requests (:mod:`routine.finetune.distill`). A run saves
checkpoints and resumes from the last one when started again with the same
``--out``, so a long CPU run survives being stopped.

Base models: a Hugging Face model folder, or an embedded model's name
(``qwen2.5-coder-0.5b``): transformers loads its GGUF and dequantises it, and the
tokenizer gets the corrected chat template the embedded server uses, so training
renders prompts exactly as inference does. Precision ``auto`` probes the
processor: bf16 where it is faster than fp32 (CPUs with native bf16, GPUs).
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from os.path import commonprefix
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import RoutineError, RoutineWarning
from ..run.trace import write_whole
from .schedules import SCHEDULES, multiplier, refined_from_grad_norms

_log = logging.getLogger(__name__)

__all__ = ["FinetuneConfig", "FinetuneResult", "load_recipe", "finetune", "probe_bf16",
           "load_base", "balance_variants", "as_text_calls", "resolve_reply_format", "read_log"]

PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class FinetuneConfig(BaseModel):
    """A fine-tuning run (the paper's defaults)."""

    # (an infinite rate trained NaN into the adapter, infinite epochs failed after loading)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    data: Path = Field(description="SFT data from `routine distill` (JSONL).")
    eval_data: Path | None = Field(None, description="Held-out SFT data (e.g. the dev split's "
                                   "`routine distill`): its loss is measured after training.")
    eval_limit: int | None = Field(None, ge=1, description="Only the first N held-out "
                                   "examples (a fixed subset: the loss of many runs compared "
                                   "on CPU).")
    base: str = Field(description="A Hugging Face model folder or hub id, an embedded model's "
                      "name, or random:<shape> (a randomly initialised Qwen3 shape, for "
                      "benchmarks).")
    out: Path = Field(description="Output folder: checkpoints, the adapter, the log.")
    variants: list[Literal["routine", "compact", "distilled"]] = Field(
        default_factory=lambda: ["routine", "compact", "distilled"],
        description="Which SFT variants to train on (default: every one in the data).")
    reply_format: Literal["auto", "template", "text"] = Field(
        "auto", description="How a trained tool call is written: as the chat template "
        "renders a structured call (template), or as the JSON text the model writes (text; "
        "merged rows are then split per reply). auto: text for the embedded models.")
    balance_variants: bool = Field(False, description="Train on as many rows of each "
                                   "variant as the smallest variant has (sampled with the "
                                   "seed).")
    lora_r: int = Field(8, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(16, ge=1, description="LoRA alpha.")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout.")
    target_modules: list[str] = Field(default_factory=lambda: list(PROJECTIONS),
                                      description="Modules that get adapters.")
    learning_rate: float = Field(1e-4, gt=0, description="Peak learning rate.")
    schedule: str = Field("linear", description="Learning-rate schedule: "
                          + ", ".join(SCHEDULES) + ".")
    uba_phi: float = Field(1.0, ge=0, le=2, description="φ of the UBA schedule.")
    pilot: Path | None = Field(None, description="For `refined`: a pilot run's folder (its "
                               "log.json gives the gradient norms).")
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="Warm-up share of the steps.")
    epochs: float = Field(3.0, gt=0, description="Epochs over the data.")
    max_steps: int = Field(-1, ge=-1, description="Optimizer steps (overrides epochs when "
                           "> 0; -1: the epochs decide).")
    batch_size: int = Field(1, ge=1, description="Sequences per device and micro-step.")
    gradient_accumulation: int = Field(16, ge=1, description="Micro-steps per optimizer step "
                                       "(effective batch = batch_size x this x devices).")
    max_length: int = Field(4096, ge=16, description="Longest sequence in tokens (longer "
                            "examples are truncated from the right).")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="bf16 or fp32; auto probes which is faster here.")
    gradient_checkpointing: bool = Field(True, description="Trade compute for memory.")
    save_steps: int = Field(25, ge=1, description="Checkpoint every N optimizer steps.")
    seed: int = Field(0, description="Seed of the adapter's initialisation and data order.")
    packing: bool = Field(False, description="Pack examples into full rows without padding "
                          "(padding-free; needs flash attention: GPU).")
    liger_kernel: bool = Field(False, description="Liger's fused kernels (chunked loss; GPU, "
                               "needs the liger-kernel package).")
    attn_implementation: str | None = Field(None, description="sdpa, flash_attention_2, eager "
                                            "(default: transformers' choice).")

    @field_validator("max_steps")
    @classmethod
    def _no_zero_steps(cls, value: int) -> int:
        if value == 0:  # transformers reads 0 as "the epochs decide": a full run
            raise ValueError("0 steps is no run; give a number of steps, or -1 to let the "
                             "epochs decide")
        return value


class FinetuneResult(BaseModel):
    adapter: Path
    steps: int
    losses: list[float]
    grad_norms: list[float]
    seconds: float
    tokens_per_second: float
    tokens: int = 0
    precision: str
    eval_loss: float | None = Field(None, description="Loss on --eval-data's completions.")
    eval_examples: int = 0
    parameters: int = Field(0, description="The base model's parameters.")
    resumed_from: str | None = None


def load_recipe(path: str | Path | None, **overrides: Any) -> FinetuneConfig:
    """A config from a YAML recipe, with ``overrides`` (None values ignored) on top."""
    values: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise RoutineError(f"{path}: a recipe is a YAML mapping of FinetuneConfig fields")
        values.update(loaded)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return FinetuneConfig.model_validate(values)


def probe_bf16(size: int = 512, repeats: int = 7) -> bool:
    """Whether bf16 matrix products beat fp32 here (on AVX2-only CPUs bf16 is ~18x slower,
    with native bf16 ~2.6x faster). The two are timed in turn and each keeps its fastest
    product: on a busy machine a total is mostly the other processes' share (a probe of
    three products each once chose fp32 on a bf16 CPU under load)."""
    import torch

    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    matrices = {dtype: torch.randn(size, size, dtype=dtype)
                for dtype in (torch.float32, torch.bfloat16)}
    best = dict.fromkeys(matrices, math.inf)
    for a in matrices.values():
        a @ a  # warm up
    for _ in range(repeats):
        for dtype, a in matrices.items():
            started = time.perf_counter()
            a @ a
            best[dtype] = min(best[dtype], time.perf_counter() - started)
    return best[torch.bfloat16] < best[torch.float32]


def resolve_bf16(config: FinetuneConfig) -> bool:
    """bf16 or not for this run: as asked; for ``auto`` a run that resumes keeps the
    precision it started with (recorded in its ``config.json``), else :func:`probe_bf16`."""
    if config.precision != "auto":
        return config.precision == "bf16"
    saved = config.out / "config.json"
    if _last_checkpoint(config.out) is not None and saved.exists():
        started = json.loads(saved.read_text(encoding="utf-8")).get("precision")
        if started in ("bf16", "fp32"):
            return bool(started == "bf16")
    return probe_bf16()


def load_base(base: str, dtype: Any, *, texts: list[str] | None = None,
              attn_implementation: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) of a Hugging Face folder, an embedded model's GGUF (dequantised
    once, then cached as a model folder beside it) or ``random:<shape>`` (a randomly
    initialised Qwen3 shape whose tokenizer is trained on ``texts``)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..models.embedded import MODELS, chat_template, ensure_model

    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    if base in MODELS:
        folder = _dequantised(ensure_model(base, show_progress=False))
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **extra)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        tokenizer.chat_template = chat_template()  # the one the embedded server renders with
    elif base.startswith("random:"):
        from .random_model import SHAPES, bpe_tokenizer, build_random

        shape = base.removeprefix("random:")
        if shape not in SHAPES:
            raise RoutineError(f"unknown shape {shape!r} in {base!r}; choose from "
                               f"{', '.join(SHAPES)}")
        tokenizer = bpe_tokenizer(texts or ["routine"])
        model = build_random(tokenizer, shape, dtype=dtype, **extra)
    elif Path(base).is_dir() or (base.count("/") == 1 and not Path(base).exists()
                                 and not base.startswith((".", "~"))):
        # a model folder, or a hub id (org/name) where a hub is reachable
        try:
            model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype, **extra)
            tokenizer = AutoTokenizer.from_pretrained(base)
        except OSError as exc:
            if Path(base).is_dir():
                raise RoutineError(f"base model folder {base!r} cannot be loaded: {exc}"
                                   ) from None
            raise RoutineError(f"base model {base!r}: no such folder here, and as a hub id "
                               f"(org/name) it cannot be fetched ({str(exc)[:200]})") from None
    else:
        raise RoutineError(f"base model {base!r} is neither a model folder (no such folder "
                           "here), a hub id "
                           f"(org/name), an embedded model ({', '.join(MODELS)}) nor "
                           "random:<shape>")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _dequantised(gguf: Path) -> Path:
    """A Hugging Face folder of the GGUF model, dequantised to fp32 on first use (~1 min)
    and kept beside the GGUF file (later loads take seconds)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = gguf.with_suffix(".hf")
    if (folder / "config.json").exists() and (folder / "tokenizer_config.json").exists():
        return folder
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                 dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # a GGUF-loaded model refuses save_pretrained while it carries its quantizer marker
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    partial = folder.with_suffix(".partial")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.replace(folder)
    return folder


def _rows(path: Path, variants: list[str], limit: int | None = None, *,
          balance: bool = False, seed: int = 0) -> list[Any]:
    from .distill import load_sft

    rows = [r for r in load_sft(path) if r.variant in variants][:limit]
    if not rows:
        raise RoutineError(f"{path}: no SFT examples of variants {variants}")
    return balance_variants(rows, seed) if balance else rows


def balance_variants(rows: list[Any], seed: int = 0) -> list[Any]:
    """As many rows of every variant as the smallest variant has (the others sampled with
    ``seed``, in their original order): a budget of steps then trains each variant about
    equally, though per-step variants have ~3x the rows of merged ones."""
    import random

    by_variant: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_variant.setdefault(row.variant, []).append(i)
    size = min(len(found) for found in by_variant.values())
    chosen = {i for found in by_variant.values()
              for i in random.Random(seed).sample(found, size)}
    return [row for i, row in enumerate(rows) if i in chosen]


def _ids(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
         generation: bool = False) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tools=tools, tokenize=True, return_dict=True,
                                        add_generation_prompt=generation)
    return list(out["input_ids"])


def as_text_calls(rows: list[Any]) -> list[Any]:
    """The rows with each trained tool call written as the JSON text the model writes
    (``{"name": ..., "arguments": {...}}``, one per line) instead of the chat template's
    structured form (``<tool_call>`` tags for Qwen). A merged row becomes one row per reply:
    its later prompts hold the earlier calls in the template's form, as a live run sends
    them (the executor records a call read from text as a structured call)."""
    out = []
    for row in rows:
        messages = row.messages
        for n, i in enumerate(row.trained()):
            reply = messages[i]
            if reply.get("tool_calls"):
                text = "\n".join(json.dumps({"name": c["function"]["name"],
                                              "arguments": json.loads(c["function"]["arguments"])},
                                             ensure_ascii=False) for c in reply["tool_calls"])
                reply = {"role": "assistant", "content": text}
            out.append(row.model_copy(update={
                "id": row.id if row.turns == 1 else f"{row.example_id}#{row.step + n}:{row.variant}",
                "step": row.step + n, "turns": 1, "prompt": messages[:i],
                "completion": [reply]}))
    return out


def resolve_reply_format(config: FinetuneConfig) -> Literal["template", "text"]:
    """``auto``: ``text`` for the Qwen2.5-Coder models, embedded or as a folder (they write a call as bare
    JSON: the template's ``<tool_call>`` tag had p ≈ 3e-10 as the 0.5B's first token, so
    a small LoRA budget spent learning the tag left a model that wrote neither), else
    ``template`` (models trained on their template's tool format, e.g. Qwen3, and servers
    that parse it, e.g. vLLM's hermes parser)."""
    from ..models.embedded import MODELS

    if config.reply_format != "auto":
        return config.reply_format
    # the same models as a Hugging Face folder or hub id (the .hf folder routine caches
    # beside the GGUF, Qwen/Qwen2.5-Coder-0.5B-Instruct) write calls the same way
    coder = "qwen2.5-coder" in config.base.lower().replace("_", "-")
    return "text" if config.base in MODELS or coder else "template"


def tokenize_rows(rows: list[Any], tokenizer: Any) -> list[dict[str, list[int]]]:
    """Each SFT row as ``input_ids`` (its messages through the chat template, tools
    included) and ``completion_mask`` (1 on every trained assistant reply: from the end of
    the generation prompt before it through its end-of-turn; 0 on the prompt and on tool
    results). A one-reply row gets the mask trl gives a prompt-completion row; a merged
    row (``SftExample.turns`` > 1) gets one span per reply, each trained on exactly the
    prefix the executor sent at that step."""
    out = []
    for row in rows:
        tools = json.loads(row.tools) or None
        messages = row.messages
        ids = _ids(tokenizer, messages, tools)
        mask = [0] * len(ids)
        for i in row.trained():
            # where each render stops agreeing with the whole row (trl does the same)
            start = len(commonprefix([_ids(tokenizer, messages[:i], tools, generation=True),
                                      ids]))
            end = len(commonprefix([_ids(tokenizer, messages[:i + 1], tools), ids]))
            mask[start:end] = [1] * (end - start)
            _check_span(row, messages[i], tokenizer, ids[start:end], tools)
        if 1 not in mask:
            raise RoutineError(f"SFT row {row.id}: no assistant reply to train on")
        out.append({"input_ids": ids, "completion_mask": mask})
    return out


def _check_span(row: Any, message: dict[str, Any], tokenizer: Any, span: list[int],
                tools: list[dict[str, Any]] | None) -> None:
    """A trained reply must hold what the model is to learn: a chat template that does not
    render ``tool_calls`` (a plain ChatML one, as many generic bases ship) left every call's
    span an empty end-of-turn, and the model learnt to reply with nothing."""
    calls = message.get("tool_calls") or []
    names = [c.get("function", {}).get("name", "") for c in calls]
    if not names:
        return
    text = tokenizer.decode(span)
    if all(name and name in text for name in names):
        return
    rendered = tokenizer.decode(_ids(tokenizer, row.messages, tools))
    where = "" if tools is None or any(t.get("function", {}).get("name", "") in rendered
                                       for t in tools) else " (nor the tools in the prompt)"
    raise RoutineError(
        f"SFT row {row.id}: the base's chat template does not render the assistant's tool "
        f"calls{where}: the trained reply is {text[:80]!r}, without {', '.join(names)}. Use "
        "--reply-format text (calls written as JSON text), or a base whose chat template "
        "renders tool_calls")


def _check_lengths(rows: list[Any], data: Any, max_length: int) -> None:
    """Rows whose trained replies reach past ``max_length`` are refused, named: truncation
    would train half a call (``{"name": "list_claims", "arguments": {"policy_``) or drop
    the later replies of a merged row without a word."""
    long = [(row.id, len(ids)) for row, ids, mask in
            zip(rows, data["input_ids"], data["completion_mask"], strict=True)
            if len(ids) > max_length and 1 in mask[max_length:]]
    if long:
        longest = max(n for _, n in long)
        raise RoutineError(
            f"{len(long)} of {len(rows)} SFT rows have trained replies past max_length "
            f"({max_length} tokens; the longest row has {longest}): e.g. "
            f"{', '.join(i for i, _ in long[:3])}. Raise --max-length to {longest}, or "
            "leave those rows out")


def _dataset(rows: list[Any], tokenizer: Any) -> Any:
    from datasets import Dataset

    return Dataset.from_list(tokenize_rows(rows, tokenizer))


def _texts(rows: list[Any]) -> list[str]:
    """Every message text and tool schema of the rows (a random model's tokenizer learns
    its vocabulary from them)."""
    out = []
    for row in rows:
        out.append(row.tools)
        for message in row.messages:
            out.append(json.dumps(message))
    return out


def _last_checkpoint(out: Path) -> str | None:
    """The newest complete checkpoint (``checkpoint-N`` with its trainer state: one a kill
    left half-written is passed over, with a warning)."""
    numbered = [p for p in out.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    for path in sorted(numbered, key=lambda p: int(p.name.split("-")[-1]), reverse=True):
        if (path / "trainer_state.json").is_file():
            return str(path)
        _log.warning(f"{path}: no trainer_state.json (a checkpoint left half-written): "
                     "passed over; delete it")
    return None


# what a resumed run must share with the one in its folder: a checkpoint restores the
# optimizer's and schedule's rate and its place in the data order, so another rate,
# schedule or batch was silently not the one used (and a finished run of another rate
# was returned as this one); the data by its content, not only its path (distilled again)
_SAME_RUN = ("base", "data", "data_sha256", "variants", "reply_format", "lora_r",
             "lora_alpha", "lora_dropout", "target_modules", "balance_variants",
             "max_length", "seed", "learning_rate", "schedule", "uba_phi", "pilot",
             "warmup_ratio", "batch_size", "gradient_accumulation")


def _data_sha256(path: Path) -> str | None:
    """The SFT file's content, as a run's ``config.json`` records it (None: unreadable,
    said when the data is read)."""
    import hashlib

    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _prior_run(config: FinetuneConfig, reply_format: str) -> FinetuneResult | None:
    """What ``config.out`` already holds: nothing (None), an unfinished run of this same
    config (None: it resumes), or this run finished (its result: not trained again). A
    folder of another run — another base, data, LoRA shape, rate or batch (``_SAME_RUN``)
    — or one that is not a run's folder is refused before anything is written into it."""
    out = config.out
    if not out.exists():
        return None
    if not out.is_dir():
        raise RoutineError(f"--out {out} is a file, not a folder")
    saved = out / "config.json"
    if not saved.is_file():
        if any(out.iterdir()):
            raise RoutineError(f"--out {out} holds files and is not a fine-tuning run's "
                               "folder (no config.json): choose a new or empty folder")
        return None
    try:
        before = json.loads(saved.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RoutineError(f"{saved}: not a run's config ({exc})") from None
    now = config.model_dump(mode="json") | {"reply_format": reply_format,
                                            "data_sha256": _data_sha256(config.data)}
    changed = [k for k in _SAME_RUN if k in before and before[k] != now.get(k)]
    if changed:
        diff = "; ".join(f"{k}: {before[k]!r} then, {now.get(k)!r} now" for k in changed)
        raise RoutineError(f"--out {out} holds a run with another {', '.join(changed)} "
                           f"({diff}): resuming it would mix them. Use a new --out, or "
                           "delete the folder to start again")
    log = out / "log.json"
    if log.is_file() and before.get("max_steps") == now.get("max_steps") and \
            before.get("epochs") == now.get("epochs"):
        result = read_log(log)
        _log.warning(f"{out} holds this run, finished ({result.steps} steps): not trained "
                     "again (delete its log.json to train on from its last checkpoint)")
        return result
    return None


def _warn_of_leaks(config: FinetuneConfig, train: list[Any], held_out: list[Any]) -> None:
    """Held-out rows of templates the training data has (the same file, or the train split
    distilled twice) measure memory, not the process: allowed, never silently (splits are
    by template: a template's phrasings are all in one split)."""
    trained = {row.template for row in train}
    leaked = [row for row in held_out if row.template in trained]
    if leaked:
        names = sorted({row.template for row in leaked})
        warnings.warn(RoutineWarning(
            f"--eval-data {config.eval_data}: {len(leaked)} of its {len(held_out)} rows are "
            f"of templates --data {config.data} trains on ({', '.join(names[:3])}"
            f"{', ...' if len(names) > 3 else ''}): its loss measures memory, not held-out "
            "skill; distill the held-out data from another split (routine distill DATASET "
            "--split dev)"), stacklevel=3)


def read_log(log: Path) -> FinetuneResult:
    """A finished run's ``log.json``; one that is not one (left empty or cut short by a
    kill, edited) is one RoutineError naming it."""
    try:
        return FinetuneResult.model_validate_json(log.read_bytes())
    except OSError as exc:
        raise RoutineError(f"{log}: cannot read a finished run's log ({exc.strerror or exc})"
                           ) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise RoutineError(f"{log}: not a finished run's log ({where + ': ' if where else ''}"
                           f"{first['msg']}; written whole by `routine finetune` at the end "
                           "of a run): delete it to train on from the last checkpoint"
                           ) from None


def finetune(config: FinetuneConfig, callbacks: list[Any] | None = None) -> FinetuneResult:
    """Train a LoRA adapter; resume from the last checkpoint in ``config.out`` if any.
    ``callbacks``: transformers ``TrainerCallback``s (timers, say)."""
    import torch
    from peft import LoraConfig
    from torch.optim.lr_scheduler import LambdaLR
    from trl import SFTConfig, SFTTrainer

    if config.schedule not in SCHEDULES:
        raise RoutineError(f"unknown schedule {config.schedule!r}; choose from "
                           f"{', '.join(SCHEDULES)}")
    shape = None
    if config.schedule == "refined":
        if config.pilot is None:
            raise RoutineError("schedule 'refined' needs --pilot: a finished run's folder")
        try:
            shape = refined_from_grad_norms(read_log(config.pilot / "log.json").grad_norms)
        except ValueError as exc:  # too few gradient norms
            raise RoutineError(f"--pilot {config.pilot}: {exc}") from None
    if config.packing and config.attn_implementation != "flash_attention_2":
        raise RoutineError(
            "--packing puts several examples in one row, and only flash attention keeps "
            "them from attending to each other (with sdpa or eager, or on CPU, they would "
            "silently): set attn_implementation: flash_attention_2 (GPU), or leave packing off")
    reply_format = resolve_reply_format(config)
    if (done := _prior_run(config, reply_format)) is not None:
        return done
    bf16 = resolve_bf16(config)
    train_rows = _rows(config.data, config.variants)
    eval_rows = (_rows(config.eval_data, config.variants, config.eval_limit)
                 if config.eval_data else None)
    if eval_rows is not None:
        _warn_of_leaks(config, train_rows, eval_rows)
    if reply_format == "text":  # before balancing: a merged row becomes a row per reply
        train_rows = as_text_calls(train_rows)
        eval_rows = as_text_calls(eval_rows) if eval_rows is not None else None
    if config.balance_variants:
        train_rows = balance_variants(train_rows, config.seed)
    torch.manual_seed(config.seed)
    model, tokenizer = load_base(config.base, torch.bfloat16 if bf16 else torch.float32,
                                 texts=_texts(train_rows) if config.base.startswith("random:")
                                 else None,
                                 attn_implementation=config.attn_implementation)
    # tokenized here, with the mask of every trained reply (trl takes input_ids as they are)
    train_data = _dataset(train_rows, tokenizer)
    eval_data = _dataset(eval_rows, tokenizer) if eval_rows is not None else None
    _check_lengths(train_rows, train_data, config.max_length)
    parameters = sum(p.numel() for p in model.parameters())
    config.out.mkdir(parents=True, exist_ok=True)
    write_whole(config.out / "config.json", json.dumps(  # with the precision it runs in
        config.model_copy(update={"precision": "bf16" if bf16 else "fp32",
                                  "reply_format": reply_format}).model_dump(mode="json")
        | {"data_sha256": _data_sha256(config.data)}, indent=2, ensure_ascii=False))
    args = SFTConfig(
        output_dir=str(config.out), num_train_epochs=config.epochs, max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation,
        learning_rate=config.learning_rate, warmup_steps=0, lr_scheduler_type="constant",
        logging_steps=1, save_steps=config.save_steps, save_total_limit=2,
        max_length=config.max_length, bf16=bf16, activation_checkpointing=config.gradient_checkpointing,
        seed=config.seed, data_seed=config.seed, report_to=[], completion_only_loss=True,
        use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0,
        disable_tqdm=True, include_num_input_tokens_seen=True,
        packing=config.packing, padding_free=config.packing,
        use_liger_kernel=config.liger_kernel, per_device_eval_batch_size=config.batch_size,
        eval_strategy="no")
    schedule = multiplier(config.schedule, phi=config.uba_phi, refined=shape)

    class Trainer(SFTTrainer):  # type: ignore[misc]
        def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
            if self.lr_scheduler is None:
                warmup = math.ceil(config.warmup_ratio * num_training_steps)
                if config.schedule == "refined":
                    warmup = 0  # the refined shape warms up by itself

                def lr_lambda(step: int) -> float:
                    if step < warmup:
                        return (step + 1) / (warmup + 1)
                    span = max(1, num_training_steps - warmup)
                    return max(0.0, schedule(min(1.0, (step - warmup) / span)))

                self.lr_scheduler = LambdaLR(optimizer or self.optimizer, lr_lambda)
            return self.lr_scheduler

    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha,
                      lora_dropout=config.lora_dropout, target_modules=config.target_modules,
                      task_type="CAUSAL_LM")
    trainer = Trainer(model=model, args=args, train_dataset=train_data,
                      eval_dataset=eval_data, processing_class=tokenizer, peft_config=lora)
    from transformers import TrainerCallback

    seen_before = [0]

    class TokensAtStart(TrainerCallback):  # type: ignore[misc]
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            seen_before[0] = int(state.num_input_tokens_seen or 0)  # after a resume's load

    for callback in [TokensAtStart(), *(callbacks or [])]:
        trainer.add_callback(callback)
    resume = _last_checkpoint(config.out)
    started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - started
    eval_loss = None
    if eval_data is not None:
        eval_loss = float(trainer.evaluate()["eval_loss"])
    adapter = config.out / "adapter"
    trainer.save_model(str(adapter))
    tokenizer.save_pretrained(str(adapter))
    history = trainer.state.log_history
    losses = [float(h["loss"]) for h in history if "loss" in h]
    norms = [float(h["grad_norm"]) for h in history if "grad_norm" in h]
    tokens = float(trainer.state.num_input_tokens_seen or 0) - seen_before[0]  # this run's
    result = FinetuneResult(
        adapter=adapter, steps=int(output.global_step), losses=losses, grad_norms=norms,
        seconds=seconds, tokens_per_second=tokens / seconds if seconds and tokens else 0.0,
        tokens=int(tokens), precision="bf16" if bf16 else "fp32", eval_loss=eval_loss,
        eval_examples=len(eval_data) if eval_data is not None else 0,
        parameters=parameters, resumed_from=resume)
    write_whole(config.out / "log.json", result.model_dump_json(indent=2))
    return result
