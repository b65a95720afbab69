"""Benchmark: `Ranker.rank` in process, as POST /v1/rank calls it (no explanation, no time), with
100 given candidates and without candidates, then a cProfile of each.

Loads the latest model of ENGRAM_HOME, warms up on 20 users, times 200 users (sorted ids) per
route, prints wall and CPU (thread time) p50 / p99 ms and the top of the profile by cumulative
time. Run it with
PYTHONPATH set to the tree to measure (e.g. a `git archive` of an older commit, side by side).

    ENGRAM_HOME=... PYTHONPATH=. python bench/rank_profile.py [--users 200] [--top 30]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import sys
import time
from pathlib import Path

# Run as a script, bench/ comes first on sys.path, and bench/memory.py would shadow `memory`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from core.settings import get_settings  # noqa: E402
from ranking.ranker import load_ranker  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--top", type=int, default=30, help="profile lines printed")
    args = parser.parse_args()
    ranker = load_ranker(get_settings())
    users = sorted(ranker.inputs.context.history.users)[: args.users]
    items = list(ranker.inputs.items)
    pick = random.Random(0)

    def given(user: str) -> None:
        ranker.rank(user, 10, candidates=pick.sample(items, 100), explain=False)

    def generated(user: str) -> None:
        ranker.rank(user, 10, explain=False)

    for route in (given, generated):
        for user in users[:20]:
            route(user)
        took, cpu = [], []
        for user in users:
            began, began_cpu = time.perf_counter(), time.thread_time()
            route(user)
            took.append((time.perf_counter() - began) * 1000)
            cpu.append((time.thread_time() - began_cpu) * 1000)
        # CPU time is the steadier figure on a shared machine: wall time adds the waits for a
        # core the other jobs hold.
        print(
            f"{route.__name__}: wall p50 {np.percentile(took, 50):.2f} ms, "
            f"p99 {np.percentile(took, 99):.2f} ms; CPU p50 {np.percentile(cpu, 50):.2f} ms, "
            f"p99 {np.percentile(cpu, 99):.2f} ms, mean {np.mean(cpu):.2f} ms; "
            f"load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        profile = cProfile.Profile()
        profile.enable()
        for user in users:
            route(user)
        profile.disable()
        pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
