"""The batch runner: read a source, normalize, store, enrich and aggregate into feature snapshots.

This is the only module that wires the pipeline's pure steps to the stores on disk; the CLI and
the benchmarks call `run_ingest`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from engram.errors import InvalidInputError
from engram.settings import Settings
from pipelines import aggregate, catalog_store, dead_letter, duck, enrich, event_store, normalize
from pipelines.contract import NORMALIZED_SCHEMA
from pipelines.sources import jsonl, movielens, parquet

InputFormat = Literal["signals", "movielens"]
StageCallback = Callable[[str], None]

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
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    memories: dict[str, object] = field(default_factory=dict)  # memory.service.WriteSummary

    def to_dict(self) -> dict[str, object]:
        """The summary as plain JSON-ready values."""
        return asdict(self)


class _StageTimer:
    """Records how long each named stage took and tells the caller when one starts."""

    def __init__(self, seconds: dict[str, float], on_stage: StageCallback | None) -> None:
        self._seconds = seconds
        self._on_stage = on_stage
        self._current: str | None = None
        self._since = time.perf_counter()

    def start(self, name: str) -> None:
        now = time.perf_counter()
        if self._current is not None:
            self._seconds[self._current] = round(now - self._since, 3)
        self._current, self._since = name, now
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
) -> IngestSummary:
    """Ingest `path` into the offline store and rebuild the feature snapshots as of `as_of`;
    with `memories`, also remember its text signals (searchable when this returns)."""
    started = time.perf_counter()
    summary = IngestSummary()
    timer = _StageTimer(summary.stage_seconds, on_stage)
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

    stage("normalize")
    # Batches bound memory: accepted events collect in a DuckDB table, which can spill to disk.
    # The normalize reader keeps a result open on `con`, so the writes go through a cursor.
    work = con.cursor()
    work.register("_empty", _with_position(NORMALIZED_SCHEMA.empty_table(), offset=0))
    work.execute("CREATE OR REPLACE TABLE _incoming AS SELECT * FROM _empty")
    work.unregister("_empty")
    users: set[str] = set()
    items: set[str] = set()
    reasons: Counter[str] = Counter()
    for part in normalize.iter_normalize(con, raw, source=str(path), ingested_at=ingested_at):
        summary.accepted += part.accepted.num_rows
        summary.rejected += part.rejected.num_rows
        reasons.update(dead_letter.count_reasons(part.rejected))
        dead_letter.write(settings, _unseen_rejections(work, settings, part.rejected))
        users.update(pc.unique(part.accepted.column("user_id")).to_pylist())
        items.update(pc.unique(part.accepted.column("item_id").drop_null()).to_pylist())
        work.register("_part", _with_position(part.accepted, offset=summary.accepted))
        work.execute("INSERT INTO _incoming SELECT * FROM _part")
        work.unregister("_part")
    summary.read = summary.accepted + summary.rejected
    summary.rejected_by_reason = dict(reasons.most_common())
    summary.users, summary.items = len(users), len(items)

    stage("deduplicate")
    summary.new, summary.duplicates = event_store.append_new(work, settings, "_incoming")
    if memories:
        stage("memories")
        summary.memories = _remember(settings, work, "_incoming")
    work.execute("DROP TABLE _incoming")

    stage("aggregate")
    summary.feature_rows = rebuild_features(con, settings, as_of=as_of)
    summary.seconds = round(time.perf_counter() - started, 3)
    stage("done")
    return summary


def _remember(
    settings: Settings, con: duckdb.DuckDBPyConnection, incoming: str
) -> dict[str, object]:
    """Memories of the ingest's text signals, as stored (the first copy of an event wins);
    events stored by an earlier ingest are recognized by the memory service and skipped."""
    # Imported here: Milvus and the embedding model are heavy, and most ingests need neither.
    from memory.ingest import TEXT_SIGNAL_TYPES, remember_relation
    from memory.service import build_memory_service

    kinds = ", ".join(f"'{kind}'" for kind in TEXT_SIGNAL_TYPES)
    events = event_store.scan(con, settings).filter(f"type IN ({kinds})")
    mine = events.filter(f"event_id IN (SELECT event_id FROM {incoming})")
    service = build_memory_service(settings)
    try:
        return remember_relation(service, mine).to_dict()
    finally:
        service.close()


def rebuild_features(con: duckdb.DuckDBPyConnection, settings: Settings, *, as_of: datetime) -> int:
    """Recompute the user and item snapshots from every stored event; returns rows written."""
    session_gap = timedelta(minutes=settings.session_gap_minutes)
    enriched = enrich.enrich(
        con,
        event_store.scan(con, settings),
        catalog_store.load(con, settings),
        session_gap=session_gap,
    )
    users, items = aggregate.aggregate_snapshots(
        con, enriched, as_of=as_of, session_gap=session_gap
    )
    out = features_dir(settings)
    rows = aggregate.write_snapshot(con, users, out / USER_FEATURES_FILE)
    rows += aggregate.write_snapshot(con, items, out / ITEM_FEATURES_FILE)
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


def _with_position(table: pa.Table, *, offset: int) -> pa.Table:
    """`table` with its global input order; `offset` counts the accepted rows so far, this incl."""
    start = offset - table.num_rows
    return table.append_column("position", pa.array(range(start, offset), pa.int64()))


def _read_catalog(con: duckdb.DuckDBPyConnection, path: Path) -> pa.Table:
    if path.suffix == ".parquet":
        return con.read_parquet(str(path)).to_arrow_table()
    return con.read_json(str(path), format="newline_delimited").to_arrow_table()
