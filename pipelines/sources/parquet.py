"""Parquet files of signals as typed raw records for `normalize`.

The files hold the contract's columns: `event_id`, `user_id`, `ts`, `type` and optionally
`item_id`, `value`, `text`, `context` (a JSON string, a struct or a map). Other columns are
ignored. `normalize` turns each value into its JSON form and applies the same rules as for JSON
lines, so a value of the wrong type (a float user_id, a list as text) is rejected per row with the
usual reason. Two things are rejected for the whole source instead, as a SourceError naming the
column, because every row would fail the same way: a missing required column, and a `ts` column
of naive timestamps (TIMESTAMP without time zone: an instant needs an offset; store UTC with
isAdjustedToUTC=true, or RFC 3339 strings).

`position` is the 0-based row number within its file; `source` is the file's path.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from core.errors import SourceError
from pipelines.signal_rules import FIELDS, REQUIRED_TYPED_COLUMNS
from pipelines.sources.files import source_files


def parquet_files(path: Path) -> list[Path]:
    """The files a path names: itself, the *.parquet files of a directory, or a glob's matches."""
    return source_files(path, "*.parquet")


def read_parquet(con: duckdb.DuckDBPyConnection, path: Path) -> duckdb.DuckDBPyRelation:
    """Typed raw records (source, position and the contract's columns) of Parquet files."""
    files = parquet_files(path)
    try:
        relation = con.read_parquet(
            [str(file) for file in files],
            filename=True,
            file_row_number=True,
            union_by_name=True,
        )
    except duckdb.Error as e:
        raise SourceError(str(path), f"cannot be read as Parquet: {e}") from e
    types = dict(zip(relation.columns, (str(t).upper() for t in relation.types), strict=True))
    missing = [name for name in REQUIRED_TYPED_COLUMNS if name not in types]
    if missing:
        raise SourceError(str(path), f"missing required column(s): {', '.join(missing)}")
    ts_type = types["ts"]
    if ts_type.startswith("TIMESTAMP") and "TIME ZONE" not in ts_type and ts_type != "TIMESTAMPTZ":
        raise SourceError(
            str(path),
            f"column ts is {ts_type} without a time zone; store UTC instants "
            "(TIMESTAMP WITH TIME ZONE) or RFC 3339 strings with an offset",
        )
    if ts_type == "DATE":
        raise SourceError(str(path), "column ts is DATE; a signal needs a time with a UTC offset")
    present = [name for name in FIELDS if name in types]
    columns = ", ".join(f'"{name}"' for name in present)
    return relation.project(f"filename AS source, file_row_number AS position, {columns}")


__all__ = ["parquet_files", "read_parquet"]
