"""Each user's candidates in Redis: written at training and by the follower, read per request.

One string per user (`engram:candidates:user:<id>`): the model version they were computed for,
the time they are as of, then the rows of `ranking.candidates.UserCandidates` as flat arrays
(int32 item code into the version's catalog, float64 score and int16 rank per source). A
request reads one key; a version other than the ranker's reads as absent (generated live).

Each source's list (500 deep) rides along: a request with given candidates reads their ranks
there instead of ranking the catalog with every source.

Budget (ENGRAM_CANDIDATES_BUDGET_MB): `bytes_per_user` counts ~600 rows and the lists, ~43 KB a
user with five sources (Redis adds ~100 bytes a key), so the default 256 MB holds ~6,000 users.
A sorted set (`engram:candidates:recent`, user -> last write in ms) orders them: when a write
takes the count past the budget, the users written longest ago leave (their requests generate
live).
Training writes the most active users that fit; the follower adds every user who acts.
Forget deletes the user's key and their place in the sorted set (`forget_user`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.stores.cluster import RedisClient
from core.stores.online.transport import Read, command
from pipelines.stream.tombstones import read_tombstones
from ranking.baselines import to_micros
from ranking.candidates import UserCandidates
from ranking.precomputed import (
    NOT_LISTED,
    StoredCandidates,
    bytes_of_lists,
    bytes_per_candidate,
)

PREFIX = "engram:candidates:user:"
RECENT = "engram:candidates:recent"  # sorted set: user -> last write (epoch ms)
PUBLISHED = "engram:candidates:published"  # the version whose training candidates were written
EXPECTED_ROWS = 600  # candidates of a user, for the budget (DEFAULT_LIMITS' union: ~600)
KEY_OVERHEAD = 100  # Redis's own bytes per key and sorted-set member, about
_HEAD = struct.Struct("<HqiiBH")  # version length, at (us), catalog size, rows, sources, depth
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end"
_WRITE_CHUNK = 50  # users per pipeline when publishing a version (~1.6 MB)


def user_key(user_id: str) -> str:
    """The Redis key of the user's candidates."""
    return PREFIX + user_id


def bytes_per_user(sources: int, rows: int = EXPECTED_ROWS) -> int:
    """What the budget counts for one user (value and Redis's overhead)."""
    lists = bytes_of_lists(sources)
    return _HEAD.size + 32 + rows * bytes_per_candidate(sources) + lists + KEY_OVERHEAD


