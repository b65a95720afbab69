"""Bulk materialization: feature rows from Parquet or Arrow into Feast's Redis online store, fast.

Writes exactly what `feast materialize` writes (keys, fields and values from
core/stores/feast_codec.py: one HSET of every feature plus `_ts:view` per entity, EXPIRE when the
store sets `key_ttl_seconds`), so Feast's get_online_features and Engram's fast reader both read it
back.
Where Feast builds a proto object per value and a redis-py command per row, this encodes whole
columns with numpy, frames the Redis protocol itself and streams chunks on one connection,
reading a chunk's replies only after the next one is sent, so Redis works while Python encodes.
Views over one source are written in one pass: one read and sort of the file, one HSET per
entity holding every view's fields (the hash ends up as Feast's one HSET per view leaves it).

Feast's semantics are kept: rows with start <= event time <= end, the newest row per entity
(ties broken by the created timestamp), rows not newer than what Redis already holds for the view
skipped (unless the store's `skip_dedup` is set), and the interval recorded in the registry
(which moves the view to AVAILABLE_ONLINE), so `feast materialize-incremental` carries on from it.
One difference: a view never materialized starts from the beginning, not at now - ttl.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import redis
from google.protobuf.timestamp_pb2 import Timestamp

from core.errors import InvalidInputError, ServiceUnavailableError, SourceError
from core.settings import Settings
from core.stores import feast_codec
from core.stores.feast_codec import FIXED_WIDTH_KINDS, ViewRef
from core.times import EPOCH

if TYPE_CHECKING:  # the SDK takes seconds to import; only the registry-facing runners use it
    from feast import FeatureStore

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


@dataclass(frozen=True)
class MaterializeResult:
    """What one pass over a batch source did for the views it feeds."""

    views: tuple[str, ...]
    start: datetime | None
    end: datetime
    rows_read: int
    rows_written: int
    seconds: float


def latest_rows(
    table: pa.Table,
    join_key: str,
    timestamp_field: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    created_field: str | None = None,
) -> pa.Table:
    """The newest row per entity among rows with start <= event time <= end (Feast's interval)."""
    if join_key not in table.column_names or timestamp_field not in table.column_names:
        raise InvalidInputError("table", f"needs columns {join_key!r} and {timestamp_field!r}")
    times = table[timestamp_field]
    mask = pc.is_valid(times)
    for bound, compare in ((start, pc.greater_equal), (end, pc.less_equal)):
        if bound is not None:
            mask = pc.and_(mask, compare(times, _scalar(bound, times.type)))
    table = table.filter(mask)
    order = [(join_key, "ascending"), (timestamp_field, "descending")]
    if created_field:
        order.append((created_field, "descending"))
    table = table.sort_by(order)
    if table.num_rows < 2:
        return table
    keys = table[join_key].combine_chunks()
    first = pc.not_equal(keys.slice(1), keys.slice(0, len(keys) - 1))
    return table.filter(pa.concat_arrays([pa.array([True]), first.fill_null(True)]))


def _scalar(moment: datetime, ts_type: pa.DataType) -> pa.Scalar:
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if getattr(ts_type, "tz", None) is None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)  # naive times are UTC, as in Feast
    return pa.scalar(moment, type=ts_type)


