"""The item catalog kept beside the event store: one Parquet file, upserted by `item_id`."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from core.contract import CATALOG_SCHEMA
from core.settings import Settings


def catalog_path(settings: Settings) -> Path:
    """Where the catalog lives."""
    return settings.offline_dir / "catalog.parquet"


def load(con: duckdb.DuckDBPyConnection, settings: Settings) -> duckdb.DuckDBPyRelation:
    """The stored catalog (empty, with the catalog's columns, when there is none)."""
    path = catalog_path(settings)
    if not path.exists():
        return con.from_arrow(CATALOG_SCHEMA.empty_table())
    return con.read_parquet(str(path))


def upsert(con: duckdb.DuckDBPyConnection, settings: Settings, items: pa.Table) -> int:
    """Merge `items` into the catalog (a newer row replaces an item's older one); returns size."""
    con.register("_incoming", items.select(CATALOG_SCHEMA.names).cast(CATALOG_SCHEMA))
    con.register("_stored", load(con, settings))
    merged = (
        con.sql(
            """
            SELECT * FROM _incoming
            UNION ALL BY NAME
            SELECT * FROM _stored s WHERE s.item_id NOT IN (SELECT item_id FROM _incoming)
            ORDER BY item_id
            """
        )
        .to_arrow_table()
        .select(CATALOG_SCHEMA.names)
        .cast(CATALOG_SCHEMA)
    )
    con.unregister("_incoming")
    con.unregister("_stored")
    path = catalog_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    pq.write_table(merged, temporary, compression="zstd")
    temporary.rename(path)
    return merged.num_rows
