"""A home with the small generated dataset ingested by the batch path, shared by the stream tests.

The batch path's features go to one Redis database (materialized up to just before AS_OF, so
each entity's row is the one at its latest signal: the row the stream computes), the stream
writes to another; both are read through Feast's get_online_features.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from feast import FeatureStore

from core.settings import Settings
from core.stores import feature_store
from pipelines.batch import run_ingest
from pipelines.generate import DatasetPaths, GenerateConfig, write_dataset
from pipelines.materialize import materialize_incremental
from pipelines.stream.views import PushLayout, layout_from_store, save_layout
from tests.feature_home import AS_OF

BATCH_DB, STREAM_DB = 8, 9


@dataclass
class StreamHome:
    """Settings of an ingested home, the dataset, and a Feast store per Redis database."""

    settings: Settings
    paths: DatasetPaths
    batch_url: str
    stream_url: str
    batch_store: FeatureStore
    stream_store: FeatureStore
    layout: PushLayout


def _db(url: str, db: int) -> str:
    return url.rsplit("/", 1)[0] + f"/{db}"


@pytest.fixture(scope="session")
def stream_home(tmp_path_factory: pytest.TempPathFactory, redis_server: str) -> StreamHome:
    directory: Path = tmp_path_factory.mktemp("stream_home")
    paths = write_dataset(directory / "data", GenerateConfig.small())
    batch_url, stream_url = _db(redis_server, BATCH_DB), _db(redis_server, STREAM_DB)
    settings = Settings(engram_home=directory / "home", redis_url=stream_url, milvus_uri=None)
    run_ingest(settings, paths.signals, catalog=paths.catalog, as_of=AS_OF)
    batch_store = feature_store.open_store(settings, batch_url)
    feature_store.apply_repo(batch_store, settings)
    with redis.Redis.from_url(batch_url) as client:
        client.flushdb()
        materialize_incremental(batch_store, client, AS_OF - timedelta(microseconds=1))
    stream_store = feature_store.open_store(settings, stream_url)
    layout = layout_from_store(stream_store)
    save_layout(settings, layout)
    return StreamHome(settings, paths, batch_url, stream_url, batch_store, stream_store, layout)


@pytest.fixture
def stream_client(stream_home: StreamHome) -> Iterator[redis.Redis]:
    """The stream's Redis database, emptied before and after the test."""
    client = redis.Redis.from_url(stream_home.stream_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()
