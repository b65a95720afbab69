"""Feast 0.67's Redis online-store format (keys, hash fields, values), with no I/O.

Follows feast/infra/online_stores/redis.py, online_stores/helpers.py, key_encoding_utils.py and
type_map.py byte for byte, so Engram reads and writes the very hashes Feast does: one hash per
entity (every view of that entity shares it) keyed by the serialized entity key plus the project,
one field per feature named by the murmur3 of "view:feature", and a "_ts:view" field holding the
row's event time as a Timestamp proto. Columns encode to byte matrices (one padded row per value
plus a length per row) so bulk paths can frame them without a Python object per value.
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlparse

import mmh3
import numpy as np
import pyarrow as pa
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.timestamp_pb2 import Timestamp

from core.errors import ConfigError, InvalidInputError
from core.times import epoch_micros


class ValueKind(enum.IntEnum):
    """The Feast value types Engram stores, with Feast's numbers (feast.value_type.ValueType)."""

    BYTES = 1
    STRING = 2
    INT32 = 3
    INT64 = 4
    DOUBLE = 5
    FLOAT = 6
    BOOL = 7
    UNIX_TIMESTAMP = 8
    BYTES_LIST = 11
    STRING_LIST = 12
    INT32_LIST = 13
    INT64_LIST = 14
    DOUBLE_LIST = 15
    FLOAT_LIST = 16
    BOOL_LIST = 17
    UNIX_TIMESTAMP_LIST = 18


def value_kind(value_type: Any) -> ValueKind:
    """The ValueKind of a Feast ValueType (or of its name); unsupported types are refused."""
    if isinstance(value_type, ValueKind):
        return value_type
    name = value_type if isinstance(value_type, str) else value_type.name
    try:
        return ValueKind[name]
    except KeyError:
        raise InvalidInputError("value_type", f"{name} is not supported by Engram") from None


# Feast 0.67 warns below 3, and its Redis store builds every key with the configured version.
ENTITY_KEY_SERIALIZATION_VERSION = 3
# Feast's null timestamp (NaT as int64): a null time is stored as this, not left empty.
NULL_TIMESTAMP = -(2**63)

_STRING = ValueKind.STRING.value
_INT64 = ValueKind.INT64.value

# Value proto tag byte (field number << 3 | wire type) of each fixed-width scalar.
_TAG = {
    ValueKind.INT32: 0x18,
    ValueKind.INT64: 0x20,
    ValueKind.DOUBLE: 0x29,
    ValueKind.FLOAT: 0x35,
    ValueKind.BOOL: 0x38,
    ValueKind.UNIX_TIMESTAMP: 0x40,
}
FIXED_WIDTH_KINDS = frozenset(_TAG)
# Value field, list message and what Feast puts in place of a null element.
_LIST_FIELDS: dict[ValueKind, tuple[str, str, Any]] = {
    ValueKind.BYTES_LIST: ("bytes_list_val", "BytesList", b""),
    ValueKind.STRING_LIST: ("string_list_val", "StringList", ""),
    ValueKind.INT32_LIST: ("int32_list_val", "Int32List", 0),
    ValueKind.INT64_LIST: ("int64_list_val", "Int64List", 0),
    ValueKind.DOUBLE_LIST: ("double_list_val", "DoubleList", 0.0),
    ValueKind.FLOAT_LIST: ("float_list_val", "FloatList", 0.0),
    ValueKind.BOOL_LIST: ("bool_list_val", "BoolList", False),
    ValueKind.UNIX_TIMESTAMP_LIST: ("unix_timestamp_list_val", "Int64List", NULL_TIMESTAMP),
}


