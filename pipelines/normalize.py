"""Normalization: raw records in, valid normalized signals and rejected records out.

One code path for batch files, the Redis stream and the HTTP API, vectorized end to end: DuckDB
SQL parses and checks every field, pyarrow.compute normalizes and redacts text; no Python runs
per record. For every input, read = accepted + rejected, and a rejected record names the first
field that failed (rules in contract order: $, event_id, user_id, ts, type, item_id, value, text,
context) with a reason a person can act on. docs/signals.md is the user-facing text of the rules.

Raw records come as a DuckDB relation in one of two shapes:
- JSON records: `position BIGINT, raw VARCHAR` (the JSON text of one record), as JSONL files,
  the stream and the API give them. An optional `error VARCHAR` column lets a source reject a
  record it could not read (e.g. bad UTF-8) on field "$".
- Typed records: `position BIGINT` and the contract's columns (`event_id`, `user_id`, `ts`,
  `type`, optionally `item_id`, `value`, `text`, `context`) of any type, as Parquet and
  MovieLens give them. Values go through the same rules, so a wrong type is rejected per record.
Both shapes may carry `source VARCHAR`, which then wins over the `source` argument per row.

Unknown top-level fields are ignored (forward compatibility). No deduplication happens here:
accepted rows keep the input order, which the runner's dedup-by-event_id relies on.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from core.contract import (
    CONTEXT_MAX_DEPTH,
    DEAD_LETTER_SCHEMA,
    NORMALIZED_SCHEMA,
    TEXT_MAX_CHARS,
    TEXT_TYPES,
    UTC_TS,
)
from core.errors import InvalidInputError
from pipelines import strict_json
from pipelines.redact import redact_array
from pipelines.signal_rules import FIELDS, checks_sql

# A rejected record longer than this is cut in the dead letter (with a marker saying so).
RAW_MAX_CHARS = 65_536
BATCH_ROWS = 1 << 20

# Text that is printable ASCII without doubled, leading or trailing spaces is already normal.
_NEEDS_NORMALIZING = r"[^\x20-\x7e]|  |^ | $"
# Control characters other than whitespace, and invisible zero-width space and BOM: removed.
_CONTROL_PATTERN = r"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\x{200b}\x{feff}]"
# Whitespace runs (ASCII and Unicode, line and paragraph separators included): one space.
_SPACE_PATTERN = r"[\s\x{85}\p{Z}]+"


@dataclass(frozen=True)
class Normalized:
    """The outcome of normalizing raw records: valid signals and rejected records."""

    accepted: pa.Table  # NORMALIZED_SCHEMA, input order
    rejected: pa.Table  # DEAD_LETTER_SCHEMA, input order, raw and reason PII-redacted

    @property
    def read(self) -> int:
        """Records read: always accepted + rejected."""
        return self.accepted.num_rows + self.rejected.num_rows


def normalize(
    con: duckdb.DuckDBPyConnection,
    raw: duckdb.DuckDBPyRelation,
    *,
    source: str,
    ingested_at: datetime,
) -> Normalized:
    """Validate and normalize raw records (see the module doc for their shapes) in one pass."""
    parts = list(iter_normalize(con, raw, source=source, ingested_at=ingested_at))
    if not parts:
        return Normalized(NORMALIZED_SCHEMA.empty_table(), DEAD_LETTER_SCHEMA.empty_table())
    return Normalized(
        accepted=pa.concat_tables([part.accepted for part in parts]),
        rejected=pa.concat_tables([part.rejected for part in parts]),
    )


def iter_normalize(
    con: duckdb.DuckDBPyConnection,
    raw: duckdb.DuckDBPyRelation,
    *,
    source: str,
    ingested_at: datetime,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[Normalized]:
    """`normalize` in batches of about `batch_rows` records, in input order, for bounded memory."""
    if ingested_at.tzinfo is None:
        raise InvalidInputError("ingested_at", "must be timezone-aware")
    view = _view_name(raw)
    try:
        reader = con.sql(checks_sql(raw, view)).to_arrow_reader(batch_rows)
        for batch in reader:
            yield _finish(batch, source=source, ingested_at=ingested_at)
    finally:
        con.execute(f"DROP VIEW IF EXISTS {view}")


def normalize_records(
    records: Sequence[Mapping[str, Any] | str | bytes],
    *,
    source: str,
    ingested_at: datetime,
    con: duckdb.DuckDBPyConnection | None = None,
    normalizer: RecordNormalizer | None = None,
) -> Normalized:
    """Normalize a list of records (mappings, JSON text or JSON bytes); position = list index.

    Give a long-lived `normalizer` (then `con` is not used) to skip planning the checking query
    on every call: a caller normalizing small batches over and over should keep one.
    """
    if ingested_at.tzinfo is None:
        raise InvalidInputError("ingested_at", "must be timezone-aware")
    table = _records_table(records)
    checked = normalizer.check(table) if normalizer is not None else _check_once(table, con)
    if checked is None or checked.num_rows == 0:
        return Normalized(NORMALIZED_SCHEMA.empty_table(), DEAD_LETTER_SCHEMA.empty_table())
    return _finish(checked.combine_chunks().to_batches()[0], source=source, ingested_at=ingested_at)


class RecordNormalizer:
    """The checking query of `normalize_records` planned once, for callers of many small batches.

    Parsing, binding and optimizing that query costs 50-90 ms, far more than checking a thousand
    records with it. This object plans it once as a prepared statement over a fixed-schema view
    (position, raw, error) and, per call, swaps the view's content for the call's records: the
    view is an Arrow stream DuckDB asks for anew at each scan, so the plan reads each call's
    records without being bound again (a table would be: DuckDB rebinds a prepared statement
    that reads one). Same rules, same outputs as a fresh `normalize_records`.

    Thread-safe: calls on one normalizer take turns under a lock (one statement, one view).
    Keep one per process or per stream context; one per thread to normalize in parallel.
    It owns a cursor of `con` (or a new in-memory connection of `threads` threads, all cores by
    default: a server answering small batches wants 1, so that one batch cannot take every core
    from the requests beside it): `close()` when done.
    """

    def __init__(
        self, con: duckdb.DuckDBPyConnection | None = None, *, threads: int | None = None
    ) -> None:
        if con is not None:
            self._con = con.cursor()
        else:
            self._con = duckdb.connect(config={"threads": threads} if threads else {})
        self._records = _RecordsView()
        self._lock = threading.Lock()
        self._con.register(_RECORDS_VIEW, self._records)
        self._con.execute(
            f"PREPARE {_CHECKS_STATEMENT} AS "
            f"{checks_sql(self._con.view(_RECORDS_VIEW), _RECORDS_CHECKED_VIEW)}"
        )

    def normalize(
        self,
        records: Sequence[Mapping[str, Any] | str | bytes],
        *,
        source: str,
        ingested_at: datetime,
    ) -> Normalized:
        """`normalize_records(records, ...)` on this normalizer's prepared query."""
        return normalize_records(records, source=source, ingested_at=ingested_at, normalizer=self)

    def check(self, records: pa.Table) -> pa.Table:
        """The checking query's rows for records of `_RECORDS_SCHEMA` (input order)."""
        with self._lock:
            self._records.table = records
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # the small copy is free here
                    return self._con.execute(f"EXECUTE {_CHECKS_STATEMENT}").to_arrow_table()
            finally:
                self._records.table = _RECORDS_SCHEMA.empty_table()  # hold no records between calls

    def close(self) -> None:
        """Release the statement and the cursor."""
        with self._lock:
            self._con.close()

    def __enter__(self) -> RecordNormalizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_RECORDS_SCHEMA = pa.schema(
    [("position", pa.int64()), ("raw", pa.string()), ("error", pa.string())]
)
_RECORDS_VIEW = "_engram_records"
_RECORDS_CHECKED_VIEW = "_engram_records_fields"
_CHECKS_STATEMENT = "_engram_checks"


