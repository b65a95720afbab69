"""`engram serve` against clients that misbehave, over real sockets to real gunicorn: chunked
bodies over the limit, requests gunicorn refuses itself, stalled and trickling clients, and what
its logs keep of it all."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from core.stores import local_redis
from serving import keys
from serving.wiring import SIGNALS_STREAM
from tests.serving.conftest import API_KEYS, KEYS

ENGRAM = str(Path(sys.executable).parent / "engram")
LIMIT = 64 * 1024
READ_TIMEOUT = 1.0
WORKERS = 2
ERROR_KEYS = {"error", "detail"}
pytestmark = pytest.mark.slow  # a real server per module, and the read timeout waited out


@dataclass(frozen=True)
class Server:
    """A running `engram serve` and the files its access and error logs go to."""

    port: int
    access_log: Path
    error_log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, redis_server: str, milvus_uri: str
) -> Iterator[Server]:
    """`engram serve` with 2 sync workers, a 64 KiB body limit and a 1 s read timeout."""
    directory = tmp_path_factory.mktemp("serve")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGRAM_API_KEYS")}
    env.update(
        ENGRAM_HOME=str(directory / "home"),
        REDIS_URL=redis_server,
        MILVUS_URI=milvus_uri,
        ENGRAM_API_KEYS=API_KEYS,
        ENGRAM_MAX_BODY_BYTES=str(LIMIT),
        ENGRAM_READ_TIMEOUT_SECONDS=str(READ_TIMEOUT),
    )
    running = Server(local_redis.free_port(), directory / "access.log", directory / "error.log")
    command = [ENGRAM, "serve", "--port", str(running.port), "--workers", str(WORKERS)]
    with running.access_log.open("wb") as out, running.error_log.open("wb") as err:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err)
    try:
        deadline = time.monotonic() + 90
        while not _answers(running.base):
            assert process.poll() is None, running.error_log.read_text()
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.2)
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def _answers(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as answer:
            return answer.status == 200
    except OSError:
        return False


def exchange(server: Server, data: bytes, timeout: float = 15) -> tuple[int, dict[str, Any]]:
    """Send raw bytes on a new connection, read the answer to its end: status and JSON body."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(data)
        return _answer(sock)


