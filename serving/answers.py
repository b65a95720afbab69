"""What the API answers, as pydantic models: they describe each success body and the one error
body in /openapi.json, so a generated client gets typed results.

Views build their answers as plain dicts (the rank path is latency-critical, and orjson writes
numpy values as they come); tests/serving/test_openapi.py checks fuzzed answers against these
models, and the generated-client test parses real ones with them. Answers take no
`extra="forbid"`: a later field must not break an older client. A field marked `Absent` may be
left out of an answer, and is never null.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from memory.records import MemoryKind
from serving.bodies import Absent


class ErrorBody(BaseModel):
    """Every error: a short code, the field at fault when there is one, and what is wrong."""

    error: str = Field(description="A short code, e.g. invalid_input.")
    field: str | Absent = Field(
        None, description="The field at fault: `k`, `context.time`, `candidates[3]`, `$` (all)."
    )
    detail: str


class Contribution(BaseModel):
    """One feature's share of an item's score (LightGBM's SHAP contribution)."""

    name: str
    contribution: float


class RankReasons(BaseModel):
    """Why the model ranked an item: its candidate sources, and with `explain` its top
    features."""

    sources: list[str]
    top_features: list[Contribution] | Absent = None


class RankedItem(BaseModel):
    """An item and its score; `reasons` when the model ranked it."""

    item_id: str
    score: float
    reasons: RankReasons | Absent = None


class RankAnswer(BaseModel):
    """The k best items, best first."""

    user_id: str
    items: list[RankedItem]
    model_version: str = Field(description="The model's version, or `popularity`.")
    degraded: bool
    degraded_reason: str | None = Field(
        description="Why popularity answered: no model, redis unavailable, milvus unavailable, "
        "unknown user; null when the model did."
    )


class Rejection(BaseModel):
    """A signal the contract refused, and why."""

    index: int = Field(description="Its index in the array, or its 0-based NDJSON line.")
    event_id: str | None
    field: str
    reason: str


class SignalsAnswer(BaseModel):
    """How many signals were accepted, and each rejection."""

    accepted: int = Field(ge=0)
    rejected: int = Field(ge=0)
    rejections: list[Rejection]
    processed: dict[str, Any] | Absent = Field(
        None, description="With ?sync=true: what the stream step did."
    )


class Features(BaseModel):
    """A user's online features of the `ranking` feature service."""

    user_id: str
    feature_service: str
    event_timestamps: dict[str, datetime | None] = Field(description="Per feature view.")
    features: dict[str, Any]


class Memory(BaseModel):
    """A memory as stored: what was learned, from which signals, and when it holds."""

    memory_id: str
    user_id: str
    kind: MemoryKind
    text: str
    confidence: float
    slot: str | None
    value: str | None
    valid_from: datetime
    valid_to: datetime | None
    expires_at: datetime | None
    superseded_by: str | None
    created_at: datetime
    updated_at: datetime
    source_event_ids: list[str] = Field(
        description="The signals it was learnt from; `added:...` for an added memory."
    )
    scope: str | None = Field(description="Its scope; null: the user's own memories.")


class MemoryHit(Memory):
    """A memory found by a search, with its score and the score's parts."""

    score: float
    parts: dict[str, float]


class MemoryList(BaseModel):
    """A user's memories true at a time, oldest first."""

    user_id: str
    memories: list[Memory]


class SearchAnswer(BaseModel):
    """The best memories for a query, best first."""

    user_id: str
    query: str
    memories: list[MemoryHit]


class MemoriesAdded(BaseModel):
    """The id of the memory holding each added one, in order: a new memory, or the one it
    merged into."""

    user_id: str
    memory_ids: list[str]


class MemoryVersion(Memory):
    """A memory as it was until `replaced_at`."""

    version: int = Field(ge=1, description="1 is the first version.")
    replaced_at: datetime | None = Field(description="When it was replaced; null: current.")


class MemoryHistory(BaseModel):
    """A memory's versions, oldest first, the current one last."""

    user_id: str
    memory_id: str
    versions: list[MemoryVersion]


class MemoryDeleted(BaseModel):
    """One memory deleted."""

    user_id: str
    memory_id: str
    deleted: Literal[True]


class Forgotten(BaseModel):
    """What forgetting a user removed, per store (docs/api.md, "Forgetting")."""

    user_id: str
    memories: int = Field(ge=0)
    outbox: int = Field(ge=0)
    events: int = Field(ge=0)
    dead_letter: int = Field(ge=0)
    feature_rows: int = Field(ge=0)
    online: int = Field(ge=0)
    stream: int = Field(ge=0)
    stream_state: int = Field(ge=0)
    model_versions: int = Field(ge=0)
    model_interactions: int = Field(ge=0)
    candidates: int = Field(0, ge=0, description="The user's candidates kept in Redis (0 or 1).")
    logs: dict[str, str] = Field(
        description="Per log that held deleted writes: done, not_needed, refused, failed or "
        "timed_out."
    )


class Check(BaseModel):
    """One readiness check."""

    ok: bool
    detail: str | Absent = None
    version: str | None = Field(None, description="The model's version.")


class Ready(BaseModel):
    """Whether Redis and Milvus answer, and whether a model is loaded."""

    ready: bool
    checks: dict[str, Check]
    down: list[Literal["redis", "milvus"]] | Absent = None


class Health(BaseModel):
    """The process answers."""

    status: Literal["ok"]
