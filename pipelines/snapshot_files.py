"""The feature snapshots on disk: each is a directory named like a Parquet file
(`user_features.parquet/`), holding one file of day rows per 7 UTC days
(`days-2026-10-29.parquet`, named by its first day) and one of the rows at the last run's as_of
(`as_of.parquet`).

DuckDB, pyarrow, pandas and Feast's file source read such a directory as one table, so readers
name it as they would a file. The split is what lets an incremental ingest rewrite only what
changed: the as_of rows (every entity's, each run) and the weeks from its earliest new signal on.
"""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.timelines import MICROS_PER_DAY

AS_OF_FILE = "as_of.parquet"
_DAY_PREFIX = "days-"
_DAYS_PER_FILE = 7  # fewer files than one per day; an incremental run rewrites up to a week


def _day_name(week: int) -> str:
    first = datetime.fromtimestamp(week * _DAYS_PER_FILE * 86_400, UTC)
    return f"{_DAY_PREFIX}{first:%Y-%m-%d}.parquet"


def _micros(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def as_of_rows(table: pa.Table, last_column: str) -> np.ndarray:
    """Which rows are as_of rows: stamped later than the entity's last signal."""
    return _micros(table.column("event_timestamp")) > _micros(table.column(last_column))


def _write(table: pa.Table, path: Path) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        # zstd level 1: a third less CPU than the default level for files ~6% larger.
        pq.write_table(table, temporary, compression="zstd", compression_level=1)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _sorted(table: pa.Table, key: str) -> pa.Table:
    return table.sort_by([(key, "ascending"), ("event_timestamp", "ascending")])


def _by_day(table: pa.Table) -> dict[int, pa.Table]:
    if table.num_rows == 0:  # no item at all (an input of messages only), say
        return {}
    days = _micros(table.column("event_timestamp")) // (MICROS_PER_DAY * _DAYS_PER_FILE)
    order = np.argsort(days, kind="stable")
    days = days[order]
    table = table.take(pa.array(order))
    bounds = np.flatnonzero(np.diff(days)) + 1
    starts = np.concatenate([[0], bounds]).astype(np.int64)
    ends = np.concatenate([bounds, [len(days)]]).astype(np.int64)
    return {int(days[s]): table.slice(s, e - s) for s, e in zip(starts, ends, strict=True)}


def write_all(table: pa.Table, directory: Path, key: str, last_column: str) -> int:
    """Replace the snapshot at `directory` (a file of the old layout too) with `table`."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    fresh = directory.with_name(f".{directory.name}.{uuid.uuid4().hex[:8]}.tmp")
    fresh.mkdir()
    try:
        at_as_of = as_of_rows(table, last_column)
        _write(_sorted(table.filter(pa.array(at_as_of)), key), fresh / AS_OF_FILE)
        for day, rows in _by_day(table.filter(pa.array(~at_as_of))).items():
            _write(_sorted(rows, key), fresh / _day_name(day))
        old = directory.with_name(f".{directory.name}.{uuid.uuid4().hex[:8]}.old")
        if directory.exists():
            directory.rename(old)
        fresh.rename(directory)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    if old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)
    return table.num_rows


def read_as_of(directory: Path) -> pa.Table | None:
    """The as_of rows of the snapshot (None when it has no such file)."""
    path = directory / AS_OF_FILE
    return pq.read_table(path) if path.is_file() else None


def replace_from(
    directory: Path,
    key: str,
    cuts: pa.Table,
    day_rows: pa.Table,
    as_of: pa.Table,
) -> None:
    """Replace each entity of `cuts` (`key`, `cut` in epoch microseconds, a UTC midnight)'s
    day rows from its cut on by `day_rows`, and every as_of row by `as_of`."""
    new_by_day = _by_day(day_rows) if day_rows.num_rows else {}
    first_day = None
    if cuts.num_rows:
        first_day = int(pc.min(cuts.column("cut")).as_py()) // (MICROS_PER_DAY * _DAYS_PER_FILE)
    days = set(new_by_day)
    if first_day is not None:
        for path in directory.glob(f"{_DAY_PREFIX}*.parquet"):
            day = _file_day(path)
            if day >= first_day:
                days.add(day)
    for day in sorted(days):
        path = directory / _day_name(day)
        parts = []
        if path.is_file():
            old = pq.read_table(path)
            parts.append(old.filter(pa.array(~replaced_rows(old, key, cuts))))
        if day in new_by_day:
            parts.append(new_by_day[day].cast(parts[0].schema if parts else day_rows.schema))
        merged = pa.concat_tables(parts)
        if merged.num_rows:
            _write(_sorted(merged, key), path)
        else:
            path.unlink(missing_ok=True)
    _write(_sorted(as_of, key), directory / AS_OF_FILE)


def _file_day(path: Path) -> int:
    stamp = datetime.strptime(path.stem[len(_DAY_PREFIX) :], "%Y-%m-%d").replace(tzinfo=UTC)
    return int(stamp.timestamp()) // (86_400 * _DAYS_PER_FILE)


def replaced_rows(rows: pa.Table, key: str, cuts: pa.Table) -> np.ndarray:
    """Per row: whether its entity has a cut at or before the row's time."""
    at = pc.index_in(rows.column(key), value_set=cuts.column(key).combine_chunks())
    found = np.asarray(pc.fill_null(at, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
    cut = np.append(np.asarray(cuts.column("cut").to_numpy(), dtype=np.int64), 0)[found]
    return (found >= 0) & (_micros(rows.column("event_timestamp")) >= cut)


def total_rows(directory: Path) -> int:
    """Rows of the snapshot, from the files' footers."""
    if directory.is_file():
        return pq.read_metadata(directory).num_rows
    if not directory.is_dir():
        return 0
    return sum(pq.read_metadata(path).num_rows for path in directory.glob("*.parquet"))
