"""Bulk writes of feature rows into Feast's Redis online store, as `feast materialize` leaves it.

Keys, fields and values come from layout.py and encode.py: one HSET of every feature plus
`_ts:view` per entity, EXPIRE when the store sets `key_ttl_seconds`, so Feast's
get_online_features and Engram's fast reader both read it back. Where Feast builds a proto
object per value and a redis-py command per row, this encodes whole columns with numpy, frames
the Redis protocol itself and streams chunks on one connection (transport.py), reading a
chunk's replies only after the next one is sent, so Redis works while Python encodes. Views
sharing a join key are written together: one HSET per entity holding every view's fields (the
hash ends up as Feast's one HSET per view leaves it). As Feast does, a row not newer than what
Redis already holds for a view is skipped (`skip_older`). On a Redis Cluster the rows are split
by the node owning their key's slot and each node's rows are written so, one node after another.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import redis
from redis.cluster import RedisCluster

from core.errors import InvalidInputError
from core.stores.cluster import RedisClient
from core.stores.online import layout
from core.stores.online.encode import encode_fixed, encode_values
from core.stores.online.layout import ViewRef, feature_field, redis_keys
from core.stores.online.timestamps import encode_event_timestamps, event_micros, stamps_micros
from core.stores.online.transport import RawConnection, node_of, retry_resharded
from core.stores.online.value_proto import FIXED_WIDTH_KINDS
from core.stores.online.varints import concat_to_list, constant

CHUNK_ROWS = 20_000
_NONE = np.iinfo(np.int64).min
_CRLF = b"\r\n"
# "$<n>\r\n" for every value length a fixed-width segment can have, as a byte matrix.
_DIGITS = np.zeros((100, 6), np.uint8)
_DIGITS_LEN = np.zeros(100, np.int64)
for _n in range(100):
    _text = b"$%d\r\n" % _n
    _DIGITS[_n, : len(_text)] = np.frombuffer(_text, np.uint8)
    _DIGITS_LEN[_n] = len(_text)


def _framed_fixed(
    field: bytes, matrix: np.ndarray, lengths: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Parts of one field-value pair in the Redis protocol, per row, from a matrix of values."""
    n = len(lengths)
    head = b"$%d\r\n%s\r\n" % (len(field), field)
    return [
        constant(head, n),
        (_DIGITS[lengths], _DIGITS_LEN[lengths]),
        (matrix, lengths),
        constant(_CRLF, n),
    ]


def _framed_values(field: bytes, values: list[bytes]) -> list[bytes]:
    head = b"$%d\r\n%s\r\n" % (len(field), field)
    return [b"%s$%d\r\n%s\r\n" % (head, len(v), v) for v in values]


def _as_views(views: ViewRef | Sequence[ViewRef]) -> tuple[ViewRef, ...]:
    group = (views,) if isinstance(views, ViewRef) else tuple(views)
    if not group:
        raise InvalidInputError("views", "no view to write")
    if len({v.join_key for v in group}) != 1:
        raise InvalidInputError("views", "views written together must share one join key")
    return group


