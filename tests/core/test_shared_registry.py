"""Two hosts (two ENGRAM_HOMEs) sharing one Feast registry on PostgreSQL: what one applies and
materializes, the other sees and reads, with no registry of its own.

The test creates a database of its own on the PostgreSQL at ENGRAM_TEST_POSTGRES
(tests/conftest.py: `postgres_database`) and drops it at the end, whatever happens; it skips when
that server cannot be reached.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pandas as pd
from click.testing import CliRunner
from feast import FeatureStore

from core.settings import Settings, get_settings
from core.stores import feature_store
from engram.cli import main
from pipelines.batch import ITEM_FEATURES_FILE, USER_FEATURES_FILE, features_dir
from pipelines.stream.views import cache_path, load_layout
from tests.feature_home import AS_OF, ingested_settings


def engram(settings: Settings, *args: str) -> str:
    """Run an `engram` command as a host configured only by its environment would."""
    env = {
        "ENGRAM_HOME": str(settings.engram_home),
        "REDIS_URL": str(settings.redis_url),
        "ENGRAM_FEAST_REGISTRY_URL": str(settings.engram_feast_registry_url),
    }
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    return result.output


def test_a_second_host_sees_what_the_first_applied_and_materialized(
    tmp_path: Path, redis_url: str, postgres_database: str
) -> None:
    shared = {"engram_feast_registry_url": postgres_database}
    batch_host = ingested_settings(tmp_path / "batch", redis_url).model_copy(update=shared)
    serving_host = Settings(
        engram_home=tmp_path / "serving" / "home", redis_url=redis_url, **shared
    )

    summary = json.loads(engram(batch_host, "materialize", "--end", AS_OF.isoformat(), "--json"))
    assert summary["views"] == 8 and summary["rows_written"] > 0

    batch = feature_store.open_store(batch_host, redis_url)
    serving = feature_store.open_store(serving_host, redis_url)  # never applies anything
    assert not (serving_host.engram_home / "registry.db").exists()

    def views(store: FeatureStore) -> dict[str, object]:
        return {v.name: list(v.materialization_intervals) for v in store.list_feature_views()}

    assert len(views(serving)) == 8
    assert views(serving) == views(batch)
    assert all(v.most_recent_end_time == AS_OF for v in serving.list_feature_views())
    assert [v.name for v in serving.list_on_demand_feature_views()] == ["user_item_category"]
    assert sorted(s.name for s in serving.list_feature_services()) == ["analytics", "ranking"]

    offline = features_dir(batch_host)
    users = pd.read_parquet(offline / USER_FEATURES_FILE, columns=["user_id"])["user_id"]
    items = pd.read_parquet(offline / ITEM_FEATURES_FILE, columns=["item_id"])["item_id"]
    pairs = zip(users.unique()[:5], items.unique()[:5], strict=True)
    rows = [{"user_id": user, "item_id": item} for user, item in pairs]

    def online(store: FeatureStore) -> dict[str, list[object]]:
        service = store.get_feature_service("analytics")
        return dict(store.get_online_features(features=service, entity_rows=rows).to_dict())

    by_serving = online(serving)
    assert by_serving == online(batch)
    assert all(v is not None for v in by_serving["events_all"])

    # The stream consumer's layout cache follows the shared registry, which has no file to date.
    changed = feature_store.registry_changed_at(serving_host)
    assert changed is not None and abs(changed - time.time()) < 300
    assert changed == feature_store.registry_changed_at(batch_host)
    layout = load_layout(serving_host, redis_url)
    cache = cache_path(serving_host)
    os.utime(cache, (changed + 5, changed + 5))  # cached after the change: kept
    assert load_layout(serving_host, redis_url) == layout
    assert cache.stat().st_mtime == changed + 5
    os.utime(cache, (changed - 5, changed - 5))  # cached before it: read again
    assert load_layout(serving_host, redis_url) == layout
    assert cache.stat().st_mtime > changed - 5  # written again (now, maybe within that second)


def test_an_unreachable_registry_has_no_change_time(tmp_path: Path) -> None:
    """The consumer then keeps its cached layout rather than failing to start."""
    unreachable = "postgresql+psycopg://engram@127.0.0.1:1/engram_registry"
    settings = Settings(engram_home=tmp_path / "home", engram_feast_registry_url=unreachable)
    assert feature_store.registry_changed_at(settings) is None
