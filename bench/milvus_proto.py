"""Prototype and benchmark: the memory collection on the embedded Milvus 2.3 with pymilvus 3.

Measures what issue 4 needs to choose: index (FLAT / IVF_FLAT / HNSW, COSINE / IP) for a
user-filtered search at 100k vectors across 2,000 users, insert throughput by batch size, the
cost of Strong against Bounded consistency and whether a write is searchable on return,
upsert/delete by ids and by filter, listing with limit/offset and iterators, flush, and the
escaping of string literals in filter expressions (checked against the server).

    .venv/bin/python bench/milvus_proto.py                  # starts a server in a temp dir
    .venv/bin/python bench/milvus_proto.py --uri http://127.0.0.1:19530 --vectors 20000
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import MilvusException

from core.stores import local_milvus
from memory import embed

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
DIM = 384
OPEN_END = 2**63 - 1  # INT64 sentinel for "no end": Milvus 2.3 has no nullable fields
NOW_US = 1_790_000_000_000_000
DAY_US = 86_400_000_000
INDEXES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "FLAT": ({}, {}),
    "IVF_FLAT": ({"nlist": 64}, {"nprobe": 16}),
    "HNSW": ({"M": 16, "efConstruction": 128}, {"ef": 64}),
}


def milvus_string(value: str) -> str:
    """A filter-expression string literal for `value`: JSON's escapes are the parser's escapes."""
    # Go's strconv.Unquote decodes the literal; JSON escapes \\ \" and control characters.
    # ensure_ascii=False keeps non-BMP text raw, since the parser rejects \\ud83d surrogates.
    return json.dumps(value, ensure_ascii=False)


def time_filter(now_us: int) -> str:
    """Memories valid and unexpired at `now_us`."""
    return f"valid_from <= {now_us} and valid_to > {now_us} and expires_at > {now_us}"


def memory_schema() -> Any:
    """The memory collection: VARCHAR ids, user_id partition key, 384-d embedding, scalars."""
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("memory_id", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("user_id", DataType.VARCHAR, max_length=128, is_partition_key=True)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("kind", DataType.VARCHAR, max_length=32)
    schema.add_field("valid_from", DataType.INT64)
    schema.add_field("valid_to", DataType.INT64)
    schema.add_field("expires_at", DataType.INT64)
    schema.add_field("confidence", DataType.FLOAT)
    schema.add_field("text", DataType.VARCHAR, max_length=4096)
    return schema


def make_rows(n: int, users: int, rng: np.random.Generator, prefix: str = "m") -> dict[str, Any]:
    """Columns of `n` memories spread evenly over `users`; each user's vectors cluster."""
    user_index = np.arange(n) % users
    centers = rng.standard_normal((users, DIM)).astype(np.float32)
    vectors = centers[user_index] + 1.5 * rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    valid_from = NOW_US - rng.integers(0, 365 * DAY_US, n)
    closed = rng.random(n) < 0.2  # superseded facts: closed in the past or the future
    valid_to = np.where(closed, NOW_US + rng.integers(-180 * DAY_US, 30 * DAY_US, n), OPEN_END)
    expiring = rng.random(n) < 0.1
    expires_at = np.where(expiring, NOW_US + rng.integers(-30 * DAY_US, 30 * DAY_US, n), OPEN_END)
    return {
        "memory_id": [f"{prefix}{i}" for i in range(n)],
        "user_id": [f"user_{u}" for u in user_index],
        "embedding": vectors,
        "valid_from": valid_from,
        "valid_to": valid_to,
        "expires_at": expires_at,
        "confidence": rng.random(n).astype(np.float32),
    }


def row_dicts(cols: dict[str, Any], start: int, stop: int) -> list[dict[str, Any]]:
    """Rows [start, stop) as the dicts pymilvus inserts."""
    return [
        {
            "memory_id": cols["memory_id"][i],
            "user_id": cols["user_id"][i],
            "embedding": cols["embedding"][i].tolist(),
            "kind": "fact",
            "valid_from": int(cols["valid_from"][i]),
            "valid_to": int(cols["valid_to"][i]),
            "expires_at": int(cols["expires_at"][i]),
            "confidence": float(cols["confidence"][i]),
            "text": f"memory {cols['memory_id'][i]} of {cols['user_id'][i]}",
        }
        for i in range(start, stop)
    ]


