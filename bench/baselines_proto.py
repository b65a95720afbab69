"""Benchmark: the baseline recommenders on MovieLens-small with the per-user temporal split.

Reads ratings.csv directly (a rating is a `rate` contact; weight as in enrichment), splits, fits
each baseline and prints NDCG@10, Recall@10/100, MRR, coverage@10 and fit/recommend seconds.

    .venv/bin/python bench/baselines_proto.py --data /work/shared/data/movielens-small
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from pipelines.enrich import rate_weight
from ranking.baselines import ALS, GlobalPopularity, ItemKNN, RecentPopularity, Recommender
from ranking.metrics import evaluate
from ranking.split import Split, temporal_split

K = 100


def movielens_interactions(directory: Path) -> pd.DataFrame:
    """ratings.csv as interaction rows."""
    ratings = pd.read_csv(directory / "ratings.csv")
    value = ratings["rating"].astype(float)
    return pd.DataFrame(
        {
            "user_id": ratings["userId"].astype(str),
            "item_id": ratings["movieId"].astype(str),
            "ts": pd.to_datetime(ratings["timestamp"], unit="s", utc=True).dt.as_unit("us"),
            "type": "rate",
            "value": value,
            "weight": value.map(rate_weight),
        }
    )


def run(model: Recommender, split: Split, catalog_size: int) -> dict[str, float | str]:
    """Fit on what the model may see, recommend for every evaluated user, evaluate."""
    started = time.perf_counter()
    model.fit(split.history if model.point_in_time else split.train)
    fitted = time.perf_counter()
    recommendations = model.recommend(split.users, split.cutoffs, K, split.seen)
    done = time.perf_counter()
    metrics = evaluate(recommendations, split.relevant, catalog_size)
    return {
        "model": model.name,
        **{name: round(value, 4) for name, value in metrics.items()},
        "fit_s": round(fitted - started, 2),
        "recommend_s": round(done - fitted, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/movielens-small"))
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    args = parser.parse_args()

    started = time.perf_counter()
    interactions = movielens_interactions(args.data)
    split = temporal_split(interactions)
    print(f"split in {time.perf_counter() - started:.2f} s: {split.stats}")
    catalog_size = interactions["item_id"].nunique()
    models: list[Recommender] = [
        GlobalPopularity(),
        RecentPopularity(),
        ItemKNN(),
        ItemKNN(retrain_growth=0.25),
        ALS(),
        ALS(retrain_growth=0.25),
    ]
    rows = [run(model, split, catalog_size) for model in models]
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
