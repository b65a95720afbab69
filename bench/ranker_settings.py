"""Ranker settings compared on the validation groups of `engram eval`'s training rows.

Usage: ENGRAM_HOME=<home> python -m bench.ranker_settings DATA [NAME ...]

Builds, once, the rows `engram eval` trains its ranker on (seed 0: candidates and features at
the two label slices before the test cutoffs; the test split's held-out part is never read) and
caches them in ENGRAM_HOME/ranker_rows.pkl. Then fits each named setting of SETTINGS with
ranking.model (PARAMS but for what the setting changes; `stop_at`: early stopping watches the
later groups' NDCG at that depth) and prints, on the validation groups (the latest 20% of label
times): NDCG@10 and Recall@100 over all of each group's relevant items (those no source found
count as missed), and the trees kept.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.settings import get_settings
from ranking.metrics import ndcg_at_k, recall_at_k
from ranking.model import MAX_NEGATIVES, fit_lambdarank, valid_groups

SETTINGS: dict[str, dict[str, Any]] = {
    "stop10": {"stop_at": 10},
    "trunc200": {"stop_at": 10, "params": {"lambdarank_truncation_level": 200}},
    "stop50": {"stop_at": 50},
    "stop100": {"stop_at": 100},
    "trunc200_stop100": {"stop_at": 100, "params": {"lambdarank_truncation_level": 200}},
    "neg300_stop100": {"stop_at": 100, "max_negatives": 300},
    "xendcg_stop100": {"stop_at": 100, "params": {"objective": "rank_xendcg"}},
    "binary_stop100": {"stop_at": 100, "params": {"objective": "binary"}},
    "leaves31_stop100": {"stop_at": 100, "params": {"num_leaves": 31, "min_data_in_leaf": 100}},
    "lr10_stop100": {"stop_at": 100, "params": {"learning_rate": 0.1}},
}


def build_rows(data: Path) -> pd.DataFrame:
    """Eval's training rows for seed 0: features, label, group, time, relevant count."""
    from memory.embed import load_embedder
    from pipelines.batch import run_ingest
    from ranking.history import load_interactions
    from ranking.item_vectors import build_item_vectors, catalog_frame
    from ranking.split import temporal_split
    from ranking.train import (
        LABEL_SLICES,
        fit_source_models,
        label_slices,
        labels_for,
        model_rows,
        ranking_inputs,
    )

    settings = get_settings()
    local = settings.model_copy(
        update={
            "engram_home": settings.engram_home / "eval",
            "engram_offline_dir": None,
            "engram_state_url": None,
            "engram_feast_registry_url": None,
        }
    )
    run_ingest(local, data, input_format="movielens")
    interactions = load_interactions(local)
    catalog = catalog_frame(local)
    split = temporal_split(interactions)
    vectors = build_item_vectors(settings, catalog, load_embedder(settings), "ranker_settings")
    categories = catalog.set_index("item_id")["category"]
    slices = label_slices(temporal_split(split.train), LABEL_SLICES)
    inputs = ranking_inputs(
        local, split.history, fit_source_models(split.history), vectors, categories
    )
    parts = []
    for part in slices:
        users = list(part.cutoffs.index)
        at = pd.DatetimeIndex(part.cutoffs.to_numpy()).tz_convert("UTC")
        candidates, matrix = model_rows(local, inputs, users, at, part.seen)
        frame = candidates.frame
        matrix = matrix.assign(
            _label=labels_for(frame, part.relevant),
            _group=frame["user_id"].astype(str) + "@" + frame["at"].astype(str),
            _at=frame["at"].to_numpy(),
            _item=frame["item_id"].astype(str).to_numpy(),
            _relevant=frame["user_id"].map(lambda u, r=part.relevant: len(r.get(u, ()))),
        )
        parts.append(matrix)
    return pd.concat(parts, ignore_index=True)


def score(rows: pd.DataFrame, name: str, setting: dict[str, Any]) -> str:
    """Fit one setting and measure it on the validation groups."""
    meta = ["_label", "_group", "_at", "_item", "_relevant"]
    matrix = rows.drop(columns=meta)
    labels = rows["_label"].to_numpy()
    began = time.process_time()
    fitted = fit_lambdarank(
        matrix,
        labels,
        rows["_group"],
        rows["_at"],
        params=setting.get("params"),
        max_negatives=setting.get("max_negatives", MAX_NEGATIVES),
        stop_at=setting["stop_at"],
    )
    cpu = time.process_time() - began
    valid = rows[rows["_group"].isin(valid_groups(rows["_group"], rows["_at"], labels))]
    predicted = fitted.booster.predict(
        valid.drop(columns=meta), num_iteration=fitted.best_iteration
    )
    ranked = valid.assign(score=predicted).sort_values(["_group", "score"], ascending=[True, False])
    ndcg, recall = [], []
    for _, group in ranked.groupby("_group", sort=False):
        items = list(group["_item"])
        wanted = set(group.loc[group["_label"] > 0, "_item"])
        # Relevant items no source found: placeholders that no list can hold.
        wanted |= {f"missed{i}" for i in range(int(group["_relevant"].iloc[0]) - len(wanted))}
        ndcg.append(ndcg_at_k(items, frozenset(wanted), 10))
        recall.append(recall_at_k(items, frozenset(wanted), 100))
    return (
        f"{name}: valid NDCG@10 {np.mean(ndcg):.4f} Recall@100 {np.mean(recall):.4f} "
        f"({len(ndcg)} groups), {fitted.best_iteration} trees, {cpu:.0f} s CPU"
    )


def main() -> None:
    data, names = Path(sys.argv[1]), sys.argv[2:]
    cache = get_settings().engram_home / "ranker_rows.pkl"
    if not cache.exists():
        began = time.perf_counter()
        build_rows(data).to_pickle(cache)
        print(f"rows built in {time.perf_counter() - began:.0f} s", flush=True)
    rows = pd.read_pickle(cache)
    for name in names:
        print(score(rows, name, SETTINGS[name]), flush=True)


if __name__ == "__main__":
    main()
