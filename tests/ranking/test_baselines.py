"""Baseline recommenders: as-of counts, exclusions, tie order, and what each model may see."""

from __future__ import annotations

import pickle
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import InvalidInputError
from ranking.baselines import (
    ALS,
    EASE,
    GlobalPopularity,
    ItemKNN,
    Popularity,
    RecentPopularity,
    Recommender,
    _column_product,
    _pruned_cosine,
    _row_product,
    _solve_users,
    catalog_positions,
    rows_product,
    top_k,
)

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def at(day: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=day)


def log(rows: list[tuple[str, str, float]], weight: float = 1.0) -> pd.DataFrame:
    """Interactions from (user, item, day) rows."""
    return pd.DataFrame(
        {
            "user_id": [row[0] for row in rows],
            "item_id": [row[1] for row in rows],
            "ts": pd.DatetimeIndex([at(row[2]) for row in rows]).as_unit("us"),
            "type": "view",
            "value": np.nan,
            "weight": weight,
        }
    )


def clustered_log(users_per_group: int = 12) -> pd.DataFrame:
    """Two tastes: group a touches items a0..a5, group b touches b0..b5, over days 0..59."""
    rng = np.random.default_rng(7)
    rows = []
    for group in ("a", "b"):
        for n in range(users_per_group):
            for item in rng.permutation(6)[:4]:
                rows.append((f"{group}{n}", f"{group}{item}", float(rng.integers(0, 60))))
    # b's items are the more popular ones overall: 20 fans each, more than any a item has.
    rows += [(f"fan{n}", f"b{n % 6}", 30.0) for n in range(120)]
    return log(rows)


# top_k


def test_top_k_orders_by_score_then_tiebreak_then_column() -> None:
    scores = np.array([[1.0, 3.0, 3.0, 2.0, 3.0]])
    assert top_k(scores, 3)[0].tolist() == [1, 2, 4]
    tiebreak = np.array([0.0, 0.0, 1.0, 0.0, 5.0])
    assert top_k(scores, 3, tiebreak)[0].tolist() == [4, 2, 1]


def test_top_k_never_returns_excluded_items() -> None:
    scores = np.array([[1.0, -np.inf, 0.0, -np.inf]])
    assert top_k(scores, 10)[0].tolist() == [0, 2]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from([-np.inf, 0.0, 1.0, 2.0, 2.5]), min_size=6, max_size=6),
        min_size=1,
        max_size=4,
    ),
    st.lists(st.sampled_from([0.0, 1.0, 2.0]), min_size=6, max_size=6),
    st.integers(1, 8),
)
def test_top_k_matches_a_full_sort(rows: list[list[float]], tiebreak: list[float], k: int) -> None:
    scores = np.array(rows)
    ties = np.array(tiebreak)
    for row, got in zip(scores, top_k(scores, k, ties), strict=True):
        expected = sorted(
            (column for column in range(6) if np.isfinite(row[column])),
            key=lambda column: (-row[column], -ties[column], column),
        )[:k]
        assert got.tolist() == expected


# Popularity


def test_popularity_counts_only_events_before_each_users_cutoff() -> None:
    rows = [(f"u{n}", "old_hit", 1.0) for n in range(3)]
    rows += [(f"v{n}", "new_hit", 10.0 + n) for n in range(5)]
    model = GlobalPopularity().fit(log(rows))
    recs = model.recommend(["early", "late"], [at(5), at(20)], k=2)
    assert recs == {"early": ["old_hit"], "late": ["new_hit", "old_hit"]}
    assert model.score("early", ["old_hit", "new_hit"], at(12)).tolist() == [3, 2]
    # Never fitted, or nobody had touched it yet: no score.
    assert np.isnan(model.score("early", ["unknown", "new_hit"], at(5))).all()
    batch = model.score_batch(["early", "late"], [at(5), at(20)], ["new_hit", "old_hit"])
    np.testing.assert_array_equal(batch, [[np.nan, 3], [5, 3]])


def test_an_event_at_the_cutoff_is_not_before_it() -> None:
    model = GlobalPopularity().fit(log([("u", "a", 1.0), ("u", "b", 2.0)]))
    assert model.recommend(["x"], [at(2)], k=5) == {"x": ["a"]}


