"""API keys as Bearer tokens, with scopes: read, write, admin (admin implies the other two).

Keys come from configuration (ENGRAM_API_KEYS or ENGRAM_API_KEYS_FILE), or are issued by
`engram keys create` and kept in Redis (serving/keys.py: revocable, with a tenant and a rate
limit). Of configured keys only their SHA-256 digests are kept in memory, and a presented token
is compared with every digest in constant time, so neither timing nor a memory dump of the
process gives a key away. The scope a route
needs is the one its operation states in /openapi.json (serving/spec.py), checked before the
request's input is read or validated. Auth is on unless the app is built with it off, which
`engram serve --no-auth` allows only on a loopback address. A key in the query string is refused
on every route, auth on or off (`refuse_keys_in_query`).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from pathlib import Path

from flask import current_app, g, request
from flask_openapi3 import OpenAPI

from core.errors import ConfigError
from core.settings import Settings
from core.stores.cluster import RedisClient
from serving import keys as issued_keys
from serving.errors import ApiError

SCOPES = ("read", "write", "admin")
KEY_ID_KEY = "engram.key_id"  # WSGI environ keys: which issued key a request came with
TENANT_KEY = "engram.tenant"
# Query parameters clients put keys in. A URL is logged, cached and passed on (proxies, browser
# history, Referer): a key there is refused on every route, before anything else.
QUERY_KEY_NAMES = frozenset({"api_key", "apikey", "key", "token", "access_token"})
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="engram"'}
_PARAMETER = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")  # Flask's <user_id> is OpenAPI's {user_id}


def parse_keys(text: str, separator: str = ";") -> dict[bytes, frozenset[str]]:
    """'key:scope,scope;key2:scope' -> {sha256(key): scopes}; admin implies read and write."""
    keys: dict[bytes, frozenset[str]] = {}
    for number, entry in enumerate(text.split(separator), 1):
        entry = entry.strip()
        if not entry or entry.startswith("#"):
            continue
        key, colon, scopes_text = entry.rpartition(":")
        if not colon or not key:
            raise ConfigError("ENGRAM_API_KEYS", f"entry {number}: expected 'key:scope,scope'")
        if len(key) < 16:
            raise ConfigError("ENGRAM_API_KEYS", f"entry {number}: keys need 16+ characters")
        scopes = {scope.strip() for scope in scopes_text.split(",") if scope.strip()}
        unknown = scopes - set(SCOPES)
        if unknown or not scopes:
            raise ConfigError(
                "ENGRAM_API_KEYS", f"entry {number}: scopes must be among {', '.join(SCOPES)}"
            )
        if "admin" in scopes:
            scopes |= {"read", "write"}
        keys[_digest(key)] = frozenset(scopes)
    return keys


def load_keys(settings: Settings) -> dict[bytes, frozenset[str]]:
    """Every configured key: ENGRAM_API_KEYS, then the lines of ENGRAM_API_KEYS_FILE."""
    keys = parse_keys(settings.engram_api_keys or "")
    if settings.engram_api_keys_file is not None:
        path = Path(settings.engram_api_keys_file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError("ENGRAM_API_KEYS_FILE", f"cannot read {path}: {error}") from error
        keys.update(parse_keys(text, separator="\n"))
    return keys


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses: the only hosts --no-auth may bind."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def scopes_of(token: str, keys: dict[bytes, frozenset[str]]) -> frozenset[str] | None:
    """The scopes of a presented token, or None; compares with every key in constant time."""
    presented = _digest(token)
    found: frozenset[str] | None = None
    for digest, scopes in keys.items():
        if hmac.compare_digest(presented, digest):
            found = scopes
    return found


def scopes_by_endpoint(app: OpenAPI) -> dict[str, str]:
    """The scope each endpoint needs, read from the app's OpenAPI document (`x-scope`): what
    /openapi.json says a route needs is what `authorize` asks for."""
    paths = app.api_doc["paths"]
    scopes: dict[str, str] = {}
    for rule in app.url_map.iter_rules():
        path = _PARAMETER.sub(r"{\1}", rule.rule)
        for method in rule.methods or ():
            scope = paths.get(path, {}).get(method.lower(), {}).get("x-scope")
            if scope is not None:
                if scope not in SCOPES:
                    raise ValueError(f"{rule.rule}: unknown scope {scope!r}")
                scopes[rule.endpoint] = scope
    return scopes


def authorize() -> None:
    """A before_request hook: the key and scope the matched route needs, checked before its
    input is read or validated (unless auth is off)."""
    if not current_app.config["ENGRAM_AUTH"] or request.method == "OPTIONS":
        return  # OPTIONS: Flask answers the allowed methods itself, as before any view
    ext = current_app.extensions["engram"]
    scope = ext.scopes.get(request.endpoint)
    if scope is not None:
        _check(scope, ext.api_keys, ext.redis)


def has_keys(keys: dict[bytes, frozenset[str]], client: RedisClient) -> bool:
    """Whether any key can be accepted: a configured one, or one issued into Redis."""
    return bool(keys) or any(client.scan_iter(match=issued_keys.RECORD + "*", count=500))


def refuse_keys_in_query() -> None:
    """A before_request hook: 401 for a request with a key in its query string."""
    named = sorted(name for name in request.args if name.lower() in QUERY_KEY_NAMES)
    if named:
        raise ApiError(
            401,
            f"API keys are never taken from the URL (?{named[0]}=): send "
            "'Authorization: Bearer <key>' and replace a key that was sent in a URL",
            field=named[0],
            headers=_CHALLENGE,
        )


def _check(scope: str, keys: dict[bytes, frozenset[str]], client: RedisClient) -> None:
    header = request.headers.get("Authorization", "")
    kind, _, token = header.partition(" ")
    token = token.strip()
    if kind.lower() != "bearer" or not token:
        raise ApiError(401, "send an API key as 'Authorization: Bearer <key>'", headers=_CHALLENGE)
    scopes = _scopes(token, keys, client)
    if scopes is None:
        raise ApiError(401, "unknown API key", headers=_CHALLENGE)
    if scope not in scopes:
        raise ApiError(403, f"this key lacks the {scope!r} scope")
    g.scopes = scopes


def _scopes(
    token: str, keys: dict[bytes, frozenset[str]], client: RedisClient
) -> frozenset[str] | None:
    """The scopes of a configured or issued key; None when it is neither (or revoked)."""
    if not issued_keys.is_issued(token):
        return scopes_of(token, keys)
    try:
        issued = issued_keys.check(client, token)
    except issued_keys.RateLimited as limited:
        raise ApiError(429, str(limited), headers={"Retry-After": "1"}) from limited
    if issued is None:
        return None
    request.environ[KEY_ID_KEY] = issued.key_id  # named in the access line (serving/logs.py)
    request.environ[TENANT_KEY] = issued.tenant
    return issued.scopes
