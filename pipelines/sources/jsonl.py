"""JSON Lines files as raw records: one row per non-blank line, malformed lines included.

DuckDB's read_json drops a malformed line under ignore_errors (and fails the file without it),
and its CSV reader chokes on quotes and control bytes, so lines are cut here instead: the file
is read in blocks, newlines found with numpy and each block handed over as one Arrow batch that
shares the block's memory. Parsing and validation happen later, in `normalize`.

- `position` is the 0-based line index in its file (line number - 1, the same convention as a
  list's index and Parquet row numbers). Blank lines (empty or ASCII whitespace only) are skipped:
  they are not records and are not counted as read, but they keep their place in the numbering.
- The line terminator (LF or CRLF) is not part of `raw`; a UTF-8 byte order mark at the start of
  a file is dropped.
- A line that is not valid UTF-8 is still a row: `raw` holds it decoded with U+FFFD in place of
  the bad bytes and `error` says where the first bad byte is, so normalize rejects it on "$".
- `source` is the path of the file the line came from (useful when reading a directory).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.errors import SourceError
from pipelines.sources.files import source_files

RAW_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string()),
        pa.field("position", pa.int64()),
        pa.field("raw", pa.string()),
        pa.field("error", pa.string()),
    ]
)
# Big enough that per-batch overheads vanish, small enough that a block, its newline mask and the
# batch built from it stay well under 100 MB.
BLOCK_BYTES = 16 << 20
_NEWLINE = 0x0A
_BOM = b"\xef\xbb\xbf"
_BLANK_FIRST_BYTES = frozenset(b" \t\r\n\x0b\x0c")


def jsonl_files(path: Path) -> list[Path]:
    """The files a path names: itself, the *.jsonl files of a directory, or a glob's matches."""
    return source_files(path, "*.jsonl")


def read_jsonl(con: duckdb.DuckDBPyConnection, path: Path) -> duckdb.DuckDBPyRelation:
    """Raw records (source, position, raw, error) of a file, a directory of *.jsonl or a glob.

    The relation streams the files, so it can be scanned once; `normalize` scans it once.
    """
    files = jsonl_files(path)
    for file in files:
        try:
            with file.open("rb"):
                pass
        except OSError as e:
            raise SourceError(str(file), f"cannot be read: {e.strerror or e}") from e
    reader = pa.RecordBatchReader.from_batches(RAW_SCHEMA, _batches(files))
    return con.from_arrow(reader)


def read_jsonl_table(path: Path) -> pa.Table:
    """The same raw records as `read_jsonl`, read whole into memory (for small inputs and tests)."""
    return pa.Table.from_batches(list(_batches(jsonl_files(path))), RAW_SCHEMA)


def _batches(files: list[Path]) -> Iterator[pa.RecordBatch]:
    for file in files:
        yield from _file_batches(file)


def _file_batches(file: Path) -> Iterator[pa.RecordBatch]:
    source = str(file)
    first_line = 0
    carry = b""
    try:
        with file.open("rb") as stream:
            while True:
                # A fresh buffer per block: the batch made from it shares its memory.
                data = bytearray(len(carry) + BLOCK_BYTES)
                data[: len(carry)] = carry
                size = len(carry) + stream.readinto(memoryview(data)[len(carry) :])
                skip = len(_BOM) if first_line == 0 and data.startswith(_BOM) else 0
                view = memoryview(data)[skip:size]
                if size == len(carry):  # end of file
                    if view:
                        batch, _ = _lines_batch(source, first_line, bytes(view) + b"\n")
                        if batch.num_rows:
                            yield batch
                    return
                cut = data.rfind(b"\n", skip, size) + 1 - skip
                if cut <= 0:  # a line longer than a block: keep reading until it ends
                    carry = bytes(view)
                    continue
                carry = bytes(view[cut:])
                batch, lines = _lines_batch(source, first_line, view[:cut])
                first_line += lines
                if batch.num_rows:
                    yield batch
    except OSError as e:
        raise SourceError(source, f"cannot be read: {e.strerror or e}") from e


def _lines_batch(
    source: str, first_line: int, body: bytes | memoryview
) -> tuple[pa.RecordBatch, int]:
    """The lines of `body` (which ends with a newline) as a batch without blank lines; and the
    number of lines, blank ones included."""
    view = np.frombuffer(body, np.uint8)
    ends = np.flatnonzero(view == _NEWLINE)
    count = len(ends)
    offsets = np.empty(count + 1, np.int32)
    offsets[0] = 0
    offsets[1:] = ends + 1
    lines = pa.StringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(body))
    error: pa.Array = pa.nulls(count, pa.string())
    try:
        lines.validate(full=True)
    except pa.ArrowInvalid:
        lines, error = _decode_lines(body, offsets)
    raw = pc.utf8_rtrim(lines, characters="\r\n")
    positions = pa.array(np.arange(first_line, first_line + count, dtype=np.int64))
    sources = pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(count, np.int32)), pa.array([source])
    ).cast(pa.string())
    batch = pa.RecordBatch.from_arrays([sources, positions, raw, error], schema=RAW_SCHEMA)
    keep = _not_blank(body, view, offsets)
    return (batch if keep is None else batch.filter(pa.array(keep))), count


def _not_blank(
    body: bytes | memoryview, view: np.ndarray, offsets: np.ndarray
) -> np.ndarray | None:
    """Mask of the lines that are not blank, or None when none is (the usual case)."""
    starts = offsets[:-1]
    # A blank line starts with whitespace; only those few lines are looked at one by one.
    maybe_blank = np.flatnonzero(np.isin(view[starts], list(_BLANK_FIRST_BYTES)))
    if len(maybe_blank) == 0:
        return None
    keep = np.ones(len(starts), dtype=bool)
    for index in maybe_blank.tolist():
        if not bytes(body[offsets[index] : offsets[index + 1]]).strip():
            keep[index] = False
    return None if keep.all() else keep


def _decode_lines(body: bytes | memoryview, offsets: np.ndarray) -> tuple[pa.Array, pa.Array]:
    """Lines decoded one by one, bad bytes replaced, with a reason for each line that had any."""
    texts: list[str] = []
    errors: list[str | None] = []
    for start, end in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True):
        chunk = bytes(body[start:end])
        try:
            texts.append(chunk.decode("utf-8"))
            errors.append(None)
        except UnicodeDecodeError as e:
            texts.append(chunk.decode("utf-8", errors="replace"))
            errors.append(
                f"line is not valid UTF-8 (byte 0x{chunk[e.start]:02x} at byte {e.start + 1})"
            )
    return pa.array(texts, pa.string()), pa.array(errors, pa.string())


__all__ = ["RAW_SCHEMA", "jsonl_files", "read_jsonl", "read_jsonl_table"]
