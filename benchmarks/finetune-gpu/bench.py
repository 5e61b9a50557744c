"""LoRA SFT throughput of a Qwen3-14B-shaped model through the real `routine finetune` path.

No weights can be downloaded, so the model is randomly initialised in the real shape
(14.8B parameters, vocabulary 151,936: the arithmetic per token is the real model's).
The data are SFT rows in `routine distill`'s format whose rendered length is the
sequence length, with the loss on a long completion. Each configuration runs a few
optimizer steps; the first step (allocation, kernel selection) is not timed.

    python benchmarks/finetune-gpu/bench.py --out benchmarks/finetune-gpu/results
    python benchmarks/finetune-gpu/bench.py --shape tiny --seq 256 --steps 3 --out /tmp/b  # CPU

Model FLOPs utilisation = tokens/s x 6 x parameters / peak (the convention of the
reference figure: trl SFTTrainer, gradient checkpointing, batch 4 = 4,262 tokens/s,
47% of the H200's measured 790 TFLOP/s bf16 matrix peak).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from routine.finetune.distill import SftExample, write_sft
from routine.finetune.random_model import bpe_tokenizer
from routine.finetune.train import FinetuneConfig, finetune

# name -> FinetuneConfig fields on top of the shared ones
CONFIGS: dict[str, dict[str, Any]] = {
    "reference": {"batch_size": 4, "gradient_checkpointing": True},
    "no-checkpointing-b2": {"batch_size": 2, "gradient_checkpointing": False},
    "checkpointing-b8": {"batch_size": 8, "gradient_checkpointing": True},
    "no-checkpointing-b4": {"batch_size": 4, "gradient_checkpointing": False},  # may not fit
}
WORDS = ("order customer refund ticket shipment status policy leave request approve "
         "manager invoice return credit address product stock date amount reason").split()


def rows(count: int, seq: int, seed: int = 0) -> tuple[list[SftExample], Any]:
    """``count`` rows of ~``seq`` tokens each (system + user prompt, a long answer)."""
    rng = random.Random(seed)
    texts = [" ".join(rng.choice(WORDS) for _ in range(seq)) for _ in range(count)]
    tokenizer = bpe_tokenizer(texts[:4] + [json.dumps(WORDS)], vocab_size=400)
    out = []
    for i, text in enumerate(texts):
        words = text.split()
        prompt = [{"role": "system", "content": "You answer questions."},
                  {"role": "user", "content": " ".join(words[:32])}]
        answer = words[32:]
        while True:  # trim the answer until the rendered row fits the sequence length
            completion = [{"role": "assistant", "content": " ".join(answer)}]
            ids = tokenizer.apply_chat_template(prompt + completion, tokenize=True)
            length = len(ids["input_ids"] if isinstance(ids, dict) else ids)
            if length <= seq or len(answer) < 8:
                break
            answer = answer[: max(8, int(len(answer) * seq / length) - 2)]
        out.append(SftExample(id=f"bench-{i}#0:distilled", example_id=f"bench-{i}",
                              template="bench", split="train", routine=None,
                              variant="distilled", source="gold", step=0, prompt=prompt,
                              completion=completion, tools="[]"))
    return out, tokenizer


class StepTimer(TrainerCallback):  # type: ignore[misc]
    """Wall time and tokens of every optimizer step after the first."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, int]] = []

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.marks.append((time.perf_counter(), int(state.num_input_tokens_seen or 0)))


def run(name: str, shape: str, seq: int, steps: int, data: Path, out: Path,
        peak_tflops: float) -> dict[str, Any]:
    import torch

    timer = StepTimer()
    config = FinetuneConfig(data=data, base=f"random:{shape}", out=out / name,
                            variants=["distilled"], max_steps=steps, gradient_accumulation=1,
                            # rows are fitted to seq with another tokenizer than the one
                            # the random model learns: slack, so none is refused as cut
                            max_length=seq + seq // 4,
                            precision="bf16" if torch.cuda.is_available()
                            else "fp32", save_steps=10_000, **CONFIGS[name])
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    result = finetune(config, callbacks=[timer])
    (first_t, first_n), (last_t, last_n) = timer.marks[0], timer.marks[-1]
    tokens_per_s = (last_n - first_n) / (last_t - first_t) if last_t > first_t else 0.0
    flops = 6 * result.parameters * tokens_per_s
    memory = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0
    return {"config": name, **CONFIGS[name], "seq": seq, "steps": result.steps,
            "timed_steps": len(timer.marks) - 1, "parameters": result.parameters,
            "tokens_per_s": round(tokens_per_s, 1),
            "mfu": round(flops / (peak_tflops * 1e12), 4), "peak_memory_gib": round(memory, 1),
            "first_loss": result.losses[0], "last_loss": result.losses[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="qwen3-14b")
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=6, help="Optimizer steps per config.")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--peak-tflops", type=float, default=790.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import torch

    args.out.mkdir(parents=True, exist_ok=True)
    biggest = max(CONFIGS[c]["batch_size"] for c in args.configs.split(","))
    examples, _ = rows(biggest * args.steps, args.seq)
    data = write_sft(examples, args.out / "data.jsonl")
    results = []
    for name in args.configs.split(","):
        try:
            results.append(run(name, args.shape, args.seq, args.steps, data, args.out,
                               args.peak_tflops))
        except Exception as error:  # out of memory, say: the other configs still run
            results.append({"config": name, "error": f"{type(error).__name__}: {error}"[:300]})
        finally:  # a failed configuration's memory too, before the next one builds its model
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        print(json.dumps(results[-1]), flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    lines = [f"LoRA r=8 SFT, {args.shape}, seq {args.seq}, {args.steps} steps per config "
             f"(first untimed); MFU = 6 x params x tokens/s / {args.peak_tflops:g} TFLOP/s", "",
             "| config | batch | checkpointing | tokens/s | MFU | peak GiB |",
             "|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['config']} | – | – | {r['error']} | – | – |")
        else:
            lines.append(f"| {r['config']} | {r['batch_size']} | {r['gradient_checkpointing']} "
                         f"| {r['tokens_per_s']:,} | {100 * r['mfu']:.1f}% | "
                         f"{r['peak_memory_gib']} |")
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
