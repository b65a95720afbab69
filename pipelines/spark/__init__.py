"""The batch job on Apache Spark (`engram ingest --engine spark`): deduplication, enrichment and
the feature snapshots as Spark DataFrames, the same rules as the embedded DuckDB engine.

Imported only when that engine is asked for, so the DuckDB path never loads pyspark or a JVM.
"""
