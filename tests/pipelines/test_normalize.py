"""Normalization: each contract rule, as the field and reason a rejected record carries."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from core.contract import (
    CONTEXT_MAX_DEPTH,
    DEAD_LETTER_SCHEMA,
    NORMALIZED_SCHEMA,
    SIGNAL_TYPES,
    TEXT_MAX_CHARS,
)
from pipelines.generate import MALFORMED_KINDS
from pipelines.generate.malformed import malformed_record
from pipelines.normalize import (
    Normalized,
    RecordNormalizer,
    normalize,
    normalize_records,
    normalize_text,
)

NOW = datetime(2026, 11, 1, tzinfo=UTC)
DEEP = f"context is nested deeper than {CONTEXT_MAX_DEPTH} levels"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "signals.md"


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    """One connection for the module: normalize needs only a connection, not its state."""
    connection = duckdb.connect(config={"threads": 2})
    yield connection
    connection.close()


def view(**fields: Any) -> dict[str, Any]:
    """A valid view signal with some fields replaced (None removes a field)."""
    record = {
        "event_id": "e1",
        "user_id": "u1",
        "ts": "2026-05-01T12:00:00Z",
        "type": "view",
        "item_id": "i1",
    }
    record.update(fields)
    return {key: value for key, value in record.items() if value is not None}


def nested_context(levels: int) -> str:
    """A valid view's JSON text with a context nested `levels` deep: {"a": {"a": ... 1}}."""
    return json.dumps(view())[:-1] + ', "context": ' + '{"a": ' * levels + "1" + "}" * (levels + 1)


def run(con: duckdb.DuckDBPyConnection, *records: Any) -> Normalized:
    return normalize_records(list(records), source="test", ingested_at=NOW, con=con)


def accepted_one(con: duckdb.DuckDBPyConnection, record: Any) -> dict[str, Any]:
    result = run(con, record)
    assert result.rejected.num_rows == 0, result.rejected.to_pylist()
    row: dict[str, Any] = result.accepted.to_pylist()[0]
    return row


def rejected_one(con: duckdb.DuckDBPyConnection, record: Any) -> tuple[str, str]:
    result = run(con, record)
    assert result.accepted.num_rows == 0, result.accepted.to_pylist()
    row = result.rejected.to_pylist()[0]
    return row["field"], row["reason"]


# --- Accepted records ---------------------------------------------------------------------------


def test_a_valid_signal_is_accepted_with_the_exact_schema(con: duckdb.DuckDBPyConnection) -> None:
    result = run(con, view(context={"session_id": "s1", "device": "web", "extra": 1}))
    assert result.accepted.schema == NORMALIZED_SCHEMA
    assert result.rejected.schema == DEAD_LETTER_SCHEMA
    row = result.accepted.to_pylist()[0]
    assert row["ts"] == datetime(2026, 5, 1, 12, tzinfo=UTC)
    assert (row["session_id"], row["device"], row["speaker"]) == ("s1", "web", None)
    assert json.loads(row["context"]) == {"session_id": "s1", "device": "web", "extra": 1}
    assert (row["source"], row["ingested_at"]) == ("test", NOW)


def test_type_is_case_insensitive_and_stored_lower_case(con: duckdb.DuckDBPyConnection) -> None:
    assert accepted_one(con, view(type="VIEW"))["type"] == "view"


def test_integer_ids_become_decimal_strings(con: duckdb.DuckDBPyConnection) -> None:
    row = accepted_one(con, view(event_id=42, user_id=7, item_id=-3))
    assert (row["event_id"], row["user_id"], row["item_id"]) == ("42", "7", "-3")


def test_numeric_strings_are_accepted_as_values(con: duckdb.DuckDBPyConnection) -> None:
    assert accepted_one(con, view(type="rate", value="4.5"))["value"] == 4.5
    assert accepted_one(con, view(type="purchase", value=19.99))["value"] == 19.99


