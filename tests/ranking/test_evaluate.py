"""`engram eval` end to end on generated data: the ranker recovers the planted tastes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from core.settings import get_settings
from engram.cli import main
from pipelines.generate import GenerateConfig, write_dataset
from ranking.baselines import ALS
from ranking.candidates import ModelSource
from ranking.evaluate import _learned_once
from ranking.split import temporal_split
from ranking.train import RankingInputs, fit_source_models
from tests.embedding_models import link_embedding_models

MODELS = (
    "lightgbm",
    "lightgbm_asof",
    "popularity",
    "recent_popularity",
    "item_knn",
    "als_asof",
    "als",
    "ease",
)
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
    assert {"popularity", "cooccurrence", "als", "embedding", "union", "union_asof"} <= set(
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


def test_test_users_are_ranked_by_learned_sources_fit_once_on_the_train_part() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "user_id": [f"u{n % 40}" for n in range(1_200)],
            "item_id": [f"i{rng.integers(60)}" for _ in range(1_200)],
            "ts": pd.Timestamp("2026-01-01", tz="UTC")
            + pd.to_timedelta(rng.permutation(1_200), unit="h"),
            "type": "click",
            "value": np.nan,
            "weight": 1.0,
        }
    )
    split = temporal_split(frame)
    assert split.users
    models = fit_source_models(split.history)
    items = pd.Index(sorted(frame["item_id"].unique()))
    sources = [ModelSource(name, model) for name, model in models.items()]
    inputs = RankingInputs(sources, None, items, [], None)  # type: ignore[arg-type]
    at_test = {s.name: s for s in _learned_once(inputs, split.train, seed=0).sources}
    for name in ("popularity", "cooccurrence"):  # point in time already, as the baselines'
        assert at_test[name] is sources[list(models).index(name)]
    for name in ("item_knn", "als", "ease"):  # training keeps the point-in-time ones
        assert models[name].point_in_time and not at_test[name].model.point_in_time
    # The same data as the `als` baseline of that seed, and so the same scores.
    at = pd.DatetimeIndex(split.cutoffs.to_numpy()).tz_convert("UTC")
    baseline = ALS(seed=0).fit(split.train).score_batch(split.users, at, items)
    np.testing.assert_allclose(at_test["als"].scores(split.users, at, items), baseline)