def encode_hsets(
    table: pa.Table,
    project: str,
    views: ViewRef | Sequence[ViewRef],
    timestamp_field: str,
    *,
    key_ttl_seconds: int | None = None,
    keys: list[bytes] | None = None,
) -> tuple[bytes, list[bytes]]:
    """The Redis protocol of one HSET (and EXPIRE) per row for all views, and the keys. Pure.

    One HSET holding several views' fields leaves the hash exactly as one HSET per view does.
    `keys`, when the caller has them already, are the rows' Redis keys in order.
    """
    group = _as_views(views)
    if keys is None:
        keys = _keys(project, group[0].join_key, table)
    fixed: list[tuple[np.ndarray, np.ndarray]] = []
    variable = []
    n_fields = 0
    for view in group:
        for ref in view.features:
            if ref.name not in table.column_names:
                raise InvalidInputError(ref.name, f"missing from the rows of {view.name}")
            field = feature_field(view.name, ref.name)
            if ref.kind in FIXED_WIDTH_KINDS:
                matrix, lengths = encode_fixed(table[ref.name], ref.kind, ref.name)
                fixed += _framed_fixed(field, matrix, lengths)
            else:
                values = encode_values(table[ref.name], ref.kind, ref.name)
                variable.append(_framed_values(field, values))
        n_fields += len(view.features) + 1
    stamps = encode_event_timestamps(event_micros(table[timestamp_field]))
    for view in group:
        fixed += _framed_fixed(layout.timestamp_field(view.name), *stamps)
    rows = concat_to_list(fixed)
    head = b"*%d\r\n$4\r\nHSET\r\n" % (2 + 2 * n_fields)
    heads = [b"%s$%d\r\n%s\r\n" % (head, len(k), k) for k in keys]
    parts: list[Sequence[bytes]] = [heads, rows, *variable]
    if key_ttl_seconds:
        ttl = b"$%d\r\n%d\r\n" % (len(str(key_ttl_seconds)), key_ttl_seconds)
        parts.append([b"*3\r\n$6\r\nEXPIRE\r\n$%d\r\n%s\r\n%s" % (len(k), k, ttl) for k in keys])
    return b"".join(itertools.chain.from_iterable(zip(*parts, strict=True))), keys


def _keys(project: str, join_key: str, table: pa.Table) -> list[bytes]:
    ids = table[join_key].to_pylist()
    if None in ids:
        raise InvalidInputError(join_key, "join key has null values")
    return redis_keys(project, join_key, ids)


def _hmget_stamps(views: Sequence[ViewRef], keys: list[bytes]) -> bytes:
    """HMGET of every view's `_ts:` field per key, as one protocol payload. Pure."""
    fields = [layout.timestamp_field(v.name) for v in views]
    head = b"*%d\r\n$5\r\nHMGET\r\n" % (2 + len(fields))
    tail = b"".join(b"$%d\r\n%s\r\n" % (len(f), f) for f in fields)
    return b"".join(b"%s$%d\r\n%s\r\n%s" % (head, len(k), k, tail) for k in keys)


def _read_stamps(connection: RawConnection, n_keys: int, n_views: int) -> np.ndarray:
    """Replies of `_hmget_stamps`: epoch µs per key and view, _NONE where Redis holds none."""
    stored = [raw for reply in connection.replies(n_keys) for raw in reply]
    return stamps_micros(stored, _NONE).reshape(n_keys, n_views)


