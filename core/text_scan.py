"""Find a text in files as stored on disk, compressed blocks included.

A plain byte search misses text that a store compressed: Milvus writes its binlogs as Parquet
with zstd pages, RocksDB (Milvus's message log) compresses its deeper levels with zstd, and
Redis compresses strings over 20 bytes in RDB files with LZF (an AOF's base file is RDB unless
`aof-use-rdb-preamble no`). So besides the plain bytes, every zstd frame in a file and every
LZF string of an RDB file is decompressed and searched too. Text is searched as UTF-8; a store
that escapes it (JSON's \\uXXXX) needs the escaped form as a needle as well.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_RDB_MAGIC = b"REDIS"
_LZF_STRING = 0xC3  # RDB_ENCVAL << 6 | RDB_ENC_LZF


@dataclass(frozen=True)
class TextHit:
    """One needle found in one file: as plain bytes, or inside a compressed block at `offset`."""

    path: Path
    needle: str
    encoding: str  # "plain", "zstd" or "lzf"
    offset: int


def find_text(root: Path, needles: Sequence[str]) -> list[TextHit]:
    """Every place under `root` (a file or a directory) that holds one of `needles`, plain or
    inside a compressed block; files removed while the scan runs are skipped."""
    wanted = [(needle, needle.encode()) for needle in needles]
    hits: list[TextHit] = []
    for path in _files(root):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue  # a store removed it while the scan ran
        for encoding, offset, content in _contents(data):
            hits.extend(
                TextHit(path, needle, encoding, offset) for needle, raw in wanted if raw in content
            )
    return hits


def _files(root: Path) -> Iterator[Path]:
    if not root.is_dir():
        yield root
        return
    # os.walk skips directories that vanish during the walk (Milvus's gc removes them).
    for directory, _, names in os.walk(root):
        for name in sorted(names):
            path = Path(directory) / name
            if not path.is_symlink():  # log symlinks point at files scanned anyway
                yield path


def _contents(data: bytes) -> Iterator[tuple[str, int, bytes]]:
    yield "plain", 0, data
    start = data.find(_ZSTD_MAGIC)
    while start >= 0:
        end = _zstd_frame_end(data, start)
        if end is not None:
            content = _unzstd(data[start:end])
            if content is not None:
                yield "zstd", start, content
        start = data.find(_ZSTD_MAGIC, start + 1)
    if data.startswith(_RDB_MAGIC):
        start = data.find(bytes([_LZF_STRING]))
        while start >= 0:
            content = _rdb_lzf(data, start)
            if content is not None:
                yield "lzf", start, content
            start = data.find(bytes([_LZF_STRING]), start + 1)


def _zstd_frame_end(data: bytes, start: int) -> int | None:
    """Where the zstd frame at `start` ends (RFC 8878 section 3.1.1), or None if it is not one."""
    pos = start + 4
    if pos >= len(data):
        return None
    descriptor = data[pos]
    pos += 1
    if descriptor & 0x08:  # reserved bit
        return None
    single_segment = (descriptor >> 5) & 1
    pos += 0 if single_segment else 1
    pos += (0, 1, 2, 4)[descriptor & 3]
    pos += (single_segment, 2, 4, 8)[descriptor >> 6]
    while pos + 3 <= len(data):
        header = int.from_bytes(data[pos : pos + 3], "little")
        pos += 3
        kind, size = (header >> 1) & 3, header >> 3
        if kind == 3 or size > 1 << 17:
            return None
        pos += 1 if kind == 1 else size
        if header & 1:
            pos += 4 if descriptor & 0x04 else 0
            return pos if pos <= len(data) else None
    return None


def _unzstd(frame: bytes) -> bytes | None:
    import pyarrow as pa

    try:
        with pa.CompressedInputStream(pa.py_buffer(frame), "zstd") as stream:
            return bytes(stream.read())
    except (pa.ArrowException, OSError):
        return None


def _rdb_length(data: bytes, pos: int) -> tuple[int, int] | None:
    if pos >= len(data):
        return None
    first = data[pos]
    kind = first >> 6
    if kind == 0:
        return first & 0x3F, pos + 1
    if kind == 1 and pos + 2 <= len(data):
        return (first & 0x3F) << 8 | data[pos + 1], pos + 2
    if first == 0x80 and pos + 5 <= len(data):
        return int.from_bytes(data[pos + 1 : pos + 5], "big"), pos + 5
    if first == 0x81 and pos + 9 <= len(data):
        return int.from_bytes(data[pos + 1 : pos + 9], "big"), pos + 9
    return None


def _rdb_lzf(data: bytes, start: int) -> bytes | None:
    """The string of the LZF-compressed RDB string object at `start`, or None if it is not one."""
    packed = _rdb_length(data, start + 1)
    if packed is None:
        return None
    packed_len, pos = packed
    plain = _rdb_length(data, pos)
    if plain is None:
        return None
    plain_len, pos = plain
    if not 0 < packed_len <= len(data) - pos or plain_len < packed_len:
        return None
    return _lzf(data[pos : pos + packed_len], plain_len)


def _lzf(data: bytes, size: int) -> bytes | None:
    """LZF decompression (liblzf's lzf_d.c): None when `data` is not `size` bytes of LZF."""
    out = bytearray()
    pos = 0
    while pos < len(data):
        control = data[pos]
        pos += 1
        if control < 32:  # a literal run
            run = data[pos : pos + control + 1]
            if len(run) != control + 1:
                return None
            out += run
            pos += control + 1
        else:  # a back reference
            length = control >> 5
            if length == 7:
                if pos >= len(data):
                    return None
                length += data[pos]
                pos += 1
            if pos >= len(data):
                return None
            ref = len(out) - ((control & 0x1F) << 8) - data[pos] - 1
            pos += 1
            if ref < 0:
                return None
            for index in range(ref, ref + length + 2):
                out.append(out[index])
        if len(out) > size:
            return None
    return bytes(out) if len(out) == size else None