def _value_classes() -> dict[str, Any]:
    """Feast's Value message (types/Value.proto), the part Engram uses, built without `feast`.

    Importing anything under `feast` imports the whole SDK (seconds); the wire format is all
    that matters, so the messages live in a private descriptor pool under their own names.
    """
    fdp = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="engram/feast_value.proto", package="engram.feast", syntax="proto3"
    )
    elements = {
        "BytesList": fdp.TYPE_BYTES,
        "StringList": fdp.TYPE_STRING,
        "Int32List": fdp.TYPE_INT32,
        "Int64List": fdp.TYPE_INT64,
        "DoubleList": fdp.TYPE_DOUBLE,
        "FloatList": fdp.TYPE_FLOAT,
        "BoolList": fdp.TYPE_BOOL,
    }
    for name, element in elements.items():
        message = file.message_type.add(name=name)
        message.field.add(name="val", number=1, type=element, label=fdp.LABEL_REPEATED)
    value = file.message_type.add(name="Value")
    value.oneof_decl.add(name="val")
    scalars = [
        ("bytes_val", fdp.TYPE_BYTES),
        ("string_val", fdp.TYPE_STRING),
        ("int32_val", fdp.TYPE_INT32),
        ("int64_val", fdp.TYPE_INT64),
        ("double_val", fdp.TYPE_DOUBLE),
        ("float_val", fdp.TYPE_FLOAT),
        ("bool_val", fdp.TYPE_BOOL),
        ("unix_timestamp_val", fdp.TYPE_INT64),
    ]
    for number, (name, scalar) in enumerate(scalars, start=1):
        value.field.add(name=name, number=number, type=scalar, oneof_index=0)
    for kind, (name, list_name, _) in _LIST_FIELDS.items():
        value.field.add(
            name=name,
            number=kind.value,
            type=fdp.TYPE_MESSAGE,
            type_name=f".engram.feast.{list_name}",
            oneof_index=0,
        )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"engram.feast.{name}"))
        for name in ["Value", *elements]
    }


_MESSAGES = _value_classes()
Value = _MESSAGES["Value"]
_FROM_STRING = Value.FromString
# Oneof fields whose Python value is already what Feast's to_dict returns.
_PLAIN_KINDS = frozenset(
    {"double_val", "float_val", "int64_val", "int32_val", "string_val", "bool_val", "bytes_val"}
)


@dataclass(frozen=True)
class FeatureRef:
    """One stored feature: its view, its name and its value kind."""

    view: str
    name: str
    kind: ValueKind


@dataclass(frozen=True)
class ViewRef:
    """What the Redis layout needs of a feature view: join key, features and ttl."""

    name: str
    join_key: str
    features: tuple[FeatureRef, ...]
    ttl: timedelta | None = None


def view_ref(feature_view: Any, names: Sequence[str] | None = None) -> ViewRef:
    """The ViewRef of a Feast FeatureView, for all its features or the named ones."""
    columns = [c for c in feature_view.entity_columns if c.name != "__dummy_id"]
    if len(columns) != 1 or value_kind(columns[0].dtype.to_value_type()) != ValueKind.STRING:
        raise InvalidInputError(feature_view.name, "Engram needs one string join key per view")
    fields = {f.name: f for f in feature_view.features}
    wanted = list(fields) if names is None else list(names)
    missing = [n for n in wanted if n not in fields]
    if missing:
        raise InvalidInputError(feature_view.name, f"no such features: {missing}")
    refs = tuple(
        FeatureRef(feature_view.name, n, value_kind(fields[n].dtype.to_value_type()))
        for n in wanted
    )
    ttl = feature_view.ttl if feature_view.ttl and feature_view.ttl.total_seconds() > 0 else None
    return ViewRef(feature_view.name, columns[0].name, refs, ttl)


# --- keys and fields -------------------------------------------------------------------------


def serialize_entity_key(join_keys: Sequence[str], values: Sequence[str | int]) -> bytes:
    """Feast's serialize_entity_key (version 3) for string and int64 entity values."""
    pairs = sorted(zip(join_keys, values, strict=True))
    out = [struct.pack("<I", len(pairs))]
    for key, _ in pairs:
        encoded = key.encode()
        out.append(struct.pack("<II", _STRING, len(encoded)) + encoded)
    for _, value in pairs:
        if isinstance(value, str):
            encoded = value.encode()
            out.append(struct.pack("<II", _STRING, len(encoded)) + encoded)
        else:
            out.append(struct.pack("<IIq", _INT64, 8, value))
    return b"".join(out)


def redis_key(project: str, join_keys: Sequence[str], values: Sequence[str | int]) -> bytes:
    """The Redis key of one entity: its serialized entity key followed by the project name."""
    return serialize_entity_key(join_keys, values) + project.encode()


