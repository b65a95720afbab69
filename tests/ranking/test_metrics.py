"""Ranking metrics: hand-worked cases, sklearn's NDCG and a brute-force reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import ndcg_score

from core.errors import InvalidInputError
from ranking.metrics import (
    coverage_at_k,
    evaluate,
    ndcg_at_k,
    per_user_metrics,
    recall_at_k,
    reciprocal_rank,
)

CATALOG = [f"i{n}" for n in range(12)]


def reference_ndcg(recommended: list[str], relevant: set[str], k: int) -> float:
    """NDCG@k written out from its definition."""
    dcg = sum(
        1 / math.log2(rank + 1)
        for rank, item in enumerate(recommended[:k], start=1)
        if item in relevant
    )
    ideal = sum(1 / math.log2(rank + 1) for rank in range(1, min(k, len(relevant)) + 1))
    return dcg / ideal if ideal else 0.0


def reference_recall(recommended: list[str], relevant: set[str], k: int) -> float:
    return len(set(recommended[:k]) & relevant) / len(relevant) if relevant else 0.0


def reference_rr(recommended: list[str], relevant: set[str]) -> float:
    ranks = [rank for rank, item in enumerate(recommended, start=1) if item in relevant]
    return 1 / min(ranks) if ranks else 0.0


def test_hand_worked_values() -> None:
    recommended = ["a", "b", "c", "d"]
    assert ndcg_at_k(recommended, {"b"}, 10) == pytest.approx(1 / math.log2(3))
    assert ndcg_at_k(recommended, {"a", "z"}, 10) == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert ndcg_at_k(recommended, {"d"}, 3) == 0.0
    assert recall_at_k(recommended, {"a", "c", "z", "y"}, 2) == 0.25
    assert reciprocal_rank(recommended, {"c", "d"}) == pytest.approx(1 / 3)
    assert reciprocal_rank(recommended, {"z"}) == 0.0


def test_recall_divides_by_all_relevant_items_even_beyond_k() -> None:
    relevant = {f"i{n}" for n in range(20)}
    assert recall_at_k(sorted(relevant)[:10], relevant, 10) == 0.5


def test_evaluate_averages_over_the_users_with_relevant_items() -> None:
    recommendations = {"u": ["a", "b"], "v": ["c", "a"], "not_evaluated": ["x", "y"]}
    relevant = {"u": {"a"}, "v": {"a"}, "no_recs": {"a"}}
    result = evaluate(recommendations, relevant, catalog_size=10, ks=(1, 2))
    assert set(result) == {"ndcg@1", "recall@1", "recall@2", "mrr", "coverage"}
    assert result["recall@1"] == pytest.approx(1 / 3)
    assert result["recall@2"] == pytest.approx(2 / 3)
    assert result["mrr"] == pytest.approx((1 + 0.5 + 0) / 3)
    # Coverage at the first k counts only evaluated users: a and c, out of 10.
    assert result["coverage"] == pytest.approx(0.2)


def test_evaluate_has_the_issue_keys_by_default() -> None:
    result = evaluate({"u": ["a"]}, {"u": {"a"}}, catalog_size=5)
    assert set(result) == {"ndcg@10", "recall@10", "recall@100", "mrr", "coverage"}
    assert result["ndcg@10"] == result["recall@100"] == result["mrr"] == 1.0


def test_repeated_items_and_bad_arguments_are_refused() -> None:
    with pytest.raises(InvalidInputError):
        evaluate({"u": ["a", "a"]}, {"u": {"a"}}, catalog_size=5)
    with pytest.raises(InvalidInputError):
        evaluate({"u": ["a"]}, {}, catalog_size=5)
    with pytest.raises(InvalidInputError):
        evaluate({"u": ["a"]}, {"u": {"a"}}, catalog_size=5, ks=(0,))
    with pytest.raises(InvalidInputError):
        coverage_at_k({"u": ["a"]}, ["u"], 10, catalog_size=0)


ranked = st.lists(st.sampled_from(CATALOG), unique=True, max_size=12)
relevant_sets = st.sets(st.sampled_from(CATALOG), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(ranked, relevant_sets, st.integers(1, 12))
def test_metrics_match_the_brute_force_reference(
    recommended: list[str], relevant: set[str], k: int
) -> None:
    assert ndcg_at_k(recommended, relevant, k) == pytest.approx(
        reference_ndcg(recommended, relevant, k)
    )
    assert recall_at_k(recommended, relevant, k) == pytest.approx(
        reference_recall(recommended, relevant, k)
    )
    assert reciprocal_rank(recommended, relevant) == pytest.approx(
        reference_rr(recommended, relevant)
    )


@settings(max_examples=200, deadline=None)
@given(st.permutations(CATALOG), relevant_sets, st.integers(1, 12), st.integers(0, 12))
def test_ndcg_matches_sklearn_when_the_list_fills_the_top_k(
    order: list[str], relevant: set[str], k: int, extra: int
) -> None:
    recommended = order[: min(len(order), k + extra)]
    # Unlisted items score 0, below every listed one; they never reach the top k here.
    scores = np.zeros(len(CATALOG))
    for rank, item in enumerate(recommended):
        scores[CATALOG.index(item)] = len(CATALOG) - rank
    truth = np.array([[item in relevant for item in CATALOG]], dtype=float)
    expected = ndcg_score(truth, scores[None, :], k=k)
    assert ndcg_at_k(recommended, relevant, k) == pytest.approx(expected)


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["u1", "u2", "u3"]), ranked, max_size=3),
    st.dictionaries(st.sampled_from(["u1", "u2", "u3", "u4"]), relevant_sets, min_size=1),
)
def test_evaluate_is_the_mean_of_the_per_user_references(
    recommendations: dict[str, list[str]], relevant: dict[str, set[str]]
) -> None:
    result = evaluate(recommendations, relevant, catalog_size=len(CATALOG), ks=(3, 6))
    users = sorted(relevant)
    lists = [recommendations.get(user, []) for user in users]
    assert result["ndcg@3"] == pytest.approx(
        np.mean([reference_ndcg(r, relevant[u], 3) for u, r in zip(users, lists, strict=True)])
    )
    assert result["recall@6"] == pytest.approx(
        np.mean([reference_recall(r, relevant[u], 6) for u, r in zip(users, lists, strict=True)])
    )
    assert result["mrr"] == pytest.approx(
        np.mean([reference_rr(r, relevant[u]) for u, r in zip(users, lists, strict=True)])
    )
    assert result["coverage"] == pytest.approx(
        len({item for r in lists for item in r[:3]}) / len(CATALOG)
    )
    table = per_user_metrics(recommendations, relevant, ks=(3, 6))
    assert list(table.index) == users
