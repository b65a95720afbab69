"""Lexical scoring of memories: Okapi BM25 over a small set of texts, computed in process.

Milvus 2.3 has no full-text or sparse-vector search, so the lexical half of hybrid search scores
the candidate memories the dense search returned (all of a user's live memories when they fit in
the candidate pool; see memory.service). A user holds tens to hundreds of memories, so an index
built per query costs well under a millisecond and can never be stale; no cache is kept.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from memory.patterns import word_set

K1 = 1.2  # term-frequency saturation (the usual BM25 default)
B = 0.75  # length normalization (the usual BM25 default)
# Words keep inner apostrophes ("don't"); a possessive "'s" is dropped ("user's" -> user).
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# Function words and the words every query about a user holds ("what does the user like").
STOPWORDS = word_set(
    """
    a about an and any are as at be been being by can could did do does doing for from had has
    have having he her him his how i if in into is it its me my of on or our she should so some
    than that the their them then there these they this those to too us was we were what when
    where which who whom why will with would you your user users that's it's what's i'm
    """
)


def terms(text: str) -> list[str]:
    """Lower-cased content words, plural "s" dropped: "Likes hiking boots" -> like, hiking, boot."""
    out: list[str] = []
    for word in _WORD.findall(text.lower().replace("\u2019", "'")):
        word = word.removesuffix("'s")
        if len(word) < 2 or word in STOPWORDS:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        out.append(word)
    return out


class BM25:
    """BM25 scores of a query against a fixed list of documents."""

    def __init__(self, documents: Sequence[str]) -> None:
        self._docs = [Counter(terms(text)) for text in documents]
        lengths = np.array([sum(doc.values()) for doc in self._docs], dtype=np.float64)
        self._lengths = lengths
        self._avg_length = float(lengths.mean()) if len(lengths) and lengths.mean() > 0 else 1.0
        self._df: Counter[str] = Counter()
        for doc in self._docs:
            self._df.update(doc.keys())

    def idf(self, term: str) -> float:
        """Inverse document frequency, never negative (the "+1" variant of Lucene)."""
        n, df = len(self._docs), self._df.get(term, 0)
        return math.log(1.0 + (n - df + 0.5) / (df + 0.5))

    def scores(self, query: str) -> npt.NDArray[np.float64]:
        """One score per document, 0.0 where no query term occurs."""
        out = np.zeros(len(self._docs), dtype=np.float64)
        norm = K1 * (1.0 - B + B * self._lengths / self._avg_length)
        for term in set(terms(query)):
            if term not in self._df:
                continue
            weight = self.idf(term)
            for i, doc in enumerate(self._docs):
                tf = doc.get(term, 0)
                if tf:
                    out[i] += weight * tf * (K1 + 1.0) / (tf + norm[i])
        return out


def normalized_scores(query: str, documents: Sequence[str]) -> npt.NDArray[np.float64]:
    """BM25 scores in [0, 1]: divided by what a document of average length holding every query
    term once scores, so one common word matched is a small score, not the best one."""
    if not documents:
        return np.zeros(0, dtype=np.float64)
    index = BM25(documents)
    ceiling = sum(index.idf(term) for term in set(terms(query)))
    if ceiling <= 0:
        return np.zeros(len(documents), dtype=np.float64)
    return np.minimum(index.scores(query) / ceiling, 1.0)
