"""A local Redis Cluster for tests: three masters (redis-server --cluster-enabled yes) on free
ports in a directory of the caller's, joined by `redis-cli --cluster create`.

`start_cluster(directory)` returns the URL of one node (what REDIS_CLUSTER=true expects in
REDIS_URL) and a `stop` that kills the servers and removes their files; tests/conftest.py wraps
it in the session fixture `redis_cluster`.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis
from redis.cluster import RedisCluster

from core.stores import local_redis

MASTERS = 3
_READY_S = 30.0


def _port_pair() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    while True:
        port = local_redis.free_port()
        if port + 10_000 < 65_536 and local_redis.port_is_free(port + 10_000):
            return port


def start_cluster(directory: Path, masters: int = MASTERS) -> tuple[str, Callable[[], None]]:
    """Start a `masters`-node cluster (no replicas, AOF on as Engram's local server has it)
    under `directory`; (URL of its first node, stop)."""
    binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if binary is None or cli is None:
        raise FileNotFoundError("redis-server and redis-cli are needed for a Redis Cluster")
    processes: list[subprocess.Popen[bytes]] = []
    ports: list[int] = []

    def stop() -> None:
        for process in processes:
            process.kill()
        for process in processes:
            process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)

    try:
        for _ in range(masters):
            port = _port_pair()
            node_dir = directory / str(port)
            node_dir.mkdir(parents=True)
            processes.append(
                subprocess.Popen(
                    [
                        binary,
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--dir",
                        str(node_dir),
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "5000",
                        "--appendonly",
                        "yes",
                        "--save",
                        "",
                        "--logfile",
                        "redis.log",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            ports.append(port)
        for port in ports:
            _wait_ping(port)
        nodes = [f"127.0.0.1:{port}" for port in ports]
        subprocess.run(
            [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        url = f"redis://127.0.0.1:{ports[0]}"
        _wait_ready(url)
    except BaseException:
        stop()
        raise
    return url, stop


def _wait_ping(port: int) -> None:
    deadline = time.monotonic() + _READY_S
    with redis.Redis(port=port, socket_timeout=1) as client:
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def _wait_ready(url: str) -> None:
    """Until every node says the cluster is ok and a client can write to every slot's node."""
    deadline = time.monotonic() + _READY_S
    while True:
        try:
            with RedisCluster.from_url(url) as client:
                states = client.cluster_info(target_nodes=RedisCluster.ALL_NODES)
                if all(info["cluster_state"] == "ok" for info in states.values()):
                    return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"the cluster at {url} did not come up")
        time.sleep(0.1)
