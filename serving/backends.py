"""The process-wide handles the routes use: Redis, the feature reader, memories and the ranker.

Built once per process in the app factory, without I/O in the constructors; each handle fails
fast through a circuit breaker (serving/breaker.py) when its store is down, and picks the store
up again on its own when it is back. The clients come from core.stores.services with the API's
timeouts (`connect_redis`, `connect_milvus`): every call is bounded, nothing here starts a
server, and a restarted server is found again at its recorded address.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import redis
from pymilvus.exceptions import MilvusException

from core.errors import EngramError, ServiceUnavailableError, UnknownUserError
from core.settings import Settings
from core.stores import feature_store
from core.stores.cluster import RedisClient
from core.stores.online.layout import ViewRef
from core.stores.online.plan import service_plan
from core.stores.online.read_service import ServiceReader, user_row
from core.stores.services import connect_milvus
from memory.embed import Embedder
from memory.service import MemoryService, build_memory_service
from memory.store import DEFAULT_COLLECTION
from memory.versions import MemoryVersions
from pipelines.stream.tombstones import Tombstone, read_tombstones, tombstone_read
from serving.breaker import Breaker
from serving.popularity import (
    Popularity,
    PopularityRanker,
    load_popularity,
    popularity_inputs,
)
from serving.ports import Fetches, HoldsUsers, Ranked, Ranker, RefreshesItems

log = logging.getLogger("engram.serving")

FEATURE_SERVICE = "ranking"
RETRY_S = 5.0  # how long a missing registry / feature service is remembered as missing
REFRESH_S = 60.0  # model and popularity reload period
MODEL_RETRY_S = 10.0  # period of the model's reload while there is none


def guarded(breaker: Breaker, service: str, call: Callable[[], Any]) -> Any:
    """Run `call` through `breaker`: 503 at once while it is open; Redis errors open it."""
    if not breaker.closed:
        raise ServiceUnavailableError(service, breaker.last_error or "recently failed")
    try:
        result = call()
    except ServiceUnavailableError as error:
        if error.service == service:  # not, say, a full stream: that is backpressure
            breaker.failure(error.reason)
        raise
    except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
        breaker.failure(str(error))
        raise ServiceUnavailableError(service, str(error)) from error
    except EngramError:  # the store answered; what it said is the caller's error (unknown user)
        breaker.success()
        raise
    breaker.success()
    return result


def settle_heap() -> None:
    """After a model swap in a serving process whose heap was frozen (`freeze_heap`): collect
    the old model's cycles once and freeze again. A no-op where nothing was frozen (tests,
    commands)."""
    if gc.get_freeze_count():
        gc.unfreeze()
        gc.collect()
        gc.freeze()


def freeze_heap() -> None:
    """Move every object alive now (the model, its log and sources: ~400k objects on
    MovieLens) out of the collector's reach: a full collection then scans only what requests
    made since, instead of stalling a request for the whole heap's scan (hundreds of ms).
    Called once a worker has loaded everything, before it takes requests."""
    gc.collect()
    gc.freeze()


class FeatureReader:
    """The `ranking` feature service of one user, read online through the fast path."""

    def __init__(self, settings: Settings, redis_url: str, client: RedisClient, breaker: Breaker):
        self._settings = settings
        self._redis_url = redis_url
        self._client = client
        self._breaker = breaker
        self._reader: ServiceReader | None = None
        self._store: Any = None
        self._next_try = 0.0
        self._lock = threading.Lock()

    def _ensure(self) -> ServiceReader | None:
        if self._reader is not None or time.monotonic() < self._next_try:
            return self._reader
        with self._lock:
            if self._reader is None:
                try:
                    if self._store is None:
                        self._store = feature_store.open_store(self._settings, self._redis_url)
                    self._store.refresh_registry()
                    plan = service_plan(self._store, FEATURE_SERVICE)
                    self._reader = ServiceReader(self._client, self._store.project, plan)
                except EngramError as error:
                    log.info("feature service not ready: %s", error)
                    self._next_try = time.monotonic() + RETRY_S
        return self._reader

    def warm(self) -> None:
        """Open the registry and plan the service now (a no-op when already done)."""
        self._ensure()

    def reload(self) -> None:
        """Read the registry again (after a materialization applied the repo)."""
        self._reader = None
        self._next_try = 0.0

    def user_views(self) -> list[ViewRef]:
        """The service's stored views of users (features, ttl); none until the registry is read."""
        reader = self._ensure()
        return [] if reader is None else [v for v in reader.plan.views if v.join_key == "user_id"]

    def user(self, user_id: str) -> dict[str, Any]:
        """The user's features with each view's event time; 404 when none are held."""
        reader = self._ensure()
        if reader is None:
            raise UnknownUserError(user_id)  # nothing is materialized yet: no one has features
        return guarded(self._breaker, "redis", lambda: user_row(reader, user_id))


