"""Columns encode to the very Value protos Feast writes and decode to what Feast returns
(encode.py, decode.py, and the varints and Value message under them); Feast's functions are the
oracle."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import (
    _non_empty_value,
    feast_value_type_to_python_type,
    python_values_to_proto_values,
)
from feast.value_type import ValueType
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import InvalidInputError
from core.stores.online.decode import decode_column, decode_numeric, decode_value
from core.stores.online.encode import encode_values
from core.stores.online.layout import ValueKind, value_kind
from core.stores.online.value_proto import FIXED_WIDTH_KINDS
from core.stores.online.varints import matrix_to_list, varints

# Feast reads an int64 column with nulls through float64, so keep to exactly representable ints.
SAFE_INTS = st.integers(-(2**53), 2**53)


TIMES = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


def feast_bytes(array: pa.Array, value_type: ValueType) -> list[bytes]:
    """What Feast's materialization stores for this column (utils._columns_to_proto_values)."""
    protos = python_values_to_proto_values(array.to_numpy(zero_copy_only=False), value_type)
    return [p.SerializeToString() for p in protos]


def feast_python(raw: bytes) -> object:
    """What Feast's get_online_features(...).to_dict() returns for a stored value."""
    value = Value()
    if raw:
        value.ParseFromString(raw)
    return feast_value_type_to_python_type(value)


def same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b and type(a) is type(b)


@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=50))
def test_varints_match_protobuf(numbers: list[int]) -> None:
    matrix, lengths = varints(np.array(numbers, np.int64))
    got = matrix_to_list(matrix, lengths)
    assert got == [Value(int64_val=n).SerializeToString()[1:] for n in numbers]


COLUMNS = {
    ValueType.INT64: (pa.int64(), st.one_of(SAFE_INTS, st.sampled_from([-(2**53), 2**53 - 1]))),
    ValueType.INT32: (pa.int32(), st.integers(-(2**31), 2**31 - 1)),
    ValueType.DOUBLE: (pa.float64(), st.floats(allow_nan=True, allow_infinity=True)),
    ValueType.FLOAT: (pa.float32(), st.floats(width=32, allow_nan=False)),
    ValueType.BOOL: (pa.bool_(), st.booleans()),
    ValueType.STRING: (pa.string(), st.text(max_size=20)),
    ValueType.BYTES: (pa.binary(), st.binary(max_size=20)),
    ValueType.UNIX_TIMESTAMP: (pa.timestamp("us", tz="UTC"), TIMES),
    ValueType.STRING_LIST: (pa.list_(pa.string()), st.lists(st.text(max_size=8), max_size=5)),
    ValueType.FLOAT_LIST: (
        pa.list_(pa.float32()),
        st.lists(st.floats(width=32, allow_nan=False), max_size=8),
    ),
    ValueType.DOUBLE_LIST: (pa.list_(pa.float64()), st.lists(st.floats(), max_size=8)),
    ValueType.INT64_LIST: (pa.list_(pa.int64()), st.lists(SAFE_INTS, max_size=5)),
    ValueType.BOOL_LIST: (pa.list_(pa.bool_()), st.lists(st.booleans(), max_size=5)),
    ValueType.INT32_LIST: (pa.list_(pa.int32()), st.lists(st.integers(-5, 2**31 - 1), max_size=5)),
    ValueType.BYTES_LIST: (pa.list_(pa.binary()), st.lists(st.binary(max_size=5), max_size=4)),
    ValueType.UNIX_TIMESTAMP_LIST: (
        pa.list_(pa.timestamp("us", tz="UTC")),
        st.lists(st.one_of(st.none(), TIMES), max_size=4),
    ),
}


@pytest.mark.parametrize("value_type", list(COLUMNS), ids=lambda t: t.name)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_encode_values_writes_feasts_bytes(value_type: ValueType, data: st.DataObject) -> None:
    arrow_type, values = COLUMNS[value_type]
    # Feast writes a column with no non-empty value at all differently (every row null), so
    # each column holds one: that is what a batch of real rows looks like.
    present = data.draw(values.filter(_non_empty_value))
    rest = data.draw(st.lists(st.one_of(st.none(), values), max_size=12))
    array = pa.array([present, *rest], arrow_type)
    kind = value_kind(value_type)
    got = encode_values(array, kind)
    assert got == feast_bytes(array, value_type)
    stored: list[bytes | None] = [*got, None]  # None: a field the hash does not have
    expected = [feast_python(raw or b"") for raw in stored]
    assert same([decode_value(raw) for raw in stored], expected)
    # Short columns decode value by value, long ones in bulk: both must agree with Feast.
    repeats = 40 // len(stored) + 1
    for raws, wanted in ((stored, expected), (stored * repeats, expected * repeats)):
        assert same(decode_column(raws, kind), wanted)
        if kind in FIXED_WIDTH_KINDS:
            numbers = [as_number(v) for v in wanted]
            np.testing.assert_array_equal(decode_numeric(raws, kind), numbers)


