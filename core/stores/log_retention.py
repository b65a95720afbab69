"""Bounds on how long deleted text stays in logs that cannot be edited in place.

A delete in Redis or Milvus removes what a client can read, not the bytes on disk:

- Redis appends every write to its AOF, so the text of a deleted key stays in the current
  `appendonly.aof.*.incr.aof` until the AOF is rewritten. `rewrite_aof` rewrites it after a
  forget. The rewritten base holds the keyspace as it is; an RDB base (`aof-use-rdb-preamble
  yes`) also keeps the bytes of stream entries removed with XDEL, which the local server avoids
  by writing its base as commands.
- Milvus keeps a deleted row's text in its message log (RocksDB files under `rocksmq/`) until
  the log's retention drops the page that holds it, and in the insert binlogs of its segment
  (deletes only add delta logs) until a compaction rewrites the segment and the garbage
  collector removes the old files. `purge_milvus` flushes and compacts after a forget;
  `MilvusRetention` sets how soon the rest happens on the embedded server.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis

from core.errors import ServiceUnavailableError
from core.stores.cluster import RedisClient, nodes

_POLL_S = 0.05
# A Milvus data node moves its channel checkpoint about once a minute (not configurable in
# 2.3). A restart replays the message log from there, and the garbage collector keeps a dropped
# segment's files until the checkpoint has passed it.
_CHECKPOINT_S = 60


@dataclass(frozen=True)
class Purge:
    """What a purge of one log came to: `outcome` is `done`, `not_needed`, `refused`,
    `failed` or `timed_out`; `detail` says why in words."""

    target: str
    outcome: str
    detail: str
    seconds: float

    @property
    def ok(self) -> bool:
        """True when nothing of the deleted data is left for this purge to remove."""
        return self.outcome in ("done", "not_needed")


# --- Redis ---------------------------------------------------------------------------------------


def rewrite_aof(client: RedisClient, *, timeout_s: float = 60.0) -> Purge:
    """Rewrite Redis's AOF so that keys and stream entries deleted before this call leave it
    (every master's AOF on a Redis Cluster, one after another).

    A rewrite that is already running may have forked before the deletes, so it is waited for
    and a new one requested. Returns `not_needed` for a server without AOF, `refused` when the
    server does not allow BGREWRITEAOF (managed Redis), `timed_out` after `timeout_s`.
    """
    servers = nodes(client)
    if len(servers) == 1:
        return _rewrite_aof(servers[0], timeout_s=timeout_s)
    purges = [_rewrite_aof(server, timeout_s=timeout_s) for server in servers]
    failed = [purge for purge in purges if not purge.ok]
    outcome = failed[0].outcome if failed else purges[0].outcome
    detail = "; ".join(
        f"{_address(server)}: {purge.detail}" for server, purge in zip(servers, purges, strict=True)
    )
    return Purge("redis aof", outcome, detail, round(sum(p.seconds for p in purges), 3))


def _address(server: redis.Redis) -> str:
    kwargs = server.connection_pool.connection_kwargs
    return f"{kwargs.get('host')}:{kwargs.get('port')}"


def _rewrite_aof(client: redis.Redis, *, timeout_s: float) -> Purge:
    started = time.monotonic()
    deadline = started + timeout_s

    def result(outcome: str, detail: str) -> Purge:
        return Purge("redis aof", outcome, detail, round(time.monotonic() - started, 3))

    try:
        if not int(_persistence(client).get("aof_enabled", 0)):
            return result("not_needed", "appendonly is off: the server keeps no AOF")
        if _wait_rewrites(client, deadline) is None:
            return result("timed_out", f"a rewrite already running took over {timeout_s:g} s")
        try:
            client.bgrewriteaof()
        except redis.ResponseError as error:
            # Another client's rewrite began after the wait above, so after the deletes: it
            # serves as well. Anything else is the server saying no.
            if "already in progress" not in str(error):
                return result("refused", f"BGREWRITEAOF: {error}")
        info = _wait_rewrites(client, deadline)
        if info is None:
            return result("timed_out", f"the rewrite took over {timeout_s:g} s")
        if info.get("aof_last_bgrewrite_status") != "ok":
            return result("failed", f"the server reports {info.get('aof_last_bgrewrite_status')}")
        return result("done", f"AOF rewritten; base written as {_base_format(client)}")
    except redis.ResponseError as error:  # INFO or CONFIG refused
        return result("refused", str(error))
    except redis.RedisError as error:
        raise ServiceUnavailableError("redis", f"AOF rewrite: {error}") from error


def _wait_rewrites(client: redis.Redis, deadline: float) -> dict[str, Any] | None:
    """Wait until no rewrite runs or is scheduled; the INFO that says so, None at `deadline`."""
    while True:
        info = _persistence(client)
        if not int(info["aof_rewrite_in_progress"]) and not int(info["aof_rewrite_scheduled"]):
            return info
        if time.monotonic() > deadline:
            return None
        time.sleep(_POLL_S)


def _persistence(client: redis.Redis) -> dict[str, Any]:
    return cast(dict[str, Any], client.info("persistence"))


def _base_format(client: redis.Redis) -> str:
    try:
        config = cast(dict[str, str], client.config_get("aof-use-rdb-preamble"))
        preamble = config.get("aof-use-rdb-preamble")
    except redis.ResponseError:
        return "unknown (CONFIG refused)"
    if preamble == "yes":
        return "RDB: stream entries deleted with XDEL keep their bytes in it"
    return "commands"


# --- Milvus --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MilvusRetention:
    """The embedded Milvus's settings that bound how long a deleted row's bytes stay on disk.

    Message log (rocksmq): a page of messages is dropped `message_minutes` after every consumer
    has read past its end, checked every `message_check_s`; pages close every `page_bytes` of
    messages (time ticks alone fill one within a minute on an idle server); RocksDB compacts the
    dropped range away every `message_compaction_s`. Unflushed rows live only in the message
    log, so the data node syncs its buffers every `sync_s`, well within the retention.

    Binlogs: `purge_milvus` compacts the segments that held the rows; the garbage collector,
    run every `gc_s`, removes the old segment files `drop_tolerance_s` after the compaction,
    once the channel checkpoint has passed them. `compaction_check_s` is how often the data
    coordinator collects finished compactions (a purge waits for it).
    """

    message_minutes: int = 5
    page_bytes: int = 16 * 1024
    message_check_s: int = 30
    message_compaction_s: int = 60
    sync_s: int = 60
    gc_s: int = 60
    drop_tolerance_s: int = 60
    compaction_check_s: int = 1

    def replay_safe(self) -> bool:
        """True when the log keeps every row until a restart no longer replays it: past the
        sync period and the next checkpoint. A shorter retention (tests) can lose rows that
        were not yet synced when the server crashes."""
        return self.message_minutes * 60 >= self.sync_s + _CHECKPOINT_S

    def settings(self) -> dict[str, str]:
        """The milvus.yaml settings (dotted paths) and their values."""
        return {
            "rocksmq.retentionTimeInMinutes": str(self.message_minutes),
            "rocksmq.rocksmqPageSize": str(self.page_bytes),
            "rocksmq.timtickerInterval": str(self.message_check_s),
            "rocksmq.compactionInterval": str(self.message_compaction_s),
            "dataNode.segment.syncPeriod": str(self.sync_s),
            "dataCoord.gc.interval": str(self.gc_s),
            "dataCoord.gc.dropTolerance": str(self.drop_tolerance_s),
            "dataCoord.compaction.check.interval": str(self.compaction_check_s),
        }

    def binlog_bound_s(self) -> int:
        """Longest a purged row's binlogs stay after `purge_milvus` returns."""
        return self.drop_tolerance_s + self.gc_s + _CHECKPOINT_S

    def message_bound_s(self, page_fill_s: float) -> float:
        """Longest a row's message stays after it is written, when the page it went into
        closes within `page_fill_s`."""
        retention_s = self.message_minutes * 60
        return page_fill_s + retention_s + self.message_check_s + self.message_compaction_s

    def bound_s(self, page_fill_s: float) -> float:
        """Longest any byte of a purged row stays on disk after the purge (see above)."""
        return max(self.message_bound_s(page_fill_s), self.binlog_bound_s())


EMBEDDED_RETENTION = MilvusRetention()


def apply_retention(config: str, retention: MilvusRetention) -> str:
    """Milvus's rendered YAML `config` with the settings of `retention` set (added if absent)."""
    for path, value in retention.settings().items():
        config = set_yaml(config, path, value)
    return config


def set_yaml(text: str, path: str, value: str) -> str:
    """`text` (YAML with two-space indents, as milvus.yaml) with the key at the dotted `path`
    set to `value`: replaced where it is, else added under its nearest existing parent."""
    lines = text.split("\n")
    keys = path.split(".")
    start, end = 0, len(lines)
    for depth, key in enumerate(keys):
        indent = "  " * depth
        pattern = re.compile(rf"{indent}{re.escape(key)}:(\s|$)")
        found = next((i for i in range(start, end) if pattern.match(lines[i])), None)
        if found is None:
            missing = [f"{'  ' * (depth + j)}{k}:" for j, k in enumerate(keys[depth:])]
            missing[-1] += f" {value}"
            lines[start:start] = missing
            return "\n".join(lines)
        if depth == len(keys) - 1:
            lines[found] = f"{indent}{key}: {value}"
            return "\n".join(lines)
        start = end_of_block = found + 1
        while end_of_block < end and _inside(lines[end_of_block], indent + "  "):
            end_of_block += 1
        end = end_of_block
    raise AssertionError("unreachable: the loop returns at the last key")


def _inside(line: str, indent: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#") or line.startswith(indent)


def purge_milvus(
    client: Any, collections: Sequence[str], *, timeout_s: float = 120.0
) -> list[Purge]:
    """Flush and compact each collection so that rows deleted before this call leave its
    segments; one Purge per collection. The old segment files go at the next garbage
    collection after the drop tolerance (`MilvusRetention.binlog_bound_s` on the embedded
    server); the message log drops the rows on its own schedule."""
    from pymilvus.exceptions import MilvusException

    deadline = time.monotonic() + timeout_s
    purges = []
    for name in collections:
        started = time.monotonic()
        try:
            outcome, detail = _compact_all(client, name, deadline)
        except MilvusException as error:
            outcome, detail = "failed", f"{type(error).__name__}: {error.message}"
        seconds = round(time.monotonic() - started, 3)
        purges.append(Purge(f"milvus {name}", outcome, detail, seconds))
    return purges


def _compact_all(client: Any, name: str, deadline: float) -> tuple[str, str]:
    """Compact until one compaction of ours has rewritten every segment flushed when it began.

    A forced compaction leaves out segments that another compaction holds (or whose index is
    still being built); such a compaction may have begun before the deletes and carries the
    deleted rows into a new segment, so the round is repeated until none is left out.
    """
    if not client.has_collection(name):
        return "not_needed", "no such collection"
    client.flush(name)  # seals growing segments: only flushed ones are compacted
    rounds = 0
    while time.monotonic() < deadline:
        flushed = _flushed_segments(client, name)
        job = client.compact(name)
        rounds += 1
        while (state := client.get_compaction_state(job)) != "Completed":
            if time.monotonic() > deadline:
                return "timed_out", f"compaction {job} still {state} after {rounds} rounds"
            time.sleep(0.2)
        planned = {
            source for plan in client.get_compaction_plans(job).plans for source in plan.sources
        }
        # A planned segment that is still flushed is one whose plan failed.
        if flushed <= planned and not flushed & _flushed_segments(client, name):
            return "done", f"{len(flushed)} segments rewritten in {rounds} compactions"
        time.sleep(1.0)
    return "timed_out", f"segments still held by other compactions after {rounds} rounds"


def _flushed_segments(client: Any, name: str) -> set[int]:
    return {
        segment.segment_id
        for segment in client.list_persistent_segments(name)
        if segment.state_name == "Flushed"
    }
