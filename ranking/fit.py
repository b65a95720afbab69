"""`engram train`: fit the ranker on the ingested log and save it in the registry.

Labels: each user's last 20% of interactions, and the 20% before those (ranking.split);
candidates and features as of each user's cutoff, point in time. The candidate sources are fit
on the whole log (they read only the past of any time they score), saved with the booster so the
server ranks with exactly what was trained; the item vectors go to Milvus's `items` collection.
Last, every user's candidates as of now are computed and saved with them (ranking.precomputed),
so that the server need not score the catalog for a request without candidates.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from core.errors import InvalidInputError
from core.settings import Settings
from memory.embed import Embedder, load_embedder
from ranking import precomputed, registry
from ranking.history import load_interactions
from ranking.item_vectors import ITEMS_COLLECTION, build_item_vectors, catalog_frame
from ranking.predictor import compiled, predictor_dir
from ranking.split import temporal_split
from ranking.train import (
    LABEL_SLICES,
    fit_source_models,
    label_slices,
    ranking_inputs,
    train_ranker,
)


def train_and_save(
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    collection: str = ITEMS_COLLECTION,
    max_users: int | None = None,
) -> dict[str, Any]:
    """Train on everything ingested, save a new registry version; returns its metadata.

    `max_users` caps the label users of each slice (a fixed random sample), which bounds the
    point-in-time feature join that dominates training time on a large log."""
    began = time.perf_counter()
    stages = _Stages()
    interactions = load_interactions(settings)
    if interactions.empty:
        raise InvalidInputError("data", "nothing ingested: run `engram ingest` first")
    split = temporal_split(interactions)
    catalog = catalog_frame(settings)
    stages.lap("load")
    embedder = embedder or load_embedder(settings)
    vectors = build_item_vectors(settings, catalog, embedder, collection)
    categories = catalog.set_index("item_id")["category"]
    stages.lap("item_vectors")
    models = fit_source_models(interactions)
    stages.lap("fit_sources")
    inputs = ranking_inputs(settings, interactions, models, vectors, categories)
    stages.lap("feature_store")
    slices = label_slices(split, LABEL_SLICES)
    if max_users is not None:
        slices = [part.limited(max_users) for part in slices]
    fitted, candidates = train_ranker(settings, inputs, slices)
    stages.lap("train_ranker")
    meta = {
        "features": inputs.features,
        "sources": inputs.source_names,
        "service_features": inputs.service_features,
        "item_collection": collection,
        "embedder": embedder.name,
        "training_window": {
            "first_event": interactions["ts"].min().isoformat(),
            "last_event": interactions["ts"].max().isoformat(),
            "first_cutoff": pd.Timestamp(split.cutoffs.min()).isoformat(),
            "last_cutoff": pd.Timestamp(split.cutoffs.max()).isoformat(),
        },
        "metrics": {
            "valid_ndcg@10": round(fitted.valid_ndcg10, 4),
            "best_iteration": fitted.best_iteration,
            "train_groups": fitted.train_groups,
            "valid_groups": fitted.valid_groups,
            "rows": len(candidates.frame),
        },
    }
    # Each user's candidates now, as a request after this training would generate them.
    stored_began = time.perf_counter()
    stored = precomputed.compute(
        inputs.sources,
        inputs.context.history,
        inputs.items,
        pd.Timestamp.now(tz="UTC"),
        int(settings.engram_candidates_budget_mb * 2**20),
    )
    meta["precomputed"] = {
        "users": len(stored.users),
        "candidates": len(stored.codes),
        "bytes": stored.nbytes,
        "at": stored.at.isoformat(),
        "seconds": round(time.perf_counter() - stored_began, 2),
    }
    stages.lap("precompute")
    state = {"models": models, "interactions": interactions, "categories": categories}
    version = registry.save(settings, fitted.booster, state, meta, stored)
    stages.lap("save")
    compiled(fitted.booster, predictor_dir(settings))  # found built by this host's first load
    stages.lap("compile_predictor")
    # train_ranker's parts (wall seconds): candidates, feature_join, assemble, lightgbm.
    stages.wall.update({f"train_ranker.{k}": round(v, 2) for k, v in inputs.seconds.items()})
    return {
        "version": version,
        **meta,
        "seconds": round(time.perf_counter() - began, 2),
        "stage_seconds": stages.wall,
        "stage_cpu_seconds": stages.cpu,
    }


class _Stages:
    """Wall and process CPU seconds (all threads) per stage, in the order they ran."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._at = (time.perf_counter(), time.process_time())

    def lap(self, name: str) -> None:
        now = (time.perf_counter(), time.process_time())
        self.wall[name] = round(now[0] - self._at[0], 2)
        self.cpu[name] = round(now[1] - self._at[1], 2)
        self._at = now
