"""Micro-batched online writes: snapshot rows into Feast's Redis hashes, as a push writes them.

Fields and values come from layout.py and encode.py, so the hash holds what
`store.push(push_source, rows)` would leave (one field per feature of every view over the push
source, and `_ts:<view>`), and `get_online_features` reads it. Two differences from Feast's push,
both needed by a stream: a row replaces a stored row of the *same* event time (a late event
changes an entity's features without moving its latest time; Feast skips rows not strictly
newer), and a row is written only if the state it was computed from is at least as new as the
one last written for the entity (`wn`, checked in the same Lua call), so two consumers racing on
one entity can never leave the older row in place.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import redis

from core.stores.online.encode import encode_values
from core.stores.online.layout import ViewRef, feature_field, redis_keys, timestamp_field
from core.stores.online.timestamps import encode_event_timestamps, event_micros
from core.stores.online.varints import matrix_to_list

# KEYS: the Feast hash of each row. ARGV: per row the state key, the state version (event count),
# the row's event time in microseconds, the number of field/value pairs, then the pairs.
_WRITE = """
local written, a = 0, 1
for k = 1, #KEYS do
  local state, version, micros, n = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]),
    tonumber(ARGV[a + 3])
  a = a + 4
  local done = tonumber(redis.call('HGET', state, 'wn') or '-1')
  local stored = tonumber(redis.call('HGET', state, 'wt') or '-1')
  if version >= done and micros >= stored then
    local args = {}
    for j = 0, 2 * n - 1 do args[#args + 1] = ARGV[a + j] end
    redis.call('HSET', KEYS[k], unpack(args))
    redis.call('HSET', state, 'wn', ARGV[a - 3], 'wt', ARGV[a - 2])
    written = written + 1
  end
  a = a + 2 * n
end
return written
"""


class OnlineWriter:
    """Writes snapshot rows of one push source's views into Feast's online hashes."""

    def __init__(self, client: redis.Redis, project: str, views: Sequence[ViewRef]) -> None:
        self.client = client
        self.project = project
        self.views = tuple(views)
        self.join_key = self.views[0].join_key
        self._script = client.register_script(_WRITE)

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
        """Delete these entities' rows (every view over the push source); how many existed."""
        if not ids:
            return 0
        keys = redis_keys(self.project, self.join_key, list(ids))
        return int(self.client.delete(*keys))  # type: ignore[arg-type]

    def write(self, table: pa.Table, state_keys: Sequence[str], versions: Sequence[int]) -> int:
        """Write the rows whose state is not older than the last written; returns rows written."""
        if table.num_rows == 0:
            return 0
        ids = table[self.join_key].to_pylist()
        keys = redis_keys(self.project, self.join_key, ids)
        micros = event_micros(table["event_timestamp"])
        args: list[bytes | str | int] = []
        for state, version, t, fields in zip(
            state_keys, versions, micros.tolist(), self.row_fields(table), strict=True
        ):
            args += [state, version, t, len(fields) // 2, *fields]
        return int(self._script(keys=keys, args=args))
