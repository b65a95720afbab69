# ruff: noqa: E402  (imports follow the sys.path fix below)
"""Benchmark: one search process, the two ways it keeps its index current (issue 14).

On a home holding the LoCoMo development half (e.g. one `bench/memory_search_load.py --home`
ingested), 100 questions warm the indexes and query cache, then 400 random questions at k = 10
are asked of `MemoryService.search` alternately with version numbers (one Redis GET, no Milvus
call while unchanged) and without (the fresh pool from Milvus checks the index), twice each.
Printed per pass: p50/p99 ms, this process's CPU per search and the home's Milvus CPU per search.
Query embeddings are mostly cached after the warm-up, so this is the index-checking work.

    .venv/bin/python bench/memory_search_paths.py --data ../shared/data/locomo-dev --home DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.append(str(_HERE))  # for memory_locomo (it takes this directory out again)

import argparse
import json
import logging
import os
import time

import numpy as np
import psutil
from memory_locomo import load_locomo

from core.settings import Settings
from memory.service import build_memory_service


def cpu(processes: list[psutil.Process]) -> float:
    """User + system CPU seconds of the processes."""
    return sum(p.cpu_times().user + p.cpu_times().system for p in processes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the locomo-dev directory")
    parser.add_argument("--home", type=Path, required=True, help="an ENGRAM_HOME with LoCoMo")
    args = parser.parse_args()
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    home = args.home.resolve()
    _, questions = load_locomo(args.data)
    service = build_memory_service(Settings(engram_home=home, milvus_uri=None, redis_url=None))
    lines = {p: " ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])}
    stores = [p for p, line in lines.items() if str(home) in line and "python" not in line]
    versions = service.versions
    for question in questions[:100]:
        service.search(question.user_id, question.text, k=10)
    picked = np.random.default_rng(0).choice(len(questions), 400)
    me = psutil.Process()
    for label, kept in (("milvus-checked", None), ("versions", versions)) * 2:
        service.versions = kept
        latencies = []
        mine, theirs, load = cpu([me]), cpu(stores), os.getloadavg()[0]
        for i in picked:
            started = time.perf_counter()
            service.search(questions[i].user_id, questions[i].text, k=10)
            latencies.append(time.perf_counter() - started)
        ms = np.array(latencies) * 1000
        row = {
            "path": label,
            "searches": len(picked),
            "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "process_cpu_ms_per_search": round(1000 * (cpu([me]) - mine) / len(picked), 2),
            "stores_cpu_ms_per_search": round(1000 * (cpu(stores) - theirs) / len(picked), 2),
            "load": [round(load, 1), round(os.getloadavg()[0], 1)],
        }
        print(json.dumps(row), flush=True)
    service.close()


if __name__ == "__main__":
    main()
