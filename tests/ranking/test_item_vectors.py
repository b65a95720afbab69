"""Item texts, and the Milvus collection of item vectors: written, read back, searched."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from ranking.item_vectors import ItemVectors, ItemVectorStore, item_texts


def test_item_text_is_title_then_genres_or_category_then_tags() -> None:
    catalog = pd.DataFrame(
        {
            "item_id": ["1", "2"],
            "title": ["Heat (1995)", "Plain"],
            "category": ["Action", "books"],
            "genres": [["Action", "Crime"], None],
        }
    )
    tags = pd.DataFrame({"item_id": ["1", "1", "1"], "text": ["tense", "tense", "long"]})
    texts = item_texts(catalog, tags)
    assert texts["1"] == "Heat (1995). Action, Crime. Tags: tense, long"
    assert texts["2"] == "Plain. books"


@pytest.fixture
def store(milvus_uri: str) -> Iterator[ItemVectorStore]:
    from pymilvus import MilvusClient

    made = ItemVectorStore(
        MilvusClient(uri=milvus_uri),
        dim=4,
        model="test",
        collection=f"items_{uuid.uuid4().hex[:8]}",
    )
    made.ensure_collection()
    yield made
    made.drop()
    made.close()


def test_vectors_come_back_and_the_nearest_item_is_found(store: ItemVectorStore) -> None:
    matrix = np.eye(4, dtype=np.float32)
    store.write(ItemVectors(np.asarray(["d", "a", "c", "b"], dtype=object), matrix))
    loaded = store.load()
    assert loaded.ids.tolist() == ["a", "b", "c", "d"]
    assert np.allclose(loaded.rows(["d"]), matrix[0])
    hits = store.search(np.asarray([[0.9, 0.1, 0, 0]]), 2)[0]
    assert [item for item, _ in hits] == ["d", "a"]
    assert [item for item, _ in store.search(matrix[:1], 1, exclude=[["d"]])[0]] == ["a"]
