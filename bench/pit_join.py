"""The point-in-time join for training: DuckDB's as-of join against Feast's get_historical_features.

Usage: ENGRAM_HOME=<an ingested home> python bench/pit_join.py [--labels N] [--service ranking]

Draws N random (user, item, time) labels over the home's snapshots (a few for unknown entities),
joins them both ways (ranking.training_data.training_frame, join="duckdb" then "feast"), prints
wall and process CPU seconds of each, and whether every column is equal.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Literal

import numpy as np
import pandas as pd

from core.settings import Settings, get_settings
from pipelines.batch import ITEM_FEATURES_FILE, USER_FEATURES_FILE, features_dir
from ranking.training_data import offline_store, training_frame


def _labels(settings: Settings, n: int, seed: int) -> pd.DataFrame:
    folder = features_dir(settings)
    users = pd.read_parquet(folder / USER_FEATURES_FILE, columns=["user_id", "event_timestamp"])
    items = pd.read_parquet(folder / ITEM_FEATURES_FILE, columns=["item_id"])
    rng = np.random.default_rng(seed)
    start = users["event_timestamp"].min() - pd.Timedelta(days=3)
    span = users["event_timestamp"].max() + pd.Timedelta(days=3) - start
    return pd.DataFrame(
        {
            "user_id": rng.choice([*users["user_id"].unique(), "nobody"], n),
            "item_id": rng.choice([*items["item_id"].unique(), "nothing"], n),
            "event_timestamp": start + span * rng.random(n),
        }
    )


def _equal(a: pd.Series, b: pd.Series) -> bool:
    def norm(value: object) -> object:
        if value is None or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
            return None
        if isinstance(value, (np.ndarray, list)):
            return [norm(v) for v in value]
        if isinstance(value, pd.Timestamp):
            return value.value
        return float(value) if isinstance(value, (int, float, np.number)) else value

    return [norm(v) for v in a] == [norm(v) for v in b]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=20_000)
    parser.add_argument("--service", default="ranking")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    settings = get_settings()
    store = offline_store(settings)
    labels = _labels(settings, args.labels, args.seed)
    out: dict[str, object] = {"labels": len(labels), "service": args.service}
    frames = {}
    joins: tuple[Literal["duckdb", "feast"], ...] = ("duckdb", "feast")
    for join in joins:
        wall, cpu = time.perf_counter(), time.process_time()
        frames[join] = training_frame(settings, labels, args.service, store=store, join=join)
        out[join] = {
            "seconds": round(time.perf_counter() - wall, 2),
            "cpu_seconds": round(time.process_time() - cpu, 2),
        }
    ours, feasts = frames["duckdb"], frames["feast"]
    out["same_columns"] = list(ours.columns) == list(feasts.columns)
    out["different_columns"] = [c for c in feasts.columns if not _equal(ours[c], feasts[c])]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
