"""The online read on a 3-master Redis Cluster beside a single Redis, in one run.

Two throwaway homes hold the same synthetic snapshots (bench/features.py: 27 user and 14 item
features); Engram's bulk materialization writes one into a local redis-server and the other into
a local 3-master cluster (tests/redis_cluster.py: redis-server --cluster-enabled yes, AOF on as
Engram's local server has it). Then the `ranking` service is read for 1 user + N items (ttl not
enforced, on-demand category match, float matrix out) from both, alternating request by request
so both see the same machine: wall p50/p99 and CPU of this process per read. The two readers
and Feast's get_online_features on the cluster (redis_type: redis_cluster) are checked equal
first; Feast is timed on every 8th round for reference. Then the fetch alone on the cluster
(one HMGET per entity, replies left undecoded): Engram's slot-routed raw transport against
redis-py's RedisCluster pipeline.

    PYTHONPATH=$PWD .venv/bin/python bench/cluster_read.py [--users 20000] [--items 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.features import AS_OF, CATEGORIES, make_home
from core.settings import Settings
from core.stores import feature_store, local_redis
from core.stores.online.layout import redis_keys
from core.stores.online.plan import service_plan
from core.stores.online.read_service import ServiceReader
from core.stores.online.transport import bulk, round_trip
from core.stores.services import connect_url
from pipelines.materialize import materialize_incremental
from tests.redis_cluster import start_cluster

WARMUP = 50
PROJECT = "engram"


def materialized(settings: Settings, url: str) -> tuple[Any, ServiceReader, float]:
    """The home's store, a reader of its `ranking` service, and the materialize seconds."""
    store = feature_store.open_store(settings, url)
    feature_store.apply_repo(store, settings)
    client = connect_url(settings, url)
    began = time.perf_counter()
    materialize_incremental(store, client, AS_OF)
    seconds = time.perf_counter() - began
    reader = ServiceReader(client, store.project, service_plan(store, "ranking"))
    return store, reader, seconds


def timed(
    paths: dict[str, Callable[[int], object]], rounds: int, every: dict[str, int]
) -> dict[str, dict[str, float]]:
    """Each path on the same request i, alternated; wall p50/p99 and CPU per read."""
    for fn in paths.values():
        for i in range(WARMUP):
            fn(i)
    wall: dict[str, list[float]] = {name: [] for name in paths}
    cpu: dict[str, list[float]] = {name: [] for name in paths}
    for i in range(rounds):
        for name, fn in paths.items():
            if i % every.get(name, 1):
                continue
            began, began_cpu = time.perf_counter(), time.process_time()
            fn(i)
            wall[name].append(time.perf_counter() - began)
            cpu[name].append(time.process_time() - began_cpu)
    out = {}
    for name in paths:
        ms = np.array(wall[name]) * 1e3
        out[name] = {
            "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "cpu_ms_per_read": round(float(np.mean(cpu[name])) * 1e3, 3),
            "n": len(ms),
        }
    return out


def fetch_paths(
    reader: ServiceReader, users: list[str], items: list[list[str]]
) -> dict[str, Callable[[int], object]]:
    """The HMGETs of a read, through the raw transport and through redis-py's cluster pipeline."""
    stored = reader.stored_reader
    client = stored._client
    fields = {
        key: list(stored._groups[key].fields[: len(stored.names(key))])
        for key in ("user_id", "item_id")
    }

    def keyed(i: int) -> list[tuple[bytes, list[bytes]]]:
        pairs = [(k, fields["user_id"]) for k in redis_keys(PROJECT, "user_id", [users[i]])]
        return pairs + [(k, fields["item_id"]) for k in redis_keys(PROJECT, "item_id", items[i])]

    def raw(i: int) -> object:
        pairs = keyed(i)
        commands = [
            b"*%d\r\n$5\r\nHMGET\r\n%s" % (2 + len(f), b"".join(map(bulk, [k, *f])))
            for k, f in pairs
        ]
        return round_trip(client, commands, [k for k, _ in pairs])

    def redis_py(i: int) -> object:
        pipe = client.pipeline(transaction=False)
        for key, names in keyed(i):
            pipe.hmget(key, names)
        return pipe.execute()

    return {"raw_transport": raw, "redis_py_cluster_pipeline": redis_py}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--n-items", type=int, default=100, help="items a read")
    parser.add_argument("--reads", type=int, default=2000, help="rounds")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="engram-bench-cluster-"))
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "users": args.users,
        "items": args.items,
        "items_per_read": args.n_items,
        "cpus": os.cpu_count(),
    }
    stop_cluster: Callable[[], None] | None = None
    try:
        single_url = local_redis.ensure_redis(work / "redis")
        cluster_url, stop_cluster = start_cluster(work / "cluster")
        single = make_home(work / "single", single_url, args.users, args.items)
        cluster = make_home(work / "cluster-home", cluster_url, args.users, args.items)
        cluster = cluster.model_copy(update={"redis_cluster": True})
        _, single_reader, single_s = materialized(single, single_url)
        cluster_store, cluster_reader, cluster_s = materialized(cluster, cluster_url)
        results["materialize_s"] = {"single": round(single_s, 2), "cluster": round(cluster_s, 2)}

        rng = np.random.default_rng(7)
        n = args.n_items
        users = [f"u{i}" for i in rng.integers(0, args.users, args.reads + WARMUP)]
        items = [
            [f"i{i}" for i in rng.choice(args.items, n, replace=False)]
            for _ in range(args.reads + WARMUP)
        ]
        categories = [str(c) for c in CATEGORIES[rng.integers(0, 16, n)]]
        service = cluster_store.get_feature_service("ranking")

        def read(reader: ServiceReader, as_dict: bool = False) -> Callable[[int], object]:
            def run(i: int) -> object:
                got = reader.read(
                    {"user_id": [users[i]], "item_id": items[i]}, {"item_category": categories}
                )
                return got.to_dict() if as_dict else got.matrix()

            return run

        def feast_cluster(i: int) -> object:
            rows = [
                {"user_id": users[i], "item_id": item, "item_category": category}
                for item, category in zip(items[i], categories, strict=True)
            ]
            return cluster_store.get_online_features(features=service, entity_rows=rows).to_dict()

        for i in range(3):
            ours = read(cluster_reader, as_dict=True)(i)
            assert ours == read(single_reader, as_dict=True)(i), "cluster and single disagree"
            assert ours == feast_cluster(i), "the cluster read disagrees with Feast's"
        results["load_average_before"] = os.getloadavg()[0]
        results["ranking_1_user_n_items"] = timed(
            {
                "single_redis": read(single_reader),
                "cluster_3_masters": read(cluster_reader),
                "feast_sdk_cluster": feast_cluster,
            },
            args.reads,
            {"feast_sdk_cluster": 8},
        )
        results["fetch_only_cluster"] = timed(
            fetch_paths(cluster_reader, users, items), args.reads, {}
        )
        results["load_average_after"] = os.getloadavg()[0]
    finally:
        local_redis.stop_redis(work / "redis")
        if stop_cluster is not None:
            stop_cluster()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
