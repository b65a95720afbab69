"""The fast online read: Feast's own Redis hashes, fetched in one round trip and decoded in bulk.

Reads the keys and values Feast writes (layout.py), so it needs no second copy of the data and
agrees with `FeatureStore.get_online_features` value for value. Every view of an entity lives in
the same hash, so one HMGET per entity fetches all requested views at once; the HMGETs of one
join key run inside one EVAL (one reply, parsed in C), and the EVALs of all join keys (one user
and its candidate items) go out in one write. On a Redis Cluster the keys of one EVAL would
have to share a slot, which Feast's keys do not: there each entity gets its own HMGET, sent
pipelined to the node owning its slot (transport.py).

Freshness, as Feast 0.67 does it: its read path returns whatever the hash holds however old
(`ttl` only bounds materialization and historical joins), and Redis drops a whole entity hash only
when the online store sets `key_ttl_seconds`. `enforce_ttl=True` here additionally treats a view's
values older than its `ttl` as missing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import redis
from redis.cluster import RedisCluster

from core.errors import InvalidInputError
from core.stores.cluster import RedisClient
from core.stores.online.decode import decode_column, decode_numeric
from core.stores.online.layout import ValueKind, ViewRef, feature_field, redis_keys, timestamp_field
from core.stores.online.timestamps import decode_event_timestamp, stamp_seconds
from core.stores.online.transport import Read, bulk, read_all
from core.times import epoch_micros, epoch_seconds


@dataclass
class OnlineFeatures:
    """Features of many entities of one join key, kept as stored bytes and decoded on demand."""

    join_key: str
    ids: list[str]
    raw: dict[str, list[bytes | None]]
    types: dict[str, ValueKind]
    stamps: dict[str, list[bytes | None]] = field(default_factory=dict)  # view -> `_ts:` values

    @property
    def event_times(self) -> dict[str, list[datetime | None]]:
        """Each view's event time per entity (None where the view has no row), decoded now."""
        return {
            view: [decode_event_timestamp(raw) for raw in raws]
            for view, raws in self.stamps.items()
        }

    @property
    def names(self) -> list[str]:
        """Output feature names, in the order they were asked for."""
        return list(self.raw)

    def values(self, name: str) -> list[Any]:
        """Python values of one feature (None when missing), as Feast's to_dict gives them."""
        return decode_column(self.raw[name], self.types[name])

    def numeric(self, name: str) -> np.ndarray:
        """One numeric feature as float64, NaN when missing; times as epoch seconds."""
        return decode_numeric(self.raw[name], self.types[name])

    def matrix(self, names: Sequence[str] | None = None) -> np.ndarray:
        """An (entities x features) float64 matrix of numeric features, NaN when missing."""
        chosen = self.names if names is None else list(names)
        out = np.empty((len(self.ids), len(chosen)))
        by_kind: dict[ValueKind, list[int]] = {}
        for j, name in enumerate(chosen):
            by_kind.setdefault(self.types[name], []).append(j)
        # One decode per kind over all its columns: numpy's fixed cost is paid once, not per column.
        for kind, columns in by_kind.items():
            flat = [raw for j in columns for raw in self.raw[chosen[j]]]
            decoded = decode_numeric(flat, kind).reshape(len(columns), len(self.ids))
            out[:, columns] = decoded.T
        return out

    def to_dict(self) -> dict[str, list[Any]]:
        """The join key and every feature as lists: the shape of Feast's OnlineResponse.to_dict."""
        out: dict[str, list[Any]] = {self.join_key: list(self.ids)}
        for name in self.raw:
            out[name] = self.values(name)
        return out


@dataclass(frozen=True)
class _Group:
    """Views sharing a join key: one HMGET per entity fetches all of them."""

    join_key: str
    views: tuple[ViewRef, ...]
    names: tuple[str, ...]  # output name per feature field
    fields: tuple[bytes, ...]  # the feature fields, then one `_ts:` field per view


# HMGET of the same fields on every key, in one command: Redis answers one nested reply that
# hiredis parses in C, instead of one reply per entity parsed through redis-py (~9 us each).
_HMGET_ALL = b"""local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('HMGET', key, unpack(ARGV)) end
return out"""


def _hmget(key: bytes, tail: bytes, n_fields: int) -> bytes:
    """RESP of one HMGET; `tail` holds the framed fields."""
    return b"*%d\r\n$5\r\nHMGET\r\n$%d\r\n%s\r\n%s" % (2 + n_fields, len(key), key, tail)


def _hmget_all(keys: Sequence[bytes], fields: Sequence[bytes]) -> bytes:
    """RESP of one EVAL running HMGET `fields` on every key (missing fields come back None)."""
    head = b"*%d\r\n$4\r\nEVAL\r\n%s%s" % (
        3 + len(keys) + len(fields),
        bulk(_HMGET_ALL),
        bulk(b"%d" % len(keys)),
    )
    return b"".join([head, *map(bulk, keys), *map(bulk, fields)])


@dataclass(frozen=True)
class PendingRead:
    """A read prepared by `OnlineFeatureReader.prepare`: send `reads`, then `finish` their
    replies (in order) into features by join key."""

    reads: list[Read]
    finish: Callable[[Sequence[Any]], dict[str, OnlineFeatures]]


