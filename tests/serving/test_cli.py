"""`engram serve`: the real app under gunicorn, over a real socket, stopped gracefully."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from engram import local_redis
from engram.cli import main
from engram.settings import get_settings

ENGRAM = str(Path(sys.executable).parent / "engram")  # the installed console script


def _get(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _environment(tmp_path: Path, redis_url: str, milvus_uri: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGRAM_API_KEYS")}
    env.update(ENGRAM_HOME=str(tmp_path / "home"), REDIS_URL=redis_url, MILVUS_URI=milvus_uri)
    return env


@pytest.mark.slow
def test_serve_under_gunicorn(tmp_path: Path, redis_url: str, milvus_uri: str) -> None:
    port = local_redis.free_port()
    base = f"http://127.0.0.1:{port}"
    command = [ENGRAM, "serve", "--no-auth", "--port", str(port), "--workers", "1"]
    server = subprocess.Popen(
        command,
        env=_environment(tmp_path, redis_url, milvus_uri),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, body = _get(f"{base}/healthz")
                break
            except OSError:  # refused, or accepted while the worker still boots
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.2)
        assert (status, body) == (200, {"status": "ok"})
        status, body = _get(f"{base}/v1/rank", {"user_id": "ana", "k": 3})
        assert status == 200 and body["degraded_reason"] == "no model"
        status, body = _get(f"{base}/v1/users/bad id/features".replace(" ", "%20"))
        assert status == 400 and body["field"] == "user_id"
        status, body = _get(f"{base}/readyz")
        assert status == 200, body
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=20) == 0


def test_serve_refuses_to_start_without_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ENGRAM_API_KEYS", raising=False)
    monkeypatch.delenv("ENGRAM_API_KEYS_FILE", raising=False)
    monkeypatch.setenv("ENGRAM_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()  # the group reads the settings from the environment
    try:
        result = CliRunner().invoke(main, ["serve", "--port", "1"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert "ENGRAM_API_KEYS" in result.output
