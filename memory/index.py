"""A user's memories as arrays for search: built once, ranked against many queries.

Pure: memories (and their vectors, when known) in, arrays out; no client. memory.service keeps
one per recently searched user and drops it when that user's memories change, so a search costs
numpy over the arrays, never a Python loop over every memory:

- `vectors`: the unit embeddings, so a query's cosine to every memory is one matrix product;
- `lexical`: BM25 postings of the texts' stems (memory.lexical.LexicalIndex);
- the times and confidences `memory.lifecycle.is_live` reads, so "true at as_of and not decayed
  away" is one vectorised mask;
- `neighbours`: for each episode, the episodes said just before and after it in the same
  conversation (at most `NEIGHBOUR_GAP` apart, chained), `CONTEXT_WINDOW` on each side: an
  answer often lies in the turn after the one that matches the question ("what did you
  paint?" / "a sunset"), so a turn borrows from its neighbours' scores (memory.search);
- `context_vectors`: for each episode, its vector summed with the previous turn's and
  normalised, a cheap stand-in for embedding the two turns together (the model mean-pools
  tokens), so a reply ("a sunset!") is also found by what it replies to;
- `labels`: the name a transcript line opens with ("Caroline: I went to ..."), so a question
  that names a person can prefer that person's own words.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from core.times import epoch_micros
from memory.lexical import LexicalIndex
from memory.lifecycle import LIVE_FLOOR, WEAK_CONFIDENCE, WEAK_HALF_LIFE
from memory.records import Memory

# Turns further apart than this are not one conversation (the ingest's session gap).
NEIGHBOUR_GAP = timedelta(minutes=30)
# Neighbours on each side a turn borrows from: two reach the answer to a question asked back.
CONTEXT_WINDOW = 2
_OPEN = np.iinfo(np.int64).max
_MICROS_PER_DAY = 86_400_000_000
# "Name:" or "First Last:" at the start of a line: who says it, in a transcript.
_LABEL = re.compile(r"^([A-Z][\w'.-]{0,40}(?: [A-Z][\w'.-]{0,40})?):\s")


def speaker_label(text: str) -> str | None:
    """The name a transcript line opens with ("Caroline: hi" -> "Caroline"), else None."""
    match = _LABEL.match(text)
    return match.group(1) if match else None


def _micros(moment: datetime | None) -> int:
    return _OPEN if moment is None else epoch_micros(moment)


@dataclass(frozen=True)
class MemoryIndex:
    """The arrays search reads, row i for `memories[i]`."""

    memories: tuple[Memory, ...]
    ids: npt.NDArray[np.str_]
    vectors: npt.NDArray[np.float32] | None
    context_vectors: npt.NDArray[np.float32] | None
    lexical: LexicalIndex
    valid_from: npt.NDArray[np.int64]
    valid_to: npt.NDArray[np.int64]
    created_at: npt.NDArray[np.int64]
    updated_at: npt.NDArray[np.int64]
    expires_at: npt.NDArray[np.int64]
    confidence: npt.NDArray[np.float64]
    episode: npt.NDArray[np.bool_]
    kinds: npt.NDArray[np.str_]
    scopes: npt.NDArray[np.str_]  # "" for the user's own space
    neighbours: npt.NDArray[np.int64]  # (n, 2 * CONTEXT_WINDOW), -1 where none
    labels: npt.NDArray[np.int64]  # position in label_names, -1 where none
    label_names: tuple[str, ...]

    @classmethod
    def build(
        cls, memories: Sequence[Memory], vectors: npt.NDArray[np.float32] | None = None
    ) -> MemoryIndex:
        """The index of `memories` (row i of `vectors` is memory i's embedding)."""
        if vectors is not None and len(vectors) != len(memories):
            raise ValueError("one vector per memory is needed")
        n = len(memories)
        names: dict[str, int] = {}
        labels = np.full(n, -1, dtype=np.int64)
        for i, memory in enumerate(memories):
            label = speaker_label(memory.text)
            if label is not None:
                labels[i] = names.setdefault(label.casefold(), len(names))
        episode = np.array([m.kind == "episode" for m in memories], dtype=np.bool_)
        valid_from = np.array([_micros(m.valid_from) for m in memories], dtype=np.int64)
        ids = [memory.memory_id for memory in memories]
        neighbours = _neighbours(valid_from, episode, ids)
        return cls(
            memories=tuple(memories),
            ids=np.array(ids, dtype=np.str_),
            vectors=vectors,
            context_vectors=None if vectors is None else _with_previous(vectors, neighbours),
            lexical=LexicalIndex([memory.text for memory in memories]),
            valid_from=valid_from,
            valid_to=np.array([_micros(m.valid_to) for m in memories], dtype=np.int64),
            created_at=np.array([_micros(m.created_at) for m in memories], dtype=np.int64),
            updated_at=np.array([_micros(m.updated_at) for m in memories], dtype=np.int64),
            expires_at=np.array([_micros(m.expires_at) for m in memories], dtype=np.int64),
            confidence=np.array([m.confidence for m in memories], dtype=np.float64),
            episode=episode,
            kinds=np.array([m.kind for m in memories], dtype=np.str_),
            scopes=np.array([m.scope or "" for m in memories], dtype=np.str_),
            neighbours=neighbours,
            labels=labels,
            label_names=tuple(names),
        )

    def __len__(self) -> int:
        return len(self.memories)

    @functools.cached_property
    def rows(self) -> dict[str, int]:
        """Row of each memory id."""
        return {memory_id: row for row, memory_id in enumerate(self.ids.tolist())}

    def last_stated(self, at: datetime) -> npt.NDArray[np.int64]:
        """memory.lifecycle.last_stated of every memory, in microseconds."""
        t = epoch_micros(at)
        return np.where(self.updated_at <= t, self.updated_at, self.created_at)

    def effective_confidence(self, at: datetime) -> npt.NDArray[np.float64]:
        """memory.lifecycle.effective_confidence of every memory at `at`."""
        age_days = np.maximum(epoch_micros(at) - self.last_stated(at), 0) / _MICROS_PER_DAY
        weak = ~self.episode & (self.confidence < WEAK_CONFIDENCE)
        half_life = WEAK_HALF_LIFE / timedelta(days=1)
        return np.where(weak, self.confidence * 0.5 ** (age_days / half_life), self.confidence)

    def live(
        self, at: datetime, kinds: Sequence[str] | None = None, scope: str | None = None
    ) -> npt.NDArray[np.bool_]:
        """memory.lifecycle.is_live of every memory at `at` (and of `kinds`, in `scope`), as a
        mask."""
        t = epoch_micros(at)
        mask = (
            (self.valid_from <= t)
            & (self.created_at <= t)
            & (self.valid_to > t)
            & (self.expires_at > t)
            & (self.effective_confidence(at) >= LIVE_FLOOR)
        )
        if kinds is not None:
            mask &= np.isin(self.kinds, list(kinds))
        if scope is not None:
            mask &= self.scopes == scope
        return mask

    def within(self, start: datetime, end: datetime) -> npt.NDArray[np.bool_]:
        """True for the memories true from, or said, within [start, end)."""
        a, b = epoch_micros(start), epoch_micros(end)
        return ((self.valid_from >= a) & (self.valid_from < b)) | (
            (self.created_at >= a) & (self.created_at < b)
        )

    def named_labels(self, query: str) -> npt.NDArray[np.bool_]:
        """True for the memories whose speaker label the query names as a word."""
        lowered = query.casefold()
        named = [
            position
            for position, name in enumerate(self.label_names)
            if re.search(rf"(?<!\w){re.escape(name)}(?!\w)", lowered)
        ]
        if not named:
            return np.zeros(len(self), dtype=np.bool_)
        return np.isin(self.labels, named)


def _with_previous(
    vectors: npt.NDArray[np.float32], neighbours: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    """Each vector plus its previous turn's (column CONTEXT_WINDOW - 1 of `neighbours`),
    normalised; a memory without a previous turn keeps its own."""
    previous = neighbours[:, CONTEXT_WINDOW - 1] if len(neighbours) else neighbours[:, 0]
    summed = vectors.astype(np.float32, copy=True)
    has = previous >= 0
    summed[has] += vectors[previous[has]]
    norms = np.linalg.norm(summed, axis=1, keepdims=True)
    return (summed / np.maximum(norms, 1e-12)).astype(np.float32)


def _neighbours(
    valid_from: npt.NDArray[np.int64], episode: npt.NDArray[np.bool_], ids: list[str]
) -> npt.NDArray[np.int64]:
    """For each episode, the rows of the episodes `CONTEXT_WINDOW` before and after it in time
    within one conversation (consecutive turns at most NEIGHBOUR_GAP apart); -1 elsewhere."""
    n = len(valid_from)
    out = np.full((n, 2 * CONTEXT_WINDOW), -1, dtype=np.int64)
    rows = np.flatnonzero(episode)
    if len(rows) < 2:
        return out
    # Time order, ties by memory id (turns stamped the same second keep a stable order).
    rows = rows[np.lexsort((np.array([ids[i] for i in rows]), valid_from[rows]))]
    times = valid_from[rows]
    gap = NEIGHBOUR_GAP // timedelta(microseconds=1)
    run = np.concatenate(([0], np.cumsum(np.diff(times) > gap)))
    offsets = [d for d in range(-CONTEXT_WINDOW, CONTEXT_WINDOW + 1) if d]
    for column, offset in enumerate(offsets):
        shifted = np.arange(len(rows)) + offset
        inside = (shifted >= 0) & (shifted < len(rows))
        same = np.zeros(len(rows), dtype=np.bool_)
        same[inside] = run[shifted[inside]] == run[inside]
        out[rows[same], column] = rows[shifted[same]]
    return out
