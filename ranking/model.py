"""LightGBM lambdarank: one query group per (user, time), early stopping on later groups.

The validation slice is the groups with the latest times, so early stopping picks the number of
trees that generalizes forward in time, the way the model is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.errors import InvalidInputError
from ranking.metrics import ndcg_at_k

PARAMS: dict[str, Any] = {
    "objective": "lambdarank",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 200,
    "lambda_l2": 10.0,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambdarank_truncation_level": 50,
    "num_threads": 2,
    "seed": 0,
    "deterministic": True,
    "force_row_wise": True,
    "verbose": -1,
}
MAX_ROUNDS = 1_000
EARLY_STOPPING = 50
MAX_NEGATIVES = 100  # negatives kept per training group
# Early stopping watches NDCG@100: Recall@100 reads the order to 100, and on the validation
# groups of `engram eval` it kept 219 trees instead of 167, Recall@100 0.4399 against 0.4342 at
# NDCG@10 0.1152 against 0.1159 (bench/ranker_settings.py, docs/benchmarks.md).
STOP_AT = 100


def _sample_negatives(
    labels: np.ndarray, groups: np.ndarray, limit: int, seed: int = 0
) -> np.ndarray:
    """True for every positive and for at most `limit` random negatives per group. Pure."""
    rng = np.random.default_rng(seed)
    noise = rng.random(len(labels))
    frame = pd.DataFrame({"g": groups, "neg": labels <= 0, "noise": noise})
    order = frame[frame["neg"]].groupby("g")["noise"].rank(method="first")
    keep = ~frame["neg"].to_numpy()
    keep[order.index[order.to_numpy() <= limit]] = True
    return keep


@dataclass
class Fitted:
    """A trained booster and how its training went."""

    booster: Any
    best_iteration: int
    valid_ndcg10: float
    train_groups: int
    valid_groups: int


def group_sizes(keys: pd.Series) -> np.ndarray:
    """Sizes of consecutive runs of equal keys (rows must be grouped). Pure."""
    values = keys.to_numpy()
    if len(values) == 0:
        return np.empty(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    return np.diff(np.r_[starts, len(values)])


def valid_groups(
    groups: pd.Series, times: pd.Series, labels: np.ndarray, share: float = 0.2
) -> set[str]:
    """The groups with a positive whose time is among the latest `share`: early stopping's. Pure."""
    has_positive = pd.Series(labels > 0).groupby(groups.to_numpy()).transform("any").to_numpy()
    group_time = times[has_positive].groupby(groups[has_positive].to_numpy(), sort=False).first()
    latest = set(group_time.index[group_time > group_time.quantile(1.0 - share)])
    if not latest or len(latest) == len(group_time):
        latest = set(group_time.index[-max(1, len(group_time) // 5) :])
    return latest


def fit_lambdarank(
    matrix: pd.DataFrame,
    labels: np.ndarray,
    groups: pd.Series,
    times: pd.Series,
    valid_share: float = 0.2,
    rounds: int = MAX_ROUNDS,
    max_negatives: int = MAX_NEGATIVES,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
    stop_at: int = STOP_AT,
) -> Fitted:
    """Fit on the groups (rows grouped by `groups`) whose time is earlier, stop on the later.
    `seed` draws the sampled negatives and LightGBM's bagging and feature sampling; `params`
    override PARAMS; early stopping keeps the trees that maximize the later groups' NDCG at
    `stop_at`."""
    import lightgbm as lgb

    if not len(matrix) == len(labels) == len(groups) == len(times):
        raise InvalidInputError("matrix", "features, labels, groups and times must align")
    # Groups without a positive teach lambdarank nothing.
    has_positive = pd.Series(labels > 0).groupby(groups.to_numpy()).transform("any").to_numpy()
    if not has_positive.any():
        raise InvalidInputError("labels", "no group has a positive label")
    later = valid_groups(groups, times, labels, valid_share)
    keep = np.flatnonzero(has_positive)
    matrix, labels, groups = matrix.iloc[keep], labels[keep], groups.iloc[keep]
    is_valid = groups.isin(later).to_numpy()
    # Lambdarank's cost grows with the square of a group's size: training groups keep their
    # positives and a seeded sample of negatives; validation groups stay whole.
    sampled = _sample_negatives(labels, groups.to_numpy(), max_negatives, seed) | is_valid
    keep = np.flatnonzero(sampled)
    matrix, labels, groups, is_valid = (
        matrix.iloc[keep],
        labels[keep],
        groups.iloc[keep],
        is_valid[keep],
    )
    train = lgb.Dataset(
        matrix[~is_valid],
        labels[~is_valid],
        group=group_sizes(groups[~is_valid]),
        free_raw_data=False,
    )
    valid = lgb.Dataset(
        matrix[is_valid], labels[is_valid], group=group_sizes(groups[is_valid]), reference=train
    )
    booster = lgb.train(
        {**PARAMS, "seed": seed, "metric": "ndcg", "eval_at": [stop_at], **(params or {})},
        train,
        num_boost_round=rounds,
        valid_sets=[valid],
        valid_names=["valid"],
        callbacks=[lgb.early_stopping(EARLY_STOPPING, verbose=False)],
    )
    kept = int(booster.best_iteration or rounds)
    scores = np.asarray(booster.predict(matrix[is_valid], num_iteration=kept))
    return Fitted(
        booster,
        kept,
        mean_ndcg(scores, labels[is_valid], groups[is_valid], 10),
        groups.nunique() - len(later),
        len(later),
    )


def mean_ndcg(scores: np.ndarray, labels: np.ndarray, groups: pd.Series, k: int) -> float:
    """Mean NDCG@k of the groups ordered by score (ties: row order). Pure."""
    frame = pd.DataFrame({"group": groups.to_numpy(), "label": labels, "score": scores})
    frame = frame.reset_index(drop=True).sort_values("score", ascending=False, kind="stable")
    values = [
        ndcg_at_k(
            [str(i) for i in group.index], {str(i) for i in group.index[group["label"] > 0]}, k
        )
        for _, group in frame.groupby("group", sort=False)
    ]
    return float(np.mean(values)) if values else float("nan")


def importance(booster: Any) -> pd.Series:
    """Total gain per feature, largest first."""
    gains = booster.feature_importance(importance_type="gain")
    return pd.Series(gains, index=booster.feature_name()).sort_values(ascending=False)
