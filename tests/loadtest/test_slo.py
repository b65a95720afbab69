"""SLO checks on locust's statistics: CSV and JSON read alike, each breach named."""

from __future__ import annotations

import json
import math

import pytest

from core.errors import InvalidInputError
from loadtest.config import (
    DEFAULT_CONFIG,
    EndpointSlo,
    LoadConfig,
    load_config,
    parse_config,
    parse_duration,
)
from loadtest.slo import AGGREGATED, check, parse_stats, parse_stats_json, percentile

# Locust 2.47's header and rows as `--csv` writes them (first lines of a real run).
CSV = """Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,\
Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,\
90%,95%,98%,99%,99.9%,99.99%,100%
POST,/v1/rank,1000,0,3,4.1,1.2,40.5,300,70.0,0.0,3,4,4,5,7,9,12,14,30,40,41
POST,/v1/users/[id]/memories/search,200,1,9,11.0,4.0,120.0,900,15.0,0.07,9,10,11,12,20,40,80,90,\
120,120,120
GET,/v1/users/[id]/features,150,0,4,4.5,1.0,16.0,500,10.0,0.0,4,4,5,5,6,8,12,16,16,16,16
POST,/v1/signals,50,0,20,21.0,10.0,39.0,60,5.0,0.0,20,21,22,23,30,35,38,39,39,39,39
,Aggregated,1400,1,4,5.3,1.0,120.0,400,100.0,0.07,4,5,5,6,9,14,30,40,100,120,120
"""


def _config(**changes: object) -> LoadConfig:
    config = LoadConfig(
        traffic={"rank": 70, "memory_search": 15, "features": 10, "signals": 5},
        endpoints={
            "rank": EndpointSlo(p95_ms=10, p99_ms=15),
            "features": EndpointSlo(p95_ms=10, p99_ms=15),
            "memory_search": EndpointSlo(p95_ms=60, p99_ms=100),
            "signals": EndpointSlo(p95_ms=40, p99_ms=40),
        },
    )
    return LoadConfig(**{**vars(config), **changes})


def test_the_csv_rows_are_keyed_by_scenario() -> None:
    stats = parse_stats(CSV)
    assert set(stats) == {"rank", "memory_search", "features", "signals", AGGREGATED}
    assert stats["rank"].p99_ms == 14
    assert stats["rank"].requests == 1000
    assert stats["memory_search"].error_rate == pytest.approx(0.005)


def test_each_breach_names_the_endpoint_and_the_slo() -> None:
    breaches = check(parse_stats(CSV), _config(), target_rps=100)
    messages = [b.message for b in breaches]
    assert messages == [
        "memory_search (POST /v1/users/[id]/memories/search): error rate 0.005 > 0",
        f"{AGGREGATED}: error rate 0.000714 > 0",
        "features (GET /v1/users/[id]/features): p99 16 ms > 15 ms",
    ]


def test_a_run_within_every_objective_has_no_breach() -> None:
    lenient = _config(
        max_error_rate=0.01,
        endpoints={"rank": EndpointSlo(p95_ms=10, p99_ms=15)},
    )
    assert check(parse_stats(CSV), lenient, target_rps=100) == []


def test_a_rate_short_of_the_target_breaches_and_a_silent_scenario_too() -> None:
    stats = parse_stats(CSV)
    lenient = _config(max_error_rate=1.0, endpoints={})
    assert [b.message for b in check(stats, lenient, target_rps=200)] == [
        "all endpoints: requests/s 100 < 180"
    ]
    del stats["signals"]
    assert [b.slo for b in check(stats, lenient)] == ["requests"]


def test_percentiles_from_the_histogram_match_locusts_definition() -> None:
    # Locust's rule: the smallest time with at most int(n * p) requests below it, so one slow
    # request in a hundred is the p99.
    histogram = {1: 90, 5: 8, 20: 1, 100: 1}
    assert percentile(histogram, 100, 0.50) == 1
    assert percentile(histogram, 100, 0.95) == 5
    assert percentile(histogram, 100, 0.98) == 20
    assert percentile(histogram, 100, 0.99) == 100
    assert math.isnan(percentile({}, 0, 0.99))


def test_the_json_rows_add_an_aggregate_over_the_whole_run() -> None:
    entries = [
        {
            "name": "/v1/rank",
            "method": "POST",
            "num_requests": 100,
            "num_failures": 0,
            "response_times": {"2": 99, "30": 1},
            "max_response_time": 30.4,
            "start_time": 1000.0,
            "last_request_timestamp": 1010.0,
        },
        {
            "name": "/v1/signals",
            "method": "POST",
            "num_requests": 10,
            "num_failures": 1,
            "response_times": {"50": 10},
            "max_response_time": 55.0,
            "start_time": 1001.0,
            "last_request_timestamp": 1009.0,
        },
    ]
    stats = parse_stats_json(json.dumps(entries))
    assert (stats["rank"].p95_ms, stats["rank"].p99_ms, stats["rank"].rps) == (2, 30, 10.0)
    total = stats[AGGREGATED]
    assert (total.requests, total.failures, total.p99_ms, total.max_ms) == (110, 1, 50, 55.0)
    assert total.rps == 11.0


def test_the_shipped_config_reads_and_bad_ones_are_refused() -> None:
    config = load_config(DEFAULT_CONFIG)
    assert config.traffic == {"rank": 70, "memory_search": 15, "features": 10, "signals": 5}
    assert config.endpoints["rank"].p99_ms == 15
    assert config.max_error_rate == 0
    assert "engram:{signals}" in config.soak.redis_exclude_keys
    with pytest.raises(InvalidInputError, match="unknown scenarios"):
        parse_config({"traffic": {"checkout": 1}})
    with pytest.raises(InvalidInputError, match="p99_ms"):
        parse_config({"traffic": {"rank": 1}, "slo": {"endpoints": {"rank": {"p99_ms": "x"}}}})
    with pytest.raises(InvalidInputError, match="at least one"):
        parse_config({"traffic": {"rank": 0}})


@pytest.mark.parametrize(("text", "seconds"), [("60", 60), ("90s", 90), ("10m", 600), ("1h", 3600)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


def test_a_bad_duration_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="duration"):
        parse_duration("soon")
