"""API keys and scopes: required by default, compared in constant time, off only on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from core.errors import ConfigError
from core.settings import Settings
from engram.cli import main
from serving.auth import is_loopback, parse_keys, scopes_of
from tests.serving.conftest import KEYS, AppFactory, bearer


def test_parse_keys_gives_scopes_and_admin_implies_all() -> None:
    keys = parse_keys(f"{KEYS['read']}:read; {KEYS['admin']}:admin")
    assert scopes_of(KEYS["read"], keys) == {"read"}
    assert scopes_of(KEYS["admin"], keys) == {"read", "write", "admin"}
    assert scopes_of("x" * 24, keys) is None


@pytest.mark.parametrize("text", ["short:read", f"{'k' * 20}:root", f"{'k' * 20}", f"{'k' * 20}:"])
def test_parse_keys_rejects_bad_entries(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_keys(text)


def test_loopback_hosts() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"]))
    assert not any(map(is_loopback, ["0.0.0.0", "10.0.0.1", "example.com", "::"]))


def test_v1_needs_a_key(make_app: AppFactory) -> None:
    client = make_app().test_client()
    missing = client.get("/v1/users/u1/features")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert missing.json is not None and missing.json["error"] == "unauthorized"
    wrong = client.get("/v1/users/u1/features", headers={"Authorization": "Bearer " + "x" * 24})
    assert wrong.status_code == 401
    basic = client.get("/v1/users/u1/features", headers={"Authorization": "Basic abc"})
    assert basic.status_code == 401
    # Health, readiness, metrics and the description are open.
    assert client.get("/healthz").status_code == 200
    assert client.get("/openapi.json").status_code == 200


def test_scopes(make_app: AppFactory) -> None:
    client = make_app().test_client()
    assert client.post("/v1/signals", json=[], headers=bearer("read")).status_code == 403
    assert client.post("/v1/signals", json=[], headers=bearer("write")).status_code == 202
    assert client.delete("/v1/users/u1", headers=bearer("write")).status_code == 403
    forbidden = client.delete("/v1/users/u1", headers=bearer("read"))
    assert forbidden.json == {"error": "forbidden", "detail": "this key lacks the 'admin' scope"}
    assert client.delete("/v1/users/u1", headers=bearer("admin")).status_code == 200
    assert (
        client.post("/v1/rank", json={"user_id": "u1"}, headers=bearer("admin")).status_code == 200
    )


def test_auth_on_without_keys_refuses_to_start(make_app: AppFactory) -> None:
    with pytest.raises(ConfigError, match="no API key"):
        make_app(ENGRAM_API_KEYS=None)


def test_no_auth_opens_v1(make_app: AppFactory) -> None:
    client = make_app(ENGRAM_API_KEYS=None, ENGRAM_AUTH=False).test_client()
    assert client.post("/v1/rank", json={"user_id": "u1"}).status_code == 200


def test_serve_refuses_no_auth_off_loopback(settings: Settings) -> None:
    result = CliRunner().invoke(main, ["serve", "--no-auth", "--host", "0.0.0.0"], obj=settings)
    assert result.exit_code == 2
    assert "loopback" in result.output


@pytest.mark.parametrize("name", ["api_key", "key", "token", "access_token", "API_KEY"])
def test_a_key_in_the_query_string_is_refused_on_every_route(
    make_app: AppFactory, name: str
) -> None:
    for app in (make_app(), make_app(ENGRAM_AUTH=False)):
        client = app.test_client()
        for path in ("/healthz", "/v1/users/u1/features", "/openapi.json"):
            answer = client.get(path, query_string={name: KEYS["read"]}, headers=bearer("read"))
            assert answer.status_code == 401, path
            assert answer.json is not None and answer.json["field"] == name
            assert "Authorization: Bearer" in answer.json["detail"]
            assert KEYS["read"] not in answer.get_data(as_text=True)


def test_bad_llm_settings_stop_the_start(tmp_path: Path) -> None:
    from serving.app import create_app

    settings = Settings(engram_home=tmp_path, engram_llm_base_url="ftp://model.local")
    with pytest.raises(ConfigError, match="engram_llm_base_url"):
        create_app(settings, {"ENGRAM_AUTH": False})
