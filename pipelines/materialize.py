"""Bulk materialization: feature rows from Parquet or Arrow into Feast's Redis online store, fast.

Writes exactly what `feast materialize` writes, through the online format's bulk writer
(core/stores/online/write.py: one HSET of every feature plus `_ts:view` per entity, encoded by
column and streamed on one connection), so Feast's get_online_features and Engram's fast reader
both read it back. Views over one source are written in one pass: one read and sort of the
file, one HSET per entity holding every view's fields.

Feast's semantics are kept: rows with start <= event time <= end, the newest row per entity
(ties broken by the created timestamp), rows not newer than what Redis already holds for the view
skipped (unless the store's `skip_dedup` is set), and the interval recorded in the registry
(which moves the view to AVAILABLE_ONLINE), so `feast materialize-incremental` carries on from it.
One difference: a view never materialized starts from the beginning, not at now - ttl.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from core.errors import InvalidInputError, SourceError
from core.settings import Settings
from core.stores.cluster import RedisClient
from core.stores.online.layout import view_ref
from core.stores.online.write import CHUNK_ROWS, write_view_rows
from core.times import EPOCH

if TYPE_CHECKING:  # the SDK takes seconds to import; only the registry-facing runners use it
    from feast import FeatureStore


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
    client: RedisClient,
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
    join_key = view_ref(feature_view).join_key
    return path, join_key, source.timestamp_field, source.created_timestamp_column or ""


def materialize_views(
    store: FeatureStore,
    client: RedisClient,
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
    views = [view_ref(fv) for fv in feature_views]
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
    client: RedisClient,
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
    from core.stores.services import connect_url, resolve_redis_url

    began = time.perf_counter()
    end = end or datetime.now(UTC)
    redis_url = resolve_redis_url(settings)
    store = feature_store.open_store(settings, redis_url)
    feature_store.apply_repo(store, settings)
    with connect_url(settings, redis_url) as client:
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