def _event_micros(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not pa.types.is_timestamp(array.type):
        raise InvalidInputError("timestamp", f"event times must be timestamps, got {array.type}")
    if array.null_count:
        raise InvalidInputError("timestamp", "a row has no event time")
    return array.cast(pa.timestamp("us", tz=array.type.tz)).cast(pa.int64()).to_numpy()


def _framed_fixed(
    field: bytes, matrix: np.ndarray, lengths: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Parts of one field-value pair in the Redis protocol, per row, from a matrix of values."""
    n = len(lengths)
    head = b"$%d\r\n%s\r\n" % (len(field), field)
    return [
        _const(head, n),
        (_DIGITS[lengths], _DIGITS_LEN[lengths]),
        (matrix, lengths),
        _const(_CRLF, n),
    ]


def _const(value: bytes, n: int) -> tuple[np.ndarray, np.ndarray]:
    row = np.frombuffer(value, np.uint8)
    return np.broadcast_to(row, (n, len(row))), np.full(n, len(row), np.int64)


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
            field = feast_codec.feature_field(view.name, ref.name)
            if ref.kind in FIXED_WIDTH_KINDS:
                matrix, lengths = feast_codec.encode_fixed(table[ref.name], ref.kind, ref.name)
                fixed += _framed_fixed(field, matrix, lengths)
            else:
                values = feast_codec.encode_values(table[ref.name], ref.kind, ref.name)
                variable.append(_framed_values(field, values))
        n_fields += len(view.features) + 1
    stamps = feast_codec.encode_event_timestamps(_event_micros(table[timestamp_field]))
    for view in group:
        fixed += _framed_fixed(feast_codec.timestamp_field(view.name), *stamps)
    rows = feast_codec.concat_to_list(fixed)
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
    return feast_codec.redis_keys(project, join_key, ids)


def _connection(client: redis.Redis) -> Any:
    try:
        return client.connection_pool.get_connection()
    except (redis.ConnectionError, redis.TimeoutError) as e:
        raise ServiceUnavailableError("redis", str(e)) from e


def _hmget_stamps(views: Sequence[ViewRef], keys: list[bytes]) -> bytes:
    """HMGET of every view's `_ts:` field per key, as one protocol payload. Pure."""
    fields = [feast_codec.timestamp_field(v.name) for v in views]
    head = b"*%d\r\n$5\r\nHMGET\r\n" % (2 + len(fields))
    tail = b"".join(b"$%d\r\n%s\r\n" % (len(f), f) for f in fields)
    return b"".join(b"%s$%d\r\n%s\r\n%s" % (head, len(k), k, tail) for k in keys)


def _read_stamps(connection: Any, n_keys: int, n_views: int) -> np.ndarray:
    """Replies of `_hmget_stamps`: epoch µs per key and view, _NONE where Redis holds none."""
    out = np.full((n_keys, n_views), _NONE, np.int64)
    for i in range(n_keys):
        for j, raw in enumerate(connection.read_response(disable_decoding=True)):
            if raw is not None:
                stamp = Timestamp.FromString(raw)
                out[i, j] = stamp.seconds * 1_000_000 + stamp.nanos // 1000
    return out


def write_rows(
    client: redis.Redis,
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
    client: redis.Redis,
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
    written = np.zeros(len(group), np.int64)
    chunks = [table.slice(start, chunk_rows) for start in range(0, table.num_rows, chunk_rows)]
    join_key = group[0].join_key
    connection = _connection(client)
    pending = 0
    try:
        keys = _keys(project, join_key, chunks[0]) if chunks else []
        if skip_older and chunks:
            # Feast skips a row unless it is newer than the stored one, so stamps are read first.
            connection.send_packed_command([_hmget_stamps(group, keys)])
            stored = _read_stamps(connection, len(keys), len(group))
        for k, chunk in enumerate(chunks):
            newer = _event_micros(chunk[timestamp_field])[:, None] > stored if skip_older else None
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
            connection.send_packed_command(payloads)
            _drain(connection, pending)  # the previous chunk's writes
            if ahead and skip_older:
                stored = _read_stamps(connection, len(keys), len(group))
            pending = commands
            written += counts
        _drain(connection, pending)
    except (redis.ConnectionError, redis.TimeoutError) as e:
        connection.disconnect()
        raise ServiceUnavailableError("redis", str(e)) from e
    except BaseException:
        connection.disconnect()  # unread replies must not go back to the pool
        raise
    finally:
        client.connection_pool.release(connection)
    return {view.name: int(n) for view, n in zip(group, written, strict=True)}


def _drain(connection: Any, count: int) -> None:
    for _ in range(count):
        connection.read_response(disable_decoding=True)


def read_source(
    path: str | Path,
    columns: Sequence[str],
    timestamp_field: str,
    *,
    start: datetime | None,
    end: datetime | None,
) -> pa.Table:
    """The columns of a Parquet file or directory with start <= event time <= end."""
    try:
        dataset = ds.dataset(str(path), format="parquet")
    except (OSError, pa.ArrowInvalid) as e:
        raise SourceError(str(path), f"cannot read as Parquet: {e}") from e
    missing = [c for c in columns if c not in dataset.schema.names]
    if missing:
        raise SourceError(str(path), f"missing columns {missing}")
    ts_type = dataset.schema.field(timestamp_field).type
    condition = None
    for bound, op in ((start, "ge"), (end, "le")):
        if bound is not None:
            term = ds.field(timestamp_field)
            term = (
                term >= _scalar(bound, ts_type) if op == "ge" else term <= _scalar(bound, ts_type)
            )
            condition = term if condition is None else condition & term
    return dataset.to_table(columns=list(columns), filter=condition)


def materialize_view(
    store: FeatureStore,
    client: redis.Redis,
    view_name: str,
    *,
    start: datetime | None,
    end: datetime,
    table: pa.Table | None = None,
    record: bool = True,
    chunk_rows: int = CHUNK_ROWS,
) -> MaterializeResult:
    """Materialize one feature view like `feast materialize`, from its source or a given table."""
    return materialize_views(
        store,
        client,
        [view_name],
        start=start,
        end=end,
        table=table,
        record=record,
        chunk_rows=chunk_rows,
    )


def _source_key(feature_view: Any) -> tuple[str, str, str, str]:
    """What views must share to be read in one pass: file, join key, time columns."""
    from feast import FileSource

    source = feature_view.batch_source
    if source is None:
        raise InvalidInputError(feature_view.name, "the view has no batch source")
    if source.field_mapping:
        raise InvalidInputError(feature_view.name, "sources with a field_mapping are not supported")
    path = source.path if isinstance(source, FileSource) else f"<{source.name}>"
    join_key = feast_codec.view_ref(feature_view).join_key
    return path, join_key, source.timestamp_field, source.created_timestamp_column or ""


def materialize_views(
    store: FeatureStore,
    client: redis.Redis,
    view_names: Sequence[str],
    *,
    start: datetime | None,
    end: datetime,
    table: pa.Table | None = None,
    record: bool = True,
    chunk_rows: int = CHUNK_ROWS,
) -> MaterializeResult:
    """Materialize views over one batch source in one pass: one read, one HSET per entity."""
    from feast import FileSource

    began = time.perf_counter()
    feature_views = [store.get_feature_view(name) for name in view_names]
    keys = {_source_key(fv) for fv in feature_views}
    if len(keys) != 1:
        raise InvalidInputError("views", f"{list(view_names)} do not share one batch source")
    _, join_key, ts_field, created = next(iter(keys))
    views = [feast_codec.view_ref(fv) for fv in feature_views]
    source = feature_views[0].batch_source
    if table is None:
        if not isinstance(source, FileSource):
            raise InvalidInputError(view_names[0], "only Parquet FileSources are read")
        names = dict.fromkeys([join_key, ts_field, *(f.name for v in views for f in v.features)])
        columns = [*names, *([created] if created else [])]
        table = read_source(
            _source_path(store, source.path), columns, ts_field, start=start, end=end
        )
    latest = latest_rows(
        table, join_key, ts_field, start=start, end=end, created_field=created or None
    )
    online = store.config.online_store
    written = write_view_rows(
        client,
        store.project,
        views,
        latest,
        timestamp_field=ts_field,
        skip_older=not getattr(online, "skip_dedup", False),
        key_ttl_seconds=getattr(online, "key_ttl_seconds", None),
        chunk_rows=chunk_rows,
    )
    if record:
        interval_start = start if start is not None else EPOCH
        for feature_view in feature_views:
            store.registry.apply_materialization(feature_view, store.project, interval_start, end)
    elapsed = time.perf_counter() - began
    return MaterializeResult(
        tuple(view_names), start, end, table.num_rows, max(written.values()), elapsed
    )


def _source_path(store: FeatureStore, path: str) -> str:
    # Feast resolves a relative FileSource path against config.repo_path (offline stores call
    # FileSource.get_uri_for_file_path with it), not against store.repo_path or the cwd.
    repo_path = store.config.repo_path
    if "://" in path or Path(path).is_absolute() or repo_path is None:
        return path
    return str(Path(repo_path) / path)


def materialize_incremental(
    store: FeatureStore,
    client: redis.Redis,
    end: datetime,
    views: Sequence[str] | None = None,
) -> list[MaterializeResult]:
    """Like `feast materialize-incremental`: each view from where it last stopped up to `end`.

    Views over the same source that stopped at the same time go in one pass.
    """
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    names = list(views) if views else [v.name for v in store.list_feature_views() if v.online]
    groups: dict[tuple[Any, ...], list[str]] = {}
    for name in names:
        feature_view = store.get_feature_view(name)
        # Never materialized: from the beginning. Feast starts at now - ttl instead, which
        # misses every entity whose newest row is older than the ttl (all of them, for a
        # snapshot taken with an --as-of in the past); only the newest row per entity is
        # written, and reading the whole snapshot once is cheap.
        start = feature_view.most_recent_end_time
        if start is not None and start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        groups.setdefault((*_source_key(feature_view), start), []).append(name)
    return [
        materialize_views(store, client, group, start=key[-1], end=end)
        for key, group in groups.items()
    ]


def run_materialize(settings: Settings, *, end: datetime | None = None) -> dict[str, Any]:
    """`engram materialize`: apply the repo, then every view's new rows up to `end` (now)."""
    from core.stores import feature_store
    from core.stores.services import resolve_redis_url

    began = time.perf_counter()
    end = end or datetime.now(UTC)
    redis_url = resolve_redis_url(settings)
    store = feature_store.open_store(settings, redis_url)
    feature_store.apply_repo(store, settings)
    with redis.Redis.from_url(redis_url) as client:
        results = materialize_incremental(store, client, end)
    return {
        "end": end.isoformat(),
        "views": sum(len(r.views) for r in results),
        "passes": [
            {
                "views": list(r.views),
                "start": r.start.isoformat() if r.start else None,
                "rows_read": r.rows_read,
                "rows_written": r.rows_written,
                "seconds": round(r.seconds, 3),
            }
            for r in results
        ],
        "rows_written": sum(r.rows_written for r in results),
        "seconds": round(time.perf_counter() - began, 3),
    }
