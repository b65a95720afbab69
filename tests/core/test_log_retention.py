"""Deleted text leaves the logs that cannot be edited in place: Redis's AOF once it is rewritten,
Milvus's message log and binlogs once the purge has run and the configured bound has passed.

Every check scans the server's files with `find_text`, which also looks inside zstd and LZF
blocks, so text a store compressed is not missed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import redis

from core.stores import local_milvus, local_redis
from core.stores.log_retention import (
    EMBEDDED_RETENTION,
    MilvusRetention,
    apply_retention,
    purge_milvus,
    rewrite_aof,
    set_yaml,
)
from core.text_scan import find_text
from memory.records import Memory
from memory.store import MilvusMemoryStore

SECRET = "okapi-violet-7731-forget-me"  # a text nothing else on disk holds


# --- Redis ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The directory of the project's own redis-server (appendonly yes), for this module."""
    directory = tmp_path_factory.mktemp("redis-aof")
    local_redis.ensure_redis(directory)
    yield directory
    local_redis.stop_redis(directory)


@pytest.fixture
def local_server(redis_dir: Path) -> Iterator[tuple[redis.Redis, Path]]:
    """A client of that server, emptied, its settings as started and its AOF freshly rewritten
    (no earlier test's text in it); and its AOF directory."""
    client = redis.Redis.from_url(local_redis.ensure_redis(redis_dir))
    client.config_set("rdb-key-save-delay", 0)
    wait_for_rewrites(client)
    client.config_set("appendonly", "yes")
    client.config_set("aof-use-rdb-preamble", "no")
    client.flushall()
    wait_for_rewrites(client)
    client.bgrewriteaof()
    wait_for_rewrites(client)
    yield client, redis_dir / "appendonlydir"
    client.close()


def wait_for_rewrites(client: redis.Redis) -> None:
    while any(
        persistence(client)[key] for key in ("aof_rewrite_in_progress", "aof_rewrite_scheduled")
    ):
        time.sleep(0.02)


def persistence(client: redis.Redis) -> dict[str, Any]:
    return cast(dict[str, Any], client.info("persistence"))


def write_and_delete_secret(client: redis.Redis) -> None:
    """The secret in a string, a hash and a stream entry, then each deleted as forget does."""
    client.set("engram:user:u1", SECRET)
    client.hset("engram:online:u1", mapping={"note": SECRET, "n": 3})
    for i in range(4):
        client.xadd("engram:{signals}", {"user_id": f"u{i}", "text": f"{SECRET} {i}"})
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange("engram:{signals}"))
    mine = [entry for entry, fields in entries if fields[b"user_id"] == b"u1"]
    client.delete("engram:user:u1", "engram:online:u1")
    client.xdel("engram:{signals}", *mine)


def test_deleted_text_is_in_the_aof_until_the_rewrite_and_in_no_file_after(
    local_server: tuple[redis.Redis, Path],
) -> None:
    client, aof_dir = local_server
    write_and_delete_secret(client)
    assert [hit.path.name.endswith(".incr.aof") for hit in find_text(aof_dir, [SECRET])] == [True]

    purge = rewrite_aof(client)

    assert purge.outcome == "done", purge
    assert "commands" in purge.detail
    assert find_text(aof_dir, [SECRET + " 0"]) != []  # another user's entry is kept
    assert find_text(aof_dir, [SECRET + " 1", "engram:user:u1"]) == []


def test_an_rdb_base_keeps_stream_entries_deleted_with_xdel_compressed_out_of_plain_sight(
    local_server: tuple[redis.Redis, Path],
) -> None:
    # Why the local server writes its AOF base as commands: with an RDB base (Redis's default),
    # XDEL only flags an entry, and the rewrite copies its bytes LZF-compressed.
    client, aof_dir = local_server
    client.config_set("aof-use-rdb-preamble", "yes")
    write_and_delete_secret(client)

    purge = rewrite_aof(client)

    assert purge.outcome == "done" and "XDEL" in purge.detail
    hits = find_text(aof_dir, [SECRET + " 1"])
    assert [(hit.path.suffix, hit.encoding) for hit in hits] == [(".rdb", "lzf")]


