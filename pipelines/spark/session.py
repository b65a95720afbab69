"""The Spark session of the batch job, configured from settings and kept small."""

from __future__ import annotations

import os

from pyspark.sql import SparkSession

from core.settings import Settings


def spark_session(settings: Settings) -> SparkSession:
    """The process's Spark session (created on first use, then reused): UTC, no UI, few
    partitions. Spark keeps its shuffle files in the system's temporary directory: the session
    outlives any one ENGRAM_HOME."""
    # Local mode binds the driver to the loopback address, never to the machine's network.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    session = (
        SparkSession.builder.master(settings.spark_master)
        .appName("engram-ingest")
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", str(settings.spark_shuffle_partitions))
        .config("spark.default.parallelism", str(settings.spark_shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.sql.adaptive.enabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session
