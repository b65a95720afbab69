"""The Milvus adapter for memories: one collection, partitioned by user, filtered on the server.

Every string that reaches a filter expression is a validated id (contract ID_PATTERN) or a
literal escaped by `milvus_literal`, so a user id can never widen a filter. Milvus 2.3 has no
nullable fields: an open `valid_to`/`expires_at` is stored as `OPEN_END`, a missing slot, value
or `superseded_by` as "". Times are INT64 microseconds since the epoch (UTC).

Writes never use Milvus upsert: on 2.3.5 an upsert routes rows to the partition of their
primary key's hash instead of the partition key's, so filters on `user_id` stop finding them
(measured: 20 of 20 rows lost to `user_id ==` filters). A changed memory is deleted by id and
inserted again instead. Each write call ends with one Strong read of the users it wrote (a
barrier): once it returns, the query node has applied the write, so every later read, from any
process and at the cheap Bounded level, sees it.

Schema versions. Schema 2 added `scope` (a memory's scope, "" for the user's own space),
`version_of` (on a row that keeps an earlier version of a memory: that memory's id; "" on a
memory's current row) and `replaced_at` (when that version was replaced; OPEN_END on current
rows). Milvus 2.3 cannot add a field to a collection, so a collection made before them is used
as it is: its memories are read, searched, written and deleted as before, while scopes and edits
(which keep history) are refused with `OutdatedCollectionError`, naming `engram memories
migrate`, which copies the collection into schema 2 (`migrate`). Every read of memories reads
current rows only (`version_of == ""`); `history` reads a memory's versions; deleting a memory
or a user deletes their history rows too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from core.contract import ID_PATTERN
from core.errors import ConfigError, EngramError, InvalidInputError
from core.stores.log_retention import Purge, purge_milvus
from core.times import epoch_micros, from_epoch_micros
from memory.added import history_id
from memory.embed import Vectors
from memory.lifecycle import text_key
from memory.records import MEMORY_KINDS, Memory

DEFAULT_COLLECTION = "engram_memories"
OPEN_END = 2**63 - 1  # INT64 sentinel for "no end"
# Partitions of the user_id partition key: fewer made searches filtered by user faster and
# loading quicker at the sizes measured (docs/benchmarks.md).
PARTITIONS = 16
MAX_TEXT_BYTES = 65_535  # VARCHAR limit; TEXT_MAX_CHARS (10k chars) is at most 40k bytes
MAX_SOURCES = 1_000  # provenance kept per memory: the first event and the latest ones
_QUERY_WINDOW = 16_384  # Milvus's limit on offset + limit of one query
_ID = re.compile(ID_PATTERN)
SCALAR_FIELDS = (
    "memory_id",
    "user_id",
    "kind",
    "text",
    "text_key",
    "slot",
    "value",
    "confidence",
    "valid_from",
    "valid_to",
    "expires_at",
    "created_at",
    "updated_at",
    "superseded_by",
    "source_event_ids",
)
# Schema 2 (see the module doc): absent from collections made before it.
VERSION_FIELDS = ("scope", "version_of", "replaced_at")
MIGRATING_SUFFIX = "_migrating"


class OutdatedCollectionError(EngramError):
    """The memory collection predates scopes and history (schema 2); `engram memories migrate`
    brings it up to date."""

    status_code = 409

    def __init__(self, collection: str, needs: str) -> None:
        self.collection = collection
        self.needs = needs
        super().__init__(
            f"the memory collection {collection!r} predates scopes and history, which {needs} "
            "needs: run `engram memories migrate` (stop writers first)"
        )


def milvus_literal(value: str) -> str:
    """A filter-expression string literal for `value`: JSON's escapes are the parser's escapes."""
    # ensure_ascii=False keeps non-BMP text raw, since the parser rejects \\ud83d surrogates.
    return json.dumps(value, ensure_ascii=False)


def checked_id(value: str, field: str = "user_id") -> str:
    """`value` when it is a valid id (contract ID_PATTERN); InvalidInputError otherwise."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidInputError(field, f"must match {ID_PATTERN}")
    return value


