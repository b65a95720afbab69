"""Signal contract v1: the one definition of a valid signal, shared by files, stream and HTTP.

docs/signals.md is the user-facing text of this module; a test keeps the two in step.
Only constants and Arrow schemas live here: validation itself is in `normalize.py`.
"""

from __future__ import annotations

import pyarrow as pa

CONTRACT_VERSION = 1

SIGNAL_TYPES: tuple[str, ...] = (
    "view",
    "click",
    "rate",
    "purchase",
    "add_to_cart",
    "search",
    "message",
    "review",
    "tag",
)
# Types that describe contact with one item, so `item_id` is required.
ITEM_TYPES: frozenset[str] = frozenset(
    {"view", "click", "rate", "purchase", "add_to_cart", "review", "tag"}
)
# Types that carry words, so `text` is required.
TEXT_TYPES: frozenset[str] = frozenset({"search", "message", "review", "tag"})

# Ids are opaque to Engram but must be safe in every store key and filter expression.
ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
ID_MAX_LENGTH = 128
TEXT_MAX_CHARS = 10_000
RATING_MIN, RATING_MAX = 0.0, 5.0
# Epoch seconds outside this range are almost always milliseconds or garbage.
EPOCH_MIN_SECONDS = 0
EPOCH_MAX_SECONDS = 4_102_444_800  # 2100-01-01T00:00:00Z

# Implicit feedback weight per type, used by weighted counts and affinities. A rating's
# weight scales with its value instead (see `rate_weight` in pipelines/enrich.py).
IMPLICIT_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "click": 2.0,
    "rate": 3.0,
    "add_to_cart": 4.0,
    "purchase": 8.0,
    "review": 3.0,
    "tag": 2.0,
    "search": 0.0,
    "message": 0.0,
}

# Known `context` keys, lifted to their own columns; others stay in the context JSON.
CONTEXT_FIELDS: tuple[str, ...] = ("session_id", "speaker", "device")
SPEAKERS: frozenset[str] = frozenset({"user", "assistant", "system", "other"})
# How deep `context` may nest: readers that recurse (Python's json) must never meet a record
# they cannot read.
CONTEXT_MAX_DEPTH = 32

UTC_TS = pa.timestamp("us", tz="UTC")

# A signal's own fields, typed: the columns of a Parquet source.
SIGNAL_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("ts", UTC_TS, nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("item_id", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("text", pa.string()),  # normalized: NFKC, whitespace-collapsed, PII redacted
        pa.field("context", pa.string()),  # the context object as JSON text
    ]
)

# A valid signal after normalization: what the offline event store holds.
NORMALIZED_SCHEMA = pa.schema(
    [
        *SIGNAL_SCHEMA,
        pa.field("session_id", pa.string()),  # context.session_id when given
        pa.field("speaker", pa.string()),  # context.speaker (or role), lower-cased
        pa.field("device", pa.string()),
        pa.field("source", pa.string(), nullable=False),  # file path, "stream" or "api"
        pa.field("ingested_at", UTC_TS, nullable=False),
    ]
)

# Enrichment adds catalog, session and calendar fields to a normalized signal.
ENRICHED_SCHEMA = pa.schema(
    [
        *NORMALIZED_SCHEMA,
        pa.field("category", pa.string()),
        pa.field("genres", pa.list_(pa.string())),
        pa.field("title", pa.string()),
        pa.field("session", pa.string(), nullable=False),  # derived by inactivity gap
        pa.field("hour", pa.int8(), nullable=False),
        pa.field("weekday", pa.int8(), nullable=False),  # 0 = Monday
        pa.field("weight", pa.float64(), nullable=False),
    ]
)

# The item catalog: one row per item, joined onto signals by enrichment.
CATALOG_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("title", pa.string()),
        pa.field("category", pa.string()),
        pa.field("genres", pa.list_(pa.string())),
        pa.field("text", pa.string()),
    ]
)

# A rejected record: kept whole (PII redacted) with the first reason it failed.
DEAD_LETTER_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("position", pa.int64(), nullable=False),  # line or row number in the source
        pa.field("raw", pa.string(), nullable=False),
        pa.field("event_id", pa.string()),
        pa.field("user_id", pa.string()),
        pa.field("field", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("rejected_at", UTC_TS, nullable=False),
    ]
)