def test_a_rewrite_already_running_is_waited_for_and_followed_by_a_new_one(
    local_server: tuple[redis.Redis, Path],
) -> None:
    client, aof_dir = local_server
    for i in range(5):
        client.set(f"k{i}", i)
    client.set("engram:user:u1", SECRET)
    client.config_set("rdb-key-save-delay", 100_000)  # 0.1 s per key: a rewrite takes ~0.6 s
    rewrites = persistence(client)["aof_rewrites"]
    client.bgrewriteaof()  # forks now, so its base will hold the secret
    client.delete("engram:user:u1")

    purge = rewrite_aof(client, timeout_s=30)

    assert purge.outcome == "done", purge
    assert persistence(client)["aof_rewrites"] == rewrites + 2
    assert find_text(aof_dir, [SECRET]) == []


def test_a_rewrite_longer_than_the_timeout_is_reported_not_waited_for(
    local_server: tuple[redis.Redis, Path],
) -> None:
    client, _ = local_server
    for i in range(5):
        client.set(f"k{i}", i)
    client.config_set("rdb-key-save-delay", 200_000)

    purge = rewrite_aof(client, timeout_s=0.3)

    assert purge.outcome == "timed_out" and not purge.ok
    assert purge.seconds < 1.0


def test_a_server_without_aof_needs_no_rewrite(local_server: tuple[redis.Redis, Path]) -> None:
    client, _ = local_server
    client.config_set("appendonly", "no")

    purge = rewrite_aof(client)

    assert (purge.outcome, purge.ok) == ("not_needed", True)


def test_a_server_that_refuses_the_rewrite_is_reported(tmp_path: Path) -> None:
    # Managed Redis services rename or disable BGREWRITEAOF; this server does the same.
    port = local_redis.free_port()
    binary = shutil.which("redis-server")
    assert binary is not None
    options = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path), "--save", ""]
    refusing = ["--appendonly", "yes", "--rename-command", "BGREWRITEAOF", ""]
    server = subprocess.Popen([binary, *options, *refusing], stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)

        purge = rewrite_aof(client)

        assert purge.outcome == "refused" and not purge.ok
        assert "unknown command" in purge.detail
    finally:
        server.terminate()
        server.wait(10)


# --- Milvus settings (pure) ----------------------------------------------------------------------


def test_set_yaml_replaces_a_key_in_place_and_adds_a_missing_one_under_its_parent() -> None:
    text = "a:\n  b: 1 # note\n  c:\n    d: 2\n\n# between\ne:\n  b: 9\n"

    assert set_yaml(text, "a.b", "5") == text.replace("  b: 1 # note", "  b: 5")
    assert set_yaml(text, "e.b", "7") == text.replace("  b: 9", "  b: 7")
    assert set_yaml(text, "a.c.x.y", "3") == text.replace("  c:\n", "  c:\n    x:\n      y: 3\n")
    assert set_yaml(text, "f.g", "1") == "f:\n  g: 1\n" + text


def test_the_embedded_server_config_carries_every_retention_setting(tmp_path: Path) -> None:
    import yaml

    ports = {name: 20_000 + i for i, name in enumerate(local_milvus._PORT_NAMES)}
    local_milvus._render_config(tmp_path, ports, EMBEDDED_RETENTION)

    config = yaml.safe_load((tmp_path / "configs" / "milvus.yaml").read_text())
    for path, value in EMBEDDED_RETENTION.settings().items():
        node = config
        for key in path.split("."):
            node = node[key]
        assert str(node) == value, path
    assert apply_retention("", EMBEDDED_RETENTION).count("rocksmq:") == 1


def test_the_embedded_retention_outlives_what_a_restart_replays() -> None:
    assert EMBEDDED_RETENTION.replay_safe()
    assert not MilvusRetention(message_minutes=1, sync_s=10).replay_safe()


# --- Milvus on a real server ---------------------------------------------------------------------

