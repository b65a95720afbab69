"""Consumer metrics (Prometheus): throughput, rejections, dead letters, lag and freshness.

Freshness is the time from an entry's append (its stream id holds the append time in ms, set
by Redis) to the end of the online write that made its features readable. Lag is what Redis
reports for the group (XINFO GROUPS: entries not yet delivered) plus entries pending.
"""

from __future__ import annotations

from typing import Any

import redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from core.stores.cluster import RedisClient

FRESHNESS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class StreamMetrics:
    """The consumer's metrics in their own registry (serve with prometheus_client)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.entries = Counter(
            "engram_stream_entries",
            "Stream entries acknowledged, by outcome: processed, rejected, forgotten (their user "
            "was forgotten after they were sent), failed, dead.",
            ["outcome"],
            registry=self.registry,
        )
        self.offline = Counter(
            "engram_stream_offline_events",
            "Outbox entries drained to the offline event store, by outcome: stored, forgotten, "
            "duplicate (the store held the event already).",
            ["outcome"],
            registry=self.registry,
        )
        self.freshness = Histogram(
            "engram_stream_freshness_seconds",
            "Append to the stream -> features readable online, per entry.",
            buckets=FRESHNESS_BUCKETS,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "engram_stream_batch_seconds",
            "Time to process one micro-batch.",
            registry=self.registry,
        )
        self.lag = Gauge(
            "engram_stream_consumer_lag",
            "Entries not yet delivered to the group.",
            registry=self.registry,
        )
        self.pending = Gauge(
            "engram_stream_pending",
            "Entries delivered but not yet acknowledged.",
            registry=self.registry,
        )


def group_lag(client: RedisClient, stream: str, group: str) -> dict[str, int | None]:
    """XINFO GROUPS for one group: `lag` (undelivered; None if it cannot be told) and `pending`.

    Redis reports no lag once entries were deleted past the group's last delivered one (a forget
    deletes a user's entries, the newest among them maybe). Then the stream itself tells whether
    anything is left to deliver: lag is 0 when no entry follows the last delivered one.
    """
    try:
        groups: Any = client.xinfo_groups(stream)
    except redis.ResponseError:
        return {"lag": None, "pending": None}
    for info in groups:
        name = info["name"]
        if (name.decode() if isinstance(name, bytes) else name) == group:
            lag: Any = info.get("lag")
            if lag is None:
                last = info["last-delivered-id"]
                last = last.decode() if isinstance(last, bytes) else str(last)
                lag = None if client.xrange(stream, min=f"({last}", max="+", count=1) else 0
            return {"lag": None if lag is None else int(lag), "pending": int(info["pending"])}
    return {"lag": None, "pending": None}
