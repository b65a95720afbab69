"""`engram serve`: the real app under gunicorn, over a real socket, stopped gracefully."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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


@contextlib.contextmanager
def _serving(env: dict[str, str], workers: int = 1) -> Iterator[str]:
    """`engram serve --no-auth` on a free port until /healthz answers; its base URL. Stopped
    with SIGTERM afterwards, and it must exit 0."""
    port = local_redis.free_port()
    base = f"http://127.0.0.1:{port}"
    command = [ENGRAM, "serve", "--no-auth", "--port", str(port), "--workers", str(workers)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                assert _get(f"{base}/healthz") == (200, {"status": "ok"})
                break
            except OSError:  # refused, or accepted while the worker still boots
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.2)
        yield base
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=20) == 0


@pytest.mark.slow
def test_serve_under_gunicorn(tmp_path: Path, redis_url: str, milvus_uri: str) -> None:
    with _serving(_environment(tmp_path, redis_url, milvus_uri)) as base:
        status, body = _get(f"{base}/v1/rank", {"user_id": "ana", "k": 3})
        assert status == 200 and body["degraded_reason"] == "no model"
        status, body = _get(f"{base}/v1/users/bad id/features".replace(" ", "%20"))
        assert status == 400 and body["field"] == "user_id"
        status, body = _get(f"{base}/readyz")
        assert status == 200, body


@pytest.mark.slow
def test_metrics_count_every_worker_when_asked(
    tmp_path: Path, redis_url: str, milvus_uri: str
) -> None:
    shared = tmp_path / "metrics"
    shared.mkdir()
    (shared / "counter_1.db").write_bytes(b"left by an earlier run")  # must not be read
    env = {**_environment(tmp_path, redis_url, milvus_uri), "PROMETHEUS_MULTIPROC_DIR": str(shared)}
    with _serving(env, workers=2) as base:
        before = _count(base, "POST", "/v1/rank")
        with ThreadPoolExecutor(8) as pool:  # at once, so that both workers take some
            answers = list(pool.map(lambda _: _get(f"{base}/v1/rank", {"user_id": "ana"}),
                                    range(40)))  # fmt: skip
        assert {status for status, _ in answers} == {200}
        assert len({path.stem for path in shared.glob("counter_*.db")}) == 2  # one per worker
        # Whichever worker answers a scrape, it reports both workers' requests.
        assert [_count(base, "POST", "/v1/rank") for _ in range(4)] == [before + 40] * 4


def _count(base: str, method: str, route: str) -> float:
    """engram_http_responses_total of a route's 200s, from one scrape of /metrics."""
    line = f'engram_http_responses_total{{method="{method}",route="{route}",status="200"}} '
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return sum(float(row[len(line) :]) for row in text.splitlines() if row.startswith(line))


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
