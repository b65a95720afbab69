"""Forgetting a user in the window state: nothing named after them is left in Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from pipelines.stream.state import PREFIX, StateEvent, WindowState, forget_user_state

HOUR_US = 3_600_000_000
T0 = 1_790_000_000_000_000


def event(
    n: int, user: str, item: str | None, hours: float, category: str | None = None
) -> StateEvent:
    # Event ids name no user: the dedup markers `seen:<event_id>` are kept on purpose.
    return StateEvent(
        f"ev-{n}", user, item, category, T0 + int(hours * HOUR_US), 0, 1_000_000, None
    )


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connected = redis.Redis.from_url(redis_url)
    yield connected
    connected.close()


@pytest.fixture
def state(client: redis.Redis) -> WindowState:
    return WindowState(client, session_gap_micros=HOUR_US)


def keys_naming(client: redis.Redis, user: str) -> list[bytes]:
    return sorted(k for k in client.keys(f"{PREFIX}*") if user.encode() in k)


def test_forgetting_leaves_no_key_and_no_membership_of_the_user(
    client: redis.Redis, state: WindowState
) -> None:
    # Two sessions (so `us:`), a category (`uc:`), items shared with another user (`iu:`).
    events = [
        event(1, "ana", "item-1", 0, "books"),
        event(2, "ana", "item-2", 0.5),
        event(3, "ana", "item-1", 5, "books"),
        event(4, "ana", None, 6),
        event(5, "bob", "item-1", 1, "books"),
    ]
    assert state.apply(events) == [True] * 5
    ana_keys = keys_naming(client, "ana")
    assert {k.decode().removeprefix(PREFIX).split(":")[0] for k in ana_keys} == {
        "u",
        "ue",
        "us",
        "uc",
        "ui",
    }
    assert client.smembers(f"{PREFIX}iu:item-1") == {b"ana", b"bob"}

    # 5 keys, and the user sets of item-1 and item-2.
    assert forget_user_state(client, "ana") == 7

    assert keys_naming(client, "ana") == []
    assert all(b"ana" not in client.smembers(key) for key in client.keys(f"{PREFIX}iu:*"))
    assert client.smembers(f"{PREFIX}iu:item-1") == {b"bob"}
    assert client.hget(f"{PREFIX}u:bob", "n") == b"1"  # others untouched
    assert client.hget(f"{PREFIX}i:item-1", "n") == b"3"  # item counts are not recomputed
    # The markers name no one and keep a redelivery from bringing the user back.
    assert all(client.exists(f"{PREFIX}seen:ev-{n}") for n in range(1, 6))
    assert state.apply(events[:4]) == [False] * 4
    assert keys_naming(client, "ana") == []
    assert forget_user_state(client, "ana") == 0


def test_the_window_state_forgets_under_its_own_prefix(client: redis.Redis) -> None:
    other = WindowState(client, session_gap_micros=HOUR_US, prefix="t:stream:")
    other.apply([event(1, "ana", "item-1", 0)])
    assert forget_user_state(client, "ana") == 0  # nothing under the default prefix
    assert other.forget_user("ana") == 4  # u, ue, ui and item-1's user set
    assert client.keys("t:stream:*ana*") == []
