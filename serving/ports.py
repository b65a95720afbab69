"""What serving needs from the ranker and the stream, as small interfaces wired in the factory.

The app depends on these shapes, not on ranking/ or pipelines/stream/ directly: `wiring.py`
finds the real implementations when they are installed and falls back to local ones
(popularity ranking, a plain XADD producer, the batch path for `?sync=true`) otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from core.stores.cluster import RedisClient
from core.stores.online.transport import Read


class Ranked(Protocol):
    """A ranking: items best first with scores, and the version of what ranked them."""

    items: list[tuple[str, float]]
    model_version: str


@dataclass
class RankResult:
    """A ranking (the shape of ranking.ranker.RankResult)."""

    items: list[tuple[str, float]]
    model_version: str
    reasons: dict[str, Any] | None = field(default=None)  # item_id -> why


class Ranker(Protocol):
    """ranking.ranker.Ranker: the k best items for a user, of the candidates when given."""

    def rank(
        self,
        user_id: str,
        k: int,
        candidates: list[str] | None = None,
        query: str | None = None,
        at: datetime | None = None,
        explain: bool = True,
    ) -> Ranked: ...


@runtime_checkable
class Fetches(Protocol):
    """A ranker that reads what a request needs from Redis in one round trip, the caller's
    reads with it (ranking.ranker.Ranker.fetch), then ranks from what it read."""

    def fetch(
        self,
        user_id: str,
        at: datetime | None = None,
        query: str | None = None,
        extra: Sequence[Read] = (),
    ) -> Any:
        """The reads of a request to rank for the user; `.extra` holds the caller's, parsed."""
        ...

    def rank(
        self,
        user_id: str,
        k: int,
        candidates: list[str] | None = None,
        query: str | None = None,
        at: datetime | None = None,
        explain: bool = True,
        fetched: Any = None,
    ) -> Ranked:
        """`Ranker.rank` from what `fetch` read."""
        ...


@runtime_checkable
class HoldsUsers(Protocol):
    """An in-process copy of users' data (the model's training log, the popularity table's
    seen items) that can drop one user before answering for them (a forget elsewhere)."""

    def knows(self, user_id: str) -> bool:
        """True when the copy holds data of the user."""
        ...

    def forget_user(self, user_id: str) -> None:
        """Answer for the user as for a stranger from now on."""
        ...


@runtime_checkable
class RefreshesItems(Protocol):
    """A ranker holding item rows in the process, re-read whole by the server's background
    thread (never by a request)."""

    @property
    def item_refresh_seconds(self) -> float:
        """Seconds between reads (0: none)."""
        ...

    def refresh_items(self) -> None:
        """Read the rows again and swap them in; the old rows serve until then."""
        ...


class Producer(Protocol):
    """Appends signals (JSON text, one per record) to the signals stream; returns their ids."""

    def __call__(self, client: RedisClient, records: Sequence[str]) -> list[str]: ...


class SyncProcessor(Protocol):
    """Runs accepted signals (with their stream entry ids) through the whole pipeline now:
    features and memories visible when it returns. Returns a JSON-ready summary."""

    def __call__(self, records: Sequence[str], entry_ids: Sequence[str]) -> dict[str, Any]: ...