class _RecordsView:
    """An Arrow C stream over whatever table it holds now (DuckDB asks for it at each scan)."""

    def __init__(self) -> None:
        self.table = _RECORDS_SCHEMA.empty_table()

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self.table.__arrow_c_stream__(requested_schema)


def _records_table(records: Sequence[Mapping[str, Any] | str | bytes]) -> pa.Table:
    """Records as JSON text, with the reason a record could not be read (`_RECORDS_SCHEMA`)."""
    raws: list[str] = []
    errors: list[str | None] = []
    for record in records:
        text, error = _record_json(record)
        raws.append(text)
        errors.append(error)
    return pa.Table.from_arrays(
        [
            pa.array(range(len(raws)), pa.int64()),
            pa.array(raws, pa.string()),
            pa.array(errors, pa.string()),
        ],
        schema=_RECORDS_SCHEMA,
    )


def _check_once(table: pa.Table, con: duckdb.DuckDBPyConnection | None) -> pa.Table | None:
    """The checking query planned for this one call (on `con`, or a connection of its own)."""
    connection = con or duckdb.connect()
    raw = connection.from_arrow(table)
    view = _view_name(raw)
    try:
        sql = checks_sql(raw, view)
        # A few records cost little to run and much to plan: the DB-API path plans once where
        # a relation plans twice, and its extra copy of a small result is free.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            checked: pa.Table | None = connection.execute(sql).to_arrow_table()
    finally:
        connection.execute(f"DROP VIEW IF EXISTS {view}")
        if con is None:
            connection.close()
    return checked


