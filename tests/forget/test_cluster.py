"""Forget on a 3-master Redis Cluster (REDIS_CLUSTER=true): the user's online row and its written
version, stream entries, dead letters and window state go, every master's AOF is rewritten, and
the audit, scanning every master's keys and files, finds nothing of the user in Redis."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
from redis.cluster import RedisCluster

from core.settings import Settings
from core.stores.online.layout import FeatureRef, ValueKind, ViewRef, redis_key
from core.stores.online.push import OnlineWriter, written_key
from forget.audit_redis import scan_files, scan_keys, server_files
from forget.audit_report import Needles
from forget.everywhere import forget_everywhere
from pipelines.stream.producer import STREAM, produce
from pipelines.stream.state import PREFIX, StateEvent, WindowState

USER, OTHER = "fg_ana7", "fg_bob7"
VIEW = ViewRef("user_1d", "user_id", (FeatureRef("user_1d", "events_1d", ValueKind.INT64),))


def test_forgetting_everywhere_on_a_cluster_leaves_nothing_of_the_user_in_redis(
    tmp_path: Path, redis_cluster_url: str, milvus_uri: str
) -> None:
    settings = Settings(
        engram_home=tmp_path / "home",
        redis_url=redis_cluster_url,
        redis_cluster=True,
        milvus_uri=milvus_uri,
    )
    client = RedisCluster.from_url(redis_cluster_url)
    state = WindowState(client, session_gap_micros=1_800_000_000)
    t = 1_790_000_000_000_000
    state.apply(
        [
            StateEvent("ev-1", USER, "item-1", "books", t, 0, 1_000_000, None),
            StateEvent("ev-2", OTHER, "item-1", "books", t, 0, 1_000_000, None),
        ]
    )
    rows = pa.table(
        {
            "user_id": [USER, OTHER],
            "event_timestamp": pa.array([datetime.now(UTC)] * 2, pa.timestamp("us", tz="UTC")),
            "events_1d": [3, 4],
        }
    )
    assert OnlineWriter(client, "engram", [VIEW]).write(rows, [1, 1]) == 2
    produce(client, [{"event_id": "ev-3", "user_id": USER}, {"event_id": "ev-4", "user_id": OTHER}])
    client.xadd(f"{STREAM}:dead", {"signal": f'{{"user_id": "{USER}"}}', "reason": "poison"})
    assert scan_keys(client, Needles(USER, "no such text")).hits  # the user is there, at first

    removed = forget_everywhere(settings, USER, collection=f"t_forget_{uuid.uuid4().hex[:8]}")

    assert removed["online"] == 1 and removed["stream"] == 2 and removed["stream_state"] == 5
    assert removed["logs"]["redis aof"] == "done"  # every master's AOF rewritten
    assert not client.exists(redis_key("engram", ["user_id"], [USER]))
    assert not client.exists(written_key("engram", "user_id", USER))
    assert client.exists(redis_key("engram", ["user_id"], [OTHER]))
    assert client.smembers(f"{PREFIX}iu:item-1") == {OTHER.encode()}
    report = scan_keys(client, Needles(USER, "no such text"))
    assert report.hits == [] and report.scanned > 5
    files = server_files(client, [])
    assert len({f.parent.parent for f in files if f.suffix == ".aof"}) == 3  # every master's
    assert scan_files(files, Needles(USER, "no such text")).hits == []
    client.close()
