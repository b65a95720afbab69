"""Feature store benchmark: Engram's repo, Feast's SDK and Engram's paths side by side in one run.

Writes synthetic snapshots shaped exactly like the pipeline's (pipelines/feature_specs.py: 27
user and 14 item features, lists and times included) into a throwaway ENGRAM_HOME with a
redis-server of its own (Engram's local configuration: append-only file, fsync every second),
applies feature_repo/ and measures:
  * materialization: Feast's own `materialize` on a slice of users, then Engram's bulk path
    (`engram materialize`) on all of them: seconds, rows/s, CPU of Python and of Redis, Redis
    memory;
  * online reads, p50/p99, interleaved so both paths see the same machine: the ranking
    service's features of 1 user, of 100 items, and of 1 user + 100 (and 500) candidate items
    with the on-demand category match, through get_online_features and through Engram's
    ServiceReader (values checked equal first).

    .venv/bin/python bench/features.py                 # 1M users, 50k items
    .venv/bin/python bench/features.py --users 100000 --reads 500
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import redis

from core.settings import Settings
from core.stores import feature_store, local_redis
from core.stores.online.plan import service_plan
from core.stores.online.read_service import ServiceReader
from pipelines.batch import ITEM_FEATURES_FILE, USER_FEATURES_FILE, features_dir
from pipelines.feature_specs import ITEM_FEATURES, USER_FEATURES, FeatureSpec, snapshot_schema
from pipelines.materialize import materialize_incremental

AS_OF = datetime(2026, 3, 1, tzinfo=UTC)
CATEGORIES = np.array([f"category_{i:02d}" for i in range(16)])
OUT = Path(__file__).parent / "out" / "features.json"


def snapshot(key: str, prefix: str, specs: tuple[FeatureSpec, ...], n: int, seed: int) -> pa.Table:
    """One row per entity, stamped within the day before AS_OF, with 5% nulls in the floats."""
    rng = np.random.default_rng(seed)
    as_of = int(AS_OF.timestamp() * 1e6)
    stamps = pa.array(as_of - rng.integers(0, 86_400_000_000, n)).cast(pa.timestamp("us", "UTC"))
    columns: dict[str, pa.Array] = {
        key: pa.array(np.char.add(prefix, np.arange(n).astype("U8"))),
        "event_timestamp": stamps,
        "created": stamps,
    }
    lengths = rng.integers(0, 6, n)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    total = int(lengths.sum())
    for spec in specs:
        if spec.dtype == "int64":
            column = pa.array(rng.integers(0, 10 ** int(rng.integers(1, 6)), n))
        elif spec.dtype == "float64":
            column = pa.array(rng.random(n) * 100, mask=rng.random(n) < 0.05)
        elif spec.dtype == "timestamp":
            times = as_of - rng.integers(0, 10**13, n)
            column = pa.array(times).cast(pa.timestamp("us", "UTC"))
        elif spec.dtype == "list<string>":
            names = pa.array(CATEGORIES).take(pa.array(rng.integers(0, len(CATEGORIES), total)))
            column = pa.ListArray.from_arrays(offsets, names)
        else:
            column = pa.ListArray.from_arrays(offsets, pa.array(rng.random(total), pa.float32()))
        columns[spec.name] = column
    return pa.table(columns).cast(snapshot_schema(key, specs))


def make_home(directory: Path, redis_url: str, users: int, items: int) -> Settings:
    """A home holding synthetic user and item snapshots."""
    settings = Settings(engram_home=directory, redis_url=redis_url)
    out = features_dir(settings)
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(snapshot("user_id", "u", USER_FEATURES, users, 0), out / USER_FEATURES_FILE)
    pq.write_table(snapshot("item_id", "i", ITEM_FEATURES, items, 1), out / ITEM_FEATURES_FILE)
    return settings


def redis_info(client: redis.Redis, section: str) -> dict[str, Any]:
    return cast(dict, client.info(section))


def redis_cpu(client: redis.Redis) -> float:
    cpu = redis_info(client, "cpu")
    return float(cpu["used_cpu_user"] + cpu["used_cpu_sys"])


def feast_materialize(work: Path, url: str, users: int, items: int) -> dict[str, Any]:
    """Feast's own materialize of every view on a smaller home, into its own database."""
    db_url = url.rsplit("/", 1)[0] + "/1"
    settings = make_home(work / "feast-home", db_url, users, items)
    store = feature_store.open_store(settings, db_url)
    feature_store.apply_repo(store, settings)
    views = [v.name for v in store.list_feature_views() if v.entities == ["user"]]
    began = time.perf_counter()
    store.materialize(AS_OF - timedelta(days=2), AS_OF, feature_views=views)
    seconds = time.perf_counter() - began
    with redis.Redis.from_url(db_url) as client:
        client.flushdb()
    return {"users": users, "seconds": round(seconds, 2), "users_per_s": round(users / seconds)}


