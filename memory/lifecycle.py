"""Lifecycle decisions for memories: merge, supersede, expire and decay. Pure: no clients.

`unseen` drops new memories whose evidence is already stored (re-ingesting is idempotent);
`plan` folds the rest into the user's stored memories (each with its vector) and returns what
to write. Rules, tried for each new memory in the order it was stated:

1. The same id: provenance is unioned (nothing else is new).
2. Slot facts (single-valued: location, diet, employer, ...) form a chain per (user, scope,
   slot), ordered by `valid_from`. The new fact lands where its `valid_from` falls:
   - the fact in effect then has the same value: merge into it (the newer wording wins);
   - the next fact has the same value: merge into that one, which now starts earlier;
   - otherwise it is a change: the fact in effect then closes (`valid_to` = the new fact's
     `valid_from`, `superseded_by` = its id) and the new fact runs until the next one starts.
     So an older fact that arrives after a newer one is inserted already closed.
   Nothing is deleted: a search "as of" a time sees the fact that was true then.
3. Other facts merge into an open memory of the same kind and scope with the same text or a
   vector within `FACT_NEAR_DUPLICATE` cosine ("Wants to buy a stroller" / "Wants to get a
   stroller": 0.95; "Brother is Leo" / "Sister is Leo": 0.84, kept apart). An intent only
   merges into an intent that has not expired when the new one is stated.
4. Episodes (raw turns) merge only on the same text, case- and whitespace-insensitive: two
   turns a word apart ("do you think I should get a rabbit? :)" / "... lol") may differ in
   meaning, and the episode text is the evidence.

A merge keeps the stored id and text, unions provenance, keeps the earliest `valid_from` and
`created_at` and the latest `updated_at`/`expires_at`, and raises confidence by noisy-OR,
1 - (1 - a)(1 - b), capped at `CONFIDENCE_CAP`, only when the new memory brings source events
the stored one did not have: replaying evidence changes nothing.

Limit: a restatement merged into the period it confirms leaves no mark of its own time, so a
conflicting fact that arrives later and falls between the two statements wins from its
`valid_from` on (tests/memory/test_lifecycle.py states exactly which orders are exact).

Expiry and decay (read at search time, nothing is rewritten): an intent is gone after its
`expires_at`. A weak fact (confidence below `WEAK_CONFIDENCE`, e.g. a hedged statement) loses
half its confidence every `WEAK_HALF_LIFE` since it was last stated, and stops being returned
when that falls under `LIVE_FLOOR`: a 0.55 fact lasts ~52 days unless stated again.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from memory.embed import Vectors
from memory.records import FACT_KINDS, Memory

FACT_NEAR_DUPLICATE = 0.93
CONFIDENCE_CAP = 0.99
WEAK_CONFIDENCE = 0.6
WEAK_HALF_LIFE = timedelta(days=60)
LIVE_FLOOR = 0.3


@dataclass(frozen=True)
class Vectored:
    """A memory and its unit-length embedding."""

    memory: Memory
    vector: Vectors


@dataclass
class Plan:
    """What a batch changes: memories to write and the stored ids they replace."""

    writes: list[Vectored] = field(default_factory=list)
    replacing: list[str] = field(default_factory=list)
    inserted: int = 0
    merged: int = 0
    superseded: int = 0
    unchanged: int = 0
    # Each new memory's id -> the id of the memory that holds it now (itself, or the stored
    # memory it merged into).
    placed: dict[str, str] = field(default_factory=dict)


def text_key(text: str) -> str:
    """The key exact duplicates share: case- and whitespace-insensitive."""
    folded = " ".join(text.casefold().split())
    return hashlib.blake2b(folded.encode(), digest_size=12).hexdigest()


# --- expiry and decay ------------------------------------------------------------------------


def last_stated(memory: Memory, at: datetime) -> datetime:
    """When the memory was last confirmed, as far as a reader at `at` knows."""
    return memory.updated_at if memory.updated_at <= at else memory.created_at


def effective_confidence(memory: Memory, at: datetime) -> float:
    """Confidence at `at`: a weak fact halves every WEAK_HALF_LIFE since it was last stated."""
    if memory.kind == "episode" or memory.confidence >= WEAK_CONFIDENCE:
        return memory.confidence
    age = max(at - last_stated(memory, at), timedelta(0))
    return memory.confidence * 0.5 ** (age / WEAK_HALF_LIFE)


def is_live(memory: Memory, at: datetime) -> bool:
    """True at `at` (valid, known, not superseded, not expired) and not decayed away."""
    return memory.is_true_at(at) and effective_confidence(memory, at) >= LIVE_FLOOR


# --- merging ---------------------------------------------------------------------------------


def noisy_or(a: float, b: float) -> float:
    """The chance at least one of two independent pieces of evidence is right, capped."""
    return min(CONFIDENCE_CAP, 1.0 - (1.0 - a) * (1.0 - b))


def merged(stored: Memory, new: Memory, *, take_wording: bool = False) -> Memory:
    """`stored` with the evidence of `new` added (see the module doc)."""
    seen = set(stored.source_event_ids)
    fresh = tuple(event for event in new.source_event_ids if event not in seen)
    confidence = max(stored.confidence, new.confidence)
    if fresh:
        # Never lowered: a stored 1.0 stays 1.0 even though noisy-OR is capped below it.
        confidence = max(confidence, noisy_or(stored.confidence, new.confidence))
    if stored.expires_at is None or new.expires_at is None:
        expires_at = None
    else:
        expires_at = max(stored.expires_at, new.expires_at)
    changes: dict[str, object] = {
        "source_event_ids": stored.source_event_ids + fresh,
        "confidence": round(confidence, 6),
        "valid_from": min(stored.valid_from, new.valid_from),
        "created_at": min(stored.created_at, new.created_at),
        "updated_at": max(stored.updated_at, new.updated_at),
        "expires_at": expires_at,
    }
    if take_wording:
        changes.update(kind=new.kind, text=new.text, value=new.value)
    return stored.evolve(**changes)


Space = tuple[str, str]  # (user_id, scope)


def _space(memory: Memory) -> Space:
    """The space lifecycle decisions stay in: the user, and the memory's scope."""
    return (memory.user_id, memory.scope or "")


