# ruff: noqa: E402  (imports follow the sys.path fix below)
"""Benchmark: memories end to end on generated data with planted facts (issue 4).

(a) extraction precision and recall per kind (rules + search-burst intents, scored against the
    planted facts with bench/extract_eval.py); with `--llm`, the same for memory.llm_extract
    side by side: a model at ENGRAM_LLM_BASE_URL (`settings`), or the plumbing alone against
    bench/chat_stub.py answering the planted facts (`truth-stub`) or the rules' (`rule-stub`);
(b) write throughput: extraction + embedding + lifecycle + storage through MemoryService, on a
    fresh collection and a cold embedding cache, in the batches `engram ingest` uses;
(c) search latency for one user, query embedding included, with the collection holding about
    `--memories` memories across `--users` users (what (b) wrote, topped up with copies of it);
(d) recall@10 (and @3) of the turns that state planted facts, for the planted queries asked
    "as of" one minute after the last turn stating the fact, against a plain dense baseline in
    the same run: every text signal of the user embedded, cosine only, signals before as_of.

    .venv/bin/python bench/memory.py                 # starts Milvus in a temp dir
    .venv/bin/python bench/memory.py --uri http://127.0.0.1:19530 --only recall
    .venv/bin/python bench/memory.py --uri ... --only search   # reuses the set of a write run
    .venv/bin/python bench/memory.py --only extraction --llm truth-stub   # no Milvus needed
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path and its name, memory.py,
# would shadow the `memory` package: the project's root takes its place (for `bench.*` too).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse
import json
import logging
import os
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson

from bench.chat_stub import ChatStub, rule_answers, truth_answers
from bench.extract_eval import score_extraction
from core.errors import ConfigError
from core.settings import Settings, get_settings
from core.stores import local_milvus
from memory import embed
from memory.behaviour import search_burst_intents
from memory.extract import Extractor, RuleExtractor, TextSignal
from memory.ingest import text_signal_batches
from memory.llm_extract import LLMConfig, LLMExtractor, llm_config
from memory.search import DEFAULT_WEIGHTS, Weights
from memory.service import EMBED_THREADS, MemoryService, WriteSummary
from memory.store import MilvusMemoryStore
from pipelines import duck, event_store
from pipelines.batch import run_ingest
from pipelines.generate import GenerateConfig, Truth, load_truth, write_dataset

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
SECTIONS = ("extraction", "write", "search", "recall")
LLM_MODES = ("off", "settings", "truth-stub", "rule-stub")
TEXT_SOURCES = ("message", "review")  # planted facts an extractor reads (not search bursts)
AS_OF_NOW = datetime(2026, 11, 1, tzinfo=UTC)  # after every generated event


def percentiles(samples_s: Sequence[float]) -> dict[str, float]:
    """p50/p99/mean in milliseconds."""
    ms = np.array(samples_s) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "mean_ms": round(float(ms.mean()), 2),
        "n": len(ms),
    }


def prepare(
    name: str, config: GenerateConfig
) -> tuple[list[TextSignal], Truth, list[dict[str, Any]]]:
    """Generate a dataset (cached under bench/out), normalize it through the batch pipeline and
    return its text signals in user and time order, the truth and the planted queries."""
    directory = OUT / f"memory-{name}"
    stamp = directory / "config.json"
    if not stamp.exists() or stamp.read_text() != repr(config):
        write_dataset(directory / "data", config)
        settings = Settings(engram_home=directory / "home", milvus_uri="unused")
        shutil.rmtree(settings.engram_home, ignore_errors=True)
        run_ingest(settings, directory / "data" / "signals.jsonl", as_of=AS_OF_NOW)
        stamp.write_text(repr(config))
    settings = Settings(engram_home=directory / "home", milvus_uri="unused")
    con = duck.connect(settings)
    signals = [s for batch in text_signal_batches(event_store.scan(con, settings)) for s in batch]
    truth = load_truth(directory / "data" / "truth.json")
    queries = [orjson.loads(line) for line in (directory / "data" / "queries.jsonl").open("rb")]
    return signals, truth, queries


# --- (a) extraction --------------------------------------------------------------------------


def bench_extraction(
    signals: list[TextSignal], truth: Truth, extractor: Extractor | None = None
) -> dict[str, Any]:
    """Precision and recall per kind of the extracted facts against the planted ones (the
    extractor's plus search-burst intents, as `remember` has them); and, in `stated_in_texts`,
    of the extractor's facts alone against the facts planted in messages and reviews."""
    extractor = extractor or RuleExtractor()
    report = None
    started = time.perf_counter()
    if isinstance(extractor, LLMExtractor):
        read, report = extractor.extract_reported(signals)
    else:
        read = extractor.extract(signals)
    memories = read + search_burst_intents([s for s in signals if s.type == "search"])
    seconds = time.perf_counter() - started
    facts = [memory for memory in memories if memory.kind != "episode"]
    scores = score_extraction(facts, truth.facts)
    stated = [fact for fact in truth.facts if fact.source in TEXT_SOURCES]
    own = [memory for memory in read if memory.kind != "episode"]
    result: dict[str, Any] = {
        "signals": len(signals),
        "planted_facts": len(truth.facts),
        "extracted_facts": len(facts),
        "extract_signals_per_s": round(len(signals) / seconds),
        "per_kind": _rounded(scores),
        "stated_in_texts": {
            "planted_facts": len(stated),
            "per_kind": _rounded(score_extraction(own, stated)),
        },
    }
    if report is not None:
        result["user_texts"] = {"by_model": report.by_model, "by_rules": report.by_rules}
        result["failures"] = dict(report.failures)
    return result


def _rounded(scores: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {
        kind: {key: round(value, 3) for key, value in bucket.items()}
        for kind, bucket in scores.items()
    }


@contextmanager
def model_extractor(
    mode: str, signals: list[TextSignal], truth: Truth, concurrency: int
) -> Iterator[tuple[LLMExtractor, str]]:
    """memory.llm_extract's extractor for `--llm`, and what it talks to."""
    if mode == "settings":
        config = llm_config(get_settings())
        if config is None:
            raise ConfigError("engram_llm_base_url", "--llm settings needs it set")
        yield LLMExtractor(config), f"{config.model} at {config.base_url}"
        return
    answer = truth_answers(signals, truth.facts) if mode == "truth-stub" else rule_answers()
    with ChatStub(answer) as stub:
        config = LLMConfig(base_url=stub.url, model=mode, concurrency=concurrency)
        yield LLMExtractor(config), f"bench/chat_stub.py ({mode})"


# --- (b) write throughput --------------------------------------------------------------------


def fresh_service(client: Any, collection: str, embedder: embed.Embedder) -> MemoryService:
    """A service on an empty collection."""
    if client.has_collection(collection):
        client.drop_collection(collection)
    store = MilvusMemoryStore(client, dim=embedder.dim, model=embedder.name, collection=collection)
    store.ensure_collection()
    return MemoryService(store, embedder, RuleExtractor())


def bench_write(
    client: Any, signals: list[TextSignal], inner: embed.Embedder, collection: str
) -> tuple[dict[str, Any], MemoryService]:
    """Throughput of remember() over every text signal, in ingest-sized batches of whole users."""
    service = fresh_service(client, collection, embed.CachedEmbedder(inner, 20_000))
    total = WriteSummary()
    batches = list(_batches(signals))
    started = time.perf_counter()
    for batch in batches:
        total.add(service.remember(batch))
    seconds = time.perf_counter() - started
    user_turns = sum(
        1 for s in signals if s.type in ("message", "review") and s.speaker in (None, "user")
    )
    again_started = time.perf_counter()
    replay = WriteSummary()
    for batch in batches[: max(1, len(batches) // 4)]:
        replay.add(service.remember(batch))
    replay_seconds = time.perf_counter() - again_started
    return {
        "signals": len(signals),
        "user_turns": user_turns,
        "batches": len(batches),
        "seconds": round(seconds, 2),
        "signals_per_s": round(len(signals) / seconds),
        "user_turns_per_s": round(user_turns / seconds),
        "summary": total.to_dict(),
        "stored_rows": service.store.count(),
        "replay_quarter": {**replay.to_dict(), "seconds": round(replay_seconds, 2)},
    }, service


def _batches(signals: list[TextSignal], size: int = 2_000) -> Iterator[list[TextSignal]]:
    batch: list[TextSignal] = []
    for signal in signals:
        if len(batch) >= size and signal.user_id != batch[-1].user_id:
            yield batch
            batch = []
        batch.append(signal)
    if batch:
        yield batch


# --- (c) search latency ----------------------------------------------------------------------


def top_up(service: MemoryService, target: int, users: int) -> int:
    """Copy stored memories (with their vectors) to new ids of the same users until the
    collection holds `target` rows; returns the rows added."""
    store = service.store
    have = store.count()
    if have >= target:
        return 0
    user_ids = [f"u{n:06d}" for n in range(users)]
    rows = [
        s
        for start in range(0, users, 200)
        for s in store.fetch(user_ids[start : start + 200], with_vectors=True)
    ]
    rng = np.random.default_rng(3)
    added, copy = 0, 0
    while have + added < target:
        chunk = min(5_000, target - have - added)
        picks = rng.integers(0, len(rows), chunk)
        memories, vectors = [], []
        for pick in picks.tolist():
            source = rows[pick]
            memory = replace(source.memory, memory_id=f"m-copy-{copy:08d}")
            memories.append(memory)
            vectors.append(source.vector)
            copy += 1
        store.write(memories, np.stack(vectors))
        added += chunk
    return added


def bench_search(
    service: MemoryService, queries: list[dict[str, Any]], n: int, seed: int = 5
) -> dict[str, Any]:
    """End-to-end search latency (query embedding included) for random users and queries."""
    rng = np.random.default_rng(seed)
    users = sorted({q["user_id"] for q in queries})
    texts = sorted({q["query"] for q in queries})
    # Warm-up: first calls allocate, and the server settles after the writes before it.
    for i in range(200):
        service.search(users[i % len(users)], texts[i % len(texts)], k=10, as_of=AS_OF_NOW)
    latencies, embed_only, milvus_only, hits = [], [], [], []
    load_before = os.getloadavg()[0]
    for _ in range(n):
        user = users[int(rng.integers(len(users)))]
        # A distinct query text each time, so no cache can answer the embedding.
        query = f"{texts[int(rng.integers(len(texts)))]} {int(rng.integers(1_000_000))}"
        started = time.perf_counter()
        found = service.search(user, query, k=10, as_of=AS_OF_NOW)
        latencies.append(time.perf_counter() - started)
        started = time.perf_counter()
        vector = service.embedder.embed([query + " again"])[0]
        embed_only.append(time.perf_counter() - started)
        started = time.perf_counter()
        service.store.search(user, vector, limit=100, as_of=AS_OF_NOW)
        milvus_only.append(time.perf_counter() - started)
        hits.append(len(found))
    return {
        "searches": n,
        "end_to_end": percentiles(latencies),
        "query_embedding_only": percentiles(embed_only),
        "milvus_search_only": percentiles(milvus_only),
        "mean_hits": round(float(np.mean(hits)), 2),
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


# --- (d) recall of fact-stating turns --------------------------------------------------------


def recall_at(ranked_events: list[str], relevant: set[str], k: int = 10) -> float:
    """Share of `relevant` among the first `k` distinct event ids."""
    seen: list[str] = []
    for event in ranked_events:
        if event not in seen:
            seen.append(event)
        if len(seen) == k:
            break
    return len(relevant & set(seen)) / len(relevant)


def bench_recall(
    client: Any, signals: list[TextSignal], queries: list[dict[str, Any]], inner: embed.Embedder
) -> dict[str, Any]:
    """recall@10 of the hybrid memory search against a dense baseline over every text signal."""
    service = fresh_service(client, "bench_memory_recall", embed.CachedEmbedder(inner, 50_000))
    for batch in _batches(signals):
        service.remember(batch)
    by_user: dict[str, list[TextSignal]] = defaultdict(list)
    for signal in signals:
        by_user[signal.user_id].append(signal)
    texts = sorted({signal.text for signal in signals})
    started = time.perf_counter()
    matrix = inner.embed(texts)
    row = {text: i for i, text in enumerate(texts)}
    baseline_embed_s = time.perf_counter() - started
    stated_at = {signal.event_id: signal.ts for signal in signals}
    per_kind: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    variants = {
        "hybrid": DEFAULT_WEIGHTS,
        "hybrid_without_lexical": replace(DEFAULT_WEIGHTS, dense=1.0, lexical=0.0),
        "memories_dense_only": Weights(
            dense=1.0,
            lexical=0.0,
            named=0.0,
            context=0.0,
            reply=0.0,
            recency=0.0,
            confidence=0.0,
            episode=1.0,
        ),
    }
    for query in queries:
        relevant = set(query["relevant_event_ids"])
        # Asked once every turn that states the fact has been said (the planted as_of follows
        # the first one, when a burst's later searches and a repeated taste are still to come).
        as_of = max(
            datetime.fromisoformat(query["as_of"].replace("Z", "+00:00")),
            max(stated_at[event] for event in relevant) + timedelta(minutes=1),
        )
        ranked: dict[str, list[str]] = {}
        for name, weights in variants.items():
            service.weights = weights
            hits = service.search(query["user_id"], query["query"], k=10, as_of=as_of)
            ranked[name] = [event for hit in hits for event in hit.memory.source_event_ids]
        service.weights = DEFAULT_WEIGHTS
        turns = [s for s in by_user[query["user_id"]] if s.ts <= as_of]
        vector = inner.embed([query["query"]])[0]
        cosine = matrix[[row[s.text] for s in turns]] @ vector if turns else np.zeros(0)
        order = np.argsort(-cosine, kind="stable")[:10]
        baseline = [turns[i].event_id for i in order.tolist()]
        for bucket in (per_kind[query["kind"]], per_kind["all"]):
            for name, events in ranked.items():
                bucket[f"{name}@10"].append(recall_at(events, relevant))
                bucket[f"{name}@3"].append(recall_at(events, relevant, 3))
            bucket["dense_baseline@10"].append(recall_at(baseline, relevant))
            bucket["dense_baseline@3"].append(recall_at(baseline, relevant, 3))
    return {
        "queries": len(queries),
        "baseline_texts_embedded": len(texts),
        "baseline_embed_s": round(baseline_embed_s, 1),
        "recall": {
            kind: {name: round(float(np.mean(values)), 3) for name, values in parts.items()}
            | {"queries": len(parts["hybrid@10"])}
            for kind, parts in sorted(per_kind.items())
        },
    }


# --- runner ----------------------------------------------------------------------------------


@contextmanager
def milvus(uri: str | None) -> Iterator[str]:
    """The given server, or one started in a temp dir for this run."""
    if uri:
        yield uri
        return
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        directory = Path(tmp) / "milvus"
        started = local_milvus.ensure_milvus(
            directory, binaries_dir=OUT / "milvus-bin", die_with_caller=True
        )
        try:
            yield started
        finally:
            local_milvus.stop_milvus(directory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uri", help="an existing Milvus; default: start one in a temp dir")
    parser.add_argument("--only", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--users", type=int, default=2_000, help="users of the write/search set")
    parser.add_argument("--memories", type=int, default=100_000, help="rows for search latency")
    parser.add_argument("--searches", type=int, default=1_000)
    parser.add_argument("--recall-users", type=int, default=300)
    parser.add_argument("--seed", type=int, default=23, help="generator seed (weights: seed 7)")
    parser.add_argument("--variant", default="fp32", choices=embed.ONNX_VARIANTS)
    parser.add_argument("--threads", type=int, default=EMBED_THREADS)
    parser.add_argument(
        "--llm",
        default="off",
        choices=LLM_MODES,
        help="extraction by memory.llm_extract too: the ENGRAM_LLM_* model, or a local stub",
    )
    parser.add_argument("--llm-concurrency", type=int, default=4, help="requests to a stub")
    args = parser.parse_args()
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    results: dict[str, Any] = {"args": vars(args), "load_average_at_start": os.getloadavg()}
    # The write/search set: every user chats, in enough sessions for ~50 memories each.
    big = GenerateConfig(
        users=args.users,
        events_per_user=60,
        items=3_000,
        days=180,
        seed=args.seed,
        chat_user_share=1.0,
        chat_sessions=(6, 10),
        malformed_rate=0.0,
    )
    small = replace(big, users=args.recall_users)
    name = "-".join(args.only) + ("" if args.llm == "off" else f"-llm-{args.llm}")
    if "extraction" in args.only or "write" in args.only or "search" in args.only:
        signals, truth, queries = prepare(f"big-{args.seed}-{args.users}", big)
        print(f"write/search set: {len(signals):,} text signals", flush=True)
    if "extraction" in args.only:
        results["extraction"] = bench_extraction(signals, truth)
        print("extraction", json.dumps(results["extraction"]["per_kind"]["all"]), flush=True)
        if args.llm != "off":
            with model_extractor(args.llm, signals, truth, args.llm_concurrency) as (model, via):
                results["extraction_llm"] = {"via": via, **bench_extraction(signals, truth, model)}
            print("extraction_llm", json.dumps(results["extraction_llm"]["per_kind"]["all"]))
    if set(args.only) == {"extraction"}:  # extraction needs neither Milvus nor the embedder
        _write_results(results, name)
        return
    from pymilvus import MilvusClient

    inner = embed.load_onnx_minilm(OUT / "models", variant=args.variant, threads=args.threads)
    results["embedder"] = inner.name
    with milvus(args.uri) as uri:
        client = MilvusClient(uri=uri)
        service = None
        kept = MilvusMemoryStore(client, dim=inner.dim, model=inner.name, collection="bench_memory")
        if "write" not in args.only and kept.exists() and kept.count() >= args.memories:
            # Search only, on a server that still holds the set of an earlier run (--uri).
            service = MemoryService(kept, inner, RuleExtractor())
        elif "write" in args.only or "search" in args.only:
            results["write"], service = bench_write(client, signals, inner, "bench_memory")
            print("write", json.dumps(results["write"]), flush=True)
        if "search" in args.only and service is not None:
            service = MemoryService(service.store, inner, RuleExtractor())
            started = time.perf_counter()
            results["search_top_up_rows"] = top_up(service, args.memories, args.users)
            results["search_top_up_s"] = round(time.perf_counter() - started, 1)
            client.flush("bench_memory")
            results["search_rows"] = service.store.count()
            results["search"] = bench_search(service, queries, args.searches)
            print("search", json.dumps(results["search"]), flush=True)
        if "recall" in args.only:
            signals, _, queries = prepare(f"recall-{args.seed}-{args.recall_users}", small)
            results["recall"] = bench_recall(client, signals, queries, inner)
            print("recall", json.dumps(results["recall"]["recall"]["all"]), flush=True)
        client.close()
    _write_results(results, name)


def _write_results(results: dict[str, Any], name: str) -> None:
    results["load_average_at_end"] = os.getloadavg()
    OUT.mkdir(parents=True, exist_ok=True)
    target = OUT / f"memory-{name}.json"
    target.write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps(results, indent=2, default=str))
    print(f"written to {target}")


if __name__ == "__main__":
    main()