def test_unknown_top_level_fields_are_ignored(con: duckdb.DuckDBPyConnection) -> None:
    row = accepted_one(con, view(price=3, nested={"a": [1]}))
    assert row["event_id"] == "e1"


def test_role_is_accepted_as_the_speaker_key(con: duckdb.DuckDBPyConnection) -> None:
    record = view(type="message", item_id=None, text="hi", context={"role": "Assistant"})
    assert accepted_one(con, record)["speaker"] == "assistant"


def test_json_text_and_bytes_are_records_too(con: duckdb.DuckDBPyConnection) -> None:
    text = json.dumps(view(event_id="t"))
    result = run(con, text, text.encode(), view(event_id="m"))
    assert result.accepted.column("event_id").to_pylist() == ["t", "t", "m"]


def test_python_datetimes_with_an_offset_are_accepted(con: duckdb.DuckDBPyConnection) -> None:
    moment = datetime(2026, 5, 1, 14, tzinfo=timezone(timedelta(hours=2)))
    assert accepted_one(con, view(ts=moment))["ts"] == datetime(2026, 5, 1, 12, tzinfo=UTC)


TIMESTAMPS: list[tuple[object, datetime]] = [
    ("2026-05-01T12:00:00Z", datetime(2026, 5, 1, 12, tzinfo=UTC)),
    ("2026-05-01t12:00:00z", datetime(2026, 5, 1, 12, tzinfo=UTC)),
    ("2026-05-01 12:00:00Z", datetime(2026, 5, 1, 12, tzinfo=UTC)),
    ("2026-05-01T14:00:00+02:00", datetime(2026, 5, 1, 12, tzinfo=UTC)),
    ("2026-05-01T06:30:00-05:30", datetime(2026, 5, 1, 12, tzinfo=UTC)),
    ("2026-05-01T12:00:00.123456Z", datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)),
    ("2026-05-01T12:00:00.5+00:00", datetime(2026, 5, 1, 12, 0, 0, 500000, tzinfo=UTC)),
    (1777636800, datetime(2026, 5, 1, 12, tzinfo=UTC)),
    (1777636800.25, datetime(2026, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)),
    ("1777636800", datetime(2026, 5, 1, 12, tzinfo=UTC)),
    (0, datetime(1970, 1, 1, tzinfo=UTC)),
]


def test_timestamps_in_every_accepted_form_become_utc(con: duckdb.DuckDBPyConnection) -> None:
    result = run(con, *(view(ts=ts) for ts, _ in TIMESTAMPS))
    assert result.rejected.to_pylist() == []
    for (ts, expected), got in zip(
        TIMESTAMPS, result.accepted.column("ts").to_pylist(), strict=True
    ):
        assert got == expected, ts


TEXTS: list[tuple[str, str]] = [
    ("  ﬁnd\u00a0me\tcafé  ", "find me café"),
    ("a\u3000b\u2003c\nd\r\ne", "a b c d e"),
    ("x\x00y\x07z\u200bw\ufeff", "xyzw"),
    ("Ｆｕｌｌ ｗｉｄｔｈ ①", "Full width 1"),
    ("plain text", "plain text"),
]


def test_text_is_nfkc_whitespace_collapsed_and_stripped(con: duckdb.DuckDBPyConnection) -> None:
    records = [view(type="search", item_id=None, text=raw) for raw, _ in TEXTS]
    expected = [text for _, text in TEXTS]
    assert run(con, *records).accepted.column("text").to_pylist() == expected
    assert normalize_text(pa.array([raw for raw, _ in TEXTS])).to_pylist() == expected


def test_text_is_redacted_after_normalization(con: duckdb.DuckDBPyConnection) -> None:
    record = view(type="message", item_id=None, text="mail ｂｏｂ@example.com or 555-123-4567")
    assert accepted_one(con, record)["text"] == "mail [EMAIL] or [PHONE]"


def test_empty_text_on_a_type_without_text_is_no_text(con: duckdb.DuckDBPyConnection) -> None:
    assert accepted_one(con, view(text=" \t "))["text"] is None