def _answer(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    received = b""
    while chunk := sock.recv(65_536):
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    return int(head.split(b" ", 2)[1]), json.loads(body)


def request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    fields = [f"{name}: {value}" for name, value in headers.items()]
    lines = [f"{method} {path} HTTP/1.1", "Host: engram", *fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunks(body: bytes, size: int = 8192) -> bytes:
    """`body` in Transfer-Encoding: chunked."""
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


def signals_of(user_id: str, count: int) -> bytes:
    text = "a sentence of a few words " * 20
    return b"".join(
        json.dumps(
            {
                "event_id": f"{user_id}-{i}",
                "user_id": user_id,
                "ts": "2026-10-01T09:00:00Z",
                "type": "message",
                "text": text,
            }
        ).encode()
        + b"\n"
        for i in range(count)
    )


def on_the_stream(redis_url: str, user_id: str) -> int:
    entries = redis.Redis.from_url(redis_url).xrange(SIGNALS_STREAM)
    return sum(user_id.encode() in b"".join(fields.values()) for _, fields in entries)


WRITE = {"Authorization": f"Bearer {KEYS['write']}", "Content-Type": "application/x-ndjson"}


def test_a_chunked_body_over_the_limit_is_refused_whole(server: Server, redis_server: str) -> None:
    body = signals_of("chunky-over", 300)
    assert len(body) > 2 * LIMIT
    chunked = {**WRITE, "Transfer-Encoding": "chunked"}
    status, answer = exchange(server, request("POST", "/v1/signals", chunked, chunks(body)))
    assert (status, answer["error"]) == (413, "payload_too_large")
    assert on_the_stream(redis_server, "chunky-over") == 0
    # Under the limit, all of it is taken.
    body = signals_of("chunky-under", 80)
    assert len(body) < LIMIT
    status, answer = exchange(server, request("POST", "/v1/signals", chunked, chunks(body)))
    assert (status, answer["accepted"], answer["rejected"]) == (202, 80, 0)
    assert on_the_stream(redis_server, "chunky-under") == 80


def test_a_stated_length_over_the_limit_is_refused_to_a_client_that_sends_it_all(
    server: Server, redis_server: str
) -> None:
    body = signals_of("stated-over", 300)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=15)
    connection.request("POST", "/v1/signals", body=body, headers=WRITE)
    answer = connection.getresponse()
    assert answer.status == 413 and json.loads(answer.read())["error"] == "payload_too_large"
    connection.close()
    assert on_the_stream(redis_server, "stated-over") == 0


@pytest.mark.parametrize(
    ("data", "status", "error"),
    [
        (request("GET", "/healthz?q=" + "x" * 5000, {}), 414, "uri_too_long"),
        (request("GET", "/healthz", {f"X{i}": "v" for i in range(120)}), 431, "headers_too_large"),
        (request("GET", "/healthz", {"X-Big": "y" * 9000}), 431, "headers_too_large"),
        (b"GET /healthz HTTP/1.1 and more\r\nHost: x\r\n\r\n", 400, "invalid_request"),
        (b"BR\x00KEN\r\n\r\n", 400, "invalid_request"),
    ],
    ids=["414 long URI", "431 many headers", "431 big header", "400 request line", "400 garbage"],
)
def test_gunicorns_own_refusals_are_json_in_the_api_shape(
    server: Server, data: bytes, status: int, error: str
) -> None:
    answered, body = exchange(server, data)
    assert (answered, body["error"]) == (status, error)
    assert set(body) == ERROR_KEYS


def test_stalled_connections_hold_no_worker_past_the_read_timeout(server: Server) -> None:
    stalled = []
    for _ in range(WORKERS):  # one per worker: each never ends its headers
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: engram\r\n")
        stalled.append(sock)
    time.sleep(0.2)  # both workers took theirs
    started = time.monotonic()
    assert _answers(server.base)
    waited = time.monotonic() - started
    assert waited < READ_TIMEOUT + 2, waited  # the workers' 60 s silence timeout without it
    for sock in stalled:
        with sock:
            status, body = _answer(sock)
            assert (status, body["error"]) == (408, "request_timeout")


def test_a_trickling_client_gets_408_at_the_deadline(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
        started = time.monotonic()
        with contextlib.suppress(OSError):  # the server stops reading at the deadline
            for byte in b"GET /healthz HTTP/1.1\r\nHost: a-long-host-name.example\r\n":
                sock.sendall(bytes([byte]))
                time.sleep(0.1)
        assert _answer(sock)[0] == 408
        assert time.monotonic() - started < READ_TIMEOUT + 2


def test_a_stalled_body_gets_408_from_the_app(server: Server) -> None:
    headers = {
        "Authorization": f"Bearer {KEYS['read']}",
        "Content-Type": "application/json",
        "Content-Length": "100",
    }
    status, body = exchange(server, request("POST", "/v1/rank", headers, b'{"user_id"'))
    assert (status, body["error"]) == (408, "request_timeout")


SECRET_USER = "secret-user-8d1f"
SECRET_KEY = "querykey" * 3


def test_the_logs_hold_no_key_no_user_id_and_no_query(server: Server) -> None:
    read = {"Authorization": f"Bearer {KEYS['read']}"}
    user = f"/v1/users/{SECRET_USER}"
    sent = [
        request("GET", f"{user}/features", read),
        request("GET", f"{user}/features?api_key={SECRET_KEY}", {}),
        request("GET", f"{user}/memories?token={SECRET_KEY}&as_of=x", read),
        request("GET", f"{user}/features?api_key={SECRET_KEY}&p=" + "x" * 5000, {}),
        f"GET {user}?api_key={SECRET_KEY} HTTP/1.1 x\r\n\r\n".encode(),
        request("DELETE", user, {"Authorization": f"Bearer {SECRET_KEY}"}),
    ]
    statuses = [exchange(server, data)[0] for data in sent]
    assert statuses == [404, 401, 401, 414, 400, 401]
    time.sleep(0.5)  # the workers' log lines reach the files
    access = server.access_log.read_text()
    everything = access + server.error_log.read_text()
    for secret in (SECRET_USER, SECRET_KEY, *KEYS.values(), "api_key", "token="):
        assert secret not in everything, secret
    lines = {(e["method"], e["route"], e["status"]) for e in _access_lines(server)}
    assert ("GET", "/v1/users/<user_id>/features", 404) in lines
    assert ("GET", "/v1/users/<user_id>/memories", 401) in lines
    assert ("DELETE", "/v1/users/<user_id>", 401) in lines


def _access_lines(server: Server) -> list[dict[str, Any]]:
    """The access log's lines, each one JSON object."""
    entries = [json.loads(line) for line in server.access_log.read_text().splitlines()]
    return [e for e in entries if e["logger"] == "gunicorn.access"]


def test_each_answer_carries_its_request_id_and_so_does_its_log_line(server: Server) -> None:
    write = {"Authorization": f"Bearer {KEYS['write']}", "Content-Type": "application/json"}
    text = "my sister Ines-7c1e lives in Porto"
    signal = {"event_id": "rid-1", "user_id": "rid_user", "ts": "2026-11-01T00:00:00Z"}
    body = json.dumps([{**signal, "type": "message", "text": text}]).encode()
    given = urllib.request.Request(
        f"{server.base}/v1/signals",
        data=body,
        headers={**write, "X-Request-ID": "client-req.42"},
    )
    with urllib.request.urlopen(given) as answer:
        assert answer.status == 202 and answer.headers["X-Request-ID"] == "client-req.42"
    odd = urllib.request.Request(f"{server.base}/healthz", headers={"X-Request-ID": "a b\u00e9"})
    with urllib.request.urlopen(odd) as answer:
        made = answer.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    time.sleep(0.5)  # the workers' log lines reach the files
    by_id = {e["request_id"]: e for e in _access_lines(server)}
    assert by_id["client-req.42"]["route"] == "/v1/signals" and by_id[made]["status"] == 200
    everything = server.access_log.read_text() + server.error_log.read_text()
    assert "Ines-7c1e" not in everything and "Porto" not in everything


def test_a_query_key_is_answered_401_saying_how_to_send_it(server: Server) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{server.base}/v1/users/u1/features?api_key={SECRET_KEY}")
    assert refused.value.code == 401
    body = json.loads(refused.value.read())
    assert body["field"] == "api_key" and "Authorization: Bearer" in body["detail"]


def test_an_issued_key_is_named_by_id_in_the_log_and_refused_by_every_worker_once_revoked(
    server: Server, redis_server: str
) -> None:
    with redis.Redis.from_url(redis_server) as client:
        record, key = keys.create(client, {"read"}, tenant="shop-7")
        path = f"{server.base}/v1/users/nobody/features"
        asked = urllib.request.Request(path, headers={"Authorization": f"Bearer {key}"})
        with pytest.raises(urllib.error.HTTPError) as accepted:
            urllib.request.urlopen(asked)
        assert accepted.value.code == 404  # past auth: nobody has features
        keys.revoke(client, record.key_id)
    revoked_at = time.monotonic()
    for _ in range(2 * WORKERS):  # whichever worker answers
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(asked)
        assert refused.value.code == 401
    assert time.monotonic() - revoked_at < 1.0 * 2 * WORKERS
    time.sleep(0.5)  # the workers' log lines reach the files
    named = [e for e in _access_lines(server) if e.get("key_id") == record.key_id]
    assert [e["status"] for e in named][:1] == [404] and named[0]["tenant"] == "shop-7"
    everything = server.access_log.read_text() + server.error_log.read_text()
    assert key not in everything and key.rsplit("_", 1)[1] not in everything
