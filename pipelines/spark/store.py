"""New events into the offline event store, deduplicated by Spark.

The runner normalizes on the driver with the shared code (`pipelines/normalize.py`) and hands
each batch of accepted events here; they are staged as Parquet with their input order. At
commit, Spark keeps the first copy of each event id that the store does not hold yet (an
anti-join against the stored ids, then the first copy by input order) and the new events are
written, in input order, as one part through the event store's own writer: the same part the
DuckDB engine writes, atomically.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from core.contract import NORMALIZED_SCHEMA
from core.settings import Settings
from pipelines import event_store

ORDINAL = "_ordinal"  # an accepted event's place in the input, across batches


def spark_output_files(directory: Path) -> list[Path]:
    """The Parquet files Spark wrote to `directory`, in partition order."""
    return sorted(directory.glob("part-*.parquet"))


class SparkNewEvents:
    """Stages accepted events batch by batch; `commit` deduplicates them on Spark and stores
    the new ones as one part. The runner's event sink for the Spark engine."""

    def __init__(self, spark: SparkSession, settings: Settings) -> None:
        self._spark = spark
        self._settings = settings
        self._dir = settings.tmp_dir / f"spark-ingest-{uuid.uuid4().hex[:12]}"
        self._dir.mkdir(parents=True)
        self._schema = NORMALIZED_SCHEMA.append(pa.field(ORDINAL, pa.int64(), nullable=False))
        self._writer: pq.ParquetWriter | None = None
        self._staged = 0

    def write(self, accepted: pa.Table) -> None:
        """Stage one batch of accepted events (NORMALIZED_SCHEMA, input order)."""
        if accepted.num_rows == 0:
            return
        if self._writer is None:
            self._writer = pq.ParquetWriter(
                self._dir / "staged.parquet", self._schema, compression="zstd", compression_level=1
            )
        ordinal = pa.array(range(self._staged, self._staged + accepted.num_rows), pa.int64())
        self._writer.write_table(
            accepted.cast(NORMALIZED_SCHEMA).append_column(self._schema.field(ORDINAL), ordinal)
        )
        self._staged += accepted.num_rows

    def commit(self) -> int:
        """Store the staged events the store does not hold (first copies); returns how many."""
        try:
            if self._writer is None:
                return 0
            self._writer.close()
            self._writer = None
            out = self._dir / "new"
            self._new_events().write.parquet(str(out))
            writer = event_store.PartWriter(self._settings)
            try:
                for path in spark_output_files(out):
                    writer.write(pq.read_table(path).drop_columns([ORDINAL]))
            except BaseException:
                writer.abort()
                raise
            writer.commit()
            return writer.rows
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop what was staged: nothing reaches the store."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def _new_events(self) -> DataFrame:
        staged = self._spark.read.parquet(str(self._dir / "staged.parquet"))
        parts = event_store.parts(self._settings)
        if parts:
            stored = self._spark.read.parquet(*map(str, parts)).select("event_id")
            staged = staged.join(stored, "event_id", "left_anti")
        first = Window.partitionBy("event_id").orderBy(ORDINAL)
        return (
            staged.withColumn("_copy", F.row_number().over(first))
            .filter(F.col("_copy") == 1)
            .drop("_copy")
            .orderBy(ORDINAL)
            .select(*NORMALIZED_SCHEMA.names, ORDINAL)
        )
