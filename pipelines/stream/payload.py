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
from collections.abc import Sequence

import duckdb
import numpy as np
import orjson
import pyarrow as pa

from core.contract import NORMALIZED_SCHEMA

_TIMES = ("ts", "ingested_at")
_JSON_STRUCT = json.dumps(
    {
        field.name: "JSON" if field.name == "context" else "VARCHAR"
        for field in NORMALIZED_SCHEMA
        if field.name not in ("value",)
    }
    | {"value": "DOUBLE"}
)


def encode(signals: pa.Table) -> list[bytes]:
    """Each normalized signal (NORMALIZED_SCHEMA, in order) as its JSON text, UTF-8."""
    if signals.num_rows == 0:
        return []
    columns = {
        name: _instants(signals.column(name))
        if name in _TIMES
        else signals.column(name).to_pylist()
        for name in NORMALIZED_SCHEMA.names
        if name != "context"
    }
    names = list(columns)
    payloads = []
    dumps = orjson.dumps
    rows = zip(*columns.values(), strict=True)
    for values, context in zip(rows, signals.column("context").to_pylist(), strict=True):
        text = dumps({name: v for name, v in zip(names, values, strict=True) if v is not None})
        if context is not None:
            # Spliced as it is: the normalized context is JSON text already, and dumping a parsed
            # copy could change its numbers' spelling.
            text = b'%s,"context":%s}' % (text[:-1], context.encode())
        payloads.append(text)
    return payloads


def _instants(column: pa.ChunkedArray) -> list[str]:
    """UTC microsecond timestamps as RFC 3339 text (vectorized: a formatted datetime per row
    costs ten times more)."""
    micros = column.combine_chunks().cast(pa.int64()).to_numpy(zero_copy_only=False)
    text = np.datetime_as_string(micros.astype("datetime64[us]"), unit="us")
    return [f"{value}Z" for value in text.tolist()]


def decode(con: duckdb.DuckDBPyConnection, payloads: Sequence[str | bytes]) -> pa.Table:
    """Encoded signals back to NORMALIZED_SCHEMA rows, in order (what `encode` wrote)."""
    if not payloads:
        return NORMALIZED_SCHEMA.empty_table()
    texts = pa.table({"payload": pa.array(payloads, pa.binary()).cast(pa.string())})
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