def max_users(budget_bytes: int, sources: int) -> int:
    """How many users' candidates fit the budget."""
    return max(0, budget_bytes // bytes_per_user(sources))


@dataclass(frozen=True)
class Record:
    """One user's candidates as stored: for which version, as of when, the rows."""

    version: str
    at: pd.Timestamp
    catalog_size: int
    codes: np.ndarray  # int32 positions in the version's catalog
    scores: np.ndarray  # float64 rows x sources
    ranks: np.ndarray  # int16 rows x sources, NOT_LISTED (0): not in that source's list
    lists: np.ndarray  # int32 sources x depth: each source's list (catalog positions), -1 after

    def candidates(
        self, catalog: np.ndarray, names: list[str], limits: list[int]
    ) -> UserCandidates:
        """The rows as `generate_user` gives them (catalog: the version's item ids, object)."""
        ranks = self.ranks.astype(float)
        ranks[ranks == NOT_LISTED] = np.nan
        inside = ranks <= np.asarray(limits, dtype=float)  # NaN compares False
        return UserCandidates(
            catalog[self.codes], list(names), self.scores, ranks, inside, self.lists
        )


def encode(
    version: str, at: pd.Timestamp, catalog_size: int, found: UserCandidates, items: pd.Index
) -> bytes:
    """A record of `found` (rows of `generate_user` over the catalog `items`)."""
    codes = items.get_indexer(found.item_ids.astype(str)).astype("<i4")
    ranks = np.nan_to_num(found.ranks, nan=NOT_LISTED).astype("<i2")
    lists = found.lists if found.lists is not None else np.empty((len(found.names), 0))
    return _pack(version, at, catalog_size, codes, found.scores, ranks, lists)


def _pack(
    version: str,
    at: pd.Timestamp,
    catalog_size: int,
    codes: np.ndarray,
    scores: np.ndarray,
    ranks: np.ndarray,
    lists: np.ndarray,
) -> bytes:
    name = version.encode()
    micros = int(to_micros(pd.DatetimeIndex([at]))[0])
    head = _HEAD.pack(len(name), micros, catalog_size, len(codes), scores.shape[1], lists.shape[1])
    return b"".join(
        [
            head,
            name,
            np.ascontiguousarray(codes, dtype="<i4").tobytes(),
            np.ascontiguousarray(scores, dtype="<f8").tobytes(),
            np.ascontiguousarray(ranks, dtype="<i2").tobytes(),
            np.ascontiguousarray(lists, dtype="<i4").tobytes(),
        ]
    )


def _decode_found(value: bytes | None) -> Record | None:
    return None if value is None else decode(value)


def decode(value: bytes) -> Record:
    """The record `encode` wrote."""
    length, micros, catalog_size, rows, width, depth = _HEAD.unpack_from(value)
    start = _HEAD.size + length
    version = value[_HEAD.size : start].decode()
    codes = np.frombuffer(value, "<i4", rows, start)
    start += 4 * rows
    scores = np.frombuffer(value, "<f8", rows * width, start).reshape(rows, width)
    start += 8 * rows * width
    ranks = np.frombuffer(value, "<i2", rows * width, start).reshape(rows, width)
    start += 2 * rows * width
    lists = np.frombuffer(value, "<i4", width * depth, start).reshape(width, depth)
    at = pd.Timestamp(micros, unit="us", tz="UTC")
    return Record(version, at, catalog_size, codes, scores, ranks, lists)


class CandidateStore:
    """Reads and writes users' candidates in one Redis; no I/O until a method is called."""

    def __init__(self, client: RedisClient, budget_bytes: int) -> None:
        self.client = client
        self.budget_bytes = budget_bytes

    def read(self, user_id: str) -> Record | None:
        """The user's record (None: none stored)."""
        value: Any = self.client.get(user_key(user_id))
        return _decode_found(value)

    @staticmethod
    def read_of(user_id: str) -> Read:
        """`read` as one read of a shared round trip (core.stores.online.transport.read_all)."""
        key = user_key(user_id).encode()
        return Read(command(b"GET", key), key, _decode_found)

    def write(self, user_id: str, record: bytes, sources: int, written_ms: int) -> list[str]:
        """Store the user's record as their latest write; the users evicted for the budget."""
        # Not a transaction: the record and its place in the order may sit on two masters of a
        # Redis Cluster; a crash between them leaves at worst a record the budget forgets.
        pipe = self.client.pipeline(transaction=False)
        pipe.set(user_key(user_id), record)
        pipe.zadd(RECENT, {user_id: written_ms})
        pipe.zcard(RECENT)
        count = int(pipe.execute()[-1])
        return self._evict(count - max_users(self.budget_bytes, sources))

    def claim(self, version: str) -> bool:
        """True for the one caller that is to publish `version` (atomic: GETSET)."""
        before: Any = self.client.getset(PUBLISHED, version)
        return before is None or _text(before) != version

    def release(self, version: str) -> None:
        """Give a claim back (its publish failed), unless another version was claimed since."""
        self.client.eval(_RELEASE, 1, PUBLISHED, version)

    def publish(self, version: str, stored: StoredCandidates) -> int:
        """Write a version's candidates computed at training (ranking.precomputed), and drop the
        records of users it does not hold; the users written. A user forgotten after the
        candidates were computed is not written."""
        at_ms = int(to_micros(pd.DatetimeIndex([stored.at]))[0] // 1000)
        catalog_size = len(stored.catalog)
        users = [str(user) for user in stored.users]
        gone = {u for u, t in read_tombstones(self.client, users).items() if t.after(at_ms)}
        width = len(stored.names)
        lists = (
            stored.lists if stored.lists is not None else np.empty((len(users), width, 0), "<i4")
        )
        for start in range(0, len(users), _WRITE_CHUNK):
            pipe = self.client.pipeline(transaction=False)
            for position in range(start, min(start + _WRITE_CHUNK, len(users))):
                if users[position] in gone:
                    continue
                rows = slice(int(stored.offsets[position]), int(stored.offsets[position + 1]))
                pipe.set(
                    user_key(users[position]),
                    _pack(
                        version,
                        stored.at,
                        catalog_size,
                        stored.codes[rows],
                        stored.scores[rows],
                        stored.ranks[rows],
                        lists[position],
                    ),
                )
                pipe.zadd(RECENT, {users[position]: at_ms})
            pipe.execute()
        held = {_text(member) for member in self._members()}
        self.forget_users(sorted(held - (set(users) - gone)))
        return len(users) - len(gone)

    def forget_users(self, user_ids: Iterable[str]) -> int:
        """Delete the users' records and their places in the budget's order; records deleted."""
        users = list(user_ids)
        if not users:
            return 0
        pipe = self.client.pipeline(transaction=False)  # keys of many slots on a cluster
        for user in users:
            pipe.delete(user_key(user))
        pipe.zrem(RECENT, *users)
        return sum(int(deleted) for deleted in pipe.execute()[:-1])

    def _evict(self, excess: int) -> list[str]:
        if excess <= 0:
            return []
        popped: Any = self.client.zpopmin(RECENT, excess)
        users = [_text(member) for member, _ in popped]
        if users:
            self.client.delete(*[user_key(user) for user in users])
        return users

    def _members(self) -> Iterable[Any]:
        for member, _ in self.client.zscan_iter(RECENT, count=1_000):
            yield member


def forget_user(client: RedisClient, user_id: str) -> int:
    """Delete the user's candidates (a forget); 1 when there were some, else 0."""
    return CandidateStore(client, 0).forget_users([user_id])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = [
    "CandidateStore",
    "Record",
    "bytes_per_user",
    "decode",
    "encode",
    "forget_user",
    "max_users",
    "user_key",
]
