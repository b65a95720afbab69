"""`engram eval`: ingest, split per user in time, train the ranker, compare with baselines.

Per-user temporal split (ranking.split): every user with at least 5 interactions has their last
20% held out; the cutoff is their first held-out time. The ranker is trained on a second split
of what lies before the cutoffs (each user's last 20% of the train part are its labels), so it
never sees a test label; its candidates and features at test time are as of each user's cutoff.
Baselines, in the same run: global and recent popularity, item-kNN and ALS retrained along the
log (point in time), and ALS fit once on the train part (the usual per-user-split compromise).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from core.settings import Settings
from memory.embed import Embedder, load_embedder
from ranking.baselines import ALS, GlobalPopularity, ItemKNN, RecentPopularity, Recommender
from ranking.candidates import source_recall
from ranking.item_vectors import build_item_vectors, catalog_frame, connect_item_store
from ranking.metrics import evaluate
from ranking.model import importance
from ranking.report import EvalResult, write_report
from ranking.split import temporal_split
from ranking.train import (
    LABEL_SLICES,
    fit_source_models,
    label_slices,
    model_rows,
    ranking_inputs,
    top_items,
    train_ranker,
)

K = 100
NDCG_KS = (1, 5, 10, 20, 50, 100)


def run_eval(
    settings: Settings,
    data: Path,
    input_format: str = "movielens",
    *,
    catalog: Path | None = None,
    work_dir: Path | None = None,
    embedder: Embedder | None = None,
    report_dir: Path | None = None,
    default_report: bool = False,
) -> EvalResult:
    """Ingest `data` into a fresh home, then train and evaluate the ranker and the baselines.

    `settings` gives Milvus and the embedding model; the data lives in `work_dir` (default:
    ENGRAM_HOME/eval/<time>), so the main offline store is left alone.
    """
    from pipelines.batch import run_ingest
    from ranking.history import load_interactions

    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = round(now - clock, 2)
        clock = now

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    home = work_dir or settings.engram_home / "eval" / stamp
    local = settings.model_copy(update={"engram_home": home})
    run_ingest(local, data, input_format=input_format, catalog=catalog)  # type: ignore[arg-type]
    interactions = load_interactions(local)
    catalog_rows = catalog_frame(local)
    lap("ingest")

    split = temporal_split(interactions)
    embedder = embedder or load_embedder(settings)
    vectors = build_item_vectors(
        settings, catalog_rows, embedder, f"eval_items_{stamp.replace('-', '_')}"
    )
    categories = catalog_rows.set_index("item_id")["category"]
    lap("item_vectors")

    models = fit_source_models(split.history)
    inputs = ranking_inputs(local, split.history, models, vectors, categories)
    lap("fit_sources")

    slices = label_slices(temporal_split(split.train), LABEL_SLICES)
    fitted, _ = train_ranker(local, inputs, slices)
    lap("train_ranker")

    test_at = pd.DatetimeIndex(split.cutoffs.to_numpy()).tz_convert("UTC")
    candidates, matrix = model_rows(local, inputs, split.users, test_at, split.seen)
    scores = fitted.booster.predict(matrix, num_iteration=fitted.best_iteration)
    recommendations: dict[str, dict[str, list[str]]] = {
        "lightgbm": top_items(candidates.frame, scores, K)
    }
    lap("rank_test")

    catalog_size = len(inputs.items)
    baselines: list[Recommender] = [
        GlobalPopularity(),
        RecentPopularity(),
        ItemKNN(retrain_growth=0.25),
        ALS(retrain_growth=0.25),
        ALS(),
    ]
    names = ["popularity", "recent_popularity", "item_knn", "als_asof", "als"]
    for name, model in zip(names, baselines, strict=True):
        model.fit(split.history if model.point_in_time else split.train)
        recommendations[name] = model.recommend(split.users, split.cutoffs, K, split.seen)
    lap("baselines")

    metrics = {
        name: {
            key: round(value, 4)
            for key, value in evaluate(recs, split.relevant, catalog_size).items()
        }
        for name, recs in recommendations.items()
    }
    result = EvalResult(
        split={
            **asdict(split.stats),
            "holdout_fraction": 0.2,
            "min_interactions": 5,
            "catalog_size": catalog_size,
            "train_label_slices": len(slices),
            "train_label_groups": sum(len(s.cutoffs) for s in slices),
        },
        metrics=metrics,
        candidates=_rounded(source_recall(candidates, split.relevant, split.cutoffs)),
        training={
            "best_iteration": fitted.best_iteration,
            "valid_ndcg@10": round(fitted.valid_ndcg10, 4),
            "train_groups": fitted.train_groups,
            "valid_groups": fitted.valid_groups,
            "features": len(inputs.features),
            "rows_test": len(candidates.frame),
        },
        ndcg_curve=_ndcg_curve(recommendations, split.relevant),
        importance={k: round(float(v), 1) for k, v in importance(fitted.booster).items()},
        seconds={**seconds, **{k: round(v, 2) for k, v in inputs.seconds.items()}},
    )
    _drop_collection(settings, embedder, f"eval_items_{stamp.replace('-', '_')}")
    if report_dir is None and default_report:
        report_dir = home / "report"
    if report_dir is not None:
        result.report = str(write_report(result, report_dir))
    return result


def _drop_collection(settings: Settings, embedder: Embedder, collection: str) -> None:
    store = connect_item_store(settings, embedder, collection)
    try:
        store.drop()
    finally:
        store.close()


def _rounded(table: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    return {name: {k: round(v, 4) for k, v in row.items()} for name, row in table.items()}


def _ndcg_curve(
    recommendations: Mapping[str, Mapping[str, list[str]]], relevant: Mapping[str, frozenset[str]]
) -> dict[str, dict[int, float]]:
    from ranking.metrics import ndcg_at_k

    return {
        name: {
            k: round(
                float(np.mean([ndcg_at_k(recs.get(u, []), relevant[u], k) for u in relevant])), 4
            )
            for k in NDCG_KS
        }
        for name, recs in recommendations.items()
    }
