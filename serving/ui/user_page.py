"""What the inspector shows of one user, read through the services the API uses.

Each part of the page is read on its own and comes back as a `Part`: its data, or the message
the page shows instead (a store down, nothing held, nothing trained), so one store's outage
blanks one part, never the page. Memories come from the memory service (the API's list as of a
time, and every memory with its history for the timeline), online features from the API's
feature reader, past features from the offline snapshots (the rows Feast's point-in-time join
reads), activity and provenance from the offline event store, the ranking from the API's
ranking service (LightGBM's contributions asked for, as `"explain": true` does).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import duckdb

from core.errors import EngramError, ServiceUnavailableError, UnknownUserError
from memory.records import Memory, ScoredMemory
from pipelines import duck
from pipelines.feature_snapshots import find_users, user_row_as_of
from pipelines.user_events import daily_activity, events_by_id
from serving.extension import Engram
from serving.ui.charts import diverging

log = logging.getLogger("engram.serving.ui")
T = TypeVar("T")
ACTIVITY_DAYS = 60
TOP_ITEMS = 10
SEARCH_K = 10


@dataclass
class Part(Generic[T]):
    """A part of the page: its data, or why it is not shown (`problem`)."""

    data: T | None = None
    problem: str | None = None
    degraded: bool = False  # a store is down: shown as a warning, not as "nothing held"
    seconds: float = 0.0  # how long reading it took (the page's Server-Timing header)


def read_part(what: str, action: Callable[[], T]) -> Part[T]:
    """`action()`'s result, or the message for a store down, an unknown user, a bad input."""
    began = time.perf_counter()
    part = _read(what, action)
    part.seconds = time.perf_counter() - began
    return part


def _read(what: str, action: Callable[[], T]) -> Part[T]:
    try:
        return Part(action())
    except ServiceUnavailableError as error:
        log.warning("inspector: %s: %s unavailable", what, error.service)
        return Part(
            problem=f"{error.service} is unavailable: {what} cannot be shown", degraded=True
        )
    except UnknownUserError:
        return Part(problem=f"Engram holds no {what} for this user")
    except EngramError as error:
        return Part(problem=f"{what}: {error}")
    except duckdb.Error as error:
        log.warning("inspector: %s: offline store: %s", what, error)
        return Part(
            problem=f"the offline store could not be read: {what} cannot be shown", degraded=True
        )


@dataclass
class Memories:
    """Every memory of the user (history included) and those true at the page's time."""

    history: list[Memory]
    true_at: list[Memory]


@dataclass
class FeatureRow:
    """One feature of the `ranking` service for the user."""

    name: str
    value: Any
    view: str | None = None
    event_time: datetime | None = None


@dataclass
class Features:
    """The user's features and where they come from."""

    source: str  # "online" or "offline"
    at: datetime  # their event time (offline), or now (online)
    rows: list[FeatureRow] = field(default_factory=list)
    views: dict[str, datetime | None] = field(default_factory=dict)  # view -> event time
    ttls: dict[str, timedelta | None] = field(default_factory=dict)  # view -> its ttl


@dataclass
class Ranking:
    """The user's top items as the API would answer them, with contributions."""

    items: list[dict[str, Any]]
    model_version: str
    degraded_reason: str | None


@dataclass
class Parts:
    """Everything the user's page shows."""

    memories: Part[Memories]
    features: Part[Features]
    activity: Part[list[tuple[Any, int]]]
    ranking: Part[Ranking]
    search: Part[list[ScoredMemory]] | None


def _both(history: Part[list[Memory]], true_at: Part[list[Memory]]) -> Part[Memories]:
    for part in (history, true_at):
        if part.data is None:
            return Part(problem=part.problem, degraded=part.degraded, seconds=part.seconds)
    assert history.data is not None and true_at.data is not None
    return Part(Memories(history.data, true_at.data), seconds=max(history.seconds, true_at.seconds))


