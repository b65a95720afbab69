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

from engram.client.answers import (
    UNCHANGED,
    Features,
    Forgotten,
    Memory,
    MemoryHit,
    MemoryVersion,
    NewMemory,
    RankedItem,
    Ranking,
    Rejection,
    SignalsResult,
)
from engram.client.errors import (
    Conflict,
    EngramAPIError,
    EngramClientError,
    EngramConnectionError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    Unauthorized,
)
from engram.client.operations import EngramClient

__all__ = [
    "UNCHANGED",
    "Conflict",
    "EngramAPIError",
    "EngramClient",
    "EngramClientError",
    "EngramConnectionError",
    "Features",
    "Forbidden",
    "Forgotten",
    "InvalidRequest",
    "Memory",
    "MemoryHit",
    "MemoryVersion",
    "NewMemory",
    "NotFound",
    "PayloadTooLarge",
    "RankedItem",
    "Ranking",
    "Rejection",
    "ServiceUnavailable",
    "SignalsResult",
    "Unauthorized",
]
