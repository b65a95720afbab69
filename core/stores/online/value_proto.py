"""Feast's Value message (types/Value.proto), the part Engram stores, built without `feast`.

Importing anything under `feast` imports the whole SDK (seconds); the wire format is all that
matters, so the messages live in a private descriptor pool under their own names. Also the tag
byte of each fixed-width scalar and, per list kind, its field and what stands for a null
element, as feast/type_map.py writes them.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from core.stores.online.layout import ValueKind

# Feast's null timestamp (NaT as int64): a null time is stored as this, not left empty.
NULL_TIMESTAMP = -(2**63)

# Value proto tag byte (field number << 3 | wire type) of each fixed-width scalar.
TAG = {
    ValueKind.INT32: 0x18,
    ValueKind.INT64: 0x20,
    ValueKind.DOUBLE: 0x29,
    ValueKind.FLOAT: 0x35,
    ValueKind.BOOL: 0x38,
    ValueKind.UNIX_TIMESTAMP: 0x40,
}
FIXED_WIDTH_KINDS = frozenset(TAG)
# Value field, list message and what Feast puts in place of a null element.
LIST_FIELDS: dict[ValueKind, tuple[str, str, Any]] = {
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
    """The Value message and its list messages, by name, from a private descriptor pool."""
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
    for kind, (name, list_name, _) in LIST_FIELDS.items():
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


MESSAGES = _value_classes()
Value = MESSAGES["Value"]
