"""How a browser holds an API key for the inspector: a login form, then a signed session cookie.

A browser cannot send `Authorization: Bearer` on a link or a form, so the inspector takes the
key once, in a login form (POST, never in a URL), checks it against the API's keys
(serving/auth.py: the same keys and scopes), and keeps in Flask's signed session cookie only the
key's SHA-256 digest, never the key. The cookie is HttpOnly (no script reads it), SameSite=Strict
(no other site's page or form sends it), scoped to /ui, and expires after SESSION_HOURS; it is
signed with ENGRAM_UI_SECRET or a random key kept in ENGRAM_HOME/ui/session.key. Every request
looks the digest up among the configured keys again (or, for a key issued by `engram keys
create`, its record in Redis), so removing or revoking a key ends its sessions.

Forms that change data (forget a memory, forget the user, log out) carry a CSRF token: a random
value kept in the session and written into each form; a POST without the matching token is
refused before anything is read. Scopes are the API's: read to see, write to delete a memory,
admin to forget a user. With auth off (`engram serve --no-auth`, loopback only) every page is
open and every scope granted.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from datetime import timedelta
from pathlib import Path

from flask import Flask, current_app, g, request, session

from core.settings import Settings
from serving import keys as issued_keys
from serving.auth import SCOPES, scopes_of
from serving.extension import engram

SESSION_HOURS = 8
COOKIE = "engram_ui"
SECRET_FILE = Path("ui") / "session.key"  # under ENGRAM_HOME


class NotSignedIn(Exception):
    """The request holds no valid session: the login form answers it."""


class MissingScope(Exception):
    """The session's key lacks the scope the action needs."""

    def __init__(self, scope: str) -> None:
        super().__init__(f"this key lacks the {scope!r} scope")
        self.scope = scope


class BadForm(Exception):
    """A form that changes data came without the session's CSRF token."""


def configure(app: Flask, settings: Settings) -> None:
    """Session cookie settings for the inspector; the signing key from settings or its file."""
    app.secret_key = _secret(settings)
    app.config.update(
        SESSION_COOKIE_NAME=COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=settings.engram_ui_secure_cookie,
        SESSION_COOKIE_PATH="/ui",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS),
    )


def _secret(settings: Settings) -> bytes:
    """ENGRAM_UI_SECRET, else the key file under ENGRAM_HOME, made (0600) by whichever worker
    comes first; the others read what it wrote."""
    if settings.engram_ui_secret is not None:
        return settings.engram_ui_secret.get_secret_value().encode()
    path = settings.engram_home / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # the worker that made it may still be writing it
            text = path.read_text(encoding="ascii").strip()
            if text:
                return text.encode()
            time.sleep(0.02)
        raise
    value = secrets.token_hex(32)
    with os.fdopen(descriptor, "w", encoding="ascii") as out:
        out.write(value)
    return value.encode()


def auth_on() -> bool:
    """False when the app runs with auth off."""
    return bool(current_app.config["ENGRAM_AUTH"])


def sign_in(key: str) -> bool:
    """Start a session for `key` when it is a configured or an issued key (a fresh session and
    token)."""
    try:
        issued = issued_keys.check(engram().redis, key) if issued_keys.is_issued(key) else None
    except issued_keys.RateLimited:
        return False
    if issued is None and scopes_of(key, engram().api_keys) is None:
        return False
    session.clear()
    session.permanent = True  # expires after SESSION_HOURS, checked when the cookie is read
    session["key"] = hashlib.sha256(key.encode("utf-8")).hexdigest()
    if issued is not None:
        session["key_id"] = issued.key_id
    session["csrf"] = secrets.token_urlsafe(32)
    return True


def sign_out() -> None:
    """End the session."""
    session.clear()


def current_scopes() -> frozenset[str]:
    """The scopes of the session's key (every scope with auth off); NotSignedIn without one."""
    if not auth_on():
        return frozenset(SCOPES)
    digest = session.get("key")
    if not isinstance(digest, str):
        raise NotSignedIn
    key_id = session.get("key_id")
    if isinstance(key_id, str):  # an issued key: revoked in Redis ends the session
        issued = issued_keys.held(engram().redis, key_id, digest)
        found = issued.scopes if issued is not None else None
    else:
        try:
            found = engram().api_keys.get(bytes.fromhex(digest))
        except ValueError:
            found = None
    if found is None:
        session.clear()
        raise NotSignedIn
    return found


def require(scope: str) -> None:
    """NotSignedIn or MissingScope unless the session's key has `scope`."""
    scopes = current_scopes()
    g.ui_scopes = scopes
    if scope not in scopes:
        raise MissingScope(scope)


def csrf_token() -> str:
    """The session's CSRF token, made when the session has none (the login form's too)."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def check_csrf() -> None:
    """BadForm unless the posted form carries the session's CSRF token."""
    sent = request.form.get("csrf_token", "")
    token = session.get("csrf")
    if not isinstance(token, str) or not hmac.compare_digest(sent.encode(), token.encode()):
        raise BadForm
