"""The memory record: one durable fact or episode about a user, with its validity in time.

Two clocks: `valid_from`/`valid_to` are event time (when the fact was true in the user's life);
`created_at`/`updated_at` are ingestion time (when Engram learned it). A search "as of" T sees
what was true at T. Open ends are None here; the Milvus adapter stores them as sentinels.

`scope` names a narrower space of the user's memories (a session, an agent or an app id) for
memories an application adds itself; None is the user's own space, where extraction writes.
Lifecycle decisions (merge, supersession) stay inside one scope.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

MemoryKind = Literal[
    "preference", "dislike", "attribute", "relationship", "life_event", "intent", "episode"
]
MEMORY_KINDS: tuple[MemoryKind, ...] = (
    "preference",
    "dislike",
    "attribute",
    "relationship",
    "life_event",
    "intent",
    "episode",
)
FACT_KINDS: frozenset[str] = frozenset(MEMORY_KINDS) - {"episode"}


@dataclass(frozen=True)
class Memory:
    """A memory as Engram stores and returns it."""

    memory_id: str
    user_id: str
    kind: MemoryKind
    text: str  # canonical statement, e.g. "Is vegetarian", "Moved to Seattle"
    confidence: float
    valid_from: datetime
    created_at: datetime
    updated_at: datetime
    source_event_ids: tuple[str, ...]
    slot: str | None = None  # facts that can conflict: location, employer, diet, ...
    value: str | None = None
    valid_to: datetime | None = None
    expires_at: datetime | None = None
    superseded_by: str | None = None
    scope: str | None = None

    def is_true_at(self, when: datetime) -> bool:
        """Valid at `when`, known by `when`, and not expired."""
        return (
            self.valid_from <= when
            and self.created_at <= when
            and (self.valid_to is None or when < self.valid_to)
            and (self.expires_at is None or when < self.expires_at)
        )

    def evolve(self, **changes: object) -> Memory:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ScoredMemory:
    """A search hit: the memory and how it scored."""

    memory: Memory
    score: float
    parts: dict[str, float] = field(default_factory=dict)  # dense, lexical, recency, confidence


def memory_id_for(user_id: str, kind: str, text: str, first_event_id: str) -> str:
    """A deterministic id, so re-extracting the same evidence yields the same memory."""
    digest = hashlib.blake2b(
        f"{user_id}\x1f{kind}\x1f{text.casefold()}\x1f{first_event_id}".encode(), digest_size=12
    )
    return f"m-{digest.hexdigest()}"
