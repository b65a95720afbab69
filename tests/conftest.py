"""Fixtures that start real servers for the tests and clean up after them.

Tests never touch the machine's own Redis on 127.0.0.1:6379: each session starts its own
redis-server on a free port in a temporary directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from redis.cluster import RedisCluster
from sqlalchemy.engine import make_url

from core.settings import Settings
from core.stores import local_redis
from tests.redis_cluster import start_cluster

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Property tests draw the same examples on every run, so CI is reproducible; run with
# HYPOTHESIS_PROFILE=explore to search fresh random examples (and keep any failure as a test).
# They check what is computed, not how fast: a loaded machine must not fail them on time.
hypothesis_settings.register_profile(
    "repeatable",
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
hypothesis_settings.register_profile("explore", max_examples=1000)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


# The MovieLens development set lives beside the project and is never copied into it.
MOVIELENS_DIR = Path(
    os.environ.get("ENGRAM_MOVIELENS")
    or Path(__file__).resolve().parents[2] / "shared" / "data" / "movielens-small"
)


@pytest.fixture(scope="session")
def movielens_dir() -> Path:
    """The MovieLens small directory (ENGRAM_MOVIELENS, else ../shared/data/movielens-small)."""
    if not (MOVIELENS_DIR / "ratings.csv").is_file():
        pytest.skip(f"MovieLens small is not at {MOVIELENS_DIR}")
    return MOVIELENS_DIR


POSTGRES = os.environ.get("ENGRAM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """The SQLAlchemy URL of a new, empty database, dropped (connections and all) at the end."""
    psycopg = pytest.importorskip("psycopg")
    from psycopg import sql

    server = make_url(POSTGRES)
    admin_url = server.set(drivername="postgresql", database="postgres")
    try:
        admin = psycopg.connect(
            admin_url.render_as_string(hide_password=False), autocommit=True, connect_timeout=3
        )
    except psycopg.OperationalError as e:
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES} (ENGRAM_TEST_POSTGRES): {e}")
    name = f"engram_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            url = server.set(drivername="postgresql+psycopg", database=name)
            yield url.render_as_string(hide_password=False)
        finally:
            # FORCE: the stores' connection pools may still hold sessions.
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a redis-server owned by this test session."""
    directory = tmp_path_factory.mktemp("redis")
    url = local_redis.ensure_redis(directory)
    yield url
    local_redis.stop_redis(directory)


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """The session's Redis, emptied before and after the test."""
    client = redis.Redis.from_url(redis_server)
    client.flushdb()
    yield redis_server
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def redis_cluster_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of one node of a 3-master Redis Cluster owned by this test session."""
    url, stop = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    yield url
    stop()


@pytest.fixture
def redis_cluster_url(redis_cluster_server: str) -> Iterator[str]:
    """The session's Redis Cluster, every master emptied before and after the test."""
    with RedisCluster.from_url(redis_cluster_server) as client:
        client.flushall(target_nodes=RedisCluster.PRIMARIES)
        yield redis_cluster_server
        client.flushall(target_nodes=RedisCluster.PRIMARIES)


@pytest.fixture(scope="session")
def milvus_binaries(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The embedded Milvus's unpacked binaries (~250 MB, ~5 s), kept in pytest's cache."""
    from core.stores import local_milvus

    name = f"milvus-{local_milvus.MILVUS_VERSION}-bin"
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    binaries = Path(cache.mkdir(name)) if cache else tmp_path_factory.mktemp(name)
    local_milvus.unpack_binaries(binaries)
    return binaries


@pytest.fixture(scope="session")
def milvus_uri(tmp_path_factory: pytest.TempPathFactory, milvus_binaries: Path) -> Iterator[str]:
    """URI of one embedded Milvus server for the whole session; tests use their own
    collections."""
    from core.stores import local_milvus

    directory = tmp_path_factory.mktemp("milvus-session")
    uri = local_milvus.ensure_milvus(directory, binaries_dir=milvus_binaries, die_with_caller=True)
    _MILVUS_DIRS[uri] = directory
    yield uri
    local_milvus.stop_milvus(directory)


_MILVUS_DIRS: dict[str, Path] = {}


class PausableServer:
    """The session's Milvus process: `pause()` stops it (SIGSTOP, a server that hangs as a real
    one can), `resume()` lets it run again."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.paused = False

    def pause(self) -> None:
        """SIGSTOP, then wait until every thread has stopped: the signal is delivered to a
        thread running on another core only when it is next interrupted, and a reply sent in
        that window made a paused server answer (seen once in a full run)."""
        os.kill(self.pid, signal.SIGSTOP)
        self.paused = True
        deadline = time.monotonic() + 5.0
        while not self._stopped() and time.monotonic() < deadline:
            time.sleep(0.005)

    def _stopped(self) -> bool:
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                state = (task / "stat").read_text().rpartition(")")[2].split()[0]
                if state not in ("T", "t"):
                    return False
        return True

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
        self.paused = False


@pytest.fixture
def pausable_milvus(milvus_uri: str) -> Iterator[PausableServer]:
    """The session's Milvus server, resumed when the test ends whatever happens."""
    server = PausableServer(int((_MILVUS_DIRS[milvus_uri] / "milvus.pid").read_text()))
    yield server
    if server.paused:
        server.resume()


@pytest.fixture(scope="session")
def minilm(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """all-MiniLM-L6-v2 on ONNX (memory.embed.Embedder), exported once into pytest's cache."""
    from memory import embed  # onnxruntime loads only for the tests that embed

    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    models = Path(cache.mkdir("engram-models")) if cache else tmp_path_factory.mktemp("models")
    return embed.load_onnx_minilm(models, variant="fp32", threads=1)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a fresh ENGRAM_HOME in tmp_path; no services configured."""
    return Settings(engram_home=tmp_path / "home", redis_url=None, milvus_uri=None)
