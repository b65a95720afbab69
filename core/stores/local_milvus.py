"""An embedded Milvus 2.3 server that Engram starts itself when MILVUS_URI is unset.

One server per data directory, shared by every process (CLI, server workers, tests): the first
caller starts it detached, later callers find it through its state file. A file lock makes the
start safe when several processes race. Every port the server opens (proxy, coordinators, nodes,
metrics and the embedded etcd's client and peer ports) is a free port chosen at the first start,
so servers of different directories never clash, nor with a Milvus or etcd already on the
machine. The ports are recorded (`ports.json`) and kept across stops and crashes: a restart
listens where the server did before, so live clients reconnect to the address they know; a port
that something else took meanwhile is replaced, and clients that look the address up again
(`recorded_uri`) follow it. The same ports also make the restart itself quick: a stop or a crash
leaves the server's etcd sessions behind, and a server on new ports waits until they expire
(the session ttl, in _TUNING) while on the same ports the old sessions lead to the new server.

The state file tells a crash from a stop: `stop_milvus` removes it, a server that died leaves it
behind (`crashed`), which is what a supervisor restarts.

The `milvus` package ships the server as lzma-compressed binaries; they are unpacked once into
`binaries_dir` (default `<directory>/bin`, about 250 MB), which several directories may share.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.util
import json
import lzma
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from core.errors import ServiceUnavailableError
from core.locks import exclusive
from core.stores import local_redis
from core.stores.log_retention import EMBEDDED_RETENTION, MilvusRetention, apply_retention

MILVUS_VERSION = "2.3.5"
START_TIMEOUT_S = 90.0
# A graceful stop takes ~1 s; right after a collection is created the data node can hang in it
# for minutes, so it is killed after this. Milvus recovers unflushed writes from its log.
STOP_TIMEOUT_S = 10.0
_STATE_FILE = "server.json"
_PID_FILE = "milvus.pid"
_PORTS_FILE = "ports.json"
# Settings changed from the package's template (each key is unique in it), and why:
_TUNING: list[tuple[str, str]] = [
    # The server's own graceful stop; the default 1800 s would make a stop hang.
    ("gracefulStopTimeout", "10"),
    # Strong reads (every write barrier) wait for the next time tick, 200 ms apart by default:
    # a shorter tick makes them faster for a little idle CPU (docs/benchmarks.md).
    ("timeTickInterval", "50"),
    # The query coordinator's loops: shorter ones load a collection in about half the time.
    ("checkInterval", "200"),
    ("distPullInterval", "100"),
    # The etcd session ttl. A restart (on the same ports) answers in ~9 s whatever it is, but
    # queries wait until the dead query node's session expires: ttl + ~5 s after a crash. A
    # pause (SIGSTOP) longer than about ttl - 5 s makes the server exit when it resumes (then
    # the supervisor restarts it). Measured by bench/store_recovery.py: ttl 10 s: queries 15 s
    # after a kill -9, pauses of 6 s survive, 10 s half the time; 20 s: 24 s, 14 s survive,
    # 18 s not; 30 s (the default): 35 s, 24 s survive.
    ("ttl", "20"),
]
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)(?:\(\w+\))?\s*(?::\s*([^}]*?))?\s*\}\}")
# Template placeholders that are ports, plus the two the template leaves fixed.
_PORT_NAMES = (
    "etcd_port",
    "etcd_peer_port",
    "root_coord_port",
    "proxy_port",
    "proxy_internal_port",
    "query_coord_port",
    "query_node_port",
    "index_coord_port",
    "index_node_port",
    "data_coord_port",
    "data_node_port",
    "metrics_port",
)


@dataclass(frozen=True)
class ServerState:
    """What a started server left in its directory: enough for another process to reuse it."""

    pid: int
    ports: dict[str, int]
    started_at: float

    @property
    def uri(self) -> str:
        """The pymilvus URI of the proxy."""
        return f"http://127.0.0.1:{self.ports['proxy_port']}"


def _package_data() -> Path:
    spec = importlib.util.find_spec("milvus")
    if spec is None or spec.origin is None:
        raise ServiceUnavailableError(
            "milvus",
            "the `milvus` package (embedded server) is not installed and MILVUS_URI is unset",
        )
    return Path(spec.origin).parent / "data"


def unpack_binaries(binaries_dir: Path) -> Path:
    """Unpack the `milvus` package's server binaries into `binaries_dir` once; the executable."""
    source = _package_data() / "bin"
    archives = sorted(source.glob("*.lzma"))
    stamp_text = json.dumps([[a.name, a.stat().st_size] for a in archives] + [MILVUS_VERSION])
    stamp = binaries_dir / ".unpacked"
    with exclusive(binaries_dir / ".lock"):
        if not (stamp.exists() and stamp.read_text() == stamp_text):
            for archive in archives:
                target = binaries_dir / archive.name.removesuffix(".lzma")
                partial = target.with_name(target.name + ".partial")
                # Unpack beside and rename, so a concurrent reader never runs a half-written file.
                with lzma.open(archive) as packed, open(partial, "wb") as out:
                    while chunk := packed.read(1 << 20):
                        out.write(chunk)
                partial.chmod(0o755)
                partial.replace(target)
            stamp.write_text(stamp_text)
    return binaries_dir / "milvus"


