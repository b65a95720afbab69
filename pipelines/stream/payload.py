"""What a stream entry carries: one normalized, redacted signal as JSON text.

Producers (`POST /v1/signals`, `engram produce`) normalize before they append, so the stream,
its dead-letter stream, the outbox and Redis's AOF hold the record as the contract left it:
text normalized and PII-redacted, type and speaker lower-cased, `ts` in UTC. The JSON object
holds the NORMALIZED_SCHEMA values that are set (nulls left out): `ts` and `ingested_at` as
RFC 3339 UTC with microseconds, `context` as the JSON object it was normalized to.

Read back through `normalize_records` (the consumer normalizes whatever it reads, since a
foreign producer may append raw records), such a record comes out the same, but for `source`
and `ingested_at`, which the reader sets (tests/pipelines/stream/test_payload.py).
"""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.contract import NORMALIZED_SCHEMA

# Arrow prints the fraction of a microsecond timestamp with %S: "05.123456".
_INSTANT = "%Y-%m-%dT%H:%M:%SZ"
_TIMES = ("ts", "ingested_at")
_JSON_STRUCT = json.dumps(
    {
        field.name: "JSON" if field.name == "context" else "VARCHAR"
        for field in NORMALIZED_SCHEMA
        if field.name not in ("value",)
    }
    | {"value": "DOUBLE"}
)


def encode(signals: pa.Table) -> list[str]:
    """Each normalized signal (NORMALIZED_SCHEMA, in order) as its JSON text."""
    if signals.num_rows == 0:
        return []
    columns = {}
    for name in NORMALIZED_SCHEMA.names:
        column = signals.column(name)
        if name in _TIMES:
            column = pc.strftime(column, format=_INSTANT, locale="C")
        columns[name] = column.to_pylist()
    contexts = columns.pop("context")
    names = list(columns)
    payloads = []
    for values, context in zip(zip(*columns.values(), strict=True), contexts, strict=True):
        record = {name: v for name, v in zip(names, values, strict=True) if v is not None}
        text = json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        if context is not None:
            # Spliced as it is: the normalized context is JSON text already, and dumping a parsed
            # copy could change its numbers' spelling.
            text = f'{text[:-1]},"context":{context}}}'
        payloads.append(text)
    return payloads


def decode(con: duckdb.DuckDBPyConnection, payloads: list[str]) -> pa.Table:
    """Encoded signals back to NORMALIZED_SCHEMA rows, in order (what `encode` wrote)."""
    if not payloads:
        return NORMALIZED_SCHEMA.empty_table()
    texts = pa.table({"payload": pa.array(payloads, pa.string())})
    columns = ", ".join(
        f"CAST(p.{name} AS TIMESTAMPTZ) AS {name}"
        if name in _TIMES
        else f"CAST(p.{name} AS VARCHAR) AS {name}"
        if name == "context"
        else f"p.{name}"
        for name in NORMALIZED_SCHEMA.names
    )
    con.register("_engram_payloads", texts)
    try:
        table = con.sql(
            f"SELECT {columns} FROM (SELECT from_json(payload, '{_JSON_STRUCT}') AS p "
            "FROM _engram_payloads)"
        ).to_arrow_table()
    finally:
        con.unregister("_engram_payloads")
    return table.cast(NORMALIZED_SCHEMA)
