"""The user in the offline feature snapshots: rows keyed by user_id, dropped file by file."""

from __future__ import annotations

import os
import uuid

import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.settings import Settings
from pipelines import incremental


def forget_feature_rows(settings: Settings, user_id: str) -> int:
    """Drop the user's rows from every offline feature snapshot keyed by user_id (each file
    replaced atomically), and the incremental aggregation's state (which holds the user's
    signals and totals: the next ingest recomputes every feature); returns the rows dropped."""
    incremental.clear(settings)
    removed = 0
    directory = settings.offline_dir / "features"
    for path in sorted(directory.rglob("*.parquet")) if directory.is_dir() else []:
        if not path.is_file() or "user_id" not in pq.read_schema(path).names:
            continue
        table = pq.read_table(path)
        mine = pc.fill_null(pc.equal(table.column("user_id"), user_id), False)
        count = pc.sum(pc.cast(mine, "int64")).as_py() or 0
        if not count:
            continue
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            pq.write_table(table.filter(pc.invert(mine)), temporary, compression="zstd")
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        removed += count
    return removed
