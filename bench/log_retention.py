# ruff: noqa: E402  (imports follow the sys.path fix below)
"""Benchmark: what the embedded Milvus's retention settings cost, and how long a forgotten
memory's text stays on its disk.

For the template's defaults and for EMBEDDED_RETENTION, each on a fresh server in a temp dir:
idle CPU of the server process (/proc/<pid>/stat over a window), insert throughput of 384-d
memories in batches of 1,000, and the time of `purge_milvus` after deleting one user. With
`--bound`, also the seconds from a forget (delete + purge) until `find_text` finds the user's
text nowhere in the server's directory, scanned every 5 s, with optional restarts.

    .venv/bin/python bench/log_retention.py                          # costs, both settings
    .venv/bin/python bench/log_retention.py --bound --restarts 30,120,240
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path, and bench/memory.py would
# stand in for the memory package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import json
import os
import tempfile
import time
from datetime import UTC, datetime

import numpy as np
from pymilvus import MilvusClient

from core.stores import local_milvus
from core.stores.log_retention import EMBEDDED_RETENTION, MilvusRetention, purge_milvus
from core.text_scan import find_text
from memory.records import Memory
from memory.store import MilvusMemoryStore

# The template's own values for what EMBEDDED_RETENTION sets.
TEMPLATE_DEFAULTS = MilvusRetention(
    message_minutes=4320,
    page_bytes=64 * 1024 * 1024,
    message_check_s=600,
    message_compaction_s=86_400,
    sync_s=600,
    gc_s=3600,
    drop_tolerance_s=10_800,
    compaction_check_s=10,
)
SECRET = "okapi-violet-7731-bench"


def memories(count: int, users: int, text: str, start: int = 0) -> list[Memory]:
    now = datetime.now(UTC)
    return [
        Memory(
            memory_id=f"m-{start + i:024x}",
            user_id=f"u{(start + i) % users}",
            kind="episode",
            text=f"{text} {i}",
            confidence=0.9,
            valid_from=now,
            created_at=now,
            updated_at=now,
            source_event_ids=(f"e{start + i}",),
        )
        for i in range(count)
    ]


class Server:
    """A fresh embedded server with `retention`, the memory collection created."""

    def __init__(self, directory: Path, binaries: Path, retention: MilvusRetention) -> None:
        self.directory, self.binaries, self.retention = directory, binaries, retention
        self.start()

    def start(self) -> None:
        uri = local_milvus.ensure_milvus(
            self.directory, binaries_dir=self.binaries, retention=self.retention
        )
        self.client = MilvusClient(uri=uri)
        self.store = MilvusMemoryStore(self.client, dim=384, model="bench")
        self.store.ensure_collection()

    def stop(self) -> None:
        self.store.close()
        local_milvus.stop_milvus(self.directory)

    def cpu_s(self) -> float:
        pid = int((self.directory / "milvus.pid").read_text())
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def write(self, batch: list[Memory]) -> float:
        vectors = np.random.default_rng(0).random((len(batch), 384), dtype=np.float32)
        started = time.monotonic()
        for start in range(0, len(batch), 1000):
            self.store.write(batch[start : start + 1000], vectors[start : start + 1000])
        return time.monotonic() - started


def costs(server: Server, rows: int, idle_s: float) -> dict[str, float | str]:
    time.sleep(30)  # past the start's own work
    cpu, started = server.cpu_s(), time.monotonic()
    time.sleep(idle_s)
    idle = (server.cpu_s() - cpu) / (time.monotonic() - started)
    seconds = server.write(memories(rows, 2000, "memory text about things"))
    server.store.delete_user("u7")
    purge = purge_milvus(server.client, [server.store.collection], timeout_s=600)[0]
    return {
        "idle_cpu_share_of_one_core": round(idle, 4),
        "insert_rows_per_s": round(rows / seconds),
        "purge_s": purge.seconds,
        "purge": purge.outcome,
    }


def bound(server: Server, others: int, restarts: list[float], limit_s: float) -> dict[str, float]:
    server.write(memories(5, 1, SECRET) + memories(others, 97, "other text", start=100))
    server.store.delete_user("u0")
    deleted = time.monotonic()
    purge = purge_milvus(server.client, [server.store.collection])[0]
    pending = sorted(restarts)
    while time.monotonic() - deleted < limit_s:
        if pending and time.monotonic() - deleted > pending[0]:
            pending.pop(0)
            server.stop()
            server.start()
        if not pending and not find_text(server.directory, [SECRET]):
            gone_s = round(time.monotonic() - deleted)
            return {"purge_s": purge.seconds, "gone_after_delete_s": gone_s}
        time.sleep(5)
    return {"purge_s": purge.seconds, "gone_after_delete_s": float("inf")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=30_000)
    parser.add_argument("--idle-s", type=float, default=120.0)
    parser.add_argument("--bound", action="store_true", help="measure the bound (EMBEDDED only)")
    parser.add_argument("--others", type=int, default=200, help="other rows written with it")
    parser.add_argument("--restarts", default="", help="restart at these seconds after delete")
    parser.add_argument("--binaries", type=Path, default=None, help="unpacked server binaries")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="engram-retention-") as tmp:
        binaries = args.binaries or Path(tmp) / "bin"
        if args.bound:
            restarts = [float(s) for s in args.restarts.split(",") if s]
            server = Server(Path(tmp) / "bound", binaries, EMBEDDED_RETENTION)
            try:
                print(json.dumps(bound(server, args.others, restarts, limit_s=1800)))
            finally:
                server.stop()
            return
        for name, retention in (("template", TEMPLATE_DEFAULTS), ("embedded", EMBEDDED_RETENTION)):
            server = Server(Path(tmp) / name, binaries, retention)
            try:
                print(json.dumps({"settings": name, **costs(server, args.rows, args.idle_s)}))
            finally:
                server.stop()


if __name__ == "__main__":
    main()