def engram_materialize(settings: Settings, url: str) -> dict[str, Any]:
    """`engram materialize` on the big home, with CPU and memory."""
    store = feature_store.open_store(settings, url)
    feature_store.apply_repo(store, settings)
    with redis.Redis.from_url(url) as client:
        base = redis_info(client, "memory")["used_memory"]
        cpu, python = redis_cpu(client), time.process_time()
        began = time.perf_counter()
        results = materialize_incremental(store, client, AS_OF)
        seconds = time.perf_counter() - began
        python, cpu = time.process_time() - python, redis_cpu(client) - cpu
        time.sleep(2)  # let Redis flush its append-only buffer before memory is read
        info = redis_info(client, "memory")
        memory = info["used_memory"]
        key = next(client.scan_iter(match=b"*u*", count=100))
        one_user = client.memory_usage(key)
    users = next(r for r in results if "user_1d" in r.views)
    return {
        "passes": {"+".join(r.views): [r.rows_written, round(r.seconds, 2)] for r in results},
        "user_rows": users.rows_written,
        "user_seconds": round(users.seconds, 2),
        "users_per_s": round(users.rows_written / users.seconds),
        "seconds_all": round(seconds, 2),
        # On a shared machine wall time depends on the neighbours; CPU time does not.
        "python_cpu_s": round(python, 2),
        "redis_cpu_s": round(cpu, 2),
        "redis_used_memory_mb": round(memory / 2**20, 1),
        "redis_dataset_mb": round(info["used_memory_dataset"] / 2**20, 1),
        "bytes_per_entity": round((memory - base) / sum(r.rows_written for r in results)),
        "memory_usage_of_one_user_hash": one_user,
        "load_average": os.getloadavg()[0],
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.array(samples) * 1e3
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "n": len(samples),
    }


def side_by_side(
    paths: dict[str, Callable[[int], object]], rounds: int, every: dict[str, int]
) -> dict[str, dict[str, float]]:
    """Time each path on the same request i, interleaved; a path runs every `every[name]` rounds."""
    for fn in paths.values():
        for i in range(20):
            fn(i)  # warm caches and connections
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for i in range(rounds):
        for name, fn in paths.items():
            if i % every.get(name, 1) == 0:
                began = time.perf_counter()
                fn(i)
                samples[name].append(time.perf_counter() - began)
    return {name: percentiles(values) for name, values in samples.items()}


