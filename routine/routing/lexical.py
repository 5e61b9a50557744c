"""The lexical router: BM25 over the routines' cards and example requests (``bm25s``,
English stop words, Snowball stemming when PyStemmer is installed)."""

from __future__ import annotations

import math
from typing import Any

from ..errors import RoutineError
from .decision import Thresholds
from .library import Library
from .router import ScoringRouter

__all__ = ["LexicalRouter"]


def _bm25s() -> Any:
    try:
        import bm25s
    except ImportError:  # pragma: no cover - the 'routing' extra brings it
        raise RoutineError("the lexical router needs bm25s: pip install 'routine[routing]'") \
            from None
    return bm25s


def _stemmer() -> Any:
    try:
        import Stemmer
    except ImportError:  # works without: words are then matched as written
        return None
    return Stemmer.Stemmer("english")


TUNED_ON = 7  # passages of the smallest library the threshold was tuned with (retail)


def _unique_word_weight(passages: int) -> float:
    """BM25's IDF (bm25s, Lucene's form) of a word found in one of ``passages``."""
    return math.log(1 + (passages - 1 + 0.5) / 1.5)


class LexicalRouter(ScoringRouter):
    """BM25 (Okapi, bm25s's defaults k1=1.5, b=0.75): a routine's score is its best
    passage's BM25 score for the request's distinct words (0: no word in common)."""

    name = "lexical"

    def __init__(self, library: Library, thresholds: Thresholds | None = None,
                 examples: bool | None = None):
        super().__init__(library, thresholds, examples)
        bm25s = _bm25s()
        self._stem = _stemmer()
        self._index = bm25s.BM25()
        self._index.index(self._tokens(self._texts), show_progress=False)

    def _tokens(self, texts: list[str], ids: bool = True) -> Any:
        # a routine's name in a request ("run open_home_claim") is its words, as the card
        # writes it: one token "open_home_claim" matched nothing and the request went to none
        texts = [text.replace("_", " ") for text in texts]
        return _bm25s().tokenize(texts, stopwords="en", stemmer=self._stem,
                                 return_ids=ids, show_progress=False)

    def default_thresholds(self) -> Thresholds:
        """Tuned on both domains' dev splits, pooled (routine route-eval; README "Routing"),
        with libraries of 7 and 20 routines. BM25 scores shrink with fewer passages (a word
        in the only routine of a library weighs ln(4/3), in one of seven ln(16/3)), so a
        library smaller than seven scales the threshold by that weight: one routine asked
        for in its own words was turned away before."""
        passages = len(self._texts)
        scale = min(1.0, _unique_word_weight(passages) / _unique_word_weight(TUNED_ON))
        return Thresholds(none_below=round(2.0712 * scale, 4), margin=0.0)

    def passage_scores(self, query: str) -> list[float]:
        """Each word of the request counts once: a word said forty times ("please ...")
        would otherwise add its score forty times and outrank what the request is about."""
        words = list(dict.fromkeys(self._tokens([query], ids=False)[0]))
        if not words:
            return [0.0] * len(self._texts)
        return [float(s) for s in self._index.get_scores(words)]