def _free_ports(count: int, taken: frozenset[int] = frozenset()) -> list[int]:
    """`count` distinct free ports, none of them in `taken`."""
    # All sockets stay bound until every port is picked, so the ports are distinct.
    sockets: list[socket.socket] = []
    try:
        while len(sockets) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            if sock.getsockname()[1] in taken:
                sock.close()
                continue
            sockets.append(sock)
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def recorded_ports(directory: Path) -> dict[str, int] | None:
    """The ports this directory's server listens on when it runs (those of its last start)."""
    try:
        raw = json.loads((directory / _PORTS_FILE).read_text())
        return {name: int(raw[name]) for name in _PORT_NAMES}
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def recorded_uri(directory: Path) -> str | None:
    """The proxy URI of this directory's server, running or not: a file read, no connection."""
    ports = recorded_ports(directory)
    return None if ports is None else f"http://127.0.0.1:{ports['proxy_port']}"


def choose_ports(
    recorded: dict[str, int] | None, grace_s: float = local_redis.PORT_GRACE_S
) -> dict[str, int]:
    """The recorded ports where they are free (within `grace_s`), fresh free ports for the
    others (all of them on a first start)."""
    free = local_redis.free_of((recorded or {}).values(), grace_s)
    kept = {name: port for name, port in (recorded or {}).items() if port in free}
    missing = [name for name in _PORT_NAMES if name not in kept]
    fresh = _free_ports(len(missing), taken=frozenset(kept.values()))
    return {name: kept[name] if name in kept else fresh.pop(0) for name in _PORT_NAMES}


