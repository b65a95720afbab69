"""Candidates computed at training: what a live request at that time would generate, stored
compactly, within a budget, and forgettable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ranking import precomputed
from ranking.candidates import EmbeddingSource, ModelSource, Source, UserCandidates, generate_user
from ranking.history import UserHistory
from ranking.item_vectors import ItemVectors
from tests.ranking.test_baselines import at, clustered_log
from tests.ranking.test_forget import fitted

AT = at(90)


@pytest.fixture(scope="module")
def world() -> tuple[list[Source], UserHistory, pd.Index]:
    """The serving sources over the two-taste log, and its catalog."""
    log = clustered_log()
    history = UserHistory(log)
    items = pd.Index(sorted(set(log["item_id"])))
    rng = np.random.default_rng(0)
    vectors = ItemVectors(np.asarray(items, dtype=object), rng.random((len(items), 8), "float32"))
    sources: list[Source] = [ModelSource(name, m) for name, m in fitted(log).items()]
    sources.append(EmbeddingSource(vectors, history))
    return sources, history, items


def assert_same(got: UserCandidates | None, expected: UserCandidates, rtol: float = 0) -> None:
    assert got is not None
    assert got.item_ids.tolist() == expected.item_ids.tolist()
    assert got.names == expected.names
    np.testing.assert_allclose(got.scores, expected.scores, rtol=rtol, atol=0)
    np.testing.assert_array_equal(got.ranks, expected.ranks)
    np.testing.assert_array_equal(got.inside, expected.inside)
    assert got.sources() == expected.sources()


def test_stored_candidates_are_what_a_request_at_that_time_generates(
    world: tuple[list[Source], UserHistory, pd.Index], tmp_path: Path
) -> None:
    sources, history, items = world
    stored = precomputed.compute(sources, history, items, AT, budget_bytes=2**30)
    path = tmp_path / precomputed.FILE
    path.write_bytes(stored.to_bytes())
    loaded = precomputed.load(path)
    assert loaded.at == AT and sorted(loaded.users) == sorted(history.users)
    micros = int(AT.value // 1000)
    for user in history.users:
        seen = history.before(user, micros).items
        expected = generate_user(sources, user, AT, items, seen)
        # Scored with many users at once: float32 products may round in another last bit.
        assert_same(loaded.get(user), expected, rtol=1e-6)
    assert loaded.get("nobody") is None and "nobody" not in loaded


def test_the_budget_keeps_the_most_active_users(
    world: tuple[list[Source], UserHistory, pd.Index],
) -> None:
    sources, history, items = world
    per_user = 600 * precomputed.bytes_per_candidate(len(sources)) + precomputed.bytes_of_lists(
        len(sources)
    )
    stored = precomputed.compute(sources, history, items, AT, budget_bytes=3 * per_user)
    micros = int(AT.value // 1000)
    activity = {u: len(history.before(u, micros).items) for u in history.users}
    assert len(stored.users) == 3
    assert min(activity[u] for u in stored.users) >= sorted(activity.values())[-3]
    assert len(precomputed.compute(sources, history, items, AT, budget_bytes=0).users) == 0


def test_a_forgotten_user_leaves_the_others_as_they_were(
    world: tuple[list[Source], UserHistory, pd.Index],
) -> None:
    sources, history, items = world
    stored = precomputed.compute(sources, history, items, AT, budget_bytes=2**30)
    gone = stored.users[len(stored.users) // 2]
    kept = stored.without(str(gone))
    assert str(gone) not in kept and kept.get(str(gone)) is None
    assert len(kept.users) == len(stored.users) - 1
    for user in kept.users:
        expected = stored.get(str(user))
        assert expected is not None
        assert_same(kept.get(str(user)), expected)
