"""Fine-tuning: SFT data from the run path (``distill``); training and serving to come.

* :mod:`.distill` — gold trajectories and judged traces become trl conversational
  examples, each prompt exactly what the executor sends at that step.
"""

from .distill import SftExample, distill, load_sft, sft_stats, write_sft

__all__ = ["SftExample", "distill", "load_sft", "sft_stats", "write_sft"]
