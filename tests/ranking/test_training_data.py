"""Training rows hold the features as they were at each label's time, and nothing later."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from core.errors import InvalidInputError
from core.settings import get_settings
from engram.cli import main
from pipelines.catalog_store import catalog_path
from ranking.training_data import check_labels, training_frame, with_catalog_fields
from tests.feature_home import AS_OF, FeatureHome

DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def labels(home: FeatureHome) -> pd.DataFrame:
    """Random (user, item, time) labels over the data's span, and labels on snapshot edges."""
    rng = np.random.default_rng(11)
    users = home.snapshots("user")
    items = home.snapshots("item")
    start = users["event_timestamp"].min() - 2 * DAY
    span = (AS_OF + DAY - start).total_seconds()
    n = 400
    random = pd.DataFrame(
        {
            "user_id": rng.choice(users["user_id"].unique(), n),
            "item_id": rng.choice(items["item_id"].unique(), n),
            "event_timestamp": start + pd.to_timedelta(rng.random(n) * span, unit="s"),
        }
    )
    # A label exactly at a snapshot row sees it; one microsecond earlier must not.
    edges = users[users["event_timestamp"] < AS_OF].sample(30, random_state=5)
    at_edge = pd.DataFrame(
        {
            "user_id": edges["user_id"].to_numpy(),
            "item_id": rng.choice(items["item_id"].unique(), len(edges)),
            "event_timestamp": edges["event_timestamp"].to_numpy(),
        }
    )
    before_edge = at_edge.assign(event_timestamp=at_edge["event_timestamp"] - pd.Timedelta(1, "us"))
    out = pd.concat([random, at_edge, before_edge], ignore_index=True)
    out["event_timestamp"] = out["event_timestamp"].dt.floor("us").astype("datetime64[us, UTC]")
    return out.assign(label=np.arange(len(out)) % 2, weight=0.5)


@pytest.fixture(scope="module")
def analytics(home: FeatureHome, labels: pd.DataFrame) -> pd.DataFrame:
    """The labels joined with every stored feature (the analytics service)."""
    return training_frame(home.settings, labels, "analytics")


def point_in_time(
    snapshots: pd.DataFrame, key: str, labels: pd.DataFrame, ttl: timedelta | None, names: list[str]
) -> pd.DataFrame:
    """The reference join: per label, the newest row at or before its time and within the ttl."""
    rows = snapshots.sort_values(["event_timestamp", "created"])[[key, "event_timestamp", *names]]
    rows = rows.rename(columns={"event_timestamp": "row_time"})
    rows["row_time"] = rows["row_time"].astype("datetime64[us, UTC]")
    order = labels.assign(_n=range(len(labels))).sort_values("event_timestamp")
    joined = pd.merge_asof(
        order,
        rows,
        left_on="event_timestamp",
        right_on="row_time",
        by=key,
        direction="backward",
        allow_exact_matches=True,
        tolerance=pd.Timedelta(ttl) if ttl else None,
    )
    return joined.sort_values("_n").reset_index(drop=True)


def same(got: pd.Series, expected: pd.Series) -> bool:
    if isinstance(expected.dropna().iloc[0] if expected.notna().any() else 0, np.ndarray):
        pairs = zip(got, expected, strict=True)
        return all(
            (a is None and not isinstance(b, np.ndarray)) or list(a) == list(b) for a, b in pairs
        )
    if pd.api.types.is_datetime64_any_dtype(expected):
        got = pd.to_datetime(got, utc=True)
        return bool(((got == expected) | (got.isna() & expected.isna())).all())
    a, b = got.astype(float).to_numpy(), expected.astype(float).to_numpy()
    return bool(np.array_equal(a, b, equal_nan=True))


def test_every_value_is_the_newest_one_at_the_labels_time(
    home: FeatureHome, labels: pd.DataFrame, analytics: pd.DataFrame
) -> None:
    frame = analytics
    assert frame[["user_id", "item_id", "label", "weight"]].equals(
        labels[["user_id", "item_id", "label", "weight"]]
    )
    for view in home.store.list_feature_views():
        entity = view.entities[0]
        key = f"{entity}_id"
        names = [f.name for f in view.features]
        expected = point_in_time(home.snapshots(entity), key, labels, view.ttl, names)
        for name in names:
            assert same(frame[name], expected[name]), f"{view.name}:{name}"


