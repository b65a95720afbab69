"""Two API hosts, each with its own ENGRAM_HOME, on the same Redis, Milvus and PostgreSQL, started
as a deployment starts them (infra/Procfile under honcho) after the batch job ran on the first:
what goes in through one host is read, ranked and forgotten through the other, and the forget
audit then finds nothing of the user on either host nor in any shared store.

The shared state: a 3-master Redis Cluster (`deployment_redis`), one
embedded Milvus by URI, one PostgreSQL database (Feast's registry and Engram's state:
ENGRAM_FEAST_REGISTRY_URL, ENGRAM_STATE_URL) and one offline directory (ENGRAM_OFFLINE_DIR) that
stands for a shared filesystem.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from pymilvus import MilvusClient

from core.settings import Settings, get_settings
from engram.cli import main
from forget.audit import audit
from memory.store import DEFAULT_COLLECTION
from pipelines.generate import GenerateConfig, write_dataset
from ranking.item_vectors import ITEMS_COLLECTION
from tests.embedding_models import link_embedding_models
from tests.feature_home import AS_OF
from tests.forget.test_forget_audit import AT, STRANGER, TEXT, USER, api_signals, user_batch

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
KEYS = {"read": "r" * 24, "write": "w" * 24, "admin": "a" * 24}
START_S = 300.0  # a deadline: a loaded 2-core machine takes minutes to import and warm a host


@pytest.fixture
def deployment_redis(redis_cluster_url: str) -> dict[str, str]:
    """The Redis settings every host gets: the session's 3-master Redis Cluster, by any node."""
    return {"REDIS_URL": redis_cluster_url, "REDIS_CLUSTER": "true"}