def percentiles(samples_s: list[float]) -> dict[str, float]:
    """p50/p99/mean in milliseconds."""
    ms = np.array(samples_s) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "mean_ms": round(float(ms.mean()), 2),
    }


def create(
    client: MilvusClient, name: str, partitions: int, index: str | None, metric: str
) -> None:
    """A fresh memory collection, with `index` on the embedding when given (then loaded)."""
    if client.has_collection(name):
        client.drop_collection(name)
    params = None
    if index is not None:
        params = MilvusClient.prepare_index_params()
        build, _ = INDEXES[index]
        params.add_index("embedding", index_type=index, metric_type=metric, params=build)
    client.create_collection(
        name,
        schema=memory_schema(),
        index_params=params,
        num_partitions=partitions,
        consistency_level="Bounded",
    )


def insert_all(client: MilvusClient, name: str, cols: dict[str, Any], batch: int) -> float:
    """Insert every row in batches; rows/s."""
    n = len(cols["memory_id"])
    started = time.perf_counter()
    for start in range(0, n, batch):
        client.insert(name, row_dicts(cols, start, min(n, start + batch)))
    return n / (time.perf_counter() - started)


def exact_top(cols: dict[str, Any], query: np.ndarray, user: str, k: int) -> list[str]:
    """Brute-force top-k ids of this user's memories valid now (the recall reference)."""
    mask = (
        (np.asarray(cols["user_id"]) == user)
        & (cols["valid_from"] <= NOW_US)
        & (cols["valid_to"] > NOW_US)
        & (cols["expires_at"] > NOW_US)
    )
    idx = np.flatnonzero(mask)
    scores = cols["embedding"][idx] @ query
    order = idx[np.argsort(-scores)[:k]]
    return [cols["memory_id"][i] for i in order]


def search_bench(
    client: MilvusClient,
    name: str,
    cols: dict[str, Any],
    index: str,
    metric: str,
    queries: int,
    rng: np.random.Generator,
    consistency: str = "Bounded",
) -> dict[str, Any]:
    """Latency and recall@10 of user-filtered searches with the time filter."""
    users = sorted(set(cols["user_id"]))
    _, search = INDEXES[index]
    latencies, recalls = [], []
    for _ in range(queries):
        user = users[int(rng.integers(len(users)))]
        row = int(rng.integers(len(cols["memory_id"])))
        query = cols["embedding"][row] + 0.5 * rng.standard_normal(DIM).astype(np.float32)
        query /= np.linalg.norm(query)
        expr = f"user_id == {milvus_string(user)} and {time_filter(NOW_US)}"
        started = time.perf_counter()
        hits = client.search(
            name,
            data=[query.tolist()],
            filter=expr,
            limit=10,
            output_fields=["text", "kind"],
            search_params={"metric_type": metric, "params": search},
            consistency_level=consistency,
        )[0]
        latencies.append(time.perf_counter() - started)
        truth = exact_top(cols, query, user, 10)
        if truth:
            recalls.append(len({h["id"] for h in hits} & set(truth)) / len(truth))
    return {**percentiles(latencies), "recall_at_10": round(float(np.mean(recalls)), 4)}


@contextmanager
def timed(results: dict[str, Any], key: str) -> Iterator[None]:
    """Store the seconds the block took under `key`."""
    started = time.perf_counter()
    yield
    results[key] = round(time.perf_counter() - started, 2)


