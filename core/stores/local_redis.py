"""A local redis-server that Engram starts itself when REDIS_URL is unset.

One server per data directory, shared by every process (CLI, server workers, consumers). Its
port is recorded in the directory (`port`) and kept across stops and crashes: a restart listens
on the same port, so live clients reconnect to the address they know; only when something else
holds that port does the server take a new one, and clients that look the port up again
(`recorded_url`) follow it. A file lock makes the start safe when several processes race.

The pid file tells a crash from a stop: `stop_redis` removes it, a killed server leaves it
behind (`crashed`), which is what a supervisor restarts.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import redis

from core.errors import ServiceUnavailableError
from core.locks import exclusive

_START_TIMEOUT_S = 10.0
PORT_GRACE_S = 1.5
_PORT_FILE = "port"
_PID_FILE = "redis.pid"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """True when a server could listen on 127.0.0.1:`port` now. SO_REUSEADDR, as servers set
    it: the connections a killed server leaves in TIME_WAIT do not hold its port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_of(ports: Iterable[int], grace_s: float = PORT_GRACE_S) -> set[int]:
    """Those of `ports` a server could listen on now, waiting up to `grace_s` for all of them:
    a killed server's threads release its ports a moment after its pid reads dead."""
    wanted = set(ports)
    deadline = time.monotonic() + grace_s
    while True:
        free = {port for port in wanted if port_is_free(port)}
        if free == wanted or time.monotonic() > deadline:
            return free
        time.sleep(0.05)


def _url(port: int) -> str:
    return f"redis://127.0.0.1:{port}/0"


def recorded_port(directory: Path) -> int | None:
    """The port this directory's server listens on when it runs (the last one it started on)."""
    try:
        return int((directory / _PORT_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None


def recorded_url(directory: Path) -> str | None:
    """The URL of this directory's server, running or not: a file read, no connection."""
    port = recorded_port(directory)
    return None if port is None else _url(port)


def _serves(url: str, directory: Path) -> bool:
    """True when the server at `url` answers and keeps its data in `directory` (it is ours, not
    another program's that took the port)."""
    try:
        with redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5) as client:
            found = client.config_get("dir").get("dir")
    except redis.RedisError:
        return False
    return found is not None and Path(found).resolve() == directory.resolve()


def redis_status(directory: Path) -> str | None:
    """The URL of the running local server for this directory, or None."""
    url = recorded_url(directory)
    return url if url and _serves(url, directory) else None


def _pid(directory: Path) -> int | None:
    try:
        return int((directory / _PID_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _is_redis(pid: int) -> bool:
    """True when `pid` is a live redis-server (not a pid reused by something else)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status and b"redis-server" in cmdline.split(b"\0")[0]


def crashed(directory: Path) -> bool:
    """True when this directory's server was started and died without `stop_redis`."""
    pid = _pid(directory)
    return pid is not None and not _is_redis(pid)


def ensure_redis(directory: Path) -> str:
    """Start (or find) the local redis-server kept in `directory` and return its URL."""
    directory = directory.resolve()
    with exclusive(directory / "start.lock"):
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
        recorded = recorded_port(directory)
        port = recorded if recorded is not None and free_of([recorded]) else free_port()
        (directory / _PID_FILE).unlink(missing_ok=True)  # left by a crash
        # Append-only persistence so the online store and the streams survive a restart. The
        # AOF's base is written as commands, not RDB: an RDB base keeps the bytes of stream
        # entries deleted with XDEL, so a forget's rewrite would not remove them.
        command = [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(directory),
            "--daemonize",
            "yes",
            "--pidfile",
            str(directory / _PID_FILE),
            "--logfile",
            str(directory / "redis.log"),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--aof-use-rdb-preamble",
            "no",
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ServiceUnavailableError("redis", f"redis-server failed: {result.stderr.strip()}")
        url = _url(port)
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not _serves(url, directory):
            if time.monotonic() > deadline or crashed(directory):
                log = directory / "redis.log"
                tail = log.read_text()[-500:] if log.exists() else ""
                raise ServiceUnavailableError("redis", f"no answer on {url} after start: {tail}")
            time.sleep(0.05)
        (directory / _PORT_FILE).write_text(str(port))
        return url


def stop_redis(directory: Path) -> bool:
    """Stop the local server of this directory; True when one was running. Its port stays
    recorded, for the next start."""
    with exclusive(directory / "start.lock"):
        pid = _pid(directory)
        if pid is None:
            return False
        (directory / _PID_FILE).unlink(missing_ok=True)
        if not _is_redis(pid):
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline and _is_redis(pid):
            time.sleep(0.05)
        return True
