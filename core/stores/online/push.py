"""Micro-batched online writes: snapshot rows into Feast's Redis hashes, as a push writes them.

Fields and values come from layout.py and encode.py, so the hash holds what
`store.push(push_source, rows)` would leave (one field per feature of every view over the push
source, and `_ts:<view>`), and `get_online_features` reads it. Two differences from Feast's push,
both needed by a stream: a row replaces a stored row of the *same* event time (a late event
changes an entity's features without moving its latest time; Feast skips rows not strictly
newer), and a row is written only if the state it was computed from is at least as new as the
one last written for the entity (`wn`, checked in the same Lua call), so two consumers racing on
one entity can never leave the older row in place.

That version lives in a small hash of Engram's beside each Feast hash (`written_key`), named with
a hash tag of the Feast key's slot, so on a Redis Cluster the check and the write still run in
one script on one node (one script per slot there, pipelined; one for the whole batch on a
single Redis).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import pyarrow as pa

from core.stores.cluster import RedisClient, is_cluster, key_slot, slot_tag
from core.stores.online.encode import encode_values
from core.stores.online.layout import ViewRef, feature_field, redis_keys, timestamp_field
from core.stores.online.timestamps import encode_event_timestamps, event_micros
from core.stores.online.transport import bulk, round_trip
from core.stores.online.varints import matrix_to_list

# KEYS: per row the Feast hash and its `written_key`. ARGV: per row the state version (event
# count), the row's event time in microseconds, the number of field/value pairs, then the pairs.
_WRITE = """
local written, a = 0, 1
for k = 1, #KEYS, 2 do
  local version, micros, n = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  a = a + 3
  local done = tonumber(redis.call('HGET', KEYS[k + 1], 'wn') or '-1')
  local stored = tonumber(redis.call('HGET', KEYS[k + 1], 'wt') or '-1')
  if version >= done and micros >= stored then
    local args = {}
    for j = 0, 2 * n - 1 do args[#args + 1] = ARGV[a + j] end
    redis.call('HSET', KEYS[k], unpack(args))
    redis.call('HSET', KEYS[k + 1], 'wn', ARGV[a - 3], 'wt', ARGV[a - 2])
    written = written + 1
  end
  a = a + 2 * n
end
return written
"""
WRITTEN = b"engram:written:"


def written_key(project: str, join_key: str, entity_id: str) -> bytes:
    """The key holding the state version and event time last written for an entity's Feast
    hash, in that hash's cluster slot: the Feast key as its hash tag (or, when the Feast key
    holds a `}`, another tag of that slot)."""
    feast_key = redis_keys(project, join_key, [entity_id])[0]
    if b"}" not in feast_key:
        return WRITTEN + b"{" + feast_key + b"}"
    return WRITTEN + slot_tag(feast_key).encode() + feast_key


class OnlineWriter:
    """Writes snapshot rows of one push source's views into Feast's online hashes."""

    def __init__(self, client: RedisClient, project: str, views: Sequence[ViewRef]) -> None:
        self.client = client
        self.project = project
        self.views = tuple(views)
        self.join_key = self.views[0].join_key
        # EVALSHA on a single Redis; a cluster's pipeline sends the script's text (below).
        self._script = None if is_cluster(client) else cast(Any, client).register_script(_WRITE)

    def row_fields(self, table: pa.Table) -> list[list[bytes]]:
        """Per row: the hash's field/value pairs, flattened, exactly as Feast encodes them. Pure."""
        stamps = matrix_to_list(*encode_event_timestamps(event_micros(table["event_timestamp"])))
        rows: list[list[bytes]] = [[] for _ in range(table.num_rows)]
        for view in self.views:
            for ref in view.features:
                field = feature_field(view.name, ref.name)
                values = encode_values(table[ref.name], ref.kind, ref.name)
                for row, value in zip(rows, values, strict=True):
                    row += (field, value)
            ts_field = timestamp_field(view.name)
            for row, stamp in zip(rows, stamps, strict=True):
                row += (ts_field, stamp)
        return rows

    def delete(self, ids: Sequence[str]) -> int:
        """Delete these entities' rows (every view over the push source) and their written
        versions; how many rows existed."""
        if not ids:
            return 0
        rows = redis_keys(self.project, self.join_key, list(ids))
        versions = [written_key(self.project, self.join_key, i) for i in ids]
        pipe = self.client.pipeline(transaction=False)
        for key in rows + versions:
            pipe.delete(key)
        return sum(pipe.execute()[: len(rows)])

    def write(self, table: pa.Table, versions: Sequence[int]) -> int:
        """Write the rows whose state (`versions`: its event count) is not older than the last
        written; returns rows written."""
        if table.num_rows == 0:
            return 0
        ids = table[self.join_key].to_pylist()
        rows = redis_keys(self.project, self.join_key, ids)
        micros = event_micros(table["event_timestamp"])
        calls: dict[int, tuple[list[bytes], list[bytes | int]]] = {}
        cluster = is_cluster(self.client)
        for entity, row, version, t, fields in zip(
            ids, rows, versions, micros.tolist(), self.row_fields(table), strict=True
        ):
            keys, args = calls.setdefault(key_slot(row) if cluster else 0, ([], []))
            keys += [row, written_key(self.project, self.join_key, entity)]
            args += [version, t, len(fields) // 2, *fields]
        if self._script is not None:
            keys, args = calls[0]
            return int(self._script(keys=keys, args=args))
        # One script per slot (keys of several slots cannot meet in one), each sent to its
        # slot's node, pipelined; sent again whole if slots move (a row written twice is the
        # same row).
        commands = [_eval(keys, args) for keys, args in calls.values()]
        firsts = [keys[0] for keys, _ in calls.values()]
        return sum(int(n) for n in round_trip(self.client, commands, firsts))


_SCRIPT = _WRITE.encode()


def _eval(keys: list[bytes], args: list[bytes | int]) -> bytes:
    """RESP of one EVAL of `_WRITE` (Redis keeps the compiled script by its hash)."""
    parts = [_SCRIPT, b"%d" % len(keys), *keys]
    parts += [a if isinstance(a, bytes) else b"%d" % a for a in args]
    return b"*%d\r\n$4\r\nEVAL\r\n%s" % (1 + len(parts), b"".join(map(bulk, parts)))