def test_recent_popularity_counts_the_window_and_breaks_ties_by_all_time_counts() -> None:
    rows = [(f"u{n}", "classic", 1.0) for n in range(5)]
    rows += [("v", "fresh", 50.0), ("v", "fresh", 51.0), ("w", "classic", 52.0)]
    rows += [("w", "filler", 2.0)]
    model = RecentPopularity(window=pd.Timedelta(days=30)).fit(log(rows))
    # In the window: fresh 2, classic 1; filler 0 but known, after classic on ties.
    assert model.recommend(["x"], [at(60)], k=3) == {"x": ["fresh", "classic", "filler"]}
    # Past the window of everything: all tie at 0 and all-time counts decide.
    assert model.recommend(["x"], [at(200)], k=2) == {"x": ["classic", "fresh"]}


def test_exclusions_are_honoured() -> None:
    rows = [("u", "a", 1.0), ("v", "a", 1.0), ("u", "b", 1.0)]
    model = GlobalPopularity().fit(log(rows))
    assert model.recommend(["x"], [at(3)], k=5, exclude={"x": {"a", "never_fitted"}}) == {
        "x": ["b"]
    }


day_rows = st.lists(
    st.tuples(st.sampled_from(["u", "v", "w"]), st.sampled_from(list("abcde")), st.integers(0, 40)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(
    day_rows,
    st.lists(st.integers(0, 45), min_size=1, max_size=6),
    st.sampled_from([None, 7, 20]),
    st.sampled_from([None, 5.0]),
)
def test_as_of_scores_match_brute_force_counts(
    rows: list[tuple[str, str, int]],
    cutoff_days: list[int],
    window_days: int | None,
    half_life_days: float | None,
) -> None:
    frame = log([(user, item, float(day)) for user, item, day in rows])
    model = Popularity(
        window=None if window_days is None else pd.Timedelta(days=window_days),
        half_life=None if half_life_days is None else pd.Timedelta(days=half_life_days),
    ).fit(frame)
    cutoffs = [at(day) for day in cutoff_days]
    scores, _ = model._scores(["x"] * len(cutoffs), pd.DatetimeIndex(cutoffs).as_unit("us").asi8)
    for row, day in enumerate(cutoff_days):
        for column, item in enumerate(model.items):
            ages = [
                day - d
                for _, i, d in rows
                if i == item and d < day and (window_days is None or d >= day - window_days)
            ]
            decay = 1.0 if half_life_days is None else 0.5 ** (np.array(ages) / half_life_days)
            expected = float(np.sum(np.ones(len(ages)) * decay))
            if not any(i == item and d < day for _, i, d in rows):
                expected = -np.inf  # unknown at that time
            assert scores[row, column] == pytest.approx(expected, abs=1e-9)


# Item-kNN and ALS


def test_pruned_cosine_is_the_cosine_without_self_when_nothing_is_pruned() -> None:
    rng = np.random.default_rng(3)
    dense = (rng.random((15, 9)) < 0.4).astype(float)
    dense[:, 4] = 0.0  # an item nobody touched has no neighbours
    got = _pruned_cosine(sp.csr_matrix(dense), neighbors=50, block=4).toarray()
    norms = np.sqrt(dense.sum(axis=0))
    safe = np.where(norms > 0, norms, 1.0)
    expected = (dense.T @ dense) / np.outer(safe, safe)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(got, expected, atol=1e-12)
    pruned = _pruned_cosine(sp.csr_matrix(dense), neighbors=2, block=4)
    assert max(np.diff(pruned.indptr)) <= 2


@pytest.mark.parametrize(
    "model",
    [
        ItemKNN(neighbors=5),
        ItemKNN(retrain_growth=0.5, min_events=20),
        ALS(factors=4),
        EASE(regularization=5.0),
    ],
    ids=["item_knn", "item_knn_asof", "als", "ease"],
)
def test_collaborative_models_recommend_within_the_users_taste(
    model: ItemKNN | ALS | EASE,
) -> None:
    frame = clustered_log()
    model.fit(frame)
    users = ["a0", "a1", "b0"]
    cutoffs = [at(100)] * 3
    seen = {user: set(frame.loc[frame["user_id"] == user, "item_id"]) for user in users}
    recs = model.recommend(users, cutoffs, k=2, exclude=seen)
    for user in users:
        assert recs[user], user
        assert all(item[0] == user[0] for item in recs[user]), (user, recs[user])
        assert not set(recs[user]) & seen[user]


def test_users_without_history_get_popular_items() -> None:
    frame = clustered_log()
    for model in (ItemKNN(), ALS(factors=4)):
        recs = model.fit(frame).recommend(["stranger"], [at(100)], k=6)
        assert sorted(recs["stranger"]) == [f"b{n}" for n in range(6)], model.name


def test_als_is_deterministic_for_a_seed() -> None:
    frame = clustered_log()
    first = ALS(factors=4, seed=1).fit(frame).score("a0", ["a1", "b1"], at(100))
    again = ALS(factors=4, seed=1).fit(frame).score("a0", ["a1", "b1"], at(100))
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize(
    "make",
    [
        GlobalPopularity,
        lambda: RecentPopularity(window=pd.Timedelta(days=10)),
        lambda: ItemKNN(neighbors=5, retrain_growth=0.5, min_events=20),
        lambda: ALS(factors=4, retrain_growth=0.5, min_events=20),
        lambda: EASE(regularization=5.0, neighbors=3, retrain_growth=0.5, min_events=20),
    ],
    ids=["global_popularity", "recent_popularity", "item_knn_asof", "als_asof", "ease_asof"],
)
def test_point_in_time_models_ignore_everything_after_the_cutoff(
    make: Callable[[], Recommender],
) -> None:
    frame = clustered_log()
    # The future: existing users and items, in bulk, all after the cutoff.
    future = log([("a0", f"b{n % 6}", 45.0 + n) for n in range(40)])
    # The past goes on after the cutoffs by one event: a log that ends before a cutoff scores it
    # with a side fitted on all its events, one that goes on with the grid's.
    past = pd.concat([frame[frame["ts"] < at(40)], future.iloc[:1]])
    users, cutoffs = ["a0", "a3", "b2"], [at(40), at(25), at(33)]
    exclude = {"a0": {"a1"}}
    before = make().fit(past).recommend(users, cutoffs, k=5, exclude=exclude)
    model = make().fit(pd.concat([frame, future]))
    assert model.point_in_time
    assert model.recommend(users, cutoffs, k=5, exclude=exclude) == before


@pytest.mark.parametrize(
    "make",
    [
        lambda growth: ItemKNN(neighbors=5, retrain_growth=growth, min_events=20),
        lambda growth: EASE(regularization=5.0, neighbors=3, retrain_growth=growth, min_events=20),
    ],
    ids=["item_knn_asof", "ease_asof"],
)
def test_a_cutoff_after_the_last_event_is_scored_by_a_side_fitted_on_all_events(
    make: Callable[[float | None], ItemKNN | EASE],
) -> None:
    frame = clustered_log()
    model, once = make(0.5).fit(frame), make(None).fit(frame)
    total = len(frame)
    geometric = np.unique(np.ceil(20 * 1.5 ** np.arange(20)).astype(np.int64))
    points = model._retrain_points()
    assert points[-1] == total
    np.testing.assert_array_equal(points[:-1], geometric[geometric < total])
    users, items = ["a0", "b3", "fan7"], list(model.items)
    after = [frame["ts"].max() + pd.Timedelta(1, "us")] * 3
    np.testing.assert_allclose(
        model.score_batch(users, after, items), once.score_batch(users, after, items)
    )
    # At the last event's time that event is not before the cutoff: the grid's side scores it.
    last = frame["ts"].max()
    usable = int((frame["ts"] < last).sum())
    side = model._learn(model._matrix(int(geometric[geometric <= usable][-1])))
    expected = model._apply(side, model._profiles(users, np.array([last.value // 1_000] * 3)))
    got = model.score_batch(users, [last] * 3, items)
    known = np.isfinite(got)  # items someone touched before the cutoff
    assert known.any()
    np.testing.assert_allclose(got[known], expected[known])


def test_invalid_requests_are_refused() -> None:
    model = GlobalPopularity().fit(log([("u", "a", 1.0)]))
    with pytest.raises(InvalidInputError):
        model.recommend(["x"], [at(1)], k=0)
    with pytest.raises(InvalidInputError):
        model.recommend(["x", "y"], [at(1)], k=1)
    with pytest.raises(InvalidInputError):
        model.recommend(["x"], [pd.Timestamp("2024-01-01")], k=1)
    with pytest.raises(InvalidInputError):
        GlobalPopularity().fit(log([("u", "a", 1.0)]).drop(columns="weight"))


def test_ease_is_the_closed_form_of_steck_2019() -> None:
    frame = clustered_log()
    model = EASE(regularization=7.0).fit(frame)
    users = ["a0", "b3"]
    # Brute force: X (users x items, binary), B = argmin |X - XB|^2 + l|B|^2 with diag(B) = 0.
    matrix = pd.crosstab(frame["user_id"], frame["item_id"]).clip(upper=1)
    matrix = matrix.reindex(columns=model.items).to_numpy(dtype=float)
    gram = matrix.T @ matrix + 7.0 * np.eye(matrix.shape[1])
    inverse = np.linalg.inv(gram)
    weights = np.eye(len(inverse)) - inverse / np.diag(inverse)
    rows = [list(model.users).index(u) for u in users]
    expected = matrix[rows] @ weights
    got = model.score_batch(users, [at(100)] * 2, list(model.items))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_ease_pruned_keeps_each_items_strongest_weights() -> None:
    frame = clustered_log()
    full = EASE(regularization=7.0).fit(frame)
    pruned = EASE(regularization=7.0, neighbors=3).fit(frame)
    kept, dense = full._sides[len(full._ts)]
    _, sparse = pruned._sides[len(pruned._ts)]
    sparse = sparse.toarray()
    for column in range(dense.shape[1]):
        strongest = np.sort(np.abs(dense[:, column]))[-3:]
        assert np.count_nonzero(sparse[:, column]) <= 3
        np.testing.assert_allclose(np.sort(np.abs(sparse[:, column]))[-3:], strongest)
    users = ["a0", "b3"]
    got = pruned.score_batch(users, [at(100)] * 2, list(pruned.items))
    profiles = pruned._profiles(users, np.array([2**62, 2**62])).toarray()[:, kept]
    np.testing.assert_allclose(got[:, kept], profiles @ sparse, rtol=1e-5, atol=1e-6)


def test_als_scores_are_the_float64_product_of_the_factors() -> None:
    frame = clustered_log()
    model = ALS(factors=4, seed=1).fit(frame)
    side = model._sides[len(model._ts)]
    profiles = model._profiles(["a0", "b1"], np.array([2**62, 2**62]))
    users = side.recalculate_user(np.arange(2), profiles)
    expected = np.asarray(users, dtype=np.float64) @ np.asarray(side.item_factors).T
    for _ in range(2):  # the converted factors are kept after the first call
        np.testing.assert_array_equal(model._apply(side, profiles), expected)


@pytest.mark.parametrize(
    "make",
    [
        GlobalPopularity,
        lambda: ItemKNN(neighbors=5),
        lambda: ItemKNN(neighbors=5, retrain_growth=0.5, min_events=20),
        lambda: ALS(factors=4, retrain_growth=0.5, min_events=20),
        lambda: EASE(regularization=5.0),
        lambda: EASE(regularization=5.0, neighbors=3, retrain_growth=0.5, min_events=20),
    ],
    ids=["global_popularity", "item_knn", "item_knn_asof", "als_asof", "ease", "ease_asof"],
)
def test_a_few_asked_items_score_as_in_the_whole_catalog(make: Callable[[], Recommender]) -> None:
    # Given candidates are scored alone (a few columns), never by scoring the catalog first.
    model = make().fit(clustered_log())
    catalog = pd.Index([*(f"{g}{n}" for g in "ab" for n in range(6)), "unknown"])
    users, cutoffs = ["a0", "b3", "stranger"], [at(100), at(35), at(50)]
    whole = model.score_batch(users, cutoffs, catalog)
    for rows in (np.array([7, 0]), np.array([12, 3]), np.array([], dtype=np.intp)):
        few = model.score_batch(users, cutoffs, catalog, rows)
        np.testing.assert_allclose(few, whole[:, rows], rtol=1e-6, atol=1e-9)


def test_a_saved_model_leaves_what_requests_derived_behind_and_scores_the_same() -> None:
    model = ItemKNN(neighbors=5, retrain_growth=0.5, min_events=20).fit(clustered_log())
    catalog = pd.Index([f"{g}{n}" for g in "ab" for n in range(6)])
    before = model.score_batch(["a0"], [at(100)], catalog, np.array([1, 7]))
    saved = pickle.loads(pickle.dumps(model))
    assert not {"_catalog_columns", "_points", "_sides_by_column"} & set(vars(saved))
    np.testing.assert_array_equal(
        saved.score_batch(["a0"], [at(100)], catalog, np.array([1, 7])), before
    )


# A request's given candidates: a few columns, on the compressed arrays


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 30), st.integers(0, 12))
def test_a_few_columns_of_a_sparse_product_are_scipys_to_the_bit(
    seed: int, held: int, asked: int
) -> None:
    rng = np.random.default_rng(seed)
    side = sp.random(30, 30, density=0.2, format="csr", dtype=np.float32, random_state=rng)
    profiles = np.zeros((3, 30))  # the last user holds nothing
    for row in range(2):
        items = rng.choice(30, held, replace=False)
        profiles[row, items] = rng.choice([-1.5, 0.5, 1.0, 3.0], held)
    columns = rng.integers(0, 30, asked)  # repeats as a request may send them
    expected = (sp.csr_matrix(profiles) @ side).toarray()[:, columns]
    got = _column_product(profiles, side, sp.csc_matrix(side), columns)
    np.testing.assert_array_equal(got, expected)
    for row in range(3):  # the rows' way, whichever way the cost chose above
        by_rows = _row_product(profiles[row], np.flatnonzero(profiles[row]), side, columns)
        np.testing.assert_array_equal(by_rows, expected[row])


def test_rows_of_a_sparse_matrix_weighted_are_scipys_product_to_the_bit() -> None:
    rng = np.random.default_rng(4)
    table = sp.random(40, 40, density=0.3, format="csr", random_state=rng)
    rows = np.array([3, 17, 3, 0])  # a repeat: the same item twice among the recent ones
    weights = 1.0 / np.arange(len(rows), 0, -1)
    expected = np.asarray(table[rows].T @ weights).ravel()
    np.testing.assert_array_equal(rows_product(weights, rows, table), expected)
    columns = np.array([5, 39, 5, 0])
    np.testing.assert_array_equal(rows_product(weights, rows, table, columns), expected[columns])
    assert rows_product(weights[:0], rows[:0], table, columns).tolist() == [0.0] * 4


@pytest.mark.parametrize("alpha", [1.0, 2.5])
def test_als_user_factors_are_implicits_without_its_sparse_matrix(alpha: float) -> None:
    model = ALS(factors=4, alpha=alpha, seed=1).fit(clustered_log())
    side = model._sides[len(model._ts)]
    profiles = model._dense_profiles(["a0", "stranger", "b1"], np.array([2**62] * 3))
    profiles[2, :3] = [-1.5, 0.0, 2.0]  # a disliked item among them
    expected = side.recalculate_user(np.arange(3), sp.csr_matrix(profiles, dtype=np.float32))
    np.testing.assert_array_equal(_solve_users(side, profiles), expected)
    assert not _solve_users(side, profiles)[1].any()  # no contacts: no factor


def test_catalog_positions_are_pandas_lookups_kept_per_catalog() -> None:
    class Owner:
        pass

    owner = Owner()
    asked = ["c", "not in it", "a", "c", ""]
    for catalog in (pd.Index(["b", "a", "c"]), pd.Index(["c", "a"])):  # a new catalog: rebuilt
        got = catalog_positions(owner, catalog, asked)
        np.testing.assert_array_equal(got, catalog.get_indexer(asked))
    assert catalog_positions(owner, catalog, []).tolist() == []
