"""Lexical scoring of memories: Okapi BM25 computed in process.

Milvus 2.3 has no full-text or sparse-vector search, so the lexical half of hybrid search runs
here. `LexicalIndex` is what search uses: postings of word stems built once per user's memories
(memory.index, cached by memory.service until the user's memories change), scored per query with
numpy, one posting list per query term. `BM25` and `normalized_scores` score a handful of texts
without an index (tests, benchmarks).

Stems (`stem`) fold the inflections of one word so "painted", "painting" and "paints" meet
"paint": a few English suffixes stripped, nothing learned; "hiking" and "hike" both become "hik".
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


def stem(word: str) -> str:
    """A light stem: one of -ing, -ed, -es, -s, -ly stripped (3 letters kept), then a doubled
    final consonant and a final "e" ("running" -> run, "hiked" -> hik, "hike" -> hik)."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
        word = word[:-1]
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


_SUFFIXES = ("ing", "ed", "es", "s", "ly")


def stems(text: str) -> list[str]:
    """The stems of the content words of `text` (`terms`, then `stem`)."""
    return [stem(word) for word in terms(text)]


class LexicalIndex:
    """BM25 over a fixed list of documents, as postings of stems: built once, scored per query
    with one vectorised step per query term (no loop over documents)."""

    def __init__(self, documents: Sequence[str]) -> None:
        postings: dict[str, tuple[list[int], list[int]]] = {}
        lengths = np.zeros(len(documents), dtype=np.float64)
        for position, text in enumerate(documents):
            counts = Counter(stems(text))
            lengths[position] = sum(counts.values())
            for term, tf in counts.items():
                docs, tfs = postings.setdefault(term, ([], []))
                docs.append(position)
                tfs.append(tf)
        self.size = len(documents)
        self._postings = {
            term: (np.array(docs, dtype=np.int64), np.array(tfs, dtype=np.float64))
            for term, (docs, tfs) in postings.items()
        }
        average = float(lengths.mean()) if self.size and lengths.mean() > 0 else 1.0
        self._norm = K1 * (1.0 - B + B * lengths / average)

    def idf(self, term: str) -> float:
        """Inverse document frequency of a stem, never negative (Lucene's "+1" variant)."""
        df = len(self._postings[term][0]) if term in self._postings else 0
        return math.log(1.0 + (self.size - df + 0.5) / (df + 0.5))

    def scores(self, query: str) -> tuple[npt.NDArray[np.float64], float]:
        """One BM25 score per document, and the ceiling: what a document of average length
        holding every query stem once scores (0.0 when the query has no content word)."""
        out = np.zeros(self.size, dtype=np.float64)
        ceiling = 0.0
        for term in set(stems(query)):
            weight = self.idf(term)
            ceiling += weight
            if term not in self._postings:
                continue
            docs, tf = self._postings[term]
            out[docs] += weight * tf * (K1 + 1.0) / (tf + self._norm[docs])
        return out, ceiling


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
