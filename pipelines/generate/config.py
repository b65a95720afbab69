"""What to generate: sizes, shares and seed, with the three presets the CLI offers."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from core.errors import InvalidInputError

OutputFormat = Literal["jsonl", "parquet"]

DEFAULT_END = datetime(2026, 10, 31, tzinfo=UTC)
# Shares are probabilities; above this a dataset would be mostly noise.
_MAX_SHARE = 0.5


@dataclass(frozen=True)
class GenerateConfig:
    """Everything that shapes a generated dataset; the same config and seed give the same bytes."""

    users: int = 100
    events_per_user: int = (
        50  # mean; valid unique events total users x this (unless chats alone exceed it)
    )
    items: int = 400
    days: int = 120
    end: datetime = DEFAULT_END
    seed: int = 7
    malformed_rate: float = 0.01  # JSONL only: malformed lines per valid unique event
    duplicate_rate: float = 0.01  # valid records re-emitted verbatim later in the file
    chat_user_share: float = 0.4  # users with multi-session chats and planted facts
    chat_sessions: tuple[int, int] = (2, 5)  # inclusive range per chatting user
    search_share: float = 0.03  # behaviour events that are searches outside bursts
    burst_user_share: float = 0.3  # users with one burst of searches about an intent
    review_rate: float = 0.15  # purchases followed by a review
    tag_rate: float = 0.01  # views and clicks that are tags instead
    pii_user_share: float = 0.2  # chatting users who type an email, phone or card number
    typo_rate: float = 0.03  # user chat turns with a typo in their filler words
    format: OutputFormat = "jsonl"
    chunk_rows: int = 1_000_000  # lines built and written at once

    def __post_init__(self) -> None:
        for name in ("users", "events_per_user", "items", "days", "chunk_rows"):
            if getattr(self, name) < 1:
                raise InvalidInputError(name, "must be at least 1")
        if self.seed < 0:
            raise InvalidInputError("seed", "must be 0 or more")
        if self.days < 14:
            raise InvalidInputError("days", "must be at least 14 so facts can change over time")
        if self.end.tzinfo is None:
            raise InvalidInputError("end", "must carry a UTC offset")
        low, high = self.chat_sessions
        if not 1 <= low <= high:
            raise InvalidInputError(
                "chat_sessions", "must be a range (low, high), 1 <= low <= high"
            )
        for spec in fields(self):
            if spec.name.endswith(("_rate", "_share")):
                value = getattr(self, spec.name)
                limit = 1.0 if spec.name.endswith("user_share") else _MAX_SHARE
                if not 0.0 <= value <= limit:
                    raise InvalidInputError(spec.name, f"must be between 0 and {limit}")
        if self.format not in ("jsonl", "parquet"):
            raise InvalidInputError("format", "must be 'jsonl' or 'parquet'")

    @property
    def total_events(self) -> int:
        """Valid unique events the dataset holds (before duplicates and malformed lines)."""
        return self.users * self.events_per_user

    def replace(self, **changes: object) -> GenerateConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def small(cls) -> GenerateConfig:
        """For tests: 100 users, 5,000 events, well under a second."""
        return cls()

    @classmethod
    def demo(cls) -> GenerateConfig:
        """For `make demo`: 2,000 users, 160,000 events over half a year."""
        return cls(users=2_000, events_per_user=80, items=3_000, days=180, chat_user_share=0.3)

    @classmethod
    def bench(cls, events: int = 10_000_000) -> GenerateConfig:
        """For the ingest benchmark: `events` valid events, 100 per user, few of them with text."""
        users = max(events // 100, 1)
        return cls(
            users=users,
            events_per_user=max(events // users, 1),
            items=min(max(users // 2, 1_000), 50_000),
            days=180,
            chat_user_share=0.02,
            burst_user_share=0.05,
            pii_user_share=0.2,
        )


@dataclass(frozen=True)
class DatasetPaths:
    """The files `write_dataset` wrote."""

    signals: Path
    catalog: Path
    truth: Path
    queries: Path