def _same_value(a: Memory, b: Memory) -> bool:
    return (a.value or "").casefold() == (b.value or "").casefold()


def _is_slot_fact(memory: Memory) -> bool:
    return memory.slot is not None and memory.kind in FACT_KINDS


def unseen(new: Sequence[Memory], stored: Sequence[Memory]) -> list[Memory]:
    """The new memories that bring something: a memory whose every source event is already in
    the provenance of a stored one with the same text (or slot and value) needs no vector and
    changes nothing, so re-ingesting the same events is cheap and idempotent."""
    holders: dict[str, list[Memory]] = defaultdict(list)
    for memory in stored:
        for event in memory.source_event_ids:
            holders[event].append(memory)
    return [memory for memory in new if not _known(memory, holders)]


def _known(new: Memory, holders: dict[str, list[Memory]]) -> bool:
    if not new.source_event_ids:
        return False
    sources = set(new.source_event_ids)
    key = text_key(new.text)
    for memory in holders.get(new.source_event_ids[0], []):
        if _space(memory) != _space(new) or not sources <= set(memory.source_event_ids):
            continue
        if memory.memory_id == new.memory_id or text_key(memory.text) == key:
            return True
        if _is_slot_fact(new) and memory.slot == new.slot and _same_value(memory, new):
            return True
    return False


class _Working:
    """The user's memories as the plan changes them, with lookups by slot, text and kind."""

    def __init__(self, stored: Sequence[Vectored]) -> None:
        self.items: dict[str, Vectored] = {}
        self.stored_ids = {item.memory.memory_id for item in stored}
        self.dirty: set[str] = set()
        self.by_text: dict[tuple[Space, str, str], list[str]] = defaultdict(list)
        self.by_kind: dict[tuple[Space, str], list[str]] = defaultdict(list)
        self.by_slot: dict[tuple[Space, str], list[str]] = defaultdict(list)
        for item in stored:
            self.add(item, dirty=False)

    def add(self, item: Vectored, *, dirty: bool = True) -> None:
        memory = item.memory
        self.items[memory.memory_id] = item
        self.by_text[(_space(memory), memory.kind, text_key(memory.text))].append(memory.memory_id)
        if memory.kind != "episode":
            self.by_kind[(_space(memory), memory.kind)].append(memory.memory_id)
        if _is_slot_fact(memory):
            self.by_slot[(_space(memory), memory.slot or "")].append(memory.memory_id)
        if dirty:
            self.dirty.add(memory.memory_id)

    def update(self, memory: Memory, vector: Vectors | None = None) -> bool:
        """Replace a memory in place (its text key may change); True when anything changed."""
        old = self.items[memory.memory_id]
        if old.memory == memory and vector is None:
            return False
        new_key = (_space(memory), memory.kind, text_key(memory.text))
        old_key = (_space(old.memory), old.memory.kind, text_key(old.memory.text))
        if new_key != old_key:
            self.by_text[old_key].remove(memory.memory_id)
            self.by_text[new_key].append(memory.memory_id)
        if memory.kind != old.memory.kind:
            self.by_kind[(_space(old.memory), old.memory.kind)].remove(memory.memory_id)
            if memory.kind != "episode":
                self.by_kind[(_space(memory), memory.kind)].append(memory.memory_id)
        self.items[memory.memory_id] = Vectored(memory, old.vector if vector is None else vector)
        self.dirty.add(memory.memory_id)
        return True

    def memory(self, memory_id: str) -> Memory:
        return self.items[memory_id].memory


