"""Engram's feature store on a real Redis: applied, materialized, and online equal to offline."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis
from click.testing import CliRunner, Result

from core.errors import ConfigError
from core.settings import Settings, get_settings
from core.stores import feature_store
from engram.cli import main
from pipelines.batch import run_ingest
from pipelines.materialize import materialize_views
from tests.feature_home import AS_OF, FeatureHome, feature_home, ingested_settings

USER_VIEWS = ("user_1d", "user_7d", "user_30d", "user_profile")
ITEM_VIEWS = ("item_1d", "item_7d", "item_30d", "item_profile")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, redis_server: str) -> FeatureHome:
    return feature_home(tmp_path_factory, redis_server)


def test_variables_are_filled_from_settings_and_comments_left_alone() -> None:
    text = '# eval "$(engram feast-env)" uses ${ENGRAM_HOME}\nregistry: ${ENGRAM_HOME}/r.db\n'
    assert feature_store.render_config(text, {"ENGRAM_HOME": "/h"}) == {"registry": "/h/r.db"}
    with pytest.raises(ConfigError, match="NOPE"):
        feature_store.render_config("x: ${NOPE}\n", {})


def test_the_environment_for_the_feast_cli(tmp_path: Path) -> None:
    settings = Settings(engram_home=tmp_path / "h")
    env = feature_store.feast_environment(settings, "redis://:s%40cret@10.0.0.5:6380/2")
    assert env == {
        "ENGRAM_HOME": str((tmp_path / "h").resolve()),
        "ENGRAM_FEAST_REDIS": "10.0.0.5:6380,db=2,password=s@cret",
        "ENGRAM_FEAST_REGISTRY": f"sqlite:///{(tmp_path / 'h').resolve()}/registry.db",
        "ENGRAM_FEAST_REDIS_TYPE": "redis",
    }


def test_a_redis_cluster_is_feasts_redis_cluster_without_a_database(tmp_path: Path) -> None:
    settings = Settings(engram_home=tmp_path / "h", redis_cluster=True)
    env = feature_store.feast_environment(settings, "redis://10.0.0.5:7000/0")
    assert env["ENGRAM_FEAST_REDIS"] == "10.0.0.5:7000"
    assert env["ENGRAM_FEAST_REDIS_TYPE"] == "redis_cluster"
    config = feature_store.repo_config(settings, "redis://10.0.0.5:7000")
    assert config.online_store.redis_type == "redis_cluster"
    with pytest.raises(ConfigError, match="database 0 only"):
        feature_store.feast_environment(settings, "redis://10.0.0.5:7000/3")


def test_a_shared_registry_replaces_the_sqlite_file(tmp_path: Path) -> None:
    shared = "postgresql+psycopg://engram@db.internal:5432/engram_registry"
    settings = Settings(engram_home=tmp_path / "h", engram_feast_registry_url=shared)
    env = feature_store.feast_environment(settings, "redis://10.0.0.5:6380/0")
    assert env["ENGRAM_FEAST_REGISTRY"] == shared
    assert feature_store.repo_config(settings, "redis://10.0.0.5:6380/0").registry.path == shared


def test_the_repo_is_registered_and_every_view_materialized(home: FeatureHome) -> None:
    store = home.store
    assert feature_store.apply_repo(store, home.settings) == 18  # again: intervals survive it
    assert sorted(v.name for v in store.list_feature_views()) == sorted(USER_VIEWS + ITEM_VIEWS)
    assert [v.name for v in store.list_on_demand_feature_views()] == ["user_item_category"]
    assert sorted(s.name for s in store.list_feature_services()) == ["analytics", "ranking"]
    for view in store.list_feature_views():
        assert view.most_recent_end_time == AS_OF, view.name
    # One pass per snapshot file, each writing every entity once.
    users = home.snapshots("user")["user_id"].nunique()
    items = home.snapshots("item")["item_id"].nunique()
    assert sorted((r.views, r.rows_written) for r in home.materialized) == [
        (ITEM_VIEWS, items),
        (USER_VIEWS, users),
    ]


def latest(frame: pd.DataFrame, key: str, at: datetime) -> pd.DataFrame:
    rows = frame[frame["event_timestamp"] <= at].sort_values(["event_timestamp", "created"])
    return rows.groupby(key).tail(1).set_index(key)


def plain(value: Any) -> Any:
    """A snapshot cell as Feast's to_dict gives it: None for null, lists, datetimes."""
    if isinstance(value, np.ndarray | list):
        return [float(v) if isinstance(v, np.floating) else v for v in value]
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime().replace(microsecond=0)  # Feast keeps whole seconds
    return value.item() if isinstance(value, np.generic) else value


@pytest.mark.parametrize(
    ("entity", "key", "sample"), [("user", "user_id", 12), ("item", "item_id", 40)]
)
def test_online_values_equal_the_offline_snapshot(
    home: FeatureHome, entity: str, key: str, sample: int
) -> None:
    expected = latest(home.snapshots(entity), key, AS_OF)
    ids = sorted(expected.sample(sample, random_state=3).index)
    views = [v for v in home.store.list_feature_views() if v.entities == [entity]]
    refs = [f"{v.name}:{f.name}" for v in views for f in v.features]
    got = home.store.get_online_features(features=refs, entity_rows=[{key: i} for i in ids])
    online = got.to_dict()
    for ref in refs:
        name = ref.split(":")[1]
        assert online[name] == [plain(expected.at[i, name]) for i in ids], name