class MemoryHandle:
    """The memory service, built on first use (embedding model and Milvus client)."""

    def __init__(
        self,
        settings: Settings,
        breaker: Breaker,
        *,
        collection: str = DEFAULT_COLLECTION,
        embedder: Embedder | None = None,
        versions: MemoryVersions | None = None,
    ) -> None:
        self._settings = settings
        self.breaker = breaker
        self.collection = collection
        self._embedder = embedder
        self._versions = versions
        self._service: MemoryService | None = None
        self._probe: Any = None
        self._lock = threading.Lock()

    def get(self) -> MemoryService:
        """The service; 503 while Milvus is down (a failed build opens the breaker)."""
        if self._service is not None:
            return self._service
        if not self.breaker.closed:
            raise ServiceUnavailableError("milvus", self.breaker.last_error or "recently failed")
        with self._lock:
            if self._service is None:
                try:
                    self._service = build_memory_service(
                        self._settings,
                        collection=self.collection,
                        embedder=self._embedder,
                        timeout_s=self._settings.engram_milvus_timeout_ms / 1000,
                        versions=self._versions,
                    )
                except ServiceUnavailableError as error:
                    self.breaker.failure(error.reason)
                    raise
                # Kept apart from Milvus: a rebuild after an outage only reconnects.
                self._embedder = self._service.embedder
        return self._service

    def ping(self, timeout_s: float) -> None:
        """Ask Milvus for its collections within `timeout_s`: 503 (and the breaker opened)
        when it does not answer, the breaker closed when it does."""
        if self._probe is None:
            self._probe = connect_milvus(self._settings, timeout_s)
        probe = self._probe
        self._guard(lambda: probe.list_collections())

    def call(self, action: Callable[[MemoryService], Any]) -> Any:
        """Run `action` on the service; Milvus failures become 503 and open the breaker."""
        service = self.get()
        return self._guard(lambda: action(service))

    def _guard(self, action: Callable[[], Any]) -> Any:
        try:
            result = action()
        except MilvusException as error:
            self.breaker.failure(error.message)
            raise ServiceUnavailableError("milvus", error.message) from error
        except ServiceUnavailableError as error:
            self.breaker.failure(error.reason)
            raise
        self.breaker.success()
        return result

    def sink(self) -> _MemorySink:
        """The memory service as the stream's MemorySink, built on first use."""
        return _MemorySink(self)

    def close(self) -> None:
        """Release the Milvus clients."""
        if self._service is not None:
            self._service.close()
            self._service = None
        if self._probe is not None:
            self._probe.close()
            self._probe = None


class _MemorySink:
    """`remember` through a MemoryHandle (and its breaker)."""

    def __init__(self, handle: MemoryHandle) -> None:
        self._handle = handle

    def remember(self, signals: Any) -> Any:
        return self._handle.call(lambda service: service.remember(signals))

    def forget_user(self, user_id: str) -> Any:
        return self._handle.call(lambda service: service.forget_user(user_id))


