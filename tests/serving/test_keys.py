"""Keys issued into Redis: accepted with their scopes, refused everywhere once revoked, limited."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from core.settings import get_settings
from engram.cli import main
from serving import keys
from tests.serving.conftest import AppFactory


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_an_issued_key_works_until_revoked_on_every_worker(
    make_app: AppFactory, redis_url: str
) -> None:
    first, second = make_app().test_client(), make_app().test_client()  # two workers
    with redis.Redis.from_url(redis_url) as client:
        record, key = keys.create(client, {"read"}, tenant="shop-1")
        assert key not in json.dumps(
            {k.decode(): v.decode() for k, v in client.hgetall(keys.RECORD + record.key_id).items()}
        )  # only the digest is stored
        assert first.get("/v1/users/u1/memories", headers=_auth(key)).status_code == 200
        refused = second.delete("/v1/users/u1", headers=_auth(key))
        assert refused.status_code == 403  # read only
        assert keys.revoke(client, record.key_id)
    for app in (first, second):
        answer = app.get("/v1/users/u1/memories", headers=_auth(key))
        assert answer.status_code == 401 and answer.json["detail"] == "unknown API key"
    forged = key[:-4] + "AAAA"
    assert first.get("/v1/users/u1/memories", headers=_auth(forged)).status_code == 401


def test_a_key_over_its_rate_is_answered_429_with_retry_after(
    make_app: AppFactory, redis_url: str
) -> None:
    app = make_app().test_client()
    with redis.Redis.from_url(redis_url) as client:
        _, key = keys.create(client, {"read"}, rate_per_second=2)
    answers = [app.get("/v1/users/u1/memories", headers=_auth(key)) for _ in range(8)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited and limited[0].headers["Retry-After"] == "1"
    assert {a.status_code for a in answers} == {200, 429}


def test_the_limit_counts_per_second(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        _, key = keys.create(client, {"write"}, rate_per_second=1)
        assert keys.check(client, key, now=1_000.2) is not None
        with pytest.raises(keys.RateLimited):
            keys.check(client, key, now=1_000.7)
        assert keys.check(client, key, now=1_001.1) is not None


@pytest.fixture
def cli_env(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("ENGRAM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("REDIS_URL", redis_url)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_keys_commands_create_list_and_revoke(cli_env: CliRunner) -> None:
    made = cli_env.invoke(
        main, ["keys", "create", "--scopes", "read,write", "--tenant", "t1", "--json"]
    )
    assert made.exit_code == 0, made.output
    created = json.loads(made.output)
    assert created["key"].startswith("egk_") and created["scopes"] == ["read", "write"]
    listed = cli_env.invoke(main, ["keys", "list", "--json"])
    rows = [json.loads(line) for line in listed.output.splitlines()]
    assert [(r["key_id"], r["tenant"]) for r in rows] == [(created["key_id"], "t1")]
    assert created["key"] not in listed.output
    assert cli_env.invoke(main, ["keys", "revoke", created["key_id"]]).exit_code == 0
    again = cli_env.invoke(main, ["keys", "revoke", created["key_id"]])
    assert again.exit_code != 0 and created["key_id"] in again.output
    bad = cli_env.invoke(main, ["keys", "create", "--scopes", "root"])
    assert bad.exit_code != 0 and "scopes" in bad.output
