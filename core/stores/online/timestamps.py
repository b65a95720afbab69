"""Event times in Feast's `_ts:view` fields: Timestamp protos, encoded and decoded in bulk.

Epoch microseconds go through core/times.py (the project's one definition); reading a stamp as
float seconds keeps Feast's own arithmetic (online_stores/redis.py), so decoded times equal
what `get_online_features` returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
from google.protobuf.timestamp_pb2 import Timestamp

from core.errors import InvalidInputError
from core.stores.online.varints import VECTOR_MIN, concat_rows, constant, decode_varints, varints
from core.times import epoch_micros, join_epoch_micros, split_epoch_micros


def encode_event_timestamps(micros: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`_ts:` values (Timestamp protos) of epoch microseconds, as a byte matrix and lengths."""
    # Feast goes through datetime (Timestamp.FromDatetime), so it keeps microseconds at most.
    seconds, rest = split_epoch_micros(micros.astype(np.int64))
    nanos = rest * 1000
    n = len(seconds)
    sec_bytes, sec_len = varints(seconds)
    nano_bytes, nano_len = varints(nanos)
    # proto3 leaves a zero field out.
    has_sec, has_nano = (seconds != 0).astype(np.int64), (nanos != 0).astype(np.int64)
    return concat_rows(
        [
            (constant(b"\x08", n)[0], has_sec),
            (sec_bytes, sec_len * has_sec),
            (constant(b"\x10", n)[0], has_nano),
            (nano_bytes, nano_len * has_nano),
        ]
    )


def encode_event_timestamp(ts: datetime) -> bytes:
    """The `_ts:` value of one event time (a naive datetime is UTC, as in Feast)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    micros = epoch_micros(ts)
    matrix, lengths = encode_event_timestamps(np.array([micros], np.int64))
    return matrix[0, : lengths[0]].tobytes()


def event_micros(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Epoch microseconds (int64) of an Arrow timestamp column of event times, none missing."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not pa.types.is_timestamp(array.type):
        raise InvalidInputError("timestamp", f"event times must be timestamps, got {array.type}")
    if array.null_count:
        raise InvalidInputError("timestamp", "a row has no event time")
    return array.cast(pa.timestamp("us", tz=array.type.tz)).cast(pa.int64()).to_numpy()


def stamps_micros(raws: Sequence[bytes | None], missing: int) -> np.ndarray:
    """Epoch microseconds (int64, exact: Feast writes no finer) of stored `_ts:` values, `missing`
    where None; in one pass when every stamp holds whole seconds, else stamp by stamp."""
    out = np.full(len(raws), missing, np.int64)
    present = [i for i, raw in enumerate(raws) if raw is not None]
    if not present:
        return out
    stored = [raw for raw in raws if raw is not None]
    whole = decode_varints(stored, 0x08) if len(stored) >= VECTOR_MIN else None
    if whole is not None:
        out[present] = join_epoch_micros(whole)
        return out
    parse = Timestamp.FromString
    seconds, nanos = [], []
    for raw in stored:
        stamp = parse(raw)
        seconds.append(stamp.seconds)
        nanos.append(stamp.nanos)
    out[present] = join_epoch_micros(np.array(seconds, np.int64), np.array(nanos, np.int64) // 1000)
    return out


def stamp_seconds(raw: bytes) -> float:
    """Epoch seconds of one stored `_ts:` value, as Feast's online read computes them."""
    ts = Timestamp.FromString(raw)
    return ts.seconds + ts.nanos / 1e9


def decode_event_timestamp(raw: bytes | None) -> datetime | None:
    """The event time in a `_ts:` field; None when the view has no row for the entity."""
    if raw is None:
        return None
    return datetime.fromtimestamp(stamp_seconds(raw), tz=UTC)


def decode_event_seconds(raws: Sequence[bytes | None]) -> np.ndarray:
    """Epoch seconds (float64) of `_ts:` fields, NaN where None: `decode_event_timestamp` for a
    column, in one pass when every stamp holds whole seconds (as snapshots written at a cutoff
    do), else stamp by stamp."""
    out = np.full(len(raws), np.nan)
    present = [i for i, raw in enumerate(raws) if raw is not None]
    stored = [raw for raw in raws if raw is not None]
    whole = decode_varints(stored, 0x08) if len(stored) >= VECTOR_MIN else None
    if whole is not None:
        out[present] = whole.astype(np.float64)
        return out
    for i, raw in zip(present, stored, strict=True):
        out[i] = stamp_seconds(raw)
    return out
