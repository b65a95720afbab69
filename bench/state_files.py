"""State files on this host's disk vs in PostgreSQL (ENGRAM_STATE_URL): what a model version
costs to publish, to fetch on a host that has no copy (cold), to fetch again (cached), and what a
serving process's model check costs (list the area, read one revision).

Files of random bytes (incompressible, as a pickled log mostly is) stand for a version's files.
Prints wall and CPU (this process) per operation, median of --repeat runs. Creates its own
database on --postgres and drops it.

    python bench/state_files.py --sizes-mb 8 128 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql

from core.stores.state_files import LocalFiles, SharedFiles, StateFiles


def timed(run: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall and CPU seconds of `run`."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def measure(name: str, files: StateFiles, size: int, repeat: int, cache: Path | None) -> None:
    data = os.urandom(size)
    versions = iter(range(10_000))

    def publish() -> None:
        files.publish(f"v{next(versions)}", {"sources.pkl": data, "meta.json": b"{}"})

    def cold() -> None:
        if cache is not None:
            for path in cache.rglob("*"):
                if path.is_file():
                    path.unlink()
        files.fetch("v0/sources.pkl").path.stat()

    def warm() -> None:
        files.fetch("v0/sources.pkl").path.stat()

    def check() -> None:
        files.names()
        files.revision("v0/sources.pkl")

    rows = [("publish", timed(publish, repeat))]
    rows.append(("fetch cold", timed(cold, repeat)))
    rows.append(("fetch cached", timed(warm, repeat)))
    rows.append(("model check", timed(check, repeat)))
    for operation, (wall, cpu) in rows:
        print(
            f"{name:6} {size >> 20:4d} MiB  {operation:13} wall {wall * 1000:9.1f} ms  "
            f"cpu {cpu * 1000:8.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[8, 128])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    database = f"engram_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        try:
            url = args.postgres.rsplit("/", 1)[0] + f"/{database}"
            for size in args.sizes_mb:
                with tempfile.TemporaryDirectory() as work:
                    root = Path(work)
                    measure("local", LocalFiles(root / "local"), size << 20, args.repeat, None)
                    shared = SharedFiles(url, f"bench{size}", root / "cache")
                    measure("shared", shared, size << 20, args.repeat, root / "cache")
        finally:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(database)))


if __name__ == "__main__":
    main()
