"""A hung Milvus fails the API's calls after ENGRAM_MILVUS_TIMEOUT_MS instead of holding them."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from pymilvus.exceptions import MilvusException

from core.settings import Settings
from memory.service import connect_store
from tests.conftest import PausableServer

QUERY = [1.0, 0.0, 0.0, 0.0]


def test_a_paused_server_times_out_calls_then_answers_again(
    milvus_uri: str, pausable_milvus: PausableServer, tmp_path: Path
) -> None:
    settings = Settings(engram_home=tmp_path, milvus_uri=milvus_uri)
    collection = f"timeout_{uuid.uuid4().hex[:8]}"
    store = connect_store(settings, collection=collection, model="test", dim=4, timeout_s=0.5)
    store.ensure_collection()
    assert store.search("u1", QUERY, limit=3) == []
    pausable_milvus.pause()
    began = time.monotonic()
    with pytest.raises(MilvusException):
        store.search("u1", QUERY, limit=3)
    assert time.monotonic() - began < 5  # the timeout ended the call, not the server
    pausable_milvus.resume()
    assert store.search("u1", QUERY, limit=3) == []  # answers again once it runs
    store.drop_collection()
    store.close()