def reads(settings: Settings, url: str, users: int, items: int, rounds: int) -> dict[str, Any]:
    store = feature_store.open_store(settings, url)
    service = store.get_feature_service("ranking")
    plan = service_plan(store, service)
    client = redis.Redis.from_url(url)
    reader = ServiceReader(client, store.project, plan)
    views = {v.name: v for v in store.list_feature_views()}
    refs = {
        entity: [
            f"{p.name}:{f.name}"
            for p in service.feature_view_projections
            if p.name in views and views[p.name].entities == [entity]
            for f in p.features
        ]
        for entity in ("user", "item")
    }
    rng = np.random.default_rng(7)
    user_ids = [f"u{i}" for i in rng.integers(0, users, rounds + 20)]
    batches = {
        n: [[f"i{i}" for i in rng.choice(items, n, replace=False)] for _ in range(rounds + 20)]
        for n in (100, 500)
    }
    categories = {n: [str(c) for c in CATEGORIES[rng.integers(0, 16, n)]] for n in (100, 500)}

    def feast_user(i: int) -> object:
        rows = [{"user_id": user_ids[i]}]
        return store.get_online_features(features=refs["user"], entity_rows=rows).to_dict()

    def engram_user(i: int) -> object:
        return reader.read({"user_id": [user_ids[i]]}, on_demand=False).matrix()

    def feast_items(i: int) -> object:
        rows = [{"item_id": item} for item in batches[100][i]]
        return store.get_online_features(features=refs["item"], entity_rows=rows).to_dict()

    def engram_items(i: int) -> object:
        return reader.read({"item_id": batches[100][i]}, on_demand=False).matrix()

    def feast_ranking(n: int) -> Callable[[int], object]:
        def run(i: int) -> object:
            rows = [
                {"user_id": user_ids[i], "item_id": item, "item_category": category}
                for item, category in zip(batches[n][i], categories[n], strict=True)
            ]
            return store.get_online_features(features=service, entity_rows=rows).to_dict()

        return run

    def engram_ranking(n: int, as_dict: bool = False) -> Callable[[int], object]:
        def run(i: int) -> object:
            got = reader.read(
                {"user_id": [user_ids[i]], "item_id": batches[n][i]},
                {"item_category": categories[n]},
            )
            return got.to_dict() if as_dict else got.matrix()

        return run

    # Both paths must return the same before either is timed.
    for i in range(3):
        assert engram_ranking(100, as_dict=True)(i) == feast_ranking(100)(i), "paths disagree"
        assert reader.read({"user_id": [user_ids[i]]}, on_demand=False).to_dict() == {
            k: v for k, v in cast(dict, feast_user(i)).items()
        }
    out = {
        "1_user": side_by_side({"feast_sdk": feast_user, "engram_matrix": engram_user}, rounds, {}),
        "100_items": side_by_side(
            {"feast_sdk": feast_items, "engram_matrix": engram_items}, rounds, {"feast_sdk": 4}
        ),
        "1_user_100_items_ranking": side_by_side(
            {
                "feast_sdk": feast_ranking(100),
                "engram_matrix": engram_ranking(100),
                "engram_dict": engram_ranking(100, as_dict=True),
            },
            rounds,
            {"feast_sdk": 8},
        ),
        "1_user_500_items_ranking": side_by_side(
            {"feast_sdk": feast_ranking(500), "engram_matrix": engram_ranking(500)},
            rounds // 2,
            {"feast_sdk": 10},
        ),
        "features": {
            "user": len(refs["user"]),
            "item": len(refs["item"]),
            "ranking": len(plan.outputs),
        },
    }
    client.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--feast-users", type=int, default=20_000, help="Feast materializes these")
    parser.add_argument("--reads", type=int, default=2000, help="rounds of each read benchmark")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() before the reads")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="engram-bench-features-"))
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "users": args.users,
        "items": args.items,
        "cpus": os.cpu_count(),
    }
    try:
        url = local_redis.ensure_redis(work / "redis")
        began = time.perf_counter()
        settings = make_home(work / "home", url, args.users, args.items)
        results["generate_s"] = round(time.perf_counter() - began, 2)
        results["feast_materialize"] = feast_materialize(work, url, args.feast_users, 1000)
        results["engram_materialize"] = engram_materialize(settings, url)
        if args.gc_freeze:
            # What a server does once its models and stores are loaded: long-lived objects
            # leave the collector's view, so a full collection does not walk them mid-request.
            gc.collect()
            gc.freeze()
        results["gc_freeze"] = args.gc_freeze
        results["reads"] = reads(settings, url, args.users, args.items, args.reads)
        results["load_average_end"] = os.getloadavg()[0]
    finally:
        local_redis.stop_redis(work / "redis")
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(results, indent=2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
