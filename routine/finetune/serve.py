"""Serving a fine-tuned adapter: the embedded engine on a CPU, vLLM on a GPU.

On a CPU the adapter (GGUF, from :func:`routine.finetune.export.lora_to_gguf`) runs
in the embedded llama.cpp server (``embedded_server(..., adapter=...)``). On a GPU,
vLLM's OpenAI-compatible server serves the base model with the peft adapter as a
LoRA module, with tool calls parsed in the Hermes format the Qwen models write:

    vllm serve Qwen/Qwen3-14B --enable-lora --lora-modules routine=runs/ft/adapter \\
        --max-lora-rank 8 --enable-auto-tool-choice --tool-call-parser hermes

vLLM is CUDA-only and pins its own torch: an optional install, never a dependency.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

from ..errors import RoutineError, RoutineWarning

__all__ = ["vllm_command", "VLLM_LORA_RANKS"]

# the values vLLM's --max-lora-rank takes (LoRAConfig refuses any other at start-up: a
# rank-12 adapter's "--max-lora-rank 12" stopped the server); an adapter is served under
# the smallest one that holds its rank
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


def vllm_command(base: str, adapter: str | Path | None = None, *, name: str = "routine",
                 port: int = 8000, host: str = "127.0.0.1", max_model_len: int | None = None,
                 tensor_parallel: int = 1, executable: str = "vllm") -> list[str]:
    """The command line that serves ``base`` (and ``adapter`` as model ``name``) with vLLM."""
    command = [executable, "serve", base, "--host", host, "--port", str(port),
               "--enable-auto-tool-choice", "--tool-call-parser", "hermes"]
    if tensor_parallel > 1:
        command += ["--tensor-parallel-size", str(tensor_parallel)]
    if max_model_len:
        command += ["--max-model-len", str(max_model_len)]
    if adapter is not None:
        adapter = Path(adapter)
        config = adapter / "adapter_config.json"
        if not config.is_file():
            raise RoutineError(f"{adapter} is not a peft adapter folder (no adapter_config.json)")
        try:
            saved = json.loads(config.read_text(encoding="utf-8"))
            rank = saved.get("r", 8)
        except (OSError, ValueError, AttributeError) as exc:
            raise RoutineError(f"{config}: not a peft adapter's config ({exc})") from None
        _warn_of_another_base(config, saved.get("base_model_name_or_path"), base)
        fits = [r for r in VLLM_LORA_RANKS if isinstance(rank, int) and r >= rank]
        if not fits:
            raise RoutineError(f"{config}: LoRA rank {rank!r}; vLLM serves ranks up to "
                               f"{VLLM_LORA_RANKS[-1]}")
        command += ["--enable-lora", "--lora-modules", f"{name}={adapter}",
                    "--max-lora-rank", str(fits[0])]
    return command


def _warn_of_another_base(config: Path, trained_on: object, base: str) -> None:
    """An adapter served on a base other than the one it was trained on: vLLM loads it
    whenever the shapes fit (an instruct model's adapter on its base model, one size's
    sibling), and the replies are quietly worse. Said, not refused: a base saved under a
    local path and served by its hub name (``/models/Qwen3-14B``, ``Qwen/Qwen3-14B``) is
    the same model, and the names are compared by their last part."""
    if isinstance(trained_on, str) and trained_on and _last(trained_on) != _last(base):
        warnings.warn(RoutineWarning(
            f"{config}: the adapter was trained on {trained_on}, and is served on {base}: "
            "an adapter on another base loads when the shapes fit, and answers worse; "
            f"serve it on {trained_on}"), stacklevel=3)


def _last(name: str) -> str:
    """A model's name without its owner or folders: ``qwen3-14b``."""
    return name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].lower()


def vllm_executable() -> str:
    """The ``vllm`` command, or one clear error where it is not installed."""
    found = shutil.which("vllm")
    if found is None:
        raise RoutineError("vLLM is not installed: it needs CUDA (pip install vllm on a GPU "
                           "machine); on a CPU, serve the adapter with the embedded model "
                           "(routine export-adapter, then routine serve --adapter FILE.gguf)")
    return found