def to_micros(moment: datetime | None) -> int:
    """Microseconds since the epoch; None (an open end) is OPEN_END."""
    return OPEN_END if moment is None else epoch_micros(moment)


def from_micros(value: int) -> datetime | None:
    """The datetime of `value` microseconds; OPEN_END is None."""
    if value >= OPEN_END:
        return None
    return from_epoch_micros(value)


def memory_filter(
    user_ids: Sequence[str],
    *,
    as_of: datetime | None = None,
    kinds: Iterable[str] | None = None,
    memory_ids: Sequence[str] | None = None,
    text_keys: Sequence[str] | None = None,
    scope: str | None = None,
    current: bool = False,
    versions_of: str | None = None,
) -> str:
    """The filter expression for memories of `user_ids` (true at `as_of`, of `kinds`, ...);
    `current`: current rows only (schema 2); `versions_of`: a memory's row and its history."""
    if not user_ids:
        raise InvalidInputError("user_id", "at least one user is needed")
    users = [milvus_literal(checked_id(user)) for user in user_ids]
    parts = [f"user_id == {users[0]}" if len(users) == 1 else f"user_id in [{', '.join(users)}]"]
    if as_of is not None:
        # Memory.is_true_at on the server: valid, known, not superseded, not expired.
        at = to_micros(as_of)
        parts.append(
            f"valid_from <= {at} and created_at <= {at} and valid_to > {at} and expires_at > {at}"
        )
    if kinds is not None:
        wanted = sorted(set(kinds))
        unknown = [kind for kind in wanted if kind not in MEMORY_KINDS]
        if unknown or not wanted:
            raise InvalidInputError("kinds", f"each must be one of {', '.join(MEMORY_KINDS)}")
        parts.append(f"kind in [{', '.join(milvus_literal(kind) for kind in wanted)}]")
    if memory_ids is not None:
        ids = [milvus_literal(checked_id(mid, "memory_id")) for mid in memory_ids]
        parts.append(f"memory_id in [{', '.join(ids)}]")
    if text_keys is not None:
        # Facts, and the episodes with these texts (an empty list would be a parse error).
        keys = [milvus_literal(key) for key in text_keys]
        episodes = f" or text_key in [{', '.join(keys)}]" if keys else ""
        parts.append(f'kind != "episode"{episodes}')
    if scope is not None:
        parts.append(f"scope == {milvus_literal(checked_id(scope, 'scope'))}")
    if current:
        parts.append('version_of == ""')
    if versions_of is not None:
        memory = milvus_literal(checked_id(versions_of, "memory_id"))
        parts.append(f"memory_id == {memory} or version_of == {memory}")
    return " and ".join(f"({part})" for part in parts)


def to_row(memory: Memory, vector: Vectors) -> dict[str, Any]:
    """The Milvus row of a memory and its vector."""
    sources = memory.source_event_ids
    if len(sources) > MAX_SOURCES:
        sources = (sources[0], *sources[-(MAX_SOURCES - 1) :])
    text = memory.text
    if len(text.encode()) > MAX_TEXT_BYTES:
        text = text.encode()[:MAX_TEXT_BYTES].decode(errors="ignore")
    return {
        "memory_id": memory.memory_id,
        "user_id": memory.user_id,
        "embedding": np.asarray(vector, dtype=np.float32).tolist(),
        "kind": memory.kind,
        "text": text,
        "text_key": text_key(memory.text),
        "slot": memory.slot or "",
        "value": memory.value or "",
        "confidence": float(memory.confidence),
        "valid_from": to_micros(memory.valid_from),
        "valid_to": to_micros(memory.valid_to),
        "expires_at": to_micros(memory.expires_at),
        "created_at": to_micros(memory.created_at),
        "updated_at": to_micros(memory.updated_at),
        "superseded_by": memory.superseded_by or "",
        "source_event_ids": " ".join(sources),
        "scope": memory.scope or "",
        "version_of": "",
        "replaced_at": OPEN_END,
    }