def redis_keys(project: str, join_key: str, ids: Sequence[str]) -> list[bytes]:
    """Redis keys of many entities of one string join key (the common case, built fast)."""
    encoded_key = join_key.encode()
    head = struct.pack("<III", 1, _STRING, len(encoded_key)) + encoded_key
    tail = project.encode()
    pack = struct.Struct("<II").pack
    out = []
    for entity_id in ids:
        encoded = entity_id.encode()
        out.append(b"".join((head, pack(_STRING, len(encoded)), encoded, tail)))
    return out


def feature_field(view: str, feature: str) -> bytes:
    """Hash field of one feature: murmur3_32 of "view:feature" as 4 little-endian bytes."""
    return struct.pack("<I", mmh3.hash(f"{view}:{feature}", signed=False))


def timestamp_field(view: str) -> bytes:
    """Hash field holding a view's event timestamp for the entity."""
    return f"_ts:{view}".encode()


# --- byte matrices ---------------------------------------------------------------------------


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


def _constant(value: bytes, n: int) -> tuple[np.ndarray, np.ndarray]:
    row = np.frombuffer(value, np.uint8)
    return np.broadcast_to(row, (n, len(row))), np.full(n, len(row), np.int64)


# --- event timestamps ------------------------------------------------------------------------


def encode_event_timestamps(micros: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`_ts:` values (Timestamp protos) of epoch microseconds, as a byte matrix and lengths."""
    # Feast goes through datetime (Timestamp.FromDatetime), so it keeps microseconds at most.
    seconds, rest = np.divmod(micros.astype(np.int64), 1_000_000)
    nanos = rest * 1000
    n = len(seconds)
    sec_bytes, sec_len = varints(seconds)
    nano_bytes, nano_len = varints(nanos)
    # proto3 leaves a zero field out.
    has_sec, has_nano = (seconds != 0).astype(np.int64), (nanos != 0).astype(np.int64)
    return concat_rows(
        [
            (_constant(b"\x08", n)[0], has_sec),
            (sec_bytes, sec_len * has_sec),
            (_constant(b"\x10", n)[0], has_nano),
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


def decode_event_timestamp(raw: bytes | None) -> datetime | None:
    """The event time in a `_ts:` field; None when the view has no row for the entity."""
    if raw is None:
        return None
    ts = Timestamp.FromString(raw)
    return datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, tz=UTC)


def decode_event_seconds(raws: Sequence[bytes | None]) -> np.ndarray:
    """Epoch seconds (float64) of `_ts:` fields, NaN where None: `decode_event_timestamp` for a
    column, in one pass when every stamp holds whole seconds (as snapshots written at a cutoff
    do), else stamp by stamp."""
    out = np.full(len(raws), np.nan)
    present = [i for i, raw in enumerate(raws) if raw is not None]
    stored = [raw for raw in raws if raw is not None]
    whole = _decode_varints(stored, 0x08) if len(stored) >= _VECTOR_MIN else None
    if whole is not None:
        out[present] = whole.astype(np.float64)
        return out
    for i, raw in zip(present, stored, strict=True):
        ts = Timestamp.FromString(raw)
        out[i] = ts.seconds + ts.nanos / 1e9
    return out


# --- values ----------------------------------------------------------------------------------


def _as_array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _valid(array: pa.Array) -> np.ndarray:
    return np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def _epoch_seconds(array: pa.Array, field: str) -> np.ndarray:
    if pa.types.is_timestamp(array.type):
        per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
        raw = array.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
        return np.floor_divide(raw, per_second[array.type.unit])
    if pa.types.is_integer(array.type):
        return array.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    raise InvalidInputError(field, f"a timestamp feature needs timestamps, got {array.type}")


def _numbers(array: pa.Array, kind: ValueKind, field: str) -> np.ndarray:
    if pa.types.is_integer(array.type) or pa.types.is_floating(array.type):
        return array.fill_null(0).to_numpy(zero_copy_only=False)
    raise InvalidInputError(field, f"{kind.name} needs numbers, got {array.type}")


def encode_fixed(
    column: pa.Array | pa.ChunkedArray, kind: ValueKind, field: str = "column"
) -> tuple[np.ndarray, np.ndarray]:
    """Value protos of a fixed-width scalar column: byte matrix and lengths (0 means null)."""
    kind = value_kind(kind)
    array = _as_array(column)
    if kind not in _TAG:
        raise InvalidInputError(field, f"{kind.name} is not a fixed-width type")
    valid = _valid(array)
    n = len(array)
    if kind == ValueKind.BOOL:
        if not pa.types.is_boolean(array.type):
            raise InvalidInputError(field, f"BOOL needs booleans, got {array.type}")
        flags = array.fill_null(False).to_numpy(zero_copy_only=False).astype(np.uint8)
        body, body_len = flags.reshape(n, 1), np.ones(n, np.int64)
    elif kind == ValueKind.UNIX_TIMESTAMP:
        seconds = np.where(valid, _epoch_seconds(array, field), NULL_TIMESTAMP)
        valid = np.ones(n, bool)
        body, body_len = varints(seconds)
    else:
        numbers = _numbers(array, kind, field)
        if numbers.dtype.kind == "f":
            valid &= ~np.isnan(numbers)  # Feast stores NaN as null (pd.isnull)
        if kind in (ValueKind.DOUBLE, ValueKind.FLOAT):
            dtype = "<f8" if kind == ValueKind.DOUBLE else "<f4"
            body = numbers.astype(dtype).view(np.uint8).reshape(n, -1)
            body_len = np.full(n, body.shape[1], np.int64)
        else:
            # Feast calls int() on each value: floats truncate toward zero.
            whole = np.trunc(np.nan_to_num(numbers)).astype(np.int64)
            too_wide = n and (whole.min() < -(2**31) or whole.max() >= 2**31)
            if kind == ValueKind.INT32 and too_wide:
                raise InvalidInputError(field, "a value does not fit INT32")
            body, body_len = varints(whole)
    # The tag is one fixed byte, so a plain side-by-side join keeps rows aligned.
    matrix = np.concatenate([np.full((n, 1), _TAG[kind], np.uint8), body], axis=1)
    return matrix, np.where(valid, body_len + 1, 0)


def _varint_slow(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


_SMALL_VARINTS = [_varint_slow(n) for n in range(1 << 14)]


def _varint_bytes(n: int) -> bytes:
    """Varint of a non-negative length (table lookup for anything up to two bytes)."""
    return _SMALL_VARINTS[n] if n < 16384 else _varint_slow(n)


def _list_rows(array: pa.Array) -> tuple[list[int], list[bool]]:
    offsets = array.offsets.to_numpy(zero_copy_only=False).astype(np.int64).tolist()
    return offsets, _valid(array).tolist()


def _encode_float_lists(array: pa.Array, kind: ValueKind) -> list[bytes]:
    """Float and double lists cut straight from the Arrow buffer (embeddings are the bulk)."""
    width, dtype, tag = (
        (4, "<f4", b"\x82\x01") if kind == ValueKind.FLOAT_LIST else (8, "<f8", b"\x7a")
    )
    # `values` with absolute offsets, not flatten(): a null slot may still span elements.
    data = array.values.cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False)
    data = data.astype(dtype)
    offsets, valid = _list_rows(array)
    sizes = np.diff(offsets)
    if array.null_count == 0 and len(sizes) and sizes[0] > 0 and bool((sizes == sizes[0]).all()):
        # Every row the same length (an embedding): one constant header, then the floats.
        body = data[offsets[0] : offsets[-1]].view(np.uint8).reshape(len(sizes), -1)
        inner = b"\x0a" + _varint_bytes(body.shape[1])
        header = np.frombuffer(tag + _varint_bytes(len(inner) + body.shape[1]) + inner, np.uint8)
        matrix = np.concatenate([np.broadcast_to(header, (len(sizes), len(header))), body], axis=1)
        return matrix_to_list(matrix, np.full(len(sizes), matrix.shape[1]))
    data_bytes = data.tobytes()
    out = []
    for i, ok in enumerate(valid):
        if not ok:
            out.append(b"")
            continue
        start, end = offsets[i] * width, offsets[i + 1] * width
        inner = b"\x0a" + _varint_bytes(end - start) + data_bytes[start:end] if end > start else b""
        out.append(tag + _varint_bytes(len(inner)) + inner)
    return out


def _encode_string_lists(array: pa.Array) -> list[bytes] | None:
    """String lists built from the Arrow buffers when every element is under 128 bytes."""
    items = array.values.fill_null("")  # Feast writes "" for a null element
    raw_offsets = np.frombuffer(items.buffers()[1], np.int32)
    item_offsets = raw_offsets[items.offset : items.offset + len(items) + 1].astype(np.int64)
    sizes = np.diff(item_offsets)
    if len(sizes) and sizes.max() >= 128:
        return None  # a two-byte length: rare, left to the general path
    data = np.frombuffer(items.buffers()[2] or b"", np.uint8)
    # Each element is 0x0a, its length and its bytes.
    starts = np.concatenate([[0], np.cumsum(sizes + 2)])
    flat = np.zeros(int(starts[-1]), np.uint8)
    flat[starts[:-1]] = 0x0A
    flat[starts[:-1] + 1] = sizes
    flat[
        np.repeat(starts[:-1] + 2 - item_offsets[:-1], sizes)
        + np.arange(item_offsets[0], item_offsets[-1])
    ] = data[item_offsets[0] : item_offsets[-1]]
    encoded = flat.tobytes()
    offsets, valid = _list_rows(array)
    ends = starts[np.asarray(offsets)].tolist()
    return [
        b"\x62" + _varint_bytes(ends[i + 1] - ends[i]) + encoded[ends[i] : ends[i + 1]]
        if ok
        else b""
        for i, ok in enumerate(valid)
    ]


def _encode_lists(array: pa.Array, kind: ValueKind, field: str) -> list[bytes]:
    name, list_name, default = _LIST_FIELDS[kind]
    list_type = _MESSAGES[list_name]
    offsets, valid = _list_rows(array)
    if kind == ValueKind.UNIX_TIMESTAMP_LIST:
        items = np.where(
            _valid(array.values), _epoch_seconds(array.values, field), NULL_TIMESTAMP
        ).tolist()
    else:
        items = [default if v is None else v for v in array.values.to_pylist()]
    return [
        Value(**{name: list_type(val=items[offsets[i] : offsets[i + 1]])}).SerializeToString()
        if ok
        else b""
        for i, ok in enumerate(valid)
    ]


def encode_values(
    column: pa.Array | pa.ChunkedArray, kind: ValueKind, field: str = "column"
) -> list[bytes]:
    """Serialized Value protos of a column, one per row (b"" for null), as Feast writes them."""
    kind = value_kind(kind)
    array = _as_array(column)
    if kind in FIXED_WIDTH_KINDS:
        return matrix_to_list(*encode_fixed(array, kind, field))
    if kind in (ValueKind.STRING, ValueKind.BYTES):
        is_text = pa.types.is_string(array.type) or pa.types.is_large_string(array.type)
        is_binary = pa.types.is_binary(array.type) or pa.types.is_large_binary(array.type)
        if not (is_text if kind == ValueKind.STRING else is_binary):
            raise InvalidInputError(field, f"{kind.name} cannot hold {array.type}")
        tag = b"\x12" if kind == ValueKind.STRING else b"\x0a"
        return [
            b"" if v is None else tag + _varint_bytes(len(b := (v.encode() if is_text else v))) + b
            for v in array.to_pylist()
        ]
    if not (pa.types.is_list(array.type) or pa.types.is_large_list(array.type)):
        raise InvalidInputError(field, f"{kind.name} needs lists, got {array.type}")
    element = array.type.value_type
    if kind in (ValueKind.FLOAT_LIST, ValueKind.DOUBLE_LIST) and (
        pa.types.is_floating(element) or pa.types.is_integer(element)
    ):
        return _encode_float_lists(array, kind)
    if kind == ValueKind.STRING_LIST and pa.types.is_string(element):
        fast = _encode_string_lists(array)
        if fast is not None:
            return fast
    return _encode_lists(array, kind, field)


def _to_datetime(seconds: int) -> datetime | None:
    return None if seconds == NULL_TIMESTAMP else datetime.fromtimestamp(seconds, tz=UTC)


def decode_value(raw: bytes | None) -> Any:
    """Python value of one stored Value proto, as Feast's OnlineResponse.to_dict gives it."""
    if not raw:
        return None
    value = _FROM_STRING(raw)
    field = value.WhichOneof("val")
    if field is None:
        return None
    if field in _PLAIN_KINDS:
        return getattr(value, field)
    if field == "unix_timestamp_val":
        return _to_datetime(value.unix_timestamp_val)
    if field == "unix_timestamp_list_val":
        return [_to_datetime(s) for s in value.unix_timestamp_list_val.val]
    return list(getattr(value, field).val)


_FIXED_ROWS = {
    ValueKind.DOUBLE: np.dtype([("tag", "u1"), ("value", "<f8")]),
    ValueKind.FLOAT: np.dtype([("tag", "u1"), ("value", "<f4")]),
    ValueKind.BOOL: np.dtype([("tag", "u1"), ("value", "u1")]),
}
_SHIFTS = np.arange(0, 70, 7, dtype=np.uint64)
# Below this many values numpy's fixed cost per call outweighs decoding one value at a time.
_VECTOR_MIN = 32


def _decode_varints(raws: list[bytes], tag: int) -> np.ndarray | None:
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


def _decode_fixed(
    raws: Sequence[bytes | None], kind: ValueKind
) -> tuple[np.ndarray, np.ndarray] | None:
    """Values of a fixed-width column in their numpy type, and which are present.

    None when a value is not what `kind` promises (a view redefined with another type):
    callers then take the general, per-value path.
    """
    present = np.fromiter(map(bool, raws), bool, len(raws))
    stored: list[bytes] = list(filter(None, raws))
    values: np.ndarray | None
    if kind in _FIXED_ROWS:
        row_type = _FIXED_ROWS[kind]
        joined = b"".join(stored)
        if len(joined) != row_type.itemsize * len(stored):
            return None
        rows = np.frombuffer(joined, dtype=row_type)
        if not bool((rows["tag"] == _TAG[kind]).all()):
            return None
        values = rows["value"].astype(bool) if kind == ValueKind.BOOL else rows["value"]
    elif kind in _TAG:
        values = _decode_varints(stored, _TAG[kind])
        if values is None:
            return None
    else:
        return None
    return values, present


def decode_column(raws: Sequence[bytes | None], kind: ValueKind) -> list[Any]:
    """Python values of a column (None where missing), as Feast's OnlineResponse.to_dict."""
    kind = value_kind(kind)
    fixed = _decode_fixed(raws, kind) if len(raws) >= _VECTOR_MIN else None
    if fixed is None:
        return [decode_value(raw) for raw in raws]
    values, present = fixed
    if kind == ValueKind.UNIX_TIMESTAMP:
        items: list[Any] = [_to_datetime(s) for s in values.tolist()]
    else:
        items = values.tolist()  # float32 widens to the same double Feast returns
    out: list[Any] = [None] * len(raws)
    for i, value in zip(np.flatnonzero(present).tolist(), items, strict=True):
        out[i] = value
    return out


def decode_numeric(raws: Sequence[bytes | None], kind: ValueKind) -> np.ndarray:
    """Float64 array of a numeric column (NaN where missing); times become epoch seconds."""
    kind = value_kind(kind)
    out = np.full(len(raws), np.nan)
    fixed = _decode_fixed(raws, kind) if len(raws) >= _VECTOR_MIN else None
    if fixed is not None:
        values, present = fixed
        numbers = values.astype(np.float64)
        if kind == ValueKind.UNIX_TIMESTAMP:
            numbers[values == NULL_TIMESTAMP] = np.nan
        out[present] = numbers
        return out
    for i, raw in enumerate(raws):
        if raw:
            out[i] = _numeric(_FROM_STRING(raw))
    return out


def _numeric(value: Any) -> float:
    field = value.WhichOneof("val")
    if field is None:
        return math.nan
    if field == "unix_timestamp_val":
        seconds = value.unix_timestamp_val
        return math.nan if seconds == NULL_TIMESTAMP else float(seconds)
    if field in ("double_val", "float_val", "int64_val", "int32_val", "bool_val"):
        return float(getattr(value, field))
    raise InvalidInputError("feature", f"a {field} value is not numeric")


def feast_connection_string(redis_url: str) -> str:
    """Feast's Redis `connection_string` ("host:port,db=0,...") for a redis:// URL."""
    parsed = urlparse(redis_url)
    if parsed.scheme not in ("redis", "rediss") or not parsed.hostname:
        raise ConfigError("REDIS_URL", f"expected redis://host:port/db, got {redis_url!r}")
    parts = [f"{parsed.hostname}:{parsed.port or 6379}"]
    if parsed.path.strip("/"):
        parts.append(f"db={int(parsed.path.strip('/'))}")
    if parsed.username:
        parts.append(f"username={unquote(parsed.username)}")
    if parsed.password:
        parts.append(f"password={unquote(parsed.password)}")
    if parsed.scheme == "rediss":
        parts.append("ssl=true")
    return ",".join(parts)
