"""A Python client of the Engram HTTP API (docs/api.md): `EngramClient(url, key)`.

    from engram.client import EngramClient, NewMemory

    with EngramClient("http://127.0.0.1:8000", key) as engram:
        engram.post_signals([{"event_id": "e1", "user_id": "ana", "ts": "...", "type": "view",
                              "item_id": "item-1"}])
        [memory_id] = engram.add_memories("ana", [NewMemory("Lives in Boston")])
        hits = engram.search_memories("ana", "where does she live", k=3)
        ranked = engram.rank("ana", k=10)

It speaks HTTP and nothing else: it imports `requests` and no module of the server (no Feast,
Milvus, Redis, torch, Flask); the `engram` package around it loads only `core`'s import guard
(core/__init__.py). Import time: docs/benchmarks.md. Answers come back as the dataclasses below
(fields the server adds later are ignored); errors as `EngramAPIError` subclasses carrying the
API's error body (`error`, `field`, `detail`), or `EngramConnectionError` when no answer came.

Retries. A 503 (a store the server needs is down: docs/api.md, "Failing fast"), a 502 or 504
from a proxy, a refused or dropped connection, or a timeout are retried, up to `retries` times
with exponential backoff (from `backoff_s`, doubling, capped at `MAX_BACKOFF_S`, with jitter,
and never sooner than the `Retry-After` the server asks), but only for requests that can be
sent twice with the effect of once:
- reads: features, list, get, search, history, rank (a POST, but it changes nothing);
- signals: the server keeps one copy per `event_id` (the stream counts an event once, the event
  store deduplicates), so a batch sent again after an answer was lost adds nothing;
- deletes of a memory or of a user: a second delete finds nothing more to delete (a forget that
  failed part way is completed by sending it again, docs/api.md, "Forgetting"). A memory
  delete retried after its answer was lost may therefore answer `NotFound`.
Adding memories and correcting one are not retried: adding again adds evidence (a second
source) to the memory, and a correction sent twice keeps two versions in its history. Their
errors are raised at once; the caller decides.

Timeouts: `connect_timeout_s` to connect, `timeout_s` for the answer (`FORGET_TIMEOUT_S` for a
forget, which compacts the memory collection before answering).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import requests

DEFAULT_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 3.0
FORGET_TIMEOUT_S = 120.0
RETRIES = 4
BACKOFF_S = 0.25
MAX_BACKOFF_S = 4.0
RETRY_STATUSES = frozenset({502, 503, 504})
USER_AGENT = "engram-client/0.1"

T = TypeVar("T")


# --- errors -------------------------------------------------------------------------------------


class EngramClientError(Exception):
    """Base class of every error the client raises."""


class EngramConnectionError(EngramClientError):
    """No answer: the connection was refused or dropped, or the answer took too long, on every
    attempt."""

    def __init__(self, method: str, url: str, attempts: int, cause: Exception) -> None:
        self.method = method
        self.url = url
        self.attempts = attempts
        self.cause = cause
        tries = "attempt" if attempts == 1 else "attempts"
        super().__init__(f"{method} {url}: no answer after {attempts} {tries} ({cause})")


class EngramAPIError(EngramClientError):
    """The API answered with an error: its status and its error body."""

    status_code = 0

    def __init__(self, status_code: int, body: Mapping[str, Any], retry_after: float | None = None):
        self.status_code = status_code
        self.body = dict(body)
        self.error: str = str(body.get("error", "error"))
        self.field: str | None = body.get("field")
        self.detail: str = str(body.get("detail", ""))
        self.retry_after = retry_after
        where = f" ({self.field})" if self.field else ""
        super().__init__(f"{status_code} {self.error}{where}: {self.detail}")


class InvalidRequest(EngramAPIError):
    """400: the request is invalid; `field` names what to fix."""


class Unauthorized(EngramAPIError):
    """401: no API key, or an unknown one."""


class Forbidden(EngramAPIError):
    """403: the key lacks the scope the operation needs."""


class NotFound(EngramAPIError):
    """404: no such user or memory."""


class Conflict(EngramAPIError):
    """409: the server's memory collection predates scopes and history
    (`engram memories migrate`)."""


class PayloadTooLarge(EngramAPIError):
    """413: the body or batch is too large."""


class ServiceUnavailable(EngramAPIError):
    """503 (or 502, 504): a store the operation needs is down; the retries ran out."""


_ERRORS: dict[int, type[EngramAPIError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    502: ServiceUnavailable,
    503: ServiceUnavailable,
    504: ServiceUnavailable,
}


# --- what the API answers -----------------------------------------------------------------------


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def _required_time(value: str) -> datetime:
    parsed = _time(value)
    if parsed is None:
        raise EngramClientError("the API answered null for a required time")
    return parsed


def _iso(moment: datetime) -> str:
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
            body["valid_from"] = _iso(self.valid_from)
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


class _Unchanged:
    """The type of `UNCHANGED`."""

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = _Unchanged()  # update_memory: leave valid_to as it is (None reopens the memory)


# --- the client ---------------------------------------------------------------------------------


class EngramClient:
    """The Engram API at `url`, called with the API key `key` (None: a server run with
    --no-auth). One connection pool per client; use one client per thread."""

    def __init__(
        self,
        url: str,
        key: str | None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        retries: int = RETRIES,
        backoff_s: float = BACKOFF_S,
        session: requests.Session | None = None,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self._session = session or requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        if key is not None:
            self._session.headers["Authorization"] = f"Bearer {key}"
        self.sleep: Callable[[float], None] = time.sleep  # how backoff waits

    def __enter__(self) -> EngramClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._session.close()

    # --- signals and features -------------------------------------------------------------------

    def post_signals(
        self, signals: Iterable[Mapping[str, Any]], *, sync: bool = False
    ) -> SignalsResult:
        """Send signals (docs/signals.md); with `sync` they are processed before the answer, so
        features and memories read next see them. Rejected ones are in the result, not raised.
        Retried: the server keeps one copy per event_id."""
        params = {"sync": "true"} if sync else None
        data = self._call("POST", "/v1/signals", json=list(signals), params=params, idempotent=True)
        return SignalsResult.from_json(data)

    def features(self, user_id: str) -> Features:
        """The user's online features (NotFound when none are held)."""
        return Features.from_json(self._call("GET", f"/v1/users/{_id(user_id)}/features"))

    # --- memories -------------------------------------------------------------------------------

    def add_memories(self, user_id: str, memories: Sequence[NewMemory | str]) -> list[str]:
        """Add what the application knows about the user; each joins their memories as an
        extracted one would (merged with what is known, superseding an earlier value). The id
        of the memory holding each one, in order. Not retried (see the module doc)."""
        body = {
            "memories": [
                (NewMemory(item) if isinstance(item, str) else item).to_json() for item in memories
            ]
        }
        data = self._call("POST", f"/v1/users/{_id(user_id)}/memories", json=body, idempotent=False)
        return list(data["memory_ids"])

    def add_memory(
        self,
        user_id: str,
        text: str,
        *,
        kind: str | None = None,
        valid_from: datetime | None = None,
        scope: str | None = None,
    ) -> str:
        """Add one memory; the id of the memory holding it."""
        [memory_id] = self.add_memories(user_id, [NewMemory(text, kind, valid_from, scope)])
        return memory_id

    def get_memory(self, user_id: str, memory_id: str) -> Memory:
        """One memory as it is now (NotFound when the user holds none with this id)."""
        path = f"/v1/users/{_id(user_id)}/memories/{_id(memory_id)}"
        return Memory.from_json(self._call("GET", path))

    def list_memories(
        self,
        user_id: str,
        *,
        kinds: Sequence[str] | None = None,
        as_of: datetime | None = None,
        scope: str | None = None,
    ) -> list[Memory]:
        """The user's memories true at `as_of` (default now), oldest first; of `kinds`, of one
        `scope` (default: every scope)."""
        params: dict[str, Any] = {}
        if kinds:
            params["kind"] = list(kinds)
        if as_of is not None:
            params["as_of"] = _iso(as_of)
        if scope is not None:
            params["scope"] = scope
        data = self._call("GET", f"/v1/users/{_id(user_id)}/memories", params=params)
        return [Memory.from_json(memory) for memory in data["memories"]]

    def search_memories(
        self,
        user_id: str,
        query: str,
        *,
        k: int = 10,
        kinds: Sequence[str] | None = None,
        as_of: datetime | None = None,
        scope: str | None = None,
    ) -> list[MemoryHit]:
        """The user's `k` best memories for `query`, true at `as_of` (default now), best
        first."""
        body: dict[str, Any] = {"query": query, "k": k}
        if kinds is not None:
            body["kinds"] = list(kinds)
        if as_of is not None:
            body["as_of"] = _iso(as_of)
        if scope is not None:
            body["scope"] = scope
        path = f"/v1/users/{_id(user_id)}/memories/search"
        data = self._call("POST", path, json=body, idempotent=True)
        return [MemoryHit.from_json(hit) for hit in data["memories"]]

    def update_memory(
        self,
        user_id: str,
        memory_id: str,
        *,
        text: str | None = None,
        valid_from: datetime | None = None,
        valid_to: datetime | _Unchanged | None = UNCHANGED,
    ) -> Memory:
        """Correct a memory: its text, since when or until when it holds (`valid_to=None`:
        it holds again); the version it replaces is kept in its history. Not retried."""
        body: dict[str, Any] = {}
        if text is not None:
            body["text"] = text
        if valid_from is not None:
            body["valid_from"] = _iso(valid_from)
        if not isinstance(valid_to, _Unchanged):
            body["valid_to"] = None if valid_to is None else _iso(valid_to)
        path = f"/v1/users/{_id(user_id)}/memories/{_id(memory_id)}"
        return Memory.from_json(self._call("PATCH", path, json=body, idempotent=False))

    def memory_history(self, user_id: str, memory_id: str) -> list[MemoryVersion]:
        """A memory's versions, oldest first, the current one last."""
        path = f"/v1/users/{_id(user_id)}/memories/{_id(memory_id)}/history"
        data = self._call("GET", path)
        return [MemoryVersion.from_json(version) for version in data["versions"]]

    def delete_memory(self, user_id: str, memory_id: str) -> None:
        """Delete one memory and its history (NotFound when the user holds none with this
        id)."""
        path = f"/v1/users/{_id(user_id)}/memories/{_id(memory_id)}"
        self._call("DELETE", path, idempotent=True)

    # --- ranking and forgetting -----------------------------------------------------------------

    def rank(
        self,
        user_id: str,
        *,
        k: int = 10,
        candidates: Sequence[str] | None = None,
        query: str | None = None,
        at: datetime | None = None,
        explain: bool = False,
    ) -> Ranking:
        """The user's `k` best items (of `candidates` when given), for `query`, as of `at`."""
        body: dict[str, Any] = {"user_id": user_id, "k": k, "explain": explain}
        if candidates is not None:
            body["candidates"] = list(candidates)
        context: dict[str, Any] = {}
        if query is not None:
            context["query"] = query
        if at is not None:
            context["time"] = _iso(at)
        if context:
            body["context"] = context
        return Ranking.from_json(self._call("POST", "/v1/rank", json=body, idempotent=True))

    def forget(self, user_id: str) -> Forgotten:
        """Forget the user in every store (an admin key); what each store removed. Retried: a
        forget that failed part way is completed by sending it again."""
        data = self._call(
            "DELETE",
            f"/v1/users/{_id(user_id)}",
            idempotent=True,
            timeout_s=max(self.timeout_s, FORGET_TIMEOUT_S),
        )
        return Forgotten.from_json(data)

    # --- transport ------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        idempotent: bool = True,
        timeout_s: float | None = None,
    ) -> Any:
        """One API call: its JSON answer, retried as the module doc says; errors raised."""
        url = f"{self.url}{path}"
        timeout = (self.connect_timeout_s, timeout_s or self.timeout_s)
        attempts = 1 + (self.retries if idempotent else 0)
        for attempt in range(1, attempts + 1):
            try:
                answer = self._session.request(
                    method, url, json=json, params=params, timeout=timeout
                )
            except (requests.ConnectionError, requests.Timeout) as error:
                if attempt == attempts:
                    raise EngramConnectionError(method, url, attempt, error) from error
                self.sleep(self._backoff(attempt, None))
                continue
            if answer.status_code < 400:
                return answer.json()
            error_class = _ERRORS.get(answer.status_code, EngramAPIError)
            raised = error_class(
                answer.status_code, _error_body(answer), _retry_after(answer.headers)
            )
            if answer.status_code not in RETRY_STATUSES or attempt == attempts:
                raise raised
            self.sleep(self._backoff(attempt, raised.retry_after))
        raise AssertionError("unreachable")  # the loop returns or raises

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before attempt `attempt + 1`: doubling from `backoff_s`, capped, with
        jitter (so clients that failed together do not retry together), and never sooner than
        the server's Retry-After."""
        delay = min(MAX_BACKOFF_S, self.backoff_s * 2 ** (attempt - 1))
        delay *= 0.5 + random.random() / 2
        return max(delay, min(retry_after or 0.0, MAX_BACKOFF_S))


def _id(value: str) -> str:
    """An id as a path segment (ids are plain, but a stray `/` must not change the route)."""
    return quote(value, safe="")


def _error_body(answer: requests.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    return {"error": "error", "detail": answer.text[:1000] or answer.reason or ""}


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: the backoff decides