def bench_indexes(
    client: MilvusClient, cols: dict[str, Any], partitions: int, queries: int
) -> dict[str, Any]:
    """Build time, search latency and recall for each index and metric on one data set."""
    results: dict[str, Any] = {}
    name = "bench_index"
    create(client, name, partitions, None, "IP")
    results["insert_rows_per_s_batch_1000"] = round(insert_all(client, name, cols, 1000))
    with timed(results, "flush_s"):
        client.flush(name)
    for index in INDEXES:
        for metric in ("IP", "COSINE"):
            key = f"{index}/{metric}"
            params = MilvusClient.prepare_index_params()
            params.add_index(
                "embedding", index_type=index, metric_type=metric, params=INDEXES[index][0]
            )
            started = time.perf_counter()
            client.create_index(name, params)
            wait_index(client, name)
            build = time.perf_counter() - started
            with timed(results, f"{key}/load_s"):
                client.load_collection(name)
            rng = np.random.default_rng(7)
            search_bench(client, name, cols, index, metric, 50, rng)  # warm-up
            results[key] = {
                "build_s": round(build, 2),
                **search_bench(client, name, cols, index, metric, queries, rng),
            }
            print(key, results[key], flush=True)
            client.release_collection(name)
            client.drop_index(name, "embedding")
    return results


