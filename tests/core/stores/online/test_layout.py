"""Keys, fields and value kinds are Feast's own; Feast's functions are the oracle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from feast.infra.key_encoding_utils import serialize_entity_key as feast_serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3, _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.value_type import ValueType
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ConfigError, InvalidInputError
from core.stores import online
from core.stores.online.layout import (
    ValueKind,
    feast_connection_string,
    feature_field,
    redis_key,
    redis_keys,
    serialize_entity_key,
    timestamp_field,
    value_kind,
)

IDS = st.from_regex(r"[A-Za-z0-9_.:-]{1,40}", fullmatch=True)


@given(st.lists(IDS, min_size=1, max_size=20))
def test_redis_keys_are_feasts_keys(ids: list[str]) -> None:
    expected = [
        _redis_key("proj", EntityKey(join_keys=["user_id"], entity_values=[Value(string_val=i)]))
        for i in ids
    ]
    assert redis_keys("proj", "user_id", ids) == expected
    assert [redis_key("proj", ["user_id"], [i]) for i in ids] == expected


@given(IDS, st.integers(-(2**63), 2**63 - 1))
def test_composite_keys_sort_join_keys_like_feast(user: str, number: int) -> None:
    key = EntityKey(
        join_keys=["user_id", "item_no"],
        entity_values=[Value(string_val=user), Value(int64_val=number)],
    )
    assert serialize_entity_key(["user_id", "item_no"], [user, number]) == (
        feast_serialize_entity_key(key, entity_key_serialization_version=3)
    )


@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30))
def test_feature_field_is_feasts_murmur(view: str, feature: str) -> None:
    assert feature_field(view, feature) == _mmh3(f"{view}:{feature}")
    assert timestamp_field(view) == f"_ts:{view}".encode()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6390/0", "127.0.0.1:6390,db=0"),
        ("redis://localhost", "localhost:6379"),
        ("rediss://:s%40cret@cache:6380/2", "cache:6380,db=2,password=s@cret,ssl=true"),
    ],
)
def test_feast_connection_string_from_url(url: str, expected: str) -> None:
    assert feast_connection_string(url) == expected


def test_feast_connection_string_refuses_other_schemes() -> None:
    with pytest.raises(ConfigError):
        feast_connection_string("unix:///tmp/redis.sock")


def test_value_kinds_mirror_feasts_value_types() -> None:
    for kind in ValueKind:
        assert ValueType[kind.name].value == kind.value
    assert value_kind(ValueType.FLOAT_LIST) is ValueKind.FLOAT_LIST
    with pytest.raises(InvalidInputError, match="MAP"):
        value_kind(ValueType.MAP)


def test_importing_the_online_format_does_not_import_feast() -> None:
    """Only `plan` loads the SDK, and only when called: the stream consumer never pays for it."""
    modules = sorted(p.stem for p in Path(online.__file__).parent.glob("[a-z]*.py"))
    imports = "; ".join(f"import core.stores.online.{m}" for m in modules)
    code = f"import sys; {imports}; print('feast' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
