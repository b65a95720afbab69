"""Read locust's statistics and hold them against the SLOs: a breach names endpoint and SLO.

Two sources, the same rows: `*_stats.csv`, and the JSON of `--json-file`. The runner checks the
JSON because locust writes it at shutdown from the final counts, while its CSV is rewritten once a
second and misses the last second of the run (and any failure in it). Percentiles are computed
from the JSON's response-time histogram exactly as locust computes them for the CSV. Pure
functions on text and config, so the check is tested without running locust.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.config import SCENARIOS, LoadConfig

AGGREGATED = "Aggregated"


@dataclass(frozen=True)
class EndpointStats:
    """One row of locust's stats: a request name, or the aggregate of all of them."""

    method: str
    name: str
    requests: int
    failures: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    rps: float

    @property
    def error_rate(self) -> float:
        """Failures per request (0 when nothing was sent)."""
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Breach:
    """One broken objective, with a message that names it."""

    endpoint: str
    slo: str
    measured: float
    limit: float

    @property
    def message(self) -> str:
        """E.g. 'rank (POST /v1/rank): p99 18 ms > 15 ms'."""
        unit = {"p95": " ms", "p99": " ms", "requests/s": "", "error rate": ""}.get(self.slo, "")
        relation = "<" if self.slo in ("requests/s", "requests") else ">"
        return (
            f"{self.endpoint}: {self.slo} {self.measured:g}{unit} {relation} {self.limit:g}{unit}"
        )


def _ms(value: str) -> float:
    return float(value) if value not in ("", "N/A") else math.nan


def parse_stats(text: str) -> dict[str, EndpointStats]:
    """Rows of a locust stats CSV keyed by scenario name (or 'Aggregated'); others by Name."""
    by_request = {request: scenario for scenario, request in SCENARIOS.items()}
    rows: dict[str, EndpointStats] = {}
    for row in csv.DictReader(io.StringIO(text)):
        stats = EndpointStats(
            method=row["Type"],
            name=row["Name"],
            requests=int(row["Request Count"]),
            failures=int(row["Failure Count"]),
            p50_ms=_ms(row["50%"]),
            p95_ms=_ms(row["95%"]),
            p99_ms=_ms(row["99%"]),
            max_ms=round(_ms(row["Max Response Time"]), 1),
            rps=float(row["Requests/s"]),
        )
        key = by_request.get((stats.method, stats.name), stats.name)
        rows[key] = stats
    return rows


def percentile(histogram: dict[int, int], count: int, percent: float) -> float:
    """Locust's percentile of a {rounded ms: requests} histogram (stats.py, same rounding)."""
    if not count:
        return math.nan
    within = int(count * percent)
    processed = 0
    for response_time in sorted(histogram, reverse=True):
        processed += histogram[response_time]
        if count - processed <= within:
            return float(response_time)
    return 0.0


def _row(method: str, name: str, entries: list[dict[str, Any]], span_s: float) -> EndpointStats:
    histogram: Counter[int] = Counter()
    for entry in entries:
        histogram.update({int(ms): n for ms, n in entry["response_times"].items()})
    count = sum(entry["num_requests"] for entry in entries)
    return EndpointStats(
        method=method,
        name=name,
        requests=count,
        failures=sum(entry["num_failures"] for entry in entries),
        p50_ms=percentile(histogram, count, 0.50),
        p95_ms=percentile(histogram, count, 0.95),
        p99_ms=percentile(histogram, count, 0.99),
        max_ms=round(max((entry["max_response_time"] for entry in entries), default=math.nan), 1),
        rps=count / span_s if span_s > 0 else 0.0,
    )


def parse_stats_json(text: str) -> dict[str, EndpointStats]:
    """Rows of locust's `--json-file` output, plus the Aggregated row, keyed like parse_stats."""
    entries: list[dict[str, Any]] = json.loads(text)
    if not entries:
        return {}
    span = max(e["last_request_timestamp"] or 0 for e in entries) - min(
        e["start_time"] for e in entries
    )
    by_request = {request: scenario for scenario, request in SCENARIOS.items()}
    rows = {
        by_request.get((e["method"], e["name"]), e["name"]): _row(e["method"], e["name"], [e], span)
        for e in entries
    }
    rows[AGGREGATED] = _row("", AGGREGATED, entries, span)
    return rows


def read_stats(path: Path) -> dict[str, EndpointStats]:
    """The rows of `PREFIX.json` (--json-file) or `PREFIX_stats.csv` (--csv), by suffix."""
    text = path.read_text(encoding="utf-8")
    return parse_stats_json(text) if path.suffix == ".json" else parse_stats(text)


def _label(scenario: str) -> str:
    if scenario not in SCENARIOS:
        return scenario
    method, name = SCENARIOS[scenario]
    return f"{scenario} ({method} {name})"


def check(
    stats: dict[str, EndpointStats], config: LoadConfig, target_rps: float | None = None
) -> list[Breach]:
    """Every objective the run broke: latency per endpoint, error rate, sustained rate."""
    breaches: list[Breach] = []
    for scenario, weight in config.traffic.items():
        if weight > 0 and (scenario not in stats or stats[scenario].requests == 0):
            breaches.append(Breach(_label(scenario), "requests", 0, 1))
    for key, entry in stats.items():
        if entry.requests and entry.error_rate > config.max_error_rate:
            rate = round(entry.error_rate, 6)
            breaches.append(Breach(_label(key), "error rate", rate, config.max_error_rate))
    for scenario, slo in config.endpoints.items():
        row = stats.get(scenario)
        if row is None or row.requests == 0:
            continue
        if row.p95_ms > slo.p95_ms:
            breaches.append(Breach(_label(scenario), "p95", row.p95_ms, slo.p95_ms))
        if row.p99_ms > slo.p99_ms:
            breaches.append(Breach(_label(scenario), "p99", row.p99_ms, slo.p99_ms))
    total = stats.get(AGGREGATED)
    if target_rps and total is not None:
        floor = target_rps * config.min_rate_fraction
        if total.rps < floor:
            breaches.append(Breach("all endpoints", "requests/s", round(total.rps, 1), floor))
    return breaches