def _view_name(raw: duckdb.DuckDBPyRelation) -> str:
    return f"_engram_raw_{id(raw):x}"


def normalize_text(values: pa.Array) -> pa.Array:
    """Control characters removed, NFKC, whitespace runs collapsed to one space, ends stripped.

    Idempotent: controls go before NFKC, because removing one between a letter and a combining
    mark would leave a pair that NFKC composes on a second pass (the stream normalizes again).
    """
    dirty = pc.fill_null(pc.match_substring_regex(values, _NEEDS_NORMALIZING), False)
    if not pc.any(dirty).as_py():
        return values
    text = pc.replace_substring_regex(
        pc.filter(values, dirty), pattern=_CONTROL_PATTERN, replacement=""
    )
    text = pc.utf8_normalize(text, form="NFKC")
    text = pc.replace_substring_regex(text, pattern=_SPACE_PATTERN, replacement=" ")
    return pc.replace_with_mask(values, dirty, pc.utf8_trim(text, characters=" "))


# --- Turning a record into JSON text (stream and API) -------------------------------------------


def _json_default(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _record_json(record: Mapping[str, Any] | str | bytes) -> tuple[str, str | None]:
    if isinstance(record, str):
        return record, None
    if isinstance(record, bytes | bytearray):
        try:
            return bytes(record).decode("utf-8"), None
        except UnicodeDecodeError as e:
            text = bytes(record).decode("utf-8", errors="replace")
            bad = f"byte 0x{record[e.start]:02x} at byte {e.start + 1}"
            return text, f"record is not valid UTF-8 ({bad})"
    try:
        return json.dumps(record, ensure_ascii=False, default=_json_default), None
    except (TypeError, ValueError) as e:
        return repr(record)[:RAW_MAX_CHARS], f"record cannot be written as JSON: {e}"


# --- Arrow: text rules, then the split into accepted and rejected -------------------------------


def _finish(batch: pa.RecordBatch, *, source: str, ingested_at: datetime) -> Normalized:
    strict_field, strict_reason, depth_field, depth_reason = _strict_json(batch)
    text, text_field, text_reason = _text_rules(batch)
    field = pc.coalesce(
        strict_field,
        batch.column("err_field"),
        text_field,
        depth_field,
        batch.column("context_field"),
    )
    rejected = pc.is_valid(field)
    any_rejected = pc.any(rejected).as_py()
    sources = batch.column("source")
    if sources.null_count:
        # Only then: a fill copies the column, and a file's path on 1M rows is 60 MB to copy.
        sources = pc.fill_null(sources, source)
    table = pa.Table.from_arrays(
        [
            batch.column("event_id"),
            batch.column("user_id"),
            batch.column("ts").cast(UTC_TS),
            batch.column("type"),
            batch.column("item_id"),
            batch.column("value"),
            text,
            batch.column("context"),
            batch.column("session_id"),
            batch.column("speaker"),
            batch.column("device"),
            sources,
            pa.repeat(pa.scalar(ingested_at, UTC_TS), batch.num_rows),
        ],
        schema=NORMALIZED_SCHEMA,
    )
    if not any_rejected:
        return Normalized(table, DEAD_LETTER_SCHEMA.empty_table())
    reason = pc.coalesce(
        strict_reason,
        batch.column("err_reason"),
        text_reason,
        depth_reason,
        batch.column("context_reason"),
    )
    return Normalized(
        accepted=table.filter(pc.invert(rejected)),
        rejected=_rejected(
            batch, field, reason, sources, rejected, pc.is_valid(strict_field), ingested_at
        ),
    )


def _strict_json(batch: pa.RecordBatch) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array]:
    """What the strict re-check finds in the records flagged `suspect`: field "$" and its reason
    for those only DuckDB's lenient parser accepts (a trailing comma, NaN, a key named twice),
    then field "context" and its reason for a context nested too deep; nulls elsewhere."""
    nulls = pa.nulls(batch.num_rows, pa.string())
    suspects = pc.indices_nonzero(pc.fill_null(batch.column("suspect"), False)).to_numpy()
    if len(suspects) == 0:
        return nulls, nulls, nulls, nulls
    # Few rows by construction (flagged by cheap tests on the text): checked one by one.
    raws = pc.take(batch.column("raw"), pa.array(suspects)).to_pylist()
    json_reasons: list[str | None] = [None] * batch.num_rows
    depth_reasons: list[str | None] = [None] * batch.num_rows
    for index, text in zip(suspects.tolist(), raws, strict=True):
        try:
            record = strict_json.loads(text)
        except InvalidInputError as error:
            json_reasons[index] = _strict_reason(error)
            continue
        context = record.get("context") if isinstance(record, dict) else None
        if strict_json.depth(context) > CONTEXT_MAX_DEPTH:
            depth_reasons[index] = f"context is nested deeper than {CONTEXT_MAX_DEPTH} levels"
    return (*_field_and_reason("$", json_reasons), *_field_and_reason("context", depth_reasons))


