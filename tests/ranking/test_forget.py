"""Forgetting a user in ranking: in place in a served model (the user scores as a stranger) and
in the registry (every version's sources fitted again without them; the booster stays)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from core.settings import Settings
from ranking import registry
from ranking.baselines import ALS, ItemKNN, RecentPopularity
from ranking.candidates import EmbeddingSource
from ranking.history import UserHistory
from ranking.item_vectors import ItemVectors
from ranking.sequence import SequentialCooccurrence
from tests.ranking.test_baselines import at, clustered_log
from tests.ranking.test_registry import booster

GONE = "a3"
STRANGER = "nobody"
CUTOFFS = pd.DatetimeIndex([at(90), at(90)])


def models() -> dict[str, Any]:
    """The serving sources, small enough to retrain on a 300-event log."""
    return {
        "popularity": RecentPopularity(),
        "cooccurrence": SequentialCooccurrence(min_pairs=20),
        "item_knn": ItemKNN(retrain_growth=0.5, min_events=50),
        "als": ALS(factors=4, iterations=3, retrain_growth=0.5, min_events=50, threads=1),
    }


def fitted(log: pd.DataFrame) -> dict[str, Any]:
    """Every model fitted on `log` and scored once (so lazily learned item sides exist)."""
    out = {name: model.fit(log) for name, model in models().items()}
    for model in out.values():
        model.score_batch([GONE, STRANGER], CUTOFFS, sorted(set(log["item_id"])))
    return out


def scores(model: Any, users: list[str], items: list[str]) -> np.ndarray:
    return np.asarray(model.score_batch(users, CUTOFFS[: len(users)], items))


def test_a_served_model_scores_a_forgotten_user_as_a_stranger() -> None:
    log = clustered_log()
    items = sorted(set(log["item_id"]))
    for name, model in fitted(log).items():
        assert (
            not np.array_equal(
                scores(model, [GONE], items), scores(model, [STRANGER], items), equal_nan=True
            )
            or name == "popularity"
        )
        model.forget_user(GONE)
        assert np.array_equal(
            scores(model, [GONE], items), scores(model, [STRANGER], items), equal_nan=True
        ), name


def test_history_and_taste_forget_the_user_in_place() -> None:
    log = clustered_log()
    history = UserHistory(log)
    items = sorted(set(log["item_id"]))
    rng = np.random.default_rng(0)
    vectors = ItemVectors(np.asarray(items, dtype=object), rng.random((len(items), 8), "float32"))
    source = EmbeddingSource(vectors, history)
    assert history.knows(GONE)
    source.forget_user(GONE)
    assert not history.knows(GONE) and len(history.before(GONE, 2**62).items) == 0
    got = source.scores([GONE, STRANGER], CUTOFFS, pd.Index(items))
    assert np.isnan(got).all()  # no taste for either


def test_forgetting_rewrites_every_version_without_the_user(settings: Settings) -> None:
    log = clustered_log()
    mine = log["user_id"] == GONE
    rest = log.loc[~mine].reset_index(drop=True)
    categories = pd.Series("c", index=sorted(set(log["item_id"])))
    held = registry.save(
        settings,
        booster(),
        {"models": fitted(log), "interactions": log, "categories": categories},
        {"features": ["f0", "f1"]},
    )
    never = registry.save(
        settings,
        booster(),
        {"models": fitted(rest), "interactions": rest, "categories": categories},
        {"features": ["f0", "f1"]},
    )
    only = log.loc[mine].reset_index(drop=True)
    registry.save(
        settings,
        booster(),
        {"models": {}, "interactions": only, "categories": categories},
        {"features": []},
    )
    held_dir = registry.registry_dir(settings) / held
    booster_before = (held_dir / registry.MODEL_FILE).read_bytes()
    revisions = {version: registry.revision(settings, version) for version in (held, never)}

    summary = registry.forget_user(settings, GONE)

    assert summary == registry.ForgetSummary(versions=2, interactions=2 * int(mine.sum()))
    assert registry.versions(settings) == [held, never]  # the version of only them is gone
    assert registry.revision(settings, never) == revisions[never]  # untouched
    assert registry.revision(settings, held) != revisions[held]
    assert (held_dir / registry.MODEL_FILE).read_bytes() == booster_before  # until `train`
    rewritten = registry.load(settings, held)
    assert rewritten.revision == registry.revision(settings, held)
    pd.testing.assert_frame_equal(rewritten.sources["interactions"], rest)
    # Every source is what fitting on the log without them gives: nothing of theirs is left,
    # the item sides included, and they score as a stranger.
    fresh = {name: model.fit(rest) for name, model in models().items()}
    items = sorted(set(log["item_id"]))
    for name, model in rewritten.sources["models"].items():
        assert GONE not in getattr(model, "users", []) and GONE not in getattr(model, "_rows", {})
        assert np.array_equal(
            scores(model, ["a0", "b1"], items),
            scores(fresh[name], ["a0", "b1"], items),
            equal_nan=True,
        ), name
        assert np.array_equal(
            scores(model, [GONE], items), scores(model, [STRANGER], items), equal_nan=True
        ), name
    assert registry.forget_user(settings, GONE) == registry.ForgetSummary()


def test_forgetting_drops_the_users_precomputed_candidates(settings: Settings) -> None:
    from ranking import precomputed
    from ranking.candidates import ModelSource

    log = clustered_log()
    models = fitted(log)
    sources = [ModelSource(name, model) for name, model in models.items()]
    items = pd.Index(sorted(set(log["item_id"])))
    stored = precomputed.compute(sources, UserHistory(log), items, at(90), budget_bytes=2**30)
    categories = pd.Series("c", index=items)
    state = {"models": models, "interactions": log, "categories": categories}
    version = registry.save(settings, booster(), state, {"features": []}, stored)
    assert GONE in registry.load(settings, version).candidates  # type: ignore[operator]

    registry.forget_user(settings, GONE)

    kept = registry.load(settings, version).candidates
    assert kept is not None and GONE not in kept
    assert sorted(kept.users) == sorted(u for u in stored.users if u != GONE)
    other = str(kept.users[0])
    assert kept.get(other).item_ids.tolist() == stored.get(other).item_ids.tolist()  # type: ignore[union-attr]
