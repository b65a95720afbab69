"""The load tooling end to end against a stand-in server: pool, locust, checks, soak, reports.

The stand-in (fake_server.py) has the API's routes and auth but answers at once, so these tests
check the tooling itself; test_short_load.py runs the same against the real server.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from core.settings import Settings
from loadtest import report
from loadtest.runner import LoadOptions, run_load
from pipelines.batch import run_ingest
from pipelines.generate import GenerateConfig, write_dataset

FAKE_SERVER = Path(__file__).with_name("fake_server.py")

SLO = """
traffic: {rank: 70, memory_search: 15, features: 10, signals: 5}
requests: {rank_k: 5, rank_candidates: 3, search_k: 3, signals_per_batch: 2}
slo:
  max_error_rate: 0
  min_rate_fraction: 0.5
  endpoints:
    rank: {p95_ms: 2000, p99_ms: 2000}
soak: {sample_every_s: 0.5, warmup_s: 0.5, window_s: 1}
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ENGRAM_HOME holding the small preset's events, catalog and feature snapshots."""
    root = tmp_path_factory.mktemp("loadtest-home")
    data = write_dataset(root / "data", GenerateConfig.small())
    settings = Settings(engram_home=root / "home", redis_url=None, milvus_uri=None)
    run_ingest(settings, data.signals, catalog=data.catalog, memories=False)
    return settings.engram_home


def _options(tmp_path: Path, **changes: object) -> LoadOptions:
    slo_file = tmp_path / "slo.yaml"
    slo_file.write_text(SLO, encoding="utf-8")
    base = LoadOptions(
        out=tmp_path / "out",
        duration_s=4,
        users=4,
        spawn_rate=4,
        rate=40,
        warmup_s=0,
        config_path=slo_file,
        server_command=(sys.executable, str(FAKE_SERVER)),
    )
    return LoadOptions(**{**vars(base), **changes})


def test_a_run_sends_the_mix_checks_it_and_writes_every_report(
    home: Path, redis_url: str, tmp_path: Path
) -> None:
    settings = Settings(engram_home=home, redis_url=redis_url, milvus_uri=None)
    result = run_load(settings, _options(tmp_path, soak=True), say=lambda _: None)

    assert result.ok, result.failures
    total = result.stats["Aggregated"]
    assert total.requests > 60 and total.failures == 0
    assert result.stats["rank"].requests > result.stats["features"].requests > 0
    assert result.stats["signals"].requests > 0
    for name in ("report.html", "locust.json", "locust_stats.csv", "summary.json", "soak.csv"):
        assert (result.out / name).stat().st_size > 0, name
    assert (result.out / "pool.json").stat().st_mode & 0o777 == 0o600
    pool = json.loads((result.out / "pool.json").read_text())
    assert pool["users"][0].startswith("u") and pool["items"] and pool["memory_users"]

    summary = json.loads((result.out / "summary.json").read_text())
    assert summary["breaches"] == [] and summary["memory_samples"] >= 4
    assert {g["series"] for g in summary["memory"]} == {
        "server RSS",
        "Redis used_memory (less excluded keys)",
    }
    assert summary["memory_peaks"]["server_rss_bytes"] > 10_000_000
    table = report.markdown(summary)
    assert "| POST /v1/rank |" in table and "SLO check: all SLOs held." in table


def test_failing_requests_break_the_error_slo_by_name(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_FAIL_RANK", "1")
    settings = Settings(engram_home=home, redis_url=None, milvus_uri=None)
    result = run_load(settings, _options(tmp_path, duration_s=3), say=lambda _: None)

    assert not result.ok
    assert "SLO breached: rank (POST /v1/rank): error rate 1 > 0" in result.failures
    assert result.stats["features"].failures == 0
