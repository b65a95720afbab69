"""The memory service: extraction, embedding, lifecycle and storage wired together.

`MemoryService` is what the CLI, the batch runner and the API call; `build_memory_service` is
the one place a Milvus client, the embedder and the extractor are built from settings.

Write path (`remember`): extract memories from the signals (rules, or a chat model when one is
configured, plus intents from bursts of searches), read the users' stored memories that could
merge with them in one query, drop what is already known, embed the distinct new texts in one
call, plan merges and supersessions (memory.lifecycle) and write the changes with one barrier,
so they are searchable on return.

Search: embed the query, then rank every live memory of the user (true at `as_of`, of the
kinds and scope asked) with the index of them this service keeps (memory.index: vectors, BM25
postings, neighbours, times; ranked by memory.search, numpy over the user's few hundred rows).
The index is read from Milvus and kept for at most `INDEX_TTL_S` in an LRU of `INDEX_USERS`
users, with the user's version number (memory.versions) read before it was built. Every change
to a user's memories, by any process, moves that number; a search reads it (one Redis GET) and
answers from the kept index while it is unchanged, without a Milvus call. A forget moves it too,
so every worker drops a forgotten user's index at its next search for them, and one not searched
again leaves memory within `INDEX_TTL_S` (expired indexes are swept on each search).

When Redis cannot say (down, or no versions given), search falls back to checking the index
against Milvus: it asks for the user's `pool` nearest memories true at `as_of`, rebuilds the
index when the pool holds a memory it lacks or holds differently, and reads hits outside the
pool again before returning them, so a memory forgotten or closed elsewhere is never answered
from a stale index.

Added memories (`add_memories`, memory.added) take the write path's lifecycle step: an
application's statements are merged and superseded exactly as extracted ones. `update_memory`
corrects one memory and keeps the version it replaces (`history`).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from core.errors import InvalidInputError, ServiceUnavailableError
from core.settings import Settings
from core.times import parse_time
from memory.added import KEEP, Keep, NewMemory, added_memory, edited
from memory.behaviour import search_burst_intents
from memory.embed import DIM, Embedder
from memory.extract import Extractor, RuleExtractor, TextSignal, episode_memory
from memory.index import MemoryIndex
from memory.lifecycle import Vectored, plan, text_key, unseen
from memory.llm_extract import ExtractReport, LLMExtractor, llm_config
from memory.records import Memory, ScoredMemory
from memory.search import DEFAULT_WEIGHTS, Weights, rank_index
from memory.store import DEFAULT_COLLECTION, MilvusMemoryStore, Version, checked_id
from memory.versions import MemoryVersions

POOL = 100  # dense candidates per search (at least k): more than most users' live memories
MAX_K = 1_000
# ONNX threads of a search process. One: on 2 cores with Milvus beside it, a second thread slowed
# query embedding (bench/memory.py; figures in docs/benchmarks.md, "Memories").
EMBED_THREADS = 1
# Batch writers (ingest, the stream consumer) embed whole batches: they use every core.
WRITE_THREADS = 2
# The variant a new memory collection is made with: int8 costs half the CPU of fp32 per text and
# keeps LoCoMo recall (docs/benchmarks.md, "Memory on LoCoMo"). A collection keeps the variant it
# was made with (`build_memory_service`).
MEMORY_VARIANT = "int8"
# Users per stored-memory read in `remember`: keeps each filter expression small.
USERS_PER_READ = 200
# How long a forget waits for the compaction that removes deleted rows from disk; one that
# takes longer still finishes on the server.
PURGE_TIMEOUT_S = 30.0
# Users whose search index is kept, and for how long at most: an index of 600 memories holds
# ~2 MB of vectors (its own and the context ones), one of 50 memories ~150 KB. Writes by
# another process reach an index through the fresh dense pool at once when they rank near the
# query, and through the expiry otherwise.
INDEX_USERS = 256
INDEX_TTL_S = 300.0
SWEEP_EVERY_S = 1.0


@dataclass
class WriteSummary:
    """What one `remember` call did."""

    signals: int = 0
    extracted: int = 0  # memories the signals state (episodes, facts, intents)
    known: int = 0  # already stored with the same evidence: skipped before embedding
    embedded: int = 0  # distinct texts embedded
    inserted: int = 0
    merged: int = 0
    superseded: int = 0
    unchanged: int = 0
    written: int = 0  # rows written to the store (new and changed)
    llm_read: int = 0  # user texts whose facts the model gave (ENGRAM_LLM_BASE_URL set)
    llm_fallbacks: int = 0  # user texts the rules read because the model failed on them
    seconds: float = 0.0

    def add(self, other: WriteSummary) -> None:
        """Accumulate another summary into this one."""
        for name, value in asdict(other).items():
            setattr(self, name, round(getattr(self, name) + value, 3))

    def to_dict(self) -> dict[str, Any]:
        """The summary as plain JSON-ready values."""
        return asdict(self)


class MemoryService:
    """Remember, search, list and forget a user's memories; `weights` rank search hits."""

    def __init__(
        self,
        store: MilvusMemoryStore,
        embedder: Embedder,
        extractor: Extractor,
        *,
        search_bursts: bool = True,
        pool: int = POOL,
        weights: Weights = DEFAULT_WEIGHTS,
        versions: MemoryVersions | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.extractor = extractor
        self._search_bursts = search_bursts
        self._pool = pool
        self.weights = weights
        self.versions = versions
        # user -> (built at, the user's version read before the build or None, the index)
        self._indexes: OrderedDict[str, tuple[float, int | None, MemoryIndex]] = OrderedDict()
        self._indexes_lock = threading.Lock()
        self._swept = time.monotonic()
        # Reads added and edited texts for their kind, slot and value (memory.added): always the
        # rules, also when a model extracts, since they are cheap and need no network.
        self._rules = RuleExtractor()

    def extract(self, signals: Sequence[TextSignal]) -> list[Memory]:
        """The memories `signals` state: the extractor's, plus intents of search bursts."""
        return self._extract(signals)[0]

    def _extract(self, signals: Sequence[TextSignal]) -> tuple[list[Memory], ExtractReport | None]:
        report = None
        if isinstance(self.extractor, LLMExtractor):
            memories, report = self.extractor.extract_reported(signals)
        else:
            memories = self.extractor.extract(signals)
        if self._search_bursts:
            memories.extend(search_burst_intents([s for s in signals if s.type == "search"]))
        return memories, report

    def remember(self, signals: Sequence[TextSignal]) -> WriteSummary:
        """Extract, merge and store the memories of `signals`; searchable on return."""
        started = time.perf_counter()
        unread = self._unread(signals) if isinstance(self.extractor, LLMExtractor) else signals
        memories, report = self._extract(unread)
        summary = self.add(memories)
        summary.signals = len(signals)
        if report is not None:
            summary.llm_read, summary.llm_fallbacks = report.by_model, report.by_rules
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary

    def _unread(self, signals: Sequence[TextSignal]) -> list[TextSignal]:
        """`signals` less the user texts whose episode is stored from the same event: a model
        is asked once per text, however often its events are replayed."""
        episodes = [episode for s in signals if (episode := episode_memory(s)) is not None]
        if not episodes:
            return list(signals)
        users = sorted({episode.user_id for episode in episodes})
        keys = sorted({text_key(episode.text) for episode in episodes})
        read: set[str] = set()
        for start in range(0, len(users), USERS_PER_READ):
            group = users[start : start + USERS_PER_READ]
            for stored in self.store.fetch(group, kinds=["episode"], text_keys=keys):
                read.update(stored.memory.source_event_ids)
        return [signal for signal in signals if signal.event_id not in read]

    def add_memories(
        self, user_id: str, new: Sequence[NewMemory], now: datetime | None = None
    ) -> list[str]:
        """Fold what an application states about its user into their memories (memory.added);
        the id of the memory holding each one, in order (an existing one when it merged)."""
        checked_id(user_id)
        at = now or datetime.now(UTC)
        if any(item.scope is not None for item in new):
            self.store.require_versions("a scope")
        memories = [
            added_memory(
                user_id,
                item,
                source_id=f"added:{uuid.uuid4().hex[:24]}",
                now=at,
                rules=self._rules,
            )
            for item in new
        ]
        placed: dict[str, str] = {}
        self.add(memories, placed=placed)
        return [placed.get(memory.memory_id, memory.memory_id) for memory in memories]

    def update_memory(
        self,
        user_id: str,
        memory_id: str,
        *,
        text: str | None = None,
        valid_from: datetime | None = None,
        valid_to: datetime | Keep | None = KEEP,
        now: datetime | None = None,
    ) -> Memory | None:
        """Correct one memory (text, or when it holds); the version it replaces is kept in its
        history. None when the user holds no such memory."""
        if not self.store.exists():
            return None
        self.store.require_versions("an edit")
        found = self.store.fetch([user_id], memory_ids=[memory_id], with_vectors=True)
        if not found:
            return None
        old = found[0]
        at = now or datetime.now(UTC)
        new = edited(
            old.memory,
            now=at,
            rules=self._rules,
            text=text,
            valid_from=valid_from,
            valid_to=valid_to,
        )
        if new == old.memory:
            return new
        old_vector = _vector(old.vector)
        vector = old_vector if new.text == old.memory.text else self.embedder.embed([new.text])[0]
        with self._changing([user_id]):
            self.store.revise(old.memory, old_vector, new, vector, at)
        return new

    def get_memory(self, user_id: str, memory_id: str) -> Memory | None:
        """One memory of the user as it is now (superseded or expired too); None when the user
        holds no such memory."""
        checked_id(user_id)
        if not self.store.exists():
            return None
        found = self.store.fetch([user_id], memory_ids=[checked_id(memory_id, "memory_id")])
        return found[0].memory if found else None

    def history(self, user_id: str, memory_id: str) -> list[Version]:
        """The memory's versions, oldest first, the current one last; [] when the user holds
        no such memory."""
        checked_id(user_id)
        checked_id(memory_id, "memory_id")
        return self.store.history(user_id, memory_id) if self.store.exists() else []

    def add(self, memories: Sequence[Memory], placed: dict[str, str] | None = None) -> WriteSummary:
        """Fold ready-made memories (e.g. from behaviour) into the store; `placed` receives
        each new memory's id -> the id of the memory that holds it."""
        started = time.perf_counter()
        summary = WriteSummary(extracted=len(memories))
        by_user: dict[str, list[Memory]] = defaultdict(list)
        for memory in memories:
            by_user[checked_id(memory.user_id)].append(memory)
        users = sorted(by_user)
        for start in range(0, len(users), USERS_PER_READ):
            group = users[start : start + USERS_PER_READ]
            where = self._add_group([m for user in group for m in by_user[user]], group, summary)
            if placed is not None:
                placed.update(where)
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary

    def _add_group(
        self, memories: list[Memory], users: list[str], summary: WriteSummary
    ) -> dict[str, str]:
        keys = sorted({text_key(memory.text) for memory in memories if memory.kind == "episode"})
        stored = self.store.fetch(users, text_keys=keys, with_vectors=True)
        fresh = unseen(memories, [item.memory for item in stored])
        summary.known += len(memories) - len(fresh)
        if not fresh:
            return {}
        texts = [memory.text for memory in fresh]
        summary.embedded += len(set(texts))
        vectors = self.embedder.embed(texts)
        changes = plan(
            [Vectored(memory, vector) for memory, vector in zip(fresh, vectors, strict=True)],
            [Vectored(item.memory, _vector(item.vector)) for item in stored],
        )
        summary.inserted += changes.inserted
        summary.merged += changes.merged
        summary.superseded += changes.superseded
        summary.unchanged += changes.unchanged
        summary.written += len(changes.writes)
        if changes.writes:
            written = sorted({item.memory.user_id for item in changes.writes})
            with self._changing(written):
                self.store.write(
                    [item.memory for item in changes.writes],
                    np.stack([item.vector for item in changes.writes]),
                    replacing=changes.replacing,
                )
        return changes.placed

    def search(
        self,
        user_id: str,
        query: str,
        k: int = 10,
        kinds: Iterable[str] | None = None,
        as_of: datetime | None = None,
        scope: str | None = None,
    ) -> list[ScoredMemory]:
        """The user's `k` best memories for `query`, true at `as_of` (default now), of one
        scope (default: every scope)."""
        checked_id(user_id)
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("query", "must be a non-empty string")
        if not 1 <= k <= MAX_K:
            raise InvalidInputError("k", f"must be between 1 and {MAX_K}")
        at = as_of or datetime.now(UTC)
        wanted = None if kinds is None else sorted(set(kinds))
        self._sweep()
        version = self._version(user_id)
        vector = self.embedder.embed([query])[0]
        if version is not None:
            index = self._index_at(user_id, version)
            return self._rank(query, index, vector, at, k, wanted, scope) if len(index) else []
        pool = max(self._pool, k)
        fresh = {
            stored.memory.memory_id: stored.memory
            for stored, _ in self.store.search(
                user_id, vector, limit=pool, as_of=at, kinds=wanted, scope=scope
            )
        }
        if not fresh:
            return []
        index = self._index(user_id, fresh)
        hits = self._rank(query, index, vector, at, k, wanted, scope)
        return self._checked(user_id, hits, fresh, at, wanted, scope)

    def _rank(
        self,
        query: str,
        index: MemoryIndex,
        vector: Any,
        at: datetime,
        k: int,
        kinds: list[str] | None,
        scope: str | None,
    ) -> list[ScoredMemory]:
        # The service builds every index with vectors.
        assert index.vectors is not None and index.context_vectors is not None
        query_vector = np.asarray(vector, dtype=np.float32)
        return rank_index(
            query,
            index,
            (index.vectors @ query_vector).astype(np.float64),
            as_of=at,
            k=k,
            kinds=kinds,
            weights=self.weights,
            context_dense=(index.context_vectors @ query_vector).astype(np.float64),
            scope=scope,
        )

    def _version(self, user_id: str) -> int | None:
        """The user's version number; None when there are no versions or Redis cannot say
        (search then checks its index against Milvus)."""
        if self.versions is None:
            return None
        try:
            return self.versions.read(user_id)
        except ServiceUnavailableError:
            return None

    def _kept(self, user_id: str) -> tuple[float, int | None, MemoryIndex] | None:
        """The kept index of the user while it is young (marked recently used)."""
        with self._indexes_lock:
            kept = self._indexes.get(user_id)
            if kept is None:
                return None
            if time.monotonic() - kept[0] >= INDEX_TTL_S:
                del self._indexes[user_id]
                return None
            self._indexes.move_to_end(user_id)
            return kept

    def _index_at(self, user_id: str, version: int) -> MemoryIndex:
        """The user's search index as of their version `version` (read before this call): the
        kept one when it was built at that version, else one read from the store."""
        kept = self._kept(user_id)
        if kept is not None and kept[1] == version:
            return kept[2]
        return self._build_index(user_id, version)

    def _index(self, user_id: str, fresh: dict[str, Memory]) -> MemoryIndex:
        """The user's search index: the kept one while it agrees with the fresh pool, else one
        read from the store (every memory of the user, with vectors)."""
        kept = self._kept(user_id)
        if kept is not None:
            index = kept[2]
            rows = index.rows
            if all(
                memory_id in rows and index.memories[rows[memory_id]] == memory
                for memory_id, memory in fresh.items()
            ):
                return index
        return self._build_index(user_id, None)

    def _build_index(self, user_id: str, version: int | None) -> MemoryIndex:
        stored = self.store.fetch([user_id], with_vectors=True)
        vectors = (
            np.stack([_vector(item.vector) for item in stored])
            if stored
            else np.zeros((0, self.embedder.dim), dtype=np.float32)
        )
        index = MemoryIndex.build([item.memory for item in stored], vectors)
        with self._indexes_lock:
            self._indexes[user_id] = (time.monotonic(), version, index)
            self._indexes.move_to_end(user_id)
            while len(self._indexes) > INDEX_USERS:
                self._indexes.popitem(last=False)
        return index

    def _sweep(self) -> None:
        """Drop indexes older than INDEX_TTL_S (at most once a SWEEP_EVERY_S): a forgotten
        user's memories leave this process even when nobody searches them again."""
        now = time.monotonic()
        if now - self._swept < SWEEP_EVERY_S:
            return
        self._swept = now
        with self._indexes_lock:
            for user_id in [u for u, kept in self._indexes.items() if now - kept[0] >= INDEX_TTL_S]:
                del self._indexes[user_id]

    @contextmanager
    def _changing(self, user_ids: Sequence[str]) -> Iterator[None]:
        """Around a change to the users' memories: their versions move before it (a failure
        to move them stops the change) and again after it, and this process's indexes of
        them are dropped."""
        if self.versions is not None:
            self.versions.bump(user_ids)
        try:
            yield
        finally:
            self._drop_indexes(user_ids)
            if self.versions is not None:
                self.versions.bump(user_ids)

    def _checked(
        self,
        user_id: str,
        hits: list[ScoredMemory],
        fresh: dict[str, Memory],
        at: datetime,
        kinds: list[str] | None,
        scope: str | None,
    ) -> list[ScoredMemory]:
        """`hits` as the store holds them now: hits outside the fresh pool are read again
        (true at `at`), and those gone or changed are dropped along with the stale index."""
        unsure = [hit.memory.memory_id for hit in hits if hit.memory.memory_id not in fresh]
        if not unsure:
            return hits
        now = {
            item.memory.memory_id: item.memory
            for item in self.store.fetch(
                [user_id], as_of=at, kinds=kinds, memory_ids=unsure, scope=scope
            )
        }
        kept = [
            hit
            for hit in hits
            if fresh.get(hit.memory.memory_id, now.get(hit.memory.memory_id)) == hit.memory
        ]
        if len(kept) < len(hits):
            self._drop_indexes([user_id])
        return kept

    def _drop_indexes(self, user_ids: Iterable[str]) -> None:
        with self._indexes_lock:
            for user_id in user_ids:
                self._indexes.pop(user_id, None)

    def list(
        self,
        user_id: str,
        as_of: datetime | None = None,
        kinds: Iterable[str] | None = None,
        scope: str | None = None,
    ) -> list[Memory]:
        """The user's memories true at `as_of` (every one, superseded and expired ones too,
        when None), of one scope (default: every scope)."""
        return self.store.list_user(user_id, as_of=as_of, kinds=kinds, scope=scope)

    def close(self) -> None:
        """Release the store's connection."""
        self.store.close()

    def forget_user(self, user_id: str, *, purge_timeout_s: float = PURGE_TIMEOUT_S) -> int:
        """Delete every memory of the user and compact the collection, so they leave its
        segments on disk too (core/stores/log_retention.py); returns how many were deleted."""
        with self._changing([user_id]):
            deleted = self.store.delete_user(user_id)
        if deleted:
            self.store.purge(purge_timeout_s)
        return deleted

    def forget_memory(self, user_id: str, memory_id: str) -> bool:
        """Delete one memory of the user and its history; False when the user holds no such
        memory."""
        with self._changing([user_id]):
            deleted = self.store.delete_memories(user_id, [memory_id]) > 0
        return deleted


def _vector(vector: Any) -> np.ndarray:
    if vector is None:
        raise ValueError("stored memories were read without vectors")
    return np.asarray(vector, dtype=np.float32)


# --- JSON shapes shared by the CLI and the API --------------------------------------------------


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def memory_dict(memory: Memory) -> dict[str, Any]:
    """A memory as JSON-ready values (times in RFC 3339 UTC, open ends null)."""
    return {
        "memory_id": memory.memory_id,
        "user_id": memory.user_id,
        "kind": memory.kind,
        "text": memory.text,
        "confidence": memory.confidence,
        "slot": memory.slot,
        "value": memory.value,
        "valid_from": _time(memory.valid_from),
        "valid_to": _time(memory.valid_to),
        "expires_at": _time(memory.expires_at),
        "superseded_by": memory.superseded_by,
        "created_at": _time(memory.created_at),
        "updated_at": _time(memory.updated_at),
        "source_event_ids": list(memory.source_event_ids),
        "scope": memory.scope,
    }


def version_dict(version: Version, number: int) -> dict[str, Any]:
    """A version of a memory as JSON-ready values: the memory then, its number (1: the first)
    and when it was replaced (null: the current one)."""
    return {
        **memory_dict(version.memory),
        "version": number,
        "replaced_at": _time(version.replaced_at),
    }


def hit_dict(hit: ScoredMemory) -> dict[str, Any]:
    """A search hit as JSON-ready values: the memory, its score and the score's parts."""
    parts = {name: round(value, 4) for name, value in hit.parts.items()}
    return {**memory_dict(hit.memory), "score": hit.score, "parts": parts}


def answer_queries(service: MemoryService, lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """One answer per JSONL query line, in order: {"id"?, "user_id", "query", "k"?, "as_of"?,
    "kinds"?} -> {"id"?, "user_id", "query", "memories": [...]} or {..., "error": "..."}."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        answer: dict[str, Any] = {}
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise InvalidInputError(f"line {number}", "must be a JSON object")
            if "id" in request:
                answer["id"] = request["id"]
            answer["user_id"] = request.get("user_id")
            answer["query"] = request.get("query")
            k = request.get("k", 10)
            kinds = request.get("kinds")
            if not isinstance(k, int) or isinstance(k, bool):
                raise InvalidInputError("k", "must be an integer")
            if kinds is not None and not (
                isinstance(kinds, list) and all(isinstance(kind, str) for kind in kinds)
            ):
                raise InvalidInputError("kinds", "must be a list of kind names")
            hits = service.search(
                answer["user_id"], answer["query"], k, kinds, parse_time(request.get("as_of"))
            )
            answer["memories"] = [hit_dict(hit) for hit in hits]
        except json.JSONDecodeError as error:
            answer["error"] = f"line {number}: not JSON ({error.msg})"
        except InvalidInputError as error:
            answer["error"] = str(error)
        yield answer


# --- building from settings ---------------------------------------------------------------------


def connect_store(
    settings: Settings,
    *,
    collection: str = DEFAULT_COLLECTION,
    model: str = "",
    dim: int = DIM,
    timeout_s: float | None = None,
) -> MilvusMemoryStore:
    """A store on MILVUS_URI (or the local server, started if needed); creates nothing. Its
    Milvus calls time out after `timeout_s` (core.stores.services.connect_milvus)."""
    from core.stores.services import connect_milvus

    client = connect_milvus(settings, timeout_s)
    return MilvusMemoryStore(client, dim=dim, model=model, collection=collection)


def build_extractor(settings: Settings) -> Extractor:
    """The rules, or a chat model with the rules as fallback when ENGRAM_LLM_BASE_URL is set."""
    config = llm_config(settings)
    return RuleExtractor() if config is None else LLMExtractor(config, fallback=RuleExtractor())


def build_memory_service(
    settings: Settings,
    *,
    collection: str = DEFAULT_COLLECTION,
    embedder: Embedder | None = None,
    threads: int = EMBED_THREADS,
    timeout_s: float | None = None,
    versions: MemoryVersions | None = None,
) -> MemoryService:
    """The memory service for these settings: Milvus at MILVUS_URI (or the local server),
    all-MiniLM-L6-v2 on ONNX Runtime (exported once into ENGRAM_HOME/models; a new collection
    is made with `MEMORY_VARIANT`, an existing one is read with the variant it was made with,
    loading it when `embedder` is another), the extractor of `build_extractor`, and the users'
    version numbers in Redis (`versions`, else on REDIS_URL or the local server). Milvus and
    Redis calls time out after `timeout_s` (None: no limit and local servers started, for batch
    jobs)."""
    from pymilvus.exceptions import MilvusException

    from core.stores.services import connect_redis
    from memory.embed import load_embedder, variant_of

    extractor = build_extractor(settings)  # a bad ENGRAM_LLM_* fails before any server starts
    store = connect_store(settings, collection=collection, timeout_s=timeout_s)
    try:
        made_with = store.made_with()
        wanted = variant_of(made_with) if made_with is not None else None
        if embedder is None or (wanted is not None and variant_of(embedder.name) != wanted):
            embedder = load_embedder(
                settings, variant=wanted or MEMORY_VARIANT, threads=threads, cache_entries=20_000
            )
        store.model, store.dim = embedder.name, embedder.dim
        store.ensure_collection()
    except MilvusException as error:
        store.close()
        raise ServiceUnavailableError("milvus", error.message) from error
    if versions is None:
        versions = MemoryVersions(connect_redis(settings, timeout_s))
    return MemoryService(store, embedder, extractor, versions=versions)