def write_rows(
    client: RedisClient,
    project: str,
    view: ViewRef,
    table: pa.Table,
    *,
    timestamp_field: str = "event_timestamp",
    skip_older: bool = True,
    key_ttl_seconds: int | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> int:
    """Write one row per entity (already the latest) into Feast's hashes; returns rows written."""
    return write_view_rows(
        client,
        project,
        [view],
        table,
        timestamp_field=timestamp_field,
        skip_older=skip_older,
        key_ttl_seconds=key_ttl_seconds,
        chunk_rows=chunk_rows,
    )[view.name]


def _chunk_payload(
    chunk: pa.Table,
    keys: list[bytes],
    project: str,
    views: tuple[ViewRef, ...],
    newer: np.ndarray | None,
    timestamp_field: str,
    key_ttl_seconds: int | None,
) -> tuple[list[bytes], int, np.ndarray]:
    """Commands for one chunk: one HSET per row for the views it is newer for. Pure."""
    encode = functools.partial(
        encode_hsets,
        project=project,
        timestamp_field=timestamp_field,
        key_ttl_seconds=key_ttl_seconds,
    )
    if newer is None:
        newer = np.ones((chunk.num_rows, len(views)), bool)
    # Usually every view is newer (or none): one HSET with all of them; per view otherwise.
    every = newer.all(axis=1)
    selections = [(every, views)]
    selections += [(newer[:, j] & ~every, (view,)) for j, view in enumerate(views)]
    payloads = []
    commands = 0
    for rows, group in selections:
        if not rows.any():
            continue
        if rows.all():
            rows_table, rows_keys = chunk, keys
        else:
            rows_table = chunk.filter(pa.array(rows))
            rows_keys = [keys[i] for i in np.flatnonzero(rows).tolist()]
        payloads.append(encode(rows_table, views=group, keys=rows_keys)[0])
        commands += rows_table.num_rows * (2 if key_ttl_seconds else 1)
    return payloads, commands, newer.sum(axis=0)


def write_view_rows(
    client: RedisClient,
    project: str,
    views: Sequence[ViewRef],
    table: pa.Table,
    *,
    timestamp_field: str = "event_timestamp",
    skip_older: bool = True,
    key_ttl_seconds: int | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> dict[str, int]:
    """Write the rows of views sharing a join key in one pass; rows written per view."""
    group = _as_views(views)
    options: dict[str, Any] = {
        "timestamp_field": timestamp_field,
        "skip_older": skip_older,
        "key_ttl_seconds": key_ttl_seconds,
        "chunk_rows": chunk_rows,
    }
    if isinstance(client, RedisCluster):
        # Rewriting rows already written is harmless (same values), so a reshard mid-write
        # sends everything again.
        return retry_resharded(
            client, lambda: _write_cluster(client, project, group, table, **options)
        )
    return _write_node(client, project, group, table, **options)


def _write_cluster(
    client: RedisCluster,
    project: str,
    group: tuple[ViewRef, ...],
    table: pa.Table,
    **options: Any,
) -> dict[str, int]:
    """`_write_node` on each node with the rows whose keys it owns."""
    rows: dict[str, list[int]] = {}
    found: dict[str, Any] = {}
    for i, key in enumerate(_keys(project, group[0].join_key, table)):
        node = node_of(client, key)
        rows.setdefault(node.name, []).append(i)
        found[node.name] = node
    written = dict.fromkeys((v.name for v in group), 0)
    for name, positions in rows.items():
        part = table.take(pa.array(positions, pa.int64()))
        counts = _write_node(
            client.get_redis_connection(found[name]), project, group, part, **options
        )
        for view, n in counts.items():
            written[view] += n
    return written


def _write_node(
    client: redis.Redis,
    project: str,
    group: tuple[ViewRef, ...],
    table: pa.Table,
    *,
    timestamp_field: str,
    skip_older: bool,
    key_ttl_seconds: int | None,
    chunk_rows: int,
) -> dict[str, int]:
    """Write to one server (a single Redis, or the cluster node owning every row's slot)."""
    written = np.zeros(len(group), np.int64)
    chunks = [table.slice(start, chunk_rows) for start in range(0, table.num_rows, chunk_rows)]
    join_key = group[0].join_key
    pending = 0
    with RawConnection(client) as connection:
        keys = _keys(project, join_key, chunks[0]) if chunks else []
        if skip_older and chunks:
            # Feast skips a row unless it is newer than the stored one, so stamps are read first.
            connection.send([_hmget_stamps(group, keys)])
            stored = _read_stamps(connection, len(keys), len(group))
        for k, chunk in enumerate(chunks):
            newer = event_micros(chunk[timestamp_field])[:, None] > stored if skip_older else None
            payloads, commands, counts = _chunk_payload(
                chunk, keys, project, group, newer, timestamp_field, key_ttl_seconds
            )
            ahead = k + 1 < len(chunks)
            if ahead:
                keys = _keys(project, join_key, chunks[k + 1])
                if skip_older:
                    # The next chunk's stamps go out ahead of this chunk's writes (its keys are
                    # others), so the next chunk is encoded while Redis writes this one.
                    payloads.insert(0, _hmget_stamps(group, keys))
            connection.send(payloads)
            _drain(connection, pending)  # the previous chunk's writes
            if ahead and skip_older:
                stored = _read_stamps(connection, len(keys), len(group))
            pending = commands
            written += counts
        _drain(connection, pending)
    return {view.name: int(n) for view, n in zip(group, written, strict=True)}


def _drain(connection: RawConnection, count: int) -> None:
    connection.replies(count)
