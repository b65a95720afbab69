"""The dead-letter store: rejected records with the field and reason they failed on.

Parquet parts, one file per written batch (per entry for the stream: `write_entries`), under
`settings.dead_letter_dir` or, with ENGRAM_STATE_URL set, in PostgreSQL shared by every host
(core/stores/state_files.py). Each part is written whole and atomically, so a reader never sees
half a part and concurrent writers (batch runs, stream consumers, API hosts) never clash.
Nothing is stored unredacted: `write` redacts `raw` and `reason` again even when the caller
(normalize) already did, which costs little because redaction is idempotent and rejected
records are few.
"""

from __future__ import annotations

import fnmatch
import io
import re
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.contract import DEAD_LETTER_SCHEMA, ID_PATTERN
from core.errors import InvalidInputError
from core.settings import Settings
from core.stores.state_files import StateFiles, open_state
from pipelines.redact import redact_array

PART_GLOB = "part-*.parquet"
# A reason's summary ends where the echoed value or the detail starts.
_DETAIL = re.compile(r"(, got |; got | \(|: ).*$", re.DOTALL)


def dead_letter_files(settings: Settings) -> StateFiles:
    """The store's parts: shared (ENGRAM_STATE_URL) or in `settings.dead_letter_dir`."""
    return open_state(settings, "dead_letter", settings.dead_letter_dir)


def write(settings: Settings, rejected: pa.Table) -> str | None:
    """Store one batch of rejected records as a new part; returns its name (None if empty)."""
    if rejected.num_rows == 0:
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    name = f"part-{stamp}-{uuid.uuid4().hex[:12]}.parquet"
    dead_letter_files(settings).write(name, _parquet(_redacted(rejected)))
    return name


def write_entries(settings: Settings, rejected: pa.Table, entry_ids: Sequence[str]) -> list[str]:
    """Store rejected stream records, one part per stream entry, named after the entry: writing
    an entry again (a redelivery after a crash between this write and its mark) replaces its
    part instead of adding a second copy. Returns the parts' names."""
    if len(entry_ids) != rejected.num_rows:
        raise InvalidInputError("entry_ids", f"{len(entry_ids)} ids for {rejected.num_rows} rows")
    files = dead_letter_files(settings)
    table = _redacted(rejected)
    names = []
    for row, entry_id in enumerate(entry_ids):
        if not re.fullmatch(r"\d+-\d+", entry_id):
            raise InvalidInputError("entry_id", f"{entry_id!r} is not a stream entry id")
        millis, sequence = entry_id.split("-")
        stamp = datetime.fromtimestamp(int(millis) / 1000, UTC).strftime("%Y%m%dT%H%M%S%fZ")
        names.append(f"part-{stamp}-entry-{millis}-{sequence}.parquet")
        files.write(names[-1], _parquet(table.slice(row, 1)))
    return names


def _redacted(rejected: pa.Table) -> pa.Table:
    table = rejected.select(DEAD_LETTER_SCHEMA.names).cast(DEAD_LETTER_SCHEMA)
    table = table.set_column(
        table.schema.get_field_index("raw"), "raw", redact_array(table.column("raw"))
    )
    table = table.set_column(
        table.schema.get_field_index("reason"), "reason", redact_array(table.column("reason"))
    )
    return table


def read(settings: Settings) -> pa.Table:
    """Every stored rejected record, oldest part first (DEAD_LETTER_SCHEMA)."""
    files = dead_letter_files(settings)
    parts = _parts(files)
    if not parts:
        return DEAD_LETTER_SCHEMA.empty_table()
    return pa.concat_tables(_table(files.read(part)) for part in parts)


def summarize_reason(field: str, reason: str) -> str:
    """The reason without its echoed value or detail, prefixed by the field: a stable group key."""
    return f"{field}: {_DETAIL.sub('', reason)}"


def count_reasons(rejected: pa.Table) -> dict[str, int]:
    """Rejected records per summarized reason (see `summarize_reason`), most frequent first."""
    counts: Counter[str] = Counter()
    grouped = rejected.group_by(["field", "reason"]).aggregate([([], "count_all")])
    for field, reason, count in zip(
        grouped.column("field").to_pylist(),
        grouped.column("reason").to_pylist(),
        grouped.column("count_all").to_pylist(),
        strict=True,
    ):
        counts[summarize_reason(field, reason)] += count
    return dict(counts.most_common())


def counts_by_reason(settings: Settings) -> dict[str, int]:
    """`count_reasons` over the whole store."""
    return count_reasons(read(settings))


def forget_user(settings: Settings, user_id: str) -> int:
    """Remove the user's rejected records from every part; returns how many were removed.

    A record is the user's when its `user_id` column holds the id, or, for a record that failed
    before its user id could be read (invalid JSON), when its raw text has `"user_id": "<id>"`.
    """
    if not re.fullmatch(ID_PATTERN, user_id):
        raise InvalidInputError("user_id", f"must match {ID_PATTERN}")
    raw_pattern = r'"user_id"\s*:\s*"?' + re.escape(user_id) + r'(["\s,}]|$)'
    removed = 0
    files = dead_letter_files(settings)
    for part in _parts(files):
        table = _table(files.read(part))
        by_column = pc.fill_null(pc.equal(table.column("user_id"), user_id), False)
        by_raw = pc.and_(
            pc.is_null(table.column("user_id")),
            pc.match_substring_regex(table.column("raw"), raw_pattern),
        )
        mine = pc.or_(by_column, by_raw)
        count = pc.sum(pc.cast(mine, pa.int64())).as_py() or 0
        if count == 0:
            continue
        kept = table.filter(pc.invert(mine))
        if kept.num_rows == 0:
            files.remove(part)
        else:
            files.write(part, _parquet(kept))
        removed += count
    return removed


def _parts(files: StateFiles) -> list[str]:
    return [key for key in files.names() if fnmatch.fnmatchcase(key, PART_GLOB)]


def _parquet(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    return out.getvalue()


def _table(data: bytes) -> pa.Table:
    return pq.read_table(pa.BufferReader(data), schema=DEAD_LETTER_SCHEMA)


__all__ = [
    "count_reasons",
    "counts_by_reason",
    "dead_letter_files",
    "forget_user",
    "read",
    "summarize_reason",
    "write",
    "write_entries",
]
