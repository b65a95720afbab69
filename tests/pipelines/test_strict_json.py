"""Strict JSON: what every parser reads alike is read as Python's json reads it; the rest is
refused with the path of the fault."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import InvalidInputError
from pipelines import strict_json

finite = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.none() | st.booleans() | st.integers() | finite | st.text()
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def refusal(text: str | bytes) -> tuple[str, str]:
    with pytest.raises(InvalidInputError) as caught:
        strict_json.loads(text)
    return caught.value.field, caught.value.reason


@given(values, st.booleans())
def test_documents_every_parser_agrees_on_read_as_json_reads_them(
    value: Any, ascii_only: bool
) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)  # surrogate pairs escaped or not
    assert strict_json.loads(text) == json.loads(text)
    assert strict_json.loads(text.encode()) == json.loads(text)


@given(values)
def test_depth_counts_the_levels_of_objects_and_arrays(value: Any) -> None:
    def reference(node: Any) -> int:
        if isinstance(node, dict | list):
            children = node.values() if isinstance(node, dict) else node
            return 1 + max((reference(child) for child in children), default=0)
        return 0

    assert strict_json.depth(value) == reference(value)


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ('{"user_id": "a", "user_id": "b"}', "user_id"),
        ('{"context": {"query": "x", "query": "y"}}', "context.query"),
        ('[{"a": 1}, {"user_id": "a", "ts": 1, "user_id": "a"}]', "$[1].user_id"),
        ('{"k": [1, {"x": 1, "x": 1}]}', "k[1].x"),
    ],
)
def test_a_key_named_twice_is_refused_with_its_path(text: str, path: str) -> None:
    assert refusal(text) == (path, f"duplicate key '{path}': a JSON object names each key once")


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ('{"text": "hi \\ud800"}', "text"),
        ('{"context": {"query": "\\udc00"}}', "context.query"),
        ('[{"a": ["ok", "x\\uDBFF"]}]', "$[0].a[1]"),
        ('{"\\ud800": 1}', "\\ud800"),
    ],
)
def test_a_lone_surrogate_is_refused_with_its_path(text: str, path: str) -> None:
    field, reason = refusal(text)
    assert field == path and "lone UTF-16 surrogate" in reason
    json.dumps(field, ensure_ascii=False).encode("utf-8")  # the path itself is printable


def test_a_surrogate_pair_is_one_character() -> None:
    assert strict_json.loads('{"e": "\\ud83d\\ude00"}') == {"e": "\N{GRINNING FACE}"}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[" * 10_000 + "]" * 10_000, "nested too deeply"),
        ('{"a": NaN}', "not valid JSON: NaN is not JSON"),
        ('{"a": -Infinity}', "not valid JSON: -Infinity is not JSON"),
        (b'{"a": "\xff"}', "not UTF-8 (byte 0xff at byte 8)"),
    ],
)
def test_what_parsers_disagree_on_is_refused_on_the_whole(text: str | bytes, reason: str) -> None:
    assert refusal(text) == ("$", reason)


def test_invalid_json_says_where() -> None:
    field, reason = refusal('{"a": 1,}')
    assert field == "$" and reason.startswith("not valid JSON: ") and "column 9" in reason


def test_a_long_path_is_cut() -> None:
    key = "k" * 1_000
    field, _ = refusal(f'{{"{key}": 1, "{key}": 2}}')
    assert len(field) == strict_json.PATH_MAX_CHARS and field.endswith("...")