class OnlineFeatureReader:
    """Reads feature views from Feast's Redis online store without going through the SDK."""

    def __init__(
        self,
        client: RedisClient,
        project: str,
        views: Sequence[ViewRef],
        *,
        full_feature_names: bool = False,
    ) -> None:
        if not isinstance(client, (redis.Redis, RedisCluster)):
            raise InvalidInputError("client", "needs a redis.Redis or RedisCluster client")
        self._client = client
        self._cluster = isinstance(client, RedisCluster)
        self._project = project
        self._groups: dict[str, _Group] = {}
        self._types: dict[str, ValueKind] = {}
        by_key: dict[str, list[ViewRef]] = {}
        for view in views:
            by_key.setdefault(view.join_key, []).append(view)
        for join_key, group_views in by_key.items():
            names: list[str] = []
            fields: list[bytes] = []
            for view in group_views:
                for ref in view.features:
                    name = f"{view.name}__{ref.name}" if full_feature_names else ref.name
                    if name in self._types:
                        raise InvalidInputError(name, "two views give this feature name")
                    self._types[name] = ref.kind
                    names.append(name)
                    fields.append(feature_field(view.name, ref.name))
            stamps = [timestamp_field(v.name) for v in group_views]
            self._groups[join_key] = _Group(
                join_key=join_key,
                views=tuple(group_views),
                names=tuple(names),
                fields=tuple(fields + stamps),
            )

    @property
    def client(self) -> RedisClient:
        """The Redis this reader reads (a caller's round trip may share it: `prepare`)."""
        return self._client

    @property
    def join_keys(self) -> list[str]:
        """The join keys this reader serves."""
        return list(self._groups)

    def views(self, join_key: str) -> tuple[ViewRef, ...]:
        """The views read for a join key, in order."""
        return self._groups[join_key].views

    def names(self, join_key: str) -> list[str]:
        """The output feature names of a join key, view by view in `views` order."""
        return list(self._groups[join_key].names)

    def read(
        self,
        join_key: str,
        ids: Sequence[str],
        *,
        enforce_ttl: bool = False,
        now: datetime | None = None,
        event_times: bool = True,
    ) -> OnlineFeatures:
        """Features of the given entities of one join key."""
        return self.read_many(
            {join_key: ids}, enforce_ttl=enforce_ttl, now=now, event_times=event_times
        )[join_key]

    def read_many(
        self,
        entities: Mapping[str, Sequence[str]],
        *,
        enforce_ttl: bool = False,
        now: datetime | None = None,
        event_times: bool = True,
    ) -> dict[str, OnlineFeatures]:
        """Features of entities of several join keys (a user and its items) in one round trip.

        event_times=False leaves the views' `_ts:` fields unread (a fifth less to fetch and
        parse for the ranker), unless enforce_ttl needs them.
        """
        pending = self.prepare(entities, enforce_ttl=enforce_ttl, now=now, event_times=event_times)
        return pending.finish(read_all(self._client, pending.reads))

    def prepare(
        self,
        entities: Mapping[str, Sequence[str]],
        *,
        enforce_ttl: bool = False,
        now: datetime | None = None,
        event_times: bool = True,
    ) -> PendingRead:
        """`read_many` in two halves: the reads of its round trip, which a caller may send
        with reads of its own (transport.read_all), and `finish` of their replies."""
        timed = event_times or enforce_ttl
        groups = []
        for join_key in entities:
            if join_key not in self._groups:
                raise InvalidInputError(join_key, "no requested view has this join key")
            groups.append(self._groups[join_key])
        reads: list[Read] = []
        sizes: list[int] = []  # replies per group: one EVAL, or one HMGET a key on a cluster
        for group in groups:
            keys = redis_keys(self._project, group.join_key, entities[group.join_key])
            fields = group.fields if timed else group.fields[: len(group.names)]
            if self._cluster:
                tail = b"".join(map(bulk, fields))
                reads += [Read(_hmget(key, tail, len(fields)), key) for key in keys]
                sizes.append(len(keys))
            else:
                reads.append(Read(_hmget_all(keys, fields), keys[0] if keys else b""))
                sizes.append(1)
        now_s = epoch_seconds(epoch_micros(now or datetime.now(UTC), "now")) if enforce_ttl else 0.0

        def finish(replies: Sequence[Any]) -> dict[str, OnlineFeatures]:
            out, start = {}, 0
            for group, size in zip(groups, sizes, strict=True):
                part = replies[start : start + size]
                rows = list(part) if self._cluster else part[0]
                start += size
                ids = list(entities[group.join_key])
                out[group.join_key] = self._collect(group, ids, rows, timed, enforce_ttl, now_s)
            return out

        return PendingRead(reads, finish)

    def _collect(
        self,
        group: _Group,
        ids: list[str],
        rows: list[list[bytes | None]],
        timed: bool,
        enforce_ttl: bool,
        now_s: float,
    ) -> OnlineFeatures:
        n_features = len(group.names)
        width = n_features + (len(group.views) if timed else 0)
        # Transposed once: one list per field, entities in request order.
        columns = list(map(list, zip(*rows, strict=True))) if rows else [[] for _ in range(width)]
        stamps = (
            {view.name: columns[n_features + i] for i, view in enumerate(group.views)}
            if timed
            else {}
        )
        position = 0
        for view in group.views:
            size = len(view.features)
            if enforce_ttl and view.ttl is not None:
                oldest = now_s - view.ttl.total_seconds()
                stale = [
                    row
                    for row, raw in enumerate(stamps[view.name])
                    if raw is not None and stamp_seconds(raw) < oldest
                ]
                for column in columns[position : position + size]:
                    for row in stale:
                        column[row] = None
            position += size
        raw = dict(zip(group.names, columns[:n_features], strict=True))
        types = {name: self._types[name] for name in group.names}
        return OnlineFeatures(group.join_key, ids, raw, types, stamps)
