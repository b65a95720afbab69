"""The embedded Milvus server Engram starts when MILVUS_URI is unset: one per directory."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymilvus import DataType, MilvusClient

from core.errors import ServiceUnavailableError
from core.stores import local_milvus

# The package's fixed defaults, which a local server must not take.
PACKAGE_PORTS = {2379, 2380, 9091, 19529, 19530, 19531, 21121, 21123, 21124, 13333, 53100}


@pytest.fixture(scope="module")
def milvus_dir(tmp_path_factory: pytest.TempPathFactory, milvus_binaries: Path) -> Iterator[Path]:
    """Directory of a server owned by this module; it dies with pytest even on a crash."""
    directory = tmp_path_factory.mktemp("milvus")
    local_milvus.ensure_milvus(directory, binaries_dir=milvus_binaries, die_with_caller=True)
    yield directory
    local_milvus.stop_milvus(directory)


def server_pid(directory: Path) -> int:
    return int(json.loads((directory / "server.json").read_text())["pid"])


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def wait_gone(pid: int, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.1)
    return False


def start_in_child(directory: Path, binaries: Path, die_with_caller: bool) -> subprocess.Popen[str]:
    """Another process calling ensure_milvus(directory) and printing the URI."""
    code = (
        "import sys; from pathlib import Path; from core.stores import local_milvus as m; "
        "print(m.ensure_milvus(Path(sys.argv[1]), binaries_dir=Path(sys.argv[2]), "
        f"die_with_caller={die_with_caller}))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, str(directory), str(binaries)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.getcwd(),
    )


def test_start_is_idempotent(milvus_dir: Path, milvus_binaries: Path) -> None:
    uri = local_milvus.milvus_status(milvus_dir)
    pid = server_pid(milvus_dir)
    assert uri is not None
    assert local_milvus.ensure_milvus(milvus_dir, binaries_dir=milvus_binaries) == uri
    assert server_pid(milvus_dir) == pid


def test_server_answers_pymilvus(milvus_dir: Path) -> None:
    uri = local_milvus.milvus_status(milvus_dir)
    assert uri is not None
    client = MilvusClient(uri=uri)
    try:
        assert client.get_server_version().startswith("v2.3")
        assert isinstance(client.list_collections(), list)
    finally:
        client.close()


def test_every_port_is_free_chosen_and_etcd_is_local(milvus_dir: Path) -> None:
    state = json.loads((milvus_dir / "server.json").read_text())
    ports = set(state["ports"].values())
    assert len(ports) == len(local_milvus._PORT_NAMES)
    assert not ports & PACKAGE_PORTS
    etcd = (milvus_dir / "configs" / "embedEtcd.yaml").read_text()
    assert f"listen-client-urls: http://127.0.0.1:{state['ports']['etcd_port']}" in etcd
    assert f"listen-peer-urls: http://127.0.0.1:{state['ports']['etcd_peer_port']}" in etcd
    with socket.create_connection(("127.0.0.1", state["ports"]["etcd_port"]), timeout=2):
        pass


def test_recorded_ports_are_kept_unless_something_else_took_one() -> None:
    names = local_milvus._PORT_NAMES
    recorded = dict(zip(names, local_milvus._free_ports(len(names)), strict=True))
    assert local_milvus.choose_ports(recorded) == recorded
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", recorded["proxy_port"]))
        squatter.listen()
        chosen = local_milvus.choose_ports(recorded, grace_s=0)
    assert chosen["proxy_port"] != recorded["proxy_port"]
    assert {n: p for n, p in chosen.items() if n != "proxy_port"} == {
        n: p for n, p in recorded.items() if n != "proxy_port"
    }
    assert len(set(chosen.values())) == len(names)
    assert len(set(local_milvus.choose_ports(None).values())) == len(names)


def test_status_of_a_directory_without_server_is_none(tmp_path: Path) -> None:
    assert local_milvus.milvus_status(tmp_path) is None
    assert local_milvus.stop_milvus(tmp_path) is False


def test_a_start_that_times_out_names_the_cause_and_leaves_nothing(
    tmp_path: Path, milvus_binaries: Path
) -> None:
    with pytest.raises(ServiceUnavailableError, match=r"milvus unavailable: .* did not list"):
        local_milvus.ensure_milvus(tmp_path, binaries_dir=milvus_binaries, timeout_s=0.2)
    assert not (tmp_path / "server.json").exists()
    assert local_milvus.milvus_status(tmp_path) is None


def test_racing_processes_share_one_server(tmp_path: Path, milvus_binaries: Path) -> None:
    starters = [start_in_child(tmp_path, milvus_binaries, False) for _ in range(3)]
    try:
        uris = {p.communicate(timeout=120)[0].strip() for p in starters}
        assert len(uris) == 1
        assert local_milvus.milvus_status(tmp_path) == uris.pop()
        pid = server_pid(tmp_path)
    finally:
        stopped = local_milvus.stop_milvus(tmp_path)
    assert stopped
    assert wait_gone(pid, timeout_s=1.0)


def test_a_server_tied_to_its_caller_dies_with_it(tmp_path: Path, milvus_binaries: Path) -> None:
    starter = start_in_child(tmp_path, milvus_binaries, True)
    try:
        assert starter.wait(timeout=120) == 0
        pid = server_pid(tmp_path)
        assert wait_gone(pid)
        assert local_milvus.milvus_status(tmp_path) is None
    finally:
        local_milvus.stop_milvus(tmp_path)


@pytest.mark.slow  # ~10 s: a restart
def test_collections_survive_a_restart_on_the_same_address(
    milvus_dir: Path, milvus_binaries: Path
) -> None:
    uri = local_milvus.milvus_status(milvus_dir)
    assert uri is not None
    client = MilvusClient(uri=uri)
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=16)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=4)
    client.create_collection("kept", schema=schema)
    client.flush("kept")  # a stop right after a create can hang until killed (see STOP_TIMEOUT_S)
    client.close()
    old_pid = server_pid(milvus_dir)
    assert local_milvus.stop_milvus(milvus_dir)
    assert not alive(old_pid)
    new_uri = local_milvus.ensure_milvus(
        milvus_dir, binaries_dir=milvus_binaries, die_with_caller=True
    )
    assert new_uri == uri  # live clients find it where it was
    client = MilvusClient(uri=new_uri)
    try:
        assert "kept" in client.list_collections()
    finally:
        client.close()
