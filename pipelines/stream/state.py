"""Incremental window state in Redis, folded in with the event_id dedup marker in one Lua script.

One EVALSHA per micro-batch applies every event atomically (Redis runs a script to the end
before any other command, and AOF persists its effects as one MULTI/EXEC): for each event it
sets the dedup marker `seen:<event_id>` (SET NX EX) and, only when the marker is new, updates
the user's and item's state and adds the event's normalized record to the batch's outbox entry
(`outbox`, drained into the offline event store by pipelines/stream/outbox.py). A consumer
killed at any instant has therefore either applied an event together with its marker and its
outbox entry or none of them, so a redelivered event counts once and reaches the offline store
once.

Per user (`u:`) and item (`i:`) a hash holds all-time accumulators (events, micro-weights,
first/last time, rating count and sums, distinct counts, sessions); the script reads each one
once per batch and writes it back once. A sorted set (`ue:`, `ie:`) holds the events of the
trailing 30 days before the entity's latest event, which is all the 1d/7d/30d windows at that
time need (the row time only moves forward, so an event trimmed once is never needed again; the
set is trimmed once per new day of the entity, and readers filter on the window). Sessions are
intervals (the latest in the hash, earlier ones in `us:`) merged as events arrive, in any
order, with the batch rule (a gap > session_gap starts a session). Distinct items and users are
sets (`ui:`, `iu:`); category affinities a hash (`uc:`).

Integers travel as decimal strings and Lua keeps them exact (doubles, |x| < 2**53: epoch
microseconds to year 2255). Memory is bounded per entity by its 30-day events plus all-time
distinct sets; dedup markers expire after `dedup_ttl` (docs/streaming.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from core.stores.cluster import RedisClient
from pipelines.timelines import WINDOWS

# One hash tag for all of it: every batch's script touches users, items, markers and the outbox
# together, which on a Redis Cluster must share a slot (so the state lives on one node there).
PREFIX = "engram:{stream}:"
MAX_WINDOW_MICROS = max(WINDOWS.values())
# A duplicate arriving later than this after the original is not recognized (bounded memory).
DEFAULT_DEDUP_TTL_SECONDS = 7 * 86_400
FIELDS_PER_EVENT = 10
OUTBOX = "outbox"  # the outbox stream's key, under the state's prefix

_APPLY = """
local P, ttl, gap, span = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local call = redis.call
local DAY = 86400000000
local function fmt(x) return string.format('%.0f', x) end
local FLOATS = {rb = true, rs = true, rq = true}

