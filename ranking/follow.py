"""The candidates follower: a user's new item contact reaches their candidates in Redis in
seconds (`engram candidates follow`).

Its own consumer group (`engram-candidates`) on the signals stream, beside the features
consumer's: the stream sits below ranking, so ranking follows it rather than the stream calling
up. It holds the serving version's candidate sources (`load_ranker`) and, per user who acted
since that version's candidates were computed, the contacts read from the stream since. For
each batch it recomputes each acting user's candidates from their saved contacts plus the new
ones (`ranking.candidates.generate_contacts`: the sources' item sides, learned at training,
applied to the user's profile now: one catalog scoring per user, as one live request) and
writes them (`ranking.candidate_store`), then acknowledges the entries.

Forget: a stream entry at or below a user's tombstone is not theirs any more and is skipped; a
tombstone newer than the loaded version drops the user from the follower's copy; the
tombstones of the batch's users are read again after the writes and any user forgotten meanwhile
has the record just written deleted (the order the features consumer keeps,
pipelines/stream/tombstones.py).

Start and new versions: the contacts held are those of entries after the version's candidates
were computed; the group is moved back to that time when the follower starts or loads a new
version, so the entries still in the stream are read again. Entries the stream trimmed before
that (every group had acknowledged them) wait for the next training.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import redis

from core.contract import IMPLICIT_WEIGHTS, ITEM_TYPES
from core.errors import InvalidInputError
from core.times import epoch_micros, parse_contract_time
from pipelines.enrich import rate_weight
from pipelines.stream.producer import FIELD, STREAM
from pipelines.stream.tombstones import Tombstone, read_tombstones
from ranking.baselines import to_micros
from ranking.candidate_store import CandidateStore, encode
from ranking.candidates import Source, generate_contacts
from ranking.history import Contacts, UserHistory

log = logging.getLogger("engram.candidates")

GROUP = "engram-candidates"


@dataclass
class Followed:
    """What the follower recomputes with: one version's sources, its log and catalog."""

    version: str
    sources: list[Source]
    history: UserHistory
    items: pd.Index
    at_ms: int  # when the version's candidates were computed: later entries are new to it
    loaded_ms: int  # when this copy was loaded (server ms): older tombstones are in it already
    forget_user: Callable[[str], None]  # drop the user from this copy (sources and history)


