"""Lambdarank learns which candidates come first, stopping on the later groups."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ranking.model import (
    _sample_negatives,
    fit_lambdarank,
    group_sizes,
    importance,
    mean_ndcg,
    valid_groups,
)


def test_group_sizes_are_runs_of_equal_keys() -> None:
    assert group_sizes(pd.Series(["a", "a", "b", "c", "c", "c"])).tolist() == [2, 1, 3]


def test_negative_sampling_keeps_every_positive() -> None:
    labels = np.asarray([1, 0, 0, 0, 0, 1, 0, 0])
    groups = np.asarray(["a"] * 5 + ["b"] * 3)
    keep = _sample_negatives(labels, groups, 2)
    assert keep[labels == 1].all()
    assert keep[:5].sum() == 3 and keep[5:].sum() == 3


def test_it_ranks_the_planted_signal_first() -> None:
    rng = np.random.default_rng(0)
    groups, n = 200, 30
    signal = rng.random(groups * n)
    labels = (signal + 0.1 * rng.random(groups * n) > 0.9).astype(int)
    matrix = pd.DataFrame({"signal": signal, "noise": rng.random(groups * n)})
    keys = pd.Series(np.repeat([f"g{g:03d}" for g in range(groups)], n))
    times = pd.Series(np.repeat(pd.date_range("2026-01-01", periods=groups, tz="UTC"), n))
    fitted = fit_lambdarank(matrix, labels, keys, times, rounds=50)
    assert fitted.valid_groups > 0 and fitted.valid_ndcg10 > 0.9
    assert importance(fitted.booster).index[0] == "signal"


def test_early_stopping_reads_the_latest_groups_that_have_a_positive() -> None:
    keys = pd.Series([f"g{g}" for g in range(10) for _ in range(2)])
    times = pd.Series(np.repeat(pd.date_range("2026-01-01", periods=10, tz="UTC"), 2))
    labels = np.tile([1, 0], 10)
    labels[18] = 0  # the latest group, g9, has no positive
    assert valid_groups(keys, times, labels, share=0.25) == {"g7", "g8"}


def test_mean_ndcg_orders_each_group_by_score() -> None:
    scores = np.asarray([0.9, 0.1, 0.2, 0.8])
    labels = np.asarray([1, 0, 1, 0])
    groups = pd.Series(["a", "a", "b", "b"])
    # a: the positive first (1.0); b: the positive second (1 / log2(3)).
    assert mean_ndcg(scores, labels, groups, 10) == pytest.approx((1 + 1 / np.log2(3)) / 2)
