"""The model matrix: source, user x item, request and service features, as of each row's time."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ranking.baselines import to_micros
from ranking.features import (
    CONTEXT_FEATURES,
    Context,
    UserMemories,
    assemble,
    assemble_user,
    feature_names,
)
from ranking.history import UserHistory
from ranking.item_vectors import ItemVectors

T0 = pd.Timestamp("2026-01-01 09:00", tz="UTC")
DAY = pd.Timedelta(days=1)


def unit(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


VECTORS = ItemVectors(
    np.asarray(["a", "b", "c", "d"], dtype=object),
    np.vstack([unit(1, 0, 0), unit(1, 0.1, 0), unit(0, 1, 0), unit(0, 0, 1)]),
)
CATEGORIES = pd.Series({"a": "x", "b": "x", "c": "y", "d": "z"})


def context(memories: dict[str, UserMemories] | None = None) -> Context:
    log = pd.DataFrame(
        {
            "user_id": ["u", "u", "u"],
            "item_id": ["a", "c", "d"],
            "ts": [T0, T0 + DAY, T0 + 5 * DAY],  # d comes after the rows' time: never seen
            "weight": [1.0, -1.0, 1.0],
        }
    )
    return Context(VECTORS, UserHistory(log), CATEGORIES, memories or {})


def rows(items: list[str], at: pd.Timestamp) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": "u",
            "at": at,
            "item_id": items,
            "n_sources": 1,
            "score_s": np.arange(len(items), dtype=float),
            "rank_s": np.arange(1, len(items) + 1),
        }
    )


def test_columns_follow_the_feature_list_and_rows_keep_their_order() -> None:
    frame = rows(["b", "c"], T0 + 3 * DAY)
    service = pd.DataFrame({"item_events_all": [5, None]})
    got = assemble(frame, service, context(), ["s"], ["item_events_all"])
    assert list(got.columns) == feature_names(["s"], ["item_events_all"])
    assert got["score_s"].tolist() == [0.0, 1.0]
    assert got["item_events_all"].tolist()[0] == 5 and np.isnan(got["item_events_all"].iloc[1])


def test_user_item_features_use_only_contacts_before_the_time() -> None:
    at = T0 + 3 * DAY
    got = assemble(rows(["b", "c"], at), pd.DataFrame(index=range(2)), context(), ["s"], [])
    b, c = got.iloc[0], got.iloc[1]
    assert b["user_contacts"] == 2  # a and c; d is later
    assert b["days_since_category"] == 3.0  # a, same category x, 3 days before
    assert c["days_since_category"] == 2.0  # c itself, 2 days before
    assert b["days_since_similar"] == 3.0 and b["sim_recent_max"] > 0.99
    assert c["sim_dislike"] > 0.99  # c was rated low
    assert b["sim_taste"] > 0.99  # the taste is a (the liked item), d is not yet known
    assert b["hour_of_day"] == 9.0 and b["days_since_last_contact"] == 2.0
    assert np.isnan(b["sim_pref_memory"])


def test_memories_feed_their_similarities() -> None:
    memories = {"u": UserMemories(preferences=unit(0, 0, 1)[None, :])}
    got = assemble(
        rows(["d"], T0 + DAY / 2), pd.DataFrame(index=range(1)), context(memories), ["s"], []
    )
    assert got["sim_pref_memory"].iloc[0] > 0.99
    assert set(CONTEXT_FEATURES) <= set(got.columns)


def test_the_serving_path_equals_assemble_on_the_same_inputs() -> None:
    memories = {
        "u": UserMemories(preferences=unit(0, 0, 1)[None, :], dislikes=unit(0, 1, 0)[None, :])
    }
    ctx = context(memories)
    at = T0 + 3 * DAY + pd.Timedelta(hours=5, microseconds=7)
    items = ["b", "c", "d", "a", "unknown"]
    frame = rows(items, at).assign(n_sources=[1, 2, 1, 3, 1])
    service = pd.DataFrame({"f": [5.0, None, 1.5, 2.0, None]})
    expected = assemble(frame, service, ctx, ["s"], ["f"])
    got = assemble_user(
        ctx,
        "u",
        int(to_micros([at])[0]),
        items,
        frame[["score_s"]].to_numpy(float),
        frame[["rank_s"]].to_numpy(float),
        frame["n_sources"].to_numpy(float),
        service.to_numpy(float),
    )
    assert got.flags.c_contiguous and got.shape == expected.shape
    assert np.array_equal(got, expected.to_numpy(), equal_nan=True)
    assert expected["hour_of_day"].iloc[0] == 14.0 and expected["day_of_week"].iloc[0] == 6.0
    # A user with no contacts yet, and one the log has never seen.
    for user, moment in (("u", T0 - DAY), ("nobody", at)):
        frame = rows(items, moment).assign(user_id=user)
        expected = assemble(frame, service, ctx, ["s"], ["f"])
        got = assemble_user(
            ctx,
            user,
            int(to_micros([moment])[0]),
            items,
            frame[["score_s"]].to_numpy(float),
            frame[["rank_s"]].to_numpy(float),
            frame["n_sources"].to_numpy(float),
            service.to_numpy(float),
        )
        assert np.array_equal(got, expected.to_numpy(), equal_nan=True)


def test_rows_of_several_users_and_times_are_computed_per_group() -> None:
    ctx = context()
    early, late = rows(["b", "c"], T0 + DAY / 2), rows(["b", "c"], T0 + 3 * DAY)
    both = pd.concat([late, early.assign(user_id="v"), early], ignore_index=True)
    got = assemble(both, pd.DataFrame(index=range(6)), ctx, ["s"], [])
    alone = [
        assemble(f, pd.DataFrame(index=range(2)), ctx, ["s"], [])
        for f in (late, early.assign(user_id="v"), early)
    ]
    assert np.array_equal(got.to_numpy(), pd.concat(alone).to_numpy(), equal_nan=True)
