"""The codec writes and reads the very bytes Feast 0.67 does; Feast's functions are the oracle."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from feast.infra.key_encoding_utils import serialize_entity_key as feast_serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3, _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import (
    _non_empty_value,
    feast_value_type_to_python_type,
    python_values_to_proto_values,
)
from feast.value_type import ValueType
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import ConfigError, InvalidInputError
from core.stores import feast_codec
from core.stores.feast_codec import ValueKind, value_kind

IDS = st.from_regex(r"[A-Za-z0-9_.:-]{1,40}", fullmatch=True)
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


@given(st.lists(IDS, min_size=1, max_size=20))
def test_redis_keys_are_feasts_keys(ids: list[str]) -> None:
    expected = [
        _redis_key("proj", EntityKey(join_keys=["user_id"], entity_values=[Value(string_val=i)]))
        for i in ids
    ]
    assert feast_codec.redis_keys("proj", "user_id", ids) == expected
    assert [feast_codec.redis_key("proj", ["user_id"], [i]) for i in ids] == expected


@given(IDS, st.integers(-(2**63), 2**63 - 1))
def test_composite_keys_sort_join_keys_like_feast(user: str, number: int) -> None:
    key = EntityKey(
        join_keys=["user_id", "item_no"],
        entity_values=[Value(string_val=user), Value(int64_val=number)],
    )
    assert feast_codec.serialize_entity_key(["user_id", "item_no"], [user, number]) == (
        feast_serialize_entity_key(key, entity_key_serialization_version=3)
    )


@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30))
def test_feature_field_is_feasts_murmur(view: str, feature: str) -> None:
    assert feast_codec.feature_field(view, feature) == _mmh3(f"{view}:{feature}")
    assert feast_codec.timestamp_field(view) == f"_ts:{view}".encode()


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)))
def test_event_timestamp_is_feasts_timestamp_proto(naive: datetime) -> None:
    expected = Timestamp()
    expected.FromDatetime(naive.replace(tzinfo=UTC))
    raw = feast_codec.encode_event_timestamp(naive)
    assert raw == expected.SerializeToString()
    assert feast_codec.decode_event_timestamp(raw) == naive.replace(tzinfo=UTC)


def _stamp(micros: int) -> bytes:
    return feast_codec.matrix_to_list(*feast_codec.encode_event_timestamps(np.array([micros])))[0]


@given(st.lists(st.one_of(st.none(), st.integers(-(2**35), 2**37)), max_size=80), st.booleans())
def test_event_seconds_of_a_column_equal_one_by_one(seconds: list[int | None], whole: bool) -> None:
    raws = [
        None if s is None else _stamp(s * 1_000_000 + (0 if whole else 250_000)) for s in seconds
    ]
    stamps = [None if r is None else Timestamp.FromString(r) for r in raws]
    expected = [np.nan if t is None else t.seconds + t.nanos / 1e9 for t in stamps]
    np.testing.assert_array_equal(feast_codec.decode_event_seconds(raws), expected)


def test_event_timestamps_drop_nanoseconds_like_feast() -> None:
    micros = np.array([1_700_000_000_123_456, 0, -1], np.int64)
    matrix, lengths = feast_codec.encode_event_timestamps(micros)
    got = feast_codec.matrix_to_list(matrix, lengths)
    expected = []
    for m in micros.tolist():
        ts = Timestamp()
        ts.FromDatetime(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=m))
        expected.append(ts.SerializeToString())
    assert got == expected


@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=50))
def test_varints_match_protobuf(numbers: list[int]) -> None:
    matrix, lengths = feast_codec.varints(np.array(numbers, np.int64))
    got = feast_codec.matrix_to_list(matrix, lengths)
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
    got = feast_codec.encode_values(array, kind)
    assert got == feast_bytes(array, value_type)
    stored: list[bytes | None] = [*got, None]  # None: a field the hash does not have
    expected = [feast_python(raw or b"") for raw in stored]
    assert same([feast_codec.decode_value(raw) for raw in stored], expected)
    # Short columns decode value by value, long ones in bulk: both must agree with Feast.
    repeats = 40 // len(stored) + 1
    for raws, wanted in ((stored, expected), (stored * repeats, expected * repeats)):
        assert same(feast_codec.decode_column(raws, kind), wanted)
        if kind in feast_codec.FIXED_WIDTH_KINDS:
            numbers = [as_number(v) for v in wanted]
            np.testing.assert_array_equal(feast_codec.decode_numeric(raws, kind), numbers)


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
    whole = feast_codec.encode_values(array, ValueKind.FLOAT_LIST)
    assert feast_codec.encode_values(array.slice(2), ValueKind.FLOAT_LIST) == whole[2:]
    chunked = pa.chunked_array([array.slice(0, 2), array.slice(2)])
    assert feast_codec.encode_values(chunked, ValueKind.FLOAT_LIST) == whole


def test_null_timestamps_are_stored_as_nat_and_read_as_none() -> None:
    array = pa.array([datetime(2026, 1, 1, tzinfo=UTC), None], pa.timestamp("us", tz="UTC"))
    raws = feast_codec.encode_values(array, ValueKind.UNIX_TIMESTAMP)
    assert raws == feast_bytes(array, ValueType.UNIX_TIMESTAMP)
    assert feast_codec.decode_value(raws[1]) is None
    assert math.isnan(feast_codec.decode_numeric(raws, ValueKind.UNIX_TIMESTAMP)[1])


def test_float_columns_convert_like_feast() -> None:
    ints_as_double = pa.array([1, None, 3], pa.int64())
    assert feast_codec.encode_values(ints_as_double, ValueKind.DOUBLE) == feast_bytes(
        ints_as_double, ValueType.DOUBLE
    )
    doubles_as_int = pa.array([1.9, -1.9, None, float("nan")], pa.float64())
    assert feast_codec.encode_values(doubles_as_int, ValueKind.INT64) == feast_bytes(
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
        *feast_codec.encode_values(pa.array(values, arrow_type), value_kind(value_type))
    ]
    raws.append(None)  # a field Redis does not have
    expected = [as_number(feast_python(raw or b"")) for raw in raws]
    got = feast_codec.decode_numeric(raws, value_kind(value_type))
    np.testing.assert_array_equal(got, np.array(expected))


def test_decoding_survives_a_view_redefined_with_another_type() -> None:
    raws = feast_codec.encode_values(pa.array([7, None] * 20), ValueKind.INT64)
    np.testing.assert_array_equal(
        feast_codec.decode_numeric(raws, ValueKind.DOUBLE), np.array([7.0, np.nan] * 20)
    )
    assert feast_codec.decode_column(raws, ValueKind.DOUBLE) == [7, None] * 20


def test_int64_extremes_decode_exactly() -> None:
    extremes = [-(2**63), -1, 0, 127, 128, 2**63 - 1] * 6  # long enough to decode in bulk
    raws = feast_codec.encode_values(pa.array(extremes, pa.int64()), ValueKind.INT64)
    assert feast_codec.decode_column(raws, ValueKind.INT64) == extremes


def test_columns_of_the_wrong_kind_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="needs numbers"):
        feast_codec.encode_values(pa.array(["a"]), ValueKind.DOUBLE, "avg_rating")
    with pytest.raises(InvalidInputError, match="does not fit INT32"):
        feast_codec.encode_values(pa.array([2**40]), ValueKind.INT32)
    with pytest.raises(InvalidInputError, match="not numeric"):
        feast_codec.decode_numeric([Value(string_val="x").SerializeToString()], ValueKind.STRING)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6390/0", "127.0.0.1:6390,db=0"),
        ("redis://localhost", "localhost:6379"),
        ("rediss://:s%40cret@cache:6380/2", "cache:6380,db=2,password=s@cret,ssl=true"),
    ],
)
def test_feast_connection_string_from_url(url: str, expected: str) -> None:
    assert feast_codec.feast_connection_string(url) == expected


def test_value_kinds_mirror_feasts_value_types() -> None:
    for kind in ValueKind:
        assert ValueType[kind.name].value == kind.value
    assert value_kind(ValueType.FLOAT_LIST) is ValueKind.FLOAT_LIST
    with pytest.raises(InvalidInputError, match="MAP"):
        value_kind(ValueType.MAP)


def test_importing_the_codec_does_not_import_feast() -> None:
    code = "import sys, core.stores.feast_codec; print('feast' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_feast_connection_string_refuses_other_schemes() -> None:
    with pytest.raises(ConfigError):
        feast_codec.feast_connection_string("unix:///tmp/redis.sock")