@dataclass
class Host:
    """One API host: its environment file, its home and its running `honcho start api`."""

    name: str
    env_file: Path
    home: Path
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self, env: dict[str, str]) -> Settings:
        """The settings its processes read from the environment file (every variable that is
        a setting, so a Redis Cluster's flag from `deployment_redis` comes along)."""
        fields = {key.lower(): value for key, value in env.items()}
        known = {name: fields[name] for name in Settings.model_fields if name in fields}
        return Settings.model_validate({**known, "engram_home": self.home})

    def call(self, method: str, path: str, scope: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {KEYS[scope]}"}
        answer = requests.request(method, self.base + path, headers=headers, timeout=60, **kwargs)
        assert answer.status_code == 200, (self.name, path, answer.status_code, answer.text)
        return answer.json()


def honcho() -> list[str]:
    """`honcho` with the repo's Procfile, run from the repo."""
    return [str(BIN / "honcho"), "-f", str(ROOT / "infra" / "Procfile"), "-d", str(ROOT)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def hosts(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    deployment_redis: dict[str, str],
    milvus_uri: str,
    postgres_database: str,
) -> Iterator[tuple[dict[str, str], list[Host]]]:
    """Two hosts' environment files and homes (nothing started); the Milvus collections they
    make are dropped afterwards."""
    env = {
        **deployment_redis,
        "MILVUS_URI": milvus_uri,
        "ENGRAM_FEAST_REGISTRY_URL": postgres_database,
        "ENGRAM_STATE_URL": postgres_database,
        "ENGRAM_OFFLINE_DIR": str(tmp_path / "shared" / "offline"),
        "ENGRAM_API_KEYS": ";".join(f"{key}:{scope}" for scope, key in KEYS.items()),
        "ENGRAM_MODEL_CHECK_SECONDS": "1",
        "ENGRAM_WORKERS": "1",
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    made: list[Host] = []
    for name in ("a", "b"):
        home = tmp_path / f"host-{name}" / "home"
        link_embedding_models(request, home)
        env_file = tmp_path / f"host-{name}.env"
        lines = [f"{key}={value}" for key, value in {**env, "ENGRAM_HOME": str(home)}.items()]
        env_file.write_text("\n".join(lines) + "\n")
        made.append(Host(name, env_file, home, free_port(), tmp_path / f"host-{name}.log"))
    milvus = MilvusClient(uri=milvus_uri)
    existed = {
        name for name in (DEFAULT_COLLECTION, ITEMS_COLLECTION) if milvus.has_collection(name)
    }
    try:
        yield env, made
    finally:
        stop(made)
        for name in {DEFAULT_COLLECTION, ITEMS_COLLECTION} - existed:
            if milvus.has_collection(name):
                milvus.drop_collection(name)
        milvus.close()


def start(host: Host) -> None:
    """`honcho start api` for the host, in a process group of its own."""
    command = [*honcho(), "-e", str(host.env_file), "start", "api", "-p", str(host.port)]
    with host.log.open("wb") as log:
        host.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=_bare_env(), start_new_session=True
        )


def wait_ready(host: Host) -> None:
    deadline = time.monotonic() + START_S
    while True:
        assert host.process is not None and host.process.poll() is None, host.log.read_text()
        with contextlib.suppress(requests.RequestException):
            if requests.get(host.base + "/readyz", timeout=5).status_code == 200:
                return
        assert time.monotonic() < deadline, host.log.read_text()
        time.sleep(0.5)


def stop(hosts: list[Host]) -> None:
    """SIGTERM to each host's honcho, which stops its processes (all at once); a host's process
    group is killed if it lingers."""
    running = [h.process for h in hosts if h.process is not None and h.process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    for process in running:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _bare_env() -> dict[str, str]:
    """The test process's environment without Engram's settings: the env file is the host's."""
    return {
        k: v for k, v in os.environ.items() if not k.startswith(("ENGRAM_", "REDIS_", "MILVUS"))
    }


def batch_job(host: Host, env: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    """The batch job's commands with the host's environment (in this process: each command in
    a process of its own would import Feast again): ingest a generated log with the user's
    history, materialize, train; returns the trained version's metadata."""
    config = GenerateConfig(users=30, events_per_user=40, items=120, days=30, chat_user_share=0.2)
    paths = write_dataset(tmp_path / "data", config)
    items = [json.loads(line)["item_id"] for line in paths.catalog.read_text().splitlines()]
    signals = tmp_path / "signals.jsonl"
    lines = [json.dumps(record) for record in user_batch(items[5:20])]
    signals.write_text(paths.signals.read_text() + "\n".join(lines) + "\n")
    at = AS_OF.isoformat()
    engram(host, env, "ingest", str(signals), "--catalog", str(paths.catalog), "--as-of", at)
    engram(host, env, "materialize", "--end", at)
    trained: dict[str, Any] = json.loads(engram(host, env, "train", "--json").splitlines()[-1])
    return trained


def engram(host: Host, env: dict[str, str], *args: str) -> str:
    """An `engram` command run as the host runs it: configured by its environment only."""
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            main, list(args), env={**env, "ENGRAM_HOME": str(host.home)}, catch_exceptions=False
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    return result.output


def ranked(host: Host, user: str) -> dict[str, Any]:
    """POST /v1/rank at AT, without the user id (to compare two users' answers)."""
    body = {"user_id": user, "k": 10, "context": {"time": AT}}
    answer = host.call("POST", "/v1/rank", "read", json=body)
    return {name: value for name, value in answer.items() if name != "user_id"}


def test_what_one_host_takes_in_the_other_reads_ranks_and_forgets_leaving_nothing(
    tmp_path: Path, hosts: tuple[dict[str, str], list[Host]]
) -> None:
    env, (first, second) = hosts
    trained = batch_job(first, env, tmp_path)
    for host in (first, second):
        start(host)
    for host in (first, second):
        wait_ready(host)
    assert not (second.home / "offline").exists() and not (second.home / "registry.db").exists()

    items = [item["item_id"] for item in ranked(first, STRANGER)["items"]]
    sent = first.call("POST", "/v1/signals?sync=true", "write", json=api_signals(items[:2]))
    assert sent["rejected"] == 1

    # The second host reads, searches and ranks what the first took in, with the shared model.
    features = second.call("GET", f"/v1/users/{USER}/features", "read")["features"]
    assert any(value not in (None, 0, 0.0, "", []) for value in features.values()), features
    memories = second.call("GET", f"/v1/users/{USER}/memories", "read")
    assert any(TEXT in json.dumps(memory).lower() for memory in memories["memories"])
    mine, stranger = ranked(second, USER), ranked(second, STRANGER)
    assert mine["model_version"] == trained["version"] and not mine["degraded"]
    assert mine != stranger
    before = [
        audit(host.settings(env), USER, TEXT, collections=[DEFAULT_COLLECTION])
        for host in (first, second)
    ]
    found = {hit.place for report in before for hit in report.hits}
    assert {"redis", "milvus", "offline", "dead_letter", "registry", "home"} <= found

    removed = second.call("DELETE", f"/v1/users/{USER}", "admin")

    assert removed["memories"] >= 1 and removed["events"] >= 15 and removed["dead_letter"] >= 2
    assert removed["model_versions"] == 1
    for host in (first, second):  # neither ranks for the user from their old data
        assert ranked(host, USER) == ranked(host, STRANGER)
    time.sleep(3)  # the first host's model check (1 s here) replaces its cached copy
    for host in (first, second):
        report = audit(host.settings(env), USER, TEXT, logs=[host.log])
        print("\n".join(report.lines()))
        assert not report.hits, report.lines()
        for place in ("redis", "milvus", "offline", "dead_letter", "registry", "home", "logs"):
            assert report.place(place).scanned > 0, (host.name, place)