def wait_index(client: MilvusClient, name: str, timeout_s: float = 900) -> None:
    """Block until every row of `name` is indexed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = client.describe_index(name, "embedding")
        if info.get("state") == "Finished" and info.get("pending_index_rows", 0) == 0:
            return
        time.sleep(0.2)
    raise TimeoutError(f"index on {name} not built in {timeout_s} s")


def bench_inserts(client: MilvusClient, rng: np.random.Generator) -> dict[str, Any]:
    """Insert throughput by batch size into a loaded, indexed collection."""
    results: dict[str, Any] = {}
    name = "bench_insert"
    create(client, name, 64, "FLAT", "IP")
    for batch, total in ((1, 300), (10, 2000), (100, 10000), (1000, 30000), (5000, 30000)):
        cols = make_rows(total, 200, rng, prefix=f"b{batch}_")
        results[f"batch_{batch}_rows_per_s"] = round(insert_all(client, name, cols, batch))
    client.drop_collection(name)
    return results


def bench_consistency(client: MilvusClient, rng: np.random.Generator) -> dict[str, Any]:
    """Latency by consistency level and whether a just-written row is found by the next call."""
    results: dict[str, Any] = {}
    name = "bench_consistency"
    create(client, name, 64, "FLAT", "IP")
    cols = make_rows(20000, 400, rng, prefix="c")
    insert_all(client, name, cols, 5000)
    for level in ("Strong", "Session", "Bounded", "Eventually"):
        latencies, found = [], 0
        for i in range(100):
            row = fresh_row(rng, f"fresh_{level}_{i}")
            started = time.perf_counter()
            client.insert(name, [row])
            write = time.perf_counter() - started
            expr = f"user_id == {milvus_string(row['user_id'])}"
            started = time.perf_counter()
            hits = client.search(
                name, data=[row["embedding"]], filter=expr, limit=1, consistency_level=level
            )[0]
            latencies.append(time.perf_counter() - started)
            found += bool(hits)
        # Searches with no write before them: what a read-only request pays for the level.
        reads = []
        for _ in range(100):
            user = f"user_{int(rng.integers(400))}"
            query = cols["embedding"][int(rng.integers(20000))].tolist()
            started = time.perf_counter()
            client.search(
                name,
                data=[query],
                filter=f"user_id == {milvus_string(user)}",
                limit=10,
                consistency_level=level,
            )
            reads.append(time.perf_counter() - started)
        results[level] = {
            "search_right_after_write": percentiles(latencies),
            "found_on_next_call": f"{found}/100",
            "read_only_search": percentiles(reads),
            "insert_1_row_ms": round(write * 1000, 2),
        }
        print(level, results[level], flush=True)
    results["bounded_visible_after"] = visibility(client, name, rng)
    results["guarantee_ts_after_write"] = guarantee_ts_reads(client, name, rng)
    print("visibility", results["bounded_visible_after"], results["guarantee_ts_after_write"])
    client.drop_collection(name)
    return results


def fresh_row(rng: np.random.Generator, user: str) -> dict[str, Any]:
    """One memory of a user nobody else writes."""
    row = row_dicts(make_rows(1, 1, rng, prefix=f"{user}_"), 0, 1)[0]
    row["user_id"] = user
    return row


def visibility(client: MilvusClient, name: str, rng: np.random.Generator) -> dict[str, float]:
    """How long after insert() returns a Bounded search first finds the row (polling every 5 ms)."""
    waits = []
    for i in range(50):
        row = fresh_row(rng, f"visible_{i}")
        client.insert(name, [row])
        started = time.perf_counter()
        expr = f"user_id == {milvus_string(row['user_id'])}"
        while not client.search(
            name, data=[row["embedding"]], filter=expr, limit=1, consistency_level="Bounded"
        )[0]:
            time.sleep(0.005)
        waits.append(time.perf_counter() - started)
    return percentiles(waits)


def hybrid_ts_now() -> int:
    """A Milvus hybrid timestamp for this instant: physical ms << 18 (logical bits zero)."""
    return (time.time_ns() // 1_000_000) << 18


def guarantee_ts_reads(client: MilvusClient, name: str, rng: np.random.Generator) -> dict[str, Any]:
    """Read-your-writes across processes: the writer records the wall time after insert; a
    reader (any process) passes it as guarantee_timestamp with consistency "Customized"."""
    latencies, found = [], 0
    for i in range(50):
        row = fresh_row(rng, f"ryw_{i}")
        client.insert(name, [row])
        written_ts = hybrid_ts_now()  # would be stored per user, e.g. in Redis
        expr = f"user_id == {milvus_string(row['user_id'])}"
        started = time.perf_counter()
        hits = client.search(
            name,
            data=[row["embedding"]],
            filter=expr,
            limit=1,
            consistency_level="Customized",
            guarantee_timestamp=written_ts,
        )[0]
        latencies.append(time.perf_counter() - started)
        found += bool(hits)
    return {**percentiles(latencies), "found": f"{found}/50"}


def bench_mutations(client: MilvusClient, rng: np.random.Generator) -> dict[str, Any]:
    """Upsert and delete by ids and by filter: latency and what a Strong read sees after."""
    results: dict[str, Any] = {}
    name = "bench_mutation"
    create(client, name, 64, "FLAT", "IP")
    cols = make_rows(20000, 400, rng, prefix="u")
    insert_all(client, name, cols, 5000)

    def strong_count(expr: str) -> int:
        rows = client.query(
            name, filter=expr, output_fields=["memory_id"], consistency_level="Strong", limit=16384
        )
        return len(rows)

    def measure(key: str, action: Callable[[], object], check: Callable[[], object]) -> None:
        started = time.perf_counter()
        action()
        took = time.perf_counter() - started
        results[key] = {"ms": round(took * 1000, 2), "after": check()}

    target = row_dicts(cols, 0, 1)[0]
    changed = {**target, "text": "changed by upsert", "confidence": 0.99}
    measure(
        "upsert_one_by_id",
        lambda: client.upsert(name, [changed]),
        lambda: [
            row["text"]
            for row in client.query(
                name,
                filter=f"memory_id == {milvus_string('u0')}",
                output_fields=["text"],
                consistency_level="Strong",
            )
        ],
    )
    batch = row_dicts(cols, 100, 200)
    for row in batch:
        row["text"] = "batch upsert"
    measure(
        "upsert_100_by_id",
        lambda: client.upsert(name, batch),
        lambda: strong_count('text == "batch upsert"'),
    )
    ids = [cols["memory_id"][i] for i in range(1000, 1100)]
    measure(
        "delete_100_by_ids",
        lambda: client.delete(name, ids=ids),
        lambda: strong_count(f"memory_id in {json.dumps(ids)}"),
    )
    user = milvus_string("user_7")
    results["rows_of_user_7_before"] = strong_count(f"user_id == {user}")
    measure(
        "delete_by_filter_user",
        lambda: client.delete(name, filter=f"user_id == {user}"),
        lambda: strong_count(f"user_id == {user}"),
    )
    expired = f"user_id == {milvus_string('user_8')} and expires_at <= {NOW_US}"
    results["expired_of_user_8_before"] = strong_count(expired)
    measure(
        "delete_by_filter_expired",
        lambda: client.delete(name, filter=expired),
        lambda: strong_count(expired),
    )
    with timed(results, "flush_20k_s"):
        client.flush(name)
    results["listing"] = bench_listing(client, name)
    client.drop_collection(name)
    return results


def bench_listing(client: MilvusClient, name: str) -> dict[str, Any]:
    """Listing one user's memories: limit/offset pages and the query iterator."""
    user = f"user_id == {milvus_string('user_3')}"
    fields = ["memory_id", "valid_from", "text"]
    started = time.perf_counter()
    pages, offset = [], 0
    while True:
        page = client.query(name, filter=user, output_fields=fields, limit=10, offset=offset)
        if not page:
            break
        pages.extend(page)
        offset += 10
    paged = time.perf_counter() - started
    started = time.perf_counter()
    iterator = client.query_iterator(name, filter=user, output_fields=fields, batch_size=10)
    listed: list[dict[str, Any]] = []
    while batch := iterator.next():
        listed.extend(batch)
    iterator.close()
    iterated = time.perf_counter() - started
    return {
        "rows": len(pages),
        "limit_offset_pages_ms": round(paged * 1000, 1),
        "iterator_ms": round(iterated * 1000, 1),
        "iterator_rows": len(listed),
        "same_ids": sorted(r["memory_id"] for r in pages) == sorted(r["memory_id"] for r in listed),
    }