def _field_and_reason(field: str, reasons: list[str | None]) -> tuple[pa.Array, pa.Array]:
    reason = pa.array(reasons, pa.string())
    return pc.if_else(pc.is_valid(reason), field, pa.scalar(None, pa.string())), reason


def _strict_reason(error: InvalidInputError) -> str:
    if error.reason.startswith("not valid JSON"):
        return "record is not valid JSON"
    if error.field == "$":
        return f"record is {error.reason}"
    return error.reason  # names the key at fault


def _text_rules(batch: pa.RecordBatch) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Normalized, redacted text; and the text rule's field and reason where it fails."""
    nulls = pa.nulls(batch.num_rows, pa.string())
    raw_text = batch.column("text")
    if raw_text.null_count == len(raw_text):
        return raw_text, nulls, nulls
    # The limit applies to the text as stored, redacted: a marker can be longer than what it
    # replaces, and a stored text must pass the rules again (the stream normalizes it twice).
    normalized = redact_array(normalize_text(raw_text))
    lengths = pc.utf8_length(normalized)
    too_long = pc.fill_null(pc.greater(lengths, TEXT_MAX_CHARS), False)
    empty = pc.fill_null(pc.equal(lengths, 0), False)
    required_empty = pc.and_(empty, pc.is_in(batch.column("type"), pa.array(sorted(TEXT_TYPES))))
    failed = pc.or_(too_long, required_empty)
    field = pc.if_else(failed, "text", nulls)
    reason = nulls
    if pc.any(failed).as_py():
        reason = pc.if_else(
            too_long,
            pc.binary_join_element_wise(
                f"text is longer than {TEXT_MAX_CHARS} characters after normalization (",
                pc.cast(lengths, pa.string()),
                ")",
                "",
            ),
            pc.if_else(
                required_empty,
                pc.binary_join_element_wise(
                    "text is required for type ",
                    batch.column("type"),
                    " (empty after normalization)",
                    "",
                ),
                nulls,
            ),
        )
    # Empty text on a type that does not need text is no text at all.
    kept = pc.if_else(pc.or_(empty, too_long), nulls, normalized)
    return kept, field, reason


def _rejected(
    batch: pa.RecordBatch,
    field: pa.Array,
    reason: pa.Array,
    sources: pa.Array,
    mask: pa.Array,
    ambiguous: pa.Array,
    rejected_at: datetime,
) -> pa.Table:
    raw = pc.fill_null(pc.filter(batch.column("raw"), mask), "")
    # A record only the lenient parser read has no id to trust (a key named twice holds two): it
    # is credited to no one, and found by its raw text (dead_letter.forget_user).
    no_id = pa.scalar(None, pa.string())
    ids = {
        name: pc.filter(pc.if_else(ambiguous, no_id, batch.column(name)), mask)
        for name in ("event_id", "user_id")
    }
    long = pc.greater(pc.utf8_length(raw), RAW_MAX_CHARS)
    if pc.any(long).as_py():
        cut = pc.utf8_slice_codeunits(raw, 0, RAW_MAX_CHARS)
        raw = pc.if_else(long, pc.binary_join_element_wise(cut, " [truncated]", ""), raw)
    return pa.Table.from_arrays(
        [
            pc.filter(sources, mask),
            pc.filter(batch.column("position"), mask),
            redact_array(raw),
            ids["event_id"],
            ids["user_id"],
            pc.filter(field, mask),
            redact_array(pc.filter(reason, mask)),
            pa.repeat(pa.scalar(rejected_at, UTC_TS), len(raw)),
        ],
        schema=DEAD_LETTER_SCHEMA,
    )


__all__ = [
    "FIELDS",
    "Normalized",
    "RecordNormalizer",
    "iter_normalize",
    "normalize",
    "normalize_records",
    "normalize_text",
]
