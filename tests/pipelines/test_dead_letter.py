"""The dead-letter store: atomic Parquet parts, redacted, countable, forgettable per user."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from core.contract import DEAD_LETTER_SCHEMA
from core.errors import InvalidInputError
from core.settings import Settings
from pipelines import dead_letter

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def rejected(*rows: tuple[str | None, str, str, str]) -> pa.Table:
    """Rejected records from (user_id, field, reason, raw) tuples."""
    return pa.Table.from_pylist(
        [
            {
                "source": "test.jsonl",
                "position": i,
                "raw": raw,
                "event_id": f"e{i}",
                "user_id": user,
                "field": field,
                "reason": reason,
                "rejected_at": NOW,
            }
            for i, (user, field, reason, raw) in enumerate(rows)
        ],
        schema=DEAD_LETTER_SCHEMA,
    )


def test_a_written_part_reads_back(settings: Settings) -> None:
    table = rejected(("u1", "ts", "ts is required", '{"user_id": "u1"}'))
    name = dead_letter.write(settings, table)
    assert name is not None and (settings.dead_letter_dir / name).is_file()
    assert dead_letter.read(settings).to_pylist() == table.to_pylist()


def test_nothing_is_written_for_no_rejections(settings: Settings) -> None:
    assert dead_letter.write(settings, DEAD_LETTER_SCHEMA.empty_table()) is None
    assert dead_letter.read(settings).num_rows == 0


def test_each_batch_is_its_own_part_and_no_temporary_file_is_left(settings: Settings) -> None:
    for _ in range(3):
        dead_letter.write(settings, rejected(("u1", "ts", "ts is required", "{}")))
    files = sorted(path.name for path in settings.dead_letter_dir.iterdir())
    assert len(files) == 3 and all(name.startswith("part-") for name in files)
    assert dead_letter.read(settings).num_rows == 3


def test_a_stream_entry_written_again_stays_one_record(settings: Settings) -> None:
    # A consumer killed between storing a rejection and marking it stores it again on redelivery.
    table = rejected(("u1", "ts", "ts is required", "{}"), ("u2", "ts", "ts is required", "{}"))
    first = dead_letter.write_entries(settings, table, ["1765000000000-0", "1765000000000-1"])
    again = dead_letter.write_entries(settings, table.slice(1), ["1765000000000-1"])
    assert again == first[1:]
    assert dead_letter.read(settings).column("user_id").to_pylist() == ["u1", "u2"]
    with pytest.raises(InvalidInputError, match="entry_id"):
        dead_letter.write_entries(settings, table.slice(0, 1), ["not-an-entry"])


def test_raw_and_reason_are_redacted_on_write(settings: Settings) -> None:
    raw = '{"user_id": "u1", "text": "call 555-123-4567 or mail a@b.io"}'
    dead_letter.write(settings, rejected(("u1", "user_id", "got 'a@b.io'", raw)))
    row = dead_letter.read(settings).to_pylist()[0]
    assert row["raw"] == '{"user_id": "u1", "text": "call [PHONE] or mail [EMAIL]"}'
    assert row["reason"] == "got '[EMAIL]'"


def test_reasons_are_counted_without_their_echoed_values(settings: Settings) -> None:
    dead_letter.write(
        settings,
        rejected(
            ("u1", "type", "type must be one of view, click; got 'like'", "{}"),
            ("u2", "type", "type must be one of view, click; got 'share'", "{}"),
            ("u3", "ts", "timestamp has no UTC offset (RFC 3339 requires Z), got '2026'", "{}"),
        ),
    )
    assert dead_letter.counts_by_reason(settings) == {
        "type: type must be one of view, click": 2,
        "ts: timestamp has no UTC offset": 1,
    }


def test_forget_user_removes_only_that_users_records(settings: Settings) -> None:
    dead_letter.write(
        settings,
        rejected(
            ("u1", "ts", "ts is required", '{"user_id": "u1"}'),
            ("u2", "ts", "ts is required", '{"user_id": "u2"}'),
        ),
    )
    dead_letter.write(
        settings,
        rejected(
            (None, "$", "record is not valid JSON", '{"user_id": "u1", "ts": '),
            (None, "$", "record is not valid JSON", '{"user_id": "u10", "ts": '),
        ),
    )
    dead_letter.write(settings, rejected(("u1", "ts", "ts is required", "{}")))
    assert dead_letter.forget_user(settings, "u1") == 3
    assert dead_letter.read(settings).column("raw").to_pylist() == [
        '{"user_id": "u2"}',
        '{"user_id": "u10", "ts": ',
    ]
    assert len(list(settings.dead_letter_dir.iterdir())) == 2  # the emptied part is gone
    assert dead_letter.forget_user(settings, "u1") == 0


def test_forget_user_refuses_an_invalid_id(settings: Settings) -> None:
    with pytest.raises(InvalidInputError):
        dead_letter.forget_user(settings, "x' OR 1=1")


def test_hosts_sharing_the_store_read_and_forget_each_others_records(
    tmp_path: Path, postgres_database: str
) -> None:
    first, second = (
        Settings(engram_home=tmp_path / name, engram_state_url=postgres_database)
        for name in ("first", "second")
    )
    dead_letter.write(first, rejected(("u1", "ts", "ts is required", '{"user_id": "u1"}')))
    dead_letter.write(second, rejected(("u2", "ts", "ts is required", '{"user_id": "u2"}')))
    assert sorted(dead_letter.read(second).column("user_id").to_pylist()) == ["u1", "u2"]
    assert dead_letter.forget_user(second, "u1") == 1
    assert dead_letter.read(first).column("user_id").to_pylist() == ["u2"]
    assert not (tmp_path / "first").exists()  # no file on either host
