"""`_ts:` values are the Timestamp protos Feast writes, and read back as Feast reads them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from core.errors import InvalidInputError
from core.stores.online.timestamps import (
    decode_event_seconds,
    decode_event_timestamp,
    encode_event_timestamp,
    encode_event_timestamps,
    event_micros,
    stamps_micros,
)
from core.stores.online.varints import matrix_to_list


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)))
def test_event_timestamp_is_feasts_timestamp_proto(naive: datetime) -> None:
    expected = Timestamp()
    expected.FromDatetime(naive.replace(tzinfo=UTC))
    raw = encode_event_timestamp(naive)
    assert raw == expected.SerializeToString()
    assert decode_event_timestamp(raw) == naive.replace(tzinfo=UTC)


def _stamp(micros: int) -> bytes:
    return matrix_to_list(*encode_event_timestamps(np.array([micros])))[0]


@given(st.lists(st.one_of(st.none(), st.integers(-(2**35), 2**37)), max_size=80), st.booleans())
def test_event_seconds_of_a_column_equal_one_by_one(seconds: list[int | None], whole: bool) -> None:
    raws = [
        None if s is None else _stamp(s * 1_000_000 + (0 if whole else 250_000)) for s in seconds
    ]
    stamps = [None if r is None else Timestamp.FromString(r) for r in raws]
    expected = [np.nan if t is None else t.seconds + t.nanos / 1e9 for t in stamps]
    np.testing.assert_array_equal(decode_event_seconds(raws), expected)


def test_event_timestamps_drop_nanoseconds_like_feast() -> None:
    micros = np.array([1_700_000_000_123_456, 0, -1], np.int64)
    matrix, lengths = encode_event_timestamps(micros)
    got = matrix_to_list(matrix, lengths)
    expected = []
    for m in micros.tolist():
        ts = Timestamp()
        ts.FromDatetime(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=m))
        expected.append(ts.SerializeToString())
    assert got == expected


@given(st.lists(st.integers(-(2**50), 2**50), min_size=1, max_size=40), st.booleans())
def test_stored_stamps_read_back_as_the_micros_written(micros: list[int], whole: bool) -> None:
    if whole:
        micros = [m // 10**6 * 10**6 for m in micros] * 32  # whole seconds, 32+: one pass
    column = pa.array(micros, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    assert event_micros(column).tolist() == micros
    raws = [_stamp(m) for m in micros]
    assert stamps_micros([*raws, None], -1).tolist() == [*micros, -1]
    assert stamps_micros([None, None], 7).tolist() == [7, 7]


def test_event_times_must_be_present_timestamps() -> None:
    with pytest.raises(InvalidInputError, match="timestamps"):
        event_micros(pa.array([1, 2]))
    with pytest.raises(InvalidInputError, match="no event time"):
        event_micros(pa.array([None], pa.timestamp("us", tz="UTC")))
