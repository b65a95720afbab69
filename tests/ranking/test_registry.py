"""The registry saves versions with their metadata and loads the latest by default."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from core.errors import ModelNotFoundError
from core.settings import Settings
from ranking import registry


def booster() -> lgb.Booster:
    rng = np.random.default_rng(0)
    data = lgb.Dataset(rng.random((50, 2)), rng.integers(0, 2, 50))
    return lgb.train({"objective": "binary", "verbose": -1}, data, num_boost_round=2)


def test_save_then_load_the_latest_and_a_named_version(settings: Settings) -> None:
    first = registry.save(settings, booster(), {"k": 1}, {"features": ["f0", "f1"]})
    second = registry.save(settings, booster(), {"k": 2}, {"features": ["f0", "f1"]})
    assert registry.versions(settings) == [first, second]
    latest = registry.load(settings)
    assert latest.version == second and latest.sources == {"k": 2}
    assert latest.meta["version"] == second and latest.features == ["f0", "f1"]
    assert registry.load(settings, first).sources == {"k": 1}


def test_a_missing_model_is_a_clear_error(settings: Settings) -> None:
    with pytest.raises(ModelNotFoundError):
        registry.load(settings)
    registry.save(settings, booster(), {}, {"features": []})
    with pytest.raises(ModelNotFoundError):
        registry.load(settings, "v19990101-000000")