def test_a_push_refreshes_every_view_over_the_source(home: FeatureHome) -> None:
    row = home.snapshots("user").iloc[[0]].copy()
    row["user_id"] = "pushed-user"  # an entity of its own: other tests read the rest
    row["event_timestamp"] = row["created"] = pd.Timestamp(AS_OF + timedelta(hours=1))
    row["events_1d"] = 41
    row["events_all"] = 4100
    home.store.push("user_stats_push_source", row)
    got = home.store.get_online_features(
        features=["user_1d:events_1d", "user_profile:events_all", "user_7d:events_7d"],
        entity_rows=[{"user_id": "pushed-user"}],
    ).to_dict(include_event_timestamps=True)
    assert (got["events_1d"], got["events_all"]) == ([41], [4100])
    pushed_at = int((AS_OF + timedelta(hours=1)).timestamp())
    assert got["events_1d__ts"] == got["events_7d__ts"] == got["events_all__ts"] == [pushed_at]


def cli(home_settings: Settings, *args: str) -> Result:
    env = {"ENGRAM_HOME": str(home_settings.engram_home), "REDIS_URL": home_settings.redis_url}
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    finally:
        get_settings.cache_clear()


@pytest.fixture
def fresh(tmp_path: Path, redis_url: str) -> Iterator[Settings]:
    """A home with snapshots and nothing applied or materialized, on an empty database."""
    yield ingested_settings(tmp_path, redis_url)


def test_materialize_carries_on_from_where_it_stopped(fresh: Settings) -> None:
    shown = cli(fresh, "features", "show", "u000001")
    assert shown.exit_code == 2 and "engram materialize" in shown.output  # not applied yet

    first = cli(fresh, "materialize", "--end", AS_OF.isoformat(), "--json")
    summary = json.loads(first.output)
    assert summary["views"] == 8
    assert [p["start"] for p in summary["passes"]] == [None, None]
    assert all(p["rows_written"] > 0 for p in summary["passes"])

    again = json.loads(cli(fresh, "materialize", "--end", AS_OF.isoformat(), "--json").output)
    assert [p["rows_written"] for p in again["passes"]] == [0, 0]

    # A new run of the batch job stamps every entity's serving row at its new as_of.
    later = AS_OF + timedelta(days=1)
    run_ingest(fresh, Path(fresh.engram_home).parent / "data" / "signals.jsonl", as_of=later)
    third = json.loads(cli(fresh, "materialize", "--end", later.isoformat(), "--json").output)
    assert [p["start"] for p in third["passes"]] == [AS_OF.isoformat()] * 2
    assert [p["rows_written"] for p in third["passes"]] == [
        p["rows_written"] for p in summary["passes"]
    ]

    shown = cli(fresh, "features", "show", "--sample")
    assert shown.exit_code == 0, shown.output
    user = json.loads(shown.output)
    assert user["feature_service"] == "ranking"
    assert set(user["event_timestamps"]) == set(USER_VIEWS)
    assert all(t.startswith("2026-11-03") for t in user["event_timestamps"].values())
    assert user["features"]["events_all"] > 0

    unknown = cli(fresh, "features", "show", "nobody")
    assert unknown.exit_code == 2 and "nobody" in unknown.output


def test_feast_env_prints_exports(fresh: Settings) -> None:
    out = cli(fresh, "feast-env").output.splitlines()
    assert out[0] == f"export ENGRAM_HOME={Path(fresh.engram_home).resolve()}"
    assert out[1].startswith("export ENGRAM_FEAST_REDIS=127.0.0.1:")
    registry = f"sqlite:///{fresh.engram_home.resolve()}/registry.db"
    assert out[2] == f"export ENGRAM_FEAST_REGISTRY={registry}"
    assert out[3] == "export ENGRAM_FEAST_REDIS_TYPE=redis"


@pytest.mark.filterwarnings("ignore:fetch_arrow_table:DeprecationWarning")  # ibis, in Feast
def test_one_pass_per_source_leaves_redis_as_feast_materialize_does(
    fresh: Settings, redis_url: str
) -> None:
    store = feature_store.open_store(fresh, redis_url)
    feature_store.apply_repo(store, fresh)
    with redis.Redis.from_url(redis_url) as client:
        store.materialize(datetime(1970, 1, 1, tzinfo=UTC), AS_OF)
        by_feast = {key: client.hgetall(key) for key in client.scan_iter(count=1000)}
        client.flushdb()
        for views in (USER_VIEWS, ITEM_VIEWS):
            materialize_views(store, client, views, start=None, end=AS_OF, record=False)
        by_engram = {key: client.hgetall(key) for key in client.scan_iter(count=1000)}
    assert by_engram == by_feast
    assert len(by_feast) > 300  # every user and item, each one hash for all its views


def test_the_project_name_is_the_yamls(home: FeatureHome) -> None:
    assert feature_store.project_name() == home.store.project == "engram"
