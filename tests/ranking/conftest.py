"""Fixtures of the ranking tests: the MiniLM embedder and a trained, materialized home."""

from __future__ import annotations

from pathlib import Path

import pytest

from memory import embed


@pytest.fixture(scope="session")
def minilm(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> embed.Embedder:  # fmt: skip
    """MiniLM on ONNX, its export kept in pytest's cache (as in tests/memory)."""
    cache = getattr(request.config, "cache", None)
    models = Path(cache.mkdir("engram-models")) if cache else tmp_path_factory.mktemp("models")
    return embed.CachedEmbedder(embed.load_onnx_minilm(models, variant="fp32", threads=1))
