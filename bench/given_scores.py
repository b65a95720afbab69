"""Benchmark: CPU of each candidate source scoring a request's 100 given items (issue 15).

Loads the latest model of ENGRAM_HOME and, for 200 users (sorted ids) with 100 items drawn from
the catalog each, calls every source's `scores` as `Ranker._given` does (one user, now, the
items' catalog positions), then `Ranker._given` itself (the Redis read of the kept lists, the
positions, the six sources, the ranks). Prints CPU (thread time) p50 / mean ms per source, their
sum, and `_given`'s, for each of `--rounds` rounds after one of warm-up. Run it with PYTHONPATH
set to the tree to measure (e.g. a `git archive` of an older commit, side by side).

    ENGRAM_HOME=... PYTHONPATH=. python bench/given_scores.py [--users 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

# Run as a script, bench/ comes first on sys.path, and bench/memory.py would shadow `memory`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from core.settings import get_settings  # noqa: E402
from ranking.ranker import load_ranker  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ranker = load_ranker(get_settings())
    catalog = ranker.inputs.items
    users = sorted(ranker.inputs.context.history.users)[: args.users]
    pick = random.Random(0)
    asked = [pick.sample(list(catalog), 100) for _ in users]
    positions = [catalog.get_indexer(items) for items in asked]
    moment = pd.Timestamp.now(tz="UTC")
    when = pd.DatetimeIndex([moment])
    sources = ranker.inputs.sources
    for round_ in range(args.rounds + 1):
        cpu: dict[str, list[float]] = {source.name: [] for source in sources}
        given = []
        for user, items, rows in zip(users, asked, positions, strict=True):
            for source in sources:
                began = time.thread_time()
                source.scores([user], when, catalog, rows)
                cpu[source.name].append((time.thread_time() - began) * 1000)
            began = time.thread_time()
            ranker._given(user, moment, items)
            given.append((time.thread_time() - began) * 1000)
        if round_ == 0:
            continue  # warm-up
        parts = ", ".join(
            f"{name} {np.percentile(ms, 50):.3f}/{np.mean(ms):.3f}" for name, ms in cpu.items()
        )
        total = np.sum(list(cpu.values()), axis=0)
        print(
            f"round {round_}: CPU p50/mean ms {parts}; all six {np.percentile(total, 50):.3f}/"
            f"{np.mean(total):.3f}; _given {np.percentile(given, 50):.3f}/{np.mean(given):.3f}; "
            f"load {os.getloadavg()[0]:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
