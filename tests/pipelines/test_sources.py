"""Sources: JSON Lines, Parquet and MovieLens as raw records, and their trip through normalize."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from core.errors import SourceError
from core.settings import Settings
from pipelines import dead_letter
from pipelines.normalize import normalize
from pipelines.sources import jsonl
from pipelines.sources.jsonl import read_jsonl, read_jsonl_table
from pipelines.sources.movielens import read_movielens
from pipelines.sources.parquet import read_parquet

NOW = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(config={"threads": 2})
    yield connection
    connection.close()


def line(**fields: object) -> str:
    record: dict[str, object] = {
        "event_id": "e1",
        "user_id": "u1",
        "ts": "2026-05-01T12:00:00Z",
        "type": "view",
        "item_id": "i1",
    }
    record.update(fields)
    return json.dumps({key: value for key, value in record.items() if value is not None})


# --- JSON Lines ---------------------------------------------------------------------------------


def test_blank_lines_are_skipped_but_keep_their_place(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"a": 1}\n\n   \r\n\t\n{"b": 2}\r\n{"c": 3}')
    table = read_jsonl_table(path)
    assert table.column("position").to_pylist() == [0, 4, 5]
    assert table.column("raw").to_pylist() == ['{"a": 1}', '{"b": 2}', '{"c": 3}']
    assert table.column("source").to_pylist() == [str(path)] * 3


def test_a_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n')
    assert read_jsonl_table(path).column("raw").to_pylist() == ['{"a": 1}']


def test_a_line_with_bad_utf8_is_still_a_record(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": "\xff\xfe"}\n')
    rows = read_jsonl_table(path).to_pylist()
    assert rows[1]["error"] == "line is not valid UTF-8 (byte 0xff at byte 8)"
    assert rows[1]["raw"] == '{"b": "\ufffd\ufffd"}'
    assert rows[0]["error"] is None


def test_lines_longer_than_a_block_are_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jsonl, "BLOCK_BYTES", 16)
    path = tmp_path / "long.jsonl"
    lines = [line(event_id=f"e{i}", text="x" * (i * 7)) for i in range(20)]
    path.write_text("\n".join(lines) + "\n")
    table = read_jsonl_table(path)
    assert table.column("raw").to_pylist() == lines
    assert table.column("position").to_pylist() == list(range(20))


def test_a_directory_and_a_glob_read_every_jsonl_file_in_name_order(tmp_path: Path) -> None:
    for name, event in (("b.jsonl", "e2"), ("a.jsonl", "e1"), ("c.txt", "e3")):
        (tmp_path / name).write_text(line(event_id=event) + "\n")
    for path in (tmp_path, tmp_path / "*.jsonl"):
        sources = read_jsonl_table(path).column("source").to_pylist()
        assert sources == [str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")]


@pytest.mark.parametrize("name", ["missing.jsonl", "empty-dir", "nothing-*.jsonl"])
def test_nothing_to_read_is_a_source_error(tmp_path: Path, name: str) -> None:
    (tmp_path / "empty-dir").mkdir()
    with pytest.raises(SourceError):
        read_jsonl(duckdb.connect(), tmp_path / name)


# Ten malformed kinds, one per line, between valid lines.
MALFORMED: list[tuple[str, str]] = [
    ('{"event_id": "m1", "user_id": "u1"', "$"),
    ("[1, 2, 3]", "$"),
    (line(event_id=None), "event_id"),
    (line(user_id="john doe"), "user_id"),
    (line(ts="2026-05-01T12:00:00"), "ts"),
    (line(ts=1777636800000), "ts"),
    (line(type="like"), "type"),
    (line(item_id=None), "item_id"),
    (line(type="rate", value="five"), "value"),
    (line(context="mobile"), "context"),
]


def test_ten_malformed_kinds_give_ten_dead_letters_with_the_right_fields(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, settings: Settings
) -> None:
    path = tmp_path / "mixed.jsonl"
    lines: list[str] = []
    for i, (bad, _) in enumerate(MALFORMED):
        lines += [line(event_id=f"ok{i}"), bad]
    path.write_text("\n".join(lines) + "\n\n")
    result = normalize(con, read_jsonl(con, path), source=str(path), ingested_at=NOW)
    assert result.read == 20 == result.accepted.num_rows + result.rejected.num_rows
    assert result.accepted.column("event_id").to_pylist() == [f"ok{i}" for i in range(10)]
    stored = dead_letter.write(settings, result.rejected)
    assert stored is not None
    kept = dead_letter.read(settings)
    assert kept.num_rows == 10
    assert kept.column("field").to_pylist() == [field for _, field in MALFORMED]
    assert kept.column("position").to_pylist() == list(range(1, 20, 2))
    assert set(kept.column("source").to_pylist()) == {str(path)}


# --- Parquet ------------------------------------------------------------------------------------


def signals_table(**overrides: pa.Array) -> pa.Table:
    columns: dict[str, pa.Array] = {
        "event_id": pa.array(["p1", "p2", "p3"]),
        "user_id": pa.array(["u1", "u2", "u3"]),
        "ts": pa.array([NOW] * 3, pa.timestamp("us", tz="UTC")),
        "type": pa.array(["view", "rate", "message"]),
        "item_id": pa.array(["i1", "i2", None]),
        "value": pa.array([None, 4.5, None], pa.float64()),
        "text": pa.array([None, None, "Hello  there"]),
        "context": pa.array(['{"device": "tv"}', None, '{"speaker": "user"}']),
        "ignored": pa.array([1, 2, 3]),
    }
    columns.update(overrides)
    return pa.table(columns)


def test_parquet_rows_become_normalized_signals(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    path = tmp_path / "s.parquet"
    pq.write_table(signals_table(), path)
    result = normalize(con, read_parquet(con, path), source="x", ingested_at=NOW)
    rows = result.accepted.to_pylist()
    assert [row["event_id"] for row in rows] == ["p1", "p2", "p3"]
    assert (rows[0]["device"], rows[1]["value"], rows[2]["text"]) == ("tv", 4.5, "Hello there")
    assert rows[2]["speaker"] == "user"
    assert {row["source"] for row in rows} == {str(path)}


def test_a_struct_context_is_a_json_object(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    path = tmp_path / "s.parquet"
    context = pa.array([{"device": "tv"}, None, {"device": "web"}])
    pq.write_table(signals_table(context=context), path)
    rows = normalize(con, read_parquet(con, path), source="x", ingested_at=NOW).accepted
    assert rows.column("device").to_pylist() == ["tv", None, "web"]


def test_wrong_types_are_rejected_per_row(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    path = tmp_path / "s.parquet"
    pq.write_table(signals_table(user_id=pa.array([1.5, 2.0, 3.0])), path)
    result = normalize(con, read_parquet(con, path), source="x", ingested_at=NOW)
    assert result.rejected.column("field").to_pylist() == ["user_id"] * 3
    assert result.rejected.column("reason")[0].as_py() == (
        "user_id must be a string or integer, got number"
    )
    assert result.rejected.column("position").to_pylist() == [0, 1, 2]


def test_a_missing_column_is_a_source_error(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    path = tmp_path / "s.parquet"
    pq.write_table(signals_table().drop_columns(["ts"]), path)
    with pytest.raises(SourceError, match="ts"):
        read_parquet(con, path)


def test_naive_timestamps_are_a_source_error(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    path = tmp_path / "s.parquet"
    pq.write_table(signals_table(ts=pa.array([datetime(2026, 1, 1)] * 3)), path)
    with pytest.raises(SourceError, match="column ts"):
        read_parquet(con, path)


# --- MovieLens ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def movielens(movielens_dir: Path) -> tuple[pa.Table, pa.Table, pa.Table]:
    con = duckdb.connect()
    raw, catalog = read_movielens(con, movielens_dir)
    result = normalize(con, raw, source="movielens", ingested_at=NOW)
    return result.accepted, result.rejected, catalog


def test_movielens_gives_every_rating_and_tag(movielens: tuple[pa.Table, ...]) -> None:
    accepted, rejected, _ = movielens
    assert rejected.num_rows == 0
    counts = dict(zip(*pc.value_counts(accepted["type"]).flatten(), strict=True))
    assert {k.as_py(): v.as_py() for k, v in counts.items()} == {"rate": 100_836, "tag": 3_683}
    assert len(set(accepted.column("event_id").to_pylist())) == 104_519


def test_movielens_ids_and_values(movielens: tuple[pa.Table, ...]) -> None:
    accepted = movielens[0]
    first = accepted.slice(0, 1).to_pylist()[0]
    assert (first["event_id"], first["user_id"], first["item_id"]) == ("ml-r-1-1", "1", "1")
    assert (first["value"], first["ts"]) == (4.0, datetime.fromtimestamp(964982703, UTC))
    tags = accepted.filter(pc.equal(accepted["type"], "tag")).slice(0, 1).to_pylist()[0]
    assert tags["event_id"].startswith("ml-t-2-60756-") and tags["text"] == "funny"


def test_movielens_catalog(movielens: tuple[pa.Table, ...]) -> None:
    catalog = movielens[2]
    rows = {row["item_id"]: row for row in catalog.to_pylist()}
    assert catalog.num_rows == 9_742
    toy_story = rows["1"]
    assert toy_story["genres"] == ["Adventure", "Animation", "Children", "Comedy", "Fantasy"]
    assert toy_story["category"] == "Adventure"
    assert toy_story["text"] == (
        "Toy Story (1995). Adventure, Animation, Children, Comedy, Fantasy"
    )
    no_genres = rows["114335"]
    assert (no_genres["genres"], no_genres["category"]) == ([], None)


def test_a_directory_without_ratings_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"ratings\.csv"):
        read_movielens(duckdb.connect(), tmp_path)
