"""engram.client against a live `engram serve` (gunicorn, API keys, real Redis and Milvus): every
method, retries while Redis hangs (SIGSTOP) or nobody listens, and errors carrying the API's
error body. The import stays light: no server module is loaded with it."""

from __future__ import annotations

import json
import os
import signal as signals
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.stores import local_redis
from engram.client import (
    EngramClient,
    EngramConnectionError,
    Forbidden,
    InvalidRequest,
    NewMemory,
    NotFound,
    ServiceUnavailable,
)
from tests.serving.conftest import KEYS, RedisProcess, serving, signal

NOW = datetime.now(UTC).replace(microsecond=0)
# The worker loads the embedding model and the memory collection before it answers: on a
# loaded 2-core machine that took over a minute.
BOOT_S = 180
HEAVY = ("feast", "torch", "pymilvus", "redis", "flask", "numpy", "pandas", "pyarrow", "pydantic")


class Recording(EngramClient):
    """A client that records how long it waited between attempts (and waits for real)."""

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(*args, **options)
        self.waits: list[float] = []
        self.sleep = self._wait

    def _wait(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(seconds)


class Live:
    """The server's URL, and its Redis process (to pause)."""

    def __init__(self, url: str, redis: RedisProcess) -> None:
        self.url = url
        self.redis = redis

    def client(self, scope: str = "admin", **options: Any) -> Recording:
        return Recording(self.url, KEYS[scope], **options)

    def pause_redis(self, seconds: float) -> threading.Thread:
        """Stop the server's Redis (SIGSTOP: it hangs, as a real one can) for `seconds`."""
        process = self.redis._process
        assert process is not None
        os.kill(process.pid, signals.SIGSTOP)
        resume = threading.Timer(seconds, os.kill, (process.pid, signals.SIGCONT))
        resume.start()
        return resume


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, milvus_uri: str) -> Iterator[Live]:
    """One `engram serve` for the module, with the test keys, its own Redis and a fresh home."""
    home = tmp_path_factory.mktemp("client-home")
    redis_dir = tmp_path_factory.mktemp("client-redis")
    redis = RedisProcess(redis_dir)
    redis.start()
    env = {**os.environ, "ENGRAM_HOME": str(home), "REDIS_URL": redis.url}
    env["MILVUS_URI"] = milvus_uri
    try:
        with serving(env, auth=True, boot_s=BOOT_S) as base:
            yield Live(base, redis)
    finally:
        if redis._process is not None:
            os.kill(redis._process.pid, signals.SIGCONT)
        redis.stop()


def user() -> str:
    return f"cl-{uuid.uuid4().hex[:10]}"


