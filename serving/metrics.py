"""Prometheus metrics: latency per route template, errors, degraded rankings and stream lag.

One registry per app, so apps built by tests never share counters. That holds while
prometheus_client keeps values in the process (serving.app imports it before `import feast` sets
PROMETHEUS_MULTIPROC_DIR): in multiprocess mode one file per process holds every value by metric
name and labels, whatever the registry. Routes are labelled by their template
(`/v1/users/<user_id>/features`), never by the raw path, so user ids do not become label values.
With several gunicorn workers each worker counts its own requests: scrape them through
prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR) when that matters.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

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
        self.stream_lag = Gauge(
            "engram_stream_lag",
            "Signals in the stream not yet read by a consumer group "
            "(-1 when Redis cannot be asked).",
            registry=self.registry,
        )
        self.store_up = Gauge(
            "engram_store_up",
            "1 when the store answered the last check.",
            ["store"],
            registry=self.registry,
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
        return Response(generate_latest(self.registry), mimetype=CONTENT_TYPE_LATEST)