# --- Rejected records: one test per rule ---------------------------------------------------------

REJECTIONS: list[tuple[str, Any, str, str]] = [
    ("invalid JSON", '{"event_id": "e1"', "$", "record is not valid JSON"),
    ("trailing comma", '{"event_id": "e1",}', "$", "record is not valid JSON"),
    (
        "NaN in context",
        json.dumps(view(context={"a": float("nan")})),
        "$",
        "record is not valid JSON",
    ),
    (
        "Infinity as value",
        json.dumps(view(value=float("-inf"))),
        "value",
        "value must be a finite number, got -Infinity",
    ),
    ("array", "[1, 2]", "$", "record must be a JSON object, got array"),
    ("string", '"view"', "$", "record must be a JSON object, got string"),
    ("bad UTF-8", b'{"a": "\xff"}', "$", "record is not valid UTF-8 (byte 0xff at byte 8)"),
    ("no event_id", view(event_id=None), "event_id", "event_id is required"),
    (
        "boolean event_id",
        view(event_id=True),
        "event_id",
        "event_id must be a string or integer, got boolean",
    ),
    (
        "float event_id",
        view(event_id=1.5),
        "event_id",
        "event_id must be a string or integer, got number",
    ),
    (
        "event_id with a space",
        view(event_id="e 1"),
        "event_id",
        "event_id must be 1-128 letters, digits or _ . : - (pattern ^[A-Za-z0-9_.:-]{1,128}$), "
        "got 'e 1'",
    ),
    ("no user_id", view(user_id=None), "user_id", "user_id is required"),
    (
        "injection in user_id",
        view(user_id='x" || user_id != "x'),
        "user_id",
        "user_id must be 1-128 letters, digits or _ . : - (pattern ^[A-Za-z0-9_.:-]{1,128}$), "
        "got 'x\" || user_id != \"x'",
    ),
    (
        "user_id echoed cut to 64 characters",
        view(user_id="a" * 129),
        "user_id",
        "user_id must be 1-128 letters, digits or _ . : - (pattern ^[A-Za-z0-9_.:-]{1,128}$), "
        f"got '{'a' * 61}...'",
    ),
    ("no ts", view(ts=None), "ts", "ts is required"),
    (
        "ts without offset",
        view(ts="2026-05-01T12:00:00"),
        "ts",
        "timestamp has no UTC offset (RFC 3339 requires Z or +hh:mm), got '2026-05-01T12:00:00'",
    ),
    (
        "date only",
        view(ts="2026-05-01"),
        "ts",
        "timestamp has no UTC offset (RFC 3339 requires Z or +hh:mm), got '2026-05-01'",
    ),
    (
        "epoch milliseconds",
        view(ts=1777636800000),
        "ts",
        "ts looks like epoch milliseconds; send epoch seconds (ts / 1000 = 1777636800.0)",
    ),
    (
        "negative epoch",
        view(ts=-5),
        "ts",
        "ts must be epoch seconds between 0 and 4102444800 (1970 to 2100), got -5",
    ),
    (
        "not a date",
        view(ts="31/12/2026 10:00"),
        "ts",
        "ts must be an RFC 3339 timestamp with an offset (such as 2024-05-01T12:00:00Z) or "
        "epoch seconds, got '31/12/2026 10:00'",
    ),
    (
        "boolean ts",
        view(ts=True),
        "ts",
        "ts must be an RFC 3339 timestamp with an offset (such as 2024-05-01T12:00:00Z) or "
        "epoch seconds, got 'true'",
    ),
    (
        "impossible date",
        view(ts="2026-02-30T10:00:00+01:00"),
        "ts",
        "ts is not a valid date and time, got '2026-02-30T10:00:00+01:00'",
    ),
    (
        "before 1970",
        view(ts="1969-12-31T23:59:59Z"),
        "ts",
        "ts must be between 1970-01-01T00:00:00Z and 2100-01-01T00:00:00Z, "
        "got '1969-12-31T23:59:59Z'",
    ),
    ("no type", view(type=None), "type", "type is required"),
    (
        "unknown type",
        view(type="like"),
        "type",
        f"type must be one of {', '.join(SIGNAL_TYPES)}; got 'like'",
    ),
    ("no item_id", view(item_id=None), "item_id", "item_id is required for type view"),
    (
        "bad item_id",
        view(item_id="i/1"),
        "item_id",
        "item_id must be 1-128 letters, digits or _ . : - (pattern ^[A-Za-z0-9_.:-]{1,128}$), "
        "got 'i/1'",
    ),
    ("word as value", view(value="five"), "value", "value must be a number, got 'five'"),
    (
        "rate without value",
        view(type="rate"),
        "value",
        "rate value is required (a number between 0 and 5)",
    ),
    (
        "rate out of range",
        view(type="rate", value=7.5),
        "value",
        "rate value must be a number between 0 and 5, got 7.5",
    ),
    (
        "message without text",
        view(type="message", item_id=None),
        "text",
        "text is required for type message",
    ),
    (
        "number as text",
        view(type="search", item_id=None, text=5),
        "text",
        "text must be a string, got integer",
    ),
    (
        "blank text",
        view(type="search", item_id=None, text=" \u200b\t"),
        "text",
        "text is required for type search (empty after normalization)",
    ),
    (
        "text too long",
        view(type="message", item_id=None, text="ab " * 4000),
        "text",
        f"text is longer than {TEXT_MAX_CHARS} characters after normalization (11999)",
    ),
    (
        "context string",
        view(context="mobile"),
        "context",
        "context must be a JSON object, got string",
    ),
    (
        "unknown speaker",
        view(context={"speaker": "bot"}),
        "context.speaker",
        "speaker must be one of assistant, other, system, user; got 'bot'",
    ),
    (
        "user_id named twice",
        json.dumps(view())[:-1] + ', "user_id": "u2"}',
        "$",
        "duplicate key 'user_id': a JSON object names each key once",
    ),
    (
        "speaker named twice",
        json.dumps(view(context={"speaker": "user"}))[:-2] + ', "speaker": "system"}}',
        "$",
        "duplicate key 'context.speaker': a JSON object names each key once",
    ),
    ("context nested too deep", nested_context(CONTEXT_MAX_DEPTH + 1), "context", DEEP),
    ("nested past any parser", nested_context(10_000), "$", "record is nested too deeply"),
]


