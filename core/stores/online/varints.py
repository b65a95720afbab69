"""Protobuf varints and byte matrices: columns of encoded values as one padded row per value
plus a length per row, so bulk paths frame and cut them without a Python object per value."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_SHIFTS = np.arange(0, 70, 7, dtype=np.uint64)
# Below this many values numpy's fixed cost per call outweighs decoding one value at a time.
VECTOR_MIN = 32


def varints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Protobuf varints of int64 values as a (n, 10) byte matrix and the length of each."""
    # A negative number is the varint of its two's complement (10 bytes), as protobuf does.
    rest = values.astype(np.int64).view(np.uint64)
    out = np.zeros((len(rest), 10), np.uint8)
    lengths = np.ones(len(rest), np.int64)
    for i in range(10):
        low = (rest & np.uint64(0x7F)).astype(np.uint8)
        rest = rest >> np.uint64(7)
        more = rest != 0
        out[:, i] = low | (more.astype(np.uint8) << 7)
        if not more.any():
            break
        lengths += more
    return out, lengths


def decode_varints(raws: list[bytes], tag: int) -> np.ndarray | None:
    """int64 values of tag-plus-varint protos, or None when any is not exactly that."""
    padded = b"".join(raw.ljust(11, b"\0") for raw in raws)
    if len(padded) != 11 * len(raws):
        return None
    rows = np.frombuffer(padded, np.uint8).reshape(len(raws), 11)
    body = rows[:, 1:].astype(np.uint64)
    last = np.argmax(body < 0x80, axis=1)  # the first byte without a continuation bit
    lengths = np.fromiter(map(len, raws), np.int64, len(raws))
    if not bool((rows[:, 0] == tag).all()) or not bool((lengths == last + 2).all()):
        return None
    kept = np.where(np.arange(10) <= last[:, None], body & np.uint64(0x7F), np.uint64(0))
    return np.bitwise_or.reduce(kept << _SHIFTS, axis=1).view(np.int64)


def _varint_slow(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


_SMALL_VARINTS = [_varint_slow(n) for n in range(1 << 14)]


def varint_bytes(n: int) -> bytes:
    """Varint of a non-negative length (table lookup for anything up to two bytes)."""
    return _SMALL_VARINTS[n] if n < 16384 else _varint_slow(n)


def _kept(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """All parts side by side, and which of their bytes each row keeps."""
    matrix = np.concatenate([m for m, _ in parts], axis=1)
    mask = np.concatenate(
        [np.arange(m.shape[1]) < lengths[:, None] for m, lengths in parts], axis=1
    )
    return matrix, mask


def concat_rows(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise concatenation of byte matrices, each row keeping only its first `length` bytes."""
    matrix, mask = _kept(parts)
    lengths = mask.sum(axis=1)
    out = np.zeros_like(matrix)
    # Boolean masks walk rows in order, so kept bytes land left-aligned in each row.
    out[np.arange(matrix.shape[1]) < lengths[:, None]] = matrix[mask]
    return out, lengths


def concat_to_list(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[bytes]:
    """Row-wise concatenation of byte matrices straight to one bytes object per row."""
    matrix, mask = _kept(parts)
    flat = matrix[mask].tobytes()
    ends = np.cumsum(mask.sum(axis=1)).tolist()
    return [flat[start:end] for start, end in zip([0, *ends[:-1]], ends, strict=True)]


def matrix_to_list(matrix: np.ndarray, lengths: np.ndarray) -> list[bytes]:
    """One bytes object per row of a byte matrix, cut to its length."""
    width = matrix.shape[1]
    flat = matrix.tobytes()
    return [flat[i * width : i * width + n] for i, n in enumerate(lengths.tolist())]


def constant(value: bytes, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The same bytes on n rows, as a (read-only) byte matrix and lengths."""
    row = np.frombuffer(value, np.uint8)
    return np.broadcast_to(row, (n, len(row))), np.full(n, len(row), np.int64)
