"""Soak memory: growth between windows after the warm-up, and real samples of RSS and Redis."""

from __future__ import annotations

import os
import time

import redis

from loadtest.config import SoakLimits
from loadtest.soak import Sample, Sampler, growth, redis_memory, tree_rss

LIMITS = SoakLimits(
    sample_every_s=1, warmup_s=10, window_s=10, max_rss_growth_pct=10, max_redis_growth_pct=10
)


def _samples(rss: list[int], redis_bytes: int = 1_000) -> list[Sample]:
    return [
        Sample(t=float(t), rss_bytes=v, processes=3, redis_bytes=redis_bytes)
        for t, v in enumerate(rss)
    ]


def test_flat_memory_after_a_start_up_climb_passes() -> None:
    climb = [100 + 10 * t for t in range(10)]  # the warm-up: ignored
    flat = [200] * 31
    found = growth(_samples(climb + flat), LIMITS)
    assert [g.series for g in found] == ["server RSS", "Redis used_memory (less excluded keys)"]
    assert all(g.ok for g in found)
    assert found[0].pct == 0


def test_steady_growth_past_the_limit_fails_and_says_by_how_much() -> None:
    leaking = [1_000_000 * (100 + t) for t in range(41)]  # +1% a second
    rss = growth(_samples(leaking), LIMITS)[0]
    assert not rss.ok
    assert 15 < rss.pct < 20
    assert rss.message.startswith("server RSS: 115.0 MB -> 135.0 MB (+17.4%, limit 10%)")


def test_a_run_too_short_for_two_windows_is_not_judged() -> None:
    assert growth(_samples([100] * 25), LIMITS) == []
    assert growth([], LIMITS) == []


def test_rss_of_a_process_tree_counts_the_children() -> None:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.2)
        alone, _ = tree_rss(child.pid)
        total, processes = tree_rss(os.getpid())
        assert processes >= 2
        assert total > alone > 0
    finally:
        child.kill()
        child.wait()
    assert tree_rss(child.pid) == (0, 0)


def test_the_sampler_reads_rss_and_redis_less_the_excluded_keys(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.xadd("engram:{signals}", {"signal": "x" * 500})
    used, excluded = redis_memory(client, ("engram:{signals}", "absent"))
    assert excluded > 500
    assert used > 0
    sampler = Sampler(os.getpid(), redis_url, every_s=0.05, exclude_keys=("engram:{signals}",))
    sampler.start()
    time.sleep(0.3)
    samples = sampler.stop()
    client.close()
    assert len(samples) >= 3
    assert all(s.rss_bytes > 0 and s.redis_bytes > 0 and s.excluded_bytes > 0 for s in samples)
    assert samples == sorted(samples, key=lambda s: s.t)
