"""Benchmark: the candidates follower on a trained home: how soon a contact sent to the signals
stream reaches the user's candidates in Redis, and the CPU a user's recompute costs.

Loads the serving version as `engram candidates follow` does, runs the follower in a thread on
the home's Redis, then sends `--events` purchases (one random user and one of their candidates
each, `--rate` a second) with the stream producer and polls the user's record until it changes:
freshness p50 / p99 / max from the send. The follower's own CPU (thread time) per user
rewritten is printed too. The purchases are real signals of the home: bench a copy, or forget
the users after (the script prints the event id prefix).

    ENGRAM_HOME=... PYTHONPATH=. python bench/candidates_follow.py [--events 100] [--rate 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import uuid
from pathlib import Path

# Run as a script, bench/ comes first on sys.path, and bench/memory.py would shadow `memory`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import redis  # noqa: E402

from core.settings import get_settings  # noqa: E402
from core.stores.services import resolve_redis_url  # noqa: E402
from pipelines.stream.producer import produce  # noqa: E402
from ranking.candidate_store import CandidateStore  # noqa: E402
from ranking.follow import FollowConfig, Follower, load_followed  # noqa: E402


class TimedFollower(Follower):
    """The follower, counting the CPU its writes take."""

    cpu_s = 0.0
    users = 0

    def _write(self, followed, users):  # type: ignore[no-untyped-def]
        began = time.thread_time()
        super()._write(followed, users)
        self.cpu_s += time.thread_time() - began
        self.users += len(users)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--rate", type=float, default=5.0, help="purchases sent a second")
    args = parser.parse_args()
    settings = get_settings()
    client = redis.Redis.from_url(resolve_redis_url(settings))
    store = CandidateStore(client, int(settings.engram_candidates_budget_mb * 2**20))
    follower = TimedFollower(
        client, store, load_followed(settings), FollowConfig(consumer="bench", block_ms=20)
    )
    follower.reload()
    followed = follower.followed
    assert followed is not None
    stop = threading.Event()
    thread = threading.Thread(target=follower.run, args=(stop.is_set,), daemon=True)
    thread.start()
    rng = np.random.default_rng(0)
    users = sorted(followed.history.users)
    prefix = f"bench-follow-{uuid.uuid4().hex[:8]}"
    waits, missed = [], 0
    try:
        for n in range(args.events):
            user = str(rng.choice(users))
            before = client.get(f"engram:candidates:user:{user}")
            record = store.read(user)
            codes = record.codes if record is not None else np.arange(len(followed.items))
            item = str(followed.items[int(rng.choice(codes))])
            now = pd.Timestamp.now(tz="UTC").isoformat().replace("+00:00", "Z")
            signal = {"event_id": f"{prefix}-{n}", "user_id": user, "item_id": item}
            signal |= {"type": "purchase", "ts": now}
            sent = time.perf_counter()
            produce(client, [signal])
            while time.perf_counter() - sent < 10.0:
                if client.get(f"engram:candidates:user:{user}") != before:
                    break
                time.sleep(0.002)
            else:
                missed += 1
                continue
            waits.append((time.perf_counter() - sent) * 1000)
            time.sleep(max(0.0, 1.0 / args.rate - (time.perf_counter() - sent)))
    finally:
        stop.set()
        thread.join(30)
        client.close()
    print(
        f"freshness over {len(waits)} purchases ({missed} not seen in 10 s): p50 "
        f"{np.percentile(waits, 50):.1f} ms, p99 {np.percentile(waits, 99):.1f} ms, max "
        f"{np.max(waits):.1f} ms; follower CPU per user rewritten "
        f"{1000 * follower.cpu_s / max(follower.users, 1):.2f} ms ({follower.users} users); "
        f"load {os.getloadavg()[0]:.2f}; event ids {prefix}-*"
    )


if __name__ == "__main__":
    main()