def test_no_value_from_after_the_label_enters(
    home: FeatureHome, labels: pd.DataFrame, analytics: pd.DataFrame
) -> None:
    frame = analytics
    at = frame["event_timestamp"]
    for name in ("first_event_ts", "last_event_ts", "item_last_event_ts"):
        seen = pd.to_datetime(frame[name], utc=True)
        assert (seen.isna() | (seen <= at)).all(), name
    # Against the raw signals: a count can never exceed the signals there were by then.
    events = pd.read_parquet(home.settings.offline_dir / "events", columns=["user_id", "ts"])
    by_then = [
        int(((events["user_id"] == u) & (events["ts"] <= t)).sum())
        for u, t in zip(frame["user_id"], at, strict=True)
    ]
    assert (frame["events_all"].fillna(0) <= by_then).all()
    edges = len(labels) - 60
    at_edge, before = frame.iloc[edges : edges + 30], frame.iloc[edges + 30 :]
    moved = at_edge["last_event_ts"].to_numpy() != before["last_event_ts"].to_numpy()
    assert moved.all()  # one microsecond earlier, the row at the edge is out of reach


def test_a_window_past_its_ttl_is_null_while_the_profile_holds(home: FeatureHome) -> None:
    users = home.snapshots("user")
    row = users[users["event_timestamp"] < AS_OF - 3 * DAY].iloc[0]
    later = row["event_timestamp"] + timedelta(days=1, seconds=1)
    nothing_between = (
        (users["user_id"] == row["user_id"])
        & (users["event_timestamp"] > row["event_timestamp"])
        & (users["event_timestamp"] <= later)
    )
    if nothing_between.any():
        pytest.skip("this user has a newer row within the day")
    labels = pd.DataFrame(
        {
            "user_id": [row["user_id"]] * 2,
            "item_id": ["i000000"] * 2,
            "event_timestamp": [later - timedelta(seconds=2), later],
        }
    )
    frame = training_frame(home.settings, labels, "analytics")
    assert frame["events_1d"].iloc[0] == row["events_1d"]
    assert pd.isna(frame["events_1d"].iloc[1])  # a day and a second after the row
    assert frame["events_7d"].tolist() == [row["events_7d"]] * 2
    assert frame["events_all"].tolist() == [row["events_all"]] * 2


def test_ranking_rows_carry_the_category_match_from_the_catalog(
    home: FeatureHome, labels: pd.DataFrame
) -> None:
    sample = labels.head(120)
    frame = training_frame(home.settings, sample, "ranking")
    service = home.store.get_feature_service("ranking")
    outputs = [f.name for p in service.feature_view_projections for f in p.features]
    assert list(frame.columns) == [*sample.columns, "item_category", *outputs]
    catalog = pd.read_parquet(catalog_path(home.settings)).set_index("item_id")["category"]
    assert frame["item_category"].tolist() == sample["item_id"].map(catalog).tolist()
    profile = point_in_time(
        home.snapshots("user"),
        "user_id",
        sample,
        timedelta(0),
        ["top_categories", "top_category_shares"],
    )
    for n, (tops, shares) in enumerate(
        zip(profile["top_categories"], profile["top_category_shares"], strict=True)
    ):
        ranked = [] if not isinstance(tops, np.ndarray) else list(tops)
        category = frame["item_category"].iloc[n]
        match = category in ranked
        assert frame["category_match"].iloc[n] == int(match)
        share = float(shares[ranked.index(category)]) if match else 0.0
        assert frame["category_share"].iloc[n] == share


def test_labels_are_checked() -> None:
    with pytest.raises(InvalidInputError, match="item_id"):
        check_labels(pd.DataFrame({"user_id": ["u"], "event_timestamp": [AS_OF]}))
    with pytest.raises(InvalidInputError, match="no time"):
        check_labels(pd.DataFrame({"user_id": ["u"], "item_id": ["i"], "event_timestamp": [None]}))
    naive = check_labels(
        pd.DataFrame({"user_id": ["u"], "item_id": ["i"], "event_timestamp": ["2026-01-01 10:00"]})
    )
    assert naive["event_timestamp"].iloc[0] == pd.Timestamp("2026-01-01 10:00", tz="UTC")
    filled = with_catalog_fields(
        naive, pd.DataFrame({"item_id": ["i"], "category": ["books"]}), ["item_category"]
    )
    assert filled["item_category"].tolist() == ["books"]


def test_the_cli_writes_training_rows(
    home: FeatureHome, labels: pd.DataFrame, tmp_path: Path
) -> None:
    labels.head(20).to_parquet(tmp_path / "labels.parquet")
    env = {"ENGRAM_HOME": str(home.settings.engram_home), "REDIS_URL": home.redis_url}
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            main,
            ["training-data", str(tmp_path / "labels.parquet"), str(tmp_path / "rows.parquet")],
            env=env,
            catch_exceptions=False,
        )
    finally:
        get_settings.cache_clear()
    summary = json.loads(result.output)
    assert (summary["rows"], summary["features"], summary["feature_service"]) == (20, 38, "ranking")
    assert len(pd.read_parquet(tmp_path / "rows.parquet")) == 20
