"""Memory over a long run: RSS of the server's process tree and Redis used_memory, sampled.

The growth test compares the mean of the last window with the mean of the first window after a
warm-up (caches, lazy imports and connection pools fill first), so one noisy sample or a
start-up step does not pass for a leak. `growth` is pure; `Sampler` is the adapter that reads
psutil and Redis in a background thread.
"""

from __future__ import annotations

import csv
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import redis

from loadtest.config import SoakLimits


@dataclass(frozen=True)
class Sample:
    """Memory at one moment, `t` seconds after sampling began."""

    t: float
    rss_bytes: int
    processes: int
    redis_bytes: int  # used_memory less the excluded keys (the signal stream buffers by design)
    excluded_bytes: int = 0


@dataclass(frozen=True)
class Growth:
    """How much one series grew between the first and the last window after warm-up."""

    series: str
    first_mean: float
    last_mean: float
    limit_pct: float

    @property
    def pct(self) -> float:
        """Relative growth in percent (0 when the first window is empty or zero)."""
        return (self.last_mean / self.first_mean - 1) * 100 if self.first_mean else 0.0

    @property
    def ok(self) -> bool:
        """Within the limit."""
        return self.pct <= self.limit_pct

    @property
    def message(self) -> str:
        """E.g. 'server RSS: 412.0 MB -> 415.3 MB (+0.8%, limit 10%)'."""
        return (
            f"{self.series}: {self.first_mean / 1e6:.1f} MB -> {self.last_mean / 1e6:.1f} MB "
            f"({self.pct:+.1f}%, limit {self.limit_pct:g}%)"
        )


def _window_mean(samples: list[Sample], start: float, end: float, value: str) -> float:
    chosen = [getattr(s, value) for s in samples if start <= s.t <= end]
    return sum(chosen) / len(chosen) if chosen else 0.0


def growth(samples: list[Sample], limits: SoakLimits) -> list[Growth]:
    """Growth of server RSS and Redis memory, last window vs first window after warm-up.

    Empty when the run was too short to hold two windows after the warm-up.
    """
    if not samples:
        return []
    first_start = limits.warmup_s
    last_end = samples[-1].t
    if last_end - first_start < 2 * limits.window_s:
        return []
    first = (first_start, first_start + limits.window_s)
    last = (last_end - limits.window_s, last_end)
    return [
        Growth(
            series,
            _window_mean(samples, *first, value),
            _window_mean(samples, *last, value),
            limit,
        )
        for series, value, limit in (
            ("server RSS", "rss_bytes", limits.max_rss_growth_pct),
            ("Redis used_memory (less excluded keys)", "redis_bytes", limits.max_redis_growth_pct),
        )
    ]


def tree_rss(pid: int) -> tuple[int, int]:
    """Summed RSS of a process and all its descendants (gunicorn master + workers), and count."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    total = 0
    counted = 0
    for process in processes:
        try:
            total += process.memory_info().rss
            counted += 1
        except psutil.NoSuchProcess:  # a worker restarting between listing and reading
            continue
    return total, counted


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by a process and its living descendants."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def redis_memory(client: redis.Redis, exclude: tuple[str, ...] = ()) -> tuple[int, int]:
    """(INFO used_memory less the `exclude` keys, the excluded keys' MEMORY USAGE), bytes.

    The signal stream grows with every accepted signal until a consumer trims it: that is data,
    not a leak, so it is measured apart (MEMORY USAGE samples a few stream nodes: cheap).
    """
    info: dict[str, Any] = client.info("memory")  # type: ignore[assignment]
    used = int(info["used_memory"])
    excluded = sum(int(client.memory_usage(key) or 0) for key in exclude)  # type: ignore[misc,arg-type]
    return used - excluded, excluded


class Sampler:
    """Samples memory every `every_s` seconds in a daemon thread until stopped."""

    def __init__(
        self,
        server_pid: int,
        redis_url: str | None,
        every_s: float,
        exclude_keys: tuple[str, ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.server_pid = server_pid
        self.redis_url = redis_url
        self.exclude_keys = exclude_keys
        self.every_s = every_s
        self.samples: list[Sample] = []
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-sampler", daemon=True)

    def start(self) -> Sampler:
        """Begin sampling (the first sample is taken at once)."""
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        """Stop and return every sample taken."""
        self._stop.set()
        self._thread.join(timeout=self.every_s + 5)
        return self.samples

    def _run(self) -> None:
        client = redis.Redis.from_url(self.redis_url, socket_timeout=2) if self.redis_url else None
        began = self._clock()
        try:
            while not self._stop.is_set():
                rss, processes = tree_rss(self.server_pid)
                try:
                    used, excluded = (
                        redis_memory(client, self.exclude_keys) if client is not None else (0, 0)
                    )
                except redis.RedisError:  # a busy moment: skip it rather than log a fake 0
                    self._stop.wait(self.every_s)
                    continue
                t = round(self._clock() - began, 2)
                self.samples.append(Sample(t, rss, processes, used, excluded))
                self._stop.wait(self.every_s)
        finally:
            if client is not None:
                client.close()


def write_samples(samples: list[Sample], path: Path) -> None:
    """The samples as CSV, one row per sample."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(
            ["t_s", "server_rss_bytes", "server_processes", "redis_bytes", "redis_excluded_bytes"]
        )
        for s in samples:
            writer.writerow([s.t, s.rss_bytes, s.processes, s.redis_bytes, s.excluded_bytes])
