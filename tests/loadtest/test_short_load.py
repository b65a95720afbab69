"""The short load test of `make test`: the real stack under mixed traffic, with no error.

Prepares the small preset through the CLI (generate, ingest with memories, materialize; no
training, to stay short, so rank answers from popularity), starts `engram serve` with two
workers on the session's Redis and Milvus, sends 20 s of mixed traffic after a 5 s warm-up, and
checks the SLO file below: no failed request. Its latency bounds are
loose and the sustained rate is not checked, on purpose: this runs on a shared 2-core CI
machine; the strict objectives (loadtest/slo.yaml) are checked by the recorded runs in
docs/benchmarks.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.settings import Settings
from tests.embedding_models import link_embedding_models

pytest.importorskip("serving.app", reason="the HTTP server (serving/) is not there yet")

SLO = """
traffic: {rank: 70, memory_search: 15, features: 10, signals: 5}
requests: {rank_k: 10, rank_candidates: 0, search_k: 5, signals_per_batch: 5}
slo:
  max_error_rate: 0
  min_rate_fraction: 0     # the rate a busy CI machine sustains is not what this test checks
  endpoints:
    rank: {p95_ms: 1000, p99_ms: 2000}
    features: {p95_ms: 1000, p99_ms: 2000}
    memory_search: {p95_ms: 2000, p99_ms: 4000}
    signals: {p95_ms: 2000, p99_ms: 4000}
"""


@pytest.fixture
def home(
    tmp_path: Path, request: pytest.FixtureRequest, milvus_uri: str, redis_url: str
) -> Iterator[Settings]:
    """A fresh ENGRAM_HOME on the session's Redis and Milvus (default collection emptied)."""
    from pymilvus import MilvusClient

    from memory.store import DEFAULT_COLLECTION

    link_embedding_models(request, tmp_path / "home")
    client = MilvusClient(uri=milvus_uri)
    client.drop_collection(DEFAULT_COLLECTION)
    yield Settings(engram_home=tmp_path / "home", redis_url=redis_url, milvus_uri=milvus_uri)
    client.drop_collection(DEFAULT_COLLECTION)
    client.close()


@pytest.mark.slow
def test_twenty_seconds_of_mixed_traffic_on_the_real_server_hold_the_slo(
    home: Settings, tmp_path: Path
) -> None:
    from engram.cli import main
    from loadtest.runner import LoadOptions, run_load

    if "serve" not in main.commands:
        pytest.skip("`engram serve` is not registered yet")
    slo_file = tmp_path / "slo.yaml"
    slo_file.write_text(SLO, encoding="utf-8")
    options = LoadOptions(
        out=tmp_path / "out",
        duration_s=20,
        users=10,
        spawn_rate=10,
        rate=50,
        workers=2,
        warmup_s=5,
        config_path=slo_file,
        preset="small",
        train=False,
    )
    lines: list[str] = []
    result = run_load(home, options, say=lines.append)

    assert result.ok, result.failures
    total = result.stats["Aggregated"]
    assert total.failures == 0 and total.requests >= 300
    for scenario in ("rank", "memory_search", "features", "signals"):
        assert result.stats[scenario].requests > 0, scenario
    assert any("generating the small preset" in line for line in lines)
    assert (result.out / "report.html").stat().st_size > 0
