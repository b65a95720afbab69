"""Item vectors: catalog text (title, category or genres, tags) embedded by MiniLM, kept in Milvus.

The `items` collection holds one row per item (id, vector). The ranker reads the vectors back
(`ItemVectorStore.load`) to score candidates by similarity, and searches the collection to
retrieve items near a text query or a user's taste vector. Vectors are unit length, so inner
product is cosine.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from core.errors import InvalidInputError
from core.settings import Settings
from memory.embed import Embedder
from memory.store import ensure_vector_collection, milvus_literal

ITEMS_COLLECTION = "items"
_MAX_ID = 128
_QUERY_WINDOW = 16_384


def item_texts(catalog: pd.DataFrame, tags: pd.DataFrame | None = None) -> pd.Series:
    """One text per item: title, category or genres, and up to 20 of its tags. Pure."""
    rows = catalog.drop_duplicates("item_id").set_index("item_id")
    genres = rows["genres"] if "genres" in rows else pd.Series(None, index=rows.index)
    parts = []
    for item_id, title, category, listed in zip(
        rows.index, rows["title"], rows["category"], genres, strict=True
    ):
        kinds = [str(g) for g in listed] if listed is not None and len(listed) else []
        if not kinds and isinstance(category, str):
            kinds = [category]
        text = str(title) if isinstance(title, str) and title else str(item_id)
        parts.append(f"{text}. {', '.join(kinds)}" if kinds else text)
    texts = pd.Series(parts, index=rows.index.astype(str), name="text")
    if tags is not None and len(tags):
        grouped = tags.groupby(tags["item_id"].astype(str))["text"].agg(
            lambda values: ", ".join(list(dict.fromkeys(str(v) for v in values))[:20])
        )
        known = grouped.index.intersection(texts.index)
        texts.loc[known] = texts.loc[known] + ". Tags: " + grouped.loc[known]
    return texts


@dataclass(frozen=True)
class ItemVectors:
    """Item ids and their unit vectors, row i for ids[i]."""

    ids: np.ndarray
    matrix: np.ndarray  # float32, (items, dim)

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.matrix):
            raise InvalidInputError("item vectors", "one vector per item id is needed")

    @functools.cached_property
    def index(self) -> pd.Index:
        """Row of each item id (built once: the sources look items up per request)."""
        return pd.Index(self.ids)

    def rows(self, item_ids: Sequence[str]) -> np.ndarray:
        """Vectors of the given items; zero rows for items without one."""
        found = self.index.get_indexer([str(i) for i in item_ids])
        out = np.zeros((len(found), self.matrix.shape[1]), dtype=np.float32)
        out[found >= 0] = self.matrix[found[found >= 0]]
        return out


def embed_items(embedder: Embedder, texts: pd.Series, cache_dir: Path | None = None) -> ItemVectors:
    """Vectors of the item texts (index: item ids); with `cache_dir`, a catalog embedded once by
    this model is read back from there (keyed by the model and every id and text)."""
    ids = np.asarray(texts.index.astype(str))
    path = None
    if cache_dir is not None:
        digest = hashlib.sha256(embedder.name.encode())
        for item_id, text in zip(ids, texts.to_numpy(), strict=True):
            digest.update(f"{item_id}\x00{text}\x00".encode())
        path = cache_dir / f"items-{digest.hexdigest()[:24]}.npy"
        if path.exists():
            return ItemVectors(ids, np.load(path))
    matrix = np.asarray(embedder.embed(list(texts.to_numpy())), dtype=np.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.npy")
        np.save(partial, matrix)
        partial.rename(path)
    return ItemVectors(ids, matrix)


def _schema(dim: int, model: str) -> Any:
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(
        auto_id=False, enable_dynamic_field=False, description=model
    )
    schema.add_field("item_id", DataType.VARCHAR, is_primary=True, max_length=_MAX_ID)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=dim)
    return schema


class ItemVectorStore:
    """The Milvus collection of item vectors; the client is built elsewhere and passed in."""

    def __init__(
        self, client: Any, *, dim: int, model: str, collection: str = ITEMS_COLLECTION
    ) -> None:
        self._client = client
        self.dim = dim
        self.model = model
        self.collection = collection

    def ensure_collection(self) -> None:
        """Create (FLAT, inner product: exact) and load the collection; refuse another model's."""
        ensure_vector_collection(
            self._client,
            self.collection,
            self.model,
            lambda: _schema(self.dim, self.model),
            what="item collection",
            remedy="drop it and write the items again",
        )

    def write(self, vectors: ItemVectors) -> None:
        """Replace the given items' vectors (delete by id, then insert: see memory/store.py)."""
        ids = [str(i) for i in vectors.ids]
        if any(len(i.encode()) > _MAX_ID for i in ids):
            raise InvalidInputError("item_id", f"longer than {_MAX_ID} bytes")
        for start in range(0, len(ids), 1_000):
            chunk = ids[start : start + 1_000]
            self._client.delete(self.collection, ids=chunk)
            rows = [
                {"item_id": i, "embedding": v.tolist()}
                for i, v in zip(chunk, vectors.matrix[start : start + 1_000], strict=True)
            ]
            self._client.insert(self.collection, rows)
        # A Strong read waits until the query node has applied every write.
        self._client.query(
            self.collection,
            filter='item_id == ""',
            output_fields=["item_id"],
            limit=1,
            consistency_level="Strong",
        )

    def load(self) -> ItemVectors:
        """Every stored item vector, sorted by item id."""
        rows: list[dict[str, Any]] = []
        iterator = self._client.query_iterator(
            self.collection,
            batch_size=4_096,
            filter='item_id != ""',
            output_fields=["item_id", "embedding"],
        )
        try:
            while batch := iterator.next():
                rows.extend(batch)
        finally:
            iterator.close()
        rows.sort(key=lambda row: row["item_id"])
        ids = np.asarray([row["item_id"] for row in rows], dtype=object)
        matrix = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
        return ItemVectors(ids, matrix.reshape(len(rows), self.dim))

    def search(
        self, queries: np.ndarray, limit: int, exclude: Sequence[Sequence[str]] | None = None
    ) -> list[list[tuple[str, float]]]:
        """The `limit` nearest items (id, inner product) of each query vector, best first."""
        limit = max(1, min(limit, _QUERY_WINDOW))
        out: list[list[tuple[str, float]]] = []
        for row, query in enumerate(np.asarray(queries, dtype=np.float32)):
            skip = list(exclude[row]) if exclude is not None else []
            expr = (
                f"item_id not in [{', '.join(milvus_literal(str(i)) for i in skip)}]"
                if skip
                else ""
            )
            hits = self._client.search(
                self.collection,
                data=[query.tolist()],
                limit=limit,
                filter=expr,
                output_fields=["item_id"],
                search_params={"metric_type": "IP"},
            )[0]
            out.append([(str(hit["id"]), float(hit["distance"])) for hit in hits])
        return out

    def drop(self) -> None:
        """Remove the collection."""
        self._client.drop_collection(self.collection)

    def close(self) -> None:
        """Close the client's connection."""
        self._client.close()


