"""Stored Value protos back to what Feast's `OnlineResponse.to_dict` gives, or to float64
columns for a model: fixed-width columns decoded in one numpy pass, the rest value by value."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

from core.errors import InvalidInputError
from core.stores.online.layout import ValueKind, value_kind
from core.stores.online.value_proto import NULL_TIMESTAMP, TAG, Value
from core.stores.online.varints import VECTOR_MIN, decode_varints
from core.times import from_epoch_micros, join_epoch_micros

_FROM_STRING = Value.FromString
# Oneof fields whose Python value is already what Feast's to_dict returns.
_PLAIN_KINDS = frozenset(
    {"double_val", "float_val", "int64_val", "int32_val", "string_val", "bool_val", "bytes_val"}
)
_FIXED_ROWS = {
    ValueKind.DOUBLE: np.dtype([("tag", "u1"), ("value", "<f8")]),
    ValueKind.FLOAT: np.dtype([("tag", "u1"), ("value", "<f4")]),
    ValueKind.BOOL: np.dtype([("tag", "u1"), ("value", "u1")]),
}


def _to_datetime(seconds: int) -> datetime | None:
    return None if seconds == NULL_TIMESTAMP else from_epoch_micros(join_epoch_micros(seconds))


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
        if not bool((rows["tag"] == TAG[kind]).all()):
            return None
        values = rows["value"].astype(bool) if kind == ValueKind.BOOL else rows["value"]
    elif kind in TAG:
        values = decode_varints(stored, TAG[kind])
        if values is None:
            return None
    else:
        return None
    return values, present


def decode_column(raws: Sequence[bytes | None], kind: ValueKind) -> list[Any]:
    """Python values of a column (None where missing), as Feast's OnlineResponse.to_dict."""
    kind = value_kind(kind)
    fixed = _decode_fixed(raws, kind) if len(raws) >= VECTOR_MIN else None
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
    fixed = _decode_fixed(raws, kind) if len(raws) >= VECTOR_MIN else None
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