def followed_of(ranker: Any, loaded_ms: int = 0) -> Followed:
    """The follower's view of a loaded ranking.ranker.Ranker."""
    stored = ranker.model.candidates
    at = stored.at if stored is not None else pd.Timestamp(ranker.model.meta["created_at"])
    return Followed(
        ranker.version,
        list(ranker.inputs.sources),
        ranker.inputs.context.history,
        ranker.inputs.items,
        int(to_micros(pd.DatetimeIndex([at]))[0] // 1000),
        loaded_ms,
        ranker.forget_user,
    )


@dataclass(frozen=True)
class Contact:
    """One item contact read from the stream."""

    entry_id: str
    user_id: str
    item_id: str
    ts: int  # epoch microseconds
    weight: float


def parse_contact(entry_id: str, payload: bytes | str) -> Contact | None:
    """The item contact a stream entry holds; None for anything else (other types, records
    the features consumer rejects: this follower only reads). Pure."""
    try:
        record = json.loads(payload)
    except (ValueError, TypeError, RecursionError):
        return None
    if not isinstance(record, dict):
        return None
    kind, user, item = record.get("type"), record.get("user_id"), record.get("item_id")
    if not isinstance(kind, str) or kind.lower() not in ITEM_TYPES:
        return None
    if not isinstance(user, str) or not user or not isinstance(item, str | int) or item == "":
        return None
    try:
        moment = parse_contract_time(record.get("ts"), "ts")
    except InvalidInputError:  # the features consumer's to reject
        return None
    if moment is None:
        return None
    weight = _weight(kind.lower(), record.get("value"))
    return (
        None if weight is None else Contact(entry_id, user, str(item), epoch_micros(moment), weight)
    )


def _weight(kind: str, value: Any) -> float | None:
    if kind != "rate":
        return IMPLICIT_WEIGHTS[kind]
    if value is None:
        return 0.0
    try:
        return rate_weight(float(value))
    except (TypeError, ValueError):
        return None


def merged(saved: Contacts, new: Sequence[Contact]) -> Contacts:
    """The saved contacts and the new ones, by time then item (the log's order). Pure."""
    if not new:
        return saved
    items = np.concatenate([saved.items, np.array([c.item_id for c in new], dtype=object)])
    ts = np.concatenate([saved.ts, np.array([c.ts for c in new], dtype=np.int64)])
    weights = np.concatenate([saved.weights, np.array([c.weight for c in new], dtype=float)])
    order = np.lexsort((items.astype(str), ts))
    return Contacts(items[order], ts[order], weights[order])


@dataclass(frozen=True)
class FollowConfig:
    """How the follower reads."""

    stream: str = STREAM
    group: str = GROUP
    consumer: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    batch_size: int = 500
    block_ms: int = 100
    version_every_s: float = 10.0  # how often the registry is asked for a newer version


@dataclass
class FollowResult:
    """What one step did."""

    entries: int = 0
    contacts: int = 0
    users: int = 0
    skipped: int = 0  # entries of users forgotten after they were sent
    seconds: float = 0.0


class Follower:
    """Reads the stream in its own group and rewrites acting users' candidates."""

    def __init__(
        self,
        client: redis.Redis,
        store: CandidateStore,
        load: Callable[[str | None], Followed | None],
        config: FollowConfig | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self._load = load  # version (None: the serving one) -> Followed, None: none trained
        self.config = config or FollowConfig()
        self.followed: Followed | None = None
        self._new: dict[str, list[Contact]] = {}  # user -> contacts after the version's time
        self._next_check = 0.0

    def reload(self) -> bool:
        """Load the serving version when it is not the one held; True when it changed. The
        group moves back to the version's time and the contacts held are dropped."""
        self._next_check = time.monotonic() + self.config.version_every_s
        began_ms = self._server_ms()  # a forget from now on may not be in what is loaded
        fresh = self._load(self.followed.version if self.followed else None)
        if fresh is None or (self.followed is not None and fresh is self.followed):
            return False
        fresh.loaded_ms = began_ms
        self.followed = fresh
        self._new.clear()
        self._rewind(fresh.at_ms)
        log.info("candidates: following %s from %d", fresh.version, fresh.at_ms)
        return True

    def _server_ms(self) -> int:
        reply: Any = self.client.time()  # the tombstones' clock
        seconds, micros = reply
        return int(seconds) * 1000 + int(micros) // 1000

    def _rewind(self, at_ms: int) -> None:
        c = self.config
        try:
            self.client.xgroup_create(c.stream, c.group, id=f"{at_ms}-0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
            self.client.xgroup_setid(c.stream, c.group, id=f"{at_ms}-0")

    def run(self, stop: Callable[[], bool] = lambda: False) -> None:
        """Step until `stop()`; Redis errors are retried with a bounded backoff."""
        backoff = 0.1
        while not stop():
            try:
                if self.followed is None or time.monotonic() >= self._next_check:
                    self.reload()
                if self.followed is None:
                    time.sleep(self.config.block_ms / 1000)
                    continue
                self.step()
            except (redis.ConnectionError, redis.TimeoutError) as error:
                log.warning("candidates: %s; retrying in %.1f s", error, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1

    def step(self) -> FollowResult:
        """Read a batch of new entries, rewrite the candidates of the users who acted,
        acknowledge the entries."""
        if self.followed is None and not self.reload():
            return FollowResult()
        followed = self.followed
        assert followed is not None
        began = time.perf_counter()
        c = self.config
        reply: Any = self.client.xreadgroup(
            c.group, c.consumer, {c.stream: ">"}, count=c.batch_size, block=c.block_ms
        )
        entries = [(_text(i), f) for i, f in reply[0][1]] if reply else []
        result = FollowResult(entries=len(entries))
        if not entries:
            return result
        contacts = [
            contact
            for entry_id, fields in entries
            if fields
            and (contact := parse_contact(entry_id, fields.get(FIELD.encode(), b""))) is not None
        ]
        users = list(dict.fromkeys(contact.user_id for contact in contacts))
        before = read_tombstones(self.client, users)
        for user, tombstone in before.items():
            self._honour(user, tombstone)
        for contact in contacts:
            stone = before.get(contact.user_id)
            if stone is not None and stone.covers(contact.entry_id):
                result.skipped += 1
                continue
            self._new.setdefault(contact.user_id, []).append(contact)
            result.contacts += 1
        acting = [user for user in users if user in self._new]
        self._write(followed, acting)
        after = read_tombstones(self.client, acting)
        late = [user for user in acting if after.get(user) != before.get(user)]
        if late:  # forgotten while this batch ran: what was written goes
            self.store.forget_users(late)
            for user in late:
                self._honour(user, after[user])
        self.client.xack(c.stream, c.group, *[entry_id for entry_id, _ in entries])
        result.users = len(acting)
        result.seconds = time.perf_counter() - began
        return result

    def _honour(self, user: str, tombstone: Tombstone) -> None:
        """Drop what this follower holds of a user forgotten: their new contacts up to the
        tombstone, and their saved ones when the forget came after the copy was loaded."""
        followed = self.followed
        assert followed is not None
        kept = [c for c in self._new.get(user, []) if not tombstone.covers(c.entry_id)]
        if kept:
            self._new[user] = kept
        else:
            self._new.pop(user, None)
        if tombstone.after(followed.loaded_ms):
            followed.forget_user(user)

    def _write(self, followed: Followed, users: Sequence[str]) -> None:
        now = pd.Timestamp.now(tz="UTC")
        now_ms = int(now.value // 1_000_000)
        names = len(followed.sources)
        for user in users:
            saved = followed.history.before(user, 2**62)
            contacts = merged(saved, self._new[user])
            found = generate_contacts(followed.sources, user, contacts, now, followed.items)
            record = encode(followed.version, now, len(followed.items), found, followed.items)
            self.store.write(user, record, names, now_ms)


def load_followed(settings: Any) -> Callable[[str | None], Followed | None]:
    """A loader of the serving version for `Follower` (the same as the API's, no timeouts)."""
    from ranking import registry
    from ranking.ranker import load_ranker

    held: dict[str, Any] = {}

    def load(current: str | None) -> Followed | None:
        version = registry.serving_version(settings)
        if version is None:
            return None
        revision = registry.revision(settings, version)
        if current == version and held.get("revision") == revision:
            return held["followed"]
        ranker = load_ranker(settings, version)
        held.update(revision=revision, followed=followed_of(ranker))
        return held["followed"]

    return load


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = [
    "GROUP",
    "Contact",
    "FollowConfig",
    "FollowResult",
    "Followed",
    "Follower",
    "followed_of",
    "load_followed",
    "merged",
    "parse_contact",
]
