"""Where Feast's Redis online store keeps a feature: value kinds, view refs, keys and fields.

Follows feast/infra/online_stores/redis.py, online_stores/helpers.py and key_encoding_utils.py
byte for byte: one hash per entity (every view of that entity shares it) keyed by the serialized
entity key plus the project, one field per feature named by the murmur3 of "view:feature", and
a "_ts:view" field holding the row's event time.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import unquote, urlparse

import mmh3

from core.errors import ConfigError, InvalidInputError


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

_STRING = ValueKind.STRING.value
_INT64 = ValueKind.INT64.value


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


def feast_connection_string(redis_url: str, *, cluster: bool = False) -> str:
    """Feast's Redis `connection_string` ("host:port,db=0,...") for a redis:// URL; a cluster
    has no databases but 0, so there the URL's must be 0 and is left out."""
    parsed = urlparse(redis_url)
    if parsed.scheme not in ("redis", "rediss") or not parsed.hostname:
        raise ConfigError("REDIS_URL", f"expected redis://host:port/db, got {redis_url!r}")
    parts = [f"{parsed.hostname}:{parsed.port or 6379}"]
    db = int(parsed.path.strip("/") or 0)
    if cluster and db:
        raise ConfigError("REDIS_URL", f"a Redis Cluster has database 0 only, got {redis_url!r}")
    if parsed.path.strip("/") and not cluster:
        parts.append(f"db={db}")
    if parsed.username:
        parts.append(f"username={unquote(parsed.username)}")
    if parsed.password:
        parts.append(f"password={unquote(parsed.password)}")
    if parsed.scheme == "rediss":
        parts.append("ssl=true")
    return ",".join(parts)