def history_row(memory: Memory, vector: Vectors, replaced_at: datetime) -> dict[str, Any]:
    """The row that keeps `memory` as it was until `replaced_at` (a version of its history)."""
    at = to_micros(replaced_at)
    row = to_row(memory, vector)
    row.update(memory_id=history_id(memory.memory_id, at), version_of=memory.memory_id)
    row["replaced_at"] = at
    return row


def from_row(row: dict[str, Any]) -> Memory:
    """The memory a Milvus row holds."""
    valid_from = from_micros(row["valid_from"])
    created_at = from_micros(row["created_at"])
    updated_at = from_micros(row["updated_at"])
    if valid_from is None or created_at is None or updated_at is None:
        raise ValueError(f"memory {row['memory_id']} has an open start")
    return Memory(
        memory_id=row["memory_id"],
        user_id=row["user_id"],
        kind=row["kind"],
        text=row["text"],
        confidence=round(float(row["confidence"]), 6),
        valid_from=valid_from,
        created_at=created_at,
        updated_at=updated_at,
        source_event_ids=tuple(row["source_event_ids"].split()),
        slot=row["slot"] or None,
        value=row["value"] or None,
        valid_to=from_micros(row["valid_to"]),
        expires_at=from_micros(row["expires_at"]),
        superseded_by=row["superseded_by"] or None,
        scope=row.get("scope") or None,
    )


@dataclass(frozen=True)
class Version:
    """One version of a memory: as it was until `replaced_at` (None: the current one)."""

    memory: Memory
    replaced_at: datetime | None


@dataclass(frozen=True)
class StoredMemory:
    """A memory as read back, with its vector when it was asked for."""

    memory: Memory
    vector: Vectors | None = None


def _schema(dim: int, model: str, *, versioned: bool = True) -> Any:
    """The collection's schema: 2, or 1 (before scopes and history) for tests of old ones."""
    from pymilvus import DataType, MilvusClient

    # The description names the embedding model, so a collection of another model is noticed.
    schema = MilvusClient.create_schema(
        auto_id=False, enable_dynamic_field=False, description=model
    )
    schema.add_field("memory_id", DataType.VARCHAR, is_primary=True, max_length=128)
    schema.add_field("user_id", DataType.VARCHAR, max_length=128, is_partition_key=True)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("kind", DataType.VARCHAR, max_length=16)
    schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT_BYTES)
    schema.add_field("text_key", DataType.VARCHAR, max_length=32)
    schema.add_field("slot", DataType.VARCHAR, max_length=64)
    schema.add_field("value", DataType.VARCHAR, max_length=1024)
    schema.add_field("confidence", DataType.FLOAT)
    for name in ("valid_from", "valid_to", "expires_at", "created_at", "updated_at"):
        schema.add_field(name, DataType.INT64)
    schema.add_field("superseded_by", DataType.VARCHAR, max_length=128)
    schema.add_field("source_event_ids", DataType.VARCHAR, max_length=MAX_TEXT_BYTES)
    if not versioned:
        return schema
    schema.add_field("scope", DataType.VARCHAR, max_length=128)
    schema.add_field("version_of", DataType.VARCHAR, max_length=128)
    schema.add_field("replaced_at", DataType.INT64)
    return schema


def ensure_vector_collection(
    client: Any,
    collection: str,
    model: str,
    schema: Callable[[], Any],
    *,
    what: str,
    remedy: str,
    **create: Any,
) -> None:
    """Load `collection`, or create it (FLAT index on `embedding`, inner product: exact) with
    `schema()`; the collection's description names the embedding model, and one made for
    another model is refused (ConfigError naming `what` and the `remedy`)."""
    from pymilvus import MilvusClient

    if client.has_collection(collection):
        described = client.describe_collection(collection)
        if described.get("description") != model:
            raise ConfigError(
                what,
                f"{collection!r} holds vectors of {described.get('description')!r}, "
                f"not {model!r}; {remedy}",
            )
        client.load_collection(collection)
        return
    index = MilvusClient.prepare_index_params()
    index.add_index("embedding", index_type="FLAT", metric_type="IP")
    client.create_collection(
        collection, schema=schema(), index_params=index, consistency_level="Bounded", **create
    )


