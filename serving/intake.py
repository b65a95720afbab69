"""Signals over HTTP: parse a JSON array or NDJSON body, validate each record with the batch rules,
and hand the accepted ones to the stream (and, with ?sync=true, to the pipeline at once).

Validation is `pipelines.normalize.normalize_records`, the very code the batch and the stream run,
so a record the API accepts is one they accept, and a rejection names the same field and reason.
The accepted records go on as what normalization made of them (pipelines/stream/payload.py:
text normalized and PII-redacted), never as the JSON the client sent; rejected ones are kept in
the dead-letter store (source "api") like any other, redacted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from core.contract import NORMALIZED_SCHEMA
from core.settings import Settings
from pipelines import dead_letter, strict_json
from pipelines.normalize import RecordNormalizer
from pipelines.stream import payload
from serving.errors import ApiError

MAX_RECORDS = 1_000  # per request; larger loads go through files (`engram ingest`) or the stream
JSON_TYPES = ("application/json",)
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")


@dataclass(frozen=True)
class Parsed:
    """The records of one body, each with its index in the request (array index or line)."""

    records: list[str | bytes]
    indices: list[int]


@dataclass(frozen=True)
class Checked:
    """The accepted records normalized (NORMALIZED_SCHEMA), and one rejection per invalid one."""

    accepted: pa.Table
    rejections: list[dict[str, Any]]


def parse_body(body: bytes, mimetype: str) -> Parsed:
    """Records from a JSON array or NDJSON (blank lines skipped; index = 0-based line number)."""
    if mimetype in NDJSON_TYPES:
        records: list[str | bytes] = []
        indices: list[int] = []
        for number, line in enumerate(body.split(b"\n")):
            if line.strip():
                records.append(line.rstrip(b"\r"))
                indices.append(number)
        return _bounded(Parsed(records, indices))
    if mimetype not in JSON_TYPES:
        raise ApiError(415, "send a JSON array (application/json) or NDJSON (application/x-ndjson)")
    # Strict: a key named twice, a lone surrogate or nesting too deep anywhere is a 400 naming
    # the field ($[3].user_id); each line of NDJSON is checked by the pipeline instead.
    document = strict_json.loads(body)
    if not isinstance(document, list):
        raise ApiError(
            400, "the body must be a JSON array of signals", field="$", error="invalid_input"
        )
    try:
        texts: list[str | bytes] = [json.dumps(record, ensure_ascii=False) for record in document]
    except RecursionError:  # parsed at the edge of the interpreter's depth, deeper to write
        raise ApiError(400, "nested too deeply", field="$", error="invalid_input") from None
    return _bounded(Parsed(texts, list(range(len(texts)))))


def _bounded(parsed: Parsed) -> Parsed:
    if len(parsed.records) > MAX_RECORDS:
        raise ApiError(413, f"at most {MAX_RECORDS} signals per request, got {len(parsed.records)}")
    return parsed


def check_records(settings: Settings, normalizer: RecordNormalizer, parsed: Parsed) -> Checked:
    """Validate with the contract's rules; rejections are stored in the dead-letter store."""
    if not parsed.records:
        return Checked(NORMALIZED_SCHEMA.empty_table(), [])
    normalized = normalizer.normalize(parsed.records, source="api", ingested_at=datetime.now(UTC))
    rejected = normalized.rejected
    positions = rejected.column("position").to_pylist()
    rejections = [
        {"index": parsed.indices[position], "event_id": event_id, "field": field, "reason": reason}
        for position, event_id, field, reason in zip(
            positions,
            rejected.column("event_id").to_pylist(),
            rejected.column("field").to_pylist(),
            rejected.column("reason").to_pylist(),
            strict=True,
        )
    ]
    if rejected.num_rows:
        # Positions in the dead letter are the request's indices, as the client numbers them.
        index = rejected.schema.get_field_index("position")
        moved = pa.array([parsed.indices[p] for p in positions], pa.int64())
        dead_letter.write(settings, rejected.set_column(index, "position", moved))
    return Checked(normalized.accepted, rejections)


def as_text(accepted: pa.Table) -> list[str]:
    """The accepted records as the stream carries them: normalized, redacted JSON text."""
    return [text.decode() for text in payload.encode(accepted)]
