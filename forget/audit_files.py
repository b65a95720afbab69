"""The forget audit in files: Parquet column by column, pickles object by object, the rest as
bytes.

Parquet pages are compressed, so their string-like columns are read and searched as text (and
nested ones as their JSON-like text); numeric and time columns cannot hold either needle. A
pickle may keep strings in numpy's fixed-width arrays or inside fitted models, so it is loaded
and walked (containers, object attributes, arrays and frames), and searched as raw bytes too.
Every other file is searched as bytes in UTF-8, UTF-16 and UTF-32.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from forget.audit_report import Hit, Needles, PlaceReport

_MAX_DEPTH = 64


def scan_files(place: str, files: Iterable[Path], needles: Needles) -> PlaceReport:
    """Every file, by kind (see the module docstring)."""
    return scan_contents(place, ((str(path), path.read_bytes()) for path in files), needles)


def scan_contents(
    place: str, contents: Iterable[tuple[str, bytes]], needles: Needles
) -> PlaceReport:
    """Files given as (name, content), by the kind their name says (a database's files)."""
    report = PlaceReport(place, "files")
    for name, data in contents:
        report.scanned += 1
        suffix = Path(name.partition("~")[0]).suffix  # a cached copy is <name>~<revision>
        if suffix == ".parquet":
            _scan_parquet(name, data, needles, report)
        elif suffix in (".pkl", ".pickle"):
            _scan_pickle(name, data, needles, report)
        report.check_bytes(name, data, needles)
    return report


def files_under(directory: Path, *, leaving: Iterable[Path] = ()) -> list[Path]:
    """Every file below `directory`, but not below the directories in `leaving`."""
    if not directory.is_dir():
        return []
    excluded = [path.resolve() for path in leaving]
    return sorted(
        path
        for path in directory.rglob("*")
        if path.is_file() and not any(path.resolve().is_relative_to(e) for e in excluded)
    )


def _scan_parquet(path: str, data: bytes, needles: Needles, report: PlaceReport) -> None:
    file = pq.ParquetFile(pa.BufferReader(data))
    metadata = file.schema_arrow.metadata or {}
    for key, value in metadata.items():
        report.check_bytes(f"{path} metadata {key!r}", key + value, needles)
    table = file.read()
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        where = f"{path} column {name}"
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            for needle_name, needle in needles.named():
                if pc.any(pc.match_substring(column, needle)).as_py():
                    report.hits.append(Hit(report.place, where, needle_name))
        elif pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            for value in column.to_pylist():
                if value is not None:
                    report.check_bytes(where, value, needles)
        elif pa.types.is_nested(column.type):
            for value in column.to_pylist():
                report.check_text(where, str(value), needles)


def _scan_pickle(path: str, data: bytes, needles: Needles, report: PlaceReport) -> None:
    loaded = pickle.loads(data)  # Engram's own files (the registry): trusted
    for where, text in _strings(loaded, "", set(), 0):
        report.check_text(f"{path} {where or '/'}", text, needles)


def _strings(obj: Any, where: str, seen: set[int], depth: int) -> Iterator[tuple[str, str]]:
    """(path, string) of every string an object graph holds."""
    if isinstance(obj, str):
        yield where, obj
        return
    if isinstance(obj, bytes | bytearray):
        yield where, bytes(obj).decode("utf-8", "replace")
        return
    if obj is None or isinstance(obj, int | float | complex | bool) or depth > _MAX_DEPTH:
        return
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "USO":
            for j, value in enumerate(obj.ravel()):
                yield from _strings(value, f"{where}[{j}]", seen, depth + 1)
        return
    if isinstance(obj, pd.DataFrame):
        yield from _strings(obj.columns.to_numpy(), f"{where}.columns", seen, depth + 1)
        yield from _strings(obj.index.to_numpy(), f"{where}.index", seen, depth + 1)
        for name in obj.columns:
            yield from _strings(obj[name].to_numpy(), f"{where}[{name!r}]", seen, depth + 1)
        return
    if isinstance(obj, pd.Series | pd.Index):
        if isinstance(obj, pd.Series):
            yield from _strings(obj.index.to_numpy(), f"{where}.index", seen, depth + 1)
        yield from _strings(obj.to_numpy(), where, seen, depth + 1)
        return
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _strings(key, f"{where}.key", seen, depth + 1)
            yield from _strings(value, f"{where}[{key!r}]", seen, depth + 1)
        return
    if isinstance(obj, list | tuple | set | frozenset):
        for j, value in enumerate(obj):
            yield from _strings(value, f"{where}[{j}]", seen, depth + 1)
        return
    attributes = getattr(obj, "__dict__", None)
    if isinstance(attributes, dict):
        yield from _strings(attributes, f"{where}.{type(obj).__name__}", seen, depth + 1)
    for slot in getattr(type(obj), "__slots__", ()):
        if hasattr(obj, slot):
            yield from _strings(getattr(obj, slot), f"{where}.{slot}", seen, depth + 1)