class RankService:
    """The model when there is one and Redis answers; popularity otherwise, flagged degraded.

    The model's training log and the popularity table's seen items are copies of users' data
    held in this process. Before ranking for a user whom a copy holds, `rank` reads their forget
    tombstone (pipelines/stream/tombstones.py, one GET) and, when the forget ended after the
    copy was loaded, drops the user from it first; so every worker, on every host, honours a
    forget at its next request for the user with no message sent to it. Load times are read
    from the Redis server's clock, the tombstones' own, so hosts' clocks need not agree.
    """

    def __init__(
        self,
        settings: Settings,
        breaker: Breaker,
        load_model: Callable[[Settings, Ranker | None], Ranker | None],
        load_popular: Callable[[Settings], Popularity] = load_popularity,
        *,
        client: RedisClient,
    ) -> None:
        self._settings = settings
        self._breaker = breaker
        self._load_model = load_model
        self._load_popular = load_popular
        self._client = client
        # Each copy with the server time (ms) its load began, swapped together.
        self._model: tuple[Ranker | None, int] = (None, 0)
        self._popularity: tuple[PopularityRanker, int] = (PopularityRanker(Popularity()), 0)
        self._popularity_inputs: object = None
        self._stop = threading.Event()

    @property
    def model(self) -> Ranker | None:
        """The model in use (None: popularity only)."""
        return self._model[0]

    @property
    def popularity(self) -> PopularityRanker:
        """The popularity table in use."""
        return self._popularity[0]

    def refresh(self, force: bool = True) -> None:
        """Reload the model and the popularity table (a failed load keeps the old one); without
        `force`, the table only when the files it is read from changed."""
        began = self._server_ms()
        read_from = popularity_inputs(self._settings)
        if force or read_from != self._popularity_inputs:
            try:
                self._popularity = (PopularityRanker(self._load_popular(self._settings)), began)
                self._popularity_inputs = read_from
            except EngramError as error:
                log.warning("popularity not reloaded: %s", error)
        self._reload_model(began)

    def _reload_model(self, began: int) -> None:
        """Load the registry's latest model when it differs from the one in use."""
        current = self.model
        model = self._load_model(self._settings, current)
        if model is not current:
            self._model = (model, began)
            settle_heap()

    def _server_ms(self) -> int:
        """The Redis server's time in ms; 0 when it cannot be read, so that any forget counts
        as later than a load of unknown time."""
        if not self._breaker.closed:
            return 0
        try:
            now: Any = self._client.time()
            seconds, micros = now
        except (redis.RedisError, OSError) as error:
            log.warning("load time unknown: %s", error)
            return 0
        return int(seconds) * 1_000 + int(micros) // 1_000

    def refresh_items(self) -> None:
        """Read the model's item rows again (ranking.ranker.Ranker.refresh_items); a failed
        read keeps the rows in use."""
        model = self.model
        if not isinstance(model, RefreshesItems) or model.item_refresh_seconds <= 0:
            return
        try:
            model.refresh_items()
        except EngramError as error:
            log.warning("item rows not refreshed: %s", error)

    def start_refresh(self, every: float = REFRESH_S, retry: float = MODEL_RETRY_S) -> None:
        """Reload in a daemon thread every `every` seconds; while there is no model (none
        trained yet, or a store was down when it loaded), look for it every `retry` seconds.
        The same thread re-reads the model's item rows every `item_refresh_seconds`: the
        periodic work of serving runs here, and requests only read what it swaps in."""

        def items_period() -> float:
            model = self.model
            if isinstance(model, RefreshesItems) and model.item_refresh_seconds > 0:
                return model.item_refresh_seconds
            return math.inf

        def loop() -> None:
            due = time.monotonic() + every
            items_due = time.monotonic() + items_period()
            while not self._stop.wait(
                retry if self.model is None else max(0.0, min(due, items_due) - time.monotonic())
            ):
                now = time.monotonic()
                if now >= items_due:
                    self.refresh_items()
                    items_due = time.monotonic() + items_period()
                if now < due:
                    if self.model is None:
                        self._reload_model(self._server_ms())
                    continue
                self.refresh(force=False)
                due = time.monotonic() + every
                items_due = min(items_due, time.monotonic() + items_period())

        threading.Thread(target=loop, name="engram-refresh", daemon=True).start()

    def stop(self) -> None:
        """Stop the refresh thread."""
        self._stop.set()

    def honour_forget(self, user_id: str) -> None:
        """Drop the user from the copies that hold them and were loaded before their forget
        ended. One GET, only when a copy holds the user; 503 (ServiceUnavailableError) when
        Redis cannot say."""
        held = self._holding(user_id)
        if not held:
            return

        def tombstone() -> Tombstone | None:
            return read_tombstones(self._client, [user_id]).get(user_id)

        self._drop(user_id, held, guarded(self._breaker, "redis", tombstone))

    def _holding(self, user_id: str) -> list[tuple[HoldsUsers, int]]:
        """The copies holding the user, each with the server time its load began."""
        return [
            (copy, loaded_ms)
            for copy, loaded_ms in (self._model, self._popularity)
            if isinstance(copy, HoldsUsers) and copy.knows(user_id)
        ]

    def _drop(
        self, user_id: str, held: list[tuple[HoldsUsers, int]], tombstone: Tombstone | None
    ) -> None:
        if tombstone is None:
            return
        for copy, loaded_ms in held:
            if tombstone.after(loaded_ms):
                copy.forget_user(user_id)
                log.info("a forgotten user left the in-process %s", type(copy).__name__)

    def rank(
        self,
        user_id: str,
        k: int,
        candidates: list[str] | None,
        query: str | None,
        at: datetime | None,
        explain: bool = False,
    ) -> tuple[Ranked, str | None]:
        """The ranking and, when it fell back to popularity, why. A user forgotten since a copy
        was loaded is dropped from it first (`honour_forget`); with a model that fetches
        (ports.Fetches), their tombstone is read in the model's own round trip."""
        model = self.model
        fetcher = model if isinstance(model, Fetches) else None
        fetched = None
        if fetcher is not None and self._breaker.closed:
            held = self._holding(user_id)
            try:
                extra = [tombstone_read(user_id)] if held else []
                fetched = fetcher.fetch(user_id, at, query, extra)
            except (ServiceUnavailableError, redis.RedisError, OSError) as error:
                self._breaker.failure(str(error))
                log.warning("ranking degraded: %s", error)
                return self.popularity.rank(user_id, k, candidates), "redis unavailable"
            self._drop(user_id, held, fetched.extra[0] if held else None)
        else:
            try:
                self.honour_forget(user_id)
            except ServiceUnavailableError:
                return self.popularity.rank(user_id, k, candidates), "redis unavailable"
        if model is None:
            return self.popularity.rank(user_id, k, candidates), "no model"
        if not self._breaker.closed:
            return self.popularity.rank(user_id, k, candidates), "redis unavailable"
        try:
            if fetcher is not None and fetched is not None:
                ranked = fetcher.rank(user_id, k, candidates, query, at, explain, fetched)
            else:
                ranked = model.rank(user_id, k, candidates, query, at, explain=explain)
        except UnknownUserError:
            # No history to rank from (a new user): the most popular items are the answer.
            return self.popularity.rank(user_id, k, candidates), "unknown user"
        except MilvusException as error:
            log.warning("ranking degraded: milvus: %s", error.message)
            return self.popularity.rank(user_id, k, candidates), "milvus unavailable"
        except (ServiceUnavailableError, redis.RedisError, OSError) as error:
            service = getattr(error, "service", "redis")
            if service == "redis":
                self._breaker.failure(str(error))
            log.warning("ranking degraded: %s", error)
            return self.popularity.rank(user_id, k, candidates), f"{service} unavailable"
        self._breaker.success()
        return ranked, None