NASTY = [
    'x" || user_id != "x',
    "a\\",
    'a\\" or 1==1 or "',
    "it's",
    "tab\there",
    "new\nline",
    "uni é ✓ 😀",
    "back\\\\slash",
    '\\"',
    "'",
    '""',
    "q'\"mix",
    "\\x41",
    "\\u0041",
    "nul\x00?",
    "ctl\x01\x1f",
    "%",
    "a_b",
    "\\n literal",
    "x' || user_id != 'x",
]


def check_escaping(client: MilvusClient, rng: np.random.Generator) -> dict[str, Any]:
    """Each nasty string round-trips as a literal and cannot widen a user filter."""
    name = "bench_escape"
    create(client, name, 16, "FLAT", "IP")
    cols = make_rows(len(NASTY) + 10, 2, rng, prefix="e")
    rows = row_dicts(cols, 0, len(NASTY) + 10)
    for row, text in zip(rows, NASTY, strict=False):
        row["text"] = text
        row["user_id"] = "victim"
    client.insert(name, rows)
    matched, failures = 0, []
    for i, text in enumerate(NASTY):
        expr = f"user_id == {milvus_string('victim')} and text == {milvus_string(text)}"
        try:
            got = client.query(
                name, filter=expr, output_fields=["memory_id"], consistency_level="Strong"
            )
        except MilvusException as e:
            failures.append(f"{text!r}: {e.message}")
            continue
        if [g["memory_id"] for g in got] == [rows[i]["memory_id"]]:
            matched += 1
        else:
            failures.append(f"{text!r} matched {got}")
    widened = 0
    for text in NASTY:  # used as a user id, none may reach the victim's rows
        got = client.query(
            name,
            filter=f"user_id == {milvus_string(text)}",
            output_fields=["memory_id"],
            consistency_level="Strong",
        )
        widened += len(got)
    naive = client.query(
        name,
        filter='user_id == "x" || user_id != "x"',
        output_fields=["memory_id"],
        consistency_level="Strong",
    )
    client.drop_collection(name)
    return {
        "literals_round_trip": f"{matched}/{len(NASTY)}",
        "failures": failures,
        "rows_reached_through_escaped_user_ids": widened,
        "rows_reached_by_naive_fstring_injection": len(naive),
    }


