"""LightGBM lambdarank: one query group per (user, time), early stopping on later groups.

The validation slice is the groups with the latest times, so early stopping picks the number of
trees that generalizes forward in time, the way the model is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.errors import InvalidInputError

PARAMS: dict[str, Any] = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "eval_at": [10, 100],
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


def fit_lambdarank(
    matrix: pd.DataFrame,
    labels: np.ndarray,
    groups: pd.Series,
    times: pd.Series,
    valid_share: float = 0.2,
    rounds: int = MAX_ROUNDS,
    max_negatives: int = MAX_NEGATIVES,
    seed: int = 0,
) -> Fitted:
    """Fit on the groups (rows grouped by `groups`) whose time is earlier, stop on the later.
    `seed` draws the sampled negatives and LightGBM's bagging and feature sampling."""
    import lightgbm as lgb

    if not len(matrix) == len(labels) == len(groups) == len(times):
        raise InvalidInputError("matrix", "features, labels, groups and times must align")
    # Groups without a positive teach lambdarank nothing.
    has_positive = pd.Series(labels > 0).groupby(groups.to_numpy()).transform("any").to_numpy()
    if not has_positive.any():
        raise InvalidInputError("labels", "no group has a positive label")
    keep = np.flatnonzero(has_positive)
    matrix, labels = matrix.iloc[keep], labels[keep]
    groups, times = groups.iloc[keep], times.iloc[keep]
    group_time = times.groupby(groups.to_numpy(), sort=False).first()
    threshold = group_time.quantile(1.0 - valid_share)
    valid_groups = set(group_time.index[group_time > threshold])
    if not valid_groups or len(valid_groups) == len(group_time):
        valid_groups = set(group_time.index[-max(1, len(group_time) // 5) :])
    is_valid = groups.isin(valid_groups).to_numpy()
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
        {**PARAMS, "seed": seed},
        train,
        num_boost_round=rounds,
        valid_sets=[valid],
        valid_names=["valid"],
        callbacks=[lgb.early_stopping(EARLY_STOPPING, verbose=False)],
    )
    score = booster.best_score.get("valid", {}).get("ndcg@10", float("nan"))
    return Fitted(
        booster,
        int(booster.best_iteration or rounds),
        float(score),
        len(group_time) - len(valid_groups),
        len(valid_groups),
    )


def importance(booster: Any) -> pd.Series:
    """Total gain per feature, largest first."""
    gains = booster.feature_importance(importance_type="gain")
    return pd.Series(gains, index=booster.feature_name()).sort_values(ascending=False)
