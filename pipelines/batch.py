"""The batch runner: read a source, normalize, store, enrich and aggregate into feature snapshots.

This is the only module that wires the pipeline's pure steps to the stores on disk; the CLI and
the benchmarks call `run_ingest`.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, Protocol, TypeVar

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.errors import InvalidInputError
from core.settings import Settings
from pipelines import (
    aggregate,
    catalog_store,
    dead_letter,
    duck,
    enrich,
    event_ids,
    event_store,
    incremental,
    normalize,
    snapshot_files,
)
from pipelines.aggregate_users import session_gap_micros
from pipelines.signal_arrays import code_signals, signal_table
from pipelines.sources import jsonl, movielens, parquet
from pipelines.timelines import as_of_micros

InputFormat = Literal["signals", "movielens"]
# duckdb: embedded, the default; spark: the same steps on Apache Spark (pipelines/spark/).
Engine = Literal["duckdb", "spark"]
StageCallback = Callable[[str], None]
T = TypeVar("T")

USER_FEATURES_FILE = "user_features.parquet"
ITEM_FEATURES_FILE = "item_features.parquet"


@dataclass
class IngestSummary:
    """What one ingest did; `read == accepted + rejected` always holds."""

    read: int = 0
    accepted: int = 0
    rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    new: int = 0
    users: int = 0
    items: int = 0
    feature_rows: int = 0
    # "incremental", or "full: <why>" (pipelines/incremental.py says when an ingest is full)
    aggregation: str = ""
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    # CPU seconds (user + sys, all threads) per stage: steadier than wall time on a busy machine.
    stage_cpu_seconds: dict[str, float] = field(default_factory=dict)
    memories: dict[str, object] = field(default_factory=dict)  # memory.service.WriteSummary

    def to_dict(self) -> dict[str, object]:
        """The summary as plain JSON-ready values."""
        return asdict(self)


class _StageTimer:
    """Records how long each named stage took, in wall and CPU seconds, and tells the caller
    when one starts."""

    def __init__(
        self,
        seconds: dict[str, float],
        cpu: dict[str, float],
        on_stage: StageCallback | None,
        cpu_clock: Callable[[], float] = time.process_time,
    ) -> None:
        self._seconds = seconds
        self._cpu = cpu
        self._on_stage = on_stage
        self._cpu_clock = cpu_clock
        self._current: str | None = None
        self._since = time.perf_counter()
        self._cpu_since = cpu_clock()

    def start(self, name: str) -> None:
        now, cpu = time.perf_counter(), self._cpu_clock()
        if self._current is not None:
            self._seconds[self._current] = round(now - self._since, 3)
            self._cpu[self._current] = round(cpu - self._cpu_since, 3)
        self._current, self._since, self._cpu_since = name, now, cpu
        if self._on_stage is not None:
            self._on_stage(name)


def features_dir(settings: Settings) -> Path:
    """Directory of the feature snapshots Feast reads."""
    return settings.offline_dir / "features"


def _read_source(
    con: duckdb.DuckDBPyConnection, path: Path, input_format: InputFormat
) -> tuple[duckdb.DuckDBPyRelation, pa.Table | None]:
    if input_format == "movielens":
        return movielens.read_movielens(con, path)
    if input_format != "signals":
        raise InvalidInputError("format", f"unknown input format {input_format!r}")
    if path.is_dir():
        if any(path.glob("*.parquet")):
            return parquet.read_parquet(con, path), None
        return jsonl.read_jsonl(con, path), None
    if path.suffix == ".parquet":
        return parquet.read_parquet(con, path), None
    return jsonl.read_jsonl(con, path), None


def run_ingest(
    settings: Settings,
    path: Path,
    *,
    input_format: InputFormat = "signals",
    catalog: Path | None = None,
    as_of: datetime | None = None,
    on_stage: StageCallback | None = None,
    memories: bool = False,
    full: bool = False,
    engine: Engine = "duckdb",
) -> IngestSummary:
    """Ingest `path` into the offline store and bring the feature snapshots to `as_of`
    (incrementally when the kept state allows, recomputing everything with `full`); with
    `memories`, also remember its text signals (searchable when this returns). `engine` runs
    deduplication, enrichment and aggregation on DuckDB or on Spark (always a full recompute),
    with equal results."""
    if engine not in ("duckdb", "spark"):
        raise InvalidInputError("engine", f"unknown engine {engine!r}")
    started = time.perf_counter()
    summary = IngestSummary()
    spark = None
    if engine == "spark":
        # Imported here: pyspark and its JVM load only for this engine.
        from pipelines.spark.engine import SparkEngine

        if on_stage is not None:
            on_stage("spark")
        spark = SparkEngine(settings)
    # With Spark, the CPU of its JVM counts too.
    cpu_clock = time.process_time if spark is None else spark.cpu_clock
    timer = _StageTimer(summary.stage_seconds, summary.stage_cpu_seconds, on_stage, cpu_clock)
    stage = timer.start
    ingested_at = datetime.now(UTC)
    as_of = as_of or ingested_at
    con = duck.connect(settings)

    stage("read")
    raw, source_catalog = _read_source(con, path, input_format)
    if source_catalog is not None:
        catalog_store.upsert(con, settings, source_catalog)
    if catalog is not None:
        catalog_store.upsert(con, settings, _read_catalog(con, catalog))

    # One streaming stage: each batch is normalized, deduplicated and written to the new part.
    stage("normalize+store")
    sink = DedupWriter(con, settings) if spark is None else spark.new_events()
    accepted_ids = _store_new_events(
        con,
        sink,
        settings,
        raw,
        summary,
        source=str(path),
        ingested_at=ingested_at,
        keep_ids=memories,
    )
    # The ids and the last batches are done with: give their memory back before aggregating.
    pa.default_memory_pool().release_unused()
    if memories:
        stage("memories")
        summary.memories = _remember(settings, con.cursor(), accepted_ids)

    stage("aggregate")
    if spark is None:
        summary.feature_rows, summary.aggregation = update_features(
            con, settings, as_of=as_of, full=full
        )
    else:
        snapshots = _snapshots(settings)
        summary.feature_rows = spark.rebuild_features(
            as_of=as_of, users_dir=snapshots.users, items_dir=snapshots.items
        )
        # Spark keeps no incremental state: the next DuckDB ingest recomputes in full.
        incremental.clear(settings)
        summary.aggregation = "full: --engine spark"
    summary.seconds = round(time.perf_counter() - started, 3)
    stage("done")
    if spark is not None:
        spark.close()  # an ingest that started Spark stops it (an ingest that fails exits)
    return summary


class EventSink(Protocol):
    """Where the runner sends accepted events: it stores the new ones, once each."""

    def write(self, accepted: pa.Table) -> None:
        """Take one batch of accepted events (NORMALIZED_SCHEMA, input order)."""

    def commit(self) -> int:
        """Store the events not stored before (first copies); returns how many."""
        ...

    def abort(self) -> None:
        """Store nothing."""


class DedupWriter:
    """The DuckDB engine's sink: each batch deduplicated as it arrives against the ids seen so
    far (the store's, then this input's), and written straight to the new part. The store's ids
    come from the kept index of their hashes when it is up to date (stored ids are then read
    only where a hash matches), else from the parts."""

    def __init__(self, con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
        self._settings = settings
        self._seen = event_ids.SeenIds(con.cursor())
        index = event_store.load_id_index(settings)
        if index is None:
            self._seen.add(event_store.stored_ids(con, settings))
        else:
            self._seen.add_hashes(index, event_store.ids_with_hashes(con.cursor(), settings))
        self._stored_before = len(self._seen)
        self._writer = event_store.PartWriter(settings)

    def write(self, accepted: pa.Table) -> None:
        keep = self._seen.keep_new(accepted.column("event_id"))
        if len(keep) < accepted.num_rows:
            # A mask, not `take`: on 1M events, 0.12 s against 0.4 s.
            mask = np.zeros(accepted.num_rows, dtype=bool)
            mask[keep] = True
            accepted = accepted.filter(pa.array(mask))
        self._writer.write(accepted)

    def commit(self) -> int:
        self._writer.commit()
        event_store.save_id_index(self._settings, self._seen.hashes)
        return len(self._seen) - self._stored_before

    def abort(self) -> None:
        self._writer.abort()


def _store_new_events(
    con: duckdb.DuckDBPyConnection,
    sink: EventSink,
    settings: Settings,
    raw: duckdb.DuckDBPyRelation,
    summary: IngestSummary,
    *,
    source: str,
    ingested_at: datetime,
    keep_ids: bool,
) -> pa.ChunkedArray:
    """Normalize `raw`, keep its rejections in the dead letter and hand its accepted events to
    `sink`, which stores the new ones; fills the summary's counts. Returns the accepted event ids
    when `keep_ids`. Memory holds a few batches, never the whole input.
    """
    work = con.cursor()
    users: list[pa.Array] = []
    items: list[pa.Array] = []
    accepted_ids: list[pa.Array] = []
    reasons: Counter[str] = Counter()
    try:
        batches = normalize.iter_normalize(con, raw, source=source, ingested_at=ingested_at)
        for part in _prefetched(batches):
            accepted = part.accepted
            summary.accepted += accepted.num_rows
            summary.rejected += part.rejected.num_rows
            if part.rejected.num_rows:
                reasons.update(dead_letter.count_reasons(part.rejected))
                dead_letter.write(settings, _unseen_rejections(work, settings, part.rejected))
            users.append(pc.unique(accepted.column("user_id")))
            items.append(pc.unique(accepted.column("item_id")).drop_null())
            if keep_ids:
                accepted_ids.append(accepted.column("event_id"))
            sink.write(accepted)
    except BaseException:
        sink.abort()
        raise
    summary.new = sink.commit()
    summary.duplicates = summary.accepted - summary.new
    summary.read = summary.accepted + summary.rejected
    summary.rejected_by_reason = dict(reasons.most_common())
    summary.users = _distinct(users)
    summary.items = _distinct(items)
    return pa.chunked_array(accepted_ids, pa.string())


def _distinct(chunks: list[pa.Array]) -> int:
    return len(pc.unique(pa.chunked_array(chunks, pa.string()))) if chunks else 0


def _prefetched(batches: Iterator[T]) -> Iterator[T]:
    """`batches`, computed one ahead on a worker thread, so producing the next (DuckDB and
    Arrow, both releasing the GIL) overlaps with consuming this one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead = pool.submit(next, batches, None)
        try:
            while (batch := ahead.result()) is not None:
                ahead = pool.submit(next, batches, None)
                yield batch
        finally:
            ahead.cancel()
            if not ahead.cancelled():
                # Let the worker finish the batch it is on before the generator is closed.
                with contextlib.suppress(BaseException):
                    ahead.result()
            close = getattr(batches, "close", None)
            if close is not None:
                close()


