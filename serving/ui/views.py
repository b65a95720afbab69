"""The inspector's pages under /ui: find a user, a user's page, a memory, forget (HTML forms).

Routes stay thin: they check the session's scope (serving/ui/session.py), read through
`UserPage` (the services the API uses) and render a template. Errors become pages with a
message, never a trace: a bad id or time is a 400 page, a store down blanks the part of the
page that needs it (user_page.read_part), anything unexpected is logged and shown as a 500 page.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.exceptions import HTTPException

from core.contract import ID_PATTERN
from core.errors import EngramError, InvalidInputError
from core.times import parse_contract_time
from serving.errors import ApiError, from_engram_error
from serving.extension import engram
from serving.ui import session
from serving.ui.charts import activity, shares
from serving.ui.timeline import layout
from serving.ui.user_page import Inspector, Parts, UserPage, matching_users
from serving.users import forget

log = logging.getLogger("engram.serving.ui")
UI = "engram_ui"  # app.extensions key of the inspector's objects (user_page.Inspector)


class _Pages(Blueprint):
    """The inspector's blueprint: its static files are cached a day by the browser (their URLs
    carry a hash of their content, `static_version`), so a page load fetches only the page."""

    def get_send_file_max_age(self, filename: str | None) -> int | None:
        return 86_400


bp = _Pages(
    "ui",
    __name__,
    url_prefix="/ui",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
_ID = re.compile(ID_PATTERN)
_LOCAL_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$")  # <input type=datetime-local>
# Pages hold personal data and run only their own files: nothing cached, framed or fetched.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


class PageError(Exception):
    """A request the page refuses, with the status and the message it shows."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def inspector() -> Inspector:
    """The current app's inspector objects."""
    found: Inspector = current_app.extensions[UI]
    return found


def checked(value: str, what: str = "user id") -> str:
    """`value` when it is a valid id; a 400 page naming the rule otherwise."""
    if not _ID.fullmatch(value):
        raise PageError(
            400,
            f"{value[:140]!r} is not a valid {what}: ids are 1 to 128 letters, "
            "digits, '_', '.', ':' or '-'",
        )
    return value


def parse_as_of(text: str | None) -> datetime | None:
    """The page's time: RFC 3339, or a browser's datetime-local (read as UTC); None for now."""
    if not text:
        return None
    if _LOCAL_TIME.fullmatch(text):
        text += ("" if text.count(":") == 2 else ":00") + "Z"
    try:
        return parse_contract_time(text)
    except InvalidInputError as error:
        raise PageError(400, f"as of: {error.reason}") from error


@bp.before_request
def _no_scopes_yet() -> None:
    g.ui_scopes = frozenset()  # the templates read it; `session.require` fills it in


@bp.after_request
def _headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        if request.endpoint != "ui.static" or name != "Cache-Control":
            response.headers.setdefault(name, value)
    return response


@bp.app_template_global()
def static_version() -> str:
    """A hash of the static files, put in their URLs: a new release is fetched at once."""
    return _static_hash()


@functools.cache
def _static_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted((Path(__file__).parent / "static").iterdir()):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@bp.app_template_global()
def csrf_token() -> str:
    """The session's CSRF token, for forms."""
    return session.csrf_token()


@bp.app_template_filter("when")
def _when(moment: datetime | None) -> str:
    if moment is None:
        return "open"
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