class UserPage:
    """Reads the parts of one user's page as of a time (None: now)."""

    def __init__(self, ext: Engram, offline: Offline, user_id: str, as_of: datetime | None) -> None:
        self.ext = ext
        self._offline = offline
        self.user_id = user_id
        self.as_of = as_of
        self.now = datetime.now(UTC)
        self._con: duckdb.DuckDBPyConnection | None = None

    @property
    def at(self) -> datetime:
        """The time the page shows."""
        return self.as_of or self.now

    def offline(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB cursor for this page's offline reads (closed by `close`)."""
        if self._con is None:
            self._con = self._offline.cursor()
        return self._con

    def close(self) -> None:
        """Release the DuckDB connection."""
        if self._con is not None:
            self._con.close()
            self._con = None

    def gather(self, pool: Executor, query: str | None) -> Parts:
        """Every part of the user's page, read side by side on `pool`: the stores answer
        while the ranker computes. The two DuckDB reads share one connection, so they run one
        after the other."""
        history = pool.submit(self.listing, None)
        true_at = pool.submit(self.listing, self.at)
        ranking = pool.submit(self.ranking)
        search = pool.submit(self.search, query) if query else None
        offline = pool.submit(lambda: (self.features(), self.activity()))
        features, activity = offline.result()
        return Parts(
            memories=_both(history.result(), true_at.result()),
            features=features,
            activity=activity,
            ranking=ranking.result(),
            search=search.result() if search is not None else None,
        )

    def listing(self, at: datetime | None) -> Part[list[Memory]]:
        """The API's listing: the memories true at `at`; every one, history included, when
        None. (The memory service made its collection when it was built, so it is not asked
        whether it exists, as the API's GET does: one round trip less.)"""

        def read() -> list[Memory]:
            found: list[Memory] = self.ext.memories.call(
                lambda service: service.list(self.user_id, as_of=at)
            )
            return found

        return read_part("memories", read)

    def search(self, query: str) -> Part[list[ScoredMemory]]:
        """The API's memory search as of the page's time, with each hit's score parts."""

        def read() -> list[ScoredMemory]:
            hits: list[ScoredMemory] = self.ext.memories.call(
                lambda service: service.search(self.user_id, query, SEARCH_K, None, self.as_of)
            )
            return hits

        return read_part("memory search", read)

    def features(self) -> Part[Features]:
        """Online features now; as of an earlier time, the offline snapshot row then."""
        online = read_part("online features", lambda: self.ext.features.user(self.user_id))
        if self.as_of is None:
            if online.data is None:
                return Part(problem=online.problem, degraded=online.degraded)
            return Part(self._online(online.data))
        return read_part("features", lambda: self._snapshot(online.data))

    def _online(self, row: dict[str, Any]) -> Features:
        views: dict[str, datetime | None] = row["event_timestamps"]
        refs = self.ext.features.user_views()
        owner = {feature.name: ref.name for ref in refs for feature in ref.features}
        ttls = {ref.name: ref.ttl for ref in refs}
        rows = [
            FeatureRow(name, value, owner.get(name), views.get(owner.get(name, "")))
            for name, value in row["features"].items()
        ]
        return Features("online", self.now, rows, views, ttls)

    def _snapshot(self, online: dict[str, Any] | None) -> Features:
        row = user_row_as_of(self.offline(), self.ext.settings, self.user_id, self.as_of)
        names = list(online["features"]) if online is not None else None
        skip = {"user_id", "event_timestamp", "created"}
        rows = [
            FeatureRow(name, value)
            for name, value in row.items()
            if name not in skip and (names is None or name in names)
        ]
        stamp = row["event_timestamp"]
        at = stamp.astimezone(UTC) if isinstance(stamp, datetime) else self.at
        return Features("offline", at, rows)

    def activity(self) -> Part[list[tuple[Any, int]]]:
        """Signals per day over the ACTIVITY_DAYS up to the page's time."""
        since = (self.at - timedelta(days=ACTIVITY_DAYS)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        return read_part(
            "activity",
            lambda: daily_activity(self.offline(), self.ext.settings, self.user_id, since, self.at),
        )

    def ranking(self) -> Part[Ranking]:
        """The API's ranking for the user now, with the top feature contributions."""

        def read() -> Ranking:
            ranked, reason = self.ext.ranking.rank(self.user_id, TOP_ITEMS, None, None, None, True)
            if reason is not None:
                self.ext.metrics.degraded.labels(reason).inc()
            reasons = getattr(ranked, "reasons", None) or {}
            items = []
            for item, score in ranked.items:
                why = reasons.get(item)
                top = (why or {}).get("top_features") or []
                bars = diverging([(f["name"], float(f["contribution"])) for f in top])
                items.append({"item_id": item, "score": float(score), "reasons": why, "bars": bars})
            return Ranking(items, ranked.model_version, reason)

        return read_part("ranking", read)

    def events(self, event_ids: list[str]) -> Part[list[dict[str, Any]]]:
        """The stored events among `event_ids` (a memory's provenance)."""
        return read_part(
            "source events",
            lambda: events_by_id(self.offline(), self.ext.settings, self.user_id, event_ids),
        )


class Offline:
    """The process's DuckDB connection for the offline reads, made on first use; each page
    reads through a cursor of it (DuckDB's connection for one thread, cheaper than connecting
    per page)."""

    def __init__(self, ext: Engram) -> None:
        self._ext = ext
        self._base: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor for one thread's reads; close it when done."""
        with self._lock:
            if self._base is None:
                self._base = duck.connect(self._ext.settings)
            return self._base.cursor()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._base is not None:
                self._base.close()
                self._base = None


@dataclass
class Inspector:
    """The inspector's process-wide objects (app.extensions["engram_ui"])."""

    pool: Executor  # a page's reads run side by side on it
    offline: Offline


def matching_users(ext: Engram, offline: Offline, prefix: str, limit: int = 20) -> Part[list[str]]:
    """User ids of the offline snapshots that start with `prefix`."""

    def read() -> list[str]:
        con = offline.cursor()
        try:
            return find_users(con, ext.settings, prefix, limit)
        finally:
            con.close()

    return read_part("users", read)
