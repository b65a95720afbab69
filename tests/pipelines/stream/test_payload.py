"""The stream carries normalized, redacted records, and normalizing one again changes nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.contract import SIGNAL_TYPES, SPEAKERS
from pipelines.normalize import RecordNormalizer
from pipelines.stream import payload

NOW = datetime(2026, 12, 1, tzinfo=UTC)
PII = ("jane.doe@example.com", "+44 20 7946 0958", "4111 1111 1111 1111", "(555) 123-4567")

ids = st.text("abcXYZ019_.:-", min_size=1, max_size=12)
# Letters, digits, punctuation, spaces of every kind, controls, combining marks, and PII.
words = st.one_of(
    st.text(min_size=1, max_size=12),
    st.sampled_from(
        [
            "\u00a8",
            "e\u0301",
            "\u0301",
            "\x01",
            "\u200b",
            "\ufeff",
            "\u3000",
            "\u2028",
            "ﬁ",
            "Ａ",
            "\u00a0",
            "  ",
            "\t\n",
            "a@b.cc",
            "555-1234",
            "2026",
            "+1",
            *PII,
        ]
    ),
)
texts = st.lists(words, max_size=8).map(" ".join)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.text(max_size=6)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
speakers = st.sampled_from(sorted(SPEAKERS)).flatmap(
    lambda s: st.sampled_from([s, s.upper(), s.title()])
)
contexts = st.fixed_dictionaries(
    {},
    optional={
        "session_id": st.text(max_size=8),
        "speaker": speakers,
        "role": speakers,
        "device": st.text(max_size=8),
        "extra": json_values,
    },
)
instants = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2099, 12, 30), timezones=st.just(UTC)
)


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(SIGNAL_TYPES))
    moment = draw(instants)
    offset = timedelta(minutes=draw(st.integers(-720, 720)))
    ts: Any = draw(
        st.sampled_from(
            [
                moment.isoformat(),
                moment.astimezone().isoformat(),
                round(moment.timestamp(), 3),
                int(moment.timestamp()),
                (moment + offset).isoformat().replace("+00:00", "Z"),
            ]
        )
    )
    record: dict[str, Any] = {
        "event_id": draw(ids),
        "user_id": draw(st.one_of(ids, st.integers(0, 10**9))),
        "ts": ts,
        "type": draw(st.sampled_from([kind, kind.upper()])),
        "item_id": draw(ids),
        "text": draw(texts) + " words",
    }
    if kind == "rate" or draw(st.booleans()):
        record["value"] = draw(st.floats(0, 5))
    if draw(st.booleans()):
        record["context"] = draw(contexts)
    return record


@pytest.fixture(scope="module")
def normalizer() -> Any:
    with RecordNormalizer(threads=1) as shared:
        yield shared


def _stored(table: pa.Table) -> pa.Table:
    return table.drop_columns(["source", "ingested_at"])


@settings(max_examples=150, deadline=None)
@given(batch=st.lists(records(), min_size=1, max_size=20))
def test_normalizing_a_streamed_record_again_changes_nothing(
    normalizer: RecordNormalizer, batch: list[dict[str, Any]]
) -> None:
    first = normalizer.normalize(batch, source="api", ingested_at=NOW)
    assert first.rejected.num_rows == 0, first.rejected.to_pylist()
    sent = payload.encode(first.accepted)
    again = normalizer.normalize(sent, source="stream", ingested_at=NOW + timedelta(days=1))
    assert again.rejected.num_rows == 0, again.rejected.to_pylist()
    assert _stored(again.accepted).equals(_stored(first.accepted))
    assert again.accepted.column("source").unique().to_pylist() == ["stream"]
    # The outbox reads entries back without normalizing: the very rows, source and time kept.
    assert payload.decode(duckdb.connect(), sent).equals(first.accepted)
    for text in sent:
        assert not any(secret.encode() in text for secret in PII), text


def test_a_payload_is_the_normalized_record_as_json(normalizer: RecordNormalizer) -> None:
    raw = {
        "event_id": "e1",
        "user_id": 7,
        "ts": "2026-05-01T14:00:00.5+02:00",
        "type": "Message",
        "text": "  mail  jane.doe@example.com\u00a0or call +44 20 7946 0958 ",
        "context": {"speaker": "User", "session_id": "s1", "n": 2e3},
    }
    [sent] = payload.encode(normalizer.normalize([raw], source="api", ingested_at=NOW).accepted)
    assert json.loads(sent) == {
        "event_id": "e1",
        "user_id": "7",
        "ts": "2026-05-01T12:00:00.500000Z",
        "type": "message",
        "text": "mail [EMAIL] or call [PHONE]",
        "context": {"speaker": "User", "session_id": "s1", "n": 2000.0},
        "session_id": "s1",
        "speaker": "user",
        "source": "api",
        "ingested_at": "2026-12-01T00:00:00.000000Z",
    }


@pytest.mark.parametrize(
    ("text", "accepted"),
    [
        ("e\x01\u0301", 1),  # a control between a letter and its accent: removed before NFKC
        ("e\u200b\u0301 x", 1),
        ("\u00a8 and \u3000 spaces", 1),
        (" ".join(["a@b.cc"] * 1428), 0),  # 9,995 characters, 11,423 once redacted: too long
        (" ".join(["a@b.cc"] * 1250), 1),  # 8,749 characters, 9,999 once redacted
    ],
)
def test_texts_come_out_of_a_second_normalization_unchanged(
    normalizer: RecordNormalizer, text: str, accepted: int
) -> None:
    record = {"event_id": "e1", "user_id": "u1", "ts": 1, "type": "search", "text": text}
    first = normalizer.normalize([record], source="api", ingested_at=NOW)
    assert first.accepted.num_rows == accepted
    again = normalizer.normalize(payload.encode(first.accepted), source="stream", ingested_at=NOW)
    assert again.rejected.num_rows == 0
    assert _stored(again.accepted).equals(_stored(first.accepted))
