"""Fixtures of the ranking tests: the MiniLM embedder, a materialized home and its reader."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.stores.online.plan import service_plan
from core.stores.online.read_service import ServiceReader
from memory import embed
from tests.feature_home import FeatureHome, feature_home


@pytest.fixture(scope="session")
def minilm(minilm: embed.Embedder) -> embed.Embedder:
    """The session's MiniLM (tests/conftest.py), its vectors kept in memory across tests."""
    return embed.CachedEmbedder(minilm)


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
