"""Prometheus metrics: latency per route template, errors, degraded rankings and stream lag.

Routes are labelled by their template (`/v1/users/<user_id>/features`), never by the raw path, so
user ids do not become label values.

Two modes, chosen by the environment `engram serve` starts in (core/__init__.py):
- In process (the default): one registry per app, so apps built by tests never share counters;
  under gunicorn each worker counts its own requests and a scrape sees one worker.
- Across workers, with PROMETHEUS_MULTIPROC_DIR set to a directory before the server starts:
  every worker writes its values there (prometheus_client's multiprocess mode, one file per
  process, keyed by metric name and labels whatever the registry) and a scrape, whichever worker
  answers it, sums them all. `engram serve` empties the directory at start and drops a worker's
  live gauges when it exits.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import values as prometheus_values
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector


def across_workers() -> bool:
    """True when values live in PROMETHEUS_MULTIPROC_DIR files shared by the workers."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR")) and (
        prometheus_values.ValueClass is not prometheus_values.MutexValue
    )


BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The app's collectors, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "engram_http_request_duration_seconds",
            "Request latency by route template.",
            ["method", "route"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.responses = Counter(
            "engram_http_responses_total",
            "Responses by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "engram_http_errors_total",
            "Responses with a 4xx or 5xx status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.degraded = Counter(
            "engram_rank_degraded_total",
            "Rankings answered by the popularity fallback.",
            ["reason"],
            registry=self.registry,
        )
        # Across workers, a gauge shows the value set last by any live worker.
        self.stream_lag = Gauge(
            "engram_stream_lag",
            "Signals in the stream not yet read by a consumer group "
            "(-1 when Redis cannot be asked).",
            registry=self.registry,
            multiprocess_mode="livemostrecent",
        )
        self.store_up = Gauge(
            "engram_store_up",
            "1 when the store answered the last check.",
            ["store"],
            registry=self.registry,
            multiprocess_mode="livemostrecent",
        )

    def init_app(self, app: Flask) -> None:
        """Time every request and count its status."""

        @app.before_request
        def started() -> None:
            g.metrics_started = time.perf_counter()

        @app.after_request
        def finished(response: Response) -> Response:
            began = g.pop("metrics_started", None)
            rule = request.url_rule
            route = rule.rule if rule is not None else "<unmatched>"
            status = response.status_code
            if began is not None:
                self.latency.labels(request.method, route).observe(time.perf_counter() - began)
            self.responses.labels(request.method, route, str(status)).inc()
            if status >= 400:
                self.errors.labels(route, str(status)).inc()
            return response

    def exposition(self, lag: Callable[[], int | None]) -> Response:
        """The text format, with the stream lag measured now."""
        value = lag()
        self.stream_lag.set(-1 if value is None else value)
        registry = self.registry
        if across_workers():
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # every worker's files, summed
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
