"""Hybrid ranking of a user's memories for a query. Pure: candidates and scores in, hits out.

relevance = DENSE * cosine(query, memory), clipped to [0, 1]    semantic match
          + LEXICAL * BM25 share of the query matched            shared content words
score     = relevance
          * (1 - RECENCY + RECENCY * 0.5 ** (age / RECENCY_HALF_LIFE))
          * (1 - CONFIDENCE + CONFIDENCE * confidence at as_of)

Dense carries most of the weight: queries ask in other words than memories use ("where does the
user live" / "Moved to Seattle"). Lexical (memory.lexical) rescues names and rare words the small
encoder blurs ("Helios Energy", "gluten"). Recency (age since the memory was last stated) and
confidence (decayed for weak facts, memory.lifecycle) scale relevance instead of adding to it:
they order near-ties but never lift an irrelevant memory ("hi", said yesterday) over a match.
Weights were set on generated data of seed 7 and are reported on seed 23 (bench/memory.py).

As of: only memories true at `as_of` (Memory.is_true_at: valid, known by then, not superseded,
not expired) and not decayed below the floor are ranked. The store applies the same filter on
the server; it is checked again here so ranking never depends on the store's care.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from memory.lexical import normalized_scores
from memory.lifecycle import effective_confidence, is_live, last_stated
from memory.records import Memory, ScoredMemory


@dataclass(frozen=True)
class Weights:
    """How much each part counts; dense + lexical = 1, so a score is in [0, 1]."""

    dense: float = 0.8
    lexical: float = 0.2
    recency: float = 0.2  # the share of relevance an old memory loses
    confidence: float = 0.2  # the share of relevance a memory of confidence 0 loses
    episode: float = 0.85  # factor on raw turns: a distilled fact wins a near-tie


DEFAULT_WEIGHTS = Weights()
RECENCY_HALF_LIFE = timedelta(days=30)


def recency(memory: Memory, at: datetime) -> float:
    """1.0 when last stated at `at`, halving every RECENCY_HALF_LIFE before it."""
    age = max(at - last_stated(memory, at), timedelta(0))
    return float(0.5 ** (age / RECENCY_HALF_LIFE))


def rank(
    query: str,
    candidates: Sequence[Memory],
    dense: Sequence[float],
    *,
    as_of: datetime,
    k: int,
    kinds: Iterable[str] | None = None,
    weights: Weights = DEFAULT_WEIGHTS,
) -> list[ScoredMemory]:
    """The `k` best candidates live at `as_of` (of `kinds`), best first; ties by memory id."""
    wanted = None if kinds is None else frozenset(kinds)
    keep = [
        i
        for i, memory in enumerate(candidates)
        if is_live(memory, as_of) and (wanted is None or memory.kind in wanted)
    ]
    lexical = normalized_scores(query, [candidates[i].text for i in keep])
    hits: list[ScoredMemory] = []
    for position, i in enumerate(keep):
        memory = candidates[i]
        parts = {
            "dense": min(max(float(dense[i]), 0.0), 1.0),
            "lexical": float(lexical[position]),
            "recency": recency(memory, as_of),
            "confidence": effective_confidence(memory, as_of),
        }
        relevance = weights.dense * parts["dense"] + weights.lexical * parts["lexical"]
        score = (
            relevance
            * (1.0 - weights.recency + weights.recency * parts["recency"])
            * (1.0 - weights.confidence + weights.confidence * parts["confidence"])
            * (weights.episode if memory.kind == "episode" else 1.0)
        )
        hits.append(ScoredMemory(memory, round(score, 6), parts))
    hits.sort(key=lambda hit: (-hit.score, hit.memory.memory_id))
    return hits[:k]