def as_number(value: object) -> float:
    """What a numeric matrix holds for a value Feast returns."""
    if value is None:
        return math.nan
    if isinstance(value, datetime):
        return value.timestamp()
    assert isinstance(value, (bool, int, float))
    return float(value)


def test_sliced_and_chunked_columns_encode_like_whole_ones() -> None:
    array = pa.array([[1.0], None, [2.0, 3.0], [], [4.0]], pa.list_(pa.float32()))
    whole = encode_values(array, ValueKind.FLOAT_LIST)
    assert encode_values(array.slice(2), ValueKind.FLOAT_LIST) == whole[2:]
    chunked = pa.chunked_array([array.slice(0, 2), array.slice(2)])
    assert encode_values(chunked, ValueKind.FLOAT_LIST) == whole


def test_null_timestamps_are_stored_as_nat_and_read_as_none() -> None:
    array = pa.array([datetime(2026, 1, 1, tzinfo=UTC), None], pa.timestamp("us", tz="UTC"))
    raws = encode_values(array, ValueKind.UNIX_TIMESTAMP)
    assert raws == feast_bytes(array, ValueType.UNIX_TIMESTAMP)
    assert decode_value(raws[1]) is None
    assert math.isnan(decode_numeric(raws, ValueKind.UNIX_TIMESTAMP)[1])


def test_float_columns_convert_like_feast() -> None:
    ints_as_double = pa.array([1, None, 3], pa.int64())
    assert encode_values(ints_as_double, ValueKind.DOUBLE) == feast_bytes(
        ints_as_double, ValueType.DOUBLE
    )
    doubles_as_int = pa.array([1.9, -1.9, None, float("nan")], pa.float64())
    assert encode_values(doubles_as_int, ValueKind.INT64) == feast_bytes(
        doubles_as_int, ValueType.INT64
    )


@pytest.mark.parametrize(
    ("value_type", "values"),
    [
        (ValueType.DOUBLE, [1.5, None, -0.0, float("inf")]),
        (ValueType.FLOAT, [1.5, None, 2.25]),
        (ValueType.BOOL, [True, None, False]),
        (ValueType.INT64, [5, None, -(2**40)]),
        (ValueType.UNIX_TIMESTAMP, [datetime(2026, 1, 1, tzinfo=UTC), None]),
    ],
    ids=lambda v: getattr(v, "name", ""),
)
def test_decode_numeric_gives_floats_with_nan_for_missing(
    value_type: ValueType, values: list[object]
) -> None:
    arrow_type = COLUMNS[value_type][0]
    raws: list[bytes | None] = [
        *encode_values(pa.array(values, arrow_type), value_kind(value_type))
    ]
    raws.append(None)  # a field Redis does not have
    expected = [as_number(feast_python(raw or b"")) for raw in raws]
    got = decode_numeric(raws, value_kind(value_type))
    np.testing.assert_array_equal(got, np.array(expected))


def test_decoding_survives_a_view_redefined_with_another_type() -> None:
    raws = encode_values(pa.array([7, None] * 20), ValueKind.INT64)
    np.testing.assert_array_equal(
        decode_numeric(raws, ValueKind.DOUBLE), np.array([7.0, np.nan] * 20)
    )
    assert decode_column(raws, ValueKind.DOUBLE) == [7, None] * 20


def test_int64_extremes_decode_exactly() -> None:
    extremes = [-(2**63), -1, 0, 127, 128, 2**63 - 1] * 6  # long enough to decode in bulk
    raws = encode_values(pa.array(extremes, pa.int64()), ValueKind.INT64)
    assert decode_column(raws, ValueKind.INT64) == extremes


def test_columns_of_the_wrong_kind_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="needs numbers"):
        encode_values(pa.array(["a"]), ValueKind.DOUBLE, "avg_rating")
    with pytest.raises(InvalidInputError, match="does not fit INT32"):
        encode_values(pa.array([2**40]), ValueKind.INT32)
    with pytest.raises(InvalidInputError, match="not numeric"):
        decode_numeric([Value(string_val="x").SerializeToString()], ValueKind.STRING)
