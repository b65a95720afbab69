"""Enrichment on Spark: the rules of `pipelines/enrich.py` (catalog join, sessions, UTC calendar
fields, weights) as DataFrame operations; the weight is the same SQL expression."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from core.contract import NORMALIZED_SCHEMA
from core.errors import InvalidInputError
from pipelines.enrich import weight_sql

_CATALOG_COLUMNS = ["item_id", "title", "category", "genres"]
_EMPTY_CATALOG = T.StructType(
    [
        T.StructField("item_id", T.StringType()),
        T.StructField("title", T.StringType()),
        T.StructField("category", T.StringType()),
        T.StructField("genres", T.ArrayType(T.StringType())),
    ]
)


def read_catalog(spark: SparkSession, path: Path) -> DataFrame:
    """The stored catalog (empty when there is none)."""
    if not path.exists():
        return spark.createDataFrame([], _EMPTY_CATALOG)
    return spark.read.parquet(str(path)).select(*_CATALOG_COLUMNS)


def enrich(events: DataFrame, catalog: DataFrame, *, session_gap: timedelta) -> DataFrame:
    """Normalized events with ENRICHED_SCHEMA's columns, as `pipelines.enrich.enrich` gives."""
    if session_gap <= timedelta(0):
        raise InvalidInputError("session_gap", "must be positive")
    gap_us = session_gap // timedelta(microseconds=1)
    # One row per item, the first by title then category (NULLs last), as the DuckDB engine.
    first = Window.partitionBy("item_id").orderBy(
        F.col("title").asc_nulls_last(), F.col("category").asc_nulls_last()
    )
    items = (
        catalog.select(*_CATALOG_COLUMNS)
        .withColumn("_n", F.row_number().over(first))
        .filter(F.col("_n") == 1)
        .drop("_n")
    )
    by_user = Window.partitionBy("user_id").orderBy("ts")
    t = F.unix_micros("ts")
    gap_before = F.coalesce(t - F.lag(t).over(by_user) > gap_us, F.lit(False))
    # The default frame with an order is RANGE up to the current row: ties share a session.
    session = F.sum(F.col("_gap_before").cast("long")).over(by_user)
    return (
        events.select(*NORMALIZED_SCHEMA.names)
        .join(F.broadcast(items), "item_id", "left")
        .withColumn("_gap_before", gap_before)
        .select(
            *NORMALIZED_SCHEMA.names,
            "category",
            "genres",
            "title",
            F.concat(F.col("user_id"), F.lit("#"), session.cast("string")).alias("session"),
            F.hour("ts").cast("tinyint").alias("hour"),
            F.weekday("ts").cast("tinyint").alias("weekday"),  # 0 = Monday
            F.expr(weight_sql()).cast("double").alias("weight"),
        )
    )
