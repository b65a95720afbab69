"""Top-k ranking metrics with binary relevance, computed per user and averaged over users.

Conventions, the usual ones for top-k recommendation:
- NDCG@k: gain 1 for a relevant item at rank r (1-based) discounted by log2(r + 1); the ideal
  ranking puts min(k, |relevant|) relevant items first.
- Recall@k: relevant items in the top k over all relevant items (|relevant|, not min(k, ...)).
- MRR: reciprocal rank of the first relevant item in the whole list given (the lists `evaluate`
  receives are max(ks) long), 0 when none is there.
- Coverage@k: distinct items in the evaluated users' top k over the catalog size.
Users are those in `relevant`; a user with no recommendations scores 0 on every metric.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set

import numpy as np
import pandas as pd

from core.errors import InvalidInputError

DEFAULT_KS: tuple[int, ...] = (10, 100)


def dcg_discounts(k: int) -> np.ndarray:
    """1 / log2(rank + 1) for ranks 1..k."""
    return np.asarray(1.0 / np.log2(np.arange(2, k + 2)), dtype=float)


def ndcg_at_k(recommended: Sequence[str], relevant: Set[str], k: int) -> float:
    """NDCG@k of one ranked list with binary relevance; 0 when nothing is relevant."""
    if not relevant:
        return 0.0
    discounts = dcg_discounts(k)
    hits = np.fromiter((item in relevant for item in recommended[:k]), dtype=bool)
    dcg = float(discounts[: len(hits)][hits].sum())
    return dcg / float(discounts[: min(k, len(relevant))].sum())


def recall_at_k(recommended: Sequence[str], relevant: Set[str], k: int) -> float:
    """Share of the relevant items found in the top k; 0 when nothing is relevant."""
    if not relevant:
        return 0.0
    return sum(1 for item in recommended[:k] if item in relevant) / len(relevant)


def reciprocal_rank(recommended: Sequence[str], relevant: Set[str]) -> float:
    """1 / rank of the first relevant item in the list, 0 when there is none."""
    for rank, item in enumerate(recommended, start=1):
        if item in relevant:
            return 1.0 / rank
    return 0.0


def coverage_at_k(
    recommendations: Mapping[str, Sequence[str]], users: Sequence[str], k: int, catalog_size: int
) -> float:
    """Distinct items in the given users' top k, as a share of the catalog."""
    if catalog_size <= 0:
        raise InvalidInputError("catalog_size", f"must be positive, got {catalog_size}")
    distinct = {item for user in users for item in recommendations.get(user, ())[:k]}
    return len(distinct) / catalog_size


def per_user_metrics(
    recommendations: Mapping[str, Sequence[str]],
    relevant: Mapping[str, Set[str]],
    ks: Sequence[int] = DEFAULT_KS,
) -> pd.DataFrame:
    """One row per user in `relevant` (sorted): ndcg@k and recall@k for every k, and mrr."""
    ks = _checked_ks(ks)
    users = sorted(relevant)
    rows: dict[str, list[float]] = {f"{name}@{k}": [] for k in ks for name in ("ndcg", "recall")}
    rows["mrr"] = []
    for user in users:
        recommended = _checked_list(user, recommendations.get(user, ()))
        items = relevant[user]
        for k in ks:
            rows[f"ndcg@{k}"].append(ndcg_at_k(recommended, items, k))
            rows[f"recall@{k}"].append(recall_at_k(recommended, items, k))
        rows["mrr"].append(reciprocal_rank(recommended, items))
    return pd.DataFrame(rows, index=pd.Index(users, name="user_id"))


def evaluate(
    recommendations: Mapping[str, Sequence[str]],
    relevant: Mapping[str, Set[str]],
    catalog_size: int,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, float]:
    """Means over the users in `relevant`: ndcg@ks[0], recall@k per k, mrr, coverage@ks[0]."""
    ks = _checked_ks(ks)
    if not relevant:
        raise InvalidInputError("relevant", "no user to evaluate")
    table = per_user_metrics(recommendations, relevant, ks)
    means = table.mean()
    result = {f"ndcg@{ks[0]}": float(means[f"ndcg@{ks[0]}"])}
    result.update({f"recall@{k}": float(means[f"recall@{k}"]) for k in ks})
    result["mrr"] = float(means["mrr"])
    result["coverage"] = coverage_at_k(recommendations, list(table.index), ks[0], catalog_size)
    return result


def _checked_ks(ks: Sequence[int]) -> tuple[int, ...]:
    if not ks or any(k < 1 for k in ks):
        raise InvalidInputError("ks", f"must be positive cutoffs, got {list(ks)}")
    return tuple(ks)


def _checked_list(user: str, recommended: Sequence[str]) -> Sequence[str]:
    # A repeated item would be counted twice as a hit and inflate every metric.
    if len(set(recommended)) != len(recommended):
        raise InvalidInputError("recommendations", f"user {user!r} has repeated items")
    return recommended
