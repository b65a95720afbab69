"""Incremental ingests against one full recompute, row by row, on generated data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.settings import Settings
from pipelines import incremental, snapshot_files
from pipelines.aggregate_items import ITEM_SNAPSHOT_SCHEMA
from pipelines.batch import ITEM_FEATURES_FILE, USER_FEATURES_FILE, features_dir, run_ingest
from pipelines.generate import GenerateConfig, write_dataset

END = datetime(2026, 10, 31, tzinfo=UTC)
AS_OF = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A generated dataset split by time: older, newer (the last 2 days, plus a few late
    signals from 5 days back and repeats of older ones), and the catalog."""
    out = tmp_path_factory.mktemp("data")
    paths = write_dataset(out, GenerateConfig.small().replace(end=END, format="parquet"))
    table = pq.read_table(paths.signals)
    ts = table.column("ts").cast(pa.timestamp("us", tz="UTC")).to_numpy()
    newer = ts > np.datetime64(END.replace(tzinfo=None) - timedelta(days=2))
    # Every third signal of the 3 days before: late when it arrives after `newer`.
    late = (ts > np.datetime64(END.replace(tzinfo=None) - timedelta(days=5))) & ~newer
    late &= np.arange(len(ts)) % 3 == 0
    older = table.filter(pa.array(~newer & ~late))
    recent = table.filter(pa.array(newer))
    late_rows = table.filter(pa.array(late))
    repeats = older.slice(older.num_rows - 50, 50)  # the same events again: dropped by event_id
    files = {
        "older": older,
        "newer": recent,
        "older_and_newer": pa.concat_tables([older, recent]),
        "late": pa.concat_tables([late_rows, repeats]),
        "all": table,
    }
    written = {}
    for name, rows in files.items():
        path = out / f"{name}.parquet"
        pq.write_table(rows, path)
        written[name] = path
    written["catalog"] = paths.catalog
    return written


def _ingest(settings: Settings, path: Path, catalog: Path | None, as_of: datetime, **kw: object):
    return run_ingest(settings, path, catalog=catalog, as_of=as_of, **kw)  # type: ignore[arg-type]


def _rows(settings: Settings) -> dict[str, pa.Table]:
    """Both snapshots, `created` (the run that wrote a row) left out, in key and time order."""
    out = {}
    for name, key in ((USER_FEATURES_FILE, "user_id"), (ITEM_FEATURES_FILE, "item_id")):
        table = pq.read_table(features_dir(settings) / name).drop_columns(["created"])
        out[name] = table.sort_by([(key, "ascending"), ("event_timestamp", "ascending")])
    return out


def _assert_same(got: dict[str, pa.Table], want: dict[str, pa.Table]) -> None:
    for name in want:
        assert got[name].num_rows == want[name].num_rows, name
        for column in want[name].column_names:
            a, b = got[name].column(column), want[name].column(column)
            assert a.equals(b), (name, column, _first_difference(a, b))


def _first_difference(a: pa.ChunkedArray, b: pa.ChunkedArray) -> object:
    for n, (x, y) in enumerate(zip(a.to_pylist(), b.to_pylist(), strict=True)):
        if x != y and not (x != x and y != y):  # NaN equals NaN here
            return n, x, y
    return None


def _home(tmp_path: Path, name: str) -> Settings:
    return Settings(engram_home=tmp_path / name, redis_url=None, milvus_uri=None)


def test_ingests_in_parts_equal_one_full_recompute_row_by_row(
    tmp_path: Path, parts: dict[str, Path]
) -> None:
    """Older signals, then the newest two days as the windows slide, then late signals and
    repeats, then nothing new three days later: after each, every row as a full recompute."""
    step = _home(tmp_path, "step")
    first = _ingest(step, parts["older"], parts["catalog"], END - timedelta(days=2))
    assert first.aggregation.startswith("full")
    second = _ingest(step, parts["newer"], None, AS_OF)
    assert second.aggregation == "incremental"
    two_parts = _home(tmp_path, "two")
    _ingest(two_parts, parts["older_and_newer"], parts["catalog"], AS_OF)
    _assert_same(_rows(step), _rows(two_parts))

    third = _ingest(step, parts["late"], None, AS_OF)
    assert third.aggregation == "incremental"
    assert third.duplicates >= 50  # the repeats, found through the stored ids' index
    full = _home(tmp_path, "full")
    _ingest(full, parts["all"], parts["catalog"], AS_OF)
    _assert_same(_rows(step), _rows(full))

    later = AS_OF + timedelta(days=3)
    again = _ingest(step, parts["late"], None, later)
    assert again.new == 0 and again.aggregation == "incremental"
    _ingest(full, parts["late"], None, later, full=True)
    _assert_same(_rows(step), _rows(full))


def test_a_forget_drops_the_state_and_the_next_ingest_recomputes(
    tmp_path: Path, parts: dict[str, Path]
) -> None:
    from forget.offline import forget_feature_rows
    from pipelines import duck, event_store

    step = _home(tmp_path, "step")
    _ingest(step, parts["older"], parts["catalog"], END - timedelta(days=2))
    user = pq.read_table(parts["older"], columns=["user_id"]).column(0)[0].as_py()
    event_store.forget_user(duck.connect(step), step, user)
    forget_feature_rows(step, user)
    assert not incremental.state_dir(step).exists()
    after = _ingest(step, parts["newer"], None, AS_OF)
    assert after.aggregation.startswith("full")
    users = pq.read_table(features_dir(step) / USER_FEATURES_FILE).column("user_id")
    assert (
        user not in users.to_pylist()
        or user in pq.read_table(parts["newer"]).column("user_id").to_pylist()
    )


def test_a_snapshot_with_no_rows_is_written_and_read_back_empty(tmp_path: Path) -> None:
    """An input of messages only touches no item: the item snapshot is empty, not an error."""
    directory = tmp_path / ITEM_FEATURES_FILE
    empty = ITEM_SNAPSHOT_SCHEMA.empty_table()
    assert snapshot_files.write_all(empty, directory, "item_id", "item_last_event_ts") == 0
    assert pq.read_table(directory).num_rows == 0
