"""Hybrid ranking of a user's memories for a query. Pure: an index and scores in, hits out.

Every part is read relative to the user's own live memories (z-scores over them), because a
cosine of 0.4 is a strong match in one user's history and a weak one in another's, and BM25 has
no fixed scale at all:

dense   = (1 - REPLY) * cosine(query, memory) + REPLY * cosine(query, memory with the turn
          before it)                     (episodes, when the index holds vectors; else cosine)
fused   = DENSE * z(dense) + LEXICAL * z(BM25 of the query's stems)
        + NAMED                  when the memory is a transcript line of a person the query names
        + PERIOD                 when it was true from or said within a period the query names
                                 ("on 8 December, 2023", "in August 2023"; memory.periods)
context = fused + CONTEXT * max(0, best fused of the episodes CONTEXT_WINDOW before and after
          it in the same conversation - fused)                            (episodes only)
score   = sigmoid(context)
        * (1 - RECENCY + RECENCY * 0.5 ** (age / RECENCY_HALF_LIFE))
        * (1 - CONFIDENCE + CONFIDENCE * confidence at as_of)
        * (EPISODE if the memory is an episode)

Dense carries most of the weight: queries ask in other words than memories use ("where does the
user live" / "Moved to Seattle"). Lexical (memory.lexical) rescues names and rare words the small
encoder blurs ("Helios Energy", "gluten"). Context lets the answer to a question come along with
the turn that matches it: answers span turns. Recency (age since the memory was last stated) and
confidence (decayed for weak facts, memory.lifecycle) scale the score instead of adding to it:
they order near-ties but never lift an irrelevant memory ("hi", said yesterday) over a match.
The weights were chosen on generated data (seed 7) and on the LoCoMo development half, a few
round values each, nothing fitted per question (docs/memory.md, docs/benchmarks.md).

As of: only memories true at `as_of` (Memory.is_true_at: valid, known by then, not superseded,
not expired) and not decayed below the floor are ranked, read from the index's arrays. The store
applies the same filter on the server; it is applied here too so ranking never depends on the
store's care.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from core.times import epoch_micros
from memory.index import MemoryIndex
from memory.lifecycle import last_stated
from memory.periods import named_period
from memory.records import Memory, ScoredMemory


@dataclass(frozen=True)
class Weights:
    """How much each part counts (dense + lexical = 1); a score is in (0, 1)."""

    dense: float = 0.7
    lexical: float = 0.3
    named: float = 0.6  # z units added to the lines of a person the query names
    context: float = 0.4  # share of the gap to its best neighbour's fused score an episode closes
    period: float = 1.0  # z units added to the memories of a period the query names
    reply: float = 0.5  # share of the dense part read from a turn together with the one before
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
    """The `k` best candidates live at `as_of` (of `kinds`), best first; ties by memory id.
    `dense[i]` is candidate i's cosine to the query."""
    index = MemoryIndex.build(candidates)
    return rank_index(
        query,
        index,
        np.asarray(dense, dtype=np.float64),
        as_of=as_of,
        k=k,
        kinds=kinds,
        weights=weights,
    )


def _z(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Standard scores; all zero when the values do not vary."""
    spread = float(values.std())
    if spread < 1e-9:
        return np.zeros_like(values)
    return (values - values.mean()) / spread


def rank_index(
    query: str,
    index: MemoryIndex,
    dense: npt.NDArray[np.float64],
    *,
    as_of: datetime,
    k: int,
    kinds: Iterable[str] | None = None,
    weights: Weights = DEFAULT_WEIGHTS,
    context_dense: npt.NDArray[np.float64] | None = None,
    scope: str | None = None,
) -> list[ScoredMemory]:
    """The `k` best memories of `index` live at `as_of` (of `kinds`), best first, ties by
    memory id; `dense[i]` is memory i's cosine to the query, `context_dense[i]` its context
    vector's (memory.index); only memories of `scope` when one is given. Vectorised over the
    index."""
    live = index.live(as_of, None if kinds is None else sorted(set(kinds)), scope)
    rows = np.flatnonzero(live)
    if not len(rows):
        return []
    lexical, ceiling = index.lexical.scores(query)
    cosine = np.asarray(dense, dtype=np.float64)
    semantic = cosine
    if context_dense is not None:
        semantic = (1.0 - weights.reply) * cosine + weights.reply * context_dense
    fused = np.zeros(len(index), dtype=np.float64)
    fused[rows] = weights.dense * _z(semantic[rows]) + weights.lexical * _z(lexical[rows])
    fused[rows] += weights.named * index.named_labels(query)[rows]
    period = named_period(query)
    if period is not None:
        fused[rows] += weights.period * index.within(*period)[rows]
    # Each live episode closes part of the gap to its best live neighbour (a dead one lends
    # nothing); a turn already above its neighbours keeps its score.
    floor = float(fused[rows].min())
    lent = np.where(live, fused, floor)
    neighbours = index.neighbours[rows]
    borrowed = np.where(neighbours >= 0, lent[np.maximum(neighbours, 0)], floor).max(axis=1)
    context = fused[rows] + weights.context * np.maximum(borrowed - fused[rows], 0.0)
    t = epoch_micros(as_of)
    age_days = np.maximum(t - index.last_stated(as_of)[rows], 0) / 86_400_000_000
    fresh = 0.5 ** (age_days / (RECENCY_HALF_LIFE / timedelta(days=1)))
    confidence = index.effective_confidence(as_of)[rows]
    score = (
        (1.0 / (1.0 + np.exp(-context)))
        * (1.0 - weights.recency + weights.recency * fresh)
        * (1.0 - weights.confidence + weights.confidence * confidence)
        * np.where(index.episode[rows], weights.episode, 1.0)
    )
    score = np.round(score, 6)
    best = np.lexsort((index.ids[rows], -score))[:k]
    share = np.minimum(lexical / ceiling, 1.0) if ceiling > 0 else np.zeros(len(index))
    hits: list[ScoredMemory] = []
    for position in best.tolist():
        i = int(rows[position])
        parts = {
            "dense": min(max(float(cosine[i]), 0.0), 1.0),
            "lexical": float(share[i]),
            "recency": float(fresh[position]),
            "confidence": float(confidence[position]),
        }
        hits.append(ScoredMemory(index.memories[i], float(score[position]), parts))
    return hits
