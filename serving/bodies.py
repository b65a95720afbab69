"""What clients send: request bodies, path and query parameters, as pydantic models.

flask-openapi3 validates each request against these models before a view runs (a view receives
`body`, `path`, `query` already checked) and writes them into /openapi.json, so the document and
the checks are one description. Bodies are strict: JSON types as they are (`"3"` is no integer,
`1` no boolean) and an unknown field is a 400 naming it (`extra="forbid"`). Query parameters
arrive as text, so they are converted (`?sync=true`), and parameters no route takes are ignored.
Ids follow the signal contract's rule (core/contract.py), so any id a signal can carry can be read
back and nothing else reaches a store key or a filter expression; times are RFC 3339 with an
offset, within the contract's range, so that every one converts to UTC and to pandas' nanosecond
timestamps (1677 to 2262), windows around it included.

A signal batch is no model: each record is checked by the contract's own rules and accepted or
rejected on its own (serving/intake.py). `Signal` only describes one in the document.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from core.contract import ID_PATTERN, SIGNAL_TYPES
from core.errors import InvalidInputError
from core.times import parse_contract_time
from memory.records import MemoryKind

MAX_K = 1_000
MAX_CANDIDATES = 1_000
MAX_QUERY_CHARS = 1_000
MAX_KINDS = 100
MAX_ADDED = 100  # memories per POST: each is embedded before the answer
MAX_MEMORY_CHARS = 2_000


def _time(value: Any) -> datetime:
    """An RFC 3339 time with an offset, in the signal contract's range."""
    try:
        parsed = parse_contract_time(value)
    except InvalidInputError as error:
        raise PydanticCustomError("time", error.reason) from None
    if parsed is None:  # not reached through a `Time | None` field, which takes null first
        raise PydanticCustomError("time", "must be an RFC 3339 time string")
    return parsed


Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Time = Annotated[
    datetime,
    BeforeValidator(_time),
    Field(
        description="RFC 3339 with an offset (2026-11-01T00:00:00Z), from 1970-01-01T00:00:00Z "
        "to before 2100-01-01T00:00:00Z."
    ),
]
# A field that may be left out but is never null: the document shows only its type. For answers
# and descriptions only: pydantic validates it as a union, whose errors name the union's member.
Absent = SkipJsonSchema[None]
K = Annotated[int, Field(ge=1, le=MAX_K, description="How many to answer.")]
Scope = Annotated[
    str,
    StringConstraints(pattern=ID_PATTERN),
    Field(description="A scope of the user's memories: a session, agent or app id."),
]
MemoryText = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_MEMORY_CHARS, pattern=r"\S")
]


class Body(BaseModel):
    """A JSON body: JSON's own types, and no field it does not name."""

    model_config = ConfigDict(strict=True, extra="forbid")


class RankContext(Body):
    """What the request is about, beyond the user."""

    query: Annotated[str, StringConstraints(max_length=MAX_QUERY_CHARS)] | None = Field(
        None, description="Words the items should match (the item vector store is searched)."
    )
    time: Time | None = Field(None, description="Rank as of this time (default now).")


class RankRequest(Body):
    """POST /v1/rank."""

    user_id: Id
    k: K = 10
    candidates: Annotated[list[Id], Field(max_length=MAX_CANDIDATES)] | None = Field(
        None, description="Rank these items only (default: the candidate sources choose)."
    )
    context: RankContext | None = None
    explain: bool = Field(
        False, description="Also give each item's three features that moved its score most."
    )


class SearchRequest(Body):
    """POST /v1/users/{user_id}/memories/search."""

    query: Annotated[
        str, StringConstraints(min_length=1, max_length=MAX_QUERY_CHARS, pattern=r"\S")
    ] = Field(description="What to look for; not blank.")
    k: K = 10
    kinds: Annotated[list[MemoryKind], Field(max_length=MAX_KINDS)] | None = Field(
        None, description="Only memories of these kinds."
    )
    as_of: Time | None = Field(None, description="Memories true at this time (default now).")
    scope: Scope | None = Field(None, description="Only memories of this scope (default: all).")


class NewMemory(Body):
    """One memory an application states about its user."""

    text: MemoryText = Field(
        description="What holds, in a few words: `Lives in Boston`, `I am vegetarian`."
    )
    kind: MemoryKind | None = Field(
        None, description="Default: the kind the rules read in the text, else `attribute`."
    )
    valid_from: Time | None = Field(None, description="Since when it holds (default now).")
    scope: Scope | None = Field(None, description="Default: the user's own memories.")


class AddMemoriesRequest(Body):
    """POST /v1/users/{user_id}/memories."""

    memories: Annotated[list[NewMemory], Field(min_length=1, max_length=MAX_ADDED)]


class MemoryPatch(Body):
    """PATCH /v1/users/{user_id}/memories/{memory_id}: what to correct; the rest stays."""

    text: MemoryText | None = Field(None, description="The corrected text.")
    valid_from: Time | None = Field(None, description="Since when it holds.")
    valid_to: Time | None = Field(
        None, description="Until when it holds; null: it still holds (and is not superseded)."
    )


class UserPath(BaseModel):
    """A route about one user."""

    user_id: Id = Field(description="A user id.")


class MemoryPath(UserPath):
    """A route about one memory of a user."""

    memory_id: Id = Field(description="A memory id, as listed.")


class Query(BaseModel):
    """Query parameters: text converted to the fields' types; parameters no route takes are
    ignored."""

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The model's JSON schema, built once per arguments (read it, never change it):
        flask-openapi3 asks for it on every request, to tell list parameters from single ones,
        and building it costs more than the rest of the request's checks."""
        return _query_schema(cls, *args, **kwargs)


@functools.cache
def _query_schema(model: type[Query], *args: Any, **kwargs: Any) -> dict[str, Any]:
    return super(Query, model).model_json_schema(*args, **kwargs)


class MemoriesQuery(Query):
    """GET /v1/users/{user_id}/memories."""

    kind: list[MemoryKind] | None = Field(None, description="Only these kinds (repeatable).")
    as_of: Time | None = Field(None, description="Memories true at this time (default now).")
    scope: Scope | None = Field(None, description="Only memories of this scope (default: all).")


class SignalsQuery(Query):
    """POST /v1/signals."""

    sync: bool = Field(
        False, description="Process before answering: features and memories visible on return."
    )


class Signal(BaseModel):
    """A signal of contract v1 (docs/signals.md), checked per record; unknown top-level fields
    are ignored (forward compatibility)."""

    model_config = ConfigDict(extra="allow")

    event_id: str | int | Absent = None
    user_id: str | int | Absent = None
    ts: str | float | Absent = Field(None, description="RFC 3339, or epoch seconds.")
    type: str | Absent = Field(None, json_schema_extra={"enum": list(SIGNAL_TYPES)})
    item_id: str | int | Absent = None
    value: float | Absent = Field(None, description="A rating, 0 to 5.")
    text: str | Absent = None
    context: dict[str, Any] | Absent = None
