"""What the API answers, as frozen dataclasses built from its JSON (fields the server adds later
are ignored), and what the client sends that has a shape of its own (`NewMemory`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engram.client.errors import EngramClientError


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def _required_time(value: str) -> datetime:
    parsed = _time(value)
    if parsed is None:
        raise EngramClientError("the API answered null for a required time")
    return parsed


def iso(moment: datetime) -> str:
    """A time as the API takes it (RFC 3339); a time without a timezone is refused."""
    if moment.tzinfo is None:
        raise ValueError("times need a timezone (datetime(..., tzinfo=UTC))")
    return moment.isoformat()


@dataclass(frozen=True)
class Memory:
    """A memory: what is known, its kind, when it holds, and what it was learnt from."""

    memory_id: str
    user_id: str
    kind: str
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
    source_event_ids: tuple[str, ...]
    scope: str | None

    @staticmethod
    def _fields(data: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "memory_id": data["memory_id"],
            "user_id": data["user_id"],
            "kind": data["kind"],
            "text": data["text"],
            "confidence": float(data["confidence"]),
            "slot": data.get("slot"),
            "value": data.get("value"),
            "valid_from": _required_time(data["valid_from"]),
            "valid_to": _time(data.get("valid_to")),
            "expires_at": _time(data.get("expires_at")),
            "superseded_by": data.get("superseded_by"),
            "created_at": _required_time(data["created_at"]),
            "updated_at": _required_time(data["updated_at"]),
            "source_event_ids": tuple(data.get("source_event_ids", ())),
            "scope": data.get("scope"),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Memory:
        """A memory from its JSON."""
        return cls(**cls._fields(data))


@dataclass(frozen=True)
class MemoryHit(Memory):
    """A memory a search found, its score and the score's parts."""

    score: float
    parts: dict[str, float]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MemoryHit:
        """A hit from its JSON."""
        return cls(
            **Memory._fields(data), score=float(data["score"]), parts=dict(data.get("parts", {}))
        )


@dataclass(frozen=True)
class MemoryVersion(Memory):
    """A memory as it was until `replaced_at` (None: the current version)."""

    version: int
    replaced_at: datetime | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MemoryVersion:
        """A version from its JSON."""
        return cls(
            **Memory._fields(data),
            version=int(data["version"]),
            replaced_at=_time(data.get("replaced_at")),
        )


@dataclass(frozen=True)
class NewMemory:
    """A memory to add: a text, and optionally its kind, since when it holds, and its scope (a
    session, agent or app id)."""

    text: str
    kind: str | None = None
    valid_from: datetime | None = None
    scope: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The memory as the API takes it."""
        body: dict[str, Any] = {"text": self.text}
        if self.kind is not None:
            body["kind"] = self.kind
        if self.valid_from is not None:
            body["valid_from"] = iso(self.valid_from)
        if self.scope is not None:
            body["scope"] = self.scope
        return body


@dataclass(frozen=True)
class Rejection:
    """A signal the contract refused, and why."""

    index: int
    event_id: str | None
    field: str
    reason: str


@dataclass(frozen=True)
class SignalsResult:
    """How many signals were accepted, each rejection, and with `sync` what processing did."""

    accepted: int
    rejected: int
    rejections: tuple[Rejection, ...]
    processed: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SignalsResult:
        """The answer from its JSON."""
        return cls(
            accepted=int(data["accepted"]),
            rejected=int(data["rejected"]),
            rejections=tuple(
                Rejection(r["index"], r.get("event_id"), r["field"], r["reason"])
                for r in data.get("rejections", ())
            ),
            processed=data.get("processed"),
        )


@dataclass(frozen=True)
class Features:
    """A user's online features, with each feature view's event time."""

    user_id: str
    feature_service: str
    features: dict[str, Any]
    event_timestamps: dict[str, datetime | None]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Features:
        """The features from their JSON."""
        return cls(
            user_id=data["user_id"],
            feature_service=data["feature_service"],
            features=dict(data["features"]),
            event_timestamps={
                view: _time(at) for view, at in data.get("event_timestamps", {}).items()
            },
        )


@dataclass(frozen=True)
class RankedItem:
    """An item, its score, and when the model ranked it, why: its candidate sources and (with
    `explain`) the features that moved its score most."""

    item_id: str
    score: float
    sources: tuple[str, ...] = ()
    top_features: dict[str, float] | None = None


@dataclass(frozen=True)
class Ranking:
    """Items for a user, best first; `degraded_reason` says why popularity answered."""

    user_id: str
    items: tuple[RankedItem, ...]
    model_version: str
    degraded: bool
    degraded_reason: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Ranking:
        """The ranking from its JSON."""
        items = []
        for item in data["items"]:
            reasons = item.get("reasons") or {}
            top = reasons.get("top_features")
            items.append(
                RankedItem(
                    item_id=item["item_id"],
                    score=float(item["score"]),
                    sources=tuple(reasons.get("sources", ())),
                    top_features=None
                    if top is None
                    else {entry["name"]: float(entry["contribution"]) for entry in top},
                )
            )
        return cls(
            user_id=data["user_id"],
            items=tuple(items),
            model_version=data["model_version"],
            degraded=bool(data["degraded"]),
            degraded_reason=data.get("degraded_reason"),
        )


@dataclass(frozen=True)
class Forgotten:
    """What forgetting a user removed: a count per store, and per log whether it was rewritten
    without them (docs/api.md, "Forgetting")."""

    user_id: str
    removed: dict[str, int]
    logs: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Forgotten:
        """The answer from its JSON."""
        counts = {k: int(v) for k, v in data.items() if k not in ("user_id", "logs")}
        return cls(user_id=data["user_id"], removed=counts, logs=dict(data.get("logs", {})))


class Unchanged:
    """The type of `UNCHANGED`."""

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = Unchanged()  # update_memory: leave valid_to as it is (None reopens the memory)
