"""JSON read strictly, so that a document means one thing to every reader of it.

Parsers disagree on documents RFC 8259 leaves open or forbids: an object naming a key twice
(Python keeps the last value, DuckDB the first, so a record could be credited to one user and
forgotten as another), NaN and Infinity, lone UTF-16 surrogate escapes ("\\ud800", which no
UTF-8 store can hold), and nesting deeper than a recursive parser can follow. `loads` refuses
them all with an InvalidInputError naming the field (a path such as `user_id`, `context.query`
or `$[3].user_id`; `$` is the whole document) and the reason. Used by the API for every body and
by normalization for the records its vectorized checks flag.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

from core.errors import InvalidInputError

# Only a \ud800-\udfff escape can put a surrogate in a parsed string (UTF-8 cannot encode one), so
# documents without such an escape skip the search for it.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# A path echoes keys the client chose: cut, so that an error stays readable.
PATH_MAX_CHARS = 128


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class _Duplicated(dict[str, Any]):
    """An object that named `key` more than once (found on a second, marking parse)."""

    key = ""


def loads(data: str | bytes) -> Any:
    """The value of a JSON document (UTF-8 when bytes), or InvalidInputError saying what is
    wrong where."""
    if isinstance(data, bytes | bytearray):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidInputError(
                "$", f"not UTF-8 (byte 0x{data[error.start]:02x} at byte {error.start + 1})"
            ) from None
    else:
        text = data
    try:
        value = json.loads(text, object_pairs_hook=_unique, parse_constant=_no_constant)
    except _DuplicateKey:
        path = shown_path(_duplicate_path(text))
        raise InvalidInputError(
            path, f"duplicate key '{path}': a JSON object names each key once"
        ) from None
    except RecursionError:
        raise InvalidInputError("$", "nested too deeply") from None
    except ValueError as error:
        raise InvalidInputError("$", f"not valid JSON: {error}") from None
    if _SURROGATE_ESCAPE.search(text):
        at = _surrogate_path(value)
        if at is not None:
            shown = shown_path(at)
            raise InvalidInputError(
                shown,
                f"'{shown}' holds a lone UTF-16 surrogate escape (\\ud800-\\udfff), "
                "which is no character",
            )
    return value


def depth(value: Any) -> int:
    """How deep a parsed value nests: 0 for a scalar, 1 for a flat object or array."""
    deepest = 0
    stack: list[tuple[int, Any]] = [(0, value)]
    while stack:
        level, node = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level + 1)
            children = node.values() if isinstance(node, dict) else node
            stack.extend((level + 1, child) for child in children)
    return deepest


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise _DuplicateKey(next(key for key, n in Counter(k for k, _ in pairs).items() if n > 1))
    return found


def _marking(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) == len(pairs):
        return found
    marked = _Duplicated(found)
    marked.key = next(key for key, n in Counter(k for k, _ in pairs).items() if n > 1)
    return marked


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _duplicate_path(text: str) -> str:
    """The path of the first duplicated key, outermost first (a second parse that marks)."""
    value = json.loads(text, object_pairs_hook=_marking)
    for path, node in _walk(value):
        if isinstance(node, _Duplicated):
            return _child(path, node.key)
    return "$"  # not reached: the first parse found one


def _surrogate_path(value: Any) -> str | None:
    """The path of the first string (or key) holding a lone surrogate, else None."""
    for path, node in _walk(value):
        if isinstance(node, str) and _SURROGATE.search(node):
            return path
        if isinstance(node, dict):
            for key in node:
                if _SURROGATE.search(key):
                    return _child(path, key)
    return None


def _walk(value: Any) -> Iterator[tuple[str, Any]]:
    """Every node with its path, in document order (iterative: any depth)."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, node = stack.pop()
        yield path or "$", node
        if isinstance(node, dict):
            stack.extend((_child(path, key), child) for key, child in reversed(node.items()))
        elif isinstance(node, list):
            prefix = path or "$"
            stack.extend((f"{prefix}[{i}]", node[i]) for i in range(len(node) - 1, -1, -1))


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path and path != "$" else key


def shown_path(path: str) -> str:
    """A path fit for an error message: surrogates escaped, cut to PATH_MAX_CHARS."""
    shown = path.encode("utf-8", "backslashreplace").decode("utf-8")
    return shown if len(shown) <= PATH_MAX_CHARS else shown[: PATH_MAX_CHARS - 3] + "..."
