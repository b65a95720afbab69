"""The DuckDB as-of join gives what Feast's get_historical_features gives: same rows and values."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from core.stores.online.layout import FeatureRef, ValueKind, ViewRef
from ranking.point_in_time import SnapshotFile, join
from ranking.training_data import training_frame
from tests.feature_home import AS_OF, FeatureHome

DAY = timedelta(days=1)
US = pd.Timedelta(1, "us")


@pytest.fixture(scope="module")
def labels(home: FeatureHome) -> pd.DataFrame:
    """Labels anywhere in time, on snapshot edges, on ttl edges, before any row, for unknown
    entities, and repeated."""
    rng = np.random.default_rng(3)
    users, items = home.snapshots("user"), home.snapshots("item")
    user_ids, item_ids = users["user_id"].unique(), items["item_id"].unique()
    start = users["event_timestamp"].min() - 3 * DAY
    span = (AS_OF + 2 * DAY - start).total_seconds()
    n = 300
    anywhere = pd.DataFrame(
        {
            "user_id": rng.choice([*user_ids, "nobody"], n),
            "item_id": rng.choice([*item_ids, "nothing"], n),
            "event_timestamp": start + pd.to_timedelta(rng.random(n) * span, unit="s"),
        }
    )
    rows = users[users["event_timestamp"] < AS_OF].sample(40, random_state=1)
    edges = [pd.Timedelta(0), -US, pd.Timedelta(DAY), DAY + US, 7 * DAY, 7 * DAY + US]
    on_edges = pd.concat(
        [
            pd.DataFrame(
                {
                    "user_id": rows["user_id"].to_numpy(),
                    "item_id": rng.choice(item_ids, len(rows)),
                    "event_timestamp": rows["event_timestamp"].to_numpy() + shift,
                }
            )
            for shift in edges
        ]
    )
    item_rows = items[items["event_timestamp"] < AS_OF].sample(20, random_state=2)
    item_edges = pd.DataFrame(
        {
            "user_id": rng.choice(user_ids, 2 * len(item_rows)),
            "item_id": np.r_[item_rows["item_id"], item_rows["item_id"]],
            "event_timestamp": np.r_[
                item_rows["event_timestamp"] + pd.Timedelta(DAY),
                item_rows["event_timestamp"] + DAY + US,
            ],
        }
    )
    first = users.groupby("user_id")["event_timestamp"].min().head(10)
    before_any = pd.DataFrame(
        {
            "user_id": first.index,
            "item_id": rng.choice(item_ids, len(first)),
            "event_timestamp": first.to_numpy() - US,
        }
    )
    out = pd.concat([anywhere, on_edges, item_edges, before_any], ignore_index=True)
    out = pd.concat([out, out.head(15)], ignore_index=True)  # repeated labels
    out["event_timestamp"] = pd.to_datetime(out["event_timestamp"], utc=True).dt.floor("us")
    return out.assign(label=np.arange(len(out)) % 2)


def same_values(got: pd.Series, expected: pd.Series) -> bool:
    """Equal element by element: NaN/None alike, lists by their items."""

    def norm(value: object) -> object:
        if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
            return None
        if isinstance(value, (np.ndarray, list)):
            return [norm(v) for v in value]
        if isinstance(value, pd.Timestamp):
            return value.value
        return float(value) if isinstance(value, (int, float, np.number)) else value

    return [norm(v) for v in got] == [norm(v) for v in expected]


@pytest.mark.parametrize("service", ["analytics", "ranking"])
def test_the_duckdb_join_equals_feasts(
    home: FeatureHome, labels: pd.DataFrame, service: str
) -> None:
    ours = training_frame(home.settings, labels, service, store=home.store)
    feasts = training_frame(home.settings, labels, service, store=home.store, join="feast")
    assert list(ours.columns) == list(feasts.columns)
    assert len(ours) == len(feasts) == len(labels)
    for column in feasts.columns:
        assert same_values(ours[column], feasts[column]), column
    # The labels exercise what the join must get right, not only rows that match.
    window = ours["events_1d"] if "events_1d" in ours else ours["item_events_1d"]
    assert window.isna().any() and window.notna().any()
    assert ours.loc[ours["user_id"] == "nobody", "events_all"].isna().all()


def test_ties_on_time_take_the_newest_created_and_ttl_is_inclusive(tmp_path: Path) -> None:
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    rows = pd.DataFrame(
        {
            "user_id": ["a", "a", "a", "b"],
            "event_timestamp": [t0, t0, t0 + pd.Timedelta(hours=1), t0],
            "created": [t0, t0 + pd.Timedelta(seconds=5), t0, t0],
            "x": [1, 2, 3, 4],
        }
    )
    path = tmp_path / "users.parquet"
    times = {c: rows[c].astype("datetime64[us, UTC]") for c in ("event_timestamp", "created")}
    rows.assign(**times).to_parquet(path)  # as the pipeline writes snapshots
    view = ViewRef("v", "user_id", (FeatureRef("v", "x", ValueKind.INT64),), timedelta(hours=2))
    labels = pd.DataFrame(
        {
            "user_id": ["a", "a", "a", "a", "b", "c"],
            "event_timestamp": [
                t0 - US,
                t0 + pd.Timedelta(minutes=30),
                t0 + pd.Timedelta(hours=3),
                t0 + pd.Timedelta(hours=3) + US,
                t0 + pd.Timedelta(hours=2),
                t0,
            ],
        },
        index=[10, 11, 12, 13, 14, 15],
    )
    files = {"v": SnapshotFile(str(path), "event_timestamp", "created")}
    got = join(duckdb.connect(), labels, [view], files)
    assert list(got.index) == list(labels.index)
    assert same_values(got["x"], pd.Series([None, 2, 3, None, 4, None]))