@pytest.fixture(scope="module")
def rejections(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """Field and reason of each REJECTIONS record, all normalized in one call."""
    result = run(con, *(case[1] for case in REJECTIONS))
    assert result.accepted.num_rows == 0, result.accepted.to_pylist()
    assert result.rejected.column("position").to_pylist() == list(range(len(REJECTIONS)))
    return list(
        zip(
            result.rejected["field"].to_pylist(), result.rejected["reason"].to_pylist(), strict=True
        )
    )


@pytest.mark.parametrize("case", range(len(REJECTIONS)), ids=[case[0] for case in REJECTIONS])
def test_each_rule_rejects_with_its_field_and_reason(
    rejections: list[tuple[str, str]], case: int
) -> None:
    _, record, field, reason = REJECTIONS[case]
    assert rejections[case] == (field, reason), record


def test_the_first_failing_rule_wins(con: duckdb.DuckDBPyConnection) -> None:
    result = run(con, view(user_id=None, ts="yesterday", type="like"), view(text=5, context="x"))
    assert result.rejected.column("field").to_pylist() == ["user_id", "text"]


def test_a_context_as_deep_as_allowed_is_kept(con: duckdb.DuckDBPyConnection) -> None:
    context = accepted_one(con, nested_context(CONTEXT_MAX_DEPTH))["context"]
    assert context.count("{") == CONTEXT_MAX_DEPTH


def test_a_record_naming_a_key_twice_is_credited_to_no_one(
    con: duckdb.DuckDBPyConnection,
) -> None:
    row = run(con, json.dumps(view())[:-1] + ', "user_id": "u2"}').rejected.to_pylist()[0]
    assert (row["event_id"], row["user_id"]) == (None, None)
    assert '"u1"' in row["raw"] and '"u2"' in row["raw"]  # found by either id (forget)


def test_names_seen_twice_but_not_as_keys_are_no_fault(con: duckdb.DuckDBPyConnection) -> None:
    # The cheap test flags these ("text" twice, "user_id" in a value); the strict check clears them.
    record = view(type="search", item_id=None, text="text", context={"note": "user_id"})
    assert accepted_one(con, record)["text"] == "text"


def test_rejected_records_keep_ids_and_a_redacted_raw(con: duckdb.DuckDBPyConnection) -> None:
    record = view(ts="2026-05-01T12:00:00", text="mail bob@example.com")
    row = run(con, record).rejected.to_pylist()[0]
    assert (row["event_id"], row["user_id"], row["position"]) == ("e1", "u1", 0)
    assert "bob@example.com" not in row["raw"] and "[EMAIL]" in row["raw"]
    assert row["rejected_at"] == NOW


def test_invalid_ids_are_not_kept_in_the_dead_letter(con: duckdb.DuckDBPyConnection) -> None:
    row = run(con, view(user_id="bob@example.com")).rejected.to_pylist()[0]
    assert row["user_id"] is None
    assert "bob@example.com" not in row["reason"] + row["raw"]


def test_read_is_accepted_plus_rejected_in_input_order(con: duckdb.DuckDBPyConnection) -> None:
    records = [view(event_id=f"e{i}") if i % 3 else "not json" for i in range(30)]
    result = run(con, *records)
    assert result.read == 30
    assert (result.accepted.num_rows, result.rejected.num_rows) == (20, 10)
    assert result.rejected.column("position").to_pylist() == list(range(0, 30, 3))
    assert result.accepted.column("event_id").to_pylist() == [f"e{i}" for i in range(30) if i % 3]


def test_large_inputs_keep_their_order(con: duckdb.DuckDBPyConnection) -> None:
    # Enough batches for DuckDB to scan in parallel, where an IN list planned as a join (say)
    # would shuffle rows.
    count = 200_000
    template = '{"event_id":"e%d","user_id":"u1","ts":%d,"type":"view","item_id":"i1"}'
    lines = [template % (i, 1777636800 + i) for i in range(count)]
    lines[123_456] = "{broken"
    table = pa.table({"position": pa.array(range(count), pa.int64()), "raw": lines})
    batches = pa.Table.from_batches(table.to_batches(max_chunksize=10_000))
    result = normalize(con, con.from_arrow(batches), source="big", ingested_at=NOW)
    assert result.read == count
    assert result.rejected.column("position").to_pylist() == [123_456]
    ids = result.accepted.column("event_id").to_pylist()
    assert ids == [f"e{i}" for i in range(count) if i != 123_456]


def test_typed_records_follow_the_same_rules(con: duckdb.DuckDBPyConnection) -> None:
    table = pa.table(
        {
            "position": pa.array([0, 1, 2], pa.int64()),
            "event_id": ["a", "b", "c"],
            "user_id": ["u1", "u1", "u 2"],
            "ts": pa.array([NOW, NOW, NOW], pa.timestamp("us", tz="UTC")),
            "type": ["rate", "rate", "view"],
            "item_id": ["i1", "i1", "i1"],
            "value": [4.0, 9.0, None],
            "context": ['{"device": "tv"}', None, None],
        }
    )
    result = normalize(con, con.from_arrow(table), source="t.parquet", ingested_at=NOW)
    assert result.accepted.to_pylist()[0]["device"] == "tv"
    assert result.accepted.column("ts").to_pylist() == [NOW]
    rejected = result.rejected.to_pylist()
    assert [(row["position"], row["field"]) for row in rejected] == [(1, "value"), (2, "user_id")]
    assert json.loads(rejected[0]["raw"])["value"] == 9.0


def test_nothing_in_gives_empty_tables(con: duckdb.DuckDBPyConnection) -> None:
    result = run(con)
    assert result.read == 0 and result.accepted.schema == NORMALIZED_SCHEMA


def test_a_naive_ingestion_time_is_refused() -> None:
    with pytest.raises(Exception, match="ingested_at"):
        normalize_records([view()], source="x", ingested_at=datetime(2026, 1, 1))


def test_the_docs_name_every_rejection_field_and_limit() -> None:
    docs = DOCS.read_text()
    for field in {case[2] for case in REJECTIONS}:
        assert f"`{field}`" in docs, field
    for name in SIGNAL_TYPES:
        assert f"`{name}`" in docs, name
    for number in ("10000", "4102444800", "^[A-Za-z0-9_.:-]{1,128}$"):
        assert number in docs


def test_the_session_time_zone_does_not_matter() -> None:
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'America/New_York'")
    typed = pa.table(
        {
            "position": pa.array([0], pa.int64()),
            "event_id": ["a"],
            "user_id": ["u"],
            "ts": pa.array([NOW], pa.timestamp("us", tz="UTC")),
            "type": ["view"],
            "item_id": ["i"],
        }
    )
    from_json = normalize_records([view()], source="x", ingested_at=NOW, con=connection)
    from_typed = normalize(connection, connection.from_arrow(typed), source="x", ingested_at=NOW)
    assert from_json.accepted.column("ts").to_pylist() == [datetime(2026, 5, 1, 12, tzinfo=UTC)]
    assert from_typed.accepted.column("ts").to_pylist() == [NOW]
    assert from_typed.accepted.schema == NORMALIZED_SCHEMA


# --- A reused normalizer: the same outputs as a fresh plan -------------------------------------


def _mixed_batches() -> list[list[Any]]:
    """Batches of valid records, every REJECTIONS record and each generated malformed kind, in
    several sizes and orders (and an empty one and one without any rejection)."""
    rng = random.Random(7)
    malformed = [
        malformed_record(rng, kind, f"m{k}", f"u{k}", f"i{k}", 1_780_000_000_000 + k).line
        for k, kind in enumerate(MALFORMED_KINDS)
    ]
    rejected = [case[1] for case in REJECTIONS]
    valid = [view(event_id=f"v{k}", text=f"note  {k}\u00a0") for k in range(12)]
    mixed = [*valid, *rejected, *malformed]
    rng.shuffle(mixed)
    return [mixed, valid[:3], [], rejected[::-1], malformed, mixed[:7], [b"\xff{}", *valid[:2]]]


def _same(left: Normalized, right: Normalized) -> bool:
    return left.accepted.equals(right.accepted) and left.rejected.equals(right.rejected)


def test_a_reused_normalizer_gives_what_a_fresh_plan_gives(con: duckdb.DuckDBPyConnection) -> None:
    batches = _mixed_batches()
    with RecordNormalizer(con) as normalizer:
        for _ in range(2):
            for batch in batches:
                fresh = normalize_records(batch, source="test", ingested_at=NOW, con=con)
                reused = normalizer.normalize(batch, source="test", ingested_at=NOW)
                assert _same(reused, fresh), batch
    assert fresh.read == len(batches[-1]) and fresh.rejected.num_rows == 1


def test_a_normalizer_is_safe_to_share_between_threads(con: duckdb.DuckDBPyConnection) -> None:
    batches = _mixed_batches()
    expected = [normalize_records(b, source="test", ingested_at=NOW, con=con) for b in batches]
    with RecordNormalizer(con) as normalizer:

        def run_all(offset: int) -> list[bool]:
            order = [(offset + k) % len(batches) for k in range(3 * len(batches))]
            return [
                _same(
                    normalize_records(
                        batches[k], source="test", ingested_at=NOW, normalizer=normalizer
                    ),
                    expected[k],
                )
                for k in order
            ]

        with ThreadPoolExecutor(max_workers=4) as pool:
            outcomes = list(pool.map(run_all, range(4)))
    assert all(all(outcome) for outcome in outcomes)
