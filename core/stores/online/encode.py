"""Columns to the Value protos Feast stores, byte for byte (feast/type_map.py's rules).

Fixed-width scalars become byte matrices (one padded row per value plus a length, 0 for null),
float and string lists are cut straight from the Arrow buffers; only the rare shapes go through
a proto object per value.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from core.errors import InvalidInputError
from core.stores.online.layout import ValueKind, value_kind
from core.stores.online.value_proto import (
    FIXED_WIDTH_KINDS,
    LIST_FIELDS,
    MESSAGES,
    NULL_TIMESTAMP,
    TAG,
    Value,
)
from core.stores.online.varints import matrix_to_list, varint_bytes, varints


def _as_array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _valid(array: pa.Array) -> np.ndarray:
    return np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def _epoch_seconds(array: pa.Array, field: str) -> np.ndarray:
    """Whole epoch seconds of a timestamp column in any Arrow unit (Feast stores seconds)."""
    if pa.types.is_timestamp(array.type):
        # Arrow units per second, to floor a column in its own unit (Feast stores whole seconds).
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
    if kind not in TAG:
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
    matrix = np.concatenate([np.full((n, 1), TAG[kind], np.uint8), body], axis=1)
    return matrix, np.where(valid, body_len + 1, 0)


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
        inner = b"\x0a" + varint_bytes(body.shape[1])
        header = np.frombuffer(tag + varint_bytes(len(inner) + body.shape[1]) + inner, np.uint8)
        matrix = np.concatenate([np.broadcast_to(header, (len(sizes), len(header))), body], axis=1)
        return matrix_to_list(matrix, np.full(len(sizes), matrix.shape[1]))
    data_bytes = data.tobytes()
    out = []
    for i, ok in enumerate(valid):
        if not ok:
            out.append(b"")
            continue
        start, end = offsets[i] * width, offsets[i + 1] * width
        inner = b"\x0a" + varint_bytes(end - start) + data_bytes[start:end] if end > start else b""
        out.append(tag + varint_bytes(len(inner)) + inner)
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
        b"\x62" + varint_bytes(ends[i + 1] - ends[i]) + encoded[ends[i] : ends[i + 1]]
        if ok
        else b""
        for i, ok in enumerate(valid)
    ]


def _encode_lists(array: pa.Array, kind: ValueKind, field: str) -> list[bytes]:
    name, list_name, default = LIST_FIELDS[kind]
    list_type = MESSAGES[list_name]
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
            b"" if v is None else tag + varint_bytes(len(b := (v.encode() if is_text else v))) + b
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