class MilvusMemoryStore:
    """Memories in one Milvus collection; the client is built elsewhere and passed in."""

    def __init__(
        self,
        client: Any,
        *,
        dim: int,
        model: str,
        collection: str = DEFAULT_COLLECTION,
        partitions: int = PARTITIONS,
    ) -> None:
        self._client = client
        self.dim = dim
        self.model = model
        self.collection = collection
        self._partitions = partitions
        self._versioned: bool | None = None  # schema 2; read from the collection once

    def exists(self) -> bool:
        """True when the collection has been created."""
        return bool(self._client.has_collection(self.collection))

    def made_with(self) -> str | None:
        """The embedding model (and variant) the collection was made for; None when missing."""
        if not self._client.has_collection(self.collection):
            return None
        return str(self._client.describe_collection(self.collection).get("description", ""))

    def ensure_collection(self) -> None:
        """Create and load the collection if missing; refuse one made for another model."""
        # FLAT: exact, and no build time; a user's partition-key slice is small.
        ensure_vector_collection(
            self._client,
            self.collection,
            self.model,
            lambda: _schema(self.dim, self.model),
            what="memory collection",
            remedy="forget the memories or use another collection",
            num_partitions=self._partitions,
        )
        self._versioned = None

    @property
    def versioned(self) -> bool:
        """True when the collection has schema 2 (scopes and history), or does not exist yet
        (it will be made with it); read from Milvus once."""
        if self._versioned is None:
            if not self._client.has_collection(self.collection):
                return True
            fields = self._client.describe_collection(self.collection).get("fields", [])
            self._versioned = "scope" in {field.get("name") for field in fields}
        return self._versioned

    def require_versions(self, needs: str) -> None:
        """OutdatedCollectionError unless the collection has schema 2."""
        if not self.versioned:
            raise OutdatedCollectionError(self.collection, needs)

    def _fields(self) -> list[str]:
        if self.versioned:
            return [*SCALAR_FIELDS, *VERSION_FIELDS]
        return list(SCALAR_FIELDS)

    def _rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows as the collection's schema takes them."""
        if self.versioned:
            return rows
        if any(row["scope"] for row in rows):
            raise OutdatedCollectionError(self.collection, "a scope")
        return [{k: v for k, v in row.items() if k not in VERSION_FIELDS} for row in rows]

    def _filter(self, user_ids: Sequence[str], **options: Any) -> str:
        """`memory_filter` for this collection: current rows only when it keeps history."""
        if options.get("scope") is not None:
            self.require_versions("a scope")
        return memory_filter(user_ids, current=self.versioned, **options)

    def close(self) -> None:
        """Close the client's connection."""
        self._client.close()

    def drop_collection(self) -> None:
        """Remove the collection and everything in it."""
        self._client.drop_collection(self.collection)

    def write(
        self, memories: Sequence[Memory], vectors: Vectors, *, replacing: Sequence[str] = ()
    ) -> None:
        """Store `memories` (row i has vector i); ids in `replacing` are removed first."""
        if len(memories) != len(vectors):
            raise ValueError("one vector per memory is needed")
        if not memories and not replacing:
            return
        users = sorted({checked_id(memory.user_id) for memory in memories})
        for memory in memories:
            checked_id(memory.memory_id, "memory_id")
        old = [checked_id(memory_id, "memory_id") for memory_id in replacing]
        for start in range(0, len(old), 1_000):
            self._client.delete(self.collection, ids=old[start : start + 1_000])
        rows = self._rows(
            [to_row(memory, vector) for memory, vector in zip(memories, vectors, strict=True)]
        )
        for start in range(0, len(rows), 1_000):
            self._client.insert(self.collection, rows[start : start + 1_000])
        self._barrier(users or None)

    def _barrier(self, users: Sequence[str] | None) -> None:
        """Wait until the query node has applied every write made so far (see module doc)."""
        expr = memory_filter(users) if users else 'memory_id == ""'
        self._client.query(
            self.collection,
            filter=expr,
            output_fields=["memory_id"],
            limit=1,
            consistency_level="Strong",
        )

    def fetch(
        self,
        user_ids: Sequence[str],
        *,
        as_of: datetime | None = None,
        kinds: Iterable[str] | None = None,
        memory_ids: Sequence[str] | None = None,
        text_keys: Sequence[str] | None = None,
        scope: str | None = None,
        with_vectors: bool = False,
    ) -> list[StoredMemory]:
        """The users' memories matching the filters (see `memory_filter`), in no set order."""
        expr = self._filter(
            user_ids,
            as_of=as_of,
            kinds=kinds,
            memory_ids=memory_ids,
            text_keys=text_keys,
            scope=scope,
        )
        fields = [*self._fields(), "embedding"] if with_vectors else self._fields()
        out: list[StoredMemory] = []
        for row in self._query_all(expr, fields):
            vector = np.asarray(row["embedding"], dtype=np.float32) if with_vectors else None
            out.append(StoredMemory(from_row(row), vector))
        return out

    def _query_all(self, expr: str, fields: list[str]) -> list[dict[str, Any]]:
        rows = list(
            self._client.query(
                self.collection, filter=expr, output_fields=fields, limit=_QUERY_WINDOW
            )
        )
        if len(rows) < _QUERY_WINDOW:
            return rows
        # More than one query window: page with the iterator, which has no such limit.
        iterator = self._client.query_iterator(
            self.collection, batch_size=4_096, filter=expr, output_fields=fields
        )
        rows = []
        try:
            while batch := iterator.next():
                rows.extend(batch)
        finally:
            iterator.close()
        return rows

    def list_user(
        self,
        user_id: str,
        *,
        as_of: datetime | None = None,
        kinds: Iterable[str] | None = None,
        scope: str | None = None,
    ) -> list[Memory]:
        """The user's memories true at `as_of` (all of them, superseded and expired ones too,
        when None), in `valid_from` order."""
        found = self.fetch([user_id], as_of=as_of, kinds=kinds, scope=scope)
        memories = [stored.memory for stored in found]
        return sorted(memories, key=lambda memory: (memory.valid_from, memory.memory_id))

    def search(
        self,
        user_id: str,
        vector: Vectors,
        *,
        limit: int,
        as_of: datetime | None = None,
        kinds: Iterable[str] | None = None,
        scope: str | None = None,
    ) -> list[tuple[StoredMemory, float]]:
        """The user's `limit` memories nearest to `vector` (inner product), true at `as_of`."""
        hits = self._client.search(
            self.collection,
            data=[np.asarray(vector, dtype=np.float32).tolist()],
            filter=self._filter([user_id], as_of=as_of, kinds=kinds, scope=scope),
            limit=limit,
            output_fields=self._fields(),
            search_params={"metric_type": "IP"},
        )[0]
        return [(StoredMemory(from_row(hit["entity"])), float(hit["distance"])) for hit in hits]

    def count(self, user_id: str | None = None) -> int:
        """Rows of one user (every row when None, history rows included), read Strong."""
        expr = memory_filter([user_id]) if user_id is not None else ""
        result = self._client.query(
            self.collection,
            filter=expr,
            output_fields=["count(*)"],
            consistency_level="Strong",
        )
        return int(result[0]["count(*)"])

    def delete_user(self, user_id: str) -> int:
        """Delete every memory of the user; returns how many there were."""
        expr = memory_filter([user_id])
        before = self.count(user_id)
        if before:
            self._client.delete(self.collection, filter=expr)
            self._barrier([user_id])
        return before

    def purge(self, timeout_s: float) -> Purge:
        """Compact the collection so rows deleted before this call leave its segments on disk
        (core/stores/log_retention.py); waits at most `timeout_s`."""
        return purge_milvus(self._client, [self.collection], timeout_s=timeout_s)[0]

    def delete_memories(self, user_id: str, memory_ids: Sequence[str]) -> int:
        """Delete these memories of the user and their history (others' ids are untouched);
        how many existed."""
        if not memory_ids:
            return 0
        found = self.fetch([user_id], memory_ids=memory_ids)
        ids = [stored.memory.memory_id for stored in found]
        if ids:
            self._client.delete(self.collection, ids=ids)
            if self.versioned:
                listed = ", ".join(milvus_literal(memory_id) for memory_id in ids)
                history = f"{memory_filter([user_id])} and (version_of in [{listed}])"
                self._client.delete(self.collection, filter=history)
            self._barrier([user_id])
        return len(ids)

    def revise(
        self, old: Memory, old_vector: Vectors, new: Memory, new_vector: Vectors, at: datetime
    ) -> None:
        """Replace a memory by its corrected version, keeping the old one as history (replaced
        `at`). The history row is written first, so no interruption loses the old version."""
        self.require_versions("an edit")
        if old.memory_id != new.memory_id or old.user_id != new.user_id:
            raise ValueError("a revision keeps the memory's id and user")
        checked_id(new.user_id)
        self._client.insert(self.collection, [history_row(old, old_vector, at)])
        self._client.delete(self.collection, ids=[checked_id(old.memory_id, "memory_id")])
        self._client.insert(self.collection, [to_row(new, new_vector)])
        self._barrier([new.user_id])

    def history(self, user_id: str, memory_id: str) -> list[Version]:
        """The memory's versions, oldest first, the current one last; [] when the user holds no
        such memory."""
        self.require_versions("history")
        rows = self._query_all(
            memory_filter([user_id], versions_of=memory_id), [*SCALAR_FIELDS, *VERSION_FIELDS]
        )
        if not any(row["memory_id"] == memory_id for row in rows):
            return []  # only history rows left: the memory was deleted (or never existed)
        versions = []
        for row in rows:
            current = row["memory_id"] == memory_id
            if not current:
                row = {**row, "memory_id": row["version_of"]}
            replaced = None if current else from_micros(row["replaced_at"])
            versions.append(Version(from_row(row), replaced))
        return sorted(versions, key=lambda v: to_micros(v.replaced_at))

    def migrate(self, batch: int = 1_000) -> int:
        """Copy a collection made before schema 2 into schema 2 (the same memories, no scope,
        no history) and swap it in; how many rows were copied (0: already up to date). Stop
        writers first: rows written meanwhile may be lost. Running it again after an
        interruption completes it (the copy is made under `<collection>_migrating` and only
        renamed once whole)."""
        from pymilvus import MilvusClient

        staging = f"{self.collection}{MIGRATING_SUFFIX}"
        client: MilvusClient = self._client
        if not client.has_collection(self.collection):
            if client.has_collection(staging):  # interrupted after the drop: finish the swap
                client.rename_collection(staging, self.collection)
                self._versioned = None
            return 0
        self._versioned = None
        if self.versioned:
            return 0
        if client.has_collection(staging):
            client.drop_collection(staging)  # an interrupted copy: start over
        # The copy is of the collection's own model and dimension, whatever this store was given.
        described = client.describe_collection(self.collection)
        (dim,) = [
            int(field["params"]["dim"])
            for field in described["fields"]
            if field["name"] == "embedding"
        ]
        target = MilvusMemoryStore(
            client,
            dim=dim,
            model=described.get("description", ""),
            collection=staging,
            partitions=int(described.get("num_partitions") or self._partitions),
        )
        target.ensure_collection()
        client.load_collection(self.collection)
        iterator = client.query_iterator(
            self.collection,
            batch_size=batch,
            filter="",
            output_fields=[*SCALAR_FIELDS, "embedding"],
        )
        copied = 0
        try:
            while rows := iterator.next():
                for row in rows:
                    row.update(scope="", version_of="", replaced_at=OPEN_END)
                client.insert(staging, rows)
                copied += len(rows)
        finally:
            iterator.close()
        target._barrier(None)
        if target.count() != self.count():
            raise ConfigError(
                "memory collection", f"the copy into {staging!r} is incomplete; run it again"
            )
        client.drop_collection(self.collection)
        client.rename_collection(staging, self.collection)
        client.load_collection(self.collection)
        self._versioned = None
        return copied