def connect_item_store(
    settings: Any,
    embedder: Embedder,
    collection: str = ITEMS_COLLECTION,
    timeout_s: float | None = None,
) -> ItemVectorStore:
    """The item store on MILVUS_URI (or the local server, started if needed); creates nothing.
    Its Milvus calls time out after `timeout_s` (core.stores.services.connect_milvus)."""
    from core.stores.services import connect_milvus

    client = connect_milvus(settings, timeout_s)
    return ItemVectorStore(client, dim=embedder.dim, model=embedder.name, collection=collection)


def catalog_frame(settings: Settings) -> pd.DataFrame:
    """The stored catalog (item_id, title, category, genres): what item texts are made of."""
    from pipelines.catalog_store import catalog_path

    path = catalog_path(settings)
    if not path.exists():
        return pd.DataFrame({"item_id": [], "title": [], "category": [], "genres": []})
    return pq.read_table(path, columns=["item_id", "title", "category", "genres"]).to_pandas()


def build_item_vectors(
    settings: Settings, catalog: pd.DataFrame, embedder: Embedder, collection: str
) -> ItemVectors:
    """Embed the catalog, write the vectors to Milvus and read them back from there."""
    store = connect_item_store(settings, embedder, collection)
    try:
        store.ensure_collection()
        cache = settings.engram_home / "cache" / "item_vectors"
        store.write(embed_items(embedder, item_texts(catalog), cache))
        return store.load()
    finally:
        store.close()