def _render_config(directory: Path, ports: dict[str, int], retention: MilvusRetention) -> None:
    """Write configs/milvus.yaml, glog.conf and embedEtcd.yaml for these ports and retention."""
    data, configs, logs = directory / "data", directory / "configs", directory / "logs"
    for sub in (data, configs, logs):
        sub.mkdir(parents=True, exist_ok=True)
    values: dict[str, str] = {
        **{name: str(port) for name, port in ports.items()},
        "etcd_log_path": str(logs / "etcd.log"),
        "etcd_log_level": "warn",
        "etcd_data_dir": str(data / "etcd.data"),
        "local_storage_dir": str(data),
        "rocksmq_data_dir": str(data / "rocksmq"),
        "system_log_path": str(logs),
    }

    def fill(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = values.get(name, default)
        if value is None:
            raise ServiceUnavailableError("milvus", f"config template needs a value for {name}")
        return value

    template = (_package_data() / "config.yaml.template").read_text()
    text = _PLACEHOLDER.sub(fill, template)
    # Components advertise 127.0.0.1 to each other instead of the first public address.
    text = re.sub(r"(?m)^(  ip:)\s*#.*$", r"\1 127.0.0.1", text)
    for setting, value in _TUNING:
        text, count = re.subn(rf"(?m)^(\s*{setting}:)\s*[^#\n]*", rf"\g<1> {value} ", text, count=1)
        if count != 1:
            raise ServiceUnavailableError("milvus", f"config template has no {setting}")
    # How long deleted rows stay in the message log and binlogs (docs/memory.md).
    text = apply_retention(text, retention)
    # A lone query node has nobody to hand its segments to; waiting for that only delays a stop.
    text = _replace_once(text, "\nqueryNode:\n", "\nqueryNode:\n  gracefulStopTimeout: 1\n")
    # At info the server logs ~5 MB a minute under load, and the same lines again to stdout.
    text = _replace_once(text, "\nlog:\n  level: info", "\nlog:\n  level: warn")
    text = _replace_once(text, "  stdout: true # Stdout enable", "  stdout: false # Stdout enable")
    # The embedded etcd otherwise listens on the fixed ports 2379 and 2380.
    etcd_config = configs / "embedEtcd.yaml"
    text = _replace_once(text, "\netcd:\n", f"\netcd:\n  config:\n    path: {etcd_config}\n")
    client = f"http://127.0.0.1:{ports['etcd_port']}"
    peer = f"http://127.0.0.1:{ports['etcd_peer_port']}"
    etcd_config.write_text(
        "name: default\n"
        f"listen-client-urls: {client}\nadvertise-client-urls: {client}\n"
        f"listen-peer-urls: {peer}\ninitial-advertise-peer-urls: {peer}\n"
        f"initial-cluster: default={peer}\n"
    )
    (configs / "milvus.yaml").write_text(text)
    (configs / "glog.conf").write_text((_package_data() / "glog.conf").read_text())


def _replace_once(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:
        raise ServiceUnavailableError("milvus", f"config template changed: no single {old!r}")
    return text.replace(old, new)


def _read_state(directory: Path) -> ServerState | None:
    path = directory / _STATE_FILE
    try:
        raw = json.loads(path.read_text())
        return ServerState(
            pid=int(raw["pid"]), ports=dict(raw["ports"]), started_at=raw["started_at"]
        )
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def _write_state(directory: Path, state: ServerState) -> None:
    partial = directory / (_STATE_FILE + ".partial")
    partial.write_text(json.dumps(asdict(state)))
    partial.replace(directory / _STATE_FILE)
    (directory / _PID_FILE).write_text(str(state.pid))


def _clear_state(directory: Path) -> None:
    (directory / _STATE_FILE).unlink(missing_ok=True)
    (directory / _PID_FILE).unlink(missing_ok=True)


def _is_milvus(pid: int) -> bool:
    """True when `pid` is a live milvus process (not a pid reused by something else)."""
    _reap(pid)
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    if "\nState:\tZ" in status:
        return False
    # The command line reads empty for an instant while the process is still exec-ing.
    return not cmdline or Path(os.fsdecode(cmdline.split(b"\0")[0])).name == "milvus"


def _reap(pid: int) -> None:
    # A server started by this very process is its child: collect it once it exits.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _answers(uri: str, timeout_s: float) -> str | None:
    """None when the server lists its collections; otherwise why not."""
    import grpc
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    client = None
    try:
        client = MilvusClient(uri=uri, timeout=timeout_s, dedicated=True)
        client.list_collections(timeout=timeout_s)
        return None
    except MilvusException as e:
        return f"{type(e).__name__}: {e.message}"
    except grpc.RpcError as e:  # a deadline comes through as grpc's own error
        return f"{type(e).__name__}: {e.code().name if isinstance(e, grpc.Call) else e}"
    finally:
        if client is not None:
            client.close()


def _log_tail(directory: Path, chars: int = 600) -> str:
    for name in ("milvus-stderr.log", "milvus.log"):
        path = directory / "logs" / name
        if path.exists() and path.stat().st_size:
            return f" ({name}: ...{path.read_text(errors='replace')[-chars:].strip()})"
    return ""


def _wait_ready(directory: Path, state: ServerState, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    reason = "no answer yet"
    while time.monotonic() < deadline:
        if not _is_milvus(state.pid):
            raise ServiceUnavailableError(
                "milvus", f"server process {state.pid} exited during start{_log_tail(directory)}"
            )
        if _port_open(state.ports["proxy_port"]):
            failure = _answers(state.uri, timeout_s=2.0)
            if failure is None:
                return
            reason = failure
        time.sleep(0.2)
    raise ServiceUnavailableError(
        "milvus",
        f"{state.uri} did not list collections within {timeout_s:.0f} s "
        f"(last error: {reason}){_log_tail(directory)}",
    )


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def die_with_parent() -> Callable[[], None]:
    """A Popen preexec_fn: the child gets SIGTERM when the calling thread ends."""
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _alias(directory: Path) -> str:
    """A name unique to the directory: the server locks /run/milvus/standalone-<alias>.pid."""
    return "engram-" + hashlib.sha256(str(directory).encode()).hexdigest()[:16]


def _spawn(directory: Path, executable: Path, ports: dict[str, int], die_with_caller: bool) -> int:
    env = {
        **os.environ,
        "DEPLOY_MODE": "STANDALONE",
        "METRICS_PORT": str(ports["metrics_port"]),
        "MILVUSCONF": str(directory / "configs"),
        "LD_LIBRARY_PATH": ":".join(
            p for p in (str(executable.parent), os.environ.get("LD_LIBRARY_PATH", "")) if p
        ),
    }
    logs = directory / "logs"
    with (
        open(logs / "milvus-stdout.log", "ab") as stdout,
        open(logs / "milvus-stderr.log", "ab") as stderr,
    ):
        process = subprocess.Popen(
            # Without an alias every server on the machine locks the same pid file.
            [str(executable), "run", "standalone", "-alias", _alias(directory)],
            cwd=directory,  # glog.conf's relative log_dir resolves from here
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # survives the caller's exit and its Ctrl-C
            preexec_fn=die_with_parent() if die_with_caller else None,
        )
    return process.pid


def crashed(directory: Path) -> bool:
    """True when this directory's server was started and died without `stop_milvus`."""
    state = _read_state(directory.resolve())
    return state is not None and not _is_milvus(state.pid)


def milvus_status(directory: Path) -> str | None:
    """The URI of the running local server for this directory when it answers, or None."""
    state = _read_state(directory)
    if state is None or not _is_milvus(state.pid) or not _port_open(state.ports["proxy_port"]):
        return None
    return state.uri if _answers(state.uri, timeout_s=2.0) is None else None


def ensure_milvus(
    directory: Path,
    *,
    binaries_dir: Path | None = None,
    timeout_s: float = START_TIMEOUT_S,
    die_with_caller: bool = False,
    retention: MilvusRetention = EMBEDDED_RETENTION,
) -> str:
    """Start (or find) the local Milvus server kept in `directory` and return its URI.

    `die_with_caller=True` ties the server's life to this process (for test sessions); by
    default it is detached and outlives the caller until `stop_milvus`. `retention` applies
    when this call starts the server.
    """
    directory = directory.resolve()
    with exclusive(directory / "start.lock"):
        state = _read_state(directory)
        if state is not None and _is_milvus(state.pid):
            # Started by another process, possibly still starting: wait for it, then share it.
            _wait_ready(directory, state, timeout_s)
            return state.uri
        _clear_state(directory)
        executable = unpack_binaries(binaries_dir or directory / "bin")
        ports = choose_ports(recorded_ports(directory))
        _render_config(directory, ports, retention)
        (directory / _PORTS_FILE).write_text(json.dumps(ports))
        pid = _spawn(directory, executable, ports, die_with_caller)
        state = ServerState(pid=pid, ports=ports, started_at=time.time())
        _write_state(directory, state)
        try:
            _wait_ready(directory, state, timeout_s)
        except ServiceUnavailableError:
            # A server that never answered holds nothing worth a graceful stop.
            _terminate(pid, grace_s=2.0)
            _clear_state(directory)
            raise
        return state.uri


def _terminate(pid: int, grace_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, then SIGKILL after `grace_s`; returns once the process is gone."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not _is_milvus(pid):
                return
            time.sleep(0.05)


def stop_milvus(directory: Path) -> bool:
    """Stop the local server of this directory; True when one was running."""
    directory = directory.resolve()
    if not directory.exists():
        return False
    with exclusive(directory / "start.lock"):
        state = _read_state(directory)
        running = state is not None and _is_milvus(state.pid)
        if state is not None and running:
            _terminate(state.pid)
        _clear_state(directory)
        return running
