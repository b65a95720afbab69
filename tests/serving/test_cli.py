"""`engram serve`: the real app under gunicorn, over a real socket, stopped gracefully."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from core.settings import Settings, get_settings
from core.stores import local_milvus, local_redis
from core.stores.services import stop_local_services
from engram.cli import main
from tests.serving.conftest import serving


def _get(url: str, body: Any = None) -> tuple[int, Any]:
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
    with serving(_environment(tmp_path, redis_url, milvus_uri)) as base:
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
    with serving(env, workers=2) as base:
        before = _count(base, "POST", "/v1/rank")
        with ThreadPoolExecutor(8) as pool:  # at once, so that both workers take some
            answers = list(
                pool.map(lambda _: _get(f"{base}/v1/rank", {"user_id": "ana"}), range(40))
            )
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
        local_redis.stop_redis(tmp_path / "home" / "services" / "redis")  # where issued keys live
    assert result.exit_code == 1
    assert "ENGRAM_API_KEYS" in result.output and "engram keys create" in result.output


def _timed(url: str, body: Any = None) -> tuple[int, Any, float]:
    """_get's answer and how long it took."""
    began = time.monotonic()
    status, answer = _get(url, body)
    return status, answer, time.monotonic() - began


def _until(url: str, status: int, within_s: float, body: Any = None) -> float:
    """Ask `url` until it answers `status`; how long that took."""
    began = time.monotonic()
    while _get(url, body)[0] != status:
        assert time.monotonic() - began < within_s, f"{url} did not answer {status}"
        time.sleep(0.2)
    return time.monotonic() - began


def _parent_command(pid: int) -> str:
    parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return Path(f"/proc/{parent}/cmdline").read_bytes().replace(b"\0", b" ").decode()


@pytest.mark.slow  # ~1-2 min: a Milvus of its own, stopped, killed and restarted
def test_serve_keeps_its_local_stores_alive(tmp_path: Path, milvus_binaries: Path) -> None:
    home = tmp_path / "home"
    settings = Settings(engram_home=home, redis_url=None, milvus_uri=None)
    redis_dir, milvus_dir = settings.services_dir / "redis", settings.services_dir / "milvus"
    milvus_dir.mkdir(parents=True)
    (milvus_dir / "bin").symlink_to(milvus_binaries)  # not unpacked again
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ENGRAM_API_KEYS") and k not in ("REDIS_URL", "MILVUS_URI")
    }
    env.update(ENGRAM_HOME=str(home), ENGRAM_MILVUS_TIMEOUT_MS="1000")
    signals = [
        {
            "event_id": "e1",
            "user_id": "ana",
            "ts": "2026-10-01T09:00:00Z",
            "type": "view",
            "item_id": "item-1",
        }
    ]
    measured: dict[str, float] = {}
    try:
        with serving(env, boot_s=240) as base:
            ready, send = f"{base}/readyz", f"{base}/v1/signals"
            memories = f"{base}/v1/users/ana/memories"
            _until(ready, 200, 120)
            redis_url = local_redis.redis_status(redis_dir)
            milvus_uri = local_milvus.milvus_status(milvus_dir)
            milvus_pid = json.loads((milvus_dir / "server.json").read_text())["pid"]
            assert "core.stores.supervisor" in _parent_command(milvus_pid)  # no worker's child

            # Redis hangs: a fast 503 for what needs it, readiness names it, then back.
            redis_pid = int((redis_dir / "redis.pid").read_text())
            os.kill(redis_pid, signal.SIGSTOP)
            try:
                status, _, measured["signals_redis_stopped_s"] = _timed(send, signals)
                assert status == 503 and measured["signals_redis_stopped_s"] < 1.0
                status, answer, measured["readyz_redis_stopped_s"] = _timed(ready)
                assert status == 503 and answer["down"] == ["redis"]
                assert measured["readyz_redis_stopped_s"] < 1.5
            finally:
                os.kill(redis_pid, signal.SIGCONT)
            _until(ready, 200, 10)
            _until(send, 202, 10, signals)

            # Redis killed: the supervisor starts it again on its port, the worker reconnects.
            os.kill(redis_pid, signal.SIGKILL)
            measured["redis_kill_to_202_s"] = _until(send, 202, 15, signals)
            assert local_redis.redis_status(redis_dir) == redis_url

            # Milvus hangs (briefly: a pause longer than its session ttl makes it exit).
            assert _get(memories)[0] == 200
            os.kill(milvus_pid, signal.SIGSTOP)
            try:
                status, _, measured["memories_milvus_stopped_s"] = _timed(memories)
                assert status == 503 and measured["memories_milvus_stopped_s"] < 1.0 + 1.5
                status, answer, measured["readyz_milvus_stopped_s"] = _timed(ready)
                assert status == 503 and answer["down"] == ["milvus"]
                assert measured["readyz_milvus_stopped_s"] < 1.5
            finally:
                os.kill(milvus_pid, signal.SIGCONT)
            _until(ready, 200, 10)
            _until(memories, 200, 10)

            # Milvus killed: restarted on its ports; memories answer again without a restart
            # of the API, once Milvus has loaded the collection again.
            os.kill(milvus_pid, signal.SIGKILL)
            measured["milvus_kill_to_200_s"] = _until(memories, 200, 150)
            assert local_milvus.milvus_status(milvus_dir) == milvus_uri
            restarted = json.loads((milvus_dir / "server.json").read_text())["pid"]
            assert restarted != milvus_pid
            assert "core.stores.supervisor" in _parent_command(restarted)
            assert _get(ready)[0] == 200
    finally:
        stop_local_services(settings)
    print("measured", json.dumps({k: round(v, 2) for k, v in measured.items()}))
