"""Lambdarank learns which candidates come first, stopping on the later groups."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ranking.model import _sample_negatives, fit_lambdarank, group_sizes, importance


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
