"""`EngramClient`: the API's operations as methods, over one retrying transport (the package doc
says what is retried and why)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests

from engram.client.answers import (
    UNCHANGED,
    Features,
    Forgotten,
    Memory,
    MemoryHit,
    MemoryVersion,
    NewMemory,
    Ranking,
    SignalsResult,
    Unchanged,
    iso,
)
from engram.client.errors import (
    ERRORS,
    EngramAPIError,
    EngramConnectionError,
)

DEFAULT_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 3.0
FORGET_TIMEOUT_S = 120.0
RETRIES = 4
BACKOFF_S = 0.25
MAX_BACKOFF_S = 4.0
RETRY_STATUSES = frozenset({502, 503, 504})
USER_AGENT = "engram-client/0.1"


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
            params["as_of"] = iso(as_of)
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
            body["as_of"] = iso(as_of)
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
        valid_to: datetime | Unchanged | None = UNCHANGED,
    ) -> Memory:
        """Correct a memory: its text, since when or until when it holds (`valid_to=None`:
        it holds again); the version it replaces is kept in its history. Not retried."""
        body: dict[str, Any] = {}
        if text is not None:
            body["text"] = text
        if valid_from is not None:
            body["valid_from"] = iso(valid_from)
        if not isinstance(valid_to, Unchanged):
            body["valid_to"] = None if valid_to is None else iso(valid_to)
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
            context["time"] = iso(at)
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
            error_class = ERRORS.get(answer.status_code, EngramAPIError)
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
