"""A local redis-server that Engram starts itself when REDIS_URL is unset.

One server per data directory, shared by every process (CLI, server workers, consumers): the
first caller starts it detached, later callers find it through its port file. A file lock makes
the start safe when several processes race.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from engram.errors import ServiceUnavailableError

_START_TIMEOUT_S = 10.0


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _url(port: int) -> str:
    return f"redis://127.0.0.1:{port}/0"


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=0.5).ping())
    except redis.RedisError:
        return False


def redis_status(directory: Path) -> str | None:
    """The URL of the running local server for this directory, or None."""
    port_file = directory / "port"
    if not port_file.exists():
        return None
    url = _url(int(port_file.read_text()))
    return url if _answers(url) else None


def ensure_redis(directory: Path) -> str:
    """Start (or find) the local redis-server kept in `directory` and return its URL."""
    with _locked(directory):
        url = redis_status(directory)
        if url:
            return url
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceUnavailableError(
                "redis",
                "redis-server is not installed (apt-get install redis-server) "
                "and REDIS_URL is unset",
            )
        port = free_port()
        # Append-only persistence so the online store and the streams survive a restart. The
        # AOF's base is written as commands, not RDB: an RDB base keeps the bytes of stream
        # entries deleted with XDEL, so a forget's rewrite would not remove them.
        command = [
            binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
            "--daemonize", "yes", "--pidfile", str(directory / "redis.pid"),
            "--logfile", str(directory / "redis.log"), "--save", "",
            "--appendonly", "yes", "--appendfsync", "everysec", "--aof-use-rdb-preamble", "no",
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ServiceUnavailableError("redis", f"redis-server failed: {result.stderr.strip()}")
        url = _url(port)
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not _answers(url):
            if time.monotonic() > deadline:
                log = directory / "redis.log"
                tail = log.read_text()[-500:] if log.exists() else ""
                raise ServiceUnavailableError("redis", f"no answer on {url} after start: {tail}")
            time.sleep(0.05)
        (directory / "port").write_text(str(port))
        return url


def stop_redis(directory: Path) -> bool:
    """Stop the local server of this directory; True when one was running."""
    with _locked(directory):
        pid_file = directory / "redis.pid"
        if not pid_file.exists():
            return False
        pid = int(pid_file.read_text().strip())
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pid_file.unlink(missing_ok=True)
            return False
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        (directory / "port").unlink(missing_ok=True)
        pid_file.unlink(missing_ok=True)
        return True
