"""`engram eval`: ingest, split per user in time, train the ranker, compare with baselines.

Per-user temporal split (ranking.split): every user with at least 5 interactions has their last
20% held out; the cutoff is their first held-out time. The ranker is trained on a second split
of what lies before the cutoffs (each user's last 20% of the train part are its labels), strictly
point in time: its candidate sources and features at each label time read only the events before
it, so no label leaks into training.

At test time every model compared gets the same data. The ALS and EASE baselines are fit once on
the train part (the usual per-user-split compromise: no held-out event, but other users' events
after a user's cutoff), so the ranker (`lightgbm`) ranks the test users with its learned sources
(item-kNN, ALS, EASE) fit once on that train part too, as serving ranks with sources fit on
everything; its popularity, co-occurrence and embedding sources and its features stay as of each
cutoff, as the popularity baselines are. `lightgbm_asof` is the same booster on the point-in-time
sources it was trained on, the stricter figure. Baselines, in the same run: global and recent
popularity, item-kNN and ALS retrained along the log (point in time), and ALS and EASE fit once on
the train part. `seeds` repeats every seeded model with other seeds and reports mean and spread.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import InvalidInputError
from core.settings import Settings
from memory.embed import Embedder, load_embedder
from ranking.baselines import (
    ALS,
    EASE,
    GlobalPopularity,
    ItemKNN,
    RecentPopularity,
    Recommender,
)
from ranking.candidates import ModelSource, source_recall
from ranking.item_vectors import build_item_vectors, catalog_frame, connect_item_store
from ranking.metrics import evaluate
from ranking.model import importance
from ranking.report import EvalResult, write_report
from ranking.split import temporal_split
from ranking.train import (
    LABEL_SLICES,
    RankingInputs,
    fit_learned_sources,
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
    seeds: int = 1,
) -> EvalResult:
    """Ingest `data` into a fresh home, then train and evaluate the ranker and the baselines.

    `settings` gives Milvus and the embedding model; the data lives in `work_dir` (default:
    ENGRAM_HOME/eval/<time>), so the main offline store is left alone. With `seeds` > 1 every
    seeded model (the candidate sources' ALS, the ranker, the ALS baselines) is trained and
    scored once per seed 0..seeds-1 on the same split; `metrics` are the means over the seeds
    and `metrics_std` their standard deviations (0 for the deterministic baselines).
    """
    if seeds < 1:
        raise InvalidInputError("seeds", f"must be at least 1, got {seeds}")
    from pipelines.batch import run_ingest
    from ranking.history import load_interactions

    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = round(seconds.get(name, 0.0) + now - clock, 2)
        clock = now

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    home = work_dir or settings.engram_home / "eval" / stamp
    # All of it in that home: nothing shared (offline store, registries) sees the evaluation.
    alone = {
        "engram_offline_dir": None,
        "engram_state_url": None,
        "engram_feast_registry_url": None,
    }
    local = settings.model_copy(update={"engram_home": home, **alone})
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

    slices = label_slices(temporal_split(split.train), LABEL_SLICES)
    catalog_size = 0
    test_at = pd.DatetimeIndex(split.cutoffs.to_numpy()).tz_convert("UTC")
    runs: list[dict[str, dict[str, list[str]]]] = []
    first: dict[str, Any] = {}
    for seed in range(seeds):
        models = fit_source_models(split.history, seed=seed)
        inputs = ranking_inputs(local, split.history, models, vectors, categories)
        lap("fit_sources")
        fitted, _ = train_ranker(local, inputs, slices, seed=seed)
        lap("train_ranker")
        at_test = _learned_once(inputs, split.train, seed)
        lap("fit_sources")
        recommendations: dict[str, dict[str, list[str]]] = {}
        for name, test_inputs in (("lightgbm", at_test), ("lightgbm_asof", inputs)):
            candidates, matrix = model_rows(local, test_inputs, split.users, test_at, split.seen)
            scores = fitted.booster.predict(matrix, num_iteration=fitted.best_iteration)
            recommendations[name] = top_items(candidates.frame, scores, K)
            if seed == 0:
                first[name] = candidates
        lap("rank_test")
        for name, model in _baselines(seed, deterministic=seed == 0).items():
            model.fit(split.history if model.point_in_time else split.train)
            recommendations[name] = model.recommend(split.users, split.cutoffs, K, split.seen)
        lap("baselines")
        runs.append(recommendations)
        if seed == 0:
            catalog_size = len(inputs.items)
            first.update(fitted=fitted, inputs=inputs)
    # Deterministic baselines (no seed: same data, same answer) are trained once.
    for later in runs[1:]:
        later.update({name: recs for name, recs in runs[0].items() if name not in later})
    per_seed = [
        {name: evaluate(recs, split.relevant, catalog_size) for name, recs in run.items()}
        for run in runs
    ]
    metrics, spread = _mean_and_std(per_seed)
    fitted, inputs = first["fitted"], first["inputs"]
    result = EvalResult(
        split={
            **asdict(split.stats),
            "holdout_fraction": 0.2,
            "min_interactions": 5,
            "catalog_size": catalog_size,
            "train_label_slices": len(slices),
            "train_label_groups": sum(len(s.cutoffs) for s in slices),
            "seeds": seeds,
        },
        metrics=metrics,
        metrics_std=spread,
        candidates=_rounded(
            {
                **source_recall(first["lightgbm"], split.relevant, split.cutoffs),
                **{
                    f"{name}_asof": row
                    for name, row in source_recall(
                        first["lightgbm_asof"], split.relevant, split.cutoffs
                    ).items()
                },
            }
        ),
        training={
            "best_iteration": fitted.best_iteration,
            "valid_ndcg@10": round(fitted.valid_ndcg10, 4),
            "train_groups": fitted.train_groups,
            "valid_groups": fitted.valid_groups,
            "features": len(inputs.features),
            "rows_test": len(first["lightgbm"].frame),
        },
        ndcg_curve=_ndcg_curve(runs[0], split.relevant),
        importance={k: round(float(v), 1) for k, v in importance(fitted.booster).items()},
        seconds={**seconds, **{k: round(v, 2) for k, v in inputs.seconds.items()}},
    )
    _drop_collection(settings, embedder, f"eval_items_{stamp.replace('-', '_')}")
    if report_dir is None and default_report:
        report_dir = home / "report"
    if report_dir is not None:
        result.report = str(write_report(result, report_dir))
    return result


def _learned_once(inputs: RankingInputs, train: pd.DataFrame, seed: int) -> RankingInputs:
    """`inputs` with the learned sources fit once on the train part, as the ALS and EASE
    baselines are; the other sources read only the past of a cutoff and are kept."""
    once = fit_learned_sources(train, growth=None, seed=seed)
    sources = [ModelSource(s.name, once[s.name]) if s.name in once else s for s in inputs.sources]
    return replace(inputs, sources=sources)


def _baselines(seed: int, deterministic: bool) -> dict[str, Recommender]:
    """The baselines to train for a seed: the seeded ones always, the others when asked."""
    seeded: dict[str, Recommender] = {
        "als_asof": ALS(retrain_growth=0.25, seed=seed),
        "als": ALS(seed=seed),
    }
    if not deterministic:
        return seeded
    return {
        "popularity": GlobalPopularity(),
        "recent_popularity": RecentPopularity(),
        "item_knn": ItemKNN(retrain_growth=0.25),
        "ease": EASE(),
        **seeded,
    }


def _mean_and_std(
    per_seed: list[dict[str, dict[str, float]]],
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Each model's metrics averaged over the seeds, and their (population) standard deviation."""
    means: dict[str, dict[str, float]] = {}
    spread: dict[str, dict[str, float]] = {}
    for name in per_seed[0]:
        keys = per_seed[0][name]
        values = {key: np.array([run[name][key] for run in per_seed]) for key in keys}
        means[name] = {key: round(float(v.mean()), 4) for key, v in values.items()}
        spread[name] = {key: round(float(v.std()), 4) for key, v in values.items()}
    return means, spread


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
