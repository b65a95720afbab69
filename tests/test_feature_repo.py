"""feature_repo/ matches the pipeline's features, documents them, and loads as Feast does."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from feast import (
    Entity,
    FeatureService,
    FeatureView,
    FileSource,
    OnDemandFeatureView,
    PushSource,
    RequestSource,
)
from feast.repo_config import load_repo_config
from feast.repo_operations import parse_repo
from feast.types import Array, Float32, Float64, Int64, String, UnixTimestamp

from core.settings import Settings
from core.stores.feature_store import (
    FEATURE_REPO,
    feast_environment,
    repo_config,
    repo_objects,
)
from core.stores.local_redis import free_port
from pipelines.feature_specs import ITEM_FEATURES, USER_FEATURES, FeatureSpec

FEAST_TYPES = {
    "int64": Int64,
    "float64": Float64,
    "timestamp": UnixTimestamp,
    "list<string>": Array(String),
    "list<float32>": Array(Float32),
}
WINDOWS = {"1d": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}
REDIS_URL = "redis://127.0.0.1:6390/3"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(engram_home=tmp_path_factory.mktemp("home"), redis_url=REDIS_URL)


@pytest.fixture(scope="module")
def objects(settings: Settings) -> list[Any]:
    return repo_objects(settings)


def of_kind(objects: list[Any], kind: Any) -> dict[str, Any]:
    return {o.name: o for o in objects if isinstance(o, kind)}


def stored_views(objects: list[Any]) -> dict[str, FeatureView]:
    return of_kind(objects, FeatureView)


def views_of(objects: list[Any], entity: str) -> list[FeatureView]:
    return [v for v in stored_views(objects).values() if v.entities == [entity]]


@pytest.mark.parametrize(("entity", "specs"), [("user", USER_FEATURES), ("item", ITEM_FEATURES)])
def test_views_hold_every_pipeline_feature_once_with_its_type(
    objects: list[Any], entity: str, specs: tuple[FeatureSpec, ...]
) -> None:
    fields = [f for view in views_of(objects, entity) for f in view.features]
    assert sorted(f.name for f in fields) == sorted(spec.name for spec in specs)
    by_name = {spec.name: spec for spec in specs}
    for f in fields:
        assert f.dtype == FEAST_TYPES[by_name[f.name].dtype], f.name


def test_every_object_and_feature_has_a_description(objects: list[Any]) -> None:
    for obj in objects:
        assert obj.description.strip(), obj.name
    for view in stored_views(objects).values():
        for f in view.features:
            assert f.description.strip(), f"{view.name}:{f.name}"
    # Feast 0.67 cannot keep descriptions on an on-demand view's fields (it compares them with
    # undescribed inferred ones at apply), so the view's description names each output.
    for odfv in of_kind(objects, OnDemandFeatureView).values():
        for f in odfv.features:
            assert re.search(rf"\b{f.name}\b", odfv.description), f"{odfv.name}:{f.name}"


def test_each_views_ttl_is_its_features_window(objects: list[Any]) -> None:
    for view in stored_views(objects).values():
        suffixes = {f.name.rsplit("_", 1)[-1] for f in view.features}
        windows = suffixes & set(WINDOWS)
        if windows:
            # item_trend (7d over 30d) sits with the 7-day features it is driven by.
            assert len(windows) == 1, view.name
            assert view.ttl == WINDOWS[windows.pop()], view.name
        else:
            assert view.ttl == timedelta(0), view.name  # all-time values never expire


def test_views_read_the_snapshots_and_take_pushes(objects: list[Any], settings: Settings) -> None:
    snapshots = (settings.offline_dir / "features").resolve()
    pushes = of_kind(objects, PushSource)
    for view in stored_views(objects).values():
        assert view.online
        assert isinstance(view.stream_source, PushSource)
        assert view.stream_source.name in pushes
        source = view.batch_source
        assert isinstance(source, FileSource)
        assert Path(source.path).parent == snapshots
        assert (source.timestamp_field, source.created_timestamp_column) == (
            "event_timestamp",
            "created",
        )
    assert set(pushes) == {"user_stats_push_source", "item_stats_push_source"}


def test_the_ranking_service_reads_numbers_and_the_request_match(objects: list[Any]) -> None:
    services = of_kind(objects, FeatureService)
    assert set(services) == {"ranking", "analytics"}
    views = stored_views(objects)
    odfvs = of_kind(objects, OnDemandFeatureView)
    ranking = services["ranking"]
    for projection in ranking.feature_view_projections:
        if projection.name in odfvs:
            request = odfvs[projection.name].source_request_sources.values()
            assert [f.name for s in request for f in s.schema] == ["item_category"]
            continue
        for f in projection.features:
            assert f.dtype in (Int64, Float64), f"{projection.name}:{f.name}"
    assert any(p.name == "user_item_category" for p in ranking.feature_view_projections)
    assert isinstance(of_kind(objects, RequestSource)["ranking_request"], RequestSource)
    analytics = services["analytics"]
    every = {f.name for v in views.values() for f in v.features}
    assert {f.name for p in analytics.feature_view_projections for f in p.features} == every


def test_entities_are_user_and_item(objects: list[Any]) -> None:
    entities = of_kind(objects, Entity)
    assert {name: e.join_key for name, e in entities.items()} == {
        "user": "user_id",
        "item": "item_id",
    }


def test_feasts_own_parser_finds_the_same_objects(
    objects: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(FEATURE_REPO)  # `feast apply` runs in the repo
    contents = parse_repo(FEATURE_REPO)
    found = {
        o.name
        for group in (
            contents.entities,
            contents.data_sources,
            contents.feature_views,
            contents.on_demand_feature_views,
            contents.feature_services,
        )
        for o in group
    }
    assert found - {"__dummy"} == {o.name for o in objects}  # Feast adds its dummy entity


def test_the_feast_cli_reads_the_same_config_from_the_environment(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in feast_environment(settings, REDIS_URL).items():
        monkeypatch.setenv(name, value)
    by_cli = load_repo_config(FEATURE_REPO, FEATURE_REPO / "feature_store.yaml")
    by_engram = repo_config(settings, REDIS_URL)
    assert by_engram.project == by_cli.project == "engram"
    assert by_engram.registry.path == by_cli.registry.path
    assert by_engram.registry.path == f"sqlite:///{settings.engram_home.resolve()}/registry.db"
    assert by_engram.online_store.connection_string == "127.0.0.1:6390,db=3"
    assert by_cli.online_store.connection_string == "127.0.0.1:6390,db=3"
    assert by_engram.offline_store.type == by_cli.offline_store.type == "duckdb"
    assert by_engram.entity_key_serialization_version == 3


def test_feast_ui_serves_the_repo(tmp_path: Path, redis_server: str) -> None:
    """`feast ui` in feature_repo/ with `engram feast-env`'s variables answers with the project."""
    settings = Settings(engram_home=tmp_path / "home", redis_url=redis_server)
    settings.engram_home.mkdir()
    port = free_port()
    env = {**os.environ, **feast_environment(settings, redis_server)}
    command = [str(Path(sys.executable).with_name("feast")), "ui", "--host", "127.0.0.1"]
    ui = subprocess.Popen(
        [*command, "--port", str(port)],
        cwd=FEATURE_REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert ui.poll() is None, ui.stderr.read().decode()[-2000:] if ui.stderr else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/projects-list.json") as got:
                    projects = json.load(got)
                break
            except OSError:
                assert time.monotonic() < deadline, "feast ui did not answer within 90 s"
                time.sleep(0.5)
        assert [p["id"] for p in projects["projects"]] == ["engram"]
    finally:
        ui.terminate()
        ui.wait(timeout=10)
