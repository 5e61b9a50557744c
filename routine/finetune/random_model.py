"""Randomly initialised Qwen3-shaped models, for tests and throughput benchmarks.

No model hub is reachable here, so the training path is tested on a tiny
Qwen3-shaped model with a byte-level BPE tokenizer trained on the SFT texts
themselves (with Qwen's special tokens and the embedded chat template), and a
benchmark can build a full-size shape (Qwen3-14B: the arithmetic per token is
that of the real model) without downloading weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["SHAPES", "bpe_tokenizer", "build_random", "random_model"]

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>"]
SHAPES: dict[str, dict[str, int]] = {
    "tiny": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8},
    "qwen3-14b": {"hidden_size": 5120, "intermediate_size": 17408, "num_hidden_layers": 40,
                  "num_attention_heads": 40, "num_key_value_heads": 8, "head_dim": 128,
                  "vocab_size": 151936},  # 14.8B parameters, as the real model
}


def bpe_tokenizer(texts: list[str], vocab_size: int = 800) -> Any:
    """A byte-level BPE tokenizer trained on ``texts``, with Qwen's special tokens and the
    embedded model's chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from ..models.embedded import chat_template

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>")
    tokenizer.chat_template = chat_template()
    return tokenizer


def build_random(tokenizer: Any, shape: str = "tiny", *, dtype: Any = None, seed: int = 0,
                 attn_implementation: str | None = None) -> Any:
    """A randomly initialised Qwen3-shaped model in memory (on the GPU when there is one),
    its vocabulary at least ``tokenizer``'s (a shape may set the real model's size)."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    dims = dict(SHAPES[shape])
    vocab = max(len(tokenizer), dims.pop("vocab_size", 0))
    config = Qwen3Config(vocab_size=vocab, max_position_embeddings=8192,
                         tie_word_embeddings=False, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, **dims)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
        return Qwen3ForCausalLM._from_config(config, dtype=dtype or torch.float32, **extra)


def random_model(folder: str | Path, tokenizer: Any, shape: str = "tiny", seed: int = 0) -> Path:
    """Save a randomly initialised Qwen3-shaped model and ``tokenizer`` into ``folder``."""
    import torch

    with torch.device("cpu"):
        model = build_random(tokenizer, shape, seed=seed).to("cpu")
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
