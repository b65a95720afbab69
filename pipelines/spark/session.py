"""The Spark session of the batch job, configured from settings and kept small."""

from __future__ import annotations

import os

import psutil
from pyspark.sql import SparkSession

from core.settings import Settings


def spark_session(settings: Settings) -> SparkSession:
    """The process's Spark session (created on first use, then reused): UTC, no UI, few
    partitions. Spark keeps its shuffle files in the system's temporary directory: the session
    outlives any one ENGRAM_HOME."""
    # Local mode binds the driver to the loopback address, never to the machine's network.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (
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
    )
    for key, value in settings.spark_conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def jvm_cpu_seconds(spark: SparkSession) -> float:
    """CPU seconds (user + sys) of the session's JVM so far, when this process launched it."""
    process = getattr(spark.sparkContext._gateway, "proc", None)
    if process is None:
        return 0.0
    times = psutil.Process(process.pid).cpu_times()
    return float(times.user + times.system + times.children_user + times.children_system)


def stop_spark(spark: SparkSession) -> None:
    """Stop the session and its JVM (the next session starts a new one)."""
    from pyspark import SparkContext

    spark.stop()
    gateway = SparkContext._gateway
    if gateway is None:
        return
    process = getattr(gateway, "proc", None)
    gateway.shutdown()
    if process is not None:
        process.terminate()
        process.wait(timeout=30)
    SparkContext._gateway = None
    SparkContext._jvm = None