def test_importing_the_client_loads_nothing_of_the_server() -> None:
    code = (
        "import sys, json, time; began = time.perf_counter(); import engram.client; "
        "print(json.dumps({'seconds': time.perf_counter() - began, "
        "'modules': sorted({m.split('.')[0] for m in sys.modules}), "
        "'project': sorted(m for m in sys.modules if m.split('.')[0] in "
        "('engram', 'core', 'memory', 'pipelines', 'ranking', 'serving', 'forget'))}))"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    loaded = json.loads(done.stdout)
    assert not set(HEAVY) & set(loaded["modules"])
    # The package's own __init__ loads `core` (its import-order guard), nothing more of ours.
    assert {m for m in loaded["project"] if not m.startswith("engram.client")} <= {"engram", "core"}
    print(f"import engram.client: {loaded['seconds'] * 1000:.0f} ms")


def test_every_method_against_a_live_server(live: Live) -> None:
    ana = user()
    with live.client() as engram, live.client("read") as reader:
        sent = engram.post_signals(
            [
                signal(f"{ana}-e1", ana, "view", item_id="item-1"),
                signal(f"{ana}-e2", ana, "message", text="I am vegetarian.", ts=_at(-2)),
                signal(f"{ana}-e3", ana, "rate", item_id="item-1", value=9),
            ],
            sync=True,
        )
        assert (sent.accepted, sent.rejected) == (2, 1)
        assert (sent.rejections[0].index, sent.rejections[0].field) == (2, "value")
        assert sent.processed is not None

        features = reader.features(ana)
        assert features.user_id == ana and features.features

        boston = engram.add_memory(ana, "Lives in Boston", valid_from=NOW - timedelta(days=30))
        window, again = engram.add_memories(
            ana, [NewMemory("Prefers window seats", scope="travel"), "Lives in Boston"]
        )
        assert again == boston
        memory = reader.get_memory(ana, boston)
        assert (memory.text, memory.slot, memory.value) == ("Lives in Boston", "location", "Boston")
        assert memory.valid_from == NOW - timedelta(days=30)

        listed = reader.list_memories(ana)
        assert {boston, window} <= {m.memory_id for m in listed}
        assert any("vegetarian" in m.text.lower() for m in listed)  # extracted from e2
        assert [m.memory_id for m in reader.list_memories(ana, scope="travel")] == [window]
        day_ago = reader.list_memories(ana, kinds=["attribute"], as_of=NOW - timedelta(days=1))
        assert [m.text for m in day_ago] == ["Is vegetarian"]  # the added ones: known since now
        [hit] = reader.search_memories(ana, "where does she live", k=1, kinds=["attribute"])
        assert hit.memory_id == boston and hit.score > 0 and "dense" in hit.parts

        fixed = engram.update_memory(ana, boston, text="Lives in Cambridge")
        assert (fixed.memory_id, fixed.value) == (boston, "Cambridge")
        closed = engram.update_memory(ana, boston, valid_to=NOW - timedelta(days=1))
        assert closed.valid_to == NOW - timedelta(days=1)
        reopened = engram.update_memory(ana, boston, valid_to=None)
        assert reopened.valid_to is None
        history = reader.memory_history(ana, boston)
        assert [(v.version, v.text) for v in history] == [
            (1, "Lives in Boston"),
            (2, "Lives in Cambridge"),
            (3, "Lives in Cambridge"),
            (4, "Lives in Cambridge"),
        ]
        assert history[-1].replaced_at is None and history[0].replaced_at is not None

        engram.delete_memory(ana, window)
        with pytest.raises(NotFound) as missing:
            reader.get_memory(ana, window)
        assert missing.value.field == "memory_id" and missing.value.body["error"] == "not_found"

        ranked = reader.rank(ana, k=3, query="shoes", at=NOW)
        assert (ranked.model_version, ranked.degraded_reason) == ("popularity", "no model")
        with pytest.raises(InvalidRequest) as refused:
            reader.rank(ana, k=0)
        assert refused.value.status_code == 400
        assert refused.value.body == {
            "error": "invalid_input",
            "field": "k",
            "detail": refused.value.detail,
        }

        with pytest.raises(Forbidden) as forbidden:
            reader.forget(ana)
        assert "admin" in forbidden.value.detail
        forgotten = engram.forget(ana)
        assert forgotten.user_id == ana and forgotten.removed["memories"] >= 4
        assert reader.list_memories(ana) == []
        with pytest.raises(NotFound):
            reader.memory_history(ana, boston)


def test_retries_ride_out_a_paused_redis(live: Live) -> None:
    ben = user()
    records = [signal(f"{ben}-e1", ben, "view", item_id="item-2")]
    with live.client(retries=0) as once, live.client() as patient:
        once.post_signals(records)  # the server is up and its breaker closed
        resume = live.pause_redis(1.0)
        with pytest.raises(ServiceUnavailable) as down:
            once.post_signals(records)  # no retries: the 503 as the API sent it
        assert down.value.status_code == 503 and down.value.retry_after == 1.0
        assert down.value.body == {"error": "service_unavailable", "detail": "redis is unavailable"}
        sent = patient.post_signals(records)  # retried until Redis is back (and the breaker)
        resume.join()
        assert sent.accepted == 1
        assert patient.waits and all(wait >= 1.0 for wait in patient.waits)  # Retry-After
        print(f"waits while Redis was paused: {patient.waits}")


def test_connection_errors_are_retried_only_when_a_second_request_is_harmless() -> None:
    nobody = f"http://127.0.0.1:{local_redis.free_port()}"
    with EngramClient(nobody, "k" * 24, retries=2, backoff_s=0.01) as engram:
        waits: list[float] = []
        engram.sleep = waits.append
        with pytest.raises(EngramConnectionError) as read:
            engram.list_memories("ana")
        assert read.value.attempts == 3 and len(waits) == 2
        with pytest.raises(EngramConnectionError) as added:
            engram.add_memories("ana", ["Lives in Boston"])
        assert added.value.attempts == 1 and len(waits) == 2  # not retried: see the module doc
        with pytest.raises(EngramConnectionError) as patched:
            engram.update_memory("ana", "m-1", text="x")
        assert patched.value.attempts == 1


def _at(days: float) -> str:
    return (NOW + timedelta(days=days)).isoformat().replace("+00:00", "Z")