def server_rss_mb(directory: Path | None) -> float | None:
    """Resident memory of the local server, when this run started it."""
    if directory is None:
        return None
    state = json.loads((directory / "server.json").read_text())
    for line in Path(f"/proc/{state['pid']}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


SENTENCES = [
    "I moved to Berlin last spring.",
    "Last year I relocated to Berlin.",
    "My sister lives in Lisbon and works as a nurse.",
    "I am allergic to peanuts.",
    "Peanuts give me a bad allergic reaction.",
    "I prefer window seats on long flights.",
    "On planes I always book a seat by the window.",
    "The quarterly report is due on Friday.",
    "Our dog is called Pixel and she is three years old.",
    "I started learning the cello in January.",
    "I don't drink coffee after 2pm because I can't sleep.",
    "Please recommend some science fiction novels.",
    "My favourite cuisine is Ethiopian food.",
    "We are planning a trip to Japan in October.",
    "The wifi in the office keeps dropping.",
    "I switched from running to swimming because of my knee.",
    "Stocks fell sharply after the announcement.",
    "Can you remind me to call my mother on Sunday?",
    "I have been vegetarian for ten years.",
    "The new phone has a much better camera.",
]
WORDS = str.split(
    "i really like the new coffee place near my office and my sister moved to berlin last "
    "spring so we travel there often for weekend trips with friends family kids dog cat book "
    "music film running work project meeting dinner tomorrow yesterday because never always"
)


def chat_messages(n: int, words: int = 27, seed: int = 0) -> list[str]:
    """`n` distinct synthetic chat messages of `words` words (about 29 tokens)."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(words)) for _ in range(n)]


def texts_per_s(embedder: embed.Embedder, texts: list[str], batch: int, repeats: int = 3) -> float:
    """Throughput when the caller hands over `batch` texts per call: the best of `repeats` runs,
    since other processes on a shared machine only ever slow a run down."""
    embedder.embed(texts[:batch])  # warm-up: first-call allocations
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for start in range(0, len(texts), batch):
            embedder.embed(texts[start : start + batch])
        best = min(best, time.perf_counter() - started)
    return round(len(texts) / best, 1)


def agreement(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """Cosine of each row to the reference row, and how often the nearest neighbour agrees."""
    cosines = np.sum(reference * other, axis=1)
    ref_nn = np.argsort(-(reference @ reference.T), axis=1)[:, 1]
    other_nn = np.argsort(-(other @ other.T), axis=1)[:, 1]
    return {
        "cosine_mean": round(float(cosines.mean()), 4),
        "cosine_min": round(float(cosines.min()), 4),
        "nearest_neighbour_agreement": round(float(np.mean(ref_nn == other_nn)), 3),
    }


def bench_embedding(threads: int) -> dict[str, Any]:
    """Load time, texts/s by batch size per backend, quality of ONNX variants, and the levers."""
    results: dict[str, Any] = {"threads": threads}
    models = OUT / "models"
    started = time.perf_counter()
    embed.build_onnx(models, "int8")
    results["onnx_export_and_quantize_s_if_not_cached"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    torch_model = embed.load_torch_minilm(threads=threads)
    results["load_s/torch"] = round(time.perf_counter() - started, 2)
    backends: dict[str, embed.Embedder] = {"torch-fp32": torch_model}
    for variant in embed.ONNX_VARIANTS:
        started = time.perf_counter()
        backends[f"onnx-{variant}"] = embed.load_onnx_minilm(
            models, variant=variant, threads=threads
        )
        results[f"load_s/onnx-{variant}"] = round(time.perf_counter() - started, 2)
    messages = chat_messages(512)
    for name, backend in backends.items():
        for batch in (1, 32, 128, 256):
            count = 64 if batch == 1 else 512
            results[f"{name}/batch_{batch}_texts_per_s"] = texts_per_s(
                backend, messages[:count], batch
            )
            print(name, batch, results[f"{name}/batch_{batch}_texts_per_s"], flush=True)
    quality_texts = SENTENCES + chat_messages(200, seed=1) + chat_messages(100, words=80, seed=2)
    reference = torch_model.embed(quality_texts)
    for variant in embed.ONNX_VARIANTS:
        results[f"quality/onnx-{variant}"] = agreement(
            reference, backends[f"onnx-{variant}"].embed(quality_texts)
        )
    for variant in embed.ONNX_VARIANTS:
        results[f"levers/onnx-{variant}"] = embedding_levers(models, variant, threads)
    return results


def embedding_levers(models: Path, variant: str, threads: int) -> dict[str, Any]:
    """What dedupe, caching, sorting by length, short texts and a shorter max_seq_length buy."""

    def load(**kwargs: int) -> embed.Embedder:
        return embed.load_onnx_minilm(models, variant=variant, threads=threads, **kwargs)

    fast = load()
    out: dict[str, Any] = {}
    out["27_word_messages_texts_per_s"] = texts_per_s(fast, chat_messages(512, seed=7), 128)
    out["8_word_facts_texts_per_s"] = texts_per_s(fast, chat_messages(512, 8, seed=8), 128)
    distinct = chat_messages(512, seed=3)
    with_repeats = distinct[:256] * 2  # half the messages are repeats, e.g. "ok", "thanks!"
    random.Random(4).shuffle(with_repeats)
    out["512_distinct_one_call_texts_per_s"] = texts_per_s(fast, distinct, 512)
    out["512_half_repeated_one_call_texts_per_s"] = texts_per_s(fast, with_repeats, 512)
    cached = embed.CachedEmbedder(fast)
    cached.embed(distinct[:256])
    out["cache_holds_half_texts_per_s"] = texts_per_s(cached, distinct, 128, repeats=1)
    mixed = [
        " ".join(chat_messages(1, words=w, seed=i)[0].split()[:w])
        for i, w in enumerate(random.Random(5).choices([5, 12, 27, 60, 150], k=512))
    ]
    out["mixed_lengths_sorted_texts_per_s"] = texts_per_s(fast, mixed, 128)
    unsorted = load(batch_size=10_000)
    out["mixed_lengths_one_padded_batch_texts_per_s"] = texts_per_s(unsorted, mixed, 128)
    long_texts = chat_messages(128, words=150, seed=6)
    for length in (256, 128, 64):
        model = load(max_seq_length=length)
        out[f"150_word_texts_seq{length}_texts_per_s"] = texts_per_s(model, long_texts, 32)
    return out


SECTIONS = ("escaping", "indexes", "inserts", "consistency", "mutations", "embed")


def run_milvus_sections(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """The sections that need a server: one started in a temp dir unless --uri is given."""
    with tempfile.TemporaryDirectory(prefix="milvus-proto-") as tmp:
        directory = None if args.uri else Path(tmp) / "milvus"
        uri = args.uri
        if directory is not None:
            started = time.perf_counter()
            uri = local_milvus.ensure_milvus(
                directory, binaries_dir=OUT / "milvus-bin", die_with_caller=True
            )
            results["server_start_s"] = round(time.perf_counter() - started, 2)
            results["server_rss_idle_mb"] = server_rss_mb(directory)
        client = MilvusClient(uri=uri)
        rng = np.random.default_rng(42)
        try:
            if "escaping" in args.only:
                results["escaping"] = check_escaping(client, rng)
                print("escaping", results["escaping"], flush=True)
            if "indexes" in args.only:
                cols = make_rows(args.vectors, args.users, rng)
                for partitions in args.partitions:
                    results[f"indexes_{partitions}_partitions"] = bench_indexes(
                        client, cols, partitions, args.queries
                    )
                    results[f"server_rss_after_{partitions}_mb"] = server_rss_mb(directory)
            if "inserts" in args.only:
                results["inserts"] = bench_inserts(client, rng)
                print("inserts", results["inserts"], flush=True)
            if "consistency" in args.only:
                results["consistency"] = bench_consistency(client, rng)
            if "mutations" in args.only:
                results["mutations"] = bench_mutations(client, rng)
                print("mutations", results["mutations"], flush=True)
        finally:
            client.close()
            if directory is not None:
                local_milvus.stop_milvus(directory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uri", help="an existing server; default: start one in a temp dir")
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--partitions", type=int, nargs="+", default=[64])
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--only", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--threads", type=int, default=1, help="embedding threads per process")
    args = parser.parse_args()
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)  # expected errors stay quiet
    results: dict[str, Any] = {"vectors": args.vectors, "users": args.users}
    results["load_average_at_start"] = os.getloadavg()
    if set(args.only) - {"embed"}:
        run_milvus_sections(args, results)
    if "embed" in args.only:
        results["embed"] = bench_embedding(args.threads)
    results["load_average_at_end"] = os.getloadavg()
    OUT.mkdir(parents=True, exist_ok=True)
    suffix = f"-threads{args.threads}" if "embed" in args.only else ""
    target = OUT / f"milvus_proto-{'-'.join(args.only)}{suffix}.json"
    target.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print(f"written to {target}")


if __name__ == "__main__":
    main()