def _remember(
    settings: Settings, con: duckdb.DuckDBPyConnection, accepted_ids: pa.ChunkedArray
) -> dict[str, object]:
    """Memories of the ingest's text signals, as stored (the first copy of an event wins);
    events stored by an earlier ingest are recognized by the memory service and skipped."""
    # Imported here: Milvus and the embedding model are heavy, and most ingests need neither.
    from memory.ingest import TEXT_SIGNAL_TYPES, remember_relation
    from memory.service import WRITE_THREADS, WriteSummary, build_memory_service

    kinds = ", ".join(f"'{kind}'" for kind in TEXT_SIGNAL_TYPES)
    events = event_store.scan(con, settings).filter(f"type IN ({kinds})")
    con.register("_accepted_ids", pa.table({"event_id": accepted_ids}))
    mine = events.filter("event_id IN (SELECT event_id FROM _accepted_ids)")
    try:
        if mine.aggregate("count(*)").fetchall() == [(0,)]:
            return WriteSummary().to_dict()  # no text: no Milvus or model to start
        service = build_memory_service(settings, threads=WRITE_THREADS)
        try:
            return remember_relation(service, mine).to_dict()
        finally:
            service.close()
    finally:
        con.unregister("_accepted_ids")


def _snapshots(settings: Settings) -> incremental.Snapshots:
    out = features_dir(settings)
    return incremental.Snapshots(users=out / USER_FEATURES_FILE, items=out / ITEM_FEATURES_FILE)


