"""State files: the same behaviour from a local directory and from PostgreSQL, and what two
hosts sharing PostgreSQL see of each other's writes (a fresh database each test:
tests/conftest.py `postgres_database`)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from core.settings import Settings
from core.stores import feature_store
from core.stores.state_files import LocalFiles, SharedFiles, StateFiles


@pytest.fixture(params=["local", "shared"])
def files(request: pytest.FixtureRequest, tmp_path: Path) -> StateFiles:
    """One area, in a directory or in a new PostgreSQL database."""
    if request.param == "local":
        return LocalFiles(tmp_path / "area")
    url: str = request.getfixturevalue("postgres_database")
    return SharedFiles(url, "area", tmp_path / "cache")


def test_files_are_published_read_replaced_and_removed(files: StateFiles) -> None:
    assert files.names() == [] and files.revision("v1/a") == ""
    assert files.publish("v1", {"a": b"one", "b": b""})
    assert not files.publish("v1", {"a": b"other"})  # a directory is published once
    assert files.names() == ["v1/a", "v1/b"]
    assert files.read("v1/a") == b"one" and files.read("v1/b") == b""
    before = files.revision("v1/a")
    fetched = files.fetch("v1/a")
    assert fetched.path.read_bytes() == b"one" and fetched.revision == before

    files.write("v1/a", b"two" * 10)
    files.write(".pinned", b"v1")
    assert files.revision("v1/a") not in ("", before)
    assert files.fetch("v1/a").path.read_bytes() == b"two" * 10
    assert files.names() == [".pinned", "v1/a", "v1/b"]

    files.remove("v1")
    files.remove(".pinned")
    assert files.names() == []
    with pytest.raises(FileNotFoundError):
        files.read("v1/a")


def test_the_lock_is_held_by_one_at_a_time(files: StateFiles) -> None:
    held: list[str] = []

    def hold(name: str) -> None:
        with files.lock("forget"):
            held.append(f"{name} in")
            time.sleep(0.2)
            held.append(f"{name} out")

    threads = [threading.Thread(target=hold, args=(name,)) for name in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert held in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])


def test_a_hosts_cached_copy_goes_when_another_host_rewrites_or_removes_it(
    tmp_path: Path, postgres_database: str
) -> None:
    first = SharedFiles(postgres_database, "registry", tmp_path / "first")
    second = SharedFiles(postgres_database, "registry", tmp_path / "second")
    assert first.publish("v1", {"sources.pkl": b"alice and bob", "model.txt": b"trees"})
    cached = first.fetch("v1/sources.pkl").path
    assert cached.is_relative_to(tmp_path / "first") and cached.read_bytes() == b"alice and bob"

    second.write("v1/sources.pkl", b"bob")
    assert second.fetch("v1/sources.pkl").path.read_bytes() == b"bob"
    assert cached.is_file()  # the first host has not looked since
    first.names()  # its next model check
    assert not cached.exists()
    assert first.fetch("v1/sources.pkl").path.read_bytes() == b"bob"

    second.remove("v1")
    first.names()
    assert [p for p in (tmp_path / "first").rglob("*") if p.is_file()] == []


def test_an_unreachable_state_database_is_a_service_error(tmp_path: Path) -> None:
    from core.errors import ServiceUnavailableError

    unreachable = SharedFiles("postgresql://engram@127.0.0.1:1/state", "area", tmp_path)
    with pytest.raises(ServiceUnavailableError):
        unreachable.names()


def test_settings_move_the_offline_store_and_share_state(tmp_path: Path) -> None:
    from pipelines.dead_letter import dead_letter_files
    from ranking.registry import registry_files

    local = Settings(engram_home=tmp_path / "home")
    assert local.offline_dir == tmp_path / "home" / "offline"
    assert isinstance(registry_files(local), LocalFiles)
    shared = Settings(
        engram_home=tmp_path / "home",
        engram_offline_dir=tmp_path / "mnt" / "offline",
        engram_state_url="postgresql://engram@db.internal/state",
    )
    assert shared.offline_dir == tmp_path / "mnt" / "offline"
    assert isinstance(registry_files(shared), SharedFiles)
    assert isinstance(dead_letter_files(shared), SharedFiles)
    # The plain `feast` CLI finds the snapshots where Engram's apply binds them.
    variables = feature_store.feast_environment(shared, "redis://127.0.0.1:6379/0")
    assert variables["ENGRAM_OFFLINE_DIR"] == str(tmp_path / "mnt" / "offline")
    assert feature_store.snapshot_path(shared, "x/user_features.parquet").startswith(
        str(tmp_path / "mnt" / "offline" / "features")
    )
