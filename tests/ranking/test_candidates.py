"""Candidates: each source's best unseen items, merged with the sources that proposed them."""

from __future__ import annotations

import pickle
from collections.abc import Sequence

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from ranking.baselines import top_k
from ranking.candidates import (
    CandidateSet,
    EmbeddingSource,
    UserCandidates,
    generate,
    generate_user,
    key_of,
    ranked_columns,
    source_recall,
)
from ranking.history import UserHistory
from ranking.item_vectors import ItemVectors

AT = pd.Timestamp("2026-01-01", tz="UTC")
ITEMS = pd.Index([f"i{n}" for n in range(10)])


class Fixed:
    """A source with the same scores for every user."""

    def __init__(self, name: str, scores: list[float]) -> None:
        self.name = name
        self._scores = np.asarray(scores, dtype=float)

    def scores(self, user_ids: Sequence[str], at: pd.DatetimeIndex, items: pd.Index) -> np.ndarray:
        return np.tile(self._scores, (len(user_ids), 1))


def test_the_union_keeps_each_candidates_sources_and_skips_seen_items() -> None:
    up = Fixed("up", list(range(10)))  # best: i9, i8, i7 ...
    down = Fixed("down", list(range(10, 0, -1)))  # best: i0, i1, ...
    got = generate(
        [up, down],
        ["u"],
        pd.DatetimeIndex([AT]),
        ITEMS,
        exclude={"u": {"i9"}},
        limits={"up": 2, "down": 2},
    )
    frame = got.frame.set_index("item_id")
    assert sorted(frame.index) == ["i0", "i1", "i7", "i8"]
    assert frame.loc["i8", "sources"] == "up" and frame.loc["i0", "sources"] == "down"
    assert frame.loc["i8", "rank_up"] == 1 and frame.loc["i7", "rank_up"] == 2
    assert frame.loc["i8", "score_down"] == 2.0  # every source scores every candidate
    assert got.lists["up"][key_of("u", AT)][:2] == ["i8", "i7"]


def test_an_item_both_sources_propose_counts_both() -> None:
    same = [Fixed("a", list(range(10))), Fixed("b", list(range(10)))]
    got = generate(same, ["u"], pd.DatetimeIndex([AT]), ITEMS, limits={"a": 1, "b": 1})
    assert got.frame[["item_id", "sources", "n_sources"]].values.tolist() == [["i9", "a+b", 2]]


def test_only_scores_exactly_the_given_items() -> None:
    got = generate(
        [Fixed("a", list(range(10)))],
        ["u"],
        pd.DatetimeIndex([AT]),
        ITEMS,
        limits={"a": 1},
        only=["i2", "i5"],
    )
    assert sorted(got.frame["item_id"]) == ["i2", "i5"]
    assert got.frame.set_index("item_id").loc["i2", "sources"] == ""


def test_source_recall_counts_relevant_items_in_each_list() -> None:
    frame = pd.DataFrame({"user_id": ["u", "u"], "item_id": ["i1", "i2"]})
    got = CandidateSet(frame, {"a": {key_of("u", AT): ["i1", "i3"]}})
    recall = source_recall(got, {"u": frozenset({"i1", "i2"})}, pd.Series({"u": AT}), ks=(1, 2))
    assert recall["a"] == {"recall@1": 0.5, "recall@2": 0.5}
    assert recall["union"] == {"recall": 1.0, "mean_size": 2.0}


def test_one_users_arrays_equal_the_frame_of_generate() -> None:
    rng = np.random.default_rng(0)
    sources = [Fixed(name, list(rng.normal(size=10))) for name in ("a", "b", "c")]
    sources[1]._scores[[2, 4]] = np.nan  # a source that cannot score some items
    limits = {"a": 3, "b": 2, "c": 4}
    frame = generate(
        sources, ["u"], pd.DatetimeIndex([AT]), ITEMS, exclude={"u": {"i1"}}, limits=limits
    ).frame
    arrays = generate_user(sources, "u", AT, ITEMS, exclude={"i1"}, limits=limits)
    pd.testing.assert_frame_equal(
        pd.DataFrame(arrays.columns()), frame.drop(columns=["user_id", "at"])
    )


def test_a_shortlist_keeps_the_rows_best_by_fused_rank_in_their_order() -> None:
    nan = np.nan
    ranks = np.array([[1, nan], [50, 40], [nan, 2], [300, nan], [3, 3]])
    found = UserCandidates(
        np.array(["a", "b", "c", "d", "e"], dtype=object),
        ["one", "two"],
        np.zeros(ranks.shape),
        ranks,
        np.isfinite(ranks),
    )
    short = found.shortlist(3)
    # Fused: a 1/61, b 1/110 + 1/100 (two sources beat one), c 1/62, d 1/360, e 2/63.
    assert short.item_ids.tolist() == ["a", "b", "e"]
    np.testing.assert_array_equal(short.ranks, ranks[[0, 1, 4]])
    assert found.shortlist(5) is found


@settings(max_examples=200, deadline=None)
@given(
    arrays(
        np.float64,
        array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12),
        elements=st.sampled_from([0.0, -0.0, 1.0, 2.5, -3.0, np.nan, np.inf, -np.inf]),
    ),
    st.integers(1, 15),
    st.integers(0, 2**32 - 1),
)
def test_a_batch_ranks_each_row_as_top_k_does(scores: np.ndarray, depth: int, seed: int) -> None:
    blocked_mask = np.random.default_rng(seed).random(scores.shape) < 0.2
    order, counts = ranked_columns(scores, np.nonzero(blocked_mask), depth)
    for row in range(len(scores)):
        values = np.where(np.isfinite(scores[row]), scores[row], -np.inf)
        values[blocked_mask[row]] = -np.inf
        top = top_k(values[None, :], depth)[0]
        expected = top[np.isfinite(values[top])]
        np.testing.assert_array_equal(order[row, : counts[row]], expected)


def test_the_embedding_source_scores_a_few_items_as_in_the_whole_catalog() -> None:
    rng = np.random.default_rng(2)
    matrix = rng.normal(size=(8, 4)).astype(np.float32)
    vectors = ItemVectors(np.array([f"i{n}" for n in range(8)]), matrix)
    contacts = pd.DataFrame(
        {
            "user_id": ["u", "u", "u", "w"],
            "item_id": ["i1", "i9", "i3", "i2"],  # i9 has no vector
            "ts": [AT - pd.Timedelta(hours=h) for h in (3, 2, 1, 1)],
            "weight": [1.0, 1.0, -1.0, 1.0],
        }
    )
    source = EmbeddingSource(vectors, UserHistory(contacts))
    asked = ["i9", "i3", "i1", "nothing"]
    np.testing.assert_array_equal(source.rows(asked), vectors.rows(asked))
    users, at = ["u", "w", "stranger"], pd.DatetimeIndex([AT] * 3)
    whole = source.scores(users, at, ITEMS)
    rows = np.array([9, 0, 0, 3])
    np.testing.assert_array_equal(source.scores(users, at, ITEMS, rows), whole[:, rows])
    assert np.isnan(whole[2]).all() and np.isnan(whole[:, 8:]).all()  # no taste, no vector
    saved = pickle.loads(pickle.dumps(source))
    assert not {"_catalog_columns", "_catalog_positions"} & set(vars(saved))
    np.testing.assert_array_equal(saved.scores(users, at, ITEMS, rows), whole[:, rows])
