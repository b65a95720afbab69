"""The fast online read on a materialized home: the `ranking` service for 1 user + N catalog
items (ttl enforced, on-demand category match, float matrix out), wall p50/p99 and CPU per read.

CPU time per read is what a code change moves; wall time also moves with the neighbours on a
shared machine, so compare runs alternated in one session. Needs `engram ingest`, `materialize`
(the demo preset, say); figures in docs/benchmarks.md.

    ENGRAM_HOME=... .venv/bin/python bench/online_read.py [--reads 2000] [--items 100]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import pandas as pd

from core.settings import get_settings
from core.stores import feature_store
from core.stores.online.plan import service_plan
from core.stores.online.read_service import ServiceReader
from core.stores.services import connect_redis, resolve_redis_url
from pipelines.catalog_store import catalog_path

WARMUP = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=2000, help="timed reads")
    parser.add_argument("--items", type=int, default=100, help="items a read")
    args = parser.parse_args()

    settings = get_settings()
    store = feature_store.open_store(settings, resolve_redis_url(settings))
    reader = ServiceReader(connect_redis(settings), store.project, service_plan(store, "ranking"))
    catalog = pd.read_parquet(catalog_path(settings), columns=["item_id", "category"])
    items, categories = list(catalog["item_id"]), list(catalog["category"])
    users = [f"u{i:06d}" for i in range(100)]  # the data generator's first users
    rng = np.random.default_rng(1)
    wall, cpu = [], []
    for i in range(WARMUP + args.reads):
        picked = rng.choice(len(items), args.items, replace=False)
        entities = {"user_id": [users[i % len(users)]], "item_id": [items[j] for j in picked]}
        request = {"item_category": [categories[j] for j in picked]}
        began, began_cpu = time.perf_counter(), time.process_time()
        reader.read(entities, request, enforce_ttl=True).matrix()
        if i >= WARMUP:
            wall.append(time.perf_counter() - began)
            cpu.append(time.process_time() - began_cpu)
    ms = np.array(wall) * 1e3
    print(
        json.dumps(
            {
                "reads": args.reads,
                "items": args.items,
                "wall_p50_ms": round(float(np.percentile(ms, 50)), 3),
                "wall_p99_ms": round(float(np.percentile(ms, 99)), 3),
                "cpu_ms_per_read": round(float(np.mean(cpu)) * 1e3, 3),
                "load_average": os.getloadavg()[0],
            }
        )
    )


if __name__ == "__main__":
    main()