-- Each entity hash is read once per batch into a Lua table and written back once at the end.
local cache, order = {}, {}
local function load(h)
  local c = cache[h]
  if not c then
    c = {}
    local got = call('HGETALL', h)
    for j = 1, #got, 2 do c[got[j]] = tonumber(got[j + 1]) end
    cache[h] = c
    order[#order + 1] = h
  end
  return c
end

-- The accumulators every entity keeps, and its last 30 days of events.
local function entity(c, z, t, ts, typ, ws, w, eid, rating)
  c.n = (c.n or 0) + 1
  c.w = (c.w or 0) + w
  local last = c.last
  if not last or t > last then
    -- Trimming once per new UTC day is enough: readers filter on the window anyway.
    if last and math.floor(t / DAY) ~= math.floor(last / DAY) then
      call('ZREMRANGEBYSCORE', z, '-inf', fmt(t - span))
    end
    last = t
    c.last = t
  end
  if not c.first or t < c.first then c.first = t end
  if t > last - span then call('ZADD', z, ts, ts .. ':' .. typ .. ':' .. ws .. ':' .. eid) end
  if rating ~= '' then
    local v = tonumber(rating)
    if not c.rb then c.rb = v end
    local d = v - c.rb
    c.rn = (c.rn or 0) + 1
    c.rs = (c.rs or 0) + d
    c.rq = (c.rq or 0) + d * d
  end
end

-- Sessions: the latest in the user's hash (ss, se), earlier ones as "start:end" members of a
-- sorted set scored by start. An event after the latest session's end extends it or opens a
-- new one; an earlier event merges the intervals within `gap` of it (the batch rule: a gap >
-- session_gap starts a session). Keeps the count (sc) and total length (sd).
local function session(c, z, t)
  local ss, se = c.ss, c.se
  local dc, dd = 0, 0
  if not ss then
    ss, se, dc = t, t, 1
  elseif t >= se then
    if t - se <= gap then
      dd = t - se; se = t
    else
      call('ZADD', z, fmt(ss), fmt(ss) .. ':' .. fmt(se))
      ss, se, dc = t, t, 1
    end
  else
    call('ZADD', z, fmt(ss), fmt(ss) .. ':' .. fmt(se))
    local start, stop, merged, removed = t, t, 0, 0
    local before = call('ZREVRANGEBYSCORE', z, fmt(t), '-inf', 'LIMIT', 0, 1)[1]
    if before then
      local s, e = string.match(before, '^([^:]+):([^:]+)$')
      s, e = tonumber(s), tonumber(e)
      if e >= t - gap then
        start = s; if e > stop then stop = e end
        merged = merged + 1; removed = removed + (e - s)
        call('ZREM', z, before)
      end
    end
    local after = call('ZRANGEBYSCORE', z, '(' .. fmt(t), '+inf', 'LIMIT', 0, 1)[1]
    if after then
      local s, e = string.match(after, '^([^:]+):([^:]+)$')
      s, e = tonumber(s), tonumber(e)
      if s <= t + gap then
        if e > stop then stop = e end
        merged = merged + 1; removed = removed + (e - s)
        call('ZREM', z, after)
      end
    end
    call('ZADD', z, fmt(start), fmt(start) .. ':' .. fmt(stop))
    dc, dd = 1 - merged, (stop - start) - removed
    local latest = call('ZPOPMAX', z)[1]
    local s, e = string.match(latest, '^([^:]+):([^:]+)$')
    ss, se = tonumber(s), tonumber(e)
  end
  c.ss, c.se = ss, se
  c.sc = (c.sc or 0) + dc
  c.sd = (c.sd or 0) + dd
end

local new, totals = {}, {}
local records, entries = {}, {}
local i, k = 5, 0
local n_args = #ARGV
while i <= n_args do
  local eid, user, item, cat = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local ts, typ, ws, rating = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  local record, entry = ARGV[i + 8], ARGV[i + 9]
  local t, w = tonumber(ts), tonumber(ws)
  i = i + 10
  k = k + 1
  if call('SET', P .. 'seen:' .. eid, '1', 'NX', 'EX', ttl) then
    new[k] = 1
    if record ~= '' then
      records[#records + 1] = record
      entries[#entries + 1] = entry
    end
    local u = load(P .. 'u:' .. user)
    local tfield = 't' .. typ
    u[tfield] = (u[tfield] or 0) + 1
    session(u, P .. 'us:' .. user, t)
    if item ~= '' then
      if call('SADD', P .. 'ui:' .. user, item) == 1 then u.di = (u.di or 0) + 1 end
      local it = load(P .. 'i:' .. item)
      if call('SADD', P .. 'iu:' .. item, user) == 1 then it.du = (it.du or 0) + 1 end
      entity(it, P .. 'ie:' .. item, t, ts, typ, ws, w, eid, rating)
    end
    entity(u, P .. 'ue:' .. user, t, ts, typ, ws, w, eid, rating)
    if cat ~= '' then call('HINCRBY', P .. 'uc:' .. user, cat, ws) end
    totals[tfield] = (totals[tfield] or 0) + 1
  else
    new[k] = 0
  end
end
for _, h in ipairs(order) do
  local args = {}
  for name, value in pairs(cache[h]) do
    args[#args + 1] = name
    args[#args + 1] = FLOATS[name] and string.format('%.17g', value) or fmt(value)
  end
  call('HSET', h, unpack(args))
end
for name, count in pairs(totals) do call('HINCRBY', P .. 'totals', name, count) end
if #records > 0 then
  call('XADD', P .. 'outbox', '*', 'signals', table.concat(records, '\\n'),
    'entries', table.concat(entries, '\\n'))
end
return new
"""


@dataclass(frozen=True)
class StateEvent:
    """What the window state needs of one enriched signal."""

    event_id: str
    user_id: str
    item_id: str | None
    category: str | None
    t: int  # epoch microseconds
    type_code: int  # index in SIGNAL_TYPES
    weight: int  # micro-weight, as the batch aggregates round it
    rating: float | None  # the value of a `rate` signal


@dataclass(frozen=True)
class EntityState:
    """One user's or item's state as read back: accumulators and its last 30 days of events."""

    entity_id: str
    totals: dict[str, str]  # the `u:`/`i:` hash
    recent: list[tuple[int, int, int]]  # (t, type code, micro-weight), t > last - 30 days
    affinities: dict[str, int]  # users only: category -> micro-weight sum (touched categories)


class WindowState:
    """The Redis side of the incremental aggregates: apply events, read entities back."""

    def __init__(
        self,
        client: RedisClient,
        *,
        session_gap_micros: int,
        dedup_ttl_seconds: int = DEFAULT_DEDUP_TTL_SECONDS,
        prefix: str = PREFIX,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self._gap = session_gap_micros
        self._ttl = dedup_ttl_seconds
        self._apply = cast(Any, client).register_script(_APPLY)

    @property
    def outbox(self) -> str:
        """The outbox stream: each new event's normalized record, in the order applied."""
        return self.prefix + OUTBOX

    def apply(
        self,
        events: Sequence[StateEvent],
        records: Mapping[str, str | bytes] | None = None,
        entry_ids: Mapping[str, str | None] | None = None,
    ) -> list[bool]:
        """Fold the events in atomically; per event, True when it was new (not a duplicate).

        The new events with a record in `records` (their normalized JSON, one line each,
        pipelines/stream/payload.py) are appended to the outbox as one entry, with their stream
        entry ids from `entry_ids` (none: not covered by any forget tombstone), in the same
        script.
        """
        if not events:
            return []
        records = records or {}
        entry_ids = entry_ids or {}
        args: list[str | bytes | int] = [self.prefix, self._ttl, self._gap, MAX_WINDOW_MICROS]
        for e in events:
            args += [
                e.event_id,
                e.user_id,
                e.item_id or "",
                e.category or "",
                e.t,
                e.type_code,
                e.weight,
                "" if e.rating is None else repr(float(e.rating)),
                records.get(e.event_id, b""),
                entry_ids.get(e.event_id) or "",
            ]
        flags = self._apply(keys=[self.prefix + "totals"], args=args)  # the key routes it
        return [bool(flag) for flag in flags]

    def read(self, users: Sequence[str], items: Sequence[str]) -> tuple[list[EntityState], ...]:
        """The state of these users and items, in one pipelined round trip."""
        p = self.prefix
        pipe = self.client.pipeline(transaction=False)
        for user in users:
            pipe.hgetall(f"{p}u:{user}")
            pipe.zrange(f"{p}ue:{user}", 0, -1)
            pipe.hgetall(f"{p}uc:{user}")
        for item in items:
            pipe.hgetall(f"{p}i:{item}")
            pipe.zrange(f"{p}ie:{item}", 0, -1)
        replies = pipe.execute()
        user_states = [_entity(user, *replies[3 * k : 3 * k + 3]) for k, user in enumerate(users)]
        base = 3 * len(users)
        item_states = [
            _entity(item, replies[base + 2 * k], replies[base + 2 * k + 1], {})
            for k, item in enumerate(items)
        ]
        return user_states, item_states

    def forget_user(self, user_id: str) -> int:
        """`forget_user_state` under this state's prefix."""
        return forget_user_state(self.client, user_id, prefix=self.prefix)

    def unsee(self, event_ids: Sequence[str]) -> int:
        """Drop the dedup markers of these events, so applying them again counts them."""
        if not event_ids:
            return 0
        return int(cast(Any, self.client.delete(*(f"{self.prefix}seen:{e}" for e in event_ids))))

    def totals(self) -> dict[str, int]:
        """New events folded in so far, per type code field (`t<code>`)."""
        raw = self.client.hgetall(f"{self.prefix}totals")
        return {k.decode(): int(v) for k, v in raw.items()}  # type: ignore[union-attr]


# One script, so an apply running meanwhile cannot add an item between reading `ui:` and deleting.
_FORGET_USER = """
local P, user = ARGV[1], ARGV[2]
local left = 0
for _, item in ipairs(redis.call('SMEMBERS', P .. 'ui:' .. user)) do
  left = left + redis.call('SREM', P .. 'iu:' .. item, user)
end
return left + redis.call('DEL', P .. 'u:' .. user, P .. 'ue:' .. user, P .. 'us:' .. user,
  P .. 'uc:' .. user, P .. 'ui:' .. user)
"""


def forget_user_state(client: RedisClient, user_id: str, *, prefix: str = PREFIX) -> int:
    """Delete the user's window state (`engram forget`, DELETE /v1/users/{id}), atomically;
    returns the keys deleted plus the items' user sets the user left.

    Gone: every key named after the user (`u:`, `ue:`, `us:`, `uc:`, `ui:`) and the user's
    membership of the items' distinct-user sets (`iu:`). Kept, as they name no one: item
    aggregates (counts, micro-weights, and `ie:` members "t:type:weight:event_id"; counts are
    not recomputed) and the dedup markers `seen:<event_id>`, which expire after the dedup TTL
    and meanwhile stop a redelivered event of the forgotten user from bringing their state back.
    """
    # The key only routes the script to the state's node on a cluster.
    return int(cast(Any, client.eval(_FORGET_USER, 1, prefix + "totals", prefix, user_id)))


def _entity(
    entity_id: str,
    totals: dict[bytes, bytes],
    recent: list[bytes],
    affinities: dict[bytes, bytes],
) -> EntityState:
    # Members are "t:type:weight:event_id": each names its own time, so no scores are read.
    parts = (member.split(b":", 3) for member in recent)
    events = [(int(t), int(code), int(weight)) for t, code, weight, _ in parts]
    return EntityState(
        entity_id=entity_id,
        totals={k.decode(): v.decode() for k, v in totals.items()},
        recent=events,
        affinities={k.decode(): int(v) for k, v in affinities.items()},
    )


_MARK_REJECTED = """
local fresh = {}
local count = 0
for k = 1, #KEYS do
  if redis.call('SET', KEYS[k], '1', 'NX', 'EX', ARGV[1]) then
    fresh[k] = 1
    count = count + 1
  else
    fresh[k] = 0
  end
end
if count > 0 then redis.call('HINCRBY', ARGV[2], 'rejected', count) end
return fresh
"""


class RejectionMarks:
    """Which stream entries' rejections were already stored, so a redelivery stores none twice."""

    def __init__(
        self,
        client: RedisClient,
        *,
        ttl_seconds: int = DEFAULT_DEDUP_TTL_SECONDS,
        prefix: str = PREFIX,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self._ttl = ttl_seconds
        self._mark = cast(Any, client).register_script(_MARK_REJECTED)

    def _key(self, entry_id: str) -> str:
        return f"{self.prefix}rejected:{entry_id}"

    def unmarked(self, entry_ids: Sequence[str]) -> list[bool]:
        """Per entry: True when its rejection is not stored yet."""
        pipe = self.client.pipeline(transaction=False)
        for entry_id in entry_ids:
            pipe.exists(self._key(entry_id))
        return [not found for found in pipe.execute()]

    def mark(self, entry_ids: Sequence[str]) -> int:
        """Mark the entries' rejections stored and count the new ones in the totals."""
        if not entry_ids:
            return 0
        keys = [self._key(entry_id) for entry_id in entry_ids]
        return sum(self._mark(keys=keys, args=[self._ttl, f"{self.prefix}totals"]))
