"""The inspector's login, session cookie and CSRF checks, over Flask's test client."""

from __future__ import annotations

import re

import redis
from flask.testing import FlaskClient

from serving import keys
from tests.serving.conftest import KEYS, AppFactory


def _token(client: FlaskClient, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def _sign_in(client: FlaskClient, scope: str) -> None:
    token = _token(client, "/ui/login")
    answer = client.post(
        "/ui/login", data={"key": KEYS[scope], "csrf_token": token, "next": "/ui/users/ana"}
    )
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/ui/users/ana")


def test_the_session_cookie_holds_no_key_and_is_kept_to_the_inspector(
    make_app: AppFactory,
) -> None:
    client = make_app().test_client()
    refused = client.get("/ui/users/ana")
    assert refused.status_code == 401 and 'id="login"' in refused.get_data(as_text=True)
    _sign_in(client, "read")
    cookie = client.get_cookie("engram_ui", path="/ui")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Strict"
    assert KEYS["read"] not in cookie.value
    page = client.get("/ui/users/ana")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    # The API still wants its header: the cookie is no API key.
    assert client.get("/v1/users/ana/memories").status_code == 401


def test_forms_that_change_data_need_the_token_and_the_scope(make_app: AppFactory) -> None:
    client = make_app().test_client()
    _sign_in(client, "read")
    token = _token(client, "/ui/users/ana")
    no_scope = client.post("/ui/users/ana/forget", data={"csrf_token": token, "confirm": "ana"})
    assert no_scope.status_code == 403 and "admin" in no_scope.get_data(as_text=True)
    _sign_in(client, "admin")
    forged = client.post("/ui/users/ana/forget", data={"confirm": "ana"})
    assert forged.status_code == 400 and "nothing was changed" in forged.get_data(as_text=True)
    token = _token(client, "/ui/users/ana/forget")
    unconfirmed = client.post("/ui/users/ana/forget", data={"csrf_token": token, "confirm": "an"})
    assert unconfirmed.status_code == 400 and "nothing was removed" in unconfirmed.get_data(
        as_text=True
    )
    logout = client.post("/ui/logout", data={"csrf_token": token})
    assert logout.status_code == 303
    assert client.get("/ui/users/ana").status_code == 401


def test_login_goes_back_only_to_the_inspector_and_keys_stay_out_of_urls(
    make_app: AppFactory,
) -> None:
    client = make_app().test_client()
    token = _token(client, "/ui/login")
    for target in ("//evil.example/", "https://evil.example/ui/", "/v1/rank"):
        answer = client.post(
            "/ui/login", data={"key": KEYS["read"], "csrf_token": token, "next": target}
        )
        assert answer.headers["Location"] == "/ui/", target
        token = _token(client, "/ui/login")
    assert client.get(f"/ui/login?key={KEYS['read']}").status_code == 401
    wrong = client.post("/ui/login", data={"key": "k" * 20, "csrf_token": token})
    assert wrong.status_code == 401 and "unknown API key" in wrong.get_data(as_text=True)


def test_with_auth_off_every_page_is_open(make_app: AppFactory) -> None:
    client = make_app(ENGRAM_AUTH=False).test_client()
    page = client.get("/ui/users/ana")
    assert page.status_code == 200 and "auth is off" in page.get_data(as_text=True)
    assert client.get("/ui/users/bad%20id").status_code == 400


def test_an_issued_key_signs_in_and_its_revocation_ends_the_session(
    make_app: AppFactory, redis_url: str
) -> None:
    client = make_app().test_client()
    with redis.Redis.from_url(redis_url) as store:
        record, key = keys.create(store, {"read"})
        token = _token(client, "/ui/login")
        answer = client.post("/ui/login", data={"key": key, "csrf_token": token})
        assert answer.status_code == 303
        assert client.get("/ui/users/ana").status_code == 200
        keys.revoke(store, record.key_id)
    assert client.get("/ui/users/ana").status_code == 401


def test_an_unknown_inspector_path_is_a_page_not_json(make_app: AppFactory) -> None:
    client = make_app().test_client()
    missing = client.get("/ui/no/such/page")
    body = missing.get_data(as_text=True)
    assert missing.status_code == 404 and missing.mimetype == "text/html"
    assert "no page of the inspector" in body and missing.headers["Cache-Control"] == "no-store"
    assert client.get("/ui/static/inspector.css").status_code == 200
    assert client.get("/v1/no/such/route").mimetype == "application/json"