@bp.app_template_filter("age")
def _age(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    seconds = int((now - moment).total_seconds())
    if seconds < 0:
        return "in the future"
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    return f"{days} d {hours} h" if days else f"{hours} h {rest // 60} min"


@bp.get("/")
def index() -> str:
    """Find a user by id (or the start of one)."""
    session.require("read")
    query = request.args.get("q", "").strip()
    found = (
        matching_users(engram(), inspector().offline, query)
        if query or "all" in request.args
        else None
    )
    exact = query if query and _ID.fullmatch(query) else None
    return render_template("index.html", query=query, found=found, exact=exact)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The key, posted once; a session cookie after."""
    target = _safe_next(request.values.get("next"))
    if not session.auth_on():
        return redirect(target)
    if request.method == "POST":
        session.check_csrf()
        if session.sign_in(request.form.get("key", "").strip()):
            return redirect(target, code=303)
        return render_template("login.html", next=target, problem="unknown API key"), 401
    return render_template("login.html", next=target, problem=None)


@bp.post("/logout")
def logout() -> Any:
    """End the session."""
    session.check_csrf()
    session.sign_out()
    return redirect(url_for("ui.login"), code=303)


@bp.get("/users/<user_id>")
def user(user_id: str) -> Response:
    """A user's page as of ?as_of= (default now), with ?q= searched among their memories."""
    session.require("read")
    checked(user_id)
    as_of = parse_as_of(request.args.get("as_of"))
    query = request.args.get("q", "").strip()[:1000]
    page = UserPage(engram(), inspector().offline, user_id, as_of)
    try:
        parts = page.gather(inspector().pool, query or None)
    finally:
        page.close()
    began = time.perf_counter()
    memories = parts.memories
    history = memories.data.history if memories.data is not None else []
    counts = parts.activity
    html = render_template(
        "user.html",
        user_id=user_id,
        page=page,
        parts=parts,
        memories=memories,
        facts=[m for m in memories.data.true_at if m.kind != "episode"] if memories.data else [],
        episodes=[m for m in memories.data.true_at if m.kind == "episode"] if memories.data else [],
        timeline=layout(history, page.at, page.now) if memories.data is not None else None,
        chart=activity(counts.data, page.at.date()) if counts.data is not None else None,
        query=query,
        span=_span(history, page.now),
        empty=_empty(parts),
        memory_base=url_for("ui.user", user_id=user_id) + "/memories/",
        as_of_suffix=f"?{urlencode({'as_of': request.args['as_of']})}" if as_of else "",
        shares=shares,
    )
    response = make_response(html)
    timings = {
        "memories": memories.seconds,
        "features": parts.features.seconds + counts.seconds,
        "ranking": parts.ranking.seconds,
        "search": parts.search.seconds if parts.search is not None else 0.0,
        "render": time.perf_counter() - began,
    }
    response.headers["Server-Timing"] = ", ".join(
        f"{name};dur={seconds * 1000:.1f}" for name, seconds in timings.items()
    )
    return response


def _empty(parts: Parts) -> bool:
    """Nothing held about the user: no memory, no features (with no store down), no activity."""
    memories, features = parts.memories, parts.features
    return (
        memories.data is not None
        and not memories.data.history
        and features.data is None
        and not features.degraded
        and not (parts.activity.data or [])
    )


def _span(memories: list[Any], now: datetime) -> tuple[int, int]:
    """The as-of control's range in epoch seconds: the first memory (or 90 days ago) to now."""
    first = min((m.valid_from for m in memories), default=None)
    start = int(first.timestamp()) if first is not None else int(now.timestamp()) - 90 * 86_400
    return start, int(now.timestamp())


@bp.get("/users/<user_id>/memories/<memory_id>")
def memory(user_id: str, memory_id: str) -> str:
    """One memory: its fields, its source events, and its slot's history."""
    session.require("read")
    checked(user_id)
    checked(memory_id, "memory id")
    as_of = parse_as_of(request.args.get("as_of"))
    page = UserPage(engram(), inspector().offline, user_id, as_of)
    try:
        memories = page.listing(None)
        if memories.data is None:
            return render_template("memory.html", user_id=user_id, memories=memories, memory=None)
        by_id = {m.memory_id: m for m in memories.data}
        found = by_id.get(memory_id)
        if found is None:
            raise PageError(404, f"{user_id} holds no memory {memory_id} (forgotten, or never)")
        events = page.events(list(found.source_event_ids))
    finally:
        page.close()
    history = [
        m
        for m in memories.data
        if (found.slot and m.slot == found.slot and m.kind == found.kind)
        or m.memory_id == found.memory_id
        or m.superseded_by == found.memory_id
        or m.memory_id == found.superseded_by
    ]
    return render_template(
        "memory.html",
        user_id=user_id,
        memories=memories,
        memory=found,
        replaced_by=by_id.get(found.superseded_by or ""),
        history=history,
        events=events,
        page=page,
        true_now=found.is_true_at(page.at),
    )


@bp.post("/users/<user_id>/memories/<memory_id>/forget")
def forget_memory(user_id: str, memory_id: str) -> Any:
    """Delete one memory, as DELETE /v1/users/{user_id}/memories/{memory_id} does."""
    session.require("write")
    session.check_csrf()
    checked(user_id)
    checked(memory_id, "memory id")
    deleted = engram().memories.call(lambda service: service.forget_memory(user_id, memory_id))
    if deleted:
        flash(
            f"Memory {memory_id} deleted: Milvus removed 1 memory (a memory it had "
            "superseded stays closed)."
        )
    else:
        flash(f"{user_id} holds no memory {memory_id}: nothing was removed.")
    return redirect(url_for("ui.user", user_id=user_id), code=303)


@bp.get("/users/<user_id>/forget")
def confirm_forget(user_id: str) -> str:
    """Ask before forgetting the user everywhere."""
    session.require("admin")
    checked(user_id)
    return render_template("forget.html", user_id=user_id, problem=None)


@bp.post("/users/<user_id>/forget")
def forget_user(user_id: str) -> Any:
    """Forget the user in every store, as DELETE /v1/users/{user_id} does, once the id has been
    typed again; the page lists what each store removed."""
    session.require("admin")
    session.check_csrf()
    checked(user_id)
    if request.form.get("confirm", "").strip() != user_id:
        problem = "type the user id exactly to confirm: nothing was removed"
        return render_template("forget.html", user_id=user_id, problem=problem), 400
    removed = forget(engram(), user_id)
    return render_template("forgotten.html", user_id=user_id, removed=removed)


@bp.route("/<path:unknown>", methods=["GET", "POST"])
def not_a_page(unknown: str) -> Any:
    """A path under /ui that names no page gets the inspector's 404 page, not the API's JSON."""
    raise PageError(404, f"/ui/{unknown} is no page of the inspector: start from /ui/")


def _safe_next(target: str | None) -> str:
    """Where to go after login: a path of the inspector only (never another site)."""
    if target and target.startswith("/ui/") and not target.startswith("/ui//"):
        return target
    return "/ui/"


# --- errors: pages, never traces ------------------------------------------------------------


def _page(status: int, message: str) -> tuple[str, int]:
    return render_template("error.html", status=status, message=message), status


@bp.errorhandler(session.NotSignedIn)
def _login_first(_error: session.NotSignedIn) -> tuple[str, int]:
    target = request.full_path if request.method == "GET" else request.path
    return render_template("login.html", next=_safe_next(target.rstrip("?")), problem=None), 401


@bp.errorhandler(session.MissingScope)
def _missing_scope(error: session.MissingScope) -> tuple[str, int]:
    return _page(403, f"{error}: ask for a key that has it")


@bp.errorhandler(session.BadForm)
def _bad_form(_error: session.BadForm) -> tuple[str, int]:
    return _page(
        400,
        "this form has expired or did not come from this page: reload the page "
        "and send it again (nothing was changed)",
    )


@bp.errorhandler(PageError)
def _page_error(error: PageError) -> tuple[str, int]:
    return _page(error.status, error.message)


@bp.errorhandler(EngramError)
def _engram_error(error: EngramError) -> tuple[str, int]:
    api = from_engram_error(error)
    return _page(api.status_code, api.detail)


@bp.errorhandler(ApiError)
def _api_error(error: ApiError) -> tuple[str, int]:
    return _page(error.status_code, error.detail)


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> tuple[str, int]:
    return _page(error.code or 500, error.description or error.name)


@bp.errorhandler(Exception)
def _unexpected(error: Exception) -> tuple[str, int]:
    log.exception("inspector: unhandled error", exc_info=error)
    return _page(500, "internal error: the server log has the details")
