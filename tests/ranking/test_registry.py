"""The registry saves versions with their metadata and loads the latest by default."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
from click.testing import CliRunner

from core.errors import InvalidInputError, ModelNotFoundError
from core.settings import Settings, get_settings
from engram.cli import main
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


def test_a_pin_chooses_what_serves_until_unpinned(settings: Settings) -> None:
    assert registry.serving_version(settings) is None
    first = registry.save(settings, booster(), {}, {"features": []})
    second = registry.save(settings, booster(), {}, {"features": []})
    assert registry.serving_version(settings) == second
    registry.pin(settings, first)
    third = registry.save(settings, booster(), {}, {"features": []})
    assert registry.pinned(settings) == first and registry.serving_version(settings) == first
    assert registry.versions(settings) == [first, second, third]  # the pin is not a version
    registry.unpin(settings)
    assert registry.serving_version(settings) == third
    with pytest.raises(ModelNotFoundError):
        registry.pin(settings, "v19990101-000000")
    with pytest.raises(InvalidInputError):
        registry.pin(settings, "../elsewhere")


@pytest.fixture
def cli_home(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The settings' home as the CLI's (the group reads its settings from the environment)."""
    monkeypatch.setenv("ENGRAM_HOME", str(settings.engram_home))
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


def test_models_commands_list_pin_and_unpin(cli_home: Settings) -> None:
    settings = cli_home
    first = registry.save(settings, booster(), {}, {"features": [], "metrics": {}})
    second = registry.save(settings, booster(), {}, {"features": [], "metrics": {}})
    runner = CliRunner()

    def listed() -> list[dict[str, object]]:
        result = runner.invoke(main, ["models", "list", "--json"])
        assert result.exit_code == 0, result.output
        return [json.loads(line) for line in result.output.splitlines()]

    assert [(r["version"], r["serving"]) for r in listed()] == [(first, False), (second, True)]
    assert runner.invoke(main, ["models", "pin", first]).exit_code == 0
    assert [(r["serving"], r["pinned"]) for r in listed()] == [(True, True), (False, False)]
    refused = runner.invoke(main, ["models", "pin", "v19990101-000000"])
    assert refused.exit_code != 0 and "v19990101-000000" in refused.output
    assert runner.invoke(main, ["models", "unpin"]).exit_code == 0
    assert [r["serving"] for r in listed()] == [False, True]


def test_two_hosts_sharing_the_registry_see_each_others_versions_and_pins(
    tmp_path: Path, postgres_database: str
) -> None:
    first, second = (
        Settings(engram_home=tmp_path / name, engram_state_url=postgres_database)
        for name in ("first", "second")
    )
    older = registry.save(first, booster(), {"k": 1}, {"features": ["f0", "f1"]})
    newer = registry.save(second, booster(), {"k": 2}, {"features": ["f0", "f1"]})
    assert registry.versions(first) == registry.versions(second) == [older, newer]
    assert (
        registry.load(first).sources == {"k": 2} and registry.load(second, older).version == older
    )
    registry.pin(second, older)
    assert registry.serving_version(first) == older and registry.pinned(first) == older
    registry.unpin(first)
    assert registry.serving_version(second) == newer
    assert registry.metadata(first, newer)["version"] == newer
    assert not registry.registry_dir(first).exists()  # nothing but the cache on the host


def test_a_name_taken_by_a_leftover_directory_is_skipped(settings: Settings) -> None:
    taken = registry.new_version([])
    (registry.registry_dir(settings) / taken).mkdir(parents=True)  # empty: no version
    saved = registry.save(settings, booster(), {}, {"features": []})
    assert saved != taken and registry.versions(settings) == [saved]
