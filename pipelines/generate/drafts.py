"""Planted truth before the events are sorted: rows are positions in `TextRows`, not event ids."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.generate.timephrases import Direction


@dataclass
class FactDraft:
    """A planted fact and the rows that state it."""

    user: int
    kind: str
    text: str
    query: str
    source: str  # "message", "search" or "review"
    rows: list[int]
    slot: str | None = None
    value: str | None = None
    time_phrase: str | None = None
    direction: Direction | None = None
    valid_from_ms: int | None = None  # None: it became true when first stated
    tolerance_days: int = 0
    expires_after_ms: int | None = None  # counted from the last statement


@dataclass
class MentionDraft:
    """A text that names a fact without stating it about the user."""

    user: int
    row: int
    text: str
    mentions: tuple[str, ...]  # canonical facts it could be mistaken for
    reason: str  # "assistant", "hypothetical", "third_party", "question"


@dataclass
class PiiDraft:
    """Personal data typed into a text."""

    user: int
    row: int
    kind: str  # "email", "phone" or "card"
    value: str


@dataclass
class Drafts:
    """Everything planted so far."""

    facts: list[FactDraft] = field(default_factory=list)
    distractors: list[MentionDraft] = field(default_factory=list)
    non_facts: list[MentionDraft] = field(default_factory=list)
    pii: list[PiiDraft] = field(default_factory=list)
