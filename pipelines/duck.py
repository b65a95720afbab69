"""The DuckDB connection every pipeline step shares, configured from settings."""

from __future__ import annotations

import duckdb

from core.settings import Settings


def connect(settings: Settings) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB bounded by the settings' threads and memory, spilling to ENGRAM_HOME."""
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(
        config={
            "threads": settings.duckdb_threads,
            "memory_limit": settings.duckdb_memory_limit,
            "temp_directory": str(settings.tmp_dir),
        }
    )
    # Set after connecting: at connect time DuckDB would try to autoload ICU from the network.
    con.execute("SET TimeZone = 'UTC'")
    # Order is part of the result (dedup keeps the first occurrence), so keep it.
    con.execute("SET preserve_insertion_order = true")
    return con
