"""The Spark engine of the batch runner: its event sink and its feature snapshots.

`pipelines/batch.py` picks it for `engram ingest --engine spark`: reading the source,
normalization and the dead letter stay the runner's shared code; this engine deduplicates the
accepted events against the store (`store.py`), then recomputes every snapshot from every stored
event (a full recompute on each ingest) with `enrich.py`, `users.py` and `items.py`.
"""

from __future__ import annotations

import shutil
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark import SparkContext, StorageLevel
from pyspark.sql import DataFrame, SparkSession

from core.contract import NORMALIZED_SCHEMA
from core.settings import Settings
from pipelines import catalog_store, event_store, snapshot_files
from pipelines.aggregate import ITEM_SNAPSHOT_SCHEMA, USER_SNAPSHOT_SCHEMA
from pipelines.aggregate_users import session_gap_micros
from pipelines.spark import enrich, timelines
from pipelines.spark.items import item_snapshots
from pipelines.spark.session import jvm_cpu_seconds, spark_session, stop_spark
from pipelines.spark.store import SparkNewEvents, spark_output_files
from pipelines.spark.users import user_snapshots
from pipelines.timelines import as_of_micros


class SparkEngine:
    """The batch job's relational steps on the process's Spark session."""

    def __init__(self, settings: Settings, spark: SparkSession | None = None) -> None:
        self.settings = settings
        # A session already running (a test's, a notebook's) is used and left running.
        self._owned = spark is None and SparkContext._active_spark_context is None
        self.spark = spark or spark_session(settings)

    def close(self) -> None:
        """Stop the session and its JVM if this engine started them."""
        if self._owned:
            stop_spark(self.spark)

    def cpu_clock(self) -> float:
        """CPU seconds of this process and of the Spark JVM: what the engine costs."""
        return time.process_time() + jvm_cpu_seconds(self.spark)

    def new_events(self) -> SparkNewEvents:
        """The sink the runner hands accepted events to (deduplicated at commit)."""
        return SparkNewEvents(self.spark, self.settings)

    def enriched(self, session_gap: timedelta) -> DataFrame:
        """Every stored event, enriched."""
        parts = event_store.parts(self.settings)
        if parts:
            events = self.spark.read.parquet(*map(str, parts))
        else:
            events = self.spark.createDataFrame(NORMALIZED_SCHEMA.empty_table())
        catalog = enrich.read_catalog(self.spark, catalog_store.catalog_path(self.settings))
        return enrich.enrich(events, catalog, session_gap=session_gap)

    def rebuild_features(self, *, as_of: datetime, users_dir: Path, items_dir: Path) -> int:
        """Recompute the user and item snapshots from every stored event into their directories
        (`pipelines/snapshot_files.py`); returns rows written."""
        session_gap = timedelta(minutes=self.settings.session_gap_minutes)
        session_gap_micros(session_gap)  # the same check as the DuckDB engine
        as_of_us = as_of_micros(as_of)
        signals = timelines.signals(self.enriched(session_gap), as_of_us)
        # Read by both sides and the category affinities: computed once.
        signals = signals.persist(StorageLevel.MEMORY_AND_DISK)
        staging = self.settings.tmp_dir / f"spark-features-{uuid.uuid4().hex[:12]}"
        try:
            rows = _write(
                user_snapshots(signals, as_of_us=as_of_us, session_gap=session_gap),
                USER_SNAPSHOT_SCHEMA,
                staging / "users",
                users_dir,
                "last_event_ts",
            )
            rows += _write(
                item_snapshots(signals, as_of_us=as_of_us),
                ITEM_SNAPSHOT_SCHEMA,
                staging / "items",
                items_dir,
                "item_last_event_ts",
            )
        finally:
            signals.unpersist()
            shutil.rmtree(staging, ignore_errors=True)
        return rows


def _write(
    frame: DataFrame, schema: pa.Schema, staging: Path, directory: Path, last_column: str
) -> int:
    """Let Spark write the rows, then publish them with the snapshot's exact schema in the
    layout the DuckDB engine writes (files by week and the as_of rows, each sorted by key)."""
    frame.write.parquet(str(staging))
    parts = [pq.read_table(part) for part in spark_output_files(staging)]
    table = (
        pa.concat_tables([part.select(schema.names).cast(schema) for part in parts])
        if parts
        else schema.empty_table()
    )
    return snapshot_files.write_all(table, directory, schema.names[0], last_column)
