"""The compiled predictor scores as LightGBM does, is built once per model and host, and gives
way to LightGBM's predict when it cannot be built."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ranking import predictor
from ranking.predictor import BoosterPredictor, CompiledPredictor, compiled, probe_rows


def _booster(seed: int) -> Any:
    """A small lambdarank booster whose first features had missing values in training (NaN
    goes the learned way), the others none (NaN reads as zero); the third splits its zeros
    from the rest at LightGBM's zero threshold (+-1e-35)."""
    import lightgbm as lgb

    rng = np.random.default_rng(seed)
    rows, width = 600, 5
    matrix = rng.normal(size=(rows, width))
    matrix[:, 2] = np.round(matrix[:, 2])
    labels = (matrix[:, 0] + matrix[:, 2] + rng.normal(size=rows) > 1).astype(int)
    matrix[:, :2][rng.random((rows, 2)) < 0.3] = np.nan
    data = lgb.Dataset(matrix, labels, group=[20] * (rows // 20))
    params = {"objective": "lambdarank", "num_leaves": 7, "min_data_in_leaf": 5, "verbose": -1}
    return lgb.train({**params, "seed": seed}, data, num_boost_round=15)


@pytest.fixture(scope="module")
def booster() -> Any:
    return _booster(0)


def _rows(width: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    matrix = rng.normal(size=(300, width))
    matrix[rng.random(matrix.shape) < 0.2] = np.nan
    matrix[rng.random(matrix.shape) < 0.1] = 0.0
    matrix[0] = np.inf
    return matrix


def test_compiled_scores_equal_lightgbm_to_the_last_bit(booster: Any, tmp_path: Path) -> None:
    fast = compiled(booster, tmp_path)
    assert isinstance(fast, CompiledPredictor)
    for rows in (_rows(5), probe_rows(booster.model_to_string(), 2000, seed=7)):
        expected = booster.predict(rows, num_threads=1)
        assert np.array_equal(fast.predict(rows), expected)
        assert np.array_equal(fast.predict(rows[:1]), expected[:1])
        assert np.array_equal(fast.predict(rows[::2]), expected[::2])  # not C-contiguous


def test_a_model_compiles_once_per_host_even_when_loaded_at_once(
    booster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tl2cgen

    builds: list[Path] = []
    export_lib = tl2cgen.export_lib

    def counted(*args: Any, **kwargs: Any) -> None:
        builds.append(args[2])
        export_lib(*args, **kwargs)

    monkeypatch.setattr(tl2cgen, "export_lib", counted)
    with ThreadPoolExecutor(2) as pool:
        loaded = list(pool.map(lambda _: compiled(booster, tmp_path), range(2)))
    loaded.append(compiled(booster, tmp_path))
    assert all(isinstance(each, CompiledPredictor) for each in loaded)
    assert len(builds) == 1
    assert [path.suffix for path in tmp_path.iterdir() if not path.name.startswith(".")] == [".so"]


def test_without_a_compiler_lightgbm_predicts(
    booster: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(predictor, "TOOLCHAIN", "no-such-compiler")
    with caplog.at_level(logging.WARNING, logger="engram"):
        fallback = compiled(booster, tmp_path)
    assert isinstance(fallback, BoosterPredictor)
    assert "compiled predictor unavailable" in caplog.text
    rows = _rows(5)
    assert np.array_equal(fallback.predict(rows), booster.predict(rows, num_threads=1))
    assert not list(tmp_path.glob("*.so"))


def test_a_library_that_scores_otherwise_is_refused(
    booster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = predictor.library(_booster(1).model_to_string(), tmp_path)
    monkeypatch.setattr(predictor, "library", lambda text, cache_dir: other)
    assert isinstance(compiled(booster, tmp_path), BoosterPredictor)