def plan(new: Sequence[Vectored], stored: Sequence[Vectored]) -> Plan:
    """The writes that fold `new` memories into the `stored` ones (see the module doc)."""
    work = _Working(stored)
    result = Plan()
    ordered = sorted(new, key=lambda item: (item.memory.created_at, item.memory.valid_from))
    for item in ordered:
        memory = item.memory
        if memory.memory_id in work.items:
            changed = work.update(merged(work.memory(memory.memory_id), memory))
            result.merged += changed
            result.unchanged += not changed
            result.placed[memory.memory_id] = memory.memory_id
        elif _is_slot_fact(memory):
            _place_in_chain(work, item, result)
        else:
            _merge_or_insert(work, item, result)
    for memory_id in sorted(work.dirty):
        result.writes.append(work.items[memory_id])
        if memory_id in work.stored_ids:
            result.replacing.append(memory_id)
    return result


def _merge_or_insert(work: _Working, item: Vectored, result: Plan) -> None:
    memory = item.memory
    target = _merge_target(work, item)
    if target is None:
        work.add(item)
        result.inserted += 1
        result.placed[memory.memory_id] = memory.memory_id
        return
    result.placed[memory.memory_id] = target
    changed = work.update(merged(work.memory(target), memory))
    result.merged += changed
    result.unchanged += not changed


def _merge_target(work: _Working, item: Vectored) -> str | None:
    memory = item.memory

    def open_for(other: Memory) -> bool:
        if other.valid_to is not None:
            return False
        # An intent that lapsed before this one was stated is a past wish, not this one.
        return other.expires_at is None or other.expires_at > memory.created_at

    same_text = work.by_text.get((_space(memory), memory.kind, text_key(memory.text)), [])
    for memory_id in same_text:
        if open_for(work.memory(memory_id)):
            return memory_id
    if memory.kind == "episode":
        return None
    best, best_cosine = None, FACT_NEAR_DUPLICATE
    for memory_id in work.by_kind.get((_space(memory), memory.kind), []):
        other = work.items[memory_id]
        if not open_for(other.memory):
            continue
        cosine = float(np.dot(other.vector, item.vector))
        if cosine >= best_cosine:
            best, best_cosine = memory_id, cosine
    return best


def _place_in_chain(work: _Working, item: Vectored, result: Plan) -> None:
    memory = item.memory
    chain = sorted(
        (work.memory(memory_id) for memory_id in work.by_slot[(_space(memory), memory.slot or "")]),
        key=lambda other: (other.valid_from, other.created_at, other.memory_id),
    )
    at = memory.valid_from
    before = [other for other in chain if other.valid_from <= at]
    after = [other for other in chain if other.valid_from > at]
    current = before[-1] if before else None
    following = after[0] if after else None
    if current is not None and _same_value(current, memory):
        newer = memory.created_at > current.updated_at
        changed = work.update(
            merged(current, memory, take_wording=newer), item.vector if newer else None
        )
        result.merged += changed
        result.unchanged += not changed
        result.placed[memory.memory_id] = current.memory_id
        return
    if following is not None and _same_value(following, memory):
        # The value held since earlier than we knew: the following fact starts at `at` now.
        target = merged(following, memory)
        work.update(target)
        result.merged += 1
        result.placed[memory.memory_id] = target.memory_id
        if current is not None:
            _close(work, current, at, target.memory_id, result)
        return
    closed = memory
    if following is not None:
        closed = memory.evolve(valid_to=following.valid_from, superseded_by=following.memory_id)
    work.add(Vectored(closed, item.vector))
    result.inserted += 1
    result.placed[memory.memory_id] = memory.memory_id
    if current is not None:
        _close(work, current, at, memory.memory_id, result)


def _close(work: _Working, memory: Memory, at: datetime, by: str, result: Plan) -> None:
    """End `memory` at `at`, superseded by `by` (it may already have ended later)."""
    if memory.valid_to == at and memory.superseded_by == by:
        return
    work.update(memory.evolve(valid_to=at, superseded_by=by))
    result.superseded += 1
