"""Deduplication on event_id batch by batch: exact, even when different ids share a hash."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.event_ids import SeenIds


class _CollidingIds(SeenIds):
    """Three hash values for every id: most different ids collide."""

    def _hash(self, ids: pa.Array) -> np.ndarray:
        return super()._hash(ids) % np.uint64(3)


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(config={"threads": 1})
    yield connection
    connection.close()


def _reference(stored: list[str], batches: list[list[str]]) -> list[list[int]]:
    seen = set(stored)
    kept = []
    for batch in batches:
        mine = []
        for index, event_id in enumerate(batch):
            if event_id not in seen:
                seen.add(event_id)
                mine.append(index)
        kept.append(mine)
    return kept


_IDS = st.lists(st.sampled_from([f"e{n}" for n in range(12)]), max_size=30)


@settings(max_examples=60, deadline=None)
@given(
    stored=st.lists(st.sampled_from([f"e{n}" for n in range(8)]), unique=True),
    batches=st.lists(_IDS, max_size=5),
)
@pytest.mark.parametrize("kind", [SeenIds, _CollidingIds])
def test_keeps_the_first_copy_of_each_unseen_id(
    con: duckdb.DuckDBPyConnection, kind: type[SeenIds], stored: list[str], batches: list[list[str]]
) -> None:
    seen = kind(con)
    seen.add(pa.array(stored, pa.string()))
    kept = [seen.keep_new(pa.array(batch, pa.string())).tolist() for batch in batches]
    assert kept == _reference(stored, batches)
    assert len(seen) == len(set(stored).union(*map(set, batches)))


def test_chunked_ids_and_an_empty_batch(con: duckdb.DuckDBPyConnection) -> None:
    seen = SeenIds(con)
    assert seen.keep_new(pa.chunked_array([], pa.string())).tolist() == []
    ids = pa.chunked_array([["a", "b"], ["a", "c", "b"]])
    assert seen.keep_new(ids).tolist() == [0, 1, 3]
    assert seen.keep_new(pa.array(["c", "d", "d"])).tolist() == [1]