# Short enough for a test; see MilvusRetention.replay_safe for what it gives up.
TEST_RETENTION = MilvusRetention(
    message_minutes=1,
    page_bytes=4096,
    message_check_s=5,
    message_compaction_s=10,
    sync_s=5,
    gc_s=5,
    drop_tolerance_s=5,
    # Finished compactions are collected every 5 s, so one started just before a forget is
    # still in hand when the purge begins (the case its repeated rounds are for).
    compaction_check_s=5,
)
# The longest the test waits after the purge: the stated bound (the test writes more than a
# page right after the secret, so the page closes at once) plus slack for a busy machine.
TEST_BOUND_S = TEST_RETENTION.bound_s(page_fill_s=0) + 30


def memories(user_id: str, text: str, count: int, start: int = 0) -> list[Memory]:
    now = datetime.now(UTC)
    return [
        Memory(
            memory_id=f"m-{start + i:024x}",
            user_id=user_id,
            kind="episode",
            text=f"{text} {i}",
            confidence=0.9,
            valid_from=now,
            created_at=now,
            updated_at=now,
            source_event_ids=(f"e-{start + i}",),
        )
        for i in range(count)
    ]


class OwnMilvus:
    """An embedded Milvus in the test's own directory, with TEST_RETENTION."""

    def __init__(self, directory: Path, binaries: Path) -> None:
        self.directory = directory
        self.binaries = binaries
        self.start()

    def start(self) -> None:
        from pymilvus import MilvusClient

        uri = local_milvus.ensure_milvus(
            self.directory,
            binaries_dir=self.binaries,
            die_with_caller=True,
            retention=TEST_RETENTION,
        )
        self.client = MilvusClient(uri=uri)
        self.store = MilvusMemoryStore(self.client, dim=16, model="test", partitions=4)
        self.store.ensure_collection()

    def stop(self, *, crash: bool = False) -> None:
        self.store.close()
        if crash:
            os.kill(int((self.directory / "milvus.pid").read_text()), signal.SIGKILL)
        local_milvus.stop_milvus(self.directory)

    def restart(self, *, crash: bool = False) -> None:
        self.stop(crash=crash)
        self.start()

    def write(self, batch: list[Memory]) -> None:
        vectors = np.random.default_rng(len(batch)).random((len(batch), 16), dtype=np.float32)
        self.store.write(batch, vectors)


@pytest.fixture
def own_milvus(
    tmp_path: Path, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OwnMilvus]:
    name = f"milvus-{local_milvus.MILVUS_VERSION}-bin"
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    binaries = Path(cache.mkdir(name)) if cache else tmp_path_factory.mktemp(name)
    server = OwnMilvus(tmp_path / "milvus", binaries)
    yield server
    server.stop(crash=True)  # the directory is thrown away; a graceful stop can hang for 10 s


def wait_until_gone(directory: Path, needles: list[str], timeout_s: float) -> list[str]:
    """Scan until no file holds a needle; what still does at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        hits = find_text(directory, needles)
        if not hits or time.monotonic() > deadline:
            return sorted({f"{hit.path.relative_to(directory)} ({hit.encoding})" for hit in hits})
        time.sleep(5)


def test_forgotten_memories_leave_every_milvus_file_within_the_bound_across_restarts(
    own_milvus: OwnMilvus,
) -> None:
    user, collection = "u-forget-me", own_milvus.store.collection
    own_milvus.write(memories(user, SECRET, 5) + memories("u-stays", "kept text", 200, start=5))
    assert find_text(own_milvus.directory, [SECRET])  # the scanner sees it while it is there
    # A compaction that starts before the forget (as the server's own can) carries the rows it
    # holds into new segments, with the deletes only as delta logs: the purge compacts those too.
    own_milvus.client.flush(collection)
    own_milvus.client.compact(collection)

    assert own_milvus.store.delete_user(user) == 5  # as forget deletes
    purges = purge_milvus(own_milvus.client, [collection])
    assert [purge.outcome for purge in purges] == ["done"], purges
    deleted_at = time.monotonic()
    # The issue saw the text in the message log's files after restarts; restart right away.
    own_milvus.restart()

    left = wait_until_gone(
        own_milvus.directory, [SECRET, user], TEST_BOUND_S - (time.monotonic() - deleted_at)
    )

    assert left == [], f"still on disk {time.monotonic() - deleted_at:.0f} s after the purge"
    own_milvus.restart(crash=True)
    assert find_text(own_milvus.directory, [SECRET, user]) == []
    assert own_milvus.store.count("u-stays") == 200
