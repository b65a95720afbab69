"""`forget_everywhere` (the CLI's `engram forget`, the API's DELETE) clears the stream too."""

from __future__ import annotations

import uuid
from pathlib import Path

import redis

from core.settings import Settings
from forget.everywhere import forget_everywhere
from pipelines.stream.producer import STREAM, produce
from pipelines.stream.state import PREFIX, StateEvent, WindowState


def test_forgetting_everywhere_clears_the_users_stream_entries_and_state(
    tmp_path: Path, redis_url: str, milvus_uri: str
) -> None:
    settings = Settings(engram_home=tmp_path / "home", redis_url=redis_url, milvus_uri=milvus_uri)
    client = redis.Redis.from_url(redis_url)
    state = WindowState(client, session_gap_micros=1_800_000_000)
    t = 1_790_000_000_000_000
    state.apply(
        [
            StateEvent("ev-1", "ana", "item-1", "books", t, 0, 1_000_000, None),
            StateEvent("ev-2", "bob", "item-1", "books", t, 0, 1_000_000, None),
        ]
    )

    produce(
        client, [{"event_id": "ev-3", "user_id": "ana"}, {"event_id": "ev-4", "user_id": "bob"}]
    )
    client.xadd(f"{STREAM}:dead", {"signal": '{"user_id": "ana"}', "reason": "poison"})

    removed = forget_everywhere(settings, "ana", collection=f"t_forget_{uuid.uuid4().hex[:8]}")

    assert removed["stream"] == 2  # one entry in the stream, one in its dead-letter stream
    assert [fields for _, fields in client.xrange(STREAM)] == [
        {b"signal": b'{"event_id": "ev-4", "user_id": "bob"}'}
    ]
    assert client.xlen(f"{STREAM}:dead") == 0
    assert removed["stream_state"] == 5  # u, ue, uc, ui and item-1's user set
    assert [k for k in client.keys(f"{PREFIX}*") if b"ana" in k] == []
    assert client.smembers(f"{PREFIX}iu:item-1") == {b"bob"}
    assert client.exists(f"{PREFIX}u:bob")
    again = forget_everywhere(settings, "ana", collection=f"t_forget_{uuid.uuid4().hex[:8]}")
    assert again["stream_state"] == 0
    client.close()
