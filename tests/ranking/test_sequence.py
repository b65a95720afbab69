"""Sequential co-occurrence scores items that followed the user's recent items, before a time."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ranking.sequence import SequentialCooccurrence

T0 = pd.Timestamp("2026-01-01", tz="UTC")


def log(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    users, items, hours = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "user_id": users,
            "item_id": items,
            "ts": [T0 + pd.Timedelta(hours=h) for h in hours],
            "weight": 1.0,
        }
    )


def test_the_item_that_usually_follows_scores_highest() -> None:
    rows = [(f"u{n}", item, n * 10 + k) for n in range(5) for k, item in enumerate("abc")]
    rows += [("me", "a", 100)]
    model = SequentialCooccurrence(min_pairs=1).fit(log(rows))
    scores = model.score_batch(
        ["me"], pd.DatetimeIndex([T0 + pd.Timedelta(hours=200)]), list("abc")
    )
    assert scores[0, 1] > scores[0, 2] > 0  # b follows a at gap 1, c at gap 2
    assert scores[0, 0] == 0


def test_scores_at_a_cutoff_ignore_everything_after_it() -> None:
    rng = np.random.default_rng(3)
    rows = [(f"u{rng.integers(20)}", f"i{rng.integers(30)}", int(h)) for h in range(2_000)]
    frame = log(rows)
    cutoff = T0 + pd.Timedelta(hours=1_200)
    full = SequentialCooccurrence(min_pairs=50).fit(frame)
    # Up to the cutoff and at it: a log that ends before a cutoff scores it with all its pairs.
    past = SequentialCooccurrence(min_pairs=50).fit(frame[frame["ts"] <= cutoff])
    users = [f"u{n}" for n in range(20)]
    at = pd.DatetimeIndex([cutoff] * len(users))
    items = sorted(frame["item_id"].unique())
    assert np.allclose(
        full.score_batch(users, at, items), past.score_batch(users, at, items), equal_nan=True
    )


def test_a_cutoff_after_the_last_pair_is_scored_with_all_pairs() -> None:
    rng = np.random.default_rng(5)
    rows = [(f"u{rng.integers(20)}", f"i{rng.integers(30)}", int(h)) for h in range(2_000)]
    frame = log(rows)
    model = SequentialCooccurrence(min_pairs=50).fit(frame)
    assert model._points[-1] == len(model._when)
    everything = SequentialCooccurrence(min_pairs=10**9).fit(frame)  # one table, all pairs
    users = [f"u{n}" for n in range(20)]
    after = pd.DatetimeIndex([frame["ts"].max() + pd.Timedelta(hours=1)] * len(users))
    items = sorted(frame["item_id"].unique())
    np.testing.assert_allclose(
        model.score_batch(users, after, items), everything.score_batch(users, after, items)
    )


def test_a_few_asked_items_score_as_in_the_whole_catalog() -> None:
    rng = np.random.default_rng(5)
    rows = [(f"u{rng.integers(10)}", f"i{rng.integers(25)}", int(h)) for h in range(600)]
    model = SequentialCooccurrence(min_pairs=50).fit(log(rows))
    catalog = pd.Index([*sorted({item for _, item, _ in rows}), "unknown"])
    users = ["u1", "u4", "stranger"]
    at = pd.DatetimeIndex([T0 + pd.Timedelta(hours=h) for h in (700, 300, 500)])
    whole = model.score_batch(users, at, catalog)
    for asked in (np.array([len(catalog) - 1, 0, 3, 3]), np.array([], dtype=np.intp)):
        few = model.score_batch(users, at, catalog, asked)
        np.testing.assert_array_equal(few, whole[:, asked])