def update_features(
    con: duckdb.DuckDBPyConnection, settings: Settings, *, as_of: datetime, full: bool = False
) -> tuple[int, str]:
    """Bring the snapshots to `as_of`: incrementally when the kept state allows it, else (or
    with `full`) by a full recompute. Returns the snapshots' rows and how they were made."""
    gap_us = session_gap_micros(timedelta(minutes=settings.session_gap_minutes))
    as_of_us = as_of_micros(as_of)
    snapshots = _snapshots(settings)
    state = incremental.load_state(settings)
    reason = "--full" if full else incremental.why_full(settings, state, as_of_us, gap_us)
    if not reason and state is not None:
        reason = incremental.update(
            con, settings, state, snapshots, as_of_us=as_of_us, session_gap_us=gap_us
        )
        if not reason:
            rows = snapshot_files.total_rows(snapshots.users)
            return rows + snapshot_files.total_rows(snapshots.items), "incremental"
    return rebuild_features(con, settings, as_of=as_of), f"full: {reason}"


def rebuild_features(con: duckdb.DuckDBPyConnection, settings: Settings, *, as_of: datetime) -> int:
    """Recompute the user and item snapshots from every stored event, and keep the state the
    next ingest carries on from; returns rows written."""
    session_gap = timedelta(minutes=settings.session_gap_minutes)
    gap_us = session_gap_micros(session_gap)
    as_of_us = as_of_micros(as_of)
    enriched = enrich.enrich(
        con,
        event_store.scan(con, settings),
        catalog_store.load(con, settings),
        session_gap=session_gap,
    )
    table = signal_table(enriched)
    t = np.asarray(table.column("t").to_numpy(), dtype=np.int64)
    pending = bool((t > as_of_us).any())
    if pending:
        table = table.filter(pa.array(t <= as_of_us))
    signals = code_signals(table)
    users, items = aggregate.snapshots_of(signals, as_of_us, gap_us)
    snapshots = _snapshots(settings)
    rows = snapshot_files.write_all(users, snapshots.users, "user_id", "last_event_ts")
    rows += snapshot_files.write_all(items, snapshots.items, "item_id", "item_last_event_ts")
    incremental.save_full(
        settings, signals, as_of_us=as_of_us, session_gap_us=gap_us, pending=pending
    )
    return rows


def _unseen_rejections(
    con: duckdb.DuckDBPyConnection, settings: Settings, rejected: pa.Table
) -> pa.Table:
    """Rejections not already in the dead-letter, so re-reading a source adds nothing twice."""
    if rejected.num_rows == 0:
        return rejected
    con.register("_rejected", rejected)
    con.register("_stored", dead_letter.read(settings))
    unseen = con.sql(
        """
        SELECT * FROM _rejected r WHERE NOT EXISTS (
            SELECT 1 FROM _stored s
            WHERE s.source = r.source AND s.position = r.position AND s.raw = r.raw)
        ORDER BY r.position
        """
    ).to_arrow_table()
    con.unregister("_rejected")
    con.unregister("_stored")
    return unseen.cast(rejected.schema)


def _read_catalog(con: duckdb.DuckDBPyConnection, path: Path) -> pa.Table:
    if path.suffix == ".parquet":
        return con.read_parquet(str(path)).to_arrow_table()
    return con.read_json(str(path), format="newline_delimited").to_arrow_table()
