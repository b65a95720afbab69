"""API keys issued by `engram keys create`, kept in Redis so every host sees a revocation at once.

A key reads `egk_<key_id>_<secret>`: the id names its record, `engram:apikey:<key_id>`, a hash of
the key's SHA-256 digest, scopes, tenant, rate limit and creation time. The key itself is shown
once, when created, and stored nowhere. A request with such a key costs one round trip: the
record and the key's request count for the current second, pipelined. Revoking deletes the
record, so the next request on any host is refused. Keys from configuration (ENGRAM_API_KEYS)
work beside these and need no Redis.

The rate limit counts a key's requests per wall-clock second (`engram:rate:<key_id>:<second>`,
expiring after two); over it, a request is answered 429 with `Retry-After: 1`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from core.errors import EngramError, InvalidInputError, ServiceUnavailableError
from core.stores.cluster import RedisClient

PREFIX = "egk_"
RECORD = "engram:apikey:"
RATE = "engram:rate:"
SCOPES = ("read", "write", "admin")
_KEY = re.compile(r"egk_([0-9a-f]{16})_[A-Za-z0-9_-]{32,64}")
_TENANT = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True)
class IssuedKey:
    """A key's record (never the key)."""

    key_id: str
    scopes: frozenset[str]
    tenant: str | None
    rate_per_second: int  # 0: no limit
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for `engram keys list`."""
        return {
            "key_id": self.key_id,
            "scopes": sorted(self.scopes),
            "tenant": self.tenant,
            "rate_per_second": self.rate_per_second,
            "created_at": self.created_at,
        }


class RateLimited(EngramError):
    """The key sent more requests this second than its limit."""

    def __init__(self, key_id: str, limit: int) -> None:
        super().__init__(f"key {key_id} is limited to {limit} requests per second")
        self.key_id = key_id
        self.limit = limit


def is_issued(token: str) -> bool:
    """Whether a presented token has the shape of an issued key (else: a configured one)."""
    return token.startswith(PREFIX)


def create(
    client: RedisClient, scopes: set[str], tenant: str | None = None, rate_per_second: int = 0
) -> tuple[IssuedKey, str]:
    """A new key with these scopes (admin implies read and write): its record and the key."""
    unknown = scopes - set(SCOPES)
    if unknown or not scopes:
        raise InvalidInputError("scopes", f"give one or more of {', '.join(SCOPES)}")
    if tenant is not None and not _TENANT.fullmatch(tenant):
        raise InvalidInputError("tenant", "1-64 letters, digits, '.', '_' or '-'")
    if rate_per_second < 0:
        raise InvalidInputError("rate", "must be 0 (no limit) or more")
    if "admin" in scopes:
        scopes = scopes | {"read", "write"}
    key_id = secrets.token_hex(8)
    key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    issued = IssuedKey(
        key_id,
        frozenset(scopes),
        tenant,
        rate_per_second,
        datetime.now(UTC).isoformat(timespec="seconds"),
    )
    client.hset(
        RECORD + key_id,
        mapping={
            "digest": _digest(key),
            "scopes": ",".join(sorted(scopes)),
            "tenant": tenant or "",
            "rate": str(rate_per_second),
            "created_at": issued.created_at,
        },
    )
    return issued, key


def listed(client: RedisClient) -> list[IssuedKey]:
    """Every issued key's record, oldest first."""
    records = []
    for name in client.scan_iter(match=RECORD + "*", count=500):
        fields: dict[bytes, bytes] = client.hgetall(name)  # type: ignore[assignment]
        if fields:
            records.append(_record(name.decode().removeprefix(RECORD), fields))
    return sorted(records, key=lambda r: (r.created_at, r.key_id))


def revoke(client: RedisClient, key_id: str) -> bool:
    """Remove a key: refused on every host from the next request. False if there was none."""
    if not re.fullmatch(r"[0-9a-f]{16}", key_id):
        raise InvalidInputError("key_id", "not a key id (16 hex characters)")
    return bool(client.delete(RECORD + key_id))


def check(client: RedisClient, token: str, now: float | None = None) -> IssuedKey | None:
    """The record of a presented issued key, or None when it is unknown or revoked; RateLimited
    over its limit; ServiceUnavailableError when Redis does not answer."""
    found = _KEY.fullmatch(token)
    if found is None:
        return None
    key_id = found.group(1)
    second = int(now if now is not None else time.time())
    counter = f"{RATE}{key_id}:{second}"
    try:
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(RECORD + key_id)
        pipe.incr(counter)
        pipe.expire(counter, 2)
        fields, count, _ = pipe.execute()
    except redis.RedisError as error:
        raise ServiceUnavailableError("redis", f"API keys cannot be checked: {error}") from error
    if not fields or not hmac.compare_digest(fields.get(b"digest", b"").decode(), _digest(token)):
        return None
    issued = _record(key_id, fields)
    if issued.rate_per_second and count > issued.rate_per_second:
        raise RateLimited(key_id, issued.rate_per_second)
    return issued


def held(client: RedisClient, key_id: str, digest: str) -> IssuedKey | None:
    """The record of a key known by its id and digest (a browser session holds those, never the
    key), or None once it is revoked; nothing is counted against its rate."""
    try:
        fields: dict[bytes, bytes] = client.hgetall(RECORD + key_id)  # type: ignore[assignment]
    except redis.RedisError as error:
        raise ServiceUnavailableError("redis", f"API keys cannot be checked: {error}") from error
    if not fields or not hmac.compare_digest(fields.get(b"digest", b"").decode(), digest):
        return None
    return _record(key_id, fields)


def _record(key_id: str, fields: dict[bytes, bytes]) -> IssuedKey:
    text = {k.decode(): v.decode() for k, v in fields.items()}
    return IssuedKey(
        key_id,
        frozenset(s for s in text.get("scopes", "").split(",") if s),
        text.get("tenant") or None,
        int(text.get("rate", "0") or 0),
        text.get("created_at", ""),
    )


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
