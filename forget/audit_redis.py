"""The forget audit in Redis: every key and value of every database, and the server's files.

Values are read whole by type (strings, hashes, sets, sorted sets, lists, streams: the signals
stream and its dead-letter stream are streams like any other), in chunks so a large key is never
read in one reply. On disk, the append-only files are RESP text and are searched as bytes; an
RDB file (the AOF's base after a rewrite, or a snapshot) may compress its strings, so it is
loaded into a throwaway redis-server of the audit's own and scanned key by key instead.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

from core.stores import local_redis
from core.stores.cluster import RedisClient, nodes
from forget.audit_report import Needles, PlaceReport

CHUNK = 1_000  # members or entries read per call
_LOAD_TIMEOUT_S = 60.0


def scan_keys(client: RedisClient, needles: Needles, place: str = "redis") -> PlaceReport:
    """Every key name and value in every database of the server (of every master of a
    cluster)."""
    report = PlaceReport(place, "keys")
    servers = nodes(client)
    for server in servers:
        kwargs = server.connection_pool.connection_kwargs
        node = f"{kwargs.get('host')}:{kwargs.get('port')} " if len(servers) > 1 else ""
        info: Any = server.info("keyspace")
        for db in sorted(int(name[2:]) for name in info if name.startswith("db")):
            with redis.Redis(**{**kwargs, "db": db}) as one:
                for key in one.scan_iter(count=CHUNK):
                    report.scanned += 1
                    where = f"{node}db{db} {key!r}"
                    report.check_bytes(where, key, needles)
                    for value in _values(one, key):
                        report.check_bytes(where, value, needles)
    return report


def _values(client: Any, key: bytes) -> Iterator[bytes]:
    """Every byte string a key holds (members, fields and values, entries)."""
    kind = client.type(key)
    if kind == b"string":
        value: Any = client.get(key)
        if value is not None:
            yield value
    elif kind == b"hash":
        for field, value in client.hscan_iter(key, count=CHUNK):
            yield field
            yield value
    elif kind == b"set":
        yield from client.sscan_iter(key, count=CHUNK)
    elif kind == b"zset":
        for member, _ in client.zscan_iter(key, count=CHUNK):
            yield member
    elif kind == b"list":
        length: Any = client.llen(key)
        for start in range(0, int(length), CHUNK):
            yield from client.lrange(key, start, start + CHUNK - 1)
    elif kind == b"stream":
        yield from _stream_values(client, key)


def _stream_values(client: Any, key: bytes) -> Iterator[bytes]:
    low = "-"
    while True:
        entries: Any = client.xrange(key, min=low, max="+", count=CHUNK)
        for _, fields in entries:
            for field, value in fields.items():
                yield field
                yield value
        if len(entries) < CHUNK:
            return
        low = "(" + entries[-1][0].decode()


def server_files(client: RedisClient, also: list[Path]) -> list[Path]:
    """The files of the server's data directory (every master's of a cluster) when it is on
    this host (AOF, RDB, its log), and of the directories in `also` (e.g. ENGRAM_HOME's local
    server)."""
    directories = list(also)
    for server in nodes(client):
        try:
            config: Any = server.config_get("dir")
            directories.append(Path(str(config["dir"])))
        except redis.ResponseError:  # CONFIG disabled (a managed server): its files are not ours
            pass
    files: set[Path] = set()
    for directory in directories:
        if directory.is_dir():
            files.update(path for path in directory.rglob("*") if path.is_file())
    return sorted(files)


def scan_files(files: list[Path], needles: Needles, place: str = "redis_aof") -> PlaceReport:
    """Append-only files and logs as bytes; RDB files key by key in a throwaway server."""
    report = PlaceReport(place, "files")
    for path in files:
        report.scanned += 1
        with path.open("rb") as handle:
            rdb = handle.read(5) == b"REDIS"
        if rdb:
            for hit in _scan_rdb(path, needles).hits:
                report.hits.append(type(hit)(place, f"{path} {hit.where}", hit.needle))
        else:
            report.check_bytes(str(path), path.read_bytes(), needles)
    return report


def _scan_rdb(path: Path, needles: Needles) -> PlaceReport:
    """Load an RDB file into a redis-server of the audit's own (a copy, so the file is never
    touched), scan its keys, stop it."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server is needed to read RDB files")
    with tempfile.TemporaryDirectory(prefix="engram-audit-") as directory:
        shutil.copyfile(path, Path(directory) / "dump.rdb")
        port = local_redis.free_port()
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                directory,
                "--dbfilename",
                "dump.rdb",
                "--appendonly",
                "no",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
            _wait_loaded(client, process)
            return scan_keys(client, needles)
        finally:
            process.terminate()
            process.wait(timeout=10)


def _wait_loaded(client: redis.Redis, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + _LOAD_TIMEOUT_S
    while True:
        try:
            client.ping()
            return
        except (redis.ConnectionError, redis.BusyLoadingError):
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
