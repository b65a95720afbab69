"""The per-user temporal split: what is held out, what counts as relevant, what a model may see."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import InvalidInputError
from ranking.split import PositiveRule, item_contacts, seen_before, temporal_split

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def log(rows: list[tuple[str, str, int, str, float]]) -> pd.DataFrame:
    """Interactions from (user, item, hour, type, value) rows."""
    return pd.DataFrame(
        {
            "user_id": [row[0] for row in rows],
            "item_id": [row[1] for row in rows],
            "ts": pd.DatetimeIndex([T0 + pd.Timedelta(hours=row[2]) for row in rows]).as_unit("us"),
            "type": [row[3] for row in rows],
            "value": [row[4] for row in rows],
            "weight": 1.0,
        }
    )


def ratings(user: str, count: int, value: float = 5.0, start: int = 0) -> list:
    return [(user, f"i{start + n}", start + n, "rate", value) for n in range(count)]


def test_the_last_fifth_of_each_users_interactions_is_held_out() -> None:
    split = temporal_split(log(ratings("u", 10)))
    assert sorted(split.test["item_id"]) == ["i8", "i9"]
    assert split.cutoffs["u"] == T0 + pd.Timedelta(hours=8)
    assert len(split.train) == 8
    assert split.relevant == {"u": frozenset({"i8", "i9"})}


def test_five_interactions_hold_out_exactly_one() -> None:
    # 0.2 * 5 is 1.0000000000000002 in floating point; a naive ceil would hold out two.
    split = temporal_split(log(ratings("u", 5)))
    assert list(split.test["item_id"]) == ["i4"]


def test_users_with_too_few_interactions_stay_whole_in_train() -> None:
    split = temporal_split(log(ratings("short", 4) + ratings("long", 5, start=100)))
    assert split.users == ["long"]
    assert (split.train["user_id"] == "short").sum() == 4
    assert split.stats.eligible_users == 1


def test_interactions_tied_with_the_cutoff_all_go_to_the_test_side() -> None:
    rows = [*ratings("u", 8), ("u", "tie", 7, "rate", 5.0), ("u", "last", 9, "rate", 5.0)]
    # Ten rows, two to hold out: "tie" and "last". "i7" shares tie's second, so it follows.
    split = temporal_split(log(rows))
    assert split.cutoffs["u"] == T0 + pd.Timedelta(hours=7)
    assert sorted(split.test["item_id"]) == ["i7", "last", "tie"]
    assert (split.train["ts"] < split.cutoffs["u"]).all()


def test_positives_are_high_ratings_and_strong_implicit_types_by_default() -> None:
    rows = [
        *ratings("u", 10, value=5.0),
        ("u", "low", 50, "rate", 3.5),
        ("u", "high", 51, "rate", 4.0),
        ("u", "viewed", 52, "view", float("nan")),
        ("u", "bought", 53, "purchase", float("nan")),
        ("u", "clicked", 54, "click", float("nan")),
    ]
    split = temporal_split(log(rows), holdout_fraction=0.3)  # 15 rows, 5 held out
    assert split.relevant["u"] == {"high", "bought", "clicked"}
    strict = temporal_split(log(rows), 0.3, positive=PositiveRule(frozenset({"purchase"}), 4.5))
    assert strict.relevant["u"] == {"bought"}


def test_users_without_a_held_out_positive_are_dropped_and_counted() -> None:
    rows = ratings("liked", 5) + ratings("disliked", 5, value=1.0, start=100)
    split = temporal_split(log(rows))
    assert split.users == ["liked"]
    assert split.stats.dropped_no_positive == 1
    assert split.stats.heldout_interactions == 2  # both users' held-out rows stay in `test`


def test_items_seen_before_the_cutoff_are_not_relevant_again() -> None:
    rows = [*ratings("u", 8), ("u", "i0", 20, "purchase", 1.0), ("u", "new", 21, "rate", 5.0)]
    split = temporal_split(log(rows))
    assert split.relevant["u"] == {"new"}
    assert "i0" in split.seen["u"]


def test_relevant_items_nobody_had_touched_before_the_cutoff_are_counted() -> None:
    rows = ratings("early", 5) + ratings("late", 9, start=100)
    rows.append(("late", "i0", 200, "rate", 5.0))  # i0 was rated by `early` long before
    split = temporal_split(log(rows))  # early: i4 held out; late: i108 and i0
    assert split.relevant == {"early": {"i4"}, "late": {"i108", "i0"}}
    # i4 and i108 had no contact before their user's cutoff; i0 had.
    assert split.stats.relevant_new_items == 2


def test_rows_without_an_item_are_not_contacts() -> None:
    rows = ratings("u", 5)
    frame = log(rows)
    frame.loc[len(frame)] = ["u", None, T0 + pd.Timedelta(hours=1), "search", np.nan, 0.0]
    assert len(item_contacts(frame)) == 5
    assert len(temporal_split(frame).history) == 5


def test_seen_before_takes_only_interactions_strictly_before_each_cutoff() -> None:
    frame = log([("u", "a", 1, "view", np.nan), ("u", "b", 2, "view", np.nan)])
    frame = pd.concat([frame, log([("v", "c", 1, "view", np.nan)])])
    at = T0 + pd.Timedelta(hours=2)
    assert seen_before(frame, ["u", "v", "w"], [at, at, at]) == {
        "u": frozenset({"a"}),
        "v": frozenset({"c"}),
        "w": frozenset(),
    }


def test_invalid_arguments_are_refused() -> None:
    frame = log(ratings("u", 5))
    with pytest.raises(InvalidInputError):
        temporal_split(frame, holdout_fraction=1.0)
    with pytest.raises(InvalidInputError):
        temporal_split(frame, min_interactions=1)
    with pytest.raises(InvalidInputError):
        temporal_split(frame.assign(ts=frame["ts"].dt.tz_localize(None)))
    with pytest.raises(InvalidInputError):
        temporal_split(frame.drop(columns="weight"))


row_strategy = st.tuples(
    st.sampled_from(["u1", "u2", "u3", "u4"]),
    st.sampled_from([f"i{n}" for n in range(8)]),
    st.integers(0, 20),
    st.sampled_from(["rate", "view", "click"]),
    st.sampled_from([1.0, 3.0, 4.0, 5.0]),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(row_strategy, min_size=1, max_size=60), st.sampled_from([0.2, 0.3, 0.5]))
def test_train_and_test_partition_the_log_around_each_users_cutoff(
    rows: list[tuple[str, str, int, str, float]], fraction: float
) -> None:
    frame = log(rows)
    split = temporal_split(frame, holdout_fraction=fraction)
    assert len(split.train) + len(split.test) == len(split.history) == len(frame)
    sizes = frame.groupby("user_id").size()
    for user, size in sizes.items():
        own_train = split.train[split.train["user_id"] == user]
        own_test = split.test[split.test["user_id"] == user]
        if size < 5:
            assert own_test.empty
            continue
        cutoff = own_test["ts"].min()
        assert (own_train["ts"] < cutoff).all()
        # At least the fraction is held out, more only by ties at the cutoff.
        at_least = int(np.ceil(round(size * fraction, 9)))
        assert len(own_test) >= at_least
        assert len(own_test) - (own_test["ts"] == cutoff).sum() < at_least
        if user in split.relevant:
            assert split.cutoffs[user] == cutoff
            assert split.seen[user] == set(own_train["item_id"])
            assert split.relevant[user] <= set(own_test["item_id"]) - split.seen[user]
    assert split.history["ts"].is_monotonic_increasing
