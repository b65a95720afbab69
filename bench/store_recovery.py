"""How the local Milvus recovers from kill -9 and SIGSTOP, for a few etcd session ttls.

Measures what the choice of `ttl` in core/stores/local_milvus.py's _TUNING rests on: per ttl, the
seconds from kill -9 until a restart on the same ports answers, and until a query on a loaded
collection answers again (it waits for the dead query node's session to expire); and
for each pause length, how many of `--repeat` servers survive a SIGSTOP that long (the others
exit on SIGCONT: their etcd lease expired; whether the lease's keepalive or its expiry runs first
after the pause is a race, so the boundary is not sharp).

    .venv/bin/python bench/store_recovery.py                        # ttl 10 20 30
    .venv/bin/python bench/store_recovery.py --ttl 20 --pauses 10 14
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
from pymilvus import MilvusClient
from pymilvus.exceptions import MilvusException

from core.stores import local_milvus

ROOT = Path(__file__).resolve().parent.parent
EXITS_WITHIN_S = 12.0  # a server that outlived its sessions exits this soon after SIGCONT
SETTLE_S = 3.0  # after a start, before the pause: every component registered


def _server_pid(directory: Path) -> int:
    return int(json.loads((directory / "server.json").read_text())["pid"])


def _kill(pid: int, sig: signal.Signals = signal.SIGKILL) -> None:
    os.kill(pid, sig)
    while Path(f"/proc/{pid}").exists():
        local_milvus._reap(pid)
        time.sleep(0.02)


def crash_recovery(directory: Path, binaries: Path) -> dict[str, float]:
    """Seconds from kill -9 to a restart answering, and to a query answering again."""
    uri = local_milvus.ensure_milvus(directory, binaries_dir=binaries)
    client = MilvusClient(uri=uri)
    client.create_collection("recovery", dimension=4)  # created, indexed and loaded
    killed = time.monotonic()
    _kill(_server_pid(directory))
    assert local_milvus.ensure_milvus(directory, binaries_dir=binaries) == uri
    answers = time.monotonic() - killed
    while True:
        try:
            client.query("recovery", filter="id >= 0", output_fields=["id"], timeout=2)
            break
        except (MilvusException, grpc.RpcError):  # not loaded yet, or refused: ask again
            time.sleep(0.5)
    queries = time.monotonic() - killed
    client.close()
    local_milvus.stop_milvus(directory)
    return {"answers_s": round(answers, 1), "queries_s": round(queries, 1)}


def survives_pause(directory: Path, binaries: Path, pause_s: float) -> bool:
    """True when the server is still up EXITS_WITHIN_S after a SIGSTOP of `pause_s`."""
    local_milvus.ensure_milvus(directory, binaries_dir=binaries)
    pid = _server_pid(directory)
    time.sleep(SETTLE_S)
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(pause_s)
    finally:
        os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + EXITS_WITHIN_S
    while time.monotonic() < deadline and local_milvus._is_milvus(pid):
        time.sleep(0.2)
    alive = local_milvus._is_milvus(pid)
    local_milvus.stop_milvus(directory)
    return alive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ttl", type=int, nargs="+", default=[10, 20, 30])
    parser.add_argument("--pauses", type=float, nargs="+", default=[6, 10, 14, 18, 24])
    parser.add_argument("--repeat", type=int, default=2, help="pauses of each length")
    parser.add_argument("--binaries", type=Path, default=ROOT / ".pytest_cache/d/milvus-2.3.5-bin")
    args = parser.parse_args()
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    tuning = list(local_milvus._TUNING)
    results: dict[str, Any] = {}
    for ttl in args.ttl:
        local_milvus._TUNING[:] = [(k, v) for k, v in tuning if k != "ttl"] + [("ttl", str(ttl))]
        with tempfile.TemporaryDirectory() as work:
            crash = crash_recovery(Path(work) / "crash", args.binaries)
            pauses = {
                str(p): sum(
                    survives_pause(Path(work) / f"pause-{p}-{n}", args.binaries, p)
                    for n in range(args.repeat)
                )
                for p in args.pauses
            }
        results[str(ttl)] = {"kill_9": crash, "survives_sigstop": pauses}
        print(json.dumps({"ttl": ttl, **results[str(ttl)]}), flush=True)


if __name__ == "__main__":
    main()
