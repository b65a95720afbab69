"""A feature service read through the fast path equals get_online_features with the service,
on-demand views and request fields included, on Engram's own feature repo."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from core.errors import InvalidInputError
from core.stores.online.read_service import ServiceReader
from pipelines.catalog_store import catalog_path
from tests.feature_home import AS_OF, FeatureHome


def candidates(home: FeatureHome, n: int) -> tuple[list[str], list[str | None]]:
    """n catalog items and their categories, with an unknown item and blank categories."""
    catalog = pd.read_parquet(catalog_path(home.settings)).head(n - 1)
    items = [*catalog["item_id"], "no-such-item"]
    categories: list[str | None] = [*catalog["category"], None]
    categories[1], categories[2] = "", "not-a-category"
    return items, categories


def feast_ranking(home: FeatureHome, users: list[str], items: list[str], categories: list) -> dict:
    rows = [
        {"user_id": u, "item_id": i, "item_category": c}
        for u, i, c in zip(users, items, categories, strict=True)
    ]
    service = home.store.get_feature_service("ranking")
    return home.store.get_online_features(features=service, entity_rows=rows).to_dict()


def test_the_ranking_service_reads_like_feast_for_a_user_and_100_items(
    home: FeatureHome, ranking: ServiceReader
) -> None:
    user = home.snapshots("user").sort_values("events_all")["user_id"].iloc[-1]
    items, categories = candidates(home, 100)
    got = ranking.read({"user_id": [user], "item_id": items}, {"item_category": categories})
    expected = feast_ranking(home, [user] * 100, items, categories)
    assert got.to_dict() == expected
    assert 0 < sum(expected["category_match"]) < 100  # the request feature does vary
    matrix = got.matrix()
    assert matrix.shape == (100, len(ranking.plan.outputs))
    for j, name in enumerate(ranking.plan.outputs):
        column = [np.nan if v is None else float(v) for v in expected[name]]
        np.testing.assert_array_equal(matrix[:, j], column, err_msg=name)


def test_rows_may_pair_many_users_with_many_items(
    home: FeatureHome, ranking: ServiceReader
) -> None:
    users = ["u000000", "u000001", "nobody"]
    items, categories = candidates(home, 3)
    got = ranking.read({"user_id": users, "item_id": items}, {"item_category": categories})
    assert got.to_dict() == feast_ranking(home, users, items, categories)


def test_a_view_older_than_its_ttl_is_missing_only_when_enforced(
    home: FeatureHome, ranking: ServiceReader
) -> None:
    user, later = "u000000", AS_OF + timedelta(days=2)  # every row was written at AS_OF
    kept = ranking.read({"user_id": [user]}, on_demand=False, now=later)
    fresh = ranking.read({"user_id": [user]}, on_demand=False, now=later, enforce_ttl=True)
    # Feast's online read never looks at the ttl: it serves the 1-day window two days on.
    feast = home.store.get_online_features(
        features=["user_1d:events_1d"], entity_rows=[{"user_id": user}]
    ).to_dict()
    assert feast["events_1d"] == kept.values("events_1d") != [None]
    assert fresh.values("events_1d") == fresh.values("weighted_1d") == [None]
    for name in ("events_7d", "events_30d", "events_all"):  # ttl 7 and 30 days, none
        assert fresh.values(name) == kept.values(name) != [None]


def test_a_service_read_needs_its_keys_and_request_fields(ranking: ServiceReader) -> None:
    with pytest.raises(InvalidInputError, match="item_id"):
        ranking.read({"user_id": ["u000000"]}, {"item_category": ["x"]})
    with pytest.raises(InvalidInputError, match="item_category"):
        ranking.read({"user_id": ["u000000"], "item_id": ["i000001"]})
    with pytest.raises(InvalidInputError, match="give 1 or 3"):
        ranking.read({"user_id": ["a", "b"], "item_id": ["x", "y", "z"]}, {"item_category": [""]})
    only_user = ranking.read({"user_id": ["u000000"]}, on_demand=False)
    assert "category_match" not in only_user.names and "events_all" in only_user.names
