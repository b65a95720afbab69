"""Fixtures of the ranking tests: the MiniLM embedder, a materialized home and its reader."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from memory import embed
from ranking.online_features import ServiceReader, service_plan
from tests.feature_home import FeatureHome, feature_home


@pytest.fixture(scope="session")
def minilm(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> embed.Embedder:  # fmt: skip
    """MiniLM on ONNX, its export kept in pytest's cache (as in tests/memory)."""
    cache = getattr(request.config, "cache", None)
    models = Path(cache.mkdir("engram-models")) if cache else tmp_path_factory.mktemp("models")
    return embed.CachedEmbedder(embed.load_onnx_minilm(models, variant="fp32", threads=1))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, redis_server: str) -> FeatureHome:
    """The session's materialized home (tests/feature_home.py)."""
    return feature_home(tmp_path_factory, redis_server)


@pytest.fixture
def ranking(home: FeatureHome) -> Iterator[ServiceReader]:
    """A reader of the home's `ranking` feature service."""
    client = home.client()
    yield ServiceReader(client, home.store.project, service_plan(home.store, "ranking"))
    client.close()
