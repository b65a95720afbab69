"""`engram eval` end to end on generated data: the ranker recovers the planted tastes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.settings import get_settings
from engram.cli import main
from pipelines.generate import GenerateConfig, write_dataset
from tests.embedding_models import link_embedding_models

MODELS = ("lightgbm", "popularity", "recent_popularity", "item_knn", "als_asof", "als", "ease")
SEEDS = 2
METRICS = {"ndcg@10", "recall@10", "recall@100", "mrr", "coverage"}


@pytest.fixture(scope="module")
def evaluated(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, milvus_uri: str
) -> dict:
    """One `engram eval --json --seeds 2` run on the small generated dataset."""
    root = tmp_path_factory.mktemp("eval")
    paths = write_dataset(root / "data", GenerateConfig.small())
    home = root / "home"
    home.mkdir()
    link_embedding_models(request, home)
    env = {"ENGRAM_HOME": str(home), "MILVUS_URI": milvus_uri, "REDIS_URL": ""}
    args = [
        "eval",
        "--data",
        str(paths.signals),
        "--format",
        "signals",
        "--catalog",
        str(paths.catalog),
        "--report",
        str(root / "report"),
        "--seeds",
        str(SEEDS),
        "--json",
    ]
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, args, env=env, catch_exceptions=False)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    # stdout alone: a model's loading bar on stderr may end without a newline.
    out: dict = json.loads(result.stdout.strip().splitlines()[-1])
    return out


def test_eval_json_has_the_split_and_every_models_metrics(evaluated: dict) -> None:
    assert {"evaluated_users", "relevant_pairs", "holdout_fraction"} <= set(evaluated["split"])
    assert set(MODELS) <= set(evaluated["metrics"])
    for name in MODELS:
        assert set(evaluated["metrics"][name]) == METRICS
    assert {"popularity", "cooccurrence", "als", "embedding", "union"} <= set(
        evaluated["candidates"]
    )


def test_metrics_are_means_over_the_seeds_with_their_spread(evaluated: dict) -> None:
    assert evaluated["split"]["seeds"] == SEEDS
    spread = evaluated["metrics_std"]
    assert set(spread) == set(evaluated["metrics"])
    for name in MODELS:
        assert set(spread[name]) == METRICS and all(v >= 0 for v in spread[name].values())
    for deterministic in ("popularity", "item_knn", "ease"):  # no seed: the same each time
        assert all(v == 0 for v in spread[deterministic].values())


def test_the_ranker_recovers_planted_tastes_well_above_popularity(evaluated: dict) -> None:
    ranker, popularity = evaluated["metrics"]["lightgbm"], evaluated["metrics"]["popularity"]
    assert ranker["ndcg@10"] > 1.5 * popularity["ndcg@10"]
    assert ranker["recall@100"] > popularity["recall@100"]


def test_the_report_has_its_plots(evaluated: dict) -> None:
    report = Path(evaluated["report"])
    assert "| lightgbm |" in report.read_text() and " ± " in report.read_text()
    assert (report.parent / "ndcg_at_k.png").stat().st_size > 0
    assert (report.parent / "importance.png").stat().st_size > 0
