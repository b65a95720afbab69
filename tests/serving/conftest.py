"""Apps over HTTP (Flask's test client, the real WSGI stack) on real Redis and Milvus."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal as signals
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from pymilvus import MilvusClient

from core.settings import Settings
from core.stores import local_redis
from memory import embed

ENGRAM = str(Path(sys.executable).parent / "engram")  # the installed console script
KEYS = {"read": "r" * 24, "write": "w" * 24, "admin": "a" * 24}
API_KEYS = f"{KEYS['read']}:read;{KEYS['write']}:read,write;{KEYS['admin']}:admin"
T0 = "2026-10-01T09:00:00Z"


def bearer(scope: str) -> dict[str, str]:
    """The Authorization header of the test key with this scope."""
    return {"Authorization": f"Bearer {KEYS[scope]}"}


def signal(event_id: str, user_id: str, kind: str = "view", **fields: Any) -> dict[str, Any]:
    """A valid v1 signal."""
    record: dict[str, Any] = {"event_id": event_id, "user_id": user_id, "ts": T0, "type": kind}
    if kind in ("view", "click", "purchase", "rate"):
        record.setdefault("item_id", "item-1")
    record.update(fields)
    return record


AppFactory = Callable[..., Flask]


def ingest_batch(app: Flask, records: list[dict[str, Any]]) -> None:
    """Run records through the batch pipeline (offline store, snapshots) and reload popularity."""
    from pipelines.batch import run_ingest

    ext = app.extensions["engram"]
    path = ext.settings.engram_home / f"batch-{uuid.uuid4().hex[:8]}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    run_ingest(ext.settings, path)
    ext.ranking.refresh()


@pytest.fixture
def make_app(
    tmp_path: Path, redis_url: str, milvus_uri: str, minilm: embed.Embedder
) -> Iterator[AppFactory]:
    """Build apps on a fresh ENGRAM_HOME, the session's Redis and Milvus, and a test collection
    dropped afterwards; keyword arguments go to test_config, `redis_url=` overrides Redis."""
    built: list[Flask] = []
    collection = f"t_api_{uuid.uuid4().hex[:10]}"

    def make(redis_at: str | None = None, **config: Any) -> Flask:
        settings = Settings(
            engram_home=tmp_path / "home", redis_url=redis_at or redis_url, milvus_uri=milvus_uri
        )
        test_config = {
            "ENGRAM_API_KEYS": API_KEYS,
            "ENGRAM_REFRESH": False,
            "ENGRAM_MEMORY_COLLECTION": collection,
            "ENGRAM_EMBEDDER": minilm,
            **config,
        }
        from serving.app import create_app

        app = create_app(settings, test_config)
        built.append(app)
        return app

    yield make
    for app in built:
        app.extensions["engram"].close()
    client = MilvusClient(uri=milvus_uri)
    if client.has_collection(collection):
        client.drop_collection(collection)
    client.close()


class RedisProcess:
    """A redis-server on a fixed port that a test may stop and start again (AOF: data kept)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = local_redis.free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        command = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ]
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                if redis.Redis.from_url(self.url, socket_timeout=0.2).ping():
                    return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None


@pytest.fixture
def stoppable_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A Redis of the test's own, which it may stop and restart on the same port."""
    directory = tmp_path / "stoppable-redis"
    directory.mkdir()
    server = RedisProcess(directory)
    server.start()
    yield server
    server.stop()


@contextlib.contextmanager
def serving(
    env: dict[str, str], workers: int = 1, boot_s: float = 180, auth: bool = False
) -> Iterator[str]:
    """`engram serve` on a free port until /healthz answers; its base URL. `--no-auth` unless
    `auth` (then with the test keys). Stopped with SIGTERM afterwards, and it must exit 0."""
    port = local_redis.free_port()
    base = f"http://127.0.0.1:{port}"
    command = [ENGRAM, "serve", "--port", str(port), "--workers", str(workers)]
    env = {k: v for k, v in env.items() if not k.startswith("ENGRAM_API_KEYS")}
    if auth:
        env["ENGRAM_API_KEYS"] = API_KEYS
    else:
        command.append("--no-auth")
    with tempfile.TemporaryFile() as log:  # a pipe nobody reads would stall a chatty server
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)

        def logged() -> str:
            log.seek(0)
            return log.read().decode(errors="replace")[-4000:]

        try:
            deadline = time.monotonic() + boot_s
            while True:
                try:
                    with urllib.request.urlopen(f"{base}/healthz", timeout=5) as answer:
                        assert json.loads(answer.read()) == {"status": "ok"}
                    break
                except OSError:  # refused, or accepted while the worker still boots
                    assert server.poll() is None, logged()
                    assert time.monotonic() < deadline, f"the server did not come up: {logged()}"
                    time.sleep(0.2)
            yield base
        finally:
            server.send_signal(signals.SIGTERM)
            assert server.wait(timeout=20) == 0, logged()
