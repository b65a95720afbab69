"""An ENGRAM_HOME with real snapshots, Engram's feature repo applied and materialized, for tests.

Built once per test session (generate the small dataset, ingest it as of AS_OF, apply
feature_repo/, materialize up to AS_OF) into its own database of the session's redis-server, so
the per-test flush of database 0 never touches it. Tests that change what is stored use their own
entities or their own home.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import redis
from feast import FeatureStore

from core.settings import Settings
from core.stores import feature_store
from pipelines.batch import ITEM_FEATURES_FILE, USER_FEATURES_FILE, features_dir, run_ingest
from pipelines.generate import GenerateConfig, write_dataset
from pipelines.materialize import MaterializeResult, materialize_incremental

AS_OF = datetime(2026, 11, 2, tzinfo=UTC)  # two days after the generated data ends
REDIS_DB = 7


@dataclass
class FeatureHome:
    """Settings, store and Redis of a materialized home, with its snapshots as frames."""

    settings: Settings
    redis_url: str
    store: FeatureStore
    materialized: list[MaterializeResult]
    _frames: dict[str, pd.DataFrame] = field(default_factory=dict)

    def client(self) -> redis.Redis:
        """A new client on the home's Redis database (close it when done)."""
        return redis.Redis.from_url(self.redis_url)

    def snapshots(self, entity: str) -> pd.DataFrame:
        """The user or item snapshot rows the pipeline wrote."""
        if entity not in self._frames:
            name = USER_FEATURES_FILE if entity == "user" else ITEM_FEATURES_FILE
            self._frames[entity] = pd.read_parquet(features_dir(self.settings) / name)
        return self._frames[entity]


def ingested_settings(directory: Path, redis_url: str | None) -> Settings:
    """A fresh home holding the small generated dataset, ingested as of AS_OF."""
    paths = write_dataset(directory / "data", GenerateConfig.small())
    settings = Settings(engram_home=directory / "home", redis_url=redis_url, milvus_uri=None)
    run_ingest(settings, paths.signals, catalog=paths.catalog, as_of=AS_OF)
    return settings


_BUILT: dict[str, FeatureHome] = {}


def feature_home(tmp_path_factory: pytest.TempPathFactory, redis_server: str) -> FeatureHome:
    """The session's materialized home (built on first use)."""
    if redis_server not in _BUILT:
        url = redis_server.rsplit("/", 1)[0] + f"/{REDIS_DB}"
        settings = ingested_settings(tmp_path_factory.mktemp("feature_home"), url)
        store = feature_store.open_store(settings, url)
        feature_store.apply_repo(store, settings)
        with redis.Redis.from_url(url) as client:
            client.flushdb()
            done = materialize_incremental(store, client, AS_OF)
        _BUILT[redis_server] = FeatureHome(settings, url, store, done)
    return _BUILT[redis_server]
